//! The Debian package's systemd unit (packaging/debian/lassi.service) runs
//! a lassi that works: its `ExecStart=` command line, word for word, starts
//! lassi in the namespace lab, and a real udhcpc client gets a lease and is
//! redirected to the portal (root only; CI runs it, `tests/run-all`, which
//! also builds the .deb and has `systemd-analyze verify` check the unit).
//! Only two words of the line are replaced: the installed binary's path by
//! the binary under test and the installed config's path by the lab's
//! config. A second test, without root, checks that the unit and the
//! packaged default config agree on where state and the control socket go.

use std::path::{Path, PathBuf};

use lassi::config::Config;
use lassi_lab::gateway::emit_toml;
use lassi_lab::{must, Lab, LabOptions};

/// Where the package installs the binary and the default config
/// (packaging/debian/build-deb).
const INSTALLED_BIN: &str = "/usr/sbin/lassi";
const INSTALLED_CONFIG: &str = "/etc/lassi/lassi.toml";
const WEB: &str = "http://198.51.100.10/welcome";

fn unit_text() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/debian/lassi.service"
    );
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value of `key=` in the unit's `[Service]` section (the only one;
/// the unit must not set it twice).
fn service_value(unit: &str, key: &str) -> String {
    let mut section = "";
    let mut found = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if let Some((k, v)) = line.split_once('=') {
            if section == "[Service]" && k.trim() == key {
                found.push(v.trim().to_string());
            }
        }
    }
    assert_eq!(found.len(), 1, "{key}= in [Service]: {found:?}");
    found.remove(0)
}

/// The unit's ExecStart= as an argv. Only the plain form is accepted (no
/// quoting, `$`/`%` expansion, line continuation or `-@:+!` prefixes), so
/// that splitting on white space is exactly what systemd does with it.
fn exec_start(unit: &str) -> Vec<String> {
    let line = service_value(unit, "ExecStart");
    assert!(
        !line.contains(['"', '\'', '\\', '$', '%', ';']),
        "ExecStart= uses syntax this test does not model: {line}"
    );
    assert!(
        !line.starts_with(['-', '@', ':', '+', '!']),
        "ExecStart= has a prefix: {line}"
    );
    line.split_whitespace().map(str::to_string).collect()
}

/// `argv` with the installed binary and config replaced by `bin` and
/// `config`; panics unless each appears exactly once (the binary first).
fn substituted(argv: &[String], bin: &Path, config: &Path) -> Vec<String> {
    assert_eq!(argv.first().map(String::as_str), Some(INSTALLED_BIN));
    let uses = argv.iter().filter(|a| *a == INSTALLED_CONFIG).count();
    assert_eq!(uses, 1, "{INSTALLED_CONFIG} in ExecStart= {argv:?}");
    let mut out: Vec<String> = argv.to_vec();
    out[0] = bin.display().to_string();
    for a in out.iter_mut().filter(|a| *a == INSTALLED_CONFIG) {
        *a = config.display().to_string();
    }
    out
}

#[test]
fn exec_start_of_the_unit_runs_a_gateway_that_leases_and_redirects() {
    let lab = Lab::new(LabOptions::default()).unwrap_or_else(|e| panic!("building the lab: {e}"));
    let dir = lab.dir().join("debian-unit");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let config = dir.join("lassi.toml");
    std::fs::write(&config, emit_toml(&Lab::default_lassi_config(&dir))).unwrap();
    let argv = substituted(&exec_start(&unit_text()), &lab.lassi_bin(), &config);
    println!("ExecStart as run: {argv:?}");

    let mut lassi = must(
        &lab,
        "starting lassi with the unit's ExecStart",
        lab.spawn_lassi_command(&argv, &dir.join("lassi.log"), &dir.join("control.sock")),
    );

    let client = lab.client(1);
    let lease = must(&lab, "udhcpc", client.udhcpc());
    assert!(lease.ip.to_string().starts_with("10.1.0."), "{lease:?}");
    let r = must(&lab, "curl", client.curl(&[WEB]));
    assert_eq!(r.http_code, 302, "{r:?}");
    let loc = r.header("location").unwrap_or_default();
    assert!(
        loc.starts_with("http://10.1.0.1:3990/?res=notyet&uamip=10.1.0.1&uamport=3990&"),
        "redirect: {loc}"
    );
    assert!(lassi.is_running(), "{}", lassi.describe("lassi stopped"));
    lassi.stop();
}

/// The packaged default config (examples/lassi.toml, installed as
/// /etc/lassi/lassi.toml) keeps its state in the unit's StateDirectory=
/// and its control socket in the RuntimeDirectory=, the only places the
/// unit lets lassi write (ProtectSystem=strict).
#[test]
fn default_config_writes_only_where_the_unit_allows() {
    let unit = unit_text();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lassi.toml");
    let cfg = Config::load(Path::new(example)).unwrap_or_else(|e| panic!("{example}: {e}"));
    let state = PathBuf::from("/var/lib").join(service_value(&unit, "StateDirectory"));
    let runtime = PathBuf::from("/run").join(service_value(&unit, "RuntimeDirectory"));
    assert!(cfg.state.dir.starts_with(&state), "{:?}", cfg.state.dir);
    assert!(
        cfg.control.socket.starts_with(&runtime),
        "{:?}",
        cfg.control.socket
    );
    assert_eq!(service_value(&unit, "ProtectSystem"), "strict");
    let caps = "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE";
    assert_eq!(service_value(&unit, "CapabilityBoundingSet"), caps);
    assert_eq!(service_value(&unit, "AmbientCapabilities"), caps);
    assert_eq!(service_value(&unit, "Restart"), "on-failure");
    assert_eq!(
        exec_start(&unit)[..2],
        [INSTALLED_BIN.to_string(), "run".to_string()]
    );
    // `systemctl reload` asks the running lassi on the socket the packaged
    // config puts it on.
    let reload: Vec<String> = service_value(&unit, "ExecReload")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        reload,
        [
            INSTALLED_BIN.to_string(),
            "reload".into(),
            "--control".into(),
            cfg.control.socket.display().to_string()
        ]
    );
}
