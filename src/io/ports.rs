//! One forwarding thread's pair of devices: its LAN socket (a member of the
//! fanout group when there are several workers) and its TUN queue, with
//! the buffers that batch writes to them. The engine thread and every
//! worker own one each, so no descriptor or buffer is shared between
//! threads.
//!
//! Buffers are laid out so that no packet is copied: a LAN frame arrives as
//! `[vnet 10][eth 14][ip …]`; for the TUN the shifted vnet header is written
//! over the tail of the Ethernet header, directly before the IP packet, and
//! that slice is written. A TUN packet is read 14 bytes into its buffer, so
//! the vnet header and an Ethernet header can be laid in front of it.

use serde::Serialize;

use std::os::fd::AsRawFd;

use super::lan::{LanPort, SendBatch, MAX_FRAME};
use super::sys::Waker;
use super::tun::Tun;
use crate::dataplane::Released;
use crate::wire::checksum;
use crate::wire::frame::{EthHeader, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HLEN};
use crate::wire::vnet::{VnetHdr, F_NEEDS_CSUM, VNET_HDR_LEN};
use crate::wire::MacAddr;

/// Room in front of a TUN packet for the LAN vnet + Ethernet headers.
pub const TUN_HEADROOM: usize = ETH_HLEN;

/// Packet I/O counters of the shell (the engine counts drops by reason).
#[derive(Clone, Debug, Default, Serialize)]
pub struct IoStats {
    /// Frames read from the LAN.
    pub lan_rx: u64,
    /// Frames written to the LAN.
    pub lan_tx: u64,
    /// Frames the LAN device would not take.
    pub lan_tx_errors: u64,
    /// Packets read from the TUN device.
    pub tun_rx: u64,
    /// Packets written to the TUN device.
    pub tun_tx: u64,
    /// Packets the TUN device would not take.
    pub tun_tx_errors: u64,
    /// LAN frames that were GSO super-packets.
    pub lan_rx_gso: u64,
    /// LAN frames with a checksum left for offload.
    pub lan_rx_partial_csum: u64,
    /// TUN packets that were GSO super-packets.
    pub tun_rx_gso: u64,
    /// TUN packets with a checksum left for offload.
    pub tun_rx_partial_csum: u64,
    /// Frames a thread handed to another: to the engine thread (guests
    /// not logged in, DHCP, DNS, IPv6, …) or to the worker that owns a
    /// shaped or metered session.
    pub handed_over: u64,
    /// Frames a thread dropped instead because the hand-off queues were
    /// full (a flood of traffic only the engine may handle).
    pub handoff_dropped: u64,
}

impl IoStats {
    /// Count a received frame's offload state.
    #[inline]
    pub fn offloads(vnet: &VnetHdr, gso: &mut u64, partial: &mut u64) {
        *gso += u64::from(vnet.is_gso());
        *partial += u64::from(vnet.flags & F_NEEDS_CSUM != 0);
    }

    /// Add another thread's counters.
    pub fn add(&mut self, o: &IoStats) {
        self.lan_rx += o.lan_rx;
        self.lan_tx += o.lan_tx;
        self.lan_tx_errors += o.lan_tx_errors;
        self.tun_rx += o.tun_rx;
        self.tun_tx += o.tun_tx;
        self.tun_tx_errors += o.tun_tx_errors;
        self.lan_rx_gso += o.lan_rx_gso;
        self.lan_rx_partial_csum += o.lan_rx_partial_csum;
        self.tun_rx_gso += o.tun_rx_gso;
        self.tun_rx_partial_csum += o.tun_rx_partial_csum;
        self.handed_over += o.handed_over;
        self.handoff_dropped += o.handoff_dropped;
    }
}

/// A thread's LAN socket and TUN queue.
pub struct Ports {
    /// LAN raw socket.
    pub lan: LanPort,
    /// TUN device (this thread's queue of it).
    pub tun: Tun,
    /// lassi's MAC on the LAN.
    pub gateway_mac: MacAddr,
    /// Plain packets waiting to be coalesced into the TUN device.
    gro_bufs: Vec<Vec<u8>>,
    /// How many of `gro_bufs` are in use.
    gro_used: usize,
    /// tun-rs's coalescing state, reused between batches.
    gro_table: tun_rs::GROTable,
}

impl Ports {
    /// A thread's devices.
    pub fn new(lan: LanPort, tun: Tun, gateway_mac: MacAddr) -> Ports {
        Ports {
            lan,
            tun,
            gateway_mac,
            gro_bufs: Vec::new(),
            gro_used: 0,
            gro_table: Default::default(),
        }
    }

    /// Wait up to `timeout_ms` (-1: no limit) for a frame on either device
    /// or a wake-up on `waker` (drained). Which devices are readable; a
    /// failed wait (not an interruption) is logged and paced.
    pub fn poll(&self, waker: &Waker, timeout_ms: i32) -> (bool, bool) {
        let pollfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [
            pollfd(self.lan.as_raw_fd()),
            pollfd(self.tun.as_raw_fd()),
            pollfd(waker.as_raw_fd()),
            // Negative: poll skips it (no kernel fast path).
            pollfd(self.lan.ipv4_fd().unwrap_or(-1)),
        ];
        // SAFETY: four pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 4, timeout_ms) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!("poll: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            return (false, false);
        }
        if fds[2].revents != 0 {
            waker.drain();
        }
        let readable = |i: usize| fds[i].revents & libc::POLLIN != 0;
        (readable(0) || readable(3), readable(1))
    }

    /// Send a LAN frame (`[vnet][eth][ip]`, `vnet` parsed from it) into
    /// the TUN device. A plain MTU-sized packet is batched for coalescing
    /// (written by [`Ports::flush_coalesced`] once the receive batch is
    /// done); a super-packet is written at once, its shifted header laid
    /// over the Ethernet header's tail, right in front of the IP packet.
    ///
    /// A single packet with its checksum left for offload (what a guest
    /// with checksum offload sends: TCP ACKs, UDP) has the checksum
    /// completed here, so it too can be coalesced with its flow's next
    /// packets instead of costing a system call of its own.
    pub fn to_tun(&mut self, frame: &mut [u8], vnet: &VnetHdr, io: &mut IoStats) {
        if !vnet.is_gso() && (vnet.flags == 0 || complete_checksum(frame, vnet)) {
            // Without Ethernet padding: the caller checked total_len.
            let ip = &frame[VNET_HDR_LEN + ETH_HLEN..];
            let ip = &ip[..ip_total_len(ip)];
            if self.gro_used == self.gro_bufs.len() {
                self.gro_bufs.push(Vec::with_capacity(VNET_HDR_LEN + 1514));
            }
            let b = &mut self.gro_bufs[self.gro_used];
            b.clear();
            b.resize(VNET_HDR_LEN, 0);
            b.extend_from_slice(ip);
            self.gro_used += 1;
            return;
        }
        let start = VNET_HDR_LEN + ETH_HLEN - VNET_HDR_LEN;
        vnet.shifted(-(ETH_HLEN as i32)).write(&mut frame[start..]);
        match self.tun.send(&frame[start..]) {
            Ok(_) => io.tun_tx += 1,
            Err(e) => {
                io.tun_tx_errors += 1;
                tracing::debug!("TUN write: {e}");
            }
        }
    }

    /// Write the plain packets batched for the TUN device, coalesced.
    pub fn flush_coalesced(&mut self, io: &mut IoStats) {
        if self.gro_used == 0 {
            return;
        }
        let n = std::mem::take(&mut self.gro_used);
        match self
            .tun
            .send_coalesced(&mut self.gro_table, &mut self.gro_bufs[..n])
        {
            Ok(_) => io.tun_tx += n as u64,
            Err(e) => {
                io.tun_tx_errors += n as u64;
                tracing::debug!("TUN coalesced write: {e}");
            }
        }
    }

    /// Send the frames batched for the LAN.
    pub fn flush(&self, tx: &mut SendBatch, io: &mut IoStats) {
        if tx.is_empty() {
            return;
        }
        let (ok, failed) = self.lan.send(tx);
        io.lan_tx += ok as u64;
        io.lan_tx_errors += failed as u64;
    }

    /// Turn a TUN packet read at `buf[TUN_HEADROOM..]` (`[vnet][ip]`) into
    /// the LAN frame `[vnet][eth][ip]` to `dst`, in place.
    pub fn frame_for_lan(&self, buf: &mut [u8], vnet: &VnetHdr, dst: MacAddr) {
        let ethertype = ethertype_of(&buf[TUN_HEADROOM + VNET_HDR_LEN..]);
        vnet.shifted(ETH_HLEN as i32)
            .write(&mut buf[..VNET_HDR_LEN]);
        EthHeader {
            dst,
            src: self.gateway_mac,
            ethertype,
        }
        .write(&mut buf[VNET_HDR_LEN..]);
    }

    /// Read TUN packets into `bufs` (each at `TUN_HEADROOM`) until it would
    /// block or they are full; their lengths go to `lens`. Returns how many.
    pub fn read_tun(&self, bufs: &mut [Box<[u8]>], lens: &mut [usize]) -> usize {
        let mut n = 0;
        while n < bufs.len() {
            match self.tun.recv(&mut bufs[n][TUN_HEADROOM..]) {
                Ok(Some(len)) => {
                    lens[n] = len;
                    n += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("TUN receive: {e}");
                    break;
                }
            }
        }
        n
    }
}

/// Packets shapers let go, and the buffers that send them.
#[derive(Default)]
pub struct ReleaseBufs {
    /// Filled by `release_held` (the engine's or a fast path's).
    pub released: Vec<Released>,
    frames: Vec<Vec<u8>>,
    scratch: Vec<u8>,
}

impl Ports {
    /// Send what a shaper let go (`bufs.released`, emptied): uploads into
    /// the TUN device one by one, downloads onto the LAN in batches.
    pub fn send_released(
        &mut self,
        bufs: &mut ReleaseBufs,
        tx: &mut SendBatch,
        io: &mut IoStats,
        batch: usize,
    ) {
        for r in bufs.released.drain(..) {
            match r {
                Released::ToTun(h) => {
                    let s = &mut bufs.scratch;
                    s.clear();
                    s.resize(VNET_HDR_LEN, 0);
                    h.vnet.shifted(-(ETH_HLEN as i32)).write(s);
                    s.extend_from_slice(&h.packet);
                    match self.tun.send(s) {
                        Ok(_) => io.tun_tx += 1,
                        Err(_) => io.tun_tx_errors += 1,
                    }
                }
                Released::ToLan(mac, h) => {
                    let mut f = vec![0u8; VNET_HDR_LEN + ETH_HLEN];
                    h.vnet.shifted(ETH_HLEN as i32).write(&mut f);
                    EthHeader {
                        dst: mac,
                        src: self.gateway_mac,
                        ethertype: ethertype_of(&h.packet),
                    }
                    .write(&mut f[VNET_HDR_LEN..]);
                    f.extend_from_slice(&h.packet);
                    bufs.frames.push(f);
                }
            }
        }
        for chunk in bufs.frames.chunks(batch.max(1)) {
            for f in chunk {
                tx.push(f, &[]);
            }
            self.flush(tx, io);
        }
        bufs.frames.clear();
    }
}

/// Buffers for one batch of TUN reads.
pub fn tun_buffers(batch: usize) -> Vec<Box<[u8]>> {
    (0..batch)
        .map(|_| vec![0u8; TUN_HEADROOM + MAX_FRAME].into_boxed_slice())
        .collect()
}

/// Complete the checksum of a single (not GSO) LAN frame `[vnet][eth][ip]`
/// whose header says `NEEDS_CSUM` and nothing else; false when it says
/// more, or its offsets don't fit the IP packet (the kernel then judges the
/// frame as it came).
fn complete_checksum(frame: &mut [u8], vnet: &VnetHdr) -> bool {
    if vnet.flags != F_NEEDS_CSUM {
        return false;
    }
    let Some(start) = usize::from(vnet.csum_start).checked_sub(ETH_HLEN) else {
        return false;
    };
    let ip = &mut frame[VNET_HDR_LEN + ETH_HLEN..];
    let len = ip_total_len(ip);
    checksum::complete_partial(&mut ip[..len], start, usize::from(vnet.csum_offset))
}

/// The EtherType of an IP packet, from its version field.
pub fn ethertype_of(ip: &[u8]) -> u16 {
    match ip.first().map(|b| b >> 4) {
        Some(6) => ETHERTYPE_IPV6,
        _ => ETHERTYPE_IPV4,
    }
}

/// An IP packet's length as its header says (IPv4 total length, IPv6 40 +
/// payload length), at most the buffer's: Ethernet padding is not part of it.
fn ip_total_len(ip: &[u8]) -> usize {
    let total = match ip.first().map(|b| b >> 4) {
        Some(6) if ip.len() >= 40 => 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]])),
        _ if ip.len() >= 4 => usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        _ => 0,
    };
    total.min(ip.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LAN frame carrying UDP from 10.1.0.2:5000 to 198.51.100.10:53
    /// whose checksum a guest left for offload: the field holds the folded
    /// pseudo-header sum, as Linux seeds it.
    fn partial_udp_frame(payload: &[u8]) -> (Vec<u8>, VnetHdr) {
        let (src, dst) = ([10, 1, 0, 2], [198, 51, 100, 10]);
        let udp_len = 8 + payload.len() as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        checksum::fix_ipv4_header(&mut ip);
        ip.extend_from_slice(&5000u16.to_be_bytes());
        ip.extend_from_slice(&53u16.to_be_bytes());
        ip.extend_from_slice(&udp_len.to_be_bytes());
        let seed = !checksum::finish(checksum::ipv4_pseudo(src, dst, 17, udp_len));
        ip.extend_from_slice(&seed.to_be_bytes());
        ip.extend_from_slice(payload);
        let vnet = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: (ETH_HLEN + 20) as u16,
            csum_offset: 6,
            ..VnetHdr::default()
        };
        let mut frame = vec![0u8; VNET_HDR_LEN + ETH_HLEN];
        vnet.write(&mut frame);
        frame.extend_from_slice(&ip);
        (frame, vnet)
    }

    /// The UDP checksum of the IP packet in `frame` verifies.
    fn udp_checksum_ok(frame: &[u8]) -> bool {
        let ip = &frame[VNET_HDR_LEN + ETH_HLEN..];
        let seg = &ip[20..];
        let pseudo = checksum::ipv4_pseudo(
            ip[12..16].try_into().unwrap(),
            ip[16..20].try_into().unwrap(),
            17,
            seg.len() as u16,
        );
        checksum::finish(checksum::sum(pseudo, seg)) == 0
    }

    #[test]
    fn a_checksum_left_for_offload_is_completed_before_coalescing() {
        for payload in [&b""[..], b"x", b"an odd-sized payload", &[0xff; 1472]] {
            let (mut frame, vnet) = partial_udp_frame(payload);
            assert!(!udp_checksum_ok(&frame));
            assert!(complete_checksum(&mut frame, &vnet));
            assert!(udp_checksum_ok(&frame), "{} bytes", payload.len());
        }
    }

    #[test]
    fn a_checksum_offset_outside_the_packet_is_left_to_the_kernel() {
        let (mut frame, mut vnet) = partial_udp_frame(b"abc");
        let before = frame.clone();
        vnet.csum_offset = 60_000;
        assert!(!complete_checksum(&mut frame, &vnet));
        vnet.csum_offset = 6;
        vnet.csum_start = 3; // inside the Ethernet header
        assert!(!complete_checksum(&mut frame, &vnet));
        vnet.csum_start = 60_000;
        assert!(!complete_checksum(&mut frame, &vnet));
        vnet.csum_start = (ETH_HLEN + 20) as u16;
        vnet.flags |= crate::wire::vnet::F_DATA_VALID;
        assert!(!complete_checksum(&mut frame, &vnet));
        assert_eq!(frame, before, "nothing written");
    }
}
