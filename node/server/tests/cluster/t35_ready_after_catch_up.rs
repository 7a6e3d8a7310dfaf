//! `/readyz` of a restarted node stays 503 until its replicas have applied what was committed
//! while it was down. The node is killed, writes continue on the other two, then it restarts
//! while both peers are paused: it cannot hear from any leader, so it must not report ready
//! (its restored vote still names the old leader). Once the peers resume, the first 200 must
//! come from a node whose own replicas already hold every acknowledged record.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use streamd_testkit::{probe, wait_ok};
use tokio::time::Instant;

use crate::{
    Outcomes, bounded, missing_acked, put_and_file, random_entries, read_stream, start_cluster,
    test_rng,
};

const STREAM: &str = "t35-events";
/// How long the restarted node, cut off from its peers, is watched answering 503.
const WATCH_CUT_OFF: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_is_ready_only_once_caught_up() {
    bounded(Duration::from_secs(240), "t35", async {
        let mut rng = test_rng("t35");
        let mut cluster = start_cluster(3, true).await;
        let client = cluster.client();
        client.create_stream(STREAM, 2).await.unwrap();
        client
            .wait_stream_active(STREAM, Duration::from_secs(60))
            .await
            .unwrap();
        let node = 3;
        let peers = [1, 2];
        cluster.kill9(node);
        let mut out = Outcomes::default();
        while out.acked.len() < 5_000 {
            let batch = random_entries(&mut rng, 250, 1_000, 64..=512);
            let _ = put_and_file(&client, STREAM, 0, batch, &mut out).await;
        }
        eprintln!(
            "t35: {} records acknowledged while node {node} was down",
            out.acked.len()
        );

        for p in peers {
            cluster.pause(p);
        }
        cluster.respawn(node);
        let admin = cluster.admin_addr(node);
        let first = wait_ok(
            Duration::from_secs(60),
            "the restarted node's admin port",
            || async {
                probe::http_get(admin, "/readyz", Duration::from_secs(1))
                    .await
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        eprintln!("t35: restarted node answers {first:?} with its peers paused");
        let watch_until = Instant::now() + WATCH_CUT_OFF;
        while Instant::now() < watch_until {
            if let Ok((code, body)) =
                probe::http_get(admin, "/readyz", Duration::from_secs(1)).await
            {
                assert_eq!(code, 503, "ready while cut off from every leader: {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for p in peers {
            cluster.resume(p);
        }
        let resumed = Instant::now();
        let not_ready = AtomicU64::new(0);
        let last_reason = Mutex::new(String::new());
        wait_ok(Duration::from_secs(60), "the node to be ready", || {
            let (not_ready, last_reason) = (&not_ready, &last_reason);
            async move {
                match probe::http_get(admin, "/readyz", Duration::from_secs(1)).await {
                    Ok((200, _)) => Ok(()),
                    Ok((_, body)) => {
                        not_ready.fetch_add(1, Ordering::Relaxed);
                        *last_reason.lock().unwrap() = body.trim().to_string();
                        Err(body)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        eprintln!(
            "t35: ready {:?} after the peers resumed ({} answers 503, last {:?})",
            resumed.elapsed(),
            not_ready.load(Ordering::Relaxed),
            last_reason.lock().unwrap()
        );
        // Reads on a node are served by its own replica when it has one.
        let local = cluster.node_client(node);
        let read = read_stream(&local, STREAM).await.unwrap();
        let missing = missing_acked(&read, &out.acked);
        assert!(
            missing.is_empty(),
            "ready while its replicas miss {} acknowledged records, e.g. {:?}",
            missing.len(),
            missing.first()
        );
    })
    .await;
}
