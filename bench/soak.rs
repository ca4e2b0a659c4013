//! Soak: the real `lassi run` daemon with 1,000 churning clients and
//! FreeRADIUS accounting for a stated time; does memory stay flat and does
//! every accounting record arrive?
//!
//! `cargo bench --bench soak -- [--secs N] [--clients N] [--session-secs N]`
//! (root: it builds a lab of network namespaces, see `crates/lassi-lab`). Defaults:
//! 600 s, 1,000 clients, sessions of 30–`session-secs` (120) s. `--secs 20`
//! is a smoke run. `LASSI_BINS=path` soaks another build.
//!
//! Every client is synthetic, as in `bench/memory.rs`: one thread joins a
//! client namespace and speaks for all of them on its `eth0` through an
//! AF_PACKET socket. A client's cycle: DHCP DISCOVER/OFFER/REQUEST/ACK, a
//! login through the control socket (`authorize`, as `lassi authorize`),
//! UDP datagrams to the upstream host 198.51.100.10 once a second (they
//! cross lassi's data plane and are counted), a logout (`logout`), a
//! DHCPRELEASE, a pause, and again. Interim-Updates every 60 s.
//!
//! Prints VmRSS at start (all clients logged in once), middle and end, the
//! accounting records FreeRADIUS wrote (its detail file) against lassi's
//! own count of acknowledged records (`radius` in `lassi status`), and the
//! spool depth. Fails when a session lacks its Start or Stop, or a record
//! lassi counts as acknowledged is missing from the detail file. No
//! thresholds on RSS (the machine is shared): the figures are printed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use lassi::control::ControlRequest as Request;
use lassi::wire::frame::{udp_frame, UdpAddressing};
use lassi::wire::MacAddr;
use lassi_lab::radius::{FreeRadius, FreeRadiusOptions, RADIUS_ADDR};
use lassi_lab::rawframes::{
    dhcp_client_frame, dhcp_server_reply, proc_status_kib, synthetic_mac, ClientMessage,
    PacketSocket,
};
use lassi_lab::upstream::enter_netns;
use lassi_lab::{Lab, LabOptions, LassiHandle};

/// DHCP exchanges in flight at once.
const WINDOW: usize = 32;
/// Where the clients' traffic goes: the lab's upstream web host (UDP to a
/// closed port; the ICMP answers are the downstream traffic).
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

struct Args {
    secs: u64,
    clients: usize,
    session_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        secs: 600,
        clients: 1_000,
        session_secs: 120,
    };
    let argv: Vec<String> = std::env::args().collect();
    let num = |i: usize| -> u64 {
        argv.get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{} wants a number", argv[i]))
    };
    for (i, arg) in argv.iter().enumerate() {
        match arg.as_str() {
            "--secs" => a.secs = num(i),
            "--clients" => a.clients = num(i) as usize,
            "--session-secs" => a.session_secs = num(i).max(31),
            _ => {}
        }
    }
    a
}

fn main() {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench soak: run by `cargo bench --bench soak`; nothing to test");
        return;
    }
    if unsafe { libc::geteuid() } != 0 {
        println!("bench soak: skipped, needs root (network namespaces)");
        return;
    }
    match soak(args()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("bench soak: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

const USERS: &str = "DEFAULT\tCleartext-Password := \"unused\"\n";

fn lassi_config() -> String {
    format!(
        r#"
[lan]
network = "10.1.0.0/16"
lease_time = 86400

[session]
interim_interval = 60

[radius]
nas_identifier = "lassi-soak"
require_message_authenticator = true

[[radius.server]]
address = "{RADIUS_ADDR}"
secret = "testing123"
auth_port = 1812
acct_port = 1813
"#
    )
}

/// What the bench holds; field order is drop order (lassi's clean stop
/// still reaches FreeRADIUS, then the lab goes).
struct World {
    lassi: LassiHandle,
    fr: FreeRadius,
    lab: Lab,
}

fn soak(a: Args) -> Result<bool, String> {
    let bin = std::env::var("LASSI_BINS").ok().map(PathBuf::from);
    let lab = Lab::new(LabOptions {
        clients: 1,
        lassi_bin: bin,
        ..LabOptions::default()
    })?;
    let fr = lab.start_freeradius(FreeRadiusOptions::lab(USERS))?;
    let lassi = lab.start_lassi(&lassi_config())?;
    let mut w = World { lassi, fr, lab };
    let pid = lassi_pid(&mut w.lassi)?;
    w.lab
        .client(1)
        .ns()
        .ip(&["link", "set", "eth0", "promisc", "on"])?;
    std::thread::sleep(Duration::from_millis(1000));
    println!(
        "bench soak: {} clients for {} s, sessions 30–{} s, lassi pid {pid} ({})",
        a.clients,
        a.secs,
        a.session_secs,
        w.lassi.bin().display()
    );

    let counts = Arc::new(Counts::default());
    let driver = {
        let ns = w.lab.client(1).name().to_string();
        let sock = w.lassi.control_socket().to_path_buf();
        let counts = counts.clone();
        let (n, secs, sess) = (a.clients, a.secs, a.session_secs);
        std::thread::spawn(move || {
            let mut d = Driver::new(&ns, &sock, n, sess, counts)?;
            d.lassi_pid = pid;
            d.run(secs)
        })
    };
    let rss = watch(pid, &w.lassi, &counts, a.secs, &driver);
    let driven = driver
        .join()
        .map_err(|_| "client thread panicked".to_string())?;
    if let Err(e) = driven {
        return Err(format!("{e}\n{}", w.lab.logs_report(30)));
    }
    let end = counts.end_rss.load(Ordering::Relaxed);
    report(&mut w, &counts, rss, end)
}

/// What the client thread did (read by the main thread).
#[derive(Default)]
struct Counts {
    leases: AtomicU64,
    logins: AtomicU64,
    logouts: AtomicU64,
    releases: AtomicU64,
    datagrams: AtomicU64,
    /// Set once every client has logged in once: the start of the soak.
    warm: AtomicBool,
    /// lassi's VmRSS (KiB) when the churn ended, before the last logouts:
    /// the same load as at the start.
    end_rss: AtomicU64,
}

/// Samples RSS when the first wave is in, at half time, and prints a line
/// every 30 s; returns (start, middle) in KiB.
fn watch(
    pid: i32,
    lassi: &LassiHandle,
    c: &Counts,
    secs: u64,
    driver: &std::thread::JoinHandle<Result<(), String>>,
) -> (u64, u64) {
    let t0 = Instant::now();
    let (mut start, mut mid) = (0, 0);
    let mut next_line = Duration::ZERO;
    while !driver.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        let rss = rss_kib(pid).unwrap_or(0);
        if start == 0 && c.warm.load(Ordering::Relaxed) {
            start = rss;
            println!("start: VmRSS {rss} KiB (every client logged in once)");
        }
        if mid == 0 && t0.elapsed() >= Duration::from_secs(secs / 2) {
            mid = rss;
            println!("middle: VmRSS {rss} KiB");
        }
        if t0.elapsed() >= next_line {
            next_line += Duration::from_secs(30);
            let r = radius_stats(lassi).unwrap_or_default();
            println!(
                "{:>5.0} s: VmRSS {rss} KiB, leases {}, logins {}, logouts {}, datagrams {}, acct acked {}, spool {}",
                t0.elapsed().as_secs_f64(),
                c.leases.load(Ordering::Relaxed),
                c.logins.load(Ordering::Relaxed),
                c.logouts.load(Ordering::Relaxed),
                c.datagrams.load(Ordering::Relaxed),
                r.get("acct_acked").unwrap_or(0),
                r.get("spool_pending").unwrap_or(0),
            );
        }
    }
    (start, mid)
}

/// The end: every session logged out; wait for the spool to drain, then
/// compare lassi's count with FreeRADIUS's detail file.
fn report(w: &mut World, c: &Counts, (start, mid): (u64, u64), end: u64) -> Result<bool, String> {
    // The last Stops are still on their way (data plane, spool, server):
    // wait until every login has its Stop and the spool is empty.
    let logins = c.logins.load(Ordering::Relaxed);
    let t = Instant::now();
    let stops = |fr: &FreeRadius| fr.detail().iter().filter(|d| d.status() == "Stop").count();
    let mut r = radius_stats(&w.lassi)?;
    while (r.get("spool_pending") != Some(0) || (stops(&w.fr) as u64) < logins)
        && t.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(500));
        r = radius_stats(&w.lassi)?;
    }
    println!(
        "accounting settled {:.1} s after the last logout",
        t.elapsed().as_secs_f64()
    );
    let hwm = hwm_kib(w.lassi.pid().unwrap_or(0));
    let detail = w.fr.detail();
    let by = |s: &str| detail.iter().filter(|d| d.status() == s).count();
    let unique: std::collections::HashSet<String> = detail.iter().map(|d| d.identity()).collect();
    let acked = r.get("acct_acked").unwrap_or(0);
    println!();
    println!(
        "VmRSS KiB: start {start}, middle {mid}, end {end}: end/start {:.3}; VmHWM {hwm}",
        end as f64 / start.max(1) as f64
    );
    println!(
        "clients: {} leases, {logins} logins, {} logouts, {} releases, {} datagrams",
        c.leases.load(Ordering::Relaxed),
        c.logouts.load(Ordering::Relaxed),
        c.releases.load(Ordering::Relaxed),
        c.datagrams.load(Ordering::Relaxed)
    );
    println!(
        "FreeRADIUS detail: {} records ({} distinct): {} Accounting-On, {} Start, {} Interim-Update, {} Stop",
        detail.len(),
        unique.len(),
        by("Accounting-On"),
        by("Start"),
        by("Interim-Update"),
        by("Stop")
    );
    println!(
        "lassi: acct_acked {acked}, acct_unanswered {}, spool_pending {}, spool_refused {}, acct_lost {}, sent {}, retransmits {}",
        r.get("acct_unanswered").unwrap_or(0),
        r.get("spool_pending").unwrap_or(0),
        r.get("spool_refused").unwrap_or(0),
        r.get("acct_lost").unwrap_or(0),
        r.get("sent").unwrap_or(0),
        r.get("retransmits").unwrap_or(0),
    );
    let lost = logins.saturating_sub(by("Start") as u64) + logins.saturating_sub(by("Stop") as u64);
    let missing = acked.saturating_sub(unique.len() as u64);
    println!("records lost: {lost} (Starts and Stops missing for {logins} logins); acknowledged by lassi's count but not in the detail file: {missing}");
    let ok = lost == 0 && missing == 0 && r.get("spool_pending") == Some(0);
    w.lassi.stop();
    println!("bench soak: {}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

/// The counters of `radius` in `lassi status` (with the client engine's
/// flattened in), by name.
fn radius_stats(lassi: &LassiHandle) -> Result<Counters, String> {
    let v = control(lassi.control_socket(), &Request::Status)?;
    let r = v.get("radius").ok_or("`lassi status` has no `radius`")?;
    let mut m = HashMap::new();
    let obj = r.as_object().into_iter().flatten();
    let client = r
        .get("client")
        .and_then(|c| c.as_object())
        .into_iter()
        .flatten();
    for (k, v) in obj.chain(client) {
        if let Some(n) = v.as_u64() {
            m.insert(k.clone(), n);
        }
    }
    Ok(Counters(m))
}

#[derive(Default)]
struct Counters(HashMap<String, u64>);

impl Counters {
    fn get(&self, k: &str) -> Option<u64> {
        self.0.get(k).copied()
    }
}

/// One request on lassi's control socket (a Unix socket: reachable from
/// any network namespace), its JSON reply.
fn control(sock: &Path, req: &Request) -> Result<serde_json::Value, String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("control socket: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    let mut reply = String::new();
    BufReader::new(s)
        .read_line(&mut reply)
        .map_err(|e| format!("control reply: {e}"))?;
    serde_json::from_str(&reply).map_err(|e| format!("control reply {reply:.200}: {e}"))
}

fn lassi_pid(h: &mut LassiHandle) -> Result<i32, String> {
    h.pid().ok_or_else(|| "lassi is not running".to_string())
}

fn rss_kib(pid: i32) -> Result<u64, String> {
    proc_status_kib(pid, "VmRSS:")
}

/// The peak RSS, 0 when unknown.
fn hwm_kib(pid: i32) -> u64 {
    proc_status_kib(pid, "VmHWM:").unwrap_or(0)
}

/// Where one synthetic client is in its cycle.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Waiting to start a new cycle at this time.
    Idle(Instant),
    /// DISCOVER sent.
    Discovering,
    /// REQUEST sent for (address, server).
    Requesting(Ipv4Addr, Ipv4Addr),
    /// Logged in with this address until the given time.
    Online(Ipv4Addr, Ipv4Addr, Instant),
}

struct Synth {
    state: State,
    sent: Instant,
    tries: u32,
    /// Bumped every cycle so replies to an old cycle are ignored.
    cycle: u32,
    next_datagram: Instant,
}

/// The client thread: every synthetic client's state and the socket they
/// share.
struct Driver {
    sock: PacketSocket,
    control: PathBuf,
    clients: Vec<Synth>,
    session_secs: u64,
    gw_mac: Option<MacAddr>,
    rng: u64,
    counts: Arc<Counts>,
    logged_in_once: usize,
    lassi_pid: i32,
}

impl Driver {
    fn new(
        ns: &str,
        control: &Path,
        n: usize,
        session_secs: u64,
        counts: Arc<Counts>,
    ) -> Result<Driver, String> {
        enter_netns(ns)?;
        let now = Instant::now();
        let clients = (0..n)
            .map(|_| Synth {
                state: State::Idle(now),
                sent: now,
                tries: 0,
                cycle: 0,
                next_datagram: now,
            })
            .collect();
        Ok(Driver {
            sock: PacketSocket::open("eth0", Duration::from_millis(10))?,
            control: control.to_path_buf(),
            clients,
            session_secs,
            gw_mac: None,
            rng: 0x9e37_79b9_7f4a_7c15,
            counts,
            logged_in_once: 0,
            lassi_pid: 0,
        })
    }

    fn rand(&mut self, below: u64) -> u64 {
        // xorshift64: reproducible runs, no dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % below.max(1)
    }

    /// Churns until `secs` have passed, then logs everyone out.
    fn run(mut self, secs: u64) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut buf = vec![0u8; 2048];
        while Instant::now() < end {
            self.step()?;
            while let Some(n) = self.sock.recv(&mut buf)? {
                self.on_frame(&buf[..n])?;
            }
        }
        let rss = rss_kib(self.lassi_pid).unwrap_or(0);
        self.counts.end_rss.store(rss, Ordering::Relaxed);
        // Wind down: no new cycles; everyone online logs out and releases.
        for i in 0..self.clients.len() {
            if let State::Online(ip, server, _) = self.clients[i].state {
                self.logout(i, ip, server)?;
            }
        }
        Ok(())
    }

    /// Starts cycles, resends, sends traffic and ends sessions that are due.
    fn step(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let in_flight = self
            .clients
            .iter()
            .filter(|c| matches!(c.state, State::Discovering | State::Requesting(..)))
            .count();
        let mut room = WINDOW.saturating_sub(in_flight);
        for i in 0..self.clients.len() {
            match self.clients[i].state {
                State::Idle(at) if room > 0 && now >= at => {
                    room -= 1;
                    let c = &mut self.clients[i];
                    c.cycle = c.cycle.wrapping_add(1);
                    c.state = State::Discovering;
                    c.tries = 0;
                    self.send_dhcp(i)?;
                }
                State::Discovering | State::Requesting(..)
                    if now.duration_since(self.clients[i].sent) > Duration::from_millis(1000) =>
                {
                    if self.clients[i].tries >= 10 {
                        return Err(format!("client {i} got no DHCP answer in 10 tries"));
                    }
                    self.send_dhcp(i)?;
                }
                State::Online(ip, server, until) if now >= until => self.logout(i, ip, server)?,
                State::Online(ip, ..) if now >= self.clients[i].next_datagram => {
                    self.datagram(i, ip)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn send_dhcp(&mut self, i: usize) -> Result<(), String> {
        let c = &mut self.clients[i];
        c.sent = Instant::now();
        c.tries += 1;
        let frame = dhcp_frame(i, c.cycle, c.state)?;
        self.sock.send(&frame)
    }

    fn on_frame(&mut self, f: &[u8]) -> Result<(), String> {
        let Some(reply) = dhcp_server_reply(f) else {
            return Ok(());
        };
        let (i, cycle) = split_xid(reply.xid());
        let Some(c) = self.clients.get(i) else {
            return Ok(());
        };
        if c.cycle != cycle {
            return Ok(());
        }
        self.gw_mac
            .get_or_insert(MacAddr(f[6..12].try_into().unwrap()));
        match (reply.opts().msg_type(), c.state) {
            (Some(MessageType::Offer), State::Discovering) => {
                let server = match reply.opts().get(OptionCode::ServerIdentifier) {
                    Some(DhcpOption::ServerIdentifier(s)) => *s,
                    _ => return Err("OFFER without server identifier".into()),
                };
                self.clients[i].state = State::Requesting(reply.yiaddr(), server);
                self.clients[i].tries = 0;
                self.send_dhcp(i)
            }
            (Some(MessageType::Ack), State::Requesting(ip, server)) => self.login(i, ip, server),
            (Some(MessageType::Nak), _) => {
                self.clients[i].state = State::Discovering;
                self.send_dhcp(i)
            }
            _ => Ok(()),
        }
    }

    fn login(&mut self, i: usize, ip: Ipv4Addr, server: Ipv4Addr) -> Result<(), String> {
        self.counts.leases.fetch_add(1, Ordering::Relaxed);
        let req = Request::Authorize {
            mac: Some(synthetic_mac(i)),
            ip: None,
            user: Some(format!("soak{i}")),
            limits: Default::default(),
        };
        ok(control(&self.control, &req)?)?;
        self.counts.logins.fetch_add(1, Ordering::Relaxed);
        let secs = 30 + self.rand(self.session_secs - 30);
        let jitter = Duration::from_millis(self.rand(1000));
        if self.clients[i].cycle == 1 {
            self.logged_in_once += 1;
            if self.logged_in_once == self.clients.len() {
                self.counts.warm.store(true, Ordering::Relaxed);
            }
        }
        let c = &mut self.clients[i];
        c.state = State::Online(ip, server, Instant::now() + Duration::from_secs(secs));
        c.next_datagram = Instant::now() + jitter;
        Ok(())
    }

    fn logout(&mut self, i: usize, ip: Ipv4Addr, server: Ipv4Addr) -> Result<(), String> {
        ok(control(
            &self.control,
            &Request::Logout {
                filter: lassi::session::ClientFilter {
                    mac: Some(synthetic_mac(i)),
                    ..Default::default()
                },
            },
        )?)?;
        self.counts.logouts.fetch_add(1, Ordering::Relaxed);
        let frame = release_frame(i, ip, server, self.gw_mac.unwrap_or(MacAddr::BROADCAST))?;
        self.sock.send(&frame)?;
        self.counts.releases.fetch_add(1, Ordering::Relaxed);
        let pause = Duration::from_millis(self.rand(5000));
        self.clients[i].state = State::Idle(Instant::now() + pause);
        Ok(())
    }

    /// One datagram of 100–1,400 bytes from client `i` to the upstream host.
    fn datagram(&mut self, i: usize, ip: Ipv4Addr) -> Result<(), String> {
        let len = 100 + self.rand(1300) as usize;
        let frame = udp_frame(
            &UdpAddressing {
                src_mac: synthetic_mac(i),
                dst_mac: self.gw_mac.unwrap_or(MacAddr::BROADCAST),
                src_ip: ip,
                dst_ip: UPSTREAM,
                src_port: 40_000 + (i % 20_000) as u16,
                dst_port: 9,
            },
            &vec![0x5a; len],
        );
        self.sock.send(&frame)?;
        self.counts.datagrams.fetch_add(1, Ordering::Relaxed);
        self.clients[i].next_datagram += Duration::from_secs(1);
        Ok(())
    }
}

fn ok(v: serde_json::Value) -> Result<(), String> {
    if v.get("ok").and_then(|o| o.as_bool()) == Some(true) {
        Ok(())
    } else {
        Err(format!("control request refused: {v:.300}"))
    }
}

/// The transaction id carries the client number and its cycle.
fn xid(i: usize, cycle: u32) -> u32 {
    ((cycle & 0xfff) << 20) | (i as u32 & 0xf_ffff)
}

fn split_xid(x: u32) -> (usize, u32) {
    ((x & 0xf_ffff) as usize, x >> 20)
}

fn dhcp_frame(i: usize, cycle: u32, state: State) -> Result<Vec<u8>, String> {
    let msg = match state {
        State::Requesting(ip, server) => ClientMessage::Request { ip, server },
        _ => ClientMessage::Discover,
    };
    dhcp_client_frame(i, xid(i, cycle), msg)
}

/// DHCPRELEASE, unicast to the server as RFC 2131 says.
fn release_frame(i: usize, ip: Ipv4Addr, server: Ipv4Addr, gw: MacAddr) -> Result<Vec<u8>, String> {
    let msg = ClientMessage::Release {
        ip,
        server,
        gw_mac: gw,
    };
    dhcp_client_frame(i, xid(i, 0xfff), msg)
}
