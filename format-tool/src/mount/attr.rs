//! fs-core's file records as the kernel's `stat`: kinds, modes, times and block counts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs_core::time::NtTime;
use fs_core::{FileAttributes, FileInfo, FileKind};
use fuser::{FileAttr, FileType, INodeNo};

/// Who owns every file: cowfat keeps no owners, so the mounting user does.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

pub fn to_system_time(t: NtTime) -> SystemTime {
    let (secs, nanos) = t.to_unix();
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nanos),
        // Before 1970: step back whole seconds, then forward the nanoseconds.
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nanos),
    }
}

pub fn to_nt_time(t: SystemTime) -> NtTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    NtTime::from_unix(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}

/// The permission bits: READONLY is the only access rule cowfat keeps, so it clears the
/// write bits.
fn perm(info: &FileInfo) -> u16 {
    let base = match info.kind {
        FileKind::Directory => 0o755,
        FileKind::File => 0o644,
    };
    if info.attributes.contains(FileAttributes::READONLY) {
        base & !0o222
    } else {
        base
    }
}

pub fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::Directory => FileType::Directory,
        FileKind::File => FileType::RegularFile,
    }
}

pub fn to_attr(ino: u64, info: &FileInfo, owner: Owner, blksize: u32) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: info.file_size,
        blocks: info.allocation_size.div_ceil(512),
        atime: to_system_time(info.times.last_access),
        mtime: to_system_time(info.times.last_write),
        ctime: to_system_time(info.times.change),
        crtime: to_system_time(info.times.creation),
        kind: file_type(info.kind),
        perm: perm(info),
        nlink: match info.kind {
            FileKind::Directory => 2,
            FileKind::File => 1,
        },
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_system_time() {
        let t = NtTime::from_unix(1_700_000_000, 123_456_700);
        assert_eq!(to_nt_time(to_system_time(t)), t);
        assert!(to_system_time(NtTime(0)) < UNIX_EPOCH);
    }
}
