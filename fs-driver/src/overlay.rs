//! cowfat's private FSCTLs (codes and layouts in the `cowfat-fsctl` crate) and
//! `FSCTL_SET_PURGE_FAILURE_MODE` (NT-12); `fsctrl` routes each code here.
//!
//! File overlay commit/discard follow NT-21: flush the stream, refuse while it has writable
//! user references, let an image section go, purge; if any of that fails, answer
//! `STATUS_USER_MAPPED_FILE` having changed nothing; else switch in fs-core and tell Cc the
//! new sizes. Volume seal/commit run online (every stream flushed first; refused while a
//! stream has writable user references, whose later paging writes would have no overlay
//! space reserved, NT-15). Volume discard needs the volume locked by the requesting handle
//! (FSCTL_LOCK_VOLUME: nothing open, nothing mapped); streams Mm or an image section still
//! hold are flushed and purged with their cache maps, and one that stays is a refusal.

use cowfat_fsctl as api;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use crate::cachesup::{flush, has_data_section, purge, update_cc_sizes};
use crate::dispatch::{IrpContext, Outcome};
use crate::fcb::Fcb;
use crate::nt::{self, FILE_OBJECT, NTSTATUS};
use crate::resrcsup::ResourceGuard;
use crate::section;
use crate::vcb::{Vcb, VcbExclusive};
use crate::wdk_inline::io_get_current_irp_stack_location;

/// The buffers of a `METHOD_BUFFERED` FSCTL.
struct Buffers {
    system: *mut u8,
    input_len: usize,
    output_len: usize,
}

/// # Safety
/// `context.irp` is a valid FSCTL IRP.
unsafe fn buffers(context: &IrpContext) -> Buffers {
    // SAFETY: the caller's contract.
    let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
    // SAFETY: the current location of a valid IRP.
    let stack = unsafe { &*stack };
    // SAFETY: the FileSystemControl member is the live one.
    let params = unsafe { stack.Parameters.FileSystemControl };
    // SAFETY: a valid IRP.
    let associated = unsafe { (*context.irp).AssociatedIrp };
    // SAFETY: METHOD_BUFFERED: the SystemBuffer member is the live one.
    let system = unsafe { associated.SystemBuffer }.cast::<u8>();
    Buffers {
        system,
        input_len: params.InputBufferLength as usize,
        output_len: params.OutputBufferLength as usize,
    }
}

impl Buffers {
    fn input<T: FromBytes>(&self) -> Option<T> {
        if self.system.is_null() || self.input_len < core::mem::size_of::<T>() {
            return None;
        }
        // SAFETY: METHOD_BUFFERED: the system buffer holds at least InputBufferLength bytes.
        let bytes = unsafe { core::slice::from_raw_parts(self.system, self.input_len) };
        T::read_from_prefix(bytes).ok().map(|(t, _)| t)
    }

    fn output<T: IntoBytes + zerocopy::Immutable>(&self, value: &T) -> Outcome {
        let bytes = value.as_bytes();
        if self.system.is_null() || self.output_len < bytes.len() {
            return Outcome::status(nt::STATUS_BUFFER_TOO_SMALL);
        }
        // SAFETY: METHOD_BUFFERED: the system buffer holds at least OutputBufferLength bytes.
        let out = unsafe { core::slice::from_raw_parts_mut(self.system, bytes.len()) };
        out.copy_from_slice(bytes);
        Outcome::Complete {
            status: nt::STATUS_SUCCESS,
            information: bytes.len(),
        }
    }
}

fn done(result: Result<(), NTSTATUS>) -> Outcome {
    Outcome::status(match result {
        Ok(()) => nt::STATUS_SUCCESS,
        Err(status) => status,
    })
}

/// The FSCTL's volume and file (a file or directory handle, not a volume open).
fn file_request(context: &IrpContext) -> Result<(&Vcb, &Fcb), NTSTATUS> {
    let vcb = context.vcb().ok_or(nt::STATUS_INVALID_DEVICE_REQUEST)?;
    if vcb.dismounted.get() {
        return Err(nt::STATUS_VOLUME_DISMOUNTED);
    }
    let fcb = context.fcb().ok_or(nt::STATUS_INVALID_PARAMETER)?;
    Ok((vcb, fcb))
}

/// The FSCTL's volume, sent on a volume open.
fn volume_request(context: &IrpContext) -> Result<&Vcb, NTSTATUS> {
    let vcb = context.vcb().ok_or(nt::STATUS_INVALID_DEVICE_REQUEST)?;
    if !context.is_volume_open(vcb) {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    if vcb.dismounted.get() {
        return Err(nt::STATUS_VOLUME_DISMOUNTED);
    }
    Ok(vcb)
}

/// `FSCTL_SET_PURGE_FAILURE_MODE` (NT-12).
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn set_purge_failure_mode(context: &IrpContext) -> Outcome {
    let (_, fcb) = match file_request(context) {
        Ok(r) => r,
        Err(status) => return Outcome::status(status),
    };
    // SAFETY: an FSCTL IRP sent to us.
    let Some(flags) = unsafe { buffers(context) }.input::<U32>() else {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    };
    // SAFETY: initialised with the FCB.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    done(section::set_purge_failure_mode(fcb, flags.get()))
}

/// `FSCTL_COWFAT_QUERY_MAPPED_STATE`.
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn query_mapped_state(context: &IrpContext) -> Outcome {
    let (vcb, fcb) = match file_request(context) {
        Ok(r) => r,
        Err(status) => return Outcome::status(status),
    };
    // SAFETY: an FSCTL IRP sent to us.
    let buffers = unsafe { buffers(context) };
    let probe = buffers
        .input::<api::QueryMappedStateInput>()
        .is_some_and(|i| i.flags.get() & api::QUERY_PROBE_PURGE != 0);
    // The probe's purge may close Mm's file object (NT-04): the VCB first, as close takes it.
    let _vcb = vcb.acquire_exclusive();
    // SAFETY: initialised with the FCB; the request's file object keeps the FCB alive.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    // SAFETY: the request's file object, of this FCB.
    let state = unsafe { section::mapped_state(context.file_object, fcb, probe) };
    buffers.output(&state)
}

/// `FSCTL_COWFAT_QUERY_OVERLAY`.
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn query_overlay(context: &IrpContext) -> Outcome {
    let (vcb, fcb) = match file_request(context) {
        Ok(r) => r,
        Err(status) => return Outcome::status(status),
    };
    let id = fcb.id;
    let mut runs = [fs_core::OverlayRun::default(); crate::debugger::OVERLAY_RUNS];
    let result = vcb.with_volume(|v| {
        let status = v.overlay_status(id)?;
        let n = v.overlay_runs(id, &mut runs)?;
        Ok(((status, n), v.try_volume_info()?.sealed))
    });
    let ((status, run_count), sealed) = match result {
        Ok(r) => r,
        Err(status) => return Outcome::status(status),
    };
    let flag = |on: bool, bit: u32| if on { bit } else { 0 };
    let flags = flag(status.in_base, api::OVERLAY_IN_BASE)
        | flag(status.modified, api::OVERLAY_MODIFIED)
        | flag(sealed, api::OVERLAY_SEALED);
    fcb.overlay.record_runs(&runs[..run_count]);
    fcb.overlay.record(
        flags,
        status.base_clusters,
        status.overlay_clusters,
        status.reserved_clusters,
    );
    let state = api::FileOverlayState {
        flags: U32::new(flags),
        reserved: U32::new(0),
        base_clusters: U64::new(status.base_clusters),
        overlay_clusters: U64::new(status.overlay_clusters),
        reserved_clusters: U64::new(status.reserved_clusters),
    };
    // SAFETY: an FSCTL IRP sent to us.
    unsafe { buffers(context) }.output(&state)
}

/// Which way a file or volume overlay operation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayOp {
    /// base := live.
    Commit,
    /// live := base.
    Discard,
}

/// `FSCTL_COWFAT_COMMIT_FILE` / `FSCTL_COWFAT_DISCARD_FILE` (NT-21).
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn file_overlay(context: &IrpContext, op: OverlayOp) -> Outcome {
    let (vcb, fcb) = match file_request(context) {
        Ok(r) => r,
        Err(status) => return Outcome::status(status),
    };
    if fcb.is_directory {
        return Outcome::status(nt::STATUS_FILE_IS_A_DIRECTORY);
    }
    let _vcb = vcb.acquire_exclusive();
    done(file_overlay_locked(vcb, context.file_object, fcb, op))
}

fn not_sealed(vcb: &Vcb) -> Result<(), NTSTATUS> {
    if vcb.with_volume(|v| Ok(v.try_volume_info()?.sealed))? {
        Ok(())
    } else {
        Err(nt::STATUS_INVALID_DEVICE_STATE)
    }
}

fn file_overlay_locked(
    vcb: &Vcb,
    file_object: *mut FILE_OBJECT,
    fcb: &Fcb,
    op: OverlayOp,
) -> Result<(), NTSTATUS> {
    not_sealed(vcb)?;
    // SAFETY: initialised with the FCB; the request's file object keeps the FCB alive.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    release_stream_pages(fcb)?;
    {
        // SAFETY: as above; main is held (NT-18 order).
        let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
        let id = fcb.id;
        let info = vcb.with_volume(|v| commit_or_discard(v, id, op))?;
        fcb.set_sizes(info.allocation_size, info.file_size, info.valid_data_length);
    }
    // SAFETY: the request's file object of this FCB (Cc's sizes are per stream).
    unsafe { update_cc_sizes(file_object, fcb) };
    report_overlay_change(vcb, fcb);
    Ok(())
}

/// The fs-core half of a file commit or discard.
fn commit_or_discard(
    v: &mut fs_core::Volume<crate::blockdev::TargetDevice>,
    id: fs_core::FileId,
    op: OverlayOp,
) -> fs_core::Result<fs_core::FileInfo> {
    match op {
        OverlayOp::Commit => v.commit_file(id)?,
        OverlayOp::Discard => v.discard_file(id)?,
    }
    v.release_overlay_reservation(id);
    v.info(id)
}

/// NT-21's precondition: the stream's pages are written and gone, and no user mapping can
/// bring them back. Nothing logical changes if it fails (a flush only writes what the file
/// already holds).
///
/// The mapping checks come first: a store through a writable view between the flush and the
/// purge would dirty a page the purge then throws away. With no writable section or view
/// left, none can appear before the purge (creating a section takes the main resource
/// exclusive, which the caller holds), so nothing dirties the stream behind the flush.
fn release_stream_pages(fcb: &Fcb) -> Result<(), NTSTATUS> {
    if section::writable_user_references(fcb) != 0 {
        return Err(nt::STATUS_USER_MAPPED_FILE);
    }
    // An image section maps the old content too (NT-09).
    if section::check_open_for_write(fcb).is_err() {
        return Err(nt::STATUS_USER_MAPPED_FILE);
    }
    if has_data_section(fcb) {
        let status = flush(fcb, None);
        if status < 0 {
            return Err(status);
        }
    }
    if has_data_section(fcb) && !purge(fcb, None, 0) {
        fcb.purge_failures
            .set(fcb.purge_failures.get().saturating_add(1));
        return Err(nt::STATUS_USER_MAPPED_FILE);
    }
    Ok(())
}

/// NT-22: overlay commit/discard of a file is a FILE_ACTION_MODIFIED with the size and
/// last-write filters for directory watchers (the caller holds the VCB resource).
fn report_overlay_change(vcb: &Vcb, fcb: &Fcb) {
    use crate::notify::{action, filter, report_fcb};
    report_fcb(
        vcb,
        fcb,
        filter::SIZE | filter::LAST_WRITE,
        action::MODIFIED,
    );
}

/// `FSCTL_COWFAT_SEAL_VOLUME` / `FSCTL_COWFAT_COMMIT_VOLUME`, online.
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn seal_or_commit_volume(context: &IrpContext, seal: bool) -> Outcome {
    let vcb = match volume_request(context) {
        Ok(v) => v,
        Err(status) => return Outcome::status(status),
    };
    let guard = vcb.acquire_exclusive();
    done(seal_or_commit_locked(vcb, &guard, seal))
}

fn each_fcb(
    guard: &VcbExclusive<'_>,
    mut f: impl FnMut(&Fcb) -> Result<(), NTSTATUS>,
) -> Result<(), NTSTATUS> {
    for id in Vcb::fcb_ids(guard)? {
        if let Some(fcb) = guard.find(fs_core::FileId(id)) {
            // SAFETY: in the table, alive while the VCB resource is held and `f` closes
            // nothing (no purge).
            f(unsafe { &*fcb })?;
        }
    }
    Ok(())
}

fn seal_or_commit_locked(vcb: &Vcb, guard: &VcbExclusive<'_>, seal: bool) -> Result<(), NTSTATUS> {
    let sealed = vcb.with_volume(|v| Ok(v.try_volume_info()?.sealed))?;
    if sealed == seal {
        return Err(nt::STATUS_INVALID_DEVICE_STATE);
    }
    each_fcb(guard, |fcb| {
        if section::writable_user_references(fcb) == 0 {
            Ok(())
        } else {
            Err(nt::STATUS_USER_MAPPED_FILE)
        }
    })?;
    each_fcb(guard, |fcb| {
        // SAFETY: initialised with the FCB.
        let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
        match flush(fcb, None) {
            s if s < 0 => Err(s),
            _ => Ok(()),
        }
    })?;
    let ids = Vcb::fcb_ids(guard)?;
    vcb.with_volume(|v| {
        if seal {
            v.seal()
        } else {
            v.commit()?;
            for id in ids {
                v.release_overlay_reservation(fs_core::FileId(id));
            }
            Ok(())
        }
    })
}

/// `FSCTL_COWFAT_DISCARD_VOLUME`: only on the handle that holds FSCTL_LOCK_VOLUME (which
/// succeeded because nothing was open or mapped, NT-21).
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn discard_volume(context: &IrpContext) -> Outcome {
    let vcb = match volume_request(context) {
        Ok(v) => v,
        Err(status) => return Outcome::status(status),
    };
    let guard = vcb.acquire_exclusive();
    done(discard_volume_locked(vcb, &guard, context.file_object))
}

fn discard_volume_locked(
    vcb: &Vcb,
    guard: &VcbExclusive<'_>,
    file_object: *mut FILE_OBJECT,
) -> Result<(), NTSTATUS> {
    // SAFETY: read under the VCB resource, which the lock and unlock hold to write it.
    if !core::ptr::eq(unsafe { *vcb.locked_by.get() }, file_object) {
        return Err(nt::STATUS_ACCESS_DENIED);
    }
    not_sealed(vcb)?;
    for id in Vcb::fcb_ids(guard)? {
        if let Some(fcb) = guard.find(fs_core::FileId(id)) {
            // SAFETY: an FCB of the table; it may be freed inside (its last file object,
            // Mm's, closes in the purge: NT-04) and is not touched after.
            unsafe { crate::cachesup::flush_and_purge_for_dismount(fcb, true) };
        }
    }
    // Whatever is still in the table is held by a mapping or an image section.
    if !guard.with_fcbs(|t| t.is_empty()) {
        return Err(nt::STATUS_ACCESS_DENIED);
    }
    vcb.with_volume(|v| v.discard())
}
