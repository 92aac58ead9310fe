//! Stand-ins for the ntoskrnl exports, for fs-driver's own unit tests only.
//!
//! The unit tests check decision logic and the inline helpers; they never run a real request.
//! The test binary must still link, so every routine in [`crate::nt`] gets a definition here:
//! the few the tests exercise (pool, top-level IRP, critical regions) are modelled minimally,
//! the rest panic. Scenario tests link the real dispatch code with `ntsim` instead, which
//! defines all of them faithfully (this module is not compiled there).
#![allow(non_snake_case, clippy::missing_safety_doc)]

extern crate std;

use core::ffi::c_void;
use std::alloc::{alloc, dealloc, Layout};
use std::cell::Cell;

use crate::nt::{
    CACHE_MANAGER_CALLBACKS, CC_FILE_SIZES, DEVICE_OBJECT, DRIVER_OBJECT, ERESOURCE, FILE_OBJECT,
    FS_FILTER_CALLBACKS, IO_STATUS_BLOCK, IRP, MDL, NTSTATUS, SECTION_OBJECT_POINTERS,
    SHARE_ACCESS, UNICODE_STRING,
};
use windows_sys::Wdk::Foundation::KEVENT;
use windows_sys::Wdk::Storage::FileSystem::{CACHE_UNINITIALIZE_EVENT, MMFLUSH_TYPE};
use windows_sys::Wdk::System::SystemServices::{KWAIT_REASON, MEMORY_CACHING_TYPE};
use windows_sys::Win32::System::Kernel::EVENT_TYPE;

std::thread_local! {
    static TOP_LEVEL_IRP: Cell<*mut IRP> = const { Cell::new(core::ptr::null_mut()) };
    static CRITICAL_REGION_DEPTH: Cell<i32> = const { Cell::new(0) };
}

/// Depth of KeEnterCriticalRegion nesting on this thread.
pub fn critical_region_depth() -> i32 {
    CRITICAL_REGION_DEPTH.with(Cell::get)
}

const POOL_HEADER: usize = 16;

#[no_mangle]
unsafe extern "system" fn ExAllocatePool2(_flags: u64, size: usize, tag: u32) -> *mut c_void {
    let Ok(layout) = Layout::from_size_align(size + POOL_HEADER, 16) else {
        return core::ptr::null_mut();
    };
    // SAFETY: non-zero size (header included).
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        return base.cast();
    }
    // SAFETY: the header fits in the allocation and is 16-byte aligned.
    unsafe { base.cast::<[usize; 2]>().write([size, tag as usize]) };
    base.wrapping_add(POOL_HEADER).cast()
}

#[no_mangle]
unsafe extern "system" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    let base = p.cast::<u8>().wrapping_sub(POOL_HEADER);
    // SAFETY: `p` came from ExAllocatePool2 above, which wrote the header.
    let [size, allocated_tag] = unsafe { base.cast::<[usize; 2]>().read() };
    assert_eq!(allocated_tag, tag as usize, "pool freed with the wrong tag");
    let Ok(layout) = Layout::from_size_align(size + POOL_HEADER, 16) else {
        panic!("corrupt pool header");
    };
    // SAFETY: same layout as the allocation.
    unsafe { dealloc(base, layout) };
}

#[no_mangle]
extern "system" fn IoGetTopLevelIrp() -> *mut IRP {
    TOP_LEVEL_IRP.with(Cell::get)
}

#[no_mangle]
extern "system" fn IoSetTopLevelIrp(irp: *const IRP) {
    TOP_LEVEL_IRP.with(|t| t.set(irp.cast_mut()));
}

#[no_mangle]
extern "system" fn KeEnterCriticalRegion() {
    CRITICAL_REGION_DEPTH.with(|d| d.set(d.get() + 1));
}

#[no_mangle]
extern "system" fn KeLeaveCriticalRegion() {
    CRITICAL_REGION_DEPTH.with(|d| d.set(d.get() - 1));
}

/// The SEH frame: unit tests never raise, so the body just runs.
#[no_mangle]
unsafe extern "system-unwind" fn cowfat_seh_try(
    body: unsafe extern "system-unwind" fn(*mut c_void),
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the driver's body runner with its own frame.
    unsafe { body(context) };
    0
}

#[no_mangle]
extern "system" fn FsRtlIsNtstatusExpected(status: NTSTATUS) -> bool {
    // STATUS_ACCESS_VIOLATION, _DATATYPE_MISALIGNMENT, _ILLEGAL_INSTRUCTION,
    // _INSTRUCTION_MISALIGNMENT are the unexpected ones.
    !matches!(
        status as u32,
        0xC000_0005 | 0x8000_0002 | 0xC000_001D | 0xC000_00AA
    )
}

macro_rules! not_in_unit_tests {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {$(
        #[no_mangle]
        extern "system" fn $name($(_: $ty),*) $(-> $ret)? {
            panic!(concat!(stringify!($name), " is not available in unit tests; use ntsim"))
        }
    )*};
}

not_in_unit_tests! {
    fn KeBugCheckEx(c: u32, a: usize, b: usize, x: usize, y: usize);
    fn ExAcquireResourceExclusiveLite(r: *mut ERESOURCE, w: bool) -> bool;
    fn ExAcquireResourceSharedLite(r: *mut ERESOURCE, w: bool) -> bool;
    fn ExReleaseResourceLite(r: *mut ERESOURCE);
    fn FsRtlRegisterFileSystemFilterCallbacks(d: *const DRIVER_OBJECT, c: *const FS_FILTER_CALLBACKS) -> NTSTATUS;
    fn IoCreateDevice(d: *const DRIVER_OBJECT, e: u32, n: *const UNICODE_STRING, t: u32, c: u32, x: bool, o: *mut *mut DEVICE_OBJECT) -> NTSTATUS;
    fn IoDeleteDevice(d: *const DEVICE_OBJECT);
    fn IoRegisterFileSystem(d: *const DEVICE_OBJECT);
    fn IoUnregisterFileSystem(d: *const DEVICE_OBJECT);
    fn IofCompleteRequest(i: *const IRP, b: i8);
    fn KeInitializeEvent(e: *mut KEVENT, t: EVENT_TYPE, s: bool);
    fn ExInitializeResourceLite(r: *mut ERESOURCE) -> NTSTATUS;
    fn ExDeleteResourceLite(r: *mut ERESOURCE) -> NTSTATUS;
    fn IoBuildSynchronousFsdRequest(m: u32, d: *const DEVICE_OBJECT, b: *mut c_void, l: u32, o: *const i64, e: *const KEVENT, s: *mut IO_STATUS_BLOCK) -> *mut IRP;
    fn IoBuildDeviceIoControlRequest(c: u32, d: *const DEVICE_OBJECT, i: *const c_void, il: u32, o: *mut c_void, ol: u32, x: bool, e: *const KEVENT, s: *mut IO_STATUS_BLOCK) -> *mut IRP;
    fn IofCallDriver(d: *const DEVICE_OBJECT, i: *mut IRP) -> NTSTATUS;
    fn KeWaitForSingleObject(o: *const c_void, r: KWAIT_REASON, m: i8, a: bool, t: *const i64) -> NTSTATUS;
    fn KeQuerySystemTimePrecise(t: *mut i64);
    fn IoCheckShareAccess(a: u32, s: u32, f: *mut FILE_OBJECT, x: *mut SHARE_ACCESS, u: bool) -> NTSTATUS;
    fn IoRemoveShareAccess(f: *const FILE_OBJECT, x: *mut SHARE_ACCESS);
    fn MmMapLockedPagesSpecifyCache(m: *mut MDL, a: i8, c: MEMORY_CACHING_TYPE, r: *const c_void, b: u32, p: u32) -> *mut c_void;
    fn CcInitializeCacheMap(f: *const FILE_OBJECT, s: *const CC_FILE_SIZES, p: bool, c: *const CACHE_MANAGER_CALLBACKS, x: *const c_void);
    fn CcCopyRead(f: *const FILE_OBJECT, o: *const i64, l: u32, w: bool, b: *mut c_void, s: *mut IO_STATUS_BLOCK) -> bool;
    fn CcCopyWrite(f: *const FILE_OBJECT, o: *const i64, l: u32, w: bool, b: *const c_void) -> bool;
    fn CcSetFileSizes(f: *const FILE_OBJECT, s: *const CC_FILE_SIZES);
    fn CcFlushCache(p: *const SECTION_OBJECT_POINTERS, o: *const i64, l: u32, s: *mut IO_STATUS_BLOCK);
    fn CcCoherencyFlushAndPurgeCache(p: *const SECTION_OBJECT_POINTERS, o: *const i64, l: u32, s: *mut IO_STATUS_BLOCK, f: u32);
    fn CcPurgeCacheSection(p: *const SECTION_OBJECT_POINTERS, o: *const i64, l: u32, f: u32) -> bool;
    fn CcUninitializeCacheMap(f: *const FILE_OBJECT, t: *const i64, e: *const CACHE_UNINITIALIZE_EVENT) -> bool;
    fn MmFlushImageSection(p: *const SECTION_OBJECT_POINTERS, t: MMFLUSH_TYPE) -> bool;
    fn MmCanFileBeTruncated(p: *const SECTION_OBJECT_POINTERS, s: *const i64) -> bool;
    fn MmDoesFileHaveUserWritableReferences(p: *const SECTION_OBJECT_POINTERS) -> u32;
    fn FsRtlNotifyInitializeSync(s: *mut crate::nt::PNOTIFY_SYNC);
    fn FsRtlNotifyUninitializeSync(s: *mut crate::nt::PNOTIFY_SYNC);
    fn FsRtlNotifyFullChangeDirectory(s: crate::nt::PNOTIFY_SYNC, l: *const crate::nt::LIST_ENTRY, c: *const c_void, n: *mut crate::nt::STRING, t: bool, b: bool, f: u32, i: *const IRP, x: crate::nt::PCHECK_FOR_TRAVERSE_ACCESS, y: *const c_void);
    fn FsRtlNotifyFullReportChange(s: crate::nt::PNOTIFY_SYNC, l: *const crate::nt::LIST_ENTRY, n: *const crate::nt::STRING, o: u16, a: *const crate::nt::STRING, b: *const crate::nt::STRING, f: u32, x: u32, c: *const c_void);
    fn FsRtlNotifyCleanup(s: crate::nt::PNOTIFY_SYNC, l: *const crate::nt::LIST_ENTRY, c: *const c_void);
    fn FsRtlIsNameInExpression(e: *const UNICODE_STRING, n: *const UNICODE_STRING, i: bool, u: *const u16) -> bool;
    fn FsRtlInitializeFileLock(l: *mut crate::nt::FILE_LOCK, c: *const c_void, u: *const c_void);
    fn FsRtlUninitializeFileLock(l: *mut crate::nt::FILE_LOCK);
    fn FsRtlProcessFileLock(l: *const crate::nt::FILE_LOCK, i: *const IRP, c: *const c_void) -> NTSTATUS;
    fn FsRtlCheckLockForReadAccess(l: *const crate::nt::FILE_LOCK, i: *const IRP) -> bool;
    fn FsRtlCheckLockForWriteAccess(l: *const crate::nt::FILE_LOCK, i: *const IRP) -> bool;
    fn FsRtlFastUnlockAll(l: *const crate::nt::FILE_LOCK, f: *const FILE_OBJECT, p: crate::nt::PEPROCESS, c: *const c_void) -> NTSTATUS;
    fn IoGetRequestorProcess(i: *const IRP) -> crate::nt::PEPROCESS;
    fn FsRtlPrivateLock(l: *const crate::nt::FILE_LOCK, f: *const FILE_OBJECT, o: *const i64, n: *const i64, p: crate::nt::PEPROCESS, k: u32, i: bool, e: bool, s: *mut IO_STATUS_BLOCK, r: *const IRP, c: *const c_void, a: bool) -> bool;
    fn FsRtlFastUnlockSingle(l: *const crate::nt::FILE_LOCK, f: *const FILE_OBJECT, o: *const i64, n: *const i64, p: crate::nt::PEPROCESS, k: u32, c: *const c_void, a: bool) -> NTSTATUS;
    fn ProbeForRead(a: *const c_void, l: usize, x: u32);
    fn ProbeForWrite(a: *mut c_void, l: usize, x: u32);
    fn MmProbeAndLockPages(m: *mut MDL, a: i8, o: i32);
    fn MmUnlockPages(m: *mut MDL);
    fn IoAllocateMdl(v: *const c_void, l: u32, s: bool, c: bool, i: *mut IRP) -> *mut MDL;
    fn IoFreeMdl(m: *mut MDL);
    fn IoAllocateIrp(s: i8, q: bool) -> *mut IRP;
    fn IoFreeIrp(i: *const IRP);
    fn IoReuseIrp(i: *mut IRP, s: NTSTATUS);
    fn KeSetEvent(e: *mut KEVENT, i: i32, w: bool) -> i32;
    fn MmBuildMdlForNonPagedPool(m: *mut MDL);
    fn IoBuildPartialMdl(s: *const MDL, t: *mut MDL, v: *mut c_void, l: u32);
    fn IoAllocateWorkItem(d: *const DEVICE_OBJECT) -> crate::nt::PIO_WORKITEM;
    fn IoFreeWorkItem(w: crate::nt::PIO_WORKITEM);
    fn IoQueueWorkItem(w: crate::nt::PIO_WORKITEM, r: windows_sys::Wdk::System::SystemServices::PIO_WORKITEM_ROUTINE, q: i32, c: *const c_void);
    fn KeInitializeTimerEx(t: *mut crate::nt::KTIMER, y: i32);
    fn KeInitializeDpc(d: *mut crate::nt::KDPC, r: windows_sys::Wdk::Foundation::PKDEFERRED_ROUTINE, c: *const c_void);
    fn KeSetTimerEx(t: *mut crate::nt::KTIMER, d: i64, p: i32, x: *const crate::nt::KDPC) -> bool;
    fn KeCancelTimer(t: *mut crate::nt::KTIMER) -> bool;
    fn KeFlushQueuedDpcs();
    fn FsRtlFastUnlockAllByKey(l: *const crate::nt::FILE_LOCK, f: *const FILE_OBJECT, p: crate::nt::PEPROCESS, k: u32, c: *const c_void) -> NTSTATUS;
    fn FsRtlTeardownPerStreamContexts(h: *const crate::nt::FSRTL_ADVANCED_FCB_HEADER);
    fn ObfReferenceObject(o: *const c_void) -> isize;
    fn ObfDereferenceObject(o: *const c_void) -> isize;
    fn ExFreePool(p: *mut c_void);
    fn FsRtlFastCheckLockForRead(l: *const crate::nt::FILE_LOCK, o: *const i64, n: *const i64, k: u32, f: *const FILE_OBJECT, p: *const c_void) -> bool;
    fn FsRtlFastCheckLockForWrite(l: *const crate::nt::FILE_LOCK, o: *const i64, n: *const i64, k: u32, f: *const c_void, p: *const c_void) -> bool;
    fn IoGetCurrentProcess() -> crate::nt::PEPROCESS;
}

#[no_mangle]
extern "system" fn PsGetCurrentThreadId() -> windows_sys::Win32::Foundation::HANDLE {
    4 as windows_sys::Win32::Foundation::HANDLE
}

#[no_mangle]
extern "system" fn cowfat_host_interrupt_time() -> u64 {
    0
}

#[no_mangle]
unsafe extern "system" fn KeAcquireInStackQueuedSpinLock(
    spinlock: *mut usize,
    _handle: *mut windows_sys::Wdk::System::SystemServices::KLOCK_QUEUE_HANDLE,
) {
    // SAFETY: the caller's KSPIN_LOCK.
    unsafe { *spinlock = 1 };
}

#[no_mangle]
unsafe extern "system" fn KeReleaseInStackQueuedSpinLock(
    handle: *const windows_sys::Wdk::System::SystemServices::KLOCK_QUEUE_HANDLE,
) {
    let _ = handle;
}
