//! The RADIUS service: the thin tokio shell around the I/O-free pieces.
//!
//! [`RadiusService::start`] opens one UDP socket for authentication and one
//! for accounting (each talks to every configured server, so identifiers
//! are allocated per server and service), opens the accounting spool,
//! and, when configured, a CoA/Disconnect listener. It spawns its tasks on
//! the current tokio runtime (a current-thread runtime is fine) and
//! returns a cloneable [`RadiusHandle`] and, with CoA on, a receiver of
//! [`CoaCall`]s for the daemon.
//!
//! Accounting: [`RadiusHandle::account`] writes the record to the spool
//! (fsync) before it returns, and the service sends it, resends it after
//! every outage (also after a restart: the spool is read at start) and
//! deletes it when a server acknowledges it, keeping each session's records
//! in order. Acct-Delay-Time is recomputed at every send.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use super::attrs::AccessAnswer;
use super::attrs::{AccessRequest, AcctRecord, AcctStatus, MacAuthSettings, NasInfo};
pub use super::client::ServerConfig;
use super::client::Token;
use super::client::{ClientEngine, ClientEvent, ClientStats, EngineConfig, RadiusRequest, Service};
use super::coa::{CoaAction, CoaClient, CoaEngine, CoaKey, CoaReply, CoaRequest, CoaServer};
use super::metrics::{CoaPortKind, CoaResult};
use super::packet::Packet;
use super::spool::{SpoolConfig, SpoolEvent};
pub use super::spool_store::SpoolError;
use super::spool_store::SpoolStore;
use crate::io::clock::{now_ms, sleep_until, wall_ms};
use crate::wire::MacAddr;

/// The CoA/Disconnect listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoaSettings {
    /// Where to listen (RFC 5176 port 3799 by default).
    pub listen: SocketAddr,
    /// Who may send requests, each with its secret.
    pub clients: Vec<(IpAddr, String)>,
    /// Drop requests without Message-Authenticator.
    pub require_message_authenticator: bool,
    /// How long the daemon has to answer a request before lassi NAKs it
    /// with Resources-Unavailable (506).
    pub answer_timeout: Duration,
    /// Seconds an Event-Timestamp may be off lassi's clock (0: unchecked).
    pub event_timestamp_window: u32,
    /// Refuse requests without Event-Timestamp.
    pub require_event_timestamp: bool,
    /// NAK (404) a stale Event-Timestamp instead of dropping it silently.
    pub nak_stale_event_timestamp: bool,
}

impl Default for CoaSettings {
    fn default() -> Self {
        CoaSettings {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3799),
            clients: Vec::new(),
            require_message_authenticator: false,
            answer_timeout: Duration::from_secs(5),
            event_timestamp_window: 300,
            require_event_timestamp: false,
            nak_stale_event_timestamp: false,
        }
    }
}

/// Everything the service needs; the daemon maps its configuration onto
/// this. [`RadiusSettings::new`] fills in the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadiusSettings {
    /// Servers, primary first.
    pub servers: Vec<ServerConfig>,
    /// Wait before the first resend (default 2 s); doubles at each resend.
    pub timeout: Duration,
    /// Upper bound of the resend interval (default 8 s).
    pub max_backoff: Duration,
    /// Resends to one server before failing over (default 2).
    pub retries: u32,
    /// How long a silent server is passed over (default 60 s).
    pub dead_time: Duration,
    /// Status-Server probes of a dead server, one per this interval
    /// (default 5 s; zero: none, the server is tried again after `dead_time`).
    pub status_interval: Duration,
    /// Drop Access-Accept/Reject/Challenge without Message-Authenticator
    /// (BlastRADIUS hardening; default on). FreeRADIUS before 3.2.5 adds
    /// one only when told to (`update reply { Message-Authenticator := 0x00 }`
    /// in post-auth).
    pub require_message_authenticator: bool,
    /// NAS-Identifier.
    pub nas_identifier: Option<String>,
    /// NAS-IP-Address.
    pub nas_ip: Option<Ipv4Addr>,
    /// Called-Station-Id (default: `nas_mac` dashed).
    pub called_station_id: Option<String>,
    /// The LAN interface's MAC.
    pub nas_mac: Option<MacAddr>,
    /// WISPr-Location-ID.
    pub location_id: Option<String>,
    /// WISPr-Location-Name.
    pub location_name: Option<String>,
    /// MAC authentication user name suffix and password.
    pub mac_auth: MacAuthSettings,
    /// CoovaChilli's client view point: Acct-Input-* = what the client
    /// received (default off: RFC 2866 NAS view).
    pub swap_octets: bool,
    /// Source address of requests (default: any).
    pub bind_addr: Option<IpAddr>,
    /// Accounting spool directory.
    pub spool_dir: PathBuf,
    /// Spool bound in records (default 10 000).
    pub spool_max_records: usize,
    /// Spool bound in bytes (default 8 MiB).
    pub spool_max_bytes: u64,
    /// Wait before resending a spooled record no server answered (default 30 s).
    pub spool_retry: Duration,
    /// Accounting records in flight at once (default 32).
    pub max_acct_in_flight: usize,
    /// The CoA/Disconnect listener, if any.
    pub coa: Option<CoaSettings>,
}

impl RadiusSettings {
    /// Defaults around the two things that have none.
    pub fn new(servers: Vec<ServerConfig>, spool_dir: PathBuf) -> RadiusSettings {
        RadiusSettings {
            servers,
            timeout: Duration::from_secs(2),
            max_backoff: Duration::from_secs(8),
            retries: 2,
            dead_time: Duration::from_secs(60),
            status_interval: Duration::from_secs(5),
            require_message_authenticator: true,
            nas_identifier: None,
            nas_ip: None,
            called_station_id: None,
            nas_mac: None,
            location_id: None,
            location_name: None,
            mac_auth: MacAuthSettings::default(),
            swap_octets: false,
            bind_addr: None,
            spool_dir,
            spool_max_records: 10_000,
            spool_max_bytes: 8 << 20,
            spool_retry: Duration::from_secs(30),
            max_acct_in_flight: 32,
            coa: None,
        }
    }

    /// The NAS attributes as the request builders want them.
    pub fn nas_info(&self) -> NasInfo {
        NasInfo {
            nas_identifier: self.nas_identifier.clone(),
            nas_ip: self.nas_ip,
            called_station_id: self.called_station_id.clone(),
            nas_mac: self.nas_mac,
            location_id: self.location_id.clone(),
            location_name: self.location_name.clone(),
        }
    }

    /// The client engine's settings.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            servers: self.servers.clone(),
            timeout_ms: self.timeout.as_millis() as u64,
            retries: self.retries,
            max_backoff_ms: self.max_backoff.as_millis() as u64,
            dead_time_ms: self.dead_time.as_millis() as u64,
            status_interval_ms: self.status_interval.as_millis() as u64,
            require_message_authenticator: self.require_message_authenticator,
        }
    }

    /// The accounting spool's bounds and send policy.
    pub fn spool_config(&self) -> SpoolConfig {
        SpoolConfig {
            max_records: self.spool_max_records,
            max_bytes: self.spool_max_bytes,
            retry_ms: self.spool_retry.as_millis() as u64,
            max_in_flight: self.max_acct_in_flight,
        }
    }

    /// The CoA request checker for listener `c`.
    pub fn coa_server(&self, c: &CoaSettings) -> CoaServer {
        CoaServer {
            clients: c
                .clients
                .iter()
                .map(|(a, s)| CoaClient {
                    addr: *a,
                    secret: s.as_bytes().to_vec(),
                })
                .collect(),
            nas_identifier: self.nas_identifier.clone(),
            nas_ip: self.nas_ip,
            require_message_authenticator: c.require_message_authenticator,
            swap_octets: self.swap_octets,
            event_timestamp_window: c.event_timestamp_window,
            require_event_timestamp: c.require_event_timestamp,
            nak_stale_event_timestamp: c.nak_stale_event_timestamp,
        }
    }
}

/// Counters of the whole service (`radius` in `lassi status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RadiusStats {
    /// The client engine's counters (sent, resent, dropped responses…).
    pub client: ClientStats,
    /// Access-Accepts.
    pub accepts: u64,
    /// Access-Rejects (and Challenges).
    pub rejects: u64,
    /// Logins no server answered.
    pub auth_unreachable: u64,
    /// Accounting records acknowledged.
    pub acct_acked: u64,
    /// Accounting sends no server answered (the record stays spooled).
    pub acct_unanswered: u64,
    /// Records waiting in the spool.
    pub spool_pending: u64,
    /// Records the full spool refused.
    pub spool_refused: u64,
    /// Records that were neither spooled nor acknowledged (lost).
    pub acct_lost: u64,
    /// CoA/Disconnect requests passed to the daemon.
    pub coa_requests: u64,
    /// CoA/Disconnect datagrams dropped (unknown client, bad secret…).
    pub coa_dropped: u64,
    /// CoA/Disconnect ACKs sent.
    pub coa_acks: u64,
    /// CoA/Disconnect NAKs sent.
    pub coa_naks: u64,
    /// CoA-port requests by kind and result (metrics).
    #[serde(skip)]
    pub coa_by_kind: super::metrics::CoaCounts,
}

/// A CoA or Disconnect request for the daemon, to be answered with
/// [`CoaCall::reply`]. Dropping it unanswered NAKs it (506).
#[derive(Debug)]
pub struct CoaCall {
    /// What was asked.
    pub request: CoaRequest,
    replies: Option<mpsc::UnboundedSender<(CoaKey, CoaReply)>>,
}

impl CoaCall {
    /// Sends the answer (ACK, or NAK with Error-Cause such as
    /// Session-Context-Not-Found).
    pub fn reply(mut self, r: CoaReply) {
        self.send(r);
    }

    fn send(&mut self, r: CoaReply) {
        if let Some(tx) = self.replies.take() {
            let _ = tx.send((self.request.key(), r));
        }
    }
}

enum Cmd {
    Auth(AccessRequest, oneshot::Sender<AccessAnswer>),
    Spooled,
    Volatile(AcctRecord),
    WaitAcked(u64, oneshot::Sender<()>),
    Metrics(oneshot::Sender<Vec<super::metrics::ServerMetrics>>),
    Reconfigure(Arc<RadiusSettings>),
    Shutdown,
}

/// The handle the daemon keeps. Cloneable; the service stops when
/// [`RadiusHandle::shutdown`] is called or every handle is dropped.
#[derive(Clone)]
pub struct RadiusHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    spool: Arc<Mutex<SpoolStore>>,
    stats: Arc<Mutex<RadiusStats>>,
    /// Replaced by a reload ([`RadiusHandle::reconfigure`]).
    settings: Arc<std::sync::RwLock<Arc<RadiusSettings>>>,
}

/// Entry point.
pub struct RadiusService;

fn seed() -> [u8; 16] {
    let mut s = [0u8; 16];
    crate::io::sys::random_bytes(&mut s);
    s
}

/// The CoA listener's socket and the channel to the daemon.
type CoaOpen = (UdpSocket, mpsc::Sender<CoaCall>, mpsc::Receiver<CoaCall>);

impl RadiusService {
    /// Starts the service on the current tokio runtime. Fails if a socket
    /// cannot be bound or the spool directory cannot be opened.
    pub async fn start(
        settings: RadiusSettings,
    ) -> io::Result<(RadiusHandle, Option<mpsc::Receiver<CoaCall>>)> {
        let (auth_sock, acct_sock) = Self::bind(&settings).await?;
        let spool = SpoolStore::open(settings.spool_dir.clone(), settings.spool_config())?;
        let coa = Self::open_coa(&settings).await?;
        let engine = ClientEngine::new(settings.engine_config(), seed());
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(RadiusStats {
            spool_pending: spool.spool().len() as u64,
            ..Default::default()
        }));
        let spool = Arc::new(Mutex::new(spool));
        let settings = Arc::new(settings);
        let (coa_handle, coa_rx, coa_servers) = match (coa, &settings.coa) {
            (Some((sock, calls, rx)), Some(c)) => {
                let timeout_ms = c.answer_timeout.as_millis() as u64;
                let engine = CoaEngine::new(settings.coa_server(c), timeout_ms);
                let (servers_tx, servers_rx) = mpsc::unbounded_channel();
                let listener = CoaListener::new(sock, engine, stats.clone(), servers_rx);
                (
                    Some(tokio::spawn(listener.run(calls))),
                    Some(rx),
                    Some(servers_tx),
                )
            }
            _ => (None, None, None),
        };
        let task = Task {
            engine,
            auth_sock,
            acct_sock,
            spool: spool.clone(),
            stats: stats.clone(),
            nas: settings.nas_info(),
            settings: settings.clone(),
            auth_waiters: HashMap::new(),
            ack_waiters: HashMap::new(),
            coa_servers,
        };
        tokio::spawn(task.run(rx, coa_handle));
        let handle = RadiusHandle {
            tx,
            spool,
            stats,
            settings: Arc::new(std::sync::RwLock::new(settings)),
        };
        Ok((handle, coa_rx))
    }

    /// The authentication and accounting sockets (each talks to every
    /// server), bound to `bind_addr` or the wildcard of the first server's
    /// family.
    async fn bind(settings: &RadiusSettings) -> io::Result<(UdpSocket, UdpSocket)> {
        let any: IpAddr = match settings.servers.first().map(|s| s.addr) {
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let bind = SocketAddr::new(settings.bind_addr.unwrap_or(any), 0);
        Ok((UdpSocket::bind(bind).await?, UdpSocket::bind(bind).await?))
    }

    /// The CoA listener's socket, when one is configured.
    async fn open_coa(settings: &RadiusSettings) -> io::Result<Option<CoaOpen>> {
        let Some(c) = &settings.coa else {
            return Ok(None);
        };
        let sock = UdpSocket::bind(c.listen).await?;
        let (tx, rx) = mpsc::channel(64);
        Ok(Some((sock, tx, rx)))
    }
}

impl RadiusHandle {
    /// Checks a login. Resolves when a server answers or every server has
    /// been tried (about `timeout × (1 + 2 + …)` per server).
    pub async fn authenticate(&self, req: AccessRequest) -> AccessAnswer {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Auth(req, tx)).is_err() {
            return AccessAnswer::Unreachable;
        }
        rx.await.unwrap_or(AccessAnswer::Unreachable)
    }

    /// The Access-Request for MAC authentication of a client, with the
    /// configured suffix and password.
    pub fn mac_auth_request(
        &self,
        mac: MacAddr,
        ip: Ipv4Addr,
        session_id: &str,
        nas_port: u32,
    ) -> AccessRequest {
        AccessRequest::mac_auth(&self.settings().mac_auth, mac, ip, session_id, nas_port)
    }

    /// Queues an accounting record: written to the spool (fsync) before
    /// this returns, then sent and resent until acknowledged. When the
    /// spool is full the record is still sent, once, and the error says so.
    /// Blocks for one fsync.
    pub fn account(&self, rec: AcctRecord) -> Result<u64, SpoolError> {
        let r = self.spool.lock().expect("spool lock").append(&rec);
        match &r {
            Ok(_) => {
                let _ = self.tx.send(Cmd::Spooled);
            }
            Err(_) => {
                if let Ok(mut s) = self.stats.lock() {
                    s.spool_refused += 1;
                }
                let _ = self.tx.send(Cmd::Volatile(rec));
            }
        }
        r
    }

    /// Accounting-On (call once at start, before any Start).
    pub fn accounting_on(&self) -> Result<u64, SpoolError> {
        self.account(AcctRecord::nas(AcctStatus::AccountingOn, wall_ms()))
    }

    /// Accounting-Off at clean shutdown: spooled, then waits up to `wait`
    /// for the acknowledgement. True when acknowledged (if not, it stays in
    /// the spool and goes out at the next start, before that start's
    /// Accounting-On).
    pub async fn accounting_off(&self, wait: Duration) -> bool {
        let Ok(seq) = self.account(AcctRecord::nas(AcctStatus::AccountingOff, wall_ms())) else {
            return false;
        };
        self.wait_acked(seq, wait).await
    }

    /// Waits up to `wait` until the spooled record `seq` is acknowledged.
    pub async fn wait_acked(&self, seq: u64, wait: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::WaitAcked(seq, tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(wait, rx).await, Ok(Ok(())))
    }

    /// Each server's counters and state, for a metrics scrape.
    pub async fn server_metrics(&self) -> Result<Vec<super::metrics::ServerMetrics>, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Metrics(tx))
            .map_err(|_| "the RADIUS service has stopped".to_string())?;
        rx.await
            .map_err(|_| "the RADIUS service did not answer".to_string())
    }

    /// Records waiting in the spool.
    pub fn pending_accounting(&self) -> usize {
        self.spool.lock().map(|s| s.spool().len()).unwrap_or(0)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RadiusStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// The settings in use.
    pub fn settings(&self) -> Arc<RadiusSettings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A reload: new requests use `settings` (servers, secrets, timers,
    /// NAS attributes, MAC-auth name and password); requests in flight to
    /// a server that is still there unchanged finish there, the others
    /// start over on the new servers (see `ClientEngine::reconfigure`).
    /// The sockets, the spool and the CoA listener stay as they are.
    pub fn reconfigure(&self, settings: RadiusSettings) -> Result<(), String> {
        let settings = Arc::new(settings);
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings.clone();
        self.tx
            .send(Cmd::Reconfigure(settings))
            .map_err(|_| "the RADIUS service has stopped".to_string())
    }

    /// Stops the service (pending logins resolve as Unreachable; spooled
    /// records stay on disk for the next start).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Shutdown);
    }
}

/// The service's task: the client engine and the spool's policy, driven by
/// the sockets, the handle's commands and the engines' deadlines.
struct Task {
    engine: ClientEngine,
    auth_sock: UdpSocket,
    acct_sock: UdpSocket,
    spool: Arc<Mutex<SpoolStore>>,
    stats: Arc<Mutex<RadiusStats>>,
    settings: Arc<RadiusSettings>,
    nas: NasInfo,
    auth_waiters: HashMap<Token, oneshot::Sender<AccessAnswer>>,
    ack_waiters: HashMap<u64, Vec<oneshot::Sender<()>>>,
    /// A reload's CoA request checker, to the listener.
    coa_servers: Option<mpsc::UnboundedSender<CoaServer>>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>, coa: Option<JoinHandle<()>>) {
        let mut abuf = vec![0u8; 4096];
        let mut cbuf = vec![0u8; 4096];
        loop {
            self.pump();
            self.flush().await;
            let deadline = [self.engine.poll_timeout(), self.spool_timeout()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None | Some(Cmd::Shutdown) => break,
                    Some(c) => self.command(c),
                },
                r = self.auth_sock.recv_from(&mut abuf) => {
                    if let Ok((n, from)) = r {
                        self.engine.handle_datagram(now_ms(), Service::Auth, from, &abuf[..n]);
                    }
                }
                r = self.acct_sock.recv_from(&mut cbuf) => {
                    if let Ok((n, from)) = r {
                        self.engine.handle_datagram(now_ms(), Service::Acct, from, &cbuf[..n]);
                    }
                }
                _ = sleep_until(deadline) => self.engine.handle_timeout(now_ms()),
            }
        }
        if let Some(h) = coa {
            h.abort();
        }
        for (_, w) in self.auth_waiters.drain() {
            let _ = w.send(AccessAnswer::Unreachable);
        }
    }

    fn command(&mut self, c: Cmd) {
        let now = now_ms();
        match c {
            Cmd::Auth(req, reply) => {
                let (packet, password) = req.to_packet(&self.nas);
                let t = self.engine.submit(
                    now,
                    RadiusRequest {
                        service: Service::Auth,
                        packet,
                        password,
                    },
                );
                self.auth_waiters.insert(t, reply);
            }
            Cmd::Spooled => {}
            Cmd::Volatile(rec) => {
                let t = self.engine.submit(now, self.acct_request(&rec));
                self.with_spool(|s| s.spool_mut().sent_volatile(t, rec));
            }
            Cmd::WaitAcked(seq, w) => {
                if self.with_spool(|s| s.spool().get(seq).is_some()) == Some(true) {
                    self.ack_waiters.entry(seq).or_default().push(w);
                } else {
                    let _ = w.send(());
                }
            }
            Cmd::Metrics(reply) => {
                let servers = self.settings.servers.iter();
                let stats = servers.zip(self.engine.server_stats()).enumerate();
                let metrics = stats.map(|(i, (s, st))| super::metrics::ServerMetrics {
                    server: super::metrics::server_label(s),
                    up: !self.engine.is_dead(i, now),
                    stats: *st,
                });
                let _ = reply.send(metrics.collect());
            }
            Cmd::Reconfigure(settings) => {
                let new_servers = settings.servers != self.settings.servers;
                self.engine.reconfigure(now, settings.engine_config());
                if new_servers {
                    // Other servers or secrets: what waits in the spool
                    // after an outage is tried on them now, not at the
                    // next retry.
                    self.with_spool(|s| s.spool_mut().handle_server_alive());
                }
                self.nas = settings.nas_info();
                if let (Some(tx), Some(c)) = (&self.coa_servers, &settings.coa) {
                    let _ = tx.send(settings.coa_server(c));
                }
                self.settings = settings;
            }
            Cmd::Shutdown => {}
        }
    }

    /// The Accounting-Request for `rec`, as sent now (Acct-Delay-Time and
    /// Event-Timestamp are wall-clock matters).
    fn acct_request(&self, rec: &AcctRecord) -> RadiusRequest {
        RadiusRequest {
            service: Service::Acct,
            packet: rec.to_packet(&self.nas, self.settings.swap_octets, wall_ms()),
            password: None,
        }
    }

    fn with_spool<T>(&self, f: impl FnOnce(&mut SpoolStore) -> T) -> Option<T> {
        self.spool.lock().ok().map(|mut s| f(&mut s))
    }

    fn spool_timeout(&self) -> Option<u64> {
        self.with_spool(|s| s.spool().poll_timeout()).flatten()
    }

    /// Sends what the spool allows.
    fn pump(&mut self) {
        let now = now_ms();
        let Some(due) = self.with_spool(|s| {
            let due = s.spool_mut().due(now);
            let rec = |seq| s.spool().get(seq).map(|r| (seq, r.clone()));
            due.into_iter().filter_map(rec).collect::<Vec<_>>()
        }) else {
            return;
        };
        for (seq, rec) in due {
            let t = self.engine.submit(now, self.acct_request(&rec));
            self.with_spool(|s| s.spool_mut().sent(seq, t));
        }
    }

    async fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(tx) = self.engine.poll_transmit() {
                progressed = true;
                let sock = match tx.service {
                    Service::Auth => &self.auth_sock,
                    Service::Acct => &self.acct_sock,
                };
                if let Err(e) = sock.send_to(&tx.bytes, tx.dest).await {
                    tracing::debug!("radius: send to {} failed: {e}", tx.dest);
                }
            }
            while let Some(ev) = self.engine.poll_event() {
                progressed = true;
                self.event(ev);
                self.spool_events();
            }
            if !progressed {
                break;
            }
            self.pump();
        }
        let pending = self.with_spool(|s| s.spool().len() as u64).unwrap_or(0);
        if let Ok(mut s) = self.stats.lock() {
            s.client = self.engine.stats();
            s.spool_pending = pending;
        }
    }

    fn event(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::Response { token, packet, .. } => match self.auth_waiters.remove(&token) {
                Some(w) => self.answered(w, &packet),
                None => {
                    self.with_spool(|s| s.spool_mut().handle_response(token));
                }
            },
            ClientEvent::ServerDead { server } => {
                let addr = self.settings.servers.get(server).map(|s| s.addr);
                tracing::warn!(
                    ?addr,
                    dead_time_s = self.settings.dead_time.as_secs(),
                    "radius: server not answering; using the next one"
                );
            }
            ClientEvent::ServerAlive { server } => {
                let addr = self.settings.servers.get(server).map(|s| s.addr);
                tracing::info!(?addr, "radius: server answers again");
                self.with_spool(|s| s.spool_mut().handle_server_alive());
            }
            ClientEvent::NoResponse { token } => match self.auth_waiters.remove(&token) {
                Some(w) => {
                    self.count(|s| s.auth_unreachable += 1);
                    let _ = w.send(AccessAnswer::Unreachable);
                }
                None => {
                    let now = now_ms();
                    self.with_spool(|s| s.spool_mut().handle_no_response(now, token));
                }
            },
        }
    }

    /// A server answered a login.
    fn answered(&self, w: oneshot::Sender<AccessAnswer>, packet: &Packet) {
        let answer = AccessAnswer::from_response(packet, self.settings.swap_octets);
        self.count(|s| match answer {
            AccessAnswer::Accept(_) => s.accepts += 1,
            _ => s.rejects += 1,
        });
        let _ = w.send(answer);
    }

    /// Carries out what the spool decided.
    fn spool_events(&mut self) {
        while let Some(ev) = self.with_spool(|s| s.spool_mut().poll_event()).flatten() {
            match ev {
                SpoolEvent::Acked(seq) => self.acknowledged(seq),
                SpoolEvent::VolatileAcked => self.count(|s| s.acct_acked += 1),
                SpoolEvent::Unanswered(_) => self.count(|s| s.acct_unanswered += 1),
                SpoolEvent::OutageBegan { pending } => tracing::warn!(
                    "accounting: no RADIUS server answered; {pending} records kept in the spool, \
                     resent every {:?}",
                    self.settings.spool_retry
                ),
                SpoolEvent::OutageEnded => {
                    tracing::info!("accounting: RADIUS answers again; resending the spool")
                }
                SpoolEvent::Lost(rec) => {
                    tracing::error!(
                        "accounting: {:?} record of session '{}' LOST (spool full, no server answered)",
                        rec.status,
                        rec.session_id
                    );
                    self.count(|s| s.acct_lost += 1);
                }
            }
        }
    }

    /// A server acknowledged spooled record `seq`: its file goes, and who
    /// waits for it is told.
    fn acknowledged(&mut self, seq: u64) {
        if let Some(Err(e)) = self.with_spool(|s| s.delete(seq)) {
            tracing::error!("accounting spool: cannot delete acknowledged record {seq}: {e}");
        }
        for w in self.ack_waiters.remove(&seq).unwrap_or_default() {
            let _ = w.send(());
        }
        self.count(|s| s.acct_acked += 1);
    }

    fn count(&self, f: impl FnOnce(&mut RadiusStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }
}

/// The CoA/Disconnect listener: receives datagrams and the daemon's
/// replies, does what the [`CoaEngine`] decides, and hands delivered
/// requests to the daemon.
struct CoaListener {
    sock: UdpSocket,
    engine: CoaEngine,
    stats: Arc<Mutex<RadiusStats>>,
    replies_tx: mpsc::UnboundedSender<(CoaKey, CoaReply)>,
    replies: mpsc::UnboundedReceiver<(CoaKey, CoaReply)>,
    /// New request checkers from reloads.
    servers: mpsc::UnboundedReceiver<CoaServer>,
}

impl CoaListener {
    fn new(
        sock: UdpSocket,
        engine: CoaEngine,
        stats: Arc<Mutex<RadiusStats>>,
        servers: mpsc::UnboundedReceiver<CoaServer>,
    ) -> CoaListener {
        let (replies_tx, replies) = mpsc::unbounded_channel();
        CoaListener {
            sock,
            engine,
            stats,
            replies_tx,
            replies,
            servers,
        }
    }

    async fn run(mut self, calls: mpsc::Sender<CoaCall>) {
        let mut buf = vec![0u8; 4096];
        loop {
            self.flush().await;
            let deadline = self.engine.poll_timeout();
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        self.datagram(from, &buf[..n], &calls).await;
                    }
                }
                Some((key, reply)) = self.replies.recv() => self.engine.handle_reply(key, reply),
                Some(server) = self.servers.recv() => self.engine.set_server(server),
                _ = sleep_until(deadline) => self.engine.handle_timeout(now_ms()),
            }
        }
    }

    async fn datagram(&mut self, from: SocketAddr, bytes: &[u8], calls: &mpsc::Sender<CoaCall>) {
        let wall_secs = wall_ms() / 1000;
        let kind = CoaPortKind::of_code(bytes.first().copied());
        match self
            .engine
            .handle_datagram(now_ms(), from, bytes, wall_secs)
        {
            CoaAction::Ignore => {}
            CoaAction::Resend(answer) => {
                let _ = self.sock.send_to(&answer, from).await;
            }
            CoaAction::Drop(why) => {
                tracing::debug!("CoA: dropped datagram from {from}: {why:?}");
                self.count(|s| {
                    s.coa_dropped += 1;
                    s.coa_by_kind.count(kind, CoaResult::Dropped);
                });
            }
            CoaAction::Nak(answer) => {
                self.count(|s| {
                    s.coa_naks += 1;
                    s.coa_by_kind.count(kind, CoaResult::Nak);
                });
                let _ = self.sock.send_to(&answer, from).await;
            }
            CoaAction::Deliver(req) => {
                self.count(|s| s.coa_requests += 1);
                let call = CoaCall {
                    request: *req,
                    replies: Some(self.replies_tx.clone()),
                };
                // Undelivered, the call is dropped, which NAKs it (506).
                let _ = calls.try_send(call);
            }
        }
    }

    /// Sends the answers to delivered requests.
    async fn flush(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
            let kind = CoaPortKind::of_code(t.bytes.first().copied());
            self.count(|s| match t.reply {
                CoaReply::Ack => {
                    s.coa_acks += 1;
                    s.coa_by_kind.count(kind, CoaResult::Ack);
                }
                CoaReply::Nak(_) => {
                    s.coa_naks += 1;
                    s.coa_by_kind.count(kind, CoaResult::Nak);
                }
            });
            let _ = self.sock.send_to(&t.bytes, t.dest).await;
        }
    }

    fn count(&self, f: impl FnOnce(&mut RadiusStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }
}

impl Drop for CoaCall {
    fn drop(&mut self) {
        self.send(CoaReply::NOT_ANSWERED);
    }
}
