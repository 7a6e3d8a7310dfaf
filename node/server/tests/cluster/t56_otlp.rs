//! OTLP trace export with W3C trace context across nodes: three nodes export to a collector
//! run by the test; a PutRecords sent to a node that does not lead the shard is forwarded to
//! the leader, and the spans both nodes export for it share one trace id. The nodes only
//! export when they stop (the batch delay and size are out of reach), so this also checks that
//! a graceful stop flushes the queued spans.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use streamd_testkit::{Cluster, wait_ok};

use crate::{STREAMD, bounded, create_active, random_entries, shard_leader, test_rng};

const STREAM: &str = "t56-otlp";

/// One exported span: the node that exported it (resource attribute `streamd.node.id`), its
/// trace id and its name.
#[derive(Debug, Clone)]
struct Received {
    node: i64,
    trace_id: Vec<u8>,
    name: String,
}

/// The collector: keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let node = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "streamd.node.id")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::IntValue(v) => Some(*v),
                    _ => None,
                })
                .unwrap_or(-1);
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Received {
                    node,
                    trace_id: span.trace_id,
                    name: span.name,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forwarded_write_is_one_trace_across_nodes() {
    bounded(Duration::from_secs(120), "t56", async {
        let mut rng = test_rng("t56");
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(collector.clone())
                        .max_decoding_message_size(256 * 1024 * 1024),
                )
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let mut cluster = Cluster::builder()
            .nodes(3)
            .binary(STREAMD)
            .arg("--otlp-endpoint")
            .arg(endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "3600000")
            .env("OTEL_BSP_MAX_QUEUE_SIZE", "1000000")
            .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000000")
            .start()
            .await;
        let client = cluster.client();
        create_active(&client, STREAM, 1).await;
        let shards = client.list_shards(STREAM).await.unwrap();
        let leader = shard_leader(&client, STREAM, &shards[0].shard_id).await;
        let follower = cluster
            .node_ids()
            .into_iter()
            .find(|&id| id != leader)
            .unwrap();
        let resp = cluster
            .node_client(follower)
            .put_records(STREAM, random_entries(&mut rng, 5, 5, 10..=20))
            .await
            .unwrap();
        assert_eq!(resp.failed_record_count, 0);
        assert!(
            collector.spans.lock().unwrap().is_empty(),
            "spans were exported before the stop"
        );
        for id in cluster.node_ids() {
            cluster.terminate(id);
        }
        for id in cluster.node_ids() {
            let status = cluster.wait_exit(id, Duration::from_secs(60)).await;
            assert!(status.success(), "node {id} exited with {status}");
        }

        // The leader handles the forwarded proposal in a `raft.propose` span; its trace must
        // also hold a span the follower exported (the PutRecords it received).
        let what = format!("a trace with spans of node {follower} and of leader {leader}");
        let shared = wait_ok(Duration::from_secs(10), &what, || async {
            let spans = collector.spans.lock().unwrap().clone();
            let mut nodes_by_trace: BTreeMap<Vec<u8>, BTreeSet<i64>> = BTreeMap::new();
            for s in &spans {
                nodes_by_trace
                    .entry(s.trace_id.clone())
                    .or_default()
                    .insert(s.node);
            }
            spans
                .iter()
                .filter(|s| s.node == leader as i64 && s.name == "raft.propose")
                .find(|s| nodes_by_trace[&s.trace_id].contains(&(follower as i64)))
                .map(|s| s.trace_id.clone())
                .ok_or_else(|| {
                    format!(
                        "{} spans from nodes {:?}, none shared",
                        spans.len(),
                        spans.iter().map(|s| s.node).collect::<BTreeSet<_>>()
                    )
                })
        })
        .await;
        let names: BTreeSet<(i64, String)> = collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == shared)
            .map(|s| (s.node, s.name.clone()))
            .collect();
        eprintln!("t56: trace {shared:02x?}: {names:?}");
        assert!(
            names.contains(&(
                follower as i64,
                "/streamd.v1.Streamd/PutRecords".to_string()
            )),
            "the follower's PutRecords span is in the trace: {names:?}"
        );
    })
    .await;
}
