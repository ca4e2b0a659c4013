//! Throughput through lassi against plain kernel forwarding, measured in the
//! same run on the identical namespace path (client ─ switch ─ gateway ─
//! upstream), reported as ratios. Run as root: `cargo bench --bench throughput`.
//!
//! For every row (LAN offloads off/on × four iperf3 tests) four labs run
//! side by side and take turns: the kernel forwarding, lassi with
//! `dataplane.workers = 1`, lassi with `dataplane.workers = N`, and lassi
//! with the kernel fast path (`dataplane.fast_path = "kernel"`). For each
//! lassi row it also prints lassi's CPU cost: the CPU time of the whole
//! lassi process (utime + stime of `/proc/PID/stat`, every thread) over the
//! iperf3 run, divided by the packets lassi forwarded in it (the change of
//! `lassi status` `io.lan_rx + io.tun_rx`: every frame read from the LAN and
//! every packet read from the TUN device, all threads; with LAN offloads on
//! these are GSO super-packets of up to 64 KB, so ns/packet is per
//! super-packet there), and by the payload iperf3 received (CPU s per GB).
//!
//! Then, for each fast path (workers = N, and the kernel's) with offloads
//! on: TCP up and down with only the test client authorized, and again
//! with `LASSI_BENCH_SESSIONS` (10,000) more synthetic clients leased (DHCP
//! over a raw socket) and authorized (over the control socket), as a
//! ratio; and lassi's idle CPU with them all (for the kernel fast path,
//! mostly reading 10,000 sessions' counters every second).
//!
//! No thresholds: the machine is shared and noisy, so only the ratio of two
//! figures taken minutes apart means anything.
//!
//! Environment: `LASSI_BENCH_SECONDS` (default 5) per iperf3 run,
//! `LASSI_BENCH_OFFLOADS` = `on`, `off`, `both` (default) or `none` (only
//! the sessions part),
//! `LASSI_BENCH_WORKERS` (default the number of cores, at least 2),
//! `LASSI_BENCH_SESSIONS` (default 10000; 0 skips that part),
//! `LASSI_BENCH_REPEAT` (default 3): runs per figure of that part, the
//! median kept.

use std::time::{Duration, Instant};

use lassi_lab::rawframes::{lease_synthetic_clients, synthetic_mac};
use lassi_lab::{Lab, LabOptions, LassiHandle};

const SERVER: &str = "198.51.100.10";

#[derive(Clone, Copy, PartialEq)]
enum Test {
    Tcp1,
    Tcp4,
    TcpReverse,
    Udp64,
}

impl Test {
    const ALL: [Test; 4] = [Test::Tcp1, Test::Tcp4, Test::TcpReverse, Test::Udp64];

    fn name(self) -> &'static str {
        match self {
            Test::Tcp1 => "TCP, 1 stream (upload)",
            Test::Tcp4 => "TCP, 4 streams (upload)",
            Test::TcpReverse => "TCP, 1 stream (download)",
            Test::Udp64 => "UDP, 64-byte payloads",
        }
    }

    fn args(self) -> Vec<&'static str> {
        match self {
            Test::Tcp1 => vec![],
            Test::Tcp4 => vec!["-P", "4"],
            Test::TcpReverse => vec!["-R"],
            Test::Udp64 => vec!["-u", "-b", "0", "-l", "64"],
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Test::Udp64 => "kpps",
            _ => "Gbit/s",
        }
    }
}

/// One iperf3 run, as measured at the receiver.
struct Run {
    /// In the test's unit.
    figure: f64,
    /// Payload bytes received.
    bytes: f64,
}

/// One iperf3 run from client 1 to the upstream server.
fn iperf(lab: &Lab, test: Test, seconds: u32) -> Result<Run, String> {
    let secs = seconds.to_string();
    let mut args = vec!["-t", &secs, "--connect-timeout", "3000"];
    args.extend(test.args());
    let v = lab
        .iperf(lab.client(1), SERVER, &args)
        .map_err(|e| e.to_string())?;
    if let Some(err) = v["error"].as_str() {
        return Err(format!("iperf3: {err}"));
    }
    let end = &v["end"];
    match test {
        Test::Udp64 => {
            let s = &end["sum"];
            let packets =
                s["packets"].as_f64().unwrap_or(0.0) - s["lost_packets"].as_f64().unwrap_or(0.0);
            let seconds = s["seconds"].as_f64().unwrap_or(1.0);
            Ok(Run {
                figure: packets / seconds / 1e3,
                bytes: packets * 64.0,
            })
        }
        _ => Ok(Run {
            figure: end["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or(0.0)
                / 1e9,
            bytes: end["sum_received"]["bytes"].as_f64().unwrap_or(0.0),
        }),
    }
}

/// An iperf3 run through lassi, with lassi's CPU time and packet count.
struct LassiRun {
    run: Run,
    cpu_seconds: f64,
    packets: u64,
}

impl LassiRun {
    fn ns_per_packet(&self) -> f64 {
        self.cpu_seconds * 1e9 / self.packets.max(1) as f64
    }

    fn cpu_s_per_gb(&self) -> f64 {
        self.cpu_seconds / (self.run.bytes / 1e9).max(1e-12)
    }
}

/// `io.lan_rx + io.tun_rx` of `lassi status`.
fn packets_read(lassi: &LassiHandle) -> Result<u64, String> {
    let v = lassi.status()?;
    let io = &v["io"];
    match (io["lan_rx"].as_u64(), io["tun_rx"].as_u64()) {
        (Some(l), Some(t)) => Ok(l + t),
        _ => Err(format!("no io.lan_rx/tun_rx in status: {io}")),
    }
}

/// Workers report their counters to thread 0 at most 50 ms late.
const SETTLE: Duration = Duration::from_millis(250);

fn lassi_iperf(
    lab: &Lab,
    lassi: &mut LassiHandle,
    test: Test,
    seconds: u32,
) -> Result<LassiRun, String> {
    let p0 = packets_read(lassi)?;
    let c0 = lassi.cpu_seconds()?;
    let run = iperf(lab, test, seconds)?;
    let c1 = lassi.cpu_seconds()?;
    std::thread::sleep(SETTLE);
    let p1 = packets_read(lassi)?;
    Ok(LassiRun {
        run,
        cpu_seconds: c1 - c0,
        packets: p1.saturating_sub(p0),
    })
}

fn kernel_lab(offloads: bool) -> Result<Lab, String> {
    Lab::new(LabOptions {
        offloads,
        kernel_baseline: true,
        ..LabOptions::default()
    })
    .map_err(|e| e.to_string())
}

fn lassi_lab(offloads: bool, config: &str) -> Result<(Lab, LassiHandle), String> {
    let lab = Lab::new(LabOptions {
        offloads,
        lassi_bin: Some(env!("CARGO_BIN_EXE_lassi").into()),
        ..LabOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let lassi = lab.start_lassi(config).map_err(|e| e.to_string())?;
    lab.client(1).udhcpc().map_err(|e| e.to_string())?;
    lassi
        .authorize(lab.client(1).mac())
        .map_err(|e| e.to_string())?;
    Ok((lab, lassi))
}

fn workers_config(n: usize) -> String {
    format!("[dataplane]\nworkers = {n}\n")
}

/// The kernel fast path's config.
const KERNEL_PATH: &str = "[dataplane]\nfast_path = \"kernel\"\nworkers = 1\n";

/// How the CPU table names a lassi run's fast path (0: the kernel's).
fn path_name(workers: usize) -> String {
    match workers {
        0 => "kernel".into(),
        w => format!("w={w}"),
    }
}

fn env_num(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn main() {
    // `cargo test --all-targets` runs bench binaries too, without `--bench`:
    // the measurement is for `cargo bench` only.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("throughput bench: needs root (network namespaces); skipped");
        return;
    }
    let seconds: u32 = env_num("LASSI_BENCH_SECONDS").unwrap_or(5) as u32;
    let modes: Vec<bool> = match std::env::var("LASSI_BENCH_OFFLOADS").as_deref() {
        Ok("on") => vec![true],
        Ok("off") => vec![false],
        Ok("none") => vec![],
        _ => vec![false, true],
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = env_num("LASSI_BENCH_WORKERS").unwrap_or(cores.max(2));
    let sessions = env_num("LASSI_BENCH_SESSIONS").unwrap_or(10_000);
    let repeat = env_num("LASSI_BENCH_REPEAT").unwrap_or(3);
    let wn = format!("lassi w={workers}");
    println!(
        "lassi throughput vs kernel forwarding (same run, same path, {seconds} s per test, \
         {cores} cores; lassi with dataplane.workers = 1 and = {workers})"
    );
    println!(
        "{:<10} {:<26} {:>12} {:>12} {:>12} {:>12} {:>7} {:>7} {:>7}",
        "LAN",
        "test",
        "kernel",
        "lassi w=1",
        wn,
        "lassi kpath",
        "w=1/k",
        format!("w={workers}/k"),
        "kpath/k"
    );
    let mut cpu_rows: Vec<(String, Test, usize, LassiRun)> = Vec::new();
    for offloads in modes {
        let label = if offloads { "offloads" } else { "no-offload" };
        let kernel = kernel_lab(offloads).expect("kernel baseline lab");
        let (lab1, mut lassi1) = lassi_lab(offloads, &workers_config(1)).expect("lassi lab, w=1");
        let (labn, mut lassin) =
            lassi_lab(offloads, &workers_config(workers)).expect("lassi lab, w=N");
        let (labk, mut lassik) = lassi_lab(offloads, KERNEL_PATH).expect("lassi lab, kernel path");
        for test in Test::ALL {
            let k = iperf(&kernel, test, seconds);
            let l1 = lassi_iperf(&lab1, &mut lassi1, test, seconds);
            let ln = lassi_iperf(&labn, &mut lassin, test, seconds);
            let lk = lassi_iperf(&labk, &mut lassik, test, seconds);
            match (k, l1, ln, lk) {
                (Ok(k), Ok(l1), Ok(ln), Ok(lk)) => {
                    let u = test.unit();
                    println!(
                        "{label:<10} {:<26} {:>6.2} {u:<5} {:>6.2} {u:<5} {:>6.2} {u:<5} {:>6.2} {u:<5} {:>6.2}x {:>6.2}x {:>6.2}x",
                        test.name(),
                        k.figure,
                        l1.run.figure,
                        ln.run.figure,
                        lk.run.figure,
                        l1.run.figure / k.figure,
                        ln.run.figure / k.figure,
                        lk.run.figure / k.figure,
                    );
                    cpu_rows.push((label.into(), test, 1, l1));
                    cpu_rows.push((label.into(), test, workers, ln));
                    cpu_rows.push((label.into(), test, 0, lk));
                }
                (k, l1, ln, lk) => println!(
                    "{label:<10} {:<26} failed: kernel {:?}, lassi w=1 {:?}, w={workers} {:?}, kpath {:?}",
                    test.name(),
                    k.err(),
                    l1.err(),
                    ln.err(),
                    lk.err()
                ),
            }
        }
        for (w, lassi) in [(1, &lassi1), (workers, &lassin), (0, &lassik)] {
            let w = path_name(w);
            if let Ok(v) = lassi.status() {
                println!(
                    "{label:<10} lassi {w} io: {}; fast_path_sessions {}",
                    v["io"], v["workers"]["fast_path_sessions"]
                );
                let threads = v["workers"]["threads"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for (i, t) in threads.iter().enumerate() {
                    let io = &t["io"];
                    println!(
                        "{label:<10} lassi {w} thread {i}: lan rx/tx {}/{}, tun rx/tx {}/{}, \
                         handed over {}, cpu {} s",
                        io["lan_rx"],
                        io["lan_tx"],
                        io["tun_rx"],
                        io["tun_tx"],
                        io["handed_over"],
                        t["cpu_seconds"]
                    );
                }
            }
        }
    }

    println!();
    println!(
        "lassi CPU per packet: CPU time of the lassi process (all threads) over the run / \
         Δ status io.lan_rx + io.tun_rx"
    );
    println!(
        "{:<10} {:<26} {:>8} {:>12} {:>10} {:>9} {:>12}",
        "LAN", "test", "workers", "packets", "ns/packet", "CPU s", "CPU s per GB"
    );
    for (label, test, w, r) in &cpu_rows {
        println!(
            "{label:<10} {:<26} {:>8} {:>12} {:>10.0} {:>9.2} {:>12.3}",
            test.name(),
            path_name(*w),
            r.packets,
            r.ns_per_packet(),
            r.cpu_seconds,
            r.cpu_s_per_gb()
        );
    }
    for (label, test, w, r) in &cpu_rows {
        if *w == 1 {
            if let Some((_, _, _, n)) = cpu_rows
                .iter()
                .find(|(l, t, w, _)| l == label && t == test && *w == workers)
            {
                println!(
                    "ns/packet {label:<10} {:<26} before (w=1) {:>7.0} → after (w={workers}) {:>7.0} ({:.2}x)",
                    test.name(),
                    r.ns_per_packet(),
                    n.ns_per_packet(),
                    n.ns_per_packet() / r.ns_per_packet()
                );
            }
        }
    }

    for (label, test, w, r) in &cpu_rows {
        if *w == 0 {
            if let Some((_, _, _, n)) = cpu_rows
                .iter()
                .find(|(l, t, w, _)| l == label && t == test && *w == workers)
            {
                println!(
                    "CPU s per GB {label:<10} {:<26} kernel path {:>7.3} vs user path (w={workers}) {:>7.3} ({:.3}x)",
                    test.name(),
                    r.cpu_s_per_gb(),
                    n.cpu_s_per_gb(),
                    r.cpu_s_per_gb() / n.cpu_s_per_gb()
                );
            }
        }
    }

    if sessions > 0 {
        for (name, config) in [
            (format!("w={workers}"), workers_config(workers)),
            ("kernel path".to_string(), KERNEL_PATH.to_string()),
        ] {
            println!();
            if let Err(e) = many_sessions(&name, &config, sessions, seconds, repeat) {
                println!("{sessions} sessions ({name}): FAILED: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// The run with the median figure of `repeat` runs of `test`: single
/// TCP runs on a shared machine vary by more than the ±5 % compared.
fn median_run(
    lab: &Lab,
    lassi: &mut LassiHandle,
    test: Test,
    seconds: u32,
    repeat: usize,
) -> Result<LassiRun, String> {
    let mut runs = Vec::new();
    for _ in 0..repeat.max(1) {
        runs.push(lassi_iperf(lab, lassi, test, seconds)?);
    }
    runs.sort_by(|a, b| a.run.figure.total_cmp(&b.run.figure));
    Ok(runs.swap_remove(runs.len() / 2))
}

/// TCP up and down through lassi (`dataplane` config `dp`, named `name`,
/// offloads on) with one session, then with `n` more authorized sessions
/// (each figure the median of `repeat` runs).
fn many_sessions(
    name: &str,
    dp: &str,
    n: usize,
    seconds: u32,
    repeat: usize,
) -> Result<(), String> {
    // A /16 so the pool holds every synthetic client; day-long leases so
    // none expires during the run.
    let config = format!("[lan]\nnetwork = \"10.1.0.0/16\"\nlease_time = 86400\n{dp}");
    let (lab, mut lassi) = lassi_lab(true, &config)?;
    let tests = [Test::Tcp1, Test::TcpReverse];
    let mut before = Vec::new();
    for t in tests {
        before.push(median_run(&lab, &mut lassi, t, seconds, repeat)?);
    }

    let client = lab.client(1);
    client.ns().ip(&["link", "set", "eth0", "promisc", "on"])?;
    let t = Instant::now();
    lease_synthetic_clients(client.name(), 0, n)?;
    let dhcp = t.elapsed().as_secs_f64();
    client.ns().ip(&["link", "set", "eth0", "promisc", "off"])?;
    let macs: Vec<_> = (1..=n).map(synthetic_mac).collect();
    let t = Instant::now();
    lassi.authorize_many(&macs, 500)?;
    let auth = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let v = lassi.status()?;
    let fast = v["workers"]["fast_path_sessions"].as_u64().unwrap_or(0);
    let authorized = lassi
        .sessions_json()?
        .as_array()
        .map(|a| a.iter().filter(|c| c["state"] == "authorized").count())
        .unwrap_or(0);
    println!(
        "{n} synthetic clients leased in {dhcp:.1} s, authorized in {auth:.1} s \
         (control socket, 500 per connection); status: fast_path_sessions {fast}, \
         authorized sessions {authorized} (expected {})",
        n + 1
    );
    // lassi's own CPU with them all and no traffic: housekeeping, saves,
    // and (kernel fast path) reading every session's counters each second.
    let c0 = lassi.cpu_seconds()?;
    let idle = Duration::from_secs(10);
    std::thread::sleep(idle);
    let idle_cpu = (lassi.cpu_seconds()? - c0) / idle.as_secs_f64();
    println!(
        "lassi {name}, idle with {} sessions: {:.2} % of one core",
        n + 1,
        100.0 * idle_cpu
    );

    let mut after = Vec::new();
    for t in tests {
        after.push(median_run(&lab, &mut lassi, t, seconds, repeat)?);
    }
    println!(
        "lassi {name}, offloads on, median of {repeat} runs of {} s per test: \
         1 session vs {} sessions",
        seconds,
        n + 1
    );
    println!(
        "{:<26} {:>14} {:>14} {:>7} {:>14} {:>14}",
        "test",
        "1 session",
        format!("{} sessions", n + 1),
        "ratio",
        "ns/pkt (1)",
        format!("ns/pkt ({})", n + 1)
    );
    for ((t, b), a) in tests.iter().zip(&before).zip(&after) {
        println!(
            "{:<26} {:>7.2} {:<6} {:>7.2} {:<6} {:>6.2}x {:>14.0} {:>14.0}",
            t.name(),
            b.run.figure,
            t.unit(),
            a.run.figure,
            t.unit(),
            a.run.figure / b.run.figure,
            b.ns_per_packet(),
            a.ns_per_packet()
        );
    }
    lassi.stop();
    Ok(())
}
