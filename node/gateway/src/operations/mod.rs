//! The public operations, grouped by what they touch.

pub(crate) mod consumers;
pub(crate) mod get;
pub(crate) mod put;
pub(crate) mod reshard;
pub(crate) mod streams;

use std::sync::Arc;

use streamd_meta::{StreamMeta, StreamStatus};
use streamd_proto::ApiError;
use streamd_proto::ids::StreamName;

use crate::Gateway;

pub(crate) fn stream_name(name: &str) -> Result<StreamName, ApiError> {
    StreamName::try_from(name).map_err(|e| ApiError::invalid(e.to_string()))
}

pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Stream {name} under account 000000000000 not found."
    ))
}

impl Gateway {
    /// The stream's metadata, if it exists (shared with the published state, not copied).
    pub(crate) fn stream(&self, name: &str) -> Result<Arc<StreamMeta>, ApiError> {
        stream_name(name)?;
        self.meta
            .read()
            .streams
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    }

    /// The stream, refusing data-plane calls until it is ready (as Kinesis does while CREATING).
    pub(crate) fn active_stream(&self, name: &str) -> Result<Arc<StreamMeta>, ApiError> {
        let s = self.stream(name)?;
        match s.status {
            StreamStatus::Active | StreamStatus::Updating => Ok(s),
            _ => Err(not_found(name)),
        }
    }
}
