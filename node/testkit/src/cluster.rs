//! A cluster of real `streamd` processes on loopback, one temporary directory per cluster.
//!
//! Every node gets three free ports (public/internal gRPC, Kinesis, admin), a data directory
//! `<dir>/node-<i>` and a log `<dir>/node-<i>.log` (stdout and stderr, appended across restarts).
//! A node is ready when its admin port answers `GET /readyz` with 200. Dropping the cluster kills
//! every node; when the drop happens during a panic the tail of every log is printed, and with
//! `STREAMD_TEST_KEEP=1` the directory is kept.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use streamd_client::{ClientOptions, StreamdClient};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::faults::signal::{self, Signal};
use crate::logs::tail;
use crate::ports::free_ports;
use crate::probe::http_status;

/// How long `start`, `start_all` and `restart` wait for nodes to report ready.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop waits before it falls back to SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Log lines printed per node on failure (`STREAMD_TEST_LOG_LINES` overrides).
const DEFAULT_LOG_LINES: usize = 80;

/// The `streamd` binary to run when the builder names none: `$STREAMD_BIN`, else a `streamd`
/// next to the running executable or one directory up (where Cargo puts binaries relative to
/// test executables in `deps/`), else `streamd` on the `PATH`.
pub fn default_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("STREAMD_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("streamd");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("streamd")
}

/// Where one node listens and keeps its files.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: u64,
    pub grpc_addr: SocketAddr,
    pub kinesis_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
}

/// `1=127.0.0.1:p1,2=127.0.0.1:p2,...`: every node's id and gRPC address.
pub fn initial_cluster_arg(nodes: &[NodeSpec]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.grpc_addr))
        .collect::<Vec<_>>()
        .join(",")
}

/// The command line of one node (without the program name).
pub fn node_args(
    node: &NodeSpec,
    initial_cluster: Option<&str>,
    shard_limits_off: bool,
    extra: &[String],
) -> Vec<String> {
    let mut args = vec![
        "--node-id".to_string(),
        node.id.to_string(),
        "--data-dir".to_string(),
        node.data_dir.display().to_string(),
        "--grpc-addr".to_string(),
        node.grpc_addr.to_string(),
        "--kinesis-addr".to_string(),
        node.kinesis_addr.to_string(),
        "--admin-addr".to_string(),
        node.admin_addr.to_string(),
    ];
    if let Some(peers) = initial_cluster {
        args.push("--initial-cluster".to_string());
        args.push(peers.to_string());
    }
    if shard_limits_off {
        args.push("--shard-limits".to_string());
        args.push("off".to_string());
    }
    args.extend(extra.iter().cloned());
    args
}

#[derive(Debug)]
pub struct ClusterBuilder {
    nodes: u64,
    binary: Option<PathBuf>,
    shard_limits_off: bool,
    initial_cluster: bool,
    ready_timeout: Duration,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            nodes: 3,
            binary: None,
            shard_limits_off: false,
            initial_cluster: true,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl ClusterBuilder {
    /// Nodes, with ids 1..=n. Default 3.
    pub fn nodes(mut self, n: u64) -> Self {
        self.nodes = n;
        self
    }

    /// The `streamd` binary (tests pass `env!("CARGO_BIN_EXE_streamd")`). Default:
    /// [`default_binary`].
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// `--shard-limits off`: lifts per-shard throughput limits. Default: limits on.
    pub fn shard_limits_off(mut self, off: bool) -> Self {
        self.shard_limits_off = off;
        self
    }

    /// Whether nodes get `--initial-cluster`. Without it a lone node forms a one-node cluster.
    /// Default: on.
    pub fn initial_cluster(mut self, on: bool) -> Self {
        self.initial_cluster = on;
        self
    }

    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// One more argument for every node, after the standard ones.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// An environment variable for every node.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts every node and waits until all are ready. Panics (printing the nodes' logs) when a
    /// node exits or is not ready within the ready timeout.
    pub async fn start(self) -> Cluster {
        assert!(self.nodes >= 1, "a cluster needs at least one node");
        let binary = self.binary.unwrap_or_else(default_binary);
        assert!(
            binary.is_file() || binary.components().count() == 1,
            "streamd binary {} does not exist",
            binary.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("streamd-test-")
            .tempdir()
            .expect("create the cluster's temporary directory");
        let root = dir.path().to_path_buf();
        let n = usize::try_from(self.nodes).expect("node count fits usize");
        let ports = free_ports(3 * n).expect("find free loopback ports");
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let specs: Vec<NodeSpec> = (0..n)
            .map(|k| {
                let id = k as u64 + 1;
                NodeSpec {
                    id,
                    grpc_addr: loopback(ports[3 * k]),
                    kinesis_addr: loopback(ports[3 * k + 1]),
                    admin_addr: loopback(ports[3 * k + 2]),
                    data_dir: root.join(format!("node-{id}")),
                    log_path: root.join(format!("node-{id}.log")),
                }
            })
            .collect();
        let initial_cluster = self.initial_cluster.then(|| initial_cluster_arg(&specs));
        let mut cluster = Cluster {
            dir: Some(dir),
            root,
            binary,
            nodes: specs
                .into_iter()
                .map(|spec| Node {
                    spec,
                    join: None,
                    child: None,
                    paused: false,
                })
                .collect(),
            initial_cluster,
            shard_limits_off: self.shard_limits_off,
            extra_args: self.extra_args,
            env: self.env,
            ready_timeout: self.ready_timeout,
        };
        eprintln!(
            "streamd test cluster: {} node(s) in {}, gRPC {}",
            n,
            cluster.root.display(),
            cluster.grpc_endpoints().join(" ")
        );
        cluster.start_all().await;
        cluster
    }
}

#[derive(Debug)]
struct Node {
    spec: NodeSpec,
    /// `--join` seeds, for a node added with [`Cluster::join_node`].
    join: Option<String>,
    child: Option<Child>,
    paused: bool,
}

/// Running `streamd` nodes. Node ids are 1..=n.
#[derive(Debug)]
pub struct Cluster {
    dir: Option<TempDir>,
    root: PathBuf,
    binary: PathBuf,
    nodes: Vec<Node>,
    initial_cluster: Option<String>,
    shard_limits_off: bool,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    ready_timeout: Duration,
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    fn node(&self, id: u64) -> &Node {
        let index = id.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        match index.and_then(|i| self.nodes.get(i)) {
            Some(n) => n,
            None => panic!("no node {id}: node ids are 1..={}", self.nodes.len()),
        }
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        let len = self.nodes.len();
        let index = id.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        match index.and_then(|i| self.nodes.get_mut(i)) {
            Some(n) => n,
            None => panic!("no node {id}: node ids are 1..={len}"),
        }
    }

    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.spec.id).collect()
    }

    pub fn spec(&self, id: u64) -> &NodeSpec {
        &self.node(id).spec
    }

    pub fn grpc_addr(&self, id: u64) -> SocketAddr {
        self.node(id).spec.grpc_addr
    }

    pub fn kinesis_addr(&self, id: u64) -> SocketAddr {
        self.node(id).spec.kinesis_addr
    }

    pub fn admin_addr(&self, id: u64) -> SocketAddr {
        self.node(id).spec.admin_addr
    }

    pub fn data_dir(&self, id: u64) -> &Path {
        &self.node(id).spec.data_dir
    }

    pub fn log_path(&self, id: u64) -> &Path {
        &self.node(id).spec.log_path
    }

    /// The cluster's temporary directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The process id of a running node.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id).child.as_ref().map(Child::id)
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    /// Every node's gRPC endpoint, node 1 first.
    pub fn grpc_endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.spec.grpc_addr.to_string())
            .collect()
    }

    /// A client on every node's gRPC endpoint.
    pub fn client(&self) -> StreamdClient {
        self.client_with(ClientOptions::default())
    }

    pub fn client_with(&self, options: ClientOptions) -> StreamdClient {
        StreamdClient::connect_with(&self.grpc_endpoints(), options)
            .expect("loopback endpoints are valid")
    }

    /// A client on node `id` only (reads are served by that node's replica when it has one).
    pub fn node_client(&self, id: u64) -> StreamdClient {
        self.node_client_with(id, ClientOptions::default())
    }

    pub fn node_client_with(&self, id: u64, options: ClientOptions) -> StreamdClient {
        StreamdClient::connect_with(&[self.grpc_addr(id).to_string()], options)
            .expect("loopback endpoints are valid")
    }

    /// The command line node `id` runs with (without the program).
    pub fn args(&self, id: u64) -> Vec<String> {
        let node = self.node(id);
        match &node.join {
            Some(seeds) => {
                let mut args = node_args(&node.spec, None, self.shard_limits_off, &self.extra_args);
                args.push("--join".to_string());
                args.push(seeds.clone());
                args
            }
            None => node_args(
                &node.spec,
                self.initial_cluster.as_deref(),
                self.shard_limits_off,
                &self.extra_args,
            ),
        }
    }

    /// Starts one more node, with the next id, fresh ports and an empty data directory, that
    /// joins the running cluster with `--join` through every current node's gRPC address; waits
    /// until it is ready (admitted and caught up on the metadata). Returns its id.
    pub async fn join_node(&mut self) -> u64 {
        let ports = free_ports(3).expect("find free loopback ports");
        let id = self.nodes.len() as u64 + 1;
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let seeds = self.grpc_endpoints().join(",");
        self.nodes.push(Node {
            spec: NodeSpec {
                id,
                grpc_addr: loopback(ports[0]),
                kinesis_addr: loopback(ports[1]),
                admin_addr: loopback(ports[2]),
                data_dir: self.root.join(format!("node-{id}")),
                log_path: self.root.join(format!("node-{id}.log")),
            },
            join: Some(seeds),
            child: None,
            paused: false,
        });
        self.spawn(id);
        self.wait_ready(&[id]).await;
        id
    }

    fn spawn(&mut self, id: u64) {
        let args = self.args(id);
        let binary = self.binary.clone();
        let env = self.env.clone();
        let node = self.node_mut(id);
        assert!(node.child.is_none(), "node {id} is already running");
        std::fs::create_dir_all(&node.spec.data_dir).expect("create the node's data directory");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.spec.log_path)
            .expect("open the node's log");
        let _ = writeln!(
            log,
            "=== testkit: starting {} {}",
            binary.display(),
            args.join(" ")
        );
        let stderr = log.try_clone().expect("clone the node's log handle");
        let mut cmd = Command::new(&binary);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // Logs go to files: no colour codes.
        cmd.env("NO_COLOR", "1");
        cmd.envs(env);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start node {id} ({}): {e}", binary.display()));
        node.child = Some(child);
        node.paused = false;
    }

    /// Waits until every node in `ids` answers `/readyz` with 200. Panics, printing the logs, when
    /// one exits or the ready timeout passes.
    pub async fn wait_ready(&mut self, ids: &[u64]) {
        let timeout = self.ready_timeout;
        let end = Instant::now() + timeout;
        let mut pending: Vec<u64> = ids.to_vec();
        loop {
            let mut still = Vec::new();
            for &id in &pending {
                let exited = match self.node_mut(id).child.as_mut() {
                    Some(child) => child.try_wait().ok().flatten().map(|s| s.to_string()),
                    None => Some("no process".to_string()),
                };
                if let Some(status) = exited {
                    // The logs are printed when the cluster is dropped during the panic.
                    panic!(
                        "node {id} exited ({status}) before it was ready; log: {}",
                        self.log_path(id).display()
                    );
                }
                let admin = self.admin_addr(id);
                if !matches!(
                    http_status(admin, "/readyz", Duration::from_secs(2)).await,
                    Ok(200)
                ) {
                    still.push(id);
                }
            }
            pending = still;
            if pending.is_empty() {
                return;
            }
            if Instant::now() >= end {
                panic!("nodes {pending:?} not ready (GET /readyz) within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL node `id` and reap it. Does nothing if it is not running.
    pub fn kill9(&mut self, id: u64) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// Starts node `id` again with the same arguments and data (killing it first if it runs),
    /// and waits until it is ready.
    pub async fn restart(&mut self, id: u64) {
        self.kill9(id);
        self.spawn(id);
        self.wait_ready(&[id]).await;
    }

    /// Starts node `id` again with the same arguments and data (killing it first if it runs),
    /// without waiting until it is ready: for tests of a node that cannot become ready yet.
    pub fn respawn(&mut self, id: u64) {
        self.kill9(id);
        self.spawn(id);
    }

    /// Starts node `id` if it is stopped and waits until it is ready.
    pub async fn start(&mut self, id: u64) {
        if !self.is_running(id) {
            self.spawn(id);
        }
        self.wait_ready(&[id]).await;
    }

    /// Stops node `id` gracefully (SIGTERM, then SIGKILL after a timeout).
    pub async fn stop(&mut self, id: u64) {
        self.stop_nodes(&[id]).await;
    }

    /// Sends SIGTERM to node `id` without waiting; [`wait_exit`](Self::wait_exit) collects it.
    pub fn terminate(&mut self, id: u64) {
        let node = self.node_mut(id);
        let pid = node.child.as_ref().map(Child::id);
        let pid = pid.unwrap_or_else(|| panic!("node {id} is not running"));
        signal::send(pid, Signal::Term).unwrap_or_else(|e| panic!("SIGTERM node {id}: {e}"));
    }

    /// Waits until node `id` exits and returns its exit status; panics after `timeout` (the
    /// node is then killed when the cluster is dropped).
    pub async fn wait_exit(&mut self, id: u64, timeout: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            let node = self.node_mut(id);
            let child = node
                .child
                .as_mut()
                .unwrap_or_else(|| panic!("node {id} is not running"));
            if let Some(status) = child
                .try_wait()
                .unwrap_or_else(|e| panic!("waiting for node {id}: {e}"))
            {
                node.child = None;
                return status;
            }
            if Instant::now() >= end {
                panic!("node {id} did not exit within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every node gracefully (SIGTERM to all, then SIGKILL to those still up after a
    /// timeout).
    pub async fn stop_all(&mut self) {
        let ids = self.node_ids();
        self.stop_nodes(&ids).await;
    }

    async fn stop_nodes(&mut self, ids: &[u64]) {
        for &id in ids {
            let node = self.node_mut(id);
            if let Some(child) = node.child.as_ref() {
                let pid = child.id();
                if node.paused {
                    let _ = signal::send(pid, Signal::Cont);
                    node.paused = false;
                }
                let _ = signal::send(pid, Signal::Term);
            }
        }
        let end = Instant::now() + STOP_TIMEOUT;
        for &id in ids {
            loop {
                let node = self.node_mut(id);
                let Some(child) = node.child.as_mut() else {
                    break;
                };
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    node.child = None;
                    break;
                }
                if Instant::now() >= end {
                    eprintln!("node {id} ignored SIGTERM for {STOP_TIMEOUT:?}: killing it");
                    self.kill9(id);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Starts every stopped node, then waits until all nodes are ready.
    pub async fn start_all(&mut self) {
        let ids = self.node_ids();
        for &id in &ids {
            if !self.is_running(id) {
                self.spawn(id);
            }
        }
        self.wait_ready(&ids).await;
    }

    /// SIGSTOP node `id`: it keeps its sockets but answers nothing.
    pub fn pause(&mut self, id: u64) {
        let node = self.node_mut(id);
        let pid = node.child.as_ref().map(Child::id);
        let pid = pid.unwrap_or_else(|| panic!("node {id} is not running"));
        signal::send(pid, Signal::Stop).unwrap_or_else(|e| panic!("pause node {id}: {e}"));
        node.paused = true;
    }

    /// SIGCONT node `id`.
    pub fn resume(&mut self, id: u64) {
        let node = self.node_mut(id);
        let pid = node.child.as_ref().map(Child::id);
        let pid = pid.unwrap_or_else(|| panic!("node {id} is not running"));
        signal::send(pid, Signal::Cont).unwrap_or_else(|e| panic!("resume node {id}: {e}"));
        node.paused = false;
    }

    /// Prints the tail of every node's log to stderr.
    pub fn dump_logs(&self) {
        let lines = std::env::var("STREAMD_TEST_LOG_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_LOG_LINES);
        for node in &self.nodes {
            let path = &node.spec.log_path;
            eprintln!(
                "----- node {} log, last {lines} lines ({}) -----",
                node.spec.id,
                path.display()
            );
            match tail(path, lines) {
                Ok(text) => eprintln!("{text}"),
                Err(e) => eprintln!("(cannot read {}: {e})", path.display()),
            }
        }
        eprintln!("----- end of node logs -----");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if failing {
            self.dump_logs();
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let keep = failing && std::env::var("STREAMD_TEST_KEEP").is_ok_and(|v| v == "1");
        if let Some(dir) = self.dir.take() {
            if keep {
                eprintln!("STREAMD_TEST_KEEP=1: keeping {}", dir.keep().display());
            } else if failing {
                eprintln!("set STREAMD_TEST_KEEP=1 to keep {}", self.root.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u64, base: u16) -> NodeSpec {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        NodeSpec {
            id,
            grpc_addr: a(base),
            kinesis_addr: a(base + 1),
            admin_addr: a(base + 2),
            data_dir: PathBuf::from(format!("/d/node-{id}")),
            log_path: PathBuf::from(format!("/d/node-{id}.log")),
        }
    }

    #[test]
    fn command_line_is_exactly_the_documented_one() {
        let specs = vec![spec(1, 1000), spec(2, 2000), spec(3, 3000)];
        let peers = initial_cluster_arg(&specs);
        assert_eq!(peers, "1=127.0.0.1:1000,2=127.0.0.1:2000,3=127.0.0.1:3000");
        let args = node_args(&specs[1], Some(&peers), true, &[]);
        assert_eq!(
            args.join(" "),
            "--node-id 2 --data-dir /d/node-2 --grpc-addr 127.0.0.1:2000 \
             --kinesis-addr 127.0.0.1:2001 --admin-addr 127.0.0.1:2002 \
             --initial-cluster 1=127.0.0.1:1000,2=127.0.0.1:2000,3=127.0.0.1:3000 \
             --shard-limits off"
        );
        let lone = node_args(&specs[0], None, false, &["--x".to_string()]);
        assert_eq!(
            lone.join(" "),
            "--node-id 1 --data-dir /d/node-1 --grpc-addr 127.0.0.1:1000 \
             --kinesis-addr 127.0.0.1:1001 --admin-addr 127.0.0.1:1002 --x"
        );
    }

    #[tokio::test]
    #[should_panic(expected = "exited")]
    async fn a_node_that_exits_fails_the_start_with_its_log() {
        Cluster::builder()
            .nodes(1)
            .binary("/bin/false")
            .start()
            .await;
    }
}
