//! What read and write share: decoding the request (offset, length, paging/non-cached flags)
//! and finding its buffer (fastfat's `FatMapUserBuffer`).
//!
//! The buffer is the MDL's system address when the IRP has one (paging I/O always does). A
//! non-cached request without one gets the caller's buffer locked with an MDL here, before
//! any file system lock (NT-25, fastfat's `FatLockUserBuffer`): fs-core then works on the
//! locked pages' system address, so a fault can never re-enter it. A cached request passes
//! `Irp->UserBuffer` (valid in the requester's context: we never post) to Cc, which copies
//! inside our SEH frame (NT-24).
//!
//! File position (NT-28): for a file object opened for synchronous I/O (`FO_SYNCHRONOUS_IO`)
//! the I/O manager puts `FileObject->CurrentByteOffset` into a read or write that came without
//! a byte offset, and the file system moves it past what was transferred
//! ([`advance_file_position`], fastfat's `read.c`/`write.c` do the same). An IRP that still
//! carries `FILE_USE_FILE_POINTER_POSITION` (built by a kernel caller) gets the pointer here.

use core::ptr;

use super::IrpContext;
use crate::blockdev::{RequestBuffer, TargetDevice};
use crate::nt::{self, FILE_OBJECT, IRP, MDL, NTSTATUS};
use crate::userbuf::LockedBuffer;
use crate::wdk_inline::io_get_current_irp_stack_location;

/// A decoded read or write.
pub struct IoRequest {
    /// `ByteOffset` as sent (may be `FILE_WRITE_TO_END_OF_FILE`).
    pub offset: i64,
    /// Bytes requested.
    pub length: u32,
    /// `IRP_PAGING_IO`.
    pub paging: bool,
    /// `IRP_NOCACHE`.
    pub nocache: bool,
    /// The file object keeps a file position (`FO_SYNCHRONOUS_IO`, NT-28).
    pub synchronous: bool,
    buffer: *mut u8,
    /// The MDL describing `buffer` (the IRP's, or ours from locking it), NULL if none.
    mdl: *mut MDL,
    /// The caller's buffer, locked for a non-cached request (released with the request).
    _locked: Option<LockedBuffer>,
}

impl IoRequest {
    /// Decodes the current stack location (read and write share the layout).
    ///
    /// # Safety
    /// `context.irp` is a valid read or write IRP owned by us.
    pub unsafe fn decode(context: &IrpContext) -> Result<Self, NTSTATUS> {
        // SAFETY: the caller's contract.
        let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
        // SAFETY: the current location of a valid IRP.
        let stack = unsafe { &*stack };
        // SAFETY: Read and Write have the same layout; the member matches the major.
        let params = unsafe { stack.Parameters.Read };
        let flags = context.irp_flags();
        let paging = flags & nt::IRP_PAGING_IO != 0;
        let nocache = flags & nt::IRP_NOCACHE != 0;
        // SAFETY: the request's file object, valid for the request.
        let file_object = unsafe { &*context.file_object };
        let (fo_flags, position) = (file_object.Flags, file_object.CurrentByteOffset);
        let synchronous = fo_flags & nt::FO_SYNCHRONOUS_IO != 0;
        let offset = if params.ByteOffset == nt::FILE_USE_FILE_POINTER_POSITION && synchronous {
            position
        } else {
            params.ByteOffset
        };
        // SAFETY: the caller's contract.
        let has_mdl = !unsafe { (*context.irp).MdlAddress }.is_null();
        let mut locked = None;
        let mut mdl = ptr::null_mut();
        let buffer = if params.Length == 0 {
            ptr::null_mut()
        } else if nocache && !paging && !has_mdl {
            // SAFETY: the caller's contract; no file system lock is held yet.
            let buffer = unsafe { (*context.irp).UserBuffer }.cast::<u8>();
            let for_write = u32::from(stack.MajorFunction) == nt::IRP_MJ_READ;
            // SAFETY: the request's own buffer, locked before any file system lock.
            let lock =
                unsafe { LockedBuffer::lock(context.irp, buffer, params.Length, for_write) }?;
            let address = lock.address();
            mdl = lock.mdl();
            locked = Some(lock);
            address
        } else {
            // SAFETY: the caller's contract.
            mdl = unsafe { (*context.irp).MdlAddress };
            // SAFETY: the caller's contract.
            unsafe { request_buffer(context.irp) }?
        };
        Ok(Self {
            offset,
            length: params.Length,
            paging,
            nocache,
            synchronous,
            buffer,
            mdl,
            _locked: locked,
        })
    }

    /// The buffer as the MDL that describes it, for the disk transfers fs-core makes into or
    /// out of it (NT-27: they go down as partial MDLs of this one).
    #[must_use]
    pub fn window(&self) -> Option<RequestBuffer> {
        (!self.mdl.is_null() && !self.buffer.is_null()).then_some(RequestBuffer {
            mdl: self.mdl,
            system: self.buffer,
            len: self.length as usize,
        })
    }

    /// The buffer's address (for Cc).
    #[must_use]
    pub fn buffer(&self) -> *mut u8 {
        self.buffer
    }

    /// The buffer as a mutable slice (reads).
    #[must_use]
    pub fn slice_mut(&mut self) -> &mut [u8] {
        if self.buffer.is_null() {
            return &mut [];
        }
        // SAFETY: the request's buffer holds `length` bytes for the request's duration and
        // nothing else in the driver aliases it.
        unsafe { core::slice::from_raw_parts_mut(self.buffer, self.length as usize) }
    }

    /// The buffer as a slice (writes).
    #[must_use]
    pub fn slice(&self) -> &[u8] {
        if self.buffer.is_null() {
            return &[];
        }
        // SAFETY: as in `slice_mut`.
        unsafe { core::slice::from_raw_parts(self.buffer, self.length as usize) }
    }

    /// The starting byte offset for a request that may append (`FILE_WRITE_TO_END_OF_FILE`).
    ///
    /// # Errors
    /// `STATUS_INVALID_PARAMETER` for other negative offsets (the file pointer form is
    /// resolved in [`IoRequest::decode`] for a synchronous file object and invalid otherwise).
    pub fn start(&self, file_size: u64) -> Result<u64, NTSTATUS> {
        if self.offset == nt::FILE_WRITE_TO_END_OF_FILE {
            return Ok(file_size);
        }
        u64::try_from(self.offset).map_err(|_| nt::STATUS_INVALID_PARAMETER)
    }

    /// NT-28: after a user read or write of a synchronous file object that transferred
    /// `transferred` bytes from `start`, the file position follows it.
    pub(crate) fn advance_position(
        &self,
        file_object: *mut FILE_OBJECT,
        start: u64,
        transferred: usize,
    ) {
        if self.synchronous && !self.paging {
            // SAFETY: the request's file object (decoded from it: synchronous), no paging I/O.
            unsafe { advance_file_position(file_object, start, transferred) };
        }
    }
}

/// Sets `FileObject->CurrentByteOffset` to `start + transferred` (NT-28).
///
/// # Safety
/// `file_object` is the live, synchronous file object of a user (not paging) transfer.
pub unsafe fn advance_file_position(file_object: *mut FILE_OBJECT, start: u64, transferred: usize) {
    let end = start.saturating_add(transferred as u64);
    // SAFETY: the request's file object; the I/O manager serialises requests on a synchronous
    // file object, so nothing else writes its position meanwhile.
    unsafe { (*file_object).CurrentByteOffset = i64::try_from(end).unwrap_or(i64::MAX) };
}

/// Runs one fs-core operation whose disk transfers may touch the request's buffer `window`
/// (and, for a paging write, may fall back to the volume's reserve).
pub fn on_request_buffer<R>(
    v: &mut fs_core::Volume<TargetDevice>,
    window: Option<RequestBuffer>,
    paging_write: bool,
    f: impl FnOnce(&mut fs_core::Volume<TargetDevice>) -> fs_core::Result<R>,
) -> fs_core::Result<R> {
    v.device_mut().set_request(window, paging_write);
    let result = f(v);
    v.device_mut().set_request(None, false);
    result
}

/// The system address of the request's buffer.
///
/// # Safety
/// `irp` is a valid IRP owned by us.
unsafe fn request_buffer(irp: *mut IRP) -> Result<*mut u8, NTSTATUS> {
    // SAFETY: the caller's contract.
    let mdl = unsafe { (*irp).MdlAddress };
    let address = if mdl.is_null() {
        // SAFETY: as above.
        unsafe { (*irp).UserBuffer }
    } else {
        // SAFETY: the IRP's MDL describes locked pages.
        unsafe { mdl_system_address(mdl) }
    };
    if address.is_null() {
        return Err(nt::STATUS_INSUFFICIENT_RESOURCES);
    }
    Ok(address.cast())
}

/// `MmGetSystemAddressForMdlSafe` (a wdm.h macro): the mapped address if there is one, else
/// map the locked pages, non-executable (NT-25).
///
/// # Safety
/// `mdl` describes locked pages.
pub(crate) unsafe fn mdl_system_address(mdl: *mut MDL) -> *mut core::ffi::c_void {
    // SAFETY: the caller's contract.
    let flags = unsafe { (*mdl).MdlFlags };
    if flags & (nt::MDL_MAPPED_TO_SYSTEM_VA | nt::MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
        // SAFETY: as above; the flags say the field is valid.
        return unsafe { (*mdl).MappedSystemVa };
    }
    // The priority constant is a small positive enum value.
    let priority = nt::NormalPagePriority as u32 | nt::MdlMappingNoExecute;
    // SAFETY: locked pages, kernel mode, no fixed address, no bug check on failure.
    unsafe {
        nt::MmMapLockedPagesSpecifyCache(
            mdl,
            nt::KernelMode as i8,
            nt::MmCached,
            ptr::null(),
            0,
            priority,
        )
    }
}

/// Non-cached user I/O must be sector aligned in offset and length (`FILE_NO_INTERMEDIATE_
/// BUFFERING` rules).
#[must_use]
pub fn is_sector_aligned(offset: u64, length: u32, sector: u32) -> bool {
    let sector = u64::from(sector.max(1));
    offset.is_multiple_of(sector) && u64::from(length).is_multiple_of(sector)
}

/// What a fast I/O read or write needs to know of its file object before it decides to run.
pub struct FastIoTarget<'a> {
    pub fcb: &'a crate::fcb::Fcb,
    pub vcb: &'a crate::vcb::Vcb,
    /// `FileObject->Flags` (`FO_SYNCHRONOUS_IO` decides the file position, NT-28).
    pub flags: u32,
    /// Caching is set up on the file object (fast I/O is only for cached streams).
    pub cached: bool,
    /// The requester's process (byte-range locks are per process).
    pub process: *const core::ffi::c_void,
}

/// The FCB, VCB and file object facts of a fast I/O request; `None` for a file object that is
/// not one of our files.
///
/// # Safety
/// `file_object` is a live file object of our volume, and outlives the answer.
pub unsafe fn fast_io_target<'a>(file_object: *mut FILE_OBJECT) -> Option<FastIoTarget<'a>> {
    // SAFETY: the caller's contract.
    let fcb = unsafe { crate::fcb::fcb_of_file_object(file_object) }?;
    // SAFETY: an FCB lives while its file object does.
    let fcb = unsafe { &*fcb };
    // SAFETY: the caller's contract.
    let fo = unsafe { &*file_object };
    // SAFETY: no preconditions.
    let process = unsafe { nt::IoGetCurrentProcess() } as *const core::ffi::c_void;
    // SAFETY: an FCB's VCB outlives it.
    let vcb = unsafe { &*fcb.vcb };
    Some(FastIoTarget {
        fcb,
        vcb,
        flags: fo.Flags,
        cached: !fo.PrivateCacheMap.is_null(),
        process,
    })
}
