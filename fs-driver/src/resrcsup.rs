//! Resource callbacks the kernel calls around its own I/O (fastfat's `resrcsup.c`).
//!
//! Two sets, both registered in DriverEntry and both keyed on the FCB prefix in [`crate::fcb`]:
//! - the Cache Manager callbacks handed to `CcInitializeCacheMap` (lazy writer and read ahead
//!   acquire the FCB before they issue paging I/O; NT-14, NT-18);
//! - the FsRtl file system filter callbacks (`FsRtlRegisterFileSystemFilterCallbacks`):
//!   section synchronisation (NT-06, the only time the FS hears about section creation), the
//!   modified page writer (NT-14) and `CcFlushCache`.
//!
//! Lock order (NT-18): main resource before paging I/O resource; the lazy writer and the
//! modified page writer take only the paging I/O resource.

use core::ffi::c_void;
use core::ptr;

use crate::debugger::cc_callback;
use crate::fcb::{self, Fcb};
use crate::nt::{
    self, top_level, CACHE_MANAGER_CALLBACKS, ERESOURCE, FSRTL_COMMON_FCB_HEADER,
    FS_FILTER_CALLBACKS, FS_FILTER_CALLBACK_DATA, IRP, NTSTATUS,
};
use crate::wdk_inline::{fsrtl_enter_file_system, fsrtl_exit_file_system};

/// Cc callbacks; the lazy-write context we pass with them is the FCB itself.
pub static CACHE_MANAGER_CALLBACKS: CACHE_MANAGER_CALLBACKS = CACHE_MANAGER_CALLBACKS {
    AcquireForLazyWrite: Some(acquire_fcb_for_lazy_write),
    ReleaseFromLazyWrite: Some(release_fcb_from_lazy_write),
    AcquireForReadAhead: Some(acquire_fcb_for_read_ahead),
    ReleaseFromReadAhead: Some(release_fcb_from_read_ahead),
};

/// FsRtl filter callbacks (the FS registers them for itself, seed 000).
pub static FS_FILTER_CALLBACKS: FS_FILTER_CALLBACKS = FS_FILTER_CALLBACKS {
    SizeOfFsFilterCallbacks: size_of_u32::<FS_FILTER_CALLBACKS>(),
    Reserved: 0,
    PreAcquireForSectionSynchronization: Some(filter_acquire_for_section_sync),
    PostAcquireForSectionSynchronization: None,
    PreReleaseForSectionSynchronization: Some(filter_release_for_section_sync),
    PostReleaseForSectionSynchronization: None,
    PreAcquireForCcFlush: Some(filter_acquire_for_cc_flush),
    PostAcquireForCcFlush: None,
    PreReleaseForCcFlush: Some(filter_release_for_cc_flush),
    PostReleaseForCcFlush: None,
    PreAcquireForModifiedPageWriter: Some(filter_acquire_for_mod_write),
    PostAcquireForModifiedPageWriter: None,
    PreReleaseForModifiedPageWriter: Some(filter_release_for_mod_write),
    PostReleaseForModifiedPageWriter: None,
    PreQueryOpen: None,
    PostQueryOpen: None,
};

/// `sizeof` for the `Size*` fields of kernel tables (all far below 4 GiB).
pub(crate) const fn size_of_u32<T>() -> u32 {
    let size = core::mem::size_of::<T>();
    assert!(size <= u32::MAX as usize);
    size as u32
}

fn top_level_marker(marker: usize) -> *const IRP {
    ptr::without_provenance(marker)
}

/// Marks the thread as inside Cc (so our write path knows the request is the lazy writer's)
/// unless some other top-level request is already recorded.
fn set_cache_top_level() {
    // SAFETY: no preconditions.
    if unsafe { nt::IoGetTopLevelIrp() }.is_null() {
        let marker = top_level_marker(top_level::FSRTL_CACHE_TOP_LEVEL_IRP);
        // SAFETY: the marker values are the documented non-IRP top-level values.
        unsafe { nt::IoSetTopLevelIrp(marker) };
    }
}

fn clear_cache_top_level() {
    let marker = top_level_marker(top_level::FSRTL_CACHE_TOP_LEVEL_IRP);
    // SAFETY: no preconditions.
    if ptr::eq(unsafe { nt::IoGetTopLevelIrp() }, marker) {
        // SAFETY: NULL clears the thread's top-level field.
        unsafe { nt::IoSetTopLevelIrp(ptr::null()) };
    }
}

/// Acquires `resource` shared if there is one; true when held (or nothing to hold).
///
/// # Safety
/// `resource` is NULL or an initialised ERESOURCE.
unsafe fn acquire_shared(resource: *mut ERESOURCE, wait: bool) -> bool {
    if resource.is_null() {
        return true;
    }
    // SAFETY: initialised resource per the caller.
    unsafe { nt::ExAcquireResourceSharedLite(resource, wait) }
}

/// Releases `resource` if there is one.
///
/// # Safety
/// `resource` is NULL or held by this thread.
unsafe fn release(resource: *mut ERESOURCE) {
    if !resource.is_null() {
        // SAFETY: held by this thread per the caller.
        unsafe { nt::ExReleaseResourceLite(resource) };
    }
}

/// The FCB header behind a callback's file object, if it is ours.
///
/// # Safety
/// `data` is the valid callback data FsRtl passes.
unsafe fn header_of(data: *const FS_FILTER_CALLBACK_DATA) -> Option<*mut FSRTL_COMMON_FCB_HEADER> {
    // SAFETY: valid callback data per the caller.
    let file_object = unsafe { (*data).FileObject };
    // SAFETY: FsRtl hands us file objects of our own volumes.
    let fcb = unsafe { fcb::fcb_of_file_object(file_object) }?;
    Some(fcb.cast())
}

// ---- Cache Manager callbacks ---------------------------------------------------------------

/// `AcquireForLazyWrite`: the lazy writer is about to write dirty cached pages of the stream.
/// Paging I/O resource shared only (NT-14/NT-18), and the thread is marked as Cc's.
unsafe extern "system" fn acquire_fcb_for_lazy_write(context: *const c_void, wait: bool) -> bool {
    // SAFETY: the lazy-write context we give CcInitializeCacheMap is always the FCB.
    let Some(header) = (unsafe { fcb::fcb_header(context) }) else {
        return false;
    };
    // SAFETY: `header` is a live FCB header.
    let paging = unsafe { fcb::paging_io_resource(header) };
    // SAFETY: FCB resources are initialised when the FCB is.
    let acquired = unsafe { acquire_shared(paging, wait) };
    note_cc_callback(cc_callback::ACQUIRE_FOR_LAZY_WRITE, context, acquired);
    if !acquired {
        return false;
    }
    set_cache_top_level();
    true
}

/// A Cache Manager callback for the trace ring (status: success, or `STATUS_CANT_WAIT` when
/// the acquire failed).
fn note_cc_callback(callback: u8, context: *const c_void, acquired: bool) {
    let status = if acquired {
        nt::STATUS_SUCCESS
    } else {
        nt::STATUS_CANT_WAIT
    };
    crate::global::CFAT_DATA.trace.record(
        crate::debugger::trace_kind::CC_CALLBACK,
        0,
        callback,
        context,
        status,
    );
}

/// `ReleaseFromLazyWrite`: undoes [`acquire_fcb_for_lazy_write`].
unsafe extern "system" fn release_fcb_from_lazy_write(context: *const c_void) {
    // SAFETY: as in the acquire.
    let Some(header) = (unsafe { fcb::fcb_header(context) }) else {
        return;
    };
    clear_cache_top_level();
    // SAFETY: live FCB header.
    let paging = unsafe { fcb::paging_io_resource(header) };
    // SAFETY: acquired by the matching acquire on this thread.
    unsafe { release(paging) };
    note_cc_callback(cc_callback::RELEASE_FROM_LAZY_WRITE, context, true);
}

/// `AcquireForReadAhead`: read ahead is about to issue paging reads. The main resource shared,
/// as fastfat does, so read ahead cannot race a truncation.
unsafe extern "system" fn acquire_fcb_for_read_ahead(context: *const c_void, wait: bool) -> bool {
    // SAFETY: the lazy-write context is always the FCB.
    let Some(header) = (unsafe { fcb::fcb_header(context) }) else {
        return false;
    };
    // SAFETY: live FCB header.
    let main = unsafe { fcb::main_resource(header) };
    // SAFETY: initialised with the FCB.
    if !unsafe { acquire_shared(main, wait) } {
        return false;
    }
    set_cache_top_level();
    true
}

/// `ReleaseFromReadAhead`: undoes [`acquire_fcb_for_read_ahead`].
unsafe extern "system" fn release_fcb_from_read_ahead(context: *const c_void) {
    // SAFETY: as in the acquire.
    let Some(header) = (unsafe { fcb::fcb_header(context) }) else {
        return;
    };
    clear_cache_top_level();
    // SAFETY: live FCB header.
    let main = unsafe { fcb::main_resource(header) };
    // SAFETY: acquired by the matching acquire on this thread.
    unsafe { release(main) };
}

// ---- FsRtl filter callbacks ----------------------------------------------------------------

/// Section synchronisation (NT-06): `NtCreateSection` and a few other Mm paths serialise
/// with the FS here. Main resource exclusive; for `SyncTypeCreateSection` the answer says
/// whether the stream has writers in its share access, which Mm uses to decide on
/// write-through section semantics. A writable section first reserves the overlay clusters
/// its pages could need (NT-15) and fails with `STATUS_DISK_FULL` if it cannot.
unsafe extern "system" fn filter_acquire_for_section_sync(
    data: *const FS_FILTER_CALLBACK_DATA,
    _completion_context: *mut *mut c_void,
) -> NTSTATUS {
    // SAFETY: FsRtl's contract is passed on.
    let status = unsafe { acquire_for_section_sync(data) };
    // SAFETY: FsRtl passes valid callback data.
    let data = unsafe { &*data };
    let (operation, file_object) = (data.Operation, data.FileObject);
    // SAFETY: the union member that matches this operation.
    let sync_type = unsafe { data.Parameters.AcquireForSectionSynchronization.SyncType };
    let context = if file_object.is_null() {
        core::ptr::null_mut()
    } else {
        // SAFETY: a valid file object of the callback.
        unsafe { (*file_object).FsContext }
    };
    crate::global::CFAT_DATA.trace.record(
        crate::debugger::trace_kind::FS_FILTER,
        operation,
        u8::try_from(sync_type).unwrap_or(u8::MAX),
        context,
        status,
    );
    status
}

/// The body of [`filter_acquire_for_section_sync`].
///
/// # Safety
/// FsRtl's: `data` is valid callback data.
unsafe fn acquire_for_section_sync(data: *const FS_FILTER_CALLBACK_DATA) -> NTSTATUS {
    // SAFETY: FsRtl passes valid callback data.
    let Some(header) = (unsafe { header_of(data) }) else {
        // Not one of our streams: nothing here can be mapped.
        return nt::STATUS_INVALID_DEVICE_REQUEST;
    };
    fsrtl_enter_file_system();
    // SAFETY: live FCB header.
    let main = unsafe { fcb::main_resource(header) };
    if !main.is_null() {
        // SAFETY: initialised with the FCB; waiting is allowed at PASSIVE_LEVEL here.
        unsafe { nt::ExAcquireResourceExclusiveLite(main, true) };
    }
    // SAFETY: FsRtl passes valid callback data.
    let params = unsafe { (*data).Parameters };
    // SAFETY: the union member that matches this operation.
    let sync_type = unsafe { params.AcquireForSectionSynchronization.SyncType };
    if sync_type != nt::SyncTypeCreateSection {
        return nt::STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY;
    }
    // SAFETY: the union member that matches this operation.
    let protection = unsafe { params.AcquireForSectionSynchronization.PageProtection };
    // SAFETY: the union member that matches this operation.
    let attributes = unsafe { params.AcquireForSectionSynchronization.AllocationAttributes };
    let fcb = header.cast::<Fcb>();
    // SAFETY: FsRtl passes valid callback data.
    let file_object = unsafe { (*data).FileObject };
    // SAFETY: `header` is the first member of a live FCB (checked in header_of).
    note_section_creator(unsafe { &*fcb }, attributes, file_object);
    let writable = is_writable_protection(protection);
    if writable {
        // SAFETY: `header` is the first member of a live FCB (checked in header_of).
        if let Err(status) = reserve_for_writable_section(unsafe { &*fcb }) {
            // SAFETY: acquired exclusive above on this thread; no release callback follows
            // a failed acquire.
            unsafe { release(main) };
            fsrtl_exit_file_system();
            return status;
        }
    }
    // SAFETY: as above; the main resource is held exclusive.
    crate::section::note_section_created(unsafe { &*fcb }, protection, attributes, writable);
    // SAFETY: `header` is the first member of an FCB (checked by node type in header_of).
    let share_access = unsafe { (*fcb).share_access.get() };
    // SAFETY: read under the main resource, which create and cleanup hold while they change
    // the counts.
    let writers = unsafe { (*share_access).Writers };
    if writers == 0 {
        nt::STATUS_FILE_LOCKED_WITH_ONLY_READERS
    } else {
        nt::STATUS_FILE_LOCKED_WITH_WRITERS
    }
}

/// The section about to be created is the stream's first of its kind: Mm's new control area
/// will reference this file object (for the debugger, seed 003). Taken under the main
/// resource exclusive, before Mm fills the SOP.
fn note_section_creator(fcb: &Fcb, attributes: u32, file_object: *mut nt::FILE_OBJECT) {
    use core::sync::atomic::Ordering::Relaxed;
    let image = attributes & nt::SEC_IMAGE != 0;
    // SAFETY: the FCB's non-paged SOP; Mm changes it only under this resource.
    let sop = unsafe { &*fcb.section_object_pointers() };
    if image && sop.ImageSectionObject.is_null() {
        fcb.section_creators
            .image
            .store(file_object.cast(), Relaxed);
    } else if !image && sop.DataSectionObject.is_null() {
        fcb.section_creators.data.store(file_object.cast(), Relaxed);
    }
}

/// `PAGE_READWRITE` / `PAGE_EXECUTE_READWRITE`: views of the section can dirty file pages
/// (the copy-on-write protections make private copies and never write the file).
fn is_writable_protection(protection: u32) -> bool {
    const PAGE_READWRITE: u32 = 0x04;
    const PAGE_EXECUTE_READWRITE: u32 = 0x40;
    protection & (PAGE_READWRITE | PAGE_EXECUTE_READWRITE) != 0
}

/// NT-15: every page of a writable section may become dirty and be written by the mapped
/// page writer, which cannot fail for space; reserve the overlay clusters those writes could
/// need now, so the user-visible section creation fails instead (`STATUS_DISK_FULL`).
fn reserve_for_writable_section(fcb: &Fcb) -> Result<(), NTSTATUS> {
    // SAFETY: an FCB's VCB outlives it.
    let vcb = unsafe { &*fcb.vcb };
    let id = fcb.id;
    let size = fcb.file_size();
    vcb.with_volume(|v| v.reserve_overlay(id, 0, size))
        .map(drop)
}

/// Release after section synchronisation.
unsafe extern "system" fn filter_release_for_section_sync(
    data: *const FS_FILTER_CALLBACK_DATA,
    _completion_context: *mut *mut c_void,
) -> NTSTATUS {
    // SAFETY: FsRtl passes valid callback data.
    let Some(header) = (unsafe { header_of(data) }) else {
        return nt::STATUS_INVALID_DEVICE_REQUEST;
    };
    // SAFETY: live FCB header.
    let main = unsafe { fcb::main_resource(header) };
    // SAFETY: acquired exclusive by the matching acquire on this thread.
    unsafe { release(main) };
    fsrtl_exit_file_system();
    nt::STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY
}

/// Before `CcFlushCache` writes a range: main resource then paging I/O resource, both shared
/// (recursive if the thread already holds them, e.g. a flush from our own write path).
unsafe extern "system" fn filter_acquire_for_cc_flush(
    data: *const FS_FILTER_CALLBACK_DATA,
    _completion_context: *mut *mut c_void,
) -> NTSTATUS {
    // SAFETY: FsRtl passes valid callback data.
    let Some(header) = (unsafe { header_of(data) }) else {
        return nt::STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY;
    };
    fsrtl_enter_file_system();
    // SAFETY: live FCB header.
    let main = unsafe { fcb::main_resource(header) };
    // SAFETY: live FCB header.
    let paging = unsafe { fcb::paging_io_resource(header) };
    // SAFETY: initialised resources; waiting allowed (CcFlushCache callers are PASSIVE_LEVEL).
    unsafe { acquire_shared(main, true) };
    // SAFETY: as above.
    unsafe { acquire_shared(paging, true) };
    set_cache_top_level();
    nt::STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY
}

/// After `CcFlushCache`: undoes [`filter_acquire_for_cc_flush`] in reverse order.
unsafe extern "system" fn filter_release_for_cc_flush(
    data: *const FS_FILTER_CALLBACK_DATA,
    _completion_context: *mut *mut c_void,
) -> NTSTATUS {
    // SAFETY: FsRtl passes valid callback data.
    let Some(header) = (unsafe { header_of(data) }) else {
        return nt::STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY;
    };
    clear_cache_top_level();
    // SAFETY: live FCB header.
    let paging = unsafe { fcb::paging_io_resource(header) };
    // SAFETY: live FCB header.
    let main = unsafe { fcb::main_resource(header) };
    // SAFETY: both acquired by the matching acquire on this thread.
    unsafe { release(paging) };
    // SAFETY: as above.
    unsafe { release(main) };
    fsrtl_exit_file_system();
    nt::STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY
}

/// Before the modified page writer writes dirty mapped pages (NT-14): paging I/O resource
/// shared, never waiting — the writer may be what frees the memory the holder waits for, so
/// it must back off (`STATUS_CANT_WAIT`, it retries later) instead of blocking.
unsafe extern "system" fn filter_acquire_for_mod_write(
    data: *const FS_FILTER_CALLBACK_DATA,
    _completion_context: *mut *mut c_void,
) -> NTSTATUS {
    // SAFETY: FsRtl passes valid callback data.
    let params = unsafe { (*data).Parameters };
    // SAFETY: the union member that matches this operation.
    let out = unsafe { params.AcquireForModifiedPageWriter.ResourceToRelease };
    // SAFETY: FsRtl passes valid callback data.
    let resource = match unsafe { header_of(data) } {
        // SAFETY: live FCB header.
        Some(header) => unsafe { fcb::paging_io_resource(header) },
        None => ptr::null_mut(),
    };
    // SAFETY: initialised resource or NULL.
    if !unsafe { acquire_shared(resource, false) } {
        return nt::STATUS_CANT_WAIT;
    }
    if !out.is_null() {
        // SAFETY: FsRtl gives us the slot where the resource to release is returned.
        unsafe { *out = resource };
    }
    nt::STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY
}

/// After the modified page writer: releases what [`filter_acquire_for_mod_write`] returned.
/// Runs at APC_LEVEL, possibly in a special kernel APC: it only releases, never waits.
unsafe extern "system" fn filter_release_for_mod_write(
    data: *const FS_FILTER_CALLBACK_DATA,
    _completion_context: *mut *mut c_void,
) -> NTSTATUS {
    // SAFETY: FsRtl passes valid callback data.
    let params = unsafe { (*data).Parameters };
    // SAFETY: the union member that matches this operation.
    let resource = unsafe { params.ReleaseForModifiedPageWriter.ResourceToRelease };
    // SAFETY: the resource (or NULL) our acquire returned, held shared for this write.
    unsafe { release(resource) };
    nt::STATUS_FSFILTER_OP_COMPLETED_SUCCESSFULLY
}

// ---- Resource guards used by the dispatch routines ------------------------------------------

/// An ERESOURCE held by this thread until the guard drops (acquired with Wait = TRUE: every
/// dispatch path here may block; only a close, which must not, tries without waiting, NT-32).
pub struct ResourceGuard {
    resource: *mut ERESOURCE,
}

impl ResourceGuard {
    /// Acquires `resource` exclusive.
    ///
    /// # Safety
    /// `resource` is initialised and outlives the guard; the thread is in a critical region.
    #[must_use]
    pub unsafe fn exclusive(resource: *mut ERESOURCE) -> Self {
        // SAFETY: the caller's contract; with Wait = TRUE it always succeeds.
        unsafe { nt::ExAcquireResourceExclusiveLite(resource, true) };
        Self { resource }
    }

    /// Acquires `resource` exclusive if that needs no wait (Wait = FALSE); None when another
    /// thread holds it.
    ///
    /// # Safety
    /// As [`ResourceGuard::exclusive`].
    #[must_use]
    pub unsafe fn try_exclusive(resource: *mut ERESOURCE) -> Option<Self> {
        // SAFETY: the caller's contract.
        unsafe { nt::ExAcquireResourceExclusiveLite(resource, false) }.then(|| Self { resource })
    }

    /// Acquires `resource` shared.
    ///
    /// # Safety
    /// As [`ResourceGuard::exclusive`].
    #[must_use]
    pub unsafe fn shared(resource: *mut ERESOURCE) -> Self {
        // SAFETY: the caller's contract; with Wait = TRUE it always succeeds.
        unsafe { nt::ExAcquireResourceSharedLite(resource, true) };
        Self { resource }
    }
}

impl Drop for ResourceGuard {
    fn drop(&mut self) {
        // SAFETY: acquired by this guard on this thread.
        unsafe { nt::ExReleaseResourceLite(self.resource) };
    }
}

/// A deliberately wrong lock order, in host builds only, behind a switch: the concurrency
/// explorer's own test (ntsim `nt_19_concurrency`) turns it on to show that it finds the
/// deadlock an inversion causes. Never in the image.
#[cfg(not(windows))]
pub mod inverted_order {
    use core::sync::atomic::{AtomicBool, Ordering};

    static ENABLED: AtomicBool = AtomicBool::new(false);

    /// Makes `FileDispositionInformation` take the FCB's main resource before the VCB
    /// resource (the documented order is VCB first; tests only).
    pub fn enable_for_test(on: bool) {
        ENABLED.store(on, Ordering::SeqCst);
    }

    /// Is the inversion on?
    #[must_use]
    pub fn enabled() -> bool {
        ENABLED.load(Ordering::SeqCst)
    }
}
