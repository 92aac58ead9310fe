//! IRP_MJ_QUERY_VOLUME_INFORMATION / IRP_MJ_SET_VOLUME_INFORMATION (fastfat's `volinfo.c`).
//!
//! Query: volume (serial, label), size, full size, attribute (name `cowfat` and only the
//! flags that hold: case-preserved Unicode names, read-only when mounted so), device, sector
//! size. Set: the label.

use core::mem::{offset_of, size_of};

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::infobuf::{copy_out, len32, Reply};
use crate::nt::{
    self, FILE_FS_ATTRIBUTE_INFORMATION, FILE_FS_DEVICE_INFORMATION, FILE_FS_FULL_SIZE_INFORMATION,
    FILE_FS_SECTOR_SIZE_INFORMATION, FILE_FS_SIZE_INFORMATION, FILE_FS_VOLUME_INFORMATION,
    NTSTATUS,
};
use crate::vcb::Vcb;
use crate::wdk_inline::io_get_current_irp_stack_location;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_QUERY_VOLUME_INFORMATION`.
    fsd_query_volume_information => common_query_volume_information
);

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_SET_VOLUME_INFORMATION`.
    fsd_set_volume_information => common_set_volume_information
);

/// `FS_INFORMATION_CLASS` values (ntifs.h).
pub mod class {
    /// `FileFsVolumeInformation`.
    pub const VOLUME: i32 = crate::nt::FileFsVolumeInformation;
    /// `FileFsLabelInformation`.
    pub const LABEL: i32 = crate::nt::FileFsLabelInformation;
    /// `FileFsSizeInformation`.
    pub const SIZE: i32 = crate::nt::FileFsSizeInformation;
    /// `FileFsDeviceInformation`.
    pub const DEVICE: i32 = crate::nt::FileFsDeviceInformation;
    /// `FileFsAttributeInformation`.
    pub const ATTRIBUTE: i32 = crate::nt::FileFsAttributeInformation;
    /// `FileFsFullSizeInformation`.
    pub const FULL_SIZE: i32 = crate::nt::FileFsFullSizeInformation;
    /// `FileFsSectorSizeInformation`.
    pub const SECTOR_SIZE: i32 = crate::nt::FileFsSectorSizeInformation;
}

/// `FILE_CASE_PRESERVED_NAMES | FILE_UNICODE_ON_DISK` (ntifs.h).
pub const FS_ATTRIBUTES: u32 = 0x0000_0002 | 0x0000_0004;
/// `FILE_READ_ONLY_VOLUME`.
pub const FILE_READ_ONLY_VOLUME: u32 = 0x0008_0000;
/// The file system's name as `FileFsAttributeInformation` reports it.
pub const FS_NAME: &str = "cowfat";
/// `FILE_DEVICE_DISK`.
const FILE_DEVICE_DISK: u32 = 0x0000_0007;
/// `SSINFO_FLAGS_ALIGNED_DEVICE | SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE`.
const SSINFO_ALIGNED: u32 = 0x1 | 0x2;

struct Facts {
    info: fs_core::VolumeInfo,
    read_only: bool,
    characteristics: u32,
}

/// # Safety
/// `context.irp` is a valid volume information IRP.
unsafe fn parameters(context: &IrpContext, set: bool) -> (i32, usize, *mut u8) {
    // SAFETY: the caller's contract.
    let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
    // SAFETY: the current stack location of that IRP.
    let stack = unsafe { &*stack };
    // SAFETY: the request's IRP, ours while dispatching.
    let irp = unsafe { &*context.irp };
    // SAFETY: the system buffer of a buffered request.
    let buffer = unsafe { irp.AssociatedIrp.SystemBuffer }.cast::<u8>();
    if set {
        // SAFETY: SetVolume is the live member for IRP_MJ_SET_VOLUME_INFORMATION.
        let p = unsafe { stack.Parameters.SetVolume };
        (p.FsInformationClass, p.Length as usize, buffer)
    } else {
        // SAFETY: QueryVolume is the live member for IRP_MJ_QUERY_VOLUME_INFORMATION.
        let p = unsafe { stack.Parameters.QueryVolume };
        (p.FsInformationClass, p.Length as usize, buffer)
    }
}

/// `IRP_MJ_QUERY_VOLUME_INFORMATION`.
#[must_use]
pub fn common_query_volume_information(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::not_yet();
    };
    if context.irp.is_null() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: a query volume information IRP sent to our volume.
    let (class, length, buffer) = unsafe { parameters(context, false) };
    let facts = match facts(vcb) {
        Ok(f) => f,
        Err(status) => return Outcome::status(status),
    };
    let (reply, fixed) = match class {
        class::VOLUME => (
            volume(&facts),
            offset_of!(FILE_FS_VOLUME_INFORMATION, VolumeLabel),
        ),
        class::SIZE => (size(&facts), size_of::<FILE_FS_SIZE_INFORMATION>()),
        class::FULL_SIZE => (
            full_size(&facts),
            size_of::<FILE_FS_FULL_SIZE_INFORMATION>(),
        ),
        class::DEVICE => (device(&facts), size_of::<FILE_FS_DEVICE_INFORMATION>()),
        class::ATTRIBUTE => (
            attribute(&facts),
            offset_of!(FILE_FS_ATTRIBUTE_INFORMATION, FileSystemName),
        ),
        class::SECTOR_SIZE => (
            sector_size(&facts),
            size_of::<FILE_FS_SECTOR_SIZE_INFORMATION>(),
        ),
        _ => return Outcome::status(nt::STATUS_INVALID_PARAMETER),
    };
    // SAFETY: the system buffer of `length` bytes.
    let (status, information) = unsafe { copy_out(&reply, fixed, buffer, length) };
    Outcome::Complete {
        status,
        information,
    }
}

fn facts(vcb: &Vcb) -> Result<Facts, NTSTATUS> {
    let (info, read_only) = vcb.with_volume(|v| Ok((v.try_volume_info()?, v.is_read_only())))?;
    // SAFETY: the target device lives as long as the volume is mounted.
    let characteristics = unsafe { (*vcb.target).Characteristics };
    Ok(Facts {
        info,
        read_only,
        characteristics,
    })
}

fn sectors_per_cluster(f: &Facts) -> u32 {
    f.info.cluster_size / f.info.sector_size.max(1)
}

fn volume(f: &Facts) -> Reply {
    type V = FILE_FS_VOLUME_INFORMATION;
    let mut r = Reply::zeroed(offset_of!(V, VolumeLabel));
    r.u32(
        offset_of!(V, VolumeSerialNumber),
        // NT's serial is 32 bits; fold cowfat's 64 so both halves count.
        ((f.info.serial ^ (f.info.serial >> 32)) & 0xFFFF_FFFF) as u32,
    );
    let units = r.str_units(offset_of!(V, VolumeLabel), &f.info.label);
    r.u32(offset_of!(V, VolumeLabelLength), len32(units * 2));
    r
}

fn size(f: &Facts) -> Reply {
    type S = FILE_FS_SIZE_INFORMATION;
    let mut r = Reply::zeroed(size_of::<S>());
    r.u64(offset_of!(S, TotalAllocationUnits), f.info.total_clusters);
    r.u64(
        offset_of!(S, AvailableAllocationUnits),
        f.info.available_clusters,
    );
    r.u32(
        offset_of!(S, SectorsPerAllocationUnit),
        sectors_per_cluster(f),
    );
    r.u32(offset_of!(S, BytesPerSector), f.info.sector_size);
    r
}

fn full_size(f: &Facts) -> Reply {
    type S = FILE_FS_FULL_SIZE_INFORMATION;
    let mut r = Reply::zeroed(size_of::<S>());
    r.u64(offset_of!(S, TotalAllocationUnits), f.info.total_clusters);
    r.u64(
        offset_of!(S, CallerAvailableAllocationUnits),
        f.info.available_clusters,
    );
    r.u64(
        offset_of!(S, ActualAvailableAllocationUnits),
        f.info.free_clusters,
    );
    r.u32(
        offset_of!(S, SectorsPerAllocationUnit),
        sectors_per_cluster(f),
    );
    r.u32(offset_of!(S, BytesPerSector), f.info.sector_size);
    r
}

fn device(f: &Facts) -> Reply {
    type D = FILE_FS_DEVICE_INFORMATION;
    let mut r = Reply::zeroed(size_of::<D>());
    r.u32(offset_of!(D, DeviceType), FILE_DEVICE_DISK);
    r.u32(offset_of!(D, Characteristics), f.characteristics);
    r
}

fn attribute(f: &Facts) -> Reply {
    type A = FILE_FS_ATTRIBUTE_INFORMATION;
    let mut flags = FS_ATTRIBUTES;
    if f.read_only {
        flags |= FILE_READ_ONLY_VOLUME;
    }
    let mut r = Reply::zeroed(offset_of!(A, FileSystemName));
    r.u32(offset_of!(A, FileSystemAttributes), flags);
    r.u32(
        offset_of!(A, MaximumComponentNameLength),
        len32(fs_core::name::MAX_NAME_UNITS),
    );
    let units = r.str_units(offset_of!(A, FileSystemName), FS_NAME);
    r.u32(offset_of!(A, FileSystemNameLength), len32(units * 2));
    r
}

fn sector_size(f: &Facts) -> Reply {
    type S = FILE_FS_SECTOR_SIZE_INFORMATION;
    let s = f.info.sector_size;
    let mut r = Reply::zeroed(size_of::<S>());
    r.u32(offset_of!(S, LogicalBytesPerSector), s);
    r.u32(offset_of!(S, PhysicalBytesPerSectorForAtomicity), s);
    r.u32(offset_of!(S, PhysicalBytesPerSectorForPerformance), s);
    r.u32(
        offset_of!(S, FileSystemEffectivePhysicalBytesPerSectorForAtomicity),
        s,
    );
    r.u32(offset_of!(S, Flags), SSINFO_ALIGNED);
    r
}

/// `IRP_MJ_SET_VOLUME_INFORMATION`: the label (`FILE_FS_LABEL_INFORMATION`).
#[must_use]
pub fn common_set_volume_information(context: &IrpContext) -> Outcome {
    let Some(vcb) = context.vcb() else {
        return Outcome::not_yet();
    };
    if context.irp.is_null() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: a set volume information IRP sent to our volume.
    let (class, length, buffer) = unsafe { parameters(context, true) };
    if class != class::LABEL {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    if length < 4 || buffer.is_null() {
        return Outcome::status(nt::STATUS_INFO_LENGTH_MISMATCH);
    }
    // SAFETY: the system buffer holds `length` bytes of input.
    let input = unsafe { core::slice::from_raw_parts(buffer, length) };
    let n = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
    if !n.is_multiple_of(2) || 4 + n > length {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // At most a label's 32 units, in a fixed array (NT-26: nothing to allocate).
    let mut units = [0u16; 32];
    if n / 2 > units.len() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    for (unit, c) in units.iter_mut().zip(input[4..4 + n].chunks_exact(2)) {
        *unit = u16::from_le_bytes([c[0], c[1]]);
    }
    let units = &units[..n / 2];
    if char::decode_utf16(units.iter().copied()).any(|c| c.is_err()) {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    let _vcb = vcb.acquire_exclusive();
    Outcome::status(match vcb.with_volume(|v| v.set_label_utf16(units)) {
        Ok(()) => nt::STATUS_SUCCESS,
        Err(status) => status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::{
        IRP_MJ_QUERY_VOLUME_INFORMATION, IRP_MJ_SET_VOLUME_INFORMATION,
        STATUS_INVALID_DEVICE_REQUEST,
    };

    #[test]
    fn requests_off_a_volume_are_refused() {
        let outcome =
            common_query_volume_information(&context(IRP_MJ_QUERY_VOLUME_INFORMATION, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
        let outcome =
            common_set_volume_information(&context(IRP_MJ_SET_VOLUME_INFORMATION, 0, false));
        assert_eq!(outcome, Outcome::status(STATUS_INVALID_DEVICE_REQUEST));
    }
}
