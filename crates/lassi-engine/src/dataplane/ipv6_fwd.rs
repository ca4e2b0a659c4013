//! IPv6 behind the portal (issue 13, phase 2): what the data plane does
//! with a guest's IPv6 packet that passed the guards ([`super::ipv6`]) and
//! with an IPv6 packet the kernel routes to the LAN through the TUN device.
//!
//! - **Source guard.** The source must be one of the sender's own learnt
//!   addresses ([`AddrTable::touch`](crate::ipv6::addrs::AddrTable::touch):
//!   link-local, SLAAC, privacy, DHCPv6, learnt from neighbour discovery and
//!   DHCPv6); anything else is dropped as `ipv6_spoofed` and counted to
//!   nobody. A packet never teaches its own source.
//! - **Logged in.** Exactly as IPv4: to the TUN device, counted in the
//!   same session counters (octets and packets, GSO footprints), the same
//!   idle timer, quota and shaper. Toward a guest's address in the prefix
//!   the TUN packet is looked up in the address table (address → MAC →
//!   session) and counted as that session's download. Between two guests,
//!   `client_isolation` decides as for IPv4 (lassi's own hairpin).
//! - **Not logged in.** DNS (UDP/TCP 53) to the `lan.ipv6.dns` servers and
//!   the walled garden's IPv6 networks pass. A UDP query is tracked and
//!   rewritten like one over IPv4 ([`super::dns`]): it leaves with lassi's
//!   own random source port and DNS id, and only the answer matching it may
//!   teach the walled garden (A and AAAA records of `*.domain` names),
//!   under the per-guest bound of the guest's IPv4 identity; an answer
//!   matching nothing is still delivered, teaches nothing and is counted
//!   (`dns_unmatched_answers`); TCP to port 80 of any host is
//!   steered to the portal listener on lassi's IPv6 address, keeping the
//!   original destination for the replies ([`super::intercept`]); other TCP
//!   is answered with a reset, anything else with an ICMPv6
//!   administratively-prohibited, both rate-limited like IPv4's refusals.
//!   On lassi itself only the portal, DNS (when lassi's address is a DNS
//!   server handed out) and echo are open before login.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::dns;
use super::held::Shaping;
use super::{DropReason, Engine, LanAction, TunAction, DNS_PORT, HTTP_PORT};
use crate::session::SessionState;
use crate::wire::ipv6::{
    self, Ipv6Summary, Ports, ICMPV6_ADMIN_PROHIBITED, ICMPV6_ECHO_REQUEST, NEXT_ICMPV6, NEXT_TCP,
    NEXT_UDP,
};
use crate::wire::vnet::{wire_footprint, VnetHdr, F_NEEDS_CSUM};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// Where a guest's packet goes, read from the IPv6 state before the
/// session table is borrowed.
#[derive(Clone, Copy)]
struct Target {
    /// lassi's addresses: link-local, then the one in the prefix.
    own: [Ipv6Addr; 2],
    /// Another guest on the link (link-local or in the prefix).
    to_guest: bool,
    /// That guest, when its address is known.
    peer: Option<MacAddr>,
    /// One of the DNS servers handed out.
    dns_server: bool,
    /// lassi's own address is a DNS server handed out.
    gateway_dns: bool,
}

impl Engine {
    fn ipv6_target(&self, dst: Ipv6Addr) -> Option<Target> {
        let v6 = self.ipv6.as_deref()?;
        let on_link = ipv6::is_link_local(dst) || v6.prefix.is_some_and(|p| p.contains(dst));
        let to_guest = on_link && !v6.own.contains(&dst);
        Some(Target {
            own: v6.own,
            to_guest,
            peer: to_guest.then(|| v6.addrs.owner_of(dst)).flatten(),
            dns_server: v6.dns.contains(&dst),
            gateway_dns: v6.dns.iter().any(|d| v6.own.contains(d)),
        })
    }

    /// A guest's IPv6 packet (`ip`, summarised as `s`) that is neither
    /// neighbour discovery nor DHCPv6.
    pub(super) fn ipv6_out(
        &mut self,
        now: UnixMillis,
        vnet: &VnetHdr,
        mac: MacAddr,
        s: &Ipv6Summary,
        ip: &mut [u8],
    ) -> LanAction {
        if s.dst.is_multicast() {
            // MLD and other link multicast: nothing lassi routes.
            return self.drop_lan(DropReason::Ipv6);
        }
        let own_source =
            (self.ipv6.as_deref_mut()).is_some_and(|v6| v6.addrs.touch(mac, s.src, now));
        if !own_source {
            return self.drop_lan(DropReason::Ipv6Spoofed);
        }
        match self.ipv6_target(s.dst) {
            Some(t) => self.ipv6_checked_out(now, vnet, mac, s, ip, t),
            None => self.drop_lan(DropReason::Ipv6),
        }
    }

    /// [`Engine::ipv6_out`] once the source is known to be the sender's.
    fn ipv6_checked_out(
        &mut self,
        now: UnixMillis,
        vnet: &VnetHdr,
        mac: MacAddr,
        s: &Ipv6Summary,
        ip: &mut [u8],
        t: Target,
    ) -> LanAction {
        let Some(client) = self.sessions.by_mac_mut(mac) else {
            return self.drop_lan(DropReason::NoLease);
        };
        client.last_seen = now;
        client.probes = 0;
        let authorized = client.state == SessionState::Authorized;
        if !authorized || t.own.contains(&s.dst) {
            return self.ipv6_slow_out(now, vnet, mac, s, ip, t, authorized);
        }
        let partial = vnet.flags & F_NEEDS_CSUM != 0;
        if let Some(p) = s.ports(ip) {
            // A connection redirected before login carries on to the portal.
            if (self.intercept).continue_out6(ip, s, p, partial, t.own[1], now) {
                return LanAction::ToTun;
            }
        }
        // One lookup per packet: `client` is still the sender found above.
        client.last_active = now;
        let footprint = wire_footprint(vnet, s.end, s.l3l4_hdr_len(ip));
        if client.over_quota() && !Self::quota_reached(client, self.settings.quota_action, now) {
            self.next_housekeeping = 0;
            return self.drop_lan(DropReason::Quota);
        }
        if !t.to_guest {
            let packet = &ip[..s.end];
            match (self.held).offer(&mut client.up, mac, now, vnet, packet, footprint) {
                Shaping::Pass => {}
                Shaping::Held => return LanAction::Held,
                Shaping::Drop => return self.drop_lan(DropReason::Shaped),
            }
        } else if self.settings.client_isolation {
            return self.drop_lan(DropReason::ClientToClient);
        }
        client.counters.packets_in += footprint.0;
        client.counters.octets_in += footprint.1;
        self.traffic.upload(footprint);
        if t.to_guest {
            self.hairpin6(t.peer, footprint)
        } else {
            LanAction::ToTun
        }
    }

    /// Guest to guest over IPv6 (isolation off): on to the owner of the
    /// destination if it is logged in, counted as its download.
    fn hairpin6(&mut self, peer: Option<MacAddr>, (packets, octets): (u64, u64)) -> LanAction {
        let Some(peer) = peer else {
            return self.drop_lan(DropReason::UnknownDestination);
        };
        match self.sessions.by_mac_mut(peer) {
            Some(c) if c.state == SessionState::Authorized => {
                c.counters.packets_out += packets;
                c.counters.octets_out += octets;
                self.traffic.download((packets, octets));
                LanAction::Hairpin(peer)
            }
            Some(_) => self.drop_lan(DropReason::Unauthorized),
            None => self.drop_lan(DropReason::UnknownDestination),
        }
    }

    /// A packet to lassi itself, or from a guest not logged in: held like
    /// IPv4 (see the module docs).
    #[allow(clippy::too_many_arguments)]
    fn ipv6_slow_out(
        &mut self,
        now: UnixMillis,
        vnet: &VnetHdr,
        mac: MacAddr,
        s: &Ipv6Summary,
        ip: &mut [u8],
        t: Target,
        authorized: bool,
    ) -> LanAction {
        let ports = s.ports(ip);
        if t.own.contains(&s.dst) {
            if authorized || self.gateway_open6(s, ports, ip, t.gateway_dns) {
                return LanAction::ToTun;
            }
            return self.refuse6(now, mac, s, ip, t.own);
        }
        let dns =
            ports.is_some_and(|p| p.dst == DNS_PORT) && matches!(s.upper, NEXT_TCP | NEXT_UDP);
        if dns && t.dns_server {
            if let Some(p) = ports.filter(|_| s.upper == NEXT_UDP) {
                let partial = vnet.flags & F_NEEDS_CSUM != 0;
                self.dns_query6(now, s, p, ip, partial);
            }
            return LanAction::ToTun;
        }
        if t.to_guest {
            // Another guest: never before login, whatever the port.
            return self.drop_lan(DropReason::ClientToClient);
        }
        if self.intercept.walled6(s.dst, now) {
            return LanAction::ToTun;
        }
        if let Some(p) = ports.filter(|p| s.upper == NEXT_TCP && p.dst == HTTP_PORT) {
            let partial = vnet.flags & F_NEEDS_CSUM != 0;
            if (self.intercept).redirect_out6(ip, s, p, partial, t.own[1], now) {
                return LanAction::ToTun;
            }
        }
        self.refuse6(now, mac, s, ip, t.own)
    }

    /// What a guest not logged in may reach on lassi's own IPv6 addresses.
    fn gateway_open6(&self, s: &Ipv6Summary, ports: Option<Ports>, ip: &[u8], dns: bool) -> bool {
        match (s.upper, ports) {
            (NEXT_TCP, Some(p)) => {
                p.dst == self.intercept.settings.portal_port || (dns && p.dst == DNS_PORT)
            }
            (NEXT_UDP, Some(p)) => dns && p.dst == DNS_PORT,
            (NEXT_ICMPV6, _) => s.upper(ip).first() == Some(&ICMPV6_ECHO_REQUEST),
            _ => false,
        }
    }

    /// Refuses a guest's packet at once (a TCP reset from the address it
    /// tried, an ICMPv6 administratively-prohibited from lassi for anything
    /// else; rate-limited) and drops it as `unauthorized`.
    fn refuse6(
        &mut self,
        now: UnixMillis,
        mac: MacAddr,
        s: &Ipv6Summary,
        ip: &[u8],
        own: [Ipv6Addr; 2],
    ) -> LanAction {
        if !self.intercept.rejects_left(now) {
            return self.drop_lan(DropReason::Unauthorized);
        }
        let gw = self.settings.gateway_mac;
        let reply = if s.upper == NEXT_TCP {
            ipv6::tcp_reset(gw, mac, s, ip)
        } else {
            let src = if ipv6::is_link_local(s.src) {
                own[0]
            } else {
                own[1]
            };
            ipv6::unreachable(gw, mac, src, ICMPV6_ADMIN_PROHIBITED, s, ip)
        };
        if let Some(r) = reply {
            if self.intercept.may_reject(now) {
                self.outbox.push(r.to_frame());
            }
        }
        self.drop_lan(DropReason::Unauthorized)
    }

    /// An IPv6 packet from the TUN device (toward a guest, see the module
    /// docs). The packet may be rewritten in place (portal replies).
    pub(super) fn ipv6_from_tun(
        &mut self,
        now: UnixMillis,
        vnet: &VnetHdr,
        packet: &mut [u8],
    ) -> TunAction {
        let Some(v6) = self.ipv6.as_deref() else {
            return self.drop_tun(DropReason::Ipv6);
        };
        let Ok(s) = ipv6::parse(packet) else {
            return self.drop_tun(DropReason::Malformed);
        };
        let lassi = v6.own[1];
        let in_prefix = |a: Ipv6Addr| v6.prefix.is_some_and(|p| p.contains(a));
        let dns_server = v6.dns.contains(&s.src);
        if s.src != lassi && in_prefix(s.src) && !dns_server {
            // A guest's packet the kernel routed back: never around lassi.
            return self.drop_tun(DropReason::ClientToClient);
        }
        if s.dst == lassi || !in_prefix(s.dst) {
            return self.drop_tun(DropReason::Ipv6);
        }
        let Some(mac) = v6.addrs.owner_of(s.dst) else {
            return self.drop_tun(DropReason::UnknownDestination);
        };
        let Some(client) = self.sessions.by_mac(mac) else {
            return self.drop_tun(DropReason::UnknownDestination);
        };
        let (authorized, guest) = (client.state == SessionState::Authorized, client.ip);
        let partial = vnet.flags & F_NEEDS_CSUM != 0;
        if s.src == lassi {
            // The portal (replies on redirected connections are made to
            // look like they come from the site asked for).
            self.intercept.redirect_back6(packet, &s, partial, now);
            return TunAction::ToLan(mac);
        }
        let dns_ports = (s.ports(packet))
            .filter(|p| s.upper == NEXT_UDP && p.src == DNS_PORT)
            .map(|p| (p.src, p.dst));
        if authorized {
            if let Some(p) = dns_ports.filter(|_| dns_server) {
                // Maybe the answer to a query sent before login.
                (self.intercept.dns).late_answer6(now, &s, p, packet, partial);
            }
            return self.ipv6_download(now, vnet, mac, &s, packet);
        }
        if dns_server {
            if let Some(p) = dns_ports {
                self.dns_answer6(now, &s, p, packet, partial, guest);
                return TunAction::ToLan(mac);
            }
            if s.ports(packet).is_some_and(|p| p.src == DNS_PORT) {
                return TunAction::ToLan(mac); // DNS over TCP
            }
        }
        if self.intercept.walled6(s.src, now) {
            return TunAction::ToLan(mac);
        }
        self.drop_tun(DropReason::Unauthorized)
    }

    /// A guest not logged in asks a `lan.ipv6.dns` server over UDP: the
    /// query is remembered and leaves with lassi's own port and id, as over
    /// IPv4 ([`super::dns`]). A datagram that is no plain query passes as
    /// it is (the operator's resolver) but nothing it brings back teaches.
    fn dns_query6(
        &mut self,
        now: UnixMillis,
        s: &Ipv6Summary,
        p: Ports,
        ip: &mut [u8],
        partial: bool,
    ) {
        let x = dns::Exchange {
            client: s.src.into(),
            client_port: p.src,
            server: s.dst.into(),
        };
        let Some(payload) = ip.get(s.upper_offset + 8..s.end) else {
            return;
        };
        if let Ok(Some(rw)) = self.intercept.dns.query(now, x, payload, false) {
            let at = s.upper_offset;
            dns::rewrite(ip, at, dns::Port::Source, rw.port, rw.id, partial);
        }
    }

    /// A UDP answer of a `lan.ipv6.dns` server (`ports`: source, destination)
    /// to a guest not logged in, whose IPv4 identity is `guest`: if it
    /// matches the guest's pending query it may teach the walled garden and
    /// gets the guest's own port and id back; otherwise it is delivered as
    /// it came, teaches nothing and is counted as unmatched.
    fn dns_answer6(
        &mut self,
        now: UnixMillis,
        s: &Ipv6Summary,
        (_, port): (u16, u16),
        packet: &mut [u8],
        partial: bool,
        guest: Ipv4Addr,
    ) {
        let x = dns::Exchange {
            client: s.dst.into(),
            client_port: port,
            server: s.src.into(),
        };
        let Some(payload) = packet.get(s.upper_offset + 8..s.end) else {
            return;
        };
        match self.intercept.dns.answer(now, x, payload) {
            Some(m) => {
                (self.intercept).learn_from_answer(&m.msg, &m.question, guest, now);
                let at = s.upper_offset;
                dns::rewrite(
                    packet,
                    at,
                    dns::Port::Destination,
                    m.client_port,
                    m.id,
                    partial,
                );
            }
            None => {
                tracing::debug!(client = %s.dst, server = %s.src, "DNS answer over IPv6 matches no pending query: delivered, not learnt");
            }
        }
    }

    /// A logged-in guest's download: quota, shaper, counters.
    fn ipv6_download(
        &mut self,
        now: UnixMillis,
        vnet: &VnetHdr,
        mac: MacAddr,
        s: &Ipv6Summary,
        packet: &[u8],
    ) -> TunAction {
        let footprint = wire_footprint(vnet, s.end, s.l3l4_hdr_len(packet));
        let Some(client) = self.sessions.by_mac_mut(mac) else {
            return self.drop_tun(DropReason::UnknownDestination);
        };
        if client.over_quota() && !Self::quota_reached(client, self.settings.quota_action, now) {
            self.next_housekeeping = 0;
            return self.drop_tun(DropReason::Quota);
        }
        let packet = &packet[..s.end];
        match (self.held).offer(&mut client.down, mac, now, vnet, packet, footprint) {
            Shaping::Pass => {}
            Shaping::Held => return TunAction::Held,
            Shaping::Drop => return self.drop_tun(DropReason::Shaped),
        }
        client.counters.packets_out += footprint.0;
        client.counters.octets_out += footprint.1;
        self.traffic.download(footprint);
        TunAction::ToLan(mac)
    }
}
