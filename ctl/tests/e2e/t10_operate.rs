//! Every operating subcommand on a four-node cluster (four, so one can be drained while every
//! shard keeps three replicas).

use std::collections::HashSet;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{Ctl, arr, bounded, start_cluster};

const STREAM: &str = "t10-orders";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_a_real_cluster() {
    let cluster = start_cluster(4).await;
    let home = tempfile::tempdir().unwrap();
    let ctl = Ctl::new(&cluster, home.path());
    bounded("t10", async {
        cluster_views(&ctl).await;
        let mut put = stream_and_records(&ctl, home.path()).await;
        tail_across_reshards(&ctl, &mut put).await;
        retention(&ctl).await;
        consumers(&ctl).await;
        endpoints_from_profile_and_env(&cluster, home.path()).await;
        drain_and_remove(&ctl).await;
        completions(&ctl).await;
        let deleted = ctl.json(&["stream", "delete", STREAM]).await;
        assert_eq!(deleted["status"], "DELETED", "{deleted}");
        ctl.run(&["stream", "describe", STREAM])
            .await
            .fails(3, "not found");
    })
    .await;
}

async fn consumers(ctl: &Ctl) {
    let reg = ctl.json(&["consumer", "register", STREAM, "billing"]).await;
    assert_eq!(reg["name"], "billing", "{reg}");
    assert!(
        reg["arn"].as_str().unwrap().contains("/consumer/billing:"),
        "{reg}"
    );
    let list = ctl.json(&["consumer", "list", STREAM]).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing"], "{list}");
    ctl.run(&["consumer", "register", STREAM, "billing"])
        .await
        .fails(1, "already exists");
    ctl.run(&["consumer", "register", STREAM, "bad name"])
        .await
        .fails(2, "[a-zA-Z0-9_.-]");
    ctl.run(&["consumer", "list", "no-such-stream"])
        .await
        .fails(3, "not found");
    let gone = ctl
        .json(&["consumer", "deregister", STREAM, "billing"])
        .await;
    assert_eq!(gone["deregistered"], true, "{gone}");
    ctl.run(&["consumer", "deregister", STREAM, "billing"])
        .await
        .fails(3, "not found");
}

async fn cluster_views(ctl: &Ctl) {
    let status = ctl.json(&["cluster", "status"]).await;
    let nodes = arr(&status, "nodes");
    assert_eq!(nodes.len(), 4, "{status}");
    assert_eq!(status["nodes_live"], 4, "{status}");
    let leader = status["metadata_leader"]
        .as_u64()
        .expect("a metadata leader");
    let marked: Vec<u64> = nodes
        .iter()
        .filter(|n| n["metadata_leader"] == true)
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert_eq!(marked, [leader], "{status}");
    for n in nodes {
        assert_eq!(n["live"], true, "{n}");
        assert_eq!(n["draining"], false, "{n}");
        assert!(n["groups"].is_u64() && n["leaders"].is_u64(), "{n}");
    }
    let list = ctl.json(&["node", "list"]).await;
    assert_eq!(arr(&list, "nodes").len(), 4, "{list}");
    // Text output is a table with a header.
    let text = ctl.run(&["cluster", "status"]).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("metadata leader: node"), "{text:?}");
}

/// Records written so far: (partition key, data, sequence number), in acknowledgement order.
type Put = Vec<(String, String, String)>;

fn acked(v: &Value, keys: &[&str], data: &[&str]) -> Put {
    let results = arr(v, "results");
    assert_eq!(results.len(), data.len(), "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key = keys.get(i).or(keys.first()).copied().unwrap_or("");
            (
                key.to_string(),
                data[i].to_string(),
                r["sequence_number"]
                    .as_str()
                    .expect("acknowledged")
                    .to_string(),
            )
        })
        .collect()
}

async fn stream_and_records(ctl: &Ctl, home: &std::path::Path) -> Put {
    let created = ctl
        .json(&["stream", "create", STREAM, "--shards", "2"])
        .await;
    assert_eq!(created["status"], "ACTIVE", "{created}");
    assert_eq!(created["shards"], 2, "{created}");
    let list = ctl.json(&["stream", "list"]).await;
    assert!(
        arr(&list, "streams")
            .iter()
            .any(|s| s["name"] == STREAM && s["status"] == "ACTIVE"),
        "{list}"
    );
    let d = ctl.json(&["stream", "describe", STREAM]).await;
    assert_eq!(d["open_shards"], 2, "{d}");
    assert_eq!(d["retention_hours"], 24, "{d}");
    for s in arr(&d, "shards") {
        assert_eq!(s["state"], "open", "{s}");
        assert_eq!(s["replicas"].as_array().unwrap().len(), 3, "{s}");
    }

    // From arguments, with one key: they land in order on one shard.
    let mut put = Vec::new();
    let v = ctl
        .json(&["put", STREAM, "--key", "k1", "a1", "a2", "a3"])
        .await;
    assert_eq!(v["acknowledged"], 3, "{v}");
    put.extend(acked(&v, &["k1"], &["a1", "a2", "a3"]));
    // From stdin, one per line, random keys, blank lines skipped.
    let run = ctl
        .run_with_stdin(&["put", STREAM, "-o", "json"], b"s1\n\ns2\r\ns3\n")
        .await;
    let v = run.json();
    assert_eq!(v["records"], 3, "{v}");
    let keys: HashSet<&str> = arr(&v, "results")
        .iter()
        .map(|r| r["shard_id"].as_str().unwrap())
        .collect();
    assert!(!keys.is_empty());
    put.extend(acked(&v, &["?"], &["s1", "s2", "s3"]));
    // From a file.
    let file = home.join("records.txt");
    std::fs::write(&file, "f1\nf2\n").unwrap();
    let v = ctl
        .json(&[
            "put",
            STREAM,
            "--key",
            "k2",
            "--file",
            file.to_str().unwrap(),
        ])
        .await;
    put.extend(acked(&v, &["k2"], &["f1", "f2"]));

    // Everything from TRIM_HORIZON, each record once.
    let all = ctl.json(&["get", STREAM, "--from", "trim-horizon"]).await;
    let records = arr(&all, "records");
    assert_eq!(records.len(), put.len(), "{all}");
    let k1: Vec<&str> = records
        .iter()
        .filter(|r| r["partition_key"] == "k1")
        .map(|r| r["data"].as_str().unwrap())
        .collect();
    assert_eq!(k1, ["a1", "a2", "a3"]);
    let seqs: HashSet<&str> = records
        .iter()
        .map(|r| r["sequence_number"].as_str().unwrap())
        .collect();
    for (_, _, s) in &put {
        assert!(seqs.contains(s.as_str()), "{s} not read back");
    }
    // --limit.
    let two = ctl
        .json(&["get", STREAM, "--from", "trim-horizon", "--limit", "2"])
        .await;
    assert_eq!(arr(&two, "records").len(), 2, "{two}");
    // at-sequence finds the shard itself; after-sequence skips the record.
    let a2 = &put[1].2;
    let at = ctl
        .json(&["get", STREAM, "--from", "at-sequence", a2])
        .await;
    let data: Vec<&str> = arr(&at, "records")
        .iter()
        .filter(|r| r["partition_key"] == "k1")
        .map(|r| r["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["a2", "a3"], "{at}");
    let after = ctl
        .json(&[
            "get",
            STREAM,
            "--from",
            "after-sequence",
            a2,
            "--limit",
            "1",
        ])
        .await;
    assert_eq!(arr(&after, "records")[0]["data"], "a3", "{after}");
    // --shard: only that shard's records.
    let shard = records[0]["shard_id"].as_str().unwrap();
    let one = ctl
        .json(&["get", STREAM, "--from", "trim-horizon", "--shard", shard])
        .await;
    assert!(!arr(&one, "records").is_empty());
    assert!(
        arr(&one, "records").iter().all(|r| r["shard_id"] == shard),
        "{one}"
    );
    // at-timestamp: from the first record's arrival, everything; latest: nothing yet.
    let first_ms = records
        .iter()
        .map(|r| r["arrival_ms"].as_i64().unwrap())
        .min()
        .unwrap();
    let from_ts = ctl
        .json(&[
            "get",
            STREAM,
            "--from",
            "at-timestamp",
            &first_ms.to_string(),
        ])
        .await;
    assert_eq!(arr(&from_ts, "records").len(), put.len(), "{from_ts}");
    let rfc = records[0]["arrival"].as_str().unwrap();
    let from_rfc = ctl
        .json(&["get", STREAM, "--from", "at-timestamp", rfc])
        .await;
    assert!(!arr(&from_rfc, "records").is_empty(), "{from_rfc}");
    let latest = ctl.json(&["get", STREAM, "--from", "latest"]).await;
    assert!(arr(&latest, "records").is_empty(), "{latest}");
    // Text output: one line per record.
    let text = ctl.run(&["get", STREAM, "--shard", shard]).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert_eq!(
        text.stdout.lines().count(),
        arr(&one, "records").len(),
        "{text:?}"
    );
    put
}

/// `tail` from TRIM_HORIZON while the stream is split, merged and scaled: it sees every record
/// once, and key k1's records in the order they were acknowledged.
async fn tail_across_reshards(ctl: &Ctl, put: &mut Put) {
    let before = put.len();
    let extra_rounds = 3;
    let per_round = 4;
    let expected = before + extra_rounds * per_round;
    let mut tail = ctl.command(&[
        "tail",
        STREAM,
        "--from",
        "trim-horizon",
        "--limit",
        &expected.to_string(),
        "--duration",
        "180s",
        "--output",
        "json",
    ]);
    tail.stdout(Stdio::piped());
    let mut tail = tail.spawn().expect("spawn tail");
    let stdout = tail.stdout.take().expect("stdout is piped");
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
            let _ = count_tx.send(all.len());
        }
        all
    });
    // The tail follows the shards it listed at its start: reshard only once it has printed
    // what was there, so it is surely following shard 0.
    count_rx
        .wait_for(|n| *n >= before)
        .await
        .expect("tail printed the records written before it started");

    // Split shard 0 at its middle: two children, parent closed.
    let split = ctl
        .json(&["shard", "split", STREAM, "shardId-000000000000"])
        .await;
    let children = arr(&split, "children");
    assert_eq!(children.len(), 2, "{split}");
    assert!(
        children
            .iter()
            .all(|c| c["parent_shard_id"] == "shardId-000000000000"),
        "{split}"
    );
    put.extend(put_round(ctl, 1, per_round).await);
    // Merge the two children back.
    let (a, b) = (
        children[0]["shard_id"].as_str().unwrap().to_string(),
        children[1]["shard_id"].as_str().unwrap().to_string(),
    );
    let merged = ctl.json(&["shard", "merge", STREAM, &a, &b]).await;
    assert_eq!(arr(&merged, "children").len(), 1, "{merged}");
    assert_eq!(arr(&merged, "parents").len(), 2, "{merged}");
    put.extend(put_round(ctl, 2, per_round).await);
    // Uniform scaling to 3 open shards.
    let scaled = ctl
        .json(&["stream", "scale", STREAM, "--shards", "3"])
        .await;
    assert_eq!(scaled["status"], "ACTIVE", "{scaled}");
    assert_eq!(scaled["shards"], 3, "{scaled}");
    put.extend(put_round(ctl, 3, per_round).await);
    let d = ctl.json(&["stream", "describe", STREAM]).await;
    assert_eq!(d["open_shards"], 3, "{d}");

    let shards = ctl.json(&["shard", "list", STREAM]).await;
    let closed = arr(&shards, "shards")
        .iter()
        .filter(|s| s["state"] == "closed")
        .inspect(|s| assert!(s["ending_sequence_number"].is_string(), "{s}"))
        .count();
    assert!(closed >= 3, "{shards}");

    let status = tail.wait().await.expect("tail finishes");
    let printed = reader.await.expect("tail reader");
    let stdout = printed.join("\n");
    assert!(status.success(), "tail failed ({status}): {stdout}");
    let lines: Vec<Value> = printed
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), expected, "{stdout}");
    let seen: HashSet<&str> = lines
        .iter()
        .map(|r| r["sequence_number"].as_str().unwrap())
        .collect();
    assert_eq!(seen.len(), expected, "duplicates in {stdout}");
    for (_, data, seq) in put.iter() {
        assert!(seen.contains(seq.as_str()), "tail missed {data} ({seq})");
    }
    let k1_tail: Vec<&str> = lines
        .iter()
        .filter(|r| r["partition_key"] == "k1")
        .map(|r| r["data"].as_str().unwrap())
        .collect();
    let k1_put: Vec<&str> = put
        .iter()
        .filter(|(k, _, _)| k == "k1")
        .map(|(_, d, _)| d.as_str())
        .collect();
    assert_eq!(k1_tail, k1_put, "k1's order across the reshards");
}

/// Four records with key k1, `r<round>-<i>`.
async fn put_round(ctl: &Ctl, round: usize, per_round: usize) -> Put {
    let data: Vec<String> = (0..per_round).map(|i| format!("r{round}-{i}")).collect();
    let mut args = vec!["put", STREAM, "--key", "k1"];
    args.extend(data.iter().map(String::as_str));
    let v = ctl.json(&args).await;
    let refs: Vec<&str> = data.iter().map(String::as_str).collect();
    acked(&v, &["k1"], &refs)
}

async fn retention(ctl: &Ctl) {
    let v = ctl
        .json(&["stream", "retention", STREAM, "--hours", "48"])
        .await;
    assert_eq!(v["retention_hours"], 48, "{v}");
    assert_eq!(v["previous_retention_hours"], 24, "{v}");
    let d = ctl.json(&["stream", "describe", STREAM]).await;
    assert_eq!(d["retention_hours"], 48, "{d}");
    let v = ctl
        .json(&["stream", "retention", STREAM, "--hours", "24"])
        .await;
    assert_eq!(v["previous_retention_hours"], 48, "{v}");
}

/// The endpoint from a profile (named, env-named, default) and from STREAMCTL_ENDPOINT.
async fn endpoints_from_profile_and_env(
    cluster: &streamd_testkit::Cluster,
    home: &std::path::Path,
) {
    let endpoint = cluster.grpc_endpoints().join(",");
    let config = home.join("streamctl.toml");
    std::fs::write(
        &config,
        format!(
            "default_profile = \"dead\"\n\n[profile.dead]\nendpoint = \"127.0.0.1:1\"\n\n\
             [profile.test]\nendpoint = \"{endpoint}\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let mut ctl = Ctl {
        endpoint: None,
        env: Vec::new(),
        home: home.to_path_buf(),
    };
    let v = ctl
        .json(&["--config", &config, "--profile", "test", "stream", "list"])
        .await;
    assert!(
        arr(&v, "streams").iter().any(|s| s["name"] == STREAM),
        "{v}"
    );
    // The default profile is the dead one: unreachable, and the message says where it came from.
    ctl.run(&["--config", &config, "stream", "list"])
        .await
        .fails(4, "profile dead");
    ctl.run(&["--config", &config, "--profile", "nope", "stream", "list"])
        .await
        .fails(2, "known profiles: dead, test");
    ctl.env = vec![
        ("STREAMCTL_CONFIG".into(), config.clone()),
        ("STREAMCTL_PROFILE".into(), "test".into()),
    ];
    ctl.json(&["stream", "list"]).await;
    ctl.env = vec![("STREAMCTL_ENDPOINT".into(), endpoint)];
    ctl.json(&["stream", "list"]).await;
}

async fn drain_and_remove(ctl: &Ctl) {
    let started = ctl.json(&["node", "drain", "4", "--no-wait"]).await;
    assert_eq!(started["state"], "draining", "{started}");
    let removed = ctl.json(&["node", "remove", "4"]).await;
    assert_eq!(removed["state"], "removed", "{removed}");
    let status = ctl.json(&["cluster", "status"]).await;
    let ids: Vec<u64> = arr(&status, "nodes")
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "{status}");
    let d = ctl.json(&["stream", "describe", STREAM]).await;
    for s in arr(&d, "shards").iter().filter(|s| s["state"] == "open") {
        let replicas = s["replicas"].as_array().unwrap();
        assert_eq!(replicas.len(), 3, "{s}");
        assert!(!replicas.contains(&Value::from(4)), "{s}");
    }
    ctl.run(&["node", "drain", "4"])
        .await
        .fails(3, "not a member");
}

async fn completions(ctl: &Ctl) {
    for shell in ["bash", "zsh", "fish"] {
        let run = ctl.run(&["completions", shell]).await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("streamctl"), "{shell}: {run:?}");
        assert!(run.stdout.contains("retention"), "{shell}: {run:?}");
    }
}
