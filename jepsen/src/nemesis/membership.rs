//! `membership`: the cluster's members change while the workload runs (property 13). Each fault
//! is one step, chosen against the cluster when it starts:
//!
//! - **join**: a free slot (the spare one prepared at the start, or the slot a drained node
//!   left) gets a node with an id never used in the run, started with `--join` through the
//!   current members on an empty data directory. The step waits until the metadata lists the
//!   node as a voter that holds replicas (rebalancing moves them there once every member is up).
//! - **drain**: a member drawn with the schedule is drained (`DrainNode`); the step waits until
//!   no node lists it and no shard has a replica on it, then stops its process and frees its slot.
//!
//! With N initial nodes and one spare slot the steps alternate: join (N+1 members), drain (N),
//! join a fresh id in the freed slot (N+1), and so on. A join that is still waiting for replicas
//! when the workload ends is left as it is (the node is a member); a drain is always waited for,
//! so the final reads only go through nodes that are members.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use serde::Serialize;
use streamd_client::{ClientOptions, ErrorCode, RetryPolicy, StreamdClient};
use tokio::time::Instant;

use super::{Fault, Target};
use crate::cluster::Member;

/// How long a joined node gets to be admitted and hold replicas.
const JOIN_DEADLINE: Duration = Duration::from_secs(60);
/// How long a drained node gets to hand its replicas over and be removed.
pub(crate) const DRAIN_DEADLINE: Duration = Duration::from_secs(90);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const POLL_EVERY: Duration = Duration::from_millis(500);

pub(crate) fn draw(rng: &mut StdRng) -> Fault {
    Fault::Membership {
        pick: rng.random(),
        done: None,
    }
}

/// What a step did, for the history and results.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// `join` or `drain`.
    pub step: String,
    pub slot: u64,
    /// The node that joined or was drained.
    pub node: u64,
    /// `joined`, `drained`, `interrupted` (the workload ended first) or `failed`.
    pub outcome: String,
    pub took_ms: u64,
    pub detail: String,
}

/// How a wait ended.
pub(crate) enum Waited<T> {
    Done(T),
    /// The workload ended; the last state seen.
    Stopped(String),
    /// The deadline passed; the last state seen.
    TimedOut(String),
}

/// Polls `check` until it returns `Ok`, the deadline passes or (when `interruptible`) the
/// workload ends.
pub(crate) async fn wait_for<T, F, Fut>(
    target: &Target,
    deadline: Duration,
    interruptible: bool,
    mut check: F,
) -> Waited<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let end = Instant::now() + deadline;
    loop {
        let last = match check().await {
            Ok(v) => return Waited::Done(v),
            Err(e) => e,
        };
        if interruptible && target.stop.as_ref().is_some_and(|s| *s.borrow()) {
            return Waited::Stopped(last);
        }
        if Instant::now() >= end {
            return Waited::TimedOut(last);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A client on the members, without `except` (a node being removed may answer from metadata it
/// no longer receives). Reads move on to the next node when one does not answer.
pub(crate) fn admin_client(members: &[Member], except: &[u64]) -> Result<StreamdClient, String> {
    let endpoints: Vec<String> = members
        .iter()
        .filter(|m| !except.contains(&m.id))
        .map(|m| m.grpc.clone())
        .collect();
    let options = ClientOptions {
        request_timeout: CALL_TIMEOUT,
        connect_timeout: Duration::from_secs(1),
        read_retry: RetryPolicy {
            max_attempts: endpoints.len().max(1) as u32,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
    };
    StreamdClient::connect_with(&endpoints, options).map_err(|e| e.to_string())
}

/// Whether node `id` is a metadata voter holding at least one replica.
async fn holds_replicas(client: &StreamdClient, id: u64) -> Result<u32, String> {
    let status = client.cluster_status().await.map_err(|e| e.to_string())?;
    match status.nodes.iter().find(|n| n.node_id == id) {
        None => Err(format!("node {id} not listed yet")),
        Some(n) if !n.voter => Err(format!("node {id} not a metadata voter yet")),
        Some(n) if n.groups == 0 => Err(format!("node {id} holds no replica yet")),
        Some(n) => Ok(n.groups),
    }
}

/// Whether node `id` is gone: no node lists it and no shard of `stream` has a replica on it.
pub(crate) async fn removed(client: &StreamdClient, stream: &str, id: u64) -> Result<(), String> {
    let status = client.cluster_status().await.map_err(|e| e.to_string())?;
    let shards = client
        .list_shards(stream)
        .await
        .map_err(|e| e.to_string())?;
    let holding: Vec<&str> = shards
        .iter()
        .filter(|s| s.replicas.contains(&id))
        .map(|s| s.shard_id.as_str())
        .collect();
    if !holding.is_empty() {
        return Err(format!("replicas still on node {id}: {holding:?}"));
    }
    if status.nodes.iter().any(|n| n.node_id == id) {
        return Err(format!("node {id} holds no replica but is still listed"));
    }
    Ok(())
}

/// Asks the cluster to drain node `id`, retrying while it cannot answer. A node already gone
/// (`ResourceNotFound`) counts as drained.
pub(crate) async fn request_drain(
    target: &Target,
    members: &[Member],
    id: u64,
) -> Result<(), String> {
    let client = admin_client(members, &[id])?;
    let asked = wait_for(target, Duration::from_secs(30), false, || async {
        match client.drain_node(id).await {
            Ok(()) => Ok(Ok(())),
            Err(e) if e.code() == ErrorCode::ResourceNotFound => Ok(Ok(())),
            Err(e) if e.retryable() => Err(e.to_string()),
            // Refused for good (the last node not draining): retrying cannot help.
            Err(e) => Ok(Err(e.to_string())),
        }
    })
    .await;
    match asked {
        Waited::Done(Ok(())) => Ok(()),
        Waited::Done(Err(e)) | Waited::Stopped(e) | Waited::TimedOut(e) => {
            Err(format!("DrainNode {id}: {e}"))
        }
    }
}

/// Runs one step. `Err` carries the step's record too: a failed step is still in the history.
pub(crate) async fn start(target: &Target, pick: u64) -> Result<Done, Done> {
    let started = Instant::now();
    let (members, free) = target.with_cluster(|c| (c.members(), c.free_slots()));
    let took = || started.elapsed().as_millis() as u64;
    let initial = target.with_cluster(|c| c.initial_nodes());
    match free.first() {
        Some(&slot) => join(target, slot, &members, started).await,
        // A drain needs a node to spare: the replicas need somewhere to go.
        None if members.len() <= initial => Ok(Done {
            step: "drain".into(),
            slot: 0,
            node: 0,
            outcome: "skipped".into(),
            took_ms: took(),
            detail: format!(
                "no free slot to join into and only {} member(s), none to spare",
                members.len()
            ),
        }),
        None => {
            let Some(victim) = members.get((pick % members.len().max(1) as u64) as usize) else {
                return Err(Done {
                    step: "drain".into(),
                    slot: 0,
                    node: 0,
                    outcome: "failed".into(),
                    took_ms: took(),
                    detail: "no member to drain".into(),
                });
            };
            drain(target, victim.clone(), &members, started).await
        }
    }
}

async fn join(
    target: &Target,
    slot: u64,
    members: &[Member],
    started: Instant,
) -> Result<Done, Done> {
    let seeds: Vec<String> = members.iter().map(|m| m.grpc.clone()).collect();
    let placed = target.with_cluster(|c| {
        let id = c.place_new(slot, seeds.join(","))?;
        c.spawn(slot).map(|()| id)
    });
    let mut done = Done {
        step: "join".into(),
        slot,
        node: 0,
        outcome: "failed".into(),
        took_ms: 0,
        detail: String::new(),
    };
    let id = match placed {
        Ok(id) => id,
        Err(e) => {
            done.detail = format!("cannot start a node in slot {slot}: {e}");
            return Err(done);
        }
    };
    done.node = id;
    let client = match admin_client(members, &[]) {
        Ok(c) => c,
        Err(e) => {
            done.detail = e;
            return Err(done);
        }
    };
    let waited = wait_for(target, JOIN_DEADLINE, true, || async {
        if let Some(exit) = target.with_cluster(|c| c.try_exit(slot).ok().flatten()) {
            return Ok(Err(format!("node {id} exited: {exit}")));
        }
        holds_replicas(&client, id).await.map(Ok)
    })
    .await;
    done.took_ms = started.elapsed().as_millis() as u64;
    match waited {
        Waited::Done(Ok(groups)) => {
            done.outcome = "joined".into();
            done.detail = format!("node {id} joined in slot {slot} and holds {groups} replica(s)");
            Ok(done)
        }
        Waited::Done(Err(e)) => {
            done.detail = e;
            Err(done)
        }
        Waited::Stopped(last) => {
            done.outcome = "interrupted".into();
            done.detail = format!(
                "node {id} started in slot {slot}; the workload ended before it held replicas ({last})"
            );
            Ok(done)
        }
        Waited::TimedOut(last) => {
            done.detail = format!(
                "node {id} started in slot {slot} but held no replica within {JOIN_DEADLINE:?}: {last}"
            );
            Err(done)
        }
    }
}

async fn drain(
    target: &Target,
    victim: Member,
    members: &[Member],
    started: Instant,
) -> Result<Done, Done> {
    let id = victim.id;
    let mut done = Done {
        step: "drain".into(),
        slot: victim.slot,
        node: id,
        outcome: "failed".into(),
        took_ms: 0,
        detail: String::new(),
    };
    if let Err(e) = request_drain(target, members, id).await {
        done.took_ms = started.elapsed().as_millis() as u64;
        done.detail = e;
        return Err(done);
    }
    let client = match admin_client(members, &[id]) {
        Ok(c) => c,
        Err(e) => {
            done.detail = e;
            return Err(done);
        }
    };
    // Not interruptible: the final reads must only go through members.
    let waited = wait_for(target, DRAIN_DEADLINE, false, || {
        removed(&client, &target.stream, id)
    })
    .await;
    done.took_ms = started.elapsed().as_millis() as u64;
    match waited {
        Waited::Done(()) => {
            let stopped = target.with_cluster(|c| c.vacate(victim.slot));
            done.outcome = "drained".into();
            done.detail = match stopped {
                Ok(()) => format!("node {id} drained and removed; slot {} free", victim.slot),
                Err(e) => format!("node {id} drained and removed; stopping it failed: {e}"),
            };
            Ok(done)
        }
        Waited::Stopped(last) | Waited::TimedOut(last) => {
            done.detail = format!("node {id} was not removed within {DRAIN_DEADLINE:?}: {last}");
            Err(done)
        }
    }
}

impl Done {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} ({} in {} ms): {}",
            self.step, self.outcome, self.took_ms, self.detail
        )
    }
}
