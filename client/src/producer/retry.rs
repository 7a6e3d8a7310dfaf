//! Which failures of a PutRecords entry are tried again, what each says about the record, and
//! how long to wait. Pure functions; the driver applies them.

use std::time::Duration;

use streamd_proto::ErrorCode;

use crate::ClientError;

/// What a failed attempt tells about the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Certainly not written (refused before proposing: throttled, not the leader, shard
    /// closed, stale map): retrying cannot duplicate it.
    NotWritten,
    /// May have been written (a timeout, a lost connection, a leader lost mid-commit):
    /// retrying may write it twice unless the producer is idempotent.
    Unknown,
    /// Another attempt would fail the same way.
    Permanent,
}

/// Classifies an error code, whether it came for the whole call or for one entry.
///
/// InternalFailure is retried although [`ErrorCode::retryable`] says no: the gateway reports a
/// shard group that failed mid-proposal (leader lost, quorum gone) as a per-entry
/// InternalFailure, and Kinesis SDKs retry it too. The record deadline bounds the attempts.
pub(crate) fn classify(code: ErrorCode) -> Failure {
    match code {
        ErrorCode::Unavailable | ErrorCode::InternalFailure => Failure::Unknown,
        ErrorCode::NotLeader
        | ErrorCode::StaleMapEpoch
        | ErrorCode::ShardClosed
        | ErrorCode::ProvisionedThroughputExceeded
        | ErrorCode::LimitExceeded => Failure::NotWritten,
        ErrorCode::ResourceNotFound
        | ErrorCode::ResourceInUse
        | ErrorCode::InvalidArgument
        | ErrorCode::ExpiredIterator
        | ErrorCode::ExpiredNextToken
        | ErrorCode::Validation
        | ErrorCode::AccessDenied
        | ErrorCode::LeaseConflict => Failure::Permanent,
    }
}

/// Classifies a whole call's failure. A connection that was refused never carried the request,
/// so its records were certainly not written (the gateway's `retry_safe` judges forwarded
/// writes the same way); any other `Unavailable` may have written them.
pub(crate) fn classify_call(err: &ClientError) -> Failure {
    if err.code() == ErrorCode::Unavailable
        && let Some(api) = err.api_error()
    {
        let m = api.message.to_ascii_lowercase();
        if m.contains("tcp connect error") || m.contains("connection refused") {
            return Failure::NotWritten;
        }
    }
    classify(err.code())
}

/// Codes after which the producer's view of shards or leaders is out of date.
pub(crate) fn refreshes_map(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeader
            | ErrorCode::StaleMapEpoch
            | ErrorCode::ShardClosed
            | ErrorCode::Unavailable
            | ErrorCode::ResourceNotFound
    )
}

/// An entry's error code as the server names it (the Kinesis name, or streamd's own); an
/// unknown name is treated as an internal failure, whose outcome is unknown.
pub(crate) fn entry_code(name: &str) -> ErrorCode {
    ErrorCode::from_name(name)
        .or_else(|| {
            ErrorCode::ALL
                .into_iter()
                .find(|c| c.kinesis_type() == name)
        })
        .unwrap_or(ErrorCode::InternalFailure)
}

/// "Full jitter" (AWS architecture blog, Exponential Backoff and Jitter): a uniform draw in
/// [0, min(max, initial * 2^attempt)], which spreads retrying clients apart best.
pub(crate) fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = initial.saturating_mul(1u32 << attempt.min(20)).min(max);
    ceiling.mul_f64(rand::random_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_are_retried_and_the_rest_are_not() {
        for code in ErrorCode::ALL {
            let f = classify(code);
            if code.retryable() {
                assert_ne!(f, Failure::Permanent, "{code}");
            }
        }
        assert_eq!(classify(ErrorCode::InternalFailure), Failure::Unknown);
        assert_eq!(classify(ErrorCode::Unavailable), Failure::Unknown);
        assert_eq!(
            classify(ErrorCode::ProvisionedThroughputExceeded),
            Failure::NotWritten
        );
        assert_eq!(classify(ErrorCode::InvalidArgument), Failure::Permanent);
    }

    #[test]
    fn entry_codes_parse_from_both_names() {
        assert_eq!(
            entry_code("ProvisionedThroughputExceededException"),
            ErrorCode::ProvisionedThroughputExceeded
        );
        assert_eq!(entry_code("InternalFailure"), ErrorCode::InternalFailure);
        assert_eq!(entry_code("ServiceUnavailable"), ErrorCode::Unavailable);
        assert_eq!(entry_code("NotLeader"), ErrorCode::NotLeader);
        assert_eq!(entry_code("SomethingNew"), ErrorCode::InternalFailure);
    }

    #[test]
    fn backoff_is_capped_and_jittered_from_zero() {
        let (i, m) = (Duration::from_millis(10), Duration::from_millis(500));
        for attempt in 0..64 {
            assert!(backoff(i, m, attempt) <= m);
        }
        assert!(backoff(i, m, 0) <= i);
        // Full jitter: some draws land well below half the ceiling.
        assert!((0..200).any(|_| backoff(i, m, 10) < m / 4));
    }
}
