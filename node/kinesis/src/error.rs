//! Kinesis errors as clients see them: a `__type` SDKs branch on, a message, an HTTP status.
//! [`KinesisError::to_response`] is the only place error bodies are written, so every error, from
//! a malformed signature to a cluster failure, reaches clients in the same shape.
//!
//! Statuses follow what Kinesis (an AWS JSON 1.1 service) returns, which for the authentication
//! errors differs from the generic "Common Errors" table: Kinesis answers a JSON or CBOR request
//! that lacks or fails authentication with 400 and the `...Exception` type names below.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use streamd_proto::ApiError;

use crate::codec::{self, Doc, Format};

/// Header carrying the request id on every response.
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";
/// Header repeating the error type, which some SDKs read before the body.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{type_name}: {message}")]
pub struct KinesisError {
    pub type_name: String,
    pub message: String,
    pub status: u16,
}

impl KinesisError {
    pub fn new(type_name: &str, status: u16, message: impl Into<String>) -> Self {
        KinesisError {
            type_name: type_name.to_string(),
            message: message.into(),
            status,
        }
    }

    /// The body could not be read as the declared format, or a field has the wrong type.
    pub fn serialization(msg: impl Into<String>) -> Self {
        Self::new("SerializationException", 400, msg)
    }

    /// A body larger than the shim accepts. Kinesis answers these with 413 before reading the
    /// body; the type is SerializationException so SDKs that parse the body see a non-retryable
    /// client error.
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            "SerializationException",
            413,
            format!("Request body too large: the limit is {limit_bytes} bytes"),
        )
    }

    /// A member failed a constraint; see [`codec::validation`] for AWS's message format.
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::new("ValidationException", 400, msg)
    }

    /// `X-Amz-Target` names no operation this service has.
    pub fn unknown_operation(target: &str) -> Self {
        Self::new(
            "UnknownOperationException",
            400,
            format!("Unknown operation: '{target}'"),
        )
    }

    pub fn missing_auth() -> Self {
        Self::new(
            "MissingAuthenticationTokenException",
            400,
            "Missing Authentication Token",
        )
    }

    pub fn incomplete_signature(msg: impl Into<String>) -> Self {
        Self::new("IncompleteSignatureException", 400, msg)
    }

    pub fn invalid_signature(msg: impl Into<String>) -> Self {
        Self::new("InvalidSignatureException", 400, msg)
    }

    pub fn unrecognized_client() -> Self {
        Self::new(
            "UnrecognizedClientException",
            400,
            "The security token included in the request is invalid.",
        )
    }

    pub fn access_denied(msg: impl Into<String>) -> Self {
        Self::new("AccessDeniedException", 400, msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new("InternalFailure", 500, msg)
    }

    pub fn resource_not_found(msg: impl Into<String>) -> Self {
        Self::new("ResourceNotFoundException", 400, msg)
    }

    pub fn resource_in_use(msg: impl Into<String>) -> Self {
        Self::new("ResourceInUseException", 400, msg)
    }

    pub fn invalid_argument(msg: impl Into<String>) -> Self {
        Self::new("InvalidArgumentException", 400, msg)
    }

    pub fn limit_exceeded(msg: impl Into<String>) -> Self {
        Self::new("LimitExceededException", 400, msg)
    }

    pub fn expired_iterator(msg: impl Into<String>) -> Self {
        Self::new("ExpiredIteratorException", 400, msg)
    }

    pub fn expired_next_token(msg: impl Into<String>) -> Self {
        Self::new("ExpiredNextTokenException", 400, msg)
    }

    pub fn throughput(msg: impl Into<String>) -> Self {
        Self::new("ProvisionedThroughputExceededException", 400, msg)
    }

    /// From the cluster's error catalogue; the catalogue decides the Kinesis type and status.
    pub fn from_api(e: &ApiError) -> Self {
        Self::new(
            e.code.kinesis_type(),
            e.code.http_status(),
            e.message.clone(),
        )
    }

    /// The error body as a document: `{"__type": ..., "message": ...}`.
    pub fn to_doc(&self) -> Doc {
        Doc::map([
            ("__type", Doc::str(self.type_name.clone())),
            ("message", Doc::str(self.message.clone())),
        ])
    }

    /// The complete HTTP response for this error in the request's format.
    pub fn to_response(&self, format: Format, request_id: &str) -> http::Response<Bytes> {
        let body = Bytes::from(codec::encode(format, &self.to_doc()));
        let mut resp = http::Response::new(body);
        *resp.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = resp.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        // Both values come from inside the shim, but a header is dropped rather than letting a
        // stray byte turn an error response into a panic.
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.type_name) {
            headers.insert(HeaderName::from_static(ERROR_TYPE_HEADER), v);
        }
        resp
    }
}

impl From<ApiError> for KinesisError {
    fn from(e: ApiError) -> Self {
        KinesisError::from_api(&e)
    }
}

impl From<&ApiError> for KinesisError {
    fn from(e: &ApiError) -> Self {
        KinesisError::from_api(e)
    }
}

#[cfg(test)]
mod tests {
    use streamd_proto::ErrorCode;

    use super::*;

    #[test]
    fn json_body_and_headers() {
        let e = KinesisError::resource_not_found("Stream s1 under account 1 not found.");
        let resp = e.to_response(Format::Json, "req-1");
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-type"], "application/x-amz-json-1.1");
        assert_eq!(resp.headers()["x-amzn-RequestId"], "req-1");
        assert_eq!(
            resp.headers()["x-amzn-ErrorType"],
            "ResourceNotFoundException"
        );
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "__type": "ResourceNotFoundException",
                "message": "Stream s1 under account 1 not found.",
            })
        );
        // `__type` first, as Kinesis writes it.
        assert!(resp.body().starts_with(b"{\"__type\":"));
    }

    #[test]
    fn cbor_body_and_headers() {
        let e = KinesisError::throughput("Rate exceeded for shard shardId-000000000000");
        let resp = e.to_response(Format::Cbor, "req-2");
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-type"], "application/x-amz-cbor-1.1");
        assert_eq!(resp.headers()["x-amzn-requestid"], "req-2");
        let value: ciborium::Value = ciborium::de::from_reader(&resp.body()[..]).unwrap();
        assert_eq!(
            value,
            ciborium::Value::Map(vec![
                (
                    ciborium::Value::Text("__type".into()),
                    ciborium::Value::Text("ProvisionedThroughputExceededException".into())
                ),
                (
                    ciborium::Value::Text("message".into()),
                    ciborium::Value::Text("Rate exceeded for shard shardId-000000000000".into())
                ),
            ])
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(KinesisError::internal("x").status, 500);
        assert_eq!(KinesisError::internal("x").type_name, "InternalFailure");
        assert_eq!(KinesisError::payload_too_large(10).status, 413);
        for e in [
            KinesisError::missing_auth(),
            KinesisError::incomplete_signature("x"),
            KinesisError::invalid_signature("x"),
            KinesisError::unrecognized_client(),
            KinesisError::access_denied("x"),
            KinesisError::serialization("x"),
            KinesisError::validation("x"),
            KinesisError::unknown_operation("Kinesis_20131202.Nope"),
            KinesisError::resource_in_use("x"),
            KinesisError::invalid_argument("x"),
            KinesisError::limit_exceeded("x"),
            KinesisError::expired_iterator("x"),
            KinesisError::expired_next_token("x"),
        ] {
            assert_eq!(e.status, 400, "{e}");
        }
        let resp = KinesisError::internal("boom").to_response(Format::Json, "r");
        assert_eq!(resp.status(), 500);
    }

    #[test]
    fn from_the_catalogue() {
        let e: KinesisError = ApiError::not_found("Stream s under account 1 not found.").into();
        assert_eq!(e.type_name, "ResourceNotFoundException");
        assert_eq!(e.status, 400);
        assert_eq!(e.message, "Stream s under account 1 not found.");
        let e = KinesisError::from_api(&ApiError::new(ErrorCode::Unavailable, "no leader"));
        assert_eq!(e.type_name, "InternalFailure");
        assert_eq!(e.status, 503);
        let e = KinesisError::from_api(&ApiError::not_leader(Some(2)));
        assert_eq!(e.type_name, "ProvisionedThroughputExceededException");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn bad_header_values_do_not_break_the_response() {
        let resp = KinesisError::internal("x").to_response(Format::Json, "bad\nid");
        assert!(resp.headers().get("x-amzn-requestid").is_none());
        assert_eq!(resp.status(), 500);
    }

    #[test]
    fn display() {
        assert_eq!(
            KinesisError::validation("v").to_string(),
            "ValidationException: v"
        );
    }
}
