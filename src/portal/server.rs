//! The portal's shell: the hyper server on `gateway:portal.port`, its
//! connection table and deadlines, and the glue from the config and the data
//! plane to the pure [`Portal`]. The shell reads the one clock
//! ([`crate::io::clock::now_ms`]) and the one randomness source
//! ([`crate::io::sys::random_bytes`]) and passes both in.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{AuthBackend, Config, PortalConfig};
use crate::io::clock::now_ms;
use crate::io::forwarder::DataplaneHandle;
use crate::session::{Authorization, Client, EndReason, EndedSession};
use crate::wire::MacAddr;

use super::admission::{Admission, Admit, ClientKey, ConnId, RefusalLog};
use super::{auth, files, uam};
use super::{Gateway, Method, Portal, PortalRequest, PortalStats, Response, Settings};

/// Largest request body read: login forms are tiny. A larger
/// Content-Length is refused at once with `413`.
pub const MAX_BODY: usize = 4 * 1024;
/// Buffer for the request line and headers (hyper's smallest).
const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Connections one guest (one MAC, else one address) may hold at once: a
/// browser opens about six per host. Admission is fair beyond that (see
/// [`super::admission`]): a guest with fewer connections than the biggest
/// holder always gets a slot.
const MAX_CONNECTIONS_PER_CLIENT: usize = 8;
/// Time allowed for the request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole request body, however it trickles in
/// (slowloris: one byte every few seconds would otherwise hold the
/// connection until [`CONNECTION_TIMEOUT`]).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Least time between two warnings about a full connection table.
const REFUSAL_WARN_MS: u64 = 10_000;

impl Gateway for DataplaneHandle {
    fn client_by_ip(
        &self,
        ip: Ipv4Addr,
    ) -> impl Future<Output = Result<Option<Client>, String>> + Send {
        DataplaneHandle::client_by_ip(self, ip)
    }

    fn client_by_ipv6(
        &self,
        ip: std::net::Ipv6Addr,
    ) -> impl Future<Output = Result<Option<Client>, String>> + Send {
        DataplaneHandle::client_by_ipv6(self, ip)
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

/// 16 random bytes from the shell's one source.
pub fn random_challenge() -> uam::Challenge {
    let mut buf = [0u8; 16];
    crate::io::sys::random_bytes(&mut buf);
    buf
}

/// The portal's settings from `[portal]`, the LAN address and its MAC.
pub fn portal_settings(cfg: &PortalConfig, gateway: Ipv4Addr, gateway_mac: MacAddr) -> Settings {
    Settings {
        gateway,
        port: cfg.port,
        gateway_mac,
        uam_server: cfg.uam_server.clone(),
        uam_secret: cfg.uam_secret.clone(),
        success_url: cfg.success_url.clone(),
        nas_id: cfg.nas_id.clone(),
        venue_info_url: cfg.venue_info_url.clone(),
        challenge_timeout: cfg.challenge_timeout,
        strict_csp: cfg.pages_dir.is_none(),
    }
}

/// The portal being served, swapped whole by a reload: each request takes
/// the current one, so the next request after a reload sees the new
/// settings and pages while requests already running finish with theirs.
#[derive(Clone)]
pub struct PortalCell(Arc<std::sync::RwLock<Arc<Portal>>>);

impl PortalCell {
    /// The portal to answer the next request with.
    pub fn current(&self) -> Arc<Portal> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Serve `portal` from the next request on.
    pub fn replace(&self, portal: Portal) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(portal);
    }
}

impl From<Arc<Portal>> for PortalCell {
    fn from(p: Arc<Portal>) -> PortalCell {
        PortalCell(Arc::new(std::sync::RwLock::new(p)))
    }
}

/// The backend and pages `cfg` names, read from disk: what a start and a
/// reload build a portal from. A users file that cannot be read is an
/// error naming `portal.users_file`; unreadable page files are logged.
pub fn backend_and_pages(
    cfg: &Config,
    radius: Option<Box<dyn auth::Authenticator>>,
) -> Result<(Box<dyn auth::Authenticator>, super::pages::Pages), String> {
    let p = &cfg.portal;
    let auth: Box<dyn auth::Authenticator> = match p.auth {
        AuthBackend::ClickThrough => Box::new(auth::ClickThrough),
        AuthBackend::Local => {
            let path = p
                .users_file
                .as_ref()
                .ok_or("portal.users_file: auth = \"local\" needs a users file")?;
            let users = files::load_users(path).map_err(|e| format!("portal.users_file: {e}"))?;
            tracing::info!(users = users.len(), file = %path.display(), "portal: local users loaded");
            Box::new(files::OffLoopUsers::new(users))
        }
        AuthBackend::Radius => {
            radius.ok_or("portal.auth: auth = \"radius\" needs a [radius] section")?
        }
    };
    let (pages, warnings) = files::load_pages(p.pages_dir.as_deref());
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok((auth, pages))
}

/// Builds the portal from the config: the backend, the pages (warnings for
/// unreadable override files are logged).
pub fn build(
    cfg: &Config,
    gateway_mac: MacAddr,
    radius: Option<Box<dyn auth::Authenticator>>,
) -> Result<Portal, String> {
    let (auth, pages) = backend_and_pages(cfg, radius)?;
    Ok(Portal::new(
        portal_settings(&cfg.portal, cfg.lan.gateway, gateway_mac),
        auth,
        pages,
        random_challenge(),
    ))
}

/// Binds `gateway:portal.port` and serves the portal on the current tokio
/// runtime (the accept loop is spawned; it ends with the runtime). The data
/// plane enforces the limits a login grants; the portal counts into
/// `dp.portal` (shown by `lassi status`). Returns the cell a reload swaps
/// the portal in.
pub async fn start(
    cfg: &Config,
    gateway_mac: MacAddr,
    dp: DataplaneHandle,
    radius: Option<Box<dyn auth::Authenticator>>,
) -> Result<PortalCell, String> {
    let portal = Arc::new(build(cfg, gateway_mac, radius)?.with_stats(dp.portal.clone()));
    let cell = PortalCell::from(portal);
    let addr = SocketAddr::new(IpAddr::V4(cfg.lan.gateway), cfg.portal.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("portal.port: cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, auth = ?cfg.portal.auth, external = cfg.portal.uam_server.as_deref().unwrap_or("-"), "portal listening");
    if let Some(v6) = &cfg.lan.ipv6 {
        // HTTP over IPv6 is steered here (lassi's address on the TUN device).
        let addr6 = SocketAddr::new(IpAddr::V6(v6.address), cfg.portal.port);
        let listener6 = listen_freebind(addr6)
            .map_err(|e| format!("lan.ipv6.address: cannot listen on {addr6}: {e}"))?;
        tracing::info!(addr = %addr6, "portal listening on IPv6");
        tokio::spawn(serve(listener6, cell.clone(), dp.clone()));
    }
    tokio::spawn(serve(listener, cell.clone(), dp));
    Ok(cell)
}

/// A listener on lassi's IPv6 address on the TUN device. The kernel may
/// still hold that address as tentative (duplicate address detection runs
/// when the device comes up, asynchronously) when the portal starts, and a
/// plain bind then fails with EADDRNOTAVAIL: IPV6_FREEBIND lets it bind
/// now; connections arrive once the address is settled, moments later.
fn listen_freebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::AsRawFd;
    let socket = tokio::net::TcpSocket::new_v6()?;
    socket.set_reuseaddr(true)?;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option of its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_FREEBIND,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The connection table: fair admission, and a way to close each
/// connection (to evict it).
struct Slots {
    admission: Admission,
    closers: HashMap<ConnId, oneshot::Sender<()>>,
    refusals: RefusalLog,
}

type SharedSlots = Arc<Mutex<Slots>>;

/// Gives a connection's slot back when its task ends, however it ends.
struct SlotGuard {
    slots: SharedSlots,
    id: ConnId,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut s = lock(&self.slots);
        s.admission.release(self.id);
        s.closers.remove(&self.id);
    }
}

fn lock(slots: &SharedSlots) -> std::sync::MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts connections until the runtime stops.
pub async fn serve<G: Gateway + Clone + 'static>(listener: TcpListener, portal: PortalCell, gw: G) {
    serve_with(
        listener,
        portal,
        gw,
        MAX_CONNECTIONS,
        MAX_CONNECTIONS_PER_CLIENT,
    )
    .await
}

/// [`serve`] with `total` connection slots, at most `per_client` for one
/// guest.
pub async fn serve_with<G: Gateway + Clone + 'static>(
    listener: TcpListener,
    portal: PortalCell,
    gw: G,
    total: usize,
    per_client: usize,
) {
    let slots: SharedSlots = Arc::new(Mutex::new(Slots {
        admission: Admission::new(total, per_client),
        closers: HashMap::new(),
        refusals: RefusalLog::new(REFUSAL_WARN_MS),
    }));
    // Out of descriptors under a flood: say so now and then, not 20 times
    // a second.
    let mut accept_errors = RefusalLog::new(REFUSAL_WARN_MS);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                if let Some(n) = accept_errors.refused(now_ms()) {
                    tracing::warn!(errors = n, "portal accept: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A guest over IPv6 is the guest of its IPv4 lease (the address
        // the portal, its redirect and its logins know it by).
        let peer_ip = match peer.ip() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => match gw.client_by_ipv6(ip).await {
                Ok(Some(c)) => c.ip,
                _ => continue,
            },
        };
        // The MAC behind the address, so one guest is one guest whatever
        // address it uses; the address alone when no client holds it.
        let key = match gw.client_by_ip(peer_ip).await {
            Ok(Some(c)) => ClientKey::Mac(c.mac),
            _ => ClientKey::Ip(peer_ip),
        };
        // Refused connections are closed at once (dropping the stream).
        let Some((id, closed)) = admit(&slots, &portal.current(), key, peer_ip) else {
            continue;
        };
        let guard = SlotGuard {
            slots: slots.clone(),
            id,
        };
        tokio::spawn(connection(
            stream,
            peer_ip,
            portal.clone(),
            gw.clone(),
            guard,
            closed,
        ));
    }
}

/// Admits a connection of `key` or refuses it (counted, and logged at
/// most once per [`REFUSAL_WARN_MS`] when the table is full).
fn admit(
    slots: &SharedSlots,
    portal: &Portal,
    key: ClientKey,
    peer_ip: Ipv4Addr,
) -> Option<(ConnId, oneshot::Receiver<()>)> {
    let stats = portal.stats();
    let mut s = lock(slots);
    let id = match s.admission.admit(key, now_ms()) {
        Admit::Yes(id) => id,
        Admit::Evicting { id, evict } => {
            stats.connections_evicted.bump();
            tracing::debug!(%peer_ip, "portal: table full, closing the oldest connection of the biggest holder");
            if let Some(close) = s.closers.remove(&evict) {
                let _ = close.send(());
            }
            id
        }
        Admit::ClientFull => {
            stats.connections_refused.bump();
            tracing::debug!(%peer_ip, "portal: too many connections from one client");
            return None;
        }
        Admit::Full => {
            stats.connections_refused.bump();
            if let Some(n) = s.refusals.refused(now_ms()) {
                tracing::warn!(
                    refused = n,
                    "portal: all connection slots busy; connections refused"
                );
            }
            return None;
        }
    };
    let (tx, rx) = oneshot::channel();
    s.closers.insert(id, tx);
    Some((id, rx))
}

/// Serves one connection until it ends, times out, or is evicted.
async fn connection<G: Gateway + Clone + 'static>(
    stream: tokio::net::TcpStream,
    peer_ip: Ipv4Addr,
    portal: PortalCell,
    gw: G,
    _slot: SlotGuard,
    closed: oneshot::Receiver<()>,
) {
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        // The portal of the moment: a reload applies from the next request.
        let portal = portal.current();
        let gw = gw.clone();
        async move { Ok::<_, Infallible>(answer(&portal, &gw, req, peer_ip).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn) => {}
        _ = closed => {}
    }
}

/// Plain-text answer that also closes the connection.
fn refuse(status: u16, text: &'static str) -> hyper::Response<Full<Bytes>> {
    to_hyper(
        Response {
            status,
            headers: vec![
                ("content-type", "text/plain".into()),
                ("connection", "close".into()),
            ],
            body: text.as_bytes().to_vec(),
        },
        false,
    )
}

/// Reads a form body: at most [`MAX_BODY`] bytes, within [`BODY_TIMEOUT`]
/// in all, however slowly it trickles.
async fn read_form(
    body: Incoming,
    content_length: Option<u64>,
    stats: &PortalStats,
) -> Result<String, hyper::Response<Full<Bytes>>> {
    if content_length.is_some_and(|n| n > MAX_BODY as u64) {
        // Refused before a byte of it is read.
        stats.bodies_too_large.bump();
        return Err(refuse(413, "request body too large\n"));
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(b)) => Ok(String::from_utf8_lossy(&b.to_bytes()).into_owned()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            stats.bodies_too_large.bump();
            Err(refuse(413, "request body too large\n"))
        }
        // The guest went away mid-body: nobody reads the answer.
        Ok(Err(_)) => Err(refuse(400, "incomplete request body\n")),
        Err(_) => {
            stats.body_timeouts.bump();
            Err(refuse(408, "request body too slow\n"))
        }
    }
}

/// Turns a hyper request into a [`PortalRequest`], and the answer back.
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
    // An unreadable Origin or Referer still counts as sent (and is foreign):
    // dropping it would make the request look header-less.
    let present = |name: hyper::header::HeaderName| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    };
    let origin = present(hyper::header::ORIGIN);
    let referer = present(hyper::header::REFERER);
    let content_length = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
    let is_form = header(hyper::header::CONTENT_TYPE)
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let form = if method == Method::Post && is_form {
        match read_form(req.into_body(), content_length, portal.stats()).await {
            Ok(f) => Some(f),
            Err(r) => return r,
        }
    } else {
        None
    };
    let r = PortalRequest {
        method,
        host,
        target,
        form,
        accept_language,
        origin,
        referer,
        peer,
        random: random_challenge(),
        wall_offset_ms: crate::io::clock::clock_step_ms(),
    };
    // Boxed: the handler's state (4 KB) then exists only while a request is
    // handled, not in every connection's task for its whole life.
    let resp = Box::pin(portal.handle(gw, &r, now_ms())).await;
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

#[cfg(test)]
mod shell_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[derive(Clone)]
    struct NoClients;

    impl Gateway for NoClients {
        async fn client_by_ip(&self, _: Ipv4Addr) -> Result<Option<Client>, String> {
            Ok(None)
        }
        async fn authorize(&self, _: MacAddr, _: Authorization) -> Result<Client, String> {
            Err("no".into())
        }
        async fn logout(&self, _: MacAddr, _: EndReason) -> Result<EndedSession, String> {
            Err("no".into())
        }
    }

    async fn portal_on_loopback(total: usize, per_client: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = Settings::new(
            Ipv4Addr::LOCALHOST,
            addr.port(),
            MacAddr([2, 0, 0, 0, 0, 1]),
        );
        let portal = Portal::new(
            settings,
            Box::new(auth::ClickThrough),
            super::super::pages::Pages::embedded(),
            [1; 16],
        );
        tokio::spawn(serve_with(
            listener,
            Arc::new(portal).into(),
            NoClients,
            total,
            per_client,
        ));
        addr
    }

    async fn reply(s: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    const POST: &str = "POST /logon HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        Content-Type: application/x-www-form-urlencoded\r\n";

    #[tokio::test(start_paused = true)]
    async fn a_large_body_is_refused_before_it_is_read() {
        let addr = portal_on_loopback(4, 4).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!("{POST}Content-Length: 16000\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let t = tokio::time::Instant::now();
        let r = reply(&mut s).await;
        assert!(r.starts_with("HTTP/1.1 413"), "{r}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_has_a_total_deadline() {
        let addr = portal_on_loopback(4, 4).await;
        let s = TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let head = format!("{POST}Content-Length: 1000\r\n\r\n");
        wr.write_all(head.as_bytes()).await.unwrap();
        let t = tokio::time::Instant::now();
        // One byte every 3 s, as in the attack (at most 2 minutes of it).
        let writer = tokio::spawn(async move {
            for _ in 0..40 {
                if wr.write_all(b"a").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        });
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        let elapsed = t.elapsed();
        writer.abort();
        let r = String::from_utf8_lossy(&out);
        assert!(r.starts_with("HTTP/1.1 408"), "{r}");
        assert!(
            elapsed >= BODY_TIMEOUT && elapsed < BODY_TIMEOUT + Duration::from_secs(3),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refused_and_timed_out_connections_give_their_slot_back() {
        // One slot: the second connection (another "client" is impossible
        // on loopback, so the same one) is refused, as the table is full
        // and it holds as many as the holder.
        let addr = portal_on_loopback(1, 1).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        first.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        let r = reply(&mut second).await;
        assert!(r.is_empty(), "{r}");
        // The head deadline frees the slot of the one that never finishes.
        let r = reply(&mut first).await;
        assert!(!r.contains("200 OK"), "{r}");
        let mut third = TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let r = reply(&mut third).await;
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    }
}
