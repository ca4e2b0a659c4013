//! What `sessions.json` holds and the policies around it: the schema
//! version (and the migration of older files), whether a start resumes the
//! saved sessions or closes them, and when the shell saves.
//!
//! All of it takes time as an argument; the shell only reads and writes.

use serde::{Deserialize, Serialize};

use super::SessionRecord;
use crate::UnixMillis;

/// The schema this lassi writes. Version 1 was a bare array of records
/// (no stop time, no version); 2 wraps them with the times below.
pub const STATE_VERSION: u32 = 2;

/// The contents of `sessions.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedSessions {
    /// Schema version ([`STATE_VERSION`]).
    pub version: u32,
    /// When the file was written (lassi's clock, Unix ms).
    pub saved_at: UnixMillis,
    /// Set by a clean shutdown; absent after a crash.
    #[serde(default)]
    pub stopped_at: Option<UnixMillis>,
    /// The system clock minus lassi's clock when saved (ms). lassi's clock
    /// is the wall clock of its start moved on by the monotonic clock, so a
    /// step of the system clock since (a router without a real-time clock
    /// set by NTP after boot) would otherwise shift every saved time by the
    /// step at the next start: Session-Timeouts would end at once.
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// The authorized sessions.
    pub sessions: Vec<SessionRecord>,
}

impl SavedSessions {
    /// A document of the current version.
    pub fn new(
        sessions: Vec<SessionRecord>,
        now: UnixMillis,
        stopped_at: Option<UnixMillis>,
    ) -> Self {
        SavedSessions {
            version: STATE_VERSION,
            saved_at: now,
            stopped_at,
            clock_offset_ms: 0,
            sessions,
        }
    }

    /// Record that lassi's clock is `offset_ms` behind the system clock.
    pub fn with_clock_offset(mut self, offset_ms: i64) -> Self {
        self.clock_offset_ms = offset_ms;
        self
    }

    /// The saved times moved onto the system clock (which the next
    /// process's clock starts from), offset cleared.
    pub fn on_system_clock(mut self) -> Self {
        let by = std::mem::take(&mut self.clock_offset_ms);
        let shift = |t: &mut UnixMillis| *t = t.saturating_add_signed(by);
        shift(&mut self.saved_at);
        self.stopped_at.as_mut().map(shift);
        for r in &mut self.sessions {
            shift(&mut r.authorized_at);
            shift(&mut r.saved_at);
            r.next_interim.as_mut().map(shift);
            r.limits.terminate_at.as_mut().map(shift);
        }
        self
    }

    /// Read a saved document of any known version. `null` (no file) is an
    /// empty one; a newer or unknown version is refused with a message that
    /// says what to do, never silently dropped.
    pub fn from_json(v: serde_json::Value) -> Result<SavedSessions, String> {
        match v {
            serde_json::Value::Null => Ok(SavedSessions::new(Vec::new(), 0, None)),
            // Version 1: records only. Each carries its own saved_at; the
            // latest is when that lassi was last known alive.
            serde_json::Value::Array(_) => {
                let sessions: Vec<SessionRecord> = serde_json::from_value(v)
                    .map_err(|e| format!("sessions.json (version 1): {e}"))?;
                let saved_at = sessions.iter().map(|r| r.saved_at).max().unwrap_or(0);
                Ok(SavedSessions::new(sessions, saved_at, None))
            }
            serde_json::Value::Object(ref o) => {
                let version = o.get("version").and_then(|v| v.as_u64());
                match version {
                    Some(2) => serde_json::from_value(v)
                        .map_err(|e| format!("sessions.json (version 2): {e}")),
                    Some(n) if n > u64::from(STATE_VERSION) => Err(format!(
                        "sessions.json has schema version {n}, written by a newer lassi; this \
                         one reads up to version {STATE_VERSION}. Run the newer lassi, or move \
                         the file away to end those sessions without accounting"
                    )),
                    _ => Err(format!(
                        "sessions.json has no known schema version ({version:?}); move it away \
                         to start without it"
                    )),
                }
            }
            _ => Err("sessions.json is not a session list".into()),
        }
    }

    /// When the lassi that wrote this was last known to be alive: its clean
    /// stop, or (after a crash) its last save.
    pub fn last_alive(&self) -> UnixMillis {
        self.stopped_at.unwrap_or(self.saved_at)
    }

    /// True when a start at `now` comes within `grace_ms` of the previous
    /// lassi's end, so its sessions continue under their ids. A clock that
    /// went backwards (now before the save) counts as within the grace: the
    /// time away is unknown, not long.
    pub fn resumable(&self, now: UnixMillis, grace_ms: u64) -> bool {
        now.saturating_sub(self.last_alive()) <= grace_ms
    }
}

/// How durable a save must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Written, renamed and fsynced: a login, a logout, an Interim about to
    /// go out, a shutdown. A power cut keeps it.
    Sync,
    /// Written and renamed, no fsync: the periodic save of counters. A crash
    /// of lassi keeps it (the page cache survives the process); a power cut
    /// may fall back to the last synced save, which is never older than the
    /// last Interim sent.
    Cheap,
}

/// When the shell saves the session table and the lease table.
///
/// Sessions: at once (synced) when sessions start or end or an Interim goes
/// out, else every `every_ms` if counters moved. What a crash can lose is
/// therefore at most `every_ms` of counting (plus the time to write the
/// file). Leases: after a change, at most once per
/// [`LEASE_SAVE_INTERVAL_MS`], so a burst of DHCP writes the file once.
#[derive(Clone, Debug)]
pub struct SaveSchedule {
    every_ms: u64,
    last_save: UnixMillis,
    last_fingerprint: u64,
    /// Sessions started or ended, or an Interim is going out, since the
    /// last save: the next one is due at once.
    sessions_changed: bool,
    /// The lease table changed since it was last saved.
    leases_dirty: bool,
    last_lease_save: UnixMillis,
}

/// Least time (ms) between two lease-file writes.
pub const LEASE_SAVE_INTERVAL_MS: u64 = 1000;

/// Counters are saved this often (ms) while they move: 2 s bounds the
/// crash loss at 2 s of traffic, and the file is small (one record per
/// authorized session) so the write costs little.
pub const COUNTER_SAVE_INTERVAL_MS: u64 = 2000;

impl SaveSchedule {
    /// A schedule saving moving counters every `every_ms`.
    pub fn new(every_ms: u64, now: UnixMillis) -> Self {
        SaveSchedule {
            every_ms,
            last_save: now,
            last_fingerprint: 0,
            sessions_changed: false,
            leases_dirty: false,
            last_lease_save: 0,
        }
    }

    /// Whether (and how durably) to save now. `changed`: sessions started,
    /// ended or an Interim is going out; `fingerprint`: a number that moves
    /// when any counter moves (only looked at when the periodic save is due,
    /// so it is computed lazily).
    pub fn due(
        &mut self,
        now: UnixMillis,
        changed: bool,
        fingerprint: impl FnOnce() -> u64,
    ) -> Option<Durability> {
        if changed {
            self.last_save = now;
            self.last_fingerprint = fingerprint();
            return Some(Durability::Sync);
        }
        if now < self.last_save + self.every_ms {
            return None;
        }
        self.last_save = now;
        let f = fingerprint();
        if f == self.last_fingerprint {
            return None;
        }
        self.last_fingerprint = f;
        Some(Durability::Cheap)
    }

    /// When the next periodic save may be due.
    pub fn next_due(&self) -> UnixMillis {
        self.last_save + self.every_ms
    }

    /// Sessions started or ended, or an Interim was queued: the next
    /// [`sessions_due`](Self::sessions_due) saves at once, synced.
    pub fn sessions_changed(&mut self) {
        self.sessions_changed = true;
    }

    /// The lease table changed: save it once the interval allows.
    pub fn leases_changed(&mut self) {
        self.leases_dirty = true;
    }

    /// [`due`](Self::due) with the changes recorded since the last call.
    pub fn sessions_due(
        &mut self,
        now: UnixMillis,
        fingerprint: impl FnOnce() -> u64,
    ) -> Option<Durability> {
        let changed = std::mem::take(&mut self.sessions_changed);
        self.due(now, changed, fingerprint)
    }

    /// Whether to write the lease table now (it then counts as saved).
    pub fn leases_due(&mut self, now: UnixMillis) -> bool {
        if !self.leases_dirty || now < self.last_lease_save + LEASE_SAVE_INTERVAL_MS {
            return false;
        }
        self.leases_dirty = false;
        self.last_lease_save = now;
        true
    }

    /// The earliest time a save may be due: at once after a session change,
    /// else the periodic counter save, or the pending lease save.
    pub fn next_deadline(&self) -> UnixMillis {
        let sessions = if self.sessions_changed {
            self.last_save.min(self.next_due())
        } else {
            self.next_due()
        };
        let leases = self
            .leases_dirty
            .then(|| self.last_lease_save + LEASE_SAVE_INTERVAL_MS);
        leases.map_or(sessions, |l| l.min(sessions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Counters, SessionLimits};

    fn rec(saved_at: UnixMillis) -> SessionRecord {
        SessionRecord {
            mac: "02:00:00:00:00:01".parse().unwrap(),
            ip: "10.1.0.10".parse().unwrap(),
            session_id: "0000000100000002".into(),
            user: Some("alice".into()),
            authorized_at: 1000,
            counters: Counters::default(),
            limits: SessionLimits::default(),
            class_hex: vec![],
            cui_hex: None,
            saved_at,
            stopped: false,
            throttled: false,
            next_interim: None,
        }
    }

    #[test]
    fn version_1_is_migrated_and_newer_versions_refused() {
        let v1 = serde_json::to_value(vec![rec(5000), rec(7000)]).unwrap();
        let m = SavedSessions::from_json(v1).unwrap();
        assert_eq!((m.version, m.saved_at, m.stopped_at), (2, 7000, None));
        assert_eq!(m.sessions.len(), 2);

        let v2 = SavedSessions::new(vec![rec(9000)], 9000, Some(9500));
        let back = SavedSessions::from_json(serde_json::to_value(&v2).unwrap()).unwrap();
        assert_eq!(back, v2);

        let mut v3 = serde_json::to_value(&v2).unwrap();
        v3["version"] = 3.into();
        let e = SavedSessions::from_json(v3).unwrap_err();
        assert!(e.contains("version 3") && e.contains("newer lassi"), "{e}");
        let e = SavedSessions::from_json(serde_json::json!({"sessions": []})).unwrap_err();
        assert!(e.contains("no known schema version"), "{e}");
        assert!(SavedSessions::from_json(serde_json::json!(7)).is_err());
        let empty = SavedSessions::from_json(serde_json::Value::Null).unwrap();
        assert!(empty.sessions.is_empty());
    }

    #[test]
    fn saved_times_follow_a_step_of_the_system_clock() {
        // lassi started at the build date; NTP then moved the system clock
        // a year ahead: the saved times move with it.
        let year = 365 * 86_400_000i64;
        let mut r = rec(5000);
        r.limits.terminate_at = Some(9000);
        let s = SavedSessions::new(vec![r], 5000, Some(6000)).with_clock_offset(year);
        let back = SavedSessions::from_json(serde_json::to_value(&s).unwrap()).unwrap();
        let w = back.on_system_clock();
        let y = year as u64;
        assert_eq!(
            (w.saved_at, w.stopped_at, w.clock_offset_ms),
            (5000 + y, Some(6000 + y), 0)
        );
        let r = &w.sessions[0];
        assert_eq!((r.authorized_at, r.saved_at), (1000 + y, 5000 + y));
        assert_eq!(r.limits.terminate_at, Some(9000 + y));
        // A step back cannot go below zero.
        let s = SavedSessions::new(vec![rec(5000)], 5000, None).with_clock_offset(-year);
        assert_eq!(s.on_system_clock().sessions[0].authorized_at, 0);
    }

    #[test]
    fn grace_counts_from_the_stop_or_the_last_save() {
        let clean = SavedSessions::new(vec![rec(1000)], 1000, Some(2000));
        assert_eq!(clean.last_alive(), 2000);
        assert!(clean.resumable(2000 + 300_000, 300_000));
        assert!(!clean.resumable(2001 + 300_000, 300_000));
        let crashed = SavedSessions::new(vec![rec(1000)], 1000, None);
        assert_eq!(crashed.last_alive(), 1000);
        assert!(!crashed.resumable(2001 + 300_000, 300_000));
        assert!(crashed.resumable(500, 0), "a clock that went back");
    }

    #[test]
    fn save_schedule_syncs_changes_and_saves_moving_counters_every_interval() {
        let mut s = SaveSchedule::new(2000, 0);
        assert_eq!(s.due(100, true, || 0), Some(Durability::Sync));
        assert_eq!(s.due(1000, false, || 5), None, "not yet due");
        assert_eq!(s.due(2100, false, || 5), Some(Durability::Cheap));
        assert_eq!(s.due(4100, false, || 5), None, "counters did not move");
        assert_eq!(s.due(4200, false, || 6), None, "next window");
        assert_eq!(s.next_due(), 6100);
        assert_eq!(s.due(6100, false, || 6), Some(Durability::Cheap));
        // An Interim saves at once, whatever the window.
        assert_eq!(s.due(6200, true, || 6), Some(Durability::Sync));
    }

    #[test]
    fn save_schedule_reports_its_deadlines() {
        let mut s = SaveSchedule::new(2000, 10_000);
        assert_eq!(s.next_deadline(), 12_000, "the periodic counter save");
        s.sessions_changed();
        assert!(s.next_deadline() <= 10_000, "a change saves at once");
        assert_eq!(s.sessions_due(10_500, || 1), Some(Durability::Sync));
        assert_eq!(s.next_deadline(), 12_500);
        assert_eq!(s.sessions_due(11_000, || 1), None);
        // Leases: the first save at once, then at most once a second.
        assert!(!s.leases_due(11_000), "nothing changed");
        s.leases_changed();
        assert_eq!(s.next_deadline(), LEASE_SAVE_INTERVAL_MS);
        assert!(s.leases_due(11_000));
        s.leases_changed();
        assert_eq!(s.next_deadline(), 12_000);
        assert!(!s.leases_due(11_999));
        assert!(s.leases_due(12_000));
        assert_eq!(s.next_deadline(), 12_500);
    }
}
