//! What the metrics endpoint reads from the RADIUS service: each server's
//! counters and whether it is up, and CoA/Disconnect requests by kind and
//! result.

use serde::Serialize;

use super::client::ServerConfig;
use super::server_stats::ServerStats;

/// One server's counters, as a scrape sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerMetrics {
    /// The server's label: its address and authentication port.
    pub server: String,
    /// False while the server is remembered as dead.
    pub up: bool,
    /// What the client engine did with it.
    pub stats: ServerStats,
}

/// The label of a server: `address:auth_port` (`[v6]:port` for IPv6).
pub fn server_label(s: &ServerConfig) -> String {
    s.socket_addr(super::client::Service::Auth).to_string()
}

/// Kinds of CoA-port request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoaPortKind {
    /// CoA-Request (43).
    Coa,
    /// Disconnect-Request (40).
    Disconnect,
    /// Any other code (only ever dropped).
    Other,
}

impl CoaPortKind {
    /// Every kind, in counter order.
    pub const ALL: [CoaPortKind; 3] = [
        CoaPortKind::Coa,
        CoaPortKind::Disconnect,
        CoaPortKind::Other,
    ];

    /// The kind of a request or answer from its code byte: requests and
    /// their ACK/NAK share a kind.
    pub fn of_code(code: Option<u8>) -> CoaPortKind {
        match code {
            Some(43..=45) => CoaPortKind::Coa,
            Some(40..=42) => CoaPortKind::Disconnect,
            _ => CoaPortKind::Other,
        }
    }

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            CoaPortKind::Coa => "coa",
            CoaPortKind::Disconnect => "disconnect",
            CoaPortKind::Other => "other",
        }
    }
}

/// What became of a CoA-port request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoaResult {
    /// Acknowledged (CoA-ACK, Disconnect-ACK).
    Ack,
    /// Refused (CoA-NAK, Disconnect-NAK).
    Nak,
    /// Dropped unanswered (unknown client, bad authenticator, malformed…).
    Dropped,
}

impl CoaResult {
    /// Every result, in counter order.
    pub const ALL: [CoaResult; 3] = [CoaResult::Ack, CoaResult::Nak, CoaResult::Dropped];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            CoaResult::Ack => "ack",
            CoaResult::Nak => "nak",
            CoaResult::Dropped => "dropped",
        }
    }
}

/// CoA-port requests by kind and result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CoaCounts([[u64; CoaResult::ALL.len()]; CoaPortKind::ALL.len()]);

impl CoaCounts {
    /// Counts one request.
    pub fn count(&mut self, kind: CoaPortKind, result: CoaResult) {
        self.0[kind as usize][result as usize] += 1;
    }

    /// The count for one kind and result.
    pub fn get(&self, kind: CoaPortKind, result: CoaResult) -> u64 {
        self.0[kind as usize][result as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coa_kinds_follow_the_code_byte() {
        assert_eq!(CoaPortKind::of_code(Some(43)), CoaPortKind::Coa);
        assert_eq!(CoaPortKind::of_code(Some(45)), CoaPortKind::Coa);
        assert_eq!(CoaPortKind::of_code(Some(40)), CoaPortKind::Disconnect);
        assert_eq!(CoaPortKind::of_code(Some(42)), CoaPortKind::Disconnect);
        assert_eq!(CoaPortKind::of_code(Some(1)), CoaPortKind::Other);
        assert_eq!(CoaPortKind::of_code(None), CoaPortKind::Other);
        let mut c = CoaCounts::default();
        c.count(CoaPortKind::Disconnect, CoaResult::Nak);
        assert_eq!(c.get(CoaPortKind::Disconnect, CoaResult::Nak), 1);
        assert_eq!(c.get(CoaPortKind::Coa, CoaResult::Nak), 0);
    }

    #[test]
    fn server_labels_are_address_and_auth_port() {
        let s = |addr: &str| ServerConfig {
            addr: addr.parse().unwrap(),
            auth_port: 1812,
            acct_port: 1813,
            secret: b"s".to_vec(),
        };
        assert_eq!(server_label(&s("192.0.2.1")), "192.0.2.1:1812");
        assert_eq!(server_label(&s("2001:db8::1")), "[2001:db8::1]:1812");
    }
}
