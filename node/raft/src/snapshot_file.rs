//! A group's snapshot as a file on disk: what a snapshot holds never has to fit in memory, is
//! sent to a follower in chunks, and survives a restart in the middle of its installation.
//!
//! Layout (all integers little endian):
//!
//! ```text
//! "SDSNAP01" | pairs: (klen u32 | key | vlen u32 | value)* | u32::MAX | count u64 | crc32 u32
//! ```
//!
//! The CRC32 covers every byte before it. A file is written under a temporary name, fsynced,
//! then renamed into place, so a name in the directory always holds a whole snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"SDSNAP01";
const END: u32 = u32::MAX;

/// A finished snapshot file, open for reading. openraft's snapshot data for every group.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl SnapshotFile {
    /// Opens a finished snapshot file (its contents are checked by [`SnapshotFile::verify`]).
    pub(crate) fn open(path: &Path) -> io::Result<SnapshotFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// A second handle on the same contents, readable independently; it stays readable after
    /// the name is removed or replaced.
    pub(crate) fn reopen(&self) -> io::Result<SnapshotFile> {
        Ok(SnapshotFile {
            path: self.path.clone(),
            file: self.file.try_clone()?,
            len: self.len,
        })
    }

    /// Reads the whole file and checks its framing and checksum; returns the number of pairs.
    pub(crate) fn verify(&self) -> io::Result<u64> {
        let mut pairs = self.pairs()?;
        let mut n = 0u64;
        while pairs.next_pair()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Reads the pairs in order. The checksum is checked when the end is reached: callers that
    /// must not act on a damaged file call [`SnapshotFile::verify`] first.
    pub(crate) fn pairs(&self) -> io::Result<PairReader> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        let mut r = PairReader {
            input: BufReader::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            count: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(invalid("not a streamd snapshot file"));
        }
        Ok(r)
    }

    /// The raw bytes from `offset`, at most `max` of them (for sending in chunks).
    pub(crate) fn read_chunk(&self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let n = max.min(self.len.saturating_sub(offset) as usize);
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Sequential reader of a snapshot's pairs.
pub(crate) struct PairReader {
    input: BufReader<File>,
    crc: crc32fast::Hasher,
    count: u64,
    done: bool,
}

impl PairReader {
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid("snapshot file cut short")
            } else {
                e
            }
        })?;
        self.crc.update(buf);
        Ok(())
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn bytes(&mut self, n: u32) -> io::Result<Vec<u8>> {
        // Bounded by what the file can still hold, so a damaged length cannot allocate wildly.
        let mut v = Vec::new();
        (&mut self.input).take(u64::from(n)).read_to_end(&mut v)?;
        if v.len() != n as usize {
            return Err(invalid("snapshot file cut short"));
        }
        self.crc.update(&v);
        Ok(v)
    }

    /// The next (key, value), or `None` after the last one once the trailer checked out.
    pub(crate) fn next_pair(&mut self) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let klen = self.u32()?;
        if klen == END {
            let mut tail = [0u8; 12];
            self.input.read_exact(&mut tail).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    invalid("snapshot file cut short")
                } else {
                    e
                }
            })?;
            let (count, crc) = tail.split_at(8);
            let mut count_bytes = [0u8; 8];
            count_bytes.copy_from_slice(count);
            let mut crc_bytes = [0u8; 4];
            crc_bytes.copy_from_slice(crc);
            // The checksum covers everything before it, the count included.
            let mut h = self.crc.clone();
            h.update(count);
            if u32::from_le_bytes(crc_bytes) != h.finalize() {
                return Err(invalid("snapshot checksum mismatch"));
            }
            if u64::from_le_bytes(count_bytes) != self.count {
                return Err(invalid("snapshot pair count does not match"));
            }
            let mut rest = [0u8; 1];
            if self.input.read(&mut rest)? != 0 {
                return Err(invalid("bytes after the snapshot trailer"));
            }
            self.done = true;
            return Ok(None);
        }
        let key = self.bytes(klen)?;
        let vlen = self.u32()?;
        let value = self.bytes(vlen)?;
        self.count += 1;
        Ok(Some((key, value)))
    }
}

/// Writes a snapshot file under a temporary name; [`SnapshotWriter::finish`] makes it durable
/// and renames it into place.
pub(crate) struct SnapshotWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    crc: crc32fast::Hasher,
    count: u64,
}

impl SnapshotWriter {
    pub(crate) fn create(path: &Path) -> io::Result<SnapshotWriter> {
        let tmp = path.with_extension("tmp");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut w = SnapshotWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            tmp,
            path: path.to_path_buf(),
            crc: crc32fast::Hasher::new(),
            count: 0,
        };
        w.write(&MAGIC)?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc.update(b);
        self.out.write_all(b)
    }

    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let len = |b: &[u8]| {
            u32::try_from(b.len())
                .ok()
                .filter(|n| *n != END)
                .ok_or_else(|| invalid("snapshot key or value too large"))
        };
        let (k, v) = (len(key)?, len(value)?);
        self.write(&k.to_le_bytes())?;
        self.write(key)?;
        self.write(&v.to_le_bytes())?;
        self.write(value)?;
        self.count += 1;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> io::Result<SnapshotFile> {
        self.write(&END.to_le_bytes())?;
        let count = self.count.to_le_bytes();
        self.write(&count)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        sync_dir(&self.path)?;
        SnapshotFile::open(&self.path)
    }
}

/// Receives a snapshot's raw bytes in chunks (from a leader) into a temporary file.
pub(crate) struct SnapshotReceiver {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
}

impl SnapshotReceiver {
    pub(crate) fn create(path: &Path) -> io::Result<SnapshotReceiver> {
        let tmp = path.with_extension("tmp");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        Ok(SnapshotReceiver {
            file,
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk)
    }

    /// Makes the received bytes durable under the final name and checks them.
    pub(crate) fn finish(self) -> io::Result<SnapshotFile> {
        self.file.sync_all()?;
        fs::rename(&self.tmp, &self.path)?;
        sync_dir(&self.path)?;
        let f = SnapshotFile::open(&self.path)?;
        if let Err(e) = f.verify() {
            let _ = fs::remove_file(&self.path);
            return Err(e);
        }
        Ok(f)
    }
}

impl Drop for SnapshotReceiver {
    fn drop(&mut self) {
        // Unfinished (the stream broke): nothing else refers to the temporary file.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// fsyncs the directory holding `path`, making a rename or removal in it durable.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, pairs: &[(&[u8], &[u8])]) -> SnapshotFile {
        let mut w = SnapshotWriter::create(&dir.join("s.snap")).unwrap();
        for (k, v) in pairs {
            w.push(k, v).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(f: &SnapshotFile) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut r = f.pairs()?;
        let mut out = Vec::new();
        while let Some(p) = r.next_pair()? {
            out.push(p);
        }
        Ok(out)
    }

    #[test]
    fn pairs_round_trip_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; 3 << 20];
        let f = write(
            dir.path(),
            &[(b"a", b"1"), (b"", b""), (b"big", &big), (b"z", b"26")],
        );
        assert_eq!(f.verify().unwrap(), 4);
        let got = read_all(&f).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[2].1.len(), 3 << 20);
        assert!(!dir.path().join("s.tmp").exists());
    }

    #[test]
    fn an_empty_snapshot_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), &[]);
        assert_eq!(f.verify().unwrap(), 0);
    }

    #[test]
    fn damage_anywhere_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), &[(b"key", b"value"), (b"k2", b"v2")]);
        let bytes = fs::read(f.path()).unwrap();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x04;
            let p = dir.path().join("d.snap");
            fs::write(&p, &damaged).unwrap();
            assert!(
                SnapshotFile::open(&p).unwrap().verify().is_err(),
                "flip at byte {at} went unnoticed"
            );
        }
        for cut in 0..bytes.len() {
            let p = dir.path().join("c.snap");
            fs::write(&p, &bytes[..cut]).unwrap();
            assert!(
                SnapshotFile::open(&p).unwrap().verify().is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn chunks_reassemble_into_the_same_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let value = vec![3u8; 10_000];
        let f = write(dir.path(), &[(b"a", &value), (b"b", &value)]);
        let mut rx = SnapshotReceiver::create(&dir.path().join("r.snap")).unwrap();
        let mut offset = 0;
        while offset < f.len() {
            let chunk = f.read_chunk(offset, 777).unwrap();
            offset += chunk.len() as u64;
            rx.write(&chunk).unwrap();
        }
        let g = rx.finish().unwrap();
        assert_eq!(read_all(&g).unwrap(), read_all(&f).unwrap());
    }

    #[test]
    fn an_unfinished_receipt_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut rx = SnapshotReceiver::create(&dir.path().join("r.snap")).unwrap();
        rx.write(b"SDSNAP01partial").unwrap();
        drop(rx);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
