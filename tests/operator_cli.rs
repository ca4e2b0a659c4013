//! The operator CLI (chilli_query parity) against a running lassi in the
//! lab, with real clients (udhcpc), a real FreeRADIUS judging accounting
//! (its detail file), curl and iperf3 moving bytes, and dnsmasq answering
//! the walled garden's names: `sessions` filters, `authorize` by IP with
//! limits the guest then experiences, `logout` by user and session id,
//! `block`/`unblock`/`blocked` (across a restart), `dhcp-release`, and
//! `garden list|add|remove`, including every not-found error.
//!
//! Rates are judged as ratios against an unshaped transfer of the same
//! run and against the configured limit, never by wall-clock thresholds;
//! waits are generous bounds for events. Root only; CI runs them.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lassi_lab::gateway::{emit_toml, merge_toml};
use lassi_lab::netns::wait_until;
use lassi_lab::radius::{self as radius, DetailRecord, FreeRadius, FreeRadiusOptions};
use lassi_lab::{DhcpOptions, Guest, Lab, LabOptions, LabResult, LassiHandle};
use serde_json::Value;

const WEB: &str = "198.51.100.10";
const PORTAL: &str = "http://10.1.0.1:3990";

/// FreeRADIUS needs a users file; the operator's logins never ask it.
const USERS: &str = "nobody\tCleartext-Password := \"unused\"\n";

/// One test's world. Field order is drop order: lassi (its clean stop
/// still reaches FreeRADIUS), then FreeRADIUS, then the lab.
struct World {
    lassi: LassiHandle,
    fr: FreeRadius,
    lab: Lab,
}

impl World {
    /// A lab with `clients` guests, FreeRADIUS for accounting, and lassi
    /// with `extra` deep-merged over the RADIUS config.
    fn new(clients: usize, extra: &str) -> World {
        let lab = Lab::new(LabOptions {
            clients,
            ..LabOptions::default()
        })
        .unwrap_or_else(|e| panic!("building the lab: {e}"));
        let fr = lab
            .start_freeradius(FreeRadiusOptions::lab(USERS))
            .unwrap_or_else(|e| panic!("freeradius: {e}\n{}", lab.logs_report(20)));
        let mut cfg: toml::Table = radius::lassi_toml().parse().expect("radius toml");
        merge_toml(&mut cfg, extra.parse().expect("extra toml"));
        let lassi = lab
            .start_lassi(&emit_toml(&cfg))
            .unwrap_or_else(|e| panic!("lassi: {e}\n{}", lab.logs_report(20)));
        World { lassi, fr, lab }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- detail ---\n{:#?}\n{}",
            self.fr.detail(),
            self.lab.logs_report(40)
        )
    }

    fn must<T>(&self, what: &str, r: LabResult<T>) -> T {
        r.unwrap_or_else(|e| self.fail(&format!("{what}: {e}")))
    }

    fn client(&self, i: usize) -> &Guest {
        self.lab.client(i)
    }

    /// udhcpc on guest `i`; its address.
    fn lease(&self, i: usize) -> Ipv4Addr {
        self.must("udhcpc", self.client(i).udhcpc()).ip
    }

    /// `lassi ARGS`, which must succeed; its stdout.
    fn ctl(&self, args: &[&str]) -> String {
        let out = self.must(&format!("lassi {args:?}"), self.lassi.ctl_unchecked(args));
        if !out.success() {
            self.fail(&format!("lassi {args:?} failed: {out:?}"));
        }
        out.stdout
    }

    /// `lassi ARGS`, which must fail; its stderr.
    fn ctl_err(&self, args: &[&str]) -> String {
        let out = self.must(&format!("lassi {args:?}"), self.lassi.ctl_unchecked(args));
        if out.success() {
            self.fail(&format!("lassi {args:?} succeeded: {}", out.stdout));
        }
        out.stderr
    }

    /// `lassi ARGS --json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut argv = args.to_vec();
        argv.push("--json");
        let text = self.ctl(&argv);
        serde_json::from_str(&text).unwrap_or_else(|e| self.fail(&format!("{text}: {e}")))
    }

    /// The accounting record of `status` for session `sid`.
    fn record(&self, sid: &str, status: &str) -> DetailRecord {
        self.fr
            .wait_for_record(Duration::from_secs(10), |r| {
                r.session_id() == Some(sid) && r.status() == status
            })
            .unwrap_or_else(|| self.fail(&format!("FreeRADIUS saw no {status} for {sid}")))
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ctl(&["status"])).expect("status JSON")
    }
}

fn macs(list: &Value) -> Vec<String> {
    (list.as_array().into_iter().flatten())
        .map(|c| c["mac"].as_str().unwrap_or("").to_string())
        .collect()
}

fn sid(c: &Value) -> String {
    c["session_id"].as_str().expect("session_id").to_string()
}

#[test]
fn listings_filter_and_logout_ends_every_session_of_a_user_or_one_by_id() {
    let w = World::new(3, "");
    let ips: Vec<Ipv4Addr> = (1..=3).map(|i| w.lease(i)).collect();
    let mac = |i: usize| w.client(i).mac().to_string();
    // By IP, by MAC, and the old `authorize MAC --user` form.
    w.ctl(&["authorize", "--ip", &ips[0].to_string(), "--user", "alice"]);
    w.ctl(&["authorize", &mac(2), "--user", "alice"]);
    w.ctl(&["authorize", &mac(3), "--user", "bob"]);

    let alice = w.json(&["sessions", "--user", "alice"]);
    let mut got = macs(&alice);
    got.sort();
    let mut want = vec![mac(1), mac(2)];
    want.sort();
    assert_eq!(got, want, "{alice}");
    let third = w.ctl(&["sessions", "--ip", &ips[2].to_string()]);
    assert!(third.contains(&mac(3)) && third.contains("bob"), "{third}");
    assert!(
        !third.contains(&mac(1)) && third.contains("1 client(s)"),
        "{third}"
    );
    let by_mac = w.json(&["sessions", "--mac", &mac(2)]);
    assert_eq!(macs(&by_mac), vec![mac(2)]);
    let sid2 = sid(&by_mac[0]);
    let by_id = w.json(&["sessions", "--session-id", &sid2]);
    assert_eq!(macs(&by_id), vec![mac(2)]);
    // Filters combine: alice is not at the third address.
    let e = w.ctl_err(&["sessions", "--user", "alice", "--ip", &ips[2].to_string()]);
    assert!(
        e.contains("no session for") && e.contains("user alice"),
        "{e}"
    );
    let everyone = w.json(&["sessions"]);
    assert_eq!(everyone.as_array().map(Vec::len), Some(3));

    // Both of alice's sessions end, each with its Stop.
    let sid1 = sid(&w.json(&["sessions", "--mac", &mac(1)])[0]);
    let out = w.ctl(&["logout", "--user", "alice"]);
    assert!(out.contains("2 session(s) ended"), "{out}");
    for s in [&sid1, &sid2] {
        let stop = w.record(s, "Stop");
        assert_eq!(stop.terminate_cause(), Some("Admin-Reset"), "{stop:?}");
    }
    let states = w.json(&["sessions", "--user", "bob"]);
    assert_eq!(states[0]["state"], "authorized");
    // Bob's by its id.
    let sid3 = sid(&states[0]);
    let out = w.ctl(&["logout", "--session-id", &sid3]);
    assert!(out.contains("1 session(s) ended"), "{out}");
    assert_eq!(
        w.record(&sid3, "Stop").terminate_cause(),
        Some("Admin-Reset")
    );
    assert!(w.json(&["sessions", "--mac", &mac(3)])[0]["state"] == "unauthorized");

    // Not found, named, and the exit status says so.
    let e = w.ctl_err(&["logout", "--user", "alice"]);
    assert!(e.contains("no session for user alice"), "{e}");
    let e = w.ctl_err(&["logout", "--session-id", "nope"]);
    assert!(e.contains("no session for session id nope"), "{e}");
    for args in [
        &["sessions", "--ip", "10.1.0.77"][..],
        &["logout", "--ip", "10.1.0.77"],
        &["authorize", "--ip", "10.1.0.77"],
        &["dhcp-release", "--ip", "10.1.0.77"],
    ] {
        let e = w.ctl_err(args);
        assert!(e.contains("no client with IP 10.1.0.77"), "{args:?}: {e}");
    }
    let e = w.ctl_err(&["logout", &mac(1)]);
    assert!(e.contains(&format!("no session for MAC {}", mac(1))), "{e}");
    let e = w.ctl_err(&["unblock", &mac(1)]);
    assert!(e.contains("is not blocked"), "{e}");
    // Bad arguments are refused by the parser, naming the argument.
    let e = w.ctl_err(&[
        "authorize",
        "--ip",
        &ips[0].to_string(),
        "--session-timeout",
        "-5",
    ]);
    assert!(e.contains("--session-timeout"), "{e}");
    let e = w.ctl_err(&["sessions", "--mac", "02:00:zz:00:00:01"]);
    assert!(e.contains("--mac"), "{e}");
}

/// Receiver-side download rate of a 3 s iperf3 run from guest `i`, bit/s.
fn download_rate(w: &World, i: usize) -> f64 {
    let v = w.must(
        "iperf3",
        w.lab.iperf(w.client(i), WEB, &["-t", "3", "-O", "1", "-R"]),
    );
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
}

#[test]
fn authorize_by_ip_with_limits_that_the_guest_experiences() {
    let w = World::new(3, "");
    let _web = w.must("upstream", w.lab.start_upstream());
    let ips: Vec<String> = (1..=3).map(|i| w.lease(i).to_string()).collect();
    w.ctl(&["authorize", "--ip", &ips[0], "--user", "free"]);
    let out = w.ctl(&[
        "authorize",
        "--ip",
        &ips[1],
        "--user",
        "slow",
        "--bandwidth-down",
        "8000000",
        "--bandwidth-up",
        "4000000",
        "--interim-interval",
        "2",
    ]);
    assert!(out.contains("authorized"), "{out}");
    let slow = w.json(&["sessions", "--ip", &ips[1]])[0].clone();
    assert_eq!(slow["limits"]["bandwidth_down_bps"], 8_000_000, "{slow}");
    assert_eq!(slow["limits"]["interim_interval"], 2, "{slow}");
    // The Start, then Interim-Updates at the interval given.
    w.record(&sid(&slow), "Start");
    w.record(&sid(&slow), "Interim-Update");

    let unshaped = download_rate(&w, 1);
    let shaped = download_rate(&w, 2);
    println!(
        "shaped {:.2} Mbit/s, unshaped {:.2} Mbit/s",
        shaped / 1e6,
        unshaped / 1e6
    );
    assert!(
        (0.8..=1.05).contains(&(shaped / 8e6)),
        "shaped {shaped} bit/s against a limit of 8 Mbit/s"
    );
    assert!(
        shaped / unshaped < 0.5,
        "the limit did not slow the guest: {shaped} vs {unshaped}"
    );

    // A volume quota: the download is cut and the session ends, accounted.
    w.ctl(&[
        "authorize",
        "--ip",
        &ips[2],
        "--user",
        "metered",
        "--max-octets-total",
        "2000000",
        "--session-timeout",
        "3600",
        "--idle-timeout",
        "600",
    ]);
    let metered = w.json(&["sessions", "--ip", &ips[2]])[0].clone();
    assert_eq!(metered["limits"]["max_total_octets"], 2_000_000);
    assert_eq!(metered["limits"]["session_timeout"], 3600);
    assert_eq!(metered["limits"]["idle_timeout"], 600);
    let url = format!("http://{WEB}/bytes/20000000");
    let r = w.must(
        "curl",
        w.client(3).curl(&["--max-time", "10", url.as_str()]),
    );
    assert!(
        r.body.len() < 20_000_000,
        "the whole download passed: {r:?}"
    );
    let stop = w.record(&sid(&metered), "Stop");
    let total = stop.input_octets() + stop.output_octets();
    assert!(
        (2_000_000..4_000_000).contains(&total),
        "quota of 2 MB, Stop counts {total}: {stop:?}"
    );
    assert_eq!(
        w.json(&["sessions", "--ip", &ips[2]])[0]["state"],
        "unauthorized"
    );
}

/// udhcpc on guest `i` with a short timeout: the lease, or the error.
fn try_lease(w: &World, i: usize) -> LabResult<Ipv4Addr> {
    let opts = DhcpOptions {
        timeout_secs: 4,
        ..DhcpOptions::default()
    };
    w.client(i).udhcpc_with(&opts).map(|l| l.ip)
}

#[test]
fn block_keeps_a_mac_from_lease_and_portal_across_a_restart() {
    let mut w = World::new(2, "");
    let ip = w.lease(1);
    let mac = w.client(1).mac().to_string();
    w.ctl(&["authorize", &mac, "--user", "carol"]);
    let s = sid(&w.json(&["sessions", "--mac", &mac])[0]);

    let out = w.ctl(&["block", &mac]);
    assert!(out.contains(&format!("{mac} blocked")), "{out}");
    assert!(out.contains(&format!("lease of {ip} freed")), "{out}");
    assert_eq!(w.record(&s, "Stop").terminate_cause(), Some("Admin-Reset"));
    let e = w.ctl_err(&["sessions", "--mac", &mac]);
    assert!(e.contains(&format!("no client with MAC {mac}")), "{e}");
    // Still holding its old address, it reaches neither the portal nor
    // the internet, and every frame is counted as blocked.
    let before = w.status()["drops"]["blocked"].as_u64().unwrap();
    let portal = w.must(
        "curl portal",
        w.client(1)
            .curl(&["--max-time", "3", &format!("{PORTAL}/")]),
    );
    assert!(
        !portal.ok() && portal.http_code == 0,
        "portal answered: {portal:?}"
    );
    let web = w.must(
        "curl web",
        w.client(1)
            .curl(&["--max-time", "3", &format!("http://{WEB}/")]),
    );
    assert_eq!(web.http_code, 0, "{web:?}");
    assert!(w.status()["drops"]["blocked"].as_u64().unwrap() > before);
    // No lease: the DHCP client times out; another guest is served.
    assert!(try_lease(&w, 1).is_err(), "a blocked MAC got a lease");
    w.lease(2);
    assert_eq!(w.json(&["blocked"]), serde_json::json!([mac]));
    let text = w.ctl(&["blocked"]);
    assert!(
        text.contains(&mac) && text.contains("1 blocked MAC(s)"),
        "{text}"
    );
    let again = w.ctl(&["block", &mac]);
    assert!(again.contains("was blocked already"), "{again}");

    // The block list is kept in the state directory across a restart.
    let restarted = w.lassi.restart();
    w.must("restart", restarted);
    assert_eq!(w.json(&["blocked"]), serde_json::json!([mac]));
    assert!(
        try_lease(&w, 1).is_err(),
        "blocked MAC leased after a restart"
    );

    let out = w.ctl(&["unblock", &mac]);
    assert!(out.contains("unblocked"), "{out}");
    assert_eq!(w.json(&["blocked"]), serde_json::json!([]));
    let ip = w.must("udhcpc after unblock", try_lease(&w, 1));
    let portal = w.must(
        "curl portal",
        w.client(1)
            .curl(&["--max-time", "5", &format!("{PORTAL}/")]),
    );
    assert!(
        portal.http_code > 0,
        "portal closed after unblock: {portal:?}"
    );
    assert_eq!(
        macs(&w.json(&["sessions", "--ip", &ip.to_string()])),
        vec![mac]
    );
}

#[test]
fn dhcp_release_ends_the_session_and_frees_the_address_for_another() {
    // A pool of one address: the second guest gets it only once it is free.
    let w = World::new(2, "[lan]\ndhcp_range = [\"10.1.0.50\", \"10.1.0.50\"]\n");
    let ip = w.lease(1);
    let mac = w.client(1).mac().to_string();
    w.ctl(&["authorize", "--ip", &ip.to_string(), "--user", "dave"]);
    let s = sid(&w.json(&["sessions", "--ip", &ip.to_string()])[0]);
    assert!(try_lease(&w, 2).is_err(), "the pool had a second address");

    let out = w.ctl(&["dhcp-release", "--ip", &ip.to_string()]);
    assert!(
        out.contains(&format!("lease of {ip} ({mac}) freed")),
        "{out}"
    );
    let stop = w.record(&s, "Stop");
    assert_eq!(stop.get("User-Name"), Some("dave"), "{stop:?}");
    assert_eq!(w.json(&["sessions"]), serde_json::json!([]));
    let e = w.ctl_err(&["dhcp-release", &mac]);
    assert!(e.contains(&format!("no client with MAC {mac}")), "{e}");

    let second = w.must("udhcpc second guest", try_lease(&w, 2));
    assert_eq!(second, ip, "the freed address went to the second guest");
    let listed = w.json(&["sessions"]);
    assert_eq!(macs(&listed), vec![w.client(2).mac().to_string()]);
}

/// An unauthorized guest's plain HTTP to the upstream server: true when it
/// reached the server (a redirect to the portal does not).
fn reaches(w: &World, web: &lassi_lab::UpstreamServer, path: &str) -> bool {
    let url = format!("http://{WEB}{path}");
    let r = w.must("curl", w.client(1).curl(&["--max-time", "3", url.as_str()]));
    let reached = !web.requests_to(path).is_empty();
    assert_eq!(reached, r.http_code == 200, "{r:?}");
    reached
}

#[test]
fn garden_add_opens_an_upstream_server_and_remove_closes_it() {
    let w = World::new(1, "[portal]\nwalled_garden = [\"203.0.113.0/24\"]\n");
    let web_ip: Ipv4Addr = WEB.parse().unwrap();
    let _dns = w.must(
        "dns",
        w.lab
            .start_dns_with(&[("garden.example", IpAddr::V4(web_ip))]),
    );
    let web = w.must("upstream", w.lab.start_upstream());
    w.lease(1);
    assert!(!reaches(&w, &web, "/closed"), "open before any garden edit");

    // An address.
    let out = w.ctl(&["garden", "add", WEB]);
    assert!(out.contains("added"), "{out}");
    assert!(reaches(&w, &web, "/by-address"));
    let list = w.json(&["garden", "list"]);
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries[0]["entry"], "203.0.113.0/24");
    assert_eq!(entries[0]["origin"], "configured");
    assert_eq!(entries[1]["entry"], WEB);
    assert_eq!(entries[1]["origin"], "operator");
    assert!(list["open"]["nets"]
        .as_array()
        .unwrap()
        .contains(&Value::from(format!("{WEB}/32"))));
    w.ctl(&["garden", "remove", WEB]);
    assert!(!reaches(&w, &web, "/address-removed"));

    // A host name: resolved through lan.dns, its address opened.
    w.ctl(&["garden", "add", "garden.example"]);
    let resolved = wait_until(Duration::from_secs(10), || {
        let l = w.json(&["garden", "list"]);
        (l["open"]["resolved"] == serde_json::json!([WEB])).then_some(l)
    })
    .unwrap_or_else(|| w.fail("garden.example was not resolved"));
    let host = &resolved["entries"][1];
    assert_eq!(host["entry"], "garden.example");
    assert_eq!(host["addresses"], serde_json::json!([WEB]));
    let text = w.ctl(&["garden", "list"]);
    assert!(
        text.contains("garden.example*") && text.contains("operator"),
        "{text}"
    );
    assert!(reaches(&w, &web, "/by-name"));
    w.ctl(&["garden", "remove", "garden.example"]);
    let closed = wait_until(Duration::from_secs(5), || {
        let l = w.json(&["garden", "list"]);
        (l["open"]["resolved"] == serde_json::json!([])).then_some(())
    });
    assert!(closed.is_some(), "garden.example still open");
    assert!(!reaches(&w, &web, "/name-removed"));

    // Configured entries are the config file's; unknown ones are named.
    let e = w.ctl_err(&["garden", "remove", "203.0.113.0/24"]);
    assert!(e.contains("portal.walled_garden"), "{e}");
    let e = w.ctl_err(&["garden", "remove", "nowhere.example"]);
    assert!(
        e.contains("nowhere.example is not in the walled garden"),
        "{e}"
    );
    let e = w.ctl_err(&["garden", "add", "203.0.113.0/24"]);
    assert!(e.contains("already in the walled garden"), "{e}");
    let e = w.ctl_err(&["garden", "add", "bad host!"]);
    assert!(e.contains("entry") && e.contains("bad host!"), "{e}");
}
