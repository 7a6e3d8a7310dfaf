//! A node started without `--initial-cluster` forms a one-node cluster on its own.

use std::time::Duration;

use streamd_testkit::{Cluster, wait_ok};

use crate::{STREAMD, bounded, test_rng};

const STREAM: &str = "t50-solo";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lone_node_forms_a_cluster() {
    bounded(Duration::from_secs(120), "t50", async {
        let mut rng = test_rng("t50");
        let cluster = Cluster::builder()
            .nodes(1)
            .binary(STREAMD)
            .initial_cluster(false)
            .start()
            .await;
        assert!(!cluster.args(1).iter().any(|a| a == "--initial-cluster"));
        let client = cluster.client();

        let status = wait_ok(Duration::from_secs(30), "a metadata leader", || async {
            let s = client.cluster_status().await.map_err(|e| e.to_string())?;
            if s.metadata_leader.is_some() {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        })
        .await;
        assert_eq!(status.nodes.len(), 1, "{status:?}");
        assert_eq!(status.metadata_leader, Some(1));

        client.create_stream(STREAM, 1).await.unwrap();
        client
            .wait_stream_active(STREAM, Duration::from_secs(30))
            .await
            .unwrap();
        let shards = client.list_shards(STREAM).await.unwrap();
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].replicas, vec![1]);

        let mut puts = Vec::new();
        for i in 0..20 {
            let data = crate::random_data(&mut rng, 1 + i * 10);
            let resp = client
                .put_record(STREAM, &format!("k{i}"), data.clone())
                .await
                .unwrap();
            assert_eq!(resp.shard_id, shards[0].shard_id);
            puts.push((resp.sequence_number, data));
        }
        let records = wait_ok(
            Duration::from_secs(10),
            "the records to be readable",
            || async {
                let r = client.read_shard_all(STREAM, &shards[0].shard_id).await;
                match r {
                    Ok(r) if r.len() >= puts.len() => Ok(r),
                    Ok(r) => Err(format!("{} of {} records", r.len(), puts.len())),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        let got: Vec<_> = records
            .into_iter()
            .map(|r| (r.sequence_number, r.data))
            .collect();
        assert_eq!(got, puts, "records come back in put order with their bytes");
    })
    .await;
}
