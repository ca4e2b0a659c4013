//! chilli's options → lassi TOML: every option with a lassi equivalent is
//! mapped to the same behaviour; every other one becomes a [`Warning`].

use std::net::Ipv4Addr;

use super::{toml_string, truthy, CoovaOption, Origin, Warning};
use crate::config::WalledGarden;
use crate::wire::Ipv4Net;

/// An imported configuration.
#[derive(Debug)]
pub struct Imported {
    /// The lassi config, with the unmapped options listed in a comment at the top.
    pub toml: String,
    /// The options not mapped, one per line for stderr.
    pub warnings: Vec<Warning>,
    /// chilli's `localusers` file, when the config names one: its
    /// `user:password` lines must be converted ([`convert_local_users`]) into
    /// the lassi users file the output names.
    pub local_users: Option<String>,
}

/// A TOML value lassi's config takes.
#[derive(Clone, Debug)]
enum Val {
    Str(String),
    Int(u64),
    Bool(bool),
    List(Vec<String>),
}

/// The lassi config being built: `(table, key, value)` in output order.
#[derive(Default)]
struct Out {
    keys: Vec<(&'static str, &'static str, Val)>,
    /// `[[radius.server]]`: address, secret, auth port, acct port.
    servers: Vec<(Ipv4Addr, String, u64, u64)>,
    /// `[radius.coa]`: the listening port.
    coa_port: Option<u64>,
    warnings: Vec<Warning>,
}

impl Out {
    fn set(&mut self, table: &'static str, key: &'static str, v: Val) {
        self.keys.push((table, key, v));
    }
    fn warn(&mut self, o: &CoovaOption, reason: impl Into<String>) {
        self.warnings.push(Warning {
            origin: o.origin.clone(),
            option: o.written.clone(),
            reason: reason.into(),
        });
    }
}

/// The options read, looked up by chilli name (the last one written wins).
struct Opts<'a>(&'a [CoovaOption]);

impl<'a> Opts<'a> {
    fn last(&self, name: &str) -> Option<&'a CoovaOption> {
        self.0.iter().rev().find(|o| o.name == name)
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &'a CoovaOption> + '_ {
        let name = name.to_string();
        self.0.iter().filter(move |o| o.name == name)
    }
    fn str(&self, name: &str) -> Option<(&'a CoovaOption, &'a str)> {
        let o = self.last(name)?;
        o.value.as_deref().filter(|v| !v.is_empty()).map(|v| (o, v))
    }
    fn flag(&self, name: &str) -> bool {
        self.last(name).is_some_and(|o| truthy(o.value.as_deref()))
    }
    /// A whole number; a value that is not one is an error naming the option.
    fn num(&self, name: &str) -> Result<Option<(&'a CoovaOption, u64)>, String> {
        let Some((o, v)) = self.str(name) else {
            return Ok(None);
        };
        v.trim()
            .parse()
            .map(|n| Some((o, n)))
            .map_err(|_| format!("{}: {}: '{v}' is not a whole number", o.origin, o.written))
    }
}

/// Every chilli option this importer maps (the others are warned about).
const MAPPED: &[&str] = &[
    "net",
    "uamlisten",
    "dhcpif",
    "dns1",
    "dns2",
    "dynip",
    "dhcpstart",
    "dhcpend",
    "lease",
    "domain",
    "tundev",
    "wanif",
    "uamport",
    "uamserver",
    "uamsecret",
    "radiusnasid",
    "uamallowed",
    "uamdomain",
    "uamanydns",
    "localusers",
    "defsessiontimeout",
    "defidletimeout",
    "definteriminterval",
    "defbandwidthmaxdown",
    "defbandwidthmaxup",
    "radiusserver1",
    "radiusserver2",
    "radiussecret",
    "radiusauthport",
    "radiusacctport",
    "radiuslocationid",
    "radiuslocationname",
    "swapoctets",
    "macauth",
    "macsuffix",
    "macpasswd",
    "nasip",
    "nasmac",
    "coaport",
    "conup",
    "condown",
];

/// Why some well-known options have no lassi equivalent (the rest get a generic reason).
const REASONS: &[(&str, &str)] = &[
    ("interval", "lassi re-reads nothing on a timer: `lassi reload` after a change; walled-garden names are refreshed by their DNS TTL"),
    ("uamuiport", "lassi serves its pages and the login API on one port (portal.port)"),
    ("uamhomepage", "lassi redirects straight to the splash page"),
    ("statip", "lassi has no static pool; give fixed addresses with [[lan.static_lease]]"),
    ("coanoipcheck", "lassi takes CoA only from the [[radius.coa.client]] addresses"),
    ("radiustimeout", "lassi's radius.timeout doubles per resend; Coova's total timeout does not carry over"),
    ("radiusretry", "see radius.retries (resends per server before failover)"),
    ("cmdsocket", "lassi's control socket is control.socket and speaks its own protocol (`lassi sessions`)"),
    ("wwwdir", "lassi's pages are overridden from portal.pages_dir (its own templates)"),
    ("wwwbin", "lassi runs no CGI"),
    ("ipup", "chilli's up.sh sets up the routes, NAT and firewall lassi makes itself ([uplink]) and would fight them; put your own additions in hooks.ipup"),
    ("ipdown", "chilli's down.sh undoes what lassi tears down itself; put your own additions in hooks.ipdown"),
];

/// Maps the options to lassi TOML. `fallback_dns` is used when neither
/// dns1 nor dns2 is set (chilli then hands out the host's resolvers);
/// `users_file` is where the output expects the converted local users.
pub fn map(
    options: &[CoovaOption],
    fallback_dns: &[Ipv4Addr],
    users_file: &str,
) -> Result<Imported, String> {
    let opts = Opts(options);
    let mut out = Out::default();
    let gateway = map_lan(&opts, fallback_dns, &mut out)?;
    let radius = map_radius(&opts, &mut out)?;
    let local_users = opts.str("localusers").map(|(_, v)| v.to_string());
    map_portal(&opts, gateway, &mut out)?;
    map_auth(&opts, radius, local_users.is_some(), users_file, &mut out)?;
    map_session(&opts, &mut out)?;
    map_hooks(&opts, &mut out);
    warn_unmapped(&opts, &mut out);
    let toml = emit(&out);
    Ok(Imported {
        toml,
        warnings: out.warnings,
        local_users,
    })
}

/// `conup`/`condown` become `[hooks]` (same environment); a relative path
/// is left out with a warning, as lassi wants absolute ones.
fn map_hooks(opts: &Opts, out: &mut Out) {
    for (name, key) in [("conup", "conup"), ("condown", "condown")] {
        if let Some((o, v)) = opts.str(name) {
            if v.starts_with('/') {
                out.set("hooks", key, Val::Str(v.to_string()));
            } else {
                out.warn(o, "lassi wants the script's absolute path; left out");
            }
        }
    }
}

/// Warnings for every option no mapping took.
fn warn_unmapped(opts: &Opts, out: &mut Out) {
    for o in opts.0 {
        if MAPPED.contains(&o.name.as_str()) {
            continue;
        }
        let reason = REASONS
            .iter()
            .find(|(n, _)| *n == o.name)
            .map(|(_, r)| r.to_string())
            .unwrap_or_else(|| "no lassi equivalent".into());
        out.warn(o, reason);
    }
}

/// `net`: `a.b.c.d/prefix` or `a.b.c.d/netmask`.
fn parse_net(v: &str) -> Option<Ipv4Net> {
    let (a, m) = v.trim().split_once('/')?;
    let addr: Ipv4Addr = a.parse().ok()?;
    let prefix = match m.parse::<u8>() {
        Ok(p) if p <= 32 => p,
        _ => {
            let mask = u32::from(m.parse::<Ipv4Addr>().ok()?);
            if mask.leading_ones() + mask.trailing_zeros() != 32 {
                return None;
            }
            mask.leading_ones() as u8
        }
    };
    let bits = u32::from(addr) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Some(Ipv4Net {
        addr: Ipv4Addr::from(bits),
        prefix,
    })
}

fn bad(o: &CoovaOption, why: impl std::fmt::Display) -> String {
    format!("{}: {}: {why}", o.origin, o.written)
}

/// `[lan]` and `[uplink]`; returns the gateway address.
fn map_lan(opts: &Opts, fallback_dns: &[Ipv4Addr], out: &mut Out) -> Result<Ipv4Addr, String> {
    let (_, ifname) = opts
        .str("dhcpif")
        .ok_or("no dhcpif (HS_LANIF): lassi needs the LAN interface")?;
    out.set("lan", "interface", Val::Str(ifname.into()));
    let net = match opts.str("net") {
        Some((o, v)) => parse_net(v).ok_or_else(|| bad(o, format!("'{v}' is not a network")))?,
        None => parse_net("192.168.182.0/24").expect("chilli's default network"),
    };
    out.set("lan", "network", Val::Str(net.to_string()));
    let first_host = Ipv4Addr::from(u32::from(net.addr) + 1);
    let gateway = match opts.str("uamlisten") {
        Some((o, v)) => v
            .parse()
            .map_err(|_| bad(o, format!("'{v}' is not an address")))?,
        None => first_host,
    };
    out.set("lan", "gateway", Val::Str(gateway.to_string()));
    map_dns(opts, fallback_dns, out)?;
    map_pool(opts, net, gateway, out)?;
    let lease = opts.num("lease")?.map_or(600, |(_, n)| n);
    out.set("lan", "lease_time", Val::Int(lease));
    out.set("lan", "unauthorized_lease_time", Val::Int(lease.min(300)));
    if let Some((_, d)) = opts.str("domain") {
        out.set("lan", "domain", Val::Str(d.into()));
    }
    if let Some((_, t)) = opts.str("tundev") {
        out.set("uplink", "tun_name", Val::Str(t.into()));
    }
    if let Some((_, w)) = opts.str("wanif") {
        out.set("uplink", "wan_interface", Val::Str(w.into()));
    }
    Ok(gateway)
}

/// `lan.dns` from dns1/dns2 (or the host's resolvers, as chilli falls back to).
fn map_dns(opts: &Opts, fallback_dns: &[Ipv4Addr], out: &mut Out) -> Result<(), String> {
    let mut dns = Vec::new();
    for name in ["dns1", "dns2"] {
        if let Some((o, v)) = opts.str(name) {
            let a: Ipv4Addr = v
                .parse()
                .map_err(|_| bad(o, format!("'{v}' is not an address")))?;
            dns.push(a.to_string());
        }
    }
    if dns.is_empty() {
        dns = fallback_dns.iter().map(Ipv4Addr::to_string).collect();
    }
    if dns.is_empty() {
        return Err("no dns1/dns2 (HS_DNS1) and no name server in /etc/resolv.conf".into());
    }
    out.set("lan", "dns", Val::List(dns));
    Ok(())
}

/// `lan.dhcp_range` from dynip (a network) or dhcpstart/dhcpend (host
/// numbers within `net`, chilli's meaning).
fn map_pool(opts: &Opts, net: Ipv4Net, gateway: Ipv4Addr, out: &mut Out) -> Result<(), String> {
    let base = u32::from(net.addr);
    let size = 1u64 << (32 - u32::from(net.prefix));
    let (mut lo, mut hi) = (1u64, size.saturating_sub(2));
    if let Some((o, v)) = opts.str("dynip") {
        let pool = parse_net(v)
            .or_else(|| {
                v.parse::<Ipv4Addr>()
                    .ok()
                    .map(|addr| Ipv4Net { addr, prefix: 32 })
            })
            .ok_or_else(|| bad(o, format!("'{v}' is not a network")))?;
        let p_size = 1u64 << (32 - u32::from(pool.prefix));
        let start = u64::from(u32::from(pool.addr).wrapping_sub(base));
        if start >= size {
            return Err(bad(o, format!("{v} is outside net {net}")));
        }
        lo = lo.max(start);
        hi = hi.min(start + p_size - 1);
    }
    if let Some((_, n)) = opts.num("dhcpstart")?.filter(|(_, n)| *n > 0) {
        lo = lo.max(n);
    }
    if let Some((_, n)) = opts.num("dhcpend")?.filter(|(_, n)| *n > 0) {
        hi = hi.min(n);
    }
    // chilli never hands out its own address.
    let gw = u64::from(u32::from(gateway).wrapping_sub(base));
    if gw == lo {
        lo += 1;
    } else if gw == hi {
        hi -= 1;
    }
    if lo > hi {
        return Err(format!(
            "the DHCP pool (dynip/dhcpstart/dhcpend) is empty in {net}"
        ));
    }
    let at = |i: u64| Ipv4Addr::from(base + i as u32).to_string();
    out.set("lan", "dhcp_range", Val::List(vec![at(lo), at(hi)]));
    Ok(())
}

/// `[portal]`: port, splash server, secret, NAS id, walled garden.
fn map_portal(opts: &Opts, gateway: Ipv4Addr, out: &mut Out) -> Result<(), String> {
    let port = opts.num("uamport")?.map_or(3990, |(_, n)| n);
    out.set("portal", "port", Val::Int(port));
    if let Some((o, url)) = opts.str("uamserver") {
        // chilli's own pages (http://uamlisten:port/www/…) are lassi's own pages.
        let own = url_host(url).is_some_and(|h| h.parse() == Ok(gateway));
        if own {
            out.warn(
                o,
                "points at chilli's own pages: lassi serves its own splash page instead",
            );
        } else {
            out.set("portal", "uam_server", Val::Str(url.into()));
        }
    }
    if let Some((_, s)) = opts.str("uamsecret") {
        out.set("portal", "uam_secret", Val::Str(s.into()));
    }
    let nas_id = opts.str("radiusnasid").map_or("nas01", |(_, v)| v);
    out.set("portal", "nas_id", Val::Str(nas_id.into()));
    let garden = walled_garden(opts, out);
    if !garden.is_empty() {
        out.set("portal", "walled_garden", Val::List(garden));
    }
    if opts.flag("uamanydns") {
        out.set("portal", "any_dns", Val::Bool(true));
    }
    Ok(())
}

/// The host of an http(s) URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(authority.rsplit_once(':').map_or(authority, |(h, _)| h))
}

/// uamallowed (hosts, addresses, networks) and uamdomain (whole domains).
fn walled_garden(opts: &Opts, out: &mut Out) -> Vec<String> {
    let mut garden: Vec<String> = Vec::new();
    let split = |v: &str| -> Vec<String> {
        v.split([',', ' ', '\t'])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    for o in opts.all("uamallowed") {
        for entry in split(o.value.as_deref().unwrap_or("")) {
            let entry = match parse_net(&entry) {
                Some(n) if entry.contains('/') => n.to_string(),
                _ => entry,
            };
            match entry.parse::<WalledGarden>() {
                Ok(_) => garden.push(entry),
                Err(_) => out.warn(o, format!("'{entry}': lassi's walled garden takes addresses, networks and host names (no ports or protocols); left out")),
            }
        }
    }
    for o in opts.all("uamdomain") {
        for entry in split(o.value.as_deref().unwrap_or("")) {
            let domain = entry.trim_start_matches(['.', '*']).trim_start_matches('.');
            let wild = format!("*.{domain}");
            if wild.parse::<WalledGarden>().is_err() {
                out.warn(o, format!("'{entry}' is not a domain name; left out"));
                continue;
            }
            // chilli's uamdomain matches the domain itself and every name under it.
            garden.push(domain.to_string());
            garden.push(wild);
        }
    }
    let mut seen = std::collections::HashSet::new();
    garden.retain(|g| seen.insert(g.clone()));
    garden
}

/// `portal.auth` (and the users file): local users first, as chilli checks them first.
fn map_auth(
    opts: &Opts,
    radius: bool,
    local: bool,
    users_file: &str,
    out: &mut Out,
) -> Result<(), String> {
    if local {
        out.set("portal", "auth", Val::Str("local".into()));
        out.set("portal", "users_file", Val::Str(users_file.into()));
        if radius {
            if let Some((o, _)) = opts.str("localusers") {
                out.warn(o, "lassi checks logins against one backend: the local users; RADIUS keeps accounting and MAC authentication");
            }
        }
        return Ok(());
    }
    if !radius {
        return Err("no radiusserver1 (HS_RADIUS) address and no localusers: lassi would not know how to check logins".into());
    }
    out.set("portal", "auth", Val::Str("radius".into()));
    Ok(())
}

/// `[session]`: the def* defaults (chilli's 0 means none).
fn map_session(opts: &Opts, out: &mut Out) -> Result<(), String> {
    for (name, key) in [
        ("defsessiontimeout", "session_timeout"),
        ("defidletimeout", "idle_timeout"),
    ] {
        if let Some((_, n)) = opts.num(name)?.filter(|(_, n)| *n > 0) {
            out.set("session", key, Val::Int(n));
        }
    }
    match opts.num("definteriminterval")? {
        Some((_, 0)) => {}
        Some((o, n)) if n < 60 => {
            out.warn(
                o,
                format!("{n} s: lassi sends Interim-Updates at most every 60 s; set to 60"),
            );
            out.set("session", "interim_interval", Val::Int(60));
        }
        Some((_, n)) => out.set("session", "interim_interval", Val::Int(n)),
        None => out.set("session", "interim_interval", Val::Int(300)),
    }
    for (name, key) in [
        ("defbandwidthmaxup", "bandwidth_up"),
        ("defbandwidthmaxdown", "bandwidth_down"),
    ] {
        match opts.num(name)? {
            Some((o, n)) if n > 0 && n < 8000 => out.warn(
                o,
                format!("{n} bit/s is below lassi's 8000 bit/s minimum; left out"),
            ),
            Some((_, n)) if n > 0 => out.set("session", key, Val::Int(n)),
            _ => {}
        }
    }
    Ok(())
}

/// `[radius]` and its servers; whether there is a RADIUS server to talk to.
fn map_radius(opts: &Opts, out: &mut Out) -> Result<bool, String> {
    let secret = opts
        .str("radiussecret")
        .map_or("coova-anonymous", |(_, v)| v);
    let auth = opts.num("radiusauthport")?.map_or(1812, |(_, n)| n);
    let acct = opts.num("radiusacctport")?.map_or(1813, |(_, n)| n);
    for name in ["radiusserver1", "radiusserver2"] {
        let Some((o, v)) = opts.str(name) else {
            continue;
        };
        match v.parse::<Ipv4Addr>() {
            Ok(a) if out.servers.iter().any(|s| s.0 == a) => {}
            Ok(a) => out.servers.push((a, secret.to_string(), auth, acct)),
            Err(_) if name == "radiusserver2" => {
                out.warn(o, format!("'{v}' is not an IPv4 address (lassi resolves no server names); left out"))
            }
            Err(_) => return Err(bad(o, format!("'{v}' is not an IPv4 address: lassi resolves no server names; write the address"))),
        }
    }
    if out.servers.is_empty() {
        for name in ["macauth", "coaport", "swapoctets"] {
            if let Some(o) = opts.last(name) {
                out.warn(o, "needs a RADIUS server (radiusserver1); left out");
            }
        }
        return Ok(false);
    }
    map_radius_keys(opts, out);
    if let Some((_, port)) = opts.num("coaport")?.filter(|(_, n)| *n > 0) {
        out.coa_port = Some(port);
    }
    Ok(true)
}

/// The `[radius]` keys beside the servers.
fn map_radius_keys(opts: &Opts, out: &mut Out) {
    for (name, key) in [
        ("radiuslocationid", "location_id"),
        ("radiuslocationname", "location_name"),
        ("nasip", "nas_ip"),
        ("macsuffix", "mac_suffix"),
        ("macpasswd", "mac_password"),
    ] {
        if let Some((_, v)) = opts.str(name) {
            out.set("radius", key, Val::Str(v.into()));
        }
    }
    if let Some((_, v)) = opts.str("nasmac") {
        let id = v.replace(':', "-").to_ascii_uppercase();
        out.set("radius", "called_station_id", Val::Str(id));
    }
    if opts.flag("swapoctets") {
        out.set("radius", "swap_octets", Val::Bool(true));
    }
    if opts.flag("macauth") {
        out.set("radius", "mac_auth", Val::Bool(true));
    }
}

fn render(v: &Val) -> String {
    match v {
        Val::Str(s) => toml_string(s),
        Val::Int(n) => n.to_string(),
        Val::Bool(b) => b.to_string(),
        Val::List(l) => {
            let items: Vec<String> = l.iter().map(|s| toml_string(s)).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// The TOML text: the unmapped options in a comment, then the tables.
fn emit(out: &Out) -> String {
    let mut t =
        String::from("# lassi configuration imported from CoovaChilli by `lassi import-coova`.\n");
    if out.warnings.is_empty() {
        t.push_str("# Every option was mapped.\n");
    } else {
        t.push_str("# Not mapped (no lassi equivalent, or not as written):\n");
        for w in &out.warnings {
            let line = w.to_string().replace('\n', " ");
            t.push_str(&format!("#   {line}\n"));
        }
    }
    for table in ["lan", "uplink", "portal", "session", "hooks", "radius"] {
        let keys: Vec<_> = out.keys.iter().filter(|(tb, _, _)| *tb == table).collect();
        if keys.is_empty() && (table != "radius" || out.servers.is_empty()) {
            continue;
        }
        t.push_str(&format!("\n[{table}]\n"));
        for (_, k, v) in keys {
            t.push_str(&format!("{k} = {}\n", render(v)));
        }
    }
    emit_servers(out, &mut t);
    t
}

/// `[[radius.server]]`, `[radius.coa]` and its clients (the RADIUS servers,
/// the only peers chilli takes CoA from).
fn emit_servers(out: &Out, t: &mut String) {
    for (addr, secret, auth, acct) in &out.servers {
        t.push_str(&format!(
            "\n[[radius.server]]\naddress = \"{addr}\"\nsecret = {}\nauth_port = {auth}\nacct_port = {acct}\n",
            toml_string(secret)
        ));
    }
    if let Some(port) = out.coa_port {
        t.push_str(&format!("\n[radius.coa]\nlisten = \"0.0.0.0:{port}\"\n"));
        for (addr, secret, _, _) in &out.servers {
            t.push_str(&format!(
                "\n[[radius.coa.client]]\naddress = \"{addr}\"\nsecret = {}\n",
                toml_string(secret)
            ));
        }
    }
}

/// chilli's localusers file (`user:password` lines) in lassi's users-file
/// format (`user plain:password`). Lines lassi cannot take are returned as
/// warnings against `file`.
pub fn convert_local_users(file: &str, text: &str) -> (String, Vec<Warning>) {
    let mut users =
        String::from("# Converted from CoovaChilli's localusers by `lassi import-coova`.\n");
    let mut warnings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = Origin {
            file: file.into(),
            line: n + 1,
        };
        match line.split_once(':') {
            Some((u, p)) if !u.is_empty() && !u.contains(char::is_whitespace) && !p.contains(char::is_whitespace) && !p.is_empty() => {
                users.push_str(&format!("{u} plain:{p}\n"));
            }
            _ => warnings.push(Warning {
                origin,
                option: "localusers".into(),
                reason: "not a user:password line lassi can take (no spaces, no empty password); left out".into(),
            }),
        }
    }
    (users, warnings)
}
