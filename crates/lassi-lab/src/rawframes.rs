//! Raw frames on a LAN port, for the benchmarks that play thousands of
//! DHCP clients from one process: an AF_PACKET socket, the server's DHCP
//! replies picked out of what it receives, synthetic clients leased in bulk
//! ([`lease_synthetic_clients`]), and /proc readings of a process.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

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

/// DHCP exchanges in flight at once in [`lease_synthetic_clients`].
const DHCP_WINDOW: usize = 32;

#[derive(Clone, Copy)]
enum Stage {
    Discover,
    Request(Ipv4Addr, Ipv4Addr),
}

struct Pending {
    client: usize,
    stage: Stage,
    sent: Instant,
    tries: u32,
}

/// Leases synthetic clients `from+1 ..= to` ([`synthetic_mac`]) from the
/// `eth0` of client namespace `ns`: DISCOVER/OFFER/REQUEST/ACK for each,
/// [`DHCP_WINDOW`] at a time, retransmitting what goes unanswered.
///
/// Runs on a thread of its own (it joins `ns`) and returns when every
/// client holds a lease. `eth0` must be promiscuous (the replies go to
/// the synthetic MACs), and the server's pool must hold `to` clients.
pub fn lease_synthetic_clients(ns: &str, from: usize, to: usize) -> Result<(), String> {
    let ns = ns.to_string();
    std::thread::spawn(move || lease_clients_here(&ns, from, to))
        .join()
        .map_err(|_| "synthetic DHCP client thread panicked".to_string())?
}

fn lease_clients_here(ns: &str, from: usize, to: usize) -> Result<(), String> {
    crate::upstream::enter_netns(ns)?;
    let sock = PacketSocket::open("eth0", Duration::from_millis(20))?;
    let mut next = from + 1;
    let mut pending: HashMap<u32, Pending> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(30 + (to - from) as u64 / 50);
    while next <= to || !pending.is_empty() {
        if Instant::now() > deadline {
            return Err(format!(
                "DHCP for clients {}..={to} did not finish in time ({} still pending)",
                from + 1,
                pending.len()
            ));
        }
        while pending.len() < DHCP_WINDOW && next <= to {
            let p = Pending {
                client: next,
                stage: Stage::Discover,
                sent: Instant::now(),
                tries: 1,
            };
            sock.send(&stage_frame(next, Stage::Discover)?)?;
            pending.insert(next as u32, p);
            next += 1;
        }
        // Retransmit what went unanswered.
        for p in pending.values_mut() {
            if p.sent.elapsed() > Duration::from_millis(500) {
                if p.tries >= 10 {
                    return Err(format!("client {} got no answer in 10 tries", p.client));
                }
                p.tries += 1;
                p.sent = Instant::now();
                sock.send(&stage_frame(p.client, p.stage)?)?;
            }
        }
        let Some(n) = sock.recv(&mut buf)? else {
            continue;
        };
        let Some(reply) = dhcp_server_reply(&buf[..n]) else {
            continue;
        };
        let Some(p) = pending.get_mut(&reply.xid()) else {
            continue;
        };
        match reply.opts().msg_type() {
            Some(MessageType::Offer) => {
                let server = match reply.opts().get(dhcproto::v4::OptionCode::ServerIdentifier) {
                    Some(DhcpOption::ServerIdentifier(s)) => *s,
                    _ => return Err("OFFER without server identifier".into()),
                };
                p.stage = Stage::Request(reply.yiaddr(), server);
                p.sent = Instant::now();
                p.tries = 1;
                sock.send(&stage_frame(p.client, p.stage)?)?;
            }
            Some(MessageType::Ack) if matches!(p.stage, Stage::Request(..)) => {
                pending.remove(&reply.xid());
            }
            Some(MessageType::Nak) => {
                p.stage = Stage::Discover;
                p.sent = Instant::now();
                sock.send(&stage_frame(p.client, p.stage)?)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn stage_frame(i: usize, stage: Stage) -> Result<Vec<u8>, String> {
    let msg = match stage {
        Stage::Discover => ClientMessage::Discover,
        Stage::Request(ip, server) => ClientMessage::Request { ip, server },
    };
    dhcp_client_frame(i, i as u32, msg)
}

/// CPU time process `pid` has used, all its threads, in seconds
/// (utime + stime of `/proc/PID/stat`, clock-tick resolution).
pub fn proc_cpu_seconds(pid: i32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("reading /proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("odd /proc/{pid}/stat: {stat}"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64, String> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no field {} in /proc/{pid}/stat", i + 3))
    };
    let ticks = field(11)? + field(12)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}
