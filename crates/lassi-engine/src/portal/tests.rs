//! The portal's routing against the real data-plane engine: the test
//! [`Gateway`] drives a [`crate::dataplane::Engine`] synchronously, so what
//! these tests assert is what the engine does.

use core::net::Ipv4Addr;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::auth::{self, AuthFuture, AuthRequest, Authenticator, LocalUsers};
use super::handler::{Gateway, LoginResult, Method, Portal, PortalRequest, Response, Settings};
use super::pages::Pages;
use super::uam;
use crate::dataplane::Engine;
use crate::dhcp::{DhcpServer, LeaseRecord};
use crate::session::{Authorization, Client, EndReason, EndedSession, SessionState};
use crate::testkit::{self, GW};
use crate::wire::MacAddr;
use crate::UnixMillis;

const IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 23);
const SECRET: &str = "testing123";
/// Engine time when the data plane starts: session ids begin with it in
/// hex (`66500000…`).
const T0: UnixMillis = 0x6650_0000 * 1000;
/// Engine time of most requests.
const NOW: UnixMillis = T0 + 1_000_000;

/// The real data-plane engine as the portal's [`Gateway`]: authorize,
/// logout and lookups are the engine's own, called at the engine time the
/// test last gave the portal.
#[derive(Clone)]
struct EngineGateway {
    engine: Arc<Mutex<Engine>>,
    // A mutex, not an AtomicU64: 32-bit MIPS has no 64-bit atomics.
    now: Arc<std::sync::Mutex<UnixMillis>>,
}

impl EngineGateway {
    /// An engine where no client holds a lease.
    fn empty() -> EngineGateway {
        EngineGateway::with_leases(vec![])
    }

    /// An engine where the guest holds `IP` (a restored lease).
    fn with_client() -> EngineGateway {
        EngineGateway::with_leases(vec![LeaseRecord {
            mac: mac(),
            ip: IP,
            expires: T0 + 86_400_000,
            hostname: None,
        }])
    }

    fn with_leases(leases: Vec<LeaseRecord>) -> EngineGateway {
        let dhcp = testkit::dhcp_settings(GW);
        let mut settings = testkit::engine_settings(GW);
        // The first session id is then 66500000000000aa.
        settings.session_id_seed = 0xa9;
        let engine = Engine::new(settings, DhcpServer::new(dhcp, leases, T0), T0);
        EngineGateway {
            engine: Arc::new(Mutex::new(engine)),
            now: Arc::new(std::sync::Mutex::new(T0)),
        }
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap()
    }

    fn set_now(&self, now: UnixMillis) {
        *self.now.lock().unwrap() = now;
    }

    fn now(&self) -> UnixMillis {
        *self.now.lock().unwrap()
    }

    fn client(&self) -> Client {
        self.engine().sessions().by_ip(IP).cloned().unwrap()
    }

    fn authorized(&self) -> bool {
        self.client().state == SessionState::Authorized
    }
}

fn mac() -> MacAddr {
    "02:00:00:00:00:17".parse().unwrap()
}

impl Gateway for EngineGateway {
    fn client_by_ip(
        &self,
        ip: Ipv4Addr,
    ) -> impl Future<Output = Result<Option<Client>, String>> + Send {
        let c = self.engine().sessions().by_ip(ip).cloned();
        async move { Ok(c) }
    }

    fn authorize(
        &self,
        mac: MacAddr,
        auth: Authorization,
    ) -> impl Future<Output = Result<Client, String>> + Send {
        let now = self.now();
        let r = self.engine().authorize(mac, auth, now);
        async move { r.map_err(|e| e.to_string()) }
    }

    fn logout(
        &self,
        mac: MacAddr,
        reason: EndReason,
    ) -> impl Future<Output = Result<EndedSession, String>> + Send {
        let now = self.now();
        let r = self.engine().logout(mac, reason, now);
        async move { r.map_err(|e| e.to_string()) }
    }
}

/// Fresh challenge bytes for each request (the shell draws them from
/// `random_bytes`).
fn counter_random() -> uam::Challenge {
    use std::sync::atomic::AtomicU8;
    static N: AtomicU8 = AtomicU8::new(1);
    [N.fetch_add(1, Ordering::Relaxed); 16]
}

/// The local users check, inline (the daemon runs it off its event loop:
/// `lassi::portal::files::OffLoopUsers`).
struct Inline(LocalUsers);

impl Authenticator for Inline {
    fn authenticate<'a>(&'a self, req: &'a AuthRequest) -> AuthFuture<'a> {
        let outcome = self.0.check(&req.username, &req.credentials);
        Box::pin(async move { outcome })
    }
}

fn settings() -> Settings {
    Settings::new(GW, 3990, "02:00:00:00:00:01".parse().unwrap())
}

fn users() -> Box<dyn Authenticator> {
    let u = LocalUsers::parse("alice plain:wonderland session_timeout=60 max_total_octets=5000\n")
        .unwrap();
    Box::new(Inline(u))
}

fn portal(settings: Settings, auth: Box<dyn Authenticator>) -> Portal {
    Portal::new(settings, auth, Pages::embedded(), counter_random())
}

fn req(method: Method, host: &str, target: &str, form: Option<&str>) -> PortalRequest {
    PortalRequest {
        method,
        host: (!host.is_empty()).then(|| host.to_string()),
        target: target.into(),
        form: form.map(str::to_string),
        accept_language: None,
        origin: None,
        referer: None,
        peer: IP,
        random: counter_random(),
        wall_offset_ms: 0,
    }
}

/// Runs a portal future to completion. The engine gateway answers at once
/// and the local users check is inline, so nothing ever waits on I/O: a
/// loop polling with a no-op waker is the whole executor (and the engine's
/// tests need no async runtime).
fn run<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The portal's answer to `r` at engine time `now` (the data plane's time
/// too).
fn handle(p: &Portal, g: &EngineGateway, r: &PortalRequest, now: UnixMillis) -> Response {
    g.set_now(now);
    run(p.handle(g, r, now))
}

fn get_at(p: &Portal, g: &EngineGateway, host: &str, target: &str, now: UnixMillis) -> Response {
    handle(p, g, &req(Method::Get, host, target, None), now)
}

fn get(p: &Portal, g: &EngineGateway, host: &str, target: &str) -> Response {
    get_at(p, g, host, target, NOW)
}

fn post(p: &Portal, g: &EngineGateway, target: &str, form: &str) -> Response {
    let r = req(Method::Post, "10.1.0.1:3990", target, Some(form));
    handle(p, g, &r, NOW)
}

/// GET `/logon?{query}` at the gateway; the Location of the answer.
fn logon(p: &Portal, g: &EngineGateway, query: &str) -> String {
    let r = get(p, g, "10.1.0.1", &format!("/logon?{query}"));
    r.header("location").unwrap().to_string()
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn query_of(location: &str) -> Vec<(String, String)> {
    uam::parse_query(location.split_once('?').unwrap().1, 64)
}

fn param(q: &[(String, String)], k: &str) -> String {
    q.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The key a UAM page derives from hex challenge `hex` and [`SECRET`].
fn secret_key(hex: &str) -> [u8; 16] {
    let chal: uam::Challenge = uam::unhex(hex).unwrap().try_into().unwrap();
    uam::derived_challenge(&chal, Some(SECRET))
}

/// The hidden challenge of a rendered login page.
fn page_challenge(html: &str) -> String {
    let i = html.find("name=\"challenge\" value=\"").unwrap() + 24;
    html[i..i + 32].to_string()
}

#[test]
fn intercepted_requests_redirect_to_the_splash_page() {
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    for (host, target) in [
        ("example.test", "/some/page?q=1"),
        ("captive.apple.com", "/hotspot-detect.html"),
        ("connectivitycheck.gstatic.com", "/generate_204"),
        ("10.1.0.1.example", "/"),
        ("198.51.100.10:8080", "/x"),
    ] {
        let r = get(&p, &g, host, target);
        assert_eq!(r.status, 302, "{host}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("connection"), Some("close"));
        let loc = r.header("location").unwrap();
        assert!(
            loc.starts_with(
                "http://10.1.0.1:3990/?res=notyet&uamip=10.1.0.1&uamport=3990&challenge="
            ),
            "{loc}"
        );
        let q = query_of(loc);
        assert_eq!(param(&q, "userurl"), format!("http://{host}{target}"));
        assert_eq!(param(&q, "mac"), "02-00-00-00-00-17");
        assert_eq!(param(&q, "called"), "02-00-00-00-00-01");
        assert_eq!(param(&q, "ip"), "10.1.0.23");
        assert_eq!(param(&q, "sessionid"), "66500000000000aa");
        assert!(!loc.contains("md="), "no secret, no md");
    }
    // Every redirect carries the same live challenge (no CoovaChilli race).
    let a = query_of(get(&p, &g, "a.test", "/").header("location").unwrap());
    let b = query_of(get(&p, &g, "b.test", "/").header("location").unwrap());
    assert_eq!(param(&a, "challenge"), param(&b, "challenge"));
    // The portal's own host is not intercepted.
    for host in ["10.1.0.1", "10.1.0.1:3990", ""] {
        let r = get(&p, &g, host, "/");
        assert_eq!(r.status, 200, "{host:?}");
        assert!(body(&r).contains("name=\"password\""));
    }
}

#[test]
fn unknown_clients_get_a_clear_error() {
    let g = EngineGateway::empty();
    let p = portal(settings(), users());
    let r = get(&p, &g, "example.test", "/");
    assert_eq!(r.status, 403);
    assert!(
        body(&r).contains("no address from this network"),
        "{}",
        body(&r)
    );
    let r = get(&p, &g, "10.1.0.1", "/json/status?callback=cb");
    assert_eq!(r.status, 403);
    assert!(body(&r).starts_with("cb({"));
}

#[test]
fn local_login_own_pages() {
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    let page = body(&get(
        &p,
        &g,
        "10.1.0.1:3990",
        "/?res=notyet&userurl=http%3a%2f%2fexample.test%2fwelcome",
    ));
    assert!(page.contains("value=\"http://example.test/welcome\""));
    let chal = page_challenge(&page);

    // Wrong password: the login page again, with an error and a new challenge.
    let r = post(&p, &g, "/logon", &format!("challenge={chal}&userurl=http%3A%2F%2Fexample.test%2Fwelcome&username=alice&password=nope"));
    assert_eq!(r.status, 200);
    let html = body(&r);
    assert!(html.contains("Wrong user name or password."), "{html}");
    assert!(!g.authorized());
    let chal2 = page_challenge(&html);
    assert_ne!(chal, chal2);

    // The used challenge cannot be replayed.
    let r = post(
        &p,
        &g,
        "/logon",
        &format!("challenge={chal}&username=alice&password=wonderland"),
    );
    assert!(body(&r).contains("This sign-in page has expired."));
    assert!(!g.authorized());

    // A fresh page and the right password: off to the original URL.
    let chal3 = page_challenge(&body(&get(&p, &g, "10.1.0.1", "/")));
    let r = post(&p, &g, "/logon", &format!("challenge={chal3}&userurl=http%3A%2F%2Fexample.test%2Fwelcome&username=alice&password=wonderland"));
    assert_eq!(r.status, 302, "{}", body(&r));
    assert_eq!(r.header("location"), Some("http://example.test/welcome"));
    assert!(g.authorized());
    assert_eq!(g.client().user.as_deref(), Some("alice"));
    let results = p.stats().snapshot().login_results;
    let count = |r: LoginResult| results[r as usize];
    assert_eq!(count(LoginResult::Reject), 1);
    assert_eq!(count(LoginResult::Expired), 1);
    assert_eq!(count(LoginResult::Success), 1);
    assert_eq!(results.iter().sum::<u64>(), 3);

    // The status page shows the limits.
    let html = body(&get(&p, &g, "10.1.0.1", "/status"));
    assert!(html.contains("id=\"time-left\">1 min 00 s<"), "{html}");
    assert!(html.contains("id=\"data-left\">5.00 kB<"), "{html}");
    assert!(html.contains("id=\"logout\""));

    // Logout from the success page.
    let r = post(&p, &g, "/logoff", "");
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("You are logged out"));
    assert!(!g.authorized());
}

#[test]
fn german_pages_by_accept_language() {
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    let mut r = req(Method::Get, "10.1.0.1", "/", None);
    r.accept_language = Some("de-DE,de;q=0.9,en;q=0.5".into());
    let html = body(&handle(&p, &g, &r, NOW));
    assert!(html.contains("<html lang=\"de\""));
    assert!(html.contains("Im Internet anmelden"));
    let html = body(&get(&p, &g, "10.1.0.1", "/?lang=de"));
    assert!(html.contains("Passwort"));
}

#[test]
fn click_through_needs_the_terms() {
    let g = EngineGateway::with_client();
    let p = portal(settings(), Box::new(auth::ClickThrough));
    let page = body(&get(&p, &g, "10.1.0.1", "/"));
    assert!(page.contains("name=\"accept\""));
    let chal = page_challenge(&page);
    let r = post(&p, &g, "/logon", &format!("challenge={chal}"));
    assert!(body(&r).contains("Please accept the terms"));
    assert!(!g.authorized());
    let chal = page_challenge(&body(&r));
    let r = post(&p, &g, "/logon", &format!("challenge={chal}&accept=1"));
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://10.1.0.1:3990/status"));
    assert_eq!(g.client().user.as_deref(), Some("guest"));
}

fn external() -> Settings {
    Settings {
        uam_server: Some("https://portal.example/hotspotlogin.cgi".into()),
        uam_secret: Some(SECRET.into()),
        success_url: Some("https://portal.example/welcome".into()),
        ..settings()
    }
}

#[test]
fn external_portal_with_secret() {
    let g = EngineGateway::with_client();
    let p = portal(external(), users());
    let r = get(&p, &g, "example.test", "/page");
    let loc = r.header("location").unwrap().to_string();
    assert!(loc.starts_with(
        "https://portal.example/hotspotlogin.cgi?res=notyet&uamip=10.1.0.1&uamport=3990&challenge="
    ));
    // md = MD5(URL before "&md=" ‖ secret), uppercase.
    let (signed, md) = loc.rsplit_once("&md=").unwrap();
    assert_eq!(
        md,
        uam::hex(&uam::md5(&[signed.as_bytes(), SECRET.as_bytes()])).to_uppercase()
    );
    let q = query_of(&loc);
    let key = secret_key(&param(&q, "challenge"));

    // A plain password is not accepted from a portal with a secret.
    let loc = logon(&p, &g, "username=alice&password=wonderland");
    assert!(loc.contains("?res=failed&"), "{loc}");
    assert!(!g.authorized());
    // The failure carries a fresh challenge for the next try.
    let key2 = secret_key(&param(&query_of(&loc), "challenge"));
    assert_ne!(key, key2);

    // Wrong password, XOR-encoded: res=failed with a reply.
    let nope = uam::encode_password("nope", &key2);
    let loc = logon(&p, &g, &format!("username=alice&password={nope}"));
    assert!(loc.contains("res=failed"), "{loc}");
    assert!(loc.contains("&reply="), "{loc}");
    let key3 = secret_key(&param(&query_of(&loc), "challenge"));

    // Right password: res=success back to the portal, signed.
    let right = uam::encode_password("wonderland", &key3);
    let loc = logon(
        &p,
        &g,
        &format!("username=alice&password={right}&userurl=http%3A%2F%2Fexample.test%2Fpage"),
    );
    assert!(loc.starts_with("https://portal.example/hotspotlogin.cgi?res=success&uamip=10.1.0.1&uamport=3990&uid=alice&called="), "{loc}");
    assert_eq!(
        param(&query_of(&loc), "userurl"),
        "http://example.test/page"
    );
    assert!(g.authorized());
    // Again: res=already.
    assert!(logon(&p, &g, "username=alice&password=00").contains("res=already"));
    // Logoff: res=logoff.
    let r = get(&p, &g, "10.1.0.1", "/logoff");
    assert!(r.header("location").unwrap().contains("?res=logoff&"));
    assert!(!g.authorized());
}

#[test]
fn json_api_with_chap_and_jsonp() {
    let g = EngineGateway::with_client();
    let p = portal(external(), users());
    let r = get(&p, &g, "10.1.0.1", "/json/status?callback=chilliJSON.reply");
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let text = body(&r);
    let json = text
        .strip_prefix("chilliJSON.reply(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap();
    let v: Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["clientState"], 0);
    let key = secret_key(v["challenge"].as_str().unwrap());
    // A bad callback is ignored (plain JSON).
    let r = get(&p, &g, "10.1.0.1", "/json/status?callback=alert(1)");
    assert_eq!(r.header("content-type"), Some("application/json"));

    // Wrong CHAP response.
    let bad = uam::hex(&uam::chap_response(0, b"nope", &key));
    let v: Value = serde_json::from_slice(
        &get(
            &p,
            &g,
            "10.1.0.1",
            &format!("/json/logon?username=alice&response={bad}"),
        )
        .body,
    )
    .unwrap();
    assert_eq!(v["clientState"], 0);
    assert!(v["message"].as_str().unwrap().contains("wrong"));
    let key = secret_key(v["challenge"].as_str().unwrap());
    let good = uam::hex(&uam::chap_response(0, b"wonderland", &key));
    let v: Value = serde_json::from_slice(
        &get(
            &p,
            &g,
            "10.1.0.1",
            &format!("/json/login?username=alice&response={good}"),
        )
        .body,
    )
    .unwrap();
    assert_eq!(v["clientState"], 1, "{v}");
    assert_eq!(v["session"]["userName"], "alice");
    assert_eq!(v["session"]["sessionTimeout"], 60);
    assert!(v["accounting"]["inputOctets"].is_u64());
    let v: Value = serde_json::from_slice(&get(&p, &g, "10.1.0.1", "/json/logoff").body).unwrap();
    assert_eq!(v["clientState"], 0);
    assert!(!g.authorized());
}

#[test]
fn rfc8908_api() {
    let g = EngineGateway::with_client();
    let p = portal(
        Settings {
            venue_info_url: Some("https://venue.example/".into()),
            ..settings()
        },
        Box::new(auth::ClickThrough),
    );
    let r = get(&p, &g, "10.1.0.1:3990", "/api");
    assert_eq!(r.header("content-type"), Some("application/captive+json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "captive": true,
            "user-portal-url": "http://10.1.0.1:3990/",
            "venue-info-url": "https://venue.example/"
        })
    );
    let p = portal(external(), users());
    let v: Value = serde_json::from_slice(&get(&p, &g, "10.1.0.1", "/api").body).unwrap();
    assert!(v["user-portal-url"]
        .as_str()
        .unwrap()
        .starts_with("https://portal.example/hotspotlogin.cgi?res=notyet&"));
}

#[test]
fn the_login_grants_the_users_limits() {
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    let chal = page_challenge(&body(&get(&p, &g, "10.1.0.1", "/")));
    post(
        &p,
        &g,
        "/logon",
        &format!("challenge={chal}&username=alice&password=wonderland"),
    );
    assert!(g.authorized());
    let limits = g.client().limits;
    assert_eq!(limits.session_timeout, Some(60));
    assert_eq!(limits.max_total_octets, Some(5000));
    assert_eq!(limits.idle_timeout, None);
}

#[test]
fn garbage_never_panics() {
    let g = EngineGateway::with_client();
    let p = portal(external(), users());
    for target in [
        "",
        "*",
        "/%",
        "/json/",
        "/json/logon?username=%ff&response=zz",
        "/logon?password=%00%00",
        "/logon?challenge=xyz&username=a&password=b",
        "http://example.test/abs?x",
        "/?userurl=javascript:alert(1)",
        "/status?callback=",
        "/api?",
        "/logon?&&&=&==",
    ] {
        for host in ["10.1.0.1", "example.test", "\u{0}", ""] {
            let _ = get(&p, &g, host, target);
        }
    }
}

// Issue 8, findings 4 and 5: cross-site requests and login rate limiting.

/// A request from the client with these Origin and Referer headers.
fn from_site(
    method: Method,
    target: &str,
    form: Option<&str>,
    origin: Option<&str>,
    referer: Option<&str>,
) -> PortalRequest {
    PortalRequest {
        origin: origin.map(str::to_string),
        referer: referer.map(str::to_string),
        ..req(method, "10.1.0.1:3990", target, form)
    }
}

/// The hidden form token of a rendered page.
fn page_token(html: &str) -> String {
    let i = html.find("name=\"token\" value=\"").unwrap() + 20;
    html[i..i + 32].to_string()
}

fn log_in(p: &Portal, g: &EngineGateway) {
    let chal = page_challenge(&body(&get(p, g, "10.1.0.1", "/")));
    post(
        p,
        g,
        "/logon",
        &format!("challenge={chal}&username=alice&password=wonderland"),
    );
    assert!(g.authorized());
}

#[test]
fn another_site_cannot_log_a_guest_out() {
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    log_in(&p, &g);
    let evil = "http://198.51.100.66";
    for r in [
        // A link or a redirect (no Origin on a GET navigation).
        from_site(
            Method::Get,
            "/logoff",
            None,
            None,
            Some("http://198.51.100.66/x"),
        ),
        // The same from a page that hides its Referer.
        from_site(Method::Get, "/logout", None, None, None),
        // An auto-submitted form, from a page, a sandboxed frame, a page
        // that names the portal's address under another port.
        from_site(Method::Post, "/logoff", Some(""), Some(evil), None),
        from_site(Method::Post, "/logoff", Some(""), Some("null"), None),
        from_site(
            Method::Post,
            "/logoff",
            Some(""),
            Some("http://10.1.0.1"),
            None,
        ),
        from_site(Method::Post, "/logoff", Some("token=00"), Some(evil), None),
        // JSON from a foreign page.
        from_site(
            Method::Get,
            "/json/logoff?callback=x",
            None,
            None,
            Some(evil),
        ),
    ] {
        let resp = handle(&p, &g, &r, NOW);
        assert_eq!(resp.status, 403, "{r:?}");
        assert!(g.authorized(), "{r:?} logged the guest out");
    }
    assert_eq!(p.stats().snapshot().cross_site_refused, 7);
    // The success page's logout button (its token, same origin) works.
    let page = body(&get(&p, &g, "10.1.0.1", "/status"));
    let token = page_token(&page);
    let r = from_site(
        Method::Post,
        "/logoff",
        Some(&format!("token={token}")),
        Some("http://10.1.0.1:3990"),
        None,
    );
    assert_eq!(handle(&p, &g, &r, NOW).status, 200);
    assert!(!g.authorized());
    // A tokenized GET link works too.
    log_in(&p, &g);
    let r = from_site(
        Method::Get,
        &format!("/logoff?token={token}"),
        None,
        None,
        None,
    );
    assert_eq!(handle(&p, &g, &r, NOW).status, 200);
    assert!(!g.authorized());
}

#[test]
fn another_site_cannot_log_a_guest_in() {
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    // The attacker's own account, posted by its page: refused even with
    // the victim's live challenge.
    let chal = page_challenge(&body(&get(&p, &g, "10.1.0.1", "/")));
    let form = format!("challenge={chal}&username=alice&password=wonderland");
    for origin in ["http://198.51.100.66", "null"] {
        let r = from_site(Method::Post, "/logon", Some(&form), Some(origin), None);
        let resp = handle(&p, &g, &r, NOW);
        assert_eq!(resp.status, 403);
        assert!(body(&resp).contains("another web site"), "{}", body(&resp));
    }
    let r = from_site(Method::Get, &format!("/logon?{form}"), None, None, None);
    assert_eq!(handle(&p, &g, &r, NOW).status, 403);
    assert!(!g.authorized());
    // Without a challenge a plain password is refused (the page expired).
    let r = from_site(
        Method::Post,
        "/logon",
        Some("username=alice&password=wonderland"),
        None,
        None,
    );
    assert!(body(&handle(&p, &g, &r, NOW)).contains("expired"));
    assert!(!g.authorized());
    // The page's own form (token, same origin) logs in.
    let page = body(&get(&p, &g, "10.1.0.1", "/"));
    let form = format!(
        "challenge={}&token={}&username=alice&password=wonderland",
        page_challenge(&page),
        page_token(&page)
    );
    let r = from_site(
        Method::Post,
        "/logon",
        Some(&form),
        Some("http://10.1.0.1:3990"),
        None,
    );
    assert_eq!(handle(&p, &g, &r, NOW).status, 302);
    assert!(g.authorized());
}

#[test]
fn jsonp_carries_the_challenge_only_where_it_cannot_act_alone() {
    let challenge_of = |p: &Portal, g: &EngineGateway, target: &str| -> Option<String> {
        let text = body(&get(p, g, "10.1.0.1", target));
        let json = text
            .strip_prefix("cb(")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or(&text);
        let v: Value = serde_json::from_str(json).unwrap();
        v.get("challenge").map(|c| c.as_str().unwrap().to_string())
    };
    let g = EngineGateway::with_client();
    // Own pages: plain passwords, so JSONP must not hand out the challenge;
    // plain JSON (readable by the portal's own origin only) still does.
    let p = portal(settings(), users());
    assert_eq!(challenge_of(&p, &g, "/json/status?callback=cb"), None);
    assert!(challenge_of(&p, &g, "/json/status").is_some());
    // A secret without an external portal: still plain passwords.
    let with_secret = Settings {
        uam_secret: Some(SECRET.into()),
        ..settings()
    };
    let p = portal(with_secret, users());
    assert_eq!(challenge_of(&p, &g, "/json/status?callback=cb"), None);
    // CoovaChilli's setup (external portal and secret): ChilliLibrary.js
    // gets it, as before.
    let p = portal(external(), users());
    assert!(challenge_of(&p, &g, "/json/status?callback=cb").is_some());
}

/// A backend that counts the attempts it sees.
struct Counting(Box<dyn Authenticator>, Arc<std::sync::atomic::AtomicUsize>);

impl Authenticator for Counting {
    fn authenticate<'a>(&'a self, req: &'a auth::AuthRequest) -> auth::AuthFuture<'a> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.authenticate(req)
    }
}

#[test]
fn wrong_logins_back_off_and_the_backend_is_spared() {
    use std::sync::atomic::Ordering;
    let g = EngineGateway::with_client();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p = portal(settings(), Box::new(Counting(users(), seen.clone())));
    let mut chal = page_challenge(&body(&get(&p, &g, "10.1.0.1", "/")));
    let at = |t: u64, form: &str| {
        let r = req(Method::Post, "10.1.0.1:3990", "/logon", Some(form));
        handle(&p, &g, &r, t)
    };
    let mut waits = 0;
    for i in 0..100u64 {
        let html = body(&at(
            NOW + i,
            &format!("challenge={chal}&username=alice&password=nope{i}"),
        ));
        if html.contains("Too many sign-in attempts. Please wait 1 s") {
            waits += 1;
        } else {
            assert!(html.contains("Wrong user name"), "{html}");
        }
        chal = page_challenge(&html);
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        5,
        "the backend saw only the free attempts"
    );
    assert_eq!(waits, 95);
    let c = p.stats().snapshot();
    assert_eq!((c.login_attempts, c.logins_rate_limited), (100, 95));
    let result = |r: LoginResult| c.login_results[r as usize];
    assert_eq!(result(LoginResult::Reject), 5);
    assert_eq!(result(LoginResult::RateLimited), 95);
    assert_eq!(result(LoginResult::Success), 0);
    // Even the right password waits; the page's challenge survives the wait.
    let right = format!("challenge={chal}&username=alice&password=wonderland");
    assert!(body(&at(NOW + 500, &right)).contains("Please wait"));
    assert!(!g.authorized());
    assert_eq!(at(NOW + 1_100, &right).status, 302);
    assert!(g.authorized());
    assert_eq!(seen.load(Ordering::SeqCst), 6);
}

#[test]
fn a_backed_off_json_client_is_told_to_wait() {
    let g = EngineGateway::with_client();
    let p = portal(external(), users());
    let mut last = Value::Null;
    for _ in 0..6 {
        let v: Value =
            serde_json::from_slice(&get(&p, &g, "10.1.0.1", "/json/status").body).unwrap();
        let key = secret_key(v["challenge"].as_str().unwrap());
        let bad = uam::hex(&uam::chap_response(0, b"nope", &key));
        last = serde_json::from_slice(
            &get(
                &p,
                &g,
                "10.1.0.1",
                &format!("/json/logon?username=alice&response={bad}"),
            )
            .body,
        )
        .unwrap();
    }
    assert_eq!(last["clientState"], 0);
    assert!(
        last["message"].as_str().unwrap().contains("Please wait"),
        "{last}"
    );
    // An external portal gets res=failed with the reply.
    let loc = logon(&p, &g, "username=alice&password=00");
    assert!(
        loc.contains("res=failed") && loc.contains("Please%20wait"),
        "{loc}"
    );
}

#[test]
fn garbage_origins_and_tokens_never_panic_and_never_pass() {
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    log_in(&p, &g);
    let long = "h".repeat(70_000);
    for header in [
        "",
        ":",
        "://",
        "http://",
        "http://:",
        "http://10.1.0.1:99999",
        "http://10.1.0.1:-1",
        "http://[",
        "http://ü.example:3990",
        "http://10.1.0.1:3990\u{0}",
        "\u{feff}http://10.1.0.1:3990",
        long.as_str(),
    ] {
        for token in ["", "%ff", "zz", &"0".repeat(32), &"0".repeat(31)] {
            let form = format!("token={token}");
            for (origin, referer) in [(Some(header), None), (None, Some(header))] {
                let r = from_site(Method::Post, "/logoff", Some(&form), origin, referer);
                let resp = handle(&p, &g, &r, NOW);
                assert_eq!(resp.status, 403, "{header:?} {token:?}");
                assert!(g.authorized());
            }
        }
    }
}

// One clock (issue 9): the portal's times are engine times.

#[test]
fn time_online_and_left_count_in_engine_time_across_a_clock_step() {
    // Engine time (the shell's `io::clock::now_ms`) never steps; the system
    // clock may (a router without a real-time clock, set by NTP later).
    // Here engine time is in 2024 while this machine's clock says
    // otherwise: a portal reading the system clock would be off by that
    // step. Logged in at NOW, asked 5 s of engine time later, it must say
    // 5 s online and 55 s left.
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    log_in(&p, &g);
    assert_eq!(g.client().authorized_at, Some(NOW), "the engine's start");
    let later = NOW + 5_000;
    let v: Value =
        serde_json::from_slice(&get_at(&p, &g, "10.1.0.1", "/json/status", later).body).unwrap();
    assert_eq!(v["clientState"], 1, "{v}");
    assert_eq!(v["accounting"]["sessionTime"], 5, "{v}");
    assert_eq!(v["accounting"]["idleTime"], 5, "{v}");
    assert_eq!(v["session"]["sessionTimeout"], 60, "{v}");
    let html = body(&get_at(&p, &g, "10.1.0.1", "/status", later));
    assert!(html.contains("id=\"session-time\">5 s<"), "{html}");
    assert!(html.contains("id=\"time-left\">55 s<"), "{html}");
    // The start shown as a date is the wall clock's: engine time moved by
    // the step the shell reports.
    let step: i64 = 86_400_000;
    let mut r = req(Method::Get, "10.1.0.1", "/json/status", None);
    r.wall_offset_ms = step;
    let v: Value = serde_json::from_slice(&handle(&p, &g, &r, later).body).unwrap();
    assert_eq!(v["session"]["startTime"], (NOW + step as u64) / 1000, "{v}");
    assert_eq!(v["accounting"]["sessionTime"], 5, "{v}");
    // The RFC 8908 API counts the same way.
    let v: Value = serde_json::from_slice(&get_at(&p, &g, "10.1.0.1", "/api", later).body).unwrap();
    assert_eq!(v["seconds-remaining"], 55, "{v}");
}

#[test]
fn a_new_challenge_comes_from_the_requests_random_bytes() {
    // Randomness comes in with the request: the portal draws none itself.
    let g = EngineGateway::with_client();
    let p = portal(settings(), users());
    let mut r = req(Method::Get, "10.1.0.1", "/", None);
    r.random = [0xab; 16];
    let html = body(&handle(&p, &g, &r, NOW));
    assert_eq!(page_challenge(&html), "ab".repeat(16));
    // A live challenge stays; other bytes do not replace it.
    r.random = [0xcd; 16];
    let html = body(&handle(&p, &g, &r, NOW + 1_000));
    assert_eq!(page_challenge(&html), "ab".repeat(16));
}

#[test]
fn a_reconfigured_portal_keeps_the_challenge_a_guest_holds() {
    let g = EngineGateway::with_client();
    let p = portal(external(), users());
    let loc = get(&p, &g, "example.test", "/page")
        .header("location")
        .unwrap()
        .to_string();
    assert!(loc.contains("&nasid=lassi&"), "{loc}");
    let key = secret_key(&param(&query_of(&loc), "challenge"));
    // A reload: another NAS id and pages, same secret.
    let mut pages = Pages::embedded();
    pages.set_file("error.html".into(), "reloaded {{message}}".into());
    let p2 = p.reconfigured(
        Settings {
            nas_id: "cafe".into(),
            ..external()
        },
        users(),
        pages,
    );
    let loc2 = get(&p2, &g, "example.test", "/page")
        .header("location")
        .unwrap()
        .to_string();
    assert!(loc2.contains("&nasid=cafe&"), "{loc2}");
    assert_eq!(
        param(&query_of(&loc2), "challenge"),
        param(&query_of(&loc), "challenge"),
        "the same live challenge"
    );
    // The password encoded with the challenge from before the reload logs in.
    let right = uam::encode_password("wonderland", &key);
    let loc = logon(&p2, &g, &format!("username=alice&password={right}"));
    assert!(loc.contains("res=success"), "{loc}");
    assert!(Arc::ptr_eq(p.stats(), p2.stats()), "counters carry over");
}
