//! Raw frames on a LAN port, for the benchmarks that play thousands of
//! DHCP clients from one process: an AF_PACKET socket, the server's DHCP
//! replies picked out of what it receives, and /proc readings of a process.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode};
use dhcproto::{Decodable, Encodable};
use lassi::wire::frame::{udp_frame, UdpAddressing};
use lassi::wire::MacAddr;

/// Synthetic client number `i` (1-based): a locally administered MAC.
pub fn synthetic_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0x4c, 0x61, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

/// A message a synthetic DHCP client sends.
#[derive(Clone, Copy, Debug)]
pub enum ClientMessage {
    /// DHCPDISCOVER, broadcast.
    Discover,
    /// DHCPREQUEST for `ip` offered by `server`, broadcast.
    Request {
        /// The offered address.
        ip: Ipv4Addr,
        /// The offering server's identifier.
        server: Ipv4Addr,
    },
    /// DHCPRELEASE of `ip`, unicast to `server` at `gw_mac` as RFC 2131 says.
    Release {
        /// The address given back.
        ip: Ipv4Addr,
        /// The server that leased it.
        server: Ipv4Addr,
        /// The server's MAC.
        gw_mac: MacAddr,
    },
}

/// Synthetic client `i`'s `msg` with transaction id `xid`, in its
/// Ethernet frame (UDP 68 → 67).
pub fn dhcp_client_frame(i: usize, xid: u32, msg: ClientMessage) -> Result<Vec<u8>, String> {
    let mac = synthetic_mac(i);
    let z = Ipv4Addr::UNSPECIFIED;
    let (ciaddr, dst_mac, dst_ip) = match msg {
        ClientMessage::Release { ip, server, gw_mac } => (ip, gw_mac, server),
        _ => (z, MacAddr::BROADCAST, Ipv4Addr::BROADCAST),
    };
    let mut m = Message::new_with_id(xid, ciaddr, z, z, z, &mac.0);
    if ciaddr.is_unspecified() {
        m.set_flags(Flags::default().set_broadcast());
    }
    let opts = m.opts_mut();
    match msg {
        ClientMessage::Discover => {
            opts.insert(DhcpOption::MessageType(MessageType::Discover));
        }
        ClientMessage::Request { ip, server } => {
            opts.insert(DhcpOption::MessageType(MessageType::Request));
            opts.insert(DhcpOption::RequestedIpAddress(ip));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
        ClientMessage::Release { server, .. } => {
            opts.insert(DhcpOption::MessageType(MessageType::Release));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
    }
    let payload = m.to_vec().map_err(|e| e.to_string())?;
    let addressing = UdpAddressing {
        src_mac: mac,
        dst_mac,
        src_ip: ciaddr,
        dst_ip,
        src_port: 68,
        dst_port: 67,
    };
    Ok(udp_frame(&addressing, &payload))
}

/// A DHCP reply (UDP 67 → 68) in an Ethernet frame, decoded.
pub fn dhcp_server_reply(f: &[u8]) -> Option<Message> {
    if f.len() < 14 + 20 + 8 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 17 || ip.len() < ihl + 8 {
        return None;
    }
    let udp = &ip[ihl..];
    if udp[0..2] != 67u16.to_be_bytes() || udp[2..4] != 68u16.to_be_bytes() {
        return None;
    }
    let m = Message::from_bytes(&udp[8..]).ok()?;
    (m.opcode() == Opcode::BootReply).then_some(m)
}

/// A `kB` field of `/proc/PID/status` (`"VmRSS:"`, `"VmHWM:"`).
pub fn proc_status_kib(pid: i32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// An AF_PACKET socket bound to one interface (IPv4 frames only), with a
/// receive timeout so a driver's loop keeps its timers.
pub struct PacketSocket {
    fd: std::os::fd::OwnedFd,
}

impl PacketSocket {
    /// Opens the socket on `ifname` (in the calling thread's namespace).
    pub fn open(ifname: &str, recv_timeout: std::time::Duration) -> Result<Self, String> {
        use std::os::fd::FromRawFd;
        let proto = (libc::ETH_P_IP as u16).to_be();
        // SAFETY: plain socket/bind/setsockopt calls on a fd we own.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            );
            if fd < 0 {
                return Err(format!(
                    "AF_PACKET socket: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let name = std::ffi::CString::new(ifname).unwrap();
            let ifindex = libc::if_nametoindex(name.as_ptr());
            if ifindex == 0 {
                return Err(format!("no interface {ifname}"));
            }
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            if libc::bind(
                raw,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                return Err(format!(
                    "bind to {ifname}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let tv = libc::timeval {
                tv_sec: recv_timeout.as_secs() as libc::time_t,
                tv_usec: recv_timeout.subsec_micros() as libc::suseconds_t,
            };
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            Ok(PacketSocket { fd })
        }
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> Result<(), String> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        // SAFETY: frame is a valid buffer for its length.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(format!("send: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// One frame, or None after the receive timeout.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>, String> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        // SAFETY: buf is a valid writable buffer for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
                _ => Err(format!("recv: {e}")),
            };
        }
        Ok(Some(n as usize))
    }
}
