//! The portal under the attacks of issue 8 (findings 3, 4, 5 and the
//! portal half of 9), with real peers: a slow-POST flood from 17 leases
//! (Python sockets), 500 wrong CHAP logins against FreeRADIUS, and hostile
//! pages on "the internet" opened in headless Chromium. Every figure is
//! printed before it is checked, so a run against an older lassi
//! (`LASSI_BIN=…`) shows the "before". They need root.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lassi_lab::must;
use lassi_lab::netns::ExecOptions;
use lassi_lab::radius::FreeRadiusOptions;
use lassi_lab::{CurlResult, Guest, Lab, LabOptions, LassiHandle, Proc};
use serde_json::Value;

const PORTAL: &str = "http://10.1.0.1:3990";
const WEB: &str = "http://198.51.100.10";
/// The system Python (the attack scripts need nothing beyond its stdlib).
const PYTHON: &str = "/usr/bin/python3";

fn lab(clients: usize) -> Lab {
    Lab::new(LabOptions {
        clients,
        ..LabOptions::default()
    })
    .unwrap_or_else(|e| panic!("building the lab: {e}"))
}

fn state_of(lassi: &LassiHandle, client: &Guest) -> String {
    let v = lassi.sessions_json().expect("lassi sessions --json");
    v.as_array()
        .and_then(|a| a.iter().find(|c| c["mac"] == client.mac().to_string()))
        .and_then(|c| c["state"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The portal counters of `lassi status` (empty on a lassi without them).
fn portal_counters(lassi: &LassiHandle) -> Value {
    lassi
        .ctl(&["status"])
        .ok()
        .and_then(|o| serde_json::from_str::<Value>(&o.stdout).ok())
        .map(|v| v["portal"].clone())
        .unwrap_or(Value::Null)
}

fn page_field(html: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let i = html.find(&key)? + key.len();
    Some(html[i..].split('"').next()?.to_string())
}

/// Resident memory of `pid`, KiB.
fn vm_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Holds `n` POSTs to the portal open from one client, each announcing
/// `length` bytes and sending one every 3 s; a connection the portal ends
/// is replaced. Stops by itself after `secs`; prints what it saw.
const SLOW_POST: &str = r#"
import socket, sys, time, select
host, port, n, secs, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
head = ("POST /logon HTTP/1.1\r\nHost: %s:%d\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: %d\r\n\r\n" % (host, port, length)).encode()
end = time.time() + secs
socks, opened, failed, ended, held = [], 0, 0, 0, 0
while time.time() < end:
    while len(socks) < n:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, port))
            s.sendall(head)
            s.setblocking(False)
            socks.append(s)
            opened += 1
        except OSError:
            failed += 1
            s.close()
            break
    time.sleep(min(3, max(0, end - time.time())))
    alive = []
    for s in socks:
        try:
            if select.select([s], [], [], 0)[0]:
                s.recv(4096)
                raise OSError("ended by the portal")
            s.send(b"a")
            alive.append(s)
        except OSError:
            ended += 1
            s.close()
    socks = alive
    held = max(held, len(socks))
print("opened=%d failed=%d ended=%d held=%d" % (opened, failed, ended, held), flush=True)
"#;

/// Parses the `key=value` summary line an attack script prints.
fn summary(log: &str, key: &str) -> u64 {
    log.lines()
        .rev()
        .flat_map(|l| l.split_whitespace())
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One honest click-through login, logout first if needed. Every request
/// has curl's own 2 s limit. Returns the time it took or what failed.
fn honest_login(client: &Guest, web: &lassi_lab::UpstreamServer) -> Result<Duration, String> {
    let t = Instant::now();
    let curl = |args: &[&str]| -> Result<CurlResult, String> {
        let mut a = vec!["--max-time", "2"];
        a.extend_from_slice(args);
        let r = client.curl(&a).map_err(|e| e.to_string())?;
        if r.exit_code != 0 {
            return Err(format!("curl {args:?}: exit {} {}", r.exit_code, r.stderr));
        }
        Ok(r)
    };
    let page = curl(&[&format!("{PORTAL}/")])?;
    let chal = page_field(&page.text(), "challenge").ok_or("no login page")?;
    let ok = curl(&[
        "-d",
        &format!("challenge={chal}&accept=1"),
        &format!("{PORTAL}/logon"),
    ])?;
    if ok.http_code != 302 {
        return Err(format!("login answered {}", ok.http_code));
    }
    let took = t.elapsed();
    let before = web.requests_to("/welcome").len();
    let online = curl(&[&format!("{WEB}/welcome")])?;
    if !online.ok() || web.requests_to("/welcome").len() != before + 1 {
        return Err(format!("not online after login: {online:?}"));
    }
    curl(&["-X", "POST", &format!("{PORTAL}/logoff")])?;
    Ok(took)
}

/// Samples lassi's VmRSS until stopped; returns the peak, KiB.
fn sample_rss(pid: i32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(vm_rss_kib(pid));
            std::thread::sleep(Duration::from_millis(200));
        }
        peak
    })
}

const SLOW_POSTS_EACH: usize = 16;
const FLOOD_SECS: u64 = 30;
/// The attack of the issue announced 16,000 bytes; lassi now answers that
/// with `413` at once, so the flood announces what still fits (4,000) to
/// hold each connection as long as lassi lets it.
const BODY_LENGTH: usize = 4000;
/// How much lassi's resident memory may grow during the flood. A full
/// table is 256 connections of about 24 KiB each (hyper's 8 KiB read and
/// write buffers and the task): the fixed portal grows by 4.7 MiB with 17
/// leases and 6.6 MiB with a full table from 40. The unfixed one grew by
/// 12.8 MiB in this test's debug build (14 MiB, 5.7 to 19.8, in the
/// release build of the issue).
const RSS_GROWTH_BOUND_KIB: u64 = 10 * 1024;
/// Log lines lassi may write during the flood (the honest guest's logins
/// and logouts write 12; a full table adds a warning per 10 s; the unfixed
/// portal wrote one WARN per refused connection).
const LOG_LINES_BOUND: usize = 40;

/// `attackers` leases, each holding [`SLOW_POSTS_EACH`] slow POSTs for
/// [`FLOOD_SECS`], while one more guest logs in three times; prints and
/// checks what the peers saw. Returns the portal counters.
fn slow_post_flood(attackers: usize) -> Value {
    let lab = lab(attackers + 1);
    let web = must(&lab, "upstream", lab.start_upstream());
    let mut lassi = must(&lab, "lassi", lab.start_lassi(""));
    for c in lab.clients() {
        must(&lab, "udhcpc", c.udhcpc());
    }
    let pid = lassi.pid().expect("lassi pid");
    let rss_before = vm_rss_kib(pid);
    let lines_before = lassi.log().lines().count();
    let script = lab.dir().join("slow_post.py");
    std::fs::write(&script, SLOW_POST).unwrap();
    let mut procs: Vec<Proc> = lab.clients()[..attackers]
        .iter()
        .map(|c| {
            let log = lab.dir().join(format!("slow-post-{}.log", c.index()));
            let argv = [
                PYTHON.to_string(),
                script.display().to_string(),
                "10.1.0.1".into(),
                "3990".into(),
                SLOW_POSTS_EACH.to_string(),
                FLOOD_SECS.to_string(),
                BODY_LENGTH.to_string(),
            ];
            let spawned = c
                .ns()
                .spawn("slow-post", &argv, &log, &ExecOptions::default());
            must(&lab, "slow POST attacker", spawned)
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let rss = sample_rss(pid, stop.clone());
    // Let every attacker open its connections and start trickling.
    std::thread::sleep(Duration::from_secs(8));
    let honest = lab.client(attackers + 1);
    let logins: Vec<_> = (0..3).map(|_| honest_login(honest, &web)).collect();
    for p in &mut procs {
        p.wait_timeout(Duration::from_secs(FLOOD_SECS + 20));
    }
    stop.store(true, Ordering::Relaxed);
    let rss_peak = rss.join().unwrap();
    let logs: Vec<String> = procs.iter().map(|p| p.log()).collect();
    let total = |k: &str| logs.iter().map(|l| summary(l, k)).sum::<u64>();
    let (opened, held) = (total("opened"), total("held"));
    let log = lassi.log();
    let new_lines: Vec<&str> = log.lines().skip(lines_before).collect();
    let warns = new_lines.iter().filter(|l| l.contains("WARN")).count();
    let counters = portal_counters(&lassi);
    println!(
        "slow-POST flood: {attackers} leases x {SLOW_POSTS_EACH} POSTs for {FLOOD_SECS} s: \
         {opened} connections opened, {held} held at most at once (sum of per-lease peaks)\n\
         honest logins during the flood: {logins:?}\n\
         lassi VmRSS {rss_before} KiB before, {rss_peak} KiB peak; {} log lines ({warns} WARN) \
         during the flood\nportal counters: {counters}",
        new_lines.len(),
    );
    assert!(
        held >= (attackers * 4) as u64,
        "the flood did not hold connections: {logs:?}"
    );
    for (i, l) in logins.iter().enumerate() {
        assert!(l.is_ok(), "honest login {} of 3 failed: {l:?}", i + 1);
    }
    assert!(
        rss_peak < rss_before + RSS_GROWTH_BOUND_KIB,
        "VmRSS {rss_before} -> {rss_peak} KiB"
    );
    assert!(
        new_lines.len() <= LOG_LINES_BOUND,
        "{} log lines:\n{}",
        new_lines.len(),
        lassi.log_tail(30)
    );
    assert!(lassi.is_running());
    counters
}

#[test]
fn slow_posts_from_17_leases_do_not_lock_out_an_honest_login() {
    // Finding 3 as found: 17 leases (17 MACs) x 16 slow POSTs. Each MAC
    // gets its share of 8; the rest is refused at once.
    let c = slow_post_flood(17);
    assert!(c["connections_refused"].as_u64() > Some(0), "{c}");
}

#[test]
fn a_full_portal_still_admits_a_newcomer() {
    // 40 MACs x 8 connections is more than the 256 slots: the table is
    // full, and the honest guest gets in by closing a biggest holder's
    // oldest connection.
    let c = slow_post_flood(40);
    assert!(c["connections_evicted"].as_u64() > Some(0), "{c}");
}

const RADIUS_USERS: &str = r#"
bob	Cleartext-Password := "hello"
"#;

/// `n` wrong CHAP logins through CoovaChilli's JSON API on one kept-alive
/// connection, each with the challenge of the previous answer, as fast as
/// they go. Prints how the answers read.
const WRONG_LOGINS: &str = r#"
import http.client, json, hashlib, sys, time
host, port, n, user = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection(host, port, timeout=10)
def get(path):
    c.request("GET", path)
    r = c.getresponse()
    return r.status, json.loads(r.read())
_, v = get("/json/status")
chal = v["challenge"]
wrong = wait = other = not_ok = 0
msg = ""
t0 = time.time()
for i in range(n):
    resp = hashlib.md5(b"\x00" + b"nope%d" % i + bytes.fromhex(chal)).hexdigest()
    status, v = get("/json/logon?username=%s&response=%s" % (user, resp))
    msg = v.get("message", "")
    if status != 200 or v.get("clientState") != 0:
        not_ok += 1
    if "wait" in msg:
        wait += 1
    elif "Wrong" in msg:
        wrong += 1
    else:
        other += 1
        print("other answer: %r" % v, flush=True)
    chal = v.get("challenge", chal)
print("secs=%.2f" % (time.time() - t0))
print("wrong=%d wait=%d other=%d not_ok=%d" % (wrong, wait, other, not_ok))
print("last=%s" % msg.replace(" ", "_"), flush=True)
"#;

const WRONG_ATTEMPTS: usize = 500;
/// Attempts FreeRADIUS may see out of the 500: the five free ones and one
/// per doubling back-off while the flood lasts.
const RADIUS_SEES_AT_MOST: usize = 10;

#[test]
fn five_hundred_wrong_logins_barely_reach_radius_and_are_all_answered() {
    let lab = lab(1);
    let fr = must(
        &lab,
        "freeradius",
        lab.start_freeradius(FreeRadiusOptions::lab(RADIUS_USERS)),
    );
    let lassi = must(
        &lab,
        "lassi",
        lab.start_lassi(&lassi_lab::radius::lassi_toml()),
    );
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());
    let script = lab.dir().join("wrong_logins.py");
    std::fs::write(&script, WRONG_LOGINS).unwrap();
    let out = must(
        &lab,
        "wrong logins",
        client.ns().run_with(
            &[
                PYTHON,
                &script.display().to_string(),
                "10.1.0.1",
                "3990",
                &WRONG_ATTEMPTS.to_string(),
                "bob",
            ],
            &ExecOptions {
                timeout: Duration::from_secs(120),
                ..ExecOptions::default()
            },
        ),
    );
    let text = out.stdout.clone();
    let rejected_by_radius = fr.log().matches("Login incorrect").count();
    println!(
        "{WRONG_ATTEMPTS} wrong CHAP logins: {}\nFreeRADIUS rejected {rejected_by_radius}\n\
         portal counters: {}\n{}",
        text.trim(),
        portal_counters(&lassi),
        out.stderr
    );
    let (wrong, wait) = (summary(&text, "wrong"), summary(&text, "wait"));
    assert_eq!(
        (summary(&text, "other"), summary(&text, "not_ok")),
        (0, 0),
        "every attempt gets a JSON answer with clientState 0 and a message: {text}"
    );
    assert_eq!(wrong + wait, WRONG_ATTEMPTS as u64, "{text}");
    assert!(
        rejected_by_radius <= RADIUS_SEES_AT_MOST,
        "FreeRADIUS saw {rejected_by_radius}:\n{}",
        fr.log_tail(20)
    );
    assert!(rejected_by_radius >= 5, "{}", fr.log_tail(20));
    assert_eq!(
        rejected_by_radius as u64, wrong,
        "every wrong answer came from RADIUS"
    );
    // After the wait the answer named, the right password gets in.
    let last = text
        .lines()
        .find_map(|l| l.strip_prefix("last="))
        .unwrap_or_default()
        .replace('_', " ");
    let secs: u64 = last
        .split_whitespace()
        .skip_while(|w| *w != "wait")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait in the last answer: {last:?}"));
    std::thread::sleep(Duration::from_millis(secs * 1000 + 300));
    let page = must(&lab, "splash", client.curl(&[&format!("{PORTAL}/")]));
    let chal = page_field(&page.text(), "challenge").expect("login page");
    let r = must(
        &lab,
        "login",
        client.curl(&[
            "-d",
            &format!("challenge={chal}&username=bob&password=hello"),
            &format!("{PORTAL}/logon"),
        ]),
    );
    assert_eq!(r.http_code, 302, "{r:?}\n{}", lassi.log_tail(20));
    assert_eq!(state_of(&lassi, client), "authorized");
    assert!(fr.log().contains("Login OK: [bob"), "{}", fr.log_tail(10));
}

/// Opens `url` in headless Chromium in the client's namespace, lets its
/// scripts and navigations run (5 s of virtual time), and returns the DOM
/// it ended on.
fn chromium_visit(lab: &Lab, client: &Guest, url: &str) -> String {
    let dir = lab.dir().join(format!("chromium-{}", lab.next_seq()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = must(
        lab,
        "chromium",
        client.ns().run_with(
            &[
                "chromium".to_string(),
                "--headless".into(),
                "--no-sandbox".into(),
                "--disable-gpu".into(),
                "--disable-quic".into(),
                "--no-first-run".into(),
                "--disable-background-networking".into(),
                "--disable-component-update".into(),
                "--disable-sync".into(),
                "--disable-dev-shm-usage".into(),
                // Chromium alone blocks a public page's subresource requests
                // to private addresses (Local/Private Network Access); other
                // browsers do not, and neither may lassi count on it.
                "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessRespectPreflightResults".into(),
                format!("--user-data-dir={}", dir.join("profile").display()),
                "--virtual-time-budget=5000".into(),
                "--dump-dom".into(),
                url.to_string(),
            ],
            &ExecOptions {
                timeout: Duration::from_secs(60),
                env: vec![("HOME".into(), dir.display().to_string())],
                ..ExecOptions::default()
            },
        ),
    );
    out.stdout
}

fn local_users(lab: &Lab, extra: &str) -> String {
    let users = lab.dir().join("users");
    std::fs::write(&users, "alice plain:wonderland\nmallory plain:attacker\n").unwrap();
    format!(
        "[portal]\nauth = \"local\"\nusers_file = \"{}\"\n{extra}",
        users.display()
    )
}

fn curl_login(lab: &Lab, client: &Guest, user: &str, pw: &str) -> CurlResult {
    let page = must(lab, "splash", client.curl(&[&format!("{PORTAL}/")]));
    let chal = page_field(&page.text(), "challenge").expect("login page");
    must(
        lab,
        "login",
        client.curl(&[
            "-d",
            &format!("challenge={chal}&username={user}&password={pw}"),
            &format!("{PORTAL}/logon"),
        ]),
    )
}

/// Hostile pages on "the internet" that try to log the guest out.
const LOGOFF_PAGES: [(&str, &str); 3] = [
    (
        "/evil/navigate",
        r#"<!doctype html><meta name="referrer" content="no-referrer"><title>news</title>
<script>location.href = "http://10.1.0.1:3990/logoff";</script>"#,
    ),
    (
        "/evil/form",
        r#"<!doctype html><title>news</title>
<form method="post" action="http://10.1.0.1:3990/logoff"><input name="lang" value="en"></form>
<script>document.forms[0].submit();</script>"#,
    ),
    (
        "/evil/jsonp",
        r#"<!doctype html><title>news</title><p id="r">waiting</p>
<script>function cb(v) { document.getElementById("r").textContent = "state " + v.clientState; }</script>
<script src="http://10.1.0.1:3990/json/logoff?callback=cb"></script>"#,
    ),
];

#[test]
fn pages_on_the_internet_cannot_log_a_guest_out() {
    let lab = lab(1);
    let web = must(&lab, "upstream", lab.start_upstream());
    let lassi = must(&lab, "lassi", lab.start_lassi(&local_users(&lab, "")));
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());
    let r = curl_login(&lab, client, "alice", "wonderland");
    assert_eq!(r.http_code, 302, "{r:?}");
    assert_eq!(state_of(&lassi, client), "authorized");
    for (path, html) in LOGOFF_PAGES {
        web.serve_page(path, html);
        let dom = chromium_visit(&lab, client, &format!("{WEB}{path}"));
        let state = state_of(&lassi, client);
        let online = must(
            &lab,
            "web",
            client.curl(&["--max-time", "3", &format!("{WEB}/welcome")]),
        );
        println!(
            "{path}: the browser ended on {:?}; guest {state}, upstream {}",
            dom.chars().take(160).collect::<String>(),
            online.http_code
        );
        assert_eq!(
            web.requests_to(path).len(),
            1,
            "the browser did not open {path}"
        );
        assert_eq!(state, "authorized", "{path} logged the guest out");
        assert!(online.ok(), "{path}: the guest is offline: {online:?}");
    }
    let refused = portal_counters(&lassi)["cross_site_refused"].as_u64();
    println!("portal counters: {}", portal_counters(&lassi));
    assert_eq!(
        refused,
        Some(3),
        "each page's request reached lassi and was refused"
    );
}

/// A hostile page that tries to log a guest in as the attacker's account,
/// with the challenge JSONP would hand it if it could.
const LOGIN_PAGE: &str = r#"<!doctype html><title>free wifi</title>
<form method="post" action="http://10.1.0.1:3990/logon">
<input name="username" value="mallory"><input name="password" value="attacker">
<input name="challenge" value=""></form>
<script>
function cb(v) { document.forms[0].challenge.value = v.challenge || ""; document.forms[0].submit(); }
</script>
<script src="http://10.1.0.1:3990/json/status?callback=cb" onerror="cb({})"></script>"#;

#[test]
fn a_page_on_the_internet_cannot_log_a_guest_in_as_the_attacker() {
    let lab = lab(1);
    let web = must(&lab, "upstream", lab.start_upstream());
    // The attacker's page is reachable before login (a walled-garden host).
    let lassi = must(
        &lab,
        "lassi",
        lab.start_lassi(&local_users(&lab, "walled_garden = [\"198.51.100.10\"]\n")),
    );
    let client = lab.client(1);
    must(&lab, "udhcpc", client.udhcpc());
    web.serve_page("/evil/login", LOGIN_PAGE);
    let dom = chromium_visit(&lab, client, &format!("{WEB}/evil/login"));
    let state = state_of(&lassi, client);
    println!(
        "the browser ended on {:?}; guest {state:?}; portal counters {}",
        dom.chars().take(300).collect::<String>(),
        portal_counters(&lassi)
    );
    assert_eq!(web.requests_to("/evil/login").len(), 1);
    assert_ne!(
        state, "authorized",
        "the attacker's page logged the guest in"
    );
    assert!(dom.contains("another web site"), "{dom}");
    assert!(
        !lassi.log().contains("login accepted"),
        "{}",
        lassi.log_tail(10)
    );
    // The guest's own login still works.
    let r = curl_login(&lab, client, "alice", "wonderland");
    assert_eq!(r.http_code, 302, "{r:?}");
    assert_eq!(state_of(&lassi, client), "authorized");
}
