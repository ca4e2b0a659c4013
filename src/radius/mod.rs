//! RADIUS: authentication, accounting and dynamic authorization, the way
//! CoovaChilli speaks it, hardened (DESIGN.md, "Where lassi goes beyond").
//!
//! - [`packet`]: the codec (codes, attributes, Vendor-Specific, bounds).
//! - [`crypto`]: User-Password hiding, CHAP, authenticators,
//!   Message-Authenticator.

pub mod crypto;
pub mod packet;
