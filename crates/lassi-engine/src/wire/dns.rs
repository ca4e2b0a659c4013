//! DNS messages (RFC 1035): the header, questions and resource records,
//! with names decompressed; A and CNAME data decoded, other data kept as
//! bytes. Enough for lassi to check guests' queries, to learn walled-garden
//! addresses from the answers, and for the shell's stub resolver to ask.
//!
//! Everything here takes untrusted bytes. Reads are bounds-checked and never
//! panic; a compression pointer must point before the name (or the part of
//! it) that holds it, so every chain of pointers ends; a name is at most
//! [`MAX_NAME_LEN`] bytes on the wire and a label at most
//! [`MAX_LABEL_LEN`]; what is allocated is bounded by the message's length
//! (each record costs at least 11 bytes of it). Names compare without
//! regard to ASCII case. Trailing bytes after the last record are ignored.
//!
//! lassi has its own codec rather than a crate's: the one it used before
//! (`hickory-proto`) draws an OS random number generator, and with it libc,
//! into the engine, which must do no I/O, and costs binary size. The tests
//! check this codec against `hickory-proto` both ways.

use core::fmt;
use core::net::Ipv4Addr;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire, length bytes and root included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 63;
/// Record type A (an IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type CNAME (the canonical name of an alias).
pub const TYPE_CNAME: u16 = 5;
/// Record type AAAA (an IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Pseudo-record type OPT (EDNS, RFC 6891; additional section only).
pub const TYPE_OPT: u16 = 41;
/// Class IN (the Internet).
pub const CLASS_IN: u16 = 1;
/// Header flag QR: the message is a response.
pub const FLAG_RESPONSE: u16 = 0x8000;
/// Header flag RD: recursion desired.
pub const FLAG_RECURSION_DESIRED: u16 = 0x0100;
/// Opcode of a standard query.
pub const OPCODE_QUERY: u8 = 0;

/// Why bytes are not a DNS message (or a text not a name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The message ends inside a field.
    Truncated,
    /// A label of the reserved or extended kinds (first bits 01 or 10), or
    /// an empty label inside a name's text.
    BadLabel,
    /// A label over [`MAX_LABEL_LEN`] bytes in a name's text.
    LabelTooLong,
    /// A name over [`MAX_NAME_LEN`] bytes.
    NameTooLong,
    /// A compression pointer that does not point backwards.
    BadPointer,
    /// Record data that does not fit its type (e.g. an A record of 5 bytes).
    BadRdata(u16),
    /// An OPT record outside the additional section, or a second one.
    MisplacedOpt,
    /// More than 65,535 entries in a section to encode.
    TooManyRecords,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("DNS message truncated"),
            Error::BadLabel => f.write_str("bad DNS label"),
            Error::LabelTooLong => write!(f, "DNS label over {MAX_LABEL_LEN} bytes"),
            Error::NameTooLong => write!(f, "DNS name over {MAX_NAME_LEN} bytes"),
            Error::BadPointer => f.write_str("DNS compression pointer not pointing backwards"),
            Error::BadRdata(t) => write!(f, "DNS record of type {t}: bad data length"),
            Error::MisplacedOpt => f.write_str("misplaced or repeated OPT record"),
            Error::TooManyRecords => f.write_str("too many DNS records to encode"),
        }
    }
}

impl std::error::Error for Error {}

/// A domain name: its labels as on the wire, uncompressed, without the root
/// label. Equality ignores ASCII case.
#[derive(Clone, Default)]
pub struct Name {
    /// Length-prefixed labels; at most `MAX_NAME_LEN - 1` bytes.
    wire: Vec<u8>,
}

impl Name {
    /// The root name (".").
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses dotted text (`www.example.com`, a trailing dot allowed; `.`
    /// or nothing is the root). Labels are taken as bytes, without escapes.
    pub fn from_dotted(text: &str) -> Result<Self, Error> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let mut wire = Vec::with_capacity(text.len() + 1);
        if !text.is_empty() {
            for label in text.split('.') {
                if label.is_empty() {
                    return Err(Error::BadLabel);
                }
                if label.len() > MAX_LABEL_LEN {
                    return Err(Error::LabelTooLong);
                }
                wire.push(label.len() as u8);
                wire.extend_from_slice(label.as_bytes());
            }
        }
        if wire.len() + 1 > MAX_NAME_LEN {
            return Err(Error::NameTooLong);
        }
        Ok(Name { wire })
    }

    /// True for the root name.
    pub fn is_root(&self) -> bool {
        self.wire.is_empty()
    }

    /// The labels, from the leftmost.
    pub fn labels(&self) -> Labels<'_> {
        Labels { rest: &self.wire }
    }

    /// Lowercase dotted text without the root dot (the root is empty): the
    /// form names are compared in. Letters, digits, `-`, `_` and `*` stand
    /// for themselves, any other byte (a dot inside a label too) as `\DDD`,
    /// so two names have the same text only if they are equal.
    pub fn normalized(&self) -> String {
        let mut out = String::with_capacity(self.wire.len());
        for (i, label) in self.labels().enumerate() {
            if i > 0 {
                out.push('.');
            }
            for &b in label {
                let b = b.to_ascii_lowercase();
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*') {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("\\{b:03}"));
                }
            }
        }
        out
    }

    /// Appends the name, uncompressed, with its root label.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.wire);
        out.push(0);
    }

    /// Reads the name at `at` in `msg`, following compression pointers.
    /// Returns it and the offset after it where it starts (after its first
    /// pointer, if any).
    pub fn parse(msg: &[u8], at: usize) -> Result<(Name, usize), Error> {
        let mut wire = Vec::new();
        let (mut pos, mut segment) = (at, at);
        let mut end = None;
        loop {
            let len = *msg.get(pos).ok_or(Error::Truncated)?;
            match len >> 6 {
                0 if len == 0 => break,
                0 => {
                    let label = msg
                        .get(pos + 1..pos + 1 + usize::from(len))
                        .ok_or(Error::Truncated)?;
                    if wire.len() + 1 + label.len() + 1 > MAX_NAME_LEN {
                        return Err(Error::NameTooLong);
                    }
                    wire.push(len);
                    wire.extend_from_slice(label);
                    pos += 1 + label.len();
                }
                3 => {
                    let low = *msg.get(pos + 1).ok_or(Error::Truncated)?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                    // Strictly before the run of labels that holds the
                    // pointer: each jump goes further back, so none loops.
                    if target >= segment {
                        return Err(Error::BadPointer);
                    }
                    end.get_or_insert(pos + 2);
                    (pos, segment) = (target, target);
                }
                _ => return Err(Error::BadLabel),
            }
        }
        Ok((Name { wire }, end.unwrap_or(pos + 1)))
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        // Length bytes are at most 63, below 'A': only letters fold.
        self.wire.eq_ignore_ascii_case(&other.wire)
    }
}

impl Eq for Name {}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.normalized())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

/// The labels of a [`Name`].
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.rest.split_first()?;
        let (label, rest) = tail.split_at(usize::from(len).min(tail.len()));
        self.rest = rest;
        Some(label)
    }
}

/// The fixed header, without the section counts (they follow from the
/// sections of a [`Message`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// The id that pairs a response with its query.
    pub id: u16,
    /// The flags word: QR, opcode, AA, TC, RD, RA, Z/AD/CD and RCODE.
    pub flags: u16,
}

impl Header {
    /// True for a response (QR set), false for a query.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// The opcode ([`OPCODE_QUERY`] for a standard query).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The response code (low 4 bits; 0 = no error, 3 = no such name).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
}

/// A question: a name and the type and class asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked about.
    pub name: Name,
    /// Query type ([`TYPE_A`], …).
    pub qtype: u16,
    /// Query class ([`CLASS_IN`]).
    pub qclass: u16,
}

impl Question {
    fn parse(msg: &[u8], at: usize) -> Result<(Self, usize), Error> {
        let (name, at) = Name::parse(msg, at)?;
        let qtype = be16(msg, at)?;
        let qclass = be16(msg, at + 2)?;
        Ok((
            Question {
                name,
                qtype,
                qclass,
            },
            at + 4,
        ))
    }

    fn emit(&self, out: &mut Vec<u8>) {
        self.name.emit(out);
        out.extend_from_slice(&self.qtype.to_be_bytes());
        out.extend_from_slice(&self.qclass.to_be_bytes());
    }
}

/// A record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// An A record's address.
    A(Ipv4Addr),
    /// A CNAME record's target.
    Cname(Name),
    /// Any other type's data as on the wire (names in it may be
    /// compression pointers into the message it came from).
    Other(Vec<u8>),
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The name that owns the record.
    pub name: Name,
    /// Its type ([`TYPE_A`], [`TYPE_CNAME`], …).
    pub rtype: u16,
    /// Its class (for OPT, the sender's UDP payload size).
    pub class: u16,
    /// Time to live in seconds (for OPT, extended flags).
    pub ttl: u32,
    /// The data, decoded for A and CNAME.
    pub data: RData,
}

impl Record {
    fn parse(msg: &[u8], at: usize) -> Result<(Self, usize), Error> {
        let (name, at) = Name::parse(msg, at)?;
        let rtype = be16(msg, at)?;
        let class = be16(msg, at + 2)?;
        let ttl = u32::from(be16(msg, at + 4)?) << 16 | u32::from(be16(msg, at + 6)?);
        let len = usize::from(be16(msg, at + 8)?);
        let start = at + 10;
        let raw = msg.get(start..start + len).ok_or(Error::Truncated)?;
        let data = match rtype {
            TYPE_A => RData::A(
                <[u8; 4]>::try_from(raw)
                    .map_err(|_| Error::BadRdata(rtype))?
                    .into(),
            ),
            TYPE_CNAME => {
                let (target, end) = Name::parse(msg, start)?;
                if end != start + len {
                    return Err(Error::BadRdata(rtype));
                }
                RData::Cname(target)
            }
            _ => RData::Other(raw.to_vec()),
        };
        let record = Record {
            name,
            rtype,
            class,
            ttl,
            data,
        };
        Ok((record, start + len))
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.name.emit(out);
        out.extend_from_slice(&self.rtype.to_be_bytes());
        out.extend_from_slice(&self.class.to_be_bytes());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        let len_at = out.len();
        out.extend_from_slice(&[0, 0]);
        match &self.data {
            RData::A(a) => out.extend_from_slice(&a.octets()),
            RData::Cname(n) => n.emit(out),
            RData::Other(raw) => out.extend_from_slice(raw),
        }
        let len = u16::try_from(out.len() - len_at - 2).map_err(|_| Error::TooManyRecords)?;
        out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// A whole message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Id and flags.
    pub header: Header,
    /// The questions (one, in practice).
    pub questions: Vec<Question>,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authorities: Vec<Record>,
    /// The additional section, without the OPT record.
    pub additionals: Vec<Record>,
    /// The OPT record (EDNS), if the additional section had one.
    pub edns: Option<Record>,
}

impl Message {
    /// A standard query for `name`'s records of type `qtype` (class IN),
    /// recursion desired.
    pub fn query(id: u16, name: Name, qtype: u16) -> Self {
        Message {
            header: Header {
                id,
                flags: FLAG_RECURSION_DESIRED,
            },
            questions: vec![Question {
                name,
                qtype,
                qclass: CLASS_IN,
            }],
            ..Message::default()
        }
    }

    /// Decodes a message (see the module's documentation for the checks).
    pub fn parse(msg: &[u8]) -> Result<Self, Error> {
        let header = Header {
            id: be16(msg, 0)?,
            flags: be16(msg, 2)?,
        };
        let count = |i: usize| be16(msg, 4 + 2 * i).map(usize::from);
        let mut m = Message {
            header,
            questions: Vec::with_capacity(count(0)?.min(4)),
            ..Message::default()
        };
        let mut at = HEADER_LEN;
        for _ in 0..count(0)? {
            let (q, next) = Question::parse(msg, at)?;
            m.questions.push(q);
            at = next;
        }
        for section in 1..4 {
            for _ in 0..count(section)? {
                let (r, next) = Record::parse(msg, at)?;
                at = next;
                m.place(section, r)?;
            }
        }
        Ok(m)
    }

    /// Puts a parsed record in its section (1 answer, 2 authority, 3
    /// additional); the OPT record only once and only in the last.
    fn place(&mut self, section: usize, r: Record) -> Result<(), Error> {
        match (section, r.rtype) {
            (3, TYPE_OPT) if self.edns.is_none() => self.edns = Some(r),
            (_, TYPE_OPT) => return Err(Error::MisplacedOpt),
            (1, _) => self.answers.push(r),
            (2, _) => self.authorities.push(r),
            _ => self.additionals.push(r),
        }
        Ok(())
    }

    /// Encodes the message, names uncompressed, the OPT record last.
    pub fn emit(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.header.id.to_be_bytes());
        out.extend_from_slice(&self.header.flags.to_be_bytes());
        let additionals = self.additionals.len() + usize::from(self.edns.is_some());
        for n in [
            self.questions.len(),
            self.answers.len(),
            self.authorities.len(),
            additionals,
        ] {
            let n = u16::try_from(n).map_err(|_| Error::TooManyRecords)?;
            out.extend_from_slice(&n.to_be_bytes());
        }
        self.questions.iter().for_each(|q| q.emit(&mut out));
        let records = self.answers.iter().chain(&self.authorities);
        for r in records.chain(&self.additionals).chain(&self.edns) {
            r.emit(&mut out)?;
        }
        Ok(out)
    }
}

fn be16(msg: &[u8], at: usize) -> Result<u16, Error> {
    let b = msg.get(at..at + 2).ok_or(Error::Truncated)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op as hop;
    use hickory_proto::rr as hrr;

    fn name(s: &str) -> Name {
        Name::from_dotted(s).unwrap()
    }

    fn record(owner: &str, ttl: u32, data: RData) -> Record {
        let rtype = match &data {
            RData::A(_) => TYPE_A,
            RData::Cname(_) => TYPE_CNAME,
            RData::Other(_) => TYPE_AAAA,
        };
        Record {
            name: name(owner),
            rtype,
            class: CLASS_IN,
            ttl,
            data,
        }
    }

    /// A response with every section and kind of data.
    fn response() -> Message {
        let mut m = Message::query(0x1234, name("www.garden.test"), TYPE_A);
        m.header.flags |= FLAG_RESPONSE | 0x0080; // RA
        m.answers = vec![
            record("www.garden.test", 60, RData::Cname(name("edge.cdn.test"))),
            record(
                "edge.cdn.test",
                300,
                RData::A(Ipv4Addr::new(198, 51, 100, 7)),
            ),
            record(
                "edge.cdn.test",
                300,
                RData::Other(vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            ),
        ];
        m.authorities = vec![Record {
            rtype: 2, // NS, its target kept as bytes
            ..record(
                "cdn.test",
                3600,
                RData::Other(name("ns.cdn.test").wire_with_root()),
            )
        }];
        m.additionals = vec![record(
            "ns.cdn.test",
            3600,
            RData::A(Ipv4Addr::new(192, 0, 2, 53)),
        )];
        m.edns = Some(Record {
            name: Name::root(),
            rtype: TYPE_OPT,
            class: 1232,
            ttl: 0,
            data: RData::Other(vec![]),
        });
        m
    }

    impl Name {
        fn wire_with_root(&self) -> Vec<u8> {
            let mut v = Vec::new();
            self.emit(&mut v);
            v
        }
    }

    /// A response answering `www.a.test` whose owner names are compression
    /// pointers to the question's name (offset 12).
    fn compressed() -> Vec<u8> {
        let mut b = vec![0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        b.extend_from_slice(b"\x03www\x01a\x04test\x00\x00\x01\x00\x01");
        // CNAME www.a.test -> cdn.a.test (the target a label then a pointer to "a.test").
        b.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        b.extend_from_slice(b"\x03cdn\xc0\x10");
        let cdn = b.len() - 6;
        b.extend_from_slice(&[
            0xc0, cdn as u8, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 1,
        ]);
        b
    }

    #[test]
    fn names_parse_from_text() {
        assert_eq!(name("www.Example.COM.").to_string(), "www.example.com");
        assert_eq!(name("www.example.com"), name("WWW.EXAMPLE.COM."));
        assert!(name(".").is_root() && name("").is_root());
        assert_eq!(
            name("a.b.c").labels().collect::<Vec<_>>(),
            vec![b"a", b"b", b"c"]
        );
        assert_eq!(Name::from_dotted("a..b"), Err(Error::BadLabel));
        assert_eq!(Name::from_dotted(".a"), Err(Error::BadLabel));
        let long = "x".repeat(64);
        assert_eq!(Name::from_dotted(&long), Err(Error::LabelTooLong));
        assert!(Name::from_dotted(&"x".repeat(63)).is_ok());
        // 4 labels of 63: 4 × 64 + 1 = 257 bytes on the wire.
        let big = vec!["y".repeat(63); 4].join(".");
        assert_eq!(Name::from_dotted(&big), Err(Error::NameTooLong));
        let most = format!("{}.{}", vec!["y".repeat(63); 3].join("."), "z".repeat(61));
        assert_eq!(name(&most).wire_with_root().len(), MAX_NAME_LEN);
    }

    #[test]
    fn odd_bytes_are_escaped_so_texts_stay_distinct() {
        let mut b = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(b"\x05a.b\\C\x04test\x00\x00\x01\x00\x01");
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.questions[0].name.normalized(), "a\\046b\\092c.test");
        assert_ne!(m.questions[0].name, name("a.b.c.test"));
        assert_eq!(name("_srv.*.x-y.test").normalized(), "_srv.*.x-y.test");
        assert_eq!(Name::root().normalized(), "");
    }

    #[test]
    fn a_message_round_trips() {
        let m = response();
        let b = m.emit().unwrap();
        assert_eq!(Message::parse(&b), Ok(m.clone()));
        assert!(m.header.is_response());
        assert_eq!((m.header.opcode(), m.header.rcode()), (OPCODE_QUERY, 0));
        let q = Message::query(7, name("a.test"), TYPE_A);
        assert!(!q.header.is_response());
        assert_eq!(Message::parse(&q.emit().unwrap()), Ok(q));
    }

    #[test]
    fn compression_pointers_are_followed() {
        let m = Message::parse(&compressed()).unwrap();
        assert_eq!(m.header.id, 0xabcd);
        assert_eq!(m.answers[0].name, name("www.a.test"));
        assert_eq!(m.answers[0].data, RData::Cname(name("cdn.a.test")));
        assert_eq!(m.answers[1].name, name("cdn.a.test"));
        assert_eq!(m.answers[1].data, RData::A(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(m.answers[1].ttl, 300);
    }

    #[test]
    fn pointers_must_point_backwards() {
        // The question's name a pointer to itself.
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(Message::parse(&b), Err(Error::BadPointer));
        // Forward, past itself.
        b[13] = 14;
        assert_eq!(Message::parse(&b), Err(Error::BadPointer));
        // A label, then a pointer back to that label: a loop.
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(Message::parse(&b), Err(Error::BadPointer));
        // Two names pointing at each other: the first one's pointer goes
        // forward.
        let mut b = vec![0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[1, b'a', 0xc0, 20, 0, 1, 0, 1]);
        b.extend_from_slice(&[1, b'b', 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(Message::parse(&b), Err(Error::BadPointer));
        // A pointer cut in half.
        let b = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0];
        assert_eq!(Message::parse(&b), Err(Error::Truncated));
    }

    #[test]
    fn reserved_label_kinds_are_refused() {
        for kind in [0x40u8, 0x80] {
            let b = [
                0,
                1,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                kind | 1,
                b'a',
                0,
                0,
                1,
                0,
                1,
            ];
            assert_eq!(Message::parse(&b), Err(Error::BadLabel));
        }
    }

    #[test]
    fn names_over_255_bytes_are_refused() {
        // Directly: four labels of 63.
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..4 {
            b.push(63);
            b.extend_from_slice(&[b'x'; 63]);
        }
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(Message::parse(&b), Err(Error::NameTooLong));
        // Through pointers: each question one label and a pointer to the
        // one before; the fourth adds up to 257 bytes.
        let mut b = vec![0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0];
        let mut prev = None::<usize>;
        for _ in 0..4 {
            let at = b.len();
            b.push(63);
            b.extend_from_slice(&[b'y'; 63]);
            match prev {
                Some(p) => b.extend_from_slice(&[0xc0 | (p >> 8) as u8, p as u8]),
                None => b.push(0),
            }
            b.extend_from_slice(&[0, 1, 0, 1]);
            prev = Some(at);
        }
        assert_eq!(Message::parse(&b), Err(Error::NameTooLong));
        b[5] = 3; // three questions: 193 bytes, fine
        assert_eq!(Message::parse(&b).unwrap().questions.len(), 3);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for full in [response().emit().unwrap(), compressed()] {
            for len in 0..full.len() {
                assert!(Message::parse(&full[..len]).is_err(), "{len}");
            }
            // Bytes after the last record are ignored.
            let mut more = full.clone();
            more.extend_from_slice(b"trailing");
            assert_eq!(Message::parse(&more), Message::parse(&full));
        }
    }

    #[test]
    fn data_must_fit_its_type() {
        let mut m = response();
        m.answers[1].data = RData::Other(vec![1, 2, 3, 4, 5]);
        m.answers[1].rtype = TYPE_A;
        assert_eq!(
            Message::parse(&m.emit().unwrap()),
            Err(Error::BadRdata(TYPE_A))
        );
        // A CNAME target shorter than its data length.
        let mut m = response();
        let mut target = name("edge.cdn.test").wire_with_root();
        target.push(0);
        m.answers[0].data = RData::Other(target);
        m.answers[0].rtype = TYPE_CNAME;
        assert_eq!(
            Message::parse(&m.emit().unwrap()),
            Err(Error::BadRdata(TYPE_CNAME))
        );
        // Longer: the name runs past the data into the next record.
        let mut b = compressed();
        let len_at = 12 + 16 + 2 + 2 + 2 + 4 + 1; // low byte of the first answer's
        assert_eq!(b[len_at], 6);
        b[len_at] = 5;
        assert_eq!(Message::parse(&b), Err(Error::BadRdata(TYPE_CNAME)));
        b[len_at] = 7;
        assert_eq!(Message::parse(&b), Err(Error::BadRdata(TYPE_CNAME)));
    }

    #[test]
    fn opt_only_once_and_only_among_the_additionals() {
        let opt = response().edns.unwrap();
        let mut m = response();
        m.answers.push(opt.clone());
        assert_eq!(Message::parse(&m.emit().unwrap()), Err(Error::MisplacedOpt));
        let mut m = response();
        m.additionals.push(opt);
        assert_eq!(Message::parse(&m.emit().unwrap()), Err(Error::MisplacedOpt));
    }

    /// [`response`] built by hickory-proto (which compresses names).
    fn hickory_response() -> hop::Message {
        let n = |s: &str| hrr::Name::from_ascii(s).unwrap();
        let mut m = hop::Message::new(0x1234, hop::MessageType::Response, hop::OpCode::Query);
        m.metadata.recursion_desired = true;
        m.metadata.recursion_available = true;
        m.add_query(hop::Query::query(n("www.garden.test."), hrr::RecordType::A));
        let cname = hrr::RData::CNAME(hrr::rdata::CNAME(n("edge.cdn.test.")));
        m.add_answer(hrr::Record::from_rdata(n("www.garden.test."), 60, cname));
        let a = hrr::RData::A(hrr::rdata::A(Ipv4Addr::new(198, 51, 100, 7)));
        m.add_answer(hrr::Record::from_rdata(n("edge.cdn.test."), 300, a));
        m
    }

    #[test]
    fn decodes_what_hickory_encodes() {
        let b = hickory_response().to_vec().unwrap();
        let m = Message::parse(&b).unwrap();
        let mut want = response();
        want.answers.truncate(2);
        want.authorities.clear();
        want.additionals.clear();
        want.edns = None;
        assert_eq!(m, want);
        // hickory compressed the names; they came out whole.
        assert!(b.len() < want.emit().unwrap().len());
    }

    #[test]
    fn hickory_decodes_what_this_encodes() {
        let b = response().emit().unwrap();
        let h = hop::Message::from_vec(&b).unwrap();
        assert_eq!(h.metadata.id, 0x1234);
        assert_eq!(h.metadata.message_type, hop::MessageType::Response);
        assert!(h.metadata.recursion_desired && h.metadata.recursion_available);
        assert_eq!(h.queries.len(), 1);
        assert_eq!(h.queries[0].name().to_ascii(), "www.garden.test.");
        assert_eq!(h.queries[0].query_type(), hrr::RecordType::A);
        let answers: Vec<(String, u32, String)> = h
            .answers
            .iter()
            .map(|r| (r.name.to_ascii(), r.ttl, r.data.to_string()))
            .collect();
        assert_eq!(
            answers,
            vec![
                ("www.garden.test.".into(), 60, "edge.cdn.test.".into()),
                ("edge.cdn.test.".into(), 300, "198.51.100.7".into()),
                ("edge.cdn.test.".into(), 300, "2001:db8::1".into()),
            ]
        );
        assert_eq!(h.authorities[0].data.to_string(), "ns.cdn.test.");
        assert_eq!(h.additionals.len(), 1);
        assert_eq!(h.edns.as_ref().unwrap().max_payload(), 1232);
        // And a query, as the shell's resolver sends it.
        let q = Message::query(9, name("portal.partner.test"), TYPE_A)
            .emit()
            .unwrap();
        let h = hop::Message::from_vec(&q).unwrap();
        assert_eq!(h.metadata.message_type, hop::MessageType::Query);
        assert!(h.metadata.recursion_desired);
        assert_eq!(h.queries[0].name().to_ascii(), "portal.partner.test.");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let real = [response().emit().unwrap(), compressed()];
        for i in 0..6000u32 {
            let mut b = match i % 3 {
                0 | 1 => real[(i % 2) as usize].clone(),
                _ => vec![0u8; (next() % 600) as usize],
            };
            for _ in 0..(next() % 8) {
                if !b.is_empty() {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
            }
            if let Ok(m) = Message::parse(&b) {
                // Whatever decodes encodes and decodes back the same.
                assert_eq!(Message::parse(&m.emit().unwrap()), Ok(m));
            }
        }
    }
}
