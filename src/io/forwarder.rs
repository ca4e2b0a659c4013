//! The forwarder: the data-plane thread. It owns the engine and both packet
//! devices, moves frames in batches, sleeps until the engine's next deadline
//! ([`Engine::poll_timeout`]) or I/O, and talks to the control plane only by
//! messages ([`Command`]s in through a [`DataplaneHandle`], [`Notice`]s out).
//!
//! With `dataplane.workers` above 1 it is worker 0 of several: the others
//! ([`super::worker`]) forward the authorized sessions it admits to their
//! fast paths and hand it everything else ([`super::pool`]).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::oneshot;

use super::kernel_path::KernelPath;
use super::lan::{RecvBatch, SendBatch};
use super::pool::{Fast, WorkerPool};
pub use super::ports::IoStats;
use super::ports::{ethertype_of, tun_buffers, Ports, ReleaseBufs, TUN_HEADROOM};
use super::queue::Queue;
use super::sys::Waker;
use crate::dataplane::{Engine, Event, LanAction, Save, Snapshot, TunAction};
use crate::dhcp::LeaseRecord;
use crate::session::{
    Authorization, Client, Durability, EndReason, EndedSession, SavedSessions, SessionLimits,
    SessionMatch,
};
use crate::wire::frame::{EthHeader, ETH_HLEN};
use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};
use crate::wire::MacAddr;
use crate::UnixMillis;

use super::clock::{clock_step_ms, now_ms};

/// Requests from the control plane.
pub enum Command {
    /// Log a client in.
    Authorize {
        /// Client.
        mac: MacAddr,
        /// What the login granted.
        auth: Authorization,
        /// Answer.
        reply: oneshot::Sender<Result<Client, String>>,
    },
    /// End a client's session.
    Logout {
        /// Client.
        mac: MacAddr,
        /// Why (admin or the guest).
        reason: EndReason,
        /// Answer.
        reply: oneshot::Sender<Result<EndedSession, String>>,
    },
    /// The client holding an address (the portal identifies guests by
    /// their source address).
    ClientByIp {
        /// Address.
        ip: std::net::Ipv4Addr,
        /// Answer.
        reply: oneshot::Sender<Option<Client>>,
    },
    /// The client using an IPv6 address (the portal over IPv6).
    ClientByIpv6 {
        /// Address.
        ip: std::net::Ipv6Addr,
        /// Answer.
        reply: oneshot::Sender<Option<Client>>,
    },
    /// Change a running session's limits (CoA).
    SetLimits {
        /// Client.
        mac: MacAddr,
        /// New limits.
        limits: SessionLimits,
        /// Answer.
        reply: oneshot::Sender<Result<Client, String>>,
    },
    /// The authorized sessions matching a CoA/Disconnect request.
    FindSessions {
        /// Criteria.
        criteria: SessionMatch,
        /// Answer.
        reply: oneshot::Sender<Vec<Client>>,
    },
    /// Addresses resolved for the walled garden's host names.
    SetWalledGardenHosts(Vec<std::net::Ipv4Addr>),
    /// An operator's request (`lassi sessions|logout|block|garden…`).
    Operator(super::operator::OperatorCommand),
    /// A reload's live engine settings (see [`crate::reload`]).
    SetLiveSettings {
        /// What the engine changes from the next frame on.
        live: crate::dataplane::LiveSettings,
        /// `session.stop_on_shutdown`.
        stop_on_shutdown: bool,
    },
    /// A copy of the state.
    Status {
        /// Answer.
        reply: oneshot::Sender<Status>,
    },
    /// The counters a metrics scrape reads (one message per scrape).
    Metrics {
        /// Answer.
        reply: oneshot::Sender<DataplaneMetrics>,
    },
    /// End sessions, save leases, stop the thread.
    Shutdown,
}

impl Command {
    /// Whether its answer shows sessions' counters (the fast paths' counts
    /// are tallied first, so it shows what crossed up to now; a logout's
    /// answer too, though its Stop also gets what crossed after that).
    fn reads_counters(&self) -> bool {
        matches!(
            self,
            Command::ClientByIp { .. }
                | Command::ClientByIpv6 { .. }
                | Command::FindSessions { .. }
                | Command::Status { .. }
                | Command::Metrics { .. }
                | Command::Logout { .. }
                | Command::Operator(
                    super::operator::OperatorCommand::Clients(..)
                        | super::operator::OperatorCommand::Logout(..)
                )
        )
    }

    /// Whether carrying it out may log a session in or out or change its
    /// limits (the workers' fast paths are then brought in line).
    fn may_change_sessions(&self) -> bool {
        !matches!(
            self,
            Command::ClientByIp { .. }
                | Command::ClientByIpv6 { .. }
                | Command::FindSessions { .. }
                | Command::SetWalledGardenHosts(_)
                | Command::Status { .. }
                | Command::Metrics { .. }
        )
    }
}

/// Handle to send commands to the data plane.
#[derive(Clone)]
pub struct DataplaneHandle {
    /// Command queue.
    pub commands: Arc<Queue<Command>>,
    /// Wakes the data-plane thread.
    pub waker: Arc<Waker>,
    /// The portal's counters (`portal` in `lassi status`).
    pub portal: Arc<crate::portal::PortalStats>,
    /// The RADIUS service (`radius` in `lassi status`), set once it has
    /// started; it starts after this handle exists because it needs one.
    pub radius: Arc<std::sync::OnceLock<crate::radius::RadiusHandle>>,
    /// The block list's file and the walled garden's entries.
    pub operator: Arc<super::operator::OperatorState>,
    /// The daemon's reload task (`lassi reload`), set once it runs.
    pub reload: Arc<std::sync::OnceLock<crate::reload::ReloadHandle>>,
}

impl DataplaneHandle {
    pub(crate) fn send(&self, cmd: Command) -> Result<(), String> {
        (self.commands.send(cmd)).map_err(|_| "the data plane has stopped".to_string())?;
        self.waker.wake();
        Ok(())
    }

    /// Apply a reload's live engine settings (no session or lease ends).
    pub fn set_live_settings(
        &self,
        live: crate::dataplane::LiveSettings,
        stop_on_shutdown: bool,
    ) -> Result<(), String> {
        self.send(Command::SetLiveSettings {
            live,
            stop_on_shutdown,
        })
    }

    /// Replace the walled garden's resolved host addresses.
    pub fn set_walled_garden_hosts(&self, ips: Vec<std::net::Ipv4Addr>) -> Result<(), String> {
        self.send(Command::SetWalledGardenHosts(ips))
    }

    /// The client holding `ip`, if any.
    pub async fn client_by_ip(&self, ip: std::net::Ipv4Addr) -> Result<Option<Client>, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::ClientByIp { ip, reply: tx })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())
    }

    /// The client using an IPv6 address, if any.
    pub async fn client_by_ipv6(&self, ip: std::net::Ipv6Addr) -> Result<Option<Client>, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::ClientByIpv6 { ip, reply: tx })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())
    }

    /// A copy of the data plane's state and I/O counters.
    pub async fn status(&self) -> Result<Status, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Status { reply: tx })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())
    }

    /// The counters a metrics scrape reads.
    pub async fn metrics(&self) -> Result<DataplaneMetrics, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Metrics { reply: tx })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())
    }

    /// Log a client in with the configured default limits.
    pub async fn authorize(&self, mac: MacAddr, user: Option<String>) -> Result<Client, String> {
        let auth = Authorization {
            user,
            ..Default::default()
        };
        self.authorize_with(mac, auth).await
    }

    /// Log a client in with what its login granted (limits, RADIUS Class…).
    pub async fn authorize_with(
        &self,
        mac: MacAddr,
        auth: Authorization,
    ) -> Result<Client, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Authorize {
            mac,
            auth,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())?
    }

    /// The authorized sessions matching a CoA/Disconnect request.
    pub async fn find_sessions(&self, criteria: SessionMatch) -> Result<Vec<Client>, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::FindSessions {
            criteria,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())
    }

    /// Change a running session's limits.
    pub async fn set_limits(&self, mac: MacAddr, limits: SessionLimits) -> Result<Client, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SetLimits {
            mac,
            limits,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())?
    }

    /// End a client's session.
    pub async fn logout(&self, mac: MacAddr, reason: EndReason) -> Result<EndedSession, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Logout {
            mac,
            reason,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())?
    }
}

/// What the data plane tells the rest of lassi.
pub enum Notice {
    /// Engine events, in order.
    Events(Vec<Event>),
    /// The lease table changed: persist this.
    Leases(Vec<LeaseRecord>),
    /// The DHCPv6 lease table (with `[lan.ipv6]`): persist this.
    Leases6(Vec<crate::dhcp6::Lease6Record>),
    /// Authorized sessions to persist, and how durably.
    Sessions(SavedSessions, Durability),
}

/// Engine snapshot plus I/O counters.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Sessions, drops, DHCP.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// Device counters, all forwarding threads together.
    pub io: IoStats,
    /// Each forwarding thread's counters, worker 0 (the engine's) first,
    /// and how many sessions the other workers forward by themselves.
    pub workers: WorkersStatus,
}

/// The forwarding threads in `lassi status`.
#[derive(Clone, Debug, Serialize)]
pub struct WorkersStatus {
    /// Which fast path forwards authorized sessions: `user` (lassi's
    /// workers) or `kernel` (nftables).
    pub fast_path: &'static str,
    /// Sessions admitted to the fast path (the workers' or the kernel's).
    pub fast_path_sessions: usize,
    /// Per thread.
    pub threads: Vec<WorkerLoad>,
}

/// What a metrics scrape reads from the data plane.
#[derive(Clone, Debug)]
pub struct DataplaneMetrics {
    /// Sessions, traffic, drops, DHCP.
    pub engine: crate::dataplane::EngineMetrics,
    /// Each forwarding thread's load, worker 0 (the engine's) first.
    pub workers: Vec<WorkerLoad>,
    /// Which fast path forwards logged-in guests, and how many.
    pub fast_path: FastPathLoad,
}

/// The fast path in a metrics scrape.
#[derive(Clone, Debug, Default)]
pub struct FastPathLoad {
    /// `user` or `kernel`.
    pub kind: &'static str,
    /// Sessions it forwards.
    pub sessions: usize,
    /// Changes or reads the kernel refused (kernel fast path): the
    /// sessions concerned stayed on, or went back to, lassi's own path.
    pub kernel_errors: u64,
}

/// One forwarding thread's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerLoad {
    /// Its device counters.
    pub io: IoStats,
    /// CPU time it has used, in seconds (its own thread CPU clock, read by
    /// the thread itself; a worker's as of its last report).
    pub cpu_seconds: f64,
}

/// Everything the thread owns.
pub struct Forwarder {
    /// The engine.
    pub engine: Engine,
    /// This thread's LAN socket and TUN queue.
    pub ports: Ports,
    /// The other forwarding threads (`dataplane.workers` above 1).
    pub pool: Option<WorkerPool>,
    /// The kernel fast path (`dataplane.fast_path = "kernel"`).
    pub kernel: Option<KernelPath>,
    /// Wakes the poll when a command is queued.
    pub waker: Arc<Waker>,
    /// Control plane requests.
    pub commands: Arc<Queue<Command>>,
    /// Events and lease snapshots out.
    pub notices: Arc<Queue<Notice>>,
    /// Frames per system call.
    pub batch: usize,
    /// End sessions at shutdown rather than keep them for the next start.
    pub stop_on_shutdown: bool,
}

const ZERO_VNET: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
/// Batches handled per device before looking at the other one, so a flood
/// in one direction cannot starve the other or the control plane.
const BURST_BATCHES: usize = 8;

/// The buffers and counters one run of the loop reuses.
pub(super) struct LoopState {
    rx: RecvBatch,
    tun_bufs: Vec<Box<[u8]>>,
    tun_lens: Vec<usize>,
    pub(super) tx: SendBatch,
    /// Packets the shapers let go.
    pub(super) release: ReleaseBufs,
    /// Frames the engine originated (ARP, DHCP).
    outbox: Vec<Vec<u8>>,
    pub(super) io: IoStats,
    clock: ClockWatch,
}

impl LoopState {
    fn new(batch: usize) -> Self {
        LoopState {
            rx: RecvBatch::new(batch),
            tun_bufs: tun_buffers(batch),
            tun_lens: vec![0usize; batch],
            tx: SendBatch::with_capacity(batch),
            release: ReleaseBufs::default(),
            outbox: Vec::new(),
            io: IoStats::default(),
            clock: ClockWatch::default(),
        }
    }
}

/// Warns when the system clock has stepped since lassi started. It is
/// looked at when the loop wakes anyway (the engine's housekeeping wakes
/// it every second), at most once a minute: it sets no timer of its own.
#[derive(Default)]
struct ClockWatch {
    next_check: UnixMillis,
    reported_step: i64,
}

impl ClockWatch {
    const EVERY_MS: u64 = 60_000;
    /// Steps smaller than this are not worth a warning.
    const NOTABLE_MS: i64 = 10_000;

    fn check(&mut self, now: UnixMillis) {
        if now < self.next_check {
            return;
        }
        self.next_check = now + Self::EVERY_MS;
        let step = clock_step_ms();
        if step.abs() > Self::NOTABLE_MS && (step - self.reported_step).abs() > Self::NOTABLE_MS {
            self.reported_step = step;
            tracing::warn!(
                step_s = step / 1000,
                "the system clock stepped since lassi started; sessions keep their timing, \
                 times lassi shows are offset by the step until it restarts"
            );
        }
    }
}

/// Which of the polled descriptors have something to read.
struct Ready {
    lan: bool,
    tun: bool,
}

impl Drop for Forwarder {
    /// However the thread ends, the control plane's requests are refused
    /// from now on and the notice thread finishes what is queued.
    fn drop(&mut self) {
        self.commands.close();
        self.notices.close();
    }
}

impl Forwarder {
    /// Which fast path runs, how many sessions it forwards, its errors.
    fn fast_path_load(&self) -> FastPathLoad {
        match &self.kernel {
            Some(k) => FastPathLoad {
                kind: "kernel",
                sessions: k.admitted(),
                kernel_errors: k.errors(),
            },
            None => FastPathLoad {
                kind: "user",
                sessions: self.pool.as_ref().map_or(0, WorkerPool::admitted),
                kernel_errors: 0,
            },
        }
    }

    /// Run until a Shutdown command (or the command channel closes).
    /// Returns how many sessions were kept open for the next start.
    ///
    /// One pass: wait for I/O or the engine's deadline, take the control
    /// plane's commands, receive from the LAN, receive from the TUN, run
    /// the engine's timers, send what it originated or released, and
    /// publish its events and the saves they call for.
    pub fn run(mut self) -> usize {
        let mut st = LoopState::new(self.batch);
        loop {
            let ready = self.wait();
            let now = now_ms();
            if let Some(kept) = self.take_commands(now, &mut st) {
                return kept;
            }
            if ready.lan {
                self.receive_lan(now, &mut st);
            }
            if ready.tun {
                self.receive_tun(now, &mut st);
            }
            self.take_worker_messages(now, &mut st);
            self.engine.handle_timeout(now);
            self.send_released(now, &mut st);
            self.send_outbox(&mut st);
            st.clock.check(now);
            self.publish(now, &mut st);
        }
    }

    /// Wait for a device or a command, or until the engine's next deadline.
    fn wait(&mut self) -> Ready {
        let now = now_ms();
        let timeout = self.engine.poll_timeout().map_or(-1, |d| {
            i32::try_from(d.saturating_sub(now)).unwrap_or(i32::MAX)
        });
        let (lan, tun) = self.ports.poll(&self.waker, timeout);
        Ready { lan, tun }
    }

    /// Carry out the queued commands; after a Shutdown (or when the control
    /// plane is gone), the number of sessions kept for the next start.
    fn take_commands(&mut self, now: UnixMillis, st: &mut LoopState) -> Option<usize> {
        loop {
            // Every handle gone (only this thread holds the queue): stop.
            let orphaned = Arc::strong_count(&self.commands) == 1;
            match self.commands.pop() {
                Some(Command::Shutdown) => return Some(self.shutdown(now)),
                None if orphaned => return Some(self.shutdown(now)),
                Some(cmd) => {
                    if cmd.may_change_sessions() {
                        if let Some(pool) = &mut self.pool {
                            pool.dirty = true;
                        }
                        if let Some(k) = &mut self.kernel {
                            k.dirty = true;
                        }
                    }
                    if cmd.reads_counters() {
                        self.tally(now, st);
                        self.tally_kernel(now);
                    }
                    self.command(cmd, now, &st.io);
                }
                None => return None,
            }
        }
    }

    /// Up to [`BURST_BATCHES`] batches of LAN frames.
    fn receive_lan(&mut self, now: UnixMillis, st: &mut LoopState) {
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
                    self.engine.tagged_from_lan(tci);
                    continue;
                }
                let frame = st.rx.frame(i);
                if !self.fast_lan(now, frame, &mut st.io) {
                    self.lan_frame(now, frame, &mut st.tx, &mut st.io);
                }
            }
            self.ports.flush_coalesced(&mut st.io);
            self.ports.flush(&mut st.tx, &mut st.io);
            if n < st.rx.capacity() {
                break;
            }
        }
    }

    /// Up to [`BURST_BATCHES`] batches of TUN packets.
    fn receive_tun(&mut self, now: UnixMillis, st: &mut LoopState) {
        for _ in 0..BURST_BATCHES {
            let n = self.ports.read_tun(&mut st.tun_bufs, &mut st.tun_lens);
            st.io.tun_rx += n as u64;
            let bufs = st.tun_bufs.iter_mut().zip(st.tun_lens.iter()).take(n);
            for (buf, &len) in bufs {
                let packet = &mut buf[..TUN_HEADROOM + len];
                match self.fast_tun(now, packet, &mut st.io) {
                    Fast::ToLan => st.tx.push(packet, &[]),
                    Fast::Done => {}
                    Fast::Engine => {
                        if let Some(frame) = self.tun_packet(now, packet, &mut st.io) {
                            st.tx.push(frame, &[]);
                        }
                    }
                }
            }
            self.ports.flush(&mut st.tx, &mut st.io);
            if n < st.tun_bufs.len() {
                break;
            }
        }
    }

    /// Send the packets the shapers let go now.
    fn send_released(&mut self, now: UnixMillis, st: &mut LoopState) {
        self.engine.release_held(now, &mut st.release.released);
        (self.ports).send_released(&mut st.release, &mut st.tx, &mut st.io, self.batch);
    }

    /// Send the frames the engine originated (ARP, DHCP).
    fn send_outbox(&mut self, st: &mut LoopState) {
        std::mem::swap(&mut st.outbox, self.engine.outbox());
        for chunk in st.outbox.chunks(self.batch) {
            for f in chunk {
                st.tx.push(&ZERO_VNET, f);
            }
            self.ports.flush(&mut st.tx, &mut st.io);
        }
        st.outbox.clear();
    }

    /// Send the engine's events on, and save the tables it says are due,
    /// the sessions where they must be on disk first. A Start or Stop is
    /// spooled before the save that drops or adds its session (a crash in
    /// between resends it, never loses it); an Interim is spooled after the
    /// save of the counters it carries, so the Stop sent after a crash
    /// never counts less than an Interim did.
    ///
    /// With workers, the fast paths are brought in line with the sessions
    /// first, so an ended session's last octets counted by a worker are in
    /// its Stop.
    fn publish(&mut self, now: UnixMillis, st: &mut LoopState) {
        let (mut interims, mut others) = (Vec::new(), Vec::new());
        while let Some(e) = self.engine.poll_event() {
            match e {
                Event::InterimUpdate(_) => interims.push(e),
                _ => others.push(e),
            }
        }
        self.sync_workers(now, st, &mut others);
        self.sync_kernel(now, &mut others);
        if !others.is_empty() {
            self.notices.push(Notice::Events(others));
        }
        while let Some(save) = self.engine.poll_save(now) {
            let notice = match save {
                Save::Sessions(d) => {
                    let records = self.engine.session_records(now, false);
                    let saved =
                        SavedSessions::new(records, now, None).with_clock_offset(clock_step_ms());
                    Notice::Sessions(saved, d)
                }
                Save::Leases => {
                    if let Some(v6) = self.engine.lease6_records() {
                        self.notices.push(Notice::Leases6(v6));
                    }
                    Notice::Leases(self.engine.lease_records())
                }
            };
            self.notices.push(notice);
        }
        if !interims.is_empty() {
            self.notices.push(Notice::Events(interims));
        }
    }

    /// The last save. With `stop_on_shutdown` the Stops are spooled (events
    /// first) and only then are the sessions saved as stopped: a crash in
    /// between leaves them unstopped, so the next start sends the Stops
    /// rather than losing them. Without it, the sessions are saved with the
    /// stop time for the next start to resume. Returns how many were kept.
    fn shutdown(&mut self, now: UnixMillis) -> usize {
        // The workers' last counts first: the sessions are still open.
        self.stop_workers();
        self.stop_kernel(now);
        let stop = self.stop_on_shutdown;
        let records = self.engine.session_records(now, stop);
        let kept = if stop { 0 } else { records.len() };
        self.engine.shutdown(now, stop);
        self.send_final_frames();
        self.notices.push(Notice::Events(self.engine.take_events()));
        let saved = SavedSessions::new(records, now, Some(now)).with_clock_offset(clock_step_ms());
        self.notices.push(Notice::Sessions(saved, Durability::Sync));
        let _ = self
            .notices
            .send(Notice::Leases(self.engine.lease_records()));
        if let Some(v6) = self.engine.lease6_records() {
            self.notices.push(Notice::Leases6(v6));
        }
        kept
    }

    /// What the engine queued as it stopped (the final router
    /// advertisement with IPv6 on), sent before the LAN socket closes.
    fn send_final_frames(&mut self) {
        let frames = std::mem::take(self.engine.outbox());
        let mut tx = SendBatch::with_capacity(frames.len().max(1));
        for f in &frames {
            tx.push(&ZERO_VNET, f);
        }
        let mut io = IoStats::default();
        self.ports.flush(&mut tx, &mut io);
    }

    /// One LAN frame: `[vnet][eth][ip]`.
    pub(super) fn lan_frame(
        &mut self,
        now: UnixMillis,
        frame: &mut [u8],
        tx: &mut SendBatch,
        io: &mut IoStats,
    ) {
        let Some(vnet) = VnetHdr::parse(frame) else {
            return;
        };
        IoStats::offloads(&vnet, &mut io.lan_rx_gso, &mut io.lan_rx_partial_csum);
        match self.engine.from_lan(now, &vnet, &mut frame[VNET_HDR_LEN..]) {
            LanAction::ToTun => self.ports.to_tun(frame, &vnet, io),
            LanAction::Hairpin(dst) => {
                let ethertype = ethertype_of(&frame[VNET_HDR_LEN + ETH_HLEN..]);
                EthHeader {
                    dst,
                    src: self.ports.gateway_mac,
                    ethertype,
                }
                .write(&mut frame[VNET_HDR_LEN..]);
                if tx.is_full() {
                    self.ports.flush(tx, io);
                }
                tx.push(frame, &[]);
            }
            LanAction::Consumed | LanAction::Held | LanAction::Drop(_) => {}
        }
    }

    /// One TUN packet at `buf[TUN_HEADROOM..]` (`[vnet][ip]`); returns the
    /// LAN frame (`[vnet][eth][ip]`, built in place) to send, if any.
    pub(super) fn tun_packet<'a>(
        &mut self,
        now: UnixMillis,
        buf: &'a mut [u8],
        io: &mut IoStats,
    ) -> Option<&'a [u8]> {
        let vnet = VnetHdr::parse(&buf[TUN_HEADROOM..])?;
        IoStats::offloads(&vnet, &mut io.tun_rx_gso, &mut io.tun_rx_partial_csum);
        let ip_start = TUN_HEADROOM + VNET_HDR_LEN;
        match self.engine.from_tun(now, &vnet, &mut buf[ip_start..]) {
            TunAction::ToLan(dst) => {
                self.ports.frame_for_lan(buf, &vnet, dst);
                Some(buf)
            }
            TunAction::Held | TunAction::Drop(_) => None,
        }
    }

    fn command(&mut self, cmd: Command, now: UnixMillis, io: &IoStats) {
        match cmd {
            Command::Authorize { mac, auth, reply } => {
                let r = self
                    .engine
                    .authorize(mac, auth, now)
                    .map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Command::Logout { mac, reason, reply } => {
                let r = self
                    .engine
                    .logout(mac, reason, now)
                    .map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Command::ClientByIp { ip, reply } => {
                let _ = reply.send(self.engine.sessions().by_ip(ip).cloned());
            }
            Command::ClientByIpv6 { ip, reply } => {
                let _ = reply.send(self.engine.client_by_ipv6(ip).cloned());
            }
            Command::SetLimits { mac, limits, reply } => {
                let r = self
                    .engine
                    .set_limits(mac, limits, now)
                    .map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Command::FindSessions { criteria, reply } => {
                let _ = reply.send(self.engine.find_sessions(&criteria));
            }
            Command::SetWalledGardenHosts(ips) => self.engine.set_walled_garden_hosts(ips),
            Command::Operator(op) => op.run(&mut self.engine, now),
            Command::SetLiveSettings {
                live,
                stop_on_shutdown,
            } => {
                self.engine.set_live_settings(live);
                self.stop_on_shutdown = stop_on_shutdown;
            }
            Command::Status { reply } => {
                let _ = reply.send(Status {
                    snapshot: self.engine.snapshot(now),
                    io: self.io_total(io),
                    workers: WorkersStatus {
                        fast_path: self.fast_path_load().kind,
                        fast_path_sessions: self.fast_path_load().sessions,
                        threads: self.loads(io),
                    },
                });
            }
            Command::Metrics { reply } => {
                let _ = reply.send(DataplaneMetrics {
                    engine: self.engine.metrics(),
                    workers: self.loads(io),
                    fast_path: self.fast_path_load(),
                });
            }
            Command::Shutdown => unreachable!("handled by the loop"),
        }
    }
}
