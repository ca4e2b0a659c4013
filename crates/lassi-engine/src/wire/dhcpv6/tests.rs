use super::*;
use dhcproto::v6 as dp;
use dhcproto::{Decodable, Encodable};

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const CLIENT_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0, 0, 0, 0, 0x42];

fn solicit() -> Message {
    Message {
        msg_type: MessageType::Solicit,
        xid: 0x123456,
        options: vec![
            DhcpOption::ClientId(CLIENT_DUID.to_vec()),
            DhcpOption::ElapsedTime(0),
            DhcpOption::Oro(vec![OPT_DNS_SERVERS, OPT_DOMAIN_LIST, OPT_CAPTIVE_PORTAL]),
            DhcpOption::RapidCommit,
            DhcpOption::IaNa(IaNa {
                iaid: 0xdead_beef,
                t1: 0,
                t2: 0,
                options: vec![],
            }),
        ],
    }
}

fn reply() -> Message {
    Message {
        msg_type: MessageType::Reply,
        xid: 0xabcdef,
        options: vec![
            DhcpOption::ServerId(duid_ll([2, 0, 0, 0, 0, 1])),
            DhcpOption::ClientId(CLIENT_DUID.to_vec()),
            DhcpOption::IaNa(IaNa {
                iaid: 7,
                t1: 1800,
                t2: 2880,
                options: vec![DhcpOption::IaAddr(IaAddr {
                    addr: ip("2001:db8:1::1:2"),
                    preferred: 3600,
                    valid: 7200,
                    options: vec![DhcpOption::StatusCode(Status::Success, "ok".into())],
                })],
            }),
            DhcpOption::DnsServers(vec![ip("2001:db8:1::1")]),
            DhcpOption::DomainList(vec!["hotspot.example".into(), "example".into()]),
            DhcpOption::CaptivePortal("https://portal.example/api".into()),
            DhcpOption::InformationRefreshTime(86400),
            DhcpOption::Preference(255),
            DhcpOption::Unknown(999, vec![1, 2, 3]),
        ],
    }
}

/// A Solicit written out by hand from RFC 8415 §8 and §21.
#[test]
fn solicit_bytes() {
    let expect = hex("01 123456
         0001 000a 0003 0001 020000000042
         0008 0002 0000
         0006 0006 0017 0018 0067
         000e 0000
         0003 000c deadbeef 00000000 00000000");
    assert_eq!(solicit().emit(), expect);
    assert_eq!(Message::parse(&expect).unwrap(), solicit());
}

#[test]
fn reply_round_trips_and_helpers_read_it() {
    let r = reply();
    let bytes = r.emit();
    let back = Message::parse(&bytes).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.client_id(), Some(&CLIENT_DUID[..]));
    assert_eq!(back.server_id(), Some(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 1][..]));
    let ia = back.ia_nas().next().unwrap();
    assert_eq!(ia.addrs().next().unwrap().addr, ip("2001:db8:1::1:2"));
    assert!(back.option(OPT_CAPTIVE_PORTAL).is_some());
    assert_eq!(solicit().requested(), &[23, 24, 103]);
    assert!(r.requested().is_empty());
}

#[test]
fn message_types_map_both_ways() {
    for n in 0..=255u8 {
        assert_eq!(u8::from(MessageType::from(n)), n);
    }
    for n in [0u16, 1, 2, 3, 4, 5, 6, 700] {
        assert_eq!(u16::from(Status::from(n)), n);
    }
    assert!(MessageType::Reply.is_from_server() && MessageType::Reconfigure.is_from_server());
    assert!(!MessageType::Solicit.is_from_server());
}

#[test]
fn dhcproto_decodes_what_this_encodes() {
    let bytes = reply().emit();
    let m = dp::Message::decode(&mut dhcproto::Decoder::new(&bytes)).unwrap();
    assert_eq!(m.msg_type(), dp::MessageType::Reply);
    assert_eq!(m.xid_num(), 0xabcdef);
    match m.opts().get(dp::OptionCode::IANA) {
        Some(dp::DhcpOption::IANA(ia)) => {
            assert_eq!((ia.id, ia.t1, ia.t2), (7, 1800, 2880));
            match ia.opts.get(dp::OptionCode::IAAddr) {
                Some(dp::DhcpOption::IAAddr(a)) => {
                    assert_eq!(a.addr, ip("2001:db8:1::1:2"));
                    assert_eq!((a.preferred_life, a.valid_life), (3600, 7200));
                }
                o => panic!("{o:?}"),
            }
        }
        o => panic!("{o:?}"),
    }
    match m.opts().get(dp::OptionCode::DomainNameServers) {
        Some(dp::DhcpOption::DomainNameServers(s)) => assert_eq!(s, &[ip("2001:db8:1::1")]),
        o => panic!("{o:?}"),
    }
    match m.opts().get(dp::OptionCode::DomainSearchList) {
        Some(dp::DhcpOption::DomainSearchList(n)) => {
            let names: Vec<String> = n.iter().map(|n| n.to_string()).collect();
            assert_eq!(names, vec!["hotspot.example.", "example."]);
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn decodes_what_dhcproto_encodes() {
    let mut m = dp::Message::new_with_id(dp::MessageType::Request, [1, 2, 3]);
    let opts = m.opts_mut();
    opts.insert(dp::DhcpOption::ClientId(CLIENT_DUID.to_vec()));
    opts.insert(dp::DhcpOption::ServerId(duid_ll([2, 0, 0, 0, 0, 1])));
    opts.insert(dp::DhcpOption::ElapsedTime(12));
    opts.insert(dp::DhcpOption::ORO(dp::ORO {
        opts: vec![dp::OptionCode::DomainNameServers],
    }));
    let mut ia_opts = dp::DhcpOptions::new();
    ia_opts.insert(dp::DhcpOption::IAAddr(dp::IAAddr {
        addr: ip("2001:db8:1::99"),
        preferred_life: 0,
        valid_life: 0,
        opts: dp::DhcpOptions::new(),
    }));
    opts.insert(dp::DhcpOption::IANA(dp::IANA {
        id: 42,
        t1: 0,
        t2: 0,
        opts: ia_opts,
    }));
    let bytes = m.to_vec().unwrap();
    let ours = Message::parse(&bytes).unwrap();
    assert_eq!(ours.msg_type, MessageType::Request);
    assert_eq!(ours.xid, 0x010203);
    assert_eq!(ours.client_id(), Some(&CLIENT_DUID[..]));
    assert_eq!(ours.requested(), &[OPT_DNS_SERVERS]);
    assert!(ours.options.contains(&DhcpOption::ElapsedTime(12)));
    let ia = ours.ia_nas().next().unwrap();
    assert_eq!(ia.iaid, 42);
    assert_eq!(ia.addrs().next().unwrap().addr, ip("2001:db8:1::99"));
    // Byte for byte the same when written back.
    assert_eq!(ours.emit(), bytes);
}

#[test]
fn strict_bounds() {
    assert_eq!(Message::parse(&[1, 0, 0]), Err(Error::Truncated));
    assert_eq!(Message::parse(&[12, 0, 0, 0]), Err(Error::Relay));
    assert_eq!(Message::parse(&[1, 0, 0, 0]).unwrap().options, vec![]);
    // A truncation of a good message is an error unless it falls between
    // two top-level options; never a panic.
    let bytes = reply().emit();
    let mut boundaries = vec![4];
    for o in &reply().options {
        let mut b = Vec::new();
        o.emit(&mut b);
        boundaries.push(boundaries.last().unwrap() + b.len());
    }
    for n in 4..bytes.len() {
        let parsed = Message::parse(&bytes[..n]);
        assert_eq!(parsed.is_ok(), boundaries.contains(&n), "{n}");
    }
    let bad = |opt: &str| Message::parse(&[&[1u8, 0, 0, 0][..], &hex(opt)].concat());
    assert_eq!(bad("0008 0001 00"), Err(Error::BadOption(OPT_ELAPSED_TIME)));
    assert_eq!(bad("000e 0001 00"), Err(Error::BadOption(OPT_RAPID_COMMIT)));
    assert_eq!(bad("0006 0003 001700"), Err(Error::BadOption(OPT_ORO)));
    assert_eq!(bad("0001 0001 00"), Err(Error::BadOption(OPT_CLIENTID)));
    assert_eq!(
        bad("0017 0004 20010db8"),
        Err(Error::BadOption(OPT_DNS_SERVERS))
    );
    assert_eq!(
        bad("0003 0008 0000000000000000"),
        Err(Error::BadOption(OPT_IA_NA))
    );
    assert_eq!(
        bad("000d 0003 0000ff"),
        Err(Error::BadOption(OPT_STATUS_CODE))
    );
    assert_eq!(
        bad("0018 0002 0561"),
        Err(Error::BadOption(OPT_DOMAIN_LIST))
    );
    assert_eq!(bad("0017 0010 20010db8"), Err(Error::Truncated));
    let mut long_duid = vec![0x00, 0x01, 0x00, 131];
    long_duid.extend_from_slice(&[0; 131]);
    assert_eq!(
        Message::parse(&[&[1u8, 0, 0, 0][..], &long_duid].concat()),
        Err(Error::BadOption(OPT_CLIENTID))
    );
}

#[test]
fn nesting_is_bounded() {
    // IA_NA inside IA_NA inside ... : refused past MAX_DEPTH, whatever the length.
    let mut inner = Vec::new();
    for _ in 0..50 {
        let mut o = vec![0, 3];
        o.extend_from_slice(&((12 + inner.len()) as u16).to_be_bytes());
        o.extend_from_slice(&[0; 12]);
        o.extend_from_slice(&inner);
        inner = o;
    }
    let msg = [&[1u8, 0, 0, 0][..], &inner].concat();
    assert_eq!(Message::parse(&msg), Err(Error::TooDeep));
}

#[test]
fn garbage_never_panics() {
    let mut x = 0x9e37_79b9u32;
    for _ in 0..20_000 {
        let len = (x % 96) as usize;
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b.push(if x % 3 == 0 {
                (x >> 8) as u8 % 8
            } else {
                x as u8
            });
        }
        if let Ok(m) = Message::parse(&b) {
            assert_eq!(Message::parse(&m.emit()).unwrap(), m);
        }
    }
}
