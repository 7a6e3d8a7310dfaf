//! What a shard remembers of idempotent producers: per producer, the newest number it stored
//! and, for its recent records, the sequence number each got, so a retry is answered with the
//! first answer instead of being written twice.
//!
//! Everything here is decided from replicated state alone (the tree, plus what the sled batch
//! being built will add), so every replica and every replay reaches the same answers however
//! entries happen to be batched.

use std::collections::HashMap;

use streamd_storage::sled;

use crate::keys;

/// How far below a producer's newest stored number the shard still knows what each record got.
/// A producer retries only its latest unanswered batch to a shard, numbered just below its
/// newest; the window is far wider than that, and bounds what a shard keeps per producer.
pub(crate) const PRODUCER_WINDOW: u64 = 100_000;

#[derive(Default)]
pub(crate) struct ProducerWindows {
    /// Newest stored number per producer, as of the batch being built.
    last: HashMap<u64, u64>,
    /// Window entries added by the batch being built, not yet in the tree.
    pending: HashMap<(u64, u64), u128>,
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

fn be_u128(v: &[u8]) -> Option<u128> {
    Some(u128::from_be_bytes(v.try_into().ok()?))
}

impl ProducerWindows {
    /// The newest number stored for `producer`, if it ever wrote to this shard.
    pub(crate) fn last(
        &mut self,
        tree: Option<&sled::Tree>,
        group: u64,
        producer: u64,
    ) -> Option<u64> {
        if let Some(l) = self.last.get(&producer) {
            return Some(*l);
        }
        let stored = tree?
            .get(keys::producer(group, producer))
            .ok()
            .flatten()
            .and_then(|v| be_u64(&v))?;
        self.last.insert(producer, stored);
        Some(stored)
    }

    /// What record `seq` of `producer` got, when it is inside the window below `last`. The
    /// window is judged by number, not by what the tree still holds, because pruning lands with
    /// the batch and a differently batched replica must give the same answer.
    pub(crate) fn lookup(
        &self,
        tree: Option<&sled::Tree>,
        group: u64,
        producer: u64,
        seq: u64,
        last: u64,
    ) -> Option<u128> {
        if seq > last || last - seq >= PRODUCER_WINDOW {
            return None;
        }
        if let Some(s) = self.pending.get(&(producer, seq)) {
            return Some(*s);
        }
        tree?
            .get(keys::producer_seq(group, producer, seq))
            .ok()
            .flatten()
            .and_then(|v| be_u128(&v))
    }

    /// Adds what the records of one entry got to the batch, moves the producer's newest number
    /// to `last` and prunes what fell out of the window.
    pub(crate) fn record(
        &mut self,
        tree: Option<&sled::Tree>,
        group: u64,
        producer: u64,
        written: &[(u64, u128)],
        last: u64,
        batch: &mut sled::Batch,
    ) {
        for &(seq, sequence_number) in written {
            batch.insert(
                keys::producer_seq(group, producer, seq),
                sequence_number.to_be_bytes().to_vec(),
            );
            self.pending.insert((producer, seq), sequence_number);
        }
        batch.insert(keys::producer(group, producer), last.to_be_bytes().to_vec());
        self.last.insert(producer, last);
        if let (Some(tree), Some(below)) = (tree, last.checked_sub(PRODUCER_WINDOW - 1)) {
            // Only what fell out since the previous prune is still there, so this scan is short.
            for (k, _) in tree
                .range(
                    keys::producer_seq(group, producer, 0)
                        ..keys::producer_seq(group, producer, below),
                )
                .flatten()
            {
                batch.remove(k);
            }
            self.pending
                .retain(|(p, s), _| *p != producer || *s >= below);
        }
    }

    /// The batch was written: its entries are in the tree now.
    pub(crate) fn applied(&mut self) {
        self.pending.clear();
    }

    /// The tree was replaced (a snapshot was installed): forget everything cached.
    pub(crate) fn reset(&mut self) {
        self.last.clear();
        self.pending.clear();
    }
}
