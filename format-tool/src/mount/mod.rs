//! `cowfat mount`: serves a cowfat volume to the Linux kernel through FUSE (`fuser`, no
//! libfuse). One module per job: `state` (the volume behind one lock, inode numbers),
//! `table` (open handles, orphans, directory snapshots), `fs` (the `Filesystem` handlers),
//! `errno` (fs-core errors as errno, in one place), `attr` (records as `stat`), `overlay`
//! (overlay control through ioctls on the mount, `ioctl` their numbers and calls) and `daemon`
//! (detaching). The mount stores no extended attributes and says so to the kernel once
//! (ENOSYS), so it never asks again.
//!
//! The mount runs until it is unmounted (`umount DIR`) or gets SIGINT/SIGTERM, which
//! unmounts it; either way the volume is then unmounted by fs-core, so the image is
//! consistent. Without `--foreground` the command re-executes itself detached and returns
//! once the mount is live.

mod attr;
mod daemon;
mod errno;
mod fs;
pub mod ioctl;
pub mod overlay;
mod state;
mod table;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use fuser::{Config, MountOption, Session, SessionUnmounter};
use nix::sys::signal::{SigSet, Signal};

use crate::cli::MountArgs;
use crate::commands::Outcome;
use crate::error::{Cause, Failure};
use crate::volume::{self, Session as ImageSession};
use attr::Owner;
use fs::CowfatFs;
use state::{Shared, State};
use table::Table;

/// Event-loop threads: two, so a handler that waits on the kernel (cache invalidation)
/// never stalls the only thread that could answer it.
const THREADS: usize = 2;

/// The mount's type in /proc/self/mountinfo when mounted through fusermount (`fuse.` and the
/// subtype); a direct mount shows `fuse`.
pub const FS_TYPE: &str = "fuse.cowfat";
/// How the mount's source (its FSName) begins: `cowfat:IMAGE`.
pub const FS_NAME_PREFIX: &str = "cowfat:";
const SUBTYPE: &str = "cowfat";

pub fn run(a: &MountArgs, index: Option<u32>) -> Outcome {
    let read_only = parse_options(a)?;
    if !a.foreground {
        return daemon::detach(a, index);
    }
    let fail = |action, why: String| Failure::new(&a.image, action, None, Cause::Other(why));
    if !Path::new("/dev/fuse").exists() {
        return Err(fail("mount", "/dev/fuse is missing: load the fuse module (modprobe fuse) or give the container the device".into()));
    }
    let owner = owner_of(&a.dir)
        .map_err(|e| Failure::new(&a.image, "mount", None, Cause::Host(a.dir.clone(), e)))?;
    let s = volume::open(&a.image, !read_only, index)?;
    let image = s.image.clone();
    let shared = shared_state(s, owner).map_err(|e| fail("mount", e))?;
    serve(a, read_only, shared.clone()).map_err(|e| fail("mount", e))?;
    finish(&image, &shared)?;
    Ok(None)
}

/// `-o ro|rw` (comma-separated or repeated); anything else is a usage error.
fn parse_options(a: &MountArgs) -> Result<bool, Failure> {
    let mut read_only = false;
    for o in &a.options {
        match o.as_str() {
            "ro" => read_only = true,
            "rw" => read_only = false,
            other => {
                let why = Cause::Usage(format!("unknown mount option \"{other}\" (known: ro, rw)"));
                return Err(Failure::new(&a.image, "mount", None, why));
            }
        }
    }
    Ok(read_only)
}

fn owner_of(dir: &Path) -> std::io::Result<Owner> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    if !m.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok(Owner {
        uid: m.uid(),
        gid: m.gid(),
    })
}

fn shared_state(mut s: ImageSession, owner: Owner) -> Result<Shared, String> {
    let root = s.vol.root().map_err(|e| crate::error::fs_cause(&e))?;
    let blksize = s.vol.volume_info().cluster_size;
    Ok(Arc::new(Mutex::new(State {
        vol: Some(s.vol),
        table: Table::default(),
        root,
        owner,
        blksize,
        dirty: false,
    })))
}

fn config(a: &MountArgs, read_only: bool) -> Config {
    let mut c = Config::default();
    c.mount_options = vec![
        MountOption::FSName(format!("{FS_NAME_PREFIX}{}", a.image.display())),
        MountOption::Subtype(SUBTYPE.into()),
        MountOption::DefaultPermissions,
        if read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    c.n_threads = Some(THREADS);
    c
}

/// Mounts, serves until unmounted, and returns when the kernel has let go.
fn serve(a: &MountArgs, read_only: bool, shared: Shared) -> Result<(), String> {
    // Block the signals before any thread exists, so only the waiter below receives them.
    let signals = stop_signals();
    signals
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    let notifier = Arc::new(OnceLock::new());
    let fs_shared = shared.clone();
    let fs = CowfatFs::new(shared, a.writeback_cache, notifier.clone());
    let mut session = Session::new(fs, &a.dir, &config(a, read_only))
        .map_err(|e| format!("cannot mount it at {}: {e}", a.dir.display()))?;
    let _ = notifier.set(session.notifier());
    start_periodic_commit(fs_shared);
    raise_read_ahead_once_live(a.dir.clone());
    let unmounter = session.unmount_callable();
    let dir = a.dir.clone();
    std::thread::spawn(move || unmount_on_signal(signals, unmounter, &dir));
    note(format_args!(
        "serving {} at {}",
        a.image.display(),
        a.dir.display()
    ));
    if a.detached_child {
        daemon::release_stderr();
    }
    session
        .run()
        .map_err(|e| format!("the FUSE session failed: {e}"))
}

/// How long changes may wait in memory before they are committed: fs-core's
/// `LAZY_COMMIT_INTERVAL_MS` (ext4's default), which the Windows driver's lazy commit uses too.
const COMMIT_INTERVAL: std::time::Duration =
    std::time::Duration::from_millis(fs_core::LAZY_COMMIT_INTERVAL_MS as u64);

/// Commits changes every few seconds, so that what a crash can lose is bounded in time even
/// when no program calls fsync. Ends when the volume is gone (unmounted).
fn start_periodic_commit(shared: Shared) {
    std::thread::spawn(move || loop {
        std::thread::sleep(COMMIT_INTERVAL);
        let mut st = state::lock(&shared);
        if st.vol.is_none() {
            return;
        }
        if let Err(e) = st.sync() {
            note(format_args!("periodic commit failed: {e:?}"));
        }
    });
}

/// The read-ahead the mount asks for: as large as one READ request (`fs::MAX_WRITE`, which
/// also sets the largest request the kernel sends).
pub const READ_AHEAD_KIB: u32 = fs::MAX_WRITE / 1024;

/// The kernel gives a FUSE mount the read-ahead of a new backing device (128 KiB) and the
/// server cannot ask for more in `INIT`, so a cold sequential read goes in 128 KiB round
/// trips. Once `INIT` is answered (a `stat` of the mount waits for it), the mount's own
/// backing-device setting is raised, as an administrator would with `read_ahead_kb`. Root
/// only; without the right to, the mount keeps the kernel's default and says nothing.
fn raise_read_ahead_once_live(dir: PathBuf) {
    std::thread::spawn(move || {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(&dir) else {
            return;
        };
        let dev = meta.dev();
        let path = format!(
            "/sys/class/bdi/{}:{}/read_ahead_kb",
            rustix::fs::major(dev),
            rustix::fs::minor(dev)
        );
        match std::fs::write(&path, format!("{READ_AHEAD_KIB}\n")) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
            Err(e) => note(format_args!("cannot raise the read-ahead ({path}): {e}")),
        }
    });
}

fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set
}

fn unmount_on_signal(signals: SigSet, mut unmounter: SessionUnmounter, dir: &Path) {
    if let Ok(sig) = signals.wait() {
        note(format_args!("{sig}: unmounting"));
        if let Err(e) = unmounter.unmount() {
            // Busy (a process has its working directory inside): detach it lazily instead,
            // so the session still ends and the volume is closed cleanly.
            note(format_args!("unmount failed ({e}); detaching lazily"));
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A line on stderr that never fails the mount: a detached mount's stderr may be gone.
fn note(msg: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "cowfat: {msg}");
}

/// After the session: fs-core writes everything out and unmounts the volume.
fn finish(image: &Path, shared: &Shared) -> Result<(), Failure> {
    let vol = state::lock(shared).vol.take();
    let Some(vol) = vol else { return Ok(()) };
    let dev = vol
        .unmount()
        .map_err(|e| Failure::new(image, "unmount", None, e.into()))?;
    let mut disk = dev.into_inner();
    crate::image::device::BlockDevice::flush(&mut disk)
        .map_err(|e| Failure::new(image, "unmount", None, Cause::Image(e.into())))?;
    note(format_args!("{} unmounted cleanly", image.display()));
    Ok(())
}
