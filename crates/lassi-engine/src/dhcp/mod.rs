//! DHCPv4 server engine (RFC 2131/2132, option 114 of RFC 8910).
//!
//! I/O-free like the rest of the engine: [`DhcpServer::handle`] takes the
//! UDP payload of a client's message, the Ethernet source MAC and the current
//! time, and returns the encoded reply with its addressing plus a
//! [`LeaseEvent`] for the session layer. The shell wraps the reply in
//! UDP/IPv4/Ethernet (from `server_ip:67`), calls [`DhcpServer::expire`] when
//! [`DhcpServer::next_expiry`] is due, and persists [`DhcpServer::records`].
//!
//! # Address state
//!
//! Every address the server knows about is in one *slot*, owned by one MAC:
//! `Offered` (reserved for `offer_hold_secs`), `Bound` (leased), or `Free`
//! (lease ended, but remembered as that client's address until another
//! client needs it). Declined addresses are quarantined for
//! [`DECLINE_QUARANTINE_SECS`]. A MAC has at most one slot and an address at
//! most one owner, so every table is bounded by the pool size plus the static
//! leases, whatever a flood of DISCOVERs from random MACs does. When no fresh
//! address is left, a DISCOVER reclaims the oldest remembered address, then
//! the lease of the guest (a client that never logged in) silent longest,
//! once silent for [`RECLAIM_MIN_SILENT_SECS`]. A pending offer is never
//! taken for another client while it is held, a logged-in client's lease
//! and static addresses never: so a flood of fake clients that go quiet
//! after DORA loses its addresses to an honest newcomer that keeps talking.
//! [`Clients`] tells the server who is logged in and when each was last
//! heard from (the engine answers from its session table).
//!
//! # Floods
//!
//! New clients (MACs the server holds nothing for) are rate-limited once
//! half the pool is taken: gateway-wide, and per *kind* of client, the
//! fingerprint (`msg::Request::fingerprint`) of its message (which options,
//! in which order), since a flood tool rotating MACs keeps its kind while an
//! honest newcomer usually has another. Each kind may also hold at most
//! `pool / 8` pending offers: a DISCOVER flood recycles its own offers
//! instead of filling the pool with them.
//!
//! Clients are identified by `chaddr`, which must equal the Ethernet source
//! (the gateway binds IP to MAC). The server is authoritative for its
//! network: a REQUEST for an address that is not the client's and not free is
//! NAKed. Relayed messages (`giaddr != 0`) are out of scope and dropped.

mod msg;
#[cfg(test)]
mod tests;

use core::net::Ipv4Addr;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::wire::dhcpv4::{DhcpOption, DhcpOptions, MessageType};
use serde::{Deserialize, Serialize};

use crate::wire::{Ipv4Net, MacAddr};
use crate::UnixMillis;
use msg::Request;

/// How long a declined address is kept out of the pool.
pub const DECLINE_QUARANTINE_SECS: u32 = 600;
/// Shortest lease the server hands out; shorter settings are raised to it.
pub const MIN_LEASE_SECS: u32 = 60;
/// UDP port replies go to (the client port; relays are not supported).
pub const CLIENT_PORT: u16 = 68;
/// A guest's lease may be reclaimed for a newcomer once nothing was heard
/// from the guest for this long: long enough that a client that just got
/// its address is not robbed of it before its first packet.
pub const RECLAIM_MIN_SILENT_SECS: u32 = 5;
/// Fingerprint buckets for the per-kind limits (a fixed table: the state
/// stays bounded whatever fingerprints a flood makes up).
const KINDS: usize = 64;
/// Leases looked at per reclaim, so a DISCOVER does bounded work.
const RECLAIM_LOOKS: usize = 64;

/// DHCP server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSettings {
    /// lassi's gateway address on the LAN; sent as server identifier (54) and router (3).
    pub server_ip: Ipv4Addr,
    /// Subnet mask (option 1); with `server_ip` it defines the network served.
    pub netmask: Ipv4Addr,
    /// DNS servers (option 6); omitted when empty.
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain: Option<String>,
    /// Interface MTU (option 26).
    pub mtu: Option<u16>,
    /// Lease time in seconds (option 51); T1 (58) is 50 % and T2 (59) 87.5 % of it.
    pub lease_secs: u32,
    /// First address of the dynamic range (inclusive).
    pub pool_start: Ipv4Addr,
    /// Last address of the dynamic range (inclusive).
    pub pool_end: Ipv4Addr,
    /// Fixed MAC → address bindings, inside or outside the range but on the
    /// network; never handed to another MAC.
    pub static_leases: Vec<(MacAddr, Ipv4Addr)>,
    /// Captive portal API URI (option 114, RFC 8910).
    pub captive_portal_uri: Option<String>,
    /// How long an offered address stays reserved for the client it was offered to.
    pub offer_hold_secs: u32,
    /// Lease time for clients that have not logged in (at least
    /// [`MIN_LEASE_SECS`], at most `lease_secs`); a client that logs in gets
    /// `lease_secs` at its next renewal.
    pub unauthorized_lease_secs: u32,
    /// New clients admitted per second gateway-wide once half the pool is
    /// in use or one kind of client holds its cap of offers (each kind a
    /// quarter of it); 0 turns the limit off.
    pub new_client_rate: u32,
}

/// A mistake in [`DhcpSettings`] found by [`DhcpSettings::validate`]: which
/// setting is wrong and the values needed to explain it. The `Display` text
/// names the setting in the engine's terms; a caller that reads the settings
/// from a file can word it in its own keys instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    /// `netmask` is not contiguous, or leaves no room for a server and a
    /// client (longer than /30).
    Netmask(Ipv4Addr),
    /// `server_ip` is the network or broadcast address.
    ServerIp(Ipv4Addr),
    /// `pool_start` or `pool_end` is not a host address of the network.
    PoolOutside(Ipv4Addr, Ipv4Addr),
    /// `pool_start` is after `pool_end`.
    PoolOrder(Ipv4Addr, Ipv4Addr),
    /// The pool holds only `server_ip`.
    PoolOnlyServer,
    /// `lease_secs` is shorter than [`MIN_LEASE_SECS`].
    LeaseSecs(u32),
    /// `unauthorized_lease_secs` is shorter than [`MIN_LEASE_SECS`].
    UnauthorizedLeaseSecs(u32),
    /// `offer_hold_secs` is 0.
    OfferHold,
    /// `mtu` is outside [`MTU_RANGE`].
    Mtu(u16),
    /// `domain` is empty, longer than 253 bytes or holds whitespace.
    Domain(String),
    /// `captive_portal_uri` is not http(s) or longer than 255 bytes.
    CaptivePortalUri(String),
    /// `static_leases[index]`'s address is not a client address of the network.
    StaticAddress(usize),
    /// `static_leases[index]`'s MAC is a group address or all zeros.
    StaticMac(usize),
    /// `static_leases[index]` repeats the MAC or the address of `static_leases[earlier]`.
    StaticClash {
        /// The later of the two.
        index: usize,
        /// The earlier one it clashes with.
        earlier: usize,
    },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SettingsError::*;
        match self {
            Netmask(m) => write!(f, "netmask {m} is not a contiguous mask of /30 or shorter"),
            ServerIp(ip) => write!(f, "server address {ip} is the network or broadcast address"),
            PoolOutside(a, b) => write!(f, "pool {a} – {b} is not inside the network"),
            PoolOrder(a, b) => write!(f, "pool start {a} is after pool end {b}"),
            PoolOnlyServer => write!(f, "the pool holds only the server address"),
            LeaseSecs(s) => write!(f, "lease time {s}s is shorter than {MIN_LEASE_SECS}s"),
            UnauthorizedLeaseSecs(s) => write!(
                f,
                "unauthorized lease time {s}s is shorter than {MIN_LEASE_SECS}s"
            ),
            OfferHold => write!(f, "offer hold time must be at least 1s"),
            Mtu(m) => write!(f, "MTU {m} is outside {MTU_RANGE:?}"),
            Domain(d) => write!(f, "domain '{d}' is not a domain name"),
            CaptivePortalUri(u) => write!(
                f,
                "captive portal URI '{u}' is not an http(s) URI of at most 255 bytes"
            ),
            StaticAddress(i) => write!(f, "static lease {i}: not a client address of the network"),
            StaticMac(i) => write!(f, "static lease {i}: not a unicast MAC"),
            StaticClash { index, earlier } => write!(
                f,
                "static lease {index}: MAC or address already in static lease {earlier}"
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

/// MTUs handed out (option 26): RFC 2132's minimum is 68, but clients need 576.
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 576..=9000;

/// How long an offered address stays reserved, unless configured otherwise.
pub const DEFAULT_OFFER_HOLD_SECS: u32 = 30;

impl DhcpSettings {
    /// Checks the settings for mistakes an operator should hear about.
    /// [`DhcpServer::new`] accepts anything (it clamps the pool to the
    /// network and skips unusable static leases); the configuration loader
    /// calls this, and is the only place that checks DHCP settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let net = self.validate_network()?;
        self.validate_pool(&net)?;
        self.validate_times()?;
        self.validate_options()?;
        self.validate_static_leases(&net)
    }

    /// The netmask and the server's address; returns the network served.
    fn validate_network(&self) -> Result<Ipv4Net, SettingsError> {
        let net = Ipv4Net::from_netmask(self.server_ip, self.netmask)
            .filter(|n| n.prefix <= 30)
            .ok_or(SettingsError::Netmask(self.netmask))?;
        if !net.is_host(self.server_ip) {
            return Err(SettingsError::ServerIp(self.server_ip));
        }
        Ok(net)
    }

    fn validate_pool(&self, net: &Ipv4Net) -> Result<(), SettingsError> {
        let (a, b) = (self.pool_start, self.pool_end);
        if !net.is_host(a) || !net.is_host(b) {
            return Err(SettingsError::PoolOutside(a, b));
        }
        if u32::from(a) > u32::from(b) {
            return Err(SettingsError::PoolOrder(a, b));
        }
        if a == self.server_ip && b == self.server_ip {
            return Err(SettingsError::PoolOnlyServer);
        }
        Ok(())
    }

    fn validate_times(&self) -> Result<(), SettingsError> {
        if self.lease_secs < MIN_LEASE_SECS {
            return Err(SettingsError::LeaseSecs(self.lease_secs));
        }
        if self.unauthorized_lease_secs < MIN_LEASE_SECS {
            return Err(SettingsError::UnauthorizedLeaseSecs(
                self.unauthorized_lease_secs,
            ));
        }
        if self.offer_hold_secs == 0 {
            return Err(SettingsError::OfferHold);
        }
        Ok(())
    }

    /// Options 26, 15 and 114.
    fn validate_options(&self) -> Result<(), SettingsError> {
        if let Some(mtu) = self.mtu.filter(|m| !MTU_RANGE.contains(m)) {
            return Err(SettingsError::Mtu(mtu));
        }
        if let Some(d) = &self.domain {
            if d.is_empty() || d.len() > 253 || d.chars().any(|c| c.is_whitespace()) {
                return Err(SettingsError::Domain(d.clone()));
            }
        }
        if let Some(uri) = &self.captive_portal_uri {
            // It travels in one DHCP option.
            if !(uri.starts_with("http://") || uri.starts_with("https://")) || uri.len() > 255 {
                return Err(SettingsError::CaptivePortalUri(uri.clone()));
            }
        }
        Ok(())
    }

    fn validate_static_leases(&self, net: &Ipv4Net) -> Result<(), SettingsError> {
        for (index, (mac, ip)) in self.static_leases.iter().enumerate() {
            if !net.is_host(*ip) || *ip == self.server_ip {
                return Err(SettingsError::StaticAddress(index));
            }
            if mac.is_multicast() || *mac == MacAddr::default() {
                return Err(SettingsError::StaticMac(index));
            }
            let earlier = self.static_leases[..index]
                .iter()
                .position(|(m, i)| m == mac || i == ip);
            if let Some(earlier) = earlier {
                return Err(SettingsError::StaticClash { index, earlier });
            }
        }
        Ok(())
    }
}

/// An address leased (or offered) to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client's MAC (its `chaddr`).
    pub mac: MacAddr,
    /// The leased address.
    pub ip: Ipv4Addr,
    /// When the lease ends.
    pub expires: UnixMillis,
    /// Host name from option 12, sanitized.
    pub hostname: Option<String>,
    /// Client identifier from option 61, echoed in replies.
    pub client_id: Option<Vec<u8>>,
}

/// A lease as persisted across restarts. Records whose `expires` has passed
/// only remember which address a client had (affinity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The client's MAC.
    pub mac: MacAddr,
    /// Its address.
    pub ip: Ipv4Addr,
    /// When the lease ends (or ended).
    pub expires: UnixMillis,
    /// Host name the client gave.
    pub hostname: Option<String>,
}

/// Result of handling one message: maybe a reply, maybe a lease change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhcpOutcome {
    /// Message to send back, if any.
    pub reply: Option<DhcpReply>,
    /// Lease change for the session layer, if any.
    pub event: Option<LeaseEvent>,
}

/// Which reply was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// DHCPOFFER
    Offer,
    /// DHCPACK (also the answer to INFORM)
    Ack,
    /// DHCPNAK
    Nak,
}

/// An encoded reply and where to send it (RFC 2131 §4.1). The shell sends
/// it from `server_ip:67`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpReply {
    /// What kind of reply this is (for logs and counters).
    pub kind: ReplyKind,
    /// The encoded DHCP message (UDP payload).
    pub payload: Vec<u8>,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP destination; 255.255.255.255 when broadcast.
    pub dst_ip: Ipv4Addr,
    /// UDP destination port ([`CLIENT_PORT`]).
    pub dst_port: u16,
}

/// A change of lease that the session layer acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// A client got a new lease (create a session).
    Bound {
        /// Client MAC.
        mac: MacAddr,
        /// Leased address.
        ip: Ipv4Addr,
        /// Lease end.
        expires: UnixMillis,
        /// Host name the client gave.
        hostname: Option<String>,
    },
    /// A client extended its lease on the same address.
    Renewed {
        /// Client MAC.
        mac: MacAddr,
        /// Leased address.
        ip: Ipv4Addr,
        /// New lease end.
        expires: UnixMillis,
    },
    /// The client (or the operator) gave the lease up.
    Released {
        /// Client MAC.
        mac: MacAddr,
        /// Address given up.
        ip: Ipv4Addr,
    },
    /// The lease ran out.
    Expired {
        /// Client MAC.
        mac: MacAddr,
        /// Address lost.
        ip: Ipv4Addr,
    },
    /// The address was taken back for a newcomer (pool exhausted): the
    /// client never logged in and was the one silent longest.
    Reclaimed {
        /// Client MAC.
        mac: MacAddr,
        /// Address lost.
        ip: Ipv4Addr,
    },
    /// The client found the address in use (DHCPDECLINE); it is quarantined.
    Declined {
        /// Client MAC.
        mac: MacAddr,
        /// Address declined.
        ip: Ipv4Addr,
    },
}

/// Why a message got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpError {
    /// Not a well-formed DHCP request.
    Malformed(String),
    /// A well-formed message this server does not answer (a BOOTREPLY, or
    /// one addressed to another server or network).
    NotForUs,
    /// `chaddr` differs from the Ethernet source address.
    Spoofed {
        /// The MAC claimed in the message.
        chaddr: MacAddr,
        /// The Ethernet source it came from.
        src_mac: MacAddr,
    },
    /// Came through a relay agent (`giaddr` set); relays are not supported.
    Relayed(Ipv4Addr),
    /// A message type a server does not handle (e.g. an OFFER from a client).
    Unsupported(u8),
    /// No address could be offered: every one is bound, static or declined.
    PoolExhausted,
    /// A new client over the new-client rate limit.
    RateLimited,
    /// The reply could not be encoded.
    Encode(String),
}

impl fmt::Display for DhcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DhcpError::Malformed(why) => write!(f, "malformed DHCP message: {why}"),
            DhcpError::NotForUs => f.write_str("DHCP message not for this server"),
            DhcpError::Spoofed { chaddr, src_mac } => {
                write!(
                    f,
                    "DHCP chaddr {chaddr} differs from Ethernet source {src_mac}"
                )
            }
            DhcpError::Relayed(giaddr) => {
                write!(f, "relayed DHCP message (giaddr {giaddr}) not supported")
            }
            DhcpError::Unsupported(t) => write!(f, "DHCP message type {t} not handled"),
            DhcpError::PoolExhausted => f.write_str("DHCP pool exhausted"),
            DhcpError::RateLimited => f.write_str("DHCP new-client rate limit"),
            DhcpError::Encode(why) => write!(f, "cannot encode DHCP reply: {why}"),
        }
    }
}

impl std::error::Error for DhcpError {}

/// Counters since start, and the pool's current occupancy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DhcpStats {
    /// DHCPDISCOVER received.
    pub rx_discover: u64,
    /// DHCPREQUEST received.
    pub rx_request: u64,
    /// DHCPDECLINE received.
    pub rx_decline: u64,
    /// DHCPRELEASE received.
    pub rx_release: u64,
    /// DHCPINFORM received.
    pub rx_inform: u64,
    /// Other message types received.
    pub rx_other: u64,
    /// DHCPOFFER sent.
    pub tx_offer: u64,
    /// DHCPACK sent (including answers to INFORM).
    pub tx_ack: u64,
    /// DHCPNAK sent.
    pub tx_nak: u64,
    /// Addresses quarantined after a DECLINE.
    pub declines: u64,
    /// REQUESTs that chose another server (our offer withdrawn).
    pub other_server: u64,
    /// Remembered addresses taken for a new client because no fresh address was left.
    pub reclaimed: u64,
    /// Leases of silent, never-logged-in clients taken back for a newcomer.
    pub reclaimed_leases: u64,
    /// Pending offers a kind of client recycled for itself at its cap.
    pub recycled_offers: u64,
    /// Dropped: not a well-formed DHCP request.
    pub dropped_malformed: u64,
    /// Dropped: not for this server.
    pub dropped_not_for_us: u64,
    /// Dropped: `chaddr` ≠ Ethernet source.
    pub dropped_spoofed: u64,
    /// Dropped: relayed (`giaddr` set).
    pub dropped_relayed: u64,
    /// Dropped: message type not handled.
    pub dropped_unsupported: u64,
    /// Dropped: DISCOVER with no address left to offer.
    pub dropped_exhausted: u64,
    /// Dropped: a new client over the new-client rate limit.
    pub dropped_rate_limited: u64,
    /// Dropped: reply could not be encoded.
    pub dropped_encode: u64,
    /// Addresses in the dynamic pool (range minus server and static addresses).
    pub pool_size: u32,
    /// Pool addresses offered, bound, remembered or quarantined.
    pub pool_used: u32,
    /// Bound leases (pool and static).
    pub bound: u32,
    /// Pending offers.
    pub offered: u32,
    /// Quarantined (declined) addresses.
    pub quarantined: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Reserved for the owner until `lease.expires`.
    Offered,
    /// Leased until `lease.expires`.
    Bound,
    /// Lease ended at `lease.expires`; remembered for the owner until reused.
    Free,
}

#[derive(Debug, Clone)]
struct Slot {
    lease: Lease,
    state: SlotState,
    /// The owner has been bound to this address before (an expiring offer
    /// then falls back to `Free` instead of being forgotten).
    bound_before: bool,
    /// Latest time the owner is known to have been active (DHCP, or what
    /// [`Clients`] reported); orders `silent_q`.
    heard: UnixMillis,
    /// Fingerprint bucket of the owner's last message.
    kind: u8,
}

/// What the session layer knows of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Logged in: its lease is never reclaimed and runs the full lease time.
    LoggedIn,
    /// Not logged in; `last_seen` is its last frame on the LAN (0 if unknown).
    Guest {
        /// Last frame seen from it.
        last_seen: UnixMillis,
    },
}

/// The session layer as the DHCP server sees it: who is logged in, and when
/// a guest was last heard from. Answers must be cheap (a lookup).
pub trait Clients {
    /// The standing of the client with hardware address `mac`.
    fn standing(&self, mac: MacAddr) -> Standing;
}

/// No session layer: every client is a guest heard from only by DHCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSessions;

impl Clients for NoSessions {
    fn standing(&self, _mac: MacAddr) -> Standing {
        Standing::Guest { last_seen: 0 }
    }
}

/// A token bucket in thousandths of a token (integer, I/O-free).
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    milli: u64,
    last: UnixMillis,
}

impl Bucket {
    /// Takes a token if there is one, refilled at `rate` a second up to `burst`.
    fn take(&mut self, now: UnixMillis, rate: u32, burst: u32) -> bool {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.milli =
            (self.milli + elapsed.saturating_mul(u64::from(rate))).min(u64::from(burst) * 1000);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

fn kind_of(fingerprint: u32) -> u8 {
    (fingerprint % KINDS as u32) as u8
}

/// The DHCPv4 server state machine. See the module documentation.
#[derive(Debug)]
pub struct DhcpServer {
    settings: DhcpSettings,
    net: Ipv4Net,
    /// Dynamic range clamped to the network's host addresses.
    lo: u32,
    hi: u32,
    statics: HashMap<MacAddr, Ipv4Addr>,
    static_owner: HashMap<Ipv4Addr, MacAddr>,
    pool_size: u32,
    /// Dynamic addresses with a slot or in quarantine.
    taken: u32,
    /// Next-fit cursor for fresh addresses.
    cursor: u32,
    slots: HashMap<Ipv4Addr, Slot>,
    by_mac: HashMap<MacAddr, Ipv4Addr>,
    declined: HashMap<Ipv4Addr, UnixMillis>,
    offer_q: BTreeSet<(UnixMillis, Ipv4Addr)>,
    lease_q: BTreeSet<(UnixMillis, Ipv4Addr)>,
    free_q: BTreeSet<(UnixMillis, Ipv4Addr)>,
    decline_q: BTreeSet<(UnixMillis, Ipv4Addr)>,
    /// Bound dynamic leases by `heard`: reclaim candidates, longest silent first.
    silent_q: BTreeSet<(UnixMillis, Ipv4Addr)>,
    /// Pending offers per kind of client, oldest first.
    kind_offers: Vec<BTreeSet<(UnixMillis, Ipv4Addr)>>,
    /// New-client rate limits: gateway-wide and per kind.
    new_global: Bucket,
    new_kind: Vec<Bucket>,
    /// Expiry events found while handling a message, returned by the next `expire`.
    pending: Vec<LeaseEvent>,
    stats: DhcpStats,
    last_now: UnixMillis,
}

fn secs_ms(secs: u32) -> u64 {
    u64::from(secs) * 1000
}

impl DhcpServer {
    /// Builds the server and loads `restored` leases: records off the
    /// network or the pool, for the server's address, or conflicting with a
    /// static lease or with a later-expiring record are skipped; expired
    /// records are kept only as address affinity.
    pub fn new(mut settings: DhcpSettings, restored: Vec<LeaseRecord>, now: UnixMillis) -> Self {
        settings.lease_secs = settings.lease_secs.max(MIN_LEASE_SECS);
        settings.offer_hold_secs = settings.offer_hold_secs.max(1);
        settings.unauthorized_lease_secs = settings
            .unauthorized_lease_secs
            .clamp(MIN_LEASE_SECS, settings.lease_secs);
        // Settings are validated before they get here; a mask that is not
        // contiguous still gives a network that holds the server alone.
        let net = Ipv4Net::from_netmask(settings.server_ip, settings.netmask).unwrap_or(Ipv4Net {
            addr: settings.server_ip,
            prefix: 32,
        });
        let lo = u32::from(settings.pool_start).max(u32::from(net.addr).saturating_add(1));
        let hi = u32::from(settings.pool_end).min(u32::from(net.broadcast()).saturating_sub(1));
        let mut statics = HashMap::new();
        let mut static_owner = HashMap::new();
        for &(mac, ip) in &settings.static_leases {
            if net.is_host(ip)
                && ip != settings.server_ip
                && !mac.is_multicast()
                && !statics.contains_key(&mac)
                && !static_owner.contains_key(&ip)
            {
                statics.insert(mac, ip);
                static_owner.insert(ip, mac);
            }
        }
        let mut server = DhcpServer {
            net,
            lo,
            hi,
            statics,
            static_owner,
            pool_size: 0,
            taken: 0,
            cursor: lo,
            slots: HashMap::new(),
            by_mac: HashMap::new(),
            declined: HashMap::new(),
            offer_q: BTreeSet::new(),
            lease_q: BTreeSet::new(),
            free_q: BTreeSet::new(),
            decline_q: BTreeSet::new(),
            silent_q: BTreeSet::new(),
            kind_offers: vec![BTreeSet::new(); KINDS],
            new_global: Bucket::default(),
            new_kind: vec![Bucket::default(); KINDS],
            pending: Vec::new(),
            stats: DhcpStats::default(),
            last_now: now,
            settings,
        };
        if lo <= hi {
            let in_range = |ip: &Ipv4Addr| (lo..=hi).contains(&u32::from(*ip));
            let excluded = server.static_owner.keys().filter(|ip| in_range(ip)).count() as u32
                + u32::from(in_range(&server.settings.server_ip));
            server.pool_size = hi - lo + 1 - excluded;
        }
        server.restore(restored, now);
        server
    }

    fn restore(&mut self, mut records: Vec<LeaseRecord>, now: UnixMillis) {
        records.sort_by_key(|r| std::cmp::Reverse(r.expires));
        for r in records {
            let usable = match self.statics.get(&r.mac) {
                Some(&s) => s == r.ip && r.expires > now,
                None => self.is_dynamic(r.ip),
            };
            if !usable
                || r.mac.is_multicast()
                || self.slots.contains_key(&r.ip)
                || self.by_mac.contains_key(&r.mac)
            {
                continue;
            }
            let state = if r.expires > now {
                SlotState::Bound
            } else {
                SlotState::Free
            };
            let lease = Lease {
                mac: r.mac,
                ip: r.ip,
                expires: r.expires,
                hostname: r.hostname,
                client_id: None,
            };
            self.put_slot(Slot {
                lease,
                state,
                bound_before: true,
                heard: now,
                kind: 0,
            });
        }
    }

    /// Handles a DHCP message (UDP payload to port 67) received from Ethernet
    /// source `src_mac`. Errors mean the message was dropped (and counted in
    /// [`DhcpStats`]); they are routine on a hostile LAN, log them at debug.
    ///
    /// Leases and offers due at `now` are expired first, so the answer never
    /// rests on stale state; their `Expired` events are kept for the next
    /// [`expire`](Self::expire) call, which [`next_expiry`](Self::next_expiry)
    /// then reports as due.
    ///
    /// Without a session layer every client counts as a guest heard from
    /// only by DHCP; the engine calls [`handle_with`](Self::handle_with).
    pub fn handle(
        &mut self,
        now: UnixMillis,
        src_mac: MacAddr,
        payload: &[u8],
    ) -> Result<DhcpOutcome, DhcpError> {
        self.handle_with(now, src_mac, payload, &NoSessions)
    }

    /// [`handle`](Self::handle) with the session layer's view of the
    /// clients: who may lose a lease to reclaiming, and which lease time
    /// each gets. A lease reclaimed while handling the message is reported
    /// as a `Reclaimed` event by the next [`expire`](Self::expire) call,
    /// which the caller should make at once.
    pub fn handle_with(
        &mut self,
        now: UnixMillis,
        src_mac: MacAddr,
        payload: &[u8],
        clients: &dyn Clients,
    ) -> Result<DhcpOutcome, DhcpError> {
        self.last_now = now;
        self.expire_into_pending(now);
        let result = self.handle_inner(now, src_mac, payload, clients);
        if let Err(e) = &result {
            let s = &mut self.stats;
            match e {
                DhcpError::Malformed(_) => s.dropped_malformed += 1,
                DhcpError::NotForUs => s.dropped_not_for_us += 1,
                DhcpError::Spoofed { .. } => s.dropped_spoofed += 1,
                DhcpError::Relayed(_) => s.dropped_relayed += 1,
                DhcpError::Unsupported(_) => s.dropped_unsupported += 1,
                DhcpError::PoolExhausted => s.dropped_exhausted += 1,
                DhcpError::RateLimited => s.dropped_rate_limited += 1,
                DhcpError::Encode(_) => s.dropped_encode += 1,
            }
        }
        result
    }

    fn handle_inner(
        &mut self,
        now: UnixMillis,
        src_mac: MacAddr,
        payload: &[u8],
        clients: &dyn Clients,
    ) -> Result<DhcpOutcome, DhcpError> {
        let req = msg::parse(payload)?;
        let s = &mut self.stats;
        match req.kind {
            MessageType::Discover => s.rx_discover += 1,
            MessageType::Request => s.rx_request += 1,
            MessageType::Decline => s.rx_decline += 1,
            MessageType::Release => s.rx_release += 1,
            MessageType::Inform => s.rx_inform += 1,
            _ => s.rx_other += 1,
        }
        if req.chaddr.is_multicast() || req.chaddr == MacAddr::default() {
            return Err(DhcpError::Malformed(format!("chaddr {}", req.chaddr)));
        }
        if req.chaddr != src_mac {
            return Err(DhcpError::Spoofed {
                chaddr: req.chaddr,
                src_mac,
            });
        }
        if !req.giaddr.is_unspecified() {
            return Err(DhcpError::Relayed(req.giaddr));
        }
        match req.kind {
            MessageType::Discover => self.discover(now, &req, clients),
            MessageType::Request => self.request(now, &req, clients),
            MessageType::Release => self.client_release(now, &req),
            MessageType::Decline => self.decline(now, &req),
            MessageType::Inform => self.inform(&req),
            other => Err(DhcpError::Unsupported(other.into())),
        }
    }

    fn discover(
        &mut self,
        now: UnixMillis,
        req: &Request,
        clients: &dyn Clients,
    ) -> Result<DhcpOutcome, DhcpError> {
        let mac = req.chaddr;
        let kind = kind_of(req.fingerprint);
        let ip = self.address_to_offer(now, req, kind, clients)?;
        self.hold_offer(now, req, kind, ip);
        let lease = self.lease_secs_for(mac, clients);
        let reply = self.reply(req, ReplyKind::Offer, ip, Some(lease))?;
        Ok(DhcpOutcome {
            reply: Some(reply),
            event: None,
        })
    }

    /// The address to offer a client: its static or current one, else
    /// (within the new-client rate) a recycled offer of its kind, the one it
    /// asks for, a fresh one, or one reclaimed from a silent guest.
    fn address_to_offer(
        &mut self,
        now: UnixMillis,
        req: &Request,
        kind: u8,
        clients: &dyn Clients,
    ) -> Result<Ipv4Addr, DhcpError> {
        let mac = req.chaddr;
        let ip = if let Some(&ip) = self.statics.get(&mac) {
            ip
        } else if let Some(&ip) = self.by_mac.get(&mac) {
            ip
        } else if !self.admit_new(now, kind) {
            return Err(DhcpError::RateLimited);
        } else if let Some(ip) = self.recycle_kind_offer(kind) {
            ip
        } else if let Some(ip) = req.requested_ip.filter(|&ip| self.is_fresh(ip)) {
            ip
        } else if let Some(ip) = self.next_fresh() {
            ip
        } else if let Some(ip) = self.reclaim(now, clients) {
            ip
        } else {
            return Err(DhcpError::PoolExhausted);
        };
        Ok(ip)
    }

    /// Hold `ip` for the client's answer to the offer (a lease it already
    /// has stays bound), remembering its host name and client id.
    fn hold_offer(&mut self, now: UnixMillis, req: &Request, kind: u8, ip: Ipv4Addr) {
        let mac = req.chaddr;
        let until = now + secs_ms(self.settings.offer_hold_secs);
        match self.slots.get(&ip) {
            // Already leased to this client: keep the lease, offer it again.
            Some(slot) if slot.state == SlotState::Bound => {}
            Some(_) => {
                if let Some(mut slot) = self.remove_slot(ip) {
                    slot.state = SlotState::Offered;
                    slot.lease.expires = until;
                    slot.kind = kind;
                    self.put_slot(slot);
                }
            }
            None => self.put_slot(Slot {
                lease: Lease {
                    mac,
                    ip,
                    expires: until,
                    hostname: None,
                    client_id: None,
                },
                state: SlotState::Offered,
                bound_before: false,
                heard: now,
                kind,
            }),
        }
        if let Some(slot) = self.slots.get_mut(&ip) {
            if req.hostname.is_some() {
                slot.lease.hostname.clone_from(&req.hostname);
            }
            if req.client_id.is_some() {
                slot.lease.client_id.clone_from(&req.client_id);
            }
        }
    }

    fn request(
        &mut self,
        now: UnixMillis,
        req: &Request,
        clients: &dyn Clients,
    ) -> Result<DhcpOutcome, DhcpError> {
        let mac = req.chaddr;
        let target = match req.server_id {
            Some(sid) if sid != self.settings.server_ip => {
                // The client took another server's offer: withdraw ours.
                self.stats.other_server += 1;
                if let Some(&ip) = self.by_mac.get(&mac) {
                    if self.slots.get(&ip).map(|s| s.state) == Some(SlotState::Offered) {
                        self.lapse_offer(ip);
                    }
                }
                return Ok(DhcpOutcome::default());
            }
            // SELECTING: the address we offered.
            Some(_) => req.requested_ip.or(nonzero(req.ciaddr)),
            // RENEWING / REBINDING: the address in use.
            None if !req.ciaddr.is_unspecified() => Some(req.ciaddr),
            // INIT-REBOOT: the address remembered.
            None => req.requested_ip,
        };
        let Some(ip) = target else {
            return Err(DhcpError::Malformed("REQUEST names no address".into()));
        };
        // A REQUEST straight for a free address (INIT-REBOOT) is a new
        // client too: it must not get around the DISCOVER limits.
        let new_client = !self.by_mac.contains_key(&mac) && !self.statics.contains_key(&mac);
        if new_client && !self.admit_new(now, kind_of(req.fingerprint)) {
            return Err(DhcpError::RateLimited);
        }
        if self.claim(now, mac, ip) {
            let lease = self.lease_secs_for(mac, clients);
            let event = self.bind(now, req, ip, lease);
            let reply = self.reply(req, ReplyKind::Ack, ip, Some(lease))?;
            Ok(DhcpOutcome {
                reply: Some(reply),
                event: Some(event),
            })
        } else {
            let reply = self.reply(req, ReplyKind::Nak, Ipv4Addr::UNSPECIFIED, None)?;
            Ok(DhcpOutcome {
                reply: Some(reply),
                event: None,
            })
        }
    }

    /// The lease time `mac` gets now: the full one once logged in.
    fn lease_secs_for(&self, mac: MacAddr, clients: &dyn Clients) -> u32 {
        match clients.standing(mac) {
            Standing::LoggedIn => self.settings.lease_secs,
            Standing::Guest { .. } => self.settings.unauthorized_lease_secs,
        }
    }

    /// May a new client of `kind` be served now? Limited only once half
    /// the pool is in use (offered, bound or quarantined: remembered
    /// addresses are free for the taking) or the kind holds its cap of
    /// pending offers (a DISCOVER flood), so an ordinary rush of guests
    /// never waits. The kind's own bucket is asked first, so a flood of one
    /// kind spends none of the gateway-wide tokens the other kinds need.
    fn admit_new(&mut self, now: UnixMillis, kind: u8) -> bool {
        let rate = self.settings.new_client_rate;
        let in_use = self.taken.saturating_sub(self.free_q.len() as u32);
        let pressed = in_use.saturating_mul(2) >= self.pool_size
            || self.kind_offers[usize::from(kind)].len() >= self.kind_offer_cap();
        if rate == 0 || !pressed {
            return true;
        }
        let kind_rate = (rate / 4).max(1);
        self.new_kind[usize::from(kind)].take(now, kind_rate, kind_rate * 2)
            && self.new_global.take(now, rate, rate * 2)
    }

    /// Pending offers one kind of client may hold: an eighth of the pool.
    fn kind_offer_cap(&self) -> usize {
        (self.pool_size / 8).max(2) as usize
    }

    /// A kind of client at its cap of pending offers gets its own oldest
    /// one back for the next new client of that kind.
    fn recycle_kind_offer(&mut self, kind: u8) -> Option<Ipv4Addr> {
        let offers = &self.kind_offers[usize::from(kind)];
        if offers.len() < self.kind_offer_cap() {
            return None;
        }
        let &(_, ip) = offers.first()?;
        self.remove_slot(ip);
        self.stats.recycled_offers += 1;
        Some(ip)
    }

    /// Decides whether `mac` may have `ip` and, if so, clears whatever stands
    /// in the way (the client's other unbound address, another client's
    /// remembered claim on `ip`).
    fn claim(&mut self, now: UnixMillis, mac: MacAddr, ip: Ipv4Addr) -> bool {
        if !self.net.is_host(ip) || ip == self.settings.server_ip {
            return false;
        }
        let is_own_static = match self.statics.get(&mac) {
            Some(&s) if s != ip => return false,
            Some(_) => true,
            None if self.static_owner.contains_key(&ip) => return false,
            None => false,
        };
        let other = self.by_mac.get(&mac).copied().filter(|&o| o != ip);
        if let Some(o) = other {
            if let Some(slot) = self.slots.get(&o) {
                if slot.state == SlotState::Bound && slot.lease.expires > now {
                    return false;
                }
            }
        }
        let steal = match self.slots.get(&ip) {
            Some(slot) if slot.lease.mac == mac => false,
            Some(slot) if slot.state == SlotState::Free => true,
            Some(_) => return false,
            None => {
                if !is_own_static && !self.is_fresh(ip) {
                    return false;
                }
                false
            }
        };
        if let Some(o) = other {
            self.remove_slot(o);
        }
        if steal {
            self.remove_slot(ip);
        }
        true
    }

    /// Binds `ip` (already claimed) to the requesting client.
    fn bind(
        &mut self,
        now: UnixMillis,
        req: &Request,
        ip: Ipv4Addr,
        lease_secs: u32,
    ) -> LeaseEvent {
        let mac = req.chaddr;
        let expires = now + secs_ms(lease_secs);
        let prev = self.remove_slot(ip);
        let was_bound = prev.as_ref().is_some_and(|s| s.state == SlotState::Bound);
        let (old_host, old_id) = prev
            .map(|s| (s.lease.hostname, s.lease.client_id))
            .unwrap_or_default();
        let hostname = req.hostname.clone().or(old_host);
        self.put_slot(Slot {
            lease: Lease {
                mac,
                ip,
                expires,
                hostname: hostname.clone(),
                client_id: req.client_id.clone().or(old_id),
            },
            state: SlotState::Bound,
            bound_before: true,
            heard: now,
            kind: kind_of(req.fingerprint),
        });
        if was_bound {
            LeaseEvent::Renewed { mac, ip, expires }
        } else {
            LeaseEvent::Bound {
                mac,
                ip,
                expires,
                hostname,
            }
        }
    }

    fn client_release(&mut self, now: UnixMillis, req: &Request) -> Result<DhcpOutcome, DhcpError> {
        if req.server_id.is_some_and(|s| s != self.settings.server_ip) {
            return Err(DhcpError::NotForUs);
        }
        let ip = req.ciaddr;
        let event = match self.slots.get(&ip) {
            Some(slot) if slot.lease.mac == req.chaddr && slot.state == SlotState::Bound => {
                self.end_lease(ip, now);
                Some(LeaseEvent::Released {
                    mac: req.chaddr,
                    ip,
                })
            }
            _ => None,
        };
        Ok(DhcpOutcome { reply: None, event })
    }

    fn decline(&mut self, now: UnixMillis, req: &Request) -> Result<DhcpOutcome, DhcpError> {
        if req.server_id.is_some_and(|s| s != self.settings.server_ip) {
            return Err(DhcpError::NotForUs);
        }
        let Some(ip) = req.requested_ip else {
            return Err(DhcpError::Malformed("DECLINE names no address".into()));
        };
        let owned = self
            .slots
            .get(&ip)
            .is_some_and(|s| s.lease.mac == req.chaddr && s.state != SlotState::Free);
        if !owned {
            return Ok(DhcpOutcome::default());
        }
        self.remove_slot(ip);
        if self.is_dynamic(ip) {
            let until = now + secs_ms(DECLINE_QUARANTINE_SECS);
            self.declined.insert(ip, until);
            self.decline_q.insert((until, ip));
            self.taken += 1;
        }
        self.stats.declines += 1;
        Ok(DhcpOutcome {
            reply: None,
            event: Some(LeaseEvent::Declined {
                mac: req.chaddr,
                ip,
            }),
        })
    }

    fn inform(&mut self, req: &Request) -> Result<DhcpOutcome, DhcpError> {
        if !req.ciaddr.is_unspecified() && !self.net.is_host(req.ciaddr) {
            return Err(DhcpError::NotForUs);
        }
        let reply = self.reply(req, ReplyKind::Ack, Ipv4Addr::UNSPECIFIED, None)?;
        Ok(DhcpOutcome {
            reply: Some(reply),
            event: None,
        })
    }

    /// Builds and addresses a reply. A `lease` time adds options 51/58/59.
    fn reply(
        &mut self,
        req: &Request,
        kind: ReplyKind,
        yiaddr: Ipv4Addr,
        lease: Option<u32>,
    ) -> Result<DhcpReply, DhcpError> {
        let opts = self.reply_options(req, kind, lease);
        // RFC 2131 table 3: ciaddr is echoed in an ACK, zero in OFFER and NAK.
        let ciaddr = if kind == ReplyKind::Ack {
            req.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        let payload = msg::encode_reply(req, ciaddr, yiaddr, opts)?;
        let (dst_mac, dst_ip) = reply_destination(req, kind, yiaddr);
        let s = &mut self.stats;
        match kind {
            ReplyKind::Offer => s.tx_offer += 1,
            ReplyKind::Ack => s.tx_ack += 1,
            ReplyKind::Nak => s.tx_nak += 1,
        }
        Ok(DhcpReply {
            kind,
            payload,
            dst_mac,
            dst_ip,
            dst_port: CLIENT_PORT,
        })
    }

    /// The options of a reply: its type and lassi's identity, and (but in a
    /// NAK) the network's settings; a `lease` time adds options 51/58/59.
    fn reply_options(&self, req: &Request, kind: ReplyKind, lease: Option<u32>) -> DhcpOptions {
        let st = &self.settings;
        let mut opts = DhcpOptions::new();
        let msg_type = match kind {
            ReplyKind::Offer => MessageType::Offer,
            ReplyKind::Ack => MessageType::Ack,
            ReplyKind::Nak => MessageType::Nak,
        };
        opts.insert(DhcpOption::MessageType(msg_type));
        opts.insert(DhcpOption::ServerIdentifier(st.server_ip));
        if let Some(id) = &req.client_id {
            opts.insert(DhcpOption::ClientIdentifier(id.clone()));
        }
        if kind != ReplyKind::Nak {
            opts.insert(DhcpOption::SubnetMask(st.netmask));
            opts.insert(DhcpOption::Router(vec![st.server_ip]));
            if !st.dns.is_empty() {
                opts.insert(DhcpOption::DomainNameServer(st.dns.clone()));
            }
            if let Some(d) = &st.domain {
                opts.insert(DhcpOption::DomainName(d.clone()));
            }
            if let Some(mtu) = st.mtu {
                opts.insert(DhcpOption::InterfaceMtu(mtu));
            }
            if let Some(secs) = lease {
                let (lease, t1, t2) = lease_times(secs);
                opts.insert(DhcpOption::AddressLeaseTime(lease));
                opts.insert(DhcpOption::Renewal(t1));
                opts.insert(DhcpOption::Rebinding(t2));
            }
            if let Some(uri) = &st.captive_portal_uri {
                opts.insert(DhcpOption::CaptivePortal(uri.clone()));
            }
        }
        opts
    }

    /// Expires leases, offers and quarantines due at `now`, and returns the
    /// `Expired` events (including those noticed while handling messages).
    pub fn expire(&mut self, now: UnixMillis) -> Vec<LeaseEvent> {
        self.last_now = now;
        self.expire_into_pending(now);
        std::mem::take(&mut self.pending)
    }

    fn expire_into_pending(&mut self, now: UnixMillis) {
        while let Some(&(t, ip)) = self.offer_q.first() {
            if t > now {
                break;
            }
            self.lapse_offer(ip);
        }
        while let Some(&(t, ip)) = self.lease_q.first() {
            if t > now {
                break;
            }
            let mac = self.slots.get(&ip).map(|s| s.lease.mac);
            self.end_lease(ip, t);
            if let Some(mac) = mac {
                self.pending.push(LeaseEvent::Expired { mac, ip });
            }
        }
        while let Some(&(t, ip)) = self.decline_q.first() {
            if t > now {
                break;
            }
            self.decline_q.remove(&(t, ip));
            if self.declined.remove(&ip).is_some() {
                self.taken -= 1;
            }
        }
    }

    /// Operator-driven release of `mac`'s lease; `Released` if it had one.
    /// A pending offer is withdrawn too.
    pub fn release(&mut self, mac: MacAddr) -> Option<LeaseEvent> {
        let ip = *self.by_mac.get(&mac)?;
        match self.slots.get(&ip)?.state {
            SlotState::Bound => {
                self.end_lease(ip, self.last_now);
                Some(LeaseEvent::Released { mac, ip })
            }
            SlotState::Offered => {
                self.lapse_offer(ip);
                None
            }
            SlotState::Free => None,
        }
    }

    /// The bound, unexpired lease of `mac` (as of the last `handle`/`expire`).
    pub fn bound_lease(&self, mac: MacAddr) -> Option<&Lease> {
        let ip = self.by_mac.get(&mac)?;
        self.slots
            .get(ip)
            .filter(|s| s.state == SlotState::Bound && s.lease.expires > self.last_now)
            .map(|s| &s.lease)
    }

    /// The MAC holding a bound lease on `ip`.
    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.slots
            .get(&ip)
            .filter(|s| s.state == SlotState::Bound && s.lease.expires > self.last_now)
            .map(|s| s.lease.mac)
    }

    /// All bound, unexpired leases, in no particular order.
    pub fn bound_leases(&self) -> impl Iterator<Item = &Lease> {
        let now = self.last_now;
        self.slots
            .values()
            .filter(move |s| s.state == SlotState::Bound && s.lease.expires > now)
            .map(|s| &s.lease)
    }

    /// What to persist: bound leases, and ended ones still remembered as a
    /// client's address (their `expires` is in the past).
    pub fn records(&self) -> Vec<LeaseRecord> {
        let mut out: Vec<LeaseRecord> = self
            .slots
            .values()
            .filter(|s| s.state != SlotState::Offered)
            .map(|s| LeaseRecord {
                mac: s.lease.mac,
                ip: s.lease.ip,
                expires: s.lease.expires,
                hostname: s.lease.hostname.clone(),
            })
            .collect();
        out.sort_by_key(|r| u32::from(r.ip));
        out
    }

    /// Earliest time `expire` has work; `Some(t <= now)` when events are
    /// already waiting.
    pub fn next_expiry(&self) -> Option<UnixMillis> {
        if !self.pending.is_empty() {
            return Some(self.last_now);
        }
        [&self.offer_q, &self.lease_q, &self.decline_q]
            .iter()
            .filter_map(|q| q.first().map(|&(t, _)| t))
            .min()
    }

    /// Counters and pool occupancy.
    pub fn stats(&self) -> DhcpStats {
        DhcpStats {
            pool_size: self.pool_size,
            pool_used: self.taken,
            bound: self.lease_q.len() as u32,
            offered: self.offer_q.len() as u32,
            quarantined: self.declined.len() as u32,
            ..self.stats.clone()
        }
    }

    /// The settings in force (lease time raised to [`MIN_LEASE_SECS`] if needed).
    pub fn settings(&self) -> &DhcpSettings {
        &self.settings
    }

    // --- slot bookkeeping: every change goes through these ---

    /// In the dynamic range, not the server's and not a static address.
    fn is_dynamic(&self, ip: Ipv4Addr) -> bool {
        (self.lo..=self.hi).contains(&u32::from(ip))
            && ip != self.settings.server_ip
            && !self.static_owner.contains_key(&ip)
    }

    /// Dynamic, unclaimed and not quarantined.
    fn is_fresh(&self, ip: Ipv4Addr) -> bool {
        self.is_dynamic(ip) && !self.slots.contains_key(&ip) && !self.declined.contains_key(&ip)
    }

    /// Next fresh address after the cursor (next-fit, so addresses are
    /// reused as late as possible).
    fn next_fresh(&mut self) -> Option<Ipv4Addr> {
        if self.taken >= self.pool_size {
            return None;
        }
        for _ in self.lo..=self.hi {
            let x = self.cursor;
            self.cursor = if x >= self.hi { self.lo } else { x + 1 };
            if self.is_fresh(x.into()) {
                return Some(x.into());
            }
        }
        None
    }

    /// Takes the longest-unused remembered address, else the lease of the
    /// guest silent longest. Never a pending offer (it is held for its
    /// client), a logged-in client's lease or a static address.
    fn reclaim(&mut self, now: UnixMillis, clients: &dyn Clients) -> Option<Ipv4Addr> {
        if let Some(&(_, ip)) = self.free_q.first() {
            self.remove_slot(ip);
            self.stats.reclaimed += 1;
            return Some(ip);
        }
        let ip = self.silent_guest(now, clients)?;
        let slot = self.remove_slot(ip)?;
        self.stats.reclaimed_leases += 1;
        self.pending.push(LeaseEvent::Reclaimed {
            mac: slot.lease.mac,
            ip,
        });
        Some(ip)
    }

    /// The bound lease of the guest heard from longest ago, if that was at
    /// least [`RECLAIM_MIN_SILENT_SECS`] ago.
    ///
    /// `silent_q` is ordered by `heard`, a lower bound of each client's last
    /// activity (activity only moves forward). The front entry is checked
    /// against [`Clients`]: if it was active since, it moves back to its
    /// real time and the next is checked; a logged-in client moves to the
    /// back. When the front's real time is its key, nobody was silent
    /// longer. Each look moves an entry back, so the work is amortized and
    /// bounded per call by [`RECLAIM_LOOKS`].
    fn silent_guest(&mut self, now: UnixMillis, clients: &dyn Clients) -> Option<Ipv4Addr> {
        let min_silence = secs_ms(RECLAIM_MIN_SILENT_SECS);
        for _ in 0..RECLAIM_LOOKS {
            let &(heard, ip) = self.silent_q.first()?;
            if now.saturating_sub(heard) < min_silence {
                return None;
            }
            let mac = self.slots.get(&ip)?.lease.mac;
            let seen = match clients.standing(mac) {
                Standing::LoggedIn => now,
                Standing::Guest { last_seen } => last_seen,
            };
            if seen <= heard {
                return Some(ip);
            }
            self.silent_q.remove(&(heard, ip));
            self.silent_q.insert((seen, ip));
            if let Some(slot) = self.slots.get_mut(&ip) {
                slot.heard = seen;
            }
        }
        None
    }

    fn queue(&mut self, state: SlotState) -> &mut BTreeSet<(UnixMillis, Ipv4Addr)> {
        match state {
            SlotState::Offered => &mut self.offer_q,
            SlotState::Bound => &mut self.lease_q,
            SlotState::Free => &mut self.free_q,
        }
    }

    fn put_slot(&mut self, slot: Slot) {
        let ip = slot.lease.ip;
        if let Some(old) = self.slots.get(&ip) {
            debug_assert!(false, "slot {ip} already held by {}", old.lease.mac);
            self.remove_slot(ip);
        }
        self.queue(slot.state).insert((slot.lease.expires, ip));
        self.by_mac.insert(slot.lease.mac, ip);
        match slot.state {
            SlotState::Offered => {
                self.kind_offers[usize::from(slot.kind)].insert((slot.lease.expires, ip));
            }
            SlotState::Bound if self.is_dynamic(ip) => {
                self.silent_q.insert((slot.heard, ip));
            }
            _ => {}
        }
        if self.is_dynamic(ip) {
            self.taken += 1;
        }
        self.slots.insert(ip, slot);
    }

    fn remove_slot(&mut self, ip: Ipv4Addr) -> Option<Slot> {
        let slot = self.slots.remove(&ip)?;
        self.queue(slot.state).remove(&(slot.lease.expires, ip));
        match slot.state {
            SlotState::Offered => {
                self.kind_offers[usize::from(slot.kind)].remove(&(slot.lease.expires, ip));
            }
            SlotState::Bound => {
                self.silent_q.remove(&(slot.heard, ip));
            }
            SlotState::Free => {}
        }
        if self.by_mac.get(&slot.lease.mac) == Some(&ip) {
            self.by_mac.remove(&slot.lease.mac);
        }
        if self.is_dynamic(ip) {
            self.taken -= 1;
        }
        Some(slot)
    }

    fn restate(&mut self, ip: Ipv4Addr, state: SlotState, deadline: UnixMillis) {
        if let Some(mut slot) = self.remove_slot(ip) {
            slot.state = state;
            slot.lease.expires = deadline;
            slot.bound_before |= state == SlotState::Bound;
            self.put_slot(slot);
        }
    }

    /// A lease ends at `at`: the address is remembered for its owner
    /// (static addresses need no memory).
    fn end_lease(&mut self, ip: Ipv4Addr, at: UnixMillis) {
        if self.is_dynamic(ip) {
            self.restate(ip, SlotState::Free, at);
        } else {
            self.remove_slot(ip);
        }
    }

    /// An offer lapses: back to remembered if the owner had it before, else forgotten.
    fn lapse_offer(&mut self, ip: Ipv4Addr) {
        let Some(slot) = self.slots.get(&ip) else {
            return;
        };
        if slot.bound_before && self.is_dynamic(ip) {
            let at = slot.lease.expires.min(self.last_now);
            self.restate(ip, SlotState::Free, at);
        } else {
            self.remove_slot(ip);
        }
    }
}

/// Where a reply goes, by RFC 2131 §4.1 (giaddr is always zero here).
fn reply_destination(req: &Request, kind: ReplyKind, yiaddr: Ipv4Addr) -> (MacAddr, Ipv4Addr) {
    if kind == ReplyKind::Nak {
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
    } else if !req.ciaddr.is_unspecified() {
        (req.chaddr, req.ciaddr)
    } else if req.flags.broadcast() || yiaddr.is_unspecified() {
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
    } else {
        (req.chaddr, yiaddr)
    }
}

/// Lease, T1 (50 %) and T2 (87.5 %) in seconds; T1 < T2 < lease for every
/// lease of at least [`MIN_LEASE_SECS`].
pub fn lease_times(lease_secs: u32) -> (u32, u32, u32) {
    let l = u64::from(lease_secs);
    (lease_secs, (l / 2) as u32, (l * 7 / 8) as u32)
}

fn nonzero(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    (!ip.is_unspecified()).then_some(ip)
}
