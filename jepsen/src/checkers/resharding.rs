//! Property 10, resharding safety, judged against the shard map the harness listed after healing
//! (one `shard-map` line: every shard, open and closed, with its parents, hash key range and
//! sequence number range):
//!
//! - nothing is in a closed shard at or after its EndingSequenceNumber (no acknowledgement, read
//!   or drain there): a parent takes no write once sealed;
//! - a child's records and starting number are above every parent's ending number, so a key's
//!   records across its lineage are ordered by sequence number (what property 7 relies on);
//! - the lineage holds together: every parent named is in the map and closed, a child's range
//!   lies within its parents' (two parents: adjacent, and the child is exactly their union), and
//!   the open shards tile the whole hash key space 0..2^128-1 without gap or overlap;
//! - one partition key's records are all in one line of descent (a key is never routed to two
//!   shards that are not ancestor and descendant);
//! - every shard in the map was drained, so property 1 sees acknowledged records across the
//!   lineage (a record acknowledged in a parent that no drain read would otherwise go unjudged);
//! - the stream is ACTIVE again after healing: a reshard that never finishes is reported.
//!
//! Without a shard map (histories from before resharding) the property is not checked.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{Anomalies, CheckConfig, Facts, PropertyResult, Seq};
use crate::history::{MapShard, Outcome};

pub(crate) const ID: u8 = 10;
pub(crate) const NAME: &str = "resharding-safety";

/// A shard of the map with its numbers parsed.
struct Node<'a> {
    shard: &'a MapShard,
    start_hash: Option<u128>,
    end_hash: Option<u128>,
    start_seq: Option<Seq>,
    end_seq: Option<Seq>,
}

impl Node<'_> {
    fn parents(&self) -> impl Iterator<Item = &String> {
        self.shard
            .parent
            .iter()
            .chain(self.shard.adjacent_parent.iter())
    }
}

pub(crate) fn check(facts: &Facts, _config: &CheckConfig) -> PropertyResult {
    let Some(map) = &facts.shard_map else {
        return PropertyResult::not_checked(
            ID,
            NAME,
            "the history has no shard map (it predates resharding, or the shards could not be listed after healing)",
        );
    };
    let map_line: Vec<u64> = facts.shard_map_index.into_iter().collect();
    let mut anomalies = Anomalies::new(ID, NAME);
    let mut nodes: BTreeMap<&str, Node> = BTreeMap::new();
    for s in &map.shards {
        let node = Node {
            shard: s,
            start_hash: s.start_hash.parse().ok(),
            end_hash: s.end_hash.parse().ok(),
            start_seq: Seq::parse(&s.start_seq),
            end_seq: s.end_seq.as_deref().and_then(Seq::parse),
        };
        let bad_numbers = node.start_hash.is_none()
            || node.end_hash.is_none()
            || node.start_seq.is_none()
            || (s.end_seq.is_some() && node.end_seq.is_none());
        if bad_numbers {
            anomalies.push(
                "malformed-shard-map",
                format!("{}: a hash key or sequence number is not a decimal", s.id),
                map_line.clone(),
                json!({"shard": s}),
            );
        }
        nodes.insert(s.id.as_str(), node);
    }

    if map.status != "ACTIVE" {
        anomalies.push(
            "stream-not-active",
            format!(
                "the stream was {} after healing: a reshard did not finish",
                map.status
            ),
            map_line.clone(),
            json!({"status": map.status}),
        );
    }

    // Lineage: parents exist and are closed, children start above them, ranges nest.
    let mut splits = 0usize;
    let mut merges = 0usize;
    for node in nodes.values() {
        let parents: Vec<&String> = node.parents().collect();
        match parents.len() {
            0 => {}
            1 => splits += 1,
            _ => merges += 1,
        }
        let mut parent_ranges = Vec::new();
        for p in &parents {
            let Some(parent) = nodes.get(p.as_str()) else {
                anomalies.push(
                    "unknown-parent",
                    format!(
                        "{} names parent {p}, which is not in the map",
                        node.shard.id
                    ),
                    map_line.clone(),
                    json!({"shard": node.shard.id, "parent": p}),
                );
                continue;
            };
            match (&parent.end_seq, &node.start_seq) {
                (None, _) => anomalies.push(
                    "open-parent",
                    format!("{} has a child ({}) but is not closed", p, node.shard.id),
                    map_line.clone(),
                    json!({"shard": node.shard.id, "parent": p}),
                ),
                (Some(end), Some(start)) if start <= end => anomalies.push(
                    "child-starts-below-parent-end",
                    format!(
                        "{} starts at {start}, not above its parent {p}'s ending {end}",
                        node.shard.id
                    ),
                    map_line.clone(),
                    json!({"shard": node.shard.id, "parent": p, "start": start.to_string(), "parent_end": end.to_string()}),
                ),
                _ => {}
            }
            if let (Some(a), Some(b)) = (parent.start_hash, parent.end_hash) {
                parent_ranges.push((a, b));
            }
        }
        if let (Some(a), Some(b)) = (node.start_hash, node.end_hash)
            && parent_ranges.len() == parents.len()
            && !parent_ranges.is_empty()
        {
            parent_ranges.sort_unstable();
            let adjacent = parent_ranges
                .windows(2)
                .all(|w| w[0].1.checked_add(1) == Some(w[1].0));
            let lo = parent_ranges[0].0;
            let hi = parent_ranges[parent_ranges.len() - 1].1;
            let fits = if parents.len() > 1 {
                adjacent && a == lo && b == hi
            } else {
                lo <= a && b <= hi
            };
            if !fits {
                anomalies.push(
                    "child-range-outside-parents",
                    format!(
                        "{} covers {a}..={b}, which its parents {parents:?} do not make up",
                        node.shard.id
                    ),
                    map_line.clone(),
                    json!({"shard": node.shard.id, "parents": parents}),
                );
            }
        }
    }

    // The open shards tile the hash key space.
    let mut open: Vec<(u128, u128, &str)> = nodes
        .values()
        .filter(|n| n.end_seq.is_none() && n.shard.end_seq.is_none())
        .filter_map(|n| Some((n.start_hash?, n.end_hash?, n.shard.id.as_str())))
        .collect();
    open.sort_unstable();
    let mut next: Option<u128> = Some(0);
    for (a, b, id) in &open {
        if next != Some(*a) {
            anomalies.push(
                "open-shards-do-not-tile",
                format!(
                    "open shard {id} starts at {a}, expected {}",
                    next.map_or("nothing (the space was already covered)".into(), |n| n
                        .to_string())
                ),
                map_line.clone(),
                json!({"shard": id}),
            );
        }
        next = b.checked_add(1);
    }
    if !open.is_empty() && next.is_some() {
        anomalies.push(
            "open-shards-do-not-tile",
            format!(
                "the open shards end at {}, below 2^128-1",
                next.map_or(0, |n| n - 1)
            ),
            map_line.clone(),
            json!({}),
        );
    }

    // Nothing at or after a closed shard's end; children's records above their parents' ends.
    let mut records_checked = 0usize;
    let mut judge = |shard: &str, seq: &Seq, value: &str, ops: Vec<u64>, what: &str| {
        records_checked += 1;
        let Some(node) = nodes.get(shard) else {
            return;
        };
        if let Some(end) = &node.end_seq
            && seq >= end
        {
            anomalies.push(
                "record-after-shard-end",
                format!("{what} {value} at {seq} in {shard}, which closed at {end}"),
                ops.clone(),
                json!({"shard": shard, "seq": seq.to_string(), "end": end.to_string(), "value": value}),
            );
        }
        for p in node.parents() {
            if let Some(end) = nodes.get(p.as_str()).and_then(|n| n.end_seq.as_ref())
                && seq <= end
            {
                anomalies.push(
                    "child-record-below-parent-end",
                    format!("{what} {value} at {seq} in {shard}, not above its parent {p}'s end {end}"),
                    ops.clone(),
                    json!({"shard": shard, "parent": p, "seq": seq.to_string(), "parent_end": end.to_string(), "value": value}),
                );
            }
        }
    };
    for a in &facts.attempts {
        if let (Outcome::Ok, Some(shard), Some(seq)) = (a.outcome, a.shard.as_deref(), &a.seq) {
            judge(shard, seq, &a.value, a.ops(), "acknowledged");
        }
    }
    for view in &facts.views {
        let what = if view.is_drain() { "drained" } else { "read" };
        for r in &view.records {
            judge(&view.shard, &r.seq, &r.value, vec![r.index], what);
        }
    }

    // One key, one line of descent.
    let ancestors = |id: &str| facts.ancestors(id);
    let mut by_key: BTreeMap<&str, BTreeMap<&str, Vec<u64>>> = BTreeMap::new();
    for a in &facts.attempts {
        if let (Outcome::Ok, Some(shard)) = (a.outcome, a.shard.as_deref()) {
            by_key
                .entry(a.key.as_str())
                .or_default()
                .entry(shard)
                .or_default()
                .extend(a.ops());
        }
    }
    let mut lineage: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut keys_across = 0usize;
    for (key, shards) in &by_key {
        if shards.len() > 1 {
            keys_across += 1;
        }
        let ids: Vec<&str> = shards.keys().copied().collect();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                if !nodes.contains_key(a) || !nodes.contains_key(b) {
                    continue;
                }
                let related = lineage
                    .entry(a)
                    .or_insert_with(|| ancestors(a))
                    .contains(*b)
                    || lineage
                        .entry(b)
                        .or_insert_with(|| ancestors(b))
                        .contains(*a);
                if !related {
                    let mut ops = shards[a].clone();
                    ops.extend(&shards[b]);
                    ops.truncate(8);
                    anomalies.push(
                        "key-in-unrelated-shards",
                        format!("key {key} was acknowledged in {a} and in {b}, neither an ancestor of the other"),
                        ops,
                        json!({"key": key, "shards": [a, b]}),
                    );
                }
            }
        }
    }

    // Every shard drained, so no acknowledged record in a parent escapes property 1.
    let drained: BTreeSet<&str> = facts
        .views
        .iter()
        .filter(|v| v.is_drain())
        .map(|v| v.shard.as_str())
        .collect();
    if facts.has_drains() {
        for id in nodes.keys() {
            if !drained.contains(id) {
                anomalies.push(
                    "shard-not-drained",
                    format!("{id} is in the shard map but no drain read it"),
                    map_line.clone(),
                    json!({"shard": id}),
                );
            }
        }
    }

    let closed = nodes.values().filter(|n| n.shard.end_seq.is_some()).count();
    anomalies.finish(json!({
        "shards": nodes.len(),
        "open": open.len(),
        "closed": closed,
        "split_children": splits,
        "merge_children": merges,
        "records_checked": records_checked,
        "keys_in_more_than_one_shard": keys_across,
        "status": map.status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::Verdict;
    use crate::checkers::fixture::H;

    const MAX: u128 = u128::MAX;
    const MID: u128 = u128::MAX / 2;

    /// s0 (closed at 100) split into s1 and s2 at MID.
    fn split_map(h: &mut H) {
        h.shard_map(
            "ACTIVE",
            &[
                ("s0", None, None, 0, MAX, 1, Some(100)),
                ("s1", Some("s0"), None, 0, MID, 200, None),
                ("s2", Some("s0"), None, MID + 1, MAX, 300, None),
            ],
        );
    }

    fn kinds(r: &PropertyResult) -> Vec<&'static str> {
        r.anomalies.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_clean_split_passes() {
        let mut h = H::default();
        h.append_keyed("w0", 0, 5, &[("a", "k1", "s0", 10)]);
        h.append_keyed("w0", 6, 9, &[("b", "k1", "s1", 210)]);
        h.append_keyed("w1", 6, 9, &[("c", "k2", "s2", 310)]);
        h.drain(1, "s0", 50, &[(10, "a")]);
        h.drain(1, "s1", 50, &[(210, "b")]);
        h.drain(1, "s2", 50, &[(310, "c")]);
        split_map(&mut h);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["closed"], 1);
        assert_eq!(r.stats["split_children"], 2);
        assert_eq!(r.stats["keys_in_more_than_one_shard"], 1);
    }

    #[test]
    fn a_record_in_a_parent_at_or_after_its_end_is_caught() {
        let mut h = H::default();
        // Planted: the sealed parent took a write at its ending number.
        h.append_keyed("w0", 0, 5, &[("a", "k1", "s0", 100)]);
        h.drain(1, "s0", 50, &[(100, "a")]);
        h.drain(1, "s1", 50, &[]);
        h.drain(1, "s2", 50, &[]);
        split_map(&mut h);
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(
            kinds(&r),
            vec!["record-after-shard-end", "record-after-shard-end"]
        );
        assert_eq!(r.anomalies[0].ops, vec![0, 1]);
    }

    #[test]
    fn a_child_below_its_parent_a_bad_lineage_and_an_undrained_shard_are_caught() {
        let mut h = H::default();
        h.append_keyed("w0", 0, 5, &[("a", "k1", "s1", 50)]);
        // The same key in both children of one split: they are siblings, not a line of descent.
        h.append_keyed("w0", 6, 9, &[("b", "k1", "s2", 310)]);
        h.drain(1, "s1", 50, &[(50, "a")]);
        h.drain(1, "s2", 50, &[(310, "b")]);
        split_map(&mut h);
        let r = check(&h.facts(), &CheckConfig::default());
        let k = kinds(&r);
        assert!(k.contains(&"child-record-below-parent-end"), "{k:?}");
        assert!(k.contains(&"key-in-unrelated-shards"), "{k:?}");
        assert!(k.contains(&"shard-not-drained"), "{k:?}");
    }

    #[test]
    fn a_broken_map_and_a_stuck_stream_are_caught() {
        let mut h = H::default();
        h.shard_map(
            "UPDATING",
            &[
                // Child of an open parent, starting below it, with a range the parent lacks.
                ("s0", None, None, 0, MID, 1, None),
                ("s1", Some("s0"), None, MID, MAX, 0, None),
                ("s3", Some("s9"), None, 0, 1, 5, None),
            ],
        );
        let r = check(&h.facts(), &CheckConfig::default());
        let k = kinds(&r);
        for want in [
            "stream-not-active",
            "open-parent",
            "child-range-outside-parents",
            "unknown-parent",
            "open-shards-do-not-tile",
        ] {
            assert!(k.contains(&want), "{want} missing from {k:?}");
        }
    }

    #[test]
    fn a_merge_child_is_the_union_of_adjacent_parents() {
        let mut h = H::default();
        h.shard_map(
            "ACTIVE",
            &[
                ("s0", None, None, 0, MID, 1, Some(100)),
                ("s1", None, None, MID + 1, MAX, 2, Some(120)),
                ("s2", Some("s0"), Some("s1"), 0, MAX, 300, None),
            ],
        );
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
        assert_eq!(r.stats["merge_children"], 1);
    }

    #[test]
    fn without_a_map_it_is_not_checked() {
        let h = H::default();
        let r = check(&h.facts(), &CheckConfig::default());
        assert_eq!(r.verdict, Verdict::NotChecked);
    }
}
