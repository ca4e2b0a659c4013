//! A reader for FreeRADIUS-format dictionaries, enough to check that the
//! numbers and types lassi's RADIUS codec uses (`lassi::radius::packet::attr::KNOWN`)
//! agree with the dictionaries it ships in `radius-dicts/` and with
//! FreeRADIUS's own. Test infrastructure: lassi itself never reads a
//! dictionary (its codec knows its attributes).
//!
//! Understood: `VENDOR name number [format=…]`, `BEGIN-VENDOR name`,
//! `END-VENDOR name`, `ATTRIBUTE name number type [flags|vendor]`,
//! `$INCLUDE file` (relative to the including file); `VALUE` and other
//! keywords are skipped; `#` starts a comment.
//!
//! It reads no file: [`Dictionary::parse_file`] asks its caller for the
//! text of every `$INCLUDE`d one.

use std::collections::HashMap;

use lassi::radius::packet::AttrKey;

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

/// Gives the text of an `$INCLUDE`d file, by its path (the name written
/// after `$INCLUDE`, relative to the including file's directory unless it
/// starts with `/`), or `None` if there is no such file.
pub type Includes<'a> = dyn FnMut(&str) -> Option<String> + 'a;

impl Dictionary {
    /// Parses dictionary text; `$INCLUDE` lines are skipped.
    pub fn parse(&mut self, text: &str) -> Result<(), String> {
        self.parse_text(text, None)
    }

    /// Parses the text of the file at `path`, following `$INCLUDE`s
    /// through `open` (a missing `$INCLUDE-` file is skipped, a missing
    /// `$INCLUDE` one is an error). Errors name the file and line.
    pub fn parse_file(
        &mut self,
        path: &str,
        text: &str,
        open: &mut Includes<'_>,
    ) -> Result<(), String> {
        self.parse_text(text, Some((path, open)))
            .map_err(|e| format!("{path}: {e}"))
    }

    fn parse_text(
        &mut self,
        text: &str,
        mut from: Option<(&str, &mut Includes<'_>)>,
    ) -> Result<(), String> {
        let mut vendor: u32 = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let f: Vec<&str> = line.split_whitespace().collect();
            let err = |m: &str| format!("line {}: {m}: {}", n + 1, line.trim());
            match f.first().copied() {
                Some(include @ ("$INCLUDE" | "$INCLUDE-")) => {
                    let (Some((path, open)), Some(file)) = (from.as_mut(), f.get(1)) else {
                        continue;
                    };
                    let p = relative_to(path, file);
                    match open(&p) {
                        Some(t) => self.parse_file(&p, &t, *open).map_err(|e| err(&e))?,
                        None if include == "$INCLUDE-" => {}
                        None => return Err(err(&format!("{p}: no such file"))),
                    }
                }
                _ => self.definition(&f, &mut vendor).map_err(err)?,
            }
        }
        Ok(())
    }

    /// One line other than `$INCLUDE`, split into fields; `vendor` is the
    /// one a `BEGIN-VENDOR` opened (0: none).
    fn definition(&mut self, f: &[&str], vendor: &mut u32) -> Result<(), &'static str> {
        match f.first().copied() {
            Some("VENDOR") => {
                let (Some(name), Some(num)) = (f.get(1), f.get(2)) else {
                    return Err("VENDOR needs a name and a number");
                };
                let num = parse_num(num).ok_or("bad vendor number")?;
                self.vendors.insert(name.to_string(), num);
            }
            Some("BEGIN-VENDOR") => {
                let name = f.get(1).ok_or("BEGIN-VENDOR needs a name")?;
                *vendor = *self.vendors.get(*name).ok_or("unknown vendor")?;
            }
            Some("END-VENDOR") => *vendor = 0,
            Some("ATTRIBUTE") => self.attribute(f, *vendor)?,
            _ => {}
        }
        Ok(())
    }

    fn attribute(&mut self, f: &[&str], vendor: u32) -> Result<(), &'static str> {
        if f.len() < 4 {
            return Err("ATTRIBUTE needs a name, a number and a type");
        }
        // Extended and TLV attributes ("241.1", "255.1") and wide vendor
        // numbers have no place in lassi's codec: skipped.
        if f[2].contains('.') {
            return Ok(());
        }
        let num = parse_num(f[2]).ok_or("bad attribute number")?;
        let Ok(num) = u8::try_from(num) else {
            return Ok(());
        };
        // Old style: a vendor name as fifth field.
        let v = match f.get(4).and_then(|x| self.vendors.get(*x)) {
            Some(v) => *v,
            None => vendor,
        };
        let key = AttrKey {
            vendor: v,
            typ: num,
        };
        let (name, typ) = (f[1].to_string(), f[3].to_string());
        self.attrs.insert(name.clone(), DictAttr { name, key, typ });
        Ok(())
    }

    /// An attribute by name.
    pub fn get(&self, name: &str) -> Option<&DictAttr> {
        self.attrs.get(name)
    }
}

/// `file` as written in an `$INCLUDE` of the file at `path`.
fn relative_to(path: &str, file: &str) -> String {
    match path.rfind('/') {
        Some(i) if !file.starts_with('/') => format!("{}/{file}", &path[..i]),
        _ => file.to_string(),
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
    use lassi::radius::packet::attr;

    /// `radius-dicts/` relative to this file: the one place to change
    /// when the file moves (`include_str!` needs a literal, so a macro).
    macro_rules! dicts_dir {
        () => {
            "../../../radius-dicts/"
        };
    }

    /// The shipped dictionaries, by file name.
    const SHIPPED: &[(&str, &str)] = &[
        (
            "dictionary.lassi",
            include_str!(concat!(dicts_dir!(), "dictionary.lassi")),
        ),
        (
            "dictionary.wispr",
            include_str!(concat!(dicts_dir!(), "dictionary.wispr")),
        ),
        (
            "dictionary.chillispot",
            include_str!(concat!(dicts_dir!(), "dictionary.chillispot")),
        ),
        (
            "dictionary.coovachilli",
            include_str!(concat!(dicts_dir!(), "dictionary.coovachilli")),
        ),
    ];

    fn shipped(name: &str) -> Option<String> {
        SHIPPED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
    }

    #[test]
    fn shipped_dictionaries_agree_with_the_codec() {
        let mut d = Dictionary::default();
        let top = shipped("dictionary.lassi").unwrap();
        d.parse_file("dictionary.lassi", &top, &mut shipped)
            .unwrap();
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
    fn parses_old_and_new_vendor_syntax() {
        let mut d = Dictionary::default();
        d.parse(
            "VENDOR V 9 # c\nATTRIBUTE A 1 integer V\nBEGIN-VENDOR V\nATTRIBUTE B 0x2 string\nEND-VENDOR V\nATTRIBUTE C 3 ipaddr\nVALUE A x 1\n",
        )
        .unwrap();
        assert_eq!(d.get("A").unwrap().key, AttrKey::vendor(9, 1));
        assert_eq!(d.get("B").unwrap().key, AttrKey::vendor(9, 2));
        assert_eq!(d.get("C").unwrap().key, AttrKey::std(3));
        assert!(d.parse("ATTRIBUTE X y integer").is_err());
    }

    #[test]
    fn includes_are_relative_and_optional_ones_may_be_missing() {
        let mut files = |p: &str| match p {
            "/d/sub/inc" => Some("ATTRIBUTE I 7 integer\n$INCLUDE- nothing".to_string()),
            _ => None,
        };
        let mut d = Dictionary::default();
        d.parse_file("/d/top", "$INCLUDE sub/inc\n$INCLUDE- gone", &mut files)
            .unwrap();
        assert_eq!(d.get("I").unwrap().key, AttrKey::std(7));
        let e = d
            .parse_file("/d/top", "\n$INCLUDE gone", &mut files)
            .unwrap_err();
        assert!(e.contains("/d/top: line 2") && e.contains("/d/gone"), "{e}");
        // Without an includer, $INCLUDE is skipped.
        d.parse("$INCLUDE gone").unwrap();
    }
}

/// Checks against the dictionaries on this machine: FreeRADIUS's own, when
/// installed (CI installs them), must agree with lassi's codec.
#[cfg(test)]
mod freeradius {
    use std::fs;

    use super::Dictionary;
    use lassi::radius::packet::attr;

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
}
