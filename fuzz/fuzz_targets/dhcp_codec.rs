//! lassi's DHCPv4 codec on its own (`wire::dhcpv4`): any bytes as a
//! message. Whatever decodes must encode and decode back to the same value,
//! and the server's option walk must end.
#![no_main]
use lassi::wire::dhcpv4::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.xid(), p.flags().broadcast(), p.chaddr(), p.has_magic());
    let _ = p.options().count();
    let _ = p.option(53);
    if let Ok(repr) = Repr::parse(&p) {
        let mut bytes = Vec::new();
        repr.emit(&mut bytes);
        let again = Repr::parse(&Packet::new_checked(&bytes).unwrap()).unwrap();
        assert_eq!(again, repr);
    }
});
