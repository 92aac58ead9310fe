//! A caller's buffers (NT-25): probed and touched only inside an SEH frame, or locked with an
//! MDL before any file system lock is taken (fastfat's `FatLockUserBuffer`,
//! `FatMapUserBuffer` and its FSCTL probes).
//!
//! A user-mode caller's address may be invalid, a kernel address, or a view of a file on this
//! very volume (touching it may fault into our own paging read). So: `METHOD_NEITHER` and
//! directory buffers are probed and copied to or from kernel memory inside
//! [`seh::user_buffer`]; the file system's own work (fs-core, under its locks) only ever sees
//! kernel memory. Non-cached I/O locks the buffer first ([`LockedBuffer`]) and works on the
//! locked pages' system address.

use core::ptr;

use crate::nt::{self, IRP, MDL, NTSTATUS};
use crate::seh;

/// Did a user-mode caller send `irp` (`Irp->RequestorMode == UserMode`)?
///
/// # Safety
/// `irp` is a valid IRP.
#[must_use]
pub unsafe fn from_user_mode(irp: *const IRP) -> bool {
    // SAFETY: the caller's contract.
    i32::from(unsafe { (*irp).RequestorMode }) == nt::UserMode
}

/// Copies `data` to the caller's `buffer` (`buffer` holds at least `data.len()` bytes by the
/// request's word): probed for writing first when the caller is in user mode, and the copy
/// done inside an SEH frame.
///
/// # Errors
/// `STATUS_INVALID_USER_BUFFER` (or the expected status raised) when the buffer is not the
/// caller's writable memory; nothing is written then.
///
/// # Safety
/// `irp` is a valid IRP whose requester owns `buffer`.
pub unsafe fn copy_out(irp: *const IRP, buffer: *mut u8, data: &[u8]) -> Result<(), NTSTATUS> {
    if data.is_empty() {
        return Ok(());
    }
    if buffer.is_null() {
        return Err(nt::STATUS_INVALID_USER_BUFFER);
    }
    // SAFETY: the caller's contract.
    let user = unsafe { from_user_mode(irp) };
    seh::user_buffer(|| {
        if user {
            // SAFETY: probing raises rather than faults; any address may be passed.
            unsafe { nt::ProbeForWrite(buffer.cast(), data.len(), 1) };
        }
        // SAFETY: probed (or a kernel caller's buffer); a fault here raises into the frame.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), buffer, data.len()) };
    })
}

/// Copies `out.len()` bytes of the caller's `buffer` into `out`, probed for reading when the
/// caller is in user mode, inside an SEH frame.
///
/// # Errors
/// As [`copy_out`].
///
/// # Safety
/// `irp` is a valid IRP whose requester owns `buffer`.
pub unsafe fn copy_in(irp: *const IRP, buffer: *const u8, out: &mut [u8]) -> Result<(), NTSTATUS> {
    if out.is_empty() {
        return Ok(());
    }
    if buffer.is_null() {
        return Err(nt::STATUS_INVALID_USER_BUFFER);
    }
    // SAFETY: the caller's contract.
    let user = unsafe { from_user_mode(irp) };
    seh::user_buffer(|| {
        if user {
            // SAFETY: as in `copy_out`.
            unsafe { nt::ProbeForRead(buffer.cast(), out.len(), 1) };
        }
        // SAFETY: as in `copy_out`.
        unsafe { ptr::copy_nonoverlapping(buffer, out.as_mut_ptr(), out.len()) };
    })
}

/// A caller's buffer locked in memory for the length of a request (`IoAllocateMdl` +
/// `MmProbeAndLockPages` in the requester's mode), mapped non-executable in system space.
/// Unlocked and freed on drop.
pub struct LockedBuffer {
    mdl: *mut MDL,
    address: *mut u8,
}

impl LockedBuffer {
    /// Locks `[buffer, buffer + len)`; `for_write` when the file system writes into it (a
    /// read request).
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` without an MDL or a mapping;
    /// `STATUS_INVALID_USER_BUFFER` (or the expected status raised) when the pages cannot be
    /// locked.
    ///
    /// # Safety
    /// `irp` is a valid IRP whose requester owns `buffer`; no file system lock is held (the
    /// probe may fault into our own paging read).
    pub unsafe fn lock(
        irp: *const IRP,
        buffer: *mut u8,
        len: u32,
        for_write: bool,
    ) -> Result<Self, NTSTATUS> {
        // SAFETY: no IRP to attach to: the MDL is ours alone.
        let mdl = unsafe { nt::IoAllocateMdl(buffer.cast(), len, false, false, ptr::null_mut()) };
        if mdl.is_null() {
            return Err(nt::STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: the caller's contract.
        let mode = unsafe { (*irp).RequestorMode };
        let operation = if for_write {
            nt::IoWriteAccess
        } else {
            nt::IoReadAccess
        };
        // SAFETY: a fresh MDL describing the caller's range; raises on a bad range.
        let locked = seh::user_buffer(|| unsafe { nt::MmProbeAndLockPages(mdl, mode, operation) });
        if let Err(status) = locked {
            // SAFETY: our MDL, never locked.
            unsafe { nt::IoFreeMdl(mdl) };
            return Err(status);
        }
        let mut this = Self {
            mdl,
            address: ptr::null_mut(),
        };
        // SAFETY: locked pages.
        let address = unsafe { crate::dispatch::rwsup::mdl_system_address(mdl) };
        if address.is_null() {
            return Err(nt::STATUS_INSUFFICIENT_RESOURCES);
        }
        this.address = address.cast();
        Ok(this)
    }

    /// The locked pages' system address.
    #[must_use]
    pub fn address(&self) -> *mut u8 {
        self.address
    }

    /// The MDL that describes the locked pages.
    #[must_use]
    pub fn mdl(&self) -> *mut MDL {
        self.mdl
    }
}

impl Drop for LockedBuffer {
    fn drop(&mut self) {
        // SAFETY: our MDL, locked in `lock`; its mapping goes with the unlock.
        unsafe { nt::MmUnlockPages(self.mdl) };
        // SAFETY: our MDL, unlocked, freed once.
        unsafe { nt::IoFreeMdl(self.mdl) };
    }
}
