//! Hand-written equivalents of the WDK's inline helpers and macros.
//!
//! wdm.h and ntifs.h define these as `FORCEINLINE` functions or macros, so ntoskrnl exports
//! none of them; importing one would make cowfat.sys fail to load (the image check forbids
//! `CcIsFileCached` by name). Each one is written once, here, from the documented behaviour
//! of the header version it names, and works on the `windows-sys` structure layouts.
//!
//! All are `unsafe fn`s over raw kernel pointers: the caller vouches for the pointers, the
//! same contract as the C originals.

use core::ptr;

use crate::nt::{
    self, FAST_MUTEX, FILE_OBJECT, FSRTL_ADVANCED_FCB_HEADER, FSRTL_COMMON_FCB_HEADER,
    IO_STACK_LOCATION, IRP, LIST_ENTRY, NTSTATUS, SL_PENDING_RETURNED,
};

/// `IoGetCurrentIrpStackLocation` (wdm.h): the stack location that belongs to this driver.
///
/// # Safety
/// `irp` points at a valid IRP that is currently owned by this driver.
#[must_use]
pub unsafe fn io_get_current_irp_stack_location(irp: *const IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees `irp` is a valid IRP.
    let tail = unsafe { &(*irp).Tail };
    // SAFETY: for an IRP in flight the I/O manager maintains the `Overlay` member.
    let overlay = unsafe { &tail.Overlay };
    // SAFETY: `CurrentStackLocation` (not `PacketType`) is the live member while the IRP is
    // being dispatched.
    unsafe { overlay.Anonymous2.Anonymous.CurrentStackLocation }
}

/// `IoGetNextIrpStackLocation` (wdm.h): the stack location of the driver below.
///
/// # Safety
/// As [`io_get_current_irp_stack_location`]; the IRP has a stack location below the current
/// one (`CurrentLocation > 1`).
#[must_use]
pub unsafe fn io_get_next_irp_stack_location(irp: *const IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller's contract.
    let current = unsafe { io_get_current_irp_stack_location(irp) };
    current.wrapping_sub(1)
}

/// `IoMarkIrpPending` (wdm.h): the dispatch routine will return `STATUS_PENDING`.
///
/// # Safety
/// As [`io_get_current_irp_stack_location`].
pub unsafe fn io_mark_irp_pending(irp: *const IRP) {
    // SAFETY: the caller's contract.
    let stack = unsafe { io_get_current_irp_stack_location(irp) };
    // The constant is a u8 flag in a u32 constant; the value (1) fits.
    let pending = SL_PENDING_RETURNED as u8;
    // SAFETY: `stack` is this driver's valid stack location.
    unsafe { (*stack).Control |= pending };
}

/// `IoCompleteRequest` (wdm.h: a macro for `IofCompleteRequest`), after setting the final
/// status and information the way every caller does.
///
/// # Safety
/// `irp` is a valid IRP owned by this driver; after the call it belongs to the I/O manager
/// and must not be touched again.
pub unsafe fn io_complete_request(irp: *mut IRP, status: NTSTATUS, information: usize, boost: i8) {
    // SAFETY: the caller's contract: the IRP is ours until completed.
    let io_status = unsafe { &mut (*irp).IoStatus };
    io_status.Anonymous.Status = status;
    io_status.Information = information;
    // SAFETY: as above; completion hands the IRP back.
    unsafe { nt::IofCompleteRequest(irp, boost) };
}

/// `PAGE_SIZE` on x64.
const PAGE_SIZE: usize = 4096;

/// `MmInitializeMdl` (wdm.h): makes `mdl` describe `length` bytes at `base` (its pages are
/// not described yet: `MmBuildMdlForNonPagedPool` follows).
///
/// # Safety
/// `mdl` was allocated large enough for a buffer of `length` bytes at any page offset, and no
/// request uses it now.
pub unsafe fn mm_initialize_mdl(mdl: *mut nt::MDL, base: *mut core::ffi::c_void, length: u32) {
    let offset = base.addr() % PAGE_SIZE;
    let pages = (offset + length as usize).div_ceil(PAGE_SIZE);
    let size = core::mem::size_of::<nt::MDL>() + pages * core::mem::size_of::<usize>();
    // SAFETY: the caller's contract.
    let mdl = unsafe { &mut *mdl };
    mdl.Next = ptr::null_mut();
    mdl.Size = i16::try_from(size).unwrap_or(i16::MAX);
    mdl.MdlFlags = 0;
    mdl.StartVa = base.cast::<u8>().wrapping_sub(offset).cast();
    // `offset` < PAGE_SIZE.
    mdl.ByteOffset = offset as u32;
    mdl.ByteCount = length;
}

/// `CcIsFileCached` (ntifs.h, a macro, not an export): has Cc a shared cache map for this
/// file object's stream? `SectionObjectPointer != NULL && SharedCacheMap != NULL`.
///
/// # Safety
/// `file_object` points at a valid file object.
#[must_use]
pub unsafe fn cc_is_file_cached(file_object: *const FILE_OBJECT) -> bool {
    // SAFETY: the caller guarantees a valid file object.
    let sop = unsafe { (*file_object).SectionObjectPointer };
    if sop.is_null() {
        return false;
    }
    // SAFETY: a non-NULL SectionObjectPointer of a valid file object points at the stream's
    // SECTION_OBJECT_POINTERS, which live as long as the FCB that owns them (NT-02).
    let shared_cache_map = unsafe { (*sop).SharedCacheMap };
    !shared_cache_map.is_null()
}

/// `InitializeListHead` (wdm.h): an empty circular list pointing at itself.
///
/// # Safety
/// `head` is valid for writes.
pub unsafe fn initialize_list_head(head: *mut LIST_ENTRY) {
    // SAFETY: the caller guarantees `head` is writable.
    unsafe {
        ptr::write(
            head,
            LIST_ENTRY {
                Flink: head,
                Blink: head,
            },
        )
    };
}

/// `ExInitializeFastMutex` (wdm.h): unowned, no contention, a synchronization event.
///
/// # Safety
/// `mutex` is valid for writes and lives in non-paged memory.
pub unsafe fn ex_initialize_fast_mutex(mutex: *mut FAST_MUTEX) {
    // FM_LOCK_BIT is 1, `Count` is the C `LONG`.
    let unlocked = nt::FM_LOCK_BIT as i32;
    // SAFETY: the caller guarantees `mutex` is writable.
    unsafe { (*mutex).Count = unlocked };
    // SAFETY: as above.
    unsafe { (*mutex).Owner = ptr::null_mut() };
    // SAFETY: as above.
    unsafe { (*mutex).Contention = 0 };
    // SAFETY: as above.
    let event = unsafe { &raw mut (*mutex).Event };
    // SAFETY: the event is embedded in the caller's non-paged mutex.
    unsafe { nt::KeInitializeEvent(event, nt::SynchronizationEvent, false) };
}

/// The `Version` nibble of an FCB header (`UCHAR Reserved : 4; UCHAR Version : 4;` in ntifs.h:
/// MSVC allocates bit-fields from the low bit, so `Version` is the high nibble).
#[must_use]
pub fn fcb_header_version(header: &FSRTL_COMMON_FCB_HEADER) -> u32 {
    u32::from(header._bitfield >> 4)
}

fn set_fcb_header_version(header: &mut FSRTL_COMMON_FCB_HEADER, version: u32) {
    // Versions are 0..=4; the mask keeps the value in its nibble.
    let nibble = (version & 0x0F) as u8;
    header._bitfield = (header._bitfield & 0x0F) | (nibble << 4);
}

/// `FsRtlSetupAdvancedFcbHeader` (ntifs.h, a macro over `FsRtlSetupAdvancedFcbHeaderEx2`).
///
/// Marks the header advanced (`Flags |= FSRTL_FLAG_ADVANCED_HEADER`), announces filter
/// context support (`Flags2 |= FSRTL_FLAG2_SUPPORTS_FILTER_CONTEXTS`), empties the filter
/// context list, zeroes the push lock and records the fast mutex and the file context support
/// pointer. `Version` is `FSRTL_FCB_HEADER_V2` (Windows 7 layout): the structure here has the
/// later V3/V4 fields too, but V3 would oblige us to allocate `AePushLock` with
/// `FsRtlAllocateAePushLock`, and the kernel only looks at fields its version number admits.
///
/// # Safety
/// `header` is the first member of a non-paged FCB; `fast_mutex` is initialised and lives as
/// long as the FCB; `file_context_support` is NULL or points at a pointer-sized field of the
/// FCB (per-file context list head for `FsRtlInsertPerFileContext`).
pub unsafe fn fsrtl_setup_advanced_fcb_header(
    header: *mut FSRTL_ADVANCED_FCB_HEADER,
    fast_mutex: *mut FAST_MUTEX,
    file_context_support: *mut *mut core::ffi::c_void,
) {
    // SAFETY: the caller guarantees `header` is valid and exclusively ours during setup.
    let header = unsafe { &mut *header };
    // Both flag constants are small u32 values of u8 flag fields.
    header.Base.Flags |= nt::FSRTL_FLAG_ADVANCED_HEADER as u8;
    header.Base.Flags2 |= nt::FSRTL_FLAG2_SUPPORTS_FILTER_CONTEXTS as u8;
    set_fcb_header_version(&mut header.Base, nt::FSRTL_FCB_HEADER_V2);
    // SAFETY: the list head is a field of the header, writable as established above.
    unsafe { initialize_list_head(&raw mut header.FilterContexts) };
    header.PushLock = 0;
    if !fast_mutex.is_null() {
        header.FastMutex = fast_mutex;
    }
    if !file_context_support.is_null() {
        header.FileContextSupportPointer = file_context_support;
    }
}

/// `IoSkipCurrentIrpStackLocation` (wdm.h): the next driver gets this driver's location as
/// it is (the IRP is passed on and this driver will not see it again).
///
/// # Safety
/// `irp` is a valid IRP owned by the caller, about to be passed to `IoCallDriver`.
pub unsafe fn io_skip_current_irp_stack_location(irp: *mut IRP) {
    // SAFETY: the caller's contract.
    let irp = unsafe { &mut *irp };
    irp.CurrentLocation += 1;
    // SAFETY: the Overlay member is the one in use for IRPs in flight.
    let overlay = unsafe { &mut irp.Tail.Overlay };
    // SAFETY: as above.
    let slot = unsafe { &mut overlay.Anonymous2.Anonymous.CurrentStackLocation };
    *slot = slot.wrapping_add(1);
}

/// `IoCopyCurrentIrpStackLocationToNext` (wdm.h): the next location gets this one's
/// parameters, without its completion routine and control flags.
///
/// # Safety
/// `irp` is a valid IRP owned by the caller, with a next stack location.
pub unsafe fn io_copy_current_irp_stack_location_to_next(irp: *mut IRP) {
    // SAFETY: the caller's contract.
    let current = unsafe { io_get_current_irp_stack_location(irp) };
    // SAFETY: as above.
    let next = unsafe { io_get_next_irp_stack_location(irp) };
    // SAFETY: the current location is inside the IRP.
    let copy = unsafe { current.read() };
    // SAFETY: so is the next; a plain copy of the structure.
    unsafe { next.write(copy) };
    // SAFETY: the next location, just written.
    let next = unsafe { &mut *next };
    next.CompletionRoutine = None;
    next.Context = core::ptr::null_mut();
    next.Control = 0;
}

/// `IO_COMPLETION_ROUTINE` as wdm.h declares it (windows-sys's `PIO_COMPLETION_ROUTINE`
/// leaves out the parameters).
pub type IoCompletionRoutine =
    unsafe extern "system" fn(*mut nt::DEVICE_OBJECT, *mut IRP, *mut core::ffi::c_void) -> NTSTATUS;

/// `IoSetCompletionRoutine` (wdm.h) on the next stack location, invoked on success, error
/// and cancel.
///
/// # Safety
/// `irp` is a valid IRP owned by the caller with its next location filled; `context` lives
/// until the routine ran.
pub unsafe fn io_set_completion_routine(
    irp: *mut IRP,
    routine: IoCompletionRoutine,
    context: *mut core::ffi::c_void,
) {
    // SAFETY: the caller's contract.
    let next = unsafe { io_get_next_irp_stack_location(irp) };
    // SAFETY: the next location, inside the IRP and not in use yet.
    let next = unsafe { &mut *next };
    // SAFETY: the same function pointer under the parameterless type windows-sys declares;
    // the I/O manager calls it with wdm.h's signature.
    next.CompletionRoutine = Some(unsafe {
        core::mem::transmute::<IoCompletionRoutine, unsafe extern "system" fn() -> NTSTATUS>(
            routine,
        )
    });
    next.Context = context;
    // The SL_INVOKE_* flags are the high bits of the UCHAR Control field.
    next.Control =
        (nt::SL_INVOKE_ON_SUCCESS | nt::SL_INVOKE_ON_ERROR | nt::SL_INVOKE_ON_CANCEL) as u8;
}

/// `FsRtlEnterFileSystem` (ntifs.h): disable normal kernel APCs before taking file system
/// resources, so a suspended thread cannot hold them.
pub fn fsrtl_enter_file_system() {
    // SAFETY: no preconditions beyond IRQL <= APC_LEVEL, true for every FSD entry point.
    unsafe { nt::KeEnterCriticalRegion() };
}

/// `FsRtlExitFileSystem` (ntifs.h): the matching exit of [`fsrtl_enter_file_system`].
pub fn fsrtl_exit_file_system() {
    // SAFETY: paired with a preceding `fsrtl_enter_file_system` on the same thread.
    unsafe { nt::KeLeaveCriticalRegion() };
}

/// `KeQueryInterruptTime` (wdm.h, an inline on x64): 100 ns units since boot, read from
/// `KUSER_SHARED_DATA.InterruptTime` at its fixed kernel address. For the trace ring only.
#[cfg(all(windows, target_arch = "x86_64"))]
#[must_use]
pub fn ke_query_interrupt_time() -> u64 {
    /// `KI_USER_SHARED_DATA + FIELD_OFFSET(KUSER_SHARED_DATA, InterruptTime)` (wdm.h).
    const INTERRUPT_TIME: usize = 0xFFFF_F780_0000_0008;
    // SAFETY: KUSER_SHARED_DATA is mapped at this address in every context on x64, and a
    // 64-bit aligned read of InterruptTime is what the WDK's inline does.
    unsafe { core::ptr::read_volatile(INTERRUPT_TIME as *const u64) }
}

/// `KeQueryInterruptTime` on the host: the simulator (ntsim, or the unit tests' kernel)
/// defines `cowfat_host_interrupt_time` from its own clock.
#[cfg(not(all(windows, target_arch = "x86_64")))]
#[must_use]
pub fn ke_query_interrupt_time() -> u64 {
    extern "system" {
        fn cowfat_host_interrupt_time() -> u64;
    }
    // SAFETY: the host simulator's clock read has no preconditions.
    unsafe { cowfat_host_interrupt_time() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nt::{SECTION_OBJECT_POINTERS, SL_PENDING_RETURNED};
    use core::mem::zeroed;

    #[test]
    fn cc_is_file_cached_needs_a_shared_cache_map() {
        // SAFETY: FILE_OBJECT is plain old data; all-zero is a valid (empty) value.
        let mut fo: FILE_OBJECT = unsafe { zeroed() };
        // SAFETY: `fo` is a valid file object.
        assert!(!unsafe { cc_is_file_cached(&fo) }, "no SOP");
        let mut sop = SECTION_OBJECT_POINTERS {
            DataSectionObject: ptr::null_mut(),
            SharedCacheMap: ptr::null_mut(),
            ImageSectionObject: ptr::null_mut(),
        };
        fo.SectionObjectPointer = &raw mut sop;
        // SAFETY: as above, SOP valid.
        let cached = unsafe { cc_is_file_cached(&fo) };
        assert!(!cached, "data section alone is not cached");
        let mut dummy = 0u8;
        sop.SharedCacheMap = (&raw mut dummy).cast();
        fo.SectionObjectPointer = &raw mut sop;
        // SAFETY: as above.
        assert!(unsafe { cc_is_file_cached(&fo) });
    }

    #[test]
    fn current_stack_location_and_pending_mark() {
        // SAFETY: IRP and IO_STACK_LOCATION are plain old data; all-zero is valid.
        let mut stack: [IO_STACK_LOCATION; 2] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut irp: IRP = unsafe { zeroed() };
        irp.Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation = &raw mut stack[1];
        // SAFETY: `irp` is valid and its current location points into `stack`.
        let current = unsafe { io_get_current_irp_stack_location(&irp) };
        assert_eq!(current, &raw mut stack[1]);
        // SAFETY: as above, and stack[0] exists below it.
        let next = unsafe { io_get_next_irp_stack_location(&irp) };
        assert_eq!(next, &raw mut stack[0]);
        // SAFETY: as above.
        unsafe { io_mark_irp_pending(&irp) };
        assert_eq!(u32::from(stack[1].Control), SL_PENDING_RETURNED);
    }

    #[test]
    fn advanced_header_setup_matches_ntifs() {
        // SAFETY: plain old data, all-zero valid.
        let mut header: FSRTL_ADVANCED_FCB_HEADER = unsafe { zeroed() };
        header.Base._bitfield = 0x05; // reserved bits must survive
                                      // SAFETY: `header` is valid and ours; NULL mutex/context pointers are allowed.
        unsafe {
            fsrtl_setup_advanced_fcb_header(&raw mut header, ptr::null_mut(), ptr::null_mut())
        };
        assert_eq!(u32::from(header.Base.Flags), nt::FSRTL_FLAG_ADVANCED_HEADER);
        assert_eq!(
            u32::from(header.Base.Flags2),
            nt::FSRTL_FLAG2_SUPPORTS_FILTER_CONTEXTS
        );
        assert_eq!(fcb_header_version(&header.Base), nt::FSRTL_FCB_HEADER_V2);
        assert_eq!(header.Base._bitfield & 0x0F, 0x05);
        let head = &raw mut header.FilterContexts;
        assert_eq!(header.FilterContexts.Flink, head);
        assert_eq!(header.FilterContexts.Blink, head);
    }
}
