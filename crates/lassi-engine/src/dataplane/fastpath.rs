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
//!
//! A shaped or metered session ([`FastLimits`]) has one owner among the
//! workers: only its fast path shapes it (with the engine's own [`Shaper`])
//! and spends its quota budget; the others answer [`FastVerdict::Handoff`]
//! and the shell passes the frame to the owner.

use core::net::Ipv4Addr;
use std::collections::HashMap;

use super::{Engine, EngineSettings, Released, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, DNS_PORT};
use crate::session::{Client, Counters, FastBuildHasher, Held, SessionState, ShapeVerdict, Shaper};
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

    /// Every session the workers may forward by themselves: authorized,
    /// not throttled, not over its quota, no packets held by the engine's
    /// shapers. Shaped and metered sessions are in, with their rates and
    /// what is left of their quota now. A client with a TCP connection
    /// still redirected to the portal (a browser's keep-alive after login)
    /// is in with `divert_http`: its segments to port 80 stay with the
    /// engine, which rewrites them.
    ///
    /// Sorted by address, for the callers' binary searches.
    pub fn fast_path_sessions(&self) -> Vec<FastSession> {
        let redirected = self.intercept.flow_clients();
        let mut v: Vec<FastSession> = self
            .sessions
            .iter()
            // A blocked MAC's frames are dropped before anything else
            // (block ends its session too; this keeps it so if it logs in).
            .filter(|c| fast_eligible(c) && !self.is_blocked(c.mac))
            .map(|c| FastSession {
                ip: c.ip,
                mac: c.mac,
                session_id: c.session_id.clone(),
                limits: FastLimits::of(c),
                divert_http: redirected.contains(&c.ip),
            })
            .collect();
        v.sort_unstable_by_key(|w| w.ip);
        v
    }

    /// Add a worker's delta to the session it was counted for: the one with
    /// the delta's MAC and address and `session_id`, if it is still
    /// authorized (false otherwise: the session ended, and the caller adds
    /// the delta to the `SessionEnded` it holds). The traffic totals take
    /// the bytes either way: they were forwarded.
    pub fn apply_fast_delta(&mut self, session_id: &str, d: &FastDelta) -> bool {
        self.drops.add(super::DropReason::Shaped, d.shaped_drops);
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

/// Whether a session may go to the workers (see
/// [`Engine::fast_path_sessions`]).
fn fast_eligible(c: &Client) -> bool {
    c.state == SessionState::Authorized
        && c.up.queued_bytes() == 0
        && c.down.queued_bytes() == 0
        && !c.over_quota()
        && !c.throttled
}

/// What an admitted session may use; all `None`: unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastLimits {
    /// Upload rate, bit/s.
    pub up_bps: Option<u64>,
    /// Download rate, bit/s.
    pub down_bps: Option<u64>,
    /// Octets the client may still send (at admission).
    pub in_left: Option<u64>,
    /// Octets the client may still receive.
    pub out_left: Option<u64>,
    /// Octets both ways together.
    pub total_left: Option<u64>,
}

impl FastLimits {
    /// A session's limits, its quota as what is left of it now.
    fn of(c: &Client) -> FastLimits {
        let (l, k) = (&c.limits, &c.counters);
        let rate = |r: Option<u64>| r.filter(|&r| r > 0);
        FastLimits {
            up_bps: rate(l.bandwidth_up_bps),
            down_bps: rate(l.bandwidth_down_bps),
            in_left: l.max_input_octets.map(|m| m.saturating_sub(k.octets_in)),
            out_left: l.max_output_octets.map(|m| m.saturating_sub(k.octets_out)),
            total_left: (l.max_total_octets).map(|m| m.saturating_sub(k.octets_in + k.octets_out)),
        }
    }

    /// True when nothing is limited: any worker forwards it.
    pub fn unlimited(&self) -> bool {
        *self == FastLimits::default()
    }

    /// Whether `octets` more in direction `up` stay within every budget.
    fn allows(&self, used: &Counters, up: bool, octets: u64) -> bool {
        let within = |left: Option<u64>, used: u64| left.is_none_or(|l| used + octets <= l);
        let dir = if up {
            within(self.in_left, used.octets_in)
        } else {
            within(self.out_left, used.octets_out)
        };
        dir && within(self.total_left, used.octets_in + used.octets_out)
    }
}

/// One session the engine allows on the fast path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastSession {
    /// The client's leased address.
    pub ip: Ipv4Addr,
    /// Its hardware address.
    pub mac: MacAddr,
    /// Acct-Session-Id of the session.
    pub session_id: String,
    /// What it may use.
    pub limits: FastLimits,
    /// Its TCP to port 80 goes to the engine (a connection of it is still
    /// redirected to the portal).
    pub divert_http: bool,
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
    /// What the session may use.
    pub limits: FastLimits,
    /// This fast path owns the session: it shapes it and spends its quota
    /// (only matters for a limited session).
    pub owner: bool,
    /// Leave its TCP to port 80 to the engine ([`FastSession::divert_http`]).
    pub divert_http: bool,
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
    /// Packets the owner's shapers dropped (over their queue, or held when
    /// the session was revoked): the engine counts them as `shaped`.
    pub shaped_drops: u64,
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
            shaped_drops: 0,
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
    /// A limited session another worker owns: hand the frame to the
    /// owner. Nothing was counted.
    Handoff,
    /// The owner's shaper kept a copy; it comes out of
    /// [`FastPath::release_held`] and is counted then.
    Held,
    /// The owner's shaper dropped it (counted in `shaped_drops`).
    Drop,
}

/// One admitted session and what was counted for it since the last report.
struct Entry {
    mac: MacAddr,
    token: u64,
    counters: Counters,
    last_active: UnixMillis,
    last_seen: UnixMillis,
    shaped_drops: u64,
    /// TCP to port 80 is the engine's.
    divert_http: bool,
    /// In `FastPath::touched` since the last report (so it is listed once).
    touched: bool,
    /// Limits; `None` when unlimited.
    limited: Option<Box<Limited>>,
}

/// What an owner keeps for a limited session (boxed: most are unlimited).
struct Limited {
    limits: FastLimits,
    owner: bool,
    up: Shaper,
    down: Shaper,
    /// Counted since admission (the quota budget is spent from it).
    used: Counters,
    /// A budget ran out: everything goes to the engine from now on.
    exhausted: bool,
    /// Listed in `Holding::sessions`.
    holding: bool,
}

impl Entry {
    fn new(a: &FastAdmit) -> Entry {
        let limited = (!a.limits.unlimited()).then(|| {
            Box::new(Limited {
                limits: a.limits,
                owner: a.owner,
                up: Shaper::new(a.limits.up_bps, 0),
                down: Shaper::new(a.limits.down_bps, 0),
                used: Counters::default(),
                exhausted: false,
                holding: false,
            })
        });
        Entry {
            mac: a.mac,
            token: a.token,
            counters: Counters::default(),
            last_active: 0,
            last_seen: 0,
            shaped_drops: 0,
            divert_http: a.divert_http,
            touched: false,
            limited,
        }
    }

    /// Count a packet that goes now (or was released) in one direction.
    fn count(&mut self, up: bool, (packets, octets): (u64, u64)) {
        let k = &mut self.counters;
        if up {
            k.packets_in += packets;
            k.octets_in += octets;
        } else {
            k.packets_out += packets;
            k.octets_out += octets;
        }
    }

    /// Drop what the shapers hold (revoked): counted as shaped drops.
    fn drop_held(&mut self) -> usize {
        let Some(l) = self.limited.as_mut() else {
            return 0;
        };
        let n = (l.up.queued_packets() + l.down.queued_packets()) as u64;
        self.shaped_drops += n;
        l.up.clear() + l.down.clear()
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
            shaped_drops: core::mem::take(&mut self.shaped_drops),
        }
    }
}

/// What a limited session's frame comes to before it is counted.
enum Limit {
    /// On: count it and forward it.
    Go,
    /// Decided (handed off, held, dropped, or left to the engine).
    Stop(FastVerdict),
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
    held: Holding,
}

/// What this fast path's shapers hold.
struct Holding {
    /// Bytes held, all sessions.
    bytes: usize,
    /// At most this many.
    max: usize,
    /// Sessions whose shapers hold packets (each once).
    sessions: Vec<Ipv4Addr>,
    /// When `release_held` last ran: release times count from it.
    last_release: UnixMillis,
    /// A quota ran out since `take_urgent` was last asked.
    urgent: bool,
}

impl FastPath {
    /// An empty table for a gateway with these settings, whose shapers
    /// hold at most `max_held_bytes` together.
    pub fn new(settings: FastSettings, max_held_bytes: usize) -> FastPath {
        FastPath {
            settings,
            entries: HashMap::default(),
            touched: Vec::new(),
            held: Holding {
                bytes: 0,
                max: max_held_bytes,
                sessions: Vec::new(),
                last_release: 0,
                urgent: false,
            },
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
                self.held.bytes -= e.drop_held();
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
        // Its address may stay in `touched` and `held.sessions`; both
        // skip addresses without an entry.
        let mut e = self.entries.remove(&ip)?;
        self.held.bytes -= e.drop_held();
        Some(e.take(ip))
    }

    /// Everything revoked (worker stopping): final deltas of all entries.
    pub fn revoke_all(&mut self, out: &mut Vec<FastDelta>) {
        out.extend(self.entries.drain().map(|(ip, mut e)| {
            e.drop_held();
            e.take(ip)
        }));
        self.touched.clear();
        self.held.sessions.clear();
        self.held.bytes = 0;
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
        if e.mac != eth.src || (e.divert_http && p.proto == PROTO_TCP && p.dst_port == HTTP_PORT) {
            return FastVerdict::Slow;
        }
        let offer = Offer {
            ip: p.src,
            way: Way::Up,
            now,
            vnet,
            packet: &frame[ETH_HLEN..ETH_HLEN + p.total_len],
            footprint: wire_footprint(vnet, p.total_len, p.l3l4_hdr_len),
        };
        pass(&mut self.held, &mut self.touched, e, &offer)
    }

    /// A TUN packet (IP header first). `now` only matters to a shaper:
    /// downloads do not move `last_active` (see [`FastDelta::last_active`]).
    pub fn from_tun(&mut self, now: UnixMillis, vnet: &VnetHdr, packet: &[u8]) -> FastVerdict {
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
        let offer = Offer {
            ip: p.dst,
            way: Way::Down,
            now,
            vnet,
            packet: &packet[..p.total_len],
            footprint: wire_footprint(vnet, p.total_len, p.l3l4_hdr_len),
        };
        pass(&mut self.held, &mut self.touched, e, &offer)
    }

    /// Packets the owner's shapers let go now, counted into the deltas as
    /// they go.
    pub fn release_held(&mut self, now: UnixMillis, out: &mut Vec<Released>) {
        self.held.last_release = now;
        let (entries, touched) = (&mut self.entries, &mut self.touched);
        let mut bytes = 0;
        self.held.sessions.retain(|&ip| {
            let Some(e) = entries.get_mut(&ip) else {
                return false;
            };
            let (mac, mut up, mut down) = (e.mac, (0, 0), (0, 0));
            let Some(l) = e.limited.as_deref_mut() else {
                return false;
            };
            l.up.release(now, |h| {
                up.0 += h.packets;
                up.1 += h.octets;
                out.push(Released::ToTun(h));
            });
            l.down.release(now, |h| {
                down.0 += h.packets;
                down.1 += h.octets;
                out.push(Released::ToLan(mac, h));
            });
            let queued = l.up.queued_bytes() + l.down.queued_bytes();
            l.holding = queued > 0;
            bytes += queued;
            if up.0 + down.0 > 0 {
                e.count(true, up);
                e.count(false, down);
                touch(e, touched, ip);
            }
            queued > 0
        });
        // Recounted from the queues: revoked sessions never leave it wrong.
        self.held.bytes = bytes;
    }

    /// When the next held packet may go (`None`: nothing is held).
    pub fn next_release(&self) -> Option<UnixMillis> {
        let at = self.held.last_release;
        (self.held.sessions.iter())
            .filter_map(|ip| self.entries.get(ip)?.limited.as_deref())
            .flat_map(|l| [l.up.next_release(at), l.down.next_release(at)])
            .flatten()
            .min()
    }

    /// True once after a quota ran out here: the shell then reports the
    /// deltas at once, so the engine sees the session over its quota
    /// before the frames it is now handed.
    pub fn take_urgent(&mut self) -> bool {
        core::mem::take(&mut self.held.urgent)
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

/// The port the engine steers to the portal before login.
const HTTP_PORT: u16 = 80;

/// Which way a packet goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// From the client.
    Up,
    /// To the client.
    Down,
}

/// List an entry for the next report (once).
fn touch(e: &mut Entry, touched: &mut Vec<Ipv4Addr>, ip: Ipv4Addr) {
    if !e.touched {
        e.touched = true;
        touched.push(ip);
    }
}

/// One packet a session's entry was found for, as the fast rules passed it.
struct Offer<'a> {
    /// The session's address.
    ip: Ipv4Addr,
    way: Way,
    now: UnixMillis,
    vnet: &'a VnetHdr,
    /// The IP packet, without Ethernet padding.
    packet: &'a [u8],
    /// (packets, IP bytes) it stands for.
    footprint: (u64, u64),
}

/// Forward, hold or drop an offered packet of entry `e`, counting what
/// goes now; `Handoff` and `Slow` count nothing.
fn pass(held: &mut Holding, touched: &mut Vec<Ipv4Addr>, e: &mut Entry, o: &Offer) -> FastVerdict {
    let up = o.way == Way::Up;
    let verdict = match limit(held, e, o) {
        Limit::Stop(v @ (FastVerdict::Handoff | FastVerdict::Slow)) => return v,
        Limit::Stop(v) => v,
        Limit::Go => {
            e.count(up, o.footprint);
            if up {
                FastVerdict::ToTun
            } else {
                FastVerdict::ToLan(e.mac)
            }
        }
    };
    if up {
        // Only what the client sends shows it active (as in the engine).
        (e.last_active, e.last_seen) = (o.now, o.now);
    }
    touch(e, touched, o.ip);
    verdict
}

/// A limited session's quota and shaper, for an offered packet.
/// Unlimited sessions go on.
fn limit(held: &mut Holding, e: &mut Entry, o: &Offer) -> Limit {
    let (ip, now, vnet, packet) = (o.ip, o.now, o.vnet, o.packet);
    let (packets, octets) = o.footprint;
    let Some(l) = e.limited.as_deref_mut() else {
        return Limit::Go;
    };
    if !l.owner {
        return Limit::Stop(FastVerdict::Handoff);
    }
    let up = o.way == Way::Up;
    if l.exhausted || !l.limits.allows(&l.used, up, octets) {
        // The engine decides what a used-up quota means (end or throttle).
        held.urgent |= !l.exhausted;
        l.exhausted = true;
        return Limit::Stop(FastVerdict::Slow);
    }
    let shaper = if up { &mut l.up } else { &mut l.down };
    let verdict = if shaper.unlimited() {
        ShapeVerdict::Pass
    } else {
        shaper.offer(now, octets, packet.len())
    };
    let stop = match verdict {
        ShapeVerdict::Pass => None,
        ShapeVerdict::Hold if held.bytes + packet.len() <= held.max => {
            let vnet = *vnet;
            let packet = packet.to_vec();
            held.bytes += packet.len();
            shaper.hold(Held {
                vnet,
                packet,
                packets,
                octets,
            });
            if !l.holding {
                l.holding = true;
                held.sessions.push(ip);
            }
            Some(FastVerdict::Held)
        }
        ShapeVerdict::Hold | ShapeVerdict::Drop => {
            e.shaped_drops += 1;
            return Limit::Stop(FastVerdict::Drop);
        }
    };
    // The budget is spent when a packet goes or is queued to go.
    let u = &mut l.used;
    if up {
        u.octets_in += octets;
    } else {
        u.octets_out += octets;
    }
    stop.map_or(Limit::Go, Limit::Stop)
}

#[cfg(test)]
#[path = "fastpath_tests.rs"]
mod tests;
