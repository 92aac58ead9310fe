//! IRP_MJ_CLOSE: the last reference of a file object went away (fastfat's `close.c`; NT-04,
//! NT-05). Mm may close long after the last handle (seed 000): the FCB lives until then.
//!
//! The CCB goes; the FCB goes with its last file object (an unlinked file's record is freed
//! then, and its unused overlay reservation given back); after a dismount the VCB and the
//! volume device object go with the volume's last file object.
//!
//! A close never waits (NT-32). It may come from Mm or Cc dropping their reference, inside a
//! paging path or on a thread that already holds locks the VCB's holder waits for; waiting for
//! the VCB resource there can deadlock. So every close tries the VCB resource without waiting
//! (the thread that holds it already gets it again) and, when another thread holds it, puts
//! itself on the volume's deferred close queue and completes; a system worker thread
//! ([`close_worker`], fastfat's `FatFspClose`) finishes it with the normal close. fastfat
//! waits in a top-level close from a user process; cowfat queues every close that would wait,
//! top-level or not: the close completes at once either way, and the only cost is that the
//! FCB lives a little longer. The queue entry is reserved in the CCB at create, so queueing
//! never allocates and never fails (NT-26). Dismount runs whatever is queued; the VCB is not
//! torn down while the worker is queued or running (the worker tears it down then).

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::fcb::{self, Ccb, Fcb};
use crate::nt::{self, DEVICE_OBJECT, PIO_WORKITEM};
use crate::strucsup::Flag;
use crate::vcb::{Vcb, VcbExclusive};
use crate::wdk_inline::{fsrtl_enter_file_system, fsrtl_exit_file_system};

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_CLOSE`.
    fsd_close => common_close
);

/// What a close releases besides the CCB.
#[derive(Clone, Copy, Debug, Default)]
enum Closing {
    /// Nothing else (a file object without an FCB).
    #[default]
    Nothing,
    /// A volume open.
    Volume,
    /// One reference of an FCB.
    File(*mut Fcb),
}

/// A close waiting in the volume's deferred close queue (fastfat's `CLOSE_CONTEXT`), kept in
/// the CCB it closes.
#[derive(Debug)]
pub struct CloseEntry {
    /// The next older queued close.
    next: *mut Ccb,
    closing: Closing,
}

impl Default for CloseEntry {
    fn default() -> Self {
        Self {
            next: ptr::null_mut(),
            closing: Closing::Nothing,
        }
    }
}

/// The close entry of a CCB.
///
/// # Safety
/// `ccb` is live and the caller owns its entry: it is queueing it, or took it off the queue.
unsafe fn entry_of<'a>(ccb: *mut Ccb) -> &'a mut CloseEntry {
    // SAFETY: the caller's contract: a live CCB.
    let cell = unsafe { &(*ccb).close_entry };
    // SAFETY: the caller owns the entry, so no other reference to it exists.
    unsafe { &mut *cell.get() }
}

/// One volume's deferred closes: a lock-free stack of CCBs (push, and take all at once; a
/// close must not even wait for a lock holder to be scheduled, and with no single-entry pop
/// there is no ABA problem), and the worker that runs them.
pub struct CloseQueue {
    head: AtomicPtr<Ccb>,
    /// The worker is queued or running: it sees every entry pushed before it clears this.
    active: Flag,
    /// From `IoAllocateWorkItem` at mount, freed with the VCB.
    item: PIO_WORKITEM,
}

impl CloseQueue {
    /// An empty queue owning `item`.
    #[must_use]
    pub fn new(item: PIO_WORKITEM) -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            active: Flag::new(false),
            item,
        }
    }

    /// The work item (for [`Vcb::delete`] to free).
    #[must_use]
    pub fn item(&self) -> PIO_WORKITEM {
        self.item
    }

    /// Is the worker queued or running (the VCB must stay)?
    #[must_use]
    pub fn busy(&self) -> bool {
        self.active.get()
    }

    /// Is nothing queued?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire).is_null()
    }

    /// Pushes `ccb`, whose entry is filled in.
    fn push(&self, ccb: *mut Ccb) {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            // SAFETY: the CCB is ours until the queue hands it back; nobody else reads the
            // entry before the exchange below publishes it.
            unsafe { entry_of(ccb) }.next = head;
            match self
                .head
                .compare_exchange_weak(head, ccb, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Takes every queued close, oldest first.
    fn take_all(&self) -> Option<*mut Ccb> {
        let mut newest = self.head.swap(ptr::null_mut(), Ordering::AcqRel);
        // Reverse the stack, so closes run in the order they came.
        let mut oldest: *mut Ccb = ptr::null_mut();
        while !newest.is_null() {
            // SAFETY: queued CCBs are alive until their close runs; we own the list now.
            let entry = unsafe { entry_of(newest) };
            let next = entry.next;
            entry.next = oldest;
            oldest = newest;
            newest = next;
        }
        (!oldest.is_null()).then_some(oldest)
    }
}

/// `IRP_MJ_CLOSE`.
#[must_use]
pub fn common_close(context: &IrpContext) -> Outcome {
    if context.on_control_device {
        return Outcome::status(nt::STATUS_SUCCESS);
    }
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    let vcb_ptr = ptr::from_ref(vcb).cast_mut();
    let ccb = context.ccb();
    // Decoded without the VCB resource: FsContext was set at create and does not change.
    let closing = if context.is_volume_open(vcb) {
        Closing::Volume
    // SAFETY: the request's file object.
    } else if let Some(fcb) = unsafe { fcb::fcb_of_file_object(context.file_object) } {
        Closing::File(fcb)
    } else {
        Closing::Nothing
    };
    let guard = match vcb.try_acquire_exclusive() {
        Some(guard) => guard,
        // Every file object we open has a CCB; without one there is no room to queue, and
        // the close waits as it always did.
        None if ccb.is_null() => vcb.acquire_exclusive(),
        None => {
            // SAFETY: the file object's CCB, queued once; the FCB it names stays while the
            // close is queued (its reference is not dropped yet).
            unsafe { queue_close(vcb, ccb, closing) };
            return Outcome::status(nt::STATUS_SUCCESS);
        }
    };
    // SAFETY: the file object's CCB and what it closes, under the VCB resource.
    unsafe { close_one(vcb, &guard, ccb, closing) };
    let teardown = vcb.claim_deletion(&guard);
    drop(guard);
    if teardown {
        // SAFETY: dismounted and unused: this was the volume's last file object; the guard
        // is gone and `vcb` is not used again.
        unsafe { Vcb::delete(vcb_ptr) };
    }
    Outcome::status(nt::STATUS_SUCCESS)
}

/// Puts a close on the volume's queue and makes sure the worker will run.
///
/// # Safety
/// `ccb` is the closing file object's CCB and is not queued yet.
unsafe fn queue_close(vcb: &Vcb, ccb: *mut Ccb, closing: Closing) {
    // SAFETY: the caller's contract: the entry is ours until pushed.
    unsafe { entry_of(ccb) }.closing = closing;
    let queue = &vcb.close_queue;
    queue.push(ccb);
    if !queue.active.swap(true) {
        let context = ptr::from_ref(vcb).cast();
        // SAFETY: our work item, not queued (the flag was clear); the VCB stays while it is
        // queued or running.
        unsafe { crate::worksup::queue(queue.item, close_worker, nt::CriticalWorkQueue, context) };
    }
}

/// Runs every queued close of `vcb` (the worker, and dismount).
pub fn run_queued(vcb: &Vcb, guard: &VcbExclusive<'_>) {
    let mut next = vcb.close_queue.take_all();
    while let Some(ccb) = next {
        // SAFETY: a queued CCB, alive until freed by `close_one` below.
        let entry = unsafe { entry_of(ccb) };
        let (following, closing) = (entry.next, entry.closing);
        // SAFETY: the CCB and what it closes, under the VCB resource; freed once.
        unsafe { close_one(vcb, guard, ccb, closing) };
        next = (!following.is_null()).then_some(following);
    }
}

/// The deferred close worker (fastfat's `FatFspClose`), on a system worker thread.
unsafe extern "system" fn close_worker(
    _device: *mut DEVICE_OBJECT,
    context: *mut core::ffi::c_void,
) {
    fsrtl_enter_file_system();
    // Requests this close causes know they run in the file system's own worker.
    let marker = ptr::without_provenance::<nt::IRP>(nt::top_level::FSRTL_FSP_TOP_LEVEL_IRP);
    // SAFETY: a marker value, cleared below.
    unsafe { nt::IoSetTopLevelIrp(marker) };
    let vcb_ptr = context.cast::<Vcb>();
    // SAFETY: the VCB stays while this worker is queued or running (`claim_deletion`).
    let vcb = unsafe { &*vcb_ptr };
    let teardown = {
        let guard = vcb.acquire_exclusive();
        loop {
            run_queued(vcb, &guard);
            vcb.close_queue.active.set(false);
            // A close queued between the last take and the clear saw the flag set and did
            // not queue the worker: take it over again, unless a new run is already queued.
            if vcb.close_queue.is_empty() || vcb.close_queue.active.swap(true) {
                break;
            }
        }
        vcb.claim_deletion(&guard)
    };
    // SAFETY: clearing our marker.
    unsafe { nt::IoSetTopLevelIrp(ptr::null()) };
    if teardown {
        // SAFETY: dismounted and unused, no worker queued; the guard is gone and `vcb` is
        // not used again.
        unsafe { Vcb::delete(vcb_ptr) };
    }
    fsrtl_exit_file_system();
}

/// Frees the CCB and drops what it held.
///
/// # Safety
/// `ccb` (or NULL) and `closing` belong to one closing file object; the VCB resource is held.
unsafe fn close_one(vcb: &Vcb, guard: &VcbExclusive<'_>, ccb: *mut Ccb, closing: Closing) {
    // SAFETY: the file object's CCB, freed once here.
    unsafe { Ccb::free(ccb) };
    match closing {
        Closing::Volume => vcb
            .volume_opens
            .set(vcb.volume_opens.get().saturating_sub(1)),
        // SAFETY: the FCB of this file object, under the VCB resource.
        Closing::File(fcb) => unsafe { close_fcb(vcb, guard, fcb) },
        Closing::Nothing => {}
    }
}

/// Drops one file object's reference; the last one frees the FCB.
///
/// # Safety
/// `fcb` is the FCB of the file object being closed; the VCB resource is held.
unsafe fn close_fcb(vcb: &Vcb, guard: &VcbExclusive<'_>, fcb: *mut Fcb) {
    // SAFETY: alive until freed below.
    let fcb_ref = unsafe { &*fcb };
    let refs = fcb_ref.reference_count.get().saturating_sub(1);
    fcb_ref.reference_count.set(refs);
    if refs != 0 {
        return;
    }
    let id = fcb_ref.id;
    let unlinked = fcb_ref.unlinked.get();
    guard.remove_fcb(id);
    if !vcb.dismounted.get() {
        let _ = vcb.with_volume(|v| {
            v.release_overlay_reservation(id);
            if unlinked {
                v.purge_orphan(id)?;
            }
            Ok(())
        });
    }
    // SAFETY: out of the table, no file object left; freed once.
    unsafe { Fcb::delete(fcb) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_CLOSE;

    #[test]
    fn control_device_handles_need_no_work() {
        let outcome = common_close(&context(IRP_MJ_CLOSE, 0, true));
        assert_eq!(outcome, Outcome::status(nt::STATUS_SUCCESS));
    }
}
