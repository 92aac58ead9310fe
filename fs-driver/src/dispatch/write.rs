//! IRP_MJ_WRITE: cached, non-cached and paging writes into the overlay (NT-14, NT-15, NT-19, NT-20).
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_WRITE`.
    fsd_write => common_write
);

/// `IRP_MJ_WRITE`; filled by the write work (paging writes never extend FileSize, NT-14).
#[must_use]
pub fn common_write(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_WRITE, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn not_implemented_yet() {
        let outcome = common_write(&context(IRP_MJ_WRITE, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
