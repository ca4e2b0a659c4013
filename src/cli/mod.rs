//! The operator's commands on a running lassi (chilli_query parity): their
//! arguments, the requests they send on the control socket, and how the
//! answers are printed (a table, or `--json`). Errors come back from lassi
//! naming what was not found, and the command exits non-zero.

pub mod args;
mod print;

use std::path::PathBuf;

use serde_json::Value;

use lassi::config::{self, Config};
use lassi::control::{client, ControlRequest as Request};
use lassi::session::{ClientFilter, SessionLimits};

use args::{
    AuthorizeCmd, BlockCmd, BlockedCmd, DhcpReleaseCmd, GardenSub, LogoutCmd, SessionsCmd,
    UnblockCmd,
};

/// Where to find a running lassi: an explicit socket, or the one named in a config.
pub struct Target {
    control: Option<PathBuf>,
    config: Option<PathBuf>,
}

impl Target {
    /// `--control PATH` or `-c/--config FILE` (not both); neither means the
    /// default socket.
    pub fn new(control: Option<PathBuf>, config: Option<PathBuf>) -> Result<Self, String> {
        if control.is_some() && config.is_some() {
            return Err("give either --control or --config, not both".into());
        }
        Ok(Target { control, config })
    }

    /// The control socket's path.
    pub fn socket(&self) -> Result<PathBuf, String> {
        match (&self.control, &self.config) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(c)) => Ok(Config::load(c)
                .map_err(|e| format!("{}: {e}", c.display()))?
                .control
                .socket),
            (None, None) => Ok(config::default_socket()),
        }
    }

    fn call(&self, req: &Request) -> Result<Value, String> {
        client::call(&self.socket()?, req)
    }
}

fn authorize_request(a: AuthorizeCmd) -> Request {
    Request::Authorize {
        mac: a.mac,
        ip: a.ip,
        user: a.user,
        limits: SessionLimits {
            session_timeout: a.session_timeout,
            idle_timeout: a.idle_timeout,
            terminate_at: None,
            interim_interval: a.interim_interval,
            bandwidth_up_bps: a.bandwidth_up,
            bandwidth_down_bps: a.bandwidth_down,
            max_input_octets: a.max_octets_in,
            max_output_octets: a.max_octets_out,
            max_total_octets: a.max_octets_total,
            filter_id: None,
        },
    }
}

/// `lassi sessions`.
pub fn sessions(c: SessionsCmd) -> Result<(), String> {
    let target = c.target()?;
    let filter = ClientFilter {
        ip: c.ip,
        mac: c.mac,
        user: c.user,
        session_id: c.session_id,
    };
    let v = target.call(&Request::Sessions { filter })?;
    if c.json {
        print::json(&v["clients"]);
    } else {
        print::sessions(&v);
    }
    Ok(())
}

/// `lassi authorize`.
pub fn authorize(c: AuthorizeCmd) -> Result<(), String> {
    let target = c.target()?;
    args::exactly_one(&[c.mac.is_some(), c.ip.is_some()], "MAC or --ip")?;
    let v = target.call(&authorize_request(c))?;
    let c = &v["client"];
    println!(
        "{} authorized (ip {}, session {})",
        c["mac"].as_str().unwrap_or("?"),
        c["ip"].as_str().unwrap_or("?"),
        c["session_id"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// `lassi logout`: every session named ends; says how many.
pub fn logout(c: LogoutCmd) -> Result<(), String> {
    let target = c.target()?;
    args::exactly_one(
        &[
            c.mac.is_some(),
            c.ip.is_some(),
            c.user.is_some(),
            c.session_id.is_some(),
        ],
        "MAC, --ip, --user or --session-id",
    )?;
    let filter = ClientFilter {
        ip: c.ip,
        mac: c.mac,
        user: c.user,
        session_id: c.session_id,
    };
    let v = target.call(&Request::Logout { filter })?;
    let empty = Vec::new();
    let ended = v["sessions"].as_array().unwrap_or(&empty);
    for s in ended {
        print::ended(s);
    }
    println!("{} session(s) ended", ended.len());
    Ok(())
}

/// `lassi block MAC`.
pub fn block(c: BlockCmd) -> Result<(), String> {
    let mac = c.mac;
    let v = c.target()?.call(&Request::Block { mac })?;
    let out = &v["outcome"];
    if out["newly_blocked"] == Value::Bool(false) {
        println!("{mac} was blocked already");
    } else {
        println!("{mac} blocked");
    }
    if !out["ended"].is_null() {
        print::ended(&out["ended"]);
    }
    if let Some(ip) = out["released"].as_str() {
        println!("lease of {ip} freed");
    }
    Ok(())
}

/// `lassi unblock MAC`.
pub fn unblock(c: UnblockCmd) -> Result<(), String> {
    c.target()?.call(&Request::Unblock { mac: c.mac })?;
    println!("{} unblocked", c.mac);
    Ok(())
}

/// `lassi blocked`.
pub fn blocked(c: BlockedCmd) -> Result<(), String> {
    let v = c.target()?.call(&Request::Blocked)?;
    if c.json {
        print::json(&v["blocked"]);
        return Ok(());
    }
    let empty = Vec::new();
    let macs = v["blocked"].as_array().unwrap_or(&empty);
    for m in macs {
        println!("{}", m.as_str().unwrap_or("?"));
    }
    println!("{} blocked MAC(s)", macs.len());
    Ok(())
}

/// `lassi dhcp-release`.
pub fn dhcp_release(c: DhcpReleaseCmd) -> Result<(), String> {
    let target = c.target()?;
    args::exactly_one(&[c.mac.is_some(), c.ip.is_some()], "MAC or --ip")?;
    let v = target.call(&Request::DhcpRelease {
        mac: c.mac,
        ip: c.ip,
    })?;
    println!(
        "lease of {} ({}) freed",
        v["ip"].as_str().unwrap_or("?"),
        v["mac"].as_str().unwrap_or("?")
    );
    if !v["ended"].is_null() {
        print::ended(&v["ended"]);
    }
    Ok(())
}

/// `lassi garden list|add|remove`.
pub fn garden(cmd: GardenSub) -> Result<(), String> {
    match cmd {
        GardenSub::List(c) => {
            let mut v = c.target()?.call(&Request::GardenList)?;
            if c.json {
                if let Some(m) = v.as_object_mut() {
                    m.remove("ok");
                }
                print::json(&v);
            } else {
                print::garden(&v);
            }
        }
        GardenSub::Add(c) => {
            let entry = c.entry.clone();
            c.target()?.call(&Request::GardenAdd {
                entry: entry.clone(),
            })?;
            println!("{entry} added to the walled garden (until lassi stops)");
        }
        GardenSub::Remove(c) => {
            let entry = c.entry.clone();
            c.target()?.call(&Request::GardenRemove {
                entry: entry.clone(),
            })?;
            println!("{entry} removed from the walled garden");
        }
    }
    Ok(())
}
