//! UCI (`/etc/config/chilli`): `config chilli` sections of `option name
//! 'value'` and `list name 'value'` lines. chilli's OpenWrt init script turns
//! each option into the chilli.conf option of the same name.

use super::{CoovaOption, Origin};
use crate::uci::words;

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
