//! FCBs (one per open stream) and CCBs (one per file object): fastfat's `strucsup.c` for them.
//!
//! NT-01/NT-02: `FileObject->FsContext` points at an FCB whose first member is an
//! `FSRTL_ADVANCED_FCB_HEADER` (its first two fields are the node type code and size), and
//! each FCB embeds the stream's `SECTION_OBJECT_POINTERS` in its non-paged part together with
//! the main and paging I/O ERESOURCEs. `FsContext2` points at the CCB.
//!
//! NT-31: the header advertises filter contexts, so [`Fcb::delete`] tears them down
//! (`FsRtlTeardownPerStreamContexts`) before the FCB is freed.
//!
//! Mutable FCB state lives in cells: the kernel reads the header through raw pointers while the
//! driver holds `&Fcb`, so the header is an `UnsafeCell` (layout-transparent, still first).
//! Who may change what: sizes under the main resource exclusive plus the paging I/O resource
//! exclusive (fastfat's rule), counts under the VCB resource.

use core::cell::UnsafeCell;
use core::ptr;

use fs_core::{FileId, FileInfo, Name};

use crate::nt::{
    self, CC_FILE_SIZES, ERESOURCE, FAST_MUTEX, FILE_LOCK, FILE_OBJECT, FSRTL_ADVANCED_FCB_HEADER,
    FSRTL_COMMON_FCB_HEADER, NTSTATUS, SECTION_OBJECT_POINTERS, SHARE_ACCESS,
};
use crate::strucsup::{
    node_byte_size, ntc, tags, Counter, Flag, NodeHeader, NodeTypeCode, PoolBox, PoolNode,
};
use crate::vcb::Vcb;
use crate::wdk_inline::fsrtl_setup_advanced_fcb_header;

/// The non-paged part of an FCB: what the kernel may touch at raised IRQL or from the paging
/// path (fastfat's `NON_PAGED_FCB`). Only ever used through a raw pointer.
#[repr(C)]
pub struct NonPagedFcb {
    /// `CFAT_NTC_NONPAGED_FCB`.
    pub node: NodeHeader,
    /// The stream's section object pointers; `FileObject->SectionObjectPointer` of every file
    /// object of the stream points here (NT-02). Mm and Cc write it, we only read it.
    pub section_object_pointers: SECTION_OBJECT_POINTERS,
    /// The fast mutex the advanced FCB header protects its filter contexts with.
    pub advanced_fcb_header_mutex: FAST_MUTEX,
    /// `Header.Resource`: the main resource.
    pub resource: ERESOURCE,
    /// `Header.PagingIoResource`.
    pub paging_io_resource: ERESOURCE,
}

impl PoolNode for NonPagedFcb {
    const NODE_TYPE_CODE: NodeTypeCode = ntc::CFAT_NTC_NONPAGED_FCB;
    const POOL_TAG: u32 = tags::TAG_NONPAGED_FCB;
    const NON_PAGED: bool = true;
}

/// An FCB or DCB.
#[repr(C)]
pub struct Fcb {
    /// First member (NT-01). `Base.NodeTypeCode` is `CFAT_NTC_FCB` or `_DCB`;
    /// `Resource`/`PagingIoResource` point into the non-paged part.
    pub header: UnsafeCell<FSRTL_ADVANCED_FCB_HEADER>,
    /// The non-paged part.
    pub nonpaged: *mut NonPagedFcb,
    /// Share access of all handles to the stream (`IoCheckShareAccess` state).
    pub share_access: UnsafeCell<SHARE_ACCESS>,
    /// The volume.
    pub vcb: *const Vcb,
    /// fs-core's id of the file.
    pub id: FileId,
    /// The directory holding its entry and the entry's name (None for the root directory).
    /// Rename changes it, under the VCB resource exclusive; readers hold the VCB resource or
    /// the FCB main resource (rename holds both).
    link: UnsafeCell<(FileId, Option<Name>)>,
    /// Byte-range locks (`FsRtlInitializeFileLock` at creation; lockctrl).
    pub file_lock: UnsafeCell<FILE_LOCK>,
    /// A directory (DCB).
    pub is_directory: bool,
    /// Handles open (cleanups still to come).
    pub open_count: Counter,
    /// File objects pointing here (closes still to come).
    pub reference_count: Counter,
    /// A handle asked for delete-on-close; the file goes at the last cleanup.
    pub delete_pending: Flag,
    /// The name is gone; the record is purged at the last close.
    pub unlinked: Flag,
    /// Purges that failed because of a user mapping (NT-17: Windows goes on; we count).
    pub purge_failures: Counter,
    /// What the section callbacks said, and purge-failure mode (NT-06, NT-12).
    pub sections: crate::section::SectionTracking,
    /// The file objects Mm's control areas of the stream reference (for the debugger).
    pub section_creators: crate::debugger::SectionCreators,
    /// The file's overlay figures as last queried (for the debugger).
    pub overlay: crate::debugger::FileOverlayAnchor,
    /// On the VCB's FCB chain (`Vcb::fcb_list`) while in its FCB table (for the debugger).
    pub vcb_links: UnsafeCell<nt::LIST_ENTRY>,
}

impl PoolNode for Fcb {
    const NODE_TYPE_CODE: NodeTypeCode = ntc::CFAT_NTC_FCB;
    const POOL_TAG: u32 = tags::TAG_FCB;
    // The header is read by Cc at DISPATCH_LEVEL in places (sizes); keep it non-paged.
    const NON_PAGED: bool = true;
}

/// What a CCB says about its file object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcbKind {
    /// A volume open (`\Device\HarddiskVolumeN` with no name): `FsContext` is the VCB.
    Volume,
    /// A file or directory open: `FsContext` is the FCB.
    File,
}

/// The per-file-object context (`FsContext2`).
#[repr(C)]
pub struct Ccb {
    /// `CFAT_NTC_CCB`.
    pub node: NodeHeader,
    /// Volume or file open.
    pub kind: CcbKind,
    /// Opened with `FILE_DELETE_ON_CLOSE`.
    pub delete_on_close: bool,
    /// Per-handle state of directory enumeration, notification and POSIX delete; used under
    /// the FCB main resource exclusive.
    pub state: UnsafeCell<CcbState>,
    /// Room for this handle's close in the volume's deferred close queue (NT-32), reserved
    /// with the CCB so that queueing a close never allocates (NT-26), as fastfat keeps its
    /// `CLOSE_CONTEXT` in the CCB.
    pub close_entry: UnsafeCell<crate::dispatch::close::CloseEntry>,
}

/// What a handle remembers between requests.
#[derive(Default)]
pub struct CcbState {
    /// Directory enumeration: expression and resume point (dirctrl).
    pub search: Option<crate::dispatch::dirctrl::DirSearch>,
    /// The full directory name handed to `FsRtlNotifyFullChangeDirectory` (FsRtl keeps the
    /// pointer for the watch's life, so the buffer lives as long as the handle).
    pub notify_name: alloc::vec::Vec<u16>,
    /// The counted string over `notify_name` that FsRtl keeps a pointer to.
    pub notify_string: nt::STRING,
    /// `FILE_DISPOSITION_POSIX_SEMANTICS`: the name goes at this handle's cleanup.
    pub posix_delete: bool,
}

impl PoolNode for Ccb {
    const NODE_TYPE_CODE: NodeTypeCode = ntc::CFAT_NTC_CCB;
    const POOL_TAG: u32 = tags::TAG_CCB;
    const NON_PAGED: bool = false;
}

impl Ccb {
    /// Allocates a CCB and hands back the raw pointer for `FsContext2`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub fn allocate(kind: CcbKind, delete_on_close: bool) -> Result<*mut Ccb, NTSTATUS> {
        let ccb = PoolBox::try_new(Ccb {
            node: NodeHeader::of::<Ccb>(ntc::CFAT_NTC_CCB),
            kind,
            delete_on_close,
            state: UnsafeCell::new(CcbState::default()),
            close_entry: UnsafeCell::new(crate::dispatch::close::CloseEntry::default()),
        })?;
        Ok(ccb.into_raw())
    }

    /// Frees the CCB of a file object at close.
    ///
    /// # Safety
    /// `ccb` is NULL or came from [`Ccb::allocate`] and is freed once.
    pub unsafe fn free(ccb: *mut Ccb) {
        // SAFETY: the caller's contract.
        drop(unsafe { PoolBox::from_raw(ccb) });
    }
}

/// What a new FCB is made from.
pub struct FcbInit<'a> {
    /// The volume.
    pub vcb: *const Vcb,
    /// The file as fs-core describes it.
    pub info: &'a FileInfo,
    /// Name of its entry (None for the root directory).
    pub name: Option<Name>,
}

impl Fcb {
    /// Allocates and initialises an FCB (resources, header, SOP) for `init.info`.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES`, or a failing `ExInitializeResourceLite`.
    pub fn create(init: FcbInit<'_>) -> Result<*mut Fcb, NTSTATUS> {
        let nonpaged = PoolBox::try_new(NonPagedFcb {
            node: NodeHeader::of::<NonPagedFcb>(ntc::CFAT_NTC_NONPAGED_FCB),
            section_object_pointers: SECTION_OBJECT_POINTERS {
                DataSectionObject: ptr::null_mut(),
                SharedCacheMap: ptr::null_mut(),
                ImageSectionObject: ptr::null_mut(),
            },
            advanced_fcb_header_mutex: FAST_MUTEX::default(),
            resource: ERESOURCE::default(),
            paging_io_resource: ERESOURCE::default(),
        })?;
        let np = nonpaged.as_ptr();
        // SAFETY: `np` is a live allocation; only a field address is taken.
        let resource = unsafe { &raw mut (*np).resource };
        // SAFETY: as above.
        let paging = unsafe { &raw mut (*np).paging_io_resource };
        // SAFETY: freshly allocated, non-paged, not yet shared.
        let status = unsafe { nt::ExInitializeResourceLite(resource) };
        if status < 0 {
            return Err(status);
        }
        // SAFETY: as above.
        let status = unsafe { nt::ExInitializeResourceLite(paging) };
        if status < 0 {
            // SAFETY: initialised just above, never acquired.
            unsafe { nt::ExDeleteResourceLite(resource) };
            return Err(status);
        }
        let is_directory = init.info.kind == fs_core::FileKind::Directory;
        let fcb = PoolBox::try_new(Fcb {
            header: UnsafeCell::new(FSRTL_ADVANCED_FCB_HEADER::default()),
            nonpaged: np,
            share_access: UnsafeCell::new(SHARE_ACCESS::default()),
            vcb: init.vcb,
            id: init.info.id,
            link: UnsafeCell::new((init.info.parent, init.name)),
            file_lock: UnsafeCell::new(FILE_LOCK::default()),
            is_directory,
            open_count: Counter::new(0),
            reference_count: Counter::new(0),
            delete_pending: Flag::new(false),
            unlinked: Flag::new(false),
            purge_failures: Counter::new(0),
            sections: crate::section::SectionTracking::default(),
            section_creators: crate::debugger::SectionCreators::default(),
            overlay: crate::debugger::FileOverlayAnchor::default(),
            vcb_links: UnsafeCell::new(nt::LIST_ENTRY::default()),
        });
        let fcb = match fcb {
            Ok(fcb) => fcb,
            Err(status) => {
                // SAFETY: both resources initialised above and never acquired.
                unsafe { delete_resources(np) };
                return Err(status);
            }
        };
        let nonpaged = nonpaged.into_raw();
        // SAFETY: `fcb` and `nonpaged` are fresh and ours.
        unsafe { fcb.init_header(nonpaged) };
        // SAFETY: the lock lives in the pool FCB (its address is stable) until `delete`.
        unsafe { nt::FsRtlInitializeFileLock(fcb.file_lock.get(), None, None) };
        fcb.set_sizes(
            init.info.allocation_size,
            init.info.file_size,
            init.info.valid_data_length,
        );
        Ok(fcb.into_raw())
    }

    /// Header setup (NT-01): node type, resources, `FsRtlSetupAdvancedFcbHeader`.
    ///
    /// # Safety
    /// `nonpaged` is this FCB's initialised non-paged part; nobody else sees the FCB yet.
    unsafe fn init_header(&self, nonpaged: *mut NonPagedFcb) {
        let header = self.header.get();
        // SAFETY: exclusive access during setup (caller's contract).
        let base = unsafe { &mut (*header).Base };
        base.NodeTypeCode = if self.is_directory {
            ntc::CFAT_NTC_DCB
        } else {
            ntc::CFAT_NTC_FCB
        };
        base.NodeByteSize = node_byte_size::<Fcb>();
        base.Resource = self.resource();
        base.PagingIoResource = self.paging_io_resource();
        // SAFETY: the non-paged part is initialised and lives as long as the FCB.
        let mutex = unsafe { &raw mut (*nonpaged).advanced_fcb_header_mutex };
        // SAFETY: the mutex is writable non-paged memory owned by this FCB.
        unsafe { crate::wdk_inline::ex_initialize_fast_mutex(mutex) };
        // SAFETY: header is first in a non-paged FCB; the mutex lives as long as it.
        unsafe { fsrtl_setup_advanced_fcb_header(header, mutex, ptr::null_mut()) };
    }

    /// Frees an FCB whose last file object has closed.
    ///
    /// # Safety
    /// `fcb` came from [`Fcb::create`], no file object points at it, it is freed once.
    pub unsafe fn delete(fcb: *mut Fcb) {
        // SAFETY: valid until freed below.
        let nonpaged = unsafe { (*fcb).nonpaged };
        // SAFETY: valid until freed below; only a field address is taken.
        let lock = unsafe { (*fcb).file_lock.get() };
        // SAFETY: initialised in `create`; no request uses the FCB any more.
        unsafe { nt::FsRtlUninitializeFileLock(lock) };
        // Filters' per-stream contexts go before the header they hang on (NT-31).
        // SAFETY: valid until freed below; only a field address is taken.
        let header = unsafe { (*fcb).header.get() };
        // SAFETY: the header is initialised (`init_header`) and still live.
        unsafe { nt::FsRtlTeardownPerStreamContexts(header) };
        // SAFETY: the caller's contract: no other user, freed once.
        drop(unsafe { PoolBox::from_raw(fcb) });
        // SAFETY: the resources are initialised and nobody holds them any more.
        unsafe { delete_resources(nonpaged) };
        // SAFETY: allocated with the FCB, freed once with it.
        drop(unsafe { PoolBox::from_raw(nonpaged) });
    }

    /// The directory holding the file's entry (the root's is the root).
    #[must_use]
    pub fn parent(&self) -> FileId {
        // SAFETY: see `link`: writers hold the VCB resource exclusive and the main resource.
        unsafe { (*self.link.get()).0 }
    }

    /// A copy of the entry's name (None for the root directory).
    ///
    /// # Errors
    /// `OutOfMemory` (NT-26).
    pub fn name(&self) -> fs_core::Result<Option<Name>> {
        // SAFETY: as in `parent`.
        unsafe { (*self.link.get()).1.as_ref() }
            .map(Name::try_clone)
            .transpose()
    }

    /// Whether this is the root directory's FCB (it has no entry, so no name).
    #[must_use]
    pub fn is_root(&self) -> bool {
        // SAFETY: as in `parent`.
        unsafe { (*self.link.get()).1.is_none() }
    }

    /// A rename moved the entry.
    ///
    /// # Safety
    /// The caller holds the VCB resource exclusive and this FCB's main resource exclusive.
    pub unsafe fn set_link(&self, parent: FileId, name: Name) {
        // SAFETY: the caller's contract excludes every reader.
        unsafe { *self.link.get() = (parent, Some(name)) };
    }

    /// The stream's section object pointers (for `FileObject->SectionObjectPointer`, Cc, Mm).
    #[must_use]
    pub fn section_object_pointers(&self) -> *mut SECTION_OBJECT_POINTERS {
        // SAFETY: the non-paged part lives as long as the FCB; only a field address is taken.
        unsafe { &raw mut (*self.nonpaged).section_object_pointers }
    }

    /// Main resource.
    #[must_use]
    pub fn resource(&self) -> *mut ERESOURCE {
        // SAFETY: only a field address is taken.
        unsafe { &raw mut (*self.nonpaged).resource }
    }

    /// Paging I/O resource.
    #[must_use]
    pub fn paging_io_resource(&self) -> *mut ERESOURCE {
        // SAFETY: only a field address is taken.
        unsafe { &raw mut (*self.nonpaged).paging_io_resource }
    }

    /// The header's sizes as Cc wants them.
    #[must_use]
    pub fn cc_sizes(&self) -> CC_FILE_SIZES {
        // SAFETY: reading the header; writers hold both resources exclusive, readers at least
        // one shared, so no write races this read.
        let base = unsafe { &(*self.header.get()).Base };
        CC_FILE_SIZES {
            AllocationSize: base.AllocationSize,
            FileSize: base.FileSize,
            ValidDataLength: base.ValidDataLength,
        }
    }

    /// FileSize from the header.
    #[must_use]
    pub fn file_size(&self) -> u64 {
        u64::try_from(self.cc_sizes().FileSize).unwrap_or(0)
    }

    /// ValidDataLength from the header.
    #[must_use]
    pub fn valid_data_length(&self) -> u64 {
        u64::try_from(self.cc_sizes().ValidDataLength).unwrap_or(0)
    }

    /// Sets the header's sizes. Callers hold both resources exclusive (or are creating it).
    pub fn set_sizes(&self, allocation: u64, file_size: u64, valid_data_length: u64) {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        // SAFETY: the caller holds both resources exclusive: nobody reads concurrently.
        let base = unsafe { &mut (*self.header.get()).Base };
        base.AllocationSize = as_i64(allocation);
        base.FileSize = as_i64(file_size);
        base.ValidDataLength = as_i64(valid_data_length.min(file_size));
    }

    /// Raises the header's ValidDataLength to `end` (a top-level write reached it; NT-14).
    pub fn extend_valid_data(&self, end: u64) {
        let sizes = self.cc_sizes();
        let vdl = self.valid_data_length().max(end);
        let alloc = u64::try_from(sizes.AllocationSize).unwrap_or(0);
        self.set_sizes(alloc, self.file_size(), vdl);
    }
}

/// Deletes both resources of a non-paged FCB part.
///
/// # Safety
/// Both were initialised and are not held.
unsafe fn delete_resources(nonpaged: *mut NonPagedFcb) {
    // SAFETY: a live non-paged part; only field addresses are taken.
    let resource = unsafe { &raw mut (*nonpaged).resource };
    // SAFETY: as above.
    let paging = unsafe { &raw mut (*nonpaged).paging_io_resource };
    // SAFETY: the caller's contract.
    unsafe { nt::ExDeleteResourceLite(paging) };
    // SAFETY: as above.
    unsafe { nt::ExDeleteResourceLite(resource) };
}

/// Is this node type one of our FCB kinds (file, directory, root directory)?
#[must_use]
pub fn is_fcb_node(code: NodeTypeCode) -> bool {
    matches!(
        code,
        ntc::CFAT_NTC_FCB | ntc::CFAT_NTC_DCB | ntc::CFAT_NTC_ROOT_DCB
    )
}

/// The common FCB header behind a Cc callback context or `FsContext`, if it is one of ours.
///
/// # Safety
/// `context` is NULL or points at memory that starts with an `FSRTL_COMMON_FCB_HEADER` or a
/// [`NodeHeader`] (every `FsContext` of a file object on our volumes, and every lazy-write
/// context we hand to `CcInitializeCacheMap`).
#[must_use]
pub unsafe fn fcb_header(
    context: *const core::ffi::c_void,
) -> Option<*mut FSRTL_COMMON_FCB_HEADER> {
    let header = context.cast::<FSRTL_COMMON_FCB_HEADER>().cast_mut();
    if header.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a node type code at `context`.
    let code = unsafe { (*header).NodeTypeCode };
    is_fcb_node(code).then_some(header)
}

/// The FCB of a file object, if the file object is open on one of our streams.
///
/// # Safety
/// `file_object` is NULL or a valid file object whose `FsContext` is NULL or starts with a
/// node type code (true for file objects the I/O manager sends to our volumes).
#[must_use]
pub unsafe fn fcb_of_file_object(file_object: *const FILE_OBJECT) -> Option<*mut Fcb> {
    if file_object.is_null() {
        return None;
    }
    // SAFETY: valid file object per the caller.
    let context = unsafe { (*file_object).FsContext };
    // SAFETY: the caller's contract on FsContext.
    let header = unsafe { fcb_header(context) }?;
    Some(header.cast::<Fcb>())
}

/// Main resource of an FCB header (NULL for structures that have none).
///
/// # Safety
/// `header` is a valid common FCB header.
#[must_use]
pub unsafe fn main_resource(header: *const FSRTL_COMMON_FCB_HEADER) -> *mut ERESOURCE {
    // SAFETY: the caller's contract.
    unsafe { (*header).Resource }
}

/// Paging I/O resource of an FCB header (NULL for structures that have none).
///
/// # Safety
/// `header` is a valid common FCB header.
#[must_use]
pub unsafe fn paging_io_resource(header: *const FSRTL_COMMON_FCB_HEADER) -> *mut ERESOURCE {
    // SAFETY: the caller's contract.
    unsafe { (*header).PagingIoResource }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, zeroed};

    #[test]
    fn header_is_first_and_node_type_is_checked() {
        assert_eq!(offset_of!(Fcb, header), 0);
        // SAFETY: plain old data; all-zero is valid.
        let mut header: FSRTL_ADVANCED_FCB_HEADER = unsafe { zeroed() };
        let ctx = (&raw const header).cast::<core::ffi::c_void>();
        // SAFETY: `ctx` starts with a common header.
        let found = unsafe { fcb_header(ctx) };
        assert!(found.is_none(), "node type 0 is not ours");
        header.Base.NodeTypeCode = ntc::CFAT_NTC_FCB;
        let ctx = (&raw const header).cast::<core::ffi::c_void>();
        // SAFETY: as above.
        assert!(unsafe { fcb_header(ctx) }.is_some());
        // SAFETY: NULL is allowed.
        assert!(unsafe { fcb_header(core::ptr::null()) }.is_none());
    }
}
