//! The Prometheus metrics endpoint end to end: lassi in the lab's gateway
//! namespace with `[metrics] listen` on the namespace's loopback, a private
//! FreeRADIUS in the upstream namespace judging logins, a guest that logs in
//! through the portal with curl and downloads 10 MB from the upstream web
//! server, and curl scraping the endpoint before and after. The judges are
//! the guest's own interface counters (the IP bytes it received), what
//! FreeRADIUS answered, and Debian's `promtool check metrics`.
//! Root only; CI runs them (`tests/run-all`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lassi_lab::gateway::{emit_toml, merge_toml};
use lassi_lab::must;
use lassi_lab::netns::wait_until;
use lassi_lab::portal::page_challenge;
use lassi_lab::radius::{self as radius, FreeRadiusOptions, RADIUS_ADDR};
use lassi_lab::{CurlResult, Guest, Lab, LabOptions};
use serde_json::Value;

const PORTAL: &str = "http://10.1.0.1:3990";
const WEB: &str = "198.51.100.10";
const LISTEN: &str = "127.0.0.1:9464";
const DOWNLOAD: usize = 10_000_000;

const USERS: &str = r#"
bob	Cleartext-Password := "hello"
"#;

/// A user name chosen to break a naive exposition if it ever reached one.
const HOSTILE_USER: &str = "evil\"} 1\nlassi_fake_total{x=\"\\";

/// lassi's config: RADIUS logins against the lab's FreeRADIUS, plus `extra`.
fn config(extra: &str) -> String {
    let mut base: toml::Table = radius::lassi_toml().parse().expect("radius toml");
    merge_toml(&mut base, extra.parse().expect("extra toml"));
    emit_toml(&base)
}

/// One scrape: the answer's headers and body.
struct Scrape {
    headers: String,
    body: String,
}

impl Scrape {
    /// The value of the sample written exactly as `series` (name and labels).
    fn value(&self, series: &str) -> f64 {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} in\n{}", self.body))
    }
}

/// GET /metrics from inside the gateway namespace.
fn scrape(lab: &Lab) -> Scrape {
    let url = format!("http://{LISTEN}/metrics");
    let out = must(
        lab,
        "scrape",
        lab.gw()
            .exec(&["curl", "-sS", "--max-time", "5", "-D", "/dev/stderr", &url]),
    );
    Scrape {
        headers: out.stderr,
        body: out.stdout,
    }
}

/// `promtool check metrics` on an exposition: exit status 0 and nothing
/// printed (it prints every problem it finds, lint included).
fn promtool_accepts(dir: &Path, body: &str) {
    let file = dir.join("scrape.txt");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}\n{body}");
    assert!(said.trim().is_empty(), "promtool found problems: {said}");
}

/// Logs in on lassi's own pages (challenge from the splash page).
fn login(lab: &Lab, client: &Guest, user: &str, pw: &str) -> CurlResult {
    let page = must(lab, "splash", client.curl(&[format!("{PORTAL}/").as_str()]));
    let chal = page_challenge(&page.text());
    must(
        lab,
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

/// The guest's eth0 receive counters: (bytes, packets) of whole frames.
fn rx_counters(lab: &Lab, client: &Guest) -> (u64, u64) {
    let out = must(
        lab,
        "ip -s link",
        client.ns().ip(&["-s", "-j", "link", "show", "eth0"]),
    );
    let v: Value = serde_json::from_str(&out.stdout).expect("ip -j");
    let rx = &v[0]["stats64"]["rx"];
    (
        rx["bytes"].as_u64().unwrap(),
        rx["packets"].as_u64().unwrap(),
    )
}

#[test]
fn metrics_follow_logins_radius_and_a_10_mb_download() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let _fr = must(
        &lab,
        "freeradius",
        lab.start_freeradius(FreeRadiusOptions::lab(USERS)),
    );
    let lassi = must(
        &lab,
        "lassi",
        lab.start_lassi(&config(&format!("[metrics]\nlisten = \"{LISTEN}\"\n"))),
    );
    let _web = must(&lab, "upstream", lab.start_upstream());
    let guest = lab.client(1);
    must(&lab, "udhcpc", guest.udhcpc());

    let start = scrape(&lab);
    assert!(
        start
            .headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        start.headers
    );
    promtool_accepts(lab.dir(), &start.body);
    let server = format!("server=\"{RADIUS_ADDR}:1812\"");
    let access = format!("lassi_radius_requests_total{{{server},type=\"access\"}}");
    let rejects = format!("lassi_radius_responses_total{{{server},code=\"access_reject\"}}");
    let accepts = format!("lassi_radius_responses_total{{{server},code=\"access_accept\"}}");
    let timed = format!("lassi_radius_response_seconds_count{{{server}}}");
    let logins = |r: &str| format!("lassi_portal_logins_total{{result=\"{r}\"}}");
    assert_eq!(
        start.value(&format!("lassi_radius_server_up{{{server}}}")),
        1.0
    );
    assert_eq!(start.value("lassi_sessions{state=\"unauthorized\"}"), 1.0);
    assert_eq!(start.value("lassi_authorized_clients"), 0.0);

    // A wrong password, with a user name full of exposition syntax.
    let r = login(&lab, guest, HOSTILE_USER, "nope");
    assert_ne!(r.http_code, 302, "{r:?}");
    let refused = scrape(&lab);
    assert_eq!(
        refused.value(&logins("reject")) - start.value(&logins("reject")),
        1.0
    );
    assert_eq!(
        refused.value(&logins("success")),
        start.value(&logins("success"))
    );
    assert_eq!(refused.value(&access) - start.value(&access), 1.0);
    assert_eq!(refused.value(&rejects) - start.value(&rejects), 1.0);
    assert!(
        !refused.body.contains("lassi_fake_total"),
        "{}",
        refused.body
    );
    promtool_accepts(lab.dir(), &refused.body);

    // The right one.
    let r = login(&lab, guest, "bob", "hello");
    assert_eq!(r.http_code, 302, "{r:?}\n{}", lassi.log_tail(20));
    let before = scrape(&lab);
    assert_eq!(
        before.value(&logins("success")) - refused.value(&logins("success")),
        1.0
    );
    assert_eq!(before.value(&accepts) - refused.value(&accepts), 1.0);
    assert_eq!(before.value(&access) - start.value(&access), 2.0);
    assert!(before.value(&timed) >= start.value(&timed) + 2.0);
    assert_eq!(before.value("lassi_authorized_clients"), 1.0);
    assert_eq!(before.value("lassi_sessions{state=\"authorized\"}"), 1.0);

    // 10 MB down: the counter rises by the IP bytes the guest received.
    let (bytes0, packets0) = rx_counters(&lab, guest);
    let r = must(
        &lab,
        "download",
        guest.curl(&[format!("http://{WEB}/bytes/{DOWNLOAD}").as_str()]),
    );
    assert!(r.ok() && r.body.len() == DOWNLOAD, "{r:?}");
    let (bytes1, packets1) = rx_counters(&lab, guest);
    // Offloads are off in the lab: every frame is one IP packet behind a
    // 14-byte Ethernet header.
    let received_ip = (bytes1 - bytes0) - 14 * (packets1 - packets0);
    let after = scrape(&lab);
    let down = "lassi_client_bytes_total{direction=\"download\"}";
    let counted = after.value(down) - before.value(down);
    let ratio = counted / received_ip as f64;
    println!("download counter +{counted}, guest received {received_ip} IP bytes ({ratio:.4})");
    assert!(
        (0.97..=1.03).contains(&ratio),
        "counted {counted} vs received {received_ip}"
    );
    assert!(counted >= DOWNLOAD as f64, "{counted} < the body alone");
    let up = "lassi_client_bytes_total{direction=\"upload\"}";
    assert!(after.value(up) > before.value(up));
    let packets = "lassi_client_packets_total{direction=\"download\"}";
    assert!(after.value(packets) - before.value(packets) >= (DOWNLOAD / 1500) as f64);
    assert_eq!(after.value("lassi_authorized_clients"), 1.0);
    let cpu = "lassi_dataplane_cpu_seconds_total{worker=\"0\"}";
    assert!(after.value(cpu) > before.value(cpu), "the forwarder worked");
    promtool_accepts(lab.dir(), &after.body);

    // The endpoint is where the operator put it, not on the guests' side.
    let r = must(
        &lab,
        "guest scrape",
        guest.curl(&["--max-time", "3", "http://10.1.0.1:9464/metrics"]),
    );
    assert!(
        !r.ok() && r.http_code == 0,
        "a guest reached the metrics: {r:?}"
    );
}

/// TCP ports listening in the gateway namespace.
fn listening_ports(lab: &Lab) -> Vec<String> {
    let out = must(lab, "ss", lab.gw().exec(&["ss", "-ltnH"]));
    out.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

#[test]
fn metrics_are_off_by_default() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    let mut lassi = must(&lab, "lassi", lab.start_lassi(""));
    must(&lab, "udhcpc", lab.client(1).udhcpc());
    let ports = listening_ports(&lab);
    // lassi listens for its portal only.
    assert!(
        ports.iter().all(|p| p.ends_with(":3990")),
        "listening: {ports:?}"
    );
    // The same gateway with the key set: the endpoint appears (so the
    // check above could see one).
    lassi.stop();
    let text = lassi.config_text() + &format!("\n[metrics]\nlisten = \"{LISTEN}\"\n");
    must(&lab, "config", lassi.set_config_text(&text));
    must(&lab, "restart", lassi.start_again());
    let up = wait_until(Duration::from_secs(5), || {
        listening_ports(&lab)
            .contains(&LISTEN.to_string())
            .then_some(())
    });
    assert!(up.is_some(), "listening: {:?}", listening_ports(&lab));
    assert!(scrape(&lab)
        .body
        .contains("lassi_sessions{state=\"unauthorized\"} 1"));
}

#[test]
fn a_bad_listen_address_stops_lassi_naming_the_key() {
    let lab = Lab::new(LabOptions::default()).expect("lab");
    // 192.0.2.77 is no address of the gateway: it cannot be bound.
    let r = lab.start_lassi("[metrics]\nlisten = \"192.0.2.77:9464\"\n");
    let Err(e) = r else {
        panic!("lassi started with an unusable metrics.listen");
    };
    assert!(e.to_string().contains("metrics.listen"), "{e}");
}
