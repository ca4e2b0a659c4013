//! Real peers run inside a client namespace: the three DHCP clients
//! (one-shot, with private scripts, lease and pid files) and curl.
//!
//! No peer ever sees the host's `/etc/resolv.conf`: every command in a
//! client namespace runs with the lab's private resolv.conf bind-mounted over
//! it, and the DHCP clients get scripts of ours instead of their default
//! ones (which would rewrite resolv.conf).

use super::netns::{read_lossy, wait_until, CmdOutput, ExecOptions};
use super::topology::Guest;
use super::{IoContext, LabError, LabResult};
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which DHCP client produced a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpClientKind {
    /// ISC dhclient.
    Dhclient,
    /// BusyBox udhcpc.
    Udhcpc,
    /// dhcpcd.
    Dhcpcd,
}

impl fmt::Display for DhcpClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DhcpClientKind::Dhclient => "dhclient",
            DhcpClientKind::Udhcpc => "udhcpc",
            DhcpClientKind::Dhcpcd => "dhcpcd",
        })
    }
}

/// How to run a DHCP client.
#[derive(Debug, Clone)]
pub struct DhcpOptions {
    /// Give up after about this many seconds.
    pub timeout_secs: u32,
    /// Ask for option 114 (captive-portal URL, RFC 8910). On by default.
    pub request_captive_portal: bool,
    /// Send this hostname (option 12).
    pub hostname: Option<String>,
}

impl Default for DhcpOptions {
    fn default() -> Self {
        DhcpOptions {
            timeout_secs: 10,
            request_captive_portal: true,
            hostname: None,
        }
    }
}

/// A lease, as the DHCP client itself reported it to its script.
#[derive(Debug, Clone)]
pub struct DhcpLease {
    /// The client program.
    pub client: DhcpClientKind,
    /// Address leased.
    pub ip: Ipv4Addr,
    /// Subnet mask.
    pub netmask: Ipv4Addr,
    /// Prefix length of the mask.
    pub prefix: u8,
    /// First router (option 3).
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Lease time in seconds (option 51).
    pub lease_time: u32,
    /// Server identifier (option 54).
    pub server_id: Option<Ipv4Addr>,
    /// Captive-portal URL (option 114).
    pub captive_portal: Option<String>,
    /// Domain name (option 15).
    pub domain: Option<String>,
    /// Everything the client printed (and, for dhcpcd, its log file).
    pub log: String,
    /// The raw environment the client gave its script for the bound event.
    pub env: BTreeMap<String, String>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl DhcpLease {
    /// Log lines containing any of `needles` (case-insensitive), e.g. to
    /// look for dhcpcd's complaints about T1/T2 timers.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.log
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                needles.iter().any(|n| l.contains(&n.to_ascii_lowercase()))
            })
            .map(str::to_string)
            .collect()
    }
}

impl fmt::Display for DhcpLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} got {}/{}", self.client, self.ip, self.prefix)?;
        if let Some(r) = self.router {
            write!(f, " router {r}")?;
        }
        if !self.dns.is_empty() {
            let d: Vec<String> = self.dns.iter().map(|d| d.to_string()).collect();
            write!(f, " dns {}", d.join(","))?;
        }
        write!(f, " lease {}s", self.lease_time)?;
        if let Some(s) = self.server_id {
            write!(f, " from {s}")?;
        }
        if let Some(d) = &self.domain {
            write!(f, " domain {d}")?;
        }
        if let Some(c) = &self.captive_portal {
            write!(f, " captive-portal {c}")?;
        }
        Ok(())
    }
}

/// What a curl run produced.
#[derive(Debug, Clone)]
pub struct CurlResult {
    /// curl's exit code (0 = transfer done; 7 = cannot connect; 28 = timeout).
    pub exit_code: i32,
    /// HTTP status of the last response, 0 if none.
    pub http_code: u16,
    /// Response headers (of every response, when following redirects).
    pub headers: String,
    /// The body.
    pub body: Vec<u8>,
    /// Total time curl reported (or measured, if it reported none).
    pub time: Duration,
    /// curl's stderr (its error message).
    pub stderr: String,
}

impl CurlResult {
    /// True when curl completed a transfer with a 2xx status.
    pub fn ok(&self) -> bool {
        self.exit_code == 0 && (200..300).contains(&self.http_code)
    }

    /// The body as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A response header of the last response (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        let block = self
            .headers
            .rsplit("\r\n\r\n")
            .find(|b| !b.trim().is_empty())
            .unwrap_or("");
        block.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

impl fmt::Display for CurlResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "curl exit {} http {} body {} bytes in {:.3}s",
            self.exit_code,
            self.http_code,
            self.body.len(),
            self.time.as_secs_f64()
        )?;
        if !self.stderr.trim().is_empty() {
            write!(f, " ({})", self.stderr.trim())?;
        }
        Ok(())
    }
}

const MASK2PREFIX: &str = r#"mask2prefix() (
  n=0; IFS=.
  for o in $1; do
    case $o in 255) n=$((n+8));; 254) n=$((n+7));; 252) n=$((n+6));; 248) n=$((n+5));;
      240) n=$((n+4));; 224) n=$((n+3));; 192) n=$((n+2));; 128) n=$((n+1));; esac
  done
  echo $n
)"#;

fn write_script(path: &Path, body: &str) -> LabResult<()> {
    std::fs::write(path, body).ctx(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Reads an `env -0` dump.
fn read_env(path: &Path) -> Option<BTreeMap<String, String>> {
    let data = std::fs::read(path).ok()?;
    Some(
        data.split(|b| *b == 0)
            .filter_map(|kv| {
                let s = String::from_utf8_lossy(kv);
                let (k, v) = s.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
    )
}

fn ips(s: Option<&String>) -> Vec<Ipv4Addr> {
    s.map(|s| {
        s.split_whitespace()
            .filter_map(|a| a.parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

fn prefix_to_mask(p: u8) -> Ipv4Addr {
    Ipv4Addr::from(if p == 0 {
        0
    } else {
        u32::MAX << (32 - p.min(32) as u32)
    })
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

/// Decodes udhcpc's `optNNN` hex form.
fn hex_text(s: &str) -> Option<String> {
    if s.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect();
    bytes.map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\0')
            .to_string()
    })
}

/// The first of `events` for which the script left an env dump.
fn find_event(dir: &Path, events: &[&str]) -> Option<BTreeMap<String, String>> {
    events
        .iter()
        .find_map(|e| read_env(&dir.join(format!("env.{e}"))))
}

impl Guest {
    /// Runs BusyBox udhcpc once (`-f -q -n`), with a script that records the
    /// environment and configures `eth0` (address, default route) like the
    /// stock script, minus resolv.conf.
    pub fn udhcpc(&self) -> LabResult<DhcpLease> {
        self.udhcpc_with(&DhcpOptions::default())
    }

    /// [`Guest::udhcpc`] with options.
    pub fn udhcpc_with(&self, opts: &DhcpOptions) -> LabResult<DhcpLease> {
        let dir = self.run_dir("udhcpc")?;
        let script = dir.join("script.sh");
        write_script(
            &script,
            &format!(
                r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
RUN={run}
{MASK2PREFIX}
env -0 > "$RUN/env.$1"
echo "$1" >> "$RUN/events"
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    ;;
  bound|renew)
    [ -n "$mask" ] || mask=$(mask2prefix "$subnet")
    [ "$1" = bound ] && ip -4 addr flush dev "$interface"
    ip addr replace "$ip/$mask" broadcast "${{broadcast:-+}}" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    ;;
esac
exit 0
"#,
                run = sh_quote(&dir)
            ),
        )?;
        let tries = (opts.timeout_secs / 2).max(1).to_string();
        let mut argv: Vec<String> = vec![
            "udhcpc".into(),
            "-i".into(),
            "eth0".into(),
            "-f".into(),
            "-q".into(),
            "-n".into(),
            "-t".into(),
            tries,
            "-T".into(),
            "2".into(),
            "-A".into(),
            "1".into(),
            "-s".into(),
            script.display().to_string(),
        ];
        if opts.request_captive_portal {
            argv.extend(["-O".into(), "114".into()]);
        }
        if let Some(h) = &opts.hostname {
            argv.extend(["-x".into(), format!("hostname:{h}")]);
        }
        let started = Instant::now();
        let out = self.ns.run_with(&argv, &self.dhcp_exec(opts))?;
        let log = format!("{}{}", out.stdout, out.stderr);
        std::fs::write(dir.join("udhcpc.log"), &log)?;
        let env = self.bound_env(DhcpClientKind::Udhcpc, &dir, &out, &log)?;
        let g = |k: &str| env.get(k);
        let ip = parse_ip(g("ip"), "ip", &log)?;
        let (prefix, netmask) = subnet(g("mask"), g("subnet"), "udhcpc", &log)?;
        Ok(DhcpLease {
            client: DhcpClientKind::Udhcpc,
            ip,
            netmask,
            prefix,
            router: ips(g("router")).first().copied(),
            dns: ips(g("dns")),
            lease_time: g("lease").and_then(|l| l.parse().ok()).unwrap_or(0),
            server_id: g("serverid").and_then(|s| s.parse().ok()),
            captive_portal: g("opt114")
                .and_then(|h| hex_text(h))
                .or_else(|| non_empty(g("captive_portal"))),
            domain: non_empty(g("domain")),
            log,
            elapsed: started.elapsed(),
            env,
        })
    }

    /// Runs ISC dhclient once (`-4 -1`), with a private script, lease, pid
    /// and config file; the daemon it forks once bound is killed by its pid
    /// file before returning.
    pub fn dhclient(&self) -> LabResult<DhcpLease> {
        self.dhclient_with(&DhcpOptions::default())
    }

    /// [`Guest::dhclient`] with options.
    pub fn dhclient_with(&self, opts: &DhcpOptions) -> LabResult<DhcpLease> {
        let dir = self.run_dir("dhclient")?;
        let script = dir.join("script.sh");
        write_script(
            &script,
            &format!(
                r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
RUN={run}
{MASK2PREFIX}
env -0 > "$RUN/env.$reason"
echo "$reason" >> "$RUN/events"
case "$reason" in
  PREINIT)
    ip link set dev "$interface" up
    ;;
  BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
      ip -4 addr flush dev "$interface"
    fi
    p=$(mask2prefix "$new_subnet_mask")
    ip addr replace "$new_ip_address/$p" broadcast "${{new_broadcast_address:-+}}" dev "$interface"
    for r in $new_routers; do ip route replace default via "$r" dev "$interface"; break; done
    ;;
  EXPIRE|FAIL|RELEASE|STOP)
    ip -4 addr flush dev "$interface"
    ;;
esac
exit 0
"#,
                run = sh_quote(&dir)
            ),
        )?;
        let conf = dir.join("dhclient.conf");
        let mut c = format!(
            "timeout {};\nretry 1;\ninitial-interval 1;\n",
            opts.timeout_secs
        );
        c.push_str(
            "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers",
        );
        if opts.request_captive_portal {
            // ISC names option 114 "default-url".
            c.push_str(", default-url");
        }
        c.push_str(";\n");
        if let Some(h) = &opts.hostname {
            c.push_str(&format!("send host-name \"{h}\";\n"));
        }
        std::fs::write(&conf, c)?;
        let lease = dir.join("dhclient.leases");
        let pid = dir.join("dhclient.pid");
        let log_path = dir.join("dhclient.log");
        let argv: Vec<String> = vec![
            "dhclient".into(),
            "-4".into(),
            "-1".into(),
            "-v".into(),
            "-sf".into(),
            script.display().to_string(),
            "-lf".into(),
            lease.display().to_string(),
            "-pf".into(),
            pid.display().to_string(),
            "-cf".into(),
            conf.display().to_string(),
            "eth0".into(),
        ];
        let started = Instant::now();
        // dhclient's forked daemon keeps no pipe of ours: it redirects its
        // stdio to /dev/null, so capturing through pipes is safe.
        let out = self.ns.run_with(&argv, &self.dhcp_exec(opts));
        self.kill_by_pid_file(&pid);
        let out = out?;
        let log = format!("{}{}", out.stdout, out.stderr);
        std::fs::write(&log_path, &log)?;
        let env = self.bound_env(DhcpClientKind::Dhclient, &dir, &out, &log)?;
        // ISC names option 114 "default-url".
        isc_lease(
            DhcpClientKind::Dhclient,
            env,
            "new_default_url",
            log,
            started,
        )
    }

    /// Runs dhcpcd once (`-4 -1 -t N`), with private `/var/lib/dhcpcd` and
    /// `/run` (bind mounts inside the command's mount namespace), a private
    /// config (`nodelay`, `noarp`, `noipv4ll`) and a script that only records
    /// the environment: dhcpcd configures `eth0` itself. Its log file is
    /// included in [`DhcpLease::log`] (check it for timer warnings).
    pub fn dhcpcd(&self) -> LabResult<DhcpLease> {
        self.dhcpcd_with(&DhcpOptions::default())
    }

    /// [`Guest::dhcpcd`] with options.
    pub fn dhcpcd_with(&self, opts: &DhcpOptions) -> LabResult<DhcpLease> {
        let dir = self.run_dir("dhcpcd")?;
        let script = dir.join("script.sh");
        write_script(
            &script,
            &format!(
                "#!/bin/sh\nRUN={run}\nenv -0 > \"$RUN/env.$reason\"\necho \"$reason\" >> \"$RUN/events\"\nexit 0\n",
                run = sh_quote(&dir)
            ),
        )?;
        let conf = dir.join("dhcpcd.conf");
        let mut c = String::from("nodelay\nnoarp\nnoipv4ll\nnohook resolv.conf\noption domain_name_servers, domain_name, routers\n");
        if opts.request_captive_portal {
            c.push_str("define 114 string captive_portal\noption captive_portal\n");
        }
        if let Some(h) = &opts.hostname {
            c.push_str(&format!("hostname {h}\n"));
        }
        std::fs::write(&conf, c)?;
        let lib = dir.join("var-lib-dhcpcd");
        let run = dir.join("run");
        std::fs::create_dir_all(&lib)?;
        std::fs::create_dir_all(run.join("dhcpcd"))?;
        let logfile = dir.join("dhcpcd-file.log");
        let argv: Vec<String> = vec![
            "dhcpcd".into(),
            "-4".into(),
            "-1".into(),
            "-t".into(),
            opts.timeout_secs.to_string(),
            "-f".into(),
            conf.display().to_string(),
            "-c".into(),
            script.display().to_string(),
            "-j".into(),
            logfile.display().to_string(),
            "eth0".into(),
        ];
        let mut exec = self.dhcp_exec(opts);
        exec.binds.push((lib, PathBuf::from("/var/lib/dhcpcd")));
        exec.binds.push((run.clone(), PathBuf::from("/run")));
        let started = Instant::now();
        let out = self.ns.run_with(&argv, &exec);
        // dhcpcd -1 exits by itself; should a piece of it linger, its pid
        // file is in our private /run.
        self.kill_by_pid_file(&run.join("dhcpcd").join("eth0-4.pid"));
        self.kill_by_pid_file(&run.join("dhcpcd").join("pid"));
        let out = out?;
        let log = format!(
            "{}{}--- {} ---\n{}",
            out.stdout,
            out.stderr,
            logfile.display(),
            read_lossy(&logfile)
        );
        std::fs::write(dir.join("dhcpcd.log"), &log)?;
        let env = self.bound_env(DhcpClientKind::Dhcpcd, &dir, &out, &log)?;
        isc_lease(
            DhcpClientKind::Dhcpcd,
            env,
            "new_captive_portal",
            log,
            started,
        )
    }

    /// The environment `client`'s script recorded in `dir` for the event
    /// that bound a lease (udhcpc: bound or renew; the ISC clients: BOUND,
    /// REBOOT, RENEW or REBIND); an error with `log` when there is none.
    fn bound_env(
        &self,
        client: DhcpClientKind,
        dir: &Path,
        out: &CmdOutput,
        log: &str,
    ) -> LabResult<BTreeMap<String, String>> {
        let events: &[&str] = match client {
            DhcpClientKind::Udhcpc => &["bound", "renew"],
            _ => &["BOUND", "REBOOT", "RENEW", "REBIND"],
        };
        find_event(dir, events).ok_or_else(|| {
            LabError::new(format!(
                "{client} in {} got no lease (exit {})\n{log}",
                self.name(),
                out.code()
            ))
        })
    }

    /// Runs the given DHCP client.
    pub fn dhcp(&self, kind: DhcpClientKind, opts: &DhcpOptions) -> LabResult<DhcpLease> {
        match kind {
            DhcpClientKind::Dhclient => self.dhclient_with(opts),
            DhcpClientKind::Udhcpc => self.udhcpc_with(opts),
            DhcpClientKind::Dhcpcd => self.dhcpcd_with(opts),
        }
    }

    fn dhcp_exec(&self, opts: &DhcpOptions) -> ExecOptions {
        ExecOptions {
            timeout: Duration::from_secs(opts.timeout_secs as u64 + 15),
            ..ExecOptions::default()
        }
    }

    /// Kills (SIGTERM, then SIGKILL) the process named in `pid_file`, but
    /// only if it is running inside this client's namespace.
    fn kill_by_pid_file(&self, pid_file: &Path) {
        let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return;
        };
        if pid <= 1 || !self.ns.pids().contains(&pid) {
            return;
        }
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let gone = wait_until(Duration::from_secs(2), || {
            (!self.ns.pids().contains(&pid)).then_some(())
        });
        if gone.is_none() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// Runs curl in this client with bounded timeouts (`--connect-timeout 5
    /// --max-time 15`; later `args` override them), the lab's private
    /// resolv.conf, and the body captured to a file.
    ///
    /// `args` are curl arguments, typically just a URL, or e.g.
    /// `["-L", "http://example.test/"]`.
    pub fn curl<S: AsRef<str>>(&self, args: &[S]) -> LabResult<CurlResult> {
        curl_in(&self.ns, &self.run_dir("curl")?, args)
    }
}

/// Runs curl in namespace `ns`, keeping its files in `dir`.
pub(crate) fn curl_in<S: AsRef<str>>(
    ns: &super::Netns,
    dir: &Path,
    args: &[S],
) -> LabResult<CurlResult> {
    std::fs::create_dir_all(dir)?;
    let body = dir.join("body");
    let headers = dir.join("headers");
    let mut argv: Vec<String> = vec![
        "curl".into(),
        "-sS".into(),
        "--connect-timeout".into(),
        "5".into(),
        "--max-time".into(),
        "15".into(),
        "-o".into(),
        body.display().to_string(),
        "-D".into(),
        headers.display().to_string(),
        "-w".into(),
        "%{http_code} %{time_total}".into(),
    ];
    argv.extend(args.iter().map(|a| a.as_ref().to_string()));
    let started = Instant::now();
    let out = ns.run_with(
        &argv,
        &ExecOptions {
            timeout: Duration::from_secs(120),
            ..ExecOptions::default()
        },
    )?;
    let measured = started.elapsed();
    let mut w = out.stdout.split_whitespace();
    let http_code = w.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let time = w
        .next()
        .and_then(|t| t.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(measured);
    let result = CurlResult {
        exit_code: out.code(),
        http_code,
        headers: read_lossy(&headers),
        body: std::fs::read(&body).unwrap_or_default(),
        time,
        stderr: out.stderr,
    };
    let _ = std::fs::remove_file(&body);
    Ok(result)
}

/// The subnet a DHCP client reported, as a prefix length or a netmask
/// (whichever it gave; the prefix wins when both are there).
fn subnet(
    prefix: Option<&String>,
    mask: Option<&String>,
    client: &str,
    log: &str,
) -> LabResult<(u8, Ipv4Addr)> {
    match (
        prefix.and_then(|p| p.parse::<u8>().ok()),
        mask.and_then(|m| m.parse::<Ipv4Addr>().ok()),
    ) {
        (Some(p), _) => Ok((p, prefix_to_mask(p))),
        (None, Some(m)) => Ok((u32::from(m).count_ones() as u8, m)),
        _ => Err(LabError::new(format!("{client} reported no subnet\n{log}"))),
    }
}

/// The lease an ISC-style script environment describes (`new_*`
/// variables, as dhclient and dhcpcd give them); `portal_var` carries
/// option 114.
fn isc_lease(
    client: DhcpClientKind,
    env: BTreeMap<String, String>,
    portal_var: &str,
    log: String,
    started: Instant,
) -> LabResult<DhcpLease> {
    let g = |k: &str| env.get(k);
    let ip = parse_ip(g("new_ip_address"), "new_ip_address", &log)?;
    let name = client.to_string();
    let (prefix, netmask) = subnet(g("new_subnet_cidr"), g("new_subnet_mask"), &name, &log)?;
    Ok(DhcpLease {
        client,
        ip,
        netmask,
        prefix,
        router: ips(g("new_routers")).first().copied(),
        dns: ips(g("new_domain_name_servers")),
        lease_time: g("new_dhcp_lease_time")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0),
        server_id: g("new_dhcp_server_identifier").and_then(|s| s.parse().ok()),
        captive_portal: non_empty(g(portal_var)),
        domain: non_empty(g("new_domain_name")),
        log,
        elapsed: started.elapsed(),
        env,
    })
}

fn parse_ip(v: Option<&String>, what: &str, log: &str) -> LabResult<Ipv4Addr> {
    v.and_then(|s| s.parse().ok()).ok_or_else(|| {
        LabError::new(format!(
            "DHCP client reported no valid {what} ({v:?})\n{log}"
        ))
    })
}

impl super::Lab {
    /// Runs curl in client `client` (see [`Guest::curl`]).
    pub fn curl<S: AsRef<str>>(&self, client: &Guest, args: &[S]) -> LabResult<CurlResult> {
        client.curl(args)
    }

    /// Runs curl in the gateway namespace (which has a route upstream);
    /// handy for checking the upstream side without lassi.
    pub fn curl_from_gw<S: AsRef<str>>(&self, args: &[S]) -> LabResult<CurlResult> {
        let n = self.next_seq();
        curl_in(self.gw(), &self.dir().join(format!("gw-curl-{n}")), args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(hex_text("687474703a2f2f782f").as_deref(), Some("http://x/"));
        assert_eq!(prefix_to_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_to_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        let r = CurlResult {
            exit_code: 0,
            http_code: 302,
            headers: "HTTP/1.1 302 Found\r\nLocation: http://a/\r\n\r\n".into(),
            body: vec![],
            time: Duration::ZERO,
            stderr: String::new(),
        };
        assert_eq!(r.header("location").as_deref(), Some("http://a/"));
    }
}
