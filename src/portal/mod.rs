//! The captive portal: lassi's own HTTP listener on `gateway:portal.port`
//! (CoovaChilli's `uamport`).
//!
//! - Requests whose Host is not the gateway were intercepted by the data
//!   plane on their way to some web site: they get a `302` to the splash
//!   page with CoovaChilli's parameters (`res=notyet&uamip=…&md=…`).
//! - Requests to the gateway itself are the portal's own: the splash pages
//!   (`/`), the login API (`/logon`, `/login`, `/logoff`, `/logout`,
//!   `/status`, and all of them under `/json/` with JSONP), and the RFC 8908
//!   API (`/api`).
//!
//! The guest is the TCP peer: its address names the client in the data
//! plane's session table. Everything that decides something is I/O-free
//! and unit-tested: [`uam`] (URLs and encodings), [`challenge`],
//! [`pages`], [`api`] (JSON documents), [`auth`] (backends) and
//! [`handler`] (routing, behind the [`handler::Gateway`] trait). This file
//! is the hyper shell around them.

pub mod api;
pub mod auth;
pub mod challenge;
pub mod handler;
pub mod pages;
pub mod uam;

#[cfg(test)]
mod slot_tests {
    use super::*;

    #[test]
    fn one_client_cannot_take_every_slot() {
        let map = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let a = std::net::Ipv4Addr::new(10, 1, 0, 2);
        let b = std::net::Ipv4Addr::new(10, 1, 0, 3);
        let held: Vec<_> = (0..MAX_CONNECTIONS_PER_CLIENT)
            .map(|_| ClientSlot::take(&map, a).unwrap())
            .collect();
        assert!(ClientSlot::take(&map, a).is_none(), "the 17th is refused");
        assert!(ClientSlot::take(&map, b).is_some(), "others still get in");
        drop(held);
        assert!(ClientSlot::take(&map, a).is_some(), "slots come back");
        assert_eq!(map.lock().unwrap().len(), 0, "no entries left behind");
    }
}

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{AuthBackend, Config};
use crate::control::server::DataplaneHandle;
use crate::session::{Authorization, Client, EndReason, EndedSession};
use crate::wire::MacAddr;
use crate::UnixMillis;

pub use handler::{Gateway, Method, Portal, Request, Response, Settings};

/// Largest request body read (login forms are tiny).
pub const MAX_BODY: usize = 16 * 1024;
/// Buffer for the request line and headers.
const MAX_HEAD: usize = 16 * 1024;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Connections one guest address may hold at once: a browser opens a
/// handful; one guest must not be able to take every slot and lock the
/// others out of the portal.
const MAX_CONNECTIONS_PER_CLIENT: usize = 16;
/// Time allowed for the request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

impl Gateway for DataplaneHandle {
    fn client_by_ip(
        &self,
        ip: Ipv4Addr,
    ) -> impl Future<Output = Result<Option<Client>, String>> + Send {
        DataplaneHandle::client_by_ip(self, ip)
    }

    fn authorize(
        &self,
        mac: MacAddr,
        auth: Authorization,
    ) -> impl Future<Output = Result<Client, String>> + Send {
        DataplaneHandle::authorize_with(self, mac, auth)
    }

    fn logout(
        &self,
        mac: MacAddr,
        reason: EndReason,
    ) -> impl Future<Output = Result<EndedSession, String>> + Send {
        DataplaneHandle::logout(self, mac, reason)
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// 16 random bytes from the kernel.
pub fn random_challenge() -> uam::Challenge {
    let mut buf = [0u8; 16];
    crate::io::sys::random_bytes(&mut buf);
    buf
}

/// Builds the portal from the config: the backend, the pages (warnings for
/// unreadable override files are logged).
pub fn build(
    cfg: &Config,
    gateway_mac: MacAddr,
    radius: Option<Box<dyn auth::Authenticator>>,
) -> Result<Portal, String> {
    let p = &cfg.portal;
    let auth: Box<dyn auth::Authenticator> = match p.auth {
        AuthBackend::ClickThrough => Box::new(auth::ClickThrough),
        AuthBackend::Local => {
            let path = p
                .users_file
                .as_ref()
                .ok_or("portal.users_file: auth = \"local\" needs a users file")?;
            let users =
                auth::LocalUsers::load(path).map_err(|e| format!("portal.users_file: {e}"))?;
            tracing::info!(users = users.len(), file = %path.display(), "portal: local users loaded");
            Box::new(Arc::new(users))
        }
        AuthBackend::Radius => {
            radius.ok_or("portal.auth: auth = \"radius\" needs a [radius] section")?
        }
    };
    let (pages, warnings) = pages::Pages::load(p.pages_dir.as_deref());
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(Portal::new(
        Settings::new(p, cfg.lan.gateway, gateway_mac),
        auth,
        pages,
        random_challenge,
    ))
}

/// Binds `gateway:portal.port` and serves the portal on the current tokio
/// runtime (the accept loop is spawned; it ends with the runtime). The data
/// plane enforces the limits a login grants.
pub async fn start(
    cfg: &Config,
    gateway_mac: MacAddr,
    dp: DataplaneHandle,
    radius: Option<Box<dyn auth::Authenticator>>,
) -> Result<(), String> {
    let portal = Arc::new(build(cfg, gateway_mac, radius)?);
    let addr = SocketAddr::new(IpAddr::V4(cfg.lan.gateway), cfg.portal.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("portal.port: cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, auth = ?cfg.portal.auth, external = cfg.portal.uam_server.as_deref().unwrap_or("-"), "portal listening");
    tokio::spawn(serve(listener, portal, dp));
    Ok(())
}

/// Accepts connections until the runtime stops.
pub async fn serve<G: Gateway + Clone + 'static>(
    listener: TcpListener,
    portal: Arc<Portal>,
    gw: G,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_client = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        std::net::Ipv4Addr,
        usize,
    >::new()));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("portal accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let IpAddr::V4(peer_ip) = peer.ip() else {
            continue;
        };
        // Refused connections are closed at once (dropping the stream).
        let Some(client_slot) = ClientSlot::take(&per_client, peer_ip) else {
            tracing::debug!(%peer_ip, "portal: too many connections from one client");
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("portal: all {MAX_CONNECTIONS} connection slots busy");
            continue;
        };
        let portal = portal.clone();
        let gw = gw.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _client_slot = client_slot;
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let portal = portal.clone();
                let gw = gw.clone();
                async move { Ok::<_, Infallible>(answer(&portal, &gw, req, peer_ip).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

/// One of a client's connection slots; given back when dropped.
struct ClientSlot {
    map: Arc<std::sync::Mutex<std::collections::HashMap<std::net::Ipv4Addr, usize>>>,
    ip: std::net::Ipv4Addr,
}

impl ClientSlot {
    fn take(
        map: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::Ipv4Addr, usize>>>,
        ip: std::net::Ipv4Addr,
    ) -> Option<ClientSlot> {
        let mut m = map.lock().expect("slot map");
        let n = m.entry(ip).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().expect("slot map");
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Turns a hyper request into a portal [`Request`], and the answer back.
async fn answer<G: Gateway>(
    portal: &Portal,
    gw: &G,
    req: hyper::Request<Incoming>,
    peer: Ipv4Addr,
) -> hyper::Response<Full<Bytes>> {
    let method = match *req.method() {
        hyper::Method::GET => Method::Get,
        hyper::Method::HEAD => Method::Head,
        hyper::Method::POST => Method::Post,
        _ => Method::Other,
    };
    let header = |name: hyper::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let host = header(hyper::header::HOST).or_else(|| req.uri().authority().map(|a| a.to_string()));
    let accept_language = header(hyper::header::ACCEPT_LANGUAGE);
    let is_form = header(hyper::header::CONTENT_TYPE)
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let form = if method == Method::Post && is_form {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => Some(String::from_utf8_lossy(&b.to_bytes()).into_owned()),
            Err(_) => {
                return to_hyper(
                    Response {
                        status: 413,
                        headers: vec![("content-type", "text/plain".into())],
                        body: b"request body too large\n".to_vec(),
                    },
                    false,
                )
            }
        }
    } else {
        None
    };
    let r = Request {
        method,
        host,
        target,
        form,
        accept_language,
        peer,
    };
    let resp = portal.handle(gw, &r, now_ms()).await;
    to_hyper(resp, method == Method::Head)
}

fn to_hyper(r: Response, head: bool) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder().status(r.status);
    for (k, v) in &r.headers {
        b = b.header(*k, v.as_str());
    }
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(r.body)
    };
    b.body(Full::new(body)).unwrap_or_else(|_| {
        let mut e = hyper::Response::new(Full::new(Bytes::from_static(b"bad response\n")));
        *e.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        e
    })
}
