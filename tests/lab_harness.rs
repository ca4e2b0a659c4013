//! Checks of the test lab itself (`lassi_lab`), independent of the lassi
//! daemon: topology up and down without leaks (also on panic), the upstream
//! HTTP server, dnsmasq as DNS, and the three DHCP client runners against
//! dnsmasq acting as a reference DHCP server.
//!
//! Needs root and the peer packages from TESTBED.md.

use lassi_lab::topology::namespaces_with_prefix;
use lassi_lab::upstream::{APPLE_SUCCESS, HOME_MARKER, MICROSOFT_CONNECT_TEST};
use lassi_lab::{
    expected_bytes, expected_checksum, pattern_checksum, DhcpClientKind, DhcpOptions,
    DhcpServerOptions, Lab, LabOptions, Netns, Proc, UpstreamServer,
};
use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

fn lab(clients: usize) -> Lab {
    Lab::new(LabOptions {
        clients,
        ..LabOptions::default()
    })
    .expect("building the lab")
}

fn leftovers(id: &str) -> Vec<String> {
    namespaces_with_prefix(&format!("{id}-")).unwrap()
}

fn pid_alive(pid: i32) -> bool {
    // kill(pid, 0) succeeds for zombies too; a reaped PID is gone.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn topology_comes_up_and_is_torn_down() {
    let lab = lab(2);
    let id = lab.id().to_string();
    let names = lab.namespace_names();
    assert_eq!(names.len(), 5);
    assert_eq!(leftovers(&id).len(), 5, "{names:?}");

    // Deterministic, distinct MACs on the clients' eth0.
    let c1 = lab.client(1);
    let c2 = lab.client(2);
    assert_eq!(c1.mac().to_string(), "02:00:00:00:00:01");
    assert_eq!(c2.mac().to_string(), "02:00:00:00:00:02");
    let link = c1.ns().ip(&["link", "show", "eth0"]).unwrap().stdout;
    assert!(link.contains("02:00:00:00:00:01"), "{link}");

    // Switch ports enslaved to br0, gateway LAN without an address.
    let br = lab
        .switch()
        .ip(&["-o", "link", "show", "master", "br0"])
        .unwrap()
        .stdout;
    for p in ["p0", "p1", "p2"] {
        assert!(br.contains(&format!(" {p}@")), "{p} not on br0: {br}");
    }
    let lan = lab
        .gw()
        .ip(&["-4", "addr", "show", "dev", "lan0"])
        .unwrap()
        .stdout;
    assert!(!lan.contains("inet "), "lan0 must have no address: {lan}");
    // Offloads are off by default on the LAN path.
    let eth = c1.ns().exec(&["ethtool", "-k", "eth0"]).unwrap().stdout;
    assert!(eth.contains("tcp-segmentation-offload: off"), "{eth}");
    // IPv6 off by default.
    let v6 = c1
        .ns()
        .exec(&["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"])
        .unwrap()
        .stdout;
    assert_eq!(v6.trim(), "1");

    // Upstream routing: the gateway reaches the upstream "internet" hosts.
    let web = lab.start_upstream().unwrap();
    assert!(lab.curl_from_gw(&["http://198.51.100.10/"]).unwrap().ok());
    drop(web);
    assert_eq!(
        lab.gw()
            .exec(&["sysctl", "-n", "net.ipv4.ip_forward"])
            .unwrap()
            .stdout
            .trim(),
        "1"
    );

    // add_client grows the LAN.
    let mut lab = lab;
    assert_eq!(lab.add_client().unwrap(), 3);
    assert_eq!(lab.client(3).mac().to_string(), "02:00:00:00:00:03");
    assert_eq!(leftovers(&id).len(), 6);

    // A background process in a namespace dies with the lab.
    let log = lab.path("sleeper.log");
    let sleeper: Proc = lab
        .client(3)
        .ns()
        .spawn("sleeper", &["sleep", "300"], &log, &Default::default())
        .unwrap();
    let pid = sleeper.pid();
    assert!(pid_alive(pid));
    drop(sleeper);
    assert!(!pid_alive(pid), "sleeper {pid} survived its guard");

    let dir = lab.dir().to_path_buf();
    drop(lab);
    assert!(
        leftovers(&id).is_empty(),
        "leaked namespaces: {:?}",
        leftovers(&id)
    );
    assert!(!dir.exists(), "lab dir {} left behind", dir.display());
}

#[test]
fn namespaces_are_removed_when_a_test_panics() {
    let mut id = String::new();
    let mut pid = 0;
    let r = catch_unwind(AssertUnwindSafe(|| {
        let lab = lab(1);
        id = lab.id().to_string();
        // A process left running inside a namespace, not held by any guard
        // (like a forked daemon): the namespace guard must kill it.
        let out = lab
            .client(1)
            .ns()
            .exec(&[
                "sh",
                "-c",
                "setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo $!",
            ])
            .unwrap();
        pid = out.stdout.trim().parse().unwrap();
        assert!(pid_alive(pid));
        panic!("deliberate panic with the lab up");
    }));
    assert!(r.is_err());
    assert!(!id.is_empty());
    assert!(
        leftovers(&id).is_empty(),
        "leaked namespaces: {:?}",
        leftovers(&id)
    );
    // The orphan is reparented to init (or a subreaper); it must be dead or
    // at most a zombie waiting to be reaped.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "orphan {pid} still running: {state}"
    );
}

#[test]
fn netns_guard_reports_stderr() {
    let ns = Netns::create("errs").unwrap();
    let name = ns.name().to_string();
    let err = ns
        .exec(&["ip", "link", "set", "nosuchdev", "up"])
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("nosuchdev"), "{msg}");
    assert!(msg.contains(&name), "{msg}");
    drop(ns);
    assert!(namespaces_with_prefix(&name).unwrap().is_empty());
}

#[test]
fn upstream_server_answers_from_the_gateway() {
    let lab = lab(0);
    let web = lab.start_upstream().unwrap();

    let r = lab.curl_from_gw(&["http://198.51.100.10/"]).unwrap();
    assert!(r.ok(), "{r}");
    assert!(r.text().contains(HOME_MARKER));

    let r = lab
        .curl_from_gw(&["http://198.51.100.10/generate_204"])
        .unwrap();
    assert_eq!(r.http_code, 204, "{r}");
    assert!(r.body.is_empty());

    let r = lab
        .curl_from_gw(&[
            "-H",
            "Host: captive.apple.com",
            "http://198.51.100.10/hotspot-detect.html",
        ])
        .unwrap();
    assert_eq!(r.text(), APPLE_SUCCESS);
    let r = lab
        .curl_from_gw(&["http://198.51.100.10/connecttest.txt"])
        .unwrap();
    assert_eq!(r.text(), MICROSOFT_CONNECT_TEST);
    let r = lab
        .curl_from_gw(&["http://198.51.100.10/some/where?x=1"])
        .unwrap();
    assert!(r.ok() && r.text().contains("/some/where"), "{r}");

    for n in [0usize, 1, 7, 65536, 65541, 3 << 20] {
        let r = lab
            .curl_from_gw(&[format!("http://198.51.100.10/bytes/{n}")])
            .unwrap();
        assert!(r.ok(), "{r}");
        assert_eq!(r.body.len(), n);
        assert_eq!(
            r.header("content-length").as_deref(),
            Some(n.to_string().as_str())
        );
        if n <= 65541 {
            assert!(r.body == expected_bytes(n), "/bytes/{n} content differs");
        }
        assert_eq!(pattern_checksum(&r.body), expected_checksum(n as u64));
    }

    // The request log: method, path, Host, peer (the gateway's wan0).
    let reqs = web.requests_to("/hotspot-detect.html");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].host.as_deref(), Some("captive.apple.com"));
    assert_eq!(
        reqs[0].peer.ip(),
        std::net::IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
    );
    assert!(web.requests().iter().any(|r| r.path == "/some/where?x=1"));

    // Stops when the handle drops.
    drop(web);
    let r = lab
        .curl_from_gw(&["--max-time", "3", "http://198.51.100.10/"])
        .unwrap();
    assert_ne!(r.exit_code, 0, "server still answering after drop: {r}");
}

#[test]
fn upstream_server_serves_ipv6_when_enabled() {
    let lab = Lab::new(LabOptions {
        clients: 0,
        ipv6: true,
        ..LabOptions::default()
    })
    .unwrap();
    let web = lab.start_upstream().unwrap();
    let r = lab
        .curl_from_gw(&["-g", "http://[2001:db8:100::10]/"])
        .unwrap();
    assert!(r.ok() && r.text().contains(HOME_MARKER), "{r}");
    assert!(web.requests()[0].peer.is_ipv6());
}

#[test]
fn dnsmasq_answers_names() {
    let lab = lab(0);
    let web = lab.start_upstream().unwrap();
    let dns = lab
        .start_dns_with(&[("portal.lab.test", "10.1.0.1".parse().unwrap())])
        .unwrap();

    // glibc's resolver in the gateway namespace, through the private resolv.conf.
    let out = lab
        .gw()
        .exec(&["getent", "ahostsv4", "example.test"])
        .unwrap();
    assert!(out.stdout.contains("198.51.100.10"), "{}", out.stdout);
    let out = lab
        .gw()
        .exec(&["getent", "ahostsv4", "portal.lab.test"])
        .unwrap();
    assert!(out.stdout.contains("10.1.0.1"), "{}", out.stdout);
    let out = lab
        .gw()
        .run(&["getent", "ahostsv4", "nonexistent.invalid"])
        .unwrap();
    assert!(!out.success());

    // curl by name: DNS then HTTP; the upstream sees the Host header.
    let r = lab
        .curl_from_gw(&["http://captive.apple.com/hotspot-detect.html"])
        .unwrap();
    assert_eq!(r.text(), APPLE_SUCCESS, "{r}");
    assert_eq!(
        web.requests_to("/hotspot-detect.html")[0].host.as_deref(),
        Some("captive.apple.com")
    );
    assert!(dns.log().contains("example.test"), "{}", dns.log());
    let pid = dns.pid();
    drop(dns);
    assert!(!pid_alive(pid));
}

/// Brings a lab with dnsmasq as DHCP server on the gateway LAN (whose
/// 10.1.0.1 then routes to the upstream web server).
fn dhcp_lab(clients: usize) -> (Lab, lassi_lab::dns::Dnsmasq, UpstreamServer) {
    let lab = lab(clients);
    let srv = lab
        .start_reference_dhcp(&DhcpServerOptions::default())
        .unwrap();
    let web = lab.start_upstream().unwrap();
    (lab, srv, web)
}

fn check_lease(lab: &Lab, index: usize, kind: DhcpClientKind) {
    let client = lab.client(index);
    let lease = client.dhcp(kind, &DhcpOptions::default()).unwrap();
    assert_eq!(lease.client, kind);
    let o = lease.ip.octets();
    assert!(
        o[..3] == [10, 1, 0] && (100..=199).contains(&o[3]),
        "{lease}"
    );
    assert_eq!(lease.prefix, 24, "{lease}");
    assert_eq!(lease.netmask, Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(lease.router, Some(Ipv4Addr::new(10, 1, 0, 1)), "{lease}");
    assert_eq!(lease.dns, vec![Ipv4Addr::new(198, 51, 100, 53)], "{lease}");
    assert_eq!(lease.lease_time, 3600, "{lease}");
    assert_eq!(lease.server_id, Some(Ipv4Addr::new(10, 1, 0, 1)), "{lease}");
    assert_eq!(lease.domain.as_deref(), Some("lab.test"), "{lease}");
    assert_eq!(
        lease.captive_portal.as_deref(),
        Some("http://10.1.0.1/api"),
        "{lease}"
    );
    // The client configured eth0 like its stock script would.
    assert_eq!(client.ipv4_addrs().unwrap(), vec![(lease.ip, 24)], "{kind}");
    assert_eq!(
        client.default_gateway().unwrap(),
        Some(Ipv4Addr::new(10, 1, 0, 1)),
        "{kind}"
    );
    // And it can use it: through the gateway to the upstream web server.
    let r = client.curl(&["http://198.51.100.10/"]).unwrap();
    assert!(r.ok() && r.text().contains(HOME_MARKER), "{kind}: {r}");
    if kind == DhcpClientKind::Dhcpcd {
        let warn = lease.log_lines_with(&["t1", "t2", "warning"]);
        assert!(warn.is_empty(), "dhcpcd complained: {warn:?}");
    }
    // Nothing lingers in the client namespace (dhclient's daemon was killed).
    assert!(
        client.ns().pids().is_empty(),
        "{kind} left {:?}",
        client.ns().pids()
    );
}

fn host_resolv_conf() -> Vec<u8> {
    std::fs::read("/etc/resolv.conf").unwrap_or_default()
}

#[test]
fn udhcpc_gets_a_lease_from_dnsmasq() {
    let before = host_resolv_conf();
    let (lab, _srv, _web) = dhcp_lab(1);
    check_lease(&lab, 1, DhcpClientKind::Udhcpc);
    assert_eq!(host_resolv_conf(), before);
}

#[test]
fn dhclient_gets_a_lease_from_dnsmasq() {
    let before = host_resolv_conf();
    let (lab, _srv, _web) = dhcp_lab(1);
    check_lease(&lab, 1, DhcpClientKind::Dhclient);
    assert_eq!(host_resolv_conf(), before);
}

#[test]
fn dhcpcd_gets_a_lease_from_dnsmasq() {
    let before = host_resolv_conf();
    let (lab, _srv, _web) = dhcp_lab(1);
    check_lease(&lab, 1, DhcpClientKind::Dhcpcd);
    assert_eq!(host_resolv_conf(), before);
}

#[test]
fn three_clients_three_runners_distinct_leases() {
    let (lab, srv, _web) = dhcp_lab(3);
    let kinds = [
        DhcpClientKind::Dhclient,
        DhcpClientKind::Udhcpc,
        DhcpClientKind::Dhcpcd,
    ];
    let mut ips = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let lease = lab
            .client(i + 1)
            .dhcp(*kind, &DhcpOptions::default())
            .unwrap();
        ips.push(lease.ip);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3, "{ips:?}");
    // The server saw each client's MAC.
    let log = srv.log();
    for c in lab.clients() {
        assert!(
            log.contains(&c.mac().to_string()),
            "no DHCP from {}:\n{log}",
            c.mac()
        );
    }
}

#[test]
fn dhcp_runner_fails_cleanly_without_a_server() {
    let lab = lab(1);
    let opts = DhcpOptions {
        timeout_secs: 3,
        ..DhcpOptions::default()
    };
    let started = std::time::Instant::now();
    let err = lab.client(1).udhcpc_with(&opts).unwrap_err();
    assert!(err.to_string().contains("no lease"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(lab.client(1).ns().pids().is_empty());
}

#[test]
fn kernel_baseline_forwards_client_traffic() {
    let lab = Lab::new(LabOptions {
        clients: 1,
        kernel_baseline: true,
        ..LabOptions::default()
    })
    .unwrap();
    let _web = lab.start_upstream().unwrap();
    let _dns = lab.start_dns().unwrap();
    let c = lab.client(1);
    assert_eq!(
        c.ipv4_addrs().unwrap(),
        vec![(Ipv4Addr::new(10, 1, 0, 11), 24)]
    );
    let r = c.curl(&["http://example.test/bytes/1048576"]).unwrap();
    assert!(r.ok(), "{r}");
    assert_eq!(pattern_checksum(&r.body), expected_checksum(1 << 20));
}

#[test]
fn lassi_handle_reports_a_missing_binary() {
    let lab = Lab::new(LabOptions {
        clients: 0,
        lassi_bin: Some("/nonexistent/lassi".into()),
        ..LabOptions::default()
    })
    .unwrap();
    let err = lab
        .start_lassi("[lan]\nlease_time = 120\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lassi"), "{err}");
    let err = lab.start_lassi("not = [valid").unwrap_err().to_string();
    assert!(err.contains("TOML"), "{err}");
}

#[test]
fn lassi_handle_drives_the_daemon_through_its_cli() {
    let lab = Lab::new(LabOptions {
        clients: 1,
        lassi_bin: Some(env!("CARGO_BIN_EXE_lassi").into()),
        ..LabOptions::default()
    })
    .unwrap();
    let _web = lab.start_upstream().unwrap();
    let mut lassi = lab.start_lassi("[lan]\nlease_time = 600\n").unwrap();
    assert!(lassi.config_text().contains("lease_time = 600"));
    assert!(lassi.config_text().contains("interface = \"lan0\""));
    let client = lab.client(1);
    let lease = client.udhcpc().unwrap();
    assert_eq!(lease.router, Some(Ipv4Addr::new(10, 1, 0, 1)));

    let blocked = client
        .curl(&["--max-time", "2", "http://198.51.100.10/"])
        .unwrap();
    assert!(!blocked.ok(), "{blocked}");
    assert_eq!(lassi.sessions_json().unwrap()[0]["state"], "unauthorized");

    lassi.authorize(client.mac()).unwrap();
    assert!(client.curl(&["http://198.51.100.10/"]).unwrap().ok());
    let s = lassi.sessions_json().unwrap();
    assert_eq!(s[0]["mac"], "02:00:00:00:00:01");
    assert!(lassi.sessions_text().unwrap().contains("02:00:00:00:00:01"));

    // Restart keeps the state directory and the control socket path.
    let pid1 = lassi.pid().unwrap();
    lassi.restart().unwrap();
    let pid2 = lassi.pid().unwrap();
    assert_ne!(pid1, pid2);
    assert!(client.curl(&["http://198.51.100.10/"]).unwrap().ok());
    assert!(lassi.log().contains("start #2"));

    lassi.logout(client.mac()).unwrap();
    let r = client
        .curl(&["--max-time", "2", "http://198.51.100.10/"])
        .unwrap();
    assert!(!r.ok(), "{r}");
    let bad = lassi.ctl(&["frobnicate"]).unwrap_err().to_string();
    assert!(bad.contains("frobnicate"), "{bad}");

    let st = lassi.stop().unwrap();
    assert!(st.success(), "{st:?}");
    assert!(!lassi.control_socket().exists());
}

/// The README's first command: `lassi lab` with the real daemon — a real
/// DHCP client redirected to the portal, logging in, getting online and
/// logging out.
#[test]
fn demo_runs_end_to_end_with_the_real_lassi() {
    lassi_lab::run_demo(std::path::Path::new(env!("CARGO_BIN_EXE_lassi"))).unwrap();
}
