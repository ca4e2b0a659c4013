//! A forwarding worker (`dataplane.workers` above 1): one more thread with
//! its own LAN socket in the fanout group and its own TUN queue, so the
//! kernel spreads flows over the cores. It forwards the packets of the
//! sessions the engine thread admitted to its [`FastPath`] by itself, with
//! nothing shared on the per-packet path, and hands every other frame to
//! the engine thread ([`super::pool`]). What it counted goes back as
//! deltas, at most every [`REPORT_MS`] while traffic moves, and in full when
//! a session is revoked, so accounting stays exact.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::clock::now_ms;
use super::lan::{RecvBatch, SendBatch};
use super::ports::{tun_buffers, IoStats, Ports, TUN_HEADROOM};
use super::queue::Queue;
use super::sys::Waker;
use crate::dataplane::{FastAdmit, FastDelta, FastPath, FastVerdict};
use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};
use crate::UnixMillis;

/// How often, at most, a busy worker reports its counts.
pub const REPORT_MS: u64 = 50;
/// Batches read from one device before looking at the other.
const BURST_BATCHES: usize = 8;
/// Bytes of frames the workers may have waiting for the engine thread
/// together; past it they drop (and count) what they would hand over, so a
/// flood of unauthorized traffic cannot grow lassi's memory.
pub const MAX_HANDOFF_BYTES: usize = 8 << 20;

/// From the engine thread to a worker.
pub enum ToWorker {
    /// Forward this session by yourself.
    Admit(FastAdmit),
    /// Stop forwarding these addresses; answer with their final deltas.
    Revoke(Vec<Ipv4Addr>),
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
    /// The answer to a [`ToWorker::Revoke`].
    Revoked {
        /// Final counts of the revoked sessions.
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

/// Everything a worker thread owns.
pub struct Worker {
    /// Its index (1.., the engine thread is 0).
    pub index: usize,
    /// The sessions it forwards by itself.
    pub fast: FastPath,
    /// Its LAN socket and TUN queue.
    pub ports: Ports,
    /// Wakes its poll when a command is queued.
    pub waker: Arc<Waker>,
    /// Commands from the engine thread (which holds the other reference:
    /// when it is gone, so is the reason to run).
    pub commands: Arc<Queue<ToWorker>>,
    /// To the engine thread.
    pub to_engine: Arc<Queue<FromWorker>>,
    /// Wakes the engine thread.
    pub engine_waker: Arc<Waker>,
    /// Bytes handed to the engine thread and not yet handled, all workers.
    pub handoff_bytes: Arc<AtomicUsize>,
    /// Frames per system call.
    pub batch: usize,
}

/// The buffers and counters one worker's loop reuses.
struct WorkerState {
    rx: RecvBatch,
    tun_bufs: Vec<Box<[u8]>>,
    tun_lens: Vec<usize>,
    tx: SendBatch,
    slow: Vec<SlowFrame>,
    slow_bytes: usize,
    io: IoStats,
    /// Something was counted since the last report.
    moved: bool,
    next_report: UnixMillis,
}

impl Worker {
    /// Run until told to stop (or the engine thread is gone).
    pub fn run(mut self) {
        let mut st = WorkerState {
            rx: RecvBatch::new(self.batch),
            tun_bufs: tun_buffers(self.batch),
            tun_lens: vec![0; self.batch],
            tx: SendBatch::with_capacity(self.batch),
            slow: Vec::new(),
            slow_bytes: 0,
            io: IoStats::default(),
            moved: false,
            next_report: 0,
        };
        loop {
            let (lan, tun) = self.wait(&st);
            let now = now_ms();
            if !self.take_commands() {
                return;
            }
            if lan {
                self.receive_lan(now, &mut st);
            }
            if tun {
                self.receive_tun(now, &mut st);
            }
            self.hand_over(&mut st);
            if st.moved && now >= st.next_report {
                st.next_report = now + REPORT_MS;
                st.moved = false;
                self.report(&st.io);
            }
        }
    }

    /// Wait for a device or a command; wake in time for the next report
    /// when counts are waiting. Which devices are readable.
    fn wait(&self, st: &WorkerState) -> (bool, bool) {
        let timeout = if st.moved {
            i32::try_from(st.next_report.saturating_sub(now_ms())).unwrap_or(i32::MAX)
        } else {
            -1
        };
        let pollfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [
            pollfd(self.ports.lan.as_raw_fd()),
            pollfd(self.ports.tun.as_raw_fd()),
            pollfd(self.waker.as_raw_fd()),
        ];
        // SAFETY: three valid pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout) };
        if r < 0 {
            return (false, false);
        }
        if fds[2].revents != 0 {
            self.waker.drain();
        }
        (
            fds[0].revents & libc::POLLIN != 0,
            fds[1].revents & libc::POLLIN != 0,
        )
    }

    /// Carry out the engine thread's commands; false once told to stop.
    fn take_commands(&mut self) -> bool {
        loop {
            if Arc::strong_count(&self.commands) == 1 {
                return false; // the engine thread is gone
            }
            match self.commands.pop() {
                Some(ToWorker::Admit(a)) => {
                    if let Some(old) = self.fast.admit(a) {
                        // Not expected (the engine revokes first), but
                        // never lost: the engine sorts it out by token.
                        self.send(FromWorker::Displaced { deltas: vec![old] });
                    }
                }
                Some(ToWorker::Revoke(ips)) => {
                    let deltas = ips.iter().filter_map(|&ip| self.fast.revoke(ip)).collect();
                    self.send(FromWorker::Revoked { deltas });
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
        self.to_engine.push(msg);
        self.engine_waker.wake();
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

    /// Up to [`BURST_BATCHES`] batches of LAN frames.
    fn receive_lan(&mut self, now: UnixMillis, st: &mut WorkerState) {
        for _ in 0..BURST_BATCHES {
            let n = match self.ports.lan.recv(&mut st.rx) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("LAN receive: {e}");
                    break;
                }
            };
            st.io.lan_rx += n as u64;
            for i in 0..n {
                if let Some(tci) = st.rx.vlan(i) {
                    st.slow.push(SlowFrame::Tagged(tci));
                    continue;
                }
                self.lan_frame(now, i, st);
            }
            self.ports.flush_coalesced(&mut st.io);
            if n < st.rx.capacity() {
                break;
            }
        }
    }

    /// Frame `i` of the receive batch: forwarded, or kept for the engine.
    fn lan_frame(&mut self, now: UnixMillis, i: usize, st: &mut WorkerState) {
        let frame = st.rx.frame(i);
        let Some(vnet) = VnetHdr::parse(frame) else {
            return;
        };
        IoStats::offloads(&vnet, &mut st.io.lan_rx_gso, &mut st.io.lan_rx_partial_csum);
        match self.fast.from_lan(now, &vnet, &frame[VNET_HDR_LEN..]) {
            FastVerdict::ToTun => {
                self.ports.to_tun(frame, &vnet, &mut st.io);
                st.moved = true;
            }
            _ => {
                st.slow_bytes += frame.len();
                st.slow.push(SlowFrame::Lan(frame.to_vec()));
            }
        }
    }

    /// Up to [`BURST_BATCHES`] batches of TUN packets.
    fn receive_tun(&mut self, now: UnixMillis, st: &mut WorkerState) {
        for _ in 0..BURST_BATCHES {
            let n = self.ports.read_tun(&mut st.tun_bufs, &mut st.tun_lens);
            st.io.tun_rx += n as u64;
            for i in 0..n {
                self.tun_packet(now, i, st);
            }
            self.ports.flush(&mut st.tx, &mut st.io);
            if n < st.tun_bufs.len() {
                break;
            }
        }
    }

    /// TUN packet `i` of the batch: onto the LAN, or kept for the engine.
    fn tun_packet(&mut self, now: UnixMillis, i: usize, st: &mut WorkerState) {
        let buf = &mut st.tun_bufs[i][..TUN_HEADROOM + st.tun_lens[i]];
        let Some(vnet) = VnetHdr::parse(&buf[TUN_HEADROOM..]) else {
            return;
        };
        IoStats::offloads(&vnet, &mut st.io.tun_rx_gso, &mut st.io.tun_rx_partial_csum);
        let ip = &buf[TUN_HEADROOM + VNET_HDR_LEN..];
        match self.fast.from_tun(now, &vnet, ip) {
            FastVerdict::ToLan(dst) => {
                self.ports.frame_for_lan(buf, &vnet, dst);
                if st.tx.is_full() {
                    self.ports.flush(&mut st.tx, &mut st.io);
                }
                st.tx.push(buf, &[]);
                st.moved = true;
            }
            _ => {
                st.slow_bytes += buf.len();
                st.slow.push(SlowFrame::Tun(buf.to_vec()));
            }
        }
    }

    /// Send the frames kept for the engine, unless its queue is full.
    fn hand_over(&mut self, st: &mut WorkerState) {
        if st.slow.is_empty() {
            return;
        }
        let (frames, bytes) = (
            std::mem::take(&mut st.slow),
            std::mem::take(&mut st.slow_bytes),
        );
        let n = frames.len() as u64;
        let queued = self.handoff_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > MAX_HANDOFF_BYTES {
            self.handoff_bytes.fetch_sub(bytes, Ordering::Relaxed);
            st.io.handoff_dropped += n;
            return;
        }
        st.io.handed_to_engine += n;
        st.moved = true; // the device counters changed: report them
        self.send(FromWorker::Slow { frames, bytes });
    }
}
