//! `/etc/config/lassi`: lassi's configuration in UCI form, for OpenWrt.
//!
//! The mapping is one rule: a section of type T holds the keys of the TOML
//! table of the same name, with the same key names (`config lan` ↔
//! `[lan]`, `option lease_time '3600'` ↔ `lease_time = 3600`). Repeated
//! tables are repeated sections: `config static_lease` ↔
//! `[[lan.static_lease]]`, `config radius_server` ↔ `[[radius.server]]`,
//! `config lan_ipv6` ↔ `[lan.ipv6]`,
//! `config coa` ↔ `[radius.coa]`, `config coa_client` ↔
//! `[[radius.coa.client]]`. List keys take `list` lines (or one `option`
//! with the items separated by spaces). Booleans take UCI's spellings
//! (1/0, yes/no, on/off, true/false, enabled/disabled).
//!
//! `config lassi` holds what only the init script reads (`enabled`,
//! `trigger`); lassi skips it. Anything else unknown is an error naming
//! the key: an option silently ignored is a setting the operator thinks
//! is applied.

use super::{Section, UciOption};
use crate::config::ConfigError;

/// How a key's value is written in TOML.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

use Kind::{Bool, Int, List, Str};

/// A section type and the TOML table it fills.
struct Table {
    /// UCI section type.
    kind: &'static str,
    /// TOML path of the table.
    path: &'static str,
    /// May appear more than once (a TOML array of tables).
    repeated: bool,
    keys: &'static [(&'static str, Kind)],
}

/// Every section lassi reads, in the order the TOML is written.
const TABLES: &[Table] = &[
    Table {
        kind: "lan",
        path: "lan",
        repeated: false,
        keys: &[
            ("interface", Str),
            ("network", Str),
            ("gateway", Str),
            ("dns", List),
            ("dhcp_range", List),
            ("lease_time", Int),
            ("unauthorized_lease_time", Int),
            ("new_client_rate", Int),
            ("domain", Str),
            ("mtu", Int),
            ("client_isolation", Bool),
            ("captive_portal_uri", Str),
        ],
    },
    Table {
        kind: "static_lease",
        path: "lan.static_lease",
        repeated: true,
        keys: &[("mac", Str), ("ip", Str)],
    },
    Table {
        kind: "lan_ipv6",
        path: "lan.ipv6",
        repeated: false,
        keys: &[
            ("prefix", Str),
            ("address", Str),
            ("dns", List),
            ("slaac", Bool),
            ("managed", Bool),
            ("ra_interval", Int),
        ],
    },
    Table {
        kind: "uplink",
        path: "uplink",
        repeated: false,
        keys: &[
            ("tun_name", Str),
            ("wan_interface", Str),
            ("nat", Bool),
            ("ip_forward", Bool),
        ],
    },
    Table {
        kind: "dataplane",
        path: "dataplane",
        repeated: false,
        keys: &[("batch", Int), ("workers", Int), ("fast_path", Str)],
    },
    Table {
        kind: "portal",
        path: "portal",
        repeated: false,
        keys: &[
            ("port", Int),
            ("uam_server", Str),
            ("uam_secret", Str),
            ("auth", Str),
            ("users_file", Str),
            ("pages_dir", Str),
            ("success_url", Str),
            ("nas_id", Str),
            ("walled_garden", List),
            ("any_dns", Bool),
            ("venue_info_url", Str),
            ("challenge_timeout", Int),
        ],
    },
    Table {
        kind: "session",
        path: "session",
        repeated: false,
        keys: &[
            ("session_timeout", Int),
            ("idle_timeout", Int),
            ("interim_interval", Int),
            ("bandwidth_up", Int),
            ("bandwidth_down", Int),
            ("max_input_octets", Int),
            ("max_output_octets", Int),
            ("max_total_octets", Int),
            ("quota_action", Str),
            ("throttle_up", Int),
            ("throttle_down", Int),
            ("probe_after", Int),
            ("probe_interval", Int),
            ("probes", Int),
            ("restart_grace", Int),
            ("stop_on_shutdown", Bool),
        ],
    },
    Table {
        kind: "radius",
        path: "radius",
        repeated: false,
        keys: &[
            ("timeout", Int),
            ("retries", Int),
            ("dead_time", Int),
            ("status_interval", Int),
            ("require_message_authenticator", Bool),
            ("nas_identifier", Str),
            ("nas_ip", Str),
            ("called_station_id", Str),
            ("location_id", Str),
            ("location_name", Str),
            ("swap_octets", Bool),
            ("mac_auth", Bool),
            ("mac_suffix", Str),
            ("mac_password", Str),
            ("spool_max_records", Int),
        ],
    },
    Table {
        kind: "radius_server",
        path: "radius.server",
        repeated: true,
        keys: &[
            ("address", Str),
            ("secret", Str),
            ("auth_port", Int),
            ("acct_port", Int),
        ],
    },
    Table {
        kind: "coa",
        path: "radius.coa",
        repeated: false,
        keys: &[
            ("listen", Str),
            ("event_timestamp_window", Int),
            ("require_event_timestamp", Bool),
            ("nak_stale_event_timestamp", Bool),
            ("require_message_authenticator", Bool),
        ],
    },
    Table {
        kind: "coa_client",
        path: "radius.coa.client",
        repeated: true,
        keys: &[("address", Str), ("secret", Str)],
    },
    Table {
        kind: "control",
        path: "control",
        repeated: false,
        keys: &[("socket", Str)],
    },
    Table {
        kind: "state",
        path: "state",
        repeated: false,
        keys: &[("dir", Str)],
    },
    Table {
        kind: "metrics",
        path: "metrics",
        repeated: false,
        keys: &[("listen", Str)],
    },
    Table {
        kind: "hooks",
        path: "hooks",
        repeated: false,
        keys: &[
            ("conup", Str),
            ("condown", Str),
            ("ipup", Str),
            ("ipdown", Str),
            ("timeout", Int),
            ("max_running", Int),
            ("max_queued", Int),
        ],
    },
    Table {
        kind: "log",
        path: "log",
        repeated: false,
        keys: &[
            ("level", Str),
            ("format", Str),
            ("output", Str),
            ("syslog_socket", Str),
        ],
    },
];

/// The section the init script reads and lassi skips.
const INIT_SECTION: &str = "lassi";

/// Convert UCI text to lassi's TOML config. `file` names the source in
/// errors ("… (/etc/config/lassi line 7)").
pub fn to_toml(file: &str, text: &str) -> Result<String, ConfigError> {
    let sections = super::parse(text).map_err(|e| ConfigError {
        key: String::new(),
        reason: format!("{file}: {e}"),
    })?;
    check_section_kinds(file, &sections)?;
    let mut out = format!("# lassi configuration converted from {file} (UCI)\n");
    for table in TABLES {
        let of_kind: Vec<&Section> = sections.iter().filter(|s| s.kind == table.kind).collect();
        if !table.repeated && of_kind.len() > 1 {
            return Err(ConfigError {
                key: table.path.into(),
                reason: format!(
                    "`config {}` appears more than once ({file} lines {} and {}); it is one table",
                    table.kind, of_kind[0].line, of_kind[1].line
                ),
            });
        }
        for section in of_kind {
            let header = if table.repeated {
                format!("\n[[{}]]\n", table.path)
            } else {
                format!("\n[{}]\n", table.path)
            };
            out.push_str(&header);
            out.push_str(&section_body(file, table, section)?);
        }
    }
    Ok(out)
}

/// Every section must be one lassi reads (or the init script's own).
fn check_section_kinds(file: &str, sections: &[Section]) -> Result<(), ConfigError> {
    for s in sections {
        if s.kind != INIT_SECTION && !TABLES.iter().any(|t| t.kind == s.kind) {
            let known: Vec<&str> = TABLES.iter().map(|t| t.kind).collect();
            return Err(ConfigError {
                key: s.kind.clone(),
                reason: format!(
                    "unknown section type `config {}` ({file} line {}); lassi reads {} (and `config lassi` for the init script)",
                    s.kind,
                    s.line,
                    known.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// The `key = value` lines of one section: each key once, lists gathered.
fn section_body(file: &str, table: &Table, section: &Section) -> Result<String, ConfigError> {
    let mut body = String::new();
    let mut done: Vec<&str> = Vec::new();
    for opt in &section.options {
        if done.contains(&opt.name.as_str()) {
            continue;
        }
        let key = format!("{}.{}", table.path, opt.name);
        let Some(&(_, kind)) = table.keys.iter().find(|(k, _)| *k == opt.name) else {
            return Err(ConfigError {
                key,
                reason: format!("unknown option ({file} line {})", opt.line),
            });
        };
        let same: Vec<&UciOption> = section
            .options
            .iter()
            .filter(|o| o.name == opt.name)
            .collect();
        let value = render(file, &key, kind, &same)?;
        body.push_str(&format!("{} = {value}\n", opt.name));
        done.push(&opt.name);
    }
    Ok(body)
}

/// A key's TOML value from all its lines in the section (an `option` set
/// twice keeps the last, as uci does; `list` lines accumulate).
fn render(file: &str, key: &str, kind: Kind, lines: &[&UciOption]) -> Result<String, ConfigError> {
    let last = lines[lines.len() - 1];
    let bad = |why: String| ConfigError {
        key: key.to_string(),
        reason: format!("{why} ({file} line {})", last.line),
    };
    if kind != List {
        if let Some(l) = lines.iter().find(|o| o.list) {
            return Err(ConfigError {
                key: key.to_string(),
                reason: format!(
                    "takes one value: use `option`, not `list` ({file} line {})",
                    l.line
                ),
            });
        }
    }
    match kind {
        Str => Ok(crate::import::toml_string(&last.value)),
        Int => last
            .value
            .trim()
            .parse::<u64>()
            .map(|n| n.to_string())
            .map_err(|_| bad(format!("'{}' is not a whole number", last.value))),
        Bool => parse_bool(&last.value)
            .map(|b| b.to_string())
            .ok_or_else(|| {
                bad(format!(
                    "'{}' is not a boolean (1/0, yes/no, on/off, true/false)",
                    last.value
                ))
            }),
        List => Ok(format!("[{}]", list_items(lines).join(", "))),
    }
}

/// The items of a list key: every `list` line, and an `option` line's
/// space-separated words (the last `option` wins, as uci keeps one).
fn list_items(lines: &[&UciOption]) -> Vec<String> {
    let last_option = lines.iter().rposition(|o| !o.list);
    let mut items = Vec::new();
    for (i, o) in lines.iter().enumerate() {
        if o.list {
            items.push(crate::import::toml_string(&o.value));
        } else if Some(i) == last_option {
            items.extend(o.value.split_whitespace().map(crate::import::toml_string));
        }
    }
    items
}

/// UCI's boolean spellings (those of `config_get_bool` in OpenWrt's shell library).
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" | "enabled" => Some(true),
        "0" | "no" | "off" | "false" | "disabled" => Some(false),
        _ => None,
    }
}

/// Every (table path, key) lassi reads from UCI: for the test that keeps
/// this mapping and examples/lassi.toml in step.
#[cfg(test)]
pub(super) fn mapped_keys() -> Vec<(String, String)> {
    TABLES
        .iter()
        .flat_map(|t| {
            t.keys
                .iter()
                .map(|(k, _)| (t.path.to_string(), k.to_string()))
        })
        .collect()
}
