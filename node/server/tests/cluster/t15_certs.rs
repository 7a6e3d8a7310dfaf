//! `streamd certs` through the binary: a CA, a node certificate and a client certificate in a
//! fresh directory, keys readable by their owner only, nothing replaced without `--force`, and
//! no node started by any of it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::{STREAMD, bounded};

/// Runs `streamd ARGS`; a command that starts a node instead would never exit, and fails the
/// test at the deadline.
async fn streamd(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(STREAMD)
        .args(args)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(output) => output.unwrap(),
        Err(_) => panic!("`streamd {}` did not exit", args.join(" ")),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn certs_commands_make_a_ca_and_certificates_signed_by_it() {
    bounded(Duration::from_secs(120), "t15", async {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        let ca = ca.to_str().unwrap();
        let out = dir.path().join("node-1");
        let out = out.to_str().unwrap();

        let o = streamd(&["certs", "init", ca]).await;
        assert!(o.status.success(), "{}", text(&o.stderr));
        let key = Path::new(ca).join("ca-key.pem");
        assert_eq!(mode(&key), 0o600);
        assert!(
            text(&std::fs::read(Path::new(ca).join("ca.pem")).unwrap())
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let first_key = std::fs::read(&key).unwrap();

        let o = streamd(&["certs", "init", ca]).await;
        assert!(!o.status.success(), "an existing CA is kept");
        assert!(text(&o.stderr).contains("--force"), "{}", text(&o.stderr));
        assert_eq!(std::fs::read(&key).unwrap(), first_key);

        let o = streamd(&["certs", "init", ca, "--force"]).await;
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert_ne!(std::fs::read(&key).unwrap(), first_key);

        let o = streamd(&[
            "certs",
            "issue",
            "--ca",
            ca,
            "--node-id",
            "1",
            "--name",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--out",
            out,
        ])
        .await;
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            text(&o.stdout).contains("URI streamd://node/1"),
            "{}",
            text(&o.stdout)
        );
        assert_eq!(mode(&Path::new(out).join("node-1-key.pem")), 0o600);
        assert!(Path::new(out).join("node-1.pem").exists());

        let o = streamd(&[
            "certs",
            "issue-client",
            "--ca",
            ca,
            "--name",
            "ops",
            "--out",
            out,
        ])
        .await;
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert_eq!(mode(&Path::new(out).join("ops-key.pem")), 0o600);

        // A refused request names the problem and writes nothing.
        let elsewhere = dir.path().join("elsewhere");
        let o = streamd(&[
            "certs",
            "issue",
            "--ca",
            ca,
            "--node-id",
            "2",
            "--name",
            "10.0.0.2",
            "--out",
            elsewhere.to_str().unwrap(),
        ])
        .await;
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains("--ip"), "{}", text(&o.stderr));
        assert!(!elsewhere.exists());
    })
    .await;
}
