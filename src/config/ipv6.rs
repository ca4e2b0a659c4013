//! `[lan.ipv6]`: IPv6 on the LAN (issue 13). Off when the table is
//! absent. What the router advertisements and the DHCPv6 server say is
//! built here from the `[lan]` keys ([`LanConfig::ra_settings`],
//! [`LanConfig::dhcp6_settings`]) and checked by the engine's own
//! validators, their errors worded in the file's keys.

use std::net::Ipv6Addr;

use super::{err, ConfigError, LanConfig, LanIpv6Config, RawLanIpv6};
use crate::dhcp6::{Dhcp6Settings, Dhcp6SettingsError};
use crate::ipv6::ra::{RaSettings, RaSettingsError, MAX_INTERVAL_RANGE, MAX_ROUTER_LIFETIME_SECS};
use crate::wire::ipv6::Ipv6Net;
use crate::wire::MacAddr;

/// The smallest MTU IPv6 allows on a link (RFC 8200 §5).
const IPV6_MIN_MTU: u16 = 1280;

impl LanConfig {
    /// What lassi's router advertisements say, for a gateway with
    /// `gateway_mac`; `None` when IPv6 is off.
    ///
    /// The O flag is always set: lassi's DHCPv6 server hands out the DNS
    /// servers and the captive-portal URI to stateless clients too. Router
    /// and DNS lifetimes are 3 × `ra_interval` (RFC 4861 AdvDefaultLifetime,
    /// RFC 8106 §5.1); the MTU is `lan.mtu` (default 1500), the search
    /// domain `lan.domain`, the captive-portal URI (RFC 8910 option 37) the
    /// one DHCPv4 option 114 carries.
    pub fn ra_settings(&self, gateway_mac: MacAddr) -> Option<RaSettings> {
        let v6 = self.ipv6.as_ref()?;
        let mut s = RaSettings::new(gateway_mac, Some(v6.prefix));
        s.slaac = v6.slaac;
        s.managed = v6.managed;
        s.other = true;
        let max = v6.ra_interval;
        s.max_interval_secs = max;
        s.min_interval_secs = (max / 3).max(3);
        s.router_lifetime_secs = (3 * max).min(u32::from(MAX_ROUTER_LIFETIME_SECS)) as u16;
        s.dns_lifetime_secs = 3 * max;
        s.mtu = Some(u32::from(self.mtu.unwrap_or(1500)));
        s.rdnss = v6.dns.clone();
        s.dnssl = self.domain.iter().cloned().collect();
        s.captive_portal_uri = self.captive_portal_uri.clone();
        Some(s)
    }

    /// The DHCPv6 server's settings for a gateway with `gateway_mac`;
    /// `None` when IPv6 is off. Leases get the RA's prefix lifetimes
    /// (preferred 1 h, valid 2 h), lassi's own address is never handed out.
    pub fn dhcp6_settings(&self, gateway_mac: MacAddr) -> Option<Dhcp6Settings> {
        let v6 = self.ipv6.as_ref()?;
        let mut s = Dhcp6Settings::new(gateway_mac, v6.prefix);
        s.reserved = vec![v6.address];
        s.dns = v6.dns.clone();
        s.domains = self.domain.iter().cloned().collect();
        s.captive_portal_uri = self.captive_portal_uri.clone();
        Some(s)
    }
}

/// `prefix` as written: an address with no host bits set, then `/64`.
fn parse_prefix(text: &str) -> Result<Ipv6Net, ConfigError> {
    let bad = |why: &str| err("lan.ipv6.prefix", format!("'{text}' {why}"));
    let (addr, len) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| bad("is not an IPv6 prefix like \"2001:db8:1::/64\""))?;
    let addr: Ipv6Addr = addr
        .parse()
        .map_err(|_| bad("is not an IPv6 prefix like \"2001:db8:1::/64\""))?;
    let len: u8 = len
        .parse()
        .map_err(|_| bad("has no prefix length like /64"))?;
    if len != 64 {
        return Err(bad(
            "must be a /64 (SLAAC and DHCPv6 addresses need 64 host bits)",
        ));
    }
    let net = Ipv6Net::new(addr, len).ok_or_else(|| bad("has no prefix length like /64"))?;
    if net.addr() != addr {
        return Err(bad(&format!("has host bits set (the network is {net})")));
    }
    if addr.is_multicast() || crate::wire::ipv6::is_link_local(addr) || addr.is_loopback() {
        return Err(bad("is not a global or unique-local unicast prefix"));
    }
    Ok(net)
}

/// Checks `[lan.ipv6]` with the `[lan]` keys it shares (mtu, domain, the
/// captive-portal URI, which must already have its default).
pub(super) fn validate(raw: RawLanIpv6, lan: &LanConfig) -> Result<LanIpv6Config, ConfigError> {
    let Some(prefix_text) = raw.prefix else {
        return Err(err(
            "lan.ipv6.prefix",
            "required in [lan.ipv6] (IPv6 is off without the table)",
        ));
    };
    let prefix = parse_prefix(&prefix_text)?;
    let address = raw.address.unwrap_or_else(|| prefix.with_iid(1));
    if !prefix.contains(address) || address == prefix.addr() {
        return Err(err(
            "lan.ipv6.address",
            format!("{address} is not a host address inside lan.ipv6.prefix {prefix}"),
        ));
    }
    if !MAX_INTERVAL_RANGE.contains(&raw.ra_interval) {
        return Err(err(
            "lan.ipv6.ra_interval",
            format!(
                "{} s is outside {}–{} s (RFC 4861 MaxRtrAdvInterval)",
                raw.ra_interval,
                MAX_INTERVAL_RANGE.start(),
                MAX_INTERVAL_RANGE.end()
            ),
        ));
    }
    if let Some(a) = raw
        .dns
        .iter()
        .find(|a| a.is_multicast() || a.is_unspecified())
    {
        return Err(err("lan.ipv6.dns", format!("{a} is not a unicast address")));
    }
    if let Some(m) = lan.mtu.filter(|&m| m < IPV6_MIN_MTU) {
        return Err(err(
            "lan.mtu",
            format!("{m} is below {IPV6_MIN_MTU}, the smallest MTU IPv6 allows (lan.ipv6 is on)"),
        ));
    }
    let cfg = LanIpv6Config {
        prefix,
        address,
        dns: raw.dns,
        slaac: raw.slaac,
        managed: raw.managed,
        ra_interval: raw.ra_interval,
    };
    check_engine_settings(lan, cfg)
}

/// The engine's own checks of the RA and DHCPv6 settings built from `cfg`.
fn check_engine_settings(
    lan: &LanConfig,
    cfg: LanIpv6Config,
) -> Result<LanIpv6Config, ConfigError> {
    let with = LanConfig {
        ipv6: Some(cfg),
        ..lan.clone()
    };
    // Any unicast MAC: the checks do not depend on it.
    let mac = MacAddr([0x02, 0, 0, 0, 0, 1]);
    if let Some(Err(e)) = with.ra_settings(mac).map(|s| s.validate()) {
        return Err(ra_error(&e));
    }
    if let Some(Err(e)) = with.dhcp6_settings(mac).map(|s| s.validate()) {
        return Err(dhcp6_error(&e));
    }
    Ok(with.ipv6.expect("set above"))
}

fn ra_error(e: &RaSettingsError) -> ConfigError {
    match e {
        RaSettingsError::MaxInterval(_) | RaSettingsError::MinInterval(_) => {
            err("lan.ipv6.ra_interval", e.to_string())
        }
        RaSettingsError::Mtu(_) => err("lan.mtu", e.to_string()),
        RaSettingsError::Domain(_) => err("lan.domain", e.to_string()),
        RaSettingsError::CaptivePortalUri(_) => err("lan.captive_portal_uri", e.to_string()),
        RaSettingsError::SlaacPrefix(_) => err("lan.ipv6.prefix", e.to_string()),
        _ => err("lan.ipv6", e.to_string()),
    }
}

fn dhcp6_error(e: &Dhcp6SettingsError) -> ConfigError {
    match e {
        Dhcp6SettingsError::Prefix(_) => err("lan.ipv6.prefix", e.to_string()),
        Dhcp6SettingsError::Domain(_) => err("lan.domain", e.to_string()),
        Dhcp6SettingsError::CaptivePortalUri(_) => err("lan.captive_portal_uri", e.to_string()),
        _ => err("lan.ipv6", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
[lan]
interface = "lan0"
network = "10.1.0.0/24"
dns = ["192.0.2.53"]
domain = "hotspot.lan"
"#;

    fn with(v6: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(&format!("{BASE}\n[lan.ipv6]\n{v6}\n"))
    }

    #[test]
    fn off_without_the_table_and_defaults_with_it() {
        let c = Config::parse(BASE).unwrap();
        assert_eq!(c.lan.ipv6, None);
        let mac = crate::wire::MacAddr([2, 0, 0, 0, 0, 9]);
        assert!(c.lan.ra_settings(mac).is_none() && c.lan.dhcp6_settings(mac).is_none());
        let c = with("prefix = \"2001:db8:1::/64\"").unwrap();
        let v6 = c.lan.ipv6.clone().unwrap();
        assert_eq!(
            v6.address,
            "2001:db8:1::1".parse::<std::net::Ipv6Addr>().unwrap()
        );
        assert!(v6.slaac && !v6.managed && v6.dns.is_empty());
        assert_eq!(v6.ra_interval, 600);
        let ra = c.lan.ra_settings(mac).unwrap();
        assert_eq!(ra.validate(), Ok(()));
        assert!(ra.other && ra.slaac && !ra.managed);
        assert_eq!(ra.mtu, Some(1500));
        assert_eq!(ra.dnssl, vec!["hotspot.lan".to_string()]);
        assert_eq!(
            ra.captive_portal_uri.as_deref(),
            Some("http://10.1.0.1:3990/api")
        );
        assert_eq!((ra.router_lifetime_secs, ra.min_interval_secs), (1800, 200));
        let d = c.lan.dhcp6_settings(mac).unwrap();
        assert_eq!(d.reserved, vec![v6.address]);
        assert_eq!(d.validate(), Ok(()));
        let c = with("prefix = \"2001:db8:1::/64\"\nra_interval = 4\nmanaged = true\ndns = [\"2001:db8::53\"]").unwrap();
        let ra = c.lan.ra_settings(mac).unwrap();
        assert_eq!(ra.validate(), Ok(()));
        assert_eq!((ra.min_interval_secs, ra.router_lifetime_secs), (3, 12));
        assert!(ra.managed);
        assert_eq!(ra.rdnss.len(), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("slaac = true", "lan.ipv6.prefix"),
            ("prefix = \"2001:db8:1::/56\"", "lan.ipv6.prefix"),
            ("prefix = \"2001:db8:1::1/64\"", "lan.ipv6.prefix"),
            ("prefix = \"fe80::/64\"", "lan.ipv6.prefix"),
            ("prefix = \"2001:db8:1::\"", "lan.ipv6.prefix"),
            ("prefix = \"nope/64\"", "lan.ipv6.prefix"),
            (
                "prefix = \"2001:db8:1::/64\"\naddress = \"2001:db8:2::1\"",
                "lan.ipv6.address",
            ),
            (
                "prefix = \"2001:db8:1::/64\"\naddress = \"2001:db8:1::\"",
                "lan.ipv6.address",
            ),
            (
                "prefix = \"2001:db8:1::/64\"\nra_interval = 3",
                "lan.ipv6.ra_interval",
            ),
            (
                "prefix = \"2001:db8:1::/64\"\nra_interval = 1801",
                "lan.ipv6.ra_interval",
            ),
            (
                "prefix = \"2001:db8:1::/64\"\ndns = [\"ff02::1\"]",
                "lan.ipv6.dns",
            ),
            (
                "prefix = \"2001:db8:1::/64\"\ncolour = 1",
                "lan.ipv6.colour",
            ),
        ];
        for (v6, key) in cases {
            let e = with(v6).expect_err(v6);
            assert_eq!(e.key, *key, "{v6}: {e}");
        }
        let e = Config::parse(&format!(
            "{BASE}mtu = 1000\n[lan.ipv6]\nprefix = \"2001:db8:1::/64\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "lan.mtu", "{e}");
        // Without IPv6 the same MTU is fine.
        assert!(Config::parse(&format!("{BASE}mtu = 1000\n")).is_ok());
    }
}
