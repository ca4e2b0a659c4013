//! A minimal DNS stub resolver for the walled garden's host names. It asks
//! the LAN's own DNS servers (`lan.dns`), so lassi allows exactly the
//! addresses its guests will be given, whatever the gateway's resolv.conf
//! says.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// Addresses of `name` and the smallest TTL among them.
pub async fn resolve_a(
    server: Ipv4Addr,
    name: &str,
    timeout: Duration,
) -> Result<(Vec<Ipv4Addr>, u32), String> {
    let fqdn = Name::from_ascii(name).map_err(|e| format!("{name}: {e}"))?;
    let id: u16 = rand_id();
    let mut q = Message::new(id, MessageType::Query, OpCode::Query);
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(fqdn, RecordType::A));
    let bytes = q.to_vec().map_err(|e| format!("{name}: {e}"))?;
    let sock = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
        .await
        .map_err(|e| e.to_string())?;
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
        if reply.metadata.id != id {
            continue; // a stale answer to an earlier question
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

fn rand_id() -> u16 {
    // Not security-critical (the answer only widens the walled garden to
    // what the guests' own resolver says), but vary it per query.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (t ^ (t >> 16)) as u16 ^ std::process::id() as u16
}
