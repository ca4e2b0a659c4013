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
//! # Pure and shell
//!
//! Everything that decides is pure (engine side: no tokio, hyper, libc,
//! files, sockets or clock; time comes in as `now`, randomness as bytes the
//! shell passes): [`handler`] (routing, login attempt and its rendering,
//! behind the [`handler::Gateway`] trait), [`uam`] (URLs and encodings),
//! [`challenge`], [`csrf`], [`limiter`], [`admission`], [`pages`]
//! (templates and rendering), [`api`] (JSON documents) and [`auth`]
//! (backends and the local-users check).
//!
//! The shell files are [`server`] (the hyper server, its connection table
//! and deadlines, the config glue, the one clock and randomness source) and
//! [`files`] (page overrides and the users file read from disk, the
//! local-users check on tokio's blocking pool).

pub mod admission;
pub mod api;
pub mod auth;
pub mod challenge;
pub mod csrf;
pub mod files;
pub mod handler;
pub mod limiter;
pub mod pages;
pub mod server;
pub mod uam;

#[cfg(test)]
mod tests;

pub use handler::{
    Gateway, Method, Portal, PortalCounters, PortalRequest, PortalStats, Response, Settings,
};
pub use server::{build, random_challenge, serve, serve_with, start, MAX_BODY};
