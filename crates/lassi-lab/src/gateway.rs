//! Running `lassi run` in the gateway namespace and driving it through its
//! CLI (`lassi sessions|authorize|logout --control SOCKET`).

use super::netns::{read_lossy, tail, wait_until, CmdOutput, ExecOptions, Netns, Proc};
use super::topology::{addrs, Lab};
use super::{IoContext, LabError, LabResult};
use lassi::wire::MacAddr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// How long [`Lab::start_lassi`] waits for the control socket.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A `lassi run` in the gateway namespace. Dropping it stops lassi
/// (SIGTERM, grace, SIGKILL) by PID. Its files (config, control socket,
/// state directory, `lassi.log`) live in a directory of the lab.
#[derive(Debug)]
pub struct LassiHandle {
    gw: Netns,
    bin: PathBuf,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    state: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
    starts: u32,
}

impl Lab {
    /// The lassi binary this lab runs (see [`super::LabOptions::lassi_bin`]).
    pub fn lassi_bin(&self) -> PathBuf {
        if let Some(b) = &self.options().lassi_bin {
            return b.clone();
        }
        if let Ok(b) = std::env::var("LASSI_BIN") {
            if !b.is_empty() {
                return PathBuf::from(b);
            }
        }
        if let Ok(exe) = std::env::current_exe() {
            // Tests live in target/<profile>/deps/, the binary in target/<profile>/.
            for dir in exe.ancestors().skip(1).take(2) {
                let cand = dir.join("lassi");
                if cand.is_file() && cand != exe {
                    return cand;
                }
            }
        }
        PathBuf::from("lassi")
    }

    /// The default config the lab gives lassi, for a state/control directory
    /// `dir` (as a TOML table; see [`Lab::start_lassi`]).
    /// The lab's lassi config. `dataplane.workers` is 2 (whatever the
    /// machine's cores, so every run tests the multi-worker path) unless
    /// `LASSI_TEST_WORKERS` says otherwise (`tests/run-all` runs the
    /// forwarding tests again with 1), or `LASSI_TEST_FAST_PATH=kernel`
    /// selects the kernel fast path (`tests/run-all` runs them again so).
    pub fn default_lassi_config(dir: &Path) -> toml::Table {
        let text = format!(
            r#"[lan]
interface = "lan0"
network = "{net}/{prefix}"
gateway = "{gw}"
dns = ["{dns}"]
lease_time = 3600

[uplink]
tun_name = "lassi0"
wan_interface = "wan0"
nat = false

[control]
socket = "{sock}"

[state]
dir = "{state}"

[dataplane]
{dataplane}
"#,
            net = addrs::LAN_NETWORK,
            prefix = addrs::LAN_PREFIX,
            gw = addrs::GATEWAY,
            dns = addrs::DNS,
            sock = toml_escape(&dir.join("control.sock").display().to_string()),
            state = toml_escape(&dir.join("state").display().to_string()),
            dataplane = lab_dataplane(),
        );
        text.parse().expect("built-in lassi config parses")
    }

    /// Starts `argv`, a lassi command line as a service manager would run
    /// it (a systemd unit's `ExecStart=`, a procd instance's command), in
    /// the gateway namespace with its output in `log`, and waits until its
    /// control socket `socket` exists while it keeps running.
    pub fn spawn_lassi_command(
        &self,
        argv: &[String],
        log: &Path,
        socket: &Path,
    ) -> LabResult<Proc> {
        let mut proc = self
            .gw()
            .spawn("lassi", argv, log, &ExecOptions::default())?;
        let ready = wait_until(READY_TIMEOUT, || {
            if !proc.is_running() {
                return Some(false);
            }
            socket.exists().then_some(true)
        });
        match ready {
            Some(true) => Ok(proc),
            _ => Err(LabError::new(
                proc.describe(&format!("lassi did not come up from {argv:?}")),
            )),
        }
    }

    /// Writes a config into a fresh directory of the lab, starts
    /// `lassi run --config FILE` in the gateway namespace and waits for its
    /// control socket.
    ///
    /// `config_overrides` is a TOML fragment deep-merged over the default
    /// config (tables merge key by key; other values replace), e.g.
    /// `"[lan]\nlease_time = 120\n"`. Pass `""` for the defaults.
    pub fn start_lassi(&self, config_overrides: &str) -> LabResult<LassiHandle> {
        let n = self.next_seq();
        let dir = self.dir().join(format!("lassi-{n}"));
        std::fs::create_dir_all(dir.join("state")).ctx(|| format!("creating {}", dir.display()))?;
        let mut config = Self::default_lassi_config(&dir);
        let over: toml::Table = config_overrides
            .parse()
            .map_err(|e| LabError::new(format!("config_overrides is not valid TOML: {e}")))?;
        merge_toml(&mut config, over);
        let socket = config
            .get("control")
            .and_then(|c| c.get("socket"))
            .and_then(|s| s.as_str())
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("control.sock"));
        let state = config
            .get("state")
            .and_then(|c| c.get("dir"))
            .and_then(|s| s.as_str())
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("state"));
        let config_path = dir.join("lassi.toml");
        std::fs::write(&config_path, emit_toml(&config))?;
        let mut h = LassiHandle {
            gw: self.gw().view(),
            bin: self.lassi_bin(),
            log: dir.join("lassi.log"),
            dir,
            config: config_path,
            socket,
            state,
            proc: None,
            starts: 0,
        };
        h.start()?;
        Ok(h)
    }
}

impl LassiHandle {
    fn start(&mut self) -> LabResult<()> {
        let _ = std::fs::remove_file(&self.socket);
        self.starts += 1;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
        {
            let _ = writeln!(
                f,
                "===== lab: start #{} of {} =====",
                self.starts,
                self.bin.display()
            );
        }
        let argv = [
            self.bin.display().to_string(),
            "run".into(),
            "--config".into(),
            self.config.display().to_string(),
        ];
        let proc = self
            .gw
            .spawn("lassi", &argv, &self.log, &ExecOptions::default())?;
        self.proc = Some(proc);
        self.wait_ready(READY_TIMEOUT)
    }

    /// Waits until the control socket exists (while lassi keeps running).
    pub fn wait_ready(&mut self, timeout: Duration) -> LabResult<()> {
        let socket = self.socket.clone();
        let proc = self
            .proc
            .as_mut()
            .ok_or_else(|| LabError::new("lassi is not running"))?;
        let r = wait_until(timeout, || {
            if !proc.is_running() {
                return Some(false);
            }
            socket.exists().then_some(true)
        });
        match r {
            Some(true) => Ok(()),
            Some(false) => Err(LabError::new(proc.describe("lassi exited during start-up"))),
            None => Err(LabError::new(proc.describe(&format!(
                "lassi's control socket {} did not appear within {:?}",
                socket.display(),
                timeout
            )))),
        }
    }

    /// Runs `lassi ARGS… --control SOCKET` in the gateway namespace and
    /// fails (with its output) unless it exits 0.
    pub fn ctl(&self, args: &[&str]) -> LabResult<CmdOutput> {
        self.ctl_unchecked(args)?.check()
    }

    /// Like [`LassiHandle::ctl`] but returns the output whatever the exit
    /// status.
    pub fn ctl_unchecked(&self, args: &[&str]) -> LabResult<CmdOutput> {
        let mut argv: Vec<String> = vec![self.bin.display().to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv.push("--control".into());
        argv.push(self.socket.display().to_string());
        self.gw.run_with(
            &argv,
            &ExecOptions {
                timeout: Duration::from_secs(20),
                ..ExecOptions::default()
            },
        )
    }

    /// `lassi sessions --json`, parsed.
    pub fn sessions_json(&self) -> LabResult<serde_json::Value> {
        let out = self.ctl(&["sessions", "--json"])?;
        serde_json::from_str(&out.stdout).map_err(|e| {
            LabError::new(format!(
                "`lassi sessions --json` printed invalid JSON ({e}):\n{}",
                out.stdout
            ))
        })
    }

    /// `lassi sessions` (the human-readable table).
    pub fn sessions_text(&self) -> LabResult<String> {
        Ok(self.ctl(&["sessions"])?.stdout)
    }

    /// `lassi authorize MAC`.
    pub fn authorize(&self, mac: MacAddr) -> LabResult<CmdOutput> {
        self.ctl(&["authorize", &mac.to_string()])
    }

    /// `lassi logout MAC`.
    pub fn logout(&self, mac: MacAddr) -> LabResult<CmdOutput> {
        self.ctl(&["logout", &mac.to_string()])
    }

    /// Everything lassi has logged, across restarts.
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// The last `n` lines of [`LassiHandle::log`].
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }

    /// lassi's PID, while running.
    pub fn pid(&mut self) -> Option<i32> {
        let p = self.proc.as_mut()?;
        p.is_running().then(|| p.pid())
    }

    /// The PID of the lassi process itself, checked: the lab starts it
    /// through `ip netns exec` and a shell, both of which exec, so the
    /// process's `comm` must be the binary's name.
    pub fn lassi_pid(&mut self) -> LabResult<i32> {
        let pid = self
            .pid()
            .ok_or_else(|| LabError::new("lassi is not running"))?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        // comm is the executable's file name, cut to 15 bytes.
        let name = self.bin.file_name().unwrap_or_default().to_string_lossy();
        let want: String = name.chars().take(15).collect();
        if comm.trim() != want {
            return Err(LabError::new(format!(
                "pid {pid} is `{}`, not {name}",
                comm.trim()
            )));
        }
        Ok(pid)
    }

    /// CPU time the lassi process has used so far, every thread together
    /// (utime + stime from `/proc/PID/stat`), in seconds.
    pub fn cpu_seconds(&mut self) -> LabResult<f64> {
        let pid = self.lassi_pid()?;
        crate::rawframes::proc_cpu_seconds(pid).map_err(LabError::new)
    }

    /// `lassi status`, parsed.
    pub fn status(&self) -> LabResult<serde_json::Value> {
        let out = self.ctl(&["status"])?;
        serde_json::from_str(&out.stdout).map_err(|e| {
            LabError::new(format!(
                "`lassi status` printed invalid JSON ({e}):\n{}",
                out.stdout
            ))
        })
    }

    /// Authorizes every MAC in `macs` (each must hold a lease) through the
    /// control socket, `batch` requests pipelined per connection (a
    /// connection takes at most 64 KiB of requests), instead of one
    /// `lassi authorize` process each. Fails on the first refusal.
    pub fn authorize_many(&self, macs: &[MacAddr], batch: usize) -> LabResult<()> {
        use std::io::{BufRead, BufReader};
        use std::os::unix::net::UnixStream;
        for chunk in macs.chunks(batch.clamp(1, 1000)) {
            let s = UnixStream::connect(&self.socket)
                .ctx(|| format!("connecting to {}", self.socket.display()))?;
            s.set_read_timeout(Some(Duration::from_secs(30))).ok();
            let mut w = s.try_clone()?;
            let text: String = chunk
                .iter()
                .map(|m| format!("{{\"cmd\":\"authorize\",\"mac\":\"{m}\"}}\n"))
                .collect();
            // Written by a thread of its own so that neither side's socket
            // buffer can fill while the other waits.
            let writer = std::thread::spawn(move || w.write_all(text.as_bytes()));
            let mut r = BufReader::new(s);
            let mut line = String::new();
            for mac in chunk {
                line.clear();
                r.read_line(&mut line)
                    .ctx(|| format!("reading the reply to authorize {mac}"))?;
                let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
                    LabError::new(format!("authorize {mac}: bad reply ({e}): {line:.200}"))
                })?;
                if v["ok"] != serde_json::Value::Bool(true) {
                    return Err(LabError::new(format!("authorize {mac}: {line:.300}")));
                }
            }
            writer
                .join()
                .map_err(|_| LabError::new("authorize writer thread panicked"))?
                .ctx(|| "writing authorize requests".to_string())?;
        }
        Ok(())
    }

    /// True while lassi runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().map(|p| p.is_running()).unwrap_or(false)
    }

    /// Stops lassi (SIGTERM, 5 s grace, SIGKILL) and returns how it ended.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let st = self
            .proc
            .as_mut()
            .and_then(|p| p.stop_with_grace(Duration::from_secs(5)));
        self.proc = None;
        st
    }

    /// Kills lassi with SIGKILL, as a crash or an out-of-memory kill would:
    /// no shutdown code runs. Its firewall tables and TUN device may remain
    /// until the next start replaces them.
    pub fn crash(&mut self) -> Option<ExitStatus> {
        let p = self.proc.as_mut()?;
        p.signal(libc::SIGKILL);
        let st = p.wait_timeout(Duration::from_secs(5));
        self.proc = None;
        st
    }

    /// Starts lassi again after [`LassiHandle::crash`] or [`LassiHandle::stop`].
    pub fn start_again(&mut self) -> LabResult<()> {
        self.start()
    }

    /// Stops lassi and starts it again with the same config and state
    /// directory (sessions should survive), waiting for the control socket.
    pub fn restart(&mut self) -> LabResult<()> {
        self.stop();
        self.start()
    }

    /// Replaces the config file (a full TOML text) for the next restart.
    pub fn set_config_text(&self, text: &str) -> LabResult<()> {
        std::fs::write(&self.config, text).ctx(|| format!("writing {}", self.config.display()))
    }

    /// The config file lassi was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The config text.
    pub fn config_text(&self) -> String {
        read_lossy(&self.config)
    }

    /// The control socket path.
    pub fn control_socket(&self) -> &Path {
        &self.socket
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The directory holding config, log and (by default) socket and state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The binary being run.
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

impl Drop for LassiHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Deep-merges `over` into `base`: tables merge recursively, anything else
/// replaces.
pub fn merge_toml(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_toml(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Serializes a TOML table (the crate is built without toml's writer):
/// plain keys first, then `[sub.tables]`; arrays of tables come out inline.
pub fn emit_toml(t: &toml::Table) -> String {
    let mut out = String::new();
    emit_table(&mut out, "", t);
    out
}

/// Top-level sections in the order an operator reads them; others follow
/// alphabetically.
const SECTION_ORDER: &[&str] = &["lan", "uplink", "portal", "radius", "control", "state"];

fn emit_table(out: &mut String, prefix: &str, t: &toml::Table) {
    for (k, v) in t {
        if !v.is_table() {
            out.push_str(&format!("{} = {}\n", toml_key(k), toml_value(v)));
        }
    }
    let mut subs: Vec<(&String, &toml::Value)> = t.iter().collect();
    if prefix.is_empty() {
        subs.sort_by_key(|(k, _)| {
            SECTION_ORDER
                .iter()
                .position(|s| s == k)
                .unwrap_or(SECTION_ORDER.len())
        });
    }
    for (k, v) in subs {
        if let toml::Value::Table(sub) = v {
            let name = if prefix.is_empty() {
                toml_key(k)
            } else {
                format!("{prefix}.{}", toml_key(k))
            };
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{name}]\n"));
            emit_table(out, &name, sub);
        }
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("\"{}\"", toml_escape(k))
    }
}

fn toml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                o.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => o.push(c),
        }
    }
    o
}

fn toml_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("\"{}\"", toml_escape(s)),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => {
            if f.is_nan() {
                "nan".into()
            } else if f.is_infinite() {
                if *f > 0.0 {
                    "inf".into()
                } else {
                    "-inf".into()
                }
            } else {
                let s = format!("{f:?}");
                if s.contains(['.', 'e', 'E']) {
                    s
                } else {
                    format!("{s}.0")
                }
            }
        }
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        toml::Value::Table(t) => format!(
            "{{ {} }}",
            t.iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The `[dataplane]` lines for lassi in the lab: the kernel fast path if
/// `LASSI_TEST_FAST_PATH` is `kernel`, else [`lab_workers`] workers.
fn lab_dataplane() -> String {
    if lab_fast_path_is_kernel() {
        "fast_path = \"kernel\"".into()
    } else {
        format!("workers = {}", lab_workers())
    }
}

/// Whether the lab runs lassi with the kernel fast path
/// (`LASSI_TEST_FAST_PATH=kernel`).
pub fn lab_fast_path_is_kernel() -> bool {
    std::env::var("LASSI_TEST_FAST_PATH").is_ok_and(|v| v == "kernel")
}

/// `dataplane.workers` for lassi in the lab: `LASSI_TEST_WORKERS`, else 2.
pub fn lab_workers() -> usize {
    std::env::var("LASSI_TEST_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_merge_and_roundtrip() {
        let mut base = Lab::default_lassi_config(Path::new("/tmp/x \"y\""));
        let over: toml::Table = "[lan]\nlease_time = 120\n[radius]\nservers = [{ host = \"127.0.0.1\", secret = \"s\" }]\nweight = 1.5\n"
            .parse()
            .unwrap();
        merge_toml(&mut base, over);
        let text = emit_toml(&base);
        let back: toml::Table = text.parse().unwrap();
        assert_eq!(back, base, "{text}");
        assert_eq!(back["lan"]["lease_time"].as_integer(), Some(120));
        assert_eq!(back["lan"]["interface"].as_str(), Some("lan0"));
        assert_eq!(
            back["control"]["socket"].as_str(),
            Some("/tmp/x \"y\"/control.sock")
        );
    }
}
