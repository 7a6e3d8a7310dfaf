//! Self-healing: a 4-node cluster at replication factor 3 loses one node for good (SIGKILL, never
//! restarted) under continuous writes. Within 60 s every shard again has 3 replicas, all on live
//! nodes, each holding exactly the same records, with no acknowledged record lost.

use std::collections::BTreeMap;
use std::time::Duration;

use streamd_client::{ClientOptions, v1};
use streamd_testkit::{Cluster, wait_ok};
use tokio::time::Instant;

use crate::t70_reshard::Load;
use crate::{Acked, bounded, check_exactly_once, start_cluster, test_rng};

const STREAM: &str = "t80-heal";
const REPAIR_BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_of_a_lost_node_are_recreated_on_the_others() {
    bounded(Duration::from_secs(300), "t80", async {
        let mut rng = test_rng("t80");
        let mut cluster = start_cluster(4, true).await;
        let client = cluster.client();
        client.create_stream(STREAM, 4).await.unwrap();
        client
            .wait_stream_active(STREAM, Duration::from_secs(60))
            .await
            .unwrap();
        let options = ClientOptions {
            request_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let load = Load::start(
            (0..4)
                .map(|_| cluster.client_with(options.clone()))
                .collect(),
            STREAM,
            &mut rng,
        );
        load.progress(400, "writes before the loss").await;
        // Only nodes holding a replica know its leader: ask each node.
        let victim = wait_ok(Duration::from_secs(30), "a leader for shard 0", || async {
            for id in cluster.node_ids() {
                let shards = cluster
                    .node_client(id)
                    .list_shards(STREAM)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(l) = shards
                    .iter()
                    .find(|s| s.shard_id == "shardId-000000000000")
                    .and_then(|s| s.leader)
                {
                    return Ok(l);
                }
            }
            Err("no node reports a leader yet".to_string())
        })
        .await;
        cluster.kill9(victim);
        let killed = Instant::now();
        eprintln!("t80: killed node {victim} for good");

        let shards = wait_ok(
            REPAIR_BOUND,
            "every shard back to 3 live replicas",
            || async {
                let shards = client
                    .list_shards(STREAM)
                    .await
                    .map_err(|e| e.to_string())?;
                for s in &shards {
                    if s.replicas.len() != 3 || s.replicas.contains(&victim) {
                        return Err(format!("{} on {:?}", s.shard_id, s.replicas));
                    }
                }
                Ok(shards)
            },
        )
        .await;
        eprintln!(
            "t80: shard map repaired {:?} after the kill: {:?}",
            killed.elapsed(),
            shards
                .iter()
                .map(|s| (s.shard_id.clone(), s.replicas.clone()))
                .collect::<Vec<_>>()
        );
        load.progress(300, "writes after the repair").await;
        let all = load.finish().await;
        eprintln!(
            "t80: {} acknowledged, {} of unknown outcome, errors {:?}",
            all.acked.len(),
            all.unknown.len(),
            all.errors
        );
        let read = identical_replicas(&cluster, &shards, &all.acked).await;
        eprintln!(
            "t80: every replica identical {:?} after the kill",
            killed.elapsed()
        );
        check_exactly_once(&read, &all.acked, &all.unknown).unwrap();
    })
    .await;
}

/// Reads every shard from each of its replicas (each node serves its own replica) until all
/// replicas of every shard hold the same records and every acknowledged record is among them.
async fn identical_replicas(
    cluster: &Cluster,
    shards: &[v1::Shard],
    acked: &[Acked],
) -> crate::StreamRecords {
    wait_ok(
        Duration::from_secs(90),
        "identical replicas holding every acknowledged record",
        || async {
            let mut all = BTreeMap::new();
            for s in shards {
                let mut first: Option<(u64, Vec<v1::Record>)> = None;
                for r in &s.replicas {
                    let records = cluster
                        .node_client(*r)
                        .read_shard_all(STREAM, &s.shard_id)
                        .await
                        .map_err(|e| format!("node {r} {}: {e}", s.shard_id))?;
                    match &first {
                        None => first = Some((*r, records)),
                        Some((n, expected)) if *expected != records => {
                            return Err(format!(
                                "{}: node {n} has {} records, node {r} has {}",
                                s.shard_id,
                                expected.len(),
                                records.len()
                            ));
                        }
                        Some(_) => {}
                    }
                }
                if let Some((_, records)) = first {
                    all.insert(s.shard_id.clone(), records);
                }
            }
            let missing = crate::missing_acked(&all, acked);
            if missing.is_empty() {
                Ok(all)
            } else {
                Err(format!("{} acknowledged records missing", missing.len()))
            }
        },
    )
    .await
}
