//! IPv6 on the LAN through the engine: whole frames in, actions and frames
//! out (the flow of `crate::ipv6`'s end-to-end test, on the data plane).

use core::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::dataplane::{Engine, Event, LanAction, Save, TunAction, SESSION_IPV6_MAX};
use crate::dhcp::DhcpServer;
use crate::dhcp6::Dhcp6Settings;
use crate::ipv6::addrs::AddrSettings;
use crate::ipv6::ra::RaSettings;
use crate::testkit;
use crate::wire::dhcpv6::{self, DhcpOption, IaNa, Message, MessageType};
use crate::wire::ipv6::{Ipv6Net, NEXT_ICMPV6, NEXT_UDP};
use crate::wire::ndp::{NaFlags, NdpOption, RaFlags, Repr};
use crate::wire::vnet::VnetHdr;

const T0: UnixMillis = 1_795_359_600_000;
const DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);

fn gw() -> MacAddr {
    "02:00:00:00:00:01".parse().unwrap()
}

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, n])
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn prefix() -> Ipv6Net {
    Ipv6Net::new(ip("2001:db8:1::"), 64).unwrap()
}

fn engine_v4() -> Engine {
    let dhcp = DhcpServer::new(testkit::dhcp_settings(DNS), vec![], T0);
    Engine::new(testkit::engine_settings(DNS), dhcp, T0)
}

fn settings() -> Ipv6Settings {
    let mut ra = RaSettings::new(gw(), Some(prefix()));
    ra.other = true;
    ra.mtu = Some(1500);
    ra.rdnss = vec![ip("2001:db8:1::53")];
    ra.dnssl = vec!["hotspot.lan".into()];
    ra.captive_portal_uri = Some("http://10.1.0.1:3990/api".into());
    let mut dhcp = Dhcp6Settings::new(gw(), prefix());
    dhcp.reserved = vec![ip("2001:db8:1::1")];
    dhcp.dns = ra.rdnss.clone();
    dhcp.captive_portal_uri = ra.captive_portal_uri.clone();
    let mut addrs = AddrSettings::new(Some(prefix()));
    addrs.per_client = 4;
    Ipv6Settings {
        ra,
        dhcp,
        addrs,
        address: ip("2001:db8:1::1"),
    }
}

/// An engine with IPv6 on, its first RA already sent and the outbox empty.
fn engine() -> Engine {
    let mut e = engine_v4();
    e.enable_ipv6(settings(), vec![], 7, T0);
    e.handle_timeout(T0);
    e.outbox().clear();
    e
}

fn link_local(m: MacAddr) -> Ipv6Addr {
    crate::wire::ipv6::link_local_from_mac(m)
}

fn frame(m: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: Vec<u8>) -> Vec<u8> {
    let dst_mac = if dst.is_multicast() {
        crate::wire::ipv6::multicast_mac(dst)
    } else {
        gw()
    };
    Ipv6Transmit {
        src_mac: m,
        dst_mac,
        src,
        dst,
        hop_limit: if next == NEXT_ICMPV6 { 255 } else { 64 },
        next_header: next,
        payload,
    }
    .to_frame()
}

fn nd(m: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, repr: &Repr) -> Vec<u8> {
    frame(m, src, dst, NEXT_ICMPV6, repr.emit(src, dst))
}

fn dhcp_frame(m: MacAddr, msg: &Message) -> Vec<u8> {
    let (src, dst) = (link_local(m), crate::wire::ipv6::ALL_DHCP_SERVERS);
    let udp = crate::wire::ipv6::udp_datagram(src, dst, 546, 547, &msg.emit());
    frame(m, src, dst, NEXT_UDP, udp)
}

fn lan(e: &mut Engine, now: UnixMillis, f: &[u8]) -> LanAction {
    e.from_lan(now, &VnetHdr::default(), &mut f.to_vec())
}

/// The frames in the outbox, parsed: (Ethernet destination, IPv6 header, upper layer).
fn sent(e: &mut Engine) -> Vec<(MacAddr, Ipv6Summary, Vec<u8>)> {
    e.outbox()
        .drain(..)
        .map(|f| {
            let eth = crate::wire::frame::EthHeader::parse(&f).unwrap();
            let p = &f[14..];
            let s = crate::wire::ipv6::parse(p).unwrap();
            (eth.dst, s, s.upper(p).to_vec())
        })
        .collect()
}

fn nd_of(s: &Ipv6Summary, msg: &[u8]) -> Repr {
    let meta = Ipv6Meta {
        src: s.src,
        dst: s.dst,
        hop_limit: s.hop_limit,
    };
    Repr::parse_validated(&meta, msg).unwrap()
}

fn dhcp_of(udp: &[u8]) -> Message {
    assert_eq!(&udp[..4], &[2, 35, 2, 34]); // 547 → 546
    Message::parse(&udp[8..]).unwrap()
}

fn rs(m: MacAddr) -> Vec<u8> {
    let ll = link_local(m);
    let rs = Repr::RouterSolicit {
        options: vec![NdpOption::SourceLinkAddr(m)],
    };
    nd(m, ll, crate::wire::ipv6::ALL_ROUTERS, &rs)
}

#[test]
fn off_every_ipv6_frame_is_dropped_as_before() {
    let mut e = engine_v4();
    assert_eq!(
        lan(&mut e, T0, &rs(mac(1))),
        LanAction::Drop(DropReason::Ipv6)
    );
    let solicit = solicit(mac(1), false);
    assert_eq!(
        lan(&mut e, T0, &dhcp_frame(mac(1), &solicit)),
        LanAction::Drop(DropReason::Ipv6)
    );
    assert_eq!(e.drops().get(DropReason::Ipv6), 2);
    assert_eq!(e.drops().total(), 2);
    assert!(e.outbox().is_empty());
    assert!(e.lease6_records().is_none() && e.ipv6_status().is_none());
    assert!(e.snapshot(T0).ipv6.is_none());
    e.handle_timeout(T0 + 60_000);
    assert!(e.outbox().is_empty(), "no RA without IPv6");
}

#[test]
fn router_advertisements_are_periodic_and_answer_solicitations() {
    let mut e = engine_v4();
    e.enable_ipv6(settings(), vec![], 7, T0);
    assert!(e.poll_timeout().unwrap() <= T0);
    e.handle_timeout(T0);
    let ras = sent(&mut e);
    assert_eq!(ras.len(), 1);
    let (dst_mac, s, msg) = &ras[0];
    assert_eq!(*dst_mac, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    assert_eq!(
        (s.src, s.dst),
        (link_local(gw()), crate::wire::ipv6::ALL_NODES)
    );
    let Repr::RouterAdvert {
        flags,
        router_lifetime,
        options,
        ..
    } = nd_of(s, msg)
    else {
        panic!()
    };
    assert_eq!(
        flags,
        RaFlags {
            managed: false,
            other: true
        }
    );
    assert_eq!(router_lifetime, 1800);
    let kinds: Vec<u8> = options.iter().map(NdpOption::kind).collect();
    assert_eq!(kinds, vec![1, 5, 3, 25, 31, 37]);
    assert!(options.contains(&NdpOption::CaptivePortal("http://10.1.0.1:3990/api".into())));
    // The next periodic RA is the engine's timer (an initial one within 16 s).
    let next = e.poll_timeout().unwrap();
    assert!(next > T0 && next <= T0 + 16_000);
    // A solicitation 10 s on: an RA within half a second, multicast.
    let t = T0 + 10_000;
    assert_eq!(lan(&mut e, t, &rs(mac(1))), LanAction::Consumed);
    let mut ras = Vec::new();
    for now in (t..=t + 500).step_by(10) {
        e.handle_timeout(now);
        ras.extend(sent(&mut e));
    }
    assert_eq!(ras.len(), 1);
    assert!(matches!(
        nd_of(&ras[0].1, &ras[0].2),
        Repr::RouterAdvert { .. }
    ));
    // The RS's source is learnt as the guest's.
    assert_eq!(e.ipv6_addresses(mac(1)), vec![link_local(mac(1))]);
    assert_eq!(e.ipv6_status().unwrap().ra.solicits, 1);
}

#[test]
fn neighbour_solicitations_for_lassi_are_answered() {
    let mut e = engine();
    let ll = link_local(mac(1));
    for target in [link_local(gw()), ip("2001:db8:1::1")] {
        let ns = Repr::NeighborSolicit {
            target,
            options: vec![NdpOption::SourceLinkAddr(mac(1))],
        };
        let f = nd(mac(1), ll, crate::wire::ipv6::solicited_node(target), &ns);
        assert_eq!(lan(&mut e, T0, &f), LanAction::Consumed);
        let out = sent(&mut e);
        assert_eq!(out.len(), 1);
        let (dst_mac, s, msg) = &out[0];
        assert_eq!((*dst_mac, s.dst, s.src), (mac(1), ll, target));
        match nd_of(s, msg) {
            Repr::NeighborAdvert {
                flags,
                target: t,
                options,
            } => {
                assert_eq!(t, target);
                assert!(flags.router && flags.solicited && flags.override_);
                assert_eq!(options, vec![NdpOption::TargetLinkAddr(gw())]);
            }
            r => panic!("{r:?}"),
        }
    }
    // Another guest's address: not lassi's to answer, not forwarded.
    let ns = Repr::NeighborSolicit {
        target: ip("2001:db8:1::99"),
        options: vec![],
    };
    let f = nd(
        mac(1),
        ll,
        crate::wire::ipv6::solicited_node(ip("2001:db8:1::99")),
        &ns,
    );
    assert_eq!(lan(&mut e, T0, &f), LanAction::Drop(DropReason::Ipv6));
    // A guest's DAD probe for lassi's address is defended.
    let dad = Repr::NeighborSolicit {
        target: ip("2001:db8:1::1"),
        options: vec![],
    };
    let f = nd(
        mac(2),
        Ipv6Addr::UNSPECIFIED,
        crate::wire::ipv6::solicited_node(ip("2001:db8:1::1")),
        &dad,
    );
    assert_eq!(lan(&mut e, T0, &f), LanAction::Consumed);
    let out = sent(&mut e);
    assert_eq!(out[0].1.dst, crate::wire::ipv6::ALL_NODES);
    assert!(
        e.ipv6_addresses(mac(2)).is_empty(),
        "lassi's address is never a guest's"
    );
    assert_eq!(e.ipv6_status().unwrap().neighbor_adverts, 3);
}

fn solicit(m: MacAddr, rapid: bool) -> Message {
    let mut options = vec![
        DhcpOption::ClientId(dhcpv6::duid_ll(m.0)),
        DhcpOption::IaNa(IaNa {
            iaid: 1,
            t1: 0,
            t2: 0,
            options: vec![],
        }),
        DhcpOption::Oro(vec![23, 24, 103]),
    ];
    if rapid {
        options.push(DhcpOption::RapidCommit);
    }
    Message {
        msg_type: MessageType::Solicit,
        xid: 0x0a0b0c,
        options,
    }
}

#[test]
fn dhcpv6_solicit_advertise_request_reply() {
    let mut e = engine();
    assert_eq!(
        lan(&mut e, T0, &dhcp_frame(mac(1), &solicit(mac(1), false))),
        LanAction::Consumed
    );
    let out = sent(&mut e);
    assert_eq!(out.len(), 1);
    let (dst_mac, s, udp) = &out[0];
    assert_eq!(
        (*dst_mac, s.src, s.dst),
        (mac(1), link_local(gw()), link_local(mac(1)))
    );
    let adv = dhcp_of(udp);
    assert_eq!(adv.msg_type, MessageType::Advertise);
    let ia = adv.ia_nas().next().unwrap().clone();
    let addr = ia.addrs().next().unwrap().addr;
    assert!(prefix().contains(addr) && addr != ip("2001:db8:1::1"));
    assert!(ia.t1 <= ia.t2 && ia.t1 > 0);
    assert_eq!(
        adv.option(23),
        Some(&DhcpOption::DnsServers(vec![ip("2001:db8:1::53")]))
    );
    assert_eq!(
        adv.option(103),
        Some(&DhcpOption::CaptivePortal(
            "http://10.1.0.1:3990/api".into()
        ))
    );
    assert!(
        e.lease6_records().unwrap().is_empty(),
        "an offer is not a lease"
    );
    // Request: bound, learnt, saved.
    let request = Message {
        msg_type: MessageType::Request,
        xid: 0x0a0b0d,
        options: vec![
            DhcpOption::ClientId(dhcpv6::duid_ll(mac(1).0)),
            DhcpOption::ServerId(adv.server_id().unwrap().to_vec()),
            DhcpOption::IaNa(ia),
        ],
    };
    assert_eq!(
        lan(&mut e, T0 + 100, &dhcp_frame(mac(1), &request)),
        LanAction::Consumed
    );
    let reply = dhcp_of(&sent(&mut e)[0].2);
    assert_eq!(reply.msg_type, MessageType::Reply);
    assert_eq!(
        reply.ia_nas().next().unwrap().addrs().next().unwrap().addr,
        addr
    );
    let records = e.lease6_records().unwrap();
    assert_eq!(
        (records.len(), records[0].addr, records[0].mac),
        (1, addr, mac(1))
    );
    assert!(e.ipv6_addresses(mac(1)).contains(&addr));
    assert_eq!(e.poll_save(T0 + 100), Some(Save::Leases));
}

#[test]
fn dhcpv6_rapid_commit_information_request_refusals_and_restart() {
    let mut e = engine();
    lan(&mut e, T0, &dhcp_frame(mac(1), &solicit(mac(1), true)));
    let addr = e.lease6_records().unwrap()[0].addr;
    e.outbox().clear();
    // Rapid Commit: a Reply at once.
    lan(
        &mut e,
        T0 + 200,
        &dhcp_frame(mac(2), &solicit(mac(2), true)),
    );
    let reply = dhcp_of(&sent(&mut e)[0].2);
    assert_eq!(reply.msg_type, MessageType::Reply);
    assert_eq!(e.lease6_records().unwrap().len(), 2);
    // Information-request: DNS and the portal, no address.
    let info = Message {
        msg_type: MessageType::InformationRequest,
        xid: 9,
        options: vec![DhcpOption::ClientId(dhcpv6::duid_ll(mac(3).0))],
    };
    lan(&mut e, T0 + 300, &dhcp_frame(mac(3), &info));
    let reply = dhcp_of(&sent(&mut e)[0].2);
    assert!(reply.option(23).is_some() && reply.option(103).is_some());
    assert!(reply.ia_nas().next().is_none());
    // Garbage to port 547 is refused and counted.
    let junk = Message {
        msg_type: MessageType::Request,
        xid: 1,
        options: vec![],
    };
    assert_eq!(
        lan(&mut e, T0 + 400, &dhcp_frame(mac(3), &junk)),
        LanAction::Drop(DropReason::Dhcpv6Refused)
    );
    // Leases restored at the next start teach the addresses again.
    let mut again = engine_v4();
    again.enable_ipv6(settings(), e.lease6_records().unwrap(), 1, T0 + 1000);
    assert_eq!(again.lease6_records().unwrap().len(), 2);
    assert!(again.ipv6_addresses(mac(1)).contains(&addr));
}

#[test]
fn rogue_router_and_server_messages_are_dropped_and_counted() {
    let mut e = engine();
    let rogue = mac(0x66);
    let ll = link_local(rogue);
    let ra =
        RaSettings::new(rogue, Some(Ipv6Net::new(ip("2001:db8:bad::"), 64).unwrap())).advert(1800);
    let f = nd(rogue, ll, crate::wire::ipv6::ALL_NODES, &ra);
    assert_eq!(
        lan(&mut e, T0, &f),
        LanAction::Drop(DropReason::Ipv6RouterAdvert)
    );
    let redirect = Repr::Redirect {
        target: ll,
        destination: ip("2001:db8::1"),
        options: vec![],
    };
    let f = nd(rogue, ll, link_local(mac(1)), &redirect);
    assert_eq!(
        lan(&mut e, T0, &f),
        LanAction::Drop(DropReason::Ipv6Redirect)
    );
    let advertise = Message {
        msg_type: MessageType::Advertise,
        xid: 1,
        options: vec![],
    };
    let udp = crate::wire::ipv6::udp_datagram(ll, link_local(mac(1)), 547, 546, &advertise.emit());
    let f = frame(rogue, ll, link_local(mac(1)), NEXT_UDP, udp);
    assert_eq!(
        lan(&mut e, T0, &f),
        LanAction::Drop(DropReason::Ipv6DhcpServer)
    );
    let d = e.drops();
    assert_eq!(
        (
            d.get(DropReason::Ipv6RouterAdvert),
            d.get(DropReason::Ipv6Redirect),
            d.get(DropReason::Ipv6DhcpServer)
        ),
        (1, 1, 1)
    );
    let status = e.ipv6_status().unwrap();
    assert_eq!(
        (
            status.guard.router_adverts,
            status.guard.redirects,
            status.guard.dhcpv6_server
        ),
        (1, 1, 1)
    );
    assert!(e.outbox().is_empty() && e.ipv6_addresses(rogue).is_empty());
    let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
    for n in [
        "ipv6_router_advert",
        "ipv6_redirect",
        "ipv6_dhcp_server",
        "ipv6_bad_nd",
    ] {
        assert!(names.contains(&n), "{n}");
    }
}

/// `m` announces `addr` by duplicate address detection (how guests' SLAAC
/// and privacy addresses are learnt).
fn dad(e: &mut Engine, m: MacAddr, addr: Ipv6Addr) {
    let probe = Repr::NeighborSolicit {
        target: addr,
        options: vec![],
    };
    let dst = crate::wire::ipv6::solicited_node(addr);
    let f = nd(m, Ipv6Addr::UNSPECIFIED, dst, &probe);
    assert_eq!(lan(e, T0, &f), LanAction::Consumed);
}

/// A guest with an IPv4 lease at 10.1.0.`n` and `addr` learnt.
fn guest(e: &mut Engine, n: u8, addr: Ipv6Addr, logged_in: bool) {
    (e.sessions).lease_bound(mac(n), Ipv4Addr::new(10, 1, 0, n), T0 + 3_600_000, T0);
    dad(e, mac(n), addr);
    if logged_in {
        e.authorize(mac(n), Default::default(), T0).unwrap();
    }
}

/// A TCP segment (20-byte header, `data` after it) with its checksum.
fn tcp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t.extend_from_slice(data);
    let c = crate::wire::ipv6::upper_checksum(src, dst, 6, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

fn tcp_frame(m: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, dport: u16, flags: u8) -> Vec<u8> {
    frame(m, src, dst, 6, tcp(src, dst, 40000, dport, flags, b"GET /"))
}

fn echo(m: MacAddr, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut msg = vec![128, 0, 0, 0, 0, 1, 0, 1];
    let c = crate::wire::ipv6::upper_checksum(src, dst, NEXT_ICMPV6, &msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    frame(m, src, dst, NEXT_ICMPV6, msg)
}

fn tun(e: &mut Engine, packet: &mut [u8]) -> TunAction {
    e.from_tun(T0, &VnetHdr::default(), packet)
}

const UPSTREAM: &str = "2001:db8:ffff::1";

#[test]
fn a_spoofed_ipv6_source_is_dropped_and_counted_to_nobody() {
    let mut e = engine();
    let (a, b) = (ip("2001:db8:1::a"), ip("2001:db8:1::b"));
    guest(&mut e, 1, a, true);
    guest(&mut e, 2, b, true);
    // Guest 2 sends as guest 1, then from an address nobody announced.
    for src in [a, ip("2001:db8:1::99"), ip("fe80::99")] {
        let f = tcp_frame(mac(2), src, ip(UPSTREAM), 443, 0x02);
        assert_eq!(
            lan(&mut e, T0, &f),
            LanAction::Drop(DropReason::Ipv6Spoofed)
        );
    }
    assert_eq!(e.drops().get(DropReason::Ipv6Spoofed), 3);
    for m in [mac(1), mac(2)] {
        let c = e.sessions().by_mac(m).unwrap();
        assert_eq!((c.counters.octets_in, c.counters.packets_in), (0, 0));
    }
    assert!(e.outbox().is_empty(), "nothing answers a spoofed packet");
    // Its own address passes.
    let f = tcp_frame(mac(2), b, ip(UPSTREAM), 443, 0x02);
    assert_eq!(lan(&mut e, T0, &f), LanAction::ToTun);
}

#[test]
fn logged_in_ipv6_is_forwarded_and_counted_with_ipv4() {
    let mut e = engine();
    let a = ip("2001:db8:1::a");
    guest(&mut e, 1, a, true);
    let up = tcp_frame(mac(1), a, ip(UPSTREAM), 443, 0x18);
    assert_eq!(lan(&mut e, T0 + 5, &up), LanAction::ToTun);
    let mut down = frame(
        gw(),
        ip(UPSTREAM),
        a,
        6,
        tcp(ip(UPSTREAM), a, 443, 40000, 0x18, &[7; 100]),
    )[14..]
        .to_vec();
    assert_eq!(tun(&mut e, &mut down), TunAction::ToLan(mac(1)));
    let c = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(
        (c.counters.packets_in, c.counters.octets_in),
        (1, up.len() as u64 - 14)
    );
    assert_eq!(
        (c.counters.packets_out, c.counters.octets_out),
        (1, down.len() as u64)
    );
    assert_eq!(c.last_active, T0 + 5, "the idle timer sees IPv6");
    // To an address nobody uses, or off the prefix: dropped.
    for dst in ["2001:db8:1::77", "2001:db8:2::1"] {
        let mut p = down.clone();
        p[24..40].copy_from_slice(&ip(dst).octets());
        assert!(matches!(tun(&mut e, &mut p), TunAction::Drop(_)));
    }
    // A session's end stops both families at once.
    e.logout(mac(1), crate::session::EndReason::UserRequest, T0)
        .unwrap();
    assert_eq!(
        tun(&mut e, &mut down),
        TunAction::Drop(DropReason::Unauthorized)
    );
}

#[test]
fn before_login_http_goes_to_the_portal_and_the_rest_is_refused() {
    let mut e = engine();
    let a = ip("2001:db8:1::a");
    let (lassi, upstream) = (ip("2001:db8:1::1"), ip(UPSTREAM));
    guest(&mut e, 1, a, false);
    // HTTP: rewritten to lassi's portal port on its IPv6 address.
    let mut f = tcp_frame(mac(1), a, upstream, 80, 0x02);
    assert_eq!(
        e.from_lan(T0, &VnetHdr::default(), &mut f),
        LanAction::ToTun
    );
    let s = crate::wire::ipv6::parse(&f[14..]).unwrap();
    assert_eq!(s.dst, lassi);
    assert_eq!(s.ports(&f[14..]).unwrap().dst, 3990);
    assert_eq!(
        crate::wire::ipv6::upper_checksum(a, lassi, 6, s.upper(&f[14..])),
        0
    );
    // The portal's answer looks like the site's.
    let mut back =
        frame(gw(), lassi, a, 6, tcp(lassi, a, 3990, 40000, 0x12, b"HTTP"))[14..].to_vec();
    assert_eq!(tun(&mut e, &mut back), TunAction::ToLan(mac(1)));
    let s = crate::wire::ipv6::parse(&back).unwrap();
    assert_eq!((s.src, s.ports(&back).unwrap().src), (upstream, 80));
    assert_eq!(
        crate::wire::ipv6::upper_checksum(upstream, a, 6, s.upper(&back)),
        0
    );
    // HTTPS: a reset from the site asked for.
    let f = tcp_frame(mac(1), a, upstream, 443, 0x02);
    assert_eq!(
        lan(&mut e, T0, &f),
        LanAction::Drop(DropReason::Unauthorized)
    );
    let out = sent(&mut e);
    assert_eq!(out.len(), 1);
    let (dst_mac, s, seg) = &out[0];
    assert_eq!(
        (*dst_mac, s.src, s.dst, seg[13]),
        (mac(1), upstream, a, 0x14)
    );
    assert_eq!(crate::wire::ipv6::upper_checksum(upstream, a, 6, seg), 0);
    // Ping and UDP: ICMPv6 administratively prohibited from lassi.
    let udp = crate::wire::ipv6::udp_datagram(a, upstream, 5000, 9999, b"x");
    for f in [
        echo(mac(1), a, upstream),
        frame(mac(1), a, upstream, NEXT_UDP, udp),
    ] {
        assert_eq!(
            lan(&mut e, T0, &f),
            LanAction::Drop(DropReason::Unauthorized)
        );
        let out = sent(&mut e);
        let (_, s, msg) = &out[0];
        assert_eq!((s.src, s.dst, msg[0], msg[1]), (lassi, a, 1, 1));
        assert_eq!(&msg[8..48], &f[14..54], "the packet is quoted");
    }
}

#[test]
fn before_login_dns_to_the_servers_handed_out_and_ping_to_lassi_pass() {
    let mut e = engine();
    let a = ip("2001:db8:1::a");
    let (lassi, upstream) = (ip("2001:db8:1::1"), ip(UPSTREAM));
    guest(&mut e, 1, a, false);
    // DNS to the servers handed out passes, both ways; ping to lassi too.
    let dns = crate::wire::ipv6::udp_datagram(a, ip("2001:db8:1::53"), 5000, 53, b"q");
    let f = frame(mac(1), a, ip("2001:db8:1::53"), NEXT_UDP, dns);
    assert_eq!(lan(&mut e, T0, &f), LanAction::ToTun);
    let answer = crate::wire::ipv6::udp_datagram(ip("2001:db8:1::53"), a, 53, 5000, b"a");
    let mut p = frame(gw(), ip("2001:db8:1::53"), a, NEXT_UDP, answer)[14..].to_vec();
    assert_eq!(tun(&mut e, &mut p), TunAction::ToLan(mac(1)));
    assert_eq!(lan(&mut e, T0, &echo(mac(1), a, lassi)), LanAction::ToTun);
    // Nothing else comes in; nothing was counted.
    let mut p = frame(
        gw(),
        upstream,
        a,
        6,
        tcp(upstream, a, 443, 40000, 0x12, b""),
    )[14..]
        .to_vec();
    assert_eq!(
        tun(&mut e, &mut p),
        TunAction::Drop(DropReason::Unauthorized)
    );
    let c = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!((c.counters.octets_in, c.counters.octets_out), (0, 0));
}

#[test]
fn the_walled_garden_takes_ipv6_networks() {
    let mut e = engine();
    e.intercept.settings.walled_nets6 = vec![Ipv6Net::new(ip("2001:db8:ffff::"), 48).unwrap()];
    let a = ip("2001:db8:1::a");
    guest(&mut e, 1, a, false);
    let f = tcp_frame(mac(1), a, ip(UPSTREAM), 443, 0x02);
    assert_eq!(lan(&mut e, T0, &f), LanAction::ToTun);
    let f = tcp_frame(mac(1), a, ip("2001:db8:fffe::1"), 443, 0x02);
    assert_eq!(
        lan(&mut e, T0, &f),
        LanAction::Drop(DropReason::Unauthorized)
    );
}

#[test]
fn ipv6_between_guests_follows_client_isolation() {
    let mut e = engine();
    let (a, b) = (ip("2001:db8:1::a"), ip("2001:db8:1::b"));
    guest(&mut e, 1, a, true);
    guest(&mut e, 2, b, true);
    let f = tcp_frame(mac(1), a, b, 22, 0x02);
    assert_eq!(
        lan(&mut e, T0, &f),
        LanAction::Drop(DropReason::ClientToClient)
    );
    e.settings.client_isolation = false;
    assert_eq!(lan(&mut e, T0, &f), LanAction::Hairpin(mac(2)));
    let c = e.sessions().by_mac(mac(2)).unwrap();
    assert_eq!(c.counters.octets_out, f.len() as u64 - 14);
    // Never around lassi through the kernel.
    let mut p = f[14..].to_vec();
    assert_eq!(
        tun(&mut e, &mut p),
        TunAction::Drop(DropReason::ClientToClient)
    );
}

#[test]
fn address_learning_is_bounded_per_guest() {
    let mut e = engine();
    for n in 0..20u16 {
        let addr = prefix().with_iid(0x1000 + u64::from(n));
        let na = Repr::NeighborAdvert {
            flags: NaFlags {
                override_: true,
                ..NaFlags::default()
            },
            target: addr,
            options: vec![],
        };
        let f = nd(mac(1), addr, crate::wire::ipv6::ALL_NODES, &na);
        assert_eq!(lan(&mut e, T0 + u64::from(n), &f), LanAction::Consumed);
    }
    // per_client = 4: the newest four are kept.
    let held = e.ipv6_addresses(mac(1));
    assert_eq!(held.len(), 4);
    assert!(held.contains(&prefix().with_iid(0x1000 + 19)));
    // Off-link addresses are never learnt.
    let off = ip("2001:db8:bad::7");
    let dad = Repr::NeighborSolicit {
        target: off,
        options: vec![],
    };
    let f = nd(
        mac(2),
        Ipv6Addr::UNSPECIFIED,
        crate::wire::ipv6::solicited_node(off),
        &dad,
    );
    lan(&mut e, T0, &f);
    assert!(e.ipv6_addresses(mac(2)).is_empty());
    assert!(e.ipv6_status().unwrap().addresses_refused >= 1);
    // Idle addresses are forgotten by housekeeping after an hour.
    e.handle_timeout(T0 + 3_700_000);
    assert!(e.ipv6_addresses(mac(1)).is_empty());
}

#[test]
fn shutdown_sends_a_final_ra_with_router_lifetime_zero() {
    let mut e = engine();
    e.shutdown(T0 + 1000, false);
    let out = sent(&mut e);
    assert_eq!(out.len(), 1);
    match nd_of(&out[0].1, &out[0].2) {
        Repr::RouterAdvert {
            router_lifetime, ..
        } => assert_eq!(router_lifetime, 0),
        r => panic!("{r:?}"),
    }
}

#[test]
fn session_events_carry_the_guests_addresses_in_the_prefix() {
    let mut e = engine();
    let a = ip("2001:db8:1::a");
    dad(&mut e, mac(1), link_local(mac(1)));
    guest(&mut e, 1, a, true);
    for n in 2..=5u16 {
        dad(
            &mut e,
            mac(1),
            Ipv6Addr::from(u128::from(a) + u128::from(n)),
        );
    }
    let mut started = None;
    while let Some(ev) = e.poll_event() {
        if let Event::SessionStarted(r) = ev {
            started = Some(r);
        }
    }
    // The per-client bound is 4 here: the link-local address stays, the
    // prefix ones are reported, at most SESSION_IPV6_MAX of them.
    let r = started.unwrap();
    assert!(!r.ipv6.is_empty() && r.ipv6.len() <= SESSION_IPV6_MAX);
    assert!(r.ipv6.iter().all(|x| prefix().contains(*x)));
    let ended = e
        .logout(mac(1), crate::session::EndReason::UserRequest, T0)
        .unwrap();
    assert!(ended.ipv6.is_empty(), "filled in as the event leaves");
    let Some(Event::SessionEnded(s)) = e.poll_event() else {
        panic!("a SessionEnded event")
    };
    assert_eq!(s.ipv6, r.ipv6);
}

// DNS over IPv6 before login: tracked like IPv4 (dataplane/dns.rs).

const DNS6: &str = "2001:db8:1::53";
const GARDEN6: &str = "2001:db8:100::10";

/// A DNS message (hickory-proto, an independent codec): a query when
/// `records` is `None`, else an answer carrying them.
fn dns_msg(id: u16, name: &str, qtype: u16, records: Option<Vec<(&str, &str)>>) -> Vec<u8> {
    use hickory_proto::op::{Message as HMessage, MessageType, OpCode, Query};
    use hickory_proto::rr::{rdata, Name, RData, Record, RecordType};
    let kind = if records.is_some() {
        MessageType::Response
    } else {
        MessageType::Query
    };
    let mut m = HMessage::new(id, kind, OpCode::Query);
    let qname = Name::from_ascii(name).unwrap();
    m.add_query(Query::query(qname, RecordType::from(qtype)));
    for (owner, addr) in records.unwrap_or_default() {
        let data = match addr.parse::<core::net::IpAddr>().unwrap() {
            core::net::IpAddr::V4(a) => RData::A(rdata::A(a)),
            core::net::IpAddr::V6(a) => RData::AAAA(rdata::AAAA(a)),
        };
        m.add_answer(Record::from_rdata(
            Name::from_ascii(owner).unwrap(),
            300,
            data,
        ));
    }
    m.to_vec().unwrap()
}

/// An engine whose garden has `*.garden.test`, guest 1 at `a`, not logged in.
fn garden_engine(a: Ipv6Addr) -> Engine {
    let mut e = engine();
    e.intercept.settings.walled_suffixes = vec!["garden.test".into()];
    guest(&mut e, 1, a, false);
    e
}

/// Guest 1 at `a` asks DNS6 from port 5000 with id 9; returns the port and
/// id lassi put on the query it forwarded.
fn ask6(e: &mut Engine, a: Ipv6Addr, name: &str, qtype: u16) -> (u16, u16) {
    let q = dns_msg(9, name, qtype, None);
    let udp = crate::wire::ipv6::udp_datagram(a, ip(DNS6), 5000, 53, &q);
    let mut f = frame(mac(1), a, ip(DNS6), NEXT_UDP, udp);
    assert_eq!(
        e.from_lan(T0, &VnetHdr::default(), &mut f),
        LanAction::ToTun
    );
    let p = &f[14..];
    let s = crate::wire::ipv6::parse(p).unwrap();
    let u = s.upper(p);
    assert_eq!(
        crate::wire::ipv6::upper_checksum(a, ip(DNS6), NEXT_UDP, u),
        0
    );
    let port = u16::from_be_bytes([u[0], u[1]]);
    let id = u16::from_be_bytes([u[8], u[9]]);
    assert!(port != 5000 && id != 9, "lassi's own port and id go out");
    assert_eq!(&u[10..], &q[2..], "the rest of the query is untouched");
    (port, id)
}

/// An answer from `src`:53 to `a`:`port` as the TUN device delivers it.
fn answer6(src: &str, a: Ipv6Addr, port: u16, msg: &[u8]) -> Vec<u8> {
    let udp = crate::wire::ipv6::udp_datagram(ip(src), a, 53, port, msg);
    frame(gw(), ip(src), a, NEXT_UDP, udp)[14..].to_vec()
}

#[test]
fn dns_over_ipv6_before_login_teaches_the_garden_a_and_aaaa() {
    let a = ip("2001:db8:1::a");
    let mut e = garden_engine(a);
    let web = ip(GARDEN6);
    assert!(!e.intercept.walled6(web, T0));
    let (port, id) = ask6(&mut e, a, "www.garden.test", 28);
    let msg = dns_msg(
        id,
        "www.garden.test",
        28,
        Some(vec![("www.garden.test", GARDEN6)]),
    );
    let mut p = answer6(DNS6, a, port, &msg);
    assert_eq!(tun(&mut e, &mut p), TunAction::ToLan(mac(1)));
    // The guest gets its own port and id back, with a valid checksum.
    let s = crate::wire::ipv6::parse(&p).unwrap();
    let u = s.upper(&p);
    assert_eq!(
        (
            u16::from_be_bytes([u[2], u[3]]),
            u16::from_be_bytes([u[8], u[9]])
        ),
        (5000, 9)
    );
    assert_eq!(
        crate::wire::ipv6::upper_checksum(ip(DNS6), a, NEXT_UDP, u),
        0
    );
    assert!(e.intercept.walled6(web, T0), "the AAAA answer opened {web}");
    let f = tcp_frame(mac(1), a, web, 443, 0x02);
    assert_eq!(lan(&mut e, T0, &f), LanAction::ToTun);
    // An A question over IPv6 teaches the IPv4 address.
    let (port, id) = ask6(&mut e, a, "cdn.garden.test", 1);
    let msg = dns_msg(
        id,
        "cdn.garden.test",
        1,
        Some(vec![("cdn.garden.test", "198.51.100.10")]),
    );
    assert_eq!(
        tun(&mut e, &mut answer6(DNS6, a, port, &msg)),
        TunAction::ToLan(mac(1))
    );
    assert!(e.intercept.walled(Ipv4Addr::new(198, 51, 100, 10), T0));
    assert_eq!(e.snapshot(T0).walled_garden_learnt, 2);
    assert_eq!(e.snapshot(T0).dns_unmatched_answers, 0);
}

#[test]
fn forged_and_unsolicited_dns_answers_over_ipv6_teach_nothing_and_are_counted() {
    let a = ip("2001:db8:1::a");
    let mut e = garden_engine(a);
    let evil = "2001:db8:100::66";
    let records = || Some(vec![("www.garden.test", evil)]);
    // Unsolicited: nobody asked.
    let msg = dns_msg(4242, "www.garden.test", 28, records());
    let mut p = answer6(DNS6, a, 33333, &msg);
    assert_eq!(tun(&mut e, &mut p), TunAction::ToLan(mac(1)), "delivered");
    // The guest asked, and an accomplice answers what the guest saw (its
    // own port 5000 and id 9): not what lassi sent.
    let (port, id) = ask6(&mut e, a, "www.garden.test", 28);
    let msg = dns_msg(9, "www.garden.test", 28, records());
    assert_eq!(
        tun(&mut e, &mut answer6(DNS6, a, 5000, &msg)),
        TunAction::ToLan(mac(1))
    );
    // The right port and id from another address: not DNS of a server
    // handed out, dropped.
    let msg = dns_msg(id, "www.garden.test", 28, records());
    let mut p = answer6("2001:db8:100::99", a, port, &msg);
    assert_eq!(
        tun(&mut e, &mut p),
        TunAction::Drop(DropReason::Unauthorized)
    );
    // Another question under the right id and port.
    let other = dns_msg(
        id,
        "evil.garden.test",
        28,
        Some(vec![("evil.garden.test", evil)]),
    );
    assert_eq!(
        tun(&mut e, &mut answer6(DNS6, a, port, &other)),
        TunAction::ToLan(mac(1))
    );
    assert!(!e.intercept.walled6(ip(evil), T0));
    assert_eq!(e.snapshot(T0).walled_garden_learnt, 0);
    assert_eq!(e.snapshot(T0).dns_unmatched_answers, 3);
    // A guest's packet claiming to come from the DNS server never gets in.
    let q = dns_msg(9, "www.garden.test", 28, records());
    let udp = crate::wire::ipv6::udp_datagram(ip(DNS6), a, 53, 5000, &q);
    guest(&mut e, 2, ip("2001:db8:1::b"), false);
    let f = frame(mac(2), ip(DNS6), a, NEXT_UDP, udp);
    assert_eq!(
        lan(&mut e, T0, &f),
        LanAction::Drop(DropReason::Ipv6Spoofed)
    );
    // The real answer still matches, once.
    let msg = dns_msg(
        id,
        "www.garden.test",
        28,
        Some(vec![("www.garden.test", GARDEN6)]),
    );
    assert_eq!(
        tun(&mut e, &mut answer6(DNS6, a, port, &msg)),
        TunAction::ToLan(mac(1))
    );
    assert!(e.intercept.walled6(ip(GARDEN6), T0));
    assert!(!e.intercept.walled6(ip(evil), T0));
    assert_eq!(
        tun(&mut e, &mut answer6(DNS6, a, port, &msg)),
        TunAction::ToLan(mac(1))
    );
    assert_eq!(
        e.snapshot(T0).dns_unmatched_answers,
        4,
        "a replay matches nothing"
    );
}

#[test]
fn an_ipv6_dns_answer_after_login_gets_the_guests_port_and_id_back() {
    let a = ip("2001:db8:1::a");
    let mut e = garden_engine(a);
    let (port, id) = ask6(&mut e, a, "www.other.test", 28);
    e.authorize(mac(1), Default::default(), T0).unwrap();
    let msg = dns_msg(
        id,
        "www.other.test",
        28,
        Some(vec![("www.other.test", GARDEN6)]),
    );
    let mut p = answer6(DNS6, a, port, &msg);
    assert_eq!(tun(&mut e, &mut p), TunAction::ToLan(mac(1)));
    let s = crate::wire::ipv6::parse(&p).unwrap();
    let u = s.upper(&p);
    assert_eq!(
        (
            u16::from_be_bytes([u[2], u[3]]),
            u16::from_be_bytes([u[8], u[9]])
        ),
        (5000, 9)
    );
    assert_eq!(
        crate::wire::ipv6::upper_checksum(ip(DNS6), a, NEXT_UDP, u),
        0
    );
    assert_eq!(
        e.snapshot(T0).walled_garden_learnt,
        0,
        "after login nothing is learnt"
    );
}
