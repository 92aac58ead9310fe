//! IRP_MJ_DEVICE_CONTROL: IOCTLs on a volume (or a file of it) pass down to the disk below
//! it (NT-29; fastfat's `devctrl.c`). cowfat answers none itself: the IRP goes to the target
//! device with this driver's stack location as it is (`IoSkipCurrentIrpStackLocation`), and
//! the disk completes it. The volume device was created one stack location deeper than the
//! target for this.

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::nt;
use crate::wdk_inline::io_skip_current_irp_stack_location;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_DEVICE_CONTROL`.
    fsd_device_control => common_device_control
);

/// `IRP_MJ_DEVICE_CONTROL`.
#[must_use]
pub fn common_device_control(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if context.irp.is_null() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: our IRP, handed on whole: we do not touch it after the call.
    unsafe { io_skip_current_irp_stack_location(context.irp) };
    // SAFETY: the target device is referenced for the VCB's life (NT-29); the IRP is valid.
    let status = unsafe { nt::IofCallDriver(vcb.target, context.irp) };
    Outcome::CompletedBy(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_DEVICE_CONTROL;

    #[test]
    fn the_control_device_answers_no_device_controls() {
        let outcome = common_device_control(&context(IRP_MJ_DEVICE_CONTROL, 0, true));
        assert_eq!(outcome, Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST));
    }
}
