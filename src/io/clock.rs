//! The one clock of the shell. Every engine (data plane, DHCP, portal,
//! RADIUS, AAA policies) is handed `now` from [`now_ms`]; the wall clock is
//! read only at the edges (RADIUS Event-Timestamp, CoA replay windows, times
//! shown to people, the lease file) through [`wall_ms`].

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::UnixMillis;

/// The system's wall clock in Unix milliseconds: the one place lassi reads
/// it. Use it only where a date leaves lassi or is shown.
pub fn wall_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Engine time, in milliseconds: the wall clock as it was when lassi
/// started, advanced by the monotonic clock. It never steps: a step of the
/// system clock (a router without a real-time clock booting at its build
/// date, then set by NTP) cannot expire every lease at once or freeze the
/// shapers; [`clock_step_ms`] tells how far the wall clock has moved away.
/// Anchoring to the wall clock keeps saved session times meaningful across a
/// restart.
pub fn now_ms() -> UnixMillis {
    let (wall0, mono0) = anchor();
    wall0 + mono0.elapsed().as_millis() as u64
}

/// The monotonic instant at which engine time reaches `ms` (for the shells'
/// timers: they sleep until an engine deadline).
pub fn instant_at(ms: UnixMillis) -> Instant {
    let (wall0, mono0) = anchor();
    *mono0 + Duration::from_millis(ms.saturating_sub(*wall0))
}

/// The wall clock when lassi started (its first reading of the clock), in
/// Unix milliseconds.
pub fn start_wall_ms() -> UnixMillis {
    anchor().0
}

fn anchor() -> &'static (UnixMillis, Instant) {
    static ANCHOR: OnceLock<(UnixMillis, Instant)> = OnceLock::new();
    ANCHOR.get_or_init(|| (wall_ms(), Instant::now()))
}

/// How far the system clock has moved away from engine time since start, in
/// ms (positive: the system clock is ahead).
pub fn clock_step_ms() -> i64 {
    wall_ms() as i64 - now_ms() as i64
}

/// The engine time at which the wall clock shows `wall` (a date that came
/// from outside, like RADIUS's Session-Terminate-Time), so the engine can
/// compare it with its own `now` even after the system clock stepped.
pub fn engine_time_of_wall(wall: UnixMillis) -> UnixMillis {
    (wall as i64 - clock_step_ms()).max(0) as u64
}

/// Sleeps until engine time `deadline` (for ever without one): how every
/// shell task waits for its engine's `poll_timeout`.
pub async fn sleep_until(deadline: Option<UnixMillis>) {
    match deadline {
        Some(ms) => tokio::time::sleep_until(tokio::time::Instant::from_std(instant_at(ms))).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lassi_clock_is_wall_time_that_only_moves_forward_steadily() {
        let a = now_ms();
        std::thread::sleep(Duration::from_millis(20));
        let b = now_ms();
        assert!(b >= a + 20 && b < a + 2000, "{a} {b}");
        assert!(clock_step_ms().abs() < 1000, "no step on a quiet machine");
    }

    #[test]
    fn wall_dates_map_to_engine_time() {
        let wall = wall_ms() + 60_000;
        let engine = engine_time_of_wall(wall);
        assert!(engine.abs_diff(now_ms() + 60_000) < 1000, "{engine}");
    }

    #[test]
    fn engine_deadlines_map_to_monotonic_instants() {
        let b = now_ms();
        let at = instant_at(b + 1000);
        let left = at.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_millis(500) && left <= Duration::from_millis(1000));
    }
}
