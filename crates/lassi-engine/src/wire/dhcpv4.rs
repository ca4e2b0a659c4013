//! DHCPv4 messages (RFC 2131) and their options (RFC 2132; RFC 3396 for
//! values longer than 255 bytes): a checked view of a received message, the
//! typed option values the server reads and writes, and an encoder.
//!
//! Like the other wire modules: [`Packet`] checks the length once and then
//! reads fields of a borrowed buffer; [`Repr`] holds a whole message as
//! values and [`Repr::emit`]s it. Everything here takes untrusted bytes: no
//! read goes past the buffer, a truncated option ends the option list, and
//! an option whose length does not fit its type is an [`Error`], never a
//! panic. What is allocated is bounded by the message's own length.
//!
//! lassi has its own codec rather than a crate's: the one it used before
//! (`dhcproto`) draws an OS random number generator, and with it libc, into
//! the engine, which must do no I/O. The tests check this codec against
//! `dhcproto` both ways.

use core::fmt;
use core::net::Ipv4Addr;
use std::collections::BTreeMap;

/// The fixed BOOTP header (236 bytes) plus the magic cookie.
pub const HEADER_LEN: usize = 240;
/// The magic cookie that starts the options (RFC 2131 §3).
pub const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// `op` of a client's message.
pub const OP_BOOTREQUEST: u8 = 1;
/// `op` of a server's message.
pub const OP_BOOTREPLY: u8 = 2;
/// `htype` of Ethernet (its `hlen` is 6).
pub const HTYPE_ETHERNET: u8 = 1;
/// Option code of the pad byte (no length).
pub const OPT_PAD: u8 = 0;
/// Option code that ends the options (no length).
pub const OPT_END: u8 = 255;

/// Why bytes are not a DHCP message or an option value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed header.
    Truncated(usize),
    /// An option whose length does not fit its type (`len` in bytes).
    BadOptionLength {
        /// The option code.
        code: u8,
        /// Its (concatenated) length.
        len: usize,
    },
    /// A text option that is not UTF-8.
    NotUtf8(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated(n) => write!(
                f,
                "{n} bytes, shorter than the {HEADER_LEN}-byte DHCP header"
            ),
            Error::BadOptionLength { code, len } => {
                write!(f, "option {code}: length {len} does not fit its type")
            }
            Error::NotUtf8(code) => write!(f, "option {code}: text is not UTF-8"),
        }
    }
}

impl std::error::Error for Error {}

/// The DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// DHCPDISCOVER (1).
    Discover,
    /// DHCPOFFER (2).
    Offer,
    /// DHCPREQUEST (3).
    Request,
    /// DHCPDECLINE (4).
    Decline,
    /// DHCPACK (5).
    Ack,
    /// DHCPNAK (6).
    Nak,
    /// DHCPRELEASE (7).
    Release,
    /// DHCPINFORM (8).
    Inform,
    /// Any other value (FORCERENEW, lease queries, or nonsense).
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(n: u8) -> Self {
        use MessageType::*;
        match n {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            n => Unknown(n),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        use MessageType::*;
        match t {
            Discover => 1,
            Offer => 2,
            Request => 3,
            Decline => 4,
            Ack => 5,
            Nak => 6,
            Release => 7,
            Inform => 8,
            Unknown(n) => n,
        }
    }
}

/// The `flags` field: only the broadcast bit is defined (RFC 2131 §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u16);

impl Flags {
    const BROADCAST: u16 = 0x8000;

    /// True when the client asks for broadcast replies.
    pub fn broadcast(self) -> bool {
        self.0 & Self::BROADCAST != 0
    }

    /// These flags with the broadcast bit set.
    pub fn set_broadcast(self) -> Self {
        Flags(self.0 | Self::BROADCAST)
    }
}

/// One option with its value, for the options lassi reads or writes; any
/// other is kept as bytes ([`DhcpOption::Other`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpOption {
    /// 1: subnet mask.
    SubnetMask(Ipv4Addr),
    /// 3: routers, in order of preference.
    Router(Vec<Ipv4Addr>),
    /// 6: DNS servers, in order of preference.
    DomainNameServer(Vec<Ipv4Addr>),
    /// 12: the client's host name.
    Hostname(String),
    /// 15: the domain name clients use for their resolution.
    DomainName(String),
    /// 26: interface MTU.
    InterfaceMtu(u16),
    /// 50: the address a client asks for.
    RequestedIpAddress(Ipv4Addr),
    /// 51: lease time in seconds.
    AddressLeaseTime(u32),
    /// 53: the message type.
    MessageType(MessageType),
    /// 54: the server identifier.
    ServerIdentifier(Ipv4Addr),
    /// 55: the options a client asks for, in its order.
    ParameterRequestList(Vec<u8>),
    /// 58: renewal time T1 in seconds.
    Renewal(u32),
    /// 59: rebinding time T2 in seconds.
    Rebinding(u32),
    /// 61: the client identifier.
    ClientIdentifier(Vec<u8>),
    /// 114: the captive portal API URI (RFC 8910).
    CaptivePortal(String),
    /// Any other option, its value as on the wire (concatenated).
    Other {
        /// The option code (never 0 or 255).
        code: u8,
        /// The value.
        value: Vec<u8>,
    },
}

impl DhcpOption {
    /// The option's code.
    pub fn code(&self) -> u8 {
        use DhcpOption::*;
        match self {
            SubnetMask(_) => 1,
            Router(_) => 3,
            DomainNameServer(_) => 6,
            Hostname(_) => 12,
            DomainName(_) => 15,
            InterfaceMtu(_) => 26,
            RequestedIpAddress(_) => 50,
            AddressLeaseTime(_) => 51,
            MessageType(_) => 53,
            ServerIdentifier(_) => 54,
            ParameterRequestList(_) => 55,
            Renewal(_) => 58,
            Rebinding(_) => 59,
            ClientIdentifier(_) => 61,
            CaptivePortal(_) => 114,
            Other { code, .. } => *code,
        }
    }

    /// Decodes the (concatenated) value of option `code`.
    pub fn decode(code: u8, v: &[u8]) -> Result<Self, Error> {
        use DhcpOption::*;
        let bad = || Error::BadOptionLength { code, len: v.len() };
        Ok(match code {
            1 => SubnetMask(fixed::<4>(v).ok_or_else(bad)?.into()),
            3 => Router(addresses(v).ok_or_else(bad)?),
            6 => DomainNameServer(addresses(v).ok_or_else(bad)?),
            12 => Hostname(text(code, v)?),
            15 => DomainName(text(code, v)?),
            26 => InterfaceMtu(u16::from_be_bytes(fixed(v).ok_or_else(bad)?)),
            50 => RequestedIpAddress(fixed::<4>(v).ok_or_else(bad)?.into()),
            51 => AddressLeaseTime(u32::from_be_bytes(fixed(v).ok_or_else(bad)?)),
            53 => MessageType(fixed::<1>(v).ok_or_else(bad)?[0].into()),
            54 => ServerIdentifier(fixed::<4>(v).ok_or_else(bad)?.into()),
            55 => ParameterRequestList(non_empty(v).ok_or_else(bad)?),
            58 => Renewal(u32::from_be_bytes(fixed(v).ok_or_else(bad)?)),
            59 => Rebinding(u32::from_be_bytes(fixed(v).ok_or_else(bad)?)),
            61 => ClientIdentifier(non_empty(v).ok_or_else(bad)?),
            114 => CaptivePortal(text(code, v)?),
            _ => Other {
                code,
                value: v.to_vec(),
            },
        })
    }

    /// Appends the option: code, length, value; a value longer than 255
    /// bytes as several options of the same code (RFC 3396), an address list
    /// split between addresses.
    pub fn emit(&self, out: &mut Vec<u8>) {
        use DhcpOption::*;
        let code = self.code();
        match self {
            SubnetMask(a) | RequestedIpAddress(a) | ServerIdentifier(a) => {
                emit_chunks(out, code, &a.octets(), 255)
            }
            Router(list) | DomainNameServer(list) => {
                let v: Vec<u8> = list.iter().flat_map(|a| a.octets()).collect();
                emit_chunks(out, code, &v, 252)
            }
            Hostname(s) | DomainName(s) | CaptivePortal(s) => {
                emit_chunks(out, code, s.as_bytes(), 255)
            }
            InterfaceMtu(n) => emit_chunks(out, code, &n.to_be_bytes(), 255),
            AddressLeaseTime(n) | Renewal(n) | Rebinding(n) => {
                emit_chunks(out, code, &n.to_be_bytes(), 255)
            }
            MessageType(t) => emit_chunks(out, code, &[u8::from(*t)], 255),
            ParameterRequestList(v) | ClientIdentifier(v) | Other { value: v, .. } => {
                emit_chunks(out, code, v, 255)
            }
        }
    }
}

/// A value of exactly `N` bytes.
fn fixed<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    v.try_into().ok()
}

/// One or more addresses.
fn addresses(v: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if v.is_empty() || v.len() % 4 != 0 {
        return None;
    }
    Some(
        v.chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            .collect(),
    )
}

/// At least one byte.
fn non_empty(v: &[u8]) -> Option<Vec<u8>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// Non-empty UTF-8 text.
fn text(code: u8, v: &[u8]) -> Result<String, Error> {
    if v.is_empty() {
        return Err(Error::BadOptionLength { code, len: 0 });
    }
    String::from_utf8(v.to_vec()).map_err(|_| Error::NotUtf8(code))
}

/// `code`, length, value in pieces of at most `max` bytes (an empty value
/// is one option of length 0).
fn emit_chunks(out: &mut Vec<u8>, code: u8, value: &[u8], max: usize) {
    if value.is_empty() {
        out.extend_from_slice(&[code, 0]);
    }
    for chunk in value.chunks(max) {
        out.push(code);
        out.push(chunk.len() as u8); // max ≤ 255
        out.extend_from_slice(chunk);
    }
}

/// A message's options, one per code, emitted in the order of their codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhcpOptions(BTreeMap<u8, DhcpOption>);

impl DhcpOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an option, returning the one of the same code it replaces.
    pub fn insert(&mut self, opt: DhcpOption) -> Option<DhcpOption> {
        self.0.insert(opt.code(), opt)
    }

    /// The option of `code`, if set.
    pub fn get(&self, code: u8) -> Option<&DhcpOption> {
        self.0.get(&code)
    }

    /// The message type (option 53), if set.
    pub fn msg_type(&self) -> Option<MessageType> {
        match self.get(53) {
            Some(DhcpOption::MessageType(t)) => Some(*t),
            _ => None,
        }
    }

    /// The options in the order of their codes.
    pub fn iter(&self) -> impl Iterator<Item = &DhcpOption> {
        self.0.values()
    }

    /// How many options are set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends every option in the order of their codes, then End.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.0.values().for_each(|o| o.emit(out));
        out.push(OPT_END);
    }
}

/// The options of a message as `(code, value)` pairs, in the order they
/// came, pads skipped; the list ends at End, at the end of the buffer, or
/// at an option whose value runs past it.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Options<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let code = *self.bytes.get(self.at)?;
            match code {
                OPT_PAD => self.at += 1,
                OPT_END => {
                    self.at = self.bytes.len();
                    return None;
                }
                _ => {
                    let len = usize::from(*self.bytes.get(self.at + 1)?);
                    let start = self.at + 2;
                    let Some(value) = self.bytes.get(start..start + len) else {
                        self.at = self.bytes.len();
                        return None;
                    };
                    self.at = start + len;
                    return Some((code, value));
                }
            }
        }
    }
}

/// A read-only view of a DHCP message whose fixed header is known present.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    bytes: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Views `bytes`, which must hold at least the fixed header and cookie.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated(bytes.len()));
        }
        Ok(Packet { bytes })
    }

    fn u8_at(&self, at: usize) -> u8 {
        self.bytes[at]
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn ip_at(&self, at: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        )
    }

    /// `op`: [`OP_BOOTREQUEST`] or [`OP_BOOTREPLY`] (or anything).
    pub fn op(&self) -> u8 {
        self.u8_at(0)
    }

    /// Hardware address type.
    pub fn htype(&self) -> u8 {
        self.u8_at(1)
    }

    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.u8_at(2)
    }

    /// Relay hops.
    pub fn hops(&self) -> u8 {
        self.u8_at(3)
    }

    /// Transaction id.
    pub fn xid(&self) -> u32 {
        u32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }

    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        self.u16_at(8)
    }

    /// Flags.
    pub fn flags(&self) -> Flags {
        Flags(self.u16_at(10))
    }

    /// The client's current address.
    pub fn ciaddr(&self) -> Ipv4Addr {
        self.ip_at(12)
    }

    /// "Your" address, the one offered or assigned.
    pub fn yiaddr(&self) -> Ipv4Addr {
        self.ip_at(16)
    }

    /// The next server's address.
    pub fn siaddr(&self) -> Ipv4Addr {
        self.ip_at(20)
    }

    /// The relay agent's address.
    pub fn giaddr(&self) -> Ipv4Addr {
        self.ip_at(24)
    }

    /// The 16-byte client hardware address field (`hlen` bytes of it count).
    pub fn chaddr(&self) -> [u8; 16] {
        let mut c = [0u8; 16];
        c.copy_from_slice(&self.bytes[28..44]);
        c
    }

    /// True when the magic cookie is where options start.
    pub fn has_magic(&self) -> bool {
        self.bytes[236..HEADER_LEN] == MAGIC
    }

    /// The options, in order (see [`Options`]).
    pub fn options(&self) -> Options<'a> {
        Options {
            bytes: self.bytes,
            at: HEADER_LEN,
        }
    }

    /// The value of option `code`: every instance concatenated, in order
    /// (RFC 3396). `None` when absent.
    pub fn option(&self, code: u8) -> Option<Vec<u8>> {
        let mut value: Option<Vec<u8>> = None;
        for (_, v) in self.options().filter(|(c, _)| *c == code) {
            value.get_or_insert_with(Vec::new).extend_from_slice(v);
        }
        value
    }
}

/// A whole message as values. `sname` and `file` are not kept (lassi
/// neither reads nor sends them): they are emitted as zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    /// [`OP_BOOTREQUEST`] or [`OP_BOOTREPLY`].
    pub op: u8,
    /// Hardware address type ([`HTYPE_ETHERNET`]).
    pub htype: u8,
    /// Hardware address length (6 for Ethernet).
    pub hlen: u8,
    /// Relay hops.
    pub hops: u8,
    /// Transaction id.
    pub xid: u32,
    /// Seconds since the client began.
    pub secs: u16,
    /// Flags.
    pub flags: Flags,
    /// The client's current address.
    pub ciaddr: Ipv4Addr,
    /// The address offered or assigned.
    pub yiaddr: Ipv4Addr,
    /// The next server's address.
    pub siaddr: Ipv4Addr,
    /// The relay agent's address.
    pub giaddr: Ipv4Addr,
    /// Client hardware address, zero-padded to 16 bytes.
    pub chaddr: [u8; 16],
    /// The options.
    pub options: DhcpOptions,
}

impl Repr {
    /// Decodes a whole message: each option's instances concatenated
    /// (RFC 3396) and decoded; an option that does not fit its type is an
    /// error. (The server reads only the options it needs, and tolerates
    /// broken others: see `dhcp::msg`.)
    pub fn parse(p: &Packet<'_>) -> Result<Self, Error> {
        let mut values: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        for (code, v) in p.options() {
            values.entry(code).or_default().extend_from_slice(v);
        }
        let mut options = DhcpOptions::new();
        for (code, v) in values {
            options.insert(DhcpOption::decode(code, &v)?);
        }
        Ok(Repr {
            op: p.op(),
            htype: p.htype(),
            hlen: p.hlen(),
            hops: p.hops(),
            xid: p.xid(),
            secs: p.secs(),
            flags: p.flags(),
            ciaddr: p.ciaddr(),
            yiaddr: p.yiaddr(),
            siaddr: p.siaddr(),
            giaddr: p.giaddr(),
            chaddr: p.chaddr(),
            options,
        })
    }

    /// Appends the message: the fixed header, the cookie, the options in
    /// the order of their codes and End (no padding).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.op, self.htype, self.hlen, self.hops]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.0.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&a.octets());
        }
        out.extend_from_slice(&self.chaddr);
        out.extend_from_slice(&[0u8; 64 + 128]); // sname, file
        out.extend_from_slice(&MAGIC);
        self.options.emit(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4 as dp;
    use dhcproto::{Decodable, Encodable};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// One of every typed option, and an unknown one.
    fn every_option() -> DhcpOptions {
        let mut o = DhcpOptions::new();
        for opt in [
            DhcpOption::SubnetMask(ip("255.255.255.0")),
            DhcpOption::Router(vec![ip("10.1.0.1")]),
            DhcpOption::DomainNameServer(vec![ip("10.1.0.1"), ip("9.9.9.9")]),
            DhcpOption::Hostname("guest-phone".into()),
            DhcpOption::DomainName("hotspot.lan".into()),
            DhcpOption::InterfaceMtu(1500),
            DhcpOption::RequestedIpAddress(ip("10.1.0.23")),
            DhcpOption::AddressLeaseTime(3600),
            DhcpOption::MessageType(MessageType::Request),
            DhcpOption::ServerIdentifier(ip("10.1.0.1")),
            DhcpOption::ParameterRequestList(vec![1, 3, 6, 15, 114]),
            DhcpOption::Renewal(1800),
            DhcpOption::Rebinding(3150),
            DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 1]),
            DhcpOption::CaptivePortal("https://portal.example/api".into()),
            DhcpOption::Other {
                code: 60,
                value: b"android-dhcp-14".to_vec(),
            },
        ] {
            o.insert(opt);
        }
        o
    }

    fn repr(options: DhcpOptions) -> Repr {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 1, 1]);
        Repr {
            op: OP_BOOTREQUEST,
            htype: HTYPE_ETHERNET,
            hlen: 6,
            hops: 1,
            xid: 0xdead_beef,
            secs: 7,
            flags: Flags::default().set_broadcast(),
            ciaddr: ip("10.1.0.23"),
            yiaddr: ip("10.1.0.24"),
            siaddr: ip("10.1.0.25"),
            giaddr: ip("10.1.0.26"),
            chaddr,
            options,
        }
    }

    fn emitted(r: &Repr) -> Vec<u8> {
        let mut b = Vec::new();
        r.emit(&mut b);
        b
    }

    fn parsed(b: &[u8]) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(b)?)
    }

    #[test]
    fn a_message_round_trips() {
        let r = repr(every_option());
        let b = emitted(&r);
        assert_eq!(parsed(&b), Ok(r.clone()));
        let p = Packet::new_checked(&b).unwrap();
        assert!(p.has_magic());
        assert_eq!((p.op(), p.htype(), p.hlen(), p.hops()), (1, 1, 6, 1));
        assert_eq!(
            (p.xid(), p.secs(), p.flags().broadcast()),
            (0xdead_beef, 7, true)
        );
        assert_eq!(p.chaddr(), r.chaddr);
        let codes: Vec<u8> = p.options().map(|(c, _)| c).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        assert_eq!(codes, sorted, "in the order of their codes");
        assert_eq!(r.options.msg_type(), Some(MessageType::Request));
        assert_eq!(r.options.len(), 16);
    }

    #[test]
    fn message_types_keep_their_numbers() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(MessageType::from(n)), n);
        }
        assert_eq!(MessageType::from(3), MessageType::Request);
        assert_eq!(MessageType::from(9), MessageType::Unknown(9));
    }

    #[test]
    fn long_values_are_split_and_joined_again() {
        let mut o = DhcpOptions::new();
        let long = "h".repeat(300);
        let routers: Vec<Ipv4Addr> = (0..70u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect();
        o.insert(DhcpOption::Hostname(long.clone()));
        o.insert(DhcpOption::Router(routers.clone()));
        let r = repr(o);
        let b = emitted(&r);
        let pieces: Vec<(u8, usize)> = Packet::new_checked(&b)
            .unwrap()
            .options()
            .map(|(c, v)| (c, v.len()))
            .collect();
        // Addresses are never cut in half: 63 per option.
        assert_eq!(pieces, vec![(3, 252), (3, 28), (12, 255), (12, 45)]);
        assert_eq!(parsed(&b), Ok(r));
    }

    #[test]
    fn instances_anywhere_in_the_list_are_joined() {
        let mut b = emitted(&repr(DhcpOptions::new()));
        b.pop(); // End
        b.extend_from_slice(&[61, 2, 1, 2, 0, 53, 1, 1, 61, 1, 3, 255]);
        let p = Packet::new_checked(&b).unwrap();
        assert_eq!(p.option(61), Some(vec![1, 2, 3]));
        assert_eq!(p.option(53), Some(vec![1]));
        assert_eq!(p.option(50), None);
    }

    #[test]
    fn a_short_header_is_an_error() {
        let b = emitted(&repr(DhcpOptions::new()));
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&b[..len]).err(),
                Some(Error::Truncated(len))
            );
        }
        let p = Packet::new_checked(&b[..HEADER_LEN]).unwrap();
        assert_eq!(p.options().count(), 0, "no options, no End: an empty list");
    }

    #[test]
    fn a_truncated_option_ends_the_list() {
        let mut o = DhcpOptions::new();
        o.insert(DhcpOption::MessageType(MessageType::Discover));
        o.insert(DhcpOption::CaptivePortal("https://p/".into()));
        let b = emitted(&repr(o));
        // Cut inside the portal URI (the last option before End).
        let cut = &b[..b.len() - 3];
        let p = Packet::new_checked(cut).unwrap();
        assert_eq!(p.options().collect::<Vec<_>>(), vec![(53, &[1u8][..])]);
        let r = parsed(cut).unwrap();
        assert_eq!(r.options.len(), 1);
        // A length byte missing too.
        let mut b = b[..HEADER_LEN].to_vec();
        b.extend_from_slice(&[53, 1, 1, 0, 0, 12]);
        assert_eq!(Packet::new_checked(&b).unwrap().options().count(), 1);
    }

    #[test]
    fn what_follows_end_is_ignored_and_pads_are_skipped() {
        let mut b = emitted(&repr(DhcpOptions::new()));
        b.pop();
        b.extend_from_slice(&[0, 0, 53, 1, 5, 0, 255, 54, 4, 1, 2, 3, 4]);
        let r = parsed(&b).unwrap();
        assert_eq!(r.options.msg_type(), Some(MessageType::Ack));
        assert_eq!(r.options.len(), 1);
    }

    #[test]
    fn an_option_that_does_not_fit_its_type_is_an_error() {
        let bad = |code: u8, v: &[u8]| DhcpOption::decode(code, v).unwrap_err();
        let len = |code, len| Error::BadOptionLength { code, len };
        assert_eq!(bad(53, &[1, 1]), len(53, 2));
        assert_eq!(bad(53, &[]), len(53, 0));
        assert_eq!(bad(54, &[10, 1, 0]), len(54, 3));
        assert_eq!(bad(50, &[10, 1, 0, 1, 0]), len(50, 5));
        assert_eq!(bad(1, &[]), len(1, 0));
        assert_eq!(bad(3, &[10, 1, 0, 1, 9]), len(3, 5));
        assert_eq!(bad(6, &[]), len(6, 0));
        assert_eq!(bad(26, &[5]), len(26, 1));
        assert_eq!(bad(51, &[0, 0, 1]), len(51, 3));
        assert_eq!(bad(58, &[0; 8]), len(58, 8));
        assert_eq!(bad(61, &[]), len(61, 0));
        assert_eq!(bad(55, &[]), len(55, 0));
        assert_eq!(bad(12, &[]), len(12, 0));
        assert_eq!(bad(12, &[b'a', 0xff, b'b']), Error::NotUtf8(12));
        assert_eq!(bad(114, &[0xc3]), Error::NotUtf8(114));
        // Unknown codes take anything, even nothing.
        assert!(DhcpOption::decode(200, &[]).is_ok());
        // In a message: the whole decode fails, the view still reads it.
        let mut b = emitted(&repr(DhcpOptions::new()));
        b.pop();
        b.extend_from_slice(&[53, 2, 1, 1, 255]);
        assert_eq!(parsed(&b), Err(len(53, 2)));
        assert_eq!(
            Packet::new_checked(&b).unwrap().option(53),
            Some(vec![1, 1])
        );
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            Error::Truncated(12).to_string(),
            "12 bytes, shorter than the 240-byte DHCP header"
        );
        assert!(Error::NotUtf8(12).to_string().contains("option 12"));
    }

    /// dhcproto's equivalents of [`every_option`].
    fn dhcproto_options() -> Vec<dp::DhcpOption> {
        use dp::DhcpOption as D;
        vec![
            D::SubnetMask(ip("255.255.255.0")),
            D::Router(vec![ip("10.1.0.1")]),
            D::DomainNameServer(vec![ip("10.1.0.1"), ip("9.9.9.9")]),
            D::Hostname("guest-phone".into()),
            D::DomainName("hotspot.lan".into()),
            D::InterfaceMtu(1500),
            D::RequestedIpAddress(ip("10.1.0.23")),
            D::AddressLeaseTime(3600),
            D::MessageType(dp::MessageType::Request),
            D::ServerIdentifier(ip("10.1.0.1")),
            D::ParameterRequestList(
                [1u8, 3, 6, 15, 114]
                    .iter()
                    .map(|&c| dp::OptionCode::from(c))
                    .collect(),
            ),
            D::Renewal(1800),
            D::Rebinding(3150),
            D::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 1]),
            D::CaptivePortal("https://portal.example/api".into()),
            D::ClassIdentifier(b"android-dhcp-14".to_vec()),
        ]
    }

    fn dhcproto_message() -> dp::Message {
        let mut m = dp::Message::new_with_id(
            0xdead_beef,
            ip("10.1.0.23"),
            ip("10.1.0.24"),
            ip("10.1.0.25"),
            ip("10.1.0.26"),
            &[2, 0, 0, 0, 1, 1],
        );
        m.set_hops(1)
            .set_secs(7)
            .set_flags(dp::Flags::default().set_broadcast());
        for o in dhcproto_options() {
            m.opts_mut().insert(o);
        }
        m
    }

    #[test]
    fn decodes_what_dhcproto_encodes() {
        let b = dhcproto_message().to_vec().unwrap();
        assert_eq!(parsed(&b), Ok(repr(every_option())));
    }

    #[test]
    fn dhcproto_decodes_what_this_encodes() {
        let b = emitted(&repr(every_option()));
        assert_eq!(dp::Message::from_bytes(&b).unwrap(), dhcproto_message());
    }

    #[test]
    fn encodes_the_same_bytes_as_dhcproto() {
        assert_eq!(
            emitted(&repr(every_option())),
            dhcproto_message().to_vec().unwrap()
        );
        // Long values are split alike.
        let mut o = DhcpOptions::new();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::DomainName("d".repeat(600)));
        o.insert(DhcpOption::DomainNameServer(vec![ip("10.0.0.1"); 100]));
        let mut m = dhcproto_message();
        *m.opts_mut() = dp::DhcpOptions::new();
        m.opts_mut()
            .insert(dp::DhcpOption::MessageType(dp::MessageType::Ack));
        m.opts_mut()
            .insert(dp::DhcpOption::DomainName("d".repeat(600)));
        m.opts_mut()
            .insert(dp::DhcpOption::DomainNameServer(vec![ip("10.0.0.1"); 100]));
        assert_eq!(emitted(&repr(o)), m.to_vec().unwrap());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let real = emitted(&repr(every_option()));
        for i in 0..4000 {
            let mut b = if i % 2 == 0 {
                real.clone()
            } else {
                vec![0u8; (next() % 600) as usize]
            };
            for _ in 0..(next() % 12) {
                if !b.is_empty() {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
            }
            b.truncate((next() % 700) as usize);
            let Ok(p) = Packet::new_checked(&b) else {
                continue;
            };
            let _ = (p.option(53), p.options().count());
            if let Ok(r) = Repr::parse(&p) {
                // Whatever decodes encodes and decodes back the same.
                assert_eq!(parsed(&emitted(&r)), Ok(r));
            }
        }
    }
}
