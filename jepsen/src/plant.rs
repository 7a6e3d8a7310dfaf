//! Bugs planted in a recorded history, as a server with that bug would have produced it, to show
//! that the checker catches each: `streamd-jepsen check DIR/history.jsonl --plant lose-ack`.
//! A checker that never fails proves nothing.

use clap::ValueEnum;

use crate::checkers::Seq;
use crate::history::{F, Op, OpType, Outcome, Rec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Plant {
    /// An acknowledged record disappears from every read and drain (acknowledged before commit,
    /// then lost): property 1.
    LoseAck,
    /// An acknowledged record is stored twice: property 5.
    Duplicate,
    /// Two acknowledged records of one shard swap sequence numbers although the first was acked
    /// before the second was sent: property 7.
    Reorder,
    /// A record nobody sent shows up in the drains: property 2.
    Phantom,
    /// A record the writer was told was throttled is in the drains: property 3.
    AbortedRead,
    /// A closed parent took a write after it was sealed: its highest acknowledged record moves
    /// to the parent's EndingSequenceNumber, in the acknowledgement and every view: property 10.
    WriteAfterSeal,
    /// A record past retention comes back after a restart: the first acknowledged set-A record
    /// of the retention phase is put back, at its sequence number, into every read of its shard
    /// taken after the restart (needs a history with the retention phase): property 14.
    Resurrect,
    /// An unexpired record is trimmed: the first acknowledged set-B record of the retention
    /// phase disappears from every read of its shard (needs the retention phase): property 14.
    TrimUnexpired,
}

/// The bug's command-line name.
pub fn name(bug: Plant) -> String {
    bug.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| format!("{bug:?}"))
}

/// The first acknowledged record: (op line, result position, value, shard, seq).
fn first_ack(ops: &[Op]) -> Option<(usize, usize, String, String, String)> {
    ops.iter().enumerate().find_map(|(i, op)| {
        (op.f == F::Append).then_some(())?;
        op.results.iter().enumerate().find_map(|(k, r)| {
            (r.outcome == Outcome::Ok).then_some(())?;
            Some((i, k, r.value.clone(), r.shard.clone()?, r.seq.clone()?))
        })
    })
}

fn views_of<'a>(ops: &'a mut [Op], shard: &'a str) -> impl Iterator<Item = &'a mut Op> + 'a {
    ops.iter_mut().filter(move |op| {
        matches!(op.f, F::Drain | F::Read)
            && op.ty == OpType::Ok
            && op.shard.as_deref() == Some(shard)
    })
}

/// The first acknowledged record of retention set `set`: (value, shard, seq).
fn first_retention_ack(ops: &[Op], set: &str) -> Option<(String, String, String)> {
    let process = format!("retention-{set}");
    ops.iter()
        .filter(|op| op.f == F::RetentionAppend && op.ty != OpType::Invoke)
        .filter(|op| op.process == process)
        .flat_map(|op| op.results.iter())
        .find_map(|r| {
            (r.outcome == Outcome::Ok).then_some(())?;
            Some((r.value.clone(), r.shard.clone()?, r.seq.clone()?))
        })
}

fn plant_retention(ops: &mut [Op], bug: Plant) -> Result<String, String> {
    let set = if bug == Plant::Resurrect { "A" } else { "B" };
    let (value, shard, seq) = first_retention_ack(ops, set).ok_or(format!(
        "the history has no acknowledged set-{set} record (run with --retention)"
    ))?;
    let at = Seq::parse(&seq).ok_or("a sequence number that is not a decimal")?;
    let mut planted = 0;
    for op in ops.iter_mut().filter(|op| {
        op.f == F::RetentionRead && op.ty == OpType::Ok && op.shard.as_deref() == Some(&shard)
    }) {
        if bug == Plant::Resurrect {
            if !op.process.starts_with("retention-final") {
                continue;
            }
            let pos = op
                .records
                .iter()
                .position(|r| Seq::parse(&r.0).is_some_and(|q| q > at))
                .unwrap_or(op.records.len());
            op.records.insert(pos, Rec(seq.clone(), value.clone()));
            planted += 1;
        } else {
            let before = op.records.len();
            op.records.retain(|r| r.1 != value);
            planted += usize::from(op.records.len() < before);
        }
    }
    if planted == 0 {
        return Err(format!("no retention-phase read of {shard} to plant into"));
    }
    Ok(if bug == Plant::Resurrect {
        format!(
            "put {value} ({shard}/{seq}, past retention) back into {planted} read(s) after the restart"
        )
    } else {
        format!("removed {value} ({shard}/{seq}, unexpired) from {planted} retention-phase read(s)")
    })
}

/// Plants `bug` in `ops`; returns what was done, or why it could not be.
pub fn plant(ops: &mut [Op], bug: Plant) -> Result<String, String> {
    if matches!(bug, Plant::Resurrect | Plant::TrimUnexpired) {
        return plant_retention(ops, bug);
    }
    let (line, pos, value, shard, seq) =
        first_ack(ops).ok_or("the history has no acknowledged record")?;
    match bug {
        Plant::LoseAck => {
            for op in views_of(ops, &shard) {
                op.records.retain(|r| r.0 != seq);
            }
            Ok(format!(
                "removed {value} ({shard}/{seq}) from every read and drain"
            ))
        }
        Plant::Duplicate | Plant::Phantom => {
            let copy = if bug == Plant::Duplicate {
                value.clone()
            } else {
                "phantom-000000".to_string()
            };
            let mut planted = 0;
            for op in views_of(ops, &shard).filter(|op| op.f == F::Drain) {
                let top = op
                    .records
                    .iter()
                    .filter_map(|r| Seq::parse(&r.0))
                    .max()
                    .unwrap_or_else(|| Seq::from(0));
                op.records.push(Rec(top.next().to_string(), copy.clone()));
                planted += 1;
            }
            if planted == 0 {
                return Err(format!("no drain of {shard} to plant into"));
            }
            Ok(format!(
                "appended {copy} to the end of {planted} drain(s) of {shard}"
            ))
        }
        Plant::AbortedRead => {
            let r = &mut ops[line].results[pos];
            r.outcome = Outcome::Fail;
            r.error = Some("ProvisionedThroughputExceededException".into());
            r.seq = None;
            r.shard = None;
            Ok(format!(
                "told the writer of {value} it was throttled, though it is stored at {shard}/{seq}"
            ))
        }
        Plant::Reorder => plant_reorder(ops, &shard),
        Plant::WriteAfterSeal => plant_write_after_seal(ops),
        Plant::Resurrect | Plant::TrimUnexpired => plant_retention(ops, bug),
    }
}

/// Moves the highest acknowledged record of the first closed shard that has one to that shard's
/// ending sequence number.
fn plant_write_after_seal(ops: &mut [Op]) -> Result<String, String> {
    let closed: Vec<(String, String)> = ops
        .iter()
        .filter_map(|o| o.shard_map.as_ref())
        .flat_map(|m| m.shards.iter())
        .filter_map(|s| Some((s.id.clone(), s.end_seq.clone()?)))
        .collect();
    for (shard, end) in closed {
        let mut top: Option<(Seq, usize, usize)> = None;
        for (i, op) in ops.iter().enumerate() {
            if op.f != F::Append || op.ty == OpType::Invoke {
                continue;
            }
            for (k, r) in op.results.iter().enumerate() {
                if let (Outcome::Ok, Some(s), Some(q)) = (r.outcome, &r.shard, &r.seq)
                    && *s == shard
                    && let Some(q) = Seq::parse(q)
                    && top.as_ref().is_none_or(|(t, _, _)| q > *t)
                {
                    top = Some((q, i, k));
                }
            }
        }
        let Some((seq, i, k)) = top else { continue };
        ops[i].results[k].seq = Some(end.clone());
        let value = ops[i].results[k].value.clone();
        for op in views_of(ops, &shard) {
            for r in &mut op.records {
                if Seq::parse(&r.0).as_ref() == Some(&seq) {
                    r.0 = end.clone();
                }
            }
        }
        return Ok(format!(
            "moved {value} in closed {shard} from {seq} to its ending sequence number {end}"
        ));
    }
    Err(
        "the history has no closed shard with an acknowledged record (no shard map, or no reshard)"
            .into(),
    )
}

/// Swaps the positions of two records of `shard` where the first was acknowledged before the
/// second was invoked, in the acknowledgements and in every view alike.
fn plant_reorder(ops: &mut [Op], shard: &str) -> Result<String, String> {
    let mut acks: Vec<(u64, u64, usize, usize, String, String)> = Vec::new();
    let invoked: std::collections::HashMap<u64, u64> = ops
        .iter()
        .filter(|o| o.f == F::Append && o.ty == OpType::Invoke)
        .map(|o| (o.op, o.time))
        .collect();
    for (i, op) in ops.iter().enumerate() {
        if op.f != F::Append || op.ty == OpType::Invoke {
            continue;
        }
        for (k, r) in op.results.iter().enumerate() {
            if let (Outcome::Ok, Some(s), Some(q)) = (r.outcome, &r.shard, &r.seq)
                && s == shard
            {
                let start = invoked.get(&op.op).copied().unwrap_or(op.time);
                acks.push((start, op.time, i, k, r.value.clone(), q.clone()));
            }
        }
    }
    let (a, b) = acks
        .iter()
        .flat_map(|a| acks.iter().map(move |b| (a, b)))
        .find(|(a, b)| a.1 < b.0)
        .ok_or("no two sequential acknowledgements on one shard")?;
    let (a, b) = (a.clone(), b.clone());
    ops[a.2].results[a.3].seq = Some(b.5.clone());
    ops[b.2].results[b.3].seq = Some(a.5.clone());
    for op in views_of(ops, shard) {
        for r in &mut op.records {
            if r.0 == a.5 {
                r.1 = b.4.clone();
            } else if r.0 == b.5 {
                r.1 = a.4.clone();
            }
        }
    }
    Ok(format!(
        "{} (acknowledged first) and {} (sent later) swapped positions {} and {} in {shard}",
        a.4, b.4, a.5, b.5
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::fixture::H;
    use crate::checkers::{CheckConfig, Facts, Verdict, run_all};

    fn history() -> Vec<Op> {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        h.append_ok("w1", 10, 15, &[("b", "s0", 2)]);
        h.chain("r0", "c0", "s0", 0, "TRIM_HORIZON", None);
        h.read("r0", "c0", "s0", 20, &[(1, "a"), (2, "b")]);
        h.drain(1, "s0", 30, &[(1, "a"), (2, "b")]);
        h.drain(2, "s0", 30, &[(1, "a"), (2, "b")]);
        h.ops
    }

    fn invalid(ops: &[Op]) -> Vec<u8> {
        run_all(&Facts::from_history(ops), &CheckConfig::default())
            .into_iter()
            .filter(|p| p.verdict == Verdict::Invalid)
            .map(|p| p.id)
            .collect()
    }

    #[test]
    fn the_clean_history_is_valid() {
        assert!(invalid(&history()).is_empty());
    }

    #[test]
    fn each_planted_bug_is_caught_by_its_property() {
        for (bug, property) in [
            (Plant::LoseAck, 1),
            (Plant::Phantom, 2),
            (Plant::AbortedRead, 3),
            (Plant::Duplicate, 5),
            (Plant::Reorder, 7),
        ] {
            let mut ops = history();
            plant(&mut ops, bug).unwrap();
            let bad = invalid(&ops);
            assert!(bad.contains(&property), "{bug:?}: invalid {bad:?}");
        }
    }

    #[test]
    fn retention_bugs_are_caught_by_property_14() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        h.drain(1, "s0", 10, &[(1, "a")]);
        h.retention_start(20);
        h.retention_append("A", 30, 40, &[("rA-0", "s0", 10)]);
        h.retention_jump(&[1], 12 * 3600, 50, 60);
        h.retention_append("B", 70, 80, &[("rB-0", "s0", 20)]);
        h.retention_jump(&[1], 25 * 3600, 90, 100);
        h.retention_read(1, "s0", 30_000, false, Ok(&[(20, "rB-0")]));
        h.retention_restart(1, 31_000, 33_000, true);
        h.retention_read(1, "s0", 90_000, true, Ok(&[(20, "rB-0")]));
        let clean = h.ops;
        assert!(invalid(&clean).is_empty());
        for bug in [Plant::Resurrect, Plant::TrimUnexpired] {
            let mut ops = clean.clone();
            plant(&mut ops, bug).unwrap();
            assert_eq!(invalid(&ops), vec![14], "{bug:?}");
        }
        let mut ops = clean.clone();
        plant(&mut ops, Plant::Resurrect).unwrap();
        assert_eq!(
            ops.last().unwrap().records,
            vec![
                Rec("10".into(), "rA-0".into()),
                Rec("20".into(), "rB-0".into())
            ]
        );
        assert!(plant(&mut history(), Plant::Resurrect).is_err());
    }

    #[test]
    fn a_write_after_seal_is_caught_by_property_10() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 10)]);
        h.append_ok("w1", 10, 15, &[("b", "s1", 210)]);
        h.drain(1, "s0", 30, &[(10, "a")]);
        h.drain(1, "s1", 30, &[(210, "b")]);
        h.shard_map(
            "ACTIVE",
            &[
                ("s0", None, None, 0, u128::MAX, 1, Some(100)),
                ("s1", Some("s0"), None, 0, u128::MAX, 200, None),
            ],
        );
        let mut ops = h.ops;
        assert!(invalid(&ops).is_empty());
        plant(&mut ops, Plant::WriteAfterSeal).unwrap();
        assert_eq!(invalid(&ops), vec![10]);
        let mut none = history();
        assert!(plant(&mut none, Plant::WriteAfterSeal).is_err());
    }
}
