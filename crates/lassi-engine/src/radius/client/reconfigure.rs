//! A reload's new servers, secrets and timers for a running
//! [`ClientEngine`], without losing what is in flight.
//!
//! A server whose address, ports and secret are unchanged keeps its
//! identifiers, its requests in flight (their answers are still matched)
//! and whether it is dead. A request on a server that was removed or whose
//! secret changed cannot be answered usefully any more (the answer would be
//! signed with the old secret): it starts over on the new list, as a new
//! send with a fresh identifier.

use super::{ClientEngine, ClientEvent, EngineConfig, Token};
use crate::UnixMillis;

/// For each old server index, its index in the new list if it is still
/// there unchanged (address, ports and secret).
fn carried_over(old: &EngineConfig, new: &EngineConfig) -> Vec<Option<usize>> {
    old.servers
        .iter()
        .map(|s| new.servers.iter().position(|n| n == s))
        .collect()
}

impl ClientEngine {
    /// Switches to `cfg` at `now` (see the module documentation). Timers
    /// (`timeout_ms`, `retries`…) apply from the next send on.
    pub fn reconfigure(&mut self, now: UnixMillis, cfg: EngineConfig) {
        let map = carried_over(&self.cfg, &cfg);
        let n = cfg.servers.len();
        let mut dead_until = vec![None; n];
        let mut probe_at = vec![None; n];
        for (old, new) in map.iter().enumerate() {
            if let Some(j) = *new {
                dead_until[j] = self.dead_until[old];
                probe_at[j] = self.probe_at[old];
            }
        }
        self.dead_until = dead_until;
        self.probe_at = probe_at;
        // A server that stays keeps its counters (metrics follow the
        // server, not its place in the list).
        self.per_server = crate::radius::server_stats::remap(&self.per_server, &map, n);
        self.pools = std::mem::take(&mut self.pools)
            .into_iter()
            .filter_map(|((svc, i), p)| map[i].map(|j| ((svc, j), p)))
            .collect();
        self.by_id = std::mem::take(&mut self.by_id)
            .into_iter()
            .filter_map(|((svc, i, id), t)| map[i].map(|j| ((svc, j, id), t)))
            .collect();
        self.abandoned = std::mem::take(&mut self.abandoned)
            .into_iter()
            .filter_map(|((svc, i, id), a)| map[i].map(|j| ((svc, j, id), a)))
            .collect();
        self.cfg = cfg;
        let restart = self.remap_in_flight(&map);
        self.restart_all(now, restart);
        self.drain_waiting(now);
    }

    /// Points the requests in flight at the new server indices; returns
    /// the ones whose server is gone (their identifiers went with their
    /// server's pool).
    fn remap_in_flight(&mut self, map: &[Option<usize>]) -> Vec<Token> {
        let n = self.cfg.servers.len();
        let mut restart = Vec::new();
        let mut probes_gone = Vec::new();
        for (token, f) in self.inflight.iter_mut() {
            let mut tried = vec![false; n];
            for (old, was) in f.tried.iter().enumerate() {
                if let (true, Some(Some(j))) = (*was, map.get(old)) {
                    tried[*j] = true;
                }
            }
            f.tried = tried;
            match map.get(f.server).copied().flatten() {
                Some(j) => f.server = j,
                None if f.probe => probes_gone.push(*token),
                None => restart.push(*token),
            }
        }
        for t in probes_gone {
            self.inflight.remove(&t);
            self.waiting.retain(|w| *w != t);
        }
        restart.sort_unstable();
        restart
    }

    /// Sends `tokens` again from the start of the new server list.
    fn restart_all(&mut self, now: UnixMillis, tokens: Vec<Token>) {
        let n = self.cfg.servers.len();
        for token in tokens {
            self.waiting.retain(|w| *w != token);
            let fresh = vec![false; n];
            let Some(server) = self.pick(&fresh, now) else {
                self.inflight.remove(&token);
                self.stats.no_response += 1;
                self.events.push_back(ClientEvent::NoResponse { token });
                continue;
            };
            if let Some(f) = self.inflight.get_mut(&token) {
                f.server = server;
                f.tried = fresh;
                f.wire = None;
                f.sends = 0;
            }
            self.dispatch(now, token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::*;

    #[test]
    fn unchanged_server_keeps_its_request_in_flight() {
        let mut e = ClientEngine::new(cfg(1), [3; 16]);
        let t = e.submit(0, auth_req());
        let req = drain(&mut e).remove(0).bytes;
        let mut c = cfg(1);
        c.timeout_ms = 5000;
        e.reconfigure(10, c);
        assert!(drain(&mut e).is_empty(), "nothing resent");
        let from: SocketAddr = "127.0.0.1:1812".parse().unwrap();
        e.handle_datagram(
            20,
            Service::Auth,
            from,
            &answer(&req, Code::AccessAccept, b"s", true),
        );
        assert!(matches!(e.poll_event(), Some(ClientEvent::Response { token, .. }) if token == t));
        assert_eq!(e.config().timeout_ms, 5000);
    }

    #[test]
    fn changed_secret_restarts_the_request_with_the_new_secret() {
        let mut e = ClientEngine::new(cfg(1), [4; 16]);
        let t = e.submit(0, auth_req());
        let old = drain(&mut e).remove(0).bytes;
        let mut c = cfg(1);
        c.servers[0].secret = b"new".to_vec();
        e.reconfigure(10, c);
        let tx = drain(&mut e);
        assert_eq!(tx.len(), 1, "sent again at once");
        crypto::verify_request(&tx[0].bytes, b"new", true).unwrap();
        let from: SocketAddr = "127.0.0.1:1812".parse().unwrap();
        // An answer to the old request, signed with the old secret, is not taken.
        e.handle_datagram(
            20,
            Service::Auth,
            from,
            &answer(&old, Code::AccessAccept, b"s", true),
        );
        assert!(e.poll_event().is_none());
        e.handle_datagram(
            30,
            Service::Auth,
            from,
            &answer(&tx[0].bytes, Code::AccessAccept, b"new", true),
        );
        assert!(matches!(e.poll_event(), Some(ClientEvent::Response { token, .. }) if token == t));
        assert_eq!(e.in_flight(), 0);
    }

    #[test]
    fn new_server_list_moves_requests_and_keeps_dead_state_by_server() {
        let mut e = ClientEngine::new(cfg(2), [5; 16]);
        // Server 0 goes dead: the request fails over to server 1.
        let t = e.submit(0, auth_req());
        drain(&mut e);
        for at in [1000, 3000, 6000] {
            e.handle_timeout(at);
        }
        assert!(e.is_dead(0, 6000));
        let on_second = drain(&mut e).pop().unwrap();
        assert_eq!(on_second.dest.port(), 1822);
        // Reload: server 1 first, server 0 removed, a new one added.
        let mut c = cfg(2);
        c.servers = vec![server(1822, "s"), server(1900, "s")];
        e.reconfigure(6001, c);
        assert!(
            drain(&mut e).is_empty(),
            "its server is still there: no resend"
        );
        assert!(!e.is_dead(0, 6001) && !e.is_dead(1, 6001));
        let from: SocketAddr = "127.0.0.1:1822".parse().unwrap();
        e.handle_datagram(
            6002,
            Service::Auth,
            from,
            &answer(&on_second.bytes, Code::AccessAccept, b"s", true),
        );
        // Earlier events (a server reported dead) come first; then the answer.
        let ev = std::iter::from_fn(|| e.poll_event())
            .find(|ev| !matches!(ev, ClientEvent::ServerDead { .. }));
        assert!(
            matches!(ev, Some(ClientEvent::Response { token, server: 0, .. }) if token == t),
            "{ev:?}"
        );
    }

    #[test]
    fn removing_every_server_fails_what_is_in_flight() {
        let mut e = ClientEngine::new(cfg(1), [6; 16]);
        let t = e.submit(0, auth_req());
        drain(&mut e);
        let mut c = cfg(1);
        c.servers.clear();
        e.reconfigure(5, c);
        assert!(matches!(e.poll_event(), Some(ClientEvent::NoResponse { token }) if token == t));
        assert_eq!(e.in_flight(), 0);
        assert_eq!(e.poll_timeout(), None);
    }
}
