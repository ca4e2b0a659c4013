//! The command line without root: config checking and error reporting.

use std::path::PathBuf;
use std::process::Command;

fn lassi() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lassi"))
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lassi-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_config_accepts_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lassi.toml");
    let out = lassi().args(["check-config", example]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_config_refuses_a_broken_file_naming_the_key() {
    let cases = [
        ("gw.toml", "[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"192.0.2.53\"]\ngateway = \"10.9.9.9\"\n", "lan.gateway"),
        ("unknown.toml", "[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"192.0.2.53\"]\nleese_time = 60\n", "leese_time"),
        ("nat.toml", "[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"192.0.2.53\"]\n[uplink]\nnat = true\n", "uplink.nat"),
        ("syntax.toml", "[lan\n", "line 1"),
    ];
    for (name, text, needle) in cases {
        let p = write(name, text);
        let out = lassi()
            .args(["check-config", p.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "{name}: error does not name {needle}: {err}"
        );
    }
    // A broken users file is caught here, not at the next start.
    let users = write("users", "alice plain:secret\nbob $6$broken\n");
    let cfg = write(
        "local.toml",
        &format!(
            "[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"192.0.2.53\"]\n[portal]\nauth = \"local\"\nusers_file = \"{}\"\n",
            users.display()
        ),
    );
    let out = lassi()
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a broken users file was accepted");
    assert!(
        err.contains("portal.users_file") && err.contains("line 2"),
        "{err}"
    );
    let out = lassi()
        .args(["check-config", "/nonexistent/lassi.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn control_commands_explain_when_lassi_is_not_running() {
    let out = lassi()
        .args(["sessions", "--control", "/nonexistent/lassi.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `lassi run` running?"));
    let out = lassi()
        .args(["reload", "--control", "/nonexistent/lassi.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "reload without a lassi succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `lassi run` running?"));
    let out = lassi().args(["authorize", "not-a-mac"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a MAC address"));
}
