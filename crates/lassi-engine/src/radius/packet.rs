//! The RADIUS packet codec (RFC 2865 §3, §5; RFC 2866; RFC 5176).
//!
//! A [`Packet`] is a code, an identifier, a 16-byte authenticator and a list
//! of attributes. Vendor-Specific attributes (type 26) are flattened into
//! [`Attr`]s whose [`AttrKey`] carries the vendor id; on decode a VSA that
//! holds several sub-attributes yields several `Attr`s, and a VSA that does
//! not follow the RFC 2865 §5.26 layout is kept whole as a standard type-26
//! attribute. [`Packet::decode`] checks every length against the buffer and
//! never panics, whatever the input (a fuzz target in `fuzz/` checks that).

use core::net::Ipv4Addr;
use std::fmt;

/// Header length: code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// Largest packet RFC 2865 allows.
pub const MAX_PACKET_LEN: usize = 4096;
/// Largest attribute value (255 minus the type and length bytes).
pub const MAX_VALUE_LEN: usize = 253;
/// Largest value of one vendor sub-attribute (RFC 2865 §5.26 layout).
pub const MAX_VSA_VALUE_LEN: usize = 247;

/// A RADIUS packet code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1
    AccessRequest,
    /// 2
    AccessAccept,
    /// 3
    AccessReject,
    /// 4
    AccountingRequest,
    /// 5
    AccountingResponse,
    /// 11
    AccessChallenge,
    /// 12
    StatusServer,
    /// 40 (RFC 5176)
    DisconnectRequest,
    /// 41
    DisconnectAck,
    /// 42
    DisconnectNak,
    /// 43
    CoaRequest,
    /// 44
    CoaAck,
    /// 45
    CoaNak,
    /// Any other code, kept as is.
    Other(u8),
}

impl Code {
    /// The code from its number.
    pub fn from_u8(v: u8) -> Code {
        match v {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            40 => Code::DisconnectRequest,
            41 => Code::DisconnectAck,
            42 => Code::DisconnectNak,
            43 => Code::CoaRequest,
            44 => Code::CoaAck,
            45 => Code::CoaNak,
            o => Code::Other(o),
        }
    }

    /// The code's number.
    pub fn to_u8(self) -> u8 {
        match self {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::DisconnectRequest => 40,
            Code::DisconnectAck => 41,
            Code::DisconnectNak => 42,
            Code::CoaRequest => 43,
            Code::CoaAck => 44,
            Code::CoaNak => 45,
            Code::Other(o) => o,
        }
    }

    /// True for the codes a client sends and a server answers.
    pub fn is_request(self) -> bool {
        matches!(
            self,
            Code::AccessRequest
                | Code::AccountingRequest
                | Code::StatusServer
                | Code::DisconnectRequest
                | Code::CoaRequest
        )
    }
}

/// Which attribute: a standard type (`vendor == 0`) or a vendor's
/// sub-attribute inside Vendor-Specific (26).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrKey {
    /// IANA private enterprise number; 0 for standard attributes.
    pub vendor: u32,
    /// Attribute type (the vendor's type for a VSA).
    pub typ: u8,
}

impl AttrKey {
    /// A standard attribute.
    pub const fn std(typ: u8) -> AttrKey {
        AttrKey { vendor: 0, typ }
    }

    /// A vendor attribute.
    pub const fn vendor(vendor: u32, typ: u8) -> AttrKey {
        AttrKey { vendor, typ }
    }
}

impl fmt::Display for AttrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.vendor == 0 {
            write!(f, "Attr-{}", self.typ)
        } else {
            write!(f, "Vendor-{}-Attr-{}", self.vendor, self.typ)
        }
    }
}

/// One attribute and its raw value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Which attribute.
    pub key: AttrKey,
    /// The value bytes (for a VSA, the sub-attribute's value).
    pub value: Vec<u8>,
}

/// Why bytes are not a RADIUS packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than 20 bytes, or fewer than the Length field says.
    Truncated,
    /// The Length field is below 20 or above 4096.
    BadLength(u16),
    /// An attribute's length byte is below 2 or runs past the packet.
    BadAttribute {
        /// Offset of the attribute in the packet.
        offset: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated RADIUS packet"),
            DecodeError::BadLength(l) => write!(f, "RADIUS length field {l} out of range"),
            DecodeError::BadAttribute { offset } => {
                write!(f, "malformed RADIUS attribute at offset {offset}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a packet cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A value longer than one attribute can carry.
    ValueTooLong(AttrKey, usize),
    /// The whole packet would exceed 4096 bytes.
    PacketTooLong(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::ValueTooLong(k, n) => write!(f, "{k}: value of {n} bytes is too long"),
            EncodeError::PacketTooLong(n) => write!(f, "RADIUS packet of {n} bytes is too long"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// A decoded (or to-be-encoded) RADIUS packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Packet type.
    pub code: Code,
    /// Identifier matching requests and responses.
    pub id: u8,
    /// Request or Response Authenticator, as on the wire.
    pub authenticator: [u8; 16],
    /// Attributes in wire order.
    pub attrs: Vec<Attr>,
}

impl Packet {
    /// An empty packet.
    pub fn new(code: Code, id: u8) -> Packet {
        Packet {
            code,
            id,
            authenticator: [0; 16],
            attrs: Vec::new(),
        }
    }

    /// Appends an attribute.
    pub fn push(&mut self, key: AttrKey, value: impl Into<Vec<u8>>) -> &mut Packet {
        self.attrs.push(Attr {
            key,
            value: value.into(),
        });
        self
    }

    /// Appends a 32-bit integer attribute.
    pub fn push_u32(&mut self, key: AttrKey, v: u32) -> &mut Packet {
        self.push(key, v.to_be_bytes().to_vec())
    }

    /// Appends an IPv4 address attribute.
    pub fn push_ipv4(&mut self, key: AttrKey, v: Ipv4Addr) -> &mut Packet {
        self.push(key, v.octets().to_vec())
    }

    /// Removes every attribute with this key.
    pub fn remove(&mut self, key: AttrKey) {
        self.attrs.retain(|a| a.key != key);
    }

    /// The first value of an attribute.
    pub fn get(&self, key: AttrKey) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.value.as_slice())
    }

    /// Every value of an attribute, in order.
    pub fn get_all(&self, key: AttrKey) -> impl Iterator<Item = &[u8]> + '_ {
        self.attrs
            .iter()
            .filter(move |a| a.key == key)
            .map(|a| a.value.as_slice())
    }

    /// The first value as a 32-bit integer (None unless exactly 4 bytes).
    pub fn get_u32(&self, key: AttrKey) -> Option<u32> {
        let v = self.get(key)?;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    /// The first value as an IPv4 address (None unless exactly 4 bytes).
    pub fn get_ipv4(&self, key: AttrKey) -> Option<Ipv4Addr> {
        let v = self.get(key)?;
        let b: [u8; 4] = v.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    }

    /// The first value as text (lossy UTF-8, as RADIUS "string" often is not).
    pub fn get_string(&self, key: AttrKey) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Decodes a packet. Bytes past the Length field are ignored (RFC 2865
    /// §3); every attribute must fit exactly.
    pub fn decode(buf: &[u8]) -> Result<Packet, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        let len = u16::from_be_bytes([buf[2], buf[3]]);
        if (len as usize) < HEADER_LEN || len as usize > MAX_PACKET_LEN {
            return Err(DecodeError::BadLength(len));
        }
        if buf.len() < len as usize {
            return Err(DecodeError::Truncated);
        }
        let buf = &buf[..len as usize];
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&buf[4..20]);
        let mut attrs = Vec::new();
        let mut off = HEADER_LEN;
        while off < buf.len() {
            let rest = &buf[off..];
            if rest.len() < 2 {
                return Err(DecodeError::BadAttribute { offset: off });
            }
            let typ = rest[0];
            let alen = rest[1] as usize;
            if alen < 2 || alen > rest.len() {
                return Err(DecodeError::BadAttribute { offset: off });
            }
            let value = &rest[2..alen];
            if typ == 26 {
                decode_vsa(value, &mut attrs);
            } else {
                attrs.push(Attr {
                    key: AttrKey::std(typ),
                    value: value.to_vec(),
                });
            }
            off += alen;
        }
        Ok(Packet {
            code: Code::from_u8(buf[0]),
            id: buf[1],
            authenticator,
            attrs,
        })
    }

    /// Encodes the packet as is (authenticator copied from the struct; the
    /// [`crate::radius::crypto`] functions fill it in afterwards). Each
    /// vendor attribute goes in its own Vendor-Specific attribute.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(128);
        out.push(self.code.to_u8());
        out.push(self.id);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.authenticator);
        for a in &self.attrs {
            if a.key.vendor == 0 {
                if a.value.len() > MAX_VALUE_LEN {
                    return Err(EncodeError::ValueTooLong(a.key, a.value.len()));
                }
                out.push(a.key.typ);
                out.push((a.value.len() + 2) as u8);
            } else {
                if a.value.len() > MAX_VSA_VALUE_LEN {
                    return Err(EncodeError::ValueTooLong(a.key, a.value.len()));
                }
                out.push(26);
                out.push((a.value.len() + 8) as u8);
                out.extend_from_slice(&a.key.vendor.to_be_bytes());
                out.push(a.key.typ);
                out.push((a.value.len() + 2) as u8);
            }
            out.extend_from_slice(&a.value);
        }
        if out.len() > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong(out.len()));
        }
        let len = (out.len() as u16).to_be_bytes();
        out[2] = len[0];
        out[3] = len[1];
        Ok(out)
    }
}

/// Splits a Vendor-Specific value into sub-attributes; if it does not parse
/// as vendor id + (type, length, value)*, keeps it whole as attribute 26.
fn decode_vsa(value: &[u8], attrs: &mut Vec<Attr>) {
    let whole = |attrs: &mut Vec<Attr>| {
        attrs.push(Attr {
            key: AttrKey::std(26),
            value: value.to_vec(),
        })
    };
    if value.len() < 4 + 2 {
        return whole(attrs);
    }
    let vendor = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
    let subs = &value[4..];
    // Validate the whole layout before emitting anything.
    let mut off = 0;
    while off < subs.len() {
        if subs.len() - off < 2 {
            return whole(attrs);
        }
        let l = subs[off + 1] as usize;
        if l < 2 || off + l > subs.len() {
            return whole(attrs);
        }
        off += l;
    }
    if vendor == 0 {
        return whole(attrs);
    }
    let mut off = 0;
    while off < subs.len() {
        let l = subs[off + 1] as usize;
        attrs.push(Attr {
            key: AttrKey::vendor(vendor, subs[off]),
            value: subs[off + 2..off + l].to_vec(),
        });
        off += l;
    }
}

/// Offset of the first attribute of standard type `typ` in encoded packet
/// bytes, with its total length; `None` if absent or the bytes are malformed.
pub fn find_raw_attr(buf: &[u8], typ: u8) -> Option<(usize, usize)> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let len = (u16::from_be_bytes([buf[2], buf[3]]) as usize).min(buf.len());
    let mut off = HEADER_LEN;
    while off + 2 <= len {
        let l = buf[off + 1] as usize;
        if l < 2 || off + l > len {
            return None;
        }
        if buf[off] == typ {
            return Some((off, l));
        }
        off += l;
    }
    None
}

/// Well-known attribute keys lassi uses (numbers as in FreeRADIUS's
/// dictionaries and `radius-dicts/`).
pub mod attr {
    use super::AttrKey;

    /// WISPr vendor id.
    pub const VENDOR_WISPR: u32 = 14122;
    /// ChilliSpot / CoovaChilli vendor id.
    pub const VENDOR_CHILLISPOT: u32 = 14559;

    /// User-Name (1), string.
    pub const USER_NAME: AttrKey = AttrKey::std(1);
    /// User-Password (2), octets (hidden).
    pub const USER_PASSWORD: AttrKey = AttrKey::std(2);
    /// CHAP-Password (3), octets: CHAP ident + 16-byte response.
    pub const CHAP_PASSWORD: AttrKey = AttrKey::std(3);
    /// NAS-IP-Address (4), ipaddr.
    pub const NAS_IP_ADDRESS: AttrKey = AttrKey::std(4);
    /// NAS-Port (5), integer.
    pub const NAS_PORT: AttrKey = AttrKey::std(5);
    /// Service-Type (6), integer.
    pub const SERVICE_TYPE: AttrKey = AttrKey::std(6);
    /// Framed-IP-Address (8), ipaddr.
    pub const FRAMED_IP_ADDRESS: AttrKey = AttrKey::std(8);
    /// Framed-IPv6-Address (168, RFC 6911), ipv6addr.
    pub const FRAMED_IPV6_ADDRESS: AttrKey = AttrKey::std(168);
    /// Filter-Id (11), string: a name the NAS's operator gives meaning to
    /// (lassi passes it to the connection scripts as `FILTER_ID`).
    pub const FILTER_ID: AttrKey = AttrKey::std(11);
    /// Reply-Message (18), string.
    pub const REPLY_MESSAGE: AttrKey = AttrKey::std(18);
    /// State (24), octets.
    pub const STATE: AttrKey = AttrKey::std(24);
    /// Class (25), octets.
    pub const CLASS: AttrKey = AttrKey::std(25);
    /// Vendor-Specific (26), kept whole only when malformed.
    pub const VENDOR_SPECIFIC: AttrKey = AttrKey::std(26);
    /// Session-Timeout (27), integer seconds.
    pub const SESSION_TIMEOUT: AttrKey = AttrKey::std(27);
    /// Idle-Timeout (28), integer seconds.
    pub const IDLE_TIMEOUT: AttrKey = AttrKey::std(28);
    /// Termination-Action (29), integer.
    pub const TERMINATION_ACTION: AttrKey = AttrKey::std(29);
    /// Called-Station-Id (30), string.
    pub const CALLED_STATION_ID: AttrKey = AttrKey::std(30);
    /// Calling-Station-Id (31), string.
    pub const CALLING_STATION_ID: AttrKey = AttrKey::std(31);
    /// NAS-Identifier (32), string.
    pub const NAS_IDENTIFIER: AttrKey = AttrKey::std(32);
    /// Proxy-State (33), octets.
    pub const PROXY_STATE: AttrKey = AttrKey::std(33);
    /// Acct-Status-Type (40), integer.
    pub const ACCT_STATUS_TYPE: AttrKey = AttrKey::std(40);
    /// Acct-Delay-Time (41), integer seconds.
    pub const ACCT_DELAY_TIME: AttrKey = AttrKey::std(41);
    /// Acct-Input-Octets (42), integer.
    pub const ACCT_INPUT_OCTETS: AttrKey = AttrKey::std(42);
    /// Acct-Output-Octets (43), integer.
    pub const ACCT_OUTPUT_OCTETS: AttrKey = AttrKey::std(43);
    /// Acct-Session-Id (44), string.
    pub const ACCT_SESSION_ID: AttrKey = AttrKey::std(44);
    /// Acct-Authentic (45), integer.
    pub const ACCT_AUTHENTIC: AttrKey = AttrKey::std(45);
    /// Acct-Session-Time (46), integer seconds.
    pub const ACCT_SESSION_TIME: AttrKey = AttrKey::std(46);
    /// Acct-Input-Packets (47), integer.
    pub const ACCT_INPUT_PACKETS: AttrKey = AttrKey::std(47);
    /// Acct-Output-Packets (48), integer.
    pub const ACCT_OUTPUT_PACKETS: AttrKey = AttrKey::std(48);
    /// Acct-Terminate-Cause (49), integer.
    pub const ACCT_TERMINATE_CAUSE: AttrKey = AttrKey::std(49);
    /// Acct-Input-Gigawords (52), integer.
    pub const ACCT_INPUT_GIGAWORDS: AttrKey = AttrKey::std(52);
    /// Acct-Output-Gigawords (53), integer.
    pub const ACCT_OUTPUT_GIGAWORDS: AttrKey = AttrKey::std(53);
    /// Event-Timestamp (55), date.
    pub const EVENT_TIMESTAMP: AttrKey = AttrKey::std(55);
    /// CHAP-Challenge (60), octets.
    pub const CHAP_CHALLENGE: AttrKey = AttrKey::std(60);
    /// NAS-Port-Type (61), integer.
    pub const NAS_PORT_TYPE: AttrKey = AttrKey::std(61);
    /// Message-Authenticator (80), octets (16).
    pub const MESSAGE_AUTHENTICATOR: AttrKey = AttrKey::std(80);
    /// Acct-Interim-Interval (85), integer seconds.
    pub const ACCT_INTERIM_INTERVAL: AttrKey = AttrKey::std(85);
    /// NAS-Port-Id (87), string.
    pub const NAS_PORT_ID: AttrKey = AttrKey::std(87);
    /// Chargeable-User-Identity (89), octets (RFC 4372).
    pub const CHARGEABLE_USER_IDENTITY: AttrKey = AttrKey::std(89);
    /// NAS-IPv6-Address (95), ipv6addr.
    pub const NAS_IPV6_ADDRESS: AttrKey = AttrKey::std(95);
    /// Error-Cause (101), integer (RFC 5176).
    pub const ERROR_CAUSE: AttrKey = AttrKey::std(101);

    /// WISPr-Location-ID (14122/1), string.
    pub const WISPR_LOCATION_ID: AttrKey = AttrKey::vendor(VENDOR_WISPR, 1);
    /// WISPr-Location-Name (14122/2), string.
    pub const WISPR_LOCATION_NAME: AttrKey = AttrKey::vendor(VENDOR_WISPR, 2);
    /// WISPr-Logoff-URL (14122/3), string.
    pub const WISPR_LOGOFF_URL: AttrKey = AttrKey::vendor(VENDOR_WISPR, 3);
    /// WISPr-Redirection-URL (14122/4), string.
    pub const WISPR_REDIRECTION_URL: AttrKey = AttrKey::vendor(VENDOR_WISPR, 4);
    /// WISPr-Bandwidth-Max-Up (14122/7), integer bit/s.
    pub const WISPR_BANDWIDTH_MAX_UP: AttrKey = AttrKey::vendor(VENDOR_WISPR, 7);
    /// WISPr-Bandwidth-Max-Down (14122/8), integer bit/s.
    pub const WISPR_BANDWIDTH_MAX_DOWN: AttrKey = AttrKey::vendor(VENDOR_WISPR, 8);
    /// WISPr-Session-Terminate-Time (14122/9), string (ISO 8601).
    pub const WISPR_SESSION_TERMINATE_TIME: AttrKey = AttrKey::vendor(VENDOR_WISPR, 9);

    /// ChilliSpot-Max-Input-Octets (14559/1), integer.
    pub const CHILLI_MAX_INPUT_OCTETS: AttrKey = AttrKey::vendor(VENDOR_CHILLISPOT, 1);
    /// ChilliSpot-Max-Output-Octets (14559/2), integer.
    pub const CHILLI_MAX_OUTPUT_OCTETS: AttrKey = AttrKey::vendor(VENDOR_CHILLISPOT, 2);
    /// ChilliSpot-Max-Total-Octets (14559/3), integer.
    pub const CHILLI_MAX_TOTAL_OCTETS: AttrKey = AttrKey::vendor(VENDOR_CHILLISPOT, 3);
    /// ChilliSpot-Bandwidth-Max-Up (14559/4), integer kbit/s.
    pub const CHILLI_BANDWIDTH_MAX_UP: AttrKey = AttrKey::vendor(VENDOR_CHILLISPOT, 4);
    /// ChilliSpot-Bandwidth-Max-Down (14559/5), integer kbit/s.
    pub const CHILLI_BANDWIDTH_MAX_DOWN: AttrKey = AttrKey::vendor(VENDOR_CHILLISPOT, 5);
    /// ChilliSpot-Max-Input-Gigawords (14559/21), integer.
    pub const CHILLI_MAX_INPUT_GIGAWORDS: AttrKey = AttrKey::vendor(VENDOR_CHILLISPOT, 21);
    /// ChilliSpot-Max-Output-Gigawords (14559/22), integer.
    pub const CHILLI_MAX_OUTPUT_GIGAWORDS: AttrKey = AttrKey::vendor(VENDOR_CHILLISPOT, 22);
    /// ChilliSpot-Max-Total-Gigawords (14559/23), integer.
    pub const CHILLI_MAX_TOTAL_GIGAWORDS: AttrKey = AttrKey::vendor(VENDOR_CHILLISPOT, 23);

    /// Every attribute lassi encodes or decodes, with its FreeRADIUS name
    /// and dictionary type; the dictionary test checks `radius-dicts/` and
    /// FreeRADIUS's own dictionaries agree with this table.
    pub const KNOWN: &[(&str, AttrKey, &str)] = &[
        ("User-Name", USER_NAME, "string"),
        ("User-Password", USER_PASSWORD, "string"),
        ("CHAP-Password", CHAP_PASSWORD, "octets"),
        ("NAS-IP-Address", NAS_IP_ADDRESS, "ipaddr"),
        ("NAS-Port", NAS_PORT, "integer"),
        ("Service-Type", SERVICE_TYPE, "integer"),
        ("Framed-IP-Address", FRAMED_IP_ADDRESS, "ipaddr"),
        ("Filter-Id", FILTER_ID, "string"),
        ("Reply-Message", REPLY_MESSAGE, "string"),
        ("State", STATE, "octets"),
        ("Class", CLASS, "octets"),
        ("Session-Timeout", SESSION_TIMEOUT, "integer"),
        ("Idle-Timeout", IDLE_TIMEOUT, "integer"),
        ("Called-Station-Id", CALLED_STATION_ID, "string"),
        ("Calling-Station-Id", CALLING_STATION_ID, "string"),
        ("NAS-Identifier", NAS_IDENTIFIER, "string"),
        ("Proxy-State", PROXY_STATE, "octets"),
        ("Acct-Status-Type", ACCT_STATUS_TYPE, "integer"),
        ("Acct-Delay-Time", ACCT_DELAY_TIME, "integer"),
        ("Acct-Input-Octets", ACCT_INPUT_OCTETS, "integer"),
        ("Acct-Output-Octets", ACCT_OUTPUT_OCTETS, "integer"),
        ("Acct-Session-Id", ACCT_SESSION_ID, "string"),
        ("Acct-Authentic", ACCT_AUTHENTIC, "integer"),
        ("Acct-Session-Time", ACCT_SESSION_TIME, "integer"),
        ("Acct-Input-Packets", ACCT_INPUT_PACKETS, "integer"),
        ("Acct-Output-Packets", ACCT_OUTPUT_PACKETS, "integer"),
        ("Acct-Terminate-Cause", ACCT_TERMINATE_CAUSE, "integer"),
        ("Acct-Input-Gigawords", ACCT_INPUT_GIGAWORDS, "integer"),
        ("Acct-Output-Gigawords", ACCT_OUTPUT_GIGAWORDS, "integer"),
        ("Event-Timestamp", EVENT_TIMESTAMP, "date"),
        ("CHAP-Challenge", CHAP_CHALLENGE, "octets"),
        ("NAS-Port-Type", NAS_PORT_TYPE, "integer"),
        ("Message-Authenticator", MESSAGE_AUTHENTICATOR, "octets"),
        ("Acct-Interim-Interval", ACCT_INTERIM_INTERVAL, "integer"),
        ("NAS-Port-Id", NAS_PORT_ID, "string"),
        (
            "Chargeable-User-Identity",
            CHARGEABLE_USER_IDENTITY,
            "octets",
        ),
        ("Error-Cause", ERROR_CAUSE, "integer"),
        ("WISPr-Location-ID", WISPR_LOCATION_ID, "string"),
        ("WISPr-Location-Name", WISPR_LOCATION_NAME, "string"),
        ("WISPr-Logoff-URL", WISPR_LOGOFF_URL, "string"),
        ("WISPr-Redirection-URL", WISPR_REDIRECTION_URL, "string"),
        ("WISPr-Bandwidth-Max-Up", WISPR_BANDWIDTH_MAX_UP, "integer"),
        (
            "WISPr-Bandwidth-Max-Down",
            WISPR_BANDWIDTH_MAX_DOWN,
            "integer",
        ),
        (
            "WISPr-Session-Terminate-Time",
            WISPR_SESSION_TERMINATE_TIME,
            "string",
        ),
        (
            "ChilliSpot-Max-Input-Octets",
            CHILLI_MAX_INPUT_OCTETS,
            "integer",
        ),
        (
            "ChilliSpot-Max-Output-Octets",
            CHILLI_MAX_OUTPUT_OCTETS,
            "integer",
        ),
        (
            "ChilliSpot-Max-Total-Octets",
            CHILLI_MAX_TOTAL_OCTETS,
            "integer",
        ),
        (
            "ChilliSpot-Bandwidth-Max-Up",
            CHILLI_BANDWIDTH_MAX_UP,
            "integer",
        ),
        (
            "ChilliSpot-Bandwidth-Max-Down",
            CHILLI_BANDWIDTH_MAX_DOWN,
            "integer",
        ),
        (
            "ChilliSpot-Max-Input-Gigawords",
            CHILLI_MAX_INPUT_GIGAWORDS,
            "integer",
        ),
        (
            "ChilliSpot-Max-Output-Gigawords",
            CHILLI_MAX_OUTPUT_GIGAWORDS,
            "integer",
        ),
        (
            "ChilliSpot-Max-Total-Gigawords",
            CHILLI_MAX_TOTAL_GIGAWORDS,
            "integer",
        ),
    ];
}

#[cfg(test)]
mod tests {
    use super::attr::*;
    use super::*;

    #[test]
    fn round_trip_with_vendor_attributes() {
        let mut p = Packet::new(Code::AccessAccept, 7);
        p.authenticator = [9; 16];
        p.push(USER_NAME, "bob")
            .push_u32(SESSION_TIMEOUT, 3600)
            .push_u32(WISPR_BANDWIDTH_MAX_DOWN, 2_000_000)
            .push_ipv4(FRAMED_IP_ADDRESS, Ipv4Addr::new(10, 1, 0, 23));
        let bytes = p.encode().unwrap();
        assert_eq!(bytes.len(), 20 + 5 + 6 + 12 + 6);
        let q = Packet::decode(&bytes).unwrap();
        assert_eq!(p, q);
        assert_eq!(q.get_u32(WISPR_BANDWIDTH_MAX_DOWN), Some(2_000_000));
        assert_eq!(q.get_string(USER_NAME).as_deref(), Some("bob"));
    }

    #[test]
    fn several_subattributes_in_one_vsa() {
        // One VSA (vendor 14559) holding types 1 and 21.
        let mut b = vec![2, 1, 0, 0];
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&[
            26, 18, 0, 0, 0x38, 0xdf, 1, 6, 0, 0, 0, 5, 21, 6, 0, 0, 0, 1,
        ]);
        let l = b.len() as u16;
        b[2..4].copy_from_slice(&l.to_be_bytes());
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.get_u32(CHILLI_MAX_INPUT_OCTETS), Some(5));
        assert_eq!(p.get_u32(CHILLI_MAX_INPUT_GIGAWORDS), Some(1));
        // A malformed VSA is kept whole.
        b[20 + 7] = 200;
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.attrs.len(), 1);
        assert_eq!(p.attrs[0].key, VENDOR_SPECIFIC);
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(Packet::decode(&[1; 19]), Err(DecodeError::Truncated));
        let mut b = vec![1, 1, 0, 19];
        b.extend_from_slice(&[0; 16]);
        assert_eq!(Packet::decode(&b), Err(DecodeError::BadLength(19)));
        b[3] = 30;
        assert_eq!(Packet::decode(&b), Err(DecodeError::Truncated));
        b[3] = 22;
        b.extend_from_slice(&[1, 1]);
        assert!(matches!(
            Packet::decode(&b),
            Err(DecodeError::BadAttribute { offset: 20 })
        ));
        b[21] = 3;
        assert!(Packet::decode(&b).is_err());
        // Trailing bytes past Length are ignored.
        b[21] = 2;
        b.push(0xff);
        assert_eq!(Packet::decode(&b).unwrap().attrs.len(), 1);
    }

    #[test]
    fn decoder_never_panics_on_noise() {
        // A cheap stand-in for the fuzz target: every prefix and many
        // mutations of a valid packet.
        let mut p = Packet::new(Code::AccessRequest, 1);
        p.push(USER_NAME, "x").push_u32(CHILLI_MAX_TOTAL_OCTETS, 1);
        let good = p.encode().unwrap();
        let mut seed = 0x1234_5678u32;
        for i in 0..good.len() {
            let _ = Packet::decode(&good[..i]);
        }
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..3 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let at = (seed >> 8) as usize % b.len();
                b[at] = (seed >> 24) as u8;
            }
            let _ = Packet::decode(&b);
            let _ = find_raw_attr(&b, 80);
        }
    }

    #[test]
    fn encode_refuses_oversize() {
        let mut p = Packet::new(Code::AccessRequest, 1);
        p.push(USER_NAME, vec![b'a'; 254]);
        assert!(matches!(p.encode(), Err(EncodeError::ValueTooLong(..))));
        let mut p = Packet::new(Code::AccessRequest, 1);
        for _ in 0..20 {
            p.push(CLASS, vec![0; 253]);
        }
        assert!(matches!(p.encode(), Err(EncodeError::PacketTooLong(_))));
    }
}
