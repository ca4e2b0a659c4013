//! The captive portal's shell: lassi's own HTTP listener on
//! `gateway:portal.port` (CoovaChilli's `uamport`) around the engine's
//! portal logic ([`lassi_engine::portal`], re-exported here).
//!
//! - [`server`]: the hyper server, its connection table and deadlines, the
//!   config glue, the one clock and randomness source.
//! - [`files`]: page overrides and the users file read from disk, the
//!   local-users check on tokio's blocking pool.

pub use lassi_engine::portal::*;

pub mod files;
pub mod server;

pub use server::{build, random_challenge, serve, serve_with, start, PortalCell, MAX_BODY};
