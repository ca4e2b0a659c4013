//! The control socket server (runs on the control-plane runtime).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::ControlRequest;
use crate::io::forwarder::DataplaneHandle;

/// Longest request line accepted.
const MAX_LINE: usize = 4096;

/// Answer one request with a JSON text (one line, no newline).
///
/// Replies are written straight from the data structures, never through
/// a `serde_json::Value` tree: at 10,000 sessions that tree cost tens
/// of megabytes for one `lassi sessions --json`.
pub async fn answer(dp: &DataplaneHandle, req: ControlRequest) -> String {
    let result: Result<String, String> = async {
        let text = match req {
            ControlRequest::Status => {
                let status = dp.status().await?;
                serde_json::to_string(&Reply {
                    ok: true,
                    body: StatusReply {
                        status,
                        portal: dp.portal.snapshot(),
                        radius: dp.radius.get().map(|r| r.stats()),
                    },
                })
            }
            ControlRequest::Reload => {
                let reload = dp.reload.get().ok_or("reload is not available yet")?;
                let report = reload.reload(crate::reload::Origin::Control).await?;
                serde_json::to_string(&Reply {
                    ok: true,
                    body: report,
                })
            }
            other => {
                return super::operator::answer(dp, other)
                    .await
                    .unwrap_or_else(|| Err("unknown request".into()));
            }
        };
        text.map_err(|e| e.to_string())
    }
    .await;
    result.unwrap_or_else(|e| json!({ "ok": false, "error": e }).to_string())
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
            match serde_json::from_str::<ControlRequest>(&line) {
                Ok(req) => answer(&dp, req).await,
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
