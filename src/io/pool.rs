//! The engine thread's side of the workers: starting them, admitting to
//! their fast paths the sessions the engine says they may forward
//! ([`Engine::fast_path_sessions`]), revoking them, handling the frames
//! they hand over, and adding their counts to the sessions.
//!
//! Exactness: a worker counts what it forwards into per-session deltas it
//! sends back. A session leaves the fast paths before its Stop goes out:
//! when the engine ends it, the workers are told to revoke it and answer
//! with their last deltas, and the engine thread waits for every answer
//! before it publishes the Stop, to which those deltas are added.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::forwarder::{Forwarder, LoopState, WorkerLoad};
use super::ports::{IoStats, Ports};
use super::queue::Queue;
use super::sys::Waker;
use super::worker::{FromWorker, SlowFrame, ToWorker, Worker};
use crate::dataplane::{Engine, Event, FastAdmit, FastDelta, FastPath, FastSettings};
use crate::session::{Counters, FastBuildHasher};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// The fast paths are checked against the sessions at least this often
/// (besides at every login, logout and command that may change one).
const SYNC_MS: u64 = 1_000;
/// How long the engine thread waits for the workers to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// A session the workers were told they may forward.
struct Admitted {
    mac: MacAddr,
    token: u64,
    session_id: String,
}

/// A worker as the engine thread sees it.
struct WorkerLink {
    commands: Arc<Queue<ToWorker>>,
    waker: Arc<Waker>,
    io: IoStats,
    cpu_seconds: f64,
}

/// The workers, from the engine thread.
pub struct WorkerPool {
    links: Vec<WorkerLink>,
    from_workers: Arc<Queue<FromWorker>>,
    handoff_bytes: Arc<AtomicUsize>,
    admitted: HashMap<Ipv4Addr, Admitted, FastBuildHasher>,
    /// Tokens being revoked, until every worker has answered.
    /// (A handful at a time: a list, not another hash table in the binary.)
    revoking: Vec<(u64, String)>,
    next_token: u64,
    /// Counts that arrived after their session ended, by Acct-Session-Id:
    /// they go into its Stop.
    orphans: Vec<(String, Counters)>,
    threads: Vec<JoinHandle<()>>,
    /// A command may have changed a session: sync at the next publish.
    pub(super) dirty: bool,
    next_sync: UnixMillis,
}

impl WorkerPool {
    /// Start a worker thread on each of `ports` (the engine thread's own
    /// are not among them).
    pub fn start(
        ports: Vec<Ports>,
        fast: FastSettings,
        engine_waker: Arc<Waker>,
        batch: usize,
    ) -> Result<WorkerPool, String> {
        let from_workers = Arc::new(Queue::default());
        let handoff_bytes = Arc::new(AtomicUsize::new(0));
        let (mut links, mut threads) = (Vec::new(), Vec::new());
        for (i, ports) in ports.into_iter().enumerate() {
            let commands = Arc::new(Queue::default());
            let waker = Arc::new(Waker::new().map_err(|e| format!("eventfd: {e}"))?);
            let worker = Worker {
                index: i + 1,
                fast: FastPath::new(fast),
                ports,
                waker: waker.clone(),
                commands: commands.clone(),
                to_engine: from_workers.clone(),
                engine_waker: engine_waker.clone(),
                handoff_bytes: handoff_bytes.clone(),
                batch,
            };
            let thread = std::thread::Builder::new()
                .name(format!("lassi-worker{}", i + 1))
                .spawn(move || worker.run())
                .map_err(|e| format!("starting worker {}: {e}", i + 1))?;
            threads.push(thread);
            links.push(WorkerLink {
                commands,
                waker,
                io: IoStats::default(),
                cpu_seconds: 0.0,
            });
        }
        Ok(WorkerPool {
            links,
            from_workers,
            handoff_bytes,
            admitted: HashMap::default(),
            revoking: Vec::new(),
            next_token: 1,
            orphans: Vec::new(),
            threads,
            dirty: true,
            next_sync: 0,
        })
    }

    /// Each worker's counters as of its last report.
    pub fn loads(&self) -> impl Iterator<Item = WorkerLoad> + '_ {
        self.links.iter().map(|l| WorkerLoad {
            io: l.io.clone(),
            cpu_seconds: l.cpu_seconds,
        })
    }

    /// How many sessions the fast paths forward.
    pub fn admitted(&self) -> usize {
        self.admitted.len()
    }

    fn broadcast(&self, msg: impl Fn() -> ToWorker) {
        for l in &self.links {
            l.commands.push(msg());
            l.waker.wake();
        }
    }

    /// The Acct-Session-Id a delta was counted for.
    fn session_of(&self, d: &FastDelta) -> Option<&str> {
        match self.admitted.get(&d.ip) {
            Some(a) if a.token == d.token => Some(&a.session_id),
            _ => (self.revoking.iter())
                .find(|(token, _)| *token == d.token)
                .map(|(_, sid)| sid.as_str()),
        }
    }

    /// Add workers' counts to their sessions; those whose session has
    /// ended wait for its Stop.
    fn apply(&mut self, engine: &mut Engine, deltas: &[FastDelta]) {
        for d in deltas {
            let Some(sid) = self.session_of(d).map(str::to_owned) else {
                engine.apply_fast_delta("", d);
                tracing::warn!(ip = %d.ip, token = d.token, "worker counts for no admitted session");
                continue;
            };
            if !engine.apply_fast_delta(&sid, d) {
                self.orphans.push((sid, d.counters));
            }
        }
    }

    /// Add the counts that arrived after their session ended to its Stop.
    fn patch_ended(&mut self, events: &mut [Event]) {
        if self.orphans.is_empty() {
            return;
        }
        for e in events.iter_mut() {
            let Event::SessionEnded(ended) = e else {
                continue;
            };
            self.orphans.retain(|(sid, c)| {
                if *sid != ended.session_id {
                    return true;
                }
                let k = &mut ended.counters;
                k.octets_in += c.octets_in;
                k.octets_out += c.octets_out;
                k.packets_in += c.packets_in;
                k.packets_out += c.packets_out;
                false
            });
        }
        for (sid, c) in self.orphans.drain(..) {
            tracing::warn!(
                session = %sid,
                octets = c.octets_in + c.octets_out,
                "a worker's counts arrived after the session's Stop was sent"
            );
        }
    }
}

impl Forwarder {
    /// Everything the workers sent since the last look.
    pub(super) fn take_worker_messages(&mut self, now: UnixMillis, st: &mut LoopState) {
        while let Some(msg) = (self.pool.as_ref()).and_then(|p| p.from_workers.pop()) {
            self.worker_message(msg, now, st);
        }
    }

    /// One message from a worker; true for an answer to a revoke.
    fn worker_message(&mut self, msg: FromWorker, now: UnixMillis, st: &mut LoopState) -> bool {
        let Some(pool) = self.pool.as_mut() else {
            return false;
        };
        match msg {
            FromWorker::Slow { mut frames, bytes } => {
                pool.handoff_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.handle_handed_over(&mut frames, now, st);
            }
            FromWorker::Report {
                worker,
                deltas,
                io,
                cpu_seconds,
            } => {
                pool.apply(&mut self.engine, &deltas);
                if let Some(l) = pool.links.get_mut(worker - 1) {
                    (l.io, l.cpu_seconds) = (io, cpu_seconds);
                }
            }
            FromWorker::Displaced { deltas } | FromWorker::Stopped { deltas, .. } => {
                pool.apply(&mut self.engine, &deltas);
            }
            FromWorker::Revoked { deltas } => {
                pool.apply(&mut self.engine, &deltas);
                return true;
            }
        }
        false
    }

    /// Frames a worker left to the engine, handled as if read here (the
    /// worker counted their reception). `frames` lives until the batch is
    /// sent: the send batch points into it.
    fn handle_handed_over(
        &mut self,
        frames: &mut [SlowFrame],
        now: UnixMillis,
        st: &mut LoopState,
    ) {
        let mut counted_by_worker = IoStats::default();
        for f in frames.iter_mut() {
            match f {
                SlowFrame::Lan(frame) => {
                    self.lan_frame(now, frame, &mut st.tx, &mut counted_by_worker);
                }
                SlowFrame::Tagged(tci) => {
                    self.engine.tagged_from_lan(*tci);
                }
                SlowFrame::Tun(buf) => {
                    if let Some(frame) = self.tun_packet(now, buf, &mut counted_by_worker) {
                        if st.tx.is_full() {
                            self.ports.flush(&mut st.tx, &mut st.io);
                        }
                        st.tx.push(frame, &[]);
                    }
                }
            }
        }
        st.io.tun_tx += counted_by_worker.tun_tx;
        st.io.tun_tx_errors += counted_by_worker.tun_tx_errors;
        st.io.lan_tx += counted_by_worker.lan_tx;
        st.io.lan_tx_errors += counted_by_worker.lan_tx_errors;
        self.ports.flush_coalesced(&mut st.io);
        self.ports.flush(&mut st.tx, &mut st.io);
    }

    /// Bring the fast paths in line with the sessions when one may have
    /// changed (or a second has passed), then add the counts that came
    /// after their session ended to its Stop in `events`.
    pub(super) fn sync_workers(
        &mut self,
        now: UnixMillis,
        st: &mut LoopState,
        events: &mut [Event],
    ) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        let changed = events
            .iter()
            .any(|e| matches!(e, Event::SessionStarted(_) | Event::SessionEnded(_)));
        if changed || pool.dirty || now >= pool.next_sync {
            pool.dirty = false;
            pool.next_sync = now + SYNC_MS;
            self.reconcile(now, st);
        }
        if let Some(pool) = self.pool.as_mut() {
            pool.patch_ended(events);
        }
    }

    /// Revoke what the engine no longer allows on the fast path, then admit
    /// what it newly allows.
    fn reconcile(&mut self, now: UnixMillis, st: &mut LoopState) {
        let mut wanted = self.engine.fast_path_sessions();
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        // Sorted by address, looked up by binary search.
        wanted.sort_unstable_by_key(|(ip, ..)| *ip);
        let wants = |ip: &Ipv4Addr, a: &Admitted| match wanted.binary_search_by_key(ip, |w| w.0) {
            Ok(i) => wanted[i].1 == a.mac && wanted[i].2 == a.session_id,
            Err(_) => false,
        };
        let stale: Vec<Ipv4Addr> = (pool.admitted.iter())
            .filter(|(ip, a)| !wants(ip, a))
            .map(|(ip, _)| *ip)
            .collect();
        if !stale.is_empty() {
            self.revoke(stale, now, st);
        }
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        for (ip, mac, session_id) in wanted {
            if pool.admitted.contains_key(&ip) {
                continue;
            }
            let token = pool.next_token;
            pool.next_token += 1;
            pool.broadcast(|| ToWorker::Admit(FastAdmit { ip, mac, token }));
            let a = Admitted {
                mac,
                token,
                session_id,
            };
            pool.admitted.insert(ip, a);
        }
    }

    /// Take `ips` off every fast path and wait for the workers' last counts.
    fn revoke(&mut self, ips: Vec<Ipv4Addr>, now: UnixMillis, st: &mut LoopState) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        for ip in &ips {
            if let Some(a) = pool.admitted.remove(ip) {
                pool.revoking.push((a.token, a.session_id));
            }
        }
        pool.broadcast(|| ToWorker::Revoke(ips.clone()));
        let mut awaiting = pool.links.len();
        let deadline = Instant::now() + ANSWER_WAIT;
        while awaiting > 0 {
            let Some(msg) = (self.pool.as_ref()).and_then(|p| p.from_workers.pop_until(deadline))
            else {
                tracing::error!(awaiting, "workers did not answer a revoke in time");
                return;
            };
            if self.worker_message(msg, now, st) {
                awaiting -= 1;
            }
        }
        if let Some(pool) = self.pool.as_mut() {
            pool.revoking.clear();
        }
    }

    /// Stop the workers, adding their last counts to the sessions (still
    /// open), and wait for their threads.
    pub(super) fn stop_workers(&mut self) {
        let Some(mut pool) = self.pool.take() else {
            return;
        };
        pool.broadcast(|| ToWorker::Stop);
        let mut awaiting = pool.links.len();
        let deadline = Instant::now() + ANSWER_WAIT;
        while awaiting > 0 {
            let Some(msg) = pool.from_workers.pop_until(deadline) else {
                tracing::error!(awaiting, "workers did not stop in time");
                break;
            };
            match msg {
                FromWorker::Stopped { deltas, .. } => {
                    pool.apply(&mut self.engine, &deltas);
                    awaiting -= 1;
                }
                FromWorker::Report { deltas, .. }
                | FromWorker::Revoked { deltas }
                | FromWorker::Displaced { deltas } => pool.apply(&mut self.engine, &deltas),
                FromWorker::Slow { .. } => {} // stopping: nothing more is forwarded
            }
        }
        for t in pool.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a forwarding worker panicked");
            }
        }
    }

    /// Each forwarding thread's counters, this one's (`own`) first.
    pub(super) fn loads(&self, own: &IoStats) -> Vec<WorkerLoad> {
        let mut loads = vec![WorkerLoad {
            io: own.clone(),
            cpu_seconds: crate::metrics::thread_cpu_seconds(),
        }];
        loads.extend(self.pool.iter().flat_map(WorkerPool::loads));
        loads
    }

    /// This thread's device counters plus the workers'.
    pub(super) fn io_total(&self, own: &IoStats) -> IoStats {
        let mut total = own.clone();
        for l in self.pool.iter().flat_map(|p| &p.links) {
            total.add(&l.io);
        }
        total
    }
}
