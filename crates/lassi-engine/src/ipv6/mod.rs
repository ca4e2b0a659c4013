//! IPv6 on the LAN (issue 13), the parts that decide: lassi's router
//! advertisements and when to send them ([`ra`]), its answers to neighbour
//! solicitations for its own addresses ([`nd`]), the addresses each client
//! is learnt to use ([`addrs`]), and the guard that sorts what a client
//! sends ([`guard`]). The DHCPv6 server is [`crate::dhcp6`]; the codecs
//! are [`crate::wire::ipv6`], [`crate::wire::ndp`] and
//! [`crate::wire::dhcpv6`].
//!
//! Like the rest of the engine these take bytes and `now` and return
//! transmits and deadlines; the jitter RFC 4861 asks for comes from a seed
//! the shell passes in ([`Rng`]), never from the OS.

pub mod addrs;
pub mod guard;
pub mod nd;
pub mod ra;

/// A small deterministic generator (SplitMix64) for timer jitter: the shell
/// seeds it (from its own randomness), tests seed it with a constant. Not
/// for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi` (`lo` when `hi < lo`), near enough uniform.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        match span.checked_add(1) {
            Some(n) => lo + self.next_u64() % n,
            None => self.next_u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::addrs::{AddrSettings, AddrTable, Learn, Origin};
    use super::guard::{classify_from_client, learnable_target, ClientV6, GuardDrop};
    use super::ra::{RaScheduler, RaSettings};
    use super::Rng;
    use crate::dhcp6::{Dhcp6Server, Dhcp6Settings, Lease6Event};
    use crate::wire::dhcpv6::{self, DhcpOption, IaNa, Message, MessageType};
    use crate::wire::ipv6::{self, Ipv6Net, Ipv6Transmit, NEXT_ICMPV6, NEXT_UDP};
    use crate::wire::ndp::Repr;
    use crate::wire::MacAddr;
    use core::net::Ipv6Addr;

    const GW: MacAddr = MacAddr([2, 0, 0x5e, 0, 0, 1]);
    const PHONE: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x10]);
    const ROGUE: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x66]);

    fn packet(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: Vec<u8>) -> Vec<u8> {
        let t = Ipv6Transmit {
            src_mac: PHONE,
            dst_mac: GW,
            src,
            dst,
            hop_limit: 255,
            next_header: next,
            payload,
        };
        t.to_frame()[14..].to_vec()
    }

    /// The flow the data plane will run, end to end on the engine's parts:
    /// a phone's DAD probe and DHCPv6 exchange teach its addresses, an RS
    /// gets an RA, a rogue's RA is dropped and its spoofed source refused.
    #[test]
    fn a_phone_joins_and_a_rogue_does_not() {
        let prefix = Ipv6Net::new("2001:db8:1::".parse().unwrap(), 64).unwrap();
        let mut table = AddrTable::new(AddrSettings::new(Some(prefix)));
        let mut ra = RaScheduler::new(RaSettings::new(GW, Some(prefix)), 7, 0);
        let mut dhcp = Dhcp6Server::new(Dhcp6Settings::new(GW, prefix), vec![], 0);
        ra.handle_timeout(0);
        while ra.poll_transmit().is_some() {}

        // DAD for its link-local address: learnt.
        let ll = ipv6::link_local_from_mac(PHONE);
        let dad = Repr::NeighborSolicit {
            target: ll,
            options: vec![],
        };
        let dst = ipv6::solicited_node(ll);
        let p = packet(
            Ipv6Addr::UNSPECIFIED,
            dst,
            NEXT_ICMPV6,
            dad.emit(Ipv6Addr::UNSPECIFIED, dst),
        );
        let (_, class) = classify_from_client(&p).unwrap();
        let target = learnable_target(&class).unwrap();
        assert_eq!(table.learn(PHONE, target, Origin::Dad, 10), Learn::Added);

        // A router solicitation: an RA within half a second.
        let rs = Repr::RouterSolicit { options: vec![] };
        let p = packet(
            ll,
            ipv6::ALL_ROUTERS,
            NEXT_ICMPV6,
            rs.emit(ll, ipv6::ALL_ROUTERS),
        );
        let (s, class) = classify_from_client(&p).unwrap();
        assert!(matches!(class, ClientV6::RouterSolicit(_)) && table.is_own(PHONE, s.src));
        ra.handle_router_solicit(5_000);
        assert!(ra.poll_timeout().unwrap() <= 5_500);

        // DHCPv6 with Rapid Commit: the lease joins the phone's addresses.
        let solicit = Message {
            msg_type: MessageType::Solicit,
            xid: 1,
            options: vec![
                DhcpOption::ClientId(dhcpv6::duid_ll(PHONE.0)),
                DhcpOption::RapidCommit,
                DhcpOption::IaNa(IaNa {
                    iaid: 1,
                    t1: 0,
                    t2: 0,
                    options: vec![],
                }),
            ],
        };
        let udp = ipv6::udp_datagram(ll, ipv6::ALL_DHCP_SERVERS, 546, 547, &solicit.emit());
        let p = packet(ll, ipv6::ALL_DHCP_SERVERS, NEXT_UDP, udp);
        let (s, class) = classify_from_client(&p).unwrap();
        assert_eq!(class, ClientV6::Dhcpv6);
        dhcp.handle_message(
            s.upper(&p).get(8..).unwrap(),
            s.src,
            ipv6::ALL_DHCP_SERVERS,
            PHONE,
            6_000,
        )
        .unwrap();
        assert!(dhcp.poll_transmit().is_some());
        let Some(Lease6Event::Bound { mac, addr, .. }) = dhcp.poll_event() else {
            panic!()
        };
        assert_eq!(table.learn(mac, addr, Origin::Dhcpv6, 6_000), Learn::Added);
        assert!(table.is_own(PHONE, addr) && prefix.contains(addr));

        // A rogue's RA is dropped; its packets from the phone's address are not its own.
        let rogue_ra = RaSettings::new(ROGUE, Some(prefix)).advert(1800);
        let rll = ipv6::link_local_from_mac(ROGUE);
        let p = packet(
            rll,
            ipv6::ALL_NODES,
            NEXT_ICMPV6,
            rogue_ra.emit(rll, ipv6::ALL_NODES),
        );
        assert_eq!(classify_from_client(&p), Err(GuardDrop::RouterAdvert));
        assert!(!table.is_own(ROGUE, addr));
        assert!(matches!(
            table.learn(ROGUE, addr, Origin::Source, 7_000),
            Learn::Refused(_)
        ));
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.between(200, 600);
            assert_eq!(x, b.between(200, 600));
            assert!((200..=600).contains(&x));
        }
        assert_eq!(a.between(5, 5), 5);
        assert_eq!(a.between(9, 3), 9);
        let _ = a.between(0, u64::MAX);
    }
}
