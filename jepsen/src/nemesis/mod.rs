//! Nemeses: faults injected on a schedule drawn from the run's seed, each recorded in the history
//! when it starts and when it is healed.
//!
//! [`plan`] is a pure function of (seed, enabled kinds, nodes, time limit): the same seed replays
//! the same faults at the same offsets on the same nodes. [`drive`] carries a plan out; each kind
//! lives in its own file (`kill.rs`, `pause.rs`, `partition.rs`, `lossy.rs`,
//! `partition_leader.rs`, `graph.rs` for `ring` and `bridge`, `delay.rs`, `clock.rs`,
//! `reshard.rs`, `power_cut.rs`, `membership.rs`, `corrupt.rs`) with its start and heal. A `partition-leader` fault draws which
//! group's leader to isolate when planned, but finds that leader only when it starts.
//! Faults never overlap: each is healed before the next starts, and every one of them leaves a
//! majority of nodes connected and running, except a `power-cut` of every node at once.
//!
//! Node numbers in a plan are *slots* (see `cluster.rs`): with `membership` or `corrupt` a slot's
//! node can be replaced by one with a new id, and a fault planned on slot 2 acts on whatever
//! node slot 2 holds when it starts (or is skipped, with a note, when the slot is empty).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::history::{F, FaultEvent, Op, OpType, Phase, Recorder};
use crate::net::Netns;
use crate::proxy::{Delay, Proxy};

pub mod clock;
pub mod corrupt;
pub mod delay;
pub mod graph;
pub mod kill;
pub mod lossy;
pub mod membership;
pub mod partition;
pub mod partition_leader;
pub mod pause;
pub mod power_cut;
pub mod reshard;

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
    /// Every node connected to the nodes next to it in a ring: each sees a different majority.
    Ring,
    /// Two halves that hear each other only through one bridge node.
    Bridge,
    /// Slow links with jitter (one node's or all), through the node-to-node proxy.
    Delay,
    /// One node's wall clock offset by seconds to minutes (libfaketime).
    Clock,
    /// Split, merge or rescale the test stream's shards. Drawn from a random stream of its own
    /// and run alongside the other faults, so enabling it leaves their schedule unchanged.
    Reshard,
    /// SIGKILL one node or every node, drop their unsynced writes (FUSE layer), restart them.
    #[serde(rename = "power-cut")]
    PowerCut,
    /// A node joins in a free slot, or a member is drained and removed (property 13).
    Membership,
    /// One node's WAL or snapshot damaged while it is stopped, then restarted (property 12).
    Corrupt,
    /// The same with one bit of the node's sled database (state machines and metadata).
    #[serde(rename = "corrupt-sled")]
    CorruptSled,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::Lossy => "lossy",
            Kind::PartitionLeader => "partition-leader",
            Kind::Ring => "ring",
            Kind::Bridge => "bridge",
            Kind::Delay => "delay",
            Kind::Clock => "clock",
            Kind::Reshard => "reshard",
            Kind::PowerCut => "power-cut",
            Kind::Membership => "membership",
            Kind::Corrupt => "corrupt",
            Kind::CorruptSled => "corrupt-sled",
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
    Ring {
        /// The ring, in order; each node hears those close to it.
        order: Vec<u64>,
        /// The links cut (each in both directions).
        cut: Vec<(u64, u64)>,
    },
    Bridge {
        bridge: u64,
        halves: Vec<Vec<u64>>,
        cut: Vec<(u64, u64)>,
    },
    Delay {
        /// The node whose links are slowed; every link when `None`.
        node: Option<u64>,
        delay: Delay,
    },
    Clock {
        node: u64,
        /// Seconds the node's wall clock is moved (negative: behind).
        offset_s: i64,
    },
    Reshard {
        draw: reshard::Draw,
        /// Filled in when the request has been sent.
        #[serde(skip_serializing_if = "Option::is_none")]
        done: Option<reshard::Done>,
    },
    #[serde(rename = "power-cut")]
    PowerCut {
        /// Every node at once (else one).
        all: bool,
        nodes: Vec<u64>,
    },
    Membership {
        /// Which member to drain (modulo the members when the step starts).
        pick: u64,
        /// Filled in when the step is over.
        #[serde(skip_serializing_if = "Option::is_none")]
        done: Option<membership::Done>,
    },
    Corrupt {
        node: u64,
        damage: corrupt::Damage,
        /// Seeds where the damage goes in the files found.
        pick: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        done: Option<corrupt::Done>,
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
            Fault::Ring { .. } => Kind::Ring,
            Fault::Bridge { .. } => Kind::Bridge,
            Fault::Delay { .. } => Kind::Delay,
            Fault::Clock { .. } => Kind::Clock,
            Fault::Reshard { .. } => Kind::Reshard,
            Fault::PowerCut { .. } => Kind::PowerCut,
            Fault::Membership { .. } => Kind::Membership,
            Fault::Corrupt {
                damage: corrupt::Damage::Sled,
                ..
            } => Kind::CorruptSled,
            Fault::Corrupt { .. } => Kind::Corrupt,
        }
    }

    /// For partitions: the sides (empty until a `partition-leader` fault has found its node).
    /// For rings and bridges, which have no sides: what each node hears, in node order.
    pub fn groups(&self) -> Vec<Vec<u64>> {
        match self {
            Fault::Partition { groups, .. } => groups.clone(),
            Fault::PartitionLeader { found: Some(f), .. } => f.groups.clone(),
            Fault::Ring { .. } | Fault::Bridge { .. } => self.graph().views(),
            _ => Vec::new(),
        }
    }

    /// Who hears whom while a ring or bridge lasts (everyone, for other faults).
    fn graph(&self) -> graph::Graph {
        match self {
            Fault::Ring { order, .. } => graph::ring(order),
            Fault::Bridge { bridge, halves, .. } => graph::bridge(
                *bridge,
                halves.first().map_or(&[][..], Vec::as_slice),
                halves.get(1).map_or(&[][..], Vec::as_slice),
            ),
            _ => graph::Graph::full(&[]),
        }
    }

    /// The nodes the fault acts on (for a partition: the minority side).
    pub fn nodes(&self) -> Vec<u64> {
        match self {
            Fault::Kill { node }
            | Fault::Pause { node }
            | Fault::Lossy { node, .. }
            | Fault::Corrupt { node, .. }
            | Fault::Clock { node, .. } => {
                vec![*node]
            }
            Fault::Delay { node, .. } => node.iter().copied().collect(),
            // The nodes that lose at least one link.
            Fault::Ring { cut, .. } | Fault::Bridge { cut, .. } => {
                let mut n: Vec<u64> = cut.iter().flat_map(|&(a, b)| [a, b]).collect();
                n.sort_unstable();
                n.dedup();
                n
            }
            Fault::PartitionLeader { found, .. } => found.iter().map(|f| f.isolated).collect(),
            // A topology change acts on the stream, not on nodes.
            Fault::Reshard { .. } => Vec::new(),
            Fault::PowerCut { nodes, .. } => nodes.clone(),
            Fault::Membership { done, .. } => done.iter().map(|d| d.slot).collect(),
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
            Fault::Ring { order, cut } => format!("ring {order:?}, links cut {cut:?}"),
            Fault::Bridge {
                bridge,
                halves,
                cut,
            } => format!("bridge node {bridge} between {halves:?}, links cut {cut:?}"),
            Fault::Delay { node, delay } => format!(
                "delay {} by {}ms + up to {}ms jitter per chunk",
                node.map_or("every link".to_string(), |n| format!(
                    "the links of node {n}"
                )),
                delay.base_ms,
                delay.jitter_ms
            ),
            Fault::Clock { node, offset_s } => {
                format!("clock of node {node} moved {offset_s:+}s")
            }
            Fault::Reshard { draw, done } => match done {
                Some(d) => format!(
                    "reshard: {} ({} open shards): {}{}",
                    d.request,
                    d.open_before,
                    d.answer,
                    d.status_after
                        .as_ref()
                        .map_or(String::new(), |s| format!(", stream {s} at the end"))
                ),
                None => format!("reshard {draw:?}"),
            },
            Fault::Membership { done, pick } => match done {
                Some(d) => format!("membership {}", d.describe()),
                None => format!("membership change (pick {pick})"),
            },
            Fault::Corrupt {
                node, damage, done, ..
            } => match done {
                Some(d) => format!(
                    "corrupt ({}) node {}: {}",
                    damage.name(),
                    d.node,
                    d.describe()
                ),
                None => format!("corrupt ({}) the node in slot {node}", damage.name()),
            },
        }
    }

    /// What a `membership` or `corrupt` fault ended with (`joined`, `detected-replaced`, ...).
    pub fn outcome(&self) -> Option<String> {
        match self {
            Fault::Membership { done: Some(d), .. } => Some(format!("{}:{}", d.step, d.outcome)),
            Fault::Corrupt { done: Some(d), .. } => Some(d.outcome.clone()),
            _ => None,
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
///
/// `reshard` is not among the kinds that take turns: its actions come from a random stream of
/// their own (the seed mixed with a constant), every 1-8 s, and follow the other faults in the
/// returned list with the next ids. So adding it changes nothing in the other kinds' schedule.
pub fn plan(seed: u64, kinds: &[Kind], nodes: u64, time_limit: Duration) -> Vec<Planned> {
    let mut kinds = kinds.to_vec();
    kinds.sort_unstable();
    kinds.dedup();
    let reshard = kinds.contains(&Kind::Reshard);
    kinds.retain(|k| *k != Kind::Reshard);
    let mut out = if kinds.is_empty() || nodes == 0 {
        Vec::new()
    } else {
        plan_turns(seed, &kinds, nodes, time_limit)
    };
    if reshard {
        let mut rng = StdRng::seed_from_u64(seed ^ RESHARD_SALT);
        let last_end = time_limit.saturating_sub(END_MARGIN);
        let mut t = Duration::ZERO;
        loop {
            let at = t + Duration::from_millis(rng.random_range(reshard::GAP_MS));
            let duration = Duration::from_millis(rng.random_range(reshard::WINDOW_MS));
            if at + duration > last_end {
                break;
            }
            out.push(Planned {
                id: out.len() as u64 + 1,
                at,
                duration,
                fault: Fault::Reshard {
                    draw: reshard::draw(&mut rng),
                    done: None,
                },
            });
            t = at + duration;
        }
    }
    out
}

/// Mixed into the seed for the reshard schedule's random stream.
const RESHARD_SALT: u64 = 0x7265_7368_6172_6421;

/// The schedule of the kinds that take turns (never overlapping).
fn plan_turns(seed: u64, kinds: &[Kind], nodes: u64, time_limit: Duration) -> Vec<Planned> {
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
            Kind::Ring => graph::draw_ring(&mut rng, nodes),
            Kind::Bridge => graph::draw_bridge(&mut rng, nodes),
            Kind::Delay => delay::draw(&mut rng, nodes),
            Kind::Clock => clock::draw(&mut rng, nodes),
            // Filtered out by `plan`: reshards have their own schedule.
            Kind::Reshard => Fault::Reshard {
                draw: reshard::draw(&mut rng),
                done: None,
            },
            Kind::PowerCut => power_cut::draw(&mut rng, nodes),
            Kind::Membership => membership::draw(&mut rng),
            Kind::Corrupt => corrupt::draw(&mut rng, nodes),
            Kind::CorruptSled => corrupt::draw_sled(&mut rng, nodes),
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
    /// The node-to-node proxy, when the `delay` nemesis is enabled.
    pub proxy: Option<Arc<Proxy>>,
    /// The nodes' faked clocks, when the `clock` nemesis is enabled.
    pub clocks: Option<clock::Clocks>,
    /// Each node's FUSE disk, when the `power-cut` nemesis runs.
    pub disks: Option<Arc<crate::lazyfs::Disks>>,
    /// Turns true when the workload ends: long membership waits stop early.
    pub stop: Option<watch::Receiver<bool>>,
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

    /// The slot of node `id` (its own number unless membership changed).
    pub(crate) fn slot_of(&self, id: u64) -> Option<u64> {
        self.with_cluster(|c| c.slot_of(id))
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
    // A process fault on a slot whose node was removed has nothing to act on.
    if let Fault::Kill { node } | Fault::Pause { node } | Fault::Clock { node, .. } = fault
        && target.with_cluster(|c| c.node_id(*node)).is_none()
    {
        return Ok(Some(format!(
            "skipped: slot {node} holds no member (its node was removed)"
        )));
    }
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
        Fault::Ring { cut, .. } | Fault::Bridge { cut, .. } => {
            graph::start(target, cut.clone()).await
        }
        Fault::Delay { node, delay } => delay::start(target, *node, *delay),
        Fault::Clock { node, offset_s } => clock::start(target, *node, *offset_s).await,
        // Started by `drive` itself, which records what the request did; power cuts above.
        Fault::Reshard { .. }
        | Fault::PowerCut { .. }
        | Fault::Membership { .. }
        | Fault::Corrupt { .. } => Ok(()),
    };
    r.map(|()| None)
}

async fn heal(target: &Target, fault: &Fault) -> Result<(), String> {
    // Nothing to restart or resume where the slot's node was removed.
    if let Fault::Kill { node } | Fault::Pause { node } | Fault::Clock { node, .. } = fault
        && target.with_cluster(|c| c.node_id(*node)).is_none()
    {
        return Ok(());
    }
    match fault {
        Fault::Kill { node } => kill::heal(target, *node),
        Fault::Pause { node } => pause::heal(target, *node),
        Fault::Partition { .. }
        | Fault::Lossy { .. }
        | Fault::PartitionLeader { .. }
        | Fault::Ring { .. }
        | Fault::Bridge { .. } => partition::heal(target).await,
        Fault::Delay { .. } => delay::heal(target),
        Fault::Clock { node, .. } => clock::heal(target, *node).await,
        // Nothing to undo: the change carries on by itself (see `reshard.rs`), and a membership
        // step or a corruption is over (repaired or not) when its start returns.
        Fault::Reshard { .. } | Fault::Membership { .. } | Fault::Corrupt { .. } => Ok(()),
        Fault::PowerCut { nodes, .. } => power_cut::heal(target, nodes),
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
        outcome: planned.fault.outcome(),
    });
    op.error = error;
    rec.record(op);
}

/// Carries out `schedule` from `origin` (the start of the workload) until it is done or `stop`
/// turns true; a fault in progress when stopping is healed at once.
/// Reshards run in a sequence of their own, alongside the other faults.
pub async fn drive(
    schedule: Vec<Planned>,
    target: Target,
    rec: Recorder,
    origin: tokio::time::Instant,
    stop: watch::Receiver<bool>,
) -> std::collections::BTreeMap<Kind, Tally> {
    let (reshards, turns): (Vec<Planned>, Vec<Planned>) = schedule
        .into_iter()
        .partition(|p| p.fault.kind() == Kind::Reshard);
    let (mut tally, other) = tokio::join!(
        drive_sequence(turns, &target, &rec, origin, stop.clone()),
        drive_sequence(reshards, &target, &rec, origin, stop),
    );
    // The two sequences never share a kind.
    tally.extend(other);
    tally
}

async fn drive_sequence(
    schedule: Vec<Planned>,
    target: &Target,
    rec: &Recorder,
    origin: tokio::time::Instant,
    mut stop: watch::Receiver<bool>,
) -> std::collections::BTreeMap<Kind, Tally> {
    let target = target.clone();
    let rec = rec.clone();
    let mut tally: std::collections::BTreeMap<Kind, Tally> = Default::default();
    for p in &schedule {
        tally.entry(p.fault.kind()).or_default().planned += 1;
    }
    for mut p in schedule {
        let kind = p.fault.kind();
        // When both are ready (a fault overran into the next one's time and the workload ended
        // meanwhile) `select!` picks either: a fault must not start after the end.
        if *stop.borrow() {
            break;
        }
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
        let started = match &mut p.fault {
            Fault::Reshard { draw, done } => match reshard::start(&target, *draw).await {
                Ok(d) => {
                    // Refused (still UPDATING) or unknown under faults: part of the run, noted.
                    if d.answer != "accepted" {
                        entry
                            .notes
                            .push(format!("#{}: {}: {}", p.id, d.request, d.answer));
                    }
                    *done = Some(d);
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            Fault::Membership { pick, done } => {
                let (r, d) = match membership::start(&target, *pick).await {
                    Ok(d) => (Ok(Some(d.describe())), d),
                    Err(d) => (Err(d.describe()), d),
                };
                *done = Some(d);
                r
            }
            Fault::Corrupt {
                node,
                damage,
                pick,
                done,
            } => {
                let (r, d) = match corrupt::start(&target, *node, *damage, *pick).await {
                    Ok(d) => (Ok(Some(d.describe())), d),
                    Err(d) => (Err(d.describe()), d),
                };
                *done = Some(d);
                r
            }
            other => start(&target, other).await,
        };
        if let Fault::Reshard { done: Some(d), .. } = &p.fault {
            println!("nemesis: #{} {}: {}", p.id, d.request, d.answer);
        }
        match started {
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
        if let Fault::Reshard { done: Some(d), .. } = &mut p.fault {
            d.status_after = reshard::status(&target).await;
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
    if let Some(proxy) = &target.proxy {
        proxy.set_delay(|_, _| true, None);
    }
    if let Some(clocks) = &target.clocks
        && let Err(e) = clocks.reset_all()
    {
        done.push(format!("clock reset failed: {e}"));
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
    fn ring_bridge_delay_and_clock_sort_last_and_are_drawn_when_enabled() {
        let mut all = vec![
            Kind::Clock,
            Kind::Delay,
            Kind::Bridge,
            Kind::Ring,
            Kind::PartitionLeader,
            Kind::Lossy,
        ];
        all.sort_unstable();
        assert_eq!(
            all,
            vec![
                Kind::Lossy,
                Kind::PartitionLeader,
                Kind::Ring,
                Kind::Bridge,
                Kind::Delay,
                Kind::Clock
            ]
        );
        let new = [Kind::Ring, Kind::Bridge, Kind::Delay, Kind::Clock];
        let s = plan(7, &new, 5, Duration::from_secs(60));
        let kinds: std::collections::BTreeSet<Kind> = s.iter().map(|p| p.fault.kind()).collect();
        assert_eq!(
            kinds.len(),
            4,
            "seed 7 (the CI campaign) draws every new kind: {s:?}"
        );
        for p in &s {
            match &p.fault {
                Fault::Ring { order, cut } => assert_eq!(graph::ring(order).cut_links(), *cut),
                Fault::Bridge { .. } => assert_eq!(p.fault.groups().len(), 5),
                Fault::Delay { node, .. } => assert!(node.is_none_or(|n| (1..=5).contains(&n))),
                Fault::Clock { node, offset_s } => {
                    assert!((1..=5).contains(node) && *offset_s != 0)
                }
                other => panic!("not enabled: {other:?}"),
            }
        }
        let old = [
            Kind::Kill,
            Kind::Pause,
            Kind::Partition,
            Kind::Lossy,
            Kind::PartitionLeader,
        ];
        let old_plan = plan(8, &old, 3, Duration::from_secs(60));
        assert!(
            old_plan
                .iter()
                .all(|p| p.fault.kind() <= Kind::PartitionLeader)
        );
    }

    #[test]
    fn reshard_sorts_last_runs_alongside_and_leaves_the_other_schedule_alone() {
        let mut all = [Kind::Reshard, Kind::Clock, Kind::Kill];
        all.sort_unstable();
        assert_eq!(all.last(), Some(&Kind::Reshard));
        let limit = Duration::from_secs(60);
        for seed in 0..20 {
            let old = plan(seed, &[Kind::Kill, Kind::Partition], 3, limit);
            let with = plan(
                seed,
                &[Kind::Reshard, Kind::Kill, Kind::Partition],
                3,
                limit,
            );
            assert_eq!(with[..old.len()], old[..], "seed {seed}");
            let reshards = &with[old.len()..];
            assert!(reshards.len() >= 3, "seed {seed}: {reshards:?}");
            let mut t = Duration::ZERO;
            for (i, p) in reshards.iter().enumerate() {
                assert_eq!(p.id, (old.len() + i + 1) as u64);
                assert!(matches!(p.fault, Fault::Reshard { done: None, .. }));
                assert!(p.fault.nodes().is_empty());
                assert!(p.at >= t + Duration::from_secs(1) && p.at + p.duration <= limit);
                t = p.at + p.duration;
            }
        }
        let alone = plan(5, &[Kind::Reshard], 3, limit);
        assert!(!alone.is_empty() && alone.iter().all(|p| p.fault.kind() == Kind::Reshard));
        assert_eq!(alone, plan(5, &[Kind::Reshard], 3, limit));
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
    fn membership_and_corrupt_sort_last_so_old_seeds_replay() {
        let mut all = vec![Kind::Corrupt, Kind::Membership, Kind::PowerCut, Kind::Kill];
        all.sort_unstable();
        assert_eq!(
            all,
            vec![Kind::Kill, Kind::PowerCut, Kind::Membership, Kind::Corrupt]
        );
        let limit = Duration::from_secs(40);
        let old = plan(11, &[Kind::PowerCut, Kind::Kill], 3, limit);
        assert!(old.iter().all(|p| p.fault.kind() <= Kind::PowerCut));
        let s = plan(5, &[Kind::Membership, Kind::Corrupt, Kind::Kill], 3, limit);
        let kinds: std::collections::BTreeSet<Kind> = s.iter().map(|p| p.fault.kind()).collect();
        assert_eq!(kinds.len(), 3, "{s:?}");
        for p in &s {
            match &p.fault {
                Fault::Corrupt { node, done, .. } => {
                    assert!((1..=3).contains(node) && done.is_none())
                }
                // The step is chosen when it starts: until then it names no slot.
                Fault::Membership { done, .. } => {
                    assert!(done.is_none() && p.fault.nodes().is_empty())
                }
                Fault::Kill { .. } => {}
                other => panic!("not enabled: {other:?}"),
            }
        }
    }

    #[test]
    fn only_enabled_kinds_are_drawn_and_none_means_no_faults() {
        let s = plan(3, &[Kind::Pause], 3, Duration::from_secs(120));
        assert!(s.iter().all(|p| p.fault.kind() == Kind::Pause));
        assert!(plan(3, &[], 3, Duration::from_secs(120)).is_empty());
        assert!(plan(3, &[Kind::Kill], 3, Duration::from_secs(5)).is_empty());
    }
}
