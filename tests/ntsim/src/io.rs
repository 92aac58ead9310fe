//! The I/O manager: device objects, file system registration, IRPs (build, dispatch,
//! complete), buffered/direct buffers, share access, top-level IRP, file objects and their
//! references (an object's last reference sends IRP_MJ_CLOSE).
//!
//! Completion runs the completion routines up the stack as `IopfCompleteRequest` does (each
//! location's routine, called with the device of the location above, once the stack has been
//! popped to it; `STATUS_MORE_PROCESSING_REQUIRED` stops completion and hands the IRP back).
//! A threaded IRP is then finished by a special kernel APC to its thread ([`crate::irql`]).
//! `IoAllocateIrp` IRPs are the driver's: freed with `IoFreeIrp`, counted as leaks otherwise.
//!
//! Stricter than Windows: an IRP completed twice, a dispatch that returns without completing
//! and without pending, an IRP left pending (nothing else would ever complete it here), and an
//! `IoAllocateIrp` IRP whose completion no routine stopped (it has no thread to go back to)
//! are bug checks.
//! Object references (`ObfReferenceObject`) on devices are counted and must be gone by the
//! end of a test.
//!
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_void;
use std::ptr;

use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IO_STACK_LOCATION, IO_STACK_LOCATION_0,
    IO_STACK_LOCATION_0_16, IO_STACK_LOCATION_0_3, IRP, KEVENT, MDL, VPB,
};
use windows_sys::Wdk::Storage::FileSystem::DO_LOW_PRIORITY_FILESYSTEM;
use windows_sys::Wdk::System::SystemServices::SHARE_ACCESS;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_PENDING, STATUS_SHARING_VIOLATION, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use crate::ex::{bugcheck, set_event};
use crate::kernel::{self, DeviceRecord, FoRecord, IrpRecord};
use crate::trace::{Event, FoId};

/// Stack locations every IRP block has room for.
const MAX_STACK: usize = 8;
/// `DO_DEVICE_INITIALIZING`.
const DO_DEVICE_INITIALIZING: u32 = 0x80;

/// `MDL_MAPPED_TO_SYSTEM_VA`.
const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x1;
/// `IRP_MJ_DEVICE_CONTROL`, `IRP_MJ_INTERNAL_DEVICE_CONTROL`, `IRP_MJ_CLOSE`.
const IRP_MJ_DEVICE_CONTROL: u8 = 0x0e;
const IRP_MJ_INTERNAL_DEVICE_CONTROL: u8 = 0x0f;
const IRP_MJ_CLOSE: u8 = 0x02;
const IRP_MJ_READ: u8 = 0x03;
const IRP_MJ_WRITE: u8 = 0x04;
/// `IRP_PAGING_IO`.
const IRP_PAGING_IO: u32 = 0x2;
/// `SL_INVOKE_ON_SUCCESS`, `SL_INVOKE_ON_ERROR`, `SL_INVOKE_ON_CANCEL`, `SL_PENDING_RETURNED`.
const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
const SL_INVOKE_ON_ERROR: u8 = 0x80;
const SL_INVOKE_ON_CANCEL: u8 = 0x20;
const SL_PENDING_RETURNED: u8 = 0x01;
/// `STATUS_MORE_PROCESSING_REQUIRED`.
const STATUS_MORE_PROCESSING_REQUIRED: NTSTATUS = 0xC000_0016_u32 as i32;

/// What `IO_STACK_LOCATION::CompletionRoutine` really holds (windows-sys declares it without
/// parameters).
type CompletionRoutine =
    unsafe extern "system" fn(*const DEVICE_OBJECT, *const IRP, *const c_void) -> NTSTATUS;

/// An IRP and its stack locations in one allocation.
#[repr(C)]
struct IrpBlock {
    irp: IRP,
    stack: [IO_STACK_LOCATION; MAX_STACK],
}

// ---- devices and file systems ----------------------------------------------------------------

#[no_mangle]
pub unsafe extern "system" fn IoCreateDevice(
    driverobject: *const DRIVER_OBJECT,
    deviceextensionsize: u32,
    _devicename: *const UNICODE_STRING,
    devicetype: u32,
    devicecharacteristics: u32,
    _exclusive: bool,
    deviceobject: *mut *mut DEVICE_OBJECT,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    let driver = driverobject.cast_mut();
    let mut extension = (deviceextensionsize > 0)
        .then(|| vec![0u128; (deviceextensionsize as usize).div_ceil(16)].into_boxed_slice());
    let device = Box::into_raw(Box::new(DEVICE_OBJECT {
        Type: 3,
        Size: u16::try_from(std::mem::size_of::<DEVICE_OBJECT>()).unwrap_or(u16::MAX),
        ReferenceCount: 0,
        DriverObject: driver,
        Flags: DO_DEVICE_INITIALIZING,
        Characteristics: devicecharacteristics,
        DeviceType: devicetype,
        StackSize: 1,
        DeviceExtension: extension
            .as_mut()
            .map_or(ptr::null_mut(), |e| e.as_mut_ptr().cast()),
        ..Default::default()
    }));
    // SAFETY: a live driver object (the caller's contract).
    let driver_ref = unsafe { &mut *driver };
    // SAFETY: just created, ours.
    unsafe { (*device).NextDevice = driver_ref.DeviceObject };
    driver_ref.DeviceObject = device;
    kernel::with(|k| {
        let record = DeviceRecord {
            driver,
            extension,
            deleted: false,
        };
        k.devices.insert(device, record)
    });
    // SAFETY: the caller's out pointer.
    unsafe { deviceobject.write(device) };
    STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn IoDeleteDevice(deviceobject: *const DEVICE_OBJECT) {
    let _kernel = crate::heap::KernelRegion::enter();
    let device = deviceobject.cast_mut();
    let (driver, extension) = kernel::with(|k| match k.devices.get_mut(&device) {
        Some(r) if !r.deleted => {
            r.deleted = true;
            let extension = r
                .extension
                .as_ref()
                .map(|e| (e.as_ptr() as usize, std::mem::size_of_val(&**e)));
            (r.driver, extension)
        }
        _ => bugcheck("IoDeleteDevice of a device that is not live"),
    });
    // The extension goes with the device: nothing the kernel still uses may live in it.
    if let Some((start, len)) = extension {
        crate::worker::release_range(start, len, "a device extension");
        // A volume device's extension may hold an FCB header (the VCB of a volume open, NT-31).
        crate::fsrtl::check_no_contexts_in(start, len);
    }
    // SAFETY: the driver object outlives its devices; unlink `device` from its list.
    let mut link = unsafe { &raw mut (*driver).DeviceObject };
    // SAFETY: walking the driver's live device list.
    while !unsafe { *link }.is_null() {
        // SAFETY: as above.
        let current = unsafe { *link };
        if current == device {
            // SAFETY: `device` is live until reaped.
            let next = unsafe { (*device).NextDevice };
            // SAFETY: a link of the live list.
            unsafe { *link = next };
            break;
        }
        // SAFETY: as above.
        link = unsafe { &raw mut (*current).NextDevice };
    }
}

/// Frees devices deleted since the last reap (Windows frees a device when its last reference
/// goes; the model waits until no dispatch can still be using it).
pub(crate) fn reap_devices() {
    let dead: Vec<(*mut DEVICE_OBJECT, DeviceRecord)> = kernel::with(|k| {
        let keys: Vec<_> = k
            .devices
            .iter()
            .filter(|(_, r)| r.deleted)
            .map(|(d, _)| *d)
            .collect();
        // A queued or running work item holds a reference on its device.
        let keys: Vec<_> = keys
            .into_iter()
            .filter(|d| {
                !k.background
                    .work_items
                    .values()
                    .any(|w| w.device == *d && (w.queued.is_some() || w.running))
            })
            .collect();
        keys.into_iter()
            .filter_map(|d| k.devices.remove(&d).map(|r| (d, r)))
            .collect()
    });
    for (device, _record) in dead {
        // SAFETY: created by Box::into_raw in IoCreateDevice, deleted, freed once.
        drop(unsafe { Box::from_raw(device) });
    }
}

/// Live (not deleted) devices of `driver`.
#[must_use]
pub(crate) fn live_devices_of(driver: *mut DRIVER_OBJECT) -> usize {
    kernel::with(|k| {
        k.devices
            .values()
            .filter(|r| r.driver == driver && !r.deleted)
            .count()
    })
}

#[no_mangle]
pub unsafe extern "system" fn IoRegisterFileSystem(deviceobject: *const DEVICE_OBJECT) {
    let _kernel = crate::heap::KernelRegion::enter();
    // The I/O manager keeps one queue per file system type and offers a new volume to each in
    // order: a normal file system goes in at the head, one flagged DO_LOW_PRIORITY_FILESYSTEM
    // at the tail, behind everything already there.
    // SAFETY: the caller passes its live control device.
    let flags = unsafe { (*deviceobject).Flags };
    let device = deviceobject.cast_mut();
    kernel::with(|k| {
        if flags & DO_LOW_PRIORITY_FILESYSTEM != 0 {
            k.file_systems.push(device);
        } else {
            k.file_systems.insert(0, device);
        }
    });
}

/// The `Flags` of the registered file systems' control devices, in the order a new volume is
/// offered to them.
#[must_use]
pub fn registered_file_system_flags() -> Vec<u32> {
    let devices = kernel::with(|k| k.file_systems.clone());
    // SAFETY: registered control devices stay alive until they unregister.
    devices.iter().map(|&d| unsafe { (*d).Flags }).collect()
}

#[no_mangle]
pub unsafe extern "system" fn IoUnregisterFileSystem(deviceobject: *const DEVICE_OBJECT) {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| k.file_systems.retain(|d| *d != deviceobject.cast_mut()));
}

#[no_mangle]
pub extern "system" fn IoGetTopLevelIrp() -> *mut IRP {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| k.top_level_irp)
}

#[no_mangle]
pub unsafe extern "system" fn IoSetTopLevelIrp(irp: *const IRP) {
    let _kernel = crate::heap::KernelRegion::enter();
    kernel::with(|k| k.top_level_irp = irp.cast_mut());
}

// ---- IRPs -------------------------------------------------------------------------------------

/// Allocates an IRP with `stack_size` locations; the first driver's is the "next" one.
pub(crate) fn allocate_irp(stack_size: i8, threaded: bool) -> *mut IRP {
    let size = usize::try_from(stack_size).unwrap_or(0);
    if size == 0 || size >= MAX_STACK {
        bugcheck("IRP stack size out of the model's range");
    }
    let block = Box::into_raw(Box::new(IrpBlock {
        irp: IRP::default(),
        stack: [IO_STACK_LOCATION::default(); MAX_STACK],
    }));
    // SAFETY: a fresh block; only a field address is taken.
    let stack = unsafe { &raw mut (*block).stack }.cast::<IO_STACK_LOCATION>();
    // SAFETY: a fresh block, ours until it is sent.
    let irp = unsafe { &mut (*block).irp };
    irp.Type = 6;
    irp.StackCount = stack_size;
    irp.CurrentLocation = stack_size + 1;
    // `size < MAX_STACK`: the one-past location is still inside the array.
    irp.Tail.Overlay.Anonymous2.Anonymous.CurrentStackLocation = stack.wrapping_add(size);
    let irp: *mut IRP = irp;
    kernel::with(|k| {
        let record = IrpRecord {
            threaded,
            thread: k.thread,
            ..IrpRecord::default()
        };
        k.irps.insert(irp, record)
    });
    irp
}

/// Puts a fresh or reused IRP back in its just-allocated state (`IoInitializeIrp`).
///
/// # Safety
/// `irp` is an IrpBlock's IRP from [`allocate_irp`] that no driver owns right now.
unsafe fn reset_irp(irp: *mut IRP) {
    // SAFETY: the caller's contract.
    let count = unsafe { (*irp).StackCount };
    let block = irp.cast::<IrpBlock>();
    // SAFETY: as above: the whole block is ours.
    unsafe { (*block).irp = IRP::default() };
    // SAFETY: as above.
    unsafe { (*block).stack = [IO_STACK_LOCATION::default(); MAX_STACK] };
    // SAFETY: a field address of the live block.
    let stack = unsafe { &raw mut (*block).stack }.cast::<IO_STACK_LOCATION>();
    // SAFETY: as above.
    let irp_ref = unsafe { &mut (*block).irp };
    irp_ref.Type = 6;
    irp_ref.StackCount = count;
    irp_ref.CurrentLocation = count + 1;
    irp_ref
        .Tail
        .Overlay
        .Anonymous2
        .Anonymous
        .CurrentStackLocation = stack.wrapping_add(usize::try_from(count).unwrap_or(0));
}

/// The IRP's current stack location.
///
/// # Safety
/// `irp` is live.
pub(crate) unsafe fn current_stack(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller's contract; the Overlay member is the one in use for IRPs in flight.
    let slot = unsafe {
        &raw const (*irp)
            .Tail
            .Overlay
            .Anonymous2
            .Anonymous
            .CurrentStackLocation
    };
    // SAFETY: as above.
    unsafe { *slot }
}

/// The stack location the next driver will get (`IoGetNextIrpStackLocation`).
///
/// # Safety
/// `irp` is live and has a location below the current one.
pub(crate) unsafe fn next_stack(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller's contract.
    unsafe { current_stack(irp) }.wrapping_sub(1)
}

/// Fills the next stack location of a fresh IRP.
///
/// # Safety
/// `irp` is live, fresh (not yet sent) and has a next location.
pub(crate) unsafe fn set_next_stack(irp: *mut IRP, location: IO_STACK_LOCATION) {
    // SAFETY: the caller's contract.
    let next = unsafe { next_stack(irp) };
    // SAFETY: inside the IRP's block, not used by anyone yet.
    unsafe { next.write(location) };
}

/// A stack location for `major` on `fo` with these parameters.
#[must_use]
pub(crate) fn location(
    major: u8,
    minor: u8,
    fo: *mut FILE_OBJECT,
    parameters: IO_STACK_LOCATION_0,
) -> IO_STACK_LOCATION {
    IO_STACK_LOCATION {
        MajorFunction: major,
        MinorFunction: minor,
        Parameters: parameters,
        FileObject: fo,
        ..Default::default()
    }
}

/// Read/write parameters.
#[must_use]
pub(crate) fn read_write_parameters(length: u32, offset: i64) -> IO_STACK_LOCATION_0 {
    let mut parameters = IO_STACK_LOCATION_0::default();
    parameters.Read = IO_STACK_LOCATION_0_3 {
        Length: length,
        Key: 0,
        ByteOffset: offset,
    };
    parameters
}

/// Frees an IRP and its MDL.
pub(crate) fn free_irp(irp: *mut IRP) {
    let Some(record) = kernel::with(|k| k.irps.remove(&irp)) else {
        bugcheck("freeing an IRP the model does not know")
    };
    if let Some(mdl) = record.mdl {
        // SAFETY: allocated by `attach_mdl`, freed once with its IRP.
        drop(unsafe { Box::from_raw(mdl) });
    }
    // SAFETY: `irp` is the first field of an IrpBlock from `allocate_irp`, freed once.
    drop(unsafe { Box::from_raw(irp.cast::<IrpBlock>()) });
}

/// Attaches an MDL describing `len` bytes at `buffer`, mapped to system space (the model's
/// buffers are always resident and addressable).
pub(crate) fn attach_mdl(irp: *mut IRP, buffer: *mut u8, len: u32) {
    let mdl = Box::into_raw(Box::new(MDL {
        Size: i16::try_from(std::mem::size_of::<MDL>()).unwrap_or(i16::MAX),
        MdlFlags: MDL_MAPPED_TO_SYSTEM_VA,
        MappedSystemVa: buffer.cast(),
        StartVa: buffer.cast(),
        ByteCount: len,
        ..Default::default()
    }));
    // SAFETY: a live IRP the model built.
    unsafe { (*irp).MdlAddress = mdl };
    kernel::with(|k| {
        if let Some(r) = k.irps.get_mut(&irp) {
            r.mdl = Some(mdl);
        }
    });
}

/// Is `device` the disk (not a file system device)?
fn is_disk(device: *mut DEVICE_OBJECT) -> bool {
    crate::disk::is_disk_device(device)
}

/// `IoCallDriver`: moves to the next stack location and calls the device's driver.
///
/// # Safety
/// `irp` is live with a next stack location filled in; `device` is live.
pub(crate) unsafe fn call_driver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    crate::sched::switch_point("IofCallDriver");
    // SAFETY: the caller's contract.
    let stack = unsafe { next_stack(irp) };
    // SAFETY: the caller's contract: the IRP is being handed down, nobody else touches it.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.CurrentLocation -= 1;
    irp_ref
        .Tail
        .Overlay
        .Anonymous2
        .Anonymous
        .CurrentStackLocation = stack;
    let flags = irp_ref.Flags;
    crate::worker::check_below_dispatch("IoCallDriver");
    // SAFETY: the location now current, inside the IRP's block.
    let location = unsafe { &mut *stack };
    location.DeviceObject = device;
    let (major, minor, fo) = (
        location.MajorFunction,
        location.MinorFunction,
        location.FileObject,
    );
    let (offset, length) = if major == IRP_MJ_READ || major == IRP_MJ_WRITE {
        // SAFETY: Read/Write is the live member for these majors.
        let p = unsafe { location.Parameters.Read };
        (p.ByteOffset, p.Length)
    } else {
        (0, 0)
    };
    // SAFETY: a live device of a live driver.
    let driver = unsafe { (*device).DriverObject };
    // SAFETY: as above.
    let routine = unsafe { (*driver).MajorFunction[usize::from(major)] };
    let Some(routine) = routine else {
        bugcheck("IRP to a driver with no routine for its major function")
    };
    let paging = !is_disk(device) && flags & IRP_PAGING_IO != 0;
    if !is_disk(device) {
        crate::irql::note_dispatch(major, flags);
        kernel::with(|k| {
            let file = k.fo_id(fo);
            k.trace.push(Event::Irp {
                major,
                minor,
                file,
                flags,
                offset,
                length,
            });
            k.paging_depth += u32::from(paging);
        });
    }
    crate::stack::note_driver_call();
    let before = (!is_disk(device)).then(ThreadState::now);
    let entry = (!is_disk(device)).then(crate::stack::DriverEntry::enter);
    // SAFETY: the driver's dispatch routine with its device and IRP.
    let status = unsafe { routine(device, irp) };
    drop(entry);
    if paging {
        kernel::with(|k| k.paging_depth -= 1);
    }
    if let Some(before) = before {
        before.check_after_dispatch(major);
    }
    status
}

/// Calls a fast I/O routine of the driver as a dispatch is called: under the stack budget
/// (NT-23) and with the same checks afterwards (NT-24), `what` naming it in a bug check.
pub(crate) fn call_fast_io<R>(what: &str, f: impl FnOnce() -> R) -> R {
    crate::stack::note_driver_call();
    let before = ThreadState::now();
    let entry = crate::stack::DriverEntry::enter();
    let result = f();
    drop(entry);
    before.check_after(what);
    result
}

/// What a dispatch routine must leave as it found it on its thread (NT-24): the critical
/// region and top-level IRP balanced, no ERESOURCE held beyond what the thread held before
/// (Cc's lazy writer holds the FCB's across its paging write), no SEH frame left open.
struct ThreadState {
    critical_region: i32,
    top_level_irp: *mut IRP,
    held: usize,
    seh_depth: u32,
}

/// ERESOURCEs the model's current thread holds (shared or exclusive).
fn resources_held(k: &kernel::Kernel) -> usize {
    let thread = k.thread;
    k.resources
        .values()
        .filter(|r| r.exclusive.is_some_and(|(t, _)| t == thread) || r.shared.contains_key(&thread))
        .count()
}

impl ThreadState {
    fn now() -> Self {
        kernel::with(|k| Self {
            critical_region: k.critical_region,
            top_level_irp: k.top_level_irp,
            held: resources_held(k),
            seh_depth: k.seh_depth,
        })
    }

    fn check_after_dispatch(&self, major: u8) {
        self.check_after(&format!("IRP major {major:#x}"));
    }

    fn check_after(&self, what: &str) {
        let problem = kernel::with(|k| {
            if k.critical_region != self.critical_region {
                return Some("APC_INDEX_MISMATCH: critical region not balanced");
            }
            if k.top_level_irp != self.top_level_irp {
                return Some("the top-level IRP was not restored");
            }
            if k.seh_depth != self.seh_depth {
                return Some("an SEH frame was left open");
            }
            (resources_held(k) > self.held)
                .then_some("an ERESOURCE is still held after the request")
        });
        if let Some(problem) = problem {
            bugcheck(&format!("after {what}: {problem}"));
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn IofCallDriver(
    deviceobject: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller built the IRP's next location for this device.
    unsafe { call_driver(deviceobject.cast_mut(), irp) }
}

#[no_mangle]
pub unsafe extern "system" fn IofCompleteRequest(irp: *const IRP, _priorityboost: i8) {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::sched::switch_point("IofCompleteRequest");
    let irp = irp.cast_mut();
    // SAFETY: a live IRP owned by the completing driver.
    let irp_ref = unsafe { &*irp };
    // SAFETY: the status member of the status block.
    let status = unsafe { irp_ref.IoStatus.Anonymous.Status };
    let information = irp_ref.IoStatus.Information;
    // SAFETY: as above.
    let stack = unsafe { current_stack(irp) };
    // SAFETY: the completing driver's location.
    let location = unsafe { &*stack };
    let (major, fo, device) = (
        location.MajorFunction,
        location.FileObject,
        location.DeviceObject,
    );
    let (threaded, driver_allocated, thread) = kernel::with(|k| {
        let Some(record) = k.irps.get_mut(&irp) else {
            bugcheck("IofCompleteRequest of an IRP the model did not build")
        };
        if record.completed.is_some() {
            bugcheck("IRP completed twice");
        }
        record.completed = Some((status, information));
        (record.threaded, record.driver_allocated, record.thread)
    });
    if !is_disk(device) {
        kernel::with(|k| {
            let file = k.fo_id(fo);
            k.trace.push(Event::Completed {
                major,
                file,
                status,
                information,
            });
        });
    }
    // SAFETY: the live IRP being completed.
    if unsafe { run_completion_routines(irp) } {
        // A routine took the IRP back: it may complete it again later.
        kernel::with(|k| {
            if let Some(record) = k.irps.get_mut(&irp) {
                record.completed = None;
            }
        });
        return;
    }
    if driver_allocated {
        bugcheck(
            "an IoAllocateIrp IRP completed up to the I/O manager: it has no thread to be \
             finished on (its completion routine must return STATUS_MORE_PROCESSING_REQUIRED \
             and free it)",
        );
    }
    // SAFETY: the live IRP (a routine may have changed its status block).
    let io_status = unsafe { &(*irp).IoStatus };
    // SAFETY: the status member.
    let status = unsafe { io_status.Anonymous.Status };
    let information = io_status.Information;
    if threaded {
        // The I/O manager finishes a threaded IRP in a special kernel APC to its thread.
        crate::irql::queue_completion_apc(crate::irql::CompletionApc {
            thread,
            irp,
            status,
            information,
        });
    } else if kernel::with(|k| k.async_irps.contains_key(&irp)) {
        // SAFETY: an asynchronous request the model sent; finished at completion.
        unsafe { finish_async(irp, status, information) };
    }
}

/// `IopfCompleteRequest`'s walk: pops the stack one location at a time and calls the
/// completion routine stored in the location just left, as its invoke flags ask, with the
/// device of the location now current (NULL past the top). True if a routine returned
/// `STATUS_MORE_PROCESSING_REQUIRED` (completion stops; the IRP is the routine's again).
///
/// # Safety
/// `irp` is live and being completed.
unsafe fn run_completion_routines(irp: *mut IRP) -> bool {
    loop {
        // SAFETY: the caller's contract.
        let irp_ref = unsafe { &mut *irp };
        if irp_ref.CurrentLocation > irp_ref.StackCount {
            return false;
        }
        // SAFETY: the caller's contract.
        let left = unsafe { current_stack(irp) };
        // SAFETY: a location inside the IRP's block.
        let left = unsafe { *left };
        irp_ref.PendingReturned = left.Control & SL_PENDING_RETURNED != 0;
        irp_ref.CurrentLocation += 1;
        let above = left_location_above(irp);
        // SAFETY: the status member of the status block.
        let status = unsafe { irp_ref.IoStatus.Anonymous.Status };
        let wanted = if irp_ref.Cancel {
            SL_INVOKE_ON_CANCEL
        } else if status >= 0 {
            SL_INVOKE_ON_SUCCESS
        } else {
            SL_INVOKE_ON_ERROR
        };
        let Some(routine) = left
            .CompletionRoutine
            .filter(|_| left.Control & wanted != 0)
        else {
            // No routine: the pending mark travels up (IoMarkIrpPending on the caller's behalf).
            if irp_ref.PendingReturned && irp_ref.CurrentLocation <= irp_ref.StackCount {
                // SAFETY: the caller's contract.
                let now = unsafe { current_stack(irp) };
                // SAFETY: the now-current location, inside the block.
                unsafe { (*now).Control |= SL_PENDING_RETURNED };
            }
            continue;
        };
        // SAFETY: a completion routine pointer, stored as the driver's real signature.
        let routine: CompletionRoutine = unsafe { std::mem::transmute(routine) };
        // SAFETY: the driver's routine with the device above, the IRP and its context.
        let result = unsafe { routine(above, irp, left.Context) };
        if result == STATUS_MORE_PROCESSING_REQUIRED {
            return true;
        }
    }
}

/// After a pop: the device of the now-current location, NULL past the top of the stack.
fn left_location_above(irp: *mut IRP) -> *const DEVICE_OBJECT {
    // SAFETY: the live IRP being completed.
    let irp_ref = unsafe { &mut *irp };
    // SAFETY: as above.
    let next = unsafe { current_stack(irp) }.wrapping_add(1);
    irp_ref
        .Tail
        .Overlay
        .Anonymous2
        .Anonymous
        .CurrentStackLocation = next;
    if irp_ref.CurrentLocation > irp_ref.StackCount {
        ptr::null()
    } else {
        // SAFETY: a location inside the block.
        unsafe { (*next).DeviceObject }
    }
}

/// Copy-back, status block, event, free: the end of an IoBuild* request, run by its
/// completion APC ([`crate::irql`]).
///
/// # Safety
/// `irp` is a live threaded IRP, completed, not yet finished.
pub(crate) unsafe fn finish_threaded(irp: *mut IRP, status: NTSTATUS, information: usize) {
    let buffered = kernel::with(|k| {
        k.irps
            .get_mut(&irp)
            .and_then(|r| r.system_buffer.take().zip(r.copy_back))
    });
    if let Some((buffer, (out, out_len))) = buffered {
        let n = information.min(out_len).min(buffer.len());
        // SAFETY: the requester's output buffer holds `out_len` bytes.
        unsafe { ptr::copy_nonoverlapping(buffer.as_ptr(), out, n) };
    }
    // SAFETY: the live IRP.
    let irp_ref = unsafe { &*irp };
    // SAFETY: UserIosb is the member the builders set.
    let iosb = unsafe { irp_ref.Anonymous.UserIosb };
    let event = irp_ref.UserEvent;
    if !iosb.is_null() {
        // SAFETY: the requester's status block.
        let iosb = unsafe { &mut *iosb };
        iosb.Anonymous.Status = status;
        iosb.Information = information;
    }
    if !event.is_null() {
        set_event(event);
    }
    free_irp(irp);
}

/// Sends an IRP the model built to `device` and collects its final status and information,
/// freeing it. The IRP must not be threaded.
///
/// # Safety
/// `irp` is live, with its next location filled in for `device`.
pub(crate) unsafe fn send_and_free(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> (NTSTATUS, usize) {
    // SAFETY: the caller's contract.
    let returned = unsafe { call_driver(device, irp) };
    let completed = kernel::with(|k| k.irps.get(&irp).and_then(|r| r.completed));
    free_irp(irp);
    match completed {
        Some((status, information)) => {
            if returned != STATUS_PENDING && returned != status {
                bugcheck("dispatch returned a status other than the one it completed with");
            }
            (status, information)
        }
        None if returned == STATUS_PENDING => {
            bugcheck("IRP left pending with nothing to complete it (no worker threads here)")
        }
        None => bugcheck("dispatch returned without completing the IRP"),
    }
}

#[no_mangle]
pub unsafe extern "system" fn IoBuildSynchronousFsdRequest(
    majorfunction: u32,
    deviceobject: *const DEVICE_OBJECT,
    buffer: *mut c_void,
    length: u32,
    startingoffset: *const i64,
    event: *const KEVENT,
    iostatusblock: *mut IO_STATUS_BLOCK,
) -> *mut IRP {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::irql::check_threaded_build("IoBuildSynchronousFsdRequest");
    let device = deviceobject.cast_mut();
    // SAFETY: a live device.
    let irp = allocate_irp(unsafe { (*device).StackSize }, true);
    let offset = if startingoffset.is_null() {
        0
    } else {
        // SAFETY: the caller's offset.
        unsafe { *startingoffset }
    };
    let major = u8::try_from(majorfunction).unwrap_or(u8::MAX);
    let parameters = read_write_parameters(length, offset);
    // SAFETY: a fresh IRP.
    unsafe { set_next_stack(irp, location(major, 0, ptr::null_mut(), parameters)) };
    if length > 0 && !buffer.is_null() {
        attach_mdl(irp, buffer.cast(), length);
    }
    // SAFETY: a fresh IRP, ours.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.Anonymous.UserIosb = iostatusblock;
    irp_ref.UserEvent = event.cast_mut();
    irp
}

#[no_mangle]
pub unsafe extern "system" fn IoBuildDeviceIoControlRequest(
    iocontrolcode: u32,
    deviceobject: *const DEVICE_OBJECT,
    inputbuffer: *const c_void,
    inputbufferlength: u32,
    outputbuffer: *mut c_void,
    outputbufferlength: u32,
    internaldeviceiocontrol: bool,
    event: *const KEVENT,
    iostatusblock: *mut IO_STATUS_BLOCK,
) -> *mut IRP {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::irql::check_threaded_build("IoBuildDeviceIoControlRequest");
    if iocontrolcode & 3 != 0 {
        bugcheck("only METHOD_BUFFERED device controls are modelled");
    }
    let device = deviceobject.cast_mut();
    // SAFETY: a live device.
    let irp = allocate_irp(unsafe { (*device).StackSize }, true);
    let major = if internaldeviceiocontrol {
        IRP_MJ_INTERNAL_DEVICE_CONTROL
    } else {
        IRP_MJ_DEVICE_CONTROL
    };
    let mut parameters = IO_STACK_LOCATION_0::default();
    parameters.DeviceIoControl = IO_STACK_LOCATION_0_16 {
        OutputBufferLength: outputbufferlength,
        InputBufferLength: inputbufferlength,
        IoControlCode: iocontrolcode,
        Type3InputBuffer: ptr::null_mut(),
    };
    // SAFETY: a fresh IRP.
    unsafe { set_next_stack(irp, location(major, 0, ptr::null_mut(), parameters)) };
    let mut system = vec![0u8; inputbufferlength.max(outputbufferlength) as usize];
    if inputbufferlength > 0 && !inputbuffer.is_null() {
        // SAFETY: the caller's input buffer holds `inputbufferlength` bytes.
        let input = unsafe {
            std::slice::from_raw_parts(inputbuffer.cast::<u8>(), inputbufferlength as usize)
        };
        system[..input.len()].copy_from_slice(input);
    }
    // SAFETY: a fresh IRP, ours.
    let irp_ref = unsafe { &mut *irp };
    // The vector's heap block does not move when the Vec is moved into the record.
    irp_ref.AssociatedIrp.SystemBuffer = system.as_mut_ptr().cast();
    irp_ref.Anonymous.UserIosb = iostatusblock;
    irp_ref.UserEvent = event.cast_mut();
    kernel::with(|k| {
        if let Some(r) = k.irps.get_mut(&irp) {
            r.system_buffer = Some(system);
            r.copy_back = Some((outputbuffer.cast(), outputbufferlength as usize));
        }
    });
    irp
}

#[no_mangle]
pub extern "system" fn IoAllocateIrp(stacksize: i8, _chargequota: bool) -> *mut IRP {
    let _kernel = crate::heap::KernelRegion::enter();
    crate::stack::note_driver_call();
    if crate::irql::current() > crate::irql::DISPATCH_LEVEL {
        bugcheck("IoAllocateIrp above DISPATCH_LEVEL");
    }
    if crate::ex::pool_fails() {
        return ptr::null_mut();
    }
    let irp = allocate_irp(stacksize, false);
    kernel::with(|k| {
        if let Some(r) = k.irps.get_mut(&irp) {
            r.driver_allocated = true;
        }
    });
    irp
}

/// An IRP record that `IoAllocateIrp` made and no driver below still holds.
fn driver_irp_at_rest(irp: *mut IRP, routine: &str) {
    kernel::with(|k| match k.irps.get(&irp) {
        Some(r) if r.driver_allocated => {}
        Some(_) => bugcheck(&format!("{routine} of an IRP IoAllocateIrp did not make")),
        None => bugcheck(&format!("{routine} of an IRP that is not live")),
    });
    // SAFETY: a live IRP of the model.
    let irp_ref = unsafe { &*irp };
    let (location, count) = (irp_ref.CurrentLocation, irp_ref.StackCount);
    if location <= count {
        bugcheck(&format!(
            "{routine} of an IRP still owned by a driver below (not completed back)"
        ));
    }
}

#[no_mangle]
pub unsafe extern "system" fn IoFreeIrp(irp: *const IRP) {
    let _kernel = crate::heap::KernelRegion::enter();
    let irp = irp.cast_mut();
    driver_irp_at_rest(irp, "IoFreeIrp");
    free_irp(irp);
}

#[no_mangle]
pub unsafe extern "system" fn IoReuseIrp(irp: *mut IRP, iostatus: NTSTATUS) {
    let _kernel = crate::heap::KernelRegion::enter();
    driver_irp_at_rest(irp, "IoReuseIrp");
    // SAFETY: an IoAllocateIrp IRP at rest.
    unsafe { reset_irp(irp) };
    // SAFETY: as above.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.IoStatus.Anonymous.Status = iostatus;
    kernel::with(|k| {
        let thread = k.thread;
        if let Some(r) = k.irps.get_mut(&irp) {
            r.completed = None;
            r.thread = thread;
        }
    });
}

// ---- share access ------------------------------------------------------------------------------

const FILE_READ_DATA: u32 = 0x1;
const FILE_WRITE_DATA: u32 = 0x2;
const FILE_APPEND_DATA: u32 = 0x4;
const FILE_EXECUTE: u32 = 0x20;
const DELETE: u32 = 0x1_0000;
const FILE_SHARE_READ: u32 = 0x1;
const FILE_SHARE_WRITE: u32 = 0x2;
const FILE_SHARE_DELETE: u32 = 0x4;

/// The documented `IoCheckShareAccess` algorithm.
#[no_mangle]
pub unsafe extern "system" fn IoCheckShareAccess(
    desiredaccess: u32,
    desiredshareaccess: u32,
    fileobject: *mut FILE_OBJECT,
    shareaccess: *mut SHARE_ACCESS,
    update: bool,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    let read = desiredaccess & (FILE_EXECUTE | FILE_READ_DATA) != 0;
    let write = desiredaccess & (FILE_WRITE_DATA | FILE_APPEND_DATA) != 0;
    let delete = desiredaccess & DELETE != 0;
    let shared_read = desiredshareaccess & FILE_SHARE_READ != 0;
    let shared_write = desiredshareaccess & FILE_SHARE_WRITE != 0;
    let shared_delete = desiredshareaccess & FILE_SHARE_DELETE != 0;
    // SAFETY: the caller's file object.
    let fo = unsafe { &mut *fileobject };
    fo.ReadAccess = read;
    fo.WriteAccess = write;
    fo.DeleteAccess = delete;
    if !(read || write || delete) {
        return STATUS_SUCCESS;
    }
    fo.SharedRead = shared_read;
    fo.SharedWrite = shared_write;
    fo.SharedDelete = shared_delete;
    // SAFETY: the caller's share access record.
    let sa = unsafe { &mut *shareaccess };
    let open = sa.OpenCount;
    let conflict = (read && sa.SharedRead < open)
        || (write && sa.SharedWrite < open)
        || (delete && sa.SharedDelete < open)
        || (sa.Readers != 0 && !shared_read)
        || (sa.Writers != 0 && !shared_write)
        || (sa.Deleters != 0 && !shared_delete);
    if conflict {
        return STATUS_SHARING_VIOLATION;
    }
    if update {
        sa.OpenCount += 1;
        sa.Readers += u32::from(read);
        sa.Writers += u32::from(write);
        sa.Deleters += u32::from(delete);
        sa.SharedRead += u32::from(shared_read);
        sa.SharedWrite += u32::from(shared_write);
        sa.SharedDelete += u32::from(shared_delete);
    }
    STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn IoRemoveShareAccess(
    fileobject: *const FILE_OBJECT,
    shareaccess: *mut SHARE_ACCESS,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's file object.
    let fo = unsafe { &*fileobject };
    if !(fo.ReadAccess || fo.WriteAccess || fo.DeleteAccess) {
        return;
    }
    // SAFETY: the caller's share access record.
    let sa = unsafe { &mut *shareaccess };
    let dec = |v: &mut u32, on: bool| {
        if on {
            *v = v
                .checked_sub(1)
                .unwrap_or_else(|| bugcheck("share access count underflow"));
        }
    };
    dec(&mut sa.OpenCount, true);
    dec(&mut sa.Readers, fo.ReadAccess);
    dec(&mut sa.Writers, fo.WriteAccess);
    dec(&mut sa.Deleters, fo.DeleteAccess);
    dec(&mut sa.SharedRead, fo.SharedRead);
    dec(&mut sa.SharedWrite, fo.SharedWrite);
    dec(&mut sa.SharedDelete, fo.SharedDelete);
}

// ---- file objects ------------------------------------------------------------------------------

/// A new file object for an open of `name` on the volume of `vpb`, with one reference.
pub(crate) fn create_file_object(
    fs_device: *mut DEVICE_OBJECT,
    real_device: *mut DEVICE_OBJECT,
    vpb: *mut VPB,
    name: &str,
    related: *mut FILE_OBJECT,
) -> *mut FILE_OBJECT {
    let mut units: Vec<u16> = name.encode_utf16().collect();
    let bytes = u16::try_from(units.len() * 2).unwrap_or(u16::MAX);
    let fo = Box::into_raw(Box::new(FILE_OBJECT {
        Type: 5,
        Size: i16::try_from(std::mem::size_of::<FILE_OBJECT>()).unwrap_or(i16::MAX),
        DeviceObject: real_device,
        Vpb: vpb,
        RelatedFileObject: related,
        FileName: UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: units.as_mut_ptr(),
        },
        ..Default::default()
    }));
    kernel::with(|k| {
        let id = FoId(k.next_fo);
        k.next_fo += 1;
        let record = FoRecord {
            id,
            refs: 1,
            handles: 0,
            opened: false,
            device: fs_device,
            name: units,
            granted: 0,
        };
        k.file_objects.insert(fo, record);
    });
    fo
}

/// `ObfReferenceObject` on a file object.
pub(crate) fn reference(fo: *mut FILE_OBJECT) {
    kernel::with(|k| match k.file_objects.get_mut(&fo) {
        Some(r) => r.refs += 1,
        None => bugcheck("reference to a file object that does not exist"),
    });
}

/// `ObfDereferenceObject` on a file object: the last reference sends IRP_MJ_CLOSE (for an
/// opened file object) and frees it (`IopDeleteFile`). The file object's VPB reference goes
/// first, as on Windows: a file system that sees its volume's last close may free the VPB
/// it swapped out (fastfat `FatCheckForDismount`), so the I/O manager never touches it after.
pub(crate) fn dereference(fo: *mut FILE_OBJECT) {
    let last = kernel::with(|k| {
        let Some(r) = k.file_objects.get_mut(&fo) else {
            bugcheck("dereference of a file object that does not exist")
        };
        r.refs = r
            .refs
            .checked_sub(1)
            .unwrap_or_else(|| bugcheck("file object reference underflow"));
        (r.refs == 0).then_some(r.opened)
    });
    let Some(opened) = last else {
        return;
    };
    if opened {
        let device = related_device(fo);
        dereference_vpb(fo);
        if let Some(device) = device {
            // SAFETY: a live file object with no references: the close is the last IRP for it.
            let _ = unsafe { send_simple(device, fo, IRP_MJ_CLOSE, 0) };
        }
    }
    free_file_object(fo);
}

/// `IoGetRelatedDeviceObject`: the device a file object's IRPs go to, read afresh for every
/// request: the mounted volume's device through the file object's VPB (so a VPB that a new
/// mount took over would carry old handles' requests to the new volume), else the device the
/// file object was opened on.
#[must_use]
pub(crate) fn related_device(fo: *mut FILE_OBJECT) -> Option<*mut DEVICE_OBJECT> {
    let opened_on = kernel::with(|k| k.file_objects.get(&fo).map(|r| r.device))?;
    // SAFETY: a live file object of the model.
    let vpb = unsafe { (*fo).Vpb };
    if vpb.is_null() {
        return Some(opened_on);
    }
    // SAFETY: a file object's VPB lives while the file object references it.
    let device = unsafe { (*vpb).DeviceObject };
    Some(if device.is_null() { opened_on } else { device })
}

/// `IopDereferenceVpbAndFree`, for a create that failed: drops the file object's VPB
/// reference, and frees a VPB left with none that is no longer the device's and names no
/// volume device (a file system tore its volume down while this create was in flight and
/// handed the swapped-out VPB over by clearing `DeviceObject`).
pub(crate) fn dereference_vpb_and_free(fo: *mut FILE_OBJECT) {
    // SAFETY: a live file object of the model.
    let vpb = unsafe { (*fo).Vpb };
    dereference_vpb(fo);
    if vpb.is_null() {
        return;
    }
    // SAFETY: the VPB lives until freed here (the file system handed it over).
    let vpb_ref = unsafe { &*vpb };
    let (refs, real, device) = (
        vpb_ref.ReferenceCount,
        vpb_ref.RealDevice,
        vpb_ref.DeviceObject,
    );
    // SAFETY: the disk device outlives its VPBs.
    let current = !real.is_null() && unsafe { (*real).Vpb } == vpb;
    if refs == 0 && !current && device.is_null() {
        // SAFETY: a pool VPB nobody references or names any more.
        unsafe { crate::ex::ExFreePool(vpb.cast()) };
    }
}

/// Takes the VPB reference an opened file object held (`IopCheckVpbMounted` took it at
/// create).
pub(crate) fn dereference_vpb(fo: *mut FILE_OBJECT) {
    // SAFETY: a live file object of the model.
    let vpb = unsafe { (*fo).Vpb };
    if vpb.is_null() {
        return;
    }
    // SAFETY: the VPB lives while this file object references it.
    let vpb = unsafe { &mut *vpb };
    vpb.ReferenceCount = vpb
        .ReferenceCount
        .checked_sub(1)
        .unwrap_or_else(|| bugcheck("VPB reference count underflow"));
}

// ---- object references (Ob) ---------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "system" fn ObfReferenceObject(object: *const c_void) -> isize {
    let _kernel = crate::heap::KernelRegion::enter();
    let object = object.cast_mut();
    if kernel::with(|k| k.file_objects.contains_key(&object.cast())) {
        reference(object.cast());
        return 0;
    }
    kernel::with(|k| {
        let live = k.devices.get(&object.cast()).is_some_and(|r| !r.deleted);
        if !live {
            bugcheck("ObfReferenceObject of an object the model does not know");
        }
        let count = k.object_refs.entry(object as usize).or_insert(0);
        *count += 1;
        isize::try_from(*count).unwrap_or(isize::MAX)
    })
}

#[no_mangle]
pub unsafe extern "system" fn ObfDereferenceObject(object: *const c_void) -> isize {
    let _kernel = crate::heap::KernelRegion::enter();
    let object = object.cast_mut();
    if kernel::with(|k| k.file_objects.contains_key(&object.cast())) {
        dereference(object.cast());
        return 0;
    }
    kernel::with(|k| {
        let Some(count) = k.object_refs.get_mut(&(object as usize)) else {
            bugcheck("ObfDereferenceObject of an object nobody referenced")
        };
        *count -= 1;
        let left = *count;
        if left == 0 {
            k.object_refs.remove(&(object as usize));
        }
        isize::try_from(left).unwrap_or(0)
    })
}

/// Frees a file object's memory and record.
pub(crate) fn free_file_object(fo: *mut FILE_OBJECT) {
    let record = kernel::with(|k| k.file_objects.remove(&fo));
    if record.is_none() {
        bugcheck("freeing a file object twice");
    }
    // SAFETY: created by Box::into_raw in `create_file_object`, freed once.
    drop(unsafe { Box::from_raw(fo) });
}

/// An IRP with no parameters (cleanup, close, flush) for `fo` on `device`.
///
/// # Safety
/// `device` and `fo` are live.
pub(crate) unsafe fn send_simple(
    device: *mut DEVICE_OBJECT,
    fo: *mut FILE_OBJECT,
    major: u8,
    minor: u8,
) -> (NTSTATUS, usize) {
    // SAFETY: a live device.
    let irp = allocate_irp(unsafe { (*device).StackSize }, false);
    let parameters = IO_STACK_LOCATION_0::default();
    // SAFETY: a fresh IRP.
    unsafe { set_next_stack(irp, location(major, minor, fo, parameters)) };
    // SAFETY: as above.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.Tail.Overlay.OriginalFileObject = fo;
    // SAFETY: a complete IRP for `device`.
    unsafe { send_and_free(device, irp) }
}

/// Reads or writes through the file system: `flags` picks paging/non-cached; `buffer` is the
/// user buffer (or the MDL's, for paging I/O).
///
/// # Safety
/// `fo` is a live opened file object; `buffer` holds `len` bytes.
pub(crate) unsafe fn send_read_write(
    fo: *mut FILE_OBJECT,
    major: u8,
    offset: i64,
    buffer: *mut u8,
    len: u32,
    flags: u32,
    with_mdl: bool,
) -> (NTSTATUS, usize) {
    let device = related_device(fo);
    let Some(device) = device else {
        bugcheck("I/O on a file object that does not exist")
    };
    reference(fo);
    // SAFETY: a live device.
    let irp = allocate_irp(unsafe { (*device).StackSize }, false);
    let parameters = read_write_parameters(len, offset);
    // SAFETY: a fresh IRP.
    unsafe { set_next_stack(irp, location(major, 0, fo, parameters)) };
    if with_mdl {
        attach_mdl(irp, buffer, len);
    }
    // SAFETY: as above.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.Flags = flags;
    irp_ref.Tail.Overlay.OriginalFileObject = fo;
    // A user-mode request's buffer is the requester's memory for the request's life (unless
    // the test placed it there already, e.g. unmapped).
    let register = !with_mdl && crate::seh::classify(buffer.addr(), len as usize).is_none();
    if !with_mdl {
        irp_ref.UserBuffer = buffer.cast();
        irp_ref.RequestorMode = 1;
    }
    if register {
        crate::seh::register(buffer.addr(), len as usize, crate::seh::UserMemory::Mapped);
    }
    // Paging I/O comes from Mm (a fault, the page writers, Cc's flush through Mm) at
    // APC_LEVEL (NT-27).
    let result = if flags & IRP_PAGING_IO != 0 {
        // SAFETY: a complete IRP for the file's device.
        crate::irql::at_apc_level(|| unsafe { send_and_free(device, irp) })
    } else {
        // SAFETY: as above.
        unsafe { send_and_free(device, irp) }
    };
    if register {
        crate::seh::unregister(buffer.addr());
    }
    dereference(fo);
    result
}

// ---- asynchronous requests (notify) ------------------------------------------------------------

/// An IRP a test sent that the file system may pend.
#[derive(Debug)]
pub struct AsyncIrp {
    token: u32,
    user: *mut [u8],
    fo: *mut FILE_OBJECT,
}

/// How an asynchronous IRP ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncResult {
    /// Final status.
    pub status: NTSTATUS,
    /// The caller's buffer, `Information` bytes of it.
    pub data: Vec<u8>,
    /// Completed through a new system buffer (`IRP_DEALLOCATE_BUFFER`, seed 002).
    pub new_system_buffer: bool,
}

/// `IRP_BUFFERED_IO`, `IRP_DEALLOCATE_BUFFER`, `IRP_INPUT_OPERATION`.
const IRP_BUFFERED_IO: u32 = 0x10;
const IRP_DEALLOCATE_BUFFER: u32 = 0x20;
const IRP_INPUT_OPERATION: u32 = 0x40;

/// Sends an IRP whose output goes to a user buffer of `len` bytes (`Irp->UserBuffer`) and
/// which the file system may pend; returns the token its result is filed under. The IRP
/// holds a reference on `fo` until its completion is delivered.
///
/// # Safety
/// `fo` is a live opened file object; `irp`'s next location is filled for its device.
pub(crate) unsafe fn send_async(fo: *mut FILE_OBJECT, irp: *mut IRP, len: usize) -> u32 {
    let device = related_device(fo);
    let Some(device) = device else {
        bugcheck("I/O on a file object that does not exist")
    };
    reference(fo);
    let user: *mut [u8] = Box::into_raw(vec![0xE5u8; len].into_boxed_slice());
    let token = kernel::with(|k| {
        let token = k.next_id();
        k.async_irps.insert(irp, AsyncIrp { token, user, fo });
        token
    });
    // SAFETY: a fresh IRP, ours until sent.
    let irp_ref = unsafe { &mut *irp };
    let user_address = if kernel::with(|k| k.unmapped_user_buffer_next) {
        kernel::with(|k| k.unmapped_user_buffer_next = false);
        crate::seh::register(
            crate::seh::UNMAPPED_USER_ADDRESS,
            len,
            crate::seh::UserMemory::Unmapped,
        );
        crate::seh::UNMAPPED_USER_ADDRESS
    } else {
        crate::seh::register(
            user.cast::<u8>().addr(),
            len,
            crate::seh::UserMemory::Mapped,
        );
        user.cast::<u8>().addr()
    };
    irp_ref.UserBuffer = std::ptr::with_exposed_provenance_mut(user_address);
    irp_ref.RequestorMode = 1;
    irp_ref.Tail.Overlay.OriginalFileObject = fo;
    // SAFETY: the caller's contract.
    let returned = unsafe { call_driver(device, irp) };
    // A pended request keeps its buffer registered until the test ends (a notify).
    if returned != STATUS_PENDING {
        crate::seh::unregister(user_address);
    }
    let done = kernel::with(|k| k.async_done.get(&token).map(|r| r.status));
    match done {
        Some(status) if returned != STATUS_PENDING && returned != status => {
            bugcheck("dispatch returned a status other than the one it completed with")
        }
        None if returned != STATUS_PENDING => {
            bugcheck("dispatch returned without completing or pending the IRP")
        }
        _ => {}
    }
    deliver_apcs();
    token
}

/// The I/O manager's end of an asynchronous request: a new system buffer is copied to the
/// caller's buffer and freed (seed 002), the result filed, the IRP freed. The file object
/// reference goes when the test thread runs again ([`deliver_apcs`]).
///
/// # Safety
/// `irp` is a live asynchronous IRP, just completed.
unsafe fn finish_async(irp: *mut IRP, status: NTSTATUS, information: usize) {
    let Some(record) = kernel::with(|k| k.async_irps.remove(&irp)) else {
        return;
    };
    // SAFETY: the live IRP.
    let irp_ref = unsafe { &mut *irp };
    // SAFETY: created by Box::into_raw in `send_async`, reclaimed once.
    let mut user = unsafe { Box::from_raw(record.user) };
    crate::seh::unregister(user.as_ptr().addr());
    let new_system_buffer = irp_ref.Flags & IRP_DEALLOCATE_BUFFER != 0;
    // IopCompleteRequest: a buffered input operation is copied back to the caller; a buffer
    // marked IRP_DEALLOCATE_BUFFER is freed. FsRtl's new buffer sets all three flags.
    let copy_back = irp_ref.Flags & (IRP_BUFFERED_IO | IRP_INPUT_OPERATION)
        == (IRP_BUFFERED_IO | IRP_INPUT_OPERATION);
    let n = information.min(user.len());
    if new_system_buffer {
        // SAFETY: the system buffer member holds the new buffer.
        let system = unsafe { irp_ref.AssociatedIrp.SystemBuffer };
        if copy_back && (status >= 0 || is_warning(status)) {
            // SAFETY: the FS filled `information` bytes of its new buffer.
            unsafe { ptr::copy_nonoverlapping(system.cast::<u8>(), user.as_mut_ptr(), n) };
        }
        let tag = kernel::with(|k| k.pool.get(&(system as usize)).map(|b| b.tag));
        let Some(tag) = tag else {
            bugcheck("IRP_DEALLOCATE_BUFFER with a system buffer that is not pool")
        };
        // SAFETY: the I/O manager frees the buffer it was handed (ExFreePool).
        unsafe { crate::ex::ExFreePoolWithTag(system, tag) };
    }
    let data = if status >= 0 || is_warning(status) {
        user[..n].to_vec()
    } else {
        Vec::new()
    };
    kernel::with(|k| {
        k.async_done.insert(
            record.token,
            AsyncResult {
                status,
                data,
                new_system_buffer,
            },
        );
        k.apc_derefs.push(record.fo);
    });
    free_irp(irp);
}

/// An NTSTATUS warning (the I/O manager still copies data back).
#[must_use]
pub fn is_warning(status: NTSTATUS) -> bool {
    (status as u32) >> 30 == 2
}

/// Runs the completion "APCs": drops the references completed asynchronous IRPs held.
pub(crate) fn deliver_apcs() {
    loop {
        let Some(fo) = kernel::with(|k| k.apc_derefs.pop()) else {
            return;
        };
        dereference(fo);
    }
}

/// The result of an asynchronous request, once it completed.
#[must_use]
pub(crate) fn take_async_result(token: u32) -> Option<AsyncResult> {
    kernel::with(|k| k.async_done.remove(&token))
}

/// The model's one process (a stand-in `EPROCESS` address; never dereferenced).
static REQUESTOR_PROCESS: u8 = 0;

/// The model's one process, as `IoGetRequestorProcess` names it.
#[must_use]
pub fn requestor_process() -> windows_sys::Wdk::Foundation::PEPROCESS {
    (&raw const REQUESTOR_PROCESS) as isize
}

#[no_mangle]
pub unsafe extern "system" fn IoGetRequestorProcess(
    _irp: *const IRP,
) -> windows_sys::Wdk::Foundation::PEPROCESS {
    let _kernel = crate::heap::KernelRegion::enter();
    (&raw const REQUESTOR_PROCESS) as isize
}

/// The current thread's process: the model's one process (fast I/O asks for it).
#[no_mangle]
pub extern "system" fn IoGetCurrentProcess() -> windows_sys::Wdk::Foundation::PEPROCESS {
    let _kernel = crate::heap::KernelRegion::enter();
    (&raw const REQUESTOR_PROCESS) as isize
}
