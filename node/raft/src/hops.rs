//! The write path's latency hop by hop, as one Prometheus histogram labelled by hop
//! (`streamd_put_hop_seconds`), so the slowest hop of a PutRecords is always visible on
//! `/metrics`. The WAL's own fdatasync has its histogram in streamd-storage
//! (`streamd_wal_fsync_seconds`).
//!
//! Hot path: one observation per call, entry or message, never per record.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, HistogramVec};

/// The hops of one PutRecords, in the order a call meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The whole call in the node that received it: validation, routing, every shard's write.
    Gateway,
    /// A shard's records sent to a leader on another node, until its answer is back.
    Forward,
    /// Waiting on the leader for the shard's entry that carries the call (write coalescing).
    Queue,
    /// One entry proposed until it is committed and applied on the leader.
    Propose,
    /// Entries handed to the WAL until they are durable on this node (leader and followers).
    LogAppend,
    /// One AppendEntries to a follower until its answer is back (its append and fdatasync included).
    Replicate,
    /// Applying a run of committed entries to the state machine (one sled batch).
    Apply,
}

impl Hop {
    const ALL: [Hop; 7] = [
        Hop::Gateway,
        Hop::Forward,
        Hop::Queue,
        Hop::Propose,
        Hop::LogAppend,
        Hop::Replicate,
        Hop::Apply,
    ];

    fn label(self) -> &'static str {
        match self {
            Hop::Gateway => "gateway",
            Hop::Forward => "forward",
            Hop::Queue => "queue",
            Hop::Propose => "propose",
            Hop::LogAppend => "log_append",
            Hop::Replicate => "replicate",
            Hop::Apply => "apply",
        }
    }
}

/// One histogram per hop, resolved once: a write observes several hops, and the label lookup
/// would hash on every one of them.
static HOP_SECONDS: LazyLock<Vec<Histogram>> = LazyLock::new(|| {
    let h = HistogramVec::new(
        HistogramOpts::new(
            "streamd_put_hop_seconds",
            "Latency of each hop of the write path (gateway, forward, queue, propose, log_append, replicate, apply).",
        )
        .buckets(vec![
            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            0.5, 1.0, 2.5, 5.0,
        ]),
        &["hop"],
    )
    .expect("fixed histogram options are valid");
    // Registered once per process; several hosts in one process (tests) share it.
    let _ = prometheus::register(Box::new(h.clone()));
    Hop::ALL
        .iter()
        .map(|hop| h.with_label_values(&[hop.label()]))
        .collect()
});

/// Records that `hop` took from `since` until now.
pub fn observe(hop: Hop, since: Instant) {
    if let Some(h) = HOP_SECONDS.get(hop as usize) {
        h.observe(since.elapsed().as_secs_f64());
    }
}

/// Registers the histogram now, so `/metrics` lists it before the first write.
pub fn register() {
    LazyLock::force(&HOP_SECONDS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hop_observes_its_own_histogram() {
        for (i, hop) in Hop::ALL.iter().enumerate() {
            assert_eq!(*hop as usize, i);
        }
        assert_eq!(HOP_SECONDS.len(), Hop::ALL.len());
    }
}
