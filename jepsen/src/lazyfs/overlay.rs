//! The unsynced bytes of one file: what a page cache holds dirty between a `write` and the
//! `fsync` that makes it durable. Extents never overlap and never touch (touching ones are
//! merged), so an appending writer keeps one growing extent.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Start offset to bytes.
    extents: BTreeMap<u64, Vec<u8>>,
    /// The file's size as writers see it, when writes moved it past the durable size.
    size: Option<u64>,
}

impl Overlay {
    pub(crate) fn is_clean(&self) -> bool {
        self.extents.is_empty() && self.size.is_none()
    }

    /// The size readers see, given the size of the durable (backing) file.
    pub(crate) fn size(&self, durable: u64) -> u64 {
        self.size.unwrap_or(durable)
    }

    /// Bytes held in memory (for reports).
    pub(crate) fn dirty_bytes(&self) -> u64 {
        self.extents.values().map(|v| v.len() as u64).sum()
    }

    pub(crate) fn write(&mut self, offset: u64, data: &[u8], durable: u64) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        let size = self.size(durable).max(end);
        self.size = Some(size);
        // The common case, an append right after the last extent: grow it in place.
        let before = self
            .extents
            .range(..=offset)
            .next_back()
            .filter(|(s, b)| **s + b.len() as u64 == offset)
            .map(|(s, _)| *s);
        if let Some(start) = before
            && self.extents.range(offset + 1..=end).next().is_none()
            && let Some(bytes) = self.extents.get_mut(&start)
        {
            bytes.extend_from_slice(data);
            return;
        }
        let touching: Vec<u64> = self
            .extents
            .range(..=end)
            .rev()
            .take_while(|(s, b)| **s + b.len() as u64 >= offset)
            .map(|(s, _)| *s)
            .collect();
        let mut start = offset;
        let mut stop = end;
        for s in &touching {
            let len = self.extents.get(s).map_or(0, |b| b.len() as u64);
            start = start.min(*s);
            stop = stop.max(s + len);
        }
        let mut merged = vec![0u8; (stop - start) as usize];
        for s in touching {
            if let Some(old) = self.extents.remove(&s) {
                let at = (s - start) as usize;
                merged[at..at + old.len()].copy_from_slice(&old);
            }
        }
        let at = (offset - start) as usize;
        merged[at..at + data.len()].copy_from_slice(data);
        self.extents.insert(start, merged);
    }

    /// Lays the unsynced bytes over `buf`, which holds the file from `offset` (durable bytes, zero
    /// past the durable end).
    pub(crate) fn read_into(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        for (s, bytes) in self.extents.range(..end).rev() {
            let e = s + bytes.len() as u64;
            if e <= offset {
                break;
            }
            let from = (*s).max(offset);
            let to = e.min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - s) as usize..(to - s) as usize]);
        }
    }

    /// A truncate to `len`: unsynced bytes at or past it are gone. The caller applies the new
    /// size to the durable file itself, so the overlay keeps no size of its own past this.
    pub(crate) fn truncate(&mut self, len: u64) {
        let past: Vec<u64> = self.extents.range(len..).map(|(s, _)| *s).collect();
        for s in past {
            self.extents.remove(&s);
        }
        if let Some((s, bytes)) = self.extents.range_mut(..len).next_back() {
            let keep = (len - s) as usize;
            bytes.truncate(keep.min(bytes.len()));
        }
        self.size = None;
    }

    /// The durable size grew to `len` (a size-extending fallocate): readers see at least that.
    pub(crate) fn grow(&mut self, len: u64) {
        if let Some(size) = self.size {
            self.size = Some(size.max(len));
        }
    }

    /// Takes the unsynced extents and the size to make durable, leaving the overlay clean.
    pub(crate) fn take(&mut self) -> (BTreeMap<u64, Vec<u8>>, Option<u64>) {
        (std::mem::take(&mut self.extents), self.size.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(o: &Overlay, durable: &[u8]) -> Vec<u8> {
        let size = o.size(durable.len() as u64) as usize;
        let mut buf = vec![0u8; size];
        let n = durable.len().min(size);
        buf[..n].copy_from_slice(&durable[..n]);
        o.read_into(0, &mut buf);
        buf
    }

    #[test]
    fn appends_grow_one_extent_and_read_back() {
        let mut o = Overlay::default();
        o.write(3, b"abc", 3);
        o.write(6, b"def", 3);
        assert_eq!(o.extents.len(), 1);
        assert_eq!(view(&o, b"xyz"), b"xyzabcdef");
        assert_eq!(o.dirty_bytes(), 6);
    }

    #[test]
    fn overlapping_writes_merge_newest_wins() {
        let mut o = Overlay::default();
        o.write(10, b"aaaa", 0);
        o.write(0, b"bb", 0);
        o.write(12, b"cccccc", 0);
        o.write(1, b"ddddddddddd", 0);
        let mut want = vec![0u8; 18];
        want[0] = b'b';
        want[1..12].copy_from_slice(b"ddddddddddd");
        want[12..18].copy_from_slice(b"cccccc");
        assert_eq!(view(&o, b""), want);
        assert_eq!(o.extents.len(), 1, "{:?}", o.extents.keys());
    }

    #[test]
    fn a_write_inside_durable_data_keeps_the_size() {
        let mut o = Overlay::default();
        o.write(1, b"Z", 4);
        assert_eq!(view(&o, b"abcd"), b"aZcd");
        let mut buf = [0u8; 2];
        buf.copy_from_slice(b"bc");
        o.read_into(1, &mut buf);
        assert_eq!(&buf, b"Zc");
    }

    #[test]
    fn truncate_drops_unsynced_bytes_past_the_cut() {
        let mut o = Overlay::default();
        o.write(0, b"0123456789", 0);
        o.write(20, b"xx", 0);
        o.truncate(4);
        assert!(o.size.is_none());
        assert_eq!(view(&o, b"\0\0\0\0"), b"0123");
        let (extents, size) = o.take();
        assert_eq!(extents.len(), 1);
        assert_eq!(size, None);
        assert!(o.is_clean());
    }
}
