//! What `streamd-bench` measures and how it reports: per-producer counters and an ack-latency
//! histogram (one sample per PutRecords call, in microseconds), merged into one [`Report`]
//! printed as text or written as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;
use streamd_proto::v1;

/// Largest latency the histogram holds: 10 minutes, in microseconds.
const MAX_LATENCY_US: u64 = 600_000_000;

pub use streamd_client::duration::parse_duration;

/// One producer's counts; producers' stats are merged at the end.
#[derive(Debug, Clone)]
pub struct ProducerStats {
    /// Latency of successful PutRecords calls, in microseconds.
    pub latency_us: Histogram<u64>,
    pub calls_ok: u64,
    pub calls_failed: u64,
    pub records_acked: u64,
    pub bytes_acked: u64,
    /// Records refused one by one inside a successful call.
    pub records_failed: u64,
    /// Records of failed calls: their outcome is unknown.
    pub records_unknown: u64,
    /// Error name (per-record `error_code`, or the call's error code) to count.
    pub errors: BTreeMap<String, u64>,
}

impl Default for ProducerStats {
    fn default() -> Self {
        ProducerStats {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant histogram bounds are valid"),
            calls_ok: 0,
            calls_failed: 0,
            records_acked: 0,
            bytes_acked: 0,
            records_failed: 0,
            records_unknown: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl ProducerStats {
    /// Counts a successful PutRecords call: `sizes[i]` is the data size of request record `i`.
    pub fn record_ok(&mut self, latency: Duration, resp: &v1::PutRecordsResponse, sizes: &[usize]) {
        self.calls_ok += 1;
        let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US);
        self.latency_us
            .saturating_record(us.clamp(1, MAX_LATENCY_US));
        for (i, r) in resp.records.iter().enumerate() {
            match (&r.sequence_number, &r.error_code) {
                (Some(_), None) => {
                    self.records_acked += 1;
                    self.bytes_acked += sizes.get(i).copied().unwrap_or(0) as u64;
                }
                (_, code) => {
                    self.records_failed += 1;
                    let name = code
                        .clone()
                        .unwrap_or_else(|| "MissingSequenceNumber".into());
                    *self.errors.entry(name).or_default() += 1;
                }
            }
        }
    }

    /// Counts one record sent through the batching producer: its send-to-ack latency, or why
    /// it failed.
    pub fn record_single(
        &mut self,
        done: Result<
            (
                Result<streamd_client::producer::Ack, streamd_client::producer::ProducerError>,
                Duration,
            ),
            tokio::task::JoinError,
        >,
        size: usize,
    ) {
        match done {
            Ok((Ok(_), latency)) => {
                let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US);
                self.latency_us
                    .saturating_record(us.clamp(1, MAX_LATENCY_US));
                self.records_acked += 1;
                self.bytes_acked += size as u64;
            }
            Ok((Err(e), _)) => {
                self.records_failed += 1;
                *self.errors.entry(e.code().name().to_string()).or_default() += 1;
            }
            Err(e) => {
                self.records_unknown += 1;
                *self.errors.entry(format!("task: {e}")).or_default() += 1;
            }
        }
    }

    /// Counts a failed PutRecords call of `records` records.
    pub fn record_failed_call(&mut self, error: &str, records: usize) {
        self.calls_failed += 1;
        self.records_unknown += records as u64;
        *self.errors.entry(error.to_string()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &ProducerStats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.calls_ok += other.calls_ok;
        self.calls_failed += other.calls_failed;
        self.records_acked += other.records_acked;
        self.bytes_acked += other.bytes_acked;
        self.records_failed += other.records_failed;
        self.records_unknown += other.records_unknown;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// The benchmark's settings as reported.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub nodes: u64,
    pub shards: u32,
    pub producers: usize,
    pub record_size: usize,
    pub batch: usize,
    pub duration: Duration,
    /// What one latency sample measures: "PutRecords" (a call) or a single record.
    pub latency_of: &'static str,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub config: BenchConfig,
    pub elapsed: Duration,
    pub stats: ProducerStats,
    /// Records read back, when `--verify` ran.
    pub verified_records: Option<u64>,
}

impl Report {
    pub fn records_per_sec(&self) -> f64 {
        self.stats.records_acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.stats.bytes_acked as f64 / 1_000_000.0 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Ack latency at quantile `q`, in milliseconds (0 when no call succeeded).
    pub fn latency_ms(&self, q: f64) -> f64 {
        if self.stats.latency_us.is_empty() {
            return 0.0;
        }
        self.stats.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.config;
        let s = &self.stats;
        json!({
            "config": {
                "nodes": c.nodes,
                "shards": c.shards,
                "producers": c.producers,
                "record_size": c.record_size,
                "batch": c.batch,
                "duration_s": c.duration.as_secs_f64(),
                "latency_of": c.latency_of,
            },
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_sec": self.records_per_sec(),
            "mb_per_sec": self.mb_per_sec(),
            "latency_ms": {
                "p50": self.latency_ms(0.50),
                "p99": self.latency_ms(0.99),
                "p999": self.latency_ms(0.999),
                "max": s.latency_us.max() as f64 / 1000.0,
            },
            "calls_ok": s.calls_ok,
            "calls_failed": s.calls_failed,
            "records_acked": s.records_acked,
            "bytes_acked": s.bytes_acked,
            "records_failed": s.records_failed,
            "records_unknown": s.records_unknown,
            "errors": s.errors,
            "verified_records": self.verified_records,
        })
    }

    pub fn to_text(&self) -> String {
        let s = &self.stats;
        let mut out = format!(
            "records/s: {:.0}\nMB/s: {:.2}\nack latency ms (per {}): p50 {:.2}  p99 {:.2}  \
             p999 {:.2}  max {:.2}\nacked: {} records, {} bytes in {:.1}s\ncalls: {} ok, {} failed\n\
             records refused: {}, of unknown outcome: {}\n",
            self.records_per_sec(),
            self.mb_per_sec(),
            self.config.latency_of,
            self.latency_ms(0.50),
            self.latency_ms(0.99),
            self.latency_ms(0.999),
            s.latency_us.max() as f64 / 1000.0,
            s.records_acked,
            s.bytes_acked,
            self.elapsed.as_secs_f64(),
            s.calls_ok,
            s.calls_failed,
            s.records_failed,
            s.records_unknown,
        );
        if s.errors.is_empty() {
            out.push_str("errors: none\n");
        } else {
            for (name, count) in &s.errors {
                out.push_str(&format!("error {name}: {count}\n"));
            }
        }
        if let Some(n) = self.verified_records {
            out.push_str(&format!("verified: {n} records read back\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(seq: &str) -> v1::PutRecordsResultEntry {
        v1::PutRecordsResultEntry {
            sequence_number: Some(seq.into()),
            shard_id: Some("shardId-000000000000".into()),
            error_code: None,
            error_message: None,
        }
    }

    fn refused(code: &str) -> v1::PutRecordsResultEntry {
        v1::PutRecordsResultEntry {
            sequence_number: None,
            shard_id: None,
            error_code: Some(code.into()),
            error_message: Some("slow down".into()),
        }
    }

    #[test]
    fn counts_merge_and_report() {
        let mut a = ProducerStats::default();
        let resp = v1::PutRecordsResponse {
            failed_record_count: 1,
            records: vec![
                ok("1"),
                refused("ProvisionedThroughputExceededException"),
                ok("2"),
            ],
            encryption_type: "NONE".into(),
        };
        a.record_ok(Duration::from_millis(2), &resp, &[10, 20, 30]);
        let mut b = ProducerStats::default();
        b.record_ok(Duration::from_millis(4), &resp, &[10, 20, 30]);
        b.record_failed_call("ServiceUnavailable", 3);
        a.merge(&b);
        assert_eq!((a.calls_ok, a.calls_failed), (2, 1));
        assert_eq!((a.records_acked, a.bytes_acked), (4, 80));
        assert_eq!((a.records_failed, a.records_unknown), (2, 3));
        assert_eq!(a.errors["ProvisionedThroughputExceededException"], 2);
        assert_eq!(a.errors["ServiceUnavailable"], 1);
        let report = Report {
            config: BenchConfig {
                nodes: 3,
                shards: 1,
                producers: 2,
                record_size: 10,
                batch: 3,
                duration: Duration::from_secs(2),
                latency_of: "PutRecords",
            },
            elapsed: Duration::from_secs(2),
            stats: a,
            verified_records: Some(4),
        };
        assert!((report.records_per_sec() - 2.0).abs() < 1e-9);
        let p50 = report.latency_ms(0.5);
        assert!((1.9..=2.1).contains(&p50), "{p50}");
        let j = report.to_json();
        assert_eq!(j["records_acked"], 4);
        assert_eq!(j["errors"]["ServiceUnavailable"], 1);
        assert_eq!(j["verified_records"], 4);
        let text = report.to_text();
        assert!(text.contains("records/s: 2"), "{text}");
        assert!(text.contains("error ServiceUnavailable: 1"), "{text}");
    }
}
