//! Packet views and builders: Ethernet, ARP, IPv4, UDP, TCP, checksums, and
//! the virtio-net header that carries offload state.

pub mod mac;

pub use mac::MacAddr;
