//! The boundary to `dhcproto`: checking and decoding a client's message into
//! the few fields the server acts on, and encoding replies.

use core::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, DhcpOptions, Flags, HType, Message, MessageType, Opcode, MAGIC};
use dhcproto::{Decodable, Encodable};

use super::DhcpError;
use crate::wire::MacAddr;

/// Fixed BOOTP header (236 bytes) plus the magic cookie.
const HEADER_LEN: usize = 240;
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

/// Checks the fixed header by hand (so `dhcproto` never sees a hardware
/// address length it would slice past), then decodes with `dhcproto`.
pub(crate) fn parse(payload: &[u8]) -> Result<Request, DhcpError> {
    check_header(payload)?;
    let fingerprint = fingerprint(payload);
    let msg = Message::from_bytes(&keep_used_options(payload))
        .map_err(|e| DhcpError::Malformed(e.to_string()))?;
    let opts = msg.opts();
    let kind = opts
        .msg_type()
        .ok_or_else(|| DhcpError::Malformed("no message type (option 53)".into()))?;
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&payload[28..34]);
    let requested_ip = match opts.get(dhcproto::v4::OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => None,
    };
    let server_id = match opts.get(dhcproto::v4::OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    let hostname = match opts.get(dhcproto::v4::OptionCode::Hostname) {
        Some(DhcpOption::Hostname(h)) => sanitize_hostname(h),
        _ => None,
    };
    let client_id = match opts.get(dhcproto::v4::OptionCode::ClientIdentifier) {
        Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => Some(id.clone()),
        _ => None,
    };
    Ok(Request {
        kind,
        xid: msg.xid(),
        flags: msg.flags(),
        ciaddr: msg.ciaddr(),
        giaddr: msg.giaddr(),
        chaddr: MacAddr(chaddr),
        requested_ip,
        server_id,
        hostname,
        client_id,
        fingerprint,
    })
}

/// A BOOTREQUEST from an Ethernet client, long enough, with the magic
/// cookie.
fn check_header(payload: &[u8]) -> Result<(), DhcpError> {
    if payload.len() < HEADER_LEN {
        return Err(DhcpError::Malformed(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte DHCP header",
            payload.len()
        )));
    }
    match payload[0] {
        1 => {}
        // A BOOTREPLY from the LAN side is another server (or a spoof): not ours to answer.
        2 => return Err(DhcpError::NotForUs),
        op => return Err(DhcpError::Malformed(format!("op {op}"))),
    }
    if payload[1] != 1 || payload[2] != 6 {
        return Err(DhcpError::Malformed(format!(
            "hardware type {} length {}, expected Ethernet (1, 6)",
            payload[1], payload[2]
        )));
    }
    if payload[236..240] != MAGIC {
        return Err(DhcpError::Malformed("no DHCP magic cookie".into()));
    }
    Ok(())
}

/// FNV-1a over the option codes in order and the values of options 55
/// (parameter request list) and 60 (vendor class): what tells one DHCP
/// client program from another (as DHCP fingerprinting does), leaving out
/// what differs per client (MAC, xid, client id, host name, addresses). A
/// flood tool rotating MACs keeps one fingerprint; an honest newcomer
/// usually has another. Walks the options like [`keep_used_options`].
fn fingerprint(payload: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: u8| h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    let mut i = HEADER_LEN;
    while let Some(&code) = payload.get(i) {
        match code {
            0 => i += 1,
            255 => break,
            _ => {
                let Some(&len) = payload.get(i + 1) else {
                    break;
                };
                let Some(value) = payload.get(i + 2..i + 2 + usize::from(len)) else {
                    break;
                };
                eat(code);
                if code == 55 || code == 60 {
                    value.iter().for_each(|&b| eat(b));
                }
                i += 2 + usize::from(len);
            }
        }
    }
    h
}

/// Options the server reads, in the order they are handed to `dhcproto`
/// (host name last: if it is not UTF-8, `dhcproto` stops decoding options
/// there).
const USED_OPTIONS: [u8; 5] = [53, 50, 54, 61, 12];

/// Copies the fixed header and only the options the server reads, each
/// concatenated over its instances (RFC 3396) and checked for length.
///
/// `dhcproto` decodes every option it knows, gives up on the rest of the
/// options at the first one it cannot decode, and has `debug_assert!`s and
/// unchecked subtractions on option lengths (e.g. client FQDN, option 81)
/// that panic in debug and fuzzing builds. Walking the type-length-value
/// list here keeps hostile options away from it; decoding the values stays
/// with `dhcproto`. A truncated option ends the list, as in `dhcproto`.
fn keep_used_options(payload: &[u8]) -> Vec<u8> {
    let mut values: [Option<Vec<u8>>; USED_OPTIONS.len()] = Default::default();
    let mut i = HEADER_LEN;
    while let Some(&code) = payload.get(i) {
        match code {
            0 => i += 1,
            255 => break,
            _ => {
                let Some(&len) = payload.get(i + 1) else {
                    break;
                };
                let Some(value) = payload.get(i + 2..i + 2 + usize::from(len)) else {
                    break;
                };
                if let Some(k) = USED_OPTIONS.iter().position(|&c| c == code) {
                    values[k]
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(value);
                }
                i += 2 + usize::from(len);
            }
        }
    }
    let mut out = Vec::with_capacity(payload.len().min(576));
    out.extend_from_slice(&payload[..HEADER_LEN]);
    for (&code, value) in USED_OPTIONS.iter().zip(&values) {
        let Some(value) = value else { continue };
        let fits = match code {
            53 => value.len() == 1,
            50 | 54 => value.len() == 4,
            _ => !value.is_empty(),
        };
        if fits {
            for chunk in value.chunks(255) {
                out.push(code);
                out.push(chunk.len() as u8);
                out.extend_from_slice(chunk);
            }
        }
    }
    out.push(255);
    out
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
    opts: DhcpOptions,
) -> Result<Vec<u8>, DhcpError> {
    let mut msg = Message::new_with_id(
        req.xid,
        ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        req.giaddr,
        &req.chaddr.0,
    );
    msg.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_flags(req.flags)
        .set_opts(opts);
    let mut bytes = msg.to_vec().map_err(|e| DhcpError::Encode(e.to_string()))?;
    if bytes.len() < MIN_REPLY_LEN {
        bytes.resize(MIN_REPLY_LEN, 0); // pad (option 0) after End
    }
    Ok(bytes)
}
