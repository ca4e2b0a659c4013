use super::*;

/// Every section present, so each key can be changed by one edit.
const BASE: &str = r#"
[lan]
interface = "lan0"
network = "10.1.0.0/24"
dns = ["10.1.0.1"]
lease_time = 3600

[uplink]
tun_name = "lassi0"

[portal]
auth = "radius"
uam_secret = "uam"
walled_garden = ["198.51.100.10"]

[session]
idle_timeout = 600

[radius]
nas_identifier = "hotspot"

[[radius.server]]
address = "127.0.0.1"
secret = "testing123"

[radius.coa]
listen = "127.0.0.1:3799"

[[radius.coa.client]]
address = "127.0.0.1"
secret = "coa"

[metrics]
listen = "127.0.0.1:9090"
"#;

fn cfg(text: &str) -> Config {
    Config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// BASE with `from` replaced by `to` (which must occur once).
fn edited(from: &str, to: &str) -> Config {
    assert_eq!(BASE.matches(from).count(), 1, "{from}");
    cfg(&BASE.replacen(from, to, 1))
}

fn keys(d: &ConfigDiff) -> Vec<&str> {
    d.changed.iter().map(String::as_str).collect()
}

fn not_live(d: &ConfigDiff) -> Vec<&str> {
    d.not_live.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn same_file_changes_nothing() {
    let d = diff(&cfg(BASE), &cfg(BASE));
    assert!(d.is_empty());
    assert_eq!(d.refusal(), None);
}

/// One edit each, the key it must be reported as, and whether it is live.
const EDITS: &[(&str, &str, &[&str], bool)] = &[
    (
        "[metrics]",
        "[log]\nlevel = \"debug\"\nformat = \"json\"\n\n[metrics]",
        &["log.level", "log.format"],
        true,
    ),
    (
        "[metrics]",
        "[hooks]\ntimeout = 3\nmax_running = 2\n\n[metrics]",
        &["hooks.timeout", "hooks.max_running"],
        true,
    ),
    (
        "listen = \"127.0.0.1:9090\"",
        "listen = \"127.0.0.1:9191\"",
        &["metrics.listen"],
        true,
    ),
    (
        "interface = \"lan0\"",
        "interface = \"lan1\"",
        &["lan.interface"],
        false,
    ),
    (
        "dns = [\"10.1.0.1\"]",
        "dns = [\"10.1.0.2\"]",
        &["lan.dns"],
        false,
    ),
    (
        "lease_time = 3600",
        "lease_time = 7200",
        &["lan.lease_time"],
        false,
    ),
    (
        "lease_time = 3600",
        "lease_time = 3600\nclient_isolation = false",
        &["lan.client_isolation"],
        true,
    ),
    (
        "lease_time = 3600",
        "lease_time = 3600\nmtu = 1400",
        &["lan.mtu"],
        false,
    ),
    (
        "tun_name = \"lassi0\"",
        "tun_name = \"lassi1\"",
        &["uplink.tun_name"],
        false,
    ),
    (
        "tun_name = \"lassi0\"",
        "tun_name = \"lassi0\"\n[dataplane]\nbatch = 8",
        &["dataplane.batch"],
        false,
    ),
    (
        "uam_secret = \"uam\"",
        "uam_secret = \"other\"",
        &["portal.uam_secret"],
        true,
    ),
    (
        "uam_secret = \"uam\"",
        "uam_secret = \"uam\"\nport = 4000",
        &["lan.captive_portal_uri", "portal.port"],
        false,
    ),
    (
        "uam_secret = \"uam\"",
        "uam_secret = \"uam\"\nnas_id = \"cafe\"",
        &["portal.nas_id"],
        true,
    ),
    (
        "uam_secret = \"uam\"",
        "uam_secret = \"uam\"\nsuccess_url = \"http://x.example/\"",
        &["portal.success_url"],
        true,
    ),
    (
        "uam_secret = \"uam\"",
        "uam_secret = \"uam\"\nchallenge_timeout = 60",
        &["portal.challenge_timeout"],
        true,
    ),
    (
        "uam_secret = \"uam\"",
        "uam_secret = \"uam\"\nany_dns = true",
        &["portal.any_dns"],
        true,
    ),
    (
        "uam_secret = \"uam\"",
        "uam_secret = \"uam\"\npages_dir = \"/tmp/p\"",
        &["portal.pages_dir"],
        true,
    ),
    (
        "auth = \"radius\"",
        "auth = \"click-through\"",
        &["portal.auth"],
        true,
    ),
    (
        "[\"198.51.100.10\"]",
        "[\"198.51.100.11\"]",
        &["portal.walled_garden"],
        true,
    ),
    (
        "idle_timeout = 600",
        "idle_timeout = 900",
        &["session.idle_timeout"],
        true,
    ),
    (
        "idle_timeout = 600",
        "idle_timeout = 600\nsession_timeout = 60",
        &["session.session_timeout"],
        true,
    ),
    (
        "idle_timeout = 600",
        "idle_timeout = 600\nbandwidth_down = 1000000",
        &["session.bandwidth_down"],
        true,
    ),
    (
        "idle_timeout = 600",
        "idle_timeout = 600\nprobe_after = 30",
        &["session.probe_after"],
        true,
    ),
    (
        "idle_timeout = 600",
        "idle_timeout = 600\nstop_on_shutdown = true",
        &["session.stop_on_shutdown"],
        true,
    ),
    (
        "secret = \"testing123\"",
        "secret = \"other\"",
        &["radius.server"],
        true,
    ),
    (
        "address = \"127.0.0.1\"\nsecret = \"testing123\"",
        "address = \"127.0.0.2\"\nsecret = \"testing123\"",
        &["radius.server"],
        true,
    ),
    (
        "nas_identifier = \"hotspot\"",
        "nas_identifier = \"other\"",
        &["radius.nas_identifier"],
        true,
    ),
    (
        "nas_identifier = \"hotspot\"",
        "nas_identifier = \"hotspot\"\ntimeout = 5",
        &["radius.timeout"],
        true,
    ),
    (
        "nas_identifier = \"hotspot\"",
        "nas_identifier = \"hotspot\"\nretries = 4",
        &["radius.retries"],
        true,
    ),
    (
        "nas_identifier = \"hotspot\"",
        "nas_identifier = \"hotspot\"\nmac_password = \"x\"",
        &["radius.mac_password"],
        true,
    ),
    (
        "nas_identifier = \"hotspot\"",
        "nas_identifier = \"hotspot\"\nmac_auth = true",
        &["radius.mac_auth"],
        false,
    ),
    (
        "nas_identifier = \"hotspot\"",
        "nas_identifier = \"hotspot\"\nswap_octets = true",
        &["radius.swap_octets"],
        false,
    ),
    (
        "nas_identifier = \"hotspot\"",
        "nas_identifier = \"hotspot\"\nspool_max_records = 500",
        &["radius.spool_max_records"],
        false,
    ),
    (
        "listen = \"127.0.0.1:3799\"",
        "listen = \"127.0.0.1:3800\"",
        &["radius.coa.listen"],
        false,
    ),
    (
        "secret = \"coa\"",
        "secret = \"coa2\"",
        &["radius.coa.client"],
        true,
    ),
    (
        "listen = \"127.0.0.1:3799\"",
        "listen = \"127.0.0.1:3799\"\nrequire_event_timestamp = true",
        &["radius.coa.require_event_timestamp"],
        true,
    ),
    (
        "[portal]",
        "[control]\nsocket = \"/tmp/other.sock\"\n[portal]",
        &["control.socket"],
        false,
    ),
    (
        "[portal]",
        "[state]\ndir = \"/tmp/other\"\n[portal]",
        &["state.dir"],
        false,
    ),
];

#[test]
fn each_key_is_reported_by_its_dotted_name_and_classified() {
    let base = cfg(BASE);
    for (from, to, key, live) in EDITS {
        let d = diff(&base, &edited(from, to));
        assert_eq!(keys(&d), *key, "edit {to:?}");
        assert_eq!(not_live(&d).is_empty(), *live, "{key:?}: {:?}", d.not_live);
        // The same edit back is the same keys.
        assert_eq!(keys(&diff(&edited(from, to), &base)), *key);
    }
}

#[test]
fn a_new_network_is_refused_naming_the_key_and_what_follows_from_it() {
    let d = diff(
        &cfg(BASE),
        &edited("network = \"10.1.0.0/24\"", "network = \"10.2.0.0/24\""),
    );
    // The gateway, the pool and the option-114 URI default from the network.
    assert_eq!(
        keys(&d),
        [
            "lan.network",
            "lan.gateway",
            "lan.dhcp_range",
            "lan.captive_portal_uri"
        ]
    );
    assert_eq!(not_live(&d), keys(&d));
    let refusal = d.refusal().unwrap();
    assert!(
        refusal.contains("lan.network: leases, sessions"),
        "{refusal}"
    );
    assert!(refusal.contains("nothing was applied"), "{refusal}");
}

#[test]
fn live_and_refused_keys_together_refuse_only_the_refused_ones() {
    let new = cfg(&BASE
        .replace("secret = \"testing123\"", "secret = \"new\"")
        .replace("tun_name = \"lassi0\"", "tun_name = \"lassi9\""));
    let d = diff(&cfg(BASE), &new);
    assert_eq!(keys(&d), ["uplink.tun_name", "radius.server"]);
    assert_eq!(not_live(&d), ["uplink.tun_name"]);
    let refusal = d.refusal().unwrap();
    assert!(refusal.contains("uplink.tun_name"), "{refusal}");
    assert!(!refusal.contains("radius.server"), "{refusal}");
}

#[test]
fn adding_or_removing_sections() {
    let no_radius =
        cfg("[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"10.1.0.1\"]\n");
    let with_radius = cfg(
        "[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"10.1.0.1\"]\n\
         [radius]\n[[radius.server]]\naddress = \"127.0.0.1\"\nsecret = \"s\"\n",
    );
    assert_eq!(not_live(&diff(&no_radius, &with_radius)), ["radius"]);
    assert_eq!(not_live(&diff(&with_radius, &no_radius)), ["radius"]);
    let base = cfg(BASE);
    let no_coa = cfg(&BASE[..BASE.find("[radius.coa]").unwrap()]);
    assert_eq!(not_live(&diff(&base, &no_coa)), ["radius.coa"]);
}

#[test]
fn classification_of_keys_not_in_the_table() {
    for live in [
        "portal.uam_server",
        "portal.venue_info_url",
        "radius.dead_time",
        "session.quota_action",
        "radius.coa.require_message_authenticator",
        "radius.coa.event_timestamp_window",
    ] {
        assert_eq!(not_live_reason(live), None, "{live}");
    }
    for fixed in [
        "lan.gateway",
        "lan.static_lease",
        "uplink.nat",
        "radius.coa.listen",
    ] {
        assert!(not_live_reason(fixed).is_some(), "{fixed}");
    }
}

#[test]
fn ipv6_keys_are_restart_only_and_named() {
    let lan = "[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"10.1.0.1\"]\n";
    let off = cfg(lan);
    let on = cfg(&format!("{lan}[lan.ipv6]\nprefix = \"2001:db8:1::/64\"\n"));
    assert_eq!(not_live(&diff(&off, &on)), ["lan.ipv6"]);
    assert_eq!(not_live(&diff(&on, &off)), ["lan.ipv6"]);
    let changed = cfg(&format!(
        "{lan}[lan.ipv6]\nprefix = \"2001:db8:1::/64\"\nmanaged = true\nra_interval = 30\n"
    ));
    let d = diff(&on, &changed);
    assert_eq!(not_live(&d), ["lan.ipv6.managed", "lan.ipv6.ra_interval"]);
    let refusal = d.refusal().unwrap();
    assert!(
        refusal.contains("lan.ipv6.managed: router advertisements"),
        "{refusal}"
    );
    assert!(diff(&on, &on).is_empty());
}
