//! lassi's engine: everything that decides, nothing that does I/O.
//!
//! The engine takes bytes and the current time as arguments and returns
//! bytes to send, events and the next deadline, in the style of
//! quinn-proto: `handle_*` in; `poll_transmit`, `poll_event` and
//! `poll_timeout` out. It opens no file or socket, reads no clock, spawns
//! nothing and never sleeps, so nearly every behaviour is testable without
//! root, deterministically. The shell (the `lassi` crate) owns the devices,
//! sockets, files and the one clock, and carries out what the engine says.
//! `tests/engine-purity` keeps it so: CI fails if an async runtime, libc, an
//! HTTP server or a socket crate enters this crate's dependencies, or if its
//! source reads the clock or touches files or sockets.
//!
//! The layers, bottom up:
//! - [`wire`]: packet views and builders (Ethernet, ARP, IPv4, IPv6, UDP,
//!   TCP, checksums, the vnet header), the DHCPv4, DHCPv6, DNS and
//!   neighbour-discovery codecs, MAC addresses and CIDR networks.
//! - [`dhcp`]: the DHCPv4 server: pool, leases, options, starvation guards.
//! - [`dhcp6`]: the DHCPv6 server: derived addresses, bindings, timers.
//! - [`ipv6`]: router advertisements and their schedule, answers to
//!   neighbour solicitations, the addresses each client uses, and the guard
//!   that drops what no client may send (RAs, redirects, DHCPv6 replies).
//! - [`session`]: the session table, state machine, counters, limits and
//!   shapers, and the saved form that survives a restart.
//! - [`dataplane`]: classification, the fast path, interception and DNS
//!   snooping: the decisions every forwarding backend carries out; with
//!   IPv6 on the LAN it runs [`ipv6`] and [`dhcp6`] on guests' frames and
//!   timers (`Engine::enable_ipv6`), and forwards or holds the rest of
//!   their IPv6 like IPv4 (source guard, portal steering, one set of
//!   counters per session).
//! - [`radius`]: the codec, dictionaries, client engine (retransmit,
//!   failover), CoA and the accounting spool's ordering.
//! - [`portal`]: UAM redirects and the login rules, pages, JSON and RFC 8908
//!   answers, and what a hostile guest meets there.
//! - [`aaa`]: policies: reply attributes to limits, MAC-auth retries,
//!   walled-garden refresh.

pub mod aaa;
pub mod dataplane;
pub mod dhcp;
pub mod dhcp6;
pub mod ipv6;
pub mod portal;
pub mod radius;
pub mod session;
pub mod wire;

#[cfg(test)]
pub(crate) mod testkit;

/// Engine time in milliseconds. The shell's one clock (`lassi::io::clock`)
/// supplies it: the wall clock as it was at start, advanced monotonically,
/// so it never steps. The engine never reads a clock itself.
pub type UnixMillis = u64;
