//! In-process systems: cowfat's fs-core on an image opened by format-tool's image layer
//! (the same code `cowfat mount` serves), and the `fatfs` crate on a FAT image file.

use std::cell::RefCell;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use format_tool::image::{self, partition::Scheme, Disk, ImageFormat, PartitionDevice};
use fs_core::{
    BlockDevice, CountingDevice, DeviceError, FileAttributes, FileId, FileKind, FormatOptions,
    MountOptions, Name, Volume,
};

pub type Dev = CountingDevice<Timed<PartitionDevice<Disk>>>;
pub type Vol = Volume<Dev>;

/// Creates an image (fixed VHD unless `dynamic`: what `cowfat create` makes by default,
/// with a GPT) and formats it with 4 KiB clusters.
pub fn create_image(path: &Path, size: u64, dynamic: bool) -> Result<()> {
    let format = if dynamic {
        ImageFormat::VhdDynamic
    } else {
        ImageFormat::Vhd
    };
    let (mut dev, _) = image::create(path, size, format, Scheme::Gpt, true)
        .with_context(|| format!("creating {}", path.display()))?;
    fs_core::format(&mut dev, &FormatOptions::default()).context("formatting")?;
    fs_core::BlockDevice::flush(&mut dev).map_err(|e| anyhow!("flushing the image: {e:?}"))?;
    Ok(())
}

/// Mounts the image's volume read-write, counting what fs-core writes to the device.
pub fn mount(path: &Path) -> Result<Vol> {
    let img =
        image::open(path, true, None).with_context(|| format!("opening {}", path.display()))?;
    Volume::mount(
        CountingDevice::new(Timed::new(img.dev)),
        MountOptions::default(),
    )
    .with_context(|| format!("mounting {}", path.display()))
}

/// One device call the [`Timed`] layer saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Flush,
}

/// Times each device call while `log` is on, so a workload can say where its time went
/// (the first write: the cluster copy, the data flush, the journal, the commit flush, the
/// home writes).
#[derive(Debug)]
pub struct Timed<D> {
    inner: D,
    log: RefCell<Option<Vec<(Op, Duration)>>>,
}

impl<D> Timed<D> {
    pub fn new(inner: D) -> Self {
        Timed {
            inner,
            log: RefCell::new(None),
        }
    }

    /// Starts a fresh log of every call from now on (through a shared reference: the
    /// counting device above hands out only that).
    pub fn start_log(&self) {
        *self.log.borrow_mut() = Some(Vec::new());
    }

    /// Stops logging and returns what was logged.
    pub fn take_log(&self) -> Vec<(Op, Duration)> {
        self.log.borrow_mut().take().unwrap_or_default()
    }

    fn timed<T>(&mut self, op: Op, f: impl FnOnce(&mut D) -> T) -> T {
        if self.log.get_mut().is_none() {
            return f(&mut self.inner);
        }
        let t = Instant::now();
        let r = f(&mut self.inner);
        let d = t.elapsed();
        if let Some(log) = self.log.get_mut() {
            log.push((op, d));
        }
        r
    }
}

impl<D: BlockDevice> BlockDevice for Timed<D> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.timed(Op::Read, |d| d.read_at(offset, buf))
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.timed(Op::Write, |d| d.write_at(offset, buf))
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.timed(Op::Flush, |d| d.flush())
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        self.timed(Op::Write, |d| d.write_zeroes(offset, len))
    }
}

pub fn unmount(vol: Vol) -> Result<()> {
    vol.unmount().context("unmounting")?;
    Ok(())
}

pub fn name(s: &str) -> Result<Name> {
    Name::from_str(s).map_err(|e| anyhow!("bad name {s:?}: {e:?}"))
}

pub fn create_file(vol: &mut Vol, dir: FileId, n: &str) -> Result<FileId> {
    Ok(vol.create(dir, &name(n)?, FileKind::File, FileAttributes::empty())?)
}

pub fn mkdir(vol: &mut Vol, dir: FileId, n: &str) -> Result<FileId> {
    Ok(vol.create(dir, &name(n)?, FileKind::Directory, FileAttributes::empty())?)
}

pub fn lookup(vol: &mut Vol, dir: FileId, n: &str) -> Result<FileId> {
    Ok(vol.lookup(dir, &name(n)?)?)
}

/// Writes `total` bytes of `chunk` sized pieces at the start of `f`.
pub fn write_all(
    vol: &mut Vol,
    f: FileId,
    total: u64,
    chunk: &[u8],
    cap: &crate::cap::Cap,
) -> Result<()> {
    let mut at = 0u64;
    while at < total {
        let n = chunk.len().min((total - at) as usize);
        let done = vol.write(f, at, &chunk[..n])?;
        if done != n {
            return Err(anyhow!("short write at {at}: {done} of {n}"));
        }
        at += n as u64;
        cap.check()?;
    }
    Ok(())
}

/// Reads `f` to its end in `buf` sized pieces; returns the bytes read.
pub fn read_all(vol: &mut Vol, f: FileId, buf: &mut [u8], cap: &crate::cap::Cap) -> Result<u64> {
    let mut at = 0u64;
    loop {
        let n = vol.read(f, at, buf)?;
        if n == 0 {
            return Ok(at);
        }
        at += n as u64;
        cap.check()?;
    }
}

/// The `fatfs` crate over a host image file, buffered with `fscommon::BufStream` as its
/// documentation recommends (unbuffered, every FAT entry read would be a system call).
pub mod fat {
    use super::*;
    use fatfs::{FileSystem, FormatVolumeOptions, FsOptions};
    use fscommon::BufStream;

    pub type Fs<'a> = FileSystem<BufStream<&'a File>>;

    /// A fresh FAT32 image of `size` bytes with 4 KiB clusters.
    pub fn create_image(path: &Path, size: u64) -> Result<File> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        f.set_len(size)?;
        fatfs::format_volume(
            &mut f,
            FormatVolumeOptions::new()
                .fat_type(fatfs::FatType::Fat32)
                .bytes_per_cluster(4096),
        )
        .context("fatfs::format_volume")?;
        f.sync_all()?;
        Ok(f)
    }

    pub fn mount(mut f: &File) -> Result<Fs<'_>> {
        // The stream's position is the volume's start: formatting left it at the end.
        f.seek(SeekFrom::Start(0))?;
        FileSystem::new(BufStream::new(f), FsOptions::new()).context("fatfs::FileSystem::new")
    }
}
