//! A writer of the Prometheus text exposition format, version 0.0.4:
//! `# HELP` and `# TYPE` once per family, then its samples, every family
//! contiguous and named once. Label values are escaped (a guest-chosen
//! user name or a server's label can never break a line), and values are
//! written as Prometheus reads them (`NaN`, `+Inf`, `-Inf`).

use std::fmt::Write;

/// The `Content-Type` of what [`Exposition`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets when lassi restarts); named `…_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An exact integer (counters are u64: no rounding through f64).
    Int(u64),
    /// A float; NaN and the infinities are written as Prometheus spells them.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(u64::from(v))
    }
}

/// The exposition being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
    names: Vec<String>,
}

/// One family's samples; the family ends when this is dropped.
pub struct Family<'a> {
    exp: &'a mut Exposition,
    name: &'a str,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts family `name` of `kind` with its help text. Each name may be
    /// started once (a second start is a bug in the caller: it panics).
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        assert!(valid_name(name), "metric name {name:?}");
        assert!(
            kind != Kind::Counter || name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        assert!(
            !self.names.iter().any(|n| n == name),
            "metric family {name} written twice"
        );
        self.names.push(name.to_string());
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
        Family { exp: self, name }
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// One sample of the family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) -> &mut Self {
        self.line("", labels, None, value.into());
        self
    }

    /// A histogram's samples: `bounds` are the buckets' upper bounds and
    /// `counts` the observations in each (not cumulative); `count` is the
    /// total, which the `+Inf` bucket shows.
    pub fn histogram(
        &mut self,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        count: u64,
        sum: f64,
    ) -> &mut Self {
        let mut cumulative = 0;
        for (bound, n) in bounds.iter().zip(counts) {
            cumulative += n;
            let le = format_float(*bound);
            self.line("_bucket", labels, Some(&le), Value::Int(cumulative));
        }
        self.line("_bucket", labels, Some("+Inf"), Value::Int(count));
        self.line("_sum", labels, None, Value::Float(sum));
        self.line("_count", labels, None, Value::Int(count));
        self
    }

    fn line(&mut self, suffix: &str, labels: &[(&str, &str)], le: Option<&str>, value: Value) {
        let out = &mut self.exp.out;
        out.push_str(self.name);
        out.push_str(suffix);
        let extra = le.map(|le| ("le", le));
        let all = labels.iter().copied().chain(extra);
        for (i, (name, value)) in all.enumerate() {
            debug_assert!(valid_name(name) && !name.contains(':'), "label {name:?}");
            out.push(if i == 0 { '{' } else { ',' });
            out.push_str(name);
            out.push_str("=\"");
            escape_label_into(out, value);
            out.push('"');
        }
        if !labels.is_empty() || le.is_some() {
            out.push('}');
        }
        out.push(' ');
        match value {
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Float(v) => out.push_str(&format_float(v)),
        }
        out.push('\n');
    }
}

/// Metric and label names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label value as the format wants it: backslash, double quote and line
/// feed escaped; everything else (any UTF-8) as is.
fn escape_label_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text: backslash and line feed escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Prometheus reads it.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust's shortest round-trip form: 0.25, 1e-7, 5.
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_and_type_then_their_samples_in_order() {
        let mut e = Exposition::new();
        e.family("lassi_a_total", Kind::Counter, "First.")
            .sample(&[("x", "1")], 3u64)
            .sample(&[("x", "2")], 4u64);
        e.family("lassi_b", Kind::Gauge, "Second.").sample(&[], 1.5);
        assert_eq!(
            e.finish(),
            "# HELP lassi_a_total First.\n# TYPE lassi_a_total counter\n\
             lassi_a_total{x=\"1\"} 3\nlassi_a_total{x=\"2\"} 4\n\
             # HELP lassi_b Second.\n# TYPE lassi_b gauge\nlassi_b 1.5\n"
        );
    }

    #[test]
    fn hostile_label_values_are_escaped_and_stay_on_their_line() {
        let mut e = Exposition::new();
        let user = "a\"b\\c\nlassi_fake_total 1e9\n# TYPE x counter\"}";
        e.family("lassi_u", Kind::Gauge, "Help with \\ and\nnewline.")
            .sample(&[("user", user), ("unicode", "Zoë ☕")], 1u64);
        let text = e.finish();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("# HELP lassi_u Help with \\\\ and\\nnewline.\n"));
        assert!(text.ends_with(
            "lassi_u{user=\"a\\\"b\\\\c\\nlassi_fake_total 1e9\\n# TYPE x counter\\\"}\",\
             unicode=\"Zoë ☕\"} 1\n"
        ));
    }

    #[test]
    fn special_floats_and_exact_integers() {
        let mut e = Exposition::new();
        e.family("lassi_f", Kind::Gauge, "F.")
            .sample(&[("v", "nan")], f64::NAN)
            .sample(&[("v", "inf")], f64::INFINITY)
            .sample(&[("v", "-inf")], f64::NEG_INFINITY)
            .sample(&[("v", "small")], 1e-7)
            .sample(&[("v", "big")], u64::MAX)
            .sample(&[("v", "bool")], true);
        let text = e.finish();
        for line in [
            "lassi_f{v=\"nan\"} NaN",
            "lassi_f{v=\"inf\"} +Inf",
            "lassi_f{v=\"-inf\"} -Inf",
            "lassi_f{v=\"small\"} 0.0000001",
            "lassi_f{v=\"big\"} 18446744073709551615",
            "lassi_f{v=\"bool\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut e = Exposition::new();
        e.family("lassi_h_seconds", Kind::Histogram, "H.")
            .histogram(&[("server", "s1")], &[0.1, 1.0], &[2, 3], 6, 4.5);
        let text = e.finish();
        let samples: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            samples,
            [
                "lassi_h_seconds_bucket{server=\"s1\",le=\"0.1\"} 2",
                "lassi_h_seconds_bucket{server=\"s1\",le=\"1\"} 5",
                "lassi_h_seconds_bucket{server=\"s1\",le=\"+Inf\"} 6",
                "lassi_h_seconds_sum{server=\"s1\"} 4.5",
                "lassi_h_seconds_count{server=\"s1\"} 6",
            ]
        );
    }

    #[test]
    #[should_panic(expected = "written twice")]
    fn a_family_cannot_be_written_twice() {
        let mut e = Exposition::new();
        e.family("lassi_x", Kind::Gauge, "X.");
        e.family("lassi_x", Kind::Gauge, "X.");
    }

    #[test]
    #[should_panic(expected = "must end in _total")]
    fn counters_end_in_total() {
        Exposition::new().family("lassi_bytes", Kind::Counter, "B.");
    }
}
