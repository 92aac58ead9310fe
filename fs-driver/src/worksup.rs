//! Work items and DPCs with their real prototypes.
//!
//! windows-sys declares `PIO_WORKITEM_ROUTINE` and `PKDEFERRED_ROUTINE` as functions without
//! parameters; the kernel calls them as `IO_WORKITEM_ROUTINE (DeviceObject, Context)` and
//! `KDEFERRED_ROUTINE (Dpc, DeferredContext, SystemArgument1, SystemArgument2)`. The driver
//! writes its routines with the real prototypes and converts them here, in one place.

use core::ffi::c_void;

use crate::nt::{self, DEVICE_OBJECT, KDPC, PIO_WORKITEM};

/// An `IO_WORKITEM_ROUTINE`.
pub type WorkItemRoutine = unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut c_void);
/// A `KDEFERRED_ROUTINE`.
pub type DeferredRoutine =
    unsafe extern "system" fn(*mut KDPC, *mut c_void, *mut c_void, *mut c_void);

/// `IoQueueWorkItem(item, routine, queue, context)`.
///
/// # Safety
/// `item` came from `IoAllocateWorkItem` and is not queued; `context` stays valid until the
/// routine has run. IRQL <= DISPATCH_LEVEL.
pub unsafe fn queue(
    item: PIO_WORKITEM,
    routine: WorkItemRoutine,
    queue: i32,
    context: *const c_void,
) {
    // SAFETY: only the declared type differs; the kernel calls it with the real arguments.
    let routine =
        unsafe { core::mem::transmute::<WorkItemRoutine, unsafe extern "system" fn()>(routine) };
    // SAFETY: the caller's contract.
    unsafe { nt::IoQueueWorkItem(item, Some(routine), queue, context) };
}

/// `KeInitializeDpc(dpc, routine, context)`.
///
/// # Safety
/// `dpc` is non-paged memory that outlives every queueing of it; `context` as long.
pub unsafe fn initialize_dpc(dpc: *mut KDPC, routine: DeferredRoutine, context: *const c_void) {
    // SAFETY: only the declared type differs; the kernel calls it with the real arguments.
    let routine =
        unsafe { core::mem::transmute::<DeferredRoutine, unsafe extern "system" fn()>(routine) };
    // SAFETY: the caller's contract.
    unsafe { nt::KeInitializeDpc(dpc, Some(routine), context) };
}
