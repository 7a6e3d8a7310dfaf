//! The WAL's latency histogram, in the process-wide Prometheus registry (the node's `/metrics`
//! gathers it). Counters live in [`super::WalStats`]; only a distribution needs the crate.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts};

/// fdatasync of the active segment: 50 us to 2.5 s, where disks and loaded machines fall.
pub(crate) static FSYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    let h = Histogram::with_opts(
        HistogramOpts::new(
            "streamd_wal_fsync_seconds",
            "Duration of one fdatasync of the write-ahead log (one per group commit).",
        )
        .buckets(vec![
            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            0.5, 1.0, 2.5,
        ]),
    )
    .expect("fixed histogram options are valid");
    // Registered once per process; a second engine in the same process (tests) shares it.
    let _ = prometheus::register(Box::new(h.clone()));
    h
});

/// Registers the WAL's metrics now, so `/metrics` shows them before the first fsync.
pub fn register() {
    LazyLock::force(&FSYNC_SECONDS);
}
