//! The kernel fast path (`dataplane.fast_path = "kernel"`), from the engine
//! thread: the sessions the engine lets onto a fast path
//! ([`Engine::fast_path_sessions`]) that need nothing from lassi per packet
//! (no quota; rates the kernel shapes itself) are handed to the kernel
//! ([`KernelTables`]), which forwards them; lassi reads the kernel's
//! per-session counters into the sessions. A rate changed by CoA takes
//! the session back and hands it over again with the new one. A session with a connection still steered to the portal
//! is handed over with its TCP to port 80 left to lassi.
//!
//! Everything else takes the user-space path exactly as with the other
//! backend: guests not logged in (DHCP, DNS, the portal, the walled garden,
//! refusals and drops), metered sessions, IPv6, traffic to the gateway or
//! between guests.
//!
//! Exactness: the kernel counts each element from zero; lassi keeps what
//! it last read and adds the difference. A session leaves the kernel
//! before its Stop goes out, and the counts read as it leaves go into that
//! Stop ([`add_late_counts`]). Counts are read every second (idle timeout,
//! Lost-Carrier, Interim-Updates) and before anything shows a session's
//! counters.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::forwarder::Forwarder;
use super::kernel_tables::{Admission, KernelTables, Totals};
// As with the workers: counters read at least every SYNC_MS, and reads
// within TALLY_MS of the last reuse it.
use super::pool::{add_late_counts, SYNC_MS, TALLY_MS};
use crate::dataplane::{Event, FastDelta, FastLimits, FastSession};
use crate::session::Counters;
use crate::wire::MacAddr;
use crate::UnixMillis;

/// A session the kernel forwards.
struct Handed {
    mac: MacAddr,
    divert_http: bool,
    /// Its rates as the kernel shapes them (bit/s).
    up_bps: Option<u64>,
    down_bps: Option<u64>,
    session_id: String,
    /// What its elements had counted at the last read.
    seen: Totals,
}

/// The kernel fast path's bookkeeping.
pub struct KernelPath {
    tables: KernelTables,
    handed: HashMap<Ipv4Addr, Handed>,
    /// Counts read after their session ended, by Acct-Session-Id.
    orphans: Vec<(String, Counters)>,
    /// A command may have changed a session: sync at the next publish.
    pub(super) dirty: bool,
    next_sync: UnixMillis,
    last_read: Option<UnixMillis>,
    /// The kernel refused a change: logged once until one succeeds.
    failing: bool,
    /// Changes and reads the kernel refused.
    errors: u64,
}

/// Whether the kernel can forward `s` with nothing left for lassi to do
/// per packet: anything but a quota (rates the kernel shapes), except a
/// shaped session with a connection still steered to the portal (the
/// upload shaper marks frames itself and cannot leave port 80 to lassi),
/// until that connection ends.
pub fn kernel_eligible(s: &FastSession) -> bool {
    let FastLimits {
        up_bps,
        in_left,
        out_left,
        total_left,
        ..
    } = s.limits;
    let metered = in_left.is_some() || out_left.is_some() || total_left.is_some();
    let upload_shaped_with_port_80_to_lassi = s.divert_http && up_bps.is_some();
    !(metered || upload_shaped_with_port_80_to_lassi)
}

/// How the kernel should take `s`.
fn admission_of(s: &FastSession) -> Admission {
    Admission {
        ip: s.ip,
        mac: s.mac,
        divert_http: s.divert_http,
        up_bps: s.limits.up_bps,
        down_bps: s.limits.down_bps,
    }
}

/// The counts between two reads of one session's elements. A counter that
/// went backwards (its element was replaced) counts from zero.
fn difference(now: &Totals, before: &Totals) -> Counters {
    let d = |a: u64, b: u64| if a >= b { a - b } else { a };
    Counters {
        octets_in: d(now.up.bytes, before.up.bytes),
        packets_in: d(now.up.packets, before.up.packets),
        octets_out: d(now.down.bytes, before.down.bytes),
        packets_out: d(now.down.packets, before.down.packets),
    }
}

impl Handed {
    fn admission(&self, ip: Ipv4Addr) -> Admission {
        Admission {
            ip,
            mac: self.mac,
            divert_http: self.divert_http,
            up_bps: self.up_bps,
            down_bps: self.down_bps,
        }
    }
}

impl KernelPath {
    /// Bookkeeping over `tables`.
    pub fn new(tables: KernelTables) -> KernelPath {
        KernelPath {
            tables,
            handed: HashMap::new(),
            orphans: Vec::new(),
            dirty: false,
            next_sync: 0,
            last_read: None,
            failing: false,
            errors: 0,
        }
    }

    /// How many sessions the kernel forwards.
    pub fn admitted(&self) -> usize {
        self.handed.len()
    }

    /// Changes and reads the kernel refused so far.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    fn report(&mut self, what: &str, r: std::io::Result<()>) {
        self.errors += u64::from(r.is_err());
        match r {
            Ok(()) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::error!("kernel fast path: {what}: {e}");
            }
            Err(_) => {}
        }
    }

    /// The delta of one session between `now` and what was seen.
    fn delta(ip: Ipv4Addr, h: &Handed, now: &Totals, at: UnixMillis) -> FastDelta {
        let counters = difference(now, &h.seen);
        let heard = if counters.packets_in > 0 { at } else { 0 };
        FastDelta {
            mac: h.mac,
            ip,
            counters,
            last_active: heard,
            last_seen: heard,
            shaped_drops: now
                .shaped_drops
                .checked_sub(h.seen.shaped_drops)
                .unwrap_or(now.shaped_drops),
            ..FastDelta::default()
        }
    }
}

impl Forwarder {
    /// Add what the kernel counted since the last read to the sessions.
    fn read_kernel(&mut self, now: UnixMillis) {
        let Some(k) = self.kernel.as_mut() else {
            return;
        };
        k.last_read = Some(now);
        let read = k.tables.counters();
        let totals = match read {
            Ok(t) => t,
            Err(e) => {
                k.report("reading the counters", Err(e));
                return;
            }
        };
        for (ip, h) in k.handed.iter_mut() {
            let Some(t) = totals.get(ip) else {
                continue;
            };
            let d = KernelPath::delta(*ip, h, t, now);
            h.seen = *t;
            if d.counters != Counters::default() && !self.engine.apply_fast_delta(&h.session_id, &d)
            {
                k.orphans.push((h.session_id.clone(), d.counters));
            }
        }
    }

    /// A read of the counters for a command that shows them; one within
    /// [`TALLY_MS`] of the last is reused.
    pub(super) fn tally_kernel(&mut self, now: UnixMillis) {
        let recent = (self.kernel.as_ref())
            .and_then(|k| k.last_read)
            .is_some_and(|t| now.saturating_sub(t) < TALLY_MS);
        if !recent {
            self.read_kernel(now);
        }
    }

    /// Read the counters and bring the kernel in line with the sessions
    /// when one may have changed (or a second has passed); then add the
    /// counts of ended sessions to their Stops in `events`.
    pub(super) fn sync_kernel(&mut self, now: UnixMillis, events: &mut [Event]) {
        let Some(k) = self.kernel.as_mut() else {
            return;
        };
        let changed = events
            .iter()
            .any(|e| matches!(e, Event::SessionStarted(_) | Event::SessionEnded(_)));
        // Counters every SYNC_MS (a revoke reads its own, a tally too): a
        // burst of logins must not dump 10,000 elements per login.
        if now >= k.next_sync {
            k.next_sync = now + SYNC_MS;
            k.dirty = true;
            self.read_kernel(now);
        }
        let Some(k) = self.kernel.as_mut() else {
            return;
        };
        if changed || k.dirty {
            k.dirty = false;
            self.reconcile_kernel(now);
        }
        if let Some(k) = self.kernel.as_mut() {
            add_late_counts(&mut k.orphans, events);
        }
    }

    /// Take back what the engine no longer allows, then hand over what it
    /// newly allows.
    fn reconcile_kernel(&mut self, now: UnixMillis) {
        // Sorted by address (the engine's order), looked up by binary search.
        let wanted: Vec<FastSession> = (self.engine.fast_path_sessions().into_iter())
            .filter(kernel_eligible)
            .collect();
        let Some(k) = self.kernel.as_mut() else {
            return;
        };
        let stale: Vec<Admission> = (k.handed.iter())
            .filter(|(ip, h)| match wanted.binary_search_by_key(*ip, |w| w.ip) {
                // A changed rate (CoA) is taken back and handed over again,
                // counts kept.
                Ok(i) => {
                    let w = &wanted[i];
                    w.session_id != h.session_id || admission_of(w) != h.admission(w.ip)
                }
                Err(_) => true,
            })
            .map(|(ip, h)| h.admission(*ip))
            .collect();
        if !stale.is_empty() {
            self.revoke_kernel(&stale, now);
        }
        let Some(k) = self.kernel.as_mut() else {
            return;
        };
        let new: Vec<FastSession> = (wanted.into_iter())
            .filter(|w| !k.handed.contains_key(&w.ip))
            .collect();
        if new.is_empty() {
            return;
        }
        let pairs: Vec<Admission> = new.iter().map(admission_of).collect();
        let r = k.tables.admit(&pairs);
        let ok = r.is_ok();
        k.report("handing sessions to the kernel", r);
        if !ok {
            // Some elements may be in: take them all back, so that what
            // lassi believes and what the kernel does stay the same. The
            // sessions stay on the user-space path; the next sync retries.
            // (An error undoing it was reported with the admission's.)
            let _ = k.tables.revoke(&pairs);
            return;
        }
        for s in new {
            let h = Handed {
                mac: s.mac,
                divert_http: s.divert_http,
                up_bps: s.limits.up_bps,
                down_bps: s.limits.down_bps,
                session_id: s.session_id,
                seen: Totals::default(),
            };
            k.handed.insert(s.ip, h);
        }
    }

    /// Take `sessions` back from the kernel and add their last counts.
    fn revoke_kernel(&mut self, sessions: &[Admission], now: UnixMillis) {
        let Some(k) = self.kernel.as_mut() else {
            return;
        };
        let last = match k.tables.revoke(sessions) {
            Ok(last) => last,
            Err(e) => {
                // Counted bytes are not lost: they stay in the elements,
                // which the next sync reads and revokes again.
                k.report("taking sessions back from the kernel", Err(e));
                return;
            }
        };
        for Admission { ip, .. } in sessions {
            let Some(h) = k.handed.remove(ip) else {
                continue;
            };
            let t = (last.iter().find(|(a, _)| a == ip)).map_or(h.seen, |(_, t)| *t);
            let d = KernelPath::delta(*ip, &h, &t, now);
            if d.counters != Counters::default() && !self.engine.apply_fast_delta(&h.session_id, &d)
            {
                k.orphans.push((h.session_id, d.counters));
            }
        }
    }

    /// At shutdown: the last counts into the sessions (still open), and the
    /// kernel's routes and neighbours removed.
    pub(super) fn stop_kernel(&mut self, now: UnixMillis) {
        let all: Vec<Admission> = match self.kernel.as_ref() {
            Some(k) => k.handed.iter().map(|(ip, h)| h.admission(*ip)).collect(),
            None => return,
        };
        self.revoke_kernel(&all, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::kernel_tables::Count;

    fn totals(up: (u64, u64), down: (u64, u64)) -> Totals {
        Totals {
            up: Count {
                bytes: up.0,
                packets: up.1,
            },
            down: Count {
                bytes: down.0,
                packets: down.1,
            },
            shaped_drops: 0,
        }
    }

    #[test]
    fn shaper_drops_are_reported_once_and_from_zero_after_a_new_class() {
        let h = Handed {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            divert_http: false,
            up_bps: Some(1_000_000),
            down_bps: None,
            session_id: "s".into(),
            seen: Totals {
                shaped_drops: 40,
                ..Totals::default()
            },
        };
        let ip = Ipv4Addr::new(10, 1, 0, 2);
        let read = |drops| Totals {
            shaped_drops: drops,
            ..Totals::default()
        };
        assert_eq!(KernelPath::delta(ip, &h, &read(55), 1).shaped_drops, 15);
        // A class made anew (a changed rate) counts from zero.
        assert_eq!(KernelPath::delta(ip, &h, &read(7), 1).shaped_drops, 7);
    }

    #[test]
    fn successive_reads_add_up_to_the_last_with_nothing_twice() {
        let reads = [
            totals((0, 0), (0, 0)),
            totals((1500, 1), (0, 0)),
            totals((1500, 1), (64_000, 40)),
            totals((90_000, 70), (5_000_000, 3_400)),
        ];
        let mut h = Handed {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            divert_http: false,
            up_bps: None,
            down_bps: None,
            session_id: "s".into(),
            seen: Totals::default(),
        };
        let mut sum = Counters::default();
        for (i, r) in reads.iter().enumerate() {
            let d = KernelPath::delta(Ipv4Addr::new(10, 1, 0, 2), &h, r, 1000 + i as u64);
            // Heard only when the client sent something since the last read.
            assert_eq!(d.last_seen != 0, d.counters.packets_in > 0);
            sum.octets_in += d.counters.octets_in;
            sum.packets_in += d.counters.packets_in;
            sum.octets_out += d.counters.octets_out;
            sum.packets_out += d.counters.packets_out;
            h.seen = *r;
        }
        let last = reads[3];
        assert_eq!(
            (
                sum.octets_in,
                sum.packets_in,
                sum.octets_out,
                sum.packets_out
            ),
            (
                last.up.bytes,
                last.up.packets,
                last.down.bytes,
                last.down.packets
            )
        );
    }

    #[test]
    fn a_counter_that_restarted_counts_from_zero() {
        let d = difference(&totals((100, 1), (7, 1)), &totals((5_000, 9), (3, 1)));
        assert_eq!((d.octets_in, d.packets_in), (100, 1));
        assert_eq!((d.octets_out, d.packets_out), (4, 0));
    }

    #[test]
    fn only_sessions_without_a_quota_go_to_the_kernel_shaped_or_not() {
        let s = |limits, divert_http| FastSession {
            ip: Ipv4Addr::new(10, 1, 0, 2),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            session_id: "s".into(),
            limits,
            divert_http,
        };
        assert!(kernel_eligible(&s(FastLimits::default(), false)));
        // Its port 80 stays with lassi, the rest goes to the kernel.
        assert!(kernel_eligible(&s(FastLimits::default(), true)));
        let shaped = FastLimits {
            down_bps: Some(1_000_000),
            ..FastLimits::default()
        };
        assert!(kernel_eligible(&s(shaped, false)));
        assert_eq!(admission_of(&s(shaped, false)).down_bps, Some(1_000_000));
        // Download shaping leaves port 80 alone; upload shaping cannot.
        assert!(kernel_eligible(&s(shaped, true)));
        let up_shaped = FastLimits {
            up_bps: Some(1_000_000),
            ..FastLimits::default()
        };
        assert!(kernel_eligible(&s(up_shaped, false)));
        assert!(!kernel_eligible(&s(up_shaped, true)));
        let metered = FastLimits {
            total_left: Some(10),
            ..FastLimits::default()
        };
        assert!(!kernel_eligible(&s(metered, false)));
    }
}
