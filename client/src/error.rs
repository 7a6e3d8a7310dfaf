//! The one error type of the client.

use std::time::Duration;

use streamd_proto::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The call reached a server (or failed on the way) and came back with a status. Transport
    /// failures and timeouts arrive here too, as `Unavailable`: their outcome is unknown.
    #[error("{op} failed: {source}")]
    Api {
        op: &'static str,
        #[source]
        source: ApiError,
    },
    #[error("invalid endpoint {endpoint:?}: {source}")]
    InvalidEndpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("no endpoints given")]
    NoEndpoints,
    /// The server answered without a field the API promises.
    #[error("{op} answered without {field}")]
    MissingField {
        op: &'static str,
        field: &'static str,
    },
    #[error("timed out after {after:?} waiting for {what}: {last}")]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
}

impl ClientError {
    pub(crate) fn api(op: &'static str, status: &tonic::Status) -> Self {
        ClientError::Api {
            op,
            source: ApiError::from_status(status),
        }
    }

    /// The catalogue code of this error. Errors raised by the client itself map onto the code
    /// the server would have used for the same condition.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Api { source, .. } => source.code,
            ClientError::InvalidEndpoint { .. } | ClientError::NoEndpoints => {
                ErrorCode::InvalidArgument
            }
            ClientError::MissingField { .. } => ErrorCode::InternalFailure,
            ClientError::Timeout { .. } => ErrorCode::Unavailable,
        }
    }

    /// The server's error, when the failure came from a call.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the same request may succeed if sent again (see [`ErrorCode::retryable`]).
    pub fn retryable(&self) -> bool {
        self.code().retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_comes_from_the_status_detail() {
        let status = ApiError::new(ErrorCode::ResourceInUse, "exists").to_status();
        let e = ClientError::api("CreateStream", &status);
        assert_eq!(e.code(), ErrorCode::ResourceInUse);
        assert!(e.to_string().contains("CreateStream"));
        assert!(!e.retryable());
    }

    #[test]
    fn transport_failures_are_unavailable() {
        let e = ClientError::api(
            "PutRecords",
            &tonic::Status::unavailable("connection refused"),
        );
        assert_eq!(e.code(), ErrorCode::Unavailable);
        assert!(e.retryable());
    }
}
