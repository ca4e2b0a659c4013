//! Network namespace and process guards, and command helpers that report
//! failures with the command line, exit status, stderr and stdout.

use super::{IoContext, LabError, LabResult};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `lassi-TAG-PID-N`.
///
/// Used for namespace names and temp directories so that tests in parallel
/// (threads or processes) never collide, and so that a test can find its own
/// leftovers in `ip netns list`.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("lassi-{tag}-{}-{n}", std::process::id())
}

/// Default bound on any command the lab runs to completion.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything it wrote to stderr (lossy UTF-8).
    pub stderr: String,
}

impl CmdOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or -1 when a signal ended it.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Turns a non-zero exit into an error that shows everything captured.
    pub fn check(self) -> LabResult<CmdOutput> {
        if self.success() {
            Ok(self)
        } else {
            Err(LabError(self.describe_failure()))
        }
    }

    fn describe_failure(&self) -> String {
        let mut s = format!("command failed ({}): {}", self.status, self.command);
        if !self.stderr.trim().is_empty() {
            s.push_str("\n--- stderr ---\n");
            s.push_str(self.stderr.trim_end());
        }
        if !self.stdout.trim().is_empty() {
            s.push_str("\n--- stdout ---\n");
            s.push_str(self.stdout.trim_end());
        }
        s
    }
}

/// Options for running a command in a namespace.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// `(source, target)` bind mounts made in the command's private mount
    /// namespace (the one `ip netns exec` creates) before it starts. Nothing
    /// leaks to the host's mount table.
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Kill the command (SIGKILL) if it runs longer than this.
    pub timeout: Duration,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            binds: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            env: Vec::new(),
        }
    }
}

fn display_argv<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.as_ref().to_string_lossy();
            if s.is_empty() || s.contains([' ', '\'', '"', '$', '\n']) {
                format!("'{}'", s.replace('\'', "'\\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` on the host (no namespace) with a timeout; returns what it
/// printed whatever its exit status.
pub fn run_command<S: AsRef<OsStr>>(argv: &[S], timeout: Duration) -> LabResult<CmdOutput> {
    run_argv(argv, &[], timeout)
}

/// Runs `argv` on the host and fails unless it exits 0.
pub fn check_command<S: AsRef<OsStr>>(argv: &[S]) -> LabResult<CmdOutput> {
    run_command(argv, DEFAULT_TIMEOUT)?.check()
}

fn run_argv<S: AsRef<OsStr>>(
    argv: &[S],
    env: &[(String, String)],
    timeout: Duration,
) -> LabResult<CmdOutput> {
    let command = display_argv(argv);
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| LabError::new("empty command line"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().ctx(|| format!("cannot start `{command}`"))?;
    // Reader threads, so a chatty command never blocks on a full pipe. If a
    // grandchild keeps a pipe open after a timeout we detach them rather
    // than hang.
    let out = child.stdout.take().map(reader_thread);
    let err = child.stderr.take().map(reader_thread);
    let status = match wait_with_timeout(&mut child, timeout) {
        Some(st) => st,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError(format!(
                "command timed out after {:?} and was killed: {command}",
                timeout
            )));
        }
    };
    let stdout = out
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    Ok(CmdOutput {
        command,
        status,
        stdout,
        stderr,
    })
}

fn reader_thread<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Polls `child` until it exits or `timeout` passes (then `None`).
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(500);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// A network namespace that is deleted, with every process still inside it,
/// when the guard drops.
#[derive(Debug)]
pub struct Netns {
    name: String,
    resolv_conf: Option<PathBuf>,
    owned: bool,
}

impl Netns {
    /// Creates a namespace named [`unique_name`]`(tag)`, with `lo` up.
    pub fn create(tag: &str) -> LabResult<Netns> {
        Self::create_named(&unique_name(tag))
    }

    /// Creates a namespace with exactly this name, with `lo` up. Fails if it
    /// exists already (it is then not ours to delete).
    pub fn create_named(name: &str) -> LabResult<Netns> {
        check_command(&["ip", "netns", "add", name])
            .map_err(|e| e.context(format!("creating namespace {name}")))?;
        let ns = Netns {
            name: name.to_string(),
            resolv_conf: None,
            owned: true,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A handle on an existing namespace that this guard does NOT own:
    /// dropping it deletes nothing.
    pub fn attach(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
            resolv_conf: None,
            owned: false,
        }
    }

    /// A non-owning handle on this namespace (same name and resolv.conf),
    /// for helpers that must outlive a borrow of the owner.
    pub fn view(&self) -> Netns {
        Netns {
            name: self.name.clone(),
            resolv_conf: self.resolv_conf.clone(),
            owned: false,
        }
    }

    /// True if dropping this guard deletes the namespace.
    pub fn is_owner(&self) -> bool {
        self.owned
    }

    /// The namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes every later `exec`/`run`/`spawn` in this namespace see `path`
    /// as `/etc/resolv.conf` (a bind mount in the command's private mount
    /// namespace), so no program run here ever reads or writes the host's.
    pub fn set_resolv_conf(&mut self, path: impl Into<PathBuf>) {
        self.resolv_conf = Some(path.into());
    }

    /// The private resolv.conf set with [`Netns::set_resolv_conf`].
    pub fn resolv_conf(&self) -> Option<&Path> {
        self.resolv_conf.as_deref()
    }

    /// `ip -n NAME ARGS…`, failing with stderr unless it exits 0.
    pub fn ip<S: AsRef<OsStr>>(&self, args: &[S]) -> LabResult<CmdOutput> {
        let mut argv: Vec<OsString> = vec!["ip".into(), "-n".into(), self.name.clone().into()];
        argv.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        check_command(&argv)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> LabResult<()> {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])?;
        Ok(())
    }

    /// The full `ip netns exec …` command line for `argv`, with the bind
    /// mounts (the private resolv.conf first) done by a `sh` that then
    /// `exec`s the program, so the PID stays the program's.
    pub fn command_line<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        binds: &[(PathBuf, PathBuf)],
    ) -> Vec<OsString> {
        let mut all_binds: Vec<(PathBuf, PathBuf)> = Vec::new();
        if let Some(r) = &self.resolv_conf {
            if Path::new("/etc/resolv.conf").exists() {
                all_binds.push((r.clone(), PathBuf::from("/etc/resolv.conf")));
            }
        }
        all_binds.extend(binds.iter().cloned());
        let mut out: Vec<OsString> = vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name.clone().into(),
        ];
        if !all_binds.is_empty() {
            let mut script = String::from("set -e; ");
            for _ in &all_binds {
                script.push_str("mount --bind \"$1\" \"$2\"; shift 2; ");
            }
            script.push_str("exec \"$@\"");
            out.extend([
                "sh".into(),
                "-c".into(),
                script.into(),
                "lassi-lab-sh".into(),
            ]);
            for (src, dst) in &all_binds {
                out.push(src.clone().into_os_string());
                out.push(dst.clone().into_os_string());
            }
        }
        out.extend(argv.iter().map(|a| a.as_ref().to_os_string()));
        out
    }

    /// Runs `argv` inside the namespace and fails unless it exits 0.
    pub fn exec<S: AsRef<OsStr>>(&self, argv: &[S]) -> LabResult<CmdOutput> {
        self.run_with(argv, &ExecOptions::default())?.check()
    }

    /// Runs `argv` inside the namespace; returns its output whatever the
    /// exit status (errors only if it cannot start or times out).
    pub fn run<S: AsRef<OsStr>>(&self, argv: &[S]) -> LabResult<CmdOutput> {
        self.run_with(argv, &ExecOptions::default())
    }

    /// Like [`Netns::run`], with bind mounts, a timeout and environment.
    pub fn run_with<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        opts: &ExecOptions,
    ) -> LabResult<CmdOutput> {
        let full = self.command_line(argv, &opts.binds);
        let mut out = run_argv(&full, &opts.env, opts.timeout)?;
        // Messages show the program, not the wrapper.
        out.command = format!("[netns {}] {}", self.name, display_argv(argv));
        Ok(out)
    }

    /// `sh -c SCRIPT` inside the namespace, failing unless it exits 0.
    pub fn sh(&self, script: &str) -> LabResult<CmdOutput> {
        self.exec(&["sh", "-c", script])
    }

    /// Starts `argv` in the background inside the namespace, stdout and
    /// stderr appended to `log`. The returned guard stops it on drop.
    pub fn spawn<S: AsRef<OsStr>>(
        &self,
        label: &str,
        argv: &[S],
        log: &Path,
        opts: &ExecOptions,
    ) -> LabResult<Proc> {
        let full = self.command_line(argv, &opts.binds);
        let mut cmd = Command::new(&full[0]);
        cmd.args(&full[1..]);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        Proc::spawn_command(
            label,
            cmd,
            log,
            &format!("[netns {}] {}", self.name, display_argv(argv)),
        )
    }

    /// PIDs of every process whose network namespace is this one.
    pub fn pids(&self) -> Vec<i32> {
        match run_command(
            &["ip", "netns", "pids", &self.name],
            Duration::from_secs(10),
        ) {
            Ok(out) => out
                .stdout
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // Anything still running in here was started by us (the namespace is
        // ours): forked daemons such as dhclient, or a Proc whose guard has
        // not dropped yet. Stop them by PID, then delete the namespace.
        let pids = self.pids();
        for &p in &pids {
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !pids.is_empty() && Instant::now() < deadline {
            let left = self.pids();
            if left.is_empty() || left.iter().all(|p| is_zombie(*p)) {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        for p in self.pids() {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let out = run_command(&["ip", "netns", "del", &self.name], Duration::from_secs(10));
        match out {
            Ok(o) if o.success() => {}
            Ok(o) => eprintln!(
                "lassi lab: could not delete namespace {}: {}",
                self.name,
                o.stderr.trim()
            ),
            Err(e) => eprintln!("lassi lab: could not delete namespace {}: {e}", self.name),
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(true)
}

/// A background process (usually started in a namespace; `ip netns exec`
/// execs, so the PID is the program's) with stdout and stderr in a log file.
///
/// Dropping the guard stops it: SIGTERM, up to 3 s grace, SIGKILL, reap.
#[derive(Debug)]
pub struct Proc {
    label: String,
    command: String,
    child: Child,
    pid: i32,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with stdin from /dev/null and stdout+stderr appended to
    /// `log`. `command` is the line shown in messages.
    pub fn spawn_command(
        label: &str,
        mut cmd: Command,
        log: &Path,
        command: &str,
    ) -> LabResult<Proc> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .ctx(|| format!("opening log file {}", log.display()))?;
        let file2 = file.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
        let child = cmd
            .spawn()
            .ctx(|| format!("cannot start {label} (`{command}`)"))?;
        Ok(Proc {
            label: label.to_string(),
            command: command.to_string(),
            pid: child.id() as i32,
            child,
            log: log.to_path_buf(),
            status: None,
        })
    }

    /// The process ID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The label given at spawn (for messages).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The command line (for messages).
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Path of the log file holding stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process has written so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// The exit status if it has exited (reaping it), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
            }
        }
        self.status
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = wait_with_timeout(&mut self.child, timeout);
        }
        self.status
    }

    /// Sends a signal (e.g. `libc::SIGHUP`) if the process still runs.
    pub fn signal(&mut self, sig: i32) {
        if self.is_running() {
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    /// Stops the process: SIGTERM, up to `grace` to exit, then SIGKILL.
    /// Returns how it ended.
    pub fn stop_with_grace(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.try_wait().is_some() {
            return self.status;
        }
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        if self.wait_timeout(grace).is_none() {
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.status = self.child.wait().ok();
        }
        self.status
    }

    /// [`Proc::stop_with_grace`] with 3 s of grace.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_with_grace(Duration::from_secs(3))
    }

    /// A failure message with the last lines of the log.
    pub fn describe(&self, what: &str) -> String {
        format!(
            "{what}: {} (pid {}, `{}`)\n--- last lines of {} ---\n{}",
            self.label,
            self.pid,
            self.command,
            self.log.display(),
            tail(&self.log(), 40)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads a file as lossy UTF-8; empty if it does not exist.
pub fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `f` every 10–50 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(10);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(nap);
        nap = (nap + Duration::from_millis(10)).min(Duration::from_millis(50));
    }
}
