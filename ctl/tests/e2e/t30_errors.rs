//! Errors: each says what to do, on stderr, with the documented exit code (`streamctl --help`):
//! 2 usage, 3 not found, 4 unreachable.

use crate::{Ctl, bounded, start_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_exit_codes_and_say_what_to_do() {
    let cluster = start_cluster(1).await;
    let home = tempfile::tempdir().unwrap();
    let ctl = Ctl::new(&cluster, home.path());
    bounded("t30", async {
        // A missing stream, for every command that names one.
        for args in [
            &["stream", "describe", "missing"][..],
            &["stream", "delete", "missing"],
            &["stream", "retention", "missing", "--hours", "48"],
            &["stream", "scale", "missing", "--shards", "2"],
            &["get", "missing"],
            &["tail", "missing"],
            &["put", "missing", "x"],
            &["shard", "list", "missing"],
            &["shard", "split", "missing", "0"],
        ] {
            let run = ctl.run(args).await;
            run.fails(
                3,
                "stream 'missing' not found; list streams with `streamctl stream list`",
            );
            assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
        }
        // Bad arguments: refused before any call.
        ctl.run(&["stream", "create", "x", "--shards", "many"])
            .await
            .fails(2, "invalid value 'many'");
        ctl.run(&["stream", "frobnicate"])
            .await
            .fails(2, "unrecognized subcommand");
        ctl.run(&["get", "x", "--from", "yesterday"])
            .await
            .fails(2, "use trim-horizon, latest");
        ctl.run(&["get", "x", "--from", "at-timestamp", "noon"])
            .await
            .fails(2, "RFC 3339");
        ctl.run(&["stream", "retention", "x", "--hours", "1"])
            .await
            .fails(2, "between 24 and 8760");
        ctl.run(&["bench", "produce", "--batch-size", "501"])
            .await
            .fails(2, "--batch-size must be 1 to 500");
        // Refused by the server as invalid: still a usage error, with the server's reason.
        ctl.run(&["stream", "create", "bad/name"])
            .await
            .fails(2, "invalid request");
        // Exists already; a shard that does not exist; a node that does not exist.
        ctl.json(&["stream", "create", "t30", "--shards", "1"])
            .await;
        ctl.run(&["stream", "create", "t30"])
            .await
            .fails(2, "already exists");
        ctl.run(&["shard", "split", "t30", "shardId-000000000007"])
            .await
            .fails(3, "`streamctl shard list t30`");
        ctl.run(&["get", "t30", "--shard", "9"])
            .await
            .fails(3, "has no shard shardId-000000000009");
        ctl.run(&["node", "remove", "42"])
            .await
            .fails(3, "node 42 is not a member");
        // Nothing to put.
        ctl.run(&["put", "t30"]).await.fails(2, "no records to put");
        // Nobody listening.
        let dead = Ctl {
            endpoint: Some("127.0.0.1:1".into()),
            env: Vec::new(),
            home: home.path().to_path_buf(),
        };
        dead.run(&["stream", "list"])
            .await
            .fails(4, "cannot reach the cluster at 127.0.0.1:1 (--endpoint)");
        // Help documents the exit codes and examples.
        let help = ctl.run(&["--help"]).await;
        assert_eq!(help.code, 0, "{help:?}");
        assert!(
            help.stdout.contains("Exit codes:") && help.stdout.contains("Examples:"),
            "{help:?}"
        );
    })
    .await;
}
