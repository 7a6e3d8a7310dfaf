//! `bench produce|consume|e2e` on a one-node cluster, short runs: the figures are there, make
//! sense together, and `--json` writes the same report.

use crate::{Ctl, bounded, start_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_throughput_and_latency() {
    let cluster = start_cluster(1).await;
    let home = tempfile::tempdir().unwrap();
    let ctl = Ctl::new(&cluster, home.path());
    bounded("t20", async {
        let file = home.path().join("produce.json");
        let file_arg = file.to_str().unwrap();
        let v = ctl
            .json(&[
                "bench",
                "produce",
                "--shards",
                "2",
                "--concurrency",
                "4",
                "--record-size",
                "1024",
                "--batch-size",
                "50",
                "--duration",
                "2s",
                "--json",
                file_arg,
            ])
            .await;
        assert_eq!(v["mode"], "produce", "{v}");
        assert_eq!(v["shards"], 2, "{v}");
        let p = &v["produce"];
        assert!(p["records"].as_u64().unwrap() > 0, "{v}");
        assert_eq!(p["bytes"], p["records"].as_u64().unwrap() * 1024, "{v}");
        assert!(p["records_per_sec"].as_f64().unwrap() > 0.0, "{v}");
        assert!(p["mb_per_sec"].as_f64().unwrap() > 0.0, "{v}");
        let l = &p["call_latency_ms"];
        assert!(l["p50"].as_f64().unwrap() > 0.0, "{v}");
        assert!(l["p50"].as_f64() <= l["p99"].as_f64(), "{v}");
        assert!(l["p99"].as_f64() <= l["p999"].as_f64(), "{v}");
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(written, v);

        let v = ctl
            .json(&[
                "bench",
                "consume",
                "--records",
                "3000",
                "--batch-size",
                "100",
            ])
            .await;
        assert_eq!(v["produce"]["records"], 3000, "{v}");
        assert_eq!(v["consume"]["records"], 3000, "{v}");

        let v = ctl
            .json(&["bench", "e2e", "--duration", "2s", "--concurrency", "2"])
            .await;
        let produced = v["produce"]["records"].as_u64().unwrap();
        assert!(produced > 0, "{v}");
        assert_eq!(v["consume"]["records"], produced, "{v}");
        assert_eq!(v["end_to_end_latency_ms"]["samples"], produced, "{v}");

        // Bench streams are deleted afterwards.
        let list = ctl.json(&["stream", "list"]).await;
        let left: Vec<_> = crate::arr(&list, "streams")
            .iter()
            .filter(|s| s["status"] != "DELETING")
            .collect();
        assert!(left.is_empty(), "{list}");
    })
    .await;
}
