//! `config diff`: which keys differ between the running configuration and
//! the file just read, and which of them a running lassi cannot take.
//!
//! Pure: two validated [`Config`]s in, dotted key names out, in the order
//! `examples/lassi.toml` lists them. Every key of the file is compared
//! here; a key added to the config must be added to [`diff`] and
//! classified in [`not_live_reason`] (the `every_key_is_compared` test
//! catches a section whose new field was forgotten only if it is listed,
//! so keep the two in step).

use crate::config::{CoaConfig, Config, LanConfig, PortalConfig, RadiusConfig, SessionConfig};

/// What a reload would change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Every key whose value differs (dotted: `radius.server`,
    /// `session.idle_timeout`), in file order.
    pub changed: Vec<String>,
    /// The changed keys a running lassi cannot take, each with the reason.
    pub not_live: Vec<(String, &'static str)>,
}

impl ConfigDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }

    /// "lan.network (…); uplink.nat (…)": the refusal of a reload.
    pub fn refusal(&self) -> Option<String> {
        if self.not_live.is_empty() {
            return None;
        }
        let keys: Vec<String> = self
            .not_live
            .iter()
            .map(|(k, why)| format!("{k}: {why}"))
            .collect();
        Some(format!(
            "cannot be changed while lassi runs (restart lassi to change it; nothing was applied): {}",
            keys.join("; ")
        ))
    }
}

/// Pushes `section.field` for each listed field that differs.
macro_rules! compare {
    ($out:expr, $section:literal, $old:expr, $new:expr, [$($field:ident $(=> $key:literal)?),+ $(,)?]) => {
        $(
            if $old.$field != $new.$field {
                $out.push(compare!(@key $section, $field $(, $key)?));
            }
        )+
    };
    (@key $section:literal, $field:ident) => {
        concat!($section, ".", stringify!($field)).to_string()
    };
    (@key $section:literal, $field:ident, $key:literal) => {
        concat!($section, ".", $key).to_string()
    };
}

/// The keys that differ between `old` and `new`, and which of them cannot
/// be applied live.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut changed = Vec::new();
    lan_keys(&mut changed, &old.lan, &new.lan);
    compare!(
        changed,
        "uplink",
        old.uplink,
        new.uplink,
        [tun_name, wan_interface, nat, ip_forward]
    );
    compare!(
        changed,
        "dataplane",
        old.dataplane,
        new.dataplane,
        [batch, workers]
    );
    portal_keys(&mut changed, &old.portal, &new.portal);
    session_keys(&mut changed, &old.session, &new.session);
    radius_keys(&mut changed, old.radius.as_ref(), new.radius.as_ref());
    compare!(changed, "control", old.control, new.control, [socket]);
    compare!(changed, "state", old.state, new.state, [dir]);
    compare!(changed, "metrics", old.metrics, new.metrics, [listen]);
    compare!(
        changed,
        "hooks",
        old.hooks,
        new.hooks,
        [
            conup,
            condown,
            ipup,
            ipdown,
            timeout,
            max_running,
            max_queued
        ]
    );
    compare!(
        changed,
        "log",
        old.log,
        new.log,
        [level, format, output, syslog_socket]
    );
    let not_live = changed
        .iter()
        .filter_map(|k| not_live_reason(k).map(|why| (k.clone(), why)))
        .collect();
    ConfigDiff { changed, not_live }
}

fn lan_keys(out: &mut Vec<String>, old: &LanConfig, new: &LanConfig) {
    compare!(out, "lan", old, new, [
        interface,
        network,
        gateway,
        dns,
        dhcp_range,
        lease_time,
        unauthorized_lease_time,
        new_client_rate,
        domain,
        mtu,
        client_isolation,
        captive_portal_uri,
        static_leases => "static_lease",
    ]);
    match (&old.ipv6, &new.ipv6) {
        (Some(o), Some(n)) => {
            compare!(
                out,
                "lan.ipv6",
                o,
                n,
                [prefix, address, dns, slaac, managed, ra_interval]
            );
        }
        (None, None) => {}
        _ => out.push("lan.ipv6".into()),
    }
}

fn portal_keys(out: &mut Vec<String>, old: &PortalConfig, new: &PortalConfig) {
    compare!(
        out,
        "portal",
        old,
        new,
        [
            port,
            uam_server,
            uam_secret,
            auth,
            users_file,
            pages_dir,
            success_url,
            nas_id,
            walled_garden,
            any_dns,
            venue_info_url,
            challenge_timeout,
        ]
    );
}

fn session_keys(out: &mut Vec<String>, old: &SessionConfig, new: &SessionConfig) {
    compare!(out, "session", old.defaults, new.defaults, [
        session_timeout,
        idle_timeout,
        interim_interval,
        bandwidth_up_bps => "bandwidth_up",
        bandwidth_down_bps => "bandwidth_down",
        max_input_octets,
        max_output_octets,
        max_total_octets,
    ]);
    compare!(
        out,
        "session",
        old,
        new,
        [
            quota_action,
            probe_after,
            probe_interval,
            probes,
            restart_grace,
            stop_on_shutdown,
        ]
    );
}

fn radius_keys(out: &mut Vec<String>, old: Option<&RadiusConfig>, new: Option<&RadiusConfig>) {
    let (old, new) = match (old, new) {
        (None, None) => return,
        (Some(o), Some(n)) => (o, n),
        _ => return out.push("radius".into()),
    };
    compare!(out, "radius", old, new, [
        servers => "server",
        timeout,
        retries,
        dead_time,
        status_interval,
        require_message_authenticator,
        nas_identifier,
        nas_ip,
        called_station_id,
        location_id,
        location_name,
        swap_octets,
        mac_auth,
        mac_suffix,
        mac_password,
        spool_max_records,
    ]);
    coa_keys(out, old.coa.as_ref(), new.coa.as_ref());
}

fn coa_keys(out: &mut Vec<String>, old: Option<&CoaConfig>, new: Option<&CoaConfig>) {
    let (old, new) = match (old, new) {
        (None, None) => return,
        (Some(o), Some(n)) => (o, n),
        _ => return out.push("radius.coa".into()),
    };
    compare!(out, "radius.coa", old, new, [
        listen,
        clients => "client",
        event_timestamp_window,
        require_event_timestamp,
        nak_stale_event_timestamp,
        require_message_authenticator,
    ]);
}

/// Why `key` cannot change while lassi runs; `None` when it can.
///
/// The rule: what the kernel, the devices or the DHCP clients were told at
/// start stays; what lassi decides per request or per new session is live.
pub fn not_live_reason(key: &str) -> Option<&'static str> {
    let section = key.split('.').next().unwrap_or(key);
    match key {
        // Forwarding decisions the engine takes per frame.
        "lan.client_isolation" => None,
        // The DHCP server and the engine's view of the LAN were built from
        // these; leases already handed out (addresses, DNS, lifetimes) and
        // the firewall and TUN address depend on them.
        k if section == "lan" => Some(match k {
            k if k.starts_with("lan.ipv6") => {
                "router advertisements, DHCPv6 leases and the guests' IPv6 addresses are made from it"
            }
            "lan.interface" => "the raw socket and the firewall are bound to the interface",
            "lan.network" | "lan.gateway" => {
                "leases, sessions, the TUN address and the firewall use the LAN network"
            }
            "lan.dhcp_range" | "lan.static_lease" => {
                "leases already handed out were made from the pool"
            }
            _ => "the DHCP server's offers are fixed at start (clients hold leases made with it)",
        }),
        _ if section == "uplink" => Some("the TUN device and NAT rules are set up at start"),
        _ if section == "dataplane" => Some(
            "the forwarding loops' buffers and sockets, and the kernel fast path, are set up at start",
        ),
        "control.socket" => Some("the control socket is bound at start"),
        "state.dir" => Some("the state files and the accounting spool are open"),
        "portal.port" => Some("the portal listener and the firewall redirect use the port"),
        "radius" => Some("adding or removing the [radius] section starts or stops accounting"),
        "radius.mac_auth" => Some("MAC authentication is started with lassi"),
        "radius.swap_octets" => Some(
            "a running session's octet counters would swap direction between its Interim and Stop",
        ),
        "radius.spool_max_records" => Some("the accounting spool is open"),
        "radius.coa" => Some("adding or removing [radius.coa] opens or closes the CoA listener"),
        "radius.coa.listen" => Some("the CoA listener's socket is bound at start"),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
