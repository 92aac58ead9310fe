//! Directory change notification (NT-22): the one place the driver reports a change it made
//! (`FsRtlNotifyFullReportChange` on the volume's notify list) and the watch registration
//! for `IRP_MN_NOTIFY_CHANGE_DIRECTORY`.
//!
//! Every namespace, size, attribute or time change the driver makes goes through [`report`]
//! (or [`report_fcb`] for an open file), so other work (overlay commit/discard: NT-22 asks for
//! `FILE_ACTION_MODIFIED` with the size and last-write filters) reports the same way.

use core::ptr;

use fs_core::{FileId, Name};

use crate::fcb::Fcb;
use crate::namesup;
use crate::nt::{self, STRING};
use crate::vcb::Vcb;

/// `FILE_NOTIFY_CHANGE_*` filters (winnt.h).
pub mod filter {
    /// A file was created, deleted or renamed.
    pub const FILE_NAME: u32 = 0x0001;
    /// A directory was created, deleted or renamed.
    pub const DIR_NAME: u32 = 0x0002;
    /// Attributes changed.
    pub const ATTRIBUTES: u32 = 0x0004;
    /// The size changed.
    pub const SIZE: u32 = 0x0008;
    /// The last write time changed.
    pub const LAST_WRITE: u32 = 0x0010;
    /// The last access time changed.
    pub const LAST_ACCESS: u32 = 0x0020;
    /// The creation time changed.
    pub const CREATION: u32 = 0x0040;
}

/// `FILE_ACTION_*` (winnt.h).
pub mod action {
    /// Added.
    pub const ADDED: u32 = 1;
    /// Removed.
    pub const REMOVED: u32 = 2;
    /// Modified.
    pub const MODIFIED: u32 = 3;
    /// Renamed: the old name.
    pub const RENAMED_OLD_NAME: u32 = 4;
    /// Renamed: the new name.
    pub const RENAMED_NEW_NAME: u32 = 5;
}

/// The name filter for a file or a directory.
#[must_use]
pub fn name_filter(is_directory: bool) -> u32 {
    if is_directory {
        filter::DIR_NAME
    } else {
        filter::FILE_NAME
    }
}

/// `FO_FILE_MODIFIED` / `FO_FILE_SIZE_CHANGED` (wdm.h).
const FO_FILE_MODIFIED: u32 = 0x0000_1000;
const FO_FILE_SIZE_CHANGED: u32 = 0x0000_2000;

/// A user write succeeded on `file_object`: mark it modified (and resized) so the handle's
/// cleanup reports the change once ([`report_at_cleanup`]), as fastfat does, rather than one
/// report per write.
///
/// # Safety
/// `file_object` is the write request's live file object.
pub unsafe fn note_write(file_object: *mut nt::FILE_OBJECT, fcb: &Fcb, size_before: u64) {
    let mut flags = FO_FILE_MODIFIED;
    if fcb.file_size() != size_before {
        flags |= FO_FILE_SIZE_CHANGED;
    }
    // SAFETY: the write request's file object; its flags are the file system's to set.
    unsafe { (*file_object).Flags |= flags };
}

/// The handle's cleanup: report the writes [`note_write`] recorded (last write, and size).
///
/// # Safety
/// `file_object` is the cleanup request's live file object.
pub unsafe fn report_at_cleanup(vcb: &Vcb, fcb: &Fcb, file_object: *mut nt::FILE_OBJECT) {
    // SAFETY: the cleanup request's file object.
    let flags = unsafe { (*file_object).Flags };
    if flags & FO_FILE_MODIFIED == 0 {
        return;
    }
    let mut filter = filter::LAST_WRITE;
    if flags & FO_FILE_SIZE_CHANGED != 0 {
        filter |= filter::SIZE;
    }
    report_fcb(vcb, fcb, filter, action::MODIFIED);
}

/// Reports a change of the entry `name` in directory `parent`.
pub fn report(vcb: &Vcb, parent: FileId, name: &Name, filter: u32, action: u32) {
    let Ok(dir) = vcb.with_volume(|v| namesup::dir_path(v, parent)) else {
        return;
    };
    // No memory for the path: the change goes unreported, as when the volume read fails.
    let Ok((path, offset)) = namesup::child_path(&dir, name) else {
        return;
    };
    report_path(vcb, &path, offset, filter, action);
}

/// Reports a change of an open file or directory (nothing for the root, which has no entry).
pub fn report_fcb(vcb: &Vcb, fcb: &Fcb, filter: u32, action: u32) {
    if let Ok(Some(name)) = fcb.name() {
        report(vcb, fcb.parent(), &name, filter, action);
    }
}

fn report_path(vcb: &Vcb, path: &[u16], name_offset: usize, filter: u32, action: u32) {
    let bytes = u16::try_from(path.len() * 2).unwrap_or(0xFFFE);
    let target = STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: path.as_ptr().cast_mut().cast(),
    };
    let offset = u16::try_from(name_offset).unwrap_or(0);
    // SAFETY: the volume's sync and list; the name lives across the call.
    unsafe {
        nt::FsRtlNotifyFullReportChange(
            vcb.notify_sync(),
            vcb.notify_list(),
            &target,
            offset,
            ptr::null(),
            ptr::null(),
            filter,
            action,
            ptr::null(),
        )
    };
}
