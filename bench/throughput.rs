//! Throughput through lassi against plain kernel forwarding, measured in the
//! same run on the identical namespace path (client ─ switch ─ gateway ─
//! upstream), reported as ratios. Run as root: `cargo bench --bench throughput`.
//!
//! No thresholds: the machine is shared and noisy, so only the ratio of two
//! figures taken minutes apart means anything.
//!
//! Environment: `LASSI_BENCH_SECONDS` (default 5) per iperf3 run,
//! `LASSI_BENCH_OFFLOADS` = `on`, `off` or `both` (default both).

use lassi_lab::{Lab, LabOptions};
use serde_json::Value;

const SERVER: &str = "198.51.100.10";

#[derive(Clone, Copy)]
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

/// One iperf3 run from client 1 to the upstream server; the figure in the
/// test's unit, measured at the receiver.
fn iperf(lab: &Lab, test: Test, seconds: u32) -> Result<f64, String> {
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
            Ok(packets / seconds / 1e3)
        }
        _ => Ok(end["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e9),
    }
}

fn kernel_lab(offloads: bool) -> Result<Lab, String> {
    Lab::new(LabOptions {
        offloads,
        kernel_baseline: true,
        ..LabOptions::default()
    })
    .map_err(|e| e.to_string())
}

fn lassi_lab(offloads: bool) -> Result<(Lab, lassi_lab::LassiHandle), String> {
    let lab = Lab::new(LabOptions {
        offloads,
        lassi_bin: Some(env!("CARGO_BIN_EXE_lassi").into()),
        ..LabOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let lassi = lab.start_lassi("").map_err(|e| e.to_string())?;
    lab.client(1).udhcpc().map_err(|e| e.to_string())?;
    lassi
        .authorize(lab.client(1).mac())
        .map_err(|e| e.to_string())?;
    Ok((lab, lassi))
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("throughput bench: needs root (network namespaces); skipped");
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` would pass other
    // flags: only run when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds: u32 = std::env::var("LASSI_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let modes: Vec<bool> = match std::env::var("LASSI_BENCH_OFFLOADS").as_deref() {
        Ok("on") => vec![true],
        Ok("off") => vec![false],
        _ => vec![false, true],
    };
    println!("lassi throughput vs kernel forwarding (same run, same path, {seconds} s per test)");
    println!(
        "{:<10} {:<26} {:>12} {:>12} {:>7}",
        "LAN", "test", "kernel", "lassi", "ratio"
    );
    for offloads in modes {
        let label = if offloads { "offloads" } else { "no-offload" };
        let kernel = kernel_lab(offloads).expect("kernel baseline lab");
        let (lab, lassi) = lassi_lab(offloads).expect("lassi lab");
        for test in Test::ALL {
            let k = iperf(&kernel, test, seconds);
            let l = iperf(&lab, test, seconds);
            match (k, l) {
                (Ok(k), Ok(l)) => println!(
                    "{label:<10} {:<26} {:>7.2} {:<4} {:>7.2} {:<4} {:>6.2}x",
                    test.name(),
                    k,
                    test.unit(),
                    l,
                    test.unit(),
                    l / k
                ),
                (k, l) => println!(
                    "{label:<10} {:<26} failed: kernel {k:?}, lassi {l:?}",
                    test.name()
                ),
            }
        }
        let status = lassi.ctl(&["status"]).map(|o| o.stdout).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&status) {
            println!("{label:<10} lassi io: {}", v["io"]);
        }
    }
}
