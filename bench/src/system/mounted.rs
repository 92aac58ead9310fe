//! Systems reached through a mount point: `cowfat mount` and the FUSE peers (bindfs,
//! fusefat, fuse-overlayfs), kernel overlayfs and tmpfs. Every server runs in the foreground
//! as our child so its memory can be read and it can be stopped; `host::Mount` unmounts.
//! The workloads then use ordinary file calls, the same for every system.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Context, Result};

use crate::cap::Cap;
use crate::host::{self, Mount};

/// `cowfat mount IMAGE DIR --foreground`.
pub fn cowfat(bin: &Path, image: &Path, dir: &Path, log: &Path) -> Result<Mount> {
    let mut c = Command::new(bin);
    c.arg("mount").arg(image).arg(dir).arg("--foreground");
    Mount::fuse(c, dir, log)
}

/// `cowfat mount IMAGE DIR --foreground --writeback-cache`.
pub fn cowfat_writeback(bin: &Path, image: &Path, dir: &Path, log: &Path) -> Result<Mount> {
    let mut c = Command::new(bin);
    c.arg("mount")
        .arg(image)
        .arg(dir)
        .args(["--foreground", "--writeback-cache"]);
    Mount::fuse(c, dir, log)
}

/// The FUSE options a user of a libfuse 2 server (bindfs, fusefat on Debian 12) passes for
/// throughput: writes larger than a page, up to libfuse 2's largest (128 KiB; only libfuse 3
/// and fuser negotiate `max_pages` for more). Without them every write is 4 KiB.
pub const LIBFUSE2_BIG_WRITES: &str = "big_writes,max_write=131072,max_readahead=131072";

/// bindfs options, as printed in the table.
pub fn bindfs_options() -> String {
    format!("-o {LIBFUSE2_BIG_WRITES}")
}

/// fusefat options, as printed in the table (`rw+`: read-write).
pub fn fusefat_options() -> String {
    format!("-o rw+,{LIBFUSE2_BIG_WRITES}")
}

/// bindfs: a FUSE pass-through of `src`, the cost of FUSE itself over the disk.
pub fn bindfs(src: &Path, dir: &Path, log: &Path) -> Result<Mount> {
    let mut c = Command::new("bindfs");
    c.arg("-f")
        .args(bindfs_options().split(' '))
        .arg(src)
        .arg(dir);
    Mount::fuse(c, dir, log)
}

/// fusefat, read-write, with big writes.
pub fn fusefat(image: &Path, dir: &Path, log: &Path) -> Result<Mount> {
    let mut c = Command::new("fusefat");
    c.arg("-f")
        .args(fusefat_options().split(' '))
        .arg(image)
        .arg(dir);
    Mount::fuse(c, dir, log)
}

pub struct Layers {
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl Layers {
    fn option(&self) -> String {
        format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lower.display(),
            self.upper.display(),
            self.work.display()
        )
    }
}

pub fn overlayfs(l: &Layers, dir: &Path) -> Result<Mount> {
    Mount::kernel(&["-t", "overlay", "overlay", "-o", &l.option()], dir)
}

pub fn fuse_overlayfs(l: &Layers, dir: &Path, log: &Path) -> Result<Mount> {
    let mut c = Command::new("fuse-overlayfs");
    c.arg("-f").arg("-o").arg(l.option()).arg(dir);
    Mount::fuse(c, dir, log)
}

pub fn tmpfs(dir: &Path, size: u64) -> Result<Mount> {
    Mount::kernel(
        &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
        dir,
    )
}

/// The first write into an existing file: open read-write, write one byte at 0, fsync.
pub fn first_write(path: &Path) -> Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all_at(&[0x5a], 0)?;
    f.sync_all()?;
    Ok(())
}

/// Writes `total` bytes to a new file in `chunk` pieces, then fsync.
pub fn write_file(path: &Path, total: u64, chunk: &[u8], cap: &Cap) -> Result<()> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut at = 0u64;
    while at < total {
        let n = chunk.len().min((total - at) as usize);
        f.write_all(&chunk[..n])?;
        at += n as u64;
        cap.check()?;
    }
    f.sync_all()?;
    Ok(())
}

/// Reads a file to its end in `chunk_len` pieces; returns its length.
pub fn read_file(path: &Path, chunk_len: usize, cap: &Cap) -> Result<u64> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; chunk_len];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        cap.check()?;
    }
}

/// Creates `names` with `data` each in `dir`, then syncs the file system.
pub fn create_many(dir: &Path, names: &[String], data: &[u8], cap: &Cap) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        std::fs::write(dir.join(n), data).with_context(|| format!("creating {n}"))?;
        if i % 64 == 0 {
            cap.check()?;
        }
    }
    host::syncfs(dir)
}

/// Lists `dir` and checks the count.
pub fn list(dir: &Path, expect: usize) -> Result<()> {
    let n = std::fs::read_dir(dir)?.count();
    if n != expect {
        return Err(anyhow!("listed {n} entries, expected {expect}"));
    }
    Ok(())
}

/// Reads every named file in full.
pub fn read_many(dir: &Path, names: &[String], len: usize, cap: &Cap) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        let got = std::fs::read(dir.join(n)).with_context(|| format!("reading {n}"))?;
        if got.len() != len {
            return Err(anyhow!("{n}: read {} bytes, expected {len}", got.len()));
        }
        if i % 64 == 0 {
            cap.check()?;
        }
    }
    Ok(())
}
