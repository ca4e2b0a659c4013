//! The `lassi` command: the gateway daemon and the operator's tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use lassi::config::{self, Config};
use lassi::control::{client, ControlRequest as Request};
use lassi::wire::MacAddr;

mod cli;
use lassi::logger;

use cli::Target;

#[derive(Parser)]
#[command(name = "lassi", version, about = "Captive-portal hotspot gateway")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
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
    /// Print the TOML equivalent of an OpenWrt UCI config (/etc/config/lassi).
    /// lassi reads UCI files directly (run, check-config, reload); this shows
    /// what it reads them as.
    ConvertUci {
        /// UCI file, e.g. /etc/config/lassi.
        file: PathBuf,
    },
    /// List clients and their sessions, filtered by IP, MAC, user or
    /// session id (every filter given must match).
    Sessions {
        #[command(flatten)]
        filter: cli::FilterArgs,
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
    /// Log a client in by MAC or IP (operator override), with per-session
    /// limits; unset limits come from session.defaults.
    Authorize {
        #[command(flatten)]
        args: cli::AuthorizeArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Make the running lassi re-read its config file, users file and pages
    /// and apply what changed, without ending any session (SIGHUP does the
    /// same). Prints the keys that changed; a config that does not validate
    /// or a change that needs a restart is refused with the key and reason
    /// (exit status 1), and lassi keeps its old configuration.
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// End sessions by MAC, IP, user (all of the user's) or session id;
    /// clients keep their leases and see the portal again.
    Logout {
        #[command(flatten)]
        args: cli::LogoutArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Block a MAC: its session ends, its lease is freed, and it gets no
    /// lease, no portal and no forwarding until unblocked (kept across restarts).
    Block {
        /// Client MAC.
        mac: MacAddr,
        #[command(flatten)]
        target: Target,
    },
    /// Let a blocked MAC in again.
    Unblock {
        /// Client MAC.
        mac: MacAddr,
        #[command(flatten)]
        target: Target,
    },
    /// List the blocked MACs.
    Blocked {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Free a client's lease as if it had sent DHCPRELEASE (its session
    /// ends and is accounted).
    DhcpRelease {
        #[command(flatten)]
        args: cli::ClientArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Show or edit the walled garden live (edits last until lassi stops).
    Garden {
        #[command(subcommand)]
        cmd: cli::GardenCmd,
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
            lassi::daemon::run(cfg, config)
        }
        Cmd::Reload { target } => {
            let v = client::call(&target.socket()?, &Request::Reload)?;
            println!("{}", reload_summary(&v));
            Ok(())
        }
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::ImportCoova { files, users_out } => import_coova(&files, &users_out),
        Cmd::ConvertUci { file } => convert_uci(&file),
        Cmd::Sessions {
            filter,
            json,
            target,
        } => cli::sessions(filter, json, &target),
        Cmd::Status { target } => {
            let mut v = client::call(&target.socket()?, &Request::Status)?;
            if let Some(m) = v.as_object_mut() {
                m.remove("ok");
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
        Cmd::Authorize { args, target } => cli::authorize(args, &target),
        Cmd::Logout { args, target } => cli::logout(args, &target),
        Cmd::Block { mac, target } => cli::block(mac, &target),
        Cmd::Unblock { mac, target } => cli::unblock(mac, &target),
        Cmd::Blocked { json, target } => cli::blocked(json, &target),
        Cmd::DhcpRelease { args, target } => cli::dhcp_release(args, &target),
        Cmd::Garden { cmd } => cli::garden(cmd),
    }
}

/// "reloaded FILE: changed a, b" from the reply of `lassi reload`.
fn reload_summary(v: &serde_json::Value) -> String {
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (changed, reread) = (list("changed"), list("reread"));
    let file = v["file"].as_str().unwrap_or("?");
    let mut out = if changed.is_empty() {
        format!("reloaded {file}: no key changed")
    } else {
        format!("reloaded {file}: changed {}", changed.join(", "))
    };
    if !reread.is_empty() {
        out.push_str(&format!(" (re-read {})", reread.join(", ")));
    }
    out
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

/// `lassi convert-uci FILE`: the TOML lassi reads a UCI file as, checked.
fn convert_uci(file: &std::path::Path) -> Result<(), String> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    let toml = lassi::uci::lassi::to_toml(&name, &text).map_err(|e| format!("{name}: {e}"))?;
    // Print it only if lassi would accept it: a converted file that does
    // not validate would just move the error to the next start.
    Config::parse(&toml).map_err(|e| format!("{name}: {e}"))?;
    print!("{toml}");
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
