//! One shard's buffer: Kinesis records waiting to be sent (each carrying the user records it
//! acknowledges), the aggregate being filled, and the rule for when a batch is due. No I/O.
//!
//! Invariant: `units` is sorted by (producer_seq, order), so a batch taken from the front is in
//! send order and, for an idempotent producer, in increasing producer_seq as the server requires;
//! a retried unit goes back in front of everything sent after it.

use std::collections::VecDeque;

use bytes::Bytes;
use streamd_proto::ErrorCode;
use streamd_proto::v1;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::kpl::Aggregator;
use crate::producer::{Ack, ProducerError};

/// The caller of one user record, and the share of the byte budget that record holds.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) tx: oneshot::Sender<Result<Ack, ProducerError>>,
    pub(crate) permit: OwnedSemaphorePermit,
    /// Acceptance order across the whole producer.
    pub(crate) order: u64,
}

/// A user record accepted but not yet part of a Kinesis record.
#[derive(Debug)]
pub(crate) struct Raw {
    pub(crate) partition_key: String,
    pub(crate) explicit_hash_key: Option<String>,
    pub(crate) hash_key: u128,
    pub(crate) data: Bytes,
    pub(crate) accepted: Instant,
    pub(crate) deadline: Instant,
    pub(crate) linger_until: Instant,
    pub(crate) waiter: Waiter,
}

/// One Kinesis record as sent: a user record, or a KPL aggregate of several.
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) entry: v1::PutRecordsRequestEntry,
    pub(crate) hash_key: u128,
    pub(crate) waiters: Vec<Waiter>,
    pub(crate) aggregated: bool,
    pub(crate) order: u64,
    pub(crate) deadline: Instant,
    pub(crate) linger_until: Instant,
    pub(crate) not_before: Instant,
    pub(crate) attempts: u32,
    pub(crate) unknown_outcomes: u32,
    pub(crate) last_error: Option<(ErrorCode, String)>,
}

impl Unit {
    pub(crate) fn single(raw: Raw, producer_seq: Option<u64>) -> Unit {
        Unit {
            order: raw.waiter.order,
            entry: v1::PutRecordsRequestEntry {
                data: raw.data,
                partition_key: raw.partition_key,
                explicit_hash_key: raw.explicit_hash_key,
                producer_seq,
            },
            hash_key: raw.hash_key,
            waiters: vec![raw.waiter],
            aggregated: false,
            deadline: raw.deadline,
            linger_until: raw.linger_until,
            not_before: raw.accepted,
            attempts: 0,
            unknown_outcomes: 0,
            last_error: None,
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.entry.data.len() + self.entry.partition_key.len()
    }

    fn sort_key(&self) -> (Option<u64>, u64) {
        (self.entry.producer_seq, self.order)
    }
}

/// The aggregate a shard is filling.
#[derive(Debug)]
pub(crate) struct OpenAggregate {
    agg: Aggregator,
    waiters: Vec<Waiter>,
    hash_key: u128,
    accepted: Instant,
    deadline: Instant,
    linger_until: Instant,
}

impl OpenAggregate {
    fn seal(self, producer_seq: Option<u64>) -> Option<Unit> {
        let (partition_key, explicit_hash_key, data) = self.agg.finish()?;
        let order = self.waiters.first()?.order;
        Some(Unit {
            entry: v1::PutRecordsRequestEntry {
                data,
                partition_key,
                explicit_hash_key,
                producer_seq,
            },
            hash_key: self.hash_key,
            waiters: self.waiters,
            aggregated: true,
            order,
            deadline: self.deadline,
            linger_until: self.linger_until,
            not_before: self.accepted,
            attempts: 0,
            unknown_outcomes: 0,
            last_error: None,
        })
    }
}

/// Batch limits, from the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_records: usize,
    pub(crate) max_bytes: usize,
    pub(crate) aggregation_max_bytes: Option<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct ShardQueue {
    units: VecDeque<Unit>,
    bytes: usize,
    open: Option<OpenAggregate>,
}

impl ShardQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.units.is_empty() && self.open.is_none()
    }

    /// Queues a Kinesis record at its place in send order.
    pub(crate) fn insert(&mut self, unit: Unit) {
        self.bytes += unit.bytes();
        let key = unit.sort_key();
        let at = self.units.partition_point(|u| u.sort_key() <= key);
        self.units.insert(at, unit);
    }

    /// Queues a user record: into the open aggregate when aggregating and it fits, else as a
    /// Kinesis record of its own. `next_seq` numbers each record this seals.
    pub(crate) fn push(
        &mut self,
        raw: Raw,
        limits: Limits,
        next_seq: &mut dyn FnMut() -> Option<u64>,
    ) {
        let Some(max) = limits.aggregation_max_bytes else {
            self.insert(Unit::single(raw, next_seq()));
            return;
        };
        let ehk = raw.explicit_hash_key.as_deref();
        let fits_alone = Aggregator::new().size_with(&raw.partition_key, ehk, &raw.data) <= max;
        let fits_open = self
            .open
            .as_ref()
            .is_some_and(|o| o.agg.size_with(&raw.partition_key, ehk, &raw.data) <= max);
        if !fits_open {
            self.seal_open(next_seq);
        }
        if !fits_alone {
            // Aggregating it would only add framing: send it as is, after what came before.
            self.insert(Unit::single(raw, next_seq()));
            return;
        }
        let open = self.open.get_or_insert_with(|| OpenAggregate {
            agg: Aggregator::new(),
            waiters: Vec::new(),
            hash_key: raw.hash_key,
            accepted: raw.accepted,
            deadline: raw.deadline,
            linger_until: raw.linger_until,
        });
        open.agg.push(&raw.partition_key, ehk, raw.data);
        open.deadline = open.deadline.min(raw.deadline);
        open.waiters.push(raw.waiter);
    }

    fn seal_open(&mut self, next_seq: &mut dyn FnMut() -> Option<u64>) {
        if let Some(unit) = self.open.take().and_then(|o| o.seal(next_seq())) {
            self.insert(unit);
        }
    }

    /// When the next batch is due (`None`: nothing queued). A batch is due once its first
    /// record's backoff has passed and either a full batch is queued, a flush is pending, or
    /// the first record has lingered long enough.
    pub(crate) fn due_at(&self, limits: Limits, flushing: bool) -> Option<Instant> {
        let open_bytes = self.open.as_ref().map_or(0, |o| o.agg.size());
        let count = self.units.len() + usize::from(self.open.is_some());
        let full = count >= limits.max_records || self.bytes + open_bytes >= limits.max_bytes;
        let (linger_until, not_before) = match (self.units.front(), &self.open) {
            (Some(u), _) => (u.linger_until, u.not_before),
            (None, Some(o)) => (o.linger_until, o.accepted),
            (None, None) => return None,
        };
        Some(if full || flushing {
            not_before
        } else {
            not_before.max(linger_until)
        })
    }

    /// Takes the next batch from the front: records whose backoff has passed, in order, within
    /// the limits (always at least one record, so an oversized one still goes).
    pub(crate) fn take_batch(
        &mut self,
        now: Instant,
        limits: Limits,
        next_seq: &mut dyn FnMut() -> Option<u64>,
    ) -> Vec<Unit> {
        if self.units.len() < limits.max_records {
            self.seal_open(next_seq);
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(front) = self.units.front() {
            let fits = batch.is_empty()
                || (batch.len() < limits.max_records && bytes + front.bytes() <= limits.max_bytes);
            if front.not_before > now || !fits {
                break;
            }
            let Some(unit) = self.units.pop_front() else {
                break;
            };
            bytes += unit.bytes();
            self.bytes -= unit.bytes();
            batch.push(unit);
        }
        batch
    }

    /// Removes every record whose deadline has passed: whole Kinesis records, and the user
    /// records of an open aggregate.
    pub(crate) fn expire(&mut self, now: Instant) -> (Vec<Unit>, Vec<Waiter>) {
        let mut expired = Vec::new();
        let mut kept = VecDeque::with_capacity(self.units.len());
        for u in self.units.drain(..) {
            if u.deadline <= now {
                self.bytes -= u.bytes();
                expired.push(u);
            } else {
                kept.push_back(u);
            }
        }
        self.units = kept;
        let waiters = match self.open.take() {
            Some(o) if o.deadline <= now => o.waiters,
            other => {
                self.open = other;
                Vec::new()
            }
        };
        (expired, waiters)
    }

    /// Everything queued, as Kinesis records (the open aggregate sealed), for re-routing.
    pub(crate) fn drain(mut self, next_seq: &mut dyn FnMut() -> Option<u64>) -> Vec<Unit> {
        self.seal_open(next_seq);
        self.units.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    const LIMITS: Limits = Limits {
        max_records: 3,
        max_bytes: 1000,
        aggregation_max_bytes: None,
    };

    fn raw(
        order: u64,
        len: usize,
        now: Instant,
    ) -> (Raw, oneshot::Receiver<Result<Ack, ProducerError>>) {
        let (tx, rx) = oneshot::channel();
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let key = format!("k{order}");
        let raw = Raw {
            hash_key: streamd_proto::ids::HashKey::of_partition_key(&key).0,
            partition_key: key,
            explicit_hash_key: None,
            data: Bytes::from(vec![order as u8; len]),
            accepted: now,
            deadline: now + Duration::from_secs(10),
            linger_until: now + Duration::from_millis(50),
            waiter: Waiter { tx, permit, order },
        };
        (raw, rx)
    }

    fn no_seq() -> impl FnMut() -> Option<u64> {
        || None
    }

    #[test]
    fn a_batch_is_due_after_linger_or_when_full_and_keeps_order() {
        let now = Instant::now();
        let mut q = ShardQueue::default();
        assert_eq!(q.due_at(LIMITS, false), None);
        let mut rxs = Vec::new();
        for i in 0..2 {
            let (r, rx) = raw(i, 10, now);
            rxs.push(rx);
            q.push(r, LIMITS, &mut no_seq());
        }
        assert_eq!(
            q.due_at(LIMITS, false),
            Some(now + Duration::from_millis(50))
        );
        assert!(q.due_at(LIMITS, true).unwrap() <= now + Duration::from_millis(50));
        for i in 2..5 {
            let (r, rx) = raw(i, 10, now);
            rxs.push(rx);
            q.push(r, LIMITS, &mut no_seq());
        }
        // Full: due as soon as the first record's backoff allows (it has none yet).
        assert!(q.due_at(LIMITS, false).unwrap() <= now + Duration::from_millis(50));
        let later = now + Duration::from_millis(60);
        let b = q.take_batch(later, LIMITS, &mut no_seq());
        assert_eq!(b.iter().map(|u| u.order).collect::<Vec<_>>(), vec![0, 1, 2]);
        // A retried record goes back in front of newer ones.
        let first = b.into_iter().next().unwrap();
        q.insert(first);
        let b = q.take_batch(later, LIMITS, &mut no_seq());
        assert_eq!(b.iter().map(|u| u.order).collect::<Vec<_>>(), vec![0, 3, 4]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_record_in_backoff_holds_back_the_ones_behind_it() {
        let now = Instant::now();
        let mut q = ShardQueue::default();
        let (r, _rx0) = raw(0, 10, now);
        q.push(r, LIMITS, &mut no_seq());
        let mut u = q
            .take_batch(now + Duration::from_secs(1), LIMITS, &mut no_seq())
            .remove(0);
        let (r, _rx1) = raw(1, 10, now);
        q.push(r, LIMITS, &mut no_seq());
        u.not_before = now + Duration::from_secs(5);
        q.insert(u);
        assert!(
            q.take_batch(now + Duration::from_secs(2), LIMITS, &mut no_seq())
                .is_empty()
        );
        let b = q.take_batch(now + Duration::from_secs(5), LIMITS, &mut no_seq());
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn byte_limit_splits_batches_but_an_oversized_record_still_goes() {
        let now = Instant::now();
        let mut q = ShardQueue::default();
        let mut keep = Vec::new();
        for (i, len) in [(0, 600), (1, 600), (2, 2000)] {
            let (r, rx) = raw(i, len, now);
            keep.push(rx);
            q.push(r, LIMITS, &mut no_seq());
        }
        let t = now + Duration::from_secs(1);
        assert_eq!(q.take_batch(t, LIMITS, &mut no_seq()).len(), 1);
        assert_eq!(q.take_batch(t, LIMITS, &mut no_seq()).len(), 1);
        assert_eq!(q.take_batch(t, LIMITS, &mut no_seq()).len(), 1);
    }

    #[test]
    fn aggregation_packs_until_the_limit_and_numbers_sealed_records_in_order() {
        let now = Instant::now();
        let limits = Limits {
            aggregation_max_bytes: Some(200),
            ..LIMITS
        };
        let mut q = ShardQueue::default();
        let mut seq = 100u64;
        let mut next = || {
            seq += 1;
            Some(seq)
        };
        let mut keep = Vec::new();
        for i in 0..10 {
            let (r, rx) = raw(i, 40, now);
            keep.push(rx);
            q.push(r, limits, &mut next);
        }
        // An oversized record is sent on its own, after the aggregate before it.
        let (r, rx) = raw(10, 500, now);
        keep.push(rx);
        q.push(r, limits, &mut next);
        let units = q.drain(&mut next);
        assert!(units.len() >= 3);
        let seqs: Vec<u64> = units
            .iter()
            .map(|u| u.entry.producer_seq.unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let waiters: Vec<u64> = units
            .iter()
            .flat_map(|u| u.waiters.iter().map(|w| w.order))
            .collect();
        assert_eq!(waiters, (0..11).collect::<Vec<_>>());
        for u in &units[..units.len() - 1] {
            assert!(u.aggregated && u.bytes() <= 200, "{} bytes", u.bytes());
            let inner = crate::kpl::deaggregate(&u.entry.partition_key, &u.entry.data).unwrap();
            assert_eq!(inner.len(), u.waiters.len());
        }
        assert!(!units.last().unwrap().aggregated);
    }

    #[test]
    fn expired_records_are_removed() {
        let now = Instant::now();
        let mut q = ShardQueue::default();
        let (r, _rx) = raw(0, 10, now);
        q.push(r, LIMITS, &mut no_seq());
        let (units, waiters) = q.expire(now);
        assert!(units.is_empty() && waiters.is_empty());
        let (units, _) = q.expire(now + Duration::from_secs(11));
        assert_eq!(units.len(), 1);
        assert!(q.is_empty());
    }
}
