//! IRP dispatch, one module per major function (fastfat's map).
//!
//! Two layers, as in fastfat: the `fsd_<major>` entry point registered in the MajorFunction
//! table runs [`fsd_entry`], which sets up the thread (APCs off, top-level IRP) and decodes
//! the IRP into an [`IrpContext`]; the `common_<major>` routine does the work and says how the
//! IRP ends ([`Outcome`]), and is what a posted request will call again from a worker.
//! Majors that later work fills answer `STATUS_INVALID_DEVICE_REQUEST` until then.

pub mod cleanup;
pub mod close;
pub mod create;
pub mod devctrl;
pub mod dirctrl;
pub mod ea;
pub mod fileinfo;
pub mod flush;
pub mod fsctrl;
pub mod lockctrl;
pub mod pnp;
pub mod read;
pub mod rwsup;
pub mod shutdown;
pub mod volctrl;
pub mod volinfo;
pub mod write;

use core::ptr;

use crate::global::CFAT_DATA;
use crate::nt::{
    self, DEVICE_OBJECT, FILE_OBJECT, IO_DISK_INCREMENT, IO_NO_INCREMENT, IRP, NTSTATUS,
    STATUS_PENDING,
};
use crate::strucsup::{ntc, tags, NodeHeader, NodeTypeCode, PoolNode};
use crate::wdk_inline::{
    fsrtl_enter_file_system, fsrtl_exit_file_system, io_complete_request,
    io_get_current_irp_stack_location,
};

/// How a `common_*` routine ends a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Complete the IRP now with this status and `IoStatus.Information`.
    Complete {
        /// Final status.
        status: NTSTATUS,
        /// `IoStatus.Information` (bytes transferred, `FILE_OPENED`, ...).
        information: usize,
    },
    /// The routine marked the IRP pending and handed it on; the FSD returns `STATUS_PENDING`.
    Pending,
    /// A kernel package the routine handed the IRP to (FsRtl's file lock package) completed
    /// it with this status, or the routine passed it whole to the disk below (device
    /// controls, PnP, NT-29), whose `IoCallDriver` status this is; the FSD returns the status
    /// and must not complete it again.
    CompletedBy(NTSTATUS),
}

impl Outcome {
    /// Completion with a status and no information.
    #[must_use]
    pub const fn status(status: NTSTATUS) -> Self {
        Self::Complete {
            status,
            information: 0,
        }
    }

    /// The answer of a major function whose work has not landed yet.
    #[must_use]
    pub const fn not_yet() -> Self {
        Self::status(nt::STATUS_INVALID_DEVICE_REQUEST)
    }
}

/// The decoded request (fastfat's `IRP_CONTEXT`). Built on the stack by [`fsd_entry`]; a
/// request that must be posted to a worker moves into the pool under `CfIc`.
#[repr(C)]
pub struct IrpContext {
    /// `CFAT_NTC_IRP_CONTEXT`.
    pub node: NodeHeader,
    /// The IRP (owned by us until completed).
    pub irp: *mut IRP,
    /// The device object the IRP was sent to.
    pub device: *const DEVICE_OBJECT,
    /// Major function code.
    pub major: u8,
    /// Minor function code.
    pub minor: u8,
    /// The file object of the current stack location (may be NULL, e.g. mount requests).
    pub file_object: *mut FILE_OBJECT,
    /// Sent to the file system control device rather than a volume.
    pub on_control_device: bool,
    /// This thread's top-level request (we set `IoSetTopLevelIrp` for it).
    pub top_level: bool,
}

impl PoolNode for IrpContext {
    const NODE_TYPE_CODE: NodeTypeCode = ntc::CFAT_NTC_IRP_CONTEXT;
    const POOL_TAG: u32 = tags::TAG_IRP_CONTEXT;
    const NON_PAGED: bool = true;
}

impl IrpContext {
    /// Decodes the current stack location of `irp`.
    ///
    /// # Safety
    /// `irp` is a valid IRP owned by this driver with a current stack location.
    unsafe fn new(device: *const DEVICE_OBJECT, irp: *mut IRP, top_level: bool) -> Self {
        // SAFETY: the caller's contract.
        let stack = unsafe { io_get_current_irp_stack_location(irp) };
        // SAFETY: the current stack location of a valid IRP is valid.
        let stack = unsafe { &*stack };
        Self {
            node: NodeHeader::of::<Self>(ntc::CFAT_NTC_IRP_CONTEXT),
            irp,
            device,
            major: stack.MajorFunction,
            minor: stack.MinorFunction,
            file_object: stack.FileObject,
            on_control_device: CFAT_DATA.is_control_device(device),
            top_level,
        }
    }
}

impl IrpContext {
    /// The VCB of the volume the request was sent to (None on the control device).
    #[must_use]
    pub fn vcb(&self) -> Option<&crate::vcb::Vcb> {
        if self.on_control_device || self.device.is_null() {
            return None;
        }
        // SAFETY: the I/O manager sends requests only to live devices of ours.
        unsafe { crate::vcb::Vcb::of_device(self.device) }
    }

    /// Is the request's file object a volume open of `vcb` (`FsContext` is the VCB)?
    #[must_use]
    pub fn is_volume_open(&self, vcb: &crate::vcb::Vcb) -> bool {
        if self.file_object.is_null() {
            return false;
        }
        // SAFETY: a valid file object of this request.
        let context = unsafe { (*self.file_object).FsContext };
        ptr::eq(context.cast_const(), ptr::from_ref(vcb).cast())
    }

    /// The FCB of the request's file object, if it is a file or directory open.
    #[must_use]
    pub fn fcb(&self) -> Option<&crate::fcb::Fcb> {
        // SAFETY: file objects sent to our volumes have our FsContext (or NULL).
        let fcb = unsafe { crate::fcb::fcb_of_file_object(self.file_object) }?;
        // SAFETY: an FCB lives until the close of its last file object, after this request.
        Some(unsafe { &*fcb })
    }

    /// The CCB (`FsContext2`) of the request's file object, NULL if none.
    #[must_use]
    pub fn ccb(&self) -> *mut crate::fcb::Ccb {
        if self.file_object.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a valid file object of this request.
        unsafe { (*self.file_object).FsContext2 }.cast()
    }

    /// `Irp->Flags`.
    #[must_use]
    pub fn irp_flags(&self) -> u32 {
        if self.irp.is_null() {
            return 0;
        }
        // SAFETY: the IRP is ours while dispatching.
        unsafe { (*self.irp).Flags }
    }
}

/// fastfat's `FatIsIrpTopLevel`: if the thread has no top-level request yet, this IRP is it.
fn claim_top_level(irp: *mut IRP) -> bool {
    // SAFETY: no preconditions.
    if !unsafe { nt::IoGetTopLevelIrp() }.is_null() {
        return false;
    }
    // SAFETY: recording our own IRP for the duration of this dispatch.
    unsafe { nt::IoSetTopLevelIrp(irp) };
    true
}

/// The common FSD prologue and epilogue around a `common_*` routine.
///
/// # Safety
/// The I/O manager's dispatch contract: `irp` is a valid IRP sent to `device`, IRQL is
/// PASSIVE_LEVEL (APC_LEVEL for paging I/O).
pub(crate) unsafe fn fsd_entry(
    device: *const DEVICE_OBJECT,
    irp: *mut IRP,
    common: fn(&IrpContext) -> Outcome,
) -> NTSTATUS {
    fsrtl_enter_file_system();
    let top_level = claim_top_level(irp);
    // SAFETY: the dispatch contract.
    let context = unsafe { IrpContext::new(device, irp, top_level) };
    // Read now: after completion the file object (at close) may be gone.
    let fs_context = if context.file_object.is_null() {
        ptr::null_mut()
    } else {
        // SAFETY: the request's valid file object.
        unsafe { (*context.file_object).FsContext }
    };
    let status = match common(&context) {
        Outcome::Complete {
            status,
            information,
        } => {
            let boost = if status >= 0 {
                IO_DISK_INCREMENT
            } else {
                IO_NO_INCREMENT
            };
            // SAFETY: the IRP is still ours; it is not touched after this.
            unsafe { io_complete_request(irp, status, information, boost) };
            status
        }
        Outcome::Pending => STATUS_PENDING,
        Outcome::CompletedBy(status) => status,
    };
    let fs_context = if u32::from(context.major) == nt::IRP_MJ_CREATE
        && status >= 0
        && status != STATUS_PENDING
        && !context.file_object.is_null()
    {
        // A create that succeeded set FsContext; its file object stays the I/O manager's,
        // valid until this dispatch returns.
        // SAFETY: as above.
        unsafe { (*context.file_object).FsContext }
    } else {
        fs_context
    };
    CFAT_DATA.trace.record(
        crate::debugger::trace_kind::IRP,
        context.major,
        context.minor,
        fs_context,
        status,
    );
    if top_level {
        // SAFETY: clearing the value we set in `claim_top_level`.
        unsafe { nt::IoSetTopLevelIrp(ptr::null()) };
    }
    fsrtl_exit_file_system();
    status
}

/// Declares `fsd_<major>`: the `extern "system"` entry for the MajorFunction table that
/// runs [`fsd_entry`] around `common_<major>`.
macro_rules! fsd_entry_point {
    ($(#[$doc:meta])* $fsd:ident => $common:path) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by the I/O manager with a valid device object and IRP.
        pub unsafe extern "system" fn $fsd(
            device: *const $crate::nt::DEVICE_OBJECT,
            irp: *mut $crate::nt::IRP,
        ) -> $crate::nt::NTSTATUS {
            // SAFETY: the I/O manager's dispatch contract is passed on unchanged.
            unsafe { $crate::dispatch::fsd_entry(device, irp, $common) }
        }
    };
}
pub(crate) use fsd_entry_point;

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// An IrpContext without a real IRP, for the decision logic of `common_*` routines that
    /// do not touch it.
    pub fn context(major: u32, minor: u32, on_control_device: bool) -> IrpContext {
        IrpContext {
            node: NodeHeader::of::<IrpContext>(ntc::CFAT_NTC_IRP_CONTEXT),
            irp: ptr::null_mut(),
            device: ptr::null(),
            major: u8::try_from(major).unwrap_or(u8::MAX),
            minor: u8::try_from(minor).unwrap_or(u8::MAX),
            file_object: ptr::null_mut(),
            on_control_device,
            top_level: true,
        }
    }

    #[test]
    fn first_irp_on_a_thread_is_top_level() {
        let mut first = core::mem::MaybeUninit::<IRP>::uninit();
        let mut second = core::mem::MaybeUninit::<IRP>::uninit();
        assert!(claim_top_level(first.as_mut_ptr()));
        assert!(
            !claim_top_level(second.as_mut_ptr()),
            "nested request is not top level"
        );
        // SAFETY: test stand-in; clears the thread's value.
        unsafe { nt::IoSetTopLevelIrp(ptr::null()) };
    }

    #[test]
    fn fsd_prologue_balances_critical_region() {
        let before = crate::unit_test_kernel::critical_region_depth();
        fsrtl_enter_file_system();
        assert_eq!(crate::unit_test_kernel::critical_region_depth(), before + 1);
        fsrtl_exit_file_system();
        assert_eq!(crate::unit_test_kernel::critical_region_depth(), before);
    }
}
