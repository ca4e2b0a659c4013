//! Per-server counters of the RADIUS client engine, for the metrics
//! endpoint: requests by type, retransmits, timeouts, responses by code and
//! a histogram of response times.

use super::packet::Code;
use crate::UnixMillis;

/// Upper bounds of the response-time histogram's buckets, in milliseconds
/// (the `+Inf` bucket is the total count).
pub const RESPONSE_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// A histogram of durations in milliseconds over [`RESPONSE_BUCKETS_MS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative): `buckets[i]` counts those
    /// above the previous bound and at most `RESPONSE_BUCKETS_MS[i]`.
    pub buckets: [u64; RESPONSE_BUCKETS_MS.len()],
    /// All observations, those above the last bound included.
    pub count: u64,
    /// Sum of the observations, in milliseconds.
    pub sum_ms: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&mut self, ms: u64) {
        if let Some(i) = RESPONSE_BUCKETS_MS.iter().position(|&b| ms <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }
}

/// The kinds of request the engine sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Access-Request.
    Access,
    /// Accounting-Request.
    Accounting,
    /// Status-Server (probes of a dead server).
    Status,
}

impl RequestKind {
    /// Every kind, in metric order.
    pub const ALL: [RequestKind; 3] = [
        RequestKind::Access,
        RequestKind::Accounting,
        RequestKind::Status,
    ];

    /// The kind's label value.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Accounting => "accounting",
            RequestKind::Status => "status",
        }
    }

    fn of(code: Code) -> RequestKind {
        match code {
            Code::AccessRequest => RequestKind::Access,
            Code::StatusServer => RequestKind::Status,
            _ => RequestKind::Accounting,
        }
    }
}

/// The response codes counted, in metric order, with their label values.
pub const RESPONSE_CODES: [(Code, &str); 4] = [
    (Code::AccessAccept, "access_accept"),
    (Code::AccessReject, "access_reject"),
    (Code::AccessChallenge, "access_challenge"),
    (Code::AccountingResponse, "accounting_response"),
];

/// What the engine did with one server since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// First transmissions to this server, by [`RequestKind`] order.
    pub requests: [u64; 3],
    /// Resends of a request to this server.
    pub retransmits: u64,
    /// Requests this server left unanswered after every resend.
    pub timeouts: u64,
    /// Valid responses, by [`RESPONSE_CODES`] order.
    pub responses: [u64; RESPONSE_CODES.len()],
    /// Time from a request's first transmission to this server until its
    /// valid answer (late answers to given-up requests are not timed).
    pub response_time: Histogram,
}

impl ServerStats {
    /// Counts a first transmission of a request with `code`.
    pub(crate) fn sent(&mut self, code: Code) {
        self.requests[RequestKind::of(code) as usize] += 1;
    }

    /// The count of first transmissions of one kind.
    pub fn requests_of(&self, kind: RequestKind) -> u64 {
        self.requests[kind as usize]
    }

    /// Counts a valid response; `sent_at` is when the request first went
    /// to this server, if known.
    pub(crate) fn answered(&mut self, code: Code, sent_at: Option<UnixMillis>, now: UnixMillis) {
        if let Some(i) = RESPONSE_CODES.iter().position(|(c, _)| *c == code) {
            self.responses[i] += 1;
        }
        if let Some(at) = sent_at {
            self.response_time.observe(now.saturating_sub(at));
        }
    }
}

/// The counters for a new server list: `map[old]` is the new index of old
/// server `old` if it is still there, `n` the new list's length. Servers
/// that stay keep their counters; new ones start at zero.
pub fn remap(old: &[ServerStats], map: &[Option<usize>], n: usize) -> Vec<ServerStats> {
    let mut next = vec![ServerStats::default(); n];
    for (stats, to) in old.iter().zip(map) {
        if let Some(slot) = to.and_then(|j| next.get_mut(j)) {
            *slot = *stats;
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remap_keeps_the_counters_of_servers_that_stay() {
        let a = ServerStats {
            retransmits: 1,
            ..ServerStats::default()
        };
        let b = ServerStats {
            retransmits: 2,
            ..ServerStats::default()
        };
        // Old [a, b]; new list [new, b]: a removed, b moved to index 1.
        let next = remap(&[a, b], &[None, Some(1)], 2);
        assert_eq!(next, vec![ServerStats::default(), b]);
        // A map pointing past the new list is ignored, not a panic.
        assert_eq!(remap(&[a], &[Some(5)], 1), vec![ServerStats::default()]);
    }

    #[test]
    fn histogram_puts_each_duration_in_the_first_bucket_that_holds_it() {
        let mut h = Histogram::default();
        for ms in [0, 1, 2, 3, 5000, 5001] {
            h.observe(ms);
        }
        assert_eq!(h.buckets[0], 2); // 0 and 1
        assert_eq!(h.buckets[1], 1); // 2
        assert_eq!(h.buckets[2], 1); // 3
        assert_eq!(h.buckets[RESPONSE_BUCKETS_MS.len() - 1], 1); // 5000
        assert_eq!(h.count, 6); // 5001 only in the total
        assert_eq!(h.sum_ms, 10_007);
    }
}
