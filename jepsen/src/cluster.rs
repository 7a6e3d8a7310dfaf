//! The `streamd` processes of a run: each node on its own address (inside its network namespace
//! when there is one), its data in `DIR/node-<i>`, its output appended to `DIR/node-<i>.log`
//! across restarts. Process faults (SIGKILL and restart, SIGSTOP/SIGCONT) act here; readiness is
//! `GET /readyz` answering 200.
//!
//! Nodes live in *slots*: slot i is node i's network namespace and addresses, and at the start
//! node i runs there. The `membership` and `corrupt` nemeses change which node a slot holds: a
//! spare slot (prepared at the start, not in the initial cluster) takes a node that joins with
//! `--join`, a drained node leaves its slot empty, and a node that refuses its corrupt data is
//! replaced in its slot by a node with a new id. streamd never reuses a removed node's id, so a
//! slot's node ids only grow; a new id gets a fresh data directory `DIR/node-<id>` and log. Every
//! method here takes a slot; [`Cluster::node_id`] says which node is in it. Fault schedules draw
//! slots, so a fault planned for "node 2" acts on whatever node slot 2 holds then.
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
use streamd_testkit::probe::{http_get, http_status};
use tokio::time::Instant;

#[derive(Debug)]
struct Node {
    slot: u64,
    /// False for an empty slot: the spare before anything joined there, or a removed node's.
    member: bool,
    /// A node the harness stopped running for good (it refused its corrupt data) but the cluster
    /// still lists until it is removed: its address is taken until then, so the slot is not free.
    retired: Option<u64>,
    /// Seeds for `--join` (a node that joined a running cluster); else it is an initial member.
    join: Option<String>,
    /// Set while a nemesis waits for this node to start or refuse to: an exit then is an outcome
    /// the nemesis reads itself, not a crash.
    expect_exit: bool,
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
    /// The next node id never used in this run.
    next_id: u64,
    /// Flags every node starts with, after the ones the harness always gives.
    extra_args: Vec<String>,
}

/// A current member: its slot, node id and addresses.
#[derive(Debug, Clone)]
pub struct Member {
    pub slot: u64,
    pub id: u64,
    pub grpc: String,
    pub admin: SocketAddr,
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
        let nodes: Vec<Node> = specs
            .into_iter()
            .zip(netns.into_iter().chain(std::iter::repeat(None)))
            .map(|(spec, netns)| Node {
                slot: spec.id,
                member: true,
                retired: None,
                join: None,
                expect_exit: false,
                spec,
                netns,
                child: None,
                paused: false,
                env: Vec::new(),
            })
            .collect();
        let next_id = nodes.iter().map(|n: &Node| n.spec.id).max().unwrap_or(0) + 1;
        Cluster {
            binary,
            initial_cluster,
            nodes,
            next_id,
            extra_args: Vec::new(),
        }
    }

    /// Adds an empty slot (its namespace and addresses in `spec`, whose id is the slot number):
    /// nodes join there later.
    pub fn add_spare_slot(&mut self, spec: NodeSpec, netns: Option<String>) {
        self.nodes.push(Node {
            slot: spec.id,
            member: false,
            retired: None,
            join: None,
            expect_exit: false,
            spec,
            netns,
            child: None,
            paused: false,
            env: Vec::new(),
        });
    }

    /// The slots holding a member.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.member)
            .map(|n| n.slot)
            .collect()
    }

    /// Every slot, empty or not.
    pub fn slots(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.slot).collect()
    }

    /// Slots with no member, whose address no node holds.
    pub fn free_slots(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| !n.member && n.retired.is_none())
            .map(|n| n.slot)
            .collect()
    }

    /// How many nodes the cluster started with.
    pub fn initial_nodes(&self) -> usize {
        self.initial_cluster.split(',').count()
    }

    /// Stops running the node in `slot` for good while the cluster still lists it (see
    /// [`Node::retired`]); [`Cluster::release`] frees the slot once it is removed.
    pub fn retire(&mut self, slot: u64) -> io::Result<()> {
        let node = self.node_mut(slot)?;
        let id = node.spec.id;
        node.member = false;
        node.retired = Some(id);
        node.expect_exit = false;
        node.paused = false;
        if let Some(mut child) = node.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// The cluster removed the retired node of `slot`: its address is free again.
    pub fn release(&mut self, slot: u64) -> io::Result<()> {
        self.node_mut(slot)?.retired = None;
        Ok(())
    }

    /// The node id slot `slot` holds, if it holds a member.
    pub fn node_id(&self, slot: u64) -> Option<u64> {
        self.node(slot).filter(|n| n.member).map(|n| n.spec.id)
    }

    /// The slot of member `id`.
    pub fn slot_of(&self, id: u64) -> Option<u64> {
        self.nodes
            .iter()
            .find(|n| n.member && n.spec.id == id)
            .map(|n| n.slot)
    }

    /// The current members, in slot order.
    pub fn members(&self) -> Vec<Member> {
        self.nodes
            .iter()
            .filter(|n| n.member)
            .map(|n| Member {
                slot: n.slot,
                id: n.spec.id,
                grpc: n.spec.grpc_addr.to_string(),
                admin: n.spec.admin_addr,
            })
            .collect()
    }

    /// Puts a node with a new id (never used in this run) into `slot`, to start with `--join
    /// seeds` on an empty data directory. The slot's previous node must not be running. Returns
    /// the new id.
    pub fn place_new(&mut self, slot: u64, seeds: String) -> io::Result<u64> {
        let id = self.next_id;
        let node = self.node_mut(slot)?;
        if node.child.is_some() {
            return Err(io::Error::other(format!(
                "slot {slot} still runs node {}",
                node.spec.id
            )));
        }
        let out = node
            .spec
            .data_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        node.spec.id = id;
        node.spec.data_dir = out.join(format!("node-{id}"));
        node.spec.log_path = out.join(format!("node-{id}.log"));
        node.join = Some(seeds);
        node.member = true;
        node.paused = false;
        self.next_id += 1;
        Ok(id)
    }

    /// Empties `slot` (its node was removed from the cluster): kills the process if it runs.
    pub fn vacate(&mut self, slot: u64) -> io::Result<()> {
        let node = self.node_mut(slot)?;
        node.member = false;
        node.expect_exit = false;
        node.paused = false;
        if let Some(mut child) = node.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// While set, an exit of the node in `slot` is left to [`Cluster::try_exit`] and is not
    /// reported by [`Cluster::reap_exits`].
    pub fn expect_exit(&mut self, slot: u64, expect: bool) -> io::Result<()> {
        self.node_mut(slot)?.expect_exit = expect;
        Ok(())
    }

    /// The exit status of the node in `slot` if it has exited (it is then not running).
    pub fn try_exit(&mut self, slot: u64) -> io::Result<Option<String>> {
        let node = self.node_mut(slot)?;
        let Some(child) = node.child.as_mut() else {
            return Ok(Some("not running".into()));
        };
        match child.try_wait()? {
            Some(status) => {
                node.child = None;
                node.paused = false;
                Ok(Some(status.to_string()))
            }
            None => Ok(None),
        }
    }

    pub fn spec(&self, slot: u64) -> Option<&NodeSpec> {
        self.node(slot).map(|n| &n.spec)
    }

    pub fn specs(&self) -> Vec<NodeSpec> {
        self.nodes.iter().map(|n| n.spec.clone()).collect()
    }

    fn node(&self, slot: u64) -> Option<&Node> {
        self.nodes.iter().find(|n| n.slot == slot)
    }

    fn node_mut(&mut self, slot: u64) -> io::Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.slot == slot)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no slot {slot}")))
    }

    /// Flags every node starts with from now on.
    pub fn set_extra_args(&mut self, args: Vec<String>) {
        self.extra_args = args;
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
        match &node.join {
            Some(seeds) => {
                argv.extend(node_args(&node.spec, None, true, &self.extra_args));
                argv.extend(["--join".to_string(), seeds.clone()]);
            }
            None => argv.extend(node_args(
                &node.spec,
                Some(&self.initial_cluster),
                true,
                &self.extra_args,
            )),
        }
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
        if !node.member {
            return Err(io::Error::other(format!("slot {id} holds no member")));
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
        for node in self.nodes.iter_mut().filter(|n| !n.expect_exit) {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    let whose = if node.spec.id == node.slot {
                        String::new()
                    } else {
                        format!(" (node id {})", node.spec.id)
                    };
                    exits.push(Exit {
                        node: node.slot,
                        status: format!("{status}{whose}"),
                    });
                    node.child = None;
                    node.paused = false;
                }
                Ok(None) => {}
                Err(e) => exits.push(Exit {
                    node: node.slot,
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

/// What each of `admins` answers `GET /readyz` with now (the node's own reason when it is not
/// ready), for the report of a node that never became ready.
pub async fn readiness(admins: &[(u64, SocketAddr)]) -> String {
    let mut out = Vec::new();
    for &(id, addr) in admins {
        let answer = match http_get(addr, "/readyz", Duration::from_secs(2)).await {
            Ok((code, body)) => format!("{code} {}", body.trim()),
            Err(e) => format!("no answer: {e}"),
        };
        out.push(format!("{id}: {answer}"));
    }
    out.join("; ")
}
