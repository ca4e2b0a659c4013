//! Who gets one of the portal's connection slots.
//!
//! The portal serves a bounded number of connections. A guest holding many
//! slow connections from many addresses (finding 3 of issue 8: 17 leases,
//! 16 slow POSTs each) must not lock the others out, so admission is fair:
//!
//! - a client (keyed by the MAC behind its address, else the address) holds
//!   at most `per_client` connections;
//! - when every slot is busy, a client that holds fewer connections than the
//!   biggest holder is still let in: the biggest holder's oldest connection
//!   is closed to make room. A guest with no connection therefore always
//!   gets in, however many addresses the attacker has.
//!
//! I/O-free: the shell asks [`Admission::admit`] on every accepted socket,
//! closes the victim it names, and calls [`Admission::release`] when a
//! connection ends.

use core::net::Ipv4Addr;
use std::collections::HashMap;

use crate::wire::MacAddr;
use crate::UnixMillis;

/// Who a connection belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The MAC of the client holding the peer address (the data plane knew it).
    Mac(MacAddr),
    /// The peer address alone (no client holds it).
    Ip(Ipv4Addr),
}

/// A connection's number, given at admission.
pub type ConnId = u64;

/// The answer to one new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Serve it as `id`.
    Yes(ConnId),
    /// Serve it as `id`, after closing connection `evict` (the oldest of the
    /// client holding the most slots).
    Evicting {
        /// The new connection.
        id: ConnId,
        /// The connection to close.
        evict: ConnId,
    },
    /// The client already holds its share: close it at once.
    ClientFull,
    /// Every slot is busy and no client holds more than this one: close it.
    Full,
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    key: ClientKey,
    opened: UnixMillis,
}

/// The table of open connections.
#[derive(Debug)]
pub struct Admission {
    total: usize,
    per_client: usize,
    next: ConnId,
    conns: HashMap<ConnId, Conn>,
    held: HashMap<ClientKey, usize>,
}

impl Admission {
    /// A table of `total` slots, at most `per_client` for one client.
    pub fn new(total: usize, per_client: usize) -> Admission {
        Admission {
            total: total.max(1),
            per_client: per_client.clamp(1, total.max(1)),
            next: 0,
            conns: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Connections `key` holds.
    pub fn held_by(&self, key: ClientKey) -> usize {
        self.held.get(&key).copied().unwrap_or(0)
    }

    /// Decides about a new connection of `key`, opened at `now`.
    pub fn admit(&mut self, key: ClientKey, now: UnixMillis) -> Admit {
        let mine = self.held_by(key);
        if mine >= self.per_client {
            return Admit::ClientFull;
        }
        if self.conns.len() < self.total {
            return Admit::Yes(self.open(key, now));
        }
        // Full: only a client below the biggest holder may take a slot from it,
        // so holders converge to equal shares and a newcomer always gets one.
        let Some((&big, &n)) = self.held.iter().max_by_key(|(_, n)| **n) else {
            return Admit::Full;
        };
        if n <= mine + 1 {
            return Admit::Full;
        }
        let Some(evict) = self.oldest_of(big) else {
            return Admit::Full;
        };
        self.release(evict);
        Admit::Evicting {
            id: self.open(key, now),
            evict,
        }
    }

    /// Forgets a connection that ended (or was evicted). Unknown ids are
    /// ignored, so releasing twice is harmless.
    pub fn release(&mut self, id: ConnId) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if let Some(n) = self.held.get_mut(&c.key) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&c.key);
            }
        }
    }

    fn open(&mut self, key: ClientKey, now: UnixMillis) -> ConnId {
        self.next += 1;
        self.conns.insert(self.next, Conn { key, opened: now });
        *self.held.entry(key).or_insert(0) += 1;
        self.next
    }

    fn oldest_of(&self, key: ClientKey) -> Option<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.key == key)
            .min_by_key(|(id, c)| (c.opened, **id))
            .map(|(id, _)| *id)
    }
}

/// At most one warning per period about refused connections, with how many
/// were refused since the last one (finding 9: one WARN per refused
/// connection let an attacker fill the log).
#[derive(Debug, Default)]
pub struct RefusalLog {
    period_ms: u64,
    last: Option<UnixMillis>,
    pending: u64,
}

impl RefusalLog {
    /// Warn at most every `period_ms`.
    pub fn new(period_ms: u64) -> RefusalLog {
        RefusalLog {
            period_ms,
            last: None,
            pending: 0,
        }
    }

    /// Counts one refusal at `now`; returns how many to report if a warning
    /// is due now.
    pub fn refused(&mut self, now: UnixMillis) -> Option<u64> {
        self.pending += 1;
        match self.last {
            Some(t) if now < t.saturating_add(self.period_ms) => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.pending))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> ClientKey {
        ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, n]))
    }

    fn id(a: Admit) -> ConnId {
        match a {
            Admit::Yes(id) | Admit::Evicting { id, .. } => id,
            other => panic!("refused: {other:?}"),
        }
    }

    #[test]
    fn per_client_share() {
        let mut a = Admission::new(10, 3);
        let ids: Vec<_> = (0..3).map(|t| id(a.admit(mac(1), t))).collect();
        assert_eq!(a.admit(mac(1), 5), Admit::ClientFull);
        assert!(matches!(a.admit(mac(2), 5), Admit::Yes(_)));
        a.release(ids[0]);
        a.release(ids[0]);
        assert!(matches!(a.admit(mac(1), 6), Admit::Yes(_)));
        assert_eq!(a.held_by(mac(1)), 3);
    }

    #[test]
    fn many_attackers_cannot_lock_out_a_newcomer() {
        // 17 addresses with 16 connections each against 256 slots, as in
        // the attack; then an honest guest, three times.
        let mut a = Admission::new(256, 16);
        let mut t = 0;
        for round in 0..16 {
            for n in 1..=17u8 {
                t += 1;
                let r = a.admit(mac(n), t);
                assert_ne!(r, Admit::ClientFull, "round {round}");
            }
        }
        assert_eq!(a.len(), 256);
        let honest = ClientKey::Ip(Ipv4Addr::new(10, 1, 0, 99));
        for _ in 0..3 {
            t += 1;
            match a.admit(honest, t) {
                Admit::Evicting { evict, .. } => assert!(evict > 0),
                other => panic!("honest refused: {other:?}"),
            }
        }
        assert_eq!(a.len(), 256);
        assert_eq!(a.held_by(honest), 3);
        // The attackers are levelled, not the newcomer.
        assert!((1..=17u8).all(|n| a.held_by(mac(n)) <= 16));
    }

    #[test]
    fn equal_holders_do_not_churn() {
        let mut a = Admission::new(4, 4);
        id(a.admit(mac(1), 0));
        id(a.admit(mac(1), 1));
        id(a.admit(mac(2), 2));
        id(a.admit(mac(2), 3));
        // mac(2) holds 2, the biggest holds 2: taking one would only swap.
        assert_eq!(a.admit(mac(2), 4), Admit::Full);
        assert_eq!(a.admit(mac(1), 4), Admit::Full);
        // A newcomer evicts the oldest of a biggest holder.
        match a.admit(mac(3), 5) {
            Admit::Evicting { evict, .. } => assert!(evict == 1 || evict == 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn evicts_the_oldest_of_the_biggest() {
        let mut a = Admission::new(3, 3);
        let old = id(a.admit(mac(1), 10));
        id(a.admit(mac(1), 20));
        id(a.admit(mac(2), 5));
        assert_eq!(a.admit(mac(3), 30), Admit::Evicting { id: 4, evict: old });
        assert_eq!(a.held_by(mac(1)), 1);
        a.release(old); // the shell releasing it again is harmless
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn refusals_are_summarised() {
        let mut l = RefusalLog::new(10_000);
        assert_eq!(l.refused(1_000), Some(1));
        for t in 1_001..1_500 {
            assert_eq!(l.refused(t), None);
        }
        assert_eq!(l.refused(11_000), Some(500));
        assert_eq!(l.refused(11_001), None);
    }
}
