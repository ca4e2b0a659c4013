//! What bounds an authorized session: time, idleness, volume and rate.
//! Filled from RADIUS replies, the local users file or config defaults, and
//! changed live by CoA.

use serde::Serialize;

use crate::UnixMillis;

/// Limits of one session; `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionLimits {
    /// Seconds after login at which the session ends (Session-Timeout).
    pub session_timeout: Option<u32>,
    /// Seconds of silence after which the session ends (Idle-Timeout).
    pub idle_timeout: Option<u32>,
    /// Absolute end (WISPr-Session-Terminate-Time).
    pub terminate_at: Option<UnixMillis>,
    /// Seconds between accounting Interim-Updates.
    pub interim_interval: Option<u32>,
    /// Upload rate, bit/s.
    pub bandwidth_up_bps: Option<u64>,
    /// Download rate, bit/s.
    pub bandwidth_down_bps: Option<u64>,
    /// Bytes the client may send.
    pub max_input_octets: Option<u64>,
    /// Bytes the client may receive.
    pub max_output_octets: Option<u64>,
    /// Bytes both ways together.
    pub max_total_octets: Option<u64>,
}

impl SessionLimits {
    /// Fill every unset limit from `defaults`.
    pub fn or(mut self, defaults: &SessionLimits) -> SessionLimits {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = defaults.$f; } )* };
        }
        fill!(
            session_timeout,
            idle_timeout,
            terminate_at,
            interim_interval,
            bandwidth_up_bps,
            bandwidth_down_bps,
            max_input_octets,
            max_output_octets,
            max_total_octets
        );
        self
    }
}

/// What happens when a session uses up its volume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum QuotaAction {
    /// End the session (CoovaChilli's behaviour).
    #[default]
    End,
    /// Keep the session but limit it to these rates (bit/s).
    Throttle {
        /// Upload rate once the quota is used.
        up_bps: u64,
        /// Download rate once the quota is used.
        down_bps: u64,
    },
}

/// A token bucket policing one direction of one session.
///
/// Packets pass while the bucket is not in debt and take their whole size
/// (a 64 KiB GSO super-packet may take the bucket below zero); the debt is
/// paid back at the configured rate before anything else passes. The
/// long-run rate is therefore exact, and the burst is bounded by the depth
/// plus one packet.
#[derive(Clone, Debug, Default)]
pub struct TokenBucket {
    rate_bytes_per_s: u64,
    depth: i64,
    tokens: i64,
    last: UnixMillis,
}

impl TokenBucket {
    /// A bucket for `rate_bps` bit/s; `None` or 0 means unlimited.
    pub fn new(rate_bps: Option<u64>, now: UnixMillis) -> TokenBucket {
        let rate = rate_bps.unwrap_or(0) / 8;
        // A tenth of a second of traffic, but at least a few full frames so
        // slow limits still pass MTU-sized packets smoothly.
        let depth = (rate / 10).max(4 * 1514) as i64;
        TokenBucket {
            rate_bytes_per_s: rate,
            depth,
            tokens: depth,
            last: now,
        }
    }

    /// True when this bucket limits nothing.
    pub fn unlimited(&self) -> bool {
        self.rate_bytes_per_s == 0
    }

    /// May `bytes` pass now? Takes them from the bucket if so.
    #[inline]
    pub fn allow(&mut self, now: UnixMillis, bytes: u64) -> bool {
        if self.rate_bytes_per_s == 0 {
            return true;
        }
        if now > self.last {
            let refill = (now - self.last).saturating_mul(self.rate_bytes_per_s) / 1000;
            self.tokens = (self.tokens.saturating_add(refill as i64)).min(self.depth);
            self.last = now;
        }
        if self.tokens < 0 {
            return false;
        }
        self.tokens -= bytes as i64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_passes_everything() {
        let mut b = TokenBucket::new(None, 0);
        assert!(b.unlimited());
        assert!((0..1000).all(|i| b.allow(i, 65_000)));
    }

    #[test]
    fn long_run_rate_is_exact() {
        // 1 Mbit/s = 125 000 bytes/s; offer 1500-byte packets every ms
        // (12 Mbit/s) for 10 s.
        let mut b = TokenBucket::new(Some(1_000_000), 0);
        let passed: u64 = (0..10_000u64).filter(|&ms| b.allow(ms, 1500)).count() as u64 * 1500;
        let expected = 125_000 * 10;
        // The depth (a tenth of a second at this rate) plus one packet.
        let burst = 12_500 + 1500;
        assert!(passed <= expected + burst as u64, "{passed}");
        assert!(passed >= expected - 1500, "{passed}");
    }

    #[test]
    fn super_packets_go_into_debt_and_wait() {
        let mut b = TokenBucket::new(Some(8_000_000), 0); // 1 MB/s, depth 100 kB
        assert!(b.allow(0, 65_000));
        assert!(b.allow(0, 65_000), "still in credit");
        assert!(!b.allow(0, 100), "in debt now");
        assert!(!b.allow(29, 100), "debt of 30 kB takes 30 ms to pay");
        assert!(b.allow(31, 100));
    }

    #[test]
    fn limits_fill_from_defaults() {
        let d = SessionLimits {
            idle_timeout: Some(600),
            interim_interval: Some(300),
            ..Default::default()
        };
        let l = SessionLimits {
            idle_timeout: Some(60),
            ..Default::default()
        }
        .or(&d);
        assert_eq!((l.idle_timeout, l.interim_interval), (Some(60), Some(300)));
    }
}
