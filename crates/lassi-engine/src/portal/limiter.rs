//! Login rate limiting per client (finding 4 of issue 8: 500 wrong CHAP
//! logins in 0.29 s, every one forwarded to RADIUS).
//!
//! A client (keyed by its MAC) has a few failed attempts free; after that
//! each failure backs it off exponentially (1 s, 2 s, 4 s … up to a
//! ceiling). While backed off, an attempt is not checked at all — neither
//! RADIUS nor the users file sees it — but still gets an answer saying how
//! long to wait. Attempts made while backed off do not lengthen the wait, so
//! a guest who retries too early is not punished further. A success, or a
//! quiet spell, forgets the client.
//!
//! I/O-free: time comes in as an argument; the table is bounded.

use std::collections::HashMap;

use crate::wire::MacAddr;
use crate::UnixMillis;

/// Failed attempts allowed before the first back-off.
pub const FREE_FAILURES: u32 = 5;
/// The first back-off.
pub const BASE_BACKOFF_MS: u64 = 1_000;
/// The longest back-off.
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// A client with no failure for this long starts afresh.
const FORGET_AFTER_MS: u64 = 10 * 60_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    blocked_until: UnixMillis,
    last: UnixMillis,
}

/// The clients that failed recently.
#[derive(Debug)]
pub struct LoginLimiter {
    capacity: usize,
    entries: HashMap<MacAddr, Entry>,
}

impl LoginLimiter {
    /// A limiter remembering at most `capacity` clients (the stalest is
    /// dropped beyond that).
    pub fn new(capacity: usize) -> LoginLimiter {
        LoginLimiter {
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    /// Clients remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// May `mac` try to log in at `now`? `Err(ms)`: not for another `ms`.
    pub fn check(&self, mac: MacAddr, now: UnixMillis) -> Result<(), u64> {
        match self.entries.get(&mac) {
            Some(e) if e.blocked_until > now => Err(e.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt of `mac` at `now`; returns the back-off it
    /// now has (0 while its free attempts last).
    pub fn failed(&mut self, mac: MacAddr, now: UnixMillis) -> u64 {
        if !self.entries.contains_key(&mac) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let e = self.entries.entry(mac).or_insert(Entry {
            failures: 0,
            blocked_until: 0,
            last: now,
        });
        if now.saturating_sub(e.last) >= FORGET_AFTER_MS {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        let backoff = backoff_ms(e.failures);
        e.blocked_until = now + backoff;
        backoff
    }

    /// Forgets `mac` (it logged in).
    pub fn succeeded(&mut self, mac: MacAddr) {
        self.entries.remove(&mac);
    }

    fn make_room(&mut self, now: UnixMillis) {
        self.entries
            .retain(|_, e| now.saturating_sub(e.last) < FORGET_AFTER_MS);
        if self.entries.len() >= self.capacity {
            if let Some(stalest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(m, _)| *m)
            {
                self.entries.remove(&stalest);
            }
        }
    }
}

/// The back-off after `failures` failed attempts.
fn backoff_ms(failures: u32) -> u64 {
    if failures < FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - FREE_FAILURES).min(16);
    (BASE_BACKOFF_MS << doublings).min(MAX_BACKOFF_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn a_few_free_then_exponential() {
        let mut l = LoginLimiter::new(16);
        let mut now = 1_000_000;
        for _ in 1..FREE_FAILURES {
            assert_eq!(l.check(mac(1), now), Ok(()));
            assert_eq!(l.failed(mac(1), now), 0);
            now += 10;
        }
        assert_eq!(l.failed(mac(1), now), 1_000);
        assert_eq!(l.check(mac(1), now + 400), Err(600));
        // Another client is not affected.
        assert_eq!(l.check(mac(2), now), Ok(()));
        let mut expect = 1_000;
        for _ in 0..10 {
            now += expect;
            assert_eq!(l.check(mac(1), now), Ok(()));
            expect = (expect * 2).min(MAX_BACKOFF_MS);
            assert_eq!(l.failed(mac(1), now), expect);
        }
        assert_eq!(expect, MAX_BACKOFF_MS);
    }

    #[test]
    fn a_flood_gets_through_only_logarithmically() {
        // 500 attempts in 0.5 s, as fast as the attacker can: only those the
        // limiter lets through would reach RADIUS.
        let mut l = LoginLimiter::new(16);
        let mut through = 0;
        for i in 0..500u64 {
            let now = 5_000 + i;
            if l.check(mac(1), now).is_ok() {
                through += 1;
                l.failed(mac(1), now);
            }
        }
        assert_eq!(through, FREE_FAILURES);
        // The same flood spread over a minute: a handful more.
        let mut through = 0;
        for i in 0..500u64 {
            let now = 100_000 + i * 120;
            if l.check(mac(1), now).is_ok() {
                through += 1;
                l.failed(mac(1), now);
            }
        }
        assert!((1..=6).contains(&through), "{through}");
    }

    #[test]
    fn success_and_quiet_forget() {
        let mut l = LoginLimiter::new(16);
        for _ in 0..FREE_FAILURES {
            l.failed(mac(1), 0);
        }
        assert!(l.check(mac(1), 1).is_err());
        l.succeeded(mac(1));
        assert_eq!(l.check(mac(1), 1), Ok(()));
        for _ in 0..FREE_FAILURES + 3 {
            l.failed(mac(2), 0);
        }
        // Ten quiet minutes: the next failure is a first one again.
        assert_eq!(l.failed(mac(2), FORGET_AFTER_MS + 60_000), 0);
    }

    #[test]
    fn bounded() {
        let mut l = LoginLimiter::new(3);
        for n in 0..20u8 {
            l.failed(mac(n), u64::from(n));
            assert!(l.len() <= 3);
        }
    }
}
