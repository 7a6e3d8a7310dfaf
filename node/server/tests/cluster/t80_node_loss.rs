//! Self-healing: a 4-node cluster at replication factor 3 loses one node for good (SIGKILL, never
//! restarted) under continuous writes. Within 60 s every shard again has 3 replicas, all on live
//! nodes, each holding exactly the same records, with no acknowledged record lost. And a node
//! drained under writes hands its replicas and leaderships over and leaves. And a node joining
//! under writes (`--join`) gets its share of the replicas, after which another node drains.

use std::collections::BTreeMap;
use std::time::Duration;

use streamd_client::v1;
use streamd_testkit::{Cluster, wait_ok};
use tokio::time::Instant;

use crate::t70_reshard::Load;
use crate::{
    Acked, bounded, check_exactly_once, create_active, start_cluster, test_rng, writer_options,
};

const STREAM: &str = "t80-heal";
const REPAIR_BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_of_a_lost_node_are_recreated_on_the_others() {
    bounded(Duration::from_secs(300), "t80", async {
        let mut rng = test_rng("t80");
        let mut cluster = start_cluster(4, true).await;
        let client = cluster.client();
        create_active(&client, STREAM, 4).await;
        let options = writer_options();
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
        let read = identical_replicas_of(&cluster, STREAM, &shards, &all.acked).await;
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
async fn identical_replicas_of(
    cluster: &Cluster,
    stream: &str,
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
                        .read_shard_all(stream, &s.shard_id)
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

/// Draining a node under writes: its replicas and leaderships move to the other nodes, it leaves
/// the cluster, writes never stop for longer than an election, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_node_hands_everything_over_and_leaves() {
    const STREAM: &str = "t80-drain";
    bounded(Duration::from_secs(300), "t80 drain", async {
        let mut rng = test_rng("t80-drain");
        let cluster = start_cluster(4, true).await;
        let client = cluster.client();
        create_active(&client, STREAM, 4).await;
        let options = writer_options();
        // Writers talk to the nodes that stay.
        let drained = 2;
        let stay: Vec<String> = cluster
            .node_ids()
            .into_iter()
            .filter(|n| *n != drained)
            .map(|n| cluster.grpc_addr(n).to_string())
            .collect();
        let writer = || {
            streamd_client::StreamdClient::connect_with(&stay, options.clone()).unwrap()
        };
        let load = Load::start((0..4).map(|_| writer()).collect(), STREAM, &mut rng);
        load.progress(400, "writes before the drain").await;
        let admin = writer();
        admin.drain_node(drained).await.unwrap();
        let started = Instant::now();
        wait_ok(Duration::from_secs(90), "the drained node to leave", || async {
            let status = admin.cluster_status().await.map_err(|e| e.to_string())?;
            if status.nodes.iter().any(|n| n.node_id == drained) {
                return Err(format!("node {drained} still listed"));
            }
            let shards = admin.list_shards(STREAM).await.map_err(|e| e.to_string())?;
            match shards.iter().find(|s| s.replicas.len() != 3 || s.replicas.contains(&drained)) {
                Some(s) => Err(format!("{} on {:?}", s.shard_id, s.replicas)),
                None => Ok(()),
            }
        })
        .await;
        eprintln!("t80: node {drained} drained and removed {:?} after the request", started.elapsed());
        load.progress(300, "writes after the drain").await;
        let all = load.finish().await;
        let gap = longest_ack_gap(&all.acked, started);
        eprintln!(
            "t80: {} acknowledged, {} unknown, errors {:?}, longest gap between acknowledgements {gap:?}",
            all.acked.len(),
            all.unknown.len(),
            all.errors
        );
        assert!(
            gap < Duration::from_secs(5),
            "writes stalled for {gap:?} during the drain"
        );
        let shards = admin.list_shards(STREAM).await.unwrap();
        let read = identical_replicas_of(&cluster, STREAM, &shards, &all.acked).await;
        check_exactly_once(&read, &all.acked, &all.unknown).unwrap();
    })
    .await;
}

/// The longest stretch after `from` with no acknowledgement at all.
fn longest_ack_gap(acked: &[Acked], from: Instant) -> Duration {
    let mut at: Vec<Instant> = acked.iter().map(|a| a.at).filter(|t| *t >= from).collect();
    at.sort();
    at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// Within one of the mean, as rebalancing and leader balancing aim for: |c * n - total| <= n.
fn within_one_of_the_mean(counts: &[u32]) -> bool {
    let n = counts.len() as i64;
    let total: i64 = counts.iter().map(|c| i64::from(*c)).sum();
    counts
        .iter()
        .all(|c| (i64::from(*c) * n - total).abs() <= n)
}

async fn join_call(
    cluster: &Cluster,
    via: u64,
    node_id: u64,
    address: &str,
) -> Result<(), streamd_proto::ApiError> {
    let uri = format!("http://{}", cluster.grpc_addr(via));
    let mut c = streamd_proto::internal::membership_client::MembershipClient::connect(uri)
        .await
        .unwrap();
    c.join_cluster(streamd_proto::internal::JoinClusterRequest {
        node_id,
        address: address.to_string(),
    })
    .await
    .map(|_| ())
    .map_err(|s| streamd_proto::ApiError::from_status(&s))
}

/// A fifth node joins a 4-node cluster under writes: it becomes a metadata voter, rebalancing
/// moves replicas onto it until every node holds within one of the mean, then another node is
/// drained. Writes never pause for long, every acknowledged record is on every replica once.
/// Then a node restarts, and leader balancing gives it its share of leaderships back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joined_node_takes_replicas_then_another_node_drains() {
    const STREAM: &str = "t80-join";
    const SHARDS: u32 = 8;
    bounded(Duration::from_secs(400), "t80 join", async {
        let mut rng = test_rng("t80-join");
        let mut cluster = start_cluster(4, true).await;
        let drained = 2;
        let stay: Vec<String> = cluster
            .node_ids()
            .into_iter()
            .filter(|n| *n != drained)
            .map(|n| cluster.grpc_addr(n).to_string())
            .collect();
        let options = writer_options();
        let writer =
            || streamd_client::StreamdClient::connect_with(&stay, options.clone()).unwrap();
        let admin = writer();
        create_active(&admin, STREAM, SHARDS).await;
        let load = Load::start((0..4).map(|_| writer()).collect(), STREAM, &mut rng);
        load.progress(400, "writes before the join").await;

        let started = Instant::now();
        let joined = cluster.join_node().await;
        let ready_after = started.elapsed();
        eprintln!("t80: node {joined} joined and ready {ready_after:?} after it started");
        let status = wait_ok(
            Duration::from_secs(120),
            "the joined node to hold its share of the replicas",
            || async {
                let status = admin.cluster_status().await.map_err(|e| e.to_string())?;
                let me = status.nodes.iter().find(|n| n.node_id == joined);
                let Some(me) = me.filter(|n| n.voter) else {
                    return Err(format!("node {joined} not a metadata voter yet"));
                };
                let groups: Vec<u32> = status.nodes.iter().map(|n| n.groups).collect();
                if me.groups == 0 || !within_one_of_the_mean(&groups) {
                    return Err(format!("replicas per node {groups:?}"));
                }
                // The map moved; wait until the groups' voters did too (every replica serves).
                let shards = admin.list_shards(STREAM).await.map_err(|e| e.to_string())?;
                for s in shards.iter().filter(|s| s.replicas.contains(&joined)) {
                    cluster
                        .node_client(joined)
                        .read_shard_all(STREAM, &s.shard_id)
                        .await
                        .map_err(|e| format!("node {joined} {}: {e}", s.shard_id))?;
                }
                Ok(status)
            },
        )
        .await;
        let balanced_after = started.elapsed();
        eprintln!(
            "t80: replicas balanced {balanced_after:?} after the join started: {:?}",
            status
                .nodes
                .iter()
                .map(|n| (n.node_id, n.groups))
                .collect::<Vec<_>>()
        );
        load.progress(300, "writes after the rebalance").await;

        // The joined node holds the cluster secret: an iterator another node issued reads there.
        let iterator = cluster
            .node_client(1)
            .get_shard_iterator(
                STREAM,
                "shardId-000000000000",
                v1::ShardIteratorType::TrimHorizon,
                None,
                None,
            )
            .await
            .unwrap();
        let page = cluster
            .node_client(joined)
            .get_records(&iterator, Some(10))
            .await
            .unwrap();
        assert!(page.next_shard_iterator.is_some());

        // Joining again is a no-op; a taken id or a taken address is refused.
        let addr = cluster.grpc_addr(joined).to_string();
        join_call(&cluster, 1, joined, &addr).await.unwrap();
        let e = join_call(&cluster, 3, joined, "127.0.0.1:1")
            .await
            .unwrap_err();
        assert_eq!(e.code, streamd_client::ErrorCode::ResourceInUse, "{e}");
        let e = join_call(&cluster, 3, 99, &addr).await.unwrap_err();
        assert_eq!(e.code, streamd_client::ErrorCode::ResourceInUse, "{e}");

        admin.drain_node(drained).await.unwrap();
        let drain_started = Instant::now();
        wait_ok(
            Duration::from_secs(120),
            "the drained node to leave",
            || async {
                let status = admin.cluster_status().await.map_err(|e| e.to_string())?;
                if status.nodes.iter().any(|n| n.node_id == drained) {
                    return Err(format!("node {drained} still listed"));
                }
                let shards = admin.list_shards(STREAM).await.map_err(|e| e.to_string())?;
                match shards
                    .iter()
                    .find(|s| s.replicas.len() != 3 || s.replicas.contains(&drained))
                {
                    Some(s) => Err(format!("{} on {:?}", s.shard_id, s.replicas)),
                    None => Ok(()),
                }
            },
        )
        .await;
        let drained_after = drain_started.elapsed();
        eprintln!("t80: node {drained} drained and removed {drained_after:?} after the request");
        // A removed node's id is never reused.
        let e = join_call(
            &cluster,
            1,
            drained,
            &cluster.grpc_addr(drained).to_string(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, streamd_client::ErrorCode::InvalidArgument, "{e}");
        load.progress(300, "writes after the drain").await;
        let all = load.finish().await;
        let gap = longest_ack_gap(&all.acked, started);
        eprintln!(
            "t80: {} acknowledged, {} unknown, errors {:?}, longest gap between acknowledgements \
             from the join on {gap:?}",
            all.acked.len(),
            all.unknown.len(),
            all.errors
        );
        assert!(
            gap < Duration::from_secs(5),
            "writes stalled for {gap:?} during the join, rebalance or drain"
        );
        let shards = admin.list_shards(STREAM).await.unwrap();
        let read = identical_replicas_of(&cluster, STREAM, &shards, &all.acked).await;
        check_exactly_once(&read, &all.acked, &all.unknown).unwrap();
        eprintln!(
            "t80: every replica identical {:?} after the join started",
            started.elapsed()
        );
        // After a failure heals, leaderships spread again: a restarted node leads nothing at
        // first, then leader balancing hands it its share.
        let bounced = 3;
        cluster.kill9(bounced);
        wait_ok(
            Duration::from_secs(30),
            "the killed node's leaderships taken over",
            || async {
                let status = admin.cluster_status().await.map_err(|e| e.to_string())?;
                let leaders: Vec<(u64, u32)> = status
                    .nodes
                    .iter()
                    .map(|n| (n.node_id, n.leaders))
                    .collect();
                let total: u32 = leaders.iter().map(|l| l.1).sum();
                let held = leaders.iter().any(|(n, l)| *n == bounced && *l > 0);
                if total == SHARDS && !held {
                    Ok(())
                } else {
                    Err(format!("leaders per node {leaders:?}"))
                }
            },
        )
        .await;
        cluster.start(bounced).await;
        let restarted = Instant::now();
        eprintln!("t80: node {bounced} killed, its leaderships taken over, restarted");
        let status = wait_ok(Duration::from_secs(90), "leaderships spread", || async {
            let status = admin.cluster_status().await.map_err(|e| e.to_string())?;
            let leaders: Vec<u32> = status.nodes.iter().map(|n| n.leaders).collect();
            let total: u32 = leaders.iter().sum();
            let bounced_leads = status
                .nodes
                .iter()
                .any(|n| n.node_id == bounced && n.leaders > 0);
            if total == SHARDS && bounced_leads && within_one_of_the_mean(&leaders) {
                Ok(status)
            } else {
                Err(format!("leaders per node {leaders:?}"))
            }
        })
        .await;
        eprintln!(
            "t80: leaders per node {:?}, {:?} after node {bounced} restarted",
            status
                .nodes
                .iter()
                .map(|n| (n.node_id, n.leaders))
                .collect::<Vec<_>>(),
            restarted.elapsed()
        );
    })
    .await;
}
