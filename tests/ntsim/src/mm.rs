//! The memory manager: one data control area per SOP (NT-03) shared by Cc and user views,
//! referencing the file object that created it (NT-04); user sections and views whose reads
//! and writes fault page by page into paging IRPs (NT-13); dirty pages; flush; the modified
//! page writer; memory pressure (writes dirty pages, drops clean ones, deletes unreferenced
//! segments, which closes their file objects); image sections; the Mm queries the file system
//! asks (NT-07, NT-09, NT-10, NT-11).
//!
//! Stricter than Windows: a view offset must be a multiple of 64 KiB (the allocation
//! granularity); `MmCanFileBeTruncated` says no while any user section object is larger than
//! the new size, mapped or not; `MmFlushImageSection` says no while an image section object
//! exists at all; memory pressure drops every clean page, mapped or not, so the next access
//! faults again (standby pages can be repurposed at any time).
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ptr;

use windows_sys::Wdk::Foundation::{FILE_OBJECT, MDL, SECTION_OBJECT_POINTERS};
use windows_sys::Wdk::Storage::FileSystem::{
    SyncTypeCreateSection, FSRTL_COMMON_FCB_HEADER, FS_FILTER_PARAMETERS, MMFLUSH_TYPE,
};
use windows_sys::Wdk::System::SystemServices::MEMORY_CACHING_TYPE;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_VIOLATION, STATUS_INVALID_PARAMETER, STATUS_INVALID_VIEW_SIZE,
    STATUS_MAPPED_ALIGNMENT, STATUS_MAPPED_FILE_SIZE_ZERO, STATUS_SUCCESS,
};

use crate::ex::bugcheck;
use crate::fsrtl::{self, Which};
use crate::io;
use crate::kernel::{self, ControlArea, ImageSection, Page, SectionRecord, ViewRecord, PAGE};

/// `IRP_PAGING_IO | IRP_NOCACHE | IRP_SYNCHRONOUS_PAGING_IO`.
pub const PAGING_FLAGS: u32 = 0x2 | 0x1 | 0x40;
const IRP_MJ_READ: u8 = 0x03;
const IRP_MJ_WRITE: u8 = 0x04;
const PAGE_READONLY: u32 = 0x02;
const PAGE_READWRITE: u32 = 0x04;
const PAGE_EXECUTE_READ: u32 = 0x20;
/// `SEC_IMAGE` (winnt.h): `NtCreateSection` of an image section.
const SEC_IMAGE: u32 = 0x0100_0000;
const ALLOCATION_GRANULARITY: u64 = 64 * 1024;
/// `FSRTL_MOD_WRITE_TOP_LEVEL_IRP` (ntifs.h): the top-level "IRP" of Mm's page writers.
pub const FSRTL_MOD_WRITE_TOP_LEVEL_IRP: usize = 3;
/// The model thread Mm deletes segments on (its dereference segment thread).
pub const SEGMENT_THREAD: u32 = 4;
const PAGE_U64: u64 = PAGE as u64;

/// Pages touched by `[offset, offset + len)`.
#[must_use]
pub(crate) fn pages(offset: u64, len: u64) -> std::ops::Range<u64> {
    if len == 0 {
        return 0..0;
    }
    offset / PAGE_U64..(offset + len).div_ceil(PAGE_U64)
}

/// Which dirty pages a writer takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dirty {
    /// Dirtied through Cc (the lazy writer).
    Cache,
    /// Any (flushes, the modified page writer).
    Any,
}

/// The SOP of a file object.
#[must_use]
pub(crate) fn sop_of(fo: *mut FILE_OBJECT) -> *mut SECTION_OBJECT_POINTERS {
    // SAFETY: live file objects the model created.
    unsafe { (*fo).SectionObjectPointer }
}

/// Runs `f` as model thread `thread` (lazy writer 1, page writers 2, system worker 3, Mm's
/// segment thread 4, DPCs 5, a test's other threads above), with that thread's own
/// top-level IRP, critical region state and IRQL (it starts at PASSIVE_LEVEL).
pub fn as_thread<R>(thread: u32, f: impl FnOnce() -> R) -> R {
    let saved = kernel::with(|k| {
        let saved = (k.thread, k.top_level_irp, k.critical_region, k.irql);
        k.thread = thread;
        k.top_level_irp = ptr::null_mut();
        k.critical_region = 0;
        k.irql = crate::irql::PASSIVE_LEVEL;
        saved
    });
    let result = f();
    kernel::with(|k| {
        (k.thread, k.top_level_irp, k.critical_region, k.irql) = saved;
    });
    result
}

/// Mm's control area for `sop`, created (referencing `fo`, NT-04) if there is none.
pub(crate) fn ensure_control_area(
    sop: *mut SECTION_OBJECT_POINTERS,
    fo: *mut FILE_OBJECT,
    size: u64,
) {
    let created = kernel::with(|k| {
        if let Some(ca) = k.control_areas.get_mut(&sop) {
            ca.size = ca.size.max(size);
            return None;
        }
        let ca = Box::new(ControlArea {
            file_object: fo,
            pages: Default::default(),
            size,
            sections: 0,
            writable_sections: 0,
            views: Default::default(),
            cache: None,
            lazy_writes: 0,
            delete_deferred: false,
        });
        let marker = ptr::from_ref::<ControlArea>(&ca).cast_mut().cast();
        k.control_areas.insert(sop, ca);
        k.note("control area created", fo);
        Some(marker)
    });
    if let Some(marker) = created {
        io::reference(fo);
        // SAFETY: the stream's SOP: Mm owns DataSectionObject (NT-02).
        unsafe { (*sop).DataSectionObject = marker };
    }
}

/// Deletes the control area if nothing references it (`MiCheckControlArea`): the SOP forgets
/// it and its file object loses Mm's reference, which may send IRP_MJ_CLOSE (NT-04). Dirty
/// pages are the caller's to write first.
pub(crate) fn delete_if_unreferenced(sop: *mut SECTION_OBJECT_POINTERS) -> bool {
    let fo = kernel::with(|k| {
        let ca = k.control_areas.get_mut(&sop)?;
        if !ca.unreferenced() {
            return None;
        }
        if ca.lazy_writes > 0 {
            ca.delete_deferred = true;
            return None;
        }
        let fo = ca.file_object;
        k.control_areas.remove(&sop);
        k.note("segment deleted", fo);
        Some(fo)
    });
    let Some(fo) = fo else {
        return false;
    };
    // SAFETY: the stream's SOP.
    unsafe { (*sop).DataSectionObject = ptr::null_mut() };
    // Mm drops its reference at APC_LEVEL: the close that follows arrives there (NT-27).
    crate::irql::at_apc_level(|| io::dereference(fo));
    true
}

/// Faults page `index` in: a paging read on the control area's file object (NT-04, NT-13).
pub(crate) fn fault_in(sop: *mut SECTION_OBJECT_POINTERS, index: u64) -> Result<(), NTSTATUS> {
    crate::sched::switch_point("Mm page fault");
    let fo = kernel::with(|k| {
        let ca = k.control_areas.get(&sop)?;
        (!ca.pages.contains_key(&index)).then_some(ca.file_object)
    });
    let Some(fo) = fo else {
        return Ok(());
    };
    // A page from the free list is not zeroed: the FS must fill all of it (NT-13).
    let mut data = vec![0xE5u8; PAGE];
    let offset = i64::try_from(index * PAGE_U64).map_err(|_| STATUS_INVALID_PARAMETER)?;
    // SAFETY: the control area's referenced file object; the buffer holds a page.
    let (status, _) = unsafe {
        io::send_read_write(
            fo,
            IRP_MJ_READ,
            offset,
            data.as_mut_ptr(),
            PAGE as u32,
            PAGING_FLAGS,
            true,
        )
    };
    if status < 0 {
        return Err(status);
    }
    kernel::with(|k| {
        if let Some(ca) = k.control_areas.get_mut(&sop) {
            ca.pages.entry(index).or_insert(Page {
                data,
                cc_dirty: false,
                mm_dirty: false,
            });
        }
    });
    Ok(())
}

/// Writes page `index` out with a paging write; clean afterwards on success.
fn write_page(sop: *mut SECTION_OBJECT_POINTERS, index: u64) -> NTSTATUS {
    // As Mm: the page is clean from the moment its bytes are taken for the write, so a store
    // while the write is in flight (another thread, issue 19) dirties it again instead of
    // being lost when the write completes; a failed write makes it dirty again. A page whose
    // write is in flight is skipped (it stays dirty if stored to meanwhile): two writes of
    // one page in flight could land in the wrong order.
    let key = (sop as usize, index);
    let Ok(offset) = i64::try_from(index * PAGE_U64) else {
        return STATUS_INVALID_PARAMETER;
    };
    let plan = kernel::with(|k| {
        if k.writes_in_flight.contains(&key) {
            return None;
        }
        let ca = k.control_areas.get_mut(&sop)?;
        let fo = ca.file_object;
        let page = ca.pages.get_mut(&index).filter(|p| p.dirty())?;
        let was = (page.cc_dirty, page.mm_dirty);
        page.cc_dirty = false;
        page.mm_dirty = false;
        let data = page.data.clone();
        k.writes_in_flight.insert(key);
        Some((fo, data, was))
    });
    let Some((fo, mut data, was)) = plan else {
        return STATUS_SUCCESS;
    };
    // SAFETY: the control area's referenced file object; the buffer holds a page.
    let (status, _) = unsafe {
        io::send_read_write(
            fo,
            IRP_MJ_WRITE,
            offset,
            data.as_mut_ptr(),
            PAGE as u32,
            PAGING_FLAGS,
            true,
        )
    };
    kernel::with(|k| k.writes_in_flight.remove(&key));
    if status < 0 {
        kernel::with(|k| {
            let page = k
                .control_areas
                .get_mut(&sop)
                .and_then(|ca| ca.pages.get_mut(&index));
            if let Some(page) = page {
                page.cc_dirty |= was.0;
                page.mm_dirty |= was.1;
            }
        });
    }
    status
}

/// Writes the dirty pages of a range (None: all), lowest first; the first failure.
pub(crate) fn write_dirty(
    sop: *mut SECTION_OBJECT_POINTERS,
    range: Option<(u64, u64)>,
    which: Dirty,
) -> NTSTATUS {
    let indices: Vec<u64> = kernel::with(|k| {
        let Some(ca) = k.control_areas.get(&sop) else {
            return Vec::new();
        };
        let wanted = range.map(|(o, l)| pages(o, l));
        ca.pages
            .iter()
            .filter(|(i, p)| match which {
                Dirty::Cache => p.cc_dirty,
                Dirty::Any => p.dirty(),
            } && wanted.as_ref().is_none_or(|r| r.contains(i)))
            .map(|(i, _)| *i)
            .collect()
    });
    let mut result = STATUS_SUCCESS;
    for index in indices {
        let status = write_page(sop, index);
        if status < 0 && result >= 0 {
            result = status;
        }
    }
    result
}

/// Records the FCB's main/paging resource pair for the NT-18 checks (Cc and Mm may read
/// the common FCB header of the file objects they are given: NT-01).
pub(crate) fn register_fcb_resources(fo: *mut FILE_OBJECT) {
    // SAFETY: a live opened file object of the file system.
    let context = unsafe { (*fo).FsContext }.cast::<FSRTL_COMMON_FCB_HEADER>();
    if context.is_null() {
        return;
    }
    // SAFETY: the file system's FsContext starts with a common FCB header (NT-01).
    let header = unsafe { &*context };
    let (main, paging) = (header.Resource, header.PagingIoResource);
    if !main.is_null() && !paging.is_null() {
        kernel::with(|k| k.main_to_paging.insert(main as usize, paging as usize));
    }
}

/// FileSize from the FCB header behind a file object (what Mm reads at section creation).
fn header_file_size(fo: *mut FILE_OBJECT) -> u64 {
    // SAFETY: a live opened file object of the file system.
    let context = unsafe { (*fo).FsContext }.cast::<FSRTL_COMMON_FCB_HEADER>();
    if context.is_null() {
        return 0;
    }
    // SAFETY: the file system's FsContext starts with a common FCB header (NT-01).
    u64::try_from(unsafe { (*context).FileSize }).unwrap_or(0)
}

/// `NtCreateSection` on a file: the FS's section synchronisation callbacks around it (NT-06).
pub(crate) fn create_section(
    fo: *mut FILE_OBJECT,
    writable: bool,
    image: bool,
) -> Result<u32, NTSTATUS> {
    let sop = sop_of(fo);
    if sop.is_null() {
        return Err(STATUS_INVALID_PARAMETER);
    }
    register_fcb_resources(fo);
    let mut parameters = FS_FILTER_PARAMETERS::default();
    parameters.AcquireForSectionSynchronization.SyncType = SyncTypeCreateSection;
    parameters.AcquireForSectionSynchronization.PageProtection = if image {
        PAGE_EXECUTE_READ
    } else if writable {
        PAGE_READWRITE
    } else {
        PAGE_READONLY
    };
    if image {
        parameters
            .AcquireForSectionSynchronization
            .AllocationAttributes = SEC_IMAGE;
    }
    let Some(status) = fsrtl::call(Which::AcquireSection, fo, parameters) else {
        bugcheck("the file system registered no PreAcquireForSectionSynchronization")
    };
    if status < 0 {
        return Err(status);
    }
    let result = create_section_locked(fo, sop, writable, image);
    let _ = fsrtl::call(Which::ReleaseSection, fo, FS_FILTER_PARAMETERS::default());
    result
}

fn create_section_locked(
    fo: *mut FILE_OBJECT,
    sop: *mut SECTION_OBJECT_POINTERS,
    writable: bool,
    image: bool,
) -> Result<u32, NTSTATUS> {
    let size = header_file_size(fo);
    if size == 0 {
        return Err(STATUS_MAPPED_FILE_SIZE_ZERO);
    }
    if image {
        create_image_section(fo, sop);
    } else {
        ensure_control_area(sop, fo, size);
        kernel::with(|k| {
            if let Some(ca) = k.control_areas.get_mut(&sop) {
                ca.sections += 1;
                ca.writable_sections += u32::from(writable);
            }
        });
    }
    Ok(kernel::with(|k| {
        let id = k.next_id();
        k.sections.insert(
            id,
            SectionRecord {
                sop,
                writable,
                image,
                size,
            },
        );
        id
    }))
}

fn create_image_section(fo: *mut FILE_OBJECT, sop: *mut SECTION_OBJECT_POINTERS) {
    let created = kernel::with(|k| {
        let entry = k.images.entry(sop).or_insert(ImageSection {
            file_object: ptr::null_mut(),
            sections: 0,
            views: 0,
        });
        entry.sections += 1;
        let created = entry.file_object.is_null();
        if created {
            entry.file_object = fo;
        }
        created
    });
    if created {
        io::reference(fo);
        // Any non-NULL value: the FS only tests it.
        // SAFETY: the stream's SOP: Mm owns ImageSectionObject.
        unsafe { (*sop).ImageSectionObject = ptr::without_provenance_mut(0x1AA6E) };
    }
}

/// Closes a section object (the segment stays cached until purge or memory pressure, NT-04).
pub(crate) fn close_section(id: u32) {
    kernel::with(|k| {
        let Some(section) = k.sections.remove(&id) else {
            bugcheck("closing a section that does not exist")
        };
        if section.image {
            if let Some(image) = k.images.get_mut(&section.sop) {
                image.sections -= 1;
            }
        } else if let Some(ca) = k.control_areas.get_mut(&section.sop) {
            ca.sections -= 1;
            ca.writable_sections -= u32::from(section.writable);
        }
    });
}

/// `MapViewOfFile`: `len` 0 maps to the end of the section.
pub(crate) fn map_view(section: u32, offset: u64, len: u64) -> Result<u32, NTSTATUS> {
    kernel::with(|k| {
        let Some(s) = k.sections.get(&section).copied() else {
            return Err(STATUS_INVALID_PARAMETER);
        };
        if !offset.is_multiple_of(ALLOCATION_GRANULARITY) {
            return Err(STATUS_MAPPED_ALIGNMENT);
        }
        // A view covers whole pages: the tail of the last page past EOF is addressable.
        let len = if len == 0 {
            (s.size.div_ceil(PAGE_U64) * PAGE_U64).saturating_sub(offset)
        } else {
            len
        };
        if len == 0 || offset + len > s.size.div_ceil(PAGE_U64) * PAGE_U64 {
            return Err(STATUS_INVALID_VIEW_SIZE);
        }
        let id = k.next_id();
        if s.image {
            if let Some(image) = k.images.get_mut(&s.sop) {
                image.views += 1;
            }
        } else if let Some(ca) = k.control_areas.get_mut(&s.sop) {
            ca.views.insert(
                id,
                ViewRecord {
                    offset,
                    len,
                    writable: s.writable,
                },
            );
        }
        k.views.insert(id, (s.sop, s.image));
        Ok(id)
    })
}

/// `UnmapViewOfFile`: invisible to the FS (NT-07); dirty pages stay dirty.
pub(crate) fn unmap_view(view: u32) {
    kernel::with(|k| {
        let Some((sop, image)) = k.views.remove(&view) else {
            bugcheck("unmapping a view that does not exist")
        };
        if image {
            if let Some(i) = k.images.get_mut(&sop) {
                i.views -= 1;
            }
        } else if let Some(ca) = k.control_areas.get_mut(&sop) {
            ca.views.remove(&view);
        }
    });
}

/// The SOP and range of a data view.
fn view_of(view: u32) -> Result<(*mut SECTION_OBJECT_POINTERS, ViewRecord), NTSTATUS> {
    kernel::with(|k| {
        let (sop, _) = k
            .views
            .get(&view)
            .copied()
            .ok_or(STATUS_INVALID_PARAMETER)?;
        let ca = k.control_areas.get(&sop).ok_or(STATUS_INVALID_PARAMETER)?;
        let record = ca
            .views
            .get(&view)
            .copied()
            .ok_or(STATUS_INVALID_PARAMETER)?;
        Ok((sop, record))
    })
}

/// Reads `len` bytes at `offset` within a view, faulting pages in.
pub(crate) fn view_read(view: u32, offset: u64, len: usize) -> Result<Vec<u8>, NTSTATUS> {
    let (sop, record) = view_of(view)?;
    if offset + len as u64 > record.len {
        return Err(STATUS_ACCESS_VIOLATION);
    }
    let start = record.offset + offset;
    let mut out = vec![0u8; len];
    for index in pages(start, len as u64) {
        fault_in(sop, index)?;
        kernel::with(|k| copy_page(k, sop, index, start, &mut out, None));
    }
    Ok(out)
}

/// Writes `data` at `offset` within a writable view, faulting pages in; pages become dirty.
pub(crate) fn view_write(view: u32, offset: u64, data: &[u8]) -> Result<(), NTSTATUS> {
    let (sop, record) = view_of(view)?;
    if !record.writable || offset + data.len() as u64 > record.len {
        return Err(STATUS_ACCESS_VIOLATION);
    }
    let start = record.offset + offset;
    for index in pages(start, data.len() as u64) {
        fault_in(sop, index)?;
        kernel::with(|k| {
            let mut scratch = data.to_vec();
            copy_page(k, sop, index, start, &mut scratch, Some(Dirty::Any));
        });
    }
    Ok(())
}

/// Copies between page `index` and a buffer that starts at file offset `start`: out of the
/// page when `dirty` is None, into it (marking it dirty) otherwise.
pub(crate) fn copy_page(
    k: &mut kernel::Kernel,
    sop: *mut SECTION_OBJECT_POINTERS,
    index: u64,
    start: u64,
    buffer: &mut [u8],
    dirty: Option<Dirty>,
) {
    let Some(page) = k
        .control_areas
        .get_mut(&sop)
        .and_then(|ca| ca.pages.get_mut(&index))
    else {
        bugcheck("page not resident after fault")
    };
    let page_start = index * PAGE_U64;
    let from = start.max(page_start);
    let to = (start + buffer.len() as u64).min(page_start + PAGE_U64);
    let (p0, p1) = ((from - page_start) as usize, (to - page_start) as usize);
    let (b0, b1) = ((from - start) as usize, (to - start) as usize);
    match dirty {
        None => buffer[b0..b1].copy_from_slice(&page.data[p0..p1]),
        Some(which) => {
            page.data[p0..p1].copy_from_slice(&buffer[b0..b1]);
            match which {
                Dirty::Cache => page.cc_dirty = true,
                Dirty::Any => page.mm_dirty = true,
            }
        }
    }
}

/// `FlushViewOfFile`: the FS's Cc-flush callbacks around synchronous paging writes (NT-14).
pub(crate) fn flush_view(view: u32) -> NTSTATUS {
    let Ok((sop, record)) = view_of(view) else {
        return STATUS_INVALID_PARAMETER;
    };
    let fo = kernel::with(|k| k.control_areas.get(&sop).map(|ca| ca.file_object));
    let Some(fo) = fo else {
        return STATUS_INVALID_PARAMETER;
    };
    let acquired = fsrtl::call(Which::AcquireCcFlush, fo, FS_FILTER_PARAMETERS::default());
    if let Some(status) = acquired.filter(|s| *s < 0) {
        return status;
    }
    let status = write_dirty(sop, Some((record.offset, record.len)), Dirty::Any);
    let _ = fsrtl::call(Which::ReleaseCcFlush, fo, FS_FILTER_PARAMETERS::default());
    status
}

/// The modified page writer: every control area with dirty pages, under the FS's
/// mod-write callbacks (which may decline; the pages then stay dirty).
pub(crate) fn modified_page_writer() {
    let sops: Vec<_> = kernel::with(|k| {
        k.control_areas
            .iter()
            .filter(|(_, ca)| ca.pages.values().any(Page::dirty))
            .map(|(s, ca)| (*s, ca.file_object, ca.size))
            .collect()
    });
    as_thread(2, || {
        // Mm's page writers mark their thread, so the file system knows a paging write is
        // theirs (fastfat's deviosup.c tests for it).
        let marker = ptr::without_provenance_mut(FSRTL_MOD_WRITE_TOP_LEVEL_IRP);
        kernel::with(|k| k.top_level_irp = marker);
        for (sop, fo, size) in sops {
            let mut ending = i64::try_from(size).unwrap_or(i64::MAX);
            let Ok(resource) = fsrtl::acquire_for_mod_write(fo, &mut ending) else {
                continue;
            };
            let _ = write_dirty(sop, None, Dirty::Any);
            fsrtl::release_for_mod_write(fo, resource);
        }
        kernel::with(|k| k.top_level_irp = ptr::null_mut());
    });
}

/// Memory pressure: write dirty pages, drop clean ones, delete unreferenced segments (their
/// file objects close, NT-04) and unmapped image sections.
pub(crate) fn memory_pressure() {
    crate::cc::lazy_writer();
    modified_page_writer();
    let sops: Vec<_> = kernel::with(|k| {
        for ca in k.control_areas.values_mut() {
            ca.pages.retain(|_, p| p.dirty());
        }
        k.control_areas.keys().copied().collect()
    });
    // Segments are deleted by Mm's own system thread (the dereference segment thread), so
    // the file system sees those closes there, not in the thread that caused them (NT-32).
    as_thread(SEGMENT_THREAD, || {
        for sop in sops {
            let clean = kernel::with(|k| {
                k.control_areas
                    .get(&sop)
                    .is_some_and(|ca| ca.pages.is_empty())
            });
            if clean {
                delete_if_unreferenced(sop);
            }
        }
        let images: Vec<_> = kernel::with(|k| k.images.keys().copied().collect());
        for sop in images {
            let _ = delete_image_if_unused(sop);
        }
    });
}

/// Deletes an image section with no section objects and no views; false if it is in use.
fn delete_image_if_unused(sop: *mut SECTION_OBJECT_POINTERS) -> bool {
    let fo = kernel::with(|k| {
        let image = k.images.get(&sop)?;
        if image.sections != 0 || image.views != 0 {
            return Some(None);
        }
        let fo = image.file_object;
        k.images.remove(&sop);
        k.note("image section deleted", fo);
        Some(Some(fo))
    });
    match fo {
        None => true,
        Some(None) => false,
        Some(Some(fo)) => {
            // SAFETY: the stream's SOP.
            unsafe { (*sop).ImageSectionObject = ptr::null_mut() };
            crate::irql::at_apc_level(|| io::dereference(fo));
            true
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn MmFlushImageSection(
    sectionobjectpointer: *const SECTION_OBJECT_POINTERS,
    _flushtype: MMFLUSH_TYPE,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    let ok = delete_image_if_unused(sectionobjectpointer.cast_mut());
    if !ok {
        kernel::with(|k| k.note("MmFlushImageSection refused", ptr::null()));
    }
    ok
}

#[no_mangle]
pub unsafe extern "system" fn MmCanFileBeTruncated(
    sectionpointer: *const SECTION_OBJECT_POINTERS,
    newfilesize: *const i64,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    let new_size = if newfilesize.is_null() {
        0
    } else {
        // SAFETY: the caller's size.
        u64::try_from(unsafe { *newfilesize }).unwrap_or(0)
    };
    let sop = sectionpointer.cast_mut();
    kernel::with(|k| {
        if k.images.contains_key(&sop) {
            return false;
        }
        let sections_fit = k
            .sections
            .values()
            .filter(|s| s.sop == sop)
            .all(|s| s.size <= new_size);
        let views_fit = k
            .control_areas
            .get(&sop)
            .is_none_or(|ca| !ca.mapped(new_size, u64::MAX - new_size));
        sections_fit && views_fit
    })
}

#[no_mangle]
pub unsafe extern "system" fn MmDoesFileHaveUserWritableReferences(
    sectionpointer: *const SECTION_OBJECT_POINTERS,
) -> u32 {
    let _kernel = crate::heap::KernelRegion::enter();
    let sop = sectionpointer.cast_mut();
    kernel::with(|k| {
        k.control_areas.get(&sop).map_or(0, |ca| {
            let views = ca.views.values().filter(|v| v.writable).count();
            ca.writable_sections + u32::try_from(views).unwrap_or(u32::MAX)
        })
    })
}

/// `MdlMappingNoExecute` (wdm.h).
const MDL_MAPPING_NO_EXECUTE: u32 = 0x4000_0000;

#[no_mangle]
pub unsafe extern "system" fn MmMapLockedPagesSpecifyCache(
    memorydescriptorlist: *mut MDL,
    _accessmode: i8,
    _cachetype: MEMORY_CACHING_TYPE,
    _requestedaddress: *const std::ffi::c_void,
    _bugcheckonfailure: u32,
    priority: u32,
) -> *mut std::ffi::c_void {
    let _kernel = crate::heap::KernelRegion::enter();
    let mdl = memorydescriptorlist;
    match crate::seh::driver_mdl_locked(mdl) {
        Some(false) => {
            bugcheck("MmMapLockedPagesSpecifyCache of an MDL whose pages are not locked")
        }
        Some(true) => {
            // NT-25: a caller's pages are mapped non-executable.
            if priority & MDL_MAPPING_NO_EXECUTE == 0 {
                bugcheck(
                    "MmGetSystemAddressForMdlSafe of a caller's buffer without MdlMappingNoExecute",
                );
            }
            // SAFETY: the driver's locked MDL.
            unsafe { (*mdl).MdlFlags |= 0x0001 };
        }
        None => {}
    }
    // SAFETY: the caller's MDL; the model's MDLs are always mapped.
    unsafe { (*mdl).MappedSystemVa }
}
