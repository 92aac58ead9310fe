//! Disk images: open or create a VHDX or VHD (fixed or dynamic) or raw file, find its
//! partition table and hand the cowfat partition to fs-core as a `BlockDevice`.

pub mod device;
pub mod file;
pub mod guid;
pub mod partition;
pub mod raw;
pub mod vhd;
pub mod vhdx;

use std::fs::{File, OpenOptions};
use std::path::Path;

use device::{check_range, to_usize, BlockDevice, DeviceError, DeviceErrorKind, SECTOR};
use file::HostFile;
use partition::{Partition, PartitionError, Scheme, Table};
use raw::RawDisk;
use vhd::{DeviceErrorText, VhdDisk, VhdError, VhdKind};
use vhdx::{VhdxDisk, VhdxError, VhdxKind};

/// The container format of an image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// Fixed-size VHD: the disk's bytes and a footer.
    Vhd,
    /// Dynamic VHD: blocks allocated as they are written.
    VhdDynamic,
    /// Raw disk bytes.
    Raw,
    /// Fixed-size VHDX: every block allocated up front.
    Vhdx,
    /// Dynamic VHDX: blocks allocated as they are written.
    VhdxDynamic,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot open it: {0}")]
    Open(std::io::Error),
    #[error("cannot create it: {0}")]
    Create(std::io::Error),
    #[error("it already exists (pass --force to overwrite it)")]
    Exists,
    #[error("it is {0} bytes long, too short to be a disk image")]
    TooShort(u64),
    #[error("it is named like a VHD but does not end with a VHD footer; the file is truncated or not a VHD")]
    MissingFooter,
    #[error("it is named like a VHDX but does not start with the \"vhdxfile\" signature; the file is damaged or not a VHDX")]
    MissingVhdxSignature,
    #[error("{0}")]
    Vhd(#[from] VhdError),
    #[error("{0}")]
    Vhdx(#[from] VhdxError),
    #[error("{0}")]
    Partition(#[from] PartitionError),
    #[error("it has a {scheme} partition table but no cowfat partition (found: {found})")]
    NoCowfatPartition { scheme: &'static str, found: String },
    #[error("it has no partition {index} (partitions: {found})")]
    NoSuchPartition { index: u32, found: String },
    #[error("it already holds {0} (pass --force to replace it; everything on the disk is lost)")]
    NotBlank(&'static str),
    #[error("{0}")]
    Device(DeviceErrorText),
}

impl From<DeviceError> for ImageError {
    fn from(e: DeviceError) -> Self {
        Self::Device(DeviceErrorText(e))
    }
}

/// Words for a device error, shared by every error that carries one.
pub fn describe_device_error(e: &DeviceError, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let at = e.offset;
    match e.kind {
        DeviceErrorKind::OutOfRange => write!(f, "an access at byte {at} falls outside the disk"),
        DeviceErrorKind::Misaligned => write!(f, "an access at byte {at} is not sector-aligned"),
        DeviceErrorKind::ReadOnly => write!(f, "the image is open read-only (write at byte {at})"),
        DeviceErrorKind::Io { code } if code >= 0 => {
            let os = std::io::Error::from_raw_os_error(code);
            write!(f, "I/O error at byte {at}: {os}")
        }
        DeviceErrorKind::Io { .. } => write!(f, "I/O error at byte {at} (the file ended early?)"),
        _ => write!(f, "device error at byte {at}"),
    }
}

/// The whole disk inside an image file.
#[derive(Debug)]
pub enum Disk {
    Raw(RawDisk),
    // Boxed: the VHD state (footer, BAT) is much larger than a raw file handle.
    Vhd(Box<VhdDisk>),
    Vhdx(Box<VhdxDisk>),
}

impl Disk {
    pub fn format(&self) -> ImageFormat {
        match self {
            Self::Raw(_) => ImageFormat::Raw,
            Self::Vhd(v) if v.kind() == VhdKind::Fixed => ImageFormat::Vhd,
            Self::Vhd(_) => ImageFormat::VhdDynamic,
            Self::Vhdx(v) if v.kind() == VhdxKind::Fixed => ImageFormat::Vhdx,
            Self::Vhdx(_) => ImageFormat::VhdxDynamic,
        }
    }

    fn dev(&mut self) -> &mut dyn BlockDevice {
        match self {
            Self::Raw(d) => d,
            Self::Vhd(d) => &mut **d,
            Self::Vhdx(d) => &mut **d,
        }
    }

    fn dev_ref(&self) -> &dyn BlockDevice {
        match self {
            Self::Raw(d) => d,
            Self::Vhd(d) => d,
            Self::Vhdx(d) => d,
        }
    }
}

impl BlockDevice for Disk {
    fn size(&self) -> u64 {
        self.dev_ref().size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.dev().read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.dev().write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.dev().flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        self.dev().write_zeroes(offset, len)
    }
}

/// A window [start, start+len) of a disk, seen as a device of its own (what fs-core gets).
#[derive(Debug)]
pub struct PartitionDevice<D> {
    inner: D,
    start: u64,
    len: u64,
}

impl<D: BlockDevice> PartitionDevice<D> {
    pub fn new(inner: D, start: u64, len: u64) -> Self {
        Self { inner, start, len }
    }
    pub fn into_inner(self) -> D {
        self.inner
    }
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: BlockDevice> BlockDevice for PartitionDevice<D> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        check_range(self.len, offset, buf.len())?;
        self.inner.read_at(self.start + offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        check_range(self.len, offset, buf.len())?;
        self.inner.write_at(self.start + offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.inner.flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        check_range(self.len, offset, to_usize(len))?;
        self.inner.write_zeroes(self.start + offset, len)
    }
}

/// An image opened down to the partition that holds the volume.
#[derive(Debug)]
pub struct OpenImage {
    pub format: ImageFormat,
    pub disk_size: u64,
    pub table: Table,
    pub partition: Partition,
    pub dev: PartitionDevice<Disk>,
}

/// Opens the whole disk of an image file: VHD if its last sector is a VHD footer, else raw.
pub fn open_disk(path: &Path, writable: bool) -> Result<Disk, ImageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(ImageError::Open)?;
    let mut host = HostFile::new(file, writable);
    let len = host.file_len().map_err(ImageError::Open)?;
    if len < 2 * SECTOR {
        return Err(ImageError::TooShort(len));
    }
    let mut first = [0u8; 512];
    host.read_exact_at(0, &mut first)?;
    if vhdx::has_signature(&first) {
        return Ok(Disk::Vhdx(Box::new(VhdxDisk::open(host, len)?)));
    }
    if is_named(path, "vhdx") {
        return Err(ImageError::MissingVhdxSignature);
    }
    let mut last = [0u8; 512];
    host.read_exact_at(len - SECTOR, &mut last)?;
    if vhd::has_footer_cookie(&last) {
        return Ok(Disk::Vhd(Box::new(VhdDisk::open(host, len)?)));
    }
    if vhd::has_footer_cookie(&first) {
        // Dynamic VHDs start with a footer copy; without the one at the end they are cut short.
        return Err(VhdError::Truncated.into());
    }
    if is_named(path, "vhd") {
        return Err(ImageError::MissingFooter);
    }
    Ok(Disk::Raw(RawDisk::new(host, len / SECTOR * SECTOR)))
}

fn is_named(path: &Path, extension: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(extension))
}

/// Opens an image down to its cowfat partition (or the one `--partition-index` names).
pub fn open(path: &Path, writable: bool, index: Option<u32>) -> Result<OpenImage, ImageError> {
    let mut disk = open_disk(path, writable)?;
    let format = disk.format();
    let disk_size = disk.size();
    let table = if probe::is_cowfat(&mut disk) == Some(true) {
        // A whole-disk volume whose boot sector happens to look like an MBR.
        Table {
            scheme: Scheme::None,
            partitions: Vec::new(),
        }
    } else {
        partition::read_table(&mut disk)?
    };
    let partition = choose_partition(&mut disk, &table, index)?;
    let dev = PartitionDevice::new(disk, partition.start, partition.len);
    Ok(OpenImage {
        format,
        disk_size,
        table,
        partition,
        dev,
    })
}

fn whole_disk(size: u64) -> Partition {
    Partition {
        index: 0,
        start: 0,
        len: size,
        kind: partition::PartitionType::Mbr(0),
        name: String::new(),
    }
}

fn list_partitions(table: &Table) -> String {
    if table.partitions.is_empty() {
        return "none".into();
    }
    let items: Vec<String> = table
        .partitions
        .iter()
        .map(|p| format!("{} of type {}", p.index, p.kind))
        .collect();
    items.join(", ")
}

/// The named partition, else the first that carries a cowfat volume.
fn choose_partition(
    disk: &mut Disk,
    table: &Table,
    index: Option<u32>,
) -> Result<Partition, ImageError> {
    if table.scheme == Scheme::None {
        return match index {
            None | Some(0) => Ok(whole_disk(disk.size())),
            Some(index) => Err(ImageError::NoSuchPartition {
                index,
                found: "none; the image has no partition table".into(),
            }),
        };
    }
    if let Some(index) = index {
        return table
            .partitions
            .iter()
            .find(|p| p.index == index)
            .cloned()
            .ok_or_else(|| ImageError::NoSuchPartition {
                index,
                found: list_partitions(table),
            });
    }
    for p in &table.partitions {
        let mut window = PartitionDevice::new(&mut *disk, p.start, p.len);
        let verdict = probe::is_cowfat(&mut window).unwrap_or_else(|| p.kind.is_cowfat_type());
        if verdict {
            return Ok(p.clone());
        }
    }
    Err(ImageError::NoCowfatPartition {
        scheme: if table.scheme == Scheme::Gpt {
            "GPT"
        } else {
            "MBR"
        },
        found: list_partitions(table),
    })
}

/// Creates an image file of `size` bytes with a partition table and returns the volume's
/// partition as a device (not yet formatted).
pub fn create(
    path: &Path,
    size: u64,
    format: ImageFormat,
    scheme: Scheme,
    force: bool,
) -> Result<(PartitionDevice<Disk>, Partition), ImageError> {
    let file = create_file(path, force)?;
    let mut disk = match format {
        ImageFormat::Vhd => Disk::Vhd(Box::new(VhdDisk::create_fixed(file, size)?)),
        ImageFormat::VhdDynamic => Disk::Vhd(Box::new(VhdDisk::create_dynamic(file, size)?)),
        ImageFormat::Raw => {
            file.set_len(size).map_err(ImageError::Create)?;
            Disk::Raw(RawDisk::new(HostFile::new(file, true), size))
        }
        ImageFormat::Vhdx => Disk::Vhdx(Box::new(VhdxDisk::create(file, size, true)?)),
        ImageFormat::VhdxDynamic => Disk::Vhdx(Box::new(VhdxDisk::create(file, size, false)?)),
    };
    let part = partition::write_table(&mut disk, scheme)?;
    Ok((PartitionDevice::new(disk, part.start, part.len), part))
}

/// Writes a partition table into an existing image (one another program made, e.g.
/// `qemu-img create` or Hyper-V) and returns the volume's partition, not yet formatted. A disk
/// that already has a partition table or a cowfat volume is refused unless `force`.
pub fn prepare_existing(
    path: &Path,
    scheme: Scheme,
    force: bool,
) -> Result<(PartitionDevice<Disk>, Partition), ImageError> {
    let mut disk = open_disk(path, true)?;
    if !force {
        if probe::is_cowfat(&mut disk) == Some(true) {
            return Err(ImageError::NotBlank("a cowfat volume"));
        }
        match partition::read_table(&mut disk) {
            Ok(t) if t.scheme == Scheme::None => {}
            Ok(t) if t.scheme == Scheme::Gpt => {
                return Err(ImageError::NotBlank("a GPT partition table"))
            }
            Ok(_) => return Err(ImageError::NotBlank("an MBR partition table")),
            Err(_) => return Err(ImageError::NotBlank("a damaged partition table")),
        }
    }
    let part = partition::write_table(&mut disk, scheme)?;
    Ok((PartitionDevice::new(disk, part.start, part.len), part))
}

fn create_file(path: &Path, force: bool) -> Result<File, ImageError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => ImageError::Exists,
        _ => ImageError::Create(e),
    })
}

/// Recognising a cowfat volume by its own signature.
pub mod probe {
    use super::device::{BlockDevice, SECTOR};
    use super::to_usize;

    /// fs-core's boot block signature, at byte 3 (where NTFS and exFAT keep theirs).
    pub const SIGNATURE: &[u8; 8] = &fs_core::ondisk::boot::SIGNATURE;
    const SIGNATURE_AT: usize = 3;

    /// `Some(true)` if the device starts with a cowfat boot block, `Some(false)` if it does
    /// not; `None` when it could not be read (callers fall back to the partition type).
    pub fn is_cowfat(dev: &mut dyn BlockDevice) -> Option<bool> {
        let mut sector = vec![0u8; to_usize(SECTOR)];
        dev.read_at(0, &mut sector).ok()?;
        Some(&sector[SIGNATURE_AT..SIGNATURE_AT + SIGNATURE.len()] == SIGNATURE)
    }
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod recording;
#[cfg(test)]
mod tests;
