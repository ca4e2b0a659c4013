//! The durable accounting spool: every accounting record is written to disk
//! (fsync'd) before it is first sent, and removed only when a server
//! acknowledges it. It survives RADIUS outages and restarts of lassi.
//!
//! Layout: one file per record, `DIR/<sequence, 20 digits>.acct`, JSON,
//! written with [`crate::store::write_atomic`] (temp file, fsync, rename,
//! fsync of the directory). A crash leaves either the whole file or a
//! `.tmp` that is ignored and removed at the next open. Sequence numbers
//! grow monotonically across restarts (the next one follows the largest on
//! disk), so the order of events is the order of the file names.
//!
//! Delivery is at least once: a record acknowledged just before a crash,
//! whose removal had not reached the disk, is sent again.
//!
//! Ordering ([`Spool::sendable`]): records of one session go out one at a
//! time in sequence order (a Stop never leaves before that session's
//! earlier Interims are acknowledged); different sessions proceed in
//! parallel. Accounting-On/Off concern the whole NAS and are barriers:
//! one goes out only when every earlier record is acknowledged, and nothing
//! later goes out before it.
//!
//! The spool is bounded by a record count and a byte total; when full,
//! [`Spool::append`] refuses with [`SpoolError::Full`], logs an error
//! naming the session, and counts it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::attrs::AcctRecord;
use crate::store::write_atomic;

/// Spool location and bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Directory holding the records (created if missing).
    pub dir: PathBuf,
    /// At most this many records.
    pub max_records: usize,
    /// At most this many bytes of records.
    pub max_bytes: u64,
}

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

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full { records, bytes } => write!(
                f,
                "accounting spool full ({records} records, {bytes} bytes)"
            ),
            SpoolError::Io(e) => write!(f, "accounting spool: {e}"),
        }
    }
}

impl std::error::Error for SpoolError {}

/// The spool. See the module documentation.
#[derive(Debug)]
pub struct Spool {
    cfg: SpoolConfig,
    records: BTreeMap<u64, (AcctRecord, u64)>,
    bytes: u64,
    next_seq: u64,
    refused: u64,
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}.acct")
}

impl Spool {
    /// Opens (creating) the spool directory and loads what it holds.
    /// Leftover `.tmp` files are removed; a record that does not parse is
    /// moved aside as `.corrupt` with an error log.
    pub fn open(cfg: SpoolConfig) -> io::Result<Spool> {
        fs::create_dir_all(&cfg.dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("accounting spool {}: {e}", cfg.dir.display()),
            )
        })?;
        let mut records = BTreeMap::new();
        let mut bytes = 0;
        let mut max_seq = 0;
        for entry in fs::read_dir(&cfg.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(stem) = name.strip_suffix(".acct") else {
                continue;
            };
            let Ok(seq) = stem.parse::<u64>() else {
                continue;
            };
            max_seq = max_seq.max(seq);
            let data = fs::read(&path)?;
            match serde_json::from_slice::<AcctRecord>(&data) {
                Ok(r) => {
                    bytes += data.len() as u64;
                    records.insert(seq, (r, data.len() as u64));
                }
                Err(e) => {
                    let aside = path.with_extension("corrupt");
                    tracing::error!(
                        "accounting spool: {} is damaged ({e}); moved to {}",
                        path.display(),
                        aside.display()
                    );
                    let _ = fs::rename(&path, aside);
                }
            }
        }
        if !records.is_empty() {
            tracing::info!(
                "accounting spool {}: {} unacknowledged records to resend",
                cfg.dir.display(),
                records.len()
            );
        }
        Ok(Spool {
            cfg,
            records,
            bytes,
            next_seq: max_seq + 1,
            refused: 0,
        })
    }

    /// Writes `rec` durably and returns its sequence number.
    pub fn append(&mut self, rec: &AcctRecord) -> Result<u64, SpoolError> {
        let data = serde_json::to_vec(rec).map_err(|e| SpoolError::Io(io::Error::other(e)))?;
        if self.records.len() >= self.cfg.max_records
            || self.bytes + data.len() as u64 > self.cfg.max_bytes
        {
            self.refused += 1;
            let err = SpoolError::Full {
                records: self.records.len(),
                bytes: self.bytes,
            };
            tracing::error!(
                "{err} in {}: {:?} record of session '{}' is NOT durable \
                 (refused so far: {}); raise the spool bounds or check the RADIUS servers",
                self.cfg.dir.display(),
                rec.status,
                rec.session_id,
                self.refused
            );
            return Err(err);
        }
        let seq = self.next_seq;
        write_atomic(&self.cfg.dir.join(file_name(seq)), &data).map_err(SpoolError::Io)?;
        self.next_seq += 1;
        self.bytes += data.len() as u64;
        self.records.insert(seq, (rec.clone(), data.len() as u64));
        Ok(seq)
    }

    /// Forgets an acknowledged record (deleting its file).
    pub fn remove(&mut self, seq: u64) -> io::Result<()> {
        if let Some((_, n)) = self.records.remove(&seq) {
            self.bytes -= n;
            match fs::remove_file(self.cfg.dir.join(file_name(seq))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A record by sequence number.
    pub fn get(&self, seq: u64) -> Option<&AcctRecord> {
        self.records.get(&seq).map(|(r, _)| r)
    }

    /// Every record held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &AcctRecord)> {
        self.records.iter().map(|(s, (r, _))| (*s, r))
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records refused because the spool was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Records that may be sent now, oldest first, given which ones are
    /// `busy` (in flight or waiting for a retry): for each session its
    /// oldest record, unless busy; Accounting-On/Off only when first.
    pub fn sendable(&self, busy: impl Fn(u64) -> bool) -> Vec<u64> {
        let mut out = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, (&seq, (rec, _))) in self.records.iter().enumerate() {
            if rec.is_nas_wide() {
                if i == 0 && !busy(seq) {
                    out.push(seq);
                }
                break;
            }
            if !seen.insert(rec.session_id.as_str()) {
                continue;
            }
            if !busy(seq) {
                out.push(seq);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::attrs::{AcctSession, AcctStatus, TerminateCause};
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

    fn cfg(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_records: 100,
            max_bytes: 1 << 20,
        }
    }

    fn sess(id: &str) -> AcctSession {
        AcctSession {
            session_id: id.into(),
            user_name: Some("u".into()),
            ..Default::default()
        }
    }

    #[test]
    fn survives_reopen_and_ignores_partial_files() {
        let dir = tempdir("reopen");
        let mut s = Spool::open(cfg(&dir)).unwrap();
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
        let mut s = Spool::open(cfg(&dir)).unwrap();
        assert_eq!(s.iter().map(|(q, _)| q).collect::<Vec<_>>(), vec![a, b]);
        assert!(!dir.join("00000000000000000099.tmp").exists());
        assert!(dir.join("00000000000000000050.corrupt").exists());
        // Sequence numbers continue after the largest seen, damaged included.
        let c = s.append(&AcctRecord::start(&sess("b"), 3000)).unwrap();
        assert_eq!(c, 51);
        s.remove(a).unwrap();
        drop(s);
        let s = Spool::open(cfg(&dir)).unwrap();
        assert_eq!(s.iter().map(|(q, _)| q).collect::<Vec<_>>(), vec![b, c]);
        assert_eq!(s.get(b).unwrap().status, AcctStatus::InterimUpdate);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn per_session_order_and_barriers() {
        let dir = tempdir("order");
        let mut s = Spool::open(cfg(&dir)).unwrap();
        let c0 = Counters::default();
        let on = s
            .append(&AcctRecord::nas(AcctStatus::AccountingOn, 0))
            .unwrap();
        let a1 = s.append(&AcctRecord::start(&sess("a"), 1)).unwrap();
        let b1 = s.append(&AcctRecord::start(&sess("b"), 2)).unwrap();
        let a2 = s.append(&AcctRecord::interim(&sess("a"), &c0, 3)).unwrap();
        let a3 = s
            .append(&AcctRecord::stop(
                &sess("a"),
                &c0,
                TerminateCause::UserRequest,
                4,
            ))
            .unwrap();
        let off = s
            .append(&AcctRecord::nas(AcctStatus::AccountingOff, 5))
            .unwrap();
        let b2 = s.append(&AcctRecord::start(&sess("b"), 6)).unwrap();
        let none = |_| false;
        // The barrier goes alone.
        assert_eq!(s.sendable(none), vec![on]);
        assert_eq!(s.sendable(|q| q == on), Vec::<u64>::new());
        s.remove(on).unwrap();
        // One per session, oldest first; nothing past the Off barrier.
        assert_eq!(s.sendable(none), vec![a1, b1]);
        // While a1 is in flight, a2 and a3 wait.
        assert_eq!(s.sendable(|q| q == a1), vec![b1]);
        s.remove(a1).unwrap();
        assert_eq!(s.sendable(|q| q == b1), vec![a2]);
        s.remove(a2).unwrap();
        s.remove(b1).unwrap();
        assert_eq!(s.sendable(none), vec![a3]);
        s.remove(a3).unwrap();
        assert_eq!(s.sendable(none), vec![off]);
        s.remove(off).unwrap();
        assert_eq!(s.sendable(none), vec![b2]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let dir = tempdir("bound");
        let mut c = cfg(&dir);
        c.max_records = 3;
        let mut s = Spool::open(c.clone()).unwrap();
        for i in 0..3 {
            s.append(&AcctRecord::start(&sess("a"), i)).unwrap();
        }
        assert!(matches!(
            s.append(&AcctRecord::start(&sess("a"), 9)),
            Err(SpoolError::Full { records: 3, .. })
        ));
        assert_eq!(s.refused(), 1);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
        let first = s.iter().next().unwrap().0;
        s.remove(first).unwrap();
        s.append(&AcctRecord::start(&sess("a"), 9)).unwrap();
        drop(s);
        c.max_records = 100;
        c.max_bytes = 10;
        let mut s = Spool::open(c).unwrap();
        assert!(s.bytes() > 10);
        assert!(matches!(
            s.append(&AcctRecord::start(&sess("z"), 1)),
            Err(SpoolError::Full { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
