//! Counters a producer keeps, readable at any time without stopping it.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of [`crate::producer::Producer::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// User records acknowledged.
    pub records_acked: u64,
    /// User records whose caller got an error.
    pub records_failed: u64,
    /// Kinesis records sent again after a failed attempt (an aggregated record counts once).
    pub retries: u64,
    /// Of those, retries after an attempt whose outcome was unknown (it may have been written).
    pub retries_after_unknown_outcome: u64,
    /// PutRecords requests sent.
    pub batches: u64,
    /// Of those, requests sent straight to the shard leader's node.
    pub batches_to_leader: u64,
    /// PutRecords requests that failed as a whole (timeout, unreachable node, refused call).
    pub failed_batches: u64,
    /// Kinesis records acknowledged (fewer than user records when aggregating).
    pub kinesis_records_acked: u64,
    /// Shard map and leader refreshes completed.
    pub map_refreshes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) records_acked: AtomicU64,
    pub(crate) records_failed: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) retries_after_unknown_outcome: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) batches_to_leader: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) kinesis_records_acked: AtomicU64,
    pub(crate) map_refreshes: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ProducerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProducerStats {
            records_acked: get(&self.records_acked),
            records_failed: get(&self.records_failed),
            retries: get(&self.retries),
            retries_after_unknown_outcome: get(&self.retries_after_unknown_outcome),
            batches: get(&self.batches),
            batches_to_leader: get(&self.batches_to_leader),
            failed_batches: get(&self.failed_batches),
            kinesis_records_acked: get(&self.kinesis_records_acked),
            map_refreshes: get(&self.map_refreshes),
        }
    }
}
