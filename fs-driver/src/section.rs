//! Sections and the mapped state of a stream (NT-06 .. NT-12).
//!
//! The FS never sees a view being mapped or unmapped (NT-07). What it knows comes from four
//! places only, and this module is where they are put together:
//! - the section-synchronisation callback (NT-06), which counts the sections created on the
//!   stream ([`note_section_created`]);
//! - `MmDoesFileHaveUserWritableReferences` (writable user sections and views);
//! - the `CcIsFileCached` test (a shared cache map exists);
//! - a real `CcPurgeCacheSection`, which fails while a user view maps the stream (NT-08).
//!
//! A non-NULL `DataSectionObject` only says that a control area exists; it is reported, never
//! used to conclude "mapped". The checks for set-information (disposition, rename-over,
//! truncation: NT-09, NT-10) are here too, for `fileinfo` to call.

use cowfat_fsctl::{
    MappedState, MAPPED_CACHED, MAPPED_DATA_SECTION, MAPPED_IMAGE_SECTION, MAPPED_PURGE_PROBED,
    MAPPED_VIEWS_GONE, SUMMARY_CACHED_ONLY, SUMMARY_MAPPED_READ_ONLY, SUMMARY_MAPPED_WRITABLE,
    SUMMARY_MAYBE_MAPPED, SUMMARY_NOT_MAPPED,
};
use zerocopy::little_endian::U32;

use crate::cachesup::{flush, purge};
use crate::fcb::Fcb;
use crate::nt::{self, FILE_OBJECT, NTSTATUS};
use crate::strucsup::Counter;

/// What the section callbacks have told us about a stream (kept in its FCB). Counts are of
/// sections *created*: Mm does not say when they go, so they are reset only when the control
/// area (or image section) is seen gone, or a purge proves no view is left.
#[derive(Debug, Default)]
pub struct SectionTracking {
    /// Data sections created since the control area appeared.
    pub data_sections: Counter,
    /// Of which writable.
    pub writable_sections: Counter,
    /// Image sections created since the image section appeared.
    pub image_sections: Counter,
    /// `PageProtection` of the last section creation.
    pub last_protection: Counter,
    /// `FSCTL_SET_PURGE_FAILURE_MODE` count (NT-12): enabled while non-zero.
    pub purge_failure_mode: Counter,
}

impl SectionTracking {
    fn forget_data_sections(&self) {
        self.data_sections.set(0);
        self.writable_sections.set(0);
    }
}

fn bump(counter: &Counter) {
    counter.set(counter.get().saturating_add(1));
}

/// The section-sync callback saw `SyncTypeCreateSection` (NT-06). Called with the main
/// resource held exclusive, before Mm creates or reuses the section.
pub fn note_section_created(
    fcb: &Fcb,
    protection: u32,
    allocation_attributes: u32,
    writable: bool,
) {
    let sop = fcb.section_object_pointers();
    let tracking = &fcb.sections;
    tracking.last_protection.set(protection);
    if allocation_attributes & nt::SEC_IMAGE != 0 {
        // SAFETY: the FCB's SOP; Mm writes the field, we read it.
        if unsafe { (*sop).ImageSectionObject }.is_null() {
            tracking.image_sections.set(0);
        }
        bump(&tracking.image_sections);
        return;
    }
    // SAFETY: as above.
    if unsafe { (*sop).DataSectionObject }.is_null() {
        // A new control area: the sections counted before went with the old one.
        tracking.forget_data_sections();
    }
    bump(&tracking.data_sections);
    if writable {
        bump(&tracking.writable_sections);
    }
}

/// `MmDoesFileHaveUserWritableReferences` for the stream.
#[must_use]
pub fn writable_user_references(fcb: &Fcb) -> u32 {
    // SAFETY: the FCB's SOP, valid while the FCB is.
    unsafe { nt::MmDoesFileHaveUserWritableReferences(fcb.section_object_pointers()) }
}

fn data_section_exists(fcb: &Fcb) -> bool {
    // SAFETY: the FCB's SOP; Mm writes the field, we only read it.
    !unsafe { (*fcb.section_object_pointers()).DataSectionObject }.is_null()
}

fn image_section_exists(fcb: &Fcb) -> bool {
    // SAFETY: as above.
    !unsafe { (*fcb.section_object_pointers()).ImageSectionObject }.is_null()
}

/// The answer to `FSCTL_COWFAT_QUERY_MAPPED_STATE`. With `probe`, the stream is flushed and
/// purged for real: if the purge succeeds no user view is left (and Mm may delete the
/// segment, closing its file object: NT-04), if it fails one is. The caller holds the FCB's
/// main resource exclusive and a reference on the FCB (its request's file object).
///
/// # Safety
/// `file_object` is a valid file object of `fcb`'s stream.
#[must_use]
pub unsafe fn mapped_state(file_object: *const FILE_OBJECT, fcb: &Fcb, probe: bool) -> MappedState {
    let tracking = &fcb.sections;
    let mut flags = 0;
    let mut probe_result = None;
    if probe && data_section_exists(fcb) {
        let _ = flush(fcb, None);
        let purged = purge(fcb, None, 0);
        if purged {
            tracking.forget_data_sections();
        } else {
            bump(&fcb.purge_failures);
        }
        flags |= MAPPED_PURGE_PROBED | if purged { MAPPED_VIEWS_GONE } else { 0 };
        probe_result = Some(purged);
    }
    let data = data_section_exists(fcb);
    if !data {
        tracking.forget_data_sections();
    }
    if !image_section_exists(fcb) {
        tracking.image_sections.set(0);
    } else {
        flags |= MAPPED_IMAGE_SECTION;
    }
    // SAFETY: the caller's contract.
    let cached = unsafe { crate::wdk_inline::cc_is_file_cached(file_object) };
    flags |= if data { MAPPED_DATA_SECTION } else { 0 } | if cached { MAPPED_CACHED } else { 0 };
    let writable = writable_user_references(fcb);
    let summary = if writable != 0 {
        SUMMARY_MAPPED_WRITABLE
    } else if probe_result == Some(false) {
        SUMMARY_MAPPED_READ_ONLY
    } else if tracking.data_sections.get() != 0 {
        SUMMARY_MAYBE_MAPPED
    } else if data || cached {
        SUMMARY_CACHED_ONLY
    } else {
        SUMMARY_NOT_MAPPED
    };
    MappedState {
        flags: U32::new(flags),
        summary: U32::new(summary),
        writable_user_references: U32::new(writable),
        data_sections: U32::new(tracking.data_sections.get()),
        writable_sections: U32::new(tracking.writable_sections.get()),
        image_sections: U32::new(tracking.image_sections.get()),
        purge_failure_mode: U32::new(tracking.purge_failure_mode.get()),
        purge_failures: U32::new(fcb.purge_failures.get()),
        last_section_protection: U32::new(tracking.last_protection.get()),
        reserved: U32::new(0),
    }
}

/// `FSCTL_SET_PURGE_FAILURE_MODE` (NT-12): counted per stream, as filter manager may send it
/// for several data-scan sections.
///
/// # Errors
/// `STATUS_INVALID_PARAMETER` for other flags or a disable without an enable.
pub fn set_purge_failure_mode(fcb: &Fcb, flags: u32) -> Result<(), NTSTATUS> {
    let mode = &fcb.sections.purge_failure_mode;
    match flags {
        nt::SET_PURGE_FAILURE_MODE_ENABLED => bump(mode),
        nt::SET_PURGE_FAILURE_MODE_DISABLED if mode.get() > 0 => mode.set(mode.get() - 1),
        _ => return Err(nt::STATUS_INVALID_PARAMETER),
    }
    Ok(())
}

/// Is purge-failure mode on (NT-12)?
#[must_use]
pub fn purge_failure_mode(fcb: &Fcb) -> bool {
    fcb.sections.purge_failure_mode.get() != 0
}

/// A purge needed by an operation failed because of a user mapping: counted; with
/// purge-failure mode on the operation must fail with `STATUS_PURGE_FAILED` (NT-12),
/// otherwise it goes on (NT-17).
///
/// # Errors
/// `STATUS_PURGE_FAILED` in purge-failure mode.
pub fn purge_failed(fcb: &Fcb) -> Result<(), NTSTATUS> {
    bump(&fcb.purge_failures);
    if purge_failure_mode(fcb) {
        return Err(nt::STATUS_PURGE_FAILED);
    }
    Ok(())
}

/// NT-10: may the stream shrink to `new_size`? (EOF, allocation size, overwrite, supersede.)
///
/// # Errors
/// `STATUS_USER_MAPPED_FILE` while a mapping covers the part that would go.
pub fn check_truncate(fcb: &Fcb, new_size: u64) -> Result<(), NTSTATUS> {
    let size = i64::try_from(new_size).map_err(|_| nt::STATUS_INVALID_PARAMETER)?;
    // SAFETY: the FCB's SOP and a valid size.
    if unsafe { nt::MmCanFileBeTruncated(fcb.section_object_pointers(), &size) } {
        Ok(())
    } else {
        Err(nt::STATUS_USER_MAPPED_FILE)
    }
}

/// NT-09 for set-disposition (delete): the image section must go first.
///
/// # Errors
/// `STATUS_CANNOT_DELETE` while an image section is mapped.
pub fn check_delete(fcb: &Fcb) -> Result<(), NTSTATUS> {
    if flush_image(fcb, nt::MmFlushForDelete) {
        Ok(())
    } else {
        Err(nt::STATUS_CANNOT_DELETE)
    }
}

/// NT-09 for the target of a rename that replaces an existing file (fastfat `fileinfo.c`
/// answers `STATUS_ACCESS_DENIED` there).
///
/// # Errors
/// `STATUS_ACCESS_DENIED` while the target has a mapped image section.
pub fn check_rename_target(fcb: &Fcb) -> Result<(), NTSTATUS> {
    if flush_image(fcb, nt::MmFlushForDelete) {
        Ok(())
    } else {
        Err(nt::STATUS_ACCESS_DENIED)
    }
}

/// NT-09 for an open for write: `MmFlushImageSection(MmFlushForWrite)`.
///
/// # Errors
/// `STATUS_SHARING_VIOLATION` while an image section is mapped.
pub fn check_open_for_write(fcb: &Fcb) -> Result<(), NTSTATUS> {
    if flush_image(fcb, nt::MmFlushForWrite) {
        Ok(())
    } else {
        Err(nt::STATUS_SHARING_VIOLATION)
    }
}

/// NT-11: an open that denies write sharing while writable user references exist.
///
/// # Errors
/// `STATUS_SHARING_VIOLATION`.
pub fn check_deny_write(fcb: &Fcb) -> Result<(), NTSTATUS> {
    if writable_user_references(fcb) == 0 {
        Ok(())
    } else {
        Err(nt::STATUS_SHARING_VIOLATION)
    }
}

/// `MmFlushImageSection` with one `MMFLUSH_TYPE` (an enum, not a mask: NT-09's text is wrong
/// there).
fn flush_image(fcb: &Fcb, kind: nt::MMFLUSH_TYPE) -> bool {
    // SAFETY: the FCB's SOP, valid while the FCB is.
    unsafe { nt::MmFlushImageSection(fcb.section_object_pointers(), kind) }
}
