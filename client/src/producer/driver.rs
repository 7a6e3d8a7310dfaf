//! The producer's one background task. It owns every stream's shard map and queues, so no
//! lock guards them: `send` hands records over a channel, batch results and map refreshes come
//! back through join sets, and a timer wakes it when the next batch is due.
//!
//! Hot path: runs once per accepted record and per batch result. No blocking calls, no
//! per-record logging, no awaiting a request inline (requests run as their own tasks).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use streamd_proto::{ErrorCode, v1};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::producer::queue::{Limits, Raw, ShardQueue, Unit, Waiter};
use crate::producer::retry::{
    Failure, backoff, classify, classify_call, entry_code, refreshes_map,
};
use crate::producer::shard_map::ShardMap;
use crate::producer::stats::{Counters, bump};
use crate::producer::{Ack, ProducerConfig, ProducerError};
use crate::{ClientError, StreamdClient};

/// Shortest pause between two refreshes of one stream's map, so a burst of NotLeader answers
/// costs one refresh.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(200);
/// How often records waiting in queues are checked against their deadlines.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);
/// Commands taken from the channel before the driver looks at its queues again.
const INTAKE_BURST: usize = 1024;

pub(crate) enum Command {
    Record(Incoming),
    /// Resolves once every record accepted before it is resolved.
    Flush(oneshot::Sender<()>),
    /// Exit once nothing is outstanding.
    Stop,
}

/// A record `send` accepted, with its share of the byte budget.
pub(crate) struct Incoming {
    pub(crate) stream: Arc<str>,
    pub(crate) partition_key: String,
    pub(crate) explicit_hash_key: Option<String>,
    pub(crate) hash_key: u128,
    pub(crate) data: Bytes,
    pub(crate) accepted: Instant,
    pub(crate) deadline: Instant,
    pub(crate) tx: oneshot::Sender<Result<Ack, ProducerError>>,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// Records that cannot be placed in a shard queue yet (no map, or the map has a gap).
enum Unrouted {
    Raw(Raw),
    Unit(Unit),
}

impl Unrouted {
    fn deadline(&self) -> Instant {
        match self {
            Unrouted::Raw(r) => r.deadline,
            Unrouted::Unit(u) => u.deadline,
        }
    }
}

#[derive(Default)]
struct Refresh {
    running: bool,
    wanted: bool,
    last: Option<Instant>,
}

#[derive(Default)]
struct StreamState {
    map: Option<ShardMap>,
    unrouted: Vec<Unrouted>,
    queues: HashMap<String, ShardQueue>,
    in_flight: HashMap<String, usize>,
    refresh: Refresh,
}

impl StreamState {
    /// After a split or merge, nothing is sent until the batches sent to shards the new map no
    /// longer has are answered: a record retried from one of them must not land in a child
    /// behind records sent to the child since (order, and an idempotent producer's numbers,
    /// which a shard takes in increasing order only).
    fn held(&self) -> bool {
        self.map.as_ref().is_some_and(|m| {
            self.in_flight
                .iter()
                .any(|(shard, n)| *n > 0 && m.shard(shard).is_none())
        })
    }

    fn has_work(&self) -> bool {
        !self.unrouted.is_empty()
            || !self.queues.is_empty()
            || self.in_flight.values().any(|n| *n > 0)
    }
}

struct BatchOutcome {
    stream: Arc<str>,
    shard_id: String,
    /// The node the batch went to, when it was sent to a leader directly.
    target: Option<u64>,
    units: Vec<Unit>,
    result: Result<v1::PutRecordsResponse, ClientError>,
}

type RefreshOutcome = (Arc<str>, Result<ShardMap, ClientError>);

/// Numbers Kinesis records for an idempotent producer; hands out nothing otherwise.
struct SeqCounter {
    enabled: bool,
    next: u64,
}

impl SeqCounter {
    fn next(&mut self) -> Option<u64> {
        self.enabled.then(|| {
            self.next += 1;
            self.next
        })
    }
}

pub(crate) struct Driver {
    client: StreamdClient,
    node_clients: HashMap<String, StreamdClient>,
    config: ProducerConfig,
    limits: Limits,
    producer_id: Option<u64>,
    counters: Arc<Counters>,
    streams: HashMap<Arc<str>, StreamState>,
    seq: SeqCounter,
    next_order: u64,
    /// Acceptance order of every user record not yet resolved.
    outstanding: BTreeSet<u64>,
    /// Flushes waiting for every record accepted before `mark` to resolve.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    batches: JoinSet<BatchOutcome>,
    refreshes: JoinSet<RefreshOutcome>,
    stopping: bool,
    last_sweep: Instant,
}

impl Driver {
    pub(crate) fn new(
        client: StreamdClient,
        config: ProducerConfig,
        producer_id: Option<u64>,
        counters: Arc<Counters>,
    ) -> Driver {
        Driver {
            client,
            node_clients: HashMap::new(),
            limits: Limits {
                max_records: config.max_batch_records,
                max_bytes: config.max_batch_bytes,
                aggregation_max_bytes: config.aggregation_max_bytes,
            },
            seq: SeqCounter {
                enabled: producer_id.is_some(),
                next: 0,
            },
            config,
            producer_id,
            counters,
            streams: HashMap::new(),
            next_order: 0,
            outstanding: BTreeSet::new(),
            flushes: Vec::new(),
            batches: JoinSet::new(),
            refreshes: JoinSet::new(),
            stopping: false,
            last_sweep: Instant::now(),
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut open = true;
        loop {
            let now = Instant::now();
            if now >= self.last_sweep + SWEEP_INTERVAL {
                self.expire(now);
                self.last_sweep = now;
            }
            self.start_refreshes(now);
            self.dispatch(now);
            self.check_flushes();
            if (self.stopping || !open) && self.outstanding.is_empty() && self.batches.is_empty() {
                return;
            }
            let wake = self.next_wake(now);
            tokio::select! {
                cmd = rx.recv(), if open => match cmd {
                    Some(cmd) => {
                        self.command(cmd);
                        for _ in 0..INTAKE_BURST {
                            match rx.try_recv() {
                                Ok(cmd) => self.command(cmd),
                                Err(_) => break,
                            }
                        }
                    }
                    None => open = false,
                },
                Some(done) = self.batches.join_next(), if !self.batches.is_empty() => {
                    match done {
                        Ok(outcome) => self.batch_done(outcome),
                        // A request task cannot panic short of a bug; its records would hang.
                        Err(e) => tracing::error!(error = %e, "producer request task failed"),
                    }
                }
                Some(done) = self.refreshes.join_next(), if !self.refreshes.is_empty() => {
                    if let Ok((stream, result)) = done {
                        self.refresh_done(stream, result);
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Record(r) => self.accept(r),
            Command::Flush(tx) => self.flushes.push((self.next_order, tx)),
            Command::Stop => self.stopping = true,
        }
    }

    fn accept(&mut self, r: Incoming) {
        let order = self.next_order;
        self.next_order += 1;
        self.outstanding.insert(order);
        let raw = Raw {
            partition_key: r.partition_key,
            explicit_hash_key: r.explicit_hash_key,
            hash_key: r.hash_key,
            data: r.data,
            accepted: r.accepted,
            deadline: r.deadline,
            linger_until: r.accepted + self.config.linger,
            waiter: Waiter {
                tx: r.tx,
                permit: r.permit,
                order,
            },
        };
        let stream = r.stream;
        if self.limits.aggregation_max_bytes.is_none() {
            // Numbered on acceptance, so the number follows send order and never changes.
            let unit = Unit::single(raw, self.seq.next());
            self.route(&stream, Unrouted::Unit(unit));
        } else {
            self.route(&stream, Unrouted::Raw(raw));
        }
    }

    /// Puts a record into the queue of the shard that owns its hash key, or aside until a map
    /// covers it.
    fn route(&mut self, stream: &Arc<str>, item: Unrouted) {
        let st = self.streams.entry(stream.clone()).or_default();
        let hash_key = match &item {
            Unrouted::Raw(r) => r.hash_key,
            Unrouted::Unit(u) => u.hash_key,
        };
        let shard = st
            .map
            .as_ref()
            .and_then(|m| m.shard_for(hash_key))
            .map(|s| s.shard_id.clone());
        let Some(shard) = shard else {
            st.unrouted.push(item);
            st.refresh.wanted = true;
            return;
        };
        let q = st.queues.entry(shard).or_default();
        match item {
            Unrouted::Raw(r) => q.push(r, self.limits, &mut || self.seq.next()),
            Unrouted::Unit(u) => q.insert(u),
        }
    }

    /// Sends every batch that is due, within each shard's in-flight limit.
    fn dispatch(&mut self, now: Instant) {
        let flushing = !self.flushes.is_empty() || self.stopping;
        let mut ready = Vec::new();
        for (stream, st) in &mut self.streams {
            if st.held() {
                continue;
            }
            for (shard, q) in &mut st.queues {
                let in_flight = st.in_flight.entry(shard.clone()).or_default();
                while *in_flight < self.config.max_in_flight_per_shard
                    && q.due_at(self.limits, flushing).is_some_and(|t| t <= now)
                {
                    let batch = q.take_batch(now, self.limits, &mut || self.seq.next());
                    if batch.is_empty() {
                        break;
                    }
                    *in_flight += 1;
                    ready.push((stream.clone(), shard.clone(), batch));
                }
            }
            st.queues.retain(|_, q| !q.is_empty());
        }
        for (stream, shard, batch) in ready {
            self.send(stream, shard, batch);
        }
    }

    fn send(&mut self, stream: Arc<str>, shard_id: String, mut units: Vec<Unit>) {
        let leader = self
            .config
            .route_to_leaders
            .then(|| {
                self.streams
                    .get(&stream)
                    .and_then(|st| st.map.as_ref())
                    .and_then(|m| m.leader_address(&shard_id))
                    .map(|(node, addr)| (node, addr.to_string()))
            })
            .flatten();
        let (target, client) =
            match leader.and_then(|(node, addr)| self.node_client(&addr).map(|c| (node, c))) {
                Some((node, c)) => (Some(node), c),
                None => (None, self.client.clone()),
            };
        let mut bytes = 0;
        let records = units
            .iter_mut()
            .map(|u| {
                u.attempts += 1;
                bytes += u.bytes();
                u.entry.clone()
            })
            .collect::<Vec<_>>();
        let span = tracing::debug_span!(
            "producer.put_batch",
            stream = %stream,
            shard_id = %shard_id,
            node = ?target,
            records = records.len(),
            bytes,
        );
        let req = v1::PutRecordsRequest {
            stream_name: stream.to_string(),
            records,
            producer_id: self.producer_id,
        };
        bump(&self.counters.batches, 1);
        if target.is_some() {
            bump(&self.counters.batches_to_leader, 1);
        }
        self.batches.spawn(
            async move {
                let result = client.put_records_request(req).await;
                BatchOutcome {
                    stream,
                    shard_id,
                    target,
                    units,
                    result,
                }
            }
            .instrument(span),
        );
    }

    /// A client for one node's address, made once and kept.
    fn node_client(&mut self, addr: &str) -> Option<StreamdClient> {
        if let Some(c) = self.node_clients.get(addr) {
            return Some(c.clone());
        }
        let c = StreamdClient::connect_with(&[addr.to_string()], self.client.options().clone())
            .map_err(|e| tracing::warn!(addr, error = %e, "leader address unusable"))
            .ok()?;
        self.node_clients.insert(addr.to_string(), c.clone());
        Some(c)
    }

    fn batch_done(&mut self, o: BatchOutcome) {
        let now = Instant::now();
        if let Some(st) = self.streams.get_mut(&o.stream)
            && let Some(n) = st.in_flight.get_mut(&o.shard_id)
        {
            *n = n.saturating_sub(1);
        }
        match o.result {
            Err(e) => {
                bump(&self.counters.failed_batches, 1);
                let code = e.code();
                tracing::debug!(stream = %o.stream, shard_id = %o.shard_id, error = %e, "batch failed");
                self.note_failure(&o.stream, &o.shard_id, o.target, code);
                let message = e.to_string();
                let failure = classify_call(&e);
                for u in o.units {
                    self.failed_attempt(&o.stream, u, code, failure, message.clone(), now);
                }
            }
            Ok(resp) if resp.records.len() != o.units.len() => {
                let message = format!(
                    "PutRecords answered {} results for {} records",
                    resp.records.len(),
                    o.units.len()
                );
                for u in o.units {
                    let code = ErrorCode::InternalFailure;
                    self.failed_attempt(&o.stream, u, code, classify(code), message.clone(), now);
                }
            }
            Ok(resp) => {
                let last_written = resp
                    .records
                    .iter()
                    .rposition(|r| r.sequence_number.is_some());
                for (i, (mut u, r)) in o.units.into_iter().zip(resp.records).enumerate() {
                    match (r.sequence_number, r.shard_id) {
                        (Some(seq), Some(shard)) => {
                            if shard != o.shard_id {
                                // Written, but not where our map said: the map is stale.
                                self.want_refresh(&o.stream);
                            }
                            self.acked(u, shard, seq);
                        }
                        _ => {
                            let code = entry_code(r.error_code.as_deref().unwrap_or(""));
                            self.note_failure(&o.stream, &o.shard_id, o.target, code);
                            let message = r.error_message.unwrap_or_default();
                            let failure = classify(code);
                            if failure == Failure::NotWritten
                                && last_written.is_some_and(|w| w > i)
                                && u.entry.producer_seq.is_some()
                            {
                                // Refused (throttled) while a later record of the batch was
                                // stored: the shard now remembers a higher number and would
                                // take the old one for a forgotten duplicate. It was certainly
                                // not written, so a new number is safe.
                                u.entry.producer_seq = self.seq.next();
                            }
                            self.failed_attempt(&o.stream, u, code, failure, message, now);
                        }
                    }
                }
            }
        }
    }

    /// What a failure says about the map: a leader that stopped answering is forgotten, and
    /// codes that mean the map is out of date ask for a refresh.
    fn note_failure(
        &mut self,
        stream: &Arc<str>,
        shard_id: &str,
        target: Option<u64>,
        code: ErrorCode,
    ) {
        if target.is_some()
            && matches!(code, ErrorCode::Unavailable | ErrorCode::NotLeader)
            && let Some(map) = self.streams.get_mut(stream).and_then(|st| st.map.as_mut())
        {
            map.forget_leader(shard_id);
        }
        if refreshes_map(code) {
            self.want_refresh(stream);
        }
    }

    fn want_refresh(&mut self, stream: &Arc<str>) {
        if let Some(st) = self.streams.get_mut(stream) {
            st.refresh.wanted = true;
        }
    }

    fn failed_attempt(
        &mut self,
        stream: &Arc<str>,
        mut u: Unit,
        code: ErrorCode,
        failure: Failure,
        message: String,
        now: Instant,
    ) {
        if failure == Failure::Unknown {
            u.unknown_outcomes += 1;
        }
        if failure == Failure::Permanent {
            let err = ProducerError::Refused {
                code,
                message,
                attempts: u.attempts,
            };
            self.fail(u.waiters, err);
            return;
        }
        let at = now
            + backoff(
                self.config.initial_backoff,
                self.config.max_backoff,
                u.attempts - 1,
            );
        if at >= u.deadline {
            let err = self.deadline_error(u.attempts, u.unknown_outcomes, code, message);
            self.fail(u.waiters, err);
            return;
        }
        bump(&self.counters.retries, 1);
        if failure == Failure::Unknown {
            bump(&self.counters.retries_after_unknown_outcome, 1);
        }
        u.not_before = at;
        u.linger_until = at;
        u.last_error = Some((code, message));
        self.route(stream, Unrouted::Unit(u));
    }

    fn deadline_error(
        &self,
        attempts: u32,
        unknown_outcomes: u32,
        code: ErrorCode,
        message: String,
    ) -> ProducerError {
        ProducerError::DeadlineExceeded {
            deadline: self.config.record_deadline,
            attempts,
            unknown_outcomes,
            code,
            message,
        }
    }

    fn acked(&mut self, u: Unit, shard_id: String, sequence_number: String) {
        bump(&self.counters.kinesis_records_acked, 1);
        bump(&self.counters.records_acked, u.waiters.len() as u64);
        let aggregated = u.aggregated;
        for (i, w) in u.waiters.into_iter().enumerate() {
            let ack = Ack {
                shard_id: shard_id.clone(),
                sequence_number: sequence_number.clone(),
                sub_sequence: aggregated.then_some(i as u32),
                attempts: u.attempts,
                unknown_outcomes: u.unknown_outcomes,
            };
            self.resolve(w, Ok(ack));
        }
    }

    fn fail(&mut self, waiters: Vec<Waiter>, err: ProducerError) {
        bump(&self.counters.records_failed, waiters.len() as u64);
        for w in waiters {
            self.resolve(w, Err(err.clone()));
        }
    }

    /// Answers one caller and returns its bytes to the budget.
    fn resolve(&mut self, w: Waiter, result: Result<Ack, ProducerError>) {
        self.outstanding.remove(&w.order);
        let _ = w.tx.send(result);
        drop(w.permit);
    }

    fn check_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest = self.outstanding.first().copied().unwrap_or(u64::MAX);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(mark, _)| oldest >= *mark);
        self.flushes = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    fn start_refreshes(&mut self, now: Instant) {
        for (stream, st) in &mut self.streams {
            let r = &mut st.refresh;
            let rested = r.last.is_none_or(|l| now >= l + MIN_REFRESH_INTERVAL);
            if !r.wanted || r.running || !rested {
                continue;
            }
            r.wanted = false;
            r.running = true;
            let client = self.client.clone();
            let stream = stream.clone();
            let with_leaders = self.config.route_to_leaders;
            self.refreshes.spawn(
                async move {
                    let result = async {
                        let shards = client.list_shards(&stream).await?;
                        let nodes = if with_leaders {
                            client.cluster_status().await?.nodes
                        } else {
                            Vec::new()
                        };
                        ShardMap::new(&shards, &nodes).map_err(|m| ClientError::MissingField {
                            op: "ListShards",
                            field: if m.is_empty() {
                                "shards"
                            } else {
                                "hash_key_range"
                            },
                        })
                    }
                    .await;
                    (stream, result)
                }
                .instrument(tracing::debug_span!("producer.refresh_map")),
            );
        }
    }

    fn refresh_done(&mut self, stream: Arc<str>, result: Result<ShardMap, ClientError>) {
        let now = Instant::now();
        let Some(st) = self.streams.get_mut(&stream) else {
            return;
        };
        st.refresh.running = false;
        st.refresh.last = Some(now);
        let map = match result {
            Ok(map) if !map.is_empty() => map,
            Ok(_) => {
                st.refresh.wanted = st.has_work();
                return;
            }
            Err(e) => {
                tracing::debug!(stream = %stream, error = %e, "shard map refresh failed");
                if classify(e.code()) == Failure::Permanent && st.map.is_none() {
                    // The stream cannot be written (deleted, never created): nothing waiting
                    // for its map will ever be sent.
                    let waiting = std::mem::take(&mut st.unrouted);
                    let err = ProducerError::Refused {
                        code: e.code(),
                        message: e.to_string(),
                        attempts: 0,
                    };
                    for item in waiting {
                        match item {
                            Unrouted::Raw(r) => self.fail(vec![r.waiter], err.clone()),
                            Unrouted::Unit(u) => self.fail(u.waiters, err.clone()),
                        }
                    }
                } else {
                    // Keep trying only while something waits on this stream, so an idle
                    // producer does not poll a stream that went away.
                    st.refresh.wanted = st.has_work();
                }
                return;
            }
        };
        bump(&self.counters.map_refreshes, 1);
        let reshaped = st.map.as_ref().is_none_or(|old| !old.same_shards(&map));
        st.map = Some(map);
        let mut items: Vec<Unrouted> = std::mem::take(&mut st.unrouted);
        if reshaped {
            // Shards were split or merged: everything queued is grouped again under the new
            // map, in order. A sealed aggregate keeps its packing and follows its outer key.
            for (_, q) in std::mem::take(&mut st.queues) {
                items.extend(
                    q.drain(&mut || self.seq.next())
                        .into_iter()
                        .map(Unrouted::Unit),
                );
            }
        }
        for item in items {
            self.route(&stream, item);
        }
    }

    /// Fails every record waiting in a queue past its deadline. Records in flight are judged
    /// when their answer comes.
    fn expire(&mut self, now: Instant) {
        let mut expired_units = Vec::new();
        let mut expired_waiters = Vec::new();
        for st in self.streams.values_mut() {
            let (late, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.unrouted)
                .into_iter()
                .partition(|i| i.deadline() <= now);
            st.unrouted = kept;
            for item in late {
                match item {
                    Unrouted::Raw(r) => expired_waiters.push(r.waiter),
                    Unrouted::Unit(u) => expired_units.push(u),
                }
            }
            for q in st.queues.values_mut() {
                let (units, waiters) = q.expire(now);
                expired_units.extend(units);
                expired_waiters.extend(waiters);
            }
        }
        for u in expired_units {
            let (code, message) = u.last_error.clone().unwrap_or((
                ErrorCode::Unavailable,
                "no shard map or leader became available in time".to_string(),
            ));
            let err = self.deadline_error(u.attempts, u.unknown_outcomes, code, message);
            self.fail(u.waiters, err);
        }
        if !expired_waiters.is_empty() {
            let err = self.deadline_error(
                0,
                0,
                ErrorCode::Unavailable,
                "no shard map or leader became available in time".to_string(),
            );
            self.fail(expired_waiters, err);
        }
    }

    /// The earliest moment something may need doing without an outside event.
    fn next_wake(&self, now: Instant) -> Instant {
        let flushing = !self.flushes.is_empty() || self.stopping;
        let mut wake = now + Duration::from_secs(3600);
        if !self.outstanding.is_empty() {
            wake = wake.min(self.last_sweep + SWEEP_INTERVAL);
        }
        for st in self.streams.values() {
            if st.refresh.wanted && !st.refresh.running {
                let at = st.refresh.last.map_or(now, |l| l + MIN_REFRESH_INTERVAL);
                wake = wake.min(at);
            }
            if st.held() {
                continue;
            }
            for (shard, q) in &st.queues {
                let busy = st.in_flight.get(shard).copied().unwrap_or(0);
                if busy < self.config.max_in_flight_per_shard
                    && let Some(t) = q.due_at(self.limits, flushing)
                {
                    wake = wake.min(t);
                }
            }
        }
        wake
    }
}
