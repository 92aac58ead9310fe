//! IRP_MJ_LOCK_CONTROL: byte-range locks through the FsRtl file lock package on the FCB's
//! `FILE_LOCK` (fastfat's `lockctrl.c`), the checks read and write make against them, and the
//! per-handle end of locks and change notification at cleanup (NT-05).

use core::ptr;

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::fcb::Fcb;
use crate::nt::{self, IRP, NTSTATUS};
use crate::resrcsup::ResourceGuard;
use crate::vcb::Vcb;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_LOCK_CONTROL`.
    fsd_lock_control => common_lock_control
);

/// `IRP_MJ_LOCK_CONTROL`: FsRtl grants, refuses or releases and completes the IRP itself.
#[must_use]
pub fn common_lock_control(context: &IrpContext) -> Outcome {
    if context.vcb().is_none() || context.irp.is_null() {
        return Outcome::not_yet();
    }
    let Some(fcb) = context.fcb() else {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    };
    if fcb.is_directory {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: initialised with the FCB (fastfat holds it shared across the call).
    let _main = unsafe { ResourceGuard::shared(fcb.resource()) };
    // SAFETY: the FCB's lock and a lock control IRP; FsRtl completes it.
    let status = unsafe { nt::FsRtlProcessFileLock(fcb.file_lock.get(), context.irp, ptr::null()) };
    // The IRP is FsRtl's now: the FSD must not complete it again.
    Outcome::CompletedBy(status)
}

/// A read may proceed past the file's byte-range locks (paging reads always may).
///
/// # Errors
/// `STATUS_FILE_LOCK_CONFLICT`.
///
/// # Safety
/// `irp` is the read IRP being dispatched for `fcb`.
pub unsafe fn check_read(fcb: &Fcb, irp: *const IRP, paging: bool) -> Result<(), NTSTATUS> {
    // SAFETY: the caller's contract.
    if paging || unsafe { nt::FsRtlCheckLockForReadAccess(fcb.file_lock.get(), irp) } {
        Ok(())
    } else {
        Err(nt::STATUS_FILE_LOCK_CONFLICT)
    }
}

/// A write may proceed past the file's byte-range locks (paging writes always may).
///
/// # Errors
/// `STATUS_FILE_LOCK_CONFLICT`.
///
/// # Safety
/// `irp` is the write IRP being dispatched for `fcb`.
pub unsafe fn check_write(fcb: &Fcb, irp: *const IRP, paging: bool) -> Result<(), NTSTATUS> {
    // SAFETY: the caller's contract.
    if paging || unsafe { nt::FsRtlCheckLockForWriteAccess(fcb.file_lock.get(), irp) } {
        Ok(())
    } else {
        Err(nt::STATUS_FILE_LOCK_CONFLICT)
    }
}

/// The handle's last cleanup: its change notification watch ends (`FsRtlNotifyCleanup`
/// completes a pended watcher with `STATUS_NOTIFY_CLEANUP`), its writes are reported to
/// watchers (NT-22) and its byte-range locks go (`FsRtlFastUnlockAll`).
pub fn cleanup_handle(vcb: &Vcb, context: &IrpContext, fcb: &Fcb) {
    let ccb = context.ccb();
    if fcb.is_directory {
        if !ccb.is_null() {
            // SAFETY: the volume's notify sync and list; the CCB identifies the watch.
            unsafe {
                nt::FsRtlNotifyCleanup(
                    vcb.notify_sync(),
                    vcb.notify_list(),
                    ccb.cast_const().cast(),
                )
            };
        }
        return;
    }
    // SAFETY: the cleanup request's file object.
    unsafe { crate::notify::report_at_cleanup(vcb, fcb, context.file_object) };
    if context.irp.is_null() {
        return;
    }
    // SAFETY: the cleanup IRP; the requestor is the process whose handle is closing.
    let process = unsafe { nt::IoGetRequestorProcess(context.irp) };
    // SAFETY: the FCB's lock and this handle's file object.
    let _ = unsafe {
        nt::FsRtlFastUnlockAll(
            fcb.file_lock.get(),
            context.file_object,
            process,
            ptr::null(),
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_LOCK_CONTROL, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn requests_off_a_volume_are_refused() {
        let outcome = common_lock_control(&context(IRP_MJ_LOCK_CONTROL, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
