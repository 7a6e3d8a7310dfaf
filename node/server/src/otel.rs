//! OpenTelemetry trace export (`--otlp-endpoint`): a `tracing-opentelemetry` layer whose spans
//! a batch processor on the tokio runtime sends over OTLP/gRPC, and the receiving half of W3C
//! trace context across nodes (the sending half is in streamd-raft's node-to-node client).
//! Off by default: without an endpoint there is no layer, the propagator is the no-op one and
//! the gRPC server opens no span of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once export is on, so the gRPC server opens a span per call only when it goes somewhere.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Longest a stopping node waits for its last spans to reach the collector.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {source}")]
pub(crate) struct OtlpError {
    endpoint: String,
    source: opentelemetry_otlp::ExporterBuildError,
}

/// The tracer provider behind the export; [`flush`] it when the node stops.
pub(crate) struct Exporter {
    provider: SdkTracerProvider,
}

/// Builds the exporter for `endpoint` and installs the W3C propagator. Must run on the tokio
/// runtime: the batch processor is a task on it and the gRPC channel connects lazily from it.
pub(crate) fn start(
    endpoint: &str,
    node_id: u64,
) -> Result<(Exporter, opentelemetry_sdk::trace::Tracer), OtlpError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|source| OtlpError {
            endpoint: endpoint.to_string(),
            source,
        })?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let resource = Resource::builder()
        .with_service_name("streamd")
        .with_attribute(KeyValue::new("streamd.node.id", node_id as i64))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("streamd");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    EXPORTING.store(true, Ordering::Relaxed);
    Ok((Exporter { provider }, tracer))
}

/// Sends the spans still queued and stops the exporter, within [`FLUSH_DEADLINE`].
pub(crate) async fn flush(exporter: Exporter) {
    // Shutting the processor down blocks until its task has exported, so off the runtime's
    // worker threads, which that task needs.
    let done = tokio::task::spawn_blocking(move || exporter.provider.shutdown());
    match tokio::time::timeout(FLUSH_DEADLINE, done).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "flushing traces failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "flushing traces failed"),
        Err(_) => tracing::warn!(deadline = ?FLUSH_DEADLINE, "traces not flushed in time"),
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A tower layer over the node's gRPC server: while traces are exported, each call runs in a
/// `grpc.request` server span whose parent is the caller's trace context (`traceparent`), so
/// the handler's spans join the caller's trace.
#[derive(Clone, Copy, Default)]
pub(crate) struct TraceContextLayer;

impl<S> tower::Layer<S> for TraceContextLayer {
    type Service = TraceContext<S>;

    fn layer(&self, inner: S) -> TraceContext<S> {
        TraceContext { inner }
    }
}

#[derive(Clone)]
pub(crate) struct TraceContext<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for TraceContext<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !EXPORTING.load(Ordering::Relaxed) {
            return self.inner.call(req).instrument(tracing::Span::none());
        }
        let path = req.uri().path();
        let span = tracing::info_span!(
            "grpc.request",
            otel.name = path,
            otel.kind = "server",
            rpc.method = path,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        // Only fails when the span is disabled by the filter, which exports nothing anyway.
        let _ = span.set_parent(parent);
        // A handler may open its span as soon as it is called, before its first poll.
        let fut = span.in_scope(|| self.inner.call(req));
        fut.instrument(span)
    }
}
