//! The bodies of cowfat's fuzz targets. Each target's input is a script, not an image: a
//! choice of base image (built once per process from the real formatter and image writer)
//! and a list of field edits, after which every checksum is fixed up, so mutations get past
//! the CRCs to the code that reads the fields. Then the code under test runs on the result.
//!
//! - [`fs_core`]: mount (read-only and writable), walk, read, write, overlay operations,
//!   fsck and fsck --repair on an edited cowfat volume.
//! - [`image`]: the image layer (VHD footer, dynamic header, BAT; MBR; GPT header and
//!   entries) through `format_tool::image::open`, then reads through the partition device.
//! - [`driver`]: the driver's FSCTL and information-class input decoding, on ntsim.
//!
//! A case that panics, overflows (overflow checks are on), allocates more than
//! `-malloc_limit_mb` or runs longer than `-timeout` is a finding (scripts/fuzz sets both).

pub mod driver;
pub mod fs_core;
pub mod image;

/// Field editing with CRC fix-ups, shared with fs-core's hostile-image tests.
#[path = "../../fs-core/tests/common/edit.rs"]
pub mod edit;

use libfuzzer_sys::arbitrary::Unstructured;

/// A value for a field of `width` bytes: an edge value, the old value nudged, or any value.
pub fn field_value(u: &mut Unstructured<'_>, old: u64, width: usize, edges: &[u64]) -> u64 {
    let mask = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (width * 8)) - 1
    };
    let v = match u.int_in_range(0u8..=5).unwrap_or(0) {
        0 | 1 => edges[u.choose_index(edges.len()).unwrap_or(0)],
        2 => old.wrapping_add(u.int_in_range(1u64..=16).unwrap_or(1)),
        3 => old.wrapping_sub(u.int_in_range(1u64..=16).unwrap_or(1)),
        4 => old ^ (1u64 << u.int_in_range(0u32..=63).unwrap_or(0)),
        _ => u.arbitrary::<u64>().unwrap_or(0),
    };
    v & mask
}

/// The per-case allocation cap: one allocation larger than this is a finding. libFuzzer's
/// `-malloc_limit_mb` does the same but only under a sanitizer; this works without one
/// (the safe-Rust targets run without ASan, several times faster).
pub const ALLOCATION_CAP: usize = 32 << 20;

struct CappedAllocator;

// SAFETY: every call is forwarded to the system allocator unchanged; the cap only aborts.
unsafe impl std::alloc::GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        check_cap(layout.size());
        // SAFETY: the caller's contract is GlobalAlloc::alloc's, passed on as it is.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        check_cap(layout.size());
        // SAFETY: as for alloc.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, that is from System, with `layout`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        check_cap(new);
        // SAFETY: as for dealloc; `new` is the caller's, unchanged.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

std::thread_local! {
    /// Set while the harness itself holds a whole base image (a VHDX's data block alone is
    /// 32 MiB): the cap is for the code under test, not for the harness's copies.
    static HARNESS_ALLOCATING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (harness work, never code under test) outside the allocation cap.
pub fn outside_the_cap<R>(f: impl FnOnce() -> R) -> R {
    let was = HARNESS_ALLOCATING.replace(true);
    let out = f();
    HARNESS_ALLOCATING.set(was);
    out
}

fn check_cap(size: usize) {
    if size > ALLOCATION_CAP && !HARNESS_ALLOCATING.get() {
        use std::io::Write;
        let _ = std::io::stderr().write_all(b"==cowfat-fuzz== allocation over the 32 MiB cap\n");
        std::process::abort();
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;
