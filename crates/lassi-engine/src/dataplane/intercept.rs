//! What an unauthorized client may reach, and how its web traffic is steered
//! to the portal.
//!
//! - TCP to port 80 anywhere is rewritten to lassi's portal listener
//!   (gateway:portal_port) and the replies are rewritten back, so the browser
//!   believes it talks to the site it asked for and the portal sees the
//!   original `Host` and path. The flow table remembers each redirected
//!   connection by the client's address and port.
//! - The walled garden: networks from the config, addresses the shell
//!   resolved for configured host names, and addresses learnt from DNS
//!   answers for `*.domain` suffixes (kept for the record's TTL, between a
//!   minute and an hour). Only an answer to the client's own pending query
//!   teaches, and only about the name it asked (see [`super::dns`]).
//! - IPv6 (issue 13, phase 2) is held the same way: TCP to port 80 of any
//!   IPv6 host goes to the portal listener on lassi's IPv6 address (its
//!   own flow table, [`Intercept::redirect_out6`]), IPv6 networks may be in
//!   the walled garden, and AAAA answers teach it like A answers.
//! - Everything else is refused at once — a TCP reset or an ICMP
//!   unreachable — so browsers and apps fail fast instead of hanging.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::{HashMap, HashSet};

use super::dns::{self, DnsTracker, Question};
use crate::session::FastBuildHasher;
use crate::wire::checksum::{update16, update32};
use crate::wire::frame::{Ipv4Summary, PROTO_TCP};
use crate::wire::ipv6::{Ipv6Net, Ipv6Summary, Ports, NEXT_TCP};
use crate::wire::Ipv4Net;
use crate::UnixMillis;

/// Redirected connections idle longer than this are forgotten.
const FLOW_IDLE_MS: u64 = 120_000;
/// Most redirected connections remembered at once (oldest goes first).
const MAX_FLOWS: usize = 8192;
/// Most addresses learnt from DNS answers at once.
const MAX_LEARNT: usize = 4096;
/// A learnt address is kept at least this long whatever its TTL says, so a
/// page has time to load after the lookup.
const MIN_LEARNT_MS: u64 = 60_000;
/// At most this long, so a huge TTL cannot pin an address for a day.
const MAX_LEARNT_MS: u64 = 3_600_000;
/// Most learnt addresses one client's lookups may hold at once.
const MAX_LEARNT_PER_CLIENT: usize = 64;
/// Refusals (resets, unreachables) generated per second at most, gateway-wide.
const REJECTS_PER_SECOND: u32 = 2000;

/// Interception settings from `[portal]`.
#[derive(Clone, Debug, Default)]
pub struct InterceptSettings {
    /// lassi's portal listener port on the gateway address.
    pub portal_port: u16,
    /// Walled-garden networks.
    pub walled_nets: Vec<Ipv4Net>,
    /// Walled-garden IPv6 networks.
    pub walled_nets6: Vec<Ipv6Net>,
    /// Walled-garden domain suffixes (lowercase, no leading `*.`).
    pub walled_suffixes: Vec<String>,
    /// Unauthorized clients may query any DNS server.
    pub any_dns: bool,
}

/// A walled-garden address learnt from DNS: until when, and whose lookup
/// taught it (for the per-client bound).
#[derive(Clone, Copy, Debug)]
struct Learnt {
    until: UnixMillis,
    by: Ipv4Addr,
}

#[derive(Clone, Copy)]
struct Flow {
    original_dst: Ipv4Addr,
    original_port: u16,
    last: UnixMillis,
}

#[derive(Clone, Copy)]
struct Flow6 {
    original_dst: Ipv6Addr,
    original_port: u16,
    last: UnixMillis,
}

fn flow_key(ip: Ipv4Addr, port: u16) -> u64 {
    u64::from(u32::from(ip)) << 16 | u64::from(port)
}

/// Interception state (owned by the engine).
#[derive(Default)]
pub struct Intercept {
    pub(super) settings: InterceptSettings,
    flows: HashMap<u64, Flow, FastBuildHasher>,
    /// Redirected IPv6 connections by the client's address and port
    /// (SipHash: the keys are the guests' to choose).
    flows6: HashMap<(Ipv6Addr, u16), Flow6>,
    resolved: HashSet<Ipv4Addr, FastBuildHasher>,
    /// Host names of the garden (exact names, lowercase): the shell
    /// resolves them, and a guest's own lookup of one teaches its answer
    /// too (round-robin and geo DNS give guests other addresses).
    walled_hosts: Vec<String>,
    /// IPv4 (A) and IPv6 (AAAA) addresses alike.
    learnt: HashMap<IpAddr, Learnt, FastBuildHasher>,
    /// How many of `learnt` each client's lookups added.
    learnt_by: HashMap<Ipv4Addr, usize, FastBuildHasher>,
    /// Pending DNS queries of unauthorized clients.
    pub(super) dns: DnsTracker,
    reject_window: UnixMillis,
    rejects_in_window: u32,
}

impl Intercept {
    /// New state for these settings.
    pub fn new(settings: InterceptSettings) -> Intercept {
        Intercept {
            settings,
            ..Default::default()
        }
    }

    /// True when `ip` is in the walled garden now.
    pub fn walled(&self, ip: Ipv4Addr, now: UnixMillis) -> bool {
        self.settings.walled_nets.iter().any(|n| n.contains(ip))
            || self.resolved.contains(&ip)
            || self.learnt_now(ip.into(), now)
    }

    /// Replace the addresses resolved for walled-garden host names.
    pub fn set_resolved(&mut self, ips: impl IntoIterator<Item = Ipv4Addr>) {
        self.resolved = ips.into_iter().collect();
    }

    /// Replace the garden's networks, suffixes and host names (a live edit
    /// or a reload). Addresses learnt from DNS are forgotten when a name
    /// they may have come from is gone: they were not recorded by name.
    pub fn set_garden(&mut self, nets: Vec<Ipv4Net>, suffixes: Vec<String>, hosts: Vec<String>) {
        let gone = (self.settings.walled_suffixes.iter()).any(|s| !suffixes.contains(s))
            || self.walled_hosts.iter().any(|h| !hosts.contains(h));
        self.settings.walled_nets = nets;
        self.settings.walled_suffixes = suffixes;
        self.walled_hosts = hosts;
        if gone {
            self.learnt.clear();
            self.learnt_by.clear();
        }
    }

    /// What the garden opens at `now`, sorted.
    pub fn open(&self, now: UnixMillis) -> super::GardenOpen {
        let mut resolved: Vec<Ipv4Addr> = self.resolved.iter().copied().collect();
        resolved.sort_unstable();
        let (mut learnt, mut learnt6) = (Vec::<Ipv4Addr>::new(), Vec::<Ipv6Addr>::new());
        for (ip, l) in &self.learnt {
            match ip {
                _ if l.until <= now => {}
                IpAddr::V4(v4) => learnt.push(*v4),
                IpAddr::V6(v6) => learnt6.push(*v6),
            }
        }
        learnt.sort_unstable();
        learnt6.sort_unstable();
        super::GardenOpen {
            nets: self.settings.walled_nets.clone(),
            resolved,
            learnt,
            nets6: (self.settings.walled_nets6.iter())
                .map(|n| n.to_string())
                .collect(),
            learnt6,
        }
    }

    /// Number of redirected connections remembered.
    pub fn flow_count(&self) -> usize {
        self.flows.len() + self.flows6.len()
    }

    /// The clients (IPv4) with a connection still redirected to the
    /// portal, in one pass over the flows: their segments must keep going
    /// through [`Intercept::continue_out`], so they stay off the workers'
    /// fast path.
    pub fn flow_clients(&self) -> HashSet<Ipv4Addr, FastBuildHasher> {
        // The key holds the client's address above its port.
        (self.flows.keys())
            .map(|&k| Ipv4Addr::from((k >> 16) as u32))
            .collect()
    }

    /// True when the IPv6 address `ip` is in the walled garden now (its
    /// networks, or learnt from an AAAA answer).
    pub fn walled6(&self, ip: Ipv6Addr, now: UnixMillis) -> bool {
        self.settings.walled_nets6.iter().any(|n| n.contains(ip)) || self.learnt_now(ip.into(), now)
    }

    fn learnt_now(&self, ip: IpAddr, now: UnixMillis) -> bool {
        self.learnt.get(&ip).is_some_and(|l| l.until > now)
    }

    /// [`Intercept::redirect_out`] for IPv6: a SYN to port 80 opens a
    /// redirected connection to the portal at `portal` (lassi's IPv6
    /// address); its later segments follow ([`Intercept::continue_out6`]).
    pub fn redirect_out6(
        &mut self,
        ip: &mut [u8],
        s: &Ipv6Summary,
        ports: Ports,
        partial: bool,
        portal: Ipv6Addr,
        now: UnixMillis,
    ) -> bool {
        if s.upper != NEXT_TCP || ports.l3l4_hdr_len < s.upper_offset + 20 {
            return false;
        }
        let flags = ip[s.upper_offset + 13];
        if flags & 0x02 == 0 || flags & 0x10 != 0 {
            return self.continue_out6(ip, s, ports, partial, portal, now);
        }
        if self.flows6.len() >= MAX_FLOWS {
            if let Some(&k) = self.flows6.keys().next() {
                self.flows6.remove(&k);
            }
        }
        let flow = Flow6 {
            original_dst: s.dst,
            original_port: ports.dst,
            last: now,
        };
        self.flows6.insert((s.src, ports.src), flow);
        let port = self.settings.portal_port;
        rewrite6(ip, s, Side::Destination, portal, port, partial);
        true
    }

    /// [`Intercept::continue_out`] for IPv6.
    pub fn continue_out6(
        &mut self,
        ip: &mut [u8],
        s: &Ipv6Summary,
        ports: Ports,
        partial: bool,
        portal: Ipv6Addr,
        now: UnixMillis,
    ) -> bool {
        if self.flows6.is_empty() || s.upper != NEXT_TCP {
            return false;
        }
        match self.flows6.get_mut(&(s.src, ports.src)) {
            Some(f) if f.original_dst == s.dst && f.original_port == ports.dst => {
                f.last = now;
                let port = self.settings.portal_port;
                rewrite6(ip, s, Side::Destination, portal, port, partial);
                true
            }
            _ => false,
        }
    }

    /// [`Intercept::redirect_back`] for IPv6.
    pub fn redirect_back6(
        &mut self,
        ip: &mut [u8],
        s: &Ipv6Summary,
        partial: bool,
        now: UnixMillis,
    ) -> bool {
        let portal_port = self.settings.portal_port;
        let Some(ports) = s.ports(ip).filter(|p| p.src == portal_port) else {
            return false;
        };
        if s.upper != NEXT_TCP {
            return false;
        }
        let Some(f) = self.flows6.get_mut(&(s.dst, ports.dst)) else {
            return false;
        };
        f.last = now;
        let (dst, port) = (f.original_dst, f.original_port);
        rewrite6(ip, s, Side::Source, dst, port, partial);
        true
    }

    /// Number of addresses currently learnt from DNS.
    pub fn learnt_count(&self) -> usize {
        self.learnt.len()
    }

    /// Rewrite a client's TCP segment to port `p.dst_port` so it reaches the
    /// portal at `gateway`. `ip` is the IP packet; `partial` says the TCP
    /// checksum holds an offload seed. Returns false if the packet cannot be
    /// rewritten (then it must be dropped).
    pub fn redirect_out(
        &mut self,
        ip: &mut [u8],
        p: &Ipv4Summary,
        partial: bool,
        gateway: Ipv4Addr,
        now: UnixMillis,
    ) -> bool {
        if p.proto != PROTO_TCP || p.later_fragment || p.l3l4_hdr_len < p.ihl + 20 {
            return false;
        }
        let key = flow_key(p.src, p.src_port);
        let flags = ip[p.ihl + 13];
        let syn = flags & 0x02 != 0 && flags & 0x10 == 0;
        if !syn {
            // Only a SYN opens a redirected connection; a segment of one we
            // do not know is answered with a reset by the caller.
            return self.continue_out(ip, p, partial, gateway, now);
        }
        if !self.flows.contains_key(&key) && self.flows.len() >= MAX_FLOWS {
            self.evict_one_flow();
        }
        self.flows.insert(
            key,
            Flow {
                original_dst: p.dst,
                original_port: p.dst_port,
                last: now,
            },
        );
        rewrite(
            ip,
            p,
            Side::Destination,
            gateway,
            self.settings.portal_port,
            partial,
        );
        true
    }

    /// The continuation of a connection redirected earlier (the client may
    /// have logged in meanwhile): rewrite it the same way. False when the
    /// segment belongs to no redirected connection.
    pub fn continue_out(
        &mut self,
        ip: &mut [u8],
        p: &Ipv4Summary,
        partial: bool,
        gateway: Ipv4Addr,
        now: UnixMillis,
    ) -> bool {
        if self.flows.is_empty() || p.proto != PROTO_TCP {
            return false;
        }
        match self.flows.get_mut(&flow_key(p.src, p.src_port)) {
            Some(f) if f.original_dst == p.dst && f.original_port == p.dst_port => {
                f.last = now;
                rewrite(
                    ip,
                    p,
                    Side::Destination,
                    gateway,
                    self.settings.portal_port,
                    partial,
                );
                true
            }
            _ => false,
        }
    }

    /// A segment from the portal listener to a client: if it belongs to a
    /// redirected connection, make it look like it comes from the site the
    /// client asked for. Returns whether it was rewritten.
    pub fn redirect_back(
        &mut self,
        ip: &mut [u8],
        p: &Ipv4Summary,
        partial: bool,
        now: UnixMillis,
    ) -> bool {
        if self.flows.is_empty() || p.proto != PROTO_TCP || p.src_port != self.settings.portal_port
        {
            return false;
        }
        let Some(f) = self.flows.get_mut(&flow_key(p.dst, p.dst_port)) else {
            return false;
        };
        f.last = now;
        let (dst, port) = (f.original_dst, f.original_port);
        rewrite(ip, p, Side::Source, dst, port, partial);
        true
    }

    /// True when `name` (normalised) is one of the garden's host names or
    /// under one of its suffixes.
    fn walled_name(&self, name: &str) -> bool {
        self.walled_hosts.iter().any(|h| h == name)
            || self.settings.walled_suffixes.iter().any(|s| {
                name == s
                    || name
                        .strip_suffix(s.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            })
    }

    /// Learn walled-garden addresses from an answer that matched `client`'s
    /// own pending query (see [`DnsTracker`]): only when the question is a
    /// walled name, and only the records of that name and its CNAME chain
    /// (a CNAME target outside the suffix is followed: the operator allowed
    /// the name asked for, wherever it is served from).
    ///
    /// A learnt address opens for every unauthorized client, not just the
    /// one that asked. That gives an attacker nothing: anyone may ask the
    /// operator's resolver about a garden name, so the address is exactly
    /// what the garden permits; per-client gardens would only make the
    /// second guest's page break.
    pub fn learn_from_answer(
        &mut self,
        msg: &crate::wire::dns::Message,
        question: &Question,
        client: Ipv4Addr,
        now: UnixMillis,
    ) {
        if !self.walled_name(&question.name) {
            return;
        }
        for (ip, ttl) in dns::chain_addresses(msg, question) {
            self.learn(ip, ttl, client, now);
        }
    }

    fn learn(&mut self, ip: IpAddr, ttl: u32, client: Ipv4Addr, now: UnixMillis) {
        let keep = (u64::from(ttl) * 1000).clamp(MIN_LEARNT_MS, MAX_LEARNT_MS);
        if let Some(l) = self.learnt.get_mut(&ip) {
            l.until = l.until.max(now + keep);
            return;
        }
        if self.learnt_by.get(&client).copied().unwrap_or(0) >= MAX_LEARNT_PER_CLIENT {
            self.expire(now);
        }
        if self.learnt_by.get(&client).copied().unwrap_or(0) >= MAX_LEARNT_PER_CLIENT {
            // This client's own oldest goes: one guest cannot fill the table.
            self.forget_soonest(|l| l.by == client);
        }
        if self.learnt.len() >= MAX_LEARNT {
            self.expire(now);
            if self.learnt.len() >= MAX_LEARNT {
                self.forget_soonest(|_| true);
            }
        }
        self.learnt.insert(
            ip,
            Learnt {
                until: now + keep,
                by: client,
            },
        );
        *self.learnt_by.entry(client).or_insert(0) += 1;
    }

    fn forget_soonest(&mut self, which: impl Fn(&Learnt) -> bool) {
        let soonest = self
            .learnt
            .iter()
            .filter(|(_, l)| which(l))
            .min_by_key(|(_, l)| l.until)
            .map(|(ip, _)| *ip);
        if let Some(old) = soonest {
            self.forget(old);
        }
    }

    fn forget(&mut self, ip: IpAddr) {
        if let Some(l) = self.learnt.remove(&ip) {
            Self::uncount(&mut self.learnt_by, l.by);
        }
    }

    fn uncount(by: &mut HashMap<Ipv4Addr, usize, FastBuildHasher>, client: Ipv4Addr) {
        if let Some(n) = by.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                by.remove(&client);
            }
        }
    }

    /// Whether [`Intercept::may_reject`] could still say yes at `now`, without
    /// counting: a flood over the limit then costs no refusal built only to
    /// be thrown away.
    pub fn rejects_left(&self, now: UnixMillis) -> bool {
        now >= self.reject_window + 1000 || self.rejects_in_window < REJECTS_PER_SECOND
    }

    /// True if one more refusal may be sent now (a flood of blocked packets
    /// must not turn lassi into a reflector).
    pub fn may_reject(&mut self, now: UnixMillis) -> bool {
        if now >= self.reject_window + 1000 {
            self.reject_window = now;
            self.rejects_in_window = 0;
        }
        self.rejects_in_window += 1;
        self.rejects_in_window <= REJECTS_PER_SECOND
    }

    /// Forget idle flows and expired learnt addresses.
    pub fn expire(&mut self, now: UnixMillis) {
        self.flows.retain(|_, f| f.last + FLOW_IDLE_MS > now);
        self.flows6.retain(|_, f| f.last + FLOW_IDLE_MS > now);
        let by = &mut self.learnt_by;
        self.learnt.retain(|_, l| {
            let keep = l.until > now;
            if !keep {
                Self::uncount(by, l.by);
            }
            keep
        });
        self.dns.expire(now);
    }

    /// Make room in a full table: drop any one entry (no scan for the
    /// oldest, which a flood of SYNs would turn into a full scan per packet;
    /// idle entries also go at the next expiry).
    fn evict_one_flow(&mut self) {
        if let Some(&k) = self.flows.keys().next() {
            self.flows.remove(&k);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// Replace one side's address and port of a TCP/IPv4 packet, keeping the IP
/// header checksum and the TCP checksum (complete or offload seed) right.
fn rewrite(ip: &mut [u8], p: &Ipv4Summary, side: Side, addr: Ipv4Addr, port: u16, partial: bool) {
    let (addr_at, port_at) = match side {
        Side::Source => (12, p.ihl),
        Side::Destination => (16, p.ihl + 2),
    };
    let old_addr: [u8; 4] = ip[addr_at..addr_at + 4].try_into().expect("4 bytes");
    let old_port = u16::from_be_bytes([ip[port_at], ip[port_at + 1]]);
    let new_addr = addr.octets();
    ip[addr_at..addr_at + 4].copy_from_slice(&new_addr);
    ip[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());

    let hc = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&update32(hc, old_addr, new_addr, false).to_be_bytes());

    let csum_at = p.ihl + 16;
    let mut tc = u16::from_be_bytes([ip[csum_at], ip[csum_at + 1]]);
    tc = update32(tc, old_addr, new_addr, partial);
    if !partial {
        // A seed covers only the pseudo-header; the port is summed when the
        // checksum is completed.
        tc = update16(tc, old_port, port, false);
    }
    ip[csum_at..csum_at + 2].copy_from_slice(&tc.to_be_bytes());
}

/// [`rewrite`] for TCP over IPv6 (no header checksum; the TCP checksum
/// covers the addresses through the pseudo-header).
fn rewrite6(ip: &mut [u8], s: &Ipv6Summary, side: Side, addr: Ipv6Addr, port: u16, partial: bool) {
    let (addr_at, port_at) = match side {
        Side::Source => (8, s.upper_offset),
        Side::Destination => (24, s.upper_offset + 2),
    };
    let old_port = u16::from_be_bytes([ip[port_at], ip[port_at + 1]]);
    let csum_at = s.upper_offset + 16;
    let mut tc = u16::from_be_bytes([ip[csum_at], ip[csum_at + 1]]);
    let new = addr.octets();
    for (i, chunk) in new.chunks_exact(4).enumerate() {
        let at = addr_at + i * 4;
        let old: [u8; 4] = ip[at..at + 4].try_into().expect("4 bytes");
        tc = update32(tc, old, chunk.try_into().expect("4 bytes"), partial);
    }
    ip[addr_at..addr_at + 16].copy_from_slice(&new);
    ip[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    if !partial {
        tc = update16(tc, old_port, port, false);
    }
    ip[csum_at..csum_at + 2].copy_from_slice(&tc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aaaa_answers_for_garden_suffixes_open_ipv6_addresses() {
        use hickory_proto::op::{Message as HMessage, MessageType, OpCode, Query};
        use hickory_proto::rr::{rdata, Name, RData, Record, RecordType};
        let mut i = Intercept::new(InterceptSettings {
            walled_suffixes: vec!["garden.test".into()],
            ..Default::default()
        });
        let name = Name::from_ascii("www.garden.test").unwrap();
        let ip: Ipv6Addr = "2001:db8:100::7".parse().unwrap();
        let mut m = HMessage::new(1, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::AAAA));
        m.add_answer(Record::from_rdata(name, 300, RData::AAAA(rdata::AAAA(ip))));
        let msg = crate::wire::dns::Message::parse(&m.to_vec().unwrap()).unwrap();
        let q = Question {
            name: "www.garden.test".into(),
            qtype: 28,
        };
        let (client, now) = (Ipv4Addr::new(10, 1, 0, 9), 1_000_000);
        assert!(!i.walled6(ip, now));
        i.learn_from_answer(&msg, &q, client, now);
        assert!(i.walled6(ip, now + 299_000));
        assert!(!i.walled6(ip, now + MIN_LEARNT_MS.max(300_000)));
        assert!(i.open(now).learnt.is_empty(), "the IPv4 list shows no IPv6");
        assert_eq!(i.open(now).learnt6, vec![ip]);
        // Not a garden name: nothing.
        let other = Question {
            name: "www.other.test".into(),
            qtype: 28,
        };
        i.expire(now + 400_000);
        i.learn_from_answer(&msg, &other, client, now + 400_000);
        assert!(!i.walled6(ip, now + 400_000));
    }

    #[test]
    fn refusals_are_limited_per_second_and_the_peek_agrees() {
        let mut i = Intercept::new(InterceptSettings::default());
        let now = 5_000;
        for _ in 0..REJECTS_PER_SECOND {
            assert!(i.rejects_left(now));
            assert!(i.may_reject(now));
        }
        assert!(!i.rejects_left(now + 999), "the window is used up");
        assert!(!i.may_reject(now + 999));
        assert!(i.rejects_left(now + 1000), "a new window");
        assert!(i.may_reject(now + 1000));
    }

    #[test]
    fn learnt_addresses_are_bounded_in_total_and_ttls_capped() {
        let mut i = Intercept::new(InterceptSettings::default());
        let now = 1_000_000;
        // 100 guests, 64 addresses each: 6400 asked, 4096 kept.
        for c in 0..100u32 {
            let client = Ipv4Addr::from(0x0a01_0000 + c);
            for n in 0..64u32 {
                let ip = Ipv4Addr::from(0xc000_0000 + c * 64 + n);
                i.learn(ip.into(), 86_400, client, now + u64::from(c));
            }
        }
        assert_eq!(i.learnt_count(), MAX_LEARNT);
        assert_eq!(i.learnt_by.values().sum::<usize>(), MAX_LEARNT);
        // The last guest's are there; a day's TTL lasts an hour.
        let last = Ipv4Addr::from(0xc000_0000 + 99 * 64);
        assert!(i.walled(last, now + MAX_LEARNT_MS));
        assert!(!i.walled(last, now + 100 + MAX_LEARNT_MS));
        i.expire(now + 200 + MAX_LEARNT_MS);
        assert_eq!(i.learnt_count(), 0);
        assert!(i.learnt_by.is_empty(), "per-guest counts go with them");
    }
}
