//! One shard's replicated state machine and the requests a shard replica answers.
//!
//! - `command.rs`: what travels to a shard (requests from the gateway, commands in the Raft log,
//!   replies and queries), all bincode-encoded.
//! - `apply.rs`: applies committed commands; sequence numbers are assigned here, from the log
//!   index and the record's position in the entry, so every replica agrees without talking.
//! - `service.rs`: admission on the leader (throughput limits), then propose; and local reads
//!   for queries.
//! - `batcher.rs`: concurrent puts to a shard become one Raft entry per flush (arrival time
//!   stamped there).
//! - `reader.rs`: iterator positions and record reads from the local replica's sled tree.
//! - `limits.rs`: per-shard token buckets.
//! - `metrics.rs`: Kinesis's shard-level metrics (bytes and records in and out, throttles,
//!   iterator age), counted by `service.rs`.
//! - `keys.rs`: the sled key layout of a shard.
//!
//! Nothing here talks to the network: forwarding is the gateway's job and transport is
//! streamd-raft's.

mod apply;
mod batcher;
pub mod command;
mod keys;
mod limits;
mod metrics;
mod producers;
mod reader;
mod service;

pub use apply::{ShardState, ShardStateMachine};
pub use limits::ShardLimits;
pub use metrics::{ShardMetrics, ShardMetricsSnapshot};
pub use reader::ShardReader;
pub use service::{ShardService, SharedShardService, now_ms};

/// The sled tree every shard replica on a node keeps its records in.
pub const SHARD_TREE: &str = "shards";
