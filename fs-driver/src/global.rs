//! The driver's global data (fastfat's `FatData`): who we are, our control device, and how
//! many volumes are mounted. A static with atomics, so it needs no lock and no `static mut`;
//! its node header lets the WinDbg scripts recognise it (`x cowfat!CFAT_DATA`).
//!
//! For the debugger (windbg/cowfat.js) it also anchors every mounted VCB on a `LIST_ENTRY`
//! chain (under a spin lock of its own: mount and teardown are its only writers) and holds
//! the trace ring of recent IRPs and callbacks ([`crate::debugger`]).

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::debugger::{insert_tail_list, remove_entry_list, TraceRing};
use crate::nt::{self, DEVICE_OBJECT, DRIVER_OBJECT, KLOCK_QUEUE_HANDLE, LIST_ENTRY};
use crate::strucsup::{ntc, NodeHeader};

/// Global driver state.
#[repr(C)]
pub struct CfatData {
    /// `CFAT_NTC_DATA_HEADER`.
    pub node: NodeHeader,
    driver_object: AtomicPtr<DRIVER_OBJECT>,
    control_device: AtomicPtr<DEVICE_OBJECT>,
    mounted_volumes: AtomicU32,
    /// The unload routine DriverEntry installed, put back when the last volume goes. Kept
    /// here rather than named where it is put back: the stack report counts a function whose
    /// address is taken as called from there, and the unload routine reaches `Vcb::delete`,
    /// which puts it back. Written once in DriverEntry, before any volume exists.
    unload_routine: UnsafeCell<windows_sys::Wdk::Foundation::DRIVER_UNLOAD>,
    /// `KSPIN_LOCK` of `vcb_list` (0: released; statically initialised).
    vcb_list_lock: UnsafeCell<usize>,
    /// Every VCB from mount to teardown, linked through `Vcb::volume_links`.
    pub vcb_list: UnsafeCell<LIST_ENTRY>,
    /// Recent IRPs and callbacks.
    pub trace: TraceRing,
}

// SAFETY: the cells are only touched under `vcb_list_lock` (the list), are the spin lock
// itself, which the kernel's interlocked operations own, or are written once in DriverEntry
// before any other thread reads them (the unload routine); the rest are atomics.
unsafe impl Sync for CfatData {}

/// The one instance.
pub static CFAT_DATA: CfatData = CfatData {
    node: NodeHeader::of::<CfatData>(ntc::CFAT_NTC_DATA_HEADER),
    driver_object: AtomicPtr::new(ptr::null_mut()),
    control_device: AtomicPtr::new(ptr::null_mut()),
    mounted_volumes: AtomicU32::new(0),
    unload_routine: UnsafeCell::new(None),
    vcb_list_lock: UnsafeCell::new(0),
    vcb_list: UnsafeCell::new(LIST_ENTRY {
        Flink: ptr::null_mut(),
        Blink: ptr::null_mut(),
    }),
    trace: TraceRing::new(),
};

impl CfatData {
    /// Records the driver object and control device once DriverEntry has both.
    /// A fresh load starts with no volumes and an empty trace (a host simulator loads the
    /// driver again for every test; on Windows the image's statics are fresh anyway).
    /// `unload` is the routine to put back after a withdrawal.
    pub fn set_driver(
        &self,
        driver_object: *mut DRIVER_OBJECT,
        control: *mut DEVICE_OBJECT,
        unload: windows_sys::Wdk::Foundation::DRIVER_UNLOAD,
    ) {
        // SAFETY: no volume exists yet, so nobody reads the cell.
        unsafe { *self.unload_routine.get() = unload };
        self.with_vcb_list(|head| {
            // SAFETY: the list head, under its lock; no VCB exists before DriverEntry ends.
            unsafe { crate::wdk_inline::initialize_list_head(head) }
        });
        self.trace.clear();
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

    /// Called once per VCB when nothing of ours keeps it any more: deleted, or dismounted
    /// and unused with only the I/O manager's VPB references left, for the sweep
    /// ([`crate::vcb::sweep_dismounted`], which the unload routine runs). The last one gives
    /// the unload routine back.
    pub fn volume_dismounted(&self) {
        let previous =
            self.mounted_volumes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if previous == Ok(1) {
            self.set_unload_routine(true);
        }
    }

    /// Runs `f` on the VCB chain's head under its spin lock (DISPATCH_LEVEL: `f` only links).
    /// Out of line, so the queue handle is not in DriverEntry's or the mount path's frame.
    /// The VCB sweep ([`crate::vcb::sweep_dismounted`]) also decides under it which thread
    /// deletes a dismounted VCB.
    #[inline(never)]
    pub(crate) fn with_vcb_list<R>(&self, f: impl FnOnce(*mut LIST_ENTRY) -> R) -> R {
        let mut handle = KLOCK_QUEUE_HANDLE::default();
        // SAFETY: a static spin lock (0 = released) and a queue handle on this stack frame
        // that outlives the hold; IRQL <= DISPATCH_LEVEL on every caller.
        unsafe { nt::KeAcquireInStackQueuedSpinLock(self.vcb_list_lock.get(), &mut handle) };
        let head = self.vcb_list.get();
        // SAFETY: `head` is ours to read under the lock.
        if unsafe { (*head).Flink }.is_null() {
            // SAFETY: as above; a list nobody initialised yet is empty.
            unsafe { crate::wdk_inline::initialize_list_head(head) };
        }
        let result = f(head);
        // SAFETY: releasing the lock acquired above with its handle.
        unsafe { nt::KeReleaseInStackQueuedSpinLock(&handle) };
        result
    }

    /// Puts a VCB's `volume_links` on the chain (mount).
    ///
    /// # Safety
    /// `links` belongs to a live VCB in non-paged memory and is on no list.
    pub unsafe fn link_vcb(&self, links: *mut LIST_ENTRY) {
        // SAFETY: the caller's contract; the chain is changed under its lock.
        self.with_vcb_list(|head| unsafe { insert_tail_list(head, links) });
    }

    /// Takes a VCB's `volume_links` off the chain (teardown).
    ///
    /// # Safety
    /// `links` was linked with [`Self::link_vcb`] (or points at itself).
    pub unsafe fn unlink_vcb(&self, links: *mut LIST_ENTRY) {
        // SAFETY: the caller's contract; the chain is changed under its lock.
        self.with_vcb_list(|_| unsafe { remove_entry_list(links) });
    }

    /// Is any VCB left on the chain (served, or dismounted and not yet deleted)?
    #[must_use]
    pub fn has_vcbs(&self) -> bool {
        // SAFETY: the head, read under its lock.
        self.with_vcb_list(|head| !ptr::eq(unsafe { (*head).Flink }, head))
    }

    fn set_unload_routine(&self, present: bool) {
        let driver = self.driver_object();
        if driver.is_null() {
            return;
        }
        let routine = if present {
            // SAFETY: written once in DriverEntry, before any volume existed.
            unsafe { *self.unload_routine.get() }
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
            unload_routine: UnsafeCell::new(None),
            vcb_list_lock: UnsafeCell::new(0),
            vcb_list: UnsafeCell::new(LIST_ENTRY::default()),
            trace: TraceRing::new(),
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
