//! Why packets were dropped, counted per reason. Every drop is counted
//! somewhere so an operator can tell a misbehaving client from a bug.

use serde::ser::SerializeMap;
use serde::Serialize;

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// The reason a packet was dropped.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// The reason's name in snapshots and logs.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }
        }
    };
}

drop_reasons! {
    Malformed => "malformed", "Truncated or inconsistent headers.";
    NotForUs => "not_for_us", "Unicast to another host's MAC, or DHCP to another server.";
    NotIp => "not_ip", "An EtherType lassi does not handle.";
    Ipv6 => "ipv6", "IPv6 lassi does not handle: all of it without lan.ipv6; with it, multicast other than neighbour discovery and DHCPv6 (MLD …), and IPv6 from the TUN device to no guest's address.";
    ArpIgnored => "arp_ignored", "ARP that lassi does not answer.";
    Broadcast => "broadcast", "IP multicast or broadcast from a client.";
    NoLease => "no_lease", "Source address is not leased to anyone.";
    Spoofed => "spoofed", "Source address leased to another MAC.";
    Unauthorized => "unauthorized", "Client has not logged in.";
    ClientToClient => "client_to_client", "Client isolation.";
    UnknownDestination => "unknown_destination", "No client holds the destination address.";
    RogueDhcpServer => "rogue_dhcp_server", "DHCP server messages sent by a client.";
    DhcpRefused => "dhcp_refused", "DHCP message the server refused.";
    Shaped => "shaped", "Over the session's bandwidth limit with its queue full.";
    Quota => "quota", "The session's volume quota is used up.";
    VlanTagged => "vlan_tagged", "An 802.1Q/802.1ad-tagged frame (VLAN 0 included): lassi serves no VLANs.";
    DnsNotQuery => "dns_not_query", "UDP to port 53 of a server other than lan.dns (portal.any_dns) that is no plain DNS query.";
    DnsRateLimited => "dns_rate_limited", "A guest's DNS queries to servers other than lan.dns over its rate or pending bound.";
    DnsUnmatched => "dns_unmatched", "A DNS answer from a server other than lan.dns that answers no pending query of the guest.";
    Blocked => "blocked", "A frame from a MAC address the operator blocked (`lassi block`).";
    Ipv6RouterAdvert => "ipv6_router_advert", "A router advertisement sent by a client (a rogue router).";
    Ipv6Redirect => "ipv6_redirect", "An ICMPv6 redirect sent by a client.";
    Ipv6DhcpServer => "ipv6_dhcp_server", "A DHCPv6 server message (Advertise, Reply, from port 547 …) sent by a client.";
    Ipv6BadNd => "ipv6_bad_nd", "Neighbour discovery failing RFC 4861's checks, or in a fragment (RFC 6980).";
    Dhcpv6Refused => "dhcpv6_refused", "A DHCPv6 message lassi's server refused (unparsable, invalid, for another server).";
    Ipv6Spoofed => "ipv6_spoofed", "An IPv6 packet whose source is not one of the sending client's learnt addresses (counted to nobody).";
}

/// One counter per [`DropReason`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    /// Count one drop.
    #[inline]
    pub fn count(&mut self, why: DropReason) {
        self.0[why as usize] += 1;
    }

    /// Count `n` drops another thread saw (a worker's shaper).
    pub fn add(&mut self, why: DropReason, n: u64) {
        self.0[why as usize] += n;
    }

    /// The count for one reason.
    pub fn get(&self, why: DropReason) -> u64 {
        self.0[why as usize]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl Serialize for DropCounters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for r in DropReason::ALL {
            m.serialize_entry(r.name(), &self.get(*r))?;
        }
        m.end()
    }
}
