//! lassi's DNS codec on its own (`wire::dns`): any bytes as a message
//! (compression pointers, loops, oversized names). Whatever decodes must
//! encode (uncompressed) and decode back to the same value.
#![no_main]
use lassi::wire::dns::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data) else {
        return;
    };
    for q in &m.questions {
        let _ = q.name.normalized();
    }
    let bytes = m.emit().expect("a parsed message encodes");
    assert_eq!(Message::parse(&bytes).expect("and decodes again"), m);
});
