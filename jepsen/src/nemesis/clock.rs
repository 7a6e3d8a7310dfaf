//! `clock`: one node's wall clock jumps ahead or behind by seconds to minutes, and back when the
//! fault ends. Done with libfaketime: when the nemesis is enabled every node starts with
//! `LD_PRELOAD` of it and its own `FAKETIME_TIMESTAMP_FILE` holding `+0`; the fault writes an
//! offset there (`+120`, `-45`) and the node's `clock_gettime(CLOCK_REALTIME)` and friends follow
//! within the cache period. A fault that did not take is an error, never silently nothing: start
//! and heal check that libfaketime is mapped into the node's process, and a jump forward is
//! awaited until the node's HTTP `Date` header (admin port) is no earlier than the new time. The
//! header cannot show more: hyper caches its value until the wall clock passes the cached
//! second's end, so after a jump back of N seconds it stands still for N seconds (it never goes
//! back). The node's own clock does follow (libfaketime rereads the file every [`CACHE_S`]
//! second), as the expired iterators in a run show.
//!
//! The monotonic clock is left alone (`FAKETIME_DONT_FAKE_MONOTONIC=1`): streamd's timers, Raft
//! election and heartbeat timeouts and tokio all run on it, and a skewed wall clock is the fault
//! real machines have (NTP steps), while a monotonic clock that jumps is not something a kernel
//! does. Faking it would also make a jump back stall every timer of the node.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Fault, Target};

/// Offsets drawn, in seconds either way. Past 300 s an iterator minted by one node is expired on
/// a node whose clock is that far ahead (streamd's iterators live 5 minutes).
pub const OFFSET_S: std::ops::RangeInclusive<i64> = 5..=400;
/// How often libfaketime rereads the timestamp file (seconds).
const CACHE_S: &str = "1";
/// How long the node may take to show a new offset: the cache period plus a margin.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How far the node's `Date` may be behind the expected time (it has a one-second resolution,
/// and the request takes time).
const TOLERANCE_S: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "node {node} did not show a clock offset of {offset_s:+}s within {APPLY_TIMEOUT:?} ({last})"
    )]
    NotApplied {
        node: u64,
        offset_s: i64,
        last: String,
    },
    #[error("node {node} has no clock file")]
    NoNode { node: u64 },
    #[error("libfaketime is not loaded in node {node} (pid {pid}): {why}")]
    NotPreloaded { node: u64, pid: u32, why: String },
}

/// Where libfaketime is, if installed: `$STREAMD_JEPSEN_LIBFAKETIME`, else Debian's multiarch
/// directories. The thread-safe variant, since streamd is multi-threaded.
pub fn find_libfaketime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STREAMD_JEPSEN_LIBFAKETIME") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime"))
        .collect();
    dirs.sort();
    dirs.extend(["/usr/lib/faketime", "/usr/local/lib/faketime"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("libfaketimeMT.so.1"))
        .find(|p| p.is_file())
}

/// The nodes' faked clocks: the library and one timestamp file per node.
#[derive(Debug, Clone)]
pub struct Clocks {
    lib: PathBuf,
    dir: PathBuf,
    admins: Vec<(u64, SocketAddr)>,
    /// The offset last written for each node, to tell a jump forward from one back.
    offsets: Arc<Mutex<BTreeMap<u64, i64>>>,
}

impl Clocks {
    /// Writes `+0` for every node; nothing is faked until [`Clocks::set`].
    pub fn new(
        lib: PathBuf,
        dir: &Path,
        admins: Vec<(u64, SocketAddr)>,
    ) -> Result<Clocks, ClockError> {
        let clocks = Clocks {
            lib,
            dir: dir.to_path_buf(),
            admins,
            offsets: Arc::default(),
        };
        for &(id, _) in &clocks.admins {
            clocks.write(id, 0)?;
        }
        Ok(clocks)
    }

    fn file(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.faketime"))
    }

    /// The environment node `id` starts with.
    pub fn env(&self, id: u64) -> Vec<(String, String)> {
        [
            ("LD_PRELOAD", self.lib.display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                self.file(id).display().to_string(),
            ),
            ("FAKETIME_CACHE_DURATION", CACHE_S.to_string()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec()
    }

    /// Replaces the file whole (rename), so libfaketime never reads half an offset.
    /// Returns the offset the node had before.
    fn write(&self, id: u64, offset_s: i64) -> Result<i64, ClockError> {
        let path = self.file(id);
        let tmp = path.with_extension("faketime.tmp");
        let result = std::fs::File::create(&tmp)
            .and_then(|mut f| writeln!(f, "{}", offset_spec(offset_s)))
            .and_then(|()| std::fs::rename(&tmp, &path));
        result.map_err(|source| ClockError::Write { path, source })?;
        let previous = match self.offsets.lock() {
            Ok(mut o) => o.insert(id, offset_s),
            Err(poisoned) => poisoned.into_inner().insert(id, offset_s),
        };
        Ok(previous.unwrap_or(0))
    }

    /// Fails unless the process `pid` has the library mapped (a static binary, or an
    /// `LD_PRELOAD` that the loader refused, would ignore the clock files).
    fn check_preloaded(&self, id: u64, pid: u32) -> Result<(), ClockError> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| {
            ClockError::NotPreloaded {
                node: id,
                pid,
                why: e.to_string(),
            }
        })?;
        let name = self
            .lib
            .file_name()
            .map(|n| n.to_string_lossy().to_string());
        match name {
            Some(n) if maps.contains(&n) => Ok(()),
            _ => Err(ClockError::NotPreloaded {
                node: id,
                pid,
                why: format!("{} is not in its memory map", self.lib.display()),
            }),
        }
    }

    /// Sets node `id`'s wall clock `offset_s` seconds from the real one. With the node's `pid`
    /// (it runs), checks the library is loaded and, for a jump forward, returns once the node's
    /// `Date` is no earlier than the new time.
    pub async fn set(&self, id: u64, offset_s: i64, pid: Option<u32>) -> Result<(), ClockError> {
        let admin = self
            .admins
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, a)| *a)
            .ok_or(ClockError::NoNode { node: id })?;
        let previous = self.write(id, offset_s)?;
        let Some(pid) = pid else {
            return Ok(());
        };
        self.check_preloaded(id, pid)?;
        if offset_s <= previous {
            return Ok(());
        }
        let end = Instant::now() + APPLY_TIMEOUT;
        loop {
            let last = match node_offset(admin).await {
                Ok(seen) if seen >= offset_s - TOLERANCE_S => return Ok(()),
                Ok(seen) => format!("it shows {seen:+}s"),
                Err(e) => e,
            };
            if Instant::now() >= end {
                return Err(ClockError::NotApplied {
                    node: id,
                    offset_s,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Puts every clock back (without waiting: a node may be down).
    pub fn reset_all(&self) -> Result<(), ClockError> {
        let mut first = None;
        for &(id, _) in &self.admins {
            if let Err(e) = self.write(id, 0).map(drop) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// libfaketime's relative offset syntax: a sign, then seconds.
pub fn offset_spec(offset_s: i64) -> String {
    format!("{offset_s:+}")
}

/// How far the node's wall clock is from ours, from its HTTP `Date` header, in seconds.
async fn node_offset(admin: SocketAddr) -> Result<i64, String> {
    let ask = async {
        let mut s = TcpStream::connect(admin).await.map_err(|e| e.to_string())?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: jepsen\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        // The headers are all that is needed; a node's answer is small, but cap it anyway.
        let mut limited = (&mut s).take(16 * 1024);
        limited
            .read_to_end(&mut head)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<Vec<u8>, String>(head)
    };
    let ours = SystemTime::now();
    let head = tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .map_err(|_| "no answer in time".to_string())??;
    let theirs = date_header(&String::from_utf8_lossy(&head))
        .ok_or_else(|| "no Date header in the answer".to_string())?;
    Ok(seconds(theirs) - seconds(ours))
}

fn seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The `Date` header of an HTTP answer, parsed.
pub fn date_header(answer: &str) -> Option<SystemTime> {
    answer
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("date"))
        .and_then(|(_, v)| httpdate::parse_http_date(v.trim()).ok())
}

/// A `clock` fault: a random node, an offset of [`OFFSET_S`] seconds either way.
pub(crate) fn draw(rng: &mut impl Rng, nodes: u64) -> Fault {
    let node = rng.random_range(1..=nodes);
    let magnitude = rng.random_range(OFFSET_S);
    let offset_s = if rng.random_bool(0.5) {
        magnitude
    } else {
        -magnitude
    };
    Fault::Clock { node, offset_s }
}

pub(crate) async fn start(target: &Target, node: u64, offset_s: i64) -> Result<(), String> {
    let clocks = target
        .clocks
        .as_ref()
        .ok_or("the nodes were started without libfaketime")?;
    let pid = target
        .with_cluster(|c| c.pid(node))
        .ok_or_else(|| format!("node {node} is not running"))?;
    clocks
        .set(node, offset_s, Some(pid))
        .await
        .map_err(|e| e.to_string())
}

pub(crate) async fn heal(target: &Target, node: u64) -> Result<(), String> {
    let clocks = target
        .clocks
        .as_ref()
        .ok_or("the nodes were started without libfaketime")?;
    // A node that is down now (faults do not overlap, but it may have crashed) shows nothing;
    // its file is reset all the same, so it restarts with the real time.
    let pid = target.with_cluster(|c| c.pid(node));
    clocks.set(node, 0, pid).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn offsets_use_libfaketimes_relative_syntax() {
        assert_eq!(offset_spec(120), "+120");
        assert_eq!(offset_spec(-45), "-45");
        assert_eq!(offset_spec(0), "+0");
    }

    #[test]
    fn the_date_header_is_found_whatever_its_case() {
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: Thu, 26 Nov 2026 05:20:11 GMT\r\n\r\nok";
        let t = date_header(answer).unwrap();
        assert_eq!(seconds(t), 1_795_670_411);
        assert!(date_header("HTTP/1.1 200 OK\r\n\r\ndate: x").is_none());
        assert!(date_header("HTTP/1.1 200 OK\r\nDate: yesterday\r\n\r\n").is_none());
    }

    #[test]
    fn drawn_offsets_are_nonzero_both_ways_and_on_a_node() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut signs = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let Fault::Clock { node, offset_s } = draw(&mut rng, 5) else {
                panic!("not a clock fault");
            };
            assert!((1..=5).contains(&node));
            assert!(OFFSET_S.contains(&offset_s.abs()));
            signs.insert(offset_s.signum());
        }
        assert_eq!(signs.len(), 2);
    }

    #[test]
    fn clock_files_start_at_zero_and_nodes_get_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let admin = SocketAddr::from(([127, 0, 0, 1], 1));
        let c = Clocks::new("/lib/f.so".into(), dir.path(), vec![(1, admin), (2, admin)]).unwrap();
        let text = std::fs::read_to_string(dir.path().join("node-2.faketime")).unwrap();
        assert_eq!(text.trim(), "+0");
        let env = c.env(2);
        assert!(env.contains(&("LD_PRELOAD".into(), "/lib/f.so".into())));
        assert!(env.contains(&("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into())));
        c.write(2, -30).unwrap();
        let text = std::fs::read_to_string(dir.path().join("node-2.faketime")).unwrap();
        assert_eq!(text.trim(), "-30");
    }
}
