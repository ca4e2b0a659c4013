//! Config files: every input gets Ok or an error naming a key, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = lassi::config::Config::parse(text);
    }
});
