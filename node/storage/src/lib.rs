//! Durable bytes for a streamd node.
//!
//! Module map:
//!
//! - [`wal`]: [`LogEngine`], one write-ahead log shared by every Raft group of the node.
//!   Entries are opaque bytes keyed by `(group, index)`, plus small per-group meta values
//!   (vote, committed and purged log ids, stored by the caller under one-byte keys). One
//!   writer thread group-commits: concurrent appends from many groups share one fdatasync.
//! - [`sled_store`]: [`SledStore`], a thin wrapper over one `sled::Db`, and key helpers
//!   that scope keys to a group. sled's flush is not power-safe, so the log stays the
//!   source of truth.
//! - [`error`]: [`StorageError`], convertible into `std::io::Error`.
//! - [`conformance`]: contract checks any [`LogEngine`] must pass, run by the unit tests.
//!
//! The contract of [`LogEngine::append`]: appends are applied to the in-memory index (and
//! readable) in call order as soon as `append` returns; they are written to the log in
//! that same order; `done` fires, from the writer thread, once the entries are fdatasync'ed,
//! and callbacks fire in append order. So when `done(Ok(()))` runs, this append and every
//! write queued before it are durable.
//!
//! Nothing here knows about Raft: terms, log ids and membership are the caller's bytes.

pub mod conformance;
pub mod error;
pub mod sled_store;
pub mod wal;

pub use error::StorageError;
pub use sled_store::SledStore;
pub use sled_store::{group_key, group_prefix};
pub use wal::{LogEngine, WalOptions, WalStats};

/// Re-exported so state machines build sled batches without naming sled themselves.
pub use sled;
