//! Consuming a stream: the consumer calls of the API (`api`), one shard read page by page
//! ([`shard_reader`]), and consumer groups that share a stream's shards through leases in the
//! cluster's metadata ([`group`]).

mod api;
pub mod group;
pub mod shard_reader;

pub use group::{
    Batch, ConsumerGroup, GroupConfig, Handler, InitialPosition, SHARD_END, UserRecordAt,
    user_records,
};
pub use shard_reader::{Page, ShardReader, StartingPosition};
