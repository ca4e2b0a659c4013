//! `[hooks]` and `[log]`: the operator's scripts and the log output.
//!
//! Both sections can be replaced while lassi runs (`Hooks::update`,
//! `logger::apply`), so they are validated here on their own.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{err, ConfigError};

/// `[hooks]`: scripts run when sessions and the uplink device come and go
/// (CoovaChilli's `conup`, `condown`, `ipup`, `ipdown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HooksConfig {
    /// Run when a session is authorized.
    pub conup: Option<PathBuf>,
    /// Run when a session ends (any cause).
    pub condown: Option<PathBuf>,
    /// Run when lassi has brought the TUN device up.
    pub ipup: Option<PathBuf>,
    /// Run when lassi takes the TUN device down at shutdown.
    pub ipdown: Option<PathBuf>,
    /// Seconds a script may run before its process group is killed.
    pub timeout: u32,
    /// Scripts running at once at most.
    pub max_running: usize,
    /// Scripts waiting to run at most; beyond that they are dropped (and
    /// counted) with a warning.
    pub max_queued: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            conup: None,
            condown: None,
            ipup: None,
            ipdown: None,
            timeout: 10,
            max_running: 8,
            max_queued: 256,
        }
    }
}

impl HooksConfig {
    /// True when no script is configured.
    pub fn is_empty(&self) -> bool {
        self.conup.is_none()
            && self.condown.is_none()
            && self.ipup.is_none()
            && self.ipdown.is_none()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    conup: Option<PathBuf>,
    condown: Option<PathBuf>,
    ipup: Option<PathBuf>,
    ipdown: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    timeout: u32,
    #[serde(default = "default_max_running")]
    max_running: usize,
    #[serde(default = "default_max_queued")]
    max_queued: usize,
}

impl Default for RawHooks {
    fn default() -> Self {
        RawHooks {
            conup: None,
            condown: None,
            ipup: None,
            ipdown: None,
            timeout: default_timeout(),
            max_running: default_max_running(),
            max_queued: default_max_queued(),
        }
    }
}

fn default_timeout() -> u32 {
    10
}
fn default_max_running() -> usize {
    8
}
fn default_max_queued() -> usize {
    256
}

/// A script path: absolute, an existing regular file, executable.
fn check_script(key: &str, path: &Path) -> Result<(), ConfigError> {
    if !path.is_absolute() {
        return Err(err(
            key,
            format!("'{}' must be an absolute path", path.display()),
        ));
    }
    let meta =
        std::fs::metadata(path).map_err(|e| err(key, format!("'{}': {e}", path.display())))?;
    if !meta.is_file() {
        return Err(err(key, format!("'{}' is not a file", path.display())));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(err(key, format!("'{}' is not executable", path.display())));
    }
    Ok(())
}

pub(super) fn validate_hooks(h: RawHooks) -> Result<HooksConfig, ConfigError> {
    for (key, path) in [
        ("hooks.conup", &h.conup),
        ("hooks.condown", &h.condown),
        ("hooks.ipup", &h.ipup),
        ("hooks.ipdown", &h.ipdown),
    ] {
        if let Some(p) = path {
            check_script(key, p)?;
        }
    }
    if !(1..=3600).contains(&h.timeout) {
        return Err(err(
            "hooks.timeout",
            format!("{} is outside 1–3600 seconds", h.timeout),
        ));
    }
    if !(1..=256).contains(&h.max_running) {
        return Err(err(
            "hooks.max_running",
            format!("{} is outside 1–256", h.max_running),
        ));
    }
    if !(1..=100_000).contains(&h.max_queued) {
        return Err(err(
            "hooks.max_queued",
            format!("{} is outside 1–100000", h.max_queued),
        ));
    }
    Ok(HooksConfig {
        conup: h.conup,
        condown: h.condown,
        ipup: h.ipup,
        ipdown: h.ipdown,
        timeout: h.timeout,
        max_running: h.max_running,
        max_queued: h.max_queued,
    })
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-02T17:08:06.123456Z  INFO message key=value`.
    Text,
    /// One JSON object per line: ts, level, target, message, fields.
    Json,
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard error.
    Stderr,
    /// RFC 3164 datagrams to the syslog socket (facility daemon).
    Syslog,
}

/// `[log]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Most verbose level written: error, warn, info, debug or trace.
    pub level: tracing::Level,
    /// Line format.
    pub format: LogFormat,
    /// Destination.
    pub output: LogOutput,
    /// The syslog socket (`/dev/log`).
    pub syslog_socket: PathBuf,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: tracing::Level::INFO,
            format: LogFormat::Text,
            output: LogOutput::Stderr,
            syslog_socket: PathBuf::from("/dev/log"),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    level: Option<String>,
    format: Option<String>,
    output: Option<String>,
    syslog_socket: Option<PathBuf>,
}

/// A level name as `--log-level` and `log.level` take it.
pub fn parse_level(key: &str, s: &str) -> Result<tracing::Level, ConfigError> {
    s.parse().map_err(|_| {
        err(
            key,
            format!("'{s}' is not one of error, warn, info, debug, trace"),
        )
    })
}

pub(super) fn validate_log(l: RawLog) -> Result<LogConfig, ConfigError> {
    let d = LogConfig::default();
    let level = match &l.level {
        Some(s) => parse_level("log.level", s)?,
        None => d.level,
    };
    let syslog_socket = l.syslog_socket.unwrap_or(d.syslog_socket);
    if !syslog_socket.is_absolute() {
        return Err(err(
            "log.syslog_socket",
            format!("'{}' must be an absolute path", syslog_socket.display()),
        ));
    }
    let format = match l.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(o) => return Err(err("log.format", format!("'{o}' is not text or json"))),
    };
    let output = match l.output.as_deref() {
        None | Some("stderr") => LogOutput::Stderr,
        Some("syslog") => LogOutput::Syslog,
        Some(o) => return Err(err("log.output", format!("'{o}' is not stderr or syslog"))),
    };
    Ok(LogConfig {
        level,
        format,
        output,
        syslog_socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(toml_text: &str) -> Result<HooksConfig, ConfigError> {
        validate_hooks(basic_toml::from_str(toml_text).unwrap())
    }

    #[test]
    fn scripts_must_be_absolute_existing_executables() {
        let dir = std::env::temp_dir().join(format!("lassi-hooks-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("up.sh");
        let plain = dir.join("plain.sh");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let ok = hooks(&format!("conup = {:?}", exe.display().to_string())).unwrap();
        assert_eq!(ok.conup.as_deref(), Some(exe.as_path()));
        assert_eq!((ok.timeout, ok.max_running), (10, 8));
        let e = hooks(&format!("condown = {:?}", plain.display().to_string())).unwrap_err();
        assert_eq!(e.key, "hooks.condown");
        assert!(e.reason.contains("not executable"), "{e}");
        let e = hooks("ipup = \"up.sh\"").unwrap_err();
        assert_eq!(e.key, "hooks.ipup");
        assert!(e.reason.contains("absolute"), "{e}");
        let e = hooks(&format!(
            "ipdown = {:?}",
            dir.join("gone").display().to_string()
        ))
        .unwrap_err();
        assert_eq!(e.key, "hooks.ipdown");
        let e = hooks(&format!("ipdown = {:?}", dir.display().to_string())).unwrap_err();
        assert!(e.reason.contains("not a file"), "{e}");
        assert_eq!(hooks("timeout = 0").unwrap_err().key, "hooks.timeout");
        assert_eq!(
            hooks("max_running = 0").unwrap_err().key,
            "hooks.max_running"
        );
        assert_eq!(hooks("max_queued = 0").unwrap_err().key, "hooks.max_queued");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_section() {
        let l = validate_log(basic_toml::from_str("").unwrap()).unwrap();
        assert_eq!(l, LogConfig::default());
        let l = validate_log(
            basic_toml::from_str(
                "level = \"debug\"\nformat = \"json\"\noutput = \"syslog\"\nsyslog_socket = \"/tmp/x\"",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(l.level, tracing::Level::DEBUG);
        assert_eq!((l.format, l.output), (LogFormat::Json, LogOutput::Syslog));
        let e = validate_log(basic_toml::from_str("level = \"loud\"").unwrap()).unwrap_err();
        assert_eq!(e.key, "log.level");
        let e = validate_log(basic_toml::from_str("format = \"xml\"").unwrap()).unwrap_err();
        assert_eq!(e.key, "log.format");
        let e = validate_log(basic_toml::from_str("output = \"file\"").unwrap()).unwrap_err();
        assert_eq!(e.key, "log.output");
        let e = validate_log(basic_toml::from_str("syslog_socket = \"log\"").unwrap()).unwrap_err();
        assert_eq!(e.key, "log.syslog_socket");
    }
}
