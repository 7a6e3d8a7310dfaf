//! Resharding: SplitShard, MergeShards and UpdateShardCount as waves of splits and merges.
//!
//! A wave is planned in one metadata entry (children created PENDING, the stream UPDATING),
//! carried out by the controller (children's groups elect leaders, then every parent is sealed
//! through its own log), and committed in one metadata entry (parents closed at their seals'
//! sequence numbers, children opened, the map epoch bumped). UpdateShardCount plans its next wave
//! when the previous one commits, so every step is a deterministic function of the state.
//!
//! Planning is pure; nothing here does I/O.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use streamd_proto::ErrorCode;
use streamd_proto::ids::{HashKey, HashKeyRange, SequenceNumber, ShardId};
use streamd_proto::limits::MAX_SHARDS_PER_STREAM;

use crate::commands::{MetaReply, MetaResult};
use crate::placement::place_replicas;
use crate::state::{MetaState, ReshardOp, ReshardStep, ShardMeta, StreamMeta, StreamStatus};

/// What a caller asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReshardRequest {
    /// Children `[start, at - 1]` and `[at, end]`.
    Split {
        shard: ShardId,
        at: HashKey,
    },
    Merge {
        shard: ShardId,
        adjacent: ShardId,
    },
    /// UNIFORM_SCALING to `target` open shards.
    Scale {
        target: u32,
    },
}

impl ReshardRequest {
    /// The API action that asked for it.
    fn action(&self) -> &'static str {
        match self {
            ReshardRequest::Split { .. } => "SplitShard",
            ReshardRequest::Merge { .. } => "MergeShards",
            ReshardRequest::Scale { .. } => "UpdateShardCount",
        }
    }
}

/// One split or merge, by hash key ranges (shard ids are assigned when the wave is applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    Split {
        parent: HashKeyRange,
        at: HashKey,
    },
    /// `left.end + 1 == right.start`.
    Merge {
        left: HashKeyRange,
        right: HashKeyRange,
    },
}

/// The next wave toward `target` uniform shards from the open ranges `open` (any order). Empty
/// when the open shards already are the uniform ranges.
///
/// First every target boundary that falls strictly inside an open range is cut (one cut per
/// range and wave); once all exist, the open ranges inside each target range are merged in
/// adjacent pairs, wave after wave. Every child has at most two parents, as Kinesis's lineage
/// allows.
pub fn next_scaling_wave(open: &[HashKeyRange], target: u32) -> Vec<Primitive> {
    let mut open = open.to_vec();
    open.sort_by_key(|r| r.start);
    let goal = HashKeyRange::split_even(target);
    let cuts: BTreeSet<u128> = goal.iter().skip(1).map(|r| r.start.0).collect();
    let splits: Vec<Primitive> = open
        .iter()
        .filter_map(|r| {
            let lo = r.start.0.checked_add(1).filter(|lo| *lo <= r.end.0)?;
            cuts.range(lo..=r.end.0).next().map(|at| Primitive::Split {
                parent: *r,
                at: HashKey(*at),
            })
        })
        .collect();
    if !splits.is_empty() {
        return splits;
    }
    let mut merges = Vec::new();
    for g in &goal {
        let inside: Vec<HashKeyRange> = open
            .iter()
            .filter(|r| g.start <= r.start && r.end <= g.end)
            .copied()
            .collect();
        for pair in inside.chunks_exact(2) {
            merges.push(Primitive::Merge {
                left: pair[0],
                right: pair[1],
            });
        }
    }
    merges
}

/// Kinesis's UpdateShardCount bounds: at most double, at least half, within the stream limit.
pub fn check_scaling(current: u32, target: u32) -> Result<(), (ErrorCode, String)> {
    if target == 0 || target > MAX_SHARDS_PER_STREAM {
        return Err((
            ErrorCode::InvalidArgument,
            format!(
                "TargetShardCount must be between 1 and {MAX_SHARDS_PER_STREAM}, got {target}."
            ),
        ));
    }
    if u64::from(target) > 2 * u64::from(current) {
        return Err((
            ErrorCode::LimitExceeded,
            format!(
                "UpdateShardCount cannot scale up over double the current open shard count ({current}) to {target}."
            ),
        ));
    }
    if u64::from(target) * 2 < u64::from(current) {
        return Err((
            ErrorCode::LimitExceeded,
            format!(
                "UpdateShardCount cannot scale down below half the current open shard count ({current}) to {target}."
            ),
        ));
    }
    Ok(())
}

fn err(code: ErrorCode, msg: impl Into<String>) -> MetaResult {
    Err((code.name().to_string(), msg.into()))
}

fn open_ranges(s: &StreamMeta) -> Vec<HashKeyRange> {
    s.shards
        .iter()
        .filter(|x| x.is_open())
        .map(|x| x.range)
        .collect()
}

fn open_shard(s: &StreamMeta, id: ShardId) -> Result<&ShardMeta, (String, String)> {
    match s.shards.iter().find(|x| x.shard_id == id && x.is_listed()) {
        None => Err((
            ErrorCode::ResourceNotFound.name().into(),
            format!(
                "Could not find shard {id} in stream {} under account 000000000000.",
                s.name
            ),
        )),
        Some(sh) if !sh.is_open() => Err((
            ErrorCode::ResourceInUse.name().into(),
            format!("Shard {id} in stream {} is closed.", s.name),
        )),
        Some(sh) => Ok(sh),
    }
}

impl MetaState {
    /// Plans the first wave of a reshard and turns the stream UPDATING.
    pub(crate) fn start_reshard(
        &mut self,
        name: &str,
        request: ReshardRequest,
        now_ms: i64,
    ) -> MetaResult {
        let Some(s) = self.streams.get(name) else {
            return err(
                ErrorCode::ResourceNotFound,
                format!("Stream {name} under account 000000000000 not found."),
            );
        };
        if s.status != StreamStatus::Active {
            return err(
                ErrorCode::ResourceInUse,
                format!(
                    "Stream {name} under account 000000000000 not ACTIVE, instead in state {}.",
                    s.status.name()
                ),
            );
        }
        if s.on_demand {
            return err(
                ErrorCode::Validation,
                format!(
                    "{} is not supported for streams in ON_DEMAND mode.",
                    request.action()
                ),
            );
        }
        let (wave, target) = match request {
            ReshardRequest::Split { shard, at } => {
                let sh = open_shard(s, shard)?;
                if at <= sh.range.start || at > sh.range.end {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!(
                            "NewStartingHashKey {at} must be greater than the starting hash key {} and at most the ending hash key {} of shard {shard}.",
                            sh.range.start, sh.range.end
                        ),
                    );
                }
                (
                    vec![Primitive::Split {
                        parent: sh.range,
                        at,
                    }],
                    None,
                )
            }
            ReshardRequest::Merge { shard, adjacent } => {
                let a = open_shard(s, shard)?;
                let b = open_shard(s, adjacent)?;
                let (left, right) = if a.range.start < b.range.start {
                    (a.range, b.range)
                } else {
                    (b.range, a.range)
                };
                if left.end.0.checked_add(1) != Some(right.start.0) {
                    return err(
                        ErrorCode::InvalidArgument,
                        format!("Shards {shard} and {adjacent} are not adjacent."),
                    );
                }
                (vec![Primitive::Merge { left, right }], None)
            }
            ReshardRequest::Scale { target } => {
                let open = open_ranges(s);
                if let Err((code, msg)) = check_scaling(open.len() as u32, target) {
                    return err(code, msg);
                }
                (next_scaling_wave(&open, target), Some(target))
            }
        };
        if wave.is_empty() {
            return Ok(MetaReply::Done);
        }
        let named_first = match request {
            ReshardRequest::Merge { shard, .. } => Some(shard),
            _ => None,
        };
        self.plan_wave(name, wave, target, named_first, now_ms);
        Ok(MetaReply::Done)
    }

    /// Creates the wave's children (PENDING) and records the op; the stream turns UPDATING.
    fn plan_wave(
        &mut self,
        name: &str,
        wave: Vec<Primitive>,
        target: Option<u32>,
        merge_parent: Option<ShardId>,
        now_ms: i64,
    ) {
        let nodes = self.placement_nodes();
        let rf = self.replication_factor;
        let op_id = self.next_op_id.max(1);
        self.next_op_id = op_id + 1;
        let mut next_group = self.next_group_id.max(1);
        let Some(s) = self.stream_mut(name) else {
            return;
        };
        let by_range = |s: &StreamMeta, r: HashKeyRange| {
            s.shards
                .iter()
                .find(|x| x.is_open() && x.range == r)
                .map(|x| x.shard_id)
        };
        let mut steps = Vec::new();
        let mut children = Vec::new();
        for p in wave {
            let (parents, ranges, parent, adjacent) = match p {
                Primitive::Split { parent, at } => {
                    let Some(id) = by_range(s, parent) else {
                        continue;
                    };
                    let first = HashKeyRange {
                        start: parent.start,
                        end: HashKey(at.0 - 1),
                    };
                    let second = HashKeyRange {
                        start: at,
                        end: parent.end,
                    };
                    (vec![id], vec![first, second], id, None)
                }
                Primitive::Merge { left, right } => {
                    let (Some(l), Some(r)) = (by_range(s, left), by_range(s, right)) else {
                        continue;
                    };
                    let (parent, adjacent) = match merge_parent {
                        Some(m) if m == r => (r, l),
                        _ => (l, r),
                    };
                    let range = HashKeyRange {
                        start: left.start,
                        end: right.end,
                    };
                    (vec![l, r], vec![range], parent, Some(adjacent))
                }
            };
            let mut step_children = Vec::new();
            for range in ranges {
                let shard_id = ShardId(s.next_shard_id);
                s.next_shard_id += 1;
                let group_id = next_group;
                next_group += 1;
                children.push(ShardMeta {
                    shard_id,
                    group_id,
                    range,
                    parent: Some(parent),
                    adjacent_parent: adjacent,
                    replicas: place_replicas(&nodes, rf, group_id),
                    starting_seq: SequenceNumber::first_of_group(group_id).0,
                    ending_seq: None,
                    ready: false,
                    pending: true,
                    created_ms: now_ms,
                    closed_ms: None,
                    leader: None,
                    leader_term: 0,
                });
                step_children.push(shard_id);
            }
            steps.push(ReshardStep {
                parents,
                children: step_children,
            });
        }
        s.shards.extend(children);
        s.status = StreamStatus::Updating;
        s.reshard = Some(ReshardOp {
            id: op_id,
            target,
            steps,
        });
        self.next_group_id = next_group;
    }

    /// Commits the wave `op_id`: its parents close at `endings` (the sequence numbers of their
    /// Seal entries), its children open, the map epoch grows. A repeated commit is a no-op.
    pub(crate) fn complete_reshard(
        &mut self,
        name: &str,
        op_id: u64,
        endings: &[(ShardId, u128)],
        now_ms: i64,
    ) -> MetaResult {
        let Some(s) = self.stream_mut(name) else {
            return Ok(MetaReply::Done);
        };
        let Some(op) = s.reshard.clone().filter(|o| o.id == op_id) else {
            return Ok(MetaReply::Done);
        };
        let parents: Vec<ShardId> = op.parents().collect();
        for p in &parents {
            if !endings.iter().any(|(id, _)| id == p) {
                return err(
                    ErrorCode::InternalFailure,
                    format!("reshard {op_id} commit lacks the ending of parent {p}"),
                );
            }
        }
        for (id, ending) in endings {
            if let Some(sh) = s.shards.iter_mut().find(|x| x.shard_id == *id) {
                sh.ending_seq = Some(*ending);
                sh.closed_ms = Some(now_ms);
            }
        }
        let children: BTreeSet<ShardId> = op.children().collect();
        for sh in s
            .shards
            .iter_mut()
            .filter(|x| children.contains(&x.shard_id))
        {
            sh.pending = false;
        }
        s.map_epoch += 1;
        s.reshard = None;
        s.status = StreamStatus::Active;
        if let Some(target) = op.target {
            let wave = next_scaling_wave(&open_ranges(s), target);
            if !wave.is_empty() {
                self.plan_wave(name, wave, Some(target), None, now_ms);
            }
        }
        Ok(MetaReply::Done)
    }

    /// Forgets closed shards whose retention has run out since they closed (their records are
    /// all past retention), unless a reshard in progress still names them.
    pub(crate) fn expire_shards(&mut self, name: &str, now_ms: i64) -> MetaResult {
        let Some(s) = self.stream_mut(name) else {
            return Ok(MetaReply::Done);
        };
        let keep: BTreeSet<ShardId> = s
            .reshard
            .as_ref()
            .map(|o| o.parents().chain(o.children()).collect())
            .unwrap_or_default();
        let retention_ms = i64::from(s.retention_hours) * 3_600_000;
        s.shards.retain(|sh| {
            keep.contains(&sh.shard_id)
                || sh
                    .closed_ms
                    .is_none_or(|closed| closed.saturating_add(retention_ms) > now_ms)
        });
        Ok(MetaReply::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::MetaCommand;
    use crate::testing::{create, formed};

    fn apply_wave(open: &mut Vec<HashKeyRange>, wave: &[Primitive]) {
        for p in wave {
            match *p {
                Primitive::Split { parent, at } => {
                    open.retain(|r| *r != parent);
                    open.push(HashKeyRange {
                        start: parent.start,
                        end: HashKey(at.0 - 1),
                    });
                    open.push(HashKeyRange {
                        start: at,
                        end: parent.end,
                    });
                }
                Primitive::Merge { left, right } => {
                    assert_eq!(
                        left.end.0 + 1,
                        right.start.0,
                        "merge of non-adjacent ranges"
                    );
                    open.retain(|r| *r != left && *r != right);
                    open.push(HashKeyRange {
                        start: left.start,
                        end: right.end,
                    });
                }
            }
        }
        open.sort_by_key(|r| r.start);
    }

    fn scale(from: u32, to: u32) -> usize {
        let mut open = HashKeyRange::split_even(from);
        let mut waves = 0;
        loop {
            let wave = next_scaling_wave(&open, to);
            if wave.is_empty() {
                break;
            }
            // Parents of one wave are distinct.
            let mut parents = BTreeSet::new();
            for p in &wave {
                match p {
                    Primitive::Split { parent, .. } => assert!(parents.insert(parent.start)),
                    Primitive::Merge { left, right } => {
                        assert!(parents.insert(left.start));
                        assert!(parents.insert(right.start));
                    }
                }
            }
            apply_wave(&mut open, &wave);
            waves += 1;
            assert!(waves < 20, "{from} -> {to} does not converge");
        }
        assert_eq!(open, HashKeyRange::split_even(to), "{from} -> {to}");
        waves
    }

    #[test]
    fn uniform_scaling_reaches_the_even_ranges() {
        assert_eq!(scale(4, 8), 1);
        assert_eq!(scale(8, 4), 1);
        assert_eq!(scale(4, 3), 2);
        assert_eq!(scale(4, 4), 0);
        for from in 1..=12u32 {
            for to in from.div_ceil(2)..=(2 * from) {
                scale(from, to);
            }
        }
    }

    #[test]
    fn scaling_bounds_follow_kinesis() {
        assert!(check_scaling(4, 8).is_ok());
        assert!(check_scaling(4, 2).is_ok());
        assert_eq!(check_scaling(4, 9).unwrap_err().0, ErrorCode::LimitExceeded);
        assert_eq!(check_scaling(4, 1).unwrap_err().0, ErrorCode::LimitExceeded);
        assert_eq!(
            check_scaling(4, 0).unwrap_err().0,
            ErrorCode::InvalidArgument
        );
    }

    fn state(shards: u32) -> MetaState {
        let mut s = formed(3);
        create(&mut s, "s", shards).unwrap();
        let groups: Vec<u64> = s.streams["s"].shards.iter().map(|x| x.group_id).collect();
        for g in groups {
            s.apply(MetaCommand::ShardReady { group_id: g }).unwrap();
        }
        s
    }

    fn reshard(s: &mut MetaState, request: ReshardRequest) -> MetaResult {
        s.apply(MetaCommand::Reshard {
            name: "s".into(),
            request,
            now_ms: 10,
        })
    }

    fn commit(s: &mut MetaState) {
        let op = s.streams["s"].reshard.clone().unwrap();
        let endings: Vec<(ShardId, u128)> = op.parents().map(|p| (p, 77)).collect();
        s.apply(MetaCommand::CompleteReshard {
            name: "s".into(),
            op_id: op.id,
            endings,
            now_ms: 20,
        })
        .unwrap();
    }

    #[test]
    fn a_split_creates_pending_children_then_commits_with_a_new_epoch() {
        let mut s = state(1);
        let at = HashKey(1 << 100);
        reshard(
            &mut s,
            ReshardRequest::Split {
                shard: ShardId(0),
                at,
            },
        )
        .unwrap();
        let st = &s.streams["s"];
        assert_eq!(st.status, StreamStatus::Updating);
        let kids: Vec<&ShardMeta> = st.shards.iter().filter(|x| x.pending).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].shard_id, ShardId(1));
        assert_eq!(kids[0].range.end, HashKey(at.0 - 1));
        assert_eq!(kids[1].range.start, at);
        assert!(kids.iter().all(|k| k.parent == Some(ShardId(0))));
        assert!(kids[0].starting_seq > st.shards[0].starting_seq);
        // The key space still routes to the parent until the commit.
        assert_eq!(st.shard_for(HashKey(0)).unwrap().shard_id, ShardId(0));
        // A second reshard while UPDATING is refused.
        let again = reshard(&mut s, ReshardRequest::Scale { target: 2 }).unwrap_err();
        assert_eq!(again.0, ErrorCode::ResourceInUse.name());
        commit(&mut s);
        let st = &s.streams["s"];
        assert_eq!(st.status, StreamStatus::Active);
        assert_eq!(st.map_epoch, 2);
        assert_eq!(st.shards[0].ending_seq, Some(77));
        assert_eq!(st.shard_for(HashKey(0)).unwrap().shard_id, ShardId(1));
        assert_eq!(st.shard_for(at).unwrap().shard_id, ShardId(2));
        // A repeated commit changes nothing.
        let before = s.clone();
        s.apply(MetaCommand::CompleteReshard {
            name: "s".into(),
            op_id: 1,
            endings: vec![(ShardId(0), 99)],
            now_ms: 30,
        })
        .unwrap();
        assert_eq!(s, before);
    }

    #[test]
    fn merges_need_adjacent_open_shards_and_name_both_parents() {
        let mut s = state(3);
        let e = reshard(
            &mut s,
            ReshardRequest::Merge {
                shard: ShardId(0),
                adjacent: ShardId(2),
            },
        )
        .unwrap_err();
        assert_eq!(e.0, ErrorCode::InvalidArgument.name());
        reshard(
            &mut s,
            ReshardRequest::Merge {
                shard: ShardId(2),
                adjacent: ShardId(1),
            },
        )
        .unwrap();
        commit(&mut s);
        let child = s.streams["s"].shards.last().unwrap().clone();
        assert_eq!(child.shard_id, ShardId(3));
        assert_eq!(child.parent, Some(ShardId(2)));
        assert_eq!(child.adjacent_parent, Some(ShardId(1)));
        let e = reshard(
            &mut s,
            ReshardRequest::Split {
                shard: ShardId(1),
                at: HashKey(u128::MAX / 2),
            },
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            ErrorCode::ResourceInUse.name(),
            "closed shards cannot be split"
        );
    }

    #[test]
    fn update_shard_count_plans_wave_after_wave_until_the_target() {
        let mut s = state(4);
        reshard(&mut s, ReshardRequest::Scale { target: 3 }).unwrap();
        let mut waves = 0;
        while s.streams["s"].reshard.is_some() {
            commit(&mut s);
            waves += 1;
        }
        assert_eq!(waves, 2);
        let st = &s.streams["s"];
        let open: Vec<HashKeyRange> = st
            .shards
            .iter()
            .filter(|x| x.is_open())
            .map(|x| x.range)
            .collect();
        assert_eq!(open, HashKeyRange::split_even(3));
        assert_eq!(st.status, StreamStatus::Active);
        assert_eq!(st.map_epoch, 3);
        let ids: BTreeSet<ShardId> = st.shards.iter().map(|x| x.shard_id).collect();
        assert_eq!(ids.len(), st.shards.len(), "shard ids are never reused");
    }

    #[test]
    fn on_demand_streams_refuse_manual_resharding() {
        let mut s = state(2);
        s.stream_mut("s").unwrap().on_demand = true;
        let e = reshard(&mut s, ReshardRequest::Scale { target: 4 }).unwrap_err();
        assert_eq!(e.0, ErrorCode::Validation.name());
    }

    #[test]
    fn closed_shards_expire_after_retention_since_closing() {
        let mut s = state(1);
        reshard(
            &mut s,
            ReshardRequest::Split {
                shard: ShardId(0),
                at: HashKey(5),
            },
        )
        .unwrap();
        s.apply(MetaCommand::ExpireShards {
            name: "s".into(),
            now_ms: i64::MAX,
        })
        .unwrap();
        assert_eq!(
            s.streams["s"].shards.len(),
            3,
            "an open op keeps its shards"
        );
        commit(&mut s);
        let day = 24 * 3_600_000;
        s.apply(MetaCommand::ExpireShards {
            name: "s".into(),
            now_ms: 20 + day - 1,
        })
        .unwrap();
        assert_eq!(s.streams["s"].shards.len(), 3);
        s.apply(MetaCommand::ExpireShards {
            name: "s".into(),
            now_ms: 20 + day,
        })
        .unwrap();
        assert_eq!(s.streams["s"].shards.len(), 2);
    }
}
