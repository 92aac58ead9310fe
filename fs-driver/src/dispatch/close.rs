//! IRP_MJ_CLOSE: the last reference of a file object went away (NT-04, NT-05).
//!
//! Handles of the control device need no work; volume file objects get theirs with the
//! close work (CCB and FCB teardown; Mm may close long after the last handle,
//! seed 000).

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::nt;

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
    Outcome::not_yet()
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
        assert_eq!(
            common_close(&context(IRP_MJ_CLOSE, 0, false)),
            Outcome::not_yet()
        );
    }
}
