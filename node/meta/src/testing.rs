//! Fixtures for the unit tests of this crate: formed clusters and streams, built through
//! `MetaState::apply` like the real thing.

use crate::commands::{MetaCommand, MetaResult};
use crate::state::{MetaState, NodeInfo};

/// A cluster of nodes 1..=n at replication factor 3.
pub(crate) fn formed(n: u64) -> MetaState {
    let mut s = MetaState::default();
    let nodes = (1..=n)
        .map(|id| NodeInfo {
            id,
            addr: format!("127.0.0.1:{}", 50050 + id),
        })
        .collect();
    s.apply(MetaCommand::Init {
        secret: vec![1; 32],
        nodes,
        replication_factor: 3,
    })
    .unwrap();
    s
}

/// Creates a provisioned stream.
pub(crate) fn create(s: &mut MetaState, name: &str, shards: u32) -> MetaResult {
    s.apply(MetaCommand::CreateStream {
        name: name.into(),
        shard_count: shards,
        on_demand: false,
        now_ms: 1,
        region: "us-east-1".into(),
    })
}
