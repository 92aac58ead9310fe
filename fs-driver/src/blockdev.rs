//! fs-core's `BlockDevice` over the volume's target device (fastfat's `FatSingleAsync` +
//! `FatWaitSync` and `FatPerformDevIoCtrl`, reduced to what fs-core needs).
//!
//! Every sector transfer goes down on an IRP of our own (NT-27): `IoAllocateIrp`, an MDL over
//! the buffer (`IoAllocateMdl`, then a partial MDL of the request's own MDL when fs-core
//! transfers straight into the paging or locked user buffer, else `MmBuildMdlForNonPagedPool`:
//! fs-core's own buffers are pool or stack, both resident), a completion routine that signals a stack event and returns
//! `STATUS_MORE_PROCESSING_REQUIRED` so the IRP comes back to us, a wait on the event, then
//! `IoFreeMdl` + `IoFreeIrp`. Nothing of it needs an APC, so it works at APC_LEVEL, where
//! paging reads and writes and Mm's closes arrive; `IoBuildSynchronousFsdRequest` would hang
//! there (its completion is a kernel APC).
//!
//! Low resources (NT-26): the mounted volume keeps one IRP and one MDL in reserve, allocated
//! at mount. Paging writes, which must make progress when nothing can be allocated (they are
//! how Mm gets memory back), always use them, 64 KiB at a time, so they never ask for memory;
//! any other transfer of a mounted volume uses them when its own IRP or MDL cannot be
//! allocated, so a multi-block metadata change never stops halfway for want of pool. Only a
//! mount's own reads (no reserve yet) fail with `STATUS_INSUFFICIENT_RESOURCES`.
//! The volume lock, held around every fs-core call (`&mut self` here), serializes them.
//!
//! Verify (NT-29): the reads of a mount or verify probe carry `SL_OVERRIDE_VERIFY_VOLUME`, so
//! they reach a medium whose device has `DO_VERIFY_VOLUME` set; the mounted volume's own I/O
//! does not, and fails with `STATUS_VERIFY_REQUIRED` until the verify is done.
//!
//! fs-core only issues sector-aligned transfers; anything else is refused as `Misaligned`.

use core::ffi::c_void;
use core::ptr;

use fs_core::{BlockDevice, DeviceError, DeviceErrorKind};

use crate::nt::{self, DEVICE_OBJECT, IO_STATUS_BLOCK, IRP, KEVENT, MDL, NTSTATUS};
use crate::wdk_inline::{io_get_next_irp_stack_location, io_set_completion_routine};

/// The most one reserved transfer moves; larger ones are split.
const RESERVE_SPAN: u32 = 64 * 1024;
/// The reserve MDL covers `RESERVE_SPAN` at any page offset: one page more.
const RESERVE_MDL_BYTES: u32 = RESERVE_SPAN + 4096;

/// How reads and writes go to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The mounted volume's I/O.
    Mounted,
    /// A mount or verify probe: `SL_OVERRIDE_VERIFY_VOLUME` on every transfer.
    Probe,
}

/// One IRP and one MDL kept for paging writes when allocations fail.
struct Reserve {
    irp: *mut IRP,
    mdl: *mut MDL,
}

/// The volume's target device (the disk below us).
pub struct TargetDevice {
    device: *mut DEVICE_OBJECT,
    size: u64,
    sector: u32,
    access: Access,
    reserve: Option<Reserve>,
    /// A paging write is running: its transfers use the reserve.
    in_paging_write: bool,
    /// The buffer of the IRP being served, if fs-core may transfer straight into it.
    request_buffer: Option<RequestBuffer>,
}

/// A request's buffer: its system address and the MDL that describes it (the paging MDL, or
/// the one that locked the caller's pages). Transfers into it go down as partial MDLs of that
/// MDL (fastfat's `IoBuildPartialMdl` in `FatSingleAsync`); fs-core's own buffers (pool,
/// stack) get `MmBuildMdlForNonPagedPool`.
#[derive(Clone, Copy, Debug)]
pub struct RequestBuffer {
    /// The MDL.
    pub mdl: *mut MDL,
    /// The system address the driver uses for it.
    pub system: *mut u8,
    /// Its length in bytes.
    pub len: usize,
}

impl RequestBuffer {
    /// The MDL's virtual address of `[buf, buf + len)` if it lies inside this buffer.
    fn virtual_address_of(&self, buf: *mut c_void, len: u32) -> Option<*mut c_void> {
        let start = self.system.addr();
        let at = buf.addr().checked_sub(start)?;
        if at.checked_add(len as usize)? > self.len {
            return None;
        }
        // SAFETY: a live MDL of the request being served.
        let mdl = unsafe { &*self.mdl };
        let base = mdl
            .StartVa
            .cast::<u8>()
            .wrapping_add(mdl.ByteOffset as usize);
        Some(base.wrapping_add(at).cast())
    }
}

impl TargetDevice {
    /// Asks the device for its length (`IOCTL_DISK_GET_LENGTH_INFO`) and sector size.
    ///
    /// # Safety
    /// `device` is a live device object that stays alive as long as the returned value; the
    /// caller runs at PASSIVE_LEVEL (mount and verify do).
    pub unsafe fn open(device: *mut DEVICE_OBJECT, access: Access) -> Result<Self, NTSTATUS> {
        // SAFETY: live device per the caller.
        let sector = u32::from(unsafe { (*device).SectorSize });
        let sector = if sector == 0 { 512 } else { sector };
        let mut length: i64 = 0;
        // SAFETY: live device; the output buffer is ours for the duration; PASSIVE_LEVEL.
        let status = unsafe { query_length(device, &mut length) };
        if status < 0 {
            return Err(status);
        }
        let size = u64::try_from(length).map_err(|_| nt::STATUS_IO_DEVICE_ERROR)?;
        Ok(Self {
            device,
            size: size - size % u64::from(sector),
            sector,
            access,
            reserve: None,
            in_paging_write: false,
            request_buffer: None,
        })
    }

    /// The mount is done: from now on this is the mounted volume's device. Allocates the
    /// paging-write reserve.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` if the reserve cannot be allocated.
    pub fn make_mounted(&mut self) -> Result<(), NTSTATUS> {
        self.access = Access::Mounted;
        if self.reserve.is_some() {
            return Ok(());
        }
        // SAFETY: the device is alive (constructor contract).
        let stack_size = unsafe { (*self.device).StackSize };
        // SAFETY: any IRQL <= DISPATCH_LEVEL.
        let irp = unsafe { nt::IoAllocateIrp(stack_size, false) };
        if irp.is_null() {
            return Err(nt::STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: no buffer yet: the MDL is re-initialised for each use.
        let mdl = unsafe {
            nt::IoAllocateMdl(
                ptr::null(),
                RESERVE_MDL_BYTES,
                false,
                false,
                ptr::null_mut(),
            )
        };
        if mdl.is_null() {
            // SAFETY: ours, never sent.
            unsafe { nt::IoFreeIrp(irp) };
            return Err(nt::STATUS_INSUFFICIENT_RESOURCES);
        }
        self.reserve = Some(Reserve { irp, mdl });
        Ok(())
    }

    /// Sets (or, with `None, false`, clears) what the IRP being served brings: its buffer, and
    /// whether it is a paging write (whose transfers then use the reserve).
    pub fn set_request(&mut self, buffer: Option<RequestBuffer>, paging_write: bool) {
        self.request_buffer = buffer;
        self.in_paging_write = paging_write;
    }

    fn check(&self, offset: u64, len: usize) -> Result<u32, DeviceError> {
        fs_core::device::check_range(offset, len, self.size, self.sector)?;
        u32::try_from(len).map_err(|_| DeviceError::new(DeviceErrorKind::OutOfRange, offset))
    }

    /// `SL_OVERRIDE_VERIFY_VOLUME` for a probe's transfers.
    fn stack_flags(&self) -> u8 {
        match self.access {
            // A single-bit flag of a u8 field, declared as a u32 constant.
            Access::Probe => nt::SL_OVERRIDE_VERIFY_VOLUME as u8,
            Access::Mounted => 0,
        }
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
        let source = self
            .request_buffer
            .and_then(|w| w.virtual_address_of(buf, len).map(|va| (w.mdl, va)));
        let request = Request {
            device: self.device,
            major,
            buf,
            len,
            offset: start,
            flags: self.stack_flags(),
            source,
        };
        #[cfg(not(windows))]
        if threaded::enabled() {
            // SAFETY: as below.
            let status = unsafe { threaded::transfer(&request) };
            return if status < 0 {
                Err(io_error(status))
            } else {
                Ok(())
            };
        }
        let status = match &self.reserve {
            // SAFETY: the device is alive (constructor contract); the buffer is valid for
            // `len` bytes until the request is back (we wait for it); the reserve is ours
            // alone under the volume lock.
            Some(reserve) if self.in_paging_write => unsafe { request.send_on_reserve(reserve) },
            // SAFETY: as above. Out of pool, a mounted volume's transfer falls back to the
            // reserve too: a metadata change must not stop halfway for want of an IRP.
            _ => match unsafe { request.send_on_own_irp() } {
                Some(status) => status,
                None => match &self.reserve {
                    // SAFETY: as above.
                    Some(reserve) => unsafe { request.send_on_reserve(reserve) },
                    None => nt::STATUS_INSUFFICIENT_RESOURCES,
                },
            },
        };
        if status < 0 {
            return Err(io_error(status));
        }
        Ok(())
    }
}

impl Drop for TargetDevice {
    fn drop(&mut self) {
        if let Some(reserve) = self.reserve.take() {
            // SAFETY: allocated in `make_mounted`, at rest (every use waits for completion),
            // freed once.
            unsafe { nt::IoFreeMdl(reserve.mdl) };
            // SAFETY: as above.
            unsafe { nt::IoFreeIrp(reserve.irp) };
        }
    }
}

/// One transfer to the target device.
struct Request {
    device: *mut DEVICE_OBJECT,
    major: u32,
    buf: *mut c_void,
    len: u32,
    offset: i64,
    /// `IO_STACK_LOCATION::Flags` for the disk.
    flags: u8,
    /// The request's MDL and the virtual address of `buf` in it, when `buf` lies in the
    /// buffer of the IRP being served.
    source: Option<(*mut MDL, *mut c_void)>,
}

impl Request {
    /// Makes `mdl` (allocated for at least `len` bytes at this address) describe `len` bytes
    /// at `buf`: a partial MDL of the request's, or fs-core's resident buffer.
    ///
    /// # Safety
    /// `mdl` is ours and at rest; `buf` lies in the request's buffer or is resident memory.
    unsafe fn describe(&self, mdl: *mut MDL, buf: *mut c_void, len: u32) {
        match self.source {
            Some((source, va)) => {
                let delta = buf.addr() - self.buf.addr();
                let va = va.cast::<u8>().wrapping_add(delta).cast();
                // SAFETY: `va..va + len` lies inside the source MDL (checked when set).
                unsafe { nt::IoBuildPartialMdl(source, mdl, va, len) };
            }
            None => {
                // SAFETY: fs-core's buffers are pool or kernel stack: resident while we wait.
                unsafe { crate::wdk_inline::mm_initialize_mdl(mdl, buf, len) };
                // SAFETY: as above.
                unsafe { nt::MmBuildMdlForNonPagedPool(mdl) };
            }
        }
    }
}

impl Request {
    /// Sends the request on a freshly allocated IRP (and MDL); `None` if either allocation
    /// failed.
    ///
    /// # Safety
    /// The device is live; `buf` is valid for `len` bytes until this returns.
    unsafe fn send_on_own_irp(&self) -> Option<NTSTATUS> {
        // SAFETY: the device is live.
        let stack_size = unsafe { (*self.device).StackSize };
        // SAFETY: any IRQL <= DISPATCH_LEVEL.
        let irp = unsafe { nt::IoAllocateIrp(stack_size, false) };
        if irp.is_null() {
            return None;
        }
        let mut mdl: *mut MDL = ptr::null_mut();
        if self.len > 0 {
            // Sized for the buffer's own address (or its address in the source MDL, the same
            // page offset).
            let va = self.source.map_or(self.buf, |(_, va)| va);
            // SAFETY: the MDL is not tied to an IRP; it only sizes itself from `va`.
            mdl = unsafe { nt::IoAllocateMdl(va, self.len, false, false, ptr::null_mut()) };
            if mdl.is_null() {
                // SAFETY: ours, never sent.
                unsafe { nt::IoFreeIrp(irp) };
                return None;
            }
            // SAFETY: our fresh MDL; the caller's buffer contract.
            unsafe { self.describe(mdl, self.buf, self.len) };
        }
        // SAFETY: our fresh IRP and MDL; the caller's buffer contract.
        let status = unsafe { self.send(irp, mdl, self.offset, self.len) };
        if !mdl.is_null() {
            // SAFETY: the request is back (the completion routine stopped completion).
            unsafe { nt::IoFreeMdl(mdl) };
        }
        // SAFETY: as above: ours again, at rest.
        unsafe { nt::IoFreeIrp(irp) };
        Some(status)
    }

    /// Sends the request on the reserve, `RESERVE_SPAN` bytes at a time (allocates nothing).
    ///
    /// # Safety
    /// As [`Request::send_on_own_irp`]; nobody else uses the reserve meanwhile.
    unsafe fn send_on_reserve(&self, reserve: &Reserve) -> NTSTATUS {
        let mut done = 0u32;
        loop {
            let chunk = (self.len - done).min(RESERVE_SPAN);
            // SAFETY: the reserve IRP is at rest between uses.
            unsafe { nt::IoReuseIrp(reserve.irp, nt::STATUS_SUCCESS) };
            let mut mdl: *mut MDL = ptr::null_mut();
            if chunk > 0 {
                let part = self.buf.cast::<u8>().wrapping_add(done as usize).cast();
                // SAFETY: the reserve MDL covers RESERVE_SPAN at any offset and is at rest.
                unsafe { self.describe(reserve.mdl, part, chunk) };
                mdl = reserve.mdl;
            }
            let offset = self.offset + i64::from(done);
            // SAFETY: the reserve IRP, reset; the caller's buffer contract.
            let status = unsafe { self.send(reserve.irp, mdl, offset, chunk) };
            done += chunk;
            if status < 0 || done >= self.len {
                return status;
            }
        }
    }

    /// Fills the disk's stack location, sends `irp` and waits for it to come back.
    ///
    /// # Safety
    /// `irp` is ours and fresh (or reused) with a location for the device; `mdl` describes
    /// `len` bytes of the caller's buffer (NULL when `len` is 0).
    unsafe fn send(&self, irp: *mut IRP, mdl: *mut MDL, offset: i64, len: u32) -> NTSTATUS {
        // SAFETY: the caller's contract: the IRP has a location for the device.
        let next = unsafe { io_get_next_irp_stack_location(irp) };
        // SAFETY: that location, inside the IRP, ours until the IRP is sent.
        let next = unsafe { &mut *next };
        // Read, write and flush majors fit a u8.
        next.MajorFunction = self.major as u8;
        next.Flags = self.flags;
        // Read and Write share this layout; a flush ignores it.
        next.Parameters.Read.Length = len;
        next.Parameters.Read.ByteOffset = offset;
        // SAFETY: our IRP, not yet sent.
        unsafe { (*irp).MdlAddress = mdl };
        // SAFETY: the caller's contract; the device is alive (constructor contract).
        unsafe { send_and_wait(self.device, irp) }
    }
}

/// Sends `irp` (its next location filled) to `device` and waits until it comes back: a
/// completion routine signals a stack event and keeps the IRP (fastfat's `FatSingleAsync` +
/// `FatWaitSync`). No APC is involved, so this works at APC_LEVEL (NT-27). The IRP's status.
///
/// # Safety
/// `irp` is the caller's, with its next stack location filled for `device`, which is alive.
pub(crate) unsafe fn send_and_wait(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let mut event = KEVENT::default();
    // SAFETY: a stack event that outlives the request (we wait for it below).
    unsafe { nt::KeInitializeEvent(&mut event, nt::NotificationEvent, false) };
    let context = ptr::from_mut(&mut event).cast::<c_void>();
    // SAFETY: the caller's contract; the event outlives the request.
    unsafe { io_set_completion_routine(irp, request_done, context) };
    // SAFETY: a complete IRP for the device.
    let _ = unsafe { nt::IofCallDriver(device, irp) };
    // The completion routine signals the event either way: a kernel-mode wait on an event is
    // legal at APC_LEVEL and needs no APC.
    // SAFETY: our notification event.
    unsafe {
        nt::KeWaitForSingleObject(
            ptr::from_ref(&event).cast(),
            nt::Executive,
            nt::KernelMode as i8,
            false,
            ptr::null(),
        )
    };
    // SAFETY: the IRP is ours again.
    let io_status = unsafe { &(*irp).IoStatus };
    // SAFETY: the status member: the driver below set it before completing.
    unsafe { io_status.Anonymous.Status }
}

/// The completion routine of our transfers: wakes the waiter and keeps the IRP (it is ours to
/// free). Runs at IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn request_done(
    _device: *mut DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is the waiter's event, alive until it has been signalled and waited.
    unsafe { nt::KeSetEvent(context.cast(), 0, false) };
    nt::STATUS_MORE_PROCESSING_REQUIRED
}

/// After `IofCallDriver` of a threaded IRP: the final status, waiting for the event if the
/// driver pended.
///
/// # Safety
/// `event` and `iosb` belong to the request just sent; PASSIVE_LEVEL.
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

/// `IOCTL_DISK_GET_LENGTH_INFO` to `device`. A threaded IRP: only at PASSIVE_LEVEL (mount and
/// verify).
///
/// # Safety
/// `device` is live; PASSIVE_LEVEL.
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
    // SAFETY: our event and status block; PASSIVE_LEVEL per the caller.
    unsafe { wait_if_pending(status, &event, &iosb) }
}

/// The transfer cowfat made before NT-27 (`IoBuildSynchronousFsdRequest` + wait), kept in host
/// builds only, behind a switch, so ntsim's test can show the bug check it earns at APC_LEVEL
/// (`nt_27_threaded_irps_at_apc_level_bug_check`). Never in the image.
#[cfg(not(windows))]
pub mod threaded {
    use core::sync::atomic::{AtomicBool, Ordering};

    use super::{wait_if_pending, Request};
    use crate::nt::{self, IO_STATUS_BLOCK, KEVENT, NTSTATUS};

    static ENABLED: AtomicBool = AtomicBool::new(false);

    /// Makes every transfer a threaded IRP again (tests only).
    pub fn enable_for_test(on: bool) {
        ENABLED.store(on, Ordering::SeqCst);
    }

    pub(super) fn enabled() -> bool {
        ENABLED.load(Ordering::SeqCst)
    }

    /// # Safety
    /// As `Request::send_on_own_irp`.
    pub(super) unsafe fn transfer(request: &Request) -> NTSTATUS {
        let mut event = KEVENT::default();
        // SAFETY: a stack event that outlives the request.
        unsafe { nt::KeInitializeEvent(&mut event, nt::NotificationEvent, false) };
        let mut iosb = IO_STATUS_BLOCK::default();
        // SAFETY: valid device, buffer, offset, event and status block.
        let irp = unsafe {
            nt::IoBuildSynchronousFsdRequest(
                request.major,
                request.device,
                request.buf,
                request.len,
                &request.offset,
                &event,
                &mut iosb,
            )
        };
        if irp.is_null() {
            return nt::STATUS_INSUFFICIENT_RESOURCES;
        }
        // SAFETY: a fully built IRP for the device.
        let status = unsafe { nt::IofCallDriver(request.device, irp) };
        // SAFETY: our event and status block.
        unsafe { wait_if_pending(status, &event, &iosb) }
    }
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
        self.transfer(nt::IRP_MJ_FLUSH_BUFFERS, 0, ptr::null_mut(), 0)
    }
}
