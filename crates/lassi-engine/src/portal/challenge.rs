//! Login challenges: one live challenge per client, single use, expiring.
//!
//! CoovaChilli makes a new challenge on every redirect, so a login page
//! fetched before the phone's captive-portal probe was redirected carries a
//! challenge that is no longer current and the login fails (5–10 % of
//! logins on busy sites). Here a redirect reuses the client's live challenge
//! until it is used or expires; a login consumes it, so a replayed or stale
//! challenge fails cleanly and the next page gets a fresh one.
//!
//! I/O-free: the time and the random bytes are arguments.

use std::collections::HashMap;

use super::uam::Challenge;
use crate::wire::MacAddr;
use crate::UnixMillis;

/// Why a challenge could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeError {
    /// The client has no live challenge (never had one, used it, or it
    /// expired).
    Missing,
    /// The login named a challenge other than the client's live one.
    Mismatch,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    challenge: Challenge,
    expires: UnixMillis,
}

/// The live challenges, bounded in size.
#[derive(Debug)]
pub struct ChallengeStore {
    lifetime_ms: u64,
    capacity: usize,
    live: HashMap<MacAddr, Entry>,
}

impl ChallengeStore {
    /// A store whose challenges live `lifetime_secs` and which holds at most
    /// `capacity` clients (the oldest is dropped beyond that).
    pub fn new(lifetime_secs: u32, capacity: usize) -> Self {
        ChallengeStore {
            lifetime_ms: u64::from(lifetime_secs) * 1000,
            capacity: capacity.max(1),
            live: HashMap::new(),
        }
    }

    /// Challenges handed out from now on live `lifetime_secs` (those
    /// already out keep their expiry).
    pub fn set_lifetime(&mut self, lifetime_secs: u32) {
        self.lifetime_ms = u64::from(lifetime_secs) * 1000;
    }

    /// Number of clients with a live (possibly expired, not yet purged)
    /// challenge.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The client's live challenge, or a new one made from `fresh` (random
    /// bytes the caller supplies) when it has none or it expired.
    pub fn current(&mut self, mac: MacAddr, now: UnixMillis, fresh: Challenge) -> Challenge {
        if let Some(e) = self.live.get(&mac) {
            if e.expires > now {
                return e.challenge;
            }
        }
        if !self.live.contains_key(&mac) && self.live.len() >= self.capacity {
            self.purge(now);
            if self.live.len() >= self.capacity {
                if let Some(oldest) = self
                    .live
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(m, _)| *m)
                {
                    self.live.remove(&oldest);
                }
            }
        }
        self.live.insert(
            mac,
            Entry {
                challenge: fresh,
                expires: now + self.lifetime_ms,
            },
        );
        fresh
    }

    /// Uses up the client's challenge for one login attempt. `claimed` is
    /// the challenge the login named, if it named one. Whatever the outcome,
    /// the client has no live challenge afterwards.
    pub fn consume(
        &mut self,
        mac: MacAddr,
        claimed: Option<&Challenge>,
        now: UnixMillis,
    ) -> Result<Challenge, ChallengeError> {
        let e = self.live.remove(&mac).ok_or(ChallengeError::Missing)?;
        if e.expires <= now {
            return Err(ChallengeError::Missing);
        }
        match claimed {
            Some(c) if *c != e.challenge => Err(ChallengeError::Mismatch),
            _ => Ok(e.challenge),
        }
    }

    /// Forgets the client's challenge (it logged in by other means).
    pub fn forget(&mut self, mac: MacAddr) {
        self.live.remove(&mac);
    }

    /// Drops every expired challenge.
    pub fn purge(&mut self, now: UnixMillis) {
        self.live.retain(|_, e| e.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn reused_until_used_then_single_use() {
        let mut s = ChallengeStore::new(60, 16);
        let a = s.current(mac(1), 1_000, [1; 16]);
        // A second redirect (the OS probe) does not replace it: no race.
        assert_eq!(s.current(mac(1), 2_000, [2; 16]), a);
        assert_eq!(s.consume(mac(1), Some(&a), 3_000), Ok(a));
        // Replay fails cleanly.
        assert_eq!(
            s.consume(mac(1), Some(&a), 3_001),
            Err(ChallengeError::Missing)
        );
        // The next page gets a fresh one.
        assert_eq!(s.current(mac(1), 4_000, [3; 16]), [3; 16]);
        // A login naming another challenge fails, and uses up the live one.
        assert_eq!(
            s.consume(mac(1), Some(&[9; 16]), 4_001),
            Err(ChallengeError::Mismatch)
        );
        assert_eq!(s.consume(mac(1), None, 4_002), Err(ChallengeError::Missing));
    }

    #[test]
    fn challenges_expire() {
        let mut s = ChallengeStore::new(10, 16);
        let a = s.current(mac(1), 0, [1; 16]);
        assert_eq!(s.current(mac(1), 9_999, [2; 16]), a);
        // At the deadline it is gone and a new one is made.
        assert_eq!(s.current(mac(1), 10_000, [2; 16]), [2; 16]);
        assert_eq!(
            s.consume(mac(1), Some(&[2; 16]), 20_000),
            Err(ChallengeError::Missing)
        );
        s.current(mac(2), 0, [5; 16]);
        s.purge(10_000);
        assert!(s.is_empty());
    }

    #[test]
    fn bounded() {
        let mut s = ChallengeStore::new(60, 3);
        for n in 0..10u8 {
            s.current(mac(n), u64::from(n), [n; 16]);
            assert!(s.len() <= 3);
        }
        // The newest survive.
        assert_eq!(s.consume(mac(9), None, 100), Ok([9; 16]));
        assert_eq!(s.consume(mac(0), None, 100), Err(ChallengeError::Missing));
    }
}
