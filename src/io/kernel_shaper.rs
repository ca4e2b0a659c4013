//! Per-session shaping on the kernel fast path: two `ifb` devices, one per
//! direction, each with an HTB qdisc holding one class per shaped session
//! (rate = ceil = the session's rate, the burst and byte-bounded FIFO of
//! lassi's own shaper). The LAN device's tc hooks ([`super::tc_hooks`])
//! redirect a shaped session's packets into its direction's device with
//! the class in `skb->priority` (HTB classifies by it, no filter needed);
//! the device sends them back where they came from as the class lets
//! them go. Unshaped sessions never touch these devices, so they pay no
//! qdisc lock.
//!
//! A class counts what it let through (the kernel's `bstats`, taken as a
//! packet leaves the class: wire bytes with every segment's headers, one
//! packet per segment), so a shaped session's downloads are counted here,
//! exactly, after the shaper dropped what it dropped.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;

use super::kernel_tables::Count;
use super::netlink::{
    self, Batch, Socket, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST,
};
use super::tc_hooks::context;
use crate::wire::Ipv4Net;

/// The HTB qdisc's handle on both devices (`1:`); classes are `1:<minor>`.
const HTB_HANDLE: u32 = 0x0001_0000;
const TC_H_ROOT: u32 = 0xffff_ffff;
/// A tc object's kind (`htb`, `bpf`, …).
pub(super) const TCA_KIND: u16 = 1;
/// A tc object's options.
pub(super) const TCA_OPTIONS: u16 = 2;
const TCA_STATS2: u16 = 7;
const TCA_STATS_BASIC: u16 = 1;
const TCA_STATS_QUEUE: u16 = 3;
const TCA_STATS_PKT64: u16 = 8;
const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;
const TC_LINKLAYER_ETHERNET: u8 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
/// Length of the Ethernet header a class counts once per segment.
const ETH_HLEN: u64 = 14;
/// `PSCHED_SHIFT`: HTB's buffer is in units of 64 ns.
const PSCHED_SHIFT: u32 = 6;

/// One direction's device (`lassi<lan ifindex>u` or `…d`).
#[derive(Debug)]
pub struct Ifb {
    /// Its index.
    pub ifindex: i32,
}

/// The burst and queue of a class for `rate` bytes a second: the same as
/// lassi's own shaper (a tenth of a second, at least four full frames; a
/// queue of 150 ms, at least three 64 KiB super-packets).
pub fn burst_and_queue(rate: u64) -> (u64, u64) {
    (
        (rate / 10).max(4 * 1514),
        (rate * 150 / 1000).max(3 * 65_536),
    )
}

/// `struct tc_htb_opt` for a class of `rate` bytes a second.
fn htb_opt(rate: u64) -> [u8; 44] {
    let (burst, _) = burst_and_queue(rate);
    let rate32 = rate.min(u64::from(u32::MAX)) as u32;
    let buffer_ns = burst.saturating_mul(1_000_000_000) / rate.max(1);
    let buffer = (buffer_ns >> PSCHED_SHIFT).min(u64::from(u32::MAX)) as u32;
    let quantum = (rate / 10).clamp(1514, 200_000) as u32;
    let mut o = [0u8; 44];
    for spec in [0usize, 12] {
        o[spec + 1] = TC_LINKLAYER_ETHERNET;
        o[spec + 8..spec + 12].copy_from_slice(&rate32.to_ne_bytes());
    }
    o[24..28].copy_from_slice(&buffer.to_ne_bytes());
    o[28..32].copy_from_slice(&buffer.to_ne_bytes());
    o[32..36].copy_from_slice(&quantum.to_ne_bytes());
    o
}

/// tcmsg: unspecified family, device, handle, parent, info 0.
pub(super) fn tcmsg(ifindex: i32, handle: u32, parent: u32) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    h[8..12].copy_from_slice(&handle.to_ne_bytes());
    h[12..16].copy_from_slice(&parent.to_ne_bytes());
    h
}

/// The classes of lassi's shaped sessions on both devices.
pub struct KernelShaper {
    route: Socket,
    /// Where a shaped session's frames go at the LAN ingress.
    pub up: Ifb,
    /// Where packets to a shaped session go at the LAN egress.
    pub down: Ifb,
    /// The guest network: a session's class minor is the host part of its
    /// address (the same on both devices; configuration keeps it /16 or
    /// smaller, so it fits).
    guests: Ipv4Net,
}

/// The classids a session got: (upload, download), 0 for a direction
/// without a rate.
pub type Classes = (u32, u32);

/// What one of a shaped session's classes counted (a session with both
/// has two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapedCount {
    /// The session.
    pub ip: Ipv4Addr,
    /// What its download class let through (none without one).
    pub down: Option<Count>,
    /// Packets the class dropped.
    pub drops: u64,
}

/// What one class counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ClassCount {
    classid: u32,
    /// IP bytes and segments it let through.
    sent: Count,
    /// Packets it dropped.
    drops: u64,
}

impl KernelShaper {
    /// Create both devices for LAN device `lan` (replacing those a crashed
    /// run left) with an HTB qdisc each.
    pub fn open(lan: i32, guests: Ipv4Net) -> io::Result<KernelShaper> {
        let mut route = Socket::open(libc::NETLINK_ROUTE)?;
        let mut dev = |suffix: char| -> io::Result<Ifb> {
            let name = format!("lassi{lan}{suffix}");
            let ifb = create_ifb(&mut route, &name)?;
            // Root HTB `2:` and then `1:`, each replacing what is there: a
            // device a crashed run left loses its old qdisc and classes
            // (HTB cannot be changed in place, only replaced by another
            // handle).
            let mut b = Batch::default();
            let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
            for handle in [HTB_HANDLE << 1, HTB_HANDLE] {
                let seq = route.next_seq();
                let hdr = tcmsg(ifb.ifindex, handle, TC_H_ROOT);
                b.message(libc::RTM_NEWQDISC, flags, seq, &hdr);
                b.attr_str(TCA_KIND, "htb");
                let opts = b.nest(TCA_OPTIONS);
                // struct tc_htb_glob: version 3, r2q 10, no default class
                // (what HTB cannot classify goes straight through).
                let mut glob = [0u8; 20];
                glob[0..4].copy_from_slice(&3u32.to_ne_bytes());
                glob[4..8].copy_from_slice(&10u32.to_ne_bytes());
                b.attr(TCA_HTB_INIT, &glob);
                b.end_nest(opts);
            }
            route
                .execute(&mut b)
                .map_err(|e| context(concat!("kernel shaping: ", "htb qdisc"), e))?;
            Ok(ifb)
        };
        let up = dev('u')?;
        let down = dev('d')?;
        Ok(KernelShaper {
            route,
            up,
            down,
            guests,
        })
    }

    /// Give `ip` a class on each device it has a rate for (bits a second).
    pub fn add(
        &mut self,
        ip: Ipv4Addr,
        up_bps: Option<u64>,
        down_bps: Option<u64>,
    ) -> io::Result<Classes> {
        if up_bps.is_none() && down_bps.is_none() {
            return Ok((0, 0));
        }
        self.remove(ip)?;
        let classid = self.classid(ip);
        let mut b = Batch::default();
        let mut classes = (0, 0);
        for (bps, ifb, slot) in [
            (up_bps, &self.up, &mut classes.0),
            (down_bps, &self.down, &mut classes.1),
        ] {
            let Some(bps) = bps else { continue };
            add_class(&mut b, &mut self.route, ifb.ifindex, classid, bps / 8);
            *slot = classid;
        }
        self.route.execute(&mut b)?;
        Ok(classes)
    }

    /// Take `ip`'s classes away (and their queues).
    pub fn remove(&mut self, ip: Ipv4Addr) -> io::Result<()> {
        let classid = self.classid(ip);
        let mut b = Batch::default();
        for ifb in [&self.up, &self.down] {
            let seq = self.route.next_seq();
            let hdr = tcmsg(ifb.ifindex, classid, HTB_HANDLE);
            b.message(libc::RTM_DELTCLASS, NLM_F_REQUEST | NLM_F_ACK, seq, &hdr);
        }
        // Both are tried; a direction without a rate has no class.
        match self.route.execute(&mut b) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }

    /// What each shaped session's classes counted: its download (IP bytes,
    /// the wire bytes less a link-layer header per segment, and segments)
    /// and the drops of each.
    pub fn counts(&mut self) -> io::Result<Vec<ShapedCount>> {
        let mut all: Vec<ShapedCount> = Vec::new();
        for (ifindex, is_down) in [(self.down.ifindex, true), (self.up.ifindex, false)] {
            for c in self.classes(ifindex)? {
                if c.classid >> 16 != HTB_HANDLE >> 16 {
                    continue;
                }
                all.push(ShapedCount {
                    ip: Ipv4Addr::from(u32::from(self.guests.addr) | (c.classid & 0xffff)),
                    down: is_down.then_some(c.sent),
                    drops: c.drops,
                });
            }
        }
        Ok(all)
    }

    /// `ip`'s class on both devices.
    fn classid(&self, ip: Ipv4Addr) -> u32 {
        HTB_HANDLE | (u32::from(ip) & !u32::from(self.guests.netmask()) & 0xffff)
    }

    /// The classes on device `ifindex` and what they counted.
    fn classes(&mut self, ifindex: i32) -> io::Result<Vec<ClassCount>> {
        let mut b = Batch::default();
        let seq = self.route.next_seq();
        b.message(
            libc::RTM_GETTCLASS,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            &tcmsg(ifindex, 0, 0),
        );
        let mut out = Vec::new();
        self.route.dump(&mut b, seq, |r| {
            if r.ty == libc::RTM_NEWTCLASS {
                out.extend(class_count(r.payload));
            }
        })?;
        Ok(out)
    }
}

impl Drop for KernelShaper {
    /// Both devices (and with them their qdiscs and classes) go with lassi.
    fn drop(&mut self) {
        let mut b = Batch::default();
        for ifb in [&self.up, &self.down] {
            let seq = self.route.next_seq();
            let mut hdr = ifinfomsg(0);
            hdr[4..8].copy_from_slice(&ifb.ifindex.to_ne_bytes());
            b.message(libc::RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, &hdr);
        }
        if let Err(e) = self.route.execute(&mut b) {
            super::kernel_tables::cleanup_failed("the kernel shaping devices", &e);
        }
    }
}

/// Add an HTB class `classid` of `rate` bytes a second, and its byte-bounded
/// FIFO, to the batch.
fn add_class(b: &mut Batch, route: &mut Socket, ifindex: i32, classid: u32, rate: u64) {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    let seq = route.next_seq();
    b.message(
        libc::RTM_NEWTCLASS,
        flags,
        seq,
        &tcmsg(ifindex, classid, HTB_HANDLE),
    );
    b.attr_str(TCA_KIND, "htb");
    let opts = b.nest(TCA_OPTIONS);
    b.attr(TCA_HTB_PARMS, &htb_opt(rate));
    if rate > u64::from(u32::MAX) {
        b.attr(TCA_HTB_RATE64, &rate.to_ne_bytes());
        b.attr(TCA_HTB_CEIL64, &rate.to_ne_bytes());
    }
    b.end_nest(opts);
    let (_, queue) = burst_and_queue(rate);
    let seq = route.next_seq();
    b.message(libc::RTM_NEWQDISC, flags, seq, &tcmsg(ifindex, 0, classid));
    b.attr_str(TCA_KIND, "bfifo");
    // struct tc_fifo_qopt: the limit in bytes.
    b.attr(
        TCA_OPTIONS,
        &(queue.min(u64::from(u32::MAX)) as u32).to_ne_bytes(),
    );
}

/// A class's id and what it counted, from an `RTM_NEWTCLASS` payload.
fn class_count(payload: &[u8]) -> Option<ClassCount> {
    let classid = u32::from_ne_bytes(payload.get(8..12)?.try_into().ok()?);
    let stats = netlink::attr(payload.get(20..)?, TCA_STATS2)?;
    let basic = netlink::attr(stats, TCA_STATS_BASIC)?;
    let wire = u64::from_ne_bytes(basic.get(0..8)?.try_into().ok()?);
    let packets = match netlink::attr(stats, TCA_STATS_PKT64) {
        Some(p) => u64::from_ne_bytes(p.get(0..8)?.try_into().ok()?),
        None => u64::from(u32::from_ne_bytes(basic.get(8..12)?.try_into().ok()?)),
    };
    // struct gnet_stats_queue: qlen, backlog, drops, …
    let queue = netlink::attr(stats, TCA_STATS_QUEUE)?;
    let drops = u32::from_ne_bytes(queue.get(8..12)?.try_into().ok()?);
    let bytes = wire.saturating_sub(ETH_HLEN * packets);
    Some(ClassCount {
        classid,
        sent: Count { bytes, packets },
        drops: u64::from(drops),
    })
}

/// Create (up) an `ifb` device `name`.
fn create_ifb(route: &mut Socket, name: &str) -> io::Result<Ifb> {
    let mut b = Batch::default();
    let seq = route.next_seq();
    // One a crashed run left is taken over as it is (its qdisc replaced).
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    b.message(
        libc::RTM_NEWLINK,
        flags,
        seq,
        &ifinfomsg(libc::IFF_UP as u32),
    );
    b.attr_str(IFLA_IFNAME, name);
    let info = b.nest(IFLA_LINKINFO);
    b.attr_str(IFLA_INFO_KIND, "ifb");
    b.end_nest(info);
    route
        .execute(&mut b)
        .map_err(|e| context(concat!("kernel shaping: ", "ifb device (kmod-ifb)"), e))?;
    let c = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: c is a valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if ifindex == 0 {
        return Err(context(
            concat!("kernel shaping: ", "ifb index"),
            io::Error::last_os_error(),
        ));
    }
    Ok(Ifb {
        ifindex: ifindex as i32,
    })
}

/// ifinfomsg with `flags` set (and changed).
fn ifinfomsg(flags: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&flags.to_ne_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_gets_lassis_burst_as_time_at_its_rate() {
        // 1 Mbit/s: 125,000 B/s, burst max(12,500, 6,056) = 12,500 B,
        // which takes 100 ms = 100,000,000 ns = 1,562,500 ticks of 64 ns.
        let o = htb_opt(125_000);
        let u32_at = |at: usize| u32::from_ne_bytes(o[at..at + 4].try_into().unwrap());
        assert_eq!(u32_at(8), 125_000);
        assert_eq!(u32_at(20), 125_000);
        assert_eq!(o[1], TC_LINKLAYER_ETHERNET);
        assert_eq!(u32_at(24), 1_562_500);
        assert_eq!(u32_at(28), 1_562_500);
        assert_eq!(u32_at(32), 12_500);
        // Slow rates keep four full frames of burst and a 192 KiB queue.
        assert_eq!(burst_and_queue(1_000), (4 * 1514, 3 * 65_536));
    }

    #[test]
    fn class_stats_give_ip_bytes_segments_and_drops() {
        let mut b = Batch::default();
        b.message(
            libc::RTM_NEWTCLASS,
            0,
            1,
            &tcmsg(5, HTB_HANDLE | 7, HTB_HANDLE),
        );
        let s = b.nest(TCA_STATS2);
        let mut basic = [0u8; 16];
        basic[0..8].copy_from_slice(&(10 * 1514u64).to_ne_bytes());
        basic[8..12].copy_from_slice(&10u32.to_ne_bytes());
        b.attr(TCA_STATS_BASIC, &basic);
        let mut queue = [0u8; 20];
        queue[8..12].copy_from_slice(&3u32.to_ne_bytes());
        b.attr(TCA_STATS_QUEUE, &queue);
        b.end_nest(s);
        let bytes = b.bytes().to_vec();
        let r = netlink::replies(&bytes).next().unwrap();
        let c = class_count(r.payload).unwrap();
        assert_eq!(c.classid, HTB_HANDLE | 7);
        assert_eq!(
            c.sent,
            Count {
                bytes: 15_000,
                packets: 10
            }
        );
        assert_eq!(c.drops, 3);
        // Truncated: nothing rather than garbage.
        assert_eq!(class_count(&r.payload[..22]), None);
    }
}
