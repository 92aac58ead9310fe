//! IRP_MJ_FILE_SYSTEM_CONTROL: mount (sent to the control device) and the user FSCTLs:
//! dismount here, the other volume FSCTLs in `volctrl`, purge failure mode (NT-12) and
//! cowfat's overlay FSCTLs in `overlay`; unknown codes answer `STATUS_INVALID_DEVICE_REQUEST`.
//!
//! A volume that is not cowfat answers `STATUS_UNRECOGNIZED_VOLUME`: every disk volume the
//! system mounts is offered to each registered disk file system in turn, and any other error
//! would stop the I/O manager from trying the rest. Verify (`IRP_MN_VERIFY_VOLUME`, sent when
//! the real device set `DO_VERIFY_VOLUME`, e.g. after a media change) checks that the medium
//! still holds the volume we mounted.

use alloc::boxed::Box;

use fs_core::{Error, MountOptions, Volume};

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::blockdev::{Access, TargetDevice};
use crate::cachesup;
use crate::global::CFAT_DATA;
use crate::nt::{self, DEVICE_OBJECT, IRP_MN_MOUNT_VOLUME, NTSTATUS, VPB};
use crate::overlay::{self, OverlayOp};
use crate::status::status_of;
use crate::vcb::{Vcb, VcbExclusive};
use crate::wdk_inline::io_get_current_irp_stack_location;
use cowfat_fsctl as api;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_FILE_SYSTEM_CONTROL`.
    fsd_file_system_control => common_file_system_control
);

/// `IRP_MJ_FILE_SYSTEM_CONTROL`.
#[must_use]
pub fn common_file_system_control(context: &IrpContext) -> Outcome {
    match u32::from(context.minor) {
        IRP_MN_MOUNT_VOLUME if context.on_control_device && !context.irp.is_null() => {
            // SAFETY: a mount IRP sent by the I/O manager to our control device.
            let (vpb, target) = unsafe { mount_parameters(context) };
            match mount_volume(vpb, target) {
                Ok(()) => Outcome::status(nt::STATUS_SUCCESS),
                Err(status) => Outcome::status(status),
            }
        }
        IRP_MN_MOUNT_VOLUME => Outcome::status(nt::STATUS_UNRECOGNIZED_VOLUME),
        nt::IRP_MN_USER_FS_REQUEST => user_fs_request(context),
        nt::IRP_MN_VERIFY_VOLUME => verify(context),
        _ => Outcome::not_yet(),
    }
}

/// `Parameters.MountVolume`: the VPB and the device to send sector I/O to.
///
/// # Safety
/// `context.irp` is a valid mount IRP.
unsafe fn mount_parameters(context: &IrpContext) -> (*mut VPB, *mut DEVICE_OBJECT) {
    // SAFETY: the caller's contract.
    let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
    // SAFETY: the current location of a valid IRP.
    let stack = unsafe { &*stack };
    // SAFETY: the MountVolume member is the live one for IRP_MN_MOUNT_VOLUME.
    let params = unsafe { stack.Parameters.MountVolume };
    (params.Vpb, params.DeviceObject)
}

/// fs-core's clock: the kernel's system time.
struct KernelClock;

impl fs_core::time::Clock for KernelClock {
    fn now(&self) -> fs_core::time::NtTime {
        let mut now: i64 = 0;
        // SAFETY: writes one LARGE_INTEGER; any IRQL.
        unsafe { nt::KeQuerySystemTimePrecise(&mut now) };
        fs_core::time::NtTime(u64::try_from(now).unwrap_or(0))
    }
}

/// Mounts the volume on `target` and publishes it through `vpb`. Out of line, like every
/// FSCTL handler: inlined, the dispatcher's frame would hold every arm's locals at once while
/// any one of them runs (NT-23).
#[inline(never)]
fn mount_volume(vpb: *mut VPB, target: *mut DEVICE_OBJECT) -> Result<(), NTSTATUS> {
    if vpb.is_null() || target.is_null() {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    // Dismounted volumes whose last VPB reference went since (fastfat's mount path sweeps
    // the same way).
    crate::vcb::sweep_dismounted();
    // SAFETY: the I/O manager keeps the target device alive while a volume is mounted on it.
    // The mount's own reads may meet a device that wants a verify: they override it.
    let device = unsafe { TargetDevice::open(target, Access::Probe) }?;
    let mut volume = Volume::mount_boxed(device, MountOptions::new(Box::new(KernelClock)))
        .map_err(|e| match e {
            Error::NotCowfat(_) | Error::Corrupt { .. } => nt::STATUS_UNRECOGNIZED_VOLUME,
            e => status_of(&e),
        })?;
    volume.device_mut().make_mounted()?;
    let info = volume.try_volume_info().map_err(|e| status_of(&e))?;
    let spare = crate::vcb::allocate_spare_vpb()?;
    let vdo = match create_volume_device(target) {
        Ok(vdo) => vdo,
        Err(status) => {
            // SAFETY: allocated above, known to nobody.
            unsafe { crate::vcb::free_spare_vpb(spare) };
            return Err(status);
        }
    };
    // SAFETY: a fresh device whose extension was sized for a VCB.
    let extension = unsafe { (*vdo).DeviceExtension }.cast::<Vcb>();
    let vpbs = (vpb, spare);
    // SAFETY: the extension is ours, non-paged, 16-byte aligned and uninitialised.
    if let Err(status) = unsafe { Vcb::init_in_place(extension, vdo, vpbs, target, volume) } {
        // SAFETY: created above, known to nobody.
        unsafe { nt::IoDeleteDevice(vdo) };
        return Err(status);
    }
    // SAFETY: the VPB is ours to fill during mount.
    unsafe { publish_vpb(vpb, vdo, info.serial, &info.label) };
    // SAFETY: our device; initialisation is complete.
    unsafe { (*vdo).Flags &= !nt::DO_DEVICE_INITIALIZING };
    // SAFETY: initialised in place above; it lives until deleted after dismount.
    crate::lazycommit::start(unsafe { &*extension });
    CFAT_DATA.volume_mounted();
    Ok(())
}

/// The volume device object, with a VCB-sized extension.
fn create_volume_device(target: *mut DEVICE_OBJECT) -> Result<*mut DEVICE_OBJECT, NTSTATUS> {
    let mut vdo: *mut DEVICE_OBJECT = core::ptr::null_mut();
    let extension = crate::resrcsup::size_of_u32::<Vcb>();
    // SAFETY: our driver object; no name; the out pointer is valid.
    let status = unsafe {
        nt::IoCreateDevice(
            CFAT_DATA.driver_object(),
            extension,
            core::ptr::null(),
            nt::FILE_DEVICE_DISK_FILE_SYSTEM,
            0,
            false,
            &mut vdo,
        )
    };
    if status < 0 {
        return Err(status);
    }
    // SAFETY: the target device is live.
    let stack_size = unsafe { (*target).StackSize };
    // SAFETY: as above.
    let sector_size = unsafe { (*target).SectorSize };
    // SAFETY: our new device is ours.
    unsafe { (*vdo).StackSize = stack_size.saturating_add(1) };
    // SAFETY: as above.
    unsafe { (*vdo).SectorSize = sector_size };
    Ok(vdo)
}

/// Fills the VPB: our device, serial number and label.
///
/// # Safety
/// `vpb` is the mount's VPB.
unsafe fn publish_vpb(vpb: *mut VPB, vdo: *mut DEVICE_OBJECT, serial: u64, label: &str) {
    // SAFETY: the caller's contract.
    let vpb = unsafe { &mut *vpb };
    vpb.DeviceObject = vdo;
    // The VPB keeps the low 32 bits, as FAT's volume serial number.
    vpb.SerialNumber = (serial & 0xFFFF_FFFF) as u32;
    let mut units = 0usize;
    for (slot, unit) in vpb.VolumeLabel.iter_mut().zip(label.encode_utf16()) {
        *slot = unit;
        units += 1;
    }
    vpb.VolumeLabelLength = u16::try_from(units * 2).unwrap_or(0);
}

/// `IRP_MN_VERIFY_VOLUME`: the medium may have changed; is it still our volume? A read-only
/// mount of what is there now, compared by serial number. `STATUS_WRONG_VOLUME` tells the I/O
/// manager to mount afresh; either way the device's `DO_VERIFY_VOLUME` is cleared.
#[inline(never)]
fn verify(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    let _guard = vcb.acquire_exclusive();
    let status = if vcb.dismounted.get() {
        nt::STATUS_WRONG_VOLUME
    } else {
        match same_volume(vcb) {
            Ok(true) => nt::STATUS_SUCCESS,
            Ok(false) => nt::STATUS_WRONG_VOLUME,
            Err(status) => status,
        }
    };
    // SAFETY: our VPB names the real device, alive while the volume is.
    let real = unsafe { (*vcb.vpb).RealDevice };
    if !real.is_null() {
        // SAFETY: as above; the FS clears the flag once it has verified.
        unsafe { (*real).Flags &= !nt::DO_VERIFY_VOLUME };
    }
    Outcome::status(status)
}

/// Does the target device hold the volume with our serial number?
fn same_volume(vcb: &Vcb) -> Result<bool, NTSTATUS> {
    // SAFETY: the target device outlives the mounted volume.
    // Verify reads carry SL_OVERRIDE_VERIFY_VOLUME: DO_VERIFY_VOLUME is set on the device.
    let device = unsafe { TargetDevice::open(vcb.target, Access::Probe) }?;
    let options = MountOptions::new(Box::new(KernelClock)).read_only();
    match Volume::mount_boxed(device, options) {
        Ok(volume) => Ok(volume.try_volume_info().map_err(|e| status_of(&e))?.serial == vcb.serial),
        Err(Error::NotCowfat(_) | Error::Corrupt { .. }) => Ok(false),
        Err(e) => Err(status_of(&e)),
    }
}

/// `IRP_MN_USER_FS_REQUEST`.
#[inline(never)]
fn user_fs_request(context: &IrpContext) -> Outcome {
    if context.irp.is_null() {
        return Outcome::not_yet();
    }
    // SAFETY: a valid IRP sent to us.
    let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
    // SAFETY: the current location of a valid IRP.
    let stack = unsafe { &*stack };
    // SAFETY: the FileSystemControl member is the live one for user FS requests.
    let code = unsafe { stack.Parameters.FileSystemControl.FsControlCode };
    match code {
        nt::FSCTL_DISMOUNT_VOLUME => dismount(context),
        nt::FSCTL_LOCK_VOLUME => super::volctrl::lock_volume(context),
        nt::FSCTL_UNLOCK_VOLUME => super::volctrl::unlock_volume(context),
        nt::FSCTL_IS_VOLUME_MOUNTED => super::volctrl::is_volume_mounted(context),
        nt::FSCTL_GET_VOLUME_BITMAP => super::volctrl::get_volume_bitmap(context),
        nt::FSCTL_GET_RETRIEVAL_POINTERS => super::volctrl::get_retrieval_pointers(context),
        nt::FSCTL_SET_PURGE_FAILURE_MODE => overlay::set_purge_failure_mode(context),
        api::FSCTL_COWFAT_QUERY_MAPPED_STATE => overlay::query_mapped_state(context),
        api::FSCTL_COWFAT_QUERY_OVERLAY => overlay::query_overlay(context),
        api::FSCTL_COWFAT_COMMIT_FILE => overlay::file_overlay(context, OverlayOp::Commit),
        api::FSCTL_COWFAT_DISCARD_FILE => overlay::file_overlay(context, OverlayOp::Discard),
        api::FSCTL_COWFAT_SEAL_VOLUME => overlay::seal_or_commit_volume(context, true),
        api::FSCTL_COWFAT_COMMIT_VOLUME => overlay::seal_or_commit_volume(context, false),
        api::FSCTL_COWFAT_DISCARD_VOLUME => overlay::discard_volume(context),
        _ => Outcome::not_yet(),
    }
}

/// `FSCTL_DISMOUNT_VOLUME` on a volume handle: stop the lazy commit, run the deferred
/// closes, flush and purge every stream (Mm's and Cc's file objects close as their sections
/// go, NT-04), unmount fs-core, and stop serving. The VCB and the volume device object go
/// with the last close (or the last worker, NT-32/NT-33).
#[inline(never)]
fn dismount(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if !context.is_volume_open(vcb) {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    let guard = vcb.acquire_exclusive();
    if vcb.dismounted.get() {
        return Outcome::status(nt::STATUS_VOLUME_DISMOUNTED);
    }
    // Locked: only the holder may dismount (unlocked, anyone with a volume handle may, and
    // the other handles just start failing).
    if super::volctrl::locked_against(vcb, context.file_object) {
        return Outcome::status(nt::STATUS_ACCESS_DENIED);
    }
    Outcome::status(dismount_volume(vcb, &guard, true))
}

/// Takes the volume out of service (dismount, PnP removal): the lazy commit stopped, deferred
/// closes finished, every stream flushed (unless the disk is gone) and purged, fs-core
/// unmounted, the spare VPB swapped in so the next open mounts afresh on a new VPB while this
/// volume's file objects keep reaching this VCB through the old one (NT-29). The VCB and its
/// device go with the last close (or at once, if nothing is open: the caller checks
/// `Vcb::claim_deletion`). The unmount's status; out of memory for the list of FCBs changes
/// nothing.
pub(crate) fn dismount_volume(vcb: &Vcb, guard: &VcbExclusive<'_>, flush: bool) -> NTSTATUS {
    let ids = match Vcb::fcb_ids(guard) {
        Ok(ids) => ids,
        Err(status) => return status,
    };
    // No lazy commit after this (NT-33): unmount commits for the last time.
    crate::lazycommit::stop(vcb);
    // Closes deferred before now finish here (NT-32); the ones the purges below cause find
    // the VCB resource held by this thread and run at once. Their FCBs leave `ids` stale:
    // each id is looked up again below.
    super::close::run_queued(vcb, guard);
    for id in ids {
        if let Some(fcb) = guard.find(fs_core::FileId(id)) {
            // SAFETY: an FCB of the table; it may be freed inside (a nested close), and is
            // not touched after.
            unsafe { cachesup::flush_and_purge_for_dismount(fcb, flush) };
        }
    }
    let status = match vcb.unmount() {
        Ok(()) => nt::STATUS_SUCCESS,
        Err(status) => status,
    };
    vcb.dismounted.set(true);
    // SAFETY: the VCB resource is held exclusive (the guard).
    unsafe { vcb.swap_vpb() };
    // SAFETY: our (old) VPB; it is no longer mounted, whoever holds it.
    unsafe { (*vcb.vpb).Flags &= !(nt::VPB_MOUNTED as u16) };
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_FILE_SYSTEM_CONTROL;

    #[test]
    fn mount_on_a_volume_device_declines() {
        let mount = context(IRP_MJ_FILE_SYSTEM_CONTROL, IRP_MN_MOUNT_VOLUME, false);
        assert_eq!(
            common_file_system_control(&mount),
            Outcome::status(nt::STATUS_UNRECOGNIZED_VOLUME)
        );
        let verify = context(IRP_MJ_FILE_SYSTEM_CONTROL, nt::IRP_MN_VERIFY_VOLUME, false);
        assert_eq!(
            common_file_system_control(&verify),
            Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST)
        );
    }
}
