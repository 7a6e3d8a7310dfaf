//! Contract checks for [`LogEngine`]: append/read, overwrite-truncate, purge, meta
//! last-wins, reopen preserves everything, torn tail truncated.
//!
//! [`run_all`] takes a base directory (each check uses its own subdirectory) and a
//! function opening an engine in a directory; it is called again on the same directory to
//! check what survives a reopen. Every check panics on a violation.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{LogEngine, StorageError};

fn ok<T>(r: Result<T, StorageError>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Payload of entry `index` of `group` in generation `generation`.
fn payload(group: u64, index: u64, generation: u8) -> Bytes {
    Bytes::from(format!(
        "g{group}-i{index}-v{generation}-{}",
        "x".repeat((index % 7) as usize)
    ))
}

fn batch(group: u64, range: std::ops::Range<u64>, generation: u8) -> Vec<(u64, Bytes)> {
    range.map(|i| (i, payload(group, i, generation))).collect()
}

fn indices(entries: &[(u64, Bytes)]) -> Vec<u64> {
    entries.iter().map(|(i, _)| *i).collect()
}

fn read(engine: &LogEngine, group: u64, range: std::ops::Range<u64>) -> Vec<(u64, Bytes)> {
    ok(engine.entries(group, range), "reading entries")
}

fn sub(base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    assert!(
        !dir.exists(),
        "conformance directory {} already exists",
        dir.display()
    );
    dir
}

/// Runs every check. `base` must be an empty, writable directory.
pub async fn run_all(base: &Path, make: impl Fn(&Path) -> LogEngine) {
    append_and_read(&sub(base, "append_and_read"), &make).await;
    overwrite_truncates(&sub(base, "overwrite_truncates"), &make).await;
    purge(&sub(base, "purge"), &make).await;
    meta_last_wins(&sub(base, "meta_last_wins"), &make).await;
    reopen_preserves_all(&sub(base, "reopen_preserves_all"), &make).await;
    torn_tail_truncated(&sub(base, "torn_tail_truncated"), &make).await;
}

/// Appended entries are readable at once, durable when `done` fires, and read back in
/// order, honouring the range; unknown groups and empty ranges read as empty.
pub async fn append_and_read(dir: &Path, make: &impl Fn(&Path) -> LogEngine) {
    let engine = make(dir);
    let (tx, rx) = tokio::sync::oneshot::channel();
    engine.append(
        1,
        batch(1, 1..11, 0),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    // Readable before durable.
    assert_eq!(read(&engine, 1, 1..11), batch(1, 1..11, 0));
    ok(
        rx.await.unwrap_or(Err(StorageError::Closed)),
        "append callback",
    );
    ok(
        engine.append_durable(1, batch(1, 11..21, 0)).await,
        "append_durable",
    );
    assert_eq!(read(&engine, 1, 0..u64::MAX), batch(1, 1..21, 0));
    assert_eq!(read(&engine, 1, 5..8), batch(1, 5..8, 0));
    assert_eq!(read(&engine, 1, 20..100), batch(1, 20..21, 0));
    assert!(read(&engine, 1, 21..30).is_empty());
    assert!(read(&engine, 1, 8..8).is_empty());
    assert!(read(&engine, 2, 0..10).is_empty());
    assert_eq!(engine.bounds(1), Some((1, 20)));
    assert_eq!(engine.bounds(2), None);
    assert_eq!(engine.groups(), vec![1]);
    // Non-consecutive indices are refused and change nothing.
    let bad = vec![(21, payload(1, 21, 0)), (23, payload(1, 23, 0))];
    assert!(matches!(
        engine.append_durable(1, bad).await,
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(engine.bounds(1), Some((1, 20)));
    // An empty append is a barrier that succeeds.
    ok(engine.append_durable(1, Vec::new()).await, "empty append");
}

/// Appending at or below the last index replaces everything from there on, both in memory
/// and after reopen; so does `truncate_from`.
pub async fn overwrite_truncates(dir: &Path, make: &impl Fn(&Path) -> LogEngine) {
    {
        let engine = make(dir);
        ok(engine.append_durable(7, batch(7, 1..21, 0)).await, "append");
        ok(
            engine.append_durable(7, batch(7, 15..18, 1)).await,
            "overwrite",
        );
        let mut want = batch(7, 1..15, 0);
        want.extend(batch(7, 15..18, 1));
        assert_eq!(read(&engine, 7, 0..100), want);
        assert_eq!(engine.bounds(7), Some((1, 17)));
        ok(engine.truncate_from(7, 10).await, "truncate_from");
        assert_eq!(engine.bounds(7), Some((1, 9)));
        ok(
            engine.append_durable(7, batch(7, 10..13, 2)).await,
            "re-append",
        );
        // Truncating beyond the end is a no-op.
        ok(engine.truncate_from(7, 100).await, "truncate past end");
    }
    let engine = make(dir);
    let mut want = batch(7, 1..10, 0);
    want.extend(batch(7, 10..13, 2));
    assert_eq!(read(&engine, 7, 0..100), want);
}

/// `purge_upto` drops entries at or below the index, at once and after reopen.
pub async fn purge(dir: &Path, make: &impl Fn(&Path) -> LogEngine) {
    {
        let engine = make(dir);
        ok(engine.append_durable(3, batch(3, 1..31, 0)).await, "append");
        ok(engine.purge_upto(3, 10).await, "purge");
        assert_eq!(engine.bounds(3), Some((11, 30)));
        assert_eq!(
            indices(&read(&engine, 3, 0..100)),
            (11..31).collect::<Vec<_>>()
        );
        ok(engine.purge_upto(3, 5).await, "purge below first");
        assert_eq!(engine.bounds(3), Some((11, 30)));
        ok(
            engine.append_durable(3, batch(3, 31..33, 0)).await,
            "append after purge",
        );
    }
    let engine = make(dir);
    assert_eq!(engine.bounds(3), Some((11, 32)));
    assert_eq!(read(&engine, 3, 0..100), batch(3, 11..33, 0));
    // Purging everything empties the group, which then lists only if it has meta.
    ok(engine.purge_upto(3, u64::MAX).await, "purge all");
    assert_eq!(engine.bounds(3), None);
    assert!(engine.groups().is_empty());
    drop(engine);
    let engine = make(dir);
    assert_eq!(engine.bounds(3), None);
}

/// The latest meta value wins, in memory and after reopen; keys and groups are separate.
pub async fn meta_last_wins(dir: &Path, make: &impl Fn(&Path) -> LogEngine) {
    {
        let engine = make(dir);
        assert_eq!(engine.get_meta(1, 0), None);
        ok(engine.put_meta(1, 0, Bytes::from_static(b"a")).await, "put");
        ok(engine.put_meta(1, 0, Bytes::from_static(b"b")).await, "put");
        ok(
            engine
                .put_meta(1, 1, Bytes::from_static(b"other key"))
                .await,
            "put",
        );
        ok(
            engine
                .put_meta(2, 0, Bytes::from_static(b"other group"))
                .await,
            "put",
        );
        // Visible before the future is awaited.
        let last = engine.put_meta(1, 0, Bytes::from_static(b"c"));
        assert_eq!(engine.get_meta(1, 0), Some(Bytes::from_static(b"c")));
        ok(last.await, "put");
        assert_eq!(engine.groups(), vec![1, 2]);
    }
    let engine = make(dir);
    assert_eq!(engine.get_meta(1, 0), Some(Bytes::from_static(b"c")));
    assert_eq!(
        engine.get_meta(1, 1),
        Some(Bytes::from_static(b"other key"))
    );
    assert_eq!(
        engine.get_meta(2, 0),
        Some(Bytes::from_static(b"other group"))
    );
    assert_eq!(engine.get_meta(2, 1), None);
    ok(engine.remove_group(1).await, "remove_group");
    assert_eq!(engine.get_meta(1, 0), None);
    drop(engine);
    let engine = make(dir);
    assert_eq!(engine.get_meta(1, 0), None);
    assert_eq!(engine.groups(), vec![2]);
}

/// Everything written (entries of several groups, meta, truncations, purges, removals)
/// reads back the same after reopen, and the reopened engine keeps working.
pub async fn reopen_preserves_all(dir: &Path, make: &impl Fn(&Path) -> LogEngine) {
    let snapshot = |engine: &LogEngine| {
        engine
            .groups()
            .into_iter()
            .map(|g| {
                (
                    g,
                    read(engine, g, 0..u64::MAX),
                    engine.bounds(g),
                    (0..3).map(|k| engine.get_meta(g, k)).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = {
        let engine = make(dir);
        for round in 0..5u64 {
            for g in 1..=4u64 {
                let start = round * 10 + 1;
                ok(
                    engine
                        .append_durable(g, batch(g, start..start + 10, 0))
                        .await,
                    "append",
                );
            }
        }
        ok(
            engine.put_meta(2, 0, Bytes::from_static(b"vote")).await,
            "put",
        );
        ok(engine.truncate_from(1, 45).await, "truncate");
        ok(engine.purge_upto(3, 12).await, "purge");
        ok(engine.remove_group(4).await, "remove");
        ok(
            engine.append_durable(5, batch(5, 100..103, 0)).await,
            "append",
        );
        snapshot(&engine)
    };
    let engine = make(dir);
    assert_eq!(snapshot(&engine), before);
    ok(
        engine.append_durable(1, batch(1, 45..50, 9)).await,
        "append after reopen",
    );
    let before = snapshot(&engine);
    drop(engine);
    assert_eq!(snapshot(&make(dir)), before);
}

/// Garbage or a partial record at the end of the last segment is cut off at open; what
/// came before is intact and later writes survive another reopen.
pub async fn torn_tail_truncated(dir: &Path, make: &impl Fn(&Path) -> LogEngine) {
    {
        let engine = make(dir);
        ok(engine.append_durable(1, batch(1, 1..6, 0)).await, "append");
        ok(engine.put_meta(1, 0, Bytes::from_static(b"m")).await, "put");
    }
    let last = ok(crate::wal::last_segment_path(dir), "listing segments")
        .unwrap_or_else(|| panic!("no segment in {}", dir.display()));
    // A record header promising 1000 bytes, followed by only a few.
    let mut torn = Vec::new();
    torn.extend_from_slice(&1000u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.extend_from_slice(&[1, 2, 3, 4, 5]);
    match OpenOptions::new()
        .append(true)
        .open(&last)
        .and_then(|mut f| f.write_all(&torn))
    {
        Ok(()) => {}
        Err(e) => panic!("appending garbage to {}: {e}", last.display()),
    }
    {
        let engine = make(dir);
        assert_eq!(read(&engine, 1, 0..100), batch(1, 1..6, 0));
        assert_eq!(engine.get_meta(1, 0), Some(Bytes::from_static(b"m")));
        ok(
            engine.append_durable(1, batch(1, 6..9, 0)).await,
            "append after repair",
        );
    }
    let engine = make(dir);
    assert_eq!(read(&engine, 1, 0..100), batch(1, 1..9, 0));
}
