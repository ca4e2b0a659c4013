use super::*;
use crate::wire::dhcpv6::{OPT_CAPTIVE_PORTAL, OPT_DNS_SERVERS, OPT_DOMAIN_LIST};

const GW: MacAddr = MacAddr([0x02, 0, 0x5e, 0, 0, 1]);

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, 0x11, b[0], b[1], b[2], b[3]])
}

fn duid(n: u32) -> Vec<u8> {
    wire::duid_ll(mac(n).0)
}

fn settings() -> Dhcp6Settings {
    let mut s = Dhcp6Settings::new(GW, Ipv6Net::new(ip("2001:db8:1::"), 64).unwrap());
    s.reserved = vec![ip("2001:db8:1::1")];
    s.dns = vec![ip("2001:db8:1::1")];
    s.domains = vec!["hotspot.example".into()];
    s.captive_portal_uri = Some("https://portal.example/api".into());
    s
}

fn server() -> Dhcp6Server {
    Dhcp6Server::new(settings(), Vec::new(), 0)
}

fn client_msg(t: MessageType, n: u32, server_id: Option<&[u8]>, ias: Vec<IaNa>) -> Message {
    let mut options = vec![
        DhcpOption::ClientId(duid(n)),
        DhcpOption::ElapsedTime(0),
        DhcpOption::Oro(vec![OPT_DNS_SERVERS, OPT_DOMAIN_LIST, OPT_CAPTIVE_PORTAL]),
    ];
    if let Some(s) = server_id {
        options.push(DhcpOption::ServerId(s.to_vec()));
    }
    options.extend(ias.into_iter().map(DhcpOption::IaNa));
    Message {
        msg_type: t,
        xid: 0x42_0000 + n,
        options,
    }
}

fn ia(iaid: u32, addrs: &[Ipv6Addr]) -> IaNa {
    IaNa {
        iaid,
        t1: 0,
        t2: 0,
        options: addrs
            .iter()
            .map(|&addr| {
                DhcpOption::IaAddr(IaAddr {
                    addr,
                    preferred: 0,
                    valid: 0,
                    options: vec![],
                })
            })
            .collect(),
    }
}

fn link_local(n: u32) -> Ipv6Addr {
    ipv6::link_local_from_mac(mac(n))
}

/// Sends `m` from client `n` and returns the reply, checking the UDP/IPv6
/// framing on the way and that every IA's timers obey dhcpcd's rules.
fn exchange(s: &mut Dhcp6Server, n: u32, m: &Message, now: UnixMillis) -> Option<Message> {
    s.handle_message(
        &m.emit(),
        link_local(n),
        ipv6::ALL_DHCP_SERVERS,
        mac(n),
        now,
    )
    .unwrap();
    let t = s.poll_transmit()?;
    assert!(s.poll_transmit().is_none());
    assert_eq!(
        (t.dst, t.dst_mac, t.src),
        (link_local(n), mac(n), s.settings().link_local)
    );
    let frame = t.to_frame();
    let sum = ipv6::parse(&frame[14..]).unwrap();
    let udp = sum.upper(&frame[14..]);
    assert_eq!(ipv6::upper_checksum(t.src, t.dst, NEXT_UDP, udp), 0);
    assert_eq!((&udp[0..2], &udp[2..4]), (&[2, 35][..], &[2, 34][..]));
    let reply = Message::parse(&udp[8..]).unwrap();
    assert_eq!(reply.xid, m.xid);
    assert_eq!(reply.client_id(), m.client_id());
    assert_eq!(reply.server_id(), Some(s.duid()));
    for ia in reply.ia_nas() {
        for a in ia.addrs().filter(|a| a.valid > 0) {
            assert!(ia.t1 <= ia.t2 && ia.t2 <= a.preferred && a.preferred <= a.valid);
        }
    }
    Some(reply)
}

fn addr_of(m: &Message) -> Ipv6Addr {
    m.ia_nas().next().unwrap().addrs().next().unwrap().addr
}

fn events(s: &mut Dhcp6Server) -> Vec<Lease6Event> {
    core::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn settings_validate() {
    use Dhcp6SettingsError::*;
    assert_eq!(settings().validate(), Ok(()));
    let check = |f: fn(&mut Dhcp6Settings)| {
        let mut s = settings();
        f(&mut s);
        s.validate()
    };
    assert!(matches!(
        check(|s| s.prefix = Ipv6Net::new(ip("2001:db8::"), 56).unwrap()),
        Err(Prefix(_))
    ));
    assert!(matches!(
        check(|s| s.link_local = ip("2001:db8::1")),
        Err(LinkLocal(_))
    ));
    assert_eq!(
        check(|s| s.preferred_secs = 7201),
        Err(Lifetimes(7201, 7200))
    );
    assert_eq!(check(|s| s.preferred_secs = 59), Err(Lifetimes(59, 7200)));
    assert_eq!(check(|s| s.offer_hold_secs = 0), Err(OfferHold));
    assert_eq!(check(|s| s.max_leases_per_mac = 0), Err(Bounds));
    assert!(matches!(
        check(|s| s.domains = vec!["".into()]),
        Err(Domain(_))
    ));
    assert!(matches!(
        check(|s| s.captive_portal_uri = Some("x".into())),
        Err(CaptivePortalUri(_))
    ));
}

#[test]
fn timers_are_ordered_for_every_lifetime() {
    assert_eq!(ia_timers(3600), (1800, 2880));
    for p in [0, 1, 2, 3, 59, 60, 61, 1000, 86_399, u32::MAX] {
        let (t1, t2) = ia_timers(p);
        assert!(t1 <= t2 && t2 <= p, "{p}");
    }
}

#[test]
fn solicit_advertise_request_reply() {
    let mut s = server();
    let adv = exchange(
        &mut s,
        1,
        &client_msg(MessageType::Solicit, 1, None, vec![ia(7, &[])]),
        0,
    )
    .unwrap();
    assert_eq!(adv.msg_type, MessageType::Advertise);
    assert!(adv.options.contains(&DhcpOption::Preference(255)));
    assert_eq!(s.duid(), &[0, 3, 0, 1, 0x02, 0, 0x5e, 0, 0, 1]);
    let offered = addr_of(&adv);
    assert!(s.settings().prefix.contains(offered));
    let ia_adv = adv.ia_nas().next().unwrap();
    assert_eq!((ia_adv.iaid, ia_adv.t1, ia_adv.t2), (7, 1800, 2880));
    assert!(adv
        .options
        .contains(&DhcpOption::DnsServers(vec![ip("2001:db8:1::1")])));
    assert!(adv
        .options
        .contains(&DhcpOption::DomainList(vec!["hotspot.example".into()])));
    assert!(adv.options.contains(&DhcpOption::CaptivePortal(
        "https://portal.example/api".into()
    )));
    assert!(events(&mut s).is_empty(), "an advertisement binds nothing");
    assert_eq!(s.owner_of(offered), None);

    let sid = s.duid().to_vec();
    let req = client_msg(MessageType::Request, 1, Some(&sid), vec![ia(7, &[offered])]);
    let reply = exchange(&mut s, 1, &req, 1000).unwrap();
    assert_eq!(reply.msg_type, MessageType::Reply);
    assert_eq!(addr_of(&reply), offered);
    let a = reply
        .ia_nas()
        .next()
        .unwrap()
        .addrs()
        .next()
        .unwrap()
        .clone();
    assert_eq!((a.preferred, a.valid), (3600, 7200));
    let expires = 1000 + 7_200_000;
    assert_eq!(
        events(&mut s),
        vec![Lease6Event::Bound {
            mac: mac(1),
            addr: offered,
            expires
        }]
    );
    assert_eq!(s.owner_of(offered), Some(mac(1)));
    assert_eq!(s.poll_timeout(), Some(expires));
}

#[test]
fn dhcproto_reads_the_reply_and_writes_a_solicit_lassi_answers() {
    use dhcproto::v6 as dp;
    use dhcproto::{Decodable, Encodable};
    let mut m = dp::Message::new_with_id(dp::MessageType::Solicit, [9, 8, 7]);
    m.opts_mut().insert(dp::DhcpOption::ClientId(duid(3)));
    m.opts_mut().insert(dp::DhcpOption::RapidCommit);
    m.opts_mut().insert(dp::DhcpOption::IANA(dp::IANA {
        id: 1,
        t1: 0,
        t2: 0,
        opts: dp::DhcpOptions::new(),
    }));
    let mut s = server();
    s.handle_message(
        &m.to_vec().unwrap(),
        link_local(3),
        ipv6::ALL_DHCP_SERVERS,
        mac(3),
        0,
    )
    .unwrap();
    let t = s.poll_transmit().unwrap();
    let reply = dp::Message::decode(&mut dhcproto::Decoder::new(&t.payload[8..])).unwrap();
    assert_eq!(reply.msg_type(), dp::MessageType::Reply);
    assert!(reply.opts().get(dp::OptionCode::RapidCommit).is_some());
    match reply.opts().get(dp::OptionCode::IANA) {
        Some(dp::DhcpOption::IANA(ia)) => {
            assert!(ia.t1 <= ia.t2);
            match ia.opts.get(dp::OptionCode::IAAddr) {
                Some(dp::DhcpOption::IAAddr(a)) => {
                    assert!(ia.t2 <= a.preferred_life && a.preferred_life <= a.valid_life);
                    assert_eq!(s.owner_of(a.addr), Some(mac(3)));
                }
                o => panic!("{o:?}"),
            }
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn rapid_commit_only_when_both_want_it() {
    let mut m = client_msg(MessageType::Solicit, 2, None, vec![ia(1, &[])]);
    m.options.push(DhcpOption::RapidCommit);
    let mut s = server();
    let r = exchange(&mut s, 2, &m, 0).unwrap();
    assert_eq!(r.msg_type, MessageType::Reply);
    assert!(r.options.contains(&DhcpOption::RapidCommit));
    assert!(matches!(events(&mut s)[..], [Lease6Event::Bound { .. }]));
    let mut off = settings();
    off.rapid_commit = false;
    let mut s = Dhcp6Server::new(off, Vec::new(), 0);
    assert_eq!(
        exchange(&mut s, 2, &m, 0).unwrap().msg_type,
        MessageType::Advertise
    );
    assert!(events(&mut s).is_empty());
}

#[test]
fn addresses_are_derived_so_a_restart_keeps_them() {
    let mut a = server();
    let sid = a.duid().to_vec();
    let req = client_msg(MessageType::Request, 5, Some(&sid), vec![ia(1, &[])]);
    let first = addr_of(&exchange(&mut a, 5, &req, 0).unwrap());
    // lassi lost its leases: the client's Renew gets the same address back.
    let mut b = server();
    let renew = client_msg(MessageType::Renew, 5, Some(&sid), vec![ia(1, &[first])]);
    let r = exchange(&mut b, 5, &renew, 0).unwrap();
    assert_eq!(addr_of(&r), first);
    assert_eq!(r.ia_nas().next().unwrap().addrs().count(), 1);
    // Another IAID of the same client gets another address.
    let other = client_msg(MessageType::Request, 5, Some(&sid), vec![ia(2, &[])]);
    assert_ne!(addr_of(&exchange(&mut b, 5, &other, 0).unwrap()), first);
}

#[test]
fn renew_extends_rebind_too_and_foreign_addresses_get_zero_lifetimes() {
    let mut s = server();
    let sid = s.duid().to_vec();
    let a = addr_of(
        &exchange(
            &mut s,
            1,
            &client_msg(MessageType::Request, 1, Some(&sid), vec![ia(1, &[])]),
            0,
        )
        .unwrap(),
    );
    events(&mut s);
    let renew = client_msg(MessageType::Renew, 1, Some(&sid), vec![ia(1, &[a])]);
    exchange(&mut s, 1, &renew, 1_800_000).unwrap();
    let expires = 1_800_000 + 7_200_000;
    assert_eq!(
        events(&mut s),
        vec![Lease6Event::Renewed {
            mac: mac(1),
            addr: a,
            expires
        }]
    );
    assert_eq!(s.poll_timeout(), Some(expires));
    let stale = ip("2001:db8:99::5");
    let rebind = client_msg(MessageType::Rebind, 1, None, vec![ia(1, &[a, stale])]);
    let r = exchange(&mut s, 1, &rebind, 2_880_000).unwrap();
    let addrs: Vec<(Ipv6Addr, u32)> = r
        .ia_nas()
        .next()
        .unwrap()
        .addrs()
        .map(|x| (x.addr, x.valid))
        .collect();
    assert_eq!(addrs, vec![(a, 7200), (stale, 0)]);
}

#[test]
fn leases_expire() {
    let mut s = server();
    let sid = s.duid().to_vec();
    let a = addr_of(
        &exchange(
            &mut s,
            1,
            &client_msg(MessageType::Request, 1, Some(&sid), vec![ia(1, &[])]),
            0,
        )
        .unwrap(),
    );
    events(&mut s);
    let due = s.poll_timeout().unwrap();
    s.handle_timeout(due - 1);
    assert!(events(&mut s).is_empty());
    s.handle_timeout(due);
    assert_eq!(
        events(&mut s),
        vec![Lease6Event::Expired {
            mac: mac(1),
            addr: a
        }]
    );
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.stats().bindings, 0);
    // An offer that is not taken up ends quietly.
    exchange(
        &mut s,
        2,
        &client_msg(MessageType::Solicit, 2, None, vec![ia(1, &[])]),
        0,
    )
    .unwrap();
    assert_eq!(s.poll_timeout(), Some(30_000));
    s.handle_timeout(30_000);
    assert!(events(&mut s).is_empty());
}

#[test]
fn release_and_decline() {
    let mut s = server();
    let sid = s.duid().to_vec();
    let req = client_msg(MessageType::Request, 1, Some(&sid), vec![ia(1, &[])]);
    let a = addr_of(&exchange(&mut s, 1, &req, 0).unwrap());
    events(&mut s);
    let rel = client_msg(
        MessageType::Release,
        1,
        Some(&sid),
        vec![ia(1, &[a]), ia(9, &[])],
    );
    let r = exchange(&mut s, 1, &rel, 10).unwrap();
    assert!(r
        .options
        .iter()
        .any(|o| matches!(o, DhcpOption::StatusCode(Status::Success, _))));
    let nb = r.ia_nas().next().unwrap();
    assert_eq!(nb.iaid, 9);
    assert!(matches!(
        nb.options[..],
        [DhcpOption::StatusCode(Status::NoBinding, _)]
    ));
    assert_eq!(
        events(&mut s),
        vec![Lease6Event::Released {
            mac: mac(1),
            addr: a
        }]
    );

    // Decline: the address is quarantined, the client gets another.
    let a = addr_of(&exchange(&mut s, 1, &req, 20).unwrap());
    events(&mut s);
    let dec = client_msg(MessageType::Decline, 1, Some(&sid), vec![ia(1, &[a])]);
    exchange(&mut s, 1, &dec, 30).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Lease6Event::Declined {
            mac: mac(1),
            addr: a
        }]
    );
    let b = addr_of(&exchange(&mut s, 1, &req, 40).unwrap());
    assert_ne!(a, b);
    // After the quarantine the first address is the client's again.
    let rel = client_msg(MessageType::Release, 1, Some(&sid), vec![ia(1, &[b])]);
    exchange(&mut s, 1, &rel, 50).unwrap();
    s.handle_timeout(30 + u64::from(DECLINE_QUARANTINE_SECS) * 1000);
    assert_eq!(addr_of(&exchange(&mut s, 1, &req, 700_000).unwrap()), a);
}

#[test]
fn information_request_is_stateless() {
    let mut set = settings();
    set.info_refresh_secs = Some(3600);
    let mut s = Dhcp6Server::new(set, Vec::new(), 0);
    let m = client_msg(MessageType::InformationRequest, 4, None, vec![]);
    let r = exchange(&mut s, 4, &m, 0).unwrap();
    assert_eq!(r.msg_type, MessageType::Reply);
    assert!(r
        .options
        .contains(&DhcpOption::DnsServers(vec![ip("2001:db8:1::1")])));
    assert!(r
        .options
        .contains(&DhcpOption::InformationRefreshTime(3600)));
    assert_eq!(r.ia_nas().count(), 0);
    assert_eq!(s.stats().bindings, 0);
    // Without a Client ID it is still answered.
    let bare = Message {
        msg_type: MessageType::InformationRequest,
        xid: 1,
        options: vec![],
    };
    s.handle_message(
        &bare.emit(),
        link_local(4),
        ipv6::ALL_DHCP_SERVERS,
        mac(4),
        0,
    )
    .unwrap();
    assert!(s.poll_transmit().is_some());
}

#[test]
fn identifier_rules_and_rogue_messages() {
    let mut s = server();
    let sid = s.duid().to_vec();
    let mut send =
        |m: &Message| s.handle_message(&m.emit(), link_local(1), ipv6::ALL_DHCP_SERVERS, mac(1), 0);
    let other = wire::duid_ll([2, 9, 9, 9, 9, 9]);
    assert_eq!(
        send(&client_msg(
            MessageType::Request,
            1,
            Some(&other),
            vec![ia(1, &[])]
        )),
        Err(Dhcp6Error::NotForUs)
    );
    assert!(matches!(
        send(&client_msg(MessageType::Request, 1, None, vec![ia(1, &[])])),
        Err(Dhcp6Error::Invalid(_))
    ));
    assert!(matches!(
        send(&client_msg(MessageType::Solicit, 1, Some(&sid), vec![])),
        Err(Dhcp6Error::Invalid(_))
    ));
    assert!(matches!(
        send(&client_msg(
            MessageType::InformationRequest,
            1,
            None,
            vec![ia(1, &[])]
        )),
        Err(Dhcp6Error::Invalid(_))
    ));
    assert_eq!(
        send(&client_msg(MessageType::Reply, 1, Some(&sid), vec![])),
        Err(Dhcp6Error::FromServer(MessageType::Reply))
    );
    assert_eq!(
        send(&client_msg(MessageType::Advertise, 1, None, vec![])),
        Err(Dhcp6Error::FromServer(MessageType::Advertise))
    );
    let mut no_cid = client_msg(MessageType::Solicit, 1, None, vec![]);
    no_cid.options.remove(0);
    assert!(matches!(send(&no_cid), Err(Dhcp6Error::Invalid(_))));
    assert_eq!(
        s.handle_message(
            &[12, 0, 0, 0],
            link_local(1),
            ipv6::ALL_DHCP_SERVERS,
            mac(1),
            0
        ),
        Err(Dhcp6Error::Parse(wire::Error::Relay))
    );
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.stats().dropped, 8);
}

#[test]
fn confirm_checks_the_link() {
    let mut s = server();
    let on = client_msg(
        MessageType::Confirm,
        1,
        None,
        vec![ia(1, &[ip("2001:db8:1::1234")])],
    );
    let r = exchange(&mut s, 1, &on, 0).unwrap();
    assert!(matches!(
        r.options.last(),
        Some(DhcpOption::StatusCode(Status::Success, _))
    ));
    let off = client_msg(
        MessageType::Confirm,
        1,
        None,
        vec![ia(1, &[ip("2001:db8:2::1")])],
    );
    let r = exchange(&mut s, 1, &off, 0).unwrap();
    assert!(matches!(
        r.options.last(),
        Some(DhcpOption::StatusCode(Status::NotOnLink, _))
    ));
    assert!(exchange(
        &mut s,
        1,
        &client_msg(MessageType::Confirm, 1, None, vec![ia(1, &[])]),
        0
    )
    .is_none());
}

#[test]
fn the_table_is_bounded() {
    let mut set = settings();
    set.max_leases = 8;
    set.max_leases_per_mac = 2;
    let mut s = Dhcp6Server::new(set, Vec::new(), 0);
    let sid = s.duid().to_vec();
    // One MAC inventing DUIDs keeps at most two bindings.
    for n in 100..150 {
        let mut m = client_msg(MessageType::Request, n, Some(&sid), vec![ia(1, &[])]);
        m.options[0] = DhcpOption::ClientId(duid(n));
        s.handle_message(&m.emit(), link_local(1), ipv6::ALL_DHCP_SERVERS, mac(1), 0)
            .unwrap();
    }
    assert_eq!(s.leases().filter(|l| l.mac == mac(1)).count(), 2);
    while s.poll_transmit().is_some() {}
    // Many MACs: eight bindings, then NoAddrsAvail.
    for n in 1..20 {
        exchange(
            &mut s,
            n + 1,
            &client_msg(MessageType::Request, n + 1, Some(&sid), vec![ia(1, &[])]),
            0,
        );
    }
    assert_eq!(s.stats().bindings, 8);
    let r = exchange(
        &mut s,
        99,
        &client_msg(MessageType::Request, 99, Some(&sid), vec![ia(1, &[])]),
        0,
    )
    .unwrap();
    let ia0 = r.ia_nas().next().unwrap();
    assert!(matches!(
        ia0.options[..],
        [DhcpOption::StatusCode(Status::NoAddrsAvail, _)]
    ));
    assert!(s.stats().no_addrs > 0);
}

#[test]
fn offers_give_way_to_newcomers() {
    let mut set = settings();
    set.max_leases = 4;
    let mut s = Dhcp6Server::new(set, Vec::new(), 0);
    for n in 1..=10 {
        let r = exchange(
            &mut s,
            n,
            &client_msg(MessageType::Solicit, n, None, vec![ia(1, &[])]),
            n.into(),
        )
        .unwrap();
        assert_eq!(r.ia_nas().next().unwrap().addrs().count(), 1, "{n}");
    }
    assert_eq!(s.leases.len(), 4);
}

#[test]
fn reserved_identifiers_are_never_handed_out() {
    let mut set = settings();
    set.max_leases = 100_000;
    set.max_leases_per_mac = 100_000;
    let mut s = Dhcp6Server::new(set, Vec::new(), 0);
    for n in 0..3000 {
        let m = client_msg(MessageType::Solicit, n, None, vec![ia(n, &[])]);
        s.handle_message(&m.emit(), link_local(n), ipv6::ALL_DHCP_SERVERS, mac(n), 0)
            .unwrap();
        let t = s.poll_transmit().unwrap();
        let a = addr_of(&Message::parse(&t.payload[8..]).unwrap());
        assert!(iid_usable(u128::from(a) as u64) && a != ip("2001:db8:1::1"));
    }
    assert!(!iid_usable(0) && !iid_usable(0xff) && !iid_usable(0xfdff_ffff_ffff_ff80));
    assert!(!iid_usable(u64::MAX) && iid_usable(0x100));
}

#[test]
fn leases_persist() {
    let mut s = server();
    let sid = s.duid().to_vec();
    let mut addrs = Vec::new();
    for n in 1..=3 {
        let r = exchange(
            &mut s,
            n,
            &client_msg(MessageType::Request, n, Some(&sid), vec![ia(n, &[])]),
            u64::from(n) * 1000,
        );
        addrs.push(addr_of(&r.unwrap()));
    }
    let json = serde_json::to_string(&s.records()).unwrap();
    let records: Vec<Lease6Record> = serde_json::from_str(&json).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].duid.len(), 20);
    // Restored at a time when the first lease has run out.
    let t = 1000 + 7_200_000;
    let mut back = Dhcp6Server::new(settings(), records.clone(), t);
    assert_eq!(back.stats().bindings, 2);
    assert_eq!(back.owner_of(addrs[0]), None);
    assert_eq!(back.owner_of(addrs[1]), Some(mac(2)));
    assert_eq!(back.poll_timeout(), Some(2000 + 7_200_000));
    // A renewal finds the binding: Renewed, not Bound.
    let renew = client_msg(MessageType::Renew, 2, Some(&sid), vec![ia(2, &[addrs[1]])]);
    exchange(&mut back, 2, &renew, t).unwrap();
    assert!(matches!(
        events(&mut back)[..],
        [Lease6Event::Renewed { .. }]
    ));
    // Records for another prefix, or with a broken DUID, are skipped.
    let mut bad = records;
    bad[1].addr = ip("2001:db8:2::1234");
    bad[2].duid = "zz".into();
    assert_eq!(Dhcp6Server::new(settings(), bad, 0).stats().bindings, 1);
}

#[test]
fn release_mac_ends_everything_of_a_client() {
    let mut s = server();
    let sid = s.duid().to_vec();
    exchange(
        &mut s,
        1,
        &client_msg(
            MessageType::Request,
            1,
            Some(&sid),
            vec![ia(1, &[]), ia(2, &[])],
        ),
        0,
    );
    events(&mut s);
    s.release_mac(mac(1));
    assert_eq!(events(&mut s).len(), 2);
    assert_eq!(s.stats().bindings, 0);
}

#[test]
fn unicast_is_refused_or_told_to_use_multicast() {
    let mut s = server();
    let sid = s.duid().to_vec();
    let own = s.settings().link_local;
    let solicit = client_msg(MessageType::Solicit, 1, None, vec![ia(1, &[])]);
    let r = s.handle_message(&solicit.emit(), link_local(1), own, mac(1), 0);
    assert!(matches!(r, Err(Dhcp6Error::Invalid(_))));
    let renew = client_msg(MessageType::Renew, 1, Some(&sid), vec![ia(1, &[])]);
    s.handle_message(&renew.emit(), link_local(1), own, mac(1), 0)
        .unwrap();
    let t = s.poll_transmit().unwrap();
    let reply = Message::parse(&t.payload[8..]).unwrap();
    assert_eq!(reply.options.len(), 3);
    assert!(matches!(
        reply.options[2],
        DhcpOption::StatusCode(Status::UseMulticast, _)
    ));
    assert!(events(&mut s).is_empty());
}
