//! IRP_MJ_PNP: query-remove, remove, cancel-remove and surprise removal of the disk under a
//! mounted volume (NT-29; fastfat's `pnp.c`). The file system does its part and passes the
//! request down to the target device; any other minor goes down untouched.
//!
//! - Query-remove: lock the volume as `FSCTL_LOCK_VOLUME` would (refused while any handle is
//!   open: the request then ends here, failed), flush and purge, pass it down and wait; if
//!   the disk agrees, dismount at once (the spare VPB goes in) so nothing holds the disk,
//!   else unlock.
//! - Remove: pass it down, then dismount without flushing (the disk is going).
//! - Surprise removal: the disk is already gone: pass it down, dismount without flushing.
//!   Open handles fail from now on (`STATUS_VOLUME_DISMOUNTED`); their cleanups and closes
//!   still come here and tear the VCB down with the last one.
//! - Cancel-remove: drop the query's lock, pass it down.
//!
//! Passing down synchronously: the stack location copied to the next, a completion routine
//! that signals an event and takes the IRP back (`STATUS_MORE_PROCESSING_REQUIRED`), then
//! this driver completes it with the disk's status.

use core::ptr;

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::nt::{self, IRP, NTSTATUS};
use crate::vcb::Vcb;
use crate::wdk_inline::{
    io_copy_current_irp_stack_location_to_next, io_skip_current_irp_stack_location,
};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_PNP`.
    fsd_pnp => common_pnp
);

/// `IRP_MJ_PNP`.
#[must_use]
pub fn common_pnp(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if context.irp.is_null() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // A volume already dismounted no longer stands in front of the disk: pass it on.
    if vcb.dismounted.get() {
        return pass_down(vcb, context.irp);
    }
    match u32::from(context.minor) {
        nt::IRP_MN_QUERY_REMOVE_DEVICE => query_remove(vcb, context.irp),
        nt::IRP_MN_REMOVE_DEVICE | nt::IRP_MN_SURPRISE_REMOVAL => remove(vcb, context.irp),
        nt::IRP_MN_CANCEL_REMOVE_DEVICE => cancel_remove(vcb, context.irp),
        _ => pass_down(vcb, context.irp),
    }
}

/// Hands the IRP to the target device as it is; the disk completes it.
fn pass_down(vcb: &Vcb, irp: *mut IRP) -> Outcome {
    // SAFETY: our IRP, handed on whole: not touched after the call.
    unsafe { io_skip_current_irp_stack_location(irp) };
    // SAFETY: the target is referenced for the VCB's life.
    Outcome::CompletedBy(unsafe { nt::IofCallDriver(vcb.target, irp) })
}

#[inline(never)]
fn query_remove(vcb: &Vcb, irp: *mut IRP) -> Outcome {
    let owner = vcb.pnp_lock_owner();
    // No volume handle of its own: any open handle refuses the lock.
    if let Err(status) = super::volctrl::lock(vcb, owner, 0) {
        return Outcome::status(status);
    }
    // SAFETY: our IRP, still ours (the completion routine takes it back).
    let status = unsafe { call_down_and_wait(vcb, irp) };
    let vcb_ptr = ptr::from_ref(vcb).cast_mut();
    let teardown = {
        let guard = vcb.acquire_exclusive();
        if status >= 0 {
            // The lock flushed and purged everything; nothing is left to flush.
            let _ = super::fsctrl::dismount_volume(vcb, &guard, false);
            vcb.claim_deletion(&guard)
        } else {
            // SAFETY: under the VCB resource exclusive.
            unsafe { unlock_pnp(vcb) };
            false
        }
    };
    if teardown {
        // SAFETY: dismounted and unused; no guard alive; `vcb` not used again. The device
        // object lives until the I/O manager is done with this IRP.
        unsafe { Vcb::delete(vcb_ptr) };
    }
    Outcome::status(status)
}

#[inline(never)]
fn remove(vcb: &Vcb, irp: *mut IRP) -> Outcome {
    {
        let _guard = vcb.acquire_exclusive();
        // SAFETY: under the VCB resource exclusive.
        unsafe { unlock_pnp(vcb) };
    }
    // SAFETY: our IRP.
    let status = unsafe { call_down_and_wait(vcb, irp) };
    let vcb_ptr = ptr::from_ref(vcb).cast_mut();
    let teardown = {
        let guard = vcb.acquire_exclusive();
        // The disk is gone or going: what is dirty cannot reach it.
        let _ = super::fsctrl::dismount_volume(vcb, &guard, false);
        vcb.claim_deletion(&guard)
    };
    if teardown {
        // SAFETY: as in `query_remove`.
        unsafe { Vcb::delete(vcb_ptr) };
    }
    Outcome::status(status)
}

#[inline(never)]
fn cancel_remove(vcb: &Vcb, irp: *mut IRP) -> Outcome {
    {
        let _guard = vcb.acquire_exclusive();
        // SAFETY: under the VCB resource exclusive.
        unsafe { unlock_pnp(vcb) };
    }
    // SAFETY: our IRP.
    Outcome::status(unsafe { call_down_and_wait(vcb, irp) })
}

/// Drops a lock a query-remove took (not a handle's).
///
/// # Safety
/// The caller holds the VCB resource exclusive.
unsafe fn unlock_pnp(vcb: &Vcb) {
    // SAFETY: the caller's contract.
    let locked_by = unsafe { &mut *vcb.locked_by.get() };
    if *locked_by == vcb.pnp_lock_owner() {
        *locked_by = ptr::null_mut();
    }
}

/// Passes the IRP down with our location copied and waits for the disk to complete it; the
/// IRP is ours again afterwards (to complete). The disk's status.
///
/// # Safety
/// `irp` is our IRP with a next stack location.
unsafe fn call_down_and_wait(vcb: &Vcb, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe { io_copy_current_irp_stack_location_to_next(irp) };
    // SAFETY: the target is referenced for the VCB's life; the next location is filled.
    unsafe { crate::blockdev::send_and_wait(vcb.target, irp) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_PNP;

    #[test]
    fn the_control_device_answers_no_pnp() {
        let outcome = common_pnp(&context(IRP_MJ_PNP, 0, true));
        assert_eq!(outcome, Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST));
    }
}
