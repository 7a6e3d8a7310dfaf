//! What a record's caller hears when its record was not acknowledged.

use std::time::Duration;

use streamd_proto::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// Refused before anything was sent: the record can never be written as given.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The server refused the record with an error another attempt would not fix.
    #[error("record refused after {attempts} attempt(s): {code}: {message}")]
    Refused {
        code: ErrorCode,
        message: String,
        attempts: u32,
    },
    /// Every attempt within the record deadline failed with a retryable error. When
    /// `unknown_outcomes` is above zero, some attempt may have written the record after all.
    #[error(
        "record deadline of {deadline:?} passed after {attempts} attempt(s) \
         ({unknown_outcomes} of unknown outcome), last error {code}: {message}"
    )]
    DeadlineExceeded {
        deadline: Duration,
        attempts: u32,
        unknown_outcomes: u32,
        code: ErrorCode,
        message: String,
    },
    /// The producer was closed before the record was accepted.
    #[error("the producer is closed")]
    Closed,
}

impl ProducerError {
    /// The catalogue code that best describes the failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProducerError::InvalidRecord(_) => ErrorCode::InvalidArgument,
            ProducerError::Refused { code, .. } | ProducerError::DeadlineExceeded { code, .. } => {
                *code
            }
            ProducerError::Closed => ErrorCode::Unavailable,
        }
    }
}
