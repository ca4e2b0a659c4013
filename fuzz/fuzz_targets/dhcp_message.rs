//! DHCP messages straight into the server (dhcproto's decoder behind lassi's
//! option pre-filter).
#![no_main]
use libfuzzer_sys::fuzz_target;

use lassi::dhcp::DhcpServer;
use lassi::wire::MacAddr;

const NOW: u64 = 1_795_359_600_000;

fuzz_target!(|data: &[u8]| {
    let settings = lassi::daemon::dhcp_settings(
        &lassi::config::Config::parse("[lan]\ninterface = \"lan0\"\nnetwork = \"10.1.0.0/24\"\ndns = [\"192.0.2.53\"]\n").unwrap(),
    );
    let mut s = DhcpServer::new(settings, vec![], NOW);
    let mac = data.get(28..34).map(|m| MacAddr(m.try_into().unwrap())).unwrap_or_default();
    let _ = s.handle(NOW, mac, data);
    let _ = s.expire(NOW + 10_000_000);
});
