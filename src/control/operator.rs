//! Answers to the operator's requests on the control socket (`lassi
//! sessions|authorize|logout|block|unblock|blocked|dhcp-release|garden`).
//! Each reply is `{"ok": true, …}` or `{"ok": false, "error": …}` where the
//! error says what was not found.

use std::net::Ipv4Addr;

use serde::Serialize;
use serde_json::json;

use super::ControlRequest;
use crate::config::WalledGarden;
use crate::io::forwarder::DataplaneHandle;
use crate::session::{Authorization, ClientFilter};
use crate::wire::MacAddr;

/// `{"ok": true, ...body}`, streamed (listings are written straight from
/// the data, never through a `serde_json::Value` tree).
#[derive(Serialize)]
struct Ok<T: Serialize> {
    ok: bool,
    #[serde(flatten)]
    body: T,
}

/// A listing of clients (the same shape as `clients` in `lassi status`).
#[derive(Serialize)]
struct Clients {
    clients: Vec<crate::session::Client>,
}

fn ok<T: Serialize>(body: T) -> Result<String, String> {
    serde_json::to_string(&Ok { ok: true, body }).map_err(|e| e.to_string())
}

/// A client named by MAC or by IP (exactly one; the CLI makes sure).
fn by_address(mac: Option<MacAddr>, ip: Option<Ipv4Addr>) -> Result<ClientFilter, String> {
    if mac.is_none() && ip.is_none() {
        return Err("name the client by MAC or by IP".into());
    }
    Ok(ClientFilter {
        mac,
        ip,
        ..Default::default()
    })
}

fn garden_entry(text: &str) -> Result<WalledGarden, String> {
    text.parse()
}

/// Answer an operator request; `None` when `req` is not one.
pub async fn answer(dp: &DataplaneHandle, req: ControlRequest) -> Option<Result<String, String>> {
    Some(match req {
        ControlRequest::Sessions { filter } => match dp.clients(filter).await {
            Ok(clients) => ok(Clients { clients }),
            Err(e) => Err(e),
        },
        ControlRequest::Authorize {
            mac,
            ip,
            user,
            limits,
        } => authorize(dp, mac, ip, user, limits).await,
        ControlRequest::Logout { filter } => logout(dp, filter).await,
        ControlRequest::Block { mac } => match dp.block(mac).await {
            Ok(out) => ok(json!({ "mac": mac, "outcome": out })),
            Err(e) => Err(e),
        },
        ControlRequest::Unblock { mac } => dp
            .unblock(mac)
            .await
            .and_then(|_| ok(json!({ "mac": mac }))),
        ControlRequest::Blocked => match dp.blocked().await {
            Ok(macs) => ok(json!({ "blocked": macs })),
            Err(e) => Err(e),
        },
        ControlRequest::DhcpRelease { mac, ip } => release(dp, mac, ip).await,
        ControlRequest::GardenList => match dp.garden_list().await {
            Ok(list) => ok(list),
            Err(e) => Err(e),
        },
        ControlRequest::GardenAdd { entry } => garden_entry(&entry)
            .and_then(|w| dp.garden_add(&w))
            .and_then(|_| ok(json!({ "entry": entry }))),
        ControlRequest::GardenRemove { entry } => garden_entry(&entry)
            .and_then(|w| dp.garden_remove(&w))
            .and_then(|_| ok(json!({ "entry": entry }))),
        _ => return None,
    })
}

async fn authorize(
    dp: &DataplaneHandle,
    mac: Option<MacAddr>,
    ip: Option<Ipv4Addr>,
    user: Option<String>,
    limits: crate::session::SessionLimits,
) -> Result<String, String> {
    let filter = by_address(mac, ip)?;
    let auth = Authorization {
        user,
        limits,
        ..Default::default()
    };
    let client = dp.authorize_by(filter, auth).await?;
    ok(json!({ "client": client }))
}

async fn logout(dp: &DataplaneHandle, filter: ClientFilter) -> Result<String, String> {
    if filter.is_empty() {
        return Err("name the session(s) by MAC, IP, user or session id".into());
    }
    let ended = dp.logout_by(filter).await?;
    // `session`: the first, for clients of the one-MAC logout.
    ok(json!({ "session": ended.first(), "sessions": ended }))
}

async fn release(
    dp: &DataplaneHandle,
    mac: Option<MacAddr>,
    ip: Option<Ipv4Addr>,
) -> Result<String, String> {
    let (mac, freed) = dp.release_lease(by_address(mac, ip)?).await?;
    ok(json!({ "mac": mac, "ip": freed.ip, "ended": freed.ended }))
}
