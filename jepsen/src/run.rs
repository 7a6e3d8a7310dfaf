//! One campaign from start to verdict:
//!
//! 1. topology: network namespaces on a bridge as root, else loopback ports (process nemeses
//!    only), said in stdout and results.json;
//! 2. start the nodes, wait for `/readyz`, create the stream, wait for its shard leaders;
//! 3. workload (writers, readers) and nemesis for `--time-limit` seconds;
//! 4. stop the writers, heal everything, wait until every node is ready again, let the readers
//!    catch up, drain every shard through every node;
//! 5. with `--retention`, the retention phase (`workload/retention.rs`): clocks jumped past the
//!    retention period, the trim awaited, a node restarted, everything read again;
//! 6. tear the cluster and the network down (also on any failure or interrupt);
//! 7. read `history.jsonl` back and judge it ([`judge`], also what `check` runs).
//!
//! A failure of the harness itself (no binary, nodes never ready, ...) ends the run with exit code
//! 2 and `harness_error` in results.json; anomalies end it with exit code 1.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use streamd_client::{ErrorCode, StreamdClient};
use streamd_testkit::cluster::NodeSpec;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checkers::{self, CheckConfig, Facts};
use crate::cli::{CheckArgs, TestArgs};
use crate::cluster::{self, Cluster};
use crate::history::{
    self, Clock, F, FaultEvent, HistoryFile, MapShard, Op, OpType, Phase, Recorder, Setup,
    ShardInfo, ShardMap,
};
use crate::lazyfs;
use crate::nemesis::clock::{self, Clocks};
use crate::nemesis::{self, Kind, Target};
use crate::net::{self, Netns};
use crate::proxy::Proxy;
use crate::report::{self, Results};
use crate::workload::{self, drain, reader, retention, writer};

const STREAM: &str = "jepsen";
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Partition keys with `reshard` unless `--keys` says otherwise: few enough that each key has
/// records on both sides of a split or merge.
const RESHARD_KEYS: u32 = 128;
/// How long the drain waits for a reshard still in progress to finish after healing.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);
const PLOT_FILE: &str = "latency-throughput.png";
/// streamd's down timeout when the `corrupt` nemesis runs (see where it is set).
const CORRUPT_NODE_DOWN_TIMEOUT_S: u64 = 10;
/// What `check` carries over from a campaign's results.json when it rewrites it.
const RECHECK_KEPT: &[&str] = &[
    "args",
    "seed",
    "streamd",
    "topology",
    "schedule",
    "shards",
    "nemeses",
    "recovered",
    "drain",
    "shard_map",
    "unexpected_exits",
    "retention",
];

/// Kills the nodes, stops the proxy, unmounts their FUSE disks and removes the network when
/// dropped, whatever path the run takes.
struct Teardown {
    cluster: Arc<Mutex<Cluster>>,
    net: Option<Arc<Netns>>,
    proxy: Option<Arc<Proxy>>,
    disks: Mutex<Option<Arc<lazyfs::Disks>>>,
}

impl Teardown {
    fn run(&self) {
        match self.cluster.lock() {
            Ok(mut c) => c.kill_all(),
            Err(poisoned) => poisoned.into_inner().kill_all(),
        }
        if let Some(proxy) = &self.proxy {
            proxy.stop();
        }
        // The nodes are dead, so nothing holds the mounts.
        let disks = match self.disks.lock() {
            Ok(mut d) => d.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(disks) = disks {
            for e in disks.unmount_all() {
                eprintln!("jepsen: unmounting a node's disk: {e}");
            }
        }
        if let Some(net) = &self.net {
            net.teardown();
        }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        self.run();
    }
}

/// What the run learnt about itself, reported whatever happens.
#[derive(Debug, Default)]
struct RunLog {
    info: BTreeMap<&'static str, Value>,
    notes: Vec<String>,
    phases: BTreeMap<&'static str, f64>,
}

impl RunLog {
    fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        println!("jepsen: {note}");
        self.notes.push(note);
    }
}

enum Topology {
    Netns(Arc<Netns>),
    Loopback(String),
}

/// Slots beyond the initial nodes: one spare for the `membership` nemesis to join nodes into,
/// and for `corrupt` to start a replacement in while the broken node still holds its address.
fn spare_slots(args: &TestArgs) -> u64 {
    u64::from(args.nemesis.iter().any(|n| {
        matches!(
            n.kind(),
            Some(Kind::Membership | Kind::Corrupt | Kind::CorruptSled)
        )
    }))
}

fn choose_topology(args: &TestArgs) -> Topology {
    let reason = if args.no_netns {
        "--no-netns given".to_string()
    } else if !net::is_root() {
        "not running as root".to_string()
    } else if net::find_program("ip").is_none() {
        "the `ip` command is not installed".to_string()
    } else {
        match Netns::create(
            (args.nodes + spare_slots(args)) as usize,
            std::process::id(),
        ) {
            Ok(n) => return Topology::Netns(Arc::new(n)),
            Err(e) => format!("network namespaces could not be set up: {e}"),
        }
    };
    Topology::Loopback(reason)
}

fn node_specs(out: &Path, nodes: u64, net: Option<&Netns>) -> std::io::Result<Vec<NodeSpec>> {
    let ports = match net {
        Some(_) => Vec::new(),
        None => streamd_testkit::ports::free_ports(3 * nodes as usize)?,
    };
    Ok((1..=nodes)
        .map(|id| {
            let k = (id - 1) as usize;
            let (grpc, kinesis, admin) = match net {
                Some(n) => {
                    let ip = IpAddr::V4(n.ip(id));
                    (
                        SocketAddr::new(ip, 50051),
                        SocketAddr::new(ip, 4567),
                        SocketAddr::new(ip, 9090),
                    )
                }
                None => {
                    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
                    (
                        SocketAddr::new(ip, ports[3 * k]),
                        SocketAddr::new(ip, ports[3 * k + 1]),
                        SocketAddr::new(ip, ports[3 * k + 2]),
                    )
                }
            };
            NodeSpec {
                id,
                grpc_addr: grpc,
                kinesis_addr: kinesis,
                admin_addr: admin,
                data_dir: out.join(format!("node-{id}")),
                log_path: out.join(format!("node-{id}.log")),
            }
        })
        .collect())
}

/// Removes what an earlier run left in `out`, so the nodes start from empty data.
fn clear_out_dir(out: &Path, nodes: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    for entry in std::fs::read_dir(out)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let stale = name.starts_with("node-")
            || matches!(name.as_str(), "history.jsonl" | "results.json" | PLOT_FILE);
        if !stale {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    let _ = nodes;
    Ok(())
}

fn with_cluster<T>(cluster: &Mutex<Cluster>, f: impl FnOnce(&mut Cluster) -> T) -> T {
    match cluster.lock() {
        Ok(mut g) => f(&mut g),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

fn admins(specs: &[NodeSpec]) -> Vec<(u64, SocketAddr)> {
    specs.iter().map(|s| (s.id, s.admin_addr)).collect()
}

fn tail_logs(cluster: &Mutex<Cluster>, ids: &[u64]) {
    for &id in ids {
        let path = with_cluster(cluster, |c| c.log_path(id).map(Path::to_path_buf));
        if let Some(path) = path {
            match streamd_testkit::logs::tail(&path, 20) {
                Ok(text) => eprintln!("----- node {id} ({}) -----\n{text}", path.display()),
                Err(e) => eprintln!("cannot read {}: {e}", path.display()),
            }
        }
    }
}

/// Creates the stream (retrying while the cluster settles) and returns its shards once each has
/// a known leader, or the deadline passes. A node only knows the leaders of the groups it hosts,
/// so every node is asked.
async fn create_stream(
    client: &StreamdClient,
    per_node: &[StreamdClient],
    shards: u32,
    log: &mut RunLog,
) -> Result<Vec<ShardInfo>, String> {
    let end = Instant::now() + STREAM_TIMEOUT;
    loop {
        match client.create_stream(STREAM, shards).await {
            Ok(()) => break,
            Err(e) if e.code() == ErrorCode::ResourceInUse => break,
            Err(e) if e.retryable() && Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("CreateStream failed: {e}")),
        }
    }
    let desc = client
        .wait_stream_active(STREAM, STREAM_TIMEOUT)
        .await
        .map_err(|e| format!("stream never became ACTIVE: {e}"))?;
    let desc = client
        .describe_stream(&desc.stream_name)
        .await
        .map_err(|e| format!("DescribeStream failed: {e}"))?;
    let infos: Vec<ShardInfo> = desc
        .shards
        .iter()
        .map(|s| ShardInfo {
            id: s.shard_id.clone(),
            replicas: s.replicas.clone(),
        })
        .collect();
    loop {
        let mut led = std::collections::BTreeSet::new();
        for node in per_node {
            if let Ok(d) = node.describe_stream(STREAM).await {
                led.extend(
                    d.shards
                        .iter()
                        .filter(|s| s.leader.is_some())
                        .map(|s| s.shard_id.clone()),
                );
            }
        }
        if led.len() >= infos.len() {
            return Ok(infos);
        }
        if Instant::now() >= end {
            log.note(format!(
                "only {} of {} shards reported a leader before the workload started",
                led.len(),
                infos.len()
            ));
            return Ok(infos);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the stream is ACTIVE (no reshard in progress); returns the status it ended with.
async fn wait_active(client: &StreamdClient, log: &mut RunLog) -> String {
    match client.wait_stream_active(STREAM, ACTIVE_TIMEOUT).await {
        Ok(_) => "ACTIVE".to_string(),
        Err(e) => {
            let status = match client.describe_stream_summary(STREAM).await {
                Ok(d) => streamd_client::v1::StreamStatus::try_from(d.stream_status)
                    .map(|s| s.as_str_name().to_string())
                    .unwrap_or_else(|_| format!("status {}", d.stream_status)),
                Err(e2) => format!("unknown ({e2})"),
            };
            log.note(format!(
                "the stream was not ACTIVE {ACTIVE_TIMEOUT:?} after healing ({e}); it is {status}"
            ));
            status
        }
    }
}

/// Every shard of the stream, open and closed, retried until a deadline (the cluster has just
/// recovered, and a node may still be electing leaders).
async fn list_all_shards(client: &StreamdClient) -> Result<Vec<streamd_client::v1::Shard>, String> {
    let end = Instant::now() + STREAM_TIMEOUT;
    loop {
        match client.list_shards(STREAM).await {
            Ok(shards) if !shards.is_empty() => return Ok(shards),
            Ok(_) if Instant::now() >= end => return Err("ListShards listed nothing".into()),
            Err(e) if Instant::now() >= end => return Err(e.to_string()),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The shard map line from a listing.
fn shard_map(listed: &[streamd_client::v1::Shard], status: &str) -> ShardMap {
    let mut shards: Vec<MapShard> = listed
        .iter()
        .map(|s| {
            let range = s.hash_key_range.clone().unwrap_or_default();
            let seqs = s.sequence_number_range.clone().unwrap_or_default();
            MapShard {
                id: s.shard_id.clone(),
                parent: s.parent_shard_id.clone(),
                adjacent_parent: s.adjacent_parent_shard_id.clone(),
                start_hash: range.starting_hash_key,
                end_hash: range.ending_hash_key,
                start_seq: seqs.starting_sequence_number,
                end_seq: seqs.ending_sequence_number,
            }
        })
        .collect();
    shards.sort_by(|a, b| a.id.cmp(&b.id));
    ShardMap {
        status: status.to_string(),
        shards,
    }
}

/// Records nodes that exit on their own as `crash` faults, until `stop`.
async fn watch_crashes(
    cluster: Arc<Mutex<Cluster>>,
    rec: Recorder,
    mut stop: watch::Receiver<bool>,
) -> Vec<(u64, u64, String)> {
    let mut crashes = Vec::new();
    loop {
        let exits = with_cluster(&cluster, |c| c.reap_exits());
        for exit in exits {
            let id = 100_000 + crashes.len() as u64;
            println!(
                "jepsen: node {} exited on its own: {}",
                exit.node, exit.status
            );
            let mut op = Op::new(OpType::Info, F::Fault, "nemesis", rec.next_op(), rec.now());
            op.fault = Some(FaultEvent {
                id,
                kind: "crash".into(),
                phase: Phase::Start,
                nodes: vec![exit.node],
                groups: Vec::new(),
                detail: Some(format!("exited on its own: {}", exit.status)),
                outcome: None,
            });
            rec.record(op);
            crashes.push((id, exit.node, exit.status));
        }
        let stopped = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopped {
            return crashes;
        }
    }
}

/// Which requested nemeses can run here, and why the others cannot.
fn available_kinds(
    args: &TestArgs,
    net: Option<&Netns>,
) -> (Vec<Kind>, BTreeMap<&'static str, String>) {
    let mut kinds = Vec::new();
    let mut skipped = BTreeMap::new();
    for kind in args.nemesis.iter().filter_map(|n| n.kind()) {
        let reason = match kind {
            Kind::Partition | Kind::PartitionLeader | Kind::Ring | Kind::Bridge
                if net.is_none() =>
            {
                Some("no network namespaces (loopback fallback): partitions need them".to_string())
            }
            Kind::Lossy if net.is_none() => {
                Some("no network namespaces (loopback fallback): lossy links need them".to_string())
            }
            Kind::Delay if net.is_none() => Some(
                "no network namespaces (loopback fallback): the delay proxy needs each node's \
                 connections redirected, which needs them (jepsen/README.md)"
                    .to_string(),
            ),
            Kind::Partition
            | Kind::PartitionLeader
            | Kind::Lossy
            | Kind::Ring
            | Kind::Bridge
            | Kind::Delay
                if net::find_program("iptables").is_none() =>
            {
                Some("`iptables` is not installed (Debian package `iptables`)".to_string())
            }
            Kind::Partition | Kind::PartitionLeader | Kind::Ring | Kind::Bridge
                if args.nodes < 3 =>
            {
                Some("a partition that keeps a majority needs at least 3 nodes".to_string())
            }
            Kind::Clock if clock::find_libfaketime().is_none() => Some(
                "libfaketime is not installed (Debian package `faketime` or `libfaketime`)"
                    .to_string(),
            ),
            Kind::PowerCut => {
                lazyfs::unavailable().map(|e| format!("the FUSE disks cannot be mounted here: {e}"))
            }
            Kind::Membership | Kind::Corrupt | Kind::CorruptSled if args.nodes < 3 => Some(
                "draining a node needs somewhere to move its replicas: at least 3 nodes"
                    .to_string(),
            ),
            Kind::Membership | Kind::Corrupt | Kind::CorruptSled
                if args
                    .nemesis
                    .iter()
                    .any(|n| n.kind() == Some(Kind::PowerCut)) =>
            {
                Some(
                    "not with power-cut: a node that joins gets a new data directory, which is \
                     not on a FUSE disk"
                        .to_string(),
                )
            }
            _ => None,
        };
        match reason {
            Some(r) => {
                skipped.insert(kind.name(), r);
            }
            None => kinds.push(kind),
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    (kinds, skipped)
}

/// Starts a proxy listener for every ordered pair of nodes and redirects each node's
/// connections to its peers' gRPC ports through it (node-to-node traffic is all gRPC).
async fn start_proxy(net: &Netns, specs: &[NodeSpec], seed: u64) -> Result<Proxy, String> {
    let mut links = Vec::new();
    for a in specs {
        for b in specs.iter().filter(|b| b.id != a.id) {
            links.push((a.id, b.id, b.grpc_addr));
        }
    }
    let proxy = Proxy::start(IpAddr::V4(net.bridge_ip()), &links, seed)
        .await
        .map_err(|e| e.to_string())?;
    let redirected = links.iter().try_for_each(|&(from, to, upstream)| {
        let via = proxy
            .listen_addr(from, to)
            .ok_or_else(|| format!("no proxy listener for {from}->{to}"))?;
        net.redirect(from, to, upstream.port(), via)
            .map_err(|e| e.to_string())
    });
    if let Err(e) = redirected {
        // Half the redirects pointing at a proxy that is about to go would cut those links.
        return Err(match net.unredirect() {
            Ok(()) => e,
            Err(undo) => format!("{e}; removing the redirects failed too: {undo}"),
        });
    }
    Ok(proxy)
}

/// Everything up to a complete history file. `Err` is a harness failure.
async fn execute(args: &TestArgs, seed: u64, out: &Path, log: &mut RunLog) -> Result<(), String> {
    let t0 = Instant::now();
    let binary = args
        .streamd
        .clone()
        .unwrap_or_else(streamd_testkit::default_binary);
    log.info
        .insert("streamd", json!(binary.display().to_string()));
    if !binary.is_file() {
        return Err(format!(
            "streamd binary {} not found (build it with `cargo build --release -p streamd`, or pass --streamd)",
            binary.display()
        ));
    }
    // A run killed before its teardown leaves FUSE mounts behind, which nothing can remove.
    for id in 1..=args.nodes {
        let dir = out.join(format!("node-{id}"));
        match lazyfs::unmount_stale(&dir) {
            Ok(true) => log.note(format!("unmounted a stale FUSE mount at {}", dir.display())),
            Ok(false) => {}
            Err(e) => return Err(format!("stale FUSE mount at {}: {e}", dir.display())),
        }
    }
    clear_out_dir(out, args.nodes).map_err(|e| format!("cannot prepare {}: {e}", out.display()))?;

    let topology = choose_topology(args);
    let net = match &topology {
        Topology::Netns(n) => {
            log.info.insert(
                "topology",
                json!({"mode": "netns", "bridge": n.bridge(), "subnet": format!("10.{}.0.0/24", n.x()),
                       "namespaces": (1..=args.nodes).map(|i| n.ns(i)).collect::<Vec<_>>()}),
            );
            println!(
                "jepsen: topology: a network namespace per node on bridge {} (10.{}.0.0/24)",
                n.bridge(),
                n.x()
            );
            Some(n.clone())
        }
        Topology::Loopback(reason) => {
            log.info
                .insert("topology", json!({"mode": "loopback", "reason": reason}));
            log.note(format!(
                "topology: loopback ports, process nemeses only ({reason})"
            ));
            None
        }
    };
    let spare = spare_slots(args);
    let mut specs = node_specs(out, args.nodes + spare, net.as_deref())
        .map_err(|e| format!("cannot find free ports: {e}"))?;
    let spare_specs = specs.split_off(args.nodes as usize);
    let netns: Vec<Option<String>> = (1..=args.nodes)
        .map(|i| net.as_ref().map(|n| n.ns(i)))
        .collect();
    let cluster = Arc::new(Mutex::new(Cluster::new(binary, specs.clone(), netns)));
    with_cluster(&cluster, |c| {
        for s in &spare_specs {
            c.add_spare_slot(s.clone(), net.as_ref().map(|n| n.ns(s.id)));
        }
    });
    let mut teardown = Teardown {
        cluster: cluster.clone(),
        net: net.clone(),
        proxy: None,
        disks: Mutex::new(None),
    };

    let (mut kinds, mut skipped) = available_kinds(args, net.as_deref());
    let proxy = match (&net, kinds.contains(&Kind::Delay)) {
        (Some(n), true) => match start_proxy(n, &specs, seed).await {
            Ok(p) => {
                println!(
                    "jepsen: node-to-node connections go through the delay proxy on {}",
                    n.bridge_ip()
                );
                Some(Arc::new(p))
            }
            Err(e) => {
                kinds.retain(|k| *k != Kind::Delay);
                skipped.insert(
                    Kind::Delay.name(),
                    format!("the proxy could not be set up: {e}"),
                );
                None
            }
        },
        _ => None,
    };
    teardown.proxy = proxy.clone();
    if let Some(Value::Object(topology)) = log.info.get_mut("topology") {
        topology.insert("proxy".into(), json!(proxy.is_some()));
    }
    // The nodes only follow the clock files if they start with libfaketime preloaded: for the
    // clock nemesis and for the retention phase.
    let mut retention_skip = None;
    let clocks = match clock::find_libfaketime() {
        Some(lib) if kinds.contains(&Kind::Clock) || args.retention => {
            let every_slot: Vec<NodeSpec> = specs.iter().chain(&spare_specs).cloned().collect();
            match Clocks::new(lib.clone(), out, admins(&every_slot)) {
                Ok(c) => {
                    with_cluster(&cluster, |cl| {
                        every_slot
                            .iter()
                            .try_for_each(|s| cl.set_env(s.id, c.env(s.id)))
                    })
                    .map_err(|e| e.to_string())?;
                    println!("jepsen: nodes start with {} preloaded", lib.display());
                    Some(c)
                }
                Err(e) => {
                    if kinds.contains(&Kind::Clock) {
                        kinds.retain(|k| *k != Kind::Clock);
                        skipped
                            .insert(Kind::Clock.name(), format!("cannot write clock files: {e}"));
                    }
                    retention_skip = Some(format!("cannot write clock files: {e}"));
                    None
                }
            }
        }
        None if args.retention => {
            retention_skip = Some(
                "libfaketime is not installed (Debian package `faketime` or `libfaketime`), so \
                 the nodes' clocks cannot be moved past the retention period"
                    .to_string(),
            );
            None
        }
        _ => None,
    };
    if let Some(why) = &retention_skip {
        log.note(format!("retention phase not run: {why}"));
    }
    let mut disks = None;
    if kinds.contains(&Kind::PowerCut) {
        let dirs: Vec<(u64, PathBuf)> = specs.iter().map(|s| (s.id, s.data_dir.clone())).collect();
        match lazyfs::Disks::mount_all(&dirs) {
            Ok(d) => {
                let d = Arc::new(d);
                if let Ok(mut slot) = teardown.disks.lock() {
                    *slot = Some(d.clone());
                }
                println!(
                    "jepsen: each node's data directory is a FUSE layer that forgets unsynced writes (backing: node-<i>.disk)"
                );
                log.info.insert("disks", json!("fuse"));
                disks = Some(d);
            }
            Err(e) => {
                kinds.retain(|k| *k != Kind::PowerCut);
                skipped.insert(
                    Kind::PowerCut.name(),
                    format!("the FUSE disks could not be mounted: {e}"),
                );
            }
        }
    }
    for (kind, reason) in &skipped {
        log.note(format!("nemesis {kind} not run: {reason}"));
    }
    if kinds.contains(&Kind::Corrupt) || kinds.contains(&Kind::CorruptSled) {
        // A node that refuses its corrupt data is drained and, being stopped, removed only after
        // the down timeout; at streamd's 30 s default that repair takes most of a short run.
        // 10 s is still longer than any kill or pause here (2-6 s), so those do not make the
        // cluster re-create replicas.
        let flags = vec![
            "--node-down-timeout-secs".to_string(),
            CORRUPT_NODE_DOWN_TIMEOUT_S.to_string(),
        ];
        log.note(format!("nodes start with {} (corrupt)", flags.join(" ")));
        with_cluster(&cluster, |c| c.set_extra_args(flags));
    }
    let time_limit = Duration::from_secs(args.time_limit);
    let schedule = nemesis::plan(seed, &kinds, args.nodes, time_limit);
    log.info.insert("schedule", json!(schedule));
    for p in &schedule {
        println!(
            "jepsen: planned #{} at {:.1}s for {:.1}s: {}",
            p.id,
            p.at.as_secs_f64(),
            p.duration.as_secs_f64(),
            p.fault.describe()
        );
    }

    with_cluster(&cluster, |c| c.spawn_all()).map_err(|e| format!("cannot start streamd: {e}"))?;
    let all = admins(&specs);
    if let Err(pending) = cluster::wait_ready(&all, READY_TIMEOUT).await {
        tail_logs(&cluster, &pending);
        return Err(format!(
            "nodes {pending:?} not ready (GET /readyz) within {READY_TIMEOUT:?}; logs in {}",
            out.display()
        ));
    }
    let endpoints: Vec<String> = specs.iter().map(|s| s.grpc_addr.to_string()).collect();
    let config = workload::Config {
        stream: STREAM.into(),
        endpoints: endpoints.clone(),
        seed,
        rate: args.rate,
        request_timeout: Duration::from_secs(args.request_timeout),
        keys: args
            .keys
            .or(kinds.contains(&Kind::Reshard).then_some(RESHARD_KEYS)),
    };
    let admin_client = config.client(0).map_err(|e| e.to_string())?;
    let per_node: Vec<StreamdClient> = endpoints
        .iter()
        .map(|e| StreamdClient::connect_with(std::slice::from_ref(e), config.options()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let shards = create_stream(&admin_client, &per_node, args.shards, log).await?;
    drop(per_node);
    log.info.insert("shards", json!(shards));

    let (file, rec) = HistoryFile::create(&out.join("history.jsonl"), Clock::start())
        .map_err(|e| e.to_string())?;
    let mut setup = Op::new(OpType::Info, F::Setup, "setup", rec.next_op(), rec.now());
    setup.setup = Some(Setup {
        stream: STREAM.into(),
        seed,
        nodes: (1..=args.nodes).collect(),
        shards: shards.clone(),
        topology: if net.is_some() { "netns" } else { "loopback" }.into(),
    });
    rec.record(setup);
    log.phases.insert("setup_s", t0.elapsed().as_secs_f64());
    println!(
        "jepsen: cluster ready, stream {STREAM} with {} shards; workload for {}s",
        shards.len(),
        args.time_limit
    );

    // Workload and nemesis.
    let t_work = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (mode_tx, mode_rx) = watch::channel(reader::Mode::Tail);
    let (crash_stop_tx, crash_stop_rx) = watch::channel(false);
    let mut writers = JoinSet::new();
    for id in 0..args.clients {
        let client = config.client(id).map_err(|e| e.to_string())?;
        writers.spawn(writer::run(
            id,
            config.clone(),
            client,
            rec.clone(),
            args.clients,
            stop_rx.clone(),
        ));
    }
    let mut readers = JoinSet::new();
    for r in 0..args.readers {
        readers.spawn(reader::run_all(
            r,
            config.clone(),
            shards.iter().map(|s| s.id.clone()).collect(),
            rec.clone(),
            mode_rx.clone(),
        ));
    }
    let target = Target {
        cluster: cluster.clone(),
        net: net.clone(),
        endpoints: specs
            .iter()
            .map(|s| (s.id, s.grpc_addr.to_string()))
            .collect(),
        stream: STREAM.into(),
        proxy: proxy.clone(),
        clocks: clocks.clone(),
        disks: disks.clone(),
        stop: Some(stop_rx.clone()),
    };
    let nemesis_task = tokio::spawn(nemesis::drive(
        schedule,
        target.clone(),
        rec.clone(),
        t_work,
        stop_rx.clone(),
    ));
    let crash_task = tokio::spawn(watch_crashes(cluster.clone(), rec.clone(), crash_stop_rx));

    tokio::time::sleep(time_limit).await;
    let _ = stop_tx.send(true);
    let mut calls = 0u64;
    while let Some(done) = writers.join_next().await {
        match done {
            Ok(stats) => calls += stats.calls,
            Err(e) => log.note(format!("a writer task failed: {e}")),
        }
    }
    let tally = nemesis_task.await.unwrap_or_default();
    log.phases
        .insert("workload_s", t_work.elapsed().as_secs_f64());
    println!("jepsen: workload done: {calls} append calls");

    // Heal, recover, catch up, drain.
    let t_heal = Instant::now();
    for action in nemesis::heal_all(&target).await {
        log.note(format!("final heal: {action}"));
    }
    let mut nemeses = BTreeMap::new();
    for arg in args.nemesis.iter().filter_map(|n| n.kind()) {
        let entry = match skipped.get(arg.name()) {
            Some(reason) => json!({"run": false, "reason": reason}),
            None => {
                let t = tally.get(&arg).cloned().unwrap_or_default();
                let mut entry = json!({"run": t.started > 0, "planned": t.planned,
                       "started": t.started, "healed": t.healed, "errors": t.errors});
                if !t.notes.is_empty() {
                    entry["notes"] = json!(t.notes);
                }
                entry
            }
        };
        nemeses.insert(arg.name(), entry);
    }
    log.info.insert("nemeses", json!(nemeses));
    let recovery_timeout = Duration::from_secs(args.recovery_timeout);
    // Membership may have changed: the final reads go through the members now, by node id.
    let members = with_cluster(&cluster, |c| c.members());
    if members.iter().any(|m| m.id != m.slot) || members.len() as u64 != args.nodes {
        log.note(format!(
            "members at the end (node id in slot): {}",
            members
                .iter()
                .map(|m| format!("{} in {}", m.id, m.slot))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    log.info.insert(
        "members",
        json!(
            members
                .iter()
                .map(|m| json!({"node": m.id, "slot": m.slot}))
                .collect::<Vec<_>>()
        ),
    );
    let member_admins: Vec<(u64, SocketAddr)> = members.iter().map(|m| (m.slot, m.admin)).collect();
    let recovered = cluster::wait_ready(&member_admins, recovery_timeout).await;
    let ready_nodes: Vec<(u64, String)> = match &recovered {
        Ok(()) => members.iter().map(|m| (m.id, m.grpc.clone())).collect(),
        Err(pending) => {
            tail_logs(&cluster, pending);
            let stuck: Vec<(u64, SocketAddr)> = member_admins
                .iter()
                .copied()
                .filter(|(slot, _)| pending.contains(slot))
                .collect();
            let why = cluster::readiness(&stuck).await;
            log.note(format!(
                "slots {pending:?} were not ready {recovery_timeout:?} after healing ({why}); they are not drained"
            ));
            members
                .iter()
                .filter(|m| !pending.contains(&m.slot))
                .map(|m| (m.id, m.grpc.clone()))
                .collect()
        }
    };
    log.info
        .insert("recovered", json!(recovered.as_ref().err().is_none()));
    log.phases.insert("heal_s", t_heal.elapsed().as_secs_f64());

    // A reshard still in progress would open shards after the drain listed them.
    let stream_status = wait_active(&admin_client, log).await;

    let t_drain = Instant::now();
    let _ = mode_tx.send(reader::Mode::CatchUp);
    let joined = tokio::time::timeout(CATCH_UP_TIMEOUT, async {
        let mut read = 0u64;
        while let Some(done) = readers.join_next().await {
            if let Ok(stats) = done {
                read += stats.records;
            }
        }
        read
    })
    .await;
    if joined.is_err() {
        log.note("readers had not caught up after healing; stopped them");
        let _ = mode_tx.send(reader::Mode::Stop);
        while readers.join_next().await.is_some() {}
    }
    // Every shard, open and closed, is drained: an acknowledged record in a parent is judged
    // like any other. The map goes into the history for property 10.
    let drain_shards = match list_all_shards(&admin_client).await {
        Ok(listed) => {
            let map = shard_map(&listed, &stream_status);
            let mut op = Op::new(OpType::Info, F::ShardMap, "setup", rec.next_op(), rec.now());
            let closed = map.shards.iter().filter(|s| s.end_seq.is_some()).count();
            println!(
                "jepsen: {} shard(s) after healing, {closed} closed; stream {stream_status}",
                map.shards.len()
            );
            log.info.insert("shard_map", json!(map));
            op.shard_map = Some(map);
            rec.record(op);
            listed
                .iter()
                .map(|s| ShardInfo {
                    id: s.shard_id.clone(),
                    replicas: s.replicas.clone(),
                })
                .collect()
        }
        Err(e) => {
            log.note(format!(
                "could not list the shards after healing ({e}); draining the initial {} only",
                shards.len()
            ));
            shards.clone()
        }
    };
    let drained = drain::run(&config, &ready_nodes, &drain_shards, &rec, DRAIN_TIMEOUT).await;
    if !drained.stable {
        log.note(format!(
            "the drains were still changing after {DRAIN_TIMEOUT:?}; the last round is checked"
        ));
    }
    for e in &drained.errors {
        log.note(format!("drain error: {e}"));
    }
    let drain_failed = drained.records.is_empty().then(|| {
        format!(
            "the final drain read nothing through any node ({} error(s))",
            drained.errors.len()
        )
    });
    log.info.insert(
        "drain",
        json!({"rounds": drained.rounds, "stable": drained.stable, "records_per_node": drained.records}),
    );
    log.phases
        .insert("drain_s", t_drain.elapsed().as_secs_f64());
    println!(
        "jepsen: drained {} shard(s) through {} node(s) in {} round(s)",
        drain_shards.len(),
        ready_nodes.len(),
        drained.rounds
    );

    if args.retention {
        let t_ret = Instant::now();
        let why_not = retention_skip.clone().or_else(|| {
            recovered
                .as_ref()
                .err()
                .map(|pending| format!("nodes {pending:?} did not recover after healing"))
        });
        match (&clocks, why_not) {
            (_, Some(why)) => retention::skipped(&rec, &why),
            (None, None) => retention::skipped(&rec, "the nodes were started without libfaketime"),
            (Some(clocks), None) => {
                let env = retention::Env {
                    config: &config,
                    cluster: cluster.clone(),
                    clocks,
                    // Slots: the clocks and processes are per slot (the same numbers as the
                    // node ids unless membership changed).
                    nodes: members
                        .iter()
                        .map(|m| (m.slot, m.grpc.clone(), m.admin))
                        .collect(),
                    shards: drain_shards.iter().map(|s| s.id.clone()).collect(),
                    rec: &rec,
                };
                match retention::run(env).await {
                    Ok(r) => {
                        for note in &r.notes {
                            log.note(note.clone());
                        }
                        log.info.insert(
                            "retention",
                            json!({
                                "sent": {"A": r.sent[0], "B": r.sent[1], "C": r.sent[2]},
                                "acked": {"A": r.acked[0], "B": r.acked[1], "C": r.acked[2]},
                                "trimmed_after_s": r.trimmed_after.map(|d| d.as_secs_f64()),
                                "poll_rounds": r.poll_rounds,
                                "final_rounds": r.final_rounds,
                                "reads": r.reads,
                                "restarted": r.restarted,
                                "ready_after_s": r.ready_after.map(|d| d.as_secs_f64()),
                            }),
                        );
                        println!(
                            "jepsen: retention phase done in {:.1}s: {} read(s), node {:?} restarted",
                            r.elapsed.as_secs_f64(),
                            r.reads,
                            r.restarted
                        );
                    }
                    Err(e) => {
                        log.note(format!("retention phase stopped: {e}"));
                        log.info.insert("retention", json!({"error": e}));
                    }
                }
            }
        }
        log.phases
            .insert("retention_s", t_ret.elapsed().as_secs_f64());
    }

    let _ = crash_stop_tx.send(true);
    let crashes = crash_task.await.unwrap_or_default();
    if !crashes.is_empty() {
        log.info.insert(
            "unexpected_exits",
            json!(
                crashes
                    .iter()
                    .map(|(_, node, status)| json!({"node": node, "status": status}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    drop(admin_client);
    drop(rec);
    file.finish().map_err(|e| e.to_string())?;
    teardown.run();
    drop(teardown);
    if let Err(pending) = recovered {
        return Err(format!(
            "the cluster did not recover: nodes {pending:?} never became ready after healing"
        ));
    }
    drain_failed.map_or(Ok(()), Err)
}

/// Runs `test`; returns the exit code.
pub async fn test(args: TestArgs) -> i32 {
    let seed = args.seed.unwrap_or_else(rand::random);
    println!(
        "jepsen: seed {seed} (replay with --seed {seed}); nodes {} shards {} clients {} time limit {}s nemesis {:?}",
        args.nodes, args.shards, args.clients, args.time_limit, args.nemesis
    );
    let started = Instant::now();
    let out = args.out.clone();
    let mut log = RunLog::default();
    log.info.insert(
        "args",
        json!({"nodes": args.nodes, "time_limit_s": args.time_limit, "shards": args.shards,
               "clients": args.clients, "readers": args.readers, "rate": args.rate,
               "nemesis": args.nemesis.iter().map(|n| n.kind().map_or("none", Kind::name)).collect::<Vec<_>>(),
               "retention": args.retention,
               "out": out.display().to_string()}),
    );
    log.info.insert("seed", json!(seed));
    let harness_error = execute(&args, seed, &out, &mut log).await.err();
    if let Some(e) = &harness_error {
        eprintln!("jepsen: harness failure: {e}");
    }
    log.phases
        .insert("total_s", started.elapsed().as_secs_f64());
    let config = CheckConfig {
        availability_bound_ms: args.availability_bound * 1000,
        stall_bound_ms: args.stall_bound_ms,
        ..CheckConfig::default()
    };
    judge(
        &out.join("history.jsonl"),
        &out,
        log,
        harness_error,
        None,
        &config,
    )
}

/// Runs `check`; returns the exit code.
pub fn check(args: CheckArgs) -> i32 {
    let out = args.out.clone().unwrap_or_else(|| {
        let dir = args
            .history
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        // A planted bug must not overwrite the campaign's own verdict.
        match args.plant {
            Some(bug) => dir.join(format!("planted-{}", crate::plant::name(bug))),
            None => dir,
        }
    });
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("jepsen: cannot create {}: {e}", out.display());
        return 2;
    }
    let config = CheckConfig {
        availability_bound_ms: args.availability_bound * 1000,
        stall_bound_ms: args.stall_bound_ms,
        ..CheckConfig::default()
    };
    let mut log = RunLog::default();
    // Rechecking a campaign's directory keeps what the campaign knew about itself.
    let campaign_dir = args.history.parent().unwrap_or(Path::new("."));
    let previous = std::fs::read_to_string(campaign_dir.join("results.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    if let Some(Value::Object(run)) = previous.as_ref().and_then(|r| r.get("run")) {
        for (k, v) in run {
            if let Some(key) = RECHECK_KEPT.iter().find(|key| **key == k.as_str()) {
                log.info.insert(key, v.clone());
            }
        }
    }
    log.info
        .insert("history", json!(args.history.display().to_string()));
    log.info.insert("rechecked", json!(true));
    judge(&args.history, &out, log, None, args.plant, &config)
}

/// Reads the history back, runs every checker, writes results.json and the plot, prints the
/// summary and the last line. Returns the exit code: 0 valid, 1 anomalies, 2 harness failure.
fn judge(
    history_path: &Path,
    out: &Path,
    mut log: RunLog,
    mut harness_error: Option<String>,
    plant: Option<crate::plant::Plant>,
    config: &CheckConfig,
) -> i32 {
    let mut ops = match history::load(history_path) {
        Ok(ops) => ops,
        Err(e) => {
            harness_error.get_or_insert(e.to_string());
            Vec::new()
        }
    };
    if let Some(bug) = plant {
        match crate::plant::plant(&mut ops, bug) {
            Ok(what) => log.note(format!("planted {bug:?}: {what}")),
            Err(why) => {
                eprintln!("jepsen: cannot plant {bug:?}: {why}");
                return 2;
            }
        }
    }
    let facts = Facts::from_history(&ops);
    let properties = checkers::run_all(&facts, config);
    let plot = out.join(PLOT_FILE);
    match crate::plot::render(&facts, &plot) {
        Ok(()) => {
            log.info.insert("plot", json!(PLOT_FILE));
        }
        Err(e) => log.note(format!("no plot: {e}")),
    }
    for p in &properties {
        if p.verdict == checkers::Verdict::NotChecked && report::REQUIRED.contains(&p.id) {
            log.note(format!(
                "property {} ({}) could not be checked, so the run cannot be valid",
                p.id, p.name
            ));
        }
    }
    let summary = report::summary(&facts, &properties);
    let valid = report::is_valid(&properties, harness_error.as_deref());
    let mut run = serde_json::Map::new();
    for (k, v) in log.info {
        run.insert(k.to_string(), v);
    }
    run.insert("phases".into(), json!(log.phases));
    let results = Results {
        valid,
        harness_error: harness_error.clone(),
        summary: summary.clone(),
        counts: report::counts(&facts),
        run: Value::Object(run),
        properties,
        notes: log.notes,
    };
    let results_path = out.join("results.json");
    if let Err(e) = report::write(&results_path, &results) {
        eprintln!("jepsen: cannot write {}: {e}", results_path.display());
        harness_error.get_or_insert(e.to_string());
    }
    let c = &results.counts;
    println!(
        "jepsen: appends ok={} fail={} info={}; records ok={} fail={} info={}; read {} drained {}; faults {:?}",
        c.appends.ok,
        c.appends.fail,
        c.appends.info,
        c.records.ok,
        c.records.fail,
        c.records.info,
        c.records_read,
        c.records_drained,
        c.faults
    );
    for line in report::property_lines(&results.properties) {
        println!("{line}");
    }
    println!("jepsen: results in {}", results_path.display());
    let valid = valid && harness_error.is_none();
    println!("{}", report::last_line(valid, &summary));
    if harness_error.is_some() {
        2
    } else if valid {
        0
    } else {
        1
    }
}
