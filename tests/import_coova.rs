//! `lassi import-coova` end to end: a CoovaChilli HS_* config written in the
//! lab's addresses (tests/fixtures/coova/lab/config) is imported by the
//! `lassi` binary, lassi runs from the result in the namespace lab, a real
//! udhcpc gets a lease, curl meets CoovaChilli's redirect (parameters and
//! `md` signed with the uamsecret) and a login is checked by a real
//! FreeRADIUS (root only; CI runs it, `tests/run-all`). A second test runs
//! the command on every fixture form without root and checks the output
//! with `lassi check-config`.

use std::process::Command;

use lassi::portal::uam;
use lassi_lab::radius::FreeRadiusOptions;
use lassi_lab::{must, Guest, Lab, LabOptions};

const PORTAL: &str = "http://10.1.0.1:3990";
const SECRET: &str = "uamsecret";
const USERS: &str = "coova\tCleartext-Password := \"chilli\"\n";

/// The lassi config `lassi import-coova` prints for the lab fixture, and its stderr.
fn imported(lab: &Lab) -> (String, String) {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/coova/lab/config"
    );
    let out = Command::new(lab.lassi_bin())
        .args(["import-coova", fixture])
        .output()
        .expect("running lassi import-coova");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "import-coova failed: {stderr}");
    (String::from_utf8(out.stdout).expect("utf-8"), stderr)
}

fn param(url: &str, k: &str) -> String {
    uam::parse_query(url.split_once('?').map(|x| x.1).unwrap_or(""), 64)
        .into_iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn state(lassi: &lassi_lab::LassiHandle, client: &Guest) -> String {
    let v = lassi.sessions_json().expect("lassi sessions --json");
    v.as_array()
        .and_then(|a| a.iter().find(|c| c["mac"] == client.mac().to_string()))
        .and_then(|c| c["state"].as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn imported_coova_config_serves_a_lease_the_coova_redirect_and_a_radius_login() {
    let lab = Lab::new(LabOptions::default()).unwrap_or_else(|e| panic!("building the lab: {e}"));
    let (config, warnings) = imported(&lab);
    assert!(warnings.contains("config:18: HS_MODE"), "{warnings}");
    assert!(config.contains("HS_MODE"), "{config}");
    let fr = must(
        &lab,
        "freeradius",
        lab.start_freeradius(FreeRadiusOptions::lab(USERS)),
    );
    let lassi = must(&lab, "lassi", lab.start_lassi(&config));
    let client = lab.client(1);
    let lease = must(&lab, "udhcpc", client.udhcpc());
    assert_eq!(
        lease.router.map(|r| r.to_string()).as_deref(),
        Some("10.1.0.1")
    );
    assert_eq!(
        lease.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        ["198.51.100.53"]
    );

    // Any web page: CoovaChilli's redirect to HS_UAMFORMAT, signed with md.
    let r = must(&lab, "curl", client.curl(&["http://203.0.113.80/news"]));
    assert_eq!(r.http_code, 302, "{r:?}");
    let loc = r.header("location").expect("location");
    assert!(
        loc.starts_with(
            "http://198.51.100.10/hotspotlogin?res=notyet&uamip=10.1.0.1&uamport=3990&challenge="
        ),
        "{loc}"
    );
    assert_eq!(param(&loc, "nasid"), "coova-lab");
    assert_eq!(
        param(&loc, "mac"),
        client.mac().to_string().replace(':', "-").to_uppercase()
    );
    assert_eq!(param(&loc, "ip"), lease.ip.to_string());
    assert_eq!(param(&loc, "userurl"), "http://203.0.113.80/news");
    let (signed, md) = loc.rsplit_once("&md=").expect("md last");
    assert_eq!(
        md,
        uam::hex(&uam::md5(&[signed.as_bytes(), SECRET.as_bytes()])).to_uppercase()
    );

    // The splash server's logon (PAP, hex XOR with the derived challenge),
    // checked by FreeRADIUS.
    let c: uam::Challenge = uam::unhex(&param(&loc, "challenge"))
        .unwrap()
        .try_into()
        .unwrap();
    let key = uam::derived_challenge(&c, Some(SECRET));
    let pw = uam::encode_password("chilli", &key);
    let r = must(
        &lab,
        "logon",
        client.curl(&[format!("{PORTAL}/logon?username=coova&password={pw}").as_str()]),
    );
    let ok = r
        .header("location")
        .unwrap_or_else(|| panic!("no redirect: {r:?}\n{}", lassi.log_tail(30)));
    assert!(ok.contains("?res=success&"), "{ok}\n{}", fr.log_tail(30));
    assert_eq!(state(&lassi, client), "authorized");
    assert!(
        fr.log().contains("Login OK: [coova/chilli]"),
        "{}",
        fr.log_tail(30)
    );
}

/// Runs `lassi ARGS…`: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lassi"))
        .args(args)
        .output()
        .expect("running lassi");
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Without root: the command's output for each form passes `lassi
/// check-config`, with one stderr line per unmapped option; chilli.conf's
/// `include` is found beside the file and localusers are converted.
#[test]
fn import_coova_output_passes_check_config_in_every_form() {
    let dir = std::env::temp_dir().join(format!("lassi-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/coova");
    let conf = std::fs::read_to_string(format!("{fixtures}/chilli.conf")).unwrap();
    let conf = conf.replace("/etc/chilli/localusers", &format!("{fixtures}/localusers"));
    std::fs::write(dir.join("chilli.conf"), conf).unwrap();
    std::fs::copy(
        format!("{fixtures}/chilli-radius.conf"),
        dir.join("chilli-radius.conf"),
    )
    .unwrap();
    let users = dir.join("users").display().to_string();
    let chilli_conf = dir.join("chilli.conf").display().to_string();
    let forms: [(Vec<String>, usize); 3] = [
        (
            vec![format!("{fixtures}/defaults"), format!("{fixtures}/config")],
            7,
        ),
        (vec![chilli_conf, "--users-out".into(), users.clone()], 6),
        (vec![format!("{fixtures}/uci-chilli")], 4),
    ];
    for (i, (files, unmapped)) in forms.iter().enumerate() {
        let mut args = vec!["import-coova"];
        args.extend(files.iter().map(String::as_str));
        let (ok, toml, err) = run(&args);
        assert!(ok, "{args:?}: {err}");
        let warnings = err
            .lines()
            .filter(|l| l.starts_with("lassi: warning: "))
            .count();
        assert_eq!(warnings, *unmapped, "{args:?}: {err}");
        assert_eq!(
            toml.lines().filter(|l| l.starts_with("#   ")).count(),
            *unmapped,
            "{toml}"
        );
        let out = dir.join(format!("imported-{i}.toml"));
        std::fs::write(&out, &toml).unwrap();
        let (ok, stdout, err) = run(&["check-config", out.to_str().unwrap()]);
        assert!(ok, "{toml}\n{err}");
        assert!(stdout.contains(": ok"), "{stdout}");
    }
    let converted = std::fs::read_to_string(&users).unwrap();
    assert!(converted.contains("guest plain:welcome"), "{converted}");
    let _ = std::fs::remove_dir_all(&dir);
}
