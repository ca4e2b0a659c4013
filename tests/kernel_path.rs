//! End-to-end tests of the kernel fast path (`dataplane.fast_path =
//! "kernel"`) with real peers: after login the kernel forwards the guest
//! (lassi's sockets see next to none of its packets), lassi's counters
//! follow what the client's kernel counted, logout takes the guest out of
//! the kernel at once, and lassi's routes, rule and tables are replaced
//! after a crash and removed at exit. The other end-to-end tests run
//! against this backend too (`LASSI_TEST_FAST_PATH=kernel` in
//! `tests/run-all`). They need root.

use std::time::{Duration, Instant};

use lassi_lab::{must, Guest, Lab, LabOptions, LassiHandle, Netns};
use serde_json::Value;

const WEB: &str = "198.51.100.10";
const KERNEL: &str = "[dataplane]\nfast_path = \"kernel\"\nworkers = 1\n\
[metrics]\nlisten = \"127.0.0.1:9464\"\n";

/// The metrics lassi exposes, scraped inside the gateway namespace.
fn metrics(gw: &Netns) -> String {
    run(
        gw,
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://127.0.0.1:9464/metrics",
        ],
    )
}

fn lab() -> Lab {
    Lab::new(LabOptions::default()).unwrap_or_else(|e| panic!("building the lab: {e}"))
}

fn status(lab: &Lab, lassi: &LassiHandle) -> Value {
    let out = must(lab, "status", lassi.ctl(&["status"]));
    serde_json::from_str(&out.stdout).expect("status JSON")
}

/// Sessions the kernel forwards, from `lassi status`.
fn in_kernel(lab: &Lab, lassi: &LassiHandle) -> u64 {
    let s = status(lab, lassi);
    assert_eq!(s["workers"]["fast_path"], "kernel", "{s}");
    s["workers"]["fast_path_sessions"].as_u64().unwrap()
}

/// Wait up to `secs` for `f`; whether it came true.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(ns: &Netns, argv: &[&str]) -> String {
    ns.run(argv)
        .and_then(|o| o.check())
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
        .stdout
}

fn lan_ifindex(gw: &Netns) -> u32 {
    run(gw, &["cat", "/sys/class/net/lan0/ifindex"])
        .trim()
        .parse()
        .unwrap()
}

/// lassi's host routes on the LAN device (`ip route show table …`).
fn lassi_routes(gw: &Netns) -> String {
    let table = (0x1a55_0000 + lan_ifindex(gw)).to_string();
    run(gw, &["ip", "-4", "route", "show", "table", &table])
}

/// The policy rules that send forwarded packets to lassi's table.
fn lassi_rules(gw: &Netns) -> usize {
    run(gw, &["ip", "-4", "rule", "show"])
        .lines()
        .filter(|l| l.contains("not from all iif lo lookup"))
        .count()
}

/// lassi's eBPF filters on the LAN device's tc hooks (`tc filter show`:
/// one line naming the program per filter).
fn lassi_filters(gw: &Netns) -> usize {
    ["egress", "ingress"]
        .iter()
        .map(|hook| {
            let out = gw.run(&["tc", "filter", "show", "dev", "lan0", hook]);
            let out = out.map(|o| o.stdout).unwrap_or_default();
            (out.lines())
                .filter(|l| l.contains("lassi-download") || l.contains("lassi-upload"))
                .count()
        })
        .sum()
}

/// lassi's shaping devices (`ip -o link show type ifb`).
fn shaping_devices(gw: &Netns) -> Vec<String> {
    let out = run(gw, &["ip", "-o", "link", "show", "type", "ifb"]);
    let mut names: Vec<String> = (out.lines())
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
        .collect();
    names.sort();
    names
}

/// A shaping device's class of the session: (its rate as `tc` prints it,
/// packets it dropped), from `tc -s class show` (whose JSON output HTB
/// classes lack).
fn shaping_class(gw: &Netns, direction: char) -> Option<(String, u64)> {
    let dev = format!("lassi{}{direction}", lan_ifindex(gw));
    let out = run(gw, &["tc", "-s", "class", "show", "dev", &dev]);
    let word_after = |key: &str| -> Option<String> {
        let mut words = out.split_whitespace();
        words.find(|w| *w == key)?;
        words.next().map(|w| w.trim_end_matches(',').to_string())
    };
    let rate = word_after("rate")?;
    let dropped = word_after("(dropped")?.parse().ok()?;
    Some((rate, dropped))
}

/// (bytes, packets) an element of one of lassi's inet sets counted.
fn element_counter(gw: &Netns, set: &str) -> Option<(u64, u64)> {
    let out = run(gw, &["nft", "-j", "list", "set", "inet", "lassi-lan0", set]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let elems = v["nftables"][1]["set"]["elem"].as_array()?.clone();
    let c = &elems.first()?["elem"]["counter"];
    Some((c["bytes"].as_u64()?, c["packets"].as_u64()?))
}

/// IP-layer bytes and packets the client's `eth0` moved (`tx` or `rx`).
fn ip_counts(client: &Guest, dir: &str) -> (u64, u64) {
    let read = |name: &str| -> u64 {
        let p = format!("/sys/class/net/eth0/statistics/{dir}_{name}");
        run(client.ns(), &["cat", &p]).trim().parse().unwrap()
    };
    let (bytes, packets) = (read("bytes"), read("packets"));
    (bytes - 14 * packets, packets)
}

fn session(lassi: &LassiHandle, mac: &str) -> Value {
    let v = lassi.sessions_json().expect("sessions");
    let s = v.as_array().unwrap().iter().find(|c| c["mac"] == mac);
    s.cloned().expect("session listed")
}

#[test]
fn the_kernel_forwards_logged_in_guests_and_lassi_counts_what_it_moved() {
    let lab = lab();
    let _web = must(&lab, "upstream", lab.start_upstream());
    let lassi = must(&lab, "starting lassi", lab.start_lassi(KERNEL));
    let client = lab.client(1);
    let mac = client.mac().to_string();
    must(&lab, "udhcpc", client.udhcpc());
    let blocked = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", "http://198.51.100.10/"]),
    );
    assert!(!blocked.ok(), "online before login: {blocked:?}");
    assert_eq!(in_kernel(&lab, &lassi), 0);

    must(&lab, "authorize", lassi.authorize(client.mac()));
    assert!(
        eventually(2, || in_kernel(&lab, &lassi) == 1),
        "the session did not reach the kernel: {}",
        lassi.log_tail(20)
    );
    let ip = session(&lassi, &mac)["ip"].as_str().unwrap().to_string();
    assert!(
        lassi_routes(lab.gw()).contains(&ip),
        "{}",
        lassi_routes(lab.gw())
    );
    assert_eq!(lassi_rules(lab.gw()), 1);
    let m = metrics(lab.gw());
    assert!(
        m.contains("lassi_fast_path_sessions{path=\"kernel\"} 1"),
        "{m}"
    );
    assert!(m.contains("lassi_kernel_fast_path_errors_total 0"), "{m}");

    let lan_rx0 = status(&lab, &lassi)["io"]["lan_rx"].as_u64().unwrap();
    let (tx0, txp0) = ip_counts(client, "tx");
    let (rx0, rxp0) = ip_counts(client, "rx");
    let s0 = session(&lassi, &mac);
    let up = must(&lab, "iperf3 up", lab.iperf(client, WEB, &["-t", "2"]));
    let down = must(
        &lab,
        "iperf3 down",
        lab.iperf(client, WEB, &["-t", "2", "-R"]),
    );
    for v in [&up, &down] {
        assert!(
            v["end"]["sum_received"]["bytes"].as_u64().unwrap() > 1_000_000,
            "{v}"
        );
    }
    let (tx1, txp1) = ip_counts(client, "tx");
    let (rx1, rxp1) = ip_counts(client, "rx");
    let s1 = session(&lassi, &mac);

    // The kernel moved them: lassi's own LAN sockets read next to nothing.
    let lan_rx = status(&lab, &lassi)["io"]["lan_rx"].as_u64().unwrap() - lan_rx0;
    let sent = txp1 - txp0;
    assert!(
        lan_rx * 100 < sent,
        "lassi read {lan_rx} LAN frames of the {sent} the client sent"
    );
    let (up_bytes, _) = element_counter(lab.gw(), "up4").expect("upload element");
    assert!(up_bytes > 1_000_000);
    assert_eq!(lassi_filters(lab.gw()), 2);

    // lassi's counters follow the client's kernel, both ways within 1 %:
    // uploads one packet per segment (the client's offloads being off),
    // downloads counted per segment at the LAN egress though they cross
    // the gateway as GSO super-packets.
    let d = |k: &str| s1["counters"][k].as_u64().unwrap() - s0["counters"][k].as_u64().unwrap();
    let (kin, kout) = (tx1 - tx0, rx1 - rx0);
    let (rxp, pout) = (rxp1 - rxp0, d("packets_out"));
    let (oin, oout) = (d("octets_in"), d("octets_out"));
    assert!(
        (0.99..1.01).contains(&(oin as f64 / kin as f64)),
        "octets_in {oin} vs client tx {kin}"
    );
    assert!(
        (0.99..1.01).contains(&(oout as f64 / kout as f64)),
        "octets_out {oout} vs client rx {kout}"
    );
    assert!(
        (0.99..1.01).contains(&(pout as f64 / rxp as f64)),
        "packets_out {pout} vs client rx {rxp}"
    );
    println!(
        "kernel path: in {oin}/{kin}, out {oout}/{kout} ({pout}/{rxp} packets); \
         lassi read {lan_rx} of {sent} frames"
    );

    // Logout takes the guest out of the kernel within a second.
    let t = Instant::now();
    must(&lab, "logout", lassi.logout(client.mac()));
    assert!(eventually(1, || !lassi_routes(lab.gw()).contains(&ip)));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(in_kernel(&lab, &lassi), 0);
    assert!(element_counter(lab.gw(), "up4").is_none());
    let after = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", "http://198.51.100.10/"]),
    );
    assert!(!after.ok(), "online after logout: {after:?}");
}

#[test]
fn kernel_state_is_replaced_after_a_crash_and_removed_at_exit() {
    let lab = lab();
    let _web = must(&lab, "upstream", lab.start_upstream());
    let mut lassi = must(&lab, "starting lassi", lab.start_lassi(KERNEL));
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());
    must(&lab, "authorize", lassi.authorize(client.mac()));
    assert!(eventually(2, || in_kernel(&lab, &lassi) == 1));

    // A crash leaves the kernel forwarding; the next start replaces it all
    // (one route, one rule, not two) and takes the resumed session back.
    lassi.crash();
    assert_eq!(lassi_routes(lab.gw()).lines().count(), 1);
    must(&lab, "start after crash", lassi.start_again());
    assert!(
        eventually(3, || in_kernel(&lab, &lassi) == 1),
        "{}",
        lassi.log_tail(20)
    );
    assert_eq!(lassi_routes(lab.gw()).lines().count(), 1);
    assert_eq!(lassi_rules(lab.gw()), 1);
    assert_eq!(lassi_filters(lab.gw()), 2);
    assert_eq!(shaping_devices(lab.gw()).len(), 2);
    let r = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "5", "http://198.51.100.10/x"]),
    );
    assert!(
        r.ok(),
        "offline after a crash: {r:?}\n{}",
        lassi.log_tail(20)
    );

    // A clean exit leaves nothing of lassi in the kernel.
    lassi.stop();
    assert_eq!(lassi_routes(lab.gw()), "");
    assert_eq!(lassi_rules(lab.gw()), 0);
    assert_eq!(lassi_filters(lab.gw()), 0);
    assert!(shaping_devices(lab.gw()).is_empty());
    let qdiscs = run(lab.gw(), &["tc", "qdisc", "show", "dev", "lan0"]);
    assert!(!qdiscs.contains("clsact"), "{qdiscs}");
    let tables = run(lab.gw(), &["nft", "list", "tables"]);
    assert!(!tables.contains("lassi"), "{tables}");
}

/// iperf3's receiver-side rate over 6 s (`-R`: download), bit/s.
fn iperf_rate(lab: &Lab, client: &Guest, extra: &[&str]) -> f64 {
    let mut args = vec!["-t", "6", "-O", "1"];
    args.extend_from_slice(extra);
    let v = must(lab, "iperf3", lab.iperf(client, WEB, &args));
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
}

#[test]
fn shaped_sessions_are_shaped_by_the_kernel_both_ways_and_counted_after_it() {
    let lab = lab();
    let _web = must(&lab, "upstream", lab.start_upstream());
    let config = format!("{KERNEL}[session]\nbandwidth_up = 8000000\nbandwidth_down = 20000000\n");
    let lassi = must(&lab, "starting lassi", lab.start_lassi(&config));
    let client = lab.client(1);
    let mac = client.mac().to_string();
    must(&lab, "udhcpc", client.udhcpc());
    must(&lab, "authorize", lassi.authorize(client.mac()));
    assert!(
        eventually(2, || in_kernel(&lab, &lassi) == 1),
        "the shaped session did not reach the kernel: {}",
        lassi.log_tail(20)
    );
    let ifindex = lan_ifindex(lab.gw());
    assert_eq!(
        shaping_devices(lab.gw()),
        vec![format!("lassi{ifindex}d"), format!("lassi{ifindex}u")]
    );
    assert_eq!(shaping_class(lab.gw(), 'd').unwrap().0, "20Mbit");
    assert_eq!(shaping_class(lab.gw(), 'u').unwrap().0, "8Mbit");

    let lan_rx0 = status(&lab, &lassi)["io"]["lan_rx"].as_u64().unwrap();
    let (rx0, rxp0) = ip_counts(client, "rx");
    let (tx0, _) = ip_counts(client, "tx");
    let s0 = session(&lassi, &mac);
    let down = iperf_rate(&lab, client, &["-R"]);
    let up = iperf_rate(&lab, client, &[]);
    println!(
        "kernel shaping: download {:.2} Mbit/s against 20, upload {:.2} Mbit/s against 8",
        down / 1e6,
        up / 1e6
    );
    assert!(
        (0.9..=1.05).contains(&(down / 20e6)),
        "download {down} bit/s vs 20 Mbit/s"
    );
    assert!(
        (0.9..=1.05).contains(&(up / 8e6)),
        "upload {up} bit/s vs 8 Mbit/s"
    );

    // Offered twice the rate, the download class drops the rest; what it
    // let through is what the client got, and what lassi counts.
    must(
        &lab,
        "iperf3 udp",
        lab.iperf(client, WEB, &["-u", "-b", "40M", "-t", "2", "-R"]),
    );
    let (_, dropped) = shaping_class(lab.gw(), 'd').expect("download class");
    assert!(dropped > 0, "the download class dropped nothing");
    // lassi reports the kernel shaper's drops as its own (`drops.shaped`).
    let shaped_drops = || status(&lab, &lassi)["drops"]["shaped"].as_u64().unwrap();
    assert!(
        eventually(3, || shaped_drops() >= dropped),
        "status drops.shaped {} < the class's {dropped}",
        shaped_drops()
    );
    let lan_rx = status(&lab, &lassi)["io"]["lan_rx"].as_u64().unwrap() - lan_rx0;
    let (rx1, rxp1) = ip_counts(client, "rx");
    let (tx1, _) = ip_counts(client, "tx");
    let s1 = session(&lassi, &mac);
    let d = |k: &str| s1["counters"][k].as_u64().unwrap() - s0["counters"][k].as_u64().unwrap();
    let (kout, kpout, kin) = (rx1 - rx0, rxp1 - rxp0, tx1 - tx0);
    let (oout, pout, oin) = (d("octets_out"), d("packets_out"), d("octets_in"));
    println!("kernel shaping: out {oout}/{kout} ({pout}/{kpout} packets), in {oin}/{kin}; {dropped} dropped down; lassi read {lan_rx} frames");
    assert!(
        (0.99..1.01).contains(&(oout as f64 / kout as f64)),
        "octets_out {oout} vs client rx {kout}"
    );
    assert!(
        (0.99..1.01).contains(&(pout as f64 / kpout as f64)),
        "packets_out {pout} vs client rx {kpout}"
    );
    // Uploads: within 1 % of what the client sent less what the upload
    // class dropped (each drop one frame of at most 1500 IP bytes, the
    // client's offloads being off), never more than it sent.
    let (_, up_dropped) = shaping_class(lab.gw(), 'u').expect("upload class");
    assert!(oin <= kin, "octets_in {oin} > client tx {kin}");
    assert!(
        kin - oin <= up_dropped * 1500 + kin / 100,
        "octets_in {oin} vs client tx {kin}: more missing than {up_dropped} drops"
    );
    assert!(
        lan_rx < 100,
        "lassi read {lan_rx} LAN frames: the kernel did not forward the session"
    );
}
