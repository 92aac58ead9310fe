//! What the WinDbg extension (`windbg/cowfat.js`) reads, independent of Rust collection
//! internals: the trace ring of recent IRPs and callbacks in `CFAT_DATA`, and the
//! `LIST_ENTRY` link helpers for the chains `CFAT_DATA -> VCBs -> FCBs`.
//!
//! The ring is cheap enough to leave on: a record is one interlocked increment for its slot
//! and a handful of relaxed stores, no allocation, no lock. Every field is an atomic (a
//! reader on another processor, or the debugger, may see a record half-written; the
//! `sequence` field, stored last, tells which records are complete: slot `s` holds record
//! `sequence - 1`, and `sequence == 0` is an empty slot).

use core::ffi::c_void;
use core::sync::atomic::Ordering::{Relaxed, Release};
use core::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};

use crate::nt::{self, LIST_ENTRY, NTSTATUS};

/// Records the ring keeps (a power of two, so the slot is a mask of the index).
pub const TRACE_RING_CAPACITY: usize = 64;

/// What a trace record describes ([`TraceRecord::kind`]).
pub mod trace_kind {
    /// An IRP the FSD dispatched: `major`/`minor` of its stack location, final status.
    pub const IRP: u8 = 1;
    /// An FsRtl filter callback (`FS_FILTER_CALLBACK_DATA::Operation`, e.g. 0xFF for
    /// `IRP_MJ_ACQUIRE_FOR_SECTION_SYNCHRONIZATION`) in `major`, its sync type in `minor`.
    pub const FS_FILTER: u8 = 2;
    /// A Cache Manager callback: [`super::cc_callback`] in `minor`.
    pub const CC_CALLBACK: u8 = 3;
}

/// `minor` of a [`trace_kind::CC_CALLBACK`] record.
pub mod cc_callback {
    /// `AcquireForLazyWrite`.
    pub const ACQUIRE_FOR_LAZY_WRITE: u8 = 1;
    /// `ReleaseFromLazyWrite`.
    pub const RELEASE_FROM_LAZY_WRITE: u8 = 2;
    /// `AcquireForReadAhead`.
    pub const ACQUIRE_FOR_READ_AHEAD: u8 = 3;
    /// `ReleaseFromReadAhead`.
    pub const RELEASE_FROM_READ_AHEAD: u8 = 4;
}

/// One record of the ring.
#[repr(C)]
#[derive(Default)]
pub struct TraceRecord {
    /// Index of the record plus one, stored last; 0: the slot is empty.
    pub sequence: AtomicU32,
    /// [`trace_kind`].
    pub kind: AtomicU8,
    /// IRP major function (or filter operation).
    pub major: AtomicU8,
    /// IRP minor function (or callback id).
    pub minor: AtomicU8,
    /// The request's `FsContext` (FCB, DCB or VCB of a volume open; NULL if none).
    pub fcb: AtomicPtr<c_void>,
    /// Final status (IRPs) or what the callback returned.
    pub status: AtomicI32,
    /// `PsGetCurrentThreadId` of the thread that ran it.
    pub thread: AtomicUsize,
    /// Interrupt time (100 ns units since boot) when it ended.
    pub time: AtomicU64,
}

impl TraceRecord {
    /// An empty slot.
    #[must_use]
    pub const fn empty() -> Self {
        Self {
            sequence: AtomicU32::new(0),
            kind: AtomicU8::new(0),
            major: AtomicU8::new(0),
            minor: AtomicU8::new(0),
            fcb: AtomicPtr::new(core::ptr::null_mut()),
            status: AtomicI32::new(0),
            thread: AtomicUsize::new(0),
            time: AtomicU64::new(0),
        }
    }
}

/// The ring (`CFAT_DATA.trace`).
#[repr(C)]
pub struct TraceRing {
    /// Records written so far; the next one goes to slot `next % capacity`.
    pub next: AtomicU32,
    /// [`TRACE_RING_CAPACITY`], for the debugger.
    pub capacity: u32,
    /// The slots.
    pub records: [TraceRecord; TRACE_RING_CAPACITY],
}

impl TraceRing {
    /// An empty ring.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            next: AtomicU32::new(0),
            capacity: TRACE_RING_CAPACITY as u32,
            records: [const { TraceRecord::empty() }; TRACE_RING_CAPACITY],
        }
    }

    /// Empties the ring (DriverEntry: a fresh load starts a fresh trace).
    pub fn clear(&self) {
        for record in &self.records {
            record.sequence.store(0, Release);
        }
        self.next.store(0, Release);
    }

    /// Appends a record. Out of line: the dispatch paths' stack budget stays as it was.
    #[inline(never)]
    pub fn record(&self, kind: u8, major: u8, minor: u8, context: *const c_void, status: NTSTATUS) {
        let index = self.next.fetch_add(1, Relaxed);
        let slot = &self.records[index as usize % TRACE_RING_CAPACITY];
        slot.sequence.store(0, Relaxed);
        slot.kind.store(kind, Relaxed);
        slot.major.store(major, Relaxed);
        slot.minor.store(minor, Relaxed);
        slot.fcb.store(context.cast_mut(), Relaxed);
        slot.status.store(status, Relaxed);
        // SAFETY: no preconditions (any IRQL).
        let thread = unsafe { nt::PsGetCurrentThreadId() };
        slot.thread.store(thread as usize, Relaxed);
        slot.time
            .store(crate::wdk_inline::ke_query_interrupt_time(), Relaxed);
        slot.sequence.store(index.wrapping_add(1).max(1), Release);
    }
}

impl Default for TraceRing {
    fn default() -> Self {
        Self::new()
    }
}

/// `InsertTailList` (wdm.h) for a chain the debugger walks.
///
/// # Safety
/// `head` is an initialised list head and `entry` a valid entry on no list; the caller holds
/// the lock that protects the chain.
pub unsafe fn insert_tail_list(head: *mut LIST_ENTRY, entry: *mut LIST_ENTRY) {
    // SAFETY: the caller's contract: both are valid entries of a chain the caller holds the
    // lock of.
    let last = unsafe { (*head).Blink };
    // SAFETY: as above.
    unsafe { (*entry).Flink = head };
    // SAFETY: as above.
    unsafe { (*entry).Blink = last };
    // SAFETY: as above; `last` is the chain's tail (or the head itself).
    unsafe { (*last).Flink = entry };
    // SAFETY: as above.
    unsafe { (*head).Blink = entry };
}

/// `RemoveEntryList` (wdm.h); the entry is left pointing at itself (on no list).
///
/// # Safety
/// `entry` is on a list whose lock the caller holds, or points at itself.
pub unsafe fn remove_entry_list(entry: *mut LIST_ENTRY) {
    // SAFETY: the caller's contract: the entry and its neighbours are valid entries of the
    // same chain, whose lock the caller holds.
    let next = unsafe { (*entry).Flink };
    // SAFETY: as above.
    let previous = unsafe { (*entry).Blink };
    if next.is_null() || previous.is_null() {
        return;
    }
    // SAFETY: as above.
    unsafe { (*previous).Flink = next };
    // SAFETY: as above.
    unsafe { (*next).Blink = previous };
    // SAFETY: the entry is off the chain and ours to reset.
    unsafe { crate::wdk_inline::initialize_list_head(entry) };
}

/// A volume's overlay figures as fs-core last reported them, for `!cfvcbs`: refreshed at the
/// end of every `Vcb::with_volume` (every fs-core call the driver makes), a few relaxed
/// stores. `refreshes == 0`: not yet filled.
#[repr(C)]
#[derive(Default)]
pub struct OverlayAnchor {
    /// Times refreshed.
    pub refreshes: AtomicU32,
    /// 1: sealed (base frozen, changes in the overlay).
    pub sealed: AtomicU32,
    /// Clusters of the volume.
    pub total_clusters: AtomicU64,
    /// Clusters free in both trees.
    pub free_clusters: AtomicU64,
    /// Live clusters the base does not use (the overlay's size).
    pub overlay_clusters: AtomicU64,
    /// Base clusters the live tree no longer uses.
    pub base_only_clusters: AtomicU64,
    /// Clusters reserved ahead of paging writes (NT-15).
    pub reserved_clusters: AtomicU64,
}

impl OverlayAnchor {
    /// Copies fs-core's figures.
    pub fn refresh(&self, summary: &fs_core::OverlaySummary) {
        self.sealed.store(u32::from(summary.sealed), Relaxed);
        self.total_clusters.store(summary.total_clusters, Relaxed);
        self.free_clusters.store(summary.free_clusters, Relaxed);
        self.overlay_clusters
            .store(summary.overlay_clusters, Relaxed);
        self.base_only_clusters
            .store(summary.base_only_clusters, Relaxed);
        self.reserved_clusters
            .store(summary.reserved_clusters, Relaxed);
        self.refreshes.fetch_add(1, Release);
    }
}

/// A file's place in the overlay as the driver last computed it (`FSCTL_COWFAT_QUERY_OVERLAY`),
/// for `!cfoverlay`; `queries == 0`: never asked since the FCB was built.
#[repr(C)]
#[derive(Default)]
pub struct FileOverlayAnchor {
    /// Times filled.
    pub queries: AtomicU32,
    /// `cowfat_fsctl::OVERLAY_*` flags (in base, modified, sealed).
    pub flags: AtomicU32,
    /// Clusters of the file still shared with the base.
    pub base_clusters: AtomicU64,
    /// Clusters of the file in the overlay.
    pub overlay_clusters: AtomicU64,
    /// Overlay clusters reserved for the file.
    pub reserved_clusters: AtomicU64,
    /// Runs filled in `runs`.
    pub run_count: AtomicU32,
    /// The file's first runs, split at base/overlay boundaries.
    pub runs: [RunAnchor; OVERLAY_RUNS],
}

/// Runs a [`FileOverlayAnchor`] keeps (the first ones of the file).
pub const OVERLAY_RUNS: usize = 8;

/// One run of a file's clusters, all base or all overlay.
#[repr(C)]
#[derive(Default)]
pub struct RunAnchor {
    /// First virtual cluster of the run.
    pub vcn: AtomicU64,
    /// Its first logical cluster.
    pub lcn: AtomicU32,
    /// Clusters in the run.
    pub len: AtomicU32,
    /// 1: base clusters; 0: overlay clusters.
    pub base: AtomicU32,
}

impl FileOverlayAnchor {
    /// Records the first runs of the answer.
    pub fn record_runs(&self, runs: &[fs_core::OverlayRun]) {
        let n = runs.len().min(OVERLAY_RUNS);
        for (slot, run) in self.runs.iter().zip(&runs[..n]) {
            slot.vcn.store(run.vcn, Relaxed);
            slot.lcn.store(run.lcn, Relaxed);
            slot.len.store(run.len, Relaxed);
            slot.base.store(u32::from(run.base), Relaxed);
        }
        self.run_count.store(n as u32, Relaxed);
    }

    /// Records one answer.
    pub fn record(&self, flags: u32, base: u64, overlay: u64, reserved: u64) {
        self.flags.store(flags, Relaxed);
        self.base_clusters.store(base, Relaxed);
        self.overlay_clusters.store(overlay, Relaxed);
        self.reserved_clusters.store(reserved, Relaxed);
        self.queries.fetch_add(1, Release);
    }
}

/// The file objects Mm's control areas of a stream reference, as far as the driver saw them
/// created (seed 003: `!ca`'s "File Object"): the file object of the request that created
/// the data section (the first `CcInitializeCacheMap`, or the section synchronisation callback
/// of the first `NtCreateSection`) or the image section, taken while the SOP's field was NULL.
#[repr(C)]
#[derive(Default)]
pub struct SectionCreators {
    /// File object behind `DataSectionObject`'s control area.
    pub data: AtomicPtr<c_void>,
    /// File object behind `ImageSectionObject`'s control area.
    pub image: AtomicPtr<c_void>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_numbers_records() {
        let ring = TraceRing::new();
        for i in 0..(TRACE_RING_CAPACITY as u32 + 3) {
            ring.record(trace_kind::IRP, 2, 0, core::ptr::null(), i as i32);
        }
        // Slot 0 was overwritten by record 64 (sequence 65), slot 3 still holds record 3.
        assert_eq!(ring.records[0].sequence.load(Relaxed), 65);
        assert_eq!(ring.records[0].status.load(Relaxed), 64);
        assert_eq!(ring.records[3].sequence.load(Relaxed), 4);
        ring.clear();
        assert_eq!(ring.next.load(Relaxed), 0);
        assert_eq!(ring.records[0].sequence.load(Relaxed), 0);
    }

    #[test]
    fn list_insert_and_remove_keep_the_chain_circular() {
        let mut head = LIST_ENTRY::default();
        let mut a = LIST_ENTRY::default();
        let mut b = LIST_ENTRY::default();
        // SAFETY: local entries, one thread.
        unsafe { crate::wdk_inline::initialize_list_head(&raw mut head) };
        // SAFETY: as above.
        unsafe { insert_tail_list(&raw mut head, &raw mut a) };
        // SAFETY: as above.
        unsafe { insert_tail_list(&raw mut head, &raw mut b) };
        assert_eq!(head.Flink, &raw mut a);
        assert_eq!(a.Flink, &raw mut b);
        assert_eq!(b.Flink, &raw mut head);
        assert_eq!(head.Blink, &raw mut b);
        // SAFETY: `a` is on the list.
        unsafe { remove_entry_list(&raw mut a) };
        assert_eq!(head.Flink, &raw mut b);
        assert_eq!(b.Blink, &raw mut head);
        let a_ptr = &raw mut a;
        assert_eq!(a.Flink, a_ptr);
    }
}
