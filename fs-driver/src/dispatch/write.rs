//! IRP_MJ_WRITE: cached, non-cached and paging writes (fastfat's `write.c`; NT-14, NT-15,
//! NT-16, NT-17). fs-core puts every write into the overlay when the volume is sealed (NT-19,
//! NT-20).
//!
//! - Paging writes (lazy writer, mapped/modified page writer, flushes) take only the paging
//!   I/O resource shared, never extend FileSize and are trimmed at end of file (NT-14); fs-core
//!   advances the on-disk ValidDataLength as the data lands.
//! - Non-cached user writes flush and purge cached/mapped pages of the range with the paging
//!   I/O resource exclusive, through `CcCoherencyFlushAndPurgeCache`, which also tries to
//!   invalidate user-mapped views (NT-17); when it cannot (`STATUS_CACHE_PAGE_LOCKED`) the
//!   failure is counted and the write goes on (Windows promises no coherency there), unless
//!   purge-failure mode is on (NT-12): then it fails with `STATUS_PURGE_FAILED`.
//! - Cached writes reserve the overlay clusters the later paging write will need (NT-15),
//!   extend the file first if they pass end of file, then copy through Cc (NT-16).
//! - A synchronous file object's position moves past what a user write wrote, appends
//!   (`FILE_WRITE_TO_END_OF_FILE`) included (NT-28); the fast I/O write
//!   ([`fast_cached_write`]) is the cached write without an IRP and does the same.
//!
//! Writes to volume opens (DASD) and directories: `STATUS_INVALID_DEVICE_REQUEST`.

use fs_core::WriteMode;

use super::rwsup::{is_sector_aligned, IoRequest};
use super::{fsd_entry_point, IrpContext, Outcome};
use crate::cachesup::{
    coherency_flush_and_purge, ensure_cache_map, has_data_section, update_cc_sizes,
};
use crate::fcb::Fcb;
use crate::nt::{self, FILE_OBJECT, NTSTATUS};
use crate::resrcsup::ResourceGuard;
use crate::section;
use crate::seh;
use crate::vcb::Vcb;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_WRITE`.
    fsd_write => common_write
);

/// `IRP_MJ_WRITE`.
#[must_use]
pub fn common_write(context: &IrpContext) -> Outcome {
    let (Some(vcb), Some(fcb)) = (context.vcb(), context.fcb()) else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if fcb.is_directory {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    }
    if vcb.dismounted.get() {
        return Outcome::status(nt::STATUS_VOLUME_DISMOUNTED);
    }
    // SAFETY: a write IRP owned by us.
    let io = match unsafe { IoRequest::decode(context) } {
        Ok(io) => io,
        Err(status) => return Outcome::status(status),
    };
    if io.length == 0 {
        return Outcome::status(nt::STATUS_SUCCESS);
    }
    // Byte-range locks bind user I/O only, never paging I/O (issue 7, lockctrl).
    // SAFETY: this IRP, dispatched for `fcb`.
    if let Err(status) = unsafe { super::lockctrl::check_write(fcb, context.irp, io.paging) } {
        return Outcome::status(status);
    }
    let size_before = fcb.file_size();
    let result = if io.paging {
        paging_write(vcb, fcb, &io).map(|n| (0, n))
    } else if io.nocache {
        noncached_write(vcb, context.file_object, fcb, &io)
    } else {
        cached_write(
            vcb,
            context.file_object,
            fcb,
            (io.offset, io.length, io.buffer()),
        )
    };
    if result.is_ok() && !io.paging {
        // Reported to directory watchers at the handle's cleanup (NT-22, as fastfat does).
        // SAFETY: the request's file object.
        unsafe { crate::notify::note_write(context.file_object, fcb, size_before) };
    }
    match result {
        Ok((start, information)) => {
            io.advance_position(context.file_object, start, information);
            Outcome::Complete {
                status: nt::STATUS_SUCCESS,
                information,
            }
        }
        Err(status) => Outcome::status(status),
    }
}

/// NT-14: never extends FileSize; trimmed at end of file; paging I/O resource shared only.
fn paging_write(vcb: &Vcb, fcb: &Fcb, io: &IoRequest) -> Result<usize, NTSTATUS> {
    let offset = u64::try_from(io.offset).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    // SAFETY: initialised with the FCB.
    let _paging = unsafe { ResourceGuard::shared(fcb.paging_io_resource()) };
    if offset >= fcb.file_size() {
        return Ok(0);
    }
    let id = fcb.id;
    let data = io.slice();
    // A paging write may use the volume's reserved IRP when nothing can be allocated (NT-26).
    vcb.with_volume(|v| {
        super::rwsup::on_request_buffer(v, io.window(), true, |v| {
            v.write_mode(id, offset, data, WriteMode::Paging)
        })
    })
}

/// NT-17: flush + purge the range (paging I/O exclusive), then write the medium.
fn noncached_write(
    vcb: &Vcb,
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    io: &IoRequest,
) -> Result<(u64, usize), NTSTATUS> {
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    let offset = io.start(fcb.file_size())?;
    // SAFETY: our live volume device.
    let sector = u32::from(unsafe { (*vcb.vdo).SectorSize });
    if !is_sector_aligned(offset, io.length, sector) {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    let signed = i64::try_from(offset).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    if has_data_section(fcb) {
        flush_and_purge_range(fcb, signed, io.length)?;
    }
    let id = fcb.id;
    let data = io.slice();
    let info = vcb.with_volume(|v| {
        super::rwsup::on_request_buffer(v, io.window(), false, |v| v.write(id, offset, data))?;
        v.info(id)
    })?;
    {
        // SAFETY: initialised with the FCB; main is held (NT-18 order).
        let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
        let vdl = fcb.valid_data_length().max(info.valid_data_length);
        fcb.set_sizes(info.allocation_size, info.file_size, vdl);
    }
    // SAFETY: the request's file object of this FCB.
    unsafe { update_cc_sizes(file_object, fcb) };
    Ok((offset, io.length as usize))
}

/// NT-17's coherency step for a non-cached write. A purge kept back by a user mapping is
/// counted; in purge-failure mode (a data-scan section, NT-12) the write then fails with
/// `STATUS_PURGE_FAILED` before it touches anything.
fn flush_and_purge_range(fcb: &Fcb, offset: i64, length: u32) -> Result<(), NTSTATUS> {
    // SAFETY: initialised with the FCB; the caller holds main exclusive.
    let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
    if !coherency_flush_and_purge(fcb, offset, length)? {
        section::purge_failed(fcb)?;
    }
    Ok(())
}

/// NT-15 + NT-16: reserve, extend, copy through Cc, raise ValidDataLength. `request` is the
/// byte offset as sent (`FILE_WRITE_TO_END_OF_FILE` appends), the length and the caller's
/// buffer; the result is where the write started and what it wrote.
fn cached_write(
    vcb: &Vcb,
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    request: (i64, u32, *mut u8),
) -> Result<(u64, usize), NTSTATUS> {
    let (requested, length, buffer) = request;
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    let offset = write_start(fcb, requested)?;
    cached_write_locked(vcb, file_object, fcb, (offset, length, buffer))
}

/// Where a write of `requested` (as sent) starts: end of file for an append. The caller holds
/// main exclusive, so the size cannot move under it.
fn write_start(fcb: &Fcb, requested: i64) -> Result<u64, NTSTATUS> {
    if requested == nt::FILE_WRITE_TO_END_OF_FILE {
        return Ok(fcb.file_size());
    }
    u64::try_from(requested).map_err(|_| nt::STATUS_INVALID_PARAMETER)
}

/// [`cached_write`] at a resolved `offset`, main held exclusive by the caller.
fn cached_write_locked(
    vcb: &Vcb,
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    request: (u64, u32, *mut u8),
) -> Result<(u64, usize), NTSTATUS> {
    let (offset, length, buffer) = request;
    let end = offset
        .checked_add(u64::from(length))
        .ok_or(nt::STATUS_INVALID_PARAMETER)?;
    let signed = i64::try_from(offset).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    let id = fcb.id;
    vcb.with_volume(|v| v.reserve_overlay(id, offset, u64::from(length)))?;
    let size_before = fcb.file_size();
    if end > size_before {
        extend_file(vcb, file_object, fcb, end)?;
    }
    let copied = copy_through_cc(file_object, fcb, signed, length, buffer);
    if copied.is_err() && end > size_before {
        // Nothing half-done (NT-24, fastfat's write.c restores FileSize the same way): the
        // caller's bytes never arrived, so the file keeps its old size.
        let _ = truncate_to(vcb, file_object, fcb, size_before);
    }
    copied?;
    // SAFETY: initialised with the FCB; main is held (NT-18 order).
    let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
    fcb.extend_valid_data(end);
    Ok((offset, length as usize))
}

/// The copy of a cached write into the cache (the caller holds main exclusive).
fn copy_through_cc(
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    signed: i64,
    length: u32,
    buffer: *mut u8,
) -> Result<(), NTSTATUS> {
    // SAFETY: the request's file object of this FCB; main resource held.
    unsafe { ensure_cache_map(file_object, fcb) };
    let buffer = buffer.cast_const();
    // NT-24: Cc raises on a bad user buffer, an in-page error, no resources; the guard above
    // stays out of the SEH frame and drops on the way out.
    // SAFETY: a cached file object; the buffer holds `length` bytes; Wait = TRUE.
    let done = seh::kernel_call(|| unsafe {
        nt::CcCopyWrite(file_object, &signed, length, true, buffer.cast())
    })?;
    if !done {
        return Err(nt::STATUS_CANT_WAIT);
    }
    Ok(())
}

/// Gives the file back the size it had before a failed extending write.
fn truncate_to(
    vcb: &Vcb,
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    size: u64,
) -> Result<(), NTSTATUS> {
    {
        // SAFETY: initialised with the FCB; the caller holds main exclusive.
        let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
        let id = fcb.id;
        let info = vcb.with_volume(|v| {
            v.set_file_size(id, size)?;
            v.info(id)
        })?;
        let vdl = fcb.valid_data_length().min(info.file_size);
        fcb.set_sizes(info.allocation_size, info.file_size, vdl);
    }
    // SAFETY: the request's file object of this FCB.
    unsafe { update_cc_sizes(file_object, fcb) };
    Ok(())
}

/// Grows the file to `end` before a cached write past end of file (the new part reads as
/// zeros: it lies past ValidDataLength).
fn extend_file(
    vcb: &Vcb,
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    end: u64,
) -> Result<(), NTSTATUS> {
    {
        // SAFETY: initialised with the FCB; the caller holds main exclusive.
        let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
        let id = fcb.id;
        let info = vcb.with_volume(|v| {
            v.set_file_size(id, end)?;
            v.info(id)
        })?;
        fcb.set_sizes(
            info.allocation_size,
            info.file_size,
            fcb.valid_data_length(),
        );
    }
    // SAFETY: the request's file object of this FCB.
    unsafe { update_cc_sizes(file_object, fcb) };
    Ok(())
}

/// The fast I/O write (`FsRtlCopyWrite`'s contract, NT-28): the cached write of `length`
/// bytes from `buffer` at `offset` (`FILE_WRITE_TO_END_OF_FILE`: at end of file) with no IRP,
/// overlay reservation first as on the IRP path (NT-15). `None` declines: the I/O manager
/// then builds an IRP, which reports any failure with its exact status. A synchronous file
/// object's position moves past what was written.
///
/// # Safety
/// `file_object` is a live file object of our volume; `buffer` holds `length` bytes of the
/// caller's (fast I/O runs in the requester's context).
pub unsafe fn fast_cached_write(
    file_object: *mut FILE_OBJECT,
    offset: i64,
    length: u32,
    wait: bool,
    key: u32,
    buffer: *mut u8,
) -> Option<(NTSTATUS, usize)> {
    // SAFETY: the caller's contract.
    let super::rwsup::FastIoTarget {
        fcb,
        vcb,
        flags,
        cached,
        process,
    } = unsafe { super::rwsup::fast_io_target(file_object) }?;
    let appending = offset == nt::FILE_WRITE_TO_END_OF_FILE;
    if !wait || !cached || fcb.is_directory || vcb.dismounted.get() || (offset < 0 && !appending) {
        return None;
    }
    if length == 0 {
        return Some((nt::STATUS_SUCCESS, 0));
    }
    let size_before = fcb.file_size();
    let written = {
        // SAFETY: initialised with the FCB.
        let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
        // Under main, so an append's range is known when byte-range locks are checked.
        let start = write_start(fcb, offset).ok()?;
        let at = i64::try_from(start).ok()?;
        let span = i64::from(length);
        // SAFETY: the FCB's lock; the range, key and file object of this request.
        let allowed = unsafe {
            nt::FsRtlFastCheckLockForWrite(
                fcb.file_lock.get(),
                &at,
                &span,
                key,
                file_object.cast_const().cast(),
                process,
            )
        };
        if !allowed {
            // A conflict is the IRP path's to report.
            return None;
        }
        cached_write_locked(vcb, file_object, fcb, (start, length, buffer)).ok()?
    };
    // SAFETY: the request's file object (NT-22, as on the IRP path).
    unsafe { crate::notify::note_write(file_object, fcb, size_before) };
    if flags & nt::FO_SYNCHRONOUS_IO != 0 {
        // SAFETY: the caller's synchronous file object; not paging I/O.
        unsafe { super::rwsup::advance_file_position(file_object, written.0, written.1) };
    }
    Some((nt::STATUS_SUCCESS, written.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_WRITE;

    #[test]
    fn writes_without_a_volume_file_are_refused() {
        let outcome = common_write(&context(IRP_MJ_WRITE, 0, false));
        assert_eq!(outcome, Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST));
    }
}
