//! Group-commit throughput of the log engine.
//!
//! `cargo run --release -p streamd-storage --example wal_bench -- [groups] [appends] [entry_bytes] [dir]`
//!
//! Each of `groups` tasks appends `appends` single-entry batches of `entry_bytes` bytes to
//! its own group, awaiting durability before the next one (as a Raft leader does per
//! group). Defaults: 64 groups, 500 appends, 1 KiB entries, a temporary directory.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use streamd_storage::{LogEngine, WalOptions};

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let groups: u64 = arg(1, 64);
    let appends: u64 = arg(2, 500);
    let entry_bytes: usize = arg(3, 1024);
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(4)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("wal"));

    let engine = LogEngine::open(&dir, WalOptions::default())?;
    let payload = Bytes::from(vec![0xa5u8; entry_bytes]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for g in 0..groups {
        let engine = engine.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            for i in 1..=appends {
                engine.append_durable(g, vec![(i, payload.clone())]).await?;
            }
            Ok::<_, streamd_storage::StorageError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = engine.stats();
    let total = groups * appends;
    println!(
        "{groups} groups x {appends} appends of {entry_bytes} B in {secs:.2} s ({})",
        dir.display()
    );
    println!("appends/s:        {:.0}", total as f64 / secs);
    println!(
        "MB/s:             {:.1} (payload), {:.1} (written)",
        (total as usize * entry_bytes) as f64 / secs / 1e6,
        stats.bytes_written as f64 / secs / 1e6
    );
    println!(
        "fsyncs/s:         {:.0} ({} fsyncs, last {} us)",
        stats.fsyncs as f64 / secs,
        stats.fsyncs,
        stats.last_fsync_micros
    );
    println!(
        "mean batch size:  {:.1} requests ({} batches)",
        stats.requests as f64 / stats.batches.max(1) as f64,
        stats.batches
    );
    Ok(())
}
