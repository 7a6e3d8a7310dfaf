//! The node's metrics: the `/metrics` exposition and the gRPC request histogram.
//!
//! Histograms are observed where the work happens and live in the process-wide Prometheus
//! registry (`streamd_wal_fsync_seconds` in streamd-storage, `streamd_kinesis_request_seconds`
//! in streamd-kinesis, `streamd_grpc_request_seconds` here). Everything else is state some part
//! of the node already keeps (WAL counters, openraft's metrics, shard counters), read at scrape
//! time into a registry built for that scrape, so no second copy of it is kept up to date.
//! docs/observability.md lists every metric.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::node::Node;

static GRPC_REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    let h = HistogramVec::new(
        HistogramOpts::new(
            "streamd_grpc_request_seconds",
            "gRPC requests (public and node-to-node): time to the response head, by method and \
             status code.",
        )
        .buckets(vec![
            0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            10.0,
        ]),
        &["method", "code"],
    )
    .expect("fixed histogram options are valid");
    let _ = prometheus::register(Box::new(h.clone()));
    h
});

/// Registers every long-lived metric, so the first scrape lists them all.
pub(crate) fn register() {
    LazyLock::force(&GRPC_REQUEST_SECONDS);
    streamd_storage::wal::register_metrics();
    streamd_raft::hops::register();
    streamd_kinesis::metrics::register();
}

/// The Kinesis names of the shard-level metrics (as EnableEnhancedMonitoring takes them) and
/// the Prometheus counters they export as.
const SHARD_COUNTERS: [(&str, &str, &str); 6] = [
    (
        "IncomingBytes",
        "streamd_shard_incoming_bytes_total",
        "Bytes (data and partition keys) written to the shard, counted by its leader.",
    ),
    (
        "IncomingRecords",
        "streamd_shard_incoming_records_total",
        "Records written to the shard, counted by its leader.",
    ),
    (
        "OutgoingBytes",
        "streamd_shard_outgoing_bytes_total",
        "Bytes returned by GetRecords, counted by the replica that served them.",
    ),
    (
        "OutgoingRecords",
        "streamd_shard_outgoing_records_total",
        "Records returned by GetRecords, counted by the replica that served them.",
    ),
    (
        "WriteProvisionedThroughputExceeded",
        "streamd_shard_write_provisioned_throughput_exceeded_total",
        "Records refused for the shard's write throughput.",
    ),
    (
        "ReadProvisionedThroughputExceeded",
        "streamd_shard_read_provisioned_throughput_exceeded_total",
        "GetRecords calls refused for the shard's read throughput.",
    ),
];

fn counter_vec(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric options");
    let _ = reg.register(Box::new(c.clone()));
    c
}

fn gauge_vec(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric options");
    let _ = reg.register(Box::new(g.clone()));
    g
}

fn counter(reg: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric options");
    let _ = reg.register(Box::new(c.clone()));
    c
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The Prometheus text exposition of everything the node measures.
pub(crate) fn render(node: &Node) -> String {
    let reg = Registry::new();

    let wal = node.host.engine().stats();
    counter(
        &reg,
        "streamd_wal_fsyncs_total",
        "fdatasync calls on write-ahead log segments.",
    )
    .inc_by(wal.fsyncs);
    counter(
        &reg,
        "streamd_wal_bytes_written_total",
        "Bytes written to write-ahead log segments.",
    )
    .inc_by(wal.bytes_written);

    let term = gauge_vec(&reg, "streamd_raft_term", "Current Raft term.", &["group"]);
    let is_leader = gauge_vec(
        &reg,
        "streamd_raft_is_leader",
        "1 when this node leads the group.",
        &["group"],
    );
    let leader_changes = counter_vec(
        &reg,
        "streamd_raft_leader_changes_total",
        "New leaders this node's replica has seen since the group was opened here.",
        &["group"],
    );
    let apply_lag = gauge_vec(
        &reg,
        "streamd_raft_apply_lag",
        "Entries committed but not yet applied by this replica.",
        &["group"],
    );
    let log_entries = gauge_vec(
        &reg,
        "streamd_raft_log_entries",
        "Entries in this replica's Raft log (not yet purged behind a snapshot).",
        &["group"],
    );
    for g in node.host.groups() {
        let s = g.status();
        let label = s.group.to_string();
        let l = [label.as_str()];
        term.with_label_values(&l).set(gauge_value(s.term));
        is_leader
            .with_label_values(&l)
            .set(i64::from(u8::from(s.is_leader)));
        leader_changes
            .with_label_values(&l)
            .inc_by(s.leader_changes);
        let lag = s
            .committed
            .unwrap_or(0)
            .saturating_sub(s.last_applied.unwrap_or(0));
        apply_lag.with_label_values(&l).set(gauge_value(lag));
        log_entries
            .with_label_values(&l)
            .set(gauge_value(s.log_entries));
    }

    shard_metrics(node, &reg);

    let mut families = prometheus::gather();
    families.extend(reg.gather());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::warn!(error = %e, "failed to encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Shard-level metrics of the local replicas, for streams with enhanced monitoring on; each
/// metric only when the stream enabled it (Kinesis's ShardLevelMetrics names).
fn shard_metrics(node: &Node, reg: &Registry) {
    let labels = ["stream", "shard"];
    let counters: Vec<IntCounterVec> = SHARD_COUNTERS
        .iter()
        .map(|(_, name, help)| counter_vec(reg, name, help, &labels))
        .collect();
    let age = gauge_vec(
        reg,
        "streamd_shard_iterator_age_milliseconds",
        "Between the last GetRecords this replica served and the arrival of the last record it \
         returned (0 when it returned none).",
        &labels,
    );
    let meta = node.meta.read();
    // group -> (stream, shard id, the stream's enabled metrics)
    let mut by_group = HashMap::new();
    for s in meta.streams.values() {
        if s.shard_level_metrics.is_empty() {
            continue;
        }
        for sh in &s.shards {
            by_group.insert(sh.group_id, (s, sh.shard_id.to_string()));
        }
    }
    let shards: Vec<_> = node
        .shards
        .read()
        .iter()
        .map(|(g, svc)| (*g, svc.metrics().snapshot()))
        .collect();
    for (group, m) in shards {
        let Some((stream, shard)) = by_group.get(&group) else {
            continue;
        };
        let l = [stream.name.as_str(), shard.as_str()];
        let values = [
            m.incoming_bytes,
            m.incoming_records,
            m.outgoing_bytes,
            m.outgoing_records,
            m.write_throttled,
            m.read_throttled,
        ];
        for (((kinesis_name, _, _), c), v) in SHARD_COUNTERS.iter().zip(&counters).zip(values) {
            if stream.shard_level_metrics.contains(*kinesis_name) {
                c.with_label_values(&l).inc_by(v);
            }
        }
        if stream
            .shard_level_metrics
            .contains("IteratorAgeMilliseconds")
        {
            age.with_label_values(&l)
                .set(gauge_value(m.iterator_age_ms));
        }
    }
}

/// A tower layer over the node's gRPC server: one observation of
/// `streamd_grpc_request_seconds` per call.
#[derive(Clone, Copy, Default)]
pub(crate) struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Clone)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().trim_start_matches('/').to_string();
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            // A handler's error travels as a trailers-only response, with grpc-status in the
            // head; a head without it is a call that went through (its final status, in the
            // trailers, is OK for unary calls).
            let code = match &result {
                Ok(resp) => resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or("Ok", code_name),
                Err(_) => "Unavailable",
            };
            // Only methods a service implements keep their name, so a client cannot grow the
            // label set with made-up paths.
            let method = if code == "Unimplemented" {
                "unknown"
            } else {
                path.as_str()
            };
            GRPC_REQUEST_SECONDS
                .with_label_values(&[method, code])
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }
}

fn code_name(code: i32) -> &'static str {
    match code {
        0 => "Ok",
        1 => "Cancelled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}
