//! IRP_MJ_FLUSH_BUFFERS (fastfat's `flush.c`): a file handle flushes its stream through Cc
//! (`CcFlushCache`, the lazy writer's paging writes, NT-14) and then the volume's metadata;
//! a volume handle flushes every open stream, then the volume. Shutdown uses [`flush_volume`].

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::cachesup;
use crate::fcb::Fcb;
use crate::nt::{self, NTSTATUS};
use crate::resrcsup::ResourceGuard;
use crate::vcb::Vcb;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_FLUSH_BUFFERS`.
    fsd_flush_buffers => common_flush_buffers
);

/// `IRP_MJ_FLUSH_BUFFERS`.
#[must_use]
pub fn common_flush_buffers(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::not_yet();
    };
    if vcb.dismounted.get() {
        return Outcome::status(nt::STATUS_VOLUME_DISMOUNTED);
    }
    let status = if context.is_volume_open(vcb) {
        flush_volume(vcb)
    } else if let Some(fcb) = context.fcb() {
        first_error(flush_stream(fcb), sync(vcb))
    } else {
        nt::STATUS_INVALID_PARAMETER
    };
    Outcome::status(status)
}

fn first_error(a: NTSTATUS, b: NTSTATUS) -> NTSTATUS {
    if a < 0 {
        a
    } else {
        b
    }
}

/// `CcFlushCache` of one stream under its main resource shared (fastfat takes it exclusive
/// for a write-through flush; cowfat's metadata is fs-core's, flushed by `sync`).
fn flush_stream(fcb: &Fcb) -> NTSTATUS {
    if fcb.is_directory {
        return nt::STATUS_SUCCESS;
    }
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::shared(fcb.resource()) };
    cachesup::flush(fcb, None)
}

fn sync(vcb: &Vcb) -> NTSTATUS {
    match vcb.with_volume(|v| v.sync()) {
        Ok(()) => nt::STATUS_SUCCESS,
        Err(status) => status,
    }
}

/// Flushes every open stream of the volume, then fs-core's metadata.
#[must_use]
pub fn flush_volume(vcb: &Vcb) -> NTSTATUS {
    let guard = vcb.acquire_exclusive();
    let mut status = nt::STATUS_SUCCESS;
    let ids = match Vcb::fcb_ids(&guard) {
        Ok(ids) => ids,
        Err(status) => return status,
    };
    for id in ids {
        if let Some(fcb) = guard.find(fs_core::FileId(id)) {
            // SAFETY: in the table, alive while the VCB resource is held; a flush sends
            // paging writes, never a close.
            status = first_error(status, flush_stream(unsafe { &*fcb }));
        }
    }
    first_error(status, sync(vcb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{IRP_MJ_FLUSH_BUFFERS, STATUS_INVALID_DEVICE_REQUEST};

    #[test]
    fn requests_off_a_volume_are_refused() {
        let outcome = common_flush_buffers(&context(IRP_MJ_FLUSH_BUFFERS, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
