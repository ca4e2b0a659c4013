//! `cargo +nightly fuzz run radius_decode`: the RADIUS decoder, reply
//! decoding, response verification and the CoA checker must never panic,
//! and whatever decodes must re-encode to bytes that decode to the same
//! packet.
#![no_main]

use lassi::radius::attrs::ReplyLimits;
use lassi::radius::coa::CoaServer;
use lassi::radius::crypto;
use lassi::radius::packet::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = crypto::verify_response(data, b"secret", &[0; 16], true);
    let _ = crypto::verify_request(data, b"secret", false);
    let coa = CoaServer::for_client("127.0.0.1".parse().unwrap(), b"secret", Some("nas".into()));
    let _ = coa.handle("127.0.0.1:1".parse().unwrap(), data, 1_800_000_000);
    if let Ok(p) = Packet::decode(data) {
        let _ = ReplyLimits::from_packet(&p, false);
        if let Ok(bytes) = p.encode() {
            let q = Packet::decode(&bytes).expect("re-encoded packet decodes");
            assert_eq!(p, q);
        }
    }
});
