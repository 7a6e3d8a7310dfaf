//! One writer: PutRecords calls of 1-10 records, each record a value no one else ever sends
//! (`w<i>-<counter>`) with a random partition key, paced to the writer's share of the rate.
//! Each call is an invoke line before it is sent and a completion line after, with every
//! record's own outcome (SEMANTICS.md).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use rand::Rng;
use streamd_client::{ErrorCode, StreamdClient, v1};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::Config;
use crate::history::{F, Op, OpType, Outcome, Put, PutResult, Recorder};

/// Records per call.
const BATCH: std::ops::RangeInclusive<usize> = 1..=10;

/// How the outcome of a whole call that failed is classified. Only refusals that happen before
/// anything is proposed are definite; everything else (timeouts, transport errors, unavailable
/// leaders, internal failures) may have written the records.
pub fn call_error_outcome(code: ErrorCode) -> Outcome {
    match code {
        ErrorCode::InvalidArgument
        | ErrorCode::Validation
        | ErrorCode::ResourceNotFound
        | ErrorCode::ProvisionedThroughputExceeded
        | ErrorCode::LimitExceeded
        | ErrorCode::AccessDenied => Outcome::Fail,
        _ => Outcome::Info,
    }
}

/// How one failed record of a PutRecords answer is classified: throttling and invalid input
/// are never written; any other code (InternalFailure, ServiceUnavailable) leaves it unknown.
pub fn record_error_outcome(error_code: &str) -> Outcome {
    match error_code {
        "ProvisionedThroughputExceededException" | "InvalidArgumentException" => Outcome::Fail,
        _ => Outcome::Info,
    }
}

/// The completion of a call from its answer.
pub fn complete(
    puts: &[Put],
    answer: &Result<v1::PutRecordsResponse, (ErrorCode, String)>,
) -> (OpType, Vec<PutResult>, Option<String>) {
    let results: Vec<PutResult> = match answer {
        Ok(resp) => puts
            .iter()
            .enumerate()
            .map(|(i, put)| {
                let r = resp.records.get(i);
                let unknown = |error: String| PutResult {
                    value: put.value.clone(),
                    outcome: Outcome::Info,
                    shard: None,
                    seq: None,
                    error: Some(error),
                };
                match r {
                    None => unknown("the answer has no result for this record".into()),
                    Some(r) => match (&r.sequence_number, &r.shard_id, &r.error_code) {
                        (Some(seq), Some(shard), None) => PutResult {
                            value: put.value.clone(),
                            outcome: Outcome::Ok,
                            shard: Some(shard.clone()),
                            seq: Some(seq.clone()),
                            error: None,
                        },
                        (_, _, Some(code)) => PutResult {
                            value: put.value.clone(),
                            outcome: record_error_outcome(code),
                            shard: None,
                            seq: None,
                            error: Some(code.clone()),
                        },
                        _ => unknown("a result with neither a sequence number nor an error".into()),
                    },
                }
            })
            .collect(),
        Err((code, _)) => {
            let outcome = call_error_outcome(*code);
            puts.iter()
                .map(|put| PutResult {
                    value: put.value.clone(),
                    outcome,
                    shard: None,
                    seq: None,
                    error: Some(code.name().to_string()),
                })
                .collect()
        }
    };
    let ty = if results.iter().any(|r| r.outcome == Outcome::Info) {
        OpType::Info
    } else if results.iter().any(|r| r.outcome == Outcome::Ok) {
        OpType::Ok
    } else {
        OpType::Fail
    };
    let error = answer
        .as_ref()
        .err()
        .map(|(code, message)| format!("{code}: {message}"));
    (ty, results, error)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct WriterStats {
    pub calls: u64,
    pub records: u64,
}

/// Runs writer `id` until `stop` turns true; the call in flight then completes (or times out).
pub async fn run(
    id: usize,
    config: Config,
    client: StreamdClient,
    rec: Recorder,
    writers: usize,
    mut stop: watch::Receiver<bool>,
) -> WriterStats {
    let process = format!("w{id}");
    let mut rng = config.rng(1_000 + id as u64);
    let per_writer = (config.rate / writers.max(1) as f64).max(0.01);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_writer));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut counter = 0u64;
    let mut again: VecDeque<Put> = VecDeque::new();
    let mut resent: HashSet<String> = HashSet::new();
    let mut stats = WriterStats::default();
    // The client's own deadline normally ends a call; this one only guards against a hang.
    let hard_deadline = config.request_timeout + Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if *stop.borrow() {
            break;
        }
        let n = rng.random_range(BATCH);
        let mut puts = Vec::with_capacity(n);
        while puts.len() < n {
            match again.pop_front() {
                Some(p) => puts.push(p),
                None => break,
            }
        }
        while puts.len() < n {
            puts.push(Put {
                value: format!("w{id}-{counter:06}"),
                key: config.key(rng.random::<u32>()),
            });
            counter += 1;
        }
        let op = rec.next_op();
        let mut invoke = Op::new(OpType::Invoke, F::Append, &process, op, rec.now());
        invoke.values = puts.clone();
        rec.record(invoke);
        let entries: Vec<v1::PutRecordsRequestEntry> = puts
            .iter()
            .map(|p| streamd_client::client::entry(p.key.clone(), p.value.clone().into_bytes()))
            .collect();
        let answer =
            match tokio::time::timeout(hard_deadline, client.put_records(&config.stream, entries))
                .await
            {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(e)) => Err((e.code(), e.to_string())),
                Err(_) => Err((
                    ErrorCode::Unavailable,
                    format!("no answer within {hard_deadline:?}"),
                )),
            };
        let (ty, results, error) = complete(&puts, &answer);
        for (put, r) in puts.iter().zip(&results) {
            if r.outcome == Outcome::Info && resent.insert(put.value.clone()) {
                again.push_back(put.clone());
            }
        }
        let mut done = Op::new(ty, F::Append, &process, op, rec.now());
        done.results = results;
        done.error = error;
        rec.record(done);
        stats.calls += 1;
        stats.records += puts.len() as u64;
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn puts(n: usize) -> Vec<Put> {
        (0..n)
            .map(|i| Put {
                value: format!("w0-{i:06}"),
                key: "k".into(),
            })
            .collect()
    }

    fn ok(seq: &str) -> v1::PutRecordsResultEntry {
        v1::PutRecordsResultEntry {
            sequence_number: Some(seq.into()),
            shard_id: Some("shardId-000000000000".into()),
            ..Default::default()
        }
    }

    fn failed(code: &str) -> v1::PutRecordsResultEntry {
        v1::PutRecordsResultEntry {
            error_code: Some(code.into()),
            error_message: Some("m".into()),
            ..Default::default()
        }
    }

    #[test]
    fn per_record_outcomes_follow_semantics() {
        let resp = v1::PutRecordsResponse {
            failed_record_count: 2,
            records: vec![
                ok("5"),
                failed("ProvisionedThroughputExceededException"),
                failed("InternalFailure"),
            ],
            encryption_type: "NONE".into(),
        };
        let (ty, results, error) = complete(&puts(4), &Ok(resp));
        let outcomes: Vec<_> = results.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            vec![Outcome::Ok, Outcome::Fail, Outcome::Info, Outcome::Info]
        );
        assert_eq!(results[0].seq.as_deref(), Some("5"));
        assert_eq!(ty, OpType::Info);
        assert!(error.is_none());
    }

    #[test]
    fn whole_call_errors_are_definite_only_before_anything_is_written() {
        let (ty, results, error) =
            complete(&puts(2), &Err((ErrorCode::InvalidArgument, "bad".into())));
        assert_eq!(ty, OpType::Fail);
        assert!(results.iter().all(|r| r.outcome == Outcome::Fail));
        assert!(error.unwrap().contains("bad"));
        for code in [
            ErrorCode::Unavailable,
            ErrorCode::InternalFailure,
            ErrorCode::NotLeader,
        ] {
            let (ty, _, _) = complete(&puts(1), &Err((code, String::new())));
            assert_eq!(ty, OpType::Info, "{code}");
        }
    }

    #[test]
    fn all_ok_is_ok_and_definite_failures_alone_are_fail() {
        let resp = v1::PutRecordsResponse {
            records: vec![ok("1"), failed("InvalidArgumentException")],
            ..Default::default()
        };
        assert_eq!(complete(&puts(2), &Ok(resp)).0, OpType::Ok);
        let resp = v1::PutRecordsResponse {
            records: vec![failed("ProvisionedThroughputExceededException")],
            ..Default::default()
        };
        assert_eq!(complete(&puts(1), &Ok(resp)).0, OpType::Fail);
    }
}
