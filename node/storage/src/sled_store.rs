//! A thin wrapper over one `sled::Db`, with helpers for keys scoped to a Raft group.
//!
//! sled's `flush` is not power-safe: it writes with `sync_file_range`, which does not flush
//! file metadata or the drive's cache (sled#1452), and it never fsyncs its `conf` file. So the
//! write-ahead log in [`crate::wal`] is the source of truth: state machines kept in sled are
//! rebuilt by replaying the log, and callers purge log entries only below what
//! [`SledStore::flush_durable`] has made durable.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::StorageError;

/// One sled database, shared by every group of a node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
}

impl SledStore {
    /// Opens (creating if needed) the sled database at `path`. Damaged files are
    /// `SledCorrupt`, whether sled refuses them or panics on them: sled 0.34 unwraps some of
    /// what it decodes while recovering, and a node must stop with the reason, not a panic.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let dir = path.as_ref();
        let corrupt = |reason: String| StorageError::SledCorrupt {
            path: dir.display().to_string(),
            reason,
        };
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sled::open(dir)));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(sled::Error::Io(e))) => return Err(StorageError::Sled(sled::Error::Io(e))),
            Ok(Err(e)) => return Err(corrupt(e.to_string())),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "no message".into());
                return Err(corrupt(format!("sled panicked while loading it: {what}")));
            }
        };
        Ok(SledStore {
            db,
            path: path.as_ref().to_path_buf(),
        })
    }

    /// Opens (creating if needed) the named tree.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StorageError> {
        Ok(self.db.open_tree(name)?)
    }

    /// sled's flush: waits until everything written so far has been handed to the OS.
    /// Not power-safe (see the module doc).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        Ok(())
    }

    /// sled's flush, then an fsync of every file and directory sled keeps, so that everything
    /// written before the call survives a power cut. Slow (whole files): for the rare points
    /// where the Raft log is purged behind the state machine (snapshots), not per write.
    pub fn flush_durable(&self) -> Result<(), StorageError> {
        self.db.flush()?;
        sync_tree(&self.path)
            .map_err(|e| StorageError::io(format!("syncing {}", self.path.display()), e))
    }

    /// The wrapped database, for anything this wrapper does not cover.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

/// fsyncs every regular file under `dir`, then each directory after its contents, so new
/// names are durable too.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            // sled replaces its snapshot files while running; one gone since the listing is
            // no longer part of the database.
            match File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    File::open(dir)?.sync_all()
}

/// `group` as 8 big-endian bytes followed by `suffix`: keys of one group sort together and
/// groups sort numerically.
pub fn group_key(group: u64, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + suffix.len());
    key.extend_from_slice(&group_prefix(group));
    key.extend_from_slice(suffix);
    key
}

/// The prefix shared by every [`group_key`] of `group` (for `scan_prefix`).
pub fn group_prefix(group: u64) -> [u8; 8] {
    group.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_group_then_suffix() {
        assert_eq!(
            group_key(1, b"ab"),
            vec![0, 0, 0, 0, 0, 0, 0, 1, b'a', b'b']
        );
        assert!(group_key(1, b"zz") < group_key(2, b""));
        assert!(group_key(255, b"") < group_key(256, b""));
        assert!(group_key(7, b"x").starts_with(&group_prefix(7)));
    }

    #[test]
    fn a_damaged_database_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = SledStore::open(&path).unwrap();
            store.tree("kv").unwrap().insert(b"k", b"v").unwrap();
            store.flush_durable().unwrap();
        }
        std::fs::write(path.join("conf"), b"\xff\xfe not a sled configuration").unwrap();
        match SledStore::open(&path) {
            Err(e @ StorageError::SledCorrupt { .. }) => {
                assert!(e.to_string().starts_with("corrupt sled database in"), "{e}")
            }
            Err(e) => panic!("expected SledCorrupt, got {e}"),
            Ok(_) => panic!("a damaged configuration was accepted"),
        }
    }

    #[test]
    fn open_tree_write_flush_scan() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path().join("db")).unwrap();
        let tree = store.tree("kv").unwrap();
        tree.insert(group_key(3, b"k"), b"v".to_vec()).unwrap();
        tree.insert(group_key(4, b"k"), b"w".to_vec()).unwrap();
        store.flush().unwrap();
        store.flush_durable().unwrap();
        // A clone shares the database.
        let tree = store.clone().tree("kv").unwrap();
        let got: Vec<_> = tree
            .scan_prefix(group_prefix(3))
            .map(|kv| kv.unwrap().1.to_vec())
            .collect();
        assert_eq!(got, vec![b"v".to_vec()]);
    }
}
