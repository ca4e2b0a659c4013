//! Durable state: files written atomically (temp file, fsync, rename, fsync
//! of the directory), so a power cut leaves either the old or the new
//! version, never half of one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replace(path, bytes, true)
}

/// Write `bytes` to `path` atomically (temp file then rename); with `sync`
/// also durably (fsync of the file and the directory). Without it a crash
/// of lassi still finds the old or the new file whole (the kernel keeps the
/// written pages); only a power cut may fall back to an older version.
pub fn write_replace(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        // 0600: sessions.json holds user names and RADIUS Class/CUI.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// One JSON document in the state directory (leases.json, sessions.json).
pub struct JsonFile {
    path: PathBuf,
}

impl JsonFile {
    /// `dir/name`; creates `dir` if needed.
    pub fn open(dir: &Path, name: &str) -> io::Result<JsonFile> {
        fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("state dir {}: {e}", dir.display())))?;
        Ok(JsonFile {
            path: dir.join(name),
        })
    }

    /// The saved document. A missing file is an empty one; a damaged one is
    /// set aside (renamed `.corrupt`) with a warning rather than stopping lassi.
    pub fn load<T: serde::de::DeserializeOwned + Default>(&self) -> T {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return T::default(),
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; starting without it",
                    self.path.display()
                );
                return T::default();
            }
        };
        match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(e) => {
                let aside = self.path.with_extension("json.corrupt");
                tracing::warn!(
                    "{} is damaged ({e}); moved to {} and starting without it",
                    self.path.display(),
                    aside.display()
                );
                let _ = fs::rename(&self.path, aside);
                T::default()
            }
        }
    }

    /// Replace the saved document atomically and durably.
    pub fn save<T: serde::Serialize + ?Sized>(&self, value: &T) -> io::Result<()> {
        self.save_with(value, true)
    }

    /// Replace the saved document atomically; durably (fsync) with `sync`.
    pub fn save_with<T: serde::Serialize + ?Sized>(&self, value: &T, sync: bool) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        write_replace(&self.path, &text, sync)
    }
}

/// The lease database: `leases.json`.
pub fn leases(dir: &Path) -> io::Result<JsonFile> {
    JsonFile::open(dir, "leases.json")
}

/// The DHCPv6 lease database: `leases6.json` (written when `[lan.ipv6]` is on).
pub fn leases6(dir: &Path) -> io::Result<JsonFile> {
    JsonFile::open(dir, "leases6.json")
}

/// Authorized sessions: `sessions.json`.
pub fn sessions(dir: &Path) -> io::Result<JsonFile> {
    JsonFile::open(dir, "sessions.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::LeaseRecord;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lassi-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_corruption_is_set_aside() {
        let dir = tempdir("rt");
        let s = leases(&dir).unwrap();
        assert!(s.load::<Vec<LeaseRecord>>().is_empty());
        let rec = LeaseRecord {
            mac: "02:00:00:00:00:01".parse().unwrap(),
            ip: "10.1.0.10".parse().unwrap(),
            expires: 123_456,
            hostname: Some("phone".into()),
        };
        s.save(std::slice::from_ref(&rec)).unwrap();
        let back: Vec<LeaseRecord> = s.load();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &fs::metadata(dir.join("leases.json")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "state files are private");
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].mac, back[0].ip, back[0].expires),
            (rec.mac, rec.ip, rec.expires)
        );
        fs::write(dir.join("leases.json"), b"{not json").unwrap();
        assert!(s.load::<Vec<LeaseRecord>>().is_empty());
        assert!(dir.join("leases.json.corrupt").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
