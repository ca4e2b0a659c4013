//! Live reload end to end (`lassi reload`, SIGHUP): lassi in the namespace
//! lab with `portal.auth = "radius"` against a private FreeRADIUS 3.2 in
//! the upstream namespace, guests that get their lease from udhcpc and log
//! in with curl, curl and ping moving packets across the reload, and
//! FreeRADIUS's detail file as the judge of what lassi accounted.
//!
//! The config file lassi was started with is edited in place and lassi is
//! told to read it again, as an operator would. Root only; CI runs them
//! (`tests/run-all`).

use std::time::Duration;

use lassi_lab::gateway::{emit_toml, merge_toml};
use lassi_lab::netns::wait_until;
use lassi_lab::portal::page_challenge;
use lassi_lab::radius::{self as radius, FreeRadius, FreeRadiusOptions};
use lassi_lab::{must, CurlResult, Guest, Lab, LabOptions, LabResult, LassiHandle};
use serde_json::Value;

const PORTAL: &str = "http://10.1.0.1:3990";
const WEB: &str = "198.51.100.10";

const USERS: &str = r#"
bob	Cleartext-Password := "hello"

alice	Cleartext-Password := "hello"
"#;

/// lassi's config for the lab with `extra` deep-merged over the lab's
/// `[radius]` (FreeRADIUS upstream, secret `testing123`).
fn config(extra: &str) -> String {
    let mut base: toml::Table = radius::lassi_toml().parse().expect("radius toml");
    merge_toml(&mut base, extra.parse().expect("extra toml"));
    emit_toml(&base)
}

/// Field order is drop order: lassi (its clean stop still reaches
/// FreeRADIUS), then FreeRADIUS, then the lab.
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
        let lassi = must(&lab, "lassi", lab.start_lassi(&config(lassi_extra)));
        World { lassi, fr, lab }
    }

    fn client(&self, i: usize) -> &Guest {
        self.lab.client(i)
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

    /// POST /login on lassi's own pages; the session id when it worked.
    fn login(&self, client: &Guest, user: &str) -> Result<String, CurlResult> {
        let page = self.must("splash", client.curl(&[format!("{PORTAL}/").as_str()]));
        let chal = page_challenge(&page.text());
        let r = self.must(
            "login",
            client.curl(&[
                "--data-urlencode",
                &format!("username={user}"),
                "--data-urlencode",
                "password=hello",
                "-d",
                &format!("challenge={chal}"),
                &format!("{PORTAL}/login"),
            ]),
        );
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
        self.login(client, user)
            .unwrap_or_else(|r| self.fail(&format!("{user} could not log in: {r:?}")))
    }

    /// The config file with `from` replaced by `to` (it must be there).
    fn edit_config(&self, from: &str, to: &str) {
        let text = self.lassi.config_text();
        assert!(text.contains(from), "{from:?} not in\n{text}");
        self.must(
            "writing the config",
            self.lassi.set_config_text(&text.replacen(from, to, 1)),
        );
    }

    /// `lassi reload`: (exit 0?, stdout, stderr).
    fn reload(&self) -> (bool, String, String) {
        let out = self.must("lassi reload", self.lassi.ctl_unchecked(&["reload"]));
        (out.success(), out.stdout, out.stderr)
    }

    fn reload_ok(&self) -> String {
        let (ok, stdout, stderr) = self.reload();
        if !ok {
            self.fail(&format!("lassi reload failed: {stdout} {stderr}"));
        }
        stdout
    }

    /// The splash redirect of an intercepted request (carries `nasid`).
    fn redirect(&self, client: &Guest) -> String {
        let r = self.must(
            "intercepted",
            client.curl(&["-H", "Host: example.test", &format!("{PORTAL}/news")]),
        );
        r.header("location")
            .unwrap_or_else(|| self.fail(&format!("no redirect: {r:?}")))
    }
}

/// `ping -i 0.01 -c N` from `client` to WEB: (sent, received).
fn ping(client: &Guest, count: u32) -> (u32, u32) {
    let c = count.to_string();
    let out = client
        .ns()
        .run(&["ping", "-n", "-q", "-i", "0.01", "-W", "1", "-c", &c, WEB])
        .expect("ping runs");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {} {}", out.stdout, out.stderr));
    let num = |word: &str| -> u32 {
        let before = line.split(word).next().unwrap_or("");
        let n = before
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty());
        n.and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    (num(" packets transmitted"), num(" received"))
}

#[test]
fn reload_while_a_guest_downloads_ends_nothing_and_opens_a_new_garden_host() {
    let w = World::new(2, "");
    let c = w.client(1);
    let web = w.must("upstream", w.lab.start_upstream());
    w.must("udhcpc", c.udhcpc());
    let sid = w.login_ok(c, "bob");
    // A guest who has not logged in: the web server is behind the portal.
    let guest = w.client(2);
    w.must("udhcpc", guest.udhcpc());
    let probe = format!("http://{WEB}/garden-probe");
    let before = w.must("curl before", guest.curl(&[&probe]));
    assert_eq!(before.http_code, 302, "held at the portal: {before:?}");
    assert!(web.requests_to("/garden-probe").is_empty());
    // The reload puts the web server in the walled garden.
    w.edit_config(
        "auth = \"radius\"",
        &format!("auth = \"radius\"\nwalled_garden = [\"{WEB}\"]"),
    );
    w.fr.wait_for_record(Duration::from_secs(5), |r| {
        r.session_id() == Some(sid.as_str()) && r.status() == "Start"
    })
    .unwrap_or_else(|| w.fail("no Start"));
    // Live changes of every kind lassi applies: portal, RADIUS, session.
    w.edit_config(
        "nas_identifier = \"lassi-lab\"",
        "nas_identifier = \"lassi-reloaded\"",
    );
    w.edit_config("timeout = 1", "timeout = 2");
    let text = w.lassi.config_text();
    w.must(
        "config",
        w.lassi
            .set_config_text(&format!("{text}\n[session]\nidle_timeout = 900\n")),
    );
    let down = 40_000_000u64;
    let (curl, pings, out) = std::thread::scope(|s| {
        let curl = s.spawn(|| {
            c.curl(&[
                "--limit-rate",
                "8M",
                format!("http://{WEB}/bytes/{down}").as_str(),
            ])
        });
        let pings = s.spawn(|| ping(c, 400));
        std::thread::sleep(Duration::from_millis(1500));
        let out = w.reload_ok();
        (curl.join().unwrap(), pings.join().unwrap(), out)
    });
    println!("lassi reload: {out}; ping {pings:?}");
    for key in [
        "radius.timeout",
        "radius.nas_identifier",
        "session.idle_timeout",
        "portal.walled_garden",
    ] {
        assert!(out.contains(key), "{key} not reported: {out}");
    }
    let curl = w.must("curl", curl);
    assert_eq!(
        curl.body.len() as u64,
        down,
        "download incomplete: {curl:?}"
    );
    let (sent, received) = pings;
    assert_eq!(sent, 400);
    assert!(
        sent - received <= 2,
        "lost {} of {sent} pings",
        sent - received
    );
    // Same session, counters kept and grown, no Stop.
    let s = w.session(c);
    assert_eq!(s["state"], "authorized", "{s}");
    assert_eq!(s["session_id"].as_str(), Some(sid.as_str()), "{s}");
    assert!(s["counters"]["octets_out"].as_u64().unwrap() >= down, "{s}");
    std::thread::sleep(Duration::from_secs(1));
    let stops: Vec<_> =
        w.fr.session_records(&sid)
            .into_iter()
            .filter(|r| r.status() == "Stop")
            .collect();
    assert!(stops.is_empty(), "a Stop went out: {stops:?}");
    // The new walled-garden host is reachable before login, and the
    // guest is still unauthorized.
    let after = w.must("curl after", guest.curl(&[&probe]));
    assert_eq!(after.http_code, 200, "garden host after reload: {after:?}");
    assert_eq!(web.requests_to("/garden-probe").len(), 1);
    assert_eq!(w.state(guest), "unauthorized");
    assert!(
        w.lassi.log().contains("configuration reloaded"),
        "{}",
        w.lassi.log_tail(20)
    );
}

#[test]
fn a_changed_radius_secret_is_used_for_the_next_login() {
    let mut w = World::new(1, "");
    w.edit_config("secret = \"testing123\"", "secret = \"not-the-secret\"");
    // Started on a secret FreeRADIUS does not know: logins fail.
    w.lassi
        .restart()
        .unwrap_or_else(|e| w.fail(&format!("restart: {e}")));
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    assert!(w.login(c, "bob").is_err(), "logged in with a wrong secret");
    assert_eq!(w.state(c), "unauthorized");
    // The right secret, reloaded: the next login works and is accounted.
    w.edit_config("secret = \"not-the-secret\"", "secret = \"testing123\"");
    let out = w.reload_ok();
    assert!(out.contains("radius.server"), "{out}");
    let sid = w.login_ok(c, "bob");
    let start =
        w.fr.wait_for_record(Duration::from_secs(5), |r| {
            r.session_id() == Some(sid.as_str()) && r.status() == "Start"
        })
        .unwrap_or_else(|| w.fail("no Start after the reload"));
    // The reloaded settings still name the NAS by its address (lassi fills
    // NAS-IP-Address in when the config leaves it out; SQL accounting
    // needs it).
    assert_eq!(start.get("NAS-IP-Address"), Some("192.0.2.1"), "{start:?}");
}

#[test]
fn a_broken_config_and_a_new_lan_network_are_refused_and_nothing_changes() {
    let w = World::new(2, "[portal]\nnas_id = \"before\"\n");
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    let original = w.lassi.config_text();
    // A bad value, with a changed secret that must not be applied.
    w.edit_config("secret = \"testing123\"", "secret = \"wrong\"");
    w.edit_config(
        "nas_id = \"before\"",
        "nas_id = \"before\"\nsuccess_url = \"ftp://x\"",
    );
    let (ok, stdout, stderr) = w.reload();
    assert!(!ok, "a broken config was accepted: {stdout}");
    assert!(stderr.contains("portal.success_url"), "{stderr}");
    assert!(stderr.contains("http://"), "the reason: {stderr}");
    // A new LAN network, with a live change beside it: refused whole.
    let moved = original
        .replace("10.1.0.", "10.2.0.")
        .replace("nas_id = \"before\"", "nas_id = \"after\"");
    assert!(moved.contains("10.2.0.0/24"), "{moved}");
    w.must("config", w.lassi.set_config_text(&moved));
    let (ok, stdout, stderr) = w.reload();
    assert!(!ok, "a new LAN network was accepted: {stdout}");
    assert!(stderr.contains("lan.network"), "{stderr}");
    assert!(stderr.contains("restart"), "{stderr}");
    // lassi runs on as before: old NAS id, old secret, new leases and logins.
    assert!(
        w.lassi.log().contains("reload refused"),
        "{}",
        w.lassi.log_tail(20)
    );
    assert!(w.redirect(c).contains("nasid=before"), "{}", w.redirect(c));
    w.login_ok(c, "bob");
    let c2 = w.client(2);
    let lease = w.must("udhcpc 2", c2.udhcpc());
    assert!(lease.ip.to_string().starts_with("10.1.0."), "{lease:?}");
    w.login_ok(c2, "alice");
}

#[test]
fn sighup_and_lassi_reload_serve_new_pages_and_portal_settings() {
    let lab_pages = std::env::temp_dir().join(lassi_lab::unique_name("reload-pages"));
    std::fs::create_dir_all(&lab_pages).unwrap();
    let heading = |v: &str| format!("login_heading = Welcome {v}\n");
    std::fs::write(lab_pages.join("lang-en.txt"), heading("v1")).unwrap();
    let mut w = World::new(
        1,
        &format!(
            "[portal]\nnas_id = \"first\"\npages_dir = \"{}\"\n",
            lab_pages.display()
        ),
    );
    let pid = w.lassi.pid().expect("lassi runs");
    let w = w;
    let c = w.client(1);
    w.must("udhcpc", c.udhcpc());
    let splash = || {
        w.must("splash", c.curl(&[format!("{PORTAL}/").as_str()]))
            .text()
    };
    assert!(splash().contains("Welcome v1"), "{}", splash());
    // A page changed on disk, the config not: `lassi reload` re-reads it.
    std::fs::write(lab_pages.join("lang-en.txt"), heading("v2")).unwrap();
    let out = w.reload_ok();
    assert!(
        out.contains("no key changed") && out.contains("portal.pages_dir"),
        "{out}"
    );
    assert!(splash().contains("Welcome v2"), "{}", splash());
    // SIGHUP: a page and a portal setting, the same way.
    std::fs::write(lab_pages.join("lang-en.txt"), heading("v3")).unwrap();
    w.edit_config("nas_id = \"first\"", "nas_id = \"second\"");
    // SAFETY: a signal to the lassi this test started, by its PID.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let reloaded = wait_until(Duration::from_secs(10), || {
        splash().contains("Welcome v3").then_some(())
    });
    assert!(reloaded.is_some(), "{}", w.lassi.log_tail(20));
    assert!(w.redirect(c).contains("nasid=second"), "{}", w.redirect(c));
    let log = w.lassi.log();
    assert!(
        log.contains("origin=Signal") || log.contains("Signal"),
        "{}",
        w.lassi.log_tail(20)
    );
    assert!(log.contains("portal.nas_id"), "{}", w.lassi.log_tail(20));
    // A broken file at SIGHUP: logged with the key, lassi keeps serving.
    w.edit_config(
        "nas_id = \"second\"",
        "nas_id = \"second\"\nchallenge_timeout = 5",
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let refused = wait_until(Duration::from_secs(10), || {
        w.lassi
            .log()
            .contains("portal.challenge_timeout")
            .then_some(())
    });
    assert!(refused.is_some(), "{}", w.lassi.log_tail(20));
    // SAFETY: signal 0 only checks that the process is there.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "lassi died");
    assert!(splash().contains("Welcome v3"));
    w.login_ok(c, "bob");
    let _ = std::fs::remove_dir_all(&lab_pages);
}

/// A loopback UDP port nobody uses right now.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// radclient to lassi's CoA port on loopback: what it printed.
fn radclient(port: u16, kind: &str, secret: &str, attrs: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("radclient")
        .args(["-x", "-r", "1", "-t", "2"])
        .arg(format!("127.0.0.1:{port}"))
        .args([kind, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("radclient (apt-get install freeradius-utils)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(attrs.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The RADIUS service on its own, against FreeRADIUS and radclient on
/// loopback: a reconfigured service authenticates with the new secret and
/// checks CoA requests against the new clients, on the same sockets.
#[test]
fn a_reconfigured_radius_service_uses_new_secrets_for_requests_and_coa() {
    use lassi::radius::service::ServerConfig;
    use lassi::radius::service::{AccessAnswer, CoaSettings, RadiusService, RadiusSettings};
    use lassi::radius::AccessRequest;
    use std::net::{IpAddr, Ipv4Addr};
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (auth_port, acct_port, coa_port) = (free_port(), free_port(), free_port());
    let mut fr = FreeRadius::configure_temp(
        "reload-service",
        FreeRadiusOptions {
            listen: localhost,
            auth_port,
            acct_port,
            clients: vec![radius::RadiusClient {
                addr: "127.0.0.1".into(),
                secret: "testing123".into(),
                require_message_authenticator: true,
            }],
            users: USERS.into(),
            unsigned_users: Vec::new(),
            sql: None,
            debug: false,
        },
    )
    .expect("configuring FreeRADIUS");
    fr.start().expect("starting FreeRADIUS");
    let spool = std::env::temp_dir().join(lassi_lab::unique_name("reload-spool"));
    let server = |secret: &str| ServerConfig {
        addr: localhost,
        auth_port,
        acct_port,
        secret: secret.as_bytes().to_vec(),
    };
    let settings = |secret: &str, coa_secret: &str| {
        let mut s = RadiusSettings::new(vec![server(secret)], spool.clone());
        s.timeout = Duration::from_millis(300);
        s.retries = 1;
        s.coa = Some(CoaSettings {
            listen: format!("127.0.0.1:{coa_port}").parse().unwrap(),
            clients: vec![(localhost, coa_secret.into())],
            ..Default::default()
        });
        s
    };
    let pap = || {
        AccessRequest::pap(
            "bob",
            b"hello",
            "02:00:0a:01:00:17".parse().unwrap(),
            Ipv4Addr::new(10, 1, 0, 23),
            "sess-reload",
            1,
        )
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (h, rx) = RadiusService::start(settings("wrong", "old"))
            .await
            .unwrap();
        let mut rx = rx.unwrap();
        // The daemon's side: no session matches anything.
        tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                call.reply(lassi::radius::coa::CoaReply::Nak(
                    lassi::radius::coa::ErrorCause::SessionContextNotFound,
                ));
            }
        });
        let rc = |secret: &'static str| {
            tokio::task::spawn_blocking(move || {
                radclient(coa_port, "disconnect", secret, "User-Name=bob\n")
            })
        };
        assert_eq!(h.authenticate(pap()).await, AccessAnswer::Unreachable);
        assert!(rc("new").await.unwrap().contains("No reply"));
        h.reconfigure(settings("testing123", "new")).unwrap();
        let answer = h.authenticate(pap()).await;
        assert!(
            matches!(answer, AccessAnswer::Accept(_)),
            "{answer:?}\n{}",
            fr.log_tail(20)
        );
        let out = rc("new").await.unwrap();
        assert!(out.contains("Received Disconnect-NAK"), "{out}");
        assert!(rc("old").await.unwrap().contains("No reply"));
        assert_eq!(h.settings().servers, vec![server("testing123")]);
        h.shutdown();
    });
    fr.stop();
    let _ = std::fs::remove_dir_all(&spool);
}

#[test]
fn the_users_file_is_read_again_and_a_broken_one_is_refused() {
    let users = std::env::temp_dir().join(lassi_lab::unique_name("reload-users"));
    std::fs::write(&users, "bob plain:hello\n").unwrap();
    let w = World::new(
        2,
        &format!(
            "[portal]\nauth = \"local\"\nusers_file = \"{}\"\n",
            users.display()
        ),
    );
    let (c1, c2) = (w.client(1), w.client(2));
    w.must("udhcpc 1", c1.udhcpc());
    w.must("udhcpc 2", c2.udhcpc());
    assert!(w.login(c1, "alice").is_err(), "alice is not a user yet");
    std::fs::write(&users, "bob plain:hello\nalice plain:hello\n").unwrap();
    let out = w.reload_ok();
    assert!(out.contains("portal.users_file"), "{out}");
    w.login_ok(c1, "alice");
    // A users file that does not parse: refused, the users read before stay.
    std::fs::write(&users, "bob plain:hello\nthis is not a user line\n").unwrap();
    let (ok, stdout, stderr) = w.reload();
    assert!(!ok, "a broken users file was accepted: {stdout}");
    assert!(stderr.contains("portal.users_file"), "{stderr}");
    w.login_ok(c2, "alice");
    let _ = std::fs::remove_file(&users);
}
