//! Tests drive the server with real client messages built by `dhcproto` and
//! check the decoded replies; one vector test checks an OFFER byte for byte.

use super::*;
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};

const T0: UnixMillis = 1_700_000_000_000;
const SEC: u64 = 1000;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

const STATIC_OUT: u32 = 0xAA; // static lease outside the range
const STATIC_IN: u32 = 0xAB; // static lease inside the range

fn settings() -> DhcpSettings {
    DhcpSettings {
        server_ip: ip("10.1.0.1"),
        netmask: ip("255.255.255.0"),
        dns: vec![ip("10.1.0.1"), ip("9.9.9.9")],
        domain: Some("hotspot.lan".into()),
        mtu: Some(1500),
        lease_secs: 3600,
        pool_start: ip("10.1.0.10"),
        pool_end: ip("10.1.0.250"),
        static_leases: vec![
            (mac(STATIC_OUT), ip("10.1.0.5")),
            (mac(STATIC_IN), ip("10.1.0.20")),
        ],
        captive_portal_uri: Some("https://portal.example/api".into()),
        offer_hold_secs: 30,
        unauthorized_lease_secs: 3600,
        new_client_rate: 0,
    }
}

fn server() -> DhcpServer {
    DhcpServer::new(settings(), Vec::new(), T0)
}

/// A client message as a real client would encode it.
fn build(
    kind: MessageType,
    m: MacAddr,
    xid: u32,
    ciaddr: Ipv4Addr,
    opts: Vec<DhcpOption>,
) -> Vec<u8> {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(xid, ciaddr, z, z, z, &m.0);
    msg.opts_mut().insert(DhcpOption::MessageType(kind));
    for o in opts {
        msg.opts_mut().insert(o);
    }
    msg.to_vec().unwrap()
}

fn discover(m: MacAddr) -> Vec<u8> {
    build(
        MessageType::Discover,
        m,
        0x1111,
        Ipv4Addr::UNSPECIFIED,
        vec![],
    )
}

fn select(m: MacAddr, want: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    build(
        MessageType::Request,
        m,
        0x2222,
        Ipv4Addr::UNSPECIFIED,
        vec![
            DhcpOption::RequestedIpAddress(want),
            DhcpOption::ServerIdentifier(server),
        ],
    )
}

fn init_reboot(m: MacAddr, want: Ipv4Addr) -> Vec<u8> {
    build(
        MessageType::Request,
        m,
        0x3333,
        Ipv4Addr::UNSPECIFIED,
        vec![DhcpOption::RequestedIpAddress(want)],
    )
}

fn renew(m: MacAddr, ciaddr: Ipv4Addr) -> Vec<u8> {
    build(MessageType::Request, m, 0x4444, ciaddr, vec![])
}

/// The kind of `s`'s reply to `msg` from `m` at `now` (it must answer).
fn reply_kind(s: &mut DhcpServer, now: UnixMillis, m: MacAddr, msg: &[u8]) -> ReplyKind {
    s.handle(now, m, msg).unwrap().reply.unwrap().kind
}

fn decode(r: &DhcpReply) -> Message {
    Message::from_bytes(&r.payload).unwrap()
}

fn opt(msg: &Message, code: OptionCode) -> Option<&DhcpOption> {
    msg.opts().get(code)
}

/// DISCOVER then SELECTING REQUEST; returns the bound address.
fn dora(s: &mut DhcpServer, now: UnixMillis, m: MacAddr) -> Ipv4Addr {
    let out = s.handle(now, m, &discover(m)).unwrap();
    let offered = decode(&out.reply.unwrap()).yiaddr();
    let out = s
        .handle(now, m, &select(m, offered, ip("10.1.0.1")))
        .unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(reply.kind, ReplyKind::Ack);
    assert!(matches!(out.event, Some(LeaseEvent::Bound { .. })));
    decode(&reply).yiaddr()
}

/// The tables never outgrow the pool plus the static leases, and the
/// occupancy count matches the tables.
fn check_invariants(s: &DhcpServer) {
    let bound = s.pool_size as usize + s.statics.len();
    assert!(s.slots.len() <= bound, "{} slots", s.slots.len());
    assert_eq!(s.by_mac.len(), s.slots.len());
    assert_eq!(
        s.offer_q.len() + s.lease_q.len() + s.free_q.len(),
        s.slots.len()
    );
    assert_eq!(s.decline_q.len(), s.declined.len());
    let kind_offers: usize = s.kind_offers.iter().map(|q| q.len()).sum();
    assert_eq!(kind_offers, s.offer_q.len());
    let dynamic_bound = s
        .slots
        .values()
        .filter(|sl| sl.state == SlotState::Bound && s.is_dynamic(sl.lease.ip))
        .count();
    assert_eq!(s.silent_q.len(), dynamic_bound);
    for &(heard, ip) in &s.silent_q {
        assert_eq!(s.slots[&ip].heard, heard);
    }
    let dynamic = s.slots.keys().filter(|ip| s.is_dynamic(**ip)).count() + s.declined.len();
    assert_eq!(dynamic as u32, s.taken);
    for (ip, slot) in &s.slots {
        assert_eq!(s.by_mac[&slot.lease.mac], *ip);
        if let Some(owner) = s.static_owner.get(ip) {
            assert_eq!(*owner, slot.lease.mac, "static {ip} held by another MAC");
        }
    }
}

#[test]
fn full_dora_with_every_option() {
    let mut s = server();
    let m = mac(1);
    let cid = vec![1, 2, 0, 0, 0, 0, 1];
    let payload = build(
        MessageType::Discover,
        m,
        0xdead_beef,
        Ipv4Addr::UNSPECIFIED,
        vec![
            DhcpOption::ClientIdentifier(cid.clone()),
            DhcpOption::Hostname("laptop".into()),
        ],
    );
    let out = s.handle(T0, m, &payload).unwrap();
    assert_eq!(out.event, None);
    let reply = out.reply.unwrap();
    assert_eq!(reply.kind, ReplyKind::Offer);
    // No broadcast flag, no ciaddr: unicast to yiaddr at chaddr.
    assert_eq!(reply.dst_mac, m);
    assert_eq!(reply.dst_ip, ip("10.1.0.10"));
    assert_eq!(reply.dst_port, 68);
    assert!(reply.payload.len() >= 300);

    let offer = decode(&reply);
    assert_eq!(offer.opcode(), Opcode::BootReply);
    assert_eq!(offer.xid(), 0xdead_beef);
    assert_eq!(offer.chaddr(), &m.0);
    assert_eq!(offer.yiaddr(), ip("10.1.0.10"));
    assert_eq!(offer.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(offer.giaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(!offer.flags().broadcast());
    let expect = |msg: &Message, kind: MessageType| {
        assert_eq!(msg.opts().msg_type(), Some(kind));
        assert_eq!(
            opt(msg, OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask(ip("255.255.255.0")))
        );
        assert_eq!(
            opt(msg, OptionCode::Router),
            Some(&DhcpOption::Router(vec![ip("10.1.0.1")]))
        );
        assert_eq!(
            opt(msg, OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![
                ip("10.1.0.1"),
                ip("9.9.9.9")
            ]))
        );
        assert_eq!(
            opt(msg, OptionCode::DomainName),
            Some(&DhcpOption::DomainName("hotspot.lan".into()))
        );
        assert_eq!(
            opt(msg, OptionCode::InterfaceMtu),
            Some(&DhcpOption::InterfaceMtu(1500))
        );
        assert_eq!(
            opt(msg, OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(3600))
        );
        assert_eq!(
            opt(msg, OptionCode::Renewal),
            Some(&DhcpOption::Renewal(1800))
        );
        assert_eq!(
            opt(msg, OptionCode::Rebinding),
            Some(&DhcpOption::Rebinding(3150))
        );
        assert_eq!(
            opt(msg, OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(ip("10.1.0.1")))
        );
        assert_eq!(
            opt(msg, OptionCode::CaptivePortal),
            Some(&DhcpOption::CaptivePortal(
                "https://portal.example/api".into()
            ))
        );
        assert_eq!(
            opt(msg, OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(cid.clone()))
        );
        assert_eq!(msg.opts().len(), 12);
    };
    expect(&offer, MessageType::Offer);
    assert_eq!(s.stats().offered, 1);

    let req = build(
        MessageType::Request,
        m,
        0xdead_bef0,
        Ipv4Addr::UNSPECIFIED,
        vec![
            DhcpOption::RequestedIpAddress(ip("10.1.0.10")),
            DhcpOption::ServerIdentifier(ip("10.1.0.1")),
            DhcpOption::ClientIdentifier(cid.clone()),
        ],
    );
    let now = T0 + 500;
    let out = s.handle(now, m, &req).unwrap();
    let expires = now + 3600 * SEC;
    assert_eq!(
        out.event,
        Some(LeaseEvent::Bound {
            mac: m,
            ip: ip("10.1.0.10"),
            expires,
            hostname: Some("laptop".into()),
        })
    );
    let reply = out.reply.unwrap();
    assert_eq!(reply.kind, ReplyKind::Ack);
    assert_eq!((reply.dst_mac, reply.dst_ip), (m, ip("10.1.0.10")));
    let ack = decode(&reply);
    assert_eq!(ack.xid(), 0xdead_bef0);
    assert_eq!(ack.yiaddr(), ip("10.1.0.10"));
    expect(&ack, MessageType::Ack);

    let lease = s.bound_lease(m).unwrap();
    assert_eq!(lease.ip, ip("10.1.0.10"));
    assert_eq!(lease.expires, expires);
    assert_eq!(lease.client_id.as_deref(), Some(&cid[..]));
    assert_eq!(s.owner_of(ip("10.1.0.10")), Some(m));
    assert_eq!(s.bound_leases().count(), 1);
    assert_eq!(s.next_expiry(), Some(expires));
    let st = s.stats();
    assert_eq!(
        (st.rx_discover, st.rx_request, st.tx_offer, st.tx_ack),
        (1, 1, 1, 1)
    );
    assert_eq!((st.bound, st.offered, st.pool_used), (1, 0, 1));
    assert_eq!(st.pool_size, 241 - 1); // 10..=250 minus static 10.1.0.20
    check_invariants(&s);
}

#[test]
fn broadcast_flag_gets_broadcast_reply() {
    let mut s = server();
    let m = mac(1);
    let z = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(7, z, z, z, z, &m.0);
    msg.set_flags(Flags::default().set_broadcast());
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    let reply = s
        .handle(T0, m, &msg.to_vec().unwrap())
        .unwrap()
        .reply
        .unwrap();
    assert_eq!(reply.dst_mac, MacAddr::BROADCAST);
    assert_eq!(reply.dst_ip, Ipv4Addr::BROADCAST);
    assert!(decode(&reply).flags().broadcast());
}

/// Hand-derived OFFER, checked byte for byte, then walked field by field
/// without dhcproto.
#[test]
fn offer_byte_vector() {
    let st = DhcpSettings {
        server_ip: ip("192.168.7.1"),
        netmask: ip("255.255.255.0"),
        dns: vec![ip("192.168.7.1")],
        domain: Some("lan".into()),
        mtu: Some(1400),
        lease_secs: 600,
        pool_start: ip("192.168.7.100"),
        pool_end: ip("192.168.7.199"),
        static_leases: vec![],
        captive_portal_uri: Some("https://p/".into()),
        offer_hold_secs: 30,
        unauthorized_lease_secs: 3600,
        new_client_rate: 0,
    };
    let mut s = DhcpServer::new(st, vec![], T0);
    let m = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    let z = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(0x0102_0304, z, z, z, z, &m.0);
    msg.set_flags(Flags::default().set_broadcast());
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    let reply = s
        .handle(T0, m, &msg.to_vec().unwrap())
        .unwrap()
        .reply
        .unwrap();

    let mut want: Vec<u8> = vec![
        2, 1, 6, 0, // op BOOTREPLY, htype Ethernet, hlen 6, hops
        0x01, 0x02, 0x03, 0x04, // xid
        0, 0, // secs
        0x80, 0x00, // flags: broadcast
        0, 0, 0, 0, // ciaddr
        192, 168, 7, 100, // yiaddr
        0, 0, 0, 0, // siaddr
        0, 0, 0, 0, // giaddr
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // chaddr
    ];
    want.extend([0u8; 10]); // chaddr padding
    want.extend([0u8; 64 + 128]); // sname, file
    want.extend([99, 130, 83, 99]); // magic cookie
    want.extend([1, 4, 255, 255, 255, 0]); // subnet mask
    want.extend([3, 4, 192, 168, 7, 1]); // router
    want.extend([6, 4, 192, 168, 7, 1]); // DNS
    want.extend([15, 3, b'l', b'a', b'n']); // domain
    want.extend([26, 2, 0x05, 0x78]); // MTU 1400
    want.extend([51, 4, 0, 0, 0x02, 0x58]); // lease 600
    want.extend([53, 1, 2]); // DHCPOFFER
    want.extend([54, 4, 192, 168, 7, 1]); // server id
    want.extend([58, 4, 0, 0, 0x01, 0x2c]); // T1 300
    want.extend([59, 4, 0, 0, 0x02, 0x0d]); // T2 525
    want.extend([114, 10]);
    want.extend(b"https://p/"); // captive portal
    want.push(255); // end
    assert!(want.len() > 300); // so no padding after End
    assert_eq!(reply.payload, want);

    // Independent walk of the bytes.
    let b = &reply.payload;
    assert_eq!((b[0], b[1], b[2]), (2, 1, 6));
    assert_eq!(u32::from_be_bytes([b[4], b[5], b[6], b[7]]), 0x0102_0304);
    assert_eq!(u16::from_be_bytes([b[10], b[11]]) & 0x8000, 0x8000);
    assert_eq!(
        Ipv4Addr::new(b[16], b[17], b[18], b[19]),
        ip("192.168.7.100")
    );
    assert_eq!(&b[28..34], &m.0);
    assert_eq!(&b[236..240], &[99, 130, 83, 99]);
    let mut tlv = std::collections::BTreeMap::new();
    let mut i = 240;
    while b[i] != 255 {
        if b[i] == 0 {
            i += 1;
            continue;
        }
        let (code, len) = (b[i], b[i + 1] as usize);
        tlv.insert(code, b[i + 2..i + 2 + len].to_vec());
        i += 2 + len;
    }
    assert!(b[i + 1..].iter().all(|&x| x == 0));
    let be32 = |v: &Vec<u8>| u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    assert_eq!(tlv[&53], vec![2]);
    assert_eq!(be32(&tlv[&51]), 600);
    assert_eq!(be32(&tlv[&58]), 300);
    assert_eq!(be32(&tlv[&59]), 525);
    assert_eq!(tlv[&54], vec![192, 168, 7, 1]);
    assert_eq!(tlv[&114], b"https://p/".to_vec());
    assert_eq!(tlv.len(), 11);
}

#[test]
fn lease_times_are_ordered() {
    for l in [MIN_LEASE_SECS, 61, 77, 3600, 86_400, u32::MAX] {
        let (lease, t1, t2) = lease_times(l);
        assert!(t1 < t2 && t2 < lease, "{l}");
    }
    // Too short a lease is raised so T1 < T2 < lease still holds.
    let mut st = settings();
    st.lease_secs = 1;
    assert!(st.validate().is_err());
    let mut s = DhcpServer::new(st, vec![], T0);
    let out = s.handle(T0, mac(1), &discover(mac(1))).unwrap();
    let offer = decode(&out.reply.unwrap());
    assert_eq!(
        opt(&offer, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(MIN_LEASE_SECS))
    );
}

#[test]
fn static_leases_inside_and_outside_the_range() {
    let mut s = server();
    assert_eq!(dora(&mut s, T0, mac(STATIC_OUT)), ip("10.1.0.5"));
    assert_eq!(dora(&mut s, T0, mac(STATIC_IN)), ip("10.1.0.20"));
    // Nobody else gets a static address, even by asking.
    let m = mac(1);
    assert_eq!(
        reply_kind(&mut s, T0, m, &init_reboot(m, ip("10.1.0.20"))),
        ReplyKind::Nak
    );
    let want = build(
        MessageType::Discover,
        m,
        1,
        Ipv4Addr::UNSPECIFIED,
        vec![DhcpOption::RequestedIpAddress(ip("10.1.0.20"))],
    );
    let offer = decode(&s.handle(T0, m, &want).unwrap().reply.unwrap());
    assert_ne!(offer.yiaddr(), ip("10.1.0.20"));
    // A static client asking for another address is refused.
    assert_eq!(
        reply_kind(
            &mut s,
            T0,
            mac(STATIC_IN),
            &init_reboot(mac(STATIC_IN), ip("10.1.0.99")),
        ),
        ReplyKind::Nak
    );
    check_invariants(&s);
}

#[test]
fn affinity_after_expiry() {
    let mut s = server();
    let a = mac(1);
    let ip_a = dora(&mut s, T0, a);
    let expires = s.bound_lease(a).unwrap().expires;
    assert_eq!(s.next_expiry(), Some(expires));
    assert!(s.expire(expires - 1).is_empty());
    assert_eq!(
        s.expire(expires),
        vec![LeaseEvent::Expired { mac: a, ip: ip_a }]
    );
    assert!(s.bound_lease(a).is_none());
    assert_eq!(s.owner_of(ip_a), None);
    assert_eq!(s.next_expiry(), None);
    // Another client takes a fresh address, not A's remembered one.
    let b = mac(2);
    assert_ne!(dora(&mut s, expires + SEC, b), ip_a);
    // A comes back a day later and gets its old address.
    assert_eq!(dora(&mut s, expires + 86_400 * SEC, a), ip_a);
    check_invariants(&s);
}

#[test]
fn init_reboot_ack_and_nak() {
    let mut s = server();
    let a = mac(1);
    let ip_a = dora(&mut s, T0, a);
    // A reboots and asks for its address: ACK, lease extended.
    let now = T0 + 100 * SEC;
    let out = s.handle(now, a, &init_reboot(a, ip_a)).unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(reply.kind, ReplyKind::Ack);
    assert_eq!(decode(&reply).yiaddr(), ip_a);
    assert_eq!(
        out.event,
        Some(LeaseEvent::Renewed {
            mac: a,
            ip: ip_a,
            expires: now + 3600 * SEC
        })
    );
    // B asks for A's address: NAK, broadcast.
    let b = mac(2);
    let out = s.handle(now, b, &init_reboot(b, ip_a)).unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(reply.kind, ReplyKind::Nak);
    assert_eq!(
        (reply.dst_mac, reply.dst_ip),
        (MacAddr::BROADCAST, Ipv4Addr::BROADCAST)
    );
    let nak = decode(&reply);
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
    assert_eq!(nak.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(opt(&nak, OptionCode::AddressLeaseTime).is_none());
    assert_eq!(out.event, None);
    // Wrong subnet (moved from another network): NAK.
    assert_eq!(
        reply_kind(&mut s, now, b, &init_reboot(b, ip("192.168.1.50"))),
        ReplyKind::Nak
    );
    // Outside the pool on our subnet, not static: NAK. The server address: NAK.
    for bad in ["10.1.0.3", "10.1.0.1", "10.1.0.255", "10.1.0.0"] {
        assert_eq!(
            reply_kind(&mut s, now, b, &init_reboot(b, ip(bad))),
            ReplyKind::Nak,
            "{bad}"
        );
    }
    // A free pool address we have no record of (e.g. state lost): ACK.
    let out = s.handle(now, b, &init_reboot(b, ip("10.1.0.77"))).unwrap();
    assert_eq!(out.reply.unwrap().kind, ReplyKind::Ack);
    assert!(matches!(out.event, Some(LeaseEvent::Bound { .. })));
    // B, now bound, cannot switch to another address while bound.
    assert_eq!(
        reply_kind(&mut s, now, b, &init_reboot(b, ip("10.1.0.78"))),
        ReplyKind::Nak
    );
    assert_eq!(s.stats().tx_nak, 7);
    check_invariants(&s);
}

#[test]
fn renew_via_ciaddr_is_unicast() {
    let mut s = server();
    let a = mac(1);
    let ip_a = dora(&mut s, T0, a);
    let now = T0 + 1800 * SEC;
    let out = s.handle(now, a, &renew(a, ip_a)).unwrap();
    let reply = out.reply.unwrap();
    assert_eq!(reply.kind, ReplyKind::Ack);
    assert_eq!((reply.dst_mac, reply.dst_ip), (a, ip_a));
    let ack = decode(&reply);
    assert_eq!(ack.ciaddr(), ip_a);
    assert_eq!(ack.yiaddr(), ip_a);
    assert_eq!(ack.xid(), 0x4444);
    let expires = now + 3600 * SEC;
    assert_eq!(
        out.event,
        Some(LeaseEvent::Renewed {
            mac: a,
            ip: ip_a,
            expires
        })
    );
    assert_eq!(s.bound_lease(a).unwrap().expires, expires);
    assert_eq!(s.next_expiry(), Some(expires));
    // Renewing an address that is someone else's: NAK.
    let b = mac(2);
    assert_eq!(reply_kind(&mut s, now, b, &renew(b, ip_a)), ReplyKind::Nak);
    check_invariants(&s);
}

#[test]
fn request_for_another_server_withdraws_offer() {
    let mut s = server();
    let a = mac(1);
    let offered = decode(&s.handle(T0, a, &discover(a)).unwrap().reply.unwrap()).yiaddr();
    assert_eq!(s.stats().offered, 1);
    let out = s
        .handle(T0, a, &select(a, offered, ip("10.1.0.254")))
        .unwrap();
    assert_eq!(out, DhcpOutcome::default());
    let st = s.stats();
    assert_eq!((st.offered, st.pool_used, st.other_server), (0, 0, 1));
    assert_eq!(s.next_expiry(), None);
    // The address is free again.
    let b = mac(2);
    let want = build(
        MessageType::Discover,
        b,
        1,
        Ipv4Addr::UNSPECIFIED,
        vec![DhcpOption::RequestedIpAddress(offered)],
    );
    let offer = decode(&s.handle(T0, b, &want).unwrap().reply.unwrap());
    assert_eq!(offer.yiaddr(), offered);
    check_invariants(&s);
}

#[test]
fn held_offer_is_not_taken_and_a_select_after_its_hold_is_nak() {
    let mut st = settings();
    st.pool_end = ip("10.1.0.10"); // a pool of one
    let mut s = DhcpServer::new(st, vec![], T0);
    let (a, b) = (mac(1), mac(2));
    let offered = decode(&s.handle(T0, a, &discover(a)).unwrap().reply.unwrap()).yiaddr();
    // While A's offer is held, B gets nothing rather than A's address.
    assert_eq!(
        s.handle(T0 + 29 * SEC, b, &discover(b)),
        Err(DhcpError::PoolExhausted)
    );
    // Once the hold is over the address is B's, and A's late SELECT is NAKed.
    let out = s.handle(T0 + 31 * SEC, b, &discover(b)).unwrap();
    assert_eq!(decode(&out.reply.unwrap()).yiaddr(), offered);
    assert_eq!(
        reply_kind(
            &mut s,
            T0 + 32 * SEC,
            a,
            &select(a, offered, ip("10.1.0.1"))
        ),
        ReplyKind::Nak
    );
    check_invariants(&s);
}

#[test]
fn release_frees_and_remembers() {
    let mut s = server();
    let a = mac(1);
    let ip_a = dora(&mut s, T0, a);
    let rel = build(
        MessageType::Release,
        a,
        9,
        ip_a,
        vec![DhcpOption::ServerIdentifier(ip("10.1.0.1"))],
    );
    let out = s.handle(T0 + SEC, a, &rel).unwrap();
    assert_eq!(out.reply, None);
    assert_eq!(out.event, Some(LeaseEvent::Released { mac: a, ip: ip_a }));
    assert!(s.bound_lease(a).is_none());
    assert_eq!(s.owner_of(ip_a), None);
    // A second RELEASE does nothing.
    assert_eq!(s.handle(T0 + SEC, a, &rel).unwrap(), DhcpOutcome::default());
    // Someone else's address cannot be released by A.
    let b = mac(2);
    let ip_b = dora(&mut s, T0, b);
    let forged = build(MessageType::Release, a, 9, ip_b, vec![]);
    assert_eq!(s.handle(T0, a, &forged).unwrap().event, None);
    assert_eq!(s.owner_of(ip_b), Some(b));
    // A gets its address back.
    assert_eq!(dora(&mut s, T0 + 2 * SEC, a), ip_a);
    // Operator release.
    assert_eq!(
        s.release(a),
        Some(LeaseEvent::Released { mac: a, ip: ip_a })
    );
    assert_eq!(s.release(a), None);
    assert_eq!(s.release(mac(99)), None);
    check_invariants(&s);
}

#[test]
fn decline_keeps_address_out() {
    let mut s = server();
    let a = mac(1);
    let ip_a = dora(&mut s, T0, a);
    let dec = build(
        MessageType::Decline,
        a,
        5,
        Ipv4Addr::UNSPECIFIED,
        vec![
            DhcpOption::RequestedIpAddress(ip_a),
            DhcpOption::ServerIdentifier(ip("10.1.0.1")),
        ],
    );
    let out = s.handle(T0, a, &dec).unwrap();
    assert_eq!(out.reply, None);
    assert_eq!(out.event, Some(LeaseEvent::Declined { mac: a, ip: ip_a }));
    assert!(s.bound_lease(a).is_none());
    let st = s.stats();
    assert_eq!(
        (st.declines, st.quarantined, st.pool_used, st.bound),
        (1, 1, 1, 0)
    );
    // A gets another address; nobody gets the declined one, even by asking.
    assert_ne!(dora(&mut s, T0, a), ip_a);
    let b = mac(2);
    let want = build(
        MessageType::Discover,
        b,
        1,
        Ipv4Addr::UNSPECIFIED,
        vec![DhcpOption::RequestedIpAddress(ip_a)],
    );
    assert_ne!(
        decode(&s.handle(T0, b, &want).unwrap().reply.unwrap()).yiaddr(),
        ip_a
    );
    assert_eq!(
        reply_kind(&mut s, T0, b, &init_reboot(b, ip_a)),
        ReplyKind::Nak
    );
    // After the quarantine it is usable again.
    let later = T0 + u64::from(DECLINE_QUARANTINE_SECS) * SEC;
    s.expire(later);
    assert_eq!(s.stats().quarantined, 0);
    assert_eq!(
        reply_kind(&mut s, later, b, &init_reboot(b, ip_a)),
        ReplyKind::Ack
    );
    check_invariants(&s);
}

#[test]
fn inform_gets_options_without_lease() {
    let mut s = server();
    let m = mac(7);
    let ci = ip("10.1.0.3");
    let out = s
        .handle(T0, m, &build(MessageType::Inform, m, 42, ci, vec![]))
        .unwrap();
    assert_eq!(out.event, None);
    let reply = out.reply.unwrap();
    assert_eq!(reply.kind, ReplyKind::Ack);
    assert_eq!((reply.dst_mac, reply.dst_ip), (m, ci));
    let ack = decode(&reply);
    assert_eq!(ack.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.ciaddr(), ci);
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    for code in [
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::ServerIdentifier,
        OptionCode::CaptivePortal,
    ] {
        assert!(opt(&ack, code).is_some(), "{code:?}");
    }
    for code in [
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ] {
        assert!(opt(&ack, code).is_none(), "{code:?}");
    }
    assert_eq!(s.bound_leases().count(), 0);
    // INFORM from another network is not ours.
    let other = build(MessageType::Inform, m, 42, ip("172.16.0.9"), vec![]);
    assert_eq!(s.handle(T0, m, &other), Err(DhcpError::NotForUs));
}

/// Deterministic pseudo-random numbers (xorshift), so tests need no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn discover_flood_stays_bounded_and_spares_known_clients() {
    let mut s = server();
    let known = mac(1);
    let ip_known = dora(&mut s, T0, known);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut now = T0;
    for i in 0..10_000u32 {
        now += 1; // 10 000 packets in 10 s: every offer still held
        let r = rng.next();
        let m = MacAddr([
            (r as u8 & 0xfe) | 0x02, // unicast, locally administered
            (r >> 8) as u8,
            (r >> 16) as u8,
            (r >> 24) as u8,
            (r >> 32) as u8,
            (r >> 40) as u8,
        ]);
        assert_eq!(reply_kind(&mut s, now, m, &discover(m)), ReplyKind::Offer);
        if i % 1000 == 0 {
            check_invariants(&s);
        }
    }
    check_invariants(&s);
    let st = s.stats();
    // One kind of client holds at most an eighth of the pool in offers:
    // the flood recycles its own, the rest of the pool stays free.
    assert!(st.offered <= st.pool_size / 8, "{st:?}");
    assert!(st.recycled_offers > 9000, "{st:?}");
    assert_eq!(st.dropped_exhausted, 0);
    // The bound client still renews; its lease was never touched.
    assert_eq!(s.owner_of(ip_known), Some(known));
    assert_eq!(
        reply_kind(&mut s, now, known, &renew(known, ip_known)),
        ReplyKind::Ack
    );
    // Static clients still get their address.
    assert_eq!(dora(&mut s, now, mac(STATIC_IN)), ip("10.1.0.20"));
    assert_eq!(dora(&mut s, now, mac(STATIC_OUT)), ip("10.1.0.5"));
    // A new client gets an offer (reclaimed) and can complete DORA.
    let fresh = dora(&mut s, now, mac(2));
    assert_eq!(s.owner_of(fresh), Some(mac(2)));
    // Offers lapse after the hold time and the tables shrink back.
    s.expire(now + 31 * SEC);
    assert_eq!(s.slots.len(), 4);
    check_invariants(&s);
}

#[test]
fn exhausted_pool_of_bound_leases_refuses_newcomers() {
    let mut st = settings();
    st.pool_end = ip("10.1.0.12"); // three addresses
    let mut s = DhcpServer::new(st, vec![], T0);
    for n in 1..=3 {
        dora(&mut s, T0, mac(n));
    }
    let newcomer = mac(50);
    assert_eq!(
        s.handle(T0, newcomer, &discover(newcomer)),
        Err(DhcpError::PoolExhausted)
    );
    assert_eq!(s.stats().dropped_exhausted, 1);
    // A static client is unaffected by exhaustion.
    assert_eq!(dora(&mut s, T0, mac(STATIC_OUT)), ip("10.1.0.5"));
    // Once a lease expires, its address can be reclaimed by the newcomer.
    s.expire(T0 + 3600 * SEC);
    assert_eq!(
        reply_kind(&mut s, T0 + 3600 * SEC, newcomer, &discover(newcomer)),
        ReplyKind::Offer
    );
    assert_eq!(s.stats().reclaimed, 1);
    check_invariants(&s);
}

#[test]
fn malformed_input_is_an_error_never_a_panic() {
    let mut s = server();
    let m = mac(1);
    let good = discover(m);
    // Truncated at every length.
    for len in 0..good.len() {
        let r = s.handle(T0, m, &good[..len]);
        if len < 240 {
            assert!(matches!(r, Err(DhcpError::Malformed(_))), "len {len}");
        }
    }
    // Every byte of a valid message set to a few nasty values.
    for i in 0..good.len() {
        for v in [0x00, 0x01, 0x7f, 0xff] {
            let mut bad = good.clone();
            bad[i] = v;
            let _ = s.handle(T0, m, &bad);
        }
    }
    // Random garbage, with and without a valid header in front.
    let mut rng = Rng(12345);
    for n in 0..2000 {
        let len = (rng.next() % 600) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if n % 2 == 0 && len > 240 {
            bytes[..240].copy_from_slice(&good[..240]);
        }
        let _ = s.handle(T0, m, &bytes);
        check_invariants(&s);
    }
    // Specific refusals.
    let mut bad = good.clone();
    bad[2] = 16; // hlen
    assert!(matches!(
        s.handle(T0, m, &bad),
        Err(DhcpError::Malformed(_))
    ));
    let mut bad = good.clone();
    bad[236] = 0; // cookie
    assert!(matches!(
        s.handle(T0, m, &bad),
        Err(DhcpError::Malformed(_))
    ));
    let mut bad = good.clone();
    bad[0] = 2; // BOOTREPLY on the LAN
    assert_eq!(s.handle(T0, m, &bad), Err(DhcpError::NotForUs));
    let no_type = {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut msg = Message::new_with_id(1, z, z, z, z, &m.0);
        msg.opts_mut().insert(DhcpOption::Hostname("x".into()));
        msg.to_vec().unwrap()
    };
    assert!(matches!(
        s.handle(T0, m, &no_type),
        Err(DhcpError::Malformed(_))
    ));
    let offer_from_client = build(MessageType::Offer, m, 1, Ipv4Addr::UNSPECIFIED, vec![]);
    assert_eq!(
        s.handle(T0, m, &offer_from_client),
        Err(DhcpError::Unsupported(2))
    );
    let bare_request = build(MessageType::Request, m, 1, Ipv4Addr::UNSPECIFIED, vec![]);
    assert!(matches!(
        s.handle(T0, m, &bare_request),
        Err(DhcpError::Malformed(_))
    ));
    assert!(s.stats().dropped_malformed > 240);
    assert!(!DhcpError::PoolExhausted.to_string().is_empty());
}

#[test]
fn chaddr_must_match_ethernet_source() {
    let mut s = server();
    let (victim, attacker) = (mac(1), mac(2));
    let r = s.handle(T0, attacker, &discover(victim));
    assert_eq!(
        r,
        Err(DhcpError::Spoofed {
            chaddr: victim,
            src_mac: attacker
        })
    );
    assert_eq!(s.stats().dropped_spoofed, 1);
    assert_eq!(s.stats().offered, 0);
    // Relayed messages are refused and counted.
    let z = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(1, z, z, z, ip("10.9.9.9"), &victim.0);
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    assert_eq!(
        s.handle(T0, victim, &msg.to_vec().unwrap()),
        Err(DhcpError::Relayed(ip("10.9.9.9")))
    );
    assert_eq!(s.stats().dropped_relayed, 1);
}

#[test]
fn restored_leases_are_honoured_and_filtered() {
    let rec = |m: u32, a: &str, expires: UnixMillis| LeaseRecord {
        mac: mac(m),
        ip: ip(a),
        expires,
        hostname: Some(format!("h{m}")),
    };
    let later = T0 + 1000 * SEC;
    let restored = vec![
        rec(1, "10.1.0.50", later),         // bound: kept
        rec(2, "10.1.0.60", T0 - SEC),      // expired: affinity only
        rec(3, "192.168.0.5", later),       // other network
        rec(4, "10.1.0.20", later),         // another MAC's static address
        rec(STATIC_IN, "10.1.0.70", later), // static MAC, wrong address
        rec(5, "10.1.0.50", later - SEC),   // duplicate address, expires sooner
        rec(6, "10.1.0.1", later),          // the server
        rec(STATIC_OUT, "10.1.0.5", later), // static MAC, its address: kept
    ];
    let mut s = DhcpServer::new(settings(), restored, T0);
    check_invariants(&s);
    let l = s.bound_lease(mac(1)).unwrap();
    assert_eq!((l.ip, l.expires), (ip("10.1.0.50"), later));
    assert_eq!(l.hostname.as_deref(), Some("h1"));
    assert_eq!(s.owner_of(ip("10.1.0.5")), Some(mac(STATIC_OUT)));
    assert_eq!(s.bound_leases().count(), 2);
    for m in [2, 3, 4, 5, 6, STATIC_IN] {
        assert!(s.bound_lease(mac(m)).is_none(), "{m}");
    }
    assert_eq!(s.next_expiry(), Some(later));
    // The restored client renews; the affinity client gets its address back.
    let out = s
        .handle(T0, mac(1), &renew(mac(1), ip("10.1.0.50")))
        .unwrap();
    assert!(matches!(out.event, Some(LeaseEvent::Renewed { .. })));
    assert_eq!(dora(&mut s, T0, mac(2)), ip("10.1.0.60"));
    // The duplicate's claimant is refused the address.
    assert_eq!(
        reply_kind(&mut s, T0, mac(5), &init_reboot(mac(5), ip("10.1.0.50"))),
        ReplyKind::Nak
    );
    // records() round-trips through a restart, and through JSON.
    let recs = s.records();
    assert_eq!(recs.len(), 3);
    let json = serde_json::to_string(&recs).unwrap();
    let back: Vec<LeaseRecord> = serde_json::from_str(&json).unwrap();
    let s2 = DhcpServer::new(settings(), back, T0);
    assert_eq!(s2.records(), recs);
}

#[test]
fn expire_events_and_next_expiry() {
    let mut s = server();
    assert_eq!(s.next_expiry(), None);
    let (a, b) = (mac(1), mac(2));
    let _ = s.handle(T0, a, &discover(a)).unwrap();
    assert_eq!(s.next_expiry(), Some(T0 + 30 * SEC));
    // An unanswered offer lapses silently.
    assert!(s.expire(T0 + 30 * SEC).is_empty());
    assert_eq!(s.stats().offered, 0);
    assert_eq!(s.next_expiry(), None);
    let ip_a = dora(&mut s, T0 + 100 * SEC, a);
    let ip_b = dora(&mut s, T0 + 200 * SEC, b);
    assert_eq!(s.next_expiry(), Some(T0 + 3700 * SEC));
    assert_eq!(
        s.expire(T0 + 3700 * SEC),
        vec![LeaseEvent::Expired { mac: a, ip: ip_a }]
    );
    assert_eq!(s.next_expiry(), Some(T0 + 3800 * SEC));
    // An expiry noticed while handling a message is not lost: it is
    // returned by the next expire(), which next_expiry() says is due now.
    let now = T0 + 3900 * SEC;
    let c = mac(3);
    let _ = s.handle(now, c, &discover(c)).unwrap();
    assert_eq!(s.next_expiry(), Some(now));
    assert_eq!(
        s.expire(now),
        vec![LeaseEvent::Expired { mac: b, ip: ip_b }]
    );
    assert_eq!(s.next_expiry(), Some(now + 30 * SEC));
    check_invariants(&s);
}

#[test]
fn validate_reports_mistakes() {
    use SettingsError as E;
    assert_eq!(settings().validate(), Ok(()));
    type Case = (fn(&mut DhcpSettings), SettingsError);
    let cases: Vec<Case> = vec![
        (
            |s| s.netmask = ip("255.0.255.0"),
            E::Netmask(ip("255.0.255.0")),
        ),
        (
            |s| s.netmask = ip("255.255.255.254"),
            E::Netmask(ip("255.255.255.254")),
        ),
        (
            |s| s.pool_start = ip("10.2.0.10"),
            E::PoolOutside(ip("10.2.0.10"), ip("10.1.0.250")),
        ),
        (
            |s| s.pool_end = ip("10.1.0.5"),
            E::PoolOrder(ip("10.1.0.10"), ip("10.1.0.5")),
        ),
        (
            |s| (s.pool_start, s.pool_end) = (ip("10.1.0.1"), ip("10.1.0.1")),
            E::PoolOnlyServer,
        ),
        (
            |s| s.server_ip = ip("10.1.0.255"),
            E::ServerIp(ip("10.1.0.255")),
        ),
        (|s| s.lease_secs = 59, E::LeaseSecs(59)),
        (
            |s| s.unauthorized_lease_secs = 5,
            E::UnauthorizedLeaseSecs(5),
        ),
        (|s| s.offer_hold_secs = 0, E::OfferHold),
        (|s| s.mtu = Some(20), E::Mtu(20)),
        (|s| s.mtu = Some(9001), E::Mtu(9001)),
        (
            |s| s.static_leases.push((mac(9), ip("10.1.0.5"))),
            E::StaticClash {
                index: 2,
                earlier: 0,
            },
        ),
        (
            |s| s.static_leases.push((mac(STATIC_IN), ip("10.1.0.6"))),
            E::StaticClash {
                index: 2,
                earlier: 1,
            },
        ),
        (
            |s| s.static_leases.push((mac(9), ip("10.1.0.1"))),
            E::StaticAddress(2),
        ),
        (
            |s| s.static_leases.push((MacAddr::default(), ip("10.1.0.7"))),
            E::StaticMac(2),
        ),
        (|s| s.domain = Some(String::new()), E::Domain(String::new())),
        (|s| s.domain = Some("a b".into()), E::Domain("a b".into())),
        (
            |s| s.captive_portal_uri = Some("ftp://x".into()),
            E::CaptivePortalUri("ftp://x".into()),
        ),
    ];
    for (i, (f, want)) in cases.into_iter().enumerate() {
        let mut st = settings();
        f(&mut st);
        let got = st.validate();
        assert_eq!(got, Err(want), "case {i}");
        assert!(!got.unwrap_err().to_string().is_empty());
    }
}

/// Appends raw option bytes after a message's options (replacing its End).
fn with_raw_options(mut payload: Vec<u8>, raw: &[u8]) -> Vec<u8> {
    assert_eq!(payload.pop(), Some(255));
    payload.extend_from_slice(raw);
    payload.push(255);
    payload
}

#[test]
fn hostile_options_do_not_hide_the_ones_we_read() {
    let mut s = server();
    let m = mac(1);
    // Options: a zero-length client FQDN (81) and a classless route with a
    // bad prefix (121) before the message type, a host name split in two
    // instances (RFC 3396) with junk characters, then DISCOVER.
    let z = Ipv4Addr::UNSPECIFIED;
    let header = Message::new_with_id(77, z, z, z, z, &m.0).to_vec().unwrap();
    let mut p = header[..240].to_vec();
    p.extend([81, 0]);
    p.extend([121, 2, 40, 1]);
    p.extend([12, 4, b'm', b'y', b' ', b'p']);
    p.extend([12, 5, b'h', b'o', b'n', b'e', b';']);
    p.extend([53, 1, 1]);
    p.push(255);
    assert_eq!(reply_kind(&mut s, T0, m, &p), ReplyKind::Offer);
    assert_eq!(
        s.slots[&ip("10.1.0.10")].lease.hostname.as_deref(),
        Some("myphone")
    );

    // A host name that is not UTF-8 before the message type is ignored,
    // the message still understood.
    let m2 = mac(2);
    let mut p = header[..240].to_vec();
    p[28..34].copy_from_slice(&m2.0);
    p.extend([12, 2, 0xff, 0xfe, 53, 1, 1, 255]);
    assert_eq!(reply_kind(&mut s, T0, m2, &p), ReplyKind::Offer);

    // Wrong-length requested address / server id are ignored, not trusted.
    let m3 = mac(3);
    let p = with_raw_options(discover(m3), &[50, 3, 10, 1, 0]);
    assert_eq!(reply_kind(&mut s, T0, m3, &p), ReplyKind::Offer);
    check_invariants(&s);
}

/// A NAK is short, so it also checks the padding to 300 bytes.
#[test]
fn nak_byte_vector() {
    let mut s = server();
    let m = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    let p = build(
        MessageType::Request,
        m,
        0xcafe_f00d,
        Ipv4Addr::UNSPECIFIED,
        vec![DhcpOption::RequestedIpAddress(ip("172.16.0.9"))],
    );
    let reply = s.handle(T0, m, &p).unwrap().reply.unwrap();
    let mut want: Vec<u8> = vec![2, 1, 6, 0, 0xca, 0xfe, 0xf0, 0x0d, 0, 0, 0, 0];
    want.extend([0u8; 16]); // ciaddr, yiaddr, siaddr, giaddr
    want.extend([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    want.extend([0u8; 10 + 64 + 128]);
    want.extend([99, 130, 83, 99]);
    want.extend([53, 1, 6]); // DHCPNAK
    want.extend([54, 4, 10, 1, 0, 1]); // server id
    want.push(255);
    assert_eq!(want.len(), 250);
    want.resize(300, 0);
    assert_eq!(reply.payload, want);
    assert_eq!(reply.payload[16..20], [0, 0, 0, 0]); // yiaddr
    assert_eq!(reply.payload[240..243], [53, 1, 6]);
}

#[test]
fn records_keep_affinity_across_restart() {
    let mut s = server();
    let (a, b) = (mac(1), mac(2));
    let ip_a = dora(&mut s, T0, a);
    let ip_b = dora(&mut s, T0, b);
    s.release(b);
    let recs = s.records();
    assert_eq!(recs.len(), 2);
    assert!(recs
        .iter()
        .any(|r| r.mac == b && r.ip == ip_b && r.expires <= T0));
    // After a restart, A is still bound and B gets its address back first.
    let mut s = DhcpServer::new(settings(), recs, T0 + SEC);
    assert_eq!(s.owner_of(ip_a), Some(a));
    assert_eq!(dora(&mut s, T0 + SEC, mac(3)), ip("10.1.0.12"));
    assert_eq!(dora(&mut s, T0 + SEC, b), ip_b);
    check_invariants(&s);
}

// --- starvation: reclaiming, offer holds, new-client limits ---

/// The session layer as a test sets it up: who is logged in, who was last
/// seen when.
#[derive(Default)]
struct FakeSessions {
    logged_in: std::collections::HashSet<MacAddr>,
    seen: HashMap<MacAddr, UnixMillis>,
}

impl Clients for FakeSessions {
    fn standing(&self, mac: MacAddr) -> Standing {
        if self.logged_in.contains(&mac) {
            Standing::LoggedIn
        } else {
            Standing::Guest {
                last_seen: self.seen.get(&mac).copied().unwrap_or(0),
            }
        }
    }
}

fn dora_with(s: &mut DhcpServer, now: UnixMillis, m: MacAddr, c: &FakeSessions) -> Ipv4Addr {
    let out = s.handle_with(now, m, &discover(m), c).unwrap();
    let offered = decode(&out.reply.unwrap()).yiaddr();
    let out = s
        .handle_with(now, m, &select(m, offered, ip("10.1.0.1")), c)
        .unwrap();
    assert_eq!(out.reply.as_ref().unwrap().kind, ReplyKind::Ack);
    offered
}

/// A server whose pool is `n` addresses from 10.1.0.30 (clear of the
/// static addresses).
fn small_pool(n: u8) -> DhcpServer {
    let mut st = settings();
    st.pool_start = ip("10.1.0.30");
    st.pool_end = Ipv4Addr::new(10, 1, 0, 29 + n);
    DhcpServer::new(st, vec![], T0)
}

#[test]
fn exhausted_pool_reclaims_the_longest_silent_guest_never_a_logged_in_client() {
    let mut s = small_pool(3);
    let mut c = FakeSessions::default();
    let (user, quiet, chatty) = (mac(1), mac(2), mac(3));
    let ip_user = dora_with(&mut s, T0, user, &c);
    let ip_quiet = dora_with(&mut s, T0 + SEC, quiet, &c);
    let ip_chatty = dora_with(&mut s, T0 + 2 * SEC, chatty, &c);
    c.logged_in.insert(user);
    // The chatty guest keeps sending; the quiet one said nothing since DORA.
    c.seen.insert(chatty, T0 + 50 * SEC);
    let now = T0 + 60 * SEC;
    let newcomer = mac(4);
    assert_eq!(dora_with(&mut s, now, newcomer, &c), ip_quiet);
    assert_eq!(s.stats().reclaimed_leases, 1);
    // The session layer hears of it at once.
    assert_eq!(
        s.expire(now),
        vec![LeaseEvent::Reclaimed {
            mac: quiet,
            ip: ip_quiet
        }]
    );
    check_invariants(&s);
    // Next: the chatty guest (silent since T0+50), never the logged-in user.
    let second = mac(5);
    let now = T0 + 120 * SEC;
    c.seen.insert(newcomer, now - SEC);
    let out = s.handle_with(now, second, &discover(second), &c).unwrap();
    assert_eq!(decode(&out.reply.unwrap()).yiaddr(), ip_chatty);
    c.seen.insert(second, now);
    let third = mac(6);
    assert_eq!(
        s.handle_with(now, third, &discover(third), &c),
        Err(DhcpError::PoolExhausted)
    );
    assert_eq!(s.owner_of(ip_user), Some(user));
    check_invariants(&s);
}

#[test]
fn a_guest_heard_from_recently_is_not_reclaimed() {
    let mut s = small_pool(1);
    let c = FakeSessions::default();
    let guest = mac(1);
    dora_with(&mut s, T0, guest, &c);
    let newcomer = mac(2);
    let early = T0 + u64::from(RECLAIM_MIN_SILENT_SECS) * SEC - 1;
    assert_eq!(
        s.handle_with(early, newcomer, &discover(newcomer), &c),
        Err(DhcpError::PoolExhausted)
    );
    let late = T0 + u64::from(RECLAIM_MIN_SILENT_SECS) * SEC;
    assert!(s
        .handle_with(late, newcomer, &discover(newcomer), &c)
        .is_ok());
}

#[test]
fn reclaiming_does_bounded_work_and_stays_fair_among_many_leases() {
    let mut s = small_pool(200);
    let mut c = FakeSessions::default();
    let macs: Vec<MacAddr> = (1..=200).map(mac).collect();
    for (i, &m) in macs.iter().enumerate() {
        dora_with(&mut s, T0 + i as u64, m, &c);
    }
    // Every guest but the last ten talked after its DORA, in reverse order.
    for (i, &m) in macs.iter().enumerate().take(190) {
        c.seen.insert(m, T0 + (199 - i as u64) * SEC);
    }
    let now = T0 + 300 * SEC;
    let mut taken = Vec::new();
    for n in 0..20u32 {
        let m = mac(1000 + n);
        if let Ok(out) = s.handle_with(now, m, &discover(m), &c) {
            let ip = decode(&out.reply.unwrap()).yiaddr();
            taken.extend(s.expire(now).into_iter().map(|e| match e {
                LeaseEvent::Reclaimed { mac, .. } => mac,
                other => panic!("{other:?}"),
            }));
            assert!(s.slots.contains_key(&ip));
        }
    }
    // The ten that never spoke went first, then the longest silent of the rest.
    let expect: Vec<MacAddr> = macs[190..]
        .iter()
        .chain(macs[..190].iter().rev())
        .copied()
        .take(taken.len())
        .collect();
    assert!(taken.len() >= 10, "{taken:?}");
    assert_eq!(taken, expect);
    check_invariants(&s);
}

#[test]
fn logged_in_client_gets_the_full_lease_guests_the_short_one() {
    let mut st = settings();
    st.unauthorized_lease_secs = 300;
    let mut s = DhcpServer::new(st, vec![], T0);
    let mut c = FakeSessions::default();
    let m = mac(1);
    let out = s.handle_with(T0, m, &discover(m), &c).unwrap();
    let offer = decode(&out.reply.unwrap());
    assert_eq!(
        opt(&offer, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(300))
    );
    let a = dora_with(&mut s, T0, m, &c);
    assert_eq!(s.bound_lease(m).unwrap().expires, T0 + 300 * SEC);
    c.logged_in.insert(m);
    let out = s.handle_with(T0 + 150 * SEC, m, &renew(m, a), &c).unwrap();
    let ack = decode(&out.reply.unwrap());
    assert_eq!(
        opt(&ack, OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(s.bound_lease(m).unwrap().expires, T0 + 3750 * SEC);
}

/// A DISCOVER as a different DHCP client program would send it.
fn discover_other_kind(m: MacAddr) -> Vec<u8> {
    build(
        MessageType::Discover,
        m,
        0x3333,
        Ipv4Addr::UNSPECIFIED,
        vec![
            DhcpOption::ParameterRequestList(vec![OptionCode::SubnetMask, OptionCode::Router]),
            DhcpOption::ClassIdentifier(b"udhcp 1.35.0".to_vec()),
        ],
    )
}

#[test]
fn discover_flood_cannot_take_an_honest_clients_held_offer() {
    let mut st = settings();
    st.new_client_rate = 20;
    let mut s = DhcpServer::new(st, vec![], T0);
    let mut rng = Rng(7);
    let honest = mac(1);
    let msg = discover_other_kind(honest);
    assert_ne!(
        kind_of(msg::parse(&msg).unwrap().fingerprint),
        kind_of(msg::parse(&discover(mac(2))).unwrap().fingerprint)
    );
    let mut now = T0;
    let mut honest_offer = None;
    for i in 0..20_000u32 {
        now += 1; // 20 000 DISCOVERs in 20 s, all from new MACs
        if i == 500 {
            let out = s.handle(now, honest, &msg).unwrap();
            honest_offer = Some(decode(&out.reply.unwrap()).yiaddr());
        }
        let r = rng.next();
        let m = MacAddr([
            0x06,
            (r >> 8) as u8,
            (r >> 16) as u8,
            (r >> 24) as u8,
            (r >> 32) as u8,
            (r >> 40) as u8,
        ]);
        let _ = s.handle(now, m, &discover(m));
    }
    check_invariants(&s);
    // The honest client's REQUEST, 19.5 s later (within the hold), still wins.
    let offered = honest_offer.unwrap();
    assert_eq!(
        reply_kind(
            &mut s,
            now,
            honest,
            &select(honest, offered, ip("10.1.0.1"))
        ),
        ReplyKind::Ack
    );
    let st = s.stats();
    assert!(st.offered <= st.pool_size / 8 + 1, "{st:?}");
    assert_eq!(st.reclaimed_leases, 0);
}

#[test]
fn new_client_limits_hold_a_rotating_flood_but_not_another_kind() {
    let mut st = settings();
    st.pool_start = ip("10.1.0.100");
    st.pool_end = ip("10.1.0.139"); // 40 addresses
    st.new_client_rate = 20; // a kind: 5/s, burst 10; all: 20/s, burst 40
    let mut s = DhcpServer::new(st, vec![], T0);
    let c = FakeSessions::default();
    // Half the pool taken (limits engage), by a full-DORA flood of one kind.
    let mut n = 0;
    let mut bound = 0;
    let mut now = T0;
    while now < T0 + 10 * SEC {
        now += 10; // 100 new MACs a second
        n += 1;
        let m = mac(0x10000 + n);
        if let Ok(out) = s.handle_with(now, m, &discover(m), &c) {
            let o = decode(&out.reply.unwrap()).yiaddr();
            if s.handle_with(now, m, &select(m, o, ip("10.1.0.1")), &c)
                .is_ok()
            {
                bound += 1;
            }
        }
    }
    let st = s.stats();
    // 20 free, then a burst of 10 and 5 a second for 10 s at most (the rest
    // reclaimed their own silent leases).
    assert!(bound <= 20 + 10 + 5 * 10 + 1, "{bound} {st:?}");
    assert!(st.dropped_rate_limited > 800, "{st:?}");
    // Another kind of client is admitted at once.
    let honest = mac(1);
    let out = s.handle_with(now, honest, &discover_other_kind(honest), &c);
    assert_eq!(out.unwrap().reply.unwrap().kind, ReplyKind::Offer);
    // INIT-REBOOT REQUESTs from new MACs are new clients too: a burst of
    // them at one instant gets one kind's burst through, no more.
    let limited = (0..50)
        .map(|i| {
            let m = mac(0x20000 + i);
            s.handle_with(now, m, &init_reboot(m, ip("10.1.0.139")), &c)
        })
        .filter(|r| *r == Err(DhcpError::RateLimited))
        .count();
    assert_eq!(limited, 40);
    check_invariants(&s);
}

#[test]
fn remembered_addresses_do_not_engage_the_limits() {
    let mut st = settings();
    st.pool_start = ip("10.1.0.100");
    st.pool_end = ip("10.1.0.139"); // 40 addresses
    st.new_client_rate = 20;
    let mut s = DhcpServer::new(st, vec![], T0);
    // Yesterday's 30 guests left: their addresses are only remembered.
    for n in 1..=30 {
        dora(&mut s, T0, mac(n));
    }
    let later = T0 + 3601 * SEC;
    s.expire(later);
    assert_eq!(s.stats().bound, 0);
    // This morning's rush of 30 new guests of one kind, all at once.
    for n in 100..130 {
        assert!(dora_ok(&mut s, later, mac(n)), "guest {n}: {:?}", s.stats());
    }
    assert_eq!(s.stats().dropped_rate_limited, 0);
}

fn dora_ok(s: &mut DhcpServer, now: UnixMillis, m: MacAddr) -> bool {
    let Ok(out) = s.handle(now, m, &discover(m)) else {
        return false;
    };
    let offered = decode(&out.reply.unwrap()).yiaddr();
    s.handle(now, m, &select(m, offered, ip("10.1.0.1")))
        .is_ok_and(|o| o.reply.is_some_and(|r| r.kind == ReplyKind::Ack))
}
