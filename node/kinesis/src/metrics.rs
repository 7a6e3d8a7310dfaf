//! The Kinesis API's request histogram, in the process-wide Prometheus registry (the node's
//! `/metrics` gathers it).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec};

/// Request latency buckets shared by both front doors: 250 us to 10 s.
const BUCKETS: [f64; 14] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    let h = HistogramVec::new(
        HistogramOpts::new(
            "streamd_kinesis_request_seconds",
            "Kinesis API requests: time to the response head, by action and outcome (OK or the \
             error's __type).",
        )
        .buckets(BUCKETS.to_vec()),
        &["action", "code"],
    )
    .expect("fixed histogram options are valid");
    let _ = prometheus::register(Box::new(h.clone()));
    h
});

/// Registers the metrics now, so `/metrics` lists them before the first request.
pub fn register() {
    LazyLock::force(&REQUEST_SECONDS);
}

/// Records one request. `action` must come from the known set (or be "unknown"), so a client
/// cannot grow the label set.
pub(crate) fn observe(action: &str, code: &str, elapsed: Duration) {
    REQUEST_SECONDS
        .with_label_values(&[action, code])
        .observe(elapsed.as_secs_f64());
}
