//! The OpenWrt package's default /etc/config/lassi runs a working hotspot:
//! the procd init script's command line (`$PROG run --config $CONFIG`,
//! from packaging/openwrt/lassi/files/lassi.init) starts lassi in the
//! namespace lab on the packaged UCI file, and a real udhcpc client gets a
//! lease, is redirected to the splash page, clicks through and reaches the
//! upstream web server (root only; CI runs it through tests/run-all).
//!
//! The file is used as shipped except for what differs between a router
//! and the lab, each a whole-line replacement that must match: `enabled`
//! (read by the init script only), the LAN device (`br-lan` → the lab's
//! `lan0`), the DNS server (the router's own dnsmasq → the lab's upstream
//! resolver), and the control socket and state directory (into the lab's
//! directory, so parallel tests do not meet).

use std::path::Path;

use lassi_lab::portal::{page_challenge, param};
use lassi_lab::{must, Lab, LabOptions};

const PORTAL: &str = "http://10.1.0.1:3990";
const WEB: &str = "http://198.51.100.10";

fn package_file(name: &str) -> String {
    let path = format!(
        "{}/packaging/openwrt/lassi/files/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `text` with the one line equal (trimmed) to `from` replaced by `to`.
fn replace_line(text: &str, from: &str, to: &str) -> String {
    let hits = text.lines().filter(|l| l.trim() == from).count();
    assert_eq!(hits, 1, "expected one line `{from}` in the packaged config");
    text.lines()
        .map(|l| {
            if l.trim() == from {
                format!("\t{to}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The packaged config, adapted to the lab in `dir`.
fn lab_uci_config(dir: &Path) -> String {
    let mut text = package_file("lassi.config");
    for (from, to) in [
        (
            "option enabled '0'".to_string(),
            "option enabled '1'".to_string(),
        ),
        (
            "option interface 'br-lan'".into(),
            "option interface 'lan0'".into(),
        ),
        (
            "list dns '10.1.0.1'".into(),
            "list dns '198.51.100.53'".into(),
        ),
        (
            "option socket '/var/run/lassi/control.sock'".into(),
            format!("option socket '{}'", dir.join("control.sock").display()),
        ),
        (
            "option dir '/var/lib/lassi'".into(),
            format!("option dir '{}'", dir.join("state").display()),
        ),
    ] {
        text = replace_line(&text, &from, &to);
    }
    text
}

/// The init script's instance command line, with `$PROG` and `$CONFIG`
/// expanded to `bin` and `config`.
fn init_command(bin: &Path, config: &Path) -> Vec<String> {
    let init = package_file("lassi.init");
    let line = init
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("procd_set_param command "))
        .expect("the init script sets procd's command");
    line["procd_set_param command ".len()..]
        .split_whitespace()
        .map(|w| match w {
            "\"$PROG\"" => bin.display().to_string(),
            "\"$CONFIG\"" => config.display().to_string(),
            w => {
                assert!(
                    !w.contains(['$', '"', '\'']),
                    "unexpected word {w} in {line}"
                );
                w.to_string()
            }
        })
        .collect()
}

#[test]
fn the_packaged_uci_config_runs_a_hotspot_a_guest_gets_online_through() {
    let lab = Lab::new(LabOptions::default()).unwrap_or_else(|e| panic!("building the lab: {e}"));
    let web = must(&lab, "upstream", lab.start_upstream());
    let dir = lab.dir().join("openwrt");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let config = dir.join("lassi"); // as /etc/config/lassi: no extension
    std::fs::write(&config, lab_uci_config(&dir)).unwrap();
    let argv = init_command(&lab.lassi_bin(), &config);
    assert_eq!(argv[1..3], ["run".to_string(), "--config".to_string()]);
    println!("procd command as run: {argv:?}");

    let mut lassi = must(
        &lab,
        "starting lassi as procd would",
        lab.spawn_lassi_command(&argv, &dir.join("lassi.log"), &dir.join("control.sock")),
    );

    let client = lab.client(1);
    let lease = must(&lab, "udhcpc", client.udhcpc());
    assert!(lease.ip.to_string().starts_with("10.1.0."), "{lease:?}");
    // Values from the UCI file, as the client saw them.
    assert_eq!(lease.domain.as_deref(), Some("hotspot.lan"), "{lease:?}");
    assert_eq!(lease.lease_time, 300, "unauthorized_lease_time: {lease:?}");
    assert_eq!(
        lease.dns,
        ["198.51.100.53".parse::<std::net::Ipv4Addr>().unwrap()]
    );

    let r = must(
        &lab,
        "curl before login",
        client.curl(&[&format!("{WEB}/welcome")]),
    );
    assert_eq!(r.http_code, 302, "{r:?}");
    let loc = r.header("location").unwrap_or_default();
    assert_eq!(param(&loc, "nasid"), "lassi", "{loc}");
    assert_eq!(
        web.requests_to("/welcome").len(),
        0,
        "nothing reached upstream before login"
    );

    let page = must(&lab, "splash", client.curl(&[&loc]));
    let chal = page_challenge(&page.text());
    let ok = must(
        &lab,
        "click-through logon",
        client.curl(&[
            "-d",
            &format!("challenge={chal}&accept=1"),
            &format!("{PORTAL}/logon"),
        ]),
    );
    assert!(ok.http_code == 200 || ok.http_code == 302, "{ok:?}");
    let page = must(
        &lab,
        "web after login",
        client.curl(&[&format!("{WEB}/welcome")]),
    );
    assert!(page.ok(), "{page:?}");
    assert_eq!(web.requests_to("/welcome").len(), 1);
    assert!(lassi.is_running(), "{}", lassi.describe("lassi stopped"));
    lassi.stop();
}
