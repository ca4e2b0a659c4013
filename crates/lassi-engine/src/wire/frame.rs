//! Fixed-offset views of the Ethernet/IPv4/TCP/UDP headers the data plane
//! reads on every packet, and builders for the few frames lassi originates
//! (ARP replies, DHCP replies). Parsing here is deliberately minimal and
//! bounds-checked; anything unusual goes to the slow path or is dropped.

use core::net::Ipv4Addr;

use super::checksum;
use super::MacAddr;

/// Length of an Ethernet II header.
pub const ETH_HLEN: usize = 14;
/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// IP protocol numbers lassi looks at.
pub const PROTO_ICMP: u8 = 1;
/// TCP
pub const PROTO_TCP: u8 = 6;
/// UDP
pub const PROTO_UDP: u8 = 17;

/// The Ethernet header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHeader {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// EtherType.
    pub ethertype: u16,
}

impl EthHeader {
    /// Read the header at the start of `f`.
    pub fn parse(f: &[u8]) -> Option<EthHeader> {
        if f.len() < ETH_HLEN {
            return None;
        }
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&f[0..6]);
        src.copy_from_slice(&f[6..12]);
        Some(EthHeader {
            dst: MacAddr(dst),
            src: MacAddr(src),
            ethertype: u16::from_be_bytes([f[12], f[13]]),
        })
    }

    /// Write the header into the first 14 bytes of `f`.
    pub fn write(&self, f: &mut [u8]) {
        f[0..6].copy_from_slice(&self.dst.0);
        f[6..12].copy_from_slice(&self.src.0);
        f[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
    }
}

/// The IPv4 (and first transport) fields the classifier needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Summary {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol.
    pub proto: u8,
    /// IP header length in bytes.
    pub ihl: usize,
    /// Total length from the header (the super-packet's, for GSO).
    pub total_len: usize,
    /// True when this is a non-first fragment (no transport header).
    pub later_fragment: bool,
    /// Source port (TCP/UDP, first fragment), else 0.
    pub src_port: u16,
    /// Destination port (TCP/UDP, first fragment), else 0.
    pub dst_port: u16,
    /// IP + transport header bytes (TCP data offset or 8 for UDP), for
    /// counting what a GSO super-packet stands for.
    pub l3l4_hdr_len: usize,
}

/// Why an IPv4 packet was refused by [`parse_ipv4`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Shorter than its headers claim, or not version 4.
    Malformed,
}

/// Read an IPv4 packet (starting at its header). The packet may be longer
/// than `total_len` (Ethernet padding) but never shorter.
pub fn parse_ipv4(p: &[u8]) -> Result<Ipv4Summary, Ipv4Error> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return Err(Ipv4Error::Malformed);
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < 20 || total_len < ihl || p.len() < total_len {
        return Err(Ipv4Error::Malformed);
    }
    let frag_off = u16::from_be_bytes([p[6], p[7]]) & 0x1fff;
    let proto = p[9];
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let later_fragment = frag_off != 0;
    let (mut src_port, mut dst_port, mut l4) = (0, 0, 0);
    if !later_fragment {
        let t = &p[ihl..total_len];
        match proto {
            PROTO_TCP if t.len() >= 20 => {
                src_port = u16::from_be_bytes([t[0], t[1]]);
                dst_port = u16::from_be_bytes([t[2], t[3]]);
                l4 = usize::from(t[12] >> 4) * 4;
                if l4 < 20 || l4 > t.len() {
                    return Err(Ipv4Error::Malformed);
                }
            }
            PROTO_UDP if t.len() >= 8 => {
                src_port = u16::from_be_bytes([t[0], t[1]]);
                dst_port = u16::from_be_bytes([t[2], t[3]]);
                l4 = 8;
            }
            PROTO_TCP | PROTO_UDP => return Err(Ipv4Error::Malformed),
            _ => {}
        }
    }
    Ok(Ipv4Summary {
        src,
        dst,
        proto,
        ihl,
        total_len,
        later_fragment,
        src_port,
        dst_port,
        l3l4_hdr_len: ihl + l4,
    })
}

/// An ARP request or reply for IPv4 over Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// 1 = request, 2 = reply.
    pub op: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

/// ARP operation: request.
pub const ARP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub const ARP_REPLY: u16 = 2;

impl Arp {
    /// Parse an ARP payload (after the Ethernet header).
    pub fn parse(p: &[u8]) -> Option<Arp> {
        // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4.
        if p.len() < 28 || p[0..6] != [0, 1, 8, 0, 6, 4] {
            return None;
        }
        let mac = |i: usize| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&p[i..i + 6]);
            MacAddr(m)
        };
        let ip = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
        Some(Arp {
            op: u16::from_be_bytes([p[6], p[7]]),
            sha: mac(8),
            spa: ip(14),
            tha: mac(18),
            tpa: ip(24),
        })
    }

    /// A complete Ethernet frame carrying this ARP message from `src` to `dst`.
    pub fn to_frame(&self, dst: MacAddr, src: MacAddr) -> Vec<u8> {
        let mut f = vec![0u8; ETH_HLEN + 28];
        EthHeader {
            dst,
            src,
            ethertype: ETHERTYPE_ARP,
        }
        .write(&mut f);
        let p = &mut f[ETH_HLEN..];
        p[0..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        p[6..8].copy_from_slice(&self.op.to_be_bytes());
        p[8..14].copy_from_slice(&self.sha.0);
        p[14..18].copy_from_slice(&self.spa.octets());
        p[18..24].copy_from_slice(&self.tha.0);
        p[24..28].copy_from_slice(&self.tpa.octets());
        f
    }
}

/// Addressing of a UDP/IPv4 frame lassi originates.
#[derive(Clone, Copy, Debug)]
pub struct UdpAddressing {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IP source.
    pub src_ip: Ipv4Addr,
    /// IP destination.
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
}

/// Ethernet + a fresh IPv4 header (DF, TTL 64, valid checksum) for a
/// transport payload of `l4_len` bytes; the payload area is left zeroed.
fn ipv4_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    l4_len: usize,
) -> Vec<u8> {
    let ip_len = 20 + l4_len;
    let mut f = vec![0u8; ETH_HLEN + ip_len];
    EthHeader {
        dst: dst_mac,
        src: src_mac,
        ethertype: ETHERTYPE_IPV4,
    }
    .write(&mut f);
    let ip = &mut f[ETH_HLEN..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    checksum::fix_ipv4_header(&mut ip[..20]);
    f
}

/// Build a complete Ethernet/IPv4/UDP frame with valid checksums.
pub fn udp_frame(a: &UdpAddressing, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut f = ipv4_frame(a.src_mac, a.dst_mac, a.src_ip, a.dst_ip, PROTO_UDP, udp_len);
    let udp = &mut f[ETH_HLEN + 20..];
    udp[0..2].copy_from_slice(&a.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&a.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[8..].copy_from_slice(payload);
    let pseudo = checksum::ipv4_pseudo(
        a.src_ip.octets(),
        a.dst_ip.octets(),
        PROTO_UDP,
        udp_len as u16,
    );
    let mut c = checksum::finish(checksum::sum(pseudo, udp));
    if c == 0 {
        c = 0xffff; // 0 means "no checksum" in UDP
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// ACK
    pub const ACK: u8 = 0x10;
}

/// The TCP fields needed to answer a segment with a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegmentInfo {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Payload length.
    pub payload_len: u32,
}

/// Read the TCP fields of an IPv4 packet `p` (summarised as `s`).
pub fn tcp_info(p: &[u8], s: &Ipv4Summary) -> Option<TcpSegmentInfo> {
    if s.proto != PROTO_TCP || s.later_fragment {
        return None;
    }
    let t = p.get(s.ihl..s.total_len)?;
    if t.len() < 20 {
        return None;
    }
    Some(TcpSegmentInfo {
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        flags: t[13],
        payload_len: (s.total_len - s.l3l4_hdr_len) as u32,
    })
}

/// Sequence, acknowledgment and flags of the reset that answers `seg`
/// (see [`tcp_reset_frame`]); `None` for a reset.
pub fn reset_numbers(seg: &TcpSegmentInfo) -> Option<(u32, u32, u8)> {
    use tcp_flags::*;
    if seg.flags & RST != 0 {
        return None;
    }
    Some(if seg.flags & ACK != 0 {
        (seg.ack, 0, RST)
    } else {
        let occupied =
            seg.payload_len + u32::from(seg.flags & SYN != 0) + u32::from(seg.flags & FIN != 0);
        (0, seg.seq.wrapping_add(occupied), RST | ACK)
    })
}

/// The reset that answers `seg` (RFC 9293 §3.10.7.1): if the segment
/// carried an ACK, the reset takes its sequence number from it; otherwise it
/// acknowledges everything the segment occupied. Resets are never answered
/// (`None`).
#[allow(clippy::too_many_arguments)]
pub fn tcp_reset_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    seg: &TcpSegmentInfo,
) -> Option<Vec<u8>> {
    let (seq, ack, flags) = reset_numbers(seg)?;
    let mut f = ipv4_frame(src_mac, dst_mac, src, dst, PROTO_TCP, 20);
    let t = &mut f[ETH_HLEN + 20..];
    t[0..2].copy_from_slice(&src_port.to_be_bytes());
    t[2..4].copy_from_slice(&dst_port.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    let c = checksum::finish(checksum::sum(
        checksum::ipv4_pseudo(src.octets(), dst.octets(), PROTO_TCP, 20),
        t,
    ));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    Some(f)
}

/// ICMP destination-unreachable code: communication administratively prohibited.
pub const ICMP_ADMIN_PROHIBITED: u8 = 13;

/// An ICMP destination-unreachable (type 3) from `src` about the datagram
/// `original` (its IP header and first 8 payload bytes are quoted).
pub fn icmp_unreachable_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    code: u8,
    original: &[u8],
    original_ihl: usize,
) -> Vec<u8> {
    let quoted = &original[..original.len().min(original_ihl + 8)];
    let mut f = ipv4_frame(src_mac, dst_mac, src, dst, PROTO_ICMP, 8 + quoted.len());
    let icmp = &mut f[ETH_HLEN + 20..];
    icmp[0] = 3;
    icmp[1] = code;
    icmp[8..].copy_from_slice(quoted);
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn arp_reply_is_byte_exact() {
        let a = Arp {
            op: ARP_REPLY,
            sha: mac("02:00:00:00:00:01"),
            spa: Ipv4Addr::new(10, 1, 0, 1),
            tha: mac("02:00:00:00:00:17"),
            tpa: Ipv4Addr::new(10, 1, 0, 23),
        };
        let f = a.to_frame(a.tha, a.sha);
        let expect: Vec<u8> = [
            &[2, 0, 0, 0, 0, 0x17, 2, 0, 0, 0, 0, 1, 0x08, 0x06][..],
            &[0, 1, 8, 0, 6, 4, 0, 2],
            &[2, 0, 0, 0, 0, 1, 10, 1, 0, 1],
            &[2, 0, 0, 0, 0, 0x17, 10, 1, 0, 23],
        ]
        .concat();
        assert_eq!(f, expect);
        assert_eq!(Arp::parse(&f[ETH_HLEN..]), Some(a));
        assert_eq!(Arp::parse(&f[ETH_HLEN..40]), None);
    }

    #[test]
    fn udp_frame_is_byte_exact_and_parses_back() {
        let a = UdpAddressing {
            src_mac: mac("02:00:00:00:00:01"),
            dst_mac: MacAddr::BROADCAST,
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 1234,
            dst_port: 53,
        };
        let f = udp_frame(&a, b"hi");
        assert_eq!(f.len(), 14 + 20 + 10);
        // IPv4 header: hand-assembled, checksum worked out by hand:
        // 4500+001e+0000+4000+4011+0a00+0001+0a00+0002 = 0xd932 → !0xd932 = 0x26cd
        let ip_hdr = [
            0x45, 0, 0, 0x1e, 0, 0, 0x40, 0, 64, 17, 0x26, 0xcd, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        assert_eq!(&f[14..34], &ip_hdr);
        // UDP checksum as computed by hand in checksum.rs's vector.
        assert_eq!(
            &f[34..44],
            &[0x04, 0xd2, 0, 0x35, 0, 0x0a, 0x7e, 0x67, b'h', b'i']
        );
        let s = parse_ipv4(&f[14..]).unwrap();
        assert_eq!(
            (s.src_port, s.dst_port, s.proto, s.l3l4_hdr_len),
            (1234, 53, 17, 28)
        );
        // Cross-check with an independent parser.
        let sliced = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        match sliced.transport {
            Some(etherparse::TransportSlice::Udp(u)) => {
                assert_eq!(u.payload(), b"hi");
                let ip = match sliced.net {
                    Some(etherparse::NetSlice::Ipv4(ip)) => ip,
                    _ => panic!("not ipv4"),
                };
                let hdr = u.to_header();
                assert_eq!(
                    hdr.calc_checksum_ipv4(&ip.header().to_header(), u.payload())
                        .unwrap(),
                    0x7e67
                );
            }
            _ => panic!("not udp"),
        }
    }

    #[test]
    fn resets_follow_rfc_9293() {
        let (c, g) = (mac("02:00:00:00:00:17"), mac("02:00:00:00:00:01"));
        let (cip, sip) = (Ipv4Addr::new(10, 1, 0, 23), Ipv4Addr::new(198, 51, 100, 10));
        // A SYN to port 443: RST+ACK acknowledging the SYN.
        let syn = TcpSegmentInfo {
            seq: 1000,
            ack: 0,
            flags: tcp_flags::SYN,
            payload_len: 0,
        };
        let f = tcp_reset_frame(g, c, sip, cip, 443, 40000, &syn).unwrap();
        let s = parse_ipv4(&f[14..]).unwrap();
        assert_eq!(
            (s.src, s.dst, s.src_port, s.dst_port),
            (sip, cip, 443, 40000)
        );
        let t = &f[34..];
        assert_eq!(
            &t[4..14],
            &[0, 0, 0, 0, 0, 0, 0x03, 0xe9, 0x50, 0x14],
            "seq 0, ack 1001, RST|ACK"
        );
        // Verified by an independent parser, checksum included.
        let sliced = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let (ip, tcp) = match (sliced.net, sliced.transport) {
            (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) => {
                (ip, t)
            }
            _ => panic!("not tcp/ipv4"),
        };
        assert!(tcp.rst() && tcp.ack());
        assert_eq!(
            tcp.to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), &[])
                .unwrap(),
            tcp.checksum()
        );
        // A data segment with ACK: RST with seq = its ack, no ACK.
        let data = TcpSegmentInfo {
            seq: 5,
            ack: 77,
            flags: tcp_flags::ACK,
            payload_len: 100,
        };
        let f = tcp_reset_frame(g, c, sip, cip, 443, 40000, &data).unwrap();
        assert_eq!(&f[34 + 4..34 + 14], &[0, 0, 0, 77, 0, 0, 0, 0, 0x50, 0x04]);
        // Never answer a reset.
        let rst = TcpSegmentInfo {
            flags: tcp_flags::RST,
            ..data
        };
        assert!(tcp_reset_frame(g, c, sip, cip, 443, 40000, &rst).is_none());
    }

    #[test]
    fn icmp_unreachable_quotes_the_datagram() {
        let a = UdpAddressing {
            src_mac: mac("02:00:00:00:00:17"),
            dst_mac: mac("02:00:00:00:00:01"),
            src_ip: Ipv4Addr::new(10, 1, 0, 23),
            dst_ip: Ipv4Addr::new(198, 51, 100, 10),
            src_port: 5000,
            dst_port: 443,
        };
        let dgram = udp_frame(&a, &[0xaa; 100]);
        let ip = &dgram[14..];
        let f = icmp_unreachable_frame(
            a.dst_mac,
            a.src_mac,
            Ipv4Addr::new(10, 1, 0, 1),
            a.src_ip,
            ICMP_ADMIN_PROHIBITED,
            ip,
            20,
        );
        let icmp = &f[34..];
        assert_eq!((icmp[0], icmp[1]), (3, 13));
        assert_eq!(&icmp[8..], &ip[..28], "IP header + 8 bytes quoted");
        assert_eq!(checksum::checksum(icmp), 0);
        assert!(checksum::ipv4_header_ok(&f[14..34]));
    }

    #[test]
    fn ipv4_parser_refuses_lies() {
        let a = UdpAddressing {
            src_mac: MacAddr::BROADCAST,
            dst_mac: MacAddr::BROADCAST,
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 1,
            dst_port: 2,
        };
        let f = udp_frame(&a, b"payload");
        let ip = &f[14..];
        assert!(parse_ipv4(ip).is_ok());
        assert!(parse_ipv4(&ip[..ip.len() - 1]).is_err(), "truncated");
        let mut v6 = ip.to_vec();
        v6[0] = 0x65;
        assert!(parse_ipv4(&v6).is_err());
        let mut short_ihl = ip.to_vec();
        short_ihl[0] = 0x44;
        assert!(parse_ipv4(&short_ihl).is_err());
        // TCP with a data offset pointing past the end.
        let mut tcp = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
        ];
        tcp.extend_from_slice(&[0u8; 20]);
        tcp[20 + 12] = 0xf0;
        assert!(parse_ipv4(&tcp).is_err());
        tcp[20 + 12] = 0x50;
        assert_eq!(parse_ipv4(&tcp).unwrap().l3l4_hdr_len, 40);
    }
}
