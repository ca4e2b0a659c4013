//! End-to-end tests of IPv6 forwarding behind the portal (issue 13, second
//! phase) with real peers in network namespaces: a dual-stack guest (IPv4
//! from udhcpc, a static IPv6 address in the prefix announced by the
//! kernel's duplicate address detection), curl and ping against the
//! upstream web server's IPv6 address, FreeRADIUS taking the accounting,
//! and an nft counter in the upstream namespace saying what arrived there.
//! They need root (CI runs them as root); each builds its own lab.

use std::time::{Duration, Instant};

use lassi_lab::gateway::{emit_toml, merge_toml};
use lassi_lab::netns::wait_until;
use lassi_lab::portal::{page_challenge, param};
use lassi_lab::radius::{self, DetailRecord, FreeRadius, FreeRadiusOptions};
use lassi_lab::upstream::{expected_bytes, UpstreamServer};
use lassi_lab::{must, CurlResult, Guest, Lab, LabOptions, LassiHandle};
use serde_json::Value;

const PORTAL: &str = "http://10.1.0.1:3990";
const WEB: &str = "198.51.100.10";
const WEB6: &str = "2001:db8:100::10";
/// The IPv6 DNS server lassi hands out (dnsmasq upstream, when started).
const DNS6: &str = "2001:db8:100::53";
/// lassi's link-local address: EUI-64 of the lab's LAN MAC 02:00:00:00:ff:01.
const LASSI_LL: &str = "fe80::ff:fe00:ff01";
/// Guest 1's IPv6 address (guest 2 spoofs it).
const ADDR1: &str = "2001:db8:1::a";
const ADDR2: &str = "2001:db8:1::b";

const USERS: &str = r#"
bob	Cleartext-Password := "hello"
"#;

const V6: &str = r#"
[lan.ipv6]
prefix = "2001:db8:1::/64"
dns = ["2001:db8:100::53"]
ra_interval = 10
"#;

/// Field order is drop order: lassi (its Stops still reach FreeRADIUS),
/// the upstream server, FreeRADIUS, then the lab.
struct World {
    lassi: LassiHandle,
    web: UpstreamServer,
    fr: FreeRadius,
    lab: Lab,
}

impl World {
    fn new(clients: usize, offloads: bool) -> World {
        World::with(clients, offloads, "")
    }

    /// Like [`World::new`], with `extra` TOML merged into lassi's config.
    fn with(clients: usize, offloads: bool, extra: &str) -> World {
        let lab = Lab::new(LabOptions {
            clients,
            ipv6: true,
            offloads,
            ..LabOptions::default()
        })
        .unwrap_or_else(|e| panic!("building the lab: {e}"));
        for c in lab.clients() {
            // A guest's kernel announces its addresses (DAD): lassi learns
            // them from that, never from the packets they send.
            must(
                &lab,
                "accept_ra",
                c.ns().sysctl("net.ipv6.conf.eth0.accept_ra", "0"),
            );
            must(
                &lab,
                "accept_dad",
                c.ns().sysctl("net.ipv6.conf.eth0.accept_dad", "1"),
            );
        }
        let fr = must(
            &lab,
            "freeradius",
            lab.start_freeradius(FreeRadiusOptions::lab(USERS)),
        );
        let web = must(&lab, "upstream", lab.start_upstream());
        let mut cfg: toml::Table = radius::lassi_toml().parse().expect("radius toml");
        merge_toml(&mut cfg, V6.parse().expect("v6 toml"));
        merge_toml(&mut cfg, extra.parse().expect("extra toml"));
        let lassi = must(&lab, "lassi", lab.start_lassi(&emit_toml(&cfg)));
        World {
            lassi,
            web,
            fr,
            lab,
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- detail ---\n{:#?}\n{}",
            self.fr.detail(),
            self.lab.logs_report(40)
        )
    }

    fn session(&self, client: &Guest) -> Value {
        let v = must(&self.lab, "lassi sessions", self.lassi.sessions_json());
        v.as_array()
            .and_then(|a| a.iter().find(|c| c["mac"] == client.mac().to_string()))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Logs in over IPv4 on lassi's own pages; returns the session id.
    fn login(&self, client: &Guest) -> String {
        let page = must(&self.lab, "splash", client.curl(&[format!("{PORTAL}/")]));
        let chal = page_challenge(&page.text());
        let r = must(
            &self.lab,
            "login",
            client.curl(&[
                "-d",
                "username=bob",
                "-d",
                "password=hello",
                "-d",
                &format!("challenge={chal}"),
                &format!("{PORTAL}/login"),
            ]),
        );
        let s = self.session(client);
        if r.http_code != 302 || s["state"] != "authorized" {
            self.fail(&format!("login: {r:?}"));
        }
        s["session_id"].as_str().unwrap_or_default().to_string()
    }

    fn status(&self) -> Value {
        let out = must(&self.lab, "lassi status", self.lassi.ctl(&["status"]));
        serde_json::from_str(&out.stdout).expect("status is JSON")
    }

    fn drops(&self, reason: &str) -> u64 {
        self.status()["drops"][reason].as_u64().unwrap_or(0)
    }

    /// Packets from the LAN prefix that reached the upstream namespace.
    fn upstream_v6_packets(&self) -> u64 {
        let out = must(
            &self.lab,
            "nft list",
            self.lab
                .upstream()
                .run(&["nft", "-j", "list", "table", "inet", "lassitest"]),
        );
        let v: Value = serde_json::from_str(&out.stdout).expect("nft JSON");
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["rule"]["expr"].as_array())
            .flatten()
            .filter_map(|e| e["counter"]["packets"].as_u64())
            .sum()
    }
}

/// An nft counter in the upstream namespace for IPv6 from the LAN prefix.
fn count_upstream(lab: &Lab) {
    let rules = "table inet lassitest {\n chain c {\n  type filter hook prerouting priority -400;\n  ip6 saddr 2001:db8:1::/64 counter\n }\n}\n";
    let file = lab.path("upstream.nft");
    std::fs::write(&file, rules).unwrap();
    must(
        lab,
        "nft -f",
        lab.upstream()
            .run(&["nft", "-f", &file.display().to_string()]),
    );
}

/// A static address in the prefix (announced by DAD) and a default route
/// via lassi's link-local address.
fn address(lab: &Lab, client: &Guest, addr: &str, dad: bool) {
    let a = format!("{addr}/64");
    let mut args = vec!["ip", "-6", "addr", "add", a.as_str(), "dev", "eth0"];
    if !dad {
        args.push("nodad");
    }
    must(
        lab,
        "ip addr",
        client.ns().run(&args).and_then(|o| o.check()),
    );
    must(
        lab,
        "ip route",
        client
            .ns()
            .run(&[
                "ip", "-6", "route", "replace", "default", "via", LASSI_LL, "dev", "eth0",
            ])
            .and_then(|o| o.check()),
    );
    // Until DAD is done the kernel does not use the address.
    let done = wait_until(Duration::from_secs(5), || {
        let out = client
            .ns()
            .run(&["ip", "-6", "-o", "addr", "show", "dev", "eth0"])
            .ok()?;
        (out.stdout.contains(addr) && !out.stdout.contains("tentative")).then_some(())
    });
    assert!(done.is_some(), "{addr} stayed tentative");
}

fn curl6(w: &World, client: &Guest, args: &[&str]) -> CurlResult {
    let mut a = vec!["-6", "--connect-timeout", "3", "--max-time", "20"];
    a.extend_from_slice(args);
    must(&w.lab, "curl -6", client.curl(&a))
}

fn location(r: &CurlResult) -> String {
    r.headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// IP-layer bytes the client's `eth0` sent and received (kernel counters,
/// Ethernet header taken off).
fn ip_bytes(client: &Guest) -> (u64, u64) {
    let read = |name: &str| -> u64 {
        let out = client
            .ns()
            .run(&["cat", &format!("/sys/class/net/eth0/statistics/{name}")])
            .expect("interface statistics");
        out.stdout.trim().parse().expect("a number")
    };
    (
        read("tx_bytes") - 14 * read("tx_packets"),
        read("rx_bytes") - 14 * read("rx_packets"),
    )
}

/// Before login: HTTP over IPv6 is redirected, HTTPS reset, ping gets
/// nothing, and nothing reaches the upstream.
fn held_before_login(w: &World, c: &Guest) {
    let r = curl6(w, c, &[&format!("http://[{WEB6}]/some/page")]);
    let loc = location(&r);
    assert_eq!(r.http_code, 302, "{r:?}\n{}", w.lassi.log_tail(30));
    assert_eq!(param(&loc, "res"), "notyet", "{loc}");
    assert_eq!(param(&loc, "uamip"), "10.1.0.1", "{loc}");
    assert_eq!(param(&loc, "mac"), "02-00-00-00-00-01", "{loc}");
    assert!(param(&loc, "ip").starts_with("10.1.0."), "{loc}");
    assert_eq!(
        param(&loc, "userurl"),
        format!("http://[{WEB6}]/some/page"),
        "{loc}"
    );
    let started = Instant::now();
    let r = curl6(w, c, &[&format!("https://[{WEB6}]/")]);
    let took = started.elapsed();
    assert_ne!(r.exit_code, 0, "{r:?}");
    assert!(took < Duration::from_secs(1), "HTTPS took {took:?}: {r:?}");
    let ping = c
        .ns()
        .run(&["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", WEB6])
        .expect("ping runs");
    assert_ne!(ping.code(), 0, "ping got through: {}", ping.stdout);
    assert!(
        !ping.stdout.contains("bytes from 2001:db8:100::10"),
        "{}",
        ping.stdout
    );
    assert_eq!(
        w.upstream_v6_packets(),
        0,
        "the upstream saw IPv6 from the LAN"
    );
    assert!(w.web.requests().is_empty(), "{:?}", w.web.requests());
}

/// An IPv6 network added to the walled garden live opens before login,
/// and closes again when removed.
fn garden_opens_ipv6(w: &World, c: &Guest) {
    let net = "2001:db8:100::/48";
    must(&w.lab, "garden add", w.lassi.ctl(&["garden", "add", net]));
    let r = curl6(w, c, &[&format!("http://[{WEB6}]/garden")]);
    assert_eq!(r.http_code, 200, "{r:?}");
    assert_eq!(w.web.requests_to("/garden").len(), 1);
    let list = must(&w.lab, "garden list", w.lassi.ctl(&["garden", "list"]));
    assert!(list.stdout.contains(net), "{}", list.stdout);
    must(
        &w.lab,
        "garden remove",
        w.lassi.ctl(&["garden", "remove", net]),
    );
    let r = curl6(w, c, &[&format!("http://[{WEB6}]/closed")]);
    assert_eq!(r.http_code, 302, "{r:?}");
    assert!(w.web.requests_to("/closed").is_empty());
}

#[test]
fn ipv6_is_held_before_login_forwarded_and_accounted_after_and_never_spoofed() {
    let w = World::new(2, false);
    let lab = &w.lab;
    assert!(
        lab.clients()[0].ns().run(&["ping", "-V"]).is_ok(),
        "ping is installed"
    );
    count_upstream(lab);
    let (c1, c2) = (lab.client(1), lab.client(2));
    for c in [c1, c2] {
        must(lab, "udhcpc", c.udhcpc());
    }
    address(lab, c1, ADDR1, true);
    address(lab, c2, ADDR2, true);
    held_before_login(&w, c1);
    garden_opens_ipv6(&w, c1);

    let sid = w.login(c1);
    let before = ip_bytes(c1);
    // Over IPv6: a file with its checksum; over IPv4 another.
    let n6 = 8_000_000usize;
    let r = curl6(&w, c1, &[&format!("http://[{WEB6}]/bytes/{n6}")]);
    assert!(
        r.ok() && r.body == expected_bytes(n6),
        "IPv6 download: {} bytes, {r:?}",
        r.body.len()
    );
    assert!(w.upstream_v6_packets() > 0);
    let r = must(
        lab,
        "curl -4",
        c1.curl(&[format!("http://{WEB}/bytes/4000000")]),
    );
    assert!(r.ok() && r.body.len() == 4_000_000, "{r:?}");

    // Guest 2, logged in too, sends as guest 1: nothing gets through and
    // nobody's counters move.
    w.login(c2);
    let seen = w.upstream_v6_packets();
    let counters = |c: &Guest| w.session(c)["counters"].clone();
    let (k1, k2) = (counters(c1), counters(c2));
    must(
        lab,
        "ip addr del",
        c2.ns().run(&[
            "ip",
            "-6",
            "addr",
            "del",
            &format!("{ADDR2}/64"),
            "dev",
            "eth0",
        ]),
    );
    address(lab, c2, ADDR1, false);
    let r = curl6(&w, c2, &[&format!("http://[{WEB6}]/spoofed")]);
    assert_ne!(r.http_code, 200, "{r:?}");
    assert_eq!(
        w.upstream_v6_packets(),
        seen,
        "a spoofed packet reached the upstream"
    );
    assert!(w.web.requests_to("/spoofed").is_empty());
    assert!(w.drops("ipv6_spoofed") > 0, "{}", w.lassi.log_tail(20));
    assert_eq!((counters(c1), counters(c2)), (k1, k2));

    let after = ip_bytes(c1);
    let r = must(
        lab,
        "logout",
        c1.curl(&["-X", "POST", &format!("{PORTAL}/logout")]),
    );
    assert!(r.http_code == 200 || r.http_code == 302, "{r:?}");
    let stop =
        w.fr.wait_for_record(Duration::from_secs(10), |r| {
            r.session_id() == Some(sid.as_str()) && r.status() == "Stop"
        })
        .unwrap_or_else(|| w.fail("no Stop"));
    check_stop(&stop, before, after);
}

fn check_stop(stop: &DetailRecord, before: (u64, u64), after: (u64, u64)) {
    let (kin, kout) = (after.0 - before.0, after.1 - before.1);
    let (ain, aout) = (stop.input_octets(), stop.output_octets());
    println!(
        "Stop in/out {ain}/{aout} vs client kernel IP bytes {kin}/{kout} ({:+.3} % / {:+.3} %)",
        100.0 * (ain as f64 / kin as f64 - 1.0),
        100.0 * (aout as f64 / kout as f64 - 1.0),
    );
    assert!(
        kout > 12_000_000,
        "both downloads counted by the kernel: {kout}"
    );
    assert!(
        (0.99..1.01).contains(&(aout as f64 / kout as f64)),
        "{aout} vs {kout}"
    );
    assert!(
        (0.99..1.01).contains(&(ain as f64 / kin as f64)),
        "{ain} vs {kin}"
    );
    let v6 = stop.all("Framed-IPv6-Address");
    assert_eq!(v6, vec![ADDR1], "{stop:?}");
}

/// With veth offloads on, IPv6 TCP crosses lassi as GSO super-packets both
/// ways (TSO6 to the TUN device and back), intact, and is counted per
/// segment: what RADIUS gets is the bytes moved plus their TCP/IP headers.
#[test]
fn ipv6_with_offloads_on_crosses_as_gso_super_packets_and_is_counted() {
    let w = World::new(1, true);
    let lab = &w.lab;
    let c = lab.client(1);
    must(lab, "udhcpc", c.udhcpc());
    address(lab, c, ADDR1, true);
    let sid = w.login(c);
    let octets = |k: &str| w.session(c)["counters"][k].as_u64().unwrap_or(0);
    let n = 20_000_000usize;
    let out0 = octets("octets_out");
    let r = curl6(&w, c, &[&format!("http://[{WEB6}]/bytes/{n}")]);
    assert!(
        r.ok() && r.body == expected_bytes(n),
        "IPv6 download: {} bytes, {r:?}",
        r.body.len()
    );
    let down = octets("octets_out") - out0;
    let in0 = octets("octets_in");
    let v = must(lab, "iperf3 -6", lab.iperf(c, WEB6, &["-t", "3"]));
    let up = v["end"]["sum_received"]["bytes"]
        .as_u64()
        .expect("iperf3 bytes");
    assert!(up > 1_000_000, "{v}");
    let upc = octets("octets_in") - in0;
    let io = &w.status()["io"];
    let gso = io["lan_rx_gso"].as_u64().unwrap_or(0) + io["tun_rx_gso"].as_u64().unwrap_or(0);
    assert!(gso > 0, "no GSO super-packet crossed lassi: {io}");
    let r = must(
        lab,
        "logout",
        c.curl(&["-X", "POST", &format!("{PORTAL}/logout")]),
    );
    assert!(r.http_code == 200 || r.http_code == 302, "{r:?}");
    let stop =
        w.fr.wait_for_record(Duration::from_secs(10), |r| {
            r.session_id() == Some(sid.as_str()) && r.status() == "Stop"
        })
        .unwrap_or_else(|| w.fail("no Stop"));
    let (ain, aout) = (stop.input_octets(), stop.output_octets());
    println!("offloads on: {n} B down counted {down}, {up} B up counted {upc}; Stop in/out {ain}/{aout}; {gso} GSO packets");
    // IP-layer octets: the payload plus TCP/IPv6 headers of every segment
    // (72 bytes with timestamps per 1428 of payload: about 5 %).
    assert!(
        (1.0..1.08).contains(&(down as f64 / n as f64)),
        "{down} vs {n}"
    );
    assert!(
        (1.0..1.08).contains(&(upc as f64 / up as f64)),
        "{upc} vs {up}"
    );
    assert!(
        ain >= upc && aout >= down,
        "the Stop counts what the session did"
    );
}

/// An unauthorized guest whose only resolver is the IPv6 DNS server lassi
/// hands out (dnsmasq upstream on 2001:db8:100::53) looks up a
/// `*.garden.test` name over IPv6: lassi tracks the query like one over
/// IPv4, and the matching AAAA answer opens that host over IPv6 before
/// login — the guest gets the upstream server's body, not the redirect.
/// Forged answers nobody asked for, sent over IPv6 from the server's
/// address and port, open nothing and are counted.
#[test]
fn dns_over_ipv6_teaches_the_walled_garden_before_login() {
    let w = World::with(1, false, "[portal]\nwalled_garden = [\"*.garden.test\"]\n");
    let lab = &w.lab;
    let web6: std::net::IpAddr = WEB6.parse().unwrap();
    let dns = must(lab, "dns", lab.start_dns_with(&[("www.garden.test", web6)]));
    // Every command of this lab now resolves through the IPv6 server only.
    std::fs::write(lab.resolv_conf(), format!("nameserver {DNS6}\n")).unwrap();
    count_upstream(lab);
    let c = lab.client(1);
    must(lab, "udhcpc", c.udhcpc());
    address(lab, c, ADDR1, true);
    // By address it is closed: the garden holds a name, not this address.
    let r = curl6(&w, c, &[&format!("http://[{WEB6}]/before")]);
    assert_eq!(r.http_code, 302, "{r:?}");
    assert!(w.web.requests_to("/before").is_empty());
    // Forged answers from the DNS server's IPv6 address and port that
    // nobody asked for (an accomplice outside) teach nothing, and are
    // counted.
    forge_answers6(lab, &[33333, 53000]);
    let counted = wait_until(Duration::from_secs(5), || {
        (w.status()["dns_unmatched_answers"].as_u64() >= Some(2)).then_some(())
    });
    assert!(counted.is_some(), "{}", w.status());
    assert_eq!(w.status()["walled_garden_learnt"].as_u64(), Some(0));
    let r = curl6(&w, c, &[&format!("http://[{EVIL6}]/evil")]);
    assert_eq!(r.http_code, 302, "the forged answer opened {EVIL6}: {r:?}");
    let n = 300_000usize;
    let r = curl6(&w, c, &[&format!("http://www.garden.test/bytes/{n}")]);
    assert!(
        r.http_code == 200 && r.body == expected_bytes(n),
        "{} bytes, {r:?}\n--- dnsmasq ---\n{}\n{}",
        r.body.len(),
        dns.log(),
        w.lassi.log_tail(30)
    );
    assert_eq!(w.web.requests_to(&format!("/bytes/{n}")).len(), 1);
    // The query went over IPv6 from the guest's address, with lassi's own
    // source port (dnsmasq logs the client address, not the port).
    let log = dns.log();
    assert!(
        log.contains(&format!("query[AAAA] www.garden.test from {ADDR1}")),
        "{log}"
    );
    let st = w.status();
    assert!(st["walled_garden_learnt"].as_u64() >= Some(1), "{st}");
    assert_eq!(st["dns_unmatched_answers"].as_u64(), Some(2), "{st}");
    assert_ne!(w.session(c)["state"], "authorized");
    let list = must(&w.lab, "garden list", w.lassi.ctl(&["garden", "list"]));
    assert!(list.stdout.contains(WEB6), "{}", list.stdout);
    assert!(!list.stdout.contains(EVIL6), "{}", list.stdout);
    // The learnt address is open by address too now.
    let r = curl6(&w, c, &[&format!("http://[{WEB6}]/after")]);
    assert_eq!(r.http_code, 200, "{r:?}");
    assert_eq!(w.web.requests_to("/after").len(), 1);
}

/// An address nothing listens on, which forged answers claim.
const EVIL6: &str = "2001:db8:100::66";

/// scapy in the upstream namespace sends, from the IPv6 DNS server's
/// address and port 53, AAAA answers for www.garden.test claiming
/// [`EVIL6`] (TTL one day) to the guest's address at each of `ports`.
fn forge_answers6(lab: &Lab, ports: &[u16]) {
    let script = format!(
        "from scapy.all import *\nconf.verb=0\n\
         for port in {ports:?}:\n    \
         a=DNS(id=4242,qr=1,aa=1,qd=DNSQR(qname='www.garden.test',qtype='AAAA'),\
         an=DNSRR(rrname='www.garden.test',type='AAAA',ttl=86400,rdata='{EVIL6}'))\n    \
         send(IPv6(src='{DNS6}',dst='{ADDR1}')/UDP(sport=53,dport=port)/a)\n"
    );
    let out = must(
        lab,
        "scapy forge",
        lab.upstream().run(&["/usr/bin/python3", "-c", &script]),
    );
    assert!(out.success(), "{out:?}");
}
