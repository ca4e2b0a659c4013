//! The attacks of issue 8, findings 1, 6, 7 and 8, replayed against a real
//! lassi in the lab: forged DNS answers that would widen the walled garden,
//! a tunnel through `portal.any_dns`, and 802.1Q-tagged frames. The forged
//! and tagged packets come from scapy; the verdicts come from what the
//! peers saw (the upstream web server's request log, an echo server's
//! count, nft counters in the upstream and gateway namespaces). Root only.

use std::net::Ipv4Addr;
use std::time::Duration;

use lassi_lab::{must, ExecOptions, Lab, LabOptions, LassiHandle, Proc, UpstreamServer};
use serde_json::Value;

const WEB: &str = "198.51.100.10";
const DNS: &str = "198.51.100.53";
/// scapy lives in Debian's python, whatever `python3` is first on PATH.
const PYTHON: &str = "/usr/bin/python3";

fn status(lab: &Lab, lassi: &LassiHandle) -> Value {
    let out = must(lab, "status", lassi.ctl(&["status"]));
    serde_json::from_str(&out.stdout).expect("status is JSON")
}

fn python(lab: &Lab, ns: &lassi_lab::Netns, what: &str, script: &str) -> String {
    let out = must(lab, what, ns.run(&[PYTHON, "-c", script]));
    assert!(out.success(), "{what}: {out:?}");
    out.stdout
}

/// `python3 -c` with `script_and_args` started in `ns` as `name` (its log
/// `<name>.log` in the lab's directory), once that log says `word`.
fn python_until(
    lab: &Lab,
    ns: &lassi_lab::Netns,
    name: &str,
    script_and_args: &[&str],
    word: &str,
) -> Proc {
    let mut argv = vec![PYTHON, "-c"];
    argv.extend_from_slice(script_and_args);
    let log = lab.dir().join(format!("{name}.log"));
    let p = must(
        lab,
        name,
        ns.spawn(name, &argv, &log, &ExecOptions::default()),
    );
    let ready = lassi_lab::netns::wait_until(Duration::from_secs(10), || {
        p.log().contains(word).then_some(())
    });
    assert!(ready.is_some(), "{name}: {}", p.log());
    p
}

/// An extra "internet" address on the upstream namespace's loopback.
fn add_upstream_address(lab: &Lab, ip: &str) {
    must(
        lab,
        "address",
        lab.upstream()
            .ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"]),
    );
}

/// The attacker's web server, on 198.51.100.66:80 upstream.
fn evil_web(lab: &Lab) -> UpstreamServer {
    add_upstream_address(lab, "198.51.100.66");
    must(
        lab,
        "evil web",
        UpstreamServer::start(
            lab.upstream().name(),
            &["198.51.100.66:80".parse().unwrap()],
        ),
    )
}

/// A forged DNS answer from the DNS server's address and port 53, sent from
/// the upstream namespace to `client:port`.
fn forge_answer(lab: &Lab, client: Ipv4Addr, port: u16, id: u16, records: &str) {
    let script = format!(
        "from scapy.all import *\nconf.verb=0\n\
         a=DNS(id={id},qr=1,aa=1,qd=DNSQR(qname='x.garden.test'),an={records})\n\
         send(IP(src='{DNS}',dst='{client}')/UDP(sport=53,dport={port})/a)\n"
    );
    python(lab, lab.upstream(), "scapy forge", &script);
}

#[test]
fn a_forged_unsolicited_answer_opens_nothing_a_real_lookup_still_does() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let _dns = must(
        &lab,
        "dns",
        lab.start_dns_with(&[("www.garden.test", WEB.parse().unwrap())]),
    );
    let web = must(&lab, "upstream", lab.start_upstream());
    let lassi = must(
        &lab,
        "lassi",
        lab.start_lassi("[portal]\nwalled_garden = [\"*.garden.test\"]\n"),
    );
    let client = lab.client(1);
    let lease = must(&lab, "udhcpc", client.udhcpc());

    // Finding 1: nobody asked, yet "x.wg.test" comes back with an A record
    // of another name, TTL 86400, from the DNS server's address and port.
    for port in [33333, 53000] {
        forge_answer(
            &lab,
            lease.ip,
            port,
            4242,
            &format!("DNSRR(rrname='evil.attacker.test',type='A',ttl=86400,rdata='{WEB}')"),
        );
    }
    // Until lassi has seen both (or, were it still vulnerable, learnt).
    lassi_lab::netns::wait_until(Duration::from_secs(5), || {
        let s = status(&lab, &lassi);
        (s["dns_unmatched_answers"].as_u64() >= Some(2)
            || s["walled_garden_learnt"].as_u64() > Some(0))
        .then_some(())
    });
    let s = status(&lab, &lassi);
    let learnt = s["walled_garden_learnt"].as_u64().unwrap();
    let r = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", &format!("http://{WEB}/evil")]),
    );
    let reached = web.requests_to("/evil").len();
    println!("forged answers: walled_garden_learnt = {learnt}, upstream requests = {reached}");
    assert_eq!(learnt, 0, "{s}");
    assert!(!r.ok() && reached == 0, "forged answer opened {WEB}: {r:?}");
    assert!(
        s["dns_unmatched_answers"].as_u64() >= Some(2),
        "the forged answers never reached lassi: {s}"
    );

    // The real lookup of a garden name, by curl itself, still opens it.
    let r = must(&lab, "curl", client.curl(&["http://www.garden.test/legit"]));
    assert!(
        r.ok(),
        "garden name unreachable: {r:?}\n{}",
        lassi.log_tail(20)
    );
    assert_eq!(web.requests_to("/legit").len(), 1);
    assert_eq!(status(&lab, &lassi)["walled_garden_learnt"], 1);
}

/// A Python DNS server on 198.51.100.53:53 (it says "ready", serves 40 s):
/// `body` handles each query `q` (a scapy `DNS`) from `peer` on socket `s`.
macro_rules! dns_server {
    ($body:literal) => {
        concat!(
            r#"
import os, socket, sys, time
from scapy.all import DNS, DNSQR, DNSRR
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.53", 53))
s.settimeout(0.5)
print("ready", flush=True)
end = time.time() + 40
while time.time() < end:
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        continue
    q = DNS(data)
"#,
            $body
        )
    };
}

/// A DNS server (Python, in the upstream namespace on 198.51.100.53) whose
/// answers to `www.garden.test` carry an extra A record of another name, as
/// an on-path attacker who sees the query (port, id) would send.
const LYING_DNS: &str = dns_server!(
    r#"    name = q.qd.qname.decode().rstrip(".")
    an = None
    if q.qd.qtype == 1 and name == "www.garden.test":
        an = DNSRR(rrname="evil.attacker.test", type="A", ttl=86400, rdata="198.51.100.66") / \
             DNSRR(rrname="www.garden.test", type="A", ttl=300, rdata="198.51.100.10")
    r = DNS(id=q.id, qr=1, aa=1, rd=q.rd, ra=1, qd=q.qd, an=an, ancount=2 if an else 0)
    s.sendto(bytes(r), peer)
    print("answered", name, q.qd.qtype, peer, flush=True)
"#
);

#[test]
fn a_matching_answer_teaches_only_the_records_of_its_question() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let web = must(&lab, "upstream", lab.start_upstream());
    let evil = evil_web(&lab);
    let mut liar = python_until(&lab, lab.upstream(), "lying-dns", &[LYING_DNS], "ready");
    let lassi = must(
        &lab,
        "lassi",
        lab.start_lassi("[portal]\nwalled_garden = [\"*.garden.test\"]\n"),
    );
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());

    // The client's own lookup: the answer matches its query exactly.
    let r = must(&lab, "curl", client.curl(&["http://www.garden.test/good"]));
    assert!(r.ok(), "garden name unreachable: {r:?}\n{}", liar.log());
    assert_eq!(web.requests_to("/good").len(), 1);
    let r = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", "http://198.51.100.66/evil"]),
    );
    let learnt = status(&lab, &lassi)["walled_garden_learnt"].clone();
    println!(
        "matched answer with a foreign record: learnt = {learnt}, evil host requests = {}",
        evil.requests().len()
    );
    assert!(!r.ok(), "the foreign record opened its address: {r:?}");
    assert!(evil.requests().is_empty(), "{:?}", evil.requests());
    assert_eq!(learnt, 1, "only www.garden.test's address");
    assert!(
        liar.log().contains("answered www.garden.test 1"),
        "{}",
        liar.log()
    );
    liar.stop();
}

/// A slow resolver on 198.51.100.53 (as a recursive lookup may be): it
/// answers every A question with the upstream web address, but only once
/// the file named by its argument exists (the forged answer is out), so
/// the forgery always wins the race.
const SLOW_DNS: &str = dns_server!(
    r#"    wait = time.time() + 20
    while not os.path.exists(sys.argv[1]) and time.time() < wait:
        time.sleep(0.05)
    an = DNSRR(rrname=q.qd.qname, type="A", ttl=300, rdata="198.51.100.10") if q.qd.qtype == 1 else None
    s.sendto(bytes(DNS(id=q.id, qr=1, rd=q.rd, ra=1, qd=q.qd, an=an)), peer)
    print("answered", q.qd.qname.decode(), flush=True)
"#
);

/// The guest's side of the accomplice attack: one query from a port and id
/// it chose (and told its accomplice), then every answer it gets in 3 s.
const GUEST_QUERY: &str = r#"
import socket, time
from scapy.all import DNS, DNSQR
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5555))
s.settimeout(0.2)
s.sendto(bytes(DNS(id=0x1234, rd=1, qd=DNSQR(qname="x.garden.test"))), ("198.51.100.53", 53))
print("sent", flush=True)
end = time.time() + 30
heard = 0
while time.time() < end and heard < 2:
    try:
        r = DNS(s.recv(2048))
        heard += 1
        print("answer id", r.id, "address", r.an.rdata if r.an else None, flush=True)
    except socket.timeout:
        pass
"#;

#[test]
fn an_accomplice_cannot_forge_the_answer_to_the_guests_own_query() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let web = must(&lab, "upstream", lab.start_upstream());
    let evil = evil_web(&lab);
    let go = lab.dir().join("forged-answer-sent");
    let go_path = go.display().to_string();
    let _slow = python_until(
        &lab,
        lab.upstream(),
        "slow-dns",
        &[SLOW_DNS, &go_path],
        "ready",
    );
    let lassi = must(
        &lab,
        "lassi",
        lab.start_lassi("[portal]\nwalled_garden = [\"*.garden.test\"]\n"),
    );
    let client = lab.client(1);
    let lease = must(&lab, "udhcpc", client.udhcpc());

    // The guest asks from port 5555 with id 0x1234; its accomplice outside
    // answers at once with exactly those, the question, and its own host.
    let mut guest = python_until(&lab, client.ns(), "guest-query", &[GUEST_QUERY], "sent");
    let forged = "DNSRR(rrname='x.garden.test',type='A',ttl=86400,rdata='198.51.100.66')";
    let script = format!(
        "from scapy.all import *\nconf.verb=0\n\
         a=DNS(id=0x1234,qr=1,aa=1,rd=1,ra=1,qd=DNSQR(qname='x.garden.test'),an={forged})\n\
         send(IP(src='{DNS}',dst='{}')/UDP(sport=53,dport=5555)/a)\n",
        lease.ip
    );
    python(&lab, lab.upstream(), "scapy accomplice", &script);
    std::fs::write(&go, "").unwrap();
    guest.wait_timeout(Duration::from_secs(40));
    let heard = guest.log();

    let r = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", "http://198.51.100.66/evil"]),
    );
    let s = status(&lab, &lassi);
    println!(
        "accomplice: guest heard [{}]; walled_garden_learnt = {}, evil host requests = {}",
        heard.trim().replace('\n', "; "),
        s["walled_garden_learnt"],
        evil.requests().len()
    );
    assert!(!r.ok(), "the accomplice's answer opened its host: {r:?}");
    assert!(evil.requests().is_empty(), "{:?}", evil.requests());
    // The forged answer did arrive (delivered, unmatched), and the real one
    // came back with the guest's own id and taught the real address.
    let forged_at = heard.find("answer id 4660 address 198.51.100.66");
    let real_at = heard.find("answer id 4660 address 198.51.100.10");
    assert!(
        forged_at.is_some() && real_at.is_some() && forged_at < real_at,
        "the forgery must arrive first, then the real answer: {heard}"
    );
    assert_eq!(s["walled_garden_learnt"], 1, "{s}");
    let r = must(&lab, "curl", client.curl(&["http://198.51.100.10/real"]));
    assert!(r.ok(), "{r:?}");
    assert_eq!(web.requests_to("/real").len(), 1);
}

/// A UDP echo on 198.51.100.99:53 (finding 6's tunnel endpoint), counting
/// what it receives; it stops by itself.
const ECHO: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.99", 53))
s.settimeout(0.5)
print("ready", flush=True)
n = 0
end = time.time() + 40
while time.time() < end:
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        continue
    n += 1
    s.sendto(data, peer)
    print("received", n, flush=True)
"#;

/// 50 non-DNS datagrams to the echo, then one real query to the second DNS
/// server; prints how many echoes came back and the answer's address.
const TUNNEL_CLIENT: &str = r#"
import socket
from scapy.all import DNS, DNSQR
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.1)
echoed = 0
for i in range(50):
    s.sendto(b"VPN-PAYLOAD-%03d not a dns message at all" % i, ("198.51.100.99", 53))
    try:
        s.recv(2048)
        echoed += 1
    except OSError:
        pass
print("echoed", echoed)
q = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q.settimeout(2)
q.sendto(bytes(DNS(id=4711, rd=1, qd=DNSQR(qname="example.test"))), ("198.51.100.54", 53))
try:
    r = DNS(q.recv(2048))
    print("answer", r.an.rdata if r.an else "none")
except OSError as e:
    print("answer error", e)
"#;

#[test]
fn any_dns_carries_dns_but_no_tunnel() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let _dns = must(&lab, "dns", lab.start_dns());
    add_upstream_address(&lab, "198.51.100.99");
    add_upstream_address(&lab, "198.51.100.54");
    // A second, real DNS server that lan.dns does not name.
    let other_dns = must(
        &lab,
        "second dnsmasq",
        lab.upstream().spawn(
            "dnsmasq-other",
            &[
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--log-facility=-",
                "--log-queries",
                "--listen-address=198.51.100.54",
                "--pid-file=",
                &format!("--address=/example.test/{WEB}"),
            ],
            &lab.dir().join("dnsmasq-other.log"),
            &ExecOptions::default(),
        ),
    );
    let log = lab.dir().join("echo.log");
    let echo = must(
        &lab,
        "echo",
        lab.upstream().spawn(
            "udp-echo",
            &[PYTHON, "-c", ECHO],
            &log,
            &ExecOptions::default(),
        ),
    );
    let ready = lassi_lab::netns::wait_until(Duration::from_secs(10), || {
        (echo.log().contains("ready") && other_dns.log().contains("started, version")).then_some(())
    });
    assert!(ready.is_some(), "{}\n{}", echo.log(), other_dns.log());
    let lassi = must(&lab, "lassi", lab.start_lassi("[portal]\nany_dns = true\n"));
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());

    let out = python(&lab, client.ns(), "tunnel client", TUNNEL_CLIENT);
    let received = echo.log().matches("received").count();
    let s = status(&lab, &lassi);
    println!(
        "any_dns: {} ; echo server received {received} of 50; drops dns_not_query = {}",
        out.trim().replace('\n', ", "),
        s["drops"]["dns_not_query"]
    );
    assert!(out.contains("echoed 0\n"), "{out}");
    assert_eq!(received, 0, "{}", echo.log());
    assert!(s["drops"]["dns_not_query"].as_u64() >= Some(50), "{s}");
    assert!(
        out.contains(&format!("answer {WEB}")),
        "real DNS failed: {out}"
    );
    assert!(other_dns.log().contains("query[A] example.test"));
}

/// Sends `count` UDP datagrams from the client to `dst:port` as raw frames
/// to the gateway's MAC, with an 802.1Q tag of `vlan` (none when `None`).
fn send_frames(lab: &Lab, gw_mac: &str, src: Ipv4Addr, dst: &str, port: u16, vlan: Option<u16>) {
    let tag = vlan.map_or(String::new(), |v| format!("Dot1Q(vlan={v})/"));
    let script = format!(
        "from scapy.all import *\nconf.verb=0\n\
         sendp(Ether(dst='{gw_mac}')/{tag}IP(src='{src}',dst='{dst}')/UDP(sport=4000,dport={port})/b'tagged?',\
         iface='eth0',count=20,inter=0.005)\n"
    );
    python(lab, lab.client(1).ns(), "scapy sendp", &script);
}

/// The packet count of the named nft counter in namespace `ns`.
fn nft_counter(lab: &Lab, ns: &lassi_lab::Netns, table: &str, name: &str) -> u64 {
    let out = must(
        lab,
        "nft",
        ns.run(&["nft", "-j", "list", "counter", "inet", table, name]),
    );
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|e| e["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("no counter in {v}"))
}

/// A UDP sink on the upstream web address, port 7777: counts datagrams (at
/// the socket, so a GRO-coalesced burst counts each datagram); it stops by
/// itself.
const SINK: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.10", 7777))
s.settimeout(0.5)
print("ready", flush=True)
n = 0
end = time.time() + 60
while time.time() < end:
    try:
        s.recv(2048)
    except socket.timeout:
        continue
    n += 1
    print("got", n, flush=True)
"#;

fn sink_count(sink: &lassi_lab::Proc) -> usize {
    sink.log().matches("got").count()
}

#[test]
fn vlan_tagged_frames_reach_neither_upstream_nor_the_gateway_stack() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    // What upstream receives, and a counter in the gateway's prerouting
    // ahead of lassi's own tables (the kernel's stack on the gateway).
    let sink = must(
        &lab,
        "sink",
        lab.upstream().spawn(
            "udp-sink",
            &[PYTHON, "-c", SINK],
            &lab.dir().join("sink.log"),
            &ExecOptions::default(),
        ),
    );
    let gw_rules = "table inet probe {\n counter seen {}\n \
        chain pre { type filter hook prerouting priority -450; iifname \"lan0\" udp dport 7778 counter name seen; }\n}\n";
    let path = lab.dir().join("gw-probe.nft");
    std::fs::write(&path, gw_rules).unwrap();
    let out = must(
        &lab,
        "nft",
        lab.gw().run(&["nft", "-f", &path.display().to_string()]),
    );
    assert!(out.success(), "{out:?}");
    let ready = lassi_lab::netns::wait_until(Duration::from_secs(10), || {
        sink.log().contains("ready").then_some(())
    });
    assert!(ready.is_some(), "{}", sink.log());
    let lassi = must(&lab, "lassi", lab.start_lassi(""));
    let client = lab.client(1);
    let lease = must(&lab, "udhcpc", client.udhcpc());
    must(&lab, "authorize", lassi.authorize(client.mac()));
    let gw_mac = must(
        &lab,
        "gw mac",
        lab.gw().run(&["cat", "/sys/class/net/lan0/address"]),
    )
    .stdout
    .trim()
    .to_string();
    let gw_ip = "10.1.0.1";

    // Tagged first (VLAN 5 and VLAN 0), to upstream and to the gateway.
    for vlan in [5, 0] {
        send_frames(&lab, &gw_mac, lease.ip, WEB, 7777, Some(vlan));
        send_frames(&lab, &gw_mac, lease.ip, gw_ip, 7778, Some(vlan));
    }
    std::thread::sleep(Duration::from_millis(500));
    let upstream_tagged = sink_count(&sink);
    let gw_tagged = nft_counter(&lab, lab.gw(), "probe", "seen");
    let s = status(&lab, &lassi);
    let dropped = s["drops"]["vlan_tagged"].as_u64().unwrap_or(0);
    // The same packets untagged do reach upstream: the probe can see them.
    send_frames(&lab, &gw_mac, lease.ip, WEB, 7777, None);
    lassi_lab::netns::wait_until(Duration::from_secs(5), || {
        (sink_count(&sink) >= upstream_tagged + 20).then_some(())
    });
    let untagged = sink_count(&sink) - upstream_tagged;
    println!(
        "802.1Q: 80 tagged frames sent: upstream saw {upstream_tagged}, gateway stack saw \
         {gw_tagged}, lassi counted vlan_tagged {dropped}; 20 untagged: upstream saw {untagged}"
    );
    assert_eq!(upstream_tagged, 0, "tagged frames reached upstream");
    assert_eq!(gw_tagged, 0, "tagged frames reached the gateway's IP stack");
    assert_eq!(dropped, 80, "{s}");
    assert_eq!(
        untagged,
        20,
        "the probe itself does not work: {}\n{}",
        status(&lab, &lassi),
        lassi.log_tail(20)
    );
}

/// A DNS server for lassi's own walled-garden resolver on 198.51.100.53: it
/// writes down each query's source port and id, then answers twice — first
/// a forgery that guessed the id right but names another host (evil.test at
/// 198.51.100.66), then the true answer (the upstream web address).
const RECORDING_DNS: &str = dns_server!(
    r#"    print("query", peer[1], q.id, q.qd.qname.decode(), flush=True)
    evil = DNSRR(rrname="evil.test.", type="A", ttl=86400, rdata="198.51.100.66")
    s.sendto(bytes(DNS(id=q.id, qr=1, ra=1, qd=DNSQR(qname="evil.test."), an=evil)), peer)
    time.sleep(0.05)
    an = DNSRR(rrname=q.qd.qname, type="A", ttl=300, rdata="198.51.100.10")
    s.sendto(bytes(DNS(id=q.id, qr=1, rd=q.rd, ra=1, qd=q.qd, an=an)), peer)
"#
);

/// Finding 7: lassi's own resolver (walled-garden host names) asks with a
/// random id from a random port, and an answer that got the id right but
/// not the question widens nothing.
#[test]
fn the_garden_resolver_uses_random_ids_and_ports_and_refuses_a_forged_question() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let web = must(&lab, "upstream", lab.start_upstream());
    let evil = evil_web(&lab);
    let dns = python_until(
        &lab,
        lab.upstream(),
        "recording-dns",
        &[RECORDING_DNS],
        "ready",
    );
    let hosts: Vec<String> = (0..8).map(|i| format!("h{i}.partner.test")).collect();
    let garden = hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let lassi = must(
        &lab,
        "lassi",
        lab.start_lassi(&format!(
            "[lan]\ndns = [\"{DNS}\"]\n[portal]\nwalled_garden = [{garden}]\n"
        )),
    );
    let resolved = lassi_lab::netns::wait_until(Duration::from_secs(15), || {
        (lassi.log().matches("walled garden host resolved").count() >= hosts.len()).then_some(())
    });
    assert!(resolved.is_some(), "{}\n{}", lassi.log_tail(30), dns.log());
    // What the DNS server saw: one query per name, ids and ports all
    // different and in no fixed step (a counter or the clock would show).
    let queries: Vec<(u32, u32)> = dns
        .log()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&"query")).then(|| (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
        .collect();
    assert!(queries.len() >= hosts.len(), "{}", dns.log());
    let distinct = |v: Vec<u32>| {
        let mut d = v.clone();
        d.sort_unstable();
        d.dedup();
        let steps: std::collections::HashSet<i64> = v
            .windows(2)
            .map(|w| i64::from(w[1]) - i64::from(w[0]))
            .collect();
        (d.len(), steps.len())
    };
    let (ports, port_steps) = distinct(queries.iter().map(|q| q.0).collect());
    let (ids, id_steps) = distinct(queries.iter().map(|q| q.1).collect());
    println!("{} queries: {ports} ports, {ids} ids", queries.len());
    assert_eq!((ports, ids), (queries.len(), queries.len()), "{queries:?}");
    assert!(port_steps > 1 && id_steps > 1, "sequential: {queries:?}");
    // The forgery about evil.test came first with the right id: nothing of
    // it was taken. A guest before login reaches the partner (the true
    // answer) and not the forger's host.
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());
    let bad = must(
        &lab,
        "curl evil",
        client.curl(&["--max-time", "3", "http://198.51.100.66/evil"]),
    );
    assert!(!bad.ok(), "the forged address was let in: {bad:?}");
    assert!(evil.requests().is_empty(), "{:?}", evil.requests());
    let good = must(
        &lab,
        "curl partner",
        client.curl(&[&format!("http://{WEB}/partner")]),
    );
    assert!(good.ok(), "the partner is out of reach: {good:?}");
    assert_eq!(web.requests_to("/partner").len(), 1);
    drop(dns);
}
