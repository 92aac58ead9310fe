//! IRP_MJ_LOCK_CONTROL: byte-range locks (FsRtlProcessFileLock on the FCB's FILE_LOCK).
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_LOCK_CONTROL`.
    fsd_lock_control => common_lock_control
);

/// `IRP_MJ_LOCK_CONTROL`; filled by the lockctrl work.
#[must_use]
pub fn common_lock_control(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_LOCK_CONTROL, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn not_implemented_yet() {
        let outcome = common_lock_control(&context(IRP_MJ_LOCK_CONTROL, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
