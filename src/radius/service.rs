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

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::attrs::{AccessRequest, AcctRecord, AcctStatus, MacAuthSettings, NasInfo, ReplyLimits};
use super::client::{
    ClientEngine, ClientStats, EngineConfig, Event, Request, ServerConfig, Service, Token,
    LATE_ANSWER_MS,
};
use super::coa::{
    CoaClient, CoaDrop, CoaOutcome, CoaReply, CoaRequest, CoaServer, ErrorCause, ReplayGuard,
};
use super::packet::{attr, Code};
use super::spool::{Spool, SpoolConfig, SpoolError};
use crate::wire::MacAddr;

/// One RADIUS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// Address.
    pub addr: IpAddr,
    /// Authentication port (1812).
    pub auth_port: u16,
    /// Accounting port (1813).
    pub acct_port: u16,
    /// Shared secret.
    pub secret: String,
}

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
    pub servers: Vec<ServerSettings>,
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
    pub fn new(servers: Vec<ServerSettings>, spool_dir: PathBuf) -> RadiusSettings {
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
}

/// The answer to a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Access-Accept with what to enforce.
    Accept(Box<ReplyLimits>),
    /// Access-Reject (an Access-Challenge, which a captive portal cannot
    /// relay, counts as a reject too).
    Reject {
        /// Reply-Message, if the server gave one.
        reply_message: Option<String>,
    },
    /// No server answered validly.
    Unreachable,
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
}

/// A CoA or Disconnect request for the daemon, to be answered with
/// [`CoaCall::reply`]. Dropping it unanswered NAKs it (506).
#[derive(Debug)]
pub struct CoaCall {
    /// What was asked.
    pub request: CoaRequest,
    reply: Option<oneshot::Sender<CoaReply>>,
}

impl CoaCall {
    /// Sends the answer (ACK, or NAK with Error-Cause such as
    /// Session-Context-Not-Found).
    pub fn reply(mut self, r: CoaReply) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(r);
        }
    }
}

enum Cmd {
    Auth(AccessRequest, oneshot::Sender<AuthOutcome>),
    Spooled,
    Volatile(AcctRecord),
    WaitAcked(u64, oneshot::Sender<()>),
    Shutdown,
}

/// The handle the daemon keeps. Cloneable; the service stops when
/// [`RadiusHandle::shutdown`] is called or every handle is dropped.
#[derive(Clone)]
pub struct RadiusHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    spool: Arc<Mutex<Spool>>,
    stats: Arc<Mutex<RadiusStats>>,
    settings: Arc<RadiusSettings>,
}

/// Entry point.
pub struct RadiusService;

use crate::io::clock::wall_ms;

fn seed() -> [u8; 16] {
    let mut s = [0u8; 16];
    crate::io::sys::random_bytes(&mut s);
    s
}

impl RadiusService {
    /// Starts the service on the current tokio runtime. Fails if a socket
    /// cannot be bound or the spool directory cannot be opened.
    pub async fn start(
        settings: RadiusSettings,
    ) -> io::Result<(RadiusHandle, Option<mpsc::Receiver<CoaCall>>)> {
        let any: IpAddr = match settings.servers.first().map(|s| s.addr) {
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let bind = SocketAddr::new(settings.bind_addr.unwrap_or(any), 0);
        let auth_sock = UdpSocket::bind(bind).await?;
        let acct_sock = UdpSocket::bind(bind).await?;
        let spool = Spool::open(SpoolConfig {
            dir: settings.spool_dir.clone(),
            max_records: settings.spool_max_records,
            max_bytes: settings.spool_max_bytes,
        })?;
        let (coa_task, coa_rx) = match &settings.coa {
            Some(c) => {
                let sock = UdpSocket::bind(c.listen).await?;
                let (tx, rx) = mpsc::channel(64);
                (Some((sock, tx)), Some(rx))
            }
            None => (None, None),
        };
        let engine = ClientEngine::new(
            EngineConfig {
                servers: settings
                    .servers
                    .iter()
                    .map(|s| ServerConfig {
                        addr: s.addr,
                        auth_port: s.auth_port,
                        acct_port: s.acct_port,
                        secret: s.secret.as_bytes().to_vec(),
                    })
                    .collect(),
                timeout_ms: settings.timeout.as_millis() as u64,
                retries: settings.retries,
                max_backoff_ms: settings.max_backoff.as_millis() as u64,
                dead_time_ms: settings.dead_time.as_millis() as u64,
                status_interval_ms: settings.status_interval.as_millis() as u64,
                require_message_authenticator: settings.require_message_authenticator,
            },
            seed(),
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(RadiusStats {
            spool_pending: spool.len() as u64,
            ..Default::default()
        }));
        let spool = Arc::new(Mutex::new(spool));
        let settings = Arc::new(settings);
        let coa_handle = coa_task.map(|(sock, ctx)| {
            let c = settings.coa.clone().expect("coa settings");
            let server = CoaServer {
                clients: c
                    .clients
                    .iter()
                    .map(|(a, s)| CoaClient {
                        addr: *a,
                        secret: s.as_bytes().to_vec(),
                    })
                    .collect(),
                nas_identifier: settings.nas_identifier.clone(),
                nas_ip: settings.nas_ip,
                require_message_authenticator: c.require_message_authenticator,
                swap_octets: settings.swap_octets,
                event_timestamp_window: c.event_timestamp_window,
                require_event_timestamp: c.require_event_timestamp,
                nak_stale_event_timestamp: c.nak_stale_event_timestamp,
            };
            tokio::spawn(coa_loop(
                Arc::new(sock),
                server,
                ctx,
                stats.clone(),
                c.answer_timeout,
            ))
        });
        let task = Task {
            engine,
            auth_sock,
            acct_sock,
            spool: spool.clone(),
            stats: stats.clone(),
            settings: settings.clone(),
            nas: settings.nas_info(),
            epoch: Instant::now(),
            auth_waiters: HashMap::new(),
            acct_tokens: HashMap::new(),
            given_up: HashMap::new(),
            busy: HashMap::new(),
            volatile: HashMap::new(),
            ack_waiters: HashMap::new(),
            outage_logged: false,
        };
        tokio::spawn(task.run(rx, coa_handle));
        Ok((
            RadiusHandle {
                tx,
                spool,
                stats,
                settings,
            },
            coa_rx,
        ))
    }
}

impl RadiusHandle {
    /// Checks a login. Resolves when a server answers or every server has
    /// been tried (about `timeout × (1 + 2 + …)` per server).
    pub async fn authenticate(&self, req: AccessRequest) -> AuthOutcome {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Auth(req, tx)).is_err() {
            return AuthOutcome::Unreachable;
        }
        rx.await.unwrap_or(AuthOutcome::Unreachable)
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
        AccessRequest::mac_auth(&self.settings.mac_auth, mac, ip, session_id, nas_port)
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

    /// Records waiting in the spool.
    pub fn pending_accounting(&self) -> usize {
        self.spool.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RadiusStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// The settings in use.
    pub fn settings(&self) -> &RadiusSettings {
        &self.settings
    }

    /// Stops the service (pending logins resolve as Unreachable; spooled
    /// records stay on disk for the next start).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Shutdown);
    }
}

enum Busy {
    InFlight,
    RetryAt(u64),
}

struct Task {
    engine: ClientEngine,
    auth_sock: UdpSocket,
    acct_sock: UdpSocket,
    spool: Arc<Mutex<Spool>>,
    stats: Arc<Mutex<RadiusStats>>,
    settings: Arc<RadiusSettings>,
    nas: NasInfo,
    epoch: Instant,
    auth_waiters: HashMap<Token, oneshot::Sender<AuthOutcome>>,
    acct_tokens: HashMap<Token, u64>,
    /// Spooled records no server answered, by the token of that attempt and
    /// when it was given up: the engine may still deliver a late answer.
    given_up: HashMap<Token, (u64, u64)>,
    busy: HashMap<u64, Busy>,
    volatile: HashMap<Token, AcctRecord>,
    ack_waiters: HashMap<u64, Vec<oneshot::Sender<()>>>,
    outage_logged: bool,
}

impl Task {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>, coa: Option<JoinHandle<()>>) {
        let mut abuf = vec![0u8; 4096];
        let mut cbuf = vec![0u8; 4096];
        loop {
            self.pump();
            self.flush().await;
            let next = [self.engine.poll_timeout(), self.next_retry()]
                .into_iter()
                .flatten()
                .min();
            let sleep_to = next
                .map(|ms| self.epoch + Duration::from_millis(ms))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None | Some(Cmd::Shutdown) => break,
                    Some(c) => self.command(c),
                },
                r = self.auth_sock.recv_from(&mut abuf) => {
                    if let Ok((n, from)) = r {
                        let now = self.now();
                        self.engine.handle_datagram(now, Service::Auth, from, &abuf[..n]);
                    }
                }
                r = self.acct_sock.recv_from(&mut cbuf) => {
                    if let Ok((n, from)) = r {
                        let now = self.now();
                        self.engine.handle_datagram(now, Service::Acct, from, &cbuf[..n]);
                    }
                }
                _ = tokio::time::sleep_until(sleep_to) => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
            }
        }
        if let Some(h) = coa {
            h.abort();
        }
        for (_, w) in self.auth_waiters.drain() {
            let _ = w.send(AuthOutcome::Unreachable);
        }
    }

    fn command(&mut self, c: Cmd) {
        let now = self.now();
        match c {
            Cmd::Auth(req, reply) => {
                let (packet, password) = req.to_packet(&self.nas);
                let t = self.engine.submit(
                    now,
                    Request {
                        service: Service::Auth,
                        packet,
                        password,
                    },
                );
                self.auth_waiters.insert(t, reply);
            }
            Cmd::Spooled => {}
            Cmd::Volatile(rec) => {
                let packet = rec.to_packet(&self.nas, self.settings.swap_octets, wall_ms());
                let t = self.engine.submit(
                    now,
                    Request {
                        service: Service::Acct,
                        packet,
                        password: None,
                    },
                );
                self.volatile.insert(t, rec);
            }
            Cmd::WaitAcked(seq, w) => {
                let present = self
                    .spool
                    .lock()
                    .map(|s| s.get(seq).is_some())
                    .unwrap_or(false);
                if present {
                    self.ack_waiters.entry(seq).or_default().push(w);
                } else {
                    let _ = w.send(());
                }
            }
            Cmd::Shutdown => {}
        }
    }

    fn next_retry(&self) -> Option<u64> {
        self.busy
            .values()
            .filter_map(|b| match b {
                Busy::RetryAt(t) => Some(*t),
                Busy::InFlight => None,
            })
            .min()
    }

    /// Sends what the spool allows.
    fn pump(&mut self) {
        let now = self.now();
        self.busy
            .retain(|_, b| !matches!(b, Busy::RetryAt(t) if *t <= now));
        let in_flight = self.acct_tokens.len();
        let room = self.settings.max_acct_in_flight.saturating_sub(in_flight);
        if room == 0 {
            return;
        }
        let to_send: Vec<(u64, AcctRecord)> = {
            let Ok(spool) = self.spool.lock() else {
                return;
            };
            spool
                .sendable(|s| self.busy.contains_key(&s))
                .into_iter()
                .take(room)
                .filter_map(|s| spool.get(s).map(|r| (s, r.clone())))
                .collect()
        };
        for (seq, rec) in to_send {
            let packet = rec.to_packet(&self.nas, self.settings.swap_octets, wall_ms());
            let t = self.engine.submit(
                now,
                Request {
                    service: Service::Acct,
                    packet,
                    password: None,
                },
            );
            self.busy.insert(seq, Busy::InFlight);
            self.acct_tokens.insert(t, seq);
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
            }
            if !progressed {
                break;
            }
            self.pump();
        }
        let pending = self.spool.lock().map(|s| s.len() as u64).unwrap_or(0);
        if let Ok(mut s) = self.stats.lock() {
            s.client = self.engine.stats();
            s.spool_pending = pending;
        }
    }

    fn event(&mut self, ev: Event) {
        let now = self.now();
        match ev {
            Event::Response { token, packet, .. } => {
                if let Some(w) = self.auth_waiters.remove(&token) {
                    let outcome = match packet.code {
                        Code::AccessAccept => AuthOutcome::Accept(Box::new(
                            ReplyLimits::from_packet(&packet, self.settings.swap_octets),
                        )),
                        _ => AuthOutcome::Reject {
                            reply_message: packet.get_string(attr::REPLY_MESSAGE),
                        },
                    };
                    self.count(|s| match outcome {
                        AuthOutcome::Accept(_) => s.accepts += 1,
                        _ => s.rejects += 1,
                    });
                    let _ = w.send(outcome);
                } else if let Some(seq) = self.acct_tokens.remove(&token) {
                    self.busy.remove(&seq);
                    self.acknowledged(seq);
                } else if let Some((seq, _)) = self.given_up.remove(&token) {
                    // A late answer to an attempt given up on: the record
                    // arrived. A resend already under way stays in flight
                    // (its answer finds the record gone); a parked one goes.
                    if matches!(self.busy.get(&seq), Some(Busy::RetryAt(_))) {
                        self.busy.remove(&seq);
                    }
                    self.acknowledged(seq);
                } else if self.volatile.remove(&token).is_some() {
                    self.count(|s| s.acct_acked += 1);
                }
            }
            Event::ServerAlive { server } => {
                let addr = self.settings.servers.get(server).map(|s| s.addr);
                tracing::info!(?addr, "radius: server answers again");
                // What waits for its spool retry goes now, not at the timer.
                self.busy.retain(|_, b| matches!(b, Busy::InFlight));
            }
            Event::NoResponse { token } => {
                if let Some(w) = self.auth_waiters.remove(&token) {
                    self.count(|s| s.auth_unreachable += 1);
                    let _ = w.send(AuthOutcome::Unreachable);
                } else if let Some(seq) = self.acct_tokens.remove(&token) {
                    // Late answers come within the engine's LATE_ANSWER_MS.
                    self.given_up
                        .retain(|_, (_, at)| now.saturating_sub(*at) <= LATE_ANSWER_MS);
                    self.given_up.insert(token, (seq, now));
                    let retry = now + self.settings.spool_retry.as_millis() as u64;
                    self.busy.insert(seq, Busy::RetryAt(retry));
                    if !self.outage_logged {
                        let n = self.spool.lock().map(|s| s.len()).unwrap_or(0);
                        tracing::warn!(
                            "accounting: no RADIUS server answered; {n} records kept in the spool, \
                             resent every {:?}",
                            self.settings.spool_retry
                        );
                        self.outage_logged = true;
                    }
                    self.count(|s| s.acct_unanswered += 1);
                } else if let Some(rec) = self.volatile.remove(&token) {
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

    /// A server acknowledged spooled record `seq` (once: a second answer,
    /// to a resend, finds it gone and counts nothing).
    fn acknowledged(&mut self, seq: u64) {
        let present = self
            .spool
            .lock()
            .map(|s| s.get(seq).is_some())
            .unwrap_or(false);
        if !present {
            return;
        }
        if let Ok(mut sp) = self.spool.lock() {
            if let Err(e) = sp.remove(seq) {
                tracing::error!("accounting spool: cannot delete acknowledged record {seq}: {e}");
            }
        }
        if let Some(ws) = self.ack_waiters.remove(&seq) {
            for w in ws {
                let _ = w.send(());
            }
        }
        if self.outage_logged {
            tracing::info!("accounting: RADIUS answers again; resending the spool");
            self.outage_logged = false;
        }
        self.count(|s| s.acct_acked += 1);
    }

    fn count(&self, f: impl FnOnce(&mut RadiusStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }
}

type CoaKey = (SocketAddr, u8, [u8; 16]);

/// Answers already sent (or being prepared, `None`), to answer a
/// retransmitted request the same way without acting twice.
struct CoaCache {
    entries: VecDeque<(CoaKey, Option<Vec<u8>>)>,
}

impl CoaCache {
    fn get(&self, k: &CoaKey) -> Option<&Option<Vec<u8>>> {
        self.entries
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v)
    }

    fn put(&mut self, k: CoaKey, v: Option<Vec<u8>>) {
        if let Some(e) = self.entries.iter_mut().find(|(key, _)| *key == k) {
            e.1 = v;
            return;
        }
        if self.entries.len() >= 256 {
            self.entries.pop_front();
        }
        self.entries.push_back((k, v));
    }
}

async fn coa_loop(
    sock: Arc<UdpSocket>,
    server: CoaServer,
    calls: mpsc::Sender<CoaCall>,
    stats: Arc<Mutex<RadiusStats>>,
    answer_timeout: Duration,
) {
    let server = Arc::new(server);
    let cache = Arc::new(Mutex::new(CoaCache {
        entries: VecDeque::new(),
    }));
    let mut replays = ReplayGuard::default();
    let mut buf = vec![0u8; 4096];
    let count = |f: &dyn Fn(&mut RadiusStats)| {
        if let Ok(mut s) = stats.lock() {
            f(&mut s);
        }
    };
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let bytes = &buf[..n];
        if n >= 20 {
            let key: CoaKey = (from, bytes[1], bytes[4..20].try_into().expect("16"));
            let cached = cache.lock().ok().and_then(|c| c.get(&key).cloned());
            match cached {
                Some(Some(answer)) => {
                    let _ = sock.send_to(&answer, from).await;
                    continue;
                }
                Some(None) => continue, // still being handled
                None => {}
            }
        }
        let now_secs = wall_ms() / 1000;
        let outcome = match server.handle(from, bytes, now_secs) {
            CoaOutcome::Request(req) => {
                let auth: [u8; 16] = bytes[4..20].try_into().expect("16");
                let window = u64::from(server.event_timestamp_window);
                if replays.replayed(from.ip(), auth, now_secs, window) {
                    CoaOutcome::Drop(CoaDrop::Replayed)
                } else {
                    CoaOutcome::Request(req)
                }
            }
            other => other,
        };
        match outcome {
            CoaOutcome::Drop(why) => {
                tracing::debug!("CoA: dropped datagram from {from}: {why:?}");
                count(&|s| s.coa_dropped += 1);
            }
            CoaOutcome::Answer(answer) => {
                count(&|s| s.coa_naks += 1);
                let key: CoaKey = (from, bytes[1], bytes[4..20].try_into().expect("16"));
                if let Ok(mut c) = cache.lock() {
                    c.put(key, Some(answer.clone()));
                }
                let _ = sock.send_to(&answer, from).await;
            }
            CoaOutcome::Request(req) => {
                count(&|s| s.coa_requests += 1);
                let key: CoaKey = (from, bytes[1], bytes[4..20].try_into().expect("16"));
                if let Ok(mut c) = cache.lock() {
                    c.put(key, None);
                }
                let (tx, rx) = oneshot::channel();
                let call = CoaCall {
                    request: (*req).clone(),
                    reply: Some(tx),
                };
                let delivered = calls.try_send(call).is_ok();
                let (sock, server, cache, stats) =
                    (sock.clone(), server.clone(), cache.clone(), stats.clone());
                tokio::spawn(async move {
                    let reply = if delivered {
                        match tokio::time::timeout(answer_timeout, rx).await {
                            Ok(Ok(r)) => r,
                            _ => CoaReply::Nak(ErrorCause::ResourcesUnavailable),
                        }
                    } else {
                        CoaReply::Nak(ErrorCause::ResourcesUnavailable)
                    };
                    let answer = server.respond(&req, reply);
                    if let Ok(mut s) = stats.lock() {
                        match reply {
                            CoaReply::Ack => s.coa_acks += 1,
                            CoaReply::Nak(_) => s.coa_naks += 1,
                        }
                    }
                    if let Ok(mut c) = cache.lock() {
                        c.put(key, Some(answer.clone()));
                    }
                    let _ = sock.send_to(&answer, req.from).await;
                });
            }
        }
    }
}

impl Drop for CoaCall {
    fn drop(&mut self) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(CoaReply::Nak(ErrorCause::ResourcesUnavailable));
        }
    }
}
