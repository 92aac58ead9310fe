//! Cc and Mm glue (fastfat's `cachesup.c` and `filobsup.c`): setting up cache maps, telling Cc
//! about size changes, flushing and purging a stream's data section.
//!
//! The FS never owns the section: it passes its `SECTION_OBJECT_POINTERS` (NT-02) to Cc and
//! Mm and reads them only to ask whether a data section exists (NT-07).

use core::ptr;

use crate::fcb::Fcb;
use crate::nt::{self, FILE_OBJECT, IO_STATUS_BLOCK, NTSTATUS};
use crate::resrcsup::CACHE_MANAGER_CALLBACKS;

/// Starts caching on `file_object` if this file object has no private cache map yet (NT-16;
/// fastfat tests `PrivateCacheMap`, since Cc keeps one per file object).
///
/// # Safety
/// `file_object` is a valid file object of `fcb`'s stream; the caller holds the FCB's main
/// resource.
pub unsafe fn ensure_cache_map(file_object: *mut FILE_OBJECT, fcb: &Fcb) {
    // SAFETY: valid file object per the caller.
    if !unsafe { (*file_object).PrivateCacheMap }.is_null() {
        return;
    }
    let sizes = fcb.cc_sizes();
    let context = ptr::from_ref(fcb).cast::<core::ffi::c_void>();
    // Cc creates the data section through this file object if there is none yet: Mm's control
    // area then references it (for the debugger, seed 003).
    let creates_section = !has_data_section(fcb);
    // SAFETY: valid file object whose SectionObjectPointer is the FCB's; static callbacks;
    // the FCB (the lazy-write context) outlives the cache map (torn down at cleanup/purge).
    unsafe {
        nt::CcInitializeCacheMap(
            file_object,
            &sizes,
            false,
            &CACHE_MANAGER_CALLBACKS,
            context,
        )
    };
    if creates_section && has_data_section(fcb) {
        fcb.section_creators
            .data
            .store(file_object.cast(), core::sync::atomic::Ordering::Relaxed);
    }
}

/// Tells Cc the header's sizes after they changed, if the stream is cached (NT-16).
///
/// # Safety
/// `file_object` is a valid file object of `fcb`'s stream.
pub unsafe fn update_cc_sizes(file_object: *mut FILE_OBJECT, fcb: &Fcb) {
    // SAFETY: the caller's contract.
    if !unsafe { crate::wdk_inline::cc_is_file_cached(file_object) } {
        return;
    }
    let sizes = fcb.cc_sizes();
    // SAFETY: a cached stream's file object and valid sizes.
    unsafe { nt::CcSetFileSizes(file_object, &sizes) };
}

/// Does a data section (Cc's or a user's) exist for the stream? (NT-07: only says that a
/// control area exists.)
#[must_use]
pub fn has_data_section(fcb: &Fcb) -> bool {
    let sop = fcb.section_object_pointers();
    // SAFETY: the SOP lives as long as the FCB; Mm writes the field, we only read it.
    !unsafe { (*sop).DataSectionObject }.is_null()
}

/// `CcFlushCache` of `[offset, offset + len)` (len 0: the whole stream); the flush status.
#[must_use]
pub fn flush(fcb: &Fcb, range: Option<(i64, u32)>) -> NTSTATUS {
    let mut iosb = IO_STATUS_BLOCK::default();
    let sop = fcb.section_object_pointers();
    let (offset, len) = range.unwrap_or((0, 0));
    let offset_ptr = if range.is_some() {
        ptr::from_ref(&offset)
    } else {
        ptr::null()
    };
    // SAFETY: the FCB's SOP; the offset and status block live across the call.
    unsafe { nt::CcFlushCache(sop, offset_ptr, len, &mut iosb) };
    // SAFETY: CcFlushCache always sets the status.
    unsafe { iosb.Anonymous.Status }
}

/// NT-17 for a non-cached write: `CcCoherencyFlushAndPurgeCache` of the range (the caller
/// holds the paging I/O resource exclusive). `Ok(false)` when the pages could not be
/// invalidated (`STATUS_CACHE_PAGE_LOCKED`, a success status: a user mapping keeps them).
///
/// # Errors
/// The flush's failure status.
pub fn coherency_flush_and_purge(fcb: &Fcb, offset: i64, length: u32) -> Result<bool, NTSTATUS> {
    let mut iosb = IO_STATUS_BLOCK::default();
    let sop = fcb.section_object_pointers();
    // SAFETY: the FCB's SOP; the offset and status block live across the call.
    unsafe { nt::CcCoherencyFlushAndPurgeCache(sop, &offset, length, &mut iosb, 0) };
    // SAFETY: the routine always sets the status.
    let status = unsafe { iosb.Anonymous.Status };
    match status {
        nt::STATUS_CACHE_PAGE_LOCKED => Ok(false),
        s if s < 0 => Err(s),
        _ => Ok(true),
    }
}

/// Waits until no paging write of the stream is in flight: the paging I/O resource taken
/// exclusive and dropped at once (fastfat's non-cached write does the same between its flush
/// and its purge). The lazy writer and the page writers hold it shared across a write, and a
/// flush passes over a page whose write is under way; purged before that write landed, the
/// page's bytes would rest on a write the caller never waited for (one a dismount then fails).
/// The caller holds at most the VCB resource and the FCB's main resource (the order, NT-18).
pub fn wait_for_paging_writes(fcb: &Fcb) {
    // SAFETY: initialised with the FCB, which the caller keeps alive; released at once.
    drop(unsafe { crate::resrcsup::ResourceGuard::exclusive(fcb.paging_io_resource()) });
}

/// `CcPurgeCacheSection` of a range (or all); FALSE while user-mapped (NT-08).
#[must_use]
pub fn purge(fcb: &Fcb, range: Option<(i64, u32)>, flags: u32) -> bool {
    // SAFETY: the FCB's SOP, valid across the call (the caller holds `fcb`).
    unsafe { purge_sop(fcb.section_object_pointers(), range, flags) }
}

/// `CcPurgeCacheSection` on a raw SOP, for callers whose FCB may be freed by the purge (the
/// section's file object closes inside it, NT-04).
///
/// # Safety
/// `sop` is valid on entry.
pub unsafe fn purge_sop(
    sop: *mut crate::nt::SECTION_OBJECT_POINTERS,
    range: Option<(i64, u32)>,
    flags: u32,
) -> bool {
    let (offset, len) = range.unwrap_or((0, 0));
    let offset_ptr = if range.is_some() {
        ptr::from_ref(&offset)
    } else {
        ptr::null()
    };
    // SAFETY: a valid SOP; the offset lives across the call.
    unsafe { nt::CcPurgeCacheSection(sop, offset_ptr, len, flags) }
}

/// Dismount: flush (not when the disk is gone: a surprise removal), let an image section go,
/// purge with the cache maps (NT-04: the section's file object then closes, possibly freeing
/// the FCB inside the purge).
///
/// # Safety
/// `fcb` is an FCB of the volume; the caller holds the VCB resource and does not use `fcb`
/// after this returns.
pub unsafe fn flush_and_purge_for_dismount(fcb: *mut Fcb, flush_first: bool) {
    // SAFETY: alive until the purge below.
    let sop = unsafe { (*fcb).section_object_pointers() };
    if flush_first {
        // SAFETY: as above; the reference ends before the purge.
        let fcb_ref = unsafe { &*fcb };
        let _ = flush(fcb_ref, None);
    }
    // SAFETY: alive until the purge below.
    wait_for_paging_writes(unsafe { &*fcb });
    // SAFETY: the FCB's SOP (NT-09: before purging the data section).
    unsafe { nt::MmFlushImageSection(sop, nt::MmFlushForWrite) };
    // SAFETY: valid SOP on entry.
    if !unsafe { purge_sop(sop, None, nt::UNINITIALIZE_CACHE_MAPS) } {
        // SAFETY: a failed purge deleted nothing, so the FCB is still alive.
        let counter = unsafe { &(*fcb).purge_failures };
        counter.set(counter.get().saturating_add(1));
    }
}
