//! A durable write-ahead log shared by all Raft groups of a node, with group commit.
//!
//! Entries are opaque bytes keyed by `(group, index)`; small per-group meta values live
//! beside them. All groups append to the same segment files through one writer thread,
//! which drains every queued request, writes them with a few `write` calls and issues a
//! single `fdatasync` for the lot: concurrent appends from many groups share one fsync.
//!
//! # Why hand-written
//!
//! Measured on one workload (G groups each making 500 durable 1 KiB appends, all groups at
//! once, fsync on): at G = 64 this engine made ~100k appends/s with ~1,000 fsyncs, raft-engine
//! ~78k/s with ~1,000, raft-log ~17-22k/s with 32,000 (it holds one log per instance, so groups
//! cannot share fsyncs); at G = 16 this engine and raft-engine are within noise (~30k/s), and
//! at G = 1 raft-engine is faster (121 vs ~220 us median, it syncs on the caller's thread).
//! raft-engine was still passed over for its weight: entries must be rust-protobuf 2 messages
//! (raft-proto), and it builds lz4 C code and prometheus, about twice this crate's cold build.
//! What is needed here is small: segment files, a CRC32 per record, one writer thread, group
//! commit.
//!
//! # Layout and recovery
//!
//! Segments are `NNNNNNNNNNNNNNNNNNNN.wal` (20-digit zero-padded sequence) in one
//! directory; the record format is described in `record.rs`. Opening replays every
//! segment in order into an in-memory index (per group, index -> segment/offset/length;
//! entry bytes stay on disk and are read back with `read_at`). A bad record at the tail of
//! the last segment is a torn write and is cut off; a bad record anywhere else is
//! [`StorageError::Corrupt`].
//!
//! The active segment is rotated at [`WalOptions::segment_bytes`]; each new segment starts
//! with every current meta value, so old segments can be deleted without losing meta.
//! A segment is deleted once it and every older segment hold no live entry (only a
//! prefix may go: a later segment may hold the truncate/purge records that killed an
//! earlier one's entries).

mod index;
mod metrics;
pub use metrics::register as register_metrics;
mod record;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::future::Future;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::StorageError;
use index::{Index, Segment, Slot};

/// Tuning of a [`LogEngine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Size at which the active segment is sealed and a new one started. Default 64 MiB.
    pub segment_bytes: u64,
    /// fdatasync before reporting writes durable. Default `true`; only tests and
    /// benchmarks that accept losing acknowledged writes on power loss turn it off.
    pub sync: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            sync: true,
        }
    }
}

/// Counters for metrics, cumulative since the engine was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// `fdatasync` calls on segments.
    pub fsyncs: u64,
    /// Bytes written to segments.
    pub bytes_written: u64,
    /// Duration of the most recent `fdatasync`, in microseconds.
    pub last_fsync_micros: u64,
    /// Batches the writer processed (each at most one fsync, plus one per rotation).
    pub batches: u64,
    /// Requests (appends, meta puts, truncates, ...) carried by those batches.
    pub requests: u64,
}

#[derive(Default)]
struct Stats {
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    last_fsync_micros: AtomicU64,
    batches: AtomicU64,
    requests: AtomicU64,
}

type Done = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// One queued write. Its index change is already applied; the writer makes it durable.
enum Op {
    Append {
        group: u64,
        entries: Vec<(u64, Bytes)>,
        seq: u64,
    },
    Meta {
        group: u64,
        key: u8,
        value: Bytes,
    },
    Truncate {
        group: u64,
        from: u64,
    },
    Purge {
        group: u64,
        upto: u64,
    },
    RemoveGroup {
        group: u64,
    },
    /// An empty append: completes once everything queued before it is durable.
    Barrier,
    /// A refused request, answered in order by the writer.
    Fail(StorageError),
}

impl Op {
    fn group(&self) -> Option<u64> {
        match self {
            Op::Append { group, .. }
            | Op::Meta { group, .. }
            | Op::Truncate { group, .. }
            | Op::Purge { group, .. }
            | Op::RemoveGroup { group } => Some(*group),
            Op::Barrier | Op::Fail(_) => None,
        }
    }
}

struct Request {
    op: Op,
    done: Done,
}

struct State {
    index: Index,
    queue: Vec<Request>,
    next_seq: u64,
    shutdown: bool,
    writer_alive: bool,
    /// Set when a write or sync failed: the log may be missing acknowledged-in-memory data,
    /// so every later write is refused.
    failed: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    stats: Stats,
}

struct Inner {
    shared: Arc<Shared>,
    dir: PathBuf,
    writer: Option<JoinHandle<()>>,
    cut_torn_tail: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.take() {
            // The last handle may be dropped by a callback running on the writer itself.
            if handle.thread().id() != std::thread::current().id() && handle.join().is_err() {
                tracing::error!("wal: writer thread panicked");
            }
        }
    }
}

/// A multi-group write-ahead log. Cheap to clone; all clones share one writer thread,
/// which stops (after draining its queue) when the last clone is dropped.
#[derive(Clone)]
pub struct LogEngine {
    inner: Arc<Inner>,
}

impl fmt::Debug for LogEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogEngine")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// A disk read planned under the lock and done outside it.
enum Source {
    Mem(Bytes),
    Disk {
        file: Arc<fs::File>,
        segment: u64,
        offset: u64,
        len: u32,
    },
}

/// Disk reads of neighbouring entries are merged when the bytes between them (record
/// headers) are at most this many...
const READ_MERGE_GAP: u64 = 64;
/// ...and the merged read stays below this size.
const READ_MERGE_MAX: u64 = 4 << 20;

impl LogEngine {
    /// Opens (creating if needed) the log in `dir`, replaying every segment to rebuild the
    /// in-memory index. A torn/corrupt record at the tail of the last segment is truncated
    /// away (crash mid-write); corruption elsewhere is an error.
    ///
    /// The directory is locked (file `LOCK`) until the engine's writer thread ends, which is
    /// when the last clone is dropped (a moment later if that happens inside a callback).
    pub fn open(dir: &Path, opts: WalOptions) -> Result<LogEngine, StorageError> {
        fs::create_dir_all(dir)
            .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        let lock = segment::lock_dir(dir)?;
        let replayed = segment::replay(dir)?;
        let cut_torn_tail = replayed.cut_torn_tail;
        let mut index = replayed.index;
        let (active_id, active, size) = match replayed.active {
            Some(active) => active,
            None => {
                let (w, r) = segment::init_first_segment(dir, 1)?;
                index.segments.insert(1, Segment { file: r, live: 0 });
                (1, w, record::SEGMENT_MAGIC.len() as u64)
            }
        };
        let older_segments = index.segments.len() > 1;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                index,
                queue: Vec::new(),
                next_seq: 1,
                shutdown: false,
                writer_alive: true,
                failed: None,
            }),
            wake: Condvar::new(),
            stats: Stats::default(),
        });
        let mut writer = writer::Writer {
            shared: shared.clone(),
            dir: dir.to_path_buf(),
            opts,
            active_id,
            active,
            size,
            snapshot_end: record::SEGMENT_MAGIC.len() as u64,
            dirty: false,
            meta: replayed.meta,
            _lock: lock,
        };
        // The head of the active segment may be a torn meta snapshot; re-state all meta
        // before older segments can be deleted.
        if older_segments && !writer.meta.is_empty() {
            writer.write_meta_snapshot_now()?;
        }
        let dead = {
            let mut st = shared.state.lock();
            let dead = st.index.dead_prefix(active_id);
            for id in &dead {
                st.index.segments.remove(id);
            }
            dead
        };
        writer::delete_segments(dir, &dead, opts.sync);
        {
            let st = shared.state.lock();
            tracing::info!(
                dir = %dir.display(),
                groups = st.index.groups.len(),
                segments = st.index.segments.len(),
                "wal: opened"
            );
        }

        let handle = std::thread::Builder::new()
            .name("streamd-wal".to_owned())
            .spawn(move || writer.run())
            .map_err(|e| StorageError::io("spawning the wal writer thread", e))?;
        Ok(LogEngine {
            inner: Arc::new(Inner {
                shared,
                dir: dir.to_path_buf(),
                writer: Some(handle),
                cut_torn_tail,
            }),
        })
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Applies `make`'s index change and queues the resulting op, all under the lock, so the
    /// log's record order is the order in which changes became visible.
    fn submit(&self, done: Done, make: impl FnOnce(&mut State) -> Op) {
        let shared = &self.inner.shared;
        let mut st = shared.state.lock();
        if !st.writer_alive {
            drop(st);
            done(Err(StorageError::Closed));
            return;
        }
        let op = match &st.failed {
            Some(cause) => Op::Fail(StorageError::io(
                "writing the wal",
                std::io::Error::other(format!("an earlier write failed: {cause}")),
            )),
            None => make(&mut st),
        };
        st.queue.push(Request { op, done });
        drop(st);
        shared.wake.notify_one();
    }

    fn submit_durable(
        &self,
        make: impl FnOnce(&mut State) -> Op,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.submit(
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
            make,
        );
        async move { rx.await.unwrap_or(Err(StorageError::Closed)) }
    }

    /// Appends entries of one group. Entries are readable via [`entries`](Self::entries) as
    /// soon as this returns (even before they are durable). `done` is called exactly once,
    /// from the writer thread, after the entries are fdatasync'ed (or with the error);
    /// callbacks fire in append order. Does not block on I/O. (Only if the writer thread has
    /// already ended is `done` called at once, on the caller's thread, with
    /// [`StorageError::Closed`].)
    ///
    /// Indices must be consecutive (else `done` gets [`StorageError::Invalid`] and nothing
    /// changes). Appending an index <= the group's last index first truncates from that
    /// index (Raft overwrite). An empty `entries` is a barrier: `done` fires once everything
    /// queued before it is durable.
    pub fn append(
        &self,
        group: u64,
        entries: Vec<(u64, Bytes)>,
        done: Box<dyn FnOnce(Result<(), StorageError>) + Send>,
    ) {
        self.submit(done, move |st| {
            if let Err(reason) = check_entries(&entries) {
                return Op::Fail(StorageError::Invalid(format!(
                    "append to group {group}: {reason}"
                )));
            }
            let Some(first) = entries.first().map(|(i, _)| *i) else {
                return Op::Barrier;
            };
            let seq = st.next_seq;
            st.next_seq += 1;
            st.index.append(
                group,
                first,
                entries.iter().map(|(_, data)| Slot::Pending {
                    seq,
                    data: data.clone(),
                }),
            );
            Op::Append {
                group,
                entries,
                seq,
            }
        });
    }

    /// [`append`](Self::append), resolving once the entries are durable. The entries are
    /// in the index as soon as this is called, before the future is polled.
    pub fn append_durable(
        &self,
        group: u64,
        entries: Vec<(u64, Bytes)>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.append(
            group,
            entries,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        async move { rx.await.unwrap_or(Err(StorageError::Closed)) }
    }

    /// Durably (fdatasync before resolving) stores a small per-group value under a one-byte
    /// key. Latest value wins on replay. Visible to [`get_meta`](Self::get_meta) at once.
    pub fn put_meta(
        &self,
        group: u64,
        key: u8,
        value: Bytes,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        self.submit_durable(move |st| {
            if value.len() > record::MAX_ENTRY_LEN {
                return Op::Fail(StorageError::Invalid(format!(
                    "meta value of {} bytes for group {group}",
                    value.len()
                )));
            }
            st.index.set_meta(group, key, value.clone());
            Op::Meta { group, key, value }
        })
    }

    /// The latest value stored under `key` for `group`.
    pub fn get_meta(&self, group: u64, key: u8) -> Option<Bytes> {
        let st = self.inner.shared.state.lock();
        st.index.groups.get(&group)?.meta.get(&key).cloned()
    }

    /// Removes entries with index >= `from` (durable when the future resolves; removed from
    /// the index at once).
    pub fn truncate_from(
        &self,
        group: u64,
        from: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        self.submit_durable(move |st| {
            st.index.truncate_from(group, from);
            Op::Truncate { group, from }
        })
    }

    /// Removes entries with index <= `upto` (removed from the index at once; the future
    /// resolves once the purge record is written, synced with its batch).
    pub fn purge_upto(
        &self,
        group: u64,
        upto: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        self.submit_durable(move |st| {
            st.index.purge_upto(group, upto);
            Op::Purge { group, upto }
        })
    }

    /// Entries of `group` with indices in `range`, in index order, without holes: starts at
    /// the first present index >= `range.start` and stops before the first missing index.
    pub fn entries(
        &self,
        group: u64,
        range: Range<u64>,
    ) -> Result<Vec<(u64, Bytes)>, StorageError> {
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let plan = {
            let st = self.inner.shared.state.lock();
            let Some(g) = st.index.groups.get(&group) else {
                return Ok(Vec::new());
            };
            let mut plan = Vec::new();
            let mut expect = None;
            for (&i, slot) in g.entries.range(range) {
                if expect.is_some_and(|e| e != i) {
                    break;
                }
                expect = i.checked_add(1);
                let src = match slot {
                    Slot::Pending { data, .. } => Source::Mem(data.clone()),
                    Slot::Disk(loc) => {
                        let Some(seg) = st.index.segments.get(&loc.segment) else {
                            return Err(StorageError::Corrupt {
                                segment: segment::segment_name(loc.segment),
                                offset: loc.offset,
                                reason: format!(
                                    "entry {i} of group {group} points at a deleted segment"
                                ),
                            });
                        };
                        Source::Disk {
                            file: seg.file.clone(),
                            segment: loc.segment,
                            offset: loc.offset,
                            len: loc.len,
                        }
                    }
                };
                plan.push((i, src));
            }
            plan
        };
        read_plan(group, plan)
    }

    /// (first index present, last index present), or `None` if the group has no entries.
    pub fn bounds(&self, group: u64) -> Option<(u64, u64)> {
        let st = self.inner.shared.state.lock();
        let entries = &st.index.groups.get(&group)?.entries;
        Some((*entries.first_key_value()?.0, *entries.last_key_value()?.0))
    }

    /// Drops every entry and meta value of a group (durable when the future resolves).
    pub fn remove_group(
        &self,
        group: u64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + 'static {
        self.submit_durable(move |st| {
            st.index.remove_group(group);
            Op::RemoveGroup { group }
        })
    }

    /// Groups that have any entry or meta value, ascending.
    pub fn groups(&self) -> Vec<u64> {
        let st = self.inner.shared.state.lock();
        let mut groups: Vec<u64> = st.index.groups.keys().copied().collect();
        groups.sort_unstable();
        groups
    }

    /// Counters for metrics.
    /// Whether opening cut a torn tail off the last segment. A record damaged at the very end
    /// reads the same as one a crash tore, so what was cut may have been synced and
    /// acknowledged: this node's groups may hold less than their leaders believe.
    pub fn cut_torn_tail_at_open(&self) -> bool {
        self.inner.cut_torn_tail
    }

    pub fn stats(&self) -> WalStats {
        let s = &self.inner.shared.stats;
        WalStats {
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
            last_fsync_micros: s.last_fsync_micros.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
        }
    }
}

fn check_entries(entries: &[(u64, Bytes)]) -> Result<(), String> {
    let mut expect = None;
    for (i, data) in entries {
        if expect.is_some_and(|e| e != *i) {
            return Err(format!(
                "indices not consecutive: {i} follows {}",
                i.wrapping_sub(1)
            ));
        }
        if expect.is_none() && i.checked_add(entries.len() as u64).is_none() {
            return Err(format!("index overflow at {i}"));
        }
        expect = Some(i + 1);
        if data.len() > record::MAX_ENTRY_LEN {
            return Err(format!("entry {i} is {} bytes, over the limit", data.len()));
        }
    }
    Ok(())
}

/// Reads the planned entries, merging reads of neighbouring entries of one segment.
fn read_plan(group: u64, plan: Vec<(u64, Source)>) -> Result<Vec<(u64, Bytes)>, StorageError> {
    let mut out = Vec::with_capacity(plan.len());
    let mut i = 0;
    while let Some((index, src)) = plan.get(i) {
        let (file, seg, start, len) = match src {
            Source::Mem(data) => {
                out.push((*index, data.clone()));
                i += 1;
                continue;
            }
            Source::Disk {
                file,
                segment,
                offset,
                len,
            } => (file, *segment, *offset, *len),
        };
        let mut end = start + u64::from(len);
        let mut j = i + 1;
        while let Some((
            _,
            Source::Disk {
                segment: s,
                offset: o,
                len: l,
                ..
            },
        )) = plan.get(j)
        {
            let next_end = o + u64::from(*l);
            if *s != seg
                || *o < end
                || o - end > READ_MERGE_GAP
                || next_end - start > READ_MERGE_MAX
            {
                break;
            }
            end = next_end;
            j += 1;
        }
        let mut buf = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut buf, start).map_err(|e| {
            StorageError::io(
                format!(
                    "reading entries {index}..={} of group {group} from segment {}",
                    plan[j - 1].0,
                    segment::segment_name(seg)
                ),
                e,
            )
        })?;
        let buf = Bytes::from(buf);
        for (index, src) in &plan[i..j] {
            if let Source::Disk { offset, len, .. } = src {
                let at = (offset - start) as usize;
                out.push((*index, buf.slice(at..at + *len as usize)));
            }
        }
        i = j;
    }
    Ok(out)
}

/// Path of the newest segment in `dir`, if any (used by the conformance checks).
pub(crate) fn last_segment_path(dir: &Path) -> Result<Option<PathBuf>, StorageError> {
    Ok(segment::list_segments(dir)?
        .last()
        .map(|id| segment::segment_path(dir, *id)))
}
