//! The forwarding engine: decides what happens to every frame from the LAN
//! and every packet from the TUN device, answers ARP and DHCP, and counts.
//!
//! It is I/O-free: the shell (`io::forwarder`) hands it bytes, the virtio
//! header and the time, and does what the returned action says. Replies the
//! engine originates (ARP, DHCP) are queued in an outbox the shell drains;
//! session and lease changes come out of [`Engine::poll_event`], and the
//! tables to save out of [`Engine::poll_save`]. Every timer is the engine's
//! (quinn-proto style): the shell sleeps until [`Engine::poll_timeout`] and
//! then calls [`Engine::handle_timeout`].
//!
//! Worker threads besides the engine's forward the plain traffic of
//! authorized sessions by themselves through a [`FastPath`] each (see
//! [`Engine::fast_path_sessions`]); everything else they hand to the
//! engine, and their counts come back through [`Engine::apply_fast_delta`].

pub mod dns;
mod drops;
mod fastpath;
mod held;
mod housekeeping;
pub mod intercept;
mod ipv6;
mod ipv6_fwd;
mod metrics;
mod operator;

use core::net::Ipv4Addr;
use std::collections::VecDeque;

use serde::Serialize;

pub use drops::{DropCounters, DropReason};
pub use fastpath::{
    FastAdmit, FastDelta, FastLimits, FastPath, FastSession, FastSettings, FastVerdict,
};
pub use housekeeping::{Save, HOUSEKEEPING_INTERVAL_MS};
pub use intercept::InterceptSettings;
pub use ipv6::{Ipv6Settings, Ipv6Status, SESSION_IPV6_MAX};
pub use metrics::{EngineMetrics, Traffic};
pub use operator::{BlockOutcome, GardenOpen, LeaseFreed, OperatorError};

use crate::dhcp::{Clients, DhcpServer, DhcpStats, LeaseEvent, LeaseRecord, Standing};
use crate::session::{
    Authorization, Client, EndReason, EndedSession, Held, QuotaAction, SaveSchedule, SavedSessions,
    SessionError, SessionLimits, SessionMatch, SessionRecord, SessionReport, SessionState,
    SessionTable, COUNTER_SAVE_INTERVAL_MS,
};
use crate::wire::frame::{
    self, Arp, EthHeader, UdpAddressing, ARP_REPLY, ARP_REQUEST, ETHERTYPE_ARP, ETHERTYPE_IPV4,
    ETHERTYPE_IPV6, ETH_HLEN, ICMP_ADMIN_PROHIBITED, PROTO_TCP, PROTO_UDP,
};
use crate::wire::vnet::{wire_footprint, VnetHdr, F_NEEDS_CSUM};
use crate::wire::Ipv4Net;
use crate::wire::MacAddr;
use crate::UnixMillis;
use held::{Holding, Shaping};
use intercept::Intercept;

const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const DNS_PORT: u16 = 53;
const HTTP_PORT: u16 = 80;

/// What the engine needs to know about the gateway.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// lassi's address on the LAN.
    pub gateway_ip: Ipv4Addr,
    /// lassi's hardware address on the LAN (the LAN interface's own).
    pub gateway_mac: MacAddr,
    /// The guest network.
    pub network: Ipv4Net,
    /// DNS servers unauthorized clients may reach.
    pub dns: Vec<Ipv4Addr>,
    /// Drop client-to-client traffic.
    pub client_isolation: bool,
    /// Portal steering and the walled garden.
    pub intercept: InterceptSettings,
    /// What a used-up quota does.
    pub quota_action: QuotaAction,
    /// Noticing clients that left without logging out.
    pub lost_carrier: LostCarrier,
    /// Limits for sessions whose login set none of its own.
    pub default_limits: SessionLimits,
    /// Where session-id counters start (see [`SessionTable::with_id_seed`]).
    pub session_id_seed: u32,
}

/// The engine settings a reload changes while sessions run and frames
/// flow (see [`Engine::set_live_settings`]); the rest of
/// [`EngineSettings`] (addresses, network, DNS, the portal port) is fixed
/// for the engine's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSettings {
    /// Drop client-to-client traffic.
    pub client_isolation: bool,
    /// Unauthorized clients may query any DNS server.
    pub any_dns: bool,
    /// What a used-up quota does.
    pub quota_action: QuotaAction,
    /// Noticing clients that left without logging out.
    pub lost_carrier: LostCarrier,
    /// Limits for sessions whose login set none of its own (new sessions;
    /// running sessions keep the limits they started with).
    pub default_limits: SessionLimits,
}

/// ARP probing of silent clients: after `silent_secs` without a frame, an
/// ARP request goes to the client every `interval_secs`; after `probes`
/// unanswered ones an authorized session ends with Lost-Carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LostCarrier {
    /// Seconds of silence before probing starts (0 turns probing off).
    pub silent_secs: u32,
    /// Seconds between probes.
    pub interval_secs: u32,
    /// Unanswered probes that mean the client is gone.
    pub probes: u8,
}

impl Default for LostCarrier {
    fn default() -> Self {
        LostCarrier {
            silent_secs: 120,
            interval_secs: 10,
            probes: 3,
        }
    }
}

/// What to do with a frame received on the LAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanAction {
    /// Strip the Ethernet header and write the IP packet to the TUN device
    /// (vnet header shifted by −14).
    ToTun,
    /// Send the frame back out on the LAN to this client (client-to-client
    /// traffic when isolation is off): rewrite the Ethernet header.
    Hairpin(MacAddr),
    /// The engine handled it (ARP, DHCP); replies are in the outbox.
    Consumed,
    /// Held by the session's shaper; it comes out of [`Engine::release_held`].
    Held,
    /// Drop it; the reason has been counted.
    Drop(DropReason),
}

/// What to do with an IP packet read from the TUN device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunAction {
    /// Prepend an Ethernet header to this client and send it on the LAN.
    ToLan(MacAddr),
    /// Held by the session's shaper; it comes out of [`Engine::release_held`].
    Held,
    /// Drop it; the reason has been counted.
    Drop(DropReason),
}

/// Something the shell should know about (log, persist, later: account).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A lease was bound or renewed: persist the lease table.
    LeaseBound {
        /// Client.
        mac: MacAddr,
        /// Address.
        ip: Ipv4Addr,
        /// Expiry.
        expires: UnixMillis,
        /// A renewal of the lease the client had (not a new binding).
        renewed: bool,
    },
    /// A client lost its lease and left the table.
    LeaseEnded {
        /// Client.
        mac: MacAddr,
        /// Address.
        ip: Ipv4Addr,
        /// Why.
        reason: EndReason,
    },
    /// A client logged in (counters zero).
    SessionStarted(SessionReport),
    /// An authorized session ended.
    SessionEnded(EndedSession),
    /// An accounting Interim-Update is due for this session.
    InterimUpdate(SessionReport),
}

/// A packet a shaper let go.
#[derive(Debug)]
pub enum Released {
    /// An upload: write to the TUN device (its vnet header is the LAN one,
    /// measured from the Ethernet header).
    ToTun(Held),
    /// A download for this client: send on the LAN (its vnet header is the
    /// TUN one, measured from the IP header).
    ToLan(MacAddr, Held),
}

/// A consistent copy of the engine's state for the control plane.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// When it was taken.
    pub now: UnixMillis,
    /// Every client.
    pub clients: Vec<Client>,
    /// Drop counters by reason.
    pub drops: DropCounters,
    /// DHCP server counters.
    pub dhcp: DhcpStats,
    /// Connections currently redirected to the portal.
    pub redirected_flows: usize,
    /// Walled-garden addresses currently learnt from DNS answers.
    pub walled_garden_learnt: usize,
    /// DNS answers to unauthorized clients that matched none of their
    /// pending queries: from lan.dns (or lan.ipv6.dns, over IPv6)
    /// delivered but teaching nothing, from
    /// other servers (any_dns) also dropped as `dns_unmatched`.
    pub dns_unmatched_answers: u64,
    /// Bytes held by shapers.
    pub shaper_held_bytes: usize,
    /// IPv6 on the LAN, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Status>,
}

/// The engine.
pub struct Engine {
    settings: EngineSettings,
    dhcp: DhcpServer,
    sessions: SessionTable,
    drops: DropCounters,
    outbox: Vec<Vec<u8>>,
    events: VecDeque<Event>,
    intercept: Intercept,
    /// When the once-a-second housekeeping is next due (0: at once).
    next_housekeeping: UnixMillis,
    /// Packets the shapers hold.
    held: Holding,
    /// When the shell should save sessions and leases.
    saves: SaveSchedule,
    /// Traffic of authorized clients since start (metrics).
    traffic: Traffic,
    /// MACs the operator blocked (`lassi block`).
    blocked: std::collections::HashSet<MacAddr, crate::session::FastBuildHasher>,
    /// IPv6 on the LAN ([`Engine::enable_ipv6`]); `None`: every IPv6 frame dropped.
    ipv6: Option<Box<ipv6::Ipv6Lan>>,
}

impl Engine {
    /// A new engine around a DHCP server (already loaded with saved leases).
    /// Clients holding restored leases are put in the session table.
    pub fn new(settings: EngineSettings, dhcp: DhcpServer, now: UnixMillis) -> Engine {
        let mut sessions = SessionTable::with_id_seed(settings.session_id_seed);
        for l in dhcp.bound_leases() {
            sessions.lease_bound(l.mac, l.ip, l.expires, now);
        }
        let intercept = Intercept::new(settings.intercept.clone());
        Engine {
            settings,
            dhcp,
            sessions,
            drops: DropCounters::default(),
            outbox: Vec::new(),
            events: VecDeque::new(),
            intercept,
            next_housekeeping: 0,
            held: Holding::default(),
            saves: SaveSchedule::new(COUNTER_SAVE_INTERVAL_MS, now),
            traffic: Traffic::default(),
            blocked: Default::default(),
            ipv6: None,
        }
    }

    /// Applies a reload's live settings from the next frame on. No session,
    /// lease or held packet is touched: running sessions keep their limits,
    /// later housekeeping uses the new quota action and probing.
    pub fn set_live_settings(&mut self, live: LiveSettings) {
        self.settings.client_isolation = live.client_isolation;
        self.settings.intercept.any_dns = live.any_dns;
        self.intercept.settings.any_dns = live.any_dns;
        self.settings.quota_action = live.quota_action;
        self.settings.lost_carrier = live.lost_carrier;
        self.settings.default_limits = live.default_limits;
    }

    fn drop_lan(&mut self, why: DropReason) -> LanAction {
        self.drops.count(why);
        LanAction::Drop(why)
    }

    fn drop_tun(&mut self, why: DropReason) -> TunAction {
        self.drops.count(why);
        TunAction::Drop(why)
    }

    /// Classify a frame received on the LAN (`frame` starts at the Ethernet
    /// header; `vnet` describes its offload state).
    ///
    /// The frame may be rewritten in place (traffic steered to the portal).
    pub fn from_lan(&mut self, now: UnixMillis, vnet: &VnetHdr, frame: &mut [u8]) -> LanAction {
        let Some(eth) = EthHeader::parse(frame) else {
            return self.drop_lan(DropReason::Malformed);
        };
        if eth.src.is_multicast() {
            return self.drop_lan(DropReason::Malformed);
        }
        if self.is_blocked(eth.src) {
            return self.drop_blocked();
        }
        if eth.dst != self.settings.gateway_mac && !eth.dst.is_multicast() {
            return self.drop_lan(DropReason::NotForUs);
        }
        match eth.ethertype {
            ETHERTYPE_IPV4 => self.ipv4_from_lan(now, vnet, &eth, &mut frame[ETH_HLEN..]),
            ETHERTYPE_ARP => self.arp_from_lan(now, &eth, &frame[ETH_HLEN..]),
            // Without [lan.ipv6] every IPv6 frame stops here; with it,
            // neighbour discovery and DHCPv6 are served and the rest is
            // held or forwarded like IPv4 (ipv6_fwd).
            ETHERTYPE_IPV6 => self.ipv6_from_lan(now, vnet, eth.src, &mut frame[ETH_HLEN..]),
            // A tag the kernel left in the frame (802.1Q, 802.1ad, the old
            // QinQ type): its payload must never be read as untagged.
            0x8100 | 0x88a8 | 0x9100 => self.drop_lan(DropReason::VlanTagged),
            _ => self.drop_lan(DropReason::NotIp),
        }
    }

    /// A frame the LAN port received with a VLAN tag the kernel stripped
    /// (`tci`, VLAN 0 included). lassi serves no VLANs: a tagged frame is
    /// not the untagged guest it would look like once the tag is gone, so
    /// it is dropped and counted, whatever it carries.
    pub fn tagged_from_lan(&mut self, tci: u16) -> LanAction {
        tracing::debug!(vlan = tci & 0x0fff, "802.1Q-tagged frame dropped");
        self.drop_lan(DropReason::VlanTagged)
    }

    fn arp_from_lan(&mut self, now: UnixMillis, eth: &EthHeader, payload: &[u8]) -> LanAction {
        let Some(arp) = Arp::parse(payload) else {
            return self.drop_lan(DropReason::Malformed);
        };
        if arp.sha != eth.src {
            return self.drop_lan(DropReason::ArpIgnored);
        }
        // Any ARP from a client at its own leased address shows it is there
        // (this is how answers to lassi's probes arrive).
        if let Some(c) = self.sessions.by_ip_mut(arp.spa) {
            if c.mac == arp.sha {
                c.last_seen = now;
                c.probes = 0;
            }
        }
        if arp.op != ARP_REQUEST {
            return if arp.op == ARP_REPLY && arp.tpa == self.settings.gateway_ip {
                LanAction::Consumed
            } else {
                self.drop_lan(DropReason::ArpIgnored)
            };
        }
        let answer = if arp.tpa == self.settings.gateway_ip {
            true
        } else {
            // With isolation off, answer for other clients too (proxy ARP)
            // so their traffic comes through lassi and is counted.
            !self.settings.client_isolation
                && arp.tpa != arp.spa
                && self
                    .sessions
                    .by_ip(arp.tpa)
                    .is_some_and(|c| c.mac != eth.src)
        };
        if !answer {
            return self.drop_lan(DropReason::ArpIgnored);
        }
        let reply = Arp {
            op: ARP_REPLY,
            sha: self.settings.gateway_mac,
            spa: arp.tpa,
            tha: arp.sha,
            tpa: arp.spa,
        };
        self.outbox
            .push(reply.to_frame(arp.sha, self.settings.gateway_mac));
        LanAction::Consumed
    }

    fn ipv4_from_lan(
        &mut self,
        now: UnixMillis,
        vnet: &VnetHdr,
        eth: &EthHeader,
        ip: &mut [u8],
    ) -> LanAction {
        let Ok(p) = frame::parse_ipv4(ip) else {
            return self.drop_lan(DropReason::Malformed);
        };
        if let Some(action) = self.screen_from_lan(now, eth, &p, ip) {
            return action;
        }
        // The source address must be the sender's own lease.
        let Some(client) = self.sessions.by_ip_mut(p.src) else {
            return self.drop_lan(DropReason::NoLease);
        };
        if client.mac != eth.src {
            return self.drop_lan(DropReason::Spoofed);
        }
        client.last_seen = now;
        client.probes = 0;
        let authorized = client.state == SessionState::Authorized;
        if !authorized || p.dst == self.settings.gateway_ip {
            return self.slow_path_out(now, vnet, eth, &p, ip, authorized);
        }
        // A connection redirected before login carries on to the portal.
        let (partial, gw) = (vnet.flags & F_NEEDS_CSUM != 0, self.settings.gateway_ip);
        if p.proto == PROTO_TCP && self.intercept.continue_out(ip, &p, partial, gw, now) {
            return LanAction::ToTun;
        }
        // One lookup per packet: `client` is still the sender found above.
        client.last_active = now;
        let footprint = wire_footprint(vnet, p.total_len, p.l3l4_hdr_len);
        if client.over_quota() && !Self::quota_reached(client, self.settings.quota_action, now) {
            self.next_housekeeping = 0; // end it in this very loop
            return self.drop_lan(DropReason::Quota);
        }
        let to_guest = self.settings.network.contains(p.dst);
        if !to_guest {
            let packet = &ip[..p.total_len];
            match (self.held).offer(&mut client.up, client.mac, now, vnet, packet, footprint) {
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
        if to_guest {
            self.hairpin(p.dst, footprint)
        } else {
            LanAction::ToTun
        }
    }

    /// What is dropped or answered before the sender is looked up: DHCP to
    /// lassi's server, a guest's own DHCP server, broadcasts.
    fn screen_from_lan(
        &mut self,
        now: UnixMillis,
        eth: &EthHeader,
        p: &frame::Ipv4Summary,
        ip: &[u8],
    ) -> Option<LanAction> {
        if p.proto == PROTO_UDP && !p.later_fragment {
            if p.dst_port == DHCP_SERVER_PORT && p.src_port == DHCP_CLIENT_PORT {
                return Some(self.dhcp_from_lan(now, eth, p, ip));
            }
            if p.src_port == DHCP_SERVER_PORT {
                // A client running a DHCP server: never let it answer others.
                return Some(self.drop_lan(DropReason::RogueDhcpServer));
            }
        }
        let broadcast = self.settings.network.broadcast();
        if p.dst.is_multicast() || p.dst.is_broadcast() || p.dst == broadcast {
            return Some(self.drop_lan(DropReason::Broadcast));
        }
        None
    }

    /// A guest's packet to lassi itself, or from a guest not logged in.
    ///
    /// lassi's own services are not the guest's internet use. Before login
    /// only the portal, DNS (when lassi is a DNS server it hands out) and
    /// ping are open on the gateway: nothing else the router runs (ssh, its
    /// web UI, a proxy) may be reached.
    fn slow_path_out(
        &mut self,
        now: UnixMillis,
        vnet: &VnetHdr,
        eth: &EthHeader,
        p: &frame::Ipv4Summary,
        ip: &mut [u8],
        authorized: bool,
    ) -> LanAction {
        if p.dst != self.settings.gateway_ip {
            let partial = vnet.flags & F_NEEDS_CSUM != 0;
            return self.unauthorized_out(now, eth, p, ip, partial);
        }
        if authorized || self.gateway_service_open(p) {
            return LanAction::ToTun;
        }
        self.refuse(now, eth, p, ip);
        self.drop_lan(DropReason::Unauthorized)
    }

    /// Client to client (isolation off): on to `dst` if it is logged in,
    /// counted as its download.
    fn hairpin(&mut self, dst: Ipv4Addr, (packets, octets): (u64, u64)) -> LanAction {
        match self.sessions.by_ip_mut(dst) {
            Some(peer) if peer.state == SessionState::Authorized => {
                peer.counters.packets_out += packets;
                peer.counters.octets_out += octets;
                self.traffic.download((packets, octets));
                LanAction::Hairpin(peer.mac)
            }
            Some(_) => self.drop_lan(DropReason::Unauthorized),
            None => self.drop_lan(DropReason::UnknownDestination),
        }
    }

    /// A client that has not logged in: DNS, the walled garden, web traffic
    /// steered to the portal; everything else refused at once.
    fn unauthorized_out(
        &mut self,
        now: UnixMillis,
        eth: &EthHeader,
        p: &frame::Ipv4Summary,
        ip: &mut [u8],
        partial: bool,
    ) -> LanAction {
        if self.settings.network.contains(p.dst) {
            // Another guest: never before login, whatever the port.
            return self.drop_lan(DropReason::ClientToClient);
        }
        // DNS to the servers handed out (any server, UDP only, with
        // portal.any_dns: TCP/53 to anywhere would carry a VPN).
        if p.dst_port == DNS_PORT && !p.later_fragment {
            if let Some(action) = self.dns_from_unauthorized(now, p, ip, partial) {
                return action;
            }
        }
        if self.intercept.walled(p.dst, now) {
            return LanAction::ToTun;
        }
        if p.proto == PROTO_TCP && p.dst_port == HTTP_PORT {
            let gw = self.settings.gateway_ip;
            if self.intercept.redirect_out(ip, p, partial, gw, now) {
                return LanAction::ToTun;
            }
            // Not a SYN and no connection we know: reset it.
            self.refuse(now, eth, p, ip);
            return self.drop_lan(DropReason::Unauthorized);
        }
        self.refuse(now, eth, p, ip);
        self.drop_lan(DropReason::Unauthorized)
    }

    /// A packet of an unauthorized client to port 53: `None` when it is not
    /// DNS to a server the client may use (the caller goes on).
    ///
    /// TCP passes to lan.dns only. A UDP query is remembered as pending and
    /// goes out with lassi's own source port and id (the guest learns
    /// neither, so cannot have an answer forged for it); to other servers
    /// (any_dns) only well-formed queries within the guest's rate pass.
    fn dns_from_unauthorized(
        &mut self,
        now: UnixMillis,
        p: &frame::Ipv4Summary,
        ip: &mut [u8],
        partial: bool,
    ) -> Option<LanAction> {
        let configured = self.settings.dns.contains(&p.dst);
        if p.proto == PROTO_TCP && configured {
            return Some(LanAction::ToTun);
        }
        if p.proto != PROTO_UDP || !(configured || self.intercept.settings.any_dns) {
            return None;
        }
        let x = dns::Exchange {
            client: p.src.into(),
            client_port: p.src_port,
            server: p.dst.into(),
        };
        let payload = &ip[p.ihl + 8..p.total_len];
        match self.intercept.dns.query(now, x, payload, !configured) {
            Ok(rewrite) => {
                if let Some(rw) = rewrite {
                    dns::rewrite(ip, p.ihl, dns::Port::Source, rw.port, rw.id, partial);
                }
                Some(LanAction::ToTun)
            }
            Err(why) => {
                tracing::debug!(client = %p.src, server = %p.dst, reason = why.name(), "DNS query dropped");
                Some(self.drop_lan(why))
            }
        }
    }

    /// What an unauthorized client may reach on the gateway itself.
    fn gateway_service_open(&self, p: &frame::Ipv4Summary) -> bool {
        match p.proto {
            PROTO_TCP => {
                p.dst_port == self.intercept.settings.portal_port
                    || (p.dst_port == DNS_PORT
                        && self.settings.dns.contains(&self.settings.gateway_ip))
            }
            PROTO_UDP => {
                p.dst_port == DNS_PORT && self.settings.dns.contains(&self.settings.gateway_ip)
            }
            frame::PROTO_ICMP => true,
            _ => false,
        }
    }

    /// Tell the client at once that it cannot go there: a TCP reset from the
    /// address it tried, or an ICMP administratively-prohibited from the
    /// gateway for anything else.
    fn refuse(&mut self, now: UnixMillis, eth: &EthHeader, p: &frame::Ipv4Summary, ip: &[u8]) {
        if !self.intercept.rejects_left(now) {
            return;
        }
        let gw_mac = self.settings.gateway_mac;
        let reply = match p.proto {
            PROTO_TCP => frame::tcp_info(ip, p).and_then(|seg| {
                frame::tcp_reset_frame(gw_mac, eth.src, p.dst, p.src, p.dst_port, p.src_port, &seg)
            }),
            PROTO_UDP if !p.later_fragment => Some(frame::icmp_unreachable_frame(
                gw_mac,
                eth.src,
                self.settings.gateway_ip,
                p.src,
                ICMP_ADMIN_PROHIBITED,
                &ip[..p.total_len],
                p.ihl,
            )),
            _ => None,
        };
        if let Some(reply) = reply {
            if self.intercept.may_reject(now) {
                self.outbox.push(reply);
            }
        }
    }

    fn dhcp_from_lan(
        &mut self,
        now: UnixMillis,
        eth: &EthHeader,
        p: &frame::Ipv4Summary,
        ip: &[u8],
    ) -> LanAction {
        let gw = self.settings.gateway_ip;
        if !(p.dst.is_broadcast() || p.dst == gw) {
            // Addressed to another server (a client renewing with its old
            // network's server): not ours to answer.
            return self.drop_lan(DropReason::NotForUs);
        }
        let payload = &ip[p.ihl + 8..p.total_len];
        let result = self.dhcp.handle_with(now, eth.src, payload, &self.sessions);
        // A lease reclaimed for this message ends now, before its address
        // goes to anyone: its old owner must stop passing as the owner.
        for ev in self.dhcp.expire(now) {
            self.apply_lease_event(ev, now);
        }
        match result {
            Ok(outcome) => {
                if let Some(reply) = outcome.reply {
                    let addressing = UdpAddressing {
                        src_mac: self.settings.gateway_mac,
                        dst_mac: reply.dst_mac,
                        src_ip: gw,
                        dst_ip: reply.dst_ip,
                        src_port: DHCP_SERVER_PORT,
                        dst_port: reply.dst_port,
                    };
                    self.outbox
                        .push(frame::udp_frame(&addressing, &reply.payload));
                }
                if let Some(ev) = outcome.event {
                    self.apply_lease_event(ev, now);
                }
                LanAction::Consumed
            }
            // The DHCP server counts its own refusals by kind.
            Err(_) => self.drop_lan(DropReason::DhcpRefused),
        }
    }

    fn lease_bound(
        &mut self,
        mac: MacAddr,
        ip: Ipv4Addr,
        expires: UnixMillis,
        renewed: bool,
        now: UnixMillis,
    ) {
        self.sessions.lease_bound(mac, ip, expires, now);
        self.push_event(Event::LeaseBound {
            mac,
            ip,
            expires,
            renewed,
        });
    }

    fn apply_lease_event(&mut self, ev: LeaseEvent, now: UnixMillis) {
        let (mac, ip, reason) = match ev {
            LeaseEvent::Bound {
                mac, ip, expires, ..
            } => return self.lease_bound(mac, ip, expires, false, now),
            LeaseEvent::Renewed { mac, ip, expires } => {
                return self.lease_bound(mac, ip, expires, true, now)
            }
            LeaseEvent::Reclaimed { mac, ip } => (mac, ip, EndReason::LeaseReclaimed),
            LeaseEvent::Released { mac, ip } | LeaseEvent::Declined { mac, ip } => {
                (mac, ip, EndReason::LeaseReleased)
            }
            LeaseEvent::Expired { mac, ip } => (mac, ip, EndReason::LeaseExpired),
        };
        if self.sessions.by_mac(mac).is_none() {
            return;
        }
        if let Some(ended) = self.sessions.remove(mac, reason, now) {
            self.push_event(Event::SessionEnded(ended));
        }
        self.push_event(Event::LeaseEnded { mac, ip, reason });
    }

    /// Classify an IP packet read from the TUN device (toward a client).
    /// The packet may be rewritten in place (portal replies).
    pub fn from_tun(&mut self, now: UnixMillis, vnet: &VnetHdr, packet: &mut [u8]) -> TunAction {
        if packet.first().map(|b| b >> 4) == Some(6) {
            return self.ipv6_from_tun(now, vnet, packet);
        }
        let Ok(p) = frame::parse_ipv4(packet) else {
            return self.drop_tun(DropReason::Malformed);
        };
        let gateway_ip = self.settings.gateway_ip;
        let partial = vnet.flags & F_NEEDS_CSUM != 0;
        if p.src != gateway_ip && self.settings.network.contains(p.src) {
            // A guest's packet the kernel routed back toward the LAN: guests
            // reach each other only through lassi's own hairpin (isolation
            // off) or not at all, never around it through the kernel.
            return self.drop_tun(DropReason::ClientToClient);
        }
        let Some(client) = self.sessions.by_ip_mut(p.dst) else {
            return self.drop_tun(DropReason::UnknownDestination);
        };
        let (mac, authorized) = (client.mac, client.state == SessionState::Authorized);
        if p.src == gateway_ip {
            // lassi itself: the portal (replies on redirected connections
            // are made to look like they come from the site asked for).
            self.intercept.redirect_back(packet, &p, partial, now);
            return TunAction::ToLan(mac);
        }
        if authorized {
            if p.proto == PROTO_UDP && p.src_port == DNS_PORT {
                // Maybe the answer to a query sent before login.
                self.intercept.dns.late_answer(now, &p, packet, partial);
            }
            let footprint = wire_footprint(vnet, p.total_len, p.l3l4_hdr_len);
            if client.over_quota() && !Self::quota_reached(client, self.settings.quota_action, now)
            {
                self.next_housekeeping = 0;
                return self.drop_tun(DropReason::Quota);
            }
            let packet = &packet[..p.total_len];
            match (self.held).offer(&mut client.down, mac, now, vnet, packet, footprint) {
                Shaping::Pass => {}
                Shaping::Held => return TunAction::Held,
                Shaping::Drop => return self.drop_tun(DropReason::Shaped),
            }
            client.counters.packets_out += footprint.0;
            client.counters.octets_out += footprint.1;
            self.traffic.download(footprint);
            return TunAction::ToLan(mac);
        }
        if p.src_port == DNS_PORT && !p.later_fragment {
            if let Some(action) = self.dns_to_unauthorized(now, &p, packet, partial, mac) {
                return action;
            }
        }
        if self.intercept.walled(p.src, now) {
            return TunAction::ToLan(mac);
        }
        self.drop_tun(DropReason::Unauthorized)
    }

    /// A packet from port 53 to an unauthorized client: `None` when it is
    /// not DNS of a server the client may use (the caller goes on).
    ///
    /// Only an answer to the client's own pending query (same ports, id and
    /// question) may teach the walled garden, and only from the operator's
    /// own servers (with any_dns a guest could run one that answers
    /// "walled.example.org A <anything>"). Unmatched answers from lan.dns
    /// are still delivered (DNS keeps working) but teach nothing; from any
    /// other server they are dropped, so any_dns is no tunnel.
    fn dns_to_unauthorized(
        &mut self,
        now: UnixMillis,
        p: &frame::Ipv4Summary,
        packet: &mut [u8],
        partial: bool,
        mac: MacAddr,
    ) -> Option<TunAction> {
        let configured = self.settings.dns.contains(&p.src);
        if p.proto == PROTO_TCP && configured {
            return Some(TunAction::ToLan(mac));
        }
        if p.proto != PROTO_UDP || !(configured || self.intercept.settings.any_dns) {
            return None;
        }
        let x = dns::Exchange {
            client: p.dst.into(),
            client_port: p.dst_port,
            server: p.src.into(),
        };
        let payload = &packet[p.ihl + 8..p.total_len];
        match self.intercept.dns.answer(now, x, payload) {
            Some(m) => {
                if configured {
                    self.intercept
                        .learn_from_answer(&m.msg, &m.question, p.dst, now);
                }
                let port = dns::Port::Destination;
                dns::rewrite(packet, p.ihl, port, m.client_port, m.id, partial);
                Some(TunAction::ToLan(mac))
            }
            None if configured => {
                tracing::debug!(client = %p.dst, server = %p.src, "DNS answer matches no pending query: delivered, not learnt");
                Some(TunAction::ToLan(mac))
            }
            None if self.intercept.walled(p.src, now) => Some(TunAction::ToLan(mac)),
            None => Some(self.drop_tun(DropReason::DnsUnmatched)),
        }
    }

    /// A session reached its quota on the fast path. With `Throttle` it is
    /// slowed right here and the packet may go on (true); with `End` the
    /// packet is dropped and the session ends at once in `tick` (false).
    fn quota_reached(client: &mut Client, action: QuotaAction, now: UnixMillis) -> bool {
        match action {
            QuotaAction::End => false,
            QuotaAction::Throttle { up_bps, down_bps } => {
                if !client.throttled {
                    client.throttle(up_bps, down_bps, now);
                }
                true
            }
        }
    }

    /// Packets whose shaper lets them go now; the shell sends them on.
    pub fn release_held(&mut self, now: UnixMillis, out: &mut Vec<Released>) {
        self.held.last_release = now;
        if self.held.sessions.is_empty() {
            return;
        }
        let mut held = 0;
        let sessions = &mut self.sessions;
        let traffic = &mut self.traffic;
        // In place: no set rebuilt, nothing allocated per loop iteration.
        self.held.sessions.retain(|&mac| {
            let Some(c) = sessions.by_mac_mut(mac) else {
                return false;
            };
            if c.state != SessionState::Authorized {
                c.up.clear();
                c.down.clear();
                return false;
            }
            let counters = &mut c.counters;
            c.up.release(now, |h| {
                counters.packets_in += h.packets;
                counters.octets_in += h.octets;
                traffic.upload((h.packets, h.octets));
                out.push(Released::ToTun(h));
            });
            c.down.release(now, |h| {
                counters.packets_out += h.packets;
                counters.octets_out += h.octets;
                traffic.download((h.packets, h.octets));
                out.push(Released::ToLan(mac, h));
            });
            let bytes = c.up.queued_bytes() + c.down.queued_bytes();
            held += bytes;
            bytes > 0
        });
        // Recounted from the queues themselves, so shapers replaced by a
        // CoA or a logout never leave the total wrong.
        self.held.bytes = held;
    }

    /// Seed the generator of the ports and ids lassi writes into guests'
    /// DNS queries (the shell passes kernel randomness; tests any value).
    pub fn seed_random(&mut self, seed: u64) {
        self.intercept.dns.seed(seed);
    }

    /// Replace the addresses resolved for the walled garden's host names.
    pub fn set_walled_garden_hosts(&mut self, ips: Vec<Ipv4Addr>) {
        self.intercept.set_resolved(ips);
    }

    /// Frames the engine wants sent on the LAN (ARP and DHCP replies).
    pub fn outbox(&mut self) -> &mut Vec<Vec<u8>> {
        &mut self.outbox
    }

    /// Log a client in with what its login granted.
    pub fn authorize(
        &mut self,
        mac: MacAddr,
        mut auth: Authorization,
        now: UnixMillis,
    ) -> Result<Client, SessionError> {
        auth.limits = auth.limits.or(&self.settings.default_limits);
        let c = self.sessions.authorize(mac, auth, now)?.clone();
        if let Some(r) = SessionReport::of(&c, now) {
            self.push_event(Event::SessionStarted(r));
        }
        Ok(c)
    }

    /// Change a running session's limits (CoA).
    pub fn set_limits(
        &mut self,
        mac: MacAddr,
        limits: SessionLimits,
        now: UnixMillis,
    ) -> Result<Client, SessionError> {
        self.sessions.set_limits(mac, limits, now).cloned()
    }

    /// End a client's session; it keeps its lease and is back behind the portal.
    pub fn logout(
        &mut self,
        mac: MacAddr,
        reason: EndReason,
        now: UnixMillis,
    ) -> Result<EndedSession, SessionError> {
        let ended = self.sessions.deauthorize(mac, reason, now)?;
        self.push_event(Event::SessionEnded(ended.clone()));
        Ok(ended)
    }

    /// lassi is stopping. With `stop` every authorized session ends
    /// (NAS-Reboot) as before; without, sessions are left as they are, to be
    /// saved with the stop time and resumed by the next start. Leases are
    /// kept either way.
    pub fn shutdown(&mut self, now: UnixMillis, stop: bool) {
        self.ipv6_shutdown(now);
        if !stop {
            return;
        }
        for mac in self.sessions.macs() {
            if let Ok(ended) = self.sessions.deauthorize(mac, EndReason::NasReboot, now) {
                self.push_event(Event::SessionEnded(ended));
            }
        }
    }

    /// A number that moves whenever any authorized session's counters move
    /// (the save schedule compares it between saves).
    pub fn counters_fingerprint(&self) -> u64 {
        housekeeping::counters_fingerprint(&self.sessions)
    }

    /// A copy of everything the control plane shows.
    pub fn snapshot(&self, now: UnixMillis) -> Snapshot {
        let mut clients: Vec<Client> = self.sessions.iter().cloned().collect();
        clients.sort_by_key(|c| u32::from(c.ip));
        Snapshot {
            now,
            clients,
            drops: self.drops.clone(),
            dhcp: self.dhcp.stats(),
            redirected_flows: self.intercept.flow_count(),
            shaper_held_bytes: self.held.bytes,
            walled_garden_learnt: self.intercept.learnt_count(),
            dns_unmatched_answers: self.intercept.dns.unmatched_answers(),
            ipv6: self.ipv6_status(),
        }
    }

    /// Session counts by state, traffic since start, drops and DHCP: what
    /// a metrics scrape needs, without copying the session table.
    pub fn metrics(&self) -> EngineMetrics {
        let (mut authorized, mut unauthorized, mut throttled) = (0, 0, 0);
        for c in self.sessions.iter() {
            match c.state {
                SessionState::Authorized => authorized += 1,
                SessionState::Unauthorized => unauthorized += 1,
            }
            throttled += u64::from(c.throttled && c.state == SessionState::Authorized);
        }
        EngineMetrics {
            unauthorized,
            authorized,
            throttled,
            traffic: self.traffic,
            drops: self.drops.clone(),
            dhcp: self.dhcp.stats(),
            redirected_flows: self.intercept.flow_count() as u64,
            shaper_held_bytes: self.held.bytes as u64,
        }
    }

    /// The authorized sessions to persist (`stopped` when their Stops are
    /// going out now, at a clean shutdown).
    pub fn session_records(&self, now: UnixMillis, stopped: bool) -> Vec<SessionRecord> {
        self.sessions
            .iter()
            .filter_map(|c| SessionRecord::of(c, now, stopped))
            .collect()
    }

    /// After a restart. Within `grace_ms` of the previous process's end
    /// (its clean stop, or its last save after a crash) each saved session
    /// continues under its Acct-Session-Id, login time, limits and counters,
    /// and its first record is an Interim-Update now (unless one went out
    /// less than a second ago: it would be the same record again). Later than that, the
    /// sessions end with NAS-Reboot Stops dated when that process was last
    /// alive (with the counters last saved) and their guests are logged in
    /// again under new ids with what their limits had left, so nobody sees
    /// the splash page twice. Sessions whose Stops already went out (a
    /// shutdown with `session.stop_on_shutdown`) are logged in again too.
    /// Returns how many sessions continued.
    pub fn resume_sessions(
        &mut self,
        saved: SavedSessions,
        now: UnixMillis,
        grace_ms: u64,
    ) -> usize {
        let resume = saved.resumable(now, grace_ms);
        let last_alive = saved.last_alive();
        let mut login_again = Vec::new();
        let mut resumed = 0;
        // Every Stop before any Start.
        for r in saved.sessions {
            if r.stopped {
                login_again.push(r);
            } else if resume {
                resumed += usize::from(self.resume_one(&r, now, last_alive));
            } else {
                let mut ended = r.ended();
                ended.ended = last_alive.max(r.saved_at);
                self.push_event(Event::SessionEnded(ended));
                login_again.push(r);
            }
        }
        for r in login_again {
            self.login_again(r, now);
        }
        resumed
    }

    /// Continue one saved session (true), or close it: its time ran out
    /// while lassi was away (Stop dated when it ran out) or its client no
    /// longer holds the lease (NAS-Reboot, dated when lassi was last alive).
    fn resume_one(&mut self, r: &SessionRecord, now: UnixMillis, last_alive: UnixMillis) -> bool {
        let timeout_at = [
            r.limits
                .session_timeout
                .map(|t| r.authorized_at + u64::from(t) * 1000),
            r.limits.terminate_at,
        ]
        .into_iter()
        .flatten()
        .min();
        let mut ended = r.ended();
        if let Some(t) = timeout_at.filter(|&t| t <= now) {
            ended.reason = EndReason::SessionTimeout;
            ended.ended = t.clamp(r.saved_at, now);
            self.push_event(Event::SessionEnded(ended));
            return false;
        }
        let Ok(c) = self.sessions.resume(r, now) else {
            ended.ended = last_alive.max(r.saved_at);
            self.push_event(Event::SessionEnded(ended));
            return false;
        };
        if !r.reported_just_before(now) {
            if let Some(report) = SessionReport::of(c, now) {
                self.push_event(Event::InterimUpdate(report));
            }
        }
        if r.throttled {
            if let QuotaAction::Throttle { up_bps, down_bps } = self.settings.quota_action {
                self.sessions.throttle(r.mac, up_bps, down_bps, now);
            }
        }
        true
    }

    /// Log a saved session's guest in again under a new id, with what its
    /// limits had left (a used-up one does not come back).
    fn login_again(&mut self, r: SessionRecord, now: UnixMillis) {
        let quota_ends = self.settings.quota_action == QuotaAction::End;
        let same_client = self.sessions.by_mac(r.mac).is_some_and(|c| c.ip == r.ip);
        let Some(limits) = r.remaining_limits(quota_ends) else {
            return;
        };
        if !same_client {
            return;
        }
        let mut auth = r.authorization();
        auth.limits = limits;
        if self.authorize(r.mac, auth, now).is_ok() && r.throttled {
            if let QuotaAction::Throttle { up_bps, down_bps } = self.settings.quota_action {
                self.sessions.throttle(r.mac, up_bps, down_bps, now);
            }
        }
    }

    /// The authorized sessions a CoA or Disconnect request designates.
    pub fn find_sessions(&self, m: &SessionMatch) -> Vec<Client> {
        self.sessions
            .iter()
            .filter(|c| m.matches(c))
            .cloned()
            .collect()
    }

    /// The lease table to persist.
    pub fn lease_records(&self) -> Vec<LeaseRecord> {
        self.dhcp.records()
    }

    /// Read-only access to the sessions (tests, snapshots).
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// Drop counters.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }
}

/// The DHCP server's view of the clients: logged in, or a guest last seen
/// when (any frame from it counts, see `last_seen`).
impl Clients for SessionTable {
    fn standing(&self, mac: MacAddr) -> Standing {
        match self.by_mac(mac) {
            Some(c) if c.state == SessionState::Authorized => Standing::LoggedIn,
            Some(c) => Standing::Guest {
                last_seen: c.last_seen,
            },
            None => Standing::Guest { last_seen: 0 },
        }
    }
}

#[cfg(test)]
mod tests;
