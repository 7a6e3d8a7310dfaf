//! When the client retries on its own: idempotent reads only, on codes that say another attempt
//! (possibly on another endpoint) may succeed. Writes are never retried here.

use std::time::Duration;

use streamd_proto::ErrorCode;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 1 disables retries.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Whether a read that failed with `code` on attempt `attempt` (0-based) is tried again.
    pub fn retries(&self, code: ErrorCode, attempt: u32) -> bool {
        attempt + 1 < self.max_attempts && retries_read_on(code)
    }

    /// The pause before attempt `attempt + 1`: exponential, capped, with jitter in [50%, 100%].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.initial_backoff.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(self.max_backoff);
        capped.mul_f64(rand::random_range(0.5..=1.0))
    }
}

/// Codes on which an idempotent read is sent again.
pub fn retries_read_on(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Unavailable | ErrorCode::NotLeader)
}

/// Codes after which the next call goes to the next endpoint.
pub fn rotates_endpoint_on(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Unavailable | ErrorCode::NotLeader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_and_not_leader_are_retried() {
        let p = RetryPolicy::default();
        for code in ErrorCode::ALL {
            let expected = matches!(code, ErrorCode::Unavailable | ErrorCode::NotLeader);
            assert_eq!(p.retries(code, 0), expected, "{code}");
        }
        assert!(!p.retries(ErrorCode::Unavailable, p.max_attempts - 1));
        assert!(!RetryPolicy::none().retries(ErrorCode::Unavailable, 0));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 0..40 {
            let b = p.backoff(attempt);
            assert!(b <= p.max_backoff, "{attempt}: {b:?}");
        }
        assert!(p.backoff(0) <= p.initial_backoff);
        assert!(p.backoff(0) >= p.initial_backoff / 2);
    }
}
