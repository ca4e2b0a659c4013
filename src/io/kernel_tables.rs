//! The kernel fast path's state in the kernel, programmed over netlink: for
//! each admitted session an element in three nftables sets (the LAN
//! ingress set that marks its frames for the kernel to forward, the
//! per-element counter of its upload and the set of its download in the
//! forward hook), an element in the map of the eBPF programs on the LAN
//! device's tc hooks ([`TcHooks`]: exact download counts, and shaping's
//! redirects), for a shaped session an HTB class per direction
//! ([`KernelShaper`]), a permanent neighbour entry and a host route toward
//! the LAN. The rules that use the sets are installed with the rest
//! of lassi's tables ([`super::firewall`]).
//!
//! The host routes live in a routing table of their own ([`route_table`]),
//! which one policy rule consults for forwarded packets only (`not iif
//! lo`): what the router itself sends a guest (the portal's answers, among
//! them those lassi rewrites for a connection it steered to the portal)
//! still goes through lassi's TUN device, as with the user-space path.
//!
//! The marking set is a verdict map, so the ingress chain does one lookup
//! per frame: a session's element goes to the chain that marks; one with a
//! connection still steered to the portal (`divert_http`) goes to a chain
//! that leaves its TCP to port 80 unmarked, so lassi goes on rewriting it.
//!
//! Order matters for exact accounting and no lost packet. Admission adds
//! the set elements in one nftables transaction, then the route: until the
//! route exists, replies still reach lassi through the TUN device and are
//! counted there. Revocation removes the route and the marking element
//! first (the client's packets go back to lassi), then reads the counters
//! one last time, then removes the counting elements.

use std::io;
use std::net::Ipv4Addr;

use super::kernel_shaper::KernelShaper;
use super::netlink::NLM_F_REQUEST;
use super::netlink::{self, Batch, Socket, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use super::tc_hooks::TcHooks;
use crate::wire::{Ipv4Net, MacAddr};

/// The mark bit the LAN ingress chain sets on an admitted session's frames:
/// lassi's IPv4 socket skips them and the forward chain lets them through.
pub const FAST_MARK: u32 = 0x0100_0000;
/// `rtm_protocol` of lassi's host routes (`ip route` shows `proto 177`),
/// so routes left by a crashed run are found and removed.
pub const ROUTE_PROTO: u8 = 177;
/// The verdict map of marked (address, hardware address) pairs, in the
/// netdev table.
pub const SET_FAST: &str = "fast4";
/// The netdev chain that marks a frame.
pub const CHAIN_MARK: &str = "fast_mark";
/// The netdev chain that marks a frame unless it is TCP to port 80.
pub const CHAIN_DIVERT: &str = "fast_divert";
/// The upload counters (by source address), in the inet table.
pub const SET_UP: &str = "up4";
/// The admitted destinations of downloads, in the inet table (counted at
/// the LAN egress by [`TcHooks`] or [`KernelShaper`]).
pub const SET_DOWN: &str = "down4";
/// Preference of the policy rule that sends forwarded packets to
/// [`route_table`] (before the main table's 32766).
pub const RULE_PRIORITY: u32 = 32_000;

/// The routing table of lassi's host routes for the LAN device `ifindex`
/// (`ip route show table <n>`): one per LAN, so two lassi instances on
/// two LANs keep theirs apart.
pub fn route_table(ifindex: i32) -> u32 {
    0x1a55_0000 + ifindex as u32
}

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NFPROTO_NETDEV: u8 = 5;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// `NFT_GOTO`.
const NFT_GOTO: i32 = -4;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
/// Elements per set message: a nested list must stay under 64 KiB.
const ELEMENTS_PER_MESSAGE: usize = 1_000;
/// Sessions per transaction: a send must fit the socket's buffer.
const SESSIONS_PER_BATCH: usize = 2_000;

/// A session as the kernel fast path programs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The client's address.
    pub ip: Ipv4Addr,
    /// Its hardware address.
    pub mac: MacAddr,
    /// Its TCP to port 80 stays with lassi.
    pub divert_http: bool,
    /// Upload rate, bit/s (shaped in the kernel).
    pub up_bps: Option<u64>,
    /// Download rate, bit/s.
    pub down_bps: Option<u64>,
}

/// Bytes and packets one counter saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// IP-layer bytes.
    pub bytes: u64,
    /// Packets: for downloads one per segment on the wire; for uploads a
    /// GRO super-packet counts once, as the kernel passes it.
    pub packets: u64,
}

/// Each admitted session's counters, sorted by address ([`Counts::get`]).
#[derive(Debug, Default)]
pub struct Counts(Vec<(Ipv4Addr, Totals)>);

impl Counts {
    /// The counters of `ip`, if it has elements.
    pub fn get(&self, ip: &Ipv4Addr) -> Option<&Totals> {
        let i = self.0.binary_search_by_key(ip, |(a, _)| *a).ok()?;
        Some(&self.0[i].1)
    }

    /// Add what one of `ip`'s download counters counted (the map's, or a
    /// shaping class's, which replaces it) and what it dropped.
    fn add_shaped(&mut self, ip: Ipv4Addr, down: Option<Count>, drops: u64) {
        if let Ok(i) = self.0.binary_search_by_key(&ip, |(a, _)| *a) {
            let t = &mut self.0[i].1;
            t.down = down.unwrap_or(t.down);
            t.shaped_drops += drops;
        }
    }

    /// Sessions counted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Both directions' reads, merged by address. Every admitted session
    /// has an upload element, so the uploads give the list.
    fn merge(mut up: Vec<(Ipv4Addr, Count)>, down: Vec<(Ipv4Addr, Count)>) -> Counts {
        up.sort_unstable_by_key(|(a, _)| *a);
        let all = up.into_iter().map(|(ip, up)| {
            (
                ip,
                Totals {
                    up,
                    ..Totals::default()
                },
            )
        });
        let mut counts = Counts(all.collect());
        for (ip, d) in down {
            counts.add_shaped(ip, Some(d), 0);
        }
        counts
    }
}

/// Both directions of one session, as its elements counted them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// From the client.
    pub up: Count,
    /// To the client.
    pub down: Count,
    /// Packets its kernel shaper dropped, both ways.
    pub shaped_drops: u64,
}

/// The key of the marking set: address, then the hardware address padded
/// to 4-byte alignment, as nftables lays out a concatenation.
fn fast_key(ip: Ipv4Addr, mac: MacAddr) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&ip.octets());
    k[4..10].copy_from_slice(&mac.0);
    k
}

/// nfgenmsg: family, version 0, resource id (big-endian).
fn nfgen(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

/// The set keys of a batch of sessions.
struct Keys {
    ips: Vec<[u8; 4]>,
    fast: Vec<[u8; 12]>,
    /// The chain each marking element goes to.
    chains: Vec<&'static str>,
}

impl Keys {
    fn of(sessions: &[Admission]) -> Keys {
        Keys {
            ips: sessions.iter().map(|a| a.ip.octets()).collect(),
            fast: sessions.iter().map(|a| fast_key(a.ip, a.mac)).collect(),
            chains: (sessions.iter())
                .map(|a| {
                    if a.divert_http {
                        CHAIN_DIVERT
                    } else {
                        CHAIN_MARK
                    }
                })
                .collect(),
        }
    }

    fn ips(&self) -> Vec<&[u8]> {
        self.ips.iter().map(|k| &k[..]).collect()
    }

    fn fast(&self) -> Vec<&[u8]> {
        self.fast.iter().map(|k| &k[..]).collect()
    }
}

/// Build the messages of one nftables transaction.
struct NftTxn<'a> {
    sock: &'a mut Socket,
    batch: Batch,
}

impl<'a> NftTxn<'a> {
    fn new(sock: &'a mut Socket) -> NftTxn<'a> {
        let mut batch = Batch::default();
        let seq = sock.next_seq();
        let hdr = nfgen(libc::AF_UNSPEC as u8, NFNL_SUBSYS_NFTABLES);
        batch.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, &hdr);
        NftTxn { sock, batch }
    }

    /// Add (`add`) or delete elements with `keys` in set `set` of table
    /// `table` of `family`; added to a verdict map, each goes to its chain
    /// in `gotos`.
    fn elements(
        &mut self,
        add: bool,
        family: u8,
        table: &str,
        set: &str,
        keys: &[&[u8]],
        gotos: Option<&[&str]>,
    ) {
        for (n, chunk) in keys.chunks(ELEMENTS_PER_MESSAGE).enumerate() {
            let (ty, flags) = if add {
                (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK)
            } else {
                (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
            };
            let seq = self.sock.next_seq();
            let b = &mut self.batch;
            b.message(
                NFNL_SUBSYS_NFTABLES << 8 | ty,
                flags,
                seq,
                &nfgen(family, 0),
            );
            b.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
            b.attr_str(NFTA_SET_ELEM_LIST_SET, set);
            let list = b.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            for (i, key) in chunk.iter().enumerate() {
                let elem = b.nest(NFTA_LIST_ELEM);
                let k = b.nest(NFTA_SET_ELEM_KEY);
                b.attr(NFTA_DATA_VALUE, key);
                b.end_nest(k);
                if let Some(chain) = gotos
                    .filter(|_| add)
                    .map(|g| g[n * ELEMENTS_PER_MESSAGE + i])
                {
                    goto_data(b, chain);
                }
                b.end_nest(elem);
            }
            b.end_nest(list);
        }
    }

    fn commit(mut self) -> io::Result<()> {
        let seq = self.sock.next_seq();
        let hdr = nfgen(libc::AF_UNSPEC as u8, NFNL_SUBSYS_NFTABLES);
        self.batch
            .message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, &hdr);
        self.sock.execute(&mut self.batch)
    }
}

/// A verdict map element's data: go to `chain`.
fn goto_data(b: &mut Batch, chain: &str) {
    let data = b.nest(NFTA_SET_ELEM_DATA);
    let verdict = b.nest(NFTA_DATA_VERDICT);
    b.attr(NFTA_VERDICT_CODE, &NFT_GOTO.to_be_bytes());
    b.attr_str(NFTA_VERDICT_CHAIN, chain);
    b.end_nest(verdict);
    b.end_nest(data);
}

/// The counter in one dumped set element, by its key.
fn element_count(elem: &[u8]) -> Option<(&[u8], Count)> {
    let key = netlink::attr(netlink::attr(elem, NFTA_SET_ELEM_KEY)?, NFTA_DATA_VALUE)?;
    let counter_of = |expr: &[u8]| {
        if netlink::attr(expr, NFTA_EXPR_NAME)? != b"counter\0" {
            return None;
        }
        let data = netlink::attr(expr, NFTA_EXPR_DATA)?;
        let u64_of = |ty| {
            let b = netlink::attr(data, ty)?;
            Some(u64::from_be_bytes(b.try_into().ok()?))
        };
        Some(Count {
            bytes: u64_of(NFTA_COUNTER_BYTES)?,
            packets: u64_of(NFTA_COUNTER_PACKETS)?,
        })
    };
    let count = match netlink::attr(elem, NFTA_SET_ELEM_EXPR) {
        Some(expr) => counter_of(expr),
        None => netlink::attrs(netlink::attr(elem, NFTA_SET_ELEM_EXPRESSIONS)?)
            .filter(|(t, _)| *t == NFTA_LIST_ELEM)
            .find_map(|(_, e)| counter_of(e)),
    }?;
    Some((key, count))
}

/// The counters in one message of a set-element dump, keyed by address
/// (elements whose key is not one are skipped).
fn dumped_counts(payload: &[u8], into: &mut Vec<(Ipv4Addr, Count)>) {
    let Some(body) = payload.get(4..) else {
        return;
    };
    let Some(list) = netlink::attr(body, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return;
    };
    for (_, elem) in netlink::attrs(list).filter(|(t, _)| *t == NFTA_LIST_ELEM) {
        if let Some((key, count)) = element_count(elem) {
            if let Ok(octets) = <[u8; 4]>::try_from(key) {
                into.push((Ipv4Addr::from(octets), count));
            }
        }
    }
}

/// lassi's sets, neighbours and routes in the kernel.
pub struct KernelTables {
    nft: Socket,
    route: Socket,
    /// lassi's table name (the same in the netdev and inet families).
    table: String,
    /// The LAN device.
    ifindex: i32,
    /// The eBPF programs on the LAN device (declared before the shaper:
    /// dropped first, they stop redirecting before its devices go).
    hooks: TcHooks,
    /// The shaped sessions' classes.
    shaper: KernelShaper,
}

impl KernelTables {
    /// Connect to the kernel for table `table` and the LAN device
    /// `ifindex`, and remove host routes a previous run left there.
    pub fn open(table: &str, ifindex: i32, guests: Ipv4Net) -> io::Result<KernelTables> {
        let shaper = KernelShaper::open(ifindex, guests)?;
        let mut t = KernelTables {
            nft: Socket::open(libc::NETLINK_NETFILTER)?,
            route: Socket::open(libc::NETLINK_ROUTE)?,
            table: table.to_owned(),
            ifindex,
            hooks: TcHooks::open(
                ifindex,
                guests,
                FAST_MARK,
                shaper.up.ifindex,
                shaper.down.ifindex,
            )?,
            shaper,
        };
        t.remove_stale_routes()?;
        t.policy_rule(false)?;
        t.policy_rule(true)?;
        Ok(t)
    }

    /// Add (or remove) the rule `not iif lo lookup <table>`. Removing takes
    /// out every copy a crashed run may have left.
    fn policy_rule(&mut self, add: bool) -> io::Result<()> {
        const FRA_IIFNAME: u16 = 3;
        const FRA_PRIORITY: u16 = 6;
        const FRA_TABLE: u16 = 15;
        const FR_ACT_TO_TBL: u8 = 1;
        const FIB_RULE_INVERT: u32 = 2;
        // Removing stops at the first "no such rule"; a bound, not a loop.
        for _ in 0..if add { 1 } else { 16 } {
            let mut hdr = [0u8; 12];
            hdr[0] = libc::AF_INET as u8;
            hdr[7] = FR_ACT_TO_TBL;
            hdr[8..12].copy_from_slice(&FIB_RULE_INVERT.to_ne_bytes());
            let (ty, flags) = if add {
                (libc::RTM_NEWRULE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
            } else {
                (libc::RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK)
            };
            let mut b = Batch::default();
            let seq = self.route.next_seq();
            b.message(ty, flags, seq, &hdr);
            b.attr_str(FRA_IIFNAME, "lo");
            b.attr(FRA_PRIORITY, &RULE_PRIORITY.to_ne_bytes());
            b.attr(FRA_TABLE, &route_table(self.ifindex).to_ne_bytes());
            match self.route.execute(&mut b) {
                Err(e) if !add && matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {
                    return Ok(())
                }
                r => r?,
            }
        }
        Ok(())
    }

    /// Hand `sessions` to the kernel: counting and marking elements in one
    /// transaction, then neighbours and routes.
    pub fn admit(&mut self, sessions: &[Admission]) -> io::Result<()> {
        for chunk in sessions.chunks(SESSIONS_PER_BATCH) {
            let keys = Keys::of(chunk);
            let table = self.table.clone();
            let mut txn = NftTxn::new(&mut self.nft);
            txn.elements(true, NFPROTO_INET, &table, SET_UP, &keys.ips(), None);
            txn.elements(true, NFPROTO_INET, &table, SET_DOWN, &keys.ips(), None);
            let gotos = Some(&keys.chains[..]);
            txn.elements(true, NFPROTO_NETDEV, &table, SET_FAST, &keys.fast(), gotos);
            txn.commit()?;
            for a in chunk {
                let (up, down) = self.shaper.add(a.ip, a.up_bps, a.down_bps)?;
                self.hooks.admit(a.ip, a.mac, up, down)?;
            }
            self.routes(true, chunk)?;
        }
        Ok(())
    }

    /// Take `sessions` back from the kernel; their counters' last values.
    pub fn revoke(&mut self, sessions: &[Admission]) -> io::Result<Vec<(Ipv4Addr, Totals)>> {
        let mut last = Vec::with_capacity(sessions.len());
        for chunk in sessions.chunks(SESSIONS_PER_BATCH) {
            self.routes(false, chunk)?;
            let keys = Keys::of(chunk);
            let table = self.table.clone();
            let mut txn = NftTxn::new(&mut self.nft);
            txn.elements(false, NFPROTO_NETDEV, &table, SET_FAST, &keys.fast(), None);
            txn.commit()?;
            let all = self.counters()?;
            for a in chunk {
                last.push((a.ip, all.get(&a.ip).copied().unwrap_or_default()));
            }
            let mut txn = NftTxn::new(&mut self.nft);
            txn.elements(false, NFPROTO_INET, &table, SET_UP, &keys.ips(), None);
            txn.elements(false, NFPROTO_INET, &table, SET_DOWN, &keys.ips(), None);
            txn.commit()?;
            for a in chunk {
                self.hooks.forget(a.ip)?;
                self.shaper.remove(a.ip)?;
            }
        }
        Ok(last)
    }

    /// Every admitted session's counters now.
    pub fn counters(&mut self) -> io::Result<Counts> {
        let up = self.dump_set(SET_UP)?;
        // Every session has a map element; a shaped one's download is its
        // class's instead (the element counts none of it).
        let mut counts = Counts::merge(up, self.hooks.counts()?);
        for s in self.shaper.counts()? {
            counts.add_shaped(s.ip, s.down, s.drops);
        }
        Ok(counts)
    }

    fn dump_set(&mut self, set: &str) -> io::Result<Vec<(Ipv4Addr, Count)>> {
        let seq = self.nft.next_seq();
        let mut b = Batch::default();
        let ty = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETSETELEM;
        b.message(ty, NLM_F_REQUEST | NLM_F_DUMP, seq, &nfgen(NFPROTO_INET, 0));
        b.attr_str(NFTA_SET_ELEM_LIST_TABLE, &self.table);
        b.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        let mut out = Vec::new();
        self.nft
            .dump(&mut b, seq, |r| dumped_counts(r.payload, &mut out))?;
        Ok(out)
    }

    /// Add or remove the neighbour entries and host routes of `sessions`.
    /// Removing what is already gone is not an error.
    fn routes(&mut self, add: bool, sessions: &[Admission]) -> io::Result<()> {
        let mut b = Batch::default();
        let table = route_table(self.ifindex).to_ne_bytes();
        for &Admission { ip, mac, .. } in sessions {
            let seq = self.route.next_seq();
            if add {
                let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
                b.message(libc::RTM_NEWNEIGH, flags, seq, &self.ndmsg());
                b.attr(libc::NDA_DST, &ip.octets());
                b.attr(libc::NDA_LLADDR, &mac.0);
                let seq = self.route.next_seq();
                b.message(libc::RTM_NEWROUTE, flags, seq, &rtmsg(libc::RT_SCOPE_LINK));
                b.attr(libc::RTA_DST, &ip.octets());
                b.attr(libc::RTA_OIF, &(self.ifindex as u32).to_ne_bytes());
                b.attr(libc::RTA_TABLE, &table);
            } else {
                let flags = NLM_F_REQUEST | NLM_F_ACK;
                b.message(
                    libc::RTM_DELROUTE,
                    flags,
                    seq,
                    &rtmsg(libc::RT_SCOPE_NOWHERE),
                );
                b.attr(libc::RTA_DST, &ip.octets());
                b.attr(libc::RTA_OIF, &(self.ifindex as u32).to_ne_bytes());
                b.attr(libc::RTA_TABLE, &table);
                let seq = self.route.next_seq();
                b.message(libc::RTM_DELNEIGH, flags, seq, &self.ndmsg());
                b.attr(libc::NDA_DST, &ip.octets());
            }
        }
        match self.route.execute(&mut b) {
            Err(e) if !add && matches!(e.raw_os_error(), Some(libc::ESRCH | libc::ENOENT)) => {
                Ok(())
            }
            r => r,
        }
    }

    /// ndmsg: IPv4, the LAN device, permanent.
    fn ndmsg(&self) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[0] = libc::AF_INET as u8;
        h[4..8].copy_from_slice(&self.ifindex.to_ne_bytes());
        h[8..10].copy_from_slice(&libc::NUD_PERMANENT.to_ne_bytes());
        h
    }

    /// Remove the host routes with lassi's protocol on the LAN device.
    fn remove_stale_routes(&mut self) -> io::Result<()> {
        let seq = self.route.next_seq();
        let mut b = Batch::default();
        b.message(
            libc::RTM_GETROUTE,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            &[0u8; 12],
        );
        let mut stale = Vec::new();
        let ifindex = (self.ifindex as u32).to_ne_bytes();
        let table = route_table(self.ifindex).to_ne_bytes();
        self.route.dump(&mut b, seq, |r| {
            let p = r.payload;
            if p.len() < 12 || p[0] != libc::AF_INET as u8 || p[1] != 32 || p[5] != ROUTE_PROTO {
                return;
            }
            let attrs = &p[12..];
            if netlink::attr(attrs, libc::RTA_OIF) != Some(&ifindex[..])
                || netlink::attr(attrs, libc::RTA_TABLE) != Some(&table[..])
            {
                return;
            }
            if let Some(Ok(dst)) = netlink::attr(attrs, libc::RTA_DST).map(<[u8; 4]>::try_from) {
                stale.push(Admission {
                    ip: Ipv4Addr::from(dst),
                    mac: MacAddr([0; 6]),
                    divert_http: false,
                    up_bps: None,
                    down_bps: None,
                });
            }
        })?;
        self.routes(false, &stale)
    }
}

impl Drop for KernelTables {
    /// The policy rule goes with lassi (routes go as sessions are revoked).
    fn drop(&mut self) {
        if let Err(e) = self.policy_rule(false) {
            cleanup_failed("the kernel fast path's policy rule", &e);
        }
    }
}

/// Log what could not be removed at exit (one copy of the logging code
/// for every part of the kernel fast path).
pub(super) fn cleanup_failed(what: &str, e: &io::Error) {
    tracing::error!("removing {what}: {e}");
}

/// rtmsg: an IPv4 host route, lassi's protocol (the table is an attribute).
fn rtmsg(scope: u8) -> [u8; 12] {
    [
        libc::AF_INET as u8,
        32,
        0,
        0,
        libc::RT_TABLE_UNSPEC,
        ROUTE_PROTO,
        scope,
        libc::RTN_UNICAST,
        0,
        0,
        0,
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(b: &mut Batch, ty: u16, f: impl FnOnce(&mut Batch)) {
        let at = b.nest(ty);
        f(b);
        b.end_nest(at);
    }

    /// A dump message as the kernel writes one: elements with a counter as
    /// a single expression (Linux up to 5.x with one statement) or in a list.
    fn dump_message(elems: &[([u8; 4], u64, u64, bool)]) -> Vec<u8> {
        let mut b = Batch::default();
        b.message(
            NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM,
            0,
            1,
            &nfgen(1, 0),
        );
        b.attr_str(NFTA_SET_ELEM_LIST_TABLE, "lassi-lan0");
        nested(&mut b, NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
            for &(ip, bytes, packets, listed) in elems {
                nested(b, NFTA_LIST_ELEM, |b| {
                    nested(b, NFTA_SET_ELEM_KEY, |b| b.attr(NFTA_DATA_VALUE, &ip));
                    let counter = |b: &mut Batch| {
                        b.attr_str(NFTA_EXPR_NAME, "counter");
                        nested(b, NFTA_EXPR_DATA, |b| {
                            b.attr(NFTA_COUNTER_BYTES, &bytes.to_be_bytes());
                            b.attr(NFTA_COUNTER_PACKETS, &packets.to_be_bytes());
                        });
                    };
                    if listed {
                        nested(b, NFTA_SET_ELEM_EXPRESSIONS, |b| {
                            nested(b, NFTA_LIST_ELEM, counter)
                        });
                    } else {
                        nested(b, NFTA_SET_ELEM_EXPR, counter);
                    }
                });
            }
        });
        b.bytes().to_vec()
    }

    #[test]
    fn counters_are_read_from_both_expression_layouts() {
        let msg = dump_message(&[
            ([10, 1, 0, 23], 1_234_567_890_123, 99, false),
            ([10, 1, 0, 24], 5, 1, true),
        ]);
        let mut up = Vec::new();
        for r in netlink::replies(&msg) {
            dumped_counts(r.payload, &mut up);
        }
        let down = vec![(
            Ipv4Addr::new(10, 1, 0, 24),
            Count {
                bytes: 9,
                packets: 2,
            },
        )];
        let out = Counts::merge(up, down);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out.get(&Ipv4Addr::new(10, 1, 0, 23)).unwrap().up,
            Count {
                bytes: 1_234_567_890_123,
                packets: 99
            }
        );
        let both = out.get(&Ipv4Addr::new(10, 1, 0, 24)).unwrap();
        assert_eq!(
            both.up,
            Count {
                bytes: 5,
                packets: 1
            }
        );
        assert_eq!(
            both.down,
            Count {
                bytes: 9,
                packets: 2
            }
        );
        let only_up = out.get(&Ipv4Addr::new(10, 1, 0, 23)).unwrap();
        assert_eq!(only_up.down, Count::default());
        assert!(out.get(&Ipv4Addr::new(10, 1, 0, 25)).is_none());
    }

    #[test]
    fn a_mangled_dump_yields_nothing_rather_than_garbage() {
        let msg = dump_message(&[([10, 1, 0, 23], 7, 1, false)]);
        for cut in 0..msg.len() {
            let mut out = Vec::new();
            let mut m = msg[..cut].to_vec();
            if m.len() >= 4 {
                m[0..4].copy_from_slice(&(cut as u32).to_ne_bytes());
            }
            for r in netlink::replies(&m) {
                dumped_counts(r.payload, &mut out);
            }
            // Either the whole element with its true counts, or nothing.
            for (ip, c) in out {
                assert_eq!(ip, Ipv4Addr::new(10, 1, 0, 23));
                assert_eq!(
                    c,
                    Count {
                        bytes: 7,
                        packets: 1
                    }
                );
            }
        }
    }

    #[test]
    fn a_marking_element_goes_to_its_chain_and_a_deletion_carries_only_keys() {
        let key = fast_key(Ipv4Addr::new(10, 1, 0, 23), MacAddr([2, 0, 0, 0, 0, 0x17]));
        // The socket only numbers the messages: nothing is sent.
        let sock = &mut Socket::open(libc::NETLINK_ROUTE).expect("a netlink socket");
        for add in [true, false] {
            let mut txn = NftTxn::new(sock);
            let gotos = [CHAIN_DIVERT];
            txn.elements(add, NFPROTO_NETDEV, "t", SET_FAST, &[&key], Some(&gotos));
            let bytes = txn.batch.bytes().to_vec();
            let msg = netlink::replies(&bytes).nth(1).unwrap();
            let list = netlink::attr(&msg.payload[4..], NFTA_SET_ELEM_LIST_ELEMENTS).unwrap();
            let elem = netlink::attr(list, NFTA_LIST_ELEM).unwrap();
            let k = netlink::attr(
                netlink::attr(elem, NFTA_SET_ELEM_KEY).unwrap(),
                NFTA_DATA_VALUE,
            );
            assert_eq!(k, Some(&key[..]));
            let data = netlink::attr(elem, NFTA_SET_ELEM_DATA);
            assert_eq!(data.is_some(), add);
            if let Some(data) = data {
                let v = netlink::attr(data, NFTA_DATA_VERDICT).unwrap();
                assert_eq!(
                    netlink::attr(v, NFTA_VERDICT_CODE),
                    Some(&[0xff, 0xff, 0xff, 0xfc][..])
                );
                assert_eq!(
                    netlink::attr(v, NFTA_VERDICT_CHAIN),
                    Some(&b"fast_divert\0"[..])
                );
            }
        }
    }

    #[test]
    fn the_marking_key_is_laid_out_as_an_nftables_concatenation() {
        let k = fast_key(Ipv4Addr::new(10, 1, 0, 23), MacAddr([2, 0, 0, 0, 0, 0x17]));
        assert_eq!(k, [10, 1, 0, 23, 2, 0, 0, 0, 0, 0x17, 0, 0]);
    }
}
