//! The history: every operation the harness performed, one JSON object a line
//! (`DIR/history.jsonl`), written while the test runs and read back by the checker.
//!
//! An operation is an `invoke` line and a completion line (`ok`, `fail` or `info`) sharing an `op`
//! id; nemesis events are single `info` lines. SEMANTICS.md defines what each type promises. Lines
//! are in the order they were written and each carries its own `time` (nanoseconds since the run
//! started); checkers order by `time`, never by line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    /// The operation took effect, and the completion says how.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// Unknown: the operation may or may not have taken effect (or, for nemesis lines, an event).
    Info,
}

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum F {
    /// The cluster and stream the run used (one line, before the workload).
    Setup,
    /// PutRecords.
    Append,
    /// GetShardIterator opening a reader's iterator chain.
    Iterator,
    /// GetRecords on a reader's chain (empty pages are not recorded).
    Read,
    /// The final read of one shard from TRIM_HORIZON through one node.
    Drain,
    /// A nemesis fault starting or ending.
    Fault,
    /// The stream's shards, open and closed, as listed after healing (before the drain).
    ShardMap,
    /// The retention phase (`--retention`, after the drain) starting, or not run: an `info`
    /// line, with `error` saying why when it was not run.
    Retention,
    /// PutRecords of the retention phase; `process` names the set (`retention-A`, `-B`, `-C`).
    RetentionAppend,
    /// One node's wall clock set `offset_s` seconds ahead by the retention phase (`node`).
    RetentionClock,
    /// A shard read from TRIM_HORIZON to its end or tip through one node (`node`) by the
    /// retention phase: `ok` with every record, or `fail` with the error.
    RetentionRead,
    /// The retention phase's kill -9 of a node (`node`, the invoke) and its restart, complete
    /// once the node is ready (`ok`) or not (`fail`).
    RetentionRestart,
}

impl F {
    /// The retention phase's lines, which properties 1 to 11, 15 and 16 never see.
    pub fn is_retention(self) -> bool {
        matches!(
            self,
            F::Retention
                | F::RetentionAppend
                | F::RetentionClock
                | F::RetentionRead
                | F::RetentionRestart
        )
    }
}

/// The outcome of one record of a PutRecords call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

/// One record sent by an append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    pub value: String,
    pub key: String,
}

/// One record's outcome in an append's completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResult {
    pub value: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One record read: `[sequence number, value]` (an array keeps drain lines short).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rec(pub String, pub String);

/// Where an iterator chain starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartAt {
    /// `TRIM_HORIZON`, `AFTER_SEQUENCE_NUMBER` or `LATEST`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Start,
    End,
}

/// A nemesis event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Pairs a start with its end.
    pub id: u64,
    /// `kill`, `pause`, `partition`, `lossy`, `partition-leader`, `power-cut`, `membership`,
    /// `corrupt`, or `crash` (a node that exited on its own). `nodes` are slots (cluster.rs).
    pub kind: String,
    pub phase: Phase,
    pub nodes: Vec<u64>,
    /// For partitions (`partition-leader` too): the sides, each a list of node ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How a `membership` step or a `corrupt` fault ended (`join:joined`, `drain:drained`,
    /// `detected-replaced`, `torn-tail-cut`, `started-clean`, `skipped`, `failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub id: String,
    pub replicas: Vec<u64>,
}

/// One shard of the final shard map: its lineage, hash key range and sequence number range
/// (numbers as the decimal strings the server gave).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapShard {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjacent_parent: Option<String>,
    pub start_hash: String,
    pub end_hash: String,
    pub start_seq: String,
    /// Set once the shard is closed: every record in it is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_seq: Option<String>,
}

/// The stream's shards after healing, and its status then (`ACTIVE`, or `UPDATING` when a
/// reshard did not finish in time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    pub status: String,
    pub shards: Vec<MapShard>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    pub stream: String,
    pub seed: u64,
    pub nodes: Vec<u64>,
    pub shards: Vec<ShardInfo>,
    /// `netns` or `loopback`.
    pub topology: String,
}

/// One line of the history. Fields that do not apply to an operation are left out of its line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// The line number (from 0): how anomalies name the ops involved.
    pub index: u64,
    /// Nanoseconds since the run started.
    pub time: u64,
    #[serde(rename = "type")]
    pub ty: OpType,
    pub f: F,
    /// `w<i>` writers, `r<i>` readers, `drain-n<i>`, `nemesis`, `setup`; in the retention phase
    /// `retention-A` (`-B`, `-C`) appends, `retention-clock`, `retention-poll-n<i>` and
    /// `retention-final-n<i>` reads, `retention-restart`.
    pub process: String,
    /// Shared by an invoke and its completion.
    pub op: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Put>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<PutResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartAt>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<Rec>,
    /// Drains: the node asked, whether it hosts a replica of the shard, and whether the drains
    /// had stopped growing when they ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Setup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_map: Option<ShardMap>,
    /// `retention-clock`: the wall clock offset set, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// An op with only the common fields set.
    pub fn new(ty: OpType, f: F, process: impl Into<String>, op: u64, time: u64) -> Op {
        Op {
            index: 0,
            time,
            ty,
            f,
            process: process.into(),
            op,
            values: Vec::new(),
            results: Vec::new(),
            shard: None,
            chain: None,
            start: None,
            records: Vec::new(),
            node: None,
            replica: None,
            stable: None,
            fault: None,
            setup: None,
            shard_map: None,
            offset_s: None,
            error: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("failed to open history {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read history {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("history {path} line {line} is not an op: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to write history: {0}")]
    Write(#[source] io::Error),
    #[error("the history writer stopped unexpectedly")]
    WriterGone,
}

/// Reads a history file. Each op's `index` is set to its line number, whatever the line says, so
/// anomalies always point at real lines.
pub fn load(path: &Path) -> Result<Vec<Op>, HistoryError> {
    let file = File::open(path).map_err(|source| HistoryError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut ops = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| HistoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let mut op: Op = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
            path: path.to_path_buf(),
            line: n + 1,
            source,
        })?;
        op.index = n as u64;
        ops.push(op);
    }
    Ok(ops)
}

/// Nanoseconds since the run started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn origin(&self) -> Instant {
        self.start
    }
}

/// A cheap handle every task records through. Lines go to a thread of their own so a slow disk
/// never stalls a client; the file is complete once every handle is dropped and
/// [`HistoryFile::finish`] returns.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Op>,
    clock: Clock,
    next_op: Arc<AtomicU64>,
}

impl Recorder {
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// A fresh op id.
    pub fn next_op(&self) -> u64 {
        self.next_op.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a line. Returns false when the writer has stopped (a harness failure the run
    /// reports when it finishes the file).
    pub fn record(&self, op: Op) -> bool {
        self.tx.send(op).is_ok()
    }
}

/// The file being written.
#[derive(Debug)]
pub struct HistoryFile {
    thread: JoinHandle<io::Result<u64>>,
}

impl HistoryFile {
    /// Creates `path` and the writer thread.
    pub fn create(path: &Path, clock: Clock) -> Result<(HistoryFile, Recorder), HistoryError> {
        let file = File::create(path).map_err(|source| HistoryError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (tx, rx) = mpsc::channel::<Op>();
        let thread = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || write_lines(file, rx))
            .map_err(HistoryError::Write)?;
        Ok((
            HistoryFile { thread },
            Recorder {
                tx,
                clock,
                next_op: Arc::new(AtomicU64::new(0)),
            },
        ))
    }

    /// Waits until every line is on disk; every [`Recorder`] must have been dropped. Returns the
    /// number of lines.
    pub fn finish(self) -> Result<u64, HistoryError> {
        match self.thread.join() {
            Ok(result) => result.map_err(HistoryError::Write),
            Err(_) => Err(HistoryError::WriterGone),
        }
    }
}

fn write_lines(file: File, rx: mpsc::Receiver<Op>) -> io::Result<u64> {
    let mut out = BufWriter::new(file);
    let mut index = 0u64;
    for mut op in rx {
        op.index = index;
        serde_json::to_writer(&mut out, &op)?;
        out.write_all(b"\n")?;
        index += 1;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_indices_are_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let (file, rec) = HistoryFile::create(&path, Clock::start()).unwrap();
        let id = rec.next_op();
        let mut invoke = Op::new(OpType::Invoke, F::Append, "w0", id, rec.now());
        invoke.values.push(Put {
            value: "w0-000000".into(),
            key: "k1".into(),
        });
        let mut ok = Op::new(OpType::Ok, F::Append, "w0", id, rec.now());
        ok.results.push(PutResult {
            value: "w0-000000".into(),
            outcome: Outcome::Ok,
            shard: Some("shardId-000000000000".into()),
            seq: Some("42".into()),
            error: None,
        });
        let mut drain = Op::new(OpType::Ok, F::Drain, "drain-n1", rec.next_op(), rec.now());
        drain.records.push(Rec("42".into(), "w0-000000".into()));
        assert!(rec.record(invoke.clone()));
        assert!(rec.record(ok.clone()));
        assert!(rec.record(drain.clone()));
        drop(rec);
        assert_eq!(file.finish().unwrap(), 3);

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .nth(2)
                .unwrap()
                .contains(r#""records":[["42","w0-000000"]]"#)
        );
        assert!(!text.lines().next().unwrap().contains("results"));
        let ops = load(&path).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[1].index, 1);
        assert_eq!(ops[1].results, ok.results);
        assert_eq!(ops[2].records, drain.records);
    }

    #[test]
    fn a_bad_line_names_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(&path, "{\"nonsense\":1}\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
