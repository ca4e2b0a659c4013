//! Which clients an operator means: `lassi sessions --ip … --user …`,
//! `lassi logout --user …`. Unlike a CoA [`super::SessionMatch`], an empty
//! filter lists every client, and clients not logged in are listed too.

use core::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::Client;
use crate::wire::MacAddr;

/// Criteria an operator gave; every one given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFilter {
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// The client's hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The session's user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The session id (Acct-Session-Id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl ClientFilter {
    /// True when no criterion was given (every client matches).
    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.mac.is_none() && self.user.is_none() && self.session_id.is_none()
    }

    /// Does `c` match every criterion given?
    pub fn matches(&self, c: &Client) -> bool {
        self.ip.is_none_or(|ip| ip == c.ip)
            && self.mac.is_none_or(|m| m == c.mac)
            && self
                .user
                .as_deref()
                .is_none_or(|u| c.user.as_deref() == Some(u))
            && self
                .session_id
                .as_deref()
                .is_none_or(|id| id == c.session_id)
    }

    /// What the filter asked for, for "not found" messages: `client with IP
    /// 10.1.0.77`, `session for user alice`, criteria joined with "and".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ip) = self.ip {
            parts.push(format!("IP {ip}"));
        }
        if let Some(mac) = self.mac {
            parts.push(format!("MAC {mac}"));
        }
        if let Some(u) = &self.user {
            parts.push(format!("user {u}"));
        }
        if let Some(id) = &self.session_id {
            parts.push(format!("session id {id}"));
        }
        parts.join(" and ")
    }
}
