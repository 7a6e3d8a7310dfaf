//! `streamd-planted`: a test-only build of the streamd node with one deliberate bug, for showing
//! that the jepsen checker catches a real server bug (jepsen/README.md, "A planted server bug").
//! It is not a product binary: nothing ships or documents it as a way to run streamd.
//!
//! The bug: the write-ahead log never calls `fdatasync` (`WalOptions { sync: false }`), so a
//! record is acknowledged once it is in the OS's (here: the FUSE layer's) memory, not on disk.
//! A `power-cut` of every node at once then loses acknowledged records. No flag or config key of
//! the real `streamd` can do this: `Build` is only reachable from code.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let wal = streamd_storage::WalOptions {
        sync: false,
        ..streamd_storage::WalOptions::default()
    };
    streamd::main(streamd::Build { wal }).await
}
