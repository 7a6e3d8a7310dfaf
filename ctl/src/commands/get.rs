//! `streamctl get NAME --from POSITION [--shard ID] [--limit N]`: reads shards up to their
//! current end and prints what it read.

use serde::Serialize;
use streamd_client::v1;
use streamd_proto::limits::MAX_GET_RECORDS;

use super::Ctx;
use super::position::StartPosition;
use super::records::{RecordView, fetch, normalize_shard_id, record_line, record_view, sort_by_id};
use crate::cli::GetArgs;
use crate::error::CtlError;

/// Throttled calls one shard's read waits out before `get` gives up.
const MAX_THROTTLED: u32 = 120;

#[derive(Debug, Serialize)]
struct GetView {
    stream: String,
    records: Vec<RecordView>,
}

pub(crate) async fn run(ctx: &Ctx, args: GetArgs) -> Result<(), CtlError> {
    let from = StartPosition::parse(&args.from)?;
    let name = args.name.as_str();
    let mut shards = ctx
        .client
        .list_shards(name)
        .await
        .map_err(|e| CtlError::about_stream(name, e))?;
    sort_by_id(&mut shards);
    let selected = select_shards(name, shards, args.shard.as_deref(), &from)?;
    let mut records = Vec::new();
    for shard in &selected {
        let left = args.limit.map(|l| l.saturating_sub(records.len() as u64));
        if left == Some(0) {
            break;
        }
        read_shard(ctx, name, &shard.shard_id, &from, left, &mut records).await?;
    }
    let view = GetView {
        stream: name.to_string(),
        records,
    };
    ctx.out.emit(&view, |v| {
        v.records
            .iter()
            .map(record_line)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// The shards to read: the one named, else the one a sequence number belongs to, else all.
fn select_shards(
    stream: &str,
    shards: Vec<v1::Shard>,
    named: Option<&str>,
    from: &StartPosition,
) -> Result<Vec<v1::Shard>, CtlError> {
    if let Some(id) = named {
        let id = normalize_shard_id(id);
        return match shards.into_iter().find(|s| s.shard_id == id) {
            Some(s) => Ok(vec![s]),
            None => Err(CtlError::ShardNotFound {
                stream: stream.to_string(),
                shard: id,
            }),
        };
    }
    if let Some(seq) = from.sequence() {
        // A sequence number carries its shard's group id (proto/src/ids.rs).
        let group = seq.group_id();
        return match shards.into_iter().find(|s| s.group_id == group) {
            Some(s) => Ok(vec![s]),
            None => Err(CtlError::Usage(format!(
                "no shard of stream '{stream}' issued that sequence number; pass --shard ID"
            ))),
        };
    }
    Ok(shards)
}

/// Reads one shard from `from` until its current end (an empty page at the tip, or the end of
/// a closed shard) or until `limit` records.
async fn read_shard(
    ctx: &Ctx,
    stream: &str,
    shard_id: &str,
    from: &StartPosition,
    limit: Option<u64>,
    out: &mut Vec<RecordView>,
) -> Result<(), CtlError> {
    let (kind, seq, ts) = from.iterator_args();
    let mut iterator = ctx
        .client
        .get_shard_iterator(stream, shard_id, kind, seq, ts)
        .await
        .map_err(|e| CtlError::about_stream(stream, e))?;
    let mut read = 0u64;
    loop {
        let want = limit.map_or(MAX_GET_RECORDS, |l| {
            u32::try_from(l - read)
                .unwrap_or(MAX_GET_RECORDS)
                .min(MAX_GET_RECORDS)
        });
        let page = fetch(&ctx.client, &iterator, Some(want), MAX_THROTTLED)
            .await
            .map_err(CtlError::from_client)?;
        let at_tip = page.records.is_empty() && page.millis_behind_latest == 0;
        read += page.records.len() as u64;
        out.extend(page.records.iter().map(|r| record_view(shard_id, r)));
        if limit.is_some_and(|l| read >= l) {
            return Ok(());
        }
        match page.next_shard_iterator {
            Some(next) if !at_tip && !next.is_empty() => iterator = next,
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use streamd_proto::ids::SequenceNumber;

    use super::*;

    fn shard(n: u64, group: u64) -> v1::Shard {
        v1::Shard {
            shard_id: format!("shardId-{n:012}"),
            group_id: group,
            ..v1::Shard::default()
        }
    }

    #[test]
    fn shard_selection() {
        let all = || vec![shard(0, 5), shard(1, 6)];
        let named = select_shards("s", all(), Some("1"), &StartPosition::Latest).unwrap();
        assert_eq!(named[0].group_id, 6);
        let e = select_shards("s", all(), Some("9"), &StartPosition::Latest).unwrap_err();
        assert!(e.to_string().contains("shard list s"), "{e}");
        let seq = SequenceNumber::new(5, 10, 0).to_string();
        let by_seq = select_shards("s", all(), None, &StartPosition::AtSequence(seq)).unwrap();
        assert_eq!(by_seq[0].shard_id, "shardId-000000000000");
        assert_eq!(
            select_shards("s", all(), None, &StartPosition::TrimHorizon)
                .unwrap()
                .len(),
            2
        );
    }
}
