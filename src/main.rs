//! The `lassi` command: the gateway daemon and the operator's tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

use lassi::config::{self, Config};
use lassi::control::{client, ControlRequest as Request};
use lassi::wire::MacAddr;

use lassi::logger;

#[derive(Parser)]
#[command(name = "lassi", version, about = "Captive-portal hotspot gateway")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// Where to find a running lassi: an explicit socket, or the one named in a config.
#[derive(clap::Args)]
struct Target {
    /// Control socket of the running lassi.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Read the control socket path from this config file.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "control")]
    config: Option<PathBuf>,
}

impl Target {
    fn socket(&self) -> Result<PathBuf, String> {
        match (&self.control, &self.config) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(c)) => Ok(Config::load(c)
                .map_err(|e| format!("{}: {e}", c.display()))?
                .control
                .socket),
            (None, None) => Ok(config::default_socket()),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway in the foreground (SIGTERM or Ctrl-C stops it cleanly).
    Run {
        /// Configuration file (see examples/lassi.toml).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Log level: error, warn, info, debug, trace (overrides log.level).
        #[arg(long)]
        log_level: Option<String>,
    },
    /// Validate a configuration file without starting anything.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
    },
    /// Print a lassi config equivalent to a CoovaChilli configuration
    /// (chilli.conf, /etc/chilli/{defaults,config} HS_* files or UCI
    /// /etc/config/chilli; later files override earlier ones). Options
    /// without a lassi equivalent are listed at the top and on stderr.
    ImportCoova {
        /// CoovaChilli configuration files, e.g. /etc/chilli/defaults /etc/chilli/config.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write chilli's localusers file, converted, here (the output's portal.users_file).
        #[arg(long, value_name = "FILE", default_value = "/etc/lassi/users")]
        users_out: PathBuf,
    },
    /// List clients and their sessions.
    Sessions {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Sessions plus drop counters, DHCP and device statistics (JSON).
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Log a client in by its MAC address (operator override).
    Authorize {
        /// Client MAC, aa:bb:cc:dd:ee:ff or AA-BB-CC-DD-EE-FF.
        mac: MacAddr,
        /// User name to record for the session.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// End a client's session (it keeps its lease and sees the portal again).
    Logout {
        /// Client MAC.
        mac: MacAddr,
        #[command(flatten)]
        target: Target,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lassi: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::Run { config, log_level } => {
            let cli_level = log_level
                .map(|l| config::parse_level("--log-level", &l))
                .transpose()
                .map_err(|e| e.to_string())?;
            let cfg = Config::load(&config).map_err(|e| format!("{}: {e}", config.display()))?;
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            logger::init(&cfg.log, ansi, cli_level);
            lassi::daemon::run(cfg)
        }
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::ImportCoova { files, users_out } => import_coova(&files, &users_out),
        Cmd::Sessions { json, target } => {
            let v = client::call(&target.socket()?, &Request::Status)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v["clients"]).unwrap_or_default()
                );
            } else {
                print_sessions(&v);
            }
            Ok(())
        }
        Cmd::Status { target } => {
            let mut v = client::call(&target.socket()?, &Request::Status)?;
            if let Some(m) = v.as_object_mut() {
                m.remove("ok");
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
        Cmd::Authorize { mac, user, target } => {
            let v = client::call(&target.socket()?, &Request::Authorize { mac, user })?;
            println!(
                "{mac} authorized (ip {}, session {})",
                v["client"]["ip"].as_str().unwrap_or("?"),
                v["client"]["session_id"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        Cmd::Logout { mac, target } => {
            let v = client::call(&target.socket()?, &Request::Logout { mac })?;
            let s = &v["session"];
            println!(
                "{mac} logged out after {} s ({} octets in, {} out)",
                (s["ended"].as_u64().unwrap_or(0) - s["started"].as_u64().unwrap_or(0)) / 1000,
                s["counters"]["octets_in"],
                s["counters"]["octets_out"]
            );
            Ok(())
        }
    }
}

/// `lassi check-config FILE`: the config and the users file it names.
fn check_config(file: &std::path::Path) -> Result<(), String> {
    let cfg = Config::load(file).map_err(|e| format!("{}: {e}", file.display()))?;
    // The users file is part of the configuration: check it now
    // rather than at the next start.
    if let (config::AuthBackend::Local, Some(users)) = (cfg.portal.auth, &cfg.portal.users_file) {
        let loaded = lassi::portal::files::load_users(users)
            .map_err(|e| format!("{}: portal.users_file: {e}", file.display()))?;
        println!("{}: {} user(s)", users.display(), loaded.len());
    }
    println!(
        "{}: ok (LAN {} on {}, gateway {}, pool {}–{}, {} static lease(s))",
        file.display(),
        cfg.lan.network,
        cfg.lan.interface,
        cfg.lan.gateway,
        cfg.lan.dhcp_range.0,
        cfg.lan.dhcp_range.1,
        cfg.lan.static_leases.len()
    );
    Ok(())
}

/// `lassi import-coova`: reads the files, prints the config, warns on stderr,
/// and writes the converted local users when chilli's config names a file.
fn import_coova(files: &[PathBuf], users_out: &std::path::Path) -> Result<(), String> {
    use lassi::import;
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| e.to_string());
    let mut texts = Vec::new();
    for f in files {
        let name = f.display().to_string();
        texts.push((
            name.clone(),
            read(&name).map_err(|e| format!("{name}: {e}"))?,
        ));
    }
    // An `include` names a file as chilli would open it, or one beside the first file.
    let beside = files[0].parent().unwrap_or(std::path::Path::new("."));
    let mut include =
        |p: &str| read(p).or_else(|e| read(&beside.join(p).display().to_string()).map_err(|_| e));
    let options = import::read_all(&texts, &mut include)?;
    let resolvers = read("/etc/resolv.conf").unwrap_or_default();
    let users_path = users_out.display().to_string();
    let imported = import::map(&options, &import::resolv_conf(&resolvers), &users_path)?;
    let mut warnings = imported.warnings.clone();
    if let Some(coova_users) = &imported.local_users {
        let text = read(coova_users).map_err(|e| format!("localusers {coova_users}: {e}"))?;
        let (users, more) = import::convert_local_users(coova_users, &text);
        std::fs::write(users_out, users).map_err(|e| format!("{users_path}: {e}"))?;
        eprintln!("lassi: wrote {users_path} from {coova_users}");
        warnings.extend(more);
    }
    for w in &warnings {
        eprintln!("lassi: warning: {w}");
    }
    print!("{}", imported.toml);
    Ok(())
}

/// UTC `YYYY-MM-DD HH:MM:SS` from Unix milliseconds (no time-zone database
/// on small routers; operators read UTC in logs anyway).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = logger::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn print_sessions(v: &Value) {
    let empty = Vec::new();
    let clients = v["clients"].as_array().unwrap_or(&empty);
    println!(
        "{:<17}  {:<15}  {:<12}  {:<12}  {:<19}  {:>12}  {:>12}  {:>9}  {:>9}",
        "MAC",
        "IP",
        "STATE",
        "USER",
        "SESSION START (UTC)",
        "OCTETS IN",
        "OCTETS OUT",
        "PKTS IN",
        "PKTS OUT"
    );
    for c in clients {
        let started = c["authorized_at"]
            .as_u64()
            .map(utc)
            .unwrap_or_else(|| "-".into());
        let k = &c["counters"];
        println!(
            "{:<17}  {:<15}  {:<12}  {:<12}  {:<19}  {:>12}  {:>12}  {:>9}  {:>9}",
            c["mac"].as_str().unwrap_or("?"),
            c["ip"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            c["user"].as_str().unwrap_or("-"),
            started,
            k["octets_in"],
            k["octets_out"],
            k["packets_in"],
            k["packets_out"]
        );
    }
    println!("{} client(s)", clients.len());
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_359_600_000), "2026-11-22 15:00:00");
    }
}
