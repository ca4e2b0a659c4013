//! DNS of unauthorized clients: which queries may leave, and which answers
//! may teach the walled garden.
//!
//! Every UDP query a client sends to a DNS server before login is parsed and
//! remembered for a few seconds as a *pending query*, keyed by the client's
//! address and port, the server's address and the DNS id, with its
//! (lowercase) question. An answer coming back counts only if it matches
//! such a pending query exactly — same tuple, same id, same question — and
//! it consumes it. Only a matched answer may widen the walled garden, and
//! then only with the A records of the question's own name and of the CNAME
//! chain that starts there.
//!
//! lassi also replaces the query's source port and DNS id with random ones
//! of its own on the way out (and puts the client's back on the answer), so
//! not even the client knows what an answer must carry: a guest cannot ask
//! and have an accomplice outside forge the answer ("behind NAT the
//! attacker's own query opens the mapping"). A forged answer must guess 32
//! random bits within a few seconds, for a question the client really
//! asked — and even then it can only add addresses for the name the
//! operator put in the garden.
//!
//! With `portal.any_dns` the same table is the whole gate: only well-formed
//! queries leave (rate-limited per client) and only answers to them come
//! back, so UDP/53 is no tunnel for arbitrary datagrams.
//!
//! Queries over IPv6 (a guest asking the `lan.ipv6.dns` servers handed out
//! in the RA and DHCPv6) are tracked and rewritten exactly the same way:
//! the table is keyed by addresses of either family, and [`rewrite`] takes
//! the offset of the UDP header, whatever precedes it.

use core::net::{IpAddr, Ipv6Addr};
use std::collections::HashMap;

use super::DropReason;
use crate::session::FastBuildHasher;
use crate::wire::checksum::update16;
use crate::wire::dns::{Message, Name, RData, OPCODE_QUERY, TYPE_A, TYPE_AAAA};
use crate::wire::frame::Ipv4Summary;
use crate::wire::ipv6::Ipv6Summary;
use crate::UnixMillis;

/// A pending query is forgotten after this long (resolvers retry sooner).
const PENDING_MS: u64 = 10_000;
/// Most queries one client may have pending at once.
const MAX_PENDING_PER_CLIENT: usize = 16;
/// Most pending queries gateway-wide.
const MAX_PENDING: usize = 4096;
/// Queries per second one client may send to servers other than the
/// configured ones (`portal.any_dns`).
const ANY_DNS_QUERIES_PER_SECOND: u32 = 20;
/// A real query is small: a header, one question, maybe an EDNS record.
const MAX_QUERY_LEN: usize = 512;
/// CNAME links followed from the question's name at most.
const MAX_CNAME_CHAIN: usize = 8;

/// The question of a DNS message, normalised for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// Lowercase name without the trailing dot.
    pub name: String,
    /// Query type (1 = A).
    pub qtype: u16,
}

/// Lowercase, without the root dot: the form names are compared in.
pub fn normalize(name: &Name) -> String {
    name.normalized()
}

/// Parse a datagram as a plain DNS query: QR=0, opcode QUERY, exactly one
/// question, no answer or authority records, at most an EDNS record in
/// addition, and a sane size. Returns its id and question.
pub fn parse_query(payload: &[u8]) -> Option<(u16, Question)> {
    if payload.len() > MAX_QUERY_LEN {
        return None;
    }
    let msg = Message::parse(payload).ok()?;
    let h = &msg.header;
    if h.is_response() || h.opcode() != OPCODE_QUERY {
        return None;
    }
    if msg.questions.len() != 1
        || !msg.answers.is_empty()
        || !msg.authorities.is_empty()
        || !msg.additionals.is_empty()
    {
        return None;
    }
    let q = &msg.questions[0];
    let question = Question {
        name: normalize(&q.name),
        qtype: q.qtype,
    };
    Some((h.id, question))
}

/// Parse a datagram as the response to `question` (QR=1, same question).
fn parse_answer(payload: &[u8], question: &Question) -> Option<Message> {
    let msg = Message::parse(payload).ok()?;
    if !msg.header.is_response() || msg.questions.len() != 1 {
        return None;
    }
    let q = &msg.questions[0];
    (q.qtype == question.qtype && normalize(&q.name) == question.name).then_some(msg)
}

/// The addresses a matched answer may teach: A records (for an A
/// question) or AAAA records (for an AAAA question) owned by the question's
/// name or by a name the CNAME chain from it reaches, with their TTLs.
/// Records about any other name are ignored, whatever the answer claims.
pub fn chain_addresses(msg: &Message, question: &Question) -> Vec<(IpAddr, u32)> {
    if question.qtype != TYPE_A && question.qtype != TYPE_AAAA {
        return Vec::new();
    }
    let want_a = question.qtype == TYPE_A;
    let mut found = Vec::new();
    let mut current = question.name.clone();
    for _ in 0..=MAX_CNAME_CHAIN {
        let mut next = None;
        for r in msg.answers.iter().filter(|r| normalize(&r.name) == current) {
            match &r.data {
                RData::A(a) if want_a => found.push(((*a).into(), r.ttl)),
                RData::Other(raw) if !want_a && r.rtype == TYPE_AAAA => {
                    if let Ok(o) = <[u8; 16]>::try_from(raw.as_slice()) {
                        found.push((Ipv6Addr::from(o).into(), r.ttl));
                    }
                }
                RData::Cname(c) if next.is_none() => next = Some(normalize(c)),
                _ => {}
            }
        }
        match next {
            Some(n) if n != current => current = n,
            _ => break,
        }
    }
    found
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    client: IpAddr,
    client_port: u16,
    server: IpAddr,
    id: u16,
}

#[derive(Debug)]
struct Pending {
    question: Question,
    expires: UnixMillis,
    /// The client's own port and id, put back on the answer.
    client_port: u16,
    id: u16,
}

/// An answer that matched its pending query.
#[derive(Debug)]
pub struct Matched {
    /// The answer.
    pub msg: Message,
    /// The question it answers.
    pub question: Question,
    /// The client's own port, to put back as the destination port.
    pub client_port: u16,
    /// The client's own DNS id, to put back in the answer.
    pub id: u16,
}

/// What lassi wrote into a query it forwards (see [`rewrite`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The source port now.
    pub port: u16,
    /// The DNS id now.
    pub id: u16,
}

/// Which port of a UDP header [`rewrite`] replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// A query going out: its source port.
    Source,
    /// An answer coming back: its destination port.
    Destination,
}

/// Replace one port and the DNS id of a UDP packet, IPv4 or IPv6 (`ihl`:
/// the offset of its UDP header, i.e. the IPv4 header length or the end of
/// the IPv6 header chain; the payload must hold at least a DNS header),
/// keeping the UDP checksum right. A `partial` checksum (offload seed) covers only the
/// pseudo-header and is left alone; a zero one means "none" and stays so.
pub fn rewrite(ip: &mut [u8], ihl: usize, which: Port, port: u16, id: u16, partial: bool) {
    let port_at = match which {
        Port::Source => ihl,
        Port::Destination => ihl + 2,
    };
    let (csum_at, id_at) = (ihl + 6, ihl + 8);
    if ip.len() < id_at + 2 {
        return;
    }
    let read = |ip: &[u8], at: usize| u16::from_be_bytes([ip[at], ip[at + 1]]);
    let (old_port, old_id) = (read(ip, port_at), read(ip, id_at));
    ip[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    ip[id_at..id_at + 2].copy_from_slice(&id.to_be_bytes());
    let csum = read(ip, csum_at);
    if partial || csum == 0 {
        return;
    }
    let mut c = update16(csum, old_port, port, false);
    c = update16(c, old_id, id, false);
    if c == 0 {
        c = 0xffff; // 0 would mean "no checksum"
    }
    ip[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
}

#[derive(Debug, Default)]
struct PerClient {
    pending: usize,
    window: UnixMillis,
    in_window: u32,
}

/// Where a DNS datagram between a client and a server stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The guest's address (IPv4, or one of its IPv6 addresses).
    pub client: IpAddr,
    /// The guest's UDP port.
    pub client_port: u16,
    /// The DNS server's address (port 53), of the same family.
    pub server: IpAddr,
}

/// Pending queries of unauthorized clients (owned by the engine).
#[derive(Debug, Default)]
pub struct DnsTracker {
    pending: HashMap<Key, Pending, FastBuildHasher>,
    clients: HashMap<IpAddr, PerClient, FastBuildHasher>,
    unmatched_answers: u64,
    /// splitmix64 state, seeded by the shell from the kernel's randomness.
    /// Its outputs only ever leave toward the DNS server, never to the
    /// guest, who therefore cannot predict them.
    rng: u64,
}

impl DnsTracker {
    /// Seed the generator of rewritten ports and ids.
    pub fn seed(&mut self, seed: u64) {
        self.rng = seed;
    }

    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A fresh (port, id) for a query of `client` to `server`: a port above
    /// 1023 and an id, not in use by another pending query.
    fn fresh_key(&mut self, client: IpAddr, server: IpAddr) -> Key {
        loop {
            let r = self.next_random();
            let key = Key {
                client,
                client_port: 1024 + (r as u16) % (65535 - 1023),
                server,
                id: (r >> 16) as u16,
            };
            if !self.pending.contains_key(&key) {
                return key;
            }
        }
    }

    /// A query from a client. `strict` is for servers the operator did not
    /// configure (`any_dns`): then only a well-formed query within the
    /// client's rate passes. To a configured server everything passes (it
    /// is the operator's own resolver), but only well-formed queries are
    /// remembered.
    ///
    /// A remembered query gets a fresh source port and id, returned for the
    /// caller to write into the packet ([`rewrite`]).
    pub fn query(
        &mut self,
        now: UnixMillis,
        x: Exchange,
        payload: &[u8],
        strict: bool,
    ) -> Result<Option<Rewrite>, DropReason> {
        let Some((id, question)) = parse_query(payload) else {
            return if strict {
                Err(DropReason::DnsNotQuery)
            } else {
                Ok(None)
            };
        };
        let c = self.clients.entry(x.client).or_default();
        if strict {
            if now >= c.window + 1000 {
                c.window = now;
                c.in_window = 0;
            }
            c.in_window += 1;
            if c.in_window > ANY_DNS_QUERIES_PER_SECOND {
                return Err(DropReason::DnsRateLimited);
            }
        }
        if c.pending >= MAX_PENDING_PER_CLIENT || self.pending.len() >= MAX_PENDING {
            // Full: a resolver retrying is not held up, but its answer will
            // teach nothing; a tunnel through any_dns gets no further.
            return if strict {
                Err(DropReason::DnsRateLimited)
            } else {
                Ok(None)
            };
        }
        c.pending += 1;
        let key = self.fresh_key(x.client, x.server);
        self.pending.insert(
            key,
            Pending {
                question,
                expires: now + PENDING_MS,
                client_port: x.client_port,
                id,
            },
        );
        Ok(Some(Rewrite {
            port: key.client_port,
            id: key.id,
        }))
    }

    /// An answer from a server to a client: the parsed message and its
    /// question when it matches a pending query (which it consumes), else
    /// `None`.
    pub fn answer(&mut self, now: UnixMillis, x: Exchange, payload: &[u8]) -> Option<Matched> {
        let matched = self.match_answer(now, x, payload);
        if matched.is_none() {
            self.unmatched_answers += 1;
        }
        matched
    }

    /// A UDP packet from port 53 to a guest who has logged in since its
    /// query (`p` summarises `packet`): if it answers a pending query, the
    /// guest's own port and id go back on, or its resolver would not take
    /// it. It teaches nothing, and counts nowhere when it matches nothing.
    pub fn late_answer(
        &mut self,
        now: UnixMillis,
        p: &Ipv4Summary,
        packet: &mut [u8],
        partial: bool,
    ) {
        if self.pending.is_empty() {
            return; // the fast path's common case: no look-up
        }
        let x = Exchange {
            client: p.dst.into(),
            client_port: p.dst_port,
            server: p.src.into(),
        };
        if let Some(m) = self.match_answer(now, x, &packet[p.ihl + 8..p.total_len]) {
            rewrite(
                packet,
                p.ihl,
                Port::Destination,
                m.client_port,
                m.id,
                partial,
            );
        }
    }

    /// [`DnsTracker::late_answer`] for a UDP/IPv6 packet from port 53 (`s`
    /// summarises `packet`, `ports` are its UDP ports).
    pub fn late_answer6(
        &mut self,
        now: UnixMillis,
        s: &Ipv6Summary,
        ports: (u16, u16),
        packet: &mut [u8],
        partial: bool,
    ) {
        if self.pending.is_empty() {
            return;
        }
        let x = Exchange {
            client: s.dst.into(),
            client_port: ports.1,
            server: s.src.into(),
        };
        let Some(payload) = packet.get(s.upper_offset + 8..s.end) else {
            return;
        };
        if let Some(m) = self.match_answer(now, x, payload) {
            let at = s.upper_offset;
            rewrite(packet, at, Port::Destination, m.client_port, m.id, partial);
        }
    }

    fn match_answer(&mut self, now: UnixMillis, x: Exchange, payload: &[u8]) -> Option<Matched> {
        let id = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
        let key = Key {
            client: x.client,
            client_port: x.client_port,
            server: x.server,
            id,
        };
        let p = self.pending.get(&key)?;
        if p.expires <= now {
            return None;
        }
        // A malformed or mismatching packet with a guessed id leaves the
        // entry for the real answer.
        let msg = parse_answer(payload, &p.question)?;
        let p = self.pending.remove(&key)?;
        self.release(x.client);
        Some(Matched {
            msg,
            question: p.question,
            client_port: p.client_port,
            id: p.id,
        })
    }

    fn release(&mut self, client: IpAddr) {
        if let Some(c) = self.clients.get_mut(&client) {
            c.pending = c.pending.saturating_sub(1);
        }
    }

    /// Forget queries nobody answered in time.
    pub fn expire(&mut self, now: UnixMillis) {
        let clients = &mut self.clients;
        self.pending.retain(|k, p| {
            let keep = p.expires > now;
            if !keep {
                if let Some(c) = clients.get_mut(&k.client) {
                    c.pending = c.pending.saturating_sub(1);
                }
            }
            keep
        });
        clients.retain(|_, c| c.pending > 0 || now < c.window + 1000);
    }

    /// Queries waiting for their answer.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Answers from DNS servers to unauthorized clients that matched no
    /// pending query (delivered from configured servers, dropped from
    /// others; neither teaches the walled garden).
    pub fn unmatched_answers(&self) -> u64 {
        self.unmatched_answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    // Messages are built by hickory-proto, an independent codec, and
    // parsed by lassi's (`wire::dns`).
    use hickory_proto::op::{Message as HMessage, MessageType, OpCode, Query};
    use hickory_proto::rr::{rdata, Name as HName, RData as HRData, Record, RecordType};

    const T0: UnixMillis = 1_000_000;
    const C: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
    const S: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);

    fn x(port: u16) -> Exchange {
        Exchange {
            client: C.into(),
            client_port: port,
            server: S.into(),
        }
    }

    fn query(id: u16, name: &str, t: RecordType) -> Vec<u8> {
        let mut m = HMessage::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(HName::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn answer(id: u16, name: &str, records: Vec<Record>) -> Vec<u8> {
        let mut m = HMessage::new(id, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(
            HName::from_ascii(name).unwrap(),
            RecordType::A,
        ));
        for r in records {
            m.add_answer(r);
        }
        m.to_vec().unwrap()
    }

    fn a(name: &str, ip: [u8; 4], ttl: u32) -> Record {
        Record::from_rdata(
            HName::from_ascii(name).unwrap(),
            ttl,
            HRData::A(rdata::A(ip.into())),
        )
    }

    fn cname(name: &str, target: &str) -> Record {
        Record::from_rdata(
            HName::from_ascii(name).unwrap(),
            60,
            HRData::CNAME(rdata::CNAME(HName::from_ascii(target).unwrap())),
        )
    }

    #[test]
    fn names_compare_without_case_or_root_dot() {
        let a = normalize(&Name::from_dotted("Portal.Partner.test").unwrap());
        let b = normalize(&Name::from_dotted("portal.partner.TEST.").unwrap());
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("portal.partner.test", "portal.partner.test")
        );
    }

    #[test]
    fn only_plain_queries_parse_as_queries() {
        let (id, q) = parse_query(&query(7, "WWW.Garden.Test.", RecordType::A)).unwrap();
        assert_eq!((id, q.name.as_str(), q.qtype), (7, "www.garden.test", 1));
        assert!(
            parse_query(&answer(7, "x.test", vec![])).is_none(),
            "a response"
        );
        assert!(parse_query(b"hello, this is no dns").is_none());
        assert!(parse_query(&[0u8; 12]).is_none(), "no question");
        let mut big = query(7, "x.test", RecordType::A);
        big.resize(MAX_QUERY_LEN + 1, 0);
        assert!(parse_query(&big).is_none(), "oversized");
    }

    /// Send a query from port 5000 (id `id`); returns the exchange and id
    /// an answer must carry (lassi's own port and id).
    fn ask(t: &mut DnsTracker, id: u16, name: &str) -> (Exchange, u16) {
        let rw = t
            .query(T0, x(5000), &query(id, name, RecordType::A), false)
            .unwrap()
            .expect("remembered");
        (x(rw.port), rw.id)
    }

    #[test]
    fn an_answer_counts_only_for_its_own_pending_query() {
        let mut t = DnsTracker::default();
        t.seed(42);
        let name = "www.garden.test";
        let records = || vec![a(name, [1, 2, 3, 4], 60)];
        // Unsolicited.
        assert!(t.answer(T0, x(5000), &answer(9, name, records())).is_none());
        let (wire, id) = ask(&mut t, 9, name);
        // What the client used (port 5000, id 9) is not what lassi sent.
        assert!(t.answer(T0, x(5000), &answer(9, name, records())).is_none());
        // Wrong port, wrong server, wrong id, wrong question: no match, and
        // the pending entry survives them.
        let reply = answer(id, name, records());
        assert!(t.answer(T0, x(wire.client_port ^ 1), &reply).is_none());
        let other_server = Exchange {
            server: Ipv4Addr::new(198, 51, 100, 54).into(),
            ..wire
        };
        assert!(t.answer(T0, other_server, &reply).is_none());
        let wrong_id = answer(id.wrapping_add(1), name, vec![]);
        assert!(t.answer(T0, wire, &wrong_id).is_none());
        assert!(t
            .answer(T0, wire, &answer(id, "evil.garden.test", vec![]))
            .is_none());
        let mut garbage = id.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"garbage");
        assert!(t.answer(T0, wire, &garbage).is_none());
        assert_eq!(t.unmatched_answers(), 7);
        let m = t.answer(T0 + 100, wire, &reply).expect("matches");
        assert_eq!(m.question.name, "www.garden.test");
        assert_eq!(
            (m.client_port, m.id),
            (5000, 9),
            "the client's own, to put back"
        );
        // Consumed: a replay teaches nothing.
        assert!(t.answer(T0 + 200, wire, &reply).is_none());
        assert_eq!(t.pending_count(), 0);
    }

    #[test]
    fn rewritten_ports_and_ids_vary_and_keep_the_checksum() {
        let mut t = DnsTracker::default();
        t.seed(7);
        let draws: std::collections::HashSet<(u16, u16)> = (0..16)
            .map(|i| {
                let (w, id) = ask(&mut t, i, "a.test");
                assert!(w.client_port >= 1024);
                (w.client_port, id)
            })
            .collect();
        assert_eq!(draws.len(), 16);
        // A real UDP/IPv4 packet: its checksum stays valid.
        let payload = query(9, "a.test", RecordType::A);
        let a = crate::wire::frame::UdpAddressing {
            src_mac: crate::wire::MacAddr([2, 0, 0, 0, 1, 1]),
            dst_mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
            src_ip: C,
            dst_ip: S,
            src_port: 5000,
            dst_port: 53,
        };
        let frame = crate::wire::frame::udp_frame(&a, &payload);
        let mut ip = frame[14..].to_vec();
        rewrite(&mut ip, 20, Port::Source, 40000, 0xbeef, false);
        let mut b = a;
        b.src_port = 40000;
        let mut p2 = payload.clone();
        p2[..2].copy_from_slice(&0xbeefu16.to_be_bytes());
        assert_eq!(ip, crate::wire::frame::udp_frame(&b, &p2)[14..].to_vec());
    }

    #[test]
    fn an_offload_seed_and_a_missing_checksum_are_left_alone() {
        let mut ip = vec![0u8; 40];
        ip[20 + 6..20 + 8].copy_from_slice(&0x1234u16.to_be_bytes());
        rewrite(&mut ip, 20, Port::Destination, 5353, 7, true);
        assert_eq!(
            &ip[26..28],
            &0x1234u16.to_be_bytes(),
            "seed: pseudo-header only"
        );
        assert_eq!(&ip[22..24], &5353u16.to_be_bytes());
        assert_eq!(&ip[28..30], &7u16.to_be_bytes());
        ip[26..28].copy_from_slice(&[0, 0]);
        rewrite(&mut ip, 20, Port::Source, 1, 2, false);
        assert_eq!(&ip[26..28], &[0, 0], "no checksum stays none");
        // Too short for a DNS id: untouched.
        let mut short = vec![0u8; 29];
        rewrite(&mut short, 20, Port::Source, 1, 2, false);
        assert_eq!(short, vec![0u8; 29]);
    }

    #[test]
    fn pending_queries_expire() {
        let mut t = DnsTracker::default();
        let (wire, id) = ask(&mut t, 1, "a.test");
        let reply = answer(id, "a.test", vec![]);
        assert!(t.answer(T0 + PENDING_MS, wire, &reply).is_none());
        t.expire(T0 + PENDING_MS);
        assert_eq!(t.pending_count(), 0);
        assert!(t.clients.is_empty(), "per-client state goes too");
    }

    #[test]
    fn pending_queries_are_bounded_per_client_and_in_total() {
        let mut t = DnsTracker::default();
        for i in 0..40u16 {
            let r = t.query(T0, x(6000 + i), &query(i, "a.test", RecordType::A), false);
            assert!(r.is_ok(), "configured servers get every query");
            assert_eq!(r.unwrap().is_some(), i < 16, "remembered up to the bound");
        }
        assert_eq!(t.pending_count(), MAX_PENDING_PER_CLIENT);
        // Strict (any_dns): over the bound is refused.
        let r = t.query(T0, x(7000), &query(1, "a.test", RecordType::A), true);
        assert_eq!(r, Err(DropReason::DnsRateLimited));
        // Another client has its own room...
        let other = |n: u32| Exchange {
            client: Ipv4Addr::from(0x0a01_0000 + n).into(),
            ..x(5000)
        };
        assert!(t
            .query(T0, other(1), &query(1, "a.test", RecordType::A), true)
            .is_ok_and(|r| r.is_some()));
        // ...until the table is full.
        for n in 2..1000 {
            for i in 0..16 {
                let _ = t.query(T0, other(n), &query(i, "a.test", RecordType::A), false);
            }
        }
        assert_eq!(t.pending_count(), MAX_PENDING);
    }

    #[test]
    fn any_dns_passes_only_queries_at_a_bounded_rate() {
        let mut t = DnsTracker::default();
        assert_eq!(
            t.query(T0, x(5000), b"not dns at all, a vpn packet", true),
            Err(DropReason::DnsNotQuery)
        );
        assert_eq!(t.query(T0, x(5000), b"whatever", false), Ok(None));
        let mut passed = 0;
        for i in 0..100u16 {
            let q = query(i, "a.test", RecordType::A);
            if let Ok(Some(rw)) = t.query(T0, x(5000), &q, true) {
                passed += 1;
                // Answered at once, so the pending bound is not what limits.
                let reply = answer(rw.id, "a.test", vec![]);
                assert!(t.answer(T0, x(rw.port), &reply).is_some());
            }
        }
        assert_eq!(passed, ANY_DNS_QUERIES_PER_SECOND);
        let q = query(500, "a.test", RecordType::A);
        assert!(t.query(T0 + 1000, x(5000), &q, true).is_ok());
    }

    #[test]
    fn only_the_question_and_its_cname_chain_teach() {
        let q = Question {
            name: "www.garden.test".into(),
            qtype: 1,
        };
        let msg = Message::parse(&answer(
            1,
            "www.garden.test",
            vec![
                a("evil.attacker.test", [198, 51, 100, 1], 86400),
                cname("WWW.garden.test", "edge.cdn.test"),
                cname("edge.cdn.test", "node.cdn.test"),
                a("node.cdn.test", [198, 51, 100, 7], 300),
                a("unrelated.cdn.test", [198, 51, 100, 8], 300),
            ],
        ))
        .unwrap();
        assert_eq!(
            chain_addresses(&msg, &q),
            vec![(Ipv4Addr::new(198, 51, 100, 7).into(), 300)]
        );
        // An AAAA question: A records teach nothing.
        let aaaa = Question { qtype: 28, ..q };
        assert!(chain_addresses(&msg, &aaaa).is_empty());
    }

    #[test]
    fn aaaa_answers_teach_ipv6_addresses_along_the_chain() {
        let q = Question {
            name: "www.garden.test".into(),
            qtype: 28,
        };
        let v6 = |name: &str, last: u16, ttl| {
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, last);
            Record::from_rdata(
                HName::from_ascii(name).unwrap(),
                ttl,
                HRData::AAAA(rdata::AAAA(ip)),
            )
        };
        let msg = Message::parse(&answer(
            1,
            "www.garden.test",
            vec![
                v6("evil.attacker.test", 1, 86400),
                cname("www.garden.test", "node.cdn.test"),
                v6("node.cdn.test", 7, 300),
                a("node.cdn.test", [198, 51, 100, 7], 300),
            ],
        ))
        .unwrap();
        let want = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 7);
        assert_eq!(chain_addresses(&msg, &q), vec![(want.into(), 300)]);
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic noise, plus mutations of a real exchange.
        let mut t = DnsTracker::default();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let real = answer(
            3,
            "www.garden.test",
            vec![cname("www.garden.test", "a.cdn.test")],
        );
        for i in 0..2000u32 {
            let mut b = if i % 2 == 0 {
                real.clone()
            } else {
                vec![0u8; (next() % 600) as usize]
            };
            for _ in 0..(next() % 8) {
                if !b.is_empty() {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
            }
            if let Ok(Some(rw)) = t.query(T0, x(5000), &b, i % 3 == 0) {
                b[..2].copy_from_slice(&rw.id.to_be_bytes());
                if let Some(m) = t.answer(T0, x(rw.port), &b) {
                    let _ = chain_addresses(&m.msg, &m.question);
                }
            }
            let _ = t.answer(T0, x(5000), &b);
        }
        t.expire(T0 + PENDING_MS);
        assert_eq!(t.pending_count(), 0);
    }

    #[test]
    fn cname_loops_end() {
        let q = Question {
            name: "a.test".into(),
            qtype: 1,
        };
        let msg = Message::parse(&answer(
            1,
            "a.test",
            vec![cname("a.test", "b.test"), cname("b.test", "a.test")],
        ))
        .unwrap();
        assert!(chain_addresses(&msg, &q).is_empty());
    }
}
