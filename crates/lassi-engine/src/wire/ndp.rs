//! ICMPv6 neighbour discovery (RFC 4861): Router Solicitation and
//! Advertisement, Neighbor Solicitation and Advertisement (duplicate address
//! detection included), and Redirect (parsed only, so the guards can
//! classify and drop it), with the options lassi reads or sends: link-layer
//! addresses, Prefix Information, MTU, RDNSS and DNSSL (RFC 8106) and the
//! captive-portal URI (RFC 8910, option 37).
//!
//! [`Repr::parse`] checks the structure of an ICMPv6 message: its length,
//! code 0, and every option's bounds (an option of length 0 is invalid,
//! RFC 4861 §4.6; one that runs past the message is an error).
//! [`Repr::parse_validated`] adds the checks of RFC 4861 §6.1 and §7.1 that
//! need the IPv6 header: hop limit 255, checksum with the pseudo-header,
//! and the source-address rules of each message. [`Repr::emit`] builds a
//! message with its checksum. Nothing here panics on any input; what is
//! allocated is bounded by the message's length.

use core::fmt;
use core::net::Ipv6Addr;

use super::ipv6::{self, NEXT_ICMPV6};
use super::MacAddr;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// ICMPv6 type of a Neighbor Solicitation.
pub const NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const NEIGHBOR_ADVERT: u8 = 136;
/// ICMPv6 type of a Redirect.
pub const REDIRECT: u8 = 137;

/// Option type: source link-layer address.
pub const OPT_SOURCE_LL: u8 = 1;
/// Option type: target link-layer address.
pub const OPT_TARGET_LL: u8 = 2;
/// Option type: prefix information.
pub const OPT_PREFIX_INFO: u8 = 3;
/// Option type: MTU.
pub const OPT_MTU: u8 = 5;
/// Option type: recursive DNS servers (RFC 8106).
pub const OPT_RDNSS: u8 = 25;
/// Option type: DNS search list (RFC 8106).
pub const OPT_DNSSL: u8 = 31;
/// Option type: captive-portal URI (RFC 8910).
pub const OPT_CAPTIVE_PORTAL: u8 = 37;

/// The hop limit every neighbour-discovery message must arrive with.
pub const ND_HOP_LIMIT: u8 = 255;

/// Why bytes are not a neighbour-discovery message lassi accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed part of its type.
    Truncated,
    /// An ICMPv6 type that is not neighbour discovery.
    NotNdp(u8),
    /// A code other than 0.
    BadCode(u8),
    /// An option of length 0 (RFC 4861 §4.6), or one that runs past the message.
    BadOptionLength(u8),
    /// An option whose content does not fit its type.
    BadOption(u8),
    /// The checksum does not verify.
    BadChecksum,
    /// The hop limit is not 255: the message came from off the link.
    HopLimit(u8),
    /// A rule of RFC 4861 §6.1/§7.1 is broken (which one is said).
    Invalid(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "truncated neighbour-discovery message"),
            Error::NotNdp(t) => write!(f, "ICMPv6 type {t} is not neighbour discovery"),
            Error::BadCode(c) => write!(f, "ICMPv6 code {c} (must be 0)"),
            Error::BadOptionLength(t) => write!(f, "option {t}: zero or overlong length"),
            Error::BadOption(t) => write!(f, "option {t}: content does not fit its type"),
            Error::BadChecksum => write!(f, "ICMPv6 checksum does not verify"),
            Error::HopLimit(h) => write!(f, "hop limit {h}, not 255"),
            Error::Invalid(why) => write!(f, "invalid: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A Prefix Information option (RFC 4861 §4.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixInfo {
    /// Prefix length in bits.
    pub prefix_len: u8,
    /// L flag: the prefix is on-link.
    pub on_link: bool,
    /// A flag: hosts may form addresses in it (SLAAC).
    pub autonomous: bool,
    /// Valid lifetime in seconds (0xffffffff = infinity).
    pub valid_lifetime: u32,
    /// Preferred lifetime in seconds.
    pub preferred_lifetime: u32,
    /// The prefix (bits past `prefix_len` as sent).
    pub prefix: Ipv6Addr,
}

/// One neighbour-discovery option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdpOption {
    /// Source link-layer address (1), Ethernet.
    SourceLinkAddr(MacAddr),
    /// Target link-layer address (2), Ethernet.
    TargetLinkAddr(MacAddr),
    /// Prefix information (3).
    PrefixInfo(PrefixInfo),
    /// Link MTU (5).
    Mtu(u32),
    /// Recursive DNS servers (25, RFC 8106 §5.1).
    Rdnss {
        /// Seconds the servers may be used.
        lifetime: u32,
        /// At least one server.
        servers: Vec<Ipv6Addr>,
    },
    /// DNS search list (31, RFC 8106 §5.2).
    Dnssl {
        /// Seconds the domains may be used.
        lifetime: u32,
        /// At least one domain, dotted, without the final dot.
        domains: Vec<String>,
    },
    /// Captive-portal API URI (37, RFC 8910 §2.3).
    CaptivePortal(String),
    /// Any other option, kept as its type and the bytes after the length byte.
    Unknown {
        /// Option type.
        kind: u8,
        /// Its content (a multiple of 8 bytes, minus the 2 of type and length).
        data: Vec<u8>,
    },
}

/// Flags of a Router Advertisement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaFlags {
    /// M: addresses are available by DHCPv6.
    pub managed: bool,
    /// O: other configuration is available by DHCPv6.
    pub other: bool,
}

/// Flags of a Neighbor Advertisement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_: bool,
}

/// A neighbour-discovery message as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repr {
    /// Router Solicitation (133).
    RouterSolicit {
        /// Its options.
        options: Vec<NdpOption>,
    },
    /// Router Advertisement (134).
    RouterAdvert {
        /// Cur Hop Limit hosts should use (0: unspecified).
        hop_limit: u8,
        /// M and O.
        flags: RaFlags,
        /// Seconds this router is a default router (0: not one).
        router_lifetime: u16,
        /// Reachable time in ms (0: unspecified).
        reachable_time: u32,
        /// Retransmission timer in ms (0: unspecified).
        retrans_timer: u32,
        /// Its options.
        options: Vec<NdpOption>,
    },
    /// Neighbor Solicitation (135); from `::` it is duplicate address detection.
    NeighborSolicit {
        /// The address asked about.
        target: Ipv6Addr,
        /// Its options.
        options: Vec<NdpOption>,
    },
    /// Neighbor Advertisement (136).
    NeighborAdvert {
        /// R, S and O.
        flags: NaFlags,
        /// The address advertised.
        target: Ipv6Addr,
        /// Its options.
        options: Vec<NdpOption>,
    },
    /// Redirect (137).
    Redirect {
        /// The better first hop.
        target: Ipv6Addr,
        /// The destination redirected.
        destination: Ipv6Addr,
        /// Its options.
        options: Vec<NdpOption>,
    },
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn mac(kind: u8, body: &[u8]) -> Result<MacAddr, Error> {
    // Ethernet's link-layer option is exactly 8 bytes (RFC 2464 §8).
    let b: [u8; 6] = body.try_into().map_err(|_| Error::BadOption(kind))?;
    Ok(MacAddr(b))
}

fn parse_prefix(body: &[u8]) -> Result<PrefixInfo, Error> {
    if body.len() != 30 || body[0] > 128 {
        return Err(Error::BadOption(OPT_PREFIX_INFO));
    }
    Ok(PrefixInfo {
        prefix_len: body[0],
        on_link: body[1] & 0x80 != 0,
        autonomous: body[1] & 0x40 != 0,
        valid_lifetime: u32_at(body, 2),
        preferred_lifetime: u32_at(body, 6),
        prefix: addr(&body[14..]),
    })
}

fn parse_rdnss(body: &[u8]) -> Result<NdpOption, Error> {
    // Reserved(2) Lifetime(4), then whole addresses: length 3, 5, 7, ...
    if body.len() < 22 || (body.len() - 6) % 16 != 0 {
        return Err(Error::BadOption(OPT_RDNSS));
    }
    let servers = body[6..].chunks_exact(16).map(addr).collect();
    Ok(NdpOption::Rdnss {
        lifetime: u32_at(body, 2),
        servers,
    })
}

/// Reads DNS names in uncompressed wire form from `b` until the bytes run
/// out or only zero padding is left (RFC 8106 §5.2; RFC 8415 §10 uses the
/// same form without padding).
pub fn parse_names(b: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut at = 0;
    while at < b.len() {
        if b[at..].iter().all(|&x| x == 0) && !names.is_empty() {
            break;
        }
        let mut labels: Vec<&str> = Vec::new();
        loop {
            let len = usize::from(*b.get(at)?);
            at += 1;
            if len == 0 {
                break;
            }
            if len > 63 {
                return None;
            }
            let label = core::str::from_utf8(b.get(at..at + len)?).ok()?;
            if label.contains('.') {
                return None; // would not survive the dotted form
            }
            labels.push(label);
            at += len;
        }
        let name = labels.join(".");
        if name.is_empty() || name.len() > 253 {
            return None;
        }
        names.push(name);
    }
    (!names.is_empty()).then_some(names)
}

/// Writes `name` in uncompressed wire form; `false` (nothing written) when
/// a label is empty or longer than 63 bytes, or the name longer than 255.
pub fn emit_name(name: &str, out: &mut Vec<u8>) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() < 254
        && name.split('.').all(|l| !l.is_empty() && l.len() <= 63);
    if ok {
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    ok
}

fn parse_dnssl(body: &[u8]) -> Result<NdpOption, Error> {
    let domains = body
        .get(6..)
        .and_then(parse_names)
        .ok_or(Error::BadOption(OPT_DNSSL))?;
    Ok(NdpOption::Dnssl {
        lifetime: u32_at(body, 2),
        domains,
    })
}

fn parse_option(kind: u8, body: &[u8]) -> Result<NdpOption, Error> {
    Ok(match kind {
        OPT_SOURCE_LL => NdpOption::SourceLinkAddr(mac(kind, body)?),
        OPT_TARGET_LL => NdpOption::TargetLinkAddr(mac(kind, body)?),
        OPT_PREFIX_INFO => NdpOption::PrefixInfo(parse_prefix(body)?),
        OPT_MTU if body.len() == 6 => NdpOption::Mtu(u32_at(body, 2)),
        OPT_MTU => return Err(Error::BadOption(kind)),
        OPT_RDNSS => parse_rdnss(body)?,
        OPT_DNSSL => parse_dnssl(body)?,
        OPT_CAPTIVE_PORTAL => {
            // The URI, padded with NULs to the option's length (RFC 8910 §2.3).
            let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
            let uri = core::str::from_utf8(&body[..end]).map_err(|_| Error::BadOption(kind))?;
            NdpOption::CaptivePortal(uri.to_string())
        }
        _ => NdpOption::Unknown {
            kind,
            data: body.to_vec(),
        },
    })
}

/// Parses the options that fill `b` (everything after a message's fixed part).
pub fn parse_options(mut b: &[u8]) -> Result<Vec<NdpOption>, Error> {
    let mut options = Vec::new();
    while !b.is_empty() {
        let kind = b[0];
        let len = usize::from(*b.get(1).ok_or(Error::BadOptionLength(kind))?) * 8;
        if len == 0 || len > b.len() {
            return Err(Error::BadOptionLength(kind));
        }
        options.push(parse_option(kind, &b[2..len])?);
        b = &b[len..];
    }
    Ok(options)
}

impl NdpOption {
    /// The option's type byte.
    pub fn kind(&self) -> u8 {
        match self {
            NdpOption::SourceLinkAddr(_) => OPT_SOURCE_LL,
            NdpOption::TargetLinkAddr(_) => OPT_TARGET_LL,
            NdpOption::PrefixInfo(_) => OPT_PREFIX_INFO,
            NdpOption::Mtu(_) => OPT_MTU,
            NdpOption::Rdnss { .. } => OPT_RDNSS,
            NdpOption::Dnssl { .. } => OPT_DNSSL,
            NdpOption::CaptivePortal(_) => OPT_CAPTIVE_PORTAL,
            NdpOption::Unknown { kind, .. } => *kind,
        }
    }

    fn body(&self, out: &mut Vec<u8>) {
        match self {
            NdpOption::SourceLinkAddr(m) | NdpOption::TargetLinkAddr(m) => {
                out.extend_from_slice(&m.0)
            }
            NdpOption::PrefixInfo(p) => {
                let flags = (u8::from(p.on_link) << 7) | (u8::from(p.autonomous) << 6);
                out.extend_from_slice(&[p.prefix_len, flags]);
                out.extend_from_slice(&p.valid_lifetime.to_be_bytes());
                out.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&p.prefix.octets());
            }
            NdpOption::Mtu(m) => {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&m.to_be_bytes());
            }
            NdpOption::Rdnss { lifetime, servers } => {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&lifetime.to_be_bytes());
                servers
                    .iter()
                    .for_each(|s| out.extend_from_slice(&s.octets()));
            }
            NdpOption::Dnssl { lifetime, domains } => {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&lifetime.to_be_bytes());
                for d in domains {
                    emit_name(d, out);
                }
            }
            NdpOption::CaptivePortal(uri) => out.extend_from_slice(uri.as_bytes()),
            NdpOption::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }

    /// Appends the option to `out`, padded with zeros to a multiple of 8
    /// bytes. An option whose content cannot be sent (longer than 2040
    /// bytes, an empty RDNSS or DNSSL, an Unknown whose data is not 6 bytes
    /// short of a multiple of 8) is left out; the settings' validation
    /// keeps lassi's own from being so.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[self.kind(), 0]);
        self.body(out);
        let raw = out.len() - start;
        let len = raw.div_ceil(8);
        let empty = match self {
            NdpOption::Rdnss { servers, .. } => servers.is_empty(),
            NdpOption::Dnssl { domains, .. } => raw == 8 || domains.is_empty(),
            NdpOption::Unknown { data, .. } => (data.len() + 2) % 8 != 0,
            _ => false,
        };
        if len > 255 || empty {
            out.truncate(start);
            return;
        }
        out.resize(start + len * 8, 0);
        out[start + 1] = len as u8;
    }
}

fn fixed_len(kind: u8) -> Result<usize, Error> {
    Ok(match kind {
        ROUTER_SOLICIT => 8,
        ROUTER_ADVERT => 16,
        NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT => 24,
        REDIRECT => 40,
        t => return Err(Error::NotNdp(t)),
    })
}

/// The source and destination an ICMPv6 message came with, for the rules
/// that depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Meta {
    /// IPv6 source address.
    pub src: Ipv6Addr,
    /// IPv6 destination address.
    pub dst: Ipv6Addr,
    /// Hop limit it arrived with.
    pub hop_limit: u8,
}

impl Repr {
    /// Parses the ICMPv6 message `msg` (from its type byte): the fixed part
    /// of its type, code 0, and every option. The checksum is not checked
    /// (see [`Repr::parse_validated`]).
    pub fn parse(msg: &[u8]) -> Result<Repr, Error> {
        let kind = *msg.first().ok_or(Error::Truncated)?;
        let fixed = fixed_len(kind)?;
        if msg.len() < fixed {
            return Err(Error::Truncated);
        }
        if msg[1] != 0 {
            return Err(Error::BadCode(msg[1]));
        }
        let options = parse_options(&msg[fixed..])?;
        Ok(match kind {
            ROUTER_SOLICIT => Repr::RouterSolicit { options },
            ROUTER_ADVERT => Repr::RouterAdvert {
                hop_limit: msg[4],
                flags: RaFlags {
                    managed: msg[5] & 0x80 != 0,
                    other: msg[5] & 0x40 != 0,
                },
                router_lifetime: u16::from_be_bytes([msg[6], msg[7]]),
                reachable_time: u32_at(msg, 8),
                retrans_timer: u32_at(msg, 12),
                options,
            },
            NEIGHBOR_SOLICIT => Repr::NeighborSolicit {
                target: addr(&msg[8..]),
                options,
            },
            NEIGHBOR_ADVERT => Repr::NeighborAdvert {
                flags: NaFlags {
                    router: msg[4] & 0x80 != 0,
                    solicited: msg[4] & 0x40 != 0,
                    override_: msg[4] & 0x20 != 0,
                },
                target: addr(&msg[8..]),
                options,
            },
            _ => Repr::Redirect {
                target: addr(&msg[8..]),
                destination: addr(&msg[24..]),
                options,
            },
        })
    }

    /// [`Repr::parse`] plus the validity checks of RFC 4861 §6.1.1, §6.1.2,
    /// §7.1.1, §7.1.2 and §8.1 that need the IPv6 header: hop limit 255, the
    /// checksum over the pseudo-header, and each type's address rules.
    pub fn parse_validated(meta: &Ipv6Meta, msg: &[u8]) -> Result<Repr, Error> {
        if meta.hop_limit != ND_HOP_LIMIT {
            return Err(Error::HopLimit(meta.hop_limit));
        }
        if ipv6::upper_checksum(meta.src, meta.dst, NEXT_ICMPV6, msg) != 0 {
            return Err(Error::BadChecksum);
        }
        let repr = Repr::parse(msg)?;
        repr.check_addresses(meta)?;
        Ok(repr)
    }

    fn check_addresses(&self, meta: &Ipv6Meta) -> Result<(), Error> {
        let unspecified = meta.src.is_unspecified();
        let has_sll = self
            .options()
            .iter()
            .any(|o| matches!(o, NdpOption::SourceLinkAddr(_)));
        match self {
            Repr::RouterSolicit { .. } if unspecified && has_sll => Err(Error::Invalid(
                "RS from :: with a source link-layer address",
            )),
            Repr::RouterAdvert { .. } | Repr::Redirect { .. } if !ipv6::is_link_local(meta.src) => {
                Err(Error::Invalid(
                    "RA or Redirect from a non-link-local source",
                ))
            }
            Repr::NeighborSolicit { target, .. } | Repr::NeighborAdvert { target, .. }
                if target.is_multicast() =>
            {
                Err(Error::Invalid("multicast target"))
            }
            Repr::NeighborSolicit { target, .. } if unspecified => {
                if meta.dst != ipv6::solicited_node(*target) {
                    Err(Error::Invalid(
                        "DAD NS not to the target's solicited-node group",
                    ))
                } else if has_sll {
                    Err(Error::Invalid("DAD NS with a source link-layer address"))
                } else {
                    Ok(())
                }
            }
            Repr::NeighborAdvert { flags, .. } if meta.dst.is_multicast() && flags.solicited => {
                Err(Error::Invalid("solicited NA to a multicast destination"))
            }
            _ => Ok(()),
        }
    }

    /// True for a Neighbor Solicitation from `::`, duplicate address
    /// detection (RFC 4862 §5.4): the sender is about to use `target`.
    pub fn is_dad(&self, src: Ipv6Addr) -> bool {
        matches!(self, Repr::NeighborSolicit { .. }) && src.is_unspecified()
    }

    /// The ICMPv6 type.
    pub fn kind(&self) -> u8 {
        match self {
            Repr::RouterSolicit { .. } => ROUTER_SOLICIT,
            Repr::RouterAdvert { .. } => ROUTER_ADVERT,
            Repr::NeighborSolicit { .. } => NEIGHBOR_SOLICIT,
            Repr::NeighborAdvert { .. } => NEIGHBOR_ADVERT,
            Repr::Redirect { .. } => REDIRECT,
        }
    }

    /// The message's options.
    pub fn options(&self) -> &[NdpOption] {
        match self {
            Repr::RouterSolicit { options }
            | Repr::RouterAdvert { options, .. }
            | Repr::NeighborSolicit { options, .. }
            | Repr::NeighborAdvert { options, .. }
            | Repr::Redirect { options, .. } => options,
        }
    }

    /// The source link-layer address option's MAC, if any.
    pub fn source_link_addr(&self) -> Option<MacAddr> {
        self.options().iter().find_map(|o| match o {
            NdpOption::SourceLinkAddr(m) => Some(*m),
            _ => None,
        })
    }

    fn fixed(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.kind(), 0, 0, 0]);
        match self {
            Repr::RouterSolicit { .. } => out.extend_from_slice(&[0; 4]),
            Repr::RouterAdvert {
                hop_limit,
                flags,
                router_lifetime,
                reachable_time,
                retrans_timer,
                ..
            } => {
                let f = (u8::from(flags.managed) << 7) | (u8::from(flags.other) << 6);
                out.extend_from_slice(&[*hop_limit, f]);
                out.extend_from_slice(&router_lifetime.to_be_bytes());
                out.extend_from_slice(&reachable_time.to_be_bytes());
                out.extend_from_slice(&retrans_timer.to_be_bytes());
            }
            Repr::NeighborSolicit { target, .. } => {
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&target.octets());
            }
            Repr::NeighborAdvert { flags, target, .. } => {
                let f = (u8::from(flags.router) << 7)
                    | (u8::from(flags.solicited) << 6)
                    | (u8::from(flags.override_) << 5);
                out.extend_from_slice(&[f, 0, 0, 0]);
                out.extend_from_slice(&target.octets());
            }
            Repr::Redirect {
                target,
                destination,
                ..
            } => {
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&target.octets());
                out.extend_from_slice(&destination.octets());
            }
        }
    }

    /// The ICMPv6 message, checksummed for `src` → `dst`.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.fixed(&mut out);
        for o in self.options() {
            o.emit(&mut out);
        }
        let c = ipv6::upper_checksum(src, dst, NEXT_ICMPV6, &out);
        out[2..4].copy_from_slice(&c.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);

    fn sample_ra() -> Repr {
        Repr::RouterAdvert {
            hop_limit: 64,
            flags: RaFlags {
                managed: true,
                other: true,
            },
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            options: vec![
                NdpOption::SourceLinkAddr(MAC),
                NdpOption::Mtu(1500),
                NdpOption::PrefixInfo(PrefixInfo {
                    prefix_len: 64,
                    on_link: true,
                    autonomous: true,
                    valid_lifetime: 7200,
                    preferred_lifetime: 3600,
                    prefix: ip("2001:db8:1::"),
                }),
                NdpOption::Rdnss {
                    lifetime: 1800,
                    servers: vec![ip("2001:db8::53")],
                },
                NdpOption::Dnssl {
                    lifetime: 1800,
                    domains: vec!["example.com".into()],
                },
                NdpOption::CaptivePortal("https://p.example/api".into()),
            ],
        }
    }

    /// Every byte of an RA written out by hand from RFC 4861 §4.2/§4.6,
    /// RFC 8106 §5 and RFC 8910 §2.3; the checksum is computed by
    /// etherparse's independent ICMPv6 code.
    #[test]
    fn router_advert_bytes() {
        let (src, dst) = (ip("fe80::1"), ip("ff02::1"));
        let bytes = sample_ra().emit(src, dst);
        let mut expect = hex("86 00 0000  40 c0 0708  00000000 00000000
             01 01 02005e100001
             05 01 0000 000005dc
             03 04 40 c0 00001c20 00000e10 00000000 20010db8000100000000000000000000
             19 03 0000 00000708 20010db8000000000000000000000053
             1f 03 0000 00000708 076578616d706c6503636f6d00 000000
             25 03 68747470733a2f2f702e6578616d706c652f617069 00");
        assert_eq!(expect.len(), bytes.len());
        let ep = etherparse::Icmpv6Header::with_checksum(
            etherparse::Icmpv6Type::Unknown {
                type_u8: 134,
                code_u8: 0,
                bytes5to8: [0x40, 0xc0, 0x07, 0x08],
            },
            src.octets(),
            dst.octets(),
            &expect[8..],
        )
        .unwrap();
        expect[2..4].copy_from_slice(&ep.checksum.to_be_bytes());
        assert_eq!(bytes, expect);
        let meta = Ipv6Meta {
            src,
            dst,
            hop_limit: 255,
        };
        assert_eq!(Repr::parse_validated(&meta, &bytes).unwrap(), sample_ra());
    }

    /// A DAD probe and a solicited NA byte for byte (RFC 4861 §4.3/§4.4),
    /// checksums from etherparse's independent ICMPv6 code.
    #[test]
    fn neighbor_message_bytes() {
        let check = |repr: Repr, src: &str, dst: &str, mut expect: Vec<u8>| {
            let (src, dst) = (ip(src), ip(dst));
            let t = etherparse::Icmpv6Type::Unknown {
                type_u8: expect[0],
                code_u8: 0,
                bytes5to8: [expect[4], expect[5], expect[6], expect[7]],
            };
            let h = etherparse::Icmpv6Header::with_checksum(
                t,
                src.octets(),
                dst.octets(),
                &expect[8..],
            )
            .unwrap();
            expect[2..4].copy_from_slice(&h.checksum.to_be_bytes());
            assert_eq!(repr.emit(src, dst), expect);
        };
        let target = ip("2001:db8:1::77");
        let dad = Repr::NeighborSolicit {
            target,
            options: vec![],
        };
        let expect = hex("87 00 0000 00000000 20010db8000100000000000000000077");
        check(dad, "::", "ff02::1:ff00:77", expect);
        let na = Repr::NeighborAdvert {
            flags: NaFlags {
                router: true,
                solicited: true,
                override_: false,
            },
            target,
            options: vec![NdpOption::TargetLinkAddr(MAC)],
        };
        let expect = hex("88 00 0000 c0000000 20010db8000100000000000000000077 02 01 02005e100001");
        check(na, "2001:db8:1::77", "fe80::1", expect);
    }

    #[test]
    fn neighbor_messages_round_trip() {
        let target = ip("2001:db8:1::abcd");
        let dad = Repr::NeighborSolicit {
            target,
            options: vec![],
        };
        let meta = Ipv6Meta {
            src: Ipv6Addr::UNSPECIFIED,
            dst: ipv6::solicited_node(target),
            hop_limit: 255,
        };
        let bytes = dad.emit(meta.src, meta.dst);
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[..2], &[135, 0]);
        let back = Repr::parse_validated(&meta, &bytes).unwrap();
        assert!(back.is_dad(meta.src));
        assert_eq!(back, dad);

        let na = Repr::NeighborAdvert {
            flags: NaFlags {
                router: true,
                solicited: true,
                override_: true,
            },
            target: ip("fe80::1"),
            options: vec![NdpOption::TargetLinkAddr(MAC)],
        };
        let (s, d) = (ip("fe80::1"), ip("fe80::99"));
        let bytes = na.emit(s, d);
        assert_eq!(bytes[4], 0xe0);
        assert_eq!(&bytes[24..], &hex("02 01 02005e100001"));
        let meta = Ipv6Meta {
            src: s,
            dst: d,
            hop_limit: 255,
        };
        assert_eq!(Repr::parse_validated(&meta, &bytes).unwrap(), na);
        let rs = Repr::RouterSolicit {
            options: vec![NdpOption::SourceLinkAddr(MAC)],
        };
        assert_eq!(Repr::parse(&rs.emit(s, ipv6::ALL_ROUTERS)).unwrap(), rs);
    }

    #[test]
    fn checks_against_etherparse() {
        // A router solicitation built by etherparse parses here.
        let (s, d) = (ip("fe80::99"), ipv6::ALL_ROUTERS);
        let b = etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 255).icmpv6(
            etherparse::Icmpv6Type::Unknown {
                type_u8: 133,
                code_u8: 0,
                bytes5to8: [0; 4],
            },
        );
        let mut pkt = Vec::new();
        b.write(&mut pkt, &hex("01 01 aabbccddeeff")).unwrap();
        let sum = ipv6::parse(&pkt).unwrap();
        let meta = Ipv6Meta {
            src: sum.src,
            dst: sum.dst,
            hop_limit: sum.hop_limit,
        };
        let rs = Repr::parse_validated(&meta, sum.upper(&pkt)).unwrap();
        assert_eq!(
            rs.source_link_addr(),
            Some(MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]))
        );
    }

    #[test]
    fn redirect_parses() {
        let r = Repr::Redirect {
            target: ip("fe80::5"),
            destination: ip("2001:db8::9"),
            options: vec![NdpOption::Unknown {
                kind: 4,
                data: vec![0; 14],
            }],
        };
        let bytes = r.emit(ip("fe80::5"), ip("fe80::6"));
        assert_eq!(bytes.len(), 56);
        assert_eq!(Repr::parse(&bytes).unwrap(), r);
    }

    #[test]
    fn strict_bounds() {
        let ok = Repr::RouterSolicit { options: vec![] }.emit(ip("::"), ipv6::ALL_ROUTERS);
        assert_eq!(Repr::parse(&ok[..7]), Err(Error::Truncated));
        assert_eq!(Repr::parse(&[]), Err(Error::Truncated));
        assert_eq!(Repr::parse(&[128, 0, 0, 0]), Err(Error::NotNdp(128)));
        let mut bad = ok.clone();
        bad[1] = 1;
        assert_eq!(Repr::parse(&bad), Err(Error::BadCode(1)));
        // Option length 0 is invalid (RFC 4861 §4.6), even for unknown types.
        let mut zero = ok.clone();
        zero.extend_from_slice(&[99, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Repr::parse(&zero), Err(Error::BadOptionLength(99)));
        // An option running past the message, and a lone type byte.
        let mut long = ok.clone();
        long.extend_from_slice(&[1, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Repr::parse(&long), Err(Error::BadOptionLength(1)));
        let mut lone = ok.clone();
        lone.push(1);
        assert_eq!(Repr::parse(&lone), Err(Error::BadOptionLength(1)));
        // RDNSS without a server, MTU of the wrong length, prefix length 129.
        let mut rdnss = ok.clone();
        rdnss.extend_from_slice(&hex("19 01 0000 00000708"));
        assert_eq!(Repr::parse(&rdnss), Err(Error::BadOption(OPT_RDNSS)));
        let mut mtu = ok.clone();
        mtu.extend_from_slice(&hex("05 02 0000 000005dc 0000000000000000"));
        assert_eq!(Repr::parse(&mtu), Err(Error::BadOption(OPT_MTU)));
        let mut pi = ok;
        pi.extend_from_slice(&hex("03 04 81 c0"));
        pi.extend_from_slice(&[0; 28]);
        assert_eq!(Repr::parse(&pi), Err(Error::BadOption(OPT_PREFIX_INFO)));
    }

    #[test]
    fn validation_rules() {
        let rs = Repr::RouterSolicit {
            options: vec![NdpOption::SourceLinkAddr(MAC)],
        };
        let unspec = Ipv6Meta {
            src: Ipv6Addr::UNSPECIFIED,
            dst: ipv6::ALL_ROUTERS,
            hop_limit: 255,
        };
        let bytes = rs.emit(unspec.src, unspec.dst);
        assert!(matches!(
            Repr::parse_validated(&unspec, &bytes),
            Err(Error::Invalid(_))
        ));
        let hop = Ipv6Meta {
            hop_limit: 64,
            ..unspec
        };
        assert_eq!(
            Repr::parse_validated(&hop, &bytes),
            Err(Error::HopLimit(64))
        );
        let mut flipped = bytes.clone();
        flipped[9] ^= 1;
        assert_eq!(
            Repr::parse_validated(&unspec, &flipped),
            Err(Error::BadChecksum)
        );
        // An RA from a global address is not a router's.
        let g = Ipv6Meta {
            src: ip("2001:db8::1"),
            dst: ipv6::ALL_NODES,
            hop_limit: 255,
        };
        let ra = sample_ra().emit(g.src, g.dst);
        assert!(matches!(
            Repr::parse_validated(&g, &ra),
            Err(Error::Invalid(_))
        ));
        // DAD to the wrong group.
        let t = ip("2001:db8::77");
        let dad = Repr::NeighborSolicit {
            target: t,
            options: vec![],
        };
        let m = Ipv6Meta {
            dst: ipv6::ALL_NODES,
            ..unspec
        };
        let b = dad.emit(m.src, m.dst);
        assert!(matches!(
            Repr::parse_validated(&m, &b),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn names_and_padding() {
        let mut out = Vec::new();
        assert!(emit_name("a.example.", &mut out));
        assert_eq!(out, b"\x01a\x07example\x00");
        assert!(!emit_name("a..b", &mut Vec::new()));
        assert!(!emit_name(&"x".repeat(64), &mut Vec::new()));
        assert_eq!(
            parse_names(b"\x01a\x00\x01b\x00\x00\x00"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_names(b"\x00"), None);
        assert_eq!(parse_names(b"\x05ab"), None);
        // The captive-portal URI is NUL-padded to 8 bytes.
        let mut o = Vec::new();
        NdpOption::CaptivePortal("http://x/".into()).emit(&mut o);
        assert_eq!(o.len(), 16);
        assert_eq!(
            parse_options(&o).unwrap(),
            vec![NdpOption::CaptivePortal("http://x/".into())]
        );
    }
}
