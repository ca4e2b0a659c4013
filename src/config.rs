//! lassi's configuration: one typed TOML file, validated completely at load.
//!
//! Every refusal names the key (`lan.gateway`) and the reason, so an operator
//! can fix the file without reading source. `examples/lassi.toml` documents
//! every key; keep the two in step.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::dhcp::{DhcpSettings, SettingsError, MTU_RANGE};
use crate::wire::MacAddr;

pub use crate::wire::ipv6::Ipv6Net;
pub use crate::wire::Ipv4Net;

mod from_toml;
mod ipv6;
mod ops;
pub use ops::{parse_level, HooksConfig, LogConfig, LogFormat, LogOutput};

/// The whole configuration after validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The guest-facing side.
    pub lan: LanConfig,
    /// The TUN device and the way out.
    pub uplink: UplinkConfig,
    /// Forwarding engine settings.
    pub dataplane: DataplaneConfig,
    /// The captive portal.
    pub portal: PortalConfig,
    /// Session defaults and limits.
    pub session: SessionConfig,
    /// RADIUS authentication, accounting and CoA (`None`: no RADIUS).
    pub radius: Option<RadiusConfig>,
    /// The local control socket.
    pub control: ControlConfig,
    /// Durable state (leases).
    pub state: StateConfig,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsConfig,
    /// Connection and uplink scripts.
    pub hooks: HooksConfig,
    /// Log level, format and destination.
    pub log: LogConfig,
}

/// `[lan]`: the interface lassi owns and what it hands out there.
#[derive(Clone, Debug, PartialEq)]
pub struct LanConfig {
    /// Interface lassi owns through a raw socket; it carries no kernel IP.
    pub interface: String,
    /// The guest network.
    pub network: Ipv4Net,
    /// lassi's own address on the LAN (router, DHCP server id).
    pub gateway: Ipv4Addr,
    /// DNS servers handed out; unauthorized clients may reach only these.
    pub dns: Vec<Ipv4Addr>,
    /// First and last address of the dynamic pool, inclusive.
    pub dhcp_range: (Ipv4Addr, Ipv4Addr),
    /// Lease duration in seconds.
    pub lease_time: u32,
    /// Lease duration for clients that have not logged in (at most
    /// `lease_time`); the full lease comes with the first renewal after login.
    pub unauthorized_lease_time: u32,
    /// New DHCP clients admitted per second once half the pool is in use or
    /// one kind of client floods offers (each kind a quarter of it); 0 turns
    /// the limit off.
    pub new_client_rate: u32,
    /// Domain name handed out (option 15).
    pub domain: Option<String>,
    /// Interface MTU handed out (option 26).
    pub mtu: Option<u16>,
    /// Drop traffic between two clients (default true).
    pub client_isolation: bool,
    /// Captive portal API URI handed out in DHCP option 114 (RFC 8910).
    pub captive_portal_uri: Option<String>,
    /// Fixed MAC → IP assignments.
    pub static_leases: Vec<(MacAddr, Ipv4Addr)>,
    /// IPv6 on the LAN (`[lan.ipv6]`); `None`: off, every IPv6 frame dropped.
    pub ipv6: Option<LanIpv6Config>,
}

/// `[lan.ipv6]`: router advertisements, neighbour discovery and DHCPv6 on
/// the LAN, and IPv6 forwarded behind the portal (issue 13): guests get
/// addresses, lassi guards the link, and the prefix is routed to lassi's
/// TUN device.
#[derive(Clone, Debug, PartialEq)]
pub struct LanIpv6Config {
    /// The LAN prefix, a /64 (SLAAC and DHCPv6 addresses come from it).
    pub prefix: Ipv6Net,
    /// lassi's own address in the prefix (default: prefix::1).
    pub address: Ipv6Addr,
    /// IPv6 DNS servers announced (RA RDNSS, DHCPv6 option 23); none by default.
    pub dns: Vec<Ipv6Addr>,
    /// Hosts form addresses in the prefix themselves (RA prefix A flag).
    pub slaac: bool,
    /// Hosts take addresses from lassi's DHCPv6 server (RA M flag).
    pub managed: bool,
    /// MaxRtrAdvInterval: seconds between unsolicited RAs at most (4–1800).
    pub ra_interval: u32,
}

/// `[uplink]`: the TUN device to the kernel and NAT toward the WAN.
#[derive(Clone, Debug, PartialEq)]
pub struct UplinkConfig {
    /// Name of the TUN device lassi creates.
    pub tun_name: String,
    /// The WAN interface, needed when `nat` is on.
    pub wan_interface: Option<String>,
    /// Masquerade guest traffic leaving through `wan_interface`.
    pub nat: bool,
    /// Turn on `net.ipv4.ip_forward` at start.
    pub ip_forward: bool,
}

/// How guests are authenticated (`portal.auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthBackend {
    /// Accept the terms, get online (no credentials).
    ClickThrough,
    /// A users file on the gateway.
    Local,
    /// A RADIUS server.
    Radius,
}

/// One walled-garden entry: reachable before login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalledGarden {
    /// An address or network.
    Net(Ipv4Net),
    /// An IPv6 address or network (`2001:db8::1`, `2001:db8::/32`).
    Net6(lassi_engine::wire::ipv6::Ipv6Net),
    /// A host name, resolved at start and refreshed.
    Host(String),
    /// `*.example.org`: every name under the suffix (and the suffix itself),
    /// learnt from the DNS answers clients receive.
    Suffix(String),
}

impl FromStr for WalledGarden {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<Ipv4Addr>() {
            return Ok(WalledGarden::Net(Ipv4Net {
                addr: ip,
                prefix: 32,
            }));
        }
        if s.contains(':') {
            return parse_net6(s).map(WalledGarden::Net6);
        }
        if s.contains('/') {
            return s.parse().map(WalledGarden::Net);
        }
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.len() <= 253
                && n.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        if let Some(suffix) = s.strip_prefix("*.") {
            if valid_name(suffix) {
                return Ok(WalledGarden::Suffix(suffix.to_ascii_lowercase()));
            }
        } else if valid_name(s) {
            return Ok(WalledGarden::Host(s.to_ascii_lowercase()));
        }
        Err(format!(
            "'{s}' is not an address, a CIDR network, a host name or *.domain"
        ))
    }
}

/// An IPv6 address (a /128) or network in CIDR form.
fn parse_net6(s: &str) -> Result<lassi_engine::wire::ipv6::Ipv6Net, String> {
    let (addr, len) = s.split_once('/').unwrap_or((s, "128"));
    let bad = || format!("'{s}' is not an IPv6 address or network");
    let addr: std::net::Ipv6Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    lassi_engine::wire::ipv6::Ipv6Net::new(addr, len).ok_or_else(bad)
}

/// `[portal]`: the splash page, the login API and what is reachable before login.
#[derive(Clone, Debug, PartialEq)]
pub struct PortalConfig {
    /// Port of lassi's own HTTP listener on the gateway address
    /// (CoovaChilli's `uamport`).
    pub port: u16,
    /// External splash server (CoovaChilli's `uamserver`); lassi's own pages
    /// when unset.
    pub uam_server: Option<String>,
    /// Secret shared with the splash server (`uamsecret`).
    pub uam_secret: Option<String>,
    /// How logins are checked.
    pub auth: AuthBackend,
    /// Users file for `auth = "local"`.
    pub users_file: Option<PathBuf>,
    /// Directory whose files override the embedded pages.
    pub pages_dir: Option<PathBuf>,
    /// Where a guest goes after login when there is no original URL.
    pub success_url: Option<String>,
    /// NAS identifier shown to portals (`nasid`).
    pub nas_id: String,
    /// Reachable before login.
    pub walled_garden: Vec<WalledGarden>,
    /// Let unauthorized clients query any DNS server, not only `lan.dns`.
    pub any_dns: bool,
    /// RFC 8908 `venue-info-url`.
    pub venue_info_url: Option<String>,
    /// Seconds a login challenge stays valid.
    pub challenge_timeout: u32,
}

/// `[session]`: limits applied when a login does not set its own, and how
/// lassi notices clients that left.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// Default limits (a login's own limits win).
    pub defaults: crate::session::SessionLimits,
    /// What a used-up quota does.
    pub quota_action: crate::session::QuotaAction,
    /// Seconds of silence before ARP probing (0: never probe).
    pub probe_after: u32,
    /// Seconds between probes.
    pub probe_interval: u32,
    /// Unanswered probes that end the session with Lost-Carrier.
    pub probes: u8,
    /// Seconds after a stop (or crash) within which a new start resumes the
    /// authorized sessions under their ids; later, their Stops go out.
    pub restart_grace: u32,
    /// End every session (NAS-Reboot Stop) at a clean shutdown instead of
    /// keeping it for the next start.
    pub stop_on_shutdown: bool,
}

/// One RADIUS server (`[[radius.server]]`): the engine's own type, so the
/// config, the service and the client engine share one description.
pub use crate::radius::client::ServerConfig as RadiusServer;

/// `[radius]`
#[derive(Clone, Debug, PartialEq)]
pub struct RadiusConfig {
    /// Servers, primary first.
    pub servers: Vec<RadiusServer>,
    /// Seconds before the first resend.
    pub timeout: u32,
    /// Resends per server before failing over.
    pub retries: u32,
    /// Seconds a silent server is passed over.
    pub dead_time: u32,
    /// Seconds between Status-Server probes of a dead server (0: none).
    pub status_interval: u32,
    /// Drop replies without Message-Authenticator (BlastRADIUS hardening).
    pub require_message_authenticator: bool,
    /// NAS-Identifier.
    pub nas_identifier: String,
    /// NAS-IP-Address.
    pub nas_ip: Option<Ipv4Addr>,
    /// Called-Station-Id (default: the LAN MAC, dashed).
    pub called_station_id: Option<String>,
    /// WISPr-Location-ID.
    pub location_id: Option<String>,
    /// WISPr-Location-Name.
    pub location_name: Option<String>,
    /// CoovaChilli's client view point for octet counters and quotas.
    pub swap_octets: bool,
    /// Authenticate clients by MAC when they get a lease.
    pub mac_auth: bool,
    /// Appended to the dashed MAC in User-Name for MAC authentication.
    pub mac_suffix: String,
    /// Password sent for MAC authentication.
    pub mac_password: String,
    /// Most accounting records kept in the spool.
    pub spool_max_records: usize,
    /// The CoA/Disconnect listener.
    pub coa: Option<CoaConfig>,
}

/// `[radius.coa]`
#[derive(Clone, Debug, PartialEq)]
pub struct CoaConfig {
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// Who may send requests, with their secrets.
    pub clients: Vec<(std::net::IpAddr, String)>,
    /// Seconds an Event-Timestamp may be off lassi's clock (0: unchecked).
    pub event_timestamp_window: u32,
    /// Refuse requests without Event-Timestamp (402 Missing-Attribute).
    pub require_event_timestamp: bool,
    /// NAK a stale Event-Timestamp (404) instead of dropping it silently.
    pub nak_stale_event_timestamp: bool,
    /// Drop requests without Message-Authenticator.
    pub require_message_authenticator: bool,
}

/// `[dataplane]`
#[derive(Clone, Debug, PartialEq)]
pub struct DataplaneConfig {
    /// Frames read or written per system call at most.
    pub batch: usize,
    /// Forwarding threads (`dataplane.workers`; default: one per core,
    /// one with the kernel fast path).
    pub workers: usize,
    /// Which fast path forwards authorized sessions.
    pub fast_path: FastPathKind,
}

/// `dataplane.fast_path`: who forwards an authorized session's packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FastPathKind {
    /// lassi's own threads (portable: any kernel, any platform).
    #[default]
    User,
    /// The kernel, through nftables sets, neighbours and host routes.
    Kernel,
}

/// `[control]`
#[derive(Clone, Debug, PartialEq)]
pub struct ControlConfig {
    /// Path of the Unix control socket (created mode 0600).
    pub socket: PathBuf,
}

/// `[state]`
#[derive(Clone, Debug, PartialEq)]
pub struct StateConfig {
    /// Directory for durable state (leases.json …).
    pub dir: PathBuf,
}

/// `[metrics]`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served (`None`: off, the default).
    pub listen: Option<std::net::SocketAddr>,
}

/// A configuration error: the key it concerns and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `lan.dhcp_range`; empty when the file itself is unreadable.
    pub key: String,
    /// Human-readable reason.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

// ---- the raw shape of the file, as serde reads it ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    lan: RawLan,
    #[serde(default)]
    uplink: RawUplink,
    #[serde(default)]
    dataplane: RawDataplane,
    #[serde(default)]
    portal: RawPortal,
    #[serde(default)]
    session: RawSession,
    radius: Option<RawRadius>,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    hooks: ops::RawHooks,
    #[serde(default)]
    log: ops::RawLog,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLan {
    interface: String,
    network: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    dhcp_range: Option<[Ipv4Addr; 2]>,
    #[serde(default = "default_lease_time")]
    lease_time: u32,
    #[serde(default = "default_unauthorized_lease_time")]
    unauthorized_lease_time: u32,
    #[serde(default = "default_new_client_rate")]
    new_client_rate: u32,
    domain: Option<String>,
    mtu: Option<u16>,
    #[serde(default = "yes")]
    client_isolation: bool,
    captive_portal_uri: Option<String>,
    #[serde(default)]
    static_lease: Vec<RawStaticLease>,
    ipv6: Option<RawLanIpv6>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanIpv6 {
    prefix: Option<String>,
    address: Option<Ipv6Addr>,
    #[serde(default)]
    dns: Vec<Ipv6Addr>,
    #[serde(default = "yes")]
    slaac: bool,
    #[serde(default)]
    managed: bool,
    #[serde(default = "default_ra_interval")]
    ra_interval: u32,
}

fn default_ra_interval() -> u32 {
    crate::ipv6::ra::DEFAULT_MAX_INTERVAL_SECS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaticLease {
    mac: MacAddr,
    ip: Ipv4Addr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUplink {
    #[serde(default = "default_tun_name")]
    tun_name: String,
    wan_interface: Option<String>,
    #[serde(default)]
    nat: bool,
    #[serde(default = "yes")]
    ip_forward: bool,
}

impl Default for RawUplink {
    fn default() -> Self {
        RawUplink {
            tun_name: default_tun_name(),
            wan_interface: None,
            nat: false,
            ip_forward: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataplane {
    /// Removed; read only to refuse it by name.
    offload: Option<serde::de::IgnoredAny>,
    #[serde(default = "default_batch")]
    batch: usize,
    workers: Option<usize>,
    #[serde(default)]
    fast_path: FastPathKind,
}

impl Default for RawDataplane {
    fn default() -> Self {
        RawDataplane {
            offload: None,
            batch: default_batch(),
            workers: None,
            fast_path: FastPathKind::User,
        }
    }
}

/// Most forwarding threads `dataplane.workers` may ask for.
pub const MAX_WORKERS: usize = 64;

/// One worker per core the process may run on (at most [`MAX_WORKERS`]).
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadiusServer {
    address: std::net::IpAddr,
    secret: String,
    #[serde(default = "default_auth_port")]
    auth_port: u16,
    #[serde(default = "default_acct_port")]
    acct_port: u16,
}

fn default_auth_port() -> u16 {
    1812
}
fn default_acct_port() -> u16 {
    1813
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoaClient {
    address: std::net::IpAddr,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoa {
    #[serde(default = "default_coa_listen")]
    listen: std::net::SocketAddr,
    #[serde(default)]
    client: Vec<RawCoaClient>,
    #[serde(default = "default_event_timestamp_window")]
    event_timestamp_window: u32,
    #[serde(default)]
    require_event_timestamp: bool,
    #[serde(default)]
    nak_stale_event_timestamp: bool,
    #[serde(default)]
    require_message_authenticator: bool,
}

fn default_event_timestamp_window() -> u32 {
    300
}

fn default_coa_listen() -> std::net::SocketAddr {
    "0.0.0.0:3799".parse().expect("valid")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadius {
    #[serde(default)]
    server: Vec<RawRadiusServer>,
    #[serde(default = "default_radius_timeout")]
    timeout: u32,
    #[serde(default = "default_radius_retries")]
    retries: u32,
    #[serde(default = "default_dead_time")]
    dead_time: u32,
    #[serde(default = "default_status_interval")]
    status_interval: u32,
    #[serde(default = "yes")]
    require_message_authenticator: bool,
    nas_identifier: Option<String>,
    nas_ip: Option<Ipv4Addr>,
    called_station_id: Option<String>,
    location_id: Option<String>,
    location_name: Option<String>,
    #[serde(default)]
    swap_octets: bool,
    #[serde(default)]
    mac_auth: bool,
    #[serde(default)]
    mac_suffix: String,
    #[serde(default = "default_mac_password")]
    mac_password: String,
    #[serde(default = "default_spool_max")]
    spool_max_records: usize,
    coa: Option<RawCoa>,
}

fn default_radius_timeout() -> u32 {
    2
}
fn default_radius_retries() -> u32 {
    2
}
fn default_dead_time() -> u32 {
    60
}
fn default_status_interval() -> u32 {
    5
}
fn default_mac_password() -> String {
    "password".into()
}
fn default_spool_max() -> usize {
    10_000
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    session_timeout: Option<u32>,
    idle_timeout: Option<u32>,
    interim_interval: Option<u32>,
    bandwidth_up: Option<u64>,
    bandwidth_down: Option<u64>,
    max_input_octets: Option<u64>,
    max_output_octets: Option<u64>,
    max_total_octets: Option<u64>,
    quota_action: Option<String>,
    throttle_up: Option<u64>,
    throttle_down: Option<u64>,
    probe_after: Option<u32>,
    probe_interval: Option<u32>,
    probes: Option<u8>,
    restart_grace: Option<u32>,
    stop_on_shutdown: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortal {
    #[serde(default = "default_portal_port")]
    port: u16,
    uam_server: Option<String>,
    uam_secret: Option<String>,
    #[serde(default = "default_auth")]
    auth: String,
    users_file: Option<PathBuf>,
    pages_dir: Option<PathBuf>,
    success_url: Option<String>,
    #[serde(default = "default_nas_id")]
    nas_id: String,
    #[serde(default)]
    walled_garden: Vec<String>,
    #[serde(default)]
    any_dns: bool,
    venue_info_url: Option<String>,
    #[serde(default = "default_challenge_timeout")]
    challenge_timeout: u32,
}

impl Default for RawPortal {
    fn default() -> Self {
        let empty = serde_json::Value::Object(serde_json::Map::new());
        RawPortal::deserialize(&empty).expect("every portal key has a default")
    }
}

fn default_portal_port() -> u16 {
    3990
}
fn default_auth() -> String {
    "click-through".into()
}
fn default_nas_id() -> String {
    "lassi".into()
}
fn default_challenge_timeout() -> u32 {
    300
}

fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| err(key, format!("'{url}' must start with http:// or https://")))?;
    if rest.is_empty()
        || rest.starts_with('/')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(err(key, format!("'{url}' is not a valid URL")));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    #[serde(default = "default_socket")]
    socket: PathBuf,
}

impl Default for RawControl {
    fn default() -> Self {
        RawControl {
            socket: default_socket(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    #[serde(default = "default_state_dir")]
    dir: PathBuf,
}

impl Default for RawState {
    fn default() -> Self {
        RawState {
            dir: default_state_dir(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_lease_time() -> u32 {
    3600
}
fn default_unauthorized_lease_time() -> u32 {
    300
}
fn default_new_client_rate() -> u32 {
    20
}
fn default_tun_name() -> String {
    "lassi0".into()
}
fn default_batch() -> usize {
    32
}
/// Default path of the control socket.
pub fn default_socket() -> PathBuf {
    PathBuf::from("/run/lassi/control.sock")
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/lassi")
}

/// Linux interface names: 1–15 bytes, no '/', no whitespace, not "." or "..".
fn check_ifname(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 15 {
        return Err(err(
            key,
            format!("'{name}' must be 1 to 15 characters long"),
        ));
    }
    if name == "." || name == ".." || name.chars().any(|c| c == '/' || c.is_whitespace()) {
        return Err(err(key, format!("'{name}' is not a valid interface name")));
    }
    Ok(())
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("", format!("cannot read {}: {e}", path.display())))?;
        if crate::uci::looks_like_uci(&text) {
            // OpenWrt's /etc/config/lassi: same tables and keys, UCI syntax.
            let toml = crate::uci::lassi::to_toml(&path.display().to_string(), &text)?;
            return Config::parse(&toml);
        }
        Config::parse(&text)
    }

    /// Parse and validate config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = from_toml::deserialize(text)?;
        Config::validate(raw)
    }

    /// Each section validates itself; here only what spans sections.
    fn validate(mut raw: RawConfig) -> Result<Config, ConfigError> {
        let raw_ipv6 = raw.lan.ipv6.take();
        let mut lan = validate_lan(raw.lan)?;
        let uplink = validate_uplink(raw.uplink)?;
        if uplink.tun_name == lan.interface {
            return Err(err("uplink.tun_name", "must differ from lan.interface"));
        }
        if uplink.wan_interface.as_ref() == Some(&lan.interface) {
            return Err(err(
                "uplink.wan_interface",
                "must differ from lan.interface (the LAN is guests only)",
            ));
        }
        let portal = validate_portal(raw.portal)?;
        let session = validate_session(raw.session)?;
        let radius = raw
            .radius
            .map(|r| validate_radius(r, &portal.nas_id))
            .transpose()?;
        if portal.auth == AuthBackend::Radius && radius.is_none() {
            return Err(err(
                "portal.auth",
                "auth = \"radius\" needs a [radius] section with a server",
            ));
        }
        let dataplane = validate_dataplane(raw.dataplane)?;
        if dataplane.fast_path == FastPathKind::Kernel && lan.network.prefix < 16 {
            // Each session's kernel shaping class is named by the host part
            // of its address, which must fit in 16 bits.
            return Err(err(
                "dataplane.fast_path",
                "\"kernel\" takes a guest network (lan.network) of /16 or smaller",
            ));
        }
        // Option 114 points at lassi's own portal API unless set.
        let api = format!("http://{}:{}/api", lan.gateway, portal.port);
        lan.captive_portal_uri.get_or_insert(api);
        lan.ipv6 = raw_ipv6.map(|v6| ipv6::validate(v6, &lan)).transpose()?;
        Ok(Config {
            lan,
            uplink,
            dataplane,
            portal,
            session,
            radius,
            control: ControlConfig {
                socket: raw.control.socket,
            },
            state: StateConfig { dir: raw.state.dir },
            metrics: validate_metrics(raw.metrics)?,
            hooks: ops::validate_hooks(raw.hooks)?,
            log: ops::validate_log(raw.log)?,
        })
    }
}

/// `[metrics]`: an `address:port` (IPv6 in brackets), port not 0.
fn validate_metrics(m: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let Some(text) = m.listen else {
        return Ok(MetricsConfig::default());
    };
    let addr: std::net::SocketAddr = text.trim().parse().map_err(|_| {
        err(
            "metrics.listen",
            format!("'{text}' is not an address:port (like \"127.0.0.1:9090\" or \"[::1]:9090\")"),
        )
    })?;
    if addr.port() == 0 {
        return Err(err("metrics.listen", "needs a port other than 0"));
    }
    Ok(MetricsConfig { listen: Some(addr) })
}

impl LanConfig {
    /// The DHCP server's settings for this LAN.
    pub fn dhcp_settings(&self) -> DhcpSettings {
        DhcpSettings {
            server_ip: self.gateway,
            netmask: self.network.netmask(),
            dns: self.dns.clone(),
            domain: self.domain.clone(),
            mtu: self.mtu,
            lease_secs: self.lease_time,
            pool_start: self.dhcp_range.0,
            pool_end: self.dhcp_range.1,
            static_leases: self.static_leases.clone(),
            captive_portal_uri: self.captive_portal_uri.clone(),
            offer_hold_secs: crate::dhcp::DEFAULT_OFFER_HOLD_SECS,
            unauthorized_lease_secs: self.unauthorized_lease_time,
            new_client_rate: self.new_client_rate,
        }
    }
}

/// `[lan]`. What the DHCP server hands out is checked by
/// [`DhcpSettings::validate`], its errors worded here in the file's keys.
fn validate_lan(lan: RawLan) -> Result<LanConfig, ConfigError> {
    check_ifname("lan.interface", &lan.interface)?;
    let net = lan.network;
    let gateway = lan.gateway.unwrap_or_else(|| net.first_host());
    let dhcp_range = match lan.dhcp_range {
        Some([a, b]) => (a, b),
        // Everything but the network, broadcast and gateway addresses.
        None if gateway == net.first_host() => {
            (Ipv4Addr::from(u32::from(gateway) + 1), net.last_host())
        }
        None => (net.first_host(), net.last_host()),
    };
    let mut cfg = LanConfig {
        interface: lan.interface,
        network: net,
        gateway,
        dns: lan.dns,
        dhcp_range,
        lease_time: lan.lease_time,
        unauthorized_lease_time: lan.unauthorized_lease_time,
        new_client_rate: lan.new_client_rate,
        domain: lan.domain,
        mtu: lan.mtu,
        client_isolation: lan.client_isolation,
        captive_portal_uri: lan.captive_portal_uri,
        static_leases: lan.static_lease.iter().map(|s| (s.mac, s.ip)).collect(),
        ipv6: None,
    };
    let dhcp = cfg.dhcp_settings().validate();
    if let Err(e @ SettingsError::Netmask(_)) = &dhcp {
        return Err(lan_dhcp_error(e, &cfg));
    }
    if !net.contains(gateway) {
        return Err(lan_dhcp_error(&SettingsError::ServerIp(gateway), &cfg));
    }
    if cfg.dns.is_empty() {
        return Err(err(
            "lan.dns",
            "at least one DNS server is required (clients need one before they can log in)",
        ));
    }
    dhcp.map_err(|e| lan_dhcp_error(&e, &cfg))?;
    // Never longer than the full lease.
    cfg.unauthorized_lease_time = cfg.unauthorized_lease_time.min(cfg.lease_time);
    Ok(cfg)
}

/// A DHCP settings error in the words of the `[lan]` keys it came from.
fn lan_dhcp_error(e: &SettingsError, lan: &LanConfig) -> ConfigError {
    use SettingsError as E;
    let (net, gateway) = (lan.network, lan.gateway);
    let static_key = |i: usize| format!("lan.static_lease[{i}]");
    let too_short = |secs: &u32| format!("{secs} s is too short (60 s at least)");
    match e {
        E::Netmask(_) => err(
            "lan.network",
            format!("{net} is too small for a gateway and clients (use /30 or larger)"),
        ),
        E::ServerIp(_) => err(
            "lan.gateway",
            format!("{gateway} is not a host address inside lan.network {net}"),
        ),
        E::PoolOutside(a, b) => err(
            "lan.dhcp_range",
            format!("{a} – {b} must lie inside lan.network {net}"),
        ),
        E::PoolOrder(a, b) => err(
            "lan.dhcp_range",
            format!("the first address {a} is after the last {b}"),
        ),
        E::PoolOnlyServer => err("lan.dhcp_range", "the range holds only the gateway address"),
        E::LeaseSecs(s) => err("lan.lease_time", too_short(s)),
        E::UnauthorizedLeaseSecs(s) => err("lan.unauthorized_lease_time", too_short(s)),
        E::Mtu(mtu) => err(
            "lan.mtu",
            format!(
                "{mtu} is outside {}–{} (RFC 2132 minimum is 68, but clients need 576)",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            ),
        ),
        E::Domain(d) => err("lan.domain", format!("'{d}' is not a domain name")),
        E::CaptivePortalUri(uri) => err(
            "lan.captive_portal_uri",
            format!("'{uri}' must be an http(s) URI of at most 255 bytes (it travels in one DHCP option)"),
        ),
        E::StaticAddress(i) => err(
            &static_key(*i),
            format!(
                "{} is not a client address inside lan.network {net}",
                lan.static_leases[*i].1
            ),
        ),
        E::StaticMac(i) => match lan.static_leases[*i].0 {
            mac if mac.is_multicast() => err(&static_key(*i), format!("{mac} is a group address")),
            mac => err(&static_key(*i), format!("{mac} is not a unicast MAC")),
        },
        E::StaticClash { index, earlier } => {
            let ((mac, ip), (m, e_ip)) = (lan.static_leases[*index], lan.static_leases[*earlier]);
            err(
                &static_key(*index),
                format!("{mac} → {ip} clashes with an earlier static lease {m} → {e_ip}"),
            )
        }
        // Not read from the file: only a wrong default gets here.
        E::OfferHold => err("lan", e.to_string()),
    }
}

/// `[uplink]` (that its names differ from the LAN's is checked with `[lan]`).
fn validate_uplink(up: RawUplink) -> Result<UplinkConfig, ConfigError> {
    check_ifname("uplink.tun_name", &up.tun_name)?;
    if let Some(w) = &up.wan_interface {
        check_ifname("uplink.wan_interface", w)?;
    }
    if up.nat && up.wan_interface.is_none() {
        return Err(err(
            "uplink.nat",
            "nat = true needs uplink.wan_interface to masquerade through",
        ));
    }
    Ok(UplinkConfig {
        tun_name: up.tun_name,
        wan_interface: up.wan_interface,
        nat: up.nat,
        ip_forward: up.ip_forward,
    })
}

/// `[portal]` (that `auth = "radius"` has a `[radius]` is a cross-section check).
fn validate_portal(p: RawPortal) -> Result<PortalConfig, ConfigError> {
    if p.port == 0 {
        return Err(err("portal.port", "0 is not a port"));
    }
    let auth = parse_auth(&p.auth)?;
    if auth == AuthBackend::Local && p.users_file.is_none() {
        return Err(err(
            "portal.users_file",
            "auth = \"local\" needs a users file",
        ));
    }
    for (key, url) in [
        ("portal.uam_server", &p.uam_server),
        ("portal.success_url", &p.success_url),
        ("portal.venue_info_url", &p.venue_info_url),
    ] {
        if let Some(u) = url {
            check_url(key, u)?;
        }
    }
    if p.uam_secret.as_deref() == Some("") {
        return Err(err(
            "portal.uam_secret",
            "must not be empty (leave it out instead)",
        ));
    }
    if p.nas_id.is_empty() || p.nas_id.len() > 253 {
        return Err(err("portal.nas_id", "must be 1 to 253 characters"));
    }
    if !(10..=86_400).contains(&p.challenge_timeout) {
        return Err(err(
            "portal.challenge_timeout",
            format!("{} s is outside 10–86400", p.challenge_timeout),
        ));
    }
    let walled_garden = p
        .walled_garden
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            entry
                .parse()
                .map_err(|e: String| err(&format!("portal.walled_garden[{i}]"), e))
        })
        .collect::<Result<_, _>>()?;
    Ok(PortalConfig {
        port: p.port,
        uam_server: p.uam_server,
        uam_secret: p.uam_secret,
        auth,
        users_file: p.users_file,
        pages_dir: p.pages_dir,
        success_url: p.success_url,
        nas_id: p.nas_id,
        walled_garden,
        any_dns: p.any_dns,
        venue_info_url: p.venue_info_url,
        challenge_timeout: p.challenge_timeout,
    })
}

/// `portal.auth`.
fn parse_auth(auth: &str) -> Result<AuthBackend, ConfigError> {
    match auth {
        "click-through" => Ok(AuthBackend::ClickThrough),
        "local" => Ok(AuthBackend::Local),
        "radius" => Ok(AuthBackend::Radius),
        other => Err(err(
            "portal.auth",
            format!("'{other}' is not one of click-through, local, radius"),
        )),
    }
}

/// `[session]`.
fn validate_session(se: RawSession) -> Result<SessionConfig, ConfigError> {
    check_session_limits(&se)?;
    let quota_action = parse_quota_action(&se)?;
    Ok(SessionConfig {
        defaults: crate::session::SessionLimits {
            session_timeout: se.session_timeout,
            idle_timeout: se.idle_timeout,
            terminate_at: None,
            interim_interval: se.interim_interval,
            bandwidth_up_bps: se.bandwidth_up,
            bandwidth_down_bps: se.bandwidth_down,
            max_input_octets: se.max_input_octets,
            max_output_octets: se.max_output_octets,
            max_total_octets: se.max_total_octets,
            filter_id: None,
        },
        quota_action,
        probe_after: se.probe_after.unwrap_or(120),
        probe_interval: se.probe_interval.unwrap_or(10).max(1),
        probes: se.probes.unwrap_or(3).max(1),
        restart_grace: se.restart_grace.unwrap_or(300),
        stop_on_shutdown: se.stop_on_shutdown.unwrap_or(false),
    })
}

/// The durations and rates of `[session]`.
fn check_session_limits(se: &RawSession) -> Result<(), ConfigError> {
    for (key, v) in [
        ("session.session_timeout", se.session_timeout),
        ("session.idle_timeout", se.idle_timeout),
        ("session.interim_interval", se.interim_interval),
    ] {
        if v == Some(0) {
            return Err(err(
                key,
                "0 is not a duration (leave the key out for no limit)",
            ));
        }
    }
    if se.interim_interval.is_some_and(|i| i < 60) {
        return Err(err(
            "session.interim_interval",
            "less than 60 s would flood the accounting server",
        ));
    }
    for (key, v) in [
        ("session.bandwidth_up", se.bandwidth_up),
        ("session.bandwidth_down", se.bandwidth_down),
        ("session.throttle_up", se.throttle_up),
        ("session.throttle_down", se.throttle_down),
    ] {
        if v.is_some_and(|b| b < 8000) {
            return Err(err(
                key,
                "is in bit/s; less than 8000 (1 kB/s) is not usable",
            ));
        }
    }
    Ok(())
}

/// `session.quota_action` with the throttle rates it needs.
fn parse_quota_action(se: &RawSession) -> Result<crate::session::QuotaAction, ConfigError> {
    let needs = |key| {
        err(
            key,
            "quota_action = \"throttle\" needs throttle_up and throttle_down (bit/s)",
        )
    };
    match se.quota_action.as_deref().unwrap_or("end") {
        "end" => Ok(crate::session::QuotaAction::End),
        "throttle" => Ok(crate::session::QuotaAction::Throttle {
            up_bps: se.throttle_up.ok_or_else(|| needs("session.throttle_up"))?,
            down_bps: se
                .throttle_down
                .ok_or_else(|| needs("session.throttle_down"))?,
        }),
        other => Err(err(
            "session.quota_action",
            format!("'{other}' is not one of end, throttle"),
        )),
    }
}

/// `[radius]`; `nas_id` (`portal.nas_id`) is the default NAS-Identifier.
fn validate_radius(r: RawRadius, nas_id: &str) -> Result<RadiusConfig, ConfigError> {
    if r.server.is_empty() {
        return Err(err(
            "radius.server",
            "at least one [[radius.server]] is needed",
        ));
    }
    for (i, sv) in r.server.iter().enumerate() {
        if sv.secret.is_empty() {
            return Err(err(
                &format!("radius.server[{i}].secret"),
                "must not be empty",
            ));
        }
        if sv.auth_port == 0 || sv.acct_port == 0 {
            return Err(err(&format!("radius.server[{i}]"), "ports must not be 0"));
        }
    }
    if !(1..=60).contains(&r.timeout) {
        return Err(err(
            "radius.timeout",
            format!("{} s is outside 1–60", r.timeout),
        ));
    }
    if r.retries > 10 {
        return Err(err(
            "radius.retries",
            "more than 10 resends per server is never useful",
        ));
    }
    if r.spool_max_records < 100 {
        return Err(err(
            "radius.spool_max_records",
            "fewer than 100 records would lose accounting in a short outage",
        ));
    }
    let coa = r.coa.map(validate_coa).transpose()?;
    Ok(RadiusConfig {
        servers: r.server.into_iter().map(RadiusServer::from).collect(),
        timeout: r.timeout,
        retries: r.retries,
        dead_time: r.dead_time,
        status_interval: r.status_interval,
        require_message_authenticator: r.require_message_authenticator,
        nas_identifier: r.nas_identifier.unwrap_or_else(|| nas_id.to_string()),
        nas_ip: r.nas_ip,
        called_station_id: r.called_station_id,
        location_id: r.location_id,
        location_name: r.location_name,
        swap_octets: r.swap_octets,
        mac_auth: r.mac_auth,
        mac_suffix: r.mac_suffix,
        mac_password: r.mac_password,
        spool_max_records: r.spool_max_records,
        coa,
    })
}

impl From<RawRadiusServer> for RadiusServer {
    fn from(s: RawRadiusServer) -> Self {
        RadiusServer {
            addr: s.address,
            secret: s.secret.into_bytes(),
            auth_port: s.auth_port,
            acct_port: s.acct_port,
        }
    }
}

/// `[radius.coa]`.
fn validate_coa(c: RawCoa) -> Result<CoaConfig, ConfigError> {
    if c.client.is_empty() {
        return Err(err(
            "radius.coa.client",
            "a CoA listener needs at least one [[radius.coa.client]]",
        ));
    }
    for (i, cl) in c.client.iter().enumerate() {
        if cl.secret.is_empty() {
            return Err(err(
                &format!("radius.coa.client[{i}].secret"),
                "must not be empty",
            ));
        }
    }
    Ok(CoaConfig {
        listen: c.listen,
        clients: c
            .client
            .into_iter()
            .map(|c| (c.address, c.secret))
            .collect(),
        event_timestamp_window: c.event_timestamp_window,
        require_event_timestamp: c.require_event_timestamp,
        nak_stale_event_timestamp: c.nak_stale_event_timestamp,
        require_message_authenticator: c.require_message_authenticator,
    })
}

/// `[dataplane]`.
fn validate_dataplane(dp: RawDataplane) -> Result<DataplaneConfig, ConfigError> {
    if dp.offload.is_some() {
        return Err(err("dataplane.offload", OFFLOAD_REMOVED));
    }
    if !(1..=1024).contains(&dp.batch) {
        return Err(err(
            "dataplane.batch",
            format!("{} is outside 1–1024", dp.batch),
        ));
    }
    let workers = match dp.fast_path {
        FastPathKind::User => dp.workers.unwrap_or_else(default_workers),
        FastPathKind::Kernel => dp.workers.unwrap_or(1),
    };
    if !(1..=MAX_WORKERS).contains(&workers) {
        return Err(err(
            "dataplane.workers",
            format!("{workers} is outside 1–{MAX_WORKERS}"),
        ));
    }
    if dp.fast_path == FastPathKind::Kernel && workers > 1 {
        return Err(err(
            "dataplane.workers",
            "with fast_path = \"kernel\" the kernel forwards logged-in guests on every \
             core and lassi's own path runs on one thread: leave workers out (or 1)",
        ));
    }
    Ok(DataplaneConfig {
        batch: dp.batch,
        workers,
        fast_path: dp.fast_path,
    })
}

/// Why `dataplane.offload` is refused.
const OFFLOAD_REMOVED: &str = "removed: lassi always carries virtio-net headers between \
    the LAN and the TUN device, so GSO super-packets and unfinished checksums pass \
    through whatever the interfaces' offload settings (ethtool -K changes those); \
    delete the line";

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[lan]
interface = "lan0"
network = "10.1.0.0/24"
dns = ["192.0.2.53"]
"#;

    #[test]
    fn minimal_config_gets_sensible_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.lan.gateway, Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(
            c.lan.dhcp_range,
            (Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 1, 0, 254))
        );
        assert_eq!(c.lan.lease_time, 3600);
        assert_eq!(c.lan.unauthorized_lease_time, 300);
        assert_eq!(c.lan.new_client_rate, 20);
        assert!(c.lan.client_isolation);
        assert_eq!(c.uplink.tun_name, "lassi0");
        assert_eq!(c.dataplane.batch, 32);
        assert_eq!(c.control.socket, default_socket());
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../examples/lassi.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.lan.static_leases.len(), 1);
    }

    fn refused(text: &str) -> ConfigError {
        Config::parse(text).expect_err("config should be refused")
    }

    #[test]
    fn metrics_are_off_by_default_and_a_bad_listen_address_names_the_key() {
        assert_eq!(Config::parse(MINIMAL).unwrap().metrics.listen, None);
        let with = |listen: &str| format!("{MINIMAL}\n[metrics]\nlisten = \"{listen}\"\n");
        let c = Config::parse(&with("127.0.0.1:9090")).unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9090".parse().unwrap()));
        let c = Config::parse(&with("[::1]:9100")).unwrap();
        assert_eq!(c.metrics.listen, Some("[::1]:9100".parse().unwrap()));
        for bad in [
            "localhost:9090",
            "127.0.0.1",
            "127.0.0.1:0",
            "1.2.3.4:99999",
            "",
        ] {
            let e = refused(&with(bad));
            assert_eq!(e.key, "metrics.listen", "{bad}: {e}");
        }
        let e = refused(&format!("{MINIMAL}\n[metrics]\nport = 9090\n"));
        assert!(e.to_string().contains("port"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            ("gateway = \"10.2.0.1\"", "lan.gateway"),
            (
                "dhcp_range = [\"10.1.0.200\", \"10.1.0.10\"]",
                "lan.dhcp_range",
            ),
            (
                "dhcp_range = [\"10.1.0.10\", \"10.1.1.10\"]",
                "lan.dhcp_range",
            ),
            ("lease_time = 5", "lan.lease_time"),
            ("unauthorized_lease_time = 5", "lan.unauthorized_lease_time"),
            ("mtu = 100", "lan.mtu"),
            ("captive_portal_uri = \"ftp://x\"", "lan.captive_portal_uri"),
            ("colour = \"blue\"", "lan.colour"),
        ];
        for (line, key) in cases {
            let text = format!("{MINIMAL}{line}\n");
            let e = refused(&text);
            assert_eq!(e.key, *key, "{line}: {e}");
        }
    }

    #[test]
    fn bad_values_and_sections() {
        let e = refused(&MINIMAL.replace("10.1.0.0/24", "10.1.0.1/24"));
        assert!(e.to_string().contains("host bits"), "{e}");
        let e = refused(&MINIMAL.replace("dns = [\"192.0.2.53\"]", "dns = []"));
        assert_eq!(e.key, "lan.dns");
        let e = refused("[lan]\ninterface = \"lan0\"\ndns = [\"1.2.3.4\"]\n");
        assert_eq!(e.key, "lan.network", "{e}");
        let e = refused(&format!("{MINIMAL}[uplink]\nnat = true\n"));
        assert_eq!(e.key, "uplink.nat");
        let e = refused(&format!(
            "{MINIMAL}[uplink]\ntun_name = \"a-very-long-interface\"\n"
        ));
        assert_eq!(e.key, "uplink.tun_name");
        let e = refused(&format!(
            "{MINIMAL}[[lan.static_lease]]\nmac = \"02:00:00:00:00:01\"\nip = \"10.1.0.5\"\n[[lan.static_lease]]\nmac = \"02:00:00:00:00:02\"\nip = \"10.1.0.5\"\n"
        ));
        assert_eq!(e.key, "lan.static_lease[1]");
        let e = refused(&format!(
            "{MINIMAL}[[lan.static_lease]]\nmac = \"02:00:00:00:00\"\nip = \"10.1.0.5\"\n"
        ));
        assert!(e.to_string().contains("not a MAC address"), "{e}");
        let e = refused("[lan\n");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn portal_defaults_and_walled_garden() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.portal.port, 3990);
        assert_eq!(c.portal.auth, AuthBackend::ClickThrough);
        assert_eq!(
            c.lan.captive_portal_uri.as_deref(),
            Some("http://10.1.0.1:3990/api")
        );
        let c = Config::parse(&format!(
            "{MINIMAL}[portal]\nwalled_garden = [\"198.51.100.20\", \"203.0.113.0/24\", \"Example.ORG\", \"*.example.net\"]\n"
        ))
        .unwrap();
        assert_eq!(
            c.portal.walled_garden,
            vec![
                WalledGarden::Net("198.51.100.20/32".parse().unwrap()),
                WalledGarden::Net("203.0.113.0/24".parse().unwrap()),
                WalledGarden::Host("example.org".into()),
                WalledGarden::Suffix("example.net".into()),
            ]
        );
        let e = refused(&format!(
            "{MINIMAL}[portal]\nwalled_garden = [\"ok.example\", \"bad host!\"]\n"
        ));
        assert_eq!(e.key, "portal.walled_garden[1]");
        let net6 = |a: &str, l| {
            WalledGarden::Net6(
                lassi_engine::wire::ipv6::Ipv6Net::new(a.parse().unwrap(), l).unwrap(),
            )
        };
        assert_eq!("2001:db8::1".parse(), Ok(net6("2001:db8::1", 128)));
        assert_eq!("2001:db8::/32".parse(), Ok(net6("2001:db8::", 32)));
        assert!("2001:db8::/129".parse::<WalledGarden>().is_err());
        assert!("2001:zz::1".parse::<WalledGarden>().is_err());
        let e = refused(&format!("{MINIMAL}[portal]\nauth = \"local\"\n"));
        assert_eq!(e.key, "portal.users_file");
        let e = refused(&format!("{MINIMAL}[portal]\nauth = \"ldap\"\n"));
        assert_eq!(e.key, "portal.auth");
        let e = refused(&format!(
            "{MINIMAL}[portal]\nuam_server = \"portal.example\"\n"
        ));
        assert_eq!(e.key, "portal.uam_server");
    }

    #[test]
    fn radius_section() {
        let c = Config::parse(&format!(
            "{MINIMAL}[portal]\nauth = \"radius\"\nnas_id = \"cafe-1\"\n[[radius.server]]\naddress = \"192.0.2.10\"\nsecret = \"s3cret\"\n[radius.coa]\n[[radius.coa.client]]\naddress = \"192.0.2.10\"\nsecret = \"coa\"\n"
        ))
        .unwrap();
        let r = c.radius.unwrap();
        assert_eq!(
            (r.servers[0].auth_port, r.servers[0].acct_port),
            (1812, 1813)
        );
        assert_eq!(r.nas_identifier, "cafe-1", "defaults to portal.nas_id");
        assert!(
            r.require_message_authenticator,
            "BlastRADIUS hardening is on by default"
        );
        assert_eq!(r.coa.unwrap().listen.port(), 3799);
        let e = refused(&format!("{MINIMAL}[portal]\nauth = \"radius\"\n"));
        assert_eq!(e.key, "portal.auth");
        let e = refused(&format!("{MINIMAL}[radius]\n"));
        assert_eq!(e.key, "radius.server");
        let e = refused(&format!(
            "{MINIMAL}[[radius.server]]\naddress = \"192.0.2.10\"\nsecret = \"\"\n"
        ));
        assert_eq!(e.key, "radius.server[0].secret");
        let e = refused(&format!(
            "{MINIMAL}[[radius.server]]\naddress = \"not an ip\"\nsecret = \"x\"\n"
        ));
        assert!(e.to_string().contains("address"), "{e}");
    }

    #[test]
    fn lan_section_words_dhcp_errors_in_its_keys() {
        let cases: &[(String, &str, &str)] = &[
            (
                format!("{MINIMAL}gateway = \"10.2.0.1\"\n"),
                "lan.gateway",
                "10.2.0.1 is not a host address inside lan.network 10.1.0.0/24",
            ),
            (
                format!("{MINIMAL}gateway = \"10.1.0.255\"\n"),
                "lan.gateway",
                "10.1.0.255 is not a host address inside lan.network 10.1.0.0/24",
            ),
            (
                MINIMAL.replace("10.1.0.0/24", "10.1.0.0/31"),
                "lan.network",
                "10.1.0.0/31 is too small for a gateway and clients (use /30 or larger)",
            ),
            (
                format!("{MINIMAL}dhcp_range = [\"10.1.0.1\", \"10.1.0.1\"]\n"),
                "lan.dhcp_range",
                "the range holds only the gateway address",
            ),
            (
                format!("{MINIMAL}mtu = 9001\n"),
                "lan.mtu",
                "9001 is outside 576–9000 (RFC 2132 minimum is 68, but clients need 576)",
            ),
            (
                format!("{MINIMAL}domain = \"a b\"\n"),
                "lan.domain",
                "'a b' is not a domain name",
            ),
            (
                format!("{MINIMAL}[[lan.static_lease]]\nmac = \"02:00:00:00:00:01\"\nip = \"10.1.0.5\"\n[[lan.static_lease]]\nmac = \"02:00:00:00:00:01\"\nip = \"10.1.0.6\"\n"),
                "lan.static_lease[1]",
                "02:00:00:00:00:01 → 10.1.0.6 clashes with an earlier static lease 02:00:00:00:00:01 → 10.1.0.5",
            ),
            (
                format!("{MINIMAL}[[lan.static_lease]]\nmac = \"01:00:5e:00:00:01\"\nip = \"10.1.0.5\"\n"),
                "lan.static_lease[0]",
                "01:00:5e:00:00:01 is a group address",
            ),
            (
                format!("{MINIMAL}[[lan.static_lease]]\nmac = \"00:00:00:00:00:00\"\nip = \"10.1.0.5\"\n"),
                "lan.static_lease[0]",
                "00:00:00:00:00:00 is not a unicast MAC",
            ),
            (
                format!("{MINIMAL}[[lan.static_lease]]\nmac = \"02:00:00:00:00:01\"\nip = \"10.1.0.1\"\n"),
                "lan.static_lease[0]",
                "10.1.0.1 is not a client address inside lan.network 10.1.0.0/24",
            ),
        ];
        for (text, key, reason) in cases {
            let e = refused(text);
            assert_eq!(
                (e.key.as_str(), e.reason.as_str()),
                (*key, *reason),
                "{text}"
            );
        }
    }

    #[test]
    fn lan_section_gives_the_dhcp_settings() {
        let c = Config::parse(&format!(
            "{MINIMAL}unauthorized_lease_time = 7200\nmtu = 1400\n[[lan.static_lease]]\nmac = \"02:00:00:00:00:01\"\nip = \"10.1.0.5\"\n"
        ))
        .unwrap();
        let d = c.lan.dhcp_settings();
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(d.server_ip, c.lan.gateway);
        assert_eq!(d.netmask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!((d.pool_start, d.pool_end), c.lan.dhcp_range);
        assert_eq!(d.mtu, Some(1400));
        assert_eq!((d.lease_secs, d.unauthorized_lease_secs), (3600, 3600));
        assert_eq!(d.static_leases, c.lan.static_leases);
        assert_eq!(
            d.captive_portal_uri.as_deref(),
            Some("http://10.1.0.1:3990/api")
        );
        assert_eq!(d.offer_hold_secs, crate::dhcp::DEFAULT_OFFER_HOLD_SECS);
    }

    #[test]
    fn uplink_section() {
        let cases = [
            ("tun_name = \"lan0\"", "uplink.tun_name"),
            ("tun_name = \"a/b\"", "uplink.tun_name"),
            ("wan_interface = \"lan0\"", "uplink.wan_interface"),
            ("wan_interface = \"\"", "uplink.wan_interface"),
        ];
        for (line, key) in cases {
            let e = refused(&format!("{MINIMAL}[uplink]\n{line}\n"));
            assert_eq!(e.key, key, "{line}: {e}");
        }
        let c = Config::parse(&format!(
            "{MINIMAL}[uplink]\nwan_interface = \"eth1\"\nnat = true\nip_forward = false\n"
        ))
        .unwrap();
        assert_eq!(c.uplink.wan_interface.as_deref(), Some("eth1"));
        assert!(c.uplink.nat && !c.uplink.ip_forward);
    }

    #[test]
    fn portal_section_values() {
        let cases = [
            ("port = 0", "portal.port"),
            ("uam_secret = \"\"", "portal.uam_secret"),
            ("nas_id = \"\"", "portal.nas_id"),
            ("challenge_timeout = 5", "portal.challenge_timeout"),
            ("success_url = \"http:///x\"", "portal.success_url"),
            ("venue_info_url = \"x\"", "portal.venue_info_url"),
        ];
        for (line, key) in cases {
            let e = refused(&format!("{MINIMAL}[portal]\n{line}\n"));
            assert_eq!(e.key, key, "{line}: {e}");
        }
    }

    #[test]
    fn session_section() {
        let cases = [
            ("session_timeout = 0", "session.session_timeout"),
            ("idle_timeout = 0", "session.idle_timeout"),
            ("interim_interval = 30", "session.interim_interval"),
            ("bandwidth_down = 100", "session.bandwidth_down"),
            ("throttle_up = 100", "session.throttle_up"),
            ("quota_action = \"pause\"", "session.quota_action"),
            (
                "quota_action = \"throttle\"\nthrottle_up = 64000",
                "session.throttle_down",
            ),
        ];
        for (line, key) in cases {
            let e = refused(&format!("{MINIMAL}[session]\n{line}\n"));
            assert_eq!(e.key, key, "{line}: {e}");
        }
        let c = Config::parse(&format!(
            "{MINIMAL}[session]\nquota_action = \"throttle\"\nthrottle_up = 64000\nthrottle_down = 128000\nidle_timeout = 600\nprobes = 0\n"
        ))
        .unwrap();
        assert_eq!(
            c.session.quota_action,
            crate::session::QuotaAction::Throttle {
                up_bps: 64000,
                down_bps: 128000
            }
        );
        assert_eq!(c.session.defaults.idle_timeout, Some(600));
        assert_eq!(c.session.probes, 1, "at least one probe");
        assert_eq!(c.session.probe_after, 120);
    }

    #[test]
    fn radius_limits_and_coa() {
        let server = "[[radius.server]]\naddress = \"192.0.2.10\"\nsecret = \"x\"\n";
        let cases = [
            (format!("[radius]\ntimeout = 0\n{server}"), "radius.timeout"),
            (format!("[radius]\nretries = 11\n{server}"), "radius.retries"),
            (
                format!("[radius]\nspool_max_records = 5\n{server}"),
                "radius.spool_max_records",
            ),
            (format!("{server}acct_port = 0\n"), "radius.server[0]"),
            (format!("{server}[radius.coa]\n"), "radius.coa.client"),
            (
                format!("{server}[radius.coa]\n[[radius.coa.client]]\naddress = \"192.0.2.10\"\nsecret = \"\"\n"),
                "radius.coa.client[0].secret",
            ),
        ];
        for (section, key) in cases {
            let e = refused(&format!("{MINIMAL}{section}"));
            assert_eq!(e.key, key, "{section}: {e}");
        }
    }

    #[test]
    fn dataplane_section() {
        for (line, key) in [
            ("batch = 0", "dataplane.batch"),
            ("batch = 1025", "dataplane.batch"),
            ("offload = true", "dataplane.offload"),
            ("offload = false", "dataplane.offload"),
            ("workers = 0", "dataplane.workers"),
            ("workers = 65", "dataplane.workers"),
            ("workers = -1", "dataplane.workers"),
        ] {
            let e = refused(&format!("{MINIMAL}[dataplane]\n{line}\n"));
            assert_eq!(e.key, key, "{line}: {e}");
        }
        let e = refused(&format!("{MINIMAL}[dataplane]\noffload = false\n"));
        assert!(e.reason.starts_with("removed"), "{e}");
        let c = Config::parse(&format!("{MINIMAL}[dataplane]\nbatch = 1024\n")).unwrap();
        assert_eq!(c.dataplane.batch, 1024);
        let k = Config::parse(&format!("{MINIMAL}[dataplane]\nfast_path = \"kernel\"\n")).unwrap();
        assert_eq!(k.dataplane.fast_path, FastPathKind::Kernel);
        assert_eq!(k.dataplane.workers, 1);
        let both = format!("{MINIMAL}[dataplane]\nfast_path = \"kernel\"\nworkers = 2\n");
        assert!(Config::parse(&both)
            .unwrap_err()
            .to_string()
            .contains("dataplane.workers"));
        // The kernel shaper names classes by the host part: /16 at most.
        let kernel = "[dataplane]\nfast_path = \"kernel\"\n";
        let wide = MINIMAL.replace("10.1.0.0/24", "10.0.0.0/15") + kernel;
        assert_eq!(Config::parse(&wide).unwrap_err().key, "dataplane.fast_path");
        let sixteen = MINIMAL.replace("10.1.0.0/24", "10.0.0.0/16") + kernel;
        assert!(Config::parse(&sixteen).is_ok());
        let bad = format!("{MINIMAL}[dataplane]\nfast_path = \"xdp\"\n");
        assert!(Config::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("fast_path"));
        let c = Config::parse(&format!("{MINIMAL}[dataplane]\nworkers = 3\n")).unwrap();
        assert_eq!(c.dataplane.workers, 3);
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.dataplane.workers, default_workers());
        assert!(c.dataplane.workers >= 1);
    }

    #[test]
    fn cidr_helpers() {
        let n: Ipv4Net = "10.1.0.0/24".parse().unwrap();
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 1, 0, 255));
        assert!(n.contains(Ipv4Addr::new(10, 1, 0, 77)));
        assert!(!n.contains(Ipv4Addr::new(10, 1, 1, 77)));
        assert!("10.1.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.1.0.0".parse::<Ipv4Net>().is_err());
    }
}
