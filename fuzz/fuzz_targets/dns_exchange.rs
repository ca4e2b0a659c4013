//! DNS of unauthorized guests through the engine: a query (parsed and
//! remembered as pending), then an answer with the query's id (matched
//! against it; a match may teach the walled garden through the CNAME
//! chain). Input: a selector byte, the query's length, the query, the
//! answer.
#![no_main]
use std::net::Ipv4Addr;

use lassi::wire::frame::{udp_frame, UdpAddressing};
use lassi::wire::vnet::VnetHdr;
use lassi::wire::MacAddr;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let [sel, qlen, rest @ ..] = data else {
        return;
    };
    let (query, answer) = rest.split_at(usize::from(*qlen).min(rest.len()));
    let mut e = common::engine_with(sel & 1 == 1);
    // Guest 2 (not logged in) asks lan.dns, or another server with any_dns.
    let guest = (MacAddr([2, 0, 0, 0, 1, 2]), Ipv4Addr::new(10, 1, 0, 12));
    let server = if sel & 2 == 2 {
        Ipv4Addr::new(203, 0, 114, 53)
    } else {
        Ipv4Addr::new(198, 51, 100, 53)
    };
    let gw = MacAddr([2, 0, 0, 0, 0, 1]);
    let out = UdpAddressing {
        src_mac: guest.0,
        dst_mac: gw,
        src_ip: guest.1,
        dst_ip: server,
        src_port: 40000,
        dst_port: 53,
    };
    let mut f = udp_frame(&out, query);
    let _ = e.from_lan(common::NOW, &VnetHdr::default(), &mut f);
    // The answer carries the query's id, so matching goes past the lookup.
    let mut answer = answer.to_vec();
    if sel & 4 == 4 && answer.len() >= 2 && query.len() >= 2 {
        answer[..2].copy_from_slice(&query[..2]);
    }
    let back = UdpAddressing {
        src_mac: gw,
        dst_mac: guest.0,
        src_ip: server,
        dst_ip: guest.1,
        src_port: 53,
        dst_port: 40000,
    };
    let mut p = udp_frame(&back, &answer)[14..].to_vec();
    let _ = e.from_tun(common::NOW + 10, &VnetHdr::default(), &mut p);
    let _ = e.snapshot(common::NOW + 20);
    e.handle_timeout(common::NOW + 20_000);
});
