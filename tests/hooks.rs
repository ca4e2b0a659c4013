//! Connection hooks and log outputs end to end: lassi in the namespace lab
//! with a private FreeRADIUS (`crates/lassi-lab/src/radius.rs`), guests
//! logging in through the portal with curl, and scripts that write their
//! environment to files. FreeRADIUS's detail file is the judge: the
//! scripts' values must equal what accounting reported for the same
//! session. The syslog and JSON tests read what lassi wrote with their own
//! Unix datagram socket and from its stderr.
//! Root only; CI runs them (`tests/run-all`).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lassi_lab::gateway::{emit_toml, merge_toml};
use lassi_lab::must;
use lassi_lab::netns::wait_until;
use lassi_lab::portal::page_challenge;
use lassi_lab::radius::{self as radius, DetailRecord, FreeRadius, FreeRadiusOptions};
use lassi_lab::{unique_name, Guest, Lab, LabOptions, LassiHandle};

const PORTAL: &str = "http://10.1.0.1:3990";
const WEB: &str = "198.51.100.10";

const USERS: &str = r#"
bob	Cleartext-Password := "hello"
	Class = "cls-bob",
	Session-Timeout = 3600,
	Idle-Timeout = 900,
	Acct-Interim-Interval = 60,
	WISPr-Bandwidth-Max-Down = 50000000,
	Filter-Id = "std.user-bob"

sleeper	Cleartext-Password := "hello"

DEFAULT	Cleartext-Password := "hello"
"#;

/// A script that records its environment and arguments in `dir/NAME.ID`
/// (ID = Acct-Session-Id, or the device for ipup/ipdown), then, for user
/// `sleeper`, hangs with a child in the background.
fn script(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let body = format!(
        "#!/bin/sh\nid=${{ACCT_SESSION_ID:-$1}}\nenv > {d}/{name}.$id.tmp\necho \"ARG1=$1\" >> {d}/{name}.$id.tmp\nmv {d}/{name}.$id.tmp {d}/{name}.$id\necho \"{name} ran for $id\"\nif [ \"$USER_NAME\" = sleeper ]; then sleep 600 & echo $! > {d}/sleeper.pid; wait; fi\n",
        d = dir.display()
    );
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// The environment a script recorded (waits up to `within` for the file).
fn recorded(dir: &Path, name: &str, id: &str, within: Duration) -> Option<HashMap<String, String>> {
    let path = dir.join(format!("{name}.{id}"));
    let text = wait_until(within, || std::fs::read_to_string(&path).ok())?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

struct World {
    lassi: LassiHandle,
    fr: FreeRadius,
    lab: Lab,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        // lassi first: its ipdown still writes into the directory.
        self.lassi.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    fn new() -> World {
        let lab = Lab::new(LabOptions {
            clients: 2,
            ..LabOptions::default()
        })
        .unwrap_or_else(|e| panic!("building the lab: {e}"));
        let fr = must(
            &lab,
            "freeradius",
            lab.start_freeradius(FreeRadiusOptions::lab(USERS)),
        );
        let dir = std::env::temp_dir().join(unique_name("hooks"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cfg: toml::Table = radius::lassi_toml().parse().unwrap();
        let hooks = format!(
            "[hooks]\nconup = {:?}\ncondown = {:?}\nipup = {:?}\nipdown = {:?}\ntimeout = 3\n",
            script(&dir, "conup").display().to_string(),
            script(&dir, "condown").display().to_string(),
            script(&dir, "ipup").display().to_string(),
            script(&dir, "ipdown").display().to_string(),
        );
        merge_toml(&mut cfg, hooks.parse().unwrap());
        let lassi = must(&lab, "lassi", lab.start_lassi(&emit_toml(&cfg)));
        World {
            lassi,
            fr,
            lab,
            dir,
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- detail ---\n{:#?}\n{}",
            self.fr.detail(),
            self.lab.logs_report(60)
        )
    }

    fn session_id(&self, client: &Guest) -> Option<String> {
        let v = self.lassi.sessions_json().ok()?;
        let c = v
            .as_array()?
            .iter()
            .find(|c| c["mac"] == client.mac().to_string())?;
        (c["state"] == "authorized").then(|| c["session_id"].as_str().unwrap_or("").to_string())
    }

    /// Logs in on lassi's own pages; the session id on success.
    fn login(&self, client: &Guest, user: &str) -> String {
        let page = client.curl(&[format!("{PORTAL}/").as_str()]).unwrap();
        let chal = page_challenge(&page.text());
        let r = client
            .curl(&[
                "--data-urlencode",
                &format!("username={user}"),
                "--data-urlencode",
                "password=hello",
                "-d",
                &format!("challenge={chal}"),
                &format!("{PORTAL}/login"),
            ])
            .unwrap();
        match (r.http_code, self.session_id(client)) {
            (302, Some(sid)) => sid,
            _ => self.fail(&format!("{user} could not log in: {r:?}")),
        }
    }

    fn record(&self, sid: &str, status: &str) -> DetailRecord {
        self.fr
            .wait_for_record(Duration::from_secs(10), |r| {
                r.session_id() == Some(sid) && r.status() == status
            })
            .unwrap_or_else(|| self.fail(&format!("no {status} for session {sid}")))
    }

    fn env(&self, name: &str, id: &str) -> HashMap<String, String> {
        recorded(&self.dir, name, id, Duration::from_secs(10))
            .unwrap_or_else(|| self.fail(&format!("{name} did not run for {id}")))
    }
}

fn num(env: &HashMap<String, String>, k: &str) -> u64 {
    env.get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{k} missing or not a number in {env:?}"))
}

#[test]
fn conup_condown_env_matches_accounting_and_hung_scripts_are_killed() {
    let w = World::new();
    let (c1, c2) = (w.lab.client(1), w.lab.client(2));
    // ipup ran once the TUN device was up, with it as DEV and $1.
    let up = w.env("ipup", "lassi0");
    assert_eq!(up.get("DEV").map(String::as_str), Some("lassi0"));
    assert_eq!(up.get("ARG1").map(String::as_str), Some("lassi0"));
    assert_eq!(up.get("ADDR").map(String::as_str), Some("10.1.0.1"));
    assert_eq!(up.get("MASK").map(String::as_str), Some("255.255.255.0"));
    assert_eq!(up.get("UAMPORT").map(String::as_str), Some("3990"));
    let _web = w
        .lab
        .start_upstream()
        .unwrap_or_else(|e| w.fail(&format!("upstream: {e}")));
    c1.udhcpc()
        .unwrap_or_else(|e| w.fail(&format!("udhcpc: {e}")));
    let sid = w.login(c1, "bob");
    let start = w.record(&sid, "Start");
    let conup = w.env("conup", &sid);
    for (var, attr) in [
        ("USER_NAME", "User-Name"),
        ("FRAMED_IP_ADDRESS", "Framed-IP-Address"),
        ("CALLING_STATION_ID", "Calling-Station-Id"),
        ("CALLED_STATION_ID", "Called-Station-Id"),
        ("NAS_ID", "NAS-Identifier"),
        ("NAS_IP_ADDRESS", "NAS-IP-Address"),
        ("ACCT_SESSION_ID", "Acct-Session-Id"),
    ] {
        assert_eq!(
            conup.get(var).map(String::as_str),
            start.get(attr),
            "{var} vs {attr}"
        );
    }
    assert_eq!(conup["CALLING_STATION_ID"], "02-00-00-00-00-01");
    assert_eq!(conup["CLASS"], "cls-bob");
    assert_eq!(num(&conup, "SESSION_TIMEOUT"), 3600);
    assert_eq!(num(&conup, "IDLE_TIMEOUT"), 900);
    assert_eq!(num(&conup, "ACCT_INTERIM_INTERVAL"), 60);
    assert_eq!(num(&conup, "WISPR_BANDWIDTH_MAX_DOWN"), 50_000_000);
    assert!(!conup.contains_key("TERMINATE_CAUSE"));
    // The Access-Accept's Filter-Id, as CoovaChilli passes it.
    assert_eq!(
        conup.get("FILTER_ID").map(String::as_str),
        Some("std.user-bob"),
        "{conup:?}"
    );
    // Download, log out: condown has the Stop's numbers.
    let r = c1
        .curl(&[format!("http://{WEB}/bytes/3000000").as_str()])
        .unwrap();
    assert_eq!(r.body.len(), 3_000_000, "{r:?}");
    let out = c1
        .curl(&["-X", "POST", format!("{PORTAL}/logout").as_str()])
        .unwrap();
    assert!(out.http_code == 200 || out.http_code == 302, "{out:?}");
    let stop = w.record(&sid, "Stop");
    let condown = w.env("condown", &sid);
    assert_eq!(
        condown.get("FILTER_ID").map(String::as_str),
        Some("std.user-bob")
    );
    assert_eq!(num(&condown, "INPUT_OCTETS"), stop.input_octets());
    assert_eq!(num(&condown, "OUTPUT_OCTETS"), stop.output_octets());
    assert!(stop.output_octets() > 3_000_000);
    assert_eq!(
        Some(num(&condown, "INPUT_PACKETS")),
        stop.num("Acct-Input-Packets")
    );
    assert_eq!(
        Some(num(&condown, "OUTPUT_PACKETS")),
        stop.num("Acct-Output-Packets")
    );
    assert_eq!(Some(num(&condown, "SESSION_TIME")), stop.session_time());
    assert_eq!(stop.terminate_cause(), Some("User-Request"));
    assert_eq!(num(&condown, "TERMINATE_CAUSE"), 1);
    assert_eq!(
        condown.get("USER_NAME").map(String::as_str),
        stop.get("User-Name")
    );
    assert_eq!(
        condown.get("ACCT_SESSION_ID").map(String::as_str),
        Some(sid.as_str())
    );

    // A guest-chosen user name full of shell syntax is only a value.
    let canary = w.dir.join("pwned");
    let hostile = format!(
        "x$(touch {c});`touch {c}`'\"; touch {c} #",
        c = canary.display()
    );
    let evil = w.login(c1, &hostile);
    let env = w.env("conup", &evil);
    assert_eq!(env.get("USER_NAME"), Some(&hostile));
    // Without a Filter-Id in the reply the variable is not set at all.
    assert!(!env.contains_key("FILTER_ID"), "{env:?}");
    // The detail file escapes '"' as '\"'.
    let radius_user = w
        .record(&evil, "Start")
        .get("User-Name")
        .map(|u| u.replace("\\\"", "\""));
    assert_eq!(radius_user.as_ref(), Some(&hostile));
    assert!(!canary.exists(), "a user name was run as a command");
    let out = c1
        .curl(&["-X", "POST", format!("{PORTAL}/logout").as_str()])
        .unwrap();
    assert!(out.http_code == 200 || out.http_code == 302, "{out:?}");
    w.env("condown", &evil);

    // A conup that hangs: killed at 3 s, its child with it; meanwhile the
    // other guest logs in and its conup runs.
    c2.udhcpc()
        .unwrap_or_else(|e| w.fail(&format!("udhcpc: {e}")));
    let hung = w.login(c2, "sleeper");
    w.env("conup", &hung);
    let t = Instant::now();
    let again = w.login(c1, "bob");
    w.env("conup", &again);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a login waited for a hung hook"
    );
    let killed = wait_until(Duration::from_secs(8), || {
        w.lassi
            .log()
            .contains("hook killed: still running at its time limit")
            .then_some(())
    });
    if killed.is_none() {
        w.fail("the hung conup was not reported killed");
    }
    let child: i32 = std::fs::read_to_string(w.dir.join("sleeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = wait_until(Duration::from_secs(2), || {
        let st = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        (st.is_empty() || st.contains(") Z ")).then_some(())
    });
    assert!(gone.is_some(), "the hung script's child {child} survived");
    let log = w.lassi.log();
    assert!(log.contains("hook output: conup ran for"), "{log}");
    assert!(log.contains("hook finished: exit status 0"), "{log}");

    // ipdown at the clean stop.
    let mut w = w;
    w.lassi.stop();
    let down = recorded(&w.dir, "ipdown", "lassi0", Duration::from_secs(5))
        .unwrap_or_else(|| w.fail("ipdown did not run at stop"));
    assert_eq!(down.get("DEV").map(String::as_str), Some("lassi0"));
}

/// lassi with `log.output = "syslog"` sends RFC 3164 datagrams (facility
/// daemon, `lassi[pid]`) to the configured socket, bound here by the test.
#[test]
fn syslog_output_sends_rfc3164_datagrams() {
    let lab = Lab::new(LabOptions::default()).unwrap_or_else(|e| panic!("lab: {e}"));
    let dir = std::env::temp_dir().join(unique_name("syslog"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cfg = format!(
        "[log]\noutput = \"syslog\"\nlevel = \"debug\"\nsyslog_socket = {:?}\n",
        path.display().to_string()
    );
    let mut lassi = must(&lab, "lassi", lab.start_lassi(&cfg));
    let pid = lassi.pid().expect("pid");
    let mut grams = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline && !grams.iter().any(|g: &String| g.contains("lassi started")) {
        if let Ok(n) = sock.recv(&mut buf) {
            grams.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    lassi.stop();
    while let Ok(n) = sock.recv(&mut buf) {
        grams.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        grams.iter().any(|g| g.contains("lassi started")),
        "{grams:#?}"
    );
    assert!(
        grams.iter().any(|g| g.contains("lassi stopped")),
        "{grams:#?}"
    );
    let tag = format!(" lassi[{pid}]: ");
    for g in &grams {
        // <PRI>Mmm dd hh:mm:ss lassi[pid]: message
        let (pri, rest) = g
            .strip_prefix('<')
            .and_then(|s| s.split_once('>'))
            .expect(g);
        let pri: u8 = pri.parse().expect(g);
        assert_eq!(pri / 8, 3, "facility daemon: {g}");
        assert!([3, 4, 6, 7].contains(&(pri % 8)), "{g}");
        assert!(rest.len() > 16 && rest.as_bytes()[15] == b' ', "{g}");
        assert!(rest[16..].starts_with(tag.trim_start()), "{g}");
        assert!(!g.ends_with('\n'), "{g}");
    }
    let started = grams.iter().find(|g| g.contains("lassi started")).unwrap();
    assert!(started.starts_with("<30>"), "info is severity 6: {started}");
    // Nothing went to stderr but the lab's own banner.
    let log = lassi.log();
    assert!(!log.contains("lassi started"), "{log}");
}

/// `log.format = "json"`: every line lassi writes is one JSON object.
#[test]
fn json_format_writes_one_object_per_line() {
    let lab = Lab::new(LabOptions::default()).unwrap_or_else(|e| panic!("lab: {e}"));
    let mut lassi = must(&lab, "lassi", lab.start_lassi("[log]\nformat = \"json\"\n"));
    lassi.stop();
    let log = lassi.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("===== lab:"))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                .contains(&v["level"].as_str().unwrap_or("")),
            "{l}"
        );
        assert!(
            v["target"].as_str().is_some_and(|t| t.starts_with("lassi")),
            "{l}"
        );
        assert!(v["message"].is_string() && v["fields"].is_object(), "{l}");
    }
    let started = lines
        .iter()
        .find(|l| l.contains("lassi started"))
        .expect("lassi started");
    let v: serde_json::Value = serde_json::from_str(started).unwrap();
    assert_eq!(v["fields"]["tun"], "lassi0");
    assert!(v["fields"]["clients"].is_u64(), "{started}");
}
