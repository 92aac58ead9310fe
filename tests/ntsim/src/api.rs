//! The test-facing API: reads like Win32/NT (create with access, share and disposition;
//! cached or non-cached read/write; sections, views, flush; close), plus the steps a test
//! drives (lazy writer, modified page writer, memory pressure, dismount) and the end-of-test
//! check ([`Sim::finish`]: dismount, unload, zero leaked pool, file objects, resources,
//! devices, IRPs and segments).
//!
//! The I/O manager's checks that happen before any IRP are here: generic access mapping, the
//! handle's granted access for read/write/section creation, mount on first open through the
//! registered file systems (none recognising the volume fails the open with
//! `STATUS_UNRECOGNIZED_VOLUME`: ntsim has no RAW file system).
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use fs_core::{FormatOptions, MemDevice};
use fs_driver::global::CFAT_DATA;
use windows_sys::Wdk::Foundation::{
    DEVICE_OBJECT, DRIVER_OBJECT, FILE_OBJECT, IO_SECURITY_CONTEXT, IO_STACK_LOCATION_0,
    IO_STACK_LOCATION_0_0, IO_STACK_LOCATION_0_14, IO_STACK_LOCATION_0_19, IO_STACK_LOCATION_0_20,
    IRP, VPB,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_INVALID_HANDLE, STATUS_SUCCESS,
    STATUS_UNRECOGNIZED_VOLUME, UNICODE_STRING,
};

use crate::disk::{self, Disk};
use crate::ex;
use crate::io;
use crate::kernel;
use crate::mm;
use crate::trace::{Event, FoId};

/// `METHOD_NEITHER` (winioctl.h): the transfer method in an FSCTL code's low two bits.
const METHOD_NEITHER: u32 = 3;

/// Serialises tests: the driver's globals are process-wide.
static TEST_LOCK: Mutex<()> = Mutex::new(());

/// Access rights (winnt.h).
pub mod access {
    /// Read data.
    pub const FILE_READ_DATA: u32 = 0x1;
    /// Write data.
    pub const FILE_WRITE_DATA: u32 = 0x2;
    /// Append data.
    pub const FILE_APPEND_DATA: u32 = 0x4;
    /// Read attributes.
    pub const FILE_READ_ATTRIBUTES: u32 = 0x80;
    /// Delete.
    pub const DELETE: u32 = 0x1_0000;
    /// Synchronize.
    pub const SYNCHRONIZE: u32 = 0x10_0000;
    /// Generic read.
    pub const GENERIC_READ: u32 = 0x8000_0000;
    /// Generic write.
    pub const GENERIC_WRITE: u32 = 0x4000_0000;
    /// Generic execute.
    pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
    /// Generic all.
    pub const GENERIC_ALL: u32 = 0x1000_0000;
    /// `FILE_GENERIC_READ`.
    pub const FILE_GENERIC_READ: u32 = 0x0012_0089;
    /// `FILE_GENERIC_WRITE`.
    pub const FILE_GENERIC_WRITE: u32 = 0x0012_0116;
    /// `FILE_GENERIC_EXECUTE`.
    pub const FILE_GENERIC_EXECUTE: u32 = 0x0012_00A0;
    /// `FILE_ALL_ACCESS`.
    pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
}

/// Share modes.
pub mod share {
    /// None.
    pub const NONE: u32 = 0;
    /// `FILE_SHARE_READ`.
    pub const READ: u32 = 1;
    /// `FILE_SHARE_WRITE`.
    pub const WRITE: u32 = 2;
    /// `FILE_SHARE_DELETE`.
    pub const DELETE: u32 = 4;
    /// All three.
    pub const ALL: u32 = 7;
}

pub use fs_driver::nt::create_options as options;
pub use fs_driver::nt::disposition;

/// The I/O manager's generic mapping for files.
#[must_use]
pub fn map_generic(desired: u32) -> u32 {
    use access::*;
    let mut mapped = desired & 0x0FFF_FFFF;
    for (generic, specific) in [
        (GENERIC_READ, FILE_GENERIC_READ),
        (GENERIC_WRITE, FILE_GENERIC_WRITE),
        (GENERIC_EXECUTE, FILE_GENERIC_EXECUTE),
        (GENERIC_ALL, FILE_ALL_ACCESS),
    ] {
        if desired & generic != 0 {
            mapped |= specific;
        }
    }
    mapped
}

/// What an open asks for (`NtCreateFile`'s parameters).
#[derive(Clone, Copy, Debug)]
pub struct Open {
    /// Desired access (generic rights are mapped).
    pub access: u32,
    /// Share mode.
    pub share: u32,
    /// Create disposition.
    pub disposition: u32,
    /// Create options.
    pub options: u32,
    /// File attributes for a new file.
    pub attributes: u32,
}

impl Open {
    /// An open with `access`, sharing read and write, `FILE_OPEN_IF`.
    #[must_use]
    pub fn new(access: u32) -> Self {
        Self {
            access,
            share: share::READ | share::WRITE,
            disposition: disposition::FILE_OPEN_IF,
            options: 0,
            attributes: 0,
        }
    }

    /// Read and write access (the usual test open).
    #[must_use]
    pub fn read_write() -> Self {
        Self::new(access::GENERIC_READ | access::GENERIC_WRITE)
    }

    /// With this share mode.
    #[must_use]
    pub fn share(mut self, share: u32) -> Self {
        self.share = share;
        self
    }

    /// With this disposition.
    #[must_use]
    pub fn disposition(mut self, disposition: u32) -> Self {
        self.disposition = disposition;
        self
    }

    /// With these create options added.
    #[must_use]
    pub fn options(mut self, options: u32) -> Self {
        self.options |= options;
        self
    }

    /// With these attributes for a new file.
    #[must_use]
    pub fn attributes(mut self, attributes: u32) -> Self {
        self.attributes = attributes;
        self
    }

    /// Non-cached (`FILE_NO_INTERMEDIATE_BUFFERING`).
    #[must_use]
    pub fn no_buffering(self) -> Self {
        self.options(options::FILE_NO_INTERMEDIATE_BUFFERING)
    }
}

/// A file handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Handle(pub(crate) u32);

/// A section handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section(u32);

/// A mapped view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View(pub(crate) u32);

/// What [`Sim::finish`] found left over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leaks {
    /// Pool blocks still allocated, with their tags.
    pub pool: Vec<(String, usize)>,
    /// File objects not freed.
    pub file_objects: usize,
    /// ERESOURCEs not deleted.
    pub resources: usize,
    /// Devices not deleted (the disk's excluded).
    pub devices: usize,
    /// IRPs not freed.
    pub irps: usize,
    /// MDLs the driver allocated and did not free.
    pub mdls: usize,
    /// Control areas and image sections left.
    pub segments: usize,
    /// Object references (`ObfReferenceObject`) on devices never dropped.
    pub object_references: usize,
    /// DriverUnload was withdrawn (a volume still counted as mounted).
    pub unload_refused: bool,
    /// Timers still set (their DPCs would run into freed memory).
    pub timers: usize,
}

impl Leaks {
    /// Nothing leaked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Leaks::default()
    }
}

/// `VPB_REMOVE_PENDING`.
const VPB_REMOVE_PENDING: u32 = 0x08;

/// A formatted in-memory cowfat volume of `size` bytes.
#[must_use]
pub fn formatted(size: u64) -> MemDevice {
    let mut medium = MemDevice::new(size);
    if fs_core::format(&mut medium, &FormatOptions::default()).is_err() {
        ex::bugcheck("formatting the test volume failed");
    }
    medium
}

/// One emulated machine with the cowfat driver loaded and a disk attached.
pub struct Sim {
    _lock: MutexGuard<'static, ()>,
    driver: *mut DRIVER_OBJECT,
    disk: Disk,
    handles: BTreeMap<Handle, *mut FILE_OBJECT>,
    next_handle: u32,
    /// Another thread inside the driver holding the volume's VCB resource
    /// ([`Sim::hold_volume_exclusive`]).
    volume_hold: Option<(u32, fs_driver::vcb::VcbExclusive<'static>)>,
    /// The I/O manager tries fast I/O reads and writes first ([`Sim::set_fast_io`]).
    pub(crate) fast_io_enabled: bool,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("handles", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// A machine with a freshly formatted 16 MiB cowfat disk.
    #[must_use]
    pub fn new() -> Self {
        Self::with_medium(formatted(16 << 20))
    }

    /// A machine whose disk holds `medium`; the driver is loaded (DriverEntry ran).
    #[must_use]
    pub fn with_medium(medium: MemDevice) -> Self {
        let lock = TEST_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        kernel::reset();
        let driver = Box::into_raw(Box::new(DRIVER_OBJECT::default()));
        let registry = UNICODE_STRING::default();
        // SAFETY: a fresh driver object, as the I/O manager passes it; PASSIVE_LEVEL.
        let status = unsafe { fs_driver::driver_entry(driver, &registry) };
        if status != STATUS_SUCCESS {
            ex::bugcheck("DriverEntry failed");
        }
        // A test that panicked earlier may have left the process-wide mount count behind.
        while CFAT_DATA.mounted_volumes() > 0 {
            CFAT_DATA.volume_dismounted();
        }
        let disk = disk::create(medium);
        Self {
            _lock: lock,
            driver,
            disk,
            handles: BTreeMap::new(),
            next_handle: 4,
            volume_hold: None,
            fast_io_enabled: true,
        }
    }

    /// The trace so far.
    #[must_use]
    pub fn trace(&self) -> Vec<Event> {
        kernel::with(|k| k.trace.clone())
    }

    /// The trace so far, emptying it.
    pub fn take_trace(&mut self) -> Vec<Event> {
        kernel::with(|k| std::mem::take(&mut k.trace))
    }

    /// The trace name of a handle's file object.
    #[must_use]
    pub fn file_id(&self, handle: Handle) -> FoId {
        let fo = self.fo(handle).unwrap_or(std::ptr::null_mut());
        kernel::with(|k| k.fo_id(fo)).unwrap_or(FoId(0))
    }

    /// Does the file object still exist (not yet closed)?
    #[must_use]
    pub fn file_object_alive(&self, id: FoId) -> bool {
        kernel::with(|k| k.file_objects.values().any(|r| r.id == id))
    }

    /// A copy of the disk's medium (to check it with fs-core directly).
    #[must_use]
    pub fn medium(&self) -> MemDevice {
        kernel::with(|k| k.disk.clone()).unwrap_or_else(|| MemDevice::new(0))
    }

    /// The address of a handle's file object (0 for an unknown handle), for `!cffo` and
    /// snapshots of the driver's memory.
    #[must_use]
    pub fn fo_address(&self, handle: Handle) -> usize {
        self.fo(handle).map_or(0, |fo| fo as usize)
    }

    pub(crate) fn fo(&self, handle: Handle) -> Result<*mut FILE_OBJECT, NTSTATUS> {
        self.handles
            .get(&handle)
            .copied()
            .ok_or(STATUS_INVALID_HANDLE)
    }

    fn vpb(&self) -> *mut VPB {
        // SAFETY: the disk device lives as long as the Sim.
        unsafe { (*self.disk.device).Vpb }
    }

    /// Mounts the disk through the registered file systems (the I/O manager does this on
    /// the first open; tests may ask explicitly).
    pub fn mount(&mut self) -> NTSTATUS {
        match self.mount_if_needed() {
            Ok(()) => STATUS_SUCCESS,
            Err(status) => status,
        }
    }

    /// `IopCheckVpbMounted` and `IopMountVolume`: the disk's current VPB (`RealDevice->Vpb`)
    /// is used if mounted, else a mount is offered on it. The I/O manager never swaps VPBs
    /// itself: a file system that dismounts a volume with file objects still open swaps in a
    /// spare (NT-29). Stricter than Windows, which would mount over it and send the old file
    /// objects' requests to the new volume: mounting on a VPB that file objects still
    /// reference, or that still names a volume device, is a bug check.
    fn mount_if_needed(&mut self) -> Result<(), NTSTATUS> {
        if kernel::with(|k| k.disk_removed) {
            return Err(disk::STATUS_NO_SUCH_DEVICE);
        }
        let vpb = self.vpb();
        // SAFETY: a live VPB of the model.
        let vpb_ref = unsafe { &*vpb };
        let (flags, device) = (u32::from(vpb_ref.Flags), vpb_ref.DeviceObject);
        if flags & VPB_REMOVE_PENDING != 0 {
            return Err(disk::STATUS_NO_SUCH_DEVICE);
        }
        if flags & fs_driver::nt::VPB_MOUNTED != 0 {
            return Ok(());
        }
        if !device.is_null() || vpb_ref.ReferenceCount != 0 {
            ex::bugcheck(
                "mount on a VPB a dismounted volume still uses (the file system did not swap \
                 in a spare VPB)",
            );
        }
        let file_systems = kernel::with(|k| k.file_systems.clone());
        for fs in file_systems {
            // SAFETY: a registered file system's live control device.
            let irp = io::allocate_irp(unsafe { (*fs).StackSize }, false);
            let mut parameters = IO_STACK_LOCATION_0::default();
            parameters.MountVolume = IO_STACK_LOCATION_0_19 {
                Vpb: vpb,
                DeviceObject: self.disk.device,
            };
            let location = io::location(0x0d, 0x01, std::ptr::null_mut(), parameters);
            // SAFETY: a fresh IRP.
            unsafe { io::set_next_stack(irp, location) };
            // SAFETY: a complete mount IRP for `fs`.
            let (status, _) = unsafe { io::send_and_free(fs, irp) };
            if status == STATUS_SUCCESS {
                // SAFETY: the VPB is the I/O manager's to flag.
                unsafe { (*vpb).Flags |= fs_driver::nt::VPB_MOUNTED as u16 };
                return Ok(());
            }
            if status != STATUS_UNRECOGNIZED_VOLUME {
                return Err(status);
            }
        }
        Err(STATUS_UNRECOGNIZED_VOLUME)
    }

    /// `NtCreateFile` of `path` (absolute on the volume, e.g. `\dir\a.txt`).
    ///
    /// # Errors
    /// The create's NTSTATUS.
    pub fn create(&mut self, path: &str, open: &Open) -> Result<Handle, NTSTATUS> {
        self.open_at(path, None, open)
    }

    /// `NtCreateFile` of `name` relative to the directory (or volume) handle `dir`.
    ///
    /// # Errors
    /// The create's NTSTATUS.
    pub fn create_relative(
        &mut self,
        dir: Handle,
        name: &str,
        open: &Open,
    ) -> Result<Handle, NTSTATUS> {
        let related = self.fo(dir)?;
        self.open_at(name, Some(related), open)
    }

    /// Opens the volume itself (`\\.\X:`).
    ///
    /// # Errors
    /// The create's NTSTATUS.
    pub fn open_volume(&mut self) -> Result<Handle, NTSTATUS> {
        self.open_at(
            "",
            None,
            &Open::read_write().disposition(disposition::FILE_OPEN),
        )
    }

    fn open_at(
        &mut self,
        path: &str,
        related: Option<*mut FILE_OBJECT>,
        open: &Open,
    ) -> Result<Handle, NTSTATUS> {
        self.open_with(path, related, open, 0)
            .map(|(handle, _)| handle)
    }

    /// The create as the I/O manager sends it, with these stack location flags (`SL_*`); the
    /// handle and the create's `Information`.
    pub(crate) fn open_with(
        &mut self,
        path: &str,
        related: Option<*mut FILE_OBJECT>,
        open: &Open,
        stack_flags: u8,
    ) -> Result<(Handle, usize), NTSTATUS> {
        check_synchronous_options(open)?;
        self.mount_if_needed()?;
        let vpb = self.vpb();
        // SAFETY: a mounted VPB.
        let vdo = unsafe { (*vpb).DeviceObject };
        let related = related.unwrap_or(std::ptr::null_mut());
        // IopCheckVpbMounted: the file object's reference on the VPB, until it is deleted.
        // SAFETY: a live VPB.
        unsafe { (*vpb).ReferenceCount += 1 };
        let fo = io::create_file_object(vdo, self.disk.device, vpb, path, related);
        let granted = map_generic(open.access);
        let mut security = IO_SECURITY_CONTEXT {
            DesiredAccess: granted,
            ..Default::default()
        };
        // SAFETY: a live volume device.
        let irp = io::allocate_irp(unsafe { (*vdo).StackSize }, false);
        // SAFETY: fresh IRP; the security context outlives the synchronous create.
        unsafe { fill_create(irp, fo, &mut security, open, stack_flags) };
        // SAFETY: a complete create IRP for the volume device.
        let (status, information) = unsafe { io::send_and_free(vdo, irp) };
        if status < 0 {
            io::dereference_vpb_and_free(fo);
            io::free_file_object(fo);
            return Err(status);
        }
        if open.options & options::FILE_NO_INTERMEDIATE_BUFFERING != 0 {
            // SAFETY: our file object; the I/O manager sets this flag.
            unsafe { (*fo).Flags |= fs_driver::nt::FO_NO_INTERMEDIATE_BUFFERING };
        }
        // SAFETY: as above (NT-28: the I/O manager keeps this file object's position).
        unsafe { (*fo).Flags |= synchronous_flags(open.options) };
        kernel::with(|k| {
            if let Some(r) = k.file_objects.get_mut(&fo) {
                r.opened = true;
                r.handles = 1;
                r.granted = granted;
            }
        });
        let handle = Handle(self.next_handle);
        self.next_handle += 4;
        self.handles.insert(handle, fo);
        Ok((handle, information))
    }

    /// `NtClose` of a file handle: IRP_MJ_CLEANUP, then the handle's reference goes (which
    /// sends IRP_MJ_CLOSE unless something else, such as Mm, still references the file
    /// object; NT-04/NT-05).
    pub fn close(&mut self, handle: Handle) {
        let Some(fo) = self.handles.remove(&handle) else {
            ex::bugcheck("closing a handle that is not open")
        };
        let device = kernel::with(|k| {
            let r = k.file_objects.get_mut(&fo)?;
            r.handles -= 1;
            (r.handles == 0).then_some(r.device)
        });
        if let Some(device) = device {
            // SAFETY: a live opened file object whose last handle closed.
            let _ = unsafe { io::send_simple(device, fo, 0x12, 0) };
        }
        io::dereference(fo);
        // Completions that ran inside (a notify IRP ended by the cleanup) drop their file
        // object references now, as their APCs would on the way back to user mode.
        io::deliver_apcs();
        io::reap_devices();
    }

    pub(crate) fn granted(&self, fo: *mut FILE_OBJECT) -> u32 {
        kernel::with(|k| k.file_objects.get(&fo).map_or(0, |r| r.granted))
    }

    pub(crate) fn io_flags(fo: *mut FILE_OBJECT) -> u32 {
        // SAFETY: a live file object.
        let flags = unsafe { (*fo).Flags };
        if flags & fs_driver::nt::FO_NO_INTERMEDIATE_BUFFERING != 0 {
            fs_driver::nt::IRP_NOCACHE
        } else {
            0
        }
    }

    /// `NtReadFile` at `offset` (cached, or non-cached for a `FILE_NO_INTERMEDIATE_BUFFERING`
    /// handle); the bytes read. [`Sim::nt_read`] takes the other forms of the byte offset.
    ///
    /// # Errors
    /// The read's NTSTATUS (`STATUS_END_OF_FILE` at or past end of file).
    pub fn read(&mut self, handle: Handle, offset: u64, len: usize) -> Result<Vec<u8>, NTSTATUS> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.nt_read(handle, Some(offset), len)
    }

    /// `NtWriteFile` at `offset` (`None`: append, `FILE_WRITE_TO_END_OF_FILE`); bytes written.
    /// [`Sim::nt_write`] takes the other forms of the byte offset.
    ///
    /// # Errors
    /// The write's NTSTATUS.
    pub fn write(
        &mut self,
        handle: Handle,
        offset: Option<u64>,
        data: &[u8],
    ) -> Result<usize, NTSTATUS> {
        let offset = offset.map_or(crate::rw::FILE_WRITE_TO_END_OF_FILE, |o| {
            i64::try_from(o).unwrap_or(i64::MAX)
        });
        self.nt_write(handle, Some(offset), data)
    }

    /// `NtCreateSection(SEC_COMMIT)` on a file handle: a data section, writable or not.
    ///
    /// # Errors
    /// `STATUS_ACCESS_DENIED` if the handle lacks the access, else Mm's or the FS's status.
    pub fn create_section(&mut self, handle: Handle, writable: bool) -> Result<Section, NTSTATUS> {
        let fo = self.fo(handle)?;
        let needed = access::FILE_READ_DATA | if writable { access::FILE_WRITE_DATA } else { 0 };
        if self.granted(fo) & needed != needed {
            return Err(STATUS_ACCESS_DENIED);
        }
        mm::create_section(fo, writable, false).map(Section)
    }

    /// `NtCreateSection(SEC_IMAGE)`: an image section (views are counted, nothing executes).
    ///
    /// # Errors
    /// As [`Sim::create_section`].
    pub fn create_image_section(&mut self, handle: Handle) -> Result<Section, NTSTATUS> {
        let fo = self.fo(handle)?;
        if self.granted(fo) & access::FILE_READ_DATA == 0 {
            return Err(STATUS_ACCESS_DENIED);
        }
        mm::create_section(fo, false, true).map(Section)
    }

    /// Closes a section handle (the segment stays until purge or memory pressure).
    pub fn close_section(&mut self, section: Section) {
        mm::close_section(section.0);
    }

    /// `MapViewOfFile` (`len` 0: to the end of the section).
    ///
    /// # Errors
    /// Mm's status.
    pub fn map_view(&mut self, section: Section, offset: u64, len: u64) -> Result<View, NTSTATUS> {
        mm::map_view(section.0, offset, len).map(View)
    }

    /// Reads through a view (page faults become paging reads).
    ///
    /// # Errors
    /// `STATUS_ACCESS_VIOLATION` outside the view, or the in-page error.
    pub fn view_read(&mut self, view: View, offset: u64, len: usize) -> Result<Vec<u8>, NTSTATUS> {
        mm::view_read(view.0, offset, len)
    }

    /// Writes through a writable view (pages become dirty; nothing reaches the FS yet).
    ///
    /// # Errors
    /// As [`Sim::view_read`].
    pub fn view_write(&mut self, view: View, offset: u64, data: &[u8]) -> Result<(), NTSTATUS> {
        mm::view_write(view.0, offset, data)
    }

    /// `FlushViewOfFile` of the whole view.
    pub fn flush_view(&mut self, view: View) -> NTSTATUS {
        mm::flush_view(view.0)
    }

    /// `UnmapViewOfFile`.
    pub fn unmap_view(&mut self, view: View) {
        mm::unmap_view(view.0);
    }

    /// Swaps the disk's medium (a media change); the old one is returned. Nothing tells the
    /// file system: a test follows it with [`Sim::verify`], as the I/O manager would once the
    /// disk driver set `DO_VERIFY_VOLUME`.
    pub fn replace_medium(&mut self, medium: MemDevice) -> Option<MemDevice> {
        kernel::with(|k| k.disk.replace(medium))
    }

    /// `IoVerifyVolume`: sets `DO_VERIFY_VOLUME` on the disk and sends `IRP_MN_VERIFY_VOLUME`
    /// to the mounted volume; returns its status (and whether the flag was cleared).
    pub fn verify(&mut self) -> (NTSTATUS, bool) {
        let vpb = self.vpb();
        // SAFETY: a live VPB of the model.
        let vdo = unsafe { (*vpb).DeviceObject };
        if vdo.is_null() || !self.is_mounted() {
            return (STATUS_UNRECOGNIZED_VOLUME, false);
        }
        // SAFETY: the disk device lives as long as the Sim.
        unsafe { (*self.disk.device).Flags |= fs_driver::nt::DO_VERIFY_VOLUME };
        // SAFETY: a live volume device.
        let irp = io::allocate_irp(unsafe { (*vdo).StackSize }, false);
        let mut parameters = IO_STACK_LOCATION_0::default();
        parameters.VerifyVolume = IO_STACK_LOCATION_0_20 {
            Vpb: vpb,
            DeviceObject: vdo,
        };
        let location = io::location(0x0d, 0x02, std::ptr::null_mut(), parameters);
        // SAFETY: a fresh IRP.
        unsafe { io::set_next_stack(irp, location) };
        // SAFETY: a complete verify IRP for the volume device.
        let (status, _) = unsafe { io::send_and_free(vdo, irp) };
        // SAFETY: the disk device lives as long as the Sim.
        let flags = unsafe { (*self.disk.device).Flags };
        (status, flags & fs_driver::nt::DO_VERIFY_VOLUME == 0)
    }

    /// Sets `DO_VERIFY_VOLUME` on the disk (the disk driver saw a media change) without
    /// verifying: until a verify clears it, the disk fails reads and writes that do not carry
    /// `SL_OVERRIDE_VERIFY_VOLUME`.
    pub fn set_verify_required(&mut self) {
        // SAFETY: the disk device lives as long as the Sim.
        unsafe { (*self.disk.device).Flags |= fs_driver::nt::DO_VERIFY_VOLUME };
    }

    /// Reads and writes the disk refused with `STATUS_VERIFY_REQUIRED` so far.
    #[must_use]
    pub fn verify_required_failures(&self) -> u64 {
        kernel::with(|k| k.verify_required_failures)
    }

    /// Sector transfers the disk served so far: (reads, writes).
    #[must_use]
    pub fn disk_transfers(&self) -> (u64, u64) {
        kernel::with(|k| k.disk_io)
    }

    /// The file system dispatches made at APC_LEVEL or above since the last call, as (major,
    /// IRP flags) (NT-27).
    pub fn take_apc_level_dispatches(&mut self) -> Vec<(u8, u32)> {
        kernel::with(|k| std::mem::take(&mut k.apc_level_dispatches))
    }

    /// Acts as a driver above the disk: sends `IOCTL_DISK_GET_LENGTH_INFO` on a threaded IRP
    /// (`IoBuildDeviceIoControlRequest`) at the current IRQL, without waiting (NT-27 tests).
    #[must_use]
    pub fn send_threaded_length_query(&mut self) -> ThreadedRequest {
        let mut request = ThreadedRequest {
            event: Box::default(),
            iosb: Box::default(),
            length: Box::new(0),
            returned: 0,
        };
        ex::KeInitializeEvent(
            &raw mut *request.event,
            windows_sys::Win32::System::Kernel::NotificationEvent,
            false,
        );
        let output = (&raw mut *request.length).cast();
        // SAFETY: the disk device; the boxed event, status block and output outlive the
        // request (the test keeps the ThreadedRequest until it is finished or the Sim ends).
        let irp = unsafe {
            io::IoBuildDeviceIoControlRequest(
                fs_driver::nt::IOCTL_DISK_GET_LENGTH_INFO,
                self.disk.device,
                std::ptr::null(),
                0,
                output,
                8,
                false,
                &raw const *request.event,
                &raw mut *request.iosb,
            )
        };
        // SAFETY: a complete IRP for the disk.
        request.returned = unsafe { io::IofCallDriver(self.disk.device, irp) };
        request
    }

    /// `KeWaitForSingleObject` on a threaded request's event, at the current IRQL.
    pub fn wait_for(&mut self, request: &ThreadedRequest) -> NTSTATUS {
        ex::KeWaitForSingleObject(
            (&raw const *request.event).cast(),
            0,
            0,
            false,
            std::ptr::null(),
        )
    }

    /// Raises the test thread's IRQL (`KeRaiseIrql`); returns the old one.
    pub fn raise_irql(&mut self, level: u8) -> u8 {
        crate::irql::raise(level)
    }

    /// Lowers the test thread's IRQL back (`KeLowerIrql`): at PASSIVE_LEVEL its queued kernel
    /// APCs run.
    pub fn lower_irql(&mut self, old: u8) {
        crate::irql::lower(old);
    }

    /// Puts a volatile write cache in front of the disk (a real disk with its write cache on):
    /// from now on a write is durable only once an `IRP_MJ_FLUSH_BUFFERS` to the disk
    /// completed after it.
    pub fn enable_disk_write_cache(&mut self) {
        kernel::with(|k| {
            let durable = k.disk.clone().unwrap_or_else(|| MemDevice::new(0));
            k.disk_cache = Some(disk::WriteCache {
                durable,
                unflushed: Vec::new(),
                flushes: 0,
            });
        });
    }

    /// `IRP_MJ_FLUSH_BUFFERS` requests the disk completed since its write cache was turned on.
    #[must_use]
    pub fn disk_flushes(&self) -> u64 {
        kernel::with(|k| k.disk_cache.as_ref().map_or(0, |c| c.flushes))
    }

    /// The images a power cut now could leave on the disk (the last completed flush's medium
    /// and, per `plan`, subsets of the writes since, one possibly torn), the image with every
    /// write landed last. Empty without a write cache.
    #[must_use]
    pub fn disk_crash_images(&self, plan: &fs_core::crash::CrashPlan, seed: u64) -> Vec<MemDevice> {
        let Some(cache) = kernel::with(|k| k.disk_cache.clone()) else {
            return Vec::new();
        };
        let writes: Vec<(u64, &[u8])> = cache
            .unflushed
            .iter()
            .map(|(o, d)| (*o, d.as_slice()))
            .collect();
        let sectors = fs_core::crash::sector_counts(writes.iter().map(|w| w.1.len()));
        let mut images: Vec<MemDevice> = fs_core::crash::epoch_subsets(&sectors, plan, seed)
            .iter()
            .map(|subset| {
                let mut image = cache.durable.clone();
                fs_core::crash::apply_subset(&mut image, &writes, subset);
                image
            })
            .collect();
        if writes.is_empty() {
            images.push(cache.durable.clone());
        } else {
            images.push(self.medium());
        }
        images
    }

    /// Makes the disk pend every request (completed when the requester waits) or not.
    pub fn set_disk_pending(&mut self, pend: bool) {
        kernel::with(|k| k.disk_pends = pend);
    }

    /// Requests the disk has pended so far.
    #[must_use]
    pub fn disk_requests_pended(&self) -> u64 {
        kernel::with(|k| k.pended_total)
    }

    /// One lazy writer pass.
    pub fn lazy_writer(&mut self) {
        crate::cc::lazy_writer();
        io::reap_devices();
    }

    /// One modified page writer pass.
    pub fn modified_page_writer(&mut self) {
        mm::modified_page_writer();
        io::reap_devices();
    }

    /// Memory pressure: everything dirty is written, clean pages dropped, unreferenced
    /// segments deleted (their file objects close).
    pub fn memory_pressure(&mut self) {
        mm::memory_pressure();
        io::reap_devices();
    }

    /// Moves the machine's timer clock on by `by`: every timer that expires meanwhile queues
    /// its DPC, and the DPCs run (at DISPATCH_LEVEL). Work items they queue wait for
    /// [`Sim::run_work_items`].
    pub fn advance_time(&mut self, by: std::time::Duration) {
        let ticks = u64::try_from(by.as_nanos() / 100).unwrap_or(u64::MAX);
        crate::worker::advance_time(ticks);
        io::reap_devices();
    }

    /// The system worker threads run every queued work item (and those queued meanwhile);
    /// returns how many ran.
    pub fn run_work_items(&mut self) -> usize {
        let ran = crate::worker::run_work_items();
        io::deliver_apcs();
        io::reap_devices();
        ran
    }

    /// Work items queued and not yet run.
    #[must_use]
    pub fn work_items_queued(&self) -> usize {
        crate::worker::work_items_queued()
    }

    /// Timers set now (by anyone).
    #[must_use]
    pub fn timers_set(&self) -> usize {
        crate::worker::timers_set()
    }

    /// Live pool blocks with this tag (e.g. `b"CfFc"`, the driver's FCBs).
    #[must_use]
    pub fn pool_blocks(&self, tag: &[u8; 4]) -> usize {
        let tag = u32::from_le_bytes(*tag);
        kernel::with(|k| k.pool.values().filter(|b| b.tag == tag).count())
    }

    /// Model thread `thread` (another user thread, above the kernel's own threads 1..5) is
    /// inside the driver holding the mounted volume's VCB resource exclusive, as a create or
    /// rename in progress there would, until [`Sim::release_volume`]. While it holds it, a
    /// request on any other thread that waits for it is a bug check (the other thread never
    /// runs on here); one that tries without waiting is refused.
    pub fn hold_volume_exclusive(&mut self, thread: u32) {
        if self.volume_hold.is_some() {
            ex::bugcheck("the volume is already held by another thread");
        }
        // SAFETY: the disk's live VPB.
        let vdo = unsafe { (*self.vpb()).DeviceObject };
        if vdo.is_null() || !self.is_mounted() {
            ex::bugcheck("hold_volume_exclusive without a mounted volume");
        }
        // SAFETY: the mounted volume's device, ours; its VCB lives until it is torn down,
        // which needs this resource.
        let Some(vcb) = (unsafe { fs_driver::vcb::Vcb::of_device(vdo) }) else {
            ex::bugcheck("the volume device holds no VCB")
        };
        let guard = mm::as_thread(thread, || vcb.acquire_exclusive());
        self.volume_hold = Some((thread, guard));
    }

    /// The thread of [`Sim::hold_volume_exclusive`] releases the VCB resource.
    pub fn release_volume(&mut self) {
        let Some((thread, guard)) = self.volume_hold.take() else {
            ex::bugcheck("release_volume without a hold")
        };
        mm::as_thread(thread, || drop(guard));
    }

    /// `FSCTL_DISMOUNT_VOLUME` through a volume handle, then that handle closes.
    ///
    /// # Errors
    /// The open's or the FSCTL's status.
    pub fn dismount(&mut self) -> NTSTATUS {
        let volume = match self.open_volume() {
            Ok(h) => h,
            Err(status) => return status,
        };
        let Ok(fo) = self.fo(volume) else {
            return STATUS_INVALID_HANDLE;
        };
        let device = io::related_device(fo);
        let status = match device {
            // SAFETY: the volume handle's live file object and device.
            Some(device) => unsafe { send_fsctl(device, fo, fs_driver::nt::FSCTL_DISMOUNT_VOLUME) },
            None => STATUS_INVALID_HANDLE,
        };
        self.close(volume);
        status
    }

    /// `NtFsControlFile(handle, code, input, output)`: the status and the bytes the file
    /// system returned (`IoStatus.Information` of them). The buffers are passed the way the
    /// code's transfer method says (its low two bits, `CTL_CODE`): `METHOD_BUFFERED` in one
    /// system buffer; `METHOD_NEITHER` as the caller's own, the input in
    /// `Type3InputBuffer` and the output in `Irp->UserBuffer` (the requester's address space,
    /// which a synchronous FSD request runs in). The direct methods are not modelled.
    ///
    /// # Errors
    /// `STATUS_INVALID_HANDLE` for a handle that is not open; otherwise the FSCTL's status is
    /// in the result (success codes such as `STATUS_SUCCESS` included).
    pub fn fsctl(
        &mut self,
        handle: Handle,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> (NTSTATUS, Vec<u8>) {
        let Ok(fo) = self.fo(handle) else {
            return (STATUS_INVALID_HANDLE, Vec::new());
        };
        let Some(device) = io::related_device(fo) else {
            return (STATUS_INVALID_HANDLE, Vec::new());
        };
        if code & 3 == METHOD_NEITHER {
            return self.fsctl_neither(fo, device, code, input, output_len);
        }
        let mut system = vec![0u8; input.len().max(output_len)];
        system[..input.len()].copy_from_slice(input);
        // SAFETY: a live device.
        let irp = io::allocate_irp(unsafe { (*device).StackSize }, false);
        let mut parameters = IO_STACK_LOCATION_0::default();
        parameters.FileSystemControl = IO_STACK_LOCATION_0_14 {
            OutputBufferLength: u32::try_from(output_len).unwrap_or(u32::MAX),
            InputBufferLength: u32::try_from(input.len()).unwrap_or(u32::MAX),
            FsControlCode: code,
            Type3InputBuffer: std::ptr::null_mut(),
        };
        // SAFETY: a fresh IRP.
        unsafe { io::set_next_stack(irp, io::location(0x0d, 0x00, fo, parameters)) };
        // SAFETY: a fresh IRP of the model.
        let irp_ref = unsafe { &mut *irp };
        // The system buffer outlives the synchronous request.
        irp_ref.AssociatedIrp.SystemBuffer = system.as_mut_ptr().cast();
        // SAFETY: a complete IRP for the file object's device.
        let (status, information) = unsafe { io::send_and_free(device, irp) };
        io::reap_devices();
        system.truncate(information.min(output_len));
        (status, system)
    }

    /// [`Sim::fsctl`] for a `METHOD_NEITHER` code: the caller's buffers go down as they are.
    fn fsctl_neither(
        &mut self,
        fo: *mut FILE_OBJECT,
        device: *mut DEVICE_OBJECT,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> (NTSTATUS, Vec<u8>) {
        let mut input = input.to_vec();
        let mut output = vec![0u8; output_len];
        let input_at = if input.is_empty() {
            std::ptr::null_mut()
        } else {
            input.as_mut_ptr()
        };
        let output_at = if output_len > 0 {
            output.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        let user = crate::seh::UserMemory::Mapped;
        crate::seh::register(input_at.addr(), input.len(), user);
        crate::seh::register(output_at.addr(), output_len, user);
        // SAFETY: both buffers outlive the synchronous request.
        let (status, information) = unsafe {
            fsctl_neither_at(
                fo,
                device,
                code,
                (input_at, input.len()),
                (output_at, output_len),
            )
        };
        crate::seh::unregister(input_at.addr());
        crate::seh::unregister(output_at.addr());
        output.truncate(information.min(output_len));
        (status, output)
    }

    /// `FSCTL_COWFAT_QUERY_MAPPED_STATE`, with the purge probe or without.
    ///
    /// # Errors
    /// The FSCTL's status.
    pub fn mapped_state(
        &mut self,
        handle: Handle,
        probe: bool,
    ) -> Result<cowfat_fsctl::MappedState, NTSTATUS> {
        use zerocopy::{FromBytes, IntoBytes};
        let input = cowfat_fsctl::QueryMappedStateInput {
            flags: u32::from(probe).into(),
        };
        let size = std::mem::size_of::<cowfat_fsctl::MappedState>();
        let code = cowfat_fsctl::FSCTL_COWFAT_QUERY_MAPPED_STATE;
        let (status, out) = self.fsctl(handle, code, input.as_bytes(), size);
        if status < 0 {
            return Err(status);
        }
        cowfat_fsctl::MappedState::read_from_bytes(&out).map_err(|_| STATUS_INVALID_HANDLE)
    }

    /// `FSCTL_COWFAT_QUERY_OVERLAY`.
    ///
    /// # Errors
    /// The FSCTL's status.
    pub fn overlay_state(
        &mut self,
        handle: Handle,
    ) -> Result<cowfat_fsctl::FileOverlayState, NTSTATUS> {
        use zerocopy::FromBytes;
        let size = std::mem::size_of::<cowfat_fsctl::FileOverlayState>();
        let (status, out) = self.fsctl(handle, cowfat_fsctl::FSCTL_COWFAT_QUERY_OVERLAY, &[], size);
        if status < 0 {
            return Err(status);
        }
        cowfat_fsctl::FileOverlayState::read_from_bytes(&out).map_err(|_| STATUS_INVALID_HANDLE)
    }

    /// An FSCTL without buffers on `handle`: its status.
    pub fn fsctl_status(&mut self, handle: Handle, code: u32) -> NTSTATUS {
        self.fsctl(handle, code, &[], 0).0
    }

    /// An FSCTL without buffers on a fresh volume handle (closed afterwards): its status.
    pub fn volume_fsctl(&mut self, code: u32) -> NTSTATUS {
        let volume = match self.open_volume() {
            Ok(h) => h,
            Err(status) => return status,
        };
        let status = self.fsctl_status(volume, code);
        self.close(volume);
        status
    }

    /// On a fresh volume handle: `FSCTL_LOCK_VOLUME`, then `code`, then the handle closes
    /// (its cleanup unlocks). The lock's status if it fails, else `code`'s.
    pub fn volume_fsctl_locked(&mut self, code: u32) -> NTSTATUS {
        let volume = match self.open_volume() {
            Ok(h) => h,
            Err(status) => return status,
        };
        let mut status = self.fsctl_status(volume, fs_driver::nt::FSCTL_LOCK_VOLUME);
        if status >= 0 {
            status = self.fsctl_status(volume, code);
        }
        self.close(volume);
        status
    }

    /// `FSCTL_SET_PURGE_FAILURE_MODE` with `SET_PURGE_FAILURE_MODE_ENABLED` (true) or
    /// `_DISABLED`, as filter manager sends it around a data-scan section (NT-12).
    pub fn set_purge_failure_mode(&mut self, handle: Handle, enable: bool) -> NTSTATUS {
        let flags: u32 = if enable { 1 } else { 2 };
        self.fsctl(
            handle,
            fs_driver::nt::FSCTL_SET_PURGE_FAILURE_MODE,
            &flags.to_le_bytes(),
            0,
        )
        .0
    }

    /// A filter attaches a per-stream context to the stream behind `handle`'s file object
    /// (`FsRtlInsertPerStreamContext` on its `FsContext`, NT-31); its number.
    ///
    /// # Errors
    /// `STATUS_INVALID_HANDLE`, or the insert's status (the header does not advertise
    /// `FSRTL_FLAG2_SUPPORTS_FILTER_CONTEXTS`).
    pub fn attach_filter_context(&mut self, handle: Handle) -> Result<u32, NTSTATUS> {
        let fo = self.fo(handle)?;
        crate::fsrtl::attach_test_context(fo)
    }

    /// Does `FsRtlLookupPerStreamContext` find the filter's context `id` on `handle`'s stream?
    #[must_use]
    pub fn filter_context_present(&self, handle: Handle, id: u32) -> bool {
        self.fo(handle)
            .is_ok_and(|fo| crate::fsrtl::lookup_test_context(fo, id))
    }

    /// How many times the filter's FreeCallback ran for its context `id`.
    #[must_use]
    pub fn filter_context_frees(&self, id: u32) -> u32 {
        kernel::with(|k| k.test_contexts_freed.get(&id).copied().unwrap_or(0))
    }

    /// The PnP manager sends `IRP_MJ_PNP` with `minor` (`disk::IRP_MN_*`) for the disk: to
    /// the volume mounted on it (which does its part and passes it down), or straight to the
    /// disk when nothing is mounted. Around a query-remove it marks the disk's VPB
    /// `VPB_REMOVE_PENDING` (no new mount until cancel), as the PnP manager does; the status.
    pub fn pnp(&mut self, minor: u8) -> NTSTATUS {
        let vpb = self.vpb();
        // SAFETY: a live VPB.
        let vpb_ref = unsafe { &*vpb };
        let (flags, vdo) = (u32::from(vpb_ref.Flags), vpb_ref.DeviceObject);
        let device = if flags & fs_driver::nt::VPB_MOUNTED != 0 && !vdo.is_null() {
            vdo
        } else {
            self.disk.device
        };
        if minor == disk::IRP_MN_QUERY_REMOVE_DEVICE {
            // SAFETY: a live VPB.
            unsafe { (*vpb).Flags |= VPB_REMOVE_PENDING as u16 };
        }
        // SAFETY: a live device.
        let irp = io::allocate_irp(unsafe { (*device).StackSize }, false);
        let location = io::location(
            0x1b,
            minor,
            std::ptr::null_mut(),
            IO_STACK_LOCATION_0::default(),
        );
        // SAFETY: a fresh IRP.
        unsafe { io::set_next_stack(irp, location) };
        // SAFETY: a complete PnP IRP for the device.
        let (status, _) = unsafe { io::send_and_free(device, irp) };
        let cancel = minor == disk::IRP_MN_CANCEL_REMOVE_DEVICE
            || (minor == disk::IRP_MN_QUERY_REMOVE_DEVICE && status < 0);
        if cancel {
            // The disk's VPB now (the volume may have swapped in its spare, which keeps the
            // flag).
            let current = self.vpb();
            // SAFETY: a live VPB.
            unsafe { (*current).Flags &= !(VPB_REMOVE_PENDING as u16) };
        }
        io::reap_devices();
        status
    }

    /// `NtDeviceIoControlFile(handle, code, input, output)` for a `METHOD_BUFFERED` code: the
    /// status and the bytes returned.
    pub fn device_control(
        &mut self,
        handle: Handle,
        code: u32,
        input: &[u8],
        output_len: usize,
    ) -> (NTSTATUS, Vec<u8>) {
        let mut parameters = IO_STACK_LOCATION_0::default();
        parameters.DeviceIoControl = windows_sys::Wdk::Foundation::IO_STACK_LOCATION_0_16 {
            OutputBufferLength: u32::try_from(output_len).unwrap_or(u32::MAX),
            InputBufferLength: u32::try_from(input.len()).unwrap_or(u32::MAX),
            IoControlCode: code,
            Type3InputBuffer: std::ptr::null_mut(),
        };
        self.send_buffered(handle, 0x0e, 0, parameters, input, output_len)
    }

    /// PnP minor functions the disk received, in order.
    #[must_use]
    pub fn disk_pnp_requests(&self) -> Vec<u8> {
        kernel::with(|k| k.disk_pnp.clone())
    }

    /// Device control codes the disk received, in order.
    #[must_use]
    pub fn disk_device_controls(&self) -> Vec<u32> {
        kernel::with(|k| k.disk_ioctls.clone())
    }

    /// Makes the disk refuse query-removes (something below it is in use).
    pub fn set_disk_refuses_query_remove(&mut self, refuse: bool) {
        kernel::with(|k| k.disk_refuses_query_remove = refuse);
    }

    /// The disk's current VPB (an address, to compare across mounts).
    #[must_use]
    pub fn disk_vpb(&self) -> usize {
        self.vpb().addr()
    }

    /// The VPB a handle's file object was opened through, and the device its requests go to
    /// now (`IoGetRelatedDeviceObject`), as addresses.
    #[must_use]
    pub fn handle_volume(&self, handle: Handle) -> (usize, usize) {
        let Ok(fo) = self.fo(handle) else {
            return (0, 0);
        };
        // SAFETY: a live file object.
        let vpb = unsafe { (*fo).Vpb };
        let device = io::related_device(fo).unwrap_or(std::ptr::null_mut());
        (vpb.addr(), device.addr())
    }

    /// `ReferenceCount` of the disk's current VPB (file objects opened through it).
    #[must_use]
    pub fn disk_vpb_references(&self) -> u32 {
        // SAFETY: a live VPB.
        unsafe { (*self.vpb()).ReferenceCount }
    }

    /// Volume devices of the driver not yet deleted (its control device excluded).
    #[must_use]
    pub fn live_volume_devices(&self) -> usize {
        io::live_devices_of(self.driver).saturating_sub(1)
    }

    /// Object references drivers hold on the disk device (`ObfReferenceObject`).
    #[must_use]
    pub fn disk_references(&self) -> i64 {
        let disk = self.disk.device.addr();
        kernel::with(|k| k.object_refs.get(&disk).copied().unwrap_or(0))
    }

    /// Is the disk's current VPB mounted?
    #[must_use]
    pub fn is_mounted(&self) -> bool {
        // SAFETY: a live VPB.
        u32::from(unsafe { (*self.vpb()).Flags }) & fs_driver::nt::VPB_MOUNTED != 0
    }

    /// The end of every test: all handles must be closed; the volume is dismounted, memory
    /// pressure runs, the driver unloads, the disk goes, and what is left is reported.
    #[must_use]
    pub fn finish(self) -> Leaks {
        self.finish_keeping_medium().0
    }

    /// [`Sim::finish`], and the disk's medium after the dismount (to check it with fsck).
    #[must_use]
    pub fn finish_keeping_medium(mut self) -> (Leaks, MemDevice) {
        if !self.handles.is_empty() {
            ex::bugcheck("finish with handles still open");
        }
        if self.volume_hold.is_some() {
            ex::bugcheck("finish with the volume still held by another thread");
        }
        if self.is_mounted() {
            let status = self.dismount();
            if status < 0 {
                ex::bugcheck(&format!("dismount failed: {status:#x}"));
            }
        }
        self.memory_pressure();
        // The system worker threads finish what the driver queued (deferred closes, NT-32).
        self.run_work_items();
        let mut leaks = Leaks {
            // SAFETY: our driver object.
            unload_refused: unsafe { (*self.driver).DriverUnload }.is_none(),
            ..Leaks::default()
        };
        // SAFETY: our driver object.
        if let Some(unload) = unsafe { (*self.driver).DriverUnload } {
            // SAFETY: the driver's unload routine with its own driver object.
            unsafe { unload(self.driver) };
        }
        io::reap_devices();
        leaks.devices = io::live_devices_of(self.driver);
        // References drivers still hold on the disk (a VCB that was never torn down).
        leaks.object_references = kernel::with(|k| {
            k.object_refs
                .values()
                .map(|&n| usize::try_from(n).unwrap_or(0))
                .sum()
        });
        // The disk's current VPB goes with the disk; one the file system swapped out is its
        // own to free (NT-29), and shows as a `Vpb ` pool leak if it did not.
        let current_vpb = self.vpb();
        let medium = disk::destroy(&self.disk).unwrap_or_else(|| MemDevice::new(0));
        disk::free_vpb(current_vpb);
        kernel::with(|k| {
            leaks.pool = k.pool.values().map(|b| (tag_name(b.tag), b.size)).collect();
            leaks.file_objects = k.file_objects.len();
            leaks.resources = k.resources.len();
            leaks.irps = k.irps.len();
            leaks.mdls = k.mdls.len();
            leaks.segments = k.control_areas.len() + k.images.len();
            leaks.timers = k
                .background
                .timers
                .values()
                .filter(|t| t.due.is_some())
                .count();
        });
        ex::release_quarantine();
        leaks.irps += kernel::with(|k| k.pending.len());
        if leaks.devices == 0 && !leaks.unload_refused {
            // SAFETY: created by Box::into_raw in `with_medium`; its devices are gone.
            drop(unsafe { Box::from_raw(self.driver) });
        }
        (leaks, medium)
    }
}

impl Sim {
    /// A schedule halted with threads parked inside the driver ([`crate::sched`]): they keep
    /// pointers into this machine, so everything is leaked except the test lock.
    pub(crate) fn abandon(self) {
        let Sim {
            _lock,
            driver,
            disk,
            handles,
            volume_hold,
            ..
        } = self;
        std::mem::forget((driver, disk, handles, volume_hold));
        drop(_lock);
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

/// A threaded IRP a test sent to the disk ([`Sim::send_threaded_length_query`]).
pub struct ThreadedRequest {
    event: Box<windows_sys::Wdk::Foundation::KEVENT>,
    iosb: Box<windows_sys::Win32::System::IO::IO_STATUS_BLOCK>,
    length: Box<i64>,
    /// What `IofCallDriver` returned.
    pub returned: NTSTATUS,
}

impl ThreadedRequest {
    /// The status block and output as the completion APC left them: (status, information,
    /// the disk's length).
    #[must_use]
    pub fn result(&self) -> (NTSTATUS, usize, i64) {
        // SAFETY: the status member of a status block (zero until the APC writes it).
        let status = unsafe { self.iosb.Anonymous.Status };
        (status, self.iosb.Information, *self.length)
    }
}

/// The I/O manager's checks of the synchronous options (`IopCreateFile`): one of the two at
/// most, and only with `SYNCHRONIZE` access (the wait on the file object needs it).
fn check_synchronous_options(open: &Open) -> Result<(), NTSTATUS> {
    let both = options::FILE_SYNCHRONOUS_IO_ALERT | options::FILE_SYNCHRONOUS_IO_NONALERT;
    let asked = open.options & both;
    if asked == both || (asked != 0 && map_generic(open.access) & access::SYNCHRONIZE == 0) {
        return Err(windows_sys::Win32::Foundation::STATUS_INVALID_PARAMETER);
    }
    Ok(())
}

/// The file object flags the synchronous create options give.
fn synchronous_flags(create_options: u32) -> u32 {
    if create_options & options::FILE_SYNCHRONOUS_IO_ALERT != 0 {
        crate::rw::FO_SYNCHRONOUS_IO | crate::rw::FO_ALERTABLE_IO
    } else if create_options & options::FILE_SYNCHRONOUS_IO_NONALERT != 0 {
        crate::rw::FO_SYNCHRONOUS_IO
    } else {
        0
    }
}

/// A pool tag as its four characters.
#[must_use]
pub fn tag_name(tag: u32) -> String {
    String::from_utf8_lossy(&tag.to_le_bytes()).into_owned()
}

/// Fills a create IRP's stack location.
///
/// # Safety
/// `irp` is fresh; `security` outlives the request.
unsafe fn fill_create(
    irp: *mut IRP,
    fo: *mut FILE_OBJECT,
    security: &mut IO_SECURITY_CONTEXT,
    open: &Open,
    stack_flags: u8,
) {
    let mut parameters = IO_STACK_LOCATION_0::default();
    parameters.Create = IO_STACK_LOCATION_0_0 {
        SecurityContext: security,
        Options: (open.disposition << 24) | (open.options & 0x00FF_FFFF),
        FileAttributes: u16::try_from(open.attributes).unwrap_or(0),
        ShareAccess: u16::try_from(open.share).unwrap_or(0),
        EaLength: 0,
    };
    let mut location = io::location(0x00, 0, fo, parameters);
    location.Flags = stack_flags;
    // SAFETY: the caller's contract.
    unsafe { io::set_next_stack(irp, location) };
    // SAFETY: as above.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.Tail.Overlay.OriginalFileObject = fo;
}

/// A user-mode `METHOD_NEITHER` `IRP_MN_USER_FS_REQUEST` with the caller's buffers as
/// given: (address, length) each; the status and information.
///
/// # Safety
/// `device` and `fo` are live; registered user buffers outlive the request.
pub(crate) unsafe fn fsctl_neither_at(
    fo: *mut FILE_OBJECT,
    device: *mut DEVICE_OBJECT,
    code: u32,
    input: (*mut u8, usize),
    output: (*mut u8, usize),
) -> (NTSTATUS, usize) {
    // SAFETY: a live device.
    let irp = io::allocate_irp(unsafe { (*device).StackSize }, false);
    let mut parameters = IO_STACK_LOCATION_0::default();
    parameters.FileSystemControl = IO_STACK_LOCATION_0_14 {
        OutputBufferLength: u32::try_from(output.1).unwrap_or(u32::MAX),
        InputBufferLength: u32::try_from(input.1).unwrap_or(u32::MAX),
        FsControlCode: code,
        Type3InputBuffer: input.0.cast(),
    };
    // SAFETY: a fresh IRP.
    unsafe { io::set_next_stack(irp, io::location(0x0d, 0x00, fo, parameters)) };
    // SAFETY: a fresh IRP of the model.
    let irp_ref = unsafe { &mut *irp };
    irp_ref.UserBuffer = output.0.cast();
    // NtFsControlFile from a user thread.
    irp_ref.RequestorMode = 1;
    // SAFETY: a complete IRP for the file object's device.
    let (status, information) = unsafe { io::send_and_free(device, irp) };
    io::reap_devices();
    (status, information)
}

/// An `IRP_MN_USER_FS_REQUEST` with no buffers.
///
/// # Safety
/// `device` and `fo` are live.
unsafe fn send_fsctl(device: *mut DEVICE_OBJECT, fo: *mut FILE_OBJECT, code: u32) -> NTSTATUS {
    // SAFETY: a live device.
    let irp = io::allocate_irp(unsafe { (*device).StackSize }, false);
    let mut parameters = IO_STACK_LOCATION_0::default();
    parameters.FileSystemControl = IO_STACK_LOCATION_0_14 {
        OutputBufferLength: 0,
        InputBufferLength: 0,
        FsControlCode: code,
        Type3InputBuffer: std::ptr::null_mut(),
    };
    // SAFETY: a fresh IRP.
    unsafe { io::set_next_stack(irp, io::location(0x0d, 0x00, fo, parameters)) };
    // SAFETY: a complete IRP for `device`.
    let (status, _) = unsafe { io::send_and_free(device, irp) };
    status
}
