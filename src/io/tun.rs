//! The TUN device toward the kernel: carries the gateway address, and the
//! kernel routes (and NATs) between it and the WAN. Opened with virtio-net
//! headers and TSO/checksum offload so the kernel hands lassi 64 KiB
//! super-packets and accepts them back, instead of one MTU per syscall.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use tun_rs::{DeviceBuilder, SyncDevice};

/// The open TUN device.
pub struct Tun {
    dev: SyncDevice,
}

impl Tun {
    /// Create `name` with address `gateway/prefix` (and lassi's IPv6
    /// address with the LAN prefix's length, whose route then leads to
    /// lassi: the prefix is routed, not NATed), offloads on, up, non-blocking.
    /// With `multi_queue` the device takes more queues ([`Tun::add_queue`]).
    pub fn create(
        name: &str,
        gateway: Ipv4Addr,
        prefix: u8,
        ipv6: Option<(Ipv6Addr, u8)>,
        mtu: u16,
        multi_queue: bool,
    ) -> io::Result<Tun> {
        let mut b = DeviceBuilder::new()
            .name(name)
            .ipv4(gateway, prefix, None)
            .multi_queue(multi_queue);
        if let Some((addr, len)) = ipv6 {
            b = b.ipv6(addr, len);
        }
        let dev = b
            .mtu(mtu)
            .offload(true)
            .enable(true)
            .build_sync()
            .map_err(|e| io::Error::new(e.kind(), format!("create TUN device {name}: {e}")))?;
        if !dev.tcp_gso() {
            return Err(io::Error::other(format!(
                "TUN device {name}: the kernel refused virtio-net headers/offloads"
            )));
        }
        dev.set_nonblocking(true)?;
        Ok(Tun { dev })
    }

    /// Another queue of the same device (created `multi_queue`), with the
    /// same offloads, non-blocking: the kernel spreads the packets it sends
    /// into the device over its queues by flow.
    pub fn add_queue(&self) -> io::Result<Tun> {
        let dev = self.dev.try_clone()?;
        dev.set_nonblocking(true)?;
        Ok(Tun { dev })
    }

    /// Read one packet (vnet header + IP packet) into `buf`; `Ok(None)` when
    /// nothing is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.dev.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Write one packet (vnet header + IP packet).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.dev.send(buf)
    }

    /// Write a batch of plain IP packets (each buffer: room for a vnet
    /// header, then the packet), coalescing consecutive segments of a flow
    /// into GSO super-packets first, so the kernel sees one packet where the
    /// LAN delivered dozens. Packets must carry complete checksums.
    pub fn send_coalesced(
        &self,
        table: &mut tun_rs::GROTable,
        bufs: &mut [Vec<u8>],
    ) -> io::Result<usize> {
        self.dev
            .send_multiple(table, bufs, tun_rs::VIRTIO_NET_HDR_LEN)
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }
}
