//! A forwarding worker (`dataplane.workers` above 1): one more thread with
//! its own LAN socket in the fanout group and its own TUN queue, so the
//! kernel spreads flows over the cores. It forwards the packets of the
//! sessions the engine thread admitted to its [`FastPath`] by itself, with
//! nothing shared on the per-packet path, and hands every other frame to
//! the engine thread ([`super::pool`]). What it counted goes back as
//! deltas, at most every [`REPORT_MS`] while traffic moves, and in full when
//! a session is revoked, so accounting stays exact.
//!
//! A shaped or metered session has one owner among the workers
//! ([`owner_of`]): its shapers and quota budget live there, and the other
//! threads hand its frames to the owner, so its rate and volume hold
//! whichever threads the kernel spreads its flows over.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::clock::now_ms;
use super::lan::{RecvBatch, SendBatch};
use super::ports::{tun_buffers, IoStats, Ports, ReleaseBufs, TUN_HEADROOM};
use super::queue::Queue;
use super::sys::Waker;
use crate::dataplane::{FastAdmit, FastDelta, FastPath, FastVerdict};
use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};
use crate::UnixMillis;

/// How often, at most, a busy worker reports its counts.
pub const REPORT_MS: u64 = 50;
/// Batches read from one device before looking at the other.
const BURST_BATCHES: usize = 8;
/// Bytes of frames the threads may have waiting for another thread
/// together; past it they drop (and count) what they would hand over, so a
/// flood of unauthorized traffic cannot grow lassi's memory.
pub const MAX_HANDOFF_BYTES: usize = 8 << 20;

/// To a worker: from the engine thread, or frames from another worker.
pub enum ToWorker {
    /// Forward this session by yourself.
    Admit(FastAdmit),
    /// Frames of sessions this worker owns (shaped or metered), received
    /// by another thread; `bytes` is their share of the hand-off budget.
    Frames {
        /// The frames, in the order received.
        frames: Vec<SlowFrame>,
        /// Their size.
        bytes: usize,
    },
    /// Stop forwarding these addresses; answer with their final deltas.
    Revoke {
        /// Matched by the answer.
        id: u64,
        /// The sessions' addresses.
        ips: Vec<Ipv4Addr>,
    },
    /// Report now (someone is reading the counters), then answer.
    Tally {
        /// Matched by the answer.
        id: u64,
    },
    /// Report everything and end the thread.
    Stop,
}

/// A frame the worker leaves to the engine.
pub enum SlowFrame {
    /// A LAN frame, `[vnet][eth][ip]`.
    Lan(Vec<u8>),
    /// A LAN frame the kernel had stripped a VLAN tag from (only counted).
    Tagged(u16),
    /// A TUN packet with headroom in front: `[TUN_HEADROOM][vnet][ip]`.
    Tun(Vec<u8>),
}

/// From a worker to the engine thread.
pub enum FromWorker {
    /// Frames for the engine; `bytes` is what they add to the shared
    /// hand-off budget.
    Slow {
        /// The frames, in the order received.
        frames: Vec<SlowFrame>,
        /// Their size.
        bytes: usize,
    },
    /// Counts since the last report, and the worker's running totals.
    Report {
        /// Which worker.
        worker: usize,
        /// Per-session counts.
        deltas: Vec<FastDelta>,
        /// Device counters since start.
        io: IoStats,
        /// Thread CPU time since start.
        cpu_seconds: f64,
    },
    /// The answer to a [`ToWorker::Revoke`] or [`ToWorker::Tally`].
    Answer {
        /// The request's.
        id: u64,
        /// Final counts of the revoked sessions; for a tally, every
        /// session's counts since the last report.
        deltas: Vec<FastDelta>,
    },
    /// Counts of a session an admission replaced (not expected: the engine
    /// revokes first).
    Displaced {
        /// Its final counts.
        deltas: Vec<FastDelta>,
    },
    /// The answer to [`ToWorker::Stop`]: the last counts.
    Stopped {
        /// Which worker.
        worker: usize,
        /// Final counts of every admitted session.
        deltas: Vec<FastDelta>,
    },
}

/// The worker that owns a shaped or metered session at `ip`: the same
/// answer on every thread. Worker 0 (the engine thread) owns none.
pub fn owner_of(ip: Ipv4Addr, workers: usize) -> usize {
    1 + u32::from(ip) as usize % workers.saturating_sub(1).max(1)
}

/// The guest address of a frame a fast path handed off: the source of a
/// LAN frame (`[vnet][eth][ip]`), the destination of a TUN packet
/// (`[headroom][vnet][ip]`).
fn session_ip(f: &SlowFrame) -> Option<Ipv4Addr> {
    let (buf, at) = match f {
        SlowFrame::Lan(b) => (b, VNET_HDR_LEN + 14 + 12),
        SlowFrame::Tun(b) => (b, TUN_HEADROOM + VNET_HDR_LEN + 16),
        SlowFrame::Tagged(_) => return None,
    };
    let a: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(a))
}

/// A worker's command queue and the waker of its poll.
pub type Inbox = (Arc<Queue<ToWorker>>, Arc<Waker>);

/// Where a thread's frames go when it does not forward them itself.
pub struct Links {
    /// The engine thread's queue and waker.
    pub engine: (Arc<Queue<FromWorker>>, Arc<Waker>),
    /// Every worker's command queue and waker, by index (0: none).
    pub workers: Vec<Option<Inbox>>,
    /// Bytes handed over and not yet handled, all threads together.
    pub budget: Arc<AtomicUsize>,
}

/// Frames on their way to other threads, batched by destination (index 0:
/// the engine thread).
pub struct Handoffs {
    pending: Vec<(Vec<SlowFrame>, usize)>,
}

impl Handoffs {
    /// Room for `threads` destinations.
    pub fn new(threads: usize) -> Handoffs {
        Handoffs {
            pending: (0..threads).map(|_| (Vec::new(), 0)).collect(),
        }
    }

    /// Queue a frame for the engine thread.
    pub fn to_engine(&mut self, f: SlowFrame, len: usize) {
        self.push(0, f, len);
    }

    /// Queue a frame for the owner of its session (the engine thread when
    /// the frame says nothing of it).
    pub fn to_owner(&mut self, f: SlowFrame, len: usize) {
        let threads = self.pending.len();
        let to = session_ip(&f).map_or(0, |ip| owner_of(ip, threads));
        self.push(to, f, len);
    }

    fn push(&mut self, to: usize, f: SlowFrame, len: usize) {
        let last = self.pending.len() - 1;
        let (frames, bytes) = &mut self.pending[to.min(last)];
        frames.push(f);
        *bytes += len;
    }

    /// Send every batch, unless the budget is spent (then they are dropped
    /// and counted). True when something was sent or dropped.
    pub fn send(&mut self, links: &Links, io: &mut IoStats) -> bool {
        let mut any = false;
        for (to, (frames, bytes)) in self.pending.iter_mut().enumerate() {
            if frames.is_empty() {
                continue;
            }
            any = true;
            let (frames, bytes) = (std::mem::take(frames), std::mem::take(bytes));
            let n = frames.len() as u64;
            let queued = links.budget.fetch_add(bytes, Ordering::Relaxed);
            if queued + bytes > MAX_HANDOFF_BYTES {
                links.budget.fetch_sub(bytes, Ordering::Relaxed);
                io.handoff_dropped += n;
                continue;
            }
            io.handed_over += n;
            match links.workers.get(to) {
                Some(Some((queue, waker))) if to > 0 => {
                    queue.push(ToWorker::Frames { frames, bytes });
                    waker.wake();
                }
                _ => {
                    links.engine.0.push(FromWorker::Slow { frames, bytes });
                    links.engine.1.wake();
                }
            }
        }
        any
    }
}

/// Everything a worker thread owns.
pub struct Worker {
    /// Its index (1.., the engine thread is 0).
    pub index: usize,
    /// The sessions it forwards by itself.
    pub fast: FastPath,
    /// Its LAN socket and TUN queue.
    pub ports: Ports,
    /// Its own queue and waker (also in `links.workers`).
    pub commands: Arc<Queue<ToWorker>>,
    /// Wakes its poll when a command is queued.
    pub waker: Arc<Waker>,
    /// The other threads.
    pub links: Links,
    /// Frames per system call.
    pub batch: usize,
}

/// What one worker's loop sends, and its counters.
struct Outgoing {
    tx: SendBatch,
    handoffs: Handoffs,
    release: ReleaseBufs,
    io: IoStats,
    /// Something was counted since the last report.
    moved: bool,
    next_report: UnixMillis,
}

/// The buffers one worker's loop reads into.
struct Incoming {
    rx: RecvBatch,
    tun_bufs: Vec<Box<[u8]>>,
    tun_lens: Vec<usize>,
}

impl Worker {
    /// Run until told to stop (or the engine thread is gone).
    pub fn run(mut self) {
        let mut inc = Incoming {
            rx: RecvBatch::new(self.batch),
            tun_bufs: tun_buffers(self.batch),
            tun_lens: vec![0; self.batch],
        };
        let mut out = Outgoing {
            tx: SendBatch::with_capacity(self.batch),
            handoffs: Handoffs::new(self.links.workers.len()),
            release: ReleaseBufs::default(),
            io: IoStats::default(),
            moved: false,
            next_report: 0,
        };
        loop {
            let (lan, tun) = self.wait(&out);
            let now = now_ms();
            if !self.take_commands(now, &mut out) {
                return;
            }
            if lan {
                self.receive_lan(now, &mut inc, &mut out);
            }
            if tun {
                self.receive_tun(now, &mut inc, &mut out);
            }
            self.release(now, &mut out);
            // A quota ran out: the engine must know before the frames it
            // now gets for that session.
            let urgent = self.fast.take_urgent();
            if urgent || (out.moved && now >= out.next_report) {
                out.next_report = now + REPORT_MS;
                out.moved = false;
                self.report(&out.io);
            }
            out.moved |= out.handoffs.send(&self.links, &mut out.io);
        }
    }

    /// Wait for a device or a command; wake in time for the next report
    /// when counts are waiting, and for the shapers' next release. Which
    /// devices are readable.
    fn wait(&self, out: &Outgoing) -> (bool, bool) {
        let report = out.moved.then_some(out.next_report);
        let timeout = match (report, self.fast.next_release()) {
            (None, None) => -1,
            (a, b) => {
                let at = a.unwrap_or(u64::MAX).min(b.unwrap_or(u64::MAX));
                i32::try_from(at.saturating_sub(now_ms())).unwrap_or(i32::MAX)
            }
        };
        self.ports.poll(&self.waker, timeout)
    }

    /// Carry out the queued commands; false once told to stop.
    fn take_commands(&mut self, now: UnixMillis, out: &mut Outgoing) -> bool {
        loop {
            match self.commands.pop() {
                Some(ToWorker::Admit(a)) => {
                    if let Some(old) = self.fast.admit(a) {
                        // Not expected (the engine revokes first), but
                        // never lost: the engine sorts it out by token.
                        self.send(FromWorker::Displaced { deltas: vec![old] });
                    }
                }
                Some(ToWorker::Frames { mut frames, bytes }) => {
                    self.owned_frames(now, &mut frames, out);
                    self.links.budget.fetch_sub(bytes, Ordering::Relaxed);
                }
                Some(ToWorker::Revoke { id, ips }) => {
                    let deltas = ips.iter().filter_map(|&ip| self.fast.revoke(ip)).collect();
                    self.send(FromWorker::Answer { id, deltas });
                }
                Some(ToWorker::Tally { id }) => {
                    // Counts, device counters and CPU time, then the answer:
                    // the engine thread reads them in this order.
                    self.report(&out.io);
                    let deltas = Vec::new();
                    self.send(FromWorker::Answer { id, deltas });
                }
                Some(ToWorker::Stop) => {
                    let mut deltas = Vec::new();
                    self.fast.revoke_all(&mut deltas);
                    let worker = self.index;
                    self.send(FromWorker::Stopped { worker, deltas });
                    return false;
                }
                None => return true,
            }
        }
    }

    fn send(&self, msg: FromWorker) {
        self.links.engine.0.push(msg);
        self.links.engine.1.wake();
    }

    /// What was counted since the last report, and the running totals.
    fn report(&mut self, io: &IoStats) {
        let mut deltas = Vec::new();
        self.fast.take_deltas(&mut deltas);
        self.send(FromWorker::Report {
            worker: self.index,
            deltas,
            io: io.clone(),
            cpu_seconds: crate::metrics::thread_cpu_seconds(),
        });
    }

    /// Frames another thread handed to this owner. `frames` lives until
    /// they are sent: the send batch points into it.
    fn owned_frames(&mut self, now: UnixMillis, frames: &mut [SlowFrame], out: &mut Outgoing) {
        for f in frames.iter_mut() {
            match f {
                SlowFrame::Lan(frame) => self.lan_frame(now, frame, out, true),
                SlowFrame::Tun(buf) => self.tun_packet(now, buf, out, true),
                SlowFrame::Tagged(tci) => out.handoffs.to_engine(SlowFrame::Tagged(*tci), 0),
            }
        }
        self.ports.flush_coalesced(&mut out.io);
        self.ports.flush(&mut out.tx, &mut out.io);
    }

    /// Send what this owner's shapers let go now.
    fn release(&mut self, now: UnixMillis, out: &mut Outgoing) {
        if self.fast.next_release().is_none_or(|at| at > now) {
            return;
        }
        self.fast.release_held(now, &mut out.release.released);
        if !out.release.released.is_empty() {
            out.moved = true;
            let Outgoing {
                tx, release, io, ..
            } = out;
            self.ports.send_released(release, tx, io, self.batch);
        }
    }

    /// Up to [`BURST_BATCHES`] batches of LAN frames.
    fn receive_lan(&mut self, now: UnixMillis, inc: &mut Incoming, out: &mut Outgoing) {
        for _ in 0..BURST_BATCHES {
            let n = match self.ports.lan.recv(&mut inc.rx) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("LAN receive: {e}");
                    break;
                }
            };
            out.io.lan_rx += n as u64;
            for i in 0..n {
                if let Some(tci) = inc.rx.vlan(i) {
                    out.handoffs.to_engine(SlowFrame::Tagged(tci), 0);
                    continue;
                }
                self.lan_frame(now, inc.rx.frame(i), out, false);
            }
            self.ports.flush_coalesced(&mut out.io);
            if n < inc.rx.capacity() {
                break;
            }
        }
    }

    /// A LAN frame (`[vnet][eth][ip]`): forwarded, held by a shaper, or
    /// handed on. A frame another thread handed over is never handed to
    /// another worker again, only to the engine thread.
    fn lan_frame(&mut self, now: UnixMillis, frame: &mut [u8], out: &mut Outgoing, handed: bool) {
        let Some(vnet) = VnetHdr::parse(frame) else {
            return;
        };
        if !handed {
            IoStats::offloads(
                &vnet,
                &mut out.io.lan_rx_gso,
                &mut out.io.lan_rx_partial_csum,
            );
        }
        match self.fast.from_lan(now, &vnet, &frame[VNET_HDR_LEN..]) {
            FastVerdict::ToTun => {
                self.ports.to_tun(frame, &vnet, &mut out.io);
                out.moved = true;
            }
            FastVerdict::Held | FastVerdict::Drop => out.moved = true,
            FastVerdict::Handoff if !handed => {
                out.handoffs
                    .to_owner(SlowFrame::Lan(frame.to_vec()), frame.len());
            }
            _ => out
                .handoffs
                .to_engine(SlowFrame::Lan(frame.to_vec()), frame.len()),
        }
    }

    /// Up to [`BURST_BATCHES`] batches of TUN packets.
    fn receive_tun(&mut self, now: UnixMillis, inc: &mut Incoming, out: &mut Outgoing) {
        for _ in 0..BURST_BATCHES {
            let n = self.ports.read_tun(&mut inc.tun_bufs, &mut inc.tun_lens);
            out.io.tun_rx += n as u64;
            for i in 0..n {
                let buf = &mut inc.tun_bufs[i][..TUN_HEADROOM + inc.tun_lens[i]];
                self.tun_packet(now, buf, out, false);
            }
            self.ports.flush(&mut out.tx, &mut out.io);
            if n < inc.tun_bufs.len() {
                break;
            }
        }
    }

    /// A TUN packet at `buf[TUN_HEADROOM..]`: onto the LAN (batched: `buf`
    /// must live until the next flush), held, or handed on.
    fn tun_packet(&mut self, now: UnixMillis, buf: &mut [u8], out: &mut Outgoing, handed: bool) {
        let Some(vnet) = VnetHdr::parse(&buf[TUN_HEADROOM..]) else {
            return;
        };
        if !handed {
            IoStats::offloads(
                &vnet,
                &mut out.io.tun_rx_gso,
                &mut out.io.tun_rx_partial_csum,
            );
        }
        match self
            .fast
            .from_tun(now, &vnet, &buf[TUN_HEADROOM + VNET_HDR_LEN..])
        {
            FastVerdict::ToLan(dst) => {
                self.ports.frame_for_lan(buf, &vnet, dst);
                if out.tx.is_full() {
                    self.ports.flush(&mut out.tx, &mut out.io);
                }
                out.tx.push(buf, &[]);
                out.moved = true;
            }
            FastVerdict::Held | FastVerdict::Drop => out.moved = true,
            FastVerdict::Handoff if !handed => {
                out.handoffs
                    .to_owner(SlowFrame::Tun(buf.to_vec()), buf.len());
            }
            _ => out
                .handoffs
                .to_engine(SlowFrame::Tun(buf.to_vec()), buf.len()),
        }
    }
}
