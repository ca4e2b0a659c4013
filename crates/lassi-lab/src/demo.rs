//! `lassi lab`: a guided run of lassi with a real client, for an operator
//! trying lassi for the first time (needs root and the peer packages).

use super::topology::{addrs, Lab, LabOptions};
use super::upstream::{expected_checksum, pattern_checksum};
use super::LabResult;
use std::path::Path;
use std::time::Instant;

/// Size of the download in the demo.
const DOWNLOAD: usize = 1 << 20;

struct Steps {
    n: u32,
    started: Instant,
}

impl Steps {
    fn step(&mut self, what: &str) {
        self.n += 1;
        println!(
            "\n[{:>5.1}s] {}. {what}",
            self.started.elapsed().as_secs_f64(),
            self.n
        );
    }
}

fn say(s: &str) {
    for l in s.lines() {
        println!("          {l}");
    }
}

/// Builds a lab with one client, runs `lassi_bin` as its gateway and walks
/// through lease → redirected → splash page → login → browse → logout →
/// redirected again,
/// printing each step. Everything it creates is removed before it returns,
/// on success and on failure.
pub fn run_demo(lassi_bin: &Path) -> Result<(), String> {
    demo(lassi_bin).map_err(|e| e.0)
}

/// Checks what the lab needs before building anything: root, and the peer
/// programs on `PATH` (`programs`), naming the Debian package of any that
/// is missing.
pub fn check_prerequisites(programs: &[&str]) -> LabResult<()> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(super::LabError::new(
            "the lab needs root: it creates network namespaces (run it with sudo, or as root in a container)",
        ));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut missing = Vec::new();
    for p in programs {
        let found = std::env::split_paths(&path)
            .chain([std::path::PathBuf::from("/usr/sbin"), "/sbin".into()])
            .any(|d| d.join(p).is_file());
        if !found {
            let pkg = match *p {
                "ip" => "iproute2",
                "dhclient" => "isc-dhcp-client",
                "dhcpcd" => "dhcpcd-base",
                "nft" => "nftables",
                other => other,
            };
            missing.push(format!("{p} (package {pkg})"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(super::LabError::new(format!(
            "the lab needs these programs: {}",
            missing.join(", ")
        )))
    }
}

/// lassi's portal as the lab's client sees it.
const PORTAL: &str = "http://10.1.0.1:3990/";

/// One query parameter of a URL, percent-decoding left to the caller (the
/// values read here are hex).
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn demo(lassi_bin: &Path) -> LabResult<()> {
    check_prerequisites(&["ip", "dnsmasq", "udhcpc", "curl", "ethtool"])?;
    if !lassi_bin.is_file() {
        return Err(super::LabError::new(format!(
            "no lassi binary at {}",
            lassi_bin.display()
        )));
    }
    let mut s = Steps {
        n: 0,
        started: Instant::now(),
    };
    println!(
        "lassi lab: a captive-portal gateway with one real client, all inside network namespaces."
    );
    println!(
        "Nothing here touches the machine's real interfaces; everything is removed at the end."
    );

    s.step("Building the lab: client ─ switch ─ gateway (lassi) ─ upstream \"internet\"");
    let lab = Lab::new(LabOptions {
        clients: 1,
        lassi_bin: Some(lassi_bin.to_path_buf()),
        ..LabOptions::default()
    })?;
    let client = lab.client(1);
    say(&format!("namespaces: {}", lab.namespace_names().join(", ")));
    say(&format!(
        "client eth0 MAC {}, gateway lan0 (no IP; lassi owns it), wan0 {}",
        client.mac(),
        addrs::GW_WAN
    ));

    s.step("Starting the upstream web server (198.51.100.10) and DNS server (198.51.100.53)");
    let web = lab.start_upstream()?;
    let _dns = lab.start_dns()?;
    say("web: http://198.51.100.10/ and http://example.test/  dns: dnsmasq");

    s.step(&format!(
        "Starting `{} run` in the gateway namespace",
        lassi_bin.display()
    ));
    let lassi = lab.start_lassi("")?;
    say(&format!("config {}:", lassi.config_path().display()));
    say(&lassi.config_text());
    say(&format!(
        "control socket {} is up",
        lassi.control_socket().display()
    ));

    s.step("The client asks for an address with udhcpc (BusyBox)");
    let lease = client.udhcpc()?;
    say(&lease.to_string());

    s.step("Before login: the guest's browser opens http://example.test/welcome");
    let r = client.curl(&["--max-time", "5", "http://example.test/welcome"])?;
    say(&r.to_string());
    let Some(splash) = r.header("location").filter(|l| l.starts_with(PORTAL)) else {
        return Err(super::LabError::new(format!(
            "the unauthorized client was not redirected to the portal: {r}\nlassi log:\n{}",
            lassi.log_tail(40)
        )));
    };
    say(&format!("redirected to the splash page: {splash}"));
    if !web.requests().is_empty() {
        return Err(super::LabError::new(
            "the upstream server saw the unauthorized client",
        ));
    }
    say("the upstream server saw nothing");

    s.step("The guest opens the splash page and accepts the terms (click-through)");
    let page = client.curl(&[splash.as_str()])?;
    say(&format!("splash page: {page}"));
    let challenge = query_param(&splash, "challenge").unwrap_or_default();
    let form =
        format!("challenge={challenge}&accept=1&userurl=http%3A%2F%2Fexample.test%2Fwelcome");
    let r = client.curl(&["-d", form.as_str(), &format!("{PORTAL}logon")])?;
    say(&r.to_string());
    match r.header("location") {
        Some(l) if r.http_code == 302 && l == "http://example.test/welcome" => {
            say(&format!("logged in; sent back to {l}"))
        }
        _ => {
            return Err(super::LabError::new(format!(
                "the login did not succeed: {r}\nlassi log:\n{}",
                lassi.log_tail(40)
            )))
        }
    }

    s.step("Online: the page the guest asked for, then 1 MiB of data");
    let r = client.curl(&["http://example.test/welcome"])?;
    say(&r.to_string());
    if !r.ok() {
        return Err(super::LabError::new(format!(
            "the logged-in client did not get the page: {r}\nlassi log:\n{}",
            lassi.log_tail(40)
        )));
    }
    let r = client.curl(&[format!("http://198.51.100.10/bytes/{DOWNLOAD}")])?;
    let good = r.ok()
        && r.body.len() == DOWNLOAD
        && pattern_checksum(&r.body) == expected_checksum(DOWNLOAD as u64);
    say(&format!(
        "{r}; content {}",
        if good { "verified" } else { "WRONG" }
    ));
    if !good {
        return Err(super::LabError::new(format!(
            "download failed or corrupted: {r}"
        )));
    }
    for req in web.requests() {
        say(&format!(
            "upstream saw: {} {} (Host {}) from {}",
            req.method,
            req.path,
            req.host.as_deref().unwrap_or("-"),
            req.peer
        ));
    }

    s.step("lassi sessions");
    say(&lassi.sessions_text()?);

    s.step("The guest logs out on the portal; the next page is the splash page again");
    // The logout button's POST (a bare GET is refused as cross-site).
    let r = client.curl(&["-X", "POST", format!("{PORTAL}logoff").as_str()])?;
    say(&r.to_string());
    let r = client.curl(&["--max-time", "5", "http://example.test/welcome"])?;
    say(&r.to_string());
    if r.ok() || !r.header("location").is_some_and(|l| l.starts_with(PORTAL)) {
        return Err(super::LabError::new(format!(
            "after logout the client was not sent back to the portal: {r}"
        )));
    }
    say("redirected to the splash page again");
    say(&lassi
        .log()
        .lines()
        .filter(|l| l.contains("session ended"))
        .collect::<Vec<_>>()
        .join("\n"));

    s.step("Cleaning up (lassi, servers, namespaces)");
    drop(lassi);
    drop(web);
    drop(_dns);
    drop(lab);
    say("done");
    println!("\nlassi lab: all steps passed.");
    Ok(())
}
