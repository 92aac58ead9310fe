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
use crate::debugger::{insert_tail_list, remove_entry_list};
use crate::dispatch::close::CloseQueue;
use crate::fcb::Fcb;
use crate::lazycommit::{self, LazyCommit};
use crate::nt::{
    self, DEVICE_OBJECT, ERESOURCE, FAST_MUTEX, FSRTL_ADVANCED_FCB_HEADER, NTSTATUS, VPB,
};
use crate::resrcsup::ResourceGuard;
use crate::status::status_of;
use crate::strucsup::{node_byte_size, ntc, Counter, Flag};

/// One mounted volume.
#[repr(C)]
pub struct Vcb {
    /// First member, as in fastfat's `VolumeFileHeader`: a volume open's `FsContext` is the
    /// VCB, and filters read an FCB header there (NT-31). `Base.NodeTypeCode` is
    /// `CFAT_NTC_VCB`; it advertises filter contexts, torn down in [`Vcb::delete`].
    pub header: UnsafeCell<FSRTL_ADVANCED_FCB_HEADER>,
    /// The fast mutex the header's filter context list is guarded by.
    header_mutex: UnsafeCell<FAST_MUTEX>,
    /// Our volume device object (its extension holds this VCB).
    pub vdo: *mut DEVICE_OBJECT,
    /// The VPB the I/O manager gave us at mount. Old file objects keep reaching this volume
    /// through it after a dismount swapped it out (NT-29); then it is ours to free.
    pub vpb: *mut VPB,
    /// The spare VPB allocated at mount, swapped in at dismount (fastfat `SwapVpb`); NULL once
    /// used.
    spare_vpb: UnsafeCell<*mut VPB>,
    /// The spare went in: `vpb` is no longer the device's and is freed with the VCB
    /// (fastfat `VCB_STATE_FLAG_VPB_MUST_BE_FREED`).
    vpb_swapped: Flag,
    /// The device our sector I/O goes to, referenced (`ObReferenceObject`) for the VCB's life.
    pub target: *mut DEVICE_OBJECT,
    /// The volume's serial number (what verify compares).
    pub serial: u64,
    /// The VCB resource (create, cleanup, close, dismount). Public for the debugger's layout
    /// test (`!cflocks` reads its owner); take it through [`Vcb::acquire_exclusive`].
    pub resource: UnsafeCell<ERESOURCE>,
    /// The volume lock around fs-core's `Volume` (innermost). Public as `resource` is.
    pub volume_lock: UnsafeCell<ERESOURCE>,
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
    /// Closes that found the VCB resource held by another thread (NT-32).
    pub close_queue: CloseQueue,
    /// The periodic commit of fs-core's metadata (NT-33).
    pub lazy_commit: LazyCommit,
    /// fs-core's overlay figures after the last volume call (for the debugger).
    pub overlay: crate::debugger::OverlayAnchor,
    /// On `CFAT_DATA`'s VCB chain from mount to teardown (for the debugger: windbg/cowfat.js).
    pub volume_links: UnsafeCell<nt::LIST_ENTRY>,
    /// The open FCBs again, linked through `Fcb::vcb_links` for the debugger; changed with the
    /// FCB table, under the VCB resource exclusive.
    pub fcb_list: UnsafeCell<nt::LIST_ENTRY>,
    /// Sweeps ([`sweep_dismounted`]) holding this VCB while they wait for its resource; it is
    /// not deleted under them. Changed under `CFAT_DATA`'s VCB chain lock.
    sweep_pins: Counter,
    /// One thread has taken the deletion of this VCB; set once, under the chain lock.
    deletion_claimed: Flag,
    /// The VCB gave its count in `CFAT_DATA`'s mounted volumes back (dismounted and unused:
    /// only the delete, or the sweep, is left of it).
    released: Flag,
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

    /// Enters a new FCB in the table and on the VCB's FCB chain.
    ///
    /// # Errors
    /// Out of memory for the table's entry: the FCB is in neither.
    ///
    /// # Safety
    /// `fcb` is a live FCB of this volume, in neither.
    pub unsafe fn insert_fcb(&self, id: fs_core::FileId, fcb: *mut Fcb) -> fs_core::Result<()> {
        self.with_fcbs(|t| t.insert(id.0, fcb))?;
        // SAFETY: the caller's contract; only a field address is taken.
        let links = unsafe { (*fcb).vcb_links.get() };
        // SAFETY: a live FCB on no chain; the chain is changed under the VCB resource
        // exclusive, held by this guard.
        unsafe { insert_tail_list(self.vcb.fcb_list.get(), links) };
        Ok(())
    }

    /// Takes an FCB out of the table and off the chain (before it is freed).
    pub fn remove_fcb(&self, id: fs_core::FileId) {
        if let Some(fcb) = self.with_fcbs(|t| t.remove(&id.0)) {
            // SAFETY: a live FCB entered by `insert_fcb`; only a field address is taken.
            let links = unsafe { (*fcb).vcb_links.get() };
            // SAFETY: on this VCB's chain; the VCB resource is held exclusive.
            unsafe { remove_entry_list(links) };
        }
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
    /// `slot` is the (uninitialised, suitably aligned, non-paged) device extension of `vdo`;
    /// `spare_vpb` a zeroed pool VPB (tag `CfVp`) the VCB now owns, on failure too.
    pub unsafe fn init_in_place(
        slot: *mut Vcb,
        vdo: *mut DEVICE_OBJECT,
        (vpb, spare_vpb): (*mut VPB, *mut VPB),
        target: *mut DEVICE_OBJECT,
        volume: Boxed<Volume<TargetDevice>>,
    ) -> Result<(), NTSTATUS> {
        let serial = match volume.try_volume_info() {
            Ok(info) => info.serial,
            Err(e) => {
                // SAFETY: the spare is ours and unused.
                unsafe { free_spare_vpb(spare_vpb) };
                return Err(status_of(&e));
            }
        };
        // Both work items now, so neither a close nor the lazy commit ever needs pool later.
        // SAFETY: our new volume device.
        let close_item = unsafe { nt::IoAllocateWorkItem(vdo) };
        // SAFETY: as above.
        let commit_item = unsafe { nt::IoAllocateWorkItem(vdo) };
        if close_item == 0 || commit_item == 0 {
            for item in [close_item, commit_item] {
                if item != 0 {
                    // SAFETY: allocated above, never queued.
                    unsafe { nt::IoFreeWorkItem(item) };
                }
            }
            // SAFETY: the spare is ours and unused.
            unsafe { free_spare_vpb(spare_vpb) };
            return Err(nt::STATUS_INSUFFICIENT_RESOURCES);
        }
        let vcb = Vcb {
            header: UnsafeCell::new(FSRTL_ADVANCED_FCB_HEADER::default()),
            header_mutex: UnsafeCell::new(FAST_MUTEX::default()),
            vdo,
            vpb,
            spare_vpb: UnsafeCell::new(spare_vpb),
            vpb_swapped: Flag::new(false),
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
            close_queue: CloseQueue::new(close_item),
            lazy_commit: LazyCommit::new(commit_item),
            overlay: crate::debugger::OverlayAnchor::default(),
            volume_links: UnsafeCell::new(nt::LIST_ENTRY::default()),
            fcb_list: UnsafeCell::new(nt::LIST_ENTRY::default()),
            sweep_pins: Counter::new(0),
            deletion_claimed: Flag::new(false),
            released: Flag::new(false),
        };
        // SAFETY: the caller's contract: `slot` is ours and writable.
        unsafe { ptr::write(slot, vcb) };
        // SAFETY: `slot` now holds an initialised VCB.
        let vcb = unsafe { &*slot };
        // SAFETY: nobody sees the VCB yet; the header and mutex are non-paged (the device
        // extension) and live as long as it.
        unsafe { vcb.init_header() };
        // SAFETY: non-paged, not yet used.
        let status = unsafe { nt::ExInitializeResourceLite(vcb.resource.get()) };
        if status < 0 {
            free_work_items(vcb);
            // SAFETY: the spare is ours and unused.
            unsafe { free_spare_vpb(spare_vpb) };
            // SAFETY: initialised above, dropped once.
            unsafe { ptr::drop_in_place(slot) };
            return Err(status);
        }
        // SAFETY: as above.
        let status = unsafe { nt::ExInitializeResourceLite(vcb.volume_lock.get()) };
        if status < 0 {
            // SAFETY: initialised above and never acquired.
            unsafe { nt::ExDeleteResourceLite(vcb.resource.get()) };
            free_work_items(vcb);
            // SAFETY: the spare is ours and unused.
            unsafe { free_spare_vpb(spare_vpb) };
            // SAFETY: initialised above, dropped once.
            unsafe { ptr::drop_in_place(slot) };
            return Err(status);
        }
        // The target device must outlive the VCB, whatever PnP does to it (NT-29).
        // SAFETY: the live device the mount was asked for.
        unsafe { nt::ObfReferenceObject(target.cast_const().cast()) };
        // SAFETY: the VCB's own list head, in non-paged device extension memory.
        unsafe { crate::wdk_inline::initialize_list_head(vcb.dir_notify_list.get()) };
        // SAFETY: the VCB's own sync slot; uninitialised in `delete`.
        unsafe { nt::FsRtlNotifyInitializeSync(vcb.notify_sync.get()) };
        // SAFETY: the VCB is in place in the device extension until deleted.
        unsafe { lazycommit::init(vcb) };
        // SAFETY: the VCB's own list head, in non-paged device extension memory.
        unsafe { crate::wdk_inline::initialize_list_head(vcb.fcb_list.get()) };
        // SAFETY: the VCB lives in its device extension until `delete` unlinks it.
        unsafe { crate::global::CFAT_DATA.link_vcb(vcb.volume_links.get()) };
        Ok(())
    }

    /// The volume header (NT-31): node type code and size, advanced, filter contexts.
    ///
    /// # Safety
    /// Called once, before anyone else sees the VCB.
    unsafe fn init_header(&self) {
        let header = self.header.get();
        // SAFETY: exclusive access during setup (caller's contract).
        let base = unsafe { &mut (*header).Base };
        base.NodeTypeCode = ntc::CFAT_NTC_VCB;
        base.NodeByteSize = node_byte_size::<Vcb>();
        let mutex = self.header_mutex.get();
        // SAFETY: the VCB's own mutex, non-paged.
        unsafe { crate::wdk_inline::ex_initialize_fast_mutex(mutex) };
        // SAFETY: the header is first in the non-paged VCB; the mutex lives as long as it.
        unsafe {
            crate::wdk_inline::fsrtl_setup_advanced_fcb_header(header, mutex, ptr::null_mut())
        };
    }

    /// fastfat's `FatSwapVpb`: gives the real device our spare VPB, so the next mount gets a
    /// fresh one while this volume's file objects keep reaching us through the old one, which
    /// is then ours to free. Keeps `VPB_REMOVE_PENDING` (no remount during a PnP removal).
    /// Does nothing if already done, or if the device has another VPB already.
    ///
    /// # Safety
    /// The caller holds the VCB resource exclusive.
    pub unsafe fn swap_vpb(&self) {
        let old = self.vpb;
        // SAFETY: our VPB lives until the VCB is deleted; RealDevice is the live disk.
        let real = unsafe { (*old).RealDevice };
        // SAFETY: as above.
        let still_ours = !real.is_null() && unsafe { (*real).Vpb } == old;
        // SAFETY: under the VCB resource (caller's contract).
        let spare = unsafe { &mut *self.spare_vpb.get() };
        if self.vpb_swapped.get() || !still_ours || spare.is_null() {
            return;
        }
        let fresh = VPB {
            Type: IO_TYPE_VPB,
            Size: core::mem::size_of::<VPB>() as i16,
            RealDevice: real,
            // SAFETY: our VPB, as above.
            Flags: unsafe { (*old).Flags } & nt::VPB_REMOVE_PENDING as u16,
            ..VPB::default()
        };
        // SAFETY: the spare is our pool block of VPB size, not yet known to anyone.
        unsafe { spare.write(fresh) };
        // SAFETY: the real device's VPB pointer; the I/O manager reads it under its VPB lock,
        // which the model does not need (a single thread swaps).
        unsafe { (*real).Vpb = *spare };
        *spare = ptr::null_mut();
        self.vpb_swapped.set(true);
    }

    /// The owner recorded for a lock a PnP query-remove takes (fastfat locks with no file
    /// object): the address of the lock field itself, never a file object's.
    #[must_use]
    pub fn pnp_lock_owner(&self) -> *mut nt::FILE_OBJECT {
        self.locked_by.get().cast()
    }

    /// The node type code at the start of the VCB (and of a volume open's `FsContext`).
    #[must_use]
    pub fn node_type_code(&self) -> crate::strucsup::NodeTypeCode {
        // SAFETY: written once at mount; never changed after.
        unsafe { (*self.header.get()).Base.NodeTypeCode }
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
        (vcb.node_type_code() == ntc::CFAT_NTC_VCB).then_some(vcb)
    }

    /// Takes the VCB resource exclusive if that needs no wait (a close, NT-32).
    #[must_use]
    pub fn try_acquire_exclusive(&self) -> Option<VcbExclusive<'_>> {
        // SAFETY: initialised with the VCB.
        let guard = unsafe { ResourceGuard::try_exclusive(self.resource.get()) }?;
        Some(VcbExclusive {
            vcb: self,
            _guard: guard,
        })
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
        refresh_overlay_anchor(&self.overlay, volume);
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

    /// Does the VCB go now, and is it this caller's to delete? Dismounted, unused, no worker
    /// of it (deferred close, lazy commit) queued or running, and no create the I/O manager
    /// has counted on the VPB but not yet sent (fastfat's `FatCheckForDismount`): the VPB's
    /// reference count must be down to zero. True hands the deletion to the caller (the one
    /// that sees it under the VCB resource; never two): it must call [`Vcb::delete`] once its
    /// guard is gone.
    #[must_use]
    pub fn claim_deletion(&self, guard: &VcbExclusive<'_>) -> bool {
        self.claim_deletion_with(guard, 0)
    }

    /// `claim_deletion`, with `residual` VPB references the caller accounts for (a failing
    /// create's own file object, which the I/O manager drops after the create returns).
    ///
    /// A VCB that is dismounted, unused and idle but still counted on the VPB is left to the
    /// sweep: those references are a failing create's that has not returned to the I/O
    /// manager yet (it may already have looked, and seen the volume handle still open), and
    /// their drop calls nothing of ours. It stops counting as mounted, so the unload routine
    /// is back, and the next mount or the unload deletes it ([`sweep_dismounted`]).
    #[must_use]
    pub fn claim_deletion_with(&self, guard: &VcbExclusive<'_>, residual: u32) -> bool {
        if !self.finished(guard) {
            return false;
        }
        self.release_mount_count();
        // A sweep holding the VCB deletes it itself, once it has the resource.
        self.claim(false, self.vpb_references() == residual)
    }

    /// Dismounted, unused, and no worker of it queued or running: nothing of the driver's
    /// will come for the VCB again (the VPB's count aside).
    fn finished(&self, guard: &VcbExclusive<'_>) -> bool {
        self.dismounted.get()
            && self.is_unused(guard)
            && !self.close_queue.busy()
            && !self.lazy_commit.busy()
    }

    /// Under the chain lock: drops a sweep's pin if `unpin`, then, if `deletable`, takes the
    /// deletion unless a sweep holds the VCB or somebody took it before.
    fn claim(&self, unpin: bool, deletable: bool) -> bool {
        crate::global::CFAT_DATA.with_vcb_list(|_| {
            if unpin {
                self.sweep_pins.set(self.sweep_pins.get().saturating_sub(1));
            }
            let mine = deletable && self.sweep_pins.get() == 0 && !self.deletion_claimed.get();
            if mine {
                self.deletion_claimed.set(true);
            }
            mine
        })
    }

    /// Gives the VCB's count of mounted volumes back, once.
    fn release_mount_count(&self) {
        if !self.released.swap(true) {
            crate::global::CFAT_DATA.volume_dismounted();
        }
    }

    /// The VPB's `ReferenceCount`: file objects the I/O manager opened (or is opening)
    /// through it. Once dismounted, no new create can count itself on our VPB (it was swapped
    /// out, or no longer mounted), so the count only falls and a read of it is final.
    fn vpb_references(&self) -> u32 {
        // SAFETY: our VPB lives until the VCB is deleted; only a field address is taken.
        let count = unsafe { &raw const (*self.vpb).ReferenceCount };
        // SAFETY: as above; an aligned ULONG read.
        unsafe { count.read_volatile() }
    }

    /// Tears down a dismounted, unused VCB and deletes its volume device object.
    ///
    /// # Safety
    /// Called once, by the thread [`Vcb::claim_deletion_with`] gave the deletion to, with no
    /// guard of this VCB alive; the VCB is not used again.
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
        // SAFETY: valid until dropped below. Dismount stopped the timer and flushed its DPC;
        // neither work item is queued (`claim_deletion`).
        free_work_items(unsafe { &*vcb });
        // SAFETY: valid until dropped below.
        let this = unsafe { &*vcb };
        // SAFETY: no one else uses the VCB any more.
        let spare = unsafe { *this.spare_vpb.get() };
        let (vpb, swapped, target) = (this.vpb, this.vpb_swapped.get(), this.target);
        if swapped && this.vpb_references() == 0 {
            // SAFETY: the VPB we swapped out: no file object references it any more (this
            // was the volume's last close), and the device has our spare.
            unsafe { nt::ExFreePool(vpb.cast()) };
        } else if swapped {
            // A failing create still counts itself on it: the I/O manager frees a VPB that
            // is no longer the device's and names no volume when that last reference goes.
            // SAFETY: the swapped-out VPB, alive while referenced.
            unsafe { (*vpb).DeviceObject = ptr::null_mut() };
        } else {
            // The VPB stays the device's: it no longer names our device (fastfat clears
            // `Vpb->DeviceObject` before deleting the VCB).
            // SAFETY: the device's VPB, alive with it.
            unsafe { (*vpb).DeviceObject = ptr::null_mut() };
        }
        // SAFETY: ours if never swapped in.
        unsafe { free_spare_vpb(spare) };
        // SAFETY: the reference taken at mount, dropped once.
        unsafe { nt::ObfDereferenceObject(target.cast_const().cast()) };
        // Filters' contexts on the volume open's header go before the header does (NT-31).
        // SAFETY: the header was set up at mount and is still live.
        unsafe { nt::FsRtlTeardownPerStreamContexts(this.header.get()) };
        // SAFETY: initialised with the VCB, not held by anyone.
        unsafe { nt::ExDeleteResourceLite(resource) };
        // SAFETY: as above.
        unsafe { nt::ExDeleteResourceLite(volume_lock) };
        // SAFETY: valid until dropped below; only a field address is taken.
        let links = unsafe { (*vcb).volume_links.get() };
        // SAFETY: linked in `init_in_place`; no FCB is left on its own chain.
        unsafe { crate::global::CFAT_DATA.unlink_vcb(links) };
        let released = this.released.get();
        // SAFETY: initialised in `init_in_place`, dropped once.
        unsafe { ptr::drop_in_place(vcb) };
        // SAFETY: our volume device; nothing references it any more.
        unsafe { nt::IoDeleteDevice(vdo) };
        if !released {
            crate::global::CFAT_DATA.volume_dismounted();
        }
    }
}

/// fastfat's `FatScanForDismountedVcb`: deletes the dismounted VCBs that were left waiting
/// for the VPB's reference count (see [`Vcb::claim_deletion_with`]) and whose count has
/// dropped since. The mount path and the unload routine run it, at PASSIVE_LEVEL with no
/// lock held. Each candidate is pinned on the chain, so no other path deletes it while the
/// sweep waits for its resource; the decision is then made under that resource, as
/// everywhere else. Bounded by the chain's length when it starts.
pub fn sweep_dismounted() {
    let data = &crate::global::CFAT_DATA;
    let mut budget = data.with_vcb_list(|head| {
        let mut n = 0usize;
        // SAFETY: the chain under its lock: every entry is a live VCB's `volume_links`.
        let mut entry = unsafe { (*head).Flink };
        while !ptr::eq(entry, head) {
            n += 1;
            // SAFETY: as above.
            entry = unsafe { (*entry).Flink };
        }
        n
    });
    // The unload routine is not inside the file system yet (ERESOURCEs want APCs off).
    crate::wdk_inline::fsrtl_enter_file_system();
    while budget > 0 {
        budget -= 1;
        let Some(vcb) = data.with_vcb_list(pin_sweep_candidate) else {
            break;
        };
        // SAFETY: pinned: no path deletes the VCB while the pin is held.
        let vcb = unsafe { &*vcb };
        let mine = {
            let guard = vcb.acquire_exclusive();
            let deletable = vcb.finished(&guard) && vcb.vpb_references() == 0;
            vcb.claim(true, deletable)
        };
        if mine {
            // SAFETY: claimed above under the resource: dismounted, unused, idle, no VPB
            // reference left; the guard is gone and `vcb` is not used again.
            unsafe { Vcb::delete(ptr::from_ref(vcb).cast_mut()) };
        }
    }
    crate::wdk_inline::fsrtl_exit_file_system();
}

/// Under the chain lock: the first VCB left to the sweep whose VPB count has dropped to
/// zero, that nobody is deleting or sweeping; pinned.
fn pin_sweep_candidate(head: *mut nt::LIST_ENTRY) -> Option<*mut Vcb> {
    let offset = core::mem::offset_of!(Vcb, volume_links);
    // SAFETY: the chain under its lock (the caller's): every entry is a live VCB's links.
    let mut entry = unsafe { (*head).Flink };
    while !ptr::eq(entry, head) {
        // SAFETY: `volume_links` is a field of a live VCB: stepping back by its offset gives
        // that VCB.
        let vcb = unsafe { entry.byte_sub(offset) }.cast::<Vcb>();
        // SAFETY: a live VCB on the chain.
        let this = unsafe { &*vcb };
        if this.released.get()
            && !this.deletion_claimed.get()
            && this.sweep_pins.get() == 0
            && this.vpb_references() == 0
        {
            this.sweep_pins.set(1);
            return Some(vcb);
        }
        // SAFETY: as above.
        entry = unsafe { (*entry).Flink };
    }
    None
}

/// Frees the VCB's two work items (mount failure, teardown).
fn free_work_items(vcb: &Vcb) {
    for item in [vcb.close_queue.item(), vcb.lazy_commit.item()] {
        // SAFETY: allocated at mount, not queued, freed once.
        unsafe { nt::IoFreeWorkItem(item) };
    }
}

/// `IO_TYPE_VPB`.
const IO_TYPE_VPB: i16 = 10;

/// Allocates the spare VPB a mount keeps for its dismount (zeroed, non-paged).
///
/// # Errors
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub fn allocate_spare_vpb() -> Result<*mut VPB, NTSTATUS> {
    // SAFETY: no preconditions at PASSIVE_LEVEL.
    let raw = unsafe {
        nt::ExAllocatePool2(
            nt::pool_flags::POOL_FLAG_NON_PAGED,
            core::mem::size_of::<VPB>(),
            crate::strucsup::tags::TAG_VPB,
        )
    };
    let vpb = raw.cast::<VPB>();
    if vpb.is_null() {
        return Err(nt::STATUS_INSUFFICIENT_RESOURCES);
    }
    Ok(vpb)
}

/// Frees a spare VPB that was never swapped in (NULL: nothing to do).
///
/// # Safety
/// `spare` is NULL or from [`allocate_spare_vpb`], not swapped in, freed once.
pub unsafe fn free_spare_vpb(spare: *mut VPB) {
    if !spare.is_null() {
        // SAFETY: the caller's contract.
        unsafe { nt::ExFreePoolWithTag(spare.cast(), crate::strucsup::tags::TAG_VPB) };
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

/// The debugger's copy of the overlay figures, after a volume call; out of line so the figures
/// do not sit in `with_volume`'s frame, which is on the deepest stack paths (NT-23).
#[inline(never)]
fn refresh_overlay_anchor(anchor: &crate::debugger::OverlayAnchor, volume: &Volume<TargetDevice>) {
    anchor.refresh(&volume.overlay_summary());
}
