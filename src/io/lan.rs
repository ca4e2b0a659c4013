//! The LAN port: an AF_PACKET raw socket bound to the guest interface,
//! with virtio-net headers so GSO super-packets and unfinished checksums are
//! visible (and can be passed on untouched), batched with recvmmsg/sendmmsg.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sys::{cvt, ifindex};
use crate::wire::vnet::VNET_HDR_LEN;

/// `PACKET_VNET_HDR` (linux/if_packet.h).
const PACKET_VNET_HDR: libc::c_int = 15;
/// `PACKET_IGNORE_OUTGOING` (Linux 4.20+): don't loop our own sends back.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `PACKET_AUXDATA`: a `tpacket_auxdata` control message with every frame.
const PACKET_AUXDATA: libc::c_int = 8;
/// `PACKET_FANOUT` (linux/if_packet.h): share one interface's frames among
/// several sockets.
const PACKET_FANOUT: libc::c_int = 18;
/// `PACKET_FANOUT_CBPF` (Linux 4.2+): by a classic-BPF program's answer
/// (see [`super::steer`]).
const PACKET_FANOUT_CBPF: libc::c_int = 6;
/// `PACKET_FANOUT_DATA`: sets the group's program.
const PACKET_FANOUT_DATA: libc::c_int = 22;
/// `TP_STATUS_VLAN_VALID` in `tpacket_auxdata.tp_status`.
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// Room for one `tpacket_auxdata` control message (20 bytes after a
/// 16-byte header), as u64s so the buffer is aligned for `cmsghdr`.
const CONTROL_WORDS: usize = 8;

/// Largest frame we may receive: vnet header + Ethernet + a 64 KiB GSO packet.
pub const MAX_FRAME: usize = VNET_HDR_LEN + 14 + 65535;

/// The raw socket on the LAN interface.
pub struct LanPort {
    fd: OwnedFd,
    /// With the kernel fast path: the IPv4 socket ([`LanPort::open_split`]).
    ipv4: Option<OwnedFd>,
    ifindex: i32,
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: fd is a valid socket, value lives across the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// recvmmsg into `msgs` without waiting; how many arrived.
fn recv_into(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: msgs point at iovecs that point at the batch's own buffers;
    // all live as long as the batch and are not moved.
    let got = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            msgs.len() as _,
            // `as _`: glibc declares the flags `int`, musl `unsigned int`.
            libc::MSG_DONTWAIT as _,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        };
    }
    Ok(got as usize)
}

/// Give a socket (or its fanout group) a classic-BPF program.
fn set_program(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    code: &[libc::sock_filter],
) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_ptr().cast_mut(),
    };
    // SAFETY: prog points at `code`, alive across the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&prog as *const libc::sock_fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// A raw socket on `interface` (index `ifindex`) bound to `protocol`,
/// non-blocking, with virtio-net headers, VLAN ancillary data and, if
/// given, a socket filter.
fn open_socket(
    interface: &str,
    ifindex: i32,
    protocol: libc::c_int,
    filter: Option<&[libc::sock_filter]>,
) -> io::Result<OwnedFd> {
    // Protocol 0 first, so nothing is queued from other interfaces
    // before bind() narrows the socket to ours.
    // SAFETY: plain socket(2) call.
    let raw = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: raw is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    setsockopt_int(raw, libc::SOL_PACKET, PACKET_VNET_HDR, 1)
        .map_err(|e| io::Error::new(e.kind(), format!("PACKET_VNET_HDR on {interface}: {e}")))?;
    // The kernel strips a VLAN tag before a packet socket sees the frame
    // (hardware or skb_vlan_untag) and reports it only here: without it
    // a tagged frame would look like an untagged guest's.
    setsockopt_int(raw, libc::SOL_PACKET, PACKET_AUXDATA, 1)
        .map_err(|e| io::Error::new(e.kind(), format!("PACKET_AUXDATA on {interface}: {e}")))?;
    if let Err(e) = setsockopt_int(raw, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) {
        // Older kernels: we would see our own frames; the engine drops
        // them as not addressed to the gateway, so this is only a cost.
        tracing::warn!("PACKET_IGNORE_OUTGOING unavailable ({e}); own frames will be read back");
    }
    if let Some(code) = filter {
        // Before bind(): no frame is queued unfiltered.
        set_program(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, code).map_err(|e| {
            io::Error::new(e.kind(), format!("SO_ATTACH_FILTER on {interface}: {e}"))
        })?;
    }
    // Big buffers absorb bursts while the thread is busy elsewhere.
    for (opt, force) in [
        (libc::SO_RCVBUF, libc::SO_RCVBUFFORCE),
        (libc::SO_SNDBUF, libc::SO_SNDBUFFORCE),
    ] {
        if setsockopt_int(raw, libc::SOL_SOCKET, force, 4 << 20).is_err() {
            let _ = setsockopt_int(raw, libc::SOL_SOCKET, opt, 4 << 20);
        }
    }
    // SAFETY: zeroed sockaddr_ll is valid; we fill the fields bind needs.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (protocol as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a valid sockaddr_ll of the size given.
    cvt(unsafe {
        libc::bind(
            raw,
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map_err(|e| io::Error::new(e.kind(), format!("bind raw socket to {interface}: {e}")))?;
    Ok(fd)
}

impl LanPort {
    /// Open the raw socket on `interface`, non-blocking.
    pub fn open(interface: &str) -> io::Result<LanPort> {
        let ifindex = ifindex(interface)?;
        let fd = open_socket(interface, ifindex, libc::ETH_P_ALL, None)?;
        Ok(LanPort {
            fd,
            ipv4: None,
            ifindex,
        })
    }

    /// The kernel fast path's pair of sockets on `interface`: one for every
    /// protocol but untagged IPv4 ([`super::steer::all_but_ipv4`]), and one
    /// for IPv4 that skips the frames the LAN ingress chain marked with
    /// `mark` ([`super::steer::unmarked`]). A socket bound to one protocol
    /// sees a frame after the device's ingress hook has run; one bound to
    /// every protocol sees it before, when no mark is set yet.
    pub fn open_split(interface: &str, mark: u32) -> io::Result<LanPort> {
        let ifindex = ifindex(interface)?;
        let all = super::steer::all_but_ipv4();
        let fd = open_socket(interface, ifindex, libc::ETH_P_ALL, Some(&all))?;
        let unmarked = super::steer::unmarked(mark);
        let ipv4 = open_socket(interface, ifindex, libc::ETH_P_IP, Some(&unmarked))?;
        Ok(LanPort {
            fd,
            ipv4: Some(ipv4),
            ifindex,
        })
    }

    /// The IPv4 socket's descriptor, with the kernel fast path.
    pub fn ipv4_fd(&self) -> Option<RawFd> {
        self.ipv4.as_ref().map(|f| f.as_raw_fd())
    }

    /// Receive every multicast frame on the interface (`PACKET_MR_ALLMULTI`,
    /// held while the socket is open): IPv6 neighbour discovery and DHCPv6
    /// go to groups (all-routers, solicited-node, all-DHCP-servers) a NIC
    /// filters out unless someone joined them, and the kernel's IPv6 is off
    /// on the LAN.
    pub fn accept_all_multicast(&self) -> io::Result<()> {
        // SAFETY: zeroed packet_mreq is valid; we fill the fields it needs.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = self.ifindex;
        mreq.mr_type = libc::PACKET_MR_ALLMULTI as u16;
        // SAFETY: mreq is a valid packet_mreq of the size given.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })
        .map(|_| ())
        .map_err(|e| io::Error::new(e.kind(), format!("PACKET_MR_ALLMULTI: {e}")))
    }

    /// Join fanout group `group` on this interface: from now on each frame
    /// goes to one member socket, chosen by [`super::steer::program`], so
    /// one flow stays on one worker (no reordering) while flows spread over
    /// all, and what only the engine handles goes to the first member (the
    /// engine thread's socket, which must join first).
    ///
    /// A fanout group takes every frame on the device, lassi's own sends
    /// included: `PACKET_IGNORE_OUTGOING` belongs to the socket, not the
    /// group (the group's flag for it needs Linux 6.8). So each member gets
    /// a socket filter that drops outgoing frames before they are copied;
    /// without it a worker reads back every frame lassi sends.
    pub fn join_fanout(&self, group: u16) -> io::Result<()> {
        self.drop_outgoing()?;
        let arg = libc::c_int::from(group) | (PACKET_FANOUT_CBPF << 16);
        setsockopt_int(self.fd.as_raw_fd(), libc::SOL_PACKET, PACKET_FANOUT, arg)
            .map_err(|e| io::Error::new(e.kind(), format!("PACKET_FANOUT group {group}: {e}")))?;
        // The program belongs to the group; each member setting it again
        // replaces it with the same.
        let code = super::steer::program();
        set_program(&self.fd, libc::SOL_PACKET, PACKET_FANOUT_DATA, &code)
            .map_err(|e| io::Error::new(e.kind(), format!("PACKET_FANOUT_DATA: {e}")))
    }

    /// Attach a classic BPF filter that refuses outgoing frames (packet
    /// type `PACKET_OUTGOING`, read from the kernel's ancillary data).
    fn drop_outgoing(&self) -> io::Result<()> {
        let code = super::steer::drop_outgoing();
        set_program(&self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &code)
            .map_err(|e| io::Error::new(e.kind(), format!("SO_ATTACH_FILTER: {e}")))
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Receive up to a batch of frames in one system call (two with the
    /// kernel fast path's pair of sockets). Returns how many arrived (0
    /// when none are waiting); see [`RecvBatch::frame`].
    pub fn recv(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        // The kernel shrinks msg_controllen to what it wrote: give every
        // message its whole control buffer again.
        for m in batch.msgs.iter_mut() {
            m.msg_hdr.msg_controllen = (CONTROL_WORDS * 8) as _;
        }
        let got = recv_into(self.fd.as_raw_fd(), &mut batch.msgs)?;
        match &self.ipv4 {
            Some(v4) if got < batch.msgs.len() => {
                Ok(got + recv_into(v4.as_raw_fd(), &mut batch.msgs[got..])?)
            }
            _ => Ok(got),
        }
    }

    /// Send the frames queued in `batch` (each: vnet header + Ethernet
    /// frame) in as few system calls as the kernel allows, then clear it.
    /// Returns (sent, failed).
    pub fn send(&self, batch: &mut SendBatch) -> (usize, usize) {
        let total = batch.msgs.len();
        let (mut pos, mut ok, mut retried) = (0usize, 0usize, false);
        while pos < total {
            // SAFETY: msgs[pos..] point at iovecs over frames the caller
            // keeps alive until this call returns.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    batch.msgs[pos..].as_mut_ptr(),
                    (total - pos) as _,
                    0,
                )
            };
            if r > 0 {
                pos += r as usize;
                ok += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock if !retried => {
                    // Queue full: give the device a moment, then once more.
                    retried = true;
                    super::sys::wait_writable(self.fd.as_raw_fd(), 2);
                }
                io::ErrorKind::WouldBlock => break,
                _ => {
                    // One frame the device refuses (EINVAL for a vnet header,
                    // EMSGSIZE) must not block the rest: skip it.
                    tracing::debug!("LAN send failed: {e}");
                    pos += 1;
                }
            }
        }
        batch.clear();
        (ok, total - ok)
    }
}

/// Receive buffers and their scatter lists, allocated once.
pub struct RecvBatch {
    bufs: Vec<Box<[u8]>>,
    iovs: Vec<libc::iovec>,
    controls: Vec<[u64; CONTROL_WORDS]>,
    msgs: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    /// `n` buffers of [`MAX_FRAME`] bytes.
    pub fn new(n: usize) -> RecvBatch {
        let mut bufs: Vec<Box<[u8]>> = (0..n)
            .map(|_| vec![0u8; MAX_FRAME].into_boxed_slice())
            .collect();
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut controls = vec![[0u64; CONTROL_WORDS]; n];
        let msgs = iovs
            .iter_mut()
            .zip(controls.iter_mut())
            .map(|(iov, control)| {
                // SAFETY: an all-zero mmsghdr is a valid empty header.
                let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m.msg_hdr.msg_control = control.as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = (CONTROL_WORDS * 8) as _;
                m
            })
            .collect();
        RecvBatch {
            bufs,
            iovs,
            controls,
            msgs,
        }
    }

    /// The VLAN tag (TCI) the kernel stripped from frame `i` of the last
    /// receive, if it had one (VLAN 0 included).
    pub fn vlan(&self, i: usize) -> Option<u16> {
        let hdr = &self.msgs[i].msg_hdr;
        #[allow(clippy::unnecessary_cast)] // u32 on musl, usize on glibc
        let len = (hdr.msg_controllen as usize).min(CONTROL_WORDS * 8);
        // SAFETY: `controls[i]` is CONTROL_WORDS u64s; we read only `len`
        // bytes of it, which the kernel filled.
        let control: &[u8] =
            unsafe { std::slice::from_raw_parts(self.controls[i].as_ptr().cast(), len) };
        auxdata_vlan(control)
    }

    /// Frame `i` of the last receive: vnet header then Ethernet frame.
    pub fn frame(&mut self, i: usize) -> &mut [u8] {
        let len = (self.msgs[i].msg_len as usize).min(self.bufs[i].len());
        &mut self.bufs[i][..len]
    }

    /// Capacity in frames.
    pub fn capacity(&self) -> usize {
        self.iovs.len()
    }
}

/// The VLAN TCI in a control buffer holding a `PACKET_AUXDATA` message,
/// when its status says the tag is valid. Layout (linux/if_packet.h):
/// `tpacket_auxdata { u32 tp_status, tp_len, tp_snaplen; u16 tp_mac,
/// tp_net, tp_vlan_tci, tp_vlan_tpid; }` after a `cmsghdr`.
fn auxdata_vlan(control: &[u8]) -> Option<u16> {
    let hdr_len = mem::size_of::<libc::cmsghdr>();
    let mut at = 0;
    while at + hdr_len <= control.len() {
        // SAFETY: at + hdr_len is within the buffer; read_unaligned copes
        // with any alignment.
        let c: libc::cmsghdr = unsafe { std::ptr::read_unaligned(control[at..].as_ptr().cast()) };
        let clen = c.cmsg_len as usize;
        if clen < hdr_len || at + clen > control.len() {
            return None;
        }
        let data = &control[at + hdr_len..at + clen];
        if c.cmsg_level == libc::SOL_PACKET && c.cmsg_type == PACKET_AUXDATA && data.len() >= 20 {
            let status = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
            let tci = u16::from_ne_bytes([data[16], data[17]]);
            return (status & TP_STATUS_VLAN_VALID != 0).then_some(tci);
        }
        // Next header, aligned as CMSG_NXTHDR does.
        let align = mem::size_of::<usize>();
        at += clen.div_ceil(align) * align;
    }
    None
}

/// Scatter lists for one sendmmsg, reused between calls (no allocation
/// once warmed up).
#[derive(Default)]
pub struct SendBatch {
    iovs: Vec<[libc::iovec; 2]>,
    msgs: Vec<libc::mmsghdr>,
}

impl SendBatch {
    /// Empty batch with room for `n` frames.
    pub fn with_capacity(n: usize) -> SendBatch {
        SendBatch {
            iovs: Vec::with_capacity(n),
            msgs: Vec::with_capacity(n),
        }
    }

    /// Queue a frame made of `head` followed by `body` (e.g. a zero vnet
    /// header and an engine-built frame). The memory must stay valid and
    /// unmoved until [`LanPort::send`] returns.
    pub fn push(&mut self, head: &[u8], body: &[u8]) {
        assert!(
            self.iovs.len() < self.iovs.capacity(),
            "SendBatch overfilled"
        );
        self.iovs.push([
            libc::iovec {
                iov_base: head.as_ptr() as *mut libc::c_void,
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: body.as_ptr() as *mut libc::c_void,
                iov_len: body.len(),
            },
        ]);
        // iovs never reallocates (capacity checked above), so the pointers
        // taken here stay valid.
        let iov = self.iovs.last_mut().expect("just pushed");
        // SAFETY: an all-zero mmsghdr is a valid empty header.
        let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
        m.msg_hdr.msg_iov = iov.as_mut_ptr();
        m.msg_hdr.msg_iovlen = if body.is_empty() { 1 } else { 2 };
        self.msgs.push(m);
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// True when no more frames fit.
    pub fn is_full(&self) -> bool {
        self.iovs.len() == self.iovs.capacity()
    }

    fn clear(&mut self) {
        self.iovs.clear();
        self.msgs.clear();
    }
}

impl AsRawFd for LanPort {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(status: u32, tci: u16) -> Vec<u8> {
        let hdr_len = mem::size_of::<libc::cmsghdr>();
        // SAFETY: an all-zero cmsghdr is valid; the fields are then set.
        let mut c: libc::cmsghdr = unsafe { mem::zeroed() };
        c.cmsg_len = (hdr_len + 20) as _;
        c.cmsg_level = libc::SOL_PACKET;
        c.cmsg_type = PACKET_AUXDATA;
        let mut b = vec![0u8; hdr_len + 24];
        // SAFETY: b has room for a cmsghdr at its start.
        unsafe { std::ptr::write_unaligned(b.as_mut_ptr().cast(), c) };
        b[hdr_len..hdr_len + 4].copy_from_slice(&status.to_ne_bytes());
        b[hdr_len + 16..hdr_len + 18].copy_from_slice(&tci.to_ne_bytes());
        b
    }

    #[test]
    fn auxdata_reports_a_stripped_tag_vlan_zero_included() {
        // What the kernel sent on a veth for Dot1Q(vlan=5) and vlan=0
        // (status 0x51: user, VLAN_VALID, VLAN_TPID_VALID) and untagged (0x1).
        assert_eq!(auxdata_vlan(&control(0x51, 5)), Some(5));
        assert_eq!(auxdata_vlan(&control(0x51, 0)), Some(0));
        assert_eq!(auxdata_vlan(&control(0x1, 0)), None);
        assert_eq!(auxdata_vlan(&[]), None);
        assert_eq!(auxdata_vlan(&control(0x51, 5)[..10]), None, "truncated");
    }
}
