//! What can go wrong in a command, what the user should do about it, and the exit code it maps to
//! (documented in `streamctl --help`, see [`crate::cli::EXIT_CODES`]).

use std::path::PathBuf;

use streamd_client::profile::ProfileError;
use streamd_client::{ClientError, ErrorCode};

/// Exit codes; `main` is their only user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Ok = 0,
    Failed = 1,
    Usage = 2,
    NotFound = 3,
    Unreachable = 4,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CtlError {
    #[error("stream '{stream}' not found; list streams with `streamctl stream list`")]
    StreamNotFound { stream: String },
    #[error("stream '{stream}' already exists; see it with `streamctl stream describe {stream}`")]
    StreamExists { stream: String },
    #[error(
        "stream '{stream}' has no shard {shard}; list them with `streamctl shard list {stream}`"
    )]
    ShardNotFound { stream: String, shard: String },
    #[error("node {node} is not a member of the cluster; list nodes with `streamctl node list`")]
    NodeNotFound { node: u64 },
    /// The server refused the request as invalid: the user has to change it.
    #[error("{message}")]
    Invalid { message: String },
    /// A flag or argument this program refuses before calling anything.
    #[error("{0}")]
    Usage(String),
    #[error(
        "cannot reach the cluster at {endpoints} ({source_name}): {source}; is streamd running? \
         set the address with --endpoint or STREAMCTL_ENDPOINT"
    )]
    Unreachable {
        endpoints: String,
        source_name: String,
        #[source]
        source: ClientError,
    },
    #[error(
        "timed out after {after:?} waiting for {what} (last seen: {last}); it may still finish: check with `{check}`"
    )]
    WaitTimeout {
        what: String,
        after: std::time::Duration,
        last: String,
        check: String,
    },
    #[error("{0}")]
    Client(#[source] ClientError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("failed to read {}: {source}", path.display())]
    ReadInput {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {what}: {source}")]
    Write {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{failed} of {total} records were not written ({first_error}); {acked} were acknowledged"
    )]
    RecordsFailed {
        failed: u64,
        total: u64,
        acked: u64,
        first_error: String,
    },
}

impl CtlError {
    pub(crate) fn exit(&self) -> Exit {
        match self {
            CtlError::StreamNotFound { .. }
            | CtlError::ShardNotFound { .. }
            | CtlError::NodeNotFound { .. } => Exit::NotFound,
            CtlError::Invalid { .. }
            | CtlError::Usage(_)
            | CtlError::Profile(_)
            | CtlError::StreamExists { .. } => Exit::Usage,
            CtlError::Unreachable { .. } | CtlError::WaitTimeout { .. } => Exit::Unreachable,
            CtlError::Client(e) => match e.code() {
                ErrorCode::ResourceNotFound => Exit::NotFound,
                ErrorCode::InvalidArgument | ErrorCode::Validation => Exit::Usage,
                ErrorCode::Unavailable => Exit::Unreachable,
                _ => Exit::Failed,
            },
            CtlError::ReadInput { .. }
            | CtlError::Write { .. }
            | CtlError::RecordsFailed { .. } => Exit::Failed,
        }
    }

    /// A failed call about stream `stream`, turned into the error that tells the user what to do.
    pub(crate) fn about_stream(stream: &str, e: ClientError) -> CtlError {
        match e.code() {
            ErrorCode::ResourceNotFound => CtlError::StreamNotFound {
                stream: stream.to_string(),
            },
            _ => CtlError::from_client(e),
        }
    }

    /// Invalid requests keep the server's message (it names the field); others keep the call.
    pub(crate) fn from_client(e: ClientError) -> CtlError {
        match (e.code(), e.api_error()) {
            (ErrorCode::InvalidArgument | ErrorCode::Validation, Some(api)) => CtlError::Invalid {
                message: format!("invalid request: {}", api.message),
            },
            _ => CtlError::Client(e),
        }
    }
}

/// Unreachable-cluster errors name the endpoints; `main` applies this to every error once.
pub(crate) fn with_endpoints(e: CtlError, endpoints: &[String], source_name: &str) -> CtlError {
    match e {
        CtlError::Client(source) if source.code() == ErrorCode::Unavailable => {
            CtlError::Unreachable {
                endpoints: endpoints.join(","),
                source_name: source_name.to_string(),
                source,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use streamd_client::ApiError;

    use super::*;

    fn api(code: ErrorCode, msg: &str) -> ClientError {
        ClientError::Api {
            op: "DescribeStream",
            source: ApiError::new(code, msg),
        }
    }

    #[test]
    fn not_found_tells_how_to_list() {
        let e = CtlError::about_stream("x", api(ErrorCode::ResourceNotFound, "no such stream"));
        assert_eq!(e.exit(), Exit::NotFound);
        assert!(e.to_string().contains("streamctl stream list"), "{e}");
    }

    #[test]
    fn invalid_is_a_usage_error_with_the_server_message() {
        let e = CtlError::from_client(api(ErrorCode::InvalidArgument, "retention out of range"));
        assert_eq!(e.exit(), Exit::Usage);
        assert!(e.to_string().contains("retention out of range"), "{e}");
    }

    #[test]
    fn unavailable_names_the_endpoints() {
        let e = CtlError::from_client(api(ErrorCode::Unavailable, "connection refused"));
        let e = with_endpoints(e, &["127.0.0.1:1".into()], "--endpoint");
        assert_eq!(e.exit(), Exit::Unreachable);
        let msg = e.to_string();
        assert!(
            msg.contains("127.0.0.1:1") && msg.contains("--endpoint"),
            "{msg}"
        );
    }

    #[test]
    fn other_server_errors_exit_1() {
        let e = CtlError::from_client(api(ErrorCode::InternalFailure, "boom"));
        assert_eq!(e.exit(), Exit::Failed);
    }
}
