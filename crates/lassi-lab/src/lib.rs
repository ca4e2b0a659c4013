//! The test lab: real peers in network namespaces around a lassi gateway.
//!
//! Everything here is test infrastructure, shared by the integration tests in
//! `tests/`, the benchmarks in `bench/` and the `lassi lab` demo. It needs
//! root (it creates network namespaces) and the peer programs listed in
//! `TESTBED.md` (dhclient, udhcpc, dhcpcd, dnsmasq, curl, ethtool).
//!
//! The network rule holds throughout: every address the lab uses lives on
//! loopback or inside namespaces the lab created; nothing is linked to, routed
//! to or NATed towards the machine's real interfaces. Every namespace and
//! process the lab starts is removed by its guard's `Drop`, by name/PID, on
//! success and on panic alike.
//!
//! ```text
//!  client ns (eth0) ──┐
//!  client ns (eth0) ──┤ switch ns: bridge br0 (p1..pN, p0) ── gw ns lan0
//!                     ┘                                        gw ns wan0 192.0.2.1
//!                                                                │
//!  upstream ns: up0 192.0.2.2, lo 198.51.100.10 (web) 198.51.100.53 (DNS)
//! ```
//!
//! The pieces:
//! - [`netns`]: [`Netns`] and [`Proc`] guards, command helpers.
//! - [`topology`]: [`Lab`], the namespaces and links above, and [`Guest`].
//! - [`upstream`]: the HTTP server playing "the internet".
//! - [`dictionary`]: a FreeRADIUS dictionary reader that checks
//!   `radius-dicts/` (and FreeRADIUS's own) against lassi's codec.
//! - [`dns`]: dnsmasq as the upstream DNS server (and as a reference DHCP server).
//! - [`peers`]: DHCP client runners (dhclient, udhcpc, dhcpcd) and curl.
//! - [`gateway`]: starting and driving `lassi run` inside the gateway namespace.
//! - [`portal`]: redirect parameters and login-page challenges, read as a
//!   browser does.
//! - [`rawframes`]: raw frames on a LAN port, for benchmarks that play
//!   thousands of DHCP clients.
//! - [`radius`]: a private FreeRADIUS (and PostgreSQL) and `radclient`.
//! - [`demo`]: the operator-facing walk-through behind `lassi lab`.

#![warn(missing_docs)]

pub mod demo;
pub mod dictionary;
pub mod dns;
pub mod gateway;
pub mod netns;
pub mod peers;
pub mod portal;
pub mod radius;
pub mod rawframes;
pub mod topology;
pub mod upstream;

pub use demo::{check_prerequisites, run_demo};
pub use dns::{DhcpServerOptions, DnsServer};
pub use gateway::LassiHandle;
pub use netns::{unique_name, CmdOutput, ExecOptions, Netns, Proc};
pub use peers::{CurlResult, DhcpClientKind, DhcpLease, DhcpOptions};
pub use topology::{addrs, Guest, Lab, LabOptions};
pub use upstream::{
    expected_bytes, expected_checksum, pattern_checksum, RequestRecord, UpstreamServer,
};

use std::fmt;

/// An error from the lab, carrying a human-readable explanation (for a failed
/// command: the command line, its exit status, stderr and stdout).
///
/// `Debug` prints the message as is, so `.unwrap()` in a test shows the
/// captured output with its line breaks.
#[derive(Clone, PartialEq, Eq)]
pub struct LabError(pub String);

impl LabError {
    /// Builds an error from anything printable.
    pub fn new(msg: impl Into<String>) -> Self {
        LabError(msg.into())
    }

    /// Prefixes the message with what was being attempted.
    pub fn context(self, what: impl fmt::Display) -> Self {
        LabError(format!("{what}: {}", self.0))
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

impl From<std::io::Error> for LabError {
    fn from(e: std::io::Error) -> Self {
        LabError(e.to_string())
    }
}

impl From<LabError> for String {
    fn from(e: LabError) -> Self {
        e.0
    }
}

/// The lab's result type.
pub type LabResult<T> = Result<T, LabError>;

/// Unwrap a lab result in a test; on error, fail with what was being done
/// and the tail of every log in the lab (lassi's included).
pub fn must<T>(lab: &Lab, what: &str, r: LabResult<T>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}\n{}", lab.logs_report(40)))
}

/// Lets `?` turn an `io::Error` into a [`LabError`] that says what failed.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> LabResult<T>;
}

impl<T, E: fmt::Display> IoContext<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> LabResult<T> {
        self.map_err(|e| LabError(format!("{}: {e}", what())))
    }
}
