//! UCI (`/etc/config/chilli`): `config chilli` sections of `option name
//! 'value'` and `list name 'value'` lines. chilli's OpenWrt init script turns
//! each option into the chilli.conf option of the same name.

use super::{CoovaOption, Origin};

/// The options of every `config chilli` section.
pub(super) fn parse(file: &str, text: &str) -> Vec<CoovaOption> {
    let mut out = Vec::new();
    let mut in_chilli = false;
    for (n, line) in text.lines().enumerate() {
        let words = words(line);
        let origin = Origin {
            file: file.to_string(),
            line: n + 1,
        };
        match words.first().map(String::as_str) {
            Some("config") => in_chilli = words.get(1).map(String::as_str) == Some("chilli"),
            Some("option" | "list") if in_chilli && words.len() >= 2 => {
                let name = words[1].to_ascii_lowercase();
                out.push(CoovaOption {
                    origin,
                    written: name.clone(),
                    name,
                    value: words.get(2).cloned(),
                });
            }
            _ => {}
        }
    }
    out
}

/// The words of a UCI line, with '…' and "…" quoting; stops at a `#` outside quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '#') => break,
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, c) => {
                cur.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(cur);
    }
    out
}
