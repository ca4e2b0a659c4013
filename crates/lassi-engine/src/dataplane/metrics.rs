//! Counters for the metrics endpoint: cumulative traffic of authorized
//! clients (it never goes down when a session ends, unlike a sum over the
//! live sessions) and a cheap summary of the engine's state, taken without
//! copying the session table.

use serde::Serialize;

use super::DropCounters;
use crate::dhcp::DhcpStats;

/// Packets and IP bytes forwarded for authorized clients since start.
/// Counted where the sessions' own counters are bumped, so the two agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Packets sent by clients.
    pub upload_packets: u64,
    /// IP bytes sent by clients.
    pub upload_bytes: u64,
    /// Packets delivered to clients.
    pub download_packets: u64,
    /// IP bytes delivered to clients.
    pub download_bytes: u64,
}

impl Traffic {
    /// Counts `(packets, bytes)` sent by a client.
    #[inline]
    pub(crate) fn upload(&mut self, (packets, bytes): (u64, u64)) {
        self.upload_packets += packets;
        self.upload_bytes += bytes;
    }

    /// Counts `(packets, bytes)` delivered to a client.
    #[inline]
    pub(crate) fn download(&mut self, (packets, bytes): (u64, u64)) {
        self.download_packets += packets;
        self.download_bytes += bytes;
    }
}

/// What the metrics endpoint reads from the engine in one go.
#[derive(Clone, Debug, Serialize)]
pub struct EngineMetrics {
    /// Clients holding a lease that have not logged in.
    pub unauthorized: u64,
    /// Logged-in clients.
    pub authorized: u64,
    /// Logged-in clients slowed down by a used-up quota.
    pub throttled: u64,
    /// Traffic since start.
    pub traffic: Traffic,
    /// Drops by reason since start.
    pub drops: DropCounters,
    /// DHCP counters and pool occupancy.
    pub dhcp: DhcpStats,
    /// Connections currently redirected to the portal.
    pub redirected_flows: u64,
    /// Bytes the shapers hold.
    pub shaper_held_bytes: u64,
}
