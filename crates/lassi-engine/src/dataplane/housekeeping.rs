//! The engine's timers and outputs, in the quinn-proto style: the shell
//! asks [`Engine::poll_timeout`] when to wake, calls
//! [`Engine::handle_timeout`] then, and drains [`Engine::poll_event`] and
//! [`Engine::poll_save`]. Every timer is here, so the shell hard-codes
//! none: the once-a-second housekeeping (limits, Interim-Updates, ARP
//! probes, idle redirected flows), lease expiry, held packets, and the
//! saves of the session and lease tables.

use core::net::Ipv4Addr;

use super::{Engine, Event};
use crate::session::{
    Client, Durability, EndReason, QuotaAction, SessionReport, SessionState, SessionTable,
};
use crate::wire::frame::{Arp, ARP_REQUEST};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// How often (ms) limits are enforced, Interim-Updates queued and silent
/// clients probed.
pub const HOUSEKEEPING_INTERVAL_MS: u64 = 1000;

/// A table the shell should write to disk now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Save {
    /// The authorized sessions ([`Engine::session_records`]), this durably.
    Sessions(Durability),
    /// The lease table ([`Engine::lease_records`]).
    Leases,
}

/// What one housekeeping pass does to one session.
enum Due {
    End(EndReason),
    Throttle(u64, u64),
    Probe,
}

impl Engine {
    /// When [`handle_timeout`](Self::handle_timeout),
    /// [`release_held`](Self::release_held) or [`poll_save`](Self::poll_save) next has
    /// work: the shell waits for I/O until then, and no longer. (Always
    /// `Some` today: housekeeping runs once a second.)
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        [
            Some(self.next_housekeeping),
            Some(self.saves.next_deadline()),
            self.next_deadline(self.held.last_release),
            self.ipv6_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Run the timers that are due at `now`: expire leases, idle
    /// redirected connections and learnt walled-garden addresses, enforce
    /// limits. Cheap to call early or often: the work runs when a lease is
    /// due or once a second.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        self.ipv6_timeout(now);
        let lease_due = self.dhcp.next_expiry().is_some_and(|t| t <= now);
        if !lease_due && now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING_INTERVAL_MS;
        for ev in self.dhcp.expire(now) {
            self.apply_lease_event(ev, now);
        }
        self.intercept.expire(now);
        self.ipv6_housekeeping(now);
        self.enforce_limits(now);
    }

    /// When a lease next expires or a shaper next lets a packet go (its
    /// release time measured from `now`), if ever.
    pub fn next_deadline(&self, now: UnixMillis) -> Option<UnixMillis> {
        let shaped = (self.held.sessions.iter())
            .filter_map(|m| self.sessions.by_mac(*m))
            .filter_map(|c| {
                [c.up.next_release(now), c.down.next_release(now)]
                    .into_iter()
                    .flatten()
                    .min()
            })
            .min();
        [self.dhcp.next_expiry(), shaped]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        let ev = self.events.pop_front()?;
        Some(self.with_ipv6(ev))
    }

    /// Take every event queued since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        let evs: Vec<Event> = self.events.drain(..).collect();
        evs.into_iter().map(|e| self.with_ipv6(e)).collect()
    }

    /// A session event with the client's IPv6 addresses in the prefix as
    /// they are now (for Framed-IPv6-Address).
    fn with_ipv6(&self, mut ev: Event) -> Event {
        match &mut ev {
            Event::SessionStarted(r) | Event::InterimUpdate(r) => {
                r.ipv6 = self.session_ipv6(r.mac);
            }
            Event::SessionEnded(e) => e.ipv6 = self.session_ipv6(e.mac),
            Event::LeaseBound { .. } | Event::LeaseEnded { .. } => {}
        }
        ev
    }

    /// A table to save now, if one is due: the sessions at once after a
    /// login, a logout or an Interim (synced), else every
    /// [`COUNTER_SAVE_INTERVAL_MS`](crate::session::COUNTER_SAVE_INTERVAL_MS)
    /// while counters move; the leases after a change, at most once per
    /// [`LEASE_SAVE_INTERVAL_MS`](crate::session::LEASE_SAVE_INTERVAL_MS).
    /// Call it until `None` after draining the events it follows.
    pub fn poll_save(&mut self, now: UnixMillis) -> Option<Save> {
        let sessions = &self.sessions;
        if let Some(d) = (self.saves).sessions_due(now, || counters_fingerprint(sessions)) {
            return Some(Save::Sessions(d));
        }
        self.saves.leases_due(now).then_some(Save::Leases)
    }

    /// Queue an event, and note the save it calls for.
    pub(super) fn push_event(&mut self, ev: Event) {
        match ev {
            Event::LeaseBound { .. } | Event::LeaseEnded { .. } => self.saves.leases_changed(),
            Event::SessionStarted(_) | Event::SessionEnded(_) | Event::InterimUpdate(_) => {
                self.saves.sessions_changed()
            }
        }
        self.events.push_back(ev);
    }

    /// Once a second: end sessions past their time, idleness or volume,
    /// throttle instead when so configured, queue Interim-Updates, and probe
    /// silent clients.
    fn enforce_limits(&mut self, now: UnixMillis) {
        let lc = self.settings.lost_carrier;
        let quota_action = self.settings.quota_action;
        let mut actions: Vec<(MacAddr, Ipv4Addr, Due)> = Vec::new();
        for c in self.sessions.iter_mut() {
            let silent_for = now.saturating_sub(c.last_seen);
            let probe_due = lc.silent_secs > 0
                && silent_for
                    >= u64::from(lc.silent_secs) * 1000
                        + u64::from(c.probes) * u64::from(lc.interval_secs) * 1000;
            if c.state != SessionState::Authorized {
                if probe_due && c.probes < lc.probes {
                    actions.push((c.mac, c.ip, Due::Probe));
                }
                continue;
            }
            let over_quota = quota_used_up(c);
            let lost = probe_due && c.probes >= lc.probes;
            if let Some(reason) = end_reason(c, now, lost, over_quota, quota_action) {
                actions.push((c.mac, c.ip, Due::End(reason)));
                continue;
            }
            if over_quota && !c.throttled {
                if let QuotaAction::Throttle { up_bps, down_bps } = quota_action {
                    actions.push((c.mac, c.ip, Due::Throttle(up_bps, down_bps)));
                }
            }
            if probe_due {
                actions.push((c.mac, c.ip, Due::Probe));
            }
            if let Some(r) = interim_due(c, now) {
                self.saves.sessions_changed();
                self.events.push_back(Event::InterimUpdate(r));
            }
        }
        for (mac, ip, due) in actions {
            self.carry_out(mac, ip, due, now);
        }
    }

    /// Do what housekeeping found due for one client.
    fn carry_out(&mut self, mac: MacAddr, ip: Ipv4Addr, due: Due, now: UnixMillis) {
        match due {
            Due::End(reason) => {
                if let Ok(ended) = self.sessions.deauthorize(mac, reason, now) {
                    self.push_event(Event::SessionEnded(ended));
                }
            }
            Due::Throttle(up, down) => self.sessions.throttle(mac, up, down, now),
            Due::Probe => {
                if let Some(c) = self.sessions.by_mac_mut(mac) {
                    c.probes += 1;
                }
                let probe = Arp {
                    op: ARP_REQUEST,
                    sha: self.settings.gateway_mac,
                    spa: self.settings.gateway_ip,
                    tha: MacAddr::default(),
                    tpa: ip,
                };
                self.outbox
                    .push(probe.to_frame(mac, self.settings.gateway_mac));
            }
        }
    }
}

/// Whether an authorized session has used up one of its volume limits.
fn quota_used_up(c: &Client) -> bool {
    let (l, k) = (&c.limits, &c.counters);
    l.max_input_octets.is_some_and(|m| k.octets_in >= m)
        || l.max_output_octets.is_some_and(|m| k.octets_out >= m)
        || l.max_total_octets
            .is_some_and(|m| k.octets_in + k.octets_out >= m)
}

/// Why an authorized session ends now, if it does: its time, idleness,
/// lost carrier (`lost`), or its volume (`over_quota`) when that ends it.
fn end_reason(
    c: &Client,
    now: UnixMillis,
    lost: bool,
    over_quota: bool,
    quota_action: QuotaAction,
) -> Option<EndReason> {
    let started = c.authorized_at.unwrap_or(now);
    let l = &c.limits;
    let over_time = l
        .session_timeout
        .is_some_and(|t| now >= started + u64::from(t) * 1000)
        || l.terminate_at.is_some_and(|t| now >= t);
    let idle = l
        .idle_timeout
        .is_some_and(|t| now >= c.last_active + u64::from(t) * 1000);
    if over_time {
        Some(EndReason::SessionTimeout)
    } else if idle {
        Some(EndReason::IdleTimeout)
    } else if lost {
        Some(EndReason::LostCarrier)
    } else if over_quota && !c.throttled && quota_action == QuotaAction::End {
        Some(EndReason::QuotaExceeded)
    } else {
        None
    }
}

/// The Interim-Update due for a session now, if any (its next one is then
/// scheduled).
fn interim_due(c: &mut Client, now: UnixMillis) -> Option<SessionReport> {
    let (Some(due), Some(every)) = (c.next_interim, c.limits.interim_interval) else {
        return None;
    };
    if now < due {
        return None;
    }
    c.next_interim = Some(due.max(now - 999) + u64::from(every) * 1000);
    SessionReport::of(c, now)
}

/// A number that moves whenever any authorized session's counters move.
pub(super) fn counters_fingerprint(sessions: &SessionTable) -> u64 {
    sessions
        .iter()
        .filter(|c| c.state == SessionState::Authorized)
        .fold(0u64, |f, c| {
            let k = &c.counters;
            f.wrapping_add(k.octets_in)
                .wrapping_add(k.octets_out)
                .wrapping_add(k.packets_in)
                .wrapping_add(k.packets_out)
        })
}
