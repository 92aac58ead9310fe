//! FsRtl's byte-range lock package: `FsRtlInitializeFileLock` / `FsRtlUninitializeFileLock`,
//! `FsRtlProcessFileLock` (lock, unlock single, unlock all, unlock all by key; completes the
//! IRP), `FsRtlCheckLockForReadAccess` / `WriteAccess`, `FsRtlFastCheckLockForRead` /
//! `Write`, `FsRtlFastUnlockAll`.
//!
//! A lock belongs to (file object, key); ntsim has one process, so the process argument is
//! not compared. Reads are refused by another owner's exclusive lock; writes by any lock of
//! another owner and by the owner's own shared locks (as on Windows).
//! Stricter than Windows: a lock request without `SL_FAIL_IMMEDIATELY` that conflicts is a
//! bug check (waiting lock requests are not modelled); each initialised lock holds a pool
//! block (tag `FsLk`) so a lock the file system never uninitialises shows as a leak.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_void;

use windows_sys::Wdk::Foundation::{FILE_OBJECT, IRP, PEPROCESS};
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_LOCK, PCOMPLETE_LOCK_IRP_ROUTINE, PUNLOCK_ROUTINE,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INVALID_DEVICE_REQUEST, STATUS_LOCK_NOT_GRANTED, STATUS_RANGE_NOT_LOCKED,
    STATUS_SUCCESS,
};

use crate::ex::bugcheck;
use crate::kernel;

/// Pool tag of a file lock's accounting block.
pub const FILE_LOCK_TAG: u32 = u32::from_le_bytes(*b"FsLk");
const SL_FAIL_IMMEDIATELY: u8 = 1;
const SL_EXCLUSIVE_LOCK: u8 = 2;

/// One granted lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    fo: usize,
    key: u32,
    offset: u64,
    length: u64,
    exclusive: bool,
}

impl Lock {
    fn overlaps(&self, offset: u64, length: u64) -> bool {
        length > 0
            && self.length > 0
            && offset < self.offset.saturating_add(self.length)
            && self.offset < offset.saturating_add(length)
    }
}

/// The locks of one stream.
#[derive(Debug, Default)]
pub struct LockState {
    block: usize,
    locks: Vec<Lock>,
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlInitializeFileLock(
    filelock: *mut FILE_LOCK,
    _completelockirproutine: PCOMPLETE_LOCK_IRP_ROUTINE,
    _unlockroutine: PUNLOCK_ROUTINE,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    let block = crate::ex::allocate_pool(0x40, 16, FILE_LOCK_TAG);
    let fresh = kernel::with(|k| {
        k.file_locks
            .insert(
                filelock as usize,
                LockState {
                    block: block as usize,
                    locks: Vec::new(),
                },
            )
            .is_none()
    });
    if !fresh {
        bugcheck("FsRtlInitializeFileLock of a lock already initialised");
    }
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlUninitializeFileLock(filelock: *mut FILE_LOCK) {
    let _kernel = crate::heap::KernelRegion::enter();
    let Some(state) = kernel::with(|k| k.file_locks.remove(&(filelock as usize))) else {
        return;
    };
    // SAFETY: allocated in FsRtlInitializeFileLock with this tag.
    unsafe { crate::ex::ExFreePoolWithTag(state.block as *mut c_void, FILE_LOCK_TAG) };
}

fn with_locks<R>(filelock: *const FILE_LOCK, f: impl FnOnce(&mut Vec<Lock>) -> R) -> R {
    kernel::with(|k| match k.file_locks.get_mut(&(filelock as usize)) {
        Some(state) => f(&mut state.locks),
        None => bugcheck("file lock call on a FILE_LOCK that is not initialised"),
    })
}

fn read_allowed(locks: &[Lock], fo: usize, key: u32, offset: u64, length: u64) -> bool {
    !locks
        .iter()
        .any(|l| l.exclusive && (l.fo != fo || l.key != key) && l.overlaps(offset, length))
}

fn write_allowed(locks: &[Lock], fo: usize, key: u32, offset: u64, length: u64) -> bool {
    !locks
        .iter()
        .any(|l| (!l.exclusive || l.fo != fo || l.key != key) && l.overlaps(offset, length))
}

fn grant(locks: &mut Vec<Lock>, lock: Lock) -> bool {
    let conflict = locks.iter().any(|l| {
        l.overlaps(lock.offset, lock.length)
            && (lock.exclusive || l.exclusive)
            && !(l.fo == lock.fo && l.key == lock.key && !lock.exclusive)
    });
    if !conflict {
        locks.push(lock);
    }
    !conflict
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlProcessFileLock(
    filelock: *const FILE_LOCK,
    irp: *const IRP,
    _context: *const c_void,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    let irp = irp.cast_mut();
    // SAFETY: the FS's lock control IRP.
    let stack = unsafe { crate::io::current_stack(irp) };
    // SAFETY: its current location.
    let stack = unsafe { &*stack };
    // SAFETY: LockControl is the live member for IRP_MJ_LOCK_CONTROL.
    let p = unsafe { stack.Parameters.LockControl };
    let fo = stack.FileObject as usize;
    let offset = u64::try_from(p.ByteOffset).unwrap_or(0);
    let length = if p.Length.is_null() {
        0
    } else {
        // SAFETY: the I/O manager's length.
        u64::try_from(unsafe { *p.Length }).unwrap_or(0)
    };
    let status = match u32::from(stack.MinorFunction) {
        1 => {
            let lock = Lock {
                fo,
                key: p.Key,
                offset,
                length,
                exclusive: stack.Flags & SL_EXCLUSIVE_LOCK != 0,
            };
            if with_locks(filelock, |locks| grant(locks, lock)) {
                STATUS_SUCCESS
            } else if stack.Flags & SL_FAIL_IMMEDIATELY != 0 {
                STATUS_LOCK_NOT_GRANTED
            } else {
                bugcheck("a waiting lock request (no SL_FAIL_IMMEDIATELY) is not modelled")
            }
        }
        2 => with_locks(filelock, |locks| {
            let found = locks.iter().position(|l| {
                l.fo == fo && l.key == p.Key && l.offset == offset && l.length == length
            });
            match found {
                Some(i) => {
                    locks.remove(i);
                    STATUS_SUCCESS
                }
                None => STATUS_RANGE_NOT_LOCKED,
            }
        }),
        3 => with_locks(filelock, |locks| {
            locks.retain(|l| l.fo != fo);
            STATUS_SUCCESS
        }),
        4 => with_locks(filelock, |locks| {
            locks.retain(|l| l.fo != fo || l.key != p.Key);
            STATUS_SUCCESS
        }),
        _ => STATUS_INVALID_DEVICE_REQUEST,
    };
    // SAFETY: FsRtlProcessFileLock completes the IRP it was given.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.IoStatus.Anonymous.Status = status;
    irp_ref.IoStatus.Information = 0;
    // SAFETY: as above.
    unsafe { crate::io::IofCompleteRequest(irp, 0) };
    status
}

unsafe fn io_range(irp: *const IRP) -> (usize, u32, u64, u64) {
    // SAFETY: the FS's read or write IRP.
    let stack = unsafe { crate::io::current_stack(irp.cast_mut()) };
    // SAFETY: its current location.
    let stack = unsafe { &*stack };
    // SAFETY: Read/Write share a layout.
    let p = unsafe { stack.Parameters.Read };
    (
        stack.FileObject as usize,
        p.Key,
        u64::try_from(p.ByteOffset).unwrap_or(0),
        u64::from(p.Length),
    )
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlCheckLockForReadAccess(
    filelock: *const FILE_LOCK,
    irp: *const IRP,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's IRP.
    let (fo, key, offset, length) = unsafe { io_range(irp) };
    with_locks(filelock, |l| read_allowed(l, fo, key, offset, length))
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlCheckLockForWriteAccess(
    filelock: *const FILE_LOCK,
    irp: *const IRP,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's IRP.
    let (fo, key, offset, length) = unsafe { io_range(irp) };
    with_locks(filelock, |l| write_allowed(l, fo, key, offset, length))
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlFastCheckLockForRead(
    filelock: *const FILE_LOCK,
    startingbyte: *const i64,
    length: *const i64,
    key: u32,
    fileobject: *const FILE_OBJECT,
    _processid: *const c_void,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's value.
    let offset = unsafe { *startingbyte };
    // SAFETY: as above.
    let length = unsafe { *length };
    let (offset, length) = (
        u64::try_from(offset).unwrap_or(0),
        u64::try_from(length).unwrap_or(0),
    );
    with_locks(filelock, |l| {
        read_allowed(l, fileobject as usize, key, offset, length)
    })
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlFastCheckLockForWrite(
    filelock: *const FILE_LOCK,
    startingbyte: *const i64,
    length: *const i64,
    key: u32,
    fileobject: *const c_void,
    _processid: *const c_void,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's value.
    let offset = unsafe { *startingbyte };
    // SAFETY: as above.
    let length = unsafe { *length };
    let (offset, length) = (
        u64::try_from(offset).unwrap_or(0),
        u64::try_from(length).unwrap_or(0),
    );
    with_locks(filelock, |l| {
        write_allowed(l, fileobject as usize, key, offset, length)
    })
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlFastUnlockAll(
    filelock: *const FILE_LOCK,
    fileobject: *const FILE_OBJECT,
    _processid: PEPROCESS,
    _context: *const c_void,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| k.note("FsRtlFastUnlockAll", fileobject));
    with_locks(filelock, |locks| {
        locks.retain(|l| l.fo != fileobject as usize)
    });
    STATUS_SUCCESS
}

/// Locks held on the stream of `filelock` (for tests).
#[must_use]
pub fn lock_count(filelock: usize) -> usize {
    kernel::with(|k| k.file_locks.get(&filelock).map_or(0, |s| s.locks.len()))
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlPrivateLock(
    filelock: *const FILE_LOCK,
    fileobject: *const FILE_OBJECT,
    fileoffset: *const i64,
    length: *const i64,
    _processid: PEPROCESS,
    key: u32,
    failimmediately: bool,
    exclusivelock: bool,
    iosb: *mut windows_sys::Win32::System::IO::IO_STATUS_BLOCK,
    irp: *const IRP,
    _context: *const c_void,
    _alreadysynchronized: bool,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    if !irp.is_null() {
        bugcheck("FsRtlPrivateLock with an IRP is not modelled (use FsRtlProcessFileLock)");
    }
    // SAFETY: the caller's range.
    let offset = unsafe { *fileoffset };
    // SAFETY: as above.
    let length = unsafe { *length };
    let lock = Lock {
        fo: fileobject as usize,
        key,
        offset: u64::try_from(offset).unwrap_or(0),
        length: u64::try_from(length).unwrap_or(0),
        exclusive: exclusivelock,
    };
    kernel::with(|k| k.note("FsRtlPrivateLock", fileobject));
    let status = if with_locks(filelock, |locks| grant(locks, lock)) {
        STATUS_SUCCESS
    } else if failimmediately {
        STATUS_LOCK_NOT_GRANTED
    } else {
        // Without an IRP FsRtl cannot wait: the caller must take the IRP path.
        return false;
    };
    // SAFETY: the caller's status block.
    let iosb = unsafe { &mut *iosb };
    iosb.Anonymous.Status = status;
    iosb.Information = 0;
    true
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlFastUnlockSingle(
    filelock: *const FILE_LOCK,
    fileobject: *const FILE_OBJECT,
    fileoffset: *const i64,
    length: *const i64,
    _processid: PEPROCESS,
    key: u32,
    _context: *const c_void,
    _alreadysynchronized: bool,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's range.
    let offset = u64::try_from(unsafe { *fileoffset }).unwrap_or(0);
    // SAFETY: as above.
    let length = u64::try_from(unsafe { *length }).unwrap_or(0);
    let fo = fileobject as usize;
    with_locks(filelock, |locks| {
        let found = locks
            .iter()
            .position(|l| l.fo == fo && l.key == key && l.offset == offset && l.length == length);
        match found {
            Some(i) => {
                locks.remove(i);
                STATUS_SUCCESS
            }
            None => STATUS_RANGE_NOT_LOCKED,
        }
    })
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlFastUnlockAllByKey(
    filelock: *const FILE_LOCK,
    fileobject: *const FILE_OBJECT,
    _processid: PEPROCESS,
    key: u32,
    _context: *const c_void,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    let fo = fileobject as usize;
    with_locks(filelock, |locks| {
        locks.retain(|l| l.fo != fo || l.key != key)
    });
    STATUS_SUCCESS
}
