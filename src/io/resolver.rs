//! A minimal DNS stub resolver for the walled garden's host names. It asks
//! the LAN's own DNS servers (`lan.dns`), so lassi allows exactly the
//! addresses its guests will be given, whatever the gateway's resolv.conf
//! says. Ids and source ports are random (kernel randomness): a forged
//! answer would widen the garden.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::wire::dns::{Message, Name, RData, TYPE_A};

/// Addresses of `name` and the smallest TTL among them.
pub async fn resolve_a(
    server: Ipv4Addr,
    name: &str,
    timeout: Duration,
) -> Result<(Vec<Ipv4Addr>, u32), String> {
    let fqdn = Name::from_dotted(name).map_err(|e| format!("{name}: {e}"))?;
    // A random id and source port (32 unguessable bits, as a full resolver
    // would have): the answer widens the walled garden, so a forger must
    // not be able to hit it.
    let (id, port) = random_id_and_port();
    let bytes = Message::query(id, fqdn.clone(), TYPE_A)
        .emit()
        .map_err(|e| format!("{name}: {e}"))?;
    let sock = bind_random(port).await.map_err(|e| e.to_string())?;
    sock.connect(SocketAddr::from((server, 53)))
        .await
        .map_err(|e| e.to_string())?;
    sock.send(&bytes)
        .await
        .map_err(|e| format!("{name} via {server}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(timeout, sock.recv(&mut buf))
            .await
            .map_err(|_| format!("{name}: no answer from {server}"))?
            .map_err(|e| format!("{name} via {server}: {e}"))?;
        let Ok(reply) = Message::parse(&buf[..n]) else {
            continue;
        };
        if let Some(found) = addresses(&reply, id, &fqdn) {
            return found
                .map_err(|rcode| format!("{name}: {server} returned no address ({rcode})"));
        }
    }
}

/// What `reply` says about `fqdn`: `None` when it is not the response to
/// the query `id` (a stale answer to an earlier question, or a forgery);
/// else the addresses and their smallest TTL, or the response code's name
/// when it holds none.
fn addresses(
    reply: &Message,
    id: u16,
    fqdn: &Name,
) -> Option<Result<(Vec<Ipv4Addr>, u32), String>> {
    // `Name`'s equality ignores case, and neither side has a root dot.
    let same_question = reply.questions.len() == 1
        && reply.questions[0].qtype == TYPE_A
        && reply.questions[0].name == *fqdn;
    if reply.header.id != id || !reply.header.is_response() || !same_question {
        return None;
    }
    let mut ips = Vec::new();
    let mut ttl = u32::MAX;
    for r in &reply.answers {
        if let RData::A(a) = r.data {
            ips.push(a);
            ttl = ttl.min(r.ttl);
        }
    }
    if ips.is_empty() {
        return Some(Err(rcode_name(reply.header.rcode())));
    }
    Some(Ok((ips, ttl)))
}

/// The name of a response code as operators see it in logs.
fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NoError".into(),
        1 => "FormErr".into(),
        2 => "ServFail".into(),
        3 => "NXDomain".into(),
        4 => "NotImp".into(),
        5 => "Refused".into(),
        n => format!("rcode {n}"),
    }
}

fn random_id_and_port() -> (u16, u16) {
    let mut b = [0u8; 4];
    crate::io::sys::random_bytes(&mut b);
    let id = u16::from_ne_bytes([b[0], b[1]]);
    // Above the well-known and registered-by-habit ports.
    let port = 10_000 + u16::from_ne_bytes([b[2], b[3]]) % 55_000;
    (id, port)
}

/// A UDP socket on `port`, or on other random ports if it is taken; the
/// kernel's choice only when many are.
async fn bind_random(mut port: u16) -> std::io::Result<UdpSocket> {
    for _ in 0..8 {
        if let Ok(s) = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port))).await {
            return Ok(s);
        }
        port = random_id_and_port().1;
    }
    UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_ports_come_from_the_kernel_not_the_clock() {
        let draws: Vec<(u16, u16)> = (0..64).map(|_| random_id_and_port()).collect();
        let ids: std::collections::HashSet<u16> = draws.iter().map(|d| d.0).collect();
        let ports: std::collections::HashSet<u16> = draws.iter().map(|d| d.1).collect();
        // 64 draws of 16 bits: a repeat is rare, many repeats mean no randomness.
        assert!(ids.len() > 56 && ports.len() > 50, "{draws:?}");
        assert!(draws.iter().all(|d| d.1 >= 10_000));
    }

    fn reply(id: u16, asked: &str, records: &[(u32, [u8; 4])], rcode: u16) -> Message {
        use crate::wire::dns::{Record, CLASS_IN, FLAG_RESPONSE};
        let mut m = Message::query(id, Name::from_dotted(asked).unwrap(), TYPE_A);
        m.header.flags |= FLAG_RESPONSE | rcode;
        for &(ttl, ip) in records {
            m.answers.push(Record {
                name: Name::from_dotted(asked).unwrap(),
                rtype: TYPE_A,
                class: CLASS_IN,
                ttl,
                data: RData::A(ip.into()),
            });
        }
        m
    }

    #[test]
    fn only_the_answer_to_the_question_asked_counts() {
        let fqdn = Name::from_dotted("portal.partner.test").unwrap();
        let ok = reply(
            7,
            "Portal.Partner.TEST.",
            &[(300, [192, 0, 2, 1]), (60, [192, 0, 2, 2])],
            0,
        );
        let ips = vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
        assert_eq!(
            addresses(&ok, 7, &fqdn),
            Some(Ok((ips, 60))),
            "smallest TTL"
        );
        // Another id, another name, or a query: not the answer.
        assert_eq!(addresses(&ok, 8, &fqdn), None);
        let other = reply(7, "evil.test", &[(300, [192, 0, 2, 9])], 0);
        assert_eq!(addresses(&other, 7, &fqdn), None);
        let mut query = ok.clone();
        query.header.flags &= !crate::wire::dns::FLAG_RESPONSE;
        assert_eq!(addresses(&query, 7, &fqdn), None);
        // The answer, without an address: the response code says why.
        let none = reply(7, "portal.partner.test", &[], 3);
        assert_eq!(addresses(&none, 7, &fqdn), Some(Err("NXDomain".into())));
        // It goes through the wire and back the same.
        let wire = Message::parse(&ok.emit().unwrap()).unwrap();
        assert_eq!(wire, ok);
    }
}
