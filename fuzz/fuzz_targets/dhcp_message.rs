//! DHCP messages straight into the server (lassi's own codec,
//! `wire::dhcpv4`, then the server's logic).
#![no_main]
use libfuzzer_sys::fuzz_target;

use std::sync::OnceLock;

use lassi::dhcp::{DhcpServer, DhcpSettings};
use lassi::wire::MacAddr;

const NOW: u64 = 1_795_359_600_000;

/// The settings of a shipped config, parsed once: parsing TOML for every
/// input cost most of the time per execution.
fn settings() -> DhcpSettings {
    static SETTINGS: OnceLock<DhcpSettings> = OnceLock::new();
    SETTINGS
        .get_or_init(|| {
            lassi::config::Config::parse("[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"192.0.2.53\"]\n")
                .unwrap()
                .lan
                .dhcp_settings()
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    // A fresh server per input keeps every execution independent of the last.
    let mut s = DhcpServer::new(settings(), vec![], NOW);
    let mac = data
        .get(28..34)
        .map(|m| MacAddr(m.try_into().unwrap()))
        .unwrap_or_default();
    let _ = s.handle(NOW, mac, data);
    let _ = s.expire(NOW + 10_000_000);
});
