//! The per-worker fast path: what a worker thread other than the engine's
//! may forward by itself, and what it counted doing so.
//!
//! Each worker owns a [`FastPath`] holding the authorized sessions the
//! shell admitted to it (those [`Engine::fast_path_sessions`] lists). It
//! forwards only what [`Engine::from_lan`] and [`Engine::from_tun`] would
//! forward and count for such a session with nothing else to do (no
//! shaper, quota, portal steering or DNS snooping), and answers
//! [`FastVerdict::Slow`] for everything else, which then goes to the engine
//! thread and is handled there exactly as before (drops counted by reason,
//! ARP and DHCP answered). What a worker forwards it counts in per-session
//! deltas; the engine adds them with [`Engine::apply_fast_delta`], so every
//! forwarded byte is counted once, by the thread that forwarded it.

use core::net::Ipv4Addr;
use std::collections::HashMap;

use super::{Engine, EngineSettings, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DNS_PORT};
use crate::session::{Client, Counters, FastBuildHasher, SessionState};
use crate::wire::frame::{self, EthHeader, ETHERTYPE_IPV4, ETH_HLEN, PROTO_TCP, PROTO_UDP};
use crate::wire::vnet::{wire_footprint, VnetHdr};
use crate::wire::{Ipv4Net, MacAddr};
use crate::UnixMillis;

/// What a worker's fast path needs to know about the gateway (the part of
/// [`EngineSettings`] fixed for the engine's life).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastSettings {
    /// lassi's hardware address on the LAN: uploads are addressed to it.
    pub gateway_mac: MacAddr,
    /// lassi's address on the LAN: traffic to or from it is the engine's.
    pub gateway_ip: Ipv4Addr,
    /// The guest network: traffic between guests is the engine's.
    pub network: Ipv4Net,
}

impl From<&EngineSettings> for FastSettings {
    fn from(s: &EngineSettings) -> FastSettings {
        FastSettings {
            gateway_mac: s.gateway_mac,
            gateway_ip: s.gateway_ip,
            network: s.network,
        }
    }
}

impl Engine {
    /// The settings the workers' fast paths are built with.
    pub fn fast_settings(&self) -> FastSettings {
        FastSettings::from(&self.settings)
    }

    /// Every session a worker may forward by itself, as (address, MAC,
    /// Acct-Session-Id): authorized, no shaper either way (nor packets a
    /// shaper still holds), no volume quota, not throttled, and no TCP
    /// connection of the client still redirected to the portal (those
    /// segments must be rewritten by the engine).
    pub fn fast_path_sessions(&self) -> Vec<(Ipv4Addr, MacAddr, String)> {
        let redirected = self.intercept.flow_clients();
        self.sessions
            .iter()
            // A blocked MAC's frames are dropped before anything else
            // (block ends its session too; this keeps it so if it logs in).
            .filter(|c| fast_eligible(c) && !self.is_blocked(c.mac))
            .filter(|c| !redirected.contains(&c.ip))
            .map(|c| (c.ip, c.mac, c.session_id.clone()))
            .collect()
    }

    /// Add a worker's delta to the session it was counted for: the one with
    /// the delta's MAC and address and `session_id`, if it is still
    /// authorized (false otherwise: the session ended, and the caller adds
    /// the delta to the `SessionEnded` it holds). The traffic totals take
    /// the bytes either way: they were forwarded.
    pub fn apply_fast_delta(&mut self, session_id: &str, d: &FastDelta) -> bool {
        let k = &d.counters;
        self.traffic.upload((k.packets_in, k.octets_in));
        self.traffic.download((k.packets_out, k.octets_out));
        let Some(c) = self.sessions.by_mac_mut(d.mac) else {
            return false;
        };
        if c.ip != d.ip || c.session_id != session_id || c.state != SessionState::Authorized {
            return false;
        }
        c.counters.packets_in += k.packets_in;
        c.counters.octets_in += k.octets_in;
        c.counters.packets_out += k.packets_out;
        c.counters.octets_out += k.octets_out;
        c.last_active = c.last_active.max(d.last_active);
        if d.last_seen > c.last_seen {
            // The client was heard, as if the engine had seen the frame:
            // Lost-Carrier probing starts over.
            c.last_seen = d.last_seen;
            c.probes = 0;
        }
        true
    }
}

/// Whether a session's traffic needs nothing but forwarding and counting.
fn fast_eligible(c: &Client) -> bool {
    let l = &c.limits;
    c.state == SessionState::Authorized
        && c.up.unlimited()
        && c.down.unlimited()
        && c.up.queued_bytes() == 0
        && c.down.queued_bytes() == 0
        && l.max_input_octets.is_none()
        && l.max_output_octets.is_none()
        && l.max_total_octets.is_none()
        && !c.throttled
}

/// A session a worker may forward by itself. `token` is chosen by the shell
/// (unique per admission) so that deltas of an old admission are never
/// mistaken for those of a new one at the same address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastAdmit {
    /// The client's leased address.
    pub ip: Ipv4Addr,
    /// The client's hardware address (frames from `ip` must come from it).
    pub mac: MacAddr,
    /// The shell's name for this admission.
    pub token: u64,
}

/// What a worker counted for one admitted session since it last reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastDelta {
    /// The admission's token.
    pub token: u64,
    /// The client's hardware address.
    pub mac: MacAddr,
    /// The client's address.
    pub ip: Ipv4Addr,
    /// Packets and IP bytes forwarded, counted as the engine counts them.
    pub counters: Counters,
    /// Last packet forwarded from the client (0: none since the last
    /// report). Like the engine's `Client::last_active`, only uploads move
    /// it: the idle timeout counts from what the client sent, whichever
    /// thread forwarded it.
    pub last_active: UnixMillis,
    /// Last packet from the client (0: none) — it shows the client is there (Lost-Carrier).
    pub last_seen: UnixMillis,
}

impl Default for FastDelta {
    fn default() -> FastDelta {
        FastDelta {
            token: 0,
            mac: MacAddr::default(),
            ip: Ipv4Addr::UNSPECIFIED,
            counters: Counters::default(),
            last_active: 0,
            last_seen: 0,
        }
    }
}

/// Where a worker sends a frame or packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastVerdict {
    /// An upload: strip the Ethernet header, write to the TUN queue. Counted.
    ToTun,
    /// A download for this client: send on the LAN. Counted.
    ToLan(MacAddr),
    /// Not the fast path's to decide: hand it to the engine thread
    /// unchanged. Nothing was counted.
    Slow,
}

/// One admitted session and what was counted for it since the last report.
struct Entry {
    mac: MacAddr,
    token: u64,
    counters: Counters,
    last_active: UnixMillis,
    last_seen: UnixMillis,
    /// In `FastPath::touched` since the last report (so it is listed once).
    touched: bool,
}

impl Entry {
    fn new(a: &FastAdmit) -> Entry {
        Entry {
            mac: a.mac,
            token: a.token,
            counters: Counters::default(),
            last_active: 0,
            last_seen: 0,
            touched: false,
        }
    }

    /// The unreported delta, moved out (the entry starts again from zero).
    fn take(&mut self, ip: Ipv4Addr) -> FastDelta {
        self.touched = false;
        FastDelta {
            token: self.token,
            mac: self.mac,
            ip,
            counters: core::mem::take(&mut self.counters),
            last_active: core::mem::take(&mut self.last_active),
            last_seen: core::mem::take(&mut self.last_seen),
        }
    }
}

/// A worker's table of the sessions it forwards by itself, with their
/// counter deltas.
pub struct FastPath {
    settings: FastSettings,
    entries: HashMap<Ipv4Addr, Entry, FastBuildHasher>,
    /// Addresses whose entry counted something since the last report, so
    /// a report walks only those (an address may appear twice after a
    /// re-admission; `Entry::touched` tells which is current).
    touched: Vec<Ipv4Addr>,
}

impl FastPath {
    /// An empty table for a gateway with these settings.
    pub fn new(settings: FastSettings) -> FastPath {
        FastPath {
            settings,
            entries: HashMap::default(),
            touched: Vec::new(),
        }
    }

    /// Admit (or re-admit). Replacing an entry with another token returns
    /// the old entry's unreported delta (nothing is lost); re-admitting the
    /// same token keeps what it counted.
    pub fn admit(&mut self, a: FastAdmit) -> Option<FastDelta> {
        let ip = a.ip;
        match self.entries.get_mut(&ip) {
            Some(e) if e.token == a.token => {
                e.mac = a.mac;
                None
            }
            Some(e) => {
                let old = e.take(ip);
                *e = Entry::new(&a);
                Some(old)
            }
            None => {
                self.entries.insert(ip, Entry::new(&a));
                None
            }
        }
    }

    /// Stop forwarding `ip` by itself; the final unreported delta (even if
    /// all zero, so the caller knows the token is done), None if it was not
    /// admitted.
    pub fn revoke(&mut self, ip: Ipv4Addr) -> Option<FastDelta> {
        // Its address may stay in `touched`; `take_deltas` skips it then.
        self.entries.remove(&ip).map(|mut e| e.take(ip))
    }

    /// Everything revoked (worker stopping): final deltas of all entries.
    pub fn revoke_all(&mut self, out: &mut Vec<FastDelta>) {
        out.extend(self.entries.drain().map(|(ip, mut e)| e.take(ip)));
        self.touched.clear();
    }

    /// A LAN frame (starting at the Ethernet header, after the vnet header).
    pub fn from_lan(&mut self, now: UnixMillis, vnet: &VnetHdr, frame: &[u8]) -> FastVerdict {
        let Some(eth) = EthHeader::parse(frame) else {
            return FastVerdict::Slow;
        };
        // Multicast sources, frames for others and for groups, ARP, IPv6
        // and VLAN tags: all the engine's.
        let s = &self.settings;
        if eth.src.is_multicast() || eth.dst != s.gateway_mac || eth.ethertype != ETHERTYPE_IPV4 {
            return FastVerdict::Slow;
        }
        let Ok(p) = frame::parse_ipv4(&frame[ETH_HLEN..]) else {
            return FastVerdict::Slow;
        };
        let dhcp = |port| port == DHCP_SERVER_PORT || port == DHCP_CLIENT_PORT;
        if p.proto == PROTO_UDP && (dhcp(p.src_port) || dhcp(p.dst_port)) {
            return FastVerdict::Slow;
        }
        // Broadcasts are dropped by the engine; lassi itself and other
        // guests (hairpin, isolation) are the engine's to decide.
        let d = p.dst;
        if d.is_multicast() || d.is_broadcast() || d == s.gateway_ip || s.network.contains(d) {
            return FastVerdict::Slow;
        }
        // Unknown or spoofed senders: the engine drops and counts them.
        let Some(e) = self.entries.get_mut(&p.src) else {
            return FastVerdict::Slow;
        };
        if e.mac != eth.src {
            return FastVerdict::Slow;
        }
        let (packets, octets) = wire_footprint(vnet, p.total_len, p.l3l4_hdr_len);
        e.counters.packets_in += packets;
        e.counters.octets_in += octets;
        (e.last_active, e.last_seen) = (now, now);
        if !e.touched {
            e.touched = true;
            self.touched.push(p.src);
        }
        FastVerdict::ToTun
    }

    /// A TUN packet (IP header first). `_now` is unused: downloads do not
    /// move `last_active` (see [`FastDelta::last_active`]).
    pub fn from_tun(&mut self, _now: UnixMillis, vnet: &VnetHdr, packet: &[u8]) -> FastVerdict {
        // IPv6 (and anything not IPv4) is the engine's.
        if packet.first().map(|b| b >> 4) != Some(4) {
            return FastVerdict::Slow;
        }
        let Ok(p) = frame::parse_ipv4(packet) else {
            return FastVerdict::Slow;
        };
        let s = &self.settings;
        // Portal replies are rewritten by the engine; guests' packets the
        // kernel routed back are dropped there.
        if p.src == s.gateway_ip || s.network.contains(p.src) {
            return FastVerdict::Slow;
        }
        // Maybe the late answer to a query sent before login: the engine
        // matches it against its pending queries.
        if (p.proto == PROTO_UDP || p.proto == PROTO_TCP) && p.src_port == DNS_PORT {
            return FastVerdict::Slow;
        }
        let Some(e) = self.entries.get_mut(&p.dst) else {
            return FastVerdict::Slow;
        };
        let (packets, octets) = wire_footprint(vnet, p.total_len, p.l3l4_hdr_len);
        e.counters.packets_out += packets;
        e.counters.octets_out += octets;
        if !e.touched {
            e.touched = true;
            self.touched.push(p.dst);
        }
        FastVerdict::ToLan(e.mac)
    }

    /// Move the non-zero deltas out (entries stay admitted, their deltas
    /// reset). Walks only the entries that counted something.
    pub fn take_deltas(&mut self, out: &mut Vec<FastDelta>) {
        for ip in self.touched.drain(..) {
            if let Some(e) = self.entries.get_mut(&ip) {
                if e.touched {
                    out.push(e.take(ip));
                }
            }
        }
    }

    /// Number of admitted sessions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no session is admitted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
#[path = "fastpath_tests.rs"]
mod tests;
