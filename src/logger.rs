//! The daemon's log output: a small `tracing` subscriber that writes the
//! same lines as tracing-subscriber's default `fmt` format did
//! (`with_target(false)`), without its registry, layers and span storage —
//! lassi logs events, never spans, and the router builds have a size budget.
//!
//! A line is `2026-12-02T17:08:06.123456Z  INFO message key=value …`: UTC
//! time with microseconds, the level right-aligned in five columns, the
//! message, then the fields (`%` as Display, `?` and strings as Debug, so a
//! string field is quoted). Control characters a terminal could act on are
//! escaped in the message. On a terminal the level is coloured, the time and
//! `=` dimmed and field names italic, as before.
//!
//! `log.format = "json"` writes one JSON object per line instead (`ts`,
//! `level`, `target`, `message`, `fields`); `log.output = "syslog"` sends
//! each line as an RFC 3164 datagram (facility daemon, tag `lassi[pid]`) to
//! the syslog socket, which OpenWrt's logd and journald read. Level, format
//! and output can be changed while lassi runs ([`apply`], [`set_level`]).

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::config::{LogConfig, LogFormat, LogOutput};

/// Where lines go now.
enum Sink {
    Stderr,
    Syslog { socket: UnixDatagram, path: PathBuf },
}

/// The output settings, replaceable at run time.
struct Output {
    format: LogFormat,
    sink: Sink,
    ansi: bool,
}

/// The level as an index (0 = error … 4 = trace), read on every event.
static LEVEL: AtomicUsize = AtomicUsize::new(2);
static OUTPUT: OnceLock<Mutex<Output>> = OnceLock::new();
/// `lassi run --log-level`: wins over `log.level`, also at every reload.
static CLI_LEVEL: OnceLock<Level> = OnceLock::new();
/// Lines the syslog socket did not take (full or gone), since start.
static SYSLOG_DROPPED: AtomicUsize = AtomicUsize::new(0);

const LEVELS: [Level; 5] = [
    Level::ERROR,
    Level::WARN,
    Level::INFO,
    Level::DEBUG,
    Level::TRACE,
];

fn level_index(l: Level) -> usize {
    LEVELS.iter().position(|x| *x == l).unwrap_or(2)
}

fn current_level() -> Level {
    LEVELS[LEVEL.load(Ordering::Relaxed).min(4)]
}

/// The subscriber installed for the whole process.
struct Log;

/// Installs the subscriber for the whole process (once, at start) and
/// applies `cfg`; `ansi` colours text lines (stderr on a terminal).
/// `cli_level` (`--log-level`) overrides `log.level`, now and at every
/// later [`apply`].
pub fn init(cfg: &LogConfig, ansi: bool, cli_level: Option<Level>) {
    if let Some(l) = cli_level {
        let _ = CLI_LEVEL.set(l);
    }
    OUTPUT.get_or_init(|| {
        Mutex::new(Output {
            format: LogFormat::Text,
            sink: Sink::Stderr,
            ansi,
        })
    });
    // Only fails when one is installed already: keep the first.
    let _ = tracing::subscriber::set_global_default(Log);
    apply(cfg);
}

/// Applies level, format and output (reload). A syslog socket that cannot
/// be reached leaves the output on stderr, with a warning. The level given
/// on the command line, if any, stays.
pub fn apply(cfg: &LogConfig) {
    let (sink, failed) = match cfg.output {
        LogOutput::Stderr => (Sink::Stderr, None),
        LogOutput::Syslog => match open_syslog(&cfg.syslog_socket) {
            Ok(s) => (s, None),
            Err(e) => (Sink::Stderr, Some(e)),
        },
    };
    if let Some(out) = OUTPUT.get() {
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        out.format = cfg.format;
        out.sink = sink;
    }
    set_level(CLI_LEVEL.get().copied().unwrap_or(cfg.level));
    if let Some(e) = failed {
        tracing::warn!(
            socket = %cfg.syslog_socket.display(),
            "log.output = \"syslog\": {e}; logging to stderr instead"
        );
    }
}

/// Changes the most verbose level written, at once for every call site.
pub fn set_level(level: Level) {
    LEVEL.store(level_index(level), Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
}

/// Lines the syslog socket refused (full or gone) since start.
pub fn syslog_dropped() -> u64 {
    SYSLOG_DROPPED.load(Ordering::Relaxed) as u64
}

fn open_syslog(path: &std::path::Path) -> Result<Sink, String> {
    let socket = UnixDatagram::unbound().map_err(|e| e.to_string())?;
    socket.connect(path).map_err(|e| e.to_string())?;
    // Never stall a thread (the data plane logs too) on a slow reader.
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(Sink::Syslog {
        socket,
        path: path.to_path_buf(),
    })
}

impl Subscriber for Log {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= current_level()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(
            current_level(),
        ))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1) // spans are not recorded
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(out) = OUTPUT.get() else { return };
        let out = out.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        match &out.sink {
            Sink::Stderr => {
                let mut line = String::with_capacity(128);
                let _ = match out.format {
                    LogFormat::Text => format_line(&mut line, event, now, out.ansi),
                    LogFormat::Json => json_line(&mut line, event, now),
                };
                // One write per line: lines of concurrent threads do not mix.
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Syslog { socket, path } => {
                let gram = syslog_datagram(event, now, out.format, std::process::id());
                if socket.send(gram.as_bytes()).is_err() {
                    // logd restarted: connect again once, else count it.
                    let again = socket
                        .connect(path)
                        .and_then(|_| socket.send(gram.as_bytes()));
                    if again.is_err() {
                        SYSLOG_DROPPED.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Syslog severity (RFC 5424 numbers) of a level.
fn severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Facility daemon (3).
const FACILITY_DAEMON: u8 = 3;
/// Longest datagram sent; longer messages are cut.
const MAX_DATAGRAM: usize = 8192;

/// `<PRI>Mmm dd hh:mm:ss lassi[pid]: message key=value` (RFC 3164; UTC, as
/// routers have no time-zone database). With the JSON format the message is
/// the JSON object.
fn syslog_datagram(event: &Event<'_>, now: SystemTime, format: LogFormat, pid: u32) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let pri = FACILITY_DAEMON * 8 + severity(*event.metadata().level());
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (_, month, day) = civil_from_days(days);
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "<{pri}>{} {day:>2} {:02}:{:02}:{:02} lassi[{pid}]: ",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let _ = match format {
        LogFormat::Text => {
            let mut fields = Fields {
                out: &mut s,
                ansi: false,
                first: true,
                result: Ok(()),
            };
            event.record(&mut fields);
            fields.result
        }
        LogFormat::Json => json_line(&mut s, event, now),
    };
    while s.ends_with('\n') {
        s.pop();
    }
    if s.len() > MAX_DATAGRAM {
        let mut cut = MAX_DATAGRAM;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// One JSON object and a newline: `ts`, `level`, `target`, `message`,
/// `fields` (numbers and booleans as JSON values, the rest as strings).
fn json_line(out: &mut String, event: &Event<'_>, now: SystemTime) -> fmt::Result {
    let meta = event.metadata();
    let mut ts = String::with_capacity(27);
    timestamp(&mut ts, now)?;
    let mut v = JsonFields::default();
    event.record(&mut v);
    let obj = serde_json::json!({
        "ts": ts,
        "level": meta.level().as_str(),
        "target": meta.target(),
        "message": v.message,
        "fields": serde_json::Value::Object(v.fields),
    });
    out.push_str(&obj.to_string());
    out.push('\n');
    Ok(())
}

/// The message and fields of an event, as JSON values.
#[derive(Default)]
struct JsonFields {
    message: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.fields.insert(name.to_string(), value);
    }
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.put(field, value.into());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.put(field, format!("{value:?}").into());
        }
    }
}

/// ANSI styles (tracing-subscriber's, via nu-ansi-term).
const DIM: &str = "\x1b[2m";
const ITALIC: &str = "\x1b[3m";
const RESET: &str = "\x1b[0m";

/// One log line, newline included.
fn format_line(out: &mut String, event: &Event<'_>, now: SystemTime, ansi: bool) -> fmt::Result {
    let level = *event.metadata().level();
    let (colour, name) = match level {
        Level::TRACE => ("\x1b[35m", "TRACE"),
        Level::DEBUG => ("\x1b[34m", "DEBUG"),
        Level::INFO => ("\x1b[32m", " INFO"),
        Level::WARN => ("\x1b[33m", " WARN"),
        Level::ERROR => ("\x1b[31m", "ERROR"),
    };
    if ansi {
        write!(out, "{DIM}")?;
        timestamp(out, now)?;
        write!(out, "{RESET} {colour}{name}{RESET} ")?;
    } else {
        timestamp(out, now)?;
        write!(out, " {name} ")?;
    }
    let mut fields = Fields {
        out,
        ansi,
        first: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    out.push('\n');
    Ok(())
}

/// The UTC calendar date (year, month, day) of `days` since 1970-01-01
/// (Howard Hinnant's civil-from-days; no time-zone database on routers).
pub fn civil_from_days(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`, UTC.
fn timestamp(out: &mut String, now: SystemTime) -> fmt::Result {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// The message, then `name=value` for every other field, space-separated.
struct Fields<'a> {
    out: &'a mut String,
    ansi: bool,
    first: bool,
    result: fmt::Result,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"))
        } else {
            self.record_debug(field, &value)
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        let name = field.name();
        self.result = if name == "message" {
            write!(Escaping(self.out), "{value:?}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            if self.ansi {
                write!(self.out, "{ITALIC}{name}{RESET}{DIM}={RESET}{value:?}")
            } else {
                write!(self.out, "{name}={value:?}")
            }
        };
    }
}

/// Escapes the control characters a terminal would act on (ESC, BEL, BS,
/// FF, DEL and C1), as tracing-subscriber does in messages.
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for ch in s.chars() {
            match ch {
                '\x1b' => self.0.push_str("\\x1b"),
                '\x07' => self.0.push_str("\\x07"),
                '\x08' => self.0.push_str("\\x08"),
                '\x0c' => self.0.push_str("\\x0c"),
                '\x7f' => self.0.push_str("\\x7f"),
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", ch as u32)?,
                _ => self.0.push(ch),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Captures the formatted lines of the events dispatched to it.
    struct Capture(Arc<Mutex<Vec<String>>>, bool);

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut s = String::new();
            let t = UNIX_EPOCH + Duration::from_micros(1_795_359_600_123_456);
            format_line(&mut s, event, t, self.1).unwrap();
            self.0.lock().unwrap().push(s);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    fn capture(ansi: bool, f: impl FnOnce()) -> Vec<String> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::with_default(Capture(lines.clone(), ansi), f);
        let v = lines.lock().unwrap().clone();
        v
    }

    #[test]
    fn lines_match_tracing_subscribers_default_format() {
        let ip = std::net::Ipv4Addr::new(10, 1, 0, 10);
        let lines = capture(false, || {
            tracing::info!(mac = %"aa:bb", ip = %ip, session_id = 7u64, user = "bob", "login accepted");
            tracing::warn!(kind = ?Some(1), "odd \x1b[31m input");
            tracing::error!("plain");
            tracing::debug!(r#type = 3, "raw");
        });
        assert_eq!(
            lines,
            [
                "2026-11-22T15:00:00.123456Z  INFO login accepted mac=aa:bb ip=10.1.0.10 session_id=7 user=\"bob\"\n",
                "2026-11-22T15:00:00.123456Z  WARN odd \\x1b[31m input kind=Some(1)\n",
                "2026-11-22T15:00:00.123456Z ERROR plain\n",
                "2026-11-22T15:00:00.123456Z DEBUG raw type=3\n",
            ]
        );
    }

    /// Renders events with `f` instead of the text format.
    fn render(f: fn(&Event<'_>) -> String, emit: impl FnOnce()) -> Vec<String> {
        struct With(Arc<Mutex<Vec<String>>>, fn(&Event<'_>) -> String);
        impl Subscriber for With {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &Attributes<'_>) -> Id {
                Id::from_u64(1)
            }
            fn record(&self, _: &Id, _: &Record<'_>) {}
            fn record_follows_from(&self, _: &Id, _: &Id) {}
            fn event(&self, event: &Event<'_>) {
                let line = (self.1)(event);
                self.0.lock().unwrap().push(line);
            }
            fn enter(&self, _: &Id) {}
            fn exit(&self, _: &Id) {}
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::with_default(With(lines.clone(), f), emit);
        let v = lines.lock().unwrap().clone();
        v
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(1_795_359_600_123_456)
    }

    #[test]
    fn json_lines_carry_ts_level_target_message_and_typed_fields() {
        let lines = render(
            |e| {
                let mut s = String::new();
                json_line(&mut s, e, at()).unwrap();
                s
            },
            || {
                let ip = std::net::Ipv4Addr::new(10, 1, 0, 10);
                tracing::warn!(ip = %ip, n = 7u64, neg = -1i64, ok = true, user = "b\"ob\n", "login \"x\" failed");
            },
        );
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ends_with('\n') && !lines[0].trim_end().contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["ts"], "2026-11-22T15:00:00.123456Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], module_path!());
        assert_eq!(v["message"], "login \"x\" failed");
        assert_eq!(v["fields"]["ip"], "10.1.0.10");
        assert_eq!(v["fields"]["n"], 7);
        assert_eq!(v["fields"]["neg"], -1);
        assert_eq!(v["fields"]["ok"], true);
        assert_eq!(v["fields"]["user"], "b\"ob\n");
    }

    #[test]
    fn syslog_datagrams_are_rfc3164_with_daemon_facility() {
        let text = render(
            |e| syslog_datagram(e, at(), LogFormat::Text, 4242),
            || {
                tracing::error!("cannot open the TUN device");
                tracing::warn!(server = "192.0.2.1", "RADIUS server dead");
                tracing::info!(n = 1, "hi");
                tracing::debug!("detail");
            },
        );
        assert_eq!(
            text,
            [
                "<27>Nov 22 15:00:00 lassi[4242]: cannot open the TUN device",
                "<28>Nov 22 15:00:00 lassi[4242]: RADIUS server dead server=\"192.0.2.1\"",
                "<30>Nov 22 15:00:00 lassi[4242]: hi n=1",
                "<31>Nov 22 15:00:00 lassi[4242]: detail",
            ]
        );
        let json = render(
            // 2025-12-02T01:02:03Z: the day is space-padded.
            |e| {
                syslog_datagram(
                    e,
                    UNIX_EPOCH + Duration::from_secs(1_764_637_323),
                    LogFormat::Json,
                    1,
                )
            },
            || tracing::info!(k = 2, "m"),
        );
        let (head, body) = json[0].split_once(": ").unwrap();
        assert_eq!(head, "<30>Dec  2 01:02:03 lassi[1]");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (v["message"].as_str(), v["fields"]["k"].as_u64()),
            (Some("m"), Some(2))
        );
        let long = render(
            |e| syslog_datagram(e, at(), LogFormat::Text, 1),
            || tracing::info!("{}", "é".repeat(10_000)),
        );
        assert!(long[0].len() <= MAX_DATAGRAM);
    }

    #[test]
    fn terminal_lines_are_coloured() {
        let lines = capture(true, || tracing::info!(n = 1, "hi"));
        assert_eq!(
            lines,
            ["\x1b[2m2026-11-22T15:00:00.123456Z\x1b[0m \x1b[32m INFO\x1b[0m hi \x1b[3mn\x1b[0m\x1b[2m=\x1b[0m1\n"]
        );
    }
}
