//! Config text to the raw sections serde reads, with errors that name the
//! key and its line.
//!
//! Why a detour through a `serde_json::Value` tree: deserializing the raw
//! structs straight from basic_toml instantiated their serde code once per
//! basic_toml deserializer type (several), about 120 KB of every MIPS
//! binary. Parsed into a tree first, the structs are deserialized by
//! serde_json's tree deserializer only, which the control socket has
//! anyway. The tree deserializer knows no key paths, so on an error the key
//! is found here: the subtree whose removal makes the error go away holds
//! it (serde reports the first bad field it meets, and removing a good one
//! never changes that), and the line is looked up in the text.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ConfigError;

/// One step of a key path: a table key or an index into an array of tables.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Parse TOML `text` and deserialize it as `T`; errors name the key.
pub(super) fn deserialize<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let tree: Value = basic_toml::from_str(text).map_err(syntax_error)?;
    let attempt = |t: &Value| T::deserialize(t).err().map(|e| e.to_string());
    match T::deserialize(&tree) {
        Ok(v) => Ok(v),
        Err(e) => Err(blame(text, &tree, e.to_string(), &attempt)),
    }
}

/// The error `msg` that deserializing `tree` gave, with the key it is about.
fn blame(
    text: &str,
    tree: &Value,
    msg: String,
    attempt: &dyn Fn(&Value) -> Option<String>,
) -> ConfigError {
    let path = match backticked(&msg, "missing field `") {
        Some(field) => missing_field_path(tree, field, &msg, attempt),
        None => {
            let mut path = Vec::new();
            while let Some(step) = culprit_child(tree, &path, &msg, attempt) {
                path.push(step);
            }
            path
        }
    };
    let reason = match line_of(text, &path) {
        Some(line) => format!("{msg} (line {line})"),
        None => msg,
    };
    ConfigError {
        key: dotted(&path),
        reason,
    }
}

/// The child of the node at `path` whose removal changes the error.
fn culprit_child(
    tree: &Value,
    path: &[Step],
    msg: &str,
    attempt: &dyn Fn(&Value) -> Option<String>,
) -> Option<Step> {
    let children: Vec<Step> = match node(tree, path)? {
        Value::Object(m) => m.keys().map(|k| Step::Key(k.clone())).collect(),
        Value::Array(a) => (0..a.len()).map(Step::Index).collect(),
        _ => return None,
    };
    children.into_iter().find(|child| {
        let mut trial = tree.clone();
        remove(&mut trial, path, child);
        attempt(&trial).as_deref() != Some(msg)
    })
}

/// Where a missing field belongs: the first table that, given the field
/// (as null), reports something else about it — a table without such a
/// field would call it unknown instead.
fn missing_field_path(
    tree: &Value,
    field: &str,
    msg: &str,
    attempt: &dyn Fn(&Value) -> Option<String>,
) -> Vec<Step> {
    let mut tables = vec![Vec::new()];
    let mut i = 0;
    while let Some(path) = tables.get(i).cloned() {
        i += 1;
        let Some(here) = node(tree, &path) else {
            continue;
        };
        for (step, child) in children(here) {
            if child.is_object() || child.is_array() {
                tables.push([path.clone(), vec![step]].concat());
            }
        }
        if !here.is_object() || here.get(field).is_some() {
            continue;
        }
        let mut trial = tree.clone();
        if let Some(Value::Object(m)) = node_mut(&mut trial, &path) {
            m.insert(field.to_string(), Value::Null);
        }
        match attempt(&trial) {
            Some(e) if e == msg || e.starts_with("unknown field") => {}
            _ => return [path, vec![Step::Key(field.to_string())]].concat(),
        }
    }
    vec![Step::Key(field.to_string())]
}

fn children(v: &Value) -> Vec<(Step, &Value)> {
    match v {
        Value::Object(m) => m.iter().map(|(k, c)| (Step::Key(k.clone()), c)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (Step::Index(i), c))
            .collect(),
        _ => Vec::new(),
    }
}

fn node<'a>(tree: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(tree, |v, step| match step {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

fn node_mut<'a>(tree: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(tree, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

fn remove(tree: &mut Value, path: &[Step], child: &Step) {
    let Some(v) = node_mut(tree, path) else {
        return;
    };
    match (v, child) {
        (Value::Object(m), Step::Key(k)) => {
            m.remove(k);
        }
        (Value::Array(a), Step::Index(i)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

/// `lan.static_lease[1].mac`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    msg.strip_prefix(prefix)?.split('`').next()
}

/// The line (from 1) where the key at `path` is written, if it can be
/// found: its `key = …` line under the right `[table]` / `[[array]]`
/// header, or the header of the table it is in.
fn line_of(text: &str, path: &[Step]) -> Option<usize> {
    let (table, key) = split_table_key(path);
    let mut current = (String::new(), 0usize);
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut header_line = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = header_name(line) {
            let count = seen.iter().filter(|(s, _)| *s == name).count();
            seen.push((name.clone(), n));
            current = (name, count);
            if current == table {
                header_line = Some(n + 1);
            }
            continue;
        }
        let Some(k) = key else { continue };
        let written = line
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if current == table && line.contains('=') && written == k {
            return Some(n + 1);
        }
    }
    header_line
}

/// The table a path's key sits in (name, index among `[[name]]` headers)
/// and the key itself.
fn split_table_key(path: &[Step]) -> ((String, usize), Option<&str>) {
    let (key, table_path) = match path.split_last() {
        Some((Step::Key(k), rest)) => (Some(k.as_str()), rest),
        _ => (None, path),
    };
    let index = match table_path.last() {
        Some(Step::Index(i)) => *i,
        _ => 0,
    };
    let names: Vec<&str> = table_path
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
        .collect();
    ((names.join("."), index), key)
}

/// `lan` from `[lan]`, `lan.static_lease` from `[[lan.static_lease]]`.
fn header_name(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let end = inner.find(']')?;
    Some(inner[..end].trim().replace(' ', ""))
}

/// basic_toml's own error (bad syntax), with the key it names and its line
/// ("expected an equals, found a newline at line 3 column 5"; lines
/// counted from 1 here, as editors do).
fn syntax_error(e: basic_toml::Error) -> ConfigError {
    let msg = e.to_string();
    let key = msg
        .split('`')
        .nth(1)
        .filter(|_| msg.contains("field"))
        .unwrap_or("")
        .to_string();
    let reason = match e.line_col() {
        Some((line, col)) => {
            let head = msg.split(" at line ").next().unwrap_or(&msg);
            format!("{head} (line {}, column {})", line + 1, col + 1)
        }
        None => msg,
    };
    ConfigError { key, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Top {
        lan: Lan,
        #[serde(default)]
        radius: Option<Radius>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Lan {
        interface: String,
        #[serde(default)]
        mtu: Option<u16>,
        #[serde(default)]
        static_lease: Vec<Lease>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Lease {
        mac: String,
        ip: String,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Radius {
        secret: String,
    }

    fn refused(text: &str) -> ConfigError {
        deserialize::<Top>(text).expect_err("refused")
    }

    #[test]
    fn wrong_type_names_the_key_and_line() {
        let e = refused("[lan]\ninterface = \"lan0\"\nmtu = \"big\"\n");
        assert_eq!(e.key, "lan.mtu");
        assert!(
            e.reason.contains("expected u16") && e.reason.contains("(line 3)"),
            "{e}"
        );
        let e = refused("[lan]\ninterface = \"lan0\"\nmtu = 70000\n");
        assert_eq!(e.key, "lan.mtu", "{e}");
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let e = refused("[lan]\ninterface = \"lan0\"\ncolour = \"blue\"\n");
        assert_eq!(e.key, "lan.colour");
        assert!(
            e.reason.contains("unknown field") && e.reason.contains("line 3"),
            "{e}"
        );
        let e = refused("[lan]\nmtu = 1500\n");
        assert_eq!(e.key, "lan.interface", "{e}");
        assert!(e.reason.contains("line 1"), "the table's header: {e}");
        let e = refused("[lan]\ninterface = \"x\"\n[radius]\n");
        assert_eq!(e.key, "radius.secret", "{e}");
        let e = refused("[lan]\ninterface = \"x\"\n[wan]\n");
        assert_eq!(e.key, "wan", "{e}");
    }

    #[test]
    fn arrays_of_tables_are_indexed() {
        let text = "[lan]\ninterface = \"x\"\n[[lan.static_lease]]\nmac = \"a\"\nip = \"b\"\n\
                    [[lan.static_lease]]\nmac = 5\nip = \"c\"\n";
        let e = refused(text);
        assert_eq!(e.key, "lan.static_lease[1].mac");
        assert!(e.reason.contains("(line 7)"), "{e}");
    }

    #[test]
    fn syntax_errors_keep_their_position() {
        let e = refused("[lan\n");
        assert!(e.reason.contains("line 1"), "{e}");
    }

    #[test]
    fn good_text_deserializes() {
        let t: Top = deserialize("[lan]\ninterface = \"lan0\"\nmtu = 1400\n").unwrap();
        assert_eq!(t.lan.mtu, Some(1400));
    }
}
