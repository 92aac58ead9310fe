//! Overlay control on a mounted volume, through one extended attribute:
//! `setxattr(path, "user.cowfat.overlay", "seal"|"commit"|"discard")` acts (on the mount root
//! for the volume, on a file for that file) and `getxattr` returns the status as JSON.
//!
//! The driver's rule holds here too: a discard changes a file's content under the kernel's
//! page cache, so it is refused (EBUSY) while the file has any open handle (a mapping keeps
//! one), and afterwards the kernel is told to drop the file's cached pages and attributes.
//! Discarding the whole volume would also change names the kernel has cached, and on a
//! `--writeback-cache` mount the kernel trusts only its own file sizes: both are refused on a
//! mounted volume (EOPNOTSUPP) and done on the image after unmounting.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use fs_core::FileKind;
use fuser::{Errno, INodeNo};

use super::errno::OrErrno;
use super::fs::CowfatFs;
use super::state::{lock, Shared, State, ROOT_INO};
use crate::cli::{OverlayAction, OverlayArgs};
use crate::commands::Outcome;
use crate::error::{Cause, Failure};

/// The control attribute.
pub const XATTR: &str = "user.cowfat.overlay";

#[derive(Debug, serde::Serialize)]
struct FileJson {
    in_base: bool,
    modified: bool,
    base_clusters: u64,
    overlay_clusters: u64,
    reserved_clusters: u64,
    open: bool,
}

/// getxattr: the volume's status on the root, a file's elsewhere.
pub fn get(shared: &Shared, ino: u64, name: &OsStr) -> Result<Vec<u8>, Errno> {
    if name != XATTR {
        return Err(Errno::NO_XATTR);
    }
    let mut st = lock(shared);
    let json = if ino == ROOT_INO {
        let v = crate::commands::info::volume_json(&st.vol()?.volume_info());
        serde_json::to_vec(&v)
    } else {
        let id = st.id(ino);
        let s = st.vol()?.overlay_status(id).or_errno()?;
        serde_json::to_vec(&FileJson {
            in_base: s.in_base,
            modified: s.modified,
            base_clusters: s.base_clusters,
            overlay_clusters: s.overlay_clusters,
            reserved_clusters: s.reserved_clusters,
            open: st.table.is_open(ino),
        })
    };
    json.map_err(|_| Errno::EIO)
}

/// setxattr: one overlay operation.
pub fn set(fs: &CowfatFs, ino: u64, name: &OsStr, value: &[u8]) -> Result<(), Errno> {
    if name != XATTR {
        return Err(Errno::ENOTSUP);
    }
    let root = ino == ROOT_INO;
    let mut st = lock(&fs.shared);
    let done = match (value, root) {
        (b"seal", true) => st.vol()?.seal().map_err(refusal_errno),
        (b"commit", true) => st.vol()?.commit().map_err(refusal_errno),
        (b"discard", true) => Err(Errno::EOPNOTSUPP),
        (b"commit", false) => {
            let id = st.id(ino);
            st.vol()?.commit_file(id).map_err(refusal_errno)
        }
        // With the writeback cache the kernel keeps its own file size and never takes ours
        // again while it holds the inode, so a discard could not be made visible: refused.
        (b"discard", false) if fs.writeback_cache => Err(Errno::EOPNOTSUPP),
        (b"discard", false) => discard_file(&mut st, ino),
        _ => Err(Errno::EINVAL),
    };
    st.dirty = true;
    done?;
    st.sync()?;
    drop(st);
    if value == b"discard" {
        invalidate(fs, ino);
    }
    Ok(())
}

fn discard_file(st: &mut State, ino: u64) -> Result<(), Errno> {
    if st.info(ino)?.kind == FileKind::Directory {
        // Refused as on the image (where fs-core refuses it), before the open check.
        return Err(Errno::EISDIR);
    }
    if st.table.is_open(ino) {
        return Err(Errno::EBUSY);
    }
    let id = st.id(ino);
    st.vol()?.discard_file(id).map_err(refusal_errno)
}

/// The overlay refusals, each with an errno of its own, so that `cowfat overlay` on a mount
/// (the other end of this small protocol, [`refusal`]) says what it says on the image.
const REFUSALS: [(fs_core::Error, Errno); 4] = [
    (fs_core::Error::AlreadySealed, Errno::EALREADY),
    (fs_core::Error::NotSealed, Errno::ENODATA),
    (fs_core::Error::NoBaseVersion, Errno::ENOMSG),
    (DIRECTORY_REFUSAL, Errno::EISDIR),
];

/// fs-core's refusal of a directory's commit or discard (a test compares it with the image's).
const DIRECTORY_REFUSAL: fs_core::Error =
    fs_core::Error::Unsupported("a directory's overlay changes only with the whole volume");

fn refusal_errno(e: fs_core::Error) -> Errno {
    REFUSALS
        .iter()
        .find(|(known, _)| *known == e)
        .map_or_else(|| super::errno::errno(&e), |(_, errno)| *errno)
}

/// Tells the kernel to drop the file's cached pages and attributes. Done without the volume
/// lock: the kernel may write dirty pages back through us while it invalidates.
fn invalidate(fs: &CowfatFs, ino: u64) {
    if let Some(n) = fs.notifier.get() {
        // ENOENT means the kernel holds nothing of this inode: nothing to drop.
        if let Err(e) = n.inval_inode(INodeNo(ino), 0, -1) {
            if e.raw_os_error() != Some(2) {
                super::note(format_args!("cannot invalidate inode {ino:#x}: {e}"));
            }
        }
    }
}

// ---- the command side: `cowfat overlay ACTION MOUNTED-PATH [PATH]` ----

/// The path to act on when `image` is (inside) a mounted cowfat volume, else None.
pub fn mounted_target(image: &Path, path: Option<&str>) -> Option<PathBuf> {
    rustix::fs::getxattr(image, XATTR, &mut [0u8; 0][..]).ok()?;
    Some(match path {
        Some(p) => image.join(p.trim_start_matches(['/', '\\'])),
        None => image.to_path_buf(),
    })
}

pub fn run(a: &OverlayArgs, target: &Path) -> Outcome {
    let verb = match a.action {
        OverlayAction::Seal => "seal",
        OverlayAction::Commit => "commit",
        OverlayAction::Discard => "discard the overlay of",
        OverlayAction::Status => "show the overlay of",
    };
    let fail = |why: String| Failure::new(target, verb, None, Cause::Other(why));
    if a.action == OverlayAction::Status {
        return status(target, a.json).map_err(fail);
    }
    let value = verb.split(' ').next().unwrap_or(verb);
    rustix::fs::setxattr(
        target,
        XATTR,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| fail(refusal(a.action, e)))?;
    println!("{}: {value} done", target.display());
    Ok(None)
}

/// Why the mounted volume refused, in a sentence: the image's words where fs-core refused.
fn refusal(action: OverlayAction, e: rustix::io::Errno) -> String {
    use rustix::io::Errno as E;
    let fs_refusal = REFUSALS
        .iter()
        .find(|(_, errno)| errno.code() == e.raw_os_error());
    if let Some((why, _)) = fs_refusal {
        return crate::error::fs_cause(why);
    }
    match (action, e) {
        (_, E::BUSY) => "the file is open (or mapped) by a process; close it and try again".into(),
        (OverlayAction::Discard, E::OPNOTSUPP) => "the kernel's caches could not be made to show this discard (the whole volume's, or any file's on a --writeback-cache mount); unmount it and run `cowfat overlay discard IMAGE [PATH]`".into(),
        (OverlayAction::Seal, E::INVAL) => "seal applies to the whole volume: give the mount point".into(),
        (_, e) => format!("the mounted volume answered: {e}"),
    }
}

fn status(target: &Path, json: bool) -> Result<Option<u8>, String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::getxattr(target, XATTR, &mut buf[..]).map_err(|e| e.to_string())?;
    buf.truncate(n);
    let text = String::from_utf8_lossy(&buf);
    if json {
        println!("{text}");
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&buf).map_err(|e| e.to_string())?;
    println!("{}", describe(target, &v));
    Ok(None)
}

fn describe(target: &Path, v: &serde_json::Value) -> String {
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let flag = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    };
    if v.get("sealed").is_some() {
        if !flag("sealed") {
            return "not sealed".into();
        }
        let at = v
            .get("sealed_at")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        return format!(
            "sealed at {at}; overlay {} clusters, base-only {} clusters, reserved {}",
            num("overlay_clusters"),
            num("base_only_clusters"),
            num("reserved_clusters")
        );
    }
    let state = match (flag("in_base"), flag("modified")) {
        (false, _) => "new since the seal",
        (true, true) => "modified",
        (true, false) => "unchanged",
    };
    format!(
        "{}: {state}; {} overlay clusters, {} shared with the base",
        target.display(),
        num("overlay_clusters"),
        num("base_clusters")
    )
}
