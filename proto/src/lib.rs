//! The streamd contract, shared by the node, the client and streamctl.
//!
//! - `v1`: the public gRPC API (generated from `streamd/v1/streamd.proto`).
//! - `internal`: the node-to-node envelope (generated from `streamd/internal/v1/internal.proto`).
//! - [`ids`]: validated identifier types (stream names, shard ids, hash keys, sequence numbers).
//! - [`error_code`]: the one catalogue of error codes, with each code's Kinesis name, HTTP status,
//!   gRPC code and retryability. New errors are added there and nowhere else.
//!
//! Nothing here does I/O.

pub mod error_code;
pub mod ids;
pub mod limits;

pub use error_code::{ApiError, ErrorCode};
pub use prost;
pub use tonic;

#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod v1 {
    tonic::include_proto!("streamd.v1");
}

#[allow(clippy::all, unreachable_pub, missing_docs)]
pub mod internal {
    tonic::include_proto!("streamd.internal.v1");
}

/// Encoded `FileDescriptorSet` of every service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("streamd_descriptor");
