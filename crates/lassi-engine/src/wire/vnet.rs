//! The virtio-net header that Linux puts before each frame on an AF_PACKET
//! socket with `PACKET_VNET_HDR` and before each packet on a TUN device with
//! `IFF_VNET_HDR`. It carries the two offloads that matter for speed:
//! a checksum left for later (`NEEDS_CSUM`) and a GSO super-packet that the
//! kernel or NIC will cut into MTU-sized segments.
//!
//! Both interfaces use the legacy layout in the CPU's own byte order (the
//! kernel's `vio_le()` / TUN's default), so fields are read and written
//! native-endian.

/// Size of `struct virtio_net_hdr` (without the mergeable-buffers count).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at csum_start+csum_offset is
/// only seeded with the pseudo-header sum and must be completed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified.
pub const F_DATA_VALID: u8 = 2;

/// `VIRTIO_NET_HDR_GSO_NONE`
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP` (UFO)
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4` (USO)
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN` flag bit in gso_type.
pub const GSO_ECN: u8 = 0x80;

/// A decoded virtio-net header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM` / `F_DATA_VALID`
    pub flags: u8,
    /// One of the `GSO_*` values, possibly with `GSO_ECN`.
    pub gso_type: u8,
    /// Length of headers to keep linear (a hint; measured from the frame start).
    pub hdr_len: u16,
    /// Payload bytes per segment for GSO.
    pub gso_size: u16,
    /// Where checksumming starts, from the frame start.
    pub csum_start: u16,
    /// Where the checksum lives, from csum_start.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Decode from the first `VNET_HDR_LEN` bytes; `None` if too short.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        if b.len() < VNET_HDR_LEN {
            return None;
        }
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// Encode into the first `VNET_HDR_LEN` bytes of `b`.
    pub fn write(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    /// True for a GSO super-packet.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// The same header for a frame whose start moved by `delta` bytes: −14
    /// when the Ethernet header is stripped (LAN → TUN), +14 when one is
    /// added (TUN → LAN). Offsets that would become negative are zeroed.
    pub fn shifted(&self, delta: i32) -> VnetHdr {
        let shift = |v: u16| (i32::from(v) + delta).clamp(0, i32::from(u16::MAX)) as u16;
        VnetHdr {
            hdr_len: if self.hdr_len == 0 {
                0
            } else {
                shift(self.hdr_len)
            },
            csum_start: if self.flags & F_NEEDS_CSUM != 0 {
                shift(self.csum_start)
            } else {
                self.csum_start
            },
            ..*self
        }
    }
}

/// What a (possibly GSO) IP packet stands for on the wire, at the IP layer:
/// the number of packets after segmentation and their total IP bytes
/// (segments × headers + payload). RADIUS octet counters use these figures,
/// so accounting is the same whether or not offloads are on.
///
/// `ip_len` is the length of the IP packet as carried (the super-packet),
/// `l3l4_hdr_len` the IP plus transport header length measured from the
/// packet itself (never the vnet `hdr_len`, which the kernel sets to the
/// linear length and may include payload).
pub fn wire_footprint(vnet: &VnetHdr, ip_len: usize, l3l4_hdr_len: usize) -> (u64, u64) {
    let gso = vnet.gso_size as usize;
    if !vnet.is_gso() || gso == 0 || ip_len <= l3l4_hdr_len {
        return (1, ip_len as u64);
    }
    let payload = ip_len - l3l4_hdr_len;
    let segments = payload.div_ceil(gso).max(1);
    (segments as u64, (payload + segments * l3l4_hdr_len) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TSO frame's header: Ethernet + IPv4 + TCP with timestamps
    /// (66 bytes), 1448-byte segments, checksum at the TCP header.
    const TCP_GSO: VnetHdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 66,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };

    #[test]
    fn round_trip_native_endian() {
        let h = TCP_GSO;
        let mut b = [0u8; VNET_HDR_LEN];
        h.write(&mut b);
        // Byte-exact in the CPU's order: this test means something on
        // big-endian MIPS, where the kernel also writes big-endian.
        let mut expect = vec![1u8, 1];
        for v in [66u16, 1448, 34, 16] {
            expect.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(&b[..], &expect[..]);
        assert_eq!(VnetHdr::parse(&b), Some(h));
        assert_eq!(VnetHdr::parse(&b[..9]), None);
        if cfg!(target_endian = "little") {
            assert_eq!(&b[2..4], &[66, 0]);
        } else {
            assert_eq!(&b[2..4], &[0, 66]);
        }
    }

    #[test]
    fn shift_moves_offsets_only_when_meaningful() {
        let h = TCP_GSO;
        let s = h.shifted(-14);
        assert_eq!(
            (s.hdr_len, s.csum_start, s.csum_offset, s.gso_size),
            (52, 20, 16, 1448)
        );
        assert_eq!(s.shifted(14), h);
        let plain = VnetHdr::default();
        assert_eq!(plain.shifted(-14), plain);
    }

    #[test]
    fn footprint_counts_segments_and_headers() {
        let h = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 1448,
            ..Default::default()
        };
        // 52 bytes of IP+TCP headers, 10 full segments of payload and one of 100.
        let payload = 1448 * 10 + 100;
        let (pk, bytes) = wire_footprint(&h, 52 + payload, 52);
        assert_eq!(pk, 11);
        assert_eq!(bytes, (payload + 11 * 52) as u64);
        // Not GSO: one packet, its own length.
        assert_eq!(wire_footprint(&VnetHdr::default(), 1500, 40), (1, 1500));
    }
}
