//! Resident memory of the real `lassi run` daemon: idle, and with 1,000 and
//! 10,000 clients in its session table; bytes per client.
//!
//! `cargo bench --bench memory` (root: it builds a lab of network namespaces,
//! see `crates/lassi-lab`). Cargo builds the `lassi` binary in the bench profile
//! (= release: size-optimised, LTO) next to this bench, and that is what runs;
//! `LASSI_BINS=path[,path…]` measures other builds instead (e.g. the static
//! musl one from `bench/build-release`). When the static x86_64 musl build from
//! `bench/build-release` exists (`$CARGO_TARGET_DIR/dist/`) it is measured as well.
//!
//! Clients are synthetic: one thread joins a client namespace, opens an
//! AF_PACKET socket on its `eth0` and runs DISCOVER/OFFER/REQUEST/ACK for N
//! distinct MACs, so every client costs lassi exactly what a real one costs
//! (a DHCP lease and a session). `lassi sessions --json` confirms the count.
//! RSS is VmRSS from /proc/PID/status. Prints figures and ratios; no
//! thresholds (the goal is ≤ 8 MiB at 1,000 clients).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode};
use dhcproto::{Decodable, Encodable};
use lassi::wire::frame::{udp_frame, UdpAddressing};
use lassi::wire::MacAddr;
use lassi_lab::upstream::enter_netns;
use lassi_lab::{Lab, LabOptions, LassiHandle};

const STEPS: [usize; 2] = [1_000, 10_000];
/// DHCP exchanges in flight at once.
const WINDOW: usize = 32;

fn main() {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`:
    // the measurement is for `cargo bench` only.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench memory: measured by `cargo bench --bench memory`; nothing to test");
        return;
    }
    if unsafe { libc::geteuid() } != 0 {
        println!("bench memory: skipped, needs root (network namespaces)");
        return;
    }
    let mut bins: Vec<Option<PathBuf>> = match std::env::var("LASSI_BINS") {
        Ok(s) if !s.is_empty() => s.split(',').map(|p| Some(PathBuf::from(p))).collect(),
        _ => vec![None],
    };
    if std::env::var("LASSI_BINS").is_err() {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        let musl = PathBuf::from(target).join("dist/lassi-x86_64-unknown-linux-musl");
        if musl.is_file() {
            bins.push(Some(musl));
        }
    }
    let mut failed = false;
    for bin in bins {
        if let Err(e) = measure(bin) {
            eprintln!("bench memory: FAILED: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}

struct Row {
    label: String,
    sessions: usize,
    rss_kib: u64,
    hwm_kib: u64,
}

fn measure(bin: Option<PathBuf>) -> Result<(), String> {
    let lab = Lab::new(LabOptions {
        clients: 1,
        lassi_bin: bin,
        ..LabOptions::default()
    })?;
    let bin = lab.lassi_bin();
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    // A /16 so the pool holds every synthetic client; day-long leases so
    // none expires during the run.
    let mut lassi = lab.start_lassi("[lan]\nnetwork = \"10.1.0.0/16\"\nlease_time = 86400\n")?;
    let pid = lassi_pid(&mut lassi)?;
    let client = lab.client(1);
    client.ns().ip(&["link", "set", "eth0", "promisc", "on"])?;

    std::thread::sleep(Duration::from_millis(1500));
    let mut rows = vec![snapshot(pid, "idle", 0)?];
    let mut done = 0usize;
    let mut dhcp_secs = 0.0;
    for &n in &STEPS {
        let ns = client.name().to_string();
        let (from, to) = (done, n);
        let t = Instant::now();
        let joined = std::thread::spawn(move || lease_clients(&ns, from, to))
            .join()
            .map_err(|_| "client thread panicked".to_string())?;
        joined?;
        dhcp_secs += t.elapsed().as_secs_f64();
        done = n;
        // Let the lease store's periodic save run, then let it settle.
        std::thread::sleep(Duration::from_millis(2500));
        rows.push(snapshot(pid, &format!("{n} clients"), n)?);
        let count = session_count(&lassi)?;
        if count != n {
            return Err(format!(
                "lassi reports {count} sessions, expected {n}\n{}",
                lassi.log_tail(20)
            ));
        }
        rows.push(snapshot(
            pid,
            &format!("{n} clients, after `sessions --json`"),
            n,
        )?);
    }

    println!();
    println!(
        "lassi memory: {} ({} bytes), pid {pid}; {} DHCP clients leased in {:.1} s",
        bin.display(),
        size,
        done,
        dhcp_secs
    );
    println!(
        "{:<40} {:>9} {:>12} {:>12} {:>9}",
        "state", "sessions", "VmRSS KiB", "VmHWM KiB", "vs idle"
    );
    let idle = rows[0].rss_kib as f64;
    for r in &rows {
        println!(
            "{:<40} {:>9} {:>12} {:>12} {:>8.2}x",
            r.label,
            r.sessions,
            r.rss_kib,
            r.hwm_kib,
            r.rss_kib as f64 / idle
        );
    }
    // Per-client cost from the rows measured before any listing.
    let at = |n: usize| rows.iter().find(|r| r.label == format!("{n} clients"));
    let (k1, k10) = (at(1_000).unwrap(), at(10_000).unwrap());
    let per = |a: &Row, b: &Row| {
        (b.rss_kib as f64 - a.rss_kib as f64) * 1024.0 / (b.sessions - a.sessions) as f64
    };
    println!(
        "bytes per client: {:.0} (idle → 1,000), {:.0} (1,000 → 10,000)",
        per(&rows[0], k1),
        per(k1, k10)
    );
    println!(
        "RSS at 1,000 clients: {:.2} MiB (goal ≤ 8 MiB) = {:.2}x idle; at 10,000: {:.2} MiB = {:.2}x idle",
        k1.rss_kib as f64 / 1024.0,
        k1.rss_kib as f64 / idle,
        k10.rss_kib as f64 / 1024.0,
        k10.rss_kib as f64 / idle
    );
    lassi.stop();
    Ok(())
}

/// The PID of the lassi process itself (the lab starts it through
/// `ip netns exec` and a shell, both of which exec).
fn lassi_pid(h: &mut LassiHandle) -> Result<i32, String> {
    let pid = h.pid().ok_or("lassi is not running")?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    // comm is the executable's file name, cut to 15 bytes.
    let name = h.bin().file_name().unwrap_or_default().to_string_lossy();
    let want: String = name.chars().take(15).collect();
    if comm.trim() != want {
        return Err(format!("pid {pid} is `{}`, not {name}", comm.trim()));
    }
    Ok(pid)
}

fn snapshot(pid: i32, label: &str, sessions: usize) -> Result<Row, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Row {
        label: label.to_string(),
        sessions,
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    })
}

fn session_count(h: &LassiHandle) -> Result<usize, String> {
    let v = h.sessions_json()?;
    v.as_array()
        .map(|a| a.len())
        .ok_or_else(|| format!("`sessions --json` is not an array: {v:.200}"))
}

/// Synthetic client number `i` (1-based): a locally administered MAC.
fn client_mac(i: usize) -> MacAddr {
    MacAddr([0x02, 0x4c, 0x61, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

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

/// Runs DORA for clients `from+1 ..= to` from inside namespace `ns`.
fn lease_clients(ns: &str, from: usize, to: usize) -> Result<(), String> {
    enter_netns(ns)?;
    let sock = PacketSocket::open("eth0")?;
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
        while pending.len() < WINDOW && next <= to {
            let p = Pending {
                client: next,
                stage: Stage::Discover,
                sent: Instant::now(),
                tries: 1,
            };
            sock.send(&client_frame(next, Stage::Discover)?)?;
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
                sock.send(&client_frame(p.client, p.stage)?)?;
            }
        }
        let Some(n) = sock.recv(&mut buf)? else {
            continue;
        };
        let Some(reply) = server_reply(&buf[..n]) else {
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
                sock.send(&client_frame(p.client, p.stage)?)?;
            }
            Some(MessageType::Ack) if matches!(p.stage, Stage::Request(..)) => {
                pending.remove(&reply.xid());
            }
            Some(MessageType::Nak) => {
                p.stage = Stage::Discover;
                p.sent = Instant::now();
                sock.send(&client_frame(p.client, p.stage)?)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn client_frame(i: usize, stage: Stage) -> Result<Vec<u8>, String> {
    let mac = client_mac(i);
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(i as u32, z, z, z, z, &mac.0);
    m.set_flags(Flags::default().set_broadcast());
    let opts = m.opts_mut();
    match stage {
        Stage::Discover => {
            opts.insert(DhcpOption::MessageType(MessageType::Discover));
        }
        Stage::Request(ip, server) => {
            opts.insert(DhcpOption::MessageType(MessageType::Request));
            opts.insert(DhcpOption::RequestedIpAddress(ip));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
    }
    let payload = m.to_vec().map_err(|e| e.to_string())?;
    Ok(udp_frame(
        &UdpAddressing {
            src_mac: mac,
            dst_mac: MacAddr::BROADCAST,
            src_ip: z,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
        },
        &payload,
    ))
}

/// A DHCP reply (UDP 67 → 68) in an Ethernet frame, decoded.
fn server_reply(f: &[u8]) -> Option<Message> {
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

/// An AF_PACKET socket bound to one interface (IPv4 frames only).
struct PacketSocket {
    fd: std::os::fd::OwnedFd,
}

impl PacketSocket {
    fn open(ifname: &str) -> Result<Self, String> {
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
                tv_sec: 0,
                tv_usec: 20_000,
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

    fn send(&self, frame: &[u8]) -> Result<(), String> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.fd);
        // SAFETY: frame is a valid buffer for its length.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(format!("send: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// One frame, or None after the receive timeout.
    fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>, String> {
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
