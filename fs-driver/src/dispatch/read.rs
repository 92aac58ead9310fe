//! IRP_MJ_READ: cached, non-cached and paging reads (NT-13, NT-16, NT-17).
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_READ`.
    fsd_read => common_read
);

/// `IRP_MJ_READ`; filled by the read work (paging reads fill past ValidDataLength with zeros, NT-13).
#[must_use]
pub fn common_read(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_READ, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn not_implemented_yet() {
        let outcome = common_read(&context(IRP_MJ_READ, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
