//! RADIUS: authentication, accounting and dynamic authorization, the way
//! CoovaChilli speaks it, hardened (DESIGN.md, "Where lassi goes beyond").
//! All of it is I/O-free; the shell's `lassi::radius::service` carries the
//! packets and `lassi::radius::spool_store` keeps the spool's files.
//!
//! - [`packet`]: the codec (codes, attributes, Vendor-Specific, bounds).
//! - [`crypto`]: User-Password hiding, CHAP, authenticators,
//!   Message-Authenticator.
//! - [`attrs`]: requests built with CoovaChilli's attributes, replies
//!   decoded into [`attrs::ReplyLimits`], accounting records.
//! - [`client`]: the client engine (identifiers, retransmission, failover,
//!   response validation).
//! - [`spool`]: the accounting spool's policy (order, retries, limits,
//!   acknowledgements).
//! - [`coa`]: CoA/Disconnect request checking, replay guard, answer cache
//!   and answers (RFC 5176).

pub mod attrs;
pub mod client;
pub mod coa;
pub mod crypto;
pub mod packet;
pub mod server_stats;
pub mod spool;

pub use crate::session::SessionMatch;
pub use attrs::{
    AccessAnswer, AccessCredentials, AccessRequest, AcctRecord, AcctSession, AcctStatus,
    MacAuthSettings, NasInfo, ReplyLimits, TerminateCause,
};
pub use coa::{CoaKind, CoaReply, CoaRequest, ErrorCause};

#[cfg(test)]
mod fixtures;
