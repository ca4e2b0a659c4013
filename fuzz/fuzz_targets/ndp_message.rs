//! lassi's IPv6 parsers for what guests send: any bytes as an ICMPv6
//! neighbour-discovery message (`wire::ndp`), whatever decodes must encode
//! and decode back to the same value; the same bytes as an IPv6 packet
//! through the guard (`ipv6::guard`, which walks extension headers and
//! validates ND with the pseudo-header checksum), and a solicitation for
//! lassi's own address through the NA answer.
#![no_main]
use core::net::Ipv6Addr;

use lassi_engine::ipv6::guard::{classify_from_client, learnable_target};
use lassi_engine::ipv6::nd::answer_solicit;
use lassi_engine::wire::ndp::{Ipv6Meta, Repr};
use lassi_engine::wire::MacAddr;
use libfuzzer_sys::fuzz_target;

const GW: MacAddr = MacAddr([2, 0, 0x5e, 0, 0, 1]);

fuzz_target!(|data: &[u8]| {
    if let Ok(repr) = Repr::parse(data) {
        let (src, dst) = (Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST);
        let bytes = repr.emit(src, dst);
        let meta = Ipv6Meta { src, dst, hop_limit: 255 };
        let _ = Repr::parse_validated(&meta, &bytes);
        assert_eq!(Repr::parse(&bytes).unwrap(), repr);
    }
    if let Ok((summary, class)) = classify_from_client(data) {
        let _ = learnable_target(&class);
        let _ = summary.upper(data);
        if let lassi_engine::ipv6::guard::ClientV6::NeighborSolicit { repr, .. } = &class {
            let meta = Ipv6Meta {
                src: summary.src,
                dst: summary.dst,
                hop_limit: summary.hop_limit,
            };
            let own = [lassi_engine::wire::ipv6::link_local_from_mac(GW)];
            if let Some(t) = answer_solicit(GW, &own, &meta, repr, MacAddr([2; 6])) {
                let _ = t.to_frame();
            }
        }
    }
});
