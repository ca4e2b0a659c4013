//! Frames from guests: Ethernet, ARP, IPv4/6, DHCP, TCP/UDP to anywhere.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut e = common::engine();
    let (vnet, frame) = common::vnet(data);
    let mut frame = frame.to_vec();
    let _ = e.from_lan(common::NOW, &vnet, &mut frame);
    e.handle_timeout(common::NOW + 1000);
    let mut out = Vec::new();
    e.release_held(common::NOW + 2000, &mut out);
});
