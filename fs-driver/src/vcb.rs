//! The volume control block (fastfat's `VCB`), kept in the volume device object's extension.
//!
//! It owns fs-core's [`Volume`] and the table of open FCBs. Locks, outermost first (NT-18):
//! the VCB resource (create, cleanup, close, dismount: the FCB table and open counts), an
//! FCB's main resource, its paging I/O resource, and innermost the volume lock that guards
//! the `Volume` itself. The volume lock is held only for the length of one fs-core call,
//! which never calls back into Cc, Mm or the I/O manager above the disk, so it cannot be
//! re-entered.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr;

use fs_core::mem::Boxed;
use fs_core::sorted::SortedMap;
use fs_core::Volume;

use crate::blockdev::TargetDevice;
use crate::fcb::Fcb;
use crate::nt::{self, DEVICE_OBJECT, ERESOURCE, NTSTATUS, VPB};
use crate::resrcsup::ResourceGuard;
use crate::status::status_of;
use crate::strucsup::{ntc, Counter, Flag, NodeHeader};

/// One mounted volume.
#[repr(C)]
pub struct Vcb {
    /// `CFAT_NTC_VCB` (also what `FsContext` of a volume open points at).
    pub node: NodeHeader,
    /// Our volume device object (its extension holds this VCB).
    pub vdo: *mut DEVICE_OBJECT,
    /// The VPB the I/O manager gave us at mount.
    pub vpb: *mut VPB,
    /// The device our sector I/O goes to.
    pub target: *mut DEVICE_OBJECT,
    /// The volume's serial number (what verify compares).
    pub serial: u64,
    resource: UnsafeCell<ERESOURCE>,
    volume_lock: UnsafeCell<ERESOURCE>,
    /// Boxed: a `Volume` is a few hundred bytes, and the VCB is built on the mount path's stack.
    volume: UnsafeCell<Option<Boxed<Volume<TargetDevice>>>>,
    /// Set while `with_volume` lends out the volume: a second borrow can only be the same
    /// thread re-entering (the volume lock is recursive), e.g. a fault on a user buffer that
    /// maps a file of this volume (NT-25). That would alias `&mut Volume`: a bug check.
    volume_borrowed: Flag,
    /// Open FCBs by file id; a sorted map because its insert can fail (NT-26).
    fcbs: UnsafeCell<SortedMap<u64, *mut Fcb>>,
    /// File objects of volume opens not yet closed.
    pub volume_opens: Counter,
    /// FSCTL_DISMOUNT_VOLUME ran: the volume is unmounted, only cleanup/close are served.
    pub dismounted: Flag,
    /// FsRtl's notify synchronisation (`FsRtlNotifyInitializeSync`, NT-22).
    notify_sync: UnsafeCell<nt::PNOTIFY_SYNC>,
    /// The volume's directory notify list head (FsRtl's; we only pass its address).
    dir_notify_list: UnsafeCell<nt::LIST_ENTRY>,
    /// The file object that holds FSCTL_LOCK_VOLUME, NULL when unlocked.
    pub locked_by: UnsafeCell<*mut nt::FILE_OBJECT>,
}

/// The VCB resource held exclusive: gives access to the FCB table.
pub struct VcbExclusive<'a> {
    vcb: &'a Vcb,
    _guard: ResourceGuard,
}

impl VcbExclusive<'_> {
    /// Runs `f` on the FCB table. `f` must not call out of the driver (a nested close would
    /// re-enter the table).
    pub fn with_fcbs<R>(&self, f: impl FnOnce(&mut SortedMap<u64, *mut Fcb>) -> R) -> R {
        // SAFETY: the VCB resource is held exclusive by this thread and `f` does not re-enter.
        let table = unsafe { &mut *self.vcb.fcbs.get() };
        f(table)
    }

    /// The open FCB of a file, if any.
    #[must_use]
    pub fn find(&self, id: fs_core::FileId) -> Option<*mut Fcb> {
        self.with_fcbs(|t| t.get(&id.0).copied())
    }
}

impl Vcb {
    /// Builds the VCB in place in the volume device object's extension and initialises its
    /// resources.
    ///
    /// # Safety
    /// `slot` is the (uninitialised, suitably aligned, non-paged) device extension of `vdo`.
    pub unsafe fn init_in_place(
        slot: *mut Vcb,
        vdo: *mut DEVICE_OBJECT,
        vpb: *mut VPB,
        target: *mut DEVICE_OBJECT,
        volume: Boxed<Volume<TargetDevice>>,
    ) -> Result<(), NTSTATUS> {
        let serial = volume.try_volume_info().map_err(|e| status_of(&e))?.serial;
        let vcb = Vcb {
            node: NodeHeader::of::<Vcb>(ntc::CFAT_NTC_VCB),
            vdo,
            vpb,
            target,
            serial,
            resource: UnsafeCell::new(ERESOURCE::default()),
            volume_lock: UnsafeCell::new(ERESOURCE::default()),
            volume: UnsafeCell::new(Some(volume)),
            fcbs: UnsafeCell::new(SortedMap::new()),
            volume_opens: Counter::new(0),
            dismounted: Flag::new(false),
            volume_borrowed: Flag::new(false),
            notify_sync: UnsafeCell::new(0),
            dir_notify_list: UnsafeCell::new(nt::LIST_ENTRY::default()),
            locked_by: UnsafeCell::new(ptr::null_mut()),
        };
        // SAFETY: the caller's contract: `slot` is ours and writable.
        unsafe { ptr::write(slot, vcb) };
        // SAFETY: `slot` now holds an initialised VCB.
        let vcb = unsafe { &*slot };
        // SAFETY: non-paged, not yet used.
        let status = unsafe { nt::ExInitializeResourceLite(vcb.resource.get()) };
        if status < 0 {
            // SAFETY: initialised above, dropped once.
            unsafe { ptr::drop_in_place(slot) };
            return Err(status);
        }
        // SAFETY: as above.
        let status = unsafe { nt::ExInitializeResourceLite(vcb.volume_lock.get()) };
        if status < 0 {
            // SAFETY: initialised above and never acquired.
            unsafe { nt::ExDeleteResourceLite(vcb.resource.get()) };
            // SAFETY: initialised above, dropped once.
            unsafe { ptr::drop_in_place(slot) };
            return Err(status);
        }
        // SAFETY: the VCB's own list head, in non-paged device extension memory.
        unsafe { crate::wdk_inline::initialize_list_head(vcb.dir_notify_list.get()) };
        // SAFETY: the VCB's own sync slot; uninitialised in `delete`.
        unsafe { nt::FsRtlNotifyInitializeSync(vcb.notify_sync.get()) };
        Ok(())
    }

    /// The notify sync for FsRtl's notify calls.
    #[must_use]
    pub fn notify_sync(&self) -> nt::PNOTIFY_SYNC {
        // SAFETY: written once at mount, before any request.
        unsafe { *self.notify_sync.get() }
    }

    /// The notify list head for FsRtl's notify calls.
    #[must_use]
    pub fn notify_list(&self) -> *const nt::LIST_ENTRY {
        self.dir_notify_list.get()
    }

    /// The VCB of a volume device object, if it is one of ours.
    ///
    /// # Safety
    /// `device` is a live device object created by this driver (control or volume device).
    #[must_use]
    pub unsafe fn of_device<'a>(device: *const DEVICE_OBJECT) -> Option<&'a Vcb> {
        // SAFETY: live device per the caller.
        let extension = unsafe { (*device).DeviceExtension }.cast::<Vcb>();
        if extension.is_null() {
            return None;
        }
        // SAFETY: our volume devices' extensions hold a VCB (the control device has none).
        let vcb = unsafe { &*extension };
        (vcb.node.node_type_code == ntc::CFAT_NTC_VCB).then_some(vcb)
    }

    /// Takes the VCB resource exclusive.
    #[must_use]
    pub fn acquire_exclusive(&self) -> VcbExclusive<'_> {
        VcbExclusive {
            vcb: self,
            // SAFETY: initialised with the VCB.
            _guard: unsafe { ResourceGuard::exclusive(self.resource.get()) },
        }
    }

    /// Runs one fs-core operation under the volume lock; fs-core errors become NTSTATUS.
    ///
    /// # Errors
    /// `STATUS_VOLUME_DISMOUNTED` after dismount, else what fs-core reports.
    pub fn with_volume<R>(
        &self,
        f: impl FnOnce(&mut Volume<TargetDevice>) -> fs_core::Result<R>,
    ) -> Result<R, NTSTATUS> {
        // SAFETY: initialised with the VCB.
        let _guard = unsafe { ResourceGuard::exclusive(self.volume_lock.get()) };
        if self.volume_borrowed.get() {
            crate::bugcheck::bug_check(
                crate::bugcheck::COWFAT_BUGCHECK_VOLUME_REENTERED,
                core::ptr::from_ref(self) as usize,
                0,
            );
        }
        // SAFETY: the volume lock is held exclusive and the flag says no borrow is live.
        let volume = unsafe { &mut *self.volume.get() };
        let volume = volume.as_mut().ok_or(nt::STATUS_VOLUME_DISMOUNTED)?;
        self.volume_borrowed.set(true);
        let result = run_out_of_line(f, volume).map_err(|e| status_of(&e));
        self.volume_borrowed.set(false);
        result
    }

    /// Unmounts fs-core's volume (flushing it). Later `with_volume` calls fail.
    ///
    /// # Errors
    /// What fs-core's unmount reports; the volume is gone either way.
    pub fn unmount(&self) -> Result<(), NTSTATUS> {
        // SAFETY: initialised with the VCB.
        let _guard = unsafe { ResourceGuard::exclusive(self.volume_lock.get()) };
        // SAFETY: the volume lock is held exclusive.
        let volume = unsafe { &mut *self.volume.get() };
        match volume.take() {
            Some(mut v) => v.close().map_err(|e| status_of(&e)),
            None => Ok(()),
        }
    }

    /// Ids of all open FCBs (a snapshot: the table may change while the caller works).
    pub fn fcb_ids(guard: &VcbExclusive<'_>) -> Result<Vec<u64>, NTSTATUS> {
        guard
            .with_fcbs(|t| fs_core::mem::collect(t.keys().copied()))
            .map_err(|e| status_of(&e))
    }

    /// Is the table empty and no volume open left: may the VCB go?
    #[must_use]
    pub fn is_unused(&self, guard: &VcbExclusive<'_>) -> bool {
        self.volume_opens.get() == 0 && guard.with_fcbs(|t| t.is_empty())
    }

    /// Tears down a dismounted, unused VCB and deletes its volume device object.
    ///
    /// # Safety
    /// Called once, after the last file object of the volume closed, with no guard of this
    /// VCB alive; the VCB is not used again.
    pub unsafe fn delete(vcb: *mut Vcb) {
        // SAFETY: valid until dropped below.
        let vdo = unsafe { (*vcb).vdo };
        // SAFETY: valid until dropped below.
        let resource = unsafe { (*vcb).resource.get() };
        // SAFETY: as above.
        let volume_lock = unsafe { (*vcb).volume_lock.get() };
        // SAFETY: valid until dropped below; only a field address is taken.
        let sync = unsafe { (*vcb).notify_sync.get() };
        // SAFETY: initialised at mount; every watch was cleaned up with its handle.
        unsafe { nt::FsRtlNotifyUninitializeSync(sync) };
        // SAFETY: initialised with the VCB, not held by anyone.
        unsafe { nt::ExDeleteResourceLite(resource) };
        // SAFETY: as above.
        unsafe { nt::ExDeleteResourceLite(volume_lock) };
        // SAFETY: initialised in `init_in_place`, dropped once.
        unsafe { ptr::drop_in_place(vcb) };
        // SAFETY: our volume device; nothing references it any more.
        unsafe { nt::IoDeleteDevice(vdo) };
        crate::global::CFAT_DATA.volume_dismounted();
    }
}

/// Calls `f` in a frame of its own. fs-core's operations inline deeply; inlined into the
/// dispatch routine that called `with_volume`, their locals would stay on the stack under
/// everything that routine calls afterwards (a change notification walks directories).
#[inline(never)]
fn run_out_of_line<R>(
    f: impl FnOnce(&mut Volume<TargetDevice>) -> fs_core::Result<R>,
    volume: &mut Volume<TargetDevice>,
) -> fs_core::Result<R> {
    f(volume)
}
