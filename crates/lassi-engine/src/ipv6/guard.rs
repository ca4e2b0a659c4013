//! What a client's IPv6 packet is, for the guards (issue 13, "Guards"):
//! [`classify_from_client`] sorts a packet from the LAN into the neighbour
//! discovery and DHCPv6 lassi answers, the traffic the data plane holds or
//! forwards, and the packets no client may send, which are dropped and
//! counted ([`GuardDrop`], [`GuardStats`]): router advertisements and
//! redirects (a rogue router on the shared L2), DHCPv6 server messages (a
//! rogue server), malformed neighbour discovery, and neighbour discovery
//! hidden in fragments (RFC 6980). The source-address check (a client's
//! source must be one of its own, `ipv6::addrs`) is the data plane's next
//! step; this only reads the packet.

use core::net::Ipv6Addr;

use serde::Serialize;

use crate::wire::dhcpv6::{self, MessageType};
use crate::wire::ipv6::{self, Ipv6Summary, NEXT_ICMPV6, NEXT_UDP};
use crate::wire::ndp::{self, Ipv6Meta, Repr};

/// Why a client's IPv6 packet is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardDrop {
    /// A Router Advertisement from a client.
    RouterAdvert,
    /// A Redirect from a client.
    Redirect,
    /// A DHCPv6 server message (Advertise, Reply, Reconfigure, Relay-reply,
    /// or anything from port 547 or to port 546) from a client.
    Dhcpv6Server,
    /// Neighbour discovery that fails RFC 4861's checks (hop limit,
    /// checksum, options, addresses).
    BadNeighborDiscovery,
    /// Neighbour discovery in a fragment (RFC 6980).
    FragmentedNd,
    /// Not a well-formed IPv6 packet (truncated, too many extension headers).
    Malformed,
}

/// A client's IPv6 packet that passes the guards, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientV6 {
    /// A Router Solicitation (answer: `ra::RaScheduler::handle_router_solicit`).
    RouterSolicit(Repr),
    /// A Neighbor Solicitation; `dad` when from `::` (learn the target).
    NeighborSolicit {
        /// The parsed message.
        repr: Repr,
        /// Duplicate address detection.
        dad: bool,
    },
    /// A Neighbor Advertisement (learn the target).
    NeighborAdvert(Repr),
    /// A DHCPv6 client message to a server (port 547).
    Dhcpv6,
    /// Any other ICMPv6 message (echo, MLD, errors), with its type.
    Icmpv6(u8),
    /// A non-first fragment: the upper layer cannot be read.
    Fragment,
    /// Anything else (TCP, UDP, ...): held or forwarded by the data plane.
    Other,
}

/// Counters of [`GuardDrop`]s, one per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GuardStats {
    /// Router advertisements from clients.
    pub router_adverts: u64,
    /// Redirects from clients.
    pub redirects: u64,
    /// DHCPv6 server messages from clients.
    pub dhcpv6_server: u64,
    /// Malformed neighbour discovery.
    pub bad_nd: u64,
    /// Fragmented neighbour discovery.
    pub fragmented_nd: u64,
    /// Malformed IPv6.
    pub malformed: u64,
}

impl GuardStats {
    /// Counts one drop.
    pub fn count(&mut self, d: GuardDrop) {
        let c = match d {
            GuardDrop::RouterAdvert => &mut self.router_adverts,
            GuardDrop::Redirect => &mut self.redirects,
            GuardDrop::Dhcpv6Server => &mut self.dhcpv6_server,
            GuardDrop::BadNeighborDiscovery => &mut self.bad_nd,
            GuardDrop::FragmentedNd => &mut self.fragmented_nd,
            GuardDrop::Malformed => &mut self.malformed,
        };
        *c += 1;
    }
}

fn is_nd(kind: u8) -> bool {
    (ndp::ROUTER_SOLICIT..=ndp::REDIRECT).contains(&kind)
}

fn classify_icmpv6(s: &Ipv6Summary, msg: &[u8]) -> Result<ClientV6, GuardDrop> {
    let Some(&kind) = msg.first() else {
        return Err(GuardDrop::Malformed);
    };
    if s.fragment.is_some() && is_nd(kind) {
        return Err(GuardDrop::FragmentedNd);
    }
    match kind {
        ndp::ROUTER_ADVERT => return Err(GuardDrop::RouterAdvert),
        ndp::REDIRECT => return Err(GuardDrop::Redirect),
        k if !is_nd(k) => return Ok(ClientV6::Icmpv6(k)),
        _ => {}
    }
    let meta = Ipv6Meta {
        src: s.src,
        dst: s.dst,
        hop_limit: s.hop_limit,
    };
    let repr = Repr::parse_validated(&meta, msg).map_err(|_| GuardDrop::BadNeighborDiscovery)?;
    Ok(match repr {
        Repr::RouterSolicit { .. } => ClientV6::RouterSolicit(repr),
        Repr::NeighborSolicit { .. } => ClientV6::NeighborSolicit {
            dad: repr.is_dad(s.src),
            repr,
        },
        _ => ClientV6::NeighborAdvert(repr),
    })
}

fn classify_udp(udp: &[u8]) -> Result<ClientV6, GuardDrop> {
    let Some(h) = udp.get(..8) else {
        return Err(GuardDrop::Malformed);
    };
    let sport = u16::from_be_bytes([h[0], h[1]]);
    let dport = u16::from_be_bytes([h[2], h[3]]);
    if sport == dhcpv6::SERVER_PORT || dport == dhcpv6::CLIENT_PORT {
        return Err(GuardDrop::Dhcpv6Server);
    }
    if dport != dhcpv6::SERVER_PORT {
        return Ok(ClientV6::Other);
    }
    match udp.get(8).map(|&t| MessageType::from(t)) {
        Some(t) if t.is_from_server() => Err(GuardDrop::Dhcpv6Server),
        _ => Ok(ClientV6::Dhcpv6),
    }
}

/// Sorts the IPv6 packet `packet` (from the version field) a client sent
/// on the LAN; see the module docs. Returns the parsed header too.
pub fn classify_from_client(packet: &[u8]) -> Result<(Ipv6Summary, ClientV6), GuardDrop> {
    let s = ipv6::parse(packet).map_err(|_| GuardDrop::Malformed)?;
    if s.fragment.is_some_and(|f| f.offset != 0) {
        return Ok((s, ClientV6::Fragment));
    }
    let upper = s.upper(packet);
    let class = match s.upper {
        NEXT_ICMPV6 => classify_icmpv6(&s, upper)?,
        // A first fragment's UDP header is there to read (RFC 7112).
        NEXT_UDP => classify_udp(upper)?,
        _ => ClientV6::Other,
    };
    Ok((s, class))
}

/// The target address a neighbour-discovery message speaks for, to learn
/// it as the sender's (a DAD probe or an advertisement).
pub fn learnable_target(class: &ClientV6) -> Option<Ipv6Addr> {
    match class {
        ClientV6::NeighborSolicit {
            repr: Repr::NeighborSolicit { target, .. },
            dad: true,
        }
        | ClientV6::NeighborAdvert(Repr::NeighborAdvert { target, .. }) => Some(*target),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dhcpv6::{DhcpOption, Message};
    use crate::wire::ipv6::Ipv6Transmit;
    use crate::wire::ndp::{NaFlags, NdpOption, RaFlags};
    use crate::wire::MacAddr;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn packet(src: &str, dst: &str, hop: u8, next: u8, payload: Vec<u8>) -> Vec<u8> {
        Ipv6Transmit {
            src_mac: MacAddr([2; 6]),
            dst_mac: MacAddr([4; 6]),
            src: ip(src),
            dst: ip(dst),
            hop_limit: hop,
            next_header: next,
            payload,
        }
        .to_frame()[14..]
            .to_vec()
    }

    fn nd(src: &str, dst: &str, repr: &Repr) -> Vec<u8> {
        packet(src, dst, 255, NEXT_ICMPV6, repr.emit(ip(src), ip(dst)))
    }

    fn udp(src: &str, dst: &str, sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let d = ipv6::udp_datagram(ip(src), ip(dst), sport, dport, body);
        packet(src, dst, 64, NEXT_UDP, d)
    }

    fn class(p: &[u8]) -> Result<ClientV6, GuardDrop> {
        classify_from_client(p).map(|(_, c)| c)
    }

    #[test]
    fn rogue_router_messages_are_dropped() {
        let ra = Repr::RouterAdvert {
            hop_limit: 64,
            flags: RaFlags::default(),
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            options: vec![],
        };
        assert_eq!(
            class(&nd("fe80::66", "ff02::1", &ra)),
            Err(GuardDrop::RouterAdvert)
        );
        // Even malformed, off-link or behind extension headers.
        assert_eq!(
            class(&packet(
                "2001:db8::6",
                "ff02::1",
                3,
                NEXT_ICMPV6,
                vec![134, 9]
            )),
            Err(GuardDrop::RouterAdvert)
        );
        let mut hbh = vec![NEXT_ICMPV6, 0, 5, 2, 0, 0, 1, 0];
        hbh.extend(ra.emit(ip("fe80::66"), ip("ff02::1")));
        assert_eq!(
            class(&packet("fe80::66", "ff02::1", 255, 0, hbh)),
            Err(GuardDrop::RouterAdvert)
        );
        let redirect = Repr::Redirect {
            target: ip("fe80::66"),
            destination: ip("2001:db8::1"),
            options: vec![],
        };
        assert_eq!(
            class(&nd("fe80::66", "fe80::5", &redirect)),
            Err(GuardDrop::Redirect)
        );
    }

    #[test]
    fn rogue_dhcpv6_servers_are_dropped() {
        let reply = Message {
            msg_type: MessageType::Reply,
            xid: 1,
            options: vec![DhcpOption::RapidCommit],
        };
        let p = udp("fe80::66", "fe80::5", 547, 546, &reply.emit());
        assert_eq!(class(&p), Err(GuardDrop::Dhcpv6Server));
        assert_eq!(
            class(&udp("fe80::66", "ff02::1:2", 546, 547, &reply.emit())),
            Err(GuardDrop::Dhcpv6Server)
        );
        assert_eq!(
            class(&udp("fe80::66", "fe80::5", 1234, 546, &[10, 0, 0, 0])),
            Err(GuardDrop::Dhcpv6Server)
        );
        assert_eq!(
            class(&udp("fe80::66", "fe80::5", 547, 9999, &[])),
            Err(GuardDrop::Dhcpv6Server)
        );
        let solicit = Message {
            msg_type: MessageType::Solicit,
            xid: 1,
            options: vec![],
        };
        assert_eq!(
            class(&udp("fe80::5", "ff02::1:2", 546, 547, &solicit.emit())),
            Ok(ClientV6::Dhcpv6)
        );
        assert_eq!(
            class(&udp("2001:db8::5", "2001:db8::53", 5353, 53, b"q")),
            Ok(ClientV6::Other)
        );
    }

    #[test]
    fn neighbour_discovery_is_sorted_and_checked() {
        let t = ip("2001:db8:1::77");
        let dad = Repr::NeighborSolicit {
            target: t,
            options: vec![],
        };
        let c = class(&nd("::", "ff02::1:ff00:77", &dad)).unwrap();
        assert_eq!(learnable_target(&c), Some(t));
        assert!(matches!(c, ClientV6::NeighborSolicit { dad: true, .. }));
        let ns = Repr::NeighborSolicit {
            target: ip("fe80::1"),
            options: vec![NdpOption::SourceLinkAddr(MacAddr([2; 6]))],
        };
        let c = class(&nd("fe80::5", "ff02::1:ff00:1", &ns)).unwrap();
        assert_eq!(learnable_target(&c), None);
        let na = Repr::NeighborAdvert {
            flags: NaFlags {
                override_: true,
                ..NaFlags::default()
            },
            target: t,
            options: vec![],
        };
        assert_eq!(
            learnable_target(&class(&nd("2001:db8:1::77", "ff02::1", &na)).unwrap()),
            Some(t)
        );
        let rs = Repr::RouterSolicit { options: vec![] };
        assert!(matches!(
            class(&nd("fe80::5", "ff02::2", &rs)),
            Ok(ClientV6::RouterSolicit(_))
        ));
        // Hop limit below 255: came through a router; bad checksum; DAD with an SLLA.
        let p = packet(
            "fe80::5",
            "ff02::2",
            64,
            NEXT_ICMPV6,
            rs.emit(ip("fe80::5"), ip("ff02::2")),
        );
        assert_eq!(class(&p), Err(GuardDrop::BadNeighborDiscovery));
        let mut p = nd("fe80::5", "ff02::2", &rs);
        p[44] ^= 1;
        assert_eq!(class(&p), Err(GuardDrop::BadNeighborDiscovery));
        let bad_dad = Repr::NeighborSolicit {
            target: t,
            options: vec![NdpOption::SourceLinkAddr(MacAddr([2; 6]))],
        };
        assert_eq!(
            class(&nd("::", "ff02::1:ff00:77", &bad_dad)),
            Err(GuardDrop::BadNeighborDiscovery)
        );
    }

    #[test]
    fn fragments_and_other_traffic() {
        // A first fragment carrying an NS: RFC 6980 says drop.
        let mut frag = vec![NEXT_ICMPV6, 0, 0, 1, 0, 0, 0, 9];
        frag.extend([135, 0, 0, 0]);
        assert_eq!(
            class(&packet("fe80::5", "fe80::1", 255, 44, frag)),
            Err(GuardDrop::FragmentedNd)
        );
        // A later fragment cannot be read.
        let later = vec![NEXT_UDP, 0, 0, 0x10, 0, 0, 0, 9, 1, 2, 3, 4];
        assert_eq!(
            class(&packet("2001:db8::5", "2001:db8::9", 64, 44, later)),
            Ok(ClientV6::Fragment)
        );
        let echo = packet(
            "2001:db8::5",
            "2001:db8::9",
            64,
            NEXT_ICMPV6,
            vec![128, 0, 0, 0, 0, 1, 0, 1],
        );
        assert_eq!(class(&echo), Ok(ClientV6::Icmpv6(128)));
        assert_eq!(
            class(&packet("2001:db8::5", "2001:db8::9", 64, 6, vec![0; 20])),
            Ok(ClientV6::Other)
        );
        assert_eq!(class(&[0x60, 0, 0]), Err(GuardDrop::Malformed));
        assert_eq!(
            class(&packet("::", "::", 1, NEXT_UDP, vec![1, 2])),
            Err(GuardDrop::Malformed)
        );
        assert_eq!(
            class(&packet("::", "::", 1, NEXT_ICMPV6, vec![])),
            Err(GuardDrop::Malformed)
        );
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let mut s = GuardStats::default();
        for d in [
            GuardDrop::RouterAdvert,
            GuardDrop::RouterAdvert,
            GuardDrop::Dhcpv6Server,
            GuardDrop::Redirect,
        ] {
            s.count(d);
        }
        assert_eq!(
            (s.router_adverts, s.dhcpv6_server, s.redirects, s.malformed),
            (2, 1, 1, 0)
        );
    }
}
