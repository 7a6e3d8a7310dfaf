//! What a [`crate::producer::Producer`] may buffer, batch and retry, checked once at creation.

use std::time::Duration;

use streamd_proto::limits::{MAX_PUT_RECORDS, MAX_RECORD_BYTES};

/// Largest PutRecords request the producer builds. The server accepts more; 5 MiB is Kinesis's
/// limit, so batches stay valid for a real Kinesis endpoint too.
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How long a shard's first buffered record waits for company before its batch is sent.
    pub linger: Duration,
    /// Records per PutRecords request (1 to 500).
    pub max_batch_records: usize,
    /// Bytes (data plus partition keys) per PutRecords request (up to 5 MiB).
    pub max_batch_bytes: usize,
    /// Bytes accepted but not yet acknowledged; `send` waits while this is used up.
    pub max_in_flight_bytes: usize,
    /// Requests to one shard at a time. 1 keeps a shard's records in send order across retries;
    /// more raises throughput per shard but a retried batch can land after a newer one.
    pub max_in_flight_per_shard: usize,
    /// Backoff between attempts of a record: exponential from `initial` to `max`, full jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long after `send` a record may still be retried; then it fails with the last error.
    pub record_deadline: Duration,
    /// Number every record with (producer id, producer_seq) so the server answers a retry of a
    /// record it already stored with the original sequence number. Forces
    /// `max_in_flight_per_shard` to 1.
    pub idempotent: bool,
    /// Pack user records bound for one shard into KPL aggregated records of up to this many
    /// bytes (`None`: one Kinesis record per user record).
    pub aggregation_max_bytes: Option<usize>,
    /// Send each batch straight to the node leading its shard (learned from ListShards and
    /// ClusterStatus). Off, every request goes through the client's own endpoints — a proxy,
    /// a load balancer, or one node whose gateway forwards.
    pub route_to_leaders: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(20),
            max_batch_records: MAX_PUT_RECORDS,
            max_batch_bytes: MAX_BATCH_BYTES,
            max_in_flight_bytes: 64 * 1024 * 1024,
            max_in_flight_per_shard: 1,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            record_deadline: Duration::from_secs(30),
            idempotent: false,
            aggregation_max_bytes: None,
            route_to_leaders: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid producer config: {0}")]
pub struct ConfigError(String);

impl ProducerConfig {
    /// The config the producer runs with: limits checked, idempotence's constraint applied.
    pub(crate) fn validated(mut self) -> Result<Self, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if !(1..=MAX_PUT_RECORDS).contains(&self.max_batch_records) {
            return bad(format!(
                "max_batch_records must be 1 to {MAX_PUT_RECORDS}, got {}",
                self.max_batch_records
            ));
        }
        if !(MAX_RECORD_BYTES..=MAX_BATCH_BYTES).contains(&self.max_batch_bytes) {
            return bad(format!(
                "max_batch_bytes must be {MAX_RECORD_BYTES} to {MAX_BATCH_BYTES}, got {}",
                self.max_batch_bytes
            ));
        }
        if self.max_in_flight_bytes < MAX_RECORD_BYTES {
            return bad(format!(
                "max_in_flight_bytes must hold at least one record of {MAX_RECORD_BYTES} bytes, got {}",
                self.max_in_flight_bytes
            ));
        }
        // The semaphore counts permits in u32.
        self.max_in_flight_bytes = self.max_in_flight_bytes.min(u32::MAX as usize >> 1);
        if self.max_in_flight_per_shard == 0 {
            return bad("max_in_flight_per_shard must be at least 1".into());
        }
        if self.initial_backoff.is_zero() || self.max_backoff < self.initial_backoff {
            return bad("backoff must satisfy 0 < initial_backoff <= max_backoff".into());
        }
        if let Some(n) = self.aggregation_max_bytes
            && !(64..=MAX_RECORD_BYTES).contains(&n)
        {
            return bad(format!(
                "aggregation_max_bytes must be 64 to {MAX_RECORD_BYTES}, got {n}"
            ));
        }
        if self.idempotent {
            self.max_in_flight_per_shard = 1;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_idempotence_forces_one_request_per_shard() {
        assert!(ProducerConfig::default().validated().is_ok());
        let c = ProducerConfig {
            idempotent: true,
            max_in_flight_per_shard: 8,
            ..ProducerConfig::default()
        }
        .validated()
        .unwrap();
        assert_eq!(c.max_in_flight_per_shard, 1);
    }

    #[test]
    fn limits_are_enforced() {
        let d = ProducerConfig::default;
        for bad in [
            ProducerConfig {
                max_batch_records: 0,
                ..d()
            },
            ProducerConfig {
                max_batch_records: 501,
                ..d()
            },
            ProducerConfig {
                max_batch_bytes: MAX_BATCH_BYTES + 1,
                ..d()
            },
            ProducerConfig {
                max_in_flight_bytes: 10,
                ..d()
            },
            ProducerConfig {
                max_in_flight_per_shard: 0,
                ..d()
            },
            ProducerConfig {
                initial_backoff: Duration::ZERO,
                ..d()
            },
            ProducerConfig {
                aggregation_max_bytes: Some(MAX_RECORD_BYTES + 1),
                ..d()
            },
        ] {
            assert!(bad.clone().validated().is_err(), "{bad:?}");
        }
    }
}
