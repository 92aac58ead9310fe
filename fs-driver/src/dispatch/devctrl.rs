//! IRP_MJ_DEVICE_CONTROL: IOCTLs on a volume pass down to the disk below it.
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_DEVICE_CONTROL`.
    fsd_device_control => common_device_control
);

/// `IRP_MJ_DEVICE_CONTROL`; filled by the mount work (it owns the target device to pass them to).
#[must_use]
pub fn common_device_control(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_DEVICE_CONTROL, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn not_implemented_yet() {
        let outcome = common_device_control(&context(IRP_MJ_DEVICE_CONTROL, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
