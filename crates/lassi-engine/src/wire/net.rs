//! IPv4 networks in CIDR form (`10.1.0.0/24`): the gateway's LAN, the
//! walled garden's networks, the client-isolation exceptions.

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

/// An IPv4 network in CIDR form, e.g. `10.1.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    /// The network address (host bits zero).
    pub addr: Ipv4Addr,
    /// Prefix length, 0–32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// The netmask as an address (`255.255.255.0` for /24).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    fn mask_bits(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// The network of `ip` under `netmask`, or `None` when the mask is not
    /// contiguous (like `255.0.255.0`).
    pub fn from_netmask(ip: Ipv4Addr, netmask: Ipv4Addr) -> Option<Ipv4Net> {
        let mask = u32::from(netmask);
        if mask.leading_ones() + mask.trailing_zeros() != 32 {
            return None;
        }
        Some(Ipv4Net {
            addr: Ipv4Addr::from(u32::from(ip) & mask),
            prefix: mask.leading_ones() as u8,
        })
    }

    /// True when `ip` is an address a host may hold here: inside the
    /// network, and neither its network nor its broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.addr && ip != self.broadcast()
    }

    /// True when `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.addr)
    }

    /// The directed broadcast address of the network.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    /// First usable host address (network + 1).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(1))
    }

    /// Last usable host address (broadcast − 1).
    pub fn last_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.broadcast()).wrapping_sub(1))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not in CIDR form (like 10.1.0.0/24)"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("'{p}' is not a prefix length between 0 and 32"))?;
        let net = Ipv4Net { addr, prefix };
        if u32::from(addr) & !net.mask_bits() != 0 {
            return Err(format!(
                "'{s}' has host bits set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & net.mask_bits())
            ));
        }
        Ok(net)
    }
}

/// Written as `addr/prefix`, the form it is read from.
impl serde::Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_from_netmasks_and_their_hosts() {
        let ip = Ipv4Addr::new(10, 1, 0, 1);
        let n = Ipv4Net::from_netmask(ip, Ipv4Addr::new(255, 255, 255, 0)).unwrap();
        assert_eq!(n, "10.1.0.0/24".parse().unwrap());
        assert!(n.is_host(ip) && n.is_host(Ipv4Addr::new(10, 1, 0, 254)));
        assert!(!n.is_host(n.addr) && !n.is_host(n.broadcast()));
        assert!(!n.is_host(Ipv4Addr::new(10, 1, 1, 1)));
        assert_eq!(
            Ipv4Net::from_netmask(ip, Ipv4Addr::new(255, 0, 255, 0)),
            None
        );
        let all = Ipv4Net::from_netmask(ip, Ipv4Addr::UNSPECIFIED).unwrap();
        assert_eq!((all.addr, all.prefix), (Ipv4Addr::UNSPECIFIED, 0));
    }
}
