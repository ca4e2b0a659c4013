//! What RADIUS answers mean for a session, and what a session's events mean
//! for RADIUS: reply attributes to session limits, engine events to
//! accounting records, and the NAS-Port of a client. Pure functions: no
//! I/O, no clock (the times come inside the events).

use core::net::Ipv4Addr;

use crate::dataplane::Event;
use crate::radius::attrs::{AcctRecord, AcctSession, ReplyLimits};
use crate::session::{Authorization, SessionLimits, SessionReport};
use crate::wire::MacAddr;

/// NAS-Port of a client: its host number on the LAN (`network` is the LAN's
/// network address), stable for the lease and unique among the clients.
pub fn nas_port(network: Ipv4Addr, ip: Ipv4Addr) -> u32 {
    u32::from(ip).wrapping_sub(u32::from(network))
}

/// The session limits an Access-Accept (or a CoA) grants. A zero timeout,
/// interval or bandwidth means "none", as in CoovaChilli. Filter-Id is
/// carried for the connection scripts.
pub fn limits_from_reply(r: &ReplyLimits) -> SessionLimits {
    SessionLimits {
        session_timeout: r.session_timeout.filter(|&t| t > 0),
        idle_timeout: r.idle_timeout.filter(|&t| t > 0),
        terminate_at: r.session_terminate_at,
        interim_interval: r.interim_interval.filter(|&t| t > 0),
        bandwidth_up_bps: r.bandwidth_max_up_bps.filter(|&b| b > 0),
        bandwidth_down_bps: r.bandwidth_max_down_bps.filter(|&b| b > 0),
        max_input_octets: r.max_input_octets,
        max_output_octets: r.max_output_octets,
        max_total_octets: r.max_total_octets,
        filter_id: r.filter_id.clone(),
    }
}

/// The authorization an Access-Accept for MAC authentication grants: the
/// user is the MAC in CoovaChilli's dashed form.
pub fn mac_authorization(mac: MacAddr, reply: &ReplyLimits) -> Authorization {
    Authorization {
        user: Some(mac.to_dashed()),
        limits: limits_from_reply(reply),
        class: reply.class.clone(),
        cui: reply.cui.clone(),
    }
}

/// The accounting view of a running session.
pub fn acct_session(r: &SessionReport, network: Ipv4Addr) -> AcctSession {
    AcctSession {
        session_id: r.session_id.clone(),
        user_name: r.user.clone(),
        mac: Some(r.mac),
        ip: Some(r.ip),
        nas_port: Some(nas_port(network, r.ip)),
        started: r.started,
        class: r.class.clone(),
        cui: r.cui.clone(),
        ipv6: r.ipv6.clone(),
    }
}

/// The accounting record an engine event calls for, if any (`network` is
/// the LAN's network address, for NAS-Port).
pub fn accounting_record(ev: &Event, network: Ipv4Addr) -> Option<AcctRecord> {
    match ev {
        Event::SessionStarted(r) => Some(AcctRecord::start(&acct_session(r, network), r.at)),
        Event::InterimUpdate(r) => Some(AcctRecord::interim(
            &acct_session(r, network),
            &r.counters,
            r.at,
        )),
        Event::SessionEnded(e) => Some(AcctRecord::stop_ended(
            e,
            Some(nas_port(network, e.ip)),
            e.class.clone(),
            e.cui.clone(),
        )),
        Event::LeaseBound { .. } | Event::LeaseEnded { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nas_port_is_the_host_number() {
        let net = Ipv4Addr::new(10, 1, 0, 0);
        assert_eq!(nas_port(net, Ipv4Addr::new(10, 1, 0, 23)), 23);
    }

    #[test]
    fn zero_in_a_reply_means_no_limit() {
        let reply = ReplyLimits {
            session_timeout: Some(0),
            idle_timeout: Some(600),
            interim_interval: Some(0),
            bandwidth_max_up_bps: Some(0),
            bandwidth_max_down_bps: Some(1_000_000),
            max_total_octets: Some(0),
            filter_id: Some("std.user".into()),
            ..ReplyLimits::default()
        };
        let l = limits_from_reply(&reply);
        assert_eq!(l.filter_id.as_deref(), Some("std.user"));
        assert_eq!(l.session_timeout, None);
        assert_eq!(l.idle_timeout, Some(600));
        assert_eq!(l.interim_interval, None);
        assert_eq!(l.bandwidth_up_bps, None);
        assert_eq!(l.bandwidth_down_bps, Some(1_000_000));
        // A quota of zero octets is a quota (already used up), not "none".
        assert_eq!(l.max_total_octets, Some(0));
    }

    #[test]
    fn mac_authorization_names_the_user_by_dashed_mac() {
        let reply = ReplyLimits {
            class: vec![b"gold".to_vec()],
            cui: Some(b"cui-1".to_vec()),
            session_timeout: Some(3600),
            ..ReplyLimits::default()
        };
        let a = mac_authorization(MacAddr([2, 0, 0, 0, 0, 0xab]), &reply);
        assert_eq!(a.user.as_deref(), Some("02-00-00-00-00-AB"));
        assert_eq!(a.limits.session_timeout, Some(3600));
        assert_eq!(a.class, vec![b"gold".to_vec()]);
        assert_eq!(a.cui, Some(b"cui-1".to_vec()));
    }

    #[test]
    fn lease_events_call_for_no_accounting() {
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        let ip = Ipv4Addr::new(10, 1, 0, 7);
        let bound = Event::LeaseBound {
            mac,
            ip,
            expires: 1,
            renewed: false,
        };
        assert!(accounting_record(&bound, Ipv4Addr::new(10, 1, 0, 0)).is_none());
    }
}
