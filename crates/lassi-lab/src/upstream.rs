//! The upstream HTTP server ("the internet" as seen from the LAN).
//!
//! It runs on a thread of the test process that has entered the upstream
//! namespace (`setns` affects only that thread), with a current-thread tokio
//! runtime and hyper. Routes:
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | small HTML page containing "lassi lab upstream" |
//! | `/bytes/N` | N deterministic pseudo-random bytes, streamed ([`expected_bytes`]) |
//! | `/generate_204` | 204 No Content (Android) |
//! | `/hotspot-detect.html` | Apple's "Success" page |
//! | `/connecttest.txt` | `Microsoft Connect Test` |
//! | `/ncsi.txt` | `Microsoft NCSI` |
//! | `/success.txt` | `success` (Firefox) |
//! | anything else | 200, a page echoing the path |
//!
//! Every request is recorded (method, path with query, Host header, peer
//! address) in a log the test can read.

use super::{IoContext, LabError, LabResult};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Apple's captive-network-assistant success page, byte for byte.
pub const APPLE_SUCCESS: &str =
    "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>";
/// Microsoft's connectivity-test body.
pub const MICROSOFT_CONNECT_TEST: &str = "Microsoft Connect Test";
/// The marker text of the upstream home page.
pub const HOME_MARKER: &str = "lassi lab upstream";

/// Largest `/bytes/N` served (16 GiB), so a typo cannot stream forever.
pub const MAX_BYTES: u64 = 16 << 30;

const CHUNK: usize = 64 * 1024;

/// One request as the upstream server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The Host header, if any.
    pub host: Option<String>,
    /// The User-Agent header, if any.
    pub user_agent: Option<String>,
    /// The TCP peer (after any NAT on the way).
    pub peer: SocketAddr,
    /// When it arrived.
    pub at: SystemTime,
}

type RequestLog = Arc<Mutex<Vec<RequestRecord>>>;
/// Pages a test put on the server: path → HTML.
type CustomPages = Arc<Mutex<std::collections::HashMap<String, String>>>;

/// The running server. Dropping it stops the server and joins its thread.
#[derive(Debug)]
pub struct UpstreamServer {
    log: RequestLog,
    pages: CustomPages,
    addrs: Vec<SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl UpstreamServer {
    /// Starts the server inside namespace `netns` (a name under
    /// `/var/run/netns`), listening on every address in `addrs`. Returns once
    /// all listeners are bound, or with the bind error.
    pub fn start(netns: &str, addrs: &[SocketAddr]) -> LabResult<UpstreamServer> {
        let log: RequestLog = Arc::new(Mutex::new(Vec::new()));
        let pages = CustomPages::default();
        let pages2 = pages.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<LabResult<()>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ns = netns.to_string();
        let addrs_v = addrs.to_vec();
        let log2 = log.clone();
        let thread = std::thread::Builder::new()
            .name(format!("upstream-{netns}"))
            .spawn(move || {
                let setup = (|| -> LabResult<tokio::runtime::Runtime> {
                    enter_netns(&ns)?;
                    tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .enable_time()
                        .build()
                        .ctx(|| "building tokio runtime".to_string())
                })();
                let rt = match setup {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(serve(addrs_v, log2, pages2, ready_tx, stop_rx));
            })
            .ctx(|| "spawning upstream server thread".to_string())?;
        let mut server = UpstreamServer {
            log,
            pages,
            addrs: addrs.to_vec(),
            shutdown: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(server),
            Ok(Err(e)) => Err(e.context(format!("starting upstream HTTP server in {netns}"))),
            Err(_) => {
                server.stop();
                Err(LabError::new(format!(
                    "upstream HTTP server in {netns} did not start"
                )))
            }
        }
    }

    /// The addresses it listens on.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Requests whose path (without query) is exactly `path`.
    pub fn requests_to(&self, path: &str) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .collect()
    }

    /// Serves `html` at `path` from now on (a page of "the internet" for a
    /// test, e.g. a hostile one).
    pub fn serve_page(&self, path: &str, html: &str) {
        if let Ok(mut p) = self.pages.lock() {
            p.insert(path.to_string(), html.to_string());
        }
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        if let Ok(mut l) = self.log.lock() {
            l.clear();
        }
    }

    /// Waits up to `timeout` for a request to `path`; returns it.
    pub fn wait_for_request(&self, path: &str, timeout: Duration) -> Option<RequestRecord> {
        super::netns::wait_until(timeout, || self.requests_to(path).into_iter().next())
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for UpstreamServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl super::Lab {
    /// Starts the upstream HTTP server in the upstream namespace on
    /// 198.51.100.10:80 (and `[2001:db8:100::10]:80` when the lab has IPv6).
    pub fn start_upstream(&self) -> LabResult<UpstreamServer> {
        use super::topology::addrs;
        let mut a = vec![SocketAddr::from((addrs::WEB, 80))];
        if self.options().ipv6 {
            a.push(SocketAddr::from((addrs::WEB6, 80)));
        }
        UpstreamServer::start(self.upstream().name(), &a)
    }
}

/// Moves the calling thread into the named network namespace.
pub fn enter_netns(name: &str) -> LabResult<()> {
    let path = format!("/var/run/netns/{name}");
    let f = std::fs::File::open(&path).ctx(|| format!("opening {path}"))?;
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(LabError::new(format!(
            "setns({path}): {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

async fn serve(
    addrs: Vec<SocketAddr>,
    log: RequestLog,
    pages: CustomPages,
    ready: std::sync::mpsc::Sender<LabResult<()>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut listeners = Vec::new();
    for a in &addrs {
        match tokio::net::TcpListener::bind(a).await {
            Ok(l) => listeners.push(l),
            Err(e) => {
                let _ = ready.send(Err(LabError::new(format!("binding {a}: {e}"))));
                return;
            }
        }
    }
    for l in listeners {
        tokio::spawn(accept_loop(l, log.clone(), pages.clone()));
    }
    let _ = ready.send(Ok(()));
    let _ = stop.await;
    // Returning drops the runtime, which cancels every accept loop and
    // connection task.
}

async fn accept_loop(listener: tokio::net::TcpListener, log: RequestLog, pages: CustomPages) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let log = log.clone();
        let pages = pages.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let log = log.clone();
                let pages = pages.clone();
                async move { Ok::<_, Infallible>(handle(req, peer, &log, &pages)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn handle(
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
    log: &RequestLog,
    pages: &CustomPages,
) -> Response<LabBody> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    if let Ok(mut l) = log.lock() {
        l.push(RequestRecord {
            method: req.method().to_string(),
            path: path_q.clone(),
            host: header("host"),
            user_agent: header("user-agent"),
            peer,
            at: SystemTime::now(),
        });
    }
    let custom = pages
        .lock()
        .ok()
        .and_then(|p| p.get(req.uri().path()).cloned());
    match custom {
        Some(html) => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            LabBody::full(html),
        ),
        None => route(req.uri().path()),
    }
}

/// The response for `path` (exposed for unit tests of the routes).
pub fn route(path: &str) -> Response<LabBody> {
    let html = |status: StatusCode, body: String| {
        reply(status, "text/html; charset=utf-8", LabBody::full(body))
    };
    match path {
        "/" => html(
            StatusCode::OK,
            format!("<!doctype html><html><head><title>{HOME_MARKER}</title></head><body><h1>{HOME_MARKER}</h1><p>The internet, as far as this lab is concerned.</p></body></html>\n"),
        ),
        "/generate_204" => reply(StatusCode::NO_CONTENT, "text/plain", LabBody::full(Bytes::new())),
        "/hotspot-detect.html" => reply(StatusCode::OK, "text/html", LabBody::full(APPLE_SUCCESS)),
        "/connecttest.txt" => reply(StatusCode::OK, "text/plain", LabBody::full(MICROSOFT_CONNECT_TEST)),
        "/ncsi.txt" => reply(StatusCode::OK, "text/plain", LabBody::full("Microsoft NCSI")),
        "/success.txt" => reply(StatusCode::OK, "text/plain", LabBody::full("success\n")),
        p if p.starts_with("/bytes/") => match p["/bytes/".len()..].parse::<u64>() {
            Ok(n) if n <= MAX_BYTES => reply(StatusCode::OK, "application/octet-stream", LabBody::pattern(n)),
            _ => reply(StatusCode::BAD_REQUEST, "text/plain", LabBody::full(format!("bad size in {p}\n"))),
        },
        p => html(
            StatusCode::OK,
            format!(
                "<!doctype html><html><head><title>{HOME_MARKER}</title></head><body><p>{HOME_MARKER}: you asked for <code>{}</code></p></body></html>\n",
                escape_html(p)
            ),
        ),
    }
}

fn reply(status: StatusCode, ctype: &str, body: LabBody) -> Response<LabBody> {
    let len = body.len;
    let mut b = Response::builder()
        .status(status)
        .header("content-type", ctype)
        .header("cache-control", "no-store");
    if status != StatusCode::NO_CONTENT {
        b = b.header("content-length", len);
    }
    b.body(body)
        .unwrap_or_else(|_| Response::new(LabBody::full(Bytes::new())))
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A response body: either a fixed buffer or a streamed pattern.
#[derive(Debug)]
pub struct LabBody {
    len: u64,
    kind: BodyKind,
}

#[derive(Debug)]
enum BodyKind {
    Full(Option<Bytes>),
    Pattern { gen: PatternGen, remaining: u64 },
}

impl LabBody {
    fn full(b: impl Into<Bytes>) -> Self {
        let b: Bytes = b.into();
        LabBody {
            len: b.len() as u64,
            kind: BodyKind::Full(if b.is_empty() { None } else { Some(b) }),
        }
    }

    fn pattern(n: u64) -> Self {
        LabBody {
            len: n,
            kind: BodyKind::Pattern {
                gen: PatternGen::new(n),
                remaining: n,
            },
        }
    }
}

impl Body for LabBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match &mut this.kind {
            BodyKind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::Pattern { gen, remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(CHUNK as u64) as usize;
                let mut buf = vec![0u8; n];
                gen.fill(&mut buf);
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Full(b) => b.is_none(),
            BodyKind::Pattern { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(match &self.kind {
            BodyKind::Full(b) => b.as_ref().map(|b| b.len() as u64).unwrap_or(0),
            BodyKind::Pattern { remaining, .. } => *remaining,
        })
    }
}

/// xorshift64 seeded by the body length. Every `fill` call except the last
/// must be given a multiple of 8 bytes (the server uses 64 KiB chunks).
#[derive(Debug, Clone)]
struct PatternGen {
    state: u64,
}

impl PatternGen {
    fn new(n: u64) -> Self {
        let s = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        PatternGen {
            state: if s == 0 { 1 } else { s },
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let w = self.next().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

/// The exact bytes `/bytes/n` serves.
pub fn expected_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    PatternGen::new(n as u64).fill(&mut v);
    v
}

/// FNV-1a 64 of `data`: a cheap fingerprint to compare large bodies.
pub fn pattern_checksum(data: &[u8]) -> u64 {
    fnv_update(0xcbf2_9ce4_8422_2325, data)
}

fn fnv_update(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// [`pattern_checksum`] of what `/bytes/n` serves, computed without holding
/// all of it in memory.
pub fn expected_checksum(n: u64) -> u64 {
    let mut gen = PatternGen::new(n);
    let mut h = 0xcbf2_9ce4_8422_2325;
    let mut left = n;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let k = left.min(CHUNK as u64) as usize;
        gen.fill(&mut buf[..k]);
        h = fnv_update(h, &buf[..k]);
        left -= k as u64;
    }
    h
}

/// How long ago `t` was (zero if in the future); handy in request-log checks.
pub fn age(t: SystemTime) -> Duration {
    SystemTime::now().duration_since(t).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_chunk_independent() {
        let n = 3 * CHUNK + 5;
        let whole = expected_bytes(n);
        let mut gen = PatternGen::new(n as u64);
        let mut streamed = Vec::new();
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            let mut b = vec![0; k];
            gen.fill(&mut b);
            streamed.extend_from_slice(&b);
            left -= k;
        }
        assert_eq!(whole, streamed);
        assert_eq!(pattern_checksum(&whole), expected_checksum(n as u64));
        assert_ne!(expected_bytes(100)[..8], expected_bytes(101)[..8]);
    }

    #[test]
    fn routes() {
        assert_eq!(route("/generate_204").status(), StatusCode::NO_CONTENT);
        assert_eq!(route("/bytes/x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(route("/anything").status(), StatusCode::OK);
    }
}
