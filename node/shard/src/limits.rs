//! Per-shard write throughput limits, enforced by the leader before it proposes.
//!
//! A token bucket per dimension (bytes, records) refilled continuously, holding at most one
//! second's worth, as Kinesis documents its per-shard limits.

use std::time::Instant;

use streamd_proto::limits::{SHARD_WRITE_BYTES_PER_SEC, SHARD_WRITE_RECORDS_PER_SEC};

/// Whether per-shard limits apply (`--shard-limits kinesis|off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardLimits {
    Kinesis,
    Off,
}

#[derive(Debug)]
pub(crate) struct WriteBudget {
    bytes: f64,
    records: f64,
    last: Instant,
}

impl WriteBudget {
    pub(crate) fn new() -> Self {
        WriteBudget {
            bytes: SHARD_WRITE_BYTES_PER_SEC as f64,
            records: SHARD_WRITE_RECORDS_PER_SEC as f64,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.bytes = (self.bytes + dt * SHARD_WRITE_BYTES_PER_SEC as f64)
            .min(SHARD_WRITE_BYTES_PER_SEC as f64);
        self.records = (self.records + dt * SHARD_WRITE_RECORDS_PER_SEC as f64)
            .min(SHARD_WRITE_RECORDS_PER_SEC as f64);
    }

    /// Takes budget for one record of `bytes`; false when the shard is over its limit.
    pub(crate) fn take(&mut self, bytes: usize) -> bool {
        self.refill();
        if self.records >= 1.0 && self.bytes >= bytes as f64 {
            self.records -= 1.0;
            self.bytes -= bytes as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_second_of_records_then_refusal() {
        let mut b = WriteBudget::new();
        let ok = (0..1500).filter(|_| b.take(10)).count();
        // A little refill can happen while the loop runs.
        assert!((1000..1010).contains(&ok), "{ok}");
    }

    #[test]
    fn bytes_limit_applies() {
        let mut b = WriteBudget::new();
        assert!(b.take(1024 * 1024));
        assert!(!b.take(1024));
    }
}
