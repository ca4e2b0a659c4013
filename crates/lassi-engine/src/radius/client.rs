//! The I/O-free RADIUS client engine: identifiers, retransmission with
//! backoff, primary/secondary failover with dead-server memory, and response
//! validation. It takes the time and received datagrams as arguments and
//! hands back datagrams to send, events and the next timer; it never opens
//! a socket or reads the clock (DESIGN.md).
//!
//! Life of a request: [`ClientEngine::submit`] picks a server (the first
//! one not marked dead, in configuration order), allocates an identifier in
//! that server's pool for the service (auth or acct; 256 per pool, an id in
//! flight is never reused, requests wait in a queue when all 256 are
//! taken), encodes the packet for that server's secret (User-Password is
//! hidden per server, Message-Authenticator is always added) and queues the
//! datagram. Without a valid answer it is resent, byte for byte (RFC 5080
//! §2.2.1), after `timeout`, then 2×, 4×… up to `max_backoff`; after
//! `retries` resends the server is marked dead for `dead_time` and the
//! request moves to the next server not yet tried, with a fresh identifier.
//! When every server has been tried, [`ClientEvent::NoResponse`] reports it.
//!
//! An accounting request that a server leaves unanswered is not forgotten
//! at once: its identifier stays reserved for [`LATE_ANSWER_MS`], and a valid
//! answer arriving in that time still acknowledges it (as
//! [`ClientEvent::Response`] with the request's token). A server slow under load
//! then does not get the record a second time, with a new Acct-Delay-Time
//! that makes it a new packet it would store twice.
//!
//! A dead server is probed with Status-Server (RFC 5997) every
//! `status_interval` on the port that went silent; the first valid answer
//! (Access-Accept or Accounting-Response) brings it back at once and
//! [`ClientEvent::ServerAlive`] tells the caller, who may then resend what it had
//! parked. Without probing (interval 0), or for a server that does not
//! answer Status-Server, `dead_time` still ends the dead spell.
//!
//! A datagram is accepted only from the address and port the request went
//! to, with a matching identifier, a response code that fits the request,
//! a correct Response Authenticator and a correct Message-Authenticator
//! (required on Access-Accept/Reject/Challenge when
//! `require_message_authenticator` is on). Anything else is dropped
//! silently and counted in [`ClientStats`].

mod reconfigure;
use core::net::{IpAddr, SocketAddr};
use std::collections::{HashMap, VecDeque};

use super::crypto::{self, VerifyError};
use super::packet::{attr, Code, Packet};
use super::server_stats::ServerStats;
use crate::UnixMillis;

/// How long an unanswered accounting request's identifier stays reserved
/// so that a late answer still counts (RFC 5080 §2.2.1: a server may answer
/// after the client gave up).
pub const LATE_ANSWER_MS: u64 = 30_000;

/// Which port and identifier space a request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// Access-Request (auth port, 1812 by default).
    Auth,
    /// Accounting-Request (acct port, 1813 by default).
    Acct,
}

/// One RADIUS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Its address.
    pub addr: IpAddr,
    /// Authentication port.
    pub auth_port: u16,
    /// Accounting port.
    pub acct_port: u16,
    /// Shared secret.
    pub secret: Vec<u8>,
}

impl ServerConfig {
    /// The destination for a service.
    pub fn socket_addr(&self, service: Service) -> SocketAddr {
        SocketAddr::new(
            self.addr,
            match service {
                Service::Auth => self.auth_port,
                Service::Acct => self.acct_port,
            },
        )
    }
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Servers in order of preference (primary first).
    pub servers: Vec<ServerConfig>,
    /// Wait before the first resend, in milliseconds.
    pub timeout_ms: u64,
    /// Resends to one server before it is declared dead.
    pub retries: u32,
    /// Upper bound of the doubling resend interval, in milliseconds.
    pub max_backoff_ms: u64,
    /// How long a server that did not answer is passed over, in ms.
    pub dead_time_ms: u64,
    /// Status-Server probes of a dead server, one per this many ms (0: none).
    pub status_interval_ms: u64,
    /// Drop Access-Accept/Reject/Challenge without Message-Authenticator.
    pub require_message_authenticator: bool,
}

/// What the caller gets back for a request.
pub type Token = u64;

/// A request to send: the packet's code and attributes (identifier and
/// authenticator are the engine's business) and, for PAP, the clear-text
/// password to hide with each server's secret.
#[derive(Clone, Debug)]
pub struct RadiusRequest {
    /// Auth or acct.
    pub service: Service,
    /// Code and attributes; `id` and `authenticator` are ignored.
    pub packet: Packet,
    /// Clear-text User-Password, hidden per server (RFC 2865 §5.2).
    pub password: Option<Vec<u8>>,
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Which socket (auth or acct).
    pub service: Service,
    /// Where to.
    pub dest: SocketAddr,
    /// The packet.
    pub bytes: Vec<u8>,
}

/// Outcome of a request.
#[derive(Clone, Debug)]
pub enum ClientEvent {
    /// A validated response.
    Response {
        /// The request's token.
        token: Token,
        /// Index in `servers` of the server that answered.
        server: usize,
        /// The decoded response.
        packet: Packet,
    },
    /// No server answered.
    NoResponse {
        /// The request's token.
        token: Token,
    },
    /// A server stopped answering: it is skipped for `dead_time` (and
    /// probed, when configured). Reported once per outage.
    ServerDead {
        /// Index in `servers`.
        server: usize,
    },
    /// A server remembered as dead answered (a Status-Server probe or a
    /// late response): it is used again from now on.
    ServerAlive {
        /// Index in `servers`.
        server: usize,
    },
}

/// Counters of what the engine did and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    /// First transmissions (including after a failover).
    pub sent: u64,
    /// Resends of identical bytes.
    pub retransmits: u64,
    /// Moves of a request to another server.
    pub failovers: u64,
    /// Valid responses.
    pub responses: u64,
    /// Requests no server answered.
    pub no_response: u64,
    /// Datagrams from an unknown address or with no matching request.
    pub unmatched: u64,
    /// Datagrams too short, mis-sized or with a code that fits no request.
    pub malformed: u64,
    /// Responses with a wrong Response Authenticator.
    pub bad_authenticator: u64,
    /// Responses with a wrong Message-Authenticator.
    pub bad_message_authenticator: u64,
    /// Responses dropped because Message-Authenticator was required.
    pub missing_message_authenticator: u64,
    /// Status-Server probes sent to dead servers.
    pub status_probes: u64,
    /// Dead servers brought back by an answer.
    pub revived: u64,
    /// Accounting requests acknowledged after they were given up on.
    pub late_answers: u64,
}

#[derive(Clone)]
struct IdPool {
    used: [u64; 4],
    count: u16,
    next: u8,
}

impl IdPool {
    fn new(start: u8) -> IdPool {
        IdPool {
            used: [0; 4],
            count: 0,
            next: start,
        }
    }

    fn alloc(&mut self) -> Option<u8> {
        if self.count >= 256 {
            return None;
        }
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            let (w, b) = (id as usize / 64, id as usize % 64);
            if self.used[w] & (1 << b) == 0 {
                self.used[w] |= 1 << b;
                self.count += 1;
                return Some(id);
            }
        }
    }

    fn free(&mut self, id: u8) {
        let (w, b) = (id as usize / 64, id as usize % 64);
        if self.used[w] & (1 << b) != 0 {
            self.used[w] &= !(1 << b);
            self.count -= 1;
        }
    }
}

/// An accounting request a server left unanswered, kept so that its late
/// answer still acknowledges it.
struct Abandoned {
    token: Token,
    req_auth: [u8; 16],
    until: UnixMillis,
}

struct InFlight {
    req: RadiusRequest,
    server: usize,
    /// Identifier and encoded bytes once a slot was found.
    wire: Option<(u8, [u8; 16], Vec<u8>)>,
    tried: Vec<bool>,
    sends: u32,
    interval: u64,
    next_at: UnixMillis,
    /// A Status-Server probe of the engine's own: sent once, never failed
    /// over, answered with no event but [`ClientEvent::ServerAlive`].
    probe: bool,
    /// When the request first went to its current server.
    sent_at: UnixMillis,
}

/// The client engine. See the module documentation.
pub struct ClientEngine {
    cfg: EngineConfig,
    dead_until: Vec<Option<UnixMillis>>,
    /// For each dead server: the port that went silent and when to probe it.
    probe_at: Vec<Option<(Service, UnixMillis)>>,
    pools: HashMap<(Service, usize), IdPool>,
    by_id: HashMap<(Service, usize, u8), Token>,
    /// Identifiers of unanswered accounting requests, reserved for late answers.
    abandoned: HashMap<(Service, usize, u8), Abandoned>,
    inflight: HashMap<Token, InFlight>,
    waiting: VecDeque<Token>,
    out: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    next_token: Token,
    rng_key: [u8; 16],
    rng_ctr: u64,
    stats: ClientStats,
    /// Per-server counters, in `cfg.servers` order.
    per_server: Vec<ServerStats>,
}

impl ClientEngine {
    /// A new engine. `seed` keys the generator of Request Authenticators
    /// (the shell passes 16 bytes from the OS).
    pub fn new(cfg: EngineConfig, seed: [u8; 16]) -> ClientEngine {
        let n = cfg.servers.len();
        ClientEngine {
            cfg,
            dead_until: vec![None; n],
            probe_at: vec![None; n],
            pools: HashMap::new(),
            by_id: HashMap::new(),
            abandoned: HashMap::new(),
            inflight: HashMap::new(),
            waiting: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            next_token: 1,
            rng_key: seed,
            rng_ctr: 0,
            stats: ClientStats::default(),
            per_server: vec![ServerStats::default(); n],
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Per-server counters, in the configured order of the servers.
    pub fn server_stats(&self) -> &[ServerStats] {
        &self.per_server
    }

    /// Server `i`'s counters; a list that is short (servers added by a
    /// reconfiguration that did not carry the counters over) grows rather
    /// than panics.
    fn server_mut(per_server: &mut Vec<ServerStats>, i: usize) -> &mut ServerStats {
        if per_server.len() <= i {
            per_server.resize(i + 1, ServerStats::default());
        }
        &mut per_server[i]
    }

    /// Requests not yet answered or given up.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// True while server `i` is remembered as dead.
    pub fn is_dead(&self, i: usize, now: UnixMillis) -> bool {
        matches!(self.dead_until.get(i), Some(Some(t)) if *t > now)
    }

    fn random16(&mut self) -> [u8; 16] {
        self.rng_ctr += 1;
        crypto::md5(&[&self.rng_key, &self.rng_ctr.to_be_bytes()])
    }

    /// The next server to try for a request: untried ones, live ones first,
    /// each group in configuration order.
    fn pick(&self, tried: &[bool], now: UnixMillis) -> Option<usize> {
        let untried = (0..self.cfg.servers.len()).filter(|&i| !tried[i]);
        let mut dead = None;
        for i in untried {
            if !self.is_dead(i, now) {
                return Some(i);
            }
            dead.get_or_insert(i);
        }
        dead
    }

    /// Queues a request and returns its token. If there is no server at all
    /// it is answered at once with [`ClientEvent::NoResponse`].
    pub fn submit(&mut self, now: UnixMillis, req: RadiusRequest) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        let tried = vec![false; self.cfg.servers.len()];
        let Some(server) = self.pick(&tried, now) else {
            self.stats.no_response += 1;
            self.events.push_back(ClientEvent::NoResponse { token });
            return token;
        };
        self.inflight.insert(
            token,
            InFlight {
                req,
                server,
                wire: None,
                tried,
                sends: 0,
                interval: self.cfg.timeout_ms,
                next_at: now,
                probe: false,
                sent_at: now,
            },
        );
        self.dispatch(now, token);
        token
    }

    /// Sends one Status-Server probe to a dead server's silent port.
    fn send_probe(&mut self, now: UnixMillis, server: usize, service: Service) {
        let token = self.next_token;
        self.next_token += 1;
        let mut tried = vec![true; self.cfg.servers.len()];
        tried[server] = false;
        self.inflight.insert(
            token,
            InFlight {
                req: RadiusRequest {
                    service,
                    packet: Packet::new(Code::StatusServer, 0),
                    password: None,
                },
                server,
                wire: None,
                tried,
                sends: 0,
                interval: self.cfg.timeout_ms,
                next_at: now,
                probe: true,
                sent_at: now,
            },
        );
        self.stats.status_probes += 1;
        self.dispatch(now, token);
    }

    /// Remember server `i` as dead from `now`, and schedule its probes.
    fn mark_dead(&mut self, now: UnixMillis, i: usize, service: Service) {
        if !self.is_dead(i, now) && self.probe_at[i].is_none() {
            self.events.push_back(ClientEvent::ServerDead { server: i });
        }
        self.dead_until[i] = Some(now + self.cfg.dead_time_ms);
        if self.cfg.status_interval_ms > 0 && self.probe_at[i].is_none() {
            self.probe_at[i] = Some((service, now + self.cfg.status_interval_ms));
        }
    }

    /// Probes that are due: one in flight per dead server at most.
    fn probe_dead_servers(&mut self, now: UnixMillis) {
        for i in 0..self.cfg.servers.len() {
            let Some((service, at)) = self.probe_at[i] else {
                continue;
            };
            if at > now {
                continue;
            }
            if !self.is_dead(i, now) {
                // dead_time ran out: ordinary requests try it again.
                self.probe_at[i] = None;
                continue;
            }
            let probing = self.inflight.values().any(|f| f.probe && f.server == i);
            if !probing {
                self.send_probe(now, i, service);
            }
            self.probe_at[i] = Some((service, now + self.cfg.status_interval_ms));
        }
    }

    /// Forgets a request (no event will come for it).
    pub fn cancel(&mut self, now: UnixMillis, token: Token) {
        if let Some(f) = self.inflight.remove(&token) {
            self.release(&f);
            self.waiting.retain(|t| *t != token);
            self.drain_waiting(now);
        }
    }

    /// Like [`Self::release`], but an accounting request's identifier stays
    /// reserved until [`LATE_ANSWER_MS`] from now for a late answer.
    fn abandon(&mut self, now: UnixMillis, token: Token, f: &InFlight) {
        match &f.wire {
            Some((id, req_auth, _)) if f.req.service == Service::Acct && !f.probe => {
                let key = (f.req.service, f.server, *id);
                self.by_id.remove(&key);
                let until = now + LATE_ANSWER_MS;
                let (token, req_auth) = (token, *req_auth);
                self.abandoned.insert(
                    key,
                    Abandoned {
                        token,
                        req_auth,
                        until,
                    },
                );
            }
            _ => self.release(f),
        }
    }

    /// Frees the identifiers whose late-answer time is over.
    fn expire_abandoned(&mut self, now: UnixMillis) {
        let pools = &mut self.pools;
        self.abandoned.retain(|(service, server, id), a| {
            let keep = a.until > now;
            if !keep {
                if let Some(p) = pools.get_mut(&(*service, *server)) {
                    p.free(*id);
                }
            }
            keep
        });
    }

    fn release(&mut self, f: &InFlight) {
        if let Some((id, _, _)) = &f.wire {
            let key = (f.req.service, f.server);
            if let Some(p) = self.pools.get_mut(&key) {
                p.free(*id);
            }
            self.by_id.remove(&(f.req.service, f.server, *id));
        }
    }

    /// Sends `token` to its current server, allocating an identifier, or
    /// parks it until one is free.
    fn dispatch(&mut self, now: UnixMillis, token: Token) {
        let auth = self.random16();
        let Some(f) = self.inflight.get_mut(&token) else {
            return;
        };
        let service = f.req.service;
        let server = f.server;
        let start = (token as u8).wrapping_mul(37);
        let pool = self
            .pools
            .entry((service, server))
            .or_insert_with(|| IdPool::new(start));
        let Some(id) = pool.alloc() else {
            self.waiting.push_back(token);
            return;
        };
        let scfg = &self.cfg.servers[server];
        let bytes = match encode_request(&f.req, id, auth, &scfg.secret) {
            Some(b) => b,
            None => {
                // Cannot be encoded (too long): report as unanswerable.
                pool.free(id);
                self.inflight.remove(&token);
                self.stats.no_response += 1;
                self.events.push_back(ClientEvent::NoResponse { token });
                return;
            }
        };
        let sent_auth: [u8; 16] = bytes[4..20].try_into().expect("16 bytes");
        let dest = scfg.socket_addr(service);
        f.tried[server] = true;
        f.sends = 1;
        f.interval = self.cfg.timeout_ms;
        f.next_at = now + f.interval;
        f.sent_at = now;
        f.wire = Some((id, sent_auth, bytes.clone()));
        self.by_id.insert((service, server, id), token);
        self.stats.sent += 1;
        Self::server_mut(&mut self.per_server, server).sent(f.req.packet.code);
        self.out.push_back(Transmit {
            service,
            dest,
            bytes,
        });
    }

    fn drain_waiting(&mut self, now: UnixMillis) {
        // Each parked request gets one chance per call; the ones still
        // without an identifier go back to the queue in order.
        let n = self.waiting.len();
        for _ in 0..n {
            let Some(t) = self.waiting.pop_front() else {
                break;
            };
            if self.inflight.contains_key(&t) {
                self.dispatch(now, t);
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The next outcome.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`ClientEngine::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        let resend = self
            .inflight
            .values()
            .filter(|f| f.wire.is_some())
            .map(|f| f.next_at);
        let probe = self.probe_at.iter().flatten().map(|(_, at)| *at);
        resend.chain(probe).min()
    }

    /// Resends and fails over what is due at `now`.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        let due: Vec<Token> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.wire.is_some() && f.next_at <= now)
            .map(|(t, _)| *t)
            .collect();
        let mut due = due;
        due.sort_unstable();
        for token in due {
            let retries = self.cfg.retries;
            let max_backoff = self.cfg.max_backoff_ms.max(self.cfg.timeout_ms);
            let Some(f) = self.inflight.get_mut(&token) else {
                continue;
            };
            if f.probe {
                // Unanswered probe: the next one goes at its interval.
                let f = self.inflight.remove(&token).expect("present");
                Self::server_mut(&mut self.per_server, f.server).timeouts += 1;
                self.release(&f);
                self.drain_waiting(now);
                continue;
            }
            if f.sends <= retries {
                f.sends += 1;
                f.interval = (f.interval * 2).min(max_backoff);
                f.next_at = now + f.interval;
                let (_, _, bytes) = f.wire.as_ref().expect("sent");
                let t = Transmit {
                    service: f.req.service,
                    dest: self.cfg.servers[f.server].socket_addr(f.req.service),
                    bytes: bytes.clone(),
                };
                self.stats.retransmits += 1;
                Self::server_mut(&mut self.per_server, f.server).retransmits += 1;
                self.out.push_back(t);
                continue;
            }
            // This server is silent: remember it, move on.
            let (server, service) = (f.server, f.req.service);
            Self::server_mut(&mut self.per_server, server).timeouts += 1;
            self.mark_dead(now, server, service);
            let f = self.inflight.remove(&token).expect("present");
            self.abandon(now, token, &f);
            let mut f = f;
            match self.pick(&f.tried, now) {
                Some(next) => {
                    self.stats.failovers += 1;
                    f.server = next;
                    f.wire = None;
                    f.sends = 0;
                    self.inflight.insert(token, f);
                    self.dispatch(now, token);
                }
                None => {
                    self.stats.no_response += 1;
                    self.events.push_back(ClientEvent::NoResponse { token });
                }
            }
            self.drain_waiting(now);
        }
        self.expire_abandoned(now);
        self.probe_dead_servers(now);
    }

    /// Handles a datagram received on the `service` socket from `from`.
    pub fn handle_datagram(
        &mut self,
        now: UnixMillis,
        service: Service,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        if bytes.len() < 20 {
            self.stats.malformed += 1;
            return;
        }
        let Some(server) = self
            .cfg
            .servers
            .iter()
            .position(|s| s.socket_addr(service) == from)
        else {
            self.stats.unmatched += 1;
            return;
        };
        let key = (service, server, bytes[1]);
        let Some(&token) = self.by_id.get(&key) else {
            if self.abandoned.contains_key(&key) {
                self.late_answer(now, key, bytes);
            } else {
                self.stats.unmatched += 1;
            }
            return;
        };
        let f = &self.inflight[&token];
        let (_, req_auth, _) = f.wire.as_ref().expect("sent");
        let code = Code::from_u8(bytes[0]);
        let fits = match f.req.packet.code {
            Code::AccessRequest => matches!(
                code,
                Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
            ),
            Code::AccountingRequest => code == Code::AccountingResponse,
            Code::StatusServer => {
                matches!(code, Code::AccessAccept | Code::AccountingResponse)
            }
            _ => false,
        };
        if !fits {
            self.stats.malformed += 1;
            return;
        }
        let require =
            self.cfg.require_message_authenticator && f.req.packet.code == Code::AccessRequest;
        let req_auth = *req_auth;
        let Some(packet) = self.verified(server, bytes, &req_auth, require) else {
            return;
        };
        let f = self.inflight.remove(&token).expect("present");
        self.release(&f);
        Self::server_mut(&mut self.per_server, server).answered(packet.code, Some(f.sent_at), now);
        self.deliver(now, server, token, (!f.probe).then_some(packet));
    }

    /// An answer to an accounting request given up on less than
    /// [`LATE_ANSWER_MS`] ago: it acknowledges the record all the same.
    fn late_answer(&mut self, now: UnixMillis, key: (Service, usize, u8), bytes: &[u8]) {
        let (_, server, id) = key;
        if Code::from_u8(bytes[0]) != Code::AccountingResponse {
            self.stats.malformed += 1;
            return;
        }
        let req_auth = self.abandoned[&key].req_auth;
        let Some(packet) = self.verified(server, bytes, &req_auth, false) else {
            return;
        };
        let token = self.abandoned.remove(&key).expect("present").token;
        if let Some(p) = self.pools.get_mut(&(key.0, server)) {
            p.free(id);
        }
        // Failed over meanwhile: the copy sent to the next server is moot.
        if let Some(f) = self.inflight.remove(&token) {
            self.release(&f);
        }
        self.stats.late_answers += 1;
        Self::server_mut(&mut self.per_server, server).answered(packet.code, None, now);
        self.deliver(now, server, token, Some(packet));
    }

    /// `server` answered: it is alive; `packet` (none for a probe's answer)
    /// goes to the caller as the response to `token`, and requests waiting
    /// for a free identifier or slot go out.
    fn deliver(&mut self, now: UnixMillis, server: usize, token: Token, packet: Option<Packet>) {
        self.answered_by(server, now);
        if let Some(packet) = packet {
            self.stats.responses += 1;
            self.events.push_back(ClientEvent::Response {
                token,
                server,
                packet,
            });
        }
        self.drain_waiting(now);
    }

    /// Checks a response's authenticators; counts and drops a bad one.
    fn verified(
        &mut self,
        server: usize,
        bytes: &[u8],
        req_auth: &[u8; 16],
        require_ma: bool,
    ) -> Option<Packet> {
        let secret = &self.cfg.servers[server].secret;
        if let Err(e) = crypto::verify_response(bytes, secret, req_auth, require_ma) {
            match e {
                VerifyError::Malformed => self.stats.malformed += 1,
                VerifyError::BadAuthenticator => self.stats.bad_authenticator += 1,
                VerifyError::BadMessageAuthenticator => self.stats.bad_message_authenticator += 1,
                VerifyError::MissingMessageAuthenticator => {
                    self.stats.missing_message_authenticator += 1
                }
            }
            return None;
        }
        let packet = Packet::decode(bytes).ok();
        if packet.is_none() {
            self.stats.malformed += 1;
        }
        packet
    }

    /// A valid answer from `server`: it is alive (again).
    fn answered_by(&mut self, server: usize, now: UnixMillis) {
        if self.is_dead(server, now) || self.probe_at[server].is_some() {
            self.stats.revived += 1;
            self.events.push_back(ClientEvent::ServerAlive { server });
        }
        self.dead_until[server] = None;
        self.probe_at[server] = None;
    }
}

/// Encodes a request for one server: identifier, authenticator, the
/// password hidden with this server's secret, Message-Authenticator first.
fn encode_request(req: &RadiusRequest, id: u8, random: [u8; 16], secret: &[u8]) -> Option<Vec<u8>> {
    let mut p = req.packet.clone();
    p.id = id;
    p.authenticator = match p.code {
        Code::AccessRequest | Code::StatusServer => random,
        _ => [0; 16],
    };
    p.remove(attr::MESSAGE_AUTHENTICATOR);
    p.attrs.insert(
        0,
        super::packet::Attr {
            key: attr::MESSAGE_AUTHENTICATOR,
            value: vec![0; 16],
        },
    );
    if let Some(pw) = &req.password {
        p.remove(attr::USER_PASSWORD);
        let hidden = crypto::hide_password(pw, secret, &p.authenticator);
        // Right after User-Name, where servers and humans expect it.
        let at = p
            .attrs
            .iter()
            .position(|a| a.key == attr::USER_NAME)
            .map_or(p.attrs.len(), |i| i + 1);
        p.attrs.insert(
            at,
            super::packet::Attr {
                key: attr::USER_PASSWORD,
                value: hidden,
            },
        );
    }
    let mut bytes = p.encode().ok()?;
    crypto::sign_request(&mut bytes, secret);
    Some(bytes)
}

/// Helpers shared by the client engine's tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::radius::crypto::sign_response;

    pub fn server(port: u16, secret: &str) -> ServerConfig {
        ServerConfig {
            addr: "127.0.0.1".parse().unwrap(),
            auth_port: port,
            acct_port: port + 1,
            secret: secret.as_bytes().to_vec(),
        }
    }

    pub fn cfg(n: usize) -> EngineConfig {
        EngineConfig {
            servers: (0..n).map(|i| server(1812 + 10 * i as u16, "s")).collect(),
            timeout_ms: 1000,
            retries: 2,
            max_backoff_ms: 3000,
            dead_time_ms: 60_000,
            status_interval_ms: 0,
            require_message_authenticator: true,
        }
    }

    pub fn auth_req() -> RadiusRequest {
        let mut p = Packet::new(Code::AccessRequest, 0);
        p.push(attr::USER_NAME, "bob");
        RadiusRequest {
            service: Service::Auth,
            packet: p,
            password: Some(b"hello".to_vec()),
        }
    }

    /// A server's answer to `req_bytes`.
    pub fn answer(req_bytes: &[u8], code: Code, secret: &[u8], with_ma: bool) -> Vec<u8> {
        let mut p = Packet::new(code, req_bytes[1]);
        if with_ma {
            p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        }
        p.push_u32(attr::SESSION_TIMEOUT, 60);
        let mut b = p.encode().unwrap();
        sign_response(&mut b, secret, req_bytes[4..20].try_into().unwrap());
        b
    }

    pub fn drain(e: &mut ClientEngine) -> Vec<Transmit> {
        std::iter::from_fn(|| e.poll_transmit()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn request_carries_hidden_password_and_message_authenticator() {
        let mut e = ClientEngine::new(cfg(1), [1; 16]);
        e.submit(0, auth_req());
        let tx = drain(&mut e);
        assert_eq!(tx.len(), 1);
        let b = &tx[0].bytes;
        crypto::verify_request(b, b"s", true).unwrap();
        let p = Packet::decode(b).unwrap();
        assert_eq!(p.attrs[0].key, attr::MESSAGE_AUTHENTICATOR);
        let pw = p.get(attr::USER_PASSWORD).unwrap();
        assert_eq!(
            crypto::unhide_password(pw, b"s", &p.authenticator).unwrap(),
            b"hello"
        );
        assert_eq!(tx[0].dest, "127.0.0.1:1812".parse().unwrap());
    }

    #[test]
    fn valid_response_is_delivered_bad_ones_dropped_and_counted() {
        let mut e = ClientEngine::new(cfg(1), [2; 16]);
        let t = e.submit(0, auth_req());
        let req = drain(&mut e).remove(0).bytes;
        let from: SocketAddr = "127.0.0.1:1812".parse().unwrap();
        // Wrong secret.
        e.handle_datagram(
            0,
            Service::Auth,
            from,
            &answer(&req, Code::AccessAccept, b"x", true),
        );
        // No Message-Authenticator while required.
        e.handle_datagram(
            0,
            Service::Auth,
            from,
            &answer(&req, Code::AccessAccept, b"s", false),
        );
        // Wrong source port.
        e.handle_datagram(
            0,
            Service::Auth,
            "127.0.0.1:9".parse().unwrap(),
            &answer(&req, Code::AccessAccept, b"s", true),
        );
        // Code that does not answer an Access-Request.
        e.handle_datagram(
            0,
            Service::Auth,
            from,
            &answer(&req, Code::AccountingResponse, b"s", true),
        );
        // Tampered Message-Authenticator, authenticator recomputed: only a
        // holder of the secret could do that, but the MA check still runs.
        let mut tampered = answer(&req, Code::AccessAccept, b"s", true);
        tampered[22] ^= 0xff;
        tampered[4..20].copy_from_slice(&req[4..20]);
        let a = crypto::md5(&[&tampered, b"s"]);
        tampered[4..20].copy_from_slice(&a);
        e.handle_datagram(0, Service::Auth, from, &tampered);
        assert!(e.poll_event().is_none());
        let s = e.stats();
        assert_eq!(
            (
                s.bad_authenticator,
                s.missing_message_authenticator,
                s.unmatched,
                s.malformed,
                s.bad_message_authenticator
            ),
            (1, 1, 1, 1, 1)
        );
        e.handle_datagram(
            0,
            Service::Auth,
            from,
            &answer(&req, Code::AccessAccept, b"s", true),
        );
        match e.poll_event() {
            Some(ClientEvent::Response { token, packet, .. }) => {
                assert_eq!(token, t);
                assert_eq!(packet.get_u32(attr::SESSION_TIMEOUT), Some(60));
            }
            other => panic!("{other:?}"),
        }
        // A duplicate answer is unmatched now.
        e.handle_datagram(
            0,
            Service::Auth,
            from,
            &answer(&req, Code::AccessAccept, b"s", true),
        );
        assert_eq!(e.stats().unmatched, 2);
        assert_eq!(e.in_flight(), 0);
    }

    #[test]
    fn per_server_counters_follow_each_server() {
        use crate::radius::server_stats::RequestKind;
        let mut e = ClientEngine::new(cfg(2), [9; 16]);
        // First request: the primary stays silent, the secondary answers
        // 250 ms after the request reached it.
        e.submit(0, auth_req());
        drain(&mut e);
        let mut now = 0;
        let mut to_secondary = None;
        while to_secondary.is_none() {
            now = e.poll_timeout().unwrap();
            e.handle_timeout(now);
            to_secondary = drain(&mut e).into_iter().find(|t| t.dest.port() == 1822);
        }
        let req = to_secondary.unwrap().bytes;
        let from: SocketAddr = "127.0.0.1:1822".parse().unwrap();
        let reply = answer(&req, Code::AccessReject, b"s", true);
        e.handle_datagram(now + 250, Service::Auth, from, &reply);
        let [primary, secondary] = e.server_stats() else {
            panic!("two servers");
        };
        assert_eq!(primary.requests_of(RequestKind::Access), 1);
        assert_eq!((primary.retransmits, primary.timeouts), (2, 1));
        assert_eq!(primary.response_time.count, 0);
        assert_eq!(secondary.requests_of(RequestKind::Access), 1);
        assert_eq!((secondary.retransmits, secondary.timeouts), (0, 0));
        assert_eq!(secondary.responses, [0, 1, 0, 0]);
        let h = secondary.response_time;
        assert_eq!((h.count, h.sum_ms), (1, 250));
        assert_eq!(h.buckets[7], 1, "250 ms is in the 0.25 s bucket");
    }

    #[test]
    fn retransmit_backoff_then_failover_then_dead_memory() {
        let mut e = ClientEngine::new(cfg(2), [3; 16]);
        let t = e.submit(0, auth_req());
        let first = drain(&mut e);
        assert_eq!(first[0].dest.port(), 1812);
        // Timeline with timeout 1 s, doubling, capped at 3 s, retries 2:
        // sends at 0, 1000, 3000; server declared dead at 6000.
        let mut sends = vec![(0u64, first[0].dest.port())];
        let (mut now, mut dead) = (0, Vec::new());
        while let Some(at) = e.poll_timeout() {
            now = at;
            e.handle_timeout(now);
            for tx in drain(&mut e) {
                sends.push((now, tx.dest.port()));
            }
            let events: Vec<_> = std::iter::from_fn(|| e.poll_event()).collect();
            for ev in &events {
                if let ClientEvent::ServerDead { server } = ev {
                    dead.push((now, *server));
                }
            }
            if events
                .iter()
                .any(|ev| matches!(ev, ClientEvent::NoResponse { .. }))
            {
                break;
            }
        }
        // Each server's outage is reported once, when it begins.
        assert_eq!(dead, vec![(6000, 0), (12_000, 1)]);
        assert_eq!(
            sends,
            vec![
                (0, 1812),
                (1000, 1812),
                (3000, 1812),
                (6000, 1822),
                (7000, 1822),
                (9000, 1822)
            ]
        );
        assert_eq!(now, 12_000);
        assert_eq!(e.stats().failovers, 1);
        assert_eq!(e.stats().no_response, 1);
        assert!(e.is_dead(0, 12_000) && e.is_dead(1, 12_000));
        let _ = t;
        // Both dead: the next request tries them anyway, primary first.
        e.submit(12_000, auth_req());
        assert_eq!(drain(&mut e)[0].dest.port(), 1812);
        // Primary dead, secondary alive: the next request goes straight to
        // the secondary while the primary is remembered dead.
        let mut e = ClientEngine::new(cfg(2), [4; 16]);
        unanswered(&mut e, auth_req());
        let tx = drain(&mut e);
        let to_secondary = tx.last().unwrap().clone();
        assert_eq!(to_secondary.dest.port(), 1822);
        e.handle_datagram(
            0,
            Service::Auth,
            to_secondary.dest,
            &answer(&to_secondary.bytes, Code::AccessReject, b"s", true),
        );
        assert!(matches!(
            e.poll_event(),
            Some(ClientEvent::ServerDead { server: 0 })
        ));
        assert!(matches!(
            e.poll_event(),
            Some(ClientEvent::Response { server: 1, .. })
        ));
        e.submit(10_000, auth_req());
        assert_eq!(drain(&mut e)[0].dest.port(), 1822);
        // After dead_time the primary is preferred again.
        e.submit(66_001, auth_req());
        assert_eq!(drain(&mut e)[0].dest.port(), 1812);
    }

    /// Submits `req` at 0 and lets every try go unanswered (timeouts at 1,
    /// 3 and 6 s): its token and the first datagram sent.
    fn unanswered(e: &mut ClientEngine, req: RadiusRequest) -> (Token, Transmit) {
        let t = e.submit(0, req);
        let sent = drain(e).pop().unwrap();
        for at in [1000, 3000, 6000] {
            e.handle_timeout(at);
        }
        (t, sent)
    }

    /// Declares the single server of `e` dead: one request, no answers.
    fn kill_server(e: &mut ClientEngine) -> UnixMillis {
        unanswered(e, auth_req());
        assert!(matches!(
            e.poll_event(),
            Some(ClientEvent::ServerDead { server: 0 })
        ));
        assert!(matches!(
            e.poll_event(),
            Some(ClientEvent::NoResponse { .. })
        ));
        drain(e);
        6000
    }

    #[test]
    fn dead_server_is_probed_with_status_server_and_back_at_its_first_answer() {
        let mut c = cfg(1);
        c.status_interval_ms = 5000;
        let mut e = ClientEngine::new(c, [6; 16]);
        let dead_at = kill_server(&mut e);
        assert!(e.is_dead(0, dead_at));
        // Probes every 5 s on the silent (auth) port; unanswered ones make
        // no event and are not retransmitted.
        let mut probes = Vec::new();
        let mut now = dead_at;
        while probes.len() < 2 {
            now = e.poll_timeout().expect("a probe is always scheduled");
            e.handle_timeout(now);
            for tx in drain(&mut e) {
                let p = Packet::decode(&tx.bytes).unwrap();
                assert_eq!(p.code, Code::StatusServer);
                assert_eq!(tx.dest.port(), 1812);
                crypto::verify_request(&tx.bytes, b"s", true).unwrap();
                probes.push((now, tx));
            }
            assert!(e.poll_event().is_none());
        }
        let times: Vec<u64> = probes.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![11_000, 16_000]);
        assert_eq!(e.stats().status_probes, 2);
        assert!(e.is_dead(0, now));
        // The server answers the last probe: alive at once, long before
        // dead_time (60 s) would have ended.
        let (_, last) = probes.last().unwrap();
        e.handle_datagram(
            now,
            Service::Auth,
            last.dest,
            &answer(&last.bytes, Code::AccessAccept, b"s", true),
        );
        assert!(matches!(
            e.poll_event(),
            Some(ClientEvent::ServerAlive { server: 0 })
        ));
        assert!(e.poll_event().is_none(), "a probe answer is no response");
        assert!(!e.is_dead(0, now));
        assert_eq!(e.stats().revived, 1);
        assert_eq!(e.stats().responses, 0);
        assert_eq!(e.poll_timeout(), None, "no probe after it is back");
        assert_eq!(e.in_flight(), 0);
    }

    #[test]
    fn an_answer_to_an_older_probe_still_counts_and_probing_stops_after_dead_time() {
        let mut c = cfg(1);
        c.status_interval_ms = 5000;
        let mut e = ClientEngine::new(c.clone(), [7; 16]);
        kill_server(&mut e);
        e.handle_timeout(11_000);
        let probe = drain(&mut e).pop().unwrap();
        // Its wait runs out (no retransmission), then a late answer has no
        // request left to match: counted as unmatched, still dead.
        e.handle_timeout(12_000);
        assert!(drain(&mut e).is_empty());
        e.handle_datagram(
            12_500,
            Service::Auth,
            probe.dest,
            &answer(&probe.bytes, Code::AccessAccept, b"s", true),
        );
        assert_eq!(e.stats().unmatched, 1);
        assert!(e.is_dead(0, 12_500));
        // Without an answer, probing ends with dead_time.
        let mut now = 12_500;
        while let Some(at) = e.poll_timeout() {
            now = at;
            e.handle_timeout(now);
            drain(&mut e);
        }
        assert!(now <= 6000 + 60_000 + 5000, "probing stopped at {now}");
        assert!(!e.is_dead(0, now));
        // No probing at all when the interval is zero.
        c.status_interval_ms = 0;
        let mut e = ClientEngine::new(c, [8; 16]);
        kill_server(&mut e);
        assert_eq!(e.poll_timeout(), None);
        assert_eq!(e.stats().status_probes, 0);
    }

    fn acct_req() -> RadiusRequest {
        let mut p = Packet::new(Code::AccountingRequest, 0);
        p.push(attr::ACCT_SESSION_ID, "s1");
        RadiusRequest {
            service: Service::Acct,
            packet: p,
            password: None,
        }
    }

    #[test]
    fn a_late_accounting_answer_still_acknowledges_the_record() {
        let mut e = ClientEngine::new(cfg(1), [9; 16]);
        let (t, sent) = unanswered(&mut e, acct_req());
        assert!(matches!(
            e.poll_event(),
            Some(ClientEvent::ServerDead { server: 0 })
        ));
        assert!(matches!(e.poll_event(), Some(ClientEvent::NoResponse { token }) if token == t));
        // The server was slow, not deaf: its answer 10 s later counts, for
        // the same token, and the server is alive again.
        let late = answer(&sent.bytes, Code::AccountingResponse, b"s", false);
        e.handle_datagram(16_000, Service::Acct, sent.dest, &late);
        assert!(matches!(
            e.poll_event(),
            Some(ClientEvent::ServerAlive { server: 0 })
        ));
        assert!(matches!(e.poll_event(), Some(ClientEvent::Response { token, .. }) if token == t));
        assert_eq!(e.stats().late_answers, 1);
        // Only once.
        e.handle_datagram(16_500, Service::Acct, sent.dest, &late);
        assert!(e.poll_event().is_none());
        assert_eq!(e.stats().unmatched, 1);
    }

    #[test]
    fn a_given_up_identifier_is_reserved_until_late_answers_cannot_come() {
        let mut c = cfg(1);
        c.timeout_ms = 1000;
        let mut e = ClientEngine::new(c, [10; 16]);
        let (t, sent) = unanswered(&mut e, acct_req());
        let id = sent.bytes[1];
        drain(&mut e); // the resends
        let _ = e.poll_event();
        // 255 more requests in the window: none takes the reserved id.
        for _ in 0..255 {
            e.submit(7000, acct_req());
        }
        let ids: Vec<u8> = drain(&mut e).iter().map(|x| x.bytes[1]).collect();
        assert_eq!(ids.len(), 255);
        assert!(!ids.contains(&id));
        // A forged answer (wrong authenticator) changes nothing.
        let forged = answer(&sent.bytes, Code::AccountingResponse, b"wrong", false);
        e.handle_datagram(8000, Service::Acct, sent.dest, &forged);
        assert_eq!(e.stats().bad_authenticator, 1);
        // Past LATE_ANSWER_MS the id is free and an answer is unmatched.
        e.handle_timeout(6000 + LATE_ANSWER_MS + 1);
        let late = answer(&sent.bytes, Code::AccountingResponse, b"s", false);
        e.handle_datagram(6000 + LATE_ANSWER_MS + 2, Service::Acct, sent.dest, &late);
        assert!(!std::iter::from_fn(|| e.poll_event())
            .any(|ev| matches!(ev, ClientEvent::Response { token, .. } if token == t)));
    }

    #[test]
    fn a_late_answer_from_the_first_server_ends_the_failed_over_request() {
        let mut e = ClientEngine::new(cfg(2), [11; 16]);
        let (t, first) = unanswered(&mut e, acct_req());
        let second = drain(&mut e).pop().unwrap();
        assert_ne!(first.dest, second.dest);
        let late = answer(&first.bytes, Code::AccountingResponse, b"s", false);
        e.handle_datagram(6500, Service::Acct, first.dest, &late);
        let events: Vec<ClientEvent> = std::iter::from_fn(|| e.poll_event()).collect();
        assert!(events
            .iter()
            .any(|ev| matches!(ev, ClientEvent::Response { token, server: 0, .. } if *token == t)));
        assert_eq!(e.in_flight(), 0, "the copy at the second server is moot");
        // Its answer, if it comes, is unmatched.
        let second_answer = answer(&second.bytes, Code::AccountingResponse, b"s", false);
        e.handle_datagram(7000, Service::Acct, second.dest, &second_answer);
        assert!(e.poll_event().is_none());
    }

    #[test]
    fn identifiers_never_reused_while_in_flight() {
        let mut c = cfg(1);
        c.timeout_ms = 1_000_000;
        let mut e = ClientEngine::new(c, [5; 16]);
        let tokens: Vec<Token> = (0..300).map(|_| e.submit(0, auth_req())).collect();
        let tx = drain(&mut e);
        assert_eq!(tx.len(), 256, "only 256 can be outstanding");
        let mut ids: Vec<u8> = tx.iter().map(|t| t.bytes[1]).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 256);
        // Answer one: exactly one parked request goes out, with the freed id.
        let from: SocketAddr = "127.0.0.1:1812".parse().unwrap();
        e.handle_datagram(
            0,
            Service::Auth,
            from,
            &answer(&tx[10].bytes, Code::AccessAccept, b"s", true),
        );
        let more = drain(&mut e);
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].bytes[1], tx[10].bytes[1]);
        // Accounting has its own identifier space.
        let mut p = Packet::new(Code::AccountingRequest, 0);
        p.push_u32(attr::ACCT_STATUS_TYPE, 7);
        e.submit(
            0,
            RadiusRequest {
                service: Service::Acct,
                packet: p,
                password: None,
            },
        );
        let acct = drain(&mut e);
        assert_eq!(acct.len(), 1);
        assert_eq!(acct[0].dest.port(), 1813);
        crypto::verify_request(&acct[0].bytes, b"s", true).unwrap();
        assert_eq!(e.in_flight(), 300);
        e.cancel(0, tokens[0]);
        assert_eq!(e.in_flight(), 299);
    }

    #[test]
    fn retransmissions_are_byte_identical() {
        let mut e = ClientEngine::new(cfg(1), [6; 16]);
        e.submit(0, auth_req());
        let a = drain(&mut e);
        e.handle_timeout(1000);
        let b = drain(&mut e);
        assert_eq!(a[0].bytes, b[0].bytes);
    }
}
