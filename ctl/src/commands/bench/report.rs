//! What a benchmark measured, printed as text or written as JSON (`--json FILE`). Field names are
//! part of the JSON contract; MB is 10^6 bytes of record data; latencies are in milliseconds.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency a histogram holds: 10 minutes, in microseconds.
const MAX_LATENCY_US: u64 = 600_000_000;

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Records one latency sample, clamped into the histogram's range.
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(MAX_LATENCY_US);
    h.saturating_record(us.clamp(1, MAX_LATENCY_US));
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    pub(crate) samples: u64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

pub(crate) fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        samples: h.len(),
        p50: ms(h.value_at_quantile(0.50)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1000.0,
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Throughput {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) records_per_sec: f64,
    pub(crate) mb_per_sec: f64,
    /// Calls made (PutRecords or GetRecords) and calls that failed.
    pub(crate) calls: u64,
    pub(crate) failed_calls: u64,
    /// Records refused one by one (produce only).
    pub(crate) failed_records: u64,
    /// Per call: PutRecords send to acknowledgement, or GetRecords send to reply.
    pub(crate) call_latency_ms: Latency,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn throughput(
    records: u64,
    bytes: u64,
    elapsed: Duration,
    calls: u64,
    failed_calls: u64,
    failed_records: u64,
    h: &Histogram<u64>,
) -> Throughput {
    let secs = elapsed.as_secs_f64().max(1e-9);
    Throughput {
        records,
        bytes,
        seconds: elapsed.as_secs_f64(),
        records_per_sec: records as f64 / secs,
        mb_per_sec: bytes as f64 / secs / 1e6,
        calls,
        failed_calls,
        failed_records,
        call_latency_ms: latency(h),
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) mode: &'static str,
    pub(crate) stream: String,
    pub(crate) shards: u32,
    pub(crate) concurrency: usize,
    pub(crate) record_size: usize,
    pub(crate) batch_size: usize,
    pub(crate) produce: Option<Throughput>,
    pub(crate) consume: Option<Throughput>,
    /// e2e only: from the put being sent to the record being read.
    pub(crate) end_to_end_latency_ms: Option<Latency>,
    /// Error name to count, calls and records together.
    pub(crate) errors: BTreeMap<String, u64>,
}

fn latency_line(l: &Latency) -> String {
    format!(
        "p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  max {:.2} ms  ({} samples)",
        l.p50, l.p99, l.p999, l.max, l.samples
    )
}

fn throughput_lines(what: &str, latency_name: &str, t: &Throughput) -> String {
    let mut s = format!(
        "{what}: {} records, {:.1} MB in {:.1} s: {:.0} records/s, {:.2} MB/s\n  {latency_name}: {}\n  calls: {} ({} failed)",
        t.records,
        t.bytes as f64 / 1e6,
        t.seconds,
        t.records_per_sec,
        t.mb_per_sec,
        latency_line(&t.call_latency_ms),
        t.calls,
        t.failed_calls,
    );
    if t.failed_records > 0 {
        s += &format!(", records refused: {}", t.failed_records);
    }
    s + "\n"
}

pub(crate) fn report_text(r: &Report) -> String {
    let mut s = format!(
        "bench {}: stream {}, {} shards, concurrency {}, {} B records, {} per call\n",
        r.mode, r.stream, r.shards, r.concurrency, r.record_size, r.batch_size
    );
    if let Some(p) = &r.produce {
        s += &throughput_lines("produce", "ack latency", p);
    }
    if let Some(c) = &r.consume {
        s += &throughput_lines("consume", "GetRecords latency", c);
    }
    if let Some(l) = &r.end_to_end_latency_ms {
        s += &format!("end-to-end latency: {}\n", latency_line(l));
    }
    if !r.errors.is_empty() {
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        s += &format!("errors: {}\n", errors.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_quantiles() {
        let mut h = histogram();
        for ms in 1..=1000u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let t = throughput(2000, 2_000_000, Duration::from_secs(2), 20, 1, 0, &h);
        assert_eq!(t.records_per_sec, 1000.0);
        assert_eq!(t.mb_per_sec, 1.0);
        assert!(
            (t.call_latency_ms.p50 - 500.0).abs() < 2.0,
            "{:?}",
            t.call_latency_ms
        );
        assert!(t.call_latency_ms.p999 >= t.call_latency_ms.p99);
        let r = Report {
            mode: "produce",
            stream: "s".into(),
            shards: 1,
            concurrency: 1,
            record_size: 1024,
            batch_size: 100,
            produce: Some(t),
            consume: None,
            end_to_end_latency_ms: None,
            errors: BTreeMap::new(),
        };
        let text = report_text(&r);
        assert!(text.contains("1000 records/s, 1.00 MB/s"), "{text}");
        assert!(text.contains("p99"), "{text}");
    }

    #[test]
    fn out_of_range_samples_are_clamped() {
        let mut h = histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(100_000));
        assert_eq!(h.len(), 2);
    }
}
