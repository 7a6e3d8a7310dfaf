//! `/metrics` on one node: every documented Raft, storage and request metric is exported, and
//! shard-level metrics appear only for the metrics a stream enabled with
//! EnableEnhancedMonitoring, and go away with DisableEnhancedMonitoring.

use std::time::Duration;

use serde_json::json;
use streamd_testkit::kinesis_http::KinesisHttp;
use streamd_testkit::{Cluster, probe, wait_ok};

use crate::{STREAMD, bounded, create_active, random_entries, test_rng};

const STREAM: &str = "t52-metrics";
const RECORDS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_follow_enhanced_monitoring() {
    bounded(Duration::from_secs(120), "t52", async {
        let mut rng = test_rng("t52");
        let cluster = Cluster::builder().nodes(1).binary(STREAMD).start().await;
        let client = cluster.client();
        create_active(&client, STREAM, 2).await;
        let kinesis = KinesisHttp::new(&cluster.kinesis_addr(1).to_string());
        kinesis
            .call(
                "EnableEnhancedMonitoring",
                json!({"StreamName": STREAM, "ShardLevelMetrics":
                    ["IncomingRecords", "IncomingBytes", "OutgoingRecords", "IteratorAgeMilliseconds"]}),
            )
            .await
            .unwrap();
        let resp = client
            .put_records(STREAM, random_entries(&mut rng, RECORDS, 100, 10..=20))
            .await
            .unwrap();
        assert_eq!(resp.failed_record_count, 0);
        let mut read = 0;
        for shard in kinesis.shard_ids(STREAM).await.unwrap() {
            let it = kinesis.trim_horizon(STREAM, &shard).await.unwrap();
            read += kinesis.get_records(&it).await.unwrap().0;
        }
        assert_eq!(read, RECORDS as u64);

        let admin = cluster.admin_addr(1);
        let body = wait_ok(Duration::from_secs(10), "the shard metrics", || async {
            let (code, body) = probe::http_get(admin, "/metrics", Duration::from_secs(2))
                .await
                .map_err(|e| e.to_string())?;
            if code == 200 && sum(&body, "streamd_shard_outgoing_records_total") == RECORDS as u64
            {
                Ok(body)
            } else {
                Err(format!("/metrics answered {code}: {body}"))
            }
        })
        .await;
        for name in [
            "streamd_raft_term{",
            "streamd_raft_is_leader{",
            "streamd_raft_leader_changes_total{",
            "streamd_raft_apply_lag{",
            "streamd_raft_log_entries{",
            "streamd_wal_fsyncs_total ",
            "streamd_wal_bytes_written_total ",
            "streamd_wal_fsync_seconds_bucket{",
            "streamd_grpc_request_seconds_count{code=\"Ok\",method=\"streamd.v1.Streamd/PutRecords\"}",
            "streamd_kinesis_request_seconds_count{action=\"GetRecords\",code=\"OK\"}",
            "streamd_shard_iterator_age_milliseconds{",
        ] {
            assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
        }
        assert_eq!(sum(&body, "streamd_shard_incoming_records_total"), RECORDS as u64);
        assert!(sum(&body, "streamd_shard_incoming_bytes_total") > 0);
        // Not enabled: not exported.
        assert!(!body.contains("streamd_shard_outgoing_bytes_total{"), "{body}");
        assert!(
            !body.contains("streamd_shard_write_provisioned_throughput_exceeded_total{"),
            "{body}"
        );

        kinesis
            .call(
                "DisableEnhancedMonitoring",
                json!({"StreamName": STREAM, "ShardLevelMetrics": ["ALL"]}),
            )
            .await
            .unwrap();
        wait_ok(Duration::from_secs(10), "no shard metrics", || async {
            let (_, body) = probe::http_get(admin, "/metrics", Duration::from_secs(2))
                .await
                .map_err(|e| e.to_string())?;
            if body.contains("streamd_shard_") {
                Err(body)
            } else {
                Ok(())
            }
        })
        .await;
    })
    .await;
}

/// The sum of a metric's samples over all label sets.
fn sum(body: &str, metric: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
