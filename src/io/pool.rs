//! The engine thread's side of the workers: starting them, admitting to
//! their fast paths the sessions the engine says they may forward
//! ([`Engine::fast_path_sessions`]), revoking them, handling the frames
//! they hand over, and adding their counts to the sessions.
//!
//! The engine thread forwards too: it runs a fast path of its own (as a
//! non-owner: shaped and metered sessions go to their owner worker) before
//! the engine sees a frame from its own devices.
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
use super::ports::{IoStats, Ports, TUN_HEADROOM};
use super::queue::Queue;
use super::sys::Waker;
use super::worker::{owner_of, FromWorker, Handoffs, Links, SlowFrame, ToWorker, Worker};
use crate::dataplane::{
    Engine, Event, FastAdmit, FastDelta, FastPath, FastSession, FastSettings, FastVerdict,
};
use crate::session::{Counters, FastBuildHasher, SessionLimits};
use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// The fast paths are checked against the sessions at least this often
/// (besides at every login, logout and command that may change one).
pub(super) const SYNC_MS: u64 = 1_000;
/// How long the engine thread waits for the workers to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// Reads of the counters within this long of the last tally use it: a
/// guest reloading its status page in a loop costs the workers at most
/// one round trip per this many milliseconds.
pub(super) const TALLY_MS: u64 = 10;
/// After workers failed to answer a tally, reads use the counts as they
/// are for this long.
const TALLY_BACKOFF_MS: u64 = 30_000;

/// A session the workers were told they may forward.
struct Admitted {
    mac: MacAddr,
    token: u64,
    session_id: String,
    /// The session's limits then: a CoA that changes them re-admits it.
    limits: SessionLimits,
    /// Admitted with its web traffic left to the engine.
    divert_http: bool,
}

/// What the engine thread's own fast path did with a TUN packet.
pub enum Fast {
    /// Not for the fast path: the engine decides.
    Engine,
    /// Rewritten in place into a LAN frame: send it.
    ToLan,
    /// Handed to the session's owner worker.
    Done,
}

/// Most bytes all shapers may hold, as in the engine, shared out equally.
const MAX_HELD_BYTES: usize = 4 << 20;

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
    /// The engine thread's own fast path (it owns no limited session).
    own: FastPath,
    /// Frames from the engine thread's devices for owner workers.
    handoffs: Handoffs,
    /// Where `handoffs` go.
    to: Links,
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
    /// Tags the next revoke or tally; its answers carry it.
    next_request: u64,
    /// When the counters were last tallied.
    last_tally: Option<UnixMillis>,
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
        let threads_n = ports.len() + 1;
        let held = MAX_HELD_BYTES / threads_n;
        let from_workers = Arc::new(Queue::default());
        let mut queues = vec![None];
        for _ in 1..threads_n {
            let waker = Arc::new(Waker::new().map_err(|e| format!("eventfd: {e}"))?);
            queues.push(Some((Arc::new(Queue::default()), waker)));
        }
        let links = |budget: &Arc<AtomicUsize>| Links {
            engine: (from_workers.clone(), engine_waker.clone()),
            workers: queues.clone(),
            budget: budget.clone(),
        };
        let budget = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for (i, ports) in ports.into_iter().enumerate() {
            let index = i + 1;
            let Some((commands, waker)) = queues[index].clone() else {
                continue;
            };
            let worker = Worker {
                index,
                fast: FastPath::new(fast, held),
                ports,
                commands,
                waker,
                links: links(&budget),
                batch,
            };
            let thread = std::thread::Builder::new()
                .name(format!("lassi-worker{index}"))
                .spawn(move || worker.run())
                .map_err(|e| format!("starting worker {index}: {e}"))?;
            threads.push(thread);
        }
        let workers = (queues.iter().flatten())
            .map(|(commands, waker)| WorkerLink {
                commands: commands.clone(),
                waker: waker.clone(),
                io: IoStats::default(),
                cpu_seconds: 0.0,
            })
            .collect();
        Ok(WorkerPool {
            links: workers,
            from_workers: from_workers.clone(),
            own: FastPath::new(fast, held),
            handoffs: Handoffs::new(threads_n),
            to: links(&budget),
            admitted: HashMap::default(),
            revoking: Vec::new(),
            next_token: 1,
            orphans: Vec::new(),
            threads,
            dirty: true,
            next_sync: 0,
            next_request: 1,
            last_tally: None,
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

    /// A new id for a request the workers answer.
    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    fn broadcast(&self, msg: impl Fn() -> ToWorker) {
        for l in &self.links {
            l.commands.push(msg());
            l.waker.wake();
        }
    }

    /// Admit one session to every fast path, this thread's included; a
    /// limited one is owned by one worker.
    fn admit(&mut self, s: FastSession, limits: SessionLimits) {
        let token = self.next_token;
        self.next_token += 1;
        let owner = owner_of(s.ip, self.links.len() + 1);
        let admit = |owner| FastAdmit {
            ip: s.ip,
            mac: s.mac,
            token,
            limits: s.limits,
            owner,
            divert_http: s.divert_http,
        };
        for (i, l) in self.links.iter().enumerate() {
            l.commands.push(ToWorker::Admit(admit(i + 1 == owner)));
            l.waker.wake();
        }
        self.own.admit(admit(false));
        let a = Admitted {
            mac: s.mac,
            token,
            session_id: s.session_id,
            limits,
            divert_http: s.divert_http,
        };
        self.admitted.insert(s.ip, a);
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
        add_late_counts(&mut self.orphans, events);
    }
}

/// Add counts that arrived after their session ended (`orphans`, by
/// Acct-Session-Id) to the Stop of that session in `events`; those with no
/// Stop there are logged and dropped (their Stop went out earlier).
pub(super) fn add_late_counts(orphans: &mut Vec<(String, Counters)>, events: &mut [Event]) {
    if orphans.is_empty() {
        return;
    }
    for e in events.iter_mut() {
        let Event::SessionEnded(ended) = e else {
            continue;
        };
        orphans.retain(|(sid, c)| {
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
    for (sid, c) in orphans.drain(..) {
        tracing::warn!(
            session = %sid,
            octets = c.octets_in + c.octets_out,
            "fast-path counts arrived after the session's Stop was sent"
        );
    }
}

impl Forwarder {
    /// Everything the workers sent since the last look; then the frames
    /// this thread's fast path handed to owner workers go out.
    pub(super) fn take_worker_messages(&mut self, now: UnixMillis, st: &mut LoopState) {
        while let Some(msg) = (self.pool.as_ref()).and_then(|p| p.from_workers.pop()) {
            self.worker_message(msg, now, st);
        }
        if let Some(pool) = self.pool.as_mut() {
            pool.handoffs.send(&pool.to, &mut st.io);
        }
    }

    /// A LAN frame from this thread's socket through its own fast path;
    /// false when the engine must see it.
    pub(super) fn fast_lan(&mut self, now: UnixMillis, frame: &mut [u8], io: &mut IoStats) -> bool {
        let Some(pool) = self.pool.as_mut() else {
            return false;
        };
        let Some(vnet) = VnetHdr::parse(frame) else {
            return false;
        };
        match pool.own.from_lan(now, &vnet, &frame[VNET_HDR_LEN..]) {
            FastVerdict::ToTun => {
                IoStats::offloads(&vnet, &mut io.lan_rx_gso, &mut io.lan_rx_partial_csum);
                self.ports.to_tun(frame, &vnet, io);
                true
            }
            FastVerdict::Handoff => {
                (pool.handoffs).to_owner(SlowFrame::Lan(frame.to_vec()), frame.len());
                true
            }
            _ => false,
        }
    }

    /// A TUN packet read here at `buf[TUN_HEADROOM..]` through this
    /// thread's own fast path.
    pub(super) fn fast_tun(&mut self, now: UnixMillis, buf: &mut [u8], io: &mut IoStats) -> Fast {
        let Some(pool) = self.pool.as_mut() else {
            return Fast::Engine;
        };
        let Some(vnet) = VnetHdr::parse(&buf[TUN_HEADROOM..]) else {
            return Fast::Engine;
        };
        match (pool.own).from_tun(now, &vnet, &buf[TUN_HEADROOM + VNET_HDR_LEN..]) {
            FastVerdict::ToLan(dst) => {
                IoStats::offloads(&vnet, &mut io.tun_rx_gso, &mut io.tun_rx_partial_csum);
                self.ports.frame_for_lan(buf, &vnet, dst);
                Fast::ToLan
            }
            FastVerdict::Handoff => {
                (pool.handoffs).to_owner(SlowFrame::Tun(buf.to_vec()), buf.len());
                Fast::Done
            }
            _ => Fast::Engine,
        }
    }

    /// One message from a worker; the request id of an answer.
    fn worker_message(
        &mut self,
        msg: FromWorker,
        now: UnixMillis,
        st: &mut LoopState,
    ) -> Option<u64> {
        let pool = self.pool.as_mut()?;
        match msg {
            FromWorker::Slow { mut frames, bytes } => {
                pool.to.budget.fetch_sub(bytes, Ordering::Relaxed);
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
            FromWorker::Answer { id, deltas } => {
                pool.apply(&mut self.engine, &deltas);
                return Some(id);
            }
        }
        None
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
        let mut own = Vec::new();
        pool.own.take_deltas(&mut own);
        pool.apply(&mut self.engine, &own);
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
        let wanted = self.engine.fast_path_sessions();
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        let sessions = self.engine.sessions();
        let limits_of = |ip| sessions.by_ip(ip).map(|c| &c.limits);
        // Sorted by address (the engine's order), looked up by binary search.
        let wants = |ip: &Ipv4Addr, a: &Admitted| match wanted.binary_search_by_key(ip, |w| w.ip) {
            Ok(i) => {
                let w = &wanted[i];
                w.mac == a.mac
                    && w.session_id == a.session_id
                    && w.divert_http == a.divert_http
                    && limits_of(w.ip) == Some(&a.limits)
            }
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
        for s in wanted {
            if pool.admitted.contains_key(&s.ip) {
                continue;
            }
            let limits = (self.engine.sessions().by_ip(s.ip))
                .map_or_else(Default::default, |c| c.limits.clone());
            pool.admit(s, limits);
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
        let own: Vec<FastDelta> = ips.iter().filter_map(|&ip| pool.own.revoke(ip)).collect();
        pool.apply(&mut self.engine, &own);
        let id = pool.request_id();
        pool.broadcast(|| ToWorker::Revoke {
            id,
            ips: ips.clone(),
        });
        if self.await_answers(id, now, st) {
            if let Some(pool) = self.pool.as_mut() {
                pool.revoking.clear();
            }
        } else {
            tracing::error!("workers did not answer a revoke in time");
        }
    }

    /// Add to the sessions everything the fast paths counted, so that a
    /// read of the counters (status, the portal, `lassi sessions`) shows
    /// what crossed up to now. A read within [`TALLY_MS`] of the last
    /// tally uses that one.
    pub(super) fn tally(&mut self, now: UnixMillis, st: &mut LoopState) {
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        if pool
            .last_tally
            .is_some_and(|t| now.saturating_sub(t) < TALLY_MS)
        {
            return;
        }
        pool.last_tally = Some(now);
        let mut own = Vec::new();
        pool.own.take_deltas(&mut own);
        pool.apply(&mut self.engine, &own);
        let id = pool.request_id();
        pool.broadcast(|| ToWorker::Tally { id });
        if !self.await_answers(id, now, st) {
            // A worker that does not answer (stuck, or gone after a panic)
            // must not hold this thread up at every read: back off.
            tracing::warn!("workers did not answer a tally in time");
            if let Some(pool) = self.pool.as_mut() {
                pool.last_tally = Some(now + TALLY_BACKOFF_MS);
            }
        }
    }

    /// Handle the workers' messages until each has answered request `id`
    /// (false: not all did within [`ANSWER_WAIT`]). A late answer to an
    /// earlier request is applied, not counted.
    fn await_answers(&mut self, id: u64, now: UnixMillis, st: &mut LoopState) -> bool {
        let mut awaiting = self.pool.as_ref().map_or(0, |p| p.links.len());
        let deadline = Instant::now() + ANSWER_WAIT;
        while awaiting > 0 {
            let Some(msg) = (self.pool.as_ref()).and_then(|p| p.from_workers.pop_until(deadline))
            else {
                return false;
            };
            if self.worker_message(msg, now, st) == Some(id) {
                awaiting -= 1;
            }
        }
        true
    }

    /// Stop the workers, adding their last counts to the sessions (still
    /// open), and wait for their threads.
    pub(super) fn stop_workers(&mut self) {
        let Some(mut pool) = self.pool.take() else {
            return;
        };
        let mut own = Vec::new();
        pool.own.revoke_all(&mut own);
        pool.apply(&mut self.engine, &own);
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
                | FromWorker::Answer { deltas, .. }
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

impl Drop for WorkerPool {
    /// Stop the workers if the engine thread goes away without
    /// [`Forwarder::stop_workers`] (a panic): they would run on, unowned.
    fn drop(&mut self) {
        self.broadcast(|| ToWorker::Stop);
    }
}
