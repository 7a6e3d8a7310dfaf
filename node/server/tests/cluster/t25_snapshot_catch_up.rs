//! A replica that missed more entries than its leader keeps in the log catches up by snapshot:
//! nodes snapshot every 20 entries and keep 10 past the snapshot, a follower is killed while 150
//! entries commit, and after its restart it must serve every acknowledged record, identical to
//! the other replicas. About 8 MiB of the records are large, so the snapshot travels in several
//! chunks.

use std::time::Duration;

use streamd_testkit::Cluster;

use crate::{
    Outcomes, STREAMD, bounded, check_exactly_once, put_and_file, random_entries,
    read_until_complete, shard_leader, test_rng,
};

const STREAM: &str = "t25-snap";
const SHARD_0: &str = "shardId-000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_replica_catches_up_by_snapshot() {
    bounded(Duration::from_secs(240), "t25", async {
        let mut rng = test_rng("t25");
        let mut cluster = Cluster::builder()
            .nodes(3)
            .binary(STREAMD)
            .shard_limits_off(true)
            .arg("--snapshot-every-entries")
            .arg("20")
            .start()
            .await;
        let client = cluster.client();
        client.create_stream(STREAM, 1).await.unwrap();
        client
            .wait_stream_active(STREAM, Duration::from_secs(60))
            .await
            .unwrap();
        let leader = shard_leader(&client, STREAM, SHARD_0).await;
        let follower = cluster
            .node_ids()
            .into_iter()
            .find(|n| *n != leader)
            .unwrap();
        cluster.kill9(follower);
        eprintln!("t25: node {leader} leads, node {follower} killed");

        // Writes go through the leader's node: the client would otherwise start at the dead one.
        let writer = cluster.node_client(leader);
        let mut out = Outcomes::default();
        for i in 0..150 {
            let sizes = if i % 4 == 0 {
                30_000..=50_000
            } else {
                10..=200
            };
            let batch = random_entries(&mut rng, 5, 50, sizes);
            put_and_file(&writer, STREAM, 0, batch, &mut out)
                .await
                .unwrap();
        }
        assert!(
            out.unknown.is_empty() && out.throttled.is_empty(),
            "{:?}",
            out.errors
        );

        cluster.restart(follower).await;
        let own = cluster.node_client(follower);
        let caught_up =
            read_until_complete(&own, STREAM, &out.acked, Duration::from_secs(90)).await;
        check_exactly_once(&caught_up, &out.acked, &[]).unwrap();
        // It did catch up by snapshot, one of several 1 MiB chunks.
        let log = std::fs::read_to_string(cluster.log_path(follower)).unwrap();
        let installed: Vec<u64> = log
            .lines()
            .filter(|l| l.contains("installed a snapshot") && l.contains("group_id=1"))
            .filter_map(|l| {
                l.split("bytes=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        eprintln!("t25: node {follower} installed snapshots of {installed:?} bytes");
        assert!(
            installed.iter().any(|b| *b > 3 << 20),
            "node {follower} installed no multi-chunk snapshot of shard 0: {installed:?}"
        );
        for other in cluster.node_ids() {
            let read = read_until_complete(
                &cluster.node_client(other),
                STREAM,
                &out.acked,
                Duration::from_secs(60),
            )
            .await;
            assert_eq!(read, caught_up, "node {other} and node {follower} differ");
        }
    })
    .await;
}
