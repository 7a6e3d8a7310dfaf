//! SIGTERM of a node that leads shards while clients write continuously: it hands every
//! leadership over before it exits, exits 0, every write either succeeds or fails retryably, no
//! acknowledged record is lost, and each shard's longest pause between acknowledgements stays
//! well under an election timeout (the figure is printed: `t85: longest write gap`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamd_client::{ClientOptions, ErrorCode, StreamdClient};
use streamd_testkit::{probe, wait_until};
use tokio::time::Instant;

use crate::{
    Outcomes, bounded, check_exactly_once, put_and_file, random_entries, read_until_complete,
    shard_leader, start_cluster, test_rng,
};

const STREAM: &str = "t85-events";
const SHARD_0: &str = "shardId-000000000000";
const WRITERS: usize = 4;
const BATCH: usize = 20;
/// The shortest election timeout (`RaftOptions::election_min_ms`): a stop without a handoff
/// leaves a shard without a leader for at least this long.
const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_hands_leadership_over_without_losing_writes() {
    bounded(Duration::from_secs(240), "t85", async {
        let mut rng = test_rng("t85");
        let mut cluster = start_cluster(3, true).await;
        let client = cluster.client();
        client.create_stream(STREAM, 4).await.unwrap();
        client
            .wait_stream_active(STREAM, Duration::from_secs(60))
            .await
            .unwrap();
        let outcomes: Arc<Mutex<Vec<Outcomes>>> = Arc::new(Mutex::new(
            (0..WRITERS).map(|_| Outcomes::default()).collect(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let options = ClientOptions {
            request_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let client = cluster.client_with(options.clone());
            let (outcomes, stop) = (outcomes.clone(), stop.clone());
            let seed: u64 = rand::Rng::random(&mut rng);
            writers.push(tokio::spawn(write_until_stopped(
                client, w, seed, outcomes, stop,
            )));
        }
        let acked = || -> usize {
            let o = outcomes.lock().unwrap();
            o.iter().map(|o| o.acked.len()).sum()
        };
        wait_until(
            Duration::from_secs(30),
            "500 acknowledged writes",
            || async { acked() >= 500 },
        )
        .await;

        let node = shard_leader(&client, STREAM, SHARD_0).await;
        let admin = cluster.admin_addr(node);
        let led_before = leading(admin).await.unwrap_or_default();
        eprintln!("t85: node {node} leads groups {led_before:?}; sending SIGTERM");
        assert!(!led_before.is_empty(), "node {node} leads nothing");
        let term_at = Instant::now();
        cluster.terminate(node);
        // The stopping node answers 503 "shutting down" until its admin port closes.
        let mut saw_shutting_down = false;
        while let Ok((code, body)) = probe::http_get(admin, "/readyz", Duration::from_secs(1)).await
        {
            saw_shutting_down |= code == 503 && body.contains("shutting down");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let status = cluster.wait_exit(node, Duration::from_secs(30)).await;
        let exited_at = Instant::now();
        // Leaderships moved before the exit: the survivors lead every group the node led
        // already, well before an election timeout could have elected anyone.
        let mut led_after = Vec::new();
        for other in cluster.node_ids().into_iter().filter(|n| *n != node) {
            led_after.extend(leading(cluster.admin_addr(other)).await.unwrap_or_default());
        }
        let since_exit = exited_at.elapsed();
        eprintln!(
            "t85: node {node} exited with {status} {:?} after SIGTERM; {since_exit:?} after \
             the exit the others lead {led_after:?}",
            exited_at - term_at
        );
        assert_eq!(status.code(), Some(0), "a graceful stop exits 0");
        assert!(
            saw_shutting_down,
            "/readyz never answered 503 shutting down"
        );
        let orphaned: Vec<u64> = led_before
            .iter()
            .filter(|g| !led_after.contains(g))
            .copied()
            .collect();
        assert!(
            orphaned.is_empty() && since_exit < ELECTION_TIMEOUT_MIN,
            "groups {orphaned:?} had no leader {since_exit:?} after node {node} exited"
        );

        // Keep writing a while on the two remaining nodes.
        let acked_at_exit = acked();
        wait_until(
            Duration::from_secs(30),
            "more writes after the stop",
            || async { acked() >= acked_at_exit + 200 },
        )
        .await;
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.await.unwrap();
        }
        let mut all = Outcomes::default();
        for o in std::mem::take(&mut *outcomes.lock().unwrap()) {
            all.absorb(o);
        }
        eprintln!(
            "t85: {} acknowledged, {} of unknown outcome, {} failed calls, errors {:?}",
            all.acked.len(),
            all.unknown.len(),
            all.failed_calls,
            all.errors
        );
        // Everything a stopping node answers is retryable; InternalFailure would not be.
        for code in all.errors.keys() {
            let retryable = ErrorCode::from_name(code).is_some_and(|c| c.retryable());
            assert!(
                retryable,
                "a write failed with {code}, which is not retryable"
            );
        }

        // The longest pause between acknowledgements, per shard, around the stop.
        let window = (
            term_at - Duration::from_secs(1),
            exited_at + Duration::from_secs(1),
        );
        let mut gaps: Vec<(String, Duration)> = Vec::new();
        let mut shards: Vec<&str> = all.acked.iter().map(|a| a.shard_id.as_str()).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            let mut at: Vec<Instant> = all
                .acked
                .iter()
                .filter(|a| a.shard_id == shard && a.at >= window.0 && a.at <= window.1)
                .map(|a| a.at)
                .collect();
            at.sort_unstable();
            let gap = at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
            gaps.push((shard.to_string(), gap));
        }
        let (worst_shard, worst) = gaps.iter().max_by_key(|(_, g)| *g).cloned().unwrap();
        eprintln!("t85: longest write gap {worst:?} ({worst_shard}); per shard {gaps:?}");
        assert!(
            worst < ELECTION_TIMEOUT_MIN,
            "{worst_shard} acknowledged nothing for {worst:?}, an election timeout or more"
        );

        let survivors = cluster.client();
        let read =
            read_until_complete(&survivors, STREAM, &all.acked, Duration::from_secs(60)).await;
        check_exactly_once(&read, &all.acked, &all.unknown).unwrap();
    })
    .await;
}

/// The groups a node's `/metrics` shows it leading; None when its admin port does not answer.
async fn leading(admin: std::net::SocketAddr) -> Option<Vec<u64>> {
    let (code, body) = probe::http_get(admin, "/metrics", Duration::from_secs(1))
        .await
        .ok()?;
    (code == 200).then(|| {
        body.lines()
            .filter(|l| l.ends_with(" 1"))
            .filter_map(|l| {
                l.strip_prefix("streamd_raft_is_leader{group=\"")?
                    .split('"')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    })
}

async fn write_until_stopped(
    client: StreamdClient,
    writer: usize,
    seed: u64,
    outcomes: Arc<Mutex<Vec<Outcomes>>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    while !stop.load(Ordering::SeqCst) {
        let batch = random_entries(&mut rng, BATCH, 10_000, 16..=128);
        let mut out = Outcomes::default();
        let failed = put_and_file(&client, STREAM, writer, batch, &mut out)
            .await
            .is_err();
        outcomes.lock().unwrap()[writer].absorb(out);
        if failed {
            // The client moves to another endpoint; do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
