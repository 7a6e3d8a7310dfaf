//! Node log files: each node's stdout and stderr are appended to `<dir>/node-<i>.log`, so a
//! restarted node keeps its history; on failure the tail of each is printed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read from the end of a log to find its last lines.
const TAIL_WINDOW_BYTES: u64 = 256 * 1024;

/// The last `lines` lines of the file at `path`.
pub fn tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_WINDOW_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    // A window that starts mid-file starts mid-line: drop that partial line.
    let skip_partial = usize::from(start > 0 && !all.is_empty());
    let from = all.len().saturating_sub(lines).max(skip_partial);
    Ok(all[from..].join("\n"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.log");
        let mut f = File::create(&path).unwrap();
        for i in 0..10 {
            writeln!(f, "line {i}").unwrap();
        }
        assert_eq!(tail(&path, 3).unwrap(), "line 7\nline 8\nline 9");
        assert_eq!(tail(&path, 100).unwrap().lines().count(), 10);
        assert!(tail(&dir.path().join("missing"), 3).is_err());
    }
}
