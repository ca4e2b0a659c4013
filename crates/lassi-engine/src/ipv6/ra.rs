//! lassi's router advertisements: what they say ([`RaSettings`], checked by
//! [`RaSettings::validate`]) and when they go out ([`RaScheduler`]).
//!
//! # When (RFC 4861 §6.2.4–§6.2.6)
//!
//! Unsolicited RAs go to all nodes every *MinRtrAdvInterval* to
//! *MaxRtrAdvInterval* seconds, uniformly at random (the jitter comes from
//! the seed the shell passes). The first [`MAX_INITIAL_RTR_ADVERTISEMENTS`]
//! are at most [`MAX_INITIAL_RTR_ADVERT_INTERVAL_MS`] apart, so a starting
//! gateway is found quickly. A Router Solicitation moves the next RA to a
//! random point in the next [`MAX_RA_DELAY_TIME_MS`], but never closer than
//! [`MIN_DELAY_BETWEEN_RAS_MS`] to the previous one: however many clients
//! solicit (or however fast one floods), at most one RA per 3 s answers
//! them all. The answer is multicast, like the periodic ones, so every
//! client's timers are refreshed by it. [`RaScheduler::shutdown`] queues a
//! final RA with router lifetime 0 (§6.2.5) so hosts drop lassi as their
//! default router at once.
//!
//! # Lifetimes that fit together
//!
//! - Router lifetime: 3 × MaxRtrAdvInterval by default (RFC 4861
//!   AdvDefaultLifetime), and never below MaxRtrAdvInterval, or the default
//!   route expires between two RAs.
//! - RDNSS/DNSSL lifetime: 3 × MaxRtrAdvInterval by default (RFC 8106 §5.1
//!   "SHOULD by default be at least 3 × MaxRtrAdvInterval"; it replaced RFC
//!   6106's "between MaxRtrAdvInterval and 2 × MaxRtrAdvInterval" because
//!   one or two lost multicast RAs made hosts drop their DNS servers).
//!   Never below MaxRtrAdvInterval.
//! - Prefix preferred lifetime ≤ valid lifetime (RFC 4862 §5.5.3 c: hosts
//!   ignore a prefix option otherwise), and preferred ≥ MaxRtrAdvInterval so
//!   SLAAC addresses are not deprecated between RAs. Defaults: preferred
//!   1 h, valid 2 h: long enough to ride out many lost RAs, short enough
//!   that a renumbered prefix (later: from DHCPv6-PD) leaves the hosts soon;
//!   hosts keep at least 2 h of an existing valid lifetime anyway (RFC 4862
//!   §5.5.3 e).
//! - MTU at least 1280 (RFC 8200 §5).

use core::fmt;
use core::net::Ipv6Addr;
use std::collections::VecDeque;

use super::Rng;
use crate::wire::ipv6::{self, Ipv6Net, Ipv6Transmit, NEXT_ICMPV6};
use crate::wire::ndp::{self, NdpOption, PrefixInfo, RaFlags, Repr};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// RFC 4861 §10: MAX_INITIAL_RTR_ADVERT_INTERVAL (16 s).
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL_MS: u64 = 16_000;
/// RFC 4861 §10: MAX_INITIAL_RTR_ADVERTISEMENTS.
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u8 = 3;
/// RFC 4861 §10: MAX_RA_DELAY_TIME (0.5 s).
pub const MAX_RA_DELAY_TIME_MS: u64 = 500;
/// RFC 4861 §10: MIN_DELAY_BETWEEN_RAS (3 s).
pub const MIN_DELAY_BETWEEN_RAS_MS: u64 = 3_000;
/// RFC 4861 §6.2.1: the bounds of MaxRtrAdvInterval, in seconds.
pub const MAX_INTERVAL_RANGE: core::ops::RangeInclusive<u32> = 4..=1800;
/// RFC 4861 §6.2.1: the longest router lifetime, in seconds.
pub const MAX_ROUTER_LIFETIME_SECS: u16 = 9000;
/// Default MaxRtrAdvInterval (RFC 4861's default).
pub const DEFAULT_MAX_INTERVAL_SECS: u32 = 600;
/// Default prefix valid lifetime.
pub const DEFAULT_VALID_LIFETIME_SECS: u32 = 7200;
/// Default prefix preferred lifetime.
pub const DEFAULT_PREFERRED_LIFETIME_SECS: u32 = 3600;
/// The longest captive-portal URI lassi sends (RFC 8910 leaves it to the
/// option's length; DHCPv6 and DHCPv4 carry at most 255 bytes, so the same
/// URI fits all three).
pub const MAX_PORTAL_URI_LEN: usize = 255;

/// What lassi's router advertisements say and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaSettings {
    /// The gateway's MAC on the LAN (source link-layer address option).
    pub router_mac: MacAddr,
    /// The gateway's link-local address, the RAs' source and the hosts' default router.
    pub link_local: Ipv6Addr,
    /// The LAN prefix announced in a Prefix Information option (a /64 for SLAAC).
    pub prefix: Option<Ipv6Net>,
    /// A flag: hosts form addresses in `prefix` by SLAAC.
    pub slaac: bool,
    /// M flag: addresses by DHCPv6.
    pub managed: bool,
    /// O flag: other configuration by DHCPv6.
    pub other: bool,
    /// MaxRtrAdvInterval in seconds.
    pub max_interval_secs: u32,
    /// MinRtrAdvInterval in seconds (3 to 0.75 × max).
    pub min_interval_secs: u32,
    /// Router lifetime in seconds (0: not a default router).
    pub router_lifetime_secs: u16,
    /// Prefix valid lifetime in seconds.
    pub valid_lifetime_secs: u32,
    /// Prefix preferred lifetime in seconds.
    pub preferred_lifetime_secs: u32,
    /// Link MTU to announce.
    pub mtu: Option<u32>,
    /// DNS servers (RDNSS); none: no option.
    pub rdnss: Vec<Ipv6Addr>,
    /// DNS search domains (DNSSL); none: no option.
    pub dnssl: Vec<String>,
    /// Lifetime of the RDNSS and DNSSL options in seconds.
    pub dns_lifetime_secs: u32,
    /// Captive-portal API URI (RFC 8910 option 37).
    pub captive_portal_uri: Option<String>,
    /// Cur Hop Limit for hosts (0: unspecified).
    pub hop_limit: u8,
}

impl RaSettings {
    /// The defaults for a router with `router_mac` announcing `prefix` for
    /// SLAAC: its EUI-64 link-local address, RFC 4861's intervals (600 s,
    /// min 200 s), router and DNS lifetimes 3 × 600 s, prefix lifetimes
    /// 1 h/2 h, hop limit 64.
    pub fn new(router_mac: MacAddr, prefix: Option<Ipv6Net>) -> RaSettings {
        let max = DEFAULT_MAX_INTERVAL_SECS;
        RaSettings {
            router_mac,
            link_local: ipv6::link_local_from_mac(router_mac),
            prefix,
            slaac: true,
            managed: false,
            other: false,
            max_interval_secs: max,
            min_interval_secs: max / 3,
            router_lifetime_secs: (3 * max) as u16,
            valid_lifetime_secs: DEFAULT_VALID_LIFETIME_SECS,
            preferred_lifetime_secs: DEFAULT_PREFERRED_LIFETIME_SECS,
            mtu: None,
            rdnss: Vec::new(),
            dnssl: Vec::new(),
            dns_lifetime_secs: 3 * max,
            captive_portal_uri: None,
            hop_limit: 64,
        }
    }
}

/// A mistake in [`RaSettings`], found by [`RaSettings::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaSettingsError {
    /// `link_local` is not a link-local address.
    LinkLocal(Ipv6Addr),
    /// SLAAC needs a /64 prefix.
    SlaacPrefix(Option<Ipv6Net>),
    /// MaxRtrAdvInterval outside [`MAX_INTERVAL_RANGE`].
    MaxInterval(u32),
    /// MinRtrAdvInterval below 3 s or above 0.75 × MaxRtrAdvInterval.
    MinInterval(u32),
    /// Router lifetime neither 0 nor between MaxRtrAdvInterval and 9000 s.
    RouterLifetime(u16),
    /// Preferred lifetime above the valid lifetime, or below MaxRtrAdvInterval.
    PrefixLifetimes(u32, u32),
    /// DNS option lifetime below MaxRtrAdvInterval.
    DnsLifetime(u32),
    /// MTU below 1280 or above 65535.
    Mtu(u32),
    /// A DNS search domain that is not a domain name.
    Domain(String),
    /// A captive-portal URI that is not http(s) or too long.
    CaptivePortalUri(String),
}

impl fmt::Display for RaSettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RaSettingsError::*;
        match self {
            LinkLocal(a) => write!(f, "router address {a} is not link-local"),
            SlaacPrefix(p) => write!(f, "SLAAC needs a /64 prefix, not {p:?}"),
            MaxInterval(s) => write!(f, "max RA interval {s}s is outside {MAX_INTERVAL_RANGE:?}"),
            MinInterval(s) => write!(f, "min RA interval {s}s: must be 3s to 0.75 × the max"),
            RouterLifetime(s) => write!(
                f,
                "router lifetime {s}s: must be 0 or from the max RA interval to 9000s"
            ),
            PrefixLifetimes(p, v) => write!(
                f,
                "prefix lifetimes: preferred {p}s must be ≤ valid {v}s and ≥ the max RA interval"
            ),
            DnsLifetime(s) => write!(f, "DNS lifetime {s}s is below the max RA interval"),
            Mtu(m) => write!(f, "MTU {m} is outside 1280..=65535"),
            Domain(d) => write!(f, "search domain '{d}' is not a domain name"),
            CaptivePortalUri(u) => write!(f, "captive portal URI '{u}' is not http(s) ≤ 255 bytes"),
        }
    }
}

impl std::error::Error for RaSettingsError {}

/// True when `uri` is an http(s) URI lassi may hand out as its captive
/// portal (RFC 8910), at most [`MAX_PORTAL_URI_LEN`] bytes without controls.
pub fn portal_uri_ok(uri: &str) -> bool {
    (uri.starts_with("https://") || uri.starts_with("http://"))
        && uri.len() <= MAX_PORTAL_URI_LEN
        && !uri.bytes().any(|b| b.is_ascii_control() || b == b' ')
}

impl RaSettings {
    /// Checks the settings against RFC 4861 §6.2.1, RFC 8106 and the rules
    /// in this module's docs.
    pub fn validate(&self) -> Result<(), RaSettingsError> {
        use RaSettingsError::*;
        let max = self.max_interval_secs;
        if !ipv6::is_link_local(self.link_local) {
            return Err(LinkLocal(self.link_local));
        }
        if self.slaac && self.prefix.is_none_or(|p| p.len() != 64) {
            return Err(SlaacPrefix(self.prefix));
        }
        if !MAX_INTERVAL_RANGE.contains(&max) {
            return Err(MaxInterval(max));
        }
        if self.min_interval_secs < 3 || u64::from(self.min_interval_secs) * 4 > u64::from(max) * 3
        {
            return Err(MinInterval(self.min_interval_secs));
        }
        let rl = self.router_lifetime_secs;
        if rl != 0 && (u32::from(rl) < max || rl > MAX_ROUTER_LIFETIME_SECS) {
            return Err(RouterLifetime(rl));
        }
        let (p, v) = (self.preferred_lifetime_secs, self.valid_lifetime_secs);
        if self.prefix.is_some() && (p > v || p < max) {
            return Err(PrefixLifetimes(p, v));
        }
        self.validate_options()
    }

    fn validate_options(&self) -> Result<(), RaSettingsError> {
        use RaSettingsError::*;
        let any_dns = !self.rdnss.is_empty() || !self.dnssl.is_empty();
        if any_dns && self.dns_lifetime_secs < self.max_interval_secs {
            return Err(DnsLifetime(self.dns_lifetime_secs));
        }
        if let Some(m) = self.mtu.filter(|m| !(1280..=65535).contains(m)) {
            return Err(Mtu(m));
        }
        if let Some(d) = self
            .dnssl
            .iter()
            .find(|d| !ndp::emit_name(d, &mut Vec::new()))
        {
            return Err(Domain(d.clone()));
        }
        match &self.captive_portal_uri {
            Some(u) if !portal_uri_ok(u) => Err(CaptivePortalUri(u.clone())),
            _ => Ok(()),
        }
    }

    /// The Router Advertisement these settings describe, with `router_lifetime`.
    pub fn advert(&self, router_lifetime: u16) -> Repr {
        let mut options = vec![NdpOption::SourceLinkAddr(self.router_mac)];
        if let Some(mtu) = self.mtu {
            options.push(NdpOption::Mtu(mtu));
        }
        if let Some(p) = self.prefix {
            options.push(NdpOption::PrefixInfo(PrefixInfo {
                prefix_len: p.len(),
                on_link: true,
                autonomous: self.slaac,
                valid_lifetime: self.valid_lifetime_secs,
                preferred_lifetime: self.preferred_lifetime_secs,
                prefix: p.addr(),
            }));
        }
        self.dns_options(&mut options);
        if let Some(uri) = &self.captive_portal_uri {
            options.push(NdpOption::CaptivePortal(uri.clone()));
        }
        Repr::RouterAdvert {
            hop_limit: self.hop_limit,
            flags: RaFlags {
                managed: self.managed,
                other: self.other,
            },
            router_lifetime,
            reachable_time: 0,
            retrans_timer: 0,
            options,
        }
    }

    fn dns_options(&self, options: &mut Vec<NdpOption>) {
        let lifetime = self.dns_lifetime_secs;
        if !self.rdnss.is_empty() {
            // An RDNSS option holds at most 127 addresses (length ≤ 255).
            for chunk in self.rdnss.chunks(127) {
                options.push(NdpOption::Rdnss {
                    lifetime,
                    servers: chunk.to_vec(),
                });
            }
        }
        if !self.dnssl.is_empty() {
            options.push(NdpOption::Dnssl {
                lifetime,
                domains: self.dnssl.clone(),
            });
        }
    }
}

/// What the scheduler has done, for the status page and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RaStats {
    /// Router advertisements sent (periodic and solicited).
    pub sent: u64,
    /// Router solicitations handled.
    pub solicits: u64,
    /// Solicitations answered by an RA already scheduled (rate limit or
    /// coalescing).
    pub solicits_coalesced: u64,
}

/// When to send lassi's router advertisements; see the module docs.
#[derive(Debug, Clone)]
pub struct RaScheduler {
    settings: RaSettings,
    rng: Rng,
    next: Option<UnixMillis>,
    last_sent: Option<UnixMillis>,
    initial_left: u8,
    queue: VecDeque<Ipv6Transmit>,
    stats: RaStats,
}

impl RaScheduler {
    /// A scheduler for `settings` (validated by the caller) whose jitter
    /// comes from `seed`; the first RA is due at once.
    pub fn new(settings: RaSettings, seed: u64, now: UnixMillis) -> RaScheduler {
        RaScheduler {
            settings,
            rng: Rng::new(seed),
            next: Some(now),
            last_sent: None,
            initial_left: MAX_INITIAL_RTR_ADVERTISEMENTS,
            queue: VecDeque::new(),
            stats: RaStats::default(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &RaSettings {
        &self.settings
    }

    /// Replaces the settings; like a start (RFC 4861 §6.2.4), the next
    /// RAs come quickly so hosts learn the change.
    pub fn set_settings(&mut self, settings: RaSettings, now: UnixMillis) {
        self.settings = settings;
        self.initial_left = MAX_INITIAL_RTR_ADVERTISEMENTS;
        self.solicit_at(now);
    }

    /// When [`RaScheduler::handle_timeout`] is next due (`None` after shutdown).
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.next
    }

    /// Sends the RA that is due at `now`, if any, and schedules the next.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        let Some(due) = self.next else { return };
        if now < due {
            return;
        }
        self.send(self.settings.router_lifetime_secs, now);
        let s = &self.settings;
        let (lo, hi) = (
            u64::from(s.min_interval_secs) * 1000,
            u64::from(s.max_interval_secs) * 1000,
        );
        let mut interval = self.rng.between(lo, hi);
        if self.initial_left > 0 {
            self.initial_left -= 1;
            interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL_MS);
        }
        self.next = Some(now + interval);
    }

    /// A (validated) Router Solicitation arrived at `now`: the next RA
    /// moves earlier, within [`MAX_RA_DELAY_TIME_MS`] but no sooner than
    /// [`MIN_DELAY_BETWEEN_RAS_MS`] after the last one.
    pub fn handle_router_solicit(&mut self, now: UnixMillis) {
        self.stats.solicits += 1;
        if !self.solicit_at(now) {
            self.stats.solicits_coalesced += 1;
        }
    }

    fn solicit_at(&mut self, now: UnixMillis) -> bool {
        let Some(next) = self.next else { return false };
        let mut at = now + self.rng.between(0, MAX_RA_DELAY_TIME_MS);
        if let Some(last) = self.last_sent {
            at = at.max(last + MIN_DELAY_BETWEEN_RAS_MS);
        }
        if at < next {
            self.next = Some(at);
            true
        } else {
            false
        }
    }

    /// Queues the final RA (router lifetime 0, RFC 4861 §6.2.5) and stops
    /// the schedule; the shell sends it before it exits.
    pub fn shutdown(&mut self, now: UnixMillis) {
        if self.next.take().is_some() {
            self.send(0, now);
        }
    }

    fn send(&mut self, router_lifetime: u16, now: UnixMillis) {
        let s = &self.settings;
        let payload = s
            .advert(router_lifetime)
            .emit(s.link_local, ipv6::ALL_NODES);
        self.queue.push_back(Ipv6Transmit {
            src_mac: s.router_mac,
            dst_mac: ipv6::multicast_mac(ipv6::ALL_NODES),
            src: s.link_local,
            dst: ipv6::ALL_NODES,
            hop_limit: ndp::ND_HOP_LIMIT,
            next_header: NEXT_ICMPV6,
            payload,
        });
        self.last_sent = Some(now);
        self.stats.sent += 1;
    }

    /// The next RA to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Ipv6Transmit> {
        self.queue.pop_front()
    }

    /// What the scheduler has done so far.
    pub fn stats(&self) -> RaStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ndp::Ipv6Meta;

    const MAC: MacAddr = MacAddr([0x02, 0, 0x5e, 0x10, 0, 1]);

    fn settings() -> RaSettings {
        let mut s = RaSettings::new(MAC, Ipv6Net::new("2001:db8:1::".parse().unwrap(), 64));
        s.rdnss = vec!["2001:db8:1::1".parse().unwrap()];
        s.dnssl = vec!["hotspot.example".into()];
        s.captive_portal_uri = Some("https://portal.example/api".into());
        s.mtu = Some(1500);
        s
    }

    fn drain(s: &mut RaScheduler) -> Vec<Ipv6Transmit> {
        core::iter::from_fn(|| s.poll_transmit()).collect()
    }

    /// Runs the scheduler from `from` to `to`, firing timers as the shell
    /// would, calling `rs` at each millisecond it returns true for.
    fn run(
        s: &mut RaScheduler,
        from: u64,
        to: u64,
        step: u64,
        rs: impl Fn(u64) -> bool,
    ) -> Vec<u64> {
        let mut sent = Vec::new();
        let mut t = from;
        while t <= to {
            if rs(t) {
                s.handle_router_solicit(t);
            }
            if s.poll_timeout().is_some_and(|d| d <= t) {
                s.handle_timeout(t);
                sent.extend(drain(s).iter().map(|_| t));
            }
            t += step;
        }
        sent
    }

    #[test]
    fn defaults_are_valid_and_consistent() {
        let s = settings();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(
            s.link_local,
            "fe80::5eff:fe10:1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!((s.min_interval_secs, s.max_interval_secs), (200, 600));
        assert_eq!((s.router_lifetime_secs, s.dns_lifetime_secs), (1800, 1800));
        assert!(s.preferred_lifetime_secs <= s.valid_lifetime_secs);
    }

    #[test]
    fn validation_refuses_what_hosts_would_misread() {
        use RaSettingsError::*;
        let check = |f: fn(&mut RaSettings)| {
            let mut s = settings();
            f(&mut s);
            s.validate()
        };
        assert!(matches!(
            check(|s| s.link_local = "2001:db8::1".parse().unwrap()),
            Err(LinkLocal(_))
        ));
        assert!(matches!(
            check(|s| s.prefix = Ipv6Net::new("2001:db8::".parse().unwrap(), 56)),
            Err(SlaacPrefix(_))
        ));
        assert_eq!(check(|s| s.max_interval_secs = 3), Err(MaxInterval(3)));
        assert_eq!(check(|s| s.min_interval_secs = 451), Err(MinInterval(451)));
        assert_eq!(check(|s| s.min_interval_secs = 2), Err(MinInterval(2)));
        assert_eq!(
            check(|s| s.router_lifetime_secs = 599),
            Err(RouterLifetime(599))
        );
        assert_eq!(
            check(|s| s.router_lifetime_secs = 9001),
            Err(RouterLifetime(9001))
        );
        assert_eq!(check(|s| s.router_lifetime_secs = 0), Ok(()));
        assert_eq!(
            check(|s| s.preferred_lifetime_secs = 7201),
            Err(PrefixLifetimes(7201, 7200))
        );
        assert_eq!(
            check(|s| s.preferred_lifetime_secs = 599),
            Err(PrefixLifetimes(599, 7200))
        );
        assert_eq!(check(|s| s.dns_lifetime_secs = 599), Err(DnsLifetime(599)));
        assert_eq!(check(|s| s.mtu = Some(1279)), Err(Mtu(1279)));
        assert!(matches!(
            check(|s| s.dnssl = vec!["a..b".into()]),
            Err(Domain(_))
        ));
        assert!(matches!(
            check(|s| s.captive_portal_uri = Some("ftp://x".into())),
            Err(CaptivePortalUri(_))
        ));
        let mut dhcp_only = settings();
        dhcp_only.prefix = None;
        dhcp_only.slaac = false;
        dhcp_only.managed = true;
        assert_eq!(dhcp_only.validate(), Ok(()));
    }

    #[test]
    fn advert_carries_every_option_and_parses_back() {
        let s = settings();
        let mut sch = RaScheduler::new(s.clone(), 1, 1000);
        assert_eq!(sch.poll_timeout(), Some(1000));
        sch.handle_timeout(1000);
        let t = sch.poll_transmit().unwrap();
        assert_eq!(
            (t.dst, t.dst_mac),
            (ipv6::ALL_NODES, MacAddr([0x33, 0x33, 0, 0, 0, 1]))
        );
        let frame = t.to_frame();
        let sum = ipv6::parse(&frame[14..]).unwrap();
        let meta = Ipv6Meta {
            src: sum.src,
            dst: sum.dst,
            hop_limit: sum.hop_limit,
        };
        let repr = Repr::parse_validated(&meta, sum.upper(&frame[14..])).unwrap();
        assert_eq!(repr, s.advert(1800));
        let kinds: Vec<u8> = repr.options().iter().map(NdpOption::kind).collect();
        assert_eq!(kinds, vec![1, 5, 3, 25, 31, 37]);
        // etherparse reads the same frame as ICMPv6 with a good checksum.
        let p = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
        match p.transport {
            Some(etherparse::TransportSlice::Icmpv6(i)) => {
                assert_eq!(i.type_u8(), 134);
                let hdr = i.header();
                let ok = hdr
                    .icmp_type
                    .calc_checksum(t.src.octets(), t.dst.octets(), i.payload())
                    .unwrap();
                assert_eq!(ok, hdr.checksum);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn intervals_follow_rfc_4861() {
        let mut sch = RaScheduler::new(settings(), 42, 0);
        let sent = run(&mut sch, 0, 4_000_000, 100, |_| false);
        let gaps: Vec<u64> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        // The first three intervals are at most 16 s, the rest in [200 s, 600 s].
        assert!(gaps[..3]
            .iter()
            .all(|&g| g <= MAX_INITIAL_RTR_ADVERT_INTERVAL_MS));
        assert!(
            gaps[3..].iter().all(|&g| (200_000..=600_100).contains(&g)),
            "{gaps:?}"
        );
        // Jittered: not all equal, and another seed gives another schedule.
        assert!(gaps[3..].windows(2).any(|w| w[0] != w[1]));
        let mut other = RaScheduler::new(settings(), 43, 0);
        assert_ne!(run(&mut other, 0, 4_000_000, 100, |_| false), sent);
    }

    #[test]
    fn solicits_are_answered_quickly_and_rate_limited() {
        let mut sch = RaScheduler::new(settings(), 5, 0);
        // Skip the initial burst.
        run(&mut sch, 0, 100_000, 10, |_| false);
        let quiet_until = sch.poll_timeout().unwrap();
        assert!(quiet_until > 300_000);
        // One solicitation: an RA within 0.5 s.
        let sent = run(&mut sch, 200_000, 201_000, 1, |t| t == 200_000);
        assert_eq!(sent.len(), 1);
        assert!(sent[0] - 200_000 <= MAX_RA_DELAY_TIME_MS);
        // A flood of solicitations for 30 s: at most one RA per 3 s.
        let sent = run(&mut sch, 201_001, 231_000, 1, |_| true);
        assert!(sent
            .windows(2)
            .all(|w| w[1] - w[0] >= MIN_DELAY_BETWEEN_RAS_MS));
        assert!((9..=11).contains(&sent.len()), "{sent:?}");
        assert!(sch.stats().solicits_coalesced > 29_000);
    }

    #[test]
    fn shutdown_sends_a_zero_lifetime_ra_and_stops() {
        let mut sch = RaScheduler::new(settings(), 5, 0);
        sch.handle_timeout(0);
        drain(&mut sch);
        sch.shutdown(10);
        let t = sch.poll_transmit().unwrap();
        match Repr::parse(&t.payload).unwrap() {
            Repr::RouterAdvert {
                router_lifetime, ..
            } => assert_eq!(router_lifetime, 0),
            r => panic!("{r:?}"),
        }
        assert_eq!(sch.poll_timeout(), None);
        sch.handle_router_solicit(20);
        sch.handle_timeout(u64::MAX);
        assert!(sch.poll_transmit().is_none());
    }

    #[test]
    fn new_settings_are_announced_quickly() {
        let mut sch = RaScheduler::new(settings(), 9, 0);
        run(&mut sch, 0, 100_000, 10, |_| false);
        let mut s = settings();
        s.managed = true;
        sch.set_settings(s, 200_000);
        assert!(sch.poll_timeout().unwrap() <= 200_000 + MAX_RA_DELAY_TIME_MS);
    }
}
