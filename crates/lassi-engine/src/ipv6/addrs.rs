//! The IPv6 addresses each client is learnt to use: its link-local
//! address, SLAAC and privacy addresses and DHCPv6 leases, learnt from its
//! duplicate-address-detection probes, neighbour advertisements, packet
//! sources and the DHCPv6 server. The guards accept a client's IPv6 packet
//! only from one of its own addresses ([`AddrTable::is_own`]); the session
//! layer counts all of them as the client's.
//!
//! Ownership is first come, first served (the idea of FCFS SAVI, RFC 6620):
//! an address belongs to the first MAC seen using it, and another MAC may
//! take it only once the owner was silent on it for `stale_after_ms` (a
//! phone that left and an address reused). DHCPv6 addresses belong to the
//! client the server bound them to, whatever came first.
//!
//! Everything is bounded: at most `per_client` addresses per client and
//! `max_clients` clients. A client at its bound that shows a new address
//! loses the one it used least recently, but never a DHCPv6 lease nor its
//! newest link-local address (which neighbour discovery and DHCPv6 need);
//! when only those are left, the new address is refused. Addresses not
//! seen for `idle_ms` are forgotten ([`AddrTable::handle_timeout`]), DHCPv6
//! ones only when the server says so ([`AddrTable::remove`]).

use core::net::Ipv6Addr;
use std::collections::HashMap;

use serde::Serialize;

use crate::wire::ipv6::{self, Ipv6Net};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// Where an address was learnt from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Origin {
    /// A duplicate-address-detection probe (NS from `::`).
    Dad,
    /// A neighbour advertisement for it.
    NeighborAdvert,
    /// The source address of the client's packet (neighbour discovery,
    /// DHCPv6 to lassi).
    Source,
    /// A DHCPv6 lease.
    Dhcpv6,
}

/// One address of a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Learnt {
    /// The address.
    pub addr: Ipv6Addr,
    /// How it was (last) learnt.
    pub origin: Origin,
    /// When it was first seen.
    pub first_seen: UnixMillis,
    /// When it was last seen.
    pub last_seen: UnixMillis,
}

/// Bounds and times of an [`AddrTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrSettings {
    /// The LAN prefix: global addresses outside it are refused.
    pub prefix: Option<Ipv6Net>,
    /// Most addresses per client.
    pub per_client: usize,
    /// Most clients.
    pub max_clients: usize,
    /// An owner silent this long on an address loses it to another claimant.
    pub stale_after_ms: u64,
    /// Addresses not seen for this long are forgotten.
    pub idle_ms: u64,
}

impl AddrSettings {
    /// Eight addresses per client (a link-local, a stable SLAAC address, a
    /// DHCPv6 lease and a few privacy addresses, RFC 8981 keeps one or two
    /// current), 4096 clients, stale after 5 min, forgotten after 1 h.
    pub fn new(prefix: Option<Ipv6Net>) -> AddrSettings {
        AddrSettings {
            prefix,
            per_client: 8,
            max_clients: 4096,
            stale_after_ms: 300_000,
            idle_ms: 3_600_000,
        }
    }
}

/// Why an address was not learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unspecified, loopback or multicast.
    NotUnicast,
    /// Neither link-local nor in the LAN prefix.
    OffLink,
    /// Another client owns it and was heard on it recently.
    OwnedBy(MacAddr),
    /// The client holds its bound of addresses it may not lose.
    Full,
    /// The table holds its bound of clients.
    TooManyClients,
}

/// What [`AddrTable::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    /// A new address of the client.
    Added,
    /// One it had already.
    Refreshed,
    /// Added, and `0` was dropped to make room (the data plane forgets it).
    Evicted(Ipv6Addr),
    /// Added, taken from another client (the data plane moves it).
    Taken {
        /// The previous owner.
        from: MacAddr,
    },
    /// Not learnt.
    Refused(Refusal),
}

/// Per-client address sets; see the module docs.
#[derive(Debug, Clone)]
pub struct AddrTable {
    settings: AddrSettings,
    clients: HashMap<MacAddr, Vec<Learnt>>,
    owners: HashMap<Ipv6Addr, MacAddr>,
}

impl AddrTable {
    /// An empty table.
    pub fn new(settings: AddrSettings) -> AddrTable {
        AddrTable {
            settings,
            clients: HashMap::new(),
            owners: HashMap::new(),
        }
    }

    fn check_addr(&self, addr: Ipv6Addr) -> Result<(), Refusal> {
        if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
            return Err(Refusal::NotUnicast);
        }
        let on_link =
            ipv6::is_link_local(addr) || self.settings.prefix.is_some_and(|p| p.contains(addr));
        if on_link {
            Ok(())
        } else {
            Err(Refusal::OffLink)
        }
    }

    /// `mac` was seen using (or about to use) `addr` at `now`.
    pub fn learn(
        &mut self,
        mac: MacAddr,
        addr: Ipv6Addr,
        origin: Origin,
        now: UnixMillis,
    ) -> Learn {
        if let Err(r) = self.check_addr(addr) {
            return Learn::Refused(r);
        }
        let mut taken = None;
        match self.owners.get(&addr) {
            Some(&m) if m == mac => return self.refresh(mac, addr, origin, now),
            Some(&m) => {
                if !self.may_take(m, addr, origin, now) {
                    return Learn::Refused(Refusal::OwnedBy(m));
                }
                taken = Some(m);
            }
            None => {}
        }
        if !self.clients.contains_key(&mac) && self.clients.len() >= self.settings.max_clients {
            return Learn::Refused(Refusal::TooManyClients);
        }
        let evicted = match self.make_room(mac) {
            Ok(e) => e,
            Err(r) => return Learn::Refused(r),
        };
        if let Some(old) = taken {
            self.remove(old, addr);
        }
        self.owners.insert(addr, mac);
        self.clients.entry(mac).or_default().push(Learnt {
            addr,
            origin,
            first_seen: now,
            last_seen: now,
        });
        match (taken, evicted) {
            (Some(from), _) => Learn::Taken { from },
            (None, Some(e)) => Learn::Evicted(e),
            (None, None) => Learn::Added,
        }
    }

    fn refresh(&mut self, mac: MacAddr, addr: Ipv6Addr, origin: Origin, now: UnixMillis) -> Learn {
        if let Some(l) = self.entry_mut(mac, addr) {
            l.last_seen = l.last_seen.max(now);
            if origin == Origin::Dhcpv6 {
                l.origin = origin;
            }
        }
        Learn::Refreshed
    }

    fn entry_mut(&mut self, mac: MacAddr, addr: Ipv6Addr) -> Option<&mut Learnt> {
        self.clients
            .get_mut(&mac)?
            .iter_mut()
            .find(|l| l.addr == addr)
    }

    /// Whether a claim from another client may take `addr` from `owner`:
    /// a DHCPv6 binding always wins over a guess, a guess never over a
    /// binding, and otherwise the owner must have gone quiet.
    fn may_take(&self, owner: MacAddr, addr: Ipv6Addr, origin: Origin, now: UnixMillis) -> bool {
        let Some(l) = self
            .clients
            .get(&owner)
            .and_then(|v| v.iter().find(|l| l.addr == addr))
        else {
            return true;
        };
        match (origin, l.origin) {
            (Origin::Dhcpv6, _) => true,
            (_, Origin::Dhcpv6) => false,
            _ => l.last_seen + self.settings.stale_after_ms <= now,
        }
    }

    /// Drops the least recently seen address of `mac` that it may lose when
    /// it is at its bound; `Err(Full)` when there is none.
    fn make_room(&mut self, mac: MacAddr) -> Result<Option<Ipv6Addr>, Refusal> {
        let Some(v) = self.clients.get(&mac) else {
            return Ok(None);
        };
        if v.len() < self.settings.per_client {
            return Ok(None);
        }
        let newest_ll = v
            .iter()
            .filter(|l| ipv6::is_link_local(l.addr))
            .max_by_key(|l| l.last_seen)
            .map(|l| l.addr);
        let victim = v
            .iter()
            .filter(|l| l.origin != Origin::Dhcpv6 && Some(l.addr) != newest_ll)
            .min_by_key(|l| l.last_seen)
            .map(|l| l.addr)
            .ok_or(Refusal::Full)?;
        self.remove(mac, victim);
        Ok(Some(victim))
    }

    /// Forgets `addr` of `mac` (a DHCPv6 lease ended); true if it was there.
    pub fn remove(&mut self, mac: MacAddr, addr: Ipv6Addr) -> bool {
        let Some(v) = self.clients.get_mut(&mac) else {
            return false;
        };
        let before = v.len();
        v.retain(|l| l.addr != addr);
        let removed = v.len() < before;
        if v.is_empty() {
            self.clients.remove(&mac);
        }
        if removed && self.owners.get(&addr) == Some(&mac) {
            self.owners.remove(&addr);
        }
        removed
    }

    /// Forgets every address of `mac` (its session ended), returning them.
    pub fn forget(&mut self, mac: MacAddr) -> Vec<Ipv6Addr> {
        let v = self.clients.remove(&mac).unwrap_or_default();
        for l in &v {
            self.owners.remove(&l.addr);
        }
        v.into_iter().map(|l| l.addr).collect()
    }

    /// The client `addr` belongs to.
    pub fn owner_of(&self, addr: Ipv6Addr) -> Option<MacAddr> {
        self.owners.get(&addr).copied()
    }

    /// The source check of the forwarding path: true when `addr` is one
    /// of `mac`'s, whose last use is then `now` (a packet never teaches an
    /// address: it must have been learnt from neighbour discovery or DHCPv6).
    pub fn touch(&mut self, mac: MacAddr, addr: Ipv6Addr, now: UnixMillis) -> bool {
        if self.owners.get(&addr) != Some(&mac) {
            return false;
        }
        if let Some(l) = self.entry_mut(mac, addr) {
            l.last_seen = l.last_seen.max(now);
        }
        true
    }

    /// True when `addr` is one of `mac`'s: the source check of the guards.
    pub fn is_own(&self, mac: MacAddr, addr: Ipv6Addr) -> bool {
        self.owners.get(&addr) == Some(&mac)
    }

    /// The addresses of `mac`.
    pub fn addrs_of(&self, mac: MacAddr) -> &[Learnt] {
        self.clients.get(&mac).map_or(&[], Vec::as_slice)
    }

    /// How many addresses the table holds.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// When the next address falls idle (a scan: the table is bounded).
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.clients
            .values()
            .flatten()
            .filter(|l| l.origin != Origin::Dhcpv6)
            .map(|l| l.last_seen + self.settings.idle_ms)
            .min()
    }

    /// Forgets the addresses idle since `now - idle_ms` (DHCPv6 ones
    /// excepted), returning them with their clients.
    pub fn handle_timeout(&mut self, now: UnixMillis) -> Vec<(MacAddr, Ipv6Addr)> {
        let idle = self.settings.idle_ms;
        let gone: Vec<(MacAddr, Ipv6Addr)> = self
            .clients
            .iter()
            .flat_map(|(m, v)| v.iter().map(move |l| (*m, l)))
            .filter(|(_, l)| l.origin != Origin::Dhcpv6 && l.last_seen + idle <= now)
            .map(|(m, l)| (m, l.addr))
            .collect();
        for &(m, a) in &gone {
            self.remove(m, a);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    fn table() -> AddrTable {
        let mut s = AddrSettings::new(Ipv6Net::new(ip("2001:db8:1::"), 64));
        s.per_client = 4;
        s.max_clients = 3;
        AddrTable::new(s)
    }

    #[test]
    fn learns_on_link_unicast_only() {
        let mut t = table();
        assert_eq!(t.learn(A, ip("fe80::a"), Origin::Dad, 0), Learn::Added);
        assert_eq!(
            t.learn(A, ip("2001:db8:1::a"), Origin::Source, 0),
            Learn::Added
        );
        assert_eq!(
            t.learn(A, ip("fe80::a"), Origin::NeighborAdvert, 5),
            Learn::Refreshed
        );
        assert_eq!(t.addrs_of(A)[0].last_seen, 5);
        for bad in ["::", "::1", "ff02::1"] {
            assert_eq!(
                t.learn(A, ip(bad), Origin::Source, 0),
                Learn::Refused(Refusal::NotUnicast)
            );
        }
        assert_eq!(
            t.learn(A, ip("2001:db8:2::a"), Origin::Source, 0),
            Learn::Refused(Refusal::OffLink)
        );
        assert!(t.is_own(A, ip("fe80::a")) && !t.is_own(B, ip("fe80::a")));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn first_come_first_served() {
        let mut t = table();
        t.learn(A, ip("2001:db8:1::5"), Origin::Dad, 0);
        // B claims A's address while A is active: refused.
        assert_eq!(
            t.learn(B, ip("2001:db8:1::5"), Origin::Dad, 1000),
            Learn::Refused(Refusal::OwnedBy(A))
        );
        // Once A has been silent on it for stale_after_ms, B may take it.
        assert_eq!(
            t.learn(B, ip("2001:db8:1::5"), Origin::Dad, 300_000),
            Learn::Taken { from: A }
        );
        assert_eq!(t.owner_of(ip("2001:db8:1::5")), Some(B));
        assert!(t.addrs_of(A).is_empty());
        // A DHCPv6 binding beats a guess, and a guess never beats a binding.
        t.learn(A, ip("2001:db8:1::6"), Origin::Source, 300_000);
        assert_eq!(
            t.learn(B, ip("2001:db8:1::6"), Origin::Dhcpv6, 300_001),
            Learn::Taken { from: A }
        );
        assert_eq!(
            t.learn(A, ip("2001:db8:1::6"), Origin::Dad, u64::MAX / 2),
            Learn::Refused(Refusal::OwnedBy(B))
        );
    }

    #[test]
    fn per_client_bound_evicts_least_recent_but_keeps_what_matters() {
        let mut t = table();
        t.learn(A, ip("fe80::a"), Origin::Dad, 0);
        t.learn(A, ip("2001:db8:1::d"), Origin::Dhcpv6, 1);
        t.learn(A, ip("2001:db8:1::1"), Origin::Dad, 2);
        t.learn(A, ip("2001:db8:1::2"), Origin::Dad, 3);
        // Full: the least recent privacy address goes, not the link-local
        // (older) nor the DHCPv6 lease.
        assert_eq!(
            t.learn(A, ip("2001:db8:1::3"), Origin::Dad, 4),
            Learn::Evicted(ip("2001:db8:1::1"))
        );
        assert_eq!(t.owner_of(ip("2001:db8:1::1")), None);
        // A flood of privacy addresses never grows the set past the bound.
        for i in 0..1000u16 {
            t.learn(
                A,
                ip("2001:db8:1::").with_low(0x1000 + i),
                Origin::Source,
                10 + u64::from(i),
            );
        }
        assert_eq!(t.addrs_of(A).len(), 4);
        assert!(t.is_own(A, ip("fe80::a")) && t.is_own(A, ip("2001:db8:1::d")));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn full_of_pinned_addresses_refuses() {
        let mut t = table();
        t.learn(A, ip("fe80::a"), Origin::Dad, 0);
        for i in 1..4u16 {
            t.learn(A, ip("2001:db8:1::").with_low(i), Origin::Dhcpv6, 0);
        }
        assert_eq!(
            t.learn(A, ip("2001:db8:1::99"), Origin::Dad, 1),
            Learn::Refused(Refusal::Full)
        );
    }

    #[test]
    fn client_bound_and_forgetting() {
        let mut t = table();
        for (i, m) in [1u8, 2, 3].into_iter().enumerate() {
            let mac = MacAddr([2, 0, 0, 0, 1, m]);
            assert_eq!(
                t.learn(mac, ip("fe80::").with_low(i as u16 + 1), Origin::Dad, 0),
                Learn::Added
            );
        }
        assert_eq!(
            t.learn(A, ip("fe80::a"), Origin::Dad, 0),
            Learn::Refused(Refusal::TooManyClients)
        );
        let mac = MacAddr([2, 0, 0, 0, 1, 1]);
        assert_eq!(t.forget(mac), vec![ip("fe80::1")]);
        assert_eq!(t.learn(A, ip("fe80::1"), Origin::Dad, 0), Learn::Added);
        assert!(t.remove(A, ip("fe80::1")));
        assert!(!t.remove(A, ip("fe80::1")));
    }

    #[test]
    fn idle_addresses_are_forgotten_leases_are_not() {
        let mut t = table();
        t.learn(A, ip("fe80::a"), Origin::Dad, 0);
        t.learn(A, ip("2001:db8:1::d"), Origin::Dhcpv6, 0);
        t.learn(B, ip("fe80::b"), Origin::Source, 1000);
        assert_eq!(t.poll_timeout(), Some(3_600_000));
        assert!(t.handle_timeout(3_599_999).is_empty());
        assert_eq!(t.handle_timeout(3_600_000), vec![(A, ip("fe80::a"))]);
        assert_eq!(t.poll_timeout(), Some(3_601_000));
        assert!(t.is_own(A, ip("2001:db8:1::d")));
        t.handle_timeout(u64::MAX / 2);
        assert_eq!(t.len(), 1);
        assert_eq!(t.poll_timeout(), None);
    }

    trait WithLow {
        fn with_low(self, low: u16) -> Ipv6Addr;
    }

    impl WithLow for Ipv6Addr {
        fn with_low(self, low: u16) -> Ipv6Addr {
            Ipv6Addr::from(u128::from(self) | u128::from(low))
        }
    }
}
