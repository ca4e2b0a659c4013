//! What bounds an authorized session: time, idleness, volume and rate.
//! Filled from RADIUS replies, the local users file or config defaults, and
//! changed live by CoA. Filter-Id rides along: lassi enforces nothing by it,
//! it only hands it to the connection scripts.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::wire::vnet::VnetHdr;
use crate::UnixMillis;

/// Limits of one session; `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// RADIUS Filter-Id, passed to the connection scripts as `FILTER_ID`
    /// (state files written before it existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_id: Option<String>,
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
        if self.filter_id.is_none() {
            self.filter_id.clone_from(&defaults.filter_id);
        }
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
    /// Milli-bytes.
    depth: i64,
    /// Milli-bytes (negative: in debt).
    tokens: i64,
    last: UnixMillis,
}

impl TokenBucket {
    /// A bucket for `rate_bps` bit/s; `None` or 0 means unlimited.
    pub fn new(rate_bps: Option<u64>, now: UnixMillis) -> TokenBucket {
        let rate = rate_bps.unwrap_or(0) / 8;
        // A tenth of a second of traffic, but at least a few full frames so
        // slow limits still pass MTU-sized packets smoothly.
        let depth = (rate / 10).max(4 * 1514) as i64 * 1000;
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

    /// Milliseconds until the bucket is out of debt (0 if it is not).
    pub fn wait_ms(&self) -> u64 {
        if self.tokens >= 0 || self.rate_bytes_per_s == 0 {
            0
        } else {
            ((-self.tokens) as u64).div_ceil(self.rate_bytes_per_s)
        }
    }

    /// Bytes per second, 0 when unlimited.
    pub fn rate(&self) -> u64 {
        self.rate_bytes_per_s
    }

    /// May `bytes` pass now? Takes them from the bucket if so.
    #[inline]
    pub fn allow(&mut self, now: UnixMillis, bytes: u64) -> bool {
        if self.rate_bytes_per_s == 0 {
            return true;
        }
        if now > self.last {
            // Milliseconds × bytes per second = milli-bytes, exactly: no
            // fraction is lost however often this is called, so slow rates
            // refill at their true speed.
            let refill = (now - self.last).saturating_mul(self.rate_bytes_per_s);
            // A long gap (a bucket made at time 0) must not wrap negative.
            let refill = i64::try_from(refill).unwrap_or(i64::MAX);
            self.tokens = self.tokens.saturating_add(refill).min(self.depth);
            self.last = now;
        }
        if self.tokens < 0 {
            return false;
        }
        self.tokens -= bytes as i64 * 1000;
        true
    }
}

/// A packet held back by a shaper, with what it counts for.
#[derive(Clone, Debug)]
pub struct Held {
    /// Its virtio-net header, as it arrived.
    pub vnet: VnetHdr,
    /// The IP packet.
    pub packet: Vec<u8>,
    /// Packets it stands for (GSO).
    pub packets: u64,
    /// IP bytes it stands for.
    pub octets: u64,
}

/// What a shaper says about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeVerdict {
    /// Send it now.
    Pass,
    /// Hold it: the caller copies it into the queue with [`Shaper::hold`].
    Hold,
    /// The queue is full: drop it.
    Drop,
}

/// One direction of one session: a token bucket and a bounded FIFO of
/// packets waiting for tokens. Delaying rather than dropping is what lets
/// TCP settle at the configured rate (a bare policer costs it about half).
#[derive(Debug, Default)]
pub struct Shaper {
    /// The rate.
    pub bucket: TokenBucket,
    queue: VecDeque<Held>,
    queued_bytes: usize,
    max_bytes: usize,
}

/// A copy keeps the rate but none of the held packets: clients are copied
/// for the control plane (status, the portal), which must not duplicate
/// megabytes of queued traffic each time.
impl Clone for Shaper {
    fn clone(&self) -> Shaper {
        Shaper {
            bucket: self.bucket.clone(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            max_bytes: self.max_bytes,
        }
    }
}

impl Shaper {
    /// A shaper for `rate_bps`; `None` means unlimited.
    pub fn new(rate_bps: Option<u64>, now: UnixMillis) -> Shaper {
        let bucket = TokenBucket::new(rate_bps, now);
        // Room for about 150 ms at the rate, and at least a few GSO
        // super-packets so offloaded TCP is not starved.
        let max_bytes = ((bucket.rate() * 150 / 1000) as usize).max(3 * 65_536);
        Shaper {
            bucket,
            queue: VecDeque::new(),
            queued_bytes: 0,
            max_bytes,
        }
    }

    /// True when nothing is limited.
    pub fn unlimited(&self) -> bool {
        self.bucket.unlimited()
    }

    /// Decide for a packet of `octets` (and `len` bytes to store).
    #[inline]
    pub fn offer(&mut self, now: UnixMillis, octets: u64, len: usize) -> ShapeVerdict {
        if self.queue.is_empty() && self.bucket.allow(now, octets) {
            ShapeVerdict::Pass
        } else if self.queued_bytes + len <= self.max_bytes {
            ShapeVerdict::Hold
        } else {
            ShapeVerdict::Drop
        }
    }

    /// Queue a packet the shaper said to hold.
    pub fn hold(&mut self, held: Held) {
        self.queued_bytes += held.packet.len();
        self.queue.push_back(held);
    }

    /// Bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Packets waiting.
    pub fn queued_packets(&self) -> usize {
        self.queue.len()
    }

    /// Packets whose turn has come, in order.
    pub fn release(&mut self, now: UnixMillis, mut out: impl FnMut(Held)) {
        while let Some(front) = self.queue.front() {
            if !self.bucket.allow(now, front.octets) {
                break;
            }
            let h = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= h.packet.len();
            out(h);
        }
    }

    /// When the next held packet may go, if any is waiting.
    pub fn next_release(&self, now: UnixMillis) -> Option<UnixMillis> {
        (!self.queue.is_empty()).then(|| now + self.bucket.wait_ms().max(1))
    }

    /// Drop everything held (the session ended); returns the bytes freed.
    pub fn clear(&mut self) -> usize {
        self.queue.clear();
        std::mem::take(&mut self.queued_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_idle_for_ages_is_full_not_broke() {
        // 50 Mbit/s for 1.7e12 ms: a refill past i64::MAX milli-bytes.
        let mut b = TokenBucket::new(Some(50_000_000), 0);
        assert!(b.allow(1_764_000_000_000, 1500));
        assert!(b.allow(1_764_000_000_000, 1500), "still within the depth");
    }

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
    fn slow_rates_refill_exactly_when_polled_every_millisecond() {
        // 10 kbit/s = 1250 bytes/s = 1.25 bytes per ms: rounding each ms
        // down would lose 20 %.
        let mut b = TokenBucket::new(Some(10_000), 0);
        b.tokens = 0;
        let mut passed = 0u64;
        for ms in 1..=10_000u64 {
            if b.allow(ms, 0) && b.tokens >= 125_000 && b.allow(ms, 125) {
                passed += 125;
            }
        }
        assert!((12_375..=12_625).contains(&passed), "{passed} of 12500");
        assert!(!Shaper::new(Some(8000), 0).clone().unlimited());
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

    fn held(n: usize) -> Held {
        Held {
            vnet: VnetHdr::default(),
            packet: vec![0; n],
            packets: 1,
            octets: n as u64,
        }
    }

    #[test]
    fn shaper_delays_in_order_at_the_rate() {
        // 1 Mbit/s: offer 1500-byte packets every ms for 2 s; release as
        // time goes by; what leaves is at the rate, in order, none lost
        // while the queue has room.
        let mut s = Shaper::new(Some(1_000_000), 0);
        let (mut sent, mut dropped, mut seq_out) = (0u64, 0u64, Vec::new());
        for ms in 0..2000u64 {
            let mut p = held(1500);
            p.packet[..2].copy_from_slice(&(ms as u16).to_be_bytes());
            match s.offer(ms, 1500, 1500) {
                ShapeVerdict::Pass => {
                    sent += 1500;
                    seq_out.push(ms as u16);
                }
                ShapeVerdict::Hold => s.hold(p),
                ShapeVerdict::Drop => dropped += 1,
            }
            s.release(ms, |h| {
                sent += h.octets;
                seq_out.push(u16::from_be_bytes([h.packet[0], h.packet[1]]));
            });
        }
        let expected = 125_000 * 2;
        assert!(
            sent >= expected - 3000 && sent <= expected + 12_500 + 1500,
            "{sent}"
        );
        assert!(dropped > 0, "12 Mbit/s offered into 1 Mbit/s must overflow");
        assert!(s.queued_bytes() <= 3 * 65_536);
        assert!(seq_out.windows(2).all(|w| w[0] < w[1]), "order broken");
        assert!(s.next_release(2000).is_some());
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
        assert_eq!(l.filter_id, None);
        // A CoA's Filter-Id replaces the session's; without one it stays.
        let running = SessionLimits {
            filter_id: Some("std.user".into()),
            ..Default::default()
        };
        let coa = SessionLimits {
            filter_id: Some("premium".into()),
            ..Default::default()
        };
        assert_eq!(coa.or(&running).filter_id.as_deref(), Some("premium"));
        let kept = SessionLimits::default().or(&running);
        assert_eq!(kept.filter_id.as_deref(), Some("std.user"));
    }

    #[test]
    fn filter_id_is_optional_in_saved_limits() {
        // Written before Filter-Id existed: still reads, with none.
        let old = r#"{"session_timeout":3600,"idle_timeout":null,"terminate_at":null,
            "interim_interval":null,"bandwidth_up_bps":null,"bandwidth_down_bps":null,
            "max_input_octets":null,"max_output_octets":null,"max_total_octets":null}"#;
        let l: SessionLimits = serde_json::from_str(old).unwrap();
        assert_eq!((l.session_timeout, &l.filter_id), (Some(3600), &None));
        // Unset, it is not written (older lassi reads the file unchanged).
        assert!(!serde_json::to_string(&l).unwrap().contains("filter_id"));
        let with = SessionLimits {
            filter_id: Some("std.user".into()),
            ..l
        };
        let text = serde_json::to_string(&with).unwrap();
        assert_eq!(serde_json::from_str::<SessionLimits>(&text).unwrap(), with);
    }
}
