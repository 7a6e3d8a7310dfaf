//! The metadata group's Raft state machine and request service.
//!
//! The whole [`MetaState`] lives in memory. On disk it is one row per stream (its shard map,
//! consumers and settings) plus one row for everything else; an applied batch rewrites only the
//! rows of the streams it changed, so creating thousands of shards does not rewrite every shard
//! map once per command.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::RwLock;
use streamd_proto::ApiError;
use streamd_raft::{GroupHandle, GroupService, GroupStateMachine};
use streamd_storage::{group_key, sled};
use tokio::sync::watch;

use crate::commands::{MetaCommand, MetaResult};
use crate::state::{MetaState, StreamMeta};

/// The sled tree holding the metadata group's state.
pub const META_TREE: &str = "meta";
/// The whole state in one row, as older data directories hold it: read once, then replaced by
/// the rows below.
const WHOLE_STATE_KEY: &[u8] = &[0x01];
/// Everything but the streams.
const CORE_KEY: &[u8] = &[0x02];
/// Followed by a stream's name: that stream.
const STREAM_KEY: u8 = 0x03;

fn stream_key(name: &str) -> Vec<u8> {
    let mut suffix = Vec::with_capacity(1 + name.len());
    suffix.push(STREAM_KEY);
    suffix.extend_from_slice(name.as_bytes());
    group_key(streamd_raft::META_GROUP, &suffix)
}

pub struct MetaStateMachine {
    working: MetaState,
    published: Arc<RwLock<MetaState>>,
    notify: watch::Sender<u64>,
    changes: u64,
    /// The streams as their rows hold them: a stream whose pointer differs was changed since.
    persisted: BTreeMap<String, Arc<StreamMeta>>,
    /// Commands applied since the rows were last written.
    dirty: bool,
    /// The state was read from [`WHOLE_STATE_KEY`], which the next write removes.
    whole_row: bool,
}

impl MetaStateMachine {
    pub fn new(published: Arc<RwLock<MetaState>>, notify: watch::Sender<u64>) -> Self {
        MetaStateMachine {
            working: MetaState::default(),
            published,
            notify,
            changes: 0,
            persisted: BTreeMap::new(),
            dirty: false,
            whole_row: false,
        }
    }
}

impl GroupStateMachine for MetaStateMachine {
    fn apply(&mut self, _index: u64, command: &[u8], _batch: &mut sled::Batch) -> Vec<u8> {
        let result: MetaResult = match bincode::deserialize::<MetaCommand>(command) {
            Ok(cmd) => self.working.apply(cmd),
            Err(e) => Err((
                "InternalFailure".into(),
                format!("undecodable metadata command: {e}"),
            )),
        };
        self.dirty = true;
        self.changes += 1;
        bincode::serialize(&result).unwrap_or_default()
    }

    fn persist(&mut self, batch: &mut sled::Batch) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        for (name, stream) in &self.working.streams {
            if self
                .persisted
                .get(name)
                .is_some_and(|p| Arc::ptr_eq(p, stream))
            {
                continue;
            }
            if let Ok(row) = bincode::serialize(&**stream) {
                batch.insert(stream_key(name), row);
            }
        }
        for name in self.persisted.keys() {
            if !self.working.streams.contains_key(name) {
                batch.remove(stream_key(name));
            }
        }
        self.persisted = self.working.streams.clone();
        // The rest is small (nodes, policies, leases): written whole, without the streams.
        let streams = std::mem::take(&mut self.working.streams);
        if let Ok(row) = bincode::serialize(&self.working) {
            batch.insert(group_key(streamd_raft::META_GROUP, CORE_KEY), row);
        }
        self.working.streams = streams;
        if std::mem::take(&mut self.whole_row) {
            batch.remove(group_key(streamd_raft::META_GROUP, WHOLE_STATE_KEY));
        }
    }

    fn applied(&mut self) {
        *self.published.write() = self.working.clone();
        self.notify.send_replace(self.changes);
    }

    fn reload(&mut self, tree: &sled::Tree) -> io::Result<()> {
        let whole = tree
            .get(group_key(streamd_raft::META_GROUP, WHOLE_STATE_KEY))
            .map_err(io::Error::other)?;
        let core = tree
            .get(group_key(streamd_raft::META_GROUP, CORE_KEY))
            .map_err(io::Error::other)?;
        self.whole_row = whole.is_some();
        self.working = match (core, whole) {
            (Some(v), _) => {
                let mut state: MetaState = bincode::deserialize(&v).map_err(io::Error::other)?;
                let prefix = group_key(streamd_raft::META_GROUP, &[STREAM_KEY]);
                for row in tree.scan_prefix(&prefix) {
                    let (_, v) = row.map_err(io::Error::other)?;
                    let stream: StreamMeta = bincode::deserialize(&v).map_err(io::Error::other)?;
                    state.streams.insert(stream.name.clone(), Arc::new(stream));
                }
                state
            }
            (None, Some(v)) => bincode::deserialize(&v).map_err(io::Error::other)?,
            (None, None) => MetaState::default(),
        };
        // Rows of a state read whole are written at the next batch.
        self.persisted = if self.whole_row {
            BTreeMap::new()
        } else {
            self.working.streams.clone()
        };
        self.dirty = self.whole_row;
        self.changes += 1;
        self.applied();
        Ok(())
    }
}

/// Requests to the metadata group: commands proposed on its leader, and the state for queries.
pub struct MetaService {
    state: Arc<RwLock<MetaState>>,
}

impl MetaService {
    pub fn new(state: Arc<RwLock<MetaState>>) -> Self {
        MetaService { state }
    }
}

impl GroupService for MetaService {
    fn propose(
        &self,
        handle: GroupHandle,
        request: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, ApiError>> + Send + 'static>> {
        Box::pin(async move {
            let status = handle.status();
            if !status.is_leader {
                return Err(ApiError::not_leader(status.leader));
            }
            handle
                .propose(stamp_leader_clock(request))
                .await
                .map_err(ApiError::from)
        })
    }

    fn query(&self, _request: &[u8]) -> Result<Vec<u8>, ApiError> {
        bincode::serialize(&*self.state.read()).map_err(|e| ApiError::internal(e.to_string()))
    }
}

/// Lease expiry is judged on one clock, the metadata leader's: a lease command gets the
/// leader's time here, whatever node it came through.
fn stamp_leader_clock(request: Vec<u8>) -> Vec<u8> {
    match bincode::deserialize::<MetaCommand>(&request) {
        Ok(MetaCommand::Lease {
            app,
            stream,
            shard,
            owner,
            op,
            ..
        }) => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            bincode::serialize(&MetaCommand::Lease {
                app,
                stream,
                shard,
                owner,
                op,
                now_ms,
            })
            .unwrap_or(request)
        }
        _ => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{create, formed};

    fn machine() -> (MetaStateMachine, Arc<RwLock<MetaState>>) {
        let published = Arc::new(RwLock::new(MetaState::default()));
        let (tx, _rx) = watch::channel(0);
        (MetaStateMachine::new(published.clone(), tx), published)
    }

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree(META_TREE).unwrap()
    }

    /// Applies `cmd` and writes the batch, as the adapter does.
    fn apply(sm: &mut MetaStateMachine, tree: &sled::Tree, cmd: &MetaCommand) {
        let mut batch = sled::Batch::default();
        let cmd = bincode::serialize(cmd).unwrap();
        sm.apply(0, &cmd, &mut batch);
        sm.persist(&mut batch);
        tree.apply_batch(batch).unwrap();
        sm.applied();
    }

    fn reloaded(tree: &sled::Tree) -> MetaState {
        let (mut sm, published) = machine();
        sm.reload(tree).unwrap();
        published.read().clone()
    }

    #[test]
    fn rows_written_per_batch_reload_to_the_same_state() {
        let tree = tree();
        let (mut sm, published) = machine();
        let start = formed(3);
        let init = MetaCommand::Init {
            secret: start.cluster_secret.clone(),
            nodes: start.nodes.values().cloned().collect(),
            replication_factor: 3,
        };
        apply(&mut sm, &tree, &init);
        for name in ["a", "b", "c"] {
            let cmd = MetaCommand::CreateStream {
                name: name.into(),
                shard_count: 4,
                on_demand: false,
                now_ms: 1,
                region: "us-east-1".into(),
            };
            apply(&mut sm, &tree, &cmd);
        }
        let group = published.read().streams["b"].shards[2].group_id;
        apply(&mut sm, &tree, &MetaCommand::ShardReady { group_id: group });
        apply(
            &mut sm,
            &tree,
            &MetaCommand::DeleteStream { name: "c".into() },
        );
        let state = published.read().clone();
        assert!(state.streams["b"].shards[2].ready);
        assert!(!state.streams.contains_key("c"));
        assert_eq!(reloaded(&tree), state);
        // One row per stream left, none for the deleted one.
        let rows = tree
            .scan_prefix(group_key(streamd_raft::META_GROUP, &[STREAM_KEY]))
            .count();
        assert_eq!(rows, 2);
    }

    #[test]
    fn a_command_rewrites_only_the_stream_it_changed() {
        let tree = tree();
        let (mut sm, published) = machine();
        let mut state = formed(3);
        create(&mut state, "a", 2).unwrap();
        create(&mut state, "b", 2).unwrap();
        // Start from a reloaded state, then change stream b only.
        let mut batch = sled::Batch::default();
        sm.working = state;
        sm.dirty = true;
        sm.persist(&mut batch);
        tree.apply_batch(batch).unwrap();
        sm.applied();
        let group = published.read().streams["b"].shards[0].group_id;
        let cmd = bincode::serialize(&MetaCommand::ShardReady { group_id: group }).unwrap();
        let mut batch = sled::Batch::default();
        sm.apply(0, &cmd, &mut batch);
        sm.persist(&mut batch);
        // The batch holds the core row and stream b's row: applied to an empty tree, the
        // stream rows it creates are b's alone.
        let fresh = super::tests::tree();
        fresh.apply_batch(batch).unwrap();
        let names: Vec<Vec<u8>> = fresh
            .scan_prefix(group_key(streamd_raft::META_GROUP, &[STREAM_KEY]))
            .map(|kv| kv.unwrap().0.to_vec())
            .collect();
        assert_eq!(names, vec![stream_key("b")]);
    }

    #[test]
    fn a_state_stored_whole_is_read_and_then_replaced_by_rows() {
        let tree = tree();
        let mut state = formed(3);
        create(&mut state, "old", 3).unwrap();
        tree.insert(
            group_key(streamd_raft::META_GROUP, WHOLE_STATE_KEY),
            bincode::serialize(&state).unwrap(),
        )
        .unwrap();
        let (mut sm, published) = machine();
        sm.reload(&tree).unwrap();
        assert_eq!(*published.read(), state);
        apply(&mut sm, &tree, &MetaCommand::DrainNode { id: 3 });
        assert!(
            tree.get(group_key(streamd_raft::META_GROUP, WHOLE_STATE_KEY))
                .unwrap()
                .is_none()
        );
        let back = reloaded(&tree);
        assert_eq!(back.streams["old"], state.streams["old"]);
        assert!(back.draining.contains(&3));
    }
}
