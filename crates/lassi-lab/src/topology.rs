//! The lab's namespaces and links: clients on a bridge, the gateway, and an
//! upstream namespace standing in for the internet.

use super::netns::{check_command, read_lossy, tail, unique_name, ExecOptions, Netns};
use super::{IoContext, LabError, LabResult};
use lassi::wire::MacAddr;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The lab's fixed addresses (all documentation or private ranges, all inside
/// the lab's own namespaces).
pub mod addrs {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The client LAN lassi serves.
    pub const LAN_NETWORK: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 0);
    /// Prefix length of [`LAN_NETWORK`].
    pub const LAN_PREFIX: u8 = 24;
    /// lassi's gateway address on the LAN (on its TUN; on `lan0` only in
    /// kernel-baseline mode).
    pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
    /// The gateway's uplink address (`wan0` in the gw namespace).
    pub const GW_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// The upstream router's address (`up0` in the upstream namespace).
    pub const UPSTREAM_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    /// The upstream web server ("the internet"), on the upstream `lo`.
    pub const WEB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    /// The upstream DNS server, on the upstream `lo`.
    pub const DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
    /// The upstream web server's IPv6 address (only with `ipv6: true`).
    pub const WEB6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x10);
    /// The upstream DNS server's IPv6 address, on the upstream `lo` (only
    /// with `ipv6: true`).
    pub const DNS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x53);
    /// The gateway's uplink IPv6 address (only with `ipv6: true`).
    pub const GW_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
    /// The upstream router's IPv6 address (only with `ipv6: true`).
    pub const UPSTREAM_ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);
    /// The LAN IPv6 prefix the upstream routes back to the gateway.
    pub const LAN6_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);
}

/// How to build a [`Lab`].
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Number of client namespaces to create up front (more with
    /// [`Lab::add_client`]).
    pub clients: usize,
    /// Keep veth offloads (TSO/GSO/GRO, tx checksum) on. When false, they are
    /// turned off on every client `eth0`, every switch port and the gateway's
    /// `lan0`, for a wire-like LAN.
    pub offloads: bool,
    /// Give the upstream side IPv6 addresses and enable forwarding in the
    /// gateway. When false, IPv6 is disabled in every namespace (no RS/MLD
    /// noise).
    pub ipv6: bool,
    /// Plain kernel forwarding instead of lassi: the gateway's `lan0` gets
    /// 10.1.0.1/24 and every client a static address
    /// ([`Guest::baseline_ip`]) and a default route via 10.1.0.1.
    pub kernel_baseline: bool,
    /// Mark client switch ports `isolated`, as on a Wi-Fi AP with client
    /// isolation: clients then reach only the gateway port, never each other.
    pub isolate_clients: bool,
    /// The lassi binary for [`Lab::start_lassi`]. When unset: `$LASSI_BIN`,
    /// else a `lassi` next to (or one directory above) the running
    /// executable, else `lassi` from `PATH`.
    pub lassi_bin: Option<PathBuf>,
    /// Keep the lab's temp directory (logs, configs) after the lab drops.
    /// Also enabled by the environment variable `LASSI_LAB_KEEP=1`.
    pub keep_dir: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            clients: 1,
            offloads: false,
            ipv6: false,
            kernel_baseline: false,
            isolate_clients: false,
            lassi_bin: None,
            keep_dir: false,
        }
    }
}

/// One client machine: a namespace with `eth0` on switch port `pN`.
#[derive(Debug)]
pub struct Guest {
    pub(crate) index: usize,
    pub(crate) ns: Netns,
    pub(crate) mac: MacAddr,
    pub(crate) dir: PathBuf,
    pub(crate) runs: AtomicU32,
}

impl Guest {
    /// 1-based client number (its switch port is `p{index}`).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The client's namespace.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        self.ns.name()
    }

    /// `eth0`'s MAC address: `02:00:00:00:HH:LL` with `HHLL` = index.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The client's interface name.
    pub fn interface(&self) -> &'static str {
        "eth0"
    }

    /// The switch port this client is plugged into.
    pub fn port(&self) -> String {
        format!("p{}", self.index)
    }

    /// The static address used in kernel-baseline mode: 10.1.0.(10 + index).
    pub fn baseline_ip(&self) -> Ipv4Addr {
        baseline_ip(self.index)
    }

    /// The IPv4 addresses currently on `eth0` (as the kernel reports them).
    pub fn ipv4_addrs(&self) -> LabResult<Vec<(Ipv4Addr, u8)>> {
        let out = self.ns.ip(&["-4", "-o", "addr", "show", "dev", "eth0"])?;
        Ok(out
            .stdout
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                it.find(|w| *w == "inet")?;
                let (a, p) = it.next()?.split_once('/')?;
                Some((a.parse().ok()?, p.parse().ok()?))
            })
            .collect())
    }

    /// The default route's gateway in the client, if any.
    pub fn default_gateway(&self) -> LabResult<Option<Ipv4Addr>> {
        let out = self.ns.ip(&["-4", "route", "show", "default"])?;
        Ok(out
            .stdout
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)
            .and_then(|s| s.parse().ok()))
    }

    /// Removes every IPv4 address and route from `eth0` (keeps it up).
    pub fn flush_ipv4(&self) -> LabResult<()> {
        self.ns.ip(&["-4", "addr", "flush", "dev", "eth0"])?;
        self.ns.ip(&["-4", "route", "flush", "dev", "eth0"])?;
        Ok(())
    }

    /// A fresh directory for one run of a peer program in this client.
    pub(crate) fn run_dir(&self, what: &str) -> LabResult<PathBuf> {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let d = self.dir.join(format!("c{}-{what}-{n}", self.index));
        std::fs::create_dir_all(&d).ctx(|| format!("creating {}", d.display()))?;
        Ok(d)
    }
}

fn baseline_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, (10 + index).min(254) as u8)
}

/// The lab's temp directory, removed on drop unless asked to keep it.
#[derive(Debug)]
pub(crate) struct LabDir {
    pub(crate) path: PathBuf,
    pub(crate) keep: bool,
}

impl Drop for LabDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("lassi lab: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The whole test network. Dropping it stops everything inside and deletes
/// every namespace; if the thread is panicking it first prints the tail of
/// every log in the lab directory, so a failing test shows what the peers
/// said.
#[derive(Debug)]
pub struct Lab {
    // Drop order matters: clients, then the gateway, switch and upstream
    // namespaces, then the directory.
    clients: Vec<Guest>,
    gw: Netns,
    sw: Netns,
    up: Netns,
    dir: LabDir,
    id: String,
    opts: LabOptions,
    seq: AtomicU32,
}

const GW_LAN_MAC: &str = "02:00:00:00:ff:01";
const GW_WAN_MAC: &str = "02:00:00:00:ff:02";
const UP_MAC: &str = "02:00:00:00:ff:03";

impl Lab {
    /// Builds the lab. On any failure everything built so far is removed.
    pub fn new(opts: LabOptions) -> LabResult<Lab> {
        let id = unique_name("lab");
        let path = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&path).ctx(|| format!("creating {}", path.display()))?;
        let keep = opts.keep_dir
            || std::env::var("LASSI_LAB_KEEP")
                .map(|v| v == "1")
                .unwrap_or(false);
        let dir = LabDir { path, keep };
        let resolv = dir.path.join("resolv.conf");
        std::fs::write(
            &resolv,
            format!("nameserver {}\noptions timeout:1 attempts:2\n", addrs::DNS),
        )?;

        let mut up = Netns::create_named(&format!("{id}-up"))?;
        let mut gw = Netns::create_named(&format!("{id}-gw"))?;
        let sw = Netns::create_named(&format!("{id}-sw"))?;
        for ns in [&mut up, &mut gw] {
            ns.set_resolv_conf(&resolv);
        }
        for ns in [&up, &gw, &sw] {
            base_sysctls(ns, opts.ipv6)?;
        }

        // Switch.
        sw.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        sw.ip(&["link", "set", "br0", "up"])?;

        // Gateway LAN port lan0 <-> switch p0.
        gw.ip(&[
            "link",
            "add",
            "lan0",
            "address",
            GW_LAN_MAC,
            "type",
            "veth",
            "peer",
            "name",
            "p0",
            "netns",
            sw.name(),
        ])?;
        sw.ip(&["link", "set", "p0", "master", "br0", "up"])?;
        gw.ip(&["link", "set", "lan0", "up"])?;

        // Uplink wan0 <-> up0.
        gw.ip(&[
            "link",
            "add",
            "wan0",
            "address",
            GW_WAN_MAC,
            "type",
            "veth",
            "peer",
            "name",
            "up0",
            "netns",
            up.name(),
        ])?;
        up.ip(&["link", "set", "up0", "address", UP_MAC])?;
        gw.ip(&["addr", "add", "192.0.2.1/24", "dev", "wan0"])?;
        up.ip(&["addr", "add", "192.0.2.2/24", "dev", "up0"])?;
        gw.ip(&["link", "set", "wan0", "up"])?;
        up.ip(&["link", "set", "up0", "up"])?;
        up.ip(&["addr", "add", "198.51.100.10/32", "dev", "lo"])?;
        up.ip(&["addr", "add", "198.51.100.53/32", "dev", "lo"])?;
        up.ip(&["route", "add", "10.0.0.0/8", "via", "192.0.2.1"])?;
        gw.ip(&["route", "add", "default", "via", "192.0.2.2"])?;
        gw.sysctl("net.ipv4.ip_forward", "1")?;

        if opts.ipv6 {
            up.ip(&["-6", "addr", "add", "2001:db8:100::10/128", "dev", "lo"])?;
            up.ip(&["-6", "addr", "add", "2001:db8:100::53/128", "dev", "lo"])?;
            up.ip(&[
                "-6",
                "addr",
                "add",
                "2001:db8:2::2/64",
                "dev",
                "up0",
                "nodad",
            ])?;
            gw.ip(&[
                "-6",
                "addr",
                "add",
                "2001:db8:2::1/64",
                "dev",
                "wan0",
                "nodad",
            ])?;
            up.ip(&[
                "-6",
                "route",
                "add",
                "2001:db8:1::/48",
                "via",
                "2001:db8:2::1",
            ])?;
            gw.ip(&["-6", "route", "add", "default", "via", "2001:db8:2::2"])?;
            gw.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        }

        if !opts.offloads {
            offloads_off(&gw, "lan0")?;
            offloads_off(&sw, "p0")?;
        }
        if opts.kernel_baseline {
            gw.ip(&["addr", "add", "10.1.0.1/24", "dev", "lan0"])?;
        }

        let mut lab = Lab {
            clients: Vec::new(),
            gw,
            sw,
            up,
            dir,
            id,
            opts,
            seq: AtomicU32::new(0),
        };
        for _ in 0..lab.opts.clients {
            lab.add_client()?;
        }
        Ok(lab)
    }

    /// Adds one more client namespace on the next switch port and returns
    /// its index (1-based).
    pub fn add_client(&mut self) -> LabResult<usize> {
        let index = self.clients.len() + 1;
        if index > 0xffff {
            return Err(LabError::new("too many clients"));
        }
        let mac = MacAddr([0x02, 0, 0, 0, (index >> 8) as u8, index as u8]);
        let mut ns = Netns::create_named(&format!("{}-c{index}", self.id))?;
        ns.set_resolv_conf(self.dir.path.join("resolv.conf"));
        base_sysctls(&ns, self.opts.ipv6)?;
        let port = format!("p{index}");
        let mac_s = mac.to_string();
        ns.ip(&[
            "link",
            "add",
            "eth0",
            "address",
            &mac_s,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            self.sw.name(),
        ])?;
        self.sw.ip(&["link", "set", &port, "master", "br0"])?;
        if self.opts.isolate_clients {
            self.sw.ip(&[
                "link",
                "set",
                &port,
                "type",
                "bridge_slave",
                "isolated",
                "on",
            ])?;
        }
        self.sw.ip(&["link", "set", &port, "up"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        if !self.opts.offloads {
            offloads_off(&ns, "eth0")?;
            offloads_off(&self.sw, &port)?;
        }
        if self.opts.kernel_baseline {
            let a = format!("{}/24", baseline_ip(index));
            ns.ip(&["addr", "add", &a, "dev", "eth0"])?;
            ns.ip(&["route", "add", "default", "via", "10.1.0.1"])?;
        }
        self.clients.push(Guest {
            index,
            ns,
            mac,
            dir: self.dir.path.clone(),
            runs: AtomicU32::new(0),
        });
        Ok(index)
    }

    /// A number unique within this lab, for file names.
    pub fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The lab's unique id; every namespace name starts with it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The options the lab was built with.
    pub fn options(&self) -> &LabOptions {
        &self.opts
    }

    /// The lab's temp directory (logs, configs, scripts, leases).
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// The private resolv.conf (nameserver 198.51.100.53) every client,
    /// gateway and upstream command sees as `/etc/resolv.conf`.
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.path.join("resolv.conf")
    }

    /// The gateway namespace (`lan0`, `wan0`; lassi runs here).
    pub fn gw(&self) -> &Netns {
        &self.gw
    }

    /// The switch namespace (bridge `br0`, ports `p0`..`pN`).
    pub fn switch(&self) -> &Netns {
        &self.sw
    }

    /// The upstream namespace ("the internet": web and DNS servers).
    pub fn upstream(&self) -> &Netns {
        &self.up
    }

    /// One iperf3 run from `client` (`iperf3 -c server -J` and `args`) to a
    /// one-shot server on `server` in the upstream namespace, given 300 ms
    /// to listen first: iperf3's JSON report.
    pub fn iperf(&self, client: &Guest, server: &str, args: &[&str]) -> LabResult<Value> {
        let log = self
            .dir()
            .join(format!("iperf3-server-{}.log", self.next_seq()));
        let argv = ["iperf3", "-s", "-1", "-B", server];
        let mut srv = self
            .up
            .spawn("iperf3 -s", &argv, &log, &ExecOptions::default())?;
        // A loaded machine can take a while to start it: wait for it to listen.
        crate::netns::wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("Server listening"))
                .then_some(())
        });
        let mut argv = vec!["iperf3", "-c", server, "-J"];
        argv.extend_from_slice(args);
        let out = client.ns().run(&argv);
        srv.stop();
        let out = out?;
        serde_json::from_str(&out.stdout).map_err(|e| {
            LabError::new(format!(
                "iperf3 output is not JSON ({e}): {} {}",
                out.stdout, out.stderr
            ))
        })
    }

    /// Guest number `index` (1-based). Panics if there is no such client.
    pub fn client(&self, index: usize) -> &Guest {
        index
            .checked_sub(1)
            .and_then(|i| self.clients.get(i))
            .unwrap_or_else(|| panic!("lab has {} clients, no client {index}", self.clients.len()))
    }

    /// All clients, in index order.
    pub fn clients(&self) -> &[Guest] {
        &self.clients
    }

    /// Names of every namespace of this lab.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut v = vec![
            self.up.name().to_string(),
            self.gw.name().to_string(),
            self.sw.name().to_string(),
        ];
        v.extend(self.clients.iter().map(|c| c.name().to_string()));
        v
    }

    /// A fresh path in the lab directory for a log or data file.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    /// The tail of every `*.log` file in the lab directory, for failure
    /// reports.
    pub fn logs_report(&self, lines: usize) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = Vec::new();
        collect_logs(&self.dir.path, &mut files);
        files.sort();
        for f in files {
            let text = read_lossy(&f);
            if text.trim().is_empty() {
                continue;
            }
            out.push_str(&format!(
                "===== {} =====\n{}\n",
                f.display(),
                tail(&text, lines)
            ));
        }
        out
    }
}

fn collect_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect_logs(&p, out);
            } else if p.extension().map(|x| x == "log").unwrap_or(false) {
                out.push(p);
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "lassi lab {}: test failed; logs follow\n{}",
                self.id,
                self.logs_report(60)
            );
        }
    }
}

fn base_sysctls(ns: &Netns, ipv6: bool) -> LabResult<()> {
    let v = if ipv6 { "0" } else { "1" };
    let mut args = vec![
        "sysctl".to_string(),
        "-q".into(),
        "-w".into(),
        format!("net.ipv6.conf.all.disable_ipv6={v}"),
        format!("net.ipv6.conf.default.disable_ipv6={v}"),
    ];
    if ipv6 {
        args.push("net.ipv6.conf.all.accept_dad=0".into());
        args.push("net.ipv6.conf.default.accept_dad=0".into());
    }
    ns.exec(&args)?;
    Ok(())
}

fn offloads_off(ns: &Netns, ifname: &str) -> LabResult<()> {
    ns.exec(&[
        "ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
    ])
    .map_err(|e| e.context(format!("turning offloads off on {ifname} in {}", ns.name())))?;
    Ok(())
}

/// Names from `ip netns list` that start with `prefix` (for leak checks).
pub fn namespaces_with_prefix(prefix: &str) -> LabResult<Vec<String>> {
    let out = check_command(&["ip", "netns", "list"])?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect())
}
