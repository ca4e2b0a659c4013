//! lassi against a real FreeRADIUS, end to end in network namespaces: a
//! private FreeRADIUS 3.2 per test on 198.51.100.60 in the upstream
//! namespace (`crates/lassi-lab/src/radius.rs`), lassi in the gateway namespace with
//! `portal.auth = "radius"`, guests in client namespaces logging in through
//! the portal with curl, iperf3 and curl moving the bytes, `radclient` as
//! the CoA/Disconnect peer, and FreeRADIUS's own detail file (or its
//! PostgreSQL `radacct` table) as the judge of what lassi accounted.
//!
//! Times are judged by RADIUS's own records (Acct-Session-Time), never by
//! wall-clock thresholds; waits are generous bounds for events.
//! Root only; CI runs them (`tests/run-all`).

use std::collections::HashMap;
use std::time::Duration;

use lassi::portal::uam;
use lassi_lab::gateway::{emit_toml, merge_toml};
use lassi_lab::must;
use lassi_lab::netns::wait_until;
use lassi_lab::portal::{page_challenge, param, uam_key};
use lassi_lab::radius::{
    self as radius, radclient, DetailRecord, FreeRadius, FreeRadiusOptions, Postgres, RADIUS_ADDR,
};
use lassi_lab::{CurlResult, Guest, Lab, LabOptions, LabResult, LassiHandle};
use serde_json::Value;

const PORTAL: &str = "http://10.1.0.1:3990";
const WEB: &str = "198.51.100.10";
const COA: &str = "192.0.2.1:3799";
const COA_SECRET: &str = "coasecret";

/// Every test's users. Guest N's MAC is 02:00:00:00:00:0N; client 2 is
/// listed for MAC authentication (mac_suffix "", mac_password "password").
const USERS: &str = r#"
bob	Cleartext-Password := "hello"
	Class = "cls-bob",
	Acct-Interim-Interval = 5

free	Cleartext-Password := "hello"

short	Cleartext-Password := "hello"
	Session-Timeout = 6

long	Cleartext-Password := "hello"
	Session-Timeout = 20,
	Acct-Interim-Interval = 5

idle	Cleartext-Password := "hello"
	Idle-Timeout = 5

quota	Cleartext-Password := "hello"
	ChilliSpot-Max-Total-Octets = 2000000

shaped	Cleartext-Password := "hello"
	WISPr-Bandwidth-Max-Down = 20000000,
	WISPr-Bandwidth-Max-Up = 8000000

mallory	Cleartext-Password := "hello", Auth-Type := Reject
	Reply-Message = "Account suspended"

"02-00-00-00-00-02"	Cleartext-Password := "password"
	Class = "mac-ok"
"#;

/// lassi's `[radius]` for the lab (FreeRADIUS upstream, failover after
/// 10 s), CoA from the upstream router's address, with `extra` deep-merged
/// over it.
fn config(extra: &str) -> String {
    let mut base: toml::Table = radius::lassi_toml().parse().expect("radius toml");
    let coa = format!(
        r#"
[radius]
dead_time = 10

[radius.coa]
listen = "{COA}"

[[radius.coa.client]]
address = "192.0.2.2"
secret = "{COA_SECRET}"
"#
    );
    merge_toml(&mut base, coa.parse().expect("CoA toml"));
    merge_toml(&mut base, extra.parse().expect("extra toml"));
    emit_toml(&base)
}

/// One test's world. Field order is drop order: lassi (its clean stop
/// still reaches FreeRADIUS), then FreeRADIUS, then the lab.
struct World {
    lassi: LassiHandle,
    fr: FreeRadius,
    lab: Lab,
}

impl World {
    fn new(clients: usize, lassi_extra: &str) -> World {
        let lab = Lab::new(LabOptions {
            clients,
            ..LabOptions::default()
        })
        .unwrap_or_else(|e| panic!("building the lab: {e}"));
        let fr = must(
            &lab,
            "freeradius",
            lab.start_freeradius(FreeRadiusOptions::lab(USERS)),
        );
        Self::with(lab, fr, lassi_extra)
    }

    fn with(lab: Lab, fr: FreeRadius, lassi_extra: &str) -> World {
        let lassi = must(&lab, "lassi", lab.start_lassi(&config(lassi_extra)));
        World { lassi, fr, lab }
    }

    fn client(&self, i: usize) -> &Guest {
        self.lab.client(i)
    }

    /// Fails with every log (lassi's, FreeRADIUS's) and the detail file.
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

    fn session(&self, client: &Guest) -> Value {
        let v = self.must("lassi sessions --json", self.lassi.sessions_json());
        v.as_array()
            .and_then(|a| a.iter().find(|c| c["mac"] == client.mac().to_string()))
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn state(&self, client: &Guest) -> String {
        self.session(client)["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Logs in on lassi's own pages; returns the session id on success.
    fn login(&self, client: &Guest, user: &str, pw: &str) -> Result<String, CurlResult> {
        let r = own_login(self, client, user, pw);
        if r.http_code == 302 && self.state(client) == "authorized" {
            Ok(self.session(client)["session_id"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        } else {
            Err(r)
        }
    }

    fn login_ok(&self, client: &Guest, user: &str) -> String {
        self.login(client, user, "hello")
            .unwrap_or_else(|r| self.fail(&format!("{user} could not log in: {r:?}")))
    }

    fn logout(&self, client: &Guest) {
        // A POST: on lassi's own pages a GET without the form token or an
        // own Referer is what a cross-site link looks like (issue 8).
        let r = self.must(
            "logout",
            client.curl(&["-X", "POST", format!("{PORTAL}/logout").as_str()]),
        );
        assert!(r.http_code == 200 || r.http_code == 302, "{r:?}");
        assert_eq!(self.state(client), "unauthorized");
    }

    /// Waits for the session's record of `status` (first one).
    fn record(&self, sid: &str, status: &str, within: Duration) -> DetailRecord {
        self.fr
            .wait_for_record(within, |r| {
                r.session_id() == Some(sid) && r.status() == status
            })
            .unwrap_or_else(|| self.fail(&format!("no {status} for session {sid}")))
    }

    /// The session's next Interim-Update that FreeRADIUS receives at least
    /// a second from now (so it was made after anything done before).
    fn next_interim(&self, sid: &str) -> DetailRecord {
        std::thread::sleep(Duration::from_secs(1));
        let n = self.fr.detail().len();
        let r = wait_until(Duration::from_secs(15), || {
            self.fr
                .detail()
                .into_iter()
                .skip(n)
                .find(|r| r.session_id() == Some(sid) && r.status() == "Interim-Update")
        });
        r.unwrap_or_else(|| self.fail("no Interim-Update within 15 s (interval 5 s)"))
    }

    /// Records durably in the spool: a `.tmp` is a write not yet renamed
    /// into place (a crash then loses nothing that was promised durable),
    /// so it is not counted.
    fn spooled(&self) -> usize {
        spooled(&self.lassi)
    }
}

/// Records durably in lassi's spool (see [`World::spooled`]).
fn spooled(lassi: &LassiHandle) -> usize {
    std::fs::read_dir(lassi.state_dir().join("radius-spool"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
                .count()
        })
        .unwrap_or(0)
}

/// Stops FreeRADIUS once lassi holds no unacknowledged record: the server
/// writes its detail file before it answers, so stopping it as soon as a
/// record shows there can swallow the answer, and lassi then rightly sends
/// the record again (a duplicate made by the test).
fn stop_when_acknowledged(fr: &mut FreeRadius, lassi: &LassiHandle) {
    let acked = wait_until(Duration::from_secs(15), || {
        (spooled(lassi) == 0).then_some(())
    });
    assert!(
        acked.is_some(),
        "a record stayed unacknowledged with FreeRADIUS up\n{}",
        lassi.log_tail(30)
    );
    fr.stop();
}

/// POST /login on lassi's own pages (challenge from the splash page).
fn own_login(w: &World, client: &Guest, user: &str, pw: &str) -> CurlResult {
    let page = w.must("splash", client.curl(&[format!("{PORTAL}/").as_str()]));
    let chal = page_challenge(&page.text());
    w.must(
        "login",
        client.curl(&[
            "--data-urlencode",
            &format!("username={user}"),
            "--data-urlencode",
            &format!("password={pw}"),
            "-d",
            &format!("challenge={chal}"),
            &format!("{PORTAL}/login"),
        ]),
    )
}

/// An iperf3 run through lassi (5 s unless `secs`): (receiver bit/s,
/// bytes received).
fn iperf(lab: &Lab, client: &Guest, reverse: bool, secs: Option<&str>) -> (f64, u64) {
    let mut args = vec![];
    match secs {
        // Every byte counts: nothing omitted.
        Some(t) => args.extend(["-t", t]),
        None => args.extend(["-t", "5", "-O", "1"]),
    }
    if reverse {
        args.push("-R");
    }
    let v = must(lab, "iperf3", lab.iperf(client, WEB, &args));
    let r = &v["end"]["sum_received"];
    (
        r["bits_per_second"].as_f64().expect("bits_per_second"),
        r["bytes"].as_u64().expect("bytes"),
    )
}

/// How many of `recs` have Acct-Status-Type `status`.
fn with_status(recs: &[DetailRecord], status: &str) -> usize {
    recs.iter().filter(|r| r.status() == status).count()
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

/// Asserts the records of one session are complete and in order: one
/// Start first, one Stop last, Interims every `interval` s of session time
/// with none missing (no gap of two intervals) and octets never going back,
/// and no duplicates (same status, time and octets).
fn assert_complete(recs: &[DetailRecord], interval: u64) {
    let show = || {
        recs.iter()
            .map(|r| {
                format!(
                    "{} t={:?} in={} out={} delay={:?}",
                    r.status(),
                    r.session_time(),
                    r.input_octets(),
                    r.output_octets(),
                    r.get("Acct-Delay-Time")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in recs {
        *seen.entry(r.identity()).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicates {dups:?}\n{}", show());
    assert_eq!(
        recs.first().map(|r| r.status()),
        Some("Start"),
        "{}",
        show()
    );
    assert_eq!(recs.last().map(|r| r.status()), Some("Stop"), "{}", show());
    assert_eq!(with_status(recs, "Start"), 1, "{}", show());
    assert_eq!(with_status(recs, "Stop"), 1, "{}", show());
    let mut last = (0u64, 0u64, 0u64);
    for r in &recs[1..] {
        let t = r
            .session_time()
            .unwrap_or_else(|| panic!("no time\n{}", show()));
        assert!(
            t >= last.0 && t - last.0 < 2 * interval,
            "an Interim is missing before t={t} (previous t={})\n{}",
            last.0,
            show()
        );
        assert!(
            r.input_octets() >= last.1 && r.output_octets() >= last.2,
            "octets went back at t={t}\n{}",
            show()
        );
        last = (t, r.input_octets(), r.output_octets());
    }
}

#[test]
fn harness_freeradius_postgres_and_radclient() {
    // The harness alone, without lassi: radclient from the gateway
    // namespace is FreeRADIUS's NAS; accounting lands in detail and radacct.
    let lab = Lab::new(LabOptions {
        clients: 0,
        ..LabOptions::default()
    })
    .expect("lab");
    let pg = must(&lab, "postgres", Postgres::start(&lab.dir().join("pg")));
    let sql = must(&lab, "schema", pg.create_radius_db("radius"));
    let mut opts = FreeRadiusOptions::lab(USERS);
    opts.clients[0].require_message_authenticator = false;
    opts.sql = Some(sql);
    let fr = must(&lab, "freeradius", lab.start_freeradius(opts));
    // radclient from the gateway namespace, as lassi's NAS.
    let send = |service: &str, port: u16, attrs: &str| {
        let target = format!("{RADIUS_ADDR}:{port}");
        let what = format!("radclient {service}");
        must(
            &lab,
            &what,
            radclient(Some(lab.gw()), &target, service, "testing123", attrs),
        )
    };
    let out = send("auth", 1812, "User-Name = bob, User-Password = hello");
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert!(out.contains("Acct-Interim-Interval = 5"), "{out}");
    let out = send("auth", 1812, "User-Name = mallory, User-Password = hello");
    assert!(out.contains("Received Access-Reject"), "{out}");
    assert!(out.contains("Account suspended"), "{out}");
    for (status, extra) in [
        ("Start", ""),
        (
            "Stop",
            ", Acct-Input-Octets = 7, Acct-Output-Gigawords = 1, Acct-Output-Octets = 9, Acct-Session-Time = 3, Acct-Terminate-Cause = User-Request",
        ),
    ] {
        let out = send(
            "acct",
            1813,
            &format!("User-Name = bob, Acct-Session-Id = h-1, Acct-Status-Type = {status}, NAS-IP-Address = 192.0.2.1{extra}"),
        );
        assert!(out.contains("Received Accounting-Response"), "{out}");
    }
    let recs = fr.session_records("h-1");
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[1].output_octets(), (1 << 32) + 9);
    let row = must(
        &lab,
        "psql",
        pg.psql(
            "radius",
            "SELECT username, acctinputoctets, acctoutputoctets, acctterminatecause, acctstoptime IS NOT NULL FROM radacct WHERE acctsessionid = 'h-1'",
        ),
    );
    assert_eq!(
        row.trim(),
        "bob|7|4294967305|User-Request|t",
        "{}",
        fr.log_tail(30)
    );
}

#[test]
fn portal_logins_pap_chap_reply_message_and_mac_auth() {
    let secret = "uamsecret";
    let w = World::new(
        2,
        &format!(
            "[portal]\nuam_server = \"http://{WEB}/hotspotlogin\"\nuam_secret = \"{secret}\"\n\
             [radius]\nmac_auth = true\nmac_suffix = \"\"\nmac_password = \"password\"\n"
        ),
    );
    // Guest 2 is listed: MAC authentication lets it straight through.
    let c2 = w.client(2);
    w.must("udhcpc 2", c2.udhcpc());
    let through = wait_until(Duration::from_secs(10), || {
        (w.state(c2) == "authorized").then_some(())
    });
    if through.is_none() {
        w.fail("the listed MAC was not authorized");
    }
    assert!(
        w.fr.log().contains("Login OK: [02-00-00-00-00-02"),
        "{}",
        w.fr.log_tail(30)
    );
    // Guest 1 is not: it is refused at DHCP time and meets the portal.
    let c1 = w.client(1);
    w.must("udhcpc 1", c1.udhcpc());
    wait_until(Duration::from_secs(10), || {
        w.fr.log().contains("Login incorrect").then_some(())
    });
    assert_eq!(w.state(c1), "unauthorized");

    let r = w.must(
        "intercepted",
        c1.curl(&["-H", "Host: example.test", &format!("{PORTAL}/news")]),
    );
    let mut loc = r
        .header("location")
        .unwrap_or_else(|| w.fail("no redirect"));
    let key = |url: &str| uam_key(url, secret);
    let logon = |url: &str, q: String| -> String {
        let r = w.must("logon", c1.curl(&[format!("{PORTAL}/logon?{q}").as_str()]));
        let _ = url;
        r.header("location")
            .unwrap_or_else(|| w.fail(&format!("no redirect: {r:?}")))
    };
    // Wrong password (PAP, XOR form): res=failed.
    let failed = logon(
        &loc,
        format!(
            "username=bob&password={}",
            uam::encode_password("nope", &key(&loc))
        ),
    );
    assert!(failed.contains("?res=failed&"), "{failed}");
    assert_eq!(w.state(c1), "unauthorized");
    loc = failed;
    // A reject with Reply-Message: the portal passes it on.
    let failed = logon(
        &loc,
        format!(
            "username=mallory&password={}",
            uam::encode_password("hello", &key(&loc))
        ),
    );
    assert!(failed.contains("?res=failed&"), "{failed}");
    assert_eq!(param(&failed, "reply"), "Account suspended", "{failed}");
    loc = failed;
    // PAP, right password.
    let ok = logon(
        &loc,
        format!(
            "username=free&password={}",
            uam::encode_password("hello", &key(&loc))
        ),
    );
    assert!(ok.contains("?res=success&"), "{ok}");
    assert_eq!(param(&ok, "uid"), "free");
    assert_eq!(w.state(c1), "authorized");
    let r = w.must("logoff", c1.curl(&[format!("{PORTAL}/logoff").as_str()]));
    let off = r.header("location").unwrap_or_default();
    assert!(off.contains("?res=logoff&"), "{off}");
    assert_eq!(w.state(c1), "unauthorized");
    // CHAP with a fresh challenge (the logoff redirect's, or a new one).
    let loc = if param(&off, "challenge").is_empty() {
        w.must(
            "intercepted",
            c1.curl(&["-H", "Host: example.test", &format!("{PORTAL}/news")]),
        )
        .header("location")
        .unwrap()
    } else {
        off
    };
    let bad = uam::hex(&uam::chap_response(0, b"wrong", &key(&loc)));
    let failed = logon(&loc, format!("username=bob&response={bad}"));
    assert!(failed.contains("?res=failed&"), "{failed}");
    let resp = uam::hex(&uam::chap_response(0, b"hello", &key(&failed)));
    let ok = logon(&failed, format!("username=bob&response={resp}"));
    assert!(ok.contains("?res=success&"), "{ok}");
    let s = w.session(c1);
    assert_eq!(s["state"], "authorized");
    assert_eq!(s["user"], "bob");
    let log = w.fr.log();
    for line in ["Login OK: [bob/<CHAP-Password>]", "Login OK: [free/hello]"] {
        assert!(log.contains(line), "{line}\n{}", w.fr.log_tail(30));
    }
}

#[test]
fn own_pages_say_why_a_login_failed() {
    let w = World::new(1, "");
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    let r = own_login(&w, c, "bob", "wrong");
    assert_eq!(r.http_code, 200, "{r:?}");
    assert!(
        r.text().contains("Wrong user name or password."),
        "{}",
        r.text()
    );
    let r = own_login(&w, c, "mallory", "hello");
    assert!(r.text().contains("Account suspended"), "{}", r.text());
    assert_eq!(w.state(c), "unauthorized");
    let sid = w.login_ok(c, "bob");
    assert!(!sid.is_empty());
    // The JSON API after logout: logon with the CoovaChilli JSON call.
    w.logout(c);
    let st: Value = serde_json::from_slice(
        &w.must(
            "json status",
            c.curl(&[format!("{PORTAL}/json/status").as_str()]),
        )
        .body,
    )
    .unwrap();
    let chal = st["challenge"].as_str().unwrap_or_default().to_string();
    let v: Value = serde_json::from_slice(
        &w.must(
            "json logon",
            c.curl(&[
                format!("{PORTAL}/json/logon?username=free&password=hello&challenge={chal}")
                    .as_str(),
            ]),
        )
        .body,
    )
    .unwrap();
    assert_eq!(v["clientState"], 1, "{v}");
}

#[test]
fn session_and_idle_timeouts_end_on_time_with_the_right_cause() {
    let w = World::new(2, "");
    let (c1, c2) = (w.client(1), w.client(2));
    w.must("udhcpc 1", c1.udhcpc());
    w.must("udhcpc 2", c2.udhcpc());
    let s1 = w.login_ok(c1, "short");
    let s2 = w.login_ok(c2, "idle");
    let stop1 = w.record(&s1, "Stop", Duration::from_secs(20));
    let stop2 = w.record(&s2, "Stop", Duration::from_secs(20));
    let (t1, t2) = (stop1.session_time().unwrap(), stop2.session_time().unwrap());
    println!("Session-Timeout 6 → Acct-Session-Time {t1}; Idle-Timeout 5 → {t2}");
    assert_eq!(stop1.terminate_cause(), Some("Session-Timeout"));
    assert!(
        (4..=8).contains(&t1),
        "session time {t1} for Session-Timeout 6"
    );
    assert_eq!(stop2.terminate_cause(), Some("Idle-Timeout"));
    assert!(
        (3..=7).contains(&t2),
        "session time {t2} for Idle-Timeout 5"
    );
    assert_eq!(w.state(c1), "unauthorized");
    assert_eq!(w.state(c2), "unauthorized");
    let _web = w.must("upstream", w.lab.start_upstream());
    let r = w.must(
        "curl",
        c1.curl(&["--max-time", "3", &format!("http://{WEB}/after")]),
    );
    assert_ne!(r.http_code, 200, "still online after the session timeout");
}

#[test]
fn quota_from_radius_ends_the_session() {
    let w = World::new(1, "");
    let c = w.client(1);
    let _web = w.must("upstream", w.lab.start_upstream());
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "quota");
    let r = w.must(
        "curl",
        c.curl(&["--max-time", "10", &format!("http://{WEB}/bytes/20000000")]),
    );
    assert!(r.body.len() < 20_000_000, "the whole download got through");
    let stop = w.record(&sid, "Stop", Duration::from_secs(10));
    assert_eq!(stop.terminate_cause(), Some("Session-Timeout"), "{stop:?}");
    let total = stop.input_octets() + stop.output_octets();
    println!("quota 2000000: Stop counts {total} octets");
    assert!((2_000_000..10_000_000).contains(&total), "{total}");
}

#[test]
fn quota_from_radius_throttles_the_session() {
    let w = World::new(
        1,
        "[session]\nquota_action = \"throttle\"\nthrottle_up = 4000000\nthrottle_down = 4000000\n",
    );
    let c = w.client(1);
    let _web = w.must("upstream", w.lab.start_upstream());
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "quota");
    let r = w.must(
        "curl",
        c.curl(&["--max-time", "20", &format!("http://{WEB}/bytes/3000000")]),
    );
    assert_eq!(r.body.len(), 3_000_000, "{r:?}");
    let thr = wait_until(Duration::from_secs(5), || {
        (w.session(c)["throttled"] == true).then_some(())
    });
    if thr.is_none() {
        w.fail("not throttled after the quota");
    }
    let (down, _) = iperf(&w.lab, c, true, None);
    println!("throttled download {:.2} Mbit/s against 4", down / 1e6);
    assert!((0.85..=1.15).contains(&(down / 4e6)), "{down}");
    assert_eq!(w.state(c), "authorized");
    assert!(
        w.fr.session_records(&sid)
            .iter()
            .all(|r| r.status() != "Stop"),
        "throttling ended the session"
    );
}

#[test]
fn wispr_bandwidth_limits_iperf3_both_ways() {
    let w = World::new(1, "");
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    let _sid = w.login_ok(c, "shaped");
    let s = w.session(c);
    assert_eq!(s["limits"]["bandwidth_down_bps"], 20_000_000, "{s}");
    let (down, _) = iperf(&w.lab, c, true, None);
    let (up, _) = iperf(&w.lab, c, false, None);
    println!(
        "WISPr-Bandwidth-Max-Down 20 Mbit/s → {:.2}, Max-Up 8 Mbit/s → {:.2} ({:.1} % / {:.1} %)",
        down / 1e6,
        up / 1e6,
        100.0 * down / 20e6,
        100.0 * up / 8e6
    );
    assert!((0.85..=1.15).contains(&(down / 20e6)), "download {down}");
    assert!((0.85..=1.15).contains(&(up / 8e6)), "upload {up}");
}

#[test]
fn accounting_start_interims_stop_match_the_bytes_moved() {
    let w = World::new(1, "");
    let c = w.client(1);
    let _web = w.must("upstream", w.lab.start_upstream());
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "bob");
    let before = ip_bytes(c);
    let start = w.record(&sid, "Start", Duration::from_secs(5));
    assert_eq!(start.get("User-Name"), Some("bob"));
    assert_eq!(start.get("NAS-Identifier"), Some("lassi-lab"));
    assert_eq!(start.get("Class"), Some("0x636c732d626f62"));
    assert_eq!(start.get("Calling-Station-Id"), Some("02-00-00-00-00-01"));
    // 20 MB down with curl; then an Interim taken after it (created a
    // second or more after curl returned) splits the session in two; then
    // 3 s of upload with iperf3.
    let down = 20_000_000u64;
    let r = w.must(
        "curl",
        c.curl(&[format!("http://{WEB}/bytes/{down}").as_str()]),
    );
    assert_eq!(r.body.len() as u64, down, "{r:?}");
    let mid = w.next_interim(&sid);
    let (_, up) = iperf(&w.lab, c, false, Some("3"));
    w.next_interim(&sid);
    let after = ip_bytes(c);
    w.logout(c);
    let stop = w.record(&sid, "Stop", Duration::from_secs(10));
    assert_eq!(stop.terminate_cause(), Some("User-Request"));
    assert_eq!(stop.get("Class"), Some("0x636c732d626f62"));
    let recs = w.fr.session_records(&sid);
    assert_complete(&recs, 5);
    let (kin, kout) = (after.0 - before.0, after.1 - before.1);
    let (ain, aout) = (stop.input_octets(), stop.output_octets());
    // What RADIUS saw of each transfer: the download up to the mid
    // Interim, the upload after it.
    let rdown = mid.output_octets();
    let rup = ain - mid.input_octets();
    println!(
        "curl moved {down} B down: Output-Octets {rdown} ({:+.2} %); iperf3 moved {up} B up: Input-Octets {rup} ({:+.2} %); Stop in/out {ain}/{aout} vs client kernel IP bytes {kin}/{kout} ({:+.3} % / {:+.3} %); {} Interims",
        100.0 * (rdown as f64 / down as f64 - 1.0),
        100.0 * (rup as f64 / up as f64 - 1.0),
        100.0 * (ain as f64 / kin as f64 - 1.0),
        100.0 * (aout as f64 / kout as f64 - 1.0),
        with_status(&recs, "Interim-Update")
    );
    // IP-layer octets: the payload plus TCP/IP headers (~3.6 % at MSS 1448)
    // and a little HTTP or iperf3 control traffic.
    assert!(
        (1.0..1.06).contains(&(rdown as f64 / down as f64)),
        "{rdown} vs {down}"
    );
    assert!(
        (1.0..1.06).contains(&(rup as f64 / up as f64)),
        "{rup} vs {up}"
    );
    // And what the client's kernel counted, closely.
    assert!(
        (0.99..1.01).contains(&(aout as f64 / kout as f64)),
        "{aout} vs {kout}"
    );
    assert!(
        (0.99..1.01).contains(&(ain as f64 / kin as f64)),
        "{ain} vs {kin}"
    );
    assert!(w.fr.detail().iter().any(|r| r.status() == "Accounting-On"));
}

/// lassi's status as JSON.
fn status(w: &World) -> Value {
    let out = w.must("lassi status", w.lassi.ctl(&["status"]));
    serde_json::from_str(&out.stdout).expect("status JSON")
}

/// Packets a forwarding thread sent to its devices (LAN and TUN).
fn forwarded_by(status: &Value, worker: usize) -> u64 {
    let io = &status["workers"]["threads"][worker]["io"];
    io["lan_tx"].as_u64().unwrap_or(0) + io["tun_tx"].as_u64().unwrap_or(0)
}

/// Two forwarding threads share one session's traffic (16 parallel
/// streams each way, spread by flow hash: all on one thread has odds of
/// 2^-15): FreeRADIUS's Stop still matches the client kernel's own
/// counters within 1 %, so no octet was lost or counted twice between the
/// threads, including those counted by a worker just before the logout.
#[test]
fn accounting_stays_exact_with_traffic_spread_over_two_workers() {
    let w = World::new(1, "[dataplane]\nworkers = 2\n");
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "bob");
    let admitted = wait_until(Duration::from_secs(5), || {
        (status(&w)["workers"]["fast_path_sessions"] == 1).then_some(())
    });
    if admitted.is_none() {
        w.fail("the session never reached the workers' fast path");
    }
    let before = ip_bytes(c);
    let before_status = status(&w);
    for reverse in [false, true] {
        let mut args = vec!["-t", "3", "-P", "16"];
        if reverse {
            args.push("-R");
        }
        must(&w.lab, "iperf3", w.lab.iperf(c, WEB, &args));
    }
    let after = ip_bytes(c);
    let st = status(&w);
    let by = |i| forwarded_by(&st, i) - forwarded_by(&before_status, i);
    let (w0, w1) = (by(0), by(1));
    let handed = st["io"]["handed_over"].as_u64().unwrap_or(0);
    w.logout(c);
    let stop = w.record(&sid, "Stop", Duration::from_secs(10));
    let (kin, kout) = (after.0 - before.0, after.1 - before.1);
    let (ain, aout) = (stop.input_octets(), stop.output_octets());
    println!(
        "packets forwarded: worker 0 {w0}, worker 1 {w1}; Stop in/out {ain}/{aout} vs client \
         kernel IP bytes {kin}/{kout} ({:+.3} % / {:+.3} %)",
        100.0 * (ain as f64 / kin as f64 - 1.0),
        100.0 * (aout as f64 / kout as f64 - 1.0),
    );
    assert!(w0 > 1000 && w1 > 1000, "both workers forward: {w0} / {w1}");
    // A logged-in session's frames stay on the thread that read them (and
    // no thread reads back what lassi itself sent).
    assert!(handed * 100 < w0 + w1, "{handed} frames handed over");
    // The Stop also holds the login's few packets from before `before`.
    assert!(
        (0.99..1.01).contains(&(ain as f64 / kin as f64)),
        "{ain} vs {kin}"
    );
    assert!(
        (0.99..1.01).contains(&(aout as f64 / kout as f64)),
        "{aout} vs {kout}"
    );
    assert_eq!(status(&w)["workers"]["fast_path_sessions"], 0);
}

/// A shaped session on three forwarding threads: its flows land on all
/// of them, the two that do not own it hand its frames to the one that
/// does, and its one shaper holds the rate both ways (eight streams each
/// way); FreeRADIUS's Stop still matches the client kernel's counters.
#[test]
fn shaping_holds_with_a_sessions_flows_spread_over_three_workers() {
    let w = World::new(1, "[dataplane]\nworkers = 3\n");
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "shaped");
    let admitted = wait_until(Duration::from_secs(5), || {
        (status(&w)["workers"]["fast_path_sessions"] == 1).then_some(())
    });
    if admitted.is_none() {
        w.fail("the shaped session never reached the workers' fast paths");
    }
    let before = ip_bytes(c);
    let rate = |reverse: bool| {
        let mut args = vec!["-t", "5", "-O", "1", "-P", "8"];
        if reverse {
            args.push("-R");
        }
        let v = must(&w.lab, "iperf3", w.lab.iperf(c, WEB, &args));
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .expect("bits_per_second")
    };
    let (down, up) = (rate(true), rate(false));
    let after = ip_bytes(c);
    let st = status(&w);
    let shaped = st["drops"]["shaped"].as_u64().expect("drops.shaped");
    let handed: Vec<u64> = (0..3)
        .map(|i| {
            st["workers"]["threads"][i]["io"]["handed_over"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    w.logout(c);
    let stop = w.record(&sid, "Stop", Duration::from_secs(10));
    let (kin, kout) = (after.0 - before.0, after.1 - before.1);
    let (ain, aout) = (stop.input_octets(), stop.output_octets());
    println!(
        "20 Mbit/s down → {:.2}, 8 up → {:.2} over 8 streams each; frames handed over by \
         thread {handed:?}; Stop in/out {ain}/{aout} vs kernel {kin}/{kout}; {shaped} \
         packets dropped by the shaper",
        down / 1e6,
        up / 1e6
    );
    assert!((0.85..=1.15).contains(&(down / 20e6)), "download {down}");
    assert!((0.85..=1.15).contains(&(up / 8e6)), "upload {up}");
    assert!(
        handed.iter().filter(|&&n| n > 100).count() >= 2,
        "{handed:?}"
    );
    // What the client received is what was counted; what it sent is what
    // was counted plus what the upload shaper dropped (each drop at most a
    // 64 KiB super-packet).
    assert!(
        (0.99..1.01).contains(&(aout as f64 / kout as f64)),
        "{aout} vs {kout}"
    );
    assert!(ain <= kin, "{ain} counted, {kin} sent");
    assert!(
        kin - ain <= shaped * 65_536,
        "{} uncounted for {shaped} drops",
        kin - ain
    );
}

#[test]
fn freeradius_down_for_30s_mid_session_loses_and_duplicates_nothing() {
    let mut w = World::new(1, "");
    let c = w.lab.client(1);
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "bob");
    w.record(&sid, "Interim-Update", Duration::from_secs(10));
    stop_when_acknowledged(&mut w.fr, &w.lassi);
    std::thread::sleep(Duration::from_secs(30));
    let spooled = w.spooled();
    println!("{spooled} records spooled during the outage");
    assert!(spooled >= 4, "{spooled} records spooled in 30 s");
    w.fr.start()
        .unwrap_or_else(|e| panic!("restarting FreeRADIUS: {e}"));
    let back = std::time::Instant::now();
    // lassi retries its spool every 30 s (spool_retry) once a server is
    // passed over: allow for that.
    let drained = wait_until(Duration::from_secs(40), || (w.spooled() == 0).then_some(()));
    if drained.is_none() {
        w.fail("the spool did not drain after FreeRADIUS came back");
    }
    println!(
        "spool drained {:?} after FreeRADIUS came back",
        back.elapsed()
    );
    w.logout(c);
    w.record(&sid, "Stop", Duration::from_secs(15));
    let recs = w.fr.session_records(&sid);
    assert_complete(&recs, 5);
    let interims = with_status(&recs, "Interim-Update");
    println!("{interims} Interims for one session across a 30 s outage");
    assert!(interims >= 7, "{interims}");
}

/// A World whose FreeRADIUS writes accounting to PostgreSQL as well.
fn world_with_sql(lassi_extra: &str) -> (World, Postgres) {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let pg = must(&lab, "postgres", Postgres::start(&lab.dir().join("pg")));
    let sql = must(&lab, "schema", pg.create_radius_db("radius"));
    let mut opts = FreeRadiusOptions::lab(USERS);
    opts.sql = Some(sql);
    let fr = must(&lab, "freeradius", lab.start_freeradius(opts));
    (World::with(lab, fr, lassi_extra), pg)
}

/// The closed `radacct` row of a session: (input, output octets, cause).
fn radacct_row(w: &World, pg: &Postgres, sid: &str) -> (u64, u64, String) {
    let q = format!(
        "SELECT acctinputoctets, acctoutputoctets, acctterminatecause, acctstoptime IS NOT NULL FROM radacct WHERE acctsessionid = '{sid}'"
    );
    let row = wait_until(Duration::from_secs(10), || {
        pg.psql("radius", &q).ok().filter(|r| r.contains("|t"))
    })
    .unwrap_or_else(|| {
        w.fail(&format!(
            "no closed radacct row: {:?}",
            pg.psql("radius", &q)
        ))
    });
    let f: Vec<&str> = row.trim().split('|').collect();
    assert_eq!(f.len(), 4, "one row: {row}");
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].to_string(),
    )
}

/// The counters lassi last saved for its one session (sessions.json).
fn saved_counters(state_dir: &std::path::Path) -> (u64, u64) {
    let text = std::fs::read_to_string(state_dir.join("sessions.json"))
        .unwrap_or_else(|e| panic!("sessions.json: {e}"));
    let v: Value = serde_json::from_str(&text).expect("sessions.json");
    assert_eq!(v["version"], 2, "{v}");
    let k = &v["sessions"][0]["counters"];
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    println!(
        "the last save was {} ms old at the crash",
        wall.saturating_sub(v["saved_at"].as_u64().unwrap_or(0))
    );
    (
        k["octets_in"].as_u64().expect("octets_in"),
        k["octets_out"].as_u64().expect("octets_out"),
    )
}

/// Issue 10: lassi is killed (SIGKILL) during a RADIUS outage while the
/// guest downloads, and started again before RADIUS comes back. The guest
/// is online again without logging in, its session keeps its id, every
/// record arrives once and in order with octets that never go back, and
/// the radacct row counts what the client's kernel counted (less what the
/// crash lost: counting since lassi's last save, measured here).
#[test]
fn sigkill_during_an_outage_while_downloading_keeps_the_session() {
    let (mut w, pg) = world_with_sql("");
    let c = w.lab.client(1);
    let _web = w.must("upstream", w.lab.start_upstream());
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "bob");
    let before = ip_bytes(c);
    w.record(&sid, "Interim-Update", Duration::from_secs(10));
    stop_when_acknowledged(&mut w.fr, &w.lassi);
    let spooled = wait_until(Duration::from_secs(20), || (w.spooled() >= 2).then_some(()));
    if spooled.is_none() {
        w.fail("nothing spooled while FreeRADIUS was down");
    }
    // A small receive buffer, so curl's --limit-rate paces the wire too
    // (the default 32 MB maximum would take the whole file in one burst).
    w.must(
        "tcp_rmem",
        c.ns().sysctl("net.ipv4.tcp_rmem", "4096 131072 262144"),
    );
    let lassi = &mut w.lassi;
    let (at_crash, saved) = std::thread::scope(|s| {
        // 24 MB at 3 MB/s: the download spans the crash.
        let dl = s.spawn(|| {
            c.curl(&[
                "--limit-rate",
                "3M",
                "--max-time",
                "60",
                &format!("http://{WEB}/bytes/24000000"),
            ])
        });
        std::thread::sleep(Duration::from_secs(3));
        lassi.crash();
        // Nothing moves while lassi is down: these are the client's counts
        // at the crash, and the file holds what lassi last saved.
        let at_crash = ip_bytes(c);
        let saved = saved_counters(lassi.state_dir());
        lassi
            .start_again()
            .unwrap_or_else(|e| panic!("lassi after SIGKILL: {e}"));
        let back = std::time::Instant::now();
        let r = c
            .curl(&["--max-time", "5", &format!("http://{WEB}/after-crash")])
            .expect("curl");
        assert!(
            r.ok(),
            "offline after the restart: {r:?}\n{}",
            lassi.log_tail(30)
        );
        println!(
            "guest online {:?} after lassi started again",
            back.elapsed()
        );
        match dl.join().expect("download thread") {
            Ok(r) => println!(
                "the download across the crash: {} B, code {}",
                r.body.len(),
                r.http_code
            ),
            Err(e) => println!("the download across the crash failed: {e}"),
        }
        (at_crash, saved)
    });
    assert_eq!(w.state(c), "authorized");
    assert_eq!(w.session(c)["session_id"].as_str(), Some(sid.as_str()));
    w.fr.start()
        .unwrap_or_else(|e| panic!("restarting FreeRADIUS: {e}"));
    let drained = wait_until(Duration::from_secs(40), || (w.spooled() == 0).then_some(()));
    if drained.is_none() {
        w.fail("the spool did not drain");
    }
    let after = ip_bytes(c);
    w.logout(c);
    let stop = w.record(&sid, "Stop", Duration::from_secs(15));
    assert_eq!(stop.terminate_cause(), Some("User-Request"));
    let recs = w.fr.session_records(&sid);
    // One Start, one Stop, Interims every 5 s, none twice, octets never
    // going back: across the outage and the crash.
    assert_complete(&recs, 5);
    let all = w.fr.detail();
    assert_eq!(
        with_status(&all, "Accounting-On"),
        1,
        "no Accounting-On after the restart (it would close the session)"
    );
    assert!(
        all.iter()
            .all(|r| r.status() != "Start" || r.session_id() == Some(sid.as_str())),
        "no new session"
    );
    // What the crash lost: the client's count at the crash less lassi's
    // last saved count.
    let lost_out = (at_crash.1 - before.1).saturating_sub(saved.1);
    let lost_in = (at_crash.0 - before.0).saturating_sub(saved.0);
    let (kin, kout) = (after.0 - before.0, after.1 - before.1);
    let (rin, rout, cause) = radacct_row(&w, &pg, &sid);
    assert_eq!(cause, "User-Request");
    assert_eq!((rin, rout), (stop.input_octets(), stop.output_octets()));
    println!(
        "client kernel in/out {kin}/{kout}; radacct {rin}/{rout}; lost by the crash {lost_in}/{lost_out} \
         (the last save before it); radacct + lost vs kernel {:+.3} % / {:+.3} %; {} records",
        100.0 * ((rin + lost_in) as f64 / kin as f64 - 1.0),
        100.0 * ((rout + lost_out) as f64 / kout as f64 - 1.0),
        recs.len()
    );
    assert!(rout > 1_000_000, "the download was counted: {rout}");
    assert!(
        (0.99..1.01).contains(&((rout + lost_out) as f64 / kout as f64)),
        "{rout} + {lost_out} vs {kout}"
    );
    assert!(
        (0.99..1.01).contains(&((rin + lost_in) as f64 / kin as f64)),
        "{rin} + {lost_in} vs {kin}"
    );
}

/// Issue 10: a clean restart is no Stop/Start churn. FreeRADIUS sees one
/// Start and one Stop for the session, and Session-Timeout (user `long`:
/// 20 s, long enough to span the restart) ends it at the original time, by
/// the Stop's Acct-Session-Time.
#[test]
fn clean_restart_continues_the_session_and_its_timeout() {
    let mut w = World::new(1, "");
    let c = w.lab.client(1);
    let _web = w.must("upstream", w.lab.start_upstream());
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "long");
    w.record(&sid, "Start", Duration::from_secs(5));
    let r = w.must(
        "curl",
        c.curl(&[format!("http://{WEB}/bytes/2000000").as_str()]),
    );
    assert!(r.ok(), "{r:?}");
    let first = w.record(&sid, "Interim-Update", Duration::from_secs(10));
    w.lassi
        .restart()
        .unwrap_or_else(|e| panic!("restarting lassi: {e}"));
    assert_eq!(w.state(c), "authorized", "{}", w.lassi.log_tail(20));
    assert_eq!(w.session(c)["session_id"].as_str(), Some(sid.as_str()));
    let r = w.must(
        "curl",
        c.curl(&[format!("http://{WEB}/bytes/1000000").as_str()]),
    );
    assert!(r.ok(), "offline after the restart: {r:?}");
    let stop = w.record(&sid, "Stop", Duration::from_secs(30));
    assert_eq!(stop.terminate_cause(), Some("Session-Timeout"));
    let t = stop.session_time().unwrap();
    assert!(
        (20..=21).contains(&t),
        "ended at t={t}, not at the original 20 s"
    );
    assert!(stop.output_octets() > first.output_octets() + 1_000_000);
    let recs = w.fr.session_records(&sid);
    assert_complete(&recs, 5);
    let all = w.fr.detail();
    assert_eq!(with_status(&all, "Start"), 1, "{all:#?}");
    assert_eq!(with_status(&all, "Stop"), 1, "{all:#?}");
    assert_eq!(
        with_status(&all, "Accounting-Off"),
        0,
        "no Accounting-Off at a stop that keeps sessions"
    );
    println!(
        "clean restart: {} records for one session, Stop t={t} cause Session-Timeout",
        recs.len()
    );
}

/// Issue 10: a start later than `session.restart_grace` after a clean stop
/// closes the kept session: a NAS-Reboot Stop dated at the stop (its
/// Acct-Delay-Time covers the time lassi was away) with the counters of the
/// stop, then a new session for the guest, who stays online.
#[test]
fn start_after_the_grace_sends_the_stop_dated_at_the_shutdown() {
    let mut w = World::new(1, "[session]\nrestart_grace = 1\n");
    let c = w.lab.client(1);
    let _web = w.must("upstream", w.lab.start_upstream());
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "bob");
    let r = w.must(
        "curl",
        c.curl(&[format!("http://{WEB}/bytes/1000000").as_str()]),
    );
    assert!(r.ok(), "{r:?}");
    w.lassi.stop();
    let kept = w.fr.session_records(&sid);
    assert!(
        kept.iter().all(|r| r.status() != "Stop"),
        "a clean stop keeps the session: {kept:#?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    w.lassi
        .start_again()
        .unwrap_or_else(|e| panic!("lassi: {e}"));
    let stop = w.record(&sid, "Stop", Duration::from_secs(10));
    assert_eq!(stop.terminate_cause(), Some("NAS-Reboot"));
    let delay: u64 = stop
        .get("Acct-Delay-Time")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    assert!(delay >= 3, "dated at the stop, sent {delay} s later");
    assert!(stop.output_octets() > 1_000_000, "{stop:?}");
    let recs = w.fr.session_records(&sid);
    assert_complete(&recs, 5);
    let new_sid = w.session(c)["session_id"].as_str().unwrap().to_string();
    assert_ne!(new_sid, sid);
    assert_eq!(w.state(c), "authorized", "the guest stays online");
    w.record(&new_sid, "Start", Duration::from_secs(10));
    println!(
        "Stop after the grace: delay {delay} s, out {}",
        stop.output_octets()
    );
}

/// RFC 5997: a server that went silent is probed with Status-Server, and
/// its first answer brings it back, not the spool's 10 s retry timer. Judged
/// by what FreeRADIUS saw: after its restart a Status-Server from lassi
/// arrives before the spooled Stop, which then arrives once.
#[test]
fn dead_server_is_probed_with_status_server_and_used_again_at_its_answer() {
    let lab = Lab::new(LabOptions::default()).unwrap_or_else(|e| panic!("lab: {e}"));
    let mut opts = FreeRadiusOptions::lab(USERS);
    opts.debug = true; // the log then names every packet received
    let fr = must(&lab, "freeradius", lab.start_freeradius(opts));
    let mut w = World::with(lab, fr, "[radius]\nstatus_interval = 1\n");
    let c = w.lab.client(1);
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "bob");
    w.record(&sid, "Start", Duration::from_secs(10));
    stop_when_acknowledged(&mut w.fr, &w.lassi);
    // The Stop finds no server: resent, the server declared dead, spooled.
    w.must("lassi logout", w.lassi.logout(c.mac()));
    let outage = wait_until(Duration::from_secs(20), || {
        w.lassi
            .log()
            .contains("no RADIUS server answered")
            .then_some(())
    });
    if outage.is_none() {
        w.fail("lassi never noticed the outage");
    }
    let log_before = w.fr.log().len();
    let t_back = std::time::Instant::now();
    w.fr.start()
        .unwrap_or_else(|e| panic!("restarting FreeRADIUS: {e}"));
    let stop = w.record(&sid, "Stop", Duration::from_secs(30));
    let took = t_back.elapsed();
    println!("server back at {took:?} after its restart (probe interval 1 s, spool retry 10 s)");
    assert_eq!(stop.terminate_cause(), Some("Admin-Reset"));
    let log = w.fr.log();
    let after = &log[log_before.min(log.len())..];
    let status = after.find("Received Status-Server");
    let acct = after.find("Received Accounting-Request");
    match (status, acct) {
        (Some(s), Some(a)) if s < a => {}
        _ => w.fail(&format!(
            "expected a Status-Server before the spooled Stop, got {status:?} / {acct:?}"
        )),
    }
    assert!(
        w.lassi.log().contains("server answers again"),
        "{}",
        w.lassi.log_tail(20)
    );
    let stops =
        w.fr.session_records(&sid)
            .iter()
            .filter(|r| r.status() == "Stop")
            .count();
    assert_eq!(stops, 1, "{:#?}", w.fr.session_records(&sid));
}

#[test]
fn coa_changes_bandwidth_and_disconnect_ends_the_session() {
    let w = World::new(1, "");
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "free");
    let coa =
        |secret: &str, attrs: &str| w.must("radclient", w.fr.radclient(COA, "coa", secret, attrs));
    let out = coa(
        COA_SECRET,
        &format!("Acct-Session-Id = {sid}, User-Name = free, WISPr-Bandwidth-Max-Down = 4000000, Message-Authenticator = 0x00"),
    );
    assert!(out.contains("Received CoA-ACK"), "{out}");
    assert_eq!(w.session(c)["limits"]["bandwidth_down_bps"], 4_000_000);
    let (down, _) = iperf(&w.lab, c, true, None);
    println!(
        "after CoA WISPr-Bandwidth-Max-Down 4 Mbit/s: {:.2} Mbit/s",
        down / 1e6
    );
    assert!((0.85..=1.15).contains(&(down / 4e6)), "{down}");
    // A wrong secret, and the right secret from an address that is not a
    // CoA client (the gateway's own): no answer, nothing changes.
    let out = coa(
        "wrongsecret",
        "User-Name = free, WISPr-Bandwidth-Max-Down = 1000000, Message-Authenticator = 0x00",
    );
    assert!(out.contains("No reply"), "{out}");
    let out = w.must(
        "radclient from the gateway",
        radclient(
            Some(w.lab.gw()),
            COA,
            "disconnect",
            COA_SECRET,
            "User-Name = free, Message-Authenticator = 0x00",
        ),
    );
    assert!(out.contains("No reply"), "{out}");
    let s = w.session(c);
    assert_eq!(s["state"], "authorized");
    assert_eq!(s["limits"]["bandwidth_down_bps"], 4_000_000);
    // Disconnect ends it, with Admin-Reset.
    let out = w.must(
        "radclient disconnect",
        w.fr.radclient(
            COA,
            "disconnect",
            COA_SECRET,
            &format!("Acct-Session-Id = {sid}, Message-Authenticator = 0x00"),
        ),
    );
    assert!(out.contains("Received Disconnect-ACK"), "{out}");
    assert_eq!(w.state(c), "unauthorized");
    let stop = w.record(&sid, "Stop", Duration::from_secs(10));
    assert_eq!(stop.terminate_cause(), Some("Admin-Reset"));
}

/// Sends a Disconnect-Request for `user` from a fresh UDP socket (a new
/// source port each time), or the bytes saved in `file` again; prints ACK,
/// NAK or "no reply". Python's own MD5, so the packet is not lassi's making.
const DISCONNECT_PY: &str = r#"
import hashlib, socket, struct, sys, time
mode, file, target, secret = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
if mode == "replay":
    pkt = open(file, "rb").read()
else:
    user, stamp = sys.argv[5].encode(), int(time.time()) + int(sys.argv[6])
    attrs = bytes([1, 2 + len(user)]) + user + bytes([55, 6]) + struct.pack(">I", stamp)
    head = struct.pack(">BBH", 40, int(time.time() * 1000) % 256, 20 + len(attrs))
    auth = hashlib.md5(head + bytes(16) + attrs + secret).digest()
    pkt = head + auth + attrs
    open(file, "wb").write(pkt)
host, port = target.split(":")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(pkt, (host, int(port)))
try:
    r = s.recv(4096)
    print({41: "ACK", 42: "NAK"}.get(r[0], "code %d" % r[0]))
except socket.timeout:
    print("no reply")
"#;

/// RFC 5176 §6.3: a Disconnect replayed (the same bytes from another port)
/// or carrying a stale Event-Timestamp is dropped; a fresh one still works.
#[test]
fn replayed_or_stale_disconnect_is_dropped() {
    let w = World::new(1, "");
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    let saved = w.lab.dir().join("disconnect.bin");
    let send = |mode: &str, args: &[&str]| {
        let mut argv = vec!["python3", "-c", DISCONNECT_PY, mode];
        let file = saved.display().to_string();
        argv.extend([file.as_str(), COA, COA_SECRET]);
        argv.extend(args);
        let out = w.must("python disconnect", w.lab.upstream().run(&argv));
        out.stdout.trim().to_string()
    };
    let first = w.login_ok(c, "bob");
    assert_eq!(send("send", &["bob", "0"]), "ACK");
    assert_eq!(w.state(c), "unauthorized");
    let second = w.login_ok(c, "bob");
    // The captured request again, from another port: no answer, no effect.
    assert_eq!(send("replay", &[]), "no reply");
    // A new request stamped an hour ago: the same.
    assert_eq!(send("send", &["bob", "-3600"]), "no reply");
    assert_eq!(w.state(c), "authorized", "a replay logged the guest out");
    // A fresh, current one still ends the session.
    assert_eq!(send("send", &["bob", "0"]), "ACK");
    assert_eq!(w.state(c), "unauthorized");
    for sid in [&first, &second] {
        let stop = w.record(sid, "Stop", Duration::from_secs(10));
        assert_eq!(stop.terminate_cause(), Some("Admin-Reset"));
    }
}

#[test]
fn postgresql_radacct_row_for_the_session() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let pg = must(&lab, "postgres", Postgres::start(&lab.dir().join("pg")));
    let sql = must(&lab, "schema", pg.create_radius_db("radius"));
    let mut opts = FreeRadiusOptions::lab(USERS);
    opts.sql = Some(sql);
    let fr = must(&lab, "freeradius", lab.start_freeradius(opts));
    let w = World::with(lab, fr, "");
    let c = w.client(1);
    let _web = w.must("upstream", w.lab.start_upstream());
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "bob");
    let r = w.must(
        "curl",
        c.curl(&[format!("http://{WEB}/bytes/5000000").as_str()]),
    );
    assert_eq!(r.body.len(), 5_000_000);
    w.logout(c);
    let stop = w.record(&sid, "Stop", Duration::from_secs(10));
    let q = format!(
        "SELECT username, acctinputoctets, acctoutputoctets, acctterminatecause, acctstoptime IS NOT NULL, acctsessiontime FROM radacct WHERE acctsessionid = '{sid}'"
    );
    let row = wait_until(Duration::from_secs(10), || {
        pg.psql("radius", &q).ok().filter(|r| r.contains("|t|"))
    })
    .unwrap_or_else(|| {
        w.fail(&format!(
            "no closed radacct row: {:?}",
            pg.psql("radius", &q)
        ))
    });
    println!("radacct: {}", row.trim());
    let f: Vec<&str> = row.trim().split('|').collect();
    assert_eq!(f.len(), 6, "one row: {row}");
    assert_eq!(f[0], "bob");
    assert_eq!(f[1], stop.input_octets().to_string());
    assert_eq!(f[2], stop.output_octets().to_string());
    assert!(stop.output_octets() > 5_000_000);
    assert_eq!(f[3], "User-Request");
    assert_eq!(f[5], stop.session_time().unwrap().to_string());
}
