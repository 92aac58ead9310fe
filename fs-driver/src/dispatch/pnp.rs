//! IRP_MJ_PNP: query-remove / remove / surprise-removal of the disk under a mounted volume.
//!
//! Not implemented yet: every request is answered `STATUS_INVALID_DEVICE_REQUEST` until
//! the work named on each routine lands.

use super::{fsd_entry_point, IrpContext, Outcome};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_PNP`.
    fsd_pnp => common_pnp
);

/// `IRP_MJ_PNP`; filled by the mount work (lock, dismount and pass down).
#[must_use]
pub fn common_pnp(_context: &IrpContext) -> Outcome {
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_PNP, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn not_implemented_yet() {
        let outcome = common_pnp(&context(IRP_MJ_PNP, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
