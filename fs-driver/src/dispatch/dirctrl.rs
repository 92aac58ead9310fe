//! IRP_MJ_DIRECTORY_CONTROL: enumeration and change notification (NT-22).
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_DIRECTORY_CONTROL`.
    fsd_directory_control => common_directory_control
);

/// `IRP_MJ_DIRECTORY_CONTROL`; filled by the dirctrl work (FsRtlNotifyFullChangeDirectory, NT-22).
#[must_use]
pub fn common_directory_control(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_DIRECTORY_CONTROL, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn not_implemented_yet() {
        let outcome = common_directory_control(&context(IRP_MJ_DIRECTORY_CONTROL, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
