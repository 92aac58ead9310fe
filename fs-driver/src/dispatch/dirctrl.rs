//! IRP_MJ_DIRECTORY_CONTROL (fastfat's `dirctrl.c`): enumeration and change notification.
//!
//! Enumeration: the classes directory, full, both, id-both, id-full, names and id-extd, with
//! DOS wildcards through `FsRtlIsNameInExpression` (namesup), restart scan, return single
//! entry, index resume (`SL_INDEX_SPECIFIED`), `.` and `..` in every directory but the root,
//! `STATUS_NO_SUCH_FILE` when nothing ever matched and `STATUS_NO_MORE_FILES` at the end.
//! Entries are 8-byte aligned; a buffer that cannot hold the next whole entry ends the call
//! and the entry comes first in the next one; a first entry too long for the buffer is
//! returned cut with `STATUS_BUFFER_OVERFLOW` (and consumed, as fastfat does).
//!
//! `FileIndex` is the entry's position in the enumeration (0 `.`, 1 `..`, then the entries in
//! up-case name order), which is what an index resume seeks to; fs-core resumes by name key,
//! so a plain continuation survives creates and deletes in between, an index resume does not.
//!
//! Notification (NT-22): `FsRtlNotifyFullChangeDirectory` on the volume's notify list, the
//! CCB as `FsContext`, the directory's full name kept in the CCB for the watch's life.

use alloc::vec::Vec;
use core::mem::offset_of;

use fs_core::{DirCursor, FileId, FileInfo, Name};

use super::fileinfo::{nt_attributes, nt_times};
use super::{fsd_entry_point, IrpContext, Outcome};
use crate::fcb::{CcbState, Fcb};
use crate::infobuf::{len32, Reply};
use crate::namesup;
use crate::nt::{
    self, FILE_BOTH_DIR_INFORMATION, FILE_DIRECTORY_INFORMATION, FILE_FULL_DIR_INFORMATION,
    FILE_ID_BOTH_DIR_INFORMATION, FILE_ID_FULL_DIR_INFORMATION, FILE_NAMES_INFORMATION, NTSTATUS,
};
use crate::resrcsup::ResourceGuard;
use crate::status::status_of;
use crate::vcb::Vcb;
use crate::wdk_inline::io_get_current_irp_stack_location;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_DIRECTORY_CONTROL`.
    fsd_directory_control => common_directory_control
);

/// Directory information classes (`FILE_INFORMATION_CLASS`).
pub mod class {
    /// `FileDirectoryInformation`.
    pub const DIRECTORY: i32 = 1;
    /// `FileFullDirectoryInformation`.
    pub const FULL: i32 = 2;
    /// `FileBothDirectoryInformation`.
    pub const BOTH: i32 = 3;
    /// `FileNamesInformation`.
    pub const NAMES: i32 = 12;
    /// `FileIdBothDirectoryInformation`.
    pub const ID_BOTH: i32 = 37;
    /// `FileIdFullDirectoryInformation`.
    pub const ID_FULL: i32 = 38;
    /// `FileIdExtdDirectoryInformation`.
    pub const ID_EXTD: i32 = 60;
}

/// `FILE_ID_EXTD_DIR_INFORMATION` offsets (ntifs.h; windows-sys puts the structure behind a
/// feature the driver does not use, the ntsim tests check these against it).
pub mod extd {
    /// `EaSize`.
    pub const EA_SIZE: usize = 64;
    /// `ReparsePointTag`.
    pub const REPARSE_POINT_TAG: usize = 68;
    /// `FileId` (FILE_ID_128).
    pub const FILE_ID: usize = 72;
    /// `FileName`.
    pub const FILE_NAME: usize = 88;
}

const SL_RESTART_SCAN: u8 = 0x01;
const SL_RETURN_SINGLE_ENTRY: u8 = 0x02;
const SL_INDEX_SPECIFIED: u8 = 0x04;
const SL_WATCH_TREE: u8 = 0x01;
/// Entries fetched from fs-core per call.
const CHUNK: usize = 64;

/// A handle's enumeration state (kept in its CCB).
#[derive(Debug)]
pub struct DirSearch {
    /// Upcased expression (empty: everything).
    expression: Vec<u16>,
    /// Position of the next entry (0 `.`, 1 `..`, 2.. entries).
    ordinal: u32,
    /// fs-core's resume point: after the last entry consumed.
    cursor: DirCursor,
    /// Something was returned since the scan started.
    returned_any: bool,
}

/// `IRP_MJ_DIRECTORY_CONTROL`.
#[must_use]
pub fn common_directory_control(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::not_yet();
    };
    let Some(fcb) = context.fcb() else {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    };
    if context.irp.is_null() || context.ccb().is_null() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    if !fcb.is_directory {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    match u32::from(context.minor) {
        nt::IRP_MN_QUERY_DIRECTORY => match query(context, vcb, fcb) {
            Ok((status, information)) => Outcome::Complete {
                status,
                information,
            },
            Err(status) => Outcome::status(status),
        },
        nt::IRP_MN_NOTIFY_CHANGE_DIRECTORY => notify_change(context, vcb, fcb),
        _ => Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST),
    }
}

/// Where the name starts in an entry of `class` (None: not a directory class).
fn name_offset(class: i32) -> Option<usize> {
    Some(match class {
        class::DIRECTORY => offset_of!(FILE_DIRECTORY_INFORMATION, FileName),
        class::FULL => offset_of!(FILE_FULL_DIR_INFORMATION, FileName),
        class::BOTH => offset_of!(FILE_BOTH_DIR_INFORMATION, FileName),
        class::NAMES => offset_of!(FILE_NAMES_INFORMATION, FileName),
        class::ID_BOTH => offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileName),
        class::ID_FULL => offset_of!(FILE_ID_FULL_DIR_INFORMATION, FileName),
        class::ID_EXTD => extd::FILE_NAME,
        _ => return None,
    })
}

/// One entry of `class` for `name`/`info` at position `index`.
fn entry(class: i32, name: &[u16], info: &FileInfo, index: u32) -> Reply {
    let at = name_offset(class).unwrap_or(0);
    // Sized for the name too: growing it name unit by name unit cost a reallocation per entry.
    let mut r = Reply::zeroed(at + name.len() * 2);
    r.u32(4, index);
    if class == class::NAMES {
        r.u32(
            offset_of!(FILE_NAMES_INFORMATION, FileNameLength),
            len32(name.len() * 2),
        );
        r.units(at, name);
        return r;
    }
    type D = FILE_DIRECTORY_INFORMATION;
    let times = nt_times(info);
    r.i64(offset_of!(D, CreationTime), times[0]);
    r.i64(offset_of!(D, LastAccessTime), times[1]);
    r.i64(offset_of!(D, LastWriteTime), times[2]);
    r.i64(offset_of!(D, ChangeTime), times[3]);
    let directory = info.kind == fs_core::FileKind::Directory;
    let (eof, alloc) = if directory {
        (0, 0)
    } else {
        (info.file_size, info.allocation_size)
    };
    r.u64(offset_of!(D, EndOfFile), eof);
    r.u64(offset_of!(D, AllocationSize), alloc);
    r.u32(offset_of!(D, FileAttributes), nt_attributes(info));
    r.u32(offset_of!(D, FileNameLength), len32(name.len() * 2));
    match class {
        class::ID_BOTH => r.u64(offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileId), info.id.0),
        class::ID_FULL => r.u64(offset_of!(FILE_ID_FULL_DIR_INFORMATION, FileId), info.id.0),
        class::ID_EXTD => r.u64(extd::FILE_ID, info.id.0),
        _ => {}
    }
    r.units(at, name);
    r
}

/// The expression of a query (`Parameters.QueryDirectory.FileName`), upcased by the volume.
///
/// # Safety
/// `name` is NULL or a valid counted string.
unsafe fn expression(vcb: &Vcb, name: *const nt::UNICODE_STRING) -> Result<Vec<u16>, NTSTATUS> {
    if name.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: the caller's contract.
    let s = unsafe { &*name };
    if s.Buffer.is_null() || s.Length == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: `Length` bytes at `Buffer`.
    let units = unsafe { core::slice::from_raw_parts(s.Buffer, usize::from(s.Length / 2)) };
    let star = [u16::from(b'*')];
    if units == star {
        return Ok(Vec::new());
    }
    vcb.with_volume(|v| Ok(units.iter().map(|&u| v.upcase().upcase_unit(u)).collect()))
}

fn query(context: &IrpContext, vcb: &Vcb, fcb: &Fcb) -> Result<(NTSTATUS, usize), NTSTATUS> {
    // SAFETY: a directory control IRP sent to our volume.
    let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
    // SAFETY: the current stack location of that IRP.
    let stack = unsafe { &*stack };
    // SAFETY: QueryDirectory is the live member for IRP_MN_QUERY_DIRECTORY.
    let p = unsafe { stack.Parameters.QueryDirectory };
    let Some(fixed) = name_offset(p.FileInformationClass) else {
        return Err(nt::STATUS_INVALID_INFO_CLASS);
    };
    let length = p.Length as usize;
    if length < fixed {
        return Err(nt::STATUS_INFO_LENGTH_MISMATCH);
    }
    // SAFETY: the caller's buffer of `Length` bytes (ntsim's and a synchronous caller's
    // user buffer is addressable here; fastfat maps it with FatMapUserBuffer).
    let buffer = unsafe { (*context.irp).UserBuffer }.cast::<u8>();
    if buffer.is_null() {
        return Err(nt::STATUS_INVALID_USER_BUFFER);
    }
    // SAFETY: initialised with the FCB; the CCB state is used under it.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    // SAFETY: the request's CCB; only a field address is taken.
    let state = unsafe { (*context.ccb()).state.get() };
    // SAFETY: the request's CCB, alive until its close.
    let state = unsafe { &mut *state };
    if state.search.is_none() || stack.Flags & SL_RESTART_SCAN != 0 {
        state.search = Some(DirSearch {
            // SAFETY: the I/O manager's expression, valid for the request.
            expression: unsafe { expression(vcb, p.FileName) }?,
            ordinal: 0,
            cursor: DirCursor::start(),
            returned_any: false,
        });
    }
    let Some(search) = state.search.as_mut() else {
        return Err(nt::STATUS_INVALID_PARAMETER);
    };
    let root = fcb.is_root();
    if stack.Flags & SL_INDEX_SPECIFIED != 0 {
        seek(vcb, fcb.id, root, search, p.FileIndex.saturating_add(1))?;
    }
    let single = stack.Flags & SL_RETURN_SINGLE_ENTRY != 0;
    let fill = Fill {
        class: p.FileInformationClass,
        length,
        single,
    };
    // The position before this call: entries are consumed as the reply is built, but count
    // as returned only once the reply reached the caller. On any failure (the copy-out to a
    // bad buffer, no memory) the position goes back, so the next query lists them again.
    let (ordinal, returned_any) = (search.ordinal, search.returned_any);
    let cursor = search.cursor.clone_fallible().map_err(|e| status_of(&e))?;
    let answered = fill_and_copy_out(context, vcb, fcb.id, root, search, &fill, buffer);
    if answered.is_err() {
        search.ordinal = ordinal;
        search.cursor = cursor;
        search.returned_any = returned_any;
    }
    answered
}

/// Fills one reply from the search position and copies it to the caller's `buffer` (of
/// `fill.length` bytes).
fn fill_and_copy_out(
    context: &IrpContext,
    vcb: &Vcb,
    dir: FileId,
    root: bool,
    search: &mut DirSearch,
    fill: &Fill,
    buffer: *mut u8,
) -> Result<(NTSTATUS, usize), NTSTATUS> {
    let length = fill.length;
    let (reply, overflow) = fill.run(vcb, dir, root, search)?;
    reply.complete()?;
    if reply.bytes.is_empty() {
        return Err(if search.returned_any {
            nt::STATUS_NO_MORE_FILES
        } else {
            nt::STATUS_NO_SUCH_FILE
        });
    }
    search.returned_any = true;
    let n = reply.bytes.len().min(length);
    // NT-25: probed and copied inside an SEH frame (the caller's buffer may be anything).
    // SAFETY: the request's IRP and its caller's buffer of `length >= n` bytes.
    unsafe { crate::userbuf::copy_out(context.irp, buffer, &reply.bytes[..n]) }?;
    let status = if overflow {
        nt::STATUS_BUFFER_OVERFLOW
    } else {
        nt::STATUS_SUCCESS
    };
    Ok((status, n))
}

/// Positions `search` at enumeration position `ordinal`.
fn seek(
    vcb: &Vcb,
    dir: FileId,
    root: bool,
    search: &mut DirSearch,
    ordinal: u32,
) -> Result<(), NTSTATUS> {
    let first = if root { 0 } else { 2 };
    let skip = ordinal.saturating_sub(first) as usize;
    search.cursor = DirCursor::start();
    if skip > 0 {
        let (entries, _) = vcb.with_volume(|v| v.read_dir(dir, &DirCursor::start(), skip))?;
        if let Some(last) = entries.last() {
            search.cursor = vcb.with_volume(|v| Ok(DirCursor::after(v.name_key(&last.name)?)))?;
        }
    }
    search.ordinal = ordinal;
    Ok(())
}

/// One call's worth of entries.
struct Fill {
    class: i32,
    length: usize,
    single: bool,
}

/// A candidate entry.
struct Candidate {
    name: Vec<u16>,
    /// The name upcased, to match the expression against; empty when there is none.
    key: Vec<u16>,
    info: FileInfo,
    real: Option<Name>,
}

impl Fill {
    fn run(
        &self,
        vcb: &Vcb,
        dir: FileId,
        root: bool,
        search: &mut DirSearch,
    ) -> Result<(Reply, bool), NTSTATUS> {
        let mut out = Reply::default();
        let mut previous: Option<usize> = None;
        loop {
            let batch = candidates(vcb, dir, root, search)?;
            if batch.is_empty() {
                return Ok((out, false));
            }
            for c in batch {
                if !namesup::is_name_in_expression(&search.expression, &c.key) {
                    consume(vcb, search, &c)?;
                    continue;
                }
                let e = entry(self.class, &c.name, &c.info, search.ordinal);
                let start = out.bytes.len().next_multiple_of(8);
                if start + e.bytes.len() > self.length {
                    if previous.is_some() {
                        return Ok((out, false));
                    }
                    // The first entry does not fit: the part that does, with overflow.
                    out.put_reply(0, &e);
                    out.bytes.truncate(self.length);
                    consume(vcb, search, &c)?;
                    return Ok((out, true));
                }
                if let Some(p) = previous {
                    out.u32(p, len32(start - p));
                }
                out.put_reply(start, &e);
                previous = Some(start);
                consume(vcb, search, &c)?;
                if self.single {
                    return Ok((out, false));
                }
            }
        }
    }
}

fn consume(vcb: &Vcb, search: &mut DirSearch, c: &Candidate) -> Result<(), NTSTATUS> {
    if let Some(name) = &c.real {
        search.cursor = vcb.with_volume(|v| Ok(DirCursor::after(v.name_key(name)?)))?;
    }
    search.ordinal = search.ordinal.saturating_add(1);
    Ok(())
}

/// The next few entries from the search position (`.` and `..` first outside the root).
/// Out of line: inlined, its fallible copies pushed `query`'s frame past 1 KiB (stack-report).
#[inline(never)]
fn candidates(
    vcb: &Vcb,
    dir: FileId,
    root: bool,
    search: &DirSearch,
) -> Result<Vec<Candidate>, NTSTATUS> {
    let dot = u16::from(b'.');
    if !root && search.ordinal < 2 {
        let info = vcb.with_volume(|v| v.info(dir))?;
        let mut out = Vec::new();
        let units = |u: &[u16]| fs_core::mem::copied(u).map_err(|e| status_of(&e));
        if search.ordinal == 0 {
            let dot_entry = Candidate {
                name: units(&[dot])?,
                key: units(&[dot])?,
                info: info.clone(),
                real: None,
            };
            fs_core::mem::push(&mut out, dot_entry).map_err(|e| status_of(&e))?;
        }
        let parent = vcb.with_volume(|v| v.info(info.parent))?;
        let dotdot = Candidate {
            name: units(&[dot, dot])?,
            key: units(&[dot, dot])?,
            info: parent,
            real: None,
        };
        fs_core::mem::push(&mut out, dotdot).map_err(|e| status_of(&e))?;
        return Ok(out);
    }
    vcb.with_volume(|v| {
        let (entries, _) = v.read_dir(dir, &search.cursor, CHUNK)?;
        let mut out = Vec::new();
        fs_core::mem::reserve(&mut out, entries.len())?;
        for e in entries {
            let name = fs_core::mem::copied(e.name.as_utf16())?;
            // The upcased key only matters to an expression; a listing of everything (no
            // expression, or `*`) skips one allocation per entry (ntsim-costs.md).
            let key = if search.expression.is_empty() {
                Vec::new()
            } else {
                fs_core::mem::collect(name.iter().map(|&u| v.upcase().upcase_unit(u)))?
            };
            out.push(Candidate {
                name,
                key,
                info: e.info,
                real: Some(e.name),
            });
        }
        Ok(out)
    })
}

fn notify_change(context: &IrpContext, vcb: &Vcb, fcb: &Fcb) -> Outcome {
    // SAFETY: a directory control IRP sent to our volume.
    let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
    // SAFETY: the current stack location of that IRP.
    let stack = unsafe { &*stack };
    // SAFETY: NotifyDirectory is the live member for IRP_MN_NOTIFY_CHANGE_DIRECTORY.
    let p = unsafe { stack.Parameters.NotifyDirectory };
    let watch_tree = stack.Flags & SL_WATCH_TREE != 0;
    let ccb = context.ccb();
    // SAFETY: initialised with the FCB; the CCB state is used under it.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    // SAFETY: the request's CCB; only a field address is taken.
    let state = unsafe { (*ccb).state.get() };
    // SAFETY: the request's CCB, alive until its close (after cleanup ends the watch).
    let state: &mut CcbState = unsafe { &mut *state };
    if state.notify_name.is_empty() {
        if fcb.unlinked.get() {
            // The directory is gone (POSIX delete) before this handle ever watched it.
            return Outcome::status(nt::STATUS_DELETE_PENDING);
        }
        state.notify_name = match vcb.with_volume(|v| namesup::dir_path(v, fcb.id)) {
            Ok(path) => path,
            Err(status) => return Outcome::status(status),
        };
        let bytes = u16::try_from(state.notify_name.len() * 2).unwrap_or(0xFFFE);
        state.notify_string = nt::STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: state.notify_name.as_mut_ptr().cast(),
        };
    }
    // SAFETY: the volume's notify sync and list; the name lives in the CCB as long as the
    // watch (FsRtlNotifyCleanup at the handle's cleanup); the IRP goes to FsRtl.
    unsafe {
        nt::FsRtlNotifyFullChangeDirectory(
            vcb.notify_sync(),
            vcb.notify_list(),
            ccb.cast_const().cast(),
            &mut state.notify_string,
            watch_tree,
            false,
            p.CompletionFilter,
            context.irp,
            None,
            core::ptr::null(),
        )
    };
    Outcome::Pending
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_DIRECTORY_CONTROL, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn requests_off_a_volume_are_refused() {
        let outcome = common_directory_control(&context(IRP_MJ_DIRECTORY_CONTROL, 1, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }

    #[test]
    fn name_offsets_follow_the_structures() {
        assert_eq!(name_offset(class::DIRECTORY), Some(64));
        assert_eq!(name_offset(class::FULL), Some(68));
        assert_eq!(name_offset(class::BOTH), Some(94));
        assert_eq!(name_offset(class::NAMES), Some(12));
        assert_eq!(name_offset(class::ID_BOTH), Some(104));
        assert_eq!(name_offset(class::ID_FULL), Some(80));
        assert_eq!(name_offset(class::ID_EXTD), Some(88));
        assert_eq!(name_offset(99), None);
    }
}
