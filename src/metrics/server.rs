//! The HTTP listener of the metrics endpoint: `GET /metrics` on the address
//! the operator configured (`metrics.listen`), 404 for other paths, 405 for
//! other methods. Each scrape sends the data plane one message; at most
//! [`MAX_SCRAPES`] gather at once and at most [`MAX_CONNECTIONS`]
//! connections are open, so a flood of scrapes cannot stall forwarding or
//! exhaust memory. [`MetricsServer::rebind`] moves it live.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::text::CONTENT_TYPE;
use crate::io::forwarder::DataplaneHandle;

/// Scrapes gathered at once; more wait for a turn.
pub const MAX_SCRAPES: usize = 4;
/// Connections open at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Time for a request's head to arrive (also the idle time between requests).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of a connection.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for a turn to scrape plus the gathering itself.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The running endpoint (or none: metrics off). Dropping it stops the
/// listener; connections being served finish on their own.
pub struct MetricsServer {
    dp: DataplaneHandle,
    limits: Arc<Limits>,
    current: Mutex<Option<Listening>>,
}

struct Limits {
    scrapes: Semaphore,
    connections: Arc<Semaphore>,
}

struct Listening {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Ok(mut c) = self.current.lock() {
            if let Some(l) = c.take() {
                l.task.abort();
            }
        }
    }
}

impl MetricsServer {
    /// Starts listening on `listen` (`None`: metrics off, nothing listens).
    /// Must be called on the tokio runtime. The error names the key.
    pub async fn start(
        listen: Option<SocketAddr>,
        dp: DataplaneHandle,
    ) -> Result<MetricsServer, String> {
        let server = MetricsServer {
            dp,
            limits: Arc::new(Limits {
                scrapes: Semaphore::new(MAX_SCRAPES),
                connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            }),
            current: Mutex::new(None),
        };
        server.rebind(listen).await?;
        Ok(server)
    }

    /// The address it listens on now (the bound port when 0 was asked).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.current.lock().ok()?.as_ref().map(|l| l.addr)
    }

    /// Moves the endpoint to `listen` (`None`: stop listening), for a
    /// reload. The new address is bound before the old one is let go, so a
    /// failure (address in use, not local) leaves the endpoint where it
    /// was; the error names `metrics.listen`. The same address again is a
    /// no-op. Scrapes in progress on the old listener finish.
    pub async fn rebind(&self, listen: Option<SocketAddr>) -> Result<(), String> {
        if listen.is_some() && listen == self.local_addr() {
            return Ok(());
        }
        let next = match listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("metrics.listen: cannot listen on {addr}: {e}"))?;
                let addr = listener.local_addr().unwrap_or(addr);
                let task = tokio::spawn(accept(listener, self.dp.clone(), self.limits.clone()));
                tracing::info!(%addr, "metrics endpoint listening");
                Some(Listening { addr, task })
            }
            None => None,
        };
        let previous = match self.current.lock() {
            Ok(mut c) => std::mem::replace(&mut *c, next),
            Err(_) => return Err("metrics: internal lock poisoned".into()),
        };
        if let Some(old) = previous {
            old.task.abort();
            tracing::info!(addr = %old.addr, "metrics endpoint no longer listening there");
        }
        Ok(())
    }
}

/// Accepts connections until aborted.
async fn accept(listener: TcpListener, dp: DataplaneHandle, limits: Arc<Limits>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!("metrics endpoint: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = limits.connections.clone().try_acquire_owned() else {
            tracing::debug!("metrics endpoint: connection limit reached, closing one");
            continue;
        };
        let (dp, limits) = (dp.clone(), limits.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let (dp, limits) = (dp.clone(), limits.clone());
                async move { Ok::<_, Infallible>(answer(&dp, &limits, &req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

/// The answer to one request.
async fn answer(
    dp: &DataplaneHandle,
    limits: &Limits,
    req: &hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return plain(404, "not found; metrics are at /metrics\n");
    }
    if req.method() != hyper::Method::GET {
        let mut r = plain(405, "only GET\n");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET"),
        );
        return r;
    }
    let scrape = async {
        let _turn = limits.scrapes.acquire().await.map_err(|e| e.to_string())?;
        super::gather(dp).await
    };
    match tokio::time::timeout(SCRAPE_TIMEOUT, scrape).await {
        Ok(Ok(text)) => {
            let mut r = hyper::Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(CONTENT_TYPE),
            );
            r
        }
        Ok(Err(e)) => {
            tracing::warn!("metrics scrape: {e}");
            plain(503, "lassi could not gather its metrics\n")
        }
        Err(_) => plain(503, "busy: too many scrapes at once\n"),
    }
}

fn plain(status: u16, text: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::EngineMetrics;
    use crate::io::forwarder::{Command, DataplaneMetrics};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A data plane that answers metrics requests after `delay`, counting
    /// how many it was asked at once (the most in `peak`).
    fn fake_dataplane(delay: Duration, peak: Arc<AtomicUsize>) -> DataplaneHandle {
        let rx = Arc::new(crate::io::queue::Queue::<Command>::default());
        let tx = rx.clone();
        let busy = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            while let Some(cmd) = rx.pop_wait() {
                let Command::Metrics { reply } = cmd else {
                    continue;
                };
                let (busy, peak) = (busy.clone(), peak.clone());
                std::thread::spawn(move || {
                    let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    busy.fetch_sub(1, Ordering::SeqCst);
                    let _ = reply.send(DataplaneMetrics {
                        engine: EngineMetrics {
                            unauthorized: 0,
                            authorized: 1,
                            throttled: 0,
                            traffic: Default::default(),
                            drops: Default::default(),
                            dhcp: Default::default(),
                            redirected_flows: 0,
                            shaper_held_bytes: 0,
                        },
                        workers: vec![crate::io::forwarder::WorkerLoad {
                            io: Default::default(),
                            cpu_seconds: 0.5,
                        }],
                        fast_path: Default::default(),
                    });
                });
            }
        });
        DataplaneHandle {
            commands: tx,
            waker: Arc::new(crate::io::sys::Waker::new().unwrap()),
            portal: Arc::default(),
            radius: Arc::default(),
            operator: Arc::new(
                crate::io::operator::OperatorState::open(&std::env::temp_dir(), &[]).unwrap(),
            ),
            reload: Arc::default(),
        }
    }

    /// One HTTP/1.1 request; the whole answer.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    fn local() -> Option<SocketAddr> {
        Some("127.0.0.1:0".parse().unwrap())
    }

    #[tokio::test]
    async fn serves_get_metrics_only() {
        let dp = fake_dataplane(Duration::ZERO, Arc::default());
        let m = MetricsServer::start(local(), dp).await.unwrap();
        let addr = m.local_addr().unwrap();
        let ok = request(addr, "GET", "/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{ok}"
        );
        assert!(ok.contains("\nlassi_authorized_clients 1\n"), "{ok}");
        assert!(ok.contains("\nlassi_dataplane_cpu_seconds_total{worker=\"0\"} 0.5\n"));
        let query = request(addr, "GET", "/metrics?x=1").await;
        assert!(query.starts_with("HTTP/1.1 200"), "{query}");
        for path in ["/", "/metrics/", "/metricsx", "/status"] {
            let r = request(addr, "GET", path).await;
            assert!(r.starts_with("HTTP/1.1 404"), "{path}: {r}");
        }
        for method in ["POST", "PUT", "DELETE", "HEAD"] {
            let r = request(addr, method, "/metrics").await;
            assert!(r.starts_with("HTTP/1.1 405"), "{method}: {r}");
            assert!(r.contains("allow: GET"), "{r}");
        }
    }

    #[tokio::test]
    async fn off_means_nothing_listens_and_rebind_moves_it_live() {
        let dp = fake_dataplane(Duration::ZERO, Arc::default());
        let m = MetricsServer::start(None, dp).await.unwrap();
        assert_eq!(m.local_addr(), None);
        m.rebind(local()).await.unwrap();
        let first = m.local_addr().unwrap();
        assert!(request(first, "GET", "/metrics")
            .await
            .starts_with("HTTP/1.1 200"));
        // An address that cannot be had: refused, the old one keeps serving.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = m
            .rebind(Some(taken.local_addr().unwrap()))
            .await
            .unwrap_err();
        assert!(e.starts_with("metrics.listen: "), "{e}");
        assert_eq!(m.local_addr(), Some(first));
        assert!(request(first, "GET", "/metrics")
            .await
            .starts_with("HTTP/1.1 200"));
        // Moved: the new address answers, the old one no longer.
        m.rebind(local()).await.unwrap();
        let second = m.local_addr().unwrap();
        assert_ne!(first, second);
        assert!(request(second, "GET", "/metrics")
            .await
            .starts_with("HTTP/1.1 200"));
        tokio::task::yield_now().await;
        assert!(tokio::net::TcpStream::connect(first).await.is_err());
        // Off again.
        m.rebind(None).await.unwrap();
        tokio::task::yield_now().await;
        assert!(tokio::net::TcpStream::connect(second).await.is_err());
    }

    #[tokio::test]
    async fn a_scrape_flood_reaches_the_data_plane_at_most_four_at_once() {
        let peak = Arc::new(AtomicUsize::new(0));
        let dp = fake_dataplane(Duration::from_millis(100), peak.clone());
        let m = MetricsServer::start(local(), dp).await.unwrap();
        let addr = m.local_addr().unwrap();
        let scrapes: Vec<_> = (0..12)
            .map(|_| tokio::spawn(request(addr, "GET", "/metrics")))
            .collect();
        for s in scrapes {
            let r = s.await.unwrap();
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=MAX_SCRAPES).contains(&peak), "peak {peak}");
    }
}
