//! A reader for FreeRADIUS-format dictionaries, enough to check that the
//! numbers and types lassi uses ([`super::packet::attr::KNOWN`]) agree with
//! the dictionaries it ships in `radius-dicts/` (and with FreeRADIUS's own).
//!
//! Understood: `VENDOR name number [format=…]`, `BEGIN-VENDOR name`,
//! `END-VENDOR name`, `ATTRIBUTE name number type [flags|vendor]`,
//! `$INCLUDE file` (relative to the including file); `VALUE` and other
//! keywords are skipped; `#` starts a comment.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use super::packet::AttrKey;

/// One attribute definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DictAttr {
    /// Name as written.
    pub name: String,
    /// Vendor and number.
    pub key: AttrKey,
    /// Data type (`integer`, `string`, `octets`, `ipaddr`, `date`…).
    pub typ: String,
}

/// A parsed dictionary (several files merged).
#[derive(Clone, Debug, Default)]
pub struct Dictionary {
    /// Vendor names (every alias) to numbers.
    pub vendors: HashMap<String, u32>,
    /// Attributes by name.
    pub attrs: HashMap<String, DictAttr>,
}

impl Dictionary {
    /// Parses `path` (following `$INCLUDE`s) into this dictionary.
    pub fn load(&mut self, path: &Path) -> io::Result<()> {
        let text = fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        self.parse(&text, Some(base)).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Parses dictionary text; `$INCLUDE` is followed only with a `base`.
    pub fn parse(&mut self, text: &str, base: Option<&Path>) -> Result<(), String> {
        let mut vendor: u32 = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let f: Vec<&str> = line.split_whitespace().collect();
            let err = |m: &str| format!("line {}: {m}: {}", n + 1, line.trim());
            match f.first().copied() {
                None => {}
                Some("$INCLUDE") | Some("$INCLUDE-") => {
                    let (Some(b), Some(file)) = (base, f.get(1)) else {
                        continue;
                    };
                    let p = b.join(file);
                    if f[0] == "$INCLUDE-" && !p.exists() {
                        continue;
                    }
                    self.load(&p).map_err(|e| err(&e.to_string()))?;
                }
                Some("VENDOR") => {
                    let (Some(name), Some(num)) = (f.get(1), f.get(2)) else {
                        return Err(err("VENDOR needs a name and a number"));
                    };
                    let num = parse_num(num).ok_or_else(|| err("bad vendor number"))?;
                    self.vendors.insert(name.to_string(), num);
                }
                Some("BEGIN-VENDOR") => {
                    let name = f.get(1).ok_or_else(|| err("BEGIN-VENDOR needs a name"))?;
                    vendor = *self
                        .vendors
                        .get(*name)
                        .ok_or_else(|| err("unknown vendor"))?;
                }
                Some("END-VENDOR") => vendor = 0,
                Some("ATTRIBUTE") => {
                    if f.len() < 4 {
                        return Err(err("ATTRIBUTE needs a name, a number and a type"));
                    }
                    // Extended and TLV attributes ("241.1", "255.1") and
                    // wide vendor numbers have no place in lassi's codec:
                    // skipped.
                    if f[2].contains('.') {
                        continue;
                    }
                    let num = parse_num(f[2]).ok_or_else(|| err("bad attribute number"))?;
                    let Ok(num) = u8::try_from(num) else {
                        continue;
                    };
                    // Old style: a vendor name as fifth field.
                    let v = match f.get(4).and_then(|x| self.vendors.get(*x)) {
                        Some(v) => *v,
                        None => vendor,
                    };
                    self.attrs.insert(
                        f[1].to_string(),
                        DictAttr {
                            name: f[1].to_string(),
                            key: AttrKey {
                                vendor: v,
                                typ: num,
                            },
                            typ: f[3].to_string(),
                        },
                    );
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// An attribute by name.
    pub fn get(&self, name: &str) -> Option<&DictAttr> {
        self.attrs.get(name)
    }
}

fn parse_num(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::packet::attr;
    use std::path::PathBuf;

    fn dicts() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("radius-dicts")
    }

    #[test]
    fn shipped_dictionaries_agree_with_the_codec() {
        let mut d = Dictionary::default();
        d.load(&dicts().join("dictionary.lassi")).unwrap();
        assert_eq!(d.vendors["WISPr"], attr::VENDOR_WISPR);
        assert_eq!(d.vendors["ChilliSpot"], attr::VENDOR_CHILLISPOT);
        assert_eq!(d.vendors["CoovaChilli"], attr::VENDOR_CHILLISPOT);
        let mut checked = 0;
        for (name, key, typ) in attr::KNOWN.iter().filter(|(_, k, _)| k.vendor != 0) {
            let a = d
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing from radius-dicts"));
            assert_eq!((a.key, a.typ.as_str()), (*key, *typ), "{name}");
            // The CoovaChilli alias names the same attribute.
            if let Some(rest) = name.strip_prefix("ChilliSpot-") {
                let alias = format!("CoovaChilli-{rest}");
                let b = d
                    .get(&alias)
                    .unwrap_or_else(|| panic!("{alias} missing from radius-dicts"));
                assert_eq!((b.key, b.typ.as_str()), (*key, *typ), "{alias}");
            }
            checked += 1;
        }
        assert_eq!(checked, 15);
    }

    #[test]
    fn freeradius_dictionaries_agree_with_the_codec() {
        // FreeRADIUS's own dictionaries, when installed (CI installs them):
        // the standard attributes, and its WISPr/ChilliSpot subsets.
        let root = Path::new("/usr/share/freeradius/dictionary");
        if !root.exists() {
            eprintln!("FreeRADIUS dictionaries not installed; skipped");
            return;
        }
        let mut d = Dictionary::default();
        d.load(root).unwrap();
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

    #[test]
    fn parses_old_and_new_vendor_syntax() {
        let mut d = Dictionary::default();
        d.parse(
            "VENDOR V 9 # c\nATTRIBUTE A 1 integer V\nBEGIN-VENDOR V\nATTRIBUTE B 0x2 string\nEND-VENDOR V\nATTRIBUTE C 3 ipaddr\nVALUE A x 1\n",
            None,
        )
        .unwrap();
        assert_eq!(d.get("A").unwrap().key, AttrKey::vendor(9, 1));
        assert_eq!(d.get("B").unwrap().key, AttrKey::vendor(9, 2));
        assert_eq!(d.get("C").unwrap().key, AttrKey::std(3));
        assert!(d.parse("ATTRIBUTE X y integer", None).is_err());
    }
}
