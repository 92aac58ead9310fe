//! Overlay control on a mounted volume, through ioctls on an open file or directory of the
//! mount ([`super::ioctl`]): on the mount root they act on the volume, elsewhere on that file.
//! `STATUS` returns the status as JSON; `SEAL`, `COMMIT` and `DISCARD` act.
//!
//! Not extended attributes (the mount's first way): the mount answers every xattr request with
//! ENOSYS, after which the kernel stops asking for the mount's life. Otherwise each `ls -l`
//! entry cost two round trips the kernel never caches (`security.selinux`,
//! `system.posix_acl_access`), each answered "no such attribute".
//!
//! The driver's rule holds here too: a discard changes a file's content under the kernel's
//! page cache, so it is refused (EBUSY) while the file has any open handle besides the one
//! the command itself opened to send the ioctl (a mapping keeps one), and afterwards the
//! kernel is told to drop the file's cached pages and attributes. Discarding the whole volume
//! would also change names the kernel has cached, and on a `--writeback-cache` mount the
//! kernel trusts only its own file sizes: both are refused on a mounted volume (EOPNOTSUPP)
//! and done on the image after unmounting.

use std::path::{Path, PathBuf};

use fs_core::FileKind;
use fuser::{Errno, INodeNo};

use super::errno::OrErrno;
use super::fs::CowfatFs;
use super::ioctl::{self, Action};
use super::state::{lock, State, ROOT_INO};
use crate::cli::{OverlayAction, OverlayArgs};
use crate::commands::Outcome;
use crate::error::{Cause, Failure};

#[derive(Debug, serde::Serialize)]
struct FileJson {
    in_base: bool,
    modified: bool,
    base_clusters: u64,
    overlay_clusters: u64,
    reserved_clusters: u64,
    open: bool,
}

/// One control ioctl on inode `ino`, sent through handle `fh`: the reply's bytes.
pub fn ioctl(fs: &CowfatFs, ino: u64, fh: u64, cmd: u32, out_size: u32) -> Result<Vec<u8>, Errno> {
    let out = if cmd == ioctl::wire(ioctl::STATUS) {
        status(fs, ino, fh)?
    } else if cmd == ioctl::wire(ioctl::XATTR_REQUESTS) {
        fs.xattr_requests
            .iter()
            .flat_map(|c| c.load(std::sync::atomic::Ordering::Relaxed).to_le_bytes())
            .collect()
    } else if let Some(action) = Action::from_wire(cmd) {
        act(fs, ino, fh, action)?;
        Vec::new()
    } else {
        return Err(Errno::ENOTTY);
    };
    if out.len() > out_size as usize {
        return Err(Errno::ERANGE);
    }
    Ok(out)
}

/// The volume's status on the root, a file's elsewhere.
fn status(fs: &CowfatFs, ino: u64, fh: u64) -> Result<Vec<u8>, Errno> {
    let mut st = lock(&fs.shared);
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
            open: st.table.open_elsewhere(ino, fh),
        })
    };
    json.map_err(|_| Errno::EIO)
}

/// One overlay operation.
fn act(fs: &CowfatFs, ino: u64, fh: u64, action: Action) -> Result<(), Errno> {
    let root = ino == ROOT_INO;
    let mut st = lock(&fs.shared);
    let done = match (action, root) {
        (Action::Seal, true) => st.vol()?.seal().map_err(refusal_errno),
        (Action::Commit, true) => st.vol()?.commit().map_err(refusal_errno),
        (Action::Discard, true) => Err(Errno::EOPNOTSUPP),
        (Action::Seal, false) => Err(Errno::EINVAL),
        (Action::Commit, false) => {
            let id = st.id(ino);
            st.vol()?.commit_file(id).map_err(refusal_errno)
        }
        // With the writeback cache the kernel keeps its own file size and never takes ours
        // again while it holds the inode, so a discard could not be made visible: refused.
        (Action::Discard, false) if fs.writeback_cache => Err(Errno::EOPNOTSUPP),
        (Action::Discard, false) => discard_file(&mut st, ino, fh),
    };
    st.dirty = true;
    done?;
    st.sync()?;
    drop(st);
    if action == Action::Discard {
        invalidate(fs, ino);
    }
    Ok(())
}

fn discard_file(st: &mut State, ino: u64, fh: u64) -> Result<(), Errno> {
    if st.info(ino)?.kind == FileKind::Directory {
        // Refused as on the image (where fs-core refuses it), before the open check.
        return Err(Errno::EISDIR);
    }
    if st.table.open_elsewhere(ino, fh) {
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

/// The path to act on when `image` is (inside) a mounted cowfat volume, else None: its
/// device is that of a FUSE mount whose source is cowfat's (`cowfat:IMAGE`), so no other file
/// system, FUSE or not, is ever sent cowfat's ioctls.
pub fn mounted_target(image: &Path, path: Option<&str>) -> Option<PathBuf> {
    let dev = rustix::fs::stat(image).ok()?.st_dev;
    let dev = format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let cowfat = mounts.lines().any(|l| is_cowfat_mount(l, &dev));
    if !cowfat {
        return None;
    }
    Some(match path {
        Some(p) => image.join(p.trim_start_matches(['/', '\\'])),
        None => image.to_path_buf(),
    })
}

/// One /proc/self/mountinfo line: "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE
/// SOURCE SUPER-OPTIONS". The type is `fuse` when mounted directly (as `cowfat mount` does)
/// and `fuse.cowfat` through fusermount; the source is the mount's FSName either way.
fn is_cowfat_mount(line: &str, dev: &str) -> bool {
    let Some((before, after)) = line.split_once(" - ") else {
        return false;
    };
    let mut after = after.split(' ');
    let (kind, source) = (after.next(), after.next().unwrap_or(""));
    before.split(' ').nth(2) == Some(dev)
        && matches!(kind, Some("fuse") | Some(super::FS_TYPE))
        && source.starts_with(super::FS_NAME_PREFIX)
}

/// The mounted file or directory, opened (read-only) to carry a control ioctl. The server
/// counts this handle as open like any other; `open_elsewhere` leaves it out.
fn open_target(target: &Path) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        target,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
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
        return status_of(target, a.json).map_err(fail);
    }
    let action = match a.action {
        OverlayAction::Seal => Action::Seal,
        OverlayAction::Commit => Action::Commit,
        _ => Action::Discard,
    };
    let value = verb.split(' ').next().unwrap_or(verb);
    open_target(target)
        .and_then(|fd| ioctl::act(&fd, action))
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

fn status_of(target: &Path, json: bool) -> Result<Option<u8>, String> {
    let buf = open_target(target)
        .and_then(ioctl::status)
        .map_err(|e| e.to_string())?;
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
