//! The `lassi` command: the gateway daemon and the operator's tools.

use std::path::PathBuf;
use std::process::ExitCode;

use lassi::config::{self, Config};
use lassi::control::{client, ControlRequest as Request};

mod cli;
use lassi::logger;

use cli::args::{Cli, Cmd};

fn main() -> ExitCode {
    // argh has no --version; operators and packaging scripts expect one.
    if matches!(std::env::args().nth(1).as_deref(), Some("--version" | "-V")) {
        println!("lassi {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let cli: Cli = argh::from_env();
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
        Cmd::Run(c) => run_gateway(c.config, c.log_level),
        Cmd::Reload(c) => {
            let v = client::call(&c.target()?.socket()?, &Request::Reload)?;
            println!("{}", reload_summary(&v));
            Ok(())
        }
        Cmd::CheckConfig(c) => check_config(&c.file),
        Cmd::ImportCoova(c) => import_coova(&c.files, &c.users_out),
        Cmd::ConvertUci(c) => convert_uci(&c.file),
        Cmd::Sessions(c) => cli::sessions(c),
        Cmd::Status(c) => {
            let mut v = client::call(&c.target()?.socket()?, &Request::Status)?;
            if let Some(m) = v.as_object_mut() {
                m.remove("ok");
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
        Cmd::Authorize(c) => cli::authorize(c),
        Cmd::Logout(c) => cli::logout(c),
        Cmd::Block(c) => cli::block(c),
        Cmd::Unblock(c) => cli::unblock(c),
        Cmd::Blocked(c) => cli::blocked(c),
        Cmd::DhcpRelease(c) => cli::dhcp_release(c),
        Cmd::Garden(c) => cli::garden(c.cmd),
    }
}

/// `lassi run`: load the config, start logging, run until stopped.
fn run_gateway(config: PathBuf, log_level: Option<String>) -> Result<(), String> {
    let cli_level = log_level
        .map(|l| config::parse_level("--log-level", &l))
        .transpose()
        .map_err(|e| e.to_string())?;
    let cfg = Config::load(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    logger::init(&cfg.log, ansi, cli_level);
    lassi::daemon::run(cfg, config)
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
    if files.is_empty() {
        return Err("import-coova: name at least one CoovaChilli configuration FILE".into());
    }
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
