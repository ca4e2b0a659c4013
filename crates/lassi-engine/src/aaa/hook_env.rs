//! The environment of the operator's connection scripts (CoovaChilli's
//! `conup`/`condown`, `ipup`/`ipdown`), with CoovaChilli's names and value
//! formats.
//!
//! A session's values come from the same accounting record RADIUS gets
//! ([`accounting_record`]): the octets are the full 64-bit values (no
//! Gigawords), input is what the client sent unless `swap_octets` flips
//! both directions exactly as it does in the Accounting-Request, and
//! `SESSION_TIME` is Acct-Session-Time. `TERMINATE_CAUSE` is the numeric
//! Acct-Terminate-Cause (RFC 2866), set for `condown` only. `FILTER_ID` is
//! the session's RADIUS Filter-Id (from the Access-Accept, or the last CoA
//! that carried one), set only when it has one.
//!
//! Only fixed names are produced; the one guest-chosen value (the user
//! name) and RADIUS-supplied strings are values, with NUL bytes removed.

use core::net::Ipv4Addr;

use super::reply::accounting_record;
use crate::dataplane::Event;
use crate::radius::attrs::{AcctRecord, NasInfo};
use crate::session::SessionLimits;
use crate::wire::Ipv4Net;
use crate::UnixMillis;

/// Which script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// A session was authorized.
    ConUp,
    /// A session ended.
    ConDown,
    /// The TUN device is up.
    IpUp,
    /// The TUN device is going down.
    IpDown,
}

impl HookKind {
    /// The config key (and log name) of the script.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::ConUp => "conup",
            HookKind::ConDown => "condown",
            HookKind::IpUp => "ipup",
            HookKind::IpDown => "ipdown",
        }
    }
}

/// What every script is told about the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayInfo {
    /// The TUN device (`DEV`).
    pub dev: String,
    /// The LAN interface (`DHCPIF`).
    pub lan_interface: String,
    /// The gateway address on the LAN (`ADDR`, `UAMLISTEN`).
    pub addr: Ipv4Addr,
    /// The LAN network (`NET`, `MASK`).
    pub network: Ipv4Net,
    /// MTU handed to clients (`MTU`).
    pub mtu: u16,
    /// Portal port (`UAMPORT`).
    pub uam_port: u16,
    /// External splash page (`UAMSERVER`), when configured.
    pub uam_server: Option<String>,
    /// What RADIUS requests say about the NAS.
    pub nas: NasInfo,
    /// `radius.swap_octets`.
    pub swap_octets: bool,
}

/// One environment: fixed names, byte-string values without NUL.
pub type HookEnv = Vec<(&'static str, Vec<u8>)>;

fn put(env: &mut HookEnv, name: &'static str, value: impl AsRef<[u8]>) {
    let v = value.as_ref().iter().copied().filter(|&b| b != 0).collect();
    env.push((name, v));
}

fn num(v: Option<impl Into<u64>>) -> String {
    v.map(Into::into).unwrap_or(0).to_string()
}

fn gateway_env(env: &mut HookEnv, g: &GatewayInfo) {
    put(env, "DEV", &g.dev);
    put(env, "NET", g.network.addr.to_string());
    put(env, "MASK", g.network.netmask().to_string());
    put(env, "ADDR", g.addr.to_string());
}

/// `ipup`/`ipdown`: the device and the LAN it serves.
pub fn device_env(g: &GatewayInfo) -> HookEnv {
    let mut env = HookEnv::new();
    put(&mut env, "DHCPIF", &g.lan_interface);
    gateway_env(&mut env, g);
    put(&mut env, "UAMLISTEN", g.addr.to_string());
    put(&mut env, "MTU", g.mtu.to_string());
    put(&mut env, "UAMPORT", g.uam_port.to_string());
    if let Some(s) = &g.uam_server {
        put(&mut env, "UAMSERVER", s);
    }
    env
}

/// The script and environment a session event calls for (`conup` at
/// authorization, `condown` at the end), `None` for other events.
pub fn session_env(g: &GatewayInfo, ev: &Event) -> Option<(HookKind, HookEnv)> {
    let (kind, limits, last_active, at) = match ev {
        Event::SessionStarted(r) => (HookKind::ConUp, &r.limits, r.last_active, r.at),
        Event::SessionEnded(e) => (HookKind::ConDown, &e.limits, e.last_active, e.ended),
        _ => return None,
    };
    let rec = accounting_record(ev, g.network.addr)?;
    let idle = at.saturating_sub(last_active.max(started_of(ev))) / 1000;
    Some((kind, record_env(g, &rec, limits, idle)))
}

fn started_of(ev: &Event) -> UnixMillis {
    match ev {
        Event::SessionStarted(r) => r.started,
        Event::SessionEnded(e) => e.started,
        _ => 0,
    }
}

/// Bandwidth and volume limits, octets in the direction of accounting.
fn limits_env(env: &mut HookEnv, g: &GatewayInfo, l: &SessionLimits) {
    put(env, "WISPR_BANDWIDTH_MAX_UP", num(l.bandwidth_up_bps));
    put(env, "WISPR_BANDWIDTH_MAX_DOWN", num(l.bandwidth_down_bps));
    let (max_in, max_out) = directed(g, l.max_input_octets, l.max_output_octets);
    put(env, "COOVACHILLI_MAX_INPUT_OCTETS", num(max_in));
    put(env, "COOVACHILLI_MAX_OUTPUT_OCTETS", num(max_out));
    put(env, "COOVACHILLI_MAX_TOTAL_OCTETS", num(l.max_total_octets));
}

/// Input and output in the direction accounting reports them.
fn directed<T>(g: &GatewayInfo, input: T, output: T) -> (T, T) {
    if g.swap_octets {
        (output, input)
    } else {
        (input, output)
    }
}

fn record_env(g: &GatewayInfo, rec: &AcctRecord, l: &SessionLimits, idle_s: u64) -> HookEnv {
    let mut env = HookEnv::new();
    gateway_env(&mut env, g);
    who_env(&mut env, g, rec);
    put(&mut env, "SESSION_TIMEOUT", num(l.session_timeout));
    put(&mut env, "IDLE_TIMEOUT", num(l.idle_timeout));
    put(&mut env, "ACCT_INTERIM_INTERVAL", num(l.interim_interval));
    limits_env(&mut env, g, l);
    if let Some(f) = &l.filter_id {
        put(&mut env, "FILTER_ID", f);
    }
    let (oin, oout) = directed(g, rec.octets_in, rec.octets_out);
    let (pin, pout) = directed(g, rec.packets_in, rec.packets_out);
    put(&mut env, "INPUT_OCTETS", oin.to_string());
    put(&mut env, "OUTPUT_OCTETS", oout.to_string());
    put(&mut env, "INPUT_PACKETS", pin.to_string());
    put(&mut env, "OUTPUT_PACKETS", pout.to_string());
    put(&mut env, "SESSION_TIME", num(rec.session_time));
    put(&mut env, "IDLE_TIME", idle_s.to_string());
    if let Some(c) = rec.terminate_cause {
        put(&mut env, "TERMINATE_CAUSE", c.value().to_string());
    }
    env
}

/// Who and where: the user, the client, the NAS.
fn who_env(env: &mut HookEnv, g: &GatewayInfo, rec: &AcctRecord) {
    let addr = |a: Option<Ipv4Addr>| a.map(|a| a.to_string()).unwrap_or_default();
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    put(env, "USER_NAME", text(&rec.user_name));
    put(env, "NAS_IP_ADDRESS", addr(g.nas.nas_ip));
    put(env, "SERVICE_TYPE", "1");
    put(env, "FRAMED_IP_ADDRESS", addr(rec.ip));
    put(env, "CLASS", rec.class.first().cloned().unwrap_or_default());
    put(env, "CUI", rec.cui.clone().unwrap_or_default());
    let calling = rec.mac.map(|m| m.to_dashed()).unwrap_or_default();
    put(env, "CALLING_STATION_ID", calling);
    put(
        env,
        "CALLED_STATION_ID",
        g.nas.called_station().unwrap_or_default(),
    );
    put(env, "NAS_ID", text(&g.nas.nas_identifier));
    put(env, "NAS_PORT_TYPE", "19");
    put(env, "NAS_PORT", num(rec.nas_port));
    put(env, "ACCT_SESSION_ID", &rec.session_id);
    put(env, "WISPR_LOCATION_ID", text(&g.nas.location_id));
    put(env, "WISPR_LOCATION_NAME", text(&g.nas.location_name));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attrs::TerminateCause;
    use crate::session::{Counters, EndReason, EndedSession, SessionReport};
    use crate::wire::MacAddr;

    fn gateway(swap: bool) -> GatewayInfo {
        GatewayInfo {
            dev: "lassi0".into(),
            lan_interface: "lan0".into(),
            addr: Ipv4Addr::new(10, 1, 0, 1),
            network: Ipv4Net {
                addr: Ipv4Addr::new(10, 1, 0, 0),
                prefix: 24,
            },
            mtu: 1500,
            uam_port: 3990,
            uam_server: None,
            nas: NasInfo {
                nas_identifier: Some("hotspot-1".into()),
                nas_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
                nas_mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
                ..NasInfo::default()
            },
            swap_octets: swap,
        }
    }

    fn get<'a>(env: &'a HookEnv, name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| core::str::from_utf8(v).unwrap())
    }

    fn ended(reason: EndReason) -> EndedSession {
        EndedSession {
            ipv6: vec![],
            mac: MacAddr([0xaa, 0xbb, 0xcc, 0x0d, 0x0e, 0x0f]),
            ip: Ipv4Addr::new(10, 1, 0, 23),
            session_id: "5f3a0001".into(),
            user: Some("bob\0; rm -rf /".into()),
            started: 1_000_000,
            ended: 1_095_500,
            counters: Counters {
                octets_in: 5 * (1 << 32) + 7,
                octets_out: 300,
                packets_in: 11,
                packets_out: 22,
            },
            limits: SessionLimits {
                session_timeout: Some(3600),
                bandwidth_down_bps: Some(2_000_000),
                max_input_octets: Some(100),
                ..SessionLimits::default()
            },
            last_active: 1_090_000,
            reason,
            class: vec![b"gold\0".to_vec()],
            cui: None,
        }
    }

    #[test]
    fn condown_carries_what_the_stop_carries() {
        let ev = Event::SessionEnded(ended(EndReason::IdleTimeout));
        let (kind, env) = session_env(&gateway(false), &ev).unwrap();
        assert_eq!(kind, HookKind::ConDown);
        let stop = accounting_record(&ev, Ipv4Addr::new(10, 1, 0, 0)).unwrap();
        assert_eq!(get(&env, "USER_NAME"), Some("bob; rm -rf /"));
        assert_eq!(get(&env, "CALLING_STATION_ID"), Some("AA-BB-CC-0D-0E-0F"));
        assert_eq!(get(&env, "CALLED_STATION_ID"), Some("02-00-00-00-00-01"));
        assert_eq!(get(&env, "FRAMED_IP_ADDRESS"), Some("10.1.0.23"));
        assert_eq!(get(&env, "ACCT_SESSION_ID"), Some("5f3a0001"));
        // The full value, not modulo 2^32 (RADIUS splits it into Gigawords).
        assert_eq!(get(&env, "INPUT_OCTETS"), Some("21474836487"));
        assert_eq!(stop.octets_in, 21_474_836_487);
        assert_eq!(get(&env, "OUTPUT_OCTETS"), Some("300"));
        assert_eq!(get(&env, "INPUT_PACKETS"), Some("11"));
        assert_eq!(get(&env, "OUTPUT_PACKETS"), Some("22"));
        assert_eq!(get(&env, "SESSION_TIME"), Some("95"));
        assert_eq!(stop.session_time, Some(95));
        assert_eq!(get(&env, "IDLE_TIME"), Some("5"));
        assert_eq!(get(&env, "TERMINATE_CAUSE"), Some("4"));
        assert_eq!(
            get(&env, "FILTER_ID"),
            None,
            "only set when RADIUS gave one"
        );
        assert_eq!(get(&env, "SESSION_TIMEOUT"), Some("3600"));
        assert_eq!(get(&env, "IDLE_TIMEOUT"), Some("0"));
        assert_eq!(get(&env, "WISPR_BANDWIDTH_MAX_DOWN"), Some("2000000"));
        assert_eq!(get(&env, "COOVACHILLI_MAX_INPUT_OCTETS"), Some("100"));
        assert_eq!(get(&env, "CLASS"), Some("gold"));
        assert_eq!(get(&env, "NAS_ID"), Some("hotspot-1"));
        assert_eq!(get(&env, "NAS_IP_ADDRESS"), Some("192.0.2.1"));
        assert_eq!(get(&env, "NAS_PORT"), Some("23"));
        assert_eq!(get(&env, "DEV"), Some("lassi0"));
        assert_eq!(get(&env, "MASK"), Some("255.255.255.0"));
        assert!(env.iter().all(|(_, v)| !v.contains(&0)));
    }

    #[test]
    fn swap_octets_swaps_as_in_accounting() {
        let ev = Event::SessionEnded(ended(EndReason::UserRequest));
        let (_, env) = session_env(&gateway(true), &ev).unwrap();
        assert_eq!(get(&env, "INPUT_OCTETS"), Some("300"));
        assert_eq!(get(&env, "OUTPUT_OCTETS"), Some("21474836487"));
        assert_eq!(get(&env, "INPUT_PACKETS"), Some("22"));
        assert_eq!(get(&env, "COOVACHILLI_MAX_OUTPUT_OCTETS"), Some("100"));
        assert_eq!(get(&env, "TERMINATE_CAUSE"), Some("1"));
    }

    #[test]
    fn terminate_causes_are_rfc_2866_numbers() {
        for (reason, cause, n) in [
            (EndReason::UserRequest, TerminateCause::UserRequest, "1"),
            (EndReason::LostCarrier, TerminateCause::LostCarrier, "2"),
            (EndReason::IdleTimeout, TerminateCause::IdleTimeout, "4"),
            (
                EndReason::SessionTimeout,
                TerminateCause::SessionTimeout,
                "5",
            ),
            (EndReason::AdminReset, TerminateCause::AdminReset, "6"),
            (EndReason::NasReboot, TerminateCause::NasReboot, "11"),
        ] {
            let ev = Event::SessionEnded(ended(reason));
            let (_, env) = session_env(&gateway(false), &ev).unwrap();
            assert_eq!(get(&env, "TERMINATE_CAUSE"), Some(n), "{reason:?}");
            assert_eq!(TerminateCause::from(reason), cause);
        }
    }

    #[test]
    fn conup_has_zero_counters_and_no_cause() {
        let e = ended(EndReason::UserRequest);
        let r = SessionReport {
            ipv6: vec![],
            mac: e.mac,
            ip: e.ip,
            session_id: e.session_id.clone(),
            user: Some("alice".into()),
            started: e.started,
            at: e.started,
            counters: Counters::default(),
            limits: SessionLimits {
                filter_id: Some("std\0.user".into()),
                ..e.limits.clone()
            },
            last_active: e.started,
            class: Vec::new(),
            cui: None,
        };
        let (kind, env) = session_env(&gateway(false), &Event::SessionStarted(r)).unwrap();
        assert_eq!(kind, HookKind::ConUp);
        assert_eq!(get(&env, "USER_NAME"), Some("alice"));
        assert_eq!(get(&env, "INPUT_OCTETS"), Some("0"));
        assert_eq!(get(&env, "SESSION_TIME"), Some("0"));
        assert_eq!(get(&env, "TERMINATE_CAUSE"), None);
        assert_eq!(get(&env, "FILTER_ID"), Some("std.user"), "NUL removed");
    }

    #[test]
    fn condown_has_the_session_filter_id() {
        let mut e = ended(EndReason::AdminReset);
        e.limits.filter_id = Some("premium".into());
        let (_, env) = session_env(&gateway(false), &Event::SessionEnded(e)).unwrap();
        assert_eq!(get(&env, "FILTER_ID"), Some("premium"));
        assert_eq!(env.iter().filter(|(n, _)| *n == "FILTER_ID").count(), 1);
    }

    #[test]
    fn device_env_names_the_tun_and_network() {
        let env = device_env(&gateway(false));
        assert_eq!(get(&env, "DEV"), Some("lassi0"));
        assert_eq!(get(&env, "ADDR"), Some("10.1.0.1"));
        assert_eq!(get(&env, "NET"), Some("10.1.0.0"));
        assert_eq!(get(&env, "UAMPORT"), Some("3990"));
        assert_eq!(get(&env, "DHCPIF"), Some("lan0"));
    }
}
