//! FsRtl's directory change notification package (NT-22, seed 002):
//! `FsRtlNotifyInitializeSync` / `UninitializeSync`, `FsRtlNotifyFullChangeDirectory`,
//! `FsRtlNotifyFullReportChange`, `FsRtlNotifyCleanup`.
//!
//! One watch per `FsContext` (the file system passes its CCB) on a notify list (the file
//! system's `LIST_ENTRY`, used here only as a key). A report completes the oldest pended IRP
//! of every matching watch at once; with none pended, records are buffered up to the length
//! of the watch's last IRP and the next IRP takes them; beyond that the watch overflows and
//! the next IRP completes with `STATUS_NOTIFY_ENUM_DIR` and no data.
//!
//! Completion with data always goes through a new system buffer, as FsRtl does for an IRP it
//! completes outside the caller's context (seed 002): a pool block in `AssociatedIrp
//! .SystemBuffer`, `IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER | IRP_INPUT_OPERATION`; the I/O
//! manager ([`crate::io`]) copies it to the caller's buffer and frees it.
//!
//! Deleting a watched directory: a `FILE_ACTION_REMOVED` report whose full target name is a
//! watched directory, or `FsRtlNotifyFullChangeDirectory` with a NULL IRP for the watch's
//! `FsContext`, completes its IRPs (now and later) with `STATUS_DELETE_PENDING`.
//! Stricter than Windows: names compare case-insensitively by simple upcasing (ntsim has no
//! upcase table), `IgnoreBuffer`, traverse callbacks and stream names are not modelled.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use std::collections::VecDeque;
use std::ffi::c_void;
use std::ptr;

use windows_sys::Wdk::Foundation::{IRP, PNOTIFY_SYNC, SECURITY_SUBJECT_CONTEXT};
use windows_sys::Wdk::Storage::FileSystem::PCHECK_FOR_TRAVERSE_ACCESS;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_DELETE_PENDING, STATUS_NOTIFY_CLEANUP, STATUS_NOTIFY_ENUM_DIR, STATUS_SUCCESS,
};
use windows_sys::Win32::System::Kernel::{LIST_ENTRY, STRING};

use crate::ex::bugcheck;
use crate::kernel;

/// Pool tag of a notify sync (`FsNs`).
pub const NOTIFY_SYNC_TAG: u32 = u32::from_le_bytes(*b"FsNs");
/// Pool tag of a new system buffer for a notify completion (`FsNb`).
pub const NOTIFY_BUFFER_TAG: u32 = u32::from_le_bytes(*b"FsNb");
/// `IRP_BUFFERED_IO | IRP_DEALLOCATE_BUFFER | IRP_INPUT_OPERATION`.
pub const NEW_SYSTEM_BUFFER_FLAGS: u32 = 0x10 | 0x20 | 0x40;
const FILE_ACTION_REMOVED: u32 = 2;
const POOL_FLAG_NON_PAGED: u64 = 0x40;
const SL_PENDING_RETURNED: u8 = 1;

/// One watch (one directory handle's notify state).
#[derive(Debug)]
pub struct Watch {
    fs_context: usize,
    dir: Vec<u16>,
    watch_tree: bool,
    filter: u32,
    irps: VecDeque<(*mut IRP, usize)>,
    buffered: Vec<(u32, Vec<u16>)>,
    buffered_bytes: usize,
    buffer_limit: usize,
    overflow: bool,
    delete_pending: bool,
}

fn upcase(units: &[u16]) -> Vec<u16> {
    units.iter().map(|&u| crate::name::upcase_unit(u)).collect()
}

/// The units of a counted string the file system passes (a UNICODE_STRING cast to STRING, as
/// fastfat does).
unsafe fn units_of(s: *const STRING) -> Vec<u16> {
    if s.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller's string.
    let s = unsafe { &*s };
    if s.Buffer.is_null() || s.Length == 0 {
        return Vec::new();
    }
    // SAFETY: `Length` bytes of UTF-16 at `Buffer`.
    unsafe { std::slice::from_raw_parts(s.Buffer.cast::<u16>(), usize::from(s.Length / 2)) }
        .to_vec()
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlNotifyInitializeSync(notifysync: *mut PNOTIFY_SYNC) {
    let _kernel = crate::heap::KernelRegion::enter();
    let block = crate::ex::allocate_pool(POOL_FLAG_NON_PAGED, 64, NOTIFY_SYNC_TAG);
    if block.is_null() {
        bugcheck("FsRtlNotifyInitializeSync: no pool");
    }
    // SAFETY: the caller's out pointer.
    unsafe { notifysync.write(block as PNOTIFY_SYNC) };
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlNotifyUninitializeSync(notifysync: *mut PNOTIFY_SYNC) {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's sync pointer.
    let block = unsafe { *notifysync };
    if block == 0 {
        return;
    }
    // SAFETY: allocated by FsRtlNotifyInitializeSync with this tag.
    unsafe { crate::ex::ExFreePoolWithTag(block as *mut c_void, NOTIFY_SYNC_TAG) };
    // SAFETY: as above.
    unsafe { notifysync.write(0) };
}

fn check_sync(sync: PNOTIFY_SYNC) {
    let live = kernel::with(|k| k.pool.get(&(sync as usize)).map(|b| b.tag));
    if live != Some(NOTIFY_SYNC_TAG) {
        bugcheck("notify call with a NOTIFY_SYNC that FsRtlNotifyInitializeSync did not make");
    }
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlNotifyFullChangeDirectory(
    notifysync: PNOTIFY_SYNC,
    notifylist: *const LIST_ENTRY,
    fscontext: *const c_void,
    fulldirectoryname: *mut STRING,
    watchtree: bool,
    _ignorebuffer: bool,
    completionfilter: u32,
    notifyirp: *const IRP,
    _traversecallback: PCHECK_FOR_TRAVERSE_ACCESS,
    _subjectcontext: *const SECURITY_SUBJECT_CONTEXT,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    check_sync(notifysync);
    let list = notifylist as usize;
    let context = fscontext as usize;
    let irp = notifyirp.cast_mut();
    if irp.is_null() {
        // The directory is going away: complete its watchers.
        let done = kernel::with(|k| {
            let watches = k.notify_lists.entry(list).or_default();
            let mut done = Vec::new();
            for w in watches.iter_mut().filter(|w| w.fs_context == context) {
                w.delete_pending = true;
                done.extend(w.irps.drain(..).map(|(irp, _)| irp));
            }
            done
        });
        for irp in done {
            // SAFETY: a pended IRP the list owned.
            unsafe { complete(irp, STATUS_DELETE_PENDING, &[]) };
        }
        return;
    }
    // SAFETY: the FS's current stack location of the notify IRP.
    let stack = unsafe { crate::io::current_stack(irp) };
    // SAFETY: the FS's current location of the notify IRP.
    let location = unsafe { &*stack };
    // SAFETY: NotifyDirectory is the live member for IRP_MN_NOTIFY_CHANGE_DIRECTORY.
    let params = unsafe { location.Parameters.NotifyDirectory };
    let length = params.Length;
    // SAFETY: the FS's directory name.
    let dir = upcase(&unsafe { units_of(fulldirectoryname) });
    enum Now {
        Pend,
        Complete(NTSTATUS, Vec<u8>),
    }
    let now = kernel::with(|k| {
        let watches = k.notify_lists.entry(list).or_default();
        let index = match watches.iter().position(|w| w.fs_context == context) {
            Some(i) => i,
            None => {
                watches.push(Watch {
                    fs_context: context,
                    dir,
                    watch_tree: watchtree,
                    filter: completionfilter,
                    irps: VecDeque::new(),
                    buffered: Vec::new(),
                    buffered_bytes: 0,
                    buffer_limit: 0,
                    overflow: false,
                    delete_pending: false,
                });
                watches.len() - 1
            }
        };
        let w = &mut watches[index];
        w.buffer_limit = length as usize;
        if w.delete_pending {
            return Now::Complete(STATUS_DELETE_PENDING, Vec::new());
        }
        if w.overflow {
            w.overflow = false;
            return Now::Complete(STATUS_NOTIFY_ENUM_DIR, Vec::new());
        }
        if !w.buffered.is_empty() {
            let records = records(&std::mem::take(&mut w.buffered));
            w.buffered_bytes = 0;
            if records.len() > length as usize {
                return Now::Complete(STATUS_NOTIFY_ENUM_DIR, Vec::new());
            }
            return Now::Complete(STATUS_SUCCESS, records);
        }
        w.irps.push_back((irp, length as usize));
        Now::Pend
    });
    // SAFETY: IoMarkIrpPending on the FS's location: the IRP belongs to the package now and
    // the FS returns STATUS_PENDING whether it completes at once or later.
    unsafe { (*stack).Control |= SL_PENDING_RETURNED };
    match now {
        Now::Pend => {
            kernel::with(|k| k.note("FsRtlNotifyFullChangeDirectory(pended)", ptr::null()));
        }
        // SAFETY: the FS handed the IRP over.
        Now::Complete(status, data) => unsafe { complete(irp, status, &data) },
    }
}

/// `FILE_NOTIFY_INFORMATION` records, each aligned to 4 bytes, the last with
/// `NextEntryOffset` 0.
#[must_use]
pub fn records(changes: &[(u32, Vec<u16>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut last = 0;
    for (action, name) in changes {
        while out.len() % 4 != 0 {
            out.push(0);
        }
        let start = out.len();
        if start > 0 {
            let next = u32::try_from(start - last).unwrap_or(0);
            out[last..last + 4].copy_from_slice(&next.to_le_bytes());
        }
        last = start;
        out.extend(0u32.to_le_bytes());
        out.extend(action.to_le_bytes());
        out.extend(u32::try_from(name.len() * 2).unwrap_or(0).to_le_bytes());
        out.extend(name.iter().flat_map(|u| u.to_le_bytes()));
    }
    out
}

fn record_size(name: &[u16]) -> usize {
    (12 + name.len() * 2).next_multiple_of(4)
}

/// The name relative to a watch, if the change is under it.
fn relative(watch: &Watch, parent: &[u16], target: &[u16], name: &[u16]) -> Option<Vec<u16>> {
    if upcase(parent) == watch.dir {
        return Some(name.to_vec());
    }
    if !watch.watch_tree {
        return None;
    }
    let up = upcase(target);
    let root = watch.dir == [u16::from(b'\\')];
    let prefix_len = if root { 1 } else { watch.dir.len() + 1 };
    let under = up.len() > prefix_len
        && up.starts_with(&watch.dir)
        && (root || up[watch.dir.len()] == u16::from(b'\\'));
    under.then(|| target[prefix_len..].to_vec())
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlNotifyFullReportChange(
    notifysync: PNOTIFY_SYNC,
    notifylist: *const LIST_ENTRY,
    fulltargetname: *const STRING,
    targetnameoffset: u16,
    _streamname: *const STRING,
    _normalizedparentname: *const STRING,
    filtermatch: u32,
    action: u32,
    _targetcontext: *const c_void,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    check_sync(notifysync);
    // SAFETY: the FS's full target name.
    let target = unsafe { units_of(fulltargetname) };
    let offset = usize::from(targetnameoffset / 2).min(target.len());
    let name = target[offset..].to_vec();
    // The parent: everything before the last component, without its backslash (but `\`).
    let parent = if offset <= 1 {
        vec![u16::from(b'\\')]
    } else {
        target[..offset - 1].to_vec()
    };
    let list = notifylist as usize;
    let target_up = upcase(&target);
    let mut completions = Vec::new();
    kernel::with(|k| {
        k.note("FsRtlNotifyFullReportChange", ptr::null());
        let watches = k.notify_lists.entry(list).or_default();
        for w in watches.iter_mut() {
            if action == FILE_ACTION_REMOVED && w.dir == target_up {
                w.delete_pending = true;
                let irps: Vec<_> = w.irps.drain(..).map(|(irp, _)| irp).collect();
                completions.extend(irps.into_iter().map(|i| (i, STATUS_DELETE_PENDING, vec![])));
                continue;
            }
            if w.filter & filtermatch == 0 || w.delete_pending {
                continue;
            }
            let Some(rel) = relative(w, &parent, &target, &name) else {
                continue;
            };
            if let Some((irp, length)) = w.irps.pop_front() {
                if 12 + rel.len() * 2 > length {
                    completions.push((irp, STATUS_NOTIFY_ENUM_DIR, Vec::new()));
                } else {
                    completions.push((irp, STATUS_SUCCESS, records(&[(action, rel)])));
                }
                continue;
            }
            if w.overflow {
                continue;
            }
            let size = record_size(&rel);
            if w.buffered_bytes + size > w.buffer_limit {
                w.overflow = true;
                w.buffered.clear();
                w.buffered_bytes = 0;
            } else {
                w.buffered_bytes += size;
                w.buffered.push((action, rel));
            }
        }
    });
    for (irp, status, data) in completions {
        // SAFETY: pended IRPs the list owned.
        unsafe { complete(irp, status, &data) };
    }
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlNotifyCleanup(
    notifysync: PNOTIFY_SYNC,
    notifylist: *const LIST_ENTRY,
    fscontext: *const c_void,
) {
    let _kernel = crate::heap::KernelRegion::enter();
    check_sync(notifysync);
    let list = notifylist as usize;
    let context = fscontext as usize;
    let irps = kernel::with(|k| {
        let watches = k.notify_lists.entry(list).or_default();
        let mut irps = Vec::new();
        watches.retain_mut(|w| {
            if w.fs_context != context {
                return true;
            }
            irps.extend(w.irps.drain(..).map(|(irp, _)| irp));
            false
        });
        if watches.is_empty() {
            k.notify_lists.remove(&list);
        }
        irps
    });
    for irp in irps {
        // SAFETY: pended IRPs the list owned.
        unsafe { complete(irp, STATUS_NOTIFY_CLEANUP, &[]) };
    }
}

/// Completes a notify IRP; data goes through a new system buffer (seed 002).
unsafe fn complete(irp: *mut IRP, status: NTSTATUS, data: &[u8]) {
    // SAFETY: the IRP belongs to the notify package until completed.
    let irp_ref = unsafe { &mut *irp };
    if !data.is_empty() {
        let block = crate::ex::allocate_pool(POOL_FLAG_NON_PAGED, data.len(), NOTIFY_BUFFER_TAG);
        if block.is_null() {
            bugcheck("no pool for a notify system buffer");
        }
        // SAFETY: a fresh block of `data.len()` bytes.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), block.cast::<u8>(), data.len()) };
        irp_ref.AssociatedIrp.SystemBuffer = block;
        irp_ref.Flags |= NEW_SYSTEM_BUFFER_FLAGS;
    }
    irp_ref.IoStatus.Anonymous.Status = status;
    irp_ref.IoStatus.Information = data.len();
    // SAFETY: completing the IRP hands it back to the I/O manager.
    unsafe { crate::io::IofCompleteRequest(irp, 0) };
}

/// Watches still on any list (a file system that forgot `FsRtlNotifyCleanup` leaks them).
#[must_use]
pub fn live_watches() -> usize {
    kernel::with(|k| k.notify_lists.values().map(Vec::len).sum())
}
