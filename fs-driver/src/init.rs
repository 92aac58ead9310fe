//! DriverEntry's body and the unload routine (fastfat's `fatinit.c`).
//!
//! Creates the file system control device `\CowFat`, fills the MajorFunction table with the
//! `fsd_*` entry points of [`crate::dispatch`], installs the fast I/O table, registers the
//! FsRtl filter callbacks (section synchronisation, modified page writer, Cc flush) and
//! registers the control device as a disk file system, after which the I/O manager offers
//! every new disk volume to us with `IRP_MN_MOUNT_VOLUME`.

use core::ptr;

use crate::dispatch::{
    cleanup, close, create, devctrl, dirctrl, ea, fileinfo, flush, fsctrl, lockctrl, pnp, read,
    shutdown, volinfo, write,
};
use crate::fastio::FAST_IO_DISPATCH;
use crate::global::CFAT_DATA;
use crate::nt::{self, DEVICE_OBJECT, DRIVER_DISPATCH, DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};
use crate::resrcsup::FS_FILTER_CALLBACKS;

/// Name of the file system control device.
pub const CONTROL_DEVICE_NAME: &str = "\\CowFat";

const CONTROL_DEVICE_NAME_LEN: usize = CONTROL_DEVICE_NAME.len();

/// `\CowFat` in UTF-16 (the name is ASCII, so one unit per byte).
static CONTROL_DEVICE_NAME_UTF16: [u16; CONTROL_DEVICE_NAME_LEN] = ascii_to_utf16();

const fn ascii_to_utf16() -> [u16; CONTROL_DEVICE_NAME_LEN] {
    let bytes = CONTROL_DEVICE_NAME.as_bytes();
    let mut out = [0u16; CONTROL_DEVICE_NAME_LEN];
    let mut i = 0;
    while i < CONTROL_DEVICE_NAME_LEN {
        assert!(bytes[i].is_ascii());
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

/// A counted UTF-16 string over a static buffer (`RtlInitUnicodeString` without the import).
fn static_unicode_string(buffer: &'static [u16]) -> UNICODE_STRING {
    // Device names are a few characters; `u16` byte lengths are the kernel's own limit.
    let bytes = u16::try_from(core::mem::size_of_val(buffer)).unwrap_or(u16::MAX);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        // The kernel copies the name; it never writes through this pointer.
        Buffer: buffer.as_ptr().cast_mut(),
    }
}

/// Every major function cowfat handles, each routed to its dispatch module (the same set as
/// fastfat; security IRPs go unanswered because the format keeps no ACLs).
pub fn major_function_table() -> [(u32, DRIVER_DISPATCH); 18] {
    [
        (nt::IRP_MJ_CREATE, Some(create::fsd_create)),
        (nt::IRP_MJ_CLOSE, Some(close::fsd_close)),
        (nt::IRP_MJ_READ, Some(read::fsd_read)),
        (nt::IRP_MJ_WRITE, Some(write::fsd_write)),
        (
            nt::IRP_MJ_QUERY_INFORMATION,
            Some(fileinfo::fsd_query_information),
        ),
        (
            nt::IRP_MJ_SET_INFORMATION,
            Some(fileinfo::fsd_set_information),
        ),
        (nt::IRP_MJ_QUERY_EA, Some(ea::fsd_query_ea)),
        (nt::IRP_MJ_SET_EA, Some(ea::fsd_set_ea)),
        (nt::IRP_MJ_FLUSH_BUFFERS, Some(flush::fsd_flush_buffers)),
        (
            nt::IRP_MJ_QUERY_VOLUME_INFORMATION,
            Some(volinfo::fsd_query_volume_information),
        ),
        (
            nt::IRP_MJ_SET_VOLUME_INFORMATION,
            Some(volinfo::fsd_set_volume_information),
        ),
        (
            nt::IRP_MJ_DIRECTORY_CONTROL,
            Some(dirctrl::fsd_directory_control),
        ),
        (
            nt::IRP_MJ_FILE_SYSTEM_CONTROL,
            Some(fsctrl::fsd_file_system_control),
        ),
        (nt::IRP_MJ_DEVICE_CONTROL, Some(devctrl::fsd_device_control)),
        (nt::IRP_MJ_SHUTDOWN, Some(shutdown::fsd_shutdown)),
        (nt::IRP_MJ_LOCK_CONTROL, Some(lockctrl::fsd_lock_control)),
        (nt::IRP_MJ_CLEANUP, Some(cleanup::fsd_cleanup)),
        (nt::IRP_MJ_PNP, Some(pnp::fsd_pnp)),
    ]
}

/// DriverEntry's body.
///
/// # Safety
/// Called once, from the image's `DriverEntry`, at PASSIVE_LEVEL with the I/O manager's
/// driver object.
pub unsafe fn driver_entry(
    driver_object: *mut DRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
) -> NTSTATUS {
    let name = static_unicode_string(&CONTROL_DEVICE_NAME_UTF16);
    let mut control: *mut DEVICE_OBJECT = ptr::null_mut();
    // SAFETY: valid driver object, name and out pointer; PASSIVE_LEVEL.
    let status = unsafe {
        nt::IoCreateDevice(
            driver_object,
            0,
            &name,
            nt::FILE_DEVICE_DISK_FILE_SYSTEM,
            nt::FILE_DEVICE_SECURE_OPEN,
            false,
            &mut control,
        )
    };
    if status < 0 {
        return status;
    }
    // SAFETY: the driver object is ours to fill during DriverEntry.
    let driver = unsafe { &mut *driver_object };
    for (major, routine) in major_function_table() {
        // Every IRP_MJ_* value is below IRP_MJ_MAXIMUM_FUNCTION + 1 == the table's length.
        if let Some(slot) = driver.MajorFunction.get_mut(major as usize) {
            *slot = routine;
        }
    }
    // The kernel only reads the table; the pointer is `*mut` in the C declaration.
    driver.FastIoDispatch = (&raw const FAST_IO_DISPATCH).cast_mut();
    // SAFETY: valid driver object; the callback table is static.
    let status =
        unsafe { nt::FsRtlRegisterFileSystemFilterCallbacks(driver_object, &FS_FILTER_CALLBACKS) };
    if status < 0 {
        // SAFETY: created above and not registered anywhere yet.
        unsafe { nt::IoDeleteDevice(control) };
        return status;
    }
    driver.DriverUnload = Some(driver_unload);
    CFAT_DATA.set_driver(driver_object, control, driver.DriverUnload);
    // Low priority: cowfat is asked to mount a disk only after NTFS, FAT and the other in-box
    // file systems have declined it, so it stays off the path of every other disk's mount.
    // SAFETY: `control` was just created by IoCreateDevice and is ours.
    unsafe { (*control).Flags |= nt::DO_LOW_PRIORITY_FILESYSTEM };
    // SAFETY: as above.
    unsafe { (*control).Flags &= !nt::DO_DEVICE_INITIALIZING };
    // SAFETY: a live disk file system control device; from here on mount requests may come.
    unsafe { nt::IoRegisterFileSystem(control) };
    nt::STATUS_SUCCESS
}

/// The unload routine (`sc stop cowfat`).
///
/// While a volume is mounted the routine is withdrawn from the driver object
/// ([`crate::global::CfatData::volume_mounted`]), so the I/O manager refuses the unload. If
/// an unload still races a mount and finds a volume here, it refuses by leaving the control
/// device registered: device objects keep the driver object, and so the image, alive.
/// Dismounted VCBs left waiting for the VPB's reference count no longer count as mounted:
/// the unload sweeps them first ([`crate::vcb::sweep_dismounted`]) and refuses as above if
/// any is still referenced.
///
/// # Safety
/// Called by the I/O manager at PASSIVE_LEVEL with our driver object.
pub unsafe extern "system" fn driver_unload(_driver_object: *const DRIVER_OBJECT) {
    crate::vcb::sweep_dismounted();
    if CFAT_DATA.mounted_volumes() != 0 || CFAT_DATA.has_vcbs() {
        return;
    }
    let control = CFAT_DATA.control_device();
    CFAT_DATA.clear_driver();
    if control.is_null() {
        return;
    }
    // SAFETY: registered in DriverEntry; no mount can start after this returns.
    unsafe { nt::IoUnregisterFileSystem(control) };
    // SAFETY: our control device; nothing references it any more.
    unsafe { nt::IoDeleteDevice(control) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_device_name_is_counted_utf16() {
        let name = static_unicode_string(&CONTROL_DEVICE_NAME_UTF16);
        assert_eq!(usize::from(name.Length), 2 * CONTROL_DEVICE_NAME.len());
        let units: alloc::vec::Vec<u16> = CONTROL_DEVICE_NAME.encode_utf16().collect();
        assert_eq!(CONTROL_DEVICE_NAME_UTF16.as_slice(), units.as_slice());
    }

    #[test]
    fn every_major_is_routed_once() {
        let table = major_function_table();
        for (i, (major, routine)) in table.iter().enumerate() {
            assert!(*major <= nt::IRP_MJ_PNP, "major {major} out of range");
            assert!(routine.is_some());
            assert!(
                table[i + 1..].iter().all(|(m, _)| m != major),
                "{major} twice"
            );
        }
    }
}
