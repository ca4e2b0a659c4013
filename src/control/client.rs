//! The client side used by `lassi sessions|authorize|logout`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::ControlRequest;

/// Send one request and return the reply; `Err` carries a readable message
/// (lassi not running, permission denied, or the error lassi answered).
pub fn call(socket: &Path, req: &ControlRequest) -> Result<Value, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach lassi at {} ({e}): is `lassi run` running?",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| format!("control socket: {e}"))?;
    let mut reply = String::new();
    BufReader::new(s)
        .read_line(&mut reply)
        .map_err(|e| format!("control socket: {e}"))?;
    let v: Value =
        serde_json::from_str(&reply).map_err(|e| format!("bad reply from lassi: {e}"))?;
    if v["ok"] == Value::Bool(true) {
        Ok(v)
    } else {
        Err(v["error"]
            .as_str()
            .unwrap_or("lassi refused the request")
            .to_string())
    }
}
