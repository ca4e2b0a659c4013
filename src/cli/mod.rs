//! The operator's commands on a running lassi (chilli_query parity): their
//! arguments, the requests they send on the control socket, and how the
//! answers are printed (a table, or `--json`). Errors come back from lassi
//! naming what was not found, and the command exits non-zero.

mod print;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::Value;

use lassi::config::{self, Config, WalledGarden};
use lassi::control::{client, ControlRequest as Request};
use lassi::session::{ClientFilter, SessionLimits};
use lassi::wire::MacAddr;

/// Where to find a running lassi: an explicit socket, or the one named in a config.
#[derive(clap::Args)]
pub struct Target {
    /// Control socket of the running lassi.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Read the control socket path from this config file.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "control")]
    config: Option<PathBuf>,
}

impl Target {
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

/// Which clients `lassi sessions` lists: every criterion given must match.
#[derive(clap::Args)]
pub struct FilterArgs {
    /// Only the client with this address.
    #[arg(long, value_name = "IP")]
    ip: Option<Ipv4Addr>,
    /// Only the client with this MAC.
    #[arg(long, value_name = "MAC")]
    mac: Option<MacAddr>,
    /// Only sessions of this user.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Only the session with this id (Acct-Session-Id).
    #[arg(long, value_name = "ID")]
    session_id: Option<String>,
}

impl FilterArgs {
    fn filter(self) -> ClientFilter {
        ClientFilter {
            ip: self.ip,
            mac: self.mac,
            user: self.user,
            session_id: self.session_id,
        }
    }
}

/// `lassi logout`: exactly one way of naming the session(s).
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct LogoutArgs {
    /// Client MAC, aa:bb:cc:dd:ee:ff or AA-BB-CC-DD-EE-FF.
    mac: Option<MacAddr>,
    /// The client with this address.
    #[arg(long, value_name = "IP")]
    ip: Option<Ipv4Addr>,
    /// Every session of this user.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The session with this id.
    #[arg(long, value_name = "ID")]
    session_id: Option<String>,
}

/// A client named by MAC or by address (`lassi dhcp-release`).
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct ClientArgs {
    /// Client MAC.
    mac: Option<MacAddr>,
    /// The client with this address.
    #[arg(long, value_name = "IP")]
    ip: Option<Ipv4Addr>,
}

/// A positive whole number (limits: 0 would mean nothing sensible).
fn positive_u32() -> clap::builder::RangedU64ValueParser<u32> {
    clap::builder::RangedU64ValueParser::<u32>::new().range(1..=u64::from(u32::MAX))
}

fn positive_u64() -> clap::builder::RangedU64ValueParser<u64> {
    clap::builder::RangedU64ValueParser::<u64>::new().range(1..)
}

/// `lassi authorize`: the client (MAC or `--ip`), the user name and the
/// session's limits; unset limits come from `session.defaults`.
#[derive(clap::Args)]
pub struct AuthorizeArgs {
    /// Client MAC, aa:bb:cc:dd:ee:ff or AA-BB-CC-DD-EE-FF.
    #[arg(required_unless_present = "ip", conflicts_with = "ip")]
    mac: Option<MacAddr>,
    /// The client with this address (instead of the MAC).
    #[arg(long, value_name = "IP")]
    ip: Option<Ipv4Addr>,
    /// User name to record for the session.
    #[arg(long)]
    user: Option<String>,
    /// End the session this many seconds after login.
    #[arg(long, value_name = "S", value_parser = positive_u32(), allow_negative_numbers = true)]
    session_timeout: Option<u32>,
    /// End the session after this many seconds without traffic.
    #[arg(long, value_name = "S", value_parser = positive_u32(), allow_negative_numbers = true)]
    idle_timeout: Option<u32>,
    /// Seconds between accounting Interim-Updates.
    #[arg(long, value_name = "S", value_parser = positive_u32(), allow_negative_numbers = true)]
    interim_interval: Option<u32>,
    /// Upload rate limit, bit/s.
    #[arg(long, value_name = "BPS", value_parser = positive_u64(), allow_negative_numbers = true)]
    bandwidth_up: Option<u64>,
    /// Download rate limit, bit/s.
    #[arg(long, value_name = "BPS", value_parser = positive_u64(), allow_negative_numbers = true)]
    bandwidth_down: Option<u64>,
    /// Bytes the client may send.
    #[arg(long, value_name = "N", value_parser = positive_u64(), allow_negative_numbers = true)]
    max_octets_in: Option<u64>,
    /// Bytes the client may receive.
    #[arg(long, value_name = "N", value_parser = positive_u64(), allow_negative_numbers = true)]
    max_octets_out: Option<u64>,
    /// Bytes both ways together.
    #[arg(long, value_name = "N", value_parser = positive_u64(), allow_negative_numbers = true)]
    max_octets_total: Option<u64>,
}

impl AuthorizeArgs {
    fn request(self) -> Request {
        Request::Authorize {
            mac: self.mac,
            ip: self.ip,
            user: self.user,
            limits: SessionLimits {
                session_timeout: self.session_timeout,
                idle_timeout: self.idle_timeout,
                terminate_at: None,
                interim_interval: self.interim_interval,
                bandwidth_up_bps: self.bandwidth_up,
                bandwidth_down_bps: self.bandwidth_down,
                max_input_octets: self.max_octets_in,
                max_output_octets: self.max_octets_out,
                max_total_octets: self.max_octets_total,
                filter_id: None,
            },
        }
    }
}

/// A walled-garden entry, checked with `portal.walled_garden`'s syntax.
fn garden_entry(s: &str) -> Result<String, String> {
    s.parse::<WalledGarden>()?;
    Ok(s.trim().to_string())
}

/// `lassi garden …`.
#[derive(clap::Subcommand)]
pub enum GardenCmd {
    /// Configured entries, operator-added ones (marked) and the addresses open now.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Open an entry (address, CIDR network, host name or *.domain) until
    /// lassi stops; host names are resolved through lan.dns.
    Add {
        /// The entry, as in portal.walled_garden.
        #[arg(value_parser = garden_entry)]
        entry: String,
        #[command(flatten)]
        target: Target,
    },
    /// Close an entry added with `garden add`.
    Remove {
        /// The entry, as it was added.
        #[arg(value_parser = garden_entry)]
        entry: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `lassi sessions`.
pub fn sessions(filter: FilterArgs, json: bool, target: &Target) -> Result<(), String> {
    let v = target.call(&Request::Sessions {
        filter: filter.filter(),
    })?;
    if json {
        print::json(&v["clients"]);
    } else {
        print::sessions(&v);
    }
    Ok(())
}

/// `lassi authorize`.
pub fn authorize(args: AuthorizeArgs, target: &Target) -> Result<(), String> {
    let v = target.call(&args.request())?;
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
pub fn logout(args: LogoutArgs, target: &Target) -> Result<(), String> {
    let filter = ClientFilter {
        ip: args.ip,
        mac: args.mac,
        user: args.user,
        session_id: args.session_id,
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
pub fn block(mac: MacAddr, target: &Target) -> Result<(), String> {
    let v = target.call(&Request::Block { mac })?;
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
pub fn unblock(mac: MacAddr, target: &Target) -> Result<(), String> {
    target.call(&Request::Unblock { mac })?;
    println!("{mac} unblocked");
    Ok(())
}

/// `lassi blocked`.
pub fn blocked(json: bool, target: &Target) -> Result<(), String> {
    let v = target.call(&Request::Blocked)?;
    if json {
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
pub fn dhcp_release(args: ClientArgs, target: &Target) -> Result<(), String> {
    let v = target.call(&Request::DhcpRelease {
        mac: args.mac,
        ip: args.ip,
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
pub fn garden(cmd: GardenCmd) -> Result<(), String> {
    match cmd {
        GardenCmd::List { json, target } => {
            let mut v = target.call(&Request::GardenList)?;
            if json {
                if let Some(m) = v.as_object_mut() {
                    m.remove("ok");
                }
                print::json(&v);
            } else {
                print::garden(&v);
            }
        }
        GardenCmd::Add { entry, target } => {
            target.call(&Request::GardenAdd {
                entry: entry.clone(),
            })?;
            println!("{entry} added to the walled garden (until lassi stops)");
        }
        GardenCmd::Remove { entry, target } => {
            target.call(&Request::GardenRemove {
                entry: entry.clone(),
            })?;
            println!("{entry} removed from the walled garden");
        }
    }
    Ok(())
}
