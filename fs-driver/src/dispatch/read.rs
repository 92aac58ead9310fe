//! IRP_MJ_READ: cached, non-cached and paging reads (fastfat's `read.c`; NT-13, NT-16, NT-17).
//!
//! - Paging reads (`IRP_PAGING_IO`, from Mm faults and Cc misses) take only the paging I/O
//!   resource shared, never fail the tail past end of file: what lies past ValidDataLength or
//!   FileSize reads as zeros (NT-13).
//! - Non-cached user reads flush cached/mapped dirty pages of the range first (NT-17).
//! - Cached reads set up the cache map on first use and copy through Cc (NT-16).
//! - A synchronous file object's position moves past what a user read returned (NT-28); the
//!   fast I/O read ([`fast_cached_read`]) does the same.
//!
//! Reads of volume opens (DASD) and of directories are not supported:
//! `STATUS_INVALID_DEVICE_REQUEST`.

use super::rwsup::{is_sector_aligned, IoRequest};
use super::{fsd_entry_point, IrpContext, Outcome};
use crate::cachesup::{ensure_cache_map, flush, has_data_section};
use crate::fcb::Fcb;
use crate::nt::{self, FILE_OBJECT, IO_STATUS_BLOCK, NTSTATUS};
use crate::resrcsup::ResourceGuard;
use crate::seh;
use crate::vcb::Vcb;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_READ`.
    fsd_read => common_read
);

/// `IRP_MJ_READ`.
#[must_use]
pub fn common_read(context: &IrpContext) -> Outcome {
    let (Some(vcb), Some(fcb)) = (context.vcb(), context.fcb()) else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if fcb.is_directory {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    }
    if vcb.dismounted.get() {
        return Outcome::status(nt::STATUS_VOLUME_DISMOUNTED);
    }
    // SAFETY: a read IRP owned by us.
    let mut io = match unsafe { IoRequest::decode(context) } {
        Ok(io) => io,
        Err(status) => return Outcome::status(status),
    };
    if io.length == 0 {
        return Outcome::status(nt::STATUS_SUCCESS);
    }
    // Byte-range locks bind user I/O only, never paging I/O (issue 7, lockctrl).
    // SAFETY: this IRP, dispatched for `fcb`.
    if let Err(status) = unsafe { super::lockctrl::check_read(fcb, context.irp, io.paging) } {
        return Outcome::status(status);
    }
    let result = if io.paging {
        paging_read(vcb, fcb, &mut io)
    } else if io.nocache {
        noncached_read(vcb, fcb, &mut io)
    } else {
        cached_read(context.file_object, fcb, &io)
    };
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

/// NT-13: paging I/O resource shared only; zeros past ValidDataLength and FileSize.
fn paging_read(vcb: &Vcb, fcb: &Fcb, io: &mut IoRequest) -> Result<(u64, usize), NTSTATUS> {
    let offset = u64::try_from(io.offset).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    // SAFETY: initialised with the FCB.
    let _paging = unsafe { ResourceGuard::shared(fcb.paging_io_resource()) };
    let id = fcb.id;
    let window = io.window();
    let buffer = io.slice_mut();
    let read = vcb.with_volume(|v| {
        super::rwsup::on_request_buffer(v, window, false, |v| v.read(id, offset, buffer))
    })?;
    buffer[read..].fill(0);
    Ok((offset, io.length as usize))
}

/// NT-17: flush the range's dirty pages, then read the medium.
fn noncached_read(vcb: &Vcb, fcb: &Fcb, io: &mut IoRequest) -> Result<(u64, usize), NTSTATUS> {
    let offset = u64::try_from(io.offset).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    // SAFETY: our live volume device.
    let sector = u32::from(unsafe { (*vcb.vdo).SectorSize });
    if !is_sector_aligned(offset, io.length, sector) {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::shared(fcb.resource()) };
    if has_data_section(fcb) {
        // SAFETY: initialised with the FCB; main is held (NT-18 order). Exclusive, as the
        // non-cached write's flush: a lazy or modified page write in flight holds it shared
        // and has already taken its page's bytes (the page looks clean to the flush), so the
        // read waits for it to reach the disk instead of reading what was there before
        // (issue 19, replay pct3:14019155715433123879 of nt_19_random_threads).
        let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
        let status = flush(fcb, Some((io.offset, io.length)));
        if status < 0 {
            return Err(status);
        }
    }
    if offset >= fcb.file_size() {
        return Err(nt::STATUS_END_OF_FILE);
    }
    let id = fcb.id;
    let window = io.window();
    let buffer = io.slice_mut();
    let read = vcb.with_volume(|v| {
        super::rwsup::on_request_buffer(v, window, false, |v| v.read(id, offset, buffer))
    })?;
    buffer[read..].fill(0);
    Ok((offset, read))
}

/// NT-16: through Cc, up to end of file.
fn cached_read(
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    io: &IoRequest,
) -> Result<(u64, usize), NTSTATUS> {
    let offset = u64::try_from(io.offset).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::shared(fcb.resource()) };
    let read = copy_from_cache(file_object, fcb, offset, io.length, io.buffer())?;
    Ok((offset, read))
}

/// The copy of a cached read out of the cache, up to end of file (the caller holds main at
/// least shared): the bytes copied, `STATUS_END_OF_FILE` at or past it.
fn copy_from_cache(
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    offset: u64,
    length: u32,
    buffer: *mut u8,
) -> Result<usize, NTSTATUS> {
    let size = fcb.file_size();
    if offset >= size {
        return Err(nt::STATUS_END_OF_FILE);
    }
    let signed = i64::try_from(offset).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    let length = u32::try_from((size - offset).min(u64::from(length))).unwrap_or(length);
    // SAFETY: the request's file object of this FCB; main resource held.
    unsafe { ensure_cache_map(file_object, fcb) };
    let mut iosb = IO_STATUS_BLOCK::default();
    // NT-24: Cc raises on a bad user buffer, an in-page error, no resources; the guard above
    // stays out of the SEH frame and drops on the way out.
    // SAFETY: a cached file object; the buffer holds `length` bytes; Wait = TRUE.
    let done = seh::kernel_call(|| unsafe {
        nt::CcCopyRead(file_object, &signed, length, true, buffer.cast(), &mut iosb)
    })?;
    if !done {
        return Err(nt::STATUS_CANT_WAIT);
    }
    // SAFETY: CcCopyRead sets the status.
    let status = unsafe { iosb.Anonymous.Status };
    if status < 0 {
        return Err(status);
    }
    Ok(length as usize)
}

/// The fast I/O read (`FsRtlCopyRead`'s contract, NT-28): a cached read of `length` bytes at
/// `offset` into `buffer` with no IRP. `None` declines (the I/O manager then builds an IRP,
/// which gives the exact status of anything unusual); `Some` is the status and byte count.
/// A synchronous file object's position moves past what was read.
///
/// # Safety
/// `file_object` is a live file object of our volume; `buffer` holds `length` bytes of the
/// caller's (the requester's context: fast I/O runs in it).
pub unsafe fn fast_cached_read(
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
    if !wait || !cached || fcb.is_directory || vcb.dismounted.get() || offset < 0 {
        return None;
    }
    let start = offset.unsigned_abs();
    if length == 0 {
        return Some((nt::STATUS_SUCCESS, 0));
    }
    // Byte-range locks: a conflict is the IRP path's to report.
    let span = i64::from(length);
    // SAFETY: the FCB's lock; the range, key and file object of this request.
    let allowed = unsafe {
        nt::FsRtlFastCheckLockForRead(
            fcb.file_lock.get(),
            &offset,
            &span,
            key,
            file_object,
            process,
        )
    };
    if !allowed {
        return None;
    }
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::shared(fcb.resource()) };
    match copy_from_cache(file_object, fcb, start, length, buffer) {
        Ok(read) => {
            if flags & nt::FO_SYNCHRONOUS_IO != 0 {
                // SAFETY: the caller's synchronous file object; not paging I/O.
                unsafe { super::rwsup::advance_file_position(file_object, start, read) };
            }
            // SAFETY: the caller's file object; FsRtlCopyRead marks it the same way.
            unsafe { (*file_object).Flags |= nt::FO_FILE_FAST_IO_READ };
            Some((nt::STATUS_SUCCESS, read))
        }
        Err(nt::STATUS_END_OF_FILE) => Some((nt::STATUS_END_OF_FILE, 0)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_READ;

    #[test]
    fn reads_without_a_volume_file_are_refused() {
        let outcome = common_read(&context(IRP_MJ_READ, 0, false));
        assert_eq!(outcome, Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST));
    }
}
