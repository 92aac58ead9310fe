//! The scratch disk every workload writes to: a loop-mounted ext4 file system of its own, so
//! "bytes written to storage" can be read off one block device's counters
//! (`/sys/block/loopN/stat`, sectors written) for every system alike — cowfat's image, the
//! overlayfs upper directory, the raw file and the FAT images all live on it. The figure
//! includes what ext4 itself writes (its journal, inode updates); it is what the disk saw.
//! Without root there is no loop device: the scratch is a plain directory and bytes are not
//! measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::host::{self, Mount};

#[derive(Debug)]
pub struct Scratch {
    /// Where workloads put their files.
    pub dir: PathBuf,
    /// `loopN` when the scratch is a loop device.
    loop_name: Option<String>,
    mount: Option<Mount>,
    backing: Option<PathBuf>,
    base: PathBuf,
    /// Held (an exclusive `flock`) for the run's life: a second run on the same base would
    /// unmount and delete this one's disk. The kernel drops it when the process ends, so a
    /// killed run does not block the next.
    _lock: std::fs::File,
}

/// Takes `base`'s run lock, or says which base to change.
fn lock_base(base: &Path) -> Result<std::fs::File> {
    let path = base.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(anyhow::anyhow!(
            "another cowfat-bench run is using {} (its scratch disk would be destroyed); \
             wait for it or give this run its own --scratch DIR",
            base.display()
        )),
        Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

impl Scratch {
    /// Makes the scratch under `base` (a directory on the disk under test), `size` bytes.
    pub fn new(base: &Path, size: u64) -> Result<Scratch> {
        std::fs::create_dir_all(base)
            .with_context(|| format!("creating the scratch directory {}", base.display()))?;
        let lock = lock_base(base)?;
        let dir = base.join("mnt");
        if host::is_mounted(&dir) {
            // Left by a killed earlier run.
            let _ = Command::new("umount").arg(&dir).status();
        }
        if !host::is_root() {
            std::fs::create_dir_all(&dir)?;
            return Ok(Scratch {
                dir,
                loop_name: None,
                mount: None,
                backing: None,
                base: base.to_path_buf(),
                _lock: lock,
            });
        }
        let backing = base.join("scratch-ext4.img");
        let _ = std::fs::remove_file(&backing);
        std::fs::File::create(&backing)?.set_len(size)?;
        // Initialise inode tables and journal now: lazy init would write in the background
        // and show up in the byte counts of whatever runs next.
        host::run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
                .arg(&backing),
            Duration::from_secs(300),
        )?;
        let dev = host::run(
            Command::new("losetup").args(["-f", "--show"]).arg(&backing),
            Duration::from_secs(30),
        )?;
        let dev = dev.trim().to_owned();
        let loop_name = dev.trim_start_matches("/dev/").to_owned();
        let mount = match Mount::kernel(&[&dev], &dir) {
            Ok(m) => m,
            Err(e) => {
                let _ = Command::new("losetup").args(["-d", &dev]).status();
                return Err(e);
            }
        };
        Ok(Scratch {
            dir,
            loop_name: Some(loop_name),
            mount: Some(mount),
            backing: Some(backing),
            base: base.to_path_buf(),
            _lock: lock,
        })
    }

    /// A fresh empty directory on the scratch disk.
    pub fn fresh(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
        }
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }

    /// Mount points live outside the scratch so that unmounting the scratch never meets them.
    pub fn mount_point(&self, name: &str) -> Result<PathBuf> {
        let p = self.base.join("mp").join(name);
        std::fs::create_dir_all(&p)?;
        Ok(p)
    }

    /// Flushes the scratch file system and returns the bytes its device has written so far.
    pub fn written(&self) -> Option<u64> {
        let name = self.loop_name.as_ref()?;
        host::syncfs(&self.dir).ok()?;
        let stat = std::fs::read_to_string(format!("/sys/block/{name}/stat")).ok()?;
        // Field 7 (index 6) is sectors written, always in 512-byte units.
        let sectors: u64 = stat.split_whitespace().nth(6)?.parse().ok()?;
        Some(sectors * 512)
    }

    pub fn remove(&self, path: &Path) {
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            if let Err(e) = m.unmount() {
                eprintln!("warning: scratch unmount: {e:#}");
            }
        }
        if let Some(name) = &self.loop_name {
            let _ = Command::new("losetup")
                .args(["-d", &format!("/dev/{name}")])
                .status();
        }
        if let Some(b) = &self.backing {
            let _ = std::fs::remove_file(b);
        }
    }
}
