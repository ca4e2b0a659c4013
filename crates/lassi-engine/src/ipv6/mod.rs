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
    use super::Rng;

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
