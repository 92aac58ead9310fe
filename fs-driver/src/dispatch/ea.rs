//! IRP_MJ_QUERY_EA / IRP_MJ_SET_EA: extended attributes (the format has none yet).
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_QUERY_EA`.
    fsd_query_ea => common_query_ea
);

/// `IRP_MJ_QUERY_EA`; filled by the EA work, or STATUS_EAS_NOT_SUPPORTED if the format keeps none.
#[must_use]
pub fn common_query_ea(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_SET_EA`.
    fsd_set_ea => common_set_ea
);

/// `IRP_MJ_SET_EA`; filled by the EA work, or STATUS_EAS_NOT_SUPPORTED if the format keeps none.
#[must_use]
pub fn common_set_ea(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_QUERY_EA, IRP_MJ_SET_EA, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn not_implemented_yet() {
        let outcome = common_query_ea(&context(IRP_MJ_QUERY_EA, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
        let outcome = common_set_ea(&context(IRP_MJ_SET_EA, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
