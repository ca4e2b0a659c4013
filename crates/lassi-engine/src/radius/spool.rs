//! The accounting spool's policy, I/O-free: which records it holds, in what
//! order they go out, when one no server answered goes out again, what a
//! late answer acknowledges and what happens when the spool is full. The
//! files that make it durable are the shell's (lassi's `radius::spool_store`):
//! every record is written to disk (fsync'd) before it is first sent and
//! deleted when [`SpoolEvent::Acked`] says a server acknowledged it.
//!
//! Sequence numbers grow monotonically (across restarts too: the shell
//! [`Spool::load`]s what it finds and numbering follows the largest seen),
//! so the order of events is the order of the sequence numbers.
//!
//! Ordering ([`Spool::sendable`]): records of one session go out one at a
//! time in sequence order (a Stop never leaves before that session's
//! earlier Interims are acknowledged); different sessions proceed in
//! parallel. Accounting-On/Off concern the whole NAS and are barriers:
//! one goes out only when every earlier record is acknowledged, and nothing
//! later goes out before it.
//!
//! Sending ([`Spool::due`]): at most `max_in_flight` records at once. A
//! record no server answered ([`Spool::handle_no_response`]) waits
//! `retry_ms` before it goes again, unless a server comes back first
//! ([`Spool::handle_server_alive`]); [`Spool::poll_timeout`] tells when the
//! next one is due. An answer that arrives after the client engine gave
//! up (within [`LATE_ANSWER_MS`]) still acknowledges the record.
//!
//! Limits: the spool is bounded by a record count and a byte total; when
//! full, [`Spool::append`] refuses with [`SpoolFull`] and counts it. The
//! shell then sends that record once, not durably
//! ([`Spool::sent_volatile`]); if no server answers it either, it is
//! [`SpoolEvent::Lost`].
//!
//! Delivery is at least once: a record acknowledged just before a crash,
//! whose removal had not reached the disk, is sent again.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

use super::attrs::AcctRecord;
use super::client::{Token, LATE_ANSWER_MS};
use crate::UnixMillis;

/// Bounds and send policy of the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// At most this many records.
    pub max_records: usize,
    /// At most this many bytes of records.
    pub max_bytes: u64,
    /// Wait before resending a record no server answered, in ms.
    pub retry_ms: u64,
    /// Records in flight at once.
    pub max_in_flight: usize,
}

/// The spool is full: the record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolFull {
    /// Records held.
    pub records: usize,
    /// Bytes held.
    pub bytes: u64,
}

impl fmt::Display for SpoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accounting spool full ({} records, {} bytes)",
            self.records, self.bytes
        )
    }
}

impl std::error::Error for SpoolFull {}

/// What became of the records, for the shell to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpoolEvent {
    /// A server acknowledged spooled record `seq`; it is gone from the
    /// spool: delete its file (once: a second answer, to a resend, finds it
    /// gone and reports nothing).
    Acked(u64),
    /// A record sent without being spooled (the spool was full) was
    /// acknowledged.
    VolatileAcked,
    /// No server answered record `seq`; it stays and goes again later.
    Unanswered(u64),
    /// The first unanswered record after answers: an outage begins, with
    /// this many records held.
    OutageBegan {
        /// Records held.
        pending: usize,
    },
    /// A server acknowledged a record again after an outage.
    OutageEnded,
    /// A record that could not be spooled got no answer: it is lost.
    Lost(AcctRecord),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Busy {
    InFlight,
    RetryAt(UnixMillis),
}

/// The spool. See the module documentation.
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    records: BTreeMap<u64, (AcctRecord, u64)>,
    bytes: u64,
    next_seq: u64,
    refused: u64,
    busy: HashMap<u64, Busy>,
    /// Spooled records in flight, by the client engine's token.
    sending: HashMap<Token, u64>,
    /// Spooled records no server answered, by the token of that attempt and
    /// when it was given up: the engine may still deliver a late answer.
    given_up: HashMap<Token, (u64, UnixMillis)>,
    /// Records sent without being spooled.
    volatile: HashMap<Token, AcctRecord>,
    outage: bool,
    events: VecDeque<SpoolEvent>,
}

impl Spool {
    /// An empty spool; sequence numbers start at 1.
    pub fn new(cfg: SpoolConfig) -> Spool {
        Spool {
            cfg,
            records: BTreeMap::new(),
            bytes: 0,
            next_seq: 1,
            refused: 0,
            busy: HashMap::new(),
            sending: HashMap::new(),
            given_up: HashMap::new(),
            volatile: HashMap::new(),
            outage: false,
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SpoolConfig {
        &self.cfg
    }

    /// Takes in record `seq` of `size` bytes found in durable storage
    /// (whatever the bounds: it is already there).
    pub fn load(&mut self, seq: u64, rec: AcctRecord, size: u64) {
        self.insert(seq, rec, size);
    }

    /// Notes that sequence number `seq` was used (a damaged record set
    /// aside): numbering continues after it.
    pub fn skip_past(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq + 1);
    }

    /// The sequence number a record of `size` bytes would get, or
    /// [`SpoolFull`] (counted) when the bounds do not allow it. Nothing is
    /// held until [`Spool::insert`].
    pub fn reserve(&mut self, size: u64) -> Result<u64, SpoolFull> {
        if self.records.len() >= self.cfg.max_records || self.bytes + size > self.cfg.max_bytes {
            self.refused += 1;
            return Err(SpoolFull {
                records: self.records.len(),
                bytes: self.bytes,
            });
        }
        Ok(self.next_seq)
    }

    /// Holds record `seq` (from [`Spool::reserve`], once it is durable).
    pub fn insert(&mut self, seq: u64, rec: AcctRecord, size: u64) {
        self.skip_past(seq);
        if let Some((_, old)) = self.records.insert(seq, (rec, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
    }

    /// [`Spool::reserve`] and [`Spool::insert`] at once.
    pub fn append(&mut self, rec: AcctRecord, size: u64) -> Result<u64, SpoolFull> {
        let seq = self.reserve(size)?;
        self.insert(seq, rec, size);
        Ok(seq)
    }

    /// Forgets record `seq`; true if it was held.
    pub fn remove(&mut self, seq: u64) -> bool {
        match self.records.remove(&seq) {
            Some((_, n)) => {
                self.bytes -= n;
                true
            }
            None => false,
        }
    }

    /// A record by sequence number.
    pub fn get(&self, seq: u64) -> Option<&AcctRecord> {
        self.records.get(&seq).map(|(r, _)| r)
    }

    /// Every record held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &AcctRecord)> {
        self.records.iter().map(|(s, (r, _))| (*s, r))
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records refused because the spool was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Spooled records in flight.
    pub fn in_flight(&self) -> usize {
        self.sending.len()
    }

    /// Records that may be sent now, oldest first, given which ones are
    /// `busy` (in flight or waiting for a retry): for each session its
    /// oldest record, unless busy; Accounting-On/Off only when first.
    pub fn sendable(&self, busy: impl Fn(u64) -> bool) -> Vec<u64> {
        let mut out = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, (&seq, (rec, _))) in self.records.iter().enumerate() {
            if rec.is_nas_wide() {
                if i == 0 && !busy(seq) {
                    out.push(seq);
                }
                break;
            }
            if !seen.insert(rec.session_id.as_str()) {
                continue;
            }
            if !busy(seq) {
                out.push(seq);
            }
        }
        out
    }

    /// The records to send at `now`, oldest first: [`Spool::sendable`] ones
    /// whose retry wait is over, as many as `max_in_flight` allows. Report
    /// each one's token with [`Spool::sent`].
    pub fn due(&mut self, now: UnixMillis) -> Vec<u64> {
        self.busy
            .retain(|_, b| !matches!(b, Busy::RetryAt(t) if *t <= now));
        let room = self.cfg.max_in_flight.saturating_sub(self.sending.len());
        if room == 0 {
            return Vec::new();
        }
        let mut due = self.sendable(|s| self.busy.contains_key(&s));
        due.truncate(room);
        due
    }

    /// Record `seq` went out as the client engine's request `token`.
    pub fn sent(&mut self, seq: u64, token: Token) {
        self.busy.insert(seq, Busy::InFlight);
        self.sending.insert(token, seq);
    }

    /// A record the full spool refused went out, once, as `token`.
    pub fn sent_volatile(&mut self, token: Token, rec: AcctRecord) {
        self.volatile.insert(token, rec);
    }

    /// A server answered request `token` (tokens that are not the spool's
    /// are ignored).
    pub fn handle_response(&mut self, token: Token) {
        if let Some(seq) = self.sending.remove(&token) {
            self.busy.remove(&seq);
            self.acknowledged(seq);
        } else if let Some((seq, _)) = self.given_up.remove(&token) {
            // A late answer to an attempt given up on: the record arrived.
            // A resend already under way stays in flight (its answer finds
            // the record gone); a parked one goes.
            if matches!(self.busy.get(&seq), Some(Busy::RetryAt(_))) {
                self.busy.remove(&seq);
            }
            self.acknowledged(seq);
        } else if self.volatile.remove(&token).is_some() {
            self.events.push_back(SpoolEvent::VolatileAcked);
        }
    }

    /// No server answered request `token` (given up at `now`).
    pub fn handle_no_response(&mut self, now: UnixMillis, token: Token) {
        if let Some(seq) = self.sending.remove(&token) {
            // Late answers come within the client engine's LATE_ANSWER_MS.
            self.given_up
                .retain(|_, (_, at)| now.saturating_sub(*at) <= LATE_ANSWER_MS);
            self.given_up.insert(token, (seq, now));
            let retry = now + self.cfg.retry_ms;
            self.busy.insert(seq, Busy::RetryAt(retry));
            if !self.outage {
                self.outage = true;
                let pending = self.records.len();
                self.events.push_back(SpoolEvent::OutageBegan { pending });
            }
            self.events.push_back(SpoolEvent::Unanswered(seq));
        } else if let Some(rec) = self.volatile.remove(&token) {
            self.events.push_back(SpoolEvent::Lost(rec));
        }
    }

    /// A server answers again: what waits for its retry goes now, not at
    /// its time.
    pub fn handle_server_alive(&mut self) {
        self.busy.retain(|_, b| matches!(b, Busy::InFlight));
    }

    /// When the next record waiting for a retry is due.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.busy
            .values()
            .filter_map(|b| match b {
                Busy::RetryAt(t) => Some(*t),
                Busy::InFlight => None,
            })
            .min()
    }

    /// The next thing the shell must know.
    pub fn poll_event(&mut self) -> Option<SpoolEvent> {
        self.events.pop_front()
    }

    fn acknowledged(&mut self, seq: u64) {
        if !self.remove(seq) {
            return;
        }
        self.events.push_back(SpoolEvent::Acked(seq));
        if self.outage {
            self.outage = false;
            self.events.push_back(SpoolEvent::OutageEnded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attrs::{AcctSession, AcctStatus, TerminateCause};
    use crate::session::Counters;

    const RETRY: u64 = 10_000;

    fn cfg() -> SpoolConfig {
        SpoolConfig {
            max_records: 100,
            max_bytes: 1 << 20,
            retry_ms: RETRY,
            max_in_flight: 32,
        }
    }

    fn sess(id: &str) -> AcctSession {
        AcctSession {
            session_id: id.into(),
            user_name: Some("u".into()),
            ..Default::default()
        }
    }

    fn add(s: &mut Spool, rec: AcctRecord) -> u64 {
        s.append(rec, 100).unwrap()
    }

    fn events(s: &mut Spool) -> Vec<SpoolEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn per_session_order_and_barriers() {
        let mut s = Spool::new(cfg());
        let c0 = Counters::default();
        let on = add(&mut s, AcctRecord::nas(AcctStatus::AccountingOn, 0));
        let a1 = add(&mut s, AcctRecord::start(&sess("a"), 1));
        let b1 = add(&mut s, AcctRecord::start(&sess("b"), 2));
        let a2 = add(&mut s, AcctRecord::interim(&sess("a"), &c0, 3));
        let stop = AcctRecord::stop(&sess("a"), &c0, TerminateCause::UserRequest, 4);
        let a3 = add(&mut s, stop);
        let off = add(&mut s, AcctRecord::nas(AcctStatus::AccountingOff, 5));
        let b2 = add(&mut s, AcctRecord::start(&sess("b"), 6));
        let none = |_| false;
        // The barrier goes alone.
        assert_eq!(s.sendable(none), vec![on]);
        assert_eq!(s.sendable(|q| q == on), Vec::<u64>::new());
        s.remove(on);
        // One per session, oldest first; nothing past the Off barrier.
        assert_eq!(s.sendable(none), vec![a1, b1]);
        // While a1 is in flight, a2 and a3 wait.
        assert_eq!(s.sendable(|q| q == a1), vec![b1]);
        s.remove(a1);
        assert_eq!(s.sendable(|q| q == b1), vec![a2]);
        s.remove(a2);
        s.remove(b1);
        assert_eq!(s.sendable(none), vec![a3]);
        s.remove(a3);
        assert_eq!(s.sendable(none), vec![off]);
        s.remove(off);
        assert_eq!(s.sendable(none), vec![b2]);
    }

    #[test]
    fn a_session_keeps_its_order_through_acknowledgements() {
        let mut s = Spool::new(cfg());
        let a1 = add(&mut s, AcctRecord::start(&sess("a"), 1));
        let a2 = add(
            &mut s,
            AcctRecord::interim(&sess("a"), &Counters::default(), 2),
        );
        let b1 = add(&mut s, AcctRecord::start(&sess("b"), 3));
        assert_eq!(s.due(0), vec![a1, b1]);
        s.sent(a1, 7);
        s.sent(b1, 8);
        // Nothing more until a1 is acknowledged; then a2.
        assert_eq!(s.due(1), Vec::<u64>::new());
        s.handle_response(7);
        assert_eq!(events(&mut s), vec![SpoolEvent::Acked(a1)]);
        assert_eq!(s.get(a1), None);
        assert_eq!(s.due(2), vec![a2]);
        assert_eq!(s.in_flight(), 1);
    }

    #[test]
    fn an_unanswered_record_goes_again_after_the_retry_interval() {
        let mut s = Spool::new(cfg());
        let a1 = add(&mut s, AcctRecord::start(&sess("a"), 1));
        let b1 = add(&mut s, AcctRecord::start(&sess("b"), 1));
        assert_eq!(s.due(1000), vec![a1, b1]);
        s.sent(a1, 1);
        s.sent(b1, 2);
        s.handle_no_response(5000, 1);
        assert_eq!(
            events(&mut s),
            vec![
                SpoolEvent::OutageBegan { pending: 2 },
                SpoolEvent::Unanswered(a1)
            ]
        );
        // The outage is reported once.
        s.handle_no_response(5000, 2);
        assert_eq!(events(&mut s), vec![SpoolEvent::Unanswered(b1)]);
        assert_eq!(s.poll_timeout(), Some(5000 + RETRY));
        assert_eq!(s.due(5000 + RETRY - 1), Vec::<u64>::new());
        assert_eq!(s.due(5000 + RETRY), vec![a1, b1]);
        assert_eq!(s.poll_timeout(), None);
        // Answers end the outage; both records are gone.
        s.sent(a1, 3);
        s.sent(b1, 4);
        s.handle_response(3);
        s.handle_response(4);
        assert_eq!(
            events(&mut s),
            vec![
                SpoolEvent::Acked(a1),
                SpoolEvent::OutageEnded,
                SpoolEvent::Acked(b1)
            ]
        );
        assert!(s.is_empty());
    }

    #[test]
    fn a_server_coming_back_releases_the_records_waiting_for_their_retry() {
        let mut s = Spool::new(cfg());
        let a1 = add(&mut s, AcctRecord::start(&sess("a"), 1));
        s.due(0);
        s.sent(a1, 1);
        s.handle_no_response(100, 1);
        assert_eq!(s.due(200), Vec::<u64>::new());
        s.handle_server_alive();
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.due(200), vec![a1]);
    }

    #[test]
    fn no_more_than_max_in_flight_at_once() {
        let mut s = Spool::new(SpoolConfig {
            max_in_flight: 2,
            ..cfg()
        });
        let seqs: Vec<u64> = (0..4)
            .map(|i| add(&mut s, AcctRecord::start(&sess(&format!("s{i}")), i)))
            .collect();
        assert_eq!(s.due(0), seqs[..2].to_vec());
        s.sent(seqs[0], 10);
        s.sent(seqs[1], 11);
        assert_eq!(s.due(0), Vec::<u64>::new());
        s.handle_response(10);
        assert_eq!(s.due(0), vec![seqs[2]]);
    }

    #[test]
    fn a_full_spool_refuses_and_its_record_goes_once_then_is_lost() {
        let mut s = Spool::new(SpoolConfig {
            max_records: 1,
            ..cfg()
        });
        add(&mut s, AcctRecord::start(&sess("a"), 1));
        let rec = AcctRecord::start(&sess("b"), 2);
        assert_eq!(
            s.append(rec.clone(), 100),
            Err(SpoolFull {
                records: 1,
                bytes: 100
            })
        );
        assert_eq!(s.refused(), 1);
        assert_eq!(s.len(), 1);
        // Sent once, outside the spool: an answer counts, silence loses it.
        s.sent_volatile(5, rec.clone());
        s.handle_response(5);
        assert_eq!(events(&mut s), vec![SpoolEvent::VolatileAcked]);
        s.sent_volatile(6, rec.clone());
        s.handle_no_response(0, 6);
        assert_eq!(events(&mut s), vec![SpoolEvent::Lost(rec)]);
        // No retry, no outage: the spooled records are not concerned.
        assert_eq!(s.poll_timeout(), None);
        // The byte bound counts too.
        let mut s = Spool::new(SpoolConfig {
            max_bytes: 150,
            ..cfg()
        });
        add(&mut s, AcctRecord::start(&sess("a"), 1));
        assert!(s.append(AcctRecord::start(&sess("b"), 1), 51).is_err());
        assert!(s.append(AcctRecord::start(&sess("b"), 1), 50).is_ok());
    }

    #[test]
    fn a_late_answer_acknowledges_a_record_given_up_on() {
        let mut s = Spool::new(cfg());
        let a1 = add(&mut s, AcctRecord::start(&sess("a"), 1));
        s.due(0);
        s.sent(a1, 1);
        s.handle_no_response(1000, 1);
        events(&mut s);
        // The answer to the attempt given up on arrives while a1 waits for
        // its retry: acknowledged, and nothing is resent.
        s.handle_response(1);
        assert_eq!(
            events(&mut s),
            vec![SpoolEvent::Acked(a1), SpoolEvent::OutageEnded]
        );
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.due(1000 + RETRY), Vec::<u64>::new());
        assert!(s.is_empty());
    }

    #[test]
    fn a_late_answer_during_a_resend_acknowledges_once() {
        let mut s = Spool::new(cfg());
        let a1 = add(&mut s, AcctRecord::start(&sess("a"), 1));
        let a2 = add(
            &mut s,
            AcctRecord::interim(&sess("a"), &Counters::default(), 2),
        );
        s.due(0);
        s.sent(a1, 1);
        s.handle_no_response(1000, 1);
        assert_eq!(s.due(1000 + RETRY), vec![a1]);
        s.sent(a1, 2);
        events(&mut s);
        // The first attempt's answer arrives: a1 is acknowledged, so a2 may
        // go; the resend stays in flight.
        s.handle_response(1);
        assert_eq!(
            events(&mut s),
            vec![SpoolEvent::Acked(a1), SpoolEvent::OutageEnded]
        );
        assert_eq!(s.in_flight(), 1);
        assert_eq!(s.due(1000 + RETRY), vec![a2]);
        s.sent(a2, 3);
        // The resend's own answer finds a1 gone: nothing more to report.
        s.handle_response(2);
        assert_eq!(events(&mut s), vec![]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn numbering_continues_after_loaded_and_damaged_records() {
        let mut s = Spool::new(cfg());
        s.load(7, AcctRecord::start(&sess("a"), 1), 10);
        s.skip_past(50);
        assert_eq!(s.bytes(), 10);
        assert_eq!(add(&mut s, AcctRecord::start(&sess("b"), 2)), 51);
        assert_eq!(s.iter().map(|(q, _)| q).collect::<Vec<_>>(), vec![7, 51]);
    }
}
