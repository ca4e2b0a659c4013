//! lassi: a captive-portal hotspot gateway.
//!
//! The crate is split as DESIGN.md describes: an I/O-free engine (`wire`,
//! `dhcp`, `session`, `dataplane`) that takes bytes and the current time as
//! arguments, and a thin I/O shell (`io`, `control`, `store`, `daemon`)
//! around it. `lab` builds network-namespace labs for the demo, the tests
//! and the benchmarks.

pub mod aaa;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod dhcp;
pub mod io;
pub mod portal;
pub mod radius;
pub mod session;
pub mod store;
pub mod wire;

/// Milliseconds since the Unix epoch. The engine never reads the clock: the
/// shell passes `now` in, which keeps every decision reproducible in tests.
pub type UnixMillis = u64;
