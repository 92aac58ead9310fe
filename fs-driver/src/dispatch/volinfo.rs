//! IRP_MJ_QUERY_VOLUME_INFORMATION / IRP_MJ_SET_VOLUME_INFORMATION.
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_QUERY_VOLUME_INFORMATION`.
    fsd_query_volume_information => common_query_volume_information
);

/// `IRP_MJ_QUERY_VOLUME_INFORMATION`; filled by the volinfo work.
#[must_use]
pub fn common_query_volume_information(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_SET_VOLUME_INFORMATION`.
    fsd_set_volume_information => common_set_volume_information
);

/// `IRP_MJ_SET_VOLUME_INFORMATION`; filled by the volinfo work (label).
#[must_use]
pub fn common_set_volume_information(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{
        IRP_MJ_QUERY_VOLUME_INFORMATION, IRP_MJ_SET_VOLUME_INFORMATION,
        STATUS_INVALID_DEVICE_REQUEST,
    };

    #[test]
    fn not_implemented_yet() {
        let outcome =
            common_query_volume_information(&context(IRP_MJ_QUERY_VOLUME_INFORMATION, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
        let outcome =
            common_set_volume_information(&context(IRP_MJ_SET_VOLUME_INFORMATION, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
