use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;

use super::segment::{list_segments, segment_path};
use super::*;

fn opts(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        sync: true,
    }
}

fn open(dir: &Path, o: WalOptions) -> LogEngine {
    LogEngine::open(dir, o).unwrap()
}

fn data(group: u64, index: u64, len: usize) -> Bytes {
    let mut v = format!("{group}:{index}:").into_bytes();
    v.resize(len.max(v.len()), (index % 251) as u8);
    Bytes::from(v)
}

fn batch(group: u64, range: Range<u64>, len: usize) -> Vec<(u64, Bytes)> {
    range.map(|i| (i, data(group, i, len))).collect()
}

fn all(engine: &LogEngine, group: u64) -> Vec<(u64, Bytes)> {
    engine.entries(group, 0..u64::MAX).unwrap()
}

fn segments(dir: &Path) -> Vec<u64> {
    list_segments(dir).unwrap()
}

#[tokio::test]
async fn conformance_synced() {
    let base = tempfile::tempdir().unwrap();
    crate::conformance::run_all(base.path(), |d| open(d, WalOptions::default())).await;
}

#[tokio::test]
async fn conformance_small_segments_unsynced() {
    let base = tempfile::tempdir().unwrap();
    crate::conformance::run_all(base.path(), |d| {
        open(
            d,
            WalOptions {
                segment_bytes: 512,
                sync: false,
            },
        )
    })
    .await;
}

#[tokio::test]
async fn reopen_after_many_appends_across_three_groups() {
    let dir = tempfile::tempdir().unwrap();
    let mut want: HashMap<u64, Vec<(u64, Bytes)>> = HashMap::new();
    {
        let engine = open(dir.path(), opts(64 << 10));
        let acked = Arc::new(AtomicUsize::new(0));
        let mut next = [1u64; 3];
        for round in 0..300u64 {
            for g in 0..3u64 {
                let n = 1 + (round + g) % 4;
                let b = batch(
                    g,
                    next[g as usize]..next[g as usize] + n,
                    100 + (round as usize % 300),
                );
                next[g as usize] += n;
                want.entry(g).or_default().extend(b.clone());
                let acked = acked.clone();
                engine.append(
                    g,
                    b,
                    Box::new(move |r| {
                        r.unwrap();
                        acked.fetch_add(1, AtomicOrdering::SeqCst);
                    }),
                );
            }
        }
        engine.append_durable(0, Vec::new()).await.unwrap();
        assert_eq!(acked.load(AtomicOrdering::SeqCst), 900);
        for g in 0..3 {
            assert_eq!(all(&engine, g), want[&g]);
        }
        assert!(segments(dir.path()).len() > 2, "expected rotation");
    }
    let engine = open(dir.path(), opts(64 << 10));
    assert_eq!(engine.groups(), vec![0, 1, 2]);
    for g in 0..3 {
        assert_eq!(all(&engine, g), want[&g]);
        assert_eq!(engine.bounds(g), Some((1, want[&g].len() as u64)));
    }
}

/// Writes 5 entries, then damages the end of the last segment with `damage`, reopens and
/// checks the entries survive and the engine keeps working.
async fn check_torn_tail(damage: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path(), opts(1 << 20));
        engine.append_durable(1, batch(1, 1..6, 50)).await.unwrap();
        engine
            .put_meta(1, 2, Bytes::from_static(b"meta"))
            .await
            .unwrap();
    }
    let last = segment_path(dir.path(), *segments(dir.path()).last().unwrap());
    let intact_len = fs::metadata(&last).unwrap().len();
    damage(&last);
    {
        let engine = open(dir.path(), opts(1 << 20));
        assert!(engine.cut_torn_tail_at_open());
        assert_eq!(all(&engine, 1), batch(1, 1..6, 50));
        assert_eq!(engine.get_meta(1, 2), Some(Bytes::from_static(b"meta")));
        assert_eq!(
            fs::metadata(&last).unwrap().len(),
            intact_len,
            "tail cut back"
        );
        engine.append_durable(1, batch(1, 6..8, 50)).await.unwrap();
    }
    let engine = open(dir.path(), opts(1 << 20));
    assert!(
        !engine.cut_torn_tail_at_open(),
        "an intact log cuts nothing"
    );
    assert_eq!(all(&engine, 1), batch(1, 1..8, 50));
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[tokio::test]
async fn torn_tail_garbage() {
    check_torn_tail(|p| append_bytes(p, b"\xff\xff\x00\x00garbage that is not a record")).await;
}

#[tokio::test]
async fn torn_tail_zero_fill() {
    check_torn_tail(|p| append_bytes(p, &[0u8; 4096])).await;
}

#[tokio::test]
async fn torn_tail_partial_record() {
    check_torn_tail(|p| {
        // A whole record, then cut it short by a few bytes.
        let mut rec = Vec::new();
        record::encode_entries(&mut rec, 1, 6, &batch(1, 6..9, 50), &mut Vec::new());
        append_bytes(p, &rec[..rec.len() - 7]);
    })
    .await;
}

#[tokio::test]
async fn torn_tail_bad_checksum() {
    check_torn_tail(|p| {
        let mut rec = Vec::new();
        record::encode_truncate(&mut rec, 1, 2);
        let n = rec.len();
        rec[n - 1] ^= 0x40;
        append_bytes(p, &rec);
    })
    .await;
}

/// Five durable appends in one segment, returning the segment and where each record starts.
async fn five_records(dir: &Path) -> (PathBuf, Vec<u64>) {
    let engine = open(dir, opts(1 << 20));
    let mut starts = Vec::new();
    let last = || segment_path(dir, *segments(dir).last().unwrap());
    for i in 0..5u64 {
        starts.push(fs::metadata(last()).unwrap().len());
        engine
            .append_durable(1, batch(1, i * 2 + 1..i * 2 + 3, 100))
            .await
            .unwrap();
    }
    (last(), starts)
}

fn flip(path: &Path, at: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x10;
    f.write_all_at(&b, at).unwrap();
}

#[tokio::test]
async fn a_flipped_bit_before_intact_records_is_corruption_not_a_torn_tail() {
    for offset_in_record in [2u64, 6, 30] {
        let dir = tempfile::tempdir().unwrap();
        let (last, starts) = five_records(dir.path()).await;
        // Length word, checksum, body of the second record: synced and followed by three more.
        flip(&last, starts[1] + offset_in_record);
        let err = LogEngine::open(dir.path(), opts(1 << 20)).unwrap_err();
        assert!(
            matches!(err, StorageError::Corrupt { .. }),
            "flip at +{offset_in_record}: {err:?}"
        );
        // Nothing was cut: mending the bit brings every entry back.
        flip(&last, starts[1] + offset_in_record);
        let engine = open(dir.path(), opts(1 << 20));
        assert_eq!(all(&engine, 1), batch(1, 1..11, 100));
    }
}

#[tokio::test]
async fn a_zeroed_sector_before_intact_records_is_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), opts(1 << 20));
    engine.append_durable(1, batch(1, 1..3, 100)).await.unwrap();
    drop(engine);
    let last = segment_path(dir.path(), *segments(dir.path()).last().unwrap());
    let intact = fs::metadata(&last).unwrap().len();
    // One unsynced write of three records, whose middle sector never reached the disk.
    let mut rec = Vec::new();
    record::encode_entries(&mut rec, 1, 3, &batch(1, 3..5, 2000), &mut Vec::new());
    record::encode_entries(&mut rec, 1, 5, &batch(1, 5..6, 100), &mut Vec::new());
    let sector = (intact as usize).div_ceil(512) * 512 + 1024 - intact as usize;
    rec[sector..sector + 512].fill(0);
    append_bytes(&last, &rec);
    let engine = open(dir.path(), opts(1 << 20));
    assert_eq!(all(&engine, 1), batch(1, 1..3, 100));
    assert_eq!(fs::metadata(&last).unwrap().len(), intact, "tail cut back");
}

#[tokio::test]
async fn torn_header_of_a_fresh_segment_is_reinitialised() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path(), opts(1 << 20));
        engine.append_durable(1, batch(1, 1..4, 10)).await.unwrap();
        engine
            .put_meta(1, 0, Bytes::from_static(b"v"))
            .await
            .unwrap();
    }
    // A crash right after creating the next segment: a few bytes of its header.
    let next = segments(dir.path()).last().unwrap() + 1;
    fs::write(segment_path(dir.path(), next), b"SDW").unwrap();
    {
        let engine = open(dir.path(), opts(1 << 20));
        assert_eq!(all(&engine, 1), batch(1, 1..4, 10));
        engine.append_durable(1, batch(1, 4..6, 10)).await.unwrap();
    }
    let engine = open(dir.path(), opts(1 << 20));
    assert_eq!(all(&engine, 1), batch(1, 1..6, 10));
    assert_eq!(engine.get_meta(1, 0), Some(Bytes::from_static(b"v")));
}

#[tokio::test]
async fn corrupt_middle_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path(), opts(4096));
        for i in 0..40 {
            engine
                .append_durable(1, batch(1, i * 4 + 1..i * 4 + 5, 200))
                .await
                .unwrap();
        }
    }
    let ids = segments(dir.path());
    assert!(ids.len() >= 4, "{ids:?}");
    let victim = ids[1];
    let path = segment_path(dir.path(), victim);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 100).unwrap();
    b[0] ^= 0x01;
    f.write_all_at(&b, 100).unwrap();
    drop(f);

    let err = LogEngine::open(dir.path(), opts(4096)).unwrap_err();
    match &err {
        StorageError::Corrupt { segment, .. } => {
            assert_eq!(segment, &segment::segment_name(victim));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(err.to_string().starts_with("corrupt wal segment "), "{err}");

    // A cut-short middle segment is corruption too, not a torn tail.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 3).unwrap();
    assert!(matches!(
        LogEngine::open(dir.path(), opts(4096)),
        Err(StorageError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn bad_magic_in_old_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path(), opts(4096));
        for i in 0..10 {
            engine
                .append_durable(1, batch(1, i * 4 + 1..i * 4 + 5, 300))
                .await
                .unwrap();
        }
    }
    let first = segment_path(dir.path(), segments(dir.path())[0]);
    let f = OpenOptions::new().write(true).open(&first).unwrap();
    f.write_all_at(b"NOTAWAL!", 0).unwrap();
    assert!(matches!(
        LogEngine::open(dir.path(), opts(4096)),
        Err(StorageError::Corrupt { offset: 0, .. })
    ));
}

#[tokio::test]
async fn rotation_and_purge_delete_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), opts(8192));
    for i in 0..100u64 {
        for g in 1..=2 {
            engine
                .append_durable(g, batch(g, i * 2 + 1..i * 2 + 3, 256))
                .await
                .unwrap();
        }
    }
    let before = segments(dir.path());
    assert!(before.len() > 10, "{before:?}");

    // Purging one group is not enough: the other still holds entries everywhere.
    engine.purge_upto(1, 150).await.unwrap();
    assert_eq!(segments(dir.path()), before);

    engine.purge_upto(2, 150).await.unwrap();
    let after = segments(dir.path());
    assert!(after.len() < before.len() / 2, "{before:?} -> {after:?}");
    assert_eq!(after.last(), before.last());
    assert_eq!(all(&engine, 1), batch(1, 151..201, 256));
    assert_eq!(all(&engine, 2), batch(2, 151..201, 256));
    drop(engine);

    let engine = open(dir.path(), opts(8192));
    assert_eq!(all(&engine, 1), batch(1, 151..201, 256));
    assert_eq!(all(&engine, 2), batch(2, 151..201, 256));

    // Removing both groups leaves only the active segment.
    engine.remove_group(1).await.unwrap();
    engine.remove_group(2).await.unwrap();
    assert_eq!(segments(dir.path()), vec![*after.last().unwrap()]);
    drop(engine);
    let engine = open(dir.path(), opts(8192));
    assert!(engine.groups().is_empty());
}

#[tokio::test]
async fn only_a_dead_prefix_is_deleted() {
    // Segment A holds group 1's entries 1..=k (kept alive) and the later segments hold
    // group 2 entries plus a truncate of group 1. Dropping group 2 must not delete a later
    // segment while A is alive, or the truncate would be lost and entries resurrected.
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path(), opts(4096));
        engine
            .append_durable(1, batch(1, 1..11, 100))
            .await
            .unwrap();
        for i in 0..30 {
            engine
                .append_durable(2, batch(2, i * 3 + 1..i * 3 + 4, 200))
                .await
                .unwrap();
        }
        engine.truncate_from(1, 6).await.unwrap();
        for i in 30..60 {
            engine
                .append_durable(2, batch(2, i * 3 + 1..i * 3 + 4, 200))
                .await
                .unwrap();
        }
        engine.remove_group(2).await.unwrap();
        assert_eq!(all(&engine, 1), batch(1, 1..6, 100));
        assert!(segments(dir.path()).len() > 3);
    }
    let engine = open(dir.path(), opts(4096));
    assert_eq!(all(&engine, 1), batch(1, 1..6, 100));
    assert_eq!(engine.groups(), vec![1]);
}

#[tokio::test]
async fn truncate_then_reappend_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path(), opts(4096));
        for i in 0..20 {
            engine
                .append_durable(9, batch(9, i * 5 + 1..i * 5 + 6, 150))
                .await
                .unwrap();
        }
        engine.truncate_from(9, 31).await.unwrap();
        assert_eq!(engine.bounds(9), Some((1, 30)));
        let mut again = batch(9, 31..41, 150);
        for (_, d) in &mut again {
            *d = Bytes::from(format!("new {}", d.len()));
        }
        engine.append_durable(9, again.clone()).await.unwrap();
        // Overwrite without an explicit truncate, pending and not awaited.
        engine.append(9, batch(9, 36..38, 7), Box::new(|r| r.unwrap()));
        let mut want = batch(9, 1..31, 150);
        want.extend(again[..5].iter().cloned());
        want.extend(batch(9, 36..38, 7));
        assert_eq!(all(&engine, 9), want);
    }
    let engine = open(dir.path(), opts(4096));
    let got = all(&engine, 9);
    assert_eq!(got.len(), 37);
    assert_eq!(got[30].1, Bytes::from("new 150"));
    assert_eq!(got[35..], batch(9, 36..38, 7)[..]);
}

#[tokio::test]
async fn overwrite_of_pending_entries_is_not_clobbered_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), opts(1 << 20));
    for round in 0..200u64 {
        engine.append(1, batch(1, 1..11, round as usize), Box::new(|r| r.unwrap()));
        engine.append(
            1,
            batch(1, 5..8, 1000 + round as usize),
            Box::new(|r| r.unwrap()),
        );
    }
    engine.append_durable(1, Vec::new()).await.unwrap();
    let mut want = batch(1, 1..5, 199);
    want.extend(batch(1, 5..8, 1199));
    assert_eq!(all(&engine, 1), want);
    drop(engine);
    assert_eq!(all(&open(dir.path(), opts(1 << 20)), 1), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), WalOptions::default());
    const TASKS: u64 = 32;
    const APPENDS: u64 = 25;
    let mut tasks = Vec::new();
    for g in 0..TASKS {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            for i in 1..=APPENDS {
                engine
                    .append_durable(g, vec![(i, data(g, i, 512))])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = engine.stats();
    let appends = TASKS * APPENDS;
    assert_eq!(stats.requests, appends);
    assert!(stats.fsyncs > 0);
    assert!(
        stats.fsyncs < appends,
        "group commit: {} fsyncs for {appends} appends",
        stats.fsyncs
    );
    assert!(stats.batches < appends, "{stats:?}");
    assert!(stats.bytes_written > appends * 512);
    for g in 0..TASKS {
        assert_eq!(engine.bounds(g), Some((1, APPENDS)));
    }
}

#[tokio::test]
async fn meta_survives_rotation_and_deletion_of_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let first_segment;
    {
        let engine = open(dir.path(), opts(4096));
        first_segment = segments(dir.path())[0];
        for g in 1..=5u64 {
            engine
                .put_meta(g, 0, Bytes::from(format!("vote {g}")))
                .await
                .unwrap();
            engine.put_meta(g, 1, Bytes::from("old")).await.unwrap();
        }
        engine.put_meta(3, 1, Bytes::from("new")).await.unwrap();
        engine.remove_group(5).await.unwrap();
        // Fill and purge many segments of entries.
        for i in 0..60 {
            engine
                .append_durable(100, batch(100, i * 4 + 1..i * 4 + 5, 200))
                .await
                .unwrap();
        }
        engine.purge_upto(100, 230).await.unwrap();
        assert!(
            !segments(dir.path()).contains(&first_segment),
            "the segment holding the original meta records was deleted"
        );
    }
    for _ in 0..2 {
        let engine = open(dir.path(), opts(4096));
        for g in 1..=4u64 {
            assert_eq!(
                engine.get_meta(g, 0),
                Some(Bytes::from(format!("vote {g}")))
            );
        }
        assert_eq!(engine.get_meta(1, 1), Some(Bytes::from("old")));
        assert_eq!(engine.get_meta(3, 1), Some(Bytes::from("new")));
        assert_eq!(engine.get_meta(5, 0), None);
        assert_eq!(engine.groups(), vec![1, 2, 3, 4, 100]);
        assert_eq!(all(&engine, 100), batch(100, 231..241, 200));
    }
}

#[tokio::test]
async fn appends_bigger_than_a_segment_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let big = batch(4, 1..101, 1000); // ~100 KB into 8 KiB segments
    {
        let engine = open(dir.path(), opts(8192));
        engine.append_durable(4, big.clone()).await.unwrap();
        // A single entry bigger than a segment still goes in, alone.
        engine
            .append_durable(4, vec![(101, data(4, 101, 20_000))])
            .await
            .unwrap();
        assert!(segments(dir.path()).len() > 10);
    }
    let engine = open(dir.path(), opts(8192));
    let mut want = big;
    want.push((101, data(4, 101, 20_000)));
    assert_eq!(all(&engine, 4), want);
}

#[tokio::test]
async fn entries_stop_at_a_hole_and_gaps_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), opts(1 << 20));
    engine.append_durable(1, batch(1, 1..6, 10)).await.unwrap();
    engine
        .append_durable(1, batch(1, 10..13, 10))
        .await
        .unwrap();
    assert_eq!(engine.bounds(1), Some((1, 12)));
    assert_eq!(engine.entries(1, 0..100).unwrap(), batch(1, 1..6, 10));
    assert_eq!(engine.entries(1, 3..100).unwrap(), batch(1, 3..6, 10));
    assert_eq!(engine.entries(1, 6..100).unwrap(), batch(1, 10..13, 10));
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 9..3;
    assert!(engine.entries(1, reversed).unwrap().is_empty());
    engine.purge_upto(1, 9).await.unwrap();
    assert_eq!(engine.entries(1, 0..100).unwrap(), batch(1, 10..13, 10));
    drop(engine);
    let engine = open(dir.path(), opts(1 << 20));
    assert_eq!(engine.bounds(1), Some((10, 12)));
}

#[tokio::test]
async fn large_and_many_entries_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), WalOptions::default());
    // Big enough that reads are split into several merged spans.
    let entries: Vec<_> = (1..=40).map(|i| (i, data(1, i, 300_000))).collect();
    engine.append_durable(1, entries.clone()).await.unwrap();
    engine
        .append_durable(1, vec![(41, data(1, 41, 5 << 20))])
        .await
        .unwrap();
    let got = all(&engine, 1);
    assert_eq!(got.len(), 41);
    assert_eq!(got[..40], entries[..]);
    assert_eq!(got[40].1, data(1, 41, 5 << 20));
}

#[tokio::test]
async fn callbacks_fire_in_order_from_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), WalOptions::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 1..=200u64 {
        let tx = tx.clone();
        engine.append(
            i % 3,
            vec![(i, data(0, i, 10))],
            Box::new(move |r| {
                let name = std::thread::current().name().map(str::to_owned);
                tx.send((i, r.is_ok(), name)).unwrap();
            }),
        );
    }
    drop(tx);
    let mut seen = Vec::new();
    while let Some((i, ok, name)) = rx.recv().await {
        assert!(ok);
        assert_eq!(name.as_deref(), Some("streamd-wal"));
        seen.push(i);
    }
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn dropping_the_last_handle_inside_a_callback_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), WalOptions::default());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let moved = engine.clone();
    engine.append(
        1,
        batch(1, 1..3, 10),
        Box::new(move |r| {
            drop(moved);
            let _ = tx.send(r);
        }),
    );
    drop(engine);
    rx.await.unwrap().unwrap();
    // The writer ends just after the callback; then the directory reopens cleanly.
    let mut attempts = 0;
    let engine = loop {
        match LogEngine::open(dir.path(), WalOptions::default()) {
            Ok(engine) => break engine,
            Err(e) if attempts < 500 => {
                assert!(e.to_string().contains("LOCK"), "{e}");
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(all(&engine, 1), batch(1, 1..3, 10));
}

#[test]
fn a_directory_is_used_by_one_engine_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), WalOptions::default());
    let err = LogEngine::open(dir.path(), WalOptions::default()).unwrap_err();
    assert!(err.to_string().contains("another log engine"), "{err}");
    drop(engine);
    open(dir.path(), WalOptions::default());
}

#[tokio::test]
async fn panicking_callback_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), WalOptions::default());
    engine.append(1, batch(1, 1..2, 1), Box::new(|_| panic!("callback panic")));
    engine.append_durable(1, batch(1, 2..3, 1)).await.unwrap();
}

#[tokio::test]
async fn invalid_appends_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), WalOptions::default());
    let err = engine
        .append_durable(1, vec![(5, data(1, 5, 1)), (5, data(1, 5, 1))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not consecutive"), "{err}");
    let err = engine
        .append_durable(1, vec![(u64::MAX, data(1, 5, 1))])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err}");
    assert!(engine.groups().is_empty());
    assert!(matches!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::InvalidInput
    ));
}

#[tokio::test]
async fn unrelated_files_are_ignored_and_stats_count() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("README"), b"not a segment").unwrap();
    fs::write(dir.path().join("1.wal"), b"not a segment name").unwrap();
    let engine = open(dir.path(), WalOptions::default());
    engine.append_durable(1, batch(1, 1..3, 10)).await.unwrap();
    let s = engine.stats();
    assert!(s.fsyncs >= 1 && s.batches >= 1 && s.requests == 1 && s.bytes_written > 20);
    assert!(format!("{engine:?}").contains("LogEngine"));
    assert_eq!(engine.dir(), dir.path());
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default, Clone, PartialEq, Debug)]
struct Model {
    entries: HashMap<u64, BTreeMap<u64, Bytes>>,
    meta: HashMap<(u64, u8), Bytes>,
}

fn check_against(engine: &LogEngine, model: &Model) {
    let mut groups: Vec<u64> = model
        .entries
        .iter()
        .filter(|(_, e)| !e.is_empty())
        .map(|(g, _)| *g)
        .chain(model.meta.keys().map(|(g, _)| *g))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    assert_eq!(engine.groups(), groups);
    for g in 0..4u64 {
        let want: Vec<(u64, Bytes)> = model
            .entries
            .get(&g)
            .map(|e| e.iter().map(|(i, b)| (*i, b.clone())).collect())
            .unwrap_or_default();
        assert_eq!(all(engine, g), want, "group {g}");
        for k in 0..2u8 {
            assert_eq!(engine.get_meta(g, k), model.meta.get(&(g, k)).cloned());
        }
    }
}

#[tokio::test]
async fn random_operations_match_a_model_across_reopens() {
    for seed in [1u64, 7, 42] {
        let dir = tempfile::tempdir().unwrap();
        let o = WalOptions {
            segment_bytes: 2048,
            sync: false,
        };
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut model = Model::default();
        let mut engine = open(dir.path(), o);
        let mut version = 0usize;
        for step in 0..1500 {
            let g = rng.below(4);
            let e = model.entries.entry(g).or_default();
            match rng.below(100) {
                0..=54 => {
                    let last = e.last_key_value().map(|(i, _)| *i);
                    let first = match last {
                        Some(l) if rng.below(4) == 0 => {
                            let lo = e.first_key_value().map_or(l, |(i, _)| *i);
                            lo + rng.below(l - lo + 1)
                        }
                        Some(l) => l + 1,
                        None => 1 + rng.below(50),
                    };
                    let n = 1 + rng.below(6);
                    version += 1;
                    let b: Vec<_> = (first..first + n)
                        .map(|i| (i, data(g, i, version % 400)))
                        .collect();
                    e.split_off(&first);
                    e.extend(b.iter().cloned());
                    if rng.below(2) == 0 {
                        engine.append(g, b, Box::new(|r| r.unwrap()));
                    } else {
                        engine.append_durable(g, b).await.unwrap();
                    }
                }
                55..=64 => {
                    let from = e
                        .last_key_value()
                        .map_or(1, |(i, _)| *i + 1)
                        .saturating_sub(rng.below(8));
                    e.split_off(&from);
                    engine.truncate_from(g, from).await.unwrap();
                }
                65..=79 => {
                    let upto = e.first_key_value().map_or(1, |(i, _)| *i) + rng.below(8);
                    let kept = e.split_off(&(upto + 1));
                    *e = kept;
                    engine.purge_upto(g, upto).await.unwrap();
                }
                80..=91 => {
                    let k = rng.below(2) as u8;
                    let v = Bytes::from(format!("m{step}"));
                    model.meta.insert((g, k), v.clone());
                    engine.put_meta(g, k, v).await.unwrap();
                }
                92..=94 => {
                    model.entries.remove(&g);
                    model.meta.retain(|(mg, _), _| *mg != g);
                    engine.remove_group(g).await.unwrap();
                }
                _ => {
                    engine.append_durable(0, Vec::new()).await.unwrap();
                    drop(engine);
                    engine = open(dir.path(), o);
                }
            }
            if step % 50 == 0 {
                check_against(&engine, &model);
            }
        }
        check_against(&engine, &model);
        engine.append_durable(0, Vec::new()).await.unwrap();
        drop(engine);
        let engine = open(dir.path(), o);
        check_against(&engine, &model);
        // Dead segments do not pile up.
        let live_bytes: usize = model
            .entries
            .values()
            .flat_map(|e| e.values())
            .map(|b| b.len() + 64)
            .sum();
        let files = segments(dir.path()).len();
        assert!(
            files <= 4 + live_bytes * 8 / 2048,
            "seed {seed}: {files} segments"
        );
    }
}
