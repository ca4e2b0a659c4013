//! Authentication backends (`portal.auth`): click-through, a local users
//! file, and the interface the RADIUS client plugs into.
//!
//! A backend gets an [`AuthRequest`] (user name, PAP password or CHAP
//! challenge/response, the client's MAC and IP) and answers
//! [`AuthOutcome::Accept`] with optional session limits, or
//! [`AuthOutcome::Reject`]. The trait returns a boxed future so backends can
//! be chosen at run time and do network I/O (RADIUS) without blocking.

use core::future::Future;
use core::net::Ipv4Addr;
use core::pin::Pin;
use std::collections::HashMap;

use super::uam::{chap_response, ct_eq};
use crate::wire::MacAddr;

/// What the guest proved.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing (click-through: the terms were accepted).
    None,
    /// A password in clear (decoded from the UAM form if it was encoded).
    Pap(String),
    /// CHAP-MD5: `response` = MD5(ident ‖ password ‖ challenge).
    Chap {
        /// CHAP identifier (0 for UAM logins).
        ident: u8,
        /// The challenge the response was computed over (already derived
        /// with the UAM secret).
        challenge: [u8; 16],
        /// The client's response.
        response: [u8; 16],
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password.
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Pap(_) => f.write_str("Pap(..)"),
            Credentials::Chap { .. } => f.write_str("Chap{..}"),
        }
    }
}

/// One login attempt.
#[derive(Clone, Debug)]
pub struct AuthRequest {
    /// The name the guest gave (may be empty for click-through).
    pub username: String,
    /// What the guest proved.
    pub credentials: Credentials,
    /// The client's MAC (Calling-Station-Id).
    pub mac: MacAddr,
    /// The client's address (Framed-IP-Address).
    pub ip: Ipv4Addr,
}

pub use crate::session::SessionLimits;

/// A backend's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Let the guest in.
    Accept {
        /// Limits on the session (unset ones come from `[session]`).
        limits: SessionLimits,
        /// A message for the guest (Reply-Message), if any.
        reply: Option<String>,
        /// RADIUS Class attributes to echo in accounting.
        class: Vec<Vec<u8>>,
        /// RADIUS Chargeable-User-Identity.
        cui: Option<Vec<u8>>,
    },
    /// Keep the guest out.
    Reject {
        /// Why, for the guest (Reply-Message), if the backend says.
        reply: Option<String>,
    },
}

/// A boxed future, as [`Authenticator::authenticate`] returns.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = AuthOutcome> + Send + 'a>>;

/// A way of checking logins.
pub trait Authenticator: Send + Sync {
    /// Checks one login attempt.
    fn authenticate<'a>(&'a self, req: &'a AuthRequest) -> AuthFuture<'a>;

    /// True if the guest needs no credentials (the pages then show the terms
    /// instead of a user name and password).
    fn is_click_through(&self) -> bool {
        false
    }
}

/// `auth = "click-through"`: everyone who accepted the terms gets in.
#[derive(Debug, Default)]
pub struct ClickThrough;

impl Authenticator for ClickThrough {
    fn authenticate<'a>(&'a self, _req: &'a AuthRequest) -> AuthFuture<'a> {
        Box::pin(async {
            AuthOutcome::Accept {
                limits: SessionLimits::default(),
                reply: None,
                class: Vec::new(),
                cui: None,
            }
        })
    }

    fn is_click_through(&self) -> bool {
        true
    }
}

/// How a user's password is stored.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredPassword {
    /// `$6$…` (SHA-512-crypt) or `$5$…` (SHA-256-crypt), as `mkpasswd -m
    /// sha-512` or `openssl passwd -6` print. PAP only.
    Crypt(String),
    /// `plain:SECRET`: needed for CHAP logins.
    Plain(String),
}

impl std::fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredPassword::Crypt(h) => write!(f, "Crypt({})", &h[..h.len().min(3)]),
            StoredPassword::Plain(_) => f.write_str("Plain(..)"),
        }
    }
}

/// One line of the users file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalUser {
    /// Login name.
    pub name: String,
    /// Password hash or clear text.
    pub password: StoredPassword,
    /// Per-user limits.
    pub limits: SessionLimits,
}

/// `auth = "local"`: users from a file.
///
/// Format: one user per line, fields separated by whitespace, `#` starts a
/// comment line:
///
/// ```text
/// # name   password                    limits (optional)
/// alice    $6$saltsalt$hRM5XZ86KX…     session_timeout=3600 max_total_octets=500000000
/// bob      plain:correct-horse         idle_timeout=600 bandwidth_down=2000000
/// ```
///
/// Limits: `session_timeout`, `idle_timeout` (seconds), `max_input_octets`,
/// `max_output_octets`, `max_total_octets` (bytes), `bandwidth_up`,
/// `bandwidth_down` (bit/s). Unset ones fall back to `[session]`.
#[derive(Debug, Default)]
pub struct LocalUsers {
    users: HashMap<String, LocalUser>,
}

impl LocalUsers {
    /// Parses users-file text; errors name the line.
    pub fn parse(text: &str) -> Result<LocalUsers, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let lineno = n + 1;
            let mut fields = line.split_whitespace();
            let name = fields.next().unwrap_or_default();
            let pw = fields
                .next()
                .ok_or_else(|| format!("line {lineno}: '{name}' has no password"))?;
            if name.len() > 253 {
                return Err(format!("line {lineno}: user name longer than 253 bytes"));
            }
            let password = if let Some(p) = pw.strip_prefix("plain:") {
                StoredPassword::Plain(p.to_string())
            } else if parse_crypt(pw).is_some() {
                StoredPassword::Crypt(pw.to_string())
            } else {
                return Err(format!(
                    "line {lineno}: the password of '{name}' is neither $6$/$5$ crypt nor plain:SECRET"
                ));
            };
            let mut limits = SessionLimits::default();
            for f in fields {
                let (k, v) = f
                    .split_once('=')
                    .ok_or_else(|| format!("line {lineno}: '{f}' is not key=value"))?;
                let bad = || format!("line {lineno}: {k}: '{v}' is not a whole number in range");
                let secs = || v.parse::<u32>().map_err(|_| bad());
                let n = || v.parse::<u64>().map_err(|_| bad());
                match k {
                    "session_timeout" => limits.session_timeout = Some(secs()?),
                    "idle_timeout" => limits.idle_timeout = Some(secs()?),
                    "max_input_octets" => limits.max_input_octets = Some(n()?),
                    "max_output_octets" => limits.max_output_octets = Some(n()?),
                    "max_total_octets" => limits.max_total_octets = Some(n()?),
                    "bandwidth_up" => limits.bandwidth_up_bps = Some(n()?),
                    "bandwidth_down" => limits.bandwidth_down_bps = Some(n()?),
                    _ => return Err(format!("line {lineno}: unknown limit '{k}'")),
                }
            }
            if users.contains_key(name) {
                return Err(format!("line {lineno}: '{name}' appears twice"));
            }
            users.insert(
                name.to_string(),
                LocalUser {
                    name: name.to_string(),
                    password,
                    limits,
                },
            );
        }
        Ok(LocalUsers { users })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file names nobody.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks credentials against one user. Pure, but CPU-bound for crypt
    /// hashes: the daemon runs it off its event loop
    /// (`portal::files::OffLoopUsers`).
    pub fn check(&self, username: &str, credentials: &Credentials) -> AuthOutcome {
        let reject = |m: &str| AuthOutcome::Reject {
            reply: Some(m.to_string()),
        };
        let Some(user) = self.users.get(username) else {
            // Same work as a real check, so timing does not tell names apart.
            if let Credentials::Pap(p) = credentials {
                let _ = crypt_check(p, "$6$lassidummysalt$");
            }
            return reject("wrong user name or password");
        };
        let ok = match (credentials, &user.password) {
            (Credentials::Pap(p), StoredPassword::Plain(s)) => ct_eq(p.as_bytes(), s.as_bytes()),
            (Credentials::Pap(p), StoredPassword::Crypt(h)) => crypt_check(p, h),
            (
                Credentials::Chap {
                    ident,
                    challenge,
                    response,
                },
                StoredPassword::Plain(s),
            ) => ct_eq(&chap_response(*ident, s.as_bytes(), challenge), response),
            (Credentials::Chap { .. }, StoredPassword::Crypt(_)) => {
                return reject("CHAP login needs a cleartext password for this user");
            }
            (Credentials::None, _) => false,
        };
        if ok {
            AuthOutcome::Accept {
                limits: user.limits.clone(),
                reply: None,
                class: Vec::new(),
                cui: None,
            }
        } else {
            reject("wrong user name or password")
        }
    }
}

/// `$6$[rounds=N$]salt$hash` → (is_sha512, rounds, salt, hash).
fn parse_crypt(s: &str) -> Option<(bool, Option<usize>, &str, &str)> {
    let (sha512, rest) = if let Some(r) = s.strip_prefix("$6$") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("$5$") {
        (false, r)
    } else {
        return None;
    };
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (n, rest) = r.split_once('$')?;
            (Some(n.parse::<usize>().ok()?), rest)
        }
        None => (None, rest),
    };
    let (salt, hash) = rest.split_once('$')?;
    if hash.contains('$') {
        return None;
    }
    Some((sha512, rounds, salt, hash))
}

/// Checks `password` against a `$6$`/`$5$` crypt string (glibc rules: the
/// salt is cut to 16 characters, rounds are clamped to 1000–999999999).
pub fn crypt_check(password: &str, stored: &str) -> bool {
    let Some((sha512, rounds, salt, hash)) = parse_crypt(stored) else {
        return false;
    };
    let salt = &salt[..salt.len().min(16)];
    let rounds = rounds.unwrap_or(5000).clamp(1000, 999_999_999);
    let computed = if sha512 {
        sha_crypt::Sha512Params::new(rounds).ok().and_then(|p| {
            sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &p).ok()
        })
    } else {
        sha_crypt::Sha256Params::new(rounds).ok().and_then(|p| {
            sha_crypt::sha256_crypt_b64(password.as_bytes(), salt.as_bytes(), &p).ok()
        })
    };
    match computed {
        Some(c) => ct_eq(c.as_bytes(), hash.as_bytes()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From `openssl passwd -6 -salt saltsalt 'correct horse'` and
    // `openssl passwd -5 -salt abcdefgh pw`.
    const SHA512: &str = "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0";
    const SHA256: &str = "$5$abcdefgh$ijtOJ//yvc/9bq1g0llFn9dB688BwBDRD90DlKKSKE1";

    #[test]
    fn crypt_vectors() {
        assert!(crypt_check("correct horse", SHA512));
        assert!(!crypt_check("correct horsf", SHA512));
        assert!(crypt_check("pw", SHA256));
        assert!(!crypt_check("pw", "$1$abc$def"));
        assert!(!crypt_check("pw", "$6$"));
        assert!(!crypt_check("pw", "$6$rounds=x$a$b"));
    }

    #[test]
    fn users_file() {
        let text = format!(
            "# comment\n\nalice {SHA512} session_timeout=3600 max_total_octets=1000\n bob plain:s3cret idle_timeout=60\n"
        );
        let u = LocalUsers::parse(&text).unwrap();
        assert_eq!(u.len(), 2);
        let pap = |p: &str| Credentials::Pap(p.into());
        match u.check("alice", &pap("correct horse")) {
            AuthOutcome::Accept { limits, .. } => {
                assert_eq!(limits.session_timeout, Some(3600));
                assert_eq!(limits.max_total_octets, Some(1000));
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            u.check("alice", &pap("nope")),
            AuthOutcome::Reject { .. }
        ));
        assert!(matches!(
            u.check("nobody", &pap("x")),
            AuthOutcome::Reject { .. }
        ));
        assert!(matches!(
            u.check("bob", &pap("s3cret")),
            AuthOutcome::Accept { .. }
        ));
        let chal = [7u8; 16];
        let chap = |pw: &[u8]| Credentials::Chap {
            ident: 0,
            challenge: chal,
            response: chap_response(0, pw, &chal),
        };
        assert!(matches!(
            u.check("bob", &chap(b"s3cret")),
            AuthOutcome::Accept { .. }
        ));
        assert!(matches!(
            u.check("bob", &chap(b"wrong")),
            AuthOutcome::Reject { .. }
        ));
        match u.check("alice", &chap(b"correct horse")) {
            AuthOutcome::Reject { reply } => assert!(reply.unwrap().contains("cleartext")),
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            u.check("bob", &Credentials::None),
            AuthOutcome::Reject { .. }
        ));
    }

    #[test]
    fn users_file_errors_name_the_line() {
        for (text, needle) in [
            ("alice\n", "line 1"),
            ("# x\nalice md5hash\n", "line 2"),
            ("a plain:x session_timeout=soon\n", "not a whole number"),
            ("a plain:x idle_timeout=99999999999\n", "in range"),
            ("a plain:x colour=blue\n", "unknown limit"),
            ("a plain:x\na plain:y\n", "twice"),
            ("a plain:x junk\n", "key=value"),
        ] {
            let e = LocalUsers::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
