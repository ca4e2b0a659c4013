//! chilli.conf: `name value` (or `name=value`) lines, bare names for flags,
//! `#` comments, `include FILE`.

use super::{CoovaOption, Origin};

/// How deep `include`s may nest (a loop would otherwise never end).
const MAX_DEPTH: usize = 8;

/// The options of one chilli.conf, with its includes read through `read`.
pub(super) fn parse(
    file: &str,
    text: &str,
    read: &mut dyn FnMut(&str) -> Result<String, String>,
    depth: usize,
) -> Result<Vec<CoovaOption>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some((name, value)) = split_line(line) else {
            continue;
        };
        let origin = Origin {
            file: file.to_string(),
            line: n + 1,
        };
        if name == "include" {
            let path = value.unwrap_or_default();
            if depth >= MAX_DEPTH {
                return Err(format!("{origin}: include nested too deep: {path}"));
            }
            let inner = read(&path).map_err(|e| format!("{origin}: include {path}: {e}"))?;
            out.extend(parse(&path, &inner, read, depth + 1)?);
            continue;
        }
        out.push(CoovaOption {
            origin,
            written: name.clone(),
            name,
            value,
        });
    }
    Ok(out)
}

/// `name value`, `name=value` or a bare `name`; `None` for blank and comment lines.
fn split_line(line: &str) -> Option<(String, Option<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(end);
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '=');
    let rest = rest.trim();
    let value = (!rest.is_empty()).then(|| unquote(rest));
    Some((name.to_ascii_lowercase(), value))
}

/// A value without its surrounding double quotes.
fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}
