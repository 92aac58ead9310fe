//! The I/O manager: device objects, file system registration, IRPs (build, dispatch,
//! complete), buffered/direct buffers, share access, top-level IRP, file objects and their
//! references (an object's last reference sends IRP_MJ_CLOSE).
//!
//! Stricter than Windows: completion routines are not modelled (setting one is a bug check);
//! an IRP completed twice, a dispatch that returns without completing and without pending, and
//! an IRP left pending (nothing else would ever complete it here) are bug checks.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_void;
use std::ptr;

use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IO_STACK_LOCATION, IRP, KEVENT, MDL, VPB,
};
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

/// An IRP and its stack locations in one allocation.
#[repr(C)]
struct IrpBlock {
    irp: IRP,
    stack: [IO_STACK_LOCATION; MAX_STACK],
}

// ---- devices and file systems ----------------------------------------------------------------

#[no_mangle]
pub extern "system" fn IoCreateDevice(
    driverobject: *const DRIVER_OBJECT,
    deviceextensionsize: u32,
    _devicename: *const UNICODE_STRING,
    devicetype: u32,
    devicecharacteristics: u32,
    _exclusive: bool,
    deviceobject: *mut *mut DEVICE_OBJECT,
) -> NTSTATUS {
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
    unsafe { (*device).NextDevice = (*driver).DeviceObject };
    // SAFETY: as above.
    unsafe { (*driver).DeviceObject = device };
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
pub extern "system" fn IoDeleteDevice(deviceobject: *const DEVICE_OBJECT) {
    let device = deviceobject.cast_mut();
    let driver = kernel::with(|k| match k.devices.get_mut(&device) {
        Some(r) if !r.deleted => {
            r.deleted = true;
            r.driver
        }
        _ => bugcheck("IoDeleteDevice of a device that is not live"),
    });
    // SAFETY: the driver object outlives its devices; unlink `device` from its list.
    let mut link = unsafe { &raw mut (*driver).DeviceObject };
    // SAFETY: walking the driver's live device list.
    while !unsafe { *link }.is_null() {
        // SAFETY: as above.
        let current = unsafe { *link };
        if current == device {
            // SAFETY: `device` is live until reaped.
            unsafe { *link = (*device).NextDevice };
            break;
        }
        // SAFETY: as above.
        link = unsafe { &raw mut (*current).NextDevice };
    }
}

/// Frees devices deleted since the last reap (Windows frees a device when its last reference
/// goes; the model waits until no dispatch can still be using it).
pub fn reap_devices() {
    let dead: Vec<(*mut DEVICE_OBJECT, DeviceRecord)> = kernel::with(|k| {
        let keys: Vec<_> = k
            .devices
            .iter()
            .filter(|(_, r)| r.deleted)
            .map(|(d, _)| *d)
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
pub fn live_devices_of(driver: *mut DRIVER_OBJECT) -> usize {
    kernel::with(|k| {
        k.devices
            .values()
            .filter(|r| r.driver == driver && !r.deleted)
            .count()
    })
}

#[no_mangle]
pub extern "system" fn IoRegisterFileSystem(deviceobject: *const DEVICE_OBJECT) {
    kernel::with(|k| k.file_systems.push(deviceobject.cast_mut()));
}

#[no_mangle]
pub extern "system" fn IoUnregisterFileSystem(deviceobject: *const DEVICE_OBJECT) {
    kernel::with(|k| k.file_systems.retain(|d| *d != deviceobject.cast_mut()));
}

#[no_mangle]
pub extern "system" fn IoGetTopLevelIrp() -> *mut IRP {
    kernel::with(|k| k.top_level_irp)
}

#[no_mangle]
pub extern "system" fn IoSetTopLevelIrp(irp: *const IRP) {
    kernel::with(|k| k.top_level_irp = irp.cast_mut());
}

// ---- IRPs -------------------------------------------------------------------------------------

/// Allocates an IRP with `stack_size` locations; the first driver's is the "next" one.
pub fn allocate_irp(stack_size: i8, threaded: bool) -> *mut IRP {
    let size = usize::try_from(stack_size).unwrap_or(0);
    if size == 0 || size >= MAX_STACK {
        bugcheck("IRP stack size out of the model's range");
    }
    let block = Box::into_raw(Box::new(IrpBlock {
        irp: IRP::default(),
        stack: [IO_STACK_LOCATION::default(); MAX_STACK],
    }));
    // SAFETY: fresh block; `size < MAX_STACK`, so the one-past location is inside the array.
    let irp = unsafe { &raw mut (*block).irp };
    // SAFETY: as above.
    let past = unsafe {
        (&raw mut (*block).stack)
            .cast::<IO_STACK_LOCATION>()
            .add(size)
    };
    // SAFETY: fresh IRP, ours.
    unsafe {
        (*irp).Type = 6;
    }
    // SAFETY: as above.
    unsafe { (*irp).StackCount = stack_size };
    // SAFETY: as above.
    unsafe { (*irp).CurrentLocation = stack_size + 1 };
    // SAFETY: as above.
    unsafe {
        (*irp)
            .Tail
            .Overlay
            .Anonymous2
            .Anonymous
            .CurrentStackLocation = past
    };
    kernel::with(|k| {
        let record = IrpRecord {
            threaded,
            ..IrpRecord::default()
        };
        k.irps.insert(irp, record)
    });
    irp
}

/// The stack location the next driver will get (`IoGetNextIrpStackLocation`).
///
/// # Safety
/// `irp` is live and has a location below the current one.
pub unsafe fn next_stack(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller's contract.
    let current = unsafe {
        (*irp)
            .Tail
            .Overlay
            .Anonymous2
            .Anonymous
            .CurrentStackLocation
    };
    current.wrapping_sub(1)
}

/// Frees an IRP and its MDL.
pub fn free_irp(irp: *mut IRP) {
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
pub fn attach_mdl(irp: *mut IRP, buffer: *mut u8, len: u32) {
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
pub unsafe fn call_driver(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe { (*irp).CurrentLocation -= 1 };
    // SAFETY: as above.
    let stack = unsafe { next_stack(irp) };
    // SAFETY: as above.
    unsafe {
        (*irp)
            .Tail
            .Overlay
            .Anonymous2
            .Anonymous
            .CurrentStackLocation = stack
    };
    // SAFETY: the location now current.
    unsafe { (*stack).DeviceObject = device };
    // SAFETY: as above.
    let (major, minor, fo) = unsafe {
        (
            (*stack).MajorFunction,
            (*stack).MinorFunction,
            (*stack).FileObject,
        )
    };
    // SAFETY: a live device of a live driver.
    let driver = unsafe { (*device).DriverObject };
    // SAFETY: as above.
    let routine = unsafe { (*driver).MajorFunction[usize::from(major)] };
    let Some(routine) = routine else {
        bugcheck("IRP to a driver with no routine for its major function")
    };
    if !is_disk(device) {
        // SAFETY: as above.
        let (offset, length, flags) = unsafe { rw_params(irp, stack, major) };
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
        });
    }
    // SAFETY: the driver's dispatch routine with its device and IRP.
    unsafe { routine(device, irp) }
}

/// Offset, length and flags of a read/write, for the trace.
///
/// # Safety
/// `irp` and `stack` are live.
unsafe fn rw_params(irp: *mut IRP, stack: *mut IO_STACK_LOCATION, major: u8) -> (i64, u32, u32) {
    // SAFETY: the caller's contract.
    let flags = unsafe { (*irp).Flags };
    if major == IRP_MJ_READ || major == IRP_MJ_WRITE {
        // SAFETY: Read/Write is the live member for these majors.
        let p = unsafe { (*stack).Parameters.Read };
        (p.ByteOffset, p.Length, flags)
    } else {
        (0, 0, flags)
    }
}

#[no_mangle]
pub extern "system" fn IofCallDriver(
    deviceobject: *const DEVICE_OBJECT,
    irp: *mut IRP,
) -> NTSTATUS {
    // SAFETY: the caller built the IRP's next location for this device.
    unsafe { call_driver(deviceobject.cast_mut(), irp) }
}

#[no_mangle]
pub extern "system" fn IofCompleteRequest(irp: *const IRP, _priorityboost: i8) {
    let irp = irp.cast_mut();
    // SAFETY: a live IRP owned by the completing driver.
    let (status, information) = unsafe {
        (
            (*irp).IoStatus.Anonymous.Status,
            (*irp).IoStatus.Information,
        )
    };
    // SAFETY: as above.
    unsafe { check_no_completion_routines(irp) };
    // SAFETY: as above.
    let stack = unsafe {
        (*irp)
            .Tail
            .Overlay
            .Anonymous2
            .Anonymous
            .CurrentStackLocation
    };
    // SAFETY: the completing driver's location.
    let (major, fo, device) = unsafe {
        (
            (*stack).MajorFunction,
            (*stack).FileObject,
            (*stack).DeviceObject,
        )
    };
    let threaded = kernel::with(|k| {
        let Some(record) = k.irps.get_mut(&irp) else {
            bugcheck("IofCompleteRequest of an IRP the model did not build")
        };
        if record.completed.is_some() {
            bugcheck("IRP completed twice");
        }
        record.completed = Some((status, information));
        record.threaded
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
    if threaded {
        // SAFETY: a threaded IRP is finished by the I/O manager at completion.
        unsafe { finish_threaded(irp, status, information) };
    }
}

/// Stack locations from the current one up must have no completion routine.
///
/// # Safety
/// `irp` is live.
unsafe fn check_no_completion_routines(irp: *mut IRP) {
    // SAFETY: the caller's contract.
    let mut location = unsafe { (*irp).CurrentLocation };
    // SAFETY: as above.
    let mut stack = unsafe {
        (*irp)
            .Tail
            .Overlay
            .Anonymous2
            .Anonymous
            .CurrentStackLocation
    };
    // SAFETY: as above.
    let count = unsafe { (*irp).StackCount };
    while location <= count {
        // SAFETY: locations CurrentLocation..=StackCount are inside the block.
        if unsafe { (*stack).CompletionRoutine }.is_some() {
            bugcheck("completion routines are not modelled by ntsim");
        }
        location += 1;
        stack = stack.wrapping_add(1);
    }
}

/// Copy-back, status block, event, free: the end of an IoBuild* request.
///
/// # Safety
/// `irp` is a live threaded IRP, just completed.
unsafe fn finish_threaded(irp: *mut IRP, status: NTSTATUS, information: usize) {
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
    let iosb = unsafe { (*irp).Anonymous.UserIosb };
    if !iosb.is_null() {
        // SAFETY: the requester's status block.
        unsafe { (*iosb).Anonymous.Status = status };
        // SAFETY: as above.
        unsafe { (*iosb).Information = information };
    }
    // SAFETY: the live IRP.
    let event = unsafe { (*irp).UserEvent };
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
pub unsafe fn send_and_free(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> (NTSTATUS, usize) {
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
pub extern "system" fn IoBuildSynchronousFsdRequest(
    majorfunction: u32,
    deviceobject: *const DEVICE_OBJECT,
    buffer: *mut c_void,
    length: u32,
    startingoffset: *const i64,
    event: *const KEVENT,
    iostatusblock: *mut IO_STATUS_BLOCK,
) -> *mut IRP {
    let device = deviceobject.cast_mut();
    // SAFETY: a live device.
    let irp = allocate_irp(unsafe { (*device).StackSize }, true);
    // SAFETY: fresh IRP.
    let stack = unsafe { next_stack(irp) };
    // SAFETY: as above.
    unsafe { (*stack).MajorFunction = u8::try_from(majorfunction).unwrap_or(u8::MAX) };
    let offset = if startingoffset.is_null() {
        0
    } else {
        // SAFETY: the caller's offset.
        unsafe { *startingoffset }
    };
    // SAFETY: as above; Read and Write share the layout.
    unsafe { (*stack).Parameters.Read.Length = length };
    // SAFETY: as above.
    unsafe { (*stack).Parameters.Read.ByteOffset = offset };
    if length > 0 && !buffer.is_null() {
        attach_mdl(irp, buffer.cast(), length);
    }
    // SAFETY: fresh IRP.
    unsafe { (*irp).Anonymous.UserIosb = iostatusblock };
    // SAFETY: as above.
    unsafe { (*irp).UserEvent = event.cast_mut() };
    irp
}

#[no_mangle]
pub extern "system" fn IoBuildDeviceIoControlRequest(
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
    if iocontrolcode & 3 != 0 {
        bugcheck("only METHOD_BUFFERED device controls are modelled");
    }
    let device = deviceobject.cast_mut();
    // SAFETY: a live device.
    let irp = allocate_irp(unsafe { (*device).StackSize }, true);
    // SAFETY: fresh IRP.
    let stack = unsafe { next_stack(irp) };
    let major = if internaldeviceiocontrol {
        IRP_MJ_INTERNAL_DEVICE_CONTROL
    } else {
        IRP_MJ_DEVICE_CONTROL
    };
    // SAFETY: as above.
    unsafe { (*stack).MajorFunction = major };
    // SAFETY: as above; DeviceIoControl is the member for these majors.
    unsafe {
        (*stack).Parameters.DeviceIoControl.IoControlCode = iocontrolcode;
    }
    // SAFETY: as above.
    unsafe { (*stack).Parameters.DeviceIoControl.InputBufferLength = inputbufferlength };
    // SAFETY: as above.
    unsafe { (*stack).Parameters.DeviceIoControl.OutputBufferLength = outputbufferlength };
    let mut system = vec![0u8; inputbufferlength.max(outputbufferlength) as usize];
    if inputbufferlength > 0 && !inputbuffer.is_null() {
        // SAFETY: the caller's input buffer holds `inputbufferlength` bytes.
        unsafe {
            ptr::copy_nonoverlapping(
                inputbuffer.cast::<u8>(),
                system.as_mut_ptr(),
                inputbufferlength as usize,
            )
        };
    }
    // SAFETY: fresh IRP; the vector's heap block does not move when the Vec is moved.
    unsafe { (*irp).AssociatedIrp.SystemBuffer = system.as_mut_ptr().cast() };
    kernel::with(|k| {
        if let Some(r) = k.irps.get_mut(&irp) {
            r.system_buffer = Some(system);
            r.copy_back = Some((outputbuffer.cast(), outputbufferlength as usize));
        }
    });
    // SAFETY: fresh IRP.
    unsafe { (*irp).Anonymous.UserIosb = iostatusblock };
    // SAFETY: as above.
    unsafe { (*irp).UserEvent = event.cast_mut() };
    irp
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
pub extern "system" fn IoCheckShareAccess(
    desiredaccess: u32,
    desiredshareaccess: u32,
    fileobject: *mut FILE_OBJECT,
    shareaccess: *mut SHARE_ACCESS,
    update: bool,
) -> NTSTATUS {
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
pub extern "system" fn IoRemoveShareAccess(
    fileobject: *const FILE_OBJECT,
    shareaccess: *mut SHARE_ACCESS,
) {
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
pub fn create_file_object(
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
pub fn reference(fo: *mut FILE_OBJECT) {
    kernel::with(|k| match k.file_objects.get_mut(&fo) {
        Some(r) => r.refs += 1,
        None => bugcheck("reference to a file object that does not exist"),
    });
}

/// `ObfDereferenceObject` on a file object: the last reference sends IRP_MJ_CLOSE (for an
/// opened file object) and frees it (`IopDeleteFile`).
pub fn dereference(fo: *mut FILE_OBJECT) {
    let last = kernel::with(|k| {
        let Some(r) = k.file_objects.get_mut(&fo) else {
            bugcheck("dereference of a file object that does not exist")
        };
        r.refs = r
            .refs
            .checked_sub(1)
            .unwrap_or_else(|| bugcheck("file object reference underflow"));
        (r.refs == 0).then_some((r.opened, r.device))
    });
    let Some((opened, device)) = last else {
        return;
    };
    if opened {
        // SAFETY: a live file object with no references: the close is the last IRP for it.
        let _ = unsafe { send_simple(device, fo, IRP_MJ_CLOSE, 0) };
    }
    free_file_object(fo);
}

/// Frees a file object's memory and record.
pub fn free_file_object(fo: *mut FILE_OBJECT) {
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
pub unsafe fn send_simple(
    device: *mut DEVICE_OBJECT,
    fo: *mut FILE_OBJECT,
    major: u8,
    minor: u8,
) -> (NTSTATUS, usize) {
    // SAFETY: a live device.
    let irp = allocate_irp(unsafe { (*device).StackSize }, false);
    // SAFETY: fresh IRP.
    let stack = unsafe { next_stack(irp) };
    // SAFETY: as above.
    unsafe { (*stack).MajorFunction = major };
    // SAFETY: as above.
    unsafe { (*stack).MinorFunction = minor };
    // SAFETY: as above.
    unsafe { (*stack).FileObject = fo };
    // SAFETY: as above.
    unsafe { (*irp).Tail.Overlay.OriginalFileObject = fo };
    // SAFETY: a complete IRP for `device`.
    unsafe { send_and_free(device, irp) }
}

/// Reads or writes through the file system: `flags` picks paging/non-cached; `buffer` is the
/// user buffer (or the MDL's, for paging I/O).
///
/// # Safety
/// `fo` is a live opened file object; `buffer` holds `len` bytes.
pub unsafe fn send_read_write(
    fo: *mut FILE_OBJECT,
    major: u8,
    offset: i64,
    buffer: *mut u8,
    len: u32,
    flags: u32,
    with_mdl: bool,
) -> (NTSTATUS, usize) {
    let device = kernel::with(|k| k.file_objects.get(&fo).map(|r| r.device));
    let Some(device) = device else {
        bugcheck("I/O on a file object that does not exist")
    };
    reference(fo);
    // SAFETY: a live device.
    let irp = allocate_irp(unsafe { (*device).StackSize }, false);
    // SAFETY: fresh IRP.
    let stack = unsafe { next_stack(irp) };
    // SAFETY: as above.
    unsafe { (*stack).MajorFunction = major };
    // SAFETY: as above.
    unsafe { (*stack).FileObject = fo };
    // SAFETY: as above; Read and Write share the layout.
    unsafe { (*stack).Parameters.Read.Length = len };
    // SAFETY: as above.
    unsafe { (*stack).Parameters.Read.ByteOffset = offset };
    // SAFETY: as above.
    unsafe { (*irp).Flags = flags };
    // SAFETY: as above.
    unsafe { (*irp).Tail.Overlay.OriginalFileObject = fo };
    if with_mdl {
        attach_mdl(irp, buffer, len);
    } else {
        // SAFETY: as above.
        unsafe { (*irp).UserBuffer = buffer.cast() };
        // SAFETY: as above (UserMode requester).
        unsafe { (*irp).RequestorMode = 1 };
    }
    // SAFETY: a complete IRP for the file's device.
    let result = unsafe { send_and_free(device, irp) };
    dereference(fo);
    result
}
