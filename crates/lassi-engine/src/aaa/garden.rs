//! Walled-garden refresh policy: when to resolve each of the garden's host
//! names again, and which addresses the data plane should let through.
//! I/O-free, in the style of the RADIUS client engine: the shell resolves
//! what [`GardenRefresh::poll_query`] names, feeds the result to
//! [`GardenRefresh::handle_resolved`] or [`GardenRefresh::handle_failed`],
//! hands [`GardenRefresh::poll_addresses`] to the data plane, and sleeps
//! until [`GardenRefresh::poll_timeout`].
//!
//! Each name is refreshed shortly before its TTL runs out (at nine tenths
//! of it), but never sooner than `min_refresh_ms` after the last answer
//! (a TTL of 0 or a few seconds does not turn lassi into a DNS flood) and
//! never later than `max_refresh_ms` (a TTL of a week does not pin an
//! address for a week). A name that could not be resolved is tried again
//! after `first_retry_ms`, doubling up to `max_retry_ms`, and keeps the
//! addresses it last had meanwhile: a DNS outage does not close the garden.

use core::net::Ipv4Addr;
use std::collections::VecDeque;

use crate::UnixMillis;

/// The policy's knobs; the defaults are lassi's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GardenSettings {
    /// The shortest time between two answers for one name.
    pub min_refresh_ms: u64,
    /// The longest time an answer is used before asking again.
    pub max_refresh_ms: u64,
    /// Wait after the first failure to resolve a name.
    pub first_retry_ms: u64,
    /// The longest wait after failures (the wait doubles up to it).
    pub max_retry_ms: u64,
}

impl Default for GardenSettings {
    fn default() -> Self {
        GardenSettings {
            min_refresh_ms: 30_000,
            max_refresh_ms: 3_600_000,
            first_retry_ms: 30_000,
            max_retry_ms: 300_000,
        }
    }
}

/// Where one name stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Handed out by `poll_query`, no result yet.
    Querying,
    /// In the queue of names to resolve.
    Due,
    /// Resolved again at this time.
    Until(UnixMillis),
}

/// One host name of the garden.
#[derive(Clone, Debug)]
struct Host {
    name: String,
    addrs: Vec<Ipv4Addr>,
    phase: Phase,
    retry_ms: u64,
}

/// The walled-garden refresh state machine (see the module docs).
#[derive(Debug)]
pub struct GardenRefresh {
    settings: GardenSettings,
    hosts: Vec<Host>,
    due: VecDeque<usize>,
    changed: bool,
}

impl GardenRefresh {
    /// A policy for these host names; every one is due at once.
    pub fn new(names: impl IntoIterator<Item = String>, settings: GardenSettings) -> Self {
        let mut hosts: Vec<Host> = Vec::new();
        for name in names {
            if hosts.iter().all(|h| h.name != name) {
                hosts.push(Host {
                    name,
                    addrs: Vec::new(),
                    phase: Phase::Due,
                    retry_ms: settings.first_retry_ms,
                });
            }
        }
        GardenRefresh {
            settings,
            due: (0..hosts.len()).collect(),
            hosts,
            changed: false,
        }
    }

    /// Replace the set of names (a live edit or a reload): names kept keep
    /// their addresses and schedule, new ones are due at once, and the
    /// addresses of names gone are no longer handed out.
    pub fn set_names(&mut self, names: impl IntoIterator<Item = String>) {
        let mut wanted: Vec<String> = Vec::new();
        for n in names {
            if !wanted.contains(&n) {
                wanted.push(n);
            }
        }
        let before = self.hosts.len();
        self.hosts.retain(|h| wanted.contains(&h.name));
        self.changed |= self.hosts.len() != before;
        for name in wanted {
            if self.hosts.iter().all(|h| h.name != name) {
                self.hosts.push(Host {
                    name,
                    addrs: Vec::new(),
                    phase: Phase::Due,
                    retry_ms: self.settings.first_retry_ms,
                });
            }
        }
        self.due = (self.hosts.iter().enumerate())
            .filter(|(_, h)| h.phase == Phase::Due)
            .map(|(i, _)| i)
            .collect();
    }

    /// Each name with the addresses it last resolved to.
    pub fn addresses(&self) -> Vec<(String, Vec<Ipv4Addr>)> {
        (self.hosts.iter())
            .map(|h| (h.name.clone(), h.addrs.clone()))
            .collect()
    }

    /// The next name to resolve.
    pub fn poll_query(&mut self) -> Option<String> {
        let i = self.due.pop_front()?;
        let host = &mut self.hosts[i];
        host.phase = Phase::Querying;
        Some(host.name.clone())
    }

    /// `name` resolved to `addrs`, valid for `ttl_secs`.
    pub fn handle_resolved(
        &mut self,
        name: &str,
        mut addrs: Vec<Ipv4Addr>,
        ttl_secs: u32,
        now: UnixMillis,
    ) {
        let s = self.settings;
        let Some(host) = self.querying(name) else {
            return;
        };
        addrs.sort_unstable();
        addrs.dedup();
        let ttl_ms = u64::from(ttl_secs) * 1000;
        let refresh_ms = (ttl_ms - ttl_ms / 10).clamp(s.min_refresh_ms, s.max_refresh_ms);
        host.phase = Phase::Until(now.saturating_add(refresh_ms));
        host.retry_ms = s.first_retry_ms;
        if host.addrs != addrs {
            host.addrs = addrs;
            self.changed = true;
        }
    }

    /// `name` could not be resolved; its addresses stay as they were.
    pub fn handle_failed(&mut self, name: &str, now: UnixMillis) {
        let max = self.settings.max_retry_ms;
        let Some(host) = self.querying(name) else {
            return;
        };
        host.phase = Phase::Until(now.saturating_add(host.retry_ms));
        host.retry_ms = host.retry_ms.saturating_mul(2).min(max);
    }

    fn querying(&mut self, name: &str) -> Option<&mut Host> {
        self.hosts
            .iter_mut()
            .find(|h| h.name == name && h.phase == Phase::Querying)
    }

    /// Every address of the garden's names, sorted, when it has changed
    /// since last asked.
    pub fn poll_addresses(&mut self) -> Option<Vec<Ipv4Addr>> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let mut all: Vec<Ipv4Addr> = self.hosts.iter().flat_map(|h| h.addrs.clone()).collect();
        all.sort_unstable();
        all.dedup();
        Some(all)
    }

    /// When [`GardenRefresh::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.hosts
            .iter()
            .filter_map(|h| match h.phase {
                Phase::Until(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// Names whose time has come are queued for `poll_query`.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        for (i, host) in self.hosts.iter_mut().enumerate() {
            if matches!(host.phase, Phase::Until(at) if at <= now) {
                host.phase = Phase::Due;
                self.due.push_back(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = 1_700_000_000_000;
    const SEC: u64 = 1000;

    fn garden(names: &[&str]) -> GardenRefresh {
        GardenRefresh::new(
            names.iter().map(|n| n.to_string()),
            GardenSettings::default(),
        )
    }

    fn queries(g: &mut GardenRefresh) -> Vec<String> {
        std::iter::from_fn(|| g.poll_query()).collect()
    }

    fn a(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, last)
    }

    #[test]
    fn every_name_is_resolved_at_start_and_once_at_a_time() {
        let mut g = garden(&["pay.example", "portal.example", "pay.example"]);
        assert_eq!(queries(&mut g), ["pay.example", "portal.example"]);
        assert_eq!(g.poll_timeout(), None, "nothing to wait for while asking");
        g.handle_timeout(T0 + 10_000 * SEC);
        assert!(
            queries(&mut g).is_empty(),
            "no second query while one is open"
        );
        assert_eq!(g.poll_addresses(), None);
    }

    #[test]
    fn a_name_is_refreshed_before_its_ttl_runs_out() {
        let mut g = garden(&["pay.example"]);
        let name = g.poll_query().unwrap();
        g.handle_resolved(&name, vec![a(2), a(1), a(2)], 300, T0);
        assert_eq!(g.poll_addresses(), Some(vec![a(1), a(2)]));
        assert_eq!(g.poll_addresses(), None, "reported once");
        let at = g.poll_timeout().unwrap();
        assert_eq!(at, T0 + 270 * SEC, "at nine tenths of the TTL");
        g.handle_timeout(at - 1);
        assert_eq!(g.poll_query(), None);
        g.handle_timeout(at);
        assert_eq!(g.poll_query().as_deref(), Some("pay.example"));
        // The same answer again changes nothing for the data plane.
        g.handle_resolved("pay.example", vec![a(1), a(2)], 300, at);
        assert_eq!(g.poll_addresses(), None);
        g.handle_timeout(at + 270 * SEC);
        let name = g.poll_query().unwrap();
        g.handle_resolved(&name, vec![a(3)], 300, at + 270 * SEC);
        assert_eq!(g.poll_addresses(), Some(vec![a(3)]));
    }

    #[test]
    fn short_and_huge_ttls_are_capped() {
        let mut g = garden(&["short.example", "zero.example", "huge.example"]);
        let n = g.poll_query().unwrap();
        g.handle_resolved(&n, vec![a(1)], 5, T0);
        let n = g.poll_query().unwrap();
        g.handle_resolved(&n, vec![a(2)], 0, T0);
        let n = g.poll_query().unwrap();
        g.handle_resolved(&n, vec![a(3)], u32::MAX, T0);
        assert_eq!(g.poll_addresses(), Some(vec![a(1), a(2), a(3)]));
        // The minimum interval: TTLs of 5 s and 0 s wait 30 s.
        assert_eq!(g.poll_timeout(), Some(T0 + 30 * SEC));
        g.handle_timeout(T0 + 29 * SEC);
        assert_eq!(g.poll_query(), None);
        g.handle_timeout(T0 + 30 * SEC);
        assert_eq!(queries(&mut g), ["short.example", "zero.example"]);
        // The huge TTL waits an hour at most.
        assert_eq!(g.poll_timeout(), Some(T0 + 3600 * SEC));
        g.handle_timeout(T0 + 3600 * SEC);
        assert_eq!(queries(&mut g), ["huge.example"]);
    }

    #[test]
    fn failures_back_off_and_keep_the_last_addresses() {
        let mut g = garden(&["pay.example"]);
        let n = g.poll_query().unwrap();
        g.handle_resolved(&n, vec![a(1)], 60, T0);
        assert_eq!(g.poll_addresses(), Some(vec![a(1)]));
        let mut now = g.poll_timeout().unwrap();
        let mut waits = Vec::new();
        for _ in 0..6 {
            g.handle_timeout(now);
            let name = g.poll_query().unwrap();
            g.handle_failed(&name, now);
            let next = g.poll_timeout().unwrap();
            waits.push((next - now) / SEC);
            now = next;
        }
        assert_eq!(waits, [30, 60, 120, 240, 300, 300]);
        assert_eq!(g.poll_addresses(), None, "the garden stays open");
        // A success resets the back-off.
        g.handle_timeout(now);
        let n = g.poll_query().unwrap();
        g.handle_resolved(&n, vec![a(1)], 60, now);
        g.handle_timeout(g.poll_timeout().unwrap());
        let t = g.poll_timeout();
        assert_eq!(t, None, "querying");
        let name = g.poll_query().unwrap();
        g.handle_failed(&name, now + 54 * SEC);
        assert_eq!(g.poll_timeout(), Some(now + 84 * SEC));
    }

    #[test]
    fn results_for_names_not_asked_about_are_ignored() {
        let mut g = garden(&["pay.example"]);
        g.handle_resolved("evil.example", vec![a(66)], 300, T0);
        assert_eq!(g.poll_addresses(), None);
        let name = g.poll_query().unwrap();
        g.handle_resolved(&name, vec![a(1)], 300, T0);
        // A second answer to a question already answered counts for nothing.
        g.handle_resolved(&name, vec![a(66)], 300, T0);
        g.handle_failed(&name, T0);
        assert_eq!(g.poll_addresses(), Some(vec![a(1)]));
        assert_eq!(g.poll_timeout(), Some(T0 + 270 * SEC));
    }

    #[test]
    fn names_replaced_live_keep_what_stays_and_drop_what_goes() {
        let mut g = garden(&["one.example", "two.example"]);
        for name in queries(&mut g) {
            let ip = if name == "one.example" { a(1) } else { a(2) };
            g.handle_resolved(&name, vec![ip], 600, T0);
        }
        assert_eq!(g.poll_addresses(), Some(vec![a(1), a(2)]));
        g.set_names(["two.example".to_string(), "three.example".to_string()]);
        // two keeps its schedule; only the new name is asked for now.
        assert_eq!(queries(&mut g), vec!["three.example"]);
        assert_eq!(g.poll_addresses(), Some(vec![a(2)]));
        g.handle_resolved("three.example", vec![a(3)], 600, T0 + SEC);
        assert_eq!(g.poll_addresses(), Some(vec![a(2), a(3)]));
        assert_eq!(
            g.addresses(),
            vec![
                ("two.example".to_string(), vec![a(2)]),
                ("three.example".to_string(), vec![a(3)])
            ]
        );
        g.set_names(Vec::new());
        assert_eq!(g.poll_addresses(), Some(vec![]));
        assert_eq!(g.poll_timeout(), None);
    }
}
