//! The multi-Raft host: the only crate that names openraft.
//!
//! Every node runs one [`RaftHost`] holding many Raft groups keyed by a `GroupId` (u64): group 0 is
//! the metadata group, every shard replica is one more group. Where things live:
//!
//! - `type_config.rs`: the one openraft type configuration all groups share.
//! - `log_store.rs`: a group's Raft log and vote, stored in the node's shared write-ahead log
//!   (`streamd_storage::LogEngine`), so all groups' appends share fsyncs.
//! - `state_machine.rs`: the [`GroupStateMachine`] trait that shard and metadata state machines
//!   implement, and the adapter that applies entries into sled atomically with the applied index.
//! - `snapshot_file.rs`: snapshots as files (built, sent in chunks, installed in batches), so a
//!   group's state never has to fit in memory.
//! - `network/`: one tonic channel per peer node carries every group's Raft RPCs (`client.rs`);
//!   `server.rs` answers them and the node-to-node Propose / Query calls.
//! - `registry.rs`: [`RaftHost`], creating, finding and dropping groups.
//! - `handle.rs`: [`GroupHandle`], what the rest of the node may do with a group (propose, read
//!   leadership, change membership, hand leadership over).
//! - `hops.rs`: the write path's latency per hop (`streamd_put_hop_seconds`).
//! - `quiesce.rs`: idle groups park their tickers; one heartbeat per pair of nodes
//!   ([`quiesce::PeerHealth`]) stands in for theirs and tells who is silent.
//! - `catch_up.rs`: whether a local replica has caught up with its leader (node readiness).
//!
//! Nothing outside this crate sees an openraft type: if a new feature needs one, add a method to
//! `GroupHandle` instead.

mod catch_up;
mod handle;
pub mod hops;
mod log_store;
mod network;
pub mod quiesce;
mod registry;
mod snapshot_file;
mod state_machine;
mod type_config;

#[cfg(test)]
mod conformance_tests;

pub use catch_up::NotCaughtUp;
pub use handle::{GroupHandle, GroupStatus, MembershipView, ProposeError};
pub use network::client::{PeerClients, never_connected};
pub use network::server::{GroupService, InternalService};
pub use registry::{RaftHost, RaftOptions};
pub use snapshot_file::SnapshotFile;
pub use state_machine::GroupStateMachine;

/// The metadata group's id.
pub const META_GROUP: u64 = 0;
