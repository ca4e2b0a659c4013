//! Packet views and builders: Ethernet, ARP, IPv4, UDP, TCP, checksums, and
//! the virtio-net header that carries offload state; the address types
//! (MAC addresses, IPv4 networks in CIDR form).

pub mod checksum;
pub mod frame;
pub mod mac;
pub mod net;
pub mod vnet;

pub use mac::MacAddr;
pub use net::Ipv4Net;
