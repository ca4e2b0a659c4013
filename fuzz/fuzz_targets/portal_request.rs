//! HTTP requests to the portal, as a guest's browser (or an attacker's
//! page) sends them: method, Host, target, form body, Origin and Referer,
//! through the whole router (query and form parsing, cross-site checks,
//! login rate limiting, challenges) against a fake data plane.
#![no_main]
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use lassi::portal::{auth, pages::Pages, Gateway, Method, Portal, PortalRequest, Settings};
use lassi::session::{Authorization, Client, EndReason, EndedSession, SessionState};
use lassi::wire::MacAddr;
use libfuzzer_sys::fuzz_target;

struct OneGuest;

fn guest(authorized: bool) -> Client {
    let mut c = Client::leased(
        MacAddr([2, 0, 0, 0, 0, 0x17]),
        Ipv4Addr::new(10, 1, 0, 23),
        "66500000000000aa".into(),
        u64::MAX,
        0,
    );
    if authorized {
        c.state = SessionState::Authorized;
        c.user = Some("alice".into());
        c.authorized_at = Some(0);
    }
    c
}

impl Gateway for OneGuest {
    async fn client_by_ip(&self, _: Ipv4Addr) -> Result<Option<Client>, String> {
        Ok(Some(guest(false)))
    }
    async fn authorize(&self, _: MacAddr, _: Authorization) -> Result<Client, String> {
        Ok(guest(true))
    }
    async fn logout(&self, _: MacAddr, _: EndReason) -> Result<EndedSession, String> {
        Err("not logged in".into())
    }
}

/// NUL-separated fields of the input, missing ones empty.
fn fields(text: &str) -> [Option<String>; 6] {
    let mut it = text.split('\0');
    std::array::from_fn(|_| it.next().map(str::to_string))
}

/// One runtime for every input (building one per input dominated the cost
/// of an execution); the portal itself is built fresh per input so its
/// rate limits and challenges never carry over.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

/// The embedded pages, parsed once and cloned per input.
fn pages() -> Pages {
    static PAGES: OnceLock<Pages> = OnceLock::new();
    PAGES.get_or_init(Pages::embedded).clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let [method, host, target, form, origin, referer] = fields(text);
    let method = match method.as_deref() {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let uam = data.first().is_some_and(|b| b & 1 == 1);
    let settings = Settings {
        uam_server: uam.then(|| "https://portal.example/login".into()),
        uam_secret: uam.then(|| "secret".into()),
        ..Settings::new(
            Ipv4Addr::new(10, 1, 0, 1),
            3990,
            MacAddr([2, 0, 0, 0, 0, 1]),
        )
    };
    let portal = Portal::new(settings, Box::new(auth::ClickThrough), pages(), [7; 16]);
    let req = PortalRequest {
        method,
        host,
        target: target.unwrap_or_default(),
        form,
        accept_language: None,
        origin,
        referer,
        peer: Ipv4Addr::new(10, 1, 0, 23),
        random: [9; 16],
        wall_offset_ms: 0,
    };
    let _ = runtime().block_on(portal.handle(&OneGuest, &req, 1_000_000));
});
