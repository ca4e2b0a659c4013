//! `lassi run`: wires the engine to the devices and starts the threads.
//!
//! Threads: the data plane (owns the engine, LAN socket and TUN), a notice
//! thread (logs events, writes the lease file), and the control-plane
//! runtime on the main thread (control socket, signals).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::aaa::Aaa;
use crate::config::{Config, FastPathKind, WalledGarden};
use crate::control::server::ControlServer;
use crate::dataplane::{
    Engine, EngineSettings, Event, InterceptSettings, Ipv6Settings, LostCarrier,
};
use crate::dhcp::DhcpServer;
use crate::hooks::{GatewayInfo, Hooks};
use crate::io::clock::now_ms;
use crate::io::firewall::{Firewall, FirewallSpec};
use crate::io::forwarder::{Command, DataplaneHandle, Forwarder, Notice};
use crate::io::kernel_path::KernelPath;
use crate::io::kernel_tables::{KernelTables, FAST_MARK};
use crate::io::lan::LanPort;
use crate::io::operator::OperatorState;
use crate::io::pool::WorkerPool;
use crate::io::ports::Ports;
use crate::io::queue::Queue;
use crate::io::sys::{self, Waker};
use crate::io::tun::Tun;
use crate::session::{Durability, SavedSessions};
use crate::store::{self, JsonFile};
use crate::wire::MacAddr;

/// A starting point for session-id counters that differs between runs.
fn session_id_seed() -> u32 {
    let mut b = [0u8; 4];
    crate::io::sys::random_bytes(&mut b);
    u32::from_ne_bytes(b)
}

/// Interception settings derived from the config.
pub fn intercept_settings(cfg: &Config) -> InterceptSettings {
    let p = &cfg.portal;
    InterceptSettings {
        portal_port: p.port,
        walled_nets: p
            .walled_garden
            .iter()
            .filter_map(|w| match w {
                WalledGarden::Net(n) => Some(*n),
                _ => None,
            })
            .collect(),
        walled_nets6: p
            .walled_garden
            .iter()
            .filter_map(|w| match w {
                WalledGarden::Net6(n) => Some(*n),
                _ => None,
            })
            .collect(),
        walled_suffixes: p
            .walled_garden
            .iter()
            .filter_map(|w| match w {
                WalledGarden::Suffix(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        any_dns: p.any_dns,
    }
}

/// Prepare the LAN interface: up, and the kernel kept quiet on it (no IPv6
/// autoconfiguration, no router advertisements accepted). With
/// `[lan.ipv6]` too the kernel's IPv6 stays off there: lassi itself speaks
/// for the gateway on the LAN (its RAs, neighbour advertisements and
/// DHCPv6 from the raw socket), so the kernel must neither send RAs or
/// neighbour discovery of its own nor configure addresses from a guest's.
fn prepare_lan(cfg: &Config) -> Result<(), String> {
    let ifname = &cfg.lan.interface;
    sys::set_link_up(ifname)
        .map_err(|e| format!("lan.interface {ifname}: cannot bring it up: {e}"))?;
    for (key, value) in [("disable_ipv6", "1"), ("accept_ra", "0"), ("autoconf", "0")] {
        let path = format!("net/ipv6/conf/{ifname}/{key}");
        if let Err(e) = sys::write_sysctl(&path, value) {
            // IPv6 may be compiled out entirely; the firewall still drops it.
            tracing::warn!("{e}");
        }
    }
    if kernel_fast_path(cfg) && !cfg.uplink.ip_forward {
        let on = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward");
        if !on.is_ok_and(|v| v.trim() == "1") {
            return Err(
                "dataplane.fast_path = \"kernel\": the kernel must forward IPv4 \
                        (net.ipv4.ip_forward is 0 and uplink.ip_forward = false)"
                    .into(),
            );
        }
    }
    if cfg.uplink.ip_forward {
        sys::write_sysctl("net/ipv4/ip_forward", "1")
            .map_err(|e| format!("uplink.ip_forward: {e}"))?;
        if cfg.lan.ipv6.is_some() {
            // The kernel routes the LAN prefix between lassi's TUN device
            // and the uplink (Linux has no per-device IPv6 forwarding
            // switch before 6.17; an uplink configured by RAs needs
            // accept_ra = 2 once forwarding is on).
            sys::write_sysctl("net/ipv6/conf/all/forwarding", "1")
                .map_err(|e| format!("uplink.ip_forward (IPv6): {e}"))?;
        }
    }
    Ok(())
}

/// Lease lines logged at info per window; the rest go to debug, so a flood
/// of fake clients cannot grow the log (a count of what was held back is
/// logged when the window ends).
const LEASE_LOG_BURST: u32 = 20;
const LEASE_LOG_WINDOW_MS: u64 = 10_000;

/// The info-level budget of lease lines (new bindings and ended leases;
/// renewals are always debug: a busy hotspot renews all day).
#[derive(Default)]
struct LeaseLog {
    window_start: u64,
    logged: u32,
    held_back: u32,
}

impl LeaseLog {
    /// Whether the next lease line may go out at info.
    fn admit(&mut self, now: u64) -> bool {
        if now.saturating_sub(self.window_start) >= LEASE_LOG_WINDOW_MS {
            if self.held_back > 0 {
                tracing::info!(
                    lines = self.held_back,
                    window_s = LEASE_LOG_WINDOW_MS / 1000,
                    "lease events beyond the log budget were logged at debug only"
                );
            }
            *self = LeaseLog {
                window_start: now,
                ..LeaseLog::default()
            };
        }
        if self.logged < LEASE_LOG_BURST {
            self.logged += 1;
            true
        } else {
            self.held_back += 1;
            false
        }
    }
}

/// Notices taken from the queue before the newest snapshots are saved.
const NOTICE_BATCH: usize = 256;

/// Accounting and MAC authentication for one event.
fn account_event(aaa: &crate::aaa::Aaa, ev: &Event, network: std::net::Ipv4Addr) {
    crate::aaa::account(&aaa.radius, ev, network);
    let trigger = crate::aaa::mac_auth::mac_auth_trigger(ev);
    if let (Some(tx), Some(t)) = (&aaa.mac_auth, trigger) {
        let _ = tx.send(t);
    }
}

fn log_event(ev: &Event, lease_log: &mut LeaseLog) {
    match ev {
        Event::LeaseBound {
            mac,
            ip,
            expires,
            renewed,
        } => {
            let expires_in_s = expires.saturating_sub(now_ms()) / 1000;
            if !renewed && lease_log.admit(now_ms()) {
                tracing::info!(%mac, %ip, expires_in_s, "lease bound")
            } else {
                tracing::debug!(%mac, %ip, expires_in_s, renewed, "lease bound")
            }
        }
        Event::LeaseEnded { mac, ip, reason } => {
            if lease_log.admit(now_ms()) {
                tracing::info!(%mac, %ip, %reason, "lease ended")
            } else {
                tracing::debug!(%mac, %ip, %reason, "lease ended")
            }
        }
        Event::SessionStarted(s) => {
            tracing::info!(mac = %s.mac, ip = %s.ip, session_id = s.session_id, user = s.user.as_deref().unwrap_or("-"), "session started")
        }
        Event::SessionEnded(s) => tracing::info!(
            mac = %s.mac,
            ip = %s.ip,
            session_id = s.session_id,
            reason = %s.reason,
            seconds = (s.ended - s.started) / 1000,
            octets_in = s.counters.octets_in,
            octets_out = s.counters.octets_out,
            packets_in = s.counters.packets_in,
            packets_out = s.counters.packets_out,
            "session ended"
        ),
        Event::InterimUpdate(r) => tracing::debug!(
            mac = %r.mac,
            session_id = r.session_id,
            octets_in = r.counters.octets_in,
            octets_out = r.counters.octets_out,
            "interim update"
        ),
    }
}

/// Waits up to `wait` for every spooled record to be acknowledged.
async fn spool_drained(radius: &crate::radius::service::RadiusHandle, wait: Duration) -> bool {
    let until = tokio::time::Instant::now() + wait;
    while radius.pending_accounting() > 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    radius.pending_accounting() == 0
}

/// Writes the newest session snapshot of a batch, durably when asked.
fn save_sessions(
    file: &crate::store::JsonFile,
    snapshot: Option<(crate::session::SavedSessions, bool)>,
) {
    if let Some((sessions, sync)) = snapshot {
        if let Err(e) = file.save_with(&sessions, sync) {
            tracing::error!("saving sessions: {e}");
        }
    }
}

/// The state files.
struct StateFiles {
    leases: JsonFile,
    leases6: JsonFile,
    sessions: JsonFile,
}

/// The state files and what they held when lassi started.
struct State {
    files: StateFiles,
    restored: Vec<crate::dhcp::LeaseRecord>,
    /// DHCPv6 leases (read only with `[lan.ipv6]`).
    restored6: Vec<crate::dhcp6::Lease6Record>,
    saved: SavedSessions,
}

/// Opens the state directory's files and reads them.
fn open_state(cfg: &Config) -> Result<State, String> {
    let leases = store::leases(&cfg.state.dir).map_err(|e| format!("state.dir: {e}"))?;
    let sessions = store::sessions(&cfg.state.dir).map_err(|e| format!("state.dir: {e}"))?;
    let leases6 = store::leases6(&cfg.state.dir).map_err(|e| format!("state.dir: {e}"))?;
    let restored = leases.load();
    let restored6 = if cfg.lan.ipv6.is_some() {
        leases6.load()
    } else {
        Vec::new()
    };
    // An unknown schema version stops lassi with a clear message rather
    // than dropping sessions (and their accounting) silently.
    let saved = SavedSessions::from_json(sessions.load::<serde_json::Value>())?.on_system_clock();
    Ok(State {
        files: StateFiles {
            leases,
            leases6,
            sessions,
        },
        restored,
        restored6,
        saved,
    })
}

/// The LAN port, the TUN device and the firewall that keeps them apart.
struct Devices {
    gateway_mac: MacAddr,
    firewall: Firewall,
    /// The kernel fast path, when configured.
    kernel: Option<KernelPath>,
    /// The engine thread's LAN socket and TUN queue.
    own: Ports,
    /// One LAN socket and TUN queue per further worker.
    workers: Vec<Ports>,
}

/// Whether the kernel forwards logged-in guests.
fn kernel_fast_path(cfg: &Config) -> bool {
    cfg.dataplane.fast_path == FastPathKind::Kernel
}

/// Prepares the LAN, installs the firewall and opens the devices.
fn install_devices(cfg: &Config) -> Result<Devices, String> {
    let gateway_mac =
        sys::interface_mac(&cfg.lan.interface).map_err(|e| format!("lan.interface: {e}"))?;
    prepare_lan(cfg)?;
    // Firewall before the TUN exists: there is no moment in which the
    // kernel could route LAN traffic around lassi.
    let firewall = Firewall::install(FirewallSpec {
        lan_interface: cfg.lan.interface.clone(),
        lan_network: cfg.lan.network,
        masquerade_out: cfg
            .uplink
            .nat
            .then(|| cfg.uplink.wan_interface.clone())
            .flatten(),
        tun_interface: cfg.uplink.tun_name.clone(),
        portal_port: cfg.portal.port,
        kernel_fast_path: kernel_fast_path(cfg),
    })?;
    let tun = Tun::create(
        &cfg.uplink.tun_name,
        cfg.lan.gateway,
        cfg.lan.network.prefix,
        (cfg.lan.ipv6.as_ref()).map(|v6| (v6.address, v6.prefix.len())),
        cfg.lan.mtu.unwrap_or(1500),
        cfg.dataplane.workers > 1,
    )
    .map_err(|e| format!("uplink.tun_name: {e}"))?;
    let lan = if kernel_fast_path(cfg) {
        LanPort::open_split(&cfg.lan.interface, FAST_MARK)
    } else {
        LanPort::open(&cfg.lan.interface)
    }
    .map_err(|e| format!("lan.interface: {e}"))?;
    let kernel = if kernel_fast_path(cfg) {
        let tables = KernelTables::open(&firewall.table(), lan.ifindex(), cfg.lan.network)
            .map_err(|e| format!("dataplane.fast_path = \"kernel\": {e}"))?;
        Some(KernelPath::new(tables))
    } else {
        None
    };
    if cfg.lan.ipv6.is_some() {
        // Neighbour discovery and DHCPv6 go to multicast groups the kernel
        // (IPv6 off on this interface) has not joined for us.
        lan.accept_all_multicast()
            .map_err(|e| format!("lan.interface: {e}"))?;
    }
    let workers = worker_ports(cfg, &lan, &tun, gateway_mac)?;
    Ok(Devices {
        gateway_mac,
        firewall,
        kernel,
        own: Ports::new(lan, tun, gateway_mac),
        workers,
    })
}

/// A LAN socket and a TUN queue for each worker after the first, all LAN
/// sockets (the engine thread's `lan` too) in one fanout group, so the
/// kernel spreads flows over the workers.
fn worker_ports(
    cfg: &Config,
    lan: &LanPort,
    tun: &Tun,
    gateway_mac: MacAddr,
) -> Result<Vec<Ports>, String> {
    if cfg.dataplane.workers < 2 {
        return Ok(Vec::new());
    }
    let lan_err = |e: std::io::Error| format!("lan.interface: {e}");
    let tun_err = |e: std::io::Error| format!("dataplane.workers: a TUN queue: {e}");
    // Fanout groups are per network namespace: the process id keeps two
    // lassi instances in one namespace apart.
    let group = (std::process::id() & 0xffff) as u16;
    lan.join_fanout(group).map_err(lan_err)?;
    let mut ports = Vec::new();
    for _ in 1..cfg.dataplane.workers {
        let worker_lan = LanPort::open(&cfg.lan.interface).map_err(lan_err)?;
        worker_lan.join_fanout(group).map_err(lan_err)?;
        let queue = tun.add_queue().map_err(tun_err)?;
        ports.push(Ports::new(worker_lan, queue, gateway_mac));
    }
    Ok(ports)
}

/// Engine settings derived from the config.
fn engine_settings(cfg: &Config, gateway_mac: MacAddr) -> EngineSettings {
    EngineSettings {
        gateway_ip: cfg.lan.gateway,
        gateway_mac,
        network: cfg.lan.network,
        dns: cfg.lan.dns.clone(),
        client_isolation: cfg.lan.client_isolation,
        intercept: intercept_settings(cfg),
        quota_action: cfg.session.quota_action,
        lost_carrier: LostCarrier {
            silent_secs: cfg.session.probe_after,
            interval_secs: cfg.session.probe_interval,
            probes: cfg.session.probes,
        },
        default_limits: cfg.session.defaults.clone(),
        session_id_seed: session_id_seed(),
    }
}

/// IPv6 on the LAN from `[lan.ipv6]` (validated at load), if it is on.
fn ipv6_settings(cfg: &Config, gateway_mac: MacAddr) -> Option<Ipv6Settings> {
    let v6 = cfg.lan.ipv6.as_ref()?;
    Some(Ipv6Settings {
        ra: cfg.lan.ra_settings(gateway_mac)?,
        dhcp: cfg.lan.dhcp6_settings(gateway_mac)?,
        addrs: crate::ipv6::addrs::AddrSettings::new(Some(v6.prefix)),
        address: v6.address,
    })
}

fn random_u64() -> u64 {
    let mut seed = [0u8; 8];
    sys::random_bytes(&mut seed);
    u64::from_ne_bytes(seed)
}

/// Builds the engine from the restored leases and resumes the saved
/// sessions; returns it with the number of sessions resumed.
fn build_engine(
    cfg: &Config,
    gateway_mac: MacAddr,
    restored: Vec<crate::dhcp::LeaseRecord>,
    restored6: Vec<crate::dhcp6::Lease6Record>,
    saved: SavedSessions,
) -> (Engine, usize) {
    let now = now_ms();
    let (restored_count, saved_count) = (restored.len(), saved.sessions.len());
    let dhcp = DhcpServer::new(cfg.lan.dhcp_settings(), restored, now);
    let mut engine = Engine::new(engine_settings(cfg, gateway_mac), dhcp, now);
    engine.seed_random(random_u64());
    if let Some(v6) = ipv6_settings(cfg, gateway_mac) {
        tracing::info!(
            prefix = %v6.ra.prefix.map(|p| p.to_string()).unwrap_or_default(),
            link_local = %v6.ra.link_local,
            address = %v6.address,
            restored_leases6 = restored6.len(),
            "IPv6 on the LAN: router advertisements, DHCPv6, forwarding behind the portal"
        );
        engine.enable_ipv6(v6, restored6, random_u64(), now);
    }
    let grace_ms = u64::from(cfg.session.restart_grace) * 1000;
    let resumed = engine.resume_sessions(saved, now, grace_ms);
    tracing::info!(
        lan = cfg.lan.interface,
        gateway = %cfg.lan.gateway,
        network = %cfg.lan.network,
        tun = cfg.uplink.tun_name,
        restored_leases = restored_count,
        saved_sessions = saved_count,
        resumed_sessions = resumed,
        clients = engine.sessions().len(),
        "lassi started"
    );
    (engine, resumed)
}

/// The running gateway: what `run` keeps between spawning its threads and
/// shutting them down.
struct Daemon {
    cfg: Config,
    /// The config file, read again by a reload.
    config_path: std::path::PathBuf,
    gateway_mac: MacAddr,
    rt: tokio::runtime::Runtime,
    handle: DataplaneHandle,
    aaa: Option<Arc<Aaa>>,
    dataplane: JoinHandle<usize>,
    notices: JoinHandle<()>,
    firewall: Firewall,
    hooks: Hooks,
}

/// What the hook scripts are told about the gateway: the NAS as RADIUS
/// requests describe it, else the portal's NAS id and the LAN MAC.
pub fn gateway_info(
    cfg: &Config,
    gateway_mac: MacAddr,
    nas: Option<crate::radius::NasInfo>,
) -> GatewayInfo {
    let nas = nas.unwrap_or_else(|| crate::radius::NasInfo {
        nas_identifier: Some(cfg.portal.nas_id.clone()),
        nas_mac: Some(gateway_mac),
        ..Default::default()
    });
    GatewayInfo {
        dev: cfg.uplink.tun_name.clone(),
        lan_interface: cfg.lan.interface.clone(),
        addr: cfg.lan.gateway,
        network: cfg.lan.network,
        mtu: cfg.lan.mtu.unwrap_or(1500),
        uam_port: cfg.portal.port,
        uam_server: cfg.portal.uam_server.clone(),
        nas,
        swap_octets: cfg.radius.as_ref().is_some_and(|r| r.swap_octets),
    }
}

/// Starts the control-plane runtime, RADIUS, the data-plane thread and the
/// notice thread.
fn spawn(
    cfg: Config,
    config_path: std::path::PathBuf,
    files: StateFiles,
    devices: Devices,
    engine: Engine,
    resumed: usize,
    operator: Arc<OperatorState>,
) -> Result<Daemon, String> {
    let waker = Arc::new(Waker::new().map_err(|e| format!("eventfd: {e}"))?);
    let commands = Arc::new(Queue::default());
    let notice_queue = Arc::new(Queue::<Notice>::default());
    let handle = DataplaneHandle {
        commands: commands.clone(),
        waker: waker.clone(),
        portal: Arc::default(),
        radius: Arc::default(),
        operator,
        reload: Arc::default(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let gateway_mac = devices.gateway_mac;
    // RADIUS first: Accounting-On must be spooled before the first event
    // (the Stops of sessions resumed after a crash) reaches accounting.
    let aaa = start_aaa(&rt, &cfg, gateway_mac, &handle, resumed > 0)?;
    let pool = if devices.workers.is_empty() {
        None
    } else {
        let fast = engine.fast_settings();
        let batch = cfg.dataplane.batch;
        Some(WorkerPool::start(
            devices.workers,
            fast,
            waker.clone(),
            batch,
        )?)
    };
    let dataplane = Forwarder {
        engine,
        ports: devices.own,
        pool,
        kernel: devices.kernel,
        waker,
        commands,
        notices: notice_queue.clone(),
        batch: cfg.dataplane.batch,
        stop_on_shutdown: cfg.session.stop_on_shutdown,
    };
    let dataplane = std::thread::Builder::new()
        .name("lassi-dataplane".into())
        .spawn(move || dataplane.run())
        .map_err(|e| format!("starting the data plane: {e}"))?;
    let (notice_aaa, network) = (aaa.clone(), cfg.lan.network.addr);
    let gateway = gateway_info(&cfg, gateway_mac, aaa.as_deref().map(|a| a.nas.clone()));
    let hooks = Hooks::start(rt.handle(), cfg.hooks.clone(), gateway);
    // The TUN device is up (install_devices): CoovaChilli's ipup.
    hooks.ipup();
    let notice_hooks = hooks.clone();
    let notices = std::thread::Builder::new()
        .name("lassi-notices".into())
        .spawn(move || notice_loop(&notice_queue, files, notice_aaa, network, notice_hooks))
        .map_err(|e| format!("starting the notice thread: {e}"))?;
    Ok(Daemon {
        cfg,
        config_path,
        gateway_mac,
        rt,
        handle,
        aaa,
        dataplane,
        notices,
        firewall: devices.firewall,
        hooks,
    })
}

/// Starts RADIUS (when configured) and makes it known to the control
/// socket.
fn start_aaa(
    rt: &tokio::runtime::Runtime,
    cfg: &Config,
    gateway_mac: MacAddr,
    handle: &DataplaneHandle,
    resumed: bool,
) -> Result<Option<Arc<Aaa>>, String> {
    let Some(r) = &cfg.radius else {
        return Ok(None);
    };
    let aaa = rt.block_on(crate::aaa::start(
        cfg,
        r,
        gateway_mac,
        handle.clone(),
        resumed,
    ))?;
    let _ = handle.radius.set(aaa.radius.clone());
    Ok(Some(aaa))
}

/// The notice thread: logs events, does their accounting, and saves the
/// state files.
///
/// The data plane sends a snapshot of every session at each login and
/// logout. Saving each one (fsync) fell behind a burst of logins and the
/// queued snapshots held over 100 MB at 1,000 clients (bench/soak), so what
/// is queued is taken at once: events in order, and only the newest
/// snapshots saved. One exception keeps accounting monotonic: an Interim
/// goes out only after the save queued before it (a Stop after a crash must
/// not count less than an Interim did).
fn notice_loop(
    rx: &Queue<Notice>,
    files: StateFiles,
    aaa: Option<Arc<Aaa>>,
    network: Ipv4Addr,
    hooks: Hooks,
) {
    let mut lease_log = LeaseLog::default();
    while let Some(first) = rx.pop_wait() {
        let (mut leases, mut leases6, mut sessions) = (None, None, None);
        let queued = std::iter::from_fn(|| rx.pop()).take(NOTICE_BATCH);
        for notice in std::iter::once(first).chain(queued) {
            match notice {
                Notice::Events(evs) => {
                    if evs.iter().any(|e| matches!(e, Event::InterimUpdate(_))) {
                        save_sessions(&files.sessions, sessions.take());
                    }
                    for ev in &evs {
                        log_event(ev, &mut lease_log);
                        hooks.session_event(ev);
                        if let Some(aaa) = &aaa {
                            account_event(aaa, ev, network);
                        }
                    }
                }
                Notice::Leases(l) => leases = Some(l),
                Notice::Leases6(l) => leases6 = Some(l),
                // The newest snapshot wins; it is written durably (fsync)
                // if any snapshot it replaces asked for that.
                Notice::Sessions(s, durability) => {
                    let sync = durability == Durability::Sync
                        || sessions.as_ref().is_some_and(|(_, sync)| *sync);
                    sessions = Some((s, sync));
                }
            }
        }
        if let Some(Err(e)) = leases.map(|l| files.leases.save(&l)) {
            tracing::error!("saving leases: {e}");
        }
        if let Some(Err(e)) = leases6.map(|l| files.leases6.save(&l)) {
            tracing::error!("saving DHCPv6 leases: {e}");
        }
        save_sessions(&files.sessions, sessions);
    }
}

impl Daemon {
    /// Serves the control socket, the portal, the walled garden and
    /// reloads (`lassi reload`, SIGHUP) until SIGTERM, SIGINT or the
    /// control server's end.
    fn serve(&self) -> Result<(), String> {
        let (cfg, handle) = (&self.cfg, &self.handle);
        self.rt.block_on(async {
            // Off (nothing listens) unless `metrics.listen` is set; held
            // until lassi stops. A reload moves it with `rebind`. Before
            // the control socket, so a start-up failure shows before
            // lassi looks ready.
            let metrics = Arc::new(
                crate::metrics::MetricsServer::start(cfg.metrics.listen, handle.clone()).await?,
            );
            let server = ControlServer::bind(&cfg.control.socket)
                .map_err(|e| format!("control.socket {}: {e}", cfg.control.socket.display()))?;
            let signal =
                |kind| tokio::signal::unix::signal(kind).map_err(|e| format!("signals: {e}"));
            let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
            let mut hup = signal(tokio::signal::unix::SignalKind::hangup())?;
            let radius_auth = self.aaa.as_ref().map(|a| {
                Box::new(crate::aaa::RadiusAuth {
                    radius: a.radius.clone(),
                    dp: handle.clone(),
                    network: cfg.lan.network,
                }) as Box<dyn crate::portal::auth::Authenticator>
            });
            let portal =
                crate::portal::start(cfg, self.gateway_mac, handle.clone(), radius_auth).await?;
            let reload = self.start_reload(portal, metrics.clone());
            let _ = handle.reload.set(reload.clone());
            let serve = server.serve(handle.clone());
            let garden = crate::io::garden_resolver::run(cfg.lan.dns.clone(), handle.clone());
            tokio::spawn(garden);
            tokio::pin!(serve);
            loop {
                tokio::select! {
                    _ = &mut serve => break,
                    _ = term.recv() => break tracing::info!("SIGTERM: stopping"),
                    _ = tokio::signal::ctrl_c() => break tracing::info!("SIGINT: stopping"),
                    // The reload task logs the outcome.
                    _ = hup.recv() => {
                        let _ = reload.reload(crate::reload::Origin::Signal).await;
                    }
                }
            }
            Ok::<(), String>(())
        })
    }

    /// The reload task, holding the running configuration.
    fn start_reload(
        &self,
        portal: crate::portal::PortalCell,
        metrics: Arc<crate::metrics::MetricsServer>,
    ) -> crate::reload::ReloadHandle {
        crate::reload::spawn(crate::reload::Live {
            path: self.config_path.clone(),
            cfg: self.cfg.clone(),
            gateway_mac: self.gateway_mac,
            dp: self.handle.clone(),
            portal,
            radius: self.aaa.as_ref().map(|a| a.radius.clone()),
            metrics,
            hooks: self.hooks.clone(),
        })
    }

    /// Orderly stop: sessions end (NAS-Reboot) and their Stops are spooled,
    /// leases are written, Accounting-Off goes out (what the servers have
    /// not acknowledged stays spooled for the next start), then the
    /// firewall tables go and the TUN device disappears with its
    /// descriptor.
    fn shutdown(self) {
        let _ = self.handle.commands.send(Command::Shutdown);
        self.handle.waker.wake();
        drop(self.handle);
        let kept = self.dataplane.join().unwrap_or_else(|_| {
            tracing::error!("the data plane thread panicked");
            0
        });
        let _ = self.notices.join();
        if kept > 0 {
            tracing::info!(
                sessions = kept,
                grace_s = self.cfg.session.restart_grace,
                "sessions kept for the next start (their Stops go out if it comes later than the grace)"
            );
        }
        if let Some(aaa) = self.aaa {
            finish_accounting(&self.rt, &aaa, kept);
        }
        finish_hooks(&self.rt, &self.hooks, self.cfg.hooks.timeout);
        drop(self.firewall);
        tracing::info!("lassi stopped");
    }
}

/// Lets the sessions' `condown` scripts finish (each has its time limit),
/// then runs `ipdown`: the TUN device has gone with the data plane.
fn finish_hooks(rt: &tokio::runtime::Runtime, hooks: &Hooks, timeout_s: u32) {
    let wait = Duration::from_secs(u64::from(timeout_s) + 1);
    if !rt.block_on(hooks.drain(wait)) {
        tracing::warn!("hook scripts still queued at shutdown were not run");
    }
    rt.block_on(hooks.ipdown());
}

/// Waits for the spool to drain and sends Accounting-Off, unless sessions
/// are kept for the next start: it would tell the server they ended.
fn finish_accounting(rt: &tokio::runtime::Runtime, aaa: &Aaa, kept: usize) {
    let acked = if kept > 0 {
        rt.block_on(spool_drained(&aaa.radius, Duration::from_secs(3)))
    } else {
        rt.block_on(aaa.radius.accounting_off(Duration::from_secs(3)))
    };
    let pending = aaa.radius.pending_accounting();
    if acked && pending == 0 {
        tracing::info!("accounting complete");
    } else {
        tracing::warn!(
            pending,
            "accounting not all acknowledged; kept in the spool for the next start"
        );
    }
    aaa.radius.shutdown();
}

/// Run the gateway until SIGTERM or SIGINT; `config_path` is the file
/// `cfg` was read from, read again by `lassi reload` and SIGHUP.
pub fn run(cfg: Config, config_path: std::path::PathBuf) -> Result<(), String> {
    // A SIGHUP (`systemctl reload`) before the reload handler is in place
    // must not kill a starting lassi: ignored until `serve` handles it.
    // SAFETY: sets the disposition of one signal; no handler code runs.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let State {
        files,
        restored,
        restored6,
        saved,
    } = open_state(&cfg)?;
    let operator = OperatorState::open(&cfg.state.dir, &cfg.portal.walled_garden)?;
    let devices = install_devices(&cfg)?;
    let (mut engine, resumed) = build_engine(&cfg, devices.gateway_mac, restored, restored6, saved);
    operator.prepare_engine(&mut engine, now_ms());
    let daemon = spawn(
        cfg,
        config_path,
        files,
        devices,
        engine,
        resumed,
        Arc::new(operator),
    )?;
    let served = daemon.serve();
    daemon.shutdown();
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_log_budget_per_window() {
        let mut log = LeaseLog::default();
        let t0 = 1_700_000_000_000;
        let admitted = (0..1000).filter(|_| log.admit(t0)).count();
        assert_eq!(admitted as u32, LEASE_LOG_BURST);
        assert_eq!(log.held_back, 1000 - LEASE_LOG_BURST);
        // A new window starts afresh.
        assert!(log.admit(t0 + LEASE_LOG_WINDOW_MS));
        assert_eq!(log.held_back, 0);
    }
}
