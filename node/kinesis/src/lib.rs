//! The Kinesis-compatible front door: unmodified AWS SDKs and the AWS CLI talk to streamd here.
//!
//! - `server.rs`: the listener: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port.
//! - `router.rs`: one request's life: bounded body, SigV4 when enabled, `X-Amz-Target`
//!   dispatch, decode, action, encode, `x-amzn-RequestId`.
//! - `codec/`: AWS JSON 1.1 and Kinesis CBOR as one document model ([`codec::Doc`]), and typed
//!   access to request members with AWS's error names.
//! - `actions/`: one module per family of operations, each mapping Kinesis shapes to the
//!   gateway's operations and back. The cluster carries every action out; an action it cannot
//!   do yet answers with a clear error.
//! - `error.rs`: [`error::KinesisError`], the only writer of `{"__type", "message"}`.
//! - `sigv4.rs`: Signature Version 4 verification.
//! - `event_stream.rs`: `application/vnd.amazon.eventstream` framing for SubscribeToShard.
//!
//! Nothing here decides anything about streams: that is the gateway's job.

mod actions;
pub mod codec;
pub mod error;
pub mod event_stream;
pub mod metrics;
mod router;
mod server;
pub mod sigv4;

pub use router::KinesisApi;
pub use server::{serve, tls_config};
