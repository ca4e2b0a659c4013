//! Requests built the CoovaChilli way, and replies decoded into the limits
//! lassi enforces.
//!
//! Access-Request (in this order): User-Name, User-Password or
//! CHAP-Challenge + CHAP-Password, Service-Type = Login-User (1),
//! Framed-IP-Address, NAS-Port-Type = Wireless-802.11 (19), NAS-Port,
//! NAS-Port-Id (`%08d` of NAS-Port, as CoovaChilli), Calling-Station-Id
//! (client MAC `AA-BB-CC-DD-EE-FF`), Called-Station-Id (configured, else the
//! NAS MAC dashed), NAS-IP-Address, NAS-Identifier, Acct-Session-Id,
//! WISPr-Location-ID/-Name when configured, State and
//! Chargeable-User-Identity when echoing a challenge/CUI. The engine adds
//! Message-Authenticator.
//!
//! Accounting-Request: Acct-Status-Type, User-Name, Acct-Session-Id, the
//! same NAS and station attributes, Acct-Authentic = RADIUS, Class and CUI
//! echoed, Event-Timestamp, Acct-Delay-Time, and on Interim/Stop
//! Acct-Session-Time, Acct-Input/Output-Octets/-Gigawords/-Packets, on Stop
//! Acct-Terminate-Cause.

use core::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::packet::{attr, AttrKey, Code, Packet, MAX_VALUE_LEN};
use crate::session::{Counters, EndReason, EndedSession};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// Service-Type Login-User.
pub const SERVICE_TYPE_LOGIN: u32 = 1;
/// NAS-Port-Type Wireless-802.11.
pub const NAS_PORT_TYPE_WIRELESS_80211: u32 = 19;
/// Acct-Authentic RADIUS.
pub const ACCT_AUTHENTIC_RADIUS: u32 = 1;

/// What lassi says about itself in every request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NasInfo {
    /// NAS-Identifier.
    pub nas_identifier: Option<String>,
    /// NAS-IP-Address.
    pub nas_ip: Option<Ipv4Addr>,
    /// Called-Station-Id as configured (wins over `nas_mac`).
    pub called_station_id: Option<String>,
    /// The LAN interface's MAC; Called-Station-Id is its dashed form when
    /// no explicit value is configured.
    pub nas_mac: Option<MacAddr>,
    /// WISPr-Location-ID.
    pub location_id: Option<String>,
    /// WISPr-Location-Name.
    pub location_name: Option<String>,
}

impl NasInfo {
    /// The Called-Station-Id to send, if any.
    pub fn called_station(&self) -> Option<String> {
        self.called_station_id
            .clone()
            .or_else(|| self.nas_mac.map(|m| m.to_dashed()))
    }

    fn push_nas(&self, p: &mut Packet) {
        if let Some(c) = self.called_station() {
            p.push(attr::CALLED_STATION_ID, c);
        }
        if let Some(ip) = self.nas_ip {
            p.push_ipv4(attr::NAS_IP_ADDRESS, ip);
        }
        if let Some(id) = &self.nas_identifier {
            p.push(attr::NAS_IDENTIFIER, id.as_str());
        }
    }

    fn push_location(&self, p: &mut Packet) {
        if let Some(l) = &self.location_id {
            p.push(attr::WISPR_LOCATION_ID, l.as_str());
        }
        if let Some(l) = &self.location_name {
            p.push(attr::WISPR_LOCATION_NAME, l.as_str());
        }
    }
}

/// How the user proves who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessCredentials {
    /// PAP: the clear-text password, hidden per server by the engine.
    Pap(Vec<u8>),
    /// CHAP: ident, the 16-byte response and the challenge it answers.
    /// From the portal's UAM CHAP logins CoovaChilli uses ident 0 and the
    /// derived challenge MD5(challenge ‖ uamsecret) as CHAP-Challenge.
    Chap {
        /// CHAP identifier (first byte of CHAP-Password).
        ident: u8,
        /// MD5(ident ‖ password ‖ challenge).
        response: [u8; 16],
        /// Sent as CHAP-Challenge.
        challenge: Vec<u8>,
    },
}

/// MAC authentication settings: clients whose MAC RADIUS accepts skip the
/// splash page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacAuthSettings {
    /// Appended to the dashed MAC in User-Name (CoovaChilli `macsuffix`).
    pub suffix: String,
    /// User-Password sent (CoovaChilli `macpasswd`, default "password").
    pub password: String,
}

impl Default for MacAuthSettings {
    fn default() -> Self {
        MacAuthSettings {
            suffix: String::new(),
            password: "password".into(),
        }
    }
}

/// Most Framed-IPv6-Address attributes in one Accounting-Request.
pub const MAX_FRAMED_IPV6: usize = 4;

/// A login to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRequest {
    /// User-Name.
    pub user_name: String,
    /// PAP or CHAP.
    pub credentials: AccessCredentials,
    /// Client MAC (Calling-Station-Id).
    pub mac: MacAddr,
    /// Client address (Framed-IP-Address).
    pub ip: Ipv4Addr,
    /// Acct-Session-Id the session will have.
    pub session_id: String,
    /// NAS-Port: a per-session number.
    pub nas_port: u32,
    /// State from an Access-Challenge, echoed.
    pub state: Option<Vec<u8>>,
    /// Chargeable-User-Identity to send (a single NUL asks for one, RFC 4372).
    pub cui: Option<Vec<u8>>,
}

impl AccessRequest {
    /// A PAP login.
    pub fn pap(
        user: &str,
        password: &[u8],
        mac: MacAddr,
        ip: Ipv4Addr,
        session_id: &str,
        nas_port: u32,
    ) -> AccessRequest {
        AccessRequest {
            user_name: user.to_string(),
            credentials: AccessCredentials::Pap(password.to_vec()),
            mac,
            ip,
            session_id: session_id.to_string(),
            nas_port,
            state: None,
            cui: None,
        }
    }

    /// MAC authentication: User-Name = `AA-BB-CC-DD-EE-FF` + suffix,
    /// User-Password = the configured password.
    pub fn mac_auth(
        settings: &MacAuthSettings,
        mac: MacAddr,
        ip: Ipv4Addr,
        session_id: &str,
        nas_port: u32,
    ) -> AccessRequest {
        AccessRequest {
            user_name: format!("{}{}", mac.to_dashed(), settings.suffix),
            credentials: AccessCredentials::Pap(settings.password.as_bytes().to_vec()),
            mac,
            ip,
            session_id: session_id.to_string(),
            nas_port,
            state: None,
            cui: None,
        }
    }

    /// The Access-Request packet (without Message-Authenticator, which
    /// the engine adds) and the clear-text password for PAP.
    pub fn to_packet(&self, nas: &NasInfo) -> (Packet, Option<Vec<u8>>) {
        let mut p = Packet::new(Code::AccessRequest, 0);
        p.push(attr::USER_NAME, self.user_name.as_str());
        let password = match &self.credentials {
            AccessCredentials::Pap(pw) => Some(pw.clone()),
            AccessCredentials::Chap {
                ident,
                response,
                challenge,
            } => {
                p.push(attr::CHAP_CHALLENGE, challenge.clone());
                let mut v = vec![*ident];
                v.extend_from_slice(response);
                p.push(attr::CHAP_PASSWORD, v);
                None
            }
        };
        p.push_u32(attr::SERVICE_TYPE, SERVICE_TYPE_LOGIN)
            .push_ipv4(attr::FRAMED_IP_ADDRESS, self.ip);
        push_port(&mut p, self.nas_port);
        p.push(attr::CALLING_STATION_ID, self.mac.to_dashed());
        nas.push_nas(&mut p);
        p.push(attr::ACCT_SESSION_ID, self.session_id.as_str());
        nas.push_location(&mut p);
        if let Some(s) = &self.state {
            p.push(attr::STATE, s.clone());
        }
        if let Some(c) = &self.cui {
            p.push(attr::CHARGEABLE_USER_IDENTITY, c.clone());
        }
        (p, password)
    }
}

fn push_port(p: &mut Packet, nas_port: u32) {
    p.push_u32(attr::NAS_PORT_TYPE, NAS_PORT_TYPE_WIRELESS_80211)
        .push_u32(attr::NAS_PORT, nas_port)
        .push(attr::NAS_PORT_ID, format!("{nas_port:08}"));
}

/// Acct-Status-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcctStatus {
    /// 1
    Start,
    /// 2
    Stop,
    /// 3
    InterimUpdate,
    /// 7
    AccountingOn,
    /// 8
    AccountingOff,
}

impl AcctStatus {
    /// The attribute value.
    pub fn value(self) -> u32 {
        match self {
            AcctStatus::Start => 1,
            AcctStatus::Stop => 2,
            AcctStatus::InterimUpdate => 3,
            AcctStatus::AccountingOn => 7,
            AcctStatus::AccountingOff => 8,
        }
    }
}

/// Acct-Terminate-Cause (RFC 2866 §5.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminateCause {
    /// 1: the guest logged out.
    UserRequest,
    /// 2: the client went away (lease gone or released).
    LostCarrier,
    /// 3
    LostService,
    /// 4: Idle-Timeout reached.
    IdleTimeout,
    /// 5: Session-Timeout (or quota/terminate time) reached.
    SessionTimeout,
    /// 6: an operator or a Disconnect-Request ended it.
    AdminReset,
    /// 7
    AdminReboot,
    /// 8
    PortError,
    /// 9
    NasError,
    /// 10
    NasRequest,
    /// 11: lassi shut down.
    NasReboot,
    /// 12
    PortUnneeded,
    /// 13
    PortPreempted,
    /// 14
    PortSuspended,
    /// 15
    ServiceUnavailable,
    /// 16
    Callback,
    /// 17
    UserError,
    /// 18
    HostRequest,
}

impl TerminateCause {
    /// The attribute value.
    pub fn value(self) -> u32 {
        self as u32 + 1
    }
}

impl From<EndReason> for TerminateCause {
    /// The cause CoovaChilli reports for the same event: a lost or released
    /// DHCP lease is Lost-Carrier.
    fn from(r: EndReason) -> TerminateCause {
        match r {
            EndReason::UserRequest => TerminateCause::UserRequest,
            EndReason::AdminReset => TerminateCause::AdminReset,
            EndReason::LeaseExpired | EndReason::LeaseReleased | EndReason::LeaseReclaimed => {
                TerminateCause::LostCarrier
            }
            EndReason::NasReboot => TerminateCause::NasReboot,
            EndReason::SessionTimeout => TerminateCause::SessionTimeout,
            EndReason::IdleTimeout => TerminateCause::IdleTimeout,
            EndReason::LostCarrier => TerminateCause::LostCarrier,
            // CoovaChilli reports a used-up volume as Session-Timeout, and
            // billing systems written for it expect that.
            EndReason::QuotaExceeded => TerminateCause::SessionTimeout,
        }
    }
}

/// One accounting record: what the spool stores and what becomes an
/// Accounting-Request. Counters are in lassi's NAS view ("input" = sent
/// by the client, RFC 2866); `swap_octets` at encoding flips them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcctRecord {
    /// Start, Stop, Interim-Update, Accounting-On/Off.
    pub status: AcctStatus,
    /// Acct-Session-Id (empty for Accounting-On/Off).
    pub session_id: String,
    /// User-Name.
    pub user_name: Option<String>,
    /// Client MAC.
    pub mac: Option<MacAddr>,
    /// Client address.
    pub ip: Option<Ipv4Addr>,
    /// NAS-Port.
    pub nas_port: Option<u32>,
    /// Seconds since authorization (Interim and Stop).
    pub session_time: Option<u32>,
    /// Octets/packets (Interim and Stop).
    pub octets_in: u64,
    /// Octets delivered to the client.
    pub octets_out: u64,
    /// Packets sent by the client.
    pub packets_in: u64,
    /// Packets delivered to the client.
    pub packets_out: u64,
    /// Acct-Terminate-Cause (Stop).
    pub terminate_cause: Option<TerminateCause>,
    /// Class values from the Access-Accept, echoed.
    pub class: Vec<Vec<u8>>,
    /// Chargeable-User-Identity from the Access-Accept, echoed.
    pub cui: Option<Vec<u8>>,
    /// When the event happened (Event-Timestamp; Acct-Delay-Time counts
    /// The client's IPv6 addresses (Framed-IPv6-Address, RFC 6911).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<Ipv6Addr>,
    /// from here at every send).
    pub created: UnixMillis,
}

/// What accounting needs to know about a session besides its counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcctSession {
    /// Acct-Session-Id.
    pub session_id: String,
    /// User-Name.
    pub user_name: Option<String>,
    /// Client MAC.
    pub mac: Option<MacAddr>,
    /// Client address.
    pub ip: Option<Ipv4Addr>,
    /// NAS-Port.
    pub nas_port: Option<u32>,
    /// When it was authorized.
    pub started: UnixMillis,
    /// Class from the Access-Accept.
    pub class: Vec<Vec<u8>>,
    /// Chargeable-User-Identity from the Access-Accept.
    pub cui: Option<Vec<u8>>,
    /// The client's IPv6 addresses (Framed-IPv6-Address, RFC 6911).
    pub ipv6: Vec<Ipv6Addr>,
}

impl AcctRecord {
    fn from_session(s: &AcctSession, status: AcctStatus, now: UnixMillis) -> AcctRecord {
        AcctRecord {
            status,
            session_id: s.session_id.clone(),
            user_name: s.user_name.clone(),
            mac: s.mac,
            ip: s.ip,
            nas_port: s.nas_port,
            session_time: None,
            octets_in: 0,
            octets_out: 0,
            packets_in: 0,
            packets_out: 0,
            terminate_cause: None,
            class: s.class.clone(),
            cui: s.cui.clone(),
            ipv6: s.ipv6.clone(),
            created: now,
        }
    }

    /// Accounting Start at authorization.
    pub fn start(s: &AcctSession, now: UnixMillis) -> AcctRecord {
        Self::from_session(s, AcctStatus::Start, now)
    }

    /// Interim-Update with the counters so far.
    pub fn interim(s: &AcctSession, c: &Counters, now: UnixMillis) -> AcctRecord {
        let mut r = Self::from_session(s, AcctStatus::InterimUpdate, now);
        r.set_counters(c, now.saturating_sub(s.started));
        r
    }

    /// Stop with the final counters and the cause.
    pub fn stop(
        s: &AcctSession,
        c: &Counters,
        cause: TerminateCause,
        now: UnixMillis,
    ) -> AcctRecord {
        let mut r = Self::from_session(s, AcctStatus::Stop, now);
        r.set_counters(c, now.saturating_sub(s.started));
        r.terminate_cause = Some(cause);
        r
    }

    /// Stop for a session the table reports ended (`class`/`cui` from its
    /// Access-Accept, `nas_port` as used at login).
    pub fn stop_ended(
        e: &EndedSession,
        nas_port: Option<u32>,
        class: Vec<Vec<u8>>,
        cui: Option<Vec<u8>>,
    ) -> AcctRecord {
        let s = AcctSession {
            session_id: e.session_id.clone(),
            user_name: e.user.clone(),
            mac: Some(e.mac),
            ip: Some(e.ip),
            nas_port,
            started: e.started,
            class,
            cui,
            ipv6: e.ipv6.clone(),
        };
        Self::stop(&s, &e.counters, e.reason.into(), e.ended)
    }

    /// Accounting-On (lassi starts) or -Off (clean shutdown).
    pub fn nas(status: AcctStatus, now: UnixMillis) -> AcctRecord {
        Self::from_session(&AcctSession::default(), status, now)
    }

    fn set_counters(&mut self, c: &Counters, elapsed_ms: u64) {
        self.session_time = Some((elapsed_ms / 1000).min(u32::MAX as u64) as u32);
        self.octets_in = c.octets_in;
        self.octets_out = c.octets_out;
        self.packets_in = c.packets_in;
        self.packets_out = c.packets_out;
    }

    /// True for Accounting-On/Off, which concern the whole NAS.
    pub fn is_nas_wide(&self) -> bool {
        matches!(
            self.status,
            AcctStatus::AccountingOn | AcctStatus::AccountingOff
        )
    }

    /// The Accounting-Request as sent at `now` (Acct-Delay-Time = whole
    /// seconds since `created`). With `swap_octets` input and output are
    /// exchanged (CoovaChilli's client view point).
    pub fn to_packet(&self, nas: &NasInfo, swap_octets: bool, now: UnixMillis) -> Packet {
        let mut p = Packet::new(Code::AccountingRequest, 0);
        p.push_u32(attr::ACCT_STATUS_TYPE, self.status.value());
        if let Some(u) = &self.user_name {
            p.push(attr::USER_NAME, u.as_str());
        }
        if !self.is_nas_wide() {
            p.push(attr::ACCT_SESSION_ID, self.session_id.as_str());
        }
        if let Some(ip) = self.ip {
            p.push_ipv4(attr::FRAMED_IP_ADDRESS, ip);
        }
        for a in self.ipv6.iter().take(MAX_FRAMED_IPV6) {
            p.push(attr::FRAMED_IPV6_ADDRESS, a.octets().to_vec());
        }
        if let Some(port) = self.nas_port {
            push_port(&mut p, port);
        }
        if let Some(mac) = self.mac {
            p.push(attr::CALLING_STATION_ID, mac.to_dashed());
        }
        nas.push_nas(&mut p);
        nas.push_location(&mut p);
        if !self.is_nas_wide() {
            p.push_u32(attr::ACCT_AUTHENTIC, ACCT_AUTHENTIC_RADIUS);
        }
        for c in &self.class {
            p.push(attr::CLASS, c.clone());
        }
        if let Some(c) = &self.cui {
            p.push(attr::CHARGEABLE_USER_IDENTITY, c.clone());
        }
        if let Some(t) = self.session_time {
            let (oin, oout, pin, pout) = if swap_octets {
                (
                    self.octets_out,
                    self.octets_in,
                    self.packets_out,
                    self.packets_in,
                )
            } else {
                (
                    self.octets_in,
                    self.octets_out,
                    self.packets_in,
                    self.packets_out,
                )
            };
            p.push_u32(attr::ACCT_SESSION_TIME, t)
                .push_u32(attr::ACCT_INPUT_OCTETS, oin as u32)
                .push_u32(attr::ACCT_INPUT_GIGAWORDS, (oin >> 32) as u32)
                .push_u32(attr::ACCT_OUTPUT_OCTETS, oout as u32)
                .push_u32(attr::ACCT_OUTPUT_GIGAWORDS, (oout >> 32) as u32)
                .push_u32(attr::ACCT_INPUT_PACKETS, pin.min(u32::MAX as u64) as u32)
                .push_u32(attr::ACCT_OUTPUT_PACKETS, pout.min(u32::MAX as u64) as u32);
        }
        if let Some(c) = self.terminate_cause {
            p.push_u32(attr::ACCT_TERMINATE_CAUSE, c.value());
        }
        p.push_u32(
            attr::EVENT_TIMESTAMP,
            (self.created / 1000).min(u32::MAX as u64) as u32,
        );
        let delay = (now.saturating_sub(self.created) / 1000).min(u32::MAX as u64) as u32;
        p.push_u32(attr::ACCT_DELAY_TIME, delay);
        p
    }
}

/// What an Access-Accept (or a CoA-Request) asks lassi to enforce.
///
/// Octet quotas combine the value and its Gigawords (`value +
/// (gigawords << 32)`); they are in NAS view ("input" = sent by the client)
/// after the optional CoovaChilli view-point swap. Bandwidths are in bit/s:
/// WISPr-Bandwidth-Max-Up/Down (bit/s) win over
/// ChilliSpot-Bandwidth-Max-Up/Down (kbit/s, multiplied by 1000) when both
/// are present. Filter-Id is the first one, kept only when it is
/// non-empty UTF-8 text of at most 253 bytes (anything else is dropped,
/// never a reason to refuse the login).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Session-Timeout, seconds.
    pub session_timeout: Option<u32>,
    /// Idle-Timeout, seconds.
    pub idle_timeout: Option<u32>,
    /// Acct-Interim-Interval, seconds.
    pub interim_interval: Option<u32>,
    /// Upload limit (client → network), bit/s.
    pub bandwidth_max_up_bps: Option<u64>,
    /// Download limit (network → client), bit/s.
    pub bandwidth_max_down_bps: Option<u64>,
    /// Octets the client may send.
    pub max_input_octets: Option<u64>,
    /// Octets the client may receive.
    pub max_output_octets: Option<u64>,
    /// Octets in both directions together.
    pub max_total_octets: Option<u64>,
    /// Class values, to echo in accounting.
    pub class: Vec<Vec<u8>>,
    /// State.
    pub state: Option<Vec<u8>>,
    /// Chargeable-User-Identity, to echo in accounting.
    pub cui: Option<Vec<u8>>,
    /// Reply-Message (several are joined with newlines).
    pub reply_message: Option<String>,
    /// WISPr-Redirection-URL: where to send the browser after login.
    pub redirection_url: Option<String>,
    /// WISPr-Session-Terminate-Time as sent (ISO 8601).
    pub session_terminate_time: Option<String>,
    /// The same as Unix milliseconds, when it parses (no offset = UTC).
    pub session_terminate_at: Option<UnixMillis>,
    /// Filter-Id (the first), for the connection scripts.
    pub filter_id: Option<String>,
}

/// The first Filter-Id as text; dropped when it is not valid UTF-8, empty,
/// or longer than an attribute can be.
fn filter_id(p: &Packet) -> Option<String> {
    let v = p.get(attr::FILTER_ID)?;
    if v.is_empty() || v.len() > MAX_VALUE_LEN {
        return None;
    }
    core::str::from_utf8(v).ok().map(str::to_owned)
}

fn octets64(p: &Packet, value: AttrKey, giga: AttrKey) -> Option<u64> {
    let v = p.get_u32(value);
    let g = p.get_u32(giga);
    if v.is_none() && g.is_none() {
        return None;
    }
    Some(v.unwrap_or(0) as u64 + ((g.unwrap_or(0) as u64) << 32))
}

impl ReplyLimits {
    /// Decodes the attributes lassi honours from `p`. With `swap_octets`
    /// (CoovaChilli client view point) input and output quotas are
    /// exchanged so the result is in NAS view.
    pub fn from_packet(p: &Packet, swap_octets: bool) -> ReplyLimits {
        let bw = |wispr: AttrKey, chilli: AttrKey| {
            p.get_u32(wispr)
                .map(u64::from)
                .or_else(|| p.get_u32(chilli).map(|k| k as u64 * 1000))
        };
        let mut input = octets64(
            p,
            attr::CHILLI_MAX_INPUT_OCTETS,
            attr::CHILLI_MAX_INPUT_GIGAWORDS,
        );
        let mut output = octets64(
            p,
            attr::CHILLI_MAX_OUTPUT_OCTETS,
            attr::CHILLI_MAX_OUTPUT_GIGAWORDS,
        );
        if swap_octets {
            std::mem::swap(&mut input, &mut output);
        }
        let messages: Vec<String> = p
            .get_all(attr::REPLY_MESSAGE)
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        let terminate = p.get_string(attr::WISPR_SESSION_TERMINATE_TIME);
        ReplyLimits {
            session_timeout: p.get_u32(attr::SESSION_TIMEOUT),
            idle_timeout: p.get_u32(attr::IDLE_TIMEOUT),
            interim_interval: p.get_u32(attr::ACCT_INTERIM_INTERVAL),
            bandwidth_max_up_bps: bw(attr::WISPR_BANDWIDTH_MAX_UP, attr::CHILLI_BANDWIDTH_MAX_UP),
            bandwidth_max_down_bps: bw(
                attr::WISPR_BANDWIDTH_MAX_DOWN,
                attr::CHILLI_BANDWIDTH_MAX_DOWN,
            ),
            max_input_octets: input,
            max_output_octets: output,
            max_total_octets: octets64(
                p,
                attr::CHILLI_MAX_TOTAL_OCTETS,
                attr::CHILLI_MAX_TOTAL_GIGAWORDS,
            ),
            class: p.get_all(attr::CLASS).map(<[u8]>::to_vec).collect(),
            state: p.get(attr::STATE).map(<[u8]>::to_vec),
            cui: p.get(attr::CHARGEABLE_USER_IDENTITY).map(<[u8]>::to_vec),
            reply_message: (!messages.is_empty()).then(|| messages.join("\n")),
            redirection_url: p.get_string(attr::WISPR_REDIRECTION_URL),
            session_terminate_at: terminate.as_deref().and_then(parse_iso8601),
            session_terminate_time: terminate,
            filter_id: filter_id(p),
        }
    }

    /// True when nothing is set (a CoA without changes).
    pub fn is_empty(&self) -> bool {
        *self == ReplyLimits::default()
    }
}

/// The answer to a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessAnswer {
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

impl AccessAnswer {
    /// What a server's validated response to an Access-Request means.
    pub fn from_response(p: &Packet, swap_octets: bool) -> AccessAnswer {
        match p.code {
            Code::AccessAccept => {
                AccessAnswer::Accept(Box::new(ReplyLimits::from_packet(p, swap_octets)))
            }
            _ => AccessAnswer::Reject {
                reply_message: p.get_string(attr::REPLY_MESSAGE),
            },
        }
    }
}

/// Parses `YYYY-MM-DDThh:mm:ss` with an optional `Z` or `±hh:mm` / `±hhmm`
/// offset (none = UTC) into Unix milliseconds.
pub fn parse_iso8601(s: &str) -> Option<UnixMillis> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let rest = &s[19..];
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: i64 = digits[..2].parse().ok()?;
            let om: i64 = digits[2..].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (H. Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nas() -> NasInfo {
        NasInfo {
            nas_identifier: Some("hotspot-1".into()),
            nas_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            called_station_id: None,
            nas_mac: Some("02:00:00:00:00:01".parse().unwrap()),
            location_id: Some("isocc=fi,cc=358,ac=9,network=lassi".into()),
            location_name: Some("Cafe".into()),
        }
    }

    #[test]
    fn access_request_has_coovachilli_attributes() {
        let r = AccessRequest::pap(
            "bob",
            b"pw",
            "aa:bb:cc:dd:ee:0f".parse().unwrap(),
            Ipv4Addr::new(10, 1, 0, 23),
            "5f3a0001",
            7,
        );
        let (p, pw) = r.to_packet(&nas());
        assert_eq!(pw.as_deref(), Some(&b"pw"[..]));
        assert_eq!(p.get_string(attr::USER_NAME).unwrap(), "bob");
        assert_eq!(p.get_u32(attr::SERVICE_TYPE), Some(1));
        assert_eq!(p.get_u32(attr::NAS_PORT_TYPE), Some(19));
        assert_eq!(p.get_u32(attr::NAS_PORT), Some(7));
        assert_eq!(p.get_string(attr::NAS_PORT_ID).unwrap(), "00000007");
        assert_eq!(
            p.get_string(attr::CALLING_STATION_ID).unwrap(),
            "AA-BB-CC-DD-EE-0F"
        );
        assert_eq!(
            p.get_string(attr::CALLED_STATION_ID).unwrap(),
            "02-00-00-00-00-01"
        );
        assert_eq!(
            p.get_ipv4(attr::FRAMED_IP_ADDRESS),
            Some(Ipv4Addr::new(10, 1, 0, 23))
        );
        assert_eq!(
            p.get_ipv4(attr::NAS_IP_ADDRESS),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(p.get_string(attr::NAS_IDENTIFIER).unwrap(), "hotspot-1");
        assert_eq!(p.get_string(attr::ACCT_SESSION_ID).unwrap(), "5f3a0001");
        assert_eq!(p.get_string(attr::WISPR_LOCATION_NAME).unwrap(), "Cafe");
        assert!(p.get(attr::USER_PASSWORD).is_none(), "the engine hides it");
    }

    #[test]
    fn mac_auth_and_chap() {
        let m = MacAuthSettings {
            suffix: "@mac".into(),
            password: "macpw".into(),
        };
        let r = AccessRequest::mac_auth(
            &m,
            "02:00:0a:01:00:17".parse().unwrap(),
            Ipv4Addr::new(10, 1, 0, 23),
            "s1",
            1,
        );
        assert_eq!(r.user_name, "02-00-0A-01-00-17@mac");
        assert_eq!(r.credentials, AccessCredentials::Pap(b"macpw".to_vec()));
        let mut c = r.clone();
        c.credentials = AccessCredentials::Chap {
            ident: 0,
            response: [5; 16],
            challenge: vec![9; 16],
        };
        let (p, pw) = c.to_packet(&NasInfo::default());
        assert!(pw.is_none());
        assert_eq!(p.get(attr::CHAP_PASSWORD).unwrap()[0], 0);
        assert_eq!(p.get(attr::CHAP_PASSWORD).unwrap().len(), 17);
        assert_eq!(p.get(attr::CHAP_CHALLENGE).unwrap(), &[9; 16]);
        assert!(p.get(attr::CALLED_STATION_ID).is_none());
    }

    #[test]
    fn accounting_stop_with_gigawords_swap_and_delay() {
        let s = AcctSession {
            ipv6: vec![],
            session_id: "abc".into(),
            user_name: Some("bob".into()),
            mac: Some("02:00:0a:01:00:17".parse().unwrap()),
            ip: Some(Ipv4Addr::new(10, 1, 0, 23)),
            nas_port: Some(3),
            started: 1_000_000,
            class: vec![b"c1".to_vec(), b"c2".to_vec()],
            cui: None,
        };
        let c = Counters {
            octets_in: (5u64 << 32) + 123,
            octets_out: 77,
            packets_in: 10,
            packets_out: 20,
        };
        let r = AcctRecord::stop(&s, &c, TerminateCause::IdleTimeout, 1_061_500);
        let p = r.to_packet(&nas(), false, 1_064_900);
        assert_eq!(p.get_u32(attr::ACCT_STATUS_TYPE), Some(2));
        assert_eq!(p.get_u32(attr::ACCT_SESSION_TIME), Some(61));
        assert_eq!(p.get_u32(attr::ACCT_INPUT_OCTETS), Some(123));
        assert_eq!(p.get_u32(attr::ACCT_INPUT_GIGAWORDS), Some(5));
        assert_eq!(p.get_u32(attr::ACCT_OUTPUT_OCTETS), Some(77));
        assert_eq!(p.get_u32(attr::ACCT_INPUT_PACKETS), Some(10));
        assert_eq!(p.get_u32(attr::ACCT_TERMINATE_CAUSE), Some(4));
        assert_eq!(p.get_u32(attr::ACCT_DELAY_TIME), Some(3));
        assert_eq!(p.get_all(attr::CLASS).count(), 2);
        let q = r.to_packet(&nas(), true, 1_061_500);
        assert_eq!(q.get_u32(attr::ACCT_INPUT_OCTETS), Some(77));
        assert_eq!(q.get_u32(attr::ACCT_OUTPUT_GIGAWORDS), Some(5));
        assert_eq!(q.get_u32(attr::ACCT_OUTPUT_PACKETS), Some(10));
        assert_eq!(q.get_u32(attr::ACCT_DELAY_TIME), Some(0));
        // Accounting-On carries no session attributes.
        let on = AcctRecord::nas(AcctStatus::AccountingOn, 5000).to_packet(&nas(), false, 5000);
        assert_eq!(on.get_u32(attr::ACCT_STATUS_TYPE), Some(7));
        assert!(on.get(attr::ACCT_SESSION_ID).is_none());
        assert!(on.get(attr::ACCT_INPUT_OCTETS).is_none());
    }

    #[test]
    fn accounting_carries_framed_ipv6_addresses_bounded() {
        let addrs: Vec<Ipv6Addr> = (1..=6u16)
            .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i))
            .collect();
        let s = AcctSession {
            session_id: "abc".into(),
            ip: Some(Ipv4Addr::new(10, 1, 0, 23)),
            ipv6: addrs.clone(),
            ..AcctSession::default()
        };
        for r in [
            AcctRecord::start(&s, 1000),
            AcctRecord::interim(&s, &Counters::default(), 2000),
            AcctRecord::stop(&s, &Counters::default(), TerminateCause::UserRequest, 3000),
        ] {
            let p = r.to_packet(&nas(), false, 3000);
            let got: Vec<&[u8]> = p.get_all(attr::FRAMED_IPV6_ADDRESS).collect();
            assert_eq!(got.len(), MAX_FRAMED_IPV6);
            for (g, a) in got.iter().zip(&addrs) {
                assert_eq!(*g, &a.octets()[..]);
            }
            // Byte-exact on the wire: type 168, length 18, the address.
            let bytes = p.encode().unwrap();
            let at = (bytes.windows(18)).position(|w| w[0] == 168 && w[1] == 18);
            assert_eq!(
                &bytes[at.unwrap() + 2..at.unwrap() + 18],
                &addrs[0].octets()
            );
        }
        // A record spooled by an older lassi (no ipv6 field) still loads.
        let mut r = AcctRecord::start(&s, 1000);
        r.ipv6.clear();
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("ipv6"));
        assert_eq!(serde_json::from_str::<AcctRecord>(&json).unwrap(), r);
        let none = AcctRecord::start(&AcctSession::default(), 1).to_packet(&nas(), false, 1);
        assert!(none.get(attr::FRAMED_IPV6_ADDRESS).is_none());
    }

    #[test]
    fn end_reasons_map_to_terminate_causes() {
        assert_eq!(TerminateCause::from(EndReason::UserRequest).value(), 1);
        assert_eq!(TerminateCause::from(EndReason::LeaseExpired).value(), 2);
        assert_eq!(TerminateCause::from(EndReason::LeaseReleased).value(), 2);
        assert_eq!(TerminateCause::from(EndReason::AdminReset).value(), 6);
        assert_eq!(TerminateCause::from(EndReason::NasReboot).value(), 11);
        assert_eq!(TerminateCause::IdleTimeout.value(), 4);
        assert_eq!(TerminateCause::SessionTimeout.value(), 5);
        assert_eq!(TerminateCause::HostRequest.value(), 18);
    }

    #[test]
    fn reply_limits_decode() {
        let mut p = Packet::new(Code::AccessAccept, 1);
        p.push_u32(attr::SESSION_TIMEOUT, 3600)
            .push_u32(attr::IDLE_TIMEOUT, 600)
            .push_u32(attr::ACCT_INTERIM_INTERVAL, 300)
            .push_u32(attr::CHILLI_BANDWIDTH_MAX_UP, 512)
            .push_u32(attr::CHILLI_BANDWIDTH_MAX_DOWN, 1024)
            .push_u32(attr::WISPR_BANDWIDTH_MAX_DOWN, 2_000_000)
            .push_u32(attr::CHILLI_MAX_INPUT_OCTETS, 100)
            .push_u32(attr::CHILLI_MAX_TOTAL_GIGAWORDS, 2)
            .push_u32(attr::CHILLI_MAX_OUTPUT_GIGAWORDS, 1)
            .push(attr::CLASS, b"a".to_vec())
            .push(attr::CLASS, b"b".to_vec())
            .push(attr::REPLY_MESSAGE, "Welcome")
            .push(attr::WISPR_REDIRECTION_URL, "http://example.com/")
            .push(
                attr::WISPR_SESSION_TERMINATE_TIME,
                "2025-01-31T23:59:59+01:00",
            );
        let l = ReplyLimits::from_packet(&p, false);
        assert_eq!(l.session_timeout, Some(3600));
        assert_eq!(l.idle_timeout, Some(600));
        assert_eq!(l.interim_interval, Some(300));
        assert_eq!(l.bandwidth_max_up_bps, Some(512_000));
        assert_eq!(l.bandwidth_max_down_bps, Some(2_000_000), "WISPr wins");
        assert_eq!(l.max_input_octets, Some(100));
        assert_eq!(l.max_output_octets, Some(1 << 32));
        assert_eq!(l.max_total_octets, Some(2 << 32));
        assert_eq!(l.class, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(l.reply_message.as_deref(), Some("Welcome"));
        assert_eq!(l.session_terminate_at, Some(1_738_364_399_000));
        let s = ReplyLimits::from_packet(&p, true);
        assert_eq!(s.max_input_octets, Some(1 << 32));
        assert_eq!(s.max_output_octets, Some(100));
        assert!(ReplyLimits::from_packet(&Packet::new(Code::AccessAccept, 1), false).is_empty());
    }

    #[test]
    fn filter_id_is_the_first_one_when_it_is_text() {
        let with = |values: &[&[u8]]| {
            let mut p = Packet::new(Code::AccessAccept, 1);
            p.push_u32(attr::SESSION_TIMEOUT, 60);
            for v in values {
                p.push(attr::FILTER_ID, v.to_vec());
            }
            // Through the wire, as a server's reply arrives.
            let p = Packet::decode(&p.encode().unwrap()).unwrap();
            ReplyLimits::from_packet(&p, false)
        };
        assert_eq!(with(&[]).filter_id, None, "absent");
        let l = with(&[b"std.user", b"second"]);
        assert_eq!(l.filter_id.as_deref(), Some("std.user"), "the first one");
        assert_eq!(l.session_timeout, Some(60));
        assert_eq!(
            with(&["caf\u{e9}-gold".as_bytes()]).filter_id.as_deref(),
            Some("caf\u{e9}-gold")
        );
        // Invalid UTF-8: the attribute is dropped, the rest of the reply
        // (and the login) stands.
        let bad = with(&[b"gold\xff\xfe", b"std.user"]);
        assert_eq!(bad.filter_id, None);
        assert_eq!(bad.session_timeout, Some(60));
        let longest = "f".repeat(MAX_VALUE_LEN);
        assert_eq!(
            with(&[longest.as_bytes()]).filter_id.as_deref(),
            Some(longest.as_str())
        );
        // Built in memory (never decoded), an oversized value is dropped.
        let mut p = Packet::new(Code::AccessAccept, 1);
        p.push(attr::FILTER_ID, vec![b'f'; MAX_VALUE_LEN + 1]);
        assert_eq!(ReplyLimits::from_packet(&p, false).filter_id, None);
        // An Access-Accept carries it to the login's answer.
        let AccessAnswer::Accept(l) = AccessAnswer::from_response(
            Packet::new(Code::AccessAccept, 1).push(attr::FILTER_ID, "std.user"),
            false,
        ) else {
            panic!("not an accept")
        };
        assert_eq!(l.filter_id.as_deref(), Some("std.user"));
    }

    #[test]
    fn access_answers_from_responses() {
        let mut accept = Packet::new(Code::AccessAccept, 1);
        accept.push_u32(attr::SESSION_TIMEOUT, 60);
        let AccessAnswer::Accept(l) = AccessAnswer::from_response(&accept, false) else {
            panic!("not an accept")
        };
        assert_eq!(l.session_timeout, Some(60));
        // A challenge cannot be relayed by a captive portal: a reject.
        let mut challenge = Packet::new(Code::AccessChallenge, 1);
        challenge.push(attr::REPLY_MESSAGE, "more?");
        assert_eq!(
            AccessAnswer::from_response(&challenge, false),
            AccessAnswer::Reject {
                reply_message: Some("more?".into())
            }
        );
    }

    #[test]
    fn iso8601() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601("2000-03-01T00:00:00"), Some(951_868_800_000));
        assert_eq!(
            parse_iso8601("2000-03-01T01:00:00+0100"),
            Some(951_868_800_000)
        );
        assert_eq!(parse_iso8601("2000-13-01T00:00:00"), None);
        assert_eq!(parse_iso8601("garbage"), None);
        assert_eq!(parse_iso8601("2000-03-01T00:00:00+01"), None);
    }
}
