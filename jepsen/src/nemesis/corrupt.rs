//! `corrupt`: damage one node's data on disk (property 12). The node in a drawn slot is stopped
//! with SIGKILL, then one of:
//!
//! - `flip`: one random bit of a random WAL segment (`DIR/node-<id>/wal/*.wal`), anywhere in it;
//! - `truncate`: a WAL segment cut inside a record: anywhere in an older segment, or inside the
//!   last record of the last one (a torn write: cutting the last segment earlier would drop
//!   records the node synced, which no crash does);
//! - `snapshot`: one random bit of a snapshot file (`DIR/node-<id>/snapshots/*.snap`), or of the
//!   WAL when there is none;
//! - `sled` (the `corrupt-sled` nemesis): one random bit of the node's sled database file
//!   (`DIR/node-<id>/sled/db`: the state machines of its replicas and the metadata).
//!
//! Then the node is started again and watched. The outcomes the server may have:
//!
//! - it starts: `started-clean` (nothing to see, e.g. a snapshot file it rebuilds anyway) or
//!   `torn-tail-cut` (its log says it cut a torn tail off the last segment; Raft then fetches
//!   what it lacks from its peers);
//! - it refuses to start with a corruption error: the harness does what an operator would
//!   (`detected-replaced`): a node with a new id joins in the same slot (`--join`, empty data
//!   directory), then the broken node is drained (`DrainNode`), so its replicas are rebuilt
//!   from its peers onto the others. streamd never reuses a removed node's id.
//!
//! Anything else (it exits without a corruption error, it is not ready in time, the replacement
//! fails) is `failed`, which property 12 reports. Whether corrupt data was *served* is for the
//! other properties: a record that is not what was written is a phantom, a lost or a moved one.
//!
//! sled checks its own log with a CRC per message and, recovering, drops what follows a bad
//! one; streamd refuses to start when that leaves a state machine older than the start of its
//! Raft log (`corrupt state of group ...`), and when sled refuses or panics on its files
//! (`corrupt sled database ...`). A flip sled recovers from with nothing lost is `started-clean`.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use streamd_testkit::probe::http_status;
use tokio::time::Instant;

use super::membership::{self, Waited};
use super::{Fault, Target};

/// How long a restarted node gets to be ready or to refuse its data.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a replacement gets to be ready.
const REPLACE_READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a broken node gets to be drained and removed: its replicas move at once, but a
/// stopped node is removed only after streamd's down timeout (10 s in runs with this nemesis).
const REPLACE_MOVE_DEADLINE: Duration = Duration::from_secs(90);
/// What streamd logs when it cuts a torn tail (`node/storage/src/wal/segment.rs`).
const TORN_TAIL_LOG: &str = "wal: truncating torn tail";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Damage {
    Flip,
    Truncate,
    Snapshot,
    Sled,
}

impl Damage {
    pub fn name(self) -> &'static str {
        match self {
            Damage::Flip => "flip",
            Damage::Truncate => "truncate",
            Damage::Snapshot => "snapshot",
            Damage::Sled => "sled",
        }
    }
}

pub(crate) fn draw(rng: &mut StdRng, nodes: u64) -> Fault {
    let damage = match rng.random_range(0..10) {
        0..=4 => Damage::Flip,
        5..=7 => Damage::Truncate,
        _ => Damage::Snapshot,
    };
    Fault::Corrupt {
        node: rng.random_range(1..=nodes),
        damage,
        pick: rng.random(),
        done: None,
    }
}

/// A `corrupt-sled` fault: one bit of a node's sled database.
pub(crate) fn draw_sled(rng: &mut StdRng, nodes: u64) -> Fault {
    Fault::Corrupt {
        node: rng.random_range(1..=nodes),
        damage: Damage::Sled,
        pick: rng.random(),
        done: None,
    }
}

/// What the fault did, for the history and results.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// The damaged node.
    pub node: u64,
    /// The file, offset and what was done there.
    pub damage: String,
    /// `started-clean`, `torn-tail-cut`, `detected-replaced`, `skipped` or `failed`.
    pub outcome: String,
    /// The node that replaced it, when it refused to start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<u64>,
    pub took_ms: u64,
    pub detail: String,
}

impl Done {
    pub(crate) fn describe(&self) -> String {
        if self.damage.is_empty() {
            format!("{} in {} ms: {}", self.outcome, self.took_ms, self.detail)
        } else {
            format!(
                "{} in {} ms: {}; {}",
                self.outcome, self.took_ms, self.damage, self.detail
            )
        }
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    s.sort();
    s
}

fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = fs::read_dir(dir.join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    s.sort();
    s
}

/// The records of a WAL segment as (start, end) byte ranges: `len u32 | crc u32 | len bytes`
/// after the 8-byte magic (`node/storage/src/wal/record.rs`). Stops at the first length that
/// runs past the end.
pub(crate) fn records(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 8;
    while let Some(len) = data.get(pos..pos + 4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let end = pos + 8 + len;
        if len == 0 || end > data.len() {
            break;
        }
        out.push((pos, end));
        pos = end;
    }
    out
}

fn flip(path: &Path, rng: &mut StdRng) -> Result<String, String> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len == 0 {
        return Err(format!("{} is empty", path.display()));
    }
    let offset = rng.random_range(0..len);
    let bit = rng.random_range(0..8u8);
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut b))
        .map_err(|e| e.to_string())?;
    b[0] ^= 1 << bit;
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.write_all(&b))
        .and_then(|()| f.sync_all())
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "flipped bit {bit} at offset {offset} of {} ({len} bytes)",
        name(path)
    ))
}

fn name(path: &Path) -> String {
    let mut parts: Vec<String> = path
        .iter()
        .rev()
        .take(3)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    parts.reverse();
    parts.join("/")
}

fn truncate(segs: &[PathBuf], rng: &mut StdRng) -> Result<String, String> {
    let i = rng.random_range(0..segs.len());
    let path = &segs[i];
    let last = i + 1 == segs.len();
    let data = fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let recs = records(&data);
    let (start, end) = match (last, recs.last()) {
        (_, None) => return Err(format!("{} holds no record", name(path))),
        (true, Some(r)) => *r,
        (false, Some(_)) => recs[rng.random_range(0..recs.len())],
    };
    // Strictly inside the record: at least one byte of it stays, at least one goes.
    let cut = start + 1 + rng.random_range(0..(end - start - 1).max(1));
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    f.set_len(cut as u64)
        .and_then(|()| f.sync_all())
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "truncated {} ({} segment) from {} to {cut} bytes, inside the record at {start}..{end}",
        name(path),
        if last { "last" } else { "older" },
        data.len()
    ))
}

/// Damages the data of a stopped node. Blocking file I/O.
pub(crate) fn damage(dir: &Path, damage: Damage, pick: u64) -> Result<String, String> {
    let mut rng = StdRng::seed_from_u64(pick);
    let segs = segments(dir);
    let snaps = snapshots(dir);
    match damage {
        Damage::Sled => {
            let db = dir.join("sled").join("db");
            if !db.exists() {
                return Err(format!("no sled database at {}", db.display()));
            }
            flip(&db, &mut rng)
        }
        Damage::Snapshot if !snaps.is_empty() => {
            let i = rng.random_range(0..snaps.len());
            flip(&snaps[i], &mut rng)
        }
        _ if segs.is_empty() => Err(format!("no WAL segment under {}", dir.display())),
        Damage::Truncate => truncate(&segs, &mut rng),
        Damage::Flip | Damage::Snapshot => {
            let i = rng.random_range(0..segs.len());
            let what = flip(&segs[i], &mut rng)?;
            Ok(if damage == Damage::Snapshot {
                format!("no snapshot file; {what}")
            } else {
                what
            })
        }
    }
}

/// What the node's log says since its last start.
fn log_since_start(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    match text.rfind("=== jepsen: starting") {
        Some(i) => text[i..].to_string(),
        None => text,
    }
}

fn corruption_in(log: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains("corrupt") || l.contains("Corrupt"))
        .map(|l| l.trim().chars().take(300).collect())
}

enum Restart {
    Ready { torn: bool },
    Refused(String),
}

pub(crate) async fn start(
    target: &Target,
    slot: u64,
    kind: Damage,
    pick: u64,
) -> Result<Done, Done> {
    let started = Instant::now();
    let mut done = Done {
        node: 0,
        damage: String::new(),
        outcome: "failed".into(),
        replacement: None,
        took_ms: 0,
        detail: String::new(),
    };
    let found = target.with_cluster(|c| {
        c.node_id(slot).zip(
            c.spec(slot)
                .map(|s| (s.data_dir.clone(), s.admin_addr, s.log_path.clone())),
        )
    });
    let Some((id, (dir, admin, log))) = found else {
        done.outcome = "skipped".into();
        done.detail = format!("slot {slot} holds no member (its node was removed)");
        return Ok(done);
    };
    done.node = id;
    if let Err(e) = target.with_cluster(|c| {
        if c.is_running(slot) {
            c.kill(slot)
        } else {
            Ok(())
        }
    }) {
        done.detail = format!("kill -9 node {id}: {e}");
        return Err(done);
    }
    let damaged = tokio::task::spawn_blocking(move || damage(&dir, kind, pick))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    done.damage = match damaged {
        Ok(d) => d,
        Err(e) => {
            // Nothing damaged: the node restarts as after a kill.
            let _ = target.with_cluster(|c| c.spawn(slot));
            done.outcome = "skipped".into();
            done.detail = format!("nothing to damage: {e}");
            done.took_ms = started.elapsed().as_millis() as u64;
            return Ok(done);
        }
    };
    if let Err(e) = target.with_cluster(|c| {
        c.expect_exit(slot, true)?;
        c.spawn(slot)
    }) {
        done.detail = format!("restart node {id}: {e}");
        return Err(done);
    }
    let waited = membership::wait_for(target, START_DEADLINE, false, || async {
        if let Some(exit) = target.with_cluster(|c| c.try_exit(slot).ok().flatten()) {
            let log = log_since_start(&log);
            return Ok(match corruption_in(&log) {
                Some(line) => Ok(Restart::Refused(line)),
                None => Err(format!(
                    "node {id} exited ({exit}) without a corruption error"
                )),
            });
        }
        match http_status(admin, "/readyz", Duration::from_secs(2)).await {
            Ok(200) => Ok(Ok(Restart::Ready {
                torn: log_since_start(&log).contains(TORN_TAIL_LOG),
            })),
            other => Err(format!("node {id} not ready: {other:?}")),
        }
    })
    .await;
    let _ = target.with_cluster(|c| c.expect_exit(slot, false));
    let result = match waited {
        Waited::Done(Ok(Restart::Ready { torn })) => {
            done.outcome = if torn {
                "torn-tail-cut"
            } else {
                "started-clean"
            }
            .into();
            done.detail = format!("node {id} started again");
            Ok(done)
        }
        Waited::Done(Ok(Restart::Refused(line))) => replace(target, slot, id, line, done).await,
        Waited::Done(Err(e)) => {
            done.detail = e;
            Err(done)
        }
        Waited::Stopped(last) | Waited::TimedOut(last) => {
            done.detail =
                format!("node {id} neither ready nor refused within {START_DEADLINE:?}: {last}");
            Err(done)
        }
    };
    result
        .map(|mut d| {
            d.took_ms = started.elapsed().as_millis() as u64;
            d
        })
        .map_err(|mut d| {
            d.took_ms = started.elapsed().as_millis() as u64;
            d
        })
}

/// Starts a node with a new id in `slot` (`--join` through `members`) and waits until it is
/// ready (admitted, caught up on the metadata). Returns its id.
async fn start_replacement(target: &Target, slot: u64) -> Result<u64, String> {
    let seeds: Vec<String> = target
        .with_cluster(|c| c.members())
        .iter()
        .map(|m| m.grpc.clone())
        .collect();
    let (new, admin) = target
        .with_cluster(|c| {
            let id = c.place_new(slot, seeds.join(","))?;
            c.spawn(slot)?;
            Ok::<_, std::io::Error>((id, c.spec(slot).map(|s| s.admin_addr)))
        })
        .map_err(|e| format!("cannot start a replacement in slot {slot}: {e}"))?;
    let admin = admin.ok_or_else(|| format!("replacement {new} has no address"))?;
    let ready = membership::wait_for(target, REPLACE_READY_DEADLINE, false, || async {
        match http_status(admin, "/readyz", Duration::from_secs(2)).await {
            Ok(200) => Ok(()),
            other => Err(format!("replacement {new} not ready: {other:?}")),
        }
    })
    .await;
    match ready {
        Waited::Done(()) => Ok(new),
        Waited::Stopped(e) | Waited::TimedOut(e) => Err(e),
    }
}

/// The operator's repair of a node that refuses its data: the broken node is drained (its
/// replicas rebuilt from its peers on the others) and a node with a new id takes its place.
/// streamd refuses a second node on an address a member holds, so the replacement goes into a
/// free slot when there is one (then the broken node is drained onto it), else into the broken
/// node's own slot once the cluster has removed it (a stopped node is removed only after the
/// down timeout, which the run sets to 10 s).
async fn replace(
    target: &Target,
    slot: u64,
    broken: u64,
    refusal: String,
    mut done: Done,
) -> Result<Done, Done> {
    if let Err(e) = target.with_cluster(|c| c.retire(slot)) {
        done.detail = format!("refused ({refusal}); cannot retire it: {e}");
        return Err(done);
    }
    let refused = format!("node {broken} refused to start ({refusal})");
    let free = target.with_cluster(|c| c.free_slots().first().copied());
    let mut steps = vec![refused.clone()];
    if let Some(spare) = free {
        match start_replacement(target, spare).await {
            Ok(new) => {
                done.replacement = Some(new);
                steps.push(format!("node {new} joined in free slot {spare}"));
            }
            Err(e) => {
                done.detail = format!("{refused}; {e}");
                return Err(done);
            }
        }
    }
    let members = target.with_cluster(|c| c.members());
    if let Err(e) = membership::request_drain(target, &members, broken).await {
        done.detail = format!("{}; {e}", steps.join("; "));
        return Err(done);
    }
    steps.push(format!("node {broken} drained"));
    let client = match membership::admin_client(&members, &[]) {
        Ok(c) => c,
        Err(e) => {
            done.detail = e;
            return Err(done);
        }
    };
    let removed = membership::wait_for(target, REPLACE_MOVE_DEADLINE, true, || {
        membership::removed(&client, &target.stream, broken)
    })
    .await;
    match removed {
        Waited::Done(()) => {
            let _ = target.with_cluster(|c| c.release(slot));
            steps.push(format!("node {broken} removed, slot {slot} free"));
        }
        Waited::Stopped(last) => {
            done.outcome = "detected-repairing".into();
            steps.push(format!(
                "the workload ended before node {broken} was removed ({last})"
            ));
            done.detail = steps.join("; ");
            return Ok(done);
        }
        Waited::TimedOut(last) => {
            steps.push(format!(
                "node {broken} not removed within {REPLACE_MOVE_DEADLINE:?}: {last}"
            ));
            done.detail = steps.join("; ");
            return Err(done);
        }
    }
    if done.replacement.is_none() {
        match start_replacement(target, slot).await {
            Ok(new) => {
                done.replacement = Some(new);
                steps.push(format!("node {new} joined in slot {slot}"));
            }
            Err(e) => {
                steps.push(e);
                done.detail = steps.join("; ");
                return Err(done);
            }
        }
    }
    done.outcome = "detected-replaced".into();
    done.detail = steps.join("; ");
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[&[u8]]) -> Vec<u8> {
        let mut data = b"SDWAL\x00\x00\x01".to_vec();
        for r in records {
            data.extend((r.len() as u32).to_le_bytes());
            data.extend(0u32.to_le_bytes());
            data.extend(*r);
        }
        data
    }

    #[test]
    fn records_are_found_by_their_lengths() {
        let data = segment(&[b"\x01abc", b"\x02de"]);
        assert_eq!(records(&data), vec![(8, 20), (20, 31)]);
        assert_eq!(
            records(&data[..25]),
            vec![(8, 20)],
            "a cut record is not listed"
        );
    }

    #[test]
    fn a_truncated_last_segment_loses_only_part_of_its_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        fs::create_dir_all(&wal).unwrap();
        let data = segment(&[b"\x01abcdef", b"\x02ghijkl", b"\x03mnopqr"]);
        fs::write(wal.join("00000000000000000001.wal"), &data).unwrap();
        for pick in 0..20 {
            let path = wal.join("00000000000000000001.wal");
            fs::write(&path, &data).unwrap();
            let what = super::damage(dir.path(), Damage::Truncate, pick).unwrap();
            let len = fs::metadata(&path).unwrap().len() as usize;
            assert!(len > 38 && len < data.len(), "{what}: {len}");
        }
    }

    #[test]
    fn a_flip_changes_exactly_one_bit() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        fs::create_dir_all(&wal).unwrap();
        let data = segment(&[b"\x01abcdef"]);
        let path = wal.join("00000000000000000001.wal");
        fs::write(&path, &data).unwrap();
        let what = super::damage(dir.path(), Damage::Snapshot, 3).unwrap();
        assert!(what.starts_with("no snapshot file"), "{what}");
        let after = fs::read(&path).unwrap();
        let bits: u32 = data
            .iter()
            .zip(&after)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(bits, 1);
    }
}
