//! DHCPv6 from guests: any bytes as a message for lassi's codec
//! (`wire::dhcpv6`; whatever decodes must encode and decode back to the
//! same value), then through the DHCPv6 server (`dhcp6`), whose replies
//! must decode and carry timers strict clients accept.
#![no_main]
use core::net::Ipv6Addr;

use lassi_engine::dhcp6::{Dhcp6Server, Dhcp6Settings};
use lassi_engine::wire::dhcpv6::{DhcpOption, Message};
use lassi_engine::wire::ipv6::{link_local_from_mac, Ipv6Net, ALL_DHCP_SERVERS};
use lassi_engine::wire::MacAddr;
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_795_359_600_000;
const GW: MacAddr = MacAddr([2, 0, 0x5e, 0, 0, 1]);

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        assert_eq!(Message::parse(&m.emit()).unwrap(), m);
    }
    let prefix = Ipv6Net::new(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0), 64).unwrap();
    let mut settings = Dhcp6Settings::new(GW, prefix);
    settings.max_leases = 16;
    settings.dns = vec![Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)];
    let mut s = Dhcp6Server::new(settings, vec![], NOW);
    let client = MacAddr([2, 0, 0, 0, 0, 9]);
    // The same message twice (a retransmission), then time runs out.
    for now in [NOW, NOW + 1000] {
        let _ = s.handle_message(data, link_local_from_mac(client), ALL_DHCP_SERVERS, client, now);
    }
    while let Some(t) = s.poll_transmit() {
        let reply = Message::parse(&t.payload[8..]).unwrap();
        for o in &reply.options {
            if let DhcpOption::IaNa(ia) = o {
                for a in ia.addrs().filter(|a| a.valid > 0) {
                    assert!(ia.t1 <= ia.t2 && ia.t2 <= a.preferred && a.preferred <= a.valid);
                }
            }
        }
    }
    while s.poll_event().is_some() {}
    if let Some(t) = s.poll_timeout() {
        s.handle_timeout(t);
    }
    let _ = s.records();
});
