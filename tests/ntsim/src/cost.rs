//! What the driver's paths cost, counted rather than timed (issue 21): disk requests and bytes,
//! disk flushes, and the driver's pool, both `ExAllocatePool2` blocks and its Rust heap (which
//! lives in pool on the image, src/image.rs).
//!
//! The counters are per thread (the model runs on the test's thread) and only grow; a test
//! takes a [`Mark`] before an operation and reads the [`Cost`] since it. Peak pool is the
//! highest the driver's live pool bytes rose *above* the level at the mark, so a cache the
//! driver already held before the operation is not counted again.
//!
//! They live in thread-locals rather than in [`crate::kernel`]'s state because the global
//! allocator updates them, and it must not borrow the model.

use std::cell::Cell;

thread_local! {
    static DISK_READS: Cell<u64> = const { Cell::new(0) };
    static DISK_WRITES: Cell<u64> = const { Cell::new(0) };
    static BYTES_READ: Cell<u64> = const { Cell::new(0) };
    static BYTES_WRITTEN: Cell<u64> = const { Cell::new(0) };
    static FLUSHES: Cell<u64> = const { Cell::new(0) };
    static POOL_ALLOCS: Cell<u64> = const { Cell::new(0) };
    static HEAP_ALLOCS: Cell<u64> = const { Cell::new(0) };
    /// The driver's live pool and heap bytes (signed: a block ntsim allocated for the driver
    /// may be freed by it).
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn bump(counter: &'static std::thread::LocalKey<Cell<u64>>, by: u64) {
    let _ = counter.try_with(|c| c.set(c.get().saturating_add(by)));
}

fn live_change(delta: i64) {
    let Ok(live) = LIVE.try_with(|l| {
        let v = l.get().saturating_add(delta);
        l.set(v);
        v
    }) else {
        return;
    };
    let _ = PEAK.try_with(|p| p.set(p.get().max(live)));
}

/// The disk served a read or write of `bytes`.
pub(crate) fn disk_transfer(write: bool, bytes: usize) {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    if write {
        bump(&DISK_WRITES, 1);
        bump(&BYTES_WRITTEN, bytes);
    } else {
        bump(&DISK_READS, 1);
        bump(&BYTES_READ, bytes);
    }
}

/// The disk completed an `IRP_MJ_FLUSH_BUFFERS`.
pub(crate) fn disk_flush() {
    bump(&FLUSHES, 1);
}

/// The driver got a pool block of `bytes` from `ExAllocatePool2`.
pub(crate) fn pool_allocated(bytes: usize) {
    bump(&POOL_ALLOCS, 1);
    live_change(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// A pool block of `bytes` was freed.
pub(crate) fn pool_freed(bytes: usize) {
    live_change(-i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// The driver's heap grew by `delta` bytes; `allocation` when it was a new block (or a
/// reallocation, which on the image is a new pool block too).
pub(crate) fn heap_changed(delta: i64, allocation: bool) {
    if allocation {
        bump(&HEAP_ALLOCS, 1);
    }
    live_change(delta);
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    cost: Cost,
    live: i64,
}

/// What happened between a [`Mark`] and now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Read requests the disk served.
    pub disk_reads: u64,
    /// Write requests the disk served.
    pub disk_writes: u64,
    /// Bytes read from the disk.
    pub bytes_read: u64,
    /// Bytes written to the disk.
    pub bytes_written: u64,
    /// `IRP_MJ_FLUSH_BUFFERS` requests the disk completed.
    pub flushes: u64,
    /// `ExAllocatePool2` calls the driver made.
    pub pool_allocs: u64,
    /// Heap allocations (and reallocations) the driver made.
    pub heap_allocs: u64,
    /// The most the driver's pool and heap bytes rose above their level at the mark.
    pub peak_pool_bytes: u64,
}

fn read(counter: &'static std::thread::LocalKey<Cell<u64>>) -> u64 {
    counter.try_with(Cell::get).unwrap_or(0)
}

/// Takes a mark: the counters now, and the peak reset to the live level.
#[must_use]
pub fn mark() -> Mark {
    let live = LIVE.try_with(Cell::get).unwrap_or(0);
    let _ = PEAK.try_with(|p| p.set(live));
    Mark {
        cost: Cost {
            disk_reads: read(&DISK_READS),
            disk_writes: read(&DISK_WRITES),
            bytes_read: read(&BYTES_READ),
            bytes_written: read(&BYTES_WRITTEN),
            flushes: read(&FLUSHES),
            pool_allocs: read(&POOL_ALLOCS),
            heap_allocs: read(&HEAP_ALLOCS),
            peak_pool_bytes: 0,
        },
        live,
    }
}

/// The cost since `mark`.
#[must_use]
pub fn since(mark: &Mark) -> Cost {
    let was = &mark.cost;
    let peak = PEAK.try_with(Cell::get).unwrap_or(0);
    Cost {
        disk_reads: read(&DISK_READS) - was.disk_reads,
        disk_writes: read(&DISK_WRITES) - was.disk_writes,
        bytes_read: read(&BYTES_READ) - was.bytes_read,
        bytes_written: read(&BYTES_WRITTEN) - was.bytes_written,
        flushes: read(&FLUSHES) - was.flushes,
        pool_allocs: read(&POOL_ALLOCS) - was.pool_allocs,
        heap_allocs: read(&HEAP_ALLOCS) - was.heap_allocs,
        peak_pool_bytes: u64::try_from(peak.saturating_sub(mark.live)).unwrap_or(0),
    }
}
