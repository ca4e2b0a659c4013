//! `lassi-lab`: the demo lab behind the README's first command. It builds a
//! gateway in network namespaces around the `lassi` binary found next to
//! this one (or `$LASSI_BIN`), runs a real DHCP client through the portal to
//! online, and removes everything it started. Needs root.

use std::path::PathBuf;
use std::process::ExitCode;

fn lassi_binary() -> Result<PathBuf, String> {
    if let Some(b) = std::env::var_os("LASSI_BIN").filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(b));
    }
    let me = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let beside = me.with_file_name("lassi");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(format!(
            "no lassi binary at {} (build it: cargo build --release --bins), or set LASSI_BIN",
            beside.display()
        ))
    }
}

fn main() -> ExitCode {
    match lassi_binary().and_then(|bin| lassi_lab::run_demo(&bin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lassi-lab: {e}");
            ExitCode::FAILURE
        }
    }
}
