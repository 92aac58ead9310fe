//! The inode and handle table: which files the kernel has open (so an unlinked open file is
//! kept as an orphan until its last release, and overlay discard can refuse while a file may
//! be open or mapped) and the directory snapshots that `readdir` offsets index into.

use std::collections::{HashMap, HashSet};

use fs_core::FileInfo;

/// One directory entry as a `readdir` snapshot keeps it.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub name: String,
    pub ino: u64,
    pub info: FileInfo,
}

#[derive(Debug)]
enum Handle {
    File {
        ino: u64,
    },
    /// Taken at opendir, so offsets stay stable while the directory changes underneath.
    Dir {
        items: Vec<DirItem>,
    },
}

#[derive(Debug, Default)]
pub struct Table {
    next_fh: u64,
    handles: HashMap<u64, Handle>,
    /// Open file handles per inode.
    opens: HashMap<u64, u32>,
    /// Inodes unlinked while open: purged at their last release.
    orphans: HashSet<u64>,
}

impl Table {
    fn insert(&mut self, h: Handle) -> u64 {
        self.next_fh += 1;
        self.handles.insert(self.next_fh, h);
        self.next_fh
    }

    pub fn open_file(&mut self, ino: u64) -> u64 {
        *self.opens.entry(ino).or_default() += 1;
        self.insert(Handle::File { ino })
    }

    /// Closes a file handle; returns the inode if it was its last handle and the file was
    /// unlinked meanwhile, so the caller purges the orphan.
    pub fn close_file(&mut self, fh: u64) -> Option<u64> {
        let Some(Handle::File { ino }) = self.handles.remove(&fh) else {
            return None;
        };
        let count = self.opens.get_mut(&ino)?;
        *count -= 1;
        if *count > 0 {
            return None;
        }
        self.opens.remove(&ino);
        self.orphans.remove(&ino).then_some(ino)
    }

    pub fn is_open(&self, ino: u64) -> bool {
        self.opens.contains_key(&ino)
    }

    /// Whether the inode has an open file handle besides `fh` (the handle a control ioctl
    /// came through, which is not a program's).
    pub fn open_elsewhere(&self, ino: u64, fh: u64) -> bool {
        let own = matches!(self.handles.get(&fh), Some(Handle::File { ino: i }) if *i == ino);
        self.opens.get(&ino).copied().unwrap_or(0) > u32::from(own)
    }

    pub fn any_open(&self) -> bool {
        !self.opens.is_empty()
    }

    pub fn mark_orphan(&mut self, ino: u64) {
        self.orphans.insert(ino);
    }

    pub fn open_dir(&mut self, items: Vec<DirItem>) -> u64 {
        self.insert(Handle::Dir { items })
    }

    pub fn dir_items(&self, fh: u64) -> Option<&[DirItem]> {
        match self.handles.get(&fh) {
            Some(Handle::Dir { items }) => Some(items),
            _ => None,
        }
    }

    pub fn close_dir(&mut self, fh: u64) {
        if let Some(Handle::Dir { .. }) = self.handles.get(&fh) {
            self.handles.remove(&fh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphan_is_returned_at_last_close_only() {
        let mut t = Table::default();
        let a = t.open_file(7);
        let b = t.open_file(7);
        t.mark_orphan(7);
        assert_eq!(t.close_file(a), None);
        assert!(t.is_open(7));
        assert_eq!(t.close_file(b), Some(7));
        assert!(!t.any_open());
        assert_eq!(
            t.close_file(b),
            None,
            "a second release of a handle is ignored"
        );
    }

    #[test]
    fn open_elsewhere_leaves_out_the_asking_handle_only() {
        let mut t = Table::default();
        let dir = t.open_dir(Vec::new());
        assert!(!t.open_elsewhere(7, dir));
        let own = t.open_file(7);
        assert!(!t.open_elsewhere(7, own), "the ioctl's own handle");
        assert!(
            t.open_elsewhere(7, dir),
            "a directory handle is not the file's"
        );
        let other = t.open_file(7);
        assert!(t.open_elsewhere(7, own));
        let eight = t.open_file(8);
        assert!(t.open_elsewhere(7, eight), "another file's handle");
        t.close_file(other);
        assert!(!t.open_elsewhere(7, own));
    }
}
