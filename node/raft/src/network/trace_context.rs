//! W3C trace context (`traceparent`, `tracestate`) in the metadata of every node-to-node call,
//! so a request handled on several nodes (a write forwarded to its shard's leader, the Raft
//! calls it causes) is one trace. The receiving node extracts it in its gRPC server
//! (`streamd::telemetry`). Nothing is written unless the node exports traces: the global
//! propagator stays the no-op one and spans carry no OpenTelemetry context.

use opentelemetry::propagation::Injector;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // A field that is not valid metadata (a propagator would not produce one) is left out:
        // the call goes on without context rather than failing.
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            value.parse::<MetadataValue<_>>(),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Writes the current span's trace context into `req`'s metadata.
pub(crate) fn inject<T>(req: &mut tonic::Request<T>) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut MetadataInjector(req.metadata_mut()))
    });
}
