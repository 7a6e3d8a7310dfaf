//! The loops benchmarks run: producers (PutRecords) and per-shard readers (GetRecords), each
//! with its own counters and histograms, merged when they finish. Hot path: no output, no locks;
//! the only shared state is an atomic counter for the progress bar.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use streamd_client::{ErrorCode, StreamdClient};
use streamd_proto::limits::MAX_GET_RECORDS;
use tokio::time::Instant;

use super::report::{histogram, record};

/// e2e records start with their send time: microseconds since the Unix epoch, big-endian.
pub(crate) const STAMP_BYTES: usize = 8;

/// Pause after a failed call, so a refusing cluster is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Pause after an empty page while following the tip.
const IDLE_POLL: Duration = Duration::from_millis(10);

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// When a producer stops.
#[derive(Clone)]
pub(crate) enum Budget {
    Until(Instant),
    /// Records left to send, shared by all producers.
    Records(Arc<AtomicU64>),
}

impl Budget {
    /// Records the next call may carry; 0 means stop.
    fn claim(&self, batch: usize) -> usize {
        match self {
            Budget::Until(t) => {
                if Instant::now() >= *t {
                    0
                } else {
                    batch
                }
            }
            Budget::Records(left) => {
                let want = batch as u64;
                let mut cur = left.load(Ordering::Relaxed);
                loop {
                    let take = cur.min(want);
                    if take == 0 {
                        return 0;
                    }
                    match left.compare_exchange(
                        cur,
                        cur - take,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return take as usize,
                        Err(now) => cur = now,
                    }
                }
            }
        }
    }
}

/// Counts of one worker (or of all, once merged).
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    /// Per call, microseconds.
    pub(crate) call_latency: Histogram<u64>,
    /// e2e readers: put sent to record read, microseconds.
    pub(crate) e2e_latency: Histogram<u64>,
    pub(crate) calls: u64,
    pub(crate) failed_calls: u64,
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) failed_records: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            call_latency: histogram(),
            e2e_latency: histogram(),
            calls: 0,
            failed_calls: 0,
            records: 0,
            bytes: 0,
            failed_records: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub(crate) fn merge(&mut self, other: &Stats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.call_latency.add(&other.call_latency);
        let _ = self.e2e_latency.add(&other.e2e_latency);
        self.calls += other.calls;
        self.failed_calls += other.failed_calls;
        self.records += other.records;
        self.bytes += other.bytes;
        self.failed_records += other.failed_records;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    fn error(&mut self, name: &str) {
        *self.errors.entry(name.to_string()).or_default() += 1;
    }
}

/// What every producer sends.
#[derive(Clone)]
pub(crate) struct ProducerSpec {
    pub(crate) client: StreamdClient,
    pub(crate) stream: String,
    pub(crate) record_size: usize,
    pub(crate) batch_size: usize,
    /// Prefix records with their send time (e2e).
    pub(crate) stamp: bool,
    /// Acknowledged records so far, for the progress bar.
    pub(crate) acked: Arc<AtomicU64>,
}

/// One producer: one call in flight at a time until the budget runs out. Partition keys are
/// `<worker>-<n>`: distinct, so MD5 spreads them evenly over the shards.
pub(crate) async fn producer(spec: ProducerSpec, worker: usize, budget: Budget) -> Stats {
    let mut stats = Stats::default();
    let payload: Vec<u8> = (0..spec.record_size).map(|_| rand::random()).collect();
    let fixed = Bytes::from(payload.clone());
    let mut n = 0u64;
    loop {
        let count = budget.claim(spec.batch_size);
        if count == 0 {
            return stats;
        }
        // One buffer per call, shared by its records (Bytes clones are reference counts).
        let data = if spec.stamp {
            let mut b = BytesMut::with_capacity(spec.record_size);
            b.put_u64(now_micros());
            b.put_slice(&payload[STAMP_BYTES..]);
            b.freeze()
        } else {
            fixed.clone()
        };
        let entries: Vec<_> = (0..count)
            .map(|_| {
                n += 1;
                streamd_client::client::entry(format!("{worker}-{n}"), data.clone())
            })
            .collect();
        let sent = Instant::now();
        stats.calls += 1;
        match spec.client.put_records(&spec.stream, entries).await {
            Ok(resp) => {
                record(&mut stats.call_latency, sent.elapsed());
                let mut ok = 0;
                for r in &resp.records {
                    match &r.error_code {
                        Some(code) => {
                            stats.failed_records += 1;
                            stats.error(code);
                        }
                        None => ok += 1,
                    }
                }
                stats.records += ok;
                stats.bytes += ok * spec.record_size as u64;
                spec.acked.fetch_add(ok, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed_calls += 1;
                stats.error(e.code().name());
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

/// When a reader stops.
#[derive(Clone)]
pub(crate) enum ReadUntil {
    /// At the first empty page at the tip (or the end of a closed shard).
    CaughtUp,
    /// After `stop` is set, at the first empty page at the tip.
    Stopped(Arc<AtomicBool>),
}

/// One shard's reader from `iterator`. With `stamped`, measures each record's end-to-end latency.
pub(crate) async fn reader(
    client: StreamdClient,
    mut iterator: String,
    until: ReadUntil,
    stamped: bool,
    read: Arc<AtomicU64>,
) -> Stats {
    let mut stats = Stats::default();
    loop {
        let sent = Instant::now();
        stats.calls += 1;
        let page = match client.get_records(&iterator, Some(MAX_GET_RECORDS)).await {
            Ok(page) => page,
            Err(e) => {
                stats.failed_calls += 1;
                stats.error(e.code().name());
                // Anything but a refusal or a lost node will not get better by waiting.
                if !e.retryable() && e.code() != ErrorCode::ProvisionedThroughputExceeded {
                    return stats;
                }
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        record(&mut stats.call_latency, sent.elapsed());
        let now = now_micros();
        for r in &page.records {
            stats.records += 1;
            stats.bytes += r.data.len() as u64;
            if stamped && r.data.len() >= STAMP_BYTES {
                let mut ts = [0u8; STAMP_BYTES];
                ts.copy_from_slice(&r.data[..STAMP_BYTES]);
                let put_at = u64::from_be_bytes(ts);
                record(
                    &mut stats.e2e_latency,
                    Duration::from_micros(now.saturating_sub(put_at)),
                );
            }
        }
        read.fetch_add(page.records.len() as u64, Ordering::Relaxed);
        let idle = page.records.is_empty() && page.millis_behind_latest == 0;
        let done = match &until {
            ReadUntil::CaughtUp => idle,
            ReadUntil::Stopped(stop) => idle && stop.load(Ordering::Relaxed),
        };
        match page.next_shard_iterator {
            Some(next) if !done && !next.is_empty() => iterator = next,
            _ => return stats,
        }
        if idle {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_budget_is_shared_exactly() {
        let b = Budget::Records(Arc::new(AtomicU64::new(250)));
        assert_eq!(b.claim(100), 100);
        assert_eq!(b.claim(100), 100);
        assert_eq!(b.claim(100), 50);
        assert_eq!(b.claim(100), 0);
    }

    #[test]
    fn stats_merge() {
        let mut a = Stats::default();
        let mut b = Stats {
            records: 3,
            ..Stats::default()
        };
        b.error("X");
        record(&mut b.call_latency, Duration::from_millis(2));
        a.merge(&b);
        a.merge(&b);
        assert_eq!(a.records, 6);
        assert_eq!(a.errors["X"], 2);
        assert_eq!(a.call_latency.len(), 2);
    }
}
