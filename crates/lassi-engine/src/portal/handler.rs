//! What the portal answers, independent of the HTTP library: a
//! [`PortalRequest`] in, a [`Response`] out, the data plane behind the
//! [`Gateway`] trait so unit tests can drive the real engine through it.
//! Pure: the time is the `now` the shell passes, fresh randomness comes in
//! the request ([`PortalRequest::random`]).

use core::future::Future;
use core::net::Ipv4Addr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::api::{self, JsonContext};
use super::auth::{AuthOutcome, AuthRequest, Authenticator, Credentials};
use super::challenge::{ChallengeError, ChallengeStore};
use super::csrf::{Guard, Source};
use super::limiter::LoginLimiter;
use super::pages::{choose_lang, Pages};
use super::uam::{self, Challenge, Redirect, Res};
use crate::session::{Authorization, Client, EndReason, EndedSession, SessionState};
use crate::wire::MacAddr;
use crate::UnixMillis;

/// Most query/form parameters read from one request.
const MAX_PARAMS: usize = 64;
/// Longest user name accepted (RADIUS User-Name limit).
const MAX_USERNAME: usize = 253;
/// Most clients with a live challenge.
const MAX_CHALLENGES: usize = 65_536;
/// Most clients the login rate limiter remembers.
const MAX_LIMITED: usize = 65_536;

/// A counter the connection tasks share: a 64-bit atomic where the CPU has
/// one, a mutex where it has not (32-bit MIPS has no 64-bit atomics).
#[derive(Debug, Default)]
pub struct Counter(
    #[cfg(target_has_atomic = "64")] std::sync::atomic::AtomicU64,
    #[cfg(not(target_has_atomic = "64"))] std::sync::Mutex<u64>,
);

impl Counter {
    /// Adds one.
    pub fn bump(&self) {
        #[cfg(target_has_atomic = "64")]
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(target_has_atomic = "64"))]
        if let Ok(mut n) = self.0.lock() {
            *n += 1;
        }
    }

    /// The count now.
    pub fn get(&self) -> u64 {
        #[cfg(target_has_atomic = "64")]
        return self.0.load(std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(target_has_atomic = "64"))]
        return self.0.lock().map(|n| *n).unwrap_or(0);
    }
}

/// The portal's counters, shown by `lassi status` (`portal`).
#[derive(Debug, Default)]
pub struct PortalStats {
    /// Login attempts (requests to log in, before any check).
    pub login_attempts: Counter,
    /// Login attempts answered "wait" by the rate limiter, never checked.
    pub logins_rate_limited: Counter,
    /// Logins and logoffs refused because another site sent them.
    pub cross_site_refused: Counter,
    /// Connections refused: the client held its share, or every slot was
    /// busy with clients holding no more than it.
    pub connections_refused: Counter,
    /// Connections closed to make room for a client holding fewer.
    pub connections_evicted: Counter,
    /// Requests whose body did not arrive in time.
    pub body_timeouts: Counter,
    /// Requests refused for a body larger than the portal reads.
    pub bodies_too_large: Counter,
    /// Login attempts by what they came to, in [`LoginResult::ALL`] order.
    pub login_results: [Counter; LoginResult::ALL.len()],
}

/// What a login attempt came to, as the metrics endpoint counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginResult {
    /// Logged in.
    Success,
    /// The backend refused the credentials (or no RADIUS server answered).
    Reject,
    /// Backed off by the rate limiter, not checked.
    RateLimited,
    /// No live challenge: a stale or foreign page.
    Expired,
    /// A form missing its user name or terms, or a badly encoded password.
    Invalid,
    /// Accepted, but the data plane could not authorize the client.
    Error,
    /// The guest was logged in already.
    Already,
}

impl LoginResult {
    /// Every result, in counter order.
    pub const ALL: [LoginResult; 7] = [
        LoginResult::Success,
        LoginResult::Reject,
        LoginResult::RateLimited,
        LoginResult::Expired,
        LoginResult::Invalid,
        LoginResult::Error,
        LoginResult::Already,
    ];

    /// The result's label value.
    pub fn name(self) -> &'static str {
        match self {
            LoginResult::Success => "success",
            LoginResult::Reject => "reject",
            LoginResult::RateLimited => "rate_limited",
            LoginResult::Expired => "expired",
            LoginResult::Invalid => "invalid",
            LoginResult::Error => "error",
            LoginResult::Already => "already",
        }
    }
}

/// A copy of [`PortalStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PortalCounters {
    /// See [`PortalStats::login_attempts`].
    pub login_attempts: u64,
    /// See [`PortalStats::logins_rate_limited`].
    pub logins_rate_limited: u64,
    /// See [`PortalStats::cross_site_refused`].
    pub cross_site_refused: u64,
    /// See [`PortalStats::connections_refused`].
    pub connections_refused: u64,
    /// See [`PortalStats::connections_evicted`].
    pub connections_evicted: u64,
    /// See [`PortalStats::body_timeouts`].
    pub body_timeouts: u64,
    /// See [`PortalStats::bodies_too_large`].
    pub bodies_too_large: u64,
    /// See [`PortalStats::login_results`].
    #[serde(skip)]
    pub login_results: [u64; LoginResult::ALL.len()],
}

impl PortalStats {
    /// The counters now.
    pub fn snapshot(&self) -> PortalCounters {
        let get = Counter::get;
        PortalCounters {
            login_attempts: get(&self.login_attempts),
            logins_rate_limited: get(&self.logins_rate_limited),
            cross_site_refused: get(&self.cross_site_refused),
            connections_refused: get(&self.connections_refused),
            connections_evicted: get(&self.connections_evicted),
            body_timeouts: get(&self.body_timeouts),
            bodies_too_large: get(&self.bodies_too_large),
            login_results: self.login_results.each_ref().map(get),
        }
    }
}

/// True when a [`Gateway`] error is lassi's own failure (its data plane
/// stopped or did not answer: the shell's errors then say "the data
/// plane …"), not the client's state (already logged in, no lease), which
/// a guest can cause and is logged at info only.
pub fn gateway_failed(e: &str) -> bool {
    e.starts_with("the data plane")
}

/// The data plane as the portal sees it.
pub trait Gateway: Send + Sync {
    /// The client holding `ip`.
    fn client_by_ip(
        &self,
        ip: Ipv4Addr,
    ) -> impl Future<Output = Result<Option<Client>, String>> + Send;
    /// The client using the IPv6 address `ip` (none by default: a
    /// gateway without IPv6).
    fn client_by_ipv6(
        &self,
        _ip: core::net::Ipv6Addr,
    ) -> impl Future<Output = Result<Option<Client>, String>> + Send {
        core::future::ready(Ok(None))
    }
    /// Logs a client in with what its login granted.
    fn authorize(
        &self,
        mac: MacAddr,
        auth: Authorization,
    ) -> impl Future<Output = Result<Client, String>> + Send;
    /// Ends a client's session.
    fn logout(
        &self,
        mac: MacAddr,
        reason: EndReason,
    ) -> impl Future<Output = Result<EndedSession, String>> + Send;
}

/// The portal's settings, from `[portal]` and the LAN (the shell builds
/// them from its config: `portal::server::portal_settings`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// lassi's LAN address (`uamip`).
    pub gateway: Ipv4Addr,
    /// The portal port (`uamport`).
    pub port: u16,
    /// The LAN interface's MAC (`called`).
    pub gateway_mac: MacAddr,
    /// External splash server, if any.
    pub uam_server: Option<String>,
    /// Shared secret, if any.
    pub uam_secret: Option<String>,
    /// Where to go after login without an original URL.
    pub success_url: Option<String>,
    /// `nasid`.
    pub nas_id: String,
    /// RFC 8908 `venue-info-url`.
    pub venue_info_url: Option<String>,
    /// Challenge lifetime, seconds.
    pub challenge_timeout: u32,
    /// Send a strict Content-Security-Policy (the embedded pages need no
    /// scripts or outside resources; off when `pages_dir` may add some).
    pub strict_csp: bool,
}

impl Settings {
    /// The portal at `gateway:port` (LAN MAC `gateway_mac`) on lassi's own
    /// pages: no external UAM server, secret, success or venue-info URL,
    /// `nasid` "lassi", challenges that live 60 s, a strict
    /// Content-Security-Policy.
    pub fn new(gateway: Ipv4Addr, port: u16, gateway_mac: MacAddr) -> Settings {
        Settings {
            gateway,
            port,
            gateway_mac,
            uam_server: None,
            uam_secret: None,
            success_url: None,
            nas_id: "lassi".into(),
            venue_info_url: None,
            challenge_timeout: 60,
            strict_csp: true,
        }
    }

    /// `http://<gateway>:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}:{}", self.gateway, self.port)
    }
}

/// HTTP method, as far as the portal cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// Anything else.
    Other,
}

/// One HTTP request to the portal.
#[derive(Clone, Debug)]
pub struct PortalRequest {
    /// Method.
    pub method: Method,
    /// The Host header.
    pub host: Option<String>,
    /// The request target (path and query, or an absolute URL).
    pub target: String,
    /// An `application/x-www-form-urlencoded` body.
    pub form: Option<String>,
    /// The Accept-Language header.
    pub accept_language: Option<String>,
    /// The Origin header.
    pub origin: Option<String>,
    /// The Referer header.
    pub referer: Option<String>,
    /// The TCP peer: who the guest is.
    pub peer: Ipv4Addr,
    /// 16 fresh random bytes from the shell: the guest's new challenge, if
    /// this request needs one.
    pub random: Challenge,
    /// How far the wall clock is from engine time, ms (the shell's
    /// `io::clock::clock_step_ms`); only dates shown use it.
    pub wall_offset_ms: i64,
}

/// One HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (Content-Type, Location, Cache-Control …).
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![
                ("content-type", content_type.to_string()),
                ("cache-control", "no-store".into()),
                ("x-content-type-options", "nosniff".into()),
                // Same-origin: lassi's own forms then carry an Origin the
                // cross-site check recognises; other sites still learn
                // nothing (no Referer leaves the portal).
                ("referrer-policy", "same-origin".into()),
            ],
            body,
        }
    }

    /// A `302 Found` to `location`.
    pub fn redirect(location: &str) -> Response {
        let mut body = String::from("<!doctype html><title>302</title><a href=\"");
        super::pages::escape_html(location, &mut body);
        body.push_str("\">Continue</a>\n");
        let mut r = Response::new(302, "text/html; charset=utf-8", body.into_bytes());
        r.headers.push(("location", location.to_string()));
        r
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Query and form parameters, first occurrence wins.
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// True if the request tries to log in (rather than show the page).
    fn is_attempt(&self) -> bool {
        ["username", "password", "response", "accept"]
            .iter()
            .any(|k| self.get(k).is_some())
    }

    fn userurl(&self) -> Option<String> {
        self.get("userurl")
            .filter(|u| uam::is_safe_url(u))
            .map(str::to_string)
    }
}

/// What an accepted login grants: limits, Reply-Message, Class, CUI.
type Accepted = (
    crate::session::SessionLimits,
    Option<String>,
    Vec<Vec<u8>>,
    Option<Vec<u8>>,
);

/// Why a login did not succeed, as a string key of the pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Wrong,
    Expired,
    Terms,
    Missing,
    Encoding,
    Unavailable,
    /// Backed off by the rate limiter (the reply says how long).
    Wait,
    /// Sent by another site.
    CrossSite,
}

impl Failure {
    fn key(self) -> &'static str {
        match self {
            Failure::Wrong => "err_wrong",
            Failure::Expired => "err_expired",
            Failure::Terms => "err_terms",
            Failure::Missing => "err_missing",
            Failure::Encoding => "err_encoding",
            Failure::Unavailable => "err_unavailable",
            Failure::Wait => "err_wait",
            Failure::CrossSite => "err_cross_site",
        }
    }
}

/// The portal: pages, challenges and the backend.
pub struct Portal {
    settings: Settings,
    auth: Box<dyn Authenticator>,
    pages: Pages,
    /// Shared with the portals [`Portal::reconfigured`] makes, so a reload
    /// keeps the challenges handed out and the login back-offs.
    challenges: Arc<Mutex<ChallengeStore>>,
    limiter: Arc<Mutex<LoginLimiter>>,
    guard: Guard,
    /// The form-token key, kept for the guard of a reconfigured portal.
    key: [u8; 16],
    stats: Arc<PortalStats>,
}

/// What one request brings besides the client: its parameters, the guest's
/// language, whether it asked for JSON, the time and fresh random bytes.
struct Ctx {
    params: Params,
    lang: String,
    json: bool,
    now: UnixMillis,
    random: Challenge,
    wall_offset_ms: i64,
}

/// What a login attempt came to.
enum Attempt {
    /// The guest was logged in already.
    Already(Client),
    /// Logged in now, with the backend's Reply-Message.
    LoggedIn(Client, Option<String>),
    /// Refused or not checked, with a message for the guest.
    Failed(Client, Failure, Option<String>),
}

impl Attempt {
    fn client(&self) -> &Client {
        match self {
            Attempt::Already(c) | Attempt::LoggedIn(c, _) | Attempt::Failed(c, _, _) => c,
        }
    }

    fn result(&self) -> LoginResult {
        match self {
            Attempt::Already(_) => LoginResult::Already,
            Attempt::LoggedIn(..) => LoginResult::Success,
            Attempt::Failed(_, f, _) => match f {
                Failure::Wrong => LoginResult::Reject,
                Failure::Wait => LoginResult::RateLimited,
                Failure::Expired | Failure::CrossSite => LoginResult::Expired,
                Failure::Terms | Failure::Missing | Failure::Encoding => LoginResult::Invalid,
                Failure::Unavailable => LoginResult::Error,
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// "1 h 02 min", "5 min 07 s", "42 s".
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

/// "512 B", "1.5 kB", "12.3 MB", "2.00 GB" (SI units).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    match u {
        0 => format!("{n} B"),
        _ if v < 10.0 => format!("{v:.2} {}", UNITS[u]),
        _ if v < 100.0 => format!("{v:.1} {}", UNITS[u]),
        _ => format!("{v:.0} {}", UNITS[u]),
    }
}

/// Splits a request target into path and query. An absolute URL
/// (`http://host/path?q`) gives its path.
pub fn split_target(target: &str) -> (&str, &str) {
    let t = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => target,
    };
    let t = t.split('#').next().unwrap_or("");
    match t.split_once('?') {
        Some((p, q)) => (p, q),
        None => (t, ""),
    }
}

/// The URL the guest asked for, rebuilt from an intercepted request.
pub fn original_url(host: Option<&str>, target: &str) -> Option<String> {
    let url = if target.starts_with("http://") || target.starts_with("https://") {
        target.to_string()
    } else {
        let host = host?.trim();
        if host.is_empty()
            || host.len() > 255
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/?#@\\".contains(c))
        {
            return None;
        }
        let path = if target.starts_with('/') { target } else { "/" };
        format!("http://{host}{path}")
    };
    uam::is_safe_url(&url).then_some(url)
}

impl Portal {
    /// A portal with `auth` as its backend and `pages` as its pages; `key`
    /// (16 random bytes from the shell) keys the form tokens for the
    /// portal's life: a restart only costs a guest one reloaded page.
    pub fn new(
        settings: Settings,
        auth: Box<dyn Authenticator>,
        pages: Pages,
        key: [u8; 16],
    ) -> Portal {
        Portal {
            challenges: Arc::new(Mutex::new(ChallengeStore::new(
                settings.challenge_timeout,
                MAX_CHALLENGES,
            ))),
            limiter: Arc::new(Mutex::new(LoginLimiter::new(MAX_LIMITED))),
            guard: Guard::new(key, &settings.base(), settings.uam_server.as_deref()),
            key,
            stats: Arc::default(),
            settings,
            auth,
            pages,
        }
    }

    /// The same portal with new settings, backend and pages (a reload):
    /// the challenges handed out, the login back-offs, the form-token key
    /// and the counters carry over, so no guest in the middle of a login
    /// notices. Both portals may serve at once while older requests finish.
    pub fn reconfigured(
        &self,
        settings: Settings,
        auth: Box<dyn Authenticator>,
        pages: Pages,
    ) -> Portal {
        lock(&self.challenges).set_lifetime(settings.challenge_timeout);
        Portal {
            challenges: self.challenges.clone(),
            limiter: self.limiter.clone(),
            guard: Guard::new(self.key, &settings.base(), settings.uam_server.as_deref()),
            key: self.key,
            stats: self.stats.clone(),
            settings,
            auth,
            pages,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The same portal counting into `stats` (shared with `lassi status`).
    pub fn with_stats(mut self, stats: Arc<PortalStats>) -> Portal {
        self.stats = stats;
        self
    }

    /// The portal's counters.
    pub fn stats(&self) -> &Arc<PortalStats> {
        &self.stats
    }

    /// True if a request with this Host header is addressed to the portal
    /// itself (the gateway address, with or without a port; or no Host).
    pub fn is_own_host(&self, host: Option<&str>) -> bool {
        let Some(h) = host.map(str::trim) else {
            return true;
        };
        let name = match h.rsplit_once(':') {
            Some((n, p)) if p.chars().all(|c| c.is_ascii_digit()) => n,
            _ => h,
        };
        name.parse::<Ipv4Addr>().ok() == Some(self.settings.gateway)
    }

    fn challenge_for(&self, mac: MacAddr, ctx: &Ctx) -> Challenge {
        lock(&self.challenges).current(mac, ctx.now, ctx.random)
    }

    fn redirect_to_splash(
        &self,
        base: &str,
        res: Res,
        client: &Client,
        challenge: Option<Challenge>,
        userurl: Option<String>,
        reply: Option<String>,
    ) -> Response {
        let r = Redirect {
            res,
            uamip: self.settings.gateway,
            uamport: self.settings.port,
            challenge,
            uid: client
                .user
                .clone()
                .filter(|_| res == Res::Success || res == Res::Already),
            reply,
            called: self.settings.gateway_mac,
            mac: client.mac,
            ip: client.ip,
            nasid: self.settings.nas_id.clone(),
            sessionid: client.session_id.clone(),
            userurl,
        };
        Response::redirect(&uam::redirect_url(
            base,
            &r,
            self.settings.uam_secret.as_deref(),
        ))
    }

    fn html(
        &self,
        status: u16,
        page: &str,
        lang: &str,
        mut vars: HashMap<&str, String>,
    ) -> Response {
        vars.insert("nasid", self.settings.nas_id.clone());
        let body = self.pages.render(page, lang, &mut vars);
        let mut r = Response::new(status, "text/html; charset=utf-8", body.into_bytes());
        if self.settings.strict_csp {
            r.headers.push((
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
                    .into(),
            ));
        }
        r
    }

    fn error_page(&self, status: u16, key: &str, lang: &str, retry: bool) -> Response {
        let mut vars = HashMap::new();
        vars.insert("message", self.pages.string(lang, key));
        if retry {
            vars.insert("retry_url", format!("{}/", self.settings.base()));
        }
        self.html(status, "error", lang, vars)
    }

    fn json(&self, mut doc: Value, params: &Params) -> Response {
        let callback = params.get("callback").filter(|c| api::valid_callback(c));
        if callback.is_some() && !self.jsonp_may_carry_challenge() {
            if let Some(m) = doc.as_object_mut() {
                m.remove("challenge");
            }
        }
        let text = doc.to_string();
        match callback {
            Some(cb) => Response::new(
                200,
                "text/javascript; charset=utf-8",
                format!("{cb}({text})").into_bytes(),
            ),
            None => Response::new(200, "application/json", text.into_bytes()),
        }
    }

    /// CoovaChilli's status document for `client`, with `message`.
    fn json_status(&self, client: &Client, ctx: &Ctx, message: Option<String>) -> Response {
        let mut doc = self.json_context(client, ctx);
        doc.message = message;
        self.json(api::chilli_status(client, &doc, ctx.now), &ctx.params)
    }

    /// JSONP hands the document to any page that asks. The challenge may
    /// go with it only when the challenge alone cannot log anyone in: with
    /// an external portal and a `uam_secret` every login is CHAP or an
    /// encoded password over MD5(challenge ‖ secret). Otherwise a page on
    /// the internet could use it to log the guest in as its own account.
    fn jsonp_may_carry_challenge(&self) -> bool {
        self.settings.uam_secret.is_some()
            && self.settings.uam_server.is_some()
            && !self.auth.is_click_through()
    }

    /// True unless the request changes the guest's state for another site
    /// (see [`super::csrf`]).
    fn same_site(&self, req: &PortalRequest, client: &Client, ctx: &Ctx) -> bool {
        if ctx
            .params
            .get("token")
            .is_some_and(|t| self.guard.token_ok(client.mac, t))
        {
            return true;
        }
        match self
            .guard
            .source(req.origin.as_deref(), req.referer.as_deref())
        {
            Source::Own => true,
            Source::Foreign => false,
            // No header: not a browser acting for another site, except a
            // top-level GET from a page that hides its Referer. Coova's
            // external portals and JSON clients know no token: for them
            // `uam_secret` protects the login (README).
            Source::Unknown => {
                req.method == Method::Post || ctx.json || self.settings.uam_server.is_some()
            }
        }
    }

    fn cross_site(&self, req: &PortalRequest, client: &Client, ctx: &Ctx) -> Response {
        self.stats.cross_site_refused.bump();
        tracing::info!(mac = %client.mac, ip = %client.ip, origin = req.origin.as_deref().unwrap_or("-"), referer = req.referer.as_deref().unwrap_or("-"), "portal: cross-site request refused");
        let key = Failure::CrossSite.key();
        if ctx.json {
            let mut r = self.json_status(client, ctx, Some(self.pages.string(&ctx.lang, key)));
            r.status = 403;
            return r;
        }
        self.error_page(403, key, &ctx.lang, true)
    }

    fn json_context(&self, client: &Client, ctx: &Ctx) -> JsonContext {
        JsonContext {
            nas_id: self.settings.nas_id.clone(),
            challenge: (client.state != SessionState::Authorized)
                .then(|| self.challenge_for(client.mac, ctx)),
            original_url: ctx.params.userurl(),
            redirection_url: self.settings.success_url.clone(),
            logout_url: format!("{}/logoff", self.settings.base()),
            message: None,
            wall_offset_ms: ctx.wall_offset_ms,
        }
    }

    /// The parameters (query, then form), language and kind of a request.
    fn context(&self, req: &PortalRequest, path: &str, query: &str, now: UnixMillis) -> Ctx {
        let mut params = Params(uam::parse_query(query, MAX_PARAMS));
        if req.method == Method::Post {
            if let Some(body) = &req.form {
                params.0.extend(uam::parse_query(body, MAX_PARAMS));
            }
        }
        let langs = self.pages.languages();
        let lang = choose_lang(&langs, params.get("lang"), req.accept_language.as_deref());
        Ctx {
            lang: lang.to_string(),
            json: self.is_own_host(req.host.as_deref()) && path.starts_with("/json/"),
            params,
            now,
            random: req.random,
            wall_offset_ms: req.wall_offset_ms,
        }
    }

    /// Answers one request at engine time `now`.
    pub async fn handle<G: Gateway>(
        &self,
        gw: &G,
        req: &PortalRequest,
        now: UnixMillis,
    ) -> Response {
        let own = self.is_own_host(req.host.as_deref());
        let (path, query) = split_target(&req.target);
        let ctx = self.context(req, path, query, now);
        if own && path == "/favicon.ico" {
            return Response::new(404, "text/plain", Vec::new());
        }
        let client = match gw.client_by_ip(req.peer).await {
            Ok(Some(c)) => c,
            Ok(None) => return self.no_lease(&ctx),
            Err(e) => {
                tracing::warn!("portal: asking the data plane about {}: {e}", req.peer);
                return self.error_page(503, "err_unavailable", &ctx.lang, true);
            }
        };
        if !own {
            return self.intercepted(req, &client, &ctx);
        }
        let route = if ctx.json { &path[5..] } else { path };
        let attempt = ctx.json || req.method == Method::Post || ctx.params.is_attempt();
        let changes_state = match route {
            "/login" | "/logon" => attempt,
            "/logoff" | "/logout" => true,
            _ => false,
        };
        if changes_state && !self.same_site(req, &client, &ctx) {
            return self.cross_site(req, &client, &ctx);
        }
        match route {
            "/api" | "/api/" if !ctx.json => self.captive_api(&client, &ctx),
            "/" | "/prelogin" | "/index.html" if !ctx.json => self.splash(&client, &ctx),
            "/login" | "/logon" if attempt => self.logon(gw, client, &ctx).await,
            "/login" | "/logon" => self.splash(&client, &ctx),
            "/logoff" | "/logout" => self.logoff(gw, client, &ctx).await,
            "/status" if ctx.json => self.json_status(&client, &ctx, None),
            "/status" if client.state == SessionState::Authorized => {
                self.success_page(&client, &ctx)
            }
            "/status" => self.splash(&client, &ctx),
            _ => self.error_page(404, "err_notfound", &ctx.lang, true),
        }
    }

    /// The answer to a guest that holds no address from this network.
    fn no_lease(&self, ctx: &Ctx) -> Response {
        if !ctx.json {
            return self.error_page(403, "err_nolease", &ctx.lang, false);
        }
        let doc = serde_json::json!({
            "version": "1.0", "clientState": 0,
            "message": self.pages.string(&ctx.lang, "err_nolease"),
        });
        let mut r = self.json(doc, &ctx.params);
        r.status = 403;
        r
    }

    /// An intercepted request (Host is not the portal): 302 to the splash
    /// page with CoovaChilli's parameters.
    fn intercepted(&self, req: &PortalRequest, client: &Client, ctx: &Ctx) -> Response {
        let userurl = original_url(req.host.as_deref(), &req.target);
        let mut r = if client.state == SessionState::Authorized {
            // A connection intercepted before the login: the guest may go
            // where it wanted, on a new connection (which is not steered).
            Response::redirect(
                &userurl.unwrap_or_else(|| format!("{}/status", self.settings.base())),
            )
        } else {
            let challenge = self.challenge_for(client.mac, ctx);
            let base = self.splash_base();
            self.redirect_to_splash(&base, Res::NotYet, client, Some(challenge), userurl, None)
        };
        // The browser thinks it talked to the web site: it must not reuse
        // this connection for that site once the guest is logged in.
        r.headers.push(("connection", "close".into()));
        r
    }

    fn splash_base(&self) -> String {
        self.settings
            .uam_server
            .clone()
            .unwrap_or_else(|| format!("{}/", self.settings.base()))
    }

    /// The splash page: the login (or terms) page, or a redirect to the
    /// external portal; the success page (or `res=already`) when logged in.
    fn splash(&self, client: &Client, ctx: &Ctx) -> Response {
        let authorized = client.state == SessionState::Authorized;
        if let Some(server) = &self.settings.uam_server {
            let (res, challenge) = if authorized {
                (Res::Already, None)
            } else {
                (Res::NotYet, Some(self.challenge_for(client.mac, ctx)))
            };
            let userurl = ctx.params.userurl();
            return self.redirect_to_splash(server, res, client, challenge, userurl, None);
        }
        if authorized {
            return self.success_page(client, ctx);
        }
        self.login_page(client, ctx, None, None)
    }

    fn login_page(
        &self,
        client: &Client,
        ctx: &Ctx,
        failure: Option<Failure>,
        reply: Option<String>,
    ) -> Response {
        let challenge = self.challenge_for(client.mac, ctx);
        let mut vars = HashMap::new();
        vars.insert("challenge", uam::hex(&challenge));
        vars.insert("token", self.guard.token(client.mac));
        vars.insert("userurl", ctx.params.userurl().unwrap_or_default());
        if let Some(u) = ctx.params.get("username") {
            vars.insert("username", u.chars().take(MAX_USERNAME).collect());
        }
        match failure {
            // The wait message is the error itself (it names the seconds).
            Some(Failure::Wait) => {
                vars.insert("error", reply.unwrap_or_default());
            }
            Some(f) => {
                vars.insert("error", self.pages.string(&ctx.lang, f.key()));
                if let Some(r) = reply.filter(|r| r != "wrong user name or password") {
                    vars.insert("reply", r);
                }
            }
            None => {}
        }
        let page = if self.auth.is_click_through() {
            "terms"
        } else {
            "login"
        };
        self.html(200, page, &ctx.lang, vars)
    }

    /// The status page of a logged-in guest. Time online and time left
    /// count in engine time: the session's start (from the data plane) and
    /// `now` (from the shell) come from the same clock, so a step of the
    /// system clock moves neither.
    fn success_page(&self, client: &Client, ctx: &Ctx) -> Response {
        let (c, now) = (&client.counters, ctx.now);
        let mut vars = HashMap::new();
        vars.insert("token", self.guard.token(client.mac));
        vars.insert("user", client.user.clone().unwrap_or_default());
        vars.insert(
            "session_time",
            format_duration(now.saturating_sub(client.authorized_at.unwrap_or(now)) / 1000),
        );
        vars.insert("data_used", format_bytes(c.octets_in + c.octets_out));
        if let Some(s) = api::seconds_remaining(client, now) {
            vars.insert("time_left", format_duration(s));
        }
        if let Some(b) = api::bytes_remaining(client) {
            vars.insert("data_left", format_bytes(b));
        }
        if let Some(u) = ctx
            .params
            .userurl()
            .or_else(|| self.settings.success_url.clone())
        {
            vars.insert("continue_url", u);
        }
        self.html(200, "success", &ctx.lang, vars)
    }

    fn captive_api(&self, client: &Client, ctx: &Ctx) -> Response {
        let portal_url = match &self.settings.uam_server {
            Some(server) if client.state != SessionState::Authorized => {
                let challenge = Some(self.challenge_for(client.mac, ctx));
                let r = self.redirect_to_splash(server, Res::NotYet, client, challenge, None, None);
                r.header("location").unwrap_or(server).to_string()
            }
            Some(server) => server.clone(),
            None => format!("{}/", self.settings.base()),
        };
        let doc = api::captive_api(
            client,
            &portal_url,
            self.settings.venue_info_url.as_deref(),
            ctx.now,
        );
        Response::new(
            200,
            "application/captive+json",
            doc.to_string().into_bytes(),
        )
    }

    /// Works out the credentials of a login attempt.
    fn credentials(
        &self,
        params: &Params,
        challenge: &Challenge,
        own_form: bool,
    ) -> Result<Credentials, Failure> {
        if self.auth.is_click_through() {
            if own_form && params.nonempty("accept").is_none() {
                return Err(Failure::Terms);
            }
            return Ok(Credentials::None);
        }
        let key = uam::derived_challenge(challenge, self.settings.uam_secret.as_deref());
        if let Some(r) = params.nonempty("response") {
            let response: [u8; 16] = uam::unhex(r)
                .and_then(|v| v.try_into().ok())
                .ok_or(Failure::Encoding)?;
            return Ok(Credentials::Chap {
                ident: 0,
                challenge: key,
                response,
            });
        }
        let pw = params.nonempty("password").ok_or(Failure::Missing)?;
        if self.settings.uam_server.is_some() {
            // CoovaChilli's rule for portals: hex(password XOR key).
            uam::decode_password(pw, &key)
                .map(Credentials::Pap)
                .ok_or(Failure::Encoding)
        } else {
            Ok(Credentials::Pap(pw.chars().take(128).collect()))
        }
    }

    /// A login: the attempt decides, the answer renders what it came to.
    async fn logon<G: Gateway>(&self, gw: &G, client: Client, ctx: &Ctx) -> Response {
        let attempt = self.attempt(gw, client, ctx).await;
        self.stats.login_results[attempt.result() as usize].bump();
        self.render_logon(&attempt, ctx)
    }

    /// Decides a login attempt: already logged in, backed off, the checks
    /// and the backend, then the data plane's authorization.
    async fn attempt<G: Gateway>(&self, gw: &G, client: Client, ctx: &Ctx) -> Attempt {
        if client.state == SessionState::Authorized {
            return Attempt::Already(client);
        }
        self.stats.login_attempts.bump();
        if let Err(wait_ms) = lock(&self.limiter).check(client.mac, ctx.now) {
            // Not checked at all: the backend never sees a backed-off guest.
            // The challenge is left alone, so the page still works after
            // the wait.
            self.stats.logins_rate_limited.bump();
            tracing::debug!(mac = %client.mac, wait_ms, "portal: login attempt while backed off");
            let secs = wait_ms.div_ceil(1000).to_string();
            let msg = self
                .pages
                .string(&ctx.lang, Failure::Wait.key())
                .replace("{secs}", &secs);
            return Attempt::Failed(client, Failure::Wait, Some(msg));
        }
        let username: String = ctx
            .params
            .get("username")
            .unwrap_or("")
            .trim()
            .chars()
            .take(MAX_USERNAME)
            .collect();
        match self.check_login(&client, &username, ctx).await {
            Ok((limits, reply, class, cui)) => {
                lock(&self.limiter).succeeded(client.mac);
                let user = if username.is_empty() {
                    "guest".to_string()
                } else {
                    username
                };
                let grant = Authorization {
                    user: Some(user),
                    limits,
                    class,
                    cui,
                };
                self.grant(gw, client, grant, reply).await
            }
            Err((failure, reply)) => {
                if failure == Failure::Wrong {
                    // Only what the backend checked counts: a stale page
                    // or a typo in the form costs RADIUS nothing.
                    lock(&self.limiter).failed(client.mac, ctx.now);
                }
                tracing::info!(mac = %client.mac, ip = %client.ip, user = username, reason = failure.key(), "portal: login refused");
                Attempt::Failed(client, failure, reply)
            }
        }
    }

    /// True if the login's credentials prove the guest knew its challenge
    /// (CHAP, or CoovaChilli's encoded password): it then need not name it.
    fn bound_to_challenge(&self, params: &Params) -> bool {
        !self.auth.is_click_through()
            && (params.nonempty("response").is_some()
                || (self.settings.uam_server.is_some() && params.nonempty("password").is_some()))
    }

    /// Checks a login: the challenge, the credentials, the backend.
    async fn check_login(
        &self,
        client: &Client,
        username: &str,
        ctx: &Ctx,
    ) -> Result<Accepted, (Failure, Option<String>)> {
        let params = &ctx.params;
        let claimed: Option<Challenge> = match params.nonempty("challenge") {
            Some(h) => match uam::unhex(h).and_then(|v| v.try_into().ok()) {
                Some(c) => Some(c),
                None => Some([0; 16]), // never matches a random challenge
            },
            None => None,
        };
        if claimed.is_none() && !self.bound_to_challenge(params) {
            // A plain password or the terms with no challenge: nothing shows
            // the guest saw lassi's page (a cross-site form could send it).
            return Err((Failure::Expired, None));
        }
        let challenge = lock(&self.challenges)
            .consume(client.mac, claimed.as_ref(), ctx.now)
            .map_err(|_: ChallengeError| (Failure::Expired, None))?;
        let external = self.settings.uam_server.is_some();
        let credentials = self
            .credentials(params, &challenge, !ctx.json && !external)
            .map_err(|f| (f, None))?;
        if username.is_empty() && !self.auth.is_click_through() {
            return Err((Failure::Missing, None));
        }
        let req = AuthRequest {
            username: username.to_string(),
            credentials,
            mac: client.mac,
            ip: client.ip,
        };
        match self.auth.authenticate(&req).await {
            AuthOutcome::Accept {
                limits,
                reply,
                class,
                cui,
            } => Ok((limits, reply, class, cui)),
            AuthOutcome::Reject { reply } => Err((Failure::Wrong, reply)),
        }
    }

    /// Hands an accepted login to the data plane.
    async fn grant<G: Gateway>(
        &self,
        gw: &G,
        client: Client,
        grant: Authorization,
        reply: Option<String>,
    ) -> Attempt {
        let user = grant.user.clone().unwrap_or_default();
        match gw.authorize(client.mac, grant).await {
            Ok(authorized) => {
                tracing::info!(mac = %client.mac, ip = %client.ip, user, "portal: login accepted");
                lock(&self.challenges).forget(client.mac);
                Attempt::LoggedIn(authorized, reply)
            }
            Err(e) => {
                if gateway_failed(&e) {
                    tracing::warn!(mac = %client.mac, "portal: authorizing: {e}");
                } else {
                    // The client's state changed under the request (a
                    // second login racing the first, the lease gone).
                    tracing::info!(mac = %client.mac, "portal: authorizing: {e}");
                }
                Attempt::Failed(client, Failure::Unavailable, None)
            }
        }
    }

    /// Renders what a login attempt came to, for a JSON client, an external
    /// portal (a redirect with `res=`) or lassi's own pages.
    fn render_logon(&self, attempt: &Attempt, ctx: &Ctx) -> Response {
        let client = attempt.client();
        if ctx.json {
            let message = match attempt {
                Attempt::Already(_) => Some("Already logged in".into()),
                Attempt::LoggedIn(_, reply) => reply.clone(),
                Attempt::Failed(_, f, reply) => reply
                    .clone()
                    .or_else(|| Some(self.pages.string(&ctx.lang, f.key()))),
            };
            return self.json_status(client, ctx, message);
        }
        if let Some(server) = &self.settings.uam_server {
            let (res, challenge, reply) = match attempt {
                Attempt::Already(_) => (Res::Already, None, None),
                Attempt::LoggedIn(_, reply) => (Res::Success, None, reply.clone()),
                Attempt::Failed(_, f, reply) => (
                    Res::Failed,
                    Some(self.challenge_for(client.mac, ctx)),
                    reply
                        .clone()
                        .or_else(|| Some(self.pages.string("en", f.key()))),
                ),
            };
            let userurl = ctx.params.userurl();
            return self.redirect_to_splash(server, res, client, challenge, userurl, reply);
        }
        match attempt {
            Attempt::Failed(_, f, reply) => self.login_page(client, ctx, Some(*f), reply.clone()),
            _ => self.after_login(ctx),
        }
    }

    /// Own pages, after a login: the original URL, else the success URL,
    /// else the status page.
    fn after_login(&self, ctx: &Ctx) -> Response {
        let target = ctx
            .params
            .userurl()
            .or_else(|| self.settings.success_url.clone())
            .unwrap_or_else(|| format!("{}/status", self.settings.base()));
        Response::redirect(&target)
    }

    async fn logoff<G: Gateway>(&self, gw: &G, mut client: Client, ctx: &Ctx) -> Response {
        if client.state == SessionState::Authorized {
            match gw.logout(client.mac, EndReason::UserRequest).await {
                Ok(_) => {
                    tracing::info!(mac = %client.mac, ip = %client.ip, "portal: logged out");
                    client.state = SessionState::Unauthorized;
                    client.user = None;
                    client.authorized_at = None;
                }
                Err(e) if gateway_failed(&e) => {
                    tracing::warn!(mac = %client.mac, "portal: logout: {e}");
                    return self.error_page(503, "err_unavailable", &ctx.lang, true);
                }
                Err(e) => {
                    tracing::info!(mac = %client.mac, "portal: logout: {e}");
                    return self.error_page(503, "err_unavailable", &ctx.lang, true);
                }
            }
        }
        if ctx.json {
            return self.json_status(&client, ctx, None);
        }
        if let Some(server) = &self.settings.uam_server {
            return self.redirect_to_splash(server, Res::Logoff, &client, None, None, None);
        }
        let mut vars = HashMap::new();
        vars.insert("login_url", format!("{}/", self.settings.base()));
        self.html(200, "logout", &ctx.lang, vars)
    }
}
