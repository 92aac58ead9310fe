//! IRP_MJ_SHUTDOWN: flush every mounted volume before the system goes down.
//!
//! The volumes are the volume device objects on the driver object's device list (each
//! extension holds a VCB); each one's streams and metadata are flushed ([`flush_volume`]).

use super::flush::flush_volume;
use super::{fsd_entry_point, IrpContext, Outcome};
use crate::global::CFAT_DATA;
use crate::nt;
use crate::vcb::Vcb;

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
    let driver = CFAT_DATA.driver_object();
    if driver.is_null() {
        return Outcome::status(nt::STATUS_SUCCESS);
    }
    // SAFETY: our live driver object; its device list holds our live devices.
    let mut device = unsafe { (*driver).DeviceObject };
    let mut status = nt::STATUS_SUCCESS;
    while !device.is_null() {
        // SAFETY: a live device of this driver.
        if let Some(vcb) = unsafe { Vcb::of_device(device) } {
            if !vcb.dismounted.get() {
                let s = flush_volume(vcb);
                if s < 0 && status >= 0 {
                    status = s;
                }
            }
        }
        // SAFETY: as above.
        device = unsafe { (*device).NextDevice };
    }
    Outcome::status(status)
}
