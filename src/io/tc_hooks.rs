//! The kernel fast path's two eBPF programs on the LAN device's tc hooks
//! (`clsact`), over one map of admitted sessions keyed by IPv4 address:
//!
//! - **Egress** (packets to guests): a forwarded IPv4 packet to a session
//!   is counted in the session's element, or, for a shaped session, given
//!   its download class and redirected (the filter's `mirred` action) into
//!   the download shaping device ([`super::kernel_shaper`]), whose class
//!   counts it as it lets it go.
//! - **Ingress** (frames from guests): a frame of a shaped session that
//!   the nftables ingress chain would mark for the kernel (from the
//!   session's own MAC, untagged, to lassi's MAC alone, to somewhere off
//!   the guest network) is marked here, given its upload class and
//!   redirected into the upload shaping device, which hands it back to the
//!   LAN device's receive path as the class lets it go. It must be marked
//!   here: a frame coming back from that device skips the ingress hooks,
//!   tc's and nftables' alike. A frame that only claims a session's
//!   address is left alone: it cannot use up another guest's rate. (A
//!   shaped session with a connection still steered to the portal stays on
//!   lassi's path until that ends: see `kernel_path`.)
//!
//! Why count downloads here rather than with an nftables counter, as
//! uploads are: a GSO super-packet (what a TCP sender or GRO hands the
//! forward path) passes nftables once, with one set of headers, though the
//! wire carries it as several packets, each with its own. At tc egress the
//! kernel has already worked out both: the number of segments (`gso_segs`)
//! and the length on the wire with every segment's headers (`wire_len`).
//! The program counts `wire_len` less one Ethernet header per segment: the
//! IP-layer bytes the client receives, exactly, and one packet per segment.
//!
//! Only forwarded packets count (`ingress_ifindex` set): what the router
//! itself sends, lassi's own frames among them, is not traffic of the
//! kernel path. Addresses not in the map (sessions on lassi's own path)
//! pass untouched. Neither program ever drops.

use std::io;
use std::net::Ipv4Addr;

use super::bpf::Imm::{Param, K};
use super::bpf::Label;
use super::bpf::Step::{self, At, Jump, LoadMap, I};
use super::bpf::{self, op, Program, SessionMap, Value, R0, R1, R10, R2, R3, R4, R5, R6};
use super::kernel_shaper::{TCA_KIND, TCA_OPTIONS};
use super::kernel_tables::Count;
use super::netlink::{
    Batch, Socket, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST,
};
use crate::wire::{Ipv4Net, MacAddr};

/// Most sessions the map holds (a /16 of guests).
const MAX_SESSIONS: u32 = 1 << 16;
/// The tc filters' priority on both hooks (a fixed one, so a crashed run's
/// filters are replaced, not doubled).
pub const FILTER_PRIORITY: u16 = 0x1a55;
/// The filters' names (`tc filter show dev <lan> egress|ingress`).
pub const EGRESS_NAME: &str = "lassi-download";
/// See [`EGRESS_NAME`].
pub const INGRESS_NAME: &str = "lassi-upload";
/// Length of the Ethernet header counted once per segment in `wire_len`.
const ETH_HLEN: i32 = 14;

/// Offsets in `struct __sk_buff` (uapi, stable).
mod skb {
    pub const PKT_TYPE: i16 = 4;
    pub const MARK: i16 = 8;
    pub const PROTOCOL: i16 = 16;
    pub const VLAN_PRESENT: i16 = 20;
    pub const PRIORITY: i16 = 32;
    pub const INGRESS_IFINDEX: i16 = 36;
    pub const DATA: i16 = 76;
    pub const DATA_END: i16 = 80;
    pub const WIRE_LEN: i16 = 160;
    pub const GSO_SEGS: i16 = 164;
    pub const GSO_SIZE: i16 = 176;
}

/// A session's value in the map.
mod value {
    /// Downloaded IP bytes (u64, added by the egress program).
    pub const BYTES: i16 = 0;
    /// Downloaded packets (u64).
    pub const PACKETS: i16 = 8;
    /// Download class (u32; 0: not shaped).
    pub const DOWN_CLASS: i16 = 16;
    /// Upload class (u32; 0: not shaped).
    pub const UP_CLASS: i16 = 20;
    /// The session's MAC (6 bytes).
    pub const MAC: i16 = 24;
}

/// `bpf_map_lookup_elem`.
const HELPER_MAP_LOOKUP: i32 = 1;
/// Where a frame's IPv4 source and destination addresses are.
const SADDR_AT: i16 = 14 + 12;
const DADDR_AT: i16 = 14 + 16;
/// What a non-direct-action classifier returns: no match, or a match with
/// the filter's class (its action, the redirect, runs).
const NO_MATCH: i32 = 0;
const MATCH: i32 = -1;

/// The programs' jump targets.
const NO_MATCH_AT: Label = Label(0);
const CLASSIFY_AT: Label = Label(1);
const COUNT_AT: Label = Label(2);

/// ETH_P_IP as `skb->protocol` reads: network order, loaded as a number.
const IPV4_PROTOCOL: i32 = 0x0800u16.to_be() as i32;

/// The start both programs share: IPv4 with a whole header, else no
/// match; then the session's value for the address at `addr_at` in r0
/// (no match if none). r6 holds the context throughout.
const fn lookup_session(addr_at: i16) -> [Step; 14] {
    [
        I(op::LDX_W, R0, R6, skb::PROTOCOL, K(0)),
        Jump(op::JNE_K, R0, 0, K(IPV4_PROTOCOL), NO_MATCH_AT),
        I(op::LDX_W, R2, R6, skb::DATA, K(0)),
        I(op::LDX_W, R3, R6, skb::DATA_END, K(0)),
        I(op::MOV_X, R4, R2, 0, K(0)),
        I(op::ADD_K, R4, 0, 0, K(DADDR_AT as i32 + 4)),
        Jump(op::JGT_X, R4, R3, K(0), NO_MATCH_AT),
        I(op::LDX_W, R5, R2, addr_at, K(0)),
        I(op::STX_W, R10, R5, -4, K(0)),
        LoadMap(R1),
        I(op::MOV_X, R2, R10, 0, K(0)),
        I(op::ADD_K, R2, 0, 0, K(-4)),
        I(op::CALL, 0, 0, 0, K(HELPER_MAP_LOOKUP)),
        Jump(op::JEQ_K, R0, 0, K(0), NO_MATCH_AT),
    ]
}

/// Give the packet class r1 and match (the filter redirects it); the
/// no-match exit.
const CLASSIFY_OR_NOT: &[Step] = &[
    I(op::STX_W, R6, R1, skb::PRIORITY, K(0)),
    I(op::MOV_K, R0, 0, 0, K(MATCH)),
    I(op::EXIT, 0, 0, 0, K(0)),
    At(NO_MATCH_AT),
    I(op::MOV_K, R0, 0, 0, K(NO_MATCH)),
    I(op::EXIT, 0, 0, 0, K(0)),
];

/// The egress program's start: forwarded packets only, and not those
/// coming back shaped from the device `Param(0)`.
const EGRESS_START: &[Step] = &[
    I(op::MOV_X, R6, R1, 0, K(0)),
    I(op::LDX_W, R0, R6, skb::INGRESS_IFINDEX, K(0)),
    Jump(op::JEQ_K, R0, 0, K(0), NO_MATCH_AT),
    Jump(op::JEQ_K, R0, 0, Param(0), NO_MATCH_AT),
];

/// The egress program after the lookup: a shaped session's class counts
/// it; otherwise it is counted here.
const EGRESS_COUNT: &[Step] = &[
    I(op::LDX_W, R1, R0, value::DOWN_CLASS, K(0)),
    Jump(op::JNE_K, R1, 0, K(0), CLASSIFY_AT),
    // Segments: gso_segs for a GSO packet, else one.
    I(op::MOV_K, R1, 0, 0, K(1)),
    I(op::LDX_W, R2, R6, skb::GSO_SIZE, K(0)),
    Jump(op::JEQ_K, R2, 0, K(0), COUNT_AT),
    I(op::LDX_W, R1, R6, skb::GSO_SEGS, K(0)),
    At(COUNT_AT),
    // IP bytes: the wire length less an Ethernet header per segment.
    I(op::LDX_W, R2, R6, skb::WIRE_LEN, K(0)),
    I(op::MOV_X, R3, R1, 0, K(0)),
    I(op::MUL_K, R3, 0, 0, K(ETH_HLEN)),
    I(op::SUB_X, R2, R3, 0, K(0)),
    I(op::ATOMIC_ADD_DW, R0, R2, value::BYTES, K(0)),
    I(op::ATOMIC_ADD_DW, R0, R1, value::PACKETS, K(0)),
    I(op::MOV_K, R0, 0, 0, K(NO_MATCH)),
    I(op::EXIT, 0, 0, 0, K(0)),
    At(CLASSIFY_AT),
];

/// The egress program. `shaper` is the download shaping device, whose
/// packets come back through this hook once shaped and pass.
pub fn egress_program(map: &SessionMap, shaper: i32) -> Vec<u64> {
    const LOOKUP: [Step; 14] = lookup_session(DADDR_AT);
    bpf::assemble(
        &[EGRESS_START, &LOOKUP, EGRESS_COUNT, CLASSIFY_OR_NOT],
        &[shaper],
        map.fd(),
    )
}

/// A 4-byte field as the programs load it (the bytes in memory order).
fn as_loaded(octets: [u8; 4]) -> i32 {
    i32::from_ne_bytes(octets)
}

/// The ingress program's start: untagged, to lassi's MAC alone
/// (PACKET_HOST).
const INGRESS_START: &[Step] = &[
    I(op::MOV_X, R6, R1, 0, K(0)),
    I(op::LDX_W, R0, R6, skb::VLAN_PRESENT, K(0)),
    Jump(op::JNE_K, R0, 0, K(0), NO_MATCH_AT),
    I(op::LDX_W, R0, R6, skb::PKT_TYPE, K(0)),
    Jump(op::JNE_K, R0, 0, K(libc::PACKET_HOST as i32), NO_MATCH_AT),
];

/// The ingress program after the lookup: a shaped session, from its own
/// MAC, off the guest network (`Param(0)` mask, `Param(1)` network), gets
/// the mark `Param(2)`.
const INGRESS_CHECK: &[Step] = &[
    I(op::LDX_W, R1, R0, value::UP_CLASS, K(0)),
    Jump(op::JEQ_K, R1, 0, K(0), NO_MATCH_AT),
    // The call clobbered the packet pointers: load and check again.
    I(op::LDX_W, R2, R6, skb::DATA, K(0)),
    I(op::LDX_W, R3, R6, skb::DATA_END, K(0)),
    I(op::MOV_X, R4, R2, 0, K(0)),
    I(op::ADD_K, R4, 0, 0, K(DADDR_AT as i32 + 4)),
    Jump(op::JGT_X, R4, R3, K(0), NO_MATCH_AT),
    I(op::LDX_W, R4, R2, 6, K(0)),
    I(op::LDX_W, R5, R0, value::MAC, K(0)),
    Jump(op::JNE_X, R4, R5, K(0), NO_MATCH_AT),
    I(op::LDX_H, R4, R2, 10, K(0)),
    I(op::LDX_H, R5, R0, value::MAC + 4, K(0)),
    Jump(op::JNE_X, R4, R5, K(0), NO_MATCH_AT),
    // Not to the guest network (32-bit operations: no sign extension).
    I(op::LDX_W, R4, R2, DADDR_AT, K(0)),
    I(op::AND32_K, R4, 0, 0, Param(0)),
    I(op::MOV32_K, R5, 0, 0, Param(1)),
    Jump(op::JEQ_X, R4, R5, K(0), NO_MATCH_AT),
    // Marked as the nftables ingress chain would have.
    I(op::LDX_W, R4, R6, skb::MARK, K(0)),
    I(op::OR_K, R4, 0, 0, Param(2)),
    I(op::STX_W, R6, R4, skb::MARK, K(0)),
];

/// The ingress program: shaped sessions' frames from their own MAC, off
/// the guest network `guests`, marked with `mark`.
pub fn ingress_program(map: &SessionMap, guests: Ipv4Net, mark: u32) -> Vec<u64> {
    const LOOKUP: [Step; 14] = lookup_session(SADDR_AT);
    let params = [
        as_loaded(guests.netmask().octets()),
        as_loaded(guests.addr.octets()),
        mark as i32,
    ];
    bpf::assemble(
        &[INGRESS_START, &LOOKUP, INGRESS_CHECK, CLASSIFY_OR_NOT],
        &params,
        map.fd(),
    )
}

/// A session's value: its classes and MAC, counters from zero.
pub fn session_value(mac: MacAddr, up_class: u32, down_class: u32) -> Value {
    let mut v = [0u8; bpf::VALUE_SIZE];
    let at = |o: i16| o as usize;
    v[at(value::DOWN_CLASS)..at(value::DOWN_CLASS) + 4].copy_from_slice(&down_class.to_ne_bytes());
    v[at(value::UP_CLASS)..at(value::UP_CLASS) + 4].copy_from_slice(&up_class.to_ne_bytes());
    v[at(value::MAC)..at(value::MAC) + 6].copy_from_slice(&mac.0);
    v
}

/// What the egress program counted in a value.
fn counted(v: &Value) -> Count {
    let u64_at = |o: i16| u64::from_ne_bytes(v[o as usize..o as usize + 8].try_into().unwrap());
    Count {
        bytes: u64_at(value::BYTES),
        packets: u64_at(value::PACKETS),
    }
}

/// The map, the loaded programs and their filters on the LAN device.
pub struct TcHooks {
    map: SessionMap,
    /// Kept open while the filters use them.
    _programs: [Program; 2],
    route: Socket,
    ifindex: i32,
}

/// `TC_H_CLSACT`: the handle of a `clsact` qdisc's parent.
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// The `clsact` qdisc's own handle.
const CLSACT_HANDLE: u32 = 0xffff_0000;
/// The ingress hook of `clsact`.
const PARENT_INGRESS: u32 = 0xffff_fff2;
/// The egress hook of `clsact`.
const PARENT_EGRESS: u32 = 0xffff_fff3;
const TCA_BPF_ACT: u16 = 1;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_ACT_KIND: u16 = 1;
const TCA_ACT_OPTIONS: u16 = 2;
const TCA_MIRRED_PARMS: u16 = 2;
const TC_ACT_STOLEN: i32 = 4;
const TCA_EGRESS_REDIR: i32 = 1;
const NLM_F_EXCL: u16 = 0x200;

impl TcHooks {
    /// Load both programs and attach them to LAN device `ifindex`
    /// (replacing the filters a crashed run left), redirecting shaped
    /// sessions to the devices `up` and `down`.
    pub fn open(
        ifindex: i32,
        guests: Ipv4Net,
        mark: u32,
        up: i32,
        down: i32,
    ) -> io::Result<TcHooks> {
        let map = SessionMap::create(MAX_SESSIONS)
            .map_err(|e| context(concat!("eBPF on the LAN device: ", "map"), e))?;
        let load = |code: Vec<u64>, what| {
            Program::load(bpf::PROG_TYPE_SCHED_CLS, &code).map_err(|e| context(what, e))
        };
        let egress = load(
            egress_program(&map, down),
            "eBPF on the LAN device: egress program",
        )?;
        let ingress = load(
            ingress_program(&map, guests, mark),
            "eBPF on the LAN device: ingress program",
        )?;
        let mut h = TcHooks {
            map,
            _programs: [egress, ingress],
            route: Socket::open(libc::NETLINK_ROUTE)?,
            ifindex,
        };
        h.add_clsact()
            .map_err(|e| context(concat!("eBPF on the LAN device: ", "clsact qdisc"), e))?;
        let (egress_fd, ingress_fd) = (h._programs[0].fd(), h._programs[1].fd());
        h.attach(PARENT_EGRESS, egress_fd, EGRESS_NAME, down)
            .map_err(|e| context(concat!("eBPF on the LAN device: ", "egress filter"), e))?;
        h.attach(PARENT_INGRESS, ingress_fd, INGRESS_NAME, up)
            .map_err(|e| context(concat!("eBPF on the LAN device: ", "ingress filter"), e))?;
        Ok(h)
    }

    /// Admit `ip` (from `mac`, with its classes), counting from zero.
    pub fn admit(
        &self,
        ip: Ipv4Addr,
        mac: MacAddr,
        up_class: u32,
        down_class: u32,
    ) -> io::Result<()> {
        self.map.put(ip, &session_value(mac, up_class, down_class))
    }

    /// Stop handling `ip`.
    pub fn forget(&self, ip: Ipv4Addr) -> io::Result<()> {
        self.map.remove(ip)
    }

    /// Every unshaped session's download so far (shaped ones count 0 here).
    pub fn counts(&self) -> io::Result<Vec<(Ipv4Addr, Count)>> {
        Ok((self.map.all()?.iter())
            .map(|(ip, v)| (*ip, counted(v)))
            .collect())
    }

    /// Add the `clsact` qdisc unless the device has one.
    fn add_clsact(&mut self) -> io::Result<()> {
        let mut b = Batch::default();
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        let seq = self.route.next_seq();
        b.message(
            libc::RTM_NEWQDISC,
            flags,
            seq,
            &self.tcmsg(CLSACT_HANDLE, TC_H_CLSACT, 0),
        );
        b.attr_str(TCA_KIND, "clsact");
        match self.route.execute(&mut b) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Attach program `fd` at hook `parent`, its match redirecting to the
    /// egress of device `to`.
    fn attach(&mut self, parent: u32, fd: i32, name: &str, to: i32) -> io::Result<()> {
        let mut b = Batch::default();
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        let seq = self.route.next_seq();
        b.message(
            libc::RTM_NEWTFILTER,
            flags,
            seq,
            &self.filter_msg(parent, 1),
        );
        b.attr_str(TCA_KIND, "bpf");
        let opts = b.nest(TCA_OPTIONS);
        b.attr(TCA_BPF_FD, &(fd as u32).to_ne_bytes());
        b.attr_str(TCA_BPF_NAME, name);
        let acts = b.nest(TCA_BPF_ACT);
        let first = b.nest(1);
        b.attr_str(TCA_ACT_KIND, "mirred");
        let act_opts = b.nest(TCA_ACT_OPTIONS);
        // struct tc_mirred: tc_gen (index, capab, action, refcnt,
        // bindcnt), eaction, ifindex.
        let mut parms = [0u8; 28];
        parms[8..12].copy_from_slice(&TC_ACT_STOLEN.to_ne_bytes());
        parms[20..24].copy_from_slice(&TCA_EGRESS_REDIR.to_ne_bytes());
        parms[24..28].copy_from_slice(&(to as u32).to_ne_bytes());
        b.attr(TCA_MIRRED_PARMS, &parms);
        b.end_nest(act_opts);
        b.end_nest(first);
        b.end_nest(acts);
        b.end_nest(opts);
        self.route.execute(&mut b)
    }

    /// Remove both filters, then the `clsact` qdisc if no other filter (of
    /// another program on the router) is left on it.
    fn detach(&mut self) -> io::Result<()> {
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        let mut b = Batch::default();
        for parent in [PARENT_EGRESS, PARENT_INGRESS] {
            let seq = self.route.next_seq();
            let hdr = self.filter_msg(parent, 0);
            b.message(libc::RTM_DELTFILTER, flags, seq, &hdr);
        }
        self.route.execute(&mut b)?;
        if self.filters_on(PARENT_INGRESS)? + self.filters_on(PARENT_EGRESS)? > 0 {
            return Ok(());
        }
        let mut b = Batch::default();
        let seq = self.route.next_seq();
        let hdr = self.tcmsg(CLSACT_HANDLE, TC_H_CLSACT, 0);
        b.message(libc::RTM_DELQDISC, flags, seq, &hdr);
        self.route.execute(&mut b)
    }

    /// How many filters hook `parent` of the device.
    fn filters_on(&mut self, parent: u32) -> io::Result<usize> {
        let mut b = Batch::default();
        let seq = self.route.next_seq();
        let flags = NLM_F_REQUEST | NLM_F_DUMP;
        b.message(libc::RTM_GETTFILTER, flags, seq, &self.tcmsg(0, parent, 0));
        let mut n = 0;
        self.route.dump(&mut b, seq, |r| {
            n += usize::from(r.ty == libc::RTM_NEWTFILTER);
        })?;
        Ok(n)
    }

    /// A filter's tcmsg: lassi's priority, IPv4, hook `parent`.
    fn filter_msg(&self, parent: u32, handle: u32) -> [u8; 20] {
        let info = u32::from(FILTER_PRIORITY) << 16 | IPV4_PROTOCOL as u32;
        self.tcmsg(handle, parent, info)
    }

    /// tcmsg: unspecified family, the LAN device, handle, parent, info.
    fn tcmsg(&self, handle: u32, parent: u32, info: u32) -> [u8; 20] {
        let mut h = super::kernel_shaper::tcmsg(self.ifindex, handle, parent);
        h[16..20].copy_from_slice(&info.to_ne_bytes());
        h
    }
}

impl Drop for TcHooks {
    /// The filters (and the `clsact` qdisc, unless another program's
    /// filters use it) go with lassi.
    fn drop(&mut self) {
        if let Err(e) = self.detach() {
            super::kernel_tables::cleanup_failed("the kernel fast path's tc filters", &e);
        }
    }
}

/// `e` with what lassi was doing (one copy of this for the kernel path's
/// set-up).
pub(super) fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `struct __sk_buff` for a test run (the fields the kernel lets a
    /// test set: ingress device, wire length, segments).
    fn ctx(ingress_ifindex: u32, wire_len: u32, gso_segs: u32, gso_size: u32) -> Vec<u8> {
        let mut c = vec![0u8; 192];
        let mut put = |at: i16, v: u32| {
            let at = at as usize;
            c[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        };
        put(skb::INGRESS_IFINDEX, ingress_ifindex);
        put(skb::WIRE_LEN, wire_len);
        put(skb::GSO_SEGS, gso_segs);
        put(skb::GSO_SIZE, gso_size);
        c
    }

    /// An Ethernet frame from `src_mac`, IPv4 `src` → `dst`, `ip_len` bytes
    /// of IP.
    fn frame(
        src_mac: [u8; 6],
        src: [u8; 4],
        dst: [u8; 4],
        ip_len: usize,
        ethertype: u16,
    ) -> Vec<u8> {
        let mut f = vec![0u8; 14 + ip_len];
        f[6..12].copy_from_slice(&src_mac);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f
    }

    /// A map in the running kernel (these tests need root, as CI has).
    /// None only where there is no `bpf(2)` at all: qemu's user-mode
    /// emulation, which runs the unit tests for router CPUs
    /// (`tests/cross-test`); the native run covers these.
    fn kernel_map(max_entries: u32) -> Option<SessionMap> {
        match SessionMap::create(max_entries) {
            Ok(m) => Some(m),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                eprintln!("no bpf(2) here (qemu user mode?): not run");
                None
            }
            Err(e) => panic!("bpf map (run as root): {e}"),
        }
    }

    const GUEST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];
    const WEB: [u8; 4] = [198, 51, 100, 10];
    const SHAPER: i32 = 99;

    fn down(f: &[u8], p: &Program, c: &[u8]) -> i32 {
        p.test_run(f, c).expect("test run").0 as i32
    }

    /// A program's verdict on `f` and the mark and priority it left.
    fn run_ctx(f: &[u8], p: &Program) -> (i32, u32, u32) {
        let (r, out) = p
            .test_run(f, &ctx(2, f.len() as u32, 0, 0))
            .expect("test run");
        let at = |o: i16| u32::from_ne_bytes(out[o as usize..o as usize + 4].try_into().unwrap());
        (r as i32, at(skb::MARK), at(skb::PRIORITY))
    }

    const GUESTS: &str = "10.1.0.0/24";
    const MARK: u32 = 0x0100_0000;

    /// Needs CAP_BPF (root), as CI has; the kernel verifies and runs it.
    #[test]
    fn the_egress_program_counts_every_segment_with_its_headers_and_nothing_else() {
        let Some(map) = kernel_map(16) else {
            return;
        };
        let prog = Program::load(bpf::PROG_TYPE_SCHED_CLS, &egress_program(&map, SHAPER))
            .expect("verifier");
        let guest = Ipv4Addr::new(10, 1, 0, 7);
        map.put(guest, &session_value(MacAddr(GUEST_MAC), 0, 0))
            .unwrap();
        let count = || counted(&map.get(guest).unwrap().unwrap());
        // A super-packet of 3 segments of 500 payload bytes, 52 bytes of
        // IP and TCP headers each (a test run takes at most a page), with
        // the wire length the kernel computes for it.
        let f = frame([0; 6], WEB, guest.octets(), 52 + 3 * 500, 0x0800);
        let wire = f.len() as u32 + 2 * (14 + 52);
        assert_eq!(down(&f, &prog, &ctx(2, wire, 3, 500)), NO_MATCH);
        assert_eq!(
            count(),
            Count {
                bytes: 3 * 552,
                packets: 3
            }
        );
        // A plain packet: one segment, its own length.
        let small = frame([0; 6], WEB, guest.octets(), 60, 0x0800);
        let plain = ctx(2, small.len() as u32, 0, 0);
        assert_eq!(down(&small, &prog, &plain), NO_MATCH);
        let want = Count {
            bytes: 3 * 552 + 60,
            packets: 4,
        };
        assert_eq!(count(), want);
        // Not counted: sent by the router itself, back from the shaper,
        // to another address, not IPv4. (A frame too short for its IPv4
        // header the test run refuses; the bound check is the verifier's
        // to insist on.)
        down(&small, &prog, &ctx(0, small.len() as u32, 0, 0));
        down(&small, &prog, &ctx(SHAPER as u32, small.len() as u32, 0, 0));
        let other = frame([0; 6], WEB, [10, 1, 0, 8], 60, 0x0800);
        down(&other, &prog, &plain);
        let arp = frame([0; 6], WEB, guest.octets(), 60, 0x0806);
        down(&arp, &prog, &plain);
        assert_eq!(count(), want);
        assert_eq!(map.get(Ipv4Addr::new(10, 1, 0, 8)).unwrap(), None);
    }

    #[test]
    fn a_shaped_sessions_packets_get_its_class_and_match_uncounted() {
        let Some(map) = kernel_map(16) else {
            return;
        };
        let egress = Program::load(bpf::PROG_TYPE_SCHED_CLS, &egress_program(&map, SHAPER))
            .expect("verifier");
        let code = ingress_program(&map, GUESTS.parse().unwrap(), MARK);
        let ingress = Program::load(bpf::PROG_TYPE_SCHED_CLS, &code).expect("verifier");
        let guest = Ipv4Addr::new(10, 1, 0, 7);
        map.put(
            guest,
            &session_value(MacAddr(GUEST_MAC), 0x1_0005, 0x1_0006),
        )
        .unwrap();
        let f = frame([0; 6], WEB, guest.octets(), 60, 0x0800);
        assert_eq!(run_ctx(&f, &egress), (MATCH, 0, 0x1_0006));
        assert_eq!(counted(&map.get(guest).unwrap().unwrap()), Count::default());
        // Uploads: from the session's MAC to off the guest network: its
        // class, and the mark the nftables ingress chain would have set.
        let up = frame(GUEST_MAC, guest.octets(), WEB, 60, 0x0800);
        assert_eq!(run_ctx(&up, &ingress), (MATCH, MARK, 0x1_0005));
        // Not: the same address from another MAC, another address, to
        // another guest or to the gateway.
        let spoofed = frame([2, 0, 0, 0, 0, 9], guest.octets(), WEB, 60, 0x0800);
        let stranger = frame(GUEST_MAC, [10, 1, 0, 9], WEB, 60, 0x0800);
        let to_guest = frame(GUEST_MAC, guest.octets(), [10, 1, 0, 9], 60, 0x0800);
        let to_gateway = frame(GUEST_MAC, guest.octets(), [10, 1, 0, 1], 60, 0x0800);
        for f in [&spoofed, &stranger, &to_guest, &to_gateway] {
            assert_eq!(run_ctx(f, &ingress), (NO_MATCH, 0, 0));
        }
        // An unshaped session's uploads are left to nftables.
        map.put(guest, &session_value(MacAddr(GUEST_MAC), 0, 0))
            .unwrap();
        assert_eq!(run_ctx(&up, &ingress), (NO_MATCH, 0, 0));
    }

    #[test]
    fn a_batch_read_returns_every_element_across_batches() {
        let Some(map) = kernel_map(2048) else {
            return;
        };
        let v = session_value(MacAddr([0; 6]), 0, 0);
        for i in 0..1300u32 {
            map.put(Ipv4Addr::from(0x0a00_0000 + i), &v).unwrap();
        }
        let mut all: Vec<Ipv4Addr> = map.all().unwrap().into_iter().map(|(ip, _)| ip).collect();
        all.sort();
        let want: Vec<Ipv4Addr> = (0..1300u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect();
        assert_eq!(all, want);
        map.remove(Ipv4Addr::from(0x0a00_0000)).unwrap();
        map.remove(Ipv4Addr::from(0x0a00_0000)).unwrap();
        assert_eq!(map.all().unwrap().len(), 1299);
    }
}
