//! Consumer groups: three workers share an eight-shard stream through leases in the cluster's
//! metadata; one dies and its shards move within the lease time; a reshard in the middle keeps
//! each key's records in order (parents before children); a worker started after the others
//! stopped gracefully receives exactly the records after their checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use streamd_client::StreamdClient;
use streamd_client::consumer::{Batch, ConsumerGroup, GroupConfig, Handler};
use tokio::time::Instant;

use crate::{bounded, create_active, start_cluster};

const STREAM: &str = "cg";
const KEYS: u32 = 40;
const LEASE: Duration = Duration::from_secs(3);

/// Every delivery: (worker, shard, key, per-key number).
type Log = Arc<Mutex<Vec<(String, String, u32, u64)>>>;

fn handler(worker: &str, log: Log) -> Handler {
    let worker = worker.to_string();
    Arc::new(move |batch: Batch| {
        let log = log.clone();
        let worker = worker.clone();
        Box::pin(async move {
            let mut log = log.lock();
            for r in &batch.records {
                let text = String::from_utf8_lossy(&r.data).to_string();
                let (k, n) = text.split_once(':').unwrap();
                log.push((
                    worker.clone(),
                    batch.shard_id.clone(),
                    k.parse().unwrap(),
                    n.parse().unwrap(),
                ));
            }
        })
    })
}

fn worker(client: &StreamdClient, id: &str, log: &Log) -> ConsumerGroup {
    let mut config = GroupConfig::new("app", STREAM, id);
    config.lease_duration = LEASE;
    config.idle_poll = Duration::from_millis(100);
    ConsumerGroup::start(client.clone(), config, handler(id, log.clone()))
}

/// Writes `rounds` records per key, in per-key order, continuing each key's numbering.
async fn produce(client: &StreamdClient, next: &mut BTreeMap<u32, u64>, rounds: u64) {
    for _ in 0..rounds {
        let entries: Vec<_> = (0..KEYS)
            .map(|k| {
                let n = next.entry(k).or_default();
                *n += 1;
                streamd_client::client::entry(format!("key-{k}"), format!("{k}:{n}").into_bytes())
            })
            .collect();
        let resp = client.put_records(STREAM, entries).await.unwrap();
        assert_eq!(resp.failed_record_count, 0, "{resp:?}");
    }
}

fn produced(next: &BTreeMap<u32, u64>) -> BTreeSet<(u32, u64)> {
    next.iter()
        .flat_map(|(k, n)| (1..=*n).map(move |i| (*k, i)))
        .collect()
}

async fn wait_delivered(log: &Log, want: &BTreeSet<(u32, u64)>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<(u32, u64)> = log.lock().iter().map(|(_, _, k, n)| (*k, *n)).collect();
        let missing = want.difference(&got).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {missing} records never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the workers hold `total` leases between them, shared evenly (a worker that
/// started first holds everything at first; the others steal one lease a round).
async fn wait_held(workers: &[&ConsumerGroup], total: usize, what: &str) -> Duration {
    let start = Instant::now();
    let share = total.div_ceil(workers.len());
    loop {
        let mut held = Vec::new();
        for w in workers {
            held.push(w.held_shards().await.len());
        }
        let even = held.iter().all(|h| *h + 1 >= share && *h <= share);
        if held.iter().sum::<usize>() == total && even {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "{what}: leases held {held:?}, want {total} in all"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_share_a_stream_survive_a_dead_worker_and_a_reshard() {
    let cluster = start_cluster(3, true).await;
    bounded(Duration::from_secs(240), "consumer group", async {
        let client = cluster.client();
        create_active(&client, STREAM, 8).await;
        let log: Log = Arc::default();
        let mut next = BTreeMap::new();

        let a = worker(&client, "a", &log);
        let b = worker(&client, "b", &log);
        let c = worker(&client, "c", &log);
        let took = wait_held(&[&a, &b, &c], 8, "three workers").await;
        eprintln!("three workers hold 3, 3 and 2 of the 8 shards after {took:?}");
        produce(&client, &mut next, 20).await;
        wait_delivered(&log, &produced(&next), "before the kill").await;

        // A worker dies without releasing anything: its shards move once its leases expire.
        let c_shards = c.held_shards().await;
        drop(c);
        produce(&client, &mut next, 20).await;
        let moved = wait_held(&[&a, &b], 8, "after a worker died").await;
        eprintln!("shards of the dead worker ({c_shards:?}) moved after {moved:?}");
        assert!(
            moved < LEASE * 3,
            "its leases must move within the lease time and a round or two: {moved:?}"
        );
        wait_delivered(&log, &produced(&next), "after the kill").await;

        // A reshard while records keep coming: 8 shards merge into 4.
        produce(&client, &mut next, 5).await;
        client.update_shard_count(STREAM, 4).await.unwrap();
        for _ in 0..10 {
            produce(&client, &mut next, 2).await;
        }
        client
            .wait_stream_active(STREAM, Duration::from_secs(60))
            .await
            .unwrap();
        produce(&client, &mut next, 10).await;
        wait_delivered(&log, &produced(&next), "after the reshard").await;
        // Parents are finished, so the four children are what is held.
        wait_held(&[&a, &b], 4, "after the reshard").await;

        // Per key, first deliveries come in the order written: within a shard, and across a
        // parent and its children. Later deliveries are redeliveries after the dead worker's
        // last checkpoint.
        let mut seen: BTreeMap<u32, u64> = BTreeMap::new();
        let mut first = BTreeSet::new();
        let mut redelivered = 0usize;
        for (w, shard, k, n) in log.lock().iter() {
            if !first.insert((*k, *n)) {
                redelivered += 1;
                continue;
            }
            let last = seen.entry(*k).or_default();
            assert!(
                *n == *last + 1,
                "key {k}: record {n} first delivered after {last} (worker {w}, {shard})"
            );
            *last = *n;
        }
        eprintln!(
            "{} records delivered, {redelivered} redelivered after the dead worker's checkpoints",
            first.len()
        );

        // Graceful stops checkpoint and release: a new worker gets exactly what came after.
        a.shutdown().await;
        b.shutdown().await;
        let before = produced(&next);
        produce(&client, &mut next, 5).await;
        let after: BTreeSet<_> = produced(&next).difference(&before).copied().collect();
        let mark = log.lock().len();
        let d = worker(&client, "d", &log);
        wait_delivered(&log, &produced(&next), "after a restart").await;
        // Every shard got new records (40 keys over 4 shards), and a shard is read in order, so
        // a redelivery of anything older would already have arrived before them.
        let d_got: Vec<(u32, u64)> = log.lock()[mark..]
            .iter()
            .map(|(_, _, k, n)| (*k, *n))
            .collect();
        assert_eq!(
            d_got.len(),
            after.len(),
            "exactly the records after the checkpoints"
        );
        assert_eq!(d_got.into_iter().collect::<BTreeSet<_>>(), after);
        d.shutdown().await;
    })
    .await;
}
