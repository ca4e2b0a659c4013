//! The accounting spool's files (shell): what makes [`Spool`] durable. It
//! survives RADIUS outages and restarts of lassi.
//!
//! Layout: one file per record, `DIR/<sequence, 20 digits>.acct`, JSON,
//! written with [`crate::store::write_atomic`] (temp file, fsync, rename,
//! fsync of the directory) before the record is first sent, deleted when a
//! server acknowledges it. A crash leaves either the whole file or a `.tmp`
//! that is ignored and removed at the next open. Sequence numbers grow
//! monotonically across restarts (the next one follows the largest on
//! disk), so the order of events is the order of the file names.
//!
//! The send policy and the bounds are [`Spool`]'s; when it is full,
//! [`SpoolStore::append`] refuses with [`SpoolError::Full`] and logs an
//! error naming the session.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::attrs::AcctRecord;
use super::spool::{Spool, SpoolConfig, SpoolFull};
use crate::store::write_atomic;

/// Why a record was not spooled.
#[derive(Debug)]
pub enum SpoolError {
    /// The bound is reached; the record is not durable.
    Full {
        /// Records held.
        records: usize,
        /// Bytes held.
        bytes: u64,
    },
    /// Writing failed.
    Io(io::Error),
}

impl From<SpoolFull> for SpoolError {
    fn from(f: SpoolFull) -> Self {
        SpoolError::Full {
            records: f.records,
            bytes: f.bytes,
        }
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full { records, bytes } => SpoolFull {
                records: *records,
                bytes: *bytes,
            }
            .fmt(f),
            SpoolError::Io(e) => write!(f, "accounting spool: {e}"),
        }
    }
}

impl std::error::Error for SpoolError {}

/// The spool and its directory. See the module documentation.
#[derive(Debug)]
pub struct SpoolStore {
    dir: PathBuf,
    spool: Spool,
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.acct")
}

impl SpoolStore {
    /// Opens (creating) the spool directory and loads what it holds.
    /// Leftover `.tmp` files are removed; a record that does not parse is
    /// moved aside as `.corrupt` with an error log.
    pub fn open(dir: PathBuf, cfg: SpoolConfig) -> io::Result<SpoolStore> {
        fs::create_dir_all(&dir).map_err(|e| {
            io::Error::new(e.kind(), format!("accounting spool {}: {e}", dir.display()))
        })?;
        let mut spool = Spool::new(cfg);
        for entry in fs::read_dir(&dir)? {
            load_file(&mut spool, &entry?.path())?;
        }
        if !spool.is_empty() {
            tracing::info!(
                "accounting spool {}: {} unacknowledged records to resend",
                dir.display(),
                spool.len()
            );
        }
        Ok(SpoolStore { dir, spool })
    }

    /// Writes `rec` durably and returns its sequence number.
    pub fn append(&mut self, rec: &AcctRecord) -> Result<u64, SpoolError> {
        let data = serde_json::to_vec(rec).map_err(|e| SpoolError::Io(io::Error::other(e)))?;
        let seq = match self.spool.reserve(data.len() as u64) {
            Ok(seq) => seq,
            Err(full) => {
                tracing::error!(
                    "{full} in {}: {:?} record of session '{}' is NOT durable \
                     (refused so far: {}); raise the spool bounds or check the RADIUS servers",
                    self.dir.display(),
                    rec.status,
                    rec.session_id,
                    self.spool.refused()
                );
                return Err(full.into());
            }
        };
        write_atomic(&self.dir.join(file_name(seq)), &data).map_err(SpoolError::Io)?;
        self.spool.insert(seq, rec.clone(), data.len() as u64);
        Ok(seq)
    }

    /// Forgets record `seq` and deletes its file.
    pub fn remove(&mut self, seq: u64) -> io::Result<()> {
        if self.spool.remove(seq) {
            self.delete(seq)?;
        }
        Ok(())
    }

    /// Deletes the file of record `seq`, which the spool already let go
    /// ([`super::spool::SpoolEvent::Acked`]).
    pub fn delete(&self, seq: u64) -> io::Result<()> {
        match fs::remove_file(self.dir.join(file_name(seq))) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The records and their policy.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// The records and their policy, to drive.
    pub fn spool_mut(&mut self) -> &mut Spool {
        &mut self.spool
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Loads one directory entry into `spool`: a record, a leftover `.tmp`
/// (removed), a damaged record (set aside) or something else (ignored).
fn load_file(spool: &mut Spool, path: &Path) -> io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".tmp") {
        let _ = fs::remove_file(path);
        return Ok(());
    }
    let Some(seq) = name
        .strip_suffix(".acct")
        .and_then(|stem| stem.parse::<u64>().ok())
    else {
        return Ok(());
    };
    let data = fs::read(path)?;
    match serde_json::from_slice::<AcctRecord>(&data) {
        Ok(r) => spool.load(seq, r, data.len() as u64),
        Err(e) => {
            spool.skip_past(seq);
            let aside = path.with_extension("corrupt");
            tracing::error!(
                "accounting spool: {} is damaged ({e}); moved to {}",
                path.display(),
                aside.display()
            );
            let _ = fs::rename(path, aside);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attrs::{AcctSession, AcctStatus};
    use crate::session::Counters;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "lassi-spool-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn cfg() -> SpoolConfig {
        SpoolConfig {
            max_records: 100,
            max_bytes: 1 << 20,
            retry_ms: 30_000,
            max_in_flight: 32,
        }
    }

    fn sess(id: &str) -> AcctSession {
        AcctSession {
            session_id: id.into(),
            user_name: Some("u".into()),
            ..Default::default()
        }
    }

    fn seqs(s: &SpoolStore) -> Vec<u64> {
        s.spool().iter().map(|(q, _)| q).collect()
    }

    #[test]
    fn survives_reopen_and_ignores_partial_files() {
        let dir = tempdir("reopen");
        let mut s = SpoolStore::open(dir.clone(), cfg()).unwrap();
        let a = s.append(&AcctRecord::start(&sess("a"), 1000)).unwrap();
        let b = s
            .append(&AcctRecord::interim(&sess("a"), &Counters::default(), 2000))
            .unwrap();
        assert!(b > a);
        // A crash in the middle of a write leaves a .tmp; a damaged file
        // is set aside.
        fs::write(dir.join("00000000000000000099.tmp"), b"{\"stat").unwrap();
        fs::write(dir.join("00000000000000000050.acct"), b"{garbage").unwrap();
        drop(s);
        let mut s = SpoolStore::open(dir.clone(), cfg()).unwrap();
        assert_eq!(seqs(&s), vec![a, b]);
        assert!(!dir.join("00000000000000000099.tmp").exists());
        assert!(dir.join("00000000000000000050.corrupt").exists());
        // Sequence numbers continue after the largest seen, damaged included.
        let c = s.append(&AcctRecord::start(&sess("b"), 3000)).unwrap();
        assert_eq!(c, 51);
        s.remove(a).unwrap();
        drop(s);
        let s = SpoolStore::open(dir.clone(), cfg()).unwrap();
        assert_eq!(seqs(&s), vec![b, c]);
        assert_eq!(s.spool().get(b).unwrap().status, AcctStatus::InterimUpdate);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let dir = tempdir("bound");
        let mut c = cfg();
        c.max_records = 3;
        let mut s = SpoolStore::open(dir.clone(), c.clone()).unwrap();
        for i in 0..3 {
            s.append(&AcctRecord::start(&sess("a"), i)).unwrap();
        }
        assert!(matches!(
            s.append(&AcctRecord::start(&sess("a"), 9)),
            Err(SpoolError::Full { records: 3, .. })
        ));
        assert_eq!(s.spool().refused(), 1);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
        let first = s.spool().iter().next().unwrap().0;
        s.remove(first).unwrap();
        s.append(&AcctRecord::start(&sess("a"), 9)).unwrap();
        drop(s);
        c.max_records = 100;
        c.max_bytes = 10;
        let mut s = SpoolStore::open(dir.clone(), c).unwrap();
        assert!(s.spool().bytes() > 10);
        assert!(matches!(
            s.append(&AcctRecord::start(&sess("z"), 1)),
            Err(SpoolError::Full { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_acknowledged_record_loses_its_file() {
        let dir = tempdir("ack");
        let mut s = SpoolStore::open(dir.clone(), cfg()).unwrap();
        let a = s.append(&AcctRecord::start(&sess("a"), 1)).unwrap();
        assert_eq!(s.spool_mut().due(0), vec![a]);
        s.spool_mut().sent(a, 9);
        s.spool_mut().handle_response(9);
        assert_eq!(
            s.spool_mut().poll_event(),
            Some(crate::radius::spool::SpoolEvent::Acked(a))
        );
        assert!(dir.join(file_name(a)).exists());
        s.delete(a).unwrap();
        s.delete(a).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert!(SpoolStore::open(dir.clone(), cfg())
            .unwrap()
            .spool()
            .is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
