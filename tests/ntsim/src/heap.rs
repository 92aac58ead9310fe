//! NT-26 for the driver's Rust heap. On the image, `alloc::` types live in pool (src/image.rs),
//! so a heap allocation can fail like any pool allocation. ntsim's test binaries use
//! [`FailingHeap`] as their global allocator: when armed, it fails the Nth heap allocation (or
//! every one) that the *driver* makes. An infallible allocation that fails ends in
//! `handle_alloc_error`, which aborts the test process, so a run that survives proves that every
//! allocation it reached was fallible.
//!
//! Whose allocation is it: the driver runs between a dispatch entry ([`crate::stack`]) and its
//! return, and between those it calls ntsim's exports, whose bookkeeping is the kernel's and
//! must not fail. [`crate::kernel::with`] (the model's state, which every export uses) marks
//! ntsim's own region; exports that allocate outside it take a [`KernelRegion`] themselves. A
//! dispatch that ntsim makes from inside its own code (a paging read under `CcCopyRead`)
//! switches back to the driver's region for its duration.
//!
//! `COWFAT_HEAP_FAIL_BACKTRACE=1` prints the backtrace of every allocation the heap fails (to
//! find an infallible site when a run aborts).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Dispatch nesting into the driver on this thread (driver code is running when > 0).
    static DRIVER: Cell<u32> = const { Cell::new(0) };
    /// ntsim's own code running on behalf of the driver (an export) when > 0.
    static KERNEL: Cell<u32> = const { Cell::new(0) };
    /// Failing: 0 off, u64::MAX every driver allocation, else the attempt number to fail.
    static FAIL_NTH: Cell<u64> = const { Cell::new(0) };
    static ATTEMPTS: Cell<u64> = const { Cell::new(0) };
    static FAILED: Cell<u64> = const { Cell::new(0) };
    /// Set while printing a backtrace (its own allocations pass).
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

static BACKTRACES: AtomicBool = AtomicBool::new(false);
static SITES: AtomicBool = AtomicBool::new(false);

/// The global allocator of every binary that links ntsim.
pub struct FailingHeap;

/// Installed by the `failing-heap` feature (on by default); a binary with an allocator of
/// its own (the fuzz targets cap allocations their way) turns the feature off.
#[cfg(feature = "failing-heap")]
#[global_allocator]
static HEAP: FailingHeap = FailingHeap;

/// Whether the driver (not ntsim on its behalf) is running on this thread.
fn driver_running() -> bool {
    DRIVER.try_with(Cell::get).unwrap_or(0) != 0 && KERNEL.try_with(Cell::get).unwrap_or(1) == 0
}

/// Counts a change of the driver's heap ([`crate::cost`]); `allocation` for a new block.
fn count_driver_heap(delta: i64, allocation: bool) {
    if driver_running() && !REPORTING.try_with(Cell::get).unwrap_or(true) {
        crate::cost::heap_changed(delta, allocation);
    }
}

fn signed(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Whether this allocation is the driver's and is to fail.
fn fail_this() -> bool {
    if !driver_running() {
        return false;
    }
    let nth = FAIL_NTH.try_with(Cell::get).unwrap_or(0);
    if nth == 0 || REPORTING.try_with(Cell::get).unwrap_or(true) {
        return false;
    }
    let attempt = ATTEMPTS.get() + 1;
    ATTEMPTS.set(attempt);
    if SITES.load(Ordering::Relaxed) {
        REPORTING.set(true);
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        let site: Vec<&str> = trace
            .lines()
            .filter(|l| l.contains("at ./fs-"))
            .take(3)
            .collect();
        eprintln!("ntsim heap site: {}", site.join(" < "));
        REPORTING.set(false);
        return false;
    }
    // Every site is fallible (NT-26): no allocation the driver makes is left alone.
    let fail = nth == u64::MAX || nth == attempt;
    if fail {
        FAILED.set(FAILED.get() + 1);
        if BACKTRACES.load(Ordering::Relaxed) {
            REPORTING.set(true);
            eprintln!(
                "ntsim heap: failing driver allocation {attempt}\n{}",
                std::backtrace::Backtrace::force_capture()
            );
            REPORTING.set(false);
        }
    }
    fail
}

// SAFETY: forwards to the system allocator, or returns null (an allowed answer of `alloc`).
unsafe impl GlobalAlloc for FailingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if fail_this() {
            return std::ptr::null_mut();
        }
        count_driver_heap(signed(layout.size()), true);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if fail_this() {
            return std::ptr::null_mut();
        }
        count_driver_heap(signed(layout.size()), true);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_driver_heap(-signed(layout.size()), false);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if fail_this() {
            return std::ptr::null_mut();
        }
        count_driver_heap(signed(new_size) - signed(layout.size()), true);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Reads the reporting switches from the environment.
fn read_env() {
    BACKTRACES.store(
        std::env::var_os("COWFAT_HEAP_FAIL_BACKTRACE").is_some(),
        Ordering::Relaxed,
    );
    SITES.store(
        std::env::var_os("COWFAT_HEAP_SITES").is_some(),
        Ordering::Relaxed,
    );
}

/// Arms the heap: fail the driver's heap allocation `n` (1-based) from now, or none.
pub fn fail_allocation(n: Option<u64>) {
    read_env();
    FAIL_NTH.set(n.map_or(0, |n| n.clamp(1, u64::MAX - 1)));
    ATTEMPTS.set(0);
    FAILED.set(0);
}

/// Fails every heap allocation the driver makes from now until disarmed.
pub fn fail_every_allocation(on: bool) {
    read_env();
    FAIL_NTH.set(if on { u64::MAX } else { 0 });
    ATTEMPTS.set(0);
    FAILED.set(0);
}

/// The driver's heap allocations asked for and failed since the last arming.
#[must_use]
pub fn counts() -> (u64, u64) {
    (ATTEMPTS.get(), FAILED.get())
}

/// The driver runs on this thread while a value lives (from a dispatch entry).
pub struct DriverRegion {
    saved_kernel: u32,
}

impl DriverRegion {
    #[must_use]
    pub fn enter() -> Self {
        DRIVER.set(DRIVER.get() + 1);
        Self {
            saved_kernel: KERNEL.replace(0),
        }
    }
}

impl Drop for DriverRegion {
    fn drop(&mut self) {
        DRIVER.set(DRIVER.get().saturating_sub(1));
        KERNEL.set(self.saved_kernel);
    }
}

/// ntsim's own code runs while a value lives: its allocations never fail.
pub struct KernelRegion(());

impl KernelRegion {
    #[must_use]
    pub fn enter() -> Self {
        let _ = KERNEL.try_with(|k| k.set(k.get() + 1));
        Self(())
    }
}

impl Drop for KernelRegion {
    fn drop(&mut self) {
        let _ = KERNEL.try_with(|k| k.set(k.get().saturating_sub(1)));
    }
}
