//! `reshard`: a topology change of the test stream while the other faults run. The schedule draws
//! what to do (a split, a merge, or an UpdateShardCount) and the random numbers that choose the
//! shard, the split key and the target; which shards those numbers name is resolved only when the
//! action starts, against the open shards the cluster lists then (the map changes during the run).
//!
//! Resharding is asynchronous in streamd: the request returns at once and the stream stays UPDATING
//! until the children open. So the action is instantaneous: its start is the request and its end
//! only looks at the stream's status, without waiting for ACTIVE. Reshards therefore have their
//! own schedule (a separate random stream) and run alongside the other faults instead of taking
//! turns with them: a kill or partition can land in the middle of a split. A second reshard while
//! the stream is UPDATING is refused with ResourceInUse; that refusal is recorded, not an error.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use streamd_client::{ClientOptions, ErrorCode, RetryPolicy, StreamdClient, v1};

use super::Target;

/// Open shards kept between these bounds: below 2 there is nothing to merge, above 12 the
/// 3-node CI cluster spends its time opening groups.
pub const MIN_OPEN: u64 = 2;
pub const MAX_OPEN: u64 = 12;
/// Gap between reshard requests (short gaps land some while the previous one is still running,
/// to exercise ResourceInUse), and how long each one's window lasts in the history.
pub const GAP_MS: std::ops::RangeInclusive<u64> = 1_000..=8_000;
pub const WINDOW_MS: std::ops::RangeInclusive<u64> = 1_000..=3_000;
/// Deadline of each call the nemesis makes.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the schedule drew; the shards it names are resolved when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Draw {
    /// Split the open shard `pick` (by starting hash key, modulo the count) at the point `at`
    /// (a fraction of 2^64) of the way through its range.
    Split { pick: u64, at: u64 },
    /// Merge the adjacent pair `pick` (modulo the number of adjacent pairs).
    Merge { pick: u64 },
    /// UpdateShardCount to the legal target `pick` (modulo the number of legal targets).
    Scale { pick: u64 },
}

/// What the action did once it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// The request sent, e.g. `split shardId-000000000002 at 1701...`.
    pub request: String,
    /// Open shards before the request.
    pub open_before: u64,
    /// `accepted`, `in-use` (the stream was still UPDATING), or `unknown: <error>`.
    pub answer: String,
    /// The stream's status when the window ended, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_after: Option<String>,
}

pub(crate) fn draw(rng: &mut impl Rng) -> Draw {
    match rng.random_range(0..3u8) {
        0 => Draw::Split {
            pick: rng.random(),
            at: rng.random(),
        },
        1 => Draw::Merge { pick: rng.random() },
        _ => Draw::Scale { pick: rng.random() },
    }
}

/// An open shard's hash key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub id: String,
    pub start: u128,
    pub end: u128,
}

/// The request a draw makes of the open shards (sorted by starting hash key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Split { shard: String, key: u128 },
    Merge { shard: String, adjacent: String },
    Scale { target: u32 },
}

impl Request {
    pub fn describe(&self) -> String {
        match self {
            Request::Split { shard, key } => format!("split {shard} at {key}"),
            Request::Merge { shard, adjacent } => format!("merge {shard} with {adjacent}"),
            Request::Scale { target } => format!("update shard count to {target}"),
        }
    }
}

/// A key strictly inside `start..=end` (above the start, below the end), `at / 2^64` of the way.
pub fn split_key(start: u128, end: u128, at: u64) -> Option<u128> {
    let span = end.checked_sub(start)?;
    if span < 2 {
        return None;
    }
    // Room for keys start+1 ..= end-1: span-1 of them; off in 0..span-1. Split to avoid overflow.
    let room = span - 1;
    let off = if room > u128::from(u64::MAX) {
        (room >> 64) * u128::from(at)
    } else {
        (room * u128::from(at)) >> 64
    };
    Some(start + 1 + off.min(room - 1))
}

/// UpdateShardCount targets streamd accepts from `open` shards (x1/2 to x2, rounded inwards) that
/// keep the count within [`MIN_OPEN`, `MAX_OPEN`] and change it.
pub fn legal_targets(open: u64) -> Vec<u32> {
    let lo = open.div_ceil(2).max(MIN_OPEN);
    let hi = (open * 2).min(MAX_OPEN);
    (lo..=hi)
        .filter(|&t| t != open)
        .filter_map(|t| u32::try_from(t).ok())
        .collect()
}

/// Turns a draw into a request against `open` (sorted by start). A split at the upper bound
/// becomes a merge and a merge at the lower bound a split, so the count stays in bounds.
pub fn resolve(draw: Draw, open: &[Open]) -> Option<Request> {
    let n = open.len() as u64;
    if n == 0 {
        return None;
    }
    let split = |pick: u64, at: u64| {
        let s = &open[(pick % n) as usize];
        split_key(s.start, s.end, at).map(|key| Request::Split {
            shard: s.id.clone(),
            key,
        })
    };
    let merge = |pick: u64| {
        let pairs: Vec<(&Open, &Open)> = open
            .windows(2)
            .filter(|w| w[0].end.checked_add(1) == Some(w[1].start))
            .map(|w| (&w[0], &w[1]))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        let (a, b) = pairs[(pick % pairs.len() as u64) as usize];
        Some(Request::Merge {
            shard: a.id.clone(),
            adjacent: b.id.clone(),
        })
    };
    match draw {
        Draw::Split { pick, at } if n < MAX_OPEN => split(pick, at),
        Draw::Split { pick, .. } => merge(pick),
        Draw::Merge { pick } if n > MIN_OPEN => merge(pick),
        Draw::Merge { pick } => split(pick, pick.rotate_left(32)),
        Draw::Scale { pick } => {
            let targets = legal_targets(n);
            if targets.is_empty() {
                return split(pick, pick.rotate_left(32));
            }
            Some(Request::Scale {
                target: targets[(pick % targets.len() as u64) as usize],
            })
        }
    }
}

fn client(target: &Target) -> Result<StreamdClient, String> {
    let endpoints: Vec<String> = target.endpoints.iter().map(|(_, e)| e.clone()).collect();
    // Reads (ListShards, the status) move on to the next node when one is down or cut off, so a
    // killed node does not make the action skip; the reshard request itself is a write and is
    // never retried (its outcome would be unknown twice over).
    let options = ClientOptions {
        request_timeout: CALL_TIMEOUT,
        connect_timeout: Duration::from_secs(1),
        read_retry: RetryPolicy {
            max_attempts: endpoints.len().max(1) as u32,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
    };
    StreamdClient::connect_with(&endpoints, options).map_err(|e| e.to_string())
}

fn parse_key(s: &str) -> Option<u128> {
    s.parse().ok()
}

/// The open shards, sorted by starting hash key, as any node lists them.
async fn open_shards(c: &StreamdClient, stream: &str) -> Result<Vec<Open>, String> {
    let shards: Vec<v1::Shard> = tokio::time::timeout(2 * CALL_TIMEOUT, c.list_shards(stream))
        .await
        .map_err(|_| "ListShards: no answer in time".to_string())?
        .map_err(|e| format!("ListShards: {e}"))?;
    let mut open = Vec::new();
    for s in shards {
        let closed = s
            .sequence_number_range
            .as_ref()
            .is_some_and(|r| r.ending_sequence_number.is_some());
        if closed {
            continue;
        }
        let range = s
            .hash_key_range
            .as_ref()
            .ok_or_else(|| format!("{} has no hash key range", s.shard_id))?;
        let (Some(start), Some(end)) = (
            parse_key(&range.starting_hash_key),
            parse_key(&range.ending_hash_key),
        ) else {
            return Err(format!("{} has a malformed hash key range", s.shard_id));
        };
        open.push(Open {
            id: s.shard_id,
            start,
            end,
        });
    }
    open.sort_by_key(|o| o.start);
    Ok(open)
}

/// Sends the request a draw resolves to. `Ok` for every answer the cluster may legitimately give
/// under faults (accepted, in use, unknown); `Err` only when the request itself was wrong, which
/// is the harness's mistake.
pub(crate) async fn start(target: &Target, draw: Draw) -> Result<Done, String> {
    let c = client(target)?;
    let open = match open_shards(&c, &target.stream).await {
        Ok(open) => open,
        // Under faults the map may be out of reach; that is the run, not a harness error.
        Err(e) => {
            return Ok(Done {
                request: "none".into(),
                open_before: 0,
                answer: format!("skipped: {e}"),
                status_after: None,
            });
        }
    };
    let request = resolve(draw, &open).ok_or_else(|| format!("nothing to do with {draw:?}"))?;
    let stream = target.stream.as_str();
    let call = async {
        match &request {
            Request::Split { shard, key } => c.split_shard(stream, shard, &key.to_string()).await,
            Request::Merge { shard, adjacent } => c.merge_shards(stream, shard, adjacent).await,
            Request::Scale { target } => c.update_shard_count(stream, *target).await.map(|_| ()),
        }
    };
    let answer = match tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(1), call).await {
        Ok(Ok(())) => "accepted".to_string(),
        Ok(Err(e)) if e.code() == ErrorCode::ResourceInUse => "in-use".to_string(),
        Ok(Err(e))
            if matches!(
                e.code(),
                ErrorCode::InvalidArgument | ErrorCode::Validation | ErrorCode::LimitExceeded
            ) =>
        {
            return Err(format!("{} refused: {e}", request.describe()));
        }
        Ok(Err(e)) => format!("unknown: {e}"),
        Err(_) => "unknown: no answer in time".to_string(),
    };
    Ok(Done {
        request: request.describe(),
        open_before: open.len() as u64,
        answer,
        status_after: None,
    })
}

/// The end of a reshard window: only reads the stream's status (the change goes on by itself).
pub(crate) async fn status(target: &Target) -> Option<String> {
    let c = client(target).ok()?;
    let d = tokio::time::timeout(CALL_TIMEOUT, c.describe_stream_summary(&target.stream))
        .await
        .ok()?
        .ok()?;
    Some(
        v1::StreamStatus::try_from(d.stream_status)
            .map(|s| s.as_str_name().to_string())
            .unwrap_or_else(|_| format!("status {}", d.stream_status)),
    )
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn even(n: u128) -> Vec<Open> {
        let step = u128::MAX / n;
        (0..n)
            .map(|i| Open {
                id: format!("s{i}"),
                start: i * step,
                end: if i == n - 1 {
                    u128::MAX
                } else {
                    (i + 1) * step - 1
                },
            })
            .collect()
    }

    #[test]
    fn split_keys_are_strictly_inside_the_range() {
        for at in [0, 1, u64::MAX / 2, u64::MAX] {
            for (s, e) in [
                (0, u128::MAX),
                (10, 12),
                (5, 1000),
                (0, u128::from(u64::MAX) + 7),
            ] {
                let k = split_key(s, e, at).unwrap();
                assert!(k > s && k < e, "{s} < {k} < {e}");
            }
        }
        assert_eq!(split_key(3, 4, 9), None, "no key strictly inside");
    }

    #[test]
    fn targets_stay_legal_and_in_bounds() {
        assert_eq!(legal_targets(4), vec![2, 3, 5, 6, 7, 8]);
        assert_eq!(legal_targets(2), vec![3, 4]);
        assert_eq!(legal_targets(12), vec![6, 7, 8, 9, 10, 11]);
        for n in 2..=12 {
            for t in legal_targets(n) {
                let t = u64::from(t);
                assert!(t * 2 >= n && t <= n * 2 && (MIN_OPEN..=MAX_OPEN).contains(&t));
            }
        }
    }

    #[test]
    fn draws_resolve_to_requests_that_keep_the_count_in_bounds() {
        let four = even(4);
        assert!(matches!(
            resolve(Draw::Merge { pick: 5 }, &four),
            Some(Request::Merge { shard, adjacent }) if shard == "s2" && adjacent == "s3"
        ));
        let two = even(2);
        assert!(matches!(
            resolve(Draw::Merge { pick: 0 }, &two),
            Some(Request::Split { .. })
        ));
        let twelve = even(12);
        assert!(matches!(
            resolve(Draw::Split { pick: 0, at: 7 }, &twelve),
            Some(Request::Merge { .. })
        ));
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            match resolve(draw(&mut rng), &four) {
                Some(Request::Split { shard, key }) => {
                    let s = four.iter().find(|o| o.id == shard).unwrap();
                    assert!(key > s.start && key < s.end);
                }
                Some(Request::Scale { target }) => assert!((2..=8).contains(&target)),
                Some(Request::Merge { .. }) => {}
                None => panic!("every draw does something with 4 shards"),
            }
        }
    }
}
