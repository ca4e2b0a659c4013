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
pub mod hooks;
pub mod import;
pub mod io;
pub mod logger;
pub mod metrics;
pub mod portal;
pub mod radius;
pub mod reload;
pub mod store;
pub mod uci;

pub use lassi_engine::{dataplane, dhcp, dhcp6, ipv6, session, wire, UnixMillis};
