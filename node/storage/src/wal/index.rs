//! The in-memory index: where every live entry of every group is, and the meta values.
//!
//! The same operations serve the live path (entries start out [`Slot::Pending`], holding
//! their bytes until the writer has written them) and replay (entries are [`Slot::Disk`]
//! from the start), so replaying the records reproduces the state that produced them.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;

/// Where an entry's payload lives in a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

#[derive(Clone, Debug)]
pub(crate) enum Slot {
    /// Appended, not yet written. `seq` identifies the append request, so that the writer
    /// only replaces the slot if it was not overwritten meanwhile.
    Pending {
        seq: u64,
        data: Bytes,
    },
    Disk(Location),
}

#[derive(Default, Debug)]
pub(crate) struct Group {
    pub(crate) entries: BTreeMap<u64, Slot>,
    pub(crate) meta: BTreeMap<u8, Bytes>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.meta.is_empty()
    }

    pub(crate) fn last_index(&self) -> Option<u64> {
        self.entries.last_key_value().map(|(k, _)| *k)
    }
}

/// An open segment: a read handle and how many live entries it holds.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) file: Arc<File>,
    pub(crate) live: u64,
}

#[derive(Default, Debug)]
pub(crate) struct Index {
    pub(crate) groups: HashMap<u64, Group>,
    pub(crate) segments: BTreeMap<u64, Segment>,
}

impl Index {
    fn release(segments: &mut BTreeMap<u64, Segment>, slot: &Slot) {
        if let Slot::Disk(loc) = slot
            && let Some(seg) = segments.get_mut(&loc.segment)
        {
            seg.live = seg.live.saturating_sub(1);
        }
    }

    fn release_all(&mut self, removed: &BTreeMap<u64, Slot>) {
        for slot in removed.values() {
            Self::release(&mut self.segments, slot);
        }
    }

    fn drop_if_empty(&mut self, group: u64) {
        if self.groups.get(&group).is_some_and(Group::is_empty) {
            self.groups.remove(&group);
        }
    }

    /// Removes indices >= `from`.
    pub(crate) fn truncate_from(&mut self, group: u64, from: u64) {
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if g.last_index().is_none_or(|last| last < from) {
            return;
        }
        let removed = g.entries.split_off(&from);
        self.release_all(&removed);
        self.drop_if_empty(group);
    }

    /// Removes indices <= `upto`.
    pub(crate) fn purge_upto(&mut self, group: u64, upto: u64) {
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if g.entries
            .first_key_value()
            .is_none_or(|(first, _)| *first > upto)
        {
            return;
        }
        let removed = match upto.checked_add(1) {
            Some(keep_from) => {
                let kept = g.entries.split_off(&keep_from);
                std::mem::replace(&mut g.entries, kept)
            }
            None => std::mem::take(&mut g.entries),
        };
        self.release_all(&removed);
        self.drop_if_empty(group);
    }

    pub(crate) fn remove_group(&mut self, group: u64) {
        if let Some(g) = self.groups.remove(&group) {
            self.release_all(&g.entries);
        }
    }

    /// Appends entries starting at `first`, first truncating anything at or above it.
    /// `slots` yields consecutive indices from `first`.
    pub(crate) fn append(&mut self, group: u64, first: u64, slots: impl Iterator<Item = Slot>) {
        self.truncate_from(group, first);
        let g = self.groups.entry(group).or_default();
        for (n, slot) in slots.enumerate() {
            // Callers guarantee first + count does not overflow.
            let i = first.saturating_add(n as u64);
            if let Slot::Disk(loc) = &slot
                && let Some(seg) = self.segments.get_mut(&loc.segment)
            {
                seg.live += 1;
            }
            g.entries.insert(i, slot);
        }
        self.drop_if_empty(group);
    }

    pub(crate) fn set_meta(&mut self, group: u64, key: u8, value: Bytes) {
        self.groups
            .entry(group)
            .or_default()
            .meta
            .insert(key, value);
    }

    /// Turns a pending slot into a disk location, unless it was overwritten or removed since.
    pub(crate) fn settle(&mut self, group: u64, index: u64, seq: u64, loc: Location) {
        let Some(slot) = self
            .groups
            .get_mut(&group)
            .and_then(|g| g.entries.get_mut(&index))
        else {
            return;
        };
        if !matches!(slot, Slot::Pending { seq: s, .. } if *s == seq) {
            return;
        }
        if let Some(seg) = self.segments.get_mut(&loc.segment) {
            seg.live += 1;
            *slot = Slot::Disk(loc);
        }
    }

    /// Oldest segments, other than `active`, that hold no live entry and have only such
    /// segments before them. Only such a prefix may be deleted: a later segment may hold the
    /// truncate/purge records that killed entries of an earlier one.
    pub(crate) fn dead_prefix(&self, active: u64) -> Vec<u64> {
        self.segments
            .iter()
            .take_while(|(id, seg)| **id != active && seg.live == 0)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: u64) -> impl Iterator<Item = Slot> {
        (0..n).map(|i| Slot::Pending {
            seq: 1,
            data: Bytes::from(vec![i as u8]),
        })
    }

    fn keys(ix: &Index, g: u64) -> Vec<u64> {
        ix.groups
            .get(&g)
            .map(|g| g.entries.keys().copied().collect())
            .unwrap_or_default()
    }

    #[test]
    fn overwrite_purge_truncate_and_live_counts() {
        let mut ix = Index::default();
        ix.segments.insert(
            1,
            Segment {
                file: Arc::new(tempfile::tempfile().unwrap()),
                live: 0,
            },
        );
        let disk = |off| {
            Slot::Disk(Location {
                segment: 1,
                offset: off,
                len: 1,
            })
        };
        ix.append(5, 1, (1..=5).map(disk));
        assert_eq!(ix.segments[&1].live, 5);
        ix.append(5, 4, pending(3));
        assert_eq!(keys(&ix, 5), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(ix.segments[&1].live, 3);
        ix.purge_upto(5, 1);
        assert_eq!(ix.segments[&1].live, 2);
        ix.truncate_from(5, 3);
        assert_eq!(keys(&ix, 5), vec![2]);
        assert_eq!(ix.segments[&1].live, 1);
        ix.purge_upto(5, u64::MAX);
        assert!(!ix.groups.contains_key(&5));
        assert_eq!(ix.segments[&1].live, 0);
        assert_eq!(ix.dead_prefix(2), vec![1]);
        assert!(ix.dead_prefix(1).is_empty());
    }

    #[test]
    fn settle_skips_overwritten_slots() {
        let mut ix = Index::default();
        ix.segments.insert(
            1,
            Segment {
                file: Arc::new(tempfile::tempfile().unwrap()),
                live: 0,
            },
        );
        ix.append(1, 1, pending(2)); // seq 1
        ix.append(
            1,
            2,
            std::iter::once(Slot::Pending {
                seq: 2,
                data: Bytes::new(),
            }),
        );
        let loc = |o| Location {
            segment: 1,
            offset: o,
            len: 1,
        };
        ix.settle(1, 1, 1, loc(0));
        ix.settle(1, 2, 1, loc(1)); // overwritten by seq 2: ignored
        ix.settle(1, 3, 1, loc(2)); // never existed
        assert!(matches!(ix.groups[&1].entries[&1], Slot::Disk(_)));
        assert!(matches!(
            ix.groups[&1].entries[&2],
            Slot::Pending { seq: 2, .. }
        ));
        assert_eq!(ix.segments[&1].live, 1);
    }
}
