//! `streamctl shard list|split|merge`. Splits and merges are asynchronous on the server; these
//! commands wait (with a spinner) until the parents are closed and the stream is ACTIVE again,
//! and print the children.

use serde::Serialize;
use streamd_client::v1;
use streamd_proto::ids::HashKey;

use super::Ctx;
use super::records::{normalize_shard_id, sort_by_id};
use super::views::{ShardView, shard_view, shards_table, status_name};
use crate::cli::{ShardCmd, WaitArgs};
use crate::error::CtlError;
use crate::progress::{Poll, wait};

pub(crate) async fn run(ctx: &Ctx, cmd: ShardCmd) -> Result<(), CtlError> {
    match cmd {
        ShardCmd::List { name } => {
            let shards = shards_of(ctx, &name).await?;
            let view = ShardList {
                stream: name,
                shards: shards.iter().map(shard_view).collect(),
            };
            ctx.out.emit(&view, |v| shards_table(&v.shards))
        }
        ShardCmd::Split {
            name,
            shard,
            at,
            wait,
        } => split(ctx, &name, &shard, at.as_deref(), &wait).await,
        ShardCmd::Merge {
            name,
            shard,
            adjacent,
            wait,
        } => merge(ctx, &name, &shard, &adjacent, &wait).await,
    }
}

#[derive(Debug, Serialize)]
struct ShardList {
    stream: String,
    shards: Vec<ShardView>,
}

#[derive(Debug, Serialize)]
struct ReshardView {
    stream: String,
    action: &'static str,
    parents: Vec<String>,
    /// Empty with --no-wait: the children exist once the reshard commits.
    children: Vec<ShardView>,
}

async fn shards_of(ctx: &Ctx, name: &str) -> Result<Vec<v1::Shard>, CtlError> {
    let mut shards = ctx
        .client
        .list_shards(name)
        .await
        .map_err(|e| CtlError::about_stream(name, e))?;
    sort_by_id(&mut shards);
    Ok(shards)
}

fn find<'a>(stream: &str, shards: &'a [v1::Shard], id: &str) -> Result<&'a v1::Shard, CtlError> {
    let id = normalize_shard_id(id);
    shards
        .iter()
        .find(|s| s.shard_id == id)
        .ok_or_else(|| CtlError::ShardNotFound {
            stream: stream.to_string(),
            shard: id,
        })
}

/// The middle of the shard's range: the upper child starts there.
fn midpoint(shard: &v1::Shard) -> Result<HashKey, String> {
    let range = shard
        .hash_key_range
        .as_ref()
        .ok_or_else(|| format!("{} has no hash key range", shard.shard_id))?;
    let start: HashKey = range
        .starting_hash_key
        .parse()
        .map_err(|e| format!("bad starting hash key: {e}"))?;
    let end: HashKey = range
        .ending_hash_key
        .parse()
        .map_err(|e| format!("bad ending hash key: {e}"))?;
    if start >= end {
        return Err(format!(
            "{} covers a single hash key and cannot be split",
            shard.shard_id
        ));
    }
    // start + (end - start) / 2 + 1 never overflows and is in (start, end].
    Ok(HashKey(start.0 + (end.0 - start.0) / 2 + 1))
}

async fn split(
    ctx: &Ctx,
    name: &str,
    shard: &str,
    at: Option<&str>,
    w: &WaitArgs,
) -> Result<(), CtlError> {
    let shards = shards_of(ctx, name).await?;
    let parent = find(name, &shards, shard)?;
    let key = match at {
        Some(k) => k
            .parse::<HashKey>()
            .map_err(|_| CtlError::Usage(format!("--at {k:?} is not a decimal hash key")))?,
        None => midpoint(parent).map_err(CtlError::Usage)?,
    };
    let parent_id = parent.shard_id.clone();
    ctx.client
        .split_shard(name, &parent_id, &key.to_string())
        .await
        .map_err(|e| CtlError::about_stream(name, e))?;
    finish(ctx, name, "split", vec![parent_id], w).await
}

async fn merge(
    ctx: &Ctx,
    name: &str,
    shard: &str,
    adjacent: &str,
    w: &WaitArgs,
) -> Result<(), CtlError> {
    let shards = shards_of(ctx, name).await?;
    let a = find(name, &shards, shard)?.shard_id.clone();
    let b = find(name, &shards, adjacent)?.shard_id.clone();
    ctx.client
        .merge_shards(name, &a, &b)
        .await
        .map_err(|e| CtlError::about_stream(name, e))?;
    finish(ctx, name, "merge", vec![a, b], w).await
}

/// Waits (unless --no-wait) until every parent is closed and the stream is ACTIVE, then prints
/// the parents' children.
async fn finish(
    ctx: &Ctx,
    name: &str,
    action: &'static str,
    parents: Vec<String>,
    w: &WaitArgs,
) -> Result<(), CtlError> {
    let children = if w.no_wait {
        Vec::new()
    } else {
        wait(
            &format!("the {action} of {} to finish", parents.join(" and ")),
            &format!("streamctl shard list {name}"),
            w.wait_timeout,
            || async {
                let summary = match ctx.client.describe_stream_summary(name).await {
                    Ok(s) => s,
                    Err(e) if e.retryable() => return Ok(Poll::Pending(e.to_string())),
                    Err(e) => return Err(CtlError::about_stream(name, e)),
                };
                let shards = shards_of(ctx, name).await?;
                Ok(reshard_state(&summary, &shards, &parents))
            },
        )
        .await?
    };
    let view = ReshardView {
        stream: name.to_string(),
        action,
        parents,
        children,
    };
    ctx.out.emit(&view, |v| {
        if v.children.is_empty() {
            format!(
                "{} of {} started; follow it with `streamctl shard list {}`",
                v.action,
                v.parents.join(" and "),
                v.stream
            )
        } else {
            format!(
                "{} of {} done; children:\n{}",
                v.action,
                v.parents.join(" and "),
                shards_table(&v.children)
            )
        }
    })
}

/// Done when the stream is ACTIVE and every parent has an ending sequence number; the children
/// are the shards that name a parent.
fn reshard_state(
    summary: &v1::StreamDescription,
    shards: &[v1::Shard],
    parents: &[String],
) -> Poll<Vec<ShardView>> {
    let closed = parents.iter().all(|p| {
        shards.iter().any(|s| {
            &s.shard_id == p
                && s.sequence_number_range
                    .as_ref()
                    .is_some_and(|r| r.ending_sequence_number.is_some())
        })
    });
    let active = summary.stream_status() == v1::StreamStatus::Active;
    if !(closed && active) {
        return Poll::Pending(format!(
            "stream {}, parents {}",
            status_name(summary.stream_status()),
            if closed { "closed" } else { "open" }
        ));
    }
    let is_child = |s: &v1::Shard| {
        [&s.parent_shard_id, &s.adjacent_parent_shard_id]
            .into_iter()
            .flatten()
            .any(|p| parents.contains(p))
    };
    Poll::Done(
        shards
            .iter()
            .filter(|s| is_child(s))
            .map(shard_view)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, start: &str, end: &str) -> v1::Shard {
        v1::Shard {
            shard_id: id.into(),
            hash_key_range: Some(v1::HashKeyRange {
                starting_hash_key: start.into(),
                ending_hash_key: end.into(),
            }),
            ..v1::Shard::default()
        }
    }

    #[test]
    fn midpoint_splits_the_full_range_like_kinesis() {
        let full = shard("a", "0", &u128::MAX.to_string());
        assert_eq!(midpoint(&full).unwrap(), HashKey(1u128 << 127));
        assert_eq!(midpoint(&shard("a", "10", "11")).unwrap(), HashKey(11));
        assert!(
            midpoint(&shard("a", "5", "5"))
                .unwrap_err()
                .contains("single hash key")
        );
    }

    #[test]
    fn reshard_is_done_when_parents_close_and_the_stream_is_active() {
        let mut parent = shard("shardId-000000000000", "0", "9");
        let mut child = shard("shardId-000000000001", "0", "4");
        child.parent_shard_id = Some(parent.shard_id.clone());
        let mut summary = v1::StreamDescription {
            stream_status: v1::StreamStatus::Updating as i32,
            ..v1::StreamDescription::default()
        };
        let parents = vec![parent.shard_id.clone()];
        assert!(matches!(
            reshard_state(&summary, &[parent.clone(), child.clone()], &parents),
            Poll::Pending(_)
        ));
        parent.sequence_number_range = Some(v1::SequenceNumberRange {
            starting_sequence_number: "1".into(),
            ending_sequence_number: Some("2".into()),
        });
        summary.stream_status = v1::StreamStatus::Active as i32;
        match reshard_state(&summary, &[parent, child], &parents) {
            Poll::Done(children) => assert_eq!(children[0].shard_id, "shardId-000000000001"),
            Poll::Pending(s) => panic!("still pending: {s}"),
        }
    }
}
