//! Cross-site request checks (finding 5 of issue 8: a page on the internet
//! logged a guest out, or in as the attacker's account).
//!
//! A request that changes a guest's state (a login attempt, a logoff) is
//! accepted when it carries lassi's form token, or when the browser says it
//! comes from one of the portal's own origins:
//!
//! - **the token** is an HMAC of the client's MAC under a key made at start.
//!   lassi's own pages put it in their forms; another site can neither
//!   compute it nor read it (it is never in a URL, a redirect, or JSON);
//! - **the own origins** are `http://<gateway>:<port>` — the only origin
//!   that serves lassi's pages (a request for any other Host, including the
//!   names intercepted on their way to the internet, only ever gets a `302`,
//!   so a page under such a name is not lassi's) — and, with `uam_server`,
//!   the external portal's origin. The `Origin` header decides when present
//!   (`null` is foreign: sandboxed frames and `data:` pages send it), else
//!   the `Referer`.
//!
//! A request with neither header was not sent by a browser on behalf of
//! another site, with one exception: a top-level navigation (a GET) from a
//! page that suppresses its Referer. So on lassi's own pages a state change
//! by GET needs the token or an own Referer; a POST without either header
//! (curl, OS helpers) is accepted, since browsers always send `Origin` on a
//! cross-site POST.
//!
//! I/O-free: the key comes in as bytes.

use super::uam::{ct_eq, hex, unhex};
use crate::wire::MacAddr;

/// Where a request says it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// One of the portal's own origins.
    Own,
    /// Another origin (or `null`, or an unreadable header).
    Foreign,
    /// Neither `Origin` nor `Referer` was sent.
    Unknown,
}

/// An origin: scheme, host (lowercase), port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// The origin of an `Origin` header or a `Referer` URL
/// (`scheme://host[:port][/…]`); `None` for `null` or anything else.
pub fn parse_origin(url: &str) -> Option<Origin> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') && !h.contains(':') => (h, p.parse().ok()?),
        Some((h, p)) if h.ends_with(']') => (h, p.parse().ok()?),
        _ => (authority, default_port),
    };
    if host.is_empty() {
        return None;
    }
    Some(Origin {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// The portal's own origins and its per-boot token key.
#[derive(Clone, Debug)]
pub struct Guard {
    key: [u8; 16],
    own: Vec<Origin>,
}

impl Guard {
    /// A guard for a portal served at `base` (`http://gw:port`), trusting
    /// also `uam_server`'s origin; `key` is random, made at start.
    pub fn new(key: [u8; 16], base: &str, uam_server: Option<&str>) -> Guard {
        let own = [Some(base), uam_server]
            .into_iter()
            .flatten()
            .filter_map(parse_origin)
            .collect();
        Guard { key, own }
    }

    /// Where a request with these headers comes from.
    pub fn source(&self, origin: Option<&str>, referer: Option<&str>) -> Source {
        let Some(header) = origin.or(referer) else {
            return Source::Unknown;
        };
        match parse_origin(header) {
            Some(o) if self.own.contains(&o) => Source::Own,
            _ => Source::Foreign,
        }
    }

    /// The form token of client `mac`.
    pub fn token(&self, mac: MacAddr) -> String {
        hex(&crate::radius::crypto::hmac_md5(&self.key, &mac.0))
    }

    /// True if `given` is client `mac`'s form token.
    pub fn token_ok(&self, mac: MacAddr, given: &str) -> bool {
        unhex(given).is_some_and(|g| ct_eq(&g, &crate::radius::crypto::hmac_md5(&self.key, &mac.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(uam: Option<&str>) -> Guard {
        Guard::new([7; 16], "http://10.1.0.1:3990", uam)
    }

    #[test]
    fn origins() {
        let g = guard(None);
        for own in [
            "http://10.1.0.1:3990",
            "HTTP://10.1.0.1:3990/",
            "http://10.1.0.1:3990/status?x=1",
        ] {
            assert_eq!(g.source(Some(own), None), Source::Own, "{own}");
            assert_eq!(g.source(None, Some(own)), Source::Own, "{own}");
        }
        for foreign in [
            "null",
            "http://10.1.0.1",
            "http://10.1.0.1:3991",
            "https://10.1.0.1:3990",
            "http://evil.example",
            "http://10.1.0.1:3990@evil.example",
            "http://10.1.0.1.evil.example:3990",
            "",
            "garbage",
            "ftp://10.1.0.1:3990",
            "http://[::1]:3990",
            "http://:3990",
        ] {
            assert_eq!(g.source(Some(foreign), None), Source::Foreign, "{foreign}");
        }
        // Origin decides over Referer.
        assert_eq!(
            g.source(Some("http://evil.example"), Some("http://10.1.0.1:3990/")),
            Source::Foreign
        );
        assert_eq!(g.source(None, None), Source::Unknown);
        // The external portal's origin is the portal's too.
        let g = guard(Some("https://portal.example/hotspotlogin.cgi"));
        assert_eq!(
            g.source(None, Some("https://portal.example:443/x")),
            Source::Own
        );
        assert_eq!(
            g.source(Some("http://portal.example"), None),
            Source::Foreign
        );
    }

    #[test]
    fn tokens_are_per_client_and_per_key() {
        let g = guard(None);
        let a = MacAddr([2, 0, 0, 0, 0, 1]);
        let b = MacAddr([2, 0, 0, 0, 0, 2]);
        let t = g.token(a);
        assert_eq!(t.len(), 32);
        assert!(g.token_ok(a, &t));
        assert!(!g.token_ok(b, &t));
        assert!(!g.token_ok(a, ""));
        assert!(!g.token_ok(a, "zz"));
        assert!(!Guard::new([8; 16], "http://10.1.0.1:3990", None).token_ok(a, &t));
    }
}
