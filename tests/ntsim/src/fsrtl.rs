//! FsRtl: the filter callback registry and the calls the model makes through it (section
//! synchronisation for `NtCreateSection`, the modified page writer, Cc flushes).
//!
//! Stricter than Windows: a file system that registered no callback for an operation the
//! model needs is a bug check for section synchronisation (ntsim does not model the default
//! `AcquireFileForNtCreateSection` fast I/O path); for the others the default is "nothing to
//! acquire".
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::c_void;
use std::ptr;

use windows_sys::Wdk::Foundation::{DRIVER_OBJECT, ERESOURCE, FILE_OBJECT};
use windows_sys::Wdk::Storage::FileSystem::{
    FS_FILTER_CALLBACKS, FS_FILTER_CALLBACK_DATA, FS_FILTER_PARAMETERS, PFS_FILTER_CALLBACK,
};
use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_SUCCESS};

use crate::ex::bugcheck;
use crate::kernel;
use crate::trace::Event;

/// `FS_FILTER_*` operation codes (ntifs.h: `(UCHAR)-1` ...).
pub mod operation {
    /// Acquire for section synchronisation.
    pub const ACQUIRE_FOR_SECTION_SYNCHRONIZATION: u8 = 0xFF;
    /// Release for section synchronisation.
    pub const RELEASE_FOR_SECTION_SYNCHRONIZATION: u8 = 0xFE;
    /// Acquire for the modified page writer.
    pub const ACQUIRE_FOR_MOD_WRITE: u8 = 0xFD;
    /// Release for the modified page writer.
    pub const RELEASE_FOR_MOD_WRITE: u8 = 0xFC;
    /// Acquire for a Cc flush.
    pub const ACQUIRE_FOR_CC_FLUSH: u8 = 0xFB;
    /// Release for a Cc flush.
    pub const RELEASE_FOR_CC_FLUSH: u8 = 0xFA;
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlRegisterFileSystemFilterCallbacks(
    filterdriverobject: *const DRIVER_OBJECT,
    callbacks: *const FS_FILTER_CALLBACKS,
) -> NTSTATUS {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's callback table (copied, as FsRtl does).
    let table = unsafe { *callbacks };
    kernel::with(|k| {
        k.filter_callbacks
            .insert(filterdriverobject.cast_mut(), table)
    });
    STATUS_SUCCESS
}

/// Which callback of the table.
#[derive(Clone, Copy, Debug)]
pub enum Which {
    /// `PreAcquireForSectionSynchronization`.
    AcquireSection,
    /// `PreReleaseForSectionSynchronization`.
    ReleaseSection,
    /// `PreAcquireForModifiedPageWriter`.
    AcquireModWrite,
    /// `PreReleaseForModifiedPageWriter`.
    ReleaseModWrite,
    /// `PreAcquireForCcFlush`.
    AcquireCcFlush,
    /// `PreReleaseForCcFlush`.
    ReleaseCcFlush,
}

impl Which {
    fn pick(self, t: &FS_FILTER_CALLBACKS) -> (PFS_FILTER_CALLBACK, u8, &'static str) {
        use operation as op;
        match self {
            Which::AcquireSection => (
                t.PreAcquireForSectionSynchronization,
                op::ACQUIRE_FOR_SECTION_SYNCHRONIZATION,
                "PreAcquireForSectionSynchronization",
            ),
            Which::ReleaseSection => (
                t.PreReleaseForSectionSynchronization,
                op::RELEASE_FOR_SECTION_SYNCHRONIZATION,
                "PreReleaseForSectionSynchronization",
            ),
            Which::AcquireModWrite => (
                t.PreAcquireForModifiedPageWriter,
                op::ACQUIRE_FOR_MOD_WRITE,
                "PreAcquireForModifiedPageWriter",
            ),
            Which::ReleaseModWrite => (
                t.PreReleaseForModifiedPageWriter,
                op::RELEASE_FOR_MOD_WRITE,
                "PreReleaseForModifiedPageWriter",
            ),
            Which::AcquireCcFlush => (
                t.PreAcquireForCcFlush,
                op::ACQUIRE_FOR_CC_FLUSH,
                "PreAcquireForCcFlush",
            ),
            Which::ReleaseCcFlush => (
                t.PreReleaseForCcFlush,
                op::RELEASE_FOR_CC_FLUSH,
                "PreReleaseForCcFlush",
            ),
        }
    }
}

/// Calls the file system's filter callback for `fo`, tracing it. `None` when it registered
/// none.
pub(crate) fn call(
    which: Which,
    fo: *mut FILE_OBJECT,
    parameters: FS_FILTER_PARAMETERS,
) -> Option<NTSTATUS> {
    let device = kernel::with(|k| k.file_objects.get(&fo).map(|r| r.device));
    let Some(device) = device else {
        bugcheck("filter callback for a file object that does not exist")
    };
    // SAFETY: a live file system device.
    let driver = unsafe { (*device).DriverObject };
    let table = kernel::with(|k| k.filter_callbacks.get(&driver).copied())?;
    let (callback, op, name) = which.pick(&table);
    let callback = callback?;
    let data = FS_FILTER_CALLBACK_DATA {
        SizeOfFsFilterCallbackData: u32::try_from(std::mem::size_of::<FS_FILTER_CALLBACK_DATA>())
            .unwrap_or(0),
        Operation: op,
        Reserved: 0,
        DeviceObject: device,
        FileObject: fo,
        Parameters: parameters,
    };
    let mut context: *mut c_void = ptr::null_mut();
    // SAFETY: the file system's callback with valid data for this operation.
    let status = unsafe { callback(&data, &mut context) };
    kernel::with(|k| {
        let file = k.fo_id(fo);
        k.trace.push(Event::Callback {
            name,
            file,
            result: status,
        });
    });
    Some(status)
}

/// Acquire for the modified page writer; the resource to release afterwards, or `Err` when
/// the file system said it cannot (the writer retries later).
pub(crate) fn acquire_for_mod_write(
    fo: *mut FILE_OBJECT,
    ending: &mut i64,
) -> Result<*mut ERESOURCE, NTSTATUS> {
    let mut resource: *mut ERESOURCE = ptr::null_mut();
    let mut parameters = FS_FILTER_PARAMETERS::default();
    parameters.AcquireForModifiedPageWriter.EndingOffset = ending;
    parameters.AcquireForModifiedPageWriter.ResourceToRelease = &mut resource;
    match call(Which::AcquireModWrite, fo, parameters) {
        Some(status) if status < 0 => Err(status),
        _ => Ok(resource),
    }
}

/// Release after the modified page writer.
pub(crate) fn release_for_mod_write(fo: *mut FILE_OBJECT, resource: *mut ERESOURCE) {
    let mut parameters = FS_FILTER_PARAMETERS::default();
    parameters.ReleaseForModifiedPageWriter.ResourceToRelease = resource;
    let _ = call(Which::ReleaseModWrite, fo, parameters);
}
