//! Dynamic Authorization (RFC 5176): CoA-Request and Disconnect-Request
//! checking, and the ACK/NAK answers. I/O-free: [`CoaServer::handle`]
//! takes the source address and the bytes, [`CoaServer::respond`] builds
//! the answer bytes.
//!
//! A request is dropped silently (and counted) unless it comes from a
//! configured client address, has code 40 or 43, a correct Request
//! Authenticator for that client's secret, and a correct
//! Message-Authenticator when one is present (or always, with
//! `require_message_authenticator`). A valid request that lassi cannot
//! act on is answered with a NAK carrying Error-Cause: 401
//! Unsupported-Attribute, 402 Missing-Attribute (no session
//! identification), 403 NAS-Identification-Mismatch, 407
//! Invalid-Attribute-Value. Session matching and the final ACK/NAK (503
//! Session-Context-Not-Found…) are the daemon's decision.
//!
//! Replays (RFC 5176 §6.3): a request whose Event-Timestamp is further
//! than `event_timestamp_window` seconds from lassi's clock is dropped
//! silently, as the RFC says (a NAK would tell a replayer the secret still
//! holds); with `require_event_timestamp` a request without one is refused
//! with 402 Missing-Attribute. [`ReplayGuard`] remembers the authenticators
//! of the requests accepted in that window, so the same request sent again
//! from another port is dropped too (a retransmission from the same port
//! and identifier is answered from the shell's answer cache instead).
//!
//! Session identification: every one of User-Name, Acct-Session-Id,
//! Calling-Station-Id and Framed-IP-Address that is present must match
//! (RFC 5176 §3); at least one must be present.

use crate::session::SessionMatch;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::collections::VecDeque;

use super::attrs::ReplyLimits;
use super::crypto::{self, VerifyError};
use super::packet::{attr, AttrKey, Code, Packet};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// A host allowed to send CoA/Disconnect requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoaClient {
    /// Source address.
    pub addr: IpAddr,
    /// Shared secret.
    pub secret: Vec<u8>,
}

/// Disconnect or change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoaKind {
    /// Disconnect-Request: end the session (Stop with Admin-Reset).
    Disconnect,
    /// CoA-Request: change timeouts, bandwidth, quotas.
    Coa,
}

/// RFC 5176 §3.6 Error-Cause values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCause {
    /// 201 (in a Disconnect-ACK).
    ResidualSessionContextRemoved,
    /// 401
    UnsupportedAttribute,
    /// 402
    MissingAttribute,
    /// 403
    NasIdentificationMismatch,
    /// 404
    InvalidRequest,
    /// 405
    UnsupportedService,
    /// 407
    InvalidAttributeValue,
    /// 501
    AdministrativelyProhibited,
    /// 503
    SessionContextNotFound,
    /// 504
    SessionContextNotRemovable,
    /// 506
    ResourcesUnavailable,
    /// 508
    MultipleSessionSelectionUnsupported,
    /// Any other value.
    Other(u32),
}

impl ErrorCause {
    /// The attribute value.
    pub fn value(self) -> u32 {
        match self {
            ErrorCause::ResidualSessionContextRemoved => 201,
            ErrorCause::UnsupportedAttribute => 401,
            ErrorCause::MissingAttribute => 402,
            ErrorCause::NasIdentificationMismatch => 403,
            ErrorCause::InvalidRequest => 404,
            ErrorCause::UnsupportedService => 405,
            ErrorCause::InvalidAttributeValue => 407,
            ErrorCause::AdministrativelyProhibited => 501,
            ErrorCause::SessionContextNotFound => 503,
            ErrorCause::SessionContextNotRemovable => 504,
            ErrorCause::ResourcesUnavailable => 506,
            ErrorCause::MultipleSessionSelectionUnsupported => 508,
            ErrorCause::Other(v) => v,
        }
    }
}

/// The daemon's answer to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoaReply {
    /// Done (Disconnect-ACK / CoA-ACK).
    Ack,
    /// Refused, with the reason.
    Nak(ErrorCause),
}

impl CoaReply {
    /// The answer to a request the daemon did not answer in time (or could
    /// not be given): 506 Resources-Unavailable.
    pub const NOT_ANSWERED: CoaReply = CoaReply::Nak(ErrorCause::ResourcesUnavailable);
}

/// A valid request for the daemon to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoaRequest {
    /// Disconnect or CoA.
    pub kind: CoaKind,
    /// The session(s) designated.
    pub matcher: SessionMatch,
    /// For CoA: the new limits (only the fields present are set).
    pub changes: ReplyLimits,
    /// Who sent it.
    pub from: SocketAddr,
    id: u8,
    authenticator: [u8; 16],
    client: usize,
    proxy_state: Vec<Vec<u8>>,
}

impl CoaRequest {
    /// The request's answer-cache key (what [`CoaEngine::handle_reply`]
    /// knows it by).
    pub fn key(&self) -> CoaKey {
        (self.from, self.id, self.authenticator)
    }
}

/// What became of a datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoaOutcome {
    /// Silently dropped, with the reason (for counters and debug logs).
    Drop(CoaDrop),
    /// Answer at once with these bytes (a NAK lassi decided itself).
    Answer(Vec<u8>),
    /// A valid request: act, then [`CoaServer::respond`].
    Request(Box<CoaRequest>),
}

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoaDrop {
    /// Source address not a configured client.
    UnknownClient,
    /// Not a well-formed RADIUS packet.
    Malformed,
    /// A code other than CoA-/Disconnect-Request.
    UnexpectedCode,
    /// Wrong Request Authenticator (wrong secret).
    BadAuthenticator,
    /// Wrong or missing Message-Authenticator.
    BadMessageAuthenticator,
    /// Event-Timestamp outside the window (a replay or a wrong clock).
    StaleEventTimestamp,
    /// The same request (same authenticator) accepted before, in the window.
    Replayed,
}

/// Checks requests and builds answers.
#[derive(Clone, Debug)]
pub struct CoaServer {
    /// Allowed clients.
    pub clients: Vec<CoaClient>,
    /// lassi's NAS-Identifier (a request naming another NAS is refused).
    pub nas_identifier: Option<String>,
    /// lassi's NAS-IP-Address (same).
    pub nas_ip: Option<Ipv4Addr>,
    /// Drop requests without Message-Authenticator.
    pub require_message_authenticator: bool,
    /// CoovaChilli client view point: swap input/output quotas.
    pub swap_octets: bool,
    /// Seconds an Event-Timestamp may be off lassi's clock (0: not checked).
    pub event_timestamp_window: u32,
    /// Refuse requests without Event-Timestamp (402).
    pub require_event_timestamp: bool,
    /// Answer a stale Event-Timestamp with a NAK (404 Invalid-Request)
    /// instead of the silent discard RFC 5176 §6.3 asks for: it shows an
    /// operator a clock that drifted, at the cost of telling a replayer the
    /// secret still holds.
    pub nak_stale_event_timestamp: bool,
}

impl CoaServer {
    /// A checker for one client (`addr`, `secret`) with the configuration
    /// defaults: no Message-Authenticator required, the RFC 2866 NAS view
    /// of octets, Event-Timestamp checked within 300 s when present but not
    /// required, a stale one dropped silently; no NAS-IP-Address.
    pub fn for_client(addr: IpAddr, secret: &[u8], nas_identifier: Option<String>) -> CoaServer {
        CoaServer {
            clients: vec![CoaClient {
                addr,
                secret: secret.to_vec(),
            }],
            nas_identifier,
            nas_ip: None,
            require_message_authenticator: false,
            swap_octets: false,
            event_timestamp_window: 300,
            require_event_timestamp: false,
            nak_stale_event_timestamp: false,
        }
    }
}

/// Attributes that may appear in a CoA or Disconnect request.
const IDENTIFICATION: &[AttrKey] = &[
    attr::USER_NAME,
    attr::ACCT_SESSION_ID,
    attr::CALLING_STATION_ID,
    attr::FRAMED_IP_ADDRESS,
];
const HOUSEKEEPING: &[AttrKey] = &[
    attr::NAS_IP_ADDRESS,
    attr::NAS_IDENTIFIER,
    attr::NAS_IPV6_ADDRESS,
    attr::NAS_PORT,
    attr::NAS_PORT_ID,
    attr::NAS_PORT_TYPE,
    attr::CALLED_STATION_ID,
    attr::EVENT_TIMESTAMP,
    attr::MESSAGE_AUTHENTICATOR,
    attr::PROXY_STATE,
    attr::STATE,
    attr::CLASS,
    attr::CHARGEABLE_USER_IDENTITY,
    attr::ACCT_TERMINATE_CAUSE,
    attr::REPLY_MESSAGE,
];
const CHANGES: &[AttrKey] = &[
    attr::SESSION_TIMEOUT,
    attr::IDLE_TIMEOUT,
    attr::ACCT_INTERIM_INTERVAL,
    attr::TERMINATION_ACTION,
    attr::WISPR_BANDWIDTH_MAX_UP,
    attr::WISPR_BANDWIDTH_MAX_DOWN,
    attr::WISPR_REDIRECTION_URL,
    attr::WISPR_SESSION_TERMINATE_TIME,
    attr::FILTER_ID,
    attr::CHILLI_BANDWIDTH_MAX_UP,
    attr::CHILLI_BANDWIDTH_MAX_DOWN,
    attr::CHILLI_MAX_INPUT_OCTETS,
    attr::CHILLI_MAX_OUTPUT_OCTETS,
    attr::CHILLI_MAX_TOTAL_OCTETS,
    attr::CHILLI_MAX_INPUT_GIGAWORDS,
    attr::CHILLI_MAX_OUTPUT_GIGAWORDS,
    attr::CHILLI_MAX_TOTAL_GIGAWORDS,
];

impl CoaServer {
    /// Checks one datagram from `from`; `now_secs` is the wall clock (Unix
    /// seconds) that Event-Timestamps are compared with.
    pub fn handle(&self, from: SocketAddr, bytes: &[u8], now_secs: u64) -> CoaOutcome {
        let (client, p, kind) = match self.authentic(from, bytes) {
            Ok(x) => x,
            Err(why) => return CoaOutcome::Drop(why),
        };
        let stamp = p.get_u32(attr::EVENT_TIMESTAMP);
        let stale = stamp.is_some_and(|t| {
            self.event_timestamp_window > 0
                && now_secs.abs_diff(u64::from(t)) > u64::from(self.event_timestamp_window)
        });
        if stale && !self.nak_stale_event_timestamp {
            return CoaOutcome::Drop(CoaDrop::StaleEventTimestamp);
        }
        let mut req = CoaRequest {
            kind,
            matcher: SessionMatch::default(),
            changes: ReplyLimits::default(),
            from,
            id: p.id,
            authenticator: p.authenticator,
            client,
            proxy_state: p.get_all(attr::PROXY_STATE).map(<[u8]>::to_vec).collect(),
        };
        let checked = self
            .refusal(&p, kind, stale, stamp.is_some())
            .map_or_else(|| identify(&p), Err);
        match checked {
            Ok(matcher) => req.matcher = matcher,
            Err(cause) => return CoaOutcome::Answer(self.respond(&req, CoaReply::Nak(cause))),
        }
        if kind == CoaKind::Coa {
            req.changes = self.changes(&p);
        }
        CoaOutcome::Request(Box::new(req))
    }

    /// The client, packet and kind of an authentic request from `from`, or
    /// why it is dropped.
    fn authentic(
        &self,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(usize, Packet, CoaKind), CoaDrop> {
        let client = self
            .clients
            .iter()
            .position(|c| c.addr == from.ip())
            .ok_or(CoaDrop::UnknownClient)?;
        let p = Packet::decode(bytes).map_err(|_| CoaDrop::Malformed)?;
        let kind = match p.code {
            Code::DisconnectRequest => CoaKind::Disconnect,
            Code::CoaRequest => CoaKind::Coa,
            _ => return Err(CoaDrop::UnexpectedCode),
        };
        let secret = &self.clients[client].secret;
        match crypto::verify_request(bytes, secret, self.require_message_authenticator) {
            Ok(()) => Ok((client, p, kind)),
            Err(VerifyError::BadAuthenticator) => Err(CoaDrop::BadAuthenticator),
            Err(VerifyError::Malformed) => Err(CoaDrop::Malformed),
            Err(_) => Err(CoaDrop::BadMessageAuthenticator),
        }
    }

    /// Why an authentic request is refused before its session is looked
    /// at, if it is: an attribute lassi does not handle (refused rather
    /// than half-applied), a stale or missing Event-Timestamp, another NAS.
    fn refusal(&self, p: &Packet, kind: CoaKind, stale: bool, stamped: bool) -> Option<ErrorCause> {
        let unsupported = p.attrs.iter().any(|a| {
            !(IDENTIFICATION.contains(&a.key)
                || HOUSEKEEPING.contains(&a.key)
                || (kind == CoaKind::Coa && CHANGES.contains(&a.key)))
        });
        if unsupported {
            return Some(ErrorCause::UnsupportedAttribute);
        }
        if stale {
            return Some(ErrorCause::InvalidRequest);
        }
        if !stamped && self.require_event_timestamp {
            return Some(ErrorCause::MissingAttribute);
        }
        let other_id = matches!(
            (&self.nas_identifier, p.get(attr::NAS_IDENTIFIER)),
            (Some(ours), Some(theirs)) if ours.as_bytes() != theirs
        );
        let other_ip = matches!(
            (self.nas_ip, p.get(attr::NAS_IP_ADDRESS)),
            (Some(ours), Some(theirs)) if ours.octets() != theirs
        );
        (other_id || other_ip).then_some(ErrorCause::NasIdentificationMismatch)
    }

    /// What a CoA-Request changes (echoed context is not a change).
    fn changes(&self, p: &Packet) -> ReplyLimits {
        let mut changes = ReplyLimits::from_packet(p, self.swap_octets);
        changes.class.clear();
        changes.state = None;
        changes.cui = None;
        changes.reply_message = None;
        changes
    }

    /// The answer to `req`: ACK or NAK (with Error-Cause), Proxy-State
    /// echoed, Message-Authenticator included, signed with the client's
    /// secret.
    pub fn respond(&self, req: &CoaRequest, reply: CoaReply) -> Vec<u8> {
        let code = match (req.kind, reply) {
            (CoaKind::Disconnect, CoaReply::Ack) => Code::DisconnectAck,
            (CoaKind::Disconnect, CoaReply::Nak(_)) => Code::DisconnectNak,
            (CoaKind::Coa, CoaReply::Ack) => Code::CoaAck,
            (CoaKind::Coa, CoaReply::Nak(_)) => Code::CoaNak,
        };
        let mut p = Packet::new(code, req.id);
        p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        if let CoaReply::Nak(c) = reply {
            p.push_u32(attr::ERROR_CAUSE, c.value());
        }
        for ps in &req.proxy_state {
            p.push(attr::PROXY_STATE, ps.clone());
        }
        let mut b = p.encode().expect("small packet");
        crypto::sign_response(&mut b, &self.clients[req.client].secret, &req.authenticator);
        b
    }
}

/// The session(s) a request designates: every one of User-Name,
/// Acct-Session-Id, Calling-Station-Id and Framed-IP-Address that is present
/// (407 Invalid-Attribute-Value if one does not parse; 402
/// Missing-Attribute if none is there).
fn identify(p: &Packet) -> Result<SessionMatch, ErrorCause> {
    let mut m = SessionMatch {
        user: p.get_string(attr::USER_NAME),
        session_id: p.get_string(attr::ACCT_SESSION_ID),
        ..SessionMatch::default()
    };
    if let Some(station) = p.get(attr::CALLING_STATION_ID) {
        let mac = std::str::from_utf8(station)
            .ok()
            .and_then(parse_station_mac);
        m.mac = Some(mac.ok_or(ErrorCause::InvalidAttributeValue)?);
    }
    if p.get(attr::FRAMED_IP_ADDRESS).is_some() {
        let ip = p.get_ipv4(attr::FRAMED_IP_ADDRESS);
        m.ip = Some(ip.ok_or(ErrorCause::InvalidAttributeValue)?);
    }
    if m.is_empty() {
        return Err(ErrorCause::MissingAttribute);
    }
    Ok(m)
}

/// Authenticators of the requests accepted recently, per client address:
/// the same request again, from another port, is a replay. Only requests
/// that passed the authenticator check are remembered, so forged datagrams
/// cannot fill it; entries live for the Event-Timestamp window (at least
/// [`ReplayGuard::MIN_KEEP_SECS`]), at most [`ReplayGuard::MAX_ENTRIES`].
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: std::collections::VecDeque<(u64, IpAddr, [u8; 16])>,
}

impl ReplayGuard {
    /// Entries kept at most (the oldest goes first).
    pub const MAX_ENTRIES: usize = 4096;
    /// Entries are kept at least this long, whatever the window.
    pub const MIN_KEEP_SECS: u64 = 300;

    /// True if `authenticator` from `addr` was seen within `keep_secs`
    /// before `now_secs`; otherwise it is remembered and false returned.
    pub fn replayed(
        &mut self,
        addr: IpAddr,
        authenticator: [u8; 16],
        now_secs: u64,
        keep_secs: u64,
    ) -> bool {
        let keep = keep_secs.max(Self::MIN_KEEP_SECS);
        while self
            .seen
            .front()
            .is_some_and(|(t, _, _)| now_secs.saturating_sub(*t) > keep)
        {
            self.seen.pop_front();
        }
        if self
            .seen
            .iter()
            .any(|(_, a, auth)| *a == addr && *auth == authenticator)
        {
            return true;
        }
        if self.seen.len() >= Self::MAX_ENTRIES {
            self.seen.pop_front();
        }
        self.seen.push_back((now_secs, addr, authenticator));
        false
    }
}

/// A request as the answer cache knows it: source, identifier and Request
/// Authenticator (a retransmission repeats all three).
pub type CoaKey = (SocketAddr, u8, [u8; 16]);

/// What the answer cache holds for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CachedAnswer {
    /// The daemon is still deciding: a retransmission is ignored.
    Pending,
    /// The answer sent: a retransmission gets it again, and nothing is
    /// done twice.
    Sent(Vec<u8>),
}

/// The answers to the latest [`AnswerCache::MAX_ENTRIES`] requests (or
/// [`CachedAnswer::Pending`] while the daemon decides), to answer a
/// retransmitted request the same way without acting twice.
#[derive(Debug, Default)]
pub struct AnswerCache {
    entries: std::collections::VecDeque<(CoaKey, CachedAnswer)>,
}

impl AnswerCache {
    /// Entries kept at most (the oldest goes first).
    pub const MAX_ENTRIES: usize = 256;

    /// What is known of request `k`.
    pub fn get(&self, k: &CoaKey) -> Option<&CachedAnswer> {
        self.entries
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v)
    }

    /// Records `v` for request `k`.
    pub fn put(&mut self, k: CoaKey, v: CachedAnswer) {
        if let Some(e) = self.entries.iter_mut().find(|(key, _)| *key == k) {
            e.1 = v;
            return;
        }
        if self.entries.len() >= Self::MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back((k, v));
    }
}

/// What the CoA listener does with a datagram ([`CoaEngine::handle_datagram`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoaAction {
    /// A retransmission of a request the daemon is still deciding: nothing.
    Ignore,
    /// A retransmission: send the answer sent before, again.
    Resend(Vec<u8>),
    /// Drop it silently (count it).
    Drop(CoaDrop),
    /// Send this NAK, decided by lassi (count it).
    Nak(Vec<u8>),
    /// A valid request for the daemon: answer it with [`CoaEngine::handle_reply`].
    Deliver(Box<CoaRequest>),
}

/// An answer to a delivered request, to send ([`CoaEngine::poll_transmit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoaTransmit {
    /// Where to (the request's source).
    pub dest: SocketAddr,
    /// The answer.
    pub bytes: Vec<u8>,
    /// What it says (for counters).
    pub reply: CoaReply,
}

/// The CoA/Disconnect listener's decisions, I/O-free: the request check
/// ([`CoaServer`]), the replay guard across ports ([`ReplayGuard`]), the
/// answer cache for retransmissions ([`AnswerCache`]) and the deadline of
/// the daemon's reply: a delivered request it leaves unanswered for
/// `answer_timeout_ms` is answered [`CoaReply::NOT_ANSWERED`]. The shell
/// owns the socket and hands the daemon what is delivered.
#[derive(Debug)]
pub struct CoaEngine {
    server: CoaServer,
    replays: ReplayGuard,
    cache: AnswerCache,
    answer_timeout_ms: u64,
    /// Delivered requests waiting for the daemon's reply, with their deadline.
    waiting: Vec<(UnixMillis, CoaRequest)>,
    out: VecDeque<CoaTransmit>,
}

impl CoaEngine {
    /// An engine checking requests with `server`, giving the daemon
    /// `answer_timeout_ms` to reply.
    pub fn new(server: CoaServer, answer_timeout_ms: u64) -> CoaEngine {
        CoaEngine {
            server,
            replays: ReplayGuard::default(),
            cache: AnswerCache::default(),
            answer_timeout_ms,
            waiting: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// The request checker.
    pub fn server(&self) -> &CoaServer {
        &self.server
    }

    /// A reload: requests from now on are checked (clients, secrets,
    /// NAS identity, Event-Timestamp rules) by `server`. The replay guard
    /// and the answers cached for retransmissions stay.
    pub fn set_server(&mut self, server: CoaServer) {
        self.server = server;
    }

    /// Decides about one datagram from `from` received at `now`;
    /// `wall_secs` is the wall clock in Unix seconds (Event-Timestamps and
    /// replays are judged by it).
    pub fn handle_datagram(
        &mut self,
        now: UnixMillis,
        from: SocketAddr,
        bytes: &[u8],
        wall_secs: u64,
    ) -> CoaAction {
        let key =
            (bytes.len() >= 20).then(|| (from, bytes[1], bytes[4..20].try_into().expect("16")));
        match key.as_ref().and_then(|k| self.cache.get(k)) {
            Some(CachedAnswer::Sent(answer)) => return CoaAction::Resend(answer.clone()),
            Some(CachedAnswer::Pending) => return CoaAction::Ignore,
            None => {}
        }
        match self.server.handle(from, bytes, wall_secs) {
            CoaOutcome::Drop(why) => CoaAction::Drop(why),
            CoaOutcome::Answer(answer) => {
                let key = key.expect("a decoded packet has a header");
                self.cache.put(key, CachedAnswer::Sent(answer.clone()));
                CoaAction::Nak(answer)
            }
            CoaOutcome::Request(req) => {
                let window = u64::from(self.server.event_timestamp_window);
                if self
                    .replays
                    .replayed(from.ip(), req.authenticator, wall_secs, window)
                {
                    return CoaAction::Drop(CoaDrop::Replayed);
                }
                self.cache.put(req.key(), CachedAnswer::Pending);
                let deadline = now + self.answer_timeout_ms;
                self.waiting.push((deadline, (*req).clone()));
                CoaAction::Deliver(req)
            }
        }
    }

    /// The daemon's reply to the delivered request `key` (ignored once the
    /// request was answered, by an earlier reply or at its deadline).
    pub fn handle_reply(&mut self, key: CoaKey, reply: CoaReply) {
        if let Some(i) = self.waiting.iter().position(|(_, r)| r.key() == key) {
            let (_, req) = self.waiting.remove(i);
            self.answer(&req, reply);
        }
    }

    /// Answers [`CoaReply::NOT_ANSWERED`] what waited past its deadline.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        while let Some(i) = self.waiting.iter().position(|(t, _)| *t <= now) {
            let (_, req) = self.waiting.remove(i);
            self.answer(&req, CoaReply::NOT_ANSWERED);
        }
    }

    /// When [`CoaEngine::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.waiting.iter().map(|(t, _)| *t).min()
    }

    /// The next answer to send.
    pub fn poll_transmit(&mut self) -> Option<CoaTransmit> {
        self.out.pop_front()
    }

    /// Queues the answer to `req`, remembered for its retransmissions.
    fn answer(&mut self, req: &CoaRequest, reply: CoaReply) {
        let bytes = self.server.respond(req, reply);
        self.cache.put(req.key(), CachedAnswer::Sent(bytes.clone()));
        self.out.push_back(CoaTransmit {
            dest: req.from,
            bytes,
            reply,
        });
    }
}

/// Calling-Station-Id as a MAC: `AA-BB-CC-DD-EE-FF`, `aa:bb:…`, or twelve
/// hex digits.
pub fn parse_station_mac(s: &str) -> Option<MacAddr> {
    if let Ok(m) = s.parse() {
        return Some(m);
    }
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, '.' | '-' | ':'))
        .collect();
    if hex.len() != 12 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut b = [0u8; 6];
    for (i, x) in b.iter_mut().enumerate() {
        *x = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(MacAddr(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> CoaServer {
        CoaServer::for_client(
            "127.0.0.1".parse().unwrap(),
            b"coasecret",
            Some("nas1".into()),
        )
    }

    const NOW: u64 = 1_800_000_000;

    fn request(code: Code, secret: &[u8], f: impl FnOnce(&mut Packet)) -> Vec<u8> {
        let mut p = Packet::new(code, 42);
        f(&mut p);
        let mut b = p.encode().unwrap();
        crypto::sign_request(&mut b, secret);
        b
    }

    const FROM: &str = "127.0.0.1:40000";

    #[test]
    fn disconnect_by_mac_is_accepted_and_acked() {
        let s = server();
        let b = request(Code::DisconnectRequest, b"coasecret", |p| {
            p.push(attr::CALLING_STATION_ID, "02-00-0A-01-00-17")
                .push(attr::PROXY_STATE, b"ps".to_vec());
        });
        let CoaOutcome::Request(r) = s.handle(FROM.parse().unwrap(), &b, NOW) else {
            panic!()
        };
        assert_eq!(r.kind, CoaKind::Disconnect);
        let mac: MacAddr = "02:00:0a:01:00:17".parse().unwrap();
        assert!(r
            .matcher
            .matches_fields(None, "x", mac, Ipv4Addr::new(10, 1, 0, 2)));
        assert!(!r
            .matcher
            .matches_fields(None, "x", MacAddr([0; 6]), Ipv4Addr::new(10, 1, 0, 2)));
        let ack = s.respond(&r, CoaReply::Ack);
        crypto::verify_response(&ack, b"coasecret", b[4..20].try_into().unwrap(), true).unwrap();
        let a = Packet::decode(&ack).unwrap();
        assert_eq!(a.code, Code::DisconnectAck);
        assert_eq!(a.id, 42);
        assert_eq!(a.get(attr::PROXY_STATE), Some(&b"ps"[..]));
        let nak = Packet::decode(&s.respond(&r, CoaReply::Nak(ErrorCause::SessionContextNotFound)))
            .unwrap();
        assert_eq!(nak.code, Code::DisconnectNak);
        assert_eq!(nak.get_u32(attr::ERROR_CAUSE), Some(503));
    }

    #[test]
    fn wrong_secret_unknown_client_and_bad_ma_are_dropped() {
        let s = server();
        let b = request(Code::CoaRequest, b"wrong", |p| {
            p.push(attr::USER_NAME, "bob");
        });
        assert_eq!(
            s.handle(FROM.parse().unwrap(), &b, NOW),
            CoaOutcome::Drop(CoaDrop::BadAuthenticator)
        );
        let b = request(Code::CoaRequest, b"coasecret", |p| {
            p.push(attr::USER_NAME, "bob");
        });
        assert_eq!(
            s.handle("127.0.0.2:1".parse().unwrap(), &b, NOW),
            CoaOutcome::Drop(CoaDrop::UnknownClient)
        );
        let mut strict = server();
        strict.require_message_authenticator = true;
        assert_eq!(
            strict.handle(FROM.parse().unwrap(), &b, NOW),
            CoaOutcome::Drop(CoaDrop::BadMessageAuthenticator)
        );
        let b = request(Code::AccessRequest, b"coasecret", |_| {});
        assert_eq!(
            s.handle(FROM.parse().unwrap(), &b, NOW),
            CoaOutcome::Drop(CoaDrop::UnexpectedCode)
        );
        assert_eq!(
            s.handle(FROM.parse().unwrap(), &[43, 1, 0], NOW),
            CoaOutcome::Drop(CoaDrop::Malformed)
        );
    }

    fn nak_cause(o: CoaOutcome) -> u32 {
        let CoaOutcome::Answer(b) = o else {
            panic!("{o:?}")
        };
        Packet::decode(&b)
            .unwrap()
            .get_u32(attr::ERROR_CAUSE)
            .unwrap()
    }

    #[test]
    fn naks_with_error_cause() {
        let s = server();
        let from = FROM.parse().unwrap();
        let b = request(Code::CoaRequest, b"coasecret", |p| {
            p.push(attr::USER_NAME, "bob").push(AttrKey::std(99), "x");
        });
        assert_eq!(nak_cause(s.handle(from, &b, NOW)), 401);
        let b = request(Code::CoaRequest, b"coasecret", |p| {
            p.push_u32(attr::SESSION_TIMEOUT, 5);
        });
        assert_eq!(nak_cause(s.handle(from, &b, NOW)), 402);
        let b = request(Code::DisconnectRequest, b"coasecret", |p| {
            p.push(attr::USER_NAME, "bob")
                .push(attr::NAS_IDENTIFIER, "other");
        });
        assert_eq!(nak_cause(s.handle(from, &b, NOW)), 403);
        let b = request(Code::DisconnectRequest, b"coasecret", |p| {
            p.push(attr::CALLING_STATION_ID, "not-a-mac");
        });
        assert_eq!(nak_cause(s.handle(from, &b, NOW)), 407);
        // A Disconnect carrying a change is refused too.
        let b = request(Code::DisconnectRequest, b"coasecret", |p| {
            p.push(attr::USER_NAME, "bob")
                .push_u32(attr::SESSION_TIMEOUT, 5);
        });
        assert_eq!(nak_cause(s.handle(from, &b, NOW)), 401);
    }

    #[test]
    fn coa_changes_are_extracted() {
        let s = server();
        let b = request(Code::CoaRequest, b"coasecret", |p| {
            p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16])
                .push(attr::ACCT_SESSION_ID, "sess-1")
                .push_ipv4(attr::FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 1, 0, 9))
                .push_u32(attr::SESSION_TIMEOUT, 120)
                .push_u32(attr::WISPR_BANDWIDTH_MAX_UP, 1_000_000)
                .push_u32(attr::CHILLI_MAX_TOTAL_OCTETS, 10)
                .push_u32(attr::CHILLI_MAX_TOTAL_GIGAWORDS, 1)
                .push(attr::FILTER_ID, "premium");
        });
        let CoaOutcome::Request(r) = s.handle(FROM.parse().unwrap(), &b, NOW) else {
            panic!()
        };
        assert_eq!(r.changes.filter_id.as_deref(), Some("premium"));
        assert_eq!(r.kind, CoaKind::Coa);
        assert_eq!(r.matcher.session_id.as_deref(), Some("sess-1"));
        assert_eq!(r.matcher.ip, Some(Ipv4Addr::new(10, 1, 0, 9)));
        assert_eq!(r.changes.session_timeout, Some(120));
        assert_eq!(r.changes.bandwidth_max_up_bps, Some(1_000_000));
        assert_eq!(r.changes.max_total_octets, Some((1 << 32) + 10));
        let ack = Packet::decode(&s.respond(&r, CoaReply::Ack)).unwrap();
        assert_eq!(ack.code, Code::CoaAck);
    }

    #[test]
    fn event_timestamp_outside_the_window_is_dropped_silently() {
        let mut s = server();
        let at = |t: u64| {
            request(Code::DisconnectRequest, b"coasecret", |p| {
                p.push(attr::USER_NAME, "bob")
                    .push_u32(attr::EVENT_TIMESTAMP, t as u32);
            })
        };
        let from = FROM.parse().unwrap();
        for ok in [NOW, NOW - 300, NOW + 300] {
            assert!(matches!(
                s.handle(from, &at(ok), NOW),
                CoaOutcome::Request(_)
            ));
        }
        for stale in [NOW - 301, NOW + 301, 0] {
            assert_eq!(
                s.handle(from, &at(stale), NOW),
                CoaOutcome::Drop(CoaDrop::StaleEventTimestamp)
            );
        }
        // Without one: accepted unless required, then 402.
        let bare = request(Code::DisconnectRequest, b"coasecret", |p| {
            p.push(attr::USER_NAME, "bob");
        });
        assert!(matches!(s.handle(from, &bare, NOW), CoaOutcome::Request(_)));
        s.require_event_timestamp = true;
        assert_eq!(nak_cause(s.handle(from, &bare, NOW)), 402);
        // Told to, a stale one is refused with 404 Invalid-Request instead.
        s.require_event_timestamp = false;
        s.nak_stale_event_timestamp = true;
        assert_eq!(nak_cause(s.handle(from, &at(NOW - 301), NOW)), 404);
        // A window of 0 checks nothing.
        s.event_timestamp_window = 0;
        assert!(matches!(
            s.handle(from, &at(0), NOW),
            CoaOutcome::Request(_)
        ));
    }

    #[test]
    fn replay_guard_remembers_accepted_requests_for_the_window() {
        let mut g = ReplayGuard::default();
        let a: IpAddr = "192.0.2.2".parse().unwrap();
        let b: IpAddr = "192.0.2.3".parse().unwrap();
        assert!(!g.replayed(a, [1; 16], NOW, 300));
        assert!(g.replayed(a, [1; 16], NOW + 300, 300));
        assert!(!g.replayed(b, [1; 16], NOW, 300), "another client's");
        assert!(!g.replayed(a, [2; 16], NOW, 300));
        // Forgotten after the window: the Event-Timestamp check takes over.
        assert!(!g.replayed(a, [1; 16], NOW + 302, 300));
        // Bounded.
        for i in 0..(ReplayGuard::MAX_ENTRIES as u32 + 10) {
            let mut auth = [0; 16];
            auth[..4].copy_from_slice(&i.to_be_bytes());
            g.replayed(a, auth, NOW + 400, 300);
        }
        assert_eq!(g.seen.len(), ReplayGuard::MAX_ENTRIES);
    }

    #[test]
    fn the_engine_answers_retransmissions_from_its_cache_and_drops_replays() {
        let mut e = CoaEngine::new(server(), 5000);
        let from: SocketAddr = FROM.parse().unwrap();
        let b = request(Code::DisconnectRequest, b"coasecret", |p| {
            p.push(attr::USER_NAME, "bob");
        });
        let CoaAction::Deliver(req) = e.handle_datagram(0, from, &b, NOW) else {
            panic!("not delivered")
        };
        // While the daemon decides, a retransmission is ignored.
        assert_eq!(e.handle_datagram(1, from, &b, NOW), CoaAction::Ignore);
        e.handle_reply(req.key(), CoaReply::Ack);
        let t = e.poll_transmit().unwrap();
        assert_eq!((t.dest, t.reply), (from, CoaReply::Ack));
        assert_eq!(Packet::decode(&t.bytes).unwrap().code, Code::DisconnectAck);
        // A second reply changes nothing.
        e.handle_reply(req.key(), CoaReply::Nak(ErrorCause::SessionContextNotFound));
        assert_eq!(e.poll_transmit(), None);
        // Then it gets the same answer, and nothing is delivered twice.
        let again = e.handle_datagram(2, from, &b, NOW);
        assert_eq!(again, CoaAction::Resend(t.bytes));
        // The same request from another port is a replay.
        let other: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        assert_eq!(
            e.handle_datagram(3, other, &b, NOW),
            CoaAction::Drop(CoaDrop::Replayed)
        );
        // A NAK lassi decides is cached too.
        let bad = request(Code::DisconnectRequest, b"coasecret", |_| {});
        let CoaAction::Nak(nak) = e.handle_datagram(4, from, &bad, NOW) else {
            panic!("no NAK")
        };
        assert_eq!(nak_cause(CoaOutcome::Answer(nak.clone())), 402);
        assert_eq!(
            e.handle_datagram(5, from, &bad, NOW),
            CoaAction::Resend(nak)
        );
        // Noise is dropped, not cached.
        assert_eq!(
            e.handle_datagram(6, from, &[0; 10], NOW),
            CoaAction::Drop(CoaDrop::Malformed)
        );
    }

    #[test]
    fn a_request_the_daemon_leaves_unanswered_is_naked_at_its_deadline() {
        let mut e = CoaEngine::new(server(), 5000);
        let from: SocketAddr = FROM.parse().unwrap();
        let b = request(Code::CoaRequest, b"coasecret", |p| {
            p.push(attr::USER_NAME, "bob");
        });
        let CoaAction::Deliver(req) = e.handle_datagram(1000, from, &b, NOW) else {
            panic!("not delivered")
        };
        assert_eq!(e.poll_timeout(), Some(6000));
        e.handle_timeout(5999);
        assert_eq!(e.poll_transmit(), None);
        e.handle_timeout(6000);
        let t = e.poll_transmit().unwrap();
        assert_eq!(t.reply, CoaReply::NOT_ANSWERED);
        assert_eq!(nak_cause(CoaOutcome::Answer(t.bytes.clone())), 506);
        assert_eq!(e.poll_timeout(), None);
        // The daemon's late reply is ignored; a retransmission gets the NAK.
        e.handle_reply(req.key(), CoaReply::Ack);
        assert_eq!(e.poll_transmit(), None);
        assert_eq!(
            e.handle_datagram(7000, from, &b, NOW),
            CoaAction::Resend(t.bytes)
        );
    }

    #[test]
    fn the_answer_cache_is_bounded() {
        let mut c = AnswerCache::default();
        let from: SocketAddr = FROM.parse().unwrap();
        for i in 0..=AnswerCache::MAX_ENTRIES {
            c.put((from, i as u8, [(i >> 8) as u8; 16]), CachedAnswer::Pending);
        }
        assert_eq!(c.entries.len(), AnswerCache::MAX_ENTRIES);
        assert_eq!(c.get(&(from, 0, [0; 16])), None, "the oldest went");
        c.put((from, 1, [0; 16]), CachedAnswer::Sent(vec![1]));
        assert_eq!(
            c.get(&(from, 1, [0; 16])),
            Some(&CachedAnswer::Sent(vec![1]))
        );
        assert_eq!(c.entries.len(), AnswerCache::MAX_ENTRIES);
    }

    #[test]
    fn station_ids() {
        let m = MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        for s in [
            "AA-BB-CC-DD-EE-FF",
            "aa:bb:cc:dd:ee:ff",
            "aabbccddeeff",
            "aabb.ccdd.eeff",
        ] {
            assert_eq!(parse_station_mac(s), Some(m), "{s}");
        }
        assert_eq!(parse_station_mac("aabbccddeef"), None);
    }
}
