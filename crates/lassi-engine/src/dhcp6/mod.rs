//! DHCPv6 server engine (RFC 8415; DNS options of RFC 3646; captive portal
//! of RFC 8910): stateful addresses (IA_NA) from the LAN /64, stateless
//! configuration (Information-request), Rapid Commit, Renew, Rebind,
//! Confirm, Release and Decline, and lease expiry.
//!
//! I/O-free in the quinn-proto style: [`Dhcp6Server::handle_message`] takes
//! a client's UDP payload with its IPv6 source, Ethernet source and `now`;
//! the shell drains [`Dhcp6Server::poll_transmit`] (replies as
//! [`Ipv6Transmit`]s, UDP already built) and [`Dhcp6Server::poll_event`]
//! (lease changes for the session layer), sleeps until
//! [`Dhcp6Server::poll_timeout`] and then calls
//! [`Dhcp6Server::handle_timeout`]. [`Dhcp6Server::records`] is what to
//! persist; [`Dhcp6Server::new`] takes it back.
//!
//! # Addresses
//!
//! A client's address is derived from its DUID and IAID by a fixed hash
//! (FNV-1a, finished with SplitMix64) into the /64's interface identifiers,
//! so the same client gets the same address again, even after lassi lost
//! its leases; a collision moves to the next candidate (at most
//! [`DERIVE_ATTEMPTS`]). Identifiers RFC 5453 reserves, those below 0x100
//! (where operators put the gateway and fixed hosts), the gateway's own
//! addresses and declined addresses (quarantined for
//! [`DECLINE_QUARANTINE_SECS`]) are skipped. The table holds at most
//! `max_leases` bindings and `max_leases_per_mac` per MAC (a client that
//! invents a new DUID at every boot loses its oldest binding, a flood of
//! invented DUIDs from one MAC cannot fill the table). When the table is
//! full, the oldest pending offer gives way; bound leases never do.
//!
//! # Timers strict clients accept
//!
//! Every IA carries T1 = 0.5 × preferred and T2 = 0.8 × preferred (RFC 8415
//! §21.4's recommendation), with preferred ≤ valid, so T1 ≤ T2 ≤ preferred ≤
//! valid always holds ([`ia_timers`]; [`Dhcp6Settings::validate`] refuses
//! preferred > valid). What dhcpcd checks (dhcp6.c, `dhcp6_findia` and
//! `dhcp6_findna`): T1 > T2 with T2 ≠ 0 logs "T1 > T2" and throws both
//! timers away; an IA whose Status Code is not Success fails; an IA with no
//! IA Address logs "missing IA Address"; an IAID it did not ask for is
//! ignored (lassi echoes the client's IAIDs); newer releases also warn when
//! an address's preferred lifetime exceeds its valid lifetime. None of these
//! can happen with lassi's replies.
//!
//! Clients are served on the link only: relay messages are dropped, replies
//! go to the client's link-local source, port 546, from lassi's link-local
//! address, port 547. lassi offers no Server Unicast option, so a message
//! sent to its unicast address is dropped or answered with UseMulticast.

#[cfg(test)]
mod tests;

use core::fmt;
use core::net::Ipv6Addr;
use std::collections::{BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::ipv6::ra::portal_uri_ok;
use crate::wire::dhcpv6::{self as wire, DhcpOption, IaAddr, IaNa, Message, MessageType, Status};
use crate::wire::ipv6::{self, Ipv6Net, Ipv6Transmit, NEXT_UDP};
use crate::wire::ndp::emit_name;
use crate::wire::MacAddr;
use crate::UnixMillis;

/// How long a declined address is kept out of the pool.
pub const DECLINE_QUARANTINE_SECS: u32 = 600;
/// Candidates tried per client before the server says NoAddrsAvail.
pub const DERIVE_ATTEMPTS: u32 = 16;
/// Shortest preferred lifetime accepted by [`Dhcp6Settings::validate`].
pub const MIN_PREFERRED_SECS: u32 = 60;
/// Interface identifiers below this are never handed out.
pub const FIRST_DYNAMIC_IID: u64 = 0x100;

/// DHCPv6 server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp6Settings {
    /// The gateway's MAC: the Server ID is its DUID-LL.
    pub server_mac: MacAddr,
    /// The gateway's link-local address, the replies' source.
    pub link_local: Ipv6Addr,
    /// The LAN prefix addresses come from (a /64).
    pub prefix: Ipv6Net,
    /// The gateway's own addresses in the prefix, never handed out.
    pub reserved: Vec<Ipv6Addr>,
    /// Preferred lifetime of leased addresses, seconds.
    pub preferred_secs: u32,
    /// Valid lifetime of leased addresses (and of the binding), seconds.
    pub valid_secs: u32,
    /// DNS servers (option 23); none: no option.
    pub dns: Vec<Ipv6Addr>,
    /// Domain search list (option 24); none: no option.
    pub domains: Vec<String>,
    /// Captive-portal API URI (option 103).
    pub captive_portal_uri: Option<String>,
    /// Answer a Solicit carrying Rapid Commit with a committed Reply.
    pub rapid_commit: bool,
    /// How long an advertised address stays reserved for its client.
    pub offer_hold_secs: u32,
    /// Information Refresh Time for stateless clients (option 32).
    pub info_refresh_secs: Option<u32>,
    /// Most bindings held.
    pub max_leases: usize,
    /// Most bindings held for one MAC.
    pub max_leases_per_mac: usize,
}

impl Dhcp6Settings {
    /// Defaults for a gateway with `server_mac` serving `prefix`: its
    /// EUI-64 link-local address, preferred 1 h, valid 2 h, Rapid Commit
    /// on, 30 s offers, 4096 bindings, 4 per MAC.
    pub fn new(server_mac: MacAddr, prefix: Ipv6Net) -> Dhcp6Settings {
        Dhcp6Settings {
            server_mac,
            link_local: ipv6::link_local_from_mac(server_mac),
            prefix,
            reserved: Vec::new(),
            preferred_secs: 3600,
            valid_secs: 7200,
            dns: Vec::new(),
            domains: Vec::new(),
            captive_portal_uri: None,
            rapid_commit: true,
            offer_hold_secs: 30,
            info_refresh_secs: None,
            max_leases: 4096,
            max_leases_per_mac: 4,
        }
    }
}

/// A mistake in [`Dhcp6Settings`], found by [`Dhcp6Settings::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dhcp6SettingsError {
    /// The prefix is not a /64.
    Prefix(Ipv6Net),
    /// `link_local` is not link-local.
    LinkLocal(Ipv6Addr),
    /// Preferred lifetime below [`MIN_PREFERRED_SECS`] or above the valid lifetime.
    Lifetimes(u32, u32),
    /// `offer_hold_secs` is 0.
    OfferHold,
    /// `max_leases` or `max_leases_per_mac` is 0.
    Bounds,
    /// A search domain that is not a domain name.
    Domain(String),
    /// A captive-portal URI that is not http(s) ≤ 255 bytes.
    CaptivePortalUri(String),
}

impl fmt::Display for Dhcp6SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Dhcp6SettingsError::*;
        match self {
            Prefix(p) => write!(f, "DHCPv6 prefix {p} is not a /64"),
            LinkLocal(a) => write!(f, "server address {a} is not link-local"),
            Lifetimes(p, v) => write!(
                f,
                "preferred lifetime {p}s must be at least {MIN_PREFERRED_SECS}s and ≤ valid {v}s"
            ),
            OfferHold => write!(f, "offer hold time must be at least 1s"),
            Bounds => write!(f, "lease table bounds must be at least 1"),
            Domain(d) => write!(f, "domain '{d}' is not a domain name"),
            CaptivePortalUri(u) => write!(f, "captive portal URI '{u}' is not http(s) ≤ 255 bytes"),
        }
    }
}

impl std::error::Error for Dhcp6SettingsError {}

impl Dhcp6Settings {
    /// Checks the settings; [`Dhcp6Server::new`] trusts them.
    pub fn validate(&self) -> Result<(), Dhcp6SettingsError> {
        use Dhcp6SettingsError::*;
        if self.prefix.len() != 64 {
            return Err(Prefix(self.prefix));
        }
        if !ipv6::is_link_local(self.link_local) {
            return Err(LinkLocal(self.link_local));
        }
        let (p, v) = (self.preferred_secs, self.valid_secs);
        if p < MIN_PREFERRED_SECS || p > v {
            return Err(Lifetimes(p, v));
        }
        if self.offer_hold_secs == 0 {
            return Err(OfferHold);
        }
        if self.max_leases == 0 || self.max_leases_per_mac == 0 {
            return Err(Bounds);
        }
        if let Some(d) = self.domains.iter().find(|d| !emit_name(d, &mut Vec::new())) {
            return Err(Domain(d.clone()));
        }
        match &self.captive_portal_uri {
            Some(u) if !portal_uri_ok(u) => Err(CaptivePortalUri(u.clone())),
            _ => Ok(()),
        }
    }
}

/// T1 and T2 for addresses with `preferred` seconds: 50 % and 80 % of it
/// (RFC 8415 §21.4), so T1 ≤ T2 ≤ preferred.
pub fn ia_timers(preferred: u32) -> (u32, u32) {
    let p = u64::from(preferred);
    ((p / 2) as u32, (p * 4 / 5) as u32)
}

/// One binding (or pending offer) of an address to a client's IA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    /// The client's DUID.
    pub duid: Vec<u8>,
    /// The IA's identifier.
    pub iaid: u32,
    /// The address.
    pub addr: Ipv6Addr,
    /// The Ethernet source the client spoke from.
    pub mac: MacAddr,
    /// When the binding (or the offer) ends.
    pub expires: UnixMillis,
    /// False while only advertised.
    pub bound: bool,
}

/// A bound lease as persisted across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease6Record {
    /// The client's DUID in hex.
    pub duid: String,
    /// The IA's identifier.
    pub iaid: u32,
    /// The address.
    pub addr: Ipv6Addr,
    /// The client's MAC.
    pub mac: MacAddr,
    /// When the lease ends.
    pub expires: UnixMillis,
}

/// A change the session layer acts on: the address joins or leaves the
/// client's set (`ipv6::addrs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease6Event {
    /// A new binding.
    Bound {
        /// Client MAC.
        mac: MacAddr,
        /// The address.
        addr: Ipv6Addr,
        /// Lease end.
        expires: UnixMillis,
    },
    /// A binding extended.
    Renewed {
        /// Client MAC.
        mac: MacAddr,
        /// The address.
        addr: Ipv6Addr,
        /// New lease end.
        expires: UnixMillis,
    },
    /// Given up by the client (Release) or for a newer binding of the same MAC.
    Released {
        /// Client MAC.
        mac: MacAddr,
        /// The address.
        addr: Ipv6Addr,
    },
    /// Ran out.
    Expired {
        /// Client MAC.
        mac: MacAddr,
        /// The address.
        addr: Ipv6Addr,
    },
    /// The client found it in use (Decline); quarantined.
    Declined {
        /// Client MAC.
        mac: MacAddr,
        /// The address.
        addr: Ipv6Addr,
    },
}

/// Why a message got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dhcp6Error {
    /// Not a DHCPv6 message lassi reads.
    Parse(wire::Error),
    /// A server's message type, sent by a client (a rogue server).
    FromServer(MessageType),
    /// Breaks a rule of RFC 8415 §16 (which one is said).
    Invalid(&'static str),
    /// Addressed to another server (its Server ID is not lassi's).
    NotForUs,
}

impl fmt::Display for Dhcp6Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dhcp6Error::Parse(e) => write!(f, "{e}"),
            Dhcp6Error::FromServer(t) => write!(f, "server message {t:?} from a client"),
            Dhcp6Error::Invalid(why) => write!(f, "invalid message: {why}"),
            Dhcp6Error::NotForUs => write!(f, "for another server"),
        }
    }
}

impl std::error::Error for Dhcp6Error {}

/// Counters for the status page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Dhcp6Stats {
    /// Messages handled.
    pub received: u64,
    /// Replies and advertisements queued.
    pub replies: u64,
    /// Messages dropped (unparsable, invalid, or for another server).
    pub dropped: u64,
    /// IAs answered with NoAddrsAvail.
    pub no_addrs: u64,
    /// Bindings held now.
    pub bindings: usize,
}

/// The DHCPv6 server; see the module docs.
#[derive(Debug)]
pub struct Dhcp6Server {
    settings: Dhcp6Settings,
    duid: Vec<u8>,
    leases: HashMap<Ipv6Addr, Lease6>,
    by_ia: HashMap<(Vec<u8>, u32), Ipv6Addr>,
    expiry: BTreeSet<(UnixMillis, Ipv6Addr)>,
    declined: HashMap<Ipv6Addr, UnixMillis>,
    transmits: VecDeque<Ipv6Transmit>,
    events: VecDeque<Lease6Event>,
    stats: Dhcp6Stats,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The client a message came from.
struct Client<'a> {
    duid: &'a [u8],
    mac: MacAddr,
}

/// The interface identifier candidate `attempt` for a client's IA: FNV-1a
/// over DUID, IAID and attempt, finished with SplitMix64's mixer.
fn candidate_iid(duid: &[u8], iaid: u32, attempt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in duid
        .iter()
        .chain(&iaid.to_be_bytes())
        .chain(&attempt.to_be_bytes())
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// RFC 5453's reserved identifiers at the top (subnet anycast), and
/// lassi's own low range.
fn iid_usable(iid: u64) -> bool {
    (FIRST_DYNAMIC_IID..0xfdff_ffff_ffff_ff80).contains(&iid)
}

impl Dhcp6Server {
    /// A server for `settings` (validated by the caller), holding the
    /// still-running leases of `restored`.
    pub fn new(settings: Dhcp6Settings, restored: Vec<Lease6Record>, now: UnixMillis) -> Self {
        let mut s = Dhcp6Server {
            duid: wire::duid_ll(settings.server_mac.0),
            settings,
            leases: HashMap::new(),
            by_ia: HashMap::new(),
            expiry: BTreeSet::new(),
            declined: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Dhcp6Stats::default(),
        };
        for r in restored {
            let Some(duid) = unhex(&r.duid) else { continue };
            let fits = r.expires > now
                && s.settings.prefix.contains(r.addr)
                && s.usable(r.addr)
                && !s.leases.contains_key(&r.addr)
                && !s.by_ia.contains_key(&(duid.clone(), r.iaid))
                && s.leases.len() < s.settings.max_leases;
            if fits {
                s.insert(Lease6 {
                    duid,
                    iaid: r.iaid,
                    addr: r.addr,
                    mac: r.mac,
                    expires: r.expires,
                    bound: true,
                });
            }
        }
        s
    }

    /// The server's DUID (DUID-LL of the gateway MAC), its Server ID.
    pub fn duid(&self) -> &[u8] {
        &self.duid
    }

    /// The settings in use.
    pub fn settings(&self) -> &Dhcp6Settings {
        &self.settings
    }

    fn usable(&self, addr: Ipv6Addr) -> bool {
        iid_usable(u128::from(addr) as u64) && !self.settings.reserved.contains(&addr)
    }

    fn insert(&mut self, lease: Lease6) {
        self.remove(lease.addr);
        self.by_ia
            .insert((lease.duid.clone(), lease.iaid), lease.addr);
        self.expiry.insert((lease.expires, lease.addr));
        self.leases.insert(lease.addr, lease);
    }

    fn remove(&mut self, addr: Ipv6Addr) -> Option<Lease6> {
        let l = self.leases.remove(&addr)?;
        self.expiry.remove(&(l.expires, addr));
        let key = (l.duid.clone(), l.iaid);
        if self.by_ia.get(&key) == Some(&addr) {
            self.by_ia.remove(&key);
        }
        Some(l)
    }

    fn free_for(&self, addr: Ipv6Addr, duid: &[u8], iaid: u32, now: UnixMillis) -> bool {
        self.usable(addr)
            && self.declined.get(&addr).is_none_or(|&until| until <= now)
            && self
                .leases
                .get(&addr)
                .is_none_or(|l| l.duid == duid && l.iaid == iaid)
    }

    fn find_address(&self, duid: &[u8], iaid: u32, now: UnixMillis) -> Option<Ipv6Addr> {
        if let Some(&a) = self.by_ia.get(&(duid.to_vec(), iaid)) {
            return Some(a);
        }
        (0..DERIVE_ATTEMPTS)
            .map(|i| self.settings.prefix.with_iid(candidate_iid(duid, iaid, i)))
            .find(|&a| self.free_for(a, duid, iaid, now))
    }

    /// Frees a slot for a new binding of `mac`: its own oldest binding when
    /// it holds its share, then the oldest pending offer when the table is
    /// full. False when every slot is a binding of another client.
    fn make_room(&mut self, mac: MacAddr) -> bool {
        let oldest = |it: &mut dyn Iterator<Item = &Lease6>| {
            it.min_by_key(|l| (l.expires, l.addr)).map(|l| l.addr)
        };
        let mine = self.leases.values().filter(|l| l.mac == mac).count();
        if mine >= self.settings.max_leases_per_mac {
            if let Some(a) = oldest(&mut self.leases.values().filter(|l| l.mac == mac)) {
                self.drop_lease(a, |mac, addr| Lease6Event::Released { mac, addr });
            }
        }
        if self.leases.len() < self.settings.max_leases {
            return true;
        }
        match oldest(&mut self.leases.values().filter(|l| !l.bound)) {
            Some(a) => self.remove(a).is_some(),
            None => false,
        }
    }

    fn drop_lease(&mut self, addr: Ipv6Addr, event: fn(MacAddr, Ipv6Addr) -> Lease6Event) {
        if let Some(l) = self.remove(addr) {
            if l.bound {
                self.events.push_back(event(l.mac, l.addr));
            }
        }
    }

    /// Offers (`commit` false) or binds an address for the client's IA.
    fn bind(&mut self, c: &Client, iaid: u32, commit: bool, now: UnixMillis) -> Option<Ipv6Addr> {
        let addr = self.find_address(c.duid, iaid, now)?;
        let existing = self.leases.get(&addr).map(|l| (l.bound, l.expires));
        if existing.is_none() && !self.make_room(c.mac) {
            return None;
        }
        let secs = if commit {
            self.settings.valid_secs
        } else {
            self.settings.offer_hold_secs
        };
        let (mut expires, mut bound) = (now + u64::from(secs) * 1000, commit);
        if let (Some((true, old)), false) = (existing, commit) {
            (expires, bound) = (old, true); // an offer never shortens a binding
        }
        if commit {
            self.events.push_back(match existing {
                Some((true, _)) => Lease6Event::Renewed {
                    mac: c.mac,
                    addr,
                    expires,
                },
                _ => Lease6Event::Bound {
                    mac: c.mac,
                    addr,
                    expires,
                },
            });
        }
        self.insert(Lease6 {
            duid: c.duid.to_vec(),
            iaid,
            addr,
            mac: c.mac,
            expires,
            bound,
        });
        Some(addr)
    }

    /// The IA_NA answering the client's `ia`: the address offered or bound,
    /// with T1/T2, and any other address the client asked about with
    /// lifetimes 0 (not for it: RFC 8415 §18.3.2, §18.3.4, §18.3.5).
    fn answer_ia(&mut self, c: &Client, ia: &IaNa, commit: bool, now: UnixMillis) -> IaNa {
        let Some(addr) = self.bind(c, ia.iaid, commit, now) else {
            self.stats.no_addrs += 1;
            return IaNa {
                iaid: ia.iaid,
                t1: 0,
                t2: 0,
                options: vec![DhcpOption::StatusCode(
                    Status::NoAddrsAvail,
                    "no addresses available".into(),
                )],
            };
        };
        let (pref, valid) = (self.settings.preferred_secs, self.settings.valid_secs);
        let (t1, t2) = ia_timers(pref);
        let mut options = vec![DhcpOption::IaAddr(IaAddr {
            addr,
            preferred: pref,
            valid,
            options: Vec::new(),
        })];
        if commit {
            for other in ia.addrs().filter(|a| a.addr != addr) {
                options.push(DhcpOption::IaAddr(IaAddr {
                    addr: other.addr,
                    preferred: 0,
                    valid: 0,
                    options: Vec::new(),
                }));
            }
        }
        IaNa {
            iaid: ia.iaid,
            t1,
            t2,
            options,
        }
    }
}

impl Dhcp6Server {
    /// Handles a client's message (the UDP payload to port 547) that came
    /// from `src` (its link-local address) to `dst` (ff02::1:2, or one of
    /// lassi's addresses) and Ethernet `src_mac` at `now`. A reply, if
    /// any, waits in [`Dhcp6Server::poll_transmit`]; lease changes in
    /// [`Dhcp6Server::poll_event`]. An error says why the message was
    /// dropped (the caller counts it).
    pub fn handle_message(
        &mut self,
        payload: &[u8],
        src: Ipv6Addr,
        dst: Ipv6Addr,
        src_mac: MacAddr,
        now: UnixMillis,
    ) -> Result<(), Dhcp6Error> {
        self.stats.received += 1;
        match self.answer(payload, dst.is_multicast(), src_mac, now) {
            Ok(Some(reply)) => {
                self.stats.replies += 1;
                let s = &self.settings;
                let udp = ipv6::udp_datagram(
                    s.link_local,
                    src,
                    wire::SERVER_PORT,
                    wire::CLIENT_PORT,
                    &reply.emit(),
                );
                self.transmits.push_back(Ipv6Transmit {
                    src_mac: s.server_mac,
                    dst_mac: src_mac,
                    src: s.link_local,
                    dst: src,
                    hop_limit: 64,
                    next_header: NEXT_UDP,
                    payload: udp,
                });
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.stats.dropped += 1;
                Err(e)
            }
        }
    }

    fn answer(
        &mut self,
        payload: &[u8],
        multicast: bool,
        mac: MacAddr,
        now: UnixMillis,
    ) -> Result<Option<Message>, Dhcp6Error> {
        use MessageType::*;
        let msg = Message::parse(payload).map_err(Dhcp6Error::Parse)?;
        if msg.msg_type.is_from_server() {
            return Err(Dhcp6Error::FromServer(msg.msg_type));
        }
        self.check_ids(&msg)?;
        if !multicast {
            return self.unicast(&msg).map(Some);
        }
        if msg.msg_type == InformationRequest {
            return Ok(Some(self.information(&msg)));
        }
        let duid = msg.client_id().unwrap_or_default().to_vec();
        let c = Client { duid: &duid, mac };
        Ok(match msg.msg_type {
            Solicit => Some(self.solicit(&msg, &c, now)),
            Request | Renew | Rebind => Some(self.commit(&msg, &c, now)),
            Confirm => self.confirm(&msg),
            Release => Some(self.release(&msg, &c)),
            Decline => Some(self.decline(&msg, &c, now)),
            _ => return Err(Dhcp6Error::Invalid("message type not served")),
        })
    }

    /// The identifier rules of RFC 8415 §16.
    fn check_ids(&self, msg: &Message) -> Result<(), Dhcp6Error> {
        use MessageType::*;
        let sid = msg.server_id();
        let ours = sid.is_none_or(|s| s == self.duid.as_slice());
        let has_cid = msg.client_id().is_some();
        match msg.msg_type {
            Solicit | Confirm | Rebind if !has_cid => Err(Dhcp6Error::Invalid("no Client ID")),
            Solicit | Confirm | Rebind if sid.is_some() => {
                Err(Dhcp6Error::Invalid("Server ID not allowed"))
            }
            Request | Renew | Release | Decline if !has_cid || sid.is_none() => {
                Err(Dhcp6Error::Invalid("Client ID and Server ID required"))
            }
            InformationRequest if msg.ia_nas().next().is_some() => {
                Err(Dhcp6Error::Invalid("IA in Information-request"))
            }
            _ if !ours => Err(Dhcp6Error::NotForUs),
            _ => Ok(()),
        }
    }

    /// A message sent to lassi's unicast address, which it never offered
    /// (no Server Unicast option): Solicit, Confirm, Rebind and
    /// Information-request are dropped (RFC 8415 §16), the others answered
    /// with UseMulticast and nothing else (§18.3.2), so the client retries
    /// by multicast.
    fn unicast(&self, msg: &Message) -> Result<Message, Dhcp6Error> {
        use MessageType::*;
        match msg.msg_type {
            Request | Renew | Release | Decline => {
                let mut r = self.reply(Reply, msg);
                r.options.push(DhcpOption::StatusCode(
                    Status::UseMulticast,
                    "use multicast".into(),
                ));
                Ok(r)
            }
            _ => Err(Dhcp6Error::Invalid("sent by unicast")),
        }
    }

    fn reply(&self, msg_type: MessageType, msg: &Message) -> Message {
        let mut options = vec![DhcpOption::ServerId(self.duid.clone())];
        if let Some(cid) = msg.client_id() {
            options.push(DhcpOption::ClientId(cid.to_vec()));
        }
        Message {
            msg_type,
            xid: msg.xid,
            options,
        }
    }

    /// DNS servers, search list and captive portal, as configured.
    fn add_config(&self, m: &mut Message) {
        let s = &self.settings;
        if !s.dns.is_empty() {
            m.options.push(DhcpOption::DnsServers(s.dns.clone()));
        }
        if !s.domains.is_empty() {
            m.options.push(DhcpOption::DomainList(s.domains.clone()));
        }
        if let Some(uri) = &s.captive_portal_uri {
            m.options.push(DhcpOption::CaptivePortal(uri.clone()));
        }
    }

    fn information(&self, msg: &Message) -> Message {
        let mut r = self.reply(MessageType::Reply, msg);
        self.add_config(&mut r);
        if let Some(t) = self.settings.info_refresh_secs {
            r.options.push(DhcpOption::InformationRefreshTime(t));
        }
        r
    }

    fn solicit(&mut self, msg: &Message, c: &Client, now: UnixMillis) -> Message {
        let rapid = self.settings.rapid_commit && msg.option(wire::OPT_RAPID_COMMIT).is_some();
        let mut r = if rapid {
            let mut r = self.reply(MessageType::Reply, msg);
            r.options.push(DhcpOption::RapidCommit);
            r
        } else {
            let mut r = self.reply(MessageType::Advertise, msg);
            // The highest preference: the client need not wait for others.
            r.options.push(DhcpOption::Preference(255));
            r
        };
        let ias: Vec<IaNa> = msg.ia_nas().cloned().collect();
        if ias.is_empty() {
            r.options.push(DhcpOption::StatusCode(
                Status::NoAddrsAvail,
                "no IA_NA requested".into(),
            ));
        }
        for ia in &ias {
            let answer = self.answer_ia(c, ia, rapid, now);
            r.options.push(DhcpOption::IaNa(answer));
        }
        self.add_config(&mut r);
        r
    }

    /// Request, Renew and Rebind: bind (or extend) every IA. A Renew or
    /// Rebind lassi has no binding for (it restarted without its leases)
    /// gets a new one, which is the same address: addresses are derived.
    fn commit(&mut self, msg: &Message, c: &Client, now: UnixMillis) -> Message {
        let mut r = self.reply(MessageType::Reply, msg);
        let ias: Vec<IaNa> = msg.ia_nas().cloned().collect();
        for ia in &ias {
            let answer = self.answer_ia(c, ia, true, now);
            r.options.push(DhcpOption::IaNa(answer));
        }
        self.add_config(&mut r);
        r
    }

    /// Confirm (RFC 8415 §18.3.3): Success when every address is on the
    /// link, NotOnLink otherwise; no reply without addresses.
    fn confirm(&self, msg: &Message) -> Option<Message> {
        let mut addrs = msg.ia_nas().flat_map(IaNa::addrs).peekable();
        addrs.peek()?;
        let on_link = addrs.all(|a| self.settings.prefix.contains(a.addr));
        let mut r = self.reply(MessageType::Reply, msg);
        r.options.push(if on_link {
            DhcpOption::StatusCode(Status::Success, "all addresses on link".into())
        } else {
            DhcpOption::StatusCode(Status::NotOnLink, "not on this link".into())
        });
        Some(r)
    }

    /// The client's binding of `ia`, if it holds one.
    fn binding_of(&self, c: &Client, iaid: u32) -> Option<Ipv6Addr> {
        self.by_ia
            .get(&(c.duid.to_vec(), iaid))
            .copied()
            .filter(|a| self.leases.get(a).is_some_and(|l| l.bound))
    }

    fn no_binding(iaid: u32) -> DhcpOption {
        DhcpOption::IaNa(IaNa {
            iaid,
            t1: 0,
            t2: 0,
            options: vec![DhcpOption::StatusCode(
                Status::NoBinding,
                "no binding".into(),
            )],
        })
    }

    fn release(&mut self, msg: &Message, c: &Client) -> Message {
        let mut r = self.reply(MessageType::Reply, msg);
        for iaid in msg.ia_nas().map(|ia| ia.iaid).collect::<Vec<_>>() {
            match self.binding_of(c, iaid) {
                Some(a) => self.drop_lease(a, |mac, addr| Lease6Event::Released { mac, addr }),
                None => r.options.push(Self::no_binding(iaid)),
            }
        }
        r.options
            .push(DhcpOption::StatusCode(Status::Success, "released".into()));
        r
    }

    fn decline(&mut self, msg: &Message, c: &Client, now: UnixMillis) -> Message {
        let mut r = self.reply(MessageType::Reply, msg);
        let ias: Vec<IaNa> = msg.ia_nas().cloned().collect();
        for ia in &ias {
            let Some(a) = self.binding_of(c, ia.iaid) else {
                r.options.push(Self::no_binding(ia.iaid));
                continue;
            };
            if ia.addrs().any(|x| x.addr == a) {
                self.drop_lease(a, |mac, addr| Lease6Event::Declined { mac, addr });
                if self.declined.len() < self.settings.max_leases {
                    let until = now + u64::from(DECLINE_QUARANTINE_SECS) * 1000;
                    self.declined.insert(a, until);
                }
            }
        }
        r.options
            .push(DhcpOption::StatusCode(Status::Success, "declined".into()));
        r
    }
}

impl Dhcp6Server {
    /// The next reply to send.
    pub fn poll_transmit(&mut self) -> Option<Ipv6Transmit> {
        self.transmits.pop_front()
    }

    /// The next lease change for the session layer.
    pub fn poll_event(&mut self) -> Option<Lease6Event> {
        self.events.pop_front()
    }

    /// When the next binding or offer runs out.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.expiry.first().map(|&(t, _)| t)
    }

    /// Ends the bindings and offers that ran out by `now` (bindings as
    /// [`Lease6Event::Expired`]) and the quarantines that are over.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        while let Some(&(t, addr)) = self.expiry.first() {
            if t > now {
                break;
            }
            self.drop_lease(addr, |mac, addr| Lease6Event::Expired { mac, addr });
        }
        self.declined.retain(|_, until| *until > now);
    }

    /// Ends every binding of `mac` (the session layer forgot the client),
    /// returning them as [`Lease6Event::Released`] events too.
    pub fn release_mac(&mut self, mac: MacAddr) {
        let addrs: Vec<Ipv6Addr> = self
            .leases
            .values()
            .filter(|l| l.mac == mac)
            .map(|l| l.addr)
            .collect();
        for a in addrs {
            self.drop_lease(a, |mac, addr| Lease6Event::Released { mac, addr });
        }
    }

    /// The bound leases.
    pub fn leases(&self) -> impl Iterator<Item = &Lease6> {
        self.leases.values().filter(|l| l.bound)
    }

    /// Who holds `addr` bound, if anyone.
    pub fn owner_of(&self, addr: Ipv6Addr) -> Option<MacAddr> {
        self.leases.get(&addr).filter(|l| l.bound).map(|l| l.mac)
    }

    /// The bound leases in their saved form, sorted by address.
    pub fn records(&self) -> Vec<Lease6Record> {
        let mut v: Vec<Lease6Record> = self
            .leases()
            .map(|l| Lease6Record {
                duid: hex(&l.duid),
                iaid: l.iaid,
                addr: l.addr,
                mac: l.mac,
                expires: l.expires,
            })
            .collect();
        v.sort_by_key(|r| r.addr);
        v
    }

    /// Counters.
    pub fn stats(&self) -> Dhcp6Stats {
        Dhcp6Stats {
            bindings: self.leases().count(),
            ..self.stats
        }
    }
}
