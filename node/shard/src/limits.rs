//! Per-shard write throughput limits, enforced by the leader before it proposes.
//!
//! Records and bytes are counted per one-second window, as Kinesis documents its per-shard
//! limits.

use std::time::{Duration, Instant};

use streamd_proto::limits::{
    SHARD_READ_BYTES_PER_SEC, SHARD_READ_CALLS_PER_SEC, SHARD_WRITE_BYTES_PER_SEC,
    SHARD_WRITE_RECORDS_PER_SEC,
};

/// Whether per-shard limits apply (`--shard-limits kinesis|off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardLimits {
    Kinesis,
    Off,
}

/// Counts a shard's writes per one-second window. Kinesis states its limits per second, and a
/// fixed window refuses what goes over within that second rather than letting a continuous
/// refill admit a trickle at once.
#[derive(Debug)]
pub(crate) struct WriteBudget {
    window_start: Instant,
    bytes: u64,
    records: u64,
}

impl WriteBudget {
    pub(crate) fn new() -> Self {
        WriteBudget {
            window_start: Instant::now(),
            bytes: 0,
            records: 0,
        }
    }

    /// Takes budget for one record of `bytes`; false when the shard is over its limit.
    pub(crate) fn take(&mut self, bytes: usize) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.bytes = 0;
            self.records = 0;
        }
        let bytes = bytes as u64;
        // A record larger than a second's byte budget (streams may allow up to 10 MiB) still goes
        // through when it is the window's first: the shard bursts for it, as Kinesis does.
        let fits = self.bytes + bytes <= SHARD_WRITE_BYTES_PER_SEC || self.bytes == 0;
        if self.records < SHARD_WRITE_RECORDS_PER_SEC && fits {
            self.records += 1;
            self.bytes += bytes;
            true
        } else {
            false
        }
    }
}

/// A shard's read allowance on the replica serving it: at most five GetRecords calls per
/// one-second window, and 2 MiB/s of data as a balance that a large read may take below zero, so
/// after a 10 MiB read the shard refuses reads for about five seconds, as Kinesis does.
#[derive(Debug)]
pub(crate) struct ReadBudget {
    window_start: Instant,
    calls: u64,
    balance: f64,
    last_refill: Instant,
}

impl ReadBudget {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        ReadBudget {
            window_start: now,
            calls: 0,
            balance: SHARD_READ_BYTES_PER_SEC as f64,
            last_refill: now,
        }
    }

    /// Admits one GetRecords call, or refuses it when the shard is over its read limits.
    pub(crate) fn admit_call(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.calls = 0;
        }
        let refill =
            now.duration_since(self.last_refill).as_secs_f64() * SHARD_READ_BYTES_PER_SEC as f64;
        self.balance = (self.balance + refill).min(SHARD_READ_BYTES_PER_SEC as f64);
        self.last_refill = now;
        if self.calls >= SHARD_READ_CALLS_PER_SEC || self.balance < 0.0 {
            return false;
        }
        self.calls += 1;
        true
    }

    /// Charges the bytes an admitted call returned.
    pub(crate) fn charge(&mut self, bytes: usize) {
        self.balance -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_second_of_records_then_refusal() {
        let mut b = WriteBudget::new();
        let ok = (0..1500).filter(|_| b.take(10)).count();
        assert_eq!(ok, 1000);
    }

    #[test]
    fn bytes_limit_applies() {
        let mut b = WriteBudget::new();
        assert!(b.take(1024 * 1024));
        assert!(!b.take(1024));
        // A record over the byte budget passes alone in a fresh window.
        let mut b = WriteBudget::new();
        assert!(b.take(3 * 1024 * 1024));
        assert!(!b.take(1));
    }

    #[test]
    fn five_reads_a_second_and_large_reads_borrow_ahead() {
        let mut b = ReadBudget::new();
        let admitted = (0..8).filter(|_| b.admit_call()).count();
        assert_eq!(admitted, 5);
        let mut b = ReadBudget::new();
        assert!(b.admit_call());
        b.charge(10 * 1024 * 1024);
        assert!(
            !b.admit_call(),
            "a 10 MiB read leaves the shard over its read budget"
        );
    }
}
