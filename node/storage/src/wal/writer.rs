//! The single writer thread: drains every queued request, writes them with few `write`
//! calls, fdatasyncs once, then fires the callbacks (group commit).

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::index::Location;
use super::record::{self, SEGMENT_MAGIC};
use super::segment::{self, MetaMap};
use super::{Op, Request, Shared, WalOptions};
use crate::StorageError;

/// Buffered bytes beyond which the writer issues a `write` before encoding more.
const WRITE_CHUNK: usize = 8 << 20;
/// Largest Entries record the writer builds; bigger appends are split into several records.
const MAX_RECORD: u64 = 64 << 20;

struct Settle {
    group: u64,
    index: u64,
    seq: u64,
    loc: Location,
}

/// What one batch did, applied to the index once it is written.
#[derive(Default)]
struct Outcome {
    settled: Vec<Settle>,
    new_segments: Vec<(u64, Arc<File>)>,
    bytes: u64,
}

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) dir: PathBuf,
    pub(crate) opts: WalOptions,
    pub(crate) active_id: u64,
    pub(crate) active: File,
    /// Bytes written to the active segment.
    pub(crate) size: u64,
    /// End of the meta snapshot at the head of the active segment: the segment is rotated
    /// only once it holds something beyond it.
    pub(crate) snapshot_end: u64,
    /// Written since the last fdatasync.
    pub(crate) dirty: bool,
    /// Meta values as of the last record encoded, re-written at the head of every new segment.
    pub(crate) meta: MetaMap,
    /// Held while the writer runs: the directory's exclusive lock.
    pub(crate) _lock: File,
}

/// Marks the writer gone and fails whatever is still queued, however the thread ends.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let orphans = {
            let mut st = self.0.state.lock();
            st.writer_alive = false;
            std::mem::take(&mut st.queue)
        };
        for req in orphans {
            fire(req.done, Err(StorageError::Closed));
        }
    }
}

fn fire(done: super::Done, result: Result<(), StorageError>) {
    if catch_unwind(AssertUnwindSafe(|| done(result))).is_err() {
        tracing::error!("wal: an append callback panicked");
    }
}

impl Writer {
    pub(crate) fn run(mut self) {
        let _guard = ExitGuard(self.shared.clone());
        loop {
            let batch = {
                let mut st = self.shared.state.lock();
                while st.queue.is_empty() && !st.shutdown {
                    self.shared.wake.wait(&mut st);
                }
                if st.queue.is_empty() {
                    return;
                }
                std::mem::take(&mut st.queue)
            };
            self.process(batch);
        }
    }

    fn process(&mut self, batch: Vec<Request>) {
        let mut groups: Vec<u64> = batch.iter().filter_map(|r| r.op.group()).collect();
        groups.sort_unstable();
        groups.dedup();
        let span = tracing::debug_span!(
            "wal.flush",
            groups = groups.len(),
            requests = batch.len(),
            bytes = tracing::field::Empty
        );
        let mut out = Outcome::default();
        let result = {
            let _entered = span.enter();
            let r = self.write_batch(&batch, &mut out);
            span.record("bytes", out.bytes);
            r
        };
        let stats = &self.shared.stats;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);

        let dead = {
            let mut st = self.shared.state.lock();
            for (id, file) in out.new_segments.drain(..) {
                st.index
                    .segments
                    .insert(id, super::index::Segment { file, live: 0 });
            }
            for s in out.settled.drain(..) {
                st.index.settle(s.group, s.index, s.seq, s.loc);
            }
            match &result {
                Ok(()) => {
                    let dead = st.index.dead_prefix(self.active_id);
                    for id in &dead {
                        st.index.segments.remove(id);
                    }
                    dead
                }
                Err(e) => {
                    tracing::error!(error = %e, "wal: write failed; the log engine refuses further writes");
                    st.failed = Some(e.to_string());
                    Vec::new()
                }
            }
        };
        if !dead.is_empty() {
            delete_segments(&self.dir, &dead, self.opts.sync);
        }

        for req in batch {
            let r = match (&result, req.op) {
                (Err(e), _) => Err(e.duplicate()),
                (Ok(()), Op::Fail(e)) => Err(e),
                (Ok(()), _) => Ok(()),
            };
            fire(req.done, r);
        }
    }

    fn write_batch(&mut self, batch: &[Request], out: &mut Outcome) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        let mut positions = Vec::new();
        let chunk_limit = self.opts.segment_bytes.clamp(4096, MAX_RECORD);
        for req in batch {
            match &req.op {
                Op::Append {
                    group,
                    entries,
                    seq,
                } => {
                    let mut rest = &entries[..];
                    while !rest.is_empty() {
                        let (mut n, mut payload) = (0, 0);
                        while let Some((_, data)) = rest.get(n) {
                            let grown = record::entries_record_len(payload + data.len(), n + 1);
                            if n > 0 && grown as u64 > chunk_limit {
                                break;
                            }
                            payload += data.len();
                            n += 1;
                        }
                        let (chunk, tail) = rest.split_at(n);
                        rest = tail;
                        self.make_room(record::entries_record_len(payload, n), &mut buf, out)?;
                        positions.clear();
                        let first = chunk.first().map_or(0, |(i, _)| *i);
                        record::encode_entries(&mut buf, *group, first, chunk, &mut positions);
                        for ((index, data), pos) in chunk.iter().zip(&positions) {
                            out.settled.push(Settle {
                                group: *group,
                                index: *index,
                                seq: *seq,
                                loc: Location {
                                    segment: self.active_id,
                                    offset: self.size + *pos as u64,
                                    len: data.len() as u32,
                                },
                            });
                        }
                    }
                }
                Op::Meta { group, key, value } => {
                    self.make_room(record::meta_record_len(value.len()), &mut buf, out)?;
                    record::encode_meta(&mut buf, *group, *key, value);
                    self.meta
                        .entry(*group)
                        .or_default()
                        .insert(*key, value.clone());
                }
                Op::Truncate { group, from } => {
                    self.make_room(record::TRUNCATE_RECORD_LEN, &mut buf, out)?;
                    record::encode_truncate(&mut buf, *group, *from);
                }
                Op::Purge { group, upto } => {
                    self.make_room(record::PURGE_RECORD_LEN, &mut buf, out)?;
                    record::encode_purge(&mut buf, *group, *upto);
                }
                Op::RemoveGroup { group } => {
                    self.make_room(record::REMOVE_GROUP_RECORD_LEN, &mut buf, out)?;
                    record::encode_remove_group(&mut buf, *group);
                    self.meta.remove(group);
                }
                Op::Barrier | Op::Fail(_) => {}
            }
            if buf.len() >= WRITE_CHUNK {
                self.write_buf(&mut buf, out)?;
            }
        }
        self.write_buf(&mut buf, out)?;
        self.sync()
    }

    /// Rotates first if a record of `len` bytes would overflow the active segment.
    fn make_room(
        &mut self,
        len: usize,
        buf: &mut Vec<u8>,
        out: &mut Outcome,
    ) -> Result<(), StorageError> {
        let at = self.size + buf.len() as u64;
        if at > self.snapshot_end && at + len as u64 > self.opts.segment_bytes {
            self.rotate(buf, out)?;
        }
        Ok(())
    }

    /// Seals the active segment (written and synced) and starts the next one, whose head
    /// re-states every meta value so older segments can be deleted without losing them.
    fn rotate(&mut self, buf: &mut Vec<u8>, out: &mut Outcome) -> Result<(), StorageError> {
        self.write_buf(buf, out)?;
        self.sync()?;
        let id = self.active_id.checked_add(1).ok_or_else(|| {
            StorageError::Invalid("segment sequence numbers exhausted".to_owned())
        })?;
        let (w, r) = segment::create_segment(&self.dir, id)?;
        out.new_segments.push((id, r));
        if self.opts.sync {
            segment::sync_dir(&self.dir)?;
        }
        tracing::debug!(segment = %segment::segment_name(id), "wal: rotated");
        self.active = w;
        self.active_id = id;
        self.size = 0;
        buf.extend_from_slice(&SEGMENT_MAGIC);
        self.encode_meta_snapshot(buf);
        self.snapshot_end = buf.len() as u64;
        Ok(())
    }

    pub(crate) fn encode_meta_snapshot(&self, buf: &mut Vec<u8>) {
        for (group, values) in &self.meta {
            for (key, value) in values {
                record::encode_meta(buf, *group, *key, value);
            }
        }
    }

    /// Appends a meta snapshot to the active segment and syncs it (used at open).
    pub(crate) fn write_meta_snapshot_now(&mut self) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        self.encode_meta_snapshot(&mut buf);
        self.write_buf(&mut buf, &mut Outcome::default())?;
        self.sync()?;
        self.snapshot_end = self.size;
        Ok(())
    }

    fn write_buf(&mut self, buf: &mut Vec<u8>, out: &mut Outcome) -> Result<(), StorageError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.active.write_all_at(buf, self.size).map_err(|e| {
            StorageError::io(
                format!("writing segment {}", segment::segment_name(self.active_id)),
                e,
            )
        })?;
        let n = buf.len() as u64;
        self.size += n;
        out.bytes += n;
        self.dirty = true;
        self.shared
            .stats
            .bytes_written
            .fetch_add(n, Ordering::Relaxed);
        buf.clear();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if self.dirty && self.opts.sync {
            let started = Instant::now();
            self.active.sync_data().map_err(|e| {
                StorageError::io(
                    format!("syncing segment {}", segment::segment_name(self.active_id)),
                    e,
                )
            })?;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let stats = &self.shared.stats;
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            stats.last_fsync_micros.store(micros, Ordering::Relaxed);
            super::metrics::FSYNC_SECONDS.observe(started.elapsed().as_secs_f64());
        }
        self.dirty = false;
        Ok(())
    }
}

/// Deletes segments oldest first, stopping at the first failure so that the files left
/// are always a suffix of the log (deleting out of order could resurrect entries).
pub(crate) fn delete_segments(dir: &std::path::Path, ids: &[u64], sync: bool) {
    let mut deleted = false;
    for id in ids {
        let path = segment::segment_path(dir, *id);
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!(segment = %segment::segment_name(*id), "wal: deleted segment");
                deleted = true;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "wal: could not delete segment; retried at next open");
                break;
            }
        }
    }
    if deleted
        && sync
        && let Err(e) = segment::sync_dir(dir)
    {
        tracing::warn!(error = %e, "wal: syncing directory after deleting segments");
    }
}
