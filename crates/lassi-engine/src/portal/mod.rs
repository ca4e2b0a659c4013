//! The captive portal: lassi's own HTTP listener on `gateway:portal.port`
//! (CoovaChilli's `uamport`).
//!
//! - Requests whose Host is not the gateway were intercepted by the data
//!   plane on their way to some web site: they get a `302` to the splash
//!   page with CoovaChilli's parameters (`res=notyet&uamip=…&md=…`).
//! - Requests to the gateway itself are the portal's own: the splash pages
//!   (`/`), the login API (`/logon`, `/login`, `/logoff`, `/logout`,
//!   `/status`, and all of them under `/json/` with JSONP), and the RFC 8908
//!   API (`/api`).
//!
//! The guest is the TCP peer: its address names the client in the data
//! plane's session table. A guest cannot fill the portal (issue 8): fair
//! [`admission`] by the MAC behind the address, deadlines for the head and
//! the whole body, a 4 KiB body limit; logins are rate limited
//! ([`limiter`]) and state changes checked for cross-site origin
//! ([`csrf`]).
//!
//!
//!
//! This is the portal's logic, pure: time comes in as `now`, randomness as
//! bytes the shell passes. The shell (`lassi::portal::server`, the hyper
//! server, its connection table and deadlines; `lassi::portal::files`, page
//! overrides and the users file read from disk) carries it out.
//!
//! - [`handler`]: routing, the login attempt and its rendering, behind the
//!   [`handler::Gateway`] trait.
//! - [`uam`]: CoovaChilli's URLs and encodings; [`challenge`]: challenges.
//! - [`csrf`], [`limiter`], [`admission`]: what a hostile guest meets.
//! - [`pages`]: templates and rendering; [`api`]: JSON documents.
//! - [`auth`]: authentication backends and the local-users check.

pub mod admission;
pub mod api;
pub mod auth;
pub mod challenge;
pub mod csrf;
pub mod handler;
pub mod limiter;
pub mod pages;
pub mod uam;

#[cfg(test)]
mod tests;

pub use handler::{
    Gateway, LoginResult, Method, Portal, PortalCounters, PortalRequest, PortalStats, Response,
    Settings,
};
