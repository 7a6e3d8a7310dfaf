//! `streamctl stream create|list|describe|delete|retention|scale`.

use serde::Serialize;
use streamd_client::{ErrorCode, v1};

use super::Ctx;
use super::views::{mode_name, status_name, stream_text, stream_view};
use crate::cli::{StreamCmd, WaitArgs};
use crate::error::CtlError;
use crate::output::Table;
use crate::progress::{Poll, wait};
use crate::time::format_millis;

pub(crate) async fn run(ctx: &Ctx, cmd: StreamCmd) -> Result<(), CtlError> {
    match cmd {
        StreamCmd::Create { name, shards, wait } => create(ctx, &name, shards, &wait).await,
        StreamCmd::List => list(ctx).await,
        StreamCmd::Describe { name } => describe(ctx, &name).await,
        StreamCmd::Delete { name, wait } => delete(ctx, &name, &wait).await,
        StreamCmd::Retention { name, hours } => retention(ctx, &name, hours).await,
        StreamCmd::Scale { name, shards, wait } => scale(ctx, &name, shards, &wait).await,
    }
}

#[derive(Debug, Serialize)]
struct Changed {
    stream: String,
    action: &'static str,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    shards: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_shards: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_hours: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_retention_hours: Option<u32>,
}

impl Changed {
    fn new(stream: &str, action: &'static str, status: impl Into<String>) -> Changed {
        Changed {
            stream: stream.to_string(),
            action,
            status: status.into(),
            shards: None,
            previous_shards: None,
            retention_hours: None,
            previous_retention_hours: None,
        }
    }
}

async fn create(ctx: &Ctx, name: &str, shards: u32, w: &WaitArgs) -> Result<(), CtlError> {
    if shards == 0 {
        return Err(CtlError::Usage("--shards must be at least 1".into()));
    }
    ctx.client
        .create_stream(name, shards)
        .await
        .map_err(|e| match e.code() {
            ErrorCode::ResourceInUse => CtlError::StreamExists {
                stream: name.to_string(),
            },
            _ => CtlError::from_client(e),
        })?;
    let status = if w.no_wait {
        "CREATING".to_string()
    } else {
        wait_active(ctx, name, w, "ACTIVE").await?;
        "ACTIVE".to_string()
    };
    let mut view = Changed::new(name, "created", status);
    view.shards = Some(shards);
    ctx.out.emit(&view, |v| {
        format!(
            "created stream '{}' with {shards} shards ({})",
            v.stream, v.status
        )
    })
}

/// Waits until the stream is ACTIVE, for `what` (shown in the spinner).
async fn wait_active(
    ctx: &Ctx,
    name: &str,
    w: &WaitArgs,
    what: &str,
) -> Result<v1::StreamDescription, CtlError> {
    wait(
        &format!("stream '{name}' to be {what}"),
        &format!("streamctl stream describe {name}"),
        w.wait_timeout,
        || async {
            match ctx.client.describe_stream_summary(name).await {
                Ok(d) if d.stream_status() == v1::StreamStatus::Active => Ok(Poll::Done(d)),
                Ok(d) => Ok(Poll::Pending(status_name(d.stream_status()).to_string())),
                // Just created: the node asked may not have applied it yet.
                Err(e) if e.code() == ErrorCode::ResourceNotFound || e.retryable() => {
                    Ok(Poll::Pending(e.to_string()))
                }
                Err(e) => Err(CtlError::about_stream(name, e)),
            }
        },
    )
    .await
}

#[derive(Debug, Serialize)]
struct StreamList {
    streams: Vec<StreamListItem>,
}

#[derive(Debug, Serialize)]
struct StreamListItem {
    name: String,
    status: &'static str,
    mode: &'static str,
    created: String,
    arn: String,
}

fn list_view(summaries: &[v1::StreamSummary]) -> StreamList {
    let mut streams: Vec<StreamListItem> = summaries
        .iter()
        .map(|s| StreamListItem {
            name: s.stream_name.clone(),
            status: status_name(s.stream_status()),
            mode: mode_name(s.stream_mode()),
            created: format_millis(s.stream_creation_timestamp_ms),
            arn: s.stream_arn.clone(),
        })
        .collect();
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    StreamList { streams }
}

fn list_text(v: &StreamList) -> String {
    if v.streams.is_empty() {
        return "no streams; create one with `streamctl stream create NAME --shards N`".into();
    }
    let mut t = Table::new(["NAME", "STATUS", "MODE", "CREATED"]);
    for s in &v.streams {
        t.row(vec![
            s.name.clone(),
            s.status.to_string(),
            s.mode.to_string(),
            s.created.clone(),
        ]);
    }
    t.render()
}

async fn list(ctx: &Ctx) -> Result<(), CtlError> {
    let summaries = ctx
        .client
        .list_stream_summaries()
        .await
        .map_err(CtlError::from_client)?;
    ctx.out.emit(&list_view(&summaries), list_text)
}

async fn describe(ctx: &Ctx, name: &str) -> Result<(), CtlError> {
    let d = ctx
        .client
        .describe_stream(name)
        .await
        .map_err(|e| CtlError::about_stream(name, e))?;
    ctx.out.emit(&stream_view(&d), stream_text)
}

async fn delete(ctx: &Ctx, name: &str, w: &WaitArgs) -> Result<(), CtlError> {
    ctx.client
        .delete_stream(name)
        .await
        .map_err(|e| CtlError::about_stream(name, e))?;
    if !w.no_wait {
        wait(
            &format!("stream '{name}' to be deleted"),
            "streamctl stream list",
            w.wait_timeout,
            || async {
                match ctx.client.describe_stream_summary(name).await {
                    Err(e) if e.code() == ErrorCode::ResourceNotFound => Ok(Poll::Done(())),
                    Err(e) if e.retryable() => Ok(Poll::Pending(e.to_string())),
                    Err(e) => Err(CtlError::from_client(e)),
                    Ok(d) => Ok(Poll::Pending(status_name(d.stream_status()).to_string())),
                }
            },
        )
        .await?;
    }
    let status = if w.no_wait { "DELETING" } else { "DELETED" };
    let view = Changed::new(name, "deleted", status);
    ctx.out.emit(&view, |v| {
        format!("deleted stream '{}' ({})", v.stream, v.status)
    })
}

async fn retention(ctx: &Ctx, name: &str, hours: u32) -> Result<(), CtlError> {
    use streamd_proto::limits::{MAX_RETENTION_HOURS, MIN_RETENTION_HOURS};
    if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
        return Err(CtlError::Usage(format!(
            "--hours must be between {MIN_RETENTION_HOURS} and {MAX_RETENTION_HOURS}, got {hours}"
        )));
    }
    let d = ctx
        .client
        .describe_stream_summary(name)
        .await
        .map_err(|e| CtlError::about_stream(name, e))?;
    let previous = d.retention_period_hours;
    // Kinesis has two calls, one per direction; the user only says where to go.
    let result = if hours > previous {
        ctx.client.increase_retention(name, hours).await
    } else if hours < previous {
        ctx.client.decrease_retention(name, hours).await
    } else {
        Ok(())
    };
    result.map_err(|e| CtlError::about_stream(name, e))?;
    let mut view = Changed::new(name, "retention", status_name(d.stream_status()));
    view.retention_hours = Some(hours);
    view.previous_retention_hours = Some(previous);
    ctx.out.emit(&view, |v| {
        format!(
            "stream '{}' keeps records {hours} hours (was {previous})",
            v.stream
        )
    })
}

async fn scale(ctx: &Ctx, name: &str, target: u32, w: &WaitArgs) -> Result<(), CtlError> {
    if target == 0 {
        return Err(CtlError::Usage("--shards must be at least 1".into()));
    }
    let resp = ctx
        .client
        .update_shard_count(name, target)
        .await
        .map_err(|e| CtlError::about_stream(name, e))?;
    let status = if w.no_wait {
        "UPDATING".to_string()
    } else {
        wait(
            &format!("stream '{name}' to have {target} open shards"),
            &format!("streamctl shard list {name}"),
            w.wait_timeout,
            || async {
                match ctx.client.describe_stream_summary(name).await {
                    Ok(d)
                        if d.stream_status() == v1::StreamStatus::Active
                            && d.open_shard_count == target =>
                    {
                        Ok(Poll::Done(()))
                    }
                    Ok(d) => Ok(Poll::Pending(format!(
                        "{}, {} open shards",
                        status_name(d.stream_status()),
                        d.open_shard_count
                    ))),
                    Err(e) if e.retryable() => Ok(Poll::Pending(e.to_string())),
                    Err(e) => Err(CtlError::about_stream(name, e)),
                }
            },
        )
        .await?;
        "ACTIVE".to_string()
    };
    let mut view = Changed::new(name, "scaled", status);
    view.shards = Some(target);
    view.previous_shards = Some(resp.current_shard_count);
    ctx.out.emit(&view, |v| {
        format!(
            "stream '{}' scaled from {} to {target} open shards ({})",
            v.stream, resp.current_shard_count, v.status
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_and_says_how_to_start() {
        let s = |n: &str| v1::StreamSummary {
            stream_name: n.into(),
            stream_status: v1::StreamStatus::Active as i32,
            ..v1::StreamSummary::default()
        };
        let v = list_view(&[s("b"), s("a")]);
        assert_eq!(v.streams[0].name, "a");
        assert!(list_text(&v).starts_with("NAME"));
        assert!(list_text(&list_view(&[])).contains("stream create"));
    }
}
