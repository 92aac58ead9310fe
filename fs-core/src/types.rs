//! The types of fs-core's public API.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::name::Name;
use crate::time::{Clock, NtTime};

/// A file's stable identity: record number in the low 48 bits, the record's reuse sequence in
/// the high 16 (like an NTFS file reference), so an id of a deleted file never names another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u64);

impl FileId {
    pub(crate) fn new(record: u32, sequence: u16) -> FileId {
        FileId(u64::from(sequence) << 48 | u64::from(record))
    }
    pub fn record(self) -> u32 {
        (self.0 & 0xFFFF_FFFF_FFFF) as u32
    }
    pub fn sequence(self) -> u16 {
        (self.0 >> 48) as u16
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
}

bitflags::bitflags! {
    /// The FILE_ATTRIBUTE_* bits a cowfat file keeps.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct FileAttributes: u32 {
        const READONLY = 0x1;
        const HIDDEN = 0x2;
        const SYSTEM = 0x4;
        const DIRECTORY = 0x10;
        const ARCHIVE = 0x20;
        const NORMAL = 0x80;
        const TEMPORARY = 0x100;
        const NOT_CONTENT_INDEXED = 0x2000;
    }
}

impl FileAttributes {
    /// The bits a caller may set; DIRECTORY follows the file's kind and NORMAL means "none".
    pub const SETTABLE: FileAttributes = FileAttributes::READONLY
        .union(FileAttributes::HIDDEN)
        .union(FileAttributes::SYSTEM)
        .union(FileAttributes::ARCHIVE)
        .union(FileAttributes::TEMPORARY)
        .union(FileAttributes::NOT_CONTENT_INDEXED);
}

/// The four NT timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileTimes {
    pub creation: NtTime,
    pub last_access: NtTime,
    pub last_write: NtTime,
    pub change: NtTime,
}

/// Timestamps to change; `None` keeps the current one.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetTimes {
    pub creation: Option<NtTime>,
    pub last_access: Option<NtTime>,
    pub last_write: Option<NtTime>,
    pub change: Option<NtTime>,
}

/// What a file record says. FileSize, AllocationSize and ValidDataLength are kept apart as
/// NT needs them: reads past ValidDataLength (and below FileSize) return zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub id: FileId,
    pub kind: FileKind,
    pub attributes: FileAttributes,
    pub file_size: u64,
    pub allocation_size: u64,
    pub valid_data_length: u64,
    pub times: FileTimes,
    /// The directory holding the file's entry (the root's parent is the root).
    pub parent: FileId,
}

/// One directory entry as enumeration returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Name,
    pub info: FileInfo,
}

/// Where an enumeration resumes: after the entry with this up-cased key. Entries come in
/// up-case order, so a resume survives creates and deletes in between.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirCursor(pub(crate) Vec<u16>);

impl DirCursor {
    /// The start of the directory.
    pub fn start() -> DirCursor {
        DirCursor(Vec::new())
    }
    /// Resume after `name`.
    pub fn after(volume_key: Vec<u16>) -> DirCursor {
        DirCursor(volume_key)
    }
    pub fn key(&self) -> &[u16] {
        &self.0
    }
    /// A copy, failing with `OutOfMemory` instead of aborting (NT-26).
    pub fn clone_fallible(&self) -> crate::Result<DirCursor> {
        crate::mem::copied(&self.0).map(DirCursor)
    }
}

/// The overlay's volume-wide figures of [`VolumeInfo`] without the label: cheap (no
/// allocation), for a driver to keep a debugger's copy current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlaySummary {
    pub sealed: bool,
    pub total_clusters: u64,
    pub free_clusters: u64,
    /// Live clusters that the base does not use.
    pub overlay_clusters: u64,
    /// Base clusters that the live tree no longer uses.
    pub base_only_clusters: u64,
    pub reserved_clusters: u64,
}

/// A run of a file's clusters that are all in the base or all in the overlay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverlayRun {
    pub vcn: u64,
    pub lcn: u32,
    pub len: u32,
    /// The clusters are the base's (shared with it); else the overlay's.
    pub base: bool,
}

/// Volume-wide figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub label: String,
    pub serial: u64,
    pub cluster_size: u32,
    pub sector_size: u32,
    pub total_clusters: u64,
    /// Clusters free in both the live and the base table (and not waiting for a commit).
    pub free_clusters: u64,
    /// Free clusters not promised to reservations.
    pub available_clusters: u64,
    pub sealed: bool,
    /// Live clusters that the base does not use: the overlay's size.
    pub overlay_clusters: u64,
    /// Base clusters that the live tree no longer uses (kept for the base).
    pub base_only_clusters: u64,
    /// Clusters reserved ahead of paging writes (NT-15).
    pub reserved_clusters: u64,
    pub format_time: NtTime,
    pub seal_time: NtTime,
}

/// One file's place in the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOverlayStatus {
    /// The file exists in the base (under the same id).
    pub in_base: bool,
    /// Clusters of the live file still shared with the base.
    pub base_clusters: u64,
    /// Clusters of the live file that belong to the overlay.
    pub overlay_clusters: u64,
    /// Overlay clusters reserved for this file (NT-15).
    pub reserved_clusters: u64,
    /// Content or record differs from the base.
    pub modified: bool,
}

/// How to format a volume.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    /// 512 B to 64 KiB, a power of two.
    pub cluster_size: u32,
    pub label: String,
    pub serial: u64,
    /// Journal size in bytes; `None` picks one from the volume size.
    pub journal_size: Option<u64>,
    pub time: NtTime,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            cluster_size: 4096,
            label: String::new(),
            serial: 0,
            journal_size: None,
            time: NtTime(0),
        }
    }
}

/// How to mount a volume.
pub struct MountOptions {
    pub read_only: bool,
    pub clock: Box<dyn Clock>,
}

impl core::fmt::Debug for MountOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MountOptions")
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl MountOptions {
    pub fn new(clock: Box<dyn Clock>) -> Self {
        MountOptions {
            read_only: false,
            clock,
        }
    }
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

#[cfg(feature = "std")]
impl Default for MountOptions {
    fn default() -> Self {
        MountOptions::new(Box::new(crate::time::SystemClock))
    }
}

/// Contiguous clusters of a file: stream clusters `vcn..vcn+clusters` live in volume clusters
/// `lcn..lcn+clusters` (what FSCTL_GET_RETRIEVAL_POINTERS reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub vcn: u64,
    pub lcn: u32,
    pub clusters: u32,
}
