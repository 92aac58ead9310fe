//! IRP_MJ_CLOSE: the last reference of a file object went away (fastfat's `close.c`; NT-04,
//! NT-05). Mm may close long after the last handle (seed 000): the FCB lives until then.
//!
//! The CCB goes; the FCB goes with its last file object (an unlinked file's record is freed
//! then, and its unused overlay reservation given back); after a dismount the VCB and the
//! volume device object go with the volume's last file object.

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::fcb::{self, Ccb, Fcb};
use crate::nt;
use crate::vcb::{Vcb, VcbExclusive};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_CLOSE`.
    fsd_close => common_close
);

/// `IRP_MJ_CLOSE`.
#[must_use]
pub fn common_close(context: &IrpContext) -> Outcome {
    if context.on_control_device {
        return Outcome::status(nt::STATUS_SUCCESS);
    }
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    let vcb_ptr = core::ptr::from_ref(vcb).cast_mut();
    let teardown = {
        let guard = vcb.acquire_exclusive();
        // SAFETY: the file object's CCB, freed once here.
        unsafe { Ccb::free(context.ccb()) };
        if context.is_volume_open(vcb) {
            vcb.volume_opens
                .set(vcb.volume_opens.get().saturating_sub(1));
        // SAFETY: the request's file object.
        } else if let Some(fcb) = unsafe { fcb::fcb_of_file_object(context.file_object) } {
            // SAFETY: the FCB of this file object, under the VCB resource.
            unsafe { close_fcb(vcb, &guard, fcb) };
        }
        vcb.dismounted.get() && vcb.is_unused(&guard)
    };
    if teardown {
        // SAFETY: dismounted and unused: this was the volume's last file object; the guard
        // is gone and `vcb` is not used again.
        unsafe { Vcb::delete(vcb_ptr) };
    }
    Outcome::status(nt::STATUS_SUCCESS)
}

/// Drops one file object's reference; the last one frees the FCB.
///
/// # Safety
/// `fcb` is the FCB of the file object being closed; the VCB resource is held.
unsafe fn close_fcb(vcb: &Vcb, guard: &VcbExclusive<'_>, fcb: *mut Fcb) {
    // SAFETY: alive until freed below.
    let fcb_ref = unsafe { &*fcb };
    let refs = fcb_ref.reference_count.get().saturating_sub(1);
    fcb_ref.reference_count.set(refs);
    if refs != 0 {
        return;
    }
    let id = fcb_ref.id;
    let unlinked = fcb_ref.unlinked.get();
    guard.remove_fcb(id);
    if !vcb.dismounted.get() {
        let _ = vcb.with_volume(|v| {
            v.release_overlay_reservation(id);
            if unlinked {
                v.purge_orphan(id)?;
            }
            Ok(())
        });
    }
    // SAFETY: out of the table, no file object left; freed once.
    unsafe { Fcb::delete(fcb) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_CLOSE;

    #[test]
    fn control_device_handles_need_no_work() {
        let outcome = common_close(&context(IRP_MJ_CLOSE, 0, true));
        assert_eq!(outcome, Outcome::status(nt::STATUS_SUCCESS));
    }
}
