//! The session table: one entry per client that holds a lease, its state
//! (not yet authorized → authorized), and its counters.
//!
//! The data plane thread owns the table; every packet of an authorized client
//! costs one hash lookup (by source IP outbound, by destination IP inbound)
//! and a few additions. Nothing here allocates on that path.

mod fasthash;
mod filter;
mod limits;
mod persist;

use core::net::Ipv4Addr;
use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use fasthash::FastBuildHasher;
pub use filter::ClientFilter;
pub use limits::{Held, QuotaAction, SessionLimits, ShapeVerdict, Shaper, TokenBucket};
pub use persist::{
    Durability, SaveSchedule, SavedSessions, COUNTER_SAVE_INTERVAL_MS, LEASE_SAVE_INTERVAL_MS,
    STATE_VERSION,
};

use crate::wire::MacAddr;
use crate::UnixMillis;

/// Where a client stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Has a lease; reaches only DHCP, DNS and lassi itself.
    Unauthorized,
    /// Logged in: forwarded on the fast path and counted.
    Authorized,
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionState::Unauthorized => "unauthorized",
            SessionState::Authorized => "authorized",
        })
    }
}

/// Octets and packets at the IP layer, RADIUS style: "in" is what the client
/// sent, "out" what it received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// IP bytes sent by the client.
    pub octets_in: u64,
    /// IP bytes delivered to the client.
    pub octets_out: u64,
    /// Packets sent by the client.
    pub packets_in: u64,
    /// Packets delivered to the client.
    pub packets_out: u64,
}

/// Why a session ended. Names follow RADIUS Acct-Terminate-Cause so the
/// accounting issue can map them one to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// The guest logged out.
    UserRequest,
    /// An operator ended it (`lassi logout`).
    AdminReset,
    /// The DHCP lease ran out without renewal.
    LeaseExpired,
    /// The client released its lease.
    LeaseReleased,
    /// The DHCP server took the lease back for a newcomer: the pool was
    /// exhausted and this client, never logged in, was silent longest.
    LeaseReclaimed,
    /// lassi is shutting down.
    NasReboot,
    /// Session-Timeout (or WISPr-Session-Terminate-Time) reached.
    SessionTimeout,
    /// Idle-Timeout reached.
    IdleTimeout,
    /// The client stopped answering ARP probes: it left.
    LostCarrier,
    /// A volume quota was used up (RADIUS reports this as Session-Timeout,
    /// as CoovaChilli does).
    QuotaExceeded,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndReason::UserRequest => "user-request",
            EndReason::AdminReset => "admin-reset",
            EndReason::LeaseExpired => "lease-expired",
            EndReason::LeaseReleased => "lease-released",
            EndReason::LeaseReclaimed => "lease-reclaimed",
            EndReason::NasReboot => "nas-reboot",
            EndReason::SessionTimeout => "session-timeout",
            EndReason::IdleTimeout => "idle-timeout",
            EndReason::LostCarrier => "lost-carrier",
            EndReason::QuotaExceeded => "quota-exceeded",
        })
    }
}

/// One client of the gateway.
#[derive(Clone, Debug, Serialize)]
pub struct Client {
    /// Hardware address (bound to `ip`).
    pub mac: MacAddr,
    /// Leased address.
    pub ip: Ipv4Addr,
    /// Authorization state.
    pub state: SessionState,
    /// Acct-Session-Id of the current (or next) authorized session.
    pub session_id: String,
    /// Who logged in, when authorized.
    pub user: Option<String>,
    /// When the client first got its lease.
    pub leased_at: UnixMillis,
    /// When the current session was authorized.
    pub authorized_at: Option<UnixMillis>,
    /// When the lease runs out.
    pub lease_expires: UnixMillis,
    /// Last packet seen from the client (authorized traffic).
    pub last_active: UnixMillis,
    /// Counters of the current authorized session.
    pub counters: Counters,
    /// Limits of the current authorized session.
    pub limits: SessionLimits,
    /// True once a used-up quota has throttled the session.
    pub throttled: bool,
    /// Last frame of any kind seen from the client (ARP replies included).
    pub last_seen: UnixMillis,
    /// When the next accounting Interim-Update is due.
    pub next_interim: Option<UnixMillis>,
    /// RADIUS Class attributes to echo in accounting.
    #[serde(skip)]
    pub class: Vec<Vec<u8>>,
    /// RADIUS Chargeable-User-Identity to echo in accounting.
    #[serde(skip)]
    pub cui: Option<Vec<u8>>,
    /// Upload shaper.
    #[serde(skip)]
    pub up: Shaper,
    /// Download shaper.
    #[serde(skip)]
    pub down: Shaper,
    /// ARP probes sent since the client was last heard.
    #[serde(skip)]
    pub probes: u8,
}

impl Client {
    /// A client that has just taken a lease: behind the portal, nothing
    /// counted, no limits.
    pub fn leased(
        mac: MacAddr,
        ip: Ipv4Addr,
        session_id: String,
        expires: UnixMillis,
        now: UnixMillis,
    ) -> Client {
        Client {
            mac,
            ip,
            state: SessionState::Unauthorized,
            session_id,
            user: None,
            leased_at: now,
            authorized_at: None,
            lease_expires: expires,
            last_active: now,
            counters: Counters::default(),
            limits: SessionLimits::default(),
            throttled: false,
            last_seen: now,
            next_interim: None,
            class: Vec::new(),
            cui: None,
            up: Shaper::default(),
            down: Shaper::default(),
            probes: 0,
        }
    }

    /// Slow the session to these rates (its quota is used up); the session
    /// stays throttled until new limits replace these.
    pub fn throttle(&mut self, up_bps: u64, down_bps: u64, now: UnixMillis) {
        self.up = Shaper::new(Some(up_bps), now);
        self.down = Shaper::new(Some(down_bps), now);
        self.throttled = true;
    }

    /// True when a volume limit of the current session is used up.
    #[inline]
    pub fn over_quota(&self) -> bool {
        let (l, k) = (&self.limits, &self.counters);
        l.max_input_octets.is_some_and(|m| k.octets_in >= m)
            || l.max_output_octets.is_some_and(|m| k.octets_out >= m)
            || l.max_total_octets
                .is_some_and(|m| k.octets_in + k.octets_out >= m)
    }
}

/// An authorized session as saved in the state directory, so a restart of
/// lassi neither loses its accounting nor logs the guest out.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    /// Client hardware address.
    pub mac: MacAddr,
    /// Client address.
    pub ip: Ipv4Addr,
    /// Acct-Session-Id.
    pub session_id: String,
    /// Who logged in.
    pub user: Option<String>,
    /// When.
    pub authorized_at: UnixMillis,
    /// Counters at the time of saving.
    pub counters: Counters,
    /// Limits granted at login (or by CoA since).
    pub limits: SessionLimits,
    /// RADIUS Class attributes, hex.
    #[serde(default)]
    pub class_hex: Vec<String>,
    /// RADIUS CUI, hex.
    #[serde(default)]
    pub cui_hex: Option<String>,
    /// When the record was written.
    pub saved_at: UnixMillis,
    /// True when lassi already ended the session cleanly (its Stop went out).
    #[serde(default)]
    pub stopped: bool,
    /// True when a used-up quota had throttled the session.
    #[serde(default)]
    pub throttled: bool,
    /// When the next Interim-Update was due (tells when the last went out).
    #[serde(default)]
    pub next_interim: Option<UnixMillis>,
}

impl SessionReport {
    /// The report of an authorized client at `at` (`None` if not authorized).
    pub fn of(c: &Client, at: UnixMillis) -> Option<SessionReport> {
        Some(SessionReport {
            mac: c.mac,
            ip: c.ip,
            session_id: c.session_id.clone(),
            user: c.user.clone(),
            started: c.authorized_at?,
            at,
            counters: c.counters,
            limits: c.limits.clone(),
            last_active: c.last_active,
            class: c.class.clone(),
            cui: c.cui.clone(),
            ipv6: Vec::new(),
        })
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl SessionRecord {
    /// The record of an authorized client.
    pub fn of(c: &Client, now: UnixMillis, stopped: bool) -> Option<SessionRecord> {
        Some(SessionRecord {
            mac: c.mac,
            ip: c.ip,
            session_id: c.session_id.clone(),
            user: c.user.clone(),
            authorized_at: c.authorized_at?,
            counters: c.counters,
            limits: c.limits.clone(),
            class_hex: c.class.iter().map(|b| to_hex(b)).collect(),
            cui_hex: c.cui.as_deref().map(to_hex),
            saved_at: now,
            stopped,
            throttled: c.throttled,
            next_interim: c.next_interim,
        })
    }

    /// What is left of the session's limits after what it already used:
    /// the remaining Session-Timeout and volume. `None` when time or volume
    /// is used up (the session must not come back).
    pub fn remaining_limits(&self, quota_ends: bool) -> Option<SessionLimits> {
        let mut l = self.limits.clone();
        let used_secs = self.saved_at.saturating_sub(self.authorized_at) / 1000;
        if let Some(t) = l.session_timeout {
            let left = u64::from(t).checked_sub(used_secs).filter(|&s| s > 0)?;
            l.session_timeout = Some(left as u32);
        }
        let k = &self.counters;
        let mut used_up = false;
        let mut left = |limit: &mut Option<u64>, used: u64| {
            if let Some(m) = *limit {
                let rest = m.saturating_sub(used);
                used_up |= rest == 0;
                *limit = Some(rest.max(1));
            }
        };
        left(&mut l.max_input_octets, k.octets_in);
        left(&mut l.max_output_octets, k.octets_out);
        left(&mut l.max_total_octets, k.octets_in + k.octets_out);
        if used_up && quota_ends {
            return None;
        }
        Some(l)
    }

    /// True when an Interim-Update (or the Start) of this session went out
    /// less than a second before `now`: a resume then sends none, as it
    /// would repeat that record (same second, same counters).
    pub fn reported_just_before(&self, now: UnixMillis) -> bool {
        match (self.next_interim, self.limits.interim_interval) {
            (Some(next), Some(every)) => now < next.saturating_sub(u64::from(every) * 1000) + 1000,
            _ => false,
        }
    }

    /// The login to grant again after a restart.
    pub fn authorization(&self) -> Authorization {
        Authorization {
            user: self.user.clone(),
            limits: self.limits.clone(),
            class: self.class_hex.iter().filter_map(|h| from_hex(h)).collect(),
            cui: self.cui_hex.as_deref().and_then(from_hex),
        }
    }

    /// The session as ended by the restart (NAS-Reboot), with the counters
    /// last saved.
    pub fn ended(&self) -> EndedSession {
        let auth = self.authorization();
        EndedSession {
            mac: self.mac,
            ip: self.ip,
            session_id: self.session_id.clone(),
            user: self.user.clone(),
            started: self.authorized_at,
            ended: self.saved_at,
            counters: self.counters,
            limits: auth.limits,
            // Not saved: the session is taken as active until it was saved.
            last_active: self.saved_at,
            reason: EndReason::NasReboot,
            class: auth.class,
            cui: auth.cui,
            ipv6: Vec::new(),
        }
    }
}

/// Identifies sessions for a CoA or Disconnect request (RFC 5176): every
/// criterion given must match; none given matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionMatch {
    /// User-Name.
    pub user: Option<String>,
    /// Acct-Session-Id.
    pub session_id: Option<String>,
    /// Calling-Station-Id.
    pub mac: Option<MacAddr>,
    /// Framed-IP-Address.
    pub ip: Option<Ipv4Addr>,
}

impl SessionMatch {
    /// True when nothing identifies a session.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.session_id.is_none() && self.mac.is_none() && self.ip.is_none()
    }

    /// Does the authorized client `c` match?
    pub fn matches(&self, c: &Client) -> bool {
        c.state == SessionState::Authorized
            && self.matches_fields(c.user.as_deref(), &c.session_id, c.mac, c.ip)
    }

    /// Does a session with these identifiers match? (Every criterion given
    /// must; nothing given matches nothing.)
    pub fn matches_fields(
        &self,
        user: Option<&str>,
        session_id: &str,
        mac: MacAddr,
        ip: Ipv4Addr,
    ) -> bool {
        !self.is_empty()
            && self.user.as_deref().is_none_or(|u| user == Some(u))
            && self.session_id.as_deref().is_none_or(|id| id == session_id)
            && self.mac.is_none_or(|m| m == mac)
            && self.ip.is_none_or(|i| i == ip)
    }
}

/// What a successful login grants.
#[derive(Clone, Debug, Default)]
pub struct Authorization {
    /// Who logged in.
    pub user: Option<String>,
    /// The session's limits (already merged with defaults).
    pub limits: SessionLimits,
    /// RADIUS Class attributes to echo in accounting.
    pub class: Vec<Vec<u8>>,
    /// RADIUS Chargeable-User-Identity.
    pub cui: Option<Vec<u8>>,
}

/// The state of a running session, for an accounting Interim-Update.
#[derive(Clone, Debug, Serialize)]
pub struct SessionReport {
    /// Client hardware address.
    pub mac: MacAddr,
    /// Client address.
    pub ip: Ipv4Addr,
    /// Acct-Session-Id.
    pub session_id: String,
    /// Who is logged in.
    pub user: Option<String>,
    /// Authorized at.
    pub started: UnixMillis,
    /// Now.
    pub at: UnixMillis,
    /// Counters so far.
    pub counters: Counters,
    /// The session's limits.
    #[serde(skip)]
    pub limits: SessionLimits,
    /// Last packet seen from the client.
    #[serde(skip)]
    pub last_active: UnixMillis,
    /// RADIUS Class to echo.
    #[serde(skip)]
    pub class: Vec<Vec<u8>>,
    /// RADIUS CUI to echo.
    #[serde(skip)]
    pub cui: Option<Vec<u8>>,
    /// The client's IPv6 addresses in the prefix (most recently used
    /// first, bounded), filled in as the event leaves the engine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<core::net::Ipv6Addr>,
}

/// A session that just ended, with everything accounting needs.
#[derive(Clone, Debug, Serialize)]
pub struct EndedSession {
    /// Client hardware address.
    pub mac: MacAddr,
    /// Client address.
    pub ip: Ipv4Addr,
    /// Acct-Session-Id.
    pub session_id: String,
    /// Who was logged in.
    pub user: Option<String>,
    /// Authorized at.
    pub started: UnixMillis,
    /// Ended at.
    pub ended: UnixMillis,
    /// Final counters.
    pub counters: Counters,
    /// The session's limits.
    #[serde(skip)]
    pub limits: SessionLimits,
    /// Last packet seen from the client.
    #[serde(skip)]
    pub last_active: UnixMillis,
    /// Why.
    pub reason: EndReason,
    /// RADIUS Class to echo.
    #[serde(skip)]
    pub class: Vec<Vec<u8>>,
    /// RADIUS CUI to echo.
    #[serde(skip)]
    pub cui: Option<Vec<u8>>,
    /// The client's IPv6 addresses in the prefix (most recently used
    /// first, bounded), filled in as the event leaves the engine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<core::net::Ipv6Addr>,
}

/// Errors from table operations the control plane asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// No client with that MAC holds a lease.
    UnknownClient(MacAddr),
    /// The client is already logged in.
    AlreadyAuthorized(MacAddr),
    /// The client is not logged in.
    NotAuthorized(MacAddr),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::UnknownClient(m) => write!(f, "no client {m} holds a lease"),
            SessionError::AlreadyAuthorized(m) => write!(f, "client {m} is already authorized"),
            SessionError::NotAuthorized(m) => write!(f, "client {m} is not authorized"),
        }
    }
}

impl std::error::Error for SessionError {}

/// All clients, indexed by MAC and by IP.
#[derive(Default)]
pub struct SessionTable {
    slots: Vec<Option<Client>>,
    free: Vec<usize>,
    by_mac: HashMap<MacAddr, usize, FastBuildHasher>,
    by_ip: HashMap<Ipv4Addr, usize, FastBuildHasher>,
    next_id: u32,
}

impl SessionTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table whose session ids continue from `seed`. The shell
    /// seeds it from the clock and process id, so ids stay unique even when
    /// lassi restarts twice within a second.
    pub fn with_id_seed(seed: u32) -> Self {
        SessionTable {
            next_id: seed,
            ..Self::default()
        }
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    /// True when no client holds a lease.
    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    fn new_session_id(&mut self, now: UnixMillis) -> String {
        // CoovaChilli's shape: hex start time then a counter, unique across
        // restarts because the time part moves on.
        self.next_id = self.next_id.wrapping_add(1);
        format!("{:08x}{:08x}", now / 1000, self.next_id)
    }

    /// A lease was bound or renewed: create the client (unauthorized) or
    /// refresh it. A client whose address changed keeps its session but is
    /// re-indexed under the new address.
    pub fn lease_bound(
        &mut self,
        mac: MacAddr,
        ip: Ipv4Addr,
        expires: UnixMillis,
        now: UnixMillis,
    ) {
        if let Some(&i) = self.by_mac.get(&mac) {
            let c = self.slots[i].as_mut().expect("indexed slot is occupied");
            c.lease_expires = expires;
            if c.ip != ip {
                let old = c.ip;
                c.ip = ip;
                self.by_ip.remove(&old);
                self.by_ip.insert(ip, i);
            }
            return;
        }
        // An address held by someone else (a stale entry) is taken over: the
        // DHCP server is the authority on who owns an address.
        if let Some(&i) = self.by_ip.get(&ip) {
            let other = self.slots[i].as_ref().map(|c| c.mac);
            if let Some(other) = other {
                self.remove(other, EndReason::LeaseExpired, now);
            }
        }
        let session_id = self.new_session_id(now);
        let client = Client::leased(mac, ip, session_id, expires, now);
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(client);
                i
            }
            None => {
                self.slots.push(Some(client));
                self.slots.len() - 1
            }
        };
        self.by_mac.insert(mac, i);
        self.by_ip.insert(ip, i);
    }

    /// The client leaves the table (lease gone). Returns the ended session
    /// if it was authorized.
    pub fn remove(
        &mut self,
        mac: MacAddr,
        reason: EndReason,
        now: UnixMillis,
    ) -> Option<EndedSession> {
        let i = self.by_mac.remove(&mac)?;
        let c = self.slots[i].take().expect("indexed slot is occupied");
        self.free.push(i);
        if self.by_ip.get(&c.ip) == Some(&i) {
            self.by_ip.remove(&c.ip);
        }
        Self::ended(c, reason, now)
    }

    fn ended(c: Client, reason: EndReason, now: UnixMillis) -> Option<EndedSession> {
        let started = c.authorized_at?;
        Some(EndedSession {
            mac: c.mac,
            ip: c.ip,
            session_id: c.session_id,
            user: c.user,
            started,
            ended: now,
            counters: c.counters,
            limits: c.limits,
            last_active: c.last_active,
            reason,
            class: c.class,
            cui: c.cui,
            ipv6: Vec::new(),
        })
    }

    /// Log the client in.
    pub fn authorize(
        &mut self,
        mac: MacAddr,
        auth: Authorization,
        now: UnixMillis,
    ) -> Result<&Client, SessionError> {
        let c = self
            .by_mac_mut(mac)
            .ok_or(SessionError::UnknownClient(mac))?;
        if c.state == SessionState::Authorized {
            return Err(SessionError::AlreadyAuthorized(mac));
        }
        c.state = SessionState::Authorized;
        c.user = auth.user;
        c.authorized_at = Some(now);
        c.last_active = now;
        c.last_seen = now;
        c.counters = Counters::default();
        c.class = auth.class;
        c.cui = auth.cui;
        c.throttled = false;
        Self::apply_limits(c, auth.limits, now);
        Ok(c)
    }

    /// Continue a session saved by the previous lassi process: the same
    /// Acct-Session-Id, login time, counters and limits (so Session-Timeout
    /// and quotas count from the original login). The client must hold its
    /// lease again (restored from the lease file).
    pub fn resume(&mut self, r: &SessionRecord, now: UnixMillis) -> Result<&Client, SessionError> {
        let c = self
            .by_mac_mut(r.mac)
            .filter(|c| c.ip == r.ip)
            .ok_or(SessionError::UnknownClient(r.mac))?;
        if c.state == SessionState::Authorized {
            return Err(SessionError::AlreadyAuthorized(r.mac));
        }
        let auth = r.authorization();
        c.state = SessionState::Authorized;
        c.session_id = r.session_id.clone();
        c.user = auth.user;
        c.authorized_at = Some(r.authorized_at);
        // Idleness counts from the restart: the guest could not be seen
        // while lassi was away.
        c.last_active = now;
        c.last_seen = now;
        c.counters = r.counters;
        c.class = auth.class;
        c.cui = auth.cui;
        c.throttled = false;
        Self::apply_limits(c, auth.limits, now);
        Ok(c)
    }

    /// Change a running session's limits (CoA). Volume and time already used
    /// count against the new limits.
    pub fn set_limits(
        &mut self,
        mac: MacAddr,
        limits: SessionLimits,
        now: UnixMillis,
    ) -> Result<&Client, SessionError> {
        let c = self
            .by_mac_mut(mac)
            .ok_or(SessionError::UnknownClient(mac))?;
        if c.state != SessionState::Authorized {
            return Err(SessionError::NotAuthorized(mac));
        }
        c.throttled = false;
        Self::apply_limits(c, limits, now);
        Ok(c)
    }

    fn apply_limits(c: &mut Client, limits: SessionLimits, now: UnixMillis) {
        c.up = Shaper::new(limits.bandwidth_up_bps, now);
        c.down = Shaper::new(limits.bandwidth_down_bps, now);
        c.next_interim = limits
            .interim_interval
            .filter(|&s| s > 0)
            .map(|s| now + u64::from(s) * 1000);
        c.limits = limits;
    }

    /// Slow the session to the throttle rates (a quota was used up).
    pub fn throttle(&mut self, mac: MacAddr, up_bps: u64, down_bps: u64, now: UnixMillis) {
        if let Some(c) = self.by_mac_mut(mac) {
            c.throttle(up_bps, down_bps, now);
        }
    }

    /// Mutable access by MAC (housekeeping).
    pub fn by_mac_mut(&mut self, mac: MacAddr) -> Option<&mut Client> {
        let i = *self.by_mac.get(&mac)?;
        self.slots[i].as_mut()
    }

    /// Every client, mutably (housekeeping).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Client> {
        self.slots.iter_mut().flatten()
    }

    /// End the client's authorized session; it keeps its lease and goes back
    /// behind the portal with a fresh session id.
    pub fn deauthorize(
        &mut self,
        mac: MacAddr,
        reason: EndReason,
        now: UnixMillis,
    ) -> Result<EndedSession, SessionError> {
        let i = *self
            .by_mac
            .get(&mac)
            .ok_or(SessionError::UnknownClient(mac))?;
        let next_id = self.new_session_id(now);
        let c = self.slots[i].as_mut().expect("indexed slot is occupied");
        if c.state != SessionState::Authorized {
            return Err(SessionError::NotAuthorized(mac));
        }
        let snapshot = c.clone();
        c.state = SessionState::Unauthorized;
        c.user = None;
        c.authorized_at = None;
        c.counters = Counters::default();
        c.session_id = next_id;
        c.class.clear();
        c.cui = None;
        c.throttled = false;
        Self::apply_limits(c, SessionLimits::default(), now);
        Ok(Self::ended(snapshot, reason, now).expect("authorized client has a start time"))
    }

    /// Hot path: the client owning `ip`.
    #[inline]
    pub fn by_ip_mut(&mut self, ip: Ipv4Addr) -> Option<&mut Client> {
        let i = *self.by_ip.get(&ip)?;
        self.slots[i].as_mut()
    }

    /// The client owning `ip`.
    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Client> {
        let i = *self.by_ip.get(&ip)?;
        self.slots[i].as_ref()
    }

    /// The client with hardware address `mac`.
    pub fn by_mac(&self, mac: MacAddr) -> Option<&Client> {
        let i = *self.by_mac.get(&mac)?;
        self.slots[i].as_ref()
    }

    /// Every client, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.slots.iter().flatten()
    }

    /// MACs of every client (to end them all at shutdown).
    pub fn macs(&self) -> Vec<MacAddr> {
        self.by_mac.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, 0, n)
    }
    fn auth(user: Option<&str>) -> Authorization {
        Authorization {
            user: user.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn lifecycle_lease_authorize_count_logout() {
        let mut t = SessionTable::new();
        t.lease_bound(mac(1), ip(10), 5_000_000, 1_000_000);
        let c = t.by_mac(mac(1)).unwrap();
        assert_eq!(c.state, SessionState::Unauthorized);
        let first_id = c.session_id.clone();
        assert_eq!(first_id.len(), 16);

        assert!(t.deauthorize(mac(1), EndReason::UserRequest, 1).is_err());
        t.authorize(mac(1), auth(Some("alice")), 2_000_000).unwrap();
        assert_eq!(
            t.authorize(mac(1), auth(None), 2_000_001).unwrap_err(),
            SessionError::AlreadyAuthorized(mac(1))
        );
        {
            let c = t.by_ip_mut(ip(10)).unwrap();
            c.counters.octets_in += 1500;
            c.counters.packets_in += 1;
        }
        let ended = t
            .deauthorize(mac(1), EndReason::UserRequest, 3_000_000)
            .unwrap();
        assert_eq!(ended.counters.octets_in, 1500);
        assert_eq!(ended.user.as_deref(), Some("alice"));
        assert_eq!((ended.started, ended.ended), (2_000_000, 3_000_000));
        assert_eq!(ended.session_id, first_id);
        let c = t.by_mac(mac(1)).unwrap();
        assert_eq!(c.state, SessionState::Unauthorized);
        assert_eq!(c.counters, Counters::default());
        assert_ne!(c.session_id, first_id, "next session gets a new id");
    }

    #[test]
    fn removal_ends_authorized_sessions_only() {
        let mut t = SessionTable::new();
        t.lease_bound(mac(1), ip(10), 9, 1);
        t.lease_bound(mac(2), ip(11), 9, 1);
        t.authorize(mac(2), auth(None), 2).unwrap();
        assert!(t.remove(mac(1), EndReason::LeaseExpired, 3).is_none());
        let e = t.remove(mac(2), EndReason::LeaseReleased, 3).unwrap();
        assert_eq!(e.reason, EndReason::LeaseReleased);
        assert!(t.is_empty());
        assert!(t.by_ip(ip(10)).is_none() && t.by_ip(ip(11)).is_none());
        // Slots are reused.
        t.lease_bound(mac(3), ip(12), 9, 4);
        assert_eq!(t.slots.len(), 2);
    }

    #[test]
    fn address_change_and_takeover_keep_indices_consistent() {
        let mut t = SessionTable::new();
        t.lease_bound(mac(1), ip(10), 9, 1);
        t.lease_bound(mac(1), ip(20), 9, 2);
        assert!(t.by_ip(ip(10)).is_none());
        assert_eq!(t.by_ip(ip(20)).unwrap().mac, mac(1));
        // The DHCP server gave .20 to another MAC: the stale holder goes.
        t.lease_bound(mac(2), ip(20), 9, 3);
        assert!(t.by_mac(mac(1)).is_none());
        assert_eq!(t.by_ip(ip(20)).unwrap().mac, mac(2));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn session_records_round_trip() {
        let mut t = SessionTable::new();
        t.lease_bound(mac(1), ip(10), 9, 1);
        let a = Authorization {
            user: Some("carol".into()),
            limits: SessionLimits {
                idle_timeout: Some(60),
                ..Default::default()
            },
            class: vec![vec![0xde, 0xad], b"plan=gold".to_vec()],
            cui: Some(vec![1, 2, 3]),
        };
        t.authorize(mac(1), a, 2).unwrap();
        let rec = SessionRecord::of(t.by_mac(mac(1)).unwrap(), 5, false).unwrap();
        let text = serde_json::to_string(&rec).unwrap();
        let back: SessionRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, rec);
        let again = back.authorization();
        assert_eq!(again.class, vec![vec![0xde, 0xad], b"plan=gold".to_vec()]);
        assert_eq!(again.cui, Some(vec![1, 2, 3]));
        let ended = back.ended();
        assert_eq!(
            (ended.reason, ended.started, ended.ended),
            (EndReason::NasReboot, 2, 5)
        );
        assert!(SessionRecord::of(t.by_mac(mac(1)).unwrap(), 5, false).is_some());
        t.deauthorize(mac(1), EndReason::UserRequest, 6).unwrap();
        assert!(
            SessionRecord::of(t.by_mac(mac(1)).unwrap(), 7, false).is_none(),
            "not authorized"
        );
        assert_eq!(from_hex("0g"), None);
    }

    #[test]
    fn unknown_client_errors() {
        let mut t = SessionTable::new();
        assert_eq!(
            t.authorize(mac(9), auth(None), 0).unwrap_err(),
            SessionError::UnknownClient(mac(9))
        );
        assert!(t.remove(mac(9), EndReason::AdminReset, 0).is_none());
    }
}
