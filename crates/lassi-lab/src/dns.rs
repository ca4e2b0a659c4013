//! dnsmasq in the lab: the upstream DNS server, and a reference DHCP server
//! used to check the DHCP client runners independently of lassi.

use super::netns::{wait_until, ExecOptions, Netns, Proc};
use super::topology::{addrs, Lab};
use super::{LabError, LabResult};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Names the upstream DNS server answers by default, all with the upstream
/// web server's address: the lab's own domain and the OS connectivity-check
/// hosts, so captive-portal detection hits the lab's upstream.
pub const DEFAULT_NAMES: &[&str] = &[
    "example.test",
    "captive.apple.com",
    "connectivitycheck.gstatic.com",
    "connectivitycheck.android.com",
    "clients3.google.com",
    "www.gstatic.com",
    "www.msftconnecttest.com",
    "www.msftncsi.com",
    "detectportal.firefox.com",
];

/// A running dnsmasq (DNS or DHCP role), stopped by PID when dropped.
#[derive(Debug)]
pub struct Dnsmasq {
    proc: Proc,
    pid_file: PathBuf,
}

/// The upstream DNS server handle.
pub type DnsServer = Dnsmasq;

impl Dnsmasq {
    /// dnsmasq's log (it logs every query / DHCP exchange).
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// The process ID.
    pub fn pid(&self) -> i32 {
        self.proc.pid()
    }

    /// The pid file dnsmasq wrote.
    pub fn pid_file(&self) -> &std::path::Path {
        &self.pid_file
    }

    /// The underlying process guard.
    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    fn start(
        ns: &Netns,
        label: &str,
        mut args: Vec<String>,
        dir: PathBuf,
        ready_marker: &str,
    ) -> LabResult<Dnsmasq> {
        let pid_file = dir.join(format!("{label}.pid"));
        let log = dir.join(format!("{label}.log"));
        let mut argv = vec![
            "dnsmasq".to_string(),
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--bind-interfaces".into(),
            "--log-facility=-".into(),
            format!("--pid-file={}", pid_file.display()),
        ];
        argv.append(&mut args);
        let mut proc = ns.spawn(label, &argv, &log, &ExecOptions::default())?;
        let ok = wait_until(Duration::from_secs(10), || {
            if !proc.is_running() {
                return Some(false);
            }
            proc.log().contains(ready_marker).then_some(true)
        });
        match ok {
            Some(true) => Ok(Dnsmasq { proc, pid_file }),
            _ => Err(LabError::new(proc.describe("dnsmasq did not start"))),
        }
    }
}

/// Settings of the reference DHCP server ([`Lab::start_reference_dhcp`]).
#[derive(Debug, Clone)]
pub struct DhcpServerOptions {
    /// First and last address handed out.
    pub range: (Ipv4Addr, Ipv4Addr),
    /// Lease time in seconds (dnsmasq's minimum is 120).
    pub lease_secs: u32,
    /// Router option (3).
    pub router: Ipv4Addr,
    /// DNS servers option (6).
    pub dns: Vec<Ipv4Addr>,
    /// Domain name option (15).
    pub domain: Option<String>,
    /// Captive-portal API URL, option 114 (RFC 8910).
    pub captive_portal: Option<String>,
}

impl Default for DhcpServerOptions {
    fn default() -> Self {
        DhcpServerOptions {
            range: (Ipv4Addr::new(10, 1, 0, 100), Ipv4Addr::new(10, 1, 0, 199)),
            lease_secs: 3600,
            router: addrs::GATEWAY,
            dns: vec![addrs::DNS],
            domain: Some("lab.test".into()),
            captive_portal: Some("http://10.1.0.1/api".into()),
        }
    }
}

impl Lab {
    /// Starts dnsmasq in the upstream namespace on 198.51.100.53:53 (and
    /// `[2001:db8:100::53]:53` when the lab has IPv6), answering
    /// [`DEFAULT_NAMES`] with 198.51.100.10 (and 2001:db8:100::10 when the
    /// lab has IPv6).
    pub fn start_dns(&self) -> LabResult<DnsServer> {
        self.start_dns_with(&[])
    }

    /// Like [`Lab::start_dns`], plus `extra` name → address records (a name
    /// also covers its subdomains, as dnsmasq's `--address` does).
    pub fn start_dns_with(&self, extra: &[(&str, IpAddr)]) -> LabResult<DnsServer> {
        let mut args = vec![
            format!("--listen-address={}", addrs::DNS),
            "--log-queries".to_string(),
        ];
        if self.options().ipv6 {
            args.push(format!("--listen-address={}", addrs::DNS6));
        }
        for name in DEFAULT_NAMES {
            args.push(format!("--address=/{name}/{}", addrs::WEB));
            if self.options().ipv6 {
                args.push(format!("--address=/{name}/{}", addrs::WEB6));
            }
        }
        for (name, ip) in extra {
            args.push(format!("--address=/{name}/{ip}"));
        }
        let n = self.next_seq();
        Dnsmasq::start(
            self.upstream(),
            &format!("dnsmasq-dns-{n}"),
            args,
            self.dir().to_path_buf(),
            "started, version",
        )
    }

    /// Starts dnsmasq as a plain DHCP server on the gateway's `lan0` (giving
    /// `lan0` the address 10.1.0.1/24 if it has none): a known-good server
    /// to check the DHCP client runners against, independently of lassi.
    /// Do not run lassi in the same lab at the same time.
    pub fn start_reference_dhcp(&self, opts: &DhcpServerOptions) -> LabResult<Dnsmasq> {
        let has_addr = self
            .gw()
            .ip(&["-4", "-o", "addr", "show", "dev", "lan0"])?
            .stdout
            .contains("inet ");
        if !has_addr {
            self.gw()
                .ip(&["addr", "add", "10.1.0.1/24", "dev", "lan0"])?;
        }
        let n = self.next_seq();
        let label = format!("dnsmasq-dhcp-{n}");
        let mut args = vec![
            "--port=0".to_string(),
            "--interface=lan0".into(),
            "--dhcp-authoritative".into(),
            "--log-dhcp".into(),
            // No ICMP probe of an address before offering it: it delays the
            // first offer to a new client by about 3 s.
            "--no-ping".into(),
            format!(
                "--dhcp-leasefile={}",
                self.dir().join(format!("{label}.leases")).display()
            ),
            format!(
                "--dhcp-range={},{},255.255.255.0,{}",
                opts.range.0, opts.range.1, opts.lease_secs
            ),
            format!("--dhcp-option=3,{}", opts.router),
        ];
        if !opts.dns.is_empty() {
            let list: Vec<String> = opts.dns.iter().map(|d| d.to_string()).collect();
            args.push(format!("--dhcp-option=6,{}", list.join(",")));
        }
        if let Some(d) = &opts.domain {
            args.push(format!("--dhcp-option=15,{d}"));
        }
        if let Some(u) = &opts.captive_portal {
            args.push(format!("--dhcp-option=114,{u}"));
        }
        Dnsmasq::start(
            self.gw(),
            &label,
            args,
            self.dir().to_path_buf(),
            "DHCP, IP range",
        )
    }
}
