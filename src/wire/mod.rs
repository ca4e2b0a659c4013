//! Packet views and builders: Ethernet, ARP, IPv4, UDP, TCP, checksums, and
//! the virtio-net header that carries offload state.

pub mod checksum;
pub mod frame;
pub mod mac;
pub mod vnet;

pub use mac::MacAddr;
