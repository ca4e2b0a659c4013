//! End-to-end tests of IPv6 on the LAN (issue 13, first phase: addressing
//! and guards; forwarding is tests/ipv6_forward.rs) with real IPv6 peers in network namespaces:
//! `rdisc6` reads lassi's router advertisement, `dhcpcd` configures
//! itself from it (IPv6 alone, and IPv4 and IPv6 in one run), `dhclient -6`
//! takes a stateful DHCPv6 address, `radvd` on another guest plays a rogue
//! router and scapy a rogue DHCPv6 server. They need root (CI runs
//! them as root); each builds its own lab and cleans up after itself.

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use lassi_lab::netns::ExecOptions;
use lassi_lab::{must, Guest, Lab, LabOptions, LassiHandle};
use serde_json::Value;

/// lassi's link-local address: EUI-64 of the lab's LAN MAC 02:00:00:00:ff:01.
const LASSI_LL: &str = "fe80::ff:fe00:ff01";
/// The lab's LAN MAC of lassi.
const LASSI_MAC: &str = "02:00:00:00:ff:01";
const PREFIX: &str = "2001:db8:1::/64";
const DNS6: &str = "2001:db8:1::53";
const PORTAL_API: &str = "http://10.1.0.1:3990/api";

/// IPv6 on, with DNS, a search domain, an MTU and a short RA interval.
const V6_CONFIG: &str = r#"
[lan]
domain = "hotspot.test"
mtu = 1480

[lan.ipv6]
prefix = "2001:db8:1::/64"
dns = ["2001:db8:1::53"]
ra_interval = 10
"#;

fn lab(clients: usize, isolate: bool) -> Lab {
    Lab::new(LabOptions {
        clients,
        ipv6: true,
        isolate_clients: isolate,
        ..LabOptions::default()
    })
    .unwrap_or_else(|e| panic!("building the lab: {e}"))
}

fn in_prefix(a: Ipv6Addr) -> bool {
    a.segments()[..4] == [0x2001, 0xdb8, 1, 0]
}

fn status(lab: &Lab, lassi: &LassiHandle) -> Value {
    let out = must(lab, "lassi status", lassi.ctl(&["status"]));
    serde_json::from_str(&out.stdout).expect("status is JSON")
}

/// lassi's Prometheus counter of drops for `reason` (and its line), scraped
/// from the metrics endpoint in the gateway namespace.
fn scraped_drops(lab: &Lab, reason: &str) -> (u64, String) {
    let metrics = must(
        lab,
        "scraping the metrics",
        lab.gw().exec(&[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://127.0.0.1:9109/metrics",
        ]),
    )
    .stdout;
    let prefix = format!("lassi_dropped_packets_total{{reason=\"{reason}\"}}");
    let line = (metrics.lines())
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {reason} drops in the metrics:\n{metrics}"));
    let scraped = line.rsplit(' ').next().unwrap().parse().unwrap();
    (scraped, line.to_string())
}

/// The client's global IPv6 addresses on eth0.
fn global_addrs(client: &Guest) -> Vec<Ipv6Addr> {
    let out = client
        .ns()
        .run(&[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
        ])
        .expect("ip -6 addr");
    out.stdout
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "inet6")?;
            w.get(i + 1)?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// `rdisc6` on the client: one solicitation, every advertisement it heard.
fn rdisc6(client: &Guest) -> String {
    let out = client
        .ns()
        .run(&["rdisc6", "-n", "-m", "-w", "4000", "-r", "2", "eth0"])
        .expect("rdisc6 runs");
    format!("{}{}", out.stdout, out.stderr)
}

/// A Python script (standard library only) that sends a router solicitation
/// and prints the option types of the first advertisement heard and its
/// RFC 8910 captive-portal URI, as JSON: rdisc6 1.0.5 does not show
/// option 37.
const RA_OPTIONS_PY: &str = r#"
import json, socket, struct, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
idx = socket.if_nametoindex("eth0")
s.settimeout(1.0)
deadline = time.time() + 8
while time.time() < deadline:
    s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, idx))
    try:
        while True:
            msg, src = s.recvfrom(2000)
            if msg[0] != 134:
                continue
            opts, portal, at = [], None, 16
            while at + 2 <= len(msg) and msg[at + 1] > 0:
                t, l = msg[at], msg[at + 1] * 8
                opts.append(t)
                if t == 37:
                    portal = msg[at + 2:at + l].rstrip(b"\0").decode()
                at += l
            print(json.dumps({"src": src[0].split("%")[0], "options": opts, "portal": portal,
                              "flags": msg[5], "lifetime": struct.unpack("!H", msg[6:8])[0]}))
            sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
"#;

fn ra_options(lab: &Lab, client: &Guest) -> Value {
    let script = lab.path("ra_options.py");
    std::fs::write(&script, RA_OPTIONS_PY).expect("writing the script");
    let out = client
        .ns()
        .run(&["/usr/bin/python3", &script.display().to_string()])
        .expect("python3 runs");
    assert!(out.success(), "no RA heard: {}{}", out.stdout, out.stderr);
    serde_json::from_str(out.stdout.trim()).expect("JSON from the script")
}

#[test]
fn router_advertisement_carries_prefix_dns_mtu_and_captive_portal() {
    let lab = lab(1, false);
    let lassi = must(&lab, "starting lassi", lab.start_lassi(V6_CONFIG));
    let client = lab.client(1);
    let ra = rdisc6(client);
    assert!(ra.contains(&format!("from {LASSI_LL}")), "{ra}");
    let senders: Vec<&str> = ra
        .lines()
        .filter(|l| l.trim_start().starts_with("from "))
        .collect();
    assert!(
        senders
            .iter()
            .all(|l| l.trim() == format!("from {LASSI_LL}")),
        "{ra}"
    );
    // The kernel's own IPv6 stays off on the LAN interface: only lassi speaks.
    let off = must(
        &lab,
        "sysctl",
        lab.gw()
            .exec(&["sysctl", "-n", "net.ipv6.conf.lan0.disable_ipv6"]),
    );
    assert_eq!(off.stdout.trim(), "1");
    assert!(
        ra.contains(&format!("Prefix                   : {PREFIX}")),
        "{ra}"
    );
    assert!(
        ra.contains(&format!("Recursive DNS server     : {DNS6}")),
        "{ra}"
    );
    assert!(
        ra.contains("MTU                      :         1480 bytes"),
        "{ra}"
    );
    assert!(
        ra.contains("DNS search list          : hotspot.test"),
        "{ra}"
    );
    assert!(
        ra.contains("Stateful other conf.      :          Yes"),
        "{ra}"
    );
    assert!(
        ra.contains("Router lifetime           :           30"),
        "{ra}"
    );
    let opts = ra_options(&lab, client);
    assert_eq!(opts["src"], LASSI_LL, "{opts}");
    assert_eq!(opts["portal"], PORTAL_API, "{opts}");
    let kinds: Vec<u64> = opts["options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    for k in [1, 3, 5, 25, 31, 37] {
        assert!(kinds.contains(&k), "option {k} missing: {opts}");
    }
    let st = status(&lab, &lassi);
    assert!(
        st["ipv6"]["ra"]["sent"].as_u64().unwrap() >= 1,
        "{}",
        st["ipv6"]
    );
    assert!(
        st["ipv6"]["ra"]["solicits"].as_u64().unwrap() >= 1,
        "{}",
        st["ipv6"]
    );
    assert_eq!(st["ipv6"]["link_local"], LASSI_LL);
}

/// dhcpcd's IPv6 log and the pids it left, from a one-shot `dhcpcd -6`
/// with private state and run directories.
fn dhcpcd6(lab: &Lab, client: &Guest) -> String {
    let conf = "nodelay\nnoarp\nnohook resolv.conf\nipv6rs\n";
    dhcpcd_run(lab, client, Some("-6"), conf).0
}

/// A one-shot dhcpcd (`family`: `-4`, `-6` or both when `None`) with
/// private state and run directories (bind mounts: never the host's) and
/// the config `conf`; returns its output and log, and what its script
/// recorded: for every event, a `reason=…` line and the environment dhcpcd
/// gave it (the DNS servers it would put in resolv.conf among it).
fn dhcpcd_run(lab: &Lab, client: &Guest, family: Option<&str>, conf: &str) -> (String, String) {
    let dir = lab.path(&format!("dhcpcd-{}", lab.next_seq()));
    let (lib, run) = (dir.join("var-lib-dhcpcd"), dir.join("run"));
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(run.join("dhcpcd")).unwrap();
    let script = dir.join("script.sh");
    let events = dir.join("events.env");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"=== reason=$reason\"; env; }} >> '{}'\nexit 0\n",
            events.display()
        ),
    )
    .unwrap();
    make_executable(&script);
    let conf_file = dir.join("dhcpcd.conf");
    std::fs::write(&conf_file, conf).unwrap();
    let log = dir.join("dhcpcd-file.log");
    let mut argv = vec!["dhcpcd".to_string()];
    argv.extend(family.map(str::to_string));
    argv.extend([
        "-1".into(),
        "-d".into(),
        "-t".into(),
        "15".into(),
        "-f".into(),
        conf_file.display().to_string(),
        "-c".into(),
        script.display().to_string(),
        "-j".into(),
        log.display().to_string(),
        "eth0".into(),
    ]);
    let opts = ExecOptions {
        binds: vec![
            (lib, "/var/lib/dhcpcd".into()),
            (run.clone(), "/run".into()),
        ],
        timeout: Duration::from_secs(30),
        ..ExecOptions::default()
    };
    let out = client.ns().run_with(&argv, &opts).expect("dhcpcd runs");
    for pid in ["eth0-6.pid", "eth0-4.pid", "pid", "eth0.pid"] {
        kill_by_pid_file(&run.join("dhcpcd").join(pid));
    }
    let log = format!(
        "{}{}--- log ---\n{}",
        out.stdout,
        out.stderr,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (log, std::fs::read_to_string(&events).unwrap_or_default())
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Stops the process a pid file names (by its PID), if it still runs.
fn kill_by_pid_file(p: &Path) {
    let Ok(text) = std::fs::read_to_string(p) else {
        return;
    };
    if let Ok(pid) = text.trim().parse::<i32>() {
        if pid > 1 {
            // SAFETY: plain kill(2) of a process this test started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

/// Lines of dhcpcd's log where it complains about lifetimes or timers.
fn timer_complaints(log: &str) -> Vec<&str> {
    let words = [
        "T1",
        "T2",
        "renewal",
        "rebind",
        "warning",
        "invalid",
        "greater than",
        "ignoring",
    ];
    // "renew in 150 seconds, rebind in 262 seconds" is dhcpcd's plain
    // report of a DHCPv4 lease's timers; its warnings say "renewal time
    // greater than rebind time" or "rebind time greater than lease time".
    log.lines()
        .filter(|l| words.iter().any(|w| l.contains(w)) && !l.contains(", rebind in "))
        .collect()
}

/// The values of `var` in every event dhcpcd's script recorded.
fn recorded<'a>(events: &'a str, var: &str) -> Vec<&'a str> {
    events
        .lines()
        .filter_map(|l| l.strip_prefix(var)?.strip_prefix('='))
        .map(|v| v.trim_matches('\''))
        .collect()
}

/// Issue 13: one dhcpcd run doing both families gets an IPv4 lease from
/// lassi and, from lassi's RA (SLAAC), a global address in the prefix and
/// an IPv6 default route via lassi's link-local address, with DNS for
/// both; its log has no timer warning for either.
#[test]
fn dhcpcd_v4_and_v6_at_once_gets_both_with_dns_and_no_timer_warnings() {
    let (events, reasons, _) = dhcpcd_dual_stack(V6_CONFIG);
    assert!(
        reasons.contains(&"ROUTERADVERT".to_string()),
        "{reasons:?}\n{events}"
    );
}

/// The same with stateful DHCPv6 only (`managed`, no SLAAC): dhcpcd's
/// IPv6 address is a DHCPv6 lease, whose T1/T2 and lifetimes dhcpcd checks,
/// and its DNS comes in the DHCPv6 reply too.
#[test]
fn dhcpcd_v4_and_stateful_v6_at_once_gets_both_with_dns_and_no_timer_warnings() {
    let config = format!("{V6_CONFIG}managed = true\nslaac = false\n");
    let (events, reasons, addrs) = dhcpcd_dual_stack(&config);
    assert!(
        reasons.contains(&"BOUND6".to_string()),
        "{reasons:?}\n{events}"
    );
    let dns6 = recorded(&events, "new_dhcp6_name_servers");
    assert!(dns6.contains(&DNS6), "{dns6:?}\n{events}");
    let leased: Vec<Ipv6Addr> = recorded(&events, "new_dhcp6_ia_na1_ia_addr1")
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    assert!(
        !leased.is_empty() && leased.iter().all(|a| addrs.contains(a)),
        "leased {leased:?}, configured {addrs:?}\n{events}"
    );
}

/// One dhcpcd run for both families against lassi started with `config`;
/// checks what both tests above share and returns what dhcpcd's script
/// recorded, the events' reasons and the global IPv6 addresses it
/// configured (all in the prefix).
fn dhcpcd_dual_stack(config: &str) -> (String, Vec<String>, Vec<Ipv6Addr>) {
    let lab = lab(1, false);
    let lassi = must(&lab, "starting lassi", lab.start_lassi(config));
    let client = lab.client(1);
    must(
        &lab,
        "accept_ra off",
        client.ns().sysctl("net.ipv6.conf.eth0.accept_ra", "0"),
    );
    // Wait for both families before the one-shot exits.
    let conf = "nodelay\nnoarp\nnoipv4ll\nnohook resolv.conf\nipv6rs\nwaitip 4\nwaitip 6\n\
                option domain_name_servers, domain_name, routers\n";
    let (log, events) = dhcpcd_run(&lab, client, None, conf);
    let more = || format!("{log}\n--- script ---\n{events}\n{}", lassi.log_tail(40));
    let v4 = client
        .ns()
        .run(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap()
        .stdout;
    assert!(
        v4.contains("inet 10.1.0."),
        "no IPv4 lease: {v4}\n{}",
        more()
    );
    let routes4 = client
        .ns()
        .run(&["ip", "-4", "route", "show", "default"])
        .unwrap()
        .stdout;
    assert!(
        routes4.contains("via 10.1.0.1 dev eth0"),
        "{routes4}\n{}",
        more()
    );
    let addrs = global_addrs(client);
    assert!(
        addrs.iter().any(|a| in_prefix(*a)),
        "no address in {PREFIX}: {addrs:?}\n{}",
        more()
    );
    let routes = client
        .ns()
        .run(&["ip", "-6", "route", "show", "default"])
        .unwrap()
        .stdout;
    assert!(
        routes.contains(&format!("via {LASSI_LL} dev eth0")),
        "{routes}\n{}",
        more()
    );
    // DNS for both: what dhcpcd hands its script (and would write to
    // resolv.conf): lan.dns from the DHCPv4 lease, lan.ipv6.dns from the
    // RA's RDNSS (the one-shot exits once both families have an address,
    // before its DHCPv6 Information-request is answered).
    let dns4 = recorded(&events, "new_domain_name_servers");
    assert!(dns4.contains(&"198.51.100.53"), "{dns4:?}\n{}", more());
    let rdnss = recorded(&events, "nd1_rdnss1_servers");
    assert!(rdnss.contains(&DNS6), "{rdnss:?}\n{}", more());
    assert!(!log.contains("unknown option"), "{log}");
    let complaints = timer_complaints(&log);
    assert!(
        complaints.is_empty(),
        "dhcpcd complained: {complaints:?}\n{log}"
    );
    let reasons: Vec<String> = events
        .lines()
        .filter_map(|l| l.strip_prefix("=== reason="))
        .map(str::to_string)
        .collect();
    assert!(reasons.contains(&"BOUND".to_string()), "{reasons:?}");
    assert!(addrs.iter().all(|a| in_prefix(*a)), "{addrs:?}");
    println!("dhcpcd v4+v6 events: {reasons:?}, addresses {addrs:?}");
    (events, reasons, addrs)
}

#[test]
fn dhcpcd_configures_an_address_in_the_prefix_and_a_route_via_lassi() {
    let lab = lab(1, false);
    let lassi = must(&lab, "starting lassi", lab.start_lassi(V6_CONFIG));
    let client = lab.client(1);
    // dhcpcd, not the kernel, reads the router advertisements.
    must(
        &lab,
        "accept_ra off",
        client.ns().sysctl("net.ipv6.conf.eth0.accept_ra", "0"),
    );
    let log = dhcpcd6(&lab, client);
    let addrs = global_addrs(client);
    assert!(
        addrs.iter().any(|a| in_prefix(*a)),
        "no address in {PREFIX}: {addrs:?}\n{log}\n{}",
        lassi.log_tail(40)
    );
    let routes = client
        .ns()
        .run(&["ip", "-6", "route", "show", "default"])
        .unwrap()
        .stdout;
    assert!(
        routes.contains(&format!("via {LASSI_LL} dev eth0")),
        "{routes}\n{log}"
    );
    // dhcpcd is strict about lifetimes and timers and says so in its log.
    let complaints = timer_complaints(&log);
    assert!(
        complaints.is_empty(),
        "dhcpcd complained: {complaints:?}\n{log}"
    );
}

/// A one-shot stateful `dhclient -6` keeping its lease file (and so its
/// DUID) in `dir`; returns the address its script got and its output.
fn dhclient6(dir: &Path, client: &Guest) -> (Option<Ipv6Addr>, String) {
    std::fs::create_dir_all(dir).unwrap();
    let script = dir.join("script.sh");
    let env_file = dir.join("bound.env");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$reason\" in BOUND6|RENEW6|REBIND6) env > '{}';; esac\nexit 0\n",
            env_file.display()
        ),
    )
    .unwrap();
    make_executable(&script);
    let conf = dir.join("dhclient6.conf");
    std::fs::write(&conf, "timeout 15;\nretry 1;\ninitial-interval 1;\n").unwrap();
    let pid = dir.join("dhclient6.pid");
    let argv = [
        "dhclient".to_string(),
        "-6".into(),
        "-1".into(),
        "-v".into(),
        "-sf".into(),
        script.display().to_string(),
        "-lf".into(),
        dir.join("dhclient6.leases").display().to_string(),
        "-pf".into(),
        pid.display().to_string(),
        "-cf".into(),
        conf.display().to_string(),
        "eth0".into(),
    ];
    let opts = ExecOptions {
        timeout: Duration::from_secs(30),
        ..ExecOptions::default()
    };
    let out = client.ns().run_with(&argv, &opts).expect("dhclient runs");
    kill_by_pid_file(&pid);
    let env = std::fs::read_to_string(&env_file).unwrap_or_default();
    let addr = env
        .lines()
        .find_map(|l| l.strip_prefix("new_ip6_address="))
        .and_then(|a| a.trim_matches('\'').parse().ok());
    (
        addr,
        format!("{}{}\n--- env ---\n{env}", out.stdout, out.stderr),
    )
}

#[test]
fn dhclient_gets_a_stateful_address_in_the_prefix_and_the_lease_is_kept() {
    let lab = lab(1, false);
    let mut lassi = must(
        &lab,
        "starting lassi",
        lab.start_lassi(&format!("{V6_CONFIG}managed = true\n")),
    );
    let client = lab.client(1);
    let dir = lab.path("dhclient6");
    let (addr, log) = dhclient6(&dir, client);
    let addr = addr.unwrap_or_else(|| panic!("no DHCPv6 address:\n{log}\n{}", lassi.log_tail(40)));
    assert!(
        in_prefix(addr) && addr != "2001:db8:1::1".parse::<Ipv6Addr>().unwrap(),
        "{addr}"
    );
    assert!(
        log.contains(&format!("new_dhcp6_name_servers={DNS6}")),
        "{log}"
    );
    let st = status(&lab, &lassi);
    assert_eq!(st["ipv6"]["dhcp"]["bindings"], 1, "{}", st["ipv6"]);
    // The lease is saved like the IPv4 ones and survives a restart.
    must(&lab, "restarting lassi", lassi.restart());
    let saved = std::fs::read_to_string(lassi.state_dir().join("leases6.json")).unwrap();
    assert!(saved.contains(&addr.to_string()), "{saved}");
    let st = status(&lab, &lassi);
    assert_eq!(st["ipv6"]["dhcp"]["bindings"], 1, "{}", st["ipv6"]);
    // The same client (same DUID) asking again gets the same address.
    let (again, log) = dhclient6(&dir, client);
    assert_eq!(again, Some(addr), "{log}");
}

/// radvd on `rogue` announcing its own prefix, DNS server and a default route.
fn start_rogue_radvd(lab: &Lab, rogue: &Guest) -> lassi_lab::netns::Proc {
    let dir = lab.path("radvd");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("radvd.conf");
    std::fs::write(
        &conf,
        "interface eth0 {\n AdvSendAdvert on;\n MinRtrAdvInterval 3;\n MaxRtrAdvInterval 4;\n \
         AdvDefaultLifetime 1800;\n prefix 2001:db8:bad::/64 { AdvOnLink on; AdvAutonomous on; };\n \
         RDNSS 2001:db8:bad::53 { };\n};\n",
    )
    .unwrap();
    must(
        lab,
        "forwarding on the rogue",
        rogue.ns().sysctl("net.ipv6.conf.all.forwarding", "1"),
    );
    let argv = [
        "radvd".to_string(),
        "-n".into(),
        "-m".into(),
        "stderr".into(),
        "-C".into(),
        conf.display().to_string(),
        "-p".into(),
        dir.join("radvd.pid").display().to_string(),
    ];
    must(
        lab,
        "starting radvd",
        rogue.ns().spawn(
            "radvd",
            &argv,
            &dir.join("radvd.log"),
            &ExecOptions::default(),
        ),
    )
}

#[test]
fn a_rogue_router_changes_nothing_for_other_guests_and_is_counted() {
    // Guests are isolated on the switch (as on a hotspot's access points):
    // what a guest sends reaches lassi only, which must not pass it on.
    let lab = lab(2, true);
    let config = format!("{V6_CONFIG}\n[metrics]\nlisten = \"127.0.0.1:9109\"\n");
    let lassi = must(&lab, "starting lassi", lab.start_lassi(&config));
    let (guest, rogue) = (lab.client(1), lab.client(2));
    let _radvd = start_rogue_radvd(&lab, rogue);
    std::thread::sleep(Duration::from_secs(5));
    let ra = rdisc6(guest);
    assert!(
        ra.contains(&format!("Prefix                   : {PREFIX}")),
        "{ra}"
    );
    assert!(
        !ra.contains("2001:db8:bad"),
        "the rogue's RA reached a guest:\n{ra}"
    );
    let routes = guest.ns().run(&["ip", "-6", "route"]).unwrap().stdout;
    assert!(!routes.contains("2001:db8:bad"), "{routes}");
    assert!(
        global_addrs(guest).iter().all(|a| in_prefix(*a)),
        "{:?}",
        global_addrs(guest)
    );
    let st = status(&lab, &lassi);
    let dropped = st["drops"]["ipv6_router_advert"].as_u64().unwrap();
    assert!(dropped >= 1, "{}", st["drops"]);
    assert_eq!(
        st["ipv6"]["guard"]["router_adverts"].as_u64().unwrap(),
        dropped
    );
    // The drop reason is in the Prometheus output too.
    let (scraped, line) = scraped_drops(&lab, "ipv6_router_advert");
    assert!(scraped >= dropped, "{line}");
}

#[test]
fn ipv6_keys_are_refused_by_a_live_reload_naming_the_key() {
    let lab = lab(1, false);
    let lassi = must(&lab, "starting lassi", lab.start_lassi(V6_CONFIG));
    let text = lassi.config_text();
    assert!(text.contains("ra_interval = 10"), "{text}");
    must(
        &lab,
        "editing the config",
        lassi.set_config_text(&text.replace("ra_interval = 10", "ra_interval = 20")),
    );
    let out = must(&lab, "lassi reload", lassi.ctl_unchecked(&["reload"]));
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.success(), "{said}");
    assert!(said.contains("lan.ipv6.ra_interval"), "{said}");
    // Nothing was applied: the RAs still say a router lifetime of 3 × 10 s.
    let ra = rdisc6(lab.client(1));
    assert!(
        ra.contains("Router lifetime           :           30"),
        "{ra}"
    );
}

/// Prints the router lifetime of every RA heard for `sys.argv[1]` seconds,
/// one per line, sending nothing.
const RA_LISTEN_PY: &str = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(0.5)
deadline = time.time() + float(sys.argv[1])
print("listening", flush=True)
while time.time() < deadline:
    try:
        msg, src = s.recvfrom(2000)
    except socket.timeout:
        continue
    if msg[0] == 134:
        print("ra", src[0].split("%")[0], struct.unpack("!H", msg[6:8])[0], flush=True)
"#;

#[test]
fn stopping_lassi_sends_a_final_ra_with_router_lifetime_zero() {
    let lab = lab(1, false);
    let mut lassi = must(&lab, "starting lassi", lab.start_lassi(V6_CONFIG));
    let script = lab.path("ra_listen.py");
    std::fs::write(&script, RA_LISTEN_PY).unwrap();
    let log = lab.path("ra_listen.log");
    let argv = [
        "/usr/bin/python3".to_string(),
        script.display().to_string(),
        "6".into(),
    ];
    let mut listener = must(
        &lab,
        "starting the listener",
        lab.client(1)
            .ns()
            .spawn("ra-listen", &argv, &log, &ExecOptions::default()),
    );
    let listening = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listening")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !listening() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    lassi.stop();
    listener.wait_timeout(Duration::from_secs(10));
    let heard = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        heard.lines().any(|l| l == format!("ra {LASSI_LL} 0")),
        "no final RA with router lifetime 0:\n{heard}"
    );
}

/// scapy on a rogue guest (argv: seconds, the victim's MAC, lassi's MAC):
/// DHCPv6 Advertise and Reply messages offering 2001:db8:bad::77 and DNS
/// server 2001:db8:bad::53, every 0.2 s, to the All_DHCP_Relay_Agents_and_
/// Servers group, to all nodes, and unicast to the victim's link-local
/// address (once to its own MAC, once through lassi's, as a router would
/// be asked to); prints how many frames it sent.
const ROGUE_DHCP6_PY: &str = r#"
import sys, time
from scapy.all import *
from scapy.layers.dhcp6 import *
from scapy.utils6 import in6_mactoifaceid
conf.verb = 0
secs, victim_mac, lassi_mac = float(sys.argv[1]), sys.argv[2], sys.argv[3]
me = get_if_hwaddr("eth0")
src = "fe80::" + in6_mactoifaceid(me)
victim = "fe80::" + in6_mactoifaceid(victim_mac)
targets = [("33:33:00:01:00:02", "ff02::1:2"), ("33:33:00:00:00:01", "ff02::1"),
           (victim_mac, victim), (lassi_mac, victim)]
def offer(kind, trid):
    return (kind(trid=trid) / DHCP6OptServerId(duid=DUID_LL(lladdr=me))
            / DHCP6OptIA_NA(iaid=1, T1=10, T2=20, ianaopts=[
                DHCP6OptIAAddress(addr="2001:db8:bad::77", preflft=3600, validlft=7200)])
            / DHCP6OptDNSServers(dnsservers=["2001:db8:bad::53"])
            / DHCP6OptPref(prefval=255))
print("sending", flush=True)
n, end = 0, time.time() + secs
while time.time() < end:
    for mac, dst in targets:
        for kind in (DHCP6_Advertise, DHCP6_Reply):
            trid = random.randint(0, 0xffffff)
            sendp(Ether(src=me, dst=mac) / IPv6(src=src, dst=dst) / UDP(sport=547, dport=546)
                  / offer(kind, trid), iface="eth0")
            n += 1
    time.sleep(0.2)
print("sent", n, flush=True)
"#;

/// Counts, on `client`'s eth0, DHCPv6 server messages (UDP from port 547)
/// arriving from `rogue` (counter `from_rogue`) and, as a control that the
/// counting works, from lassi (`from_lassi`).
fn count_dhcp6_from(lab: &Lab, client: &Guest, rogue: &str) {
    let rules = format!(
        "table netdev lassirogue {{\n counter from_rogue {{ }}\n counter from_lassi {{ }}\n chain c {{\n  type filter hook ingress device eth0 priority -500;\n  ether saddr {rogue} udp sport 547 counter name from_rogue\n  ether saddr {LASSI_MAC} udp sport 547 counter name from_lassi\n }}\n}}\n"
    );
    let file = lab.path("rogue-count.nft");
    std::fs::write(&file, rules).unwrap();
    must(
        lab,
        "nft -f",
        client
            .ns()
            .run(&["nft", "-f", &file.display().to_string()])
            .and_then(|o| o.check()),
    );
}

fn dhcp6_frames_seen(lab: &Lab, client: &Guest, counter: &str) -> u64 {
    let out = must(
        lab,
        "nft list counter",
        client.ns().run(&[
            "nft",
            "-j",
            "list",
            "counter",
            "netdev",
            "lassirogue",
            counter,
        ]),
    );
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|e| e["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("no counter in {v}"))
}

/// Issue 13: a guest sending DHCPv6 Advertise and Reply messages changes
/// nothing for another guest doing stateful `dhclient -6` at the same time
/// (its address is from lassi's prefix, its DNS server lassi's), nor for
/// lassi (one binding, the victim's); lassi counts the drops as
/// `ipv6_dhcp_server`, in `lassi status` and the Prometheus output.
#[test]
fn a_rogue_dhcpv6_server_changes_nothing_for_other_guests_and_is_counted() {
    // Guests are isolated on the switch, as a hotspot's access points
    // isolate their clients: what a guest sends reaches lassi only, so
    // lassi's guard is the only path by which a rogue's messages could
    // reach another guest. (On a plain shared segment the rogue's frames
    // would reach the victim directly, around any gateway.)
    let lab = lab(2, true);
    let config = format!("{V6_CONFIG}managed = true\n\n[metrics]\nlisten = \"127.0.0.1:9109\"\n");
    let lassi = must(&lab, "starting lassi", lab.start_lassi(&config));
    let (victim, rogue) = (lab.client(1), lab.client(2));
    count_dhcp6_from(&lab, victim, &rogue.mac().to_string());
    let script = lab.path("rogue_dhcp6.py");
    std::fs::write(&script, ROGUE_DHCP6_PY).unwrap();
    let argv = [
        "/usr/bin/python3".to_string(),
        script.display().to_string(),
        "12".into(),
        victim.mac().to_string(),
        LASSI_MAC.into(),
    ];
    let log = lab.path("rogue_dhcp6.log");
    let mut scapy = must(
        &lab,
        "starting the rogue",
        rogue
            .ns()
            .spawn("rogue-dhcp6", &argv, &log, &ExecOptions::default()),
    );
    let sending = lassi_lab::netns::wait_until(Duration::from_secs(15), || {
        scapy.log().contains("sending").then_some(())
    });
    assert!(sending.is_some(), "{}", scapy.log());
    std::thread::sleep(Duration::from_secs(1));
    let (addr, out) = dhclient6(&lab.path("dhclient6-victim"), victim);
    scapy.wait_timeout(Duration::from_secs(20));
    let sent = scapy.log();
    let addr = addr.unwrap_or_else(|| panic!("no DHCPv6 address:\n{out}\n{}", lassi.log_tail(40)));
    assert!(in_prefix(addr), "{addr}\n{out}");
    assert!(
        out.contains(&format!("new_dhcp6_name_servers={DNS6}")),
        "{out}"
    );
    assert!(
        !out.contains("2001:db8:bad"),
        "the rogue's offer won:\n{out}"
    );
    assert!(
        global_addrs(victim)
            .iter()
            .all(|a| !a.to_string().starts_with("2001:db8:bad")),
        "{:?}",
        global_addrs(victim)
    );
    let (from_rogue, from_lassi) = (
        dhcp6_frames_seen(&lab, victim, "from_rogue"),
        dhcp6_frames_seen(&lab, victim, "from_lassi"),
    );
    assert!(
        from_lassi >= 2,
        "lassi's Advertise and Reply were not counted"
    );
    assert_eq!(from_rogue, 0, "{sent}");
    let st = status(&lab, &lassi);
    assert_eq!(st["ipv6"]["dhcp"]["bindings"], 1, "{}", st["ipv6"]);
    let dropped = st["drops"]["ipv6_dhcp_server"].as_u64().unwrap_or(0);
    // Every frame that reached lassi (all but those to the victim's own
    // MAC, which the switch stops) was dropped and counted.
    let n: u64 = sent
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{sent}"));
    assert!(n >= 40, "{sent}");
    assert_eq!(dropped, n / 4 * 3, "{}\n{sent}", st["drops"]);
    assert_eq!(
        st["ipv6"]["guard"]["dhcpv6_server"].as_u64().unwrap(),
        dropped
    );
    let (scraped, line) = scraped_drops(&lab, "ipv6_dhcp_server");
    assert_eq!(scraped, dropped, "{line}");
    println!("rogue sent {n} DHCPv6 server messages: {dropped} dropped by lassi as ipv6_dhcp_server, the rest stopped by the switch; the victim saw 0 of them and {from_lassi} of lassi's; its address {addr}");
}
