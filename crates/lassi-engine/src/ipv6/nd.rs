//! Answers to neighbour solicitations for the gateway's own IPv6 addresses
//! (RFC 4861 §7.2.4), the IPv6 counterpart of answering ARP: the data plane
//! parses a client's NS with [`Repr::parse_validated`] and, when the target
//! is one of lassi's addresses, sends what [`answer_solicit`] returns.

use core::net::Ipv6Addr;

use crate::wire::ipv6::{self, Ipv6Transmit, NEXT_ICMPV6};
use crate::wire::ndp::{Ipv6Meta, NaFlags, NdpOption, Repr, ND_HOP_LIMIT};
use crate::wire::MacAddr;

/// The Neighbor Advertisement answering `ns` (validated, from `meta`, in a
/// frame from `src_mac`) when its target is in `own`; `None` otherwise.
///
/// A normal solicitation gets a solicited NA back to its sender (to the
/// MAC in its source link-layer option, else the frame's source). A
/// duplicate-address-detection probe (source `::`) for one of lassi's
/// addresses is a client about to take the gateway's address: lassi
/// defends it with an unsolicited NA to all nodes, so the client's DAD
/// fails (RFC 4862 §5.4.3).
pub fn answer_solicit(
    router_mac: MacAddr,
    own: &[Ipv6Addr],
    meta: &Ipv6Meta,
    ns: &Repr,
    src_mac: MacAddr,
) -> Option<Ipv6Transmit> {
    let Repr::NeighborSolicit { target, .. } = ns else {
        return None;
    };
    if !own.contains(target) {
        return None;
    }
    let dad = meta.src.is_unspecified();
    let (dst, dst_mac) = if dad {
        (ipv6::ALL_NODES, ipv6::multicast_mac(ipv6::ALL_NODES))
    } else {
        (meta.src, ns.source_link_addr().unwrap_or(src_mac))
    };
    let na = Repr::NeighborAdvert {
        flags: NaFlags {
            router: true,
            solicited: !dad,
            override_: true,
        },
        target: *target,
        options: vec![NdpOption::TargetLinkAddr(router_mac)],
    };
    Some(Ipv6Transmit {
        src_mac: router_mac,
        dst_mac,
        src: *target,
        dst,
        hop_limit: ND_HOP_LIMIT,
        next_header: NEXT_ICMPV6,
        payload: na.emit(*target, dst),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
    const CLIENT: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x99]);

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn na_of(t: &Ipv6Transmit) -> Repr {
        let meta = Ipv6Meta {
            src: t.src,
            dst: t.dst,
            hop_limit: t.hop_limit,
        };
        Repr::parse_validated(&meta, &t.payload).unwrap()
    }

    #[test]
    fn answers_for_own_addresses_only() {
        let own = [ip("fe80::1"), ip("2001:db8::1")];
        let ns = Repr::NeighborSolicit {
            target: ip("2001:db8::1"),
            options: vec![NdpOption::SourceLinkAddr(MacAddr([0x02, 0, 0, 0, 0, 0x77]))],
        };
        let meta = Ipv6Meta {
            src: ip("fe80::99"),
            dst: ipv6::solicited_node(ip("2001:db8::1")),
            hop_limit: 255,
        };
        let t = answer_solicit(GW, &own, &meta, &ns, CLIENT).unwrap();
        assert_eq!(
            (t.dst, t.dst_mac),
            (ip("fe80::99"), MacAddr([0x02, 0, 0, 0, 0, 0x77]))
        );
        assert_eq!(t.src, ip("2001:db8::1"));
        match na_of(&t) {
            Repr::NeighborAdvert {
                flags,
                target,
                options,
            } => {
                assert!(flags.router && flags.solicited && flags.override_);
                assert_eq!(target, ip("2001:db8::1"));
                assert_eq!(options, vec![NdpOption::TargetLinkAddr(GW)]);
            }
            r => panic!("{r:?}"),
        }
        let other = Repr::NeighborSolicit {
            target: ip("2001:db8::2"),
            options: vec![],
        };
        assert!(answer_solicit(GW, &own, &meta, &other, CLIENT).is_none());
        // Without a link-layer option the frame's source MAC is used.
        let bare = Repr::NeighborSolicit {
            target: ip("fe80::1"),
            options: vec![],
        };
        assert_eq!(
            answer_solicit(GW, &own, &meta, &bare, CLIENT)
                .unwrap()
                .dst_mac,
            CLIENT
        );
    }

    #[test]
    fn defends_own_address_against_dad() {
        let own = [ip("fe80::1")];
        let ns = Repr::NeighborSolicit {
            target: ip("fe80::1"),
            options: vec![],
        };
        let meta = Ipv6Meta {
            src: Ipv6Addr::UNSPECIFIED,
            dst: ipv6::solicited_node(ip("fe80::1")),
            hop_limit: 255,
        };
        let t = answer_solicit(GW, &own, &meta, &ns, CLIENT).unwrap();
        assert_eq!(t.dst, ipv6::ALL_NODES);
        match na_of(&t) {
            Repr::NeighborAdvert { flags, .. } => assert!(!flags.solicited && flags.override_),
            r => panic!("{r:?}"),
        }
    }
}
