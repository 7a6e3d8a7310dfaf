//! A node whose sled state machine comes back older than the start of its Raft log refuses to
//! start with a corruption error instead of serving a shard with a hole. sled recovers a damaged
//! file by dropping what follows the damage; the test makes that state deterministically by
//! putting back a copy of the node's sled directory taken many snapshots (and log purges) ago.

use std::path::Path;
use std::time::Duration;

use streamd_testkit::Cluster;

use crate::{Outcomes, STREAMD, bounded, put_and_file, random_entries, test_rng};

const STREAM: &str = "t26-behind";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_state_machine_older_than_its_log_stops_the_node() {
    bounded(Duration::from_secs(120), "t26", async {
        let mut rng = test_rng("t26");
        let mut cluster = Cluster::builder()
            .nodes(1)
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
        let mut out = Outcomes::default();
        for _ in 0..5 {
            let batch = random_entries(&mut rng, 5, 20, 10..=200);
            put_and_file(&client, STREAM, 0, batch, &mut out)
                .await
                .unwrap();
        }
        let id = cluster.node_ids()[0];
        cluster.stop(id).await;
        let sled = cluster.data_dir(id).join("sled");
        let old = cluster.root().join("sled-early");
        copy_dir(&sled, &old);

        cluster.start(id).await;
        let client = cluster.client();
        // Well past several snapshots of the shard group, each purging the log behind it.
        for _ in 0..120 {
            let batch = random_entries(&mut rng, 1, 5, 10..=200);
            put_and_file(&client, STREAM, 0, batch, &mut out)
                .await
                .unwrap();
        }
        cluster.stop(id).await;
        std::fs::remove_dir_all(&sled).unwrap();
        copy_dir(&old, &sled);

        // Were the log not purged past the old state, the node would replay it and keep running:
        // `wait_exit` would then fail the test.
        cluster.respawn(id);
        let status = cluster.wait_exit(id, Duration::from_secs(60)).await;
        assert!(
            !status.success(),
            "the node started on a state older than its log"
        );
        let log = std::fs::read_to_string(cluster.log_path(id)).unwrap();
        let last = log.lines().rev().find(|l| l.contains("streamd stopped"));
        eprintln!("t26: {last:?}");
        assert!(
            last.is_some_and(|l| l.contains("corrupt state of group")),
            "expected a corrupt-state error, got {last:?}"
        );
    })
    .await;
}
