//! A node's graceful stop (SIGTERM or Ctrl-C), in this order:
//!
//! 1. `/readyz` answers 503 "shutting down" and no local replica campaigns or accepts
//!    leadership any more (`RaftHost::begin_stop`), so what is handed away stays away.
//! 2. Every group this node leads is handed to its most caught-up voter (openraft's leader
//!    transfer, the same one leader balancing uses), asked up to four times, until none is led
//!    here or a deadline passes. Meanwhile the listeners still serve: requests arriving here are
//!    forwarded to the new leaders.
//! 3. Writes this node proposed as leader are left to settle: its replicas apply what their
//!    logs held at the handoff (committed by the new leaders), so their callers hear the
//!    outcome rather than an unknown one.
//! 4. The gRPC and Kinesis listeners stop accepting, and in-flight requests finish, within a
//!    deadline (`DRAIN_DEADLINE`).
//! 5. The Raft groups stop, then storage is flushed: a WAL barrier (everything queued is
//!    fdatasync'ed) and sled's durable flush.
//! 6. With `--otlp-endpoint`, the spans still queued are sent to the collector (bounded). The
//!    process exits 0.
//!
//! A stop that runs out of attempts or time in step 2 or 3 carries on: the peers elect leaders for what is
//! left, as they would after a crash, only sooner since this node no longer heartbeats.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::node::Node;

/// Longest step 2 may take; a transfer normally completes in one round trip and an election.
const HANDOFF_DEADLINE: Duration = Duration::from_secs(10);
/// A transfer not done after this is asked again (possibly to another voter)...
const HANDOFF_RETRY: Duration = Duration::from_millis(500);
/// ...this many times in all. The voters may be stopping too (a whole cluster stopped at
/// once): they refuse leadership, and waiting out the deadline would only delay every exit.
const HANDOFF_ATTEMPTS: u32 = 4;
/// Only voters that acknowledged the leader this recently are handed leadership.
const FRESH_MS: u64 = 2000;
/// Longest step 3 may take.
const SETTLE_DEADLINE: Duration = Duration::from_secs(3);
/// Longest step 4 may take; requests still running after it fail as on a crash.
pub(crate) const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// Steps 1 to 3. Returns when no local group is led here any more, or at the deadlines.
#[tracing::instrument(name = "node.hand_off", skip_all)]
pub(crate) async fn hand_off(node: &Node) {
    let started = Instant::now();
    node.host.begin_stop();
    let mut asked: HashMap<u64, (Instant, u32)> = HashMap::new();
    let deadline = started + HANDOFF_DEADLINE;
    // Each group's last log index when this node last led it: what step 3 waits to apply.
    let mut settle: HashMap<u64, u64> = HashMap::new();
    loop {
        let led: Vec<_> = node
            .host
            .groups()
            .into_iter()
            .filter(|g| {
                let s = g.status();
                // A group with no other voter (a one-node cluster) has nobody to hand over to.
                s.is_leader && s.voters.iter().any(|v| *v != node.host.node_id())
            })
            .filter(|g| {
                asked
                    .get(&g.id())
                    .is_none_or(|(at, n)| *n < HANDOFF_ATTEMPTS || at.elapsed() < HANDOFF_RETRY)
            })
            .collect();
        if led.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let groups: Vec<u64> = led.iter().map(|g| g.id()).collect();
            tracing::warn!(
                ?groups,
                "leadership not handed over in time; stopping anyway"
            );
            break;
        }
        for g in led {
            let status = g.status();
            settle.insert(g.id(), status.last_log_index.unwrap_or(0));
            let attempts = match asked.get(&g.id()) {
                Some((at, _)) if at.elapsed() < HANDOFF_RETRY => continue,
                Some((_, n)) if *n >= HANDOFF_ATTEMPTS => continue,
                Some((_, n)) => *n,
                None => 0,
            };
            asked.insert(g.id(), (Instant::now(), attempts + 1));
            match g.handoff_target(FRESH_MS) {
                Some(to) => {
                    tracing::info!(
                        group_id = g.id(),
                        to,
                        "handing leadership over before stopping"
                    );
                    if let Err(e) = g.transfer_leader(to).await {
                        tracing::warn!(group_id = g.id(), to, error = %e, "leadership transfer not started");
                    }
                }
                None => {
                    tracing::info!(
                        group_id = g.id(),
                        "no caught-up voter to hand leadership to"
                    )
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let still: Vec<u64> = node
        .host
        .groups()
        .iter()
        .filter(|g| g.status().is_leader)
        .map(|g| g.id())
        .collect();
    if !still.is_empty() {
        tracing::info!(groups = ?still, "still leading at the end of the handoff; the peers will elect");
    }
    let handed = started.elapsed();
    let settle_deadline = Instant::now() + SETTLE_DEADLINE;
    while Instant::now() < settle_deadline {
        let pending = settle.iter().any(|(group, index)| {
            node.host
                .group(*group)
                .is_some_and(|g| g.status().last_applied.unwrap_or(0) < *index)
        });
        if !pending {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::info!(
        groups = settle.len(),
        handoff_ms = handed.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "leaderships handed over"
    );
}

/// Step 5's flush, after the Raft groups stopped.
#[tracing::instrument(name = "node.flush_storage", skip_all)]
pub(crate) async fn flush_storage(node: &Node) {
    // An empty append is a barrier: it resolves once everything queued before it is durable.
    if let Err(e) = node
        .host
        .engine()
        .append_durable(streamd_raft::META_GROUP, Vec::new())
        .await
    {
        tracing::warn!(error = %e, "failed to flush the write-ahead log");
    }
    let db = node.host.db().clone();
    match tokio::task::spawn_blocking(move || db.flush_durable()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "failed to flush the state store"),
        Err(e) => tracing::warn!(error = %e, "state store flush task failed"),
    }
}

/// Step 6: the last spans, those of the stop itself included, reach the collector.
pub(crate) async fn flush_traces(exporter: crate::otel::Exporter) {
    crate::otel::flush(exporter).await;
}
