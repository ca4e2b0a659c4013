//! IPv6 on the LAN (issue 13): addressing and guards here, forwarding
//! behind the portal in [`super::ipv6_fwd`]. The engine's IPv6 parts
//! ([`crate::ipv6`], [`crate::dhcp6`]) wired to the data plane.
//!
//! When [`Engine::enable_ipv6`] was called, an IPv6 frame from the LAN goes
//! through the guard ([`classify_from_client`]): router advertisements,
//! redirects and DHCPv6 server messages from guests are dropped and counted
//! (`ipv6_router_advert`, `ipv6_redirect`, `ipv6_dhcp_server`, malformed
//! neighbour discovery as `ipv6_bad_nd`). A router solicitation moves the
//! next RA earlier ([`RaScheduler::handle_router_solicit`]: multicast, at
//! most one per 3 s, RFC 4861 §6.2.6); a neighbour solicitation for one of
//! lassi's addresses (its EUI-64 link-local address and its address in the
//! prefix) is answered, a DAD probe for one of them defended; DAD probes,
//! neighbour advertisements, the sources of what lassi answers and DHCPv6
//! leases teach the guest's addresses ([`AddrTable`], bounded); DHCPv6 to
//! port 547 is served by [`Dhcp6Server`]. Every other IPv6 packet goes to
//! [`super::ipv6_fwd`]: its source must be one of the sender's learnt
//! addresses, then it is forwarded (logged in) or held (not yet) like
//! IPv4. Without [`Engine::enable_ipv6`] every IPv6 frame is dropped as
//! `ipv6`.
//!
//! Periodic RAs, DHCPv6 lease expiry and idle addresses are the engine's
//! timers ([`Engine::poll_timeout`], [`Engine::handle_timeout`]); what lassi
//! sends goes out through the outbox like ARP and DHCP replies.

use core::net::Ipv6Addr;

use serde::Serialize;

use super::{DropReason, Engine, LanAction};
use crate::dhcp6::{Dhcp6Server, Dhcp6Settings, Dhcp6Stats, Lease6Event, Lease6Record};
use crate::ipv6::addrs::{AddrSettings, AddrTable, Learn, Origin};
use crate::ipv6::guard::{classify_from_client, ClientV6, GuardDrop, GuardStats};
use crate::ipv6::nd;
use crate::ipv6::ra::{RaScheduler, RaSettings, RaStats};
use crate::wire::ipv6::{Ipv6Net, Ipv6Summary, Ipv6Transmit};
use crate::wire::ndp::{Ipv6Meta, Repr};
use crate::wire::vnet::VnetHdr;
use crate::wire::MacAddr;
use crate::UnixMillis;

/// Most IPv6 addresses a session reports (Framed-IPv6-Address attributes).
pub const SESSION_IPV6_MAX: usize = 4;

/// What IPv6 on the LAN needs (validated by the caller: [`RaSettings::validate`],
/// [`Dhcp6Settings::validate`]).
#[derive(Clone, Debug)]
pub struct Ipv6Settings {
    /// The router advertisements; their link-local source is lassi's.
    pub ra: RaSettings,
    /// The DHCPv6 server.
    pub dhcp: Dhcp6Settings,
    /// Bounds of the guests' address table.
    pub addrs: AddrSettings,
    /// lassi's own address in the prefix (answered for like its link-local one).
    pub address: Ipv6Addr,
}

/// IPv6 counters and sizes for `lassi status`.
#[derive(Clone, Debug, Serialize)]
pub struct Ipv6Status {
    /// lassi's link-local address (the guests' default router).
    pub link_local: Ipv6Addr,
    /// lassi's address in the prefix.
    pub address: Ipv6Addr,
    /// Router advertisements sent and solicitations handled.
    pub ra: RaStats,
    /// The DHCPv6 server's counters.
    pub dhcp: Dhcp6Stats,
    /// Guard drops by kind.
    pub guard: GuardStats,
    /// Guests' addresses learnt.
    pub addresses: usize,
    /// Addresses refused (owned by another guest, off the prefix, over a bound).
    pub addresses_refused: u64,
    /// Neighbour advertisements lassi sent (answers and DAD defence).
    pub neighbor_adverts: u64,
}

/// The IPv6 state of the engine.
pub(super) struct Ipv6Lan {
    ra: RaScheduler,
    dhcp: Dhcp6Server,
    pub(super) addrs: AddrTable,
    guard: GuardStats,
    /// lassi's addresses: link-local first.
    pub(super) own: [Ipv6Addr; 2],
    /// The LAN prefix.
    pub(super) prefix: Option<Ipv6Net>,
    /// The DNS servers handed out (reachable before login).
    pub(super) dns: Vec<Ipv6Addr>,
    router_mac: MacAddr,
    refused: u64,
    neighbor_adverts: u64,
}

fn guard_reason(g: GuardDrop) -> DropReason {
    match g {
        GuardDrop::RouterAdvert => DropReason::Ipv6RouterAdvert,
        GuardDrop::Redirect => DropReason::Ipv6Redirect,
        GuardDrop::Dhcpv6Server => DropReason::Ipv6DhcpServer,
        GuardDrop::BadNeighborDiscovery | GuardDrop::FragmentedNd => DropReason::Ipv6BadNd,
        GuardDrop::Malformed => DropReason::Malformed,
    }
}

/// What became of a guest's IPv6 packet that passed the guards.
enum Handled {
    /// Answered or learnt from; true when the DHCPv6 leases changed.
    Consumed(bool),
    /// Traffic to hold or forward (`ipv6_fwd`).
    Forward(Ipv6Summary),
}

fn push(out: &mut Vec<Vec<u8>>, t: Ipv6Transmit) {
    out.push(t.to_frame());
}

impl Ipv6Lan {
    fn new(s: Ipv6Settings, restored: Vec<Lease6Record>, seed: u64, now: UnixMillis) -> Ipv6Lan {
        let own = [s.ra.link_local, s.address];
        let router_mac = s.ra.router_mac;
        let (prefix, dns) = (s.ra.prefix, s.ra.rdnss.clone());
        let dhcp = Dhcp6Server::new(s.dhcp, restored, now);
        let mut addrs = AddrTable::new(s.addrs);
        for l in dhcp.leases() {
            addrs.learn(l.mac, l.addr, Origin::Dhcpv6, now);
        }
        Ipv6Lan {
            ra: RaScheduler::new(s.ra, seed, now),
            dhcp,
            addrs,
            guard: GuardStats::default(),
            own,
            prefix,
            dns,
            router_mac,
            refused: 0,
            neighbor_adverts: 0,
        }
    }

    /// `mac` uses `addr` (never one of lassi's own).
    fn learn(&mut self, mac: MacAddr, addr: Ipv6Addr, origin: Origin, now: UnixMillis) {
        if self.own.contains(&addr) || addr.is_unspecified() {
            return;
        }
        if let Learn::Refused(why) = self.addrs.learn(mac, addr, origin, now) {
            self.refused += 1;
            tracing::debug!(%mac, %addr, ?why, "IPv6 address not learnt");
        }
    }

    /// A guest's IPv6 packet (from the version field). Frames lassi sends
    /// in answer go to `out`.
    fn handle_packet(
        &mut self,
        now: UnixMillis,
        src_mac: MacAddr,
        packet: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<Handled, DropReason> {
        let (s, class) = classify_from_client(packet).map_err(|g| {
            self.guard.count(g);
            guard_reason(g)
        })?;
        match class {
            ClientV6::RouterSolicit(_) => {
                self.learn(src_mac, s.src, Origin::Source, now);
                self.ra.handle_router_solicit(now);
                Ok(Handled::Consumed(false))
            }
            ClientV6::NeighborSolicit { repr, dad } => {
                self.solicit(now, src_mac, &s, &repr, dad, out)?;
                Ok(Handled::Consumed(false))
            }
            ClientV6::NeighborAdvert(Repr::NeighborAdvert { target, .. }) => {
                self.learn(src_mac, target, Origin::NeighborAdvert, now);
                Ok(Handled::Consumed(false))
            }
            ClientV6::NeighborAdvert(_) => Err(DropReason::Ipv6),
            ClientV6::Dhcpv6 => self
                .dhcpv6(now, src_mac, &s, packet, out)
                .map(Handled::Consumed),
            // Echo, MLD, TCP, UDP, fragments: held or forwarded (ipv6_fwd).
            ClientV6::Icmpv6(_) | ClientV6::Fragment | ClientV6::Other => Ok(Handled::Forward(s)),
        }
    }

    /// A neighbour solicitation: a DAD probe teaches its target, any other
    /// its source; lassi answers (or defends) its own addresses. One for
    /// another guest's address is not lassi's to answer (the prefix is
    /// on-link: guests resolve each other).
    fn solicit(
        &mut self,
        now: UnixMillis,
        src_mac: MacAddr,
        s: &Ipv6Summary,
        repr: &Repr,
        dad: bool,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), DropReason> {
        let Repr::NeighborSolicit { target, .. } = repr else {
            return Err(DropReason::Ipv6);
        };
        if dad {
            self.learn(src_mac, *target, Origin::Dad, now);
        } else {
            self.learn(src_mac, s.src, Origin::Source, now);
        }
        let meta = Ipv6Meta {
            src: s.src,
            dst: s.dst,
            hop_limit: s.hop_limit,
        };
        match nd::answer_solicit(self.router_mac, &self.own, &meta, repr, src_mac) {
            Some(na) => {
                self.neighbor_adverts += 1;
                push(out, na);
                Ok(())
            }
            None if dad => Ok(()),
            None => Err(DropReason::Ipv6),
        }
    }

    /// A DHCPv6 client message: served, its replies to `out`, its lease
    /// changes applied to the address table.
    fn dhcpv6(
        &mut self,
        now: UnixMillis,
        src_mac: MacAddr,
        s: &Ipv6Summary,
        packet: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<bool, DropReason> {
        let payload = s.upper(packet).get(8..).unwrap_or(&[]);
        if s.src.is_unspecified() || s.src.is_multicast() || s.fragment.is_some() {
            return Err(DropReason::Dhcpv6Refused);
        }
        let result = self
            .dhcp
            .handle_message(payload, s.src, s.dst, src_mac, now);
        while let Some(t) = self.dhcp.poll_transmit() {
            push(out, t);
        }
        let changed = self.lease_events(now);
        if let Err(e) = result {
            tracing::debug!(mac = %src_mac, src = %s.src, "DHCPv6 message refused: {e}");
            return Err(DropReason::Dhcpv6Refused);
        }
        self.learn(src_mac, s.src, Origin::Source, now);
        Ok(changed)
    }

    /// Applies the DHCPv6 server's lease changes to the address table;
    /// true when there were any.
    fn lease_events(&mut self, now: UnixMillis) -> bool {
        let mut any = false;
        while let Some(ev) = self.dhcp.poll_event() {
            any = true;
            match ev {
                Lease6Event::Bound { mac, addr, .. } | Lease6Event::Renewed { mac, addr, .. } => {
                    self.learn(mac, addr, Origin::Dhcpv6, now)
                }
                Lease6Event::Released { mac, addr }
                | Lease6Event::Expired { mac, addr }
                | Lease6Event::Declined { mac, addr } => {
                    self.addrs.remove(mac, addr);
                }
            }
        }
        any
    }

    fn poll_timeout(&self) -> Option<UnixMillis> {
        [self.ra.poll_timeout(), self.dhcp.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Periodic RAs and DHCPv6 expiry due at `now`; true when leases changed.
    fn handle_timeout(&mut self, now: UnixMillis, out: &mut Vec<Vec<u8>>) -> bool {
        if self.ra.poll_timeout().is_some_and(|t| t <= now) {
            self.ra.handle_timeout(now);
        }
        while let Some(t) = self.ra.poll_transmit() {
            push(out, t);
        }
        if self.dhcp.poll_timeout().is_some_and(|t| t <= now) {
            self.dhcp.handle_timeout(now);
        }
        self.lease_events(now)
    }

    fn status(&self) -> Ipv6Status {
        Ipv6Status {
            link_local: self.own[0],
            address: self.own[1],
            ra: self.ra.stats(),
            dhcp: self.dhcp.stats(),
            guard: self.guard,
            addresses: self.addrs.len(),
            addresses_refused: self.refused,
            neighbor_adverts: self.neighbor_adverts,
        }
    }
}

impl Engine {
    /// Turns IPv6 on the LAN on (see the module docs), with the DHCPv6
    /// leases saved by the previous run; `seed` jitters the RA schedule
    /// (the shell passes randomness). The first RA is due at `now`.
    pub fn enable_ipv6(
        &mut self,
        settings: Ipv6Settings,
        restored: Vec<Lease6Record>,
        seed: u64,
        now: UnixMillis,
    ) {
        self.ipv6 = Some(Box::new(Ipv6Lan::new(settings, restored, seed, now)));
    }

    /// An IPv6 frame's packet (from the version field) from `src_mac`.
    pub(super) fn ipv6_from_lan(
        &mut self,
        now: UnixMillis,
        vnet: &VnetHdr,
        src_mac: MacAddr,
        packet: &mut [u8],
    ) -> LanAction {
        let Some(v6) = self.ipv6.as_deref_mut() else {
            // lassi routes no IPv6 without [lan.ipv6]: nothing gets around the portal.
            return self.drop_lan(DropReason::Ipv6);
        };
        match v6.handle_packet(now, src_mac, packet, &mut self.outbox) {
            Ok(Handled::Consumed(leases_changed)) => {
                if leases_changed {
                    self.saves.leases_changed();
                }
                LanAction::Consumed
            }
            Ok(Handled::Forward(s)) => self.ipv6_out(now, vnet, src_mac, &s, packet),
            Err(why) => self.drop_lan(why),
        }
    }

    /// When IPv6's next timer is due, if it is on.
    pub(super) fn ipv6_deadline(&self) -> Option<UnixMillis> {
        self.ipv6.as_ref().and_then(|v6| v6.poll_timeout())
    }

    /// Runs IPv6's timers due at `now`.
    pub(super) fn ipv6_timeout(&mut self, now: UnixMillis) {
        let Some(v6) = self.ipv6.as_deref_mut() else {
            return;
        };
        if v6.handle_timeout(now, &mut self.outbox) {
            self.saves.leases_changed();
        }
    }

    /// Once a second: forget guests' addresses idle for long.
    pub(super) fn ipv6_housekeeping(&mut self, now: UnixMillis) {
        if let Some(v6) = self.ipv6.as_deref_mut() {
            v6.addrs.handle_timeout(now);
        }
    }

    /// Queues the final router advertisement (router lifetime 0) so guests
    /// drop lassi as their default router at once; the shell sends the
    /// outbox before it exits.
    pub(super) fn ipv6_shutdown(&mut self, now: UnixMillis) {
        if let Some(v6) = self.ipv6.as_deref_mut() {
            v6.ra.shutdown(now);
            while let Some(t) = v6.ra.poll_transmit() {
                self.outbox.push(t.to_frame());
            }
        }
    }

    /// The DHCPv6 leases to persist (`None` when IPv6 is off).
    pub fn lease6_records(&self) -> Option<Vec<Lease6Record>> {
        self.ipv6.as_ref().map(|v6| v6.dhcp.records())
    }

    /// IPv6 counters (`None` when IPv6 is off).
    pub fn ipv6_status(&self) -> Option<Ipv6Status> {
        self.ipv6.as_ref().map(|v6| v6.status())
    }

    /// The client using the IPv6 address `ip` (the portal identifies a
    /// guest connecting over IPv6 by it).
    pub fn client_by_ipv6(&self, ip: Ipv6Addr) -> Option<&crate::session::Client> {
        let mac = self.ipv6.as_ref()?.addrs.owner_of(ip)?;
        self.sessions.by_mac(mac)
    }

    /// The addresses in the prefix `mac` uses, most recently used first,
    /// at most [`SESSION_IPV6_MAX`] (what accounting reports).
    pub fn session_ipv6(&self, mac: MacAddr) -> Vec<Ipv6Addr> {
        let Some(v6) = self.ipv6.as_deref() else {
            return Vec::new();
        };
        let mut l: Vec<_> = (v6.addrs.addrs_of(mac).iter())
            .filter(|l| v6.prefix.is_some_and(|p| p.contains(l.addr)))
            .collect();
        l.sort_by_key(|l| core::cmp::Reverse(l.last_seen));
        l.iter().take(SESSION_IPV6_MAX).map(|l| l.addr).collect()
    }

    /// The IPv6 addresses learnt for `mac` (empty when IPv6 is off).
    pub fn ipv6_addresses(&self, mac: MacAddr) -> Vec<Ipv6Addr> {
        self.ipv6.as_ref().map_or_else(Vec::new, |v6| {
            v6.addrs.addrs_of(mac).iter().map(|l| l.addr).collect()
        })
    }
}

#[cfg(test)]
#[path = "ipv6_tests.rs"]
mod tests;
