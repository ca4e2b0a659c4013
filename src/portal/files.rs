//! The portal's file and thread glue (shell): the page overrides of
//! `portal.pages_dir` and the users file read from disk, and the local-users
//! check run off the event loop (`spawn_blocking`). What they read is handed
//! to the pure [`super::pages::Pages`] and [`super::auth::LocalUsers`].

use std::path::Path;
use std::sync::Arc;

use super::auth::{AuthFuture, AuthOutcome, AuthRequest, Authenticator, LocalUsers};
use super::pages::{lang_file_code, Pages};

/// Largest users file read (bytes).
const MAX_USERS_FILE: u64 = 4 << 20;
/// Largest page file read from `pages_dir`.
const MAX_PAGE_FILE: u64 = 1 << 20;

/// Reads a file of at most `max` bytes (`what` names the limit in errors).
fn read_limited(path: &Path, max: u64, what: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > max {
        return Err(format!("larger than {what}"));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// Reads and parses a users file (see [`LocalUsers`]); errors name the file.
pub fn load_users(path: &Path) -> Result<LocalUsers, String> {
    let text = read_limited(path, MAX_USERS_FILE, "4 MiB")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    LocalUsers::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The embedded pages with files from `dir` replacing those of the same
/// name; `lang-XX.txt` files there replace or add languages. Returns the
/// pages and a warning per file that could not be read.
pub fn load_pages(dir: Option<&Path>) -> (Pages, Vec<String>) {
    let mut p = Pages::embedded();
    let mut warnings = Vec::new();
    let Some(dir) = dir else {
        return (p, warnings);
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("portal.pages_dir {}: {e}", dir.display()));
            return (p, warnings);
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let lang = lang_file_code(&name);
        if !p.has_file(&name) && lang.is_none() {
            continue;
        }
        let path = dir.join(&name);
        match read_limited(&path, MAX_PAGE_FILE, "1 MiB") {
            Ok(text) => match lang {
                Some(l) => p.add_language(&l, &text),
                None => p.set_file(name, text),
            },
            Err(e) => warnings.push(format!("portal.pages_dir {}: {e}", path.display())),
        }
    }
    (p, warnings)
}

/// `auth = "local"` as the daemon runs it: crypt hashes take milliseconds
/// (more on a router), so each check runs on tokio's blocking pool, off the
/// control-plane event loop.
#[derive(Debug, Clone)]
pub struct OffLoopUsers(Arc<LocalUsers>);

impl OffLoopUsers {
    /// Wraps the users a file named.
    pub fn new(users: LocalUsers) -> OffLoopUsers {
        OffLoopUsers(Arc::new(users))
    }
}

impl Authenticator for OffLoopUsers {
    fn authenticate<'a>(&'a self, req: &'a AuthRequest) -> AuthFuture<'a> {
        let users = self.0.clone();
        let name = req.username.clone();
        let creds = req.credentials.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || users.check(&name, &creds))
                .await
                .unwrap_or(AuthOutcome::Reject {
                    reply: Some("internal error".into()),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn pages_dir_overrides() {
        let dir = std::env::temp_dir().join(format!("lassi-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("error.html"), "custom {{message}}").unwrap();
        std::fs::write(dir.join("lang-fr.txt"), "title = Bienvenue\n").unwrap();
        std::fs::write(dir.join("unrelated.txt"), "x").unwrap();
        let (p, warnings) = load_pages(Some(&dir));
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut v = HashMap::new();
        v.insert("message", "<m>".to_string());
        assert_eq!(p.render("error", "en", &mut v), "custom &lt;m&gt;");
        assert_eq!(p.languages(), ["en", "de", "fr"]);
        assert_eq!(p.string("fr", "title"), "Bienvenue");
        // Falls back to English for keys the file lacks.
        assert_eq!(p.string("fr", "logout"), p.string("en", "logout"));
        let (_, warnings) = load_pages(Some(&dir.join("missing")));
        assert_eq!(warnings.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn users_file_is_read_and_checked_off_the_loop() {
        let path = std::env::temp_dir().join(format!("lassi-users-{}", std::process::id()));
        std::fs::write(&path, "bob plain:s3cret\n").unwrap();
        let users = load_users(&path).unwrap();
        assert_eq!(users.len(), 1);
        let e = load_users(&path.with_extension("missing")).unwrap_err();
        assert!(e.contains("lassi-users"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let auth = OffLoopUsers::new(users);
        let req = AuthRequest {
            username: "bob".into(),
            credentials: super::super::auth::Credentials::Pap("s3cret".into()),
            mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
            ip: core::net::Ipv4Addr::new(10, 1, 0, 9),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(matches!(
            rt.block_on(auth.authenticate(&req)),
            AuthOutcome::Accept { .. }
        ));
    }
}
