//! The Prometheus metrics endpoint (`[metrics] listen`, off by default).
//!
//! - [`text`]: a writer of the text exposition format 0.0.4.
//! - [`render`]: every metric lassi exports, from one [`render::Scrape`].
//! - [`server`]: the HTTP listener, bounded and movable live.
//!
//! Where the numbers come from: the data plane answers one
//! [`Command::Metrics`](crate::io::forwarder::Command::Metrics) message per
//! scrape (the engine keeps plain counters, the forwarder reads its own
//! thread CPU clock); the RADIUS service answers one message with its
//! per-server counters; the portal's counters are atomics.

pub mod render;
pub mod server;
pub mod text;

pub use server::MetricsServer;

use crate::io::forwarder::DataplaneHandle;
use render::{RadiusScrape, Scrape};

/// CPU time the calling thread has used, in seconds (its thread CPU clock).
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Gathers one scrape from the data plane, the RADIUS service and the
/// portal, and writes it out.
pub async fn gather(dp: &DataplaneHandle) -> Result<String, String> {
    let dataplane = dp.metrics().await?;
    let radius = match dp.radius.get() {
        Some(r) => Some(RadiusScrape {
            stats: r.stats(),
            servers: r.server_metrics().await?,
        }),
        None => None,
    };
    let scrape = Scrape {
        dataplane,
        portal: dp.portal.snapshot(),
        radius,
        start_time_s: crate::io::clock::start_wall_ms() as f64 / 1000.0,
        version: env!("CARGO_PKG_VERSION"),
    };
    Ok(render::render(&scrape))
}
