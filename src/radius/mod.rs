//! RADIUS: authentication, accounting and dynamic authorization, the way
//! CoovaChilli speaks it, hardened (DESIGN.md, "Where lassi goes beyond").
//!
//! Layers, I/O-free first:
//! - [`packet`]: the codec (codes, attributes, Vendor-Specific, bounds).
//! - [`crypto`]: User-Password hiding, CHAP, authenticators,
//!   Message-Authenticator.
//! - [`attrs`]: requests built with CoovaChilli's attributes, replies
//!   decoded into [`attrs::ReplyLimits`], accounting records.
//! - [`client`]: the client engine (identifiers, retransmission, failover,
//!   response validation).
//! - [`spool`]: the durable accounting spool.
//! - [`coa`]: CoA/Disconnect request checking and answers (RFC 5176).
//! - [`dict`]: a FreeRADIUS dictionary reader (checks `radius-dicts/`).
//! - [`service`]: the tokio shell the daemon calls.

pub mod attrs;
pub mod client;
pub mod coa;
pub mod crypto;
pub mod dict;
pub mod packet;
pub mod service;
pub mod spool;

pub use crate::session::SessionMatch;
pub use attrs::{
    AccessRequest, AcctRecord, AcctSession, AcctStatus, Credentials, MacAuthSettings, NasInfo,
    ReplyLimits, TerminateCause,
};
pub use coa::{CoaKind, CoaReply, CoaRequest, ErrorCause};
pub use service::{AuthOutcome, RadiusHandle, RadiusService, RadiusSettings, RadiusStats};

#[cfg(test)]
mod fixtures;
