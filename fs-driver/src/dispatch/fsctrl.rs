//! IRP_MJ_FILE_SYSTEM_CONTROL: mount and verify (sent to the control device), user FSCTLs
//! (lock/unlock/dismount volume, purge failure mode NT-12, cowfat's overlay FSCTLs).
//!
//! Until the mount work lands, `IRP_MN_MOUNT_VOLUME` answers `STATUS_UNRECOGNIZED_VOLUME`:
//! every disk volume the system mounts is offered to each registered disk file system in
//! turn, and any other error would stop the I/O manager from trying the rest.

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::nt::{self, IRP_MN_MOUNT_VOLUME};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_FILE_SYSTEM_CONTROL`.
    fsd_file_system_control => common_file_system_control
);

/// `IRP_MJ_FILE_SYSTEM_CONTROL`.
#[must_use]
pub fn common_file_system_control(context: &IrpContext) -> Outcome {
    if u32::from(context.minor) == IRP_MN_MOUNT_VOLUME {
        // Recognising a cowfat superblock comes with the mount work; claim nothing before it.
        return Outcome::status(nt::STATUS_UNRECOGNIZED_VOLUME);
    }
    Outcome::not_yet()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_FILE_SYSTEM_CONTROL;

    #[test]
    fn mount_declines_so_other_file_systems_still_mount() {
        let mount = context(IRP_MJ_FILE_SYSTEM_CONTROL, IRP_MN_MOUNT_VOLUME, true);
        assert_eq!(
            common_file_system_control(&mount),
            Outcome::status(nt::STATUS_UNRECOGNIZED_VOLUME)
        );
        let user_fsctl = context(IRP_MJ_FILE_SYSTEM_CONTROL, 0, false);
        assert_eq!(common_file_system_control(&user_fsctl), Outcome::not_yet());
    }
}
