//! Applying committed shard commands.
//!
//! Hot path: runs for every committed entry on every replica. No blocking I/O beyond sled batch
//! building, no per-record logging.

use std::io;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use streamd_proto::ids::SequenceNumber;
use streamd_raft::GroupStateMachine;
use streamd_storage::sled;
use tokio::sync::watch;

use crate::command::{
    ApplyReply, IdempotentOutcome, RecordIn, ShardCommand, ShardCommandView, StoredEntry,
};
use crate::keys;
use crate::producers::ProducerWindows;

/// bincode 1 writes an enum's variant index as a little-endian u32 before its fields.
const VARIANT_TAG_BYTES: usize = 4;

/// What a shard replica knows of its own contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardState {
    /// The last sequence number written, if any record ever was.
    pub last_seq: Option<u128>,
    /// Records below this were trimmed by retention.
    pub trim_seq: u128,
    /// Arrival time of the newest record; arrival times never go backwards within a shard.
    pub last_arrival_ms: i64,
    /// Set by the Seal entry of a reshard: (op id, ending sequence number). Nothing is written
    /// after it.
    pub sealed: Option<(u64, u128)>,
}

pub struct ShardStateMachine {
    group: u64,
    tree: Option<sled::Tree>,
    working: ShardState,
    published: Arc<RwLock<ShardState>>,
    notify: watch::Sender<Option<u128>>,
    /// Puts applied into the sled batch being built, not yet in the tree: (arrival, first
    /// sequence number). A Trim later in the same batch must see them, or how entries happen to
    /// be batched (which differs between replicas and on replay) would change what it keeps.
    unwritten: Vec<(i64, u128)>,
    producers: ProducerWindows,
}

impl ShardStateMachine {
    /// A state machine for `group`, sharing its published state with readers through `published`
    /// and announcing new records on `notify` (the last sequence number).
    pub fn new(
        group: u64,
        published: Arc<RwLock<ShardState>>,
        notify: watch::Sender<Option<u128>>,
    ) -> Self {
        ShardStateMachine {
            group,
            tree: None,
            working: ShardState::default(),
            published,
            notify,
            unwritten: Vec::new(),
            producers: ProducerWindows::default(),
        }
    }

    fn encode<T: Serialize>(v: &T) -> Vec<u8> {
        // Encoding an in-memory value into a Vec cannot fail for these types.
        bincode::serialize(v).unwrap_or_default()
    }

    /// Stores a Put entry as one sled value: the command's own bytes after the variant index
    /// (see the layout contract on `ShardCommand`), with the arrival time made monotonic.
    fn apply_put(
        &mut self,
        index: u64,
        command: &[u8],
        arrival_ms: i64,
        count: usize,
        batch: &mut sled::Batch,
    ) -> ApplyReply {
        if self.working.sealed.is_some() {
            return ApplyReply::Closed;
        }
        let count = count.min(SequenceNumber::MAX_POSITION as usize + 1);
        if count == 0 {
            return ApplyReply::Put {
                log_index: index,
                count: 0,
            };
        }
        let Some(body) = command.get(VARIANT_TAG_BYTES..) else {
            return ApplyReply::Put {
                log_index: index,
                count: 0,
            };
        };
        self.store_entry(index, arrival_ms, body.to_vec(), count, batch);
        ApplyReply::Put {
            log_index: index,
            count: count as u32,
        }
    }

    /// Stores `value` (an encoded [`StoredEntry`] of `count` records) as the entry of log
    /// `index`, with its arrival time made monotonic.
    fn store_entry(
        &mut self,
        index: u64,
        arrival_ms: i64,
        mut value: Vec<u8>,
        count: usize,
        batch: &mut sled::Batch,
    ) {
        let arrival = arrival_ms.max(self.working.last_arrival_ms);
        if let Some(stamp) = value.get_mut(..8) {
            stamp.copy_from_slice(&arrival.to_le_bytes());
        }
        let first = SequenceNumber::new(self.group, index, 0).0;
        batch.insert(keys::entry(self.group, first), value);
        batch.insert(keys::time(self.group, arrival, first), Vec::<u8>::new());
        self.unwritten.push((arrival, first));
        self.working.last_seq = Some(SequenceNumber::new(self.group, index, (count - 1) as u16).0);
        self.working.last_arrival_ms = arrival;
        batch.insert(keys::state(self.group), Self::encode(&self.working));
    }

    /// A Put from an idempotent producer: records numbered above the producer's newest stored
    /// one are written; the others are answered with what they got the first time.
    fn apply_put_idempotent(
        &mut self,
        index: u64,
        arrival_ms: i64,
        producer: u64,
        records: Vec<RecordIn>,
        seqs: &[u64],
        batch: &mut sled::Batch,
    ) -> ApplyReply {
        if self.working.sealed.is_some() {
            return ApplyReply::Closed;
        }
        let tree = self.tree.as_ref();
        let mut last = self.producers.last(tree, self.group, producer);
        let mut outcomes = Vec::with_capacity(records.len());
        let mut kept = Vec::new();
        let mut written = Vec::new();
        let max_records = SequenceNumber::MAX_POSITION as usize + 1;
        for (record, &seq) in records.into_iter().zip(seqs) {
            match last {
                Some(l) if seq <= l => outcomes.push(
                    match self.producers.lookup(tree, self.group, producer, seq, l) {
                        Some(sequence_number) => IdempotentOutcome::Duplicate { sequence_number },
                        None => IdempotentOutcome::TooOld { last_seq: l },
                    },
                ),
                _ if kept.len() >= max_records => {
                    outcomes.push(IdempotentOutcome::TooOld {
                        last_seq: last.unwrap_or(0),
                    });
                }
                _ => {
                    let position = kept.len() as u16;
                    written.push((seq, SequenceNumber::new(self.group, index, position).0));
                    outcomes.push(IdempotentOutcome::Written { position });
                    kept.push(record);
                    last = Some(seq);
                }
            }
        }
        if let (false, Some(l)) = (kept.is_empty(), last) {
            let count = kept.len();
            let value = Self::encode(&StoredEntry {
                arrival_ms,
                records: kept,
            });
            self.store_entry(index, arrival_ms, value, count, batch);
            self.producers
                .record(self.tree.as_ref(), self.group, producer, &written, l, batch);
        }
        ApplyReply::PutIdempotent {
            log_index: index,
            outcomes,
        }
    }

    fn apply_trim(&mut self, cutoff_ms: i64, batch: &mut sled::Batch) -> ApplyReply {
        let Some(tree) = &self.tree else {
            return ApplyReply::Trimmed;
        };
        // The first entry that arrived at or after the cutoff is the new horizon.
        let time_lo = keys::time(self.group, 0, 0);
        let time_hi = keys::time(self.group, cutoff_ms, 0);
        let mut new_trim = None;
        for (k, _) in tree
            .range(time_hi.clone()..keys::time(self.group, i64::MAX, u128::MAX))
            .take(1)
            .flatten()
        {
            new_trim = keys::parse_time_key(&k).map(|(_, s)| s);
        }
        // Puts earlier in this batch are newer than anything in the tree (arrival times never
        // go back), so they only matter when the tree holds nothing to keep.
        let new_trim = match new_trim.or_else(|| {
            self.unwritten
                .iter()
                .find(|(arrival, _)| *arrival >= cutoff_ms)
                .map(|(_, first)| *first)
        }) {
            Some(s) => s,
            // Everything is older than the cutoff: keep nothing.
            None => self
                .working
                .last_seq
                .map(|s| s + 1)
                .unwrap_or(self.working.trim_seq),
        };
        if new_trim <= self.working.trim_seq {
            return ApplyReply::Trimmed;
        }
        for (k, _) in tree
            .range(
                keys::entry(self.group, self.working.trim_seq)..keys::entry(self.group, new_trim),
            )
            .flatten()
        {
            batch.remove(k);
        }
        for (k, _) in tree.range(time_lo..time_hi).flatten() {
            batch.remove(k);
        }
        for &(arrival, first) in self.unwritten.iter().filter(|(_, f)| *f < new_trim) {
            batch.remove(keys::entry(self.group, first));
            batch.remove(keys::time(self.group, arrival, first));
        }
        self.working.trim_seq = new_trim;
        batch.insert(keys::state(self.group), Self::encode(&self.working));
        ApplyReply::Trimmed
    }
}

impl ShardStateMachine {
    /// The first Seal wins; a repeated one (a retried reshard step) answers the same ending.
    fn apply_seal(&mut self, index: u64, op_id: u64, batch: &mut sled::Batch) -> ApplyReply {
        let ending_seq = match self.working.sealed {
            Some((_, ending)) => ending,
            None => {
                let ending = SequenceNumber::new(self.group, index, 0).0;
                self.working.sealed = Some((op_id, ending));
                batch.insert(keys::state(self.group), Self::encode(&self.working));
                ending
            }
        };
        ApplyReply::Sealed { ending_seq }
    }
}

impl GroupStateMachine for ShardStateMachine {
    fn apply(&mut self, index: u64, command: &[u8], batch: &mut sled::Batch) -> Vec<u8> {
        let reply = match bincode::deserialize::<ShardCommandView<'_>>(command) {
            Ok(ShardCommandView::Put {
                arrival_ms,
                records,
            }) => self.apply_put(index, command, arrival_ms, records.len(), batch),
            Ok(ShardCommandView::Trim { cutoff_ms }) => self.apply_trim(cutoff_ms, batch),
            Ok(ShardCommandView::Seal { op_id }) => self.apply_seal(index, op_id, batch),
            // Rare next to plain Puts: decoded again as owned records, since the stored entry
            // keeps only the records written now.
            Ok(ShardCommandView::PutIdempotent { .. }) => {
                match bincode::deserialize::<ShardCommand>(command) {
                    Ok(ShardCommand::PutIdempotent {
                        arrival_ms,
                        records,
                        producer_id,
                        seqs,
                    }) => self.apply_put_idempotent(
                        index,
                        arrival_ms,
                        producer_id,
                        records,
                        &seqs,
                        batch,
                    ),
                    _ => {
                        tracing::error!(
                            group_id = self.group,
                            index,
                            "skipping undecodable idempotent put"
                        );
                        ApplyReply::Trimmed
                    }
                }
            }
            Err(e) => {
                // Only a bug can put an undecodable command in the log; every replica skips it
                // alike, so they stay identical.
                tracing::error!(group_id = self.group, index, error = %e, "skipping undecodable shard command");
                ApplyReply::Trimmed
            }
        };
        Self::encode(&reply)
    }

    fn applied(&mut self) {
        self.unwritten.clear();
        self.producers.applied();
        let changed = {
            let mut p = self.published.write();
            let changed = p.last_seq != self.working.last_seq || p.sealed != self.working.sealed;
            *p = self.working.clone();
            changed
        };
        if changed {
            self.notify.send_replace(self.working.last_seq);
        }
    }

    fn reload(&mut self, tree: &sled::Tree) -> io::Result<()> {
        self.working = match tree
            .get(keys::state(self.group))
            .map_err(io::Error::other)?
        {
            Some(v) => bincode::deserialize(&v).map_err(io::Error::other)?,
            None => ShardState {
                trim_seq: SequenceNumber::first_of_group(self.group).0,
                ..ShardState::default()
            },
        };
        self.tree = Some(tree.clone());
        self.unwritten.clear();
        self.producers.reset();
        self.applied();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShardReader;
    use crate::command::{RecordIn, ShardCommand, StartAt};

    struct Replica {
        _dir: tempfile::TempDir,
        tree: sled::Tree,
        sm: ShardStateMachine,
        reader: ShardReader,
    }

    const GROUP: u64 = 7;

    fn replica() -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("shards").unwrap();
        let state = Arc::new(RwLock::new(ShardState::default()));
        let (tx, rx) = watch::channel(None);
        let mut sm = ShardStateMachine::new(GROUP, state.clone(), tx);
        sm.reload(&tree).unwrap();
        let reader = ShardReader::new(GROUP, tree.clone(), state, rx);
        Replica {
            _dir: dir,
            tree,
            sm,
            reader,
        }
    }

    impl Replica {
        fn apply(&mut self, index: u64, cmd: &ShardCommand) -> ApplyReply {
            let mut batch = sled::Batch::default();
            let reply = self
                .sm
                .apply(index, &bincode::serialize(cmd).unwrap(), &mut batch);
            self.tree.apply_batch(batch).unwrap();
            self.sm.applied();
            bincode::deserialize(&reply).unwrap()
        }

        fn put(&mut self, index: u64, arrival_ms: i64, n: usize) {
            let records = (0..n)
                .map(|i| RecordIn {
                    partition_key: format!("k{i}"),
                    data: vec![index as u8; i + 1],
                })
                .collect();
            self.apply(
                index,
                &ShardCommand::Put {
                    arrival_ms,
                    records,
                },
            );
        }

        /// Applies `cmds` (index, command) into one sled batch, as the Raft adapter does with
        /// a run of committed entries.
        fn apply_together(&mut self, cmds: &[(u64, ShardCommand)]) {
            let mut batch = sled::Batch::default();
            for (index, cmd) in cmds {
                self.sm
                    .apply(*index, &bincode::serialize(cmd).unwrap(), &mut batch);
            }
            self.tree.apply_batch(batch).unwrap();
            self.sm.applied();
        }

        fn all(&self) -> Vec<(u128, i64)> {
            let from = self.reader.position(StartAt::TrimHorizon).unwrap();
            let r = self.reader.read(from, 10_000, usize::MAX, 0).unwrap();
            r.records
                .iter()
                .map(|(s, rec)| (*s, rec.arrival_ms))
                .collect()
        }
    }

    fn put_cmd(arrival_ms: i64) -> ShardCommand {
        ShardCommand::Put {
            arrival_ms,
            records: vec![RecordIn {
                partition_key: "k".into(),
                data: b"v".to_vec(),
            }],
        }
    }

    #[test]
    fn a_replica_knows_whether_a_trim_would_remove_anything() {
        let mut r = replica();
        assert!(!r.reader.holds_records_before(i64::MAX), "empty shard");
        r.put(1, 1_000, 2);
        r.put(2, 3_000, 1);
        assert!(!r.reader.holds_records_before(1_000));
        assert!(r.reader.holds_records_before(1_001));
        r.apply(3, &ShardCommand::Trim { cutoff_ms: 2_000 });
        assert!(!r.reader.holds_records_before(2_000), "trimmed already");
        assert!(r.reader.holds_records_before(3_001));
    }

    #[test]
    fn a_trim_in_the_same_batch_as_a_put_judges_it_like_any_other_record() {
        // Whether a Put and the Trim after it share a batch differs between replicas and on
        // replay; both must keep the same records.
        for together in [false, true] {
            let mut r = replica();
            r.put(1, 1_000, 1);
            let cmds = [
                (2, put_cmd(5_000)),
                (3, put_cmd(1_500)), // arrival made monotonic: 5_000
                (4, ShardCommand::Trim { cutoff_ms: 2_000 }),
            ];
            if together {
                r.apply_together(&cmds);
            } else {
                for (i, c) in &cmds {
                    r.apply(*i, c);
                }
            }
            let kept: Vec<i64> = r.all().iter().map(|(_, a)| *a).collect();
            assert_eq!(kept, vec![5_000, 5_000], "together={together}");
            assert_eq!(
                r.reader.position(StartAt::TrimHorizon).unwrap(),
                SequenceNumber::new(GROUP, 2, 0).0,
                "together={together}"
            );

            // A put older than the cutoff in the same batch is trimmed, keys and all.
            let mut r = replica();
            r.put(1, 1_000, 1);
            let cmds = [
                (2, put_cmd(1_200)),
                (3, ShardCommand::Trim { cutoff_ms: 2_000 }),
            ];
            if together {
                r.apply_together(&cmds);
            } else {
                for (i, c) in &cmds {
                    r.apply(*i, c);
                }
            }
            assert!(r.all().is_empty(), "together={together}");
            let left: Vec<_> = r
                .tree
                .iter()
                .keys()
                .map(|k| k.unwrap())
                .filter(|k| k.as_ref() != keys::state(GROUP).as_slice())
                .collect();
            assert!(left.is_empty(), "together={together}: {left:?}");
        }
    }

    #[test]
    fn sequence_numbers_come_from_index_and_position() {
        let mut r = replica();
        let reply = r.apply(
            3,
            &ShardCommand::Put {
                arrival_ms: 10,
                records: vec![
                    RecordIn {
                        partition_key: "a".into(),
                        data: b"x".to_vec()
                    };
                    3
                ],
            },
        );
        assert!(matches!(
            reply,
            ApplyReply::Put {
                log_index: 3,
                count: 3
            }
        ));
        r.put(5, 11, 2);
        let seqs: Vec<u128> = r.all().iter().map(|(s, _)| *s).collect();
        let expect: Vec<u128> = [(3, 0), (3, 1), (3, 2), (5, 0), (5, 1)]
            .iter()
            .map(|(i, p)| SequenceNumber::new(GROUP, *i, *p).0)
            .collect();
        assert_eq!(seqs, expect);
        // Reading from the middle of an entry starts at that record.
        let mid = SequenceNumber::new(GROUP, 3, 1).0;
        let page = r.reader.read(mid, 2, usize::MAX, 0).unwrap();
        let got: Vec<u128> = page.records.iter().map(|(s, _)| *s).collect();
        assert_eq!(got, vec![mid, SequenceNumber::new(GROUP, 3, 2).0]);
        assert_eq!(page.next, SequenceNumber::new(GROUP, 3, 2).0 + 1);
    }

    #[test]
    fn arrival_times_never_go_backwards() {
        let mut r = replica();
        r.put(1, 1_000, 1);
        r.put(2, 500, 1);
        let arrivals: Vec<i64> = r.all().iter().map(|(_, a)| *a).collect();
        assert_eq!(arrivals, vec![1_000, 1_000]);
    }

    #[test]
    fn trim_drops_whole_entries_older_than_the_cutoff_and_moves_the_horizon() {
        let mut r = replica();
        r.put(1, 1_000, 2);
        r.put(2, 2_000, 2);
        r.put(3, 3_000, 2);
        r.apply(4, &ShardCommand::Trim { cutoff_ms: 2_500 });
        let left: Vec<u128> = r.all().iter().map(|(s, _)| *s).collect();
        assert_eq!(
            left,
            vec![
                SequenceNumber::new(GROUP, 3, 0).0,
                SequenceNumber::new(GROUP, 3, 1).0
            ]
        );
        assert_eq!(
            r.reader.position(StartAt::TrimHorizon).unwrap(),
            SequenceNumber::new(GROUP, 3, 0).0
        );
        // An iterator older than the horizon reads from the horizon.
        let old = r
            .reader
            .read(SequenceNumber::new(GROUP, 1, 0).0, 10, usize::MAX, 0)
            .unwrap();
        assert_eq!(old.records.len(), 2);
        // AT_TIMESTAMP finds the first entry at or after the time.
        assert_eq!(
            r.reader.position(StartAt::AtTimestamp(2_999)).unwrap(),
            SequenceNumber::new(GROUP, 3, 0).0
        );
        // Trimming everything leaves an empty shard whose horizon is past the last record.
        r.apply(5, &ShardCommand::Trim { cutoff_ms: 10_000 });
        assert!(r.all().is_empty());
        assert_eq!(
            r.reader.position(StartAt::Latest).unwrap(),
            r.reader.position(StartAt::TrimHorizon).unwrap()
        );
        // State survives a reload from the tree alone.
        let mut again = ShardStateMachine::new(GROUP, Arc::default(), watch::channel(None).0);
        again.reload(&r.tree).unwrap();
        assert_eq!(again.working, r.sm.working);
    }

    #[test]
    fn a_seal_fixes_the_end_refuses_later_puts_and_repeats_its_answer() {
        let mut r = replica();
        r.put(1, 1_000, 2);
        let ending = SequenceNumber::new(GROUP, 2, 0).0;
        match r.apply(2, &ShardCommand::Seal { op_id: 7 }) {
            ApplyReply::Sealed { ending_seq } => assert_eq!(ending_seq, ending),
            other => panic!("expected a seal, got {other:?}"),
        }
        // A put ordered after the seal writes nothing.
        let refused = r.apply(
            3,
            &ShardCommand::Put {
                arrival_ms: 2_000,
                records: vec![RecordIn {
                    partition_key: "k".into(),
                    data: b"late".to_vec(),
                }],
            },
        );
        assert!(matches!(refused, ApplyReply::Closed));
        assert_eq!(r.all().len(), 2);
        // A retried seal (another log entry) answers the first one's ending.
        match r.apply(4, &ShardCommand::Seal { op_id: 7 }) {
            ApplyReply::Sealed { ending_seq } => assert_eq!(ending_seq, ending),
            other => panic!("expected a seal, got {other:?}"),
        }
        assert!(ending > r.all().last().unwrap().0);
        // A reader that reached the last record is at the end.
        let from = r.reader.position(StartAt::TrimHorizon).unwrap();
        let page = r.reader.read(from, 1, usize::MAX, 0).unwrap();
        assert!(!page.at_end, "one record is still to read");
        let page = r.reader.read(page.next, 10, usize::MAX, 0).unwrap();
        assert!(page.at_end);
        let mut again = ShardStateMachine::new(GROUP, Arc::default(), watch::channel(None).0);
        again.reload(&r.tree).unwrap();
        assert_eq!(again.working.sealed, Some((7, ending)));
    }

    fn idem(producer_id: u64, seqs: &[u64]) -> ShardCommand {
        ShardCommand::PutIdempotent {
            arrival_ms: 100,
            records: seqs
                .iter()
                .map(|s| RecordIn {
                    partition_key: "k".into(),
                    data: s.to_le_bytes().to_vec(),
                })
                .collect(),
            producer_id,
            seqs: seqs.to_vec(),
        }
    }

    fn outcomes(reply: ApplyReply) -> Vec<IdempotentOutcome> {
        match reply {
            ApplyReply::PutIdempotent { outcomes, .. } => outcomes,
            other => panic!("not an idempotent reply: {other:?}"),
        }
    }

    fn stored_numbers(r: &Replica) -> Vec<u64> {
        let from = r.reader.position(StartAt::TrimHorizon).unwrap();
        let read = r.reader.read(from, 10_000, usize::MAX, 0).unwrap();
        read.records
            .iter()
            .map(|(_, rec)| u64::from_le_bytes(rec.data.as_slice().try_into().unwrap()))
            .collect()
    }

    #[test]
    fn a_retried_idempotent_put_gets_its_first_answer_and_writes_nothing() {
        use IdempotentOutcome::*;
        let seq = |index, p| SequenceNumber::new(GROUP, index, p).0;
        // The retry may share a sled batch with the first write (a replay, a follower catching
        // up) or not: the answers and the contents must not depend on it.
        for together in [false, true] {
            let mut r = replica();
            let cmds = [
                (2, idem(9, &[1, 2, 3])),
                (3, idem(9, &[1, 2, 3])),
                (4, idem(9, &[2, 3, 4, 5])),
            ];
            let replies: Vec<Vec<IdempotentOutcome>> = if together {
                let mut batch = sled::Batch::default();
                let replies = cmds
                    .iter()
                    .map(|(i, c)| {
                        let b = r.sm.apply(*i, &bincode::serialize(c).unwrap(), &mut batch);
                        outcomes(bincode::deserialize(&b).unwrap())
                    })
                    .collect();
                r.tree.apply_batch(batch).unwrap();
                r.sm.applied();
                replies
            } else {
                cmds.iter().map(|(i, c)| outcomes(r.apply(*i, c))).collect()
            };
            let written = |n: u16| {
                (0..n)
                    .map(|position| Written { position })
                    .collect::<Vec<_>>()
            };
            assert_eq!(replies[0], written(3), "together={together}");
            let first: Vec<_> = (0..3)
                .map(|p| Duplicate {
                    sequence_number: seq(2, p),
                })
                .collect();
            assert_eq!(replies[1], first, "together={together}");
            assert_eq!(
                replies[2],
                vec![
                    Duplicate {
                        sequence_number: seq(2, 1)
                    },
                    Duplicate {
                        sequence_number: seq(2, 2)
                    },
                    Written { position: 0 },
                    Written { position: 1 },
                ],
                "together={together}"
            );
            assert_eq!(
                stored_numbers(&r),
                vec![1, 2, 3, 4, 5],
                "together={together}"
            );
            // A second producer numbers independently.
            assert_eq!(outcomes(r.apply(5, &idem(10, &[1]))), written(1));
        }
    }

    #[test]
    fn a_number_below_the_newest_that_was_never_written_here_is_refused() {
        let mut r = replica();
        r.apply(2, &idem(9, &[10, 12]));
        // 11 went to another shard, or is a retry overtaken by a later write: either way this
        // shard cannot tell it from a duplicate, so it refuses rather than guess.
        assert_eq!(
            outcomes(r.apply(3, &idem(9, &[11]))),
            vec![IdempotentOutcome::TooOld { last_seq: 12 }]
        );
        assert_eq!(stored_numbers(&r), vec![10, 12]);
        // Survives a restart: the newest number is read back from the tree.
        let mut again = ShardStateMachine::new(GROUP, Arc::default(), watch::channel(None).0);
        again.reload(&r.tree).unwrap();
        let mut batch = sled::Batch::default();
        let reply = again.apply(
            4,
            &bincode::serialize(&idem(9, &[12, 13])).unwrap(),
            &mut batch,
        );
        assert_eq!(
            outcomes(bincode::deserialize(&reply).unwrap()),
            vec![
                IdempotentOutcome::Duplicate {
                    sequence_number: SequenceNumber::new(GROUP, 2, 1).0
                },
                IdempotentOutcome::Written { position: 0 },
            ]
        );
    }

    #[test]
    fn the_window_forgets_old_numbers_alike_in_any_batching() {
        let far = crate::producers::PRODUCER_WINDOW + 5;
        for together in [false, true] {
            let mut r = replica();
            r.apply(2, &idem(9, &[1]));
            let cmds = [(3, idem(9, &[far])), (4, idem(9, &[1]))];
            let last = if together {
                let mut batch = sled::Batch::default();
                let mut last = Vec::new();
                for (i, c) in &cmds {
                    let b = r.sm.apply(*i, &bincode::serialize(c).unwrap(), &mut batch);
                    last = outcomes(bincode::deserialize(&b).unwrap());
                }
                r.tree.apply_batch(batch).unwrap();
                r.sm.applied();
                last
            } else {
                cmds.iter()
                    .map(|(i, c)| outcomes(r.apply(*i, c)))
                    .last()
                    .unwrap()
            };
            assert_eq!(
                last,
                vec![IdempotentOutcome::TooOld { last_seq: far }],
                "together={together}"
            );
            assert!(
                r.tree
                    .get(keys::producer_seq(GROUP, 9, 1))
                    .unwrap()
                    .is_none(),
                "together={together}: the pruned number is still stored"
            );
        }
    }

    #[test]
    fn an_idempotent_put_to_a_sealed_shard_writes_nothing() {
        let mut r = replica();
        r.apply(2, &ShardCommand::Seal { op_id: 1 });
        assert!(matches!(r.apply(3, &idem(9, &[1])), ApplyReply::Closed));
        assert!(stored_numbers(&r).is_empty());
    }
}
