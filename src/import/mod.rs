//! `lassi import-coova`: CoovaChilli configuration → an equivalent lassi config.
//!
//! CoovaChilli is configured in three forms: `chilli.conf` (`name value`
//! lines, bare names for flags, `include FILE`), the HS_* shell-variable
//! files `/etc/chilli/defaults` and `/etc/chilli/config`, and UCI
//! (`/etc/config/chilli` on OpenWrt). Each is read into one list of
//! [`CoovaOption`]s under chilli's own option names (the names of
//! `chilli --help`), then [`map`] turns that list into lassi TOML. Every
//! option without a lassi equivalent becomes a [`Warning`], listed at the top
//! of the output and printed on stderr by the command: nothing is dropped
//! silently.
//!
//! Everything here is pure: the shell hands in file contents and a reader
//! for `include`d files.

mod chilli_conf;
mod hs_vars;
mod map;
mod uci;

pub use map::{convert_local_users, map, Imported};

/// Where an option was written: file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file as named on the command line (or by `include`).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One CoovaChilli option as read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoovaOption {
    /// Where it was written.
    pub origin: Origin,
    /// chilli's option name (`uamallowed`, `dhcpif`, …).
    pub name: String,
    /// The name as written (`HS_UAMALLOW`, `uamallowed`, …), for messages.
    pub written: String,
    /// The value; `None` for a bare flag (`macauth`).
    pub value: Option<String>,
}

/// An option lassi has no equivalent for, or could not take as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where it was written.
    pub origin: Origin,
    /// The option as written.
    pub option: String,
    /// Why it was not mapped.
    pub reason: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.option, self.reason)
    }
}

/// The three forms a CoovaChilli configuration file comes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `chilli.conf`: `name value` lines.
    ChilliConf,
    /// `/etc/chilli/config` and `defaults`: `HS_NAME=value`.
    HsVars,
    /// `/etc/config/chilli`: `config chilli` / `option name 'value'`.
    Uci,
}

/// Which form `text` is in, from its first meaningful line.
pub fn detect(text: &str) -> Form {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let word = first.split_whitespace().next().unwrap_or("");
    if word == "config" || word == "package" {
        Form::Uci
    } else if first.starts_with("HS_") || first.starts_with("export HS_") {
        Form::HsVars
    } else {
        Form::ChilliConf
    }
}

/// Reads the files (`(name, contents)`, in order: later ones override
/// earlier ones, as `/etc/chilli/config` overrides `defaults`) into one
/// option list. `read` fetches `include`d files of chilli.conf.
pub fn read_all(
    files: &[(String, String)],
    read: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Vec<CoovaOption>, String> {
    let mut opts = Vec::new();
    let mut hs = hs_vars::Vars::default();
    for (name, text) in files {
        match detect(text) {
            Form::ChilliConf => opts.extend(chilli_conf::parse(name, text, read, 0)?),
            Form::Uci => opts.extend(uci::parse(name, text)),
            Form::HsVars => hs.read(name, text),
        }
    }
    opts.extend(hs.into_options());
    Ok(opts)
}

/// Truthiness of a flag value as Coova's three forms write it.
pub(crate) fn truthy(value: Option<&str>) -> bool {
    match value {
        None => true,
        Some(v) => matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "on" | "yes" | "true"
        ),
    }
}

#[cfg(test)]
mod tests;

/// The IPv4 name servers of an /etc/resolv.conf text, loopback ones left
/// out (a local resolver is not reachable from the guests).
pub fn resolv_conf(text: &str) -> Vec<core::net::Ipv4Addr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<core::net::Ipv4Addr>().ok())
        .filter(|a| !a.is_loopback())
        .collect()
}

/// `s` as a TOML basic string (quoted, escaped).
pub fn toml_string(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => q.push_str(&format!("\\u{:04X}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}
