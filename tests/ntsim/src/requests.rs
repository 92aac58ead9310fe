//! The rest of the test API's requests: query/set information, directory enumeration and
//! change notification, volume information, flush, byte-range locks and volume FSCTLs.
//!
//! Buffers travel as the I/O manager sends them: query/set information, volume information
//! and FSCTLs in a system buffer (METHOD_BUFFERED; `Information` bytes copied back on
//! success and on warnings such as `STATUS_BUFFER_OVERFLOW`), directory enumeration and
//! notification in the caller's buffer (`Irp->UserBuffer`). The model sends these IRPs as a
//! kernel-mode caller could, without the I/O manager's own minimum-length checks, so what a
//! test sees for short buffers is the file system's answer.
#![allow(unsafe_code)]

use windows_sys::Wdk::Foundation::{
    FILE_OBJECT, IO_STACK_LOCATION_0, IO_STACK_LOCATION_0_12, IO_STACK_LOCATION_0_13,
    IO_STACK_LOCATION_0_15, IO_STACK_LOCATION_0_5, IO_STACK_LOCATION_0_6, IO_STACK_LOCATION_0_8,
    IO_STACK_LOCATION_0_9,
};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_INVALID_HANDLE, UNICODE_STRING};

use crate::api::{access, disposition, options, share, Handle, Open, Sim};
use crate::ex::bugcheck;
use crate::io::{self, AsyncResult};
use crate::kernel;

/// IRP major function codes used here.
mod mj {
    pub const QUERY_INFORMATION: u8 = 0x05;
    pub const SET_INFORMATION: u8 = 0x06;
    pub const FLUSH_BUFFERS: u8 = 0x09;
    pub const QUERY_VOLUME_INFORMATION: u8 = 0x0a;
    pub const SET_VOLUME_INFORMATION: u8 = 0x0b;
    pub const DIRECTORY_CONTROL: u8 = 0x0c;
    pub const LOCK_CONTROL: u8 = 0x11;
}

/// Information classes the I/O manager answers itself, and `FileAllInformation`.
const ACCESS_CLASS: i32 = 8;
const MODE_CLASS: i32 = 16;
const ALIGNMENT_CLASS: i32 = 17;
const ALL_CLASS: i32 = 18;
/// `FilePositionInformation`: the I/O manager's own on a synchronous file object (NT-28).
const POSITION_CLASS: i32 = 14;
/// Rename and link classes (`FileRenameInformation`, `FileLinkInformation`, their -Ex forms).
const RENAME_CLASS: i32 = 10;
const LINK_CLASS: i32 = 11;
const LINK_EX_CLASS: i32 = 72;
/// `SL_OPEN_TARGET_DIRECTORY`, and the `Information` of such a create (NT-30).
const SL_OPEN_TARGET_DIRECTORY: u8 = 0x04;
const FILE_EXISTS: usize = 4;
const FILE_DOES_NOT_EXIST: usize = 5;
/// `FILE_ADD_SUBDIRECTORY` (the directory form of `FILE_APPEND_DATA`).
const FILE_ADD_SUBDIRECTORY: u32 = 0x4;
/// `FO_NO_INTERMEDIATE_BUFFERING` and `FILE_NO_INTERMEDIATE_BUFFERING` share the value 8.
const FILE_NO_INTERMEDIATE_BUFFERING: u32 = 0x8;

/// `IRP_BUFFERED_IO`, `IRP_INPUT_OPERATION`.
const IRP_BUFFERED_IO: u32 = 0x10;
const IRP_INPUT_OPERATION: u32 = 0x40;

/// Stack location flags of directory control (`SL_*`).
pub mod dir_flags {
    /// Start the enumeration over.
    pub const SL_RESTART_SCAN: u8 = 0x01;
    /// Return one entry.
    pub const SL_RETURN_SINGLE_ENTRY: u8 = 0x02;
    /// Resume at `FileIndex`.
    pub const SL_INDEX_SPECIFIED: u8 = 0x04;
    /// Notify: watch the whole subtree.
    pub const SL_WATCH_TREE: u8 = 0x01;
}

/// A pended notify request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending(u32);

/// A request's status and the caller's output.
pub type Reply = (NTSTATUS, Vec<u8>);

impl Sim {
    fn device_of(fo: *mut FILE_OBJECT) -> Option<*mut windows_sys::Wdk::Foundation::DEVICE_OBJECT> {
        io::related_device(fo)
    }

    /// Sends a METHOD_BUFFERED-style request: `input` copied into a system buffer of
    /// `max(input, out_len)` bytes; on success or warning `Information` bytes come back.
    pub(crate) fn send_buffered(
        &mut self,
        handle: Handle,
        major: u8,
        minor: u8,
        parameters: IO_STACK_LOCATION_0,
        input: &[u8],
        out_len: usize,
    ) -> Reply {
        let Ok(fo) = self.fo(handle) else {
            return (STATUS_INVALID_HANDLE, Vec::new());
        };
        let Some(device) = Self::device_of(fo) else {
            bugcheck("request on a file object that does not exist")
        };
        io::reference(fo);
        // SAFETY: a live device.
        let irp = io::allocate_irp(unsafe { (*device).StackSize }, false);
        // SAFETY: a fresh IRP.
        unsafe { io::set_next_stack(irp, io::location(major, minor, fo, parameters)) };
        let mut system = vec![0xE5u8; input.len().max(out_len)];
        system[..input.len()].copy_from_slice(input);
        // SAFETY: a fresh IRP, ours until sent; the buffer outlives the synchronous request.
        let irp_ref = unsafe { &mut *irp };
        if !system.is_empty() {
            irp_ref.AssociatedIrp.SystemBuffer = system.as_mut_ptr().cast();
            irp_ref.Flags = IRP_BUFFERED_IO | if out_len > 0 { IRP_INPUT_OPERATION } else { 0 };
        }
        irp_ref.Tail.Overlay.OriginalFileObject = fo;
        // SAFETY: a complete IRP for the file's device.
        let (status, information) = unsafe { io::send_and_free(device, irp) };
        io::dereference(fo);
        io::reap_devices();
        if status >= 0 || io::is_warning(status) {
            system.truncate(information.min(out_len));
            (status, system)
        } else {
            (status, Vec::new())
        }
    }

    /// `NtQueryInformationFile` of `class` with an output buffer of `len` bytes. As on NT,
    /// access, mode and alignment information are answered by the I/O manager without an IRP,
    /// and it fills those parts of `FILE_ALL_INFORMATION` after the file system.
    pub fn query_information(&mut self, handle: Handle, class: i32, len: usize) -> Reply {
        if matches!(class, ACCESS_CLASS | MODE_CLASS | ALIGNMENT_CLASS) {
            return self.io_manager_information(handle, class, len);
        }
        if class == POSITION_CLASS && len >= 8 {
            if let Some(reply) = self.io_manager_position(handle, None) {
                return reply;
            }
        }
        let mut p = IO_STACK_LOCATION_0::default();
        p.QueryFile = IO_STACK_LOCATION_0_8 {
            Length: u32::try_from(len).unwrap_or(u32::MAX),
            FileInformationClass: class,
        };
        let (status, mut data) = self.send_buffered(handle, mj::QUERY_INFORMATION, 0, p, &[], len);
        if class == ALL_CLASS {
            for (at, c) in [(76, ACCESS_CLASS), (88, MODE_CLASS), (92, ALIGNMENT_CLASS)] {
                if data.len() >= at + 4 {
                    let (_, part) = self.io_manager_information(handle, c, 4);
                    data[at..at + 4].copy_from_slice(&part);
                }
            }
        }
        (status, data)
    }

    /// The I/O manager's own answers: granted access, the file object's mode, the device's
    /// alignment requirement.
    fn io_manager_information(&mut self, handle: Handle, class: i32, len: usize) -> Reply {
        let Ok(fo) = self.fo(handle) else {
            return (STATUS_INVALID_HANDLE, Vec::new());
        };
        if len < 4 {
            return (
                windows_sys::Win32::Foundation::STATUS_INFO_LENGTH_MISMATCH,
                Vec::new(),
            );
        }
        let value = match class {
            ACCESS_CLASS => kernel::with(|k| k.file_objects.get(&fo).map_or(0, |r| r.granted)),
            // SAFETY: a live file object.
            MODE_CLASS => (unsafe { (*fo).Flags }) & FILE_NO_INTERMEDIATE_BUFFERING,
            _ => {
                let device = Self::device_of(fo).unwrap_or(std::ptr::null_mut());
                if device.is_null() {
                    0
                } else {
                    // SAFETY: a live device.
                    unsafe { (*device).AlignmentRequirement }
                }
            }
        };
        (
            windows_sys::Win32::Foundation::STATUS_SUCCESS,
            value.to_le_bytes().to_vec(),
        )
    }

    /// `NtSetInformationFile` of `class` with `data`.
    /// Rename and link classes go through [`Sim::rename`] (the I/O manager's own part of
    /// them); here they are sent as they are, with no target file object.
    pub fn set_information(&mut self, handle: Handle, class: i32, data: &[u8]) -> NTSTATUS {
        if class == POSITION_CLASS {
            if let Some((status, _)) = self.io_manager_position(handle, Some(data)) {
                return status;
            }
        }
        self.set_information_with(handle, class, data, std::ptr::null_mut(), false)
    }

    fn set_information_with(
        &mut self,
        handle: Handle,
        class: i32,
        data: &[u8],
        target: *mut FILE_OBJECT,
        replace_if_exists: bool,
    ) -> NTSTATUS {
        let mut p = IO_STACK_LOCATION_0::default();
        p.SetFile = IO_STACK_LOCATION_0_9 {
            Length: u32::try_from(data.len()).unwrap_or(u32::MAX),
            FileInformationClass: class,
            FileObject: target,
            ..Default::default()
        };
        // The union member of rename and link.
        p.SetFile.Anonymous.Anonymous.ReplaceIfExists = replace_if_exists;
        self.send_buffered(handle, mj::SET_INFORMATION, 0, p, data, 0)
            .0
    }

    /// `NtSetInformationFile` of a rename or link (`class` 10 rename, 65 rename-ex, 11 link,
    /// 72 link-ex) to `target`, without `RootDirectory`. `flags`: ReplaceIfExists (non-zero)
    /// for the plain classes, `FILE_RENAME_*` flags for the -ex ones. See
    /// [`Sim::rename_relative`] for what the I/O manager does with the name.
    pub fn rename(&mut self, handle: Handle, class: i32, target: &str, flags: u32) -> NTSTATUS {
        self.rename_at(handle, class, None, target, flags)
    }

    /// A rename or link whose `FILE_RENAME_INFORMATION.RootDirectory` is `root`: `target` is
    /// relative to that directory (NT-30).
    pub fn rename_relative(
        &mut self,
        handle: Handle,
        class: i32,
        root: Handle,
        target: &str,
        flags: u32,
    ) -> NTSTATUS {
        self.rename_at(handle, class, Some(root), target, flags)
    }

    /// The I/O manager's part of a rename or link (NT-30; ReactOS `NtSetInformationFile`,
    /// `IopOpenLinkOrRenameTarget`): the name must be there, in whole UTF-16 units. A full path
    /// (leading backslash) or a `RootDirectory` makes it open the target first, by that path
    /// and with `SL_OPEN_TARGET_DIRECTORY` (`FILE_WRITE_DATA`, or `FILE_ADD_SUBDIRECTORY` when
    /// the source is a directory, and `SYNCHRONIZE`; share read and write; `FILE_OPEN`;
    /// `FILE_OPEN_FOR_BACKUP_INTENT`): resolving the parent and the final component is the file
    /// system's. A link that must not replace an existing target fails there with
    /// `STATUS_OBJECT_NAME_COLLISION`; a target on another device with
    /// `STATUS_NOT_SAME_DEVICE`. The rename IRP then carries the target's file object and
    /// ReplaceIfExists. A bare name goes down as it is, with no target file object.
    fn rename_at(
        &mut self,
        handle: Handle,
        class: i32,
        root: Option<Handle>,
        target: &str,
        flags: u32,
    ) -> NTSTATUS {
        let name: Vec<u16> = target.encode_utf16().collect();
        let root_value = root.map_or(0u64, |h| u64::from(h.0));
        let plain = matches!(class, RENAME_CLASS | LINK_CLASS);
        let mut data = Vec::new();
        if plain {
            data.push(u8::from(flags != 0));
            data.extend([0u8; 7]); // padding to the RootDirectory handle
        } else {
            data.extend(flags.to_le_bytes());
            data.extend([0u8; 4]);
        }
        data.extend(root_value.to_le_bytes());
        data.extend(u32::try_from(name.len() * 2).unwrap_or(0).to_le_bytes());
        data.extend(name.iter().flat_map(|u| u.to_le_bytes()));
        data.resize(data.len().max(24), 0);
        if name.is_empty() {
            return windows_sys::Win32::Foundation::STATUS_INVALID_PARAMETER;
        }
        let replace = if plain { flags != 0 } else { flags & 1 != 0 };
        if name[0] != u16::from(b'\\') && root.is_none() {
            return self.set_information_with(handle, class, &data, std::ptr::null_mut(), replace);
        }
        let (target_dir, information) = match self.open_rename_target(handle, root, target) {
            Ok(opened) => opened,
            Err(status) => return status,
        };
        let link = matches!(class, LINK_CLASS | LINK_EX_CLASS);
        let status = if link && !replace && information == FILE_EXISTS {
            windows_sys::Win32::Foundation::STATUS_OBJECT_NAME_COLLISION
        } else {
            match (self.fo(handle), self.fo(target_dir)) {
                (Ok(source), Ok(dir)) if Self::device_of(source) != Self::device_of(dir) => {
                    windows_sys::Win32::Foundation::STATUS_NOT_SAME_DEVICE
                }
                (Ok(_), Ok(dir)) => self.set_information_with(handle, class, &data, dir, replace),
                _ => STATUS_INVALID_HANDLE,
            }
        };
        self.close(target_dir);
        status
    }

    /// `IopOpenLinkOrRenameTarget`'s create: the target directory's handle and whether the
    /// final component exists, as the file system answered.
    fn open_rename_target(
        &mut self,
        source: Handle,
        root: Option<Handle>,
        target: &str,
    ) -> Result<(Handle, usize), NTSTATUS> {
        // FILE_ATTRIBUTE_DIRECTORY in the source's basic information.
        let (status, basic) = self.query_information(source, 4, 40);
        if status < 0 {
            return Err(status);
        }
        let attributes = basic
            .get(32..36)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
        let add = if attributes & 0x10 != 0 {
            FILE_ADD_SUBDIRECTORY
        } else {
            access::FILE_WRITE_DATA
        };
        let open = Open::new(add | access::SYNCHRONIZE)
            .share(share::READ | share::WRITE)
            .disposition(disposition::FILE_OPEN)
            .options(options::FILE_OPEN_FOR_BACKUP_INTENT);
        let related = match root {
            Some(dir) => Some(self.fo(dir)?),
            None => None,
        };
        let (handle, information) =
            self.open_with(target, related, &open, SL_OPEN_TARGET_DIRECTORY)?;
        if information != FILE_EXISTS && information != FILE_DOES_NOT_EXIST {
            bugcheck("an SL_OPEN_TARGET_DIRECTORY create answered neither FILE_EXISTS nor FILE_DOES_NOT_EXIST");
        }
        Ok((handle, information))
    }

    /// `NtQueryDirectoryFile`: `class`, a `len`-byte buffer, an optional expression (as the
    /// I/O manager passes it), `SL_*` flags and a `FileIndex`.
    pub fn query_directory(
        &mut self,
        handle: Handle,
        class: i32,
        len: usize,
        expression: Option<&str>,
        flags: u8,
        index: u32,
    ) -> Reply {
        let Ok(fo) = self.fo(handle) else {
            return (STATUS_INVALID_HANDLE, Vec::new());
        };
        let Some(device) = Self::device_of(fo) else {
            bugcheck("request on a file object that does not exist")
        };
        let mut units: Vec<u16> = expression
            .map(|e| e.encode_utf16().collect())
            .unwrap_or_default();
        let bytes = u16::try_from(units.len() * 2).unwrap_or(u16::MAX);
        let mut name = UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: units.as_mut_ptr(),
        };
        let mut p = IO_STACK_LOCATION_0::default();
        p.QueryDirectory = IO_STACK_LOCATION_0_5 {
            Length: u32::try_from(len).unwrap_or(u32::MAX),
            FileName: if expression.is_some() {
                &mut name
            } else {
                std::ptr::null_mut()
            },
            FileInformationClass: class,
            FileIndex: index,
        };
        // SAFETY: a live device.
        let irp = io::allocate_irp(unsafe { (*device).StackSize }, false);
        let mut location = io::location(mj::DIRECTORY_CONTROL, 1, fo, p);
        location.Flags = flags;
        // SAFETY: a fresh IRP.
        unsafe { io::set_next_stack(irp, location) };
        // SAFETY: the expression and its name outlive the synchronous request.
        let token = unsafe { io::send_async(fo, irp, len) };
        match io::take_async_result(token) {
            Some(r) => (r.status, r.data),
            None => bugcheck("a directory query was left pending"),
        }
    }

    /// `NtNotifyChangeDirectoryFile` with a `len`-byte buffer: pended (or completed at once,
    /// its result then ready through [`Sim::notify_result`]).
    ///
    /// # Errors
    /// `STATUS_INVALID_HANDLE`.
    pub fn notify_change_directory(
        &mut self,
        handle: Handle,
        filter: u32,
        watch_tree: bool,
        len: usize,
    ) -> Result<Pending, NTSTATUS> {
        let fo = self.fo(handle)?;
        let Some(device) = Self::device_of(fo) else {
            bugcheck("request on a file object that does not exist")
        };
        let mut p = IO_STACK_LOCATION_0::default();
        p.NotifyDirectory = IO_STACK_LOCATION_0_6 {
            Length: u32::try_from(len).unwrap_or(u32::MAX),
            CompletionFilter: filter,
        };
        // SAFETY: a live device.
        let irp = io::allocate_irp(unsafe { (*device).StackSize }, false);
        let mut location = io::location(mj::DIRECTORY_CONTROL, 2, fo, p);
        location.Flags = if watch_tree {
            dir_flags::SL_WATCH_TREE
        } else {
            0
        };
        // SAFETY: a fresh IRP.
        unsafe { io::set_next_stack(irp, location) };
        // SAFETY: a complete IRP on a live opened file object.
        Ok(Pending(unsafe { io::send_async(fo, irp, len) }))
    }

    /// The result of a notify request once it completed (taken: asked once).
    pub fn notify_result(&mut self, pending: Pending) -> Option<AsyncResult> {
        io::deliver_apcs();
        io::take_async_result(pending.0)
    }

    /// `NtQueryVolumeInformationFile` of `class`.
    pub fn query_volume_information(&mut self, handle: Handle, class: i32, len: usize) -> Reply {
        let mut p = IO_STACK_LOCATION_0::default();
        p.QueryVolume = IO_STACK_LOCATION_0_12 {
            Length: u32::try_from(len).unwrap_or(u32::MAX),
            FsInformationClass: class,
        };
        self.send_buffered(handle, mj::QUERY_VOLUME_INFORMATION, 0, p, &[], len)
    }

    /// `NtSetVolumeInformationFile` of `class`.
    pub fn set_volume_information(&mut self, handle: Handle, class: i32, data: &[u8]) -> NTSTATUS {
        let mut p = IO_STACK_LOCATION_0::default();
        p.SetVolume = IO_STACK_LOCATION_0_13 {
            Length: u32::try_from(data.len()).unwrap_or(u32::MAX),
            FsInformationClass: class,
        };
        self.send_buffered(handle, mj::SET_VOLUME_INFORMATION, 0, p, data, 0)
            .0
    }

    /// `NtFlushBuffersFile`.
    pub fn flush(&mut self, handle: Handle) -> NTSTATUS {
        self.send_buffered(
            handle,
            mj::FLUSH_BUFFERS,
            0,
            IO_STACK_LOCATION_0::default(),
            &[],
            0,
        )
        .0
    }

    /// `NtLockFile` with `FailImmediately` (waiting locks are not modelled).
    pub fn lock(
        &mut self,
        handle: Handle,
        offset: u64,
        len: u64,
        key: u32,
        exclusive: bool,
    ) -> NTSTATUS {
        let flags = 0x01 | if exclusive { 0x02 } else { 0 };
        self.lock_control(handle, 1, flags, offset, len, key)
    }

    /// `NtUnlockFile` of one range.
    pub fn unlock(&mut self, handle: Handle, offset: u64, len: u64, key: u32) -> NTSTATUS {
        self.lock_control(handle, 2, 0, offset, len, key)
    }

    fn lock_control(
        &mut self,
        handle: Handle,
        minor: u8,
        flags: u8,
        offset: u64,
        len: u64,
        key: u32,
    ) -> NTSTATUS {
        let Ok(fo) = self.fo(handle) else {
            return STATUS_INVALID_HANDLE;
        };
        let Some(device) = Self::device_of(fo) else {
            bugcheck("request on a file object that does not exist")
        };
        let mut length = i64::try_from(len).unwrap_or(i64::MAX);
        let mut p = IO_STACK_LOCATION_0::default();
        p.LockControl = IO_STACK_LOCATION_0_15 {
            Length: &mut length,
            Key: key,
            ByteOffset: i64::try_from(offset).unwrap_or(i64::MAX),
        };
        io::reference(fo);
        // SAFETY: a live device.
        let irp = io::allocate_irp(unsafe { (*device).StackSize }, false);
        let mut location = io::location(mj::LOCK_CONTROL, minor, fo, p);
        location.Flags = flags;
        // SAFETY: a fresh IRP.
        unsafe { io::set_next_stack(irp, location) };
        // SAFETY: as above; the IRP is ours until sent.
        let irp_ref = unsafe { &mut *irp };
        irp_ref.Tail.Overlay.OriginalFileObject = fo;
        // SAFETY: a complete IRP; `length` outlives the synchronous request.
        let (status, _) = unsafe { io::send_and_free(device, irp) };
        io::dereference(fo);
        status
    }

    fn fast_io(
        &self,
        handle: Handle,
    ) -> Option<(
        *mut FILE_OBJECT,
        *mut windows_sys::Wdk::Foundation::DEVICE_OBJECT,
        windows_sys::Wdk::Foundation::FAST_IO_DISPATCH,
    )> {
        self.fast_io_table(self.fo(handle).ok()?)
    }

    /// The file object, its file system device and that driver's fast I/O table, if any.
    pub(crate) fn fast_io_table(
        &self,
        fo: *mut FILE_OBJECT,
    ) -> Option<(
        *mut FILE_OBJECT,
        *mut windows_sys::Wdk::Foundation::DEVICE_OBJECT,
        windows_sys::Wdk::Foundation::FAST_IO_DISPATCH,
    )> {
        let device = Self::device_of(fo)?;
        // SAFETY: a live device.
        let driver = unsafe { (*device).DriverObject };
        // SAFETY: its live driver.
        let table = unsafe { (*driver).FastIoDispatch };
        if table.is_null() {
            return None;
        }
        // SAFETY: the driver's static dispatch table.
        Some((fo, device, unsafe { *table }))
    }

    /// The fast I/O lock path, as the I/O manager tries it before building an IRP
    /// (`FailImmediately`); None when the file system declines.
    pub fn fast_lock(
        &mut self,
        handle: Handle,
        offset: u64,
        len: u64,
        key: u32,
        exclusive: bool,
    ) -> Option<NTSTATUS> {
        let (fo, device, table) = self.fast_io(handle)?;
        let routine = table.FastIoLock?;
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let length = i64::try_from(len).unwrap_or(i64::MAX);
        let mut iosb = windows_sys::Win32::System::IO::IO_STATUS_BLOCK::default();
        let process = io::requestor_process();
        // SAFETY: the driver's fast I/O routine with a live file object and valid arguments.
        let done = unsafe {
            routine(
                fo, &offset, &length, process, key, true, exclusive, &mut iosb, device,
            )
        };
        // SAFETY: the status member (zero-initialised, written by the routine).
        done.then_some(unsafe { iosb.Anonymous.Status })
    }

    /// The fast I/O unlock-single path; None when the file system declines.
    pub fn fast_unlock(
        &mut self,
        handle: Handle,
        offset: u64,
        len: u64,
        key: u32,
    ) -> Option<NTSTATUS> {
        let (fo, device, table) = self.fast_io(handle)?;
        let routine = table.FastIoUnlockSingle?;
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let length = i64::try_from(len).unwrap_or(i64::MAX);
        let mut iosb = windows_sys::Win32::System::IO::IO_STATUS_BLOCK::default();
        let process = io::requestor_process();
        // SAFETY: as in `fast_lock`.
        let done = unsafe { routine(fo, &offset, &length, process, key, &mut iosb, device) };
        // SAFETY: the status member (zero-initialised, written by the routine).
        done.then_some(unsafe { iosb.Anonymous.Status })
    }

    /// The fast I/O unlock-all and unlock-all-by-key paths; None when declined.
    pub fn fast_unlock_all(&mut self, handle: Handle, key: Option<u32>) -> Option<NTSTATUS> {
        let (fo, device, table) = self.fast_io(handle)?;
        let mut iosb = windows_sys::Win32::System::IO::IO_STATUS_BLOCK::default();
        let process = io::requestor_process();
        let done = match key {
            // SAFETY: as in `fast_lock`.
            None => unsafe { (table.FastIoUnlockAll?)(fo, process, &mut iosb, device) },
            // SAFETY: as above.
            Some(key) => unsafe {
                (table.FastIoUnlockAllByKey?)(
                    fo,
                    process as *const std::ffi::c_void,
                    key,
                    &mut iosb,
                    device,
                )
            },
        };
        // SAFETY: the status member (zero-initialised, written by the routine).
        done.then_some(unsafe { iosb.Anonymous.Status })
    }

    /// The fast I/O query paths (class 4 basic, 5 standard, 34 network open); None when the
    /// file system declines.
    pub fn fast_query(&mut self, handle: Handle, class: i32) -> Option<Reply> {
        let (fo, device, table) = self.fast_io(handle)?;
        let mut buffer = vec![0xE5u8; 64];
        let mut iosb = windows_sys::Win32::System::IO::IO_STATUS_BLOCK::default();
        let out = buffer.as_mut_ptr();
        let done = match class {
            // SAFETY: the routine writes one FILE_BASIC_INFORMATION (40 bytes) into 64.
            4 => unsafe { (table.FastIoQueryBasicInfo?)(fo, true, out.cast(), &mut iosb, device) },
            // SAFETY: as above (24 bytes).
            5 => unsafe {
                (table.FastIoQueryStandardInfo?)(fo, true, out.cast(), &mut iosb, device)
            },
            // SAFETY: as above (56 bytes).
            34 => unsafe {
                (table.FastIoQueryNetworkOpenInfo?)(fo, true, out.cast(), &mut iosb, device)
            },
            _ => false,
        };
        if !done {
            return None;
        }
        buffer.truncate(iosb.Information);
        // SAFETY: the status member the routine wrote.
        Some((unsafe { iosb.Anonymous.Status }, buffer))
    }

    /// `IRP_MJ_SHUTDOWN` to every registered file system's control device (what the I/O
    /// manager sends at system shutdown); the first failure, else success.
    pub fn shutdown(&mut self) -> NTSTATUS {
        let file_systems = kernel::with(|k| k.file_systems.clone());
        let mut result = windows_sys::Win32::Foundation::STATUS_SUCCESS;
        for fs in file_systems {
            // SAFETY: a registered file system's live control device.
            let irp = io::allocate_irp(unsafe { (*fs).StackSize }, false);
            let location = io::location(
                0x10,
                0,
                std::ptr::null_mut(),
                IO_STACK_LOCATION_0::default(),
            );
            // SAFETY: a fresh IRP.
            unsafe { io::set_next_stack(irp, location) };
            // SAFETY: a complete shutdown IRP for the control device.
            let (status, _) = unsafe { io::send_and_free(fs, irp) };
            if status < 0 && result >= 0 {
                result = status;
            }
        }
        result
    }

    /// Pool blocks still allocated with `tag` (e.g. notify system buffers, `FsNb`).
    #[must_use]
    pub fn pool_blocks_tagged(&self, tag: &[u8; 4]) -> usize {
        let tag = u32::from_le_bytes(*tag);
        kernel::with(|k| k.pool.values().filter(|b| b.tag == tag).count())
    }
}
