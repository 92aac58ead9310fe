//! Volume FSCTLs of issue 7 (fastfat's `fsctrl.c` `FatLockVolume` / `FatUnlockVolume` /
//! `FatIsVolumeMounted` / `FatGetVolumeBitmap` / `FatGetRetrievalPointers`):
//! `FSCTL_LOCK_VOLUME`, `FSCTL_UNLOCK_VOLUME`, `FSCTL_IS_VOLUME_MOUNTED`,
//! `FSCTL_GET_VOLUME_BITMAP`, `FSCTL_GET_RETRIEVAL_POINTERS`. `fsctrl` has one match arm per
//! code that calls in here (and keeps `FSCTL_DISMOUNT_VOLUME`, beside mount).
//!
//! Locking flushes and purges every stream and succeeds only when nothing else has the volume
//! open: no file handle, no other volume handle, and no user view (a purge fails while a
//! view maps the stream, NT-08, even after every handle closed). While locked, opens fail
//! with `STATUS_ACCESS_DENIED`; the lock goes with an unlock or the locking handle's cleanup.

use core::mem::{offset_of, size_of};
use core::ptr;

use alloc::vec::Vec;

use super::{IrpContext, Outcome};
use crate::cachesup;
use crate::nt::{
    self, FILE_OBJECT, NTSTATUS, RETRIEVAL_POINTERS_BUFFER, RETRIEVAL_POINTERS_BUFFER_0,
    STARTING_LCN_INPUT_BUFFER, STARTING_VCN_INPUT_BUFFER, VOLUME_BITMAP_BUFFER,
};
use crate::resrcsup::ResourceGuard;
use crate::vcb::Vcb;
use crate::wdk_inline::io_get_current_irp_stack_location;

/// `FSCTL_LOCK_VOLUME`.
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn lock_volume(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if !context.is_volume_open(vcb) {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // The locking handle is itself a volume open.
    Outcome::status(match lock(vcb, context.file_object, 1) {
        Ok(()) => nt::STATUS_SUCCESS,
        Err(status) => status,
    })
}

/// Locks the volume for `owner` (a volume handle, or [`Vcb::pnp_lock_owner`] for a PnP
/// query-remove): refused while another lock is held, more than `own_opens` volume handles
/// or any file handle is open, or a stream cannot be flushed and purged.
pub(crate) fn lock(vcb: &Vcb, owner: *mut FILE_OBJECT, own_opens: u32) -> Result<(), NTSTATUS> {
    let guard = vcb.acquire_exclusive();
    if vcb.dismounted.get() {
        return Err(nt::STATUS_VOLUME_DISMOUNTED);
    }
    // SAFETY: read under the VCB resource, which every writer holds.
    if !unsafe { *vcb.locked_by.get() }.is_null() || vcb.volume_opens.get() > own_opens {
        return Err(nt::STATUS_ACCESS_DENIED);
    }
    for id in Vcb::fcb_ids(&guard)? {
        let Some(fcb) = guard.find(fs_core::FileId(id)) else {
            continue;
        };
        // SAFETY: in the table, alive while the VCB resource is held (until the purge).
        let fcb_ref = unsafe { &*fcb };
        if fcb_ref.open_count.get() > 0 {
            return Err(nt::STATUS_ACCESS_DENIED);
        }
        if !fcb_ref.is_directory {
            match cachesup::flush(fcb_ref, None) {
                // Out of memory is the caller's to know (and retry), not a refusal (NT-26).
                nt::STATUS_INSUFFICIENT_RESOURCES => {
                    return Err(nt::STATUS_INSUFFICIENT_RESOURCES);
                }
                s if s < 0 => return Err(nt::STATUS_ACCESS_DENIED),
                _ => {}
            }
        }
        // A lazy write under way when the flush passed keeps its page until it lands.
        cachesup::wait_for_paging_writes(fcb_ref);
        let sop = fcb_ref.section_object_pointers();
        // SAFETY: the SOP is valid on entry; the purge may close the stream's last file
        // object (NT-04) and free the FCB, which is not touched afterwards.
        if !unsafe { cachesup::purge_sop(sop, None, 0) } {
            return Err(nt::STATUS_ACCESS_DENIED);
        }
    }
    // SAFETY: written under the VCB resource exclusive.
    unsafe { *vcb.locked_by.get() = owner };
    Ok(())
}

/// `FSCTL_UNLOCK_VOLUME`.
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
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
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
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

/// NT numbers a volume's clusters (LCNs) from 0; fs-core numbers them from 2, as FAT does
/// (0 and 1 name no cluster). The only place the two meet.
mod lcn {
    /// fs-core's number of LCN 0.
    const FIRST_CLUSTER: u64 = 2;

    /// fs-core's cluster number of `lcn`, if it has one.
    pub fn to_cluster(lcn: u64) -> Option<u32> {
        u32::try_from(lcn.checked_add(FIRST_CLUSTER)?).ok()
    }

    /// The LCN of fs-core's `cluster` (clusters below 2 do not occur).
    pub fn of_cluster(cluster: u32) -> i64 {
        i64::from(cluster) - FIRST_CLUSTER as i64
    }
}

/// The caller's buffers of a `METHOD_NEITHER` FSCTL: the input at
/// `Parameters.FileSystemControl.Type3InputBuffer`, the output at `Irp->UserBuffer`. Both are
/// addresses in the requester's space, which may be anything (NT-25): the input is probed and
/// copied in, and the answer is built in kernel memory and copied out, inside SEH frames
/// ([`crate::userbuf`]), never under the volume's lock.
struct NeitherBuffers {
    irp: *const nt::IRP,
    input: *const u8,
    input_len: usize,
    output: *mut u8,
    output_len: usize,
}

impl NeitherBuffers {
    /// # Safety
    /// `context.irp` is a valid FSCTL IRP.
    unsafe fn of(context: &IrpContext) -> Self {
        // SAFETY: the caller's contract.
        let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
        // SAFETY: the current location of a valid IRP.
        let stack = unsafe { &*stack };
        // SAFETY: the FileSystemControl member is the live one.
        let params = unsafe { stack.Parameters.FileSystemControl };
        // SAFETY: a valid IRP.
        let output = unsafe { (*context.irp).UserBuffer }.cast::<u8>();
        Self {
            irp: context.irp,
            input: params.Type3InputBuffer.cast_const().cast(),
            input_len: params.InputBufferLength as usize,
            output,
            output_len: if output.is_null() {
                0
            } else {
                params.OutputBufferLength as usize
            },
        }
    }

    /// The input's leading `LARGE_INTEGER` (`StartingLcn` / `StartingVcn`), if it holds
    /// `size` bytes.
    ///
    /// # Errors
    /// `STATUS_INVALID_PARAMETER` for a short input; the probe's or copy's status.
    fn input_i64(&self, size: usize) -> Result<i64, NTSTATUS> {
        if self.input.is_null() || self.input_len < size || size < 8 {
            return Err(nt::STATUS_INVALID_PARAMETER);
        }
        let mut bytes = [0u8; 8];
        // SAFETY: the request's IRP and its caller's input.
        unsafe { crate::userbuf::copy_in(self.irp, self.input, &mut bytes) }?;
        Ok(i64::from_le_bytes(bytes))
    }

    /// A kernel buffer for `len <= output_len` bytes of answer.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` (NT-26).
    fn kernel_output(&self, len: usize) -> Result<Vec<u8>, NTSTATUS> {
        let mut out = Vec::new();
        out.try_reserve_exact(len)
            .map_err(|_| nt::STATUS_INSUFFICIENT_RESOURCES)?;
        out.resize(len, 0);
        Ok(out)
    }

    /// Copies the answer to the caller's output buffer.
    ///
    /// # Errors
    /// The probe's or copy's status; nothing is written then.
    fn deliver(&self, answer: &[u8]) -> Result<(), NTSTATUS> {
        // SAFETY: the request's IRP and its caller's output of `output_len >= answer` bytes.
        unsafe { crate::userbuf::copy_out(self.irp, self.output, answer) }
    }
}

fn put_i64(out: &mut [u8], at: usize, value: i64) {
    out[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut [u8], at: usize, value: u32) {
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// `FSCTL_GET_VOLUME_BITMAP` on a volume handle: from `StartingLcn` rounded down to a
/// multiple of 8, one bit per cluster (set: in use, by the live tree or kept for the base).
/// `BitmapSize` is always every cluster from there to the end; a buffer too short for them
/// gets as many bytes as fit and `STATUS_BUFFER_OVERFLOW`. A buffer smaller than the structure
/// is `STATUS_BUFFER_TOO_SMALL`, a short input or a start past the end
/// `STATUS_INVALID_PARAMETER` (NTFS's and fastfat's checks).
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn get_volume_bitmap(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if !context.is_volume_open(vcb) {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    if vcb.dismounted.get() {
        return Outcome::status(nt::STATUS_VOLUME_DISMOUNTED);
    }
    // SAFETY: an FSCTL IRP sent to us.
    let mut buffers = unsafe { NeitherBuffers::of(context) };
    match volume_bitmap(vcb, &mut buffers) {
        Ok((status, information)) => Outcome::Complete {
            status,
            information,
        },
        Err(status) => Outcome::status(status),
    }
}

const BITMAP_HEADER: usize = offset_of!(VOLUME_BITMAP_BUFFER, Buffer);

fn volume_bitmap(vcb: &Vcb, buffers: &mut NeitherBuffers) -> Result<(NTSTATUS, usize), NTSTATUS> {
    if buffers.output_len < size_of::<VOLUME_BITMAP_BUFFER>() {
        return Err(nt::STATUS_BUFFER_TOO_SMALL);
    }
    let start = buffers.input_i64(size_of::<STARTING_LCN_INPUT_BUFFER>())?;
    let total = vcb.with_volume(|v| Ok(v.try_volume_info()?.total_clusters))?;
    let start = u64::try_from(start)
        .ok()
        .filter(|s| *s < total)
        .ok_or(nt::STATUS_INVALID_PARAMETER)?;
    let first = start & !7;
    let desired = total - first;
    let wanted = usize::try_from(desired.div_ceil(8)).unwrap_or(usize::MAX);
    let room = buffers.output_len - BITMAP_HEADER;
    let (status, bytes) = if room < wanted {
        (nt::STATUS_BUFFER_OVERFLOW, room)
    } else {
        (nt::STATUS_SUCCESS, wanted)
    };
    let cluster = lcn::to_cluster(first).ok_or(nt::STATUS_INVALID_PARAMETER)?;
    let mut out = buffers.kernel_output(BITMAP_HEADER + bytes)?;
    vcb.with_volume(|v| v.cluster_usage(cluster, &mut out[BITMAP_HEADER..]))?;
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    put_i64(
        &mut out,
        offset_of!(VOLUME_BITMAP_BUFFER, StartingLcn),
        as_i64(first),
    );
    put_i64(
        &mut out,
        offset_of!(VOLUME_BITMAP_BUFFER, BitmapSize),
        as_i64(desired),
    );
    buffers.deliver(&out)?;
    Ok((status, out.len()))
}

/// `FSCTL_GET_RETRIEVAL_POINTERS` on a file handle: the runs of the file's clusters from the
/// one holding `StartingVcn` (the first cut to start there; `StartingVcn` echoes the request),
/// each as `{NextVcn, Lcn}`. Not all fitting: as many as fit and `STATUS_BUFFER_OVERFLOW`;
/// a VCN past the allocation: `STATUS_END_OF_FILE`. A volume or directory handle, a short or
/// negative input: `STATUS_INVALID_PARAMETER`; an output smaller than the structure (room for
/// one extent): `STATUS_BUFFER_TOO_SMALL`.
#[must_use]
#[inline(never)] // an FSCTL handler: kept out of the dispatcher's frame (NT-23)
pub fn get_retrieval_pointers(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if vcb.dismounted.get() {
        return Outcome::status(nt::STATUS_VOLUME_DISMOUNTED);
    }
    let fcb = match context.fcb() {
        Some(fcb) if !fcb.is_directory && !context.is_volume_open(vcb) => fcb,
        _ => return Outcome::status(nt::STATUS_INVALID_PARAMETER),
    };
    // SAFETY: an FSCTL IRP sent to us.
    let mut buffers = unsafe { NeitherBuffers::of(context) };
    // SAFETY: initialised with the FCB; the request's file object keeps it alive. Shared:
    // the allocation does not change under it.
    let _main = unsafe { ResourceGuard::shared(fcb.resource()) };
    match retrieval_pointers(vcb, fcb.id, &mut buffers) {
        Ok((status, information)) => Outcome::Complete {
            status,
            information,
        },
        Err(status) => Outcome::status(status),
    }
}

const EXTENTS_AT: usize = offset_of!(RETRIEVAL_POINTERS_BUFFER, Extents);
const EXTENT_SIZE: usize = size_of::<RETRIEVAL_POINTERS_BUFFER_0>();

fn retrieval_pointers(
    vcb: &Vcb,
    id: fs_core::FileId,
    buffers: &mut NeitherBuffers,
) -> Result<(NTSTATUS, usize), NTSTATUS> {
    let start = u64::try_from(buffers.input_i64(size_of::<STARTING_VCN_INPUT_BUFFER>())?)
        .map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    if buffers.output_len < size_of::<RETRIEVAL_POINTERS_BUFFER>() {
        return Err(nt::STATUS_BUFFER_TOO_SMALL);
    }
    let room = (buffers.output_len - EXTENTS_AT) / EXTENT_SIZE;
    // One more than fits tells whether the answer is complete.
    let extents = vcb.with_volume(|v| v.file_extents(id, start, room.saturating_add(1)))?;
    let Some(first) = extents.first().filter(|e| e.vcn <= start) else {
        return Err(nt::STATUS_END_OF_FILE);
    };
    let skip = start - first.vcn;
    let count = extents.len().min(room);
    let mut out = buffers.kernel_output(EXTENTS_AT + count * EXTENT_SIZE)?;
    let out = &mut out;
    for (i, e) in extents.iter().take(count).enumerate() {
        let at = EXTENTS_AT + i * EXTENT_SIZE;
        let next = e.vcn + u64::from(e.clusters);
        let cut = if i == 0 { skip } else { 0 };
        let next_at = at + offset_of!(RETRIEVAL_POINTERS_BUFFER_0, NextVcn);
        put_i64(out, next_at, i64::try_from(next).unwrap_or(i64::MAX));
        let lcn_at = at + offset_of!(RETRIEVAL_POINTERS_BUFFER_0, Lcn);
        let cut = i64::try_from(cut).unwrap_or(0);
        put_i64(out, lcn_at, lcn::of_cluster(e.lcn) + cut);
    }
    let count_u32 = u32::try_from(count).unwrap_or(u32::MAX);
    put_u32(
        out,
        offset_of!(RETRIEVAL_POINTERS_BUFFER, ExtentCount),
        count_u32,
    );
    let start_i64 = i64::try_from(start).unwrap_or(i64::MAX);
    put_i64(
        out,
        offset_of!(RETRIEVAL_POINTERS_BUFFER, StartingVcn),
        start_i64,
    );
    let status = if extents.len() > room {
        nt::STATUS_BUFFER_OVERFLOW
    } else {
        nt::STATUS_SUCCESS
    };
    buffers.deliver(out)?;
    Ok((status, out.len()))
}
