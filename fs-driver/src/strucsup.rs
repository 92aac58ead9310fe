//! Node type codes, pool tags, and tagged pool allocation of driver structures.
//!
//! Like fastfat, every structure the driver allocates starts with a node type code and its
//! byte size (for FCBs those are the first two fields of the `FSRTL_COMMON_FCB_HEADER`), and
//! every pool allocation carries a four-character tag naming what it holds. The WinDbg
//! scripts use both: `!poolfind CfFc` finds every FCB, and the node type code tells a script
//! what a pointer it was handed really is. Keep codes and tags unique and add new ones here.

use core::marker::PhantomData;
use core::mem::size_of;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::nt::{self, pool_flags, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES};

/// A node type code (`CSHORT NodeTypeCode` in the C structures).
pub type NodeTypeCode = i16;

/// Node type codes; cowfat's range is 0x0C00-0x0CFF (fastfat uses 0x0500-0x05FF).
pub mod ntc {
    use super::NodeTypeCode;

    /// The driver's global data (`CFAT_DATA`).
    pub const CFAT_NTC_DATA_HEADER: NodeTypeCode = 0x0C00;
    /// Volume control block, one per mounted volume.
    pub const CFAT_NTC_VCB: NodeTypeCode = 0x0C01;
    /// File control block of a file stream.
    pub const CFAT_NTC_FCB: NodeTypeCode = 0x0C02;
    /// Directory control block.
    pub const CFAT_NTC_DCB: NodeTypeCode = 0x0C03;
    /// The root directory's DCB.
    pub const CFAT_NTC_ROOT_DCB: NodeTypeCode = 0x0C04;
    /// Non-paged part of an FCB/DCB (resources, fast mutex, section object pointers).
    pub const CFAT_NTC_NONPAGED_FCB: NodeTypeCode = 0x0C05;
    /// Context control block, one per handle (`FileObject->FsContext2`).
    pub const CFAT_NTC_CCB: NodeTypeCode = 0x0C07;
    /// IRP context of a request that is posted or waits.
    pub const CFAT_NTC_IRP_CONTEXT: NodeTypeCode = 0x0C08;
}

/// Builds a pool tag from four readable characters, in the byte order pool tools print them
/// (the C idiom is the reversed multi-character literal `'cFfC'`).
#[must_use]
pub const fn pool_tag(name: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*name)
}

/// Pool tags, all starting with `Cf`.
pub mod tags {
    use super::pool_tag;

    /// Rust heap allocations through the image's global allocator (`alloc::` types).
    pub const TAG_RUST_HEAP: u32 = pool_tag(b"CfRs");
    /// Global data that is allocated rather than static.
    pub const TAG_GLOBAL: u32 = pool_tag(b"CfGd");
    /// Volume control block.
    pub const TAG_VCB: u32 = pool_tag(b"CfVc");
    /// FCB and DCB (paged part).
    pub const TAG_FCB: u32 = pool_tag(b"CfFc");
    /// Non-paged FCB part.
    pub const TAG_NONPAGED_FCB: u32 = pool_tag(b"CfNf");
    /// ERESOURCEs (must be non-paged).
    pub const TAG_ERESOURCE: u32 = pool_tag(b"CfEr");
    /// Context control block.
    pub const TAG_CCB: u32 = pool_tag(b"CfCc");
    /// IRP context.
    pub const TAG_IRP_CONTEXT: u32 = pool_tag(b"CfIc");
    /// File name buffers.
    pub const TAG_NAME: u32 = pool_tag(b"CfNm");
    /// I/O buffers (sector and cluster transfers).
    pub const TAG_IO_BUFFER: u32 = pool_tag(b"CfIo");
    /// The spare VPB a volume swaps in at dismount (NT-29).
    pub const TAG_VPB: u32 = pool_tag(b"CfVp");
}

/// The header every driver structure starts with (fastfat's `NODE_TYPE_CODE` + `NODE_BYTE_SIZE`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeHeader {
    /// What the structure is ([`ntc`]).
    pub node_type_code: NodeTypeCode,
    /// Its size in bytes.
    pub node_byte_size: i16,
}

impl NodeHeader {
    /// The header for a structure of type `T`.
    #[must_use]
    pub const fn of<T>(node_type_code: NodeTypeCode) -> Self {
        Self {
            node_type_code,
            node_byte_size: node_byte_size::<T>(),
        }
    }
}

/// `NodeByteSize` of `T`, saturated: the field is a C `CSHORT`.
#[must_use]
pub const fn node_byte_size<T>() -> i16 {
    let size = size_of::<T>();
    if size > i16::MAX as usize {
        i16::MAX
    } else {
        size as i16
    }
}

/// A counter in a driver structure. Writers hold the lock that orders them (the VCB or FCB
/// resource); readers elsewhere may race benignly, so it is atomic rather than a `Cell`,
/// which would make such a read undefined behaviour on a multiprocessor.
#[derive(Debug, Default)]
pub struct Counter(AtomicU32);

impl Counter {
    /// A counter starting at `value`.
    #[must_use]
    pub const fn new(value: u32) -> Self {
        Self(AtomicU32::new(value))
    }

    /// The value.
    #[must_use]
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    /// Sets the value (callers hold the structure's lock).
    pub fn set(&self, value: u32) {
        self.0.store(value, Ordering::Release);
    }
}

/// A flag in a driver structure, under the same rules as [`Counter`].
#[derive(Debug, Default)]
pub struct Flag(AtomicBool);

impl Flag {
    /// A flag starting at `value`.
    #[must_use]
    pub const fn new(value: bool) -> Self {
        Self(AtomicBool::new(value))
    }

    /// The value.
    #[must_use]
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Sets the value (callers hold the structure's lock).
    pub fn set(&self, value: bool) {
        self.0.store(value, Ordering::Release);
    }

    /// Sets the value and returns the previous one, atomically (for flags set without a
    /// lock: "queue the worker unless it is already queued").
    pub fn swap(&self, value: bool) -> bool {
        self.0.swap(value, Ordering::AcqRel)
    }
}

/// A driver structure that lives in the pool under its own tag and node type code.
pub trait PoolNode {
    /// Node type code stored in the structure's header.
    const NODE_TYPE_CODE: NodeTypeCode;
    /// Pool tag of its allocations.
    const POOL_TAG: u32;
    /// Non-paged (true) or paged pool.
    const NON_PAGED: bool;
}

/// An owned, tagged pool allocation holding one `T` (a `Box` with a pool tag and a fallible
/// constructor: allocation failure is `STATUS_INSUFFICIENT_RESOURCES`, never a panic).
pub struct PoolBox<T: PoolNode> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

impl<T: PoolNode> PoolBox<T> {
    /// Allocates pool with `T`'s tag and moves `value` into it.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` when the pool is exhausted.
    pub fn try_new(value: T) -> Result<Self, NTSTATUS> {
        let flags = if T::NON_PAGED {
            pool_flags::POOL_FLAG_NON_PAGED
        } else {
            pool_flags::POOL_FLAG_PAGED
        } | pool_flags::POOL_FLAG_UNINITIALIZED;
        // Pool blocks are 16-byte aligned on x64; larger alignments are not supported here.
        const { assert!(core::mem::align_of::<T>() <= 16) };
        // SAFETY: ExAllocatePool2 has no preconditions at IRQL <= DISPATCH_LEVEL (paged pool:
        // <= APC_LEVEL, which holds for every FSD path that allocates structures).
        let raw = unsafe { nt::ExAllocatePool2(flags, size_of::<T>(), T::POOL_TAG) };
        let ptr = NonNull::new(raw.cast::<T>()).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        // SAFETY: fresh allocation of the right size and alignment, not yet initialised.
        unsafe { ptr.as_ptr().write(value) };
        Ok(Self {
            ptr,
            _owns: PhantomData,
        })
    }

    /// The raw pointer, for kernel structures that hold it (`FsContext`, cache map context).
    #[must_use]
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Gives up ownership: the allocation lives on until [`PoolBox::from_raw`] takes it back
    /// (FCBs and CCBs hang off file objects between create and close).
    #[must_use]
    pub fn into_raw(self) -> *mut T {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        ptr
    }

    /// Takes back an allocation made by [`PoolBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` came from `into_raw` of a `PoolBox<T>` and is taken back only once.
    #[must_use]
    pub unsafe fn from_raw(ptr: *mut T) -> Option<Self> {
        Some(Self {
            ptr: NonNull::new(ptr)?,
            _owns: PhantomData,
        })
    }
}

impl<T: PoolNode> core::ops::Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the pointer is valid and initialised for the box's lifetime.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: PoolNode> core::ops::DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the box owns the value exclusively.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: PoolNode> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value is initialised and dropped exactly once here.
        unsafe { self.ptr.as_ptr().drop_in_place() };
        // SAFETY: allocated by ExAllocatePool2 with this tag in `try_new`, freed once.
        unsafe { nt::ExFreePoolWithTag(self.ptr.as_ptr().cast(), T::POOL_TAG) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_tags_read_as_written() {
        assert_eq!(tags::TAG_FCB.to_le_bytes(), *b"CfFc");
        let all = [
            tags::TAG_RUST_HEAP,
            tags::TAG_GLOBAL,
            tags::TAG_VCB,
            tags::TAG_FCB,
            tags::TAG_NONPAGED_FCB,
            tags::TAG_ERESOURCE,
            tags::TAG_CCB,
            tags::TAG_IRP_CONTEXT,
            tags::TAG_NAME,
            tags::TAG_IO_BUFFER,
            tags::TAG_VPB,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(a.to_le_bytes().iter().all(u8::is_ascii_alphanumeric));
            assert!(all[i + 1..].iter().all(|b| b != a), "duplicate tag");
        }
    }

    struct Probe {
        node: NodeHeader,
        value: u64,
    }

    impl PoolNode for Probe {
        const NODE_TYPE_CODE: NodeTypeCode = ntc::CFAT_NTC_CCB;
        const POOL_TAG: u32 = tags::TAG_CCB;
        const NON_PAGED: bool = false;
    }

    #[test]
    fn pool_box_allocates_and_frees_with_its_tag() {
        let node = NodeHeader::of::<Probe>(Probe::NODE_TYPE_CODE);
        let boxed = PoolBox::try_new(Probe { node, value: 7 });
        let Ok(mut boxed) = boxed else {
            panic!("allocation failed");
        };
        boxed.value += 1;
        assert_eq!(boxed.value, 8);
        assert_eq!(boxed.node.node_type_code, ntc::CFAT_NTC_CCB);
        drop(boxed); // the stand-in ExFreePoolWithTag asserts the tag
    }

    #[test]
    fn node_header_records_size() {
        let h = NodeHeader::of::<[u8; 40]>(ntc::CFAT_NTC_CCB);
        assert_eq!(h.node_byte_size, 40);
        assert_eq!(node_byte_size::<[u8; 70000]>(), i16::MAX);
    }
}
