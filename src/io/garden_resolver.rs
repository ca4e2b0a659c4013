//! The walled garden's resolver task: resolves the garden's host names
//! through the LAN's DNS servers and hands their addresses to the data
//! plane, as [`GardenRefresh`] says when. The names come from a watch
//! channel ([`super::operator::OperatorState::garden_hosts`]), so a live
//! `lassi garden add|remove` or a reload's new configured entries take
//! effect without restarting the task: names kept keep their addresses,
//! new ones are resolved at once, and the addresses of names gone close.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::aaa::garden::{GardenRefresh, GardenSettings};
use crate::io::clock::{now_ms, sleep_until};
use crate::io::forwarder::DataplaneHandle;

/// The addresses and TTL of `host` from the first of `servers` that
/// answers.
async fn resolve(host: &str, servers: &[Ipv4Addr]) -> Option<(Vec<Ipv4Addr>, u32)> {
    for server in servers {
        match crate::io::resolver::resolve_a(*server, host, Duration::from_secs(3)).await {
            Ok(answer) => return Some(answer),
            Err(e) => tracing::warn!("walled garden: {e}"),
        }
    }
    None
}

/// Hand changed addresses to the data plane; false once it has stopped.
fn publish(garden: &mut GardenRefresh, dp: &DataplaneHandle) -> bool {
    let Some(addrs) = garden.poll_addresses() else {
        return true;
    };
    dp.operator.publish_garden_addresses(garden.addresses());
    dp.set_walled_garden_hosts(addrs).is_ok()
}

/// Run until the data plane stops.
pub async fn run(dns: Vec<Ipv4Addr>, dp: DataplaneHandle) {
    let mut names = dp.operator.garden_hosts();
    let first = names.borrow_and_update().clone();
    let mut garden = GardenRefresh::new(first, GardenSettings::default());
    loop {
        while let Some(host) = garden.poll_query() {
            match resolve(&host, &dns).await {
                Some((ips, ttl)) => {
                    tracing::info!(host, addresses = ?ips, "walled garden host resolved");
                    garden.handle_resolved(&host, ips, ttl, now_ms());
                }
                None => garden.handle_failed(&host, now_ms()),
            }
            if names.has_changed().unwrap_or(false) {
                garden.set_names(names.borrow_and_update().clone());
            }
            if !publish(&mut garden, &dp) {
                return;
            }
        }
        if !publish(&mut garden, &dp) {
            return;
        }
        tokio::select! {
            _ = sleep_until(garden.poll_timeout()) => garden.handle_timeout(now_ms()),
            changed = names.changed() => {
                if changed.is_err() {
                    return;
                }
                garden.set_names(names.borrow_and_update().clone());
            }
        }
    }
}
