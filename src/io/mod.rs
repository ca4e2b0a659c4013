//! The thin I/O shell: devices, sockets, firewall, the data-plane thread.

pub mod clock;
pub mod dataplane;
pub mod firewall;
pub mod lan;
pub mod resolver;
pub mod sys;
pub mod tun;
