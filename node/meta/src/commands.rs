//! Every change to the metadata, and how it is applied. `apply` is deterministic: it reads only
//! the state and the command (times come inside the command, stamped by the proposer).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streamd_proto::ErrorCode;
use streamd_proto::ids::{HashKeyRange, SequenceNumber, ShardId};
use streamd_proto::limits::{MAX_RETENTION_HOURS, MIN_RETENTION_HOURS};

use crate::leases::{Lease, LeaseOp};
use crate::placement::place_replicas;
use crate::reshard::ReshardRequest;
use crate::state::{
    ConsumerMeta, ConsumerStatus, MetaState, NodeInfo, ShardMeta, StreamMeta, StreamStatus,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Forms the cluster: its secret and first nodes. Ignored once the cluster has formed.
    Init {
        secret: Vec<u8>,
        nodes: Vec<NodeInfo>,
        replication_factor: usize,
    },
    CreateStream {
        name: String,
        shard_count: u32,
        on_demand: bool,
        now_ms: i64,
        region: String,
    },
    DeleteStream {
        name: String,
    },
    /// A shard group elected a leader: the stream turns ACTIVE when all its shards have.
    ShardReady {
        group_id: u64,
    },
    SetRetention {
        name: String,
        hours: u32,
        increase: bool,
    },
    TagStream {
        name: String,
        tags: Vec<(String, String)>,
    },
    UntagStream {
        name: String,
        keys: Vec<String>,
    },
    SetShardLevelMetrics {
        name: String,
        metrics: Vec<String>,
        enable: bool,
    },
    SetStreamMode {
        name: String,
        on_demand: bool,
    },
    SetMaxRecordSize {
        name: String,
        kib: u32,
    },
    SetWarmThroughput {
        name: String,
        mibps: u32,
    },
    RegisterConsumer {
        stream: String,
        name: String,
        now_ms: i64,
    },
    /// The controller marks a registered consumer usable.
    ActivateConsumer {
        arn: String,
    },
    DeregisterConsumer {
        arn: String,
    },
    PutResourcePolicy {
        arn: String,
        policy: String,
    },
    DeleteResourcePolicy {
        arn: String,
    },
    SetBillingCommitment {
        status: String,
        now_ms: i64,
    },
    /// Plans a reshard's first wave (SplitShard, MergeShards, UpdateShardCount).
    Reshard {
        name: String,
        request: ReshardRequest,
        now_ms: i64,
    },
    /// Commits a planned wave once every parent is sealed: `endings` are the sequence numbers
    /// of the parents' Seal entries.
    CompleteReshard {
        name: String,
        op_id: u64,
        endings: Vec<(ShardId, u128)>,
        now_ms: i64,
    },
    /// Forgets closed shards whose retention ran out.
    ExpireShards {
        name: String,
        now_ms: i64,
    },
    /// Replaces replica `from` of shard group `group` by `to` (node lost or drained); the
    /// group's leader then changes the group's membership to match. Refused while the group has
    /// another move in flight, unless `from` is that move's target (redirected elsewhere).
    MoveReplica {
        group: u64,
        from: u64,
        to: u64,
    },
    /// Starts draining a node: its replicas move to other nodes, then it is removed.
    DrainNode {
        id: u64,
    },
    /// Removes a drained node that holds no replica any more.
    RemoveNode {
        id: u64,
    },
    /// A node asks to join the cluster (`streamd --join`). Idempotent for the same id and
    /// address; refused for an id in use at another address, an address in use by another id,
    /// or the id of a removed node.
    AddNode {
        id: u64,
        addr: String,
    },
    /// Node `leader` leads shard group `group` in Raft term `term` (a hint; older terms are
    /// ignored, so reports arriving out of order cannot roll it back).
    ShardLeader {
        group: u64,
        leader: u64,
        term: u64,
    },
    /// The group's voters match its replica set again, `to` among them: its move is over
    /// (unless a later move of the group, to another node, has started since).
    MoveDone {
        group: u64,
        to: u64,
    },
    /// A consumer-group lease operation. `now_ms` is the metadata leader's clock, stamped when
    /// the command is proposed (`stamp_leader_clock`).
    Lease {
        app: String,
        stream: String,
        shard: String,
        owner: String,
        op: LeaseOp,
        now_ms: i64,
    },
    /// Many groups' [`MetaCommand::ShardLeader`] and [`MetaCommand::ShardReady`] reports in one
    /// entry, leaders first: a node that forms thousands of groups reports them once per pass,
    /// not with one metadata write each.
    ShardReports {
        /// (group, leader, term).
        leaders: Vec<(u64, u64, u64)>,
        ready: Vec<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Done,
    /// Shard-level metrics before and after a change.
    Metrics {
        before: Vec<String>,
        after: Vec<String>,
    },
    Consumer(ConsumerMeta),
    Lease(Lease),
}

/// Whether `name` is a valid consumer name: 1 to 128 characters of `[a-zA-Z0-9_.-]`, as
/// Kinesis requires. Each API phrases the refusal its own way.
pub fn valid_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The applied outcome: a reply, or a catalogue error name and message.
pub type MetaResult = Result<MetaReply, (String, String)>;

fn err(code: ErrorCode, msg: impl Into<String>) -> MetaResult {
    Err((code.name().to_string(), msg.into()))
}

fn not_found(name: &str) -> MetaResult {
    err(
        ErrorCode::ResourceNotFound,
        format!("Stream {name} under account 000000000000 not found."),
    )
}

/// Whether a report that `leader` leads `group` in `term` would change the shard map: a
/// report that changes nothing must not copy the stream (and rewrite its stored row).
fn leader_news(s: &StreamMeta, group: u64, leader: u64, term: u64) -> bool {
    s.shards.iter().any(|sh| {
        sh.group_id == group
            && term >= sh.leader_term
            && (sh.leader, sh.leader_term) != (Some(leader), term)
    })
}

/// Whether marking `group` ready would change the shard map.
fn ready_news(s: &StreamMeta, group: u64) -> bool {
    s.shards.iter().any(|sh| sh.group_id == group && !sh.ready)
}

/// Records a report that `leader` leads `group` in `term`, unless a later term is known.
fn note_leader(s: &mut StreamMeta, group: u64, leader: u64, term: u64) {
    if let Some(sh) = s.shards.iter_mut().find(|sh| sh.group_id == group)
        && term >= sh.leader_term
    {
        sh.leader = Some(leader);
        sh.leader_term = term;
    }
}

/// Marks `group`'s shard ready; the stream turns ACTIVE once all its shards are.
fn mark_ready(s: &mut StreamMeta, group: u64) {
    if let Some(sh) = s.shards.iter_mut().find(|sh| sh.group_id == group) {
        sh.ready = true;
    }
    if s.status == StreamStatus::Creating && s.shards.iter().all(|x| x.ready) {
        s.status = StreamStatus::Active;
    }
}

impl MetaState {
    /// [`MetaCommand::ShardReports`]: the stream of each group is found through one index
    /// built for the batch, not a scan of every shard per report.
    fn apply_shard_reports(&mut self, leaders: Vec<(u64, u64, u64)>, ready: Vec<u64>) {
        let stream_of: HashMap<u64, String> = self
            .all_shards()
            .map(|(s, sh)| (sh.group_id, s.name.clone()))
            .collect();
        for (group, leader, term) in leaders {
            let Some(name) = stream_of.get(&group) else {
                continue;
            };
            if self
                .streams
                .get(name)
                .is_some_and(|s| leader_news(s, group, leader, term))
                && let Some(s) = self.stream_mut(name)
            {
                note_leader(s, group, leader, term);
            }
        }
        for group in ready {
            let Some(name) = stream_of.get(&group) else {
                continue;
            };
            if self.streams.get(name).is_some_and(|s| ready_news(s, group))
                && let Some(s) = self.stream_mut(name)
            {
                mark_ready(s, group);
            }
        }
    }

    pub fn apply(&mut self, cmd: MetaCommand) -> MetaResult {
        let drops_groups = matches!(
            cmd,
            MetaCommand::DeleteStream { .. } | MetaCommand::ExpireShards { .. }
        );
        let deleted = match &cmd {
            MetaCommand::DeleteStream { name, .. } => Some(name.clone()),
            _ => None,
        };
        let result = self.apply_command(cmd);
        if let (Some(name), Ok(_)) = (deleted, &result) {
            self.leases.retain(|(_, stream), _| *stream != name);
        }
        if drops_groups && !self.moving.is_empty() {
            // A move of a group that no longer exists never finishes: forget it, or it would
            // hold a slot of the rebalancing budget forever.
            let live: BTreeSet<u64> = self.all_shards().map(|(_, sh)| sh.group_id).collect();
            self.moving.retain(|g, _| live.contains(g));
        }
        result
    }

    fn apply_command(&mut self, cmd: MetaCommand) -> MetaResult {
        match cmd {
            MetaCommand::Init {
                secret,
                nodes,
                replication_factor,
            } => {
                if self.cluster_secret.is_empty() {
                    self.cluster_secret = secret;
                    self.replication_factor = replication_factor.max(1);
                    self.next_group_id = self.next_group_id.max(1);
                    for n in nodes {
                        self.nodes.insert(n.id, n);
                    }
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::CreateStream {
                name,
                shard_count,
                on_demand,
                now_ms,
                region,
            } => {
                if self.streams.contains_key(&name) {
                    return err(
                        ErrorCode::ResourceInUse,
                        format!("Stream {name} under account 000000000000 already exists."),
                    );
                }
                let nodes = self.placement_nodes();
                if nodes.is_empty() {
                    // A stream created before the cluster formed would have shards with no
                    // replicas and never turn ACTIVE.
                    return err(
                        ErrorCode::Unavailable,
                        "the cluster has not formed yet; retry shortly",
                    );
                }
                let mut shards = Vec::new();
                for (i, range) in HashKeyRange::split_even(shard_count)
                    .into_iter()
                    .enumerate()
                {
                    let group_id = self.next_group_id.max(1);
                    self.next_group_id = group_id + 1;
                    shards.push(ShardMeta {
                        shard_id: ShardId(i as u64),
                        group_id,
                        range,
                        parent: None,
                        adjacent_parent: None,
                        replicas: place_replicas(&nodes, self.replication_factor, group_id),
                        starting_seq: SequenceNumber::first_of_group(group_id).0,
                        ending_seq: None,
                        ready: false,
                        pending: false,
                        created_ms: now_ms,
                        closed_ms: None,
                        leader: None,
                        leader_term: 0,
                    });
                }
                let arn = format!("arn:aws:kinesis:{region}:000000000000:stream/{name}");
                self.streams.insert(
                    name.clone(),
                    Arc::new(StreamMeta {
                        name,
                        arn,
                        status: StreamStatus::Creating,
                        on_demand,
                        retention_hours: streamd_proto::limits::DEFAULT_RETENTION_HOURS,
                        created_ms: now_ms,
                        next_shard_id: u64::from(shard_count),
                        shards,
                        map_epoch: 1,
                        tags: Default::default(),
                        shard_level_metrics: Default::default(),
                        max_record_size_kib: 1024,
                        warm_throughput_mibps: None,
                        consumers: Vec::new(),
                        reshard: None,
                    }),
                );
                Ok(MetaReply::Done)
            }
            MetaCommand::DeleteStream { name } => {
                let Some(s) = self.streams.remove(&name) else {
                    return not_found(&name);
                };
                self.resource_policies.remove(&s.arn);
                for c in &s.consumers {
                    self.resource_policies.remove(&c.arn);
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::ShardReady { group_id } => {
                if let Some(s) = self.stream_of_group_mut(group_id) {
                    mark_ready(s, group_id);
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::SetRetention {
                name,
                hours,
                increase,
            } => {
                let Some(s) = self.stream_mut(&name) else {
                    return not_found(&name);
                };
                if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!(
                            "Retention period must be between {MIN_RETENTION_HOURS} and {MAX_RETENTION_HOURS} hours, got {hours}."
                        ),
                    );
                }
                if increase && hours < s.retention_hours {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!(
                            "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({} hours). Use DecreaseRetentionPeriod API.",
                            s.retention_hours
                        ),
                    );
                }
                if !increase && hours > s.retention_hours {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!(
                            "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({} hours). Use IncreaseRetentionPeriod API.",
                            s.retention_hours
                        ),
                    );
                }
                s.retention_hours = hours;
                Ok(MetaReply::Done)
            }
            MetaCommand::TagStream { name, tags } => {
                let Some(s) = self.stream_mut(&name) else {
                    return not_found(&name);
                };
                for (k, v) in &tags {
                    if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
                        return err(
                            ErrorCode::InvalidArgument,
                            format!(
                                "Tag key must be 1 to 128 characters and value at most 256, got key {k:?}."
                            ),
                        );
                    }
                }
                let mut next = s.tags.clone();
                next.extend(tags);
                if next.len() > MAX_TAGS {
                    return err(
                        ErrorCode::LimitExceeded,
                        format!("Stream {name} may not have more than {MAX_TAGS} tags."),
                    );
                }
                s.tags = next;
                Ok(MetaReply::Done)
            }
            MetaCommand::UntagStream { name, keys } => {
                let Some(s) = self.stream_mut(&name) else {
                    return not_found(&name);
                };
                for k in keys {
                    s.tags.remove(&k);
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::SetShardLevelMetrics {
                name,
                metrics,
                enable,
            } => {
                let Some(s) = self.stream_mut(&name) else {
                    return not_found(&name);
                };
                let mut wanted = Vec::new();
                for m in metrics {
                    if m == "ALL" {
                        wanted.extend(SHARD_LEVEL_METRICS.iter().map(|x| x.to_string()));
                    } else if SHARD_LEVEL_METRICS.contains(&m.as_str()) {
                        wanted.push(m);
                    } else {
                        return err(
                            ErrorCode::InvalidArgument,
                            format!("Unknown shard-level metric {m}."),
                        );
                    }
                }
                let before: Vec<String> = s.shard_level_metrics.iter().cloned().collect();
                for m in wanted {
                    if enable {
                        s.shard_level_metrics.insert(m);
                    } else {
                        s.shard_level_metrics.remove(&m);
                    }
                }
                let after = s.shard_level_metrics.iter().cloned().collect();
                Ok(MetaReply::Metrics { before, after })
            }
            MetaCommand::SetStreamMode { name, on_demand } => {
                let Some(s) = self.stream_mut(&name) else {
                    return not_found(&name);
                };
                if s.status != StreamStatus::Active {
                    return err(
                        ErrorCode::ResourceInUse,
                        format!("Stream {name} is not ACTIVE."),
                    );
                }
                s.on_demand = on_demand;
                if !on_demand {
                    s.warm_throughput_mibps = None;
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::SetMaxRecordSize { name, kib } => {
                let Some(s) = self.stream_mut(&name) else {
                    return not_found(&name);
                };
                if !(1024..=10_240).contains(&kib) {
                    return err(
                        ErrorCode::Validation,
                        format!("MaxRecordSizeInKiB must be between 1024 and 10240, got {kib}."),
                    );
                }
                s.max_record_size_kib = kib;
                Ok(MetaReply::Done)
            }
            MetaCommand::SetWarmThroughput { name, mibps } => {
                let Some(s) = self.stream_mut(&name) else {
                    return not_found(&name);
                };
                if !s.on_demand {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!(
                            "Warm throughput applies to ON_DEMAND streams; stream {name} is PROVISIONED."
                        ),
                    );
                }
                s.warm_throughput_mibps = Some(mibps);
                Ok(MetaReply::Done)
            }
            MetaCommand::RegisterConsumer {
                stream,
                name,
                now_ms,
            } => {
                let Some(s) = self.stream_mut(&stream) else {
                    return not_found(&stream);
                };
                if s.consumers.iter().any(|c| c.name == name) {
                    return err(
                        ErrorCode::ResourceInUse,
                        format!("Consumer {name} under stream {stream} already exists."),
                    );
                }
                if s.consumers.len() >= MAX_CONSUMERS {
                    return err(
                        ErrorCode::LimitExceeded,
                        format!("Stream {stream} already has {MAX_CONSUMERS} consumers."),
                    );
                }
                let c = ConsumerMeta {
                    arn: format!("{}/consumer/{}:{}", s.arn, name, now_ms / 1000),
                    name,
                    status: ConsumerStatus::Creating,
                    created_ms: now_ms,
                };
                s.consumers.push(c.clone());
                Ok(MetaReply::Consumer(c))
            }
            MetaCommand::ActivateConsumer { arn } => {
                let creating = self
                    .consumer_by_arn(&arn)
                    .is_some_and(|(_, c)| c.status == ConsumerStatus::Creating);
                if creating
                    && let Some(s) = self.stream_of_consumer_mut(&arn)
                    && let Some(c) = s.consumers.iter_mut().find(|c| c.arn == arn)
                {
                    c.status = ConsumerStatus::Active;
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::DeregisterConsumer { arn } => {
                if let Some(s) = self.stream_of_consumer_mut(&arn)
                    && let Some(i) = s.consumers.iter().position(|c| c.arn == arn)
                {
                    let c = s.consumers.remove(i);
                    self.resource_policies.remove(&arn);
                    return Ok(MetaReply::Consumer(ConsumerMeta {
                        status: ConsumerStatus::Deleting,
                        ..c
                    }));
                }
                err(
                    ErrorCode::ResourceNotFound,
                    format!("Consumer {arn} not found."),
                )
            }
            MetaCommand::PutResourcePolicy { arn, policy } => {
                if self.stream_by_arn(&arn).is_none() && self.consumer_by_arn(&arn).is_none() {
                    return err(
                        ErrorCode::ResourceNotFound,
                        format!("Resource {arn} not found."),
                    );
                }
                self.resource_policies.insert(arn, policy);
                Ok(MetaReply::Done)
            }
            MetaCommand::DeleteResourcePolicy { arn } => {
                if self.resource_policies.remove(&arn).is_none() {
                    return err(
                        ErrorCode::ResourceNotFound,
                        format!("No resource policy found for {arn}."),
                    );
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::SetBillingCommitment { status, now_ms } => {
                self.billing_commitment = Some((status, now_ms));
                Ok(MetaReply::Done)
            }
            MetaCommand::Reshard {
                name,
                request,
                now_ms,
            } => self.start_reshard(&name, request, now_ms),
            MetaCommand::CompleteReshard {
                name,
                op_id,
                endings,
                now_ms,
            } => self.complete_reshard(&name, op_id, &endings, now_ms),
            MetaCommand::ExpireShards { name, now_ms } => self.expire_shards(&name, now_ms),
            MetaCommand::DrainNode { id } => {
                if !self.nodes.contains_key(&id) {
                    return err(
                        ErrorCode::ResourceNotFound,
                        format!("No node {id} in the cluster."),
                    );
                }
                let staying = self
                    .nodes
                    .keys()
                    .filter(|n| **n != id && !self.draining.contains(n))
                    .count();
                if staying == 0 {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!("Node {id} is the last node not draining; add a node first."),
                    );
                }
                self.draining.insert(id);
                Ok(MetaReply::Done)
            }
            MetaCommand::RemoveNode { id } => {
                // Not before every group has dropped it from its voters too: the map moves a
                // replica at once, the group only once the new replica caught up. A node removed
                // in between is still counted in the group's majority, and losing one more
                // replica would leave the group without one for good.
                if self.draining.contains(&id) && !self.holds_or_leaves_a_group(id) {
                    self.nodes.remove(&id);
                    self.draining.remove(&id);
                    self.removed.insert(id);
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::AddNode { id, addr } => self.add_node(id, addr),
            MetaCommand::ShardLeader {
                group,
                leader,
                term,
            } => {
                let news = self
                    .shard_by_group(group)
                    .is_some_and(|(s, _)| leader_news(s, group, leader, term));
                if news && let Some(s) = self.stream_of_group_mut(group) {
                    note_leader(s, group, leader, term);
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::ShardReports { leaders, ready } => {
                self.apply_shard_reports(leaders, ready);
                Ok(MetaReply::Done)
            }
            MetaCommand::MoveDone { group, to } => {
                if self.moving.get(&group).is_some_and(|m| m.1 == to) {
                    self.moving.remove(&group);
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::MoveReplica { group, from, to } => {
                if !self.nodes.contains_key(&to) {
                    return err(ErrorCode::InvalidArgument, format!("no node {to}"));
                }
                // One move per group until its voters switch: the source of a move keeps voting
                // (and keeps its replica) until then. Redirecting the move's own target is the
                // exception; the source stays the node still to leave the group's voters.
                let source = match self.moving.get(&group) {
                    None => from,
                    Some((source, target)) if *target == from => *source,
                    Some((source, target)) => {
                        return err(
                            ErrorCode::ResourceInUse,
                            format!("group {group} is still moving from {source} to {target}"),
                        );
                    }
                };
                let movable = self.shard_by_group(group).is_some_and(|(_, sh)| {
                    !sh.replicas.contains(&to) && sh.replicas.contains(&from)
                });
                if movable
                    && let Some(s) = self.stream_of_group_mut(group)
                    && let Some(sh) = s.shards.iter_mut().find(|sh| sh.group_id == group)
                    && let Some(slot) = sh.replicas.iter_mut().find(|r| **r == from)
                {
                    *slot = to;
                    self.moving.insert(group, (source, to));
                }
                Ok(MetaReply::Done)
            }
            MetaCommand::Lease {
                app,
                stream,
                shard,
                owner,
                op,
                now_ms,
            } => self.apply_lease(app, stream, &shard, &owner, &op, now_ms),
        }
    }

    fn apply_lease(
        &mut self,
        app: String,
        stream: String,
        shard: &str,
        owner: &str,
        op: &LeaseOp,
        now_ms: i64,
    ) -> MetaResult {
        if app.is_empty() || app.len() > 256 || owner.is_empty() || owner.len() > 256 {
            return err(
                ErrorCode::InvalidArgument,
                "application and owner names must be 1 to 256 bytes",
            );
        }
        let Some(s) = self.streams.get(&stream) else {
            return not_found(&stream);
        };
        if !s.shards.iter().any(|sh| sh.shard_id.to_string() == shard) {
            return err(
                ErrorCode::ResourceNotFound,
                format!(
                    "Shard {shard} in stream {stream} under account 000000000000 does not exist"
                ),
            );
        }
        self.leases
            .entry((app, stream))
            .or_default()
            .apply(shard, owner, op, now_ms)
            .map(MetaReply::Lease)
            .map_err(|(code, msg)| (code.name().to_string(), msg))
    }

    fn add_node(&mut self, id: u64, addr: String) -> MetaResult {
        if self.cluster_secret.is_empty() {
            return err(
                ErrorCode::Unavailable,
                "the cluster has not formed yet; retry shortly",
            );
        }
        if id == 0 || addr.trim().is_empty() {
            return err(
                ErrorCode::InvalidArgument,
                format!(
                    "a joining node needs an id of 1 or more and an address, got {id} {addr:?}"
                ),
            );
        }
        if self.removed.contains(&id) {
            return err(
                ErrorCode::InvalidArgument,
                format!(
                    "node id {id} belonged to a node removed from the cluster and is never reused; \
                     start the node with a new --node-id and an empty data directory"
                ),
            );
        }
        if let Some(n) = self.nodes.get(&id) {
            if n.addr == addr {
                return Ok(MetaReply::Done);
            }
            return err(
                ErrorCode::ResourceInUse,
                format!(
                    "node {id} is already a member at {}, not {addr}; a node keeps its address, \
                     or joins under a new id",
                    n.addr
                ),
            );
        }
        if let Some(other) = self.nodes.values().find(|n| n.addr == addr) {
            return err(
                ErrorCode::ResourceInUse,
                format!("address {addr} is already node {}'s", other.id),
            );
        }
        self.nodes.insert(id, NodeInfo { id, addr });
        Ok(MetaReply::Done)
    }
}

/// Tags one stream may carry.
pub const MAX_TAGS: usize = 50;
/// Enhanced fan-out consumers one stream may have.
pub const MAX_CONSUMERS: usize = 20;
/// Kinesis's shard-level metric names.
pub const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{create, formed};

    #[test]
    fn create_places_shards_and_turns_active_when_all_ready() {
        let mut s = formed(3);
        create(&mut s, "a", 4).unwrap();
        let st = &s.streams["a"];
        assert_eq!(st.shards.len(), 4);
        assert_eq!(st.status, StreamStatus::Creating);
        let groups: Vec<u64> = st.shards.iter().map(|x| x.group_id).collect();
        assert_eq!(groups, vec![1, 2, 3, 4]);
        assert!(st.shards.iter().all(|x| x.replicas.len() == 3));
        for g in 1..=3 {
            s.apply(MetaCommand::ShardReady { group_id: g }).unwrap();
        }
        assert_eq!(s.streams["a"].status, StreamStatus::Creating);
        s.apply(MetaCommand::ShardReady { group_id: 4 }).unwrap();
        assert_eq!(s.streams["a"].status, StreamStatus::Active);
        // Group ids are never reused, even after a delete.
        s.apply(MetaCommand::DeleteStream { name: "a".into() })
            .unwrap();
        create(&mut s, "b", 1).unwrap();
        assert_eq!(s.streams["b"].shards[0].group_id, 5);
    }

    #[test]
    fn errors_carry_kinesis_names() {
        let mut s = formed(1);
        create(&mut s, "a", 1).unwrap();
        assert_eq!(
            create(&mut s, "a", 1).unwrap_err().0,
            "ResourceInUseException"
        );
        let e = s
            .apply(MetaCommand::DeleteStream { name: "zz".into() })
            .unwrap_err();
        assert_eq!(e.0, "ResourceNotFoundException");
        let e = s.apply(MetaCommand::SetRetention {
            name: "a".into(),
            hours: 23,
            increase: false,
        });
        assert_eq!(e.unwrap_err().0, "InvalidArgumentException");
        let e = s.apply(MetaCommand::SetRetention {
            name: "a".into(),
            hours: 12_000,
            increase: true,
        });
        assert_eq!(e.unwrap_err().0, "InvalidArgumentException");
        s.apply(MetaCommand::SetRetention {
            name: "a".into(),
            hours: 48,
            increase: true,
        })
        .unwrap();
        let e = s.apply(MetaCommand::SetRetention {
            name: "a".into(),
            hours: 72,
            increase: false,
        });
        assert_eq!(e.unwrap_err().0, "InvalidArgumentException");
    }
}
