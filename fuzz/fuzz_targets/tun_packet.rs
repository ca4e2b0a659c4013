//! Packets from the kernel toward guests, DNS answers to snoop included.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut e = common::engine();
    let (vnet, packet) = common::vnet(data);
    let mut packet = packet.to_vec();
    let _ = e.from_tun(common::NOW, &vnet, &mut packet);
    e.handle_timeout(common::NOW + 1000);
});
