//! Applying committed entries to a group's state machine.
//!
//! A group's application state lives in one sled tree shared by all groups of its kind, under the
//! 8-byte big-endian group id prefix. Keys whose first byte after the prefix is 0x00 belong to
//! this adapter (the applied log id and membership); a state machine uses any other first byte.
//! Each `apply` call writes its entries' effects and the new applied log id in one sled batch, so
//! a restart never sees one without the other; the log replays anything after it.
//!
//! Snapshots are every key under the group's prefix, which keeps snapshot and install generic
//! over the state machine.

use std::io;

use futures::TryStreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use streamd_storage::sled;
use streamd_storage::{group_key, group_prefix};

use crate::type_config::{LogId, Reply, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

const APPLIED_KEY: &[u8] = &[0x00, b'a'];

/// A group's replicated state machine.
///
/// Contract: `apply` is deterministic (same entries, same effects and replies on every replica),
/// puts every durable effect into `batch`, and keeps in-memory state that `reload` can rebuild
/// from the tree alone.
pub trait GroupStateMachine: Send + Sync + 'static {
    /// Applies one committed command at `index`; returns the reply for the proposer.
    fn apply(&mut self, index: u64, command: &[u8], batch: &mut sled::Batch) -> Vec<u8>;

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
    current: Option<(SnapshotMeta, Vec<u8>)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AppliedState {
    applied: Option<LogId>,
    membership: StoredMembership,
}

impl StateMachineAdapter {
    pub(crate) fn open(
        group: u64,
        db: streamd_storage::SledStore,
        tree: sled::Tree,
        mut sm: Box<dyn GroupStateMachine>,
    ) -> io::Result<Self> {
        let (applied, membership) = match tree
            .get(group_key(group, APPLIED_KEY))
            .map_err(io::Error::other)?
        {
            Some(v) => {
                let s: AppliedState = bincode::deserialize(&v).map_err(io::Error::other)?;
                (s.applied, s.membership)
            }
            None => (None, StoredMembership::default()),
        };
        sm.reload(&tree)?;
        Ok(StateMachineAdapter {
            group,
            tree,
            db,
            sm,
            applied,
            membership,
            current: None,
        })
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

    fn dump(&self) -> io::Result<Vec<u8>> {
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for kv in self.tree.scan_prefix(group_prefix(self.group)) {
            let (k, v) = kv.map_err(io::Error::other)?;
            pairs.push((k.to_vec(), v.to_vec()));
        }
        bincode::serialize(&pairs).map_err(io::Error::other)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineAdapter {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        // The log is purged up to this snapshot afterwards, so what it covers must be durable
        // in sled's files first: after a power cut the state machine must not be older than the
        // log's start, or the entries between would be skipped on this replica.
        self.db.flush_durable().map_err(io::Error::from)?;
        let data = self.dump()?;
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        self.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineAdapter {
    type SnapshotData = Vec<u8>;
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
        while let Some((entry, responder)) = entries.try_next().await? {
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
        batch.insert(group_key(self.group, APPLIED_KEY), self.applied_record()?);
        self.tree.apply_batch(batch).map_err(io::Error::other)?;
        self.sm.applied();
        for (r, reply) in replies {
            r.send(Reply(reply));
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
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            bincode::deserialize(&snapshot).map_err(io::Error::other)?;
        let mut batch = sled::Batch::default();
        for kv in self.tree.scan_prefix(group_prefix(self.group)) {
            let (k, _) = kv.map_err(io::Error::other)?;
            batch.remove(k);
        }
        let prefix = group_prefix(self.group);
        for (k, v) in pairs {
            // A snapshot of another group must never write outside this group's keys.
            if k.starts_with(&prefix) {
                batch.insert(k, v);
            }
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        batch.insert(group_key(self.group, APPLIED_KEY), self.applied_record()?);
        self.tree.apply_batch(batch).map_err(io::Error::other)?;
        // openraft purges the log up to the snapshot next; the same reasoning as in
        // `build_snapshot`.
        self.db.flush_durable().map_err(io::Error::from)?;
        self.sm.reload(&self.tree)?;
        self.sm.applied();
        self.current = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.current.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: data.clone(),
        }))
    }
}

/// A snapshot already taken by the adapter, handed to openraft's builder task.
pub(crate) struct SnapshotView {
    snapshot: Option<Result<Snapshot, io::Error>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotView {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        self.snapshot
            .take()
            .unwrap_or_else(|| Err(io::Error::other("snapshot already taken")))
    }
}
