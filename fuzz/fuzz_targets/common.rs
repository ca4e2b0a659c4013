//! An engine in a realistic state for the fuzz targets: one guest logged
//! in with limits (shaping, quota), one not, a walled garden with a suffix.

use std::net::Ipv4Addr;

use lassi::dataplane::{Engine, EngineSettings, InterceptSettings, LostCarrier};
use lassi::dhcp::{DhcpServer, DhcpSettings, LeaseRecord};
use lassi::session::{Authorization, QuotaAction, SessionLimits};
use lassi::wire::vnet::VnetHdr;
use lassi::wire::MacAddr;

pub const NOW: u64 = 1_795_359_600_000;

#[allow(dead_code)] // not every target uses it
pub fn engine() -> Engine {
    engine_with(false)
}

/// Like [`engine`], with `portal.any_dns` as given.
#[allow(dead_code)] // not every target varies it
pub fn engine_with(any_dns: bool) -> Engine {
    let gw = Ipv4Addr::new(10, 1, 0, 1);
    let leases = (1..=2u8)
        .map(|n| LeaseRecord {
            mac: MacAddr([2, 0, 0, 0, 1, n]),
            ip: Ipv4Addr::new(10, 1, 0, 10 + n),
            expires: NOW + 3_600_000,
            hostname: None,
        })
        .collect();
    let dhcp = DhcpServer::new(
        DhcpSettings {
            server_ip: gw,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            dns: vec![Ipv4Addr::new(198, 51, 100, 53)],
            domain: Some("fuzz.test".into()),
            mtu: None,
            lease_secs: 3600,
            pool_start: Ipv4Addr::new(10, 1, 0, 10),
            pool_end: Ipv4Addr::new(10, 1, 0, 50),
            static_leases: vec![(MacAddr([2, 0, 0, 0, 2, 1]), Ipv4Addr::new(10, 1, 0, 5))],
            captive_portal_uri: Some("http://10.1.0.1:3990/api".into()),
            offer_hold_secs: 30,
            // The shipped defaults, so frames reach the guest-lease and
            // new-client-limit paths.
            unauthorized_lease_secs: 300,
            new_client_rate: 20,
        },
        leases,
        NOW,
    );
    let mut e = Engine::new(
        EngineSettings {
            gateway_ip: gw,
            gateway_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            network: "10.1.0.0/24".parse().unwrap(),
            dns: vec![Ipv4Addr::new(198, 51, 100, 53)],
            client_isolation: false,
            intercept: InterceptSettings {
                portal_port: 3990,
                walled_nets: vec!["203.0.113.0/24".parse().unwrap()],
                walled_nets6: vec![],
                walled_suffixes: vec!["example.org".into()],
                any_dns,
            },
            quota_action: QuotaAction::Throttle {
                up_bps: 64_000,
                down_bps: 64_000,
            },
            lost_carrier: LostCarrier::default(),
            default_limits: SessionLimits::default(),
            session_id_seed: 0,
        },
        dhcp,
        NOW,
    );
    let limits = SessionLimits {
        bandwidth_up_bps: Some(1_000_000),
        bandwidth_down_bps: Some(2_000_000),
        max_total_octets: Some(1_000_000),
        ..Default::default()
    };
    e.authorize(
        MacAddr([2, 0, 0, 0, 1, 1]),
        Authorization {
            limits,
            ..Default::default()
        },
        NOW,
    )
    .expect("restored client");
    e
}

/// A vnet header from the first input bytes, so offload paths get exercised.
#[allow(dead_code)] // not every target uses it
pub fn vnet(data: &[u8]) -> (VnetHdr, &[u8]) {
    match data.split_first() {
        Some((&sel, rest)) if sel & 1 == 1 && rest.len() >= 10 => {
            (VnetHdr::parse(rest).unwrap(), &rest[10..])
        }
        Some((_, rest)) => (VnetHdr::default(), rest),
        None => (VnetHdr::default(), data),
    }
}
