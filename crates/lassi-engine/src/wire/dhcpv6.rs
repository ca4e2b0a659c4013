//! DHCPv6 messages (RFC 8415), the subset a LAN server needs: the client
//! and server messages between Solicit and Information-request, and the
//! options Client ID, Server ID, IA_NA with IA Address, ORO, Preference,
//! Elapsed Time, Status Code, Rapid Commit, DNS servers and domain list
//! (RFC 3646, codes 23 and 24), Information Refresh Time and the captive
//! portal URI (RFC 8910, code 103). Any other option is kept as its code
//! and bytes. Relay messages are refused: lassi serves its own link only.
//!
//! Like `wire::dhcpv4`, this is lassi's own codec rather than `dhcproto`,
//! which would draw an OS random number generator (and libc) into the
//! engine; the tests check it against `dhcproto` both ways. It reads
//! untrusted bytes: every length is checked, options nest at most
//! [`MAX_DEPTH`] deep, nothing panics, and what is allocated is bounded by
//! the message's length.

use core::fmt;
use core::net::Ipv6Addr;

use super::ndp::{emit_name, parse_names};

/// Option code: Client Identifier.
pub const OPT_CLIENTID: u16 = 1;
/// Option code: Server Identifier.
pub const OPT_SERVERID: u16 = 2;
/// Option code: Identity Association for Non-temporary Addresses.
pub const OPT_IA_NA: u16 = 3;
/// Option code: IA Address.
pub const OPT_IAADDR: u16 = 5;
/// Option code: Option Request.
pub const OPT_ORO: u16 = 6;
/// Option code: Preference.
pub const OPT_PREFERENCE: u16 = 7;
/// Option code: Elapsed Time.
pub const OPT_ELAPSED_TIME: u16 = 8;
/// Option code: Status Code.
pub const OPT_STATUS_CODE: u16 = 13;
/// Option code: Rapid Commit.
pub const OPT_RAPID_COMMIT: u16 = 14;
/// Option code: DNS recursive name servers (RFC 3646).
pub const OPT_DNS_SERVERS: u16 = 23;
/// Option code: domain search list (RFC 3646).
pub const OPT_DOMAIN_LIST: u16 = 24;
/// Option code: Information Refresh Time.
pub const OPT_INFORMATION_REFRESH_TIME: u16 = 32;
/// Option code: captive-portal URI (RFC 8910).
pub const OPT_CAPTIVE_PORTAL: u16 = 103;
/// How deep options may nest (message → IA_NA → IA Address → Status Code).
pub const MAX_DEPTH: usize = 3;
/// The longest DUID, with its 2-byte type (RFC 8415 §11.1).
pub const MAX_DUID_LEN: usize = 130;
/// UDP port of servers.
pub const SERVER_PORT: u16 = 547;
/// UDP port of clients.
pub const CLIENT_PORT: u16 = 546;

/// Why bytes are not a DHCPv6 message lassi accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the 4-byte header, or an option runs past its container.
    Truncated,
    /// A Relay-forward or Relay-reply message (not served).
    Relay,
    /// An option whose content does not fit its code.
    BadOption(u16),
    /// Options nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "truncated DHCPv6 message or option"),
            Error::Relay => write!(f, "relay message (not served)"),
            Error::BadOption(c) => write!(f, "option {c}: content does not fit its code"),
            Error::TooDeep => write!(f, "options nested too deep"),
        }
    }
}

impl std::error::Error for Error {}

/// The message type (RFC 8415 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1
    Solicit,
    /// 2
    Advertise,
    /// 3
    Request,
    /// 4
    Confirm,
    /// 5
    Renew,
    /// 6
    Rebind,
    /// 7
    Reply,
    /// 8
    Release,
    /// 9
    Decline,
    /// 10
    Reconfigure,
    /// 11
    InformationRequest,
    /// 12
    RelayForw,
    /// 13
    RelayRepl,
    /// Anything else.
    Unknown(u8),
}

const TYPES: [MessageType; 13] = {
    use MessageType::*;
    [
        Solicit,
        Advertise,
        Request,
        Confirm,
        Renew,
        Rebind,
        Reply,
        Release,
        Decline,
        Reconfigure,
        InformationRequest,
        RelayForw,
        RelayRepl,
    ]
};

impl From<u8> for MessageType {
    fn from(n: u8) -> Self {
        match n {
            1..=13 => TYPES[usize::from(n) - 1],
            n => MessageType::Unknown(n),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(t: MessageType) -> u8 {
        match t {
            MessageType::Unknown(n) => n,
            t => TYPES
                .iter()
                .position(|&x| x == t)
                .map_or(0, |i| i as u8 + 1),
        }
    }
}

impl MessageType {
    /// True for the types only a server (or relay) sends: a client that
    /// sends one is a rogue DHCPv6 server.
    pub fn is_from_server(self) -> bool {
        use MessageType::*;
        matches!(self, Advertise | Reply | Reconfigure | RelayRepl)
    }
}

/// A status code (RFC 8415 §21.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0
    Success,
    /// 1
    UnspecFail,
    /// 2
    NoAddrsAvail,
    /// 3
    NoBinding,
    /// 4
    NotOnLink,
    /// 5
    UseMulticast,
    /// Any other value.
    Other(u16),
}

impl From<u16> for Status {
    fn from(n: u16) -> Self {
        use Status::*;
        match n {
            0 => Success,
            1 => UnspecFail,
            2 => NoAddrsAvail,
            3 => NoBinding,
            4 => NotOnLink,
            5 => UseMulticast,
            n => Other(n),
        }
    }
}

impl From<Status> for u16 {
    fn from(s: Status) -> u16 {
        use Status::*;
        match s {
            Success => 0,
            UnspecFail => 1,
            NoAddrsAvail => 2,
            NoBinding => 3,
            NotOnLink => 4,
            UseMulticast => 5,
            Other(n) => n,
        }
    }
}

/// An IA_NA option (RFC 8415 §21.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa {
    /// The client's identifier for this IA.
    pub iaid: u32,
    /// Seconds until the client renews with this server.
    pub t1: u32,
    /// Seconds until the client rebinds with any server.
    pub t2: u32,
    /// IA Address and Status Code options (and any other).
    pub options: Vec<DhcpOption>,
}

/// An IA Address option (RFC 8415 §21.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaAddr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Preferred lifetime in seconds.
    pub preferred: u32,
    /// Valid lifetime in seconds.
    pub valid: u32,
    /// A Status Code option (and any other).
    pub options: Vec<DhcpOption>,
}

/// One DHCPv6 option as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpOption {
    /// Client Identifier: the client's DUID.
    ClientId(Vec<u8>),
    /// Server Identifier: the server's DUID.
    ServerId(Vec<u8>),
    /// IA_NA.
    IaNa(IaNa),
    /// IA Address (inside an IA_NA).
    IaAddr(IaAddr),
    /// Option Request: the option codes the client wants.
    Oro(Vec<u16>),
    /// Server preference (0–255).
    Preference(u8),
    /// Elapsed time in hundredths of a second.
    ElapsedTime(u16),
    /// Status Code with its message.
    StatusCode(Status, String),
    /// Rapid Commit (no content).
    RapidCommit,
    /// DNS recursive name servers.
    DnsServers(Vec<Ipv6Addr>),
    /// Domain search list, dotted names.
    DomainList(Vec<String>),
    /// Information Refresh Time in seconds.
    InformationRefreshTime(u32),
    /// Captive-portal API URI.
    CaptivePortal(String),
    /// Any other option, as its code and content.
    Unknown(u16, Vec<u8>),
}

/// A client or server message (RFC 8415 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message type.
    pub msg_type: MessageType,
    /// Transaction id (24 bits).
    pub xid: u32,
    /// The options, in order.
    pub options: Vec<DhcpOption>,
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn duid(code: u16, b: &[u8]) -> Result<Vec<u8>, Error> {
    if (2..=MAX_DUID_LEN).contains(&b.len()) {
        Ok(b.to_vec())
    } else {
        Err(Error::BadOption(code))
    }
}

fn text(code: u16, b: &[u8]) -> Result<String, Error> {
    core::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|_| Error::BadOption(code))
}

fn addrs(code: u16, b: &[u8]) -> Result<Vec<Ipv6Addr>, Error> {
    if b.len() % 16 != 0 {
        return Err(Error::BadOption(code));
    }
    Ok(b.chunks_exact(16).map(addr).collect())
}

fn parse_ia_na(b: &[u8], depth: usize) -> Result<DhcpOption, Error> {
    if b.len() < 12 {
        return Err(Error::BadOption(OPT_IA_NA));
    }
    Ok(DhcpOption::IaNa(IaNa {
        iaid: be32(b),
        t1: be32(&b[4..]),
        t2: be32(&b[8..]),
        options: parse_options(&b[12..], depth + 1)?,
    }))
}

fn parse_ia_addr(b: &[u8], depth: usize) -> Result<DhcpOption, Error> {
    if b.len() < 24 {
        return Err(Error::BadOption(OPT_IAADDR));
    }
    Ok(DhcpOption::IaAddr(IaAddr {
        addr: addr(b),
        preferred: be32(&b[16..]),
        valid: be32(&b[20..]),
        options: parse_options(&b[24..], depth + 1)?,
    }))
}

fn parse_option(code: u16, b: &[u8], depth: usize) -> Result<DhcpOption, Error> {
    use DhcpOption as O;
    let bad = Error::BadOption(code);
    Ok(match code {
        OPT_CLIENTID => O::ClientId(duid(code, b)?),
        OPT_SERVERID => O::ServerId(duid(code, b)?),
        OPT_IA_NA => parse_ia_na(b, depth)?,
        OPT_IAADDR => parse_ia_addr(b, depth)?,
        OPT_ORO if b.len() % 2 == 0 => O::Oro(
            b.chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect(),
        ),
        OPT_PREFERENCE if b.len() == 1 => O::Preference(b[0]),
        OPT_ELAPSED_TIME if b.len() == 2 => O::ElapsedTime(u16::from_be_bytes([b[0], b[1]])),
        OPT_STATUS_CODE if b.len() >= 2 => O::StatusCode(
            u16::from_be_bytes([b[0], b[1]]).into(),
            text(code, &b[2..])?,
        ),
        OPT_RAPID_COMMIT if b.is_empty() => O::RapidCommit,
        OPT_DNS_SERVERS => O::DnsServers(addrs(code, b)?),
        OPT_DOMAIN_LIST if b.is_empty() => O::DomainList(Vec::new()),
        OPT_DOMAIN_LIST => O::DomainList(parse_names(b).ok_or(bad)?),
        OPT_INFORMATION_REFRESH_TIME if b.len() == 4 => O::InformationRefreshTime(be32(b)),
        OPT_CAPTIVE_PORTAL => O::CaptivePortal(text(code, b)?),
        OPT_ORO
        | OPT_PREFERENCE
        | OPT_ELAPSED_TIME
        | OPT_STATUS_CODE
        | OPT_RAPID_COMMIT
        | OPT_INFORMATION_REFRESH_TIME => return Err(bad),
        _ => O::Unknown(code, b.to_vec()),
    })
}

/// Parses the options filling `b`, nested `depth` levels inside the message.
fn parse_options(mut b: &[u8], depth: usize) -> Result<Vec<DhcpOption>, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    let mut options = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(Error::Truncated);
        }
        let code = u16::from_be_bytes([b[0], b[1]]);
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        let body = b.get(4..4 + len).ok_or(Error::Truncated)?;
        options.push(parse_option(code, body, depth)?);
        b = &b[4 + len..];
    }
    Ok(options)
}

impl DhcpOption {
    /// The option code.
    pub fn code(&self) -> u16 {
        use DhcpOption as O;
        match self {
            O::ClientId(_) => OPT_CLIENTID,
            O::ServerId(_) => OPT_SERVERID,
            O::IaNa(_) => OPT_IA_NA,
            O::IaAddr(_) => OPT_IAADDR,
            O::Oro(_) => OPT_ORO,
            O::Preference(_) => OPT_PREFERENCE,
            O::ElapsedTime(_) => OPT_ELAPSED_TIME,
            O::StatusCode(..) => OPT_STATUS_CODE,
            O::RapidCommit => OPT_RAPID_COMMIT,
            O::DnsServers(_) => OPT_DNS_SERVERS,
            O::DomainList(_) => OPT_DOMAIN_LIST,
            O::InformationRefreshTime(_) => OPT_INFORMATION_REFRESH_TIME,
            O::CaptivePortal(_) => OPT_CAPTIVE_PORTAL,
            O::Unknown(code, _) => *code,
        }
    }

    fn body(&self, out: &mut Vec<u8>) {
        use DhcpOption as O;
        match self {
            O::ClientId(d) | O::ServerId(d) | O::Unknown(_, d) => out.extend_from_slice(d),
            O::IaNa(ia) => {
                for v in [ia.iaid, ia.t1, ia.t2] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                emit_options(&ia.options, out);
            }
            O::IaAddr(a) => {
                out.extend_from_slice(&a.addr.octets());
                out.extend_from_slice(&a.preferred.to_be_bytes());
                out.extend_from_slice(&a.valid.to_be_bytes());
                emit_options(&a.options, out);
            }
            O::Oro(codes) => codes
                .iter()
                .for_each(|c| out.extend_from_slice(&c.to_be_bytes())),
            O::Preference(p) => out.push(*p),
            O::ElapsedTime(t) => out.extend_from_slice(&t.to_be_bytes()),
            O::StatusCode(s, msg) => {
                out.extend_from_slice(&u16::from(*s).to_be_bytes());
                out.extend_from_slice(msg.as_bytes());
            }
            O::RapidCommit => {}
            O::DnsServers(a) => a.iter().for_each(|a| out.extend_from_slice(&a.octets())),
            O::DomainList(names) => names.iter().for_each(|n| {
                emit_name(n, out);
            }),
            O::InformationRefreshTime(t) => out.extend_from_slice(&t.to_be_bytes()),
            O::CaptivePortal(uri) => out.extend_from_slice(uri.as_bytes()),
        }
    }

    /// Appends the option (code, length, content) to `out`. Content longer
    /// than 65535 bytes, which lassi never builds, is cut off there.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.code().to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        self.body(out);
        let len = (out.len() - start - 4).min(usize::from(u16::MAX));
        out.truncate(start + 4 + len);
        out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
    }
}

fn emit_options(options: &[DhcpOption], out: &mut Vec<u8>) {
    for o in options {
        o.emit(out);
    }
}

impl Message {
    /// Parses a client or server message (the UDP payload).
    pub fn parse(b: &[u8]) -> Result<Message, Error> {
        if b.len() < 4 {
            return Err(Error::Truncated);
        }
        let msg_type = MessageType::from(b[0]);
        if matches!(msg_type, MessageType::RelayForw | MessageType::RelayRepl) {
            return Err(Error::Relay);
        }
        Ok(Message {
            msg_type,
            xid: u32::from_be_bytes([0, b[1], b[2], b[3]]),
            options: parse_options(&b[4..], 0)?,
        })
    }

    /// The message as bytes (the UDP payload).
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(self.msg_type.into());
        out.extend_from_slice(&self.xid.to_be_bytes()[1..]);
        emit_options(&self.options, &mut out);
        out
    }

    /// The first option with `code`.
    pub fn option(&self, code: u16) -> Option<&DhcpOption> {
        self.options.iter().find(|o| o.code() == code)
    }

    /// The Client Identifier's DUID.
    pub fn client_id(&self) -> Option<&[u8]> {
        self.options.iter().find_map(|o| match o {
            DhcpOption::ClientId(d) => Some(d.as_slice()),
            _ => None,
        })
    }

    /// The Server Identifier's DUID.
    pub fn server_id(&self) -> Option<&[u8]> {
        self.options.iter().find_map(|o| match o {
            DhcpOption::ServerId(d) => Some(d.as_slice()),
            _ => None,
        })
    }

    /// The IA_NA options.
    pub fn ia_nas(&self) -> impl Iterator<Item = &IaNa> {
        self.options.iter().filter_map(|o| match o {
            DhcpOption::IaNa(ia) => Some(ia),
            _ => None,
        })
    }

    /// The codes in the Option Request option (empty without one).
    pub fn requested(&self) -> &[u16] {
        self.options
            .iter()
            .find_map(|o| match o {
                DhcpOption::Oro(c) => Some(c.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

impl IaNa {
    /// The IA Address options inside.
    pub fn addrs(&self) -> impl Iterator<Item = &IaAddr> {
        self.options.iter().filter_map(|o| match o {
            DhcpOption::IaAddr(a) => Some(a),
            _ => None,
        })
    }
}

/// A DUID-LL (RFC 8415 §11.4) for an Ethernet MAC: type 3, hardware type 1.
pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac);
    d
}

#[cfg(test)]
mod tests;
