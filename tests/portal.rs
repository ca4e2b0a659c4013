//! End-to-end tests of the captive portal with real peers: curl and a
//! headless Chromium (driven over W3C WebDriver by chromedriver) in a client
//! namespace, lassi in the gateway namespace, the upstream web server as
//! "the internet". They need root (CI runs them as root).
//!
//! Until the data plane intercepts port 80, a guest's request to some web
//! site is simulated with a foreign Host header sent to the portal
//! (`curl -H 'Host: 198.51.100.10' http://10.1.0.1:3990/welcome`), which is
//! exactly what the intercepted request will look like.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lassi::portal::uam;
use lassi_lab::must;
use lassi_lab::netns::ExecOptions;
use lassi_lab::portal::{page_challenge, param, query, uam_key};
use lassi_lab::upstream::enter_netns;
use lassi_lab::{Guest, Lab, LabOptions, LassiHandle, Proc};
use serde_json::{json, Value};

const PORTAL: &str = "http://10.1.0.1:3990";
const WEB: &str = "http://198.51.100.10";
/// `openssl passwd -6 -salt saltsalt 'correct horse'`
const ALICE_HASH: &str = "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0";

fn lab() -> Lab {
    Lab::new(LabOptions::default()).unwrap_or_else(|e| panic!("building the lab: {e}"))
}

fn session_of(lassi: &LassiHandle, client: &Guest) -> Value {
    let v = lassi.sessions_json().expect("lassi sessions --json");
    v.as_array()
        .and_then(|a| a.iter().find(|c| c["mac"] == client.mac().to_string()))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Writes a users file into the lab and returns the config override for it.
fn local_users_config(lab: &Lab, extra: &str) -> String {
    let users = lab.dir().join("users");
    std::fs::write(
        &users,
        format!(
            "# test users\nalice {ALICE_HASH} session_timeout=3600 max_total_octets=100000000\nbob plain:builder\n"
        ),
    )
    .unwrap();
    format!(
        "[portal]\nauth = \"local\"\nusers_file = \"{}\"\n{extra}",
        users.display()
    )
}

/// lassi with the test's local users (alice, bob) and nothing else set.
fn start_local_users(lab: &Lab) -> LassiHandle {
    must(lab, "lassi", lab.start_lassi(&local_users_config(lab, "")))
}

/// Guest 1, once udhcpc has leased it an address.
fn leased_guest(lab: &Lab) -> &Guest {
    let client = lab.client(1);
    must(lab, "udhcpc", client.udhcpc());
    client
}

/// A guest's request to a web site as the data plane delivers it to the
/// portal once intercepted: same path, foreign Host.
fn intercepted(client: &Guest, host: &str, path: &str) -> lassi_lab::CurlResult {
    client
        .curl(&["-H", &format!("Host: {host}"), &format!("{PORTAL}{path}")])
        .expect("curl")
}

/// Asserts that `r` (the answer to `what`) is an uncached redirect to
/// lassi's own splash page of an unauthorized guest; its Location.
fn splash_redirect(what: &str, r: &lassi_lab::CurlResult) -> String {
    assert_eq!(r.http_code, 302, "{what}: {r:?}");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with("http://10.1.0.1:3990/?res=notyet&uamip=10.1.0.1&uamport=3990&challenge="),
        "{what}: {loc}"
    );
    loc
}

#[test]
fn click_through_with_curl_and_the_json_and_rfc8908_apis() {
    let lab = lab();
    let web = must(&lab, "upstream", lab.start_upstream());
    let lassi = must(&lab, "lassi", lab.start_lassi(""));
    let client = lab.client(1);
    let lease = must(&lab, "udhcpc", client.udhcpc());
    assert_eq!(
        lease.captive_portal.as_deref(),
        Some("http://10.1.0.1:3990/api")
    );

    // RFC 8908 at the URI of option 114.
    let api = must(&lab, "api", client.curl(&[&format!("{PORTAL}/api")]));
    assert_eq!(api.http_code, 200);
    assert_eq!(
        api.header("content-type").as_deref(),
        Some("application/captive+json")
    );
    let v: Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(
        v,
        json!({ "captive": true, "user-portal-url": "http://10.1.0.1:3990/" })
    );

    // The OS probes and any page: 302 to the splash page, not cached.
    for (host, path) in [
        ("captive.apple.com", "/hotspot-detect.html"),
        ("connectivitycheck.gstatic.com", "/generate_204"),
        ("www.msftconnecttest.com", "/connecttest.txt"),
        ("198.51.100.10", "/welcome?from=test"),
    ] {
        let loc = splash_redirect(host, &intercepted(client, host, path));
        assert_eq!(param(&loc, "userurl"), format!("http://{host}{path}"));
        assert_eq!(param(&loc, "ip"), lease.ip.to_string());
        assert_eq!(param(&loc, "mac"), client.mac().to_dashed());
        assert_eq!(param(&loc, "nasid"), "lassi");
    }
    let loc = intercepted(client, "198.51.100.10", "/welcome")
        .header("location")
        .unwrap();

    // The terms page; accepting it gets the guest online and back to the
    // page it asked for.
    let page = must(&lab, "splash", client.curl(&[&loc]));
    let html = page.text();
    assert!(html.contains("name=\"accept\""), "{html}");
    let chal = page_challenge(&html);
    assert_eq!(chal, param(&loc, "challenge"));
    let no_terms = must(
        &lab,
        "logon without accepting",
        client.curl(&[
            "-d",
            &format!("challenge={chal}"),
            &format!("{PORTAL}/logon"),
        ]),
    );
    assert!(no_terms.text().contains("Please accept the terms"));
    assert_eq!(session_of(&lassi, client)["state"], "unauthorized");
    let chal = page_challenge(&no_terms.text());
    let ok = must(
        &lab,
        "logon",
        client.curl(&[
            "-d",
            &format!("challenge={chal}&accept=1&userurl=http%3A%2F%2F198.51.100.10%2Fwelcome"),
            &format!("{PORTAL}/logon"),
        ]),
    );
    assert_eq!(ok.http_code, 302, "{ok:?}");
    assert_eq!(
        ok.header("location").as_deref(),
        Some("http://198.51.100.10/welcome")
    );
    let s = session_of(&lassi, client);
    assert_eq!(s["state"], "authorized", "{s}");
    assert_eq!(s["user"], "guest");
    let page = must(&lab, "web", client.curl(&[&format!("{WEB}/welcome")]));
    assert!(page.ok(), "{page:?}");
    assert_eq!(web.requests_to("/welcome").len(), 1);

    // CoovaChilli's JSON status with JSONP, and the RFC 8908 view.
    let st = must(
        &lab,
        "json status",
        client.curl(&[&format!("{PORTAL}/json/status?callback=chilliJSON.reply")]),
    );
    let text = st.text();
    let v: Value = serde_json::from_str(
        text.strip_prefix("chilliJSON.reply(")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{text}")),
    )
    .unwrap();
    assert_eq!(v["clientState"], 1);
    assert_eq!(v["session"]["userName"], "guest");
    assert_eq!(v["redir"]["macAddress"], client.mac().to_dashed());
    assert!(v["accounting"]["outputOctets"].as_u64().unwrap() > 0, "{v}");
    let api = must(&lab, "api", client.curl(&[&format!("{PORTAL}/api")]));
    let v: Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(v["captive"], false);

    // Logoff through the JSON API cuts the client off.
    let v: Value = serde_json::from_slice(
        &must(
            &lab,
            "logoff",
            client.curl(&[&format!("{PORTAL}/json/logoff")]),
        )
        .body,
    )
    .unwrap();
    assert_eq!(v["clientState"], 0);
    let after = must(
        &lab,
        "web after logoff",
        client.curl(&["--max-time", "3", &format!("{WEB}/welcome")]),
    );
    assert!(!after.ok(), "still online: {after:?}");
    assert_eq!(session_of(&lassi, client)["state"], "unauthorized");
    // The state changes before the daemon writes its log line: wait for it
    // rather than read the log once (that raced, one run in many).
    let logged = lassi_lab::netns::wait_until(Duration::from_secs(5), || {
        let log = lassi.log();
        (log.contains("session ended") && log.contains("user-request")).then_some(())
    });
    assert!(logged.is_some(), "{}", lassi.log_tail(20));
}

#[test]
fn local_users_wrong_password_gets_an_answer_and_stays_out() {
    let lab = lab();
    let _web = must(&lab, "upstream", lab.start_upstream());
    let lassi = start_local_users(&lab);
    let client = leased_guest(&lab);
    let mut chal =
        page_challenge(&must(&lab, "splash", client.curl(&[&format!("{PORTAL}/")])).text());
    for (user, pw) in [("alice", "wrong"), ("nobody", "x"), ("bob", "Builder")] {
        let r = must(
            &lab,
            "logon",
            client.curl(&[
                "-d",
                &format!("challenge={chal}&username={user}&password={pw}"),
                &format!("{PORTAL}/logon"),
            ]),
        );
        assert_eq!(r.http_code, 200, "{r:?}");
        let html = r.text();
        assert!(html.contains("Wrong user name or password."), "{html}");
        assert_eq!(session_of(&lassi, client)["state"], "unauthorized");
        // The error page carries the next challenge; the used one is dead,
        // even with the right password.
        assert_ne!(page_challenge(&html), chal);
        chal = replay_fails(&lab, &lassi, client, &chal);
    }
    // German, by Accept-Language.
    let de = must(
        &lab,
        "german",
        client.curl(&[
            "-H",
            "Accept-Language: de-DE,de;q=0.9",
            &format!("{PORTAL}/"),
        ]),
    );
    assert!(de.text().contains("Passwort"), "{}", de.text());
    // The SHA-512-crypt user gets in.
    let chal = page_challenge(&de.text());
    let r = must(
        &lab,
        "logon",
        client.curl(&[
            "--data-urlencode",
            "password=correct horse",
            "-d",
            &format!("challenge={chal}&username=alice"),
            &format!("{PORTAL}/logon"),
        ]),
    );
    assert_eq!(r.http_code, 302, "{r:?}");
    let s = session_of(&lassi, client);
    assert_eq!(s["state"], "authorized");
    assert_eq!(s["user"], "alice");
    let status = must(&lab, "status", client.curl(&[&format!("{PORTAL}/status")])).text();
    assert!(
        status.contains("id=\"time-left\">59 min")
            || status.contains("id=\"time-left\">1 h 00 min"),
        "{status}"
    );
    assert!(status.contains("id=\"data-left\">"), "{status}");
}

/// Logs in with a used challenge and the right password: refused as
/// expired. Returns the fresh challenge of the page that says so.
fn replay_fails(lab: &Lab, lassi: &LassiHandle, client: &Guest, chal: &str) -> String {
    let r = must(
        lab,
        "replay",
        client.curl(&[
            "-d",
            &format!("challenge={chal}&username=bob&password=builder"),
            &format!("{PORTAL}/logon"),
        ]),
    );
    assert!(r.text().contains("expired"), "{}", r.text());
    assert_eq!(session_of(lassi, client)["state"], "unauthorized");
    page_challenge(&r.text())
}

#[test]
fn external_portal_gets_coovachilli_parameters_and_answers() {
    let lab = lab();
    let secret = "s3cr3t";
    let lassi = must(
        &lab,
        "lassi",
        lab.start_lassi(&local_users_config(
            &lab,
            &format!("uam_server = \"http://198.51.100.10/hotspotlogin\"\nuam_secret = \"{secret}\"\nnas_id = \"cafe-1\"\n"),
        )),
    );
    let client = leased_guest(&lab);
    let loc = intercepted(client, "example.test", "/news")
        .header("location")
        .unwrap();
    assert!(
        loc.starts_with(
            "http://198.51.100.10/hotspotlogin?res=notyet&uamip=10.1.0.1&uamport=3990&challenge="
        ),
        "{loc}"
    );
    let names: Vec<String> = query(&loc).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "res",
            "uamip",
            "uamport",
            "challenge",
            "called",
            "mac",
            "ip",
            "nasid",
            "sessionid",
            "userurl",
            "md"
        ]
    );
    let (signed, md) = loc.rsplit_once("&md=").unwrap();
    assert_eq!(
        md,
        uam::hex(&uam::md5(&[signed.as_bytes(), secret.as_bytes()])).to_uppercase()
    );
    assert_eq!(param(&loc, "nasid"), "cafe-1");
    let key = |url: &str| uam_key(url, secret);

    // Wrong password (hex XOR form): res=failed, never a closed connection.
    let r = must(
        &lab,
        "wrong",
        client.curl(&[&format!(
            "{PORTAL}/logon?username=bob&password={}",
            uam::encode_password("nope", &key(&loc))
        )]),
    );
    assert_eq!(r.http_code, 302, "{r:?}");
    let failed = r.header("location").unwrap();
    assert!(
        failed.starts_with("http://198.51.100.10/hotspotlogin?res=failed&"),
        "{failed}"
    );
    assert_eq!(session_of(&lassi, client)["state"], "unauthorized");

    // CHAP with the fresh challenge from the failure.
    let resp = uam::hex(&uam::chap_response(0, b"builder", &key(&failed)));
    let r = must(
        &lab,
        "chap",
        client.curl(&[&format!(
            "{PORTAL}/logon?username=bob&response={resp}&userurl=http%3A%2F%2Fexample.test%2Fnews"
        )]),
    );
    let ok = r.header("location").unwrap();
    assert!(
        ok.starts_with("http://198.51.100.10/hotspotlogin?res=success&"),
        "{ok}"
    );
    assert_eq!(param(&ok, "userurl"), "http://example.test/news");
    assert_eq!(param(&ok, "uid"), "bob");
    assert_eq!(session_of(&lassi, client)["state"], "authorized");
    let r = must(&lab, "logoff", client.curl(&[&format!("{PORTAL}/logoff")]));
    assert!(r.header("location").unwrap().contains("?res=logoff&"));
    assert_eq!(session_of(&lassi, client)["state"], "unauthorized");
}

#[test]
fn a_host_without_a_lease_gets_a_clear_error_page() {
    let lab = lab();
    let _lassi = must(&lab, "lassi", lab.start_lassi(""));
    // The gateway namespace itself holds no lease.
    let r = must(&lab, "curl", lab.curl_from_gw(&[&format!("{PORTAL}/")]));
    assert_eq!(r.http_code, 403, "{r:?}");
    assert!(
        r.text().contains("no address from this network"),
        "{}",
        r.text()
    );
}

// ---------------------------------------------------------------------------
// A minimal W3C WebDriver client, talking to chromedriver inside the client
// namespace (each call runs on a thread that entered the namespace).

struct WebDriver {
    netns: String,
    port: u16,
    session: String,
    _chromedriver: Proc,
}

fn http_in_netns(
    netns: &str,
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let netns = netns.to_string();
    let path = path.to_string();
    let body = body.map(|b| b.to_string());
    let method = method.to_string();
    std::thread::spawn(move || -> Result<Value, String> {
        enter_netns(&netns).map_err(|e| e.to_string())?;
        let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let body = body.unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).map_err(|e| e.to_string())?;
        let mut len = None;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let mut buf = Vec::new();
        match len {
            Some(n) => {
                buf.resize(n, 0);
                r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            }
            None => {
                r.read_to_end(&mut buf).map_err(|e| e.to_string())?;
            }
        }
        let v: Value = serde_json::from_slice(&buf).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&buf)))?;
        if !status.contains(" 200 ") {
            return Err(format!("{method} {path}: {status} {v}"));
        }
        Ok(v)
    })
    .join()
    .map_err(|_| "webdriver thread panicked".to_string())?
}

impl WebDriver {
    fn start(lab: &Lab, client: &Guest) -> Result<WebDriver, String> {
        Self::start_with_lang(lab, client, "en-US")
    }

    fn start_with_lang(lab: &Lab, client: &Guest, lang: &str) -> Result<WebDriver, String> {
        let port = 9515;
        let dir = lab.dir().join("chromium");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let log = lab.dir().join("chromedriver.log");
        let proc = client
            .ns()
            .spawn(
                "chromedriver",
                &["chromedriver".to_string(), format!("--port={port}")],
                &log,
                &ExecOptions {
                    env: vec![
                        ("HOME".into(), dir.display().to_string()),
                        ("LANGUAGE".into(), lang.replace('-', "_")),
                    ],
                    ..ExecOptions::default()
                },
            )
            .map_err(|e| e.to_string())?;
        let netns = client.name().to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match http_in_netns(&netns, port, "GET", "/status", None) {
                Ok(v) if v["value"]["ready"] == true => break,
                _ if Instant::now() > deadline => return Err("chromedriver did not come up".into()),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "prefs": { "intl.accept_languages": lang },
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--window-size=390,844",
                        format!("--lang={lang}"),
                        format!("--user-data-dir={}", dir.join("profile").display()),
                    ]
                }
            }}
        });
        let v = http_in_netns(&netns, port, "POST", "/session", Some(&caps))?;
        let session = v["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {v}"))?
            .to_string();
        Ok(WebDriver {
            netns,
            port,
            session,
            _chromedriver: proc,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        http_in_netns(&self.netns, self.port, method, &p, body.as_ref())
            .unwrap_or_else(|e| panic!("webdriver: {e}"))["value"]
            .clone()
    }

    fn set_window(&self, w: u32, h: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": w, "height": h })),
        );
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn screenshot(&self, to: &Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap_or_default());
        std::fs::write(to, png).unwrap();
    }

    /// The page source once it contains `needle` (or after 15 s).
    fn source_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let src = self.source();
            if src.contains(needle) || Instant::now() > deadline {
                return src;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_url(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let u = self.url();
            if pred(&u) || Instant::now() > deadline {
                return u;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = http_in_netns(
            &self.netns,
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("portal-pages/screenshots")
}

#[test]
fn intercepted_http_and_os_probes_get_the_splash_page() {
    let lab = lab();
    let _dns = must(&lab, "dns", lab.start_dns());
    let web = must(&lab, "upstream", lab.start_upstream());
    let _lassi = must(&lab, "lassi", lab.start_lassi(""));
    let client = leased_guest(&lab);
    for url in [
        "http://example.test/some/page?x=1",
        "http://captive.apple.com/hotspot-detect.html",
        "http://connectivitycheck.gstatic.com/generate_204",
        "http://www.msftconnecttest.com/connecttest.txt",
        "http://198.51.100.10/",
    ] {
        let loc = splash_redirect(url, &must(&lab, "curl", client.curl(&[url])));
        assert_eq!(param(&loc, "userurl"), url);
    }
    assert!(
        web.requests().is_empty(),
        "the upstream server saw a guest that had not logged in: {:?}",
        web.requests()
    );

    // After login (click-through) the same probes reach the real server and
    // get its own answers, which is how the OS decides it is online.
    let splash = must(&lab, "curl", client.curl(&["http://example.test/"]));
    let chal = param(&splash.header("location").unwrap(), "challenge");
    let ok = must(
        &lab,
        "logon",
        client.curl(&[
            "-d",
            &format!("challenge={chal}&accept=1"),
            &format!("{PORTAL}/logon"),
        ]),
    );
    assert_eq!(ok.http_code, 302, "{ok:?}");
    let apple = must(
        &lab,
        "curl",
        client.curl(&["http://captive.apple.com/hotspot-detect.html"]),
    );
    assert!(
        apple.ok() && apple.text().contains("<TITLE>Success</TITLE>"),
        "{apple:?}"
    );
    let android = must(
        &lab,
        "curl",
        client.curl(&["http://connectivitycheck.gstatic.com/generate_204"]),
    );
    assert_eq!(android.http_code, 204, "{android:?}");
    let windows = must(
        &lab,
        "curl",
        client.curl(&["http://www.msftconnecttest.com/connecttest.txt"]),
    );
    assert_eq!(windows.text(), "Microsoft Connect Test", "{windows:?}");
    for path in ["/hotspot-detect.html", "/generate_204", "/connecttest.txt"] {
        assert_eq!(
            web.requests_to(path).len(),
            1,
            "{path} reached the upstream once"
        );
    }
}

#[test]
fn browser_logs_in_with_local_users_and_logs_out() {
    let lab = lab();
    let _dns = must(&lab, "dns", lab.start_dns());
    let web = must(&lab, "upstream", lab.start_upstream());
    let lassi = start_local_users(&lab);
    let client = leased_guest(&lab);

    let wd =
        WebDriver::start(&lab, client).unwrap_or_else(|e| panic!("{e}\n{}", lab.logs_report(30)));
    wd.set_window(390, 844);
    // The guest opens a web site and lands on the splash page.
    wd.goto("http://example.test/welcome");
    let url = wd.wait_for_url(|u| u.starts_with(PORTAL));
    assert!(
        url.starts_with("http://10.1.0.1:3990/?res=notyet&"),
        "{url}"
    );
    assert_eq!(param(&url, "userurl"), "http://example.test/welcome");
    let src = wd.source();
    assert!(src.contains("Sign in to the Internet"), "{src}");
    let shot = lab.dir().join("login-phone.png");
    wd.screenshot(&shot);
    if std::env::var_os("LASSI_UPDATE_SCREENSHOT").is_some() {
        std::fs::create_dir_all(screenshot_dir()).unwrap();
        std::fs::copy(&shot, screenshot_dir().join("login-phone.png")).unwrap();
    }
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 5000,
        "screenshot too small"
    );

    // A wrong password: the error page, still offline.
    wd.type_into("#username", "alice");
    wd.type_into("#password", "wrong");
    wd.click("#login");
    let src = wd.source_with("Wrong user name or password.");
    assert!(src.contains("Wrong user name or password."), "{src}");
    assert_eq!(session_of(&lassi, client)["state"], "unauthorized");

    // The right one: back on the page first asked for, served upstream.
    wd.type_into("#password", "correct horse");
    wd.click("#login");
    let url = wd.wait_for_url(|u| !u.starts_with(PORTAL));
    assert_eq!(url, "http://example.test/welcome");
    assert!(wd.source().contains("/welcome"), "{}", wd.source());
    let seen = web.requests_to("/welcome");
    assert!(
        seen.iter()
            .any(|r| r.host.as_deref() == Some("example.test")),
        "{seen:?}"
    );
    assert_eq!(session_of(&lassi, client)["state"], "authorized");

    // The success page, then logout cuts the client off again.
    wd.goto(&format!("{PORTAL}/status"));
    let src = wd.source_with("You are online");
    assert!(
        src.contains("You are online") && src.contains("alice"),
        "{src}"
    );
    assert!(src.contains("id=\"time-left\">"), "{src}");
    wd.screenshot(&lab.dir().join("success-phone.png"));
    if std::env::var_os("LASSI_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(
            lab.dir().join("success-phone.png"),
            screenshot_dir().join("success-phone.png"),
        )
        .unwrap();
    }
    wd.click("#logout");
    let src = wd.source_with("You are logged out");
    assert!(src.contains("You are logged out"), "{src}");
    assert_eq!(session_of(&lassi, client)["state"], "unauthorized");
    let after = must(
        &lab,
        "curl",
        client.curl(&["--max-time", "3", "http://example.test/welcome"]),
    );
    assert_eq!(
        after.http_code, 302,
        "not sent back to the portal after logout: {after:?}"
    );
    drop(wd);
}

#[test]
fn browser_click_through_in_german() {
    let lab = lab();
    let _dns = must(&lab, "dns", lab.start_dns());
    let _web = must(&lab, "upstream", lab.start_upstream());
    let lassi = must(&lab, "lassi", lab.start_lassi(""));
    let client = leased_guest(&lab);
    let wd = WebDriver::start_with_lang(&lab, client, "de-DE")
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs_report(30)));
    wd.goto("http://example.test/");
    let url = wd.wait_for_url(|u| u.starts_with(PORTAL));
    assert_eq!(param(&url, "userurl"), "http://example.test/", "{url}");
    let src = wd.source();
    assert!(src.contains("value=\"http://example.test/\""), "{src}");
    assert!(src.contains("Nutzungsbedingungen"), "{src}");
    wd.click("#accept");
    wd.click("#login");
    let url = wd.wait_for_url(|u| !u.starts_with(PORTAL));
    assert_eq!(url, "http://example.test/");
    assert!(
        wd.source().contains("lassi lab upstream"),
        "{}",
        wd.source()
    );
    let s = session_of(&lassi, client);
    assert_eq!(s["state"], "authorized");
    assert_eq!(s["user"], "guest");
    drop(wd);
}
