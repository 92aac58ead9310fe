//! The cache manager: a shared cache map per SOP on top of Mm's control area (so cached I/O
//! and user views share pages, NT-03), private cache maps per file object, copy read/write
//! through page faults, file sizes, flush, purge (NT-08), uninitialize, and the lazy writer
//! step that writes Cc-dirty pages under the FS's `AcquireForLazyWrite` callback (NT-14).
//!
//! Stricter than Windows: `CcCopyRead`/`CcCopyWrite` on a file object without its own
//! `CcInitializeCacheMap`, or past the FileSize Cc was told, are bug checks; a purge fails if
//! any user view overlaps the range (NT-08) and only a whole-stream purge deletes the segment.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::ptr;

use windows_sys::Wdk::Foundation::{FILE_OBJECT, SECTION_OBJECT_POINTERS};
use windows_sys::Wdk::Storage::FileSystem::{
    CACHE_MANAGER_CALLBACKS, CACHE_UNINITIALIZE_EVENT, CC_FILE_SIZES,
};
use windows_sys::Win32::Foundation::{STATUS_CACHE_PAGE_LOCKED, STATUS_SUCCESS};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use crate::ex::{bugcheck, set_event};
use crate::kernel::{self, Page, SharedCacheMap, PAGE};
use crate::mm::{self, pages, Dirty};
use crate::trace::Event;

const UNINITIALIZE_CACHE_MAPS: u32 = 0x1;
const CC_FLUSH_AND_PURGE_NO_PURGE: u32 = 0x1;
const PAGE_U64: u64 = PAGE as u64;

/// Any non-NULL value: the FS only tests `SharedCacheMap` and `PrivateCacheMap`.
fn marker() -> *mut c_void {
    ptr::without_provenance_mut(0x5CAC_4E00)
}

#[no_mangle]
pub unsafe extern "system" fn CcInitializeCacheMap(
    fileobject: *const FILE_OBJECT,
    filesizes: *const CC_FILE_SIZES,
    _pinaccess: bool,
    callbacks: *const CACHE_MANAGER_CALLBACKS,
    lazywritecontext: *const c_void,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    let fo = fileobject.cast_mut();
    let sop = mm::sop_of(fo);
    if sop.is_null() {
        bugcheck("CcInitializeCacheMap on a file object without SectionObjectPointer");
    }
    // SAFETY: the caller's sizes.
    let file_size = unsafe { (*filesizes).FileSize };
    mm::register_fcb_resources(fo);
    mm::ensure_control_area(sop, fo, u64::try_from(file_size).unwrap_or(0));
    kernel::with(|k| {
        k.note("CcInitializeCacheMap", fo);
        let Some(ca) = k.control_areas.get_mut(&sop) else {
            bugcheck("control area vanished")
        };
        let cache = ca.cache.get_or_insert_with(|| SharedCacheMap {
            file_size,
            callbacks,
            context: lazywritecontext,
            private: BTreeSet::new(),
            uninitialize_pending: false,
        });
        cache.private.insert(fo);
        cache.uninitialize_pending = false;
    });
    // SAFETY: the stream's SOP: Cc owns SharedCacheMap (NT-02).
    unsafe { (*sop).SharedCacheMap = marker() };
    // SAFETY: the caller's file object: Cc owns PrivateCacheMap.
    unsafe { (*fo).PrivateCacheMap = marker() };
}

#[no_mangle]
pub unsafe extern "system" fn CcSetFileSizes(
    fileobject: *const FILE_OBJECT,
    filesizes: *const CC_FILE_SIZES,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    let fo = fileobject.cast_mut();
    let sop = mm::sop_of(fo);
    // SAFETY: the caller's sizes.
    let file_size = unsafe { (*filesizes).FileSize };
    let size = u64::try_from(file_size).unwrap_or(0);
    kernel::with(|k| {
        let Some(ca) = k.control_areas.get_mut(&sop) else {
            return;
        };
        let Some(cache) = ca.cache.as_mut() else {
            return;
        };
        cache.file_size = file_size;
        ca.size = size;
        ca.pages.retain(|index, _| *index * PAGE_U64 < size);
        let tail = size % PAGE_U64;
        if let Some(page) = ca.pages.get_mut(&(size / PAGE_U64)).filter(|_| tail != 0) {
            page.data[tail as usize..].fill(0);
        }
    });
}

/// Checks a copy against the caller's private cache map and Cc's FileSize.
fn check_copy(
    fo: *mut FILE_OBJECT,
    offset: u64,
    len: u64,
    what: &str,
) -> *mut SECTION_OBJECT_POINTERS {
    // SAFETY: the caller's file object.
    if unsafe { (*fo).PrivateCacheMap }.is_null() {
        bugcheck(&format!(
            "{what} on a file object that never called CcInitializeCacheMap"
        ));
    }
    let sop = mm::sop_of(fo);
    let size = kernel::with(|k| {
        k.control_areas
            .get(&sop)
            .and_then(|ca| ca.cache.as_ref())
            .map(|c| c.file_size)
    });
    let Some(size) = size else {
        bugcheck(&format!("{what} with no shared cache map"))
    };
    if offset + len > u64::try_from(size).unwrap_or(0) {
        bugcheck(&format!("{what} past the FileSize Cc was given"));
    }
    sop
}

#[no_mangle]
pub unsafe extern "system-unwind" fn CcCopyRead(
    fileobject: *const FILE_OBJECT,
    fileoffset: *const i64,
    length: u32,
    _wait: bool,
    buffer: *mut c_void,
    iostatus: *mut IO_STATUS_BLOCK,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    let fo = fileobject.cast_mut();
    // SAFETY: the caller's offset.
    let offset = u64::try_from(unsafe { *fileoffset }).unwrap_or(u64::MAX);
    let sop = check_copy(fo, offset, u64::from(length), "CcCopyRead");
    // NT-24: a bad user buffer or a failed page read raises (WRK copysup.c).
    crate::seh::check_copy_buffer(buffer.cast_const(), length as usize);
    // A buffer that maps a file: Cc's copy faults its pages in (our own paging read of that
    // file, while the caller holds this one's resource: legal, another stream).
    let view = crate::seh::view_behind(buffer.addr(), length as usize);
    let _copying = CopyInProgress::enter(sop);
    let mut staging = Vec::new();
    let out = if view.is_some() {
        staging.resize(length as usize, 0);
        staging.as_mut_slice()
    } else {
        // SAFETY: the caller's buffer holds `length` bytes.
        unsafe { std::slice::from_raw_parts_mut(buffer.cast::<u8>(), length as usize) }
    };
    for index in pages(offset, u64::from(length)) {
        if let Err(s) = mm::fault_in(sop, index) {
            crate::seh::raise(normalize_io_error(s));
        }
        kernel::with(|k| mm::copy_page(k, sop, index, offset, out, None));
    }
    if let Some((view, at)) = view {
        match mm::view_write(view, at, &staging) {
            Ok(()) => {}
            Err(windows_sys::Win32::Foundation::STATUS_ACCESS_VIOLATION) => {
                crate::seh::raise(windows_sys::Win32::Foundation::STATUS_INVALID_USER_BUFFER)
            }
            Err(s) => crate::seh::raise(normalize_io_error(s)),
        }
    }
    // SAFETY: the caller's status block.
    let iosb = unsafe { &mut *iostatus };
    iosb.Anonymous.Status = STATUS_SUCCESS;
    iosb.Information = length as usize;
    true
}

/// A Cc copy using the stream's views: while it runs (it may fault and so let another thread
/// run), a purge of the stream fails, as Cc's purge does while a view is in use.
struct CopyInProgress(usize);

impl CopyInProgress {
    fn enter(sop: *mut SECTION_OBJECT_POINTERS) -> Self {
        kernel::with(|k| *k.copies_in_progress.entry(sop as usize).or_insert(0) += 1);
        Self(sop as usize)
    }
}

impl Drop for CopyInProgress {
    fn drop(&mut self) {
        kernel::with(|k| {
            if let Some(n) = k.copies_in_progress.get_mut(&self.0) {
                *n -= 1;
                if *n == 0 {
                    k.copies_in_progress.remove(&self.0);
                }
            }
        });
    }
}

/// `FsRtlNormalizeNtstatus(status, STATUS_UNEXPECTED_IO_ERROR)`: what Cc raises for a page
/// it could not read.
fn normalize_io_error(status: i32) -> i32 {
    if crate::seh::FsRtlIsNtstatusExpected(status) {
        status
    } else {
        windows_sys::Win32::Foundation::STATUS_UNEXPECTED_IO_ERROR
    }
}

#[no_mangle]
pub unsafe extern "system-unwind" fn CcCopyWrite(
    fileobject: *const FILE_OBJECT,
    fileoffset: *const i64,
    length: u32,
    _wait: bool,
    buffer: *const c_void,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    let fo = fileobject.cast_mut();
    // SAFETY: the caller's offset.
    let offset = u64::try_from(unsafe { *fileoffset }).unwrap_or(u64::MAX);
    let sop = check_copy(fo, offset, u64::from(length), "CcCopyWrite");
    crate::seh::check_copy_buffer(buffer, length as usize);
    // SAFETY: the caller's buffer holds `length` bytes.
    let data = unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), length as usize) };
    let mut scratch = data.to_vec();
    let end = offset + u64::from(length);
    let _copying = CopyInProgress::enter(sop);
    for index in pages(offset, u64::from(length)) {
        let whole = offset <= index * PAGE_U64 && (index + 1) * PAGE_U64 <= end;
        if whole {
            kernel::with(|k| {
                if let Some(ca) = k.control_areas.get_mut(&sop) {
                    ca.pages.entry(index).or_insert(Page {
                        data: vec![0; PAGE],
                        cc_dirty: false,
                        mm_dirty: false,
                    });
                }
            });
        } else if let Err(s) = mm::fault_in(sop, index) {
            crate::seh::raise(normalize_io_error(s));
        }
        kernel::with(|k| mm::copy_page(k, sop, index, offset, &mut scratch, Some(Dirty::Cache)));
    }
    true
}

#[no_mangle]
pub unsafe extern "system" fn CcFlushCache(
    sectionobjectpointer: *const SECTION_OBJECT_POINTERS,
    fileoffset: *const i64,
    length: u32,
    iostatus: *mut IO_STATUS_BLOCK,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    let sop = sectionobjectpointer.cast_mut();
    let range = if fileoffset.is_null() {
        None
    } else {
        // SAFETY: the caller's offset.
        let offset = u64::try_from(unsafe { *fileoffset }).unwrap_or(0);
        Some((offset, u64::from(length)))
    };
    kernel::with(|k| k.note("CcFlushCache", ptr::null()));
    let status = mm::write_dirty(sop, range, Dirty::Any);
    if !iostatus.is_null() {
        // SAFETY: the caller's status block.
        let iosb = unsafe { &mut *iostatus };
        iosb.Anonymous.Status = status;
        iosb.Information = 0;
    }
}

/// Flush, then purge unless `CC_FLUSH_AND_PURGE_NO_PURGE`. Windows also tries to invalidate
/// user-mapped pages and reports `STATUS_CACHE_PAGE_LOCKED` (a success status) when it
/// cannot; the stricter model never can while a user view maps the range, and then keeps
/// every page of it.
#[no_mangle]
pub unsafe extern "system" fn CcCoherencyFlushAndPurgeCache(
    sectionobjectpointer: *const SECTION_OBJECT_POINTERS,
    fileoffset: *const i64,
    length: u32,
    iostatus: *mut IO_STATUS_BLOCK,
    flags: u32,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    let sop = sectionobjectpointer.cast_mut();
    let range = if fileoffset.is_null() {
        None
    } else {
        // SAFETY: the caller's offset.
        let offset = u64::try_from(unsafe { *fileoffset }).unwrap_or(0);
        Some((offset, u64::from(length)))
    };
    let mut status = mm::write_dirty(sop, range, Dirty::Any);
    if status >= 0 && flags & CC_FLUSH_AND_PURGE_NO_PURGE == 0 {
        let (offset, len) = range.unwrap_or((0, u64::MAX));
        let purged = kernel::with(|k| {
            let Some(ca) = k.control_areas.get_mut(&sop) else {
                return true;
            };
            let fo = ca.file_object;
            if ca.mapped(offset, len) {
                k.note("CcCoherencyFlushAndPurgeCache: user-mapped pages kept", fo);
                return false;
            }
            let end = offset.saturating_add(len);
            ca.pages
                .retain(|index, _| !(index * PAGE_U64 < end && offset < (index + 1) * PAGE_U64));
            k.note("CcCoherencyFlushAndPurgeCache", fo);
            true
        });
        if !purged {
            status = STATUS_CACHE_PAGE_LOCKED;
        }
    }
    // SAFETY: the caller's status block.
    let iosb = unsafe { &mut *iostatus };
    iosb.Anonymous.Status = status;
    iosb.Information = 0;
}

#[no_mangle]
pub unsafe extern "system" fn CcPurgeCacheSection(
    sectionobjectpointer: *const SECTION_OBJECT_POINTERS,
    fileoffset: *const i64,
    length: u32,
    flags: u32,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    let sop = sectionobjectpointer.cast_mut();
    let range = if fileoffset.is_null() {
        None
    } else {
        // SAFETY: the caller's offset.
        let offset = u64::try_from(unsafe { *fileoffset }).unwrap_or(0);
        let len = if length == 0 {
            u64::MAX - offset
        } else {
            u64::from(length)
        };
        Some((offset, len))
    };
    if kernel::with(|k| k.copies_in_progress.contains_key(&(sop as usize))) {
        kernel::with(|k| {
            k.note(
                "CcPurgeCacheSection refused: a copy is in progress",
                ptr::null(),
            )
        });
        return false;
    }
    let (purged, unmapped_fos) = kernel::with(|k| purge_locked(k, sop, range, flags));
    if !purged {
        return false;
    }
    for fo in unmapped_fos {
        // SAFETY: file objects that had a private cache map on this stream.
        unsafe { (*fo).PrivateCacheMap = ptr::null_mut() };
    }
    if flags & UNINITIALIZE_CACHE_MAPS != 0 {
        // SAFETY: the stream's SOP.
        unsafe { (*sop).SharedCacheMap = ptr::null_mut() };
    }
    if range.is_none() {
        mm::delete_if_unreferenced(sop);
    }
    true
}

/// The purge's model part: refuse while mapped (NT-08), drop pages, maybe tear the cache map
/// down. Returns whether it purged and the file objects whose private maps went.
fn purge_locked(
    k: &mut kernel::Kernel,
    sop: *mut SECTION_OBJECT_POINTERS,
    range: Option<(u64, u64)>,
    flags: u32,
) -> (bool, Vec<*mut FILE_OBJECT>) {
    let Some(ca) = k.control_areas.get_mut(&sop) else {
        return (true, Vec::new());
    };
    let (offset, len) = range.unwrap_or((0, u64::MAX));
    if ca.mapped(offset, len) {
        let fo = ca.file_object;
        k.note("CcPurgeCacheSection refused: user-mapped", fo);
        return (false, Vec::new());
    }
    let end = offset.saturating_add(len);
    ca.pages
        .retain(|index, _| !(index * PAGE_U64 < end && offset < (index + 1) * PAGE_U64));
    let mut fos = Vec::new();
    if flags & UNINITIALIZE_CACHE_MAPS != 0 {
        if let Some(cache) = ca.cache.take() {
            fos.extend(cache.private);
        }
    }
    let fo = ca.file_object;
    k.note("CcPurgeCacheSection", fo);
    (true, fos)
}

#[no_mangle]
pub unsafe extern "system" fn CcUninitializeCacheMap(
    fileobject: *const FILE_OBJECT,
    truncatesize: *const i64,
    uninitializeevent: *const CACHE_UNINITIALIZE_EVENT,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    let fo = fileobject.cast_mut();
    let sop = mm::sop_of(fo);
    let truncate = if truncatesize.is_null() {
        None
    } else {
        // SAFETY: the caller's size.
        Some(u64::try_from(unsafe { *truncatesize }).unwrap_or(0))
    };
    let (had_private, delete_map) = kernel::with(|k| uninitialize_locked(k, sop, fo, truncate));
    if had_private {
        // SAFETY: the caller's file object.
        unsafe { (*fo).PrivateCacheMap = ptr::null_mut() };
    }
    if delete_map {
        // SAFETY: the stream's SOP.
        unsafe { (*sop).SharedCacheMap = ptr::null_mut() };
    }
    if !uninitializeevent.is_null() {
        // SAFETY: the caller's event block.
        set_event(unsafe { &raw const (*uninitializeevent).Event });
    }
    had_private
}

fn uninitialize_locked(
    k: &mut kernel::Kernel,
    sop: *mut SECTION_OBJECT_POINTERS,
    fo: *mut FILE_OBJECT,
    truncate: Option<u64>,
) -> (bool, bool) {
    k.note("CcUninitializeCacheMap", fo);
    let Some(ca) = k.control_areas.get_mut(&sop) else {
        return (false, false);
    };
    if let Some(size) = truncate {
        ca.pages.retain(|index, _| *index * PAGE_U64 < size);
    }
    let Some(cache) = ca.cache.as_mut() else {
        return (false, false);
    };
    let had = cache.private.remove(&fo);
    if !cache.private.is_empty() {
        return (had, false);
    }
    if ca.pages.values().any(|p| p.cc_dirty) {
        cache.uninitialize_pending = true;
        return (had, false);
    }
    ca.cache = None;
    (had, true)
}

/// One lazy writer pass: for every cached stream with Cc-dirty pages, `AcquireForLazyWrite`,
/// paging writes, `ReleaseFromLazyWrite`; cache maps whose last user left are deleted once
/// clean.
pub(crate) fn lazy_writer() {
    // Each stream picked is held open until its pass is over (Cc's `CcWriteBehind`): the
    // callbacks' context, the FS's FCB, stays alive while another thread purges.
    let work: Vec<_> = kernel::with(|k| {
        k.control_areas
            .iter_mut()
            .filter_map(|(sop, ca)| {
                let cache = ca.cache.as_ref()?;
                let dirty = ca.pages.values().any(|p| p.cc_dirty);
                let item = (*sop, ca.file_object, cache.callbacks, cache.context);
                if !(dirty || cache.uninitialize_pending) {
                    return None;
                }
                ca.lazy_writes += 1;
                Some(item)
            })
            .collect()
    });
    mm::as_thread(1, || {
        for (sop, fo, callbacks, context) in work {
            // SAFETY: the FS's callback table given to CcInitializeCacheMap (static).
            let table = unsafe { &*callbacks };
            if call_lazy_acquire(table, context, fo) {
                let _ = mm::write_dirty(sop, None, Dirty::Cache);
                if let Some(release) = table.ReleaseFromLazyWrite {
                    // SAFETY: the FS's release with its own context, after a successful
                    // acquire.
                    unsafe { release(context) };
                    trace_callback("ReleaseFromLazyWrite", fo, 0);
                }
                finish_uninitialize(sop);
            }
            end_lazy_write(sop);
        }
    });
}

/// The lazy writer is done with `sop`: a section deletion it held off happens now.
fn end_lazy_write(sop: *mut SECTION_OBJECT_POINTERS) {
    let deferred = kernel::with(|k| {
        let ca = k.control_areas.get_mut(&sop)?;
        ca.lazy_writes = ca.lazy_writes.saturating_sub(1);
        Some(ca.lazy_writes == 0 && std::mem::take(&mut ca.delete_deferred))
    });
    if deferred == Some(true) {
        mm::delete_if_unreferenced(sop);
    }
}

fn call_lazy_acquire(
    table: &CACHE_MANAGER_CALLBACKS,
    context: *const c_void,
    fo: *mut FILE_OBJECT,
) -> bool {
    let Some(acquire) = table.AcquireForLazyWrite else {
        return true;
    };
    // SAFETY: the FS's callback with its own context; Wait = TRUE.
    let ok = unsafe { acquire(context, true) };
    trace_callback("AcquireForLazyWrite", fo, i32::from(ok));
    ok
}

fn trace_callback(name: &'static str, fo: *mut FILE_OBJECT, result: i32) {
    kernel::with(|k| {
        let file = k.fo_id(fo);
        k.trace.push(Event::Callback { name, file, result });
    });
}

/// Deletes a cache map whose last private map went while dirty, now that it is clean.
fn finish_uninitialize(sop: *mut SECTION_OBJECT_POINTERS) {
    let deleted = kernel::with(|k| {
        let Some(ca) = k.control_areas.get_mut(&sop) else {
            return false;
        };
        let clean = !ca.pages.values().any(|p| p.cc_dirty);
        let done = ca
            .cache
            .as_ref()
            .is_some_and(|c| c.uninitialize_pending && c.private.is_empty());
        if clean && done {
            ca.cache = None;
        }
        clean && done
    });
    if deleted {
        // SAFETY: the stream's SOP.
        unsafe { (*sop).SharedCacheMap = ptr::null_mut() };
    }
}
