//! The command line: every subcommand and its arguments, parsed with argh
//! (chosen over clap for the routers' 2 MiB budget: clap's builder alone
//! was about 120 KB of each MIPS binary, argh's generated parsers a few KB).
//!
//! argh has no argument groups or flattening, so the few rules clap used to
//! enforce (exactly one way of naming a client, `--control` or `--config`)
//! are checked here, with errors that name the arguments.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use argh::FromArgs;

use lassi::config::WalledGarden;
use lassi::wire::MacAddr;

use super::Target;

/// Declares an operator command: its own arguments plus the two that say
/// where the running lassi is (`--control PATH` or `-c/--config FILE`).
macro_rules! control_command {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
    ) => {
        #[derive(FromArgs)]
        $(#[$meta])*
        pub struct $name {
            // Raw tokens, not `ty` fragments: argh's derive must see `Option`
            // and `bool` in the field types to know how to parse them.
            $($fields)*
            /// control socket of the running lassi
            #[argh(option, arg_name = "PATH")]
            pub control: Option<PathBuf>,
            /// read the control socket path from this config file
            #[argh(option, short = 'c', arg_name = "FILE")]
            pub config: Option<PathBuf>,
        }

        impl $name {
            /// Where the running lassi is.
            pub fn target(&self) -> Result<Target, String> {
                Target::new(self.control.clone(), self.config.clone())
            }
        }
    };
}

/// Captive-portal hotspot gateway (`lassi --version` prints the version).
#[derive(FromArgs)]
pub struct Cli {
    #[argh(subcommand)]
    pub command: Cmd,
}

/// Every subcommand of `lassi`.
#[derive(FromArgs)]
#[argh(subcommand)]
pub enum Cmd {
    Run(RunCmd),
    CheckConfig(CheckConfigCmd),
    ImportCoova(ImportCoovaCmd),
    ConvertUci(ConvertUciCmd),
    Sessions(SessionsCmd),
    Status(StatusCmd),
    Authorize(AuthorizeCmd),
    Reload(ReloadCmd),
    Logout(LogoutCmd),
    Block(BlockCmd),
    Unblock(UnblockCmd),
    Blocked(BlockedCmd),
    DhcpRelease(DhcpReleaseCmd),
    Garden(GardenCmd),
}

/// Run the gateway in the foreground (SIGTERM or Ctrl-C stops it cleanly).
#[derive(FromArgs)]
#[argh(subcommand, name = "run")]
pub struct RunCmd {
    /// configuration file (see examples/lassi.toml)
    #[argh(option, short = 'c', arg_name = "FILE")]
    pub config: PathBuf,
    /// log level: error, warn, info, debug, trace (overrides log.level)
    #[argh(option)]
    pub log_level: Option<String>,
}

/// Validate a configuration file without starting anything.
#[derive(FromArgs)]
#[argh(subcommand, name = "check-config")]
pub struct CheckConfigCmd {
    /// configuration file
    #[argh(positional, arg_name = "FILE")]
    pub file: PathBuf,
}

/// Print a lassi config equivalent to a CoovaChilli configuration
/// (chilli.conf, the HS_* files /etc/chilli/defaults and /etc/chilli/config,
/// or UCI /etc/config/chilli; later files override earlier ones). Options without
/// a lassi equivalent are listed at the top and on stderr.
#[derive(FromArgs)]
#[argh(subcommand, name = "import-coova")]
pub struct ImportCoovaCmd {
    /// coovaChilli configuration files, e.g. /etc/chilli/defaults /etc/chilli/config
    #[argh(positional, arg_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// write chilli's localusers file, converted, here (the output's portal.users_file)
    #[argh(
        option,
        arg_name = "FILE",
        default = "PathBuf::from(\"/etc/lassi/users\")"
    )]
    pub users_out: PathBuf,
}

/// Print the TOML equivalent of an OpenWrt UCI config (/etc/config/lassi).
/// lassi reads UCI files directly (run, check-config, reload); this shows
/// what it reads them as.
#[derive(FromArgs)]
#[argh(subcommand, name = "convert-uci")]
pub struct ConvertUciCmd {
    /// UCI file, e.g. /etc/config/lassi
    #[argh(positional, arg_name = "FILE")]
    pub file: PathBuf,
}

control_command! {
    /// List clients and their sessions, filtered by IP, MAC, user or
    /// session id (every filter given must match).
    #[argh(subcommand, name = "sessions")]
    pub struct SessionsCmd {
        /// only the client with this address
        #[argh(option, arg_name = "IP")]
        pub ip: Option<Ipv4Addr>,
        /// only the client with this MAC
        #[argh(option, arg_name = "MAC")]
        pub mac: Option<MacAddr>,
        /// only sessions of this user
        #[argh(option, arg_name = "NAME")]
        pub user: Option<String>,
        /// only the session with this id (Acct-Session-Id)
        #[argh(option, arg_name = "ID")]
        pub session_id: Option<String>,
        /// machine-readable output
        #[argh(switch)]
        pub json: bool,
    }
}

control_command! {
    /// Sessions plus drop counters, DHCP and device statistics (JSON).
    #[argh(subcommand, name = "status")]
    pub struct StatusCmd {}
}

control_command! {
    /// Log a client in by MAC or IP (operator override), with per-session
    /// limits; unset limits come from session.defaults.
    #[argh(subcommand, name = "authorize")]
    pub struct AuthorizeCmd {
        /// client MAC, aa:bb:cc:dd:ee:ff or AA-BB-CC-DD-EE-FF
        #[argh(positional, arg_name = "MAC")]
        pub mac: Option<MacAddr>,
        /// the client with this address (instead of the MAC)
        #[argh(option, arg_name = "IP")]
        pub ip: Option<Ipv4Addr>,
        /// user name to record for the session
        #[argh(option)]
        pub user: Option<String>,
        /// end the session this many seconds after login
        #[argh(option, arg_name = "S", from_str_fn(positive_u32))]
        pub session_timeout: Option<u32>,
        /// end the session after this many seconds without traffic
        #[argh(option, arg_name = "S", from_str_fn(positive_u32))]
        pub idle_timeout: Option<u32>,
        /// seconds between accounting Interim-Updates
        #[argh(option, arg_name = "S", from_str_fn(positive_u32))]
        pub interim_interval: Option<u32>,
        /// upload rate limit, bit/s
        #[argh(option, arg_name = "BPS", from_str_fn(positive_u64))]
        pub bandwidth_up: Option<u64>,
        /// download rate limit, bit/s
        #[argh(option, arg_name = "BPS", from_str_fn(positive_u64))]
        pub bandwidth_down: Option<u64>,
        /// bytes the client may send
        #[argh(option, arg_name = "N", from_str_fn(positive_u64))]
        pub max_octets_in: Option<u64>,
        /// bytes the client may receive
        #[argh(option, arg_name = "N", from_str_fn(positive_u64))]
        pub max_octets_out: Option<u64>,
        /// bytes both ways together
        #[argh(option, arg_name = "N", from_str_fn(positive_u64))]
        pub max_octets_total: Option<u64>,
    }
}

control_command! {
    /// Make the running lassi re-read its config file, users file and pages
    /// and apply what changed, without ending any session (SIGHUP does the
    /// same). Prints the keys that changed; a config that does not validate
    /// or a change that needs a restart is refused with the key and reason
    /// (exit status 1), and lassi keeps its old configuration.
    #[argh(subcommand, name = "reload")]
    pub struct ReloadCmd {}
}

control_command! {
    /// End sessions by MAC, IP, user (all of the user's) or session id;
    /// clients keep their leases and see the portal again.
    #[argh(subcommand, name = "logout")]
    pub struct LogoutCmd {
        /// client MAC, aa:bb:cc:dd:ee:ff or AA-BB-CC-DD-EE-FF
        #[argh(positional, arg_name = "MAC")]
        pub mac: Option<MacAddr>,
        /// the client with this address
        #[argh(option, arg_name = "IP")]
        pub ip: Option<Ipv4Addr>,
        /// every session of this user
        #[argh(option, arg_name = "NAME")]
        pub user: Option<String>,
        /// the session with this id
        #[argh(option, arg_name = "ID")]
        pub session_id: Option<String>,
    }
}

control_command! {
    /// Block a MAC: its session ends, its lease is freed, and it gets no
    /// lease, no portal and no forwarding until unblocked (kept across restarts).
    #[argh(subcommand, name = "block")]
    pub struct BlockCmd {
        /// client MAC
        #[argh(positional, arg_name = "MAC")]
        pub mac: MacAddr,
    }
}

control_command! {
    /// Let a blocked MAC in again.
    #[argh(subcommand, name = "unblock")]
    pub struct UnblockCmd {
        /// client MAC
        #[argh(positional, arg_name = "MAC")]
        pub mac: MacAddr,
    }
}

control_command! {
    /// List the blocked MACs.
    #[argh(subcommand, name = "blocked")]
    pub struct BlockedCmd {
        /// machine-readable output
        #[argh(switch)]
        pub json: bool,
    }
}

control_command! {
    /// Free a client's lease as if it had sent DHCPRELEASE (its session
    /// ends and is accounted).
    #[argh(subcommand, name = "dhcp-release")]
    pub struct DhcpReleaseCmd {
        /// client MAC
        #[argh(positional, arg_name = "MAC")]
        pub mac: Option<MacAddr>,
        /// the client with this address
        #[argh(option, arg_name = "IP")]
        pub ip: Option<Ipv4Addr>,
    }
}

/// Show or edit the walled garden live (edits last until lassi stops).
#[derive(FromArgs)]
#[argh(subcommand, name = "garden")]
pub struct GardenCmd {
    #[argh(subcommand)]
    pub cmd: GardenSub,
}

/// `lassi garden list|add|remove`.
#[derive(FromArgs)]
#[argh(subcommand)]
pub enum GardenSub {
    List(GardenListCmd),
    Add(GardenAddCmd),
    Remove(GardenRemoveCmd),
}

control_command! {
    /// Configured entries, operator-added ones (marked) and the addresses open now.
    #[argh(subcommand, name = "list")]
    pub struct GardenListCmd {
        /// machine-readable output
        #[argh(switch)]
        pub json: bool,
    }
}

control_command! {
    /// Open an entry (address, CIDR network, host name or *.domain) until
    /// lassi stops; host names are resolved through lan.dns.
    #[argh(subcommand, name = "add")]
    pub struct GardenAddCmd {
        /// the entry, as in portal.walled_garden
        #[argh(positional, arg_name = "ENTRY", from_str_fn(garden_entry))]
        pub entry: String,
    }
}

control_command! {
    /// Close an entry added with `garden add`.
    #[argh(subcommand, name = "remove")]
    pub struct GardenRemoveCmd {
        /// the entry, as it was added
        #[argh(positional, arg_name = "ENTRY", from_str_fn(garden_entry))]
        pub entry: String,
    }
}

/// A positive whole number (limits: 0 would mean nothing sensible).
fn positive_u32(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {}", u32::MAX)),
    }
}

fn positive_u64(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {}", u64::MAX)),
    }
}

/// A walled-garden entry, checked with `portal.walled_garden`'s syntax.
fn garden_entry(s: &str) -> Result<String, String> {
    s.parse::<WalledGarden>()?;
    Ok(s.trim().to_string())
}

/// Exactly one of the ways of naming a client was given, or an error listing them.
pub fn exactly_one(given: &[bool], names: &str) -> Result<(), String> {
    match given.iter().filter(|g| **g).count() {
        1 => Ok(()),
        0 => Err(format!("name the client with one of {names}")),
        _ => Err(format!("give only one of {names}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::from_args(&["lassi"], args).map_err(|e| e.output)
    }

    #[test]
    fn limits_must_be_positive_and_errors_name_the_option() {
        let e = parse(&["authorize", "--ip", "10.0.0.2", "--session-timeout", "-5"])
            .err()
            .expect("negative timeout refused");
        assert!(e.contains("--session-timeout"), "{e}");
        let e = parse(&["authorize", "--ip", "10.0.0.2", "--max-octets-in", "0"])
            .err()
            .expect("zero quota refused");
        assert!(e.contains("--max-octets-in"), "{e}");
        let e = parse(&["sessions", "--mac", "02:00:zz:00:00:01"])
            .err()
            .expect("bad MAC refused");
        assert!(e.contains("--mac"), "{e}");
    }

    #[test]
    fn control_and_config_are_alternatives() {
        let Ok(Cli {
            command: Cmd::Status(s),
        }) = parse(&["status", "--control", "/run/x.sock"])
        else {
            panic!("status parses")
        };
        assert_eq!(
            s.target().and_then(|t| t.socket()),
            Ok(PathBuf::from("/run/x.sock"))
        );
        let Ok(Cli {
            command: Cmd::Status(s),
        }) = parse(&["status", "--control", "/a", "-c", "/b"])
        else {
            panic!("status parses")
        };
        let e = s.target().err().expect("both refused");
        assert!(e.contains("--control") && e.contains("--config"), "{e}");
    }

    #[test]
    fn one_way_of_naming_a_client() {
        assert!(exactly_one(&[true, false], "MAC or --ip").is_ok());
        let e = exactly_one(&[false, false], "MAC or --ip").unwrap_err();
        assert!(e.contains("MAC or --ip"), "{e}");
        assert!(exactly_one(&[true, true], "MAC or --ip").is_err());
    }

    #[test]
    fn garden_entries_are_checked() {
        assert!(parse(&["garden", "add", "*.example.com"]).is_ok());
        let e = parse(&["garden", "add", "10.0.0.0/99"])
            .err()
            .expect("bad CIDR refused");
        assert!(e.contains("ENTRY") || e.contains("entry"), "{e}");
    }
}
