//! Durable state: files written atomically (temp file, fsync, rename, fsync
//! of the directory), so a power cut leaves either the old or the new
//! version, never half of one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::dhcp::LeaseRecord;

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// The lease database in a state directory.
pub struct LeaseStore {
    path: PathBuf,
}

impl LeaseStore {
    /// `dir/leases.json`; creates `dir` if needed.
    pub fn open(dir: &Path) -> io::Result<LeaseStore> {
        fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("state dir {}: {e}", dir.display())))?;
        Ok(LeaseStore {
            path: dir.join("leases.json"),
        })
    }

    /// Saved leases. A missing file is an empty table; a damaged one is set
    /// aside (renamed `.corrupt`) with a warning rather than stopping lassi.
    pub fn load(&self) -> Vec<LeaseRecord> {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; starting with no leases",
                    self.path.display()
                );
                return Vec::new();
            }
        };
        match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(e) => {
                let aside = self.path.with_extension("json.corrupt");
                tracing::warn!(
                    "{} is damaged ({e}); moved to {} and starting with no leases",
                    self.path.display(),
                    aside.display()
                );
                let _ = fs::rename(&self.path, aside);
                Vec::new()
            }
        }
    }

    /// Replace the saved table.
    pub fn save(&self, leases: &[LeaseRecord]) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(leases).map_err(io::Error::other)?;
        write_atomic(&self.path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lassi-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_corruption_is_set_aside() {
        let dir = tempdir("rt");
        let s = LeaseStore::open(&dir).unwrap();
        assert!(s.load().is_empty());
        let rec = LeaseRecord {
            mac: "02:00:00:00:00:01".parse().unwrap(),
            ip: "10.1.0.10".parse().unwrap(),
            expires: 123_456,
            hostname: Some("phone".into()),
        };
        s.save(std::slice::from_ref(&rec)).unwrap();
        let back = s.load();
        assert_eq!(back.len(), 1);
        assert_eq!(
            (back[0].mac, back[0].ip, back[0].expires),
            (rec.mac, rec.ip, rec.expires)
        );
        fs::write(dir.join("leases.json"), b"{not json").unwrap();
        assert!(s.load().is_empty());
        assert!(dir.join("leases.json.corrupt").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
