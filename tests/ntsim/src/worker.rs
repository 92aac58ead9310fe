//! Background work the driver asks the kernel for: I/O work items (`IoAllocateWorkItem`,
//! `IoQueueWorkItem`, `IoFreeWorkItem`), timers (`KeInitializeTimer(Ex)`, `KeSetTimer(Ex)`,
//! `KeCancelTimer`) on a simulated clock, and DPCs (`KeInitializeDpc`, `KeFlushQueuedDpcs`).
//!
//! Deterministic like the lazy writer: nothing runs until a test steps it.
//! [`crate::Sim::advance_time`] moves the timer clock, queues the DPC of every timer that
//! expired and runs the queued DPCs; [`crate::Sim::run_work_items`] runs the queued work items,
//! each on a system worker thread at PASSIVE_LEVEL, until none is left.
//!
//! Stricter than Windows: a DPC runs at DISPATCH_LEVEL, where an ERESOURCE acquire, a wait, a
//! paged pool allocation, a critical region or an IRP is a bug check here (on Windows some of
//! them only fail when the page or the lock happens to be unavailable). Queueing a work item
//! that is already queued, freeing one that is queued, deleting a device whose extension holds
//! a set timer or a queued DPC, and a work item routine that leaves a resource held, a
//! critical region open or the top-level IRP set are bug checks.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::collections::BTreeMap;
use std::ffi::c_void;

use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, KDPC, PIO_WORKITEM, PKDEFERRED_ROUTINE};
use windows_sys::Wdk::System::SystemServices::{KTIMER, PIO_WORKITEM_ROUTINE, WORK_QUEUE_TYPE};
use windows_sys::Win32::System::Kernel::TIMER_TYPE;

use crate::ex::bugcheck;
use crate::kernel;

/// The model thread work items run on (a system worker thread).
pub const WORKER_THREAD: u32 = 3;
/// The model thread DPCs run on (they borrow whatever thread the processor was running).
pub const DPC_THREAD: u32 = 5;
/// Pool tag of the model's `IO_WORKITEM`s (counted in the leak report like the driver's pool).
const TAG_IO_WORKITEM: u32 = u32::from_le_bytes(*b"IoWk");
/// `POOL_FLAG_NON_PAGED`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// Size the model gives an `IO_WORKITEM` (opaque to drivers).
const IO_WORKITEM_SIZE: usize = 64;
/// A work item routine that queues itself again forever would never let a step end.
const MAX_WORK_ITEMS_PER_STEP: usize = 10_000;

/// An `IO_WORKITEM` the model allocated.
#[derive(Debug)]
pub struct WorkItem {
    /// The device it references while queued.
    pub device: *mut DEVICE_OBJECT,
    /// Queued: the routine and context to run.
    pub queued: Option<(usize, usize)>,
    /// Its routine is running now.
    pub running: bool,
}

/// A `KTIMER` the model knows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer {
    /// Set: when it expires on the timer clock (100 ns units).
    pub due: Option<u64>,
    /// Period in 100 ns units (0: one-shot).
    pub period: u64,
    /// The DPC to queue when it expires.
    pub dpc: usize,
}

/// A `KDPC` the model knows.
#[derive(Clone, Copy, Debug)]
pub struct Dpc {
    /// `DeferredRoutine`.
    pub routine: usize,
    /// `DeferredContext`.
    pub context: usize,
}

/// Timers, DPCs and work items of the model.
#[derive(Debug, Default)]
pub struct Background {
    /// The timer clock (interrupt time), in 100 ns units since the machine started.
    pub now: u64,
    /// Timers by `KTIMER` address.
    pub timers: BTreeMap<usize, Timer>,
    /// DPCs by `KDPC` address.
    pub dpcs: BTreeMap<usize, Dpc>,
    /// Queued DPCs, in order.
    pub dpc_queue: Vec<usize>,
    /// Work items by address.
    pub work_items: BTreeMap<usize, WorkItem>,
    /// Queued work items, in order.
    pub work_queue: std::collections::VecDeque<usize>,
    /// Work item routines run so far.
    pub work_items_run: u64,
    /// DPC routines run so far.
    pub dpcs_run: u64,
}

/// Bug-checks when the processor is at DISPATCH_LEVEL (a DPC is running): `what` may only be
/// done at APC_LEVEL or below.
pub fn check_below_dispatch(what: &str) {
    if crate::irql::current() >= crate::irql::DISPATCH_LEVEL {
        bugcheck(&format!(
            "IRQL_NOT_LESS_OR_EQUAL: {what} at DISPATCH_LEVEL (in a DPC)"
        ));
    }
}

// ---- work items ------------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "system" fn IoAllocateWorkItem(
    deviceobject: *const DEVICE_OBJECT,
) -> PIO_WORKITEM {
    let _kernel = crate::heap::KernelRegion::enter();
    if deviceobject.is_null() {
        bugcheck("IoAllocateWorkItem without a device object");
    }
    // Non-paged pool, as Windows allocates it; failing it is the driver's allocation to fail.
    if crate::ex::pool_fails() {
        return 0;
    }
    let item = crate::ex::allocate_pool(POOL_FLAG_NON_PAGED, IO_WORKITEM_SIZE, TAG_IO_WORKITEM);
    if item.is_null() {
        return 0;
    }
    let record = WorkItem {
        device: deviceobject.cast_mut(),
        queued: None,
        running: false,
    };
    kernel::with(|k| k.background.work_items.insert(item as usize, record));
    item as PIO_WORKITEM
}

#[no_mangle]
pub unsafe extern "system" fn IoQueueWorkItem(
    ioworkitem: PIO_WORKITEM,
    workerroutine: PIO_WORKITEM_ROUTINE,
    _queuetype: WORK_QUEUE_TYPE,
    context: *const c_void,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    let Some(routine) = workerroutine else {
        bugcheck("IoQueueWorkItem without a routine")
    };
    kernel::with(|k| {
        let b = &mut k.background;
        let Some(item) = b.work_items.get_mut(&(ioworkitem as usize)) else {
            bugcheck("IoQueueWorkItem of a work item IoAllocateWorkItem did not return")
        };
        if item.queued.is_some() {
            bugcheck("IoQueueWorkItem of a work item that is already queued");
        }
        item.queued = Some((routine as usize, context as usize));
        b.work_queue.push_back(ioworkitem as usize);
    });
}

#[no_mangle]
pub unsafe extern "system" fn IoFreeWorkItem(ioworkitem: PIO_WORKITEM) {
    let _kernel = crate::heap::KernelRegion::enter();
    let removed = kernel::with(|k| {
        let b = &mut k.background;
        match b.work_items.get(&(ioworkitem as usize)) {
            None => bugcheck("IoFreeWorkItem of an unknown work item"),
            Some(item) if item.queued.is_some() => {
                bugcheck("IoFreeWorkItem of a work item that is still queued")
            }
            Some(_) => b.work_items.remove(&(ioworkitem as usize)),
        }
    });
    if removed.is_some() {
        // SAFETY: allocated by IoAllocateWorkItem with this tag, freed once.
        unsafe { crate::ex::ExFreePoolWithTag(ioworkitem as *mut c_void, TAG_IO_WORKITEM) };
    }
}

/// Runs queued work items, in order, each on the system worker thread at PASSIVE_LEVEL, until
/// the queue is empty (items queued meanwhile run too). Returns how many ran.
pub fn run_work_items() -> usize {
    let mut ran = 0;
    loop {
        let next = kernel::with(|k| {
            let b = &mut k.background;
            let address = b.work_queue.pop_front()?;
            let item = b.work_items.get_mut(&address)?;
            let (routine, context) = item.queued.take()?;
            item.running = true;
            Some((address, item.device, routine, context))
        });
        let Some((address, device, routine, context)) = next else {
            return ran;
        };
        ran += 1;
        if ran > MAX_WORK_ITEMS_PER_STEP {
            bugcheck("work items keep queueing themselves: the worker step never ends");
        }
        // SAFETY: the routine the driver queued; windows-sys declares the type without its
        // parameters, the real one is IO_WORKITEM_ROUTINE (device, context).
        let routine: unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut c_void) =
            unsafe { std::mem::transmute::<usize, _>(routine) };
        crate::mm::as_thread(WORKER_THREAD, || {
            // This thread's own: under the scheduler another thread may take one meanwhile.
            let held_before = crate::ex::held_by_current_thread();
            // SAFETY: the I/O manager calls a work item routine with its device and context.
            unsafe { routine(device, context as *mut c_void) };
            let problem = kernel::with(|k| {
                if k.critical_region != 0 {
                    return Some("a work item routine left a critical region open");
                }
                if !k.top_level_irp.is_null() {
                    return Some("a work item routine left the top-level IRP set");
                }
                None
            });
            if let Some(problem) = problem {
                bugcheck(problem);
            }
            if crate::ex::held_by_current_thread() > held_before {
                bugcheck("a work item routine returned holding an ERESOURCE");
            }
        });
        kernel::with(|k| {
            k.background.work_items_run += 1;
            if let Some(item) = k.background.work_items.get_mut(&address) {
                item.running = false;
            }
        });
    }
}

// ---- timers and DPCs -------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "system" fn KeInitializeTimerEx(timer: *mut KTIMER, _type: TIMER_TYPE) {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| k.background.timers.insert(timer as usize, Timer::default()));
}

#[no_mangle]
pub unsafe extern "system" fn KeInitializeTimer(timer: *mut KTIMER) {
    // SAFETY: the caller's timer.
    unsafe { KeInitializeTimerEx(timer, 0) };
}

#[no_mangle]
pub unsafe extern "system" fn KeInitializeDpc(
    dpc: *mut KDPC,
    deferredroutine: PKDEFERRED_ROUTINE,
    deferredcontext: *const c_void,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    let Some(routine) = deferredroutine else {
        bugcheck("KeInitializeDpc without a routine")
    };
    kernel::with(|k| {
        let record = Dpc {
            routine: routine as usize,
            context: deferredcontext as usize,
        };
        k.background.dpcs.insert(dpc as usize, record)
    });
}

#[no_mangle]
pub unsafe extern "system" fn KeSetTimerEx(
    timer: *mut KTIMER,
    duetime: i64,
    period: i32,
    dpc: *const KDPC,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| {
        let b = &mut k.background;
        if !dpc.is_null() && !b.dpcs.contains_key(&(dpc as usize)) {
            bugcheck("KeSetTimerEx with a DPC KeInitializeDpc never saw");
        }
        let now = b.now;
        let Some(t) = b.timers.get_mut(&(timer as usize)) else {
            bugcheck("KeSetTimerEx of a timer KeInitializeTimer never saw")
        };
        // Negative: relative to now. Positive: absolute system time, which the model's timer
        // clock does not follow; no cowfat code uses it.
        if duetime >= 0 {
            bugcheck("KeSetTimerEx with an absolute due time is not modelled");
        }
        let was_set = t.due.is_some();
        t.due = Some(now.saturating_add(duetime.unsigned_abs()));
        // The period is in milliseconds.
        t.period = u64::try_from(period).unwrap_or(0) * 10_000;
        t.dpc = dpc as usize;
        was_set
    })
}

#[no_mangle]
pub unsafe extern "system" fn KeSetTimer(
    timer: *mut KTIMER,
    duetime: i64,
    dpc: *const KDPC,
) -> bool {
    // SAFETY: the caller's contract, passed on.
    unsafe { KeSetTimerEx(timer, duetime, 0, dpc) }
}

#[no_mangle]
pub unsafe extern "system" fn KeCancelTimer(timer: *mut KTIMER) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| {
        let Some(t) = k.background.timers.get_mut(&(timer as usize)) else {
            bugcheck("KeCancelTimer of a timer KeInitializeTimer never saw")
        };
        t.due.take().is_some()
    })
}

#[no_mangle]
pub extern "system" fn KeFlushQueuedDpcs() {
    let _kernel = crate::heap::KernelRegion::enter();
    check_below_dispatch("KeFlushQueuedDpcs");
    run_dpcs();
}

/// Moves the timer clock by `ticks` (100 ns units), expiring timers in due order (a periodic
/// timer as many times as its period fits) and running their DPCs at DISPATCH_LEVEL.
pub fn advance_time(ticks: u64) {
    let end = kernel::with(|k| k.background.now.saturating_add(ticks));
    loop {
        // The earliest timer due by `end`.
        let next = kernel::with(|k| {
            let b = &mut k.background;
            let (&address, timer) = b
                .timers
                .iter()
                .filter(|(_, t)| t.due.is_some_and(|d| d <= end))
                .min_by_key(|(_, t)| t.due)?;
            let due = timer.due?;
            let dpc = timer.dpc;
            let period = timer.period;
            b.now = b.now.max(due);
            if let Some(t) = b.timers.get_mut(&address) {
                t.due = (period > 0).then_some(due + period);
            }
            if dpc != 0 && !b.dpc_queue.contains(&dpc) {
                b.dpc_queue.push(dpc);
            }
            Some(())
        });
        if next.is_none() {
            break;
        }
        run_dpcs();
    }
    kernel::with(|k| k.background.now = end);
}

/// Runs every queued DPC at DISPATCH_LEVEL.
fn run_dpcs() {
    loop {
        let next = kernel::with(|k| {
            let b = &mut k.background;
            if b.dpc_queue.is_empty() {
                return None;
            }
            let address = b.dpc_queue.remove(0);
            b.dpcs.get(&address).map(|d| (address, *d))
        });
        let Some((address, dpc)) = next else {
            return;
        };
        // SAFETY: the routine given to KeInitializeDpc; windows-sys declares the type without
        // its parameters, the real one is KDEFERRED_ROUTINE (dpc, context, arg1, arg2).
        let routine: unsafe extern "system" fn(*mut KDPC, *mut c_void, *mut c_void, *mut c_void) =
            unsafe { std::mem::transmute::<usize, _>(dpc.routine) };
        crate::mm::as_thread(DPC_THREAD, || {
            let old = crate::irql::raise(crate::irql::DISPATCH_LEVEL);
            // SAFETY: the kernel calls a DPC with its KDPC and deferred context.
            unsafe {
                routine(
                    address as *mut KDPC,
                    dpc.context as *mut c_void,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            };
            crate::irql::lower(old);
            kernel::with(|k| k.background.dpcs_run += 1);
        });
    }
}

/// Bug-checks when `[start, start + len)` (memory about to be freed) holds a set timer or a
/// queued DPC, and forgets the timers and DPCs initialised there.
pub(crate) fn release_range(start: usize, len: usize, what: &str) {
    let problem = kernel::with(|k| {
        let b = &mut k.background;
        let inside = |a: &usize| (start..start + len).contains(a);
        if b.timers.iter().any(|(a, t)| inside(a) && t.due.is_some()) {
            return Some(format!("{what} freed with a timer still set in it"));
        }
        if b.dpc_queue.iter().any(inside) {
            return Some(format!("{what} freed with a DPC still queued in it"));
        }
        b.timers.retain(|a, _| !inside(a));
        b.dpcs.retain(|a, _| !inside(a));
        None
    });
    if let Some(problem) = problem {
        bugcheck(&problem);
    }
}

/// Timers set now.
#[must_use]
pub fn timers_set() -> usize {
    kernel::with(|k| {
        k.background
            .timers
            .values()
            .filter(|t| t.due.is_some())
            .count()
    })
}

/// Work items queued now.
#[must_use]
pub fn work_items_queued() -> usize {
    kernel::with(|k| k.background.work_queue.len())
}
