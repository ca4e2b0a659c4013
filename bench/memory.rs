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
//! Clients are synthetic (`lassi_lab::rawframes::lease_synthetic_clients`,
//! shared with the throughput bench): one thread joins a client namespace, opens an
//! AF_PACKET socket on its `eth0` and runs DISCOVER/OFFER/REQUEST/ACK for N
//! distinct MACs, so every client costs lassi exactly what a real one costs
//! (a DHCP lease and a session). `lassi sessions --json` confirms the count.
//! RSS is VmRSS from /proc/PID/status. Prints figures and ratios; no
//! thresholds (the goal is ≤ 8 MiB at 1,000 clients).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lassi_lab::rawframes::{lease_synthetic_clients, proc_status_kib};
use lassi_lab::{Lab, LabOptions, LassiHandle};

const STEPS: [usize; 2] = [1_000, 10_000];

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
    let pid = lassi.lassi_pid()?;
    let client = lab.client(1);
    client.ns().ip(&["link", "set", "eth0", "promisc", "on"])?;

    std::thread::sleep(Duration::from_millis(1500));
    let mut rows = vec![snapshot(pid, "idle", 0)?];
    let mut done = 0usize;
    let mut dhcp_secs = 0.0;
    for &n in &STEPS {
        let t = Instant::now();
        lease_synthetic_clients(client.name(), done, n)?;
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
