//! `NtReadFile`, `NtWriteFile` and the file position, as the I/O manager does them (NT-28).
//!
//! What the I/O manager does before any IRP (ReactOS `iofunc.c`, the documented contract):
//! - A file object opened with `FILE_SYNCHRONOUS_IO_ALERT`/`_NONALERT` is `FO_SYNCHRONOUS_IO`.
//!   A read or write on it without a byte offset, or with `FILE_USE_FILE_POINTER_POSITION`,
//!   goes down at `FileObject->CurrentByteOffset`; moving the position past what was
//!   transferred is the file system's job, on the IRP path and in its fast I/O routines
//!   (`FsRtlCopyRead`/`FsRtlCopyWrite` do it for fastfat). ntsim never moves it.
//! - Without a byte offset on a file object that is not synchronous: `STATUS_INVALID_PARAMETER`.
//! - A handle granted `FILE_APPEND_DATA` but not `FILE_WRITE_DATA` always appends: its writes
//!   go down as `FILE_WRITE_TO_END_OF_FILE`. An offset below -2 is `STATUS_INVALID_PARAMETER`.
//! - On a synchronous file object whose stream is cached (`PrivateCacheMap`) the fast I/O
//!   routine is tried first with `Wait` TRUE; its answer is taken when it returns TRUE with
//!   success (or end of file, for a read), else an IRP is built.
//! - `FilePositionInformation` on a synchronous file object is the I/O manager's own: set and
//!   query never reach the file system (set refuses a negative position, and an unaligned one
//!   on a `FILE_NO_INTERMEDIATE_BUFFERING` handle: the stricter of ReactOS and Windows).
//!   Without `FO_SYNCHRONOUS_IO` they are IRPs as any other class.
#![allow(unsafe_code)]

use windows_sys::Wdk::Foundation::FILE_OBJECT;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_DENIED, STATUS_END_OF_FILE, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use crate::api::{access, Handle, Sim};
use crate::io;
use crate::kernel;
use crate::trace::Event;

/// `ByteOffset` (as i64) `FILE_WRITE_TO_END_OF_FILE`: append.
pub const FILE_WRITE_TO_END_OF_FILE: i64 = -1;
/// `ByteOffset` (as i64) `FILE_USE_FILE_POINTER_POSITION`: at the file position.
pub const FILE_USE_FILE_POINTER_POSITION: i64 = -2;
/// `FILE_OBJECT.Flags`: `FO_SYNCHRONOUS_IO`, `FO_ALERTABLE_IO`.
pub(crate) const FO_SYNCHRONOUS_IO: u32 = 0x2;
pub(crate) const FO_ALERTABLE_IO: u32 = 0x4;
/// `FILE_OBJECT.Flags`: `FO_NO_INTERMEDIATE_BUFFERING`.
const FO_NO_INTERMEDIATE_BUFFERING: u32 = 0x8;
/// `FilePositionInformation`.
const POSITION_CLASS: i32 = 14;
/// `IRP_MJ_READ`, `IRP_MJ_WRITE`.
const IRP_MJ_READ: u8 = 0x03;
const IRP_MJ_WRITE: u8 = 0x04;

/// Which of the fast I/O routines.
#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

impl Sim {
    /// `NtReadFile(handle, ByteOffset = NULL)`: at the file position of a synchronous handle.
    ///
    /// # Errors
    /// As [`Sim::nt_read`].
    pub fn read_next(&mut self, handle: Handle, len: usize) -> Result<Vec<u8>, NTSTATUS> {
        self.nt_read(handle, None, len)
    }

    /// `NtWriteFile(handle, ByteOffset = NULL)`: at the file position of a synchronous handle
    /// (at end of file for an append-only one).
    ///
    /// # Errors
    /// As [`Sim::nt_write`].
    pub fn write_next(&mut self, handle: Handle, data: &[u8]) -> Result<usize, NTSTATUS> {
        self.nt_write(handle, None, data)
    }

    /// `NtReadFile` with `byte_offset` as the caller passes it: `None` (no offset), an offset,
    /// or [`FILE_USE_FILE_POINTER_POSITION`].
    ///
    /// # Errors
    /// The I/O manager's `STATUS_ACCESS_DENIED` / `STATUS_INVALID_PARAMETER`, else the file
    /// system's status (`STATUS_END_OF_FILE` at or past end of file).
    pub fn nt_read(
        &mut self,
        handle: Handle,
        byte_offset: Option<i64>,
        len: usize,
    ) -> Result<Vec<u8>, NTSTATUS> {
        let fo = self.fo(handle)?;
        if self.granted(fo) & access::FILE_READ_DATA == 0 {
            return Err(STATUS_ACCESS_DENIED);
        }
        let offset = self.captured_offset(fo, byte_offset)?;
        // Not zeroed: the FS must not rely on what the caller's buffer held.
        let mut buffer = vec![0xE5u8; len];
        let length = u32::try_from(len).unwrap_or(u32::MAX);
        if let Some((status, information)) =
            self.try_fast_io(fo, Direction::Read, offset, buffer.as_mut_ptr(), length)
        {
            if status < 0 || status == STATUS_END_OF_FILE {
                return Err(status);
            }
            buffer.truncate(information);
            return Ok(buffer);
        }
        // SAFETY: an opened file object; the buffer holds `len` bytes.
        let (status, information) = unsafe {
            io::send_read_write(
                fo,
                IRP_MJ_READ,
                offset,
                buffer.as_mut_ptr(),
                length,
                Self::io_flags(fo),
                false,
            )
        };
        if status < 0 {
            return Err(status);
        }
        buffer.truncate(information);
        Ok(buffer)
    }

    /// `NtWriteFile` with `byte_offset` as the caller passes it: `None` (no offset), an
    /// offset, [`FILE_WRITE_TO_END_OF_FILE`] or [`FILE_USE_FILE_POINTER_POSITION`]; the bytes
    /// written.
    ///
    /// # Errors
    /// As [`Sim::nt_read`].
    pub fn nt_write(
        &mut self,
        handle: Handle,
        byte_offset: Option<i64>,
        data: &[u8],
    ) -> Result<usize, NTSTATUS> {
        let fo = self.fo(handle)?;
        let granted = self.granted(fo);
        if granted & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA) == 0 {
            return Err(STATUS_ACCESS_DENIED);
        }
        if byte_offset.is_some_and(|o| o < FILE_USE_FILE_POINTER_POSITION) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let mut offset = self.captured_offset(fo, byte_offset)?;
        if granted & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA)
            == access::FILE_APPEND_DATA
        {
            // "Give the drivers something to understand": an append-only handle appends.
            offset = FILE_WRITE_TO_END_OF_FILE;
        }
        let mut copy = data.to_vec();
        let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if let Some((status, information)) =
            self.try_fast_io(fo, Direction::Write, offset, copy.as_mut_ptr(), length)
        {
            return if status < 0 {
                Err(status)
            } else {
                Ok(information)
            };
        }
        // SAFETY: an opened file object; the buffer holds `len` bytes.
        let (status, information) = unsafe {
            io::send_read_write(
                fo,
                IRP_MJ_WRITE,
                offset,
                copy.as_mut_ptr(),
                length,
                Self::io_flags(fo),
                false,
            )
        };
        if status < 0 {
            return Err(status);
        }
        Ok(information)
    }

    /// `SetFilePointerEx(FILE_BEGIN)`: `NtSetInformationFile(FilePositionInformation)`.
    pub fn set_file_pointer(&mut self, handle: Handle, position: i64) -> NTSTATUS {
        self.set_information(handle, POSITION_CLASS, &position.to_le_bytes())
    }

    /// `NtQueryInformationFile(FilePositionInformation)`.
    ///
    /// # Errors
    /// The query's status.
    pub fn file_pointer(&mut self, handle: Handle) -> Result<i64, NTSTATUS> {
        let (status, data) = self.query_information(handle, POSITION_CLASS, 8);
        if status < 0 {
            return Err(status);
        }
        let bytes: [u8; 8] = data
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(STATUS_INVALID_PARAMETER)?;
        Ok(i64::from_le_bytes(bytes))
    }

    /// Whether the I/O manager tries the file system's fast I/O read and write before an IRP
    /// (on by default). Off is what a filter above the file system without those entries
    /// gives: every read and write is an IRP.
    pub fn set_fast_io(&mut self, enabled: bool) {
        self.fast_io_enabled = enabled;
    }

    /// The I/O manager's own `FilePositionInformation` on a synchronous file object: the
    /// status, or None when the request goes to the file system as an IRP.
    pub(crate) fn io_manager_position(
        &mut self,
        handle: Handle,
        set: Option<&[u8]>,
    ) -> Option<(NTSTATUS, Vec<u8>)> {
        let fo = self.fo(handle).ok()?;
        // SAFETY: a live file object of the handle.
        let file_object = unsafe { &*fo };
        let (flags, position) = (file_object.Flags, file_object.CurrentByteOffset);
        if flags & FO_SYNCHRONOUS_IO == 0 {
            return None;
        }
        let Some(input) = set else {
            return Some((STATUS_SUCCESS, position.to_le_bytes().to_vec()));
        };
        let Some(bytes) = input.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
            return Some((
                windows_sys::Win32::Foundation::STATUS_INFO_LENGTH_MISMATCH,
                Vec::new(),
            ));
        };
        let new = i64::from_le_bytes(bytes);
        let sector = i64::from(sector_size(fo).max(1));
        let unaligned = flags & FO_NO_INTERMEDIATE_BUFFERING != 0 && new % sector != 0;
        if new < 0 || unaligned {
            return Some((STATUS_INVALID_PARAMETER, Vec::new()));
        }
        // SAFETY: as above; the I/O manager owns the position of a synchronous file object.
        unsafe { (*fo).CurrentByteOffset = new };
        Some((STATUS_SUCCESS, Vec::new()))
    }

    /// The offset that goes down: the file position of a synchronous file object for no
    /// offset or `FILE_USE_FILE_POINTER_POSITION`; no offset on any other file object is
    /// `STATUS_INVALID_PARAMETER`.
    fn captured_offset(
        &self,
        fo: *mut FILE_OBJECT,
        byte_offset: Option<i64>,
    ) -> Result<i64, NTSTATUS> {
        // SAFETY: a live file object of a handle.
        let file_object = unsafe { &*fo };
        let (flags, position) = (file_object.Flags, file_object.CurrentByteOffset);
        if flags & FO_SYNCHRONOUS_IO == 0 {
            return byte_offset.ok_or(STATUS_INVALID_PARAMETER);
        }
        Ok(match byte_offset {
            None | Some(FILE_USE_FILE_POINTER_POSITION) => position,
            Some(offset) => offset,
        })
    }

    /// The fast I/O attempt of a synchronous, cached file object: Some(status, information)
    /// when the file system took it.
    fn try_fast_io(
        &self,
        fo: *mut FILE_OBJECT,
        direction: Direction,
        offset: i64,
        buffer: *mut u8,
        length: u32,
    ) -> Option<(NTSTATUS, usize)> {
        // SAFETY: a live file object of a handle.
        let file_object = unsafe { &*fo };
        let (flags, cached) = (file_object.Flags, !file_object.PrivateCacheMap.is_null());
        if !self.fast_io_enabled || flags & FO_SYNCHRONOUS_IO == 0 || !cached {
            return None;
        }
        let (fo, device, table) = self.fast_io_table(fo)?;
        let (read, write) = (table.FastIoRead, table.FastIoWrite);
        match direction {
            Direction::Read if read.is_none() => return None,
            Direction::Write if write.is_none() => return None,
            _ => {}
        }
        let mut iosb = IO_STATUS_BLOCK::default();
        let register = crate::seh::classify(buffer.addr(), length as usize).is_none();
        if register {
            let user = crate::seh::UserMemory::Mapped;
            crate::seh::register(buffer.addr(), length as usize, user);
        }
        io::reference(fo);
        let (name, done) = match (direction, read, write) {
            (Direction::Read, Some(routine), _) => {
                // SAFETY: the driver's routine; live file object, offset, buffer and status.
                let done = io::call_fast_io("FastIoRead", || unsafe {
                    routine(
                        fo,
                        &offset,
                        length,
                        true,
                        0,
                        buffer.cast(),
                        &mut iosb,
                        device,
                    )
                });
                ("FastIoRead", done)
            }
            (Direction::Write, _, Some(routine)) => {
                // SAFETY: as above.
                let done = io::call_fast_io("FastIoWrite", || unsafe {
                    routine(
                        fo,
                        &offset,
                        length,
                        true,
                        0,
                        buffer.cast_const().cast(),
                        &mut iosb,
                        device,
                    )
                });
                ("FastIoWrite", done)
            }
            _ => ("FastIo", false),
        };
        io::dereference(fo);
        if register {
            crate::seh::unregister(buffer.addr());
        }
        // SAFETY: the status member (zero-initialised, written by a routine that took it).
        let status = unsafe { iosb.Anonymous.Status };
        let accepted = done
            && match direction {
                Direction::Read => status == STATUS_SUCCESS || status == STATUS_END_OF_FILE,
                Direction::Write => status == STATUS_SUCCESS,
            };
        kernel::with(|k| {
            let file = k.fo_id(fo);
            k.trace.push(Event::Callback {
                name,
                file,
                result: i32::from(accepted),
            });
        });
        accepted.then_some((status, iosb.Information))
    }
}

/// `SectorSize` of the device a file object's requests go to (what the I/O manager checks
/// non-cached positions against).
fn sector_size(fo: *mut FILE_OBJECT) -> u16 {
    let device = kernel::with(|k| k.file_objects.get(&fo).map(|r| r.device));
    match device {
        // SAFETY: the live volume device of a live file object.
        Some(device) if !device.is_null() => unsafe { (*device).SectorSize },
        _ => 0,
    }
}
