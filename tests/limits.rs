//! End-to-end tests of session limits with real traffic: iperf3 against a
//! policed rate both ways, session timeout, volume quota, and a client that
//! leaves without logging out. The limits come from `[session]` defaults
//! here; RADIUS replies feed the same engine fields. Root only; CI runs them.

use std::time::Duration;

use lassi_lab::must;
use lassi_lab::netns::wait_until;
use lassi_lab::{Lab, LabOptions, LassiHandle};
use serde_json::Value;

const WEB: &str = "198.51.100.10";

/// A lab with one client that has a lease and is logged in under `session`.
fn online(session: &str) -> (Lab, LassiHandle) {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let lassi = must(&lab, "lassi", lab.start_lassi(session));
    must(&lab, "udhcpc", lab.client(1).udhcpc());
    must(&lab, "authorize", lassi.authorize(lab.client(1).mac()));
    (lab, lassi)
}

fn state(lassi: &LassiHandle) -> Value {
    lassi.sessions_json().expect("sessions")[0].clone()
}

/// Wait until lassi logs that the session ended for `reason`.
fn ended_with(lassi: &LassiHandle, reason: &str, within: Duration) -> bool {
    let needle = format!("reason={reason}");
    wait_until(within, || {
        lassi
            .log()
            .lines()
            .any(|l| l.contains("session ended") && l.contains(&needle))
            .then_some(())
    })
    .is_some()
}

/// Receiver-side throughput of a 6 s iperf3 run, in bit/s.
fn iperf(lab: &Lab, reverse: bool) -> f64 {
    let mut args = vec!["-t", "6", "-O", "1"];
    if reverse {
        args.push("-R");
    }
    let v = must(lab, "iperf3", lab.iperf(lab.client(1), WEB, &args));
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
}

#[test]
fn bandwidth_limits_hold_both_ways() {
    let (lab, lassi) = online("[session]\nbandwidth_up = 8000000\nbandwidth_down = 20000000\n");
    let down = iperf(&lab, true);
    let up = iperf(&lab, false);
    println!(
        "download {:.2} Mbit/s against 20, upload {:.2} Mbit/s against 8",
        down / 1e6,
        up / 1e6
    );
    assert!(
        (0.85..=1.05).contains(&(down / 20e6)),
        "download {down} bit/s vs 20 Mbit/s limit"
    );
    assert!(
        (0.85..=1.05).contains(&(up / 8e6)),
        "upload {up} bit/s vs 8 Mbit/s limit"
    );
    // What a shaper's queue cannot hold, it drops. TCP may back off before
    // that queue fills (a loaded machine drops its bursts earlier, in the
    // TUN device's queue), so offer UDP at twice the limit, which no
    // queue absorbs.
    must(
        &lab,
        "iperf3 udp",
        lab.iperf(lab.client(1), WEB, &["-u", "-b", "40M", "-t", "2", "-R"]),
    );
    let status: Value =
        serde_json::from_str(&must(&lab, "status", lassi.ctl(&["status"])).stdout).unwrap();
    assert!(
        status["drops"]["shaped"].as_u64().unwrap() > 0,
        "{}",
        status["drops"]
    );
}

#[test]
fn session_timeout_ends_the_session_and_cuts_the_client_off() {
    let _web_lab_holder;
    let (lab, lassi) = online("[session]\nsession_timeout = 3\n");
    _web_lab_holder = must(&lab, "upstream", lab.start_upstream());
    let r = must(
        &lab,
        "curl",
        lab.client(1).curl(&[&format!("http://{WEB}/")]),
    );
    assert!(r.ok(), "{r:?}");
    assert!(
        ended_with(&lassi, "session-timeout", Duration::from_secs(8)),
        "{}",
        lassi.log_tail(10)
    );
    assert_eq!(state(&lassi)["state"], "unauthorized");
    let r = must(
        &lab,
        "curl",
        lab.client(1)
            .curl(&["--max-time", "3", &format!("http://{WEB}/after")]),
    );
    assert!(!r.ok(), "still online after the session timeout: {r:?}");
}

#[test]
fn volume_quota_ends_the_session() {
    let (lab, lassi) = online("[session]\nmax_total_octets = 2000000\n");
    let _web = must(&lab, "upstream", lab.start_upstream());
    // Ask for 20 MB: the transfer is cut once 2 MB have crossed.
    let r = must(
        &lab,
        "curl",
        lab.client(1)
            .curl(&["--max-time", "10", &format!("http://{WEB}/bytes/20000000")]),
    );
    assert!(
        !r.ok() || r.body.len() < 20_000_000,
        "the whole download got through: {} bytes",
        r.body.len()
    );
    assert!(
        ended_with(&lassi, "quota-exceeded", Duration::from_secs(5)),
        "{}",
        lassi.log_tail(10)
    );
    let log = lassi.log();
    let line = log
        .lines()
        .find(|l| l.contains("reason=quota-exceeded"))
        .unwrap();
    let octets = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let total = octets("octets_in") + octets("octets_out");
    // Enforcement runs once a second, so some overshoot is expected; the
    // data plane must not have let the whole 20 MB through.
    assert!(
        (2_000_000..10_000_000).contains(&total),
        "{total} octets counted at the quota end"
    );
}

#[test]
fn a_client_that_leaves_is_noticed_and_one_that_stays_is_not() {
    let (lab, lassi) = online("[session]\nprobe_after = 2\nprobe_interval = 1\nprobes = 2\n");
    // Silent but present: the client's kernel answers lassi's ARP probes.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        state(&lassi)["state"],
        "authorized",
        "{}",
        lassi.log_tail(10)
    );
    // Now it leaves (its interface goes down, as when a phone walks away).
    must(
        &lab,
        "link down",
        lab.client(1).ns().ip(&["link", "set", "eth0", "down"]),
    );
    assert!(
        ended_with(&lassi, "lost-carrier", Duration::from_secs(10)),
        "{}",
        lassi.log_tail(10)
    );
}
