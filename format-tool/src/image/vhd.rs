//! VHD images (Microsoft's Virtual Hard Disk Image Format Specification, version 1.0).
//!
//! Fixed: the disk's bytes, then a 512-byte footer. Dynamic: a copy of the footer, the dynamic
//! disk header, the block allocation table (BAT), data blocks (each a sector bitmap followed by
//! `block_size` bytes) and the footer at the very end. All fields are big-endian.

use std::fs::File;
use std::time::{SystemTime, UNIX_EPOCH};

use zerocopy::big_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::device::{check_range, to_usize, BlockDevice, DeviceError, SECTOR};
use super::file::{is_zero, HostFile};
use super::guid::Guid;

const FOOTER_COOKIE: &[u8; 8] = b"conectix";
const DYNAMIC_COOKIE: &[u8; 8] = b"cxsparse";
/// Bit 1 of Features is reserved and must always be set.
const FEATURES_RESERVED: u32 = 0x0000_0002;
const VERSION_1_0: u32 = 0x0001_0000;
/// Data Offset of a fixed disk: there is no further structure.
const NO_DATA_OFFSET: u64 = u64::MAX;
const DISK_TYPE_FIXED: u32 = 2;
const DISK_TYPE_DYNAMIC: u32 = 3;
const DISK_TYPE_DIFFERENCING: u32 = 4;
/// BAT entry of a block that has no data yet (it reads as zeros).
const BAT_UNUSED: u32 = u32::MAX;
/// The block size the specification recommends and every implementation accepts.
pub const DEFAULT_BLOCK_SIZE: u32 = 2 << 20;
/// Largest disk the format can describe: the spec caps VHD at 2040 GiB (Windows enforces it).
pub const MAX_SIZE: u64 = 2040 << 30;
/// VHD timestamps count seconds from 2000-01-01 00:00:00 UTC.
const VHD_EPOCH_UNIX: u64 = 946_684_800;
/// Creator Application. Not "vpc " or "qemu", so readers that distinguish take the size from
/// Current Size rather than from the (rounded) CHS geometry, as Hyper-V does.
const CREATOR_APP: &[u8; 4] = b"cowf";
const CREATOR_HOST_WINDOWS: &[u8; 4] = b"Wi2k";

/// The hard disk footer, 512 bytes.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RawFooter {
    /// 0
    cookie: [u8; 8],
    /// 8
    features: U32,
    /// 12
    file_format_version: U32,
    /// 16: absolute offset of the dynamic disk header; all ones for a fixed disk.
    data_offset: U64,
    /// 24
    time_stamp: U32,
    /// 28
    creator_application: [u8; 4],
    /// 32
    creator_version: U32,
    /// 36
    creator_host_os: [u8; 4],
    /// 40
    original_size: U64,
    /// 48: the disk's size in bytes.
    current_size: U64,
    /// 56
    cylinders: U16,
    /// 58
    heads: u8,
    /// 59
    sectors_per_track: u8,
    /// 60
    disk_type: U32,
    /// 64: ones' complement of the byte sum of the footer without this field.
    checksum: U32,
    /// 68
    unique_id: [u8; 16],
    /// 84
    saved_state: u8,
    /// 85
    reserved: [u8; 427],
}
const _: () = assert!(size_of::<RawFooter>() == 512);

/// The dynamic disk header, 1024 bytes.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawDynamicHeader {
    /// 0
    cookie: [u8; 8],
    /// 8: unused, all ones.
    data_offset: U64,
    /// 16: absolute byte offset of the BAT.
    table_offset: U64,
    /// 24
    header_version: U32,
    /// 28
    max_table_entries: U32,
    /// 32
    block_size: U32,
    /// 36
    checksum: U32,
    /// 40
    parent_unique_id: [u8; 16],
    /// 56
    parent_time_stamp: U32,
    /// 60
    reserved1: U32,
    /// 64
    parent_unicode_name: [u8; 512],
    /// 576: eight parent locator entries of 24 bytes.
    parent_locators: [u8; 192],
    /// 768
    reserved2: [u8; 256],
}
const _: () = assert!(size_of::<RawDynamicHeader>() == 1024);

/// Why a file is not a usable VHD.
#[derive(Debug, thiserror::Error)]
pub enum VhdError {
    #[error("the VHD is truncated: it starts with a footer copy but its last 512 bytes are not a VHD footer")]
    Truncated,
    #[error(
        "the VHD footer checksum is {found:#010x} but the footer's bytes sum to {expected:#010x}"
    )]
    FooterChecksum { expected: u32, found: u32 },
    #[error(
        "the VHD dynamic header checksum is {found:#010x} but its bytes sum to {expected:#010x}"
    )]
    HeaderChecksum { expected: u32, found: u32 },
    #[error("the VHD dynamic header at byte {at} lacks its \"cxsparse\" cookie")]
    HeaderCookie { at: u64 },
    #[error("differencing VHDs are not supported")]
    Differencing,
    #[error("the VHD disk type {0} is unknown (expected 2 fixed or 3 dynamic)")]
    DiskType(u32),
    #[error("the VHD disk size {0} is not a whole number of 512-byte sectors")]
    SizeUnaligned(u64),
    #[error("the fixed VHD declares {declared} bytes of data but the file holds {actual}; the file is truncated or damaged")]
    FixedLength { declared: u64, actual: u64 },
    #[error("the VHD block size {0} is not a power of two of at least 512 bytes")]
    BlockSize(u32),
    #[error("the VHD block table has {entries} entries, too few for a disk of {size} bytes")]
    TooFewEntries { entries: u32, size: u64 },
    #[error("the VHD block table at byte {offset} does not fit in the file")]
    BatOutOfFile { offset: u64 },
    #[error("VHD block {index} points to sector {sector}, outside the file")]
    BatOutOfRange { index: usize, sector: u32 },
    #[error("a VHD is limited to 2040 GiB; {0} bytes were asked for")]
    TooLarge(u64),
    #[error("{0}")]
    Device(DeviceErrorText),
}

/// A device error carried inside a `VhdError` with a readable text.
#[derive(Debug)]
pub struct DeviceErrorText(pub DeviceError);

impl std::fmt::Display for DeviceErrorText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::describe_device_error(&self.0, f)
    }
}

impl From<DeviceError> for VhdError {
    fn from(e: DeviceError) -> Self {
        Self::Device(DeviceErrorText(e))
    }
}

/// Ones' complement of the byte sum, the checksum both VHD headers use.
fn checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
}

fn footer_checksum(f: &RawFooter) -> u32 {
    let mut copy = f.clone();
    copy.checksum = U32::new(0);
    checksum(copy.as_bytes())
}

fn header_checksum(h: &RawDynamicHeader) -> u32 {
    let mut copy = h.clone();
    copy.checksum = U32::new(0);
    checksum(copy.as_bytes())
}

/// CHS geometry for a disk of `total_sectors`, by the algorithm in the specification's
/// appendix (it caps at 65535 x 16 x 255 sectors).
pub fn chs_geometry(total_sectors: u64) -> (u16, u8, u8) {
    let total = total_sectors.min(65535 * 16 * 255);
    let (spt, heads, cyl_times_heads);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cyl_times_heads = total / spt;
    } else {
        let mut s = 17;
        let mut cth = total / s;
        let mut h = cth.div_ceil(1024).max(4);
        if cth >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            cth = total / s;
        }
        if cth >= h * 1024 {
            s = 63;
            h = 16;
            cth = total / s;
        }
        (spt, heads, cyl_times_heads) = (s, h, cth);
    }
    let cylinders = cyl_times_heads / heads;
    // Each value is bounded by the arithmetic above (<= 65535, 16, 255).
    (
        u16::try_from(cylinders).unwrap_or(u16::MAX),
        u8::try_from(heads).unwrap_or(16),
        u8::try_from(spt).unwrap_or(255),
    )
}

fn now_vhd_time() -> u32 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(unix.saturating_sub(VHD_EPOCH_UNIX)).unwrap_or(u32::MAX)
}

fn new_footer(size: u64, disk_type: u32, data_offset: u64) -> RawFooter {
    let (c, h, s) = chs_geometry(size / SECTOR);
    let mut f = RawFooter::new_zeroed();
    f.cookie = *FOOTER_COOKIE;
    f.features = U32::new(FEATURES_RESERVED);
    f.file_format_version = U32::new(VERSION_1_0);
    f.data_offset = U64::new(data_offset);
    f.time_stamp = U32::new(now_vhd_time());
    f.creator_application = *CREATOR_APP;
    f.creator_version = U32::new(VERSION_1_0);
    f.creator_host_os = *CREATOR_HOST_WINDOWS;
    f.original_size = U64::new(size);
    f.current_size = U64::new(size);
    f.cylinders = U16::new(c);
    f.heads = h;
    f.sectors_per_track = s;
    f.disk_type = U32::new(disk_type);
    f.unique_id = Guid::random().0;
    f.checksum = U32::new(footer_checksum(&f));
    f
}

/// Whether a 512-byte sector starts with the footer cookie (a cheap probe before validating).
pub fn has_footer_cookie(sector: &[u8]) -> bool {
    sector.starts_with(FOOTER_COOKIE)
}

/// Parses and validates a footer read from the end of the file.
fn parse_footer(bytes: &[u8; 512]) -> Result<RawFooter, VhdError> {
    let f = RawFooter::read_from_bytes(bytes).map_err(|_| VhdError::Truncated)?;
    let expected = footer_checksum(&f);
    if f.checksum.get() != expected {
        return Err(VhdError::FooterChecksum {
            expected,
            found: f.checksum.get(),
        });
    }
    match f.disk_type.get() {
        DISK_TYPE_FIXED | DISK_TYPE_DYNAMIC => {}
        DISK_TYPE_DIFFERENCING => return Err(VhdError::Differencing),
        other => return Err(VhdError::DiskType(other)),
    }
    if f.current_size.get() % SECTOR != 0 {
        return Err(VhdError::SizeUnaligned(f.current_size.get()));
    }
    Ok(f)
}

/// The BAT and block geometry of a dynamic disk.
#[derive(Debug)]
struct Dynamic {
    bat: Vec<u32>,
    bat_offset: u64,
    block_size: u64,
    /// Bytes of the sector bitmap before each block's data (a whole number of sectors).
    bitmap_size: u64,
    /// Where the footer currently sits; a new block goes here and the footer moves past it.
    footer_at: u64,
}

#[derive(Debug)]
enum Layout {
    Fixed,
    Dynamic(Dynamic),
}

/// An open VHD as a block device over its virtual disk.
pub struct VhdDisk {
    file: HostFile,
    footer: RawFooter,
    layout: Layout,
}

impl std::fmt::Debug for VhdDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhdDisk")
            .field("size", &self.footer.current_size.get())
            .field("layout", &self.layout)
            .finish()
    }
}

/// Kind of VHD, for `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VhdKind {
    Fixed,
    Dynamic,
}

impl VhdDisk {
    /// Opens a VHD whose last sector carries the footer cookie. `len` is the file length.
    pub fn open(mut file: HostFile, len: u64) -> Result<Self, VhdError> {
        let mut bytes = [0u8; 512];
        file.read_exact_at(len - SECTOR, &mut bytes)?;
        let footer = parse_footer(&bytes)?;
        let size = footer.current_size.get();
        let layout = if footer.disk_type.get() == DISK_TYPE_FIXED {
            // `current_size` is the footer's word: a value near u64::MAX must not wrap.
            if size.checked_add(SECTOR) != Some(len) {
                return Err(VhdError::FixedLength {
                    declared: size,
                    actual: len - SECTOR,
                });
            }
            Layout::Fixed
        } else {
            Layout::Dynamic(read_dynamic(&mut file, &footer, len)?)
        };
        Ok(Self {
            file,
            footer,
            layout,
        })
    }

    /// Creates a fixed VHD of `size` bytes. The data area is made with `set_len`, so hosts
    /// with sparse files allocate nothing for it; `progress` is told about the footer write.
    pub fn create_fixed(file: File, size: u64) -> Result<Self, VhdError> {
        check_create_size(size)?;
        let mut file = HostFile::new(file, true);
        file.set_len(size + SECTOR)?;
        let footer = new_footer(size, DISK_TYPE_FIXED, NO_DATA_OFFSET);
        file.write_all_at(size, footer.as_bytes())?;
        Ok(Self {
            file,
            footer,
            layout: Layout::Fixed,
        })
    }

    /// Creates a dynamic VHD of `size` bytes with no blocks allocated: footer copy, header,
    /// an all-unused BAT, footer. A 1 TiB disk takes about 2 MiB.
    pub fn create_dynamic(file: File, size: u64) -> Result<Self, VhdError> {
        check_create_size(size)?;
        let mut file = HostFile::new(file, true);
        let block_size = u64::from(DEFAULT_BLOCK_SIZE);
        let entries =
            u32::try_from(size.div_ceil(block_size)).map_err(|_| VhdError::TooLarge(size))?;
        let header_at = SECTOR;
        let bat_offset = header_at + 1024;
        let bat_bytes = (u64::from(entries) * 4).next_multiple_of(SECTOR);
        let footer_at = bat_offset + bat_bytes;
        let footer = new_footer(size, DISK_TYPE_DYNAMIC, header_at);
        let header = new_dynamic_header(bat_offset, entries);
        file.set_len(0)?;
        file.write_all_at(0, footer.as_bytes())?;
        file.write_all_at(header_at, header.as_bytes())?;
        file.write_all_at(bat_offset, &vec![0xFF; to_usize(bat_bytes)])?;
        // The footer at the end makes the file a VHD: the structures it points at must be
        // durable first, or a crash can leave a VHD whose BAT is whatever the host had there.
        file.flush()?;
        file.write_all_at(footer_at, footer.as_bytes())?;
        let bitmap_size = bitmap_size(block_size);
        let bat = vec![BAT_UNUSED; to_usize(u64::from(entries))];
        let dynamic = Dynamic {
            bat,
            bat_offset,
            block_size,
            bitmap_size,
            footer_at,
        };
        Ok(Self {
            file,
            footer,
            layout: Layout::Dynamic(dynamic),
        })
    }

    pub fn kind(&self) -> VhdKind {
        match self.layout {
            Layout::Fixed => VhdKind::Fixed,
            Layout::Dynamic(_) => VhdKind::Dynamic,
        }
    }

    /// Blocks allocated and total, for a dynamic disk.
    pub fn block_usage(&self) -> Option<(u64, u64)> {
        match &self.layout {
            Layout::Fixed => None,
            Layout::Dynamic(d) => {
                let used = d.bat.iter().filter(|&&e| e != BAT_UNUSED).count();
                Some((used as u64, d.bat.len() as u64))
            }
        }
    }

    /// Reads or writes `buf.len()` bytes at `offset`, split on block boundaries for dynamic
    /// disks.
    fn read_dynamic(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let Layout::Dynamic(d) = &self.layout else {
            return self.file.read_exact_at(offset, buf);
        };
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (index, within) = (to_usize(pos / d.block_size), pos % d.block_size);
            let n = to_usize((d.block_size - within).min((buf.len() - done) as u64));
            let piece = &mut buf[done..done + n];
            match d.bat[index] {
                BAT_UNUSED => piece.fill(0),
                sector => {
                    let at = u64::from(sector) * SECTOR + d.bitmap_size + within;
                    self.file.read_exact_at(at, piece)?;
                }
            }
            done += n;
        }
        Ok(())
    }

    fn write_dynamic(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let block_size = match &self.layout {
            Layout::Dynamic(d) => d.block_size,
            Layout::Fixed => return self.file.write_all_at(offset, buf),
        };
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (index, within) = (to_usize(pos / block_size), pos % block_size);
            let n = to_usize((block_size - within).min((buf.len() - done) as u64));
            self.write_in_block(index, within, &buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Writes inside one block. An unallocated block stays unallocated for an all-zero write
    /// (it already reads as zeros); otherwise it is allocated first.
    fn write_in_block(
        &mut self,
        index: usize,
        within: u64,
        data: &[u8],
    ) -> Result<(), DeviceError> {
        let Layout::Dynamic(d) = &self.layout else {
            return Ok(());
        };
        let sector = match d.bat[index] {
            BAT_UNUSED if is_zero(data) => return Ok(()),
            BAT_UNUSED => self.allocate_block(index)?,
            sector => sector,
        };
        let Layout::Dynamic(d) = &self.layout else {
            return Ok(());
        };
        let at = u64::from(sector) * SECTOR + d.bitmap_size + within;
        self.file.write_all_at(at, data)
    }

    /// Appends a block where the footer was and moves the footer past it. On a host that
    /// keeps writes in a volatile cache until a flush, each step must be durable before the
    /// next one is issued: (1) the footer at the new end, before (2) the bitmap overwrites the
    /// old footer (else a crash can leave a file that ends in no footer); (2) before (3) the
    /// BAT entry (else the entry can point at a block whose bitmap is the old footer's bytes).
    /// Until (3) the new block is unreferenced space and the image stays valid.
    fn allocate_block(&mut self, index: usize) -> Result<u32, DeviceError> {
        let Layout::Dynamic(d) = &mut self.layout else {
            return Ok(BAT_UNUSED);
        };
        let block_at = d.footer_at;
        let new_footer_at = block_at + d.bitmap_size + d.block_size;
        let sector = u32::try_from(block_at / SECTOR)
            .map_err(|_| DeviceError::new(super::device::DeviceErrorKind::OutOfRange, block_at))?;
        self.file
            .write_all_at(new_footer_at, self.footer.as_bytes())?;
        self.file.flush()?;
        // All sectors are marked present: this is not a differencing disk, so the bitmap only
        // matters to readers that consult it, and for them the whole block is valid data.
        self.file
            .write_all_at(block_at, &vec![0xFF; to_usize(d.bitmap_size)])?;
        self.file.flush()?;
        self.file
            .write_all_at(d.bat_offset + 4 * index as u64, &sector.to_be_bytes())?;
        d.bat[index] = sector;
        d.footer_at = new_footer_at;
        Ok(sector)
    }

    fn zero_dynamic(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        let Layout::Dynamic(d) = &self.layout else {
            return self.file.zero_range(offset, len);
        };
        let (block_size, bitmap_size) = (d.block_size, d.bitmap_size);
        let mut done = 0;
        while done < len {
            let pos = offset + done;
            let (index, within) = (to_usize(pos / block_size), pos % block_size);
            let n = (block_size - within).min(len - done);
            if let Layout::Dynamic(d) = &self.layout {
                if d.bat[index] != BAT_UNUSED {
                    let at = u64::from(d.bat[index]) * SECTOR + bitmap_size + within;
                    self.file.zero_range(at, n)?;
                }
            }
            done += n;
        }
        Ok(())
    }
}

impl BlockDevice for VhdDisk {
    fn size(&self) -> u64 {
        self.footer.current_size.get()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        check_range(self.size(), offset, buf.len())?;
        self.read_dynamic(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        check_range(self.size(), offset, buf.len())?;
        if !self.file.writable() {
            return Err(DeviceError::new(
                super::device::DeviceErrorKind::ReadOnly,
                offset,
            ));
        }
        self.write_dynamic(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.file.flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        check_range(self.size(), offset, to_usize(len))?;
        self.zero_dynamic(offset, len)
    }
}

fn check_create_size(size: u64) -> Result<(), VhdError> {
    if size > MAX_SIZE {
        return Err(VhdError::TooLarge(size));
    }
    if size % SECTOR != 0 {
        return Err(VhdError::SizeUnaligned(size));
    }
    Ok(())
}

/// One bit per sector of a block, padded to whole sectors.
fn bitmap_size(block_size: u64) -> u64 {
    (block_size / SECTOR).div_ceil(8).next_multiple_of(SECTOR)
}

fn new_dynamic_header(bat_offset: u64, entries: u32) -> RawDynamicHeader {
    let mut h = RawDynamicHeader::new_zeroed();
    h.cookie = *DYNAMIC_COOKIE;
    h.data_offset = U64::new(NO_DATA_OFFSET);
    h.table_offset = U64::new(bat_offset);
    h.header_version = U32::new(VERSION_1_0);
    h.max_table_entries = U32::new(entries);
    h.block_size = U32::new(DEFAULT_BLOCK_SIZE);
    h.checksum = U32::new(header_checksum(&h));
    h
}

/// Reads and validates the dynamic header and the BAT.
fn read_dynamic(file: &mut HostFile, footer: &RawFooter, len: u64) -> Result<Dynamic, VhdError> {
    let header_at = footer.data_offset.get();
    let footer_at = len - SECTOR;
    if header_at
        .checked_add(1024)
        .is_none_or(|end| end > footer_at)
    {
        return Err(VhdError::HeaderCookie { at: header_at });
    }
    let mut bytes = [0u8; 1024];
    file.read_exact_at(header_at, &mut bytes)?;
    let header = RawDynamicHeader::read_from_bytes(&bytes[..])
        .map_err(|_| VhdError::HeaderCookie { at: header_at })?;
    validate_header(&header, header_at, footer.current_size.get())?;
    let block_size = u64::from(header.block_size.get());
    let bat_offset = header.table_offset.get();
    let entries = header.max_table_entries.get();
    let bat_bytes = u64::from(entries) * 4;
    if bat_offset
        .checked_add(bat_bytes)
        .is_none_or(|end| end > footer_at)
    {
        return Err(VhdError::BatOutOfFile { offset: bat_offset });
    }
    let mut raw = vec![0u8; to_usize(bat_bytes)];
    file.read_exact_at(bat_offset, &mut raw)?;
    let bat: Vec<u32> = raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let bitmap_size = bitmap_size(block_size);
    check_bat(&bat, bitmap_size + block_size, footer_at)?;
    Ok(Dynamic {
        bat,
        bat_offset,
        block_size,
        bitmap_size,
        footer_at,
    })
}

fn validate_header(h: &RawDynamicHeader, at: u64, size: u64) -> Result<(), VhdError> {
    if &h.cookie != DYNAMIC_COOKIE {
        return Err(VhdError::HeaderCookie { at });
    }
    let expected = header_checksum(h);
    if h.checksum.get() != expected {
        return Err(VhdError::HeaderChecksum {
            expected,
            found: h.checksum.get(),
        });
    }
    let block_size = h.block_size.get();
    if !block_size.is_power_of_two() || u64::from(block_size) < SECTOR {
        return Err(VhdError::BlockSize(block_size));
    }
    let entries = h.max_table_entries.get();
    if u64::from(entries) * u64::from(block_size) < size {
        return Err(VhdError::TooFewEntries { entries, size });
    }
    Ok(())
}

/// Every allocated block must lie wholly before the footer.
fn check_bat(bat: &[u32], block_bytes: u64, footer_at: u64) -> Result<(), VhdError> {
    for (index, &sector) in bat.iter().enumerate() {
        if sector != BAT_UNUSED && u64::from(sector) * SECTOR + block_bytes > footer_at {
            return Err(VhdError::BatOutOfRange { index, sector });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
