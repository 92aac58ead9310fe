//! Volume FSCTLs of issue 7 (fastfat's `fsctrl.c` `FatLockVolume` / `FatUnlockVolume` /
//! `FatIsVolumeMounted`): `FSCTL_LOCK_VOLUME`, `FSCTL_UNLOCK_VOLUME`,
//! `FSCTL_IS_VOLUME_MOUNTED`. `fsctrl` has one match arm per code that calls in here.
//!
//! Locking flushes and purges every stream and succeeds only when nothing else has the volume
//! open: no file handle, no other volume handle, and no user view (a purge fails while a
//! view maps the stream, NT-08, even after every handle closed). While locked, opens fail
//! with `STATUS_ACCESS_DENIED`; the lock goes with an unlock or the locking handle's cleanup.

use core::ptr;

use super::{IrpContext, Outcome};
use crate::cachesup;
use crate::nt::{self, FILE_OBJECT, NTSTATUS};
use crate::vcb::Vcb;

/// `FSCTL_LOCK_VOLUME`.
#[must_use]
pub fn lock_volume(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if !context.is_volume_open(vcb) {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    Outcome::status(match lock(vcb, context.file_object) {
        Ok(()) => nt::STATUS_SUCCESS,
        Err(status) => status,
    })
}

fn lock(vcb: &Vcb, file_object: *mut FILE_OBJECT) -> Result<(), NTSTATUS> {
    let guard = vcb.acquire_exclusive();
    if vcb.dismounted.get() {
        return Err(nt::STATUS_VOLUME_DISMOUNTED);
    }
    // SAFETY: read under the VCB resource, which every writer holds.
    if !unsafe { *vcb.locked_by.get() }.is_null() || vcb.volume_opens.get() > 1 {
        return Err(nt::STATUS_ACCESS_DENIED);
    }
    for id in Vcb::fcb_ids(&guard) {
        let Some(fcb) = guard.find(fs_core::FileId(id)) else {
            continue;
        };
        // SAFETY: in the table, alive while the VCB resource is held (until the purge).
        let fcb_ref = unsafe { &*fcb };
        if fcb_ref.open_count.get() > 0 {
            return Err(nt::STATUS_ACCESS_DENIED);
        }
        if !fcb_ref.is_directory && cachesup::flush(fcb_ref, None) < 0 {
            return Err(nt::STATUS_ACCESS_DENIED);
        }
        let sop = fcb_ref.section_object_pointers();
        // SAFETY: the SOP is valid on entry; the purge may close the stream's last file
        // object (NT-04) and free the FCB, which is not touched afterwards.
        if !unsafe { cachesup::purge_sop(sop, None, 0) } {
            return Err(nt::STATUS_ACCESS_DENIED);
        }
    }
    // SAFETY: written under the VCB resource exclusive.
    unsafe { *vcb.locked_by.get() = file_object };
    Ok(())
}

/// `FSCTL_UNLOCK_VOLUME`.
#[must_use]
pub fn unlock_volume(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    let _guard = vcb.acquire_exclusive();
    // SAFETY: under the VCB resource exclusive.
    let locked_by = unsafe { &mut *vcb.locked_by.get() };
    if *locked_by != context.file_object || locked_by.is_null() {
        return Outcome::status(nt::STATUS_NOT_LOCKED);
    }
    *locked_by = ptr::null_mut();
    Outcome::status(nt::STATUS_SUCCESS)
}

/// `FSCTL_IS_VOLUME_MOUNTED`.
#[must_use]
pub fn is_volume_mounted(context: &IrpContext) -> Outcome {
    match context.vcb() {
        Some(vcb) if !vcb.dismounted.get() => Outcome::status(nt::STATUS_SUCCESS),
        Some(_) => Outcome::status(nt::STATUS_VOLUME_DISMOUNTED),
        None => Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST),
    }
}

/// Is the volume locked by a file object other than `file_object`? (Opens are refused.)
#[must_use]
pub fn locked_against(vcb: &Vcb, file_object: *const FILE_OBJECT) -> bool {
    // SAFETY: callers hold the VCB resource, which every writer holds exclusive.
    let locked_by = unsafe { *vcb.locked_by.get() };
    !locked_by.is_null() && !ptr::eq(locked_by, file_object)
}

/// The locking handle's cleanup ends the lock (fastfat `cleanup.c`). Called with the VCB
/// resource held exclusive.
pub fn cleanup_volume_handle(vcb: &Vcb, file_object: *mut FILE_OBJECT) {
    // SAFETY: the caller holds the VCB resource exclusive.
    let locked_by = unsafe { &mut *vcb.locked_by.get() };
    if *locked_by == file_object {
        *locked_by = ptr::null_mut();
    }
}
