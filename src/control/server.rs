//! The control socket server (runs on the control-plane runtime).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::Request;
use crate::io::dataplane::Command;
use crate::io::sys::Waker;
use crate::session::{Authorization, Client, EndReason, EndedSession, SessionLimits, SessionMatch};
use crate::wire::MacAddr;

/// Longest request line accepted.
const MAX_LINE: usize = 4096;

/// Handle to send commands to the data plane.
#[derive(Clone)]
pub struct DataplaneHandle {
    /// Command queue.
    pub commands: Sender<Command>,
    /// Wakes the data-plane thread.
    pub waker: Arc<Waker>,
    /// The portal's counters (`portal` in `lassi status`).
    pub portal: Arc<crate::portal::PortalStats>,
    /// The RADIUS service (`radius` in `lassi status`), set once it has
    /// started; it starts after this handle exists because it needs one.
    pub radius: Arc<std::sync::OnceLock<crate::radius::RadiusHandle>>,
}

impl DataplaneHandle {
    fn send(&self, cmd: Command) -> Result<(), String> {
        self.commands
            .send(cmd)
            .map_err(|_| "the data plane has stopped".to_string())?;
        self.waker.wake();
        Ok(())
    }

    /// Replace the walled garden's resolved host addresses.
    pub fn set_walled_garden_hosts(&self, ips: Vec<std::net::Ipv4Addr>) -> Result<(), String> {
        self.send(Command::SetWalledGardenHosts(ips))
    }

    /// The client holding `ip`, if any.
    pub async fn client_by_ip(&self, ip: std::net::Ipv4Addr) -> Result<Option<Client>, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::ClientByIp { ip, reply: tx })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())
    }

    /// Log a client in with the configured default limits.
    pub async fn authorize(&self, mac: MacAddr, user: Option<String>) -> Result<Client, String> {
        let auth = Authorization {
            user,
            ..Default::default()
        };
        self.authorize_with(mac, auth).await
    }

    /// Log a client in with what its login granted (limits, RADIUS Class…).
    pub async fn authorize_with(
        &self,
        mac: MacAddr,
        auth: Authorization,
    ) -> Result<Client, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Authorize {
            mac,
            auth,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())?
    }

    /// The authorized sessions matching a CoA/Disconnect request.
    pub async fn find_sessions(&self, criteria: SessionMatch) -> Result<Vec<Client>, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::FindSessions {
            criteria,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())
    }

    /// Change a running session's limits.
    pub async fn set_limits(&self, mac: MacAddr, limits: SessionLimits) -> Result<Client, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SetLimits {
            mac,
            limits,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())?
    }

    /// End a client's session.
    pub async fn logout(&self, mac: MacAddr, reason: EndReason) -> Result<EndedSession, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Logout {
            mac,
            reason,
            reply: tx,
        })?;
        rx.await
            .map_err(|_| "the data plane did not answer".to_string())?
    }

    /// Answer one request.
    /// Answer one request with a JSON text (one line, no newline).
    ///
    /// Replies are written straight from the data structures, never through
    /// a `serde_json::Value` tree: at 10,000 sessions that tree cost tens
    /// of megabytes for one `lassi sessions --json`.
    pub async fn handle(&self, req: Request) -> String {
        let result: Result<String, String> = async {
            let text = match req {
                Request::Status => {
                    let (tx, rx) = oneshot::channel();
                    self.send(Command::Status { reply: tx })?;
                    let status = rx.await.map_err(|_| "the data plane did not answer")?;
                    serde_json::to_string(&Reply {
                        ok: true,
                        body: StatusReply {
                            status,
                            portal: self.portal.snapshot(),
                            radius: self.radius.get().map(|r| r.stats()),
                        },
                    })
                }
                Request::Authorize { mac, user } => {
                    let client = self.authorize(mac, user).await?;
                    serde_json::to_string(&Reply {
                        ok: true,
                        body: ClientReply { client },
                    })
                }
                Request::Logout { mac } => {
                    let session = self.logout(mac, EndReason::AdminReset).await?;
                    serde_json::to_string(&Reply {
                        ok: true,
                        body: SessionReply { session },
                    })
                }
            };
            text.map_err(|e| e.to_string())
        }
        .await;
        result.unwrap_or_else(|e| json!({ "ok": false, "error": e }).to_string())
    }
}

/// `{"ok": true, ...body}`, streamed.
#[derive(serde::Serialize)]
struct Reply<T: serde::Serialize> {
    ok: bool,
    #[serde(flatten)]
    body: T,
}

/// The data plane's status and the portal's counters.
#[derive(serde::Serialize)]
struct StatusReply<T: serde::Serialize> {
    #[serde(flatten)]
    status: T,
    portal: crate::portal::PortalCounters,
    /// Absent without a `[radius]` section.
    #[serde(skip_serializing_if = "Option::is_none")]
    radius: Option<crate::radius::RadiusStats>,
}

#[derive(serde::Serialize)]
struct ClientReply {
    client: Client,
}

#[derive(serde::Serialize)]
struct SessionReply {
    session: EndedSession,
}

/// The listening socket; the file is removed when dropped.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Bind `path` (replacing a stale socket) with mode 0600.
    pub fn bind(path: &Path) -> std::io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            // A live lassi would still answer: refuse to steal its socket.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running lassi", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        // The socket is created 0600 (umask 077 around bind), so there is no
        // moment in which another user could connect.
        // SAFETY: umask only swaps the process file-creation mask.
        let old = unsafe { libc::umask(0o077) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        let listener = bound?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serve until the runtime stops.
    pub async fn serve(self, dp: DataplaneHandle) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let dp = dp.clone();
                    tokio::spawn(async move { connection(stream, dp).await });
                }
                Err(e) => tracing::warn!("control socket accept: {e}"),
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn connection(stream: UnixStream, dp: DataplaneHandle) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(64 * 1024)).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = if line.len() > MAX_LINE {
            json!({ "ok": false, "error": "request too long" }).to_string()
        } else {
            match serde_json::from_str::<Request>(&line) {
                Ok(req) => dp.handle(req).await,
                Err(e) => json!({ "ok": false, "error": format!("bad request: {e}") }).to_string(),
            }
        };
        let mut out = reply;
        out.push('\n');
        if write.write_all(out.as_bytes()).await.is_err() {
            break;
        }
    }
}
