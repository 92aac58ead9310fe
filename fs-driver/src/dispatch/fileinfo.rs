//! IRP_MJ_QUERY_INFORMATION / IRP_MJ_SET_INFORMATION (sizes go through MmCanFileBeTruncated, NT-10).
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_QUERY_INFORMATION`.
    fsd_query_information => common_query_information
);

/// `IRP_MJ_QUERY_INFORMATION`; filled by the fileinfo work.
#[must_use]
pub fn common_query_information(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_SET_INFORMATION`.
    fsd_set_information => common_set_information
);

/// `IRP_MJ_SET_INFORMATION`; filled by the fileinfo work (truncation of mapped files, NT-10; rename, disposition, NT-09).
#[must_use]
pub fn common_set_information(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{
        IRP_MJ_QUERY_INFORMATION, IRP_MJ_SET_INFORMATION, STATUS_INVALID_DEVICE_REQUEST,
    };

    #[test]
    fn not_implemented_yet() {
        let outcome = common_query_information(&context(IRP_MJ_QUERY_INFORMATION, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
        let outcome = common_set_information(&context(IRP_MJ_SET_INFORMATION, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
