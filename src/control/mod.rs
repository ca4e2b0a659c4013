//! The local control socket: one JSON request per line, one JSON reply per
//! line. The socket is created mode 0600 in a root-owned directory, so only
//! root can steer sessions.

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};

use crate::wire::MacAddr;

/// A request on the control socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Sessions, drop counters, DHCP and I/O statistics.
    Status,
    /// Log a client in (operator override).
    Authorize {
        /// Client MAC.
        mac: MacAddr,
        /// User name to record, if any.
        #[serde(default)]
        user: Option<String>,
    },
    /// End a client's session (Admin-Reset).
    Logout {
        /// Client MAC.
        mac: MacAddr,
    },
    /// Re-read the config file, the users file and the pages, and apply
    /// what changed (see [`crate::reload`]).
    Reload,
}
