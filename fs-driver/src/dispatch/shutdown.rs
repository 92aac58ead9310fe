//! IRP_MJ_SHUTDOWN: flush every mounted volume before the system goes down.
//!
//! With no volume mounted there is nothing to flush; the mount work adds the per-volume flush.

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::global::CFAT_DATA;
use crate::nt;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_SHUTDOWN`.
    fsd_shutdown => common_shutdown
);

/// `IRP_MJ_SHUTDOWN`.
#[must_use]
pub fn common_shutdown(_context: &IrpContext) -> Outcome {
    if CFAT_DATA.mounted_volumes() == 0 {
        return Outcome::status(nt::STATUS_SUCCESS);
    }
    Outcome::not_yet()
}
