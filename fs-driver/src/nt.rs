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
pub use windows_sys::Wdk::Foundation::{IO_SECURITY_CONTEXT, KEVENT, VPB};
pub use windows_sys::Wdk::Storage::FileSystem::{
    CcCoherencyFlushAndPurgeCache, CcFlushCache, CcInitializeCacheMap, CcPurgeCacheSection,
    CcSetFileSizes, CcUninitializeCacheMap, FsRtlRegisterFileSystemFilterCallbacks,
    IoRegisterFileSystem, IoUnregisterFileSystem, MmCanFileBeTruncated,
    MmDoesFileHaveUserWritableReferences, MmFlushForDelete, MmFlushForWrite, MmFlushImageSection,
    SyncTypeCreateSection, CACHE_MANAGER_CALLBACKS, CC_FILE_SIZES, FILE_BASIC_INFORMATION,
    FILE_NETWORK_OPEN_INFORMATION, FILE_STANDARD_INFORMATION, FSRTL_ADVANCED_FCB_HEADER,
    FSRTL_COMMON_FCB_HEADER, FSRTL_FCB_HEADER_V2, FSRTL_FLAG2_SUPPORTS_FILTER_CONTEXTS,
    FSRTL_FLAG_ADVANCED_HEADER, FS_FILTER_CALLBACKS, FS_FILTER_CALLBACK_DATA,
    FS_FILTER_SECTION_SYNC_TYPE, MMFLUSH_TYPE,
};
pub use windows_sys::Wdk::System::SystemServices::{
    ExAcquireResourceExclusiveLite, ExAcquireResourceSharedLite, ExDeleteResourceLite,
    ExInitializeResourceLite, ExReleaseResourceLite, Executive, IoBuildDeviceIoControlRequest,
    IoBuildSynchronousFsdRequest, IoCheckShareAccess, IoCreateDevice, IoDeleteDevice,
    IoGetTopLevelIrp, IoRemoveShareAccess, IoSetTopLevelIrp, IofCallDriver, IofCompleteRequest,
    KeEnterCriticalRegion, KeInitializeEvent, KeLeaveCriticalRegion, KeQuerySystemTimePrecise,
    KeWaitForSingleObject, KernelMode, MmCached, MmMapLockedPagesSpecifyCache, NormalPagePriority,
    FM_LOCK_BIT, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL,
    IRP_MJ_DIRECTORY_CONTROL, IRP_MJ_FILE_SYSTEM_CONTROL, IRP_MJ_FLUSH_BUFFERS,
    IRP_MJ_LOCK_CONTROL, IRP_MJ_PNP, IRP_MJ_QUERY_EA, IRP_MJ_QUERY_INFORMATION,
    IRP_MJ_QUERY_SECURITY, IRP_MJ_QUERY_VOLUME_INFORMATION, IRP_MJ_READ, IRP_MJ_SET_EA,
    IRP_MJ_SET_INFORMATION, IRP_MJ_SET_SECURITY, IRP_MJ_SET_VOLUME_INFORMATION, IRP_MJ_SHUTDOWN,
    IRP_MJ_WRITE, IRP_MN_MOUNT_VOLUME, IRP_MN_USER_FS_REQUEST, IRP_MN_VERIFY_VOLUME, IRP_NOCACHE,
    IRP_PAGING_IO, IRP_SYNCHRONOUS_PAGING_IO, SHARE_ACCESS, SL_PENDING_RETURNED, VPB_MOUNTED,
};
/// The debugger anchors (`crate::debugger`): the VCB chain's spin lock and the trace ring's
/// thread ids.
pub use windows_sys::Wdk::System::SystemServices::{
    KeAcquireInStackQueuedSpinLock, KeReleaseInStackQueuedSpinLock, PsGetCurrentThreadId,
    KLOCK_QUEUE_HANDLE,
};
pub use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_BUFFER_TOO_SMALL, STATUS_CACHE_PAGE_LOCKED,
    STATUS_CANNOT_DELETE, STATUS_CANT_WAIT, STATUS_DELETE_PENDING, STATUS_DIRECTORY_NOT_EMPTY,
    STATUS_DISK_CORRUPT_ERROR, STATUS_DISK_FULL, STATUS_END_OF_FILE, STATUS_FILE_IS_A_DIRECTORY,
    STATUS_FILE_LOCKED_WITH_ONLY_READERS, STATUS_FILE_LOCKED_WITH_WRITERS, STATUS_FILE_TOO_LARGE,
    STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER,
    STATUS_IO_DEVICE_ERROR, STATUS_MEDIA_WRITE_PROTECTED, STATUS_NOT_A_DIRECTORY,
    STATUS_NOT_IMPLEMENTED, STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_INVALID,
    STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND, STATUS_PENDING,
    STATUS_PURGE_FAILED, STATUS_SHARING_VIOLATION, STATUS_SUCCESS, STATUS_UNRECOGNIZED_VOLUME,
    STATUS_UNSUCCESSFUL, STATUS_USER_MAPPED_FILE, STATUS_VOLUME_DISMOUNTED, STATUS_WRONG_VOLUME,
    UNICODE_STRING,
};
pub use windows_sys::Win32::System::Kernel::{NotificationEvent, SynchronizationEvent, LIST_ENTRY};
pub use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

/// `FILE_INFORMATION_CLASS` and `FS_INFORMATION_CLASS` values, from windows-sys.
pub use windows_sys::Wdk::Storage::FileSystem::{
    FileAllInformation, FileAllocationInformation, FileAttributeTagInformation,
    FileBasicInformation, FileCompressionInformation, FileDispositionInformation,
    FileDispositionInformationEx, FileEaInformation, FileEndOfFileInformation,
    FileFsAttributeInformation, FileFsDeviceInformation, FileFsFullSizeInformation,
    FileFsLabelInformation, FileFsSectorSizeInformation, FileFsSizeInformation,
    FileFsVolumeInformation, FileInternalInformation, FileLinkInformation, FileLinkInformationEx,
    FileNameInformation, FileNetworkOpenInformation, FileNormalizedNameInformation,
    FilePositionInformation, FileRenameInformation, FileRenameInformationEx,
    FileStandardInformation, FileStreamInformation, FileValidDataLengthInformation,
};

/// `IoCreateDevice` characteristics: apply the device's security to opens of any name below it.
pub use windows_sys::Wdk::System::SystemServices::FILE_DEVICE_SECURE_OPEN;

/// `IoCreateDevice` device type of a disk file system's control device (devioctl.h).
pub const FILE_DEVICE_DISK_FILE_SYSTEM: u32 = 0x0000_0008;
/// `IO_STATUS_BLOCK.Information` of a create (wdm.h).
pub const FILE_SUPERSEDED: usize = 0x0000_0000;
/// `IO_STATUS_BLOCK.Information` after an open of an existing object (wdm.h).
pub const FILE_OPENED: usize = 0x0000_0001;
/// `IO_STATUS_BLOCK.Information`: the file was created (wdm.h).
pub const FILE_CREATED: usize = 0x0000_0002;
/// `IO_STATUS_BLOCK.Information`: an existing file was overwritten (wdm.h).
pub const FILE_OVERWRITTEN: usize = 0x0000_0003;

/// Create dispositions: the high byte of `Parameters.Create.Options` (wdm.h).
pub mod disposition {
    /// Replace an existing file, else create.
    pub const FILE_SUPERSEDE: u32 = 0;
    /// Open an existing file only.
    pub const FILE_OPEN: u32 = 1;
    /// Create a new file only.
    pub const FILE_CREATE: u32 = 2;
    /// Open, or create if missing.
    pub const FILE_OPEN_IF: u32 = 3;
    /// Open and truncate an existing file only.
    pub const FILE_OVERWRITE: u32 = 4;
    /// Open and truncate, or create if missing.
    pub const FILE_OVERWRITE_IF: u32 = 5;
}

/// Create options: the low 24 bits of `Parameters.Create.Options` (wdm.h).
pub mod create_options {
    /// The object must be a directory.
    pub const FILE_DIRECTORY_FILE: u32 = 0x0000_0001;
    /// Writes go through to the medium.
    pub const FILE_WRITE_THROUGH: u32 = 0x0000_0002;
    /// No caching: the I/O manager marks every read/write `IRP_NOCACHE`.
    pub const FILE_NO_INTERMEDIATE_BUFFERING: u32 = 0x0000_0008;
    /// Synchronous I/O, alertable waits: the I/O manager keeps the file position (NT-28).
    pub const FILE_SYNCHRONOUS_IO_ALERT: u32 = 0x0000_0010;
    /// Synchronous I/O, non-alertable waits (`CreateFile` without `FILE_FLAG_OVERLAPPED`).
    pub const FILE_SYNCHRONOUS_IO_NONALERT: u32 = 0x0000_0020;
    /// The object must not be a directory.
    pub const FILE_NON_DIRECTORY_FILE: u32 = 0x0000_0040;
    /// Delete the file when its last handle closes.
    pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
    /// The name is a file id (not supported by cowfat).
    pub const FILE_OPEN_BY_FILE_ID: u32 = 0x0000_2000;
    /// Open for backup: the I/O manager's rename/link target opens carry it (NT-30).
    pub const FILE_OPEN_FOR_BACKUP_INTENT: u32 = 0x0000_4000;
    /// Bits of the Options word that are create options.
    pub const FILE_VALID_OPTION_FLAGS: u32 = 0x00FF_FFFF;
}

/// Specific access rights the I/O manager passes in `DesiredAccess` (winnt.h).
pub mod access {
    /// Read file data.
    pub const FILE_READ_DATA: u32 = 0x0001;
    /// Write file data.
    pub const FILE_WRITE_DATA: u32 = 0x0002;
    /// Append file data.
    pub const FILE_APPEND_DATA: u32 = 0x0004;
    /// Delete the object.
    pub const DELETE: u32 = 0x0001_0000;
}

/// `FILE_OBJECT.Flags` bits (wdm.h).
pub const FO_CLEANUP_COMPLETE: u32 = 0x0000_4000;
/// `FILE_OBJECT.Flags`: the file object was opened for non-cached I/O.
pub const FO_NO_INTERMEDIATE_BUFFERING: u32 = 0x0000_0008;
/// `FILE_OBJECT.Flags`: opened with `FILE_SYNCHRONOUS_IO_(NON)ALERT`: the I/O manager
/// serialises requests on it and keeps `CurrentByteOffset`, which the file system advances
/// by what each read or write transferred (NT-28).
pub const FO_SYNCHRONOUS_IO: u32 = 0x0000_0002;
/// `FILE_OBJECT.Flags`: read through the fast I/O path (wdm.h; `FsRtlCopyRead` sets it).
pub const FO_FILE_FAST_IO_READ: u32 = 0x0008_0000;
/// `IO_STACK_LOCATION.Flags` of a create: open the parent directory of the name and leave
/// its final component in `FileObject->FileName` (rename and link targets, NT-30).
pub const SL_OPEN_TARGET_DIRECTORY: u8 = 0x04;
/// `Information` of an `SL_OPEN_TARGET_DIRECTORY` create: the final component names an
/// existing file (wdm.h).
pub const FILE_EXISTS: usize = 0x0000_0004;
/// `Information` of an `SL_OPEN_TARGET_DIRECTORY` create: it does not (wdm.h).
pub const FILE_DOES_NOT_EXIST: usize = 0x0000_0005;
/// `FILE_ATTRIBUTE_READONLY` (winnt.h).
pub const FILE_ATTRIBUTE_READONLY: u32 = 0x0000_0001;
/// `FSCTL_DISMOUNT_VOLUME` (winioctl.h).
pub const FSCTL_DISMOUNT_VOLUME: u32 = 0x0009_0020;
/// `FSCTL_SET_PURGE_FAILURE_MODE` (winioctl.h): `CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 156,
/// METHOD_BUFFERED, FILE_ANY_ACCESS)`; input `SET_PURGE_FAILURE_MODE_INPUT` (a ULONG of flags).
pub const FSCTL_SET_PURGE_FAILURE_MODE: u32 = 0x0009_0270;
/// `SET_PURGE_FAILURE_MODE_INPUT.Flags`: a data-scan section was created (ntifs.h).
pub const SET_PURGE_FAILURE_MODE_ENABLED: u32 = 0x1;
/// `SET_PURGE_FAILURE_MODE_INPUT.Flags`: the data-scan section was closed (ntifs.h).
pub const SET_PURGE_FAILURE_MODE_DISABLED: u32 = 0x2;
/// `SEC_IMAGE` in `AcquireForSectionSynchronization.AllocationAttributes` (winnt.h).
pub const SEC_IMAGE: u32 = 0x0100_0000;
/// `FSCTL_LOCK_VOLUME` (winioctl.h).
pub const FSCTL_LOCK_VOLUME: u32 = 0x0009_0018;
/// `FSCTL_UNLOCK_VOLUME` (winioctl.h).
pub const FSCTL_UNLOCK_VOLUME: u32 = 0x0009_001C;
/// `FSCTL_IS_VOLUME_MOUNTED` (winioctl.h).
pub const FSCTL_IS_VOLUME_MOUNTED: u32 = 0x0009_0028;
/// `FSCTL_GET_VOLUME_BITMAP` (winioctl.h): `CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 27,
/// METHOD_NEITHER, FILE_ANY_ACCESS)`.
pub const FSCTL_GET_VOLUME_BITMAP: u32 = 0x0009_006F;
/// `FSCTL_GET_RETRIEVAL_POINTERS` (winioctl.h): `CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 28,
/// METHOD_NEITHER, FILE_ANY_ACCESS)`.
pub const FSCTL_GET_RETRIEVAL_POINTERS: u32 = 0x0009_0073;
pub use windows_sys::Win32::System::Ioctl::{
    RETRIEVAL_POINTERS_BUFFER, RETRIEVAL_POINTERS_BUFFER_0, STARTING_LCN_INPUT_BUFFER,
    STARTING_VCN_INPUT_BUFFER, VOLUME_BITMAP_BUFFER,
};
/// `IOCTL_DISK_GET_LENGTH_INFO` (ntdddisk.h): output is a `GET_LENGTH_INFORMATION` (an i64).
pub const IOCTL_DISK_GET_LENGTH_INFO: u32 = 0x0007_405C;
/// `CcPurgeCacheSection` flag: also tear down the cache maps of other file objects.
pub const UNINITIALIZE_CACHE_MAPS: u32 = 0x0000_0001;
/// `MDL.MdlFlags`: the pages are mapped into system space (`MappedSystemVa` is valid).
pub const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
/// `MDL.MdlFlags`: the buffer is non-paged pool (`MappedSystemVa` is valid).
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
/// `ByteOffset` value (as i64) of `FILE_WRITE_TO_END_OF_FILE`: append.
pub const FILE_WRITE_TO_END_OF_FILE: i64 = -1;
/// `ByteOffset` value (as i64) of `FILE_USE_FILE_POINTER_POSITION`.
pub const FILE_USE_FILE_POINTER_POSITION: i64 = -2;
/// `DEVICE_OBJECT.Flags`: still being initialised; cleared once DriverEntry is done with it.
pub const DO_DEVICE_INITIALIZING: u32 = 0x0000_0080;
/// `DEVICE_OBJECT.Flags` of a file system's control device: queue it behind the other disk
/// file systems, so the in-box ones are asked to mount a new disk first.
pub const DO_LOW_PRIORITY_FILESYSTEM: u32 = 0x0001_0000;
/// `DEVICE_OBJECT.Flags`: the medium may have changed; the FS must verify the volume.
pub const DO_VERIFY_VOLUME: u32 = 0x0000_0002;
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

/// FsRtl change notification, byte-range locks and name expressions; the information
/// structures of query/set information, directory control and volume information (issue 7).
pub use windows_sys::Wdk::Foundation::PNOTIFY_SYNC;
pub use windows_sys::Wdk::Storage::FileSystem::PCHECK_FOR_TRAVERSE_ACCESS;
pub use windows_sys::Wdk::Storage::FileSystem::{
    FsRtlCheckLockForReadAccess, FsRtlCheckLockForWriteAccess, FsRtlFastUnlockAll,
    FsRtlFastUnlockAllByKey, FsRtlFastUnlockSingle, FsRtlInitializeFileLock,
    FsRtlIsNameInExpression, FsRtlNotifyCleanup, FsRtlNotifyFullChangeDirectory,
    FsRtlNotifyFullReportChange, FsRtlNotifyInitializeSync, FsRtlNotifyUninitializeSync,
    FsRtlPrivateLock, FsRtlProcessFileLock, FsRtlTeardownPerStreamContexts,
    FsRtlUninitializeFileLock, IoGetRequestorProcess, FILE_ALL_INFORMATION,
    FILE_BOTH_DIR_INFORMATION, FILE_COMPRESSION_INFORMATION, FILE_DIRECTORY_INFORMATION,
    FILE_FS_ATTRIBUTE_INFORMATION, FILE_FS_SECTOR_SIZE_INFORMATION, FILE_FULL_DIR_INFORMATION,
    FILE_ID_BOTH_DIR_INFORMATION, FILE_ID_FULL_DIR_INFORMATION, FILE_LOCK, FILE_NAMES_INFORMATION,
    FILE_NAME_INFORMATION, FILE_RENAME_INFORMATION, FILE_STREAM_INFORMATION,
};
pub use windows_sys::Wdk::System::SystemServices::{
    FILE_ATTRIBUTE_TAG_INFORMATION, FILE_FS_DEVICE_INFORMATION, FILE_FS_FULL_SIZE_INFORMATION,
    FILE_FS_SIZE_INFORMATION, FILE_FS_VOLUME_INFORMATION, IRP_MN_NOTIFY_CHANGE_DIRECTORY,
    IRP_MN_QUERY_DIRECTORY,
};
pub use windows_sys::Win32::Foundation::{
    STATUS_BUFFER_OVERFLOW, STATUS_DIRECTORY_NOT_EMPTY as STATUS_DIR_NOT_EMPTY,
    STATUS_FILE_LOCK_CONFLICT, STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_INFO_CLASS,
    STATUS_INVALID_USER_BUFFER, STATUS_LOCK_NOT_GRANTED, STATUS_NOT_LOCKED, STATUS_NOT_SAME_DEVICE,
    STATUS_NOT_SUPPORTED, STATUS_NO_MORE_FILES, STATUS_NO_SUCH_FILE,
};
pub use windows_sys::Win32::System::Kernel::STRING;

/// Background work: the deferred close worker (NT-32) and the lazy commit timer, its DPC and
/// work item (NT-33).
pub use windows_sys::Wdk::Foundation::{KDPC, PIO_WORKITEM};
pub use windows_sys::Wdk::System::SystemServices::{
    CriticalWorkQueue, DelayedWorkQueue, IoAllocateWorkItem, IoFreeWorkItem, IoQueueWorkItem,
    KeCancelTimer, KeFlushQueuedDpcs, KeInitializeDpc, KeInitializeTimerEx, KeSetTimerEx, KTIMER,
};
/// Volume lifetime (NT-29): the target device referenced for the VCB's life, the VPB the
/// I/O manager allocated freed once swapped out, PnP and device controls passed down.
pub use windows_sys::Wdk::System::SystemServices::{
    ExFreePool, ObfDereferenceObject, ObfReferenceObject, IRP_MN_CANCEL_REMOVE_DEVICE,
    IRP_MN_QUERY_REMOVE_DEVICE, IRP_MN_REMOVE_DEVICE, IRP_MN_SURPRISE_REMOVAL, VPB_REMOVE_PENDING,
};
pub use windows_sys::Win32::Foundation::STATUS_NO_SUCH_DEVICE;
pub use windows_sys::Win32::System::Kernel::NotificationTimer;

/// Bug check, used by the root package's panic handler.
pub use windows_sys::Wdk::System::SystemServices::KeBugCheckEx;
/// Kernel pool allocation and free, re-exported for the root package's global allocator.
pub use windows_sys::Wdk::System::SystemServices::{ExAllocatePool2, ExFreePoolWithTag};

#[cfg(not(windows))]
pub use raising_host::*;
/// Routines that raise exceptions (NT-24), called only inside [`crate::seh`] frames. On the
/// image they are ordinary ntoskrnl imports (the exception is SEH's); on the host ntsim raises
/// by unwinding, so they are declared `system-unwind` there (the same calling convention,
/// allowed to unwind into the caller's SEH frame).
#[cfg(windows)]
pub use raising_image::*;

#[cfg(windows)]
mod raising_image {
    pub use windows_sys::Wdk::Storage::FileSystem::{CcCopyRead, CcCopyWrite};
    pub use windows_sys::Wdk::System::SystemServices::{
        MmProbeAndLockPages, ProbeForRead, ProbeForWrite,
    };
}

#[cfg(not(windows))]
#[allow(clashing_extern_declarations)] // windows-sys declares them `system`: same ABI, no unwind
mod raising_host {
    use super::{FILE_OBJECT, IO_STATUS_BLOCK, MDL};
    use core::ffi::c_void;
    use windows_sys::Wdk::System::SystemServices::LOCK_OPERATION;

    extern "system-unwind" {
        /// `CcCopyRead` (ntifs.h).
        pub fn CcCopyRead(
            fileobject: *const FILE_OBJECT,
            fileoffset: *const i64,
            length: u32,
            wait: bool,
            buffer: *mut c_void,
            iostatus: *mut IO_STATUS_BLOCK,
        ) -> bool;
        /// `CcCopyWrite` (ntifs.h).
        pub fn CcCopyWrite(
            fileobject: *const FILE_OBJECT,
            fileoffset: *const i64,
            length: u32,
            wait: bool,
            buffer: *const c_void,
        ) -> bool;
        /// `MmProbeAndLockPages` (wdm.h).
        pub fn MmProbeAndLockPages(
            memorydescriptorlist: *mut MDL,
            accessmode: i8,
            operation: LOCK_OPERATION,
        );
        /// `ProbeForRead` (wdm.h).
        pub fn ProbeForRead(address: *const c_void, length: usize, alignment: u32);
        /// `ProbeForWrite` (wdm.h).
        pub fn ProbeForWrite(address: *mut c_void, length: usize, alignment: u32);
    }
}

/// Exceptions and hostile callers (NT-24, NT-25): the expected-status split, MDLs that lock a
/// caller's buffer.
pub use windows_sys::Wdk::Storage::FileSystem::FsRtlIsNtstatusExpected;
/// The fast I/O read and write paths check byte-range locks themselves (NT-28).
pub use windows_sys::Wdk::Storage::FileSystem::{
    FsRtlFastCheckLockForRead, FsRtlFastCheckLockForWrite,
};
pub use windows_sys::Wdk::System::SystemServices::IoGetCurrentProcess;
pub use windows_sys::Wdk::System::SystemServices::{
    IoAllocateMdl, IoFreeMdl, IoReadAccess, IoWriteAccess, MdlMappingNoExecute, MmUnlockPages,
    UserMode,
};

/// Disk transfers on driver-owned IRPs with a completion routine (NT-27, fastfat's
/// `FatSingleAsync` + `FatWaitSync`): safe at APC_LEVEL, where paging I/O and Mm's closes
/// arrive.
pub use windows_sys::Wdk::Foundation::PIO_COMPLETION_ROUTINE;
pub use windows_sys::Wdk::System::SystemServices::IoBuildPartialMdl;
pub use windows_sys::Wdk::System::SystemServices::{
    IoAllocateIrp, IoFreeIrp, IoReuseIrp, KeSetEvent, MmBuildMdlForNonPagedPool,
    SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS, SL_OVERRIDE_VERIFY_VOLUME,
};
pub use windows_sys::Win32::Foundation::{STATUS_MORE_PROCESSING_REQUIRED, STATUS_VERIFY_REQUIRED};
