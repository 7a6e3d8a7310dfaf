//! The metadata group (Raft group 0): nodes, streams, the shard map, and the decisions made
//! from them.
//!
//! - `state.rs`: [`MetaState`], the replicated metadata, and its types.
//! - `commands.rs`: [`MetaCommand`], every change to it, and `apply` (deterministic; placement
//!   of new shards is decided here, from the state alone, so every replica agrees).
//! - `placement.rs`: pure placement of replica sets: new shards, repairs after node loss,
//!   rebalancing after a join, leader balancing.
//! - `reshard.rs`: SplitShard, MergeShards and UpdateShardCount as planned waves of splits and
//!   merges (pure planning, applied by `commands.rs`).
//! - `leases.rs`: consumer-group leases, compare-and-set on (owner, counter), with expiry on
//!   the metadata leader's clock.
//! - `planner.rs`: pure reconciliation: what this node must do so its Raft groups match the map
//!   (open, initialize, drop, report ready). The server's driver carries the actions out.
//! - `state_machine.rs`: the Raft state machine over [`MetaState`].
//!
//! Nothing here does network I/O.

mod commands;
mod leases;
mod placement;
mod planner;
mod reshard;
mod state;
mod state_machine;
#[cfg(test)]
mod testing;

pub use commands::{
    MAX_CONSUMERS, MAX_TAGS, MetaCommand, MetaReply, MetaResult, SHARD_LEVEL_METRICS,
    valid_consumer_name,
};
pub use leases::{Lease, LeaseOp, LeaseTable, MAX_LEASE_MS, SHARD_END};
pub use placement::{
    MAX_CONCURRENT_MOVES, MAX_LEADER_TRANSFERS, place_replicas, plan_leader_balance,
    plan_rebalance, plan_repairs,
};
pub use planner::{LocalGroup, MetaVoterChange, NodeAction, plan_meta_voters, plan_node};
pub use reshard::{Primitive, ReshardRequest, check_scaling, next_scaling_wave};
pub use state::{
    ConsumerMeta, ConsumerStatus, MetaState, NodeInfo, ReshardOp, ReshardStep, ShardMeta,
    StreamMeta, StreamStatus,
};
pub use state_machine::{META_TREE, MetaService, MetaStateMachine};
