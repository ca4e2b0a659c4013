//! The HS_* shell-variable files (`/etc/chilli/defaults`, `/etc/chilli/config`):
//! `HS_NAME=value` lines, as chilli's `functions` script turns them into
//! chilli options. Values may refer to other variables (`\$HS_UAMSERVER`):
//! they are expanded once every file is read, as the script does.

use super::{CoovaOption, Origin};

/// HS_* variables read so far; a later assignment replaces an earlier one.
#[derive(Default)]
pub(super) struct Vars {
    vars: Vec<(String, Origin, String)>,
}

/// Variables that become the chilli option of another name (the rest:
/// `HS_FOO` → `foo`). Composite ones (net, dynip, location id, uamserver)
/// are handled in [`Vars::into_options`].
const RENAMED: &[(&str, &str)] = &[
    ("HS_LANIF", "dhcpif"),
    ("HS_WANIF", "wanif"),
    ("HS_DNS1", "dns1"),
    ("HS_DNS2", "dns2"),
    ("HS_DNS_DOMAIN", "domain"),
    ("HS_NASID", "radiusnasid"),
    ("HS_NASIP", "nasip"),
    ("HS_NASMAC", "nasmac"),
    ("HS_RADIUS", "radiusserver1"),
    ("HS_RADIUS2", "radiusserver2"),
    ("HS_RADSECRET", "radiussecret"),
    ("HS_RADAUTH", "radiusauthport"),
    ("HS_RADACCT", "radiusacctport"),
    ("HS_UAMALLOW", "uamallowed"),
    ("HS_UAMDOMAINS", "uamdomain"),
    ("HS_ANYIP", "uamanyip"),
    ("HS_LOC_NAME", "radiuslocationname"),
];

/// Consumed by a composite option (or only by expansion).
const PARTS: &[&str] = &[
    "HS_NETWORK",
    "HS_NETMASK",
    "HS_DYNIP",
    "HS_DYNIP_MASK",
    "HS_STATIP",
    "HS_STATIP_MASK",
    "HS_UAMSERVER",
    "HS_UAMFORMAT",
    "HS_LOC_NETWORK",
    "HS_LOC_AC",
    "HS_LOC_CC",
    "HS_LOC_ISOCC",
    "HS_USELOCALUSERS",
];

impl Vars {
    /// Reads one file's assignments.
    pub(super) fn read(&mut self, file: &str, text: &str) {
        for (n, line) in text.lines().enumerate() {
            let Some((name, value)) = assignment(line) else {
                continue;
            };
            let origin = Origin {
                file: file.to_string(),
                line: n + 1,
            };
            self.vars.retain(|(k, _, _)| *k != name);
            self.vars.push((name, origin, value));
        }
    }

    fn get(&self, name: &str) -> Option<&(String, Origin, String)> {
        self.vars
            .iter()
            .find(|(k, _, v)| k == name && !v.is_empty())
    }

    /// `$NAME` and `${NAME}` replaced by the variables' values (nested up to 4 deep).
    fn expand(&self, value: &str, depth: usize) -> String {
        let mut out = String::new();
        let mut rest = value;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, tail) = match after.strip_prefix('{') {
                Some(b) => b.split_once('}').unwrap_or((b, "")),
                None => {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    after.split_at(end)
                }
            };
            let v = self.get(name).map(|(_, _, v)| v.as_str()).unwrap_or("");
            if depth < 4 {
                out.push_str(&self.expand(v, depth + 1));
            }
            rest = tail;
        }
        out.push_str(rest);
        out
    }

    /// The chilli options the variables stand for.
    pub(super) fn into_options(self) -> Vec<CoovaOption> {
        let mut out = self.composites();
        for (name, origin, value) in &self.vars {
            if PARTS.contains(&name.as_str()) || value.is_empty() {
                continue;
            }
            let chilli = RENAMED
                .iter()
                .find(|(hs, _)| hs == name)
                .map(|(_, c)| c.to_string())
                .unwrap_or_else(|| name.trim_start_matches("HS_").to_ascii_lowercase());
            out.push(CoovaOption {
                origin: origin.clone(),
                name: chilli,
                written: name.clone(),
                value: Some(self.expand(value, 0)),
            });
        }
        out
    }

    /// net, dynip, statip, uamserver, radiuslocationid, localusers.
    fn composites(&self) -> Vec<CoovaOption> {
        let mut out = Vec::new();
        let mut push = |name: &str, written: &str, origin: &Origin, value: String| {
            out.push(CoovaOption {
                origin: origin.clone(),
                name: name.into(),
                written: written.into(),
                value: Some(value),
            })
        };
        for (chilli, addr, mask) in [
            ("net", "HS_NETWORK", "HS_NETMASK"),
            ("dynip", "HS_DYNIP", "HS_DYNIP_MASK"),
            ("statip", "HS_STATIP", "HS_STATIP_MASK"),
        ] {
            if let Some((_, o, a)) = self.get(addr) {
                let a = self.expand(a, 0);
                let v = match self.get(mask) {
                    Some((_, _, m)) if !a.contains('/') => format!("{a}/{}", self.expand(m, 0)),
                    _ => a,
                };
                push(chilli, addr, o, v);
            }
        }
        if let Some((_, o, f)) = self.get("HS_UAMFORMAT") {
            push("uamserver", "HS_UAMFORMAT", o, self.expand(f, 0));
        }
        if let Some((_, o, v)) = self.get("HS_USELOCALUSERS") {
            if super::truthy(Some(v)) {
                push(
                    "localusers",
                    "HS_USELOCALUSERS",
                    o,
                    "/etc/chilli/localusers".into(),
                );
            }
        }
        if let Some(o) = self.location_origin() {
            push("radiuslocationid", "HS_LOC_*", &o, self.location_id());
        }
        out
    }

    fn location_origin(&self) -> Option<Origin> {
        ["HS_LOC_ISOCC", "HS_LOC_CC", "HS_LOC_AC", "HS_LOC_NETWORK"]
            .iter()
            .find_map(|k| self.get(k).map(|(_, o, _)| o.clone()))
    }

    /// The WISPr-Location-ID chilli's script builds from the HS_LOC_* parts.
    fn location_id(&self) -> String {
        let part = |k: &str| {
            self.get(k)
                .map(|(_, _, v)| self.expand(v, 0))
                .unwrap_or_default()
        };
        format!(
            "isocc={},cc={},ac={},network={}",
            part("HS_LOC_ISOCC"),
            part("HS_LOC_CC"),
            part("HS_LOC_AC"),
            part("HS_LOC_NETWORK")
        )
    }
}

/// `[export ]HS_NAME=value [# comment]` → name and value (quotes removed,
/// `\$` kept as a reference to expand later).
fn assignment(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
    if !line.starts_with("HS_") {
        return None;
    }
    let (name, rest) = line.split_once('=')?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((name.to_string(), shell_word(rest)))
}

/// The first shell word of `s`: '…' literal, "…" and bare text with `\x` escapes.
fn shell_word(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => out.push(c),
            (_, '\\') => out.extend(chars.next()),
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() || c == '#' => break,
            (_, c) => out.push(c),
        }
    }
    out
}
