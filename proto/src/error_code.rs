//! The error-code catalogue. Every error any streamd API returns is one [`ErrorCode`]; each code
//! knows its Kinesis name (what SDKs branch on), HTTP status (for the Kinesis shim), gRPC code and
//! whether a retry may succeed. Operation-level error enums map onto these codes.

use prost::Message;

use crate::v1::ErrorDetail;

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ResourceNotFound,
    ResourceInUse,
    InvalidArgument,
    LimitExceeded,
    ExpiredIterator,
    ExpiredNextToken,
    ProvisionedThroughputExceeded,
    Validation,
    AccessDenied,
    /// The replica asked is not its group's leader (retry elsewhere; a leader hint may be attached).
    NotLeader,
    /// The request routed with an out-of-date shard map (refresh and retry).
    StaleMapEpoch,
    /// The shard is sealed by a reshard; writes go to its children.
    ShardClosed,
    /// No leader could be reached in time; the outcome of a write is unknown.
    Unavailable,
    InternalFailure,
    /// A consumer-group lease is held by another worker, or under a newer counter.
    LeaseConflict,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::ResourceNotFound,
        ErrorCode::ResourceInUse,
        ErrorCode::InvalidArgument,
        ErrorCode::LimitExceeded,
        ErrorCode::ExpiredIterator,
        ErrorCode::ExpiredNextToken,
        ErrorCode::ProvisionedThroughputExceeded,
        ErrorCode::Validation,
        ErrorCode::AccessDenied,
        ErrorCode::NotLeader,
        ErrorCode::StaleMapEpoch,
        ErrorCode::ShardClosed,
        ErrorCode::Unavailable,
        ErrorCode::InternalFailure,
        ErrorCode::LeaseConflict,
    ];

    /// The `__type` Kinesis clients see.
    pub fn kinesis_type(self) -> &'static str {
        match self {
            ErrorCode::ResourceNotFound => "ResourceNotFoundException",
            ErrorCode::ResourceInUse => "ResourceInUseException",
            ErrorCode::InvalidArgument => "InvalidArgumentException",
            ErrorCode::LimitExceeded => "LimitExceededException",
            ErrorCode::ExpiredIterator => "ExpiredIteratorException",
            ErrorCode::ExpiredNextToken => "ExpiredNextTokenException",
            ErrorCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorCode::Validation => "ValidationException",
            ErrorCode::AccessDenied => "AccessDeniedException",
            // Kinesis has no name for these internal conditions; SDKs retry InternalFailure and
            // throughput errors, so the retryable ones surface as ones they retry.
            ErrorCode::NotLeader | ErrorCode::StaleMapEpoch | ErrorCode::ShardClosed => {
                "ProvisionedThroughputExceededException"
            }
            ErrorCode::Unavailable | ErrorCode::InternalFailure => "InternalFailure",
            ErrorCode::LeaseConflict => "ResourceInUseException",
        }
    }

    /// The name streamd itself uses on the wire; equal to the Kinesis name where one exists.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::NotLeader => "NotLeader",
            ErrorCode::StaleMapEpoch => "StaleMapEpoch",
            ErrorCode::ShardClosed => "ShardClosed",
            ErrorCode::Unavailable => "ServiceUnavailable",
            ErrorCode::LeaseConflict => "LeaseConflict",
            other => other.kinesis_type(),
        }
    }

    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InternalFailure => 500,
            ErrorCode::Unavailable => 503,
            _ => 400,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            ErrorCode::ResourceNotFound => Code::NotFound,
            ErrorCode::ResourceInUse | ErrorCode::LeaseConflict => Code::FailedPrecondition,
            ErrorCode::InvalidArgument | ErrorCode::Validation | ErrorCode::ExpiredNextToken => {
                Code::InvalidArgument
            }
            ErrorCode::ExpiredIterator => Code::OutOfRange,
            ErrorCode::LimitExceeded | ErrorCode::ProvisionedThroughputExceeded => {
                Code::ResourceExhausted
            }
            ErrorCode::AccessDenied => Code::PermissionDenied,
            ErrorCode::NotLeader | ErrorCode::StaleMapEpoch | ErrorCode::ShardClosed => {
                Code::Aborted
            }
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::InternalFailure => Code::Internal,
        }
    }

    /// Whether the same request may succeed when retried unchanged (after a backoff or refresh).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeader
                | ErrorCode::StaleMapEpoch
                | ErrorCode::ShardClosed
                | ErrorCode::Unavailable
                | ErrorCode::ProvisionedThroughputExceeded
                | ErrorCode::LimitExceeded
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error as it crosses an API boundary: a catalogue code, a message for humans and, for
/// NotLeader, the leader the replica knows of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub leader_hint: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            leader_hint: None,
        }
    }

    pub fn not_leader(leader_hint: Option<u64>) -> Self {
        ApiError {
            code: ErrorCode::NotLeader,
            message: "this replica is not the leader of its group".into(),
            leader_hint,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InternalFailure, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::ResourceNotFound, message)
    }

    pub fn to_status(&self) -> tonic::Status {
        let detail = ErrorDetail {
            error_type: self.code.name().to_string(),
            retryable: self.code.retryable(),
            leader_hint: self.leader_hint,
        };
        tonic::Status::with_details(
            self.code.grpc_code(),
            self.message.clone(),
            detail.encode_to_vec().into(),
        )
    }

    /// Reads a status produced by [`ApiError::to_status`]; statuses from elsewhere (transport
    /// failures, timeouts) become `Unavailable` so callers treat their outcome as unknown.
    pub fn from_status(status: &tonic::Status) -> Self {
        if let Ok(detail) = ErrorDetail::decode(status.details())
            && let Some(code) = ErrorCode::from_name(&detail.error_type)
        {
            return ApiError {
                code,
                message: status.message().to_string(),
                leader_hint: detail.leader_hint,
            };
        }
        let code = match status.code() {
            tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
            tonic::Code::NotFound => ErrorCode::ResourceNotFound,
            tonic::Code::Internal | tonic::Code::Unknown => ErrorCode::InternalFailure,
            _ => ErrorCode::Unavailable,
        };
        ApiError::new(code, status.message().to_string())
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_keeps_code_and_hint() {
        for code in ErrorCode::ALL {
            let mut e = ApiError::new(code, "boom");
            e.leader_hint = Some(3);
            let back = ApiError::from_status(&e.to_status());
            assert_eq!(back, e);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn foreign_status_is_unavailable() {
        let s = tonic::Status::unavailable("connection refused");
        assert_eq!(ApiError::from_status(&s).code, ErrorCode::Unavailable);
    }
}
