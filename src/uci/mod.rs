//! OpenWrt's UCI configuration format (`/etc/config/NAME`): `config TYPE
//! ['NAME']` starts a section, `option KEY 'VALUE'` and `list KEY 'VALUE'`
//! lines fill it. lassi reads `/etc/config/lassi` directly ([`lassi`]) and
//! CoovaChilli's `/etc/config/chilli` when importing.
//!
//! No crate parses UCI without libuci (C); the format is a few lines of
//! lexing, done here.

pub mod lassi;

/// One `config` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Its type (`config lan` → `lan`).
    pub kind: String,
    /// Its name, if it has one (`config lan 'guests'`).
    pub name: Option<String>,
    /// Line of the `config` keyword (1-based).
    pub line: usize,
    /// Its `option` and `list` lines, in file order.
    pub options: Vec<UciOption>,
}

/// One `option` or `list` line.
#[derive(Debug, Clone, PartialEq)]
pub struct UciOption {
    /// The key.
    pub name: String,
    /// The value, unquoted.
    pub value: String,
    /// Written as `list` (one item of a list) rather than `option`.
    pub list: bool,
    /// Line number (1-based).
    pub line: usize,
}

/// A line the parser cannot take.
#[derive(Debug, Clone, PartialEq)]
pub struct UciError {
    /// Line number (1-based).
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for UciError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Whether `text` is UCI rather than TOML: its first statement is
/// `config …` or `package …`, which TOML cannot start with (a bare key
/// must be followed by `=`).
pub fn looks_like_uci(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            (first == "config" || first == "package") && !l.contains('=')
        })
}

/// Parse a UCI file into its sections. Strict: an option outside a
/// section, a keyword lassi does not know, a missing value or an
/// unterminated quote is an error naming the line.
pub fn parse(text: &str) -> Result<Vec<Section>, UciError> {
    let mut sections: Vec<Section> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let err = |reason: String| UciError {
            line: line_no,
            reason,
        };
        if unterminated_quote(line) {
            return Err(err("unterminated quote".into()));
        }
        let w = words(line);
        match w.first().map(String::as_str) {
            None | Some("package") => {}
            Some("config") => {
                let kind = w.get(1).filter(|k| !k.is_empty()).ok_or_else(|| {
                    err("`config` needs a section type (config TYPE ['NAME'])".into())
                })?;
                sections.push(Section {
                    kind: kind.clone(),
                    name: w.get(2).cloned(),
                    line: line_no,
                    options: Vec::new(),
                });
            }
            Some(kw @ ("option" | "list")) => {
                let section = sections
                    .last_mut()
                    .ok_or_else(|| err(format!("`{kw}` before any `config` section")))?;
                let (Some(name), Some(value)) = (w.get(1), w.get(2)) else {
                    return Err(err(format!("`{kw}` needs a name and a value")));
                };
                section.options.push(UciOption {
                    name: name.clone(),
                    value: value.clone(),
                    list: kw == "list",
                    line: line_no,
                });
            }
            Some(other) => return Err(err(format!("`{other}`: expected config, option or list"))),
        }
    }
    Ok(sections)
}

/// Whether a quote opened on this line (outside a comment) is never closed.
fn unterminated_quote(line: &str) -> bool {
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') => return false,
            _ => {}
        }
    }
    quote.is_some()
}

/// The words of a UCI line, with '…' and "…" quoting; stops at a `#` outside quotes.
pub fn words(line: &str) -> Vec<String> {
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

#[cfg(test)]
mod tests;
