//! RADIUS in the shell: the engine's codec, client, CoA and spool policy
//! ([`lassi_engine::radius`], re-exported here) carried over UDP sockets
//! and files.
//!
//! - [`service`]: the tokio service the daemon calls (sockets, tasks).
//! - [`spool_store`]: the spool's files.

pub use lassi_engine::radius::*;

pub mod metrics;
pub mod service;
pub mod spool_store;

pub use service::{RadiusHandle, RadiusService, RadiusSettings, RadiusStats};
