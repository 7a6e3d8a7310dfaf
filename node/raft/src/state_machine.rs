//! Applying committed entries to a group's state machine.
//!
//! A group's application state lives in one sled tree shared by all groups of its kind, under the
//! 8-byte big-endian group id prefix. Keys whose first byte after the prefix is 0x00 belong to
//! this adapter (the applied log id and membership); a state machine uses any other first byte.
//! Each `apply` call writes its entries' effects and the new applied log id in one sled batch, so
//! a restart never sees one without the other; the log replays anything after it.
//!
//! Snapshots are every key under the group's prefix, which keeps snapshot and install generic
//! over the state machine. They are files (`snapshot_file.rs`): built by streaming the tree,
//! installed in bounded sled batches. An install is not one sled batch, so it is made
//! restartable instead: the received file is kept under a fixed name and a marker key records
//! what is being installed; a node that stops half-way finishes the install when it reopens the
//! group, before anything reads the half-written state.

use std::io;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use streamd_storage::sled;
use streamd_storage::{group_key, group_prefix};

use crate::snapshot_file::{SnapshotFile, SnapshotWriter};
use crate::type_config::{LogId, Reply, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

const APPLIED_KEY: &[u8] = &[0x00, b'a'];
/// Present while a snapshot install is under way; holds the install's [`AppliedState`].
const INSTALLING_KEY: &[u8] = &[0x00, b'i'];
/// Largest sled batch an install writes at once.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// A group's replicated state machine.
///
/// Contract: `apply` is deterministic (same entries, same effects and replies on every replica),
/// puts every durable effect into `batch`, and keeps in-memory state that `reload` can rebuild
/// from the tree alone.
pub trait GroupStateMachine: Send + Sync + 'static {
    /// Applies one committed command at `index`; returns the reply for the proposer.
    fn apply(&mut self, index: u64, command: &[u8], batch: &mut sled::Batch) -> Vec<u8>;

    /// Called once per batch of applied entries, before the batch is written: state kept in
    /// memory and stored in rows of its own is written here once per batch, not per entry.
    fn persist(&mut self, _batch: &mut sled::Batch) {}

    /// Called after a batch of applied entries is written to sled.
    fn applied(&mut self) {}

    /// Rebuilds in-memory state from the tree (at start-up and after a snapshot install).
    fn reload(&mut self, tree: &sled::Tree) -> io::Result<()>;
}

pub(crate) struct StateMachineAdapter {
    group: u64,
    tree: sled::Tree,
    db: streamd_storage::SledStore,
    sm: Box<dyn GroupStateMachine>,
    applied: Option<LogId>,
    membership: StoredMembership,
    /// Where this node keeps snapshot files (shared by every group; names carry the group).
    snapshot_dir: PathBuf,
    /// The latest snapshot built or installed since start: its meta and file.
    current: Option<(SnapshotMeta, SnapshotFile)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AppliedState {
    applied: Option<LogId>,
    membership: StoredMembership,
}

/// The file an interrupted install resumes from.
pub(crate) fn installing_path(dir: &Path, group: u64) -> PathBuf {
    dir.join(format!("group-{group}.installing.snap"))
}

/// The file of a snapshot built or installed on this node.
fn snapshot_path(dir: &Path, group: u64, meta: &SnapshotMeta) -> PathBuf {
    dir.join(format!(
        "group-{group}-{}.snap",
        meta.last_log_id.as_ref().map_or(0, |l| l.index())
    ))
}

/// A file for receiving a snapshot of `group` from its leader.
pub(crate) fn receiving_path(dir: &Path, group: u64) -> PathBuf {
    dir.join(format!(
        "group-{group}.receiving-{:016x}.snap",
        rand_suffix()
    ))
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    // Only needs to differ between concurrent receipts of one group on one node.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The last applied index the state machine of `group` stored in `tree`, counting an
/// interrupted snapshot install as done (opening the group finishes it).
pub(crate) fn stored_applied_index(tree: &sled::Tree, group: u64) -> io::Result<Option<u64>> {
    for key in [INSTALLING_KEY, APPLIED_KEY] {
        if let Some(v) = tree.get(group_key(group, key)).map_err(io::Error::other)? {
            let s: AppliedState = bincode::deserialize(&v).map_err(io::Error::other)?;
            return Ok(s.applied.map(|l| l.index()));
        }
    }
    Ok(None)
}

/// A state machine older than the start of its log: the entries between are gone from this
/// node (sled recovers a damaged file by dropping what follows the damage).
pub(crate) fn behind_log(group: u64, applied: Option<u64>, purged: Option<u64>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "corrupt state of group {group}: its state machine (applied up to {applied:?}) is \
             older than the start of its log (purged up to {purged:?}), so the entries between \
             are gone from this node; replace the node, its replicas are rebuilt from their peers"
        ),
    )
}

impl StateMachineAdapter {
    pub(crate) fn open(
        group: u64,
        db: streamd_storage::SledStore,
        tree: sled::Tree,
        sm: Box<dyn GroupStateMachine>,
        snapshot_dir: &Path,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(snapshot_dir)?;
        let mut adapter = StateMachineAdapter {
            group,
            tree,
            db,
            sm,
            applied: None,
            membership: StoredMembership::default(),
            snapshot_dir: snapshot_dir.to_path_buf(),
            current: None,
        };
        adapter.remove_stale_files()?;
        if let Some(v) = adapter
            .tree
            .get(group_key(group, INSTALLING_KEY))
            .map_err(io::Error::other)?
        {
            let state: AppliedState = bincode::deserialize(&v).map_err(io::Error::other)?;
            let path = installing_path(snapshot_dir, group);
            let file = SnapshotFile::open(&path).map_err(|e| {
                io::Error::other(format!(
                    "group {group}: a snapshot install was interrupted and its file {} cannot \
                     be opened ({e}); this replica must be rebuilt from its peers",
                    path.display()
                ))
            })?;
            tracing::warn!(
                group_id = group,
                "finishing an interrupted snapshot install"
            );
            adapter.write_snapshot_state(&file, &state)?;
            let _ = std::fs::remove_file(&path);
        }
        let (applied, membership) = match adapter
            .tree
            .get(group_key(group, APPLIED_KEY))
            .map_err(io::Error::other)?
        {
            Some(v) => {
                let s: AppliedState = bincode::deserialize(&v).map_err(io::Error::other)?;
                (s.applied, s.membership)
            }
            None => (None, StoredMembership::default()),
        };
        adapter.applied = applied;
        adapter.membership = membership;
        adapter.sm.reload(&adapter.tree)?;
        Ok(adapter)
    }

    /// Snapshot files of this group left by an earlier run: built snapshots are rebuilt when
    /// needed, receipts that did not finish are useless. The installing file is kept.
    fn remove_stale_files(&self) -> io::Result<()> {
        let prefix = format!("group-{}", self.group);
        let keep = installing_path(&self.snapshot_dir, self.group);
        for entry in std::fs::read_dir(&self.snapshot_dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let ours = name
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'));
            if ours && path != keep {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }

    /// Index of the last applied entry, if any.
    pub(crate) fn applied_index(&self) -> Option<u64> {
        self.applied.as_ref().map(|l| l.index())
    }

    fn applied_record(&self) -> io::Result<Vec<u8>> {
        let s = AppliedState {
            applied: self.applied,
            membership: self.membership.clone(),
        };
        bincode::serialize(&s).map_err(io::Error::other)
    }

    /// Replaces every key of the group by the snapshot's pairs, in bounded batches, and ends
    /// with the snapshot's applied state (clearing the install marker). Idempotent, so an
    /// interrupted install is finished by running it again.
    fn write_snapshot_state(&self, file: &SnapshotFile, state: &AppliedState) -> io::Result<()> {
        let marker = group_key(self.group, INSTALLING_KEY);
        let mut batch = sled::Batch::default();
        let mut bytes = 0usize;
        for kv in self.tree.scan_prefix(group_prefix(self.group)) {
            let (k, _) = kv.map_err(io::Error::other)?;
            if k.as_ref() == marker.as_slice() {
                continue;
            }
            bytes += k.len();
            batch.remove(k);
            if bytes >= INSTALL_BATCH_BYTES {
                self.tree
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(io::Error::other)?;
                bytes = 0;
            }
        }
        let prefix = group_prefix(self.group);
        let mut pairs = file.pairs()?;
        while let Some((k, v)) = pairs.next_pair()? {
            // A snapshot of another group, or one carrying the adapter's own keys, must never
            // write outside this group's keys or over its bookkeeping.
            if !k.starts_with(&prefix) || k.get(8) == Some(&0x00) {
                continue;
            }
            bytes += k.len() + v.len();
            batch.insert(k, v);
            if bytes >= INSTALL_BATCH_BYTES {
                self.tree
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(io::Error::other)?;
                bytes = 0;
            }
        }
        batch.insert(
            group_key(self.group, APPLIED_KEY),
            bincode::serialize(state).map_err(io::Error::other)?,
        );
        batch.remove(marker);
        self.tree.apply_batch(batch).map_err(io::Error::other)?;
        // openraft purges the log up to the snapshot next: the state must be durable first.
        self.db.flush_durable().map_err(io::Error::from)?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineAdapter {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        // The log is purged up to this snapshot afterwards, so what it covers must be durable
        // in sled's files first: after a power cut the state machine must not be older than the
        // log's start, or the entries between would be skipped on this replica.
        self.db.flush_durable().map_err(io::Error::from)?;
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        let path = snapshot_path(&self.snapshot_dir, self.group, &meta);
        let mut w = SnapshotWriter::create(&path)?;
        for kv in self.tree.scan_prefix(group_prefix(self.group)) {
            let (k, v) = kv.map_err(io::Error::other)?;
            w.push(&k, &v)?;
        }
        let file = w.finish()?;
        self.replace_current(meta.clone(), file.reopen()?);
        Ok(Snapshot {
            meta,
            snapshot: file,
        })
    }
}

impl StateMachineAdapter {
    /// Makes `file` the current snapshot, removing the previous one's file. Readers that still
    /// hold the old file (a snapshot being sent) keep reading it: it is only unlinked.
    fn replace_current(&mut self, meta: SnapshotMeta, file: SnapshotFile) {
        if let Some((_, old)) = self.current.take()
            && old.path() != file.path()
        {
            let _ = std::fs::remove_file(old.path());
        }
        self.current = Some((meta, file));
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineAdapter {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotView;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut replies = Vec::new();
        let mut started = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            // From the first entry on: waiting for the stream to yield it is not applying.
            started.get_or_insert_with(std::time::Instant::now);
            let reply = match &entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(cmd) => {
                    self.sm.apply(entry.log_id.index(), &cmd.0, &mut batch)
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    Vec::new()
                }
            };
            self.applied = Some(entry.log_id);
            if let Some(r) = responder {
                replies.push((r, reply));
            }
        }
        self.sm.persist(&mut batch);
        batch.insert(group_key(self.group, APPLIED_KEY), self.applied_record()?);
        self.tree.apply_batch(batch).map_err(io::Error::other)?;
        self.sm.applied();
        for (r, reply) in replies {
            r.send(Reply(reply));
        }
        if let Some(started) = started {
            crate::hops::observe(crate::hops::Hop::Apply, started);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Building copies the state while this adapter holds it, so the builder is a finished view.
        let snapshot = self.build_snapshot().await;
        SnapshotView {
            snapshot: Some(snapshot),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        // Nothing is touched before the whole file is known to be intact.
        let pairs = snapshot.verify()?;
        let installing = installing_path(&self.snapshot_dir, self.group);
        std::fs::rename(snapshot.path(), &installing)?;
        crate::snapshot_file::sync_dir(&installing)?;
        let file = SnapshotFile::open(&installing)?;
        let state = AppliedState {
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.tree
            .insert(
                group_key(self.group, INSTALLING_KEY),
                bincode::serialize(&state).map_err(io::Error::other)?,
            )
            .map_err(io::Error::other)?;
        self.db.flush_durable().map_err(io::Error::from)?;
        self.write_snapshot_state(&file, &state)?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.sm.reload(&self.tree)?;
        self.sm.applied();
        // Kept as the current snapshot, to pass on to a replica further behind.
        let path = snapshot_path(&self.snapshot_dir, self.group, meta);
        std::fs::rename(&installing, &path)?;
        let file = SnapshotFile::open(&path)?;
        tracing::info!(
            group_id = self.group,
            last_log_id = ?meta.last_log_id,
            pairs,
            bytes = file.len(),
            "installed a snapshot"
        );
        self.replace_current(meta.clone(), file);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        match &self.current {
            None => Ok(None),
            Some((meta, file)) => Ok(Some(Snapshot {
                meta: meta.clone(),
                snapshot: file.reopen()?,
            })),
        }
    }
}

/// A snapshot already taken by the adapter, handed to openraft's builder task.
pub(crate) struct SnapshotView {
    snapshot: Option<Result<Snapshot, io::Error>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotView {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        self.snapshot
            .take()
            .unwrap_or_else(|| Err(io::Error::other("snapshot already taken")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps nothing in memory: the tree is the whole state.
    struct Plain;

    impl GroupStateMachine for Plain {
        fn apply(&mut self, _: u64, _: &[u8], _: &mut sled::Batch) -> Vec<u8> {
            Vec::new()
        }
        fn reload(&mut self, _: &sled::Tree) -> io::Result<()> {
            Ok(())
        }
    }

    const GROUP: u64 = 7;

    fn open(dir: &Path) -> (StateMachineAdapter, sled::Tree) {
        let db = streamd_storage::SledStore::open(dir.join("sled")).unwrap();
        let tree = db.tree("t").unwrap();
        let sm = StateMachineAdapter::open(
            GROUP,
            db,
            tree.clone(),
            Box::new(Plain),
            &dir.join("snapshots"),
        );
        (sm.unwrap(), tree)
    }

    fn user_keys(tree: &sled::Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        tree.scan_prefix(group_prefix(GROUP))
            .map(|kv| kv.unwrap())
            .filter(|(k, _)| k.get(8) != Some(&0x00))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    /// A built snapshot of keys a0..a99 (with values big enough to need several batches).
    async fn built(dir: &Path) -> (Snapshot, Vec<(Vec<u8>, Vec<u8>)>) {
        let (mut sm, tree) = open(dir);
        for i in 0..100u32 {
            let key = group_key(GROUP, format!("a{i:03}").as_bytes());
            tree.insert(key, vec![i as u8; 100_000]).unwrap();
        }
        let snap = sm.build_snapshot().await.unwrap();
        (snap, user_keys(&tree))
    }

    #[tokio::test]
    async fn an_install_replaces_the_state_and_survives_as_the_current_snapshot() {
        let src = tempfile::tempdir().unwrap();
        let (snap, expected) = built(src.path()).await;
        let dst = tempfile::tempdir().unwrap();
        let (mut sm, tree) = open(dst.path());
        tree.insert(group_key(GROUP, b"old"), b"x".to_vec())
            .unwrap();
        tree.insert(group_key(GROUP + 1, b"other group"), b"y".to_vec())
            .unwrap();
        // As a follower receives it: a file in its own snapshot directory.
        let received = receiving_path(&dst.path().join("snapshots"), GROUP);
        std::fs::copy(snap.snapshot.path(), &received).unwrap();
        let file = SnapshotFile::open(&received).unwrap();
        sm.install_snapshot(&snap.meta, file).await.unwrap();
        assert_eq!(user_keys(&tree), expected);
        assert!(
            tree.get(group_key(GROUP + 1, b"other group"))
                .unwrap()
                .is_some()
        );
        assert!(
            tree.get(group_key(GROUP, INSTALLING_KEY))
                .unwrap()
                .is_none()
        );
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.snapshot.verify().unwrap(), expected.len() as u64);
    }

    #[tokio::test]
    async fn an_interrupted_install_is_finished_when_the_group_reopens() {
        let src = tempfile::tempdir().unwrap();
        let (snap, expected) = built(src.path()).await;
        let dst = tempfile::tempdir().unwrap();
        {
            let (_sm, tree) = open(dst.path());
            // Stopped half-way: the marker is down, some old keys are gone, some new ones in.
            let state = AppliedState {
                applied: snap.meta.last_log_id,
                membership: snap.meta.last_membership.clone(),
            };
            tree.insert(
                group_key(GROUP, INSTALLING_KEY),
                bincode::serialize(&state).unwrap(),
            )
            .unwrap();
            tree.insert(group_key(GROUP, b"stale"), b"old".to_vec())
                .unwrap();
            tree.insert(group_key(GROUP, b"a000"), b"half".to_vec())
                .unwrap();
            std::fs::copy(
                snap.snapshot.path(),
                installing_path(&dst.path().join("snapshots"), GROUP),
            )
            .unwrap();
        }
        let (_sm, tree) = open(dst.path());
        assert_eq!(user_keys(&tree), expected);
        assert!(
            tree.get(group_key(GROUP, INSTALLING_KEY))
                .unwrap()
                .is_none()
        );
        assert!(!installing_path(&dst.path().join("snapshots"), GROUP).exists());
    }

    #[tokio::test]
    async fn an_interrupted_install_without_its_file_refuses_to_open() {
        let dst = tempfile::tempdir().unwrap();
        {
            let (_sm, tree) = open(dst.path());
            let state = AppliedState {
                applied: None,
                membership: StoredMembership::default(),
            };
            tree.insert(
                group_key(GROUP, INSTALLING_KEY),
                bincode::serialize(&state).unwrap(),
            )
            .unwrap();
        }
        let db = streamd_storage::SledStore::open(dst.path().join("sled")).unwrap();
        let tree = db.tree("t").unwrap();
        let err = StateMachineAdapter::open(
            GROUP,
            db,
            tree,
            Box::new(Plain),
            &dst.path().join("snapshots"),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("must be rebuilt"), "{err}");
    }

    #[tokio::test]
    async fn a_damaged_snapshot_is_refused_before_anything_changes() {
        let src = tempfile::tempdir().unwrap();
        let (snap, _) = built(src.path()).await;
        let dst = tempfile::tempdir().unwrap();
        let (mut sm, tree) = open(dst.path());
        tree.insert(group_key(GROUP, b"old"), b"x".to_vec())
            .unwrap();
        let received = receiving_path(&dst.path().join("snapshots"), GROUP);
        let mut bytes = std::fs::read(snap.snapshot.path()).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 1;
        std::fs::write(&received, bytes).unwrap();
        let file = SnapshotFile::open(&received).unwrap();
        assert!(sm.install_snapshot(&snap.meta, file).await.is_err());
        assert_eq!(
            user_keys(&tree),
            vec![(group_key(GROUP, b"old"), b"x".to_vec())]
        );
    }
}
