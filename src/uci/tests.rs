use super::lassi::{mapped_keys, to_toml};
use super::*;
use crate::config::Config;

/// The package's default /etc/config/lassi.
const OPENWRT_DEFAULT: &str = include_str!("../../packaging/openwrt/lassi/files/lassi.config");

#[test]
fn parses_sections_options_lists_quotes_and_comments() {
    let text = "# header\npackage lassi\n\nconfig lan 'lan'\n\toption interface 'br-lan' # the LAN\n\tlist dns \"192.0.2.53\"\n\tlist dns 192.0.2.54\n\noption_like_text_in_comment # no\nconfig radius_server\n\toption secret 'it''s'\n";
    let err = parse(text).unwrap_err();
    assert_eq!(err.line, 9, "a bare word is not a keyword: {err}");
    let text = text.replace("option_like_text_in_comment # no\n", "");
    let s = parse(&text).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].kind, "lan");
    assert_eq!(s[0].name.as_deref(), Some("lan"));
    assert_eq!(s[0].line, 4);
    let values: Vec<(&str, &str, bool)> = s[0]
        .options
        .iter()
        .map(|o| (o.name.as_str(), o.value.as_str(), o.list))
        .collect();
    assert_eq!(
        values,
        [
            ("interface", "br-lan", false),
            ("dns", "192.0.2.53", true),
            ("dns", "192.0.2.54", true)
        ]
    );
    assert_eq!(s[1].name, None);
    // Adjacent quoted pieces join into one word, as in the shell.
    assert_eq!(s[1].options[0].value, "its");
}

#[test]
fn parse_errors_name_the_line() {
    for (text, line, what) in [
        ("option interface 'x'\n", 1, "before any `config`"),
        (
            "config lan\n\toption interface 'br-lan\n",
            2,
            "unterminated quote",
        ),
        (
            "config lan\n\toption interface\n",
            2,
            "needs a name and a value",
        ),
        (
            "config lan\n\n\tset interface x\n",
            3,
            "expected config, option or list",
        ),
        ("config\n", 1, "section type"),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.reason.contains(what), "{text:?}: {e}");
    }
}

#[test]
fn tells_uci_from_toml() {
    assert!(looks_like_uci(OPENWRT_DEFAULT));
    assert!(looks_like_uci("\n# c\nconfig lan\n"));
    assert!(looks_like_uci("package lassi\n"));
    assert!(!looks_like_uci(include_str!("../../examples/lassi.toml")));
    assert!(!looks_like_uci("config = 1\n"));
    assert!(!looks_like_uci("[lan]\ninterface = \"x\"\n"));
}

#[test]
fn the_openwrt_default_config_converts_and_validates() {
    let toml = to_toml("/etc/config/lassi", OPENWRT_DEFAULT).unwrap();
    let cfg = Config::parse(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(cfg.lan.interface, "br-lan");
    assert_eq!(cfg.uplink.tun_name, "lassi0");
    // fw4 masquerades the wan zone: lassi must not add its own NAT there.
    assert!(!cfg.uplink.nat);
}

/// A UCI file and the TOML file it stands for give the same Config: every
/// kind of key (string, number, boolean, list, repeated section).
#[test]
fn uci_reads_as_the_same_config_as_toml() {
    let uci = "config lassi 'main'\n\toption enabled '1'\n\tlist trigger 'lan'\n\
config lan 'lan'\n\toption interface 'lan0'\n\toption network '10.1.0.0/24'\n\toption gateway '10.1.0.1'\n\
\tlist dns '192.0.2.53'\n\tlist dns '192.0.2.54'\n\toption dhcp_range '10.1.0.10 10.1.0.250'\n\
\toption lease_time '7200'\n\toption client_isolation 'no'\n\toption domain 'cafe.lan'\n\
config static_lease\n\toption mac '02:00:00:00:00:42'\n\toption ip '10.1.0.5'\n\
config static_lease\n\toption mac '02:00:00:00:00:43'\n\toption ip '10.1.0.6'\n\
config uplink\n\toption tun_name 'lassi0'\n\toption nat 'off'\n\
config portal\n\toption auth 'radius'\n\tlist walled_garden '198.51.100.20'\n\tlist walled_garden '*.example.org'\n\
config session\n\toption idle_timeout '600'\n\toption quota_action 'throttle'\n\toption throttle_up '128000'\n\toption throttle_down '256000'\n\
config radius\n\toption nas_identifier 'cafe-1'\n\toption swap_octets 'true'\n\toption location_name 'Cafe \"Blue\"'\n\
config radius_server\n\toption address '192.0.2.10'\n\toption secret 's3cr\\\\et'\n\
config radius_server\n\toption address '192.0.2.11'\n\toption secret 'two'\n\toption auth_port '11812'\n\
config coa\n\toption listen '0.0.0.0:3799'\n\
config coa_client\n\toption address '192.0.2.10'\n\toption secret 'coa'\n\
config dataplane\n\toption workers '3'\n";
    let toml = r#"
[lan]
interface = "lan0"
network = "10.1.0.0/24"
gateway = "10.1.0.1"
dns = ["192.0.2.53", "192.0.2.54"]
dhcp_range = ["10.1.0.10", "10.1.0.250"]
lease_time = 7200
client_isolation = false
domain = "cafe.lan"
[[lan.static_lease]]
mac = "02:00:00:00:00:42"
ip = "10.1.0.5"
[[lan.static_lease]]
mac = "02:00:00:00:00:43"
ip = "10.1.0.6"
[uplink]
tun_name = "lassi0"
nat = false
[portal]
auth = "radius"
walled_garden = ["198.51.100.20", "*.example.org"]
[session]
idle_timeout = 600
quota_action = "throttle"
throttle_up = 128000
throttle_down = 256000
[radius]
nas_identifier = "cafe-1"
swap_octets = true
location_name = "Cafe \"Blue\""
[[radius.server]]
address = "192.0.2.10"
secret = 's3cr\\et'
[[radius.server]]
address = "192.0.2.11"
secret = "two"
auth_port = 11812
[radius.coa]
listen = "0.0.0.0:3799"
[[radius.coa.client]]
address = "192.0.2.10"
secret = "coa"
[dataplane]
workers = 3
"#;
    let converted = to_toml("test", uci).unwrap();
    let from_uci = Config::parse(&converted).unwrap_or_else(|e| panic!("{e}\n{converted}"));
    let from_toml = Config::parse(toml).unwrap();
    assert_eq!(
        format!("{from_uci:?}"),
        format!("{from_toml:?}"),
        "{converted}"
    );
}

#[test]
fn mistakes_are_errors_naming_the_key() {
    let base = "config lan\n\toption interface 'lan0'\n";
    for (extra, key, why) in [
        (
            "\toption lease_tme '60'\n",
            "lan.lease_tme",
            "unknown option",
        ),
        (
            "\toption lease_time 'an hour'\n",
            "lan.lease_time",
            "not a whole number",
        ),
        (
            "\toption lease_time '-5'\n",
            "lan.lease_time",
            "not a whole number",
        ),
        (
            "\toption client_isolation 'maybe'\n",
            "lan.client_isolation",
            "not a boolean",
        ),
        (
            "\tlist network '10.1.0.0/24'\n",
            "lan.network",
            "takes one value",
        ),
        ("config lan\n", "lan", "more than once"),
        ("config chilli\n", "chilli", "unknown section type"),
        (
            "config radius_server\n\toption port '1812'\n",
            "radius.server.port",
            "unknown option",
        ),
    ] {
        let e = to_toml("/etc/config/lassi", &format!("{base}{extra}")).unwrap_err();
        assert_eq!(e.key, key, "{extra:?}: {e}");
        assert!(e.reason.contains(why), "{extra:?}: {e}");
        assert!(
            e.reason.contains("/etc/config/lassi"),
            "names the file: {e}"
        );
    }
}

#[test]
fn booleans_take_every_uci_spelling() {
    for (v, b) in [
        ("1", true),
        ("yes", true),
        ("on", true),
        ("true", true),
        ("enabled", true),
        ("0", false),
        ("no", false),
        ("off", false),
        ("False", false),
        ("disabled", false),
    ] {
        let t = to_toml("t", &format!("config uplink\n\toption nat '{v}'\n")).unwrap();
        assert!(t.contains(&format!("nat = {b}\n")), "{v}: {t}");
    }
}

#[test]
fn the_last_option_wins_and_lists_accumulate() {
    let t = to_toml(
        "t",
        "config lan\n\toption domain 'a'\n\toption domain 'b'\n\toption dns '1.1.1.1'\n\toption dns '2.2.2.2 3.3.3.3'\n\tlist dns '4.4.4.4'\n",
    )
    .unwrap();
    assert!(t.contains("domain = \"b\"\n"), "{t}");
    assert!(
        t.contains("dns = [\"2.2.2.2\", \"3.3.3.3\", \"4.4.4.4\"]\n"),
        "{t}"
    );
}

/// Every key examples/lassi.toml documents (set or commented out) can be
/// written in /etc/config/lassi: a key added to lassi without a UCI
/// mapping fails here.
#[test]
fn the_kernel_fast_path_is_chosen_in_uci_too() {
    let uci = "config lan\n\toption interface 'br-guest'\n\toption network '10.1.0.0/24'\n\
\toption gateway '10.1.0.1'\n\tlist dns '192.0.2.53'\n\
config dataplane\n\toption fast_path 'kernel'\n";
    let converted = to_toml("test", uci).unwrap();
    let c = Config::parse(&converted).unwrap_or_else(|e| panic!("{e}\n{converted}"));
    assert_eq!(c.dataplane.fast_path, crate::config::FastPathKind::Kernel);
    assert_eq!(c.dataplane.workers, 1);
}

#[test]
fn every_documented_key_has_a_uci_mapping() {
    let mapped = mapped_keys();
    let mut table = String::new();
    let mut missing = Vec::new();
    for line in include_str!("../../examples/lassi.toml").lines() {
        let l = line.trim_start_matches('#').trim();
        if let Some(t) = l.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            table = t.to_string();
        } else if let Some(t) = l.strip_prefix('[').and_then(|l| l.split(']').next()) {
            if !t.contains(' ') && !t.is_empty() {
                table = t.to_string();
            }
        } else if let Some((k, _)) = l.split_once(" = ") {
            let k = k.trim();
            if k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && !mapped.contains(&(table.clone(), k.to_string()))
            {
                missing.push(format!("{table}.{k}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys without a UCI mapping: {missing:?}"
    );
}
