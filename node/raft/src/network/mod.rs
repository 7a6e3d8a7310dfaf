//! Node-to-node transport: one HTTP/2 channel per peer node, shared by every group.

pub(crate) mod client;
pub(crate) mod server;
mod trace_context;

/// Raft RPCs and snapshots can carry many 5 MiB PutRecords entries.
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
