//! The kernel boundary: every ntoskrnl type, constant and routine fs-driver uses, in one place.
//!
//! Routines come from `windows-sys` (`Wdk_*` features). On Windows targets those declarations
//! import from `ntoskrnl.exe` by raw-dylib, so this list *is* the driver's import table (the
//! image check in `tests/driver-image` compares it with ntoskrnl's real exports). On the host
//! they are plain `extern "system"` declarations, which `ntsim` defines with `#[no_mangle]`
//! so the same code runs in user mode. WDK inline helpers and macros are not exports and are
//! never declared here: they are written out in [`crate::wdk_inline`].
//!
//! Constants that `windows-sys` does not carry are defined below with their header of origin.

pub use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_DISPATCH, DRIVER_OBJECT, ERESOURCE, FAST_IO_DISPATCH, FAST_MUTEX,
    FILE_OBJECT, IO_STACK_LOCATION, IRP, MDL, PEPROCESS, SECTION_OBJECT_POINTERS,
};
pub use windows_sys::Wdk::Storage::FileSystem::{
    FsRtlRegisterFileSystemFilterCallbacks, IoRegisterFileSystem, IoUnregisterFileSystem,
    SyncTypeCreateSection, CACHE_MANAGER_CALLBACKS, FILE_BASIC_INFORMATION,
    FILE_NETWORK_OPEN_INFORMATION, FILE_STANDARD_INFORMATION, FSRTL_ADVANCED_FCB_HEADER,
    FSRTL_COMMON_FCB_HEADER, FSRTL_FCB_HEADER_V2, FSRTL_FLAG2_SUPPORTS_FILTER_CONTEXTS,
    FSRTL_FLAG_ADVANCED_HEADER, FS_FILTER_CALLBACKS, FS_FILTER_CALLBACK_DATA,
    FS_FILTER_SECTION_SYNC_TYPE,
};
pub use windows_sys::Wdk::System::SystemServices::{
    ExAcquireResourceExclusiveLite, ExAcquireResourceSharedLite, ExReleaseResourceLite,
    IoCreateDevice, IoDeleteDevice, IoGetTopLevelIrp, IoSetTopLevelIrp, IofCompleteRequest,
    KeEnterCriticalRegion, KeInitializeEvent, KeLeaveCriticalRegion, FM_LOCK_BIT, IRP_MJ_CLEANUP,
    IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_DIRECTORY_CONTROL,
    IRP_MJ_FILE_SYSTEM_CONTROL, IRP_MJ_FLUSH_BUFFERS, IRP_MJ_LOCK_CONTROL, IRP_MJ_PNP,
    IRP_MJ_QUERY_EA, IRP_MJ_QUERY_INFORMATION, IRP_MJ_QUERY_SECURITY,
    IRP_MJ_QUERY_VOLUME_INFORMATION, IRP_MJ_READ, IRP_MJ_SET_EA, IRP_MJ_SET_INFORMATION,
    IRP_MJ_SET_SECURITY, IRP_MJ_SET_VOLUME_INFORMATION, IRP_MJ_SHUTDOWN, IRP_MJ_WRITE,
    IRP_MN_MOUNT_VOLUME, SHARE_ACCESS, SL_PENDING_RETURNED,
};
pub use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_CANT_WAIT, STATUS_FILE_LOCKED_WITH_ONLY_READERS,
    STATUS_FILE_LOCKED_WITH_WRITERS, STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER,
    STATUS_OBJECT_NAME_INVALID, STATUS_PENDING, STATUS_SUCCESS, STATUS_UNRECOGNIZED_VOLUME,
    UNICODE_STRING,
};
pub use windows_sys::Win32::System::Kernel::{SynchronizationEvent, LIST_ENTRY};
pub use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

/// `IoCreateDevice` characteristics: apply the device's security to opens of any name below it.
pub use windows_sys::Wdk::System::SystemServices::FILE_DEVICE_SECURE_OPEN;

/// `IoCreateDevice` device type of a disk file system's control device (devioctl.h).
pub const FILE_DEVICE_DISK_FILE_SYSTEM: u32 = 0x0000_0008;
/// `IO_STATUS_BLOCK.Information` after an open of an existing object (wdm.h).
pub const FILE_OPENED: usize = 0x0000_0001;
/// `DEVICE_OBJECT.Flags`: still being initialised; cleared once DriverEntry is done with it.
pub const DO_DEVICE_INITIALIZING: u32 = 0x0000_0080;
/// `IofCompleteRequest` priority boost: none (wdm.h).
pub const IO_NO_INCREMENT: i8 = 0;
/// `IofCompleteRequest` priority boost after disk I/O (wdm.h).
pub const IO_DISK_INCREMENT: i8 = 1;

/// `ExAllocatePool2` flags (wdm.h, Windows 10 version 2004 and later).
pub mod pool_flags {
    /// Do not zero the allocation (ExAllocatePool2 zeroes by default).
    pub const POOL_FLAG_UNINITIALIZED: u64 = 0x0000_0000_0000_0002;
    /// Non-paged, non-executable pool.
    pub const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;
    /// Paged pool.
    pub const POOL_FLAG_PAGED: u64 = 0x0000_0000_0000_0100;
}

/// `IoSetTopLevelIrp` markers for requests that do not come with an IRP of their own
/// (ntifs.h): the thread is inside a Cc callback, the modified page writer, or fast I/O.
pub mod top_level {
    /// Posted to the file system's own worker thread.
    pub const FSRTL_FSP_TOP_LEVEL_IRP: usize = 0x01;
    /// Inside the lazy writer or read ahead (Cc callbacks).
    pub const FSRTL_CACHE_TOP_LEVEL_IRP: usize = 0x02;
    /// Inside the modified (mapped) page writer.
    pub const FSRTL_MOD_WRITE_TOP_LEVEL_IRP: usize = 0x03;
    /// Inside a fast I/O routine.
    pub const FSRTL_FAST_IO_TOP_LEVEL_IRP: usize = 0x04;
    /// Largest marker value; anything above is a real IRP pointer.
    pub const FSRTL_MAX_TOP_LEVEL_IRP_FLAG: usize = 0xFFFF;
}

/// Bug check, used by the root package's panic handler.
pub use windows_sys::Wdk::System::SystemServices::KeBugCheckEx;
/// Kernel pool allocation and free, re-exported for the root package's global allocator.
pub use windows_sys::Wdk::System::SystemServices::{ExAllocatePool2, ExFreePoolWithTag};
