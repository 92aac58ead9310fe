//! The `fuser::Filesystem` implementation: each handler locks the volume, does one fs-core
//! operation through `State`, and answers with an attribute, data or an errno.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use fs_core::{FileAttributes, FileKind, SetTimes};
use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, IoctlFlags,
    KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::attr::{file_type, to_nt_time};
use super::errno::OrErrno;
use super::overlay;
use super::state::{lock, name, Shared, State};
use super::table::DirItem;

/// How long the kernel may trust attributes and names. Short, because overlay control and
/// other processes' changes all go through us and we cannot always invalidate.
const TTL: Duration = Duration::from_secs(1);

/// The largest write the kernel sends at once (it caps this at its max_pages).
pub(super) const MAX_WRITE: u32 = 1 << 20;

/// fallocate modes we honour: 0 (allocate and extend) and FALLOC_FL_KEEP_SIZE.
const FALLOC_KEEP_SIZE: i32 = 1;

pub struct CowfatFs {
    pub shared: Shared,
    pub writeback_cache: bool,
    /// Set once the session exists; overlay control invalidates cached pages through it.
    pub notifier: std::sync::Arc<OnceLock<Notifier>>,
    /// getxattr, listxattr, setxattr and removexattr requests seen (each answered ENOSYS, so
    /// the kernel should send at most one of each); tests read them through an ioctl.
    pub xattr_requests: [AtomicU64; 4],
}

fn generation(st: &State, ino: u64) -> Generation {
    Generation(u64::from(st.id(ino).sequence()))
}

impl CowfatFs {
    pub fn new(
        shared: Shared,
        writeback_cache: bool,
        notifier: std::sync::Arc<OnceLock<Notifier>>,
    ) -> Self {
        CowfatFs {
            shared,
            writeback_cache,
            notifier,
            xattr_requests: Default::default(),
        }
    }

    /// cowfat stores no extended attributes. ENOSYS (not ENODATA) tells the kernel so for the
    /// mount's life: it answers later calls itself (EOPNOTSUPP, or "no ACL") without a round
    /// trip, where ENODATA would cost one per file and name, uncached (`ls -l` asks two).
    fn no_xattrs(&self, which: usize) -> Errno {
        self.xattr_requests[which].fetch_add(1, Ordering::Relaxed);
        Errno::ENOSYS
    }

    /// How the kernel is to treat an opened file. Without the writeback cache every write has
    /// reached the volume before it returns and `flush` (below) does nothing, so the kernel is
    /// told not to send one at each close (`FOPEN_NOFLUSH`): one round trip fewer per file.
    /// With the writeback cache the kernel's flush also writes the file's dirty pages back
    /// first (close then reports a failed write), so it stays.
    fn file_open_flags(&self) -> FopenFlags {
        if self.writeback_cache {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_NOFLUSH
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, Errno>) -> Result<T, Errno> {
        f(&mut lock(&self.shared))
    }

    fn entry(&self, reply: ReplyEntry, f: impl FnOnce(&mut State) -> Result<u64, Errno>) {
        let done = self.with(|st| {
            let ino = f(st)?;
            Ok((st.attr(ino)?, generation(st, ino)))
        });
        match done {
            Ok((attr, gen)) => reply.entry(&TTL, &attr, gen),
            Err(e) => reply.error(e),
        }
    }

    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut State) -> Result<(), Errno>) {
        match self.with(f) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create_node(
        &self,
        st: &mut State,
        parent: u64,
        n: &OsStr,
        kind: FileKind,
    ) -> Result<u64, Errno> {
        let name = name(n)?;
        let dir = st.id(parent);
        let id = st
            .vol()?
            .create(dir, &name, kind, FileAttributes::empty())
            .or_errno()?;
        st.dirty = true;
        Ok(st.ino(id))
    }
}

fn set_times(
    st: &mut State,
    ino: u64,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
    ctime: Option<SystemTime>,
) -> Result<(), Errno> {
    let resolve = |t: TimeOrNow| match t {
        TimeOrNow::SpecificTime(s) => to_nt_time(s),
        TimeOrNow::Now => to_nt_time(SystemTime::now()),
    };
    let times = SetTimes {
        last_access: atime.map(resolve),
        last_write: mtime.map(resolve),
        change: ctime.map(to_nt_time),
        creation: None,
    };
    if times.last_access.is_none() && times.last_write.is_none() && times.change.is_none() {
        return Ok(());
    }
    let id = st.id(ino);
    st.vol()?.set_times(id, times).or_errno()?;
    st.dirty = true;
    Ok(())
}

/// chmod: only the write bits mean something (the READONLY attribute).
fn set_mode(st: &mut State, ino: u64, mode: u32) -> Result<(), Errno> {
    let info = st.info(ino)?;
    let mut attrs = info.attributes & FileAttributes::SETTABLE;
    attrs.set(FileAttributes::READONLY, mode & 0o222 == 0);
    if attrs != info.attributes & FileAttributes::SETTABLE {
        st.vol()?.set_attributes(info.id, attrs).or_errno()?;
        st.dirty = true;
    }
    Ok(())
}

/// chown: cowfat keeps no owners; only "no change" is accepted.
fn check_owner(st: &State, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    let same = uid.is_none_or(|u| u == st.owner.uid) && gid.is_none_or(|g| g == st.owner.gid);
    if same {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

fn dir_items(st: &mut State, ino: u64) -> Result<Vec<DirItem>, Errno> {
    let dir = st.id(ino);
    let entries = st.vol()?.list(dir).or_errno()?;
    Ok(entries
        .into_iter()
        .map(|e| DirItem {
            name: e.name.to_string_lossy(),
            ino: st.ino(e.info.id),
            info: e.info,
        })
        .collect())
}

/// Removes a name; a file still open stays as an orphan until its last release.
fn remove(st: &mut State, parent: u64, n: &OsStr, want_dir: bool) -> Result<(), Errno> {
    let name = name(n)?;
    let dir = st.id(parent);
    let id = st.lookup(parent, &name)?;
    let is_dir = st.vol()?.info(id).or_errno()?.kind == FileKind::Directory;
    match (want_dir, is_dir) {
        (true, false) => return Err(Errno::ENOTDIR),
        (false, true) => return Err(Errno::EISDIR),
        _ => {}
    }
    let ino = st.ino(id);
    st.dirty = true;
    if st.table.is_open(ino) {
        st.vol()?.unlink(dir, &name).or_errno()?;
        st.table.mark_orphan(ino);
        Ok(())
    } else {
        st.vol()?.delete(dir, &name).or_errno()
    }
}

fn rename(
    st: &mut State,
    from: (u64, &OsStr),
    to: (u64, &OsStr),
    flags: RenameFlags,
) -> Result<(), Errno> {
    if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
        return Err(Errno::EINVAL);
    }
    let replace = !flags.contains(RenameFlags::RENAME_NOREPLACE);
    let (src_dir, src_name) = (st.id(from.0), name(from.1)?);
    let (dst_dir, dst_name) = (st.id(to.0), name(to.1)?);
    // fs-core frees a replaced target at once; an open target must live on as an orphan.
    if replace {
        if let Ok(target) = st.lookup(to.0, &dst_name) {
            let src = st.lookup(from.0, &src_name)?;
            let ino = st.ino(target);
            if target != src && st.table.is_open(ino) {
                check_replace_kinds(st, src, target)?;
                st.vol()?.unlink(dst_dir, &dst_name).or_errno()?;
                st.table.mark_orphan(ino);
            }
        }
    }
    st.dirty = true;
    st.vol()?
        .rename(src_dir, &src_name, dst_dir, &dst_name, replace)
        .or_errno()
}

fn check_replace_kinds(
    st: &mut State,
    src: fs_core::FileId,
    target: fs_core::FileId,
) -> Result<(), Errno> {
    let vol = st.vol()?;
    let s = vol.info(src).or_errno()?.kind;
    let t = vol.info(target).or_errno()?.kind;
    match (s, t) {
        (FileKind::File, FileKind::Directory) => Err(Errno::EISDIR),
        (FileKind::Directory, FileKind::File) => Err(Errno::ENOTDIR),
        _ => Ok(()),
    }
}

fn fallocate(st: &mut State, ino: u64, offset: u64, length: u64, mode: i32) -> Result<(), Errno> {
    if mode & !FALLOC_KEEP_SIZE != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
    let info = st.info(ino)?;
    if info.kind != FileKind::File {
        return Err(Errno::EISDIR);
    }
    st.dirty = true;
    if end > info.allocation_size {
        st.vol()?.set_allocation_size(info.id, end).or_errno()?;
    }
    if mode & FALLOC_KEEP_SIZE == 0 && end > info.file_size {
        st.vol()?.set_file_size(info.id, end).or_errno()?;
    }
    Ok(())
}

impl Filesystem for CowfatFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Both are best effort: an old kernel gives a smaller maximum or no capability.
        let _ = config.set_max_write(MAX_WRITE);
        let mut wanted = InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO;
        if self.writeback_cache {
            wanted |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        if let Err(missing) = config.add_capabilities(wanted) {
            super::note(format_args!(
                "the kernel lacks FUSE capabilities {missing:?}"
            ));
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |st| {
            let id = st.lookup(parent.0, &name(n).map_err(|_| Errno::ENOENT)?)?;
            Ok(st.ino(id))
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|st| st.attr(ino.0)) {
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
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let done = self.with(|st| {
            check_owner(st, uid, gid)?;
            if let Some(size) = size {
                let id = st.id(ino.0);
                st.vol()?.set_file_size(id, size).or_errno()?;
                st.dirty = true;
            }
            if let Some(mode) = mode {
                set_mode(st, ino.0, mode)?;
            }
            set_times(st, ino.0, atime, mtime, ctime)?;
            st.attr(ino.0)
        });
        match done {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        n: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |st| {
            self.create_node(st, parent.0, n, FileKind::Directory)
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |st| remove(st, parent.0, n, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |st| remove(st, parent.0, n, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        n: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| {
            rename(st, (parent.0, n), (newparent.0, newname), flags)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let done = self.with(|st| {
            if st.info(ino.0)?.kind == FileKind::Directory {
                return Err(Errno::EISDIR);
            }
            Ok(st.table.open_file(ino.0))
        });
        // Never direct I/O: shared writable mmap needs the page cache.
        match done {
            Ok(fh) => reply.opened(FileHandle(fh), self.file_open_flags()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        n: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let done = self.with(|st| {
            let ino = self.create_node(st, parent.0, n, FileKind::File)?;
            let attr = st.attr(ino)?;
            Ok((attr, generation(st, ino), st.table.open_file(ino)))
        });
        match done {
            Ok((attr, gen, fh)) => {
                reply.created(&TTL, &attr, gen, FileHandle(fh), self.file_open_flags())
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
        let done = self.with(|st| {
            let id = st.id(ino.0);
            let mut buf = vec![0u8; size as usize];
            let n = st.vol()?.read(id, offset, &mut buf).or_errno()?;
            buf.truncate(n);
            Ok(buf)
        });
        match done {
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
        let done = self.with(|st| {
            let id = st.id(ino.0);
            st.dirty = true;
            st.vol()?.write(id, offset, data).or_errno()
        });
        match done.and_then(|n| u32::try_from(n).map_err(|_| Errno::EIO)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        // flush comes at every close(2); POSIX promises no durability there, and a commit
        // (two device flushes) per close made small-file work 100 times slower. fsync and
        // the periodic commit (mod.rs) make changes durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, State::sync);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| {
            if let Some(orphan) = st.table.close_file(fh.0) {
                let id = st.id(orphan);
                st.dirty = true;
                st.vol()?.purge_orphan(id).or_errno()?;
            }
            Ok(())
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let done = self.with(|st| {
            let items = dir_items(st, ino.0)?;
            Ok(st.table.open_dir(items))
        });
        match done {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let done = self.with(|st| {
            let parent = st.info(ino.0)?.parent;
            let dots = [(ino.0, "."), (st.ino(parent), "..")];
            let items = st.table.dir_items(fh.0).ok_or(Errno::EBADF)?;
            let listed = dots
                .iter()
                .map(|(i, n)| (*i, fuser::FileType::Directory, n.to_string()))
                .chain(
                    items
                        .iter()
                        .map(|d| (d.ino, file_type(d.info.kind), d.name.clone())),
                );
            for (index, (i, kind, n)) in listed.enumerate().skip(offset as usize) {
                if reply.add(INodeNo(i), index as u64 + 1, kind, n) {
                    break;
                }
            }
            Ok(())
        });
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let done = self.with(|st| {
            let me = st.info(ino.0)?;
            let up = st.vol()?.info(me.parent).or_errno()?;
            let dots = [(".".to_string(), me), ("..".to_string(), up)];
            let items = st.table.dir_items(fh.0).ok_or(Errno::EBADF)?.to_vec();
            let listed = dots
                .into_iter()
                .chain(items.into_iter().map(|d| (d.name, d.info)));
            for (index, (n, info)) in listed.enumerate().skip(offset as usize) {
                let attr = st.attr_of(&info);
                let gen = Generation(u64::from(info.id.sequence()));
                if reply.add(attr.ino, index as u64 + 1, n, &TTL, &attr, gen) {
                    break;
                }
            }
            Ok(())
        });
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| {
            st.table.close_dir(fh.0);
            Ok(())
        });
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, State::sync);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.with(|st| Ok(st.vol()?.volume_info())) {
            Ok(v) => {
                let bs = u64::from(v.cluster_size);
                let (total, free, avail) =
                    (v.total_clusters, v.free_clusters, v.available_clusters);
                // File records are not a fixed pool: report as many as there are free clusters.
                reply.statfs(
                    total,
                    free,
                    avail,
                    total,
                    free,
                    v.cluster_size,
                    255,
                    bs as u32,
                );
            }
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
        self.empty(reply, |st| fallocate(st, ino.0, offset, length, mode));
    }

    fn ioctl(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        match overlay::ioctl(self, ino.0, fh.0, cmd, out_size) {
            Ok(data) => reply.ioctl(i32::try_from(data.len()).unwrap_or(0), &data),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _n: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(self.no_xattrs(0));
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(self.no_xattrs(1));
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _n: &OsStr,
        _value: &[u8],
        _flags: i32,
        _pos: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(self.no_xattrs(2));
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(self.no_xattrs(3));
    }
}
