//! Names (fastfat's `namesup.c`): full paths of files and directories as NT wants them in
//! FILE_NAME_INFORMATION and change notification, and DOS wildcard matching for directory
//! enumeration through `FsRtlIsNameInExpression`.
//!
//! cowfat's FCBs know their parent directory by id (ids are stable across renames), so a full
//! path is built by walking up; a directory's own name is found in its parent's index. Both
//! the expression and the names are upcased with the volume's own upcase table and matched
//! case-sensitively, so the match agrees with how the volume compares names.

use alloc::vec::Vec;

use fs_core::{DirCursor, FileId, Name, Volume};

use crate::blockdev::TargetDevice;
use crate::nt::{self, UNICODE_STRING};

/// `\`.
pub const BACKSLASH: u16 = b'\\' as u16;
/// Directory levels a path may have (a loop in the tree is corruption, not a long path).
const MAX_DEPTH: usize = 4096;
/// Entries read per fs-core call while looking for a directory's name.
const SCAN_CHUNK: usize = 256;

/// The name of the entry `id` in directory `dir`.
fn name_in(v: &mut Volume<TargetDevice>, dir: FileId, id: FileId) -> fs_core::Result<Name> {
    let mut cursor = DirCursor::start();
    loop {
        let (entries, next) = v.read_dir(dir, &cursor, SCAN_CHUNK)?;
        if let Some(e) = entries.iter().find(|e| e.info.id == id) {
            return Ok(e.name.clone());
        }
        match next {
            Some(c) => cursor = c,
            None => return Err(fs_core::Error::NotFound),
        }
    }
}

/// The full path of directory `dir` (`\` for the root, else `\a\b`).
///
/// # Errors
/// fs-core's, `NotFound` for a directory no longer linked.
pub fn dir_path(v: &mut Volume<TargetDevice>, dir: FileId) -> fs_core::Result<Vec<u16>> {
    let root = v.root()?;
    let mut parts: Vec<Name> = Vec::new();
    let mut current = dir;
    while current != root {
        if parts.len() > MAX_DEPTH {
            return Err(fs_core::Error::NotFound);
        }
        let parent = v.info(current)?.parent;
        fs_core::mem::push(&mut parts, name_in(v, parent, current)?)?;
        current = parent;
    }
    join(&parts)
}

fn join(reversed: &[Name]) -> fs_core::Result<Vec<u16>> {
    if reversed.is_empty() {
        return fs_core::mem::copied(&[BACKSLASH]);
    }
    let units: usize = reversed.iter().map(|p| 1 + p.as_utf16().len()).sum();
    let mut path = Vec::new();
    fs_core::mem::reserve(&mut path, units)?;
    for part in reversed.iter().rev() {
        path.push(BACKSLASH);
        path.extend_from_slice(part.as_utf16());
    }
    Ok(path)
}

/// `dir_path(parent) + \ + name`, and the byte offset of `name` in it.
///
/// # Errors
/// `OutOfMemory`.
pub fn child_path(parent_path: &[u16], name: &Name) -> fs_core::Result<(Vec<u16>, usize)> {
    let mut path = Vec::new();
    // One reservation for the whole path: the pushes below never reallocate.
    fs_core::mem::reserve(&mut path, parent_path.len() + 1 + name.as_utf16().len())?;
    path.extend_from_slice(parent_path);
    if path != [BACKSLASH] {
        path.push(BACKSLASH);
    }
    let offset = path.len() * 2;
    path.extend_from_slice(name.as_utf16());
    Ok((path, offset))
}

/// The full path of a file or directory given its parent and name (None: the root).
///
/// # Errors
/// As [`dir_path`].
pub fn full_path(
    v: &mut Volume<TargetDevice>,
    parent: FileId,
    name: Option<&Name>,
) -> fs_core::Result<Vec<u16>> {
    let Some(name) = name else {
        return fs_core::mem::copied(&[BACKSLASH]);
    };
    let dir = dir_path(v, parent)?;
    Ok(child_path(&dir, name)?.0)
}

/// Does any unit of `expression` make it a wildcard expression (`FsRtlDoesNameContainWildCards`)?
#[must_use]
pub fn has_wildcards(expression: &[u16]) -> bool {
    expression
        .iter()
        .any(|&u| matches!(u, 0x2A | 0x3F | 0x3C | 0x3E | 0x22))
}

/// A counted string over `units` (valid while `units` is).
#[must_use]
pub fn counted(units: &[u16]) -> UNICODE_STRING {
    let bytes = u16::try_from(units.len() * 2).unwrap_or(0xFFFE);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: units.as_ptr().cast_mut(),
    }
}

/// Does the upcased `name` match the upcased `expression` (`FsRtlIsNameInExpression`)?
#[must_use]
pub fn is_name_in_expression(expression: &[u16], name: &[u16]) -> bool {
    if expression.is_empty() {
        return true;
    }
    let e = counted(expression);
    let n = counted(name);
    // SAFETY: both strings point at live slices for the call; no upcase table (case-exact).
    unsafe { nt::FsRtlIsNameInExpression(&e, &n, false, core::ptr::null()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_wildcards_are_found() {
        let a = Name::from_str("a").ok();
        let b = Name::from_str("b").ok();
        let parts: Vec<Name> = [b, a].into_iter().flatten().collect();
        let units: Vec<u16> = "\\a\\b".encode_utf16().collect();
        assert_eq!(join(&parts).unwrap(), units);
        assert_eq!(join(&[]).unwrap(), alloc::vec![BACKSLASH]);
        let name = Name::from_str("x").ok();
        if let Some(name) = name {
            let (p, off) = child_path(&[BACKSLASH], &name).unwrap();
            assert_eq!((p.len(), off), (2, 2));
        }
        assert!(has_wildcards(&[0x3C]) && !has_wildcards(&[0x41]));
    }
}
