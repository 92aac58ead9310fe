//! create: a new image file, its partition table and a freshly formatted cowfat volume.

use std::path::Path;

use fs_core::time::NtTime;
use fs_core::FormatOptions;

use super::Outcome;
use crate::cli::{CreateArgs, FormatArgs};
use crate::error::{Cause, Failure};
use crate::image::device::{BlockDevice, DeviceError};
use crate::image::partition::PartitionError;
use crate::image::vhd::VhdError;
use crate::image::vhdx::VhdxError;
use crate::image::{self, guid::Guid, ImageError, ImageFormat};
use crate::output::value_name;
use crate::progress::Progress;
use crate::size::{human, SizeArg};
use crate::staged::{CommitError, StagedFile};

/// The image is made under a temporary name beside IMAGE and renamed into place once
/// formatted and flushed; any failure removes it, so a failed create leaves nothing behind
/// (and `--force` leaves the old image untouched until the new one is complete).
pub fn run(a: &CreateArgs) -> Outcome {
    let fail = |cause| Failure::new(&a.image, "create", None, cause);
    let cluster_size =
        check_cluster_size(a.layout.cluster_size).map_err(|why| fail(Cause::Usage(why)))?;
    if !a.force && std::fs::symlink_metadata(&a.image).is_ok() {
        return Err(fail(ImageError::Exists.into()));
    }
    let format = choose_format(&a.image, a.format).map_err(|why| fail(Cause::Usage(why)))?;
    let staged = StagedFile::new(&a.image);
    let (dev, part) = image::create(
        staged.path(),
        a.size.bytes,
        format,
        a.layout.partition,
        false,
    )
    .map_err(|e| fail(size_cause(e, &a.size)))?;
    format_volume(dev, cluster_size, &a.layout.label).map_err(fail)?;
    staged.commit(a.force).map_err(|e| match e {
        CommitError::Exists => fail(ImageError::Exists.into()),
        CommitError::Io(e) => fail(ImageError::Create(e).into()),
    })?;
    report(&a.image, a, format, part.start, part.len);
    Ok(None)
}

/// The format asked for, else the one the name implies. Windows picks the driver by the
/// extension, so a VHD named .vhdx (or the reverse) would not attach: refused.
fn choose_format(image: &Path, asked: Option<ImageFormat>) -> Result<ImageFormat, String> {
    let extension = image
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let named = match extension.as_deref() {
        Some("vhdx") => Some((
            ImageFormat::Vhdx,
            [ImageFormat::Vhdx, ImageFormat::VhdxDynamic],
        )),
        Some("vhd") => Some((
            ImageFormat::Vhd,
            [ImageFormat::Vhd, ImageFormat::VhdDynamic],
        )),
        _ => None,
    };
    match (asked, named) {
        (None, Some((default, _))) => Ok(default),
        (None, None) => Ok(ImageFormat::Vhd),
        (Some(f), Some((_, allowed))) if !allowed.contains(&f) => Err(format!(
            "--format {} does not match the name's .{} extension (Windows opens the image by its extension)",
            value_name(&f),
            extension.unwrap_or_default()
        )),
        (Some(f), _) => Ok(f),
    }
}

/// Size problems are worded with the size as the user typed it; they are usage errors.
fn size_cause(e: ImageError, size: &SizeArg) -> Cause {
    match e {
        ImageError::Vhd(VhdError::TooLarge(_)) => Cause::Usage(format!(
            "a VHD is limited to 2040 GiB; {size} was asked for (--format vhdx allows up to 64 TiB)"
        )),
        ImageError::Vhdx(VhdxError::TooLarge(_)) => {
            Cause::Usage(format!("a VHDX is limited to 64 TiB; {size} was asked for"))
        }
        ImageError::Vhd(VhdError::SizeUnaligned(_))
        | ImageError::Vhdx(VhdxError::SizeUnaligned(_)) => Cause::Usage(format!(
            "the disk size {size} is not a whole number of 512-byte sectors"
        )),
        ImageError::Partition(PartitionError::TooSmall { .. }) => Cause::Usage(format!(
            "the disk ({size}) is too small for a 1 MiB-aligned partition"
        )),
        other => other.into(),
    }
}

/// `cowfat format`: a partition table and a volume in an image another program made.
pub fn format_existing(a: &FormatArgs) -> Outcome {
    let fail = |cause| Failure::new(&a.image, "format", None, cause);
    let cluster_size =
        check_cluster_size(a.layout.cluster_size).map_err(|why| fail(Cause::Usage(why)))?;
    let (dev, part) = image::prepare_existing(&a.image, a.layout.partition, a.force)
        .map_err(|e| fail(e.into()))?;
    let format = dev.inner().format();
    let disk_size = dev.inner().size();
    format_volume(dev, cluster_size, &a.layout.label).map_err(fail)?;
    println!(
        "formatted {}: {} disk of {}, {} partition at {} of {}, cowfat volume with {}-byte clusters",
        a.image.display(),
        value_name(&format),
        human(disk_size),
        value_name(&a.layout.partition),
        part.start,
        human(part.len),
        a.layout.cluster_size
    );
    Ok(None)
}

fn check_cluster_size(n: u64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(c) if c.is_power_of_two() && (512..=65536).contains(&c) => Ok(c),
        _ => Err(format!(
            "the cluster size must be a power of two from 512 to 64K, not {n}"
        )),
    }
}

fn format_volume(
    dev: image::PartitionDevice<image::Disk>,
    cluster_size: u32,
    label: &str,
) -> Result<(), Cause> {
    let mut dev = Counted::new(dev, Progress::spinner("formatting"));
    let options = FormatOptions {
        cluster_size,
        label: label.to_owned(),
        serial: u64::from_le_bytes(Guid::random().0[..8].try_into().unwrap_or([0; 8])),
        time: now(),
        ..FormatOptions::default()
    };
    fs_core::format(&mut dev, &options)?;
    dev.flush().map_err(|e| Cause::Image(e.into()))?;
    Ok(())
}

fn now() -> NtTime {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    NtTime::from_unix(i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_nanos())
}

fn report(path: &Path, a: &CreateArgs, format: ImageFormat, start: u64, len: u64) {
    println!(
        "created {}: {} disk of {}, {} partition at {start} of {}, cowfat volume with {}-byte clusters",
        path.display(),
        value_name(&format),
        a.size,
        value_name(&a.layout.partition),
        human(len),
        a.layout.cluster_size
    );
}

/// A device that moves a progress display with every byte written or zeroed (formatting a
/// large fixed image can take a while on hosts without sparse files).
struct Counted<D> {
    inner: D,
    progress: Progress,
}

impl<D> Counted<D> {
    fn new(inner: D, progress: Progress) -> Self {
        Self { inner, progress }
    }
}

impl<D: BlockDevice> BlockDevice for Counted<D> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.progress.inc(buf.len() as u64);
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.inner.flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        self.progress.inc(len);
        self.inner.write_zeroes(offset, len)
    }
}
