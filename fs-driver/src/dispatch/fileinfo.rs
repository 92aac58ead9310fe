//! IRP_MJ_QUERY_INFORMATION / IRP_MJ_SET_INFORMATION (fastfat's `fileinfo.c`).
//!
//! Query: basic, standard, internal, EA (none), position, name, normalized name (cowfat has
//! no short names, so the same), all, network open, attribute tag, stream (the one unnamed
//! data stream), compression (none). Access, mode and alignment information are answered by
//! the I/O manager on NT and never reach a file system (nor the corresponding parts of
//! `FILE_ALL_INFORMATION`), so they are refused here like any unknown class.
//!
//! Set: basic, disposition and disposition-ex (POSIX semantics, ignore read-only), rename and
//! rename-ex (replace-if-exists, ignore read-only), link (refused: one name per file),
//! position, end of file, allocation and valid data length. Shrinks ask `check_truncate`
//! (NT-10), deletes `check_delete` and replaced rename targets `check_rename_target` (NT-09)
//! in `section`; every change is reported through [`crate::notify`] (NT-22).

use core::mem::{offset_of, size_of};

use fs_core::time::NtTime;
use fs_core::{FileAttributes, FileInfo, FileKind, Name, SetTimes};

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::cachesup::{has_data_section, purge, update_cc_sizes};
use crate::fcb::Fcb;
use crate::infobuf::{copy_out, len32, Reply};
use crate::notify::{self, action, filter};
use crate::nt::{
    self, FILE_ALL_INFORMATION, FILE_ATTRIBUTE_TAG_INFORMATION, FILE_BASIC_INFORMATION,
    FILE_COMPRESSION_INFORMATION, FILE_NAME_INFORMATION, FILE_NETWORK_OPEN_INFORMATION,
    FILE_OBJECT, FILE_STANDARD_INFORMATION, FILE_STREAM_INFORMATION, NTSTATUS,
};
use crate::resrcsup::ResourceGuard;
use crate::vcb::Vcb;
use crate::wdk_inline::io_get_current_irp_stack_location;
use crate::{namesup, section};

/// The page size Cc and Mm purge by (x64).
const PAGE_SIZE: u64 = 4096;

/// `FILE_INFORMATION_CLASS` values (wdm.h / ntifs.h).
pub mod class {
    /// `FileBasicInformation`.
    pub const BASIC: i32 = crate::nt::FileBasicInformation;
    /// `FileStandardInformation`.
    pub const STANDARD: i32 = crate::nt::FileStandardInformation;
    /// `FileInternalInformation`.
    pub const INTERNAL: i32 = crate::nt::FileInternalInformation;
    /// `FileEaInformation`.
    pub const EA: i32 = crate::nt::FileEaInformation;
    /// `FileNameInformation`.
    pub const NAME: i32 = crate::nt::FileNameInformation;
    /// `FileRenameInformation`.
    pub const RENAME: i32 = crate::nt::FileRenameInformation;
    /// `FileLinkInformation`.
    pub const LINK: i32 = crate::nt::FileLinkInformation;
    /// `FileDispositionInformation`.
    pub const DISPOSITION: i32 = crate::nt::FileDispositionInformation;
    /// `FilePositionInformation`.
    pub const POSITION: i32 = crate::nt::FilePositionInformation;
    /// `FileAllInformation`.
    pub const ALL: i32 = crate::nt::FileAllInformation;
    /// `FileAllocationInformation`.
    pub const ALLOCATION: i32 = crate::nt::FileAllocationInformation;
    /// `FileEndOfFileInformation`.
    pub const END_OF_FILE: i32 = crate::nt::FileEndOfFileInformation;
    /// `FileStreamInformation`.
    pub const STREAM: i32 = crate::nt::FileStreamInformation;
    /// `FileCompressionInformation`.
    pub const COMPRESSION: i32 = crate::nt::FileCompressionInformation;
    /// `FileNetworkOpenInformation`.
    pub const NETWORK_OPEN: i32 = crate::nt::FileNetworkOpenInformation;
    /// `FileAttributeTagInformation`.
    pub const ATTRIBUTE_TAG: i32 = crate::nt::FileAttributeTagInformation;
    /// `FileValidDataLengthInformation`.
    pub const VALID_DATA_LENGTH: i32 = crate::nt::FileValidDataLengthInformation;
    /// `FileNormalizedNameInformation`.
    pub const NORMALIZED_NAME: i32 = crate::nt::FileNormalizedNameInformation;
    /// `FileDispositionInformationEx`.
    pub const DISPOSITION_EX: i32 = crate::nt::FileDispositionInformationEx;
    /// `FileRenameInformationEx`.
    pub const RENAME_EX: i32 = crate::nt::FileRenameInformationEx;
    /// `FileLinkInformationEx`.
    pub const LINK_EX: i32 = crate::nt::FileLinkInformationEx;
}

/// `FILE_DISPOSITION_INFORMATION_EX.Flags` (ntifs.h).
pub mod disposition_flags {
    /// Delete.
    pub const DELETE: u32 = 0x01;
    /// The name goes at this handle's close, even with other handles open.
    pub const POSIX_SEMANTICS: u32 = 0x02;
    /// Delete even if read-only.
    pub const IGNORE_READONLY_ATTRIBUTE: u32 = 0x10;
}

/// `FILE_RENAME_INFORMATION_EX.Flags` (ntifs.h).
pub mod rename_flags {
    /// Replace an existing target.
    pub const REPLACE_IF_EXISTS: u32 = 0x01;
    /// POSIX semantics (an open target may be replaced on NTFS; cowfat still refuses).
    pub const POSIX_SEMANTICS: u32 = 0x02;
    /// Replace a read-only target.
    pub const IGNORE_READONLY_ATTRIBUTE: u32 = 0x40;
}

/// `FILE_ATTRIBUTE_NORMAL`.
const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
/// `FILE_ATTRIBUTE_DIRECTORY`.
const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x10;
/// The unnamed data stream's name.
const DATA_STREAM: &str = "::$DATA";

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_QUERY_INFORMATION`.
    fsd_query_information => common_query_information
);

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_SET_INFORMATION`.
    fsd_set_information => common_set_information
);

/// The request's stack parameters and system buffer.
struct Request {
    class: i32,
    length: usize,
    buffer: *mut u8,
    target: *mut FILE_OBJECT,
    advance_only: bool,
}

/// # Safety
/// `context.irp` is a valid query or set information IRP.
unsafe fn decode(context: &IrpContext, set: bool) -> Request {
    // SAFETY: the caller's contract.
    let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
    // SAFETY: the current stack location of that IRP.
    let stack = unsafe { &*stack };
    // SAFETY: the request's IRP, ours while dispatching.
    let irp = unsafe { &*context.irp };
    // SAFETY: the system buffer member of a buffered request.
    let buffer = unsafe { irp.AssociatedIrp.SystemBuffer }.cast::<u8>();
    if set {
        // SAFETY: SetFile is the live member for IRP_MJ_SET_INFORMATION.
        let p = unsafe { stack.Parameters.SetFile };
        // SAFETY: AdvanceOnly shares the first byte of the union with ReplaceIfExists.
        let advance_only = unsafe { p.Anonymous.Anonymous.AdvanceOnly };
        Request {
            class: p.FileInformationClass,
            length: p.Length as usize,
            buffer,
            target: p.FileObject,
            advance_only,
        }
    } else {
        // SAFETY: QueryFile is the live member for IRP_MJ_QUERY_INFORMATION.
        let p = unsafe { stack.Parameters.QueryFile };
        Request {
            class: p.FileInformationClass,
            length: p.Length as usize,
            buffer,
            target: core::ptr::null_mut(),
            advance_only: false,
        }
    }
}

/// `IRP_MJ_QUERY_INFORMATION`.
#[must_use]
pub fn common_query_information(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::not_yet();
    };
    let Some(fcb) = context.fcb() else {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    };
    if context.irp.is_null() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: a query-information IRP sent to our volume.
    let request = unsafe { decode(context, false) };
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::shared(fcb.resource()) };
    let info = match vcb.with_volume(|v| v.info(fcb.id)) {
        Ok(info) => info,
        Err(status) => return Outcome::status(status),
    };
    let facts = Facts::of(context, fcb, &info);
    let built = match request.class {
        class::BASIC => Ok((basic(&facts), size_of::<FILE_BASIC_INFORMATION>())),
        class::STANDARD => Ok((standard(&facts), size_of::<FILE_STANDARD_INFORMATION>())),
        class::INTERNAL => Ok((internal(&facts), 8)),
        class::EA => Ok((Reply::zeroed(4), 4)),
        class::POSITION => Ok((position(&facts), 8)),
        class::NAME | class::NORMALIZED_NAME => {
            name(vcb, fcb).map(|r| (r, offset_of!(FILE_NAME_INFORMATION, FileName)))
        }
        class::ALL => all(vcb, fcb, &facts).map(|r| {
            let fixed = offset_of!(FILE_ALL_INFORMATION, NameInformation)
                + offset_of!(FILE_NAME_INFORMATION, FileName);
            (r, fixed)
        }),
        class::NETWORK_OPEN => Ok((
            network_open(&facts),
            size_of::<FILE_NETWORK_OPEN_INFORMATION>(),
        )),
        class::ATTRIBUTE_TAG => Ok((
            attribute_tag(&facts),
            size_of::<FILE_ATTRIBUTE_TAG_INFORMATION>(),
        )),
        class::STREAM => Ok((
            stream(&facts),
            offset_of!(FILE_STREAM_INFORMATION, StreamName).min(stream(&facts).bytes.len()),
        )),
        class::COMPRESSION => Ok((
            compression(&facts),
            size_of::<FILE_COMPRESSION_INFORMATION>(),
        )),
        _ => Err(nt::STATUS_INVALID_PARAMETER),
    };
    match built {
        Ok((reply, fixed)) => {
            // SAFETY: the I/O manager's system buffer of `length` bytes.
            let (status, information) =
                unsafe { copy_out(&reply, fixed, request.buffer, request.length) };
            Outcome::Complete {
                status,
                information,
            }
        }
        Err(status) => Outcome::status(status),
    }
}

/// What the query classes are made of.
struct Facts {
    times: [i64; 4],
    attributes: u32,
    allocation: u64,
    end_of_file: u64,
    directory: bool,
    delete_pending: bool,
    id: u64,
    position: i64,
}

fn nt_time(t: NtTime) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// The attributes NT shows: DIRECTORY for directories, NORMAL when nothing else is set.
#[must_use]
pub fn nt_attributes(info: &FileInfo) -> u32 {
    let mut a = info.attributes.bits();
    if info.kind == FileKind::Directory {
        a |= FILE_ATTRIBUTE_DIRECTORY;
    }
    if a == 0 {
        a = FILE_ATTRIBUTE_NORMAL;
    }
    a
}

/// NT's four times of a file, in the order of the information structures.
#[must_use]
pub fn nt_times(info: &FileInfo) -> [i64; 4] {
    let t = &info.times;
    [
        nt_time(t.creation),
        nt_time(t.last_access),
        nt_time(t.last_write),
        nt_time(t.change),
    ]
}

impl Facts {
    fn of(context: &IrpContext, fcb: &Fcb, info: &FileInfo) -> Self {
        Self::of_file_object(context.file_object, fcb, info)
    }

    fn of_file_object(file_object: *const FILE_OBJECT, fcb: &Fcb, info: &FileInfo) -> Self {
        let directory = info.kind == FileKind::Directory;
        let sizes = fcb.cc_sizes();
        let (allocation, end_of_file) = if directory {
            (0, 0)
        } else {
            (
                u64::try_from(sizes.AllocationSize).unwrap_or(0),
                u64::try_from(sizes.FileSize).unwrap_or(0),
            )
        };
        // SAFETY: the request's file object.
        let position = unsafe { (*file_object).CurrentByteOffset };
        Self {
            times: nt_times(info),
            attributes: nt_attributes(info),
            allocation,
            end_of_file,
            directory,
            delete_pending: fcb.delete_pending.get(),
            id: fcb.id.0,
            position,
        }
    }
}

fn basic(f: &Facts) -> Reply {
    let mut r = Reply::zeroed(size_of::<FILE_BASIC_INFORMATION>());
    r.i64(offset_of!(FILE_BASIC_INFORMATION, CreationTime), f.times[0]);
    r.i64(
        offset_of!(FILE_BASIC_INFORMATION, LastAccessTime),
        f.times[1],
    );
    r.i64(
        offset_of!(FILE_BASIC_INFORMATION, LastWriteTime),
        f.times[2],
    );
    r.i64(offset_of!(FILE_BASIC_INFORMATION, ChangeTime), f.times[3]);
    r.u32(
        offset_of!(FILE_BASIC_INFORMATION, FileAttributes),
        f.attributes,
    );
    r
}

fn standard(f: &Facts) -> Reply {
    let mut r = Reply::zeroed(size_of::<FILE_STANDARD_INFORMATION>());
    r.u64(
        offset_of!(FILE_STANDARD_INFORMATION, AllocationSize),
        f.allocation,
    );
    r.u64(
        offset_of!(FILE_STANDARD_INFORMATION, EndOfFile),
        f.end_of_file,
    );
    r.u32(offset_of!(FILE_STANDARD_INFORMATION, NumberOfLinks), 1);
    r.u8(
        offset_of!(FILE_STANDARD_INFORMATION, DeletePending),
        u8::from(f.delete_pending),
    );
    r.u8(
        offset_of!(FILE_STANDARD_INFORMATION, Directory),
        u8::from(f.directory),
    );
    r
}

fn internal(f: &Facts) -> Reply {
    let mut r = Reply::zeroed(8);
    r.u64(0, f.id);
    r
}

fn position(f: &Facts) -> Reply {
    let mut r = Reply::zeroed(8);
    r.i64(0, f.position);
    r
}

fn name(vcb: &Vcb, fcb: &Fcb) -> Result<Reply, NTSTATUS> {
    let path = vcb.with_volume(|v| namesup::full_path(v, fcb.parent(), fcb.name()?.as_ref()))?;
    let at = offset_of!(FILE_NAME_INFORMATION, FileName);
    let mut r = Reply::zeroed(at);
    r.u32(0, len32(path.len() * 2));
    r.units(at, &path);
    Ok(r)
}

fn all(vcb: &Vcb, fcb: &Fcb, f: &Facts) -> Result<Reply, NTSTATUS> {
    let mut r = Reply::zeroed(offset_of!(FILE_ALL_INFORMATION, NameInformation));
    r.put_reply(
        offset_of!(FILE_ALL_INFORMATION, BasicInformation),
        &basic(f),
    );
    r.put_reply(
        offset_of!(FILE_ALL_INFORMATION, StandardInformation),
        &standard(f),
    );
    r.put_reply(
        offset_of!(FILE_ALL_INFORMATION, InternalInformation),
        &internal(f),
    );
    r.put_reply(
        offset_of!(FILE_ALL_INFORMATION, PositionInformation),
        &position(f),
    );
    r.put_reply(
        offset_of!(FILE_ALL_INFORMATION, NameInformation),
        &name(vcb, fcb)?,
    );
    Ok(r)
}

fn network_open(f: &Facts) -> Reply {
    type N = FILE_NETWORK_OPEN_INFORMATION;
    let mut r = Reply::zeroed(size_of::<N>());
    r.i64(offset_of!(N, CreationTime), f.times[0]);
    r.i64(offset_of!(N, LastAccessTime), f.times[1]);
    r.i64(offset_of!(N, LastWriteTime), f.times[2]);
    r.i64(offset_of!(N, ChangeTime), f.times[3]);
    r.u64(offset_of!(N, AllocationSize), f.allocation);
    r.u64(offset_of!(N, EndOfFile), f.end_of_file);
    r.u32(offset_of!(N, FileAttributes), f.attributes);
    r
}

fn attribute_tag(f: &Facts) -> Reply {
    let mut r = Reply::zeroed(size_of::<FILE_ATTRIBUTE_TAG_INFORMATION>());
    r.u32(
        offset_of!(FILE_ATTRIBUTE_TAG_INFORMATION, FileAttributes),
        f.attributes,
    );
    r
}

fn stream(f: &Facts) -> Reply {
    if f.directory {
        return Reply::default();
    }
    type S = FILE_STREAM_INFORMATION;
    let name: alloc::vec::Vec<u16> = DATA_STREAM.encode_utf16().collect();
    let mut r = Reply::zeroed(offset_of!(S, StreamName));
    r.u32(offset_of!(S, NextEntryOffset), 0);
    r.u32(offset_of!(S, StreamNameLength), len32(name.len() * 2));
    r.u64(offset_of!(S, StreamSize), f.end_of_file);
    r.u64(offset_of!(S, StreamAllocationSize), f.allocation);
    r.units(offset_of!(S, StreamName), &name);
    r
}

fn compression(f: &Facts) -> Reply {
    let mut r = Reply::zeroed(size_of::<FILE_COMPRESSION_INFORMATION>());
    r.u64(
        offset_of!(FILE_COMPRESSION_INFORMATION, CompressedFileSize),
        f.end_of_file,
    );
    r
}

/// The fast I/O query paths (`FastIoQueryBasicInfo`, `...StandardInfo`,
/// `...NetworkOpenInfo`): the same structure as the IRP path, or None to decline (no `wait`,
/// not our stream, fs-core failing: the IRP path then answers).
///
/// # Safety
/// `file_object` is a live file object the I/O manager sent to our volume.
#[must_use]
pub unsafe fn fast_query(file_object: *const FILE_OBJECT, class: i32, wait: bool) -> Option<Reply> {
    if !wait {
        return None;
    }
    // SAFETY: the caller's contract.
    let fcb = unsafe { crate::fcb::fcb_of_file_object(file_object) }?;
    // SAFETY: an FCB lives while its file object does.
    let fcb = unsafe { &*fcb };
    // SAFETY: the FCB's volume outlives it.
    let vcb = unsafe { &*fcb.vcb };
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::shared(fcb.resource()) };
    let info = vcb.with_volume(|v| v.info(fcb.id)).ok()?;
    let facts = Facts::of_file_object(file_object, fcb, &info);
    match class {
        class::BASIC => Some(basic(&facts)),
        class::STANDARD => Some(standard(&facts)),
        class::NETWORK_OPEN => Some(network_open(&facts)),
        _ => None,
    }
}

// ---- set ---------------------------------------------------------------------------------

/// `IRP_MJ_SET_INFORMATION`.
#[must_use]
pub fn common_set_information(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::not_yet();
    };
    let Some(fcb) = context.fcb() else {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    };
    if context.irp.is_null() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: a set-information IRP sent to our volume.
    let request = unsafe { decode(context, true) };
    let input = if request.buffer.is_null() || request.length == 0 {
        &[][..]
    } else {
        // SAFETY: the system buffer holds `length` bytes of the caller's input.
        unsafe { core::slice::from_raw_parts(request.buffer, request.length) }
    };
    let result = set(context, vcb, fcb, &request, input);
    Outcome::status(match result {
        Ok(()) => nt::STATUS_SUCCESS,
        Err(status) => status,
    })
}

fn need(input: &[u8], size: usize) -> Result<(), NTSTATUS> {
    if input.len() < size {
        Err(nt::STATUS_INFO_LENGTH_MISMATCH)
    } else {
        Ok(())
    }
}

fn read_u32(input: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&input[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_i64(input: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&input[at..at + 8]);
    i64::from_le_bytes(b)
}

fn set(
    context: &IrpContext,
    vcb: &Vcb,
    fcb: &Fcb,
    request: &Request,
    input: &[u8],
) -> Result<(), NTSTATUS> {
    if vcb.dismounted.get() {
        return Err(nt::STATUS_VOLUME_DISMOUNTED);
    }
    match request.class {
        class::BASIC => {
            need(input, size_of::<FILE_BASIC_INFORMATION>())?;
            set_basic(vcb, fcb, input)
        }
        class::DISPOSITION => {
            need(input, 1)?;
            let flags = if input[0] != 0 {
                disposition_flags::DELETE
            } else {
                0
            };
            set_disposition(context, vcb, fcb, flags)
        }
        class::DISPOSITION_EX => {
            need(input, 4)?;
            set_disposition(context, vcb, fcb, read_u32(input, 0))
        }
        class::RENAME | class::RENAME_EX => {
            need(input, offset_of!(nt::FILE_RENAME_INFORMATION, FileName))?;
            let flags = if request.class == class::RENAME {
                u32::from(input[0] != 0)
            } else {
                read_u32(input, 0)
            };
            set_rename(vcb, fcb, input, request.target, flags)
        }
        class::LINK | class::LINK_EX => Err(nt::STATUS_INVALID_DEVICE_REQUEST),
        class::POSITION => {
            need(input, 8)?;
            set_position(context, read_i64(input, 0))
        }
        class::END_OF_FILE => {
            need(input, 8)?;
            if request.advance_only {
                // The lazy writer's "advance" (Cc): fs-core keeps sizes itself.
                return Ok(());
            }
            let size =
                u64::try_from(read_i64(input, 0)).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
            set_size(context, vcb, fcb, SizeKind::EndOfFile, size)
        }
        class::ALLOCATION => {
            need(input, 8)?;
            let size =
                u64::try_from(read_i64(input, 0)).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
            set_size(context, vcb, fcb, SizeKind::Allocation, size)
        }
        class::VALID_DATA_LENGTH => {
            need(input, 8)?;
            let size =
                u64::try_from(read_i64(input, 0)).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
            set_size(context, vcb, fcb, SizeKind::ValidData, size)
        }
        _ => Err(nt::STATUS_INVALID_PARAMETER),
    }
}

/// A time field of FILE_BASIC_INFORMATION: 0 and -1/-2 (stop/resume automatic updates, not
/// modelled) leave the time alone.
fn time_field(v: i64) -> Option<NtTime> {
    (v > 0).then(|| NtTime(v.unsigned_abs()))
}

fn set_basic(vcb: &Vcb, fcb: &Fcb, input: &[u8]) -> Result<(), NTSTATUS> {
    type B = FILE_BASIC_INFORMATION;
    let times = SetTimes {
        creation: time_field(read_i64(input, offset_of!(B, CreationTime))),
        last_access: time_field(read_i64(input, offset_of!(B, LastAccessTime))),
        last_write: time_field(read_i64(input, offset_of!(B, LastWriteTime))),
        change: time_field(read_i64(input, offset_of!(B, ChangeTime))),
    };
    let attributes = read_u32(input, offset_of!(B, FileAttributes));
    if attributes & FILE_ATTRIBUTE_DIRECTORY != 0 && !fcb.is_directory {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    let mut changed = 0;
    if attributes != 0 {
        let new = FileAttributes::from_bits_truncate(attributes) & FileAttributes::SETTABLE;
        vcb.with_volume(|v| v.set_attributes(fcb.id, new))?;
        changed |= filter::ATTRIBUTES;
    }
    if times.creation.is_some() {
        changed |= filter::CREATION;
    }
    if times.last_access.is_some() {
        changed |= filter::LAST_ACCESS;
    }
    if times.last_write.is_some() {
        changed |= filter::LAST_WRITE;
    }
    if times.creation.is_some()
        || times.last_access.is_some()
        || times.last_write.is_some()
        || times.change.is_some()
    {
        vcb.with_volume(|v| v.set_times(fcb.id, times))?;
    }
    if changed != 0 {
        notify::report_fcb(vcb, fcb, changed, action::MODIFIED);
    }
    Ok(())
}

fn set_disposition(context: &IrpContext, vcb: &Vcb, fcb: &Fcb, flags: u32) -> Result<(), NTSTATUS> {
    // Host test builds can invert the order on purpose (the concurrency explorer's check).
    #[cfg(not(windows))]
    let _inverted = crate::resrcsup::inverted_order::enabled()
        // SAFETY: initialised with the FCB.
        .then(|| unsafe { ResourceGuard::exclusive(fcb.resource()) });
    let _vcb = vcb.acquire_exclusive();
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    let ccb = context.ccb();
    let delete = flags & disposition_flags::DELETE != 0;
    if delete {
        check_deletable(vcb, fcb, flags)?;
        section::check_delete(fcb)?;
    }
    fcb.delete_pending.set(delete);
    // SAFETY: the request's file object.
    unsafe { (*context.file_object).DeletePending = delete };
    if !ccb.is_null() {
        // SAFETY: the handle's CCB; only a field address is taken.
        let state = unsafe { (*ccb).state.get() };
        // SAFETY: the handle's CCB; its state is used under the main resource.
        let state = unsafe { &mut *state };
        state.posix_delete = delete && flags & disposition_flags::POSIX_SEMANTICS != 0;
    }
    Ok(())
}

fn check_deletable(vcb: &Vcb, fcb: &Fcb, flags: u32) -> Result<(), NTSTATUS> {
    if fcb.is_root() {
        return Err(nt::STATUS_CANNOT_DELETE);
    }
    let info = vcb.with_volume(|v| v.info(fcb.id))?;
    let ignore_ro = flags & disposition_flags::IGNORE_READONLY_ATTRIBUTE != 0;
    if info.attributes.contains(FileAttributes::READONLY) && !ignore_ro {
        return Err(nt::STATUS_CANNOT_DELETE);
    }
    if fcb.is_directory {
        let (entries, _) =
            vcb.with_volume(|v| v.read_dir(fcb.id, &fs_core::DirCursor::start(), 1))?;
        if !entries.is_empty() {
            return Err(nt::STATUS_DIRECTORY_NOT_EMPTY);
        }
    }
    Ok(())
}

fn set_position(context: &IrpContext, offset: i64) -> Result<(), NTSTATUS> {
    if offset < 0 {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: the request's file object.
    let flags = unsafe { (*context.file_object).Flags };
    if flags & nt::FO_NO_INTERMEDIATE_BUFFERING != 0 && offset % 512 != 0 {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: as above; the position is the file object's.
    unsafe { (*context.file_object).CurrentByteOffset = offset };
    Ok(())
}

/// The new name and directory of a rename: the target directory's file object and its last
/// component (what the I/O manager's target-directory open leaves), or a bare name in place.
fn rename_target(
    vcb: &Vcb,
    fcb: &Fcb,
    input: &[u8],
    target: *mut FILE_OBJECT,
) -> Result<(fs_core::FileId, Name), NTSTATUS> {
    if !target.is_null() {
        // SAFETY: the I/O manager's target file object, alive for the request.
        let dir = match unsafe { crate::fcb::fcb_of_file_object(target) } {
            // SAFETY: an FCB lives while its file object does.
            Some(dir) => unsafe { &*dir },
            None => return Err(nt::STATUS_INVALID_PARAMETER),
        };
        if !core::ptr::eq(dir.vcb, vcb) {
            return Err(nt::STATUS_NOT_SAME_DEVICE);
        }
        // An SL_OPEN_TARGET_DIRECTORY open leaves a directory here (NT-30).
        if !dir.is_directory {
            return Err(nt::STATUS_INVALID_PARAMETER);
        }
        // SAFETY: as above.
        let name = unsafe { (*target).FileName };
        if name.Buffer.is_null() || name.Length == 0 {
            return Err(nt::STATUS_OBJECT_NAME_INVALID);
        }
        // SAFETY: the name's `Length` bytes.
        let units =
            unsafe { core::slice::from_raw_parts(name.Buffer, usize::from(name.Length / 2)) };
        let name = Name::from_utf16(units).map_err(crate::status::name_status)?;
        return Ok((dir.id, name));
    }
    type R = nt::FILE_RENAME_INFORMATION;
    let length = read_u32(input, offset_of!(R, FileNameLength)) as usize;
    let at = offset_of!(R, FileName);
    if !length.is_multiple_of(2) || input.len() < at + length {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    let units: alloc::vec::Vec<u16> = input[at..at + length]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    if units.contains(&namesup::BACKSLASH) {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    let name = Name::from_utf16(&units).map_err(crate::status::name_status)?;
    Ok((fcb.parent(), name))
}

fn set_rename(
    vcb: &Vcb,
    fcb: &Fcb,
    input: &[u8],
    target: *mut FILE_OBJECT,
    flags: u32,
) -> Result<(), NTSTATUS> {
    let Some(old_name) = fcb.name().map_err(|e| crate::status::status_of(&e))? else {
        return Err(nt::STATUS_INVALID_PARAMETER);
    };
    let (dst, new_name) = rename_target(vcb, fcb, input, target)?;
    let guard = vcb.acquire_exclusive();
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    if fcb.delete_pending.get() {
        return Err(nt::STATUS_DELETE_PENDING);
    }
    let src = fcb.parent();
    let existing = vcb.with_volume(|v| match v.lookup(dst, &new_name) {
        Ok(id) => v.info(id).map(Some),
        Err(fs_core::Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    })?;
    let mut replaced = false;
    if let Some(t) = existing.filter(|t| t.id != fcb.id) {
        if flags & rename_flags::REPLACE_IF_EXISTS == 0 {
            return Err(nt::STATUS_OBJECT_NAME_COLLISION);
        }
        let ignore_ro = flags & rename_flags::IGNORE_READONLY_ATTRIBUTE != 0;
        if t.kind == FileKind::Directory
            || (t.attributes.contains(FileAttributes::READONLY) && !ignore_ro)
        {
            return Err(nt::STATUS_ACCESS_DENIED);
        }
        if let Some(open) = guard.find(t.id) {
            // SAFETY: in the table, alive while the VCB resource is held.
            let open = unsafe { &*open };
            section::check_rename_target(open)?;
            // An FCB of the target still exists (handles, or Mm's reference, NT-04): cowfat
            // does not replace a file something still refers to.
            return Err(nt::STATUS_ACCESS_DENIED);
        }
        replaced = true;
    }
    vcb.with_volume(|v| v.rename(src, &old_name, dst, &new_name, replaced))?;
    // SAFETY: VCB resource and main resource held exclusive.
    let linked = new_name
        .try_clone()
        .map_err(|e| crate::status::status_of(&e))?;
    // SAFETY: VCB resource and main resource held exclusive.
    unsafe { fcb.set_link(dst, linked) };
    let kind = notify::name_filter(fcb.is_directory);
    if replaced {
        notify::report(vcb, dst, &new_name, filter::FILE_NAME, action::REMOVED);
    }
    if src == dst {
        notify::report(vcb, src, &old_name, kind, action::RENAMED_OLD_NAME);
        notify::report(vcb, dst, &new_name, kind, action::RENAMED_NEW_NAME);
    } else {
        notify::report(vcb, src, &old_name, kind, action::REMOVED);
        notify::report(vcb, dst, &new_name, kind, action::ADDED);
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SizeKind {
    EndOfFile,
    Allocation,
    ValidData,
}

fn set_size(
    context: &IrpContext,
    vcb: &Vcb,
    fcb: &Fcb,
    kind: SizeKind,
    size: u64,
) -> Result<(), NTSTATUS> {
    if fcb.is_directory {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    let old = fcb.file_size();
    if kind == SizeKind::ValidData && (size < fcb.valid_data_length() || size > old) {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    let shrinking = kind != SizeKind::ValidData && size < old;
    if shrinking {
        section::check_truncate(fcb, size)?;
    }
    {
        // SAFETY: FCB resources, initialised with it; main before paging (NT-18).
        let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
        // SAFETY: as above.
        let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
        let info = vcb.with_volume(|v| {
            match kind {
                SizeKind::EndOfFile => v.set_file_size(fcb.id, size)?,
                SizeKind::Allocation => {
                    // NT: an allocation below end of file moves end of file down to it
                    // (fs-core would stop at the cluster boundary).
                    if size < old {
                        v.set_file_size(fcb.id, size)?;
                    }
                    v.set_allocation_size(fcb.id, size)?;
                }
                SizeKind::ValidData => v.set_valid_data_length(fcb.id, size)?,
            }
            v.info(fcb.id)
        })?;
        // The header's ValidDataLength runs ahead of fs-core's while cached writes wait for
        // the lazy writer (NT-14): keep it, cut to the new end of file.
        let vdl = match kind {
            SizeKind::ValidData => size,
            _ => fcb.valid_data_length().min(info.file_size),
        };
        fcb.set_sizes(info.allocation_size, info.file_size, vdl);
        // SAFETY: the request's file object of this stream.
        unsafe { update_cc_sizes(context.file_object, fcb) };
        // Pages past the new end must not come back when the file grows again. From the next
        // page boundary: a purge drops whole pages, and the page holding the new end may be
        // dirty below it (CcSetFileSizes above already zeroed its part past the end).
        if shrinking && has_data_section(fcb) {
            let from = i64::try_from(size.next_multiple_of(PAGE_SIZE)).unwrap_or(i64::MAX);
            if !purge(fcb, Some((from, 0)), 0) {
                fcb.purge_failures
                    .set(fcb.purge_failures.get().saturating_add(1));
            }
        }
    }
    if kind != SizeKind::ValidData && fcb.file_size() != old {
        notify::report_fcb(
            vcb,
            fcb,
            filter::SIZE | filter::LAST_WRITE,
            action::MODIFIED,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{
        IRP_MJ_QUERY_INFORMATION, IRP_MJ_SET_INFORMATION, STATUS_INVALID_DEVICE_REQUEST,
    };

    #[test]
    fn requests_off_a_volume_are_refused() {
        let outcome = common_query_information(&context(IRP_MJ_QUERY_INFORMATION, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
        let outcome = common_set_information(&context(IRP_MJ_SET_INFORMATION, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }

    #[test]
    fn time_fields_zero_and_minus_one_leave_times_alone() {
        assert!(time_field(0).is_none() && time_field(-1).is_none());
        assert_eq!(time_field(5), Some(NtTime(5)));
    }
}
