//! The `streamd` processes of a run: each node on its own address (inside its network namespace
//! when there is one), its data in `DIR/node-<i>`, its output appended to `DIR/node-<i>.log`
//! across restarts. Process faults (SIGKILL and restart, SIGSTOP/SIGCONT) act here; readiness is
//! `GET /readyz` answering 200.
//!
//! Every method is synchronous and quick (spawning, signalling, reaping), so the cluster sits
//! behind a plain mutex that is never held across an await.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use streamd_testkit::cluster::{NodeSpec, initial_cluster_arg, node_args};
use streamd_testkit::faults::signal::{self, Signal};
use streamd_testkit::probe::http_status;
use tokio::time::Instant;

#[derive(Debug)]
struct Node {
    spec: NodeSpec,
    /// The network namespace the node runs in, if any.
    netns: Option<String>,
    child: Option<Child>,
    paused: bool,
    /// Extra environment (libfaketime for the clock nemesis).
    env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Cluster {
    binary: PathBuf,
    initial_cluster: String,
    nodes: Vec<Node>,
}

/// A node that exited without the nemesis killing it.
#[derive(Debug, Clone)]
pub struct Exit {
    pub node: u64,
    pub status: String,
}

impl Cluster {
    /// Nodes `specs` (ids 1..=n), each in `netns[i]` when given. Nothing starts yet.
    pub fn new(binary: PathBuf, specs: Vec<NodeSpec>, netns: Vec<Option<String>>) -> Cluster {
        let initial_cluster = initial_cluster_arg(&specs);
        let nodes = specs
            .into_iter()
            .zip(netns.into_iter().chain(std::iter::repeat(None)))
            .map(|(spec, netns)| Node {
                spec,
                netns,
                child: None,
                paused: false,
                env: Vec::new(),
            })
            .collect();
        Cluster {
            binary,
            initial_cluster,
            nodes,
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.spec.id).collect()
    }

    pub fn spec(&self, id: u64) -> Option<&NodeSpec> {
        self.node(id).map(|n| &n.spec)
    }

    pub fn specs(&self) -> Vec<NodeSpec> {
        self.nodes.iter().map(|n| n.spec.clone()).collect()
    }

    fn node(&self, id: u64) -> Option<&Node> {
        self.nodes.iter().find(|n| n.spec.id == id)
    }

    fn node_mut(&mut self, id: u64) -> io::Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.spec.id == id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no node {id}")))
    }

    /// Sets the extra environment node `id` starts with from now on.
    pub fn set_env(&mut self, id: u64, env: Vec<(String, String)>) -> io::Result<()> {
        self.node_mut(id)?.env = env;
        Ok(())
    }

    /// The full command line of node `id` (program first).
    pub fn command_line(&self, id: u64) -> Option<Vec<String>> {
        let node = self.node(id)?;
        let mut argv = Vec::new();
        if let Some(ns) = &node.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()].map(String::from));
        }
        argv.push(self.binary.display().to_string());
        argv.extend(node_args(
            &node.spec,
            Some(&self.initial_cluster),
            true,
            &[],
        ));
        Some(argv)
    }

    /// Starts node `id` on its data directory. `ip netns exec` replaces itself with `streamd`, so
    /// the child's pid is the node's and signals reach it directly.
    pub fn spawn(&mut self, id: u64) -> io::Result<()> {
        let argv = self
            .command_line(id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no node {id}")))?;
        let node = self.node_mut(id)?;
        if node.child.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&node.spec.data_dir)?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.spec.log_path)?;
        writeln!(log, "=== jepsen: starting {}", argv.join(" "))?;
        let stderr = log.try_clone()?;
        let child = Command::new(&argv[0])
            .envs(node.env.iter().map(|(k, v)| (k, v)))
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("STREAMD_JEPSEN_NODE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .spawn()?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    pub fn spawn_all(&mut self) -> io::Result<()> {
        for id in self.ids() {
            self.spawn(id)?;
        }
        Ok(())
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: u64) -> io::Result<()> {
        let node = self.node_mut(id)?;
        node.paused = false;
        match node.child.take() {
            Some(mut child) => {
                child.kill()?;
                child.wait()?;
                Ok(())
            }
            None => Err(io::Error::other(format!("node {id} is not running"))),
        }
    }

    pub fn pause(&mut self, id: u64) -> io::Result<()> {
        self.signal_paused(id, Signal::Stop, true)
    }

    pub fn resume(&mut self, id: u64) -> io::Result<()> {
        self.signal_paused(id, Signal::Cont, false)
    }

    /// Sends SIGSTOP or SIGCONT to a running node and records whether it is now paused.
    fn signal_paused(&mut self, id: u64, sig: Signal, paused: bool) -> io::Result<()> {
        let node = self.node_mut(id)?;
        let pid = node
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| io::Error::other(format!("node {id} is not running")))?;
        signal::send(pid, sig)?;
        node.paused = paused;
        Ok(())
    }

    /// The process id of node `id`, when it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id)?.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).is_some_and(|n| n.child.is_some())
    }

    pub fn paused(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.paused)
            .map(|n| n.spec.id)
            .collect()
    }

    /// Nodes that exited on their own since the last call; they are marked as not running.
    pub fn reap_exits(&mut self) -> Vec<Exit> {
        let mut exits = Vec::new();
        for node in &mut self.nodes {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    exits.push(Exit {
                        node: node.spec.id,
                        status: status.to_string(),
                    });
                    node.child = None;
                    node.paused = false;
                }
                Ok(None) => {}
                Err(e) => exits.push(Exit {
                    node: node.spec.id,
                    status: format!("cannot be waited for: {e}"),
                }),
            }
        }
        exits
    }

    /// Kills every node (resuming paused ones is unnecessary: SIGKILL ends stopped processes).
    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            node.paused = false;
        }
    }

    pub fn log_path(&self, id: u64) -> Option<&Path> {
        self.node(id).map(|n| n.spec.log_path.as_path())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Waits until every admin address answers `GET /readyz` with 200. Returns the nodes still not
/// ready when `timeout` passes.
pub async fn wait_ready(admins: &[(u64, SocketAddr)], timeout: Duration) -> Result<(), Vec<u64>> {
    let end = Instant::now() + timeout;
    let mut pending: Vec<(u64, SocketAddr)> = admins.to_vec();
    loop {
        let mut still = Vec::new();
        for &(id, addr) in &pending {
            if !matches!(
                http_status(addr, "/readyz", Duration::from_secs(2)).await,
                Ok(200)
            ) {
                still.push((id, addr));
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(pending.into_iter().map(|(id, _)| id).collect());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
