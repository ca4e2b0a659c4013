//! What an operator does to clients through the control socket (chilli_query's
//! verbs): list them by any identifier, log them out by any identifier,
//! block a MAC, free a lease, and edit the walled garden live.
//!
//! A blocked MAC is refused before anything else looks at its frame: no
//! DHCP answer, no ARP, no portal, no forwarding; each frame is counted
//! under [`DropReason::Blocked`]. Blocking a client that holds a lease ends
//! its session (Admin-Reset, with its Stop) and frees the lease.

use core::net::Ipv4Addr;
use std::fmt;

use serde::Serialize;

use super::{DropReason, Engine, Event};
use crate::session::{Client, ClientFilter, EndReason, EndedSession, SessionState};
use crate::wire::{Ipv4Net, MacAddr};
use crate::UnixMillis;

/// Why an operator's request found nothing to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorError {
    /// No client matches (by IP or MAC).
    NoClient(ClientFilter),
    /// Clients match, but none is logged in (or no session has that user
    /// name or id).
    NoSession(ClientFilter),
    /// The MAC holds no lease.
    NoLease(MacAddr),
}

impl fmt::Display for OperatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorError::NoClient(w) => write!(f, "no client with {}", w.describe()),
            OperatorError::NoSession(w) => write!(f, "no session for {}", w.describe()),
            OperatorError::NoLease(mac) => write!(f, "no lease for {mac}"),
        }
    }
}

impl std::error::Error for OperatorError {}

/// What `lassi block` did.
#[derive(Clone, Debug, Serialize)]
pub struct BlockOutcome {
    /// False when the MAC was blocked already.
    pub newly_blocked: bool,
    /// The session it ended (Admin-Reset), if the client was logged in.
    pub ended: Option<EndedSession>,
    /// The address whose lease was freed, if it held one.
    pub released: Option<Ipv4Addr>,
}

/// What `lassi dhcp-release` did.
#[derive(Clone, Debug, Serialize)]
pub struct LeaseFreed {
    /// The address freed.
    pub ip: Ipv4Addr,
    /// The session that ended with it, if the client was logged in.
    pub ended: Option<EndedSession>,
}

/// The walled garden's open addresses as the data plane sees them now.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GardenOpen {
    /// Networks and addresses (configured and operator-added).
    pub nets: Vec<Ipv4Net>,
    /// Addresses resolved for host names.
    pub resolved: Vec<Ipv4Addr>,
    /// Addresses learnt from DNS answers for `*.domain` entries.
    pub learnt: Vec<Ipv4Addr>,
    /// IPv6 networks and addresses (CIDR text).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nets6: Vec<String>,
    /// IPv6 addresses learnt from AAAA answers for `*.domain` entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub learnt6: Vec<core::net::Ipv6Addr>,
}

impl Engine {
    /// True when frames from `mac` are refused.
    #[inline]
    pub fn is_blocked(&self, mac: MacAddr) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&mac)
    }

    /// Count a frame from a blocked MAC.
    pub(super) fn drop_blocked(&mut self) -> super::LanAction {
        self.drop_lan(DropReason::Blocked)
    }

    /// Block `mac`: its session ends (Admin-Reset), its lease is freed, and
    /// its frames are dropped from now on.
    pub fn block(&mut self, mac: MacAddr, now: UnixMillis) -> BlockOutcome {
        let newly_blocked = self.blocked.insert(mac);
        let ended = match self.sessions.deauthorize(mac, EndReason::AdminReset, now) {
            Ok(ended) => {
                self.push_event(Event::SessionEnded(ended.clone()));
                Some(ended)
            }
            Err(_) => None,
        };
        let released = self.free_lease(mac, now).map(|(ip, _)| ip);
        BlockOutcome {
            newly_blocked,
            ended,
            released,
        }
    }

    /// Let `mac` in again; false if it was not blocked.
    pub fn unblock(&mut self, mac: MacAddr) -> bool {
        self.blocked.remove(&mac)
    }

    /// Every blocked MAC, sorted.
    pub fn blocked_macs(&self) -> Vec<MacAddr> {
        let mut macs: Vec<MacAddr> = self.blocked.iter().copied().collect();
        macs.sort_unstable_by_key(|m| m.0);
        macs
    }

    /// Free `mac`'s lease as if it had sent DHCPRELEASE: its session ends
    /// (Lease-Released, with its Stop) and the address may go to another.
    pub fn release_lease(
        &mut self,
        mac: MacAddr,
        now: UnixMillis,
    ) -> Result<LeaseFreed, OperatorError> {
        let (ip, ended) = self
            .free_lease(mac, now)
            .ok_or(OperatorError::NoLease(mac))?;
        Ok(LeaseFreed { ip, ended })
    }

    /// Release the lease through the DHCP server and carry out its event;
    /// the address and the session that ended, if it had a lease.
    fn free_lease(
        &mut self,
        mac: MacAddr,
        now: UnixMillis,
    ) -> Option<(Ipv4Addr, Option<EndedSession>)> {
        let ev = self.dhcp.release(mac)?;
        let before = self.events.len();
        let ip = match &ev {
            crate::dhcp::LeaseEvent::Released { ip, .. } => *ip,
            _ => return None,
        };
        self.apply_lease_event(ev, now);
        let ended = self.events.range(before..).find_map(|e| match e {
            Event::SessionEnded(s) if s.mac == mac => Some(s.clone()),
            _ => None,
        });
        Some((ip, ended))
    }

    /// Every client matching `f` (all of them for an empty filter), by address.
    pub fn clients_matching(&self, f: &ClientFilter) -> Vec<Client> {
        let mut out: Vec<Client> = self
            .sessions
            .iter()
            .filter(|c| f.matches(c))
            .cloned()
            .collect();
        out.sort_by_key(|c| u32::from(c.ip));
        out
    }

    /// The MAC of the one client `f` designates by IP or MAC (`authorize`).
    pub fn client_mac(&self, f: &ClientFilter) -> Result<MacAddr, OperatorError> {
        self.sessions
            .iter()
            .find(|c| f.matches(c))
            .map(|c| c.mac)
            .ok_or_else(|| OperatorError::NoClient(f.clone()))
    }

    /// End every session `f` designates (a user may have several); an
    /// empty filter designates none.
    pub fn logout_matching(
        &mut self,
        f: &ClientFilter,
        reason: EndReason,
        now: UnixMillis,
    ) -> Result<Vec<EndedSession>, OperatorError> {
        let matching: Vec<&Client> = if f.is_empty() {
            Vec::new()
        } else {
            self.sessions.iter().filter(|c| f.matches(c)).collect()
        };
        let macs: Vec<MacAddr> = (matching.iter())
            .filter(|c| c.state == SessionState::Authorized)
            .map(|c| c.mac)
            .collect();
        if macs.is_empty() {
            let by_address = f.user.is_none() && f.session_id.is_none();
            return Err(if matching.is_empty() && by_address {
                OperatorError::NoClient(f.clone())
            } else {
                OperatorError::NoSession(f.clone())
            });
        }
        let mut ended = Vec::new();
        for mac in macs {
            if let Ok(e) = self.logout(mac, reason, now) {
                ended.push(e);
            }
        }
        Ok(ended)
    }

    /// Replace the walled garden's networks, `*.domain` suffixes and host
    /// names (configured and operator-added together): a guest's own DNS
    /// lookup of a garden name or a name under a suffix opens what it is
    /// answered. Addresses learnt for a name that is gone are forgotten.
    /// (The addresses lassi itself resolves for the host names come in
    /// through [`Engine::set_walled_garden_hosts`].)
    pub fn set_walled_garden(
        &mut self,
        nets: Vec<Ipv4Net>,
        suffixes: Vec<String>,
        hosts: Vec<String>,
    ) {
        self.intercept.set_garden(nets, suffixes, hosts);
    }

    /// Replace the walled garden's IPv6 networks (config and operator).
    pub fn set_walled_garden6(&mut self, nets: Vec<crate::wire::ipv6::Ipv6Net>) {
        self.intercept.settings.walled_nets6 = nets;
    }

    /// What the walled garden opens now.
    pub fn garden_open(&self, now: UnixMillis) -> GardenOpen {
        self.intercept.open(now)
    }
}
