//! CoovaChilli's UAM protocol, I/O-free: the redirect URL and its `md`
//! checksum, URL encoding and query parsing, and the logon encodings
//! (`password` XOR-encoded with the derived challenge, CHAP `response`).
//!
//! Every function here is total: bad input gives `None` or an empty value,
//! never a panic, so the HTTP layer can feed it whatever a client sent.

use core::net::Ipv4Addr;
use std::fmt::Write as _;

use md5::{Digest, Md5};

use crate::wire::MacAddr;

/// Length of a challenge in bytes (an MD5 block, as in CoovaChilli).
pub const CHALLENGE_LEN: usize = 16;

/// A login challenge.
pub type Challenge = [u8; CHALLENGE_LEN];

/// The `res=` value of a redirect to the splash page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Res {
    /// Not logged in yet: show the login page.
    NotYet,
    /// Login accepted.
    Success,
    /// Login refused.
    Failed,
    /// Logged out.
    Logoff,
    /// Was already logged in.
    Already,
}

impl Res {
    /// The value as it appears in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Res::NotYet => "notyet",
            Res::Success => "success",
            Res::Failed => "failed",
            Res::Logoff => "logoff",
            Res::Already => "already",
        }
    }
}

/// Everything a redirect to the splash page carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// `res=`.
    pub res: Res,
    /// lassi's address (`uamip`).
    pub uamip: Ipv4Addr,
    /// lassi's portal port (`uamport`).
    pub uamport: u16,
    /// The client's current challenge, if it is not logged in.
    pub challenge: Option<Challenge>,
    /// The user name, after a login (`uid`).
    pub uid: Option<String>,
    /// Why a login failed (`reply`), as the backend put it.
    pub reply: Option<String>,
    /// The gateway's LAN MAC (`called`).
    pub called: MacAddr,
    /// The client's MAC (`mac`).
    pub mac: MacAddr,
    /// The client's address (`ip`).
    pub ip: Ipv4Addr,
    /// NAS identifier (`nasid`).
    pub nasid: String,
    /// Acct-Session-Id (`sessionid`).
    pub sessionid: String,
    /// The URL the client first asked for (`userurl`).
    pub userurl: Option<String>,
}

/// Percent-encodes `s` the way CoovaChilli does: letters, digits and
/// `-_.!~*` stay, every other byte becomes `%xx` (lowercase hex).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
    out
}

/// Decodes `%xx` escapes and `+` (as a space, form encoding). Invalid
/// escapes are kept literally; invalid UTF-8 is replaced.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses `a=1&b=x%20y` into decoded pairs, in order. At most `max` pairs
/// are kept (the rest are ignored).
pub fn parse_query(q: &str, max: usize) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .take(max)
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Decodes hex (either case); `None` for odd lengths or non-hex characters.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(hex_val(p[0])? << 4 | hex_val(p[1])?))
        .collect()
}

/// MD5 of the concatenation of `parts`.
pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The challenge the logon encodings use: MD5(challenge ‖ uamsecret) with
/// a secret, the challenge itself without one (CoovaChilli's rule).
pub fn derived_challenge(challenge: &Challenge, secret: Option<&str>) -> [u8; 16] {
    match secret {
        Some(s) if !s.is_empty() => md5(&[challenge, s.as_bytes()]),
        _ => *challenge,
    }
}

/// Builds the redirect URL: `base` (which may already carry a query) with
/// CoovaChilli's parameters in CoovaChilli's order, then `md` = uppercase
/// hex MD5 of the URL so far followed by the secret, when there is one.
pub fn redirect_url(base: &str, r: &Redirect, secret: Option<&str>) -> String {
    let mut u = String::with_capacity(base.len() + 300);
    u.push_str(base);
    u.push(if base.contains('?') { '&' } else { '?' });
    let _ = write!(
        u,
        "res={}&uamip={}&uamport={}",
        r.res.as_str(),
        r.uamip,
        r.uamport
    );
    if let Some(c) = &r.challenge {
        let _ = write!(u, "&challenge={}", hex(c));
    }
    if let Some(uid) = &r.uid {
        let _ = write!(u, "&uid={}", url_encode(uid));
    }
    if let Some(reply) = &r.reply {
        let _ = write!(u, "&reply={}", url_encode(reply));
    }
    let _ = write!(
        u,
        "&called={}&mac={}&ip={}&nasid={}&sessionid={}",
        r.called.to_dashed(),
        r.mac.to_dashed(),
        r.ip,
        url_encode(&r.nasid),
        url_encode(&r.sessionid)
    );
    if let Some(url) = &r.userurl {
        let _ = write!(u, "&userurl={}", url_encode(url));
    }
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        let md = md5(&[u.as_bytes(), s.as_bytes()]);
        u.push_str("&md=");
        for b in md {
            let _ = write!(u, "{b:02X}");
        }
    }
    u
}

/// Decodes CoovaChilli's `password` parameter: hex of the password XOR the
/// derived challenge, the 16-byte key repeated for longer passwords,
/// zero-padded. Trailing NULs are removed. `None` if it is not hex, is empty
/// or longer than 128 bytes (RADIUS's limit), or the result is not UTF-8.
pub fn decode_password(hex_password: &str, key: &[u8; 16]) -> Option<String> {
    let raw = unhex(hex_password)?;
    if raw.is_empty() || raw.len() > 128 {
        return None;
    }
    let mut plain: Vec<u8> = raw
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 16])
        .collect();
    while plain.last() == Some(&0) {
        plain.pop();
    }
    if plain.is_empty() || plain.contains(&0) {
        return None;
    }
    String::from_utf8(plain).ok()
}

/// Encodes a password as [`decode_password`] expects (what a portal does).
pub fn encode_password(password: &str, key: &[u8; 16]) -> String {
    let mut p = password.as_bytes().to_vec();
    let padded = p.len().div_ceil(16).max(1) * 16;
    p.resize(padded, 0);
    let x: Vec<u8> = p.iter().enumerate().map(|(i, b)| b ^ key[i % 16]).collect();
    hex(&x)
}

/// CHAP-MD5 response (RFC 1994): MD5(ident ‖ password ‖ challenge).
pub fn chap_response(ident: u8, password: &[u8], challenge: &[u8]) -> [u8; 16] {
    md5(&[&[ident], password, challenge])
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True for a URL lassi will send a browser to: `http://` or `https://`,
/// something after the scheme, printable ASCII only (it goes into a
/// Location header), at most 2048 bytes.
pub fn is_safe_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    match rest {
        Some(r) => {
            !r.is_empty()
                && !r.starts_with('/')
                && u.len() <= 2048
                && u.chars().all(|c| c.is_ascii_graphic())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently with python3 hashlib:
    //   key = md5(bytes.fromhex(CHAL) + b"testing123").digest()
    const CHAL: &str = "00112233445566778899aabbccddeeff";
    const SECRET: &str = "testing123";

    fn chal() -> Challenge {
        unhex(CHAL).unwrap().try_into().unwrap()
    }

    fn redirect() -> Redirect {
        Redirect {
            res: Res::NotYet,
            uamip: Ipv4Addr::new(10, 1, 0, 1),
            uamport: 3990,
            challenge: Some(chal()),
            uid: None,
            reply: None,
            called: "02:00:00:00:00:01".parse().unwrap(),
            mac: "02:00:00:00:00:17".parse().unwrap(),
            ip: Ipv4Addr::new(10, 1, 0, 23),
            nasid: "lassi".into(),
            sessionid: "6650000000000001".into(),
            userurl: Some("http://example.test/a b?x=1&y=ü".into()),
        }
    }

    #[test]
    fn redirect_url_order_escaping_and_md() {
        let u = redirect_url("https://portal.example/login", &redirect(), Some(SECRET));
        assert_eq!(
            u,
            "https://portal.example/login?res=notyet&uamip=10.1.0.1&uamport=3990\
             &challenge=00112233445566778899aabbccddeeff&called=02-00-00-00-00-01\
             &mac=02-00-00-00-00-17&ip=10.1.0.23&nasid=lassi&sessionid=6650000000000001\
             &userurl=http%3a%2f%2fexample.test%2fa%20b%3fx%3d1%26y%3d%c3%bc\
             &md=637B7314BC1CD35D69D8193EC6805EBB"
        );
        // No secret, no md; a base with a query gets '&'.
        let u = redirect_url("http://p/x?lang=de", &redirect(), None);
        assert!(u.starts_with("http://p/x?lang=de&res=notyet&uamip="), "{u}");
        assert!(!u.contains("md="));
        // The parameters come in CoovaChilli's order.
        let names: Vec<String> = parse_query(u.split_once('?').unwrap().1, 64)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            names,
            [
                "lang",
                "res",
                "uamip",
                "uamport",
                "challenge",
                "called",
                "mac",
                "ip",
                "nasid",
                "sessionid",
                "userurl"
            ]
        );
        // userurl survives the round trip.
        let q = parse_query(u.split_once('?').unwrap().1, 64);
        assert_eq!(q.last().unwrap().1, "http://example.test/a b?x=1&y=ü");
    }

    #[test]
    fn derived_challenge_and_password_vectors() {
        let key = derived_challenge(&chal(), Some(SECRET));
        assert_eq!(hex(&key), "5aa914e3eeb88420f5bdaa98a40907bf");
        assert_eq!(derived_challenge(&chal(), None), chal());
        assert_eq!(
            decode_password("32dc7a978bcab620f5bdaa98a40907bf", &key).as_deref(),
            Some("hunter2")
        );
        assert_eq!(
            decode_password(
                "3b8479968dd0a94c9ad3cdfdd62477de29da638c9cdca94f83d8d8b5953f07bf",
                &key
            )
            .as_deref(),
            Some("a-much-longer-password-over-16")
        );
        assert_eq!(
            encode_password("hunter2", &key),
            "32dc7a978bcab620f5bdaa98a40907bf"
        );
        // Garbage never panics.
        for bad in ["", "zz", "abc", "5a", "5a00", &"ab".repeat(200)] {
            assert_eq!(decode_password(bad, &key), None, "{bad}");
        }
    }

    #[test]
    fn chap_vectors() {
        let key = derived_challenge(&chal(), Some(SECRET));
        assert_eq!(
            hex(&chap_response(0, b"hunter2", &key)),
            "3fae851b6dfe875549bc196b52130e22"
        );
        assert_eq!(
            hex(&chap_response(0, b"hunter2", &chal())),
            "52ff5a8aee64b8373b641c809d66767a"
        );
    }

    #[test]
    fn decoding_is_total() {
        assert_eq!(url_decode("a%20b+c%zz%4"), "a b c%zz%4");
        assert_eq!(url_decode("%"), "%");
        assert_eq!(url_decode("%c3%bc"), "ü");
        assert_eq!(url_decode("%ff"), "\u{fffd}");
        assert_eq!(
            parse_query("a=1&&b&c=%41=", 10),
            [
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), String::new()),
                ("c".to_string(), "A=".to_string())
            ]
        );
        assert_eq!(parse_query("a&b&c", 2).len(), 2);
        assert_eq!(unhex("0aFF"), Some(vec![10, 255]));
        assert!(is_safe_url("http://x/y"));
        assert!(!is_safe_url("javascript:alert(1)"));
        assert!(!is_safe_url("http:///x"));
        assert!(!is_safe_url("http://x/\ny"));
        assert!(ct_eq(b"ab", b"ab") && !ct_eq(b"ab", b"ac") && !ct_eq(b"a", b"ab"));
    }
}
