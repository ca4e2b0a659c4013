//! The workers' fast path: what it forwards and counts, what it leaves to
//! the engine, and that engine and workers together count every forwarded
//! byte exactly once.

use core::net::Ipv4Addr;

use super::*;
use crate::dataplane::{DropReason, Event, LanAction, TunAction};
use crate::dhcp::DhcpServer;
use crate::session::{Authorization, EndReason, SessionLimits};
use crate::testkit::{self, GW};
use crate::wire::checksum;
use crate::wire::frame::{ETHERTYPE_ARP, ETHERTYPE_IPV6};
use crate::wire::vnet::{F_NEEDS_CSUM, GSO_TCPV4};

const T0: UnixMillis = 1_795_359_600_000;
const DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const WEB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const A: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
const B: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);

fn gw_mac() -> MacAddr {
    "02:00:00:00:00:01".parse().unwrap()
}

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, n])
}

/// An engine on the test network (isolation on) with clients 1 and 2
/// leased A and B, neither logged in.
fn engine() -> Engine {
    let dhcp = DhcpServer::new(testkit::dhcp_settings(DNS), vec![], T0);
    let mut e = Engine::new(testkit::engine_settings(DNS), dhcp, T0);
    e.sessions.lease_bound(mac(1), A, T0 + 3_600_000, T0);
    e.sessions.lease_bound(mac(2), B, T0 + 3_600_000, T0);
    e
}

fn login(e: &mut Engine, m: MacAddr, limits: SessionLimits) -> String {
    let auth = Authorization {
        limits,
        ..Default::default()
    };
    e.authorize(m, auth, T0).unwrap().session_id
}

/// What `fast_path_sessions` lists, without the limits.
fn listed(e: &Engine) -> Vec<(Ipv4Addr, MacAddr, String)> {
    (e.fast_path_sessions().into_iter())
        .map(|s| (s.ip, s.mac, s.session_id))
        .collect()
}

/// A worker with client 1 (at A) admitted under token 7.
fn worker() -> FastPath {
    let mut w = FastPath::new(engine().fast_settings(), 1 << 20);
    let admit = FastAdmit {
        ip: A,
        mac: mac(1),
        token: 7,
        limits: FastLimits::default(),
        owner: false,
        divert_http: false,
    };
    assert_eq!(w.admit(admit), None);
    w
}

/// An IPv4 packet (20-byte header) carrying `l4`, `extra` zero bytes after it.
fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, l4: &[u8], extra: usize) -> Vec<u8> {
    let total = 20 + l4.len() + extra;
    let mut ip = vec![0u8; total];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    checksum::fix_ipv4_header(&mut ip[..20]);
    ip[20..20 + l4.len()].copy_from_slice(l4);
    ip
}

/// A TCP packet (20-byte header, ACK) with `payload` bytes.
fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 0x50;
    t[13] = 0x10;
    ipv4(PROTO_TCP, src, dst, &t, payload)
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut u = [0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&18u16.to_be_bytes());
    ipv4(PROTO_UDP, src, dst, &u, 10)
}

/// `payload` in an Ethernet frame from `src` to `dst`.
fn eth(src: MacAddr, dst: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ETH_HLEN];
    EthHeader {
        dst,
        src,
        ethertype,
    }
    .write(&mut f);
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet from client `m` to the gateway's MAC.
fn up(m: MacAddr, ip: &[u8]) -> Vec<u8> {
    eth(m, gw_mac(), ETHERTYPE_IPV4, ip)
}

fn plain() -> VnetHdr {
    VnetHdr::default()
}

/// A TSO super-packet's header: 1448-byte segments.
fn tso() -> VnetHdr {
    VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    }
}

fn deltas(w: &mut FastPath) -> Vec<FastDelta> {
    let mut out = Vec::new();
    w.take_deltas(&mut out);
    out
}

#[test]
fn uploads_and_downloads_of_an_admitted_client_are_forwarded_and_counted() {
    let mut w = worker();
    let out = up(mac(1), &tcp(A, WEB, 40000, 443, 1000));
    assert_eq!(w.from_lan(T0 + 5, &plain(), &out), FastVerdict::ToTun);
    let back = tcp(WEB, A, 443, 40000, 300);
    assert_eq!(
        w.from_tun(T0 + 6, &plain(), &back),
        FastVerdict::ToLan(mac(1))
    );
    // Super-packets count what they stand for: 10 full segments and one
    // of 100 bytes, each with its own 40 bytes of headers.
    let payload = 1448 * 10 + 100;
    let big = up(mac(1), &tcp(A, WEB, 40000, 443, payload));
    assert_eq!(w.from_lan(T0 + 7, &tso(), &big), FastVerdict::ToTun);
    let big_back = tcp(WEB, A, 443, 40000, payload);
    assert_eq!(
        w.from_tun(T0 + 8, &tso(), &big_back),
        FastVerdict::ToLan(mac(1))
    );
    let gso_octets = (payload + 11 * 40) as u64;
    let expected = FastDelta {
        token: 7,
        mac: mac(1),
        ip: A,
        counters: Counters {
            octets_in: 1040 + gso_octets,
            octets_out: 340 + gso_octets,
            packets_in: 12,
            packets_out: 12,
        },
        // Downloads do not move it, as in the engine.
        last_active: T0 + 7,
        last_seen: T0 + 7,
        shaped_drops: 0,
    };
    assert_eq!(deltas(&mut w), vec![expected]);
    assert_eq!(deltas(&mut w), vec![], "reported once, then reset");
    assert_eq!(w.len(), 1, "still admitted");
    // Ethernet padding after the IP packet is not counted.
    let mut padded = up(mac(1), &tcp(A, WEB, 40000, 443, 0));
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(w.from_lan(T0 + 9, &plain(), &padded), FastVerdict::ToTun);
    assert_eq!(deltas(&mut w)[0].counters.octets_in, 40);
}

/// Frames from the LAN the engine must see: none is forwarded or counted.
fn lan_diversions() -> Vec<(&'static str, Vec<u8>)> {
    let good = tcp(A, WEB, 40000, 443, 100);
    let mut v6 = good.clone();
    v6[0] = 0x65;
    vec![
        ("spoofed MAC", up(mac(2), &good)),
        ("unknown source", up(mac(2), &tcp(B, WEB, 40000, 443, 10))),
        ("to the gateway", up(mac(1), &tcp(A, GW, 40000, 3990, 10))),
        ("to another guest", up(mac(1), &tcp(A, B, 40000, 443, 10))),
        ("DHCP to a server", up(mac(1), &udp(A, WEB, 68, 67))),
        ("a guest's DHCP server", up(mac(1), &udp(A, WEB, 67, 68))),
        (
            "network broadcast",
            up(mac(1), &udp(A, "10.1.0.255".parse().unwrap(), 5, 5)),
        ),
        ("broadcast", up(mac(1), &udp(A, Ipv4Addr::BROADCAST, 5, 5))),
        (
            "multicast",
            up(mac(1), &udp(A, "239.1.1.1".parse().unwrap(), 5, 5)),
        ),
        (
            "group MAC",
            eth(mac(1), MacAddr::BROADCAST, ETHERTYPE_IPV4, &good),
        ),
        ("another MAC", eth(mac(1), mac(9), ETHERTYPE_IPV4, &good)),
        (
            "multicast source",
            eth(MacAddr([3, 0, 0, 0, 1, 1]), gw_mac(), ETHERTYPE_IPV4, &good),
        ),
        ("ARP", eth(mac(1), gw_mac(), ETHERTYPE_ARP, &[0; 28])),
        ("IPv6", eth(mac(1), gw_mac(), ETHERTYPE_IPV6, &[0x60; 60])),
        ("VLAN tag", eth(mac(1), gw_mac(), 0x8100, &good)),
        ("not version 4", up(mac(1), &v6)),
        ("empty", vec![]),
    ]
}

/// Packets from the TUN device the engine must see.
fn tun_diversions() -> Vec<(&'static str, Vec<u8>)> {
    let mut ipv6 = vec![0u8; 60];
    ipv6[0] = 0x60;
    vec![
        ("portal reply", tcp(GW, A, 3990, 40000, 10)),
        ("from a guest", tcp(B, A, 40000, 443, 10)),
        ("DNS answer over UDP", udp(DNS, A, 53, 40000)),
        ("DNS answer over TCP", tcp(DNS, A, 53, 40000, 10)),
        ("unknown destination", tcp(WEB, B, 443, 40000, 10)),
        ("IPv6", ipv6),
        ("empty", vec![]),
    ]
}

#[test]
fn what_the_engine_must_decide_is_slow_and_counts_nothing() {
    let mut w = worker();
    for (why, f) in lan_diversions() {
        for vnet in [plain(), tso()] {
            assert_eq!(w.from_lan(T0, &vnet, &f), FastVerdict::Slow, "{why}");
        }
    }
    for (why, p) in tun_diversions() {
        for vnet in [plain(), tso()] {
            assert_eq!(w.from_tun(T0, &vnet, &p), FastVerdict::Slow, "{why}");
        }
    }
    // Every truncation of good traffic, and headers that lie.
    let out = up(mac(1), &tcp(A, WEB, 40000, 443, 100));
    let back = tcp(WEB, A, 443, 40000, 100);
    for n in 0..out.len() {
        assert_eq!(
            w.from_lan(T0, &plain(), &out[..n]),
            FastVerdict::Slow,
            "{n}"
        );
    }
    for n in 0..back.len() {
        assert_eq!(
            w.from_tun(T0, &plain(), &back[..n]),
            FastVerdict::Slow,
            "{n}"
        );
    }
    let mut short_ihl = back.clone();
    short_ihl[0] = 0x44;
    let mut bad_data_offset = back.clone();
    bad_data_offset[32] = 0x40; // 16 bytes: shorter than a TCP header
    for p in [short_ihl, bad_data_offset] {
        assert_eq!(w.from_tun(T0, &plain(), &p), FastVerdict::Slow);
        assert_eq!(w.from_lan(T0, &plain(), &up(mac(1), &p)), FastVerdict::Slow);
    }
    assert_eq!(deltas(&mut w), vec![]);
    assert_eq!(w.revoke(A).unwrap().counters, Counters::default());
}

#[test]
fn admissions_replaced_and_revoked_hand_back_what_they_counted() {
    let mut w = worker();
    let out = up(mac(1), &tcp(A, WEB, 40000, 443, 60));
    assert_eq!(w.from_lan(T0, &plain(), &out), FastVerdict::ToTun);
    let same = FastAdmit {
        ip: A,
        mac: mac(1),
        token: 7,
        limits: FastLimits::default(),
        owner: false,
        divert_http: false,
    };
    assert_eq!(w.admit(same.clone()), None, "same admission: nothing moves");
    let next = FastAdmit { token: 8, ..same };
    let old = w.admit(next).expect("the replaced admission's delta");
    assert_eq!((old.token, old.counters.packets_in), (7, 1));
    assert_eq!(deltas(&mut w), vec![], "not reported twice");
    assert_eq!(w.from_lan(T0 + 1, &plain(), &out), FastVerdict::ToTun);
    let gone = w.revoke(A).unwrap();
    assert_eq!((gone.token, gone.counters.octets_in), (8, 100));
    assert_eq!(w.revoke(A), None, "not admitted any more");
    assert_eq!(w.from_lan(T0 + 2, &plain(), &out), FastVerdict::Slow);
    assert_eq!(deltas(&mut w), vec![]);
    // Revoked untouched: a zero delta all the same, the token is done.
    let third = FastAdmit {
        ip: A,
        mac: mac(1),
        token: 9,
        limits: FastLimits::default(),
        owner: false,
        divert_http: false,
    };
    w.admit(third);
    let mut all = Vec::new();
    w.revoke_all(&mut all);
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].token, all[0].counters), (9, Counters::default()));
    assert!(w.is_empty());
}

#[test]
fn authorized_sessions_go_to_the_workers_with_their_limits() {
    let mut e = engine();
    assert_eq!(listed(&e), vec![], "nobody logged in");
    let sid = login(&mut e, mac(1), SessionLimits::default());
    assert_eq!(listed(&e), vec![(A, mac(1), sid)]);
    assert!(e.fast_path_sessions()[0].limits.unlimited());
    let shaped = SessionLimits {
        bandwidth_up_bps: Some(1_000_000),
        bandwidth_down_bps: Some(2_000_000),
        max_total_octets: Some(10_000),
        ..Default::default()
    };
    e.set_limits(mac(1), shaped, T0).unwrap();
    let c = e.sessions.by_mac_mut(mac(1)).unwrap();
    c.counters.octets_in = 4_000;
    let expect = FastLimits {
        up_bps: Some(1_000_000),
        down_bps: Some(2_000_000),
        total_left: Some(6_000),
        ..Default::default()
    };
    assert_eq!(
        e.fast_path_sessions()[0].limits,
        expect,
        "what is left of the quota"
    );
    let c = e.sessions.by_mac_mut(mac(1)).unwrap();
    c.counters.octets_out = 6_000;
    assert_eq!(listed(&e), vec![], "over its quota: the engine decides");
    e.set_limits(mac(1), SessionLimits::default(), T0).unwrap();
    assert_eq!(listed(&e).len(), 1);
    e.sessions.throttle(mac(1), 64_000, 64_000, T0);
    assert_eq!(listed(&e), vec![], "throttled");
}

/// A worker with client 1 admitted with `limits`, as its owner or not.
fn limited_worker(limits: FastLimits, owner: bool) -> FastPath {
    let mut w = FastPath::new(engine().fast_settings(), 1 << 20);
    w.admit(FastAdmit {
        ip: A,
        mac: mac(1),
        token: 7,
        limits,
        owner,
        divert_http: false,
    });
    w
}

#[test]
fn the_owner_shapes_at_the_rate_and_others_hand_off() {
    // 8 Mbit/s up: 1,000 bytes per millisecond, a depth of 100,000 bytes.
    let limits = FastLimits {
        up_bps: Some(8_000_000),
        ..Default::default()
    };
    let out = up(mac(1), &tcp(A, WEB, 40000, 443, 960)); // 1,000 IP bytes
    let mut other = limited_worker(limits, false);
    assert_eq!(other.from_lan(T0, &plain(), &out), FastVerdict::Handoff);
    assert_eq!(deltas(&mut other), vec![], "nothing counted by a non-owner");
    let mut w = limited_worker(limits, true);
    let verdicts: Vec<FastVerdict> = (0..250).map(|_| w.from_lan(T0, &plain(), &out)).collect();
    let passed = verdicts
        .iter()
        .filter(|v| **v == FastVerdict::ToTun)
        .count();
    let held = verdicts.iter().filter(|v| **v == FastVerdict::Held).count();
    assert!(
        (100..=101).contains(&passed),
        "the bucket's depth passes: {passed}"
    );
    assert_eq!(
        passed + held,
        250,
        "the rest is held (the queue takes 196,608 B)"
    );
    let d = deltas(&mut w);
    assert_eq!(
        d[0].counters.packets_in, passed as u64,
        "held packets not counted yet"
    );
    // Released at the rate: 1,000 bytes a millisecond.
    let mut released = Vec::new();
    let mut at = T0;
    while w.next_release().is_some() {
        at = w.next_release().unwrap().max(at + 1);
        w.release_held(at, &mut released);
    }
    assert_eq!(released.len(), held);
    assert!(released
        .iter()
        .all(|r| matches!(r, Released::ToTun(h) if h.octets == 1000)));
    let ms = at - T0;
    assert!(
        (held as u64 - 1..=held as u64 + 2).contains(&ms),
        "{held} held took {ms} ms"
    );
    let d = deltas(&mut w);
    assert_eq!(
        d[0].counters.packets_in, held as u64,
        "counted as they went"
    );
    assert_eq!(d[0].counters.octets_in, 1000 * held as u64);
}

#[test]
fn a_full_queue_drops_and_revoke_drops_what_is_held() {
    let limits = FastLimits {
        down_bps: Some(80_000), // 10 bytes a millisecond, depth 6,056 B
        ..Default::default()
    };
    let mut w = limited_worker(limits, true);
    let back = tcp(WEB, A, 443, 40000, 1460); // 1,500 IP bytes
    let v: Vec<FastVerdict> = (0..200).map(|_| w.from_tun(T0, &plain(), &back)).collect();
    let count = |x: FastVerdict| v.iter().filter(|y| **y == x).count() as u64;
    let (sent, held, dropped) = (
        count(FastVerdict::ToLan(mac(1))),
        count(FastVerdict::Held),
        count(FastVerdict::Drop),
    );
    assert_eq!(sent + held + dropped, 200);
    assert!(held > 0 && dropped > 0, "{sent}/{held}/{dropped}");
    let gone = w.revoke(A).unwrap();
    assert_eq!(
        gone.shaped_drops,
        dropped + held,
        "held packets are dropped, counted"
    );
    assert_eq!(gone.counters.packets_out, sent);
    assert_eq!(w.next_release(), None);
    // The engine counts them as shaped.
    let mut e = engine();
    let sid = login(&mut e, mac(1), SessionLimits::default());
    let d = FastDelta {
        ip: A,
        mac: mac(1),
        ..gone
    };
    assert!(e.apply_fast_delta(&sid, &d));
    assert_eq!(e.drops().get(DropReason::Shaped), dropped + held);
}

#[test]
fn a_quota_runs_out_on_the_packet_that_would_cross_it() {
    let out = up(mac(1), &tcp(A, WEB, 40000, 443, 960)); // 1,000 IP bytes
    let back = tcp(WEB, A, 443, 40000, 960);
    for limits in [
        FastLimits {
            in_left: Some(3_500),
            ..Default::default()
        },
        FastLimits {
            total_left: Some(3_500),
            ..Default::default()
        },
    ] {
        let mut w = limited_worker(limits, true);
        let v: Vec<FastVerdict> = (0..5).map(|_| w.from_lan(T0, &plain(), &out)).collect();
        assert_eq!(&v[..3], &[FastVerdict::ToTun; 3], "{limits:?}");
        assert_eq!(&v[3..], &[FastVerdict::Slow; 2], "{limits:?}");
        assert!(w.take_urgent(), "the engine must hear at once");
        assert!(!w.take_urgent(), "once");
        assert_eq!(
            w.from_tun(T0, &plain(), &back),
            FastVerdict::Slow,
            "exhausted both ways"
        );
        assert_eq!(deltas(&mut w)[0].counters.octets_in, 3_000);
    }
    let limits = FastLimits {
        out_left: Some(1_500),
        ..Default::default()
    };
    let mut w = limited_worker(limits, true);
    assert_eq!(
        w.from_lan(T0, &plain(), &out),
        FastVerdict::ToTun,
        "uploads are free"
    );
    assert_eq!(w.from_tun(T0, &plain(), &back), FastVerdict::ToLan(mac(1)));
    assert_eq!(w.from_tun(T0, &plain(), &back), FastVerdict::Slow);
}

#[test]
fn connections_redirected_to_the_portal_stay_with_the_engine() {
    let mut e = engine();
    // Client 2 opens a web connection before login: steered to the portal.
    let mut syn = up(mac(2), &tcp(B, WEB, 40001, 80, 0));
    syn[ETH_HLEN + 33] = 0x02;
    assert_eq!(e.from_lan(T0, &plain(), &mut syn), LanAction::ToTun);
    let sid2 = login(&mut e, mac(2), SessionLimits::default());
    let sid1 = login(&mut e, mac(1), SessionLimits::default());
    assert_eq!(
        e.intercept.flow_clients().into_iter().collect::<Vec<_>>(),
        vec![B]
    );
    let mut all = e.fast_path_sessions();
    all.sort_by_key(|s| s.ip);
    let flags: Vec<_> = all
        .iter()
        .map(|s| (s.ip, s.session_id.as_str(), s.divert_http))
        .collect();
    assert_eq!(
        flags,
        vec![(A, sid1.as_str(), false), (B, sid2.as_str(), true)]
    );
    // A worker leaves client 2's web traffic to the engine, nothing else.
    let mut w = FastPath::new(e.fast_settings(), 1 << 20);
    w.admit(FastAdmit {
        ip: B,
        mac: mac(2),
        token: 1,
        limits: FastLimits::default(),
        owner: false,
        divert_http: true,
    });
    let mut more = up(mac(2), &tcp(B, WEB, 40001, 80, 10));
    assert_eq!(w.from_lan(T0 + 1, &plain(), &more), FastVerdict::Slow);
    let https = up(mac(2), &tcp(B, WEB, 40002, 443, 10));
    assert_eq!(w.from_lan(T0 + 1, &plain(), &https), FastVerdict::ToTun);
    // The engine rewrites the redirected connection's segments to the portal.
    assert_eq!(e.from_lan(T0 + 1, &plain(), &mut more), LanAction::ToTun);
    let ip = frame::parse_ipv4(&more[ETH_HLEN..]).unwrap();
    assert_eq!((ip.dst, ip.dst_port), (GW, 3990));
}

#[test]
fn deltas_of_ended_sessions_are_refused() {
    let mut e = engine();
    let sid = login(&mut e, mac(1), SessionLimits::default());
    let d = FastDelta {
        token: 7,
        mac: mac(1),
        ip: A,
        counters: Counters {
            octets_in: 100,
            octets_out: 200,
            packets_in: 1,
            packets_out: 2,
        },
        last_active: T0 + 10,
        last_seen: T0 + 10,
        shaped_drops: 0,
    };
    assert!(e.apply_fast_delta(&sid, &d));
    let c = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(
        (c.counters, c.last_active, c.last_seen),
        (d.counters, T0 + 10, T0 + 10)
    );
    assert!(!e.apply_fast_delta("another", &d), "another session id");
    e.logout(mac(1), EndReason::UserRequest, T0 + 20).unwrap();
    assert!(!e.apply_fast_delta(&sid, &d), "ended");
    let sid2 = login(&mut e, mac(1), SessionLimits::default());
    assert_ne!(sid, sid2);
    assert!(
        !e.apply_fast_delta(&sid, &d),
        "a new session of the same MAC"
    );
    let c = e.sessions().by_mac(mac(1)).unwrap();
    assert_eq!(c.counters, Counters::default());
    // Forwarded all the same: the totals have every delta offered.
    let t = e.metrics().traffic;
    assert_eq!((t.upload_bytes, t.download_packets), (400, 8));
}

/// One session forwarded by the engine and two workers at once, the way
/// the shell will run them.
struct Rig {
    e: Engine,
    workers: [FastPath; 2],
    sid: String,
    /// What was forwarded, packet by packet.
    expected: Counters,
    /// A small deterministic generator (no rand crate in the engine).
    seed: u64,
}

impl Rig {
    fn new() -> Rig {
        let mut e = engine();
        login(&mut e, mac(1), SessionLimits::default());
        let (ip, m, sid) = listed(&e).pop().unwrap();
        let workers = [0, 1].map(|_| {
            let mut w = FastPath::new(e.fast_settings(), 1 << 20);
            w.admit(FastAdmit {
                ip,
                mac: m,
                token: 1,
                limits: FastLimits::default(),
                owner: false,
                divert_http: false,
            });
            w
        });
        e.take_events();
        Rig {
            e,
            workers,
            sid,
            expected: Counters::default(),
            seed: 0x5eed,
        }
    }

    fn next(&mut self) -> u64 {
        self.seed = (self.seed)
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.seed >> 33
    }

    /// Packet `i`: up or down, plain or GSO, through thread `i % 3`
    /// (0: the engine's).
    fn send(&mut self, i: u64, now: UnixMillis) {
        let r = self.next();
        let gso = r % 4 == 0;
        let payload = (r >> 3) as usize % if gso { 30_000 } else { 1400 };
        let vnet = if gso { tso() } else { plain() };
        let (segs, octets) = wire_footprint(&vnet, 40 + payload, 40);
        let thread = (i % 3) as usize;
        if r & 2 == 0 {
            let mut f = up(mac(1), &tcp(A, WEB, 40000, 443, payload));
            let ok = match thread {
                0 => self.e.from_lan(now, &vnet, &mut f) == LanAction::ToTun,
                n => self.workers[n - 1].from_lan(now, &vnet, &f) == FastVerdict::ToTun,
            };
            assert!(ok, "upload {i}");
            self.expected.packets_in += segs;
            self.expected.octets_in += octets;
        } else {
            let mut p = tcp(WEB, A, 443, 40000, payload);
            let ok = match thread {
                0 => self.e.from_tun(now, &vnet, &mut p) == TunAction::ToLan(mac(1)),
                n => self.workers[n - 1].from_tun(now, &vnet, &p) == FastVerdict::ToLan(mac(1)),
            };
            assert!(ok, "download {i}");
            self.expected.packets_out += segs;
            self.expected.octets_out += octets;
        }
    }

    /// A worker reports, now and then, as the shell's timer will have it.
    fn maybe_report(&mut self) {
        let r = self.next();
        if r % 7 != 0 {
            return;
        }
        let mut out = Vec::new();
        self.workers[(r >> 3) as usize % 2].take_deltas(&mut out);
        for d in &out {
            assert!(self.e.apply_fast_delta(&self.sid, d));
        }
    }
}

fn add(c: &mut Counters, d: &Counters) {
    c.packets_in += d.packets_in;
    c.octets_in += d.octets_in;
    c.packets_out += d.packets_out;
    c.octets_out += d.octets_out;
}

#[test]
fn engine_and_workers_together_count_every_forwarded_byte_once() {
    let mut rig = Rig::new();
    for i in 0..900 {
        rig.send(i, T0 + 1000 + i);
        rig.maybe_report();
    }
    // The guest logs out while both workers still hold deltas.
    rig.e
        .logout(mac(1), EndReason::UserRequest, T0 + 5000)
        .unwrap();
    let mut ended = match rig.e.take_events().pop() {
        Some(Event::SessionEnded(s)) => s,
        other => panic!("{other:?}"),
    };
    // The shell revokes the session on every worker and adds the final
    // deltas to the Stop it held back for them.
    for w in &mut rig.workers {
        let d = w.revoke(A).expect("admitted");
        assert!(!rig.e.apply_fast_delta(&ended.session_id, &d));
        add(&mut ended.counters, &d.counters);
    }
    assert_eq!(ended.counters, rig.expected);
    let t = rig.e.metrics().traffic;
    let totals = (
        t.upload_packets,
        t.upload_bytes,
        t.download_packets,
        t.download_bytes,
    );
    let x = &rig.expected;
    assert_eq!(
        totals,
        (x.packets_in, x.octets_in, x.packets_out, x.octets_out)
    );
    // After the revoke the workers hand everything to the engine, which
    // drops it now that the guest is behind the portal again.
    let mut f = up(mac(1), &tcp(A, WEB, 40000, 443, 10));
    let mut p = tcp(WEB, A, 443, 40000, 10);
    for w in &mut rig.workers {
        assert_eq!(w.from_lan(T0 + 6000, &plain(), &f), FastVerdict::Slow);
        assert_eq!(w.from_tun(T0 + 6000, &plain(), &p), FastVerdict::Slow);
    }
    let why = DropReason::Unauthorized;
    assert_eq!(
        rig.e.from_lan(T0 + 6000, &plain(), &mut f),
        LanAction::Drop(why)
    );
    assert_eq!(
        rig.e.from_tun(T0 + 6000, &plain(), &mut p),
        TunAction::Drop(why)
    );
}

#[test]
fn the_settings_are_the_engines() {
    let s = engine().fast_settings();
    assert_eq!((s.gateway_mac, s.gateway_ip), (gw_mac(), GW));
    assert_eq!(s.network, "10.1.0.0/24".parse().unwrap());
    let from: FastSettings = (&testkit::engine_settings(DNS)).into();
    assert_eq!(from, s);
}
