//! Kernel image pieces (Windows target only).
//!
//! Without the `wdk` feature everything a kernel image needs beyond fs-driver is here. With it,
//! the WDK's libraries provide `__chkstk`/`_fltused`, wdk-alloc the allocator, and DriverEntry
//! announces itself with `wdk::println!` (DbgPrint); the panic handler stays ours.

use fs_driver::nt::{self, DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};

/// The image entry point (`/ENTRY:DriverEntry` in build.rs). Its address is the PE entry
/// point, and it is exported by name as well (rustc's cdylib export list).
///
/// # Safety
/// Called once by the I/O manager at PASSIVE_LEVEL with a valid driver object and registry
/// path.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver_object: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    #[cfg(feature = "wdk")]
    wdk::println!("cowfat: DriverEntry");
    // SAFETY: the I/O manager's contract for DriverEntry is passed on unchanged.
    unsafe { fs_driver::driver_entry(driver_object, registry_path) }
}

/// A panic is a bug; in the kernel it ends in a bug check naming cowfat and the source line.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line, column) = info
        .location()
        .map_or(("?", 0, 0), |l| (l.file(), l.line(), l.column()));
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
    unsafe {
        nt::KeBugCheckEx(
            crate::COWFAT_PANIC_BUGCHECK,
            file.as_ptr() as usize,
            file.len(),
            line as usize,
            column as usize,
        )
    };
    // KeBugCheckEx does not return; the declaration does not say so.
    #[allow(clippy::empty_loop)]
    loop {}
}

#[cfg(not(feature = "wdk"))]
mod runtime {
    //! Allocator and C runtime stand-ins of the plain (non-WDK) build.

    use core::alloc::{GlobalAlloc, Layout};
    use core::ffi::c_void;
    use core::ptr;

    use fs_driver::nt::{self, pool_flags};
    use fs_driver::strucsup::tags::TAG_RUST_HEAP;

    /// Rust heap (`alloc::` types) in non-paged pool under the tag `CfRs`.
    struct PoolAllocator;

    /// Pool blocks are 16-byte aligned on x64; larger alignments are served by over-allocating
    /// and keeping the block's real address just below the aligned pointer.
    const POOL_ALIGNMENT: usize = 16;

    // SAFETY: ExAllocatePool2/ExFreePoolWithTag are thread-safe and return suitably aligned,
    // non-overlapping blocks; over-aligned requests are aligned by hand below.
    unsafe impl GlobalAlloc for PoolAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let flags = pool_flags::POOL_FLAG_NON_PAGED | pool_flags::POOL_FLAG_UNINITIALIZED;
            // SAFETY: the caller's layout is valid.
            unsafe { allocate(layout, flags) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // ExAllocatePool2 zeroes unless told otherwise.
            // SAFETY: the caller's layout is valid.
            unsafe { allocate(layout, pool_flags::POOL_FLAG_NON_PAGED) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let block = if layout.align() <= POOL_ALIGNMENT {
                ptr
            } else {
                // SAFETY: `allocate` stored the block address in the word below `ptr`.
                unsafe { ptr.cast::<*mut u8>().wrapping_sub(1).read() }
            };
            // SAFETY: `block` came from ExAllocatePool2 with this tag.
            unsafe { nt::ExFreePoolWithTag(block.cast::<c_void>(), TAG_RUST_HEAP) };
        }
    }

    /// # Safety
    /// `layout` is a valid layout of non-zero size.
    unsafe fn allocate(layout: Layout, flags: u64) -> *mut u8 {
        if layout.align() <= POOL_ALIGNMENT {
            // SAFETY: no preconditions at IRQL <= DISPATCH_LEVEL for non-paged pool.
            return unsafe { nt::ExAllocatePool2(flags, layout.size(), TAG_RUST_HEAP) }.cast();
        }
        let Some(size) = layout.size().checked_add(layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: as above.
        let block = unsafe { nt::ExAllocatePool2(flags, size, TAG_RUST_HEAP) }.cast::<u8>();
        if block.is_null() {
            return block;
        }
        // At least one pointer's room below the aligned address, which stays inside the block.
        let offset = layout.align() - (block as usize % layout.align());
        let aligned = block.wrapping_add(offset);
        // SAFETY: `offset >= POOL_ALIGNMENT >= size_of::<*mut u8>()` so the word below `aligned`
        // is inside the block, and it is pointer-aligned.
        unsafe { aligned.cast::<*mut u8>().wrapping_sub(1).write(block) };
        aligned
    }

    #[global_allocator]
    static ALLOCATOR: PoolAllocator = PoolAllocator;

    // MSVC code generation references `_fltused` whenever floating point is used. Defined in
    // assembly rather than as a `#[no_mangle]` static, which a cdylib would also export.
    core::arch::global_asm!(
        ".pushsection .rdata,\"dr\"",
        ".globl _fltused",
        ".p2align 2",
        "_fltused:",
        ".long 0",
        ".popsection",
    );

    // `__chkstk`: the compiler calls it before a prologue's `sub rsp, rax` whenever a frame is
    // larger than a page, with the frame's size in RAX. It touches the new frame one page at a
    // time, from the top down, so that a frame running off the end of the stack faults on the
    // guard page below the stack (a clean stack-overflow bug check naming the culprit) instead
    // of jumping over it and writing into whatever memory lies below. Every register is kept
    // (RAX too: the caller subtracts it next); only the flags change, as the contract allows.
    // The stack report keeps frames under 2 KiB, so in cowfat.sys it should never be called;
    // it is there for the day a frame grows.
    core::arch::global_asm!(
        ".globl __chkstk",
        ".seh_proc __chkstk",
        "__chkstk:",
        "push r10",
        ".seh_pushreg r10",
        "push r11",
        ".seh_pushreg r11",
        ".seh_endprologue",
        // The caller's RSP before its `call`: above our two pushes and the return address.
        "lea r10, [rsp + 24]",
        // R11: the lowest byte of the frame being made (0 if RAX is absurd).
        "mov r11, r10",
        "sub r11, rax",
        "jae 2f",
        "xor r11, r11",
        "2:",
        // One probe per page, top down, while still above the frame's lowest byte.
        "sub r10, 0x1000",
        "cmp r10, r11",
        "jb 3f",
        "test qword ptr [r10], r10",
        "jmp 2b",
        // Then the lowest byte itself, on the last (partial) page.
        "3:",
        "test qword ptr [r11], r11",
        "pop r11",
        "pop r10",
        "ret",
        ".seh_endproc",
    );
}

/// The WDK build's allocator: windows-drivers-rs' pool allocator.
#[cfg(feature = "wdk")]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;
