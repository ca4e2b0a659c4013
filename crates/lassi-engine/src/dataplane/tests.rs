//! Engine tests: whole frames in, actions and frames out, no root needed.

use core::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType};
use dhcproto::{Decodable, Encodable};

use super::*;
use crate::dhcp::{DhcpServer, DhcpSettings};
use crate::session::ClientFilter;
use crate::testkit::{self, GW};
use crate::wire::checksum;
use crate::wire::frame::{udp_frame, UdpAddressing};
use crate::wire::vnet::{F_NEEDS_CSUM, GSO_TCPV4};

const DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const WEB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const T0: UnixMillis = 1_795_359_600_000;

fn gw_mac() -> MacAddr {
    "02:00:00:00:00:01".parse().unwrap()
}

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, n])
}

fn engine(isolation: bool) -> Engine {
    engine_with(isolation, |_| {})
}

fn engine_with(isolation: bool, tweak: impl FnOnce(&mut DhcpSettings)) -> Engine {
    let mut settings = testkit::dhcp_settings(DNS);
    tweak(&mut settings);
    let dhcp = DhcpServer::new(settings, vec![], T0);
    let mut engine_settings = testkit::engine_settings(DNS);
    engine_settings.client_isolation = isolation;
    engine_settings.intercept.walled_nets = vec!["203.0.113.0/24".parse().unwrap()];
    engine_settings.intercept.walled_suffixes = vec!["example.org".into()];
    Engine::new(engine_settings, dhcp, T0)
}

/// Classify a copy of `f` (the engine may rewrite frames in place).
fn lan(e: &mut Engine, now: UnixMillis, vnet: &VnetHdr, f: &[u8]) -> LanAction {
    e.from_lan(now, vnet, &mut f.to_vec())
}

fn tun(e: &mut Engine, now: UnixMillis, vnet: &VnetHdr, p: &[u8]) -> TunAction {
    e.from_tun(now, vnet, &mut p.to_vec())
}

fn who(user: Option<&str>) -> Authorization {
    Authorization {
        user: user.map(str::to_string),
        ..Default::default()
    }
}

fn limited(limits: SessionLimits) -> Authorization {
    Authorization {
        limits,
        ..Default::default()
    }
}

fn plain() -> VnetHdr {
    VnetHdr::default()
}

fn dhcp_frame(m: MacAddr, msg: &Message) -> Vec<u8> {
    udp_frame(
        &UdpAddressing {
            src_mac: m,
            dst_mac: MacAddr::BROADCAST,
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
        },
        &msg.to_vec().unwrap(),
    )
}

/// The DHCP message inside a frame the engine sent, with its IPv4 header checked.
fn decode_reply(frame: &[u8]) -> (EthHeader, frame::Ipv4Summary, Message) {
    let eth = EthHeader::parse(frame).unwrap();
    let ip = &frame[ETH_HLEN..];
    assert!(checksum::ipv4_header_ok(&ip[..20]));
    let p = frame::parse_ipv4(ip).unwrap();
    assert_eq!((p.src, p.src_port, p.dst_port), (GW, 67, 68));
    let msg = Message::from_bytes(&ip[p.ihl + 8..p.total_len]).unwrap();
    (eth, p, msg)
}

/// Leases `m` an address and lets it through the portal (no user) at T0.
fn online(e: &mut Engine, m: MacAddr) -> Ipv4Addr {
    let ip = lease(e, m);
    e.authorize(m, who(None), T0).unwrap();
    ip
}

/// Leases clients 1 and 2 their addresses, then lets both through the
/// portal (no user) at T0.
fn both_online(e: &mut Engine) -> (Ipv4Addr, Ipv4Addr) {
    let a = lease(e, mac(1));
    let b = lease(e, mac(2));
    e.authorize(mac(1), who(None), T0).unwrap();
    e.authorize(mac(2), who(None), T0).unwrap();
    (a, b)
}

/// Run DISCOVER/OFFER/REQUEST/ACK for `m` through the engine; returns the address.
fn lease(e: &mut Engine, m: MacAddr) -> Ipv4Addr {
    let mut d = Message::new_with_id(
        7,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &m.0,
    );
    d.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    assert_eq!(
        lan(e, T0, &plain(), &dhcp_frame(m, &d)),
        LanAction::Consumed
    );
    let offer = e.outbox().pop().expect("an OFFER");
    let (eth, p, o) = decode_reply(&offer);
    assert_eq!(o.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(eth.dst, m, "unicast to the client's MAC");
    assert_eq!(p.dst, o.yiaddr());
    let ip = o.yiaddr();
    let mut r = Message::new_with_id(
        8,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &m.0,
    );
    r.set_flags(Flags::default().set_broadcast());
    r.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Request));
    r.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    r.opts_mut().insert(DhcpOption::ServerIdentifier(GW));
    assert_eq!(
        lan(e, T0, &plain(), &dhcp_frame(m, &r)),
        LanAction::Consumed
    );
    let ack = e.outbox().pop().expect("an ACK");
    let (eth, p, a) = decode_reply(&ack);
    assert_eq!(a.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(
        (eth.dst, p.dst),
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST),
        "broadcast flag honoured"
    );
    assert_eq!(a.yiaddr(), ip);
    ip
}

/// A TCP segment from `src` to `dst` with `payload` bytes, Ethernet-framed.
fn tcp(src_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: usize) -> Vec<u8> {
    let total = 40 + payload;
    let mut f = vec![0u8; ETH_HLEN + total];
    EthHeader {
        dst: gw_mac(),
        src: src_mac,
        ethertype: ETHERTYPE_IPV4,
    }
    .write(&mut f);
    let ip = &mut f[ETH_HLEN..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = PROTO_TCP;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    checksum::fix_ipv4_header(&mut ip[..20]);
    ip[20..22].copy_from_slice(&40000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&dport.to_be_bytes());
    ip[32] = 0x50;
    f
}

fn udp(src_mac: MacAddr, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    udp_frame(
        &UdpAddressing {
            src_mac,
            dst_mac: gw_mac(),
            src_ip: src,
            dst_ip: dst,
            src_port: sport,
            dst_port: dport,
        },
        b"query",
    )
}

#[test]
fn dhcp_through_the_engine_creates_an_unauthorized_client() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let c = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!((c.ip, c.state), (ip, SessionState::Unauthorized));
    let evs = e.take_events();
    assert!(matches!(evs.as_slice(), [Event::LeaseBound { ip: i, .. }] if *i == ip));
}

#[test]
fn arp_answered_for_the_gateway_only() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let req = |tpa| {
        Arp {
            op: ARP_REQUEST,
            sha: mac(1),
            spa: ip,
            tha: MacAddr::default(),
            tpa,
        }
        .to_frame(MacAddr::BROADCAST, mac(1))
    };
    assert_eq!(lan(&mut e, T0, &plain(), &req(GW)), LanAction::Consumed);
    let reply = e.outbox().pop().unwrap();
    let a = Arp::parse(&reply[ETH_HLEN..]).unwrap();
    assert_eq!(
        (a.op, a.sha, a.spa, a.tha, a.tpa),
        (ARP_REPLY, gw_mac(), GW, mac(1), ip)
    );
    assert_eq!(EthHeader::parse(&reply).unwrap().dst, mac(1));
    // Another client's address, or the uplink's: lassi stays silent.
    let other = lease(&mut e, mac(2));
    assert_eq!(
        lan(&mut e, T0, &plain(), &req(other)),
        LanAction::Drop(DropReason::ArpIgnored)
    );
    assert_eq!(
        lan(&mut e, T0, &plain(), &req(Ipv4Addr::new(192, 0, 2, 1))),
        LanAction::Drop(DropReason::ArpIgnored)
    );
    assert!(e.outbox().is_empty());
}

#[test]
fn proxy_arp_for_clients_when_isolation_is_off() {
    let mut e = engine(false);
    let a = lease(&mut e, mac(1));
    let b = lease(&mut e, mac(2));
    let f = Arp {
        op: ARP_REQUEST,
        sha: mac(1),
        spa: a,
        tha: MacAddr::default(),
        tpa: b,
    }
    .to_frame(MacAddr::BROADCAST, mac(1));
    assert_eq!(lan(&mut e, T0, &plain(), &f), LanAction::Consumed);
    let reply = Arp::parse(&e.outbox().pop().unwrap()[ETH_HLEN..]).unwrap();
    assert_eq!((reply.sha, reply.spa), (gw_mac(), b));
}

#[test]
fn unauthorized_clients_reach_dns_and_lassi_only() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), ip, DNS, 5353, 53)),
        LanAction::ToTun
    );
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, GW, 3990, 0)),
        LanAction::ToTun
    );
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), ip, WEB, 5353, 53)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), ip, DNS, 5353, 54)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    // Way back: DNS answers and lassi's own replies pass, the web does not.
    let answer = udp(gw_mac(), DNS, ip, 53, 5353);
    assert_eq!(
        tun(&mut e, T0, &plain(), &answer[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    let web = tcp(gw_mac(), WEB, ip, 40000, 10);
    assert_eq!(
        tun(&mut e, T0, &plain(), &web[ETH_HLEN..]),
        TunAction::Drop(DropReason::Unauthorized)
    );
    // Nothing was counted to the session.
    assert_eq!(
        e.sessions().by_mac(mac(1)).unwrap().counters,
        Default::default()
    );
    assert_eq!(
        e.drops().get(DropReason::Unauthorized),
        4,
        "three out, one back"
    );
}

#[test]
fn authorized_traffic_is_forwarded_and_counted_at_the_ip_layer() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    e.authorize(mac(1), who(Some("alice")), T0).unwrap();
    let out = tcp(mac(1), ip, WEB, 80, 1000);
    assert_eq!(lan(&mut e, T0 + 5, &plain(), &out), LanAction::ToTun);
    let back = tcp(gw_mac(), WEB, ip, 40000, 300);
    assert_eq!(
        tun(&mut e, T0 + 6, &plain(), &back[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    let c = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(c.counters.octets_in, 1040);
    assert_eq!(c.counters.octets_out, 340);
    assert_eq!((c.counters.packets_in, c.counters.packets_out), (1, 1));
    assert_eq!(c.last_active, T0 + 5);
}

#[test]
fn gso_super_packets_count_what_they_stand_for() {
    let mut e = engine(true);
    let ip = online(&mut e, mac(1));
    let payload = 1448 * 10 + 100;
    let f = tcp(mac(1), ip, WEB, 80, payload);
    let vnet = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    assert_eq!(lan(&mut e, T0, &vnet, &f), LanAction::ToTun);
    let c = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(c.counters.packets_in, 11);
    assert_eq!(c.counters.octets_in, (payload + 11 * 40) as u64);
}

#[test]
fn spoofed_and_unleased_sources_are_dropped_and_counted_to_nobody() {
    let mut e = engine(true);
    let (a, _b) = both_online(&mut e);
    // Client 2 forges client 1's address.
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(2), a, WEB, 80, 500)),
        LanAction::Drop(DropReason::Spoofed)
    );
    // A hand-configured address nobody leased.
    let rogue = Ipv4Addr::new(10, 1, 0, 77);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(3), rogue, WEB, 80, 500)),
        LanAction::Drop(DropReason::NoLease)
    );
    for m in [mac(1), mac(2)] {
        assert_eq!(e.sessions().by_mac(m).unwrap().counters, Default::default());
    }
    assert_eq!(e.drops().get(DropReason::Spoofed), 1);
    assert_eq!(e.drops().get(DropReason::NoLease), 1);
}

#[test]
fn ipv6_rogue_dhcp_and_broadcasts_never_pass() {
    let mut e = engine(true);
    let ip = online(&mut e, mac(1));
    let mut v6 = vec![0u8; 80];
    EthHeader {
        dst: MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        src: mac(1),
        ethertype: ETHERTYPE_IPV6,
    }
    .write(&mut v6);
    v6[ETH_HLEN] = 0x60;
    assert_eq!(
        lan(&mut e, T0, &plain(), &v6),
        LanAction::Drop(DropReason::Ipv6)
    );
    assert_eq!(
        lan(
            &mut e,
            T0,
            &plain(),
            &udp(mac(1), ip, Ipv4Addr::BROADCAST, 67, 68)
        ),
        LanAction::Drop(DropReason::RogueDhcpServer)
    );
    assert_eq!(
        lan(
            &mut e,
            T0,
            &plain(),
            &udp(mac(1), ip, Ipv4Addr::new(224, 0, 0, 251), 5353, 5353)
        ),
        LanAction::Drop(DropReason::Broadcast)
    );
    assert_eq!(
        lan(
            &mut e,
            T0,
            &plain(),
            &udp(mac(1), ip, Ipv4Addr::new(10, 1, 0, 255), 137, 137)
        ),
        LanAction::Drop(DropReason::Broadcast)
    );
    let mut other_host = tcp(mac(1), ip, WEB, 80, 0);
    other_host[0..6].copy_from_slice(&mac(9).0);
    assert_eq!(
        lan(&mut e, T0, &plain(), &other_host),
        LanAction::Drop(DropReason::NotForUs)
    );
    let v6_from_tun = [0x60u8; 40];
    assert_eq!(
        tun(&mut e, T0, &plain(), &v6_from_tun),
        TunAction::Drop(DropReason::Ipv6)
    );
}

#[test]
fn logout_cuts_the_client_off_and_reports_the_session() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    e.take_events();
    e.authorize(mac(1), who(Some("bob")), T0).unwrap();
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 80, 60)),
        LanAction::ToTun
    );
    let ended = e
        .logout(mac(1), EndReason::AdminReset, T0 + 60_000)
        .unwrap();
    assert_eq!(
        (ended.counters.octets_in, ended.reason),
        (100, EndReason::AdminReset)
    );
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 60)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    let evs = e.take_events();
    assert!(
        matches!(&evs[..], [Event::SessionStarted(_), Event::SessionEnded(s)] if s.user.as_deref() == Some("bob"))
    );
    assert!(e.logout(mac(1), EndReason::AdminReset, T0).is_err());
}

#[test]
fn client_to_client_follows_isolation() {
    let mut iso = engine(true);
    let (a, b) = both_online(&mut iso);
    assert_eq!(
        lan(&mut iso, T0, &plain(), &tcp(mac(1), a, b, 22, 0)),
        LanAction::Drop(DropReason::ClientToClient)
    );

    let mut open = engine(false);
    let a = lease(&mut open, mac(1));
    let b = lease(&mut open, mac(2));
    open.authorize(mac(1), who(None), T0).unwrap();
    assert_eq!(
        lan(&mut open, T0, &plain(), &tcp(mac(1), a, b, 22, 0)),
        LanAction::Drop(DropReason::Unauthorized),
        "peer not logged in"
    );
    open.authorize(mac(2), who(None), T0).unwrap();
    assert_eq!(
        lan(&mut open, T0, &plain(), &tcp(mac(1), a, b, 22, 0)),
        LanAction::Hairpin(mac(2))
    );
    assert_eq!(
        open.sessions().by_mac(mac(2)).unwrap().counters.octets_out,
        40
    );
}

#[test]
fn lease_expiry_ends_the_session() {
    let mut e = engine(true);
    let ip = online(&mut e, mac(1));
    e.take_events();
    let deadline = e.next_deadline(T0).expect("a lease to expire");
    assert_eq!(deadline, T0 + 3_600_000);
    e.handle_timeout(deadline - 1);
    assert!(e.sessions().by_mac(mac(1)).is_some());
    e.handle_timeout(deadline + 1);
    assert!(e.sessions().by_mac(mac(1)).is_none());
    assert!(e.sessions().by_ip(ip).is_none());
    let evs = e.take_events();
    assert!(
        matches!(&evs[..], [Event::SessionEnded(s), Event::LeaseEnded { reason: EndReason::LeaseExpired, .. }] if s.reason == EndReason::LeaseExpired)
    );
}

#[test]
fn restored_leases_come_back_as_clients() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let saved = e.lease_records();
    let dhcp = DhcpServer::new(dhcp_settings_for_restore(), saved, T0 + 1000);
    let e2 = Engine::new(e.settings.clone(), dhcp, T0 + 1000);
    assert_eq!(e2.sessions().by_mac(mac(1)).unwrap().ip, ip);
}

fn dhcp_settings_for_restore() -> DhcpSettings {
    testkit::dhcp_settings(DNS)
}

#[test]
fn garbage_never_panics_and_is_counted() {
    let mut e = engine(true);
    let ip = online(&mut e, mac(1));
    let base = tcp(mac(1), ip, WEB, 80, 20);
    let mut seed = 0x1234_5678u32;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let before = e.drops().total();
    for round in 0..20_000 {
        let mut f = base.clone();
        // Truncate and flip bytes in the headers.
        let cut = (rnd() as usize) % (f.len() + 1);
        f.truncate(cut.max(if round % 2 == 0 { 0 } else { ETH_HLEN }));
        for _ in 0..3 {
            if !f.is_empty() {
                let i = (rnd() as usize) % f.len().min(60);
                f[i] = rnd() as u8;
            }
        }
        let _ = lan(&mut e, T0, &plain(), &f);
        if f.len() > ETH_HLEN {
            let _ = tun(&mut e, T0, &plain(), &f[ETH_HLEN..]);
        }
    }
    assert!(e.drops().total() > before);
    assert!(e.drops().get(DropReason::Malformed) > 0);
}

/// Full TCP checksum of an IPv4 packet, recomputed independently.
fn tcp_checksum_ok(ip: &[u8]) -> bool {
    let sliced = etherparse::SlicedPacket::from_ip(ip).unwrap();
    match (sliced.net, sliced.transport) {
        (Some(etherparse::NetSlice::Ipv4(v4)), Some(etherparse::TransportSlice::Tcp(t))) => {
            let want = t
                .to_header()
                .calc_checksum_ipv4(&v4.header().to_header(), t.payload())
                .unwrap();
            checksum::ipv4_header_ok(&ip[..20]) && want == t.checksum()
        }
        _ => panic!("not TCP/IPv4"),
    }
}

/// Give `f` (a TCP frame built by `tcp`) a valid checksum.
fn with_tcp_checksum(mut f: Vec<u8>) -> Vec<u8> {
    let ip = &mut f[ETH_HLEN..];
    let p = frame::parse_ipv4(ip).unwrap();
    ip[36] = 0;
    ip[37] = 0;
    let c = checksum::finish(checksum::sum(
        checksum::ipv4_pseudo(p.src.octets(), p.dst.octets(), 6, (p.total_len - 20) as u16),
        &ip[20..p.total_len],
    ));
    ip[36..38].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn web_traffic_of_unauthorized_clients_is_steered_to_the_portal_and_back() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    // A stray segment of no known connection is reset, not steered.
    let stray = with_tcp_checksum(tcp(mac(1), ip, WEB, 80, 12));
    assert_eq!(
        lan(&mut e, T0, &plain(), &stray),
        LanAction::Drop(DropReason::Unauthorized)
    );
    assert!(e.outbox().pop().is_some(), "a reset");
    // The browser's SYN opens a redirected connection.
    let mut syn = tcp(mac(1), ip, WEB, 80, 12);
    syn[ETH_HLEN + 33] = 0x02;
    let mut f = with_tcp_checksum(syn);
    assert_eq!(e.from_lan(T0, &plain(), &mut f), LanAction::ToTun);
    let p = frame::parse_ipv4(&f[ETH_HLEN..]).unwrap();
    assert_eq!(
        (p.src, p.src_port, p.dst, p.dst_port),
        (ip, 40000, GW, 3990)
    );
    assert!(
        tcp_checksum_ok(&f[ETH_HLEN..]),
        "checksums fixed after the rewrite"
    );
    // The portal answers from gateway:3990; the client must see WEB:80.
    let mut reply = with_tcp_checksum(tcp(gw_mac(), GW, ip, 0, 30));
    reply[ETH_HLEN + 20..ETH_HLEN + 24].copy_from_slice(&[0x0f, 0x96, 0x9c, 0x40]); // 3990 -> 40000
    let mut reply = with_tcp_checksum(reply);
    assert_eq!(
        e.from_tun(T0, &plain(), &mut reply[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    let r = frame::parse_ipv4(&reply[ETH_HLEN..]).unwrap();
    assert_eq!((r.src, r.src_port, r.dst, r.dst_port), (WEB, 80, ip, 40000));
    assert!(tcp_checksum_ok(&reply[ETH_HLEN..]));
    // After login, the same connection keeps going to the portal (its
    // redirect response may still be in flight); new ones go out.
    e.authorize(mac(1), who(None), T0).unwrap();
    let mut more = with_tcp_checksum(tcp(mac(1), ip, WEB, 80, 5));
    assert_eq!(e.from_lan(T0, &plain(), &mut more), LanAction::ToTun);
    assert_eq!(frame::parse_ipv4(&more[ETH_HLEN..]).unwrap().dst, GW);
    let mut fresh = with_tcp_checksum(tcp(mac(1), ip, WEB, 80, 5));
    fresh[ETH_HLEN + 20..ETH_HLEN + 22].copy_from_slice(&40001u16.to_be_bytes());
    assert_eq!(e.from_lan(T0, &plain(), &mut fresh), LanAction::ToTun);
    assert_eq!(frame::parse_ipv4(&fresh[ETH_HLEN..]).unwrap().dst, WEB);
    // Idle connections are forgotten.
    assert_eq!(e.snapshot(T0).redirected_flows, 1);
    e.handle_timeout(T0 + 121_000);
    assert_eq!(e.snapshot(T0 + 121_000).redirected_flows, 0);
}

#[test]
fn offloaded_checksum_seeds_are_updated_not_completed() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let mut f = tcp(mac(1), ip, WEB, 80, 0);
    f[ETH_HLEN + 33] = 0x02; // SYN
                             // What a sender with checksum offload leaves in the field.
    let seed = !checksum::finish(checksum::ipv4_pseudo(ip.octets(), WEB.octets(), 6, 20));
    f[ETH_HLEN + 36..ETH_HLEN + 38].copy_from_slice(&seed.to_be_bytes());
    let vnet = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..Default::default()
    };
    assert_eq!(e.from_lan(T0, &vnet, &mut f), LanAction::ToTun);
    let field = u16::from_be_bytes([f[ETH_HLEN + 36], f[ETH_HLEN + 37]]);
    assert_eq!(
        field,
        !checksum::finish(checksum::ipv4_pseudo(ip.octets(), GW.octets(), 6, 20))
    );
    // Completing it as the kernel will gives a valid segment.
    assert!(checksum::complete_partial(&mut f[ETH_HLEN..], 20, 16));
    assert!(tcp_checksum_ok(&f[ETH_HLEN..]));
}

#[test]
fn everything_else_is_refused_at_once() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let mut syn = tcp(mac(1), ip, WEB, 443, 0);
    syn[ETH_HLEN + 33] = 0x02; // SYN
    syn[ETH_HLEN + 24..ETH_HLEN + 28].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        lan(&mut e, T0, &plain(), &syn),
        LanAction::Drop(DropReason::Unauthorized)
    );
    let rst = e.outbox().pop().expect("a reset");
    let r = frame::parse_ipv4(&rst[ETH_HLEN..]).unwrap();
    assert_eq!(
        (r.src, r.src_port, r.dst, r.dst_port),
        (WEB, 443, ip, 40000)
    );
    let seg = frame::tcp_info(&rst[ETH_HLEN..], &r).unwrap();
    assert_eq!(
        (seg.flags, seg.ack),
        (frame::tcp_flags::RST | frame::tcp_flags::ACK, 8)
    );
    assert_eq!(EthHeader::parse(&rst).unwrap().dst, mac(1));
    // UDP (QUIC to 443): ICMP administratively prohibited from the gateway.
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), ip, WEB, 5000, 443)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    let icmp = e.outbox().pop().expect("an ICMP error");
    let r = frame::parse_ipv4(&icmp[ETH_HLEN..]).unwrap();
    assert_eq!((r.src, r.dst, r.proto), (GW, ip, 1));
    assert_eq!(&icmp[ETH_HLEN + 20..ETH_HLEN + 22], &[3, 13]);
    // A flood is answered only up to the rate limit.
    let mut sent = 0;
    for _ in 0..5000 {
        lan(&mut e, T0 + 10, &plain(), &syn);
        sent += e.outbox().drain(..).count();
    }
    assert!(sent < 2500, "{sent} resets for 5000 SYNs in one second");
}

#[test]
fn walled_garden_networks_hosts_and_learnt_suffixes() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let garden = Ipv4Addr::new(203, 0, 113, 9);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, garden, 443, 0)),
        LanAction::ToTun
    );
    let back = tcp(gw_mac(), garden, ip, 443, 10);
    assert_eq!(
        tun(&mut e, T0, &plain(), &back[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    // A host name the shell resolved.
    let resolved = Ipv4Addr::new(198, 51, 100, 20);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, resolved, 443, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    e.set_walled_garden_hosts(vec![resolved]);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, resolved, 443, 0)),
        LanAction::ToTun
    );
    // *.example.org: learnt from the DNS answer the client receives, CNAME
    // chain included, for the record's TTL.
    let learnt = Ipv4Addr::new(198, 51, 100, 30);
    let other = Ipv4Addr::new(198, 51, 100, 31);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, learnt, 443, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    let answer = dns_answer(
        "www.example.org",
        &[
            ("www.example.org", None),
            ("cdn.provider.test", Some(learnt)),
        ],
        300,
    );
    let asked = ask(&mut e, ip, DNS, "www.example.org");
    let f = answered(asked, mac(1), DNS, ip, &answer);
    assert_eq!(
        tun(&mut e, T0, &plain(), &f[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    assert_eq!(
        lan(
            &mut e,
            T0 + 1000,
            &plain(),
            &tcp(mac(1), ip, learnt, 443, 0)
        ),
        LanAction::ToTun
    );
    // Answers about other names teach nothing.
    let unrelated = dns_answer("www.example.com", &[("www.example.com", Some(other))], 300);
    let asked = ask(&mut e, ip, DNS, "www.example.com");
    let f = answered(asked, mac(1), DNS, ip, &unrelated);
    tun(&mut e, T0, &plain(), &f[ETH_HLEN..]);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, other, 443, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    // And "notexample.org" is not under "example.org".
    let lookalike = dns_answer("notexample.org", &[("notexample.org", Some(other))], 300);
    let asked = ask(&mut e, ip, DNS, "notexample.org");
    let f = answered(asked, mac(1), DNS, ip, &lookalike);
    tun(&mut e, T0, &plain(), &f[ETH_HLEN..]);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, other, 443, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    // The learnt address goes when its TTL runs out.
    e.handle_timeout(T0 + 301_000);
    assert_eq!(
        lan(
            &mut e,
            T0 + 301_000,
            &plain(),
            &tcp(mac(1), ip, learnt, 443, 0)
        ),
        LanAction::Drop(DropReason::Unauthorized)
    );
}

/// A DNS answer from `server` to a client (`mac`, `ip`), as the TUN hands it
/// over plus the Ethernet header.
fn dns_reply(mac: MacAddr, server: Ipv4Addr, ip: Ipv4Addr, answer: &[u8]) -> Vec<u8> {
    udp_frame(
        &UdpAddressing {
            src_mac: gw_mac(),
            dst_mac: mac,
            src_ip: server,
            dst_ip: ip,
            src_port: 53,
            dst_port: 5353,
        },
        answer,
    )
}

/// A DNS query (id 1, type A) from a client's port 5353 to `server`.
fn dns_query(mac: MacAddr, ip: Ipv4Addr, server: Ipv4Addr, question: &str) -> Vec<u8> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    let mut m = Message::new(1, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii(question).unwrap(),
        RecordType::A,
    ));
    udp_frame(
        &UdpAddressing {
            src_mac: mac,
            dst_mac: gw_mac(),
            src_ip: ip,
            dst_ip: server,
            src_port: 5353,
            dst_port: 53,
        },
        &m.to_vec().unwrap(),
    )
}

/// Client 1 (at `ip`) asks `server` about `question`; the query passes
/// with lassi's own source port and id, which are returned.
fn ask(e: &mut Engine, ip: Ipv4Addr, server: Ipv4Addr, question: &str) -> (u16, u16) {
    let mut q = dns_query(mac(1), ip, server, question);
    assert_eq!(e.from_lan(T0, &plain(), &mut q), LanAction::ToTun);
    let at = ETH_HLEN + 20;
    let port = u16::from_be_bytes([q[at], q[at + 1]]);
    let id = u16::from_be_bytes([q[at + 8], q[at + 9]]);
    (port, id)
}

/// [`dns_reply`] to the port and id of a query [`ask`] sent.
fn answered(
    (port, id): (u16, u16),
    mac: MacAddr,
    server: Ipv4Addr,
    ip: Ipv4Addr,
    answer: &[u8],
) -> Vec<u8> {
    let mut a = answer.to_vec();
    a[..2].copy_from_slice(&id.to_be_bytes());
    udp_frame(
        &UdpAddressing {
            src_mac: gw_mac(),
            dst_mac: mac,
            src_ip: server,
            dst_ip: ip,
            src_port: 53,
            dst_port: port,
        },
        &a,
    )
}

/// A DNS response to `question` with the given records (CNAME when no address).
fn dns_answer(question: &str, records: &[(&str, Option<Ipv4Addr>)], ttl: u32) -> Vec<u8> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{rdata, Name, RData, Record, RecordType};
    let mut m = Message::new(1, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii(question).unwrap(),
        RecordType::A,
    ));
    let mut chain = records.iter().peekable();
    while let Some((name, addr)) = chain.next() {
        let data = match addr {
            Some(a) => RData::A(rdata::A(*a)),
            None => RData::CNAME(rdata::CNAME(
                Name::from_ascii(chain.peek().unwrap().0).unwrap(),
            )),
        };
        m.add_answer(Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            ttl,
            data,
        ));
    }
    m.to_vec().unwrap()
}

/// Sessions of `engine(true)` logged in with `limits`, one client.
fn limited_client(limits: SessionLimits) -> (Engine, Ipv4Addr) {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    e.authorize(mac(1), limited(limits), T0).unwrap();
    e.take_events();
    (e, ip)
}

fn ended_reason(e: &mut Engine) -> Option<EndReason> {
    e.take_events().into_iter().find_map(|ev| match ev {
        Event::SessionEnded(s) => Some(s.reason),
        _ => None,
    })
}

#[test]
fn session_timeout_ends_on_time() {
    let (mut e, _) = limited_client(SessionLimits {
        session_timeout: Some(60),
        ..Default::default()
    });
    e.handle_timeout(T0 + 59_000);
    assert_eq!(ended_reason(&mut e), None);
    e.handle_timeout(T0 + 60_000);
    assert_eq!(ended_reason(&mut e), Some(EndReason::SessionTimeout));
    assert_eq!(
        e.sessions().by_mac(mac(1)).unwrap().state,
        SessionState::Unauthorized
    );
}

#[test]
fn idle_timeout_counts_from_the_last_packet_sent() {
    let (mut e, ip) = limited_client(SessionLimits {
        idle_timeout: Some(30),
        ..Default::default()
    });
    e.handle_timeout(T0 + 20_000);
    assert_eq!(
        lan(
            &mut e,
            T0 + 20_000,
            &plain(),
            &tcp(mac(1), ip, WEB, 443, 10)
        ),
        LanAction::ToTun
    );
    e.handle_timeout(T0 + 45_000);
    assert_eq!(ended_reason(&mut e), None, "active 25 s ago");
    e.handle_timeout(T0 + 50_000);
    assert_eq!(ended_reason(&mut e), Some(EndReason::IdleTimeout));
}

#[test]
fn quota_ends_or_throttles() {
    let quota = SessionLimits {
        max_total_octets: Some(3000),
        ..Default::default()
    };
    let (mut e, ip) = limited_client(quota.clone());
    for _ in 0..3 {
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 1000));
    }
    e.handle_timeout(T0 + 1000);
    assert_eq!(ended_reason(&mut e), Some(EndReason::QuotaExceeded));

    let mut t = engine(true);
    t.settings.quota_action = QuotaAction::Throttle {
        up_bps: 64_000,
        down_bps: 64_000,
    };
    let ip = lease(&mut t, mac(1));
    t.authorize(mac(1), limited(quota), T0).unwrap();
    for _ in 0..3 {
        lan(&mut t, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 1000));
    }
    t.handle_timeout(T0 + 1000);
    let c = t.sessions().by_mac(mac(1)).unwrap();
    assert!(c.throttled && c.state == SessionState::Authorized);
    // 8 kB/s now: a burst of full frames soon hits the limit.
    let passed = (0..50)
        .filter(|_| {
            lan(
                &mut t,
                T0 + 1000,
                &plain(),
                &tcp(mac(1), ip, WEB, 443, 1400),
            ) == LanAction::ToTun
        })
        .count();
    assert!(
        passed < 10,
        "{passed} frames passed a 64 kbit/s throttle at once"
    );
}

#[test]
fn bandwidth_is_policed_in_both_directions() {
    let (mut e, ip) = limited_client(SessionLimits {
        bandwidth_up_bps: Some(1_000_000),
        bandwidth_down_bps: Some(2_000_000),
        ..Default::default()
    });
    // Offer 10 MB each way within one simulated second, 1 ms apart; what
    // the shapers hold comes out through release_held.
    let (mut up, mut down) = (0u64, 0u64);
    let mut released = Vec::new();
    for ms in 0..1000u64 {
        for _ in 0..7 {
            if lan(&mut e, T0 + ms, &plain(), &tcp(mac(1), ip, WEB, 443, 1460)) == LanAction::ToTun
            {
                up += 1500;
            }
            let back = tcp(gw_mac(), WEB, ip, 40000, 1460);
            if tun(&mut e, T0 + ms, &plain(), &back[ETH_HLEN..]) == TunAction::ToLan(mac(1)) {
                down += 1500;
            }
        }
        e.release_held(T0 + ms, &mut released);
        for r in released.drain(..) {
            match r {
                Released::ToTun(h) => up += h.octets,
                Released::ToLan(m, h) => {
                    assert_eq!(m, mac(1));
                    down += h.octets;
                }
            }
        }
    }
    // 125 kB/s and 250 kB/s, plus at most the initial burst.
    assert!((120_000..=140_000).contains(&up), "up {up}");
    assert!((245_000..=280_000).contains(&down), "down {down}");
    assert!(
        e.snapshot(T0 + 1000).shaper_held_bytes > 0,
        "the queues are busy"
    );
    assert!(e.drops().get(DropReason::Shaped) > 0);
    let c = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(c.counters.octets_in, up, "only what passed is counted");
}

#[test]
fn interim_updates_come_every_interval() {
    let (mut e, _) = limited_client(SessionLimits {
        interim_interval: Some(300),
        ..Default::default()
    });
    e.settings.lost_carrier.silent_secs = 0; // this client is silent but present
    let mut times = Vec::new();
    for s in 1..=1000u64 {
        e.handle_timeout(T0 + s * 1000);
        for ev in e.take_events() {
            if let Event::InterimUpdate(r) = ev {
                times.push((r.at - T0) / 1000);
            }
        }
    }
    assert_eq!(times, vec![300, 600, 900]);
}

#[test]
fn silent_clients_are_probed_and_lost() {
    let (mut e, ip) = limited_client(SessionLimits::default());
    // 120 s of silence: probe; then every 10 s; after 3 unanswered, gone.
    e.handle_timeout(T0 + 119_000);
    assert!(e.outbox().is_empty());
    e.handle_timeout(T0 + 120_000);
    let probe = e.outbox().pop().expect("a probe");
    let a = Arp::parse(&probe[ETH_HLEN..]).unwrap();
    assert_eq!((a.op, a.tpa, a.spa), (ARP_REQUEST, ip, GW));
    assert_eq!(
        EthHeader::parse(&probe).unwrap().dst,
        mac(1),
        "unicast to the client"
    );
    // The client answers: no more probes for a while.
    let answer = Arp {
        op: ARP_REPLY,
        sha: mac(1),
        spa: ip,
        tha: gw_mac(),
        tpa: GW,
    }
    .to_frame(gw_mac(), mac(1));
    assert_eq!(
        lan(&mut e, T0 + 121_000, &plain(), &answer),
        LanAction::Consumed
    );
    e.handle_timeout(T0 + 140_000);
    assert!(e.outbox().is_empty());
    assert_eq!(ended_reason(&mut e), None);
    // Then it leaves for good.
    for s in (241..=300).step_by(1) {
        e.handle_timeout(T0 + s * 1000);
    }
    assert_eq!(e.outbox().len(), 3, "three probes");
    assert_eq!(ended_reason(&mut e), Some(EndReason::LostCarrier));
}

#[test]
fn coa_changes_limits_live() {
    let (mut e, _) = limited_client(SessionLimits::default());
    e.set_limits(
        mac(1),
        SessionLimits {
            session_timeout: Some(10),
            ..Default::default()
        },
        T0 + 5000,
    )
    .unwrap();
    e.handle_timeout(T0 + 9000);
    assert_eq!(ended_reason(&mut e), None);
    e.handle_timeout(T0 + 10_000);
    assert_eq!(
        ended_reason(&mut e),
        Some(EndReason::SessionTimeout),
        "time counts from login"
    );
    assert!(
        e.set_limits(mac(1), SessionLimits::default(), T0).is_err(),
        "no session any more"
    );
}

#[test]
fn config_defaults_fill_in_what_a_login_leaves_out() {
    let mut e = engine(true);
    e.settings.default_limits = SessionLimits {
        idle_timeout: Some(600),
        session_timeout: Some(3600),
        ..Default::default()
    };
    lease(&mut e, mac(1));
    let c = e
        .authorize(
            mac(1),
            limited(SessionLimits {
                session_timeout: Some(60),
                ..Default::default()
            }),
            T0,
        )
        .unwrap();
    assert_eq!(
        (c.limits.session_timeout, c.limits.idle_timeout),
        (Some(60), Some(600))
    );
}

/// The engine a restart at `now` builds from the old one's saved state.
fn restarted(e: &Engine, now: UnixMillis) -> Engine {
    let dhcp = DhcpServer::new(dhcp_settings_for_restore(), e.lease_records(), now);
    Engine::new(e.settings.clone(), dhcp, now)
}

const GRACE: u64 = 300_000;

#[test]
fn a_restart_within_the_grace_continues_the_session_under_its_id() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let limits = SessionLimits {
        session_timeout: Some(60),
        interim_interval: Some(30),
        ..Default::default()
    };
    e.authorize(mac(1), limited(limits), T0).unwrap();
    lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 960));
    let old_id = e.sessions().by_mac(mac(1)).unwrap().session_id.clone();
    // A crash 10 s in: the last save is all that is left.
    let saved = SavedSessions::new(e.session_records(T0 + 10_000, false), T0 + 10_000, None);

    let mut e2 = restarted(&e, T0 + 20_000);
    assert_eq!(e2.resume_sessions(saved, T0 + 20_000, GRACE), 1);
    let r = match &e2.take_events()[..] {
        [Event::InterimUpdate(r)] => r.clone(),
        other => panic!("the first record is an Interim-Update: {other:?}"),
    };
    assert_eq!(
        (r.session_id.as_str(), r.started, r.at, r.counters.octets_in),
        (old_id.as_str(), T0, T0 + 20_000, 1000)
    );
    // Counting goes on from the saved counters, never from zero.
    lan(
        &mut e2,
        T0 + 21_000,
        &plain(),
        &tcp(mac(1), ip, WEB, 443, 960),
    );
    let c = e2.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(
        (c.state, c.counters.octets_in),
        (SessionState::Authorized, 2000)
    );
    assert_eq!(c.next_interim, Some(T0 + 50_000));
    // Session-Timeout counts from the original login.
    e2.handle_timeout(T0 + 59_000);
    e2.take_events();
    e2.handle_timeout(T0 + 60_000);
    let ended = match &e2.take_events()[..] {
        [Event::SessionEnded(s)] => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ended.reason, EndReason::SessionTimeout);
    assert_eq!(
        (ended.session_id, ended.started, ended.ended),
        (old_id, T0, T0 + 60_000)
    );
    assert_eq!(ended.counters.octets_in, 2000);
}

#[test]
fn a_restart_right_after_an_interim_does_not_repeat_it() {
    let mut e = engine(true);
    lease(&mut e, mac(1));
    let limits = SessionLimits {
        interim_interval: Some(5),
        ..Default::default()
    };
    e.authorize(mac(1), limited(limits), T0).unwrap();
    e.handle_timeout(T0 + 5_000);
    assert!(matches!(
        &e.take_events()[..],
        [.., Event::InterimUpdate(_)]
    ));
    let saved = SavedSessions::new(e.session_records(T0 + 5_000, false), T0 + 5_000, None);
    let mut e2 = restarted(&e, T0 + 5_900);
    assert_eq!(e2.resume_sessions(saved.clone(), T0 + 5_900, GRACE), 1);
    assert!(e2.take_events().is_empty(), "the same record again");
    let mut e3 = restarted(&e, T0 + 6_000);
    e3.resume_sessions(saved, T0 + 6_000, GRACE);
    assert!(matches!(&e3.take_events()[..], [Event::InterimUpdate(_)]));
}

#[test]
fn a_restart_after_the_grace_closes_the_session_as_of_the_last_save() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    e.authorize(mac(1), who(Some("dana")), T0).unwrap();
    lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 960));
    let old_id = e.sessions().by_mac(mac(1)).unwrap().session_id.clone();
    let records = e.session_records(T0 + 10_000, false);

    // A clean stop at +12 s, the next start 300 s after it: still resumed.
    let clean = SavedSessions::new(records.clone(), T0 + 12_000, Some(T0 + 12_000));
    let mut e2 = restarted(&e, T0 + 312_000);
    assert_eq!(e2.resume_sessions(clean.clone(), T0 + 312_000, GRACE), 1);
    assert_eq!(e2.sessions().by_mac(mac(1)).unwrap().session_id, old_id);

    // One millisecond later: the Stop goes out, dated at the stop, then a
    // new session for the guest, who stays online.
    let mut e3 = restarted(&e, T0 + 312_001);
    assert_eq!(e3.resume_sessions(clean, T0 + 312_001, GRACE), 0);
    let (ended, started) = match &e3.take_events()[..] {
        [Event::SessionEnded(s), Event::SessionStarted(r)] => (s.clone(), r.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (
            ended.session_id.as_str(),
            ended.reason,
            ended.counters.octets_in
        ),
        (old_id.as_str(), EndReason::NasReboot, 1000)
    );
    assert_eq!(ended.ended, T0 + 12_000, "ends when lassi stopped");
    assert_ne!(started.session_id, old_id, "a new accounting session");
    assert_eq!(started.user.as_deref(), Some("dana"));
    let c = e3.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(c.state, SessionState::Authorized, "the guest stays online");

    // After a crash the grace counts from the last save.
    let crashed = SavedSessions::new(records.clone(), T0 + 10_000, None);
    let mut e4 = restarted(&e, T0 + 310_001);
    assert_eq!(e4.resume_sessions(crashed, T0 + 310_001, GRACE), 0);
    match &e4.take_events()[..] {
        [Event::SessionEnded(s), Event::SessionStarted(_)] => assert_eq!(s.ended, T0 + 10_000),
        other => panic!("{other:?}"),
    }

    // session.stop_on_shutdown already sent the Stop: only a new Start.
    let stopped = records.into_iter().map(|mut r| {
        r.stopped = true;
        r
    });
    let saved = SavedSessions::new(stopped.collect(), T0 + 12_000, Some(T0 + 12_000));
    let mut e5 = restarted(&e, T0 + 20_000);
    assert_eq!(e5.resume_sessions(saved, T0 + 20_000, GRACE), 0);
    assert!(matches!(&e5.take_events()[..], [Event::SessionStarted(_)]));
}

#[test]
fn a_session_whose_time_ran_out_while_lassi_was_away_ends_at_that_time() {
    let mut e = engine(true);
    lease(&mut e, mac(1));
    let limits = SessionLimits {
        session_timeout: Some(30),
        ..Default::default()
    };
    e.authorize(mac(1), limited(limits), T0).unwrap();
    let saved = SavedSessions::new(e.session_records(T0 + 10_000, false), T0 + 10_000, None);
    let mut e2 = restarted(&e, T0 + 100_000);
    assert_eq!(e2.resume_sessions(saved, T0 + 100_000, GRACE), 0);
    match &e2.take_events()[..] {
        [Event::SessionEnded(s)] => {
            assert_eq!(
                (s.reason, s.ended),
                (EndReason::SessionTimeout, T0 + 30_000)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e2.sessions().by_mac(mac(1)).unwrap().state,
        SessionState::Unauthorized
    );
}

#[test]
fn a_clean_shutdown_keeps_sessions_unless_told_to_stop_them() {
    let mut e = engine(true);
    lease(&mut e, mac(1));
    e.authorize(mac(1), who(None), T0).unwrap();
    e.take_events();
    e.shutdown(T0 + 1000, false);
    assert!(
        e.take_events().is_empty(),
        "no Stop: the next start resumes"
    );
    assert_eq!(e.session_records(T0 + 1000, false).len(), 1);
    e.shutdown(T0 + 1000, true);
    match &e.take_events()[..] {
        [Event::SessionEnded(s)] => assert_eq!(s.reason, EndReason::NasReboot),
        other => panic!("{other:?}"),
    }
}

#[test]
fn counters_fingerprint_moves_with_traffic() {
    let mut e = engine(true);
    let ip = online(&mut e, mac(1));
    let f0 = e.counters_fingerprint();
    lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 960));
    assert_ne!(e.counters_fingerprint(), f0);
}

#[test]
fn coa_criteria_must_all_match() {
    let mut e = engine(true);
    let a = lease(&mut e, mac(1));
    let _b = lease(&mut e, mac(2));
    e.authorize(mac(1), who(Some("erin")), T0).unwrap();
    e.authorize(mac(2), who(Some("frank")), T0).unwrap();
    let id = e.sessions().by_mac(mac(1)).unwrap().session_id.clone();
    let find = |m: SessionMatch| {
        e.find_sessions(&m)
            .iter()
            .map(|c| c.mac)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        find(SessionMatch {
            user: Some("erin".into()),
            ..Default::default()
        }),
        vec![mac(1)]
    );
    assert_eq!(
        find(SessionMatch {
            session_id: Some(id.clone()),
            ip: Some(a),
            ..Default::default()
        }),
        vec![mac(1)]
    );
    assert!(
        find(SessionMatch {
            session_id: Some(id),
            mac: Some(mac(2)),
            ..Default::default()
        })
        .is_empty(),
        "all must match"
    );
    assert!(
        find(SessionMatch::default()).is_empty(),
        "nothing given matches nothing"
    );
    assert_eq!(
        find(SessionMatch {
            mac: Some(mac(2)),
            ..Default::default()
        }),
        vec![mac(2)]
    );
}

#[test]
fn before_login_the_gateway_offers_only_the_portal_dns_and_ping() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, GW, 3990, 0)),
        LanAction::ToTun
    );
    // ssh / the router's web UI / a proxy on the gateway: refused with a reset.
    for port in [22, 80, 443, 3128, 8080] {
        assert_eq!(
            lan(&mut e, T0, &plain(), &tcp(mac(1), ip, GW, port, 0)),
            LanAction::Drop(DropReason::Unauthorized),
            "port {port}"
        );
    }
    assert!(!e.outbox().is_empty(), "refusals sent");
    // DNS on the gateway only when the gateway is a DNS server it hands out.
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), ip, GW, 5353, 53)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    e.settings.dns.push(GW);
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), ip, GW, 5353, 53)),
        LanAction::ToTun
    );
    // After login the gateway is the kernel's business (lassi's nftables).
    e.authorize(mac(1), who(None), T0).unwrap();
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, GW, 22, 0)),
        LanAction::ToTun
    );
}

#[test]
fn no_way_around_the_portal_through_dns_or_other_guests() {
    let mut e = engine(false); // isolation off: still nothing before login
    e.intercept.settings.any_dns = true;
    let a = lease(&mut e, mac(1));
    let b = lease(&mut e, mac(2));
    let rogue_dns = Ipv4Addr::new(203, 0, 114, 53);
    // any_dns opens UDP/53 to anywhere for DNS queries only, and not
    // TCP/53 (a VPN would fit).
    let asked = ask(&mut e, a, rogue_dns, "evil.example.org");
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), a, rogue_dns, 5353, 53)),
        LanAction::Drop(DropReason::DnsNotQuery)
    );
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), a, rogue_dns, 53, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    // A rogue server's answer for a walled-garden name teaches nothing.
    let target = Ipv4Addr::new(198, 51, 100, 99);
    let lie = dns_answer(
        "evil.example.org",
        &[("evil.example.org", Some(target))],
        86400,
    );
    let f = answered(asked, mac(1), rogue_dns, a, &lie);
    assert_eq!(
        tun(&mut e, T0, &plain(), &f[ETH_HLEN..]),
        TunAction::ToLan(mac(1)),
        "the answer itself is delivered"
    );
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), a, target, 443, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    // Another guest is out of reach before login, whatever the port.
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), a, b, 53, 53)),
        LanAction::Drop(DropReason::ClientToClient)
    );
    // And a guest's packet the kernel routed back into the TUN is dropped.
    e.authorize(mac(1), who(None), T0).unwrap();
    let back = udp(gw_mac(), a, b, 53, 5353);
    assert_eq!(
        tun(&mut e, T0, &plain(), &back[ETH_HLEN..]),
        TunAction::Drop(DropReason::ClientToClient)
    );
}

#[test]
fn a_restart_does_not_refill_time_or_quota() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let limits = SessionLimits {
        session_timeout: Some(3600),
        max_total_octets: Some(10_000),
        ..Default::default()
    };
    e.authorize(mac(1), limited(limits), T0).unwrap();
    for _ in 0..4 {
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 960)); // 1000 IP bytes each
    }
    let records = e.session_records(T0 + 600_000, false); // 10 minutes in
    let saved = SavedSessions::new(records.clone(), T0 + 600_000, None);

    // Resumed within the grace: the same limits, the counters carried on.
    let mut e1 = restarted(&e, T0 + 601_000);
    e1.resume_sessions(saved.clone(), T0 + 601_000, GRACE);
    let c = e1.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(
        (c.authorized_at, c.limits.session_timeout),
        (Some(T0), Some(3600))
    );
    assert_eq!(c.counters.octets_in, 4000, "6 kB left of 10");

    // Beyond the grace: a new session gets what the old one had left.
    let mut e2 = restarted(&e, T0 + 601_000);
    e2.resume_sessions(saved, T0 + 601_000, 0);
    let c = e2.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(
        c.limits.session_timeout,
        Some(3000),
        "50 minutes left, not 60"
    );
    assert_eq!(c.limits.max_total_octets, Some(6000), "6 kB left, not 10");

    // A session whose volume is used up does not come back.
    let mut used = records;
    used[0].counters.octets_out = 7000;
    let mut e3 = restarted(&e, T0 + 601_000);
    e3.resume_sessions(
        SavedSessions::new(used, T0 + 600_000, None),
        T0 + 601_000,
        0,
    );
    assert_eq!(
        e3.sessions().by_mac(mac(1)).unwrap().state,
        SessionState::Unauthorized
    );
    assert!(
        matches!(&e3.take_events()[..], [Event::SessionEnded(_)]),
        "its Stop still goes out"
    );
}

#[test]
fn reclaimed_lease_ends_the_silent_guests_session_never_a_logged_in_one() {
    let mut e = engine_with(true, |s| s.pool_end = Ipv4Addr::new(10, 1, 0, 11));
    let (user, guest, newcomer) = (mac(1), mac(2), mac(3));
    let ip_user = lease(&mut e, user);
    let ip_guest = lease(&mut e, guest);
    e.authorize(user, who(Some("alice")), T0).unwrap();
    e.take_events();
    let later = T0 + 60_000;
    let mut d = Message::new_with_id(
        9,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &newcomer.0,
    );
    d.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    assert_eq!(
        lan(&mut e, later, &plain(), &dhcp_frame(newcomer, &d)),
        LanAction::Consumed
    );
    let (_, _, offer) = decode_reply(&e.outbox().pop().expect("an OFFER"));
    assert_eq!(offer.yiaddr(), ip_guest);
    // The guest is gone at once: its address no longer passes as its own.
    assert!(e.sessions().by_mac(guest).is_none());
    assert!(e.sessions().by_ip(ip_guest).is_none());
    let evs = e.take_events();
    assert!(
        matches!(evs.as_slice(), [Event::LeaseEnded { mac, reason: EndReason::LeaseReclaimed, .. }] if *mac == guest),
        "{evs:?}"
    );
    let f = udp(guest, ip_guest, DNS, 5353, 53);
    assert_eq!(
        lan(&mut e, later, &plain(), &f),
        LanAction::Drop(DropReason::NoLease)
    );
    // The logged-in user keeps its lease; a second newcomer gets nothing.
    assert_eq!(e.sessions().by_mac(user).map(|c| c.ip), Some(ip_user));
    let other = mac(4);
    let mut d = Message::new_with_id(
        10,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &other.0,
    );
    d.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    assert_eq!(
        lan(&mut e, later, &plain(), &dhcp_frame(other, &d)),
        LanAction::Drop(DropReason::DhcpRefused)
    );
    assert_eq!(e.snapshot(later).dhcp.reclaimed_leases, 1);
}

#[test]
fn a_forged_unsolicited_answer_teaches_nothing() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let evil = Ipv4Addr::new(198, 51, 100, 1);
    // Finding 1 of issue 8: nobody asked, yet the answer comes from the
    // DNS server's address and port, about a garden name.
    let forged = dns_answer("x.example.org", &[("x.example.org", Some(evil))], 86400);
    let f = dns_reply(mac(1), DNS, ip, &forged);
    assert_eq!(
        tun(&mut e, T0, &plain(), &f[ETH_HLEN..]),
        TunAction::ToLan(mac(1)),
        "delivered: DNS keeps working"
    );
    assert_eq!(e.snapshot(T0).walled_garden_learnt, 0);
    assert_eq!(e.snapshot(T0).dns_unmatched_answers, 1);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, evil, 443, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
}

#[test]
fn a_matching_answer_teaches_only_its_question_and_caps_the_ttl() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let good = Ipv4Addr::new(198, 51, 100, 30);
    let evil = Ipv4Addr::new(198, 51, 100, 1);
    let asked = ask(&mut e, ip, DNS, "www.example.org");
    // The tuple and id match, but the answer slips in another name's record.
    let answer = dns_answer(
        "www.example.org",
        &[
            ("evil.attacker.test", Some(evil)),
            ("www.example.org", Some(good)),
        ],
        86400,
    );
    let f = answered(asked, mac(1), DNS, ip, &answer);
    assert_eq!(
        tun(&mut e, T0, &plain(), &f[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    assert_eq!(e.snapshot(T0).walled_garden_learnt, 1);
    let to = |e: &mut Engine, now, dst| lan(e, now, &plain(), &tcp(mac(1), ip, dst, 443, 0));
    assert_eq!(to(&mut e, T0, good), LanAction::ToTun);
    assert_eq!(
        to(&mut e, T0, evil),
        LanAction::Drop(DropReason::Unauthorized)
    );
    // TTL 86400 is kept one hour at most (the lease ends then too, so the
    // table says it).
    e.handle_timeout(T0 + 3_500_000);
    assert_eq!(to(&mut e, T0 + 3_500_000, good), LanAction::ToTun);
    e.handle_timeout(T0 + 3_600_000);
    assert_eq!(e.snapshot(T0 + 3_600_000).walled_garden_learnt, 0);
}

#[test]
fn a_question_outside_the_garden_teaches_nothing_even_when_matched() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let addr = Ipv4Addr::new(198, 51, 100, 40);
    let asked = ask(&mut e, ip, DNS, "attacker.test");
    // Its CNAME chain even points into the garden: still nothing.
    let answer = dns_answer(
        "attacker.test",
        &[("attacker.test", None), ("www.example.org", Some(addr))],
        300,
    );
    let f = answered(asked, mac(1), DNS, ip, &answer);
    tun(&mut e, T0, &plain(), &f[ETH_HLEN..]);
    assert_eq!(e.snapshot(T0).walled_garden_learnt, 0);
    assert_eq!(e.snapshot(T0).dns_unmatched_answers, 0, "it did match");
}

#[test]
fn learnt_addresses_are_bounded_per_client() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    for i in 0..100u32 {
        let name = format!("h{i}.example.org");
        let asked = ask(&mut e, ip, DNS, &name);
        let addr = Ipv4Addr::from(0xc633_6400 + i); // 198.51.100.x
        let answer = dns_answer(&name, &[(name.as_str(), Some(addr))], 300);
        let f = answered(asked, mac(1), DNS, ip, &answer);
        tun(&mut e, T0 + u64::from(i), &plain(), &f[ETH_HLEN..]);
    }
    assert_eq!(e.snapshot(T0 + 100).walled_garden_learnt, 64);
    // The newest stayed, the oldest went.
    let to = |e: &mut Engine, dst| lan(e, T0 + 200, &plain(), &tcp(mac(1), ip, dst, 443, 0));
    assert_eq!(
        to(&mut e, Ipv4Addr::new(198, 51, 100, 99)),
        LanAction::ToTun
    );
    assert_eq!(
        to(&mut e, Ipv4Addr::new(198, 51, 100, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
}

#[test]
fn any_dns_carries_queries_and_their_answers_only() {
    let mut e = engine(true);
    e.intercept.settings.any_dns = true;
    let ip = lease(&mut e, mac(1));
    let far = Ipv4Addr::new(203, 0, 114, 53);
    // Not DNS: dropped on the way out...
    assert_eq!(
        lan(&mut e, T0, &plain(), &udp(mac(1), ip, far, 5353, 53)),
        LanAction::Drop(DropReason::DnsNotQuery)
    );
    // ...and anything from port 53 nobody asked for on the way back.
    let echo = udp(gw_mac(), far, ip, 53, 5353);
    assert_eq!(
        tun(&mut e, T0, &plain(), &echo[ETH_HLEN..]),
        TunAction::Drop(DropReason::DnsUnmatched)
    );
    // A real query and its answer pass.
    let asked = ask(&mut e, ip, far, "www.example.net");
    let answer = dns_answer(
        "www.example.net",
        &[("www.example.net", Some(Ipv4Addr::new(198, 51, 100, 77)))],
        300,
    );
    let f = answered(asked, mac(1), far, ip, &answer);
    assert_eq!(
        tun(&mut e, T0, &plain(), &f[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    // Once only: the same answer again is dropped.
    assert_eq!(
        tun(&mut e, T0, &plain(), &f[ETH_HLEN..]),
        TunAction::Drop(DropReason::DnsUnmatched)
    );
}

#[test]
fn vlan_tagged_frames_never_pass() {
    let mut e = engine(true);
    let ip = online(&mut e, mac(1));
    // The same packet, with a tag left in the frame (802.1Q, 802.1ad).
    for tpid in [0x8100u16, 0x88a8] {
        let plain_frame = tcp(mac(1), ip, WEB, 443, 0);
        let mut f = plain_frame[..12].to_vec();
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&5u16.to_be_bytes());
        f.extend_from_slice(&plain_frame[12..]);
        assert_eq!(
            lan(&mut e, T0, &plain(), &f),
            LanAction::Drop(DropReason::VlanTagged)
        );
    }
    // A tag the kernel stripped and reported beside the frame (VLAN 0 too).
    assert_eq!(
        e.tagged_from_lan(0),
        LanAction::Drop(DropReason::VlanTagged)
    );
    assert_eq!(e.drops().get(DropReason::VlanTagged), 3);
    assert_eq!(
        e.sessions().by_mac(mac(1)).unwrap().counters,
        Default::default()
    );
}

#[test]
fn an_accomplice_cannot_answer_the_guests_own_query() {
    // The guest knows the port and id it used; an accomplice outside forges
    // the answer with them, before the real one. lassi sent other ones.
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    e.seed_random(0x5eed);
    let evil = Ipv4Addr::new(198, 51, 100, 1);
    let (port, id) = ask(&mut e, ip, DNS, "x.example.org");
    assert_ne!((port, id), (5353, 1), "the guest's port and id stay inside");
    let forged = dns_answer("x.example.org", &[("x.example.org", Some(evil))], 86400);
    let f = answered((5353, 1), mac(1), DNS, ip, &forged);
    assert_eq!(
        tun(&mut e, T0, &plain(), &f[ETH_HLEN..]),
        TunAction::ToLan(mac(1)),
        "delivered, unmatched"
    );
    assert_eq!(e.snapshot(T0).walled_garden_learnt, 0);
    // The real answer, to lassi's port and id, reaches the guest with the
    // guest's own port and id back on, its UDP checksum still right.
    let real = dns_answer("x.example.org", &[("x.example.org", Some(WEB))], 300);
    let mut f = answered((port, id), mac(1), DNS, ip, &real)[ETH_HLEN..].to_vec();
    assert_eq!(e.from_tun(T0, &plain(), &mut f), TunAction::ToLan(mac(1)));
    let expected = dns_reply(mac(1), DNS, ip, &real);
    assert_eq!(f, expected[ETH_HLEN..].to_vec());
    assert_eq!(e.snapshot(T0).walled_garden_learnt, 1);
}

#[test]
fn an_answer_after_login_still_gets_the_guests_port_and_id_back() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let asked = ask(&mut e, ip, DNS, "www.example.org");
    e.authorize(mac(1), who(None), T0).unwrap();
    let real = dns_answer("www.example.org", &[("www.example.org", Some(WEB))], 300);
    let mut f = answered(asked, mac(1), DNS, ip, &real)[ETH_HLEN..].to_vec();
    assert_eq!(e.from_tun(T0, &plain(), &mut f), TunAction::ToLan(mac(1)));
    assert_eq!(f, dns_reply(mac(1), DNS, ip, &real)[ETH_HLEN..].to_vec());
}

/// The saves due at `now`, in the order the engine gives them.
fn saves_due(e: &mut Engine, now: UnixMillis) -> Vec<Save> {
    std::iter::from_fn(|| e.poll_save(now)).collect()
}

#[test]
fn poll_timeout_reports_the_housekeeping_deadline() {
    let (mut e, _) = limited_client(SessionLimits::default());
    saves_due(&mut e, T0);
    assert!(
        e.poll_timeout().is_some_and(|d| d <= T0),
        "never run yet: due at once"
    );
    e.handle_timeout(T0);
    assert_eq!(e.poll_timeout(), Some(T0 + HOUSEKEEPING_INTERVAL_MS));
    e.handle_timeout(T0 + 1000);
    assert_eq!(e.poll_timeout(), Some(T0 + 2000));
}

#[test]
fn housekeeping_runs_at_its_deadline_and_nothing_happens_before_it() {
    let (mut e, _) = limited_client(SessionLimits {
        session_timeout: Some(5),
        ..Default::default()
    });
    e.settings.lost_carrier.silent_secs = 0;
    saves_due(&mut e, T0);
    e.handle_timeout(T0);
    // Drive the engine as the forwarder does: wake only at its deadline.
    let mut now = T0;
    let mut ended = None;
    for _ in 0..100 {
        let deadline = e.poll_timeout().expect("housekeeping is always due");
        assert!(deadline > now, "a deadline in the future: no busy loop");
        e.handle_timeout(deadline - 1);
        assert!(e.take_events().is_empty(), "nothing before the deadline");
        now = deadline;
        e.handle_timeout(now);
        saves_due(&mut e, now);
        ended = ended_reason(&mut e);
        if ended.is_some() {
            break;
        }
    }
    assert_eq!(ended, Some(EndReason::SessionTimeout));
    assert_eq!(now, T0 + 5000, "ended at the first deadline after its time");
}

#[test]
fn saves_are_engine_timers_too() {
    use crate::session::{Durability, LEASE_SAVE_INTERVAL_MS};
    let (mut e, _) = limited_client(SessionLimits::default());
    assert!(
        e.poll_timeout().is_some_and(|d| d <= T0),
        "a login is saved at once"
    );
    assert_eq!(
        saves_due(&mut e, T0),
        vec![Save::Sessions(Durability::Sync), Save::Leases]
    );
    assert!(saves_due(&mut e, T0).is_empty(), "each save once");
    e.handle_timeout(T0);
    // Another lease: the lease file waits out its interval.
    lease(&mut e, mac(2));
    e.take_events();
    assert_eq!(e.poll_timeout(), Some(T0 + LEASE_SAVE_INTERVAL_MS));
    assert!(saves_due(&mut e, T0 + LEASE_SAVE_INTERVAL_MS - 1).is_empty());
    assert_eq!(
        saves_due(&mut e, T0 + LEASE_SAVE_INTERVAL_MS),
        vec![Save::Leases]
    );
}

#[test]
fn metrics_count_sessions_by_state_and_traffic_that_outlives_the_session() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    lease(&mut e, mac(2));
    e.authorize(mac(1), who(Some("alice")), T0).unwrap();
    let m = e.metrics();
    assert_eq!((m.authorized, m.unauthorized), (1, 1));
    let out = tcp(mac(1), ip, WEB, 80, 1000);
    assert_eq!(lan(&mut e, T0 + 5, &plain(), &out), LanAction::ToTun);
    let back = tcp(gw_mac(), WEB, ip, 40000, 300);
    tun(&mut e, T0 + 6, &plain(), &back[ETH_HLEN..]);
    // Dropped traffic of the unauthorized client counts nowhere.
    let ip2 = e.sessions().by_mac(mac(2)).unwrap().ip;
    lan(&mut e, T0 + 7, &plain(), &tcp(mac(2), ip2, WEB, 443, 500));
    let t = e.metrics().traffic;
    assert_eq!((t.upload_bytes, t.upload_packets), (1040, 1));
    assert_eq!((t.download_bytes, t.download_packets), (340, 1));
    // The session ends: its bytes stay counted (counters never go down).
    e.logout(mac(1), EndReason::UserRequest, T0 + 8).unwrap();
    let m = e.metrics();
    assert_eq!((m.authorized, m.unauthorized), (0, 2));
    assert_eq!(m.traffic, t);
    assert!(m.drops.get(DropReason::Unauthorized) >= 1);
    assert_eq!(m.dhcp.bound, 2);
}

/// A DHCPDISCOVER from `m`.
fn discover(m: MacAddr) -> Vec<u8> {
    let mut d = Message::new_with_id(
        9,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &m.0,
    );
    d.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    dhcp_frame(m, &d)
}

#[test]
fn a_blocked_mac_loses_its_session_and_lease_and_is_refused_everything() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    e.authorize(mac(1), who(Some("eve")), T0).unwrap();
    e.take_events();
    let out = e.block(mac(1), T0 + 5_000);
    assert!(out.newly_blocked);
    assert_eq!(out.released, Some(ip));
    let ended = out.ended.expect("its session ended");
    assert_eq!(
        (ended.reason, ended.user.as_deref()),
        (EndReason::AdminReset, Some("eve"))
    );
    // One Stop (Admin-Reset), then the lease ends; no second Stop.
    let evs = e.take_events();
    assert!(
        matches!(&evs[..], [Event::SessionEnded(s), Event::LeaseEnded { ip: i, .. }] if s.reason == EndReason::AdminReset && *i == ip),
        "{evs:?}"
    );
    assert!(e.sessions().by_mac(mac(1)).is_none());
    // Remembered as its last address, but no longer bound.
    assert!(e
        .lease_records()
        .iter()
        .all(|l| l.mac != mac(1) || l.expires <= T0 + 5_000));
    // No DHCP answer, no portal, no ARP: dropped and counted as blocked.
    e.outbox().clear();
    assert_eq!(
        lan(&mut e, T0, &plain(), &discover(mac(1))),
        LanAction::Drop(DropReason::Blocked)
    );
    assert!(e.outbox().is_empty(), "no OFFER for a blocked MAC");
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 80, 0)),
        LanAction::Drop(DropReason::Blocked)
    );
    assert_eq!(e.drops().get(DropReason::Blocked), 2);
    // Blocking again changes nothing; others are untouched.
    assert!(!e.block(mac(1), T0).newly_blocked);
    assert_eq!(e.blocked_macs(), vec![mac(1)]);
    let other = lease(&mut e, mac(2));
    assert_ne!(other, Ipv4Addr::UNSPECIFIED);
    // Unblocked, it gets a lease again.
    assert!(e.unblock(mac(1)));
    assert!(!e.unblock(mac(1)));
    assert!(e.blocked_macs().is_empty());
    lease(&mut e, mac(1));
}

#[test]
fn blocking_a_client_without_a_lease_only_blocks() {
    let mut e = engine(true);
    let out = e.block(mac(7), T0);
    assert!(out.newly_blocked && out.ended.is_none() && out.released.is_none());
    assert!(e.take_events().is_empty());
    assert!(e.is_blocked(mac(7)) && !e.is_blocked(mac(8)));
}

#[test]
fn an_operator_release_ends_the_session_and_frees_the_address() {
    let mut e = engine(true);
    let ip = online(&mut e, mac(1));
    e.take_events();
    let freed = e.release_lease(mac(1), T0 + 1_000).unwrap();
    assert_eq!(freed.ip, ip);
    assert_eq!(
        freed.ended.map(|s| s.reason),
        Some(EndReason::LeaseReleased)
    );
    let evs = e.take_events();
    assert!(matches!(
        &evs[..],
        [
            Event::SessionEnded(_),
            Event::LeaseEnded {
                reason: EndReason::LeaseReleased,
                ..
            }
        ]
    ));
    assert!(e.sessions().by_ip(ip).is_none());
    assert!(e
        .lease_records()
        .iter()
        .all(|l| l.ip != ip || l.expires <= T0 + 1_000));
    // Its packets no longer pass as the owner of the address.
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, WEB, 443, 0)),
        LanAction::Drop(DropReason::NoLease)
    );
    let err = e.release_lease(mac(1), T0).unwrap_err();
    assert_eq!(err.to_string(), format!("no lease for {}", mac(1)));
    // An unauthorized client's release ends no session.
    lease(&mut e, mac(2));
    e.take_events();
    assert!(e.release_lease(mac(2), T0).unwrap().ended.is_none());
}

#[test]
fn operator_filters_list_and_log_out_by_any_identifier() {
    let mut e = engine(true);
    let a = lease(&mut e, mac(1));
    let b = lease(&mut e, mac(2));
    let c = lease(&mut e, mac(3));
    e.authorize(mac(1), who(Some("alice")), T0).unwrap();
    e.authorize(mac(2), who(Some("alice")), T0).unwrap();
    let everyone = e.clients_matching(&ClientFilter::default());
    assert_eq!(everyone.len(), 3);
    let alice = ClientFilter {
        user: Some("alice".into()),
        ..Default::default()
    };
    let by_ip = |ip| ClientFilter {
        ip: Some(ip),
        ..Default::default()
    };
    assert_eq!(e.clients_matching(&alice).len(), 2);
    assert_eq!(e.clients_matching(&by_ip(c))[0].mac, mac(3));
    // Criteria combine.
    let both = ClientFilter {
        ip: Some(c),
        ..alice.clone()
    };
    assert!(e.clients_matching(&both).is_empty());
    let sid = e.sessions().by_mac(mac(2)).unwrap().session_id.clone();
    let by_id = ClientFilter {
        session_id: Some(sid.clone()),
        ..Default::default()
    };
    assert_eq!(e.clients_matching(&by_id)[0].ip, b);
    assert_eq!(e.client_mac(&by_ip(a)), Ok(mac(1)));
    // Logout by session id ends that one; by user the rest.
    let ended = e
        .logout_matching(&by_id, EndReason::AdminReset, T0)
        .unwrap();
    assert_eq!(
        (ended.len(), ended[0].session_id.as_str()),
        (1, sid.as_str())
    );
    let ended = e
        .logout_matching(&alice, EndReason::AdminReset, T0)
        .unwrap();
    assert_eq!((ended.len(), ended[0].mac), (1, mac(1)));
    // Not found, named.
    assert_eq!(e.clone_err(&alice), "no session for user alice");
    assert_eq!(
        e.clone_err(&by_ip(Ipv4Addr::new(10, 1, 0, 77))),
        "no client with IP 10.1.0.77"
    );
    assert_eq!(e.clone_err(&by_ip(c)), format!("no session for IP {c}"));
    assert_eq!(
        e.client_mac(&by_ip(Ipv4Addr::new(10, 1, 0, 77)))
            .unwrap_err()
            .to_string(),
        "no client with IP 10.1.0.77"
    );
    // An empty filter logs nobody out.
    assert!(e
        .logout_matching(&ClientFilter::default(), EndReason::AdminReset, T0)
        .is_err());
}

impl Engine {
    /// The message of a logout that found nothing.
    fn clone_err(&mut self, f: &ClientFilter) -> String {
        self.logout_matching(f, EndReason::AdminReset, T0)
            .unwrap_err()
            .to_string()
    }
}

#[test]
fn walled_garden_edits_open_and_close_live() {
    let mut e = engine(true);
    let ip = lease(&mut e, mac(1));
    let added = Ipv4Addr::new(198, 51, 100, 40);
    let out = |e: &mut Engine| lan(e, T0, &plain(), &tcp(mac(1), ip, added, 443, 0));
    assert_eq!(out(&mut e), LanAction::Drop(DropReason::Unauthorized));
    let mut nets = e.garden_open(T0).nets;
    nets.push("198.51.100.40/32".parse().unwrap());
    e.set_walled_garden(nets, vec!["example.org".into()], vec![]);
    assert_eq!(out(&mut e), LanAction::ToTun);
    assert_eq!(e.garden_open(T0).nets.len(), 2);
    // Learnt addresses stay while their suffix does, and go with it.
    let learnt = Ipv4Addr::new(198, 51, 100, 30);
    let q = ask(&mut e, ip, DNS, "www.example.org");
    let answer = dns_answer("www.example.org", &[("www.example.org", Some(learnt))], 300);
    let reply = answered(q, mac(1), DNS, ip, &answer);
    assert_eq!(
        tun(&mut e, T0, &plain(), &reply[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    assert_eq!(e.garden_open(T0).learnt, vec![learnt]);
    let net203: Vec<Ipv4Net> = vec!["203.0.113.0/24".parse().unwrap()];
    e.set_walled_garden(net203.clone(), vec!["example.org".into()], vec![]);
    assert_eq!(out(&mut e), LanAction::Drop(DropReason::Unauthorized));
    assert_eq!(e.garden_open(T0).learnt, vec![learnt]);
    e.set_walled_garden(net203.clone(), vec![], vec![]);
    assert!(e.garden_open(T0).learnt.is_empty());
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, learnt, 443, 0)),
        LanAction::Drop(DropReason::Unauthorized)
    );
    // A host name: the guest's own lookup of exactly that name teaches
    // (a subdomain does not), and removing the name forgets it.
    e.set_walled_garden(net203.clone(), vec![], vec!["cdn.example.net".into()]);
    let sub = Ipv4Addr::new(198, 51, 100, 32);
    let q = ask(&mut e, ip, DNS, "x.cdn.example.net");
    let answer = dns_answer(
        "x.cdn.example.net",
        &[("x.cdn.example.net", Some(sub))],
        300,
    );
    let reply = answered(q, mac(1), DNS, ip, &answer);
    assert_eq!(
        tun(&mut e, T0, &plain(), &reply[ETH_HLEN..]),
        TunAction::ToLan(mac(1))
    );
    assert!(e.garden_open(T0).learnt.is_empty(), "a subdomain taught");
    let q = ask(&mut e, ip, DNS, "cdn.example.net");
    let answer = dns_answer("cdn.example.net", &[("cdn.example.net", Some(learnt))], 300);
    let reply = answered(q, mac(1), DNS, ip, &answer);
    tun(&mut e, T0, &plain(), &reply[ETH_HLEN..]);
    assert_eq!(e.garden_open(T0).learnt, vec![learnt]);
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), ip, learnt, 443, 0)),
        LanAction::ToTun
    );
    e.set_walled_garden(net203, vec![], vec![]);
    assert!(e.garden_open(T0).learnt.is_empty());
}

#[test]
fn live_settings_change_forwarding_and_defaults_without_ending_sessions() {
    let mut e = engine(true);
    let (a, b) = both_online(&mut e);
    let before = e.sessions().by_mac(mac(1)).unwrap().clone();
    assert_eq!(
        lan(&mut e, T0, &plain(), &tcp(mac(1), a, b, 22, 0)),
        LanAction::Drop(DropReason::ClientToClient)
    );
    e.take_events();
    let defaults = SessionLimits {
        idle_timeout: Some(321),
        ..Default::default()
    };
    e.set_live_settings(LiveSettings {
        client_isolation: false,
        any_dns: true,
        quota_action: QuotaAction::default(),
        lost_carrier: LostCarrier::default(),
        default_limits: defaults.clone(),
    });
    // Forwarding follows the new isolation at once; the session is the same.
    assert_eq!(
        lan(&mut e, T0 + 1, &plain(), &tcp(mac(1), a, b, 22, 0)),
        LanAction::Hairpin(mac(2))
    );
    let after = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(after.session_id, before.session_id);
    assert_eq!(after.limits, before.limits, "running sessions keep theirs");
    assert!(e.take_events().is_empty(), "no session ended or started");
    // A new session gets the new defaults.
    lease(&mut e, mac(3));
    let c = e.authorize(mac(3), who(None), T0 + 2).unwrap();
    assert_eq!(c.limits.idle_timeout, Some(321));
    assert!(e.intercept.settings.any_dns && e.settings.intercept.any_dns);
}
