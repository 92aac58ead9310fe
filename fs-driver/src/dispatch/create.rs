//! IRP_MJ_CREATE.
//!
//! Opens of the file system control device (`\CowFat`, used by format and test tools for
//! FSCTLs) are handled here now; opens on volumes come with the create work (FCB/CCB setup,
//! share access with MmDoesFileHaveUserWritableReferences, NT-11, and MmFlushImageSection,
//! NT-09) and are refused until then.

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::nt::{self, FILE_OPENED};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_CREATE`.
    fsd_create => common_create
);

/// `IRP_MJ_CREATE`.
#[must_use]
pub fn common_create(context: &IrpContext) -> Outcome {
    if !context.on_control_device {
        return Outcome::not_yet();
    }
    // SAFETY: the create stack location of a valid IRP carries a valid file object (or none).
    if unsafe { names_something_below(context.file_object) } {
        // There is no namespace under the control device.
        return Outcome::status(nt::STATUS_OBJECT_NAME_INVALID);
    }
    Outcome::Complete {
        status: nt::STATUS_SUCCESS,
        information: FILE_OPENED,
    }
}

/// Does the open name a path below the device (`\CowFat\x`) rather than the device itself?
///
/// # Safety
/// `file_object` is NULL or a valid file object.
unsafe fn names_something_below(file_object: *const nt::FILE_OBJECT) -> bool {
    if file_object.is_null() {
        return false;
    }
    // SAFETY: valid file object per the caller.
    let name_length = unsafe { (*file_object).FileName.Length };
    name_length != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_CREATE;

    #[test]
    fn control_device_opens_and_volume_opens_wait_for_the_create_work() {
        let outcome = common_create(&context(IRP_MJ_CREATE, 0, true));
        assert_eq!(
            outcome,
            Outcome::Complete {
                status: nt::STATUS_SUCCESS,
                information: FILE_OPENED
            }
        );
        let outcome = common_create(&context(IRP_MJ_CREATE, 0, false));
        assert_eq!(outcome, Outcome::not_yet());
    }
}
