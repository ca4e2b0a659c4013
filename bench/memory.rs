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

use dhcproto::v4::{DhcpOption, MessageType};
use lassi_lab::rawframes::{
    dhcp_client_frame, dhcp_server_reply, proc_status_kib, ClientMessage, PacketSocket,
};
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
    Ok(Row {
        label: label.to_string(),
        sessions,
        rss_kib: proc_status_kib(pid, "VmRSS:")?,
        hwm_kib: proc_status_kib(pid, "VmHWM:").unwrap_or(0),
    })
}

fn session_count(h: &LassiHandle) -> Result<usize, String> {
    let v = h.sessions_json()?;
    v.as_array()
        .map(|a| a.len())
        .ok_or_else(|| format!("`sessions --json` is not an array: {v:.200}"))
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
    let msg = match stage {
        Stage::Discover => ClientMessage::Discover,
        Stage::Request(ip, server) => ClientMessage::Request { ip, server },
    };
    dhcp_client_frame(i, i as u32, msg)
}
