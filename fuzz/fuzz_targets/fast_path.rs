//! The workers' fast path: frames from guests and packets from the kernel,
//! with a client admitted. Never panics, and counts no more than what it
//! forwarded: one packet and at most the IP bytes for a plain frame, and a
//! super-packet's segments within what its IP length allows.
#![no_main]
use std::net::Ipv4Addr;

use lassi_engine::dataplane::{
    FastAdmit, FastDelta, FastLimits, FastPath, FastSettings, FastVerdict,
};
use lassi_engine::wire::vnet::VnetHdr;
use lassi_engine::wire::MacAddr;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

const ETH_HLEN: usize = 14;

fn worker() -> FastPath {
    let settings = FastSettings {
        gateway_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        gateway_ip: Ipv4Addr::new(10, 1, 0, 1),
        network: "10.1.0.0/24".parse().unwrap(),
    };
    let mut w = FastPath::new(settings, 1 << 20);
    // Client 1 unlimited; client 2 shaped and metered, owned here.
    for n in 1..=2u8 {
        let limits = FastLimits {
            up_bps: Some(1_000_000),
            down_bps: Some(1_000_000),
            total_left: Some(1 << 20),
            ..Default::default()
        };
        w.admit(FastAdmit {
            ip: Ipv4Addr::new(10, 1, 0, 10 + n),
            mac: MacAddr([2, 0, 0, 0, 1, n]),
            token: u64::from(n),
            limits: if n == 2 { limits } else { FastLimits::default() },
            owner: true,
            divert_http: n == 1,
        });
    }
    w
}

/// What one forwarded packet of `ip_len` IP bytes may count at most.
fn check(vnet: &VnetHdr, ip_len: usize, d: &[FastDelta]) {
    assert_eq!(d.len(), 1, "one frame, one session");
    let k = &d[0].counters;
    let (packets, octets) = (k.packets_in + k.packets_out, k.octets_in + k.octets_out);
    assert!(k.packets_in == 0 || k.packets_out == 0, "one direction");
    if vnet.is_gso() && vnet.gso_size > 0 {
        // Each segment carries at least a byte and its own headers, which
        // fit in the IP length.
        assert!((1..=ip_len.max(1) as u64).contains(&packets));
        assert!(octets <= packets * ip_len as u64 + ip_len as u64);
    } else {
        assert_eq!(packets, 1);
        assert!(octets <= ip_len as u64);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut w = worker();
    let to_lan = data.first().is_some_and(|b| b & 2 != 0);
    let (vnet, bytes) = common::vnet(data);
    let (verdict, ip_len) = if to_lan {
        let v = w.from_tun(common::NOW, &vnet, bytes);
        (v, bytes.len())
    } else {
        let v = w.from_lan(common::NOW, &vnet, bytes);
        (v, bytes.len().saturating_sub(ETH_HLEN))
    };
    let mut out = Vec::new();
    w.take_deltas(&mut out);
    match verdict {
        FastVerdict::Slow | FastVerdict::Handoff => assert!(out.is_empty(), "counts nothing"),
        FastVerdict::Held => assert!(out.iter().all(|d| d.counters.packets_in + d.counters.packets_out == 0)),
        FastVerdict::Drop => assert!(out.iter().all(|d| d.shaped_drops == 1)),
        FastVerdict::ToTun | FastVerdict::ToLan(_) => check(&vnet, ip_len, &out),
    }
    w.revoke_all(&mut out);
    assert_eq!(w.len(), 0);
});
