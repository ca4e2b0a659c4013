//! Fixtures the engine's unit tests share: one test network (10.1.0.0/24,
//! gateway 10.1.0.1) and the DHCP and data-plane settings that serve it.

use core::net::Ipv4Addr;

use crate::dataplane::{EngineSettings, InterceptSettings, LostCarrier};
use crate::dhcp::DhcpSettings;
use crate::session::{QuotaAction, SessionLimits};

/// The gateway's address on the test network.
pub(crate) const GW: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

/// DHCP on the test network: pool 10.1.0.10–250, hour-long leases, no
/// domain, MTU, static leases or portal URI, `dns` as the one DNS server.
pub(crate) fn dhcp_settings(dns: Ipv4Addr) -> DhcpSettings {
    DhcpSettings {
        server_ip: GW,
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        dns: vec![dns],
        domain: None,
        mtu: None,
        lease_secs: 3600,
        pool_start: Ipv4Addr::new(10, 1, 0, 10),
        pool_end: Ipv4Addr::new(10, 1, 0, 250),
        static_leases: vec![],
        captive_portal_uri: None,
        offer_hold_secs: 30,
        unauthorized_lease_secs: 3600,
        new_client_rate: 0,
    }
}

/// The data plane on the test network: gateway MAC 02:00:00:00:00:01,
/// `dns` as the one DNS server, clients isolated, portal on port 3990 with
/// no walled garden, default limits and carrier policy, session id seed 0.
pub(crate) fn engine_settings(dns: Ipv4Addr) -> EngineSettings {
    EngineSettings {
        gateway_ip: GW,
        gateway_mac: "02:00:00:00:00:01".parse().unwrap(),
        network: "10.1.0.0/24".parse().unwrap(),
        dns: vec![dns],
        client_isolation: true,
        intercept: InterceptSettings {
            portal_port: 3990,
            walled_nets: vec![],
            walled_nets6: vec![],
            walled_suffixes: vec![],
            any_dns: false,
        },
        quota_action: QuotaAction::End,
        lost_carrier: LostCarrier::default(),
        default_limits: SessionLimits::default(),
        session_id_seed: 0,
    }
}
