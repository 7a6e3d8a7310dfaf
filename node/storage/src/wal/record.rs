//! On-disk layout of segments and records.
//!
//! A segment starts with the 8-byte [`SEGMENT_MAGIC`], followed by records:
//!
//! ```text
//! len u32 LE | crc32 u32 LE | kind u8 | body
//! ```
//!
//! `len` counts `kind + body`; the CRC32 covers the same bytes. All integers are little
//! endian. Bodies by kind:
//!
//! | kind | record      | body                                                        |
//! |------|-------------|-------------------------------------------------------------|
//! | 1    | Entries     | group u64, first index u64, count u32, count × (len u32, bytes) |
//! | 2    | Meta        | group u64, key u8, len u32, value                           |
//! | 3    | Truncate    | group u64, from u64 (drop indices >= from)                  |
//! | 4    | Purge       | group u64, upto u64 (drop indices <= upto)                  |
//! | 5    | RemoveGroup | group u64                                                   |
//!
//! Entries of one Entries record have consecutive indices starting at `first`.

use bytes::Bytes;

/// First bytes of every segment file: "SDWAL", two zero bytes, format version 1.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"SDWAL\x00\x00\x01";
/// `len` + `crc` + `kind`.
pub(crate) const RECORD_HEADER: usize = 9;
/// group + first + count.
pub(crate) const ENTRIES_BODY_HEADER: usize = 20;
/// Per-entry length prefix inside an Entries record.
pub(crate) const ENTRY_PREFIX: usize = 4;
/// Largest single entry accepted, so that its record length still fits in a u32.
pub(crate) const MAX_ENTRY_LEN: usize = u32::MAX as usize - 1024;

const KIND_ENTRIES: u8 = 1;
const KIND_META: u8 = 2;
const KIND_TRUNCATE: u8 = 3;
const KIND_PURGE: u8 = 4;
const KIND_REMOVE_GROUP: u8 = 5;

/// A decoded record. Entry payloads are described by position, not copied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// `entries[i]` is the (offset in the decoded buffer, length) of index `first + i`.
    Entries {
        group: u64,
        first: u64,
        entries: Vec<(usize, u32)>,
    },
    Meta {
        group: u64,
        key: u8,
        value: &'a [u8],
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
}

/// Encoded size of an Entries record holding entries of these payload lengths.
pub(crate) fn entries_record_len(payload_bytes: usize, count: usize) -> usize {
    RECORD_HEADER + ENTRIES_BODY_HEADER + count * ENTRY_PREFIX + payload_bytes
}

pub(crate) fn meta_record_len(value_len: usize) -> usize {
    RECORD_HEADER + 8 + 1 + 4 + value_len
}

pub(crate) const TRUNCATE_RECORD_LEN: usize = RECORD_HEADER + 16;
pub(crate) const PURGE_RECORD_LEN: usize = RECORD_HEADER + 16;
pub(crate) const REMOVE_GROUP_RECORD_LEN: usize = RECORD_HEADER + 8;

fn begin(buf: &mut Vec<u8>, kind: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; 8]);
    buf.push(kind);
    start
}

fn finish(buf: &mut [u8], start: usize) {
    let covered = &buf[start + 8..];
    // Callers bound record sizes (MAX_ENTRY_LEN, chunking), so this never saturates.
    let len = u32::try_from(covered.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(covered);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: usize) {
    let v = u32::try_from(v).unwrap_or(u32::MAX);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends an Entries record; pushes, for each entry, the position of its payload in `buf`.
/// Payloads must be at most [`MAX_ENTRY_LEN`] bytes and the chunk small enough for a u32 length.
pub(crate) fn encode_entries(
    buf: &mut Vec<u8>,
    group: u64,
    first: u64,
    entries: &[(u64, Bytes)],
    positions: &mut Vec<usize>,
) {
    let start = begin(buf, KIND_ENTRIES);
    buf.extend_from_slice(&group.to_le_bytes());
    buf.extend_from_slice(&first.to_le_bytes());
    put_u32(buf, entries.len());
    for (_, data) in entries {
        put_u32(buf, data.len());
        positions.push(buf.len());
        buf.extend_from_slice(data);
    }
    finish(buf, start);
}

pub(crate) fn encode_meta(buf: &mut Vec<u8>, group: u64, key: u8, value: &[u8]) {
    let start = begin(buf, KIND_META);
    buf.extend_from_slice(&group.to_le_bytes());
    buf.push(key);
    put_u32(buf, value.len());
    buf.extend_from_slice(value);
    finish(buf, start);
}

pub(crate) fn encode_truncate(buf: &mut Vec<u8>, group: u64, from: u64) {
    let start = begin(buf, KIND_TRUNCATE);
    buf.extend_from_slice(&group.to_le_bytes());
    buf.extend_from_slice(&from.to_le_bytes());
    finish(buf, start);
}

pub(crate) fn encode_purge(buf: &mut Vec<u8>, group: u64, upto: u64) {
    let start = begin(buf, KIND_PURGE);
    buf.extend_from_slice(&group.to_le_bytes());
    buf.extend_from_slice(&upto.to_le_bytes());
    finish(buf, start);
}

pub(crate) fn encode_remove_group(buf: &mut Vec<u8>, group: u64) {
    let start = begin(buf, KIND_REMOVE_GROUP);
    buf.extend_from_slice(&group.to_le_bytes());
    finish(buf, start);
}

/// Bounds-checked reader over a record body.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.end)
            .ok_or_else(|| format!("body too short: need {n} bytes at body offset {}", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn done(&self) -> Result<(), String> {
        if self.pos == self.end {
            Ok(())
        } else {
            Err(format!("{} trailing bytes in body", self.end - self.pos))
        }
    }
}

/// Decodes the record starting at `buf[pos]`. Returns it and the position just after it, or a
/// reason why the bytes there are not a whole, intact record.
pub(crate) fn decode(buf: &[u8], pos: usize) -> Result<(Record<'_>, usize), String> {
    let avail = buf.len().saturating_sub(pos);
    if avail < RECORD_HEADER {
        return Err(format!("{avail} bytes left, less than a record header"));
    }
    let mut w = [0u8; 4];
    w.copy_from_slice(&buf[pos..pos + 4]);
    let len = u32::from_le_bytes(w) as usize;
    w.copy_from_slice(&buf[pos + 4..pos + 8]);
    let crc = u32::from_le_bytes(w);
    if len == 0 {
        return Err("zero record length".to_owned());
    }
    if len > avail - 8 {
        return Err(format!(
            "record length {len} runs past the end of the segment ({} bytes left)",
            avail - 8
        ));
    }
    let covered = &buf[pos + 8..pos + 8 + len];
    let actual = crc32fast::hash(covered);
    if actual != crc {
        return Err(format!(
            "checksum mismatch: stored {crc:#010x}, computed {actual:#010x}"
        ));
    }
    let next = pos + 8 + len;
    let mut c = Cursor {
        buf,
        pos: pos + 9,
        end: next,
    };
    let record = match covered[0] {
        KIND_ENTRIES => {
            let group = c.u64()?;
            let first = c.u64()?;
            let count = c.u32()? as usize;
            if first.checked_add(count as u64).is_none() {
                return Err(format!("index overflow: first {first}, count {count}"));
            }
            // Each entry needs at least its prefix: bound the allocation by what is there.
            if count > (c.end - c.pos) / ENTRY_PREFIX {
                return Err(format!("entry count {count} does not fit the record"));
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let n = c.u32()?;
                let at = c.pos;
                c.take(n as usize)?;
                entries.push((at, n));
            }
            Record::Entries {
                group,
                first,
                entries,
            }
        }
        KIND_META => {
            let group = c.u64()?;
            let key = c.u8()?;
            let n = c.u32()? as usize;
            let value = c.take(n)?;
            Record::Meta { group, key, value }
        }
        KIND_TRUNCATE => Record::Truncate {
            group: c.u64()?,
            from: c.u64()?,
        },
        KIND_PURGE => Record::Purge {
            group: c.u64()?,
            upto: c.u64()?,
        },
        KIND_REMOVE_GROUP => Record::RemoveGroup { group: c.u64()? },
        other => return Err(format!("unknown record kind {other}")),
    };
    c.done()?;
    Ok((record, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        let mut buf = Vec::new();
        let mut pos = Vec::new();
        let entries = vec![(7, Bytes::from_static(b"abc")), (8, Bytes::new())];
        encode_entries(&mut buf, 3, 7, &entries, &mut pos);
        assert_eq!(buf.len(), entries_record_len(3, 2));
        let l1 = buf.len();
        encode_meta(&mut buf, 3, 9, b"vote");
        assert_eq!(buf.len() - l1, meta_record_len(4));
        let l2 = buf.len();
        encode_truncate(&mut buf, 3, 8);
        encode_purge(&mut buf, 3, 7);
        encode_remove_group(&mut buf, 4);
        assert_eq!(
            buf.len() - l2,
            TRUNCATE_RECORD_LEN + PURGE_RECORD_LEN + REMOVE_GROUP_RECORD_LEN
        );

        let (r, p) = decode(&buf, 0).unwrap();
        let Record::Entries {
            group,
            first,
            entries: got,
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!((group, first), (3, 7));
        assert_eq!(got, vec![(pos[0], 3), (pos[1], 0)]);
        assert_eq!(&buf[pos[0]..pos[0] + 3], b"abc");
        let (r, p) = decode(&buf, p).unwrap();
        assert_eq!(
            r,
            Record::Meta {
                group: 3,
                key: 9,
                value: b"vote"
            }
        );
        let (r, p) = decode(&buf, p).unwrap();
        assert_eq!(r, Record::Truncate { group: 3, from: 8 });
        let (r, p) = decode(&buf, p).unwrap();
        assert_eq!(r, Record::Purge { group: 3, upto: 7 });
        let (r, p) = decode(&buf, p).unwrap();
        assert_eq!(r, Record::RemoveGroup { group: 4 });
        assert_eq!(p, buf.len());
        assert!(decode(&buf, p).is_err());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_rejected() {
        let mut buf = Vec::new();
        encode_entries(
            &mut buf,
            1,
            1,
            &[(1, Bytes::from_static(b"hello world"))],
            &mut Vec::new(),
        );
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut], 0).is_err(), "cut at {cut}");
        }
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                assert!(decode(&b, 0).is_err(), "flip byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn well_checksummed_but_malformed_bodies_are_rejected() {
        // A Truncate record missing its last byte, with a valid CRC.
        let mut buf = Vec::new();
        let start = begin(&mut buf, KIND_TRUNCATE);
        buf.extend_from_slice(&[0u8; 15]);
        finish(&mut buf, start);
        assert!(decode(&buf, 0).is_err());
        // Unknown kind.
        let mut buf = Vec::new();
        let start = begin(&mut buf, 99);
        finish(&mut buf, start);
        assert!(decode(&buf, 0).unwrap_err().contains("unknown record kind"));
        // Entries claiming a huge count.
        let mut buf = Vec::new();
        let start = begin(&mut buf, KIND_ENTRIES);
        buf.extend_from_slice(&1u64.to_le_bytes());
        buf.extend_from_slice(&1u64.to_le_bytes());
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        finish(&mut buf, start);
        assert!(decode(&buf, 0).is_err());
    }
}
