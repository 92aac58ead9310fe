//! The model's state: one `Kernel` per test thread, reached through [`with`]. Everything here
//! is plain data; the boundary modules turn kernel calls into changes of it. A borrow of the
//! state is never held across a call into the driver (the driver calls back into the model),
//! and the `RefCell` turns any slip into a panic rather than silent corruption.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::c_void;

use fs_core::MemDevice;
use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IRP, MDL, SECTION_OBJECT_POINTERS,
};
use windows_sys::Wdk::Storage::FileSystem::{CACHE_MANAGER_CALLBACKS, FS_FILTER_CALLBACKS};

use crate::trace::{Event, FoId};

/// Mm's page size.
pub const PAGE: usize = 4096;

/// One pool allocation.
#[derive(Clone, Copy, Debug)]
pub struct PoolBlock {
    /// Its tag.
    pub tag: u32,
    /// Bytes requested.
    pub size: usize,
}

/// An ERESOURCE's ownership. After every change `ex` writes it into the ERESOURCE's public
/// fields as Windows keeps them (`ex::publish`), so `!locks` and `!cflocks` read it.
#[derive(Clone, Debug, Default)]
pub struct ResourceState {
    /// Thread holding it exclusive and its recursion count.
    pub exclusive: Option<(u32, u32)>,
    /// Shared holders and their recursion counts.
    pub shared: BTreeMap<u32, u32>,
    /// Which of the driver's locks it is, told from where it lives ([`crate::sched`]).
    pub kind: crate::sched::LockKind,
    /// The shared holder in `OwnerEntry` (the first to take it; Windows leaves it there while
    /// it holds, later shared holders go to the owner table).
    pub first_shared: Option<u32>,
}

impl ResourceState {
    /// Does `thread` hold it (either way)?
    #[must_use]
    pub fn held_by(&self, thread: u32) -> bool {
        self.exclusive.is_some_and(|(t, _)| t == thread) || self.shared.contains_key(&thread)
    }
}

/// A device object the model created.
#[derive(Debug)]
pub struct DeviceRecord {
    /// The driver that created it.
    pub driver: *mut DRIVER_OBJECT,
    /// Its extension's memory (16-byte aligned).
    pub extension: Option<Box<[u128]>>,
    /// `IoDeleteDevice` was called; freed at the next reap.
    pub deleted: bool,
}

/// A file object the model created.
#[derive(Debug)]
pub struct FoRecord {
    /// Its trace name.
    pub id: FoId,
    /// Object references (handles, Mm's control area, I/O in flight).
    pub refs: u32,
    /// Handles.
    pub handles: u32,
    /// IRP_MJ_CREATE succeeded (so cleanup/close are owed to the file system).
    pub opened: bool,
    /// The file system device its IRPs go to.
    pub device: *mut DEVICE_OBJECT,
    /// The name buffer `FileName.Buffer` points into.
    pub name: Vec<u16>,
    /// Access granted to its handle(s).
    pub granted: u32,
}

/// An IRP the model built.
#[derive(Debug, Default)]
pub struct IrpRecord {
    /// Built by `IoBuildSynchronousFsdRequest`/`IoBuildDeviceIoControlRequest`: freed at
    /// completion.
    pub threaded: bool,
    /// Made by `IoAllocateIrp`: the driver frees it (`IoFreeIrp`), and a completion routine
    /// of its must stop completion (`STATUS_MORE_PROCESSING_REQUIRED`).
    pub driver_allocated: bool,
    /// The model thread that built it (its completion APC goes there).
    pub thread: u32,
    /// Completion status and information, once `IofCompleteRequest` ran.
    pub completed: Option<(i32, usize)>,
    /// The MDL the model attached.
    pub mdl: Option<*mut MDL>,
    /// A METHOD_BUFFERED system buffer and where its output is copied at completion.
    pub system_buffer: Option<Vec<u8>>,
    /// Output buffer of a buffered request.
    pub copy_back: Option<(*mut u8, usize)>,
}

/// One page of a control area.
#[derive(Clone, Debug)]
pub struct Page {
    /// Its bytes.
    pub data: Vec<u8>,
    /// Dirtied through Cc (`CcCopyWrite`): the lazy writer's to write.
    pub cc_dirty: bool,
    /// Dirtied through a user view: the mapped/modified page writer's to write.
    pub mm_dirty: bool,
}

impl Page {
    /// Dirty in either way.
    #[must_use]
    pub fn dirty(&self) -> bool {
        self.cc_dirty || self.mm_dirty
    }
}

/// Cc's shared cache map of a stream.
#[derive(Debug)]
pub struct SharedCacheMap {
    /// AllocationSize, FileSize, ValidDataLength as the FS last told Cc.
    pub file_size: i64,
    /// The FS's callbacks and lazy-write context.
    pub callbacks: *const CACHE_MANAGER_CALLBACKS,
    /// Lazy-write context.
    pub context: *const c_void,
    /// File objects with a private cache map.
    pub private: BTreeSet<*mut FILE_OBJECT>,
    /// The last private map went while pages were dirty: the lazy writer deletes the map
    /// after writing them.
    pub uninitialize_pending: bool,
}

/// A user view.
#[derive(Clone, Copy, Debug)]
pub struct ViewRecord {
    /// Byte offset in the file.
    pub offset: u64,
    /// Bytes mapped.
    pub len: u64,
    /// Mapped writable.
    pub writable: bool,
}

/// Mm's data control area of one SOP (NT-03: the one Cc and user views share).
#[derive(Debug)]
pub struct ControlArea {
    /// The file object Mm referenced at creation (NT-04): all paging I/O goes to it.
    pub file_object: *mut FILE_OBJECT,
    /// Resident pages by page index.
    pub pages: BTreeMap<u64, Page>,
    /// Section size in bytes.
    pub size: u64,
    /// User section objects open on it.
    pub sections: u32,
    /// Of which writable.
    pub writable_sections: u32,
    /// User views by id.
    pub views: BTreeMap<u32, ViewRecord>,
    /// Cc's shared cache map, if the stream is cached.
    pub cache: Option<SharedCacheMap>,
    /// Lazy writer passes that picked this stream and have not finished it (Cc's write-behind
    /// holds the shared cache map open from when it queues the stream until after
    /// `ReleaseFromLazyWrite`): a purge or uninitialize meanwhile leaves the section in place,
    /// and the lazy writer deletes it when it is done (issue 19).
    pub lazy_writes: u32,
    /// The section lost its last other reference while `lazy_writes` held it.
    pub delete_deferred: bool,
}

impl ControlArea {
    /// No user section, view or cache map references it any more.
    #[must_use]
    pub fn unreferenced(&self) -> bool {
        self.sections == 0 && self.views.is_empty() && self.cache.is_none()
    }

    /// Does a user view overlap `[offset, offset + len)`?
    #[must_use]
    pub fn mapped(&self, offset: u64, len: u64) -> bool {
        let end = offset.saturating_add(len);
        self.views
            .values()
            .any(|v| v.offset < end && offset < v.offset + v.len)
    }
}

/// An image section of one SOP (views are only counted: nothing executes here).
#[derive(Debug)]
pub struct ImageSection {
    /// The file object Mm referenced.
    pub file_object: *mut FILE_OBJECT,
    /// Section objects open.
    pub sections: u32,
    /// Views mapped.
    pub views: u32,
}

/// A section object handed to a test.
#[derive(Clone, Copy, Debug)]
pub struct SectionRecord {
    /// The stream.
    pub sop: *mut SECTION_OBJECT_POINTERS,
    /// Writable data section.
    pub writable: bool,
    /// Image section.
    pub image: bool,
    /// Size when created.
    pub size: u64,
}

/// The whole model.
pub struct Kernel {
    /// What happened, in order.
    pub trace: Vec<Event>,
    /// Live pool allocations by address.
    pub pool: BTreeMap<usize, PoolBlock>,
    /// Initialised ERESOURCEs by address.
    pub resources: BTreeMap<usize, ResourceState>,
    /// `KeEnterCriticalRegion` depth of the current thread.
    pub critical_region: i32,
    /// `IoSetTopLevelIrp` of the current thread.
    pub top_level_irp: *mut IRP,
    /// The thread the model is running as (0 = the test's user thread).
    pub thread: u32,
    /// The current thread's IRQL ([`crate::irql`]).
    pub irql: u8,
    /// Special kernel APCs queued to model threads and not yet delivered.
    pub kernel_apcs: Vec<crate::irql::CompletionApc>,
    /// File system dispatches made at APC_LEVEL or above: (major, IRP flags).
    pub apc_level_dispatches: Vec<(u8, u32)>,
    /// Devices by address.
    pub devices: BTreeMap<*mut DEVICE_OBJECT, DeviceRecord>,
    /// Registered file systems' control devices.
    pub file_systems: Vec<*mut DEVICE_OBJECT>,
    /// FsRtl filter callbacks by driver.
    pub filter_callbacks: BTreeMap<*mut DRIVER_OBJECT, FS_FILTER_CALLBACKS>,
    /// File objects by address.
    pub file_objects: BTreeMap<*mut FILE_OBJECT, FoRecord>,
    /// Next file object number.
    pub next_fo: u32,
    /// IRPs in flight by address.
    pub irps: BTreeMap<*mut IRP, IrpRecord>,
    /// The disk's medium.
    pub disk: Option<MemDevice>,
    /// The disk's volatile write cache, when a test turned it on.
    pub disk_cache: Option<crate::disk::WriteCache>,
    /// The disk's device object.
    pub disk_device: *mut DEVICE_OBJECT,
    /// Sector transfers the disk served (reads, writes).
    pub disk_io: (u64, u64),
    /// Reads and writes the disk failed with `STATUS_VERIFY_REQUIRED` (no
    /// `SL_OVERRIDE_VERIFY_VOLUME` while `DO_VERIFY_VOLUME` was set).
    pub verify_required_failures: u64,
    /// Pages whose paging write is in flight, by (SOP address, page index): Mm issues no
    /// second write of a page until the first completes.
    pub writes_in_flight: BTreeSet<(usize, u64)>,
    /// Cc copies (`CcCopyRead`/`CcCopyWrite`) in progress by SOP address: their views are
    /// in use, so a purge of the stream fails meanwhile (issue 19: another thread's purge).
    pub copies_in_progress: BTreeMap<usize, u32>,
    /// Data control areas by SOP.
    pub control_areas: BTreeMap<*mut SECTION_OBJECT_POINTERS, Box<ControlArea>>,
    /// Image sections by SOP.
    pub images: BTreeMap<*mut SECTION_OBJECT_POINTERS, ImageSection>,
    /// Section objects by id.
    pub sections: BTreeMap<u32, SectionRecord>,
    /// View ids to their SOP (image views have `None` ranges).
    pub views: BTreeMap<u32, (*mut SECTION_OBJECT_POINTERS, bool)>,
    /// Next section/view id.
    pub next_id: u32,
    /// Freed pool blocks (address, size), poisoned, released at the end of the test.
    pub quarantine: Vec<(usize, usize)>,
    /// The disk pends every request (completed when someone waits: the "interrupt").
    pub disk_pends: bool,
    /// Requests the disk pended and has not completed yet.
    pub pending: Vec<*mut IRP>,
    /// Requests the disk pended so far.
    pub pended_total: u64,
    /// Main resource -> paging I/O resource of every FCB Cc or Mm has seen (NT-18 checks).
    pub main_to_paging: BTreeMap<usize, usize>,
    /// Depth of paging IRPs being dispatched to the file system on this thread.
    pub paging_depth: u32,
    /// KEVENT states by address.
    pub events: BTreeMap<usize, bool>,
    /// `KeQuerySystemTimePrecise` calls (the clock ticks 1 ms per call: deterministic).
    pub clock_ticks: u64,
    /// FsRtl notify watches by notify list address ([`crate::notify`]).
    pub notify_lists: BTreeMap<usize, Vec<crate::notify::Watch>>,
    /// IRPs a test sent that may complete later ([`crate::io::send_async`]).
    pub async_irps: BTreeMap<*mut IRP, crate::io::AsyncIrp>,
    /// Results of completed asynchronous IRPs by token.
    pub async_done: BTreeMap<u32, crate::io::AsyncResult>,
    /// File object references the completion "APC" drops when the test thread runs again.
    pub apc_derefs: Vec<*mut FILE_OBJECT>,
    /// FsRtl file locks by `FILE_LOCK` address ([`crate::filelock`]).
    pub file_locks: BTreeMap<usize, crate::filelock::LockState>,
    /// The driver's SEH frames on this thread ([`crate::seh`]).
    pub seh_depth: u32,
    /// Exceptions raised so far.
    pub raised: u64,
    /// The requester's address space: registered ranges by start ([`crate::seh`]).
    pub user_ranges: BTreeMap<usize, crate::seh::UserRange>,
    /// MDLs the driver allocated (`IoAllocateMdl`), and whether their pages are locked.
    pub mdls: BTreeMap<usize, bool>,
    /// Pool failure injection ([`crate::ex::PoolFaults`]).
    pub pool_faults: crate::ex::PoolFaults,
    /// Every disk read fails with `STATUS_DEVICE_DATA_ERROR` while set (an injected error).
    pub disk_read_error: bool,
    /// The next asynchronous request (a directory query) carries an unmapped user buffer.
    pub unmapped_user_buffer_next: bool,
    /// Driver MDLs over a view locked for writing: (view, offset, address, length).
    pub mdl_views: BTreeMap<usize, (u32, u64, usize, usize)>,
    /// View-backed user ranges locked so far.
    pub view_locks: u64,
    /// Timers, DPCs and work items ([`crate::worker`]).
    pub background: crate::worker::Background,
    /// Per-stream filter contexts linked in each advanced FCB header, by header address.
    pub stream_contexts: BTreeMap<usize, u32>,
    /// `ObfReferenceObject` counts on device objects, by address (drivers' references).
    pub object_refs: BTreeMap<usize, i64>,
    /// PnP minor functions the disk received, in order.
    pub disk_pnp: Vec<u8>,
    /// Device control codes the disk received, in order.
    pub disk_ioctls: Vec<u32>,
    /// The disk refuses the next query-remove (something below holds it).
    pub disk_refuses_query_remove: bool,
    /// The disk is gone (removed or surprise-removed): I/O fails, opens are refused.
    pub disk_removed: bool,
    /// The test filter's contexts not yet freed, by number.
    pub test_contexts_live: BTreeSet<u32>,
    /// How often the FreeCallback ran for each of the test filter's contexts.
    pub test_contexts_freed: BTreeMap<u32, u32>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("pool", &self.pool.len())
            .field("file_objects", &self.file_objects.len())
            .finish_non_exhaustive()
    }
}

impl Kernel {
    fn new() -> Self {
        Self {
            trace: Vec::new(),
            pool: BTreeMap::new(),
            resources: BTreeMap::new(),
            critical_region: 0,
            top_level_irp: std::ptr::null_mut(),
            thread: 0,
            irql: 0,
            kernel_apcs: Vec::new(),
            apc_level_dispatches: Vec::new(),
            devices: BTreeMap::new(),
            file_systems: Vec::new(),
            filter_callbacks: BTreeMap::new(),
            file_objects: BTreeMap::new(),
            next_fo: 1,
            irps: BTreeMap::new(),
            disk: None,
            disk_cache: None,
            disk_device: std::ptr::null_mut(),
            disk_io: (0, 0),
            verify_required_failures: 0,
            writes_in_flight: BTreeSet::new(),
            copies_in_progress: BTreeMap::new(),
            control_areas: BTreeMap::new(),
            images: BTreeMap::new(),
            sections: BTreeMap::new(),
            views: BTreeMap::new(),
            next_id: 1,
            quarantine: Vec::new(),
            disk_pends: false,
            pending: Vec::new(),
            pended_total: 0,
            main_to_paging: BTreeMap::new(),
            paging_depth: 0,
            events: BTreeMap::new(),
            clock_ticks: 0,
            notify_lists: BTreeMap::new(),
            async_irps: BTreeMap::new(),
            async_done: BTreeMap::new(),
            apc_derefs: Vec::new(),
            file_locks: BTreeMap::new(),
            seh_depth: 0,
            raised: 0,
            user_ranges: BTreeMap::new(),
            mdls: BTreeMap::new(),
            pool_faults: crate::ex::PoolFaults::default(),
            disk_read_error: false,
            unmapped_user_buffer_next: false,
            mdl_views: BTreeMap::new(),
            view_locks: 0,
            background: crate::worker::Background::default(),
            stream_contexts: BTreeMap::new(),
            object_refs: BTreeMap::new(),
            disk_pnp: Vec::new(),
            disk_ioctls: Vec::new(),
            disk_refuses_query_remove: false,
            disk_removed: false,
            test_contexts_live: BTreeSet::new(),
            test_contexts_freed: BTreeMap::new(),
        }
    }

    /// The trace name of a file object (None for NULL or unknown ones).
    #[must_use]
    pub fn fo_id(&self, fo: *const FILE_OBJECT) -> Option<FoId> {
        self.file_objects.get(&fo.cast_mut()).map(|r| r.id)
    }

    /// Records a kernel event.
    pub fn note(&mut self, name: &'static str, fo: *const FILE_OBJECT) {
        let file = self.fo_id(fo);
        self.trace.push(Event::Kernel { name, file });
    }

    /// A fresh section/view id.
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

thread_local! {
    static KERNEL: RefCell<Kernel> = RefCell::new(Kernel::new());
    /// This OS thread runs a simulated thread of a schedule ([`crate::sched`]): its model is
    /// the shared one.
    static ROUTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The model while a schedule runs: moved here from the test thread so that whichever OS
/// thread holds the scheduler's baton reaches it.
static SHARED: std::sync::Mutex<Option<SharedKernel>> = std::sync::Mutex::new(None);

/// The model in its shared home.
struct SharedKernel(Box<Kernel>);

// SAFETY: the raw pointers in the model are plain data to it. While a schedule runs, only
// the OS thread holding the scheduler's baton runs model or driver code (the others are
// parked), and the mutex orders the hand-over, so the model is never used by two threads at
// once.
#[allow(unsafe_code)]
unsafe impl Send for SharedKernel {}

/// Runs `f` on this thread's model (the shared one on a schedule's threads). Never call the
/// driver from inside `f`.
pub fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    let _own = crate::heap::KernelRegion::enter();
    if ROUTED.with(std::cell::Cell::get) {
        let mut shared = match SHARED.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                panic!("ntsim: the shared model is borrowed twice (a kernel::with inside another)")
            }
        };
        let Some(kernel) = shared.as_mut() else {
            panic!("ntsim: a schedule's thread ran with no shared model")
        };
        return f(&mut kernel.0);
    }
    KERNEL.with(|k| f(&mut k.borrow_mut()))
}

/// Moves this thread's model to the shared home (a schedule starts).
pub(crate) fn share() {
    let kernel = KERNEL.with(|k| std::mem::replace(&mut *k.borrow_mut(), Kernel::new()));
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *shared = Some(SharedKernel(Box::new(kernel)));
}

/// Moves the shared model back to this thread (the schedule ended cleanly).
pub(crate) fn unshare() {
    let taken = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(SharedKernel(kernel)) = taken {
        KERNEL.with(|k| *k.borrow_mut() = *kernel);
    }
}

/// Leaks the shared model (a schedule failed with threads parked inside the driver, which
/// still point into it); this thread starts a fresh one.
pub(crate) fn abandon_shared() {
    let taken = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    std::mem::forget(taken);
}

/// Routes this OS thread's model calls to the shared home (or back).
pub(crate) fn route_to_shared(on: bool) {
    ROUTED.with(|r| r.set(on));
}

/// Starts a fresh model on this thread (a new test).
pub fn reset() {
    KERNEL.with(|k| *k.borrow_mut() = Kernel::new());
}
