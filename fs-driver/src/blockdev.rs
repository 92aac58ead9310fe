//! fs-core's `BlockDevice` over the volume's target device (fastfat's `FatPerformDevIoCtrl`
//! and `FatSingleAsync`/`FatReadVolumeFile` reduced to what fs-core needs).
//!
//! Every sector transfer is one synchronous FSD request (`IoBuildSynchronousFsdRequest` +
//! `IofCallDriver`, waiting on a stack event if the disk pends it). fs-core only issues
//! sector-aligned transfers; anything else is refused here as `Misaligned`.

use core::ffi::c_void;
use core::ptr;

use fs_core::{BlockDevice, DeviceError, DeviceErrorKind};

use crate::nt::{self, DEVICE_OBJECT, IO_STATUS_BLOCK, KEVENT, NTSTATUS};

/// The volume's target device (the disk below us).
pub struct TargetDevice {
    device: *mut DEVICE_OBJECT,
    size: u64,
    sector: u32,
}

impl TargetDevice {
    /// Asks the device for its length (`IOCTL_DISK_GET_LENGTH_INFO`) and sector size.
    ///
    /// # Safety
    /// `device` is a live device object that stays alive as long as the returned value.
    pub unsafe fn open(device: *mut DEVICE_OBJECT) -> Result<Self, NTSTATUS> {
        // SAFETY: live device per the caller.
        let sector = u32::from(unsafe { (*device).SectorSize });
        let sector = if sector == 0 { 512 } else { sector };
        let mut length: i64 = 0;
        // SAFETY: live device; the output buffer is ours for the duration.
        let status = unsafe { query_length(device, &mut length) };
        if status < 0 {
            return Err(status);
        }
        let size = u64::try_from(length).map_err(|_| nt::STATUS_IO_DEVICE_ERROR)?;
        Ok(Self {
            device,
            size: size - size % u64::from(sector),
            sector,
        })
    }

    fn check(&self, offset: u64, len: usize) -> Result<u32, DeviceError> {
        fs_core::device::check_range(offset, len, self.size, self.sector)?;
        u32::try_from(len).map_err(|_| DeviceError::new(DeviceErrorKind::OutOfRange, offset))
    }

    fn transfer(
        &mut self,
        major: u32,
        offset: u64,
        buf: *mut c_void,
        len: u32,
    ) -> Result<(), DeviceError> {
        let io_error = |status| DeviceError::new(DeviceErrorKind::Io { code: status }, offset);
        let start = i64::try_from(offset).map_err(|_| io_error(nt::STATUS_INVALID_PARAMETER))?;
        // SAFETY: the device is alive (constructor contract); the buffer is valid for `len`
        // bytes for the duration of the synchronous request.
        let status = unsafe { synchronous_request(major, self.device, buf, len, start) };
        if status < 0 {
            return Err(io_error(status));
        }
        Ok(())
    }
}

/// One synchronous FSD request to `device`, waited for.
///
/// # Safety
/// `device` is live; `buf` is valid for `len` bytes until the request completes.
unsafe fn synchronous_request(
    major: u32,
    device: *mut DEVICE_OBJECT,
    buf: *mut c_void,
    len: u32,
    offset: i64,
) -> NTSTATUS {
    let mut event = KEVENT::default();
    // SAFETY: a stack event that outlives the request (we wait for it below).
    unsafe { nt::KeInitializeEvent(&mut event, nt::NotificationEvent, false) };
    let mut iosb = IO_STATUS_BLOCK::default();
    // SAFETY: valid device, buffer, offset, event and status block, all alive until completion.
    let irp = unsafe {
        nt::IoBuildSynchronousFsdRequest(major, device, buf, len, &offset, &event, &mut iosb)
    };
    if irp.is_null() {
        return nt::STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: a fully built IRP for `device`; the I/O manager frees it at completion.
    let status = unsafe { nt::IofCallDriver(device, irp) };
    // SAFETY: waits on our event; the I/O manager wrote iosb before setting it.
    unsafe { wait_if_pending(status, &event, &iosb) }
}

/// After `IofCallDriver`: the final status, waiting for the event if the driver pended.
///
/// # Safety
/// `event` and `iosb` belong to the request just sent.
unsafe fn wait_if_pending(status: NTSTATUS, event: &KEVENT, iosb: &IO_STATUS_BLOCK) -> NTSTATUS {
    if status != nt::STATUS_PENDING {
        return status;
    }
    let object = ptr::from_ref(event).cast::<c_void>();
    // SAFETY: a live notification event; kernel-mode wait at PASSIVE_LEVEL.
    unsafe {
        nt::KeWaitForSingleObject(
            object,
            nt::Executive,
            nt::KernelMode as i8,
            false,
            ptr::null(),
        )
    };
    // SAFETY: the I/O manager wrote the status block before signalling the event.
    unsafe { iosb.Anonymous.Status }
}

/// `IOCTL_DISK_GET_LENGTH_INFO` to `device`.
///
/// # Safety
/// `device` is live.
unsafe fn query_length(device: *mut DEVICE_OBJECT, length: &mut i64) -> NTSTATUS {
    let mut event = KEVENT::default();
    // SAFETY: a stack event that outlives the request.
    unsafe { nt::KeInitializeEvent(&mut event, nt::NotificationEvent, false) };
    let mut iosb = IO_STATUS_BLOCK::default();
    let out = ptr::from_mut(length).cast::<c_void>();
    let out_len = crate::resrcsup::size_of_u32::<i64>();
    // SAFETY: valid device, output buffer, event and status block until completion.
    let irp = unsafe {
        nt::IoBuildDeviceIoControlRequest(
            nt::IOCTL_DISK_GET_LENGTH_INFO,
            device,
            ptr::null(),
            0,
            out,
            out_len,
            false,
            &event,
            &mut iosb,
        )
    };
    if irp.is_null() {
        return nt::STATUS_INSUFFICIENT_RESOURCES;
    }
    // SAFETY: a fully built IRP for `device`.
    let status = unsafe { nt::IofCallDriver(device, irp) };
    // SAFETY: as in `synchronous_request`.
    unsafe { wait_if_pending(status, &event, &iosb) }
}

impl BlockDevice for TargetDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn sector_size(&self) -> u32 {
        self.sector
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let len = self.check(offset, buf.len())?;
        self.transfer(nt::IRP_MJ_READ, offset, buf.as_mut_ptr().cast(), len)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let len = self.check(offset, buf.len())?;
        // The disk only reads from a write buffer; the C prototype is not const-correct.
        self.transfer(
            nt::IRP_MJ_WRITE,
            offset,
            buf.as_ptr().cast_mut().cast(),
            len,
        )
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        // SAFETY: the device is alive; a flush carries no buffer.
        let status = unsafe {
            synchronous_request(nt::IRP_MJ_FLUSH_BUFFERS, self.device, ptr::null_mut(), 0, 0)
        };
        if status < 0 {
            return Err(DeviceError::new(DeviceErrorKind::Io { code: status }, 0));
        }
        Ok(())
    }
}
