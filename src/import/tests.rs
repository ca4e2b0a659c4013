//! Importer tests on realistic CoovaChilli configurations, one per form,
//! written from Coova's documented option names and defaults.

use super::*;
use crate::config::{AuthBackend, Config, WalledGarden};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/coova/");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{name}")).expect("fixture")
}

/// Imports the fixtures named, includes resolved in the fixture directory.
fn import(names: &[&str]) -> Imported {
    let files: Vec<(String, String)> = names.iter().map(|n| (n.to_string(), fixture(n))).collect();
    let opts = read_all(&files, &mut |p: &str| Ok(fixture(p))).expect("read");
    map(&opts, &[], "/etc/lassi/users").expect("map")
}

fn warned(i: &Imported, option: &str) -> bool {
    i.warnings.iter().any(|w| w.option == option)
        && i.toml
            .lines()
            .any(|l| l.starts_with('#') && l.contains(option))
}

#[test]
fn detects_the_three_forms() {
    assert_eq!(detect(&fixture("chilli.conf")), Form::ChilliConf);
    assert_eq!(detect(&fixture("config")), Form::HsVars);
    assert_eq!(detect(&fixture("defaults")), Form::HsVars);
    assert_eq!(detect(&fixture("uci-chilli")), Form::Uci);
}

#[test]
fn hs_vars_radius_hotspot() {
    let i = import(&["defaults", "config"]);
    let c = Config::parse(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    assert_eq!(c.lan.interface, "lan0");
    assert_eq!(c.lan.network.to_string(), "10.1.0.0/24");
    assert_eq!(c.lan.gateway.to_string(), "10.1.0.1");
    assert_eq!(c.lan.dhcp_range.0.to_string(), "10.1.0.2");
    assert_eq!(c.lan.dhcp_range.1.to_string(), "10.1.0.127");
    assert_eq!(c.lan.lease_time, 600);
    assert_eq!(c.lan.dns.len(), 2);
    assert_eq!(c.uplink.wan_interface.as_deref(), Some("eth0"));
    assert_eq!(c.portal.auth, AuthBackend::Radius);
    assert_eq!(c.portal.nas_id, "cafe-1");
    assert_eq!(
        c.portal.uam_server.as_deref(),
        Some("https://portal.example.com/hotspotlogin.cgi")
    );
    assert_eq!(c.portal.uam_secret.as_deref(), Some("greatsecret"));
    assert!(c
        .portal
        .walled_garden
        .contains(&WalledGarden::Host("portal.example.com".into())));
    assert_eq!(c.portal.walled_garden.len(), 2);
    assert_eq!(c.session.defaults.idle_timeout, Some(900));
    assert_eq!(c.session.defaults.interim_interval, Some(600));
    let r = c.radius.expect("radius");
    assert_eq!(r.servers.len(), 2);
    assert_eq!(r.servers[0].secret, b"testing123");
    assert_eq!(
        r.location_id.as_deref(),
        Some("isocc=DE,cc=49,ac=30,network=cafes")
    );
    assert_eq!(r.location_name.as_deref(), Some("Cafe Central"));
    assert!(r.swap_octets);
    let coa = r.coa.expect("coa");
    assert_eq!(coa.listen.port(), 3799);
    assert_eq!(coa.clients.len(), 2);
    for unmapped in [
        "HS_MODE",
        "HS_TYPE",
        "HS_WWWDIR",
        "HS_PROVIDER",
        "HS_UAMHOMEPAGE",
    ] {
        assert!(warned(&i, unmapped), "{unmapped} not warned:\n{}", i.toml);
    }
    let w = i
        .warnings
        .iter()
        .find(|w| w.option == "HS_MODE")
        .expect("HS_MODE");
    assert_eq!(w.origin.to_string(), "config:31");
}

#[test]
fn chilli_conf_local_users_and_macauth() {
    let i = import(&["chilli.conf"]);
    let c = Config::parse(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    assert_eq!(c.lan.network.to_string(), "10.20.0.0/24");
    assert_eq!(c.lan.dhcp_range.0.to_string(), "10.20.0.50");
    assert_eq!(c.lan.dhcp_range.1.to_string(), "10.20.0.199");
    assert_eq!(c.lan.lease_time, 3600);
    assert_eq!(c.lan.domain.as_deref(), Some("hotel.lan"));
    assert_eq!(c.portal.auth, AuthBackend::Local);
    assert_eq!(i.local_users.as_deref(), Some("/etc/chilli/localusers"));
    assert_eq!(
        c.portal.uam_server, None,
        "chilli's own pages are lassi's own"
    );
    assert_eq!(c.portal.nas_id, "hotel-lobby");
    assert_eq!(c.session.defaults.session_timeout, Some(7200));
    assert_eq!(c.session.defaults.bandwidth_down_bps, Some(10_000_000));
    assert_eq!(c.session.defaults.bandwidth_up_bps, Some(2_000_000));
    assert_eq!(
        c.session.defaults.interim_interval,
        Some(300),
        "chilli's default"
    );
    let r = c.radius.expect("radius");
    assert!(r.mac_auth);
    assert_eq!(r.mac_suffix, "@mac");
    assert_eq!(r.mac_password, "macsecret");
    assert_eq!(r.servers[0].secret, b"s3cret");
    assert_eq!(r.location_name.as_deref(), Some("Hotel Lobby"));
    for unmapped in ["uamuiport", "uamhomepage", "interval", "ipup", "uamserver"] {
        assert!(warned(&i, unmapped), "{unmapped} not warned:\n{}", i.toml);
    }
    let (users, warnings) = convert_local_users("localusers", &fixture("localusers"));
    assert!(warnings.is_empty());
    let parsed = crate::portal::auth::LocalUsers::parse(&users).expect("users");
    assert_eq!(parsed.len(), 2);
}

#[test]
fn uci_walled_garden_domains() {
    let i = import(&["uci-chilli"]);
    let c = Config::parse(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    assert_eq!(c.lan.interface, "br-lan");
    assert_eq!(c.lan.dns.len(), 2);
    assert_eq!(c.portal.auth, AuthBackend::Radius);
    assert!(c.portal.any_dns);
    let g = &c.portal.walled_garden;
    for want in ["paypal.com", "paypalobjects.com", "wikipedia.org"] {
        assert!(
            g.contains(&WalledGarden::Suffix(want.into())),
            "*.{want}: {g:?}"
        );
    }
    assert!(g.contains(&WalledGarden::Host("wikipedia.org".into())));
    assert!(g.contains(&WalledGarden::Host("login.example.net".into())));
    let r = c.radius.expect("radius");
    assert_eq!(r.servers.len(), 1, "the host-name server is left out");
    assert!(r.coa.is_some());
    for unmapped in ["radiusserver2", "coanoipcheck", "disabled", "uamallowed"] {
        assert!(warned(&i, unmapped), "{unmapped} not warned:\n{}", i.toml);
    }
}

#[test]
fn refuses_what_would_change_behaviour() {
    let opts = read_all(
        &[(
            "c".into(),
            "dhcpif lan0\ndns1 192.0.2.1\nradiusserver1 rad.example.net\n".into(),
        )],
        &mut |_| Err("none".into()),
    )
    .expect("read");
    let e = map(&opts, &[], "/u").expect_err("host name server");
    assert!(e.contains("c:3: radiusserver1"), "{e}");
    let opts = read_all(&[("c".into(), "dhcpif lan0\n".into())], &mut |_| {
        Err("none".into())
    });
    let e = map(&opts.expect("read"), &[], "/u").expect_err("no dns");
    assert!(e.contains("dns1"), "{e}");
    let e = read_all(&[("c".into(), "include x\n".into())], &mut |_| {
        Err("gone".into())
    });
    assert!(e.expect_err("include").contains("c:1: include x: gone"));
}

#[test]
fn resolvers_and_flags() {
    let r = resolv_conf("nameserver 127.0.0.53\nnameserver 192.0.2.9\n# x\nnameserver ::1\n");
    assert_eq!(r, vec![core::net::Ipv4Addr::new(192, 0, 2, 9)]);
    assert!(truthy(None) && truthy(Some("on")) && truthy(Some("1")));
    assert!(!truthy(Some("0")) && !truthy(Some("off")));
}

#[test]
fn conup_and_condown_become_hooks() {
    let opts = read_all(
        &[(
            "chilli.conf".into(),
            "dhcpif eth1\nnet 10.1.0.0/24\ndns1 192.0.2.53\nradiusserver1 192.0.2.10\nradiussecret s\nconup /bin/true\ncondown relative.sh\n"
                .into(),
        )],
        &mut |_: &str| Err("no includes".to_string()),
    )
    .unwrap();
    let i = map(&opts, &[], "/etc/lassi/users").unwrap();
    let c = Config::parse(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    assert_eq!(
        c.hooks.conup.as_deref(),
        Some(std::path::Path::new("/bin/true"))
    );
    assert_eq!(c.hooks.condown, None);
    assert!(warned(&i, "condown"), "{}", i.toml);
}
