//! Checks of [`super::dict`] against dictionaries on this machine (shell
//! side, test only: it reads files). FreeRADIUS's own dictionaries, when
//! installed (CI installs them), must agree with lassi's codec.

use std::fs;

use super::dict::Dictionary;
use super::packet::attr;

/// The FreeRADIUS dictionaries' entry point.
const FREERADIUS: &str = "/usr/share/freeradius/dictionary";

#[test]
fn freeradius_dictionaries_agree_with_the_codec() {
    // The standard attributes, and its WISPr/ChilliSpot subsets.
    if !std::path::Path::new(FREERADIUS).exists() {
        eprintln!("FreeRADIUS dictionaries not installed; skipped");
        return;
    }
    let top = fs::read_to_string(FREERADIUS).unwrap();
    let mut d = Dictionary::default();
    let mut open = |p: &str| fs::read_to_string(p).ok();
    d.parse_file(FREERADIUS, &top, &mut open).unwrap();
    for (name, key, typ) in attr::KNOWN {
        let Some(a) = d.get(name) else {
            assert!(
                key.vendor == attr::VENDOR_CHILLISPOT && key.typ > 9,
                "{name} missing from FreeRADIUS's dictionaries"
            );
            continue;
        };
        assert_eq!((a.key, a.typ.as_str()), (*key, *typ), "{name}");
    }
}
