//! Segment files: naming, listing, creating, and replaying them into an [`Index`].

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::index::{Index, Location, Segment, Slot};
use super::record::{self, Record, SEGMENT_MAGIC};
use crate::StorageError;

/// Meta values as the writer sees them: group -> key -> value.
pub(crate) type MetaMap = BTreeMap<u64, BTreeMap<u8, Bytes>>;

/// `NNNNNNNNNNNNNNNNNNNN.wal`: the id zero-padded to 20 digits, so names sort like ids.
pub(crate) fn segment_name(id: u64) -> String {
    format!("{id:020}.wal")
}

pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_name(id))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Ids of the segment files in `dir`, ascending. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let ctx = || format!("listing {}", dir.display());
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(ctx(), e))? {
        let entry = entry.map_err(|e| StorageError::io(ctx(), e))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// fsyncs the directory itself, making file creations and deletions durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(format!("syncing directory {}", dir.display()), e))
}

/// Takes the exclusive lock of the log directory (`LOCK`), so that two engines never write
/// the same segments. Released when the returned file is closed.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join("LOCK");
    let ctx = || {
        format!(
            "locking {} (is another log engine using it?)",
            path.display()
        )
    };
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(ctx(), e))?;
    f.try_lock()
        .map_err(|e| StorageError::io(ctx(), std::io::Error::from(e)))?;
    Ok(f)
}

/// Creates segment `id` (which must not exist) and returns (write handle, read handle).
/// The magic is not written here: the caller writes it with its next batch.
pub(crate) fn create_segment(dir: &Path, id: u64) -> Result<(File, Arc<File>), StorageError> {
    let path = segment_path(dir, id);
    let ctx = || format!("creating segment {}", path.display());
    let w = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| StorageError::io(ctx(), e))?;
    let r = File::open(&path).map_err(|e| StorageError::io(ctx(), e))?;
    Ok((w, Arc::new(r)))
}

/// What replay found.
pub(crate) struct Replayed {
    pub(crate) index: Index,
    pub(crate) meta: MetaMap,
    /// The last segment, to keep appending to: id, write handle, valid length.
    pub(crate) active: Option<(u64, File, u64)>,
    /// Whether a torn tail was cut off the last segment.
    pub(crate) cut_torn_tail: bool,
}

/// Replays every segment of `dir` in order into a fresh index. A bad record at the end of the
/// last segment is taken for a torn write: the segment is cut there. Anywhere else it is an
/// error (see [`is_torn_tail`]).
pub(crate) fn replay(dir: &Path) -> Result<Replayed, StorageError> {
    let ids = list_segments(dir)?;
    let mut index = Index::default();
    let mut active = None;
    let mut cut_torn_tail = false;
    for (n, &id) in ids.iter().enumerate() {
        let last = n + 1 == ids.len();
        let path = segment_path(dir, id);
        let name = segment_name(id);
        let data =
            fs::read(&path).map_err(|e| StorageError::io(format!("reading segment {name}"), e))?;
        let read = File::open(&path)
            .map_err(|e| StorageError::io(format!("opening segment {name}"), e))?;
        index.segments.insert(
            id,
            Segment {
                file: Arc::new(read),
                live: 0,
            },
        );
        let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
            segment: name.clone(),
            offset: offset as u64,
            reason,
        };

        let header_ok = data.len() >= SEGMENT_MAGIC.len() && data[..8] == SEGMENT_MAGIC;
        let mut valid = if header_ok {
            Some(SEGMENT_MAGIC.len())
        } else if last && (data.len() < 8 || data[..8].iter().all(|b| *b == 0)) {
            // Created but its first write did not make it: start it afresh.
            tracing::warn!(segment = %name, len = data.len(), "wal: discarding torn segment header");
            None
        } else {
            return Err(corrupt(0, "bad segment magic".to_owned()));
        };
        if let Some(mut pos) = valid {
            while pos < data.len() {
                match record::decode(&data, pos) {
                    Ok((rec, next)) => {
                        apply(&mut index, id, &rec);
                        pos = next;
                    }
                    Err(reason) if last && is_torn_tail(&data, pos) => {
                        tracing::warn!(
                            segment = %name,
                            offset = pos,
                            dropped_bytes = data.len() - pos,
                            %reason,
                            "wal: truncating torn tail"
                        );
                        break;
                    }
                    Err(reason) => return Err(corrupt(pos, reason)),
                }
            }
            valid = Some(pos);
        }
        if last {
            let w = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| StorageError::io(format!("opening segment {name}"), e))?;
            let len = match valid {
                Some(len) => len as u64,
                None => 0,
            };
            if len != data.len() as u64 {
                cut_torn_tail = true;
                let ctx = || format!("truncating torn tail of segment {name}");
                w.set_len(len).map_err(|e| StorageError::io(ctx(), e))?;
                if len == 0 {
                    w.write_all_at(&SEGMENT_MAGIC, 0)
                        .map_err(|e| StorageError::io(ctx(), e))?;
                }
                w.sync_data().map_err(|e| StorageError::io(ctx(), e))?;
            }
            active = Some((id, w, len.max(SEGMENT_MAGIC.len() as u64)));
        }
    }
    let meta = index
        .groups
        .iter()
        .filter(|(_, g)| !g.meta.is_empty())
        .map(|(id, g)| (*id, g.meta.clone()))
        .collect();
    Ok(Replayed {
        index,
        meta,
        active,
        cut_torn_tail,
    })
}

/// How far past a bad record [`is_torn_tail`] looks for an intact one.
const TORN_SCAN: usize = 1 << 20;
/// Disk sector size for the torn-write test: a sector is written whole or not at all.
const SECTOR: usize = 512;

/// Whether the bad record at `pos` of the last segment is the torn end of a write that was never
/// synced (and so never acknowledged), rather than damage to synced data, which must not be
/// silently cut away: the node would drop entries it acknowledged and still vote with its term.
///
/// The rule is etcd's (`wal/decoder.go`, `isTornEntry`): bytes after an unsynced write may be
/// missing, so a bad record is torn if nothing intact follows it. If an intact record does
/// follow, the bad one is still torn when one of its disk sectors reads as all zeros (a sector
/// of a multi-sector write that never reached the disk); otherwise it is corruption.
pub(crate) fn is_torn_tail(data: &[u8], pos: usize) -> bool {
    let Some(next) = next_intact_record(data, pos) else {
        return true;
    };
    let start = pos.div_ceil(SECTOR) * SECTOR;
    (start..next)
        .step_by(SECTOR)
        .any(|s| s + SECTOR <= next && data[s..s + SECTOR].iter().all(|b| *b == 0))
}

/// The offset of the first intact record after `pos`, within [`TORN_SCAN`] bytes. Tries the
/// position the bad record's own length points at first (a flip in its body leaves that intact).
fn next_intact_record(data: &[u8], pos: usize) -> Option<usize> {
    let claimed = data
        .get(pos..pos + 4)
        .and_then(|b| b.try_into().ok())
        .map(|b: [u8; 4]| pos + 8 + u32::from_le_bytes(b) as usize);
    if let Some(at) = claimed
        && at > pos
        && at < data.len()
        && record::decode(data, at).is_ok()
    {
        return Some(at);
    }
    let end = data.len().min(pos.saturating_add(TORN_SCAN));
    (pos + 1..end).find(|&at| {
        // A zero length word is never a record: skips zero fill cheaply.
        data.get(at..at + 4).is_some_and(|b| b != [0, 0, 0, 0]) && record::decode(data, at).is_ok()
    })
}

fn apply(index: &mut Index, segment: u64, rec: &Record<'_>) {
    match rec {
        Record::Entries {
            group,
            first,
            entries,
        } => index.append(
            *group,
            *first,
            entries.iter().map(|&(offset, len)| {
                Slot::Disk(Location {
                    segment,
                    offset: offset as u64,
                    len,
                })
            }),
        ),
        Record::Meta { group, key, value } => {
            index.set_meta(*group, *key, Bytes::copy_from_slice(value));
        }
        Record::Truncate { group, from } => index.truncate_from(*group, *from),
        Record::Purge { group, upto } => index.purge_upto(*group, *upto),
        Record::RemoveGroup { group } => index.remove_group(*group),
    }
}

/// Writes a brand-new empty segment (magic only) and syncs it; used when `dir` holds none.
pub(crate) fn init_first_segment(dir: &Path, id: u64) -> Result<(File, Arc<File>), StorageError> {
    let (mut w, r) = create_segment(dir, id)?;
    let ctx = || format!("initialising segment {}", segment_name(id));
    w.write_all(&SEGMENT_MAGIC)
        .and_then(|()| w.sync_data())
        .map_err(|e| StorageError::io(ctx(), e))?;
    sync_dir(dir)?;
    Ok((w, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(segment_name(42), "00000000000000000042.wal");
        assert_eq!(segment_name(u64::MAX).len(), 24);
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_segment_name("99999999999999999999.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000042.tmp"), None);
        assert!(segment_name(9) < segment_name(10));
    }
}
