//! Exceptions and the caller's address space (NT-24, NT-25).
//!
//! **Raising.** A kernel routine that raises on Windows (`CcCopyRead`, `ProbeForWrite`,
//! `MmProbeAndLockPages`, ...) raises here by unwinding with a [`Raised`] payload carrying the
//! NTSTATUS ([`raise`]). The driver's SEH frame is `cowfat_seh_try` (fs-driver's `seh`
//! module), which ntsim defines: it runs the body under `catch_unwind` and returns the code.
//! Those routines are `extern "system-unwind"`, and so is the driver's declaration of them
//! on the host. A raise with no SEH frame on the thread is the bug check Windows would give
//! (`KMODE_EXCEPTION_NOT_HANDLED`). A panic that is not a [`Raised`] (an ntsim bug check)
//! goes through the frame untouched.
//!
//! **Address space.** Buffers a user-mode request carries are registered as user memory for
//! the request's life ([`UserRange`]): mapped (real host memory of the test) or unmapped (an
//! address with nothing behind it, never dereferenced by ntsim). Any other address is kernel
//! memory. `ProbeForRead`/`ProbeForWrite` accept only ranges inside mapped user memory and
//! raise `STATUS_ACCESS_VIOLATION` for the rest; `MmProbeAndLockPages` in user mode likewise.
//! Stricter than Windows: a probe of an unmapped user range raises at the probe (Windows'
//! `ProbeForRead` checks only the range and the first touch would raise); the driver touches
//! user memory only inside the same SEH frame, so the outcome is the same, and ntsim never
//! lets the driver dereference an address that is not there.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_void;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use windows_sys::Wdk::Foundation::MDL;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_VIOLATION, STATUS_DATATYPE_MISALIGNMENT, STATUS_ILLEGAL_INSTRUCTION,
    STATUS_INSTRUCTION_MISALIGNMENT, STATUS_INVALID_USER_BUFFER,
};

use crate::ex::bugcheck;
use crate::kernel;

/// The payload of an exception ntsim raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised(pub NTSTATUS);

/// What lies behind a user-mode address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserMemory {
    /// The test's own memory, readable and writable.
    Mapped,
    /// Nothing: any touch faults.
    Unmapped,
    /// A mapped view of a file (view id, byte offset in the view): a touch faults the page
    /// in through the file system's own paging read. The range's host memory is a stand-in
    /// that ntsim fills from the view when the pages are locked and writes back when they are
    /// unlocked; a driver that touches it without locking it first is caught
    /// ([`Sim::read_into_view`](crate::api::Sim)).
    View(u32, u64),
}

/// A registered range of the requester's address space.
#[derive(Clone, Copy, Debug)]
pub struct UserRange {
    /// Bytes.
    pub len: usize,
    /// What is behind it.
    pub memory: UserMemory,
}

/// Where unmapped user buffers live: below any host mapping, never dereferenced by ntsim.
pub const UNMAPPED_USER_ADDRESS: usize = 0x1_0000;

/// Raises `status` as the kernel's `ExRaiseStatus` would: unwinds to the innermost SEH frame.
pub fn raise(status: NTSTATUS) -> ! {
    let frames = kernel::with(|k| {
        k.trace.push(crate::trace::Event::Kernel {
            name: "raise",
            file: None,
        });
        k.raised += 1;
        k.seh_depth
    });
    if frames == 0 {
        bugcheck(&format!(
            "KMODE_EXCEPTION_NOT_HANDLED: exception {status:#010x} raised with no SEH frame in the driver"
        ));
    }
    resume_unwind(Box::new(Raised(status)))
}

/// The driver's SEH frame (fs-driver `seh::try_except`): 0 if `body` returned, else the code
/// it raised.
#[no_mangle]
pub unsafe extern "system-unwind" fn cowfat_seh_try(
    body: unsafe extern "system-unwind" fn(*mut c_void),
    context: *mut c_void,
) -> NTSTATUS {
    kernel::with(|k| k.seh_depth += 1);
    // SAFETY: the driver's body runner with its own frame.
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { body(context) }));
    kernel::with(|k| k.seh_depth -= 1);
    match outcome {
        Ok(()) => 0,
        Err(payload) => match payload.downcast::<Raised>() {
            Ok(raised) => raised.0,
            Err(other) => resume_unwind(other),
        },
    }
}

#[no_mangle]
pub extern "system" fn FsRtlIsNtstatusExpected(exception: NTSTATUS) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    !matches!(
        exception,
        STATUS_DATATYPE_MISALIGNMENT
            | STATUS_ACCESS_VIOLATION
            | STATUS_ILLEGAL_INSTRUCTION
            | STATUS_INSTRUCTION_MISALIGNMENT
    )
}

/// Registers `[address, address + len)` as the requester's memory until [`unregister`].
pub fn register(address: usize, len: usize, memory: UserMemory) {
    kernel::with(|k| k.user_ranges.insert(address, UserRange { len, memory }));
}

/// Ends a registration.
pub fn unregister(address: usize) {
    kernel::with(|k| k.user_ranges.remove(&address));
}

/// What `[address, address + len)` is: `Some(memory)` when it lies in one user range, `None`
/// for kernel memory; a range that is only partly user memory counts as unmapped.
#[must_use]
pub fn classify(address: usize, len: usize) -> Option<UserMemory> {
    kernel::with(|k| {
        let end = address.saturating_add(len.max(1));
        let (start, range) = k.user_ranges.range(..end).next_back()?;
        let range_end = start.saturating_add(range.len);
        if range_end <= address {
            return None;
        }
        if *start <= address && end <= range_end {
            Some(range.memory)
        } else {
            Some(UserMemory::Unmapped)
        }
    })
}

/// The probe of a user-mode access: raises `STATUS_ACCESS_VIOLATION` unless the range is
/// mapped user memory (kernel addresses included: they lie above `MmUserProbeAddress`).
fn probe(address: usize, len: usize, alignment: u32, what: &str) {
    crate::stack::note_driver_call();
    if len == 0 {
        return;
    }
    if alignment > 1 && !address.is_multiple_of(alignment as usize) {
        raise(STATUS_DATATYPE_MISALIGNMENT);
    }
    if !matches!(
        classify(address, len),
        Some(UserMemory::Mapped | UserMemory::View(..))
    ) {
        kernel::with(|k| {
            k.trace.push(crate::trace::Event::Kernel {
                name: if what == "read" {
                    "ProbeForRead failed"
                } else {
                    "ProbeForWrite failed"
                },
                file: None,
            });
        });
        raise(STATUS_ACCESS_VIOLATION);
    }
}

#[no_mangle]
pub extern "system-unwind" fn ProbeForRead(address: *const c_void, length: usize, alignment: u32) {
    let _kernel = crate::heap::KernelRegion::enter();
    probe(address.addr(), length, alignment, "read");
}

#[no_mangle]
pub extern "system-unwind" fn ProbeForWrite(address: *mut c_void, length: usize, alignment: u32) {
    let _kernel = crate::heap::KernelRegion::enter();
    probe(address.addr(), length, alignment, "write");
}

/// A kernel-side copy to or from a caller's buffer (Cc's copy): raises
/// `STATUS_INVALID_USER_BUFFER` if the buffer is user memory with nothing behind it, as
/// `CcCopyRead`'s own handler turns the access violation into (WRK `copysup.c`).
pub fn check_copy_buffer(address: *const c_void, len: usize) {
    if classify(address.addr(), len) == Some(UserMemory::Unmapped) {
        raise(STATUS_INVALID_USER_BUFFER);
    }
}

/// The view and offset behind `[address, address + len)` when it is a view-backed user range.
#[must_use]
pub fn view_behind(address: usize, len: usize) -> Option<(u32, u64)> {
    let Some(UserMemory::View(view, view_offset)) = classify(address, len) else {
        return None;
    };
    let start = kernel::with(|k| k.user_ranges.range(..=address).next_back().map(|(a, _)| *a))?;
    Some((view, view_offset + (address - start) as u64))
}

/// `MDL_PAGES_LOCKED` (wdm.h).
const MDL_PAGES_LOCKED: i16 = 0x0002;
/// `MDL_MAPPED_TO_SYSTEM_VA` (wdm.h).
const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
/// `UserMode`.
const USER_MODE: i8 = 1;

#[no_mangle]
pub unsafe extern "system" fn IoAllocateMdl(
    virtualaddress: *const c_void,
    length: u32,
    secondarybuffer: bool,
    _chargequota: bool,
    irp: *mut windows_sys::Wdk::Foundation::IRP,
) -> *mut MDL {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::stack::note_driver_call();
    if secondarybuffer || !irp.is_null() {
        bugcheck("IoAllocateMdl: ntsim models only free-standing MDLs (no IRP, no chain)");
    }
    if crate::ex::pool_fails() {
        return std::ptr::null_mut();
    }
    let mdl = Box::into_raw(Box::new(MDL {
        Size: i16::try_from(std::mem::size_of::<MDL>()).unwrap_or(i16::MAX),
        StartVa: virtualaddress.cast_mut(),
        ByteCount: length,
        ..Default::default()
    }));
    kernel::with(|k| k.mdls.insert(mdl.addr(), false));
    mdl
}

#[no_mangle]
pub unsafe extern "system-unwind" fn MmProbeAndLockPages(
    memorydescriptorlist: *mut MDL,
    accessmode: i8,
    operation: i32,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::stack::note_driver_call();
    let mdl = memorydescriptorlist;
    match kernel::with(|k| k.mdls.get(&mdl.addr()).copied()) {
        None => bugcheck("MmProbeAndLockPages on an MDL IoAllocateMdl did not make"),
        Some(true) => bugcheck("MmProbeAndLockPages on an MDL already locked"),
        Some(false) => {}
    }
    // SAFETY: a live MDL of ours.
    let mdl_ref = unsafe { &mut *mdl };
    let (start, len) = (mdl_ref.StartVa, mdl_ref.ByteCount as usize);
    let memory = classify(start.addr(), len);
    if let Some(UserMemory::View(view, view_offset)) = memory {
        lock_view_pages(mdl, start.cast(), len, view, view_offset, operation);
    }
    let valid = match memory {
        Some(UserMemory::Mapped | UserMemory::View(..)) => true,
        Some(UserMemory::Unmapped) => false,
        // Kernel memory: fine for a kernel-mode requester, a violation for a user-mode one.
        None => accessmode != USER_MODE,
    };
    if !valid {
        raise(STATUS_ACCESS_VIOLATION);
    }
    // The model's system address of locked pages is the buffer itself.
    mdl_ref.MdlFlags |= MDL_PAGES_LOCKED;
    mdl_ref.MappedSystemVa = start;
    kernel::with(|k| k.mdls.insert(mdl.addr(), true));
}

#[no_mangle]
pub unsafe extern "system" fn MmUnlockPages(memorydescriptorlist: *mut MDL) {
    let _kernel = crate::heap::KernelRegion::enter();
    let mdl = memorydescriptorlist;
    if kernel::with(|k| k.mdls.get(&mdl.addr()).copied()) != Some(true) {
        bugcheck("MmUnlockPages on an MDL whose pages are not locked");
    }
    // SAFETY: a live MDL of ours.
    unsafe { (*mdl).MdlFlags &= !(MDL_PAGES_LOCKED | MDL_MAPPED_TO_SYSTEM_VA) };
    kernel::with(|k| k.mdls.insert(mdl.addr(), false));
    // Pages of a view locked for writing: what the driver wrote goes back into the view.
    if let Some((view, offset, address, len)) = kernel::with(|k| k.mdl_views.remove(&mdl.addr())) {
        // SAFETY: the registered stand-in memory of the view range, `len` bytes.
        let data = unsafe { std::slice::from_raw_parts(address as *const u8, len) }.to_vec();
        if let Err(status) = crate::mm::view_write(view, offset, &data) {
            bugcheck(&format!(
                "writing locked pages back into their view failed: {status:#x}"
            ));
        }
    }
}

/// `MmProbeAndLockPages` of a range that is a view of a file: its pages fault in now (paging
/// reads through the file system: legal here, no file system lock may be held yet) and are
/// copied into the range's stand-in memory; for `IoWriteAccess` they are written back at the
/// unlock. Raises the in-page error if a page cannot be read.
fn lock_view_pages(
    mdl: *mut MDL,
    start: *mut u8,
    len: usize,
    view: u32,
    view_offset: u64,
    operation: i32,
) {
    let range_start = kernel::with(|k| {
        k.user_ranges
            .range(..=start.addr())
            .next_back()
            .map(|(a, _)| *a)
    });
    let offset = view_offset + (start.addr() - range_start.unwrap_or(start.addr())) as u64;
    match crate::mm::view_read(view, offset, len) {
        Ok(bytes) => {
            // SAFETY: the registered stand-in memory of the view range holds `len` bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start, len) };
        }
        Err(status) => raise(status),
    }
    kernel::with(|k| {
        k.view_locks += 1;
        if operation == IO_WRITE_ACCESS {
            k.mdl_views
                .insert(mdl.addr(), (view, offset, start.addr(), len));
        }
    });
}

/// `IoWriteAccess`.
const IO_WRITE_ACCESS: i32 = 1;

/// `MDL_SOURCE_IS_NONPAGED_POOL` (wdm.h).
const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
/// `MDL_PARTIAL` (wdm.h).
const MDL_PARTIAL: i16 = 0x0010;

/// `IoBuildPartialMdl`: `target` (an MDL the driver allocated) describes `length` bytes at
/// `virtualaddress` inside `source`'s range, on the same pages. The model maps it at once
/// (the system address of the same bytes of `source`).
#[no_mangle]
pub unsafe extern "system" fn IoBuildPartialMdl(
    sourcemdl: *const MDL,
    targetmdl: *mut MDL,
    virtualaddress: *mut c_void,
    length: u32,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    match kernel::with(|k| k.mdls.get(&targetmdl.addr()).copied()) {
        None => bugcheck("IoBuildPartialMdl into an MDL IoAllocateMdl did not make"),
        Some(true) => bugcheck("IoBuildPartialMdl into an MDL whose pages are locked"),
        Some(false) => {}
    }
    // SAFETY: the caller's live source MDL.
    let source = unsafe { &*sourcemdl };
    let base = source
        .StartVa
        .cast::<u8>()
        .wrapping_add(usize::try_from(source.ByteOffset).unwrap_or(0));
    let inside = virtualaddress.addr() >= base.addr()
        && virtualaddress.addr() + length as usize <= base.addr() + source.ByteCount as usize;
    if !inside {
        bugcheck("IoBuildPartialMdl of a range outside the source MDL");
    }
    if source.MappedSystemVa.is_null() {
        bugcheck("IoBuildPartialMdl of a source MDL whose pages are not locked");
    }
    let delta = virtualaddress.addr() - base.addr();
    // SAFETY: the driver's MDL, at rest.
    let target = unsafe { &mut *targetmdl };
    target.StartVa = virtualaddress;
    target.ByteOffset = 0;
    target.ByteCount = length;
    target.MdlFlags = MDL_PARTIAL;
    target.MappedSystemVa = source
        .MappedSystemVa
        .cast::<u8>()
        .wrapping_add(delta)
        .cast();
}

/// `MmBuildMdlForNonPagedPool`: the MDL's range is resident system memory; its system address
/// is the range itself. (The model cannot tell pool from other kernel memory; it checks the
/// MDL is one the driver allocated and not locked.)
#[no_mangle]
pub unsafe extern "system" fn MmBuildMdlForNonPagedPool(memorydescriptorlist: *mut MDL) {
    let _kernel = crate::heap::KernelRegion::enter();
    let mdl = memorydescriptorlist;
    match kernel::with(|k| k.mdls.get(&mdl.addr()).copied()) {
        None => bugcheck("MmBuildMdlForNonPagedPool on an MDL IoAllocateMdl did not make"),
        Some(true) => bugcheck("MmBuildMdlForNonPagedPool on an MDL whose pages are locked"),
        Some(false) => {}
    }
    // SAFETY: a live MDL of ours.
    let mdl_ref = unsafe { &mut *mdl };
    let offset = usize::try_from(mdl_ref.ByteOffset).unwrap_or(0);
    let start = mdl_ref.StartVa.cast::<u8>().wrapping_add(offset);
    if crate::seh::classify(start.addr(), mdl_ref.ByteCount as usize).is_some() {
        bugcheck("MmBuildMdlForNonPagedPool on user memory");
    }
    mdl_ref.MappedSystemVa = start.cast();
    mdl_ref.MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
}

#[no_mangle]
pub unsafe extern "system" fn IoFreeMdl(mdl: *mut MDL) {
    let _kernel = crate::heap::KernelRegion::enter();
    match kernel::with(|k| k.mdls.remove(&mdl.addr())) {
        None => bugcheck("IoFreeMdl of an MDL IoAllocateMdl did not make"),
        Some(true) => bugcheck("PROCESS_HAS_LOCKED_PAGES: IoFreeMdl of an MDL still locked"),
        Some(false) => {}
    }
    // SAFETY: made by IoAllocateMdl above, freed once.
    drop(unsafe { Box::from_raw(mdl) });
}

/// Is `mdl` one the driver allocated, with its pages locked? (`None`: not the driver's.)
#[must_use]
pub fn driver_mdl_locked(mdl: *mut MDL) -> Option<bool> {
    kernel::with(|k| k.mdls.get(&mdl.addr()).copied())
}
