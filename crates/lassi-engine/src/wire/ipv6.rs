//! IPv6 (RFC 8200): the header and extension-header walk the guards need,
//! IPv6 networks in CIDR form, the addresses neighbour discovery derives
//! (solicited-node groups, multicast MACs, EUI-64 link-local addresses), the
//! upper-layer checksum's pseudo-header, and a builder for the Ethernet
//! frames the engine sends (RAs, NAs, DHCPv6 replies).
//!
//! Everything here reads untrusted bytes with bounds checks and never
//! panics; the extension-header walk stops after
//! [`MAX_EXTENSION_HEADERS`] headers, so a crafted chain costs bounded work.

use core::fmt;
use core::net::Ipv6Addr;

use super::checksum;
use super::frame::{ETHERTYPE_IPV6, ETH_HLEN};
use super::MacAddr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Next header: hop-by-hop options.
pub const NEXT_HOP_BY_HOP: u8 = 0;
/// Next header: TCP.
pub const NEXT_TCP: u8 = 6;
/// Next header: UDP.
pub const NEXT_UDP: u8 = 17;
/// Next header: routing header.
pub const NEXT_ROUTING: u8 = 43;
/// Next header: fragment header.
pub const NEXT_FRAGMENT: u8 = 44;
/// Next header: ICMPv6.
pub const NEXT_ICMPV6: u8 = 58;
/// Next header: no next header.
pub const NEXT_NONE: u8 = 59;
/// Next header: destination options.
pub const NEXT_DEST_OPTS: u8 = 60;
/// Extension headers walked before a packet is called unclassifiable.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ff02::2, all routers on the link.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// ff02::1:2, All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
pub const ALL_DHCP_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// An IPv6 network: an address with its host bits cleared and a prefix length.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Net {
    /// The network of `addr` with prefix length `len` (host bits cleared); `None` when `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Ipv6Net> {
        (len <= 128).then(|| Ipv6Net {
            addr: Ipv6Addr::from(u128::from(addr) & Self::mask(len)),
            len,
        })
    }

    fn mask(len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        }
    }

    /// The network address.
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `::/0` (every address).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `ip` is inside the network.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & Self::mask(self.len) == u128::from(self.addr)
    }

    /// The address of this network with interface identifier `iid` (the
    /// low 64 bits; meaningful for a /64).
    pub fn with_iid(&self, iid: u64) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | u128::from(iid))
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// True for link-local unicast (fe80::/10).
pub fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The solicited-node multicast group of `ip` (RFC 4291 §2.7.1):
/// ff02::1:ffXX:XXXX with the low 24 bits of `ip`.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from(
        (0xff02_0000_0000_0000_0000_0001_ff00_0000u128)
            | u128::from(u32::from_be_bytes([0, o[13], o[14], o[15]])),
    )
}

/// The Ethernet group address of an IPv6 multicast group (RFC 2464 §7):
/// 33:33 and the group's low 32 bits.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The modified EUI-64 interface identifier of `mac` (RFC 4291 app. A).
pub fn eui64(mac: MacAddr) -> u64 {
    let m = mac.0;
    u64::from_be_bytes([m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}

/// fe80::/64 with the EUI-64 identifier of `mac`: the link-local address a
/// router with that MAC uses unless configured otherwise.
pub fn link_local_from_mac(mac: MacAddr) -> Ipv6Addr {
    Ipv6Addr::from((0xfe80u128 << 112) | u128::from(eui64(mac)))
}

/// Running sum of the upper-layer pseudo-header (RFC 8200 §8.1) for a
/// payload of `len` bytes of protocol `next`.
pub fn pseudo_sum(src: Ipv6Addr, dst: Ipv6Addr, next: u8, len: u32) -> u32 {
    let mut acc = checksum::sum(0, &src.octets());
    acc = checksum::sum(acc, &dst.octets());
    acc = checksum::sum(acc, &len.to_be_bytes());
    acc.wrapping_add(u32::from(next))
}

/// The upper-layer checksum of `msg` (its checksum field counted as it is:
/// zero it before computing, leave it when verifying).
pub fn upper_checksum(src: Ipv6Addr, dst: Ipv6Addr, next: u8, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    checksum::finish(checksum::sum(pseudo_sum(src, dst, next, len), msg))
}

/// Why bytes are not an IPv6 packet lassi can classify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header, or than the header chain it announces.
    Truncated,
    /// The version field is not 6.
    Version,
    /// More than [`MAX_EXTENSION_HEADERS`] extension headers.
    HeaderChainTooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "truncated IPv6 packet"),
            Error::Version => write!(f, "not IPv6 (version field)"),
            Error::HeaderChainTooLong => write!(f, "too many IPv6 extension headers"),
        }
    }
}

impl std::error::Error for Error {}

/// What a fragment header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment in 8-byte units.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// The fields of an IPv6 packet the guards and the classifier need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Summary {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// The upper-layer protocol after the extension headers.
    pub upper: u8,
    /// Offset of the upper-layer header in the packet.
    pub upper_offset: usize,
    /// End of the packet as the payload length says (≤ the buffer's length;
    /// trailing bytes, e.g. Ethernet padding, are not part of it).
    pub end: usize,
    /// Present when the packet is a fragment.
    pub fragment: Option<Fragment>,
}

impl Ipv6Summary {
    /// The upper-layer bytes of `packet` (the one this summary was parsed from).
    pub fn upper<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet.get(self.upper_offset..self.end).unwrap_or(&[])
    }
}

fn addr_at(p: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&p[at..at + 16]);
    Ipv6Addr::from(o)
}

/// Parses the header of the IPv6 packet `p` (starting at the version
/// field) and walks its extension headers to the upper layer.
pub fn parse(p: &[u8]) -> Result<Ipv6Summary, Error> {
    if p.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    if p[0] >> 4 != 6 {
        return Err(Error::Version);
    }
    let end = HEADER_LEN + usize::from(u16::from_be_bytes([p[4], p[5]]));
    if end > p.len() {
        return Err(Error::Truncated);
    }
    let (mut next, mut at, mut fragment) = (p[6], HEADER_LEN, None);
    for _ in 0..=MAX_EXTENSION_HEADERS {
        let len = match next {
            NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_DEST_OPTS => {
                let h = p.get(at..at + 2).ok_or(Error::Truncated)?;
                (usize::from(h[1]) + 1) * 8
            }
            NEXT_FRAGMENT => {
                let h = p.get(at..at + 8).ok_or(Error::Truncated)?;
                let word = u16::from_be_bytes([h[2], h[3]]);
                fragment = Some(Fragment {
                    offset: word >> 3,
                    more: word & 1 == 1,
                });
                8
            }
            _ => {
                return Ok(Ipv6Summary {
                    src: addr_at(p, 8),
                    dst: addr_at(p, 24),
                    hop_limit: p[7],
                    upper: next,
                    upper_offset: at,
                    end,
                    fragment,
                })
            }
        };
        if at + len > end {
            return Err(Error::Truncated);
        }
        next = p[at];
        at += len;
    }
    Err(Error::HeaderChainTooLong)
}

/// An IPv6 packet the engine wants sent on the LAN, with its link-layer
/// addressing: the shell writes [`Ipv6Transmit::to_frame`] to the LAN port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Transmit {
    /// Ethernet source (the gateway's MAC).
    pub src_mac: MacAddr,
    /// Ethernet destination (a client's MAC, or the multicast MAC of `dst`).
    pub dst_mac: MacAddr,
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// Hop limit (255 for neighbour discovery, RFC 4861).
    pub hop_limit: u8,
    /// Upper-layer protocol of `payload`.
    pub next_header: u8,
    /// The upper-layer message, its checksum already filled in.
    pub payload: Vec<u8>,
}

impl Ipv6Transmit {
    /// The whole Ethernet frame: Ethernet header, IPv6 header, payload.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(ETH_HLEN + HEADER_LEN + self.payload.len());
        f.extend_from_slice(&self.dst_mac.0);
        f.extend_from_slice(&self.src_mac.0);
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        let len = u16::try_from(self.payload.len()).unwrap_or(u16::MAX);
        f.extend_from_slice(&len.to_be_bytes());
        f.push(self.next_header);
        f.push(self.hop_limit);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        f.extend_from_slice(&self.payload);
        f
    }
}

/// ICMPv6 destination unreachable (RFC 4443 §3.1).
pub const ICMPV6_DEST_UNREACHABLE: u8 = 1;
/// Destination-unreachable code: communication administratively prohibited.
pub const ICMPV6_ADMIN_PROHIBITED: u8 = 1;
/// ICMPv6 echo request.
pub const ICMPV6_ECHO_REQUEST: u8 = 128;

/// The TCP ports and flags of a packet's first segment header, when the
/// upper layer is TCP or UDP and readable (not a later fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Source port.
    pub src: u16,
    /// Destination port.
    pub dst: u16,
    /// Length of the IPv6 headers plus the TCP/UDP header (for GSO footprints).
    pub l3l4_hdr_len: usize,
}

impl Ipv6Summary {
    /// The ports of a TCP or UDP packet (`None` for other protocols, later
    /// fragments, truncated headers).
    pub fn ports(&self, packet: &[u8]) -> Option<Ports> {
        if self.fragment.is_some_and(|f| f.offset > 0) {
            return None;
        }
        let u = self.upper(packet);
        let hdr = match self.upper {
            NEXT_TCP => usize::from(*u.get(12)? >> 4) * 4,
            NEXT_UDP => 8,
            _ => return None,
        };
        if hdr < 8 || u.len() < hdr {
            return None;
        }
        Some(Ports {
            src: u16::from_be_bytes([u[0], u[1]]),
            dst: u16::from_be_bytes([u[2], u[3]]),
            l3l4_hdr_len: self.upper_offset + hdr,
        })
    }

    /// IPv6 and transport header length, for [`super::vnet::wire_footprint`].
    pub fn l3l4_hdr_len(&self, packet: &[u8]) -> usize {
        self.ports(packet)
            .map_or(self.upper_offset, |p| p.l3l4_hdr_len)
    }
}

/// The TCP reset answering the segment of `packet` (summarised as `s`),
/// sent from the address it was for (RFC 9293 §3.10.7.1); `None` for a
/// reset, a later fragment or a truncated header.
pub fn tcp_reset(
    gw_mac: MacAddr,
    client_mac: MacAddr,
    s: &Ipv6Summary,
    packet: &[u8],
) -> Option<Ipv6Transmit> {
    let ports = s.ports(packet).filter(|_| s.upper == NEXT_TCP)?;
    let t = s.upper(packet);
    let seg = super::frame::TcpSegmentInfo {
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        flags: t[13],
        payload_len: (s.end - ports.l3l4_hdr_len) as u32,
    };
    let (seq, ack, flags) = super::frame::reset_numbers(&seg)?;
    let mut r = vec![0u8; 20];
    r[0..2].copy_from_slice(&ports.dst.to_be_bytes());
    r[2..4].copy_from_slice(&ports.src.to_be_bytes());
    r[4..8].copy_from_slice(&seq.to_be_bytes());
    r[8..12].copy_from_slice(&ack.to_be_bytes());
    r[12] = 0x50;
    r[13] = flags;
    let c = upper_checksum(s.dst, s.src, NEXT_TCP, &r);
    r[16..18].copy_from_slice(&c.to_be_bytes());
    Some(Ipv6Transmit {
        src_mac: gw_mac,
        dst_mac: client_mac,
        src: s.dst,
        dst: s.src,
        hop_limit: 64,
        next_header: NEXT_TCP,
        payload: r,
    })
}

/// An ICMPv6 destination unreachable from `src` about `packet` (quoted
/// as far as the minimum MTU allows, RFC 4443 §3.1). `None` when the
/// packet is itself an ICMPv6 error (never answered, RFC 4443 §2.4).
pub fn unreachable(
    gw_mac: MacAddr,
    client_mac: MacAddr,
    src: Ipv6Addr,
    code: u8,
    s: &Ipv6Summary,
    packet: &[u8],
) -> Option<Ipv6Transmit> {
    let first_fragment = s.fragment.is_none_or(|f| f.offset == 0);
    if s.upper == NEXT_ICMPV6 && (!first_fragment || s.upper(packet).first()? < &128) {
        return None;
    }
    let quoted = &packet[..s.end.min(1280 - HEADER_LEN - 8)];
    let mut m = vec![ICMPV6_DEST_UNREACHABLE, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(quoted);
    let c = upper_checksum(src, s.src, NEXT_ICMPV6, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Some(Ipv6Transmit {
        src_mac: gw_mac,
        dst_mac: client_mac,
        src,
        dst: s.src,
        hop_limit: 64,
        next_header: NEXT_ICMPV6,
        payload: m,
    })
}

/// A UDP datagram over IPv6 (header, `payload`, and the checksum, which
/// IPv6 makes mandatory: RFC 8200 §8.1).
pub fn udp_datagram(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut d = Vec::with_capacity(len);
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let c = match upper_checksum(src, dst, NEXT_UDP, &d) {
        0 => 0xffff,
        c => c,
    };
    d[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn net_contains_and_masks() {
        let n = Ipv6Net::new(ip("2001:db8:1:2::77"), 64).unwrap();
        assert_eq!(n.addr(), ip("2001:db8:1:2::"));
        assert!(n.contains(ip("2001:db8:1:2:ffff::1")));
        assert!(!n.contains(ip("2001:db8:1:3::1")));
        assert_eq!(n.with_iid(0x1234), ip("2001:db8:1:2::1234"));
        assert_eq!(n.to_string(), "2001:db8:1:2::/64");
        assert!(Ipv6Net::new(ip("::"), 129).is_none());
        assert!(Ipv6Net::new(ip("2001::1"), 0)
            .unwrap()
            .contains(ip("fe80::1")));
    }

    #[test]
    fn derived_addresses() {
        let mac = MacAddr([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(link_local_from_mac(mac), ip("fe80::211:22ff:fe33:4455"));
        assert_eq!(
            solicited_node(ip("2001:db8::1:2345:6789")),
            ip("ff02::1:ff45:6789")
        );
        assert_eq!(
            multicast_mac(ip("ff02::1:ff45:6789")),
            MacAddr([0x33, 0x33, 0xff, 0x45, 0x67, 0x89])
        );
        assert!(is_link_local(ip("fe80::1")) && is_link_local(ip("febf::1")));
        assert!(!is_link_local(ip("fec0::1")));
    }

    fn header(next: u8, payload: &[u8]) -> Vec<u8> {
        let t = Ipv6Transmit {
            src_mac: MacAddr([2; 6]),
            dst_mac: MacAddr([4; 6]),
            src: ip("fe80::1"),
            dst: ip("ff02::1"),
            hop_limit: 255,
            next_header: next,
            payload: payload.to_vec(),
        };
        t.to_frame()[ETH_HLEN..].to_vec()
    }

    #[test]
    fn parse_walks_extension_headers() {
        // Hop-by-hop (8 bytes) then a fragment header then ICMPv6.
        let mut payload = vec![NEXT_FRAGMENT, 0, 5, 2, 0, 0, 1, 0];
        payload.extend_from_slice(&[NEXT_ICMPV6, 0, 0, 0, 0, 0, 0, 1]);
        payload.extend_from_slice(&[133, 0, 0, 0]);
        let p = header(NEXT_HOP_BY_HOP, &payload);
        let s = parse(&p).unwrap();
        assert_eq!(
            (s.upper, s.upper_offset, s.hop_limit),
            (NEXT_ICMPV6, 56, 255)
        );
        assert_eq!(
            s.fragment,
            Some(Fragment {
                offset: 0,
                more: false
            })
        );
        assert_eq!(s.upper(&p), &[133, 0, 0, 0]);
        assert_eq!((s.src, s.dst), (ip("fe80::1"), ip("ff02::1")));
    }

    #[test]
    fn parse_refuses_bad_packets() {
        assert_eq!(parse(&[0x60; 39]), Err(Error::Truncated));
        let mut p = header(NEXT_UDP, &[0; 8]);
        p[0] = 0x45;
        assert_eq!(parse(&p), Err(Error::Version));
        let p = header(NEXT_UDP, &[0; 8]);
        assert_eq!(parse(&p[..44]), Err(Error::Truncated));
        // A header chain that loops through destination options forever.
        let mut chain = Vec::new();
        for _ in 0..20 {
            chain.extend_from_slice(&[NEXT_DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(
            parse(&header(NEXT_DEST_OPTS, &chain)),
            Err(Error::HeaderChainTooLong)
        );
        // An extension header running past the payload.
        assert_eq!(
            parse(&header(NEXT_DEST_OPTS, &[NEXT_UDP, 3, 0, 0])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn udp_checksum_verifies() {
        let (s, d) = (ip("fe80::1"), ip("fe80::2"));
        let u = udp_datagram(s, d, 547, 546, b"hello");
        assert_eq!(u.len(), 13);
        assert_eq!(upper_checksum(s, d, NEXT_UDP, &u), 0);
        // Same datagram checked against etherparse's builder.
        let b = etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64).udp(547, 546);
        let mut out = Vec::new();
        b.write(&mut out, b"hello").unwrap();
        assert_eq!(&out[40..], &u[..]);
    }
}
