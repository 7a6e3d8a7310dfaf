//! The FUSE filesystem: a pass-through to a backing directory that keeps file data in memory
//! until it is fsynced. See the module documentation of [`super`] for the model.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use fuser::ReplyXattr;

use super::overlay::Overlay;

/// Nothing but this filesystem changes the backing directory while it is mounted, so the kernel
/// may cache attributes and entries; a power cut remounts, which drops every cache.
const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;

/// What a power cut dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct Inode {
    /// Relative to the backing directory ("" for the root); `None` once unlinked or replaced.
    path: Option<PathBuf>,
    lookups: u64,
    opens: u64,
    /// The backing file, open while the kernel has it open or while it has unsynced data.
    file: Option<File>,
    overlay: Overlay,
}

#[derive(Debug)]
struct State {
    inodes: HashMap<u64, Inode>,
    paths: HashMap<PathBuf, u64>,
    next_ino: u64,
}

/// What the mounted filesystem and its owner share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Set by a power cut: from then on nothing reaches the backing directory.
    cut: AtomicBool,
    pub(crate) fsyncs: AtomicU64,
}

impl Shared {
    pub(crate) fn new() -> Arc<Shared> {
        let mut inodes = HashMap::new();
        inodes.insert(
            ROOT,
            Inode {
                path: Some(PathBuf::new()),
                lookups: 1,
                ..Inode::default()
            },
        );
        Arc::new(Shared {
            state: Mutex::new(State {
                inodes,
                paths: HashMap::from([(PathBuf::new(), ROOT)]),
                next_ino: ROOT + 1,
            }),
            cut: AtomicBool::new(false),
            fsyncs: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in one request handler leaves maps that are still consistent enough to serve
        // the rest of the run (and the harness reports the panic itself).
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The power cut: every later request that would change the backing directory fails, and
    /// the unsynced data is forgotten. Returns what was forgotten.
    pub(crate) fn cut(&self) -> Dropped {
        self.cut.store(true, Ordering::SeqCst);
        let mut st = self.lock();
        let mut dropped = Dropped::default();
        for inode in st.inodes.values_mut() {
            if !inode.overlay.is_clean() {
                dropped.files += 1;
                dropped.bytes += inode.overlay.dirty_bytes();
            }
            inode.overlay = Overlay::default();
            inode.file = None;
        }
        dropped
    }

    /// Bytes written and not yet fsynced, over all files.
    pub(crate) fn dirty_bytes(&self) -> u64 {
        self.lock()
            .inodes
            .values()
            .map(|i| i.overlay.dirty_bytes())
            .sum()
    }
}

pub(crate) struct LazyFs {
    backing: PathBuf,
    shared: Arc<Shared>,
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

fn to_time(secs: i64, nanos: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr_of(ino: u64, meta: &fs::Metadata, size: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: to_time(meta.atime(), meta.atime_nsec()),
        mtime: to_time(meta.mtime(), meta.mtime_nsec()),
        ctime: to_time(meta.ctime(), meta.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile),
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

impl LazyFs {
    pub(crate) fn new(backing: PathBuf, shared: Arc<Shared>) -> LazyFs {
        LazyFs { backing, shared }
    }

    fn live(&self) -> Result<(), Errno> {
        if self.shared.cut.load(Ordering::SeqCst) {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    fn abs(&self, rel: &Path) -> PathBuf {
        self.backing.join(rel)
    }

    fn path_of(st: &State, ino: u64) -> Result<PathBuf, Errno> {
        st.inodes
            .get(&ino)
            .and_then(|i| i.path.clone())
            .ok_or(Errno::ENOENT)
    }

    fn child(st: &State, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(Self::path_of(st, parent.0)?.join(name))
    }

    fn ino_for(st: &mut State, rel: &Path) -> u64 {
        if let Some(ino) = st.paths.get(rel) {
            return *ino;
        }
        let ino = st.next_ino;
        st.next_ino += 1;
        st.paths.insert(rel.to_path_buf(), ino);
        st.inodes.insert(
            ino,
            Inode {
                path: Some(rel.to_path_buf()),
                ..Inode::default()
            },
        );
        ino
    }

    fn attr(&self, st: &State, ino: u64) -> Result<FileAttr, Errno> {
        let inode = st.inodes.get(&ino).ok_or(Errno::ENOENT)?;
        let meta = match (&inode.file, &inode.path) {
            (Some(f), _) => f.metadata(),
            (None, Some(p)) => fs::symlink_metadata(self.abs(p)),
            (None, None) => return Err(Errno::ENOENT),
        }
        .map_err(errno)?;
        Ok(attr_of(ino, &meta, inode.overlay.size(meta.len())))
    }

    /// A looked-up entry: the kernel now holds one more reference to it.
    fn entry(&self, st: &mut State, rel: &Path) -> Result<FileAttr, Errno> {
        let ino = Self::ino_for(st, rel);
        let attr = self.attr(st, ino)?;
        if let Some(i) = st.inodes.get_mut(&ino) {
            i.lookups += 1;
        }
        Ok(attr)
    }

    /// Forgets an inode nobody refers to and that holds no unsynced data.
    fn maybe_drop(st: &mut State, ino: u64) {
        let Some(i) = st.inodes.get(&ino) else { return };
        if ino == ROOT || i.lookups > 0 || i.opens > 0 || !i.overlay.is_clean() {
            return;
        }
        if let Some(p) = &i.path
            && st.paths.get(p) == Some(&ino)
        {
            st.paths.remove(p);
        }
        st.inodes.remove(&ino);
    }

    /// `rel` no longer names its inode (unlinked, or replaced by a rename). Its unsynced data
    /// goes with the last open handle, as a deleted file's pages do.
    fn detach(st: &mut State, rel: &Path) {
        let Some(ino) = st.paths.remove(rel) else {
            return;
        };
        if let Some(i) = st.inodes.get_mut(&ino) {
            i.path = None;
            if i.opens == 0 {
                i.overlay = Overlay::default();
                i.file = None;
            }
        }
        Self::maybe_drop(st, ino);
    }

    fn ensure_open(&self, st: &mut State, ino: u64) -> Result<(), Errno> {
        let inode = st.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if inode.file.is_some() {
            return Ok(());
        }
        let path = inode.path.clone().ok_or(Errno::ENOENT)?;
        let abs = self.backing.join(path);
        let file = match OpenOptions::new().read(true).write(true).open(&abs) {
            Ok(f) => f,
            Err(_) => File::open(&abs).map_err(errno)?,
        };
        inode.file = Some(file);
        Ok(())
    }

    /// Makes the inode's unsynced data durable: written to the backing file, then fsynced.
    fn persist(&self, st: &mut State, ino: u64, datasync: bool) -> Result<(), Errno> {
        self.live()?;
        let inode = st.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let Some(file) = &inode.file else {
            // Never opened, or nothing unsynced: a clean file is already durable.
            return Ok(());
        };
        let (extents, size) = inode.overlay.take();
        for (offset, bytes) in &extents {
            file.write_all_at(bytes, *offset).map_err(errno)?;
        }
        if let Some(size) = size
            && file.metadata().map_err(errno)?.len() < size
        {
            file.set_len(size).map_err(errno)?;
        }
        if datasync {
            file.sync_data().map_err(errno)?;
        } else {
            file.sync_all().map_err(errno)?;
        }
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn truncate(&self, st: &mut State, ino: u64, len: u64) -> Result<(), Errno> {
        self.live()?;
        let inode = st.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        match &inode.file {
            Some(f) => f.set_len(len).map_err(errno)?,
            None => {
                let p = inode.path.clone().ok_or(Errno::ENOENT)?;
                OpenOptions::new()
                    .write(true)
                    .open(self.abs(&p))
                    .and_then(|f| f.set_len(len))
                    .map_err(errno)?;
            }
        }
        inode.overlay.truncate(len);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<FileAttr, Errno> {
        let mut st = self.shared.lock();
        if mode.is_some() || uid.is_some() || gid.is_some() || atime.is_some() || mtime.is_some() {
            self.live()?;
            let abs = self.abs(&Self::path_of(&st, ino)?);
            if let Some(mode) = mode {
                fs::set_permissions(&abs, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&abs, uid, gid).map_err(errno)?;
            }
            if atime.is_some() || mtime.is_some() {
                let when = |t: TimeOrNow| match t {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                let mut times = fs::FileTimes::new();
                if let Some(t) = atime {
                    times = times.set_accessed(when(t));
                }
                if let Some(t) = mtime {
                    times = times.set_modified(when(t));
                }
                File::open(&abs)
                    .and_then(|f| f.set_times(times))
                    .map_err(errno)?;
            }
        }
        if let Some(len) = size {
            self.truncate(&mut st, ino, len)?;
        }
        self.attr(&st, ino)
    }

    fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        self.live()?;
        let mut st = self.shared.lock();
        let from = Self::child(&st, parent, name)?;
        let to = Self::child(&st, newparent, newname)?;
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return Err(Errno::EINVAL);
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE)
            && fs::symlink_metadata(self.abs(&to)).is_ok()
        {
            return Err(Errno::EEXIST);
        }
        fs::rename(self.abs(&from), self.abs(&to)).map_err(errno)?;
        if from == to {
            return Ok(());
        }
        Self::detach(&mut st, &to);
        let moved: Vec<(PathBuf, u64)> = st
            .paths
            .iter()
            .filter(|(p, _)| p.starts_with(&from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (old, ino) in moved {
            let rest = old.strip_prefix(&from).unwrap_or(Path::new(""));
            let new = if rest.as_os_str().is_empty() {
                to.clone()
            } else {
                to.join(rest)
            };
            st.paths.remove(&old);
            st.paths.insert(new.clone(), ino);
            if let Some(i) = st.inodes.get_mut(&ino) {
                i.path = Some(new);
            }
        }
        Ok(())
    }

    fn do_read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let mut st = self.shared.lock();
        self.ensure_open(&mut st, ino)?;
        let inode = st.inodes.get(&ino).ok_or(Errno::ENOENT)?;
        let file = inode.file.as_ref().ok_or(Errno::EBADF)?;
        let durable = file.metadata().map_err(errno)?.len();
        let len = inode.overlay.size(durable);
        if offset >= len {
            return Ok(Vec::new());
        }
        let n = (len - offset).min(u64::from(size)) as usize;
        let mut buf = vec![0u8; n];
        if offset < durable {
            let m = ((durable - offset) as usize).min(n);
            file.read_exact_at(&mut buf[..m], offset).map_err(errno)?;
        }
        inode.overlay.read_into(offset, &mut buf);
        Ok(buf)
    }

    fn do_write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
        self.live()?;
        let mut st = self.shared.lock();
        self.ensure_open(&mut st, ino)?;
        let inode = st.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let file = inode.file.as_ref().ok_or(Errno::EBADF)?;
        let durable = file.metadata().map_err(errno)?.len();
        inode.overlay.write(offset, data, durable);
        Ok(())
    }

    fn do_create(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Result<(FileAttr, u64), Errno> {
        self.live()?;
        let mut st = self.shared.lock();
        let rel = Self::child(&st, parent, name)?;
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).mode(mode & !umask & 0o7777);
        if flags & libc::O_EXCL != 0 {
            opts.create_new(true);
        } else {
            opts.create(true);
        }
        let file = opts.open(self.abs(&rel)).map_err(errno)?;
        let attr = self.entry(&mut st, &rel)?;
        let ino = attr.ino.0;
        if let Some(i) = st.inodes.get_mut(&ino) {
            i.opens += 1;
            if i.file.is_none() {
                i.file = Some(file);
            }
        }
        if flags & libc::O_TRUNC != 0 {
            self.truncate(&mut st, ino, 0)?;
        }
        Ok((self.attr(&st, ino)?, ino))
    }

    fn do_fallocate(&self, ino: u64, offset: u64, length: u64, mode: i32) -> Result<(), Errno> {
        if mode == libc::FALLOC_FL_KEEP_SIZE {
            // Reserving blocks without changing the size changes nothing a reader can see.
            return Ok(());
        }
        if mode != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        self.live()?;
        let mut st = self.shared.lock();
        self.ensure_open(&mut st, ino)?;
        let inode = st.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let file = inode.file.as_ref().ok_or(Errno::EBADF)?;
        let durable = file.metadata().map_err(errno)?.len();
        let end = offset.saturating_add(length);
        if end > inode.overlay.size(durable) {
            // Growing the size is metadata, durable at once like a truncate.
            file.set_len(end).map_err(errno)?;
            inode.overlay.grow(end);
        }
        Ok(())
    }

    fn do_readdir(&self, ino: u64) -> Result<Vec<(u64, FileType, std::ffi::OsString)>, Errno> {
        let mut st = self.shared.lock();
        let rel = Self::path_of(&st, ino)?;
        let parent = match rel.parent() {
            Some(p) => Self::ino_for(&mut st, p),
            None => ROOT,
        };
        let mut out = vec![
            (ino, FileType::Directory, ".".into()),
            (parent, FileType::Directory, "..".into()),
        ];
        let mut children = Vec::new();
        for entry in fs::read_dir(self.abs(&rel)).map_err(errno)? {
            let entry = entry.map_err(errno)?;
            let kind = entry
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            children.push((entry.file_name(), kind));
        }
        // The kernel resumes a listing by offset: the order must not change between calls.
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind) in children {
            let child = Self::ino_for(&mut st, &rel.join(&name));
            out.push((child, kind, name));
        }
        Ok(out)
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.shared.lock();
        let result = Self::child(&st, parent, name).and_then(|rel| {
            fs::symlink_metadata(self.abs(&rel)).map_err(errno)?;
            self.entry(&mut st, &rel)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut st = self.shared.lock();
        if let Some(i) = st.inodes.get_mut(&ino.0) {
            i.lookups = i.lookups.saturating_sub(nlookup);
        }
        Self::maybe_drop(&mut st, ino.0);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.shared.lock();
        match self.attr(&st, ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        match self.do_setattr(ino.0, mode, uid, gid, size, atime, mtime) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.live().and_then(|()| {
            let mut st = self.shared.lock();
            let rel = Self::child(&st, parent, name)?;
            fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(self.abs(&rel))
                .map_err(errno)?;
            self.entry(&mut st, &rel)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.live().and_then(|()| {
            let mut st = self.shared.lock();
            let rel = Self::child(&st, parent, name)?;
            fs::remove_file(self.abs(&rel)).map_err(errno)?;
            Self::detach(&mut st, &rel);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.live().and_then(|()| {
            let mut st = self.shared.lock();
            let rel = Self::child(&st, parent, name)?;
            fs::remove_dir(self.abs(&rel)).map_err(errno)?;
            Self::detach(&mut st, &rel);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.do_rename(parent, name, newparent, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.shared.lock();
        match self.ensure_open(&mut st, ino.0) {
            Ok(()) => {
                if let Some(i) = st.inodes.get_mut(&ino.0) {
                    i.opens += 1;
                }
                reply.opened(FileHandle(ino.0), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.do_read(ino.0, offset, size) {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.do_write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    /// `close` makes nothing durable, as on a real filesystem: only fsync does.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.shared.lock();
        if let Some(i) = st.inodes.get_mut(&ino.0) {
            i.opens = i.opens.saturating_sub(1);
            if i.opens == 0 {
                if i.path.is_none() {
                    i.overlay = Overlay::default();
                }
                // Unsynced data keeps the backing file open, so a later fsync through another
                // open of the same file still reaches it.
                if i.overlay.is_clean() {
                    i.file = None;
                }
            }
        }
        Self::maybe_drop(&mut st, ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.shared.lock();
        match self.persist(&mut st, ino.0, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.do_readdir(ino.0) {
            Ok(entries) => {
                for (i, (child, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    /// Directory entries are durable as soon as they are made (see the module documentation),
    /// so there is nothing left to sync.
    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.live() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// No file here has extended attributes. The kernel asks for `security.capability` on every
    /// write, so the answer is the plain "none" rather than fuser's logged "not implemented".
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.size(0);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 28, 1 << 27, 1 << 27, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.do_create(parent, name, mode, umask, flags) {
            Ok((attr, ino)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(ino),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        match self.do_fallocate(ino.0, offset, length, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
