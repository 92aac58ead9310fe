//! cowfat's private file system controls: codes and buffer layouts, defined once for the
//! driver (`fs-driver`), the ntsim tests and the `cowfat` tool.
//!
//! Every control is `METHOD_BUFFERED` on device type `FILE_DEVICE_FILE_SYSTEM`, with a
//! function number in the vendor range (>= 0x800). Structures are `#[repr(C)]`, little endian,
//! fixed size; an output buffer shorter than the structure gets `STATUS_BUFFER_TOO_SMALL`.
//!
//! | Control | Code | Access | Sent on | Input | Output |
//! |---|---|---|---|---|---|
//! | [`FSCTL_COWFAT_QUERY_MAPPED_STATE`] | 0x0009_2000 | any | file handle | [`QueryMappedStateInput`] (optional) | [`MappedState`] |
//! | [`FSCTL_COWFAT_QUERY_OVERLAY`] | 0x0009_2004 | any | file handle | — | [`FileOverlayState`] |
//! | [`FSCTL_COWFAT_COMMIT_FILE`] | 0x0009_A008 | write | file handle | — | — |
//! | [`FSCTL_COWFAT_DISCARD_FILE`] | 0x0009_A00C | write | file handle | — | — |
//! | [`FSCTL_COWFAT_SEAL_VOLUME`] | 0x0009_A010 | write | volume handle | — | — |
//! | [`FSCTL_COWFAT_COMMIT_VOLUME`] | 0x0009_A014 | write | volume handle | — | — |
//! | [`FSCTL_COWFAT_DISCARD_VOLUME`] | 0x0009_A018 | write | volume handle | — | — |
//!
//! Statuses (NT-21): a file commit/discard while the file is user-mapped (a purge fails, or
//! `MmDoesFileHaveUserWritableReferences` is non-zero) fails with `STATUS_USER_MAPPED_FILE`
//! and changes nothing; commit/discard of a volume or file that is not sealed
//! `STATUS_INVALID_DEVICE_STATE`; seal of a sealed volume `STATUS_INVALID_DEVICE_STATE`;
//! volume seal/commit while any stream has writable user references
//! `STATUS_USER_MAPPED_FILE`; volume discard on a handle that does not hold
//! `FSCTL_LOCK_VOLUME` (which fails while anything is open or mapped) `STATUS_ACCESS_DENIED`.
#![no_std]
#![forbid(unsafe_code)]

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `FILE_DEVICE_FILE_SYSTEM` (devioctl.h).
pub const FILE_DEVICE_FILE_SYSTEM: u32 = 0x0000_0009;
/// `METHOD_BUFFERED` (devioctl.h).
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_ANY_ACCESS` (devioctl.h).
pub const FILE_ANY_ACCESS: u32 = 0;
/// `FILE_WRITE_ACCESS` (devioctl.h).
pub const FILE_WRITE_ACCESS: u32 = 0x0002;

/// `CTL_CODE(DeviceType, Function, Method, Access)` (devioctl.h).
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

const fn cowfat(function: u32, access: u32) -> u32 {
    ctl_code(FILE_DEVICE_FILE_SYSTEM, function, METHOD_BUFFERED, access)
}

/// The stream's mapped state as the driver can know it (NT-07); file handle.
pub const FSCTL_COWFAT_QUERY_MAPPED_STATE: u32 = cowfat(0x800, FILE_ANY_ACCESS);
/// Where the file stands in the overlay; file handle.
pub const FSCTL_COWFAT_QUERY_OVERLAY: u32 = cowfat(0x801, FILE_ANY_ACCESS);
/// base := live for one file (NT-21); file handle.
pub const FSCTL_COWFAT_COMMIT_FILE: u32 = cowfat(0x802, FILE_WRITE_ACCESS);
/// live := base for one file (NT-21); file handle.
pub const FSCTL_COWFAT_DISCARD_FILE: u32 = cowfat(0x803, FILE_WRITE_ACCESS);
/// Freezes the live volume as the base; volume handle.
pub const FSCTL_COWFAT_SEAL_VOLUME: u32 = cowfat(0x804, FILE_WRITE_ACCESS);
/// base := live for the volume; volume handle.
pub const FSCTL_COWFAT_COMMIT_VOLUME: u32 = cowfat(0x805, FILE_WRITE_ACCESS);
/// live := base for the volume; a volume handle that holds `FSCTL_LOCK_VOLUME` (NT-21).
pub const FSCTL_COWFAT_DISCARD_VOLUME: u32 = cowfat(0x806, FILE_WRITE_ACCESS);

/// [`QueryMappedStateInput::flags`]: flush, then really try `CcPurgeCacheSection` on the
/// whole stream to learn whether user views remain (it drops clean cached pages and may let
/// Mm delete the segment, which closes its file object: NT-04).
pub const QUERY_PROBE_PURGE: u32 = 0x1;

/// Input of [`FSCTL_COWFAT_QUERY_MAPPED_STATE`] (none: no probe).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QueryMappedStateInput {
    /// 0x00: `QUERY_*` flags.
    pub flags: U32,
}
const _: () = assert!(core::mem::size_of::<QueryMappedStateInput>() == 4);

/// [`MappedState::flags`]: `DataSectionObject` is set (a control area exists, Cc's or a
/// user's; NT-07 says no more).
pub const MAPPED_DATA_SECTION: u32 = 0x01;
/// [`MappedState::flags`]: `ImageSectionObject` is set.
pub const MAPPED_IMAGE_SECTION: u32 = 0x02;
/// [`MappedState::flags`]: `CcIsFileCached` (a shared cache map exists).
pub const MAPPED_CACHED: u32 = 0x04;
/// [`MappedState::flags`]: a purge probe ran.
pub const MAPPED_PURGE_PROBED: u32 = 0x08;
/// [`MappedState::flags`]: the probe's purge succeeded: no user view maps the stream.
pub const MAPPED_VIEWS_GONE: u32 = 0x10;

/// [`MappedState::summary`]: no section, no cache.
pub const SUMMARY_NOT_MAPPED: u32 = 0;
/// [`MappedState::summary`]: only the cache manager uses the data section.
pub const SUMMARY_CACHED_ONLY: u32 = 1;
/// [`MappedState::summary`]: user views exist, none writable.
pub const SUMMARY_MAPPED_READ_ONLY: u32 = 2;
/// [`MappedState::summary`]: writable user sections or views exist.
pub const SUMMARY_MAPPED_WRITABLE: u32 = 3;
/// [`MappedState::summary`]: a user section was created and no probe says whether views
/// remain (ask again with [`QUERY_PROBE_PURGE`]).
pub const SUMMARY_MAYBE_MAPPED: u32 = 4;

/// Output of [`FSCTL_COWFAT_QUERY_MAPPED_STATE`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MappedState {
    /// 0x00: `MAPPED_*` flags.
    pub flags: U32,
    /// 0x04: `SUMMARY_*`.
    pub summary: U32,
    /// 0x08: `MmDoesFileHaveUserWritableReferences`.
    pub writable_user_references: U32,
    /// 0x0C: data sections created (section-sync callback) since the control area appeared.
    pub data_sections: U32,
    /// 0x10: of which writable.
    pub writable_sections: U32,
    /// 0x14: image sections created since the image section appeared.
    pub image_sections: U32,
    /// 0x18: purge-failure mode count (NT-12).
    pub purge_failure_mode: U32,
    /// 0x1C: purges that failed because of a user mapping.
    pub purge_failures: U32,
    /// 0x20: `PageProtection` the last `SyncTypeCreateSection` callback saw (0: none yet).
    pub last_section_protection: U32,
    /// 0x24: zero.
    pub reserved: U32,
}
const _: () = assert!(core::mem::size_of::<MappedState>() == 40);

/// [`FileOverlayState::flags`]: the file exists in the base.
pub const OVERLAY_IN_BASE: u32 = 0x1;
/// [`FileOverlayState::flags`]: live differs from base.
pub const OVERLAY_MODIFIED: u32 = 0x2;
/// [`FileOverlayState::flags`]: the volume is sealed.
pub const OVERLAY_SEALED: u32 = 0x4;

/// Output of [`FSCTL_COWFAT_QUERY_OVERLAY`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FileOverlayState {
    /// 0x00: `OVERLAY_*` flags.
    pub flags: U32,
    /// 0x04: zero.
    pub reserved: U32,
    /// 0x08: clusters of the live file still shared with the base.
    pub base_clusters: U64,
    /// 0x10: clusters of the live file in the overlay.
    pub overlay_clusters: U64,
    /// 0x18: overlay clusters reserved for later paging writes (NT-15).
    pub reserved_clusters: U64,
}
const _: () = assert!(core::mem::size_of::<FileOverlayState>() == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ctl_codes() {
        assert_eq!(FSCTL_COWFAT_QUERY_MAPPED_STATE, 0x0009_2000);
        assert_eq!(FSCTL_COWFAT_QUERY_OVERLAY, 0x0009_2004);
        assert_eq!(FSCTL_COWFAT_COMMIT_FILE, 0x0009_A008);
        assert_eq!(FSCTL_COWFAT_DISCARD_FILE, 0x0009_A00C);
        assert_eq!(FSCTL_COWFAT_SEAL_VOLUME, 0x0009_A010);
        assert_eq!(FSCTL_COWFAT_COMMIT_VOLUME, 0x0009_A014);
        assert_eq!(FSCTL_COWFAT_DISCARD_VOLUME, 0x0009_A018);
        // FSCTL_SET_PURGE_FAILURE_MODE is CTL_CODE(9, 156, METHOD_BUFFERED, FILE_ANY_ACCESS).
        assert_eq!(ctl_code(9, 156, 0, 0), 0x0009_0270);
    }
}
