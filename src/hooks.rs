//! Runs the operator's scripts (`[hooks]`): `conup`/`condown` for sessions,
//! `ipup`/`ipdown` for the TUN device, with CoovaChilli's environment
//! ([`hook_env`](crate::aaa::hook_env)).
//!
//! Nothing waits for a script: session events are put in a bounded queue
//! (the notice thread never blocks), a dispatcher task starts at most
//! `max_running` at once, and what does not fit in `max_queued` is dropped
//! with a warning and counted, so a flood of logins cannot fork-bomb the
//! router. Each script runs in its own process group with stdin from
//! /dev/null and a clean environment (PATH and the hook's variables only);
//! its output lines and exit status are logged (info when it succeeds, warn
//! when it fails); at `timeout` the whole group is killed and that is
//! reported. A script missing at run time is a warning, never fatal.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use tokio::sync::Notify;
use tokio::task::JoinSet;

pub use crate::aaa::hook_env::{GatewayInfo, HookEnv, HookKind};
use crate::config::HooksConfig;
use crate::dataplane::Event;
use crate::io::queue::Queue;

/// PATH given to scripts (the environment is otherwise cleared).
const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Output lines of one run that reach the log; the rest are counted.
const MAX_LOGGED_LINES: usize = 64;
/// How long a killed script's waiter may take to reap it.
const REAP_WAIT: Duration = Duration::from_secs(60);
/// Longer output lines are cut into pieces of this many bytes.
const MAX_LINE: u64 = 512;

/// One script to run.
struct Job {
    kind: HookKind,
    env: HookEnv,
    args: Vec<OsString>,
}

struct Shared {
    settings: Mutex<HooksConfig>,
    gateway: Mutex<GatewayInfo>,
    queue: Mutex<VecDeque<Job>>,
    wake: Notify,
    running: AtomicUsize,
    dropped: AtomicUsize,
}

/// The hook runner; cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    shared: Arc<Shared>,
}

impl Hooks {
    /// Starts the dispatcher on `rt`.
    pub fn start(rt: &tokio::runtime::Handle, cfg: HooksConfig, gateway: GatewayInfo) -> Hooks {
        let shared = Arc::new(Shared {
            settings: Mutex::new(cfg),
            gateway: Mutex::new(gateway),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            running: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        });
        rt.spawn(dispatch(shared.clone()));
        Hooks { shared }
    }

    /// Replaces the settings (reload): the scripts, the time limit and the
    /// bounds apply to every run started from now on.
    pub fn update(&self, cfg: HooksConfig) {
        *lock(&self.shared.settings) = cfg;
        self.shared.wake.notify_one();
    }

    /// Replaces what scripts are told about the gateway (reload of NAS
    /// settings).
    pub fn set_gateway(&self, gateway: GatewayInfo) {
        *lock(&self.shared.gateway) = gateway;
    }

    /// Scripts dropped because the queue was full, since start (a usize
    /// counter: 32-bit MIPS has no 64-bit atomics).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed) as u64
    }

    /// Queues `conup`/`condown` for a session event (never blocks).
    pub fn session_event(&self, ev: &Event) {
        let made = crate::aaa::hook_env::session_env(&lock(&self.shared.gateway), ev);
        if let Some((kind, env)) = made {
            self.enqueue(Job {
                kind,
                env,
                args: Vec::new(),
            });
        }
    }

    /// Queues `ipup` (the TUN device is up).
    pub fn ipup(&self) {
        let job = self.device_job(HookKind::IpUp);
        self.enqueue(job);
    }

    /// Runs `ipdown` now and waits for it (at most its time limit).
    pub async fn ipdown(&self) {
        let job = self.device_job(HookKind::IpDown);
        let settings = lock(&self.shared.settings).clone();
        if script_of(&settings, job.kind).is_some() {
            run(job, &settings).await;
        }
    }

    /// Waits until no script is queued or running, at most `wait`.
    pub async fn drain(&self, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let idle = lock(&self.shared.queue).is_empty()
                && self.shared.running.load(Ordering::SeqCst) == 0;
            if idle {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn device_job(&self, kind: HookKind) -> Job {
        let g = lock(&self.shared.gateway);
        Job {
            kind,
            env: crate::aaa::hook_env::device_env(&g),
            // CoovaChilli passes the device as $1 to ipup/ipdown.
            args: vec![OsString::from(g.dev.clone())],
        }
    }

    fn enqueue(&self, job: Job) {
        let settings = lock(&self.shared.settings);
        if script_of(&settings, job.kind).is_none() {
            return;
        }
        let mut queue = lock(&self.shared.queue);
        if queue.len() >= settings.max_queued {
            drop(queue);
            let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                hook = job.kind.name(),
                max_queued = settings.max_queued,
                dropped_total = dropped,
                "hook queue full: script not run"
            );
            return;
        }
        queue.push_back(job);
        drop(queue);
        self.shared.wake.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn script_of(cfg: &HooksConfig, kind: HookKind) -> Option<&PathBuf> {
    match kind {
        HookKind::ConUp => cfg.conup.as_ref(),
        HookKind::ConDown => cfg.condown.as_ref(),
        HookKind::IpUp => cfg.ipup.as_ref(),
        HookKind::IpDown => cfg.ipdown.as_ref(),
    }
}

/// The next queued job, counted as running before the queue's lock is
/// let go: `drain` (which reads both under that lock) never sees a job
/// that is in neither.
fn take_job(shared: &Shared) -> Option<Job> {
    let mut queue = lock(&shared.queue);
    let job = queue.pop_front()?;
    shared.running.fetch_add(1, Ordering::SeqCst);
    Some(job)
}

/// Starts queued jobs while fewer than `max_running` run.
async fn dispatch(shared: Arc<Shared>) {
    let mut set = JoinSet::new();
    loop {
        while set.try_join_next().is_some() {}
        let settings = lock(&shared.settings).clone();
        let job = (set.len() < settings.max_running)
            .then(|| take_job(&shared))
            .flatten();
        match job {
            Some(job) => {
                let shared = shared.clone();
                set.spawn(async move {
                    run(job, &settings).await;
                    shared.running.fetch_sub(1, Ordering::SeqCst);
                });
            }
            None => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    Some(_) = set.join_next(), if !set.is_empty() => {}
                }
            }
        }
    }
}

/// Runs one script to its end or its time limit. The std process API runs
/// on a blocking thread: tokio's `process` feature (a SIGCHLD reaper and
/// async pipes) cost more on a router binary than the few threads a run
/// takes here, and scripts are rare.
async fn run(job: Job, settings: &HooksConfig) {
    let settings = settings.clone();
    let _ = tokio::task::spawn_blocking(move || run_blocking(job, &settings)).await;
}

/// What the helper threads of one run report: a pipe reached its end
/// (`None`) or the script exited.
type Done = Option<std::io::Result<ExitStatus>>;

fn run_blocking(job: Job, settings: &HooksConfig) {
    let hook = job.kind.name();
    let Some(script) = script_of(settings, job.kind).cloned() else {
        return;
    };
    let mut cmd = Command::new(&script);
    cmd.args(&job.args)
        .env_clear()
        .env("PATH", SCRIPT_PATH)
        .envs(job.env.into_iter().map(|(k, v)| (k, OsString::from_vec(v))))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(hook, script = %script.display(), "hook not run: {e}");
            return;
        }
    };
    let pid = child.id();
    let rx = Arc::new(Queue::<Done>::default());
    let tx = rx.clone();
    let helpers = [
        read_lines(hook, "stdout", child.stdout.take(), tx.clone()),
        read_lines(hook, "stderr", child.stderr.take(), tx.clone()),
        helper(move || tx.push(Some(child.wait()))),
    ];
    let started = helpers.iter().filter(|&&ok| ok).count();
    let limit = Duration::from_secs(u64::from(settings.timeout));
    let finished = wait_all(&rx, started, limit);
    if finished.is_none() {
        // SAFETY: kill(2) on the script's own process group.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        // The waiter reaps the script; output readers of a child that left
        // the group may linger and end when it does.
        let reaped = Instant::now() + REAP_WAIT;
        while let Some(done) = rx.pop_until(reaped) {
            if done.is_some() {
                break;
            }
        }
    }
    report(hook, &script, settings.timeout, finished);
}

/// Waits until all `count` helpers of a run are done, at most `limit`:
/// the script's exit status, or `None` at the limit.
fn wait_all(
    rx: &Queue<Done>,
    count: usize,
    limit: Duration,
) -> Option<std::io::Result<ExitStatus>> {
    let deadline = Instant::now() + limit;
    let mut status = None;
    for _ in 0..count {
        match rx.pop_until(deadline) {
            Some(Some(s)) => status = Some(s),
            Some(None) => {}
            None => return None,
        }
    }
    status
}

/// Starts a small thread for one run (pipe reader or waiter); false when
/// the system refused it (the run then ends at its time limit).
fn helper(f: impl FnOnce() + Send + 'static) -> bool {
    let spawned = std::thread::Builder::new()
        .name("lassi-hook".into())
        .stack_size(128 * 1024)
        .spawn(f);
    if let Err(e) = &spawned {
        tracing::warn!("hook helper thread not started: {e}");
    }
    spawned.is_ok()
}

/// Logs how a run ended (`None`: killed at its time limit).
fn report(
    hook: &str,
    script: &std::path::Path,
    timeout_s: u32,
    finished: Option<std::io::Result<ExitStatus>>,
) {
    let script = script.display();
    match finished {
        Some(Ok(status)) if status.success() => {
            tracing::info!(hook, script = %script, "hook finished: exit status 0")
        }
        Some(Ok(status)) => tracing::warn!(hook, script = %script, "hook failed: {status}"),
        Some(Err(e)) => tracing::warn!(hook, script = %script, "hook failed: {e}"),
        None => tracing::warn!(
            hook,
            script = %script,
            timeout_s,
            "hook killed: still running at its time limit"
        ),
    }
}

/// Logs a script's output lines on a helper thread (at most
/// [`MAX_LOGGED_LINES`]; the rest is read and counted so the script never
/// blocks on a full pipe), then reports the pipe's end.
fn read_lines(
    hook: &'static str,
    stream: &'static str,
    pipe: Option<impl Read + Send + 'static>,
    done: Arc<Queue<Done>>,
) -> bool {
    helper(move || {
        if let Some(pipe) = pipe {
            log_lines(hook, stream, pipe);
        }
        done.push(None);
    })
}

fn log_lines(hook: &str, stream: &str, pipe: impl Read) {
    let mut reader = BufReader::new(pipe);
    let (mut logged, mut held_back) = (0usize, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if logged < MAX_LOGGED_LINES {
            logged += 1;
            tracing::info!(hook, stream, "hook output: {}", printable(&buf));
        } else {
            held_back += 1;
        }
    }
    if held_back > 0 {
        tracing::info!(
            hook,
            stream,
            lines = held_back,
            "hook output beyond the log budget not logged"
        );
    }
}

/// An output line as one log line: the line end taken off, other control
/// characters (a script may echo what a guest typed) escaped.
fn printable(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Net, MacAddr};
    use std::net::Ipv4Addr;
    use std::os::unix::fs::PermissionsExt;

    fn gateway() -> GatewayInfo {
        GatewayInfo {
            dev: "lassi0".into(),
            lan_interface: "lan0".into(),
            addr: Ipv4Addr::new(10, 1, 0, 1),
            network: Ipv4Net {
                addr: Ipv4Addr::new(10, 1, 0, 0),
                prefix: 24,
            },
            mtu: 1500,
            uam_port: 3990,
            uam_server: None,
            nas: Default::default(),
            swap_octets: false,
        }
    }

    fn started(n: u8) -> Event {
        Event::SessionStarted(crate::session::SessionReport {
            ipv6: vec![],
            mac: MacAddr([2, 0, 0, 0, 0, n]),
            ip: Ipv4Addr::new(10, 1, 0, n),
            session_id: format!("s{n}"),
            user: Some(format!("u{n}")),
            started: 1000,
            at: 1000,
            counters: Default::default(),
            limits: Default::default(),
            last_active: 1000,
            class: Vec::new(),
            cui: None,
        })
    }

    fn script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lassi-hooks-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn output_lines_are_one_log_line_each() {
        assert_eq!(printable(b"ok\n"), "ok");
        assert_eq!(printable(b"a\rb\x1b[2Jc\r\n"), "a\\rb\\u{1b}[2Jc");
        assert_eq!(printable(b"\xff\tz"), "\u{fffd}\tz");
    }

    /// A flood of logins: at most max_running scripts at once, max_queued
    /// waiting, the rest dropped and counted.
    #[test]
    fn queue_is_bounded_and_concurrency_limited() {
        let dir = tempdir("bound");
        // Each run records itself, then waits for the test to release it.
        let gate = dir.join("gate");
        let body = format!(
            "echo $ACCT_SESSION_ID >> {d}/ran\nwhile [ ! -e {g} ]; do sleep 0.02; done",
            d = dir.display(),
            g = gate.display()
        );
        let cfg = HooksConfig {
            conup: Some(script(&dir, "up", &body)),
            max_running: 2,
            max_queued: 3,
            timeout: 20,
            ..HooksConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let hooks = Hooks::start(rt.handle(), cfg, gateway());
        // The dispatcher has not run yet: 3 queue, 7 are dropped.
        for n in 1..=10 {
            hooks.session_event(&started(n));
        }
        assert_eq!(hooks.dropped(), 7);
        let ran = dir.join("ran");
        rt.block_on(async {
            let lines = || {
                std::fs::read_to_string(&ran)
                    .unwrap_or_default()
                    .lines()
                    .count()
            };
            let t = tokio::time::Instant::now();
            while lines() < 2 && t.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(lines(), 2, "only max_running scripts start");
            assert_eq!(hooks.shared.running.load(Ordering::SeqCst), 2);
            std::fs::write(&gate, "").unwrap();
            assert!(hooks.drain(Duration::from_secs(5)).await);
            assert_eq!(lines(), 3);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A hung script is killed with its children at the time limit; a
    /// missing one is skipped.
    #[test]
    fn hung_scripts_are_killed_with_their_group() {
        let dir = tempdir("hung");
        let pidfile = dir.join("child.pid");
        let body = format!("sleep 300 &\necho $! > {}\nwait", pidfile.display());
        let cfg = HooksConfig {
            conup: Some(script(&dir, "hang", &body)),
            condown: Some(dir.join("missing")),
            timeout: 1,
            ..HooksConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let hooks = Hooks::start(rt.handle(), cfg, gateway());
        hooks.session_event(&started(1));
        let t = std::time::Instant::now();
        rt.block_on(async { assert!(hooks.drain(Duration::from_secs(5)).await) });
        assert!(t.elapsed() >= Duration::from_millis(900));
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep went with the group (give the kernel a moment).
        std::thread::sleep(Duration::from_millis(100));
        let alive = std::fs::read_to_string(format!("/proc/{child}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "the script's child {child} survived");
        let ended = Event::SessionEnded(crate::session::EndedSession {
            ipv6: vec![],
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            ip: Ipv4Addr::new(10, 1, 0, 1),
            session_id: "s1".into(),
            user: None,
            started: 0,
            ended: 1000,
            counters: Default::default(),
            limits: Default::default(),
            last_active: 0,
            reason: crate::session::EndReason::UserRequest,
            class: Vec::new(),
            cui: None,
        });
        hooks.session_event(&ended);
        rt.block_on(async { assert!(hooks.drain(Duration::from_secs(5)).await) });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
