//! A private FreeRADIUS 3.2 (and, for the SQL backend, a private
//! PostgreSQL) for tests: configuration generated into a directory of the
//! test, the server started by PID (in a namespace of the lab or on
//! loopback), its detail file parsed, and `radclient` as the CoA/Disconnect
//! peer.
//!
//! ```text
//!  gw ns: lassi (RADIUS client 192.0.2.1, CoA listener 192.0.2.1:3799)
//!     │
//!  upstream ns: lo 198.51.100.60 — freeradius -f -l stdout -d CONFDIR
//!               radclient (from 192.0.2.2)
//! ```
//!
//! The generated server has the modules pap, chap, files (a users file
//! given by the test), detail (one file, `radacct/detail`),
//! attr_filter and optionally sql (PostgreSQL over a Unix socket). lassi's
//! dictionaries (`radius-dicts/`) are included, so the CoovaChilli
//! attributes FreeRADIUS lacks are known. Replies carry a
//! Message-Authenticator (post-auth `update reply`, in the REJECT branch
//! too) except for the users listed in
//! [`FreeRadiusOptions::unsigned_users`].

use super::netns::{read_lossy, run_command, tail, wait_until, ExecOptions, Netns, Proc};
use super::topology::Lab;
use super::{IoContext, LabError, LabResult};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where the lab's FreeRADIUS listens: a /32 on the upstream namespace's `lo`.
pub const RADIUS_ADDR: &str = "198.51.100.60";

/// lassi's `[portal]` and `[radius]` against the lab's FreeRADIUS
/// ([`FreeRadiusOptions::lab`], secret `testing123`): logins through
/// RADIUS, Message-Authenticator required, 1 s timeout and one retry, no
/// MAC authentication.
pub fn lassi_toml() -> String {
    format!(
        r#"
[portal]
auth = "radius"

[radius]
nas_identifier = "lassi-lab"
require_message_authenticator = true
timeout = 1
retries = 1
mac_auth = false

[[radius.server]]
address = "{RADIUS_ADDR}"
secret = "testing123"
auth_port = 1812
acct_port = 1813
"#
    )
}

/// One NAS (or CoA-sending peer) FreeRADIUS accepts requests from.
#[derive(Debug, Clone)]
pub struct RadiusClient {
    /// Address or CIDR network (`192.0.2.1`, `127.0.0.1`).
    pub addr: String,
    /// Shared secret.
    pub secret: String,
    /// `require_message_authenticator = yes` for Access-Requests.
    pub require_message_authenticator: bool,
}

/// How to configure a private FreeRADIUS.
#[derive(Debug, Clone)]
pub struct FreeRadiusOptions {
    /// Listening address.
    pub listen: IpAddr,
    /// Authentication port.
    pub auth_port: u16,
    /// Accounting port.
    pub acct_port: u16,
    /// The NASes allowed to talk to it.
    pub clients: Vec<RadiusClient>,
    /// The `users` file (rlm_files format).
    pub users: String,
    /// Users whose replies get no Message-Authenticator (to show a NAS
    /// dropping unsigned replies).
    pub unsigned_users: Vec<String>,
    /// Accounting also goes to PostgreSQL's `radacct` through rlm_sql.
    pub sql: Option<SqlBackend>,
    /// Run with `-X` (full packet debug in the log). Also set by the
    /// environment variable `LASSI_RADIUS_DEBUG=1`.
    pub debug: bool,
}

impl FreeRadiusOptions {
    /// The lab's layout: FreeRADIUS on [`RADIUS_ADDR`] (1812/1813) in the
    /// upstream namespace, the gateway 192.0.2.1 its client with secret
    /// `testing123` (Message-Authenticator required), and `users`.
    pub fn lab(users: &str) -> FreeRadiusOptions {
        FreeRadiusOptions {
            listen: RADIUS_ADDR.parse().expect("address"),
            auth_port: 1812,
            acct_port: 1813,
            clients: vec![RadiusClient {
                addr: super::addrs::GW_WAN.to_string(),
                secret: "testing123".into(),
                require_message_authenticator: true,
            }],
            users: users.to_string(),
            unsigned_users: Vec::new(),
            sql: None,
            debug: false,
        }
    }
}

/// rlm_sql settings for a PostgreSQL reached over a Unix socket.
#[derive(Debug, Clone)]
pub struct SqlBackend {
    /// The directory holding PostgreSQL's socket (`-k DIR`).
    pub socket_dir: PathBuf,
    /// The socket's port number (`.s.PGSQL.<port>`).
    pub port: u16,
    /// Database name (with FreeRADIUS's schema loaded).
    pub database: String,
    /// Role to connect as (trust authentication).
    pub user: String,
}

/// A private FreeRADIUS. Dropping it stops the server by PID; its
/// directory is removed with the lab (or, when configured outside a lab,
/// on drop unless the test failed).
#[derive(Debug)]
pub struct FreeRadius {
    dir: PathBuf,
    opts: FreeRadiusOptions,
    ns: Option<Netns>,
    proc: Option<Proc>,
    log: PathBuf,
    starts: usize,
    remove_dir: bool,
}

impl Lab {
    /// Configures and starts a private FreeRADIUS in the upstream namespace
    /// on `opts.listen` (added to the upstream `lo` as a /32), its files in
    /// the lab directory (`freeradius-N/`, log `freeradius-N.log`).
    pub fn start_freeradius(&self, opts: FreeRadiusOptions) -> LabResult<FreeRadius> {
        let mut fr = self.configure_freeradius(opts)?;
        fr.start()?;
        Ok(fr)
    }

    /// Like [`Lab::start_freeradius`] without starting it.
    pub fn configure_freeradius(&self, opts: FreeRadiusOptions) -> LabResult<FreeRadius> {
        let addr = format!("{}/32", opts.listen);
        let have = self.upstream().ip(&["-o", "addr", "show", "dev", "lo"])?;
        if !have.stdout.contains(&format!(" {addr} ")) {
            self.upstream().ip(&["addr", "add", &addr, "dev", "lo"])?;
        }
        let n = self.next_seq();
        let dir = self.dir().join(format!("freeradius-{n}"));
        let log = self.dir().join(format!("freeradius-{n}.log"));
        FreeRadius::configure(&dir, &log, Some(self.upstream().view()), opts)
    }
}

impl FreeRadius {
    /// Writes the configuration into `dir` (created) without starting the
    /// server. `ns`: the namespace to run it in (`None`: the test's own,
    /// for loopback servers). The server's output goes to `log`.
    pub fn configure(
        dir: &Path,
        log: &Path,
        ns: Option<Netns>,
        opts: FreeRadiusOptions,
    ) -> LabResult<FreeRadius> {
        for d in ["radacct", "run", "log"] {
            std::fs::create_dir_all(dir.join(d)).ctx(|| format!("creating {}", dir.display()))?;
        }
        let dicts =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../radius-dicts/dictionary.lassi");
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).ctx(|| format!("writing {name}"))
        };
        write("dictionary", format!("$INCLUDE {}\n", dicts.display()))?;
        write("clients.conf", clients_conf(&opts.clients))?;
        write("users", opts.users.clone())?;
        write("attrs.accounting_response", "DEFAULT\n".into())?;
        write("radiusd.conf", radiusd_conf(&opts))?;
        Ok(FreeRadius {
            dir: dir.to_path_buf(),
            opts,
            ns,
            proc: None,
            log: log.to_path_buf(),
            starts: 0,
            remove_dir: false,
        })
    }

    /// [`FreeRadius::configure`] in a fresh temp directory that is removed
    /// on drop (kept, with the log printed, when the test fails).
    pub fn configure_temp(tag: &str, opts: FreeRadiusOptions) -> LabResult<FreeRadius> {
        let dir = std::env::temp_dir().join(super::unique_name(tag));
        let log = dir.join("log/stdout.log");
        let mut fr = Self::configure(&dir, &log, None, opts)?;
        fr.remove_dir = true;
        Ok(fr)
    }

    /// Starts the server (again, after [`FreeRadius::stop`], with the same
    /// configuration and detail file) and waits for "Ready to process
    /// requests".
    pub fn start(&mut self) -> LabResult<()> {
        if self.proc.is_some() {
            return Err(LabError::new("FreeRADIUS is already running"));
        }
        let bin = if Path::new("/usr/sbin/freeradius").exists() {
            "/usr/sbin/freeradius"
        } else {
            "freeradius"
        };
        let debug = self.opts.debug || std::env::var("LASSI_RADIUS_DEBUG").as_deref() == Ok("1");
        let mut argv = vec![bin.to_string()];
        argv.extend(["-f", "-l", "stdout"].map(String::from));
        if debug {
            argv.push("-X".into());
        }
        argv.push("-d".into());
        argv.push(self.dir.display().to_string());
        let mut p = match &self.ns {
            Some(ns) => ns.spawn("freeradius", &argv, &self.log, &ExecOptions::default())?,
            None => {
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]);
                Proc::spawn_command("freeradius", cmd, &self.log, &argv.join(" "))?
            }
        };
        self.starts += 1;
        let want = self.starts;
        let log = self.log.clone();
        let ready = wait_until(Duration::from_secs(15), || {
            if !p.is_running() {
                return Some(false);
            }
            (read_lossy(&log)
                .matches("Ready to process requests")
                .count()
                >= want)
                .then_some(true)
        });
        if ready != Some(true) {
            let d = p.describe("FreeRADIUS did not become ready");
            p.stop();
            return Err(LabError::new(d));
        }
        self.proc = Some(p);
        Ok(())
    }

    /// Stops the server (SIGTERM by PID, then SIGKILL). The detail file and
    /// configuration stay for [`FreeRadius::start`].
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// True while the server runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().map(|p| p.is_running()).unwrap_or(false)
    }

    /// The configuration directory (`-d`).
    pub fn conf_dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was configured with.
    pub fn options(&self) -> &FreeRadiusOptions {
        &self.opts
    }

    /// Everything the server logged, across restarts.
    pub fn log(&self) -> String {
        read_lossy(&self.log)
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }

    /// The detail file's path.
    pub fn detail_path(&self) -> PathBuf {
        self.dir.join("radacct/detail")
    }

    /// Every accounting request FreeRADIUS received, in order of arrival.
    pub fn detail(&self) -> Vec<DetailRecord> {
        parse_detail(&read_lossy(&self.detail_path()))
    }

    /// The records of one session (by Acct-Session-Id), in order.
    pub fn session_records(&self, session_id: &str) -> Vec<DetailRecord> {
        self.detail()
            .into_iter()
            .filter(|r| r.session_id() == Some(session_id))
            .collect()
    }

    /// Waits up to `timeout` for a record matching `pred`; returns it.
    pub fn wait_for_record(
        &self,
        timeout: Duration,
        pred: impl Fn(&DetailRecord) -> bool,
    ) -> Option<DetailRecord> {
        wait_until(timeout, || self.detail().into_iter().find(|r| pred(r)))
    }

    /// `radclient` run in the namespace the server runs in, with this
    /// server's dictionaries (lassi's included). See [`radclient`].
    pub fn radclient(
        &self,
        target: &str,
        kind: &str,
        secret: &str,
        attrs: &str,
    ) -> LabResult<String> {
        let ns = self.ns.as_ref().map(|n| n.view());
        radclient_in(ns.as_ref(), Some(&self.dir), target, kind, secret, attrs)
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        self.stop();
        if self.remove_dir {
            if std::thread::panicking() {
                eprintln!(
                    "FreeRADIUS log ({}):\n{}",
                    self.dir.display(),
                    self.log_tail(60)
                );
            } else {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// Runs `radclient -x -r 1 -t 2 TARGET KIND SECRET` with `attrs` (one
/// request: `Attr = value` separated by commas or lines) in namespace `ns`
/// and returns everything it printed, whatever its exit status
/// ("Received CoA-ACK", "No reply from server", …).
pub fn radclient(
    ns: Option<&Netns>,
    target: &str,
    kind: &str,
    secret: &str,
    attrs: &str,
) -> LabResult<String> {
    radclient_in(ns, None, target, kind, secret, attrs)
}

fn radclient_in(
    ns: Option<&Netns>,
    raddb: Option<&Path>,
    target: &str,
    kind: &str,
    secret: &str,
    attrs: &str,
) -> LabResult<String> {
    let file = std::env::temp_dir().join(super::unique_name("radclient"));
    std::fs::write(&file, attrs).ctx(|| format!("writing {}", file.display()))?;
    let mut argv: Vec<String> = vec!["radclient".into(), "-x".into()];
    if let Some(d) = raddb {
        argv.push("-d".into());
        argv.push(d.display().to_string());
    }
    argv.extend(
        ["-r", "1", "-t", "2", "-f"]
            .iter()
            .map(|s| s.to_string())
            .chain([file.display().to_string()])
            .chain([target, kind, secret].iter().map(|s| s.to_string())),
    );
    let opts = ExecOptions {
        timeout: Duration::from_secs(20),
        ..ExecOptions::default()
    };
    let out = match ns {
        Some(ns) => ns.run_with(&argv, &opts),
        None => run_command(&argv, opts.timeout),
    };
    let _ = std::fs::remove_file(&file);
    let out = out?;
    Ok(format!("{}{}", out.stdout, out.stderr))
}

/// One accounting request as FreeRADIUS's detail module wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailRecord {
    /// The header line (when FreeRADIUS wrote it).
    pub header: String,
    /// `Attribute = value` pairs in order, quotes removed.
    pub attrs: Vec<(String, String)>,
}

impl DetailRecord {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (Class may repeat).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.attrs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An integer attribute.
    pub fn num(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }

    /// Acct-Session-Id.
    pub fn session_id(&self) -> Option<&str> {
        self.get("Acct-Session-Id")
    }

    /// Acct-Status-Type (`Start`, `Interim-Update`, `Stop`,
    /// `Accounting-On`, `Accounting-Off`).
    pub fn status(&self) -> &str {
        self.get("Acct-Status-Type").unwrap_or("")
    }

    /// Acct-Input-Octets + 2^32 × Acct-Input-Gigawords (from the guest).
    pub fn input_octets(&self) -> u64 {
        self.num("Acct-Input-Octets").unwrap_or(0)
            + (self.num("Acct-Input-Gigawords").unwrap_or(0) << 32)
    }

    /// Acct-Output-Octets + 2^32 × Acct-Output-Gigawords (to the guest).
    pub fn output_octets(&self) -> u64 {
        self.num("Acct-Output-Octets").unwrap_or(0)
            + (self.num("Acct-Output-Gigawords").unwrap_or(0) << 32)
    }

    /// Acct-Session-Time in seconds.
    pub fn session_time(&self) -> Option<u64> {
        self.num("Acct-Session-Time")
    }

    /// Acct-Terminate-Cause (`User-Request`, `Idle-Timeout`, …).
    pub fn terminate_cause(&self) -> Option<&str> {
        self.get("Acct-Terminate-Cause")
    }

    /// What identifies a record regardless of resends: session, status,
    /// Event-Timestamp, session time and octets (Acct-Delay-Time and the
    /// arrival time left out). Two records with the same key are
    /// duplicates.
    pub fn identity(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.session_id().unwrap_or(""),
            self.status(),
            self.get("Event-Timestamp").unwrap_or(""),
            self.session_time()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            self.input_octets(),
            self.output_octets()
        )
    }
}

/// `record["Attr"]`: the first value, panicking (with the record) when the
/// attribute is missing.
impl std::ops::Index<&str> for DetailRecord {
    type Output = String;

    fn index(&self, name: &str) -> &String {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {self:?}"))
    }
}

/// Parses a detail file: blank-line separated records of a header line and
/// tab-indented `Name = value` lines.
pub fn parse_detail(text: &str) -> Vec<DetailRecord> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut header = String::new();
        let mut attrs = Vec::new();
        for line in block.lines() {
            if line.starts_with('\t') || line.starts_with(' ') {
                if let Some((k, v)) = line.trim().split_once(" = ") {
                    attrs.push((k.to_string(), v.trim().trim_matches('"').to_string()));
                }
            } else if !line.trim().is_empty() {
                header = line.trim().to_string();
            }
        }
        if !attrs.is_empty() {
            out.push(DetailRecord { header, attrs });
        }
    }
    out
}

fn clients_conf(clients: &[RadiusClient]) -> String {
    let mut s = String::new();
    for (i, c) in clients.iter().enumerate() {
        s.push_str(&format!(
            "client nas{i} {{\n  ipaddr = {}\n  secret = \"{}\"\n  require_message_authenticator = {}\n}}\n",
            c.addr,
            c.secret,
            if c.require_message_authenticator { "yes" } else { "no" }
        ));
    }
    s
}

fn radiusd_conf(o: &FreeRadiusOptions) -> String {
    let sql_module = o
        .sql
        .as_ref()
        .map(|s| {
            format!(
                r#"
  sql {{
    dialect = "postgresql"
    driver = "rlm_sql_postgresql"
    postgresql {{
      send_application_name = yes
    }}
    server = "{sock}"
    port = {port}
    login = "{user}"
    password = ""
    radius_db = "{db}"
    acct_table1 = "radacct"
    acct_table2 = "radacct"
    postauth_table = "radpostauth"
    authcheck_table = "radcheck"
    groupcheck_table = "radgroupcheck"
    authreply_table = "radreply"
    groupreply_table = "radgroupreply"
    usergroup_table = "radusergroup"
    delete_stale_sessions = yes
    read_clients = no
    client_table = "nas"
    group_attribute = "SQL-Group"
    pool {{
      start = 1
      min = 1
      max = 4
      spare = 1
      uses = 0
      retry_delay = 1
      lifetime = 0
      idle_timeout = 60
    }}
    $INCLUDE /etc/freeradius/3.0/mods-config/sql/main/postgresql/queries.conf
  }}
"#,
                sock = s.socket_dir.display(),
                port = s.port,
                user = s.user,
                db = s.database
            )
        })
        .unwrap_or_default();
    let sql = if o.sql.is_some() { "    sql\n" } else { "" };
    let unsigned = if o.unsigned_users.is_empty() {
        "true".to_string()
    } else {
        o.unsigned_users
            .iter()
            .map(|u| format!("&User-Name != \"{u}\""))
            .collect::<Vec<_>>()
            .join(" && ")
    };
    format!(
        r#"
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = ${{confdir}}/log
radacctdir = ${{confdir}}/radacct
name = freeradius
run_dir = ${{confdir}}/run
libdir = /usr/lib/freeradius
pidfile = ${{run_dir}}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
  destination = stdout
  colourise = no
  auth = yes
  auth_badpass = yes
  auth_goodpass = yes
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
}}
proxy_requests = no
$INCLUDE clients.conf
thread pool {{
  start_servers = 2
  max_servers = 4
  min_spare_servers = 1
  max_spare_servers = 3
  max_requests_per_server = 0
}}
modules {{
  expr {{
  }}
  pap {{
  }}
  chap {{
  }}
  files {{
    filename = ${{confdir}}/users
  }}
  detail {{
    filename = ${{radacctdir}}/detail
    permissions = 0600
    header = "%t"
  }}
  attr_filter attr_filter.accounting_response {{
    key = "%{{User-Name}}"
    filename = ${{confdir}}/attrs.accounting_response
  }}
{sql_module}}}
server default {{
  listen {{
    type = auth
    ipaddr = {listen}
    port = {auth}
  }}
  listen {{
    type = acct
    ipaddr = {listen}
    port = {acct}
  }}
  authorize {{
    files
    chap
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
    Auth-Type CHAP {{
      chap
    }}
  }}
  preacct {{
    update request {{
      Acct-Unique-Session-Id := "%{{md5:%{{User-Name}},%{{Acct-Session-Id}},%{{NAS-IP-Address}},%{{NAS-Identifier}},%{{NAS-Port}}}}"
    }}
  }}
  accounting {{
    detail
{sql}    attr_filter.accounting_response
  }}
  post-auth {{
    if ({unsigned}) {{
      update reply {{
        Message-Authenticator := 0x00
      }}
    }}
    Post-Auth-Type REJECT {{
      update reply {{
        Message-Authenticator := 0x00
      }}
    }}
  }}
}}
"#,
        listen = o.listen,
        auth = o.auth_port,
        acct = o.acct_port,
    )
}

/// A private PostgreSQL cluster listening only on a Unix socket in its own
/// directory (`listen_addresses = ''`), run as the `postgres` user. Dropped:
/// fast shutdown (SIGINT) by PID, then SIGKILL.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    proc: Option<Proc>,
    port: u16,
}

impl Postgres {
    /// `initdb` (trust authentication, role `postgres`) in `dir/data`, then
    /// starts the postmaster with its socket in `dir/sock`. Log:
    /// `dir/postgres.log`.
    pub fn start(dir: &Path) -> LabResult<Postgres> {
        let bin = postgres_bin_dir()?;
        let (uid, gid) = postgres_ids()?;
        let data = dir.join("data");
        let sock = dir.join("sock");
        for d in [dir, &data, &sock] {
            std::fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
            chown(d, uid, gid)?;
        }
        let log = dir.join("postgres.log");
        let out = Command::new(bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .current_dir(dir)
            .uid(uid)
            .gid(gid)
            .output()
            .ctx(|| "running initdb (apt-get install postgresql)".to_string())?;
        if !out.status.success() {
            return Err(LabError::new(format!(
                "initdb failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        let port = 5432;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&sock)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .current_dir(dir)
            .uid(uid)
            .gid(gid);
        let p = Proc::spawn_command("postgres", cmd, &log, "postgres -D DIR -k SOCK")?;
        let mut pg = Postgres {
            dir: dir.to_path_buf(),
            bin,
            proc: Some(p),
            port,
        };
        let ready = wait_until(Duration::from_secs(30), || {
            let ok = Command::new(pg.bin.join("pg_isready"))
                .arg("-h")
                .arg(&sock)
                .args(["-p", &port.to_string(), "-U", "postgres", "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            ok.then_some(())
        });
        if ready.is_none() {
            let d = pg
                .proc
                .as_ref()
                .map(|p| p.describe("PostgreSQL did not become ready"))
                .unwrap_or_default();
            pg.stop();
            return Err(LabError::new(d));
        }
        Ok(pg)
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The socket's port number.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs SQL with `psql -At` as `postgres` on `db`; stops at the first
    /// error. Returns the rows, one per line, columns separated by `|`.
    pub fn psql(&self, db: &str, sql: &str) -> LabResult<String> {
        self.psql_args(db, &["-c", sql])
    }

    /// Runs a SQL file with `psql -f`.
    pub fn psql_file(&self, db: &str, file: &Path) -> LabResult<String> {
        self.psql_args(db, &["-f", &file.display().to_string()])
    }

    fn psql_args(&self, db: &str, args: &[&str]) -> LabResult<String> {
        let sock = self.socket_dir().display().to_string();
        let port = self.port.to_string();
        let mut argv = vec![
            "psql",
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &sock,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            db,
        ];
        argv.extend_from_slice(args);
        Ok(run_command(&argv, Duration::from_secs(60))?.check()?.stdout)
    }

    /// Creates database `db` with FreeRADIUS's PostgreSQL schema and returns
    /// the [`SqlBackend`] for it.
    pub fn create_radius_db(&self, db: &str) -> LabResult<SqlBackend> {
        self.psql("postgres", &format!("CREATE DATABASE {db}"))?;
        self.psql_file(
            db,
            Path::new("/etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql"),
        )?;
        Ok(SqlBackend {
            socket_dir: self.socket_dir(),
            port: self.port,
            database: db.to_string(),
            user: "postgres".into(),
        })
    }

    /// Fast shutdown (SIGINT), then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(libc::SIGINT);
            if p.wait_timeout(Duration::from_secs(10)).is_none() {
                p.stop();
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn postgres_bin_dir() -> LabResult<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in rd.flatten() {
            let v: u32 = e.file_name().to_string_lossy().parse().unwrap_or(0);
            let bin = e.path().join("bin");
            if bin.join("postgres").exists() && best.as_ref().map(|b| v > b.0).unwrap_or(true) {
                best = Some((v, bin));
            }
        }
    }
    best.map(|b| b.1).ok_or_else(|| {
        LabError::new("no /usr/lib/postgresql/*/bin/postgres (apt-get install postgresql)")
    })
}

fn postgres_ids() -> LabResult<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "postgres").then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .ok_or_else(|| LabError::new("no postgres user (apt-get install postgresql)"))
}

fn chown(p: &Path, uid: u32, gid: u32) -> LabResult<()> {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).ctx(|| format!("chown {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_parsing() {
        let text = "Mon Jan  1 00:00:00 2024\n\tAcct-Session-Id = \"abc\"\n\tAcct-Status-Type = Stop\n\tAcct-Input-Octets = 5\n\tAcct-Input-Gigawords = 1\n\tClass = 0x01\n\tClass = 0x02\n\tTimestamp = 1\n\nMon Jan  1 00:00:01 2024\n\tAcct-Status-Type = Accounting-On\n\n";
        let d = parse_detail(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].session_id(), Some("abc"));
        assert_eq!(d[0].status(), "Stop");
        assert_eq!(d[0].input_octets(), (1 << 32) + 5);
        assert_eq!(d[0].all("Class"), ["0x01", "0x02"]);
        assert_eq!(d[0].header, "Mon Jan  1 00:00:00 2024");
        assert_eq!(d[1].status(), "Accounting-On");
        assert_eq!(d[1].session_id(), None);
    }

    #[test]
    fn config_text() {
        let mut o = FreeRadiusOptions::lab("bob Cleartext-Password := \"x\"\n");
        o.unsigned_users = vec!["nomabob".into()];
        let c = radiusd_conf(&o);
        assert!(c.contains("ipaddr = 198.51.100.60"));
        assert!(c.contains("if (&User-Name != \"nomabob\")"));
        assert!(!c.contains("rlm_sql_postgresql"));
        assert!(clients_conf(&o.clients).contains("ipaddr = 192.0.2.1"));
    }
}
