//! The server's side of the DHCP codec (`wire::dhcpv4`): checking and
//! decoding a client's message into the few fields the server acts on, and
//! encoding replies.

use core::net::Ipv4Addr;

use super::DhcpError;
use crate::wire::dhcpv4::{
    DhcpOption, DhcpOptions, Flags, MessageType, Packet, Repr, HEADER_LEN, HTYPE_ETHERNET,
    OP_BOOTREPLY,
};
use crate::wire::MacAddr;

/// RFC 1542 §3.4: some BOOTP-derived clients drop replies shorter than 300 bytes.
const MIN_REPLY_LEN: usize = 300;
/// Longest host name kept from option 12 (a DNS label).
const MAX_HOSTNAME: usize = 63;

/// What the server needs from a client's message.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub kind: MessageType,
    pub xid: u32,
    pub flags: Flags,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: MacAddr,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub client_id: Option<Vec<u8>>,
    /// Which options the client sent, in which order, with its parameter
    /// request list and vendor class: the same for every message of one DHCP
    /// client implementation, whatever MAC it uses (see [`fingerprint`]).
    pub fingerprint: u32,
}

/// Checks the fixed header, then decodes the options the server reads
/// (each over all its instances, RFC 3396). An option that does not fit
/// its type counts as absent; a broken option the server does not read
/// changes nothing.
pub(crate) fn parse(payload: &[u8]) -> Result<Request, DhcpError> {
    let p = Packet::new_checked(payload).map_err(|e| DhcpError::Malformed(e.to_string()))?;
    match p.op() {
        1 => {}
        // A BOOTREPLY from the LAN side is another server (or a spoof): not ours to answer.
        2 => return Err(DhcpError::NotForUs),
        op => return Err(DhcpError::Malformed(format!("op {op}"))),
    }
    if p.htype() != HTYPE_ETHERNET || p.hlen() != 6 {
        return Err(DhcpError::Malformed(format!(
            "hardware type {} length {}, expected Ethernet (1, 6)",
            p.htype(),
            p.hlen()
        )));
    }
    if !p.has_magic() {
        return Err(DhcpError::Malformed("no DHCP magic cookie".into()));
    }
    let kind = match option(&p, 53) {
        Some(DhcpOption::MessageType(t)) => t,
        _ => return Err(DhcpError::Malformed("no message type (option 53)".into())),
    };
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&p.chaddr()[..6]);
    Ok(Request {
        kind,
        xid: p.xid(),
        flags: p.flags(),
        ciaddr: p.ciaddr(),
        giaddr: p.giaddr(),
        chaddr: MacAddr(chaddr),
        requested_ip: match option(&p, 50) {
            Some(DhcpOption::RequestedIpAddress(ip)) => Some(ip),
            _ => None,
        },
        server_id: match option(&p, 54) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(ip),
            _ => None,
        },
        hostname: match option(&p, 12) {
            Some(DhcpOption::Hostname(h)) => sanitize_hostname(&h),
            _ => None,
        },
        client_id: match option(&p, 61) {
            Some(DhcpOption::ClientIdentifier(id)) => Some(id),
            _ => None,
        },
        fingerprint: fingerprint(&p),
    })
}

/// Option `code` decoded, `None` when absent or not fitting its type.
fn option(p: &Packet<'_>, code: u8) -> Option<DhcpOption> {
    DhcpOption::decode(code, &p.option(code)?).ok()
}

/// FNV-1a over the option codes in order and the values of options 55
/// (parameter request list) and 60 (vendor class): what tells one DHCP
/// client program from another (as DHCP fingerprinting does), leaving out
/// what differs per client (MAC, xid, client id, host name, addresses). A
/// flood tool rotating MACs keeps one fingerprint; an honest newcomer
/// usually has another.
fn fingerprint(p: &Packet<'_>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: u8| h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    for (code, value) in p.options() {
        eat(code);
        if code == 55 || code == 60 {
            value.iter().for_each(|&b| eat(b));
        }
    }
    h
}

/// Keeps a host name safe to log and to pass to scripts: letters, digits,
/// `-`, `_`, `.`, at most 63 bytes. `None` when nothing usable is left.
fn sanitize_hostname(h: &str) -> Option<String> {
    let clean: String = h
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(MAX_HOSTNAME)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

/// Encodes a BOOTREPLY answering `req`, padded to the BOOTP minimum size.
pub(crate) fn encode_reply(
    req: &Request,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    options: DhcpOptions,
) -> Result<Vec<u8>, DhcpError> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&req.chaddr.0);
    let reply = Repr {
        op: OP_BOOTREPLY,
        htype: HTYPE_ETHERNET,
        hlen: 6,
        hops: 0,
        xid: req.xid,
        secs: 0,
        flags: req.flags,
        ciaddr,
        yiaddr,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: req.giaddr,
        chaddr,
        options,
    };
    let mut bytes = Vec::with_capacity(MIN_REPLY_LEN.max(HEADER_LEN + 128));
    reply.emit(&mut bytes);
    if bytes.len() < MIN_REPLY_LEN {
        bytes.resize(MIN_REPLY_LEN, 0); // pad (option 0) after End
    }
    Ok(bytes)
}
