//! The fast I/O dispatch table (fastfat's `FatFastIoDispatch`).
//!
//! Fast I/O is an optional shortcut: a routine that returns FALSE sends the caller down the
//! IRP path, which is always correct. Until the read/write, fileinfo and lockctrl work fills
//! them in (with `FsRtlCopyRead`/`FsRtlCopyWrite`-style cached paths that honour NT-13..17),
//! every routine here declines. The acquire/release entries of the table stay empty on purpose:
//! the FsRtl filter callbacks in `resrcsup` (registered in DriverEntry) take their place.

use core::ffi::c_void;

use crate::nt::{
    DEVICE_OBJECT, FAST_IO_DISPATCH, FILE_BASIC_INFORMATION, FILE_NETWORK_OPEN_INFORMATION,
    FILE_OBJECT, FILE_STANDARD_INFORMATION, IO_STATUS_BLOCK, MDL, PEPROCESS,
};
use crate::resrcsup::size_of_u32;

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

/// Cached read shortcut (read work: `FsRtlCopyRead` semantics).
unsafe extern "system" fn fast_io_read(
    _file_object: *const FILE_OBJECT,
    _file_offset: *const i64,
    _length: u32,
    _wait: bool,
    _lock_key: u32,
    _buffer: *mut c_void,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// Cached write shortcut (write work: must reserve overlay space first, NT-15).
unsafe extern "system" fn fast_io_write(
    _file_object: *const FILE_OBJECT,
    _file_offset: *const i64,
    _length: u32,
    _wait: bool,
    _lock_key: u32,
    _buffer: *const c_void,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// `FileBasicInformation` without an IRP (fileinfo work).
unsafe extern "system" fn fast_query_basic_info(
    _file_object: *const FILE_OBJECT,
    _wait: bool,
    _buffer: *mut FILE_BASIC_INFORMATION,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// `FileStandardInformation` without an IRP (fileinfo work).
unsafe extern "system" fn fast_query_std_info(
    _file_object: *const FILE_OBJECT,
    _wait: bool,
    _buffer: *mut FILE_STANDARD_INFORMATION,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// `FileNetworkOpenInformation` without an IRP (fileinfo work).
unsafe extern "system" fn fast_query_network_open_info(
    _file_object: *const FILE_OBJECT,
    _wait: bool,
    _buffer: *mut FILE_NETWORK_OPEN_INFORMATION,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// Byte-range lock (lockctrl work: `FsRtlFastLock` on the FCB's FILE_LOCK).
unsafe extern "system" fn fast_lock(
    _file_object: *const FILE_OBJECT,
    _file_offset: *const i64,
    _length: *const i64,
    _process: PEPROCESS,
    _key: u32,
    _fail_immediately: bool,
    _exclusive: bool,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// Byte-range unlock of one range (lockctrl work).
unsafe extern "system" fn fast_unlock_single(
    _file_object: *const FILE_OBJECT,
    _file_offset: *const i64,
    _length: *const i64,
    _process: PEPROCESS,
    _key: u32,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// Byte-range unlock of a process's locks (lockctrl work).
unsafe extern "system" fn fast_unlock_all(
    _file_object: *const FILE_OBJECT,
    _process: PEPROCESS,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
}

/// Byte-range unlock by key (lockctrl work).
unsafe extern "system" fn fast_unlock_all_by_key(
    _file_object: *const FILE_OBJECT,
    _process: *const c_void,
    _key: u32,
    _io_status: *mut IO_STATUS_BLOCK,
    _device_object: *const DEVICE_OBJECT,
) -> bool {
    false
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
