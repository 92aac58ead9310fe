//! The host: root or not, packages, commands with a time limit, page cache, mounts as
//! guards that undo themselves even when a workload fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Whether we run as root: mounts, loop devices and dropping the page cache need it.
pub fn is_root() -> bool {
    // /proc/self/status "Uid:\treal\teffective..." avoids a libc call (the crate forbids unsafe).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The Debian packages the peers come from, and one program each installs.
pub const PACKAGES: &[(&str, &str)] = &[
    ("mtools", "mcopy"),
    ("dosfstools", "mkfs.fat"),
    ("fusefat", "fusefat"),
    ("fuse-overlayfs", "fuse-overlayfs"),
    ("bindfs", "bindfs"),
];

/// Installs the missing peer packages with apt-get (root only). Returns a line per package
/// that is still missing, with the reason; those peers are then skipped.
pub fn install_peers() -> Vec<String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, prog)| which(prog).is_none())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Vec::new();
    }
    if !is_root() || which("apt-get").is_none() {
        return missing
            .iter()
            .map(|p| format!("{p}: not installed and cannot install it here (needs root and apt-get); run: sudo apt-get install {p}"))
            .collect();
    }
    eprintln!("installing peers: apt-get install {}", missing.join(" "));
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        // The package lists may be stale in a fresh container.
        let _ = Command::new("apt-get")
            .arg("update")
            .stdout(Stdio::null())
            .status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
    }
    PACKAGES
        .iter()
        .filter(|(pkg, prog)| missing.contains(pkg) && which(prog).is_none())
        .map(|(pkg, _)| format!("{pkg}: apt-get install failed"))
        .collect()
}

/// Runs a command to completion within `limit`; Err with its stderr on failure.
pub fn run(cmd: &mut Command, limit: Duration) -> Result<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    // Drain the pipes on threads so a chatty tool cannot block on a full pipe.
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_limited(&mut child, limit);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(stdout),
        Some(s) => bail!("{what} failed ({s}): {}", stderr.trim()),
        None => Err(crate::cap::CapExceeded(limit)).with_context(|| what),
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let mut bytes = Vec::new();
            let _ = r.read_to_end(&mut bytes);
            s = String::from_utf8_lossy(&bytes).into_owned();
        }
        s
    })
}

/// Waits for `child` up to `limit`; kills it and returns None past that.
pub fn wait_limited(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Flushes dirty data and drops the page cache, dentries and inodes. Without root this is
/// impossible; the caller notes that its "cold" runs were warm.
pub fn drop_caches() -> Result<()> {
    sync_all();
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("dropping the page cache")
}

pub fn sync_all() {
    let _ = Command::new("sync").status();
}

/// syncfs(2) on the file system holding `path`.
pub fn syncfs(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::syncfs(&f).with_context(|| format!("syncfs {}", path.display()))
}

/// Whether `dir` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| {
            s.lines()
                .any(|l| l.split(' ').nth(4) == Some(&*dir.to_string_lossy()))
        })
        .unwrap_or(false)
}

/// A mount this program made: unmounted when dropped, and its server (for FUSE) waited
/// for or killed, so an error anywhere never leaves a mount or a process behind.
#[derive(Debug)]
pub struct Mount {
    pub dir: PathBuf,
    /// The FUSE server, run in the foreground as our child.
    pub server: Option<Child>,
    done: bool,
}

impl Mount {
    /// Mounts with a kernel `mount` command.
    pub fn kernel(args: &[&str], dir: &Path) -> Result<Mount> {
        std::fs::create_dir_all(dir)?;
        let mut cmd = Command::new("mount");
        cmd.args(args).arg(dir);
        run(&mut cmd, Duration::from_secs(30))?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            server: None,
            done: false,
        })
    }

    /// Starts a FUSE server in the foreground (`cmd` must already name the mount point and
    /// ask for the foreground) and waits until its mount is live.
    pub fn fuse(mut cmd: Command, dir: &Path, log: &Path) -> Result<Mount> {
        std::fs::create_dir_all(dir)?;
        let logf = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        let mut m = Mount {
            dir: dir.to_path_buf(),
            server: Some(child),
            done: false,
        };
        let start = Instant::now();
        while !is_mounted(dir) {
            if let Some(Ok(Some(status))) = m.server.as_mut().map(|c| c.try_wait()) {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                m.done = true;
                bail!("{cmd:?} exited ({status}) before mounting: {}", text.trim());
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("{cmd:?} did not mount within 20 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(m)
    }

    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(|c| c.id())
    }

    /// Unmounts and waits for the server to finish (it writes its last metadata then).
    pub fn unmount(mut self) -> Result<()> {
        self.done = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        let mut result = Ok(());
        if is_mounted(&self.dir) {
            let ok = Command::new("umount")
                .arg(&self.dir)
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
                || Command::new("fusermount")
                    .arg("-u")
                    .arg(&self.dir)
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
            if !ok {
                // Busy (a stuck worker thread): detach it so the server can go.
                let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
                result = Err(anyhow!("{} was busy; detached it", self.dir.display()));
            }
        }
        if let Some(mut child) = self.server.take() {
            if wait_limited(&mut child, Duration::from_secs(60)).is_none() {
                result = Err(anyhow!(
                    "the server for {} did not exit within 60 s after unmount; killed",
                    self.dir.display()
                ));
            }
        }
        result
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.teardown() {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

/// Resident memory of a process, KiB: (VmRSS, VmHWM).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A few facts about the machine for the report header.
pub fn machine() -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map(|k| k as f64 / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{nproc} CPUs, {mem_gib:.1} GiB RAM, Linux {}",
        kernel.trim()
    )
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Why FUSE mounts cannot work here, if they cannot: /dev/fuse must open read-write (opening
/// it without mounting does nothing).
pub fn fuse_unavailable() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => None,
        Err(e) => Some(format!("cannot open /dev/fuse: {e}")),
    }
}
