//! One request's life: bounded body, signature check when enabled, `X-Amz-Target` dispatch,
//! decode, action, encode. Every response carries `x-amzn-RequestId`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use streamd_gateway::Gateway;
use tracing::Instrument;

use crate::actions::{self, Reply};
use crate::codec::{self, Format, Input};
use crate::error::KinesisError;
use crate::sigv4::SigV4Verifier;

/// The largest request body read: PutRecords' 10 MiB of data, base64-inflated, plus framing.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// Everything an action needs.
#[derive(Clone)]
pub struct KinesisApi {
    pub(crate) gw: Gateway,
    pub(crate) auth: Option<Arc<SigV4Verifier>>,
}

impl KinesisApi {
    /// `auth: None` turns signature checks off (the default for a development node).
    pub fn new(gw: Gateway, auth: Option<SigV4Verifier>) -> Self {
        KinesisApi {
            gw,
            auth: auth.map(Arc::new),
        }
    }
}

fn with_request_id(mut resp: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

fn error_response(e: &KinesisError, format: Format, request_id: &str) -> Response {
    let (parts, body) = e.to_response(format, request_id).into_parts();
    Response::from_parts(parts, Body::from(body))
}

pub(crate) async fn handle(
    State(api): State<KinesisApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let format = Format::from_content_type(
        headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let action = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or("")
        .to_string();
    let span = tracing::info_span!(
        "kinesis.request",
        otel.name = %format!("kinesis.{action}"),
        action = %action,
        request_id = %request_id
    );
    let started = std::time::Instant::now();
    let result = process(&api, method, uri, headers, body, format, &action)
        .instrument(span)
        .await;
    crate::metrics::observe(
        actions::metric_label(&action),
        result
            .as_ref()
            .map_or_else(|e| e.type_name.as_str(), |_| "OK"),
        started.elapsed(),
    );
    match result {
        Ok(Reply::Doc(doc)) => {
            let bytes = codec::encode(format, &doc);
            let resp = (
                StatusCode::OK,
                [(http::header::CONTENT_TYPE, format.content_type())],
                bytes,
            )
                .into_response();
            with_request_id(resp, &request_id)
        }
        Ok(Reply::EventStream(body)) => {
            let resp = (
                StatusCode::OK,
                [(
                    http::header::CONTENT_TYPE,
                    "application/vnd.amazon.eventstream",
                )],
                body,
            )
                .into_response();
            with_request_id(resp, &request_id)
        }
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!(action = %action, error = %e, "kinesis request failed");
            } else {
                tracing::debug!(action = %action, error = %e, "kinesis request refused");
            }
            error_response(&e, format, &request_id)
        }
    }
}

async fn read_body(body: Body) -> Result<Bytes, KinesisError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(KinesisError::new(
                    "SerializationException",
                    413,
                    format!("Request body is larger than the {MAX_BODY_BYTES} bytes allowed."),
                ))
            } else {
                Err(KinesisError::serialization(format!(
                    "failed to read the request body: {e}"
                )))
            }
        }
    }
}

async fn process(
    api: &KinesisApi,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    format: Format,
    action: &str,
) -> Result<Reply, KinesisError> {
    // The body is bounded before anything else is done with it.
    let body = read_body(body).await?;
    if let Some(auth) = &api.auth {
        auth.verify(&method, &uri, &headers, &body, std::time::SystemTime::now())?;
    }
    if method != Method::POST {
        return Err(KinesisError::unknown_operation(&format!(
            "{method} {}",
            uri.path()
        )));
    }
    if action.is_empty() {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return Err(KinesisError::unknown_operation(target));
    }
    let input = Input::decode(format, &body)?;
    actions::dispatch(api, action, input).await
}
