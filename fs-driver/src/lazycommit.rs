//! Lazy commit (NT-33): fs-core's metadata transaction is committed every
//! [`LAZY_COMMIT_PERIOD_MS`] without anyone asking, so a power cut loses at most that much of
//! the creates, renames, deletes and size changes nobody flushed.
//!
//! A periodic kernel timer queues a DPC; the DPC runs at DISPATCH_LEVEL, where nothing may
//! wait or touch paged memory, so all it does is queue a work item; the work item commits at
//! PASSIVE_LEVEL on a system worker thread, under the VCB resource (so the commit never lands
//! in the middle of a create or rename). A commit is skipped when nothing changed since the
//! last one. `FlushFileBuffers`, a volume flush and IRP_MJ_SHUTDOWN commit at once
//! (`dispatch::flush`). Dismount stops the timer and waits for a DPC in flight
//! ([`stop`]); a work item still queued then finds the volume dismounted, and the VCB is not
//! torn down before it has run ([`crate::vcb::Vcb::claim_deletion`]).
//!
//! Why 5 seconds: what a power cut may take grows with the period, and what a busy volume
//! writes (one journal transaction plus a device flush per commit, however little changed)
//! shrinks with it. 5 s is ext4's default commit interval; it is fs-core's
//! `LAZY_COMMIT_INTERVAL_MS`, which `cowfat mount` (the FUSE mount) uses too, so the
//! two ways of mounting a volume promise the same window.

use core::cell::UnsafeCell;
use core::ffi::c_void;

use crate::nt::{self, DEVICE_OBJECT, KDPC, KTIMER, PIO_WORKITEM};
use crate::strucsup::Flag;
use crate::vcb::Vcb;
use crate::wdk_inline::{fsrtl_enter_file_system, fsrtl_exit_file_system};
use crate::worksup;

/// How often dirty metadata is committed, in milliseconds: fs-core's interval, which the FUSE
/// mount's periodic commit uses too.
pub const LAZY_COMMIT_PERIOD_MS: u32 = fs_core::LAZY_COMMIT_INTERVAL_MS;

/// One volume's lazy commit: timer, DPC, work item. Lives in the VCB (non-paged device
/// extension memory, as a KTIMER and a KDPC must).
pub struct LazyCommit {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
    /// From `IoAllocateWorkItem` at mount, freed with the VCB.
    item: PIO_WORKITEM,
    /// The work item is queued or running.
    queued: Flag,
    /// Commits the work item made.
    pub commits: crate::strucsup::Counter,
}

impl LazyCommit {
    /// The lazy commit of a new VCB, owning `item`; [`init`] and [`start`] arm it.
    #[must_use]
    pub fn new(item: PIO_WORKITEM) -> Self {
        Self {
            timer: UnsafeCell::new(KTIMER::default()),
            dpc: UnsafeCell::new(KDPC::default()),
            item,
            queued: Flag::new(false),
            commits: crate::strucsup::Counter::new(0),
        }
    }

    /// The work item (for [`crate::vcb::Vcb::delete`] to free).
    #[must_use]
    pub fn item(&self) -> PIO_WORKITEM {
        self.item
    }

    /// Is the work item queued or running (the VCB must stay)?
    #[must_use]
    pub fn busy(&self) -> bool {
        self.queued.get()
    }
}

/// Initialises the timer and the DPC of `vcb` (once, at mount, before [`start`]).
///
/// # Safety
/// `vcb` is initialised in place in its device extension and stays there until deleted.
pub unsafe fn init(vcb: &Vcb) {
    let lazy = &vcb.lazy_commit;
    // SAFETY: non-paged memory of the VCB, not yet in use.
    unsafe { nt::KeInitializeTimerEx(lazy.timer.get(), nt::NotificationTimer) };
    let context = core::ptr::from_ref(vcb).cast::<c_void>();
    // SAFETY: as above; the VCB outlives the DPC (dismount flushes it before teardown).
    unsafe { worksup::initialize_dpc(lazy.dpc.get(), commit_dpc, context) };
}

/// Arms the periodic timer.
pub fn start(vcb: &Vcb) {
    let lazy = &vcb.lazy_commit;
    // Relative due times are negative, in 100 ns units.
    let due = -i64::from(LAZY_COMMIT_PERIOD_MS) * 10_000;
    let period = i32::try_from(LAZY_COMMIT_PERIOD_MS).unwrap_or(i32::MAX);
    // SAFETY: initialised by `init`; the DPC is ours.
    unsafe { nt::KeSetTimerEx(lazy.timer.get(), due, period, lazy.dpc.get()) };
}

/// Stops the timer and waits until no DPC of it is still to run (dismount; PASSIVE_LEVEL).
pub fn stop(vcb: &Vcb) {
    // SAFETY: initialised by `init`.
    let cancelled = unsafe { nt::KeCancelTimer(vcb.lazy_commit.timer.get()) };
    if !cancelled {
        // Not in the timer queue: it may have expired and its DPC be queued or running on
        // another processor; after this no DPC of it will touch the VCB.
        // SAFETY: PASSIVE_LEVEL (dismount).
        unsafe { nt::KeFlushQueuedDpcs() };
    }
}

/// The timer's DPC (DISPATCH_LEVEL): queue the commit unless it is already queued.
unsafe extern "system" fn commit_dpc(
    _dpc: *mut KDPC,
    context: *mut c_void,
    _argument1: *mut c_void,
    _argument2: *mut c_void,
) {
    // SAFETY: the DPC's context is its VCB, alive until dismount has flushed the DPC.
    let vcb = unsafe { &*context.cast::<Vcb>() };
    let lazy = &vcb.lazy_commit;
    if !lazy.queued.swap(true) {
        // SAFETY: our work item, not queued (the flag says so); the VCB stays until it ran.
        unsafe { worksup::queue(lazy.item, commit_worker, nt::DelayedWorkQueue, context) };
    }
}

/// The work item (PASSIVE_LEVEL, system worker thread): commit if anything changed.
unsafe extern "system" fn commit_worker(_device: *mut DEVICE_OBJECT, context: *mut c_void) {
    fsrtl_enter_file_system();
    let vcb_ptr = context.cast::<Vcb>();
    // SAFETY: the VCB stays while this work item is queued or running (`claim_deletion`).
    let vcb = unsafe { &*vcb_ptr };
    let teardown = {
        let guard = vcb.acquire_exclusive();
        if !vcb.dismounted.get() {
            let committed = vcb.with_volume(|v| {
                if !v.has_uncommitted() {
                    return Ok(false);
                }
                v.sync().map(|()| true)
            });
            // A failed commit leaves the changes in memory: the next period tries again, and
            // a flush reports the error to whoever asks.
            if committed == Ok(true) {
                vcb.lazy_commit
                    .commits
                    .set(vcb.lazy_commit.commits.get().saturating_add(1));
            }
        }
        vcb.lazy_commit.queued.set(false);
        vcb.claim_deletion(&guard)
    };
    if teardown {
        // SAFETY: dismounted and unused, and no other worker of it is queued; the guard is
        // gone and `vcb` is not used again.
        unsafe { Vcb::delete(vcb_ptr) };
    }
    fsrtl_exit_file_system();
}
