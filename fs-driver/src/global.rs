//! The driver's global data (fastfat's `FatData`): who we are, our control device, and how
//! many volumes are mounted. A static with atomics, so it needs no lock and no `static mut`;
//! its node header lets the WinDbg scripts recognise it (`x cowfat!CFAT_DATA`).

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::nt::{DEVICE_OBJECT, DRIVER_OBJECT};
use crate::strucsup::{ntc, NodeHeader};

/// Global driver state.
#[repr(C)]
pub struct CfatData {
    /// `CFAT_NTC_DATA_HEADER`.
    pub node: NodeHeader,
    driver_object: AtomicPtr<DRIVER_OBJECT>,
    control_device: AtomicPtr<DEVICE_OBJECT>,
    mounted_volumes: AtomicU32,
}

/// The one instance.
pub static CFAT_DATA: CfatData = CfatData {
    node: NodeHeader::of::<CfatData>(ntc::CFAT_NTC_DATA_HEADER),
    driver_object: AtomicPtr::new(ptr::null_mut()),
    control_device: AtomicPtr::new(ptr::null_mut()),
    mounted_volumes: AtomicU32::new(0),
};

impl CfatData {
    /// Records the driver object and control device once DriverEntry has both.
    pub fn set_driver(&self, driver_object: *mut DRIVER_OBJECT, control: *mut DEVICE_OBJECT) {
        self.driver_object.store(driver_object, Ordering::Release);
        self.control_device.store(control, Ordering::Release);
    }

    /// Forgets them again (unload, or a failed DriverEntry).
    pub fn clear_driver(&self) {
        self.driver_object.store(ptr::null_mut(), Ordering::Release);
        self.control_device
            .store(ptr::null_mut(), Ordering::Release);
    }

    /// The file system control device (`\CowFat`), NULL before DriverEntry finished.
    #[must_use]
    pub fn control_device(&self) -> *mut DEVICE_OBJECT {
        self.control_device.load(Ordering::Acquire)
    }

    /// The driver object, NULL before DriverEntry finished.
    #[must_use]
    pub fn driver_object(&self) -> *mut DRIVER_OBJECT {
        self.driver_object.load(Ordering::Acquire)
    }

    /// Is `device` our control device (as opposed to a volume device object)?
    #[must_use]
    pub fn is_control_device(&self, device: *const DEVICE_OBJECT) -> bool {
        !device.is_null() && ptr::eq(device, self.control_device())
    }

    /// Number of volumes currently mounted.
    #[must_use]
    pub fn mounted_volumes(&self) -> u32 {
        self.mounted_volumes.load(Ordering::Acquire)
    }

    /// Called by the mount path after a volume device object is live. The first mounted
    /// volume withdraws the unload routine, so the I/O manager refuses `sc stop` (it fails
    /// NtUnloadDriver for a driver without DriverUnload) rather than unloading code that
    /// mounted volumes still dispatch into.
    pub fn volume_mounted(&self) {
        if self.mounted_volumes.fetch_add(1, Ordering::AcqRel) == 0 {
            self.set_unload_routine(false);
        }
    }

    /// Called by the dismount path once a volume device object is gone; the last one gives
    /// the unload routine back.
    pub fn volume_dismounted(&self) {
        let previous =
            self.mounted_volumes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if previous == Ok(1) {
            self.set_unload_routine(true);
        }
    }

    fn set_unload_routine(&self, present: bool) {
        let driver = self.driver_object();
        if driver.is_null() {
            return;
        }
        let routine = if present {
            Some(crate::init::driver_unload as unsafe extern "system" fn(_))
        } else {
            None
        };
        // SAFETY: `driver` is our live driver object (set in DriverEntry, cleared only at
        // unload, which cannot run while a volume is mounted).
        let slot = unsafe { &raw mut (*driver).DriverUnload };
        // SAFETY: a valid, aligned field; a pointer-sized aligned store is atomic on every
        // Windows architecture, and the I/O manager only reads the field.
        unsafe { ptr::write_volatile(slot, routine) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_count_never_underflows() {
        let data = CfatData {
            node: NodeHeader::of::<CfatData>(ntc::CFAT_NTC_DATA_HEADER),
            driver_object: AtomicPtr::new(ptr::null_mut()),
            control_device: AtomicPtr::new(ptr::null_mut()),
            mounted_volumes: AtomicU32::new(0),
        };
        data.volume_dismounted();
        assert_eq!(data.mounted_volumes(), 0);
        data.volume_mounted();
        data.volume_mounted();
        data.volume_dismounted();
        assert_eq!(data.mounted_volumes(), 1);
        assert_eq!(data.node.node_type_code, ntc::CFAT_NTC_DATA_HEADER);
    }
}
