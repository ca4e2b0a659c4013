//! Internet checksums (RFC 1071) and completion of offloaded checksums.

/// Add `data` to a running ones'-complement sum (not yet folded).
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([*last, 0])));
    }
    acc
}

/// Fold a running sum to 16 bits and complement it.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone.
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// Recompute the IPv4 header checksum in place (`hdr` is the whole header).
pub fn fix_ipv4_header(hdr: &mut [u8]) {
    hdr[10] = 0;
    hdr[11] = 0;
    let c = checksum(hdr);
    hdr[10..12].copy_from_slice(&c.to_be_bytes());
}

/// True when an IPv4 header's checksum verifies.
pub fn ipv4_header_ok(hdr: &[u8]) -> bool {
    checksum(hdr) == 0
}

/// Sum of the IPv4 pseudo-header for a transport segment of `len` bytes.
pub fn ipv4_pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let mut acc = sum(0, &src);
    acc = sum(acc, &dst);
    acc + u32::from(proto) + u32::from(len)
}

/// Complete a checksum left for offload (`NEEDS_CSUM`): the field at
/// `start + offset` holds the folded pseudo-header sum; the checksum covers
/// everything from `start` to the end of `pkt`. Returns false when the
/// offsets don't fit the packet (the caller drops it as malformed).
pub fn complete_partial(pkt: &mut [u8], start: usize, offset: usize) -> bool {
    let field = start + offset;
    if field + 2 > pkt.len() || start > pkt.len() {
        return false;
    }
    // The seeded field is part of the summed data, which is exactly how the
    // pseudo-header gets in.
    let c = checksum(&pkt[start..]);
    pkt[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Update a checksum field after one 16-bit word of the covered data
/// changed from `old` to `new` (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
///
/// `partial` is for a transport checksum left for offload (virtio
/// `NEEDS_CSUM`): such a field holds the folded pseudo-header sum itself,
/// not its complement, so the difference is added without complementing
/// (Linux's `inet_proto_csum_replace*` does the same). Only pseudo-header
/// words (addresses) should be fed in that case: the payload, ports
/// included, is summed later when the checksum is completed.
pub fn update16(field: u16, old: u16, new: u16, partial: bool) -> u16 {
    let base = if partial { field } else { !field };
    let acc = u32::from(base) + u32::from(!old) + u32::from(new);
    let folded = !finish(acc); // finish complements; undo to get the plain fold
    if partial {
        folded
    } else {
        !folded
    }
}

/// [`update16`] for a 32-bit value (an IPv4 address) given as octets.
pub fn update32(field: u16, old: [u8; 4], new: [u8; 4], partial: bool) -> u16 {
    let f = update16(
        field,
        u16::from_be_bytes([old[0], old[1]]),
        u16::from_be_bytes([new[0], new[1]]),
        partial,
    );
    update16(
        f,
        u16::from_be_bytes([old[2], old[3]]),
        u16::from_be_bytes([new[2], new[3]]),
        partial,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example header from RFC 1071 discussions / Wikipedia:
    /// 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn ipv4_header_vector() {
        assert!(ipv4_header_ok(&HDR));
        let mut h = HDR;
        h[10] = 0xde;
        assert!(!ipv4_header_ok(&h));
        fix_ipv4_header(&mut h);
        assert_eq!(h, HDR);
    }

    #[test]
    fn incremental_update_matches_recomputation() {
        // Change the destination address of the RFC 1071 example header.
        let mut h = HDR;
        let new_dst = [10, 1, 0, 1];
        let old_dst = [h[16], h[17], h[18], h[19]];
        let field = u16::from_be_bytes([h[10], h[11]]);
        let updated = update32(field, old_dst, new_dst, false);
        h[16..20].copy_from_slice(&new_dst);
        fix_ipv4_header(&mut h);
        assert_eq!(updated, u16::from_be_bytes([h[10], h[11]]));
        // Byte-exact, by hand: 4500+0073+0000+4000+4011+c0a8+0001+0a01+0001
        // = 0x1_902f → fold 0x9030 → complement 0x6fcf.
        assert_eq!(updated, 0x6fcf);
    }

    #[test]
    fn partial_seed_update_matches_a_fresh_seed() {
        let (src, dst, new_dst) = ([10, 1, 0, 23], [198, 51, 100, 10], [10, 1, 0, 1]);
        let seed = !finish(ipv4_pseudo(src, dst, 6, 40));
        let fresh = !finish(ipv4_pseudo(src, new_dst, 6, 40));
        assert_eq!(update32(seed, dst, new_dst, true), fresh);
        // And completing after the update gives the true checksum.
        let mut seg = vec![0u8; 40];
        seg[12] = 0x50;
        seg[16..18].copy_from_slice(&update32(seed, dst, new_dst, true).to_be_bytes());
        assert!(complete_partial(&mut seg, 0, 16));
        let full = u16::from_be_bytes([seg[16], seg[17]]);
        seg[16] = 0;
        seg[17] = 0;
        assert_eq!(full, finish(sum(ipv4_pseudo(src, new_dst, 6, 40), &seg)));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[0x01, 0x00]), checksum(&[0x01]));
    }

    #[test]
    fn completes_a_partial_udp_checksum() {
        // UDP 10.0.0.1:1234 -> 10.0.0.2:53, payload "hi".
        let src = [10, 0, 0, 1];
        let dst = [10, 0, 0, 2];
        let mut udp = vec![0x04, 0xd2, 0x00, 0x35, 0x00, 0x0a, 0, 0, b'h', b'i'];
        let full = finish(sum(ipv4_pseudo(src, dst, 17, 10), &udp));
        // What a sender with checksum offload leaves: the folded,
        // uncomplemented pseudo-header sum.
        let seed = !finish(ipv4_pseudo(src, dst, 17, 10));
        udp[6..8].copy_from_slice(&seed.to_be_bytes());
        assert!(complete_partial(&mut udp, 0, 6));
        assert_eq!(u16::from_be_bytes([udp[6], udp[7]]), full);
        // Byte-exact: computed by hand for this segment.
        assert_eq!(full, 0x7e67);
        assert!(!complete_partial(&mut udp, 9, 6));
    }
}
