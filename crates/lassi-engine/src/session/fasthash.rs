//! A small multiplicative hasher for the session indices. The keys (IPv4
//! addresses, MACs) are short and only ever inserted for clients that hold a
//! lease lassi handed out, so SipHash's flooding resistance buys nothing here
//! and its cost would land on every forwarded packet.

use std::hash::{BuildHasher, Hasher};

/// Hasher state: folds bytes into a word, then mixes once.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)) ^ (self.0 >> 56);
        }
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 << 32) ^ u64::from(v);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown picks the bucket from the low bits, and Ipv4Addr hashes
        // as a native-endian u32, so on little-endian CPUs the varying last
        // octet arrives in the top byte: the mix must carry it down.
        // MurmurHash3's 64-bit finalizer: every input bit reaches every
        // output bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// `BuildHasher` for `FastHasher`.
#[derive(Default, Clone, Copy)]
pub struct FastBuildHasher;

impl BuildHasher for FastBuildHasher {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use std::collections::HashSet;

    #[test]
    fn neighbouring_keys_spread_over_low_bits() {
        let hashes: HashSet<u64> = (0..4096u32)
            .map(|i| FastBuildHasher.hash_one(Ipv4Addr::from(0x0a01_0000 + i)) & 0xfff)
            .collect();
        // A good spread fills most of the 4096 buckets.
        assert!(hashes.len() > 2400, "{}", hashes.len());
        let macs: HashSet<u64> = (0..4096u32)
            .map(|i| {
                let b = i.to_be_bytes();
                FastBuildHasher.hash_one(crate::wire::MacAddr([2, 0, 0, b[1], b[2], b[3]])) & 0xfff
            })
            .collect();
        assert!(macs.len() > 2400, "{}", macs.len());
    }
}
