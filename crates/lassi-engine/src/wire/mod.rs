//! Packet views and builders: Ethernet, ARP, IPv4, IPv6, UDP, TCP,
//! checksums, and the virtio-net header that carries offload state; the
//! DHCPv4, DHCPv6, DNS and neighbour-discovery (ICMPv6) message codecs; the
//! address types (MAC addresses, IPv4 and IPv6 networks in CIDR form).

pub mod checksum;
pub mod dhcpv4;
pub mod dhcpv6;
pub mod dns;
pub mod frame;
pub mod ipv6;
pub mod mac;
pub mod ndp;
pub mod net;
pub mod vnet;

pub use ipv6::Ipv6Net;
pub use mac::MacAddr;
pub use net::Ipv4Net;
