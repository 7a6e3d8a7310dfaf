//! Nemeses: faults injected on a schedule drawn from the run's seed, each recorded in the history
//! when it starts and when it is healed.
//!
//! [`plan`] is a pure function of (seed, enabled kinds, nodes, time limit): the same seed replays
//! the same faults at the same offsets on the same nodes. [`drive`] carries a plan out; each kind
//! lives in its own file (`kill.rs`, `pause.rs`, `partition.rs`, `lossy.rs`,
//! `partition_leader.rs`, `power_cut.rs`) with its start and heal. A `partition-leader` fault
//! draws which group's leader to isolate when planned, but finds that leader only when it starts.
//! Faults never overlap: each is healed before the next starts, and every one of them leaves a
//! majority of nodes connected and running, except a `power-cut` of every node at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::history::{F, FaultEvent, Op, OpType, Phase, Recorder};
use crate::net::Netns;

pub mod kill;
pub mod lossy;
pub mod partition;
pub mod partition_leader;
pub mod pause;
pub mod power_cut;

/// Gap before each fault, and how long it lasts (milliseconds).
const GAP_MS: std::ops::RangeInclusive<u64> = 3_000..=8_000;
const DURATION_MS: std::ops::RangeInclusive<u64> = 2_000..=6_000;
/// No fault is still active this close to the end of the workload.
const END_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// SIGKILL a node, restart it on its own data after the interval.
    Kill,
    /// SIGSTOP a node, SIGCONT it after the interval.
    Pause,
    /// iptables DROP between the sides: random halves, or one node isolated.
    Partition,
    // New kinds go after the existing ones: `plan` indexes the sorted enabled kinds, so the order
    // keeps old seeds replaying the same schedule for the old kind sets.
    /// iptables statistic DROP of a share of one node's packets, in and out.
    Lossy,
    /// One node isolated: the current leader of a random shard, or of the metadata group.
    #[serde(rename = "partition-leader")]
    PartitionLeader,
    /// SIGKILL one node or every node, drop their unsynced writes (FUSE layer), restart them.
    #[serde(rename = "power-cut")]
    PowerCut,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::Lossy => "lossy",
            Kind::PartitionLeader => "partition-leader",
            Kind::PowerCut => "power-cut",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fault {
    Kill {
        node: u64,
    },
    Pause {
        node: u64,
    },
    Partition {
        shape: partition::Shape,
        groups: Vec<Vec<u64>>,
    },
    Lossy {
        node: u64,
        /// Percentage of the node's packets dropped, each way.
        percent: u32,
    },
    #[serde(rename = "partition-leader")]
    PartitionLeader {
        of: partition_leader::LeaderOf,
        /// Which shard (modulo the shard count when the fault starts).
        pick: u64,
        /// The node isolated when no leader is known.
        fallback: u64,
        /// Filled in when the fault starts.
        #[serde(skip_serializing_if = "Option::is_none")]
        found: Option<partition_leader::Found>,
    },
    #[serde(rename = "power-cut")]
    PowerCut {
        /// Every node at once (else one).
        all: bool,
        nodes: Vec<u64>,
    },
}

impl Fault {
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Kill { .. } => Kind::Kill,
            Fault::Pause { .. } => Kind::Pause,
            Fault::Partition { .. } => Kind::Partition,
            Fault::Lossy { .. } => Kind::Lossy,
            Fault::PartitionLeader { .. } => Kind::PartitionLeader,
            Fault::PowerCut { .. } => Kind::PowerCut,
        }
    }

    /// For partitions: the sides (empty until a `partition-leader` fault has found its node).
    pub fn groups(&self) -> Vec<Vec<u64>> {
        match self {
            Fault::Partition { groups, .. } => groups.clone(),
            Fault::PartitionLeader { found: Some(f), .. } => f.groups.clone(),
            _ => Vec::new(),
        }
    }

    /// The nodes the fault acts on (for a partition: the minority side).
    pub fn nodes(&self) -> Vec<u64> {
        match self {
            Fault::Kill { node } | Fault::Pause { node } | Fault::Lossy { node, .. } => {
                vec![*node]
            }
            Fault::PartitionLeader { found, .. } => found.iter().map(|f| f.isolated).collect(),
            Fault::PowerCut { nodes, .. } => nodes.clone(),
            Fault::Partition { groups, .. } => groups
                .iter()
                .min_by_key(|g| g.len())
                .cloned()
                .unwrap_or_default(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Fault::Kill { node } => format!("kill -9 node {node}"),
            Fault::Pause { node } => format!("pause node {node}"),
            Fault::PowerCut { all: true, nodes } => {
                format!("power cut of every node {nodes:?} (unsynced writes lost)")
            }
            Fault::PowerCut { all: false, nodes } => {
                format!("power cut of node(s) {nodes:?} (unsynced writes lost)")
            }
            Fault::Partition { shape, groups } => {
                format!("partition ({}) {groups:?}", shape.name())
            }
            Fault::Lossy { node, percent } => {
                format!("lossy links of node {node} (drop {percent}% in and out)")
            }
            Fault::PartitionLeader {
                of,
                pick,
                fallback,
                found,
            } => match found {
                Some(f) => partition_leader::describe(f),
                None => format!(
                    "partition-leader of {} (pick {pick}, fallback node {fallback})",
                    of.name()
                ),
            },
        }
    }
}

/// One fault of the schedule, at an offset from the start of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub id: u64,
    #[serde(serialize_with = "as_ms")]
    pub at: Duration,
    #[serde(serialize_with = "as_ms")]
    pub duration: Duration,
    pub fault: Fault,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// The schedule for a run: a fault every 3-8 s lasting 2-6 s, of a kind drawn from `kinds`, on
/// nodes drawn from 1..=`nodes`, all healed before `time_limit` minus a margin.
pub fn plan(seed: u64, kinds: &[Kind], nodes: u64, time_limit: Duration) -> Vec<Planned> {
    let mut kinds = kinds.to_vec();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.is_empty() || nodes == 0 {
        return Vec::new();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut t = Duration::ZERO;
    let last_end = time_limit.saturating_sub(END_MARGIN);
    loop {
        let at = t + Duration::from_millis(rng.random_range(GAP_MS));
        let duration = Duration::from_millis(rng.random_range(DURATION_MS));
        if at + duration > last_end {
            return out;
        }
        let fault = match kinds[rng.random_range(0..kinds.len())] {
            Kind::Kill => Fault::Kill {
                node: rng.random_range(1..=nodes),
            },
            Kind::Pause => Fault::Pause {
                node: rng.random_range(1..=nodes),
            },
            Kind::Partition => partition::draw(&mut rng, nodes),
            Kind::Lossy => Fault::Lossy {
                node: rng.random_range(1..=nodes),
                percent: lossy::PERCENT,
            },
            Kind::PartitionLeader => partition_leader::draw(&mut rng, nodes),
            Kind::PowerCut => power_cut::draw(&mut rng, nodes),
        };
        out.push(Planned {
            id: out.len() as u64 + 1,
            at,
            duration,
            fault,
        });
        t = at + duration;
    }
}

/// What the nemesis acts on.
#[derive(Debug, Clone)]
pub struct Target {
    pub cluster: Arc<Mutex<Cluster>>,
    pub net: Option<Arc<Netns>>,
    /// Each node's gRPC address, to ask who leads what.
    pub endpoints: Vec<(u64, String)>,
    /// The test stream.
    pub stream: String,
    /// Each node's FUSE disk, when the `power-cut` nemesis runs.
    pub disks: Option<Arc<crate::lazyfs::Disks>>,
}

impl Target {
    fn with_cluster<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        let mut guard = match self.cluster.lock() {
            Ok(g) => g,
            // A panic elsewhere while holding the lock leaves the processes as they were; keep
            // driving them so they can be healed and torn down.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

/// How the schedule went, per kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    pub planned: usize,
    pub started: usize,
    pub healed: usize,
    pub errors: Vec<String>,
    /// What the nemesis had to settle for (a `partition-leader` with no leader known).
    pub notes: Vec<String>,
}

/// Starts a fault; `Ok` may carry what it did, for stdout and the run's notes.
async fn start(target: &Target, fault: &Fault) -> Result<Option<String>, String> {
    if let Fault::PowerCut { nodes, .. } = fault {
        return power_cut::start(target, nodes).await.map(Some);
    }
    let r = match fault {
        Fault::Kill { node } => kill::start(target, *node),
        Fault::Pause { node } => pause::start(target, *node),
        Fault::Partition { groups, .. } => partition::start(target, groups.clone()).await,
        Fault::Lossy { node, percent } => lossy::start(target, *node, *percent).await,
        Fault::PartitionLeader { found, .. } => match found {
            Some(f) => partition::start(target, f.groups.clone()).await,
            None => Err("no node to isolate".into()),
        },
        Fault::PowerCut { .. } => Ok(()),
    };
    r.map(|()| None)
}

async fn heal(target: &Target, fault: &Fault) -> Result<(), String> {
    match fault {
        Fault::Kill { node } => kill::heal(target, *node),
        Fault::Pause { node } => pause::heal(target, *node),
        Fault::PowerCut { nodes, .. } => power_cut::heal(target, nodes),
        Fault::Partition { .. } | Fault::Lossy { .. } | Fault::PartitionLeader { .. } => {
            partition::heal(target).await
        }
    }
}

fn record(rec: &Recorder, planned: &Planned, phase: Phase, error: Option<String>) {
    let mut op = Op::new(OpType::Info, F::Fault, "nemesis", rec.next_op(), rec.now());
    let groups = planned.fault.groups();
    op.fault = Some(FaultEvent {
        id: planned.id,
        kind: planned.fault.kind().name().into(),
        phase,
        nodes: planned.fault.nodes(),
        groups,
        detail: Some(planned.fault.describe()),
    });
    op.error = error;
    rec.record(op);
}

/// Carries out `schedule` from `origin` (the start of the workload) until it is done or `stop`
/// turns true; a fault in progress when stopping is healed at once.
pub async fn drive(
    schedule: Vec<Planned>,
    target: Target,
    rec: Recorder,
    origin: tokio::time::Instant,
    mut stop: watch::Receiver<bool>,
) -> std::collections::BTreeMap<Kind, Tally> {
    let mut tally: std::collections::BTreeMap<Kind, Tally> = Default::default();
    for p in &schedule {
        tally.entry(p.fault.kind()).or_default().planned += 1;
    }
    for mut p in schedule {
        let kind = p.fault.kind();
        let stopped = tokio::select! {
            _ = tokio::time::sleep_until(origin + p.at) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopped {
            break;
        }
        if let Some(note) = partition_leader::resolve(&target, &mut p.fault).await {
            println!("nemesis: #{} {note}", p.id);
            tally
                .entry(kind)
                .or_default()
                .notes
                .push(format!("#{}: {note}", p.id));
        }
        println!(
            "nemesis: {:>7.1}s start #{} {}",
            p.at.as_secs_f64(),
            p.id,
            p.fault.describe()
        );
        let entry = tally.entry(kind).or_default();
        match start(&target, &p.fault).await {
            Ok(done) => {
                entry.started += 1;
                if let Some(done) = done {
                    println!("nemesis: #{} {done}", p.id);
                    entry.notes.push(format!("#{}: {done}", p.id));
                }
                record(&rec, &p, Phase::Start, None);
            }
            Err(e) => {
                println!("nemesis: #{} could not start: {e}", p.id);
                entry.errors.push(format!("#{}: start: {e}", p.id));
                // A half-applied fault is still healed below.
                record(&rec, &p, Phase::Start, Some(e));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(origin + p.at + p.duration) => {},
            _ = stop.wait_for(|s| *s) => {},
        }
        let result = heal(&target, &p.fault).await;
        let entry = tally.entry(kind).or_default();
        match result {
            Ok(()) => entry.healed += 1,
            Err(ref e) => {
                println!("nemesis: #{} could not heal: {e}", p.id);
                entry.errors.push(format!("#{}: heal: {e}", p.id));
            }
        }
        println!(
            "nemesis: {:>7.1}s healed #{}",
            origin.elapsed().as_secs_f64(),
            p.id
        );
        record(&rec, &p, Phase::End, result.err());
    }
    tally
}

/// Heals everything whatever the schedule did: resumes paused nodes, restarts stopped ones
/// (killed, or exited on their own), removes partitions. Returns what it had to do.
pub async fn heal_all(target: &Target) -> Vec<String> {
    let mut done = Vec::new();
    if let Some(net) = &target.net {
        let net = net.clone();
        match tokio::task::spawn_blocking(move || net.heal()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => done.push(format!("partition heal failed: {e}")),
            Err(e) => done.push(format!("partition heal failed: {e}")),
        }
    }
    if let Some(disks) = &target.disks {
        let disks = disks.clone();
        match tokio::task::spawn_blocking(move || disks.ensure_mounted()).await {
            Ok(actions) => done.extend(actions),
            Err(e) => done.push(format!("mounting the disks failed: {e}")),
        }
    }
    target.with_cluster(|c| {
        for id in c.paused() {
            match c.resume(id) {
                Ok(()) => done.push(format!("resumed node {id}")),
                Err(e) => done.push(format!("failed to resume node {id}: {e}")),
            }
        }
        for id in c.ids() {
            if !c.is_running(id) {
                match c.spawn(id) {
                    Ok(()) => done.push(format!("restarted node {id}")),
                    Err(e) => done.push(format!("failed to restart node {id}: {e}")),
                }
            }
        }
    });
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let kinds = [Kind::Partition, Kind::Kill, Kind::Pause];
        let a = plan(7, &kinds, 5, Duration::from_secs(60));
        let b = plan(
            7,
            &[Kind::Pause, Kind::Kill, Kind::Partition],
            5,
            Duration::from_secs(60),
        );
        assert_eq!(a, b, "kind order on the command line does not matter");
        assert_ne!(a, plan(8, &kinds, 5, Duration::from_secs(60)));
        assert!(a.len() >= 4, "{a:?}");
    }

    #[test]
    fn faults_are_sequential_bounded_and_healed_before_the_end() {
        let limit = Duration::from_secs(60);
        for seed in 0..50 {
            let s = plan(seed, &[Kind::Kill, Kind::Pause, Kind::Partition], 5, limit);
            let mut t = Duration::ZERO;
            for p in &s {
                let gap = p.at - t;
                assert!(gap >= Duration::from_secs(3) && gap <= Duration::from_secs(8));
                assert!(
                    p.duration >= Duration::from_secs(2) && p.duration <= Duration::from_secs(6)
                );
                assert!(p.at + p.duration <= limit - END_MARGIN);
                for n in p.fault.nodes() {
                    assert!((1..=5).contains(&n));
                }
                t = p.at + p.duration;
            }
        }
    }

    #[test]
    fn new_kinds_sort_after_the_old_ones_so_old_seeds_replay() {
        // `plan` indexes the sorted enabled kinds: the old kinds keep their places.
        let mut all = vec![
            Kind::PowerCut,
            Kind::PartitionLeader,
            Kind::Lossy,
            Kind::Partition,
            Kind::Pause,
            Kind::Kill,
        ];
        all.sort_unstable();
        assert_eq!(
            all,
            vec![
                Kind::Kill,
                Kind::Pause,
                Kind::Partition,
                Kind::Lossy,
                Kind::PartitionLeader,
                Kind::PowerCut
            ]
        );
        let old = plan(
            5,
            &[Kind::Kill, Kind::Pause, Kind::Partition],
            3,
            Duration::from_secs(60),
        );
        assert!(old.iter().all(|p| p.fault.kind() <= Kind::Partition));
    }

    #[test]
    fn lossy_and_partition_leader_are_drawn_when_enabled() {
        let s = plan(
            5,
            &[Kind::Lossy, Kind::PartitionLeader, Kind::Kill],
            3,
            Duration::from_secs(300),
        );
        let kinds: std::collections::BTreeSet<Kind> = s.iter().map(|p| p.fault.kind()).collect();
        assert!(kinds.contains(&Kind::Lossy), "{s:?}");
        assert!(kinds.contains(&Kind::PartitionLeader), "{s:?}");
        for p in &s {
            match &p.fault {
                Fault::Lossy { node, percent } => {
                    assert!((1..=3).contains(node));
                    assert_eq!(*percent, lossy::PERCENT);
                }
                Fault::PartitionLeader {
                    fallback, found, ..
                } => {
                    assert!((1..=3).contains(fallback));
                    // Found only when the fault starts; until then it names no node.
                    assert!(found.is_none() && p.fault.nodes().is_empty());
                }
                _ => {}
            }
        }
        let again = plan(
            5,
            &[Kind::Kill, Kind::PartitionLeader, Kind::Lossy],
            3,
            Duration::from_secs(300),
        );
        assert_eq!(s, again);
    }

    #[test]
    fn a_found_leader_is_the_node_recorded_and_isolated() {
        let fault = Fault::PartitionLeader {
            of: partition_leader::LeaderOf::Metadata,
            pick: 0,
            fallback: 1,
            found: Some(partition_leader::Found {
                group: "metadata".into(),
                leader: Some(3),
                isolated: 3,
                views: Default::default(),
                groups: partition_leader::isolate(3, &[1, 2, 3]),
            }),
        };
        assert_eq!(fault.nodes(), vec![3]);
        assert_eq!(fault.groups(), vec![vec![3], vec![1, 2]]);
        assert!(
            fault
                .describe()
                .contains("isolate node 3, leader of metadata")
        );
    }

    #[test]
    fn power_cuts_are_planned_on_one_node_or_all() {
        let s = plan(11, &[Kind::PowerCut], 3, Duration::from_secs(300));
        assert!(s.iter().all(|p| p.fault.kind() == Kind::PowerCut));
        let all = s
            .iter()
            .filter(|p| matches!(p.fault, Fault::PowerCut { all: true, .. }))
            .count();
        assert!(all > 0 && all < s.len(), "{s:?}");
        for p in &s {
            let n = p.fault.nodes();
            assert!(n.len() == 1 || n == vec![1, 2, 3], "{n:?}");
        }
        // Enabling power-cut next to the old kinds leaves their draws untouched when it is not
        // drawn: the old kinds' indices in the sorted list did not move.
        let old = plan(5, &[Kind::Kill, Kind::Pause], 3, Duration::from_secs(60));
        assert_eq!(
            old,
            plan(5, &[Kind::Pause, Kind::Kill], 3, Duration::from_secs(60))
        );
    }

    #[test]
    fn only_enabled_kinds_are_drawn_and_none_means_no_faults() {
        let s = plan(3, &[Kind::Pause], 3, Duration::from_secs(120));
        assert!(s.iter().all(|p| p.fault.kind() == Kind::Pause));
        assert!(plan(3, &[], 3, Duration::from_secs(120)).is_empty());
        assert!(plan(3, &[Kind::Kill], 3, Duration::from_secs(5)).is_empty());
    }
}
