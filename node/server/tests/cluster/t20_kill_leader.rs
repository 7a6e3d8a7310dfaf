//! SIGKILL of a shard leader under continuous writes: writes to its shard are acknowledged again
//! within 10 s, the restarted node catches up until all three replicas hold identical shards, and
//! no acknowledged record is lost. And a restarted leader never resumes its old term.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamd_client::{ClientOptions, StreamdClient};
use streamd_testkit::{Cluster, wait_ok, wait_until};
use tokio::time::Instant;

use crate::{
    Acked, Outcomes, StreamRecords, bounded, check_exactly_once, missing_acked, put_and_file,
    random_entries, read_stream, shard_leader, start_cluster, test_rng,
};

const STREAM: &str = "t20-events";
const SHARD_0: &str = "shardId-000000000000";
const WRITERS: usize = 4;
const BATCH: usize = 50;
/// Longest a shard may go without acknowledging writes after its leader is killed.
const MAX_WRITE_GAP: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_survive_killing_a_shard_leader() {
    bounded(Duration::from_secs(360), "t20", async {
        let mut rng = test_rng("t20");
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
            request_timeout: Duration::from_secs(3),
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

        // Acknowledged records of a shard, of calls sent after `sent_after` when given.
        let acked_on = |shard: &str, sent_after: Option<Instant>| {
            let o = outcomes.lock().unwrap();
            o.iter()
                .flat_map(|o| &o.acked)
                .filter(|a| a.shard_id == shard && sent_after.is_none_or(|t| a.sent > t))
                .count()
        };
        wait_until(
            Duration::from_secs(30),
            "200 acknowledged writes to shard 0",
            || async { acked_on(SHARD_0, None) >= 200 },
        )
        .await;

        // Asked just before the kill: leadership may have moved since the stream was created.
        let leader = shard_leader(&client, STREAM, SHARD_0).await;
        eprintln!("t20: node {leader} leads {SHARD_0}");
        cluster.kill9(leader);
        let killed_at = Instant::now();
        eprintln!("t20: killed node {leader}");
        wait_until(
            Duration::from_secs(30),
            "shard 0 to acknowledge writes after the kill",
            || async { acked_on(SHARD_0, Some(killed_at)) >= 1 },
        )
        .await;
        // Calls in flight at the kill may still be answered; what counts is how soon calls sent
        // after it are acknowledged.
        let (last_before, first_after) = {
            let o = outcomes.lock().unwrap();
            let shard0 = || {
                o.iter()
                    .flat_map(|o| &o.acked)
                    .filter(|a| a.shard_id == SHARD_0)
            };
            let before = shard0()
                .map(|a| a.at)
                .filter(|&t| t <= killed_at)
                .max()
                .unwrap();
            let after = shard0()
                .filter(|a| a.sent > killed_at)
                .map(|a| a.at)
                .min()
                .unwrap();
            (before, after)
        };
        let outage = first_after - killed_at;
        eprintln!(
            "t20: shard 0 acknowledged a write sent after the kill {outage:?} after it (gap \
             between acks {:?})",
            first_after - last_before
        );
        assert!(
            outage <= MAX_WRITE_GAP,
            "shard 0 acknowledged nothing for {outage:?}"
        );
        let new_leader = wait_ok(
            Duration::from_secs(30),
            "a new leader for shard 0",
            || async {
                let shards = client
                    .list_shards(STREAM)
                    .await
                    .map_err(|e| e.to_string())?;
                let shard = shards
                    .iter()
                    .find(|s| s.shard_id == SHARD_0)
                    .ok_or("no shard 0")?;
                match shard.leader {
                    Some(l) if l != leader => Ok(l),
                    other => Err(format!("leader reported: {other:?}")),
                }
            },
        )
        .await;
        eprintln!("t20: node {new_leader} now leads {SHARD_0}");

        let acked_now = acked_on(SHARD_0, None);
        cluster.restart(leader).await;
        eprintln!("t20: restarted node {leader}");
        wait_until(
            Duration::from_secs(30),
            "more writes after the restart",
            || async { acked_on(SHARD_0, None) >= acked_now + 100 },
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
            "t20: {} acknowledged, {} of unknown outcome, {} failed calls, errors {:?}",
            all.acked.len(),
            all.unknown.len(),
            all.failed_calls,
            all.errors
        );
        let (acked, unknown) = (all.acked, all.unknown);

        let replicas = converged_replicas(&cluster, &acked).await;
        check_exactly_once(&replicas, &acked, &unknown).unwrap();
    })
    .await;
}

async fn write_until_stopped(
    client: StreamdClient,
    writer: usize,
    seed: u64,
    outcomes: Arc<Mutex<Vec<Outcomes>>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut retry = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let mut batch = std::mem::take(&mut retry);
        batch.extend(random_entries(
            &mut rng,
            BATCH - batch.len().min(BATCH),
            10_000,
            16..=256,
        ));
        let mut out = Outcomes::default();
        let failed = put_and_file(&client, STREAM, writer, batch, &mut out)
            .await
            .is_err();
        retry = std::mem::take(&mut out.throttled);
        outcomes.lock().unwrap()[writer].absorb(out);
        if failed {
            // The client moves to another endpoint; do not spin while the cluster elects.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads every shard from each node's own replica until all nodes hold the same records and
/// every acknowledged record is among them; returns that common content.
async fn converged_replicas(cluster: &Cluster, acked: &[Acked]) -> StreamRecords {
    let clients: Vec<(u64, StreamdClient)> = cluster
        .node_ids()
        .into_iter()
        .map(|i| (i, cluster.node_client(i)))
        .collect();
    wait_ok(
        Duration::from_secs(120),
        "identical replicas on every node",
        || async {
            let mut first: Option<(u64, StreamRecords)> = None;
            for (id, client) in &clients {
                let read = read_stream(client, STREAM)
                    .await
                    .map_err(|e| format!("node {id}: {e}"))?;
                match &first {
                    None => first = Some((*id, read)),
                    Some((first_id, expected)) => {
                        if let Some(why) = difference(expected, &read) {
                            return Err(format!("node {first_id} and node {id} differ: {why}"));
                        }
                    }
                }
            }
            let (_, read) = first.ok_or("no nodes")?;
            let missing = missing_acked(&read, acked);
            if missing.is_empty() {
                Ok(read)
            } else {
                Err(format!(
                    "{} acknowledged records missing, e.g. {:?}",
                    missing.len(),
                    missing[0]
                ))
            }
        },
    )
    .await
}

fn difference(a: &StreamRecords, b: &StreamRecords) -> Option<String> {
    if a.keys().ne(b.keys()) {
        return Some(format!("shards {:?} vs {:?}", a.keys(), b.keys()));
    }
    for (shard, ra) in a {
        let rb = &b[shard];
        if ra.len() != rb.len() {
            return Some(format!("{shard}: {} vs {} records", ra.len(), rb.len()));
        }
        if let Some(i) = (0..ra.len()).find(|&i| {
            ra[i].sequence_number != rb[i].sequence_number
                || ra[i].data != rb[i].data
                || ra[i].partition_key != rb[i].partition_key
        }) {
            return Some(format!(
                "{shard} record {i}: {} vs {}",
                ra[i].sequence_number, rb[i].sequence_number
            ));
        }
    }
    None
}

const RESTORE_STREAM: &str = "t20-restore";

/// `(group, term, is_leader)` of every group in a node's `/metrics`.
async fn raft_groups(cluster: &Cluster, node: u64) -> Result<Vec<(u64, u64, bool)>, String> {
    let (code, body) = streamd_testkit::probe::http_get(
        cluster.admin_addr(node),
        "/metrics",
        Duration::from_secs(2),
    )
    .await
    .map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!("/metrics answered {code}"));
    }
    let value = |metric: &str, group: u64| {
        let prefix = format!("{metric}{{group=\"{group}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<u64>().ok())
    };
    let groups: Vec<u64> = body
        .lines()
        .filter_map(|l| {
            l.strip_prefix("streamd_raft_term{group=\"")?
                .split('"')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    Ok(groups
        .into_iter()
        .map(|g| {
            (
                g,
                value("streamd_raft_term", g).unwrap_or(0),
                value("streamd_raft_is_leader", g) == Some(1),
            )
        })
        .collect())
}

/// A leader may have sent entries it had not yet made durable itself, so after a restart it
/// must not resume leadership of its old term (it could write a different entry under a log id a
/// follower already holds). Restarted while both its peers are stopped, it cannot win a new
/// election, so it must stay a follower until they are back; then a leader of a newer term takes
/// writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_leader_must_win_a_new_election() {
    bounded(Duration::from_secs(180), "t20-restore", async {
        let mut cluster = start_cluster(3, true).await;
        let client = cluster.client();
        client.create_stream(RESTORE_STREAM, 1).await.unwrap();
        client
            .wait_stream_active(RESTORE_STREAM, Duration::from_secs(60))
            .await
            .unwrap();
        client
            .put_record(RESTORE_STREAM, "k", &b"before"[..])
            .await
            .unwrap();
        let leader = shard_leader(&client, RESTORE_STREAM, SHARD_0).await;
        // The stream's one shard is the only group besides the metadata group (0).
        let (group, term) = wait_ok(
            Duration::from_secs(30),
            "the shard leader's metrics to show it leading its group",
            || async {
                raft_groups(&cluster, leader)
                    .await?
                    .into_iter()
                    .find(|(g, _, led)| *g != 0 && *led)
                    .map(|(g, t, _)| (g, t))
                    .ok_or_else(|| "not leading a shard group".to_string())
            },
        )
        .await;
        let others: Vec<u64> = cluster
            .node_ids()
            .into_iter()
            .filter(|n| *n != leader)
            .collect();
        for &n in &others {
            cluster.pause(n);
        }
        cluster.respawn(leader);
        eprintln!("t20-restore: node {leader} led group {group} in term {term}; peers stopped, it restarted");
        wait_ok(
            Duration::from_secs(30),
            "the restarted node to open the shard group",
            || async {
                let groups = raft_groups(&cluster, leader).await?;
                groups
                    .iter()
                    .any(|(g, _, _)| *g == group)
                    .then_some(())
                    .ok_or_else(|| "group not open yet".to_string())
            },
        )
        .await;
        // Several election timeouts (1-2 s): a restored leader would show at once and stay.
        let watch_until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < watch_until {
            let groups = raft_groups(&cluster, leader).await.unwrap_or_default();
            assert!(
                !groups.iter().any(|(g, _, led)| *g == group && *led),
                "node {leader} leads group {group} again without its peers: {groups:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for &n in &others {
            cluster.resume(n);
        }
        let new_term = wait_ok(
            Duration::from_secs(30),
            "a leader of the shard group in a newer term",
            || async {
                for n in cluster.node_ids() {
                    if let Ok(groups) = raft_groups(&cluster, n).await
                        && let Some((_, t, _)) =
                            groups.iter().find(|(g, t, led)| *g == group && *led && *t > term)
                    {
                        return Ok(*t);
                    }
                }
                Err("no leader of a newer term yet".to_string())
            },
        )
        .await;
        eprintln!("t20-restore: group {group} has a leader in term {new_term} (was {term})");
        wait_ok(Duration::from_secs(30), "a write after the restart", || async {
            client
                .put_record(RESTORE_STREAM, "k", &b"after"[..])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
    })
    .await;
}
