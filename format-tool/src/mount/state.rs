//! What every FUSE handler shares: the volume behind one lock, the open-file table, and the
//! translation between FUSE inode numbers and fs-core file ids.

use std::sync::{Arc, Mutex, MutexGuard};

use fs_core::{FileId, FileInfo, Name, Volume};
use fuser::{Errno, FileAttr};

use super::attr::{to_attr, Owner};
use super::errno::OrErrno;
use super::table::Table;
use crate::volume::Dev;

/// FUSE's root inode; every other inode number is the file's `FileId.0` (never 1).
pub const ROOT_INO: u64 = 1;

pub struct State {
    /// `None` once the mount has ended and the volume was taken to unmount it.
    pub vol: Option<Volume<Dev>>,
    pub table: Table,
    pub root: FileId,
    pub owner: Owner,
    pub blksize: u32,
    /// Something changed since the last `sync`, so flush has work to do.
    pub dirty: bool,
}

pub type Shared = Arc<Mutex<State>>;

pub fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A handler that panicked left the volume as fs-core left it; carry on serving.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    pub fn vol(&mut self) -> Result<&mut Volume<Dev>, Errno> {
        self.vol.as_mut().ok_or(Errno::EIO)
    }

    pub fn id(&self, ino: u64) -> FileId {
        if ino == ROOT_INO {
            self.root
        } else {
            FileId(ino)
        }
    }

    pub fn ino(&self, id: FileId) -> u64 {
        if id == self.root {
            ROOT_INO
        } else {
            id.0
        }
    }

    pub fn info(&mut self, ino: u64) -> Result<FileInfo, Errno> {
        let id = self.id(ino);
        self.vol()?.info(id).or_errno()
    }

    pub fn attr_of(&self, info: &FileInfo) -> FileAttr {
        to_attr(self.ino(info.id), info, self.owner, self.blksize)
    }

    pub fn attr(&mut self, ino: u64) -> Result<FileAttr, Errno> {
        let info = self.info(ino)?;
        Ok(self.attr_of(&info))
    }

    /// Writes everything out if anything changed since the last time.
    pub fn sync(&mut self) -> Result<(), Errno> {
        if self.dirty {
            self.vol()?.sync().or_errno()?;
            self.dirty = false;
        }
        Ok(())
    }

    pub fn lookup(&mut self, parent: u64, name: &Name) -> Result<FileId, Errno> {
        let dir = self.id(parent);
        self.vol()?.lookup(dir, name).or_errno()
    }
}

/// A name from the kernel as fs-core wants it; names that are not UTF-8 cannot exist here.
pub fn name(os: &std::ffi::OsStr) -> Result<Name, Errno> {
    let s = os.to_str().ok_or(Errno::EINVAL)?;
    Name::from_str(s).map_err(|e| super::errno::errno(&e.into()))
}
