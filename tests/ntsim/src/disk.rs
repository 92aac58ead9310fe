//! The volume's target device: a disk driver whose IRP_MJ_READ/WRITE (direct I/O: the buffer
//! comes as an MDL) go to an fs-core `MemDevice`, with `IOCTL_DISK_GET_LENGTH_INFO` and flush.
//! Transfers must be sector aligned, as on a real disk (a misaligned one fails with
//! `STATUS_INVALID_PARAMETER`). In pending mode ([`crate::api::Sim::set_disk_pending`]) the
//! disk returns `STATUS_PENDING` for every request and completes them when the requester
//! waits (`KeWaitForSingleObject`), which is where a real completion would wake it.
//! With a write cache ([`crate::api::Sim::enable_disk_write_cache`]) the disk behaves like one
//! with its volatile cache on: reads see every write, but a write is durable only once an
//! `IRP_MJ_FLUSH_BUFFERS` completed after it, and a power cut leaves any subset of the later
//! ones (the model of `fs_core::crash`).
//! As class drivers do, while the device has `DO_VERIFY_VOLUME` set a read or write without
//! `SL_OVERRIDE_VERIFY_VOLUME` in its stack location fails with `STATUS_VERIFY_REQUIRED`
//! (only the file system's verify may reach the medium). The MDL must describe mapped memory
//! (`MmBuildMdlForNonPagedPool`, or locked and mapped pages).
//! It records the device controls and PnP requests it receives (tests check what a file
//! system forwarded); after IRP_MN_REMOVE_DEVICE or IRP_MN_SURPRISE_REMOVAL it fails every
//! request with `STATUS_NO_SUCH_DEVICE`, and a query-remove can be refused.
#![allow(unsafe_code)]

use std::ptr;

use fs_core::{BlockDevice, MemDevice};
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, DRIVER_OBJECT, IO_STACK_LOCATION, IRP, VPB};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_IO_DEVICE_ERROR,
    STATUS_PENDING, STATUS_SUCCESS, STATUS_VERIFY_REQUIRED,
};

use crate::ex::bugcheck;
use crate::io;
use crate::kernel;

const SECTOR: u16 = 512;
/// `SL_PENDING_RETURNED`.
const SL_PENDING_RETURNED: u8 = 0x01;
const DO_DIRECT_IO: u32 = 0x10;
/// `DO_VERIFY_VOLUME`: the medium may have changed; only verify I/O gets through.
const DO_VERIFY_VOLUME: u32 = 0x02;
/// `SL_OVERRIDE_VERIFY_VOLUME` (an `IO_STACK_LOCATION::Flags` bit).
const SL_OVERRIDE_VERIFY_VOLUME: u8 = 0x02;
/// `MDL_MAPPED_TO_SYSTEM_VA`, `MDL_SOURCE_IS_NONPAGED_POOL`.
const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
/// `MDL_PARTIAL`: built by `IoBuildPartialMdl` (the model maps it at once).
const MDL_PARTIAL: i16 = 0x0010;
const FILE_DEVICE_DISK: u32 = 7;
const IOCTL_DISK_GET_LENGTH_INFO: u32 = 0x0007_405C;
const IRP_MJ_READ: u8 = 0x03;
const IRP_MJ_WRITE: u8 = 0x04;
const IRP_MJ_FLUSH_BUFFERS: u8 = 0x09;
const IRP_MJ_DEVICE_CONTROL: u8 = 0x0e;
const IRP_MJ_PNP: u8 = 0x1b;
/// `IRP_MN_QUERY_REMOVE_DEVICE`, `_REMOVE_DEVICE`, `_CANCEL_REMOVE_DEVICE`,
/// `_SURPRISE_REMOVAL`.
pub const IRP_MN_QUERY_REMOVE_DEVICE: u8 = 0x01;
pub const IRP_MN_REMOVE_DEVICE: u8 = 0x02;
pub const IRP_MN_CANCEL_REMOVE_DEVICE: u8 = 0x03;
pub const IRP_MN_SURPRISE_REMOVAL: u8 = 0x17;
/// `STATUS_NO_SUCH_DEVICE`: what a removed disk answers.
pub const STATUS_NO_SUCH_DEVICE: NTSTATUS = 0xC000_000E_u32 as NTSTATUS;
/// The pool tag the I/O manager allocates VPBs with (`IopCreateVpb`).
pub const VPB_TAG: u32 = u32::from_le_bytes(*b"Vpb ");

/// What a power cut would leave of the disk: the medium as of the last completed flush, and
/// the writes issued since, in order.
#[derive(Debug, Clone)]
pub struct WriteCache {
    pub durable: MemDevice,
    pub unflushed: Vec<(u64, Vec<u8>)>,
    /// `IRP_MJ_FLUSH_BUFFERS` requests the disk completed.
    pub flushes: u64,
}

impl WriteCache {
    fn flush(&mut self) {
        for (offset, data) in self.unflushed.drain(..) {
            self.durable.put(offset, &data);
        }
        self.flushes += 1;
    }
}

/// The disk driver object, its device and the device's VPB.
#[derive(Debug)]
pub struct Disk {
    /// The disk's driver object (owned by the model).
    pub driver: *mut DRIVER_OBJECT,
    /// The disk device.
    pub device: *mut DEVICE_OBJECT,
    /// The VPB the disk was created with (the device gets a new one after a dismount).
    pub vpb: *mut VPB,
}

/// Creates the disk over `medium`.
#[must_use]
pub(crate) fn create(medium: MemDevice) -> Disk {
    let mut driver = Box::new(DRIVER_OBJECT::default());
    for major in [
        IRP_MJ_READ,
        IRP_MJ_WRITE,
        IRP_MJ_FLUSH_BUFFERS,
        IRP_MJ_DEVICE_CONTROL,
        IRP_MJ_PNP,
    ] {
        driver.MajorFunction[usize::from(major)] = Some(disk_dispatch);
    }
    let driver = Box::into_raw(driver);
    let mut device = ptr::null_mut();
    // SAFETY: our own driver object and out pointer.
    let status = unsafe {
        io::IoCreateDevice(
            driver,
            0,
            ptr::null(),
            FILE_DEVICE_DISK,
            0,
            false,
            &mut device,
        )
    };
    if status < 0 {
        bugcheck("cannot create the disk device");
    }
    let vpb = new_vpb(device);
    // SAFETY: the device was just created by the model.
    unsafe { (*device).SectorSize = SECTOR };
    // SAFETY: as above.
    unsafe { (*device).Flags = DO_DIRECT_IO };
    // SAFETY: as above.
    unsafe { (*device).Vpb = vpb };
    kernel::with(|k| {
        k.disk = Some(medium);
        k.disk_device = device;
    });
    Disk {
        driver,
        device,
        vpb,
    }
}

/// The disk's VPB (`IopCreateVpb`): non-paged pool under the I/O manager's tag, so a file
/// system that swaps it out (NT-29) frees it with `ExFreePool`, and one it forgets is a leak.
#[must_use]
pub(crate) fn new_vpb(device: *mut DEVICE_OBJECT) -> *mut VPB {
    let vpb = crate::ex::allocate_pool(0x40, std::mem::size_of::<VPB>(), VPB_TAG).cast::<VPB>();
    if vpb.is_null() {
        bugcheck("no pool for the disk's VPB");
    }
    let value = VPB {
        Type: 10,
        Size: i16::try_from(std::mem::size_of::<VPB>()).unwrap_or(i16::MAX),
        RealDevice: device,
        ..Default::default()
    };
    // SAFETY: a fresh, zeroed, suitably aligned pool block of VPB size.
    unsafe { vpb.write(value) };
    vpb
}

/// Frees the disk's current VPB when the disk goes (`IoDeleteDevice` of a device with a VPB):
/// ours, or the spare a file system swapped in (allocated under its own tag).
pub(crate) fn free_vpb(vpb: *mut VPB) {
    // SAFETY: a pool VPB, freed once.
    unsafe { crate::ex::ExFreePool(vpb.cast()) };
}

/// Deletes the disk and gives its medium back.
pub(crate) fn destroy(disk: &Disk) -> Option<MemDevice> {
    // SAFETY: the disk device the model created, deleted once.
    unsafe { io::IoDeleteDevice(disk.device) };
    io::reap_devices();
    // SAFETY: created by Box::into_raw in `create`; its only device is gone.
    drop(unsafe { Box::from_raw(disk.driver) });
    kernel::with(|k| {
        k.disk_device = ptr::null_mut();
        k.disk.take()
    })
}

/// Is `device` the disk?
#[must_use]
pub(crate) fn is_disk_device(device: *mut DEVICE_OBJECT) -> bool {
    kernel::with(|k| k.disk_device == device)
}

/// The disk's dispatch routine.
unsafe extern "system" fn disk_dispatch(device: *const DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the I/O manager calls us with a live IRP whose current location is ours.
    let stack = unsafe { io::current_stack(irp) };
    // SAFETY: as above.
    let location = unsafe { *stack };
    // SAFETY: our live device.
    let verify_pending = unsafe { (*device).Flags } & DO_VERIFY_VOLUME != 0;
    let transfer_major = matches!(location.MajorFunction, IRP_MJ_READ | IRP_MJ_WRITE);
    let (status, information) = match location.MajorFunction {
        _ if transfer_major
            && verify_pending
            && location.Flags & SL_OVERRIDE_VERIFY_VOLUME == 0 =>
        {
            kernel::with(|k| k.verify_required_failures += 1);
            (STATUS_VERIFY_REQUIRED, 0)
        }
        // SAFETY: a read/write IRP of ours.
        IRP_MJ_READ | IRP_MJ_WRITE => unsafe { transfer(irp, &location) },
        IRP_MJ_FLUSH_BUFFERS => {
            kernel::with(|k| k.disk_cache.as_mut().map(WriteCache::flush));
            crate::cost::disk_flush();
            (STATUS_SUCCESS, 0)
        }
        // SAFETY: a device control IRP of ours.
        IRP_MJ_DEVICE_CONTROL => unsafe { device_control(irp, &location) },
        IRP_MJ_PNP => (pnp(location.MinorFunction), 0),
        _ => (STATUS_INVALID_DEVICE_REQUEST, 0),
    };
    // SAFETY: the IRP is ours until completed.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.IoStatus.Anonymous.Status = status;
    irp_ref.IoStatus.Information = information;
    let pend = kernel::with(|k| {
        if k.disk_pends {
            k.pending.push(irp);
            k.pended_total += 1;
        }
        k.disk_pends
    });
    if pend {
        // IoMarkIrpPending: the completion comes later, when the requester waits.
        // SAFETY: our current stack location.
        unsafe { (*stack).Control |= SL_PENDING_RETURNED };
        return STATUS_PENDING;
    }
    // SAFETY: our IRP, completed once; not touched afterwards.
    unsafe { io::IofCompleteRequest(irp, 0) };
    status
}

/// The disk's part of PnP removal: it says whether it may go, and goes.
fn pnp(minor: u8) -> NTSTATUS {
    kernel::with(|k| {
        k.disk_pnp.push(minor);
        match minor {
            IRP_MN_QUERY_REMOVE_DEVICE if k.disk_refuses_query_remove => {
                STATUS_INVALID_DEVICE_REQUEST
            }
            IRP_MN_QUERY_REMOVE_DEVICE | IRP_MN_CANCEL_REMOVE_DEVICE => STATUS_SUCCESS,
            IRP_MN_REMOVE_DEVICE | IRP_MN_SURPRISE_REMOVAL => {
                k.disk_removed = true;
                STATUS_SUCCESS
            }
            _ => STATUS_INVALID_DEVICE_REQUEST,
        }
    })
}

/// Completes every request the disk pended (its interrupt and DPC, so completion routines
/// run at DISPATCH_LEVEL), in order.
pub(crate) fn complete_pending() {
    let pending = kernel::with(|k| std::mem::take(&mut k.pending));
    if pending.is_empty() {
        return;
    }
    let old = crate::irql::raise(crate::irql::DISPATCH_LEVEL);
    for irp in pending {
        // SAFETY: a pended IRP of the disk, completed once here; its status is set.
        unsafe { io::IofCompleteRequest(irp, 0) };
    }
    crate::irql::lower(old);
}

/// A sector read or write against the medium.
///
/// # Safety
/// `irp` is a live read/write IRP with an MDL; `location` its current location.
unsafe fn transfer(irp: *mut IRP, location: &IO_STACK_LOCATION) -> (NTSTATUS, usize) {
    let write = location.MajorFunction == IRP_MJ_WRITE;
    // SAFETY: Read/Write is the live member for these majors.
    let params = unsafe { location.Parameters.Read };
    // SAFETY: the caller's contract.
    let mdl = unsafe { (*irp).MdlAddress };
    let Ok(offset) = u64::try_from(params.ByteOffset) else {
        return (STATUS_INVALID_PARAMETER, 0);
    };
    let len = params.Length as usize;
    if mdl.is_null() {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    // SAFETY: the IRP's MDL.
    let mdl_flags = unsafe { (*mdl).MdlFlags };
    if mdl_flags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL | MDL_PARTIAL) == 0 {
        bugcheck("disk transfer with an MDL that describes no mapped pages (not built for non-paged pool, not locked)");
    }
    // SAFETY: the IRP's MDL.
    if unsafe { (*mdl).ByteCount } < params.Length {
        bugcheck("disk transfer longer than its MDL");
    }
    // SAFETY: the model's MDLs are mapped to system space.
    let buffer = unsafe { (*mdl).MappedSystemVa }.cast::<u8>();
    let result = kernel::with(|k| {
        if k.disk_removed {
            return Err(STATUS_NO_SUCH_DEVICE);
        }
        let Some(disk) = k.disk.as_mut() else {
            return Err(STATUS_IO_DEVICE_ERROR);
        };
        if write {
            k.disk_io.1 += 1;
            // SAFETY: the MDL describes `len` readable bytes.
            let data = unsafe { std::slice::from_raw_parts(buffer, len) };
            disk.write_at(offset, data)
                .map_err(|_| STATUS_INVALID_PARAMETER)?;
            if let Some(cache) = k.disk_cache.as_mut() {
                cache.unflushed.push((offset, data.to_vec()));
            }
            Ok(())
        } else {
            k.disk_io.0 += 1;
            if k.disk_read_error {
                return Err(windows_sys::Win32::Foundation::STATUS_DEVICE_DATA_ERROR);
            }
            // SAFETY: the MDL describes `len` writable bytes no one else uses now.
            let data = unsafe { std::slice::from_raw_parts_mut(buffer, len) };
            disk.read_at(offset, data)
                .map_err(|_| STATUS_INVALID_PARAMETER)
        }
    });
    match result {
        Ok(()) => {
            crate::cost::disk_transfer(write, len);
            (STATUS_SUCCESS, len)
        }
        Err(status) => (status, 0),
    }
}

/// `IOCTL_DISK_GET_LENGTH_INFO` (METHOD_BUFFERED: the answer goes to the system buffer).
///
/// # Safety
/// `irp` is a live device control IRP; `location` its current location.
unsafe fn device_control(irp: *mut IRP, location: &IO_STACK_LOCATION) -> (NTSTATUS, usize) {
    // SAFETY: DeviceIoControl is the live member for this major.
    let params = unsafe { location.Parameters.DeviceIoControl };
    let removed = kernel::with(|k| {
        k.disk_ioctls.push(params.IoControlCode);
        k.disk_removed
    });
    if removed {
        return (STATUS_NO_SUCH_DEVICE, 0);
    }
    if params.IoControlCode != IOCTL_DISK_GET_LENGTH_INFO || params.OutputBufferLength < 8 {
        return (STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    let size = kernel::with(|k| k.disk.as_ref().map_or(0, BlockDevice::size));
    // SAFETY: the caller's contract.
    let irp_ref = unsafe { &*irp };
    // SAFETY: SystemBuffer is the member of a buffered request.
    let out = unsafe { irp_ref.AssociatedIrp.SystemBuffer }.cast::<i64>();
    // SAFETY: the system buffer holds at least OutputBufferLength (>= 8) bytes.
    unsafe { out.write_unaligned(i64::try_from(size).unwrap_or(i64::MAX)) };
    (STATUS_SUCCESS, 8)
}
