//! The fast I/O dispatch table (fastfat's `FatFastIoDispatch`).
//!
//! Fast I/O is an optional shortcut: a routine that returns FALSE sends the caller down the
//! IRP path, which is always correct. The query (basic, standard, network open) and
//! byte-range lock routines are real (issue 7: fileinfo's builders, FsRtl's file lock
//! package); so are the cached read and write (`FsRtlCopyRead`/`FsRtlCopyWrite`'s contract,
//! the file position included: NT-28), written in `dispatch::read`/`dispatch::write` next to
//! the IRP paths they shortcut. The MDL paths still decline. The acquire/release entries of
//! the table stay empty on purpose:
//! the FsRtl filter callbacks in `resrcsup` (registered in DriverEntry) take their place.

use core::ffi::c_void;

use crate::dispatch::fileinfo;
use crate::nt::{self, IRP};
use crate::nt::{
    DEVICE_OBJECT, FAST_IO_DISPATCH, FILE_BASIC_INFORMATION, FILE_NETWORK_OPEN_INFORMATION,
    FILE_OBJECT, FILE_STANDARD_INFORMATION, IO_STATUS_BLOCK, MDL, PEPROCESS,
};
use crate::resrcsup::size_of_u32;
use crate::wdk_inline::{fsrtl_enter_file_system, fsrtl_exit_file_system};
use core::ptr;

/// The table `DriverObject->FastIoDispatch` points at.
pub static FAST_IO_DISPATCH: FAST_IO_DISPATCH = FAST_IO_DISPATCH {
    SizeOfFastIoDispatch: size_of_u32::<FAST_IO_DISPATCH>(),
    FastIoCheckIfPossible: Some(fast_io_check_if_possible),
    FastIoRead: Some(fast_io_read),
    FastIoWrite: Some(fast_io_write),
    FastIoQueryBasicInfo: Some(fast_query_basic_info),
    FastIoQueryStandardInfo: Some(fast_query_std_info),
    FastIoLock: Some(fast_lock),
    FastIoUnlockSingle: Some(fast_unlock_single),
    FastIoUnlockAll: Some(fast_unlock_all),
    FastIoUnlockAllByKey: Some(fast_unlock_all_by_key),
    FastIoDeviceControl: None,
    AcquireFileForNtCreateSection: None,
    ReleaseFileForNtCreateSection: None,
    FastIoDetachDevice: None,
    FastIoQueryNetworkOpenInfo: Some(fast_query_network_open_info),
    AcquireForModWrite: None,
    MdlRead: Some(fast_mdl_read),
    MdlReadComplete: None,
    PrepareMdlWrite: Some(fast_prepare_mdl_write),
    MdlWriteComplete: None,
    FastIoReadCompressed: None,
    FastIoWriteCompressed: None,
    MdlReadCompleteCompressed: None,
    MdlWriteCompleteCompressed: None,
    FastIoQueryOpen: None,
    ReleaseForModWrite: None,
    AcquireForCcFlush: None,
    ReleaseForCcFlush: None,
};

/// Is fast I/O possible on this file right now? Not yet: the IRP path decides (read/write work).
unsafe extern "system" fn fast_io_check_if_possible(
    _file_object: *const FILE_OBJECT,
    _file_offset: *const i64,
    _length: u32,
    _wait: bool,
    _lock_key: u32,
    _check_for_read: bool,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// Cached read without an IRP (`FsRtlCopyRead`'s contract; NT-28: a synchronous file
/// object's position moves past what was read). FALSE sends the caller down the IRP path.
unsafe extern "system" fn fast_io_read(
    file_object: *const FILE_OBJECT,
    file_offset: *const i64,
    length: u32,
    wait: bool,
    lock_key: u32,
    buffer: *mut c_void,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: the I/O manager's fast I/O contract: live file object, offset, buffer.
    let offset = unsafe { *file_offset };
    let done = fast_io_frame(|| {
        // SAFETY: as above; the buffer holds `length` bytes.
        unsafe {
            crate::dispatch::read::fast_cached_read(
                file_object.cast_mut(),
                offset,
                length,
                wait,
                lock_key,
                buffer.cast(),
            )
        }
    });
    finish_transfer(done, io_status)
}

/// Cached write without an IRP: the IRP path's cached write (overlay reservation first,
/// NT-15), and the file position as for a read (NT-28).
unsafe extern "system" fn fast_io_write(
    file_object: *const FILE_OBJECT,
    file_offset: *const i64,
    length: u32,
    wait: bool,
    lock_key: u32,
    buffer: *const c_void,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: the I/O manager's fast I/O contract: live file object, offset, buffer.
    let offset = unsafe { *file_offset };
    let done = fast_io_frame(|| {
        // SAFETY: as above; the buffer holds `length` bytes and is only read.
        unsafe {
            crate::dispatch::write::fast_cached_write(
                file_object.cast_mut(),
                offset,
                length,
                wait,
                lock_key,
                buffer.cast_mut().cast(),
            )
        }
    });
    finish_transfer(done, io_status)
}

/// Writes a fast read's or write's result into the caller's status block (TRUE) or declines.
fn finish_transfer(done: Option<(nt::NTSTATUS, usize)>, io_status: *mut IO_STATUS_BLOCK) -> bool {
    let Some((status, information)) = done else {
        return false;
    };
    // SAFETY: the I/O manager's status block for this fast I/O call.
    let block = unsafe { &mut *io_status };
    block.Anonymous.Status = status;
    block.Information = information;
    true
}

/// `FileBasicInformation` without an IRP (fileinfo's builder, so both paths agree).
unsafe extern "system" fn fast_query_basic_info(
    file_object: *const FILE_OBJECT,
    wait: bool,
    buffer: *mut FILE_BASIC_INFORMATION,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: the I/O manager's fast I/O contract: live file object, buffer and status.
    unsafe {
        fast_query(
            file_object,
            fileinfo::class::BASIC,
            wait,
            buffer.cast(),
            io_status,
        )
    }
}

/// `FileStandardInformation` without an IRP.
unsafe extern "system" fn fast_query_std_info(
    file_object: *const FILE_OBJECT,
    wait: bool,
    buffer: *mut FILE_STANDARD_INFORMATION,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: as in `fast_query_basic_info`.
    unsafe {
        fast_query(
            file_object,
            fileinfo::class::STANDARD,
            wait,
            buffer.cast(),
            io_status,
        )
    }
}

/// `FileNetworkOpenInformation` without an IRP.
unsafe extern "system" fn fast_query_network_open_info(
    file_object: *const FILE_OBJECT,
    wait: bool,
    buffer: *mut FILE_NETWORK_OPEN_INFORMATION,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: as in `fast_query_basic_info`.
    unsafe {
        fast_query(
            file_object,
            fileinfo::class::NETWORK_OPEN,
            wait,
            buffer.cast(),
            io_status,
        )
    }
}

/// The fast I/O frame: FsRtlEnterFileSystem and the fast I/O top-level marker around `f`.
fn fast_io_frame<R>(f: impl FnOnce() -> R) -> R {
    fsrtl_enter_file_system();
    // SAFETY: no preconditions.
    let top = unsafe { nt::IoGetTopLevelIrp() }.is_null();
    if top {
        let marker = ptr::without_provenance::<IRP>(nt::top_level::FSRTL_FAST_IO_TOP_LEVEL_IRP);
        // SAFETY: the documented marker value for fast I/O.
        unsafe { nt::IoSetTopLevelIrp(marker) };
    }
    let result = f();
    if top {
        // SAFETY: clearing the marker set above.
        unsafe { nt::IoSetTopLevelIrp(ptr::null()) };
    }
    fsrtl_exit_file_system();
    result
}

/// Copies a fast query's reply into the caller's fixed-size structure.
///
/// # Safety
/// `buffer` holds the class's structure; `io_status` is writable.
unsafe fn fast_query(
    file_object: *const FILE_OBJECT,
    class: i32,
    wait: bool,
    buffer: *mut u8,
    io_status: *mut IO_STATUS_BLOCK,
) -> bool {
    // SAFETY: the caller's live file object.
    let Some(reply) = fast_io_frame(|| unsafe { fileinfo::fast_query(file_object, class, wait) })
    else {
        return false;
    };
    // No memory for the reply: declined, the IRP path answers.
    if reply.failed() {
        return false;
    }
    // SAFETY: the caller's buffer holds the whole structure `reply` is.
    unsafe { ptr::copy_nonoverlapping(reply.bytes.as_ptr(), buffer, reply.bytes.len()) };
    // SAFETY: the caller's status block.
    let status = unsafe { &mut *io_status };
    status.Anonymous.Status = nt::STATUS_SUCCESS;
    status.Information = reply.bytes.len();
    true
}

/// The FCB lock of a fast I/O lock request's file object (None: not a file of ours).
///
/// # Safety
/// `file_object` is a live file object sent to our volume.
unsafe fn file_lock_of(file_object: *const FILE_OBJECT) -> Option<*mut nt::FILE_LOCK> {
    // SAFETY: the caller's contract.
    let fcb = unsafe { crate::fcb::fcb_of_file_object(file_object) }?;
    // SAFETY: an FCB lives while its file object does.
    let fcb = unsafe { &*fcb };
    (!fcb.is_directory).then(|| fcb.file_lock.get())
}

fn set_status(io_status: *mut IO_STATUS_BLOCK, status: nt::NTSTATUS) {
    // SAFETY: the I/O manager's status block for this fast I/O call.
    let block = unsafe { &mut *io_status };
    block.Anonymous.Status = status;
    block.Information = 0;
}

/// Byte-range lock without an IRP (`FsRtlFastLock`, a macro over `FsRtlPrivateLock`): FALSE
/// when FsRtl cannot decide without waiting, and the IRP path then takes it.
unsafe extern "system" fn fast_lock(
    file_object: *const FILE_OBJECT,
    file_offset: *const i64,
    length: *const i64,
    process: PEPROCESS,
    key: u32,
    fail_immediately: bool,
    exclusive: bool,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: the fast I/O contract.
    let Some(lock) = (unsafe { file_lock_of(file_object) }) else {
        return false;
    };
    fast_io_frame(|| {
        // SAFETY: the FCB's lock; the caller's range, process and status block; no IRP.
        unsafe {
            nt::FsRtlPrivateLock(
                lock,
                file_object,
                file_offset,
                length,
                process,
                key,
                fail_immediately,
                exclusive,
                io_status,
                ptr::null(),
                ptr::null(),
                false,
            )
        }
    })
}

/// Byte-range unlock of one range.
unsafe extern "system" fn fast_unlock_single(
    file_object: *const FILE_OBJECT,
    file_offset: *const i64,
    length: *const i64,
    process: PEPROCESS,
    key: u32,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: the fast I/O contract.
    let Some(lock) = (unsafe { file_lock_of(file_object) }) else {
        return false;
    };
    let status = fast_io_frame(|| {
        // SAFETY: the FCB's lock and the caller's range.
        unsafe {
            nt::FsRtlFastUnlockSingle(
                lock,
                file_object,
                file_offset,
                length,
                process,
                key,
                ptr::null(),
                false,
            )
        }
    });
    set_status(io_status, status);
    true
}

/// Byte-range unlock of a process's locks on this file object.
unsafe extern "system" fn fast_unlock_all(
    file_object: *const FILE_OBJECT,
    process: PEPROCESS,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: the fast I/O contract.
    let Some(lock) = (unsafe { file_lock_of(file_object) }) else {
        return false;
    };
    // SAFETY: the FCB's lock.
    let status = fast_io_frame(|| unsafe {
        nt::FsRtlFastUnlockAll(lock, file_object, process, ptr::null())
    });
    set_status(io_status, status);
    true
}

/// Byte-range unlock by key.
unsafe extern "system" fn fast_unlock_all_by_key(
    file_object: *const FILE_OBJECT,
    process: *const c_void,
    key: u32,
    io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    // SAFETY: the fast I/O contract.
    let Some(lock) = (unsafe { file_lock_of(file_object) }) else {
        return false;
    };
    let process = process as PEPROCESS;
    // SAFETY: the FCB's lock.
    let status = fast_io_frame(|| unsafe {
        nt::FsRtlFastUnlockAllByKey(lock, file_object, process, key, ptr::null())
    });
    set_status(io_status, status);
    true
}

/// MDL read from the cache (read work: `FsRtlMdlReadDev`); its completion is left to the
/// I/O manager's default (`IRP_MN_COMPLETE_MDL`) while this declines.
unsafe extern "system" fn fast_mdl_read(
    _file_object: *const FILE_OBJECT,
    _file_offset: *const i64,
    _length: u32,
    _lock_key: u32,
    _mdl_chain: *mut *mut MDL,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// MDL write into the cache (write work: `FsRtlPrepareMdlWriteDev`).
unsafe extern "system" fn fast_prepare_mdl_write(
    _file_object: *const FILE_OBJECT,
    _file_offset: *const i64,
    _length: u32,
    _lock_key: u32,
    _mdl_chain: *mut *mut MDL,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}
