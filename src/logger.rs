//! The daemon's log output (binary only): a small `tracing` subscriber that
//! writes the same lines as tracing-subscriber's default `fmt` format did
//! (`with_target(false)`), without its registry, layers and span storage —
//! lassi logs events, never spans, and the router builds have a size budget.
//!
//! A line is `2026-12-02T17:08:06.123456Z  INFO message key=value …`: UTC
//! time with microseconds, the level right-aligned in five columns, the
//! message, then the fields (`%` as Display, `?` and strings as Debug, so a
//! string field is quoted). Control characters a terminal could act on are
//! escaped in the message. On a terminal the level is coloured, the time and
//! `=` dimmed and field names italic, as before.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Writes events at `max` and more severe to stderr, one line each.
struct StderrLog {
    max: Level,
    ansi: bool,
}

/// Installs the subscriber for the whole process (once, at start).
pub fn init(max: Level, ansi: bool) {
    // Only fails when one is installed already: keep the first.
    let _ = tracing::subscriber::set_global_default(StderrLog { max, ansi });
}

impl Subscriber for StderrLog {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.max))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1) // spans are not recorded
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = String::with_capacity(128);
        let _ = format_line(&mut line, event, SystemTime::now(), self.ansi);
        // One write per line, as before: lines of concurrent threads do not mix.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
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

    #[test]
    fn terminal_lines_are_coloured() {
        let lines = capture(true, || tracing::info!(n = 1, "hi"));
        assert_eq!(
            lines,
            ["\x1b[2m2026-11-22T15:00:00.123456Z\x1b[0m \x1b[32m INFO\x1b[0m hi \x1b[3mn\x1b[0m\x1b[2m=\x1b[0m1\n"]
        );
    }
}
