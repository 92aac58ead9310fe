//! IRP_MJ_CLEANUP: the last handle of a file object went away (fastfat's `cleanup.c`; NT-05).
//!
//! For a file: `CcUninitializeCacheMap` for this file object (truncating to zero when the
//! file is being deleted), share access removed, and delete-on-close: at the stream's last
//! cleanup its name goes (fs-core `unlink`) and its data section is purged so Mm can let go
//! (NT-04); the record itself is freed at the last close, since paging I/O may still come
//! until then (NT-05). `FsRtlNotifyCleanup` and `FsRtlFastUnlockAll` for the handle run in
//! `lockctrl::cleanup_handle`; a POSIX delete (disposition-ex) takes the name at this
//! handle's cleanup even while others stay open.

use core::ptr;

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::cachesup::purge;
use crate::fcb::{Ccb, Fcb};
use crate::nt::{self, FILE_OBJECT};
use crate::resrcsup::ResourceGuard;
use crate::vcb::Vcb;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_CLEANUP`.
    fsd_cleanup => common_cleanup
);

/// `IRP_MJ_CLEANUP`.
#[must_use]
pub fn common_cleanup(context: &IrpContext) -> Outcome {
    if context.on_control_device {
        return Outcome::status(nt::STATUS_SUCCESS);
    }
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    let _vcb = vcb.acquire_exclusive();
    if context.is_volume_open(vcb) {
        super::volctrl::cleanup_volume_handle(vcb, context.file_object);
    } else {
        let Some(fcb) = context.fcb() else {
            return Outcome::status(nt::STATUS_INVALID_PARAMETER);
        };
        // Change notification and byte-range locks of this handle end here (NT-05).
        super::lockctrl::cleanup_handle(vcb, context, fcb);
        cleanup_file(vcb, context.file_object, fcb, context.ccb());
    }
    // SAFETY: the request's file object.
    unsafe { (*context.file_object).Flags |= nt::FO_CLEANUP_COMPLETE };
    Outcome::status(nt::STATUS_SUCCESS)
}

fn cleanup_file(vcb: &Vcb, file_object: *mut FILE_OBJECT, fcb: &Fcb, ccb: *mut Ccb) {
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    // SAFETY: the file object's CCB (or NULL).
    if !ccb.is_null() && unsafe { (*ccb).delete_on_close } {
        fcb.delete_pending.set(true);
    }
    let open = fcb.open_count.get().saturating_sub(1);
    fcb.open_count.set(open);
    let posix = !ccb.is_null() && {
        // SAFETY: the file object's CCB; only a field address is taken.
        let state = unsafe { (*ccb).state.get() };
        // SAFETY: the CCB state is used under the main resource, held here.
        unsafe { (*state).posix_delete }
    };
    let last = open == 0;
    let delete = ((last && fcb.delete_pending.get()) || posix)
        && !vcb.dismounted.get()
        && !fcb.unlinked.get();
    let zero: i64 = 0;
    let truncate = if delete && last {
        ptr::from_ref(&zero)
    } else {
        ptr::null()
    };
    // SAFETY: our file object; the truncate size lives across the call; no event.
    unsafe { nt::CcUninitializeCacheMap(file_object, truncate, ptr::null()) };
    // SAFETY: the file object's share access was recorded in this FCB at create.
    unsafe { nt::IoRemoveShareAccess(file_object, fcb.share_access.get()) };
    if delete {
        delete_file(vcb, fcb, last);
    }
}

/// Delete-on-close at the last cleanup (or POSIX delete at this handle's): the name goes,
/// watchers hear of it (NT-22), and at the last cleanup the data section is purged.
fn delete_file(vcb: &Vcb, fcb: &Fcb, last: bool) {
    // No memory to copy the name (NT-26): the file stays (cleanup cannot fail); the delete
    // is not half-done.
    let Ok(Some(name)) = fcb.name() else {
        return;
    };
    let parent = fcb.parent();
    if vcb.with_volume(|v| v.unlink(parent, &name)).is_ok() {
        fcb.unlinked.set(true);
        let kind = crate::notify::name_filter(fcb.is_directory);
        crate::notify::report(vcb, parent, &name, kind, crate::notify::action::REMOVED);
        if !last {
            return;
        }
        // The file object being cleaned up still holds the FCB, so a close that the purge
        // sends (NT-04) cannot free it.
        if !purge(fcb, None, 0) {
            fcb.purge_failures
                .set(fcb.purge_failures.get().saturating_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_CLEANUP;

    #[test]
    fn control_device_handles_need_no_work() {
        let outcome = common_cleanup(&context(IRP_MJ_CLEANUP, 0, true));
        assert_eq!(outcome, Outcome::status(nt::STATUS_SUCCESS));
    }
}
