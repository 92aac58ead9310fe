//! IRP_MJ_CLEANUP: the last handle of a file object went away (NT-05).
//!
//! Handles of the control device need no work; volume file objects get theirs with the
//! cleanup work (CcUninitializeCacheMap, FsRtlNotifyCleanup, FsRtlFastUnlockAll,
//! share access, delete-on-close).

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::nt;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_CLEANUP`.
    fsd_cleanup => common_cleanup
);

/// `IRP_MJ_CLEANUP`.
#[must_use]
pub fn common_cleanup(context: &IrpContext) -> Outcome {
    if context.on_control_device {
        return Outcome::status(nt::STATUS_SUCCESS);
    }
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_CLEANUP;

    #[test]
    fn control_device_handles_need_no_work() {
        let outcome = common_cleanup(&context(IRP_MJ_CLEANUP, 0, true));
        assert_eq!(outcome, Outcome::status(nt::STATUS_SUCCESS));
        assert_eq!(
            common_cleanup(&context(IRP_MJ_CLEANUP, 0, false)),
            Outcome::not_yet()
        );
    }
}
