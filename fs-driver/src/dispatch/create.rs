//! IRP_MJ_CREATE (fastfat's `create.c`).
//!
//! Opens of the file system control device (`\CowFat`, used by tools for FSCTLs); on a
//! volume: the volume open (empty name), and files and directories by path, absolute or
//! relative to a directory handle, with every create disposition, the directory/non-directory
//! and delete-on-close options, read-only attribute and share access checks, the mapped-file
//! rules NT-09 (image sections), NT-10 (truncation) and NT-11 (writable user mappings).
//! `FILE_OPEN_BY_FILE_ID` is refused (`STATUS_NOT_IMPLEMENTED`).
//!
//! `SL_OPEN_TARGET_DIRECTORY` (NT-30, fastfat's `FatOpenTargetDirectory`): the I/O manager's
//! open of a rename or link target by its full path. The parent directory is opened, the
//! final component is left in `FileObject->FileName`, and `Information` says whether it
//! names something already (`FILE_EXISTS`) or not (`FILE_DOES_NOT_EXIST`).

use alloc::vec::Vec;

use fs_core::{FileAttributes, FileId, FileInfo, FileKind, Name};

use super::{fsd_entry_point, IrpContext, Outcome};
use crate::cachesup::{has_data_section, purge, update_cc_sizes};
use crate::fcb::{Ccb, CcbKind, Fcb, FcbInit};
use crate::nt::{
    self, access, create_options as opt, disposition as disp, FILE_OBJECT, FILE_OPENED, NTSTATUS,
};
use crate::resrcsup::ResourceGuard;
use crate::section;
use crate::status::{name_status, status_of};
use crate::vcb::{Vcb, VcbExclusive};
use crate::wdk_inline::io_get_current_irp_stack_location;

fsd_entry_point!(
    /// FSD entry for `IRP_MJ_CREATE`.
    fsd_create => common_create
);

const BACKSLASH: u16 = b'\\' as u16;
const FILE_SHARE_WRITE: u32 = 0x2;

/// `IRP_MJ_CREATE`.
#[must_use]
pub fn common_create(context: &IrpContext) -> Outcome {
    if context.on_control_device {
        return create_on_control_device(context);
    }
    let Some(vcb) = context.vcb() else {
        return Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST);
    };
    if context.irp.is_null() || context.file_object.is_null() {
        return Outcome::status(nt::STATUS_INVALID_PARAMETER);
    }
    // SAFETY: a create IRP with a file object, sent by the I/O manager.
    let request = match unsafe { CreateRequest::decode(context) } {
        Ok(request) => request,
        Err(status) => return Outcome::status(status),
    };
    let guard = vcb.acquire_exclusive();
    if vcb.dismounted.get() {
        // This create may be the last thing that kept the dismounted VCB (it was counted on
        // the VPB when the volume's last close looked): it tears down, counting its own
        // reference, which the I/O manager drops after we return.
        let teardown = vcb.claim_deletion_with(&guard, 1);
        drop(guard);
        if teardown {
            // SAFETY: dismounted and unused, no worker queued, no other file object on the
            // VPB; the guard is gone and `vcb` is not used again.
            unsafe { Vcb::delete(core::ptr::from_ref(vcb).cast_mut()) };
        }
        return Outcome::status(nt::STATUS_VOLUME_DISMOUNTED);
    }
    // FSCTL_LOCK_VOLUME: nothing else opens the volume until it is unlocked.
    if super::volctrl::locked_against(vcb, context.file_object) {
        return Outcome::status(nt::STATUS_ACCESS_DENIED);
    }
    match open(vcb, &guard, &request) {
        Ok(information) => Outcome::Complete {
            status: nt::STATUS_SUCCESS,
            information,
        },
        Err(status) => Outcome::status(status),
    }
}

fn create_on_control_device(context: &IrpContext) -> Outcome {
    // SAFETY: the create stack location of a valid IRP carries a valid file object (or none).
    if unsafe { names_something_below(context.file_object) } {
        // There is no namespace under the control device.
        return Outcome::status(nt::STATUS_OBJECT_NAME_INVALID);
    }
    Outcome::Complete {
        status: nt::STATUS_SUCCESS,
        information: FILE_OPENED,
    }
}

/// Does the open name a path below the device (`\CowFat\x`) rather than the device itself?
///
/// # Safety
/// `file_object` is NULL or a valid file object.
unsafe fn names_something_below(file_object: *const FILE_OBJECT) -> bool {
    if file_object.is_null() {
        return false;
    }
    // SAFETY: valid file object per the caller.
    let name_length = unsafe { (*file_object).FileName.Length };
    name_length != 0
}

/// Where a relative open starts.
#[derive(Clone, Copy)]
enum Related {
    None,
    Root,
    Fcb(*mut Fcb),
}

/// The decoded create parameters.
struct CreateRequest {
    file_object: *mut FILE_OBJECT,
    name: Vec<u16>,
    related: Related,
    disposition: u32,
    options: u32,
    access: u32,
    share: u32,
    attributes: u32,
    /// `SL_OPEN_TARGET_DIRECTORY`: open the parent of `name` (NT-30).
    open_target: bool,
}

impl CreateRequest {
    /// # Safety
    /// `context.irp` is a valid create IRP with a file object.
    unsafe fn decode(context: &IrpContext) -> Result<Self, NTSTATUS> {
        // SAFETY: the caller's contract.
        let stack = unsafe { io_get_current_irp_stack_location(context.irp) };
        // SAFETY: the current location of a valid IRP.
        let stack = unsafe { &*stack };
        // SAFETY: the Create member is the live one for IRP_MJ_CREATE.
        let params = unsafe { stack.Parameters.Create };
        let access = if params.SecurityContext.is_null() {
            0
        } else {
            // SAFETY: the I/O manager's security context for this open.
            unsafe { (*params.SecurityContext).DesiredAccess }
        };
        let file_object = context.file_object;
        // SAFETY: valid file object per the caller.
        let name = unsafe { file_name(file_object) }?;
        // SAFETY: as above.
        let related = unsafe { related_of(file_object) };
        Ok(Self {
            file_object,
            name,
            related,
            disposition: params.Options >> 24,
            options: params.Options & opt::FILE_VALID_OPTION_FLAGS,
            access,
            share: u32::from(params.ShareAccess),
            attributes: u32::from(params.FileAttributes),
            open_target: stack.Flags & nt::SL_OPEN_TARGET_DIRECTORY != 0,
        })
    }

    fn delete_on_close(&self) -> bool {
        self.options & opt::FILE_DELETE_ON_CLOSE != 0
    }
}

/// A copy of `FileObject->FileName`.
///
/// # Safety
/// `file_object` is valid.
unsafe fn file_name(file_object: *const FILE_OBJECT) -> Result<Vec<u16>, NTSTATUS> {
    // SAFETY: the caller's contract.
    let name = unsafe { (*file_object).FileName };
    if name.Buffer.is_null() || name.Length == 0 {
        return Ok(Vec::new());
    }
    let units = usize::from(name.Length / 2);
    // SAFETY: the I/O manager's name buffer holds `Length` bytes for the create.
    let slice = unsafe { core::slice::from_raw_parts(name.Buffer, units) };
    fs_core::mem::copied(slice).map_err(|e| status_of(&e))
}

/// The start of a relative open: the related file object's directory, or the root for a
/// related volume open.
///
/// # Safety
/// `file_object` is valid.
unsafe fn related_of(file_object: *const FILE_OBJECT) -> Related {
    // SAFETY: the caller's contract.
    let related = unsafe { (*file_object).RelatedFileObject };
    if related.is_null() {
        return Related::None;
    }
    // SAFETY: a related file object is a live file object of the same volume.
    match unsafe { crate::fcb::fcb_of_file_object(related) } {
        Some(fcb) => Related::Fcb(fcb),
        None => Related::Root,
    }
}

/// The parsed path.
struct Path {
    components: Vec<Name>,
    trailing_backslash: bool,
}

/// Splits a path into validated components (`.` and `..` are the Win32 layer's business and
/// invalid here, as are empty components).
fn parse_path(name: &[u16], related: Related) -> Result<Path, NTSTATUS> {
    let absolute = name.first() == Some(&BACKSLASH);
    if absolute != matches!(related, Related::None) {
        return Err(nt::STATUS_OBJECT_NAME_INVALID);
    }
    let body = if absolute { &name[1..] } else { name };
    let trailing_backslash = body.last() == Some(&BACKSLASH);
    let body = if trailing_backslash {
        &body[..body.len() - 1]
    } else {
        body
    };
    let mut components = Vec::new();
    if body.is_empty() {
        return Ok(Path {
            components,
            trailing_backslash,
        });
    }
    for part in body.split(|&u| u == BACKSLASH) {
        let dots = part.iter().all(|&u| u == u16::from(b'.'));
        if part.is_empty() || dots {
            return Err(nt::STATUS_OBJECT_NAME_INVALID);
        }
        let name = Name::from_utf16(part).map_err(name_status)?;
        fs_core::mem::push(&mut components, name).map_err(|e| status_of(&e))?;
    }
    Ok(Path {
        components,
        trailing_backslash,
    })
}

/// The resolved target: its directory, its name, and the file if it exists.
struct Resolved {
    parent: FileId,
    name: Option<Name>,
    existing: Option<FileInfo>,
}

fn open(vcb: &Vcb, guard: &VcbExclusive<'_>, request: &CreateRequest) -> Result<usize, NTSTATUS> {
    if request.options & opt::FILE_OPEN_BY_FILE_ID != 0 {
        return Err(nt::STATUS_NOT_IMPLEMENTED);
    }
    if request.open_target {
        return open_target_directory(vcb, guard, request);
    }
    if request.name.is_empty() && matches!(request.related, Related::None) {
        return open_volume(vcb, request);
    }
    let path = parse_path(&request.name, request.related)?;
    let resolved = resolve(vcb, request.related, &path)?;
    match resolved.existing.clone() {
        Some(info) => open_existing(vcb, guard, request, &path, resolved, &info),
        None => create_new(vcb, guard, request, &path, resolved),
    }
}

fn resolve(vcb: &Vcb, related: Related, path: &Path) -> Result<Resolved, NTSTATUS> {
    let (start, start_name) = match related {
        Related::Fcb(fcb) => {
            // SAFETY: a related FCB is alive while its file object is (the I/O manager
            // holds it for the create).
            let fcb = unsafe { &*fcb };
            (fcb.id, fcb.name().map_err(|e| status_of(&e))?)
        }
        Related::None | Related::Root => (vcb.with_volume(|v| v.root())?, None),
    };
    let Some((last, walk)) = path.components.split_last() else {
        let info = vcb.with_volume(|v| v.info(start))?;
        return Ok(Resolved {
            parent: info.parent,
            name: start_name,
            existing: Some(info),
        });
    };
    let parent = vcb
        .with_volume(|v| {
            let mut dir = start;
            for component in walk {
                dir = v.lookup(dir, component)?;
            }
            match v.info(dir)?.kind {
                FileKind::Directory => Ok(dir),
                FileKind::File => Err(fs_core::Error::NotADirectory),
            }
        })
        .map_err(|status| match status {
            nt::STATUS_INSUFFICIENT_RESOURCES => status,
            _ => nt::STATUS_OBJECT_PATH_NOT_FOUND,
        })?;
    let existing = vcb.with_volume(|v| match v.lookup(parent, last) {
        Ok(id) => v.info(id).map(Some),
        Err(fs_core::Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    })?;
    Ok(Resolved {
        parent,
        name: Some(last.try_clone().map_err(|e| status_of(&e))?),
        existing,
    })
}

/// NT-30: opens the directory that would hold `request.name` and leaves the final component
/// in the file object's name. Every component is checked as for any open, the final one
/// included, so a hostile target name fails here, before any rename.
fn open_target_directory(
    vcb: &Vcb,
    guard: &VcbExclusive<'_>,
    request: &CreateRequest,
) -> Result<usize, NTSTATUS> {
    let mut path = parse_path(&request.name, request.related)?;
    if path.trailing_backslash {
        return Err(nt::STATUS_OBJECT_NAME_INVALID);
    }
    // The volume's root has no parent to open.
    let Some(last) = path.components.pop() else {
        return Err(nt::STATUS_OBJECT_NAME_INVALID);
    };
    let resolved = resolve(vcb, request.related, &path)?;
    let dir = match resolved.existing {
        Some(info) if info.kind == FileKind::Directory => info,
        _ => return Err(nt::STATUS_OBJECT_PATH_NOT_FOUND),
    };
    let exists = vcb.with_volume(|v| match v.lookup(dir.id, &last) {
        Ok(_) => Ok(true),
        Err(fs_core::Error::NotFound) => Ok(false),
        Err(e) => Err(e),
    })?;
    let (fcb, _) = find_or_create_fcb(vcb, guard, &dir, resolved.name)?;
    // SAFETY: in the table, alive while the VCB resource is held and referenced below.
    let fcb_ref = unsafe { &*fcb };
    fcb_ref
        .reference_count
        .set(fcb_ref.reference_count.get() + 1);
    let result = open_target_fcb(vcb, request, fcb_ref);
    let refs = fcb_ref.reference_count.get() - 1;
    fcb_ref.reference_count.set(refs);
    if refs == 0 {
        discard_fcb(guard, fcb);
    }
    result?;
    // SAFETY: the create's file object; its name is the I/O manager's buffer, which held the
    // whole path and so has room for the final component at its start.
    unsafe { keep_final_component(request.file_object, &request.name) };
    Ok(if exists {
        nt::FILE_EXISTS
    } else {
        nt::FILE_DOES_NOT_EXIST
    })
}

/// The target directory's share check and attach (the rename that follows takes its locks).
fn open_target_fcb(vcb: &Vcb, request: &CreateRequest, fcb: &Fcb) -> Result<(), NTSTATUS> {
    if fcb.delete_pending.get() {
        return Err(nt::STATUS_DELETE_PENDING);
    }
    check_sharing(request, fcb, false)?;
    attach(vcb, request, fcb)
}

/// Moves the final component of `name` (a copy of the file object's name) to the start of
/// the file object's name buffer and shortens the name to it, as fastfat does.
///
/// # Safety
/// `file_object` is the create's file object and `name` a copy of its `FileName`.
unsafe fn keep_final_component(file_object: *mut FILE_OBJECT, name: &[u16]) {
    let start = name
        .iter()
        .rposition(|&u| u == BACKSLASH)
        .map_or(0, |at| at + 1);
    let last = &name[start..];
    // SAFETY: the caller's contract.
    let file_name = unsafe { &mut (*file_object).FileName };
    if file_name.Buffer.is_null() || usize::from(file_name.Length / 2) < last.len() {
        return;
    }
    // SAFETY: the buffer holds the whole name, at least `last.len()` units; the copy source
    // is our own copy, so the two never overlap.
    unsafe { core::ptr::copy_nonoverlapping(last.as_ptr(), file_name.Buffer, last.len()) };
    file_name.Length = u16::try_from(last.len() * 2).unwrap_or(0);
}

fn open_volume(vcb: &Vcb, request: &CreateRequest) -> Result<usize, NTSTATUS> {
    if !matches!(request.disposition, disp::FILE_OPEN | disp::FILE_OPEN_IF) {
        return Err(nt::STATUS_ACCESS_DENIED);
    }
    let ccb = Ccb::allocate(CcbKind::Volume, false)?;
    let fo = request.file_object;
    // SAFETY: the create's file object is ours to fill.
    unsafe {
        (*fo).FsContext = core::ptr::from_ref(vcb).cast_mut().cast();
    }
    // SAFETY: as above.
    unsafe { (*fo).FsContext2 = ccb.cast() };
    // SAFETY: as above.
    unsafe { (*fo).Vpb = vcb.vpb };
    vcb.volume_opens.set(vcb.volume_opens.get() + 1);
    Ok(FILE_OPENED)
}

/// Checks an open of an existing file or directory against its kind and attributes.
fn check_existing(
    request: &CreateRequest,
    path: &Path,
    info: &FileInfo,
    root: bool,
) -> Result<(), NTSTATUS> {
    if request.disposition == disp::FILE_CREATE {
        return Err(nt::STATUS_OBJECT_NAME_COLLISION);
    }
    let truncating = is_truncating(request.disposition);
    if info.kind == FileKind::Directory {
        if request.options & opt::FILE_NON_DIRECTORY_FILE != 0 {
            return Err(nt::STATUS_FILE_IS_A_DIRECTORY);
        }
        if truncating {
            return Err(nt::STATUS_OBJECT_NAME_COLLISION);
        }
    } else if request.options & opt::FILE_DIRECTORY_FILE != 0 {
        return Err(nt::STATUS_NOT_A_DIRECTORY);
    } else if path.trailing_backslash {
        return Err(nt::STATUS_OBJECT_NAME_INVALID);
    }
    let doc = request.delete_on_close();
    if doc && request.access & access::DELETE == 0 {
        return Err(nt::STATUS_ACCESS_DENIED);
    }
    if doc && root {
        return Err(nt::STATUS_CANNOT_DELETE);
    }
    if info.attributes.contains(FileAttributes::READONLY) {
        if doc {
            return Err(nt::STATUS_CANNOT_DELETE);
        }
        if wants_write(request.access) || truncating {
            return Err(nt::STATUS_ACCESS_DENIED);
        }
    }
    Ok(())
}

fn is_truncating(disposition: u32) -> bool {
    matches!(
        disposition,
        disp::FILE_OVERWRITE | disp::FILE_OVERWRITE_IF | disp::FILE_SUPERSEDE
    )
}

fn wants_write(desired: u32) -> bool {
    desired & (access::FILE_WRITE_DATA | access::FILE_APPEND_DATA) != 0
}

fn open_existing(
    vcb: &Vcb,
    guard: &VcbExclusive<'_>,
    request: &CreateRequest,
    path: &Path,
    resolved: Resolved,
    info: &FileInfo,
) -> Result<usize, NTSTATUS> {
    check_existing(request, path, info, resolved.name.is_none())?;
    let (fcb, _) = find_or_create_fcb(vcb, guard, info, resolved.name)?;
    // SAFETY: in the table, alive while the VCB resource is held and referenced below.
    let fcb_ref = unsafe { &*fcb };
    // A reference for the create itself: the image-section flush and the purge below can
    // close the stream's other file objects (NT-04), which must not free the FCB under us.
    fcb_ref
        .reference_count
        .set(fcb_ref.reference_count.get() + 1);
    let result = open_fcb(vcb, request, fcb_ref);
    let refs = fcb_ref.reference_count.get() - 1;
    fcb_ref.reference_count.set(refs);
    if refs == 0 {
        discard_fcb(guard, fcb);
    }
    result
}

/// Share, image-section and mapped-file checks, truncation, then the file object is ours.
fn open_fcb(vcb: &Vcb, request: &CreateRequest, fcb: &Fcb) -> Result<usize, NTSTATUS> {
    if fcb.delete_pending.get() {
        return Err(nt::STATUS_DELETE_PENDING);
    }
    let truncating = is_truncating(request.disposition);
    check_sharing(request, fcb, wants_write(request.access) || truncating)?;
    let information = if truncating {
        truncate_to_zero(vcb, request.file_object, fcb)?;
        let changed = crate::notify::filter::SIZE | crate::notify::filter::LAST_WRITE;
        crate::notify::report_fcb(vcb, fcb, changed, crate::notify::action::MODIFIED);
        if request.disposition == disp::FILE_SUPERSEDE {
            nt::FILE_SUPERSEDED
        } else {
            nt::FILE_OVERWRITTEN
        }
    } else {
        FILE_OPENED
    };
    attach(vcb, request, fcb)?;
    Ok(information)
}

/// NT-09, NT-11 and `IoCheckShareAccess` (without updating: nothing has changed yet).
fn check_sharing(request: &CreateRequest, fcb: &Fcb, for_write: bool) -> Result<(), NTSTATUS> {
    if for_write {
        section::check_open_for_write(fcb)?;
    }
    if request.delete_on_close() {
        section::check_delete(fcb)?;
    }
    if request.share & FILE_SHARE_WRITE == 0 {
        section::check_deny_write(fcb)?;
    }
    // SAFETY: the create's file object and the FCB's share access, under the VCB resource.
    let status = unsafe {
        nt::IoCheckShareAccess(
            request.access,
            request.share,
            request.file_object,
            fcb.share_access.get(),
            false,
        )
    };
    if status < 0 {
        return Err(status);
    }
    Ok(())
}

/// Overwrite/supersede: the file becomes empty (NT-10 first).
fn truncate_to_zero(vcb: &Vcb, file_object: *mut FILE_OBJECT, fcb: &Fcb) -> Result<(), NTSTATUS> {
    let sop = fcb.section_object_pointers();
    section::check_truncate(fcb, 0)?;
    // SAFETY: FCB resources, initialised with it; main before paging (NT-18).
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    // SAFETY: as above.
    let _paging = unsafe { ResourceGuard::exclusive(fcb.paging_io_resource()) };
    let info = vcb.with_volume(|v| {
        v.set_file_size(fcb.id, 0)?;
        v.info(fcb.id)
    })?;
    fcb.set_sizes(info.allocation_size, info.file_size, info.valid_data_length);
    // SAFETY: the create's file object; its SOP is set so Cc finds the stream.
    unsafe { (*file_object).SectionObjectPointer = sop };
    // SAFETY: as above.
    unsafe { update_cc_sizes(file_object, fcb) };
    // Pages of the old content may still be resident in a section nobody maps (Mm keeps it
    // after the last handle, NT-04); they must not reappear when the file grows again.
    if has_data_section(fcb) && !purge(fcb, Some((0, 0)), 0) {
        fcb.purge_failures
            .set(fcb.purge_failures.get().saturating_add(1));
    }
    Ok(())
}

/// The open succeeds: record share access and point the file object at FCB and CCB.
fn attach(vcb: &Vcb, request: &CreateRequest, fcb: &Fcb) -> Result<(), NTSTATUS> {
    let ccb = Ccb::allocate(CcbKind::File, request.delete_on_close())?;
    let fo = request.file_object;
    // SAFETY: initialised with the FCB; the section-sync callback reads the counts under it.
    let _main = unsafe { ResourceGuard::exclusive(fcb.resource()) };
    // SAFETY: checked just before without update; with update it records this open.
    unsafe {
        nt::IoCheckShareAccess(
            request.access,
            request.share,
            fo,
            fcb.share_access.get(),
            true,
        )
    };
    // SAFETY: the create's file object is ours to fill.
    unsafe { (*fo).FsContext = core::ptr::from_ref(fcb).cast_mut().cast() };
    // SAFETY: as above.
    unsafe { (*fo).FsContext2 = ccb.cast() };
    // SAFETY: as above (NT-02).
    unsafe { (*fo).SectionObjectPointer = fcb.section_object_pointers() };
    // SAFETY: as above.
    unsafe { (*fo).Vpb = vcb.vpb };
    fcb.open_count.set(fcb.open_count.get() + 1);
    fcb.reference_count.set(fcb.reference_count.get() + 1);
    Ok(())
}

fn create_new(
    vcb: &Vcb,
    guard: &VcbExclusive<'_>,
    request: &CreateRequest,
    path: &Path,
    resolved: Resolved,
) -> Result<usize, NTSTATUS> {
    let directory = check_new(request, path)?;
    let Some(name) = resolved.name else {
        return Err(nt::STATUS_OBJECT_NAME_COLLISION);
    };
    let kind = if directory {
        FileKind::Directory
    } else {
        FileKind::File
    };
    let attributes =
        FileAttributes::from_bits_truncate(request.attributes) & FileAttributes::SETTABLE;
    let info = vcb.with_volume(|v| {
        let id = v.create(resolved.parent, &name, kind, attributes)?;
        v.info(id)
    })?;
    let (fcb, _) = find_or_create_fcb(
        vcb,
        guard,
        &info,
        Some(name.try_clone().map_err(|e| status_of(&e))?),
    )?;
    // SAFETY: in the table, alive while the VCB resource is held.
    if let Err(status) = attach(vcb, request, unsafe { &*fcb }) {
        discard_fcb(guard, fcb);
        return Err(status);
    }
    let kind = crate::notify::name_filter(directory);
    crate::notify::report(
        vcb,
        resolved.parent,
        &name,
        kind,
        crate::notify::action::ADDED,
    );
    Ok(nt::FILE_CREATED)
}

/// Checks a create of a new file; true for a directory.
fn check_new(request: &CreateRequest, path: &Path) -> Result<bool, NTSTATUS> {
    if matches!(request.disposition, disp::FILE_OPEN | disp::FILE_OVERWRITE) {
        return Err(nt::STATUS_OBJECT_NAME_NOT_FOUND);
    }
    let directory = request.options & opt::FILE_DIRECTORY_FILE != 0;
    if directory && request.options & opt::FILE_NON_DIRECTORY_FILE != 0 {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    if directory && !matches!(request.disposition, disp::FILE_CREATE | disp::FILE_OPEN_IF) {
        return Err(nt::STATUS_INVALID_PARAMETER);
    }
    if path.trailing_backslash && !directory {
        return Err(nt::STATUS_OBJECT_NAME_INVALID);
    }
    if request.delete_on_close() {
        if request.access & access::DELETE == 0 {
            return Err(nt::STATUS_ACCESS_DENIED);
        }
        if request.attributes & nt::FILE_ATTRIBUTE_READONLY != 0 {
            return Err(nt::STATUS_CANNOT_DELETE);
        }
    }
    Ok(directory)
}

fn find_or_create_fcb(
    vcb: &Vcb,
    guard: &VcbExclusive<'_>,
    info: &FileInfo,
    name: Option<Name>,
) -> Result<(*mut Fcb, bool), NTSTATUS> {
    if let Some(fcb) = guard.find(info.id) {
        return Ok((fcb, false));
    }
    let fcb = Fcb::create(FcbInit {
        vcb: core::ptr::from_ref(vcb),
        info,
        name,
    })?;
    // SAFETY: just created for this volume, in no table or chain yet.
    if let Err(e) = unsafe { guard.insert_fcb(info.id, fcb) } {
        // SAFETY: created just above, in no table, referenced by nothing; freed once.
        unsafe { Fcb::delete(fcb) };
        return Err(status_of(&e));
    }
    Ok((fcb, true))
}

/// Removes an FCB that no file object ever pointed at.
fn discard_fcb(guard: &VcbExclusive<'_>, fcb: *mut Fcb) {
    // SAFETY: alive (in the table); no file object references it.
    let id = unsafe { (*fcb).id };
    guard.remove_fcb(id);
    // SAFETY: created by this open, unreferenced, freed once.
    unsafe { Fcb::delete(fcb) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::context;
    use crate::nt::IRP_MJ_CREATE;

    fn units(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn control_device_opens_and_stray_volume_opens() {
        let outcome = common_create(&context(IRP_MJ_CREATE, 0, true));
        assert_eq!(
            outcome,
            Outcome::Complete {
                status: nt::STATUS_SUCCESS,
                information: FILE_OPENED
            }
        );
        let outcome = common_create(&context(IRP_MJ_CREATE, 0, false));
        assert_eq!(outcome, Outcome::status(nt::STATUS_INVALID_DEVICE_REQUEST));
    }

    #[test]
    fn paths_parse_strictly() {
        let ok = parse_path(&units("\\a\\b.txt"), Related::None);
        assert!(matches!(ok, Ok(ref p) if p.components.len() == 2 && !p.trailing_backslash));
        let dir = parse_path(&units("\\d\\"), Related::None);
        assert!(matches!(dir, Ok(ref p) if p.components.len() == 1 && p.trailing_backslash));
        for bad in ["a", "\\a\\\\b", "\\..", "\\a\\."] {
            assert!(parse_path(&units(bad), Related::None).is_err(), "{bad}");
        }
        assert!(parse_path(&units("\\a"), Related::Root).is_err());
        assert!(parse_path(&units("a"), Related::Root).is_ok());
    }
}
