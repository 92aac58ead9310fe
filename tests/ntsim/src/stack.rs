//! How much stack the driver uses (NT-23), measured: from where the outermost IRP dispatch into
//! the driver began on this thread to each point where the driver calls back into the kernel
//! (disk requests, resources, pool). On Windows all of that shares one 24 KiB kernel stack, so
//! ntsim holds the driver to a budget and bug-checks when a path goes over it, the way the
//! kernel would double-fault. The release image's own numbers come from `stack-report`; this
//! budget is for the host test build (fs-driver and fs-core at opt-level 2), whose frames are
//! laid out by a different backend configuration, so it is set from a measurement of this
//! build (see tests/ntsim/README.md), with room for normal change but not for a 4 KiB local.

use std::cell::Cell;

use crate::ex::bugcheck;

/// Bytes the driver may use between its dispatch entry and a call into the kernel, in the
/// host test build.
pub const DRIVER_STACK_BUDGET: usize = 6 * 1024;

thread_local! {
    static NESTING: Cell<u32> = const { Cell::new(0) };
    static TOP: Cell<usize> = const { Cell::new(0) };
    static DEEPEST: Cell<usize> = const { Cell::new(0) };
}

/// The address of a local of the caller's frame (the stack grows down on every host ntsim
/// runs on).
#[inline(never)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Marks a dispatch into the driver; the outermost one on the thread sets where the driver's
/// stack begins. Nested dispatches (a paging read under a cached read) count from there.
pub struct DriverEntry {
    _heap: crate::heap::DriverRegion,
}

impl DriverEntry {
    /// Enters the driver here.
    #[must_use]
    pub fn enter() -> Self {
        if NESTING.get() == 0 {
            TOP.set(stack_pointer());
        }
        NESTING.set(NESTING.get() + 1);
        Self {
            _heap: crate::heap::DriverRegion::enter(),
        }
    }
}

impl Drop for DriverEntry {
    fn drop(&mut self) {
        NESTING.set(NESTING.get().saturating_sub(1));
    }
}

/// Called by the kernel routines the driver uses on its deep paths: records the depth and
/// bug-checks past the budget.
pub fn note_driver_call() {
    if NESTING.get() == 0 {
        return;
    }
    let used = TOP.get().saturating_sub(stack_pointer());
    if used > DEEPEST.get() {
        DEEPEST.set(used);
    }
    if used > DRIVER_STACK_BUDGET {
        bugcheck(&format!(
            "the driver used {used} bytes of stack, over ntsim's budget of {DRIVER_STACK_BUDGET} (NT-23)"
        ));
    }
}

/// The deepest use seen on this thread since the last [`take_deepest`].
pub fn take_deepest() -> usize {
    DEEPEST.replace(0)
}
