//! The FCB as far as the kernel sees it.
//!
//! NT-01/NT-02: `FileObject->FsContext` points at an FCB whose first member is an
//! `FSRTL_ADVANCED_FCB_HEADER` (its first two fields are the node type code and size), and
//! each FCB embeds the stream's `SECTION_OBJECT_POINTERS` in its non-paged part. This module
//! fixes that prefix, which the Cc and FsRtl callbacks in `resrcsup` rely on; creating,
//! linking and tearing down FCBs comes with the create/close work.

use crate::nt::{
    ERESOURCE, FAST_MUTEX, FILE_OBJECT, FSRTL_ADVANCED_FCB_HEADER, FSRTL_COMMON_FCB_HEADER,
    SECTION_OBJECT_POINTERS, SHARE_ACCESS,
};
use crate::strucsup::{ntc, tags, NodeHeader, NodeTypeCode, PoolNode};

/// The non-paged part of an FCB: what the kernel may touch at raised IRQL or from the paging
/// path (fastfat's `NON_PAGED_FCB`).
#[repr(C)]
pub struct NonPagedFcb {
    /// `CFAT_NTC_NONPAGED_FCB`.
    pub node: NodeHeader,
    /// The stream's section object pointers; `FileObject->SectionObjectPointer` of every file
    /// object of the stream points here (NT-02). Mm and Cc write it, we only read it.
    pub section_object_pointers: SECTION_OBJECT_POINTERS,
    /// The fast mutex the advanced FCB header protects its filter contexts with.
    pub advanced_fcb_header_mutex: FAST_MUTEX,
}

impl PoolNode for NonPagedFcb {
    const NODE_TYPE_CODE: NodeTypeCode = ntc::CFAT_NTC_NONPAGED_FCB;
    const POOL_TAG: u32 = tags::TAG_NONPAGED_FCB;
    const NON_PAGED: bool = true;
}

/// The kernel-visible prefix of an FCB/DCB.
#[repr(C)]
pub struct Fcb {
    /// First member (NT-01). `header.Base.NodeTypeCode` is `CFAT_NTC_FCB`, `_DCB` or
    /// `_ROOT_DCB`; `Resource`/`PagingIoResource` point at the main and paging ERESOURCEs.
    pub header: FSRTL_ADVANCED_FCB_HEADER,
    /// The non-paged part.
    pub nonpaged: *mut NonPagedFcb,
    /// Share access of all handles to the stream (`IoCheckShareAccess` state).
    pub share_access: SHARE_ACCESS,
}

impl PoolNode for Fcb {
    const NODE_TYPE_CODE: NodeTypeCode = ntc::CFAT_NTC_FCB;
    const POOL_TAG: u32 = tags::TAG_FCB;
    // The header is read by Cc at DISPATCH_LEVEL in places (sizes); keep it non-paged.
    const NON_PAGED: bool = true;
}

/// Is this node type one of our FCB kinds (file, directory, root directory)?
#[must_use]
pub fn is_fcb_node(code: NodeTypeCode) -> bool {
    matches!(
        code,
        ntc::CFAT_NTC_FCB | ntc::CFAT_NTC_DCB | ntc::CFAT_NTC_ROOT_DCB
    )
}

/// The common FCB header behind a Cc callback context or `FsContext`, if it is one of ours.
///
/// # Safety
/// `context` is NULL or points at memory that starts with an `FSRTL_COMMON_FCB_HEADER`
/// (every `FsContext` of a file object on our volumes, and every lazy-write context we hand
/// to `CcInitializeCacheMap`).
#[must_use]
pub unsafe fn fcb_header(
    context: *const core::ffi::c_void,
) -> Option<*mut FSRTL_COMMON_FCB_HEADER> {
    let header = context.cast::<FSRTL_COMMON_FCB_HEADER>().cast_mut();
    if header.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a common FCB header at `context`.
    let code = unsafe { (*header).NodeTypeCode };
    is_fcb_node(code).then_some(header)
}

/// The FCB of a file object, if the file object is open on one of our streams.
///
/// # Safety
/// `file_object` is NULL or a valid file object whose `FsContext` is NULL or starts with a
/// common FCB header (true for file objects the I/O manager sends to our volumes).
#[must_use]
pub unsafe fn fcb_of_file_object(file_object: *const FILE_OBJECT) -> Option<*mut Fcb> {
    if file_object.is_null() {
        return None;
    }
    // SAFETY: valid file object per the caller.
    let context = unsafe { (*file_object).FsContext };
    // SAFETY: the caller's contract on FsContext.
    let header = unsafe { fcb_header(context) }?;
    Some(header.cast::<Fcb>())
}

/// Main resource of an FCB header (NULL for structures that have none).
///
/// # Safety
/// `header` is a valid common FCB header.
#[must_use]
pub unsafe fn main_resource(header: *const FSRTL_COMMON_FCB_HEADER) -> *mut ERESOURCE {
    // SAFETY: the caller's contract.
    unsafe { (*header).Resource }
}

/// Paging I/O resource of an FCB header (NULL for structures that have none).
///
/// # Safety
/// `header` is a valid common FCB header.
#[must_use]
pub unsafe fn paging_io_resource(header: *const FSRTL_COMMON_FCB_HEADER) -> *mut ERESOURCE {
    // SAFETY: the caller's contract.
    unsafe { (*header).PagingIoResource }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, zeroed};

    #[test]
    fn header_is_first_and_node_type_is_checked() {
        assert_eq!(offset_of!(Fcb, header), 0);
        // SAFETY: plain old data; all-zero is valid.
        let mut fcb: Fcb = unsafe { zeroed() };
        let ctx = (&raw const fcb).cast::<core::ffi::c_void>();
        // SAFETY: `ctx` starts with a common header.
        let found = unsafe { fcb_header(ctx) };
        assert!(found.is_none(), "node type 0 is not ours");
        fcb.header.Base.NodeTypeCode = ntc::CFAT_NTC_FCB;
        let ctx = (&raw const fcb).cast::<core::ffi::c_void>();
        // SAFETY: as above.
        assert!(unsafe { fcb_header(ctx) }.is_some());
        // SAFETY: NULL is allowed.
        assert!(unsafe { fcb_header(core::ptr::null()) }.is_none());
    }
}
