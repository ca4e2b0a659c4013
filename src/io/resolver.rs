//! A minimal DNS stub resolver for the walled garden's host names. It asks
//! the LAN's own DNS servers (`lan.dns`), so lassi allows exactly the
//! addresses its guests will be given, whatever the gateway's resolv.conf
//! says. Ids and source ports are random (kernel randomness): a forged
//! answer would widen the garden.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

use crate::dataplane::dns::normalize;

/// Addresses of `name` and the smallest TTL among them.
pub async fn resolve_a(
    server: Ipv4Addr,
    name: &str,
    timeout: Duration,
) -> Result<(Vec<Ipv4Addr>, u32), String> {
    let fqdn = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
    // A random id and source port (32 unguessable bits, as a full resolver
    // would have): the answer widens the walled garden, so a forger must
    // not be able to hit it.
    let (id, port) = random_id_and_port();
    let mut q = Message::new(id, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(fqdn.clone(), RecordType::A));
    let bytes = q.to_vec().map_err(|e| format!("{name}: {e}"))?;
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
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        // Compared as normalised text: `Name`'s equality also weighs the
        // trailing dot, which the answer has and the name asked may lack.
        let same_question = reply.queries.len() == 1
            && reply.queries[0].query_type() == RecordType::A
            && normalize(reply.queries[0].name()) == normalize(&fqdn);
        if reply.metadata.id != id
            || reply.metadata.message_type != MessageType::Response
            || !same_question
        {
            continue; // a stale answer to an earlier question, or a forgery
        }
        let mut ips = Vec::new();
        let mut ttl = u32::MAX;
        for r in &reply.answers {
            if let RData::A(a) = &r.data {
                ips.push(a.0);
                ttl = ttl.min(r.ttl);
            }
        }
        if ips.is_empty() {
            return Err(format!(
                "{name}: {server} returned no address ({:?})",
                reply.metadata.response_code
            ));
        }
        return Ok((ips, ttl));
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
}
