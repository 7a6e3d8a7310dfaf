//! The metadata group's Raft state machine and request service.
//!
//! The whole [`MetaState`] is small (nodes, streams, shard maps), so it lives in memory and is
//! written whole with every applied batch.

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
use crate::state::MetaState;

/// The sled tree holding the metadata group's state.
pub const META_TREE: &str = "meta";
const STATE_KEY: &[u8] = &[0x01];

pub struct MetaStateMachine {
    working: MetaState,
    published: Arc<RwLock<MetaState>>,
    notify: watch::Sender<u64>,
    changes: u64,
}

impl MetaStateMachine {
    pub fn new(published: Arc<RwLock<MetaState>>, notify: watch::Sender<u64>) -> Self {
        MetaStateMachine {
            working: MetaState::default(),
            published,
            notify,
            changes: 0,
        }
    }
}

impl GroupStateMachine for MetaStateMachine {
    fn apply(&mut self, _index: u64, command: &[u8], batch: &mut sled::Batch) -> Vec<u8> {
        let result: MetaResult = match bincode::deserialize::<MetaCommand>(command) {
            Ok(cmd) => self.working.apply(cmd),
            Err(e) => Err((
                "InternalFailure".into(),
                format!("undecodable metadata command: {e}"),
            )),
        };
        if let Ok(state) = bincode::serialize(&self.working) {
            batch.insert(group_key(streamd_raft::META_GROUP, STATE_KEY), state);
        }
        self.changes += 1;
        bincode::serialize(&result).unwrap_or_default()
    }

    fn applied(&mut self) {
        *self.published.write() = self.working.clone();
        self.notify.send_replace(self.changes);
    }

    fn reload(&mut self, tree: &sled::Tree) -> io::Result<()> {
        self.working = match tree
            .get(group_key(streamd_raft::META_GROUP, STATE_KEY))
            .map_err(io::Error::other)?
        {
            Some(v) => bincode::deserialize(&v).map_err(io::Error::other)?,
            None => MetaState::default(),
        };
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
