//! End-to-end tests of what an unauthorized client may reach: DNS, the
//! walled garden (addresses, host names, learnt domain suffixes), and fast
//! refusal of everything else. Real peers: curl, glibc's resolver, dnsmasq,
//! and a UDP socket from Python. Root only; CI runs them.

use std::net::IpAddr;

use lassi_lab::must;
use lassi_lab::{Lab, LabOptions};

const WEB: &str = "198.51.100.10";

#[test]
fn https_and_udp_fail_fast_dns_works() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let _dns = must(&lab, "dns", lab.start_dns());
    let web = must(&lab, "upstream", lab.start_upstream());
    let _lassi = must(&lab, "lassi", lab.start_lassi(""));
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());

    // DNS to the server the client was given works before login.
    let host = must(
        &lab,
        "getent",
        client.ns().run(&["getent", "hosts", "example.test"]),
    );
    assert!(host.stdout.contains(WEB), "resolver answer: {host:?}");

    // HTTPS: refused by a TCP reset (curl exit 7), not left to time out
    // (exit 28 after the 5 s connect timeout).
    let r = must(
        &lab,
        "curl https",
        client.curl(&[&format!("https://{WEB}/")]),
    );
    assert_eq!(r.exit_code, 7, "expected a reset: {r:?}");
    println!("https refused after {:?}", r.time);

    // UDP (QUIC): an ICMP error arrives, so the application sees an error
    // rather than silence.
    let py = "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(3)\ns.connect(('198.51.100.10',443))\ns.send(b'x')\ntry:\n  s.recv(100)\n  print('answered')\nexcept socket.timeout:\n  print('timeout')\nexcept OSError as e:\n  print('error', e.errno)\n";
    let out = must(&lab, "python udp", client.ns().run(&["python3", "-c", py]));
    assert!(
        out.stdout.starts_with("error"),
        "UDP got no ICMP error: {out:?}"
    );
    assert!(
        web.requests().is_empty(),
        "upstream saw {:?}",
        web.requests()
    );
}

#[test]
fn walled_garden_addresses_hosts_and_suffixes_are_reachable_before_login() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let extra: [(&str, IpAddr); 2] = [
        ("portal.partner.test", WEB.parse().unwrap()),
        ("www.garden.test", WEB.parse().unwrap()),
    ];
    let _dns = must(&lab, "dns", lab.start_dns_with(&extra));
    let web = must(&lab, "upstream", lab.start_upstream());
    let client = lab.client(1);
    // Each start gets a fresh state directory, so the client takes a new
    // lease from each lassi it meets.
    let start = |overrides: &str| {
        let lassi = must(&lab, "lassi", lab.start_lassi(overrides));
        must(&lab, "flush", client.flush_ipv4());
        must(&lab, "udhcpc", client.udhcpc());
        lassi
    };

    // 1. Not in the garden: the web server is out of reach before login.
    let lassi = start("");
    let r = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", &format!("http://{WEB}/closed")]),
    );
    assert!(!r.ok(), "reached the web before login: {r:?}");
    assert!(web.requests_to("/closed").is_empty());
    drop(lassi);

    // 2. A host name in the garden, resolved by lassi through lan.dns.
    let lassi = start("[portal]\nwalled_garden = [\"portal.partner.test\"]\n");
    let resolved = lassi_lab::netns::wait_until(std::time::Duration::from_secs(5), || {
        lassi
            .log()
            .contains("walled garden host resolved")
            .then_some(())
    });
    assert!(resolved.is_some(), "{}", lassi.log_tail(20));
    let r = must(
        &lab,
        "curl",
        client.curl(&[&format!("http://{WEB}/by-host")]),
    );
    assert!(r.ok(), "walled-garden host unreachable: {r:?}");
    assert_eq!(web.requests_to("/by-host").len(), 1);
    drop(lassi);

    // 3. A domain suffix: the address is learnt from the DNS answer the
    // client receives, and only then reachable.
    let lassi = start("[portal]\nwalled_garden = [\"*.garden.test\"]\n");
    let before = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", &format!("http://{WEB}/too-early")]),
    );
    assert!(!before.ok(), "reachable before the DNS answer: {before:?}");
    let r = must(
        &lab,
        "curl",
        client.curl(&["http://www.garden.test/by-suffix"]),
    );
    assert!(
        r.ok(),
        "walled-garden suffix unreachable: {r:?}\n{}",
        lassi.log_tail(20)
    );
    assert_eq!(web.requests_to("/by-suffix").len(), 1);
    let status: serde_json::Value =
        serde_json::from_str(&must(&lab, "status", lassi.ctl(&["status"])).stdout).unwrap();
    assert_eq!(status["walled_garden_learnt"], 1, "{status}");
    // 4. An address by itself.
    drop(lassi);
    let _lassi = start(&format!("[portal]\nwalled_garden = [\"{WEB}/32\"]\n"));
    let r = must(
        &lab,
        "curl",
        client.curl(&[&format!("http://{WEB}/by-address")]),
    );
    assert!(r.ok(), "walled-garden address unreachable: {r:?}");
}
