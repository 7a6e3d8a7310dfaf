//! Kinesis's shard-level metrics of one replica, counted where requests are admitted and
//! answered (`service.rs`). Plain atomics: the node's `/metrics` reads a [`ShardMetricsSnapshot`]
//! and labels it with the stream and shard the metadata maps this group to, for streams with
//! enhanced monitoring on. Writes are counted on the leader that admitted them, reads on the
//! replica that served them, so a shard's totals are the sum over nodes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::command::ReadResult;

#[derive(Debug, Default)]
pub struct ShardMetrics {
    incoming_bytes: AtomicU64,
    incoming_records: AtomicU64,
    outgoing_bytes: AtomicU64,
    outgoing_records: AtomicU64,
    write_throttled: AtomicU64,
    read_throttled: AtomicU64,
    iterator_age_ms: AtomicU64,
}

/// A point-in-time copy of [`ShardMetrics`]; counters are cumulative since the replica opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardMetricsSnapshot {
    pub incoming_bytes: u64,
    pub incoming_records: u64,
    pub outgoing_bytes: u64,
    pub outgoing_records: u64,
    /// Records refused for the shard's write throughput.
    pub write_throttled: u64,
    /// GetRecords calls refused for the shard's read throughput.
    pub read_throttled: u64,
    /// Between now and the arrival of the last record the latest GetRecords returned (0 when
    /// it returned none: the reader is at the tip).
    pub iterator_age_ms: u64,
}

impl ShardMetrics {
    pub fn snapshot(&self) -> ShardMetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ShardMetricsSnapshot {
            incoming_bytes: get(&self.incoming_bytes),
            incoming_records: get(&self.incoming_records),
            outgoing_bytes: get(&self.outgoing_bytes),
            outgoing_records: get(&self.outgoing_records),
            write_throttled: get(&self.write_throttled),
            read_throttled: get(&self.read_throttled),
            iterator_age_ms: get(&self.iterator_age_ms),
        }
    }

    pub(crate) fn written(&self, records: u64, bytes: u64) {
        self.incoming_records.fetch_add(records, Ordering::Relaxed);
        self.incoming_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn write_throttled(&self, records: u64) {
        if records > 0 {
            self.write_throttled.fetch_add(records, Ordering::Relaxed);
        }
    }

    pub(crate) fn read_throttled(&self) {
        self.read_throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, read: &ReadResult, now_ms: i64) {
        let bytes: usize = read
            .records
            .iter()
            .map(|(_, r)| r.data.len() + r.partition_key.len())
            .sum();
        self.outgoing_records
            .fetch_add(read.records.len() as u64, Ordering::Relaxed);
        self.outgoing_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        let age = read.records.last().map_or(0, |(_, r)| {
            now_ms.saturating_sub(r.arrival_ms).max(0) as u64
        });
        self.iterator_age_ms.store(age, Ordering::Relaxed);
    }
}
