//! The local control socket: one JSON request per line, one JSON reply per
//! line. The socket is created mode 0600 in a root-owned directory, so only
//! root can steer sessions.

pub mod client;
mod operator;
pub mod server;

use serde::{Deserialize, Serialize};

use crate::wire::MacAddr;

/// A request on the control socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Sessions, drop counters, DHCP and I/O statistics.
    Status,
    /// Log a client in (operator override), by MAC or by IP, with
    /// per-session limits (unset ones come from `session.defaults`).
    Authorize {
        /// Client MAC.
        #[serde(default)]
        mac: Option<MacAddr>,
        /// Client address (instead of the MAC).
        #[serde(default)]
        ip: Option<std::net::Ipv4Addr>,
        /// User name to record, if any.
        #[serde(default)]
        user: Option<String>,
        /// Limits for this session.
        #[serde(default)]
        limits: crate::session::SessionLimits,
    },
    /// End sessions (Admin-Reset): every one the criteria designate.
    Logout {
        /// By MAC, IP, user name or session id.
        #[serde(flatten)]
        filter: crate::session::ClientFilter,
    },
    /// The clients, filtered (every criterion given must match).
    Sessions {
        /// By MAC, IP, user name or session id.
        #[serde(flatten)]
        filter: crate::session::ClientFilter,
    },
    /// Block a MAC: no lease, no portal, no forwarding.
    Block {
        /// Client MAC.
        mac: MacAddr,
    },
    /// Let a blocked MAC in again.
    Unblock {
        /// Client MAC.
        mac: MacAddr,
    },
    /// The blocked MACs.
    Blocked,
    /// Free a client's lease as if it had sent DHCPRELEASE.
    DhcpRelease {
        /// Client MAC.
        #[serde(default)]
        mac: Option<MacAddr>,
        /// Client address (instead of the MAC).
        #[serde(default)]
        ip: Option<std::net::Ipv4Addr>,
    },
    /// The walled garden's entries and open addresses.
    GardenList,
    /// Add a walled-garden entry (`portal.walled_garden` syntax), runtime only.
    GardenAdd {
        /// The entry.
        entry: String,
    },
    /// Remove an operator-added walled-garden entry.
    GardenRemove {
        /// The entry.
        entry: String,
    },
    /// Re-read the config file, the users file and the pages, and apply
    /// what changed (see [`crate::reload`]).
    Reload,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_requests_still_parse_and_new_ones_round_trip() {
        let old: ControlRequest =
            serde_json::from_str(r#"{"cmd":"authorize","mac":"02:00:00:00:00:01","user":"x"}"#)
                .unwrap();
        assert!(matches!(
            old,
            ControlRequest::Authorize {
                mac: Some(_),
                ip: None,
                ..
            }
        ));
        let old: ControlRequest =
            serde_json::from_str(r#"{"cmd":"logout","mac":"02:00:00:00:00:01"}"#).unwrap();
        assert!(matches!(old, ControlRequest::Logout { filter } if filter.mac.is_some()));
        let req = ControlRequest::Sessions {
            filter: crate::session::ClientFilter {
                user: Some("alice".into()),
                ip: Some("10.1.0.9".parse().unwrap()),
                ..Default::default()
            },
        };
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<ControlRequest>(&text).unwrap(), req);
        let empty: ControlRequest = serde_json::from_str(r#"{"cmd":"sessions"}"#).unwrap();
        assert!(matches!(empty, ControlRequest::Sessions { filter } if filter.is_empty()));
        let bad = serde_json::from_str::<ControlRequest>(r#"{"cmd":"block","mac":"nope"}"#);
        assert!(bad.is_err());
    }
}
