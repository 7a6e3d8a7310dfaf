//! `streamctl tail NAME`: follows every open shard and, after a split or merge, the children.
//!
//! One task per shard reads and sends what it reads to this module's loop, which prints. A
//! child is followed from TRIM_HORIZON once every parent this tail followed has ended (the
//! parent's last GetRecords names the children), so a key's records print in order across a
//! reshard, as Kinesis consumers must read them.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use streamd_client::{ErrorCode, StreamdClient, v1};
use tokio::sync::mpsc;

use super::Ctx;
use super::position::StartPosition;
use super::records::{RecordView, fetch, record_line, record_view, sort_by_id};
use super::views::is_open;
use crate::cli::TailArgs;
use crate::error::CtlError;

/// Pause after an empty page: keeps each shard under Kinesis's 5 reads/s.
const IDLE_POLL: Duration = Duration::from_millis(250);

enum Event {
    Records(Vec<RecordView>),
    /// The shard was closed and read to its end.
    Ended {
        shard_id: String,
        children: Vec<v1::ChildShard>,
    },
    Failed(CtlError),
}

pub(crate) async fn run(ctx: &Ctx, args: TailArgs) -> Result<(), CtlError> {
    let from = StartPosition::parse(&args.from)?;
    if from.sequence().is_some() {
        return Err(CtlError::Usage(
            "tail starts at trim-horizon, latest or at-timestamp; to start at a sequence \
             number use `streamctl get NAME --from at-sequence S`"
                .into(),
        ));
    }
    let name = args.name.clone();
    let mut shards = ctx
        .client
        .list_shards(&name)
        .await
        .map_err(|e| CtlError::about_stream(&name, e))?;
    sort_by_id(&mut shards);
    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let mut followed: HashSet<String> = HashSet::new();
    let mut ended: HashSet<String> = HashSet::new();
    // Children seen at a parent's end, waiting for their other parents.
    let mut waiting: BTreeMap<String, v1::ChildShard> = BTreeMap::new();
    for shard in shards.iter().filter(|s| is_open(s)) {
        followed.insert(shard.shard_id.clone());
        spawn_follower(
            &ctx.client,
            &name,
            &shard.shard_id,
            from.clone(),
            tx.clone(),
        );
    }
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let mut printed = 0u64;
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            () = sleep_until(deadline) => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        // Never None: this loop holds a sender.
        let Some(event) = event else { return Ok(()) };
        match event {
            Event::Records(records) => {
                for r in &records {
                    ctx.out.line(r, record_line)?;
                    printed += 1;
                    if args.limit.is_some_and(|l| printed >= l) {
                        return Ok(());
                    }
                }
            }
            Event::Ended { shard_id, children } => {
                ended.insert(shard_id);
                for child in children {
                    if !followed.contains(&child.shard_id) {
                        waiting.insert(child.shard_id.clone(), child);
                    }
                }
                let ready: Vec<String> = waiting
                    .values()
                    .filter(|c| {
                        c.parent_shards
                            .iter()
                            .all(|p| ended.contains(p) || !followed.contains(p))
                    })
                    .map(|c| c.shard_id.clone())
                    .collect();
                for id in ready {
                    waiting.remove(&id);
                    followed.insert(id.clone());
                    spawn_follower(
                        &ctx.client,
                        &name,
                        &id,
                        StartPosition::TrimHorizon,
                        tx.clone(),
                    );
                }
            }
            Event::Failed(e) => return Err(e),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn spawn_follower(
    client: &StreamdClient,
    stream: &str,
    shard_id: &str,
    from: StartPosition,
    tx: mpsc::Sender<Event>,
) {
    let client = client.clone();
    let stream = stream.to_string();
    let shard_id = shard_id.to_string();
    tokio::spawn(async move {
        let event = match follow(&client, &stream, &shard_id, &from, &tx).await {
            Ok(children) => Event::Ended { shard_id, children },
            Err(e) => Event::Failed(e),
        };
        // The receiver is gone only when tail is exiting.
        let _ = tx.send(event).await;
    });
}

/// Reads one shard until it ends; returns the children its last page names.
async fn follow(
    client: &StreamdClient,
    stream: &str,
    shard_id: &str,
    from: &StartPosition,
    tx: &mpsc::Sender<Event>,
) -> Result<Vec<v1::ChildShard>, CtlError> {
    let (kind, seq, ts) = from.iterator_args();
    let mut iterator = client
        .get_shard_iterator(stream, shard_id, kind, seq, ts)
        .await
        .map_err(|e| CtlError::about_stream(stream, e))?;
    loop {
        let page = match fetch(client, &iterator, None, u32::MAX).await {
            Ok(page) => page,
            // A node lost mid-tail: keep following through the others.
            Err(e) if e.code() == ErrorCode::Unavailable || e.code() == ErrorCode::NotLeader => {
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            Err(e) => return Err(CtlError::about_stream(stream, e)),
        };
        let idle = page.records.is_empty();
        if !idle {
            let views = page
                .records
                .iter()
                .map(|r| record_view(shard_id, r))
                .collect();
            if tx.send(Event::Records(views)).await.is_err() {
                return Ok(Vec::new());
            }
        }
        match page.next_shard_iterator {
            Some(next) if !next.is_empty() => iterator = next,
            _ => return Ok(page.child_shards),
        }
        if idle {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}
