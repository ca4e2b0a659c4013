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
//! A forged, unsolicited answer (finding 1 of issue 8) therefore teaches
//! nothing: it must guess a port and id the client really used, for a
//! question the client really asked, within a few seconds — and even then
//! it can only add addresses for the name the operator put in the garden.
//!
//! With `portal.any_dns` the same table is the whole gate: only well-formed
//! queries leave (rate-limited per client) and only answers to them come
//! back, so UDP/53 is no tunnel for arbitrary datagrams.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::DropReason;
use crate::session::FastBuildHasher;
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
    let mut n = name.to_lowercase().to_ascii();
    if n.ends_with('.') {
        n.pop();
    }
    n
}

/// Parse a datagram as a plain DNS query: QR=0, opcode QUERY, exactly one
/// question, no answer or authority records, at most an EDNS record in
/// addition, and a sane size. Returns its id and question.
pub fn parse_query(payload: &[u8]) -> Option<(u16, Question)> {
    if payload.len() > MAX_QUERY_LEN {
        return None;
    }
    let msg = Message::from_vec(payload).ok()?;
    let md = &msg.metadata;
    if md.message_type != MessageType::Query || md.op_code != OpCode::Query {
        return None;
    }
    if msg.queries.len() != 1
        || !msg.answers.is_empty()
        || !msg.authorities.is_empty()
        || !msg.additionals.is_empty()
    {
        return None;
    }
    let q = &msg.queries[0];
    let question = Question {
        name: normalize(q.name()),
        qtype: u16::from(q.query_type()),
    };
    Some((md.id, question))
}

/// Parse a datagram as the response to `question` (QR=1, same question).
fn parse_answer(payload: &[u8], question: &Question) -> Option<Message> {
    let msg = Message::from_vec(payload).ok()?;
    if msg.metadata.message_type != MessageType::Response || msg.queries.len() != 1 {
        return None;
    }
    let q = &msg.queries[0];
    (u16::from(q.query_type()) == question.qtype && normalize(q.name()) == question.name)
        .then_some(msg)
}

/// The addresses a matched answer may teach: A records owned by the
/// question's name or by a name the CNAME chain from it reaches, with their
/// TTLs. Records about any other name are ignored, whatever the answer
/// claims.
pub fn chain_addresses(msg: &Message, question: &Question) -> Vec<(Ipv4Addr, u32)> {
    if question.qtype != u16::from(RecordType::A) {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut current = question.name.clone();
    for _ in 0..=MAX_CNAME_CHAIN {
        let mut next = None;
        for r in msg.answers.iter().filter(|r| normalize(&r.name) == current) {
            match &r.data {
                RData::A(a) => found.push((a.0, r.ttl)),
                RData::CNAME(c) if next.is_none() => next = Some(normalize(&c.0)),
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
    client: Ipv4Addr,
    client_port: u16,
    server: Ipv4Addr,
    id: u16,
}

#[derive(Debug)]
struct Pending {
    question: Question,
    expires: UnixMillis,
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
    /// The guest's address.
    pub client: Ipv4Addr,
    /// The guest's UDP port.
    pub client_port: u16,
    /// The DNS server's address (port 53).
    pub server: Ipv4Addr,
}

/// Pending queries of unauthorized clients (owned by the engine).
#[derive(Debug, Default)]
pub struct DnsTracker {
    pending: HashMap<Key, Pending, FastBuildHasher>,
    clients: HashMap<Ipv4Addr, PerClient, FastBuildHasher>,
    unmatched_answers: u64,
}

impl DnsTracker {
    /// A query from a client. `strict` is for servers the operator did not
    /// configure (`any_dns`): then only a well-formed query within the
    /// client's rate passes. To a configured server everything passes (it
    /// is the operator's own resolver), but only well-formed queries are
    /// remembered.
    pub fn query(
        &mut self,
        now: UnixMillis,
        x: Exchange,
        payload: &[u8],
        strict: bool,
    ) -> Result<(), DropReason> {
        let Some((id, question)) = parse_query(payload) else {
            return if strict {
                Err(DropReason::DnsNotQuery)
            } else {
                Ok(())
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
        let key = Key {
            client: x.client,
            client_port: x.client_port,
            server: x.server,
            id,
        };
        let fresh = !self.pending.contains_key(&key);
        if fresh && (c.pending >= MAX_PENDING_PER_CLIENT || self.pending.len() >= MAX_PENDING) {
            // Full: a resolver retrying is not held up, but its answer will
            // teach nothing; a tunnel through any_dns gets no further.
            return if strict {
                Err(DropReason::DnsRateLimited)
            } else {
                Ok(())
            };
        }
        c.pending += usize::from(fresh);
        self.pending.insert(
            key,
            Pending {
                question,
                expires: now + PENDING_MS,
            },
        );
        Ok(())
    }

    /// An answer from a server to a client: the parsed message and its
    /// question when it matches a pending query (which it consumes), else
    /// `None`.
    pub fn answer(
        &mut self,
        now: UnixMillis,
        x: Exchange,
        payload: &[u8],
    ) -> Option<(Message, Question)> {
        let matched = self.match_answer(now, x, payload);
        if matched.is_none() {
            self.unmatched_answers += 1;
        }
        matched
    }

    fn match_answer(
        &mut self,
        now: UnixMillis,
        x: Exchange,
        payload: &[u8],
    ) -> Option<(Message, Question)> {
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
        Some((msg, p.question))
    }

    fn release(&mut self, client: Ipv4Addr) {
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
    use hickory_proto::op::Query;
    use hickory_proto::rr::{rdata, Record};

    const T0: UnixMillis = 1_000_000;
    const C: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
    const S: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);

    fn x(port: u16) -> Exchange {
        Exchange {
            client: C,
            client_port: port,
            server: S,
        }
    }

    fn query(id: u16, name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn answer(id: u16, name: &str, records: Vec<Record>) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        for r in records {
            m.add_answer(r);
        }
        m.to_vec().unwrap()
    }

    fn a(name: &str, ip: [u8; 4], ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            ttl,
            RData::A(rdata::A(ip.into())),
        )
    }

    fn cname(name: &str, target: &str) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::CNAME(rdata::CNAME(Name::from_ascii(target).unwrap())),
        )
    }

    #[test]
    fn names_compare_without_case_or_root_dot() {
        let a = normalize(&Name::from_ascii("Portal.Partner.test").unwrap());
        let b = normalize(&Name::from_ascii("portal.partner.TEST.").unwrap());
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

    #[test]
    fn an_answer_counts_only_for_its_own_pending_query() {
        let mut t = DnsTracker::default();
        let reply = answer(
            9,
            "www.garden.test",
            vec![a("www.garden.test", [1, 2, 3, 4], 60)],
        );
        // Unsolicited.
        assert!(t.answer(T0, x(5000), &reply).is_none());
        t.query(
            T0,
            x(5000),
            &query(9, "www.garden.test", RecordType::A),
            false,
        )
        .unwrap();
        // Wrong port, wrong server, wrong id, wrong question: no match, and
        // the pending entry survives them.
        assert!(t.answer(T0, x(5001), &reply).is_none());
        let other_server = Exchange {
            server: Ipv4Addr::new(198, 51, 100, 54),
            ..x(5000)
        };
        assert!(t.answer(T0, other_server, &reply).is_none());
        assert!(t
            .answer(T0, x(5000), &answer(10, "www.garden.test", vec![]))
            .is_none());
        assert!(t
            .answer(T0, x(5000), &answer(9, "evil.garden.test", vec![]))
            .is_none());
        assert!(t.answer(T0, x(5000), b"\x00\x09garbage").is_none());
        assert_eq!(t.unmatched_answers(), 6);
        let (_, q) = t.answer(T0 + 100, x(5000), &reply).expect("matches");
        assert_eq!(q.name, "www.garden.test");
        // Consumed: a replay teaches nothing.
        assert!(t.answer(T0 + 200, x(5000), &reply).is_none());
        assert_eq!(t.pending_count(), 0);
    }

    #[test]
    fn pending_queries_expire() {
        let mut t = DnsTracker::default();
        t.query(T0, x(5000), &query(1, "a.test", RecordType::A), false)
            .unwrap();
        let reply = answer(1, "a.test", vec![]);
        assert!(t.answer(T0 + PENDING_MS, x(5000), &reply).is_none());
        t.expire(T0 + PENDING_MS);
        assert_eq!(t.pending_count(), 0);
        assert!(t.clients.is_empty(), "per-client state goes too");
    }

    #[test]
    fn pending_queries_are_bounded_per_client() {
        let mut t = DnsTracker::default();
        for i in 0..40u16 {
            let r = t.query(T0, x(6000 + i), &query(i, "a.test", RecordType::A), false);
            assert_eq!(r, Ok(()), "configured servers get every query");
        }
        assert_eq!(t.pending_count(), MAX_PENDING_PER_CLIENT);
        // Strict (any_dns): over the bound is refused.
        let r = t.query(T0, x(7000), &query(1, "a.test", RecordType::A), true);
        assert_eq!(r, Err(DropReason::DnsRateLimited));
        // Another client has its own room.
        let other = Exchange {
            client: Ipv4Addr::new(10, 1, 0, 11),
            ..x(5000)
        };
        assert_eq!(
            t.query(T0, other, &query(1, "a.test", RecordType::A), true),
            Ok(())
        );
    }

    #[test]
    fn any_dns_passes_only_queries_at_a_bounded_rate() {
        let mut t = DnsTracker::default();
        assert_eq!(
            t.query(T0, x(5000), b"not dns at all, a vpn packet", true),
            Err(DropReason::DnsNotQuery)
        );
        assert_eq!(t.query(T0, x(5000), b"whatever", false), Ok(()));
        let mut passed = 0;
        for i in 0..100u16 {
            let q = query(i, "a.test", RecordType::A);
            if t.query(T0, x(5000), &q, true).is_ok() {
                passed += 1;
                // Answered at once, so the pending bound is not what limits.
                assert!(t
                    .answer(T0, x(5000), &answer(i, "a.test", vec![]))
                    .is_some());
            }
        }
        assert_eq!(passed, ANY_DNS_QUERIES_PER_SECOND);
        assert!(t
            .query(
                T0 + 1000,
                x(5000),
                &query(500, "a.test", RecordType::A),
                true
            )
            .is_ok());
    }

    #[test]
    fn only_the_question_and_its_cname_chain_teach() {
        let q = Question {
            name: "www.garden.test".into(),
            qtype: 1,
        };
        let msg = Message::from_vec(&answer(
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
            vec![(Ipv4Addr::new(198, 51, 100, 7), 300)]
        );
        // Not an A question: nothing.
        let aaaa = Question { qtype: 28, ..q };
        assert!(chain_addresses(&msg, &aaaa).is_empty());
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
            let _ = t.query(T0, x(5000), &b, i % 3 == 0);
            if let Some((m, q)) = t.answer(T0, x(5000), &b) {
                let _ = chain_addresses(&m, &q);
            }
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
        let msg = Message::from_vec(&answer(
            1,
            "a.test",
            vec![cname("a.test", "b.test"), cname("b.test", "a.test")],
        ))
        .unwrap();
        assert!(chain_addresses(&msg, &q).is_empty());
    }
}
