//! FsRtl: the filter callback registry and the calls the model makes through it (section
//! synchronisation for `NtCreateSection`, the modified page writer, Cc flushes), and the
//! per-stream filter contexts filters hang on an advanced FCB header (NT-31), with a test
//! filter that attaches them.
//!
//! Stricter than Windows for contexts: freeing pool or deleting a device whose memory holds a
//! header that still has contexts is a bug check (on Windows the filter's later use of its
//! context would touch freed memory, or its context would leak).
//!
//! Stricter than Windows: a file system that registered no callback for an operation the
//! model needs is a bug check for section synchronisation (ntsim does not model the default
//! `AcquireFileForNtCreateSection` fast I/O path); for the others the default is "nothing to
//! acquire".
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_void;
use std::ptr;

use windows_sys::Wdk::Foundation::{DRIVER_OBJECT, ERESOURCE, FILE_OBJECT};
use windows_sys::Wdk::Storage::FileSystem::{
    FSRTL_ADVANCED_FCB_HEADER, FSRTL_PER_STREAM_CONTEXT, FS_FILTER_CALLBACKS,
    FS_FILTER_CALLBACK_DATA, FS_FILTER_PARAMETERS, PFS_FILTER_CALLBACK,
};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_INVALID_DEVICE_REQUEST, STATUS_SUCCESS};
use windows_sys::Win32::System::Kernel::LIST_ENTRY;

use crate::ex::bugcheck;
use crate::kernel;
use crate::trace::Event;

/// `FS_FILTER_*` operation codes (ntifs.h: `(UCHAR)-1` ...).
pub mod operation {
    /// Acquire for section synchronisation.
    pub const ACQUIRE_FOR_SECTION_SYNCHRONIZATION: u8 = 0xFF;
    /// Release for section synchronisation.
    pub const RELEASE_FOR_SECTION_SYNCHRONIZATION: u8 = 0xFE;
    /// Acquire for the modified page writer.
    pub const ACQUIRE_FOR_MOD_WRITE: u8 = 0xFD;
    /// Release for the modified page writer.
    pub const RELEASE_FOR_MOD_WRITE: u8 = 0xFC;
    /// Acquire for a Cc flush.
    pub const ACQUIRE_FOR_CC_FLUSH: u8 = 0xFB;
    /// Release for a Cc flush.
    pub const RELEASE_FOR_CC_FLUSH: u8 = 0xFA;
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlRegisterFileSystemFilterCallbacks(
    filterdriverobject: *const DRIVER_OBJECT,
    callbacks: *const FS_FILTER_CALLBACKS,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's callback table (copied, as FsRtl does).
    let table = unsafe { *callbacks };
    kernel::with(|k| {
        k.filter_callbacks
            .insert(filterdriverobject.cast_mut(), table)
    });
    STATUS_SUCCESS
}

/// Which callback of the table.
#[derive(Clone, Copy, Debug)]
pub enum Which {
    /// `PreAcquireForSectionSynchronization`.
    AcquireSection,
    /// `PreReleaseForSectionSynchronization`.
    ReleaseSection,
    /// `PreAcquireForModifiedPageWriter`.
    AcquireModWrite,
    /// `PreReleaseForModifiedPageWriter`.
    ReleaseModWrite,
    /// `PreAcquireForCcFlush`.
    AcquireCcFlush,
    /// `PreReleaseForCcFlush`.
    ReleaseCcFlush,
}

impl Which {
    fn pick(self, t: &FS_FILTER_CALLBACKS) -> (PFS_FILTER_CALLBACK, u8, &'static str) {
        use operation as op;
        match self {
            Which::AcquireSection => (
                t.PreAcquireForSectionSynchronization,
                op::ACQUIRE_FOR_SECTION_SYNCHRONIZATION,
                "PreAcquireForSectionSynchronization",
            ),
            Which::ReleaseSection => (
                t.PreReleaseForSectionSynchronization,
                op::RELEASE_FOR_SECTION_SYNCHRONIZATION,
                "PreReleaseForSectionSynchronization",
            ),
            Which::AcquireModWrite => (
                t.PreAcquireForModifiedPageWriter,
                op::ACQUIRE_FOR_MOD_WRITE,
                "PreAcquireForModifiedPageWriter",
            ),
            Which::ReleaseModWrite => (
                t.PreReleaseForModifiedPageWriter,
                op::RELEASE_FOR_MOD_WRITE,
                "PreReleaseForModifiedPageWriter",
            ),
            Which::AcquireCcFlush => (
                t.PreAcquireForCcFlush,
                op::ACQUIRE_FOR_CC_FLUSH,
                "PreAcquireForCcFlush",
            ),
            Which::ReleaseCcFlush => (
                t.PreReleaseForCcFlush,
                op::RELEASE_FOR_CC_FLUSH,
                "PreReleaseForCcFlush",
            ),
        }
    }
}

/// Calls the file system's filter callback for `fo`, tracing it. `None` when it registered
/// none.
pub(crate) fn call(
    which: Which,
    fo: *mut FILE_OBJECT,
    parameters: FS_FILTER_PARAMETERS,
) -> Option<NTSTATUS> {
    let device = crate::io::related_device(fo);
    let Some(device) = device else {
        bugcheck("filter callback for a file object that does not exist")
    };
    // SAFETY: a live file system device.
    let driver = unsafe { (*device).DriverObject };
    let table = kernel::with(|k| k.filter_callbacks.get(&driver).copied())?;
    let (callback, op, name) = which.pick(&table);
    let callback = callback?;
    let data = FS_FILTER_CALLBACK_DATA {
        SizeOfFsFilterCallbackData: u32::try_from(std::mem::size_of::<FS_FILTER_CALLBACK_DATA>())
            .unwrap_or(0),
        Operation: op,
        Reserved: 0,
        DeviceObject: device,
        FileObject: fo,
        Parameters: parameters,
    };
    let mut context: *mut c_void = ptr::null_mut();
    // SAFETY: the file system's callback with valid data for this operation.
    let status = unsafe { callback(&data, &mut context) };
    kernel::with(|k| {
        let file = k.fo_id(fo);
        k.trace.push(Event::Callback {
            name,
            file,
            result: status,
        });
    });
    Some(status)
}

/// Acquire for the modified page writer; the resource to release afterwards, or `Err` when
/// the file system said it cannot (the writer retries later).
pub(crate) fn acquire_for_mod_write(
    fo: *mut FILE_OBJECT,
    ending: &mut i64,
) -> Result<*mut ERESOURCE, NTSTATUS> {
    let mut resource: *mut ERESOURCE = ptr::null_mut();
    let mut parameters = FS_FILTER_PARAMETERS::default();
    parameters.AcquireForModifiedPageWriter.EndingOffset = ending;
    parameters.AcquireForModifiedPageWriter.ResourceToRelease = &mut resource;
    match call(Which::AcquireModWrite, fo, parameters) {
        Some(status) if status < 0 => Err(status),
        _ => Ok(resource),
    }
}

/// Release after the modified page writer.
pub(crate) fn release_for_mod_write(fo: *mut FILE_OBJECT, resource: *mut ERESOURCE) {
    let mut parameters = FS_FILTER_PARAMETERS::default();
    parameters.ReleaseForModifiedPageWriter.ResourceToRelease = resource;
    let _ = call(Which::ReleaseModWrite, fo, parameters);
}

// ---- per-stream filter contexts (NT-31) -------------------------------------------------------

/// A per-stream context a filter attached, as ntsim's test filter makes them: the context
/// block (`FSRTL_PER_STREAM_CONTEXT` first, as the header's list links it) and its number.
#[repr(C)]
struct FilterContext {
    context: FSRTL_PER_STREAM_CONTEXT,
    id: u32,
}

/// `PFREE_FUNCTION` as ntifs.h declares it.
type FreeFunction = unsafe extern "system" fn(*const c_void);

/// `FSRTL_FLAG2_SUPPORTS_FILTER_CONTEXTS`.
const SUPPORTS_FILTER_CONTEXTS: u8 = 0x02;

/// Does the header say it carries filter contexts?
///
/// # Safety
/// `header` is a live advanced FCB header.
unsafe fn supports_contexts(header: *const FSRTL_ADVANCED_FCB_HEADER) -> bool {
    // SAFETY: the caller's contract.
    let flags2 = unsafe { (*header).Base.Flags2 };
    flags2 & SUPPORTS_FILTER_CONTEXTS != 0
}

/// The list head of a header's filter contexts.
fn list_head(header: *const FSRTL_ADVANCED_FCB_HEADER) -> *mut LIST_ENTRY {
    // SAFETY: only a field address is taken.
    unsafe { &raw const (*header).FilterContexts }.cast_mut()
}

/// The first context of the header's list matching the owner (any when NULL) and instance
/// (any when NULL), in list order, as FsRtl searches.
///
/// # Safety
/// `header` is a live advanced FCB header whose list the model maintains.
unsafe fn find(
    header: *const FSRTL_ADVANCED_FCB_HEADER,
    owner: *const c_void,
    instance: *const c_void,
) -> *mut FSRTL_PER_STREAM_CONTEXT {
    let head = list_head(header);
    // SAFETY: the caller's contract: a well-formed circular list.
    let mut link = unsafe { (*head).Flink };
    while link != head {
        // `Links` is the first member: the link is the context.
        let context = link.cast::<FSRTL_PER_STREAM_CONTEXT>();
        // SAFETY: every entry of the list is a live context a filter inserted.
        let c = unsafe { &*context };
        let owner_ok = owner.is_null() || c.OwnerId.cast_const() == owner;
        let instance_ok = instance.is_null() || c.InstanceId.cast_const() == instance;
        if owner_ok && instance_ok {
            return context;
        }
        link = c.Links.Flink;
    }
    ptr::null_mut()
}

/// Unlinks one entry.
///
/// # Safety
/// `entry` is linked in a well-formed list.
unsafe fn unlink(entry: *mut LIST_ENTRY) {
    // SAFETY: the caller's contract.
    let entry = unsafe { &*entry };
    let (flink, blink) = (entry.Flink, entry.Blink);
    // SAFETY: neighbours in the same list.
    unsafe { (*blink).Flink = flink };
    // SAFETY: as above.
    unsafe { (*flink).Blink = blink };
}

fn note_count(header: *const FSRTL_ADVANCED_FCB_HEADER, delta: i32) {
    kernel::with(|k| {
        let count = k.stream_contexts.entry(header as usize).or_insert(0);
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            k.stream_contexts.remove(&(header as usize));
        }
    });
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlInsertPerStreamContext(
    perstreamcontext: *const FSRTL_ADVANCED_FCB_HEADER,
    ptr: *const FSRTL_PER_STREAM_CONTEXT,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    let header = perstreamcontext;
    // SAFETY: a filter passes the FsContext of a live file object.
    if !unsafe { supports_contexts(header) } {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    let head = list_head(header);
    let entry = ptr.cast_mut().cast::<LIST_ENTRY>();
    // InsertHeadList: the newest context is found first.
    // SAFETY: the header's list head (initialised by FsRtlSetupAdvancedFcbHeader) and the
    // filter's context block, which lives until its FreeCallback.
    let first = unsafe { (*head).Flink };
    // SAFETY: as above (each write through its own raw pointer: `first` may be `head`).
    unsafe { (*entry).Flink = first };
    // SAFETY: as above.
    unsafe { (*entry).Blink = head };
    // SAFETY: as above.
    unsafe { (*first).Blink = entry };
    // SAFETY: as above.
    unsafe { (*head).Flink = entry };
    note_count(header, 1);
    STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlLookupPerStreamContextInternal(
    streamcontext: *const FSRTL_ADVANCED_FCB_HEADER,
    ownerid: *const c_void,
    instanceid: *const c_void,
) -> *mut FSRTL_PER_STREAM_CONTEXT {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: a live header whose list only FsRtl changes.
    unsafe { find(streamcontext, ownerid, instanceid) }
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlRemovePerStreamContext(
    streamcontext: *const FSRTL_ADVANCED_FCB_HEADER,
    ownerid: *const c_void,
    instanceid: *const c_void,
) -> *mut FSRTL_PER_STREAM_CONTEXT {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: as in the lookup.
    let found = unsafe { find(streamcontext, ownerid, instanceid) };
    if !found.is_null() {
        // SAFETY: a linked entry of the list.
        unsafe { unlink(found.cast()) };
        note_count(streamcontext, -1);
    }
    found
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlTeardownPerStreamContexts(
    advancedheader: *const FSRTL_ADVANCED_FCB_HEADER,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    let head = list_head(advancedheader);
    kernel::with(|k| k.note("FsRtlTeardownPerStreamContexts", ptr::null()));
    loop {
        // SAFETY: the file system's header, still live (it is about to free it).
        let first = unsafe { (*head).Flink };
        if first == head {
            break;
        }
        // SAFETY: a linked entry.
        unsafe { unlink(first) };
        note_count(advancedheader, -1);
        let context = first.cast::<FSRTL_PER_STREAM_CONTEXT>();
        // SAFETY: the filter's context block.
        let callback = unsafe { (*context).FreeCallback };
        if let Some(free) = callback {
            // windows-sys declares PFREE_FUNCTION without its one parameter (ntifs.h:
            // `VOID (*)(PVOID Buffer)`); the routine is called as the header declares it.
            // SAFETY: same ABI, the real signature.
            let free: FreeFunction = unsafe { std::mem::transmute(free) };
            // SAFETY: the filter's own free routine with its own context.
            unsafe { free(context.cast()) };
        }
    }
}

/// Bug-checks when `[start, start + len)` holds an FCB header that still has filter contexts:
/// the file system freed it without `FsRtlTeardownPerStreamContexts` (a filter would later
/// touch freed memory through its context).
pub(crate) fn check_no_contexts_in(start: usize, len: usize) {
    let left = kernel::with(|k| {
        k.stream_contexts
            .range(start..start.saturating_add(len))
            .next()
            .is_some()
    });
    if left {
        bugcheck(
            "an FCB header with filter contexts was freed (FsRtlTeardownPerStreamContexts missing)",
        );
    }
}

/// The model's test filter: attaches a per-stream context to the stream behind `fo`
/// (`FsContext`), as a minifilter does; its FreeCallback records the context's number.
/// `Err` with the status when the header does not accept filter contexts.
pub(crate) fn attach_test_context(fo: *mut FILE_OBJECT) -> Result<u32, NTSTATUS> {
    // SAFETY: a live opened file object.
    let header = unsafe { (*fo).FsContext }.cast::<FSRTL_ADVANCED_FCB_HEADER>();
    if header.is_null() {
        return Err(STATUS_INVALID_DEVICE_REQUEST);
    }
    let id = kernel::with(kernel::Kernel::next_id);
    let block = Box::into_raw(Box::new(FilterContext {
        context: FSRTL_PER_STREAM_CONTEXT {
            OwnerId: (&raw const TEST_FILTER_OWNER).cast_mut().cast(),
            InstanceId: ptr::with_exposed_provenance_mut(id as usize),
            // SAFETY: see `FreeFunction`: the declared type lacks the parameter.
            FreeCallback: Some(unsafe {
                std::mem::transmute::<FreeFunction, unsafe extern "system" fn()>(free_test_context)
            }),
            ..Default::default()
        },
        id,
    }));
    // SAFETY: the stream's header (our FS puts an advanced header first in every FsContext)
    // and a context that lives until its FreeCallback.
    let status = unsafe { FsRtlInsertPerStreamContext(header, block.cast()) };
    if status < 0 {
        // SAFETY: not inserted; reclaimed once.
        drop(unsafe { Box::from_raw(block) });
        return Err(status);
    }
    kernel::with(|k| k.test_contexts_live.insert(id));
    Ok(id)
}

/// Looks the test filter's context `id` up on the stream behind `fo`.
pub(crate) fn lookup_test_context(fo: *mut FILE_OBJECT, id: u32) -> bool {
    // SAFETY: a live opened file object.
    let header = unsafe { (*fo).FsContext }.cast::<FSRTL_ADVANCED_FCB_HEADER>();
    let owner = (&raw const TEST_FILTER_OWNER).cast::<c_void>();
    let instance = ptr::with_exposed_provenance::<c_void>(id as usize);
    // SAFETY: a live header.
    !unsafe { FsRtlLookupPerStreamContextInternal(header, owner, instance) }.is_null()
}

/// The test filter's owner id (a unique address, as a filter's driver object would be).
static TEST_FILTER_OWNER: u8 = 0;

/// The test filter's FreeCallback.
unsafe extern "system" fn free_test_context(context: *const c_void) {
    // SAFETY: a block from `attach_test_context`, handed back once at teardown.
    let block = unsafe { Box::from_raw(context.cast_mut().cast::<FilterContext>()) };
    kernel::with(|k| {
        if !k.test_contexts_live.remove(&block.id) {
            bugcheck("a filter context's FreeCallback ran twice");
        }
        *k.test_contexts_freed.entry(block.id).or_insert(0) += 1;
    });
}
