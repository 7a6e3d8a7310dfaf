//! streamctl end to end: the real `streamctl` binary against a real local cluster (four `streamd`
//! processes from `streamd-testkit`), every subcommand, asserting on `--output json`, exit codes
//! and error messages.
//!
//! - t10: cluster and node views, stream lifecycle, put (args, stdin, file), get from every
//!   position, tail across a split, a merge and a scale, shard views, retention, node drain and
//!   remove, completions, profiles and the environment.
//! - t20: bench produce, consume and e2e with `--json`.
//! - t30: errors: a missing stream, a bad argument, a refused request, an unreachable cluster.
//!
//! One cluster serves all of it (starting clusters is the cost on 2 cores). The `streamd` binary
//! is `$STREAMD_BIN`, else the one Cargo built beside this test (`cargo build --release --bin
//! streamd`; `cargo nextest run --workspace` builds it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod t10_operate;
mod t20_bench;
mod t30_errors;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use streamd_testkit::Cluster;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

pub(crate) const STREAMCTL: &str = env!("CARGO_BIN_EXE_streamctl");

/// A test body's overall limit.
pub(crate) const TEST_LIMIT: Duration = Duration::from_secs(400);

pub(crate) async fn start_cluster(nodes: u64) -> Cluster {
    let binary = streamd_testkit::default_binary();
    assert!(
        binary.is_file(),
        "no streamd binary at {}: build it with `cargo build --release --bin streamd` or set STREAMD_BIN",
        binary.display()
    );
    Cluster::builder()
        .nodes(nodes)
        .binary(binary)
        .shard_limits_off(true)
        .start()
        .await
}

/// Runs `streamctl` with a clean environment: no profile, config or endpoint from the machine.
pub(crate) struct Ctl {
    /// `--endpoint` value; None runs without one.
    pub(crate) endpoint: Option<String>,
    pub(crate) env: Vec<(String, String)>,
    /// An empty home, so no user config is read.
    pub(crate) home: PathBuf,
}

/// What one run gave.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and parses stdout as JSON.
    pub(crate) fn json(&self) -> Value {
        assert_eq!(self.code, 0, "streamctl failed: {self:?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts exit code `code` and that stderr contains `needle`.
    pub(crate) fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "wrong exit code: {self:?}");
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:?}"
        );
    }
}

impl Ctl {
    pub(crate) fn new(cluster: &Cluster, home: &Path) -> Ctl {
        Ctl {
            endpoint: Some(cluster.grpc_endpoints().join(",")),
            env: Vec::new(),
            home: home.to_path_buf(),
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(STREAMCTL);
        if let Some(e) = &self.endpoint {
            cmd.arg("--endpoint").arg(e);
        }
        cmd.args(args)
            .env_remove("STREAMCTL_ENDPOINT")
            .env_remove("STREAMCTL_PROFILE")
            .env_remove("STREAMCTL_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &self.home)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().await.expect("run streamctl"))
    }

    /// `args` with `--output json`, which must succeed.
    pub(crate) async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        self.run(&all).await.json()
    }

    /// Runs with `input` on stdin.
    pub(crate) async fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn streamctl");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(input).await.expect("write stdin");
        drop(stdin);
        Run::from(child.wait_with_output().await.expect("wait for streamctl"))
    }
}

/// Runs a test body under an overall deadline.
pub(crate) async fn bounded<F: std::future::Future>(what: &str, body: F) -> F::Output {
    match tokio::time::timeout(TEST_LIMIT, body).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {TEST_LIMIT:?}"),
    }
}

/// `v[key]` as an array.
pub(crate) fn arr<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array in {v}"))
}
