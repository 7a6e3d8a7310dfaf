//! Rust client for streamd's public gRPC API (`streamd.v1.Streamd`).
//!
//! Map of the crate:
//! - [`connect`]: endpoint parsing and the channel pool (one lazy channel per endpoint; the pool
//!   rotates to the next endpoint when the current one is unreachable or not the leader).
//! - [`retry`]: the retry policy. Only idempotent reads (describe, list, get) are retried, on
//!   `Unavailable` and `NotLeader`; writes are never retried here because a failed write's outcome
//!   may be unknown, and only the caller can decide whether a duplicate is acceptable.
//! - [`client`]: [`StreamdClient`], one method per API call.
//! - [`consumer`]: named consumers, and consumer groups sharing a stream through leases.
//! - [`read_all`]: draining a shard or an iterator into memory.
//! - [`wait`]: waiting for a stream to become ACTIVE.
//! - [`producer`]: [`Producer`], the batching, retrying, leader-routing producer (KPL's job).
//! - [`kpl`]: the KPL aggregated record format: packing for producers, unpacking for consumers.
//! - [`profile`]: which endpoints to use: explicit, `STREAMCTL_ENDPOINT`, a config-file profile,
//!   or the default (shared with `streamctl`, so programs and the CLI agree).
//! - [`error`]: [`ClientError`], which carries the server's [`ErrorCode`].
//!
//! Placement rule: anything that knows about shard placement (routing, map caches, producers,
//! consumers) goes into new modules beside these; this layer stays a thin, typed wrapper.
//!
//! ```no_run
//! # async fn demo() -> Result<(), streamd_client::ClientError> {
//! let client = streamd_client::StreamdClient::connect(&["127.0.0.1:50051".to_string()])?;
//! client.create_stream("orders", 2).await?;
//! client.wait_stream_active("orders", std::time::Duration::from_secs(30)).await?;
//! client.put_record("orders", "customer-7", b"hello".to_vec()).await?;
//! # Ok(()) }
//! ```

pub mod client;
pub mod connect;
pub mod consumer;
pub mod duration;
pub mod error;
pub mod kpl;
pub mod producer;
pub mod profile;
pub mod read_all;
pub mod retry;
pub mod wait;

pub use client::StreamdClient;
pub use connect::ClientOptions;
pub use error::ClientError;
pub use producer::{Producer, ProducerConfig};
pub use retry::RetryPolicy;
pub use streamd_proto::{ApiError, ErrorCode, v1};
