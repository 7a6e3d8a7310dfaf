//! Consuming a stream: the consumer calls of the API ([`api`]) and consumer groups that share a
//! stream's shards through leases in the cluster's metadata ([`group`]).

mod api;
pub mod group;

pub use group::{Batch, ConsumerGroup, GroupConfig, Handler, InitialPosition, SHARD_END};
