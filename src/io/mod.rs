//! The thin I/O shell: devices, sockets, firewall, the data-plane thread.

pub mod clock;
pub mod firewall;
pub mod forwarder;
pub mod lan;
pub mod resolver;
pub mod sys;
pub mod tun;
