//! IRP_MJ_FLUSH_BUFFERS: CcFlushCache of the stream, then the volume's metadata.
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_FLUSH_BUFFERS`.
    fsd_flush_buffers => common_flush_buffers
);

/// `IRP_MJ_FLUSH_BUFFERS`; filled by the flush work.
#[must_use]
pub fn common_flush_buffers(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_FLUSH_BUFFERS, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn not_implemented_yet() {
        let outcome = common_flush_buffers(&context(IRP_MJ_FLUSH_BUFFERS, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
