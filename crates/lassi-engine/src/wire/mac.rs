//! Ethernet MAC addresses: parsing, formatting, and the CoovaChilli dash form.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// True for group (multicast and broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// CoovaChilli's form used in redirect URLs and Calling-Station-Id:
    /// `AA-BB-CC-DD-EE-FF`.
    pub fn to_dashed(&self) -> String {
        let b = self.0;
        format!(
            "{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a MAC address string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacParseError(pub String);

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a MAC address (expected six hex pairs separated by ':' or '-')",
            self.0
        )
    }
}

impl std::error::Error for MacParseError {}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `AA-BB-CC-DD-EE-FF`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_separators_and_formats() {
        let a: MacAddr = "02:00:0a:01:00:17".parse().unwrap();
        let b: MacAddr = "02-00-0A-01-00-17".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0, [0x02, 0x00, 0x0a, 0x01, 0x00, 0x17]);
        assert_eq!(a.to_string(), "02:00:0a:01:00:17");
        assert_eq!(a.to_dashed(), "02-00-0A-01-00-17");
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "02:00:0a:01:00",
            "02:00:0a:01:00:17:00",
            "2:00:0a:01:00:17",
            "zz:00:0a:01:00:17",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn multicast_bit() {
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!"02:00:00:00:00:01"
            .parse::<MacAddr>()
            .unwrap()
            .is_multicast());
    }
}
