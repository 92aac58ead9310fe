//! Executive and kernel basics: pool with tags and leak accounting, ERESOURCE, events,
//! critical regions, the clock, bug checks.
//!
//! Stricter than Windows where it helps find bugs: freeing pool with the wrong tag, an
//! exclusive acquire by a thread that holds the resource shared, any wait that could never be
//! satisfied (nothing else runs here) and acquiring a resource on the user thread outside a
//! critical region, and breaking NT-18's lock order (main after paging I/O, or the main
//! resource taken inside a paging request) are all bug checks (a panic, which aborts the test binary: the machine
//! is dead, as on Windows). Uninitialised pool is filled with 0xCD.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::ffi::c_void;

use windows_sys::Wdk::Foundation::{ERESOURCE, KEVENT};
use windows_sys::Wdk::System::SystemServices::KWAIT_REASON;
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_SUCCESS};
use windows_sys::Win32::System::Kernel::EVENT_TYPE;

use crate::kernel::{self, PoolBlock, ResourceState};

/// `POOL_FLAG_UNINITIALIZED`.
const POOL_FLAG_UNINITIALIZED: u64 = 0x2;
/// `POOL_FLAG_NON_PAGED`.
const POOL_FLAG_NON_PAGED: u64 = 0x40;
/// Pool blocks are 16-byte aligned, as on x64.
const POOL_ALIGN: usize = 16;

/// A bug check: the model found a contract violation it cannot continue from.
pub fn bugcheck(what: &str) -> ! {
    // Printed first: a panic raised under some driver frames cannot start unwinding at all
    // ("failed to initiate panic"), and the process aborts without the message.
    eprintln!("ntsim bug check: {what}");
    if let Some(hint) = crate::sched::replay_hint() {
        eprintln!("ntsim bug check {hint}");
    }
    panic!("ntsim bug check: {what}")
}

/// Pool failure injection, as Driver Verifier's low-resources simulation: fail the Nth
/// allocation the driver asks for, or each with a probability, from a seed.
#[derive(Clone, Debug, Default)]
pub struct PoolFaults {
    /// Fail the allocation with this number (1-based, counted from the arming).
    pub fail_nth: Option<u64>,
    /// Fail each allocation with this probability, in parts per million.
    pub rate_ppm: u32,
    /// State of the generator behind `rate_ppm`.
    pub seed: u64,
    /// Allocations asked for since the arming.
    pub attempts: u64,
    /// Allocations failed.
    pub failed: u64,
}

/// Should this allocation fail? Counts it.
#[must_use]
pub fn pool_fails() -> bool {
    kernel::with(|k| {
        let f = &mut k.pool_faults;
        f.attempts += 1;
        let mut fail = f.fail_nth == Some(f.attempts);
        if f.rate_ppm > 0 {
            // SplitMix64: deterministic from the seed.
            f.seed = f.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = f.seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            fail |= z % 1_000_000 < u64::from(f.rate_ppm);
        }
        if fail {
            f.failed += 1;
        }
        fail
    })
}

fn pool_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1), POOL_ALIGN).ok()
}

#[no_mangle]
pub extern "system" fn ExAllocatePool2(flags: u64, numberofbytes: usize, tag: u32) -> *mut c_void {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::stack::note_driver_call();
    if flags & POOL_FLAG_NON_PAGED == 0 {
        crate::worker::check_below_dispatch("a paged pool allocation");
    }
    // Only the driver's own allocations fail, as under Driver Verifier.
    if pool_fails() {
        return std::ptr::null_mut();
    }
    let block = allocate_pool(flags, numberofbytes, tag);
    if !block.is_null() {
        crate::cost::pool_allocated(numberofbytes);
    }
    block
}

/// Pool for the model's own routines (never failed by [`PoolFaults`]).
pub fn allocate_pool(flags: u64, numberofbytes: usize, tag: u32) -> *mut c_void {
    let Some(layout) = pool_layout(numberofbytes) else {
        return std::ptr::null_mut();
    };
    let block = if flags & POOL_FLAG_UNINITIALIZED != 0 {
        // SAFETY: non-zero size.
        let p = unsafe { alloc(layout) };
        if !p.is_null() {
            // SAFETY: `p` holds `layout.size()` bytes.
            unsafe { p.write_bytes(0xCD, layout.size()) };
        }
        p
    } else {
        // SAFETY: non-zero size.
        unsafe { alloc_zeroed(layout) }
    };
    if !block.is_null() {
        let size = numberofbytes;
        kernel::with(|k| {
            k.pool
                .insert(block.expose_provenance(), PoolBlock { tag, size })
        });
    }
    block.cast()
}

#[no_mangle]
pub unsafe extern "system" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's contract, with the tag checked.
    unsafe { free_pool(p, Some(tag)) };
}

/// `ExFreePool`: frees a block whatever its tag (e.g. a VPB the I/O manager allocated and a
/// file system swapped out, NT-29).
#[no_mangle]
pub unsafe extern "system" fn ExFreePool(p: *mut c_void) {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's contract.
    unsafe { free_pool(p, None) };
}

/// Frees a live pool block; `tag`, when given, must be the allocation's.
///
/// # Safety
/// `p` is a live pool block not used after this.
unsafe fn free_pool(p: *mut c_void, tag: Option<u32>) {
    let Some(block) = kernel::with(|k| k.pool.remove(&(p as usize))) else {
        bugcheck("ExFreePoolWithTag of memory that is not a live pool block")
    };
    if tag.is_some_and(|tag| block.tag != tag) {
        bugcheck("ExFreePoolWithTag with a tag other than the allocation's");
    }
    let Some(layout) = pool_layout(block.size) else {
        bugcheck("corrupt pool block size")
    };
    crate::cost::pool_freed(block.size);
    crate::fsrtl::check_no_contexts_in(p as usize, block.size);
    // Freed pool is poisoned and kept until the end of the test, so a use after free reads
    // 0xDD (a wrong node type code) instead of someone else's live data.
    // SAFETY: allocated by ExAllocatePool2 with this layout and no longer live.
    unsafe { p.cast::<u8>().write_bytes(0xDD, layout.size()) };
    kernel::with(|k| k.quarantine.push((p as usize, layout.size())));
}

/// Returns the poisoned freed blocks to the host allocator (end of a test).
pub(crate) fn release_quarantine() {
    let blocks = kernel::with(|k| std::mem::take(&mut k.quarantine));
    for (address, size) in blocks {
        let Some(layout) = pool_layout(size) else {
            continue;
        };
        // SAFETY: each block was allocated with this layout and freed by the driver once.
        unsafe { dealloc(std::ptr::with_exposed_provenance_mut::<u8>(address), layout) };
    }
}

#[no_mangle]
pub extern "system" fn ExInitializeResourceLite(resource: *mut ERESOURCE) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    let fresh = kernel::with(|k| {
        let kind = crate::sched::classify(k, resource as usize);
        k.resources
            .insert(
                resource as usize,
                ResourceState {
                    kind,
                    ..ResourceState::default()
                },
            )
            .is_none()
    });
    if !fresh {
        bugcheck("ExInitializeResourceLite on a live resource");
    }
    zero_resource(resource);
    STATUS_SUCCESS
}

/// Windows zeroes the whole ERESOURCE at initialisation (pool the driver did not clear too).
fn zero_resource(resource: *mut ERESOURCE) {
    // SAFETY: the driver passes storage for an ERESOURCE it owns (ExInitializeResourceLite).
    unsafe { resource.write(ERESOURCE::default()) };
}

#[no_mangle]
pub extern "system" fn ExDeleteResourceLite(resource: *mut ERESOURCE) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    let state = kernel::with(|k| {
        k.main_to_paging.remove(&(resource as usize));
        k.main_to_paging.retain(|_, p| *p != resource as usize);
        k.resources.remove(&(resource as usize))
    });
    match state {
        None => bugcheck("ExDeleteResourceLite of an unknown resource"),
        Some(s) if s.exclusive.is_some() || !s.shared.is_empty() => {
            bugcheck("ExDeleteResourceLite of a resource still held")
        }
        Some(_) => STATUS_SUCCESS,
    }
}

/// What an acquire decided.
enum Acquire {
    Granted,
    WouldWait,
}

/// A waiting acquire on a schedule's thread against the documented lock order
/// ([`crate::sched`]).
fn note_lock_order(resource: *mut ERESOURCE) {
    if !crate::sched::active() {
        return;
    }
    if let Some(what) = kernel::with(|k| crate::sched::order_violation(k, resource as usize)) {
        crate::sched::note_order_violation(what);
    }
}

/// NT-18: main before paging I/O, and paging I/O never takes the main resource.
fn check_lock_order(k: &kernel::Kernel, resource: *mut ERESOURCE) {
    let Some(paging) = k.main_to_paging.get(&(resource as usize)) else {
        return;
    };
    if k.paging_depth > 0 {
        bugcheck("NT-18: a paging I/O request acquired an FCB's main resource");
    }
    let held = k.resources.get(paging).is_some_and(|s| {
        s.exclusive.is_some_and(|(t, _)| t == k.thread) || s.shared.contains_key(&k.thread)
    });
    if held {
        bugcheck("NT-18: main resource acquired while holding the paging I/O resource");
    }
}

fn acquire(resource: *mut ERESOURCE, exclusive: bool) -> Acquire {
    kernel::with(|k| {
        let thread = k.thread;
        // At APC_LEVEL no APC can suspend the holder: no critical region needed there.
        if thread == 0 && k.critical_region <= 0 && k.irql == crate::irql::PASSIVE_LEVEL {
            bugcheck("ERESOURCE acquired on the user thread outside a critical region");
        }
        check_lock_order(k, resource);
        let Some(state) = k.resources.get_mut(&(resource as usize)) else {
            bugcheck("acquire of an uninitialised ERESOURCE")
        };
        match state.exclusive {
            Some((owner, ref mut count)) if owner == thread => {
                *count += 1;
                return Acquire::Granted;
            }
            Some(_) => return Acquire::WouldWait,
            None => {}
        }
        if exclusive {
            if state.shared.contains_key(&thread) {
                bugcheck("exclusive acquire of an ERESOURCE this thread holds shared (deadlock)");
            }
            if !state.shared.is_empty() {
                return Acquire::WouldWait;
            }
            state.exclusive = Some((thread, 1));
        } else {
            *state.shared.entry(thread).or_insert(0) += 1;
            if state.first_shared.is_none() {
                state.first_shared = Some(thread);
            }
        }
        publish(resource, state);
        Acquire::Granted
    })
}

/// `ResourceOwnedExclusive`, the `Flag` bit of an ERESOURCE held exclusive (ntoskrnl's
/// ex/resource.c, as ReactOS has it).
pub const RESOURCE_OWNED_EXCLUSIVE: u16 = 0x80;

/// `OWNER_ENTRY.OwnerCount`: bits 3..31 of the word after `OwnerThread` (Windows 8 and later
/// keep three flag bits below it).
const OWNER_COUNT_SHIFT: u32 = 3;

/// What `ExGetCurrentResourceThread` gives ntsim's thread `thread`: Windows stores the
/// KTHREAD's address; ntsim has no KTHREADs and stores the thread's id, the value the trace
/// ring records (`PsGetCurrentThreadId`), so the two can be matched.
#[must_use]
pub fn resource_thread(thread: u32) -> usize {
    4 * (thread as usize + 1)
}

/// Writes `state` into the ERESOURCE's public fields the way ntoskrnl keeps them: `ActiveCount`
/// 1 while anyone holds it, `ActiveEntries` the number of owning threads, `Flag`'s
/// `ResourceOwnedExclusive`, `OwnerEntry` the exclusive owner (or the first shared one) with
/// its recursion count, no waiters (a wait here is a bug check). Several shared owners at
/// once would need the owner table, which ntsim does not allocate: `OwnerTable` stays NULL
/// and `ActiveEntries` still counts them.
fn publish(resource: *mut ERESOURCE, state: &ResourceState) {
    let (owner, count) = match (state.exclusive, state.first_shared) {
        (Some((t, n)), _) => (Some(t), n),
        (None, Some(t)) => (Some(t), state.shared.get(&t).copied().unwrap_or(0)),
        (None, None) => (None, 0),
    };
    let entries = u32::from(state.exclusive.is_some()) + state.shared.len() as u32;
    // SAFETY: an initialised ERESOURCE the driver passed in; the kernel owns these fields.
    let r = unsafe { &mut *resource };
    r.ActiveCount = i16::from(entries > 0);
    r.ActiveEntries = entries;
    // SAFETY: `Flag` spans the union (two bytes).
    let flag = unsafe { r.Anonymous1.Flag };
    r.Anonymous1.Flag = if state.exclusive.is_some() {
        flag | RESOURCE_OWNED_EXCLUSIVE
    } else {
        flag & !RESOURCE_OWNED_EXCLUSIVE
    };
    r.OwnerEntry.OwnerThread = owner.map_or(0, resource_thread);
    r.OwnerEntry.Anonymous.TableSize = count << OWNER_COUNT_SHIFT;
    r.NumberOfSharedWaiters = 0;
    r.NumberOfExclusiveWaiters = 0;
    r.OwnerTable = std::ptr::null_mut();
}

fn acquire_or_wait(resource: *mut ERESOURCE, exclusive: bool, wait: bool) -> bool {
    crate::worker::check_below_dispatch("an ERESOURCE acquire");
    if wait {
        note_lock_order(resource);
        crate::sched::switch_point("ERESOURCE acquire");
    }
    loop {
        match acquire(resource, exclusive) {
            Acquire::Granted => return true,
            // On a schedule's thread the wait blocks it until a release (a deadlock halts
            // the schedule); alone, nothing else could ever release it.
            Acquire::WouldWait if wait && crate::sched::active() => {
                crate::sched::block_on(resource as usize, exclusive);
            }
            Acquire::WouldWait if wait => {
                bugcheck("ERESOURCE wait that can never end (held by another model thread)")
            }
            Acquire::WouldWait => return false,
        }
    }
}

#[no_mangle]
pub extern "system" fn ExAcquireResourceExclusiveLite(
    resource: *mut ERESOURCE,
    wait: bool,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::stack::note_driver_call();
    acquire_or_wait(resource, true, wait)
}

#[no_mangle]
pub extern "system" fn ExAcquireResourceSharedLite(resource: *mut ERESOURCE, wait: bool) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::stack::note_driver_call();
    acquire_or_wait(resource, false, wait)
}

#[no_mangle]
pub extern "system" fn ExReleaseResourceLite(resource: *mut ERESOURCE) {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| {
        let thread = k.thread;
        let Some(state) = k.resources.get_mut(&(resource as usize)) else {
            bugcheck("release of an uninitialised ERESOURCE")
        };
        if let Some((owner, count)) = state.exclusive {
            if owner == thread {
                state.exclusive = (count > 1).then_some((owner, count - 1));
                publish(resource, state);
                return;
            }
        }
        match state.shared.get_mut(&thread) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                state.shared.remove(&thread);
                if state.first_shared == Some(thread) {
                    // Windows frees OwnerEntry; the next shared acquirer takes it.
                    state.first_shared = None;
                }
            }
            None => bugcheck("ExReleaseResourceLite of a resource this thread does not hold"),
        }
        publish(resource, state);
    });
    crate::sched::released(resource as usize);
    crate::sched::switch_point("ERESOURCE release");
}

/// Is any resource held by anyone (for the end-of-test check)?
#[must_use]
pub fn held_resources() -> usize {
    kernel::with(|k| {
        k.resources
            .values()
            .filter(|s| s.exclusive.is_some() || !s.shared.is_empty())
            .count()
    })
}

/// ERESOURCEs the model's current thread holds (either way).
#[must_use]
pub fn held_by_current_thread() -> usize {
    kernel::with(|k| {
        let thread = k.thread;
        k.resources.values().filter(|s| s.held_by(thread)).count()
    })
}

#[no_mangle]
pub extern "system" fn KeInitializeEvent(event: *mut KEVENT, _type: EVENT_TYPE, state: bool) {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| k.events.insert(event as usize, state));
}

/// Signals an event (the I/O manager does it at completion).
pub(crate) fn set_event(event: *const KEVENT) {
    kernel::with(|k| k.events.insert(event as usize, true));
}

/// `KeSetEvent`: signals an initialised event; the previous state (0 or 1).
#[no_mangle]
pub extern "system" fn KeSetEvent(event: *mut KEVENT, _increment: i32, wait: bool) -> i32 {
    let _kernel = crate::heap::KernelRegion::enter();
    if wait {
        bugcheck("KeSetEvent with Wait = TRUE: ntsim does not model the wait that must follow");
    }
    if crate::irql::current() > crate::irql::DISPATCH_LEVEL {
        bugcheck("IRQL_NOT_LESS_OR_EQUAL: KeSetEvent above DISPATCH_LEVEL");
    }
    let previous = kernel::with(|k| k.events.insert(event as usize, true));
    match previous {
        Some(state) => i32::from(state),
        None => bugcheck("KeSetEvent on an event that was never initialised"),
    }
}

#[no_mangle]
pub extern "system" fn KeWaitForSingleObject(
    object: *const c_void,
    _waitreason: KWAIT_REASON,
    _waitmode: i8,
    _alertable: bool,
    _timeout: *const i64,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::sched::switch_point("KeWaitForSingleObject");
    let irql = crate::irql::current();
    if irql >= crate::irql::DISPATCH_LEVEL {
        bugcheck(&format!(
            "IRQL_NOT_LESS_OR_EQUAL: KeWaitForSingleObject at {} (a wait with a timeout other \
             than zero is for IRQL <= APC_LEVEL)",
            crate::irql::name(irql)
        ));
    }
    if kernel::with(|k| k.events.get(&(object as usize)).copied()) == Some(false) {
        // Nothing else runs: the only thing that can signal it is a pended request.
        crate::disk::complete_pending();
    }
    // A waiting thread at PASSIVE_LEVEL takes its kernel APCs (a threaded IRP's completion).
    crate::irql::deliver_kernel_apcs();
    let signalled = kernel::with(|k| k.events.get(&(object as usize)).copied());
    match signalled {
        Some(true) => STATUS_SUCCESS,
        Some(false) if crate::irql::apcs_blocked() => bugcheck(&format!(
            "NT-27 hang: KeWaitForSingleObject at {} on an event only a queued special kernel \
             APC (a threaded IRP's completion) would signal; the APC cannot run until the \
             thread is at PASSIVE_LEVEL, so on Windows this thread waits forever",
            crate::irql::name(irql)
        )),
        Some(false) => bugcheck("KeWaitForSingleObject on an event nothing will ever signal"),
        None => bugcheck("KeWaitForSingleObject on an object ntsim does not know"),
    }
}

#[no_mangle]
pub extern "system" fn KeEnterCriticalRegion() {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::worker::check_below_dispatch("KeEnterCriticalRegion");
    kernel::with(|k| k.critical_region += 1);
}

#[no_mangle]
pub extern "system" fn KeLeaveCriticalRegion() {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| {
        k.critical_region -= 1;
        if k.critical_region < 0 {
            bugcheck("KeLeaveCriticalRegion without a matching enter");
        }
    });
}

/// 2026-01-01 in NT time; the clock advances 1 ms per query, so runs are reproducible.
const CLOCK_BASE: i64 = 134_115_840_000_000_000;

#[no_mangle]
pub unsafe extern "system" fn KeQuerySystemTimePrecise(currenttime: *mut i64) {
    let _kernel = crate::heap::KernelRegion::enter();
    let ticks = kernel::with(|k| {
        k.clock_ticks += 1;
        k.clock_ticks
    });
    let now = CLOCK_BASE + i64::try_from(ticks).unwrap_or(0) * 10_000;
    // SAFETY: the caller passes a writable LARGE_INTEGER.
    unsafe { currenttime.write(now) };
}

#[no_mangle]
pub extern "system" fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) {
    let _kernel = crate::heap::KernelRegion::enter();
    bugcheck(&format!(
        "KeBugCheckEx({code:#x}, {p1:#x}, {p2:#x}, {p3:#x}, {p4:#x})"
    ))
}

// ---- What the driver's debugger anchors call (fs-driver's `debugger`, `global`) --------------

/// `PsGetCurrentThreadId`: the model's thread as a thread id (4, 8, 12 ...: ids are multiples
/// of 4 on Windows; 4 is the test's user thread, the others ntsim's system threads).
#[no_mangle]
pub extern "system" fn PsGetCurrentThreadId() -> windows_sys::Win32::Foundation::HANDLE {
    let thread = kernel::with(|k| k.thread);
    resource_thread(thread) as windows_sys::Win32::Foundation::HANDLE
}

/// The interrupt time the driver's `KeQueryInterruptTime` reads on the host: the model's clock
/// (100 ns units), without advancing it (it ticks only on `KeQuerySystemTimePrecise`).
#[no_mangle]
pub extern "system" fn cowfat_host_interrupt_time() -> u64 {
    kernel::with(|k| k.clock_ticks) * 10_000
}

/// `KeAcquireInStackQueuedSpinLock`: nothing else runs here, so the lock must be free; a
/// second acquire (a spin that could never end) is a bug check.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireInStackQueuedSpinLock(
    spinlock: *mut usize,
    lockhandle: *mut windows_sys::Wdk::System::SystemServices::KLOCK_QUEUE_HANDLE,
) {
    // SAFETY: the caller passes its KSPIN_LOCK and a writable queue handle.
    let lock = unsafe { &mut *spinlock };
    // SAFETY: as above.
    let handle = unsafe { &mut *lockhandle };
    if *lock != 0 {
        bugcheck("KeAcquireInStackQueuedSpinLock on a held spin lock (deadlock)");
    }
    *lock = lockhandle as usize;
    handle.LockQueue.Lock = spinlock;
    handle.LockQueue.Next = std::ptr::null_mut();
    // Held at DISPATCH_LEVEL: no wait, no ERESOURCE, no paged pool until released (NT-27).
    handle.OldIrql = crate::irql::raise(crate::irql::DISPATCH_LEVEL);
}

/// `KeReleaseInStackQueuedSpinLock`: releases what the handle acquired.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseInStackQueuedSpinLock(
    lockhandle: *const windows_sys::Wdk::System::SystemServices::KLOCK_QUEUE_HANDLE,
) {
    // SAFETY: a handle filled by the acquire above.
    let lock = unsafe { (*lockhandle).LockQueue.Lock };
    // SAFETY: a non-NULL lock pointer of a handle is the KSPIN_LOCK it acquired.
    if lock.is_null() || unsafe { *lock } != lockhandle as usize {
        bugcheck("KeReleaseInStackQueuedSpinLock with a handle that does not hold the lock");
    }
    // SAFETY: as above.
    unsafe { *lock = 0 };
    // SAFETY: as above.
    crate::irql::lower(unsafe { (*lockhandle).OldIrql });
}
