//! End-to-end tests of the core gateway with real peers in network
//! namespaces: dhclient, udhcpc, dhcpcd, curl, and an upstream web server.
//! They need root (CI runs them as root). Every test builds its own lab with
//! unique namespace names, so they run in parallel; the lab's guards remove
//! namespaces and processes on success and on panic.

use std::net::Ipv4Addr;
use std::time::Duration;

use lassi_lab::must;
use lassi_lab::peers::{DhcpClientKind, DhcpOptions};
use lassi_lab::upstream::expected_bytes;
use lassi_lab::{Guest, Lab, LabOptions, LassiHandle};
use serde_json::Value;

const WEB: &str = "http://198.51.100.10";
const WEB_IP: &str = "198.51.100.10";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);

fn lab(opts: LabOptions) -> Lab {
    Lab::new(opts).unwrap_or_else(|e| panic!("building the lab: {e}"))
}

/// The client's entry in `lassi sessions --json`.
fn session_of(lassi: &LassiHandle, mac: &str) -> Option<Value> {
    let v = lassi.sessions_json().expect("lassi sessions --json");
    v.as_array()?.iter().find(|c| c["mac"] == mac).cloned()
}

fn counter(c: &Value, name: &str) -> u64 {
    c["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("counter {name} in {c}"))
}

/// IP-layer bytes and packets an interface sent or received, from the
/// kernel's own statistics (Ethernet bytes minus 14 per frame).
fn ip_bytes(client: &Guest, dir: &str) -> (u64, u64) {
    let read = |name: &str| -> u64 {
        let out = client
            .ns()
            .run(&[
                "cat",
                &format!("/sys/class/net/eth0/statistics/{dir}_{name}"),
            ])
            .expect("reading interface statistics");
        out.stdout.trim().parse().expect("a number")
    };
    let (bytes, packets) = (read("bytes"), read("packets"));
    (bytes - 14 * packets, packets)
}

fn within(actual: u64, expected: u64, tolerance: f64) -> bool {
    let (a, e) = (actual as f64, expected as f64);
    (a - e).abs() <= e * tolerance
}

#[test]
fn three_dhcp_clients_get_correct_leases() {
    let lab = lab(LabOptions {
        clients: 3,
        ..LabOptions::default()
    });
    let lassi = must(
        &lab,
        "starting lassi",
        lab.start_lassi(
            "[lan]\nlease_time = 1800\nunauthorized_lease_time = 900\ndomain = \"hotspot.test\"\ncaptive_portal_uri = \"http://10.1.0.1:3990/api\"\n",
        ),
    );
    let kinds = [
        DhcpClientKind::Udhcpc,
        DhcpClientKind::Dhclient,
        DhcpClientKind::Dhcpcd,
    ];
    let mut seen = Vec::new();
    for (client, kind) in lab.clients().iter().zip(kinds) {
        let lease = must(
            &lab,
            &format!("{kind} lease"),
            client.dhcp(kind, &DhcpOptions::default()),
        );
        assert!(
            (2..=254).contains(&lease.ip.octets()[3]) && lease.ip.octets()[..3] == [10, 1, 0],
            "{kind}: {lease:?}"
        );
        assert_eq!(lease.prefix, 24, "{kind} netmask");
        assert_eq!(lease.router, Some(GATEWAY), "{kind} router");
        assert_eq!(lease.dns, vec![DNS], "{kind} dns");
        // Not logged in yet: the guests' lease time, not the full one.
        assert_eq!(lease.lease_time, 900, "{kind} lease time");
        assert_eq!(
            lease.server_id.unwrap_or(GATEWAY),
            GATEWAY,
            "{kind} server id"
        );
        assert_eq!(
            lease.domain.as_deref(),
            Some("hotspot.test"),
            "{kind} domain"
        );
        if kind != DhcpClientKind::Dhcpcd {
            // dhcpcd does not hand option 114 to its script by default.
            assert_eq!(
                lease.captive_portal.as_deref(),
                Some("http://10.1.0.1:3990/api"),
                "{kind} option 114"
            );
        }
        if kind == DhcpClientKind::Dhcpcd {
            // dhcpcd checks T1 ≤ T2 ≤ lease and complains when they are off.
            let complaints =
                lease.log_lines_with(&["T1", "T2", "renewal", "rebind", "lease time", "warning"]);
            assert!(
                complaints.is_empty(),
                "dhcpcd complained: {complaints:?}\n{}",
                lease.log
            );
        }
        // The address is really configured on the client's interface.
        let addrs = must(&lab, "client addresses", client.ipv4_addrs());
        assert!(addrs.contains(&(lease.ip, 24)), "{kind}: {addrs:?}");
        assert!(!seen.contains(&lease.ip), "two clients got {}", lease.ip);
        seen.push(lease.ip);

        let s = session_of(&lassi, &client.mac().to_string()).expect("lassi lists the client");
        assert_eq!(s["ip"], lease.ip.to_string());
        assert_eq!(s["state"], "unauthorized");
    }
}

/// Lease, blocked, authorize, 10 MB with checksum and exact-ish counters,
/// logout, blocked again: once with LAN offloads off, once on.
fn forwarding(offloads: bool) {
    forwarding_checks(offloads);
}

/// TCP segments a namespace's stack refused for a bad checksum.
/// A counter of `proto`'s line in a namespace's /proc/net/snmp
/// (`"Tcp"`, `"InCsumErrors"`).
fn snmp(ns: &lassi_lab::Netns, proto: &str, name: &str) -> u64 {
    let snmp = ns.run(&["cat", "/proc/net/snmp"]).expect("snmp").stdout;
    let prefix = format!("{proto}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let i = names.split_whitespace().position(|n| n == name).unwrap();
    values.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn tcp_in_csum_errors(ns: &lassi_lab::Netns) -> u64 {
    snmp(ns, "Tcp", "InCsumErrors")
}

/// With LAN offloads on, a guest leaves its UDP checksums to the device;
/// lassi completes them (so the datagrams can be coalesced into the TUN
/// device): the upstream host, verifying in software, refuses none.
fn udp_upload_checksums_verify(lab: &Lab) {
    let up = lab.upstream();
    let (ok0, bad0) = (
        snmp(up, "Udp", "InDatagrams"),
        snmp(up, "Udp", "InCsumErrors"),
    );
    let v = must(
        lab,
        "iperf3 -u",
        lab.iperf(
            lab.client(1),
            WEB_IP,
            &["-u", "-b", "20M", "-t", "1", "-l", "200"],
        ),
    );
    let got = v["end"]["sum"]["packets"].as_u64().unwrap_or(0)
        - v["end"]["sum"]["lost_packets"].as_u64().unwrap_or(0);
    let (ok, bad) = (
        snmp(up, "Udp", "InDatagrams") - ok0,
        snmp(up, "Udp", "InCsumErrors") - bad0,
    );
    println!("UDP upload: iperf3 server got {got}; upstream kernel: {ok} ok, {bad} bad checksums");
    assert!(got > 1000 && ok >= got, "{v}");
    assert_eq!(bad, 0, "bad UDP checksums upstream");
}

fn forwarding_checks(offloads: bool) {
    let lab = lab(LabOptions {
        offloads,
        ..LabOptions::default()
    });
    if offloads {
        // An all-veth path never completes a partial checksum, so a wrong
        // csum_start would go unnoticed. Make the kernel complete checksums
        // where lassi's packets leave the gateway (wan0, lan0) and the
        // receivers verify them in software (up0, the client's eth0).
        let settings = [
            (lab.gw(), "wan0", "tx"),
            (lab.gw(), "lan0", "tx"),
            (lab.upstream(), "up0", "rx"),
            (lab.client(1).ns(), "eth0", "rx"),
        ];
        for (ns, dev, what) in settings {
            let r = ns
                .run(&["ethtool", "-K", dev, what, "off"])
                .and_then(|o| o.check());
            must(&lab, "ethtool", r);
        }
    }
    let _web = must(&lab, "upstream", lab.start_upstream());
    let lassi = must(&lab, "starting lassi", lab.start_lassi(""));
    let client = lab.client(1);
    let mac = client.mac().to_string();
    must(&lab, "udhcpc", client.udhcpc());

    // Before login nothing upstream answers.
    let blocked = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", &format!("{WEB}/")]),
    );
    assert!(!blocked.ok(), "reached the web before login: {blocked:?}");

    must(&lab, "authorize", lassi.authorize(client.mac()));
    let (tx0, _) = ip_bytes(client, "tx");
    let (rx0, _) = ip_bytes(client, "rx");
    let size = 10 * 1024 * 1024;
    let got = must(
        &lab,
        "download",
        client.curl(&["--max-time", "60", &format!("{WEB}/bytes/{size}")]),
    );
    assert!(got.ok(), "download failed: {got:?}\n{}", lassi.log_tail(30));
    assert_eq!(got.body.len(), size);
    assert!(
        got.body == expected_bytes(size),
        "downloaded bytes differ from what the server sent"
    );
    let (tx1, _) = ip_bytes(client, "tx");
    let (rx1, _) = ip_bytes(client, "rx");

    let s = session_of(&lassi, &mac).expect("session listed");
    assert_eq!(s["state"], "authorized");
    let (oin, oout) = (counter(&s, "octets_in"), counter(&s, "octets_out"));
    let (kin, kout) = (tx1 - tx0, rx1 - rx0);
    // lassi counts what crossed at the IP layer, segment by segment; the
    // client's kernel counts the same bytes (with offloads on it sees GSO
    // super-packets, one set of headers per 64 KB: up to ~4 % fewer).
    assert!(oout >= size as u64, "octets_out {oout} < body {size}");
    assert!(
        within(oout, kout, 0.05),
        "octets_out {oout} vs client rx {kout}"
    );
    assert!(within(oin, kin, 0.05), "octets_in {oin} vs client tx {kin}");
    // Segment by segment, on either fast path.
    assert!(counter(&s, "packets_out") >= (size / 1500) as u64);

    // The payload check above means TCP delivered intact data; with the
    // receivers verifying checksums, none may have been refused either.
    for ns in [lab.upstream(), client.ns()] {
        let errors = tcp_in_csum_errors(ns);
        assert_eq!(errors, 0, "bad TCP checksums seen in {}", ns.name());
    }
    let status = must(&lab, "status", lassi.ctl(&["status"]));
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    println!(
        "offloads {offloads}: {} {}",
        status["io"], status["workers"]
    );
    if lassi_lab::gateway::lab_fast_path_is_kernel() {
        // The kernel forwarded the session, not lassi.
        assert_eq!(status["workers"]["fast_path_sessions"], 1, "{status}");
    } else if offloads {
        // Both offloads really crossed lassi (the point of this variant).
        assert!(status["io"]["lan_rx_partial_csum"].as_u64().unwrap() > 0);
        assert!(status["io"]["tun_rx_gso"].as_u64().unwrap() > 0);
    }
    if offloads {
        udp_upload_checksums_verify(&lab);
    }

    must(&lab, "logout", lassi.logout(client.mac()));
    let after = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", &format!("{WEB}/")]),
    );
    assert!(!after.ok(), "still online after logout: {after:?}");
    let s = session_of(&lassi, &mac).expect("client keeps its lease");
    assert_eq!(s["state"], "unauthorized");
}

#[test]
fn forwarding_with_lan_offloads_off() {
    forwarding(false);
}

#[test]
fn forwarding_with_lan_offloads_on() {
    forwarding(true);
}

#[test]
fn forged_source_address_gets_nothing_and_counts_for_nobody() {
    let lab = lab(LabOptions {
        clients: 2,
        ..LabOptions::default()
    });
    let web = must(&lab, "upstream", lab.start_upstream());
    let lassi = must(&lab, "starting lassi", lab.start_lassi(""));
    let (victim, forger) = (lab.client(1), lab.client(2));
    let v = must(&lab, "victim lease", victim.udhcpc());
    must(&lab, "forger lease", forger.udhcpc());
    must(&lab, "authorize victim", lassi.authorize(victim.mac()));
    must(&lab, "authorize forger", lassi.authorize(forger.mac()));
    let before = session_of(&lassi, &victim.mac().to_string()).unwrap();

    // The forger takes the victim's address by hand.
    must(&lab, "flush", forger.flush_ipv4());
    must(
        &lab,
        "steal address",
        forger
            .ns()
            .ip(&["addr", "add", &format!("{}/24", v.ip), "dev", "eth0"]),
    );
    must(
        &lab,
        "route",
        forger
            .ns()
            .ip(&["route", "add", "default", "via", "10.1.0.1"]),
    );
    web.clear_requests();
    let r = must(
        &lab,
        "curl",
        forger.curl(&["--max-time", "3", &format!("{WEB}/forged")]),
    );
    assert!(!r.ok(), "forged packets got through: {r:?}");
    assert!(
        web.requests_to("/forged").is_empty(),
        "the upstream server saw the forger"
    );

    let after = session_of(&lassi, &victim.mac().to_string()).unwrap();
    assert_eq!(
        before["counters"], after["counters"],
        "the victim's counters moved"
    );
    let forger_s = session_of(&lassi, &forger.mac().to_string()).unwrap();
    assert_eq!(counter(&forger_s, "octets_in"), 0);
    let status = must(&lab, "status", lassi.ctl(&["status"]));
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        status["drops"]["spoofed"].as_u64().unwrap() > 0,
        "{}",
        status["drops"]
    );
}

#[test]
fn hand_configured_clients_never_get_around_lassi() {
    let lab = lab(LabOptions {
        clients: 1,
        ipv6: true,
        ..LabOptions::default()
    });
    let web = must(&lab, "upstream", lab.start_upstream());
    let client = lab.client(1);
    // Control: before lassi starts, an operator has left IPv6 on the LAN
    // interface with forwarding; a client with a hand-set address and
    // route goes straight through the gateway's kernel.
    let gw = lab.gw();
    must(
        &lab,
        "gw v6",
        gw.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "lan0", "nodad"]),
    );
    must(
        &lab,
        "gw fwd",
        gw.sysctl("net.ipv6.conf.all.forwarding", "1"),
    );
    must(
        &lab,
        "up route",
        lab.upstream().ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:1::/64",
            "via",
            "2001:db8:2::1",
        ]),
    );
    must(
        &lab,
        "client v6",
        client
            .ns()
            .ip(&["addr", "add", "2001:db8:1::77/64", "dev", "eth0", "nodad"]),
    );
    must(
        &lab,
        "client v6 route",
        client
            .ns()
            .ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]),
    );
    let v6_url = "http://[2001:db8:100::10]/v6";
    let open = must(&lab, "curl -6", client.curl(&["--max-time", "5", v6_url]));
    assert!(
        open.ok(),
        "control failed: IPv6 should pass before lassi runs: {open:?}"
    );

    let lassi = must(&lab, "starting lassi", lab.start_lassi(""));
    web.clear_requests();
    // IPv6 is shut on the LAN (lassi disables it there and drops it).
    let v6 = must(&lab, "curl -6", client.curl(&["--max-time", "3", v6_url]));
    assert!(!v6.ok(), "IPv6 got around lassi: {v6:?}");
    // IPv4 with a hand-set address and default route, no lease.
    must(
        &lab,
        "client v4",
        client
            .ns()
            .ip(&["addr", "add", "10.1.0.77/24", "dev", "eth0"]),
    );
    must(
        &lab,
        "client v4 route",
        client
            .ns()
            .ip(&["route", "add", "default", "via", "10.1.0.1"]),
    );
    let v4 = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", &format!("{WEB}/v4")]),
    );
    assert!(!v4.ok(), "a client without a lease got through: {v4:?}");
    assert!(
        web.requests().is_empty(),
        "upstream saw: {:?}",
        web.requests()
    );
    let status: Value =
        serde_json::from_str(&must(&lab, "status", lassi.ctl(&["status"])).stdout).unwrap();
    assert!(
        status["drops"]["no_lease"].as_u64().unwrap() > 0,
        "{}",
        status["drops"]
    );
    assert!(
        status["drops"]["ipv6"].as_u64().unwrap() > 0,
        "{}",
        status["drops"]
    );
    // After DHCP and login the same client is online over IPv4 only.
    must(&lab, "flush", client.flush_ipv4());
    must(&lab, "udhcpc", client.udhcpc());
    must(&lab, "authorize", lassi.authorize(client.mac()));
    let ok = must(&lab, "curl", client.curl(&[&format!("{WEB}/v4")]));
    assert!(ok.ok(), "{ok:?}");
    let v6 = must(&lab, "curl -6", client.curl(&["--max-time", "3", v6_url]));
    assert!(!v6.ok(), "IPv6 got around lassi after login: {v6:?}");
}

#[test]
fn leases_survive_a_restart() {
    let lab = lab(LabOptions::default());
    let _web = must(&lab, "upstream", lab.start_upstream());
    let mut lassi = must(&lab, "starting lassi", lab.start_lassi(""));
    let client = lab.client(1);
    let first = must(&lab, "dhclient", client.dhclient());
    must(&lab, "restart", lassi.restart());
    let s = session_of(&lassi, &client.mac().to_string()).expect("client restored after restart");
    assert_eq!(s["ip"], first.ip.to_string());
    // The client comes back (a fresh DHCP exchange) and gets the same address.
    must(&lab, "flush", client.flush_ipv4());
    let again = must(&lab, "udhcpc", client.udhcpc());
    assert_eq!(again.ip, first.ip);
    must(&lab, "authorize", lassi.authorize(client.mac()));
    let r = must(&lab, "curl", client.curl(&[&format!("{WEB}/")]));
    assert!(r.ok(), "{r:?}");
    // lassi stopped cleanly and took its firewall tables along.
    lassi.stop();
    let tables = must(&lab, "nft", lab.gw().run(&["nft", "list", "tables"]));
    assert!(
        !tables.stdout.contains("lassi"),
        "tables left behind: {}",
        tables.stdout
    );
    assert!(
        lassi.log().contains("lassi stopped"),
        "{}",
        lassi.log_tail(20)
    );
}

#[test]
fn lease_ends_end_the_session() {
    let lab = lab(LabOptions::default());
    let lassi = must(
        &lab,
        "starting lassi",
        lab.start_lassi("[lan]\nlease_time = 60\n"),
    );
    let client = lab.client(1);
    let lease = must(&lab, "udhcpc", client.udhcpc());
    assert_eq!(lease.lease_time, 60);
    must(&lab, "authorize", lassi.authorize(client.mac()));
    // dhclient -r sends a RELEASE for the lease in its lease file: lassi
    // ends the session and frees the lease. (-sf /bin/true: leave the
    // interface alone; -1 makes dhclient fork once bound, -r stops that.)
    let dir = lab.dir().join("dhclient-release");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("conf"), "timeout 10;\n").unwrap();
    let file = |n: &str| dir.join(n).display().to_string();
    let dhclient = |extra: &str| {
        let out = must(
            &lab,
            "dhclient",
            client.ns().run(&[
                "dhclient",
                "-4",
                extra,
                "-v",
                "-sf",
                "/bin/true",
                "-lf",
                &file("lease"),
                "-pf",
                &file("pid"),
                "-cf",
                &file("conf"),
                "eth0",
            ]),
        );
        assert!(out.success(), "{out:?}");
        out
    };
    dhclient("-1");
    let release = dhclient("-r");
    assert!(release.stderr.contains("DHCPRELEASE"), "{release:?}");
    let gone = lassi_lab::netns::wait_until(Duration::from_secs(5), || {
        session_of(&lassi, &client.mac().to_string())
            .is_none()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "client still listed after RELEASE\n{release:?}\n{}\n{}",
        lassi.ctl(&["status"]).map(|o| o.stdout).unwrap_or_default(),
        lassi.log_tail(30)
    );
    assert!(
        lassi.log().contains("lease-released"),
        "{}",
        lassi.log_tail(20)
    );
}

/// The `session ended` log lines.
fn ended_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("session ended"))
        .map(str::to_string)
        .collect()
}

#[test]
fn logged_in_guests_stay_online_across_a_restart_and_a_crash() {
    let lab = lab(LabOptions::default());
    let _web = must(&lab, "upstream", lab.start_upstream());
    let mut lassi = must(&lab, "starting lassi", lab.start_lassi(""));
    let client = lab.client(1);
    let mac = client.mac().to_string();
    must(&lab, "udhcpc", client.udhcpc());
    must(&lab, "authorize", lassi.authorize(client.mac()));
    let r = must(&lab, "curl", client.curl(&[&format!("{WEB}/bytes/100000")]));
    assert!(r.ok(), "{r:?}");
    let first_id = session_of(&lassi, &mac).unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_string();

    // A clean restart: the session continues under its id (issue 10: no
    // Stop/Start churn), counting on from where it was.
    let before = session_of(&lassi, &mac).unwrap()["counters"]["octets_out"]
        .as_u64()
        .unwrap();
    must(&lab, "restart", lassi.restart());
    let s = session_of(&lassi, &mac).expect("client restored");
    assert_eq!(s["state"], "authorized", "{}", lassi.log_tail(20));
    assert_eq!(s["session_id"].as_str().unwrap(), first_id);
    assert!(s["counters"]["octets_out"].as_u64().unwrap() >= before);
    assert!(
        ended_lines(&lassi.log()).is_empty(),
        "no session ended: {}",
        lassi.log_tail(20)
    );
    let r = must(
        &lab,
        "curl",
        client.curl(&[&format!("{WEB}/after-restart")]),
    );
    assert!(r.ok(), "offline after a clean restart: {r:?}");

    // A crash (SIGKILL): no shutdown ran; the next start resumes the session
    // from its last save, still under its id, and the guest stays online.
    std::thread::sleep(std::time::Duration::from_secs(3)); // a counter save
    let before = session_of(&lassi, &mac).unwrap()["counters"]["octets_out"]
        .as_u64()
        .unwrap();
    lassi.crash();
    must(&lab, "start after crash", lassi.start_again());
    let s = session_of(&lassi, &mac).expect("client restored after crash");
    assert_eq!(s["state"], "authorized", "{}", lassi.log_tail(20));
    assert_eq!(s["session_id"].as_str().unwrap(), first_id);
    assert!(
        s["counters"]["octets_out"].as_u64().unwrap() >= before,
        "counters went back after the crash: {s}"
    );
    assert!(
        ended_lines(&lassi.log()).is_empty(),
        "{}",
        lassi.log_tail(20)
    );
    let r = must(&lab, "curl", client.curl(&[&format!("{WEB}/after-crash")]));
    assert!(
        r.ok(),
        "offline after a crash: {r:?}\n{}",
        lassi.log_tail(20)
    );
}

#[test]
fn router_services_stay_out_of_reach_before_and_after_login() {
    let lab = lab(LabOptions::default());
    let lassi = must(&lab, "starting lassi", lab.start_lassi(""));
    // Something listening on the router itself, like an admin UI.
    let admin: std::net::SocketAddr = "10.1.0.1:8080".parse().unwrap();
    let server = must(
        &lab,
        "admin server",
        lassi_lab::UpstreamServer::start(lab.gw().name(), &[admin]),
    );
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());
    let before = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", "http://10.1.0.1:8080/admin"]),
    );
    assert_eq!(
        before.exit_code, 7,
        "refused at once before login: {before:?}"
    );
    must(&lab, "authorize", lassi.authorize(client.mac()));
    let after = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", "http://10.1.0.1:8080/admin"]),
    );
    assert!(
        !after.ok(),
        "a logged-in guest reached a router service: {after:?}"
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    // The portal stays reachable.
    let api = must(&lab, "curl", client.curl(&["http://10.1.0.1:3990/api"]));
    assert!(api.ok(), "{api:?}");
}
