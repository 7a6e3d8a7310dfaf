//! Every public operation, independent of the wire format that carried it.
//!
//! - `operations/`: one module per group of operations (`streams.rs`, `put.rs`, `get.rs`); each
//!   validates, routes, proposes or queries, and builds the `v1` response.
//! - `routing.rs`: partition key to shard, and reaching a shard's leader or a replica, locally
//!   or through a peer; NotLeader answers are retried with bounded backoff, a write whose outcome
//!   is unknown never is.
//! - `iterator_token.rs`: shard iterators as MAC'd, expiring tokens.
//! - `grpc.rs`: the public tonic service over the operations.
//!
//! The Kinesis shim calls the same operations, so both front doors behave alike.

mod grpc;
mod iterator_token;
mod operations;
mod routing;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use streamd_meta::MetaState;
use streamd_raft::RaftHost;
use streamd_shard::ShardService;

pub use grpc::StreamdService;
pub use iterator_token::{IteratorError, IteratorToken};

/// The shard services of the shard replicas this node runs, by group id.
pub type LocalShards = Arc<RwLock<HashMap<u64, Arc<ShardService>>>>;

/// Shared by every request: the node's Raft groups, its copy of the metadata and its shards.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) host: RaftHost,
    pub(crate) meta: Arc<RwLock<MetaState>>,
    pub(crate) shards: LocalShards,
    pub(crate) region: String,
}

impl Gateway {
    pub fn new(
        host: RaftHost,
        meta: Arc<RwLock<MetaState>>,
        shards: LocalShards,
        region: String,
    ) -> Self {
        Gateway {
            host,
            meta,
            shards,
            region,
        }
    }

    pub fn host(&self) -> &RaftHost {
        &self.host
    }
}

impl Gateway {
    /// A copy of this node's metadata, as of its last applied entry.
    pub fn metadata(&self) -> MetaState {
        self.meta.read().clone()
    }
}

impl Gateway {
    /// A receiver that changes whenever this node's replica of shard group `group` applies new
    /// records; None when the node has no replica of it.
    pub fn record_notifier(
        &self,
        group: u64,
    ) -> Option<tokio::sync::watch::Receiver<Option<u128>>> {
        self.shards
            .read()
            .get(&group)
            .map(|s| s.reader().subscribe())
    }
}
