//! VHDX images (Microsoft's MS-VHDX, "VHDX Format Specification" v1.00), fixed and dynamic,
//! as Windows 10/11 Disk Management, Hyper-V and `Mount-DiskImage` make them.
//!
//! Layout this tool writes: the file type identifier (0), two headers (64 and 128 KiB), two
//! region tables (192 and 256 KiB), the log (1 MiB, 1 MiB long), the metadata region (2 MiB),
//! the BAT (3 MiB), then payload blocks of 32 MiB, each 1 MiB-aligned. A fixed disk has every
//! block allocated up front; a dynamic one allocates a block on its first non-zero write.
//!
//! Crash safety: the headers alternate (the valid one with the higher sequence number is
//! current), and every in-place metadata change (a BAT entry when a block is allocated) goes
//! through the log first: log GUID in the header, log entry, flush, in-place write, flush, log
//! GUID cleared. A writer stopped anywhere in between leaves an image whose log replay (done
//! on open, here and by every other VHDX reader) finishes the change.
//!
//! The open path treats the file as hostile: every offset and length is checked against the
//! file size before it is used, and nothing is allocated from a header field that was not.

mod format;
mod log;

use std::fs::File;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::device::{check_range, to_usize, BlockDevice, DeviceError, DeviceErrorKind, SECTOR};
use super::file::{is_zero, HostFile};
use super::guid::Guid;
use super::vhd::DeviceErrorText;
use format::*;

/// Payload block size of the images this tool makes (Hyper-V's default).
pub const DEFAULT_BLOCK_SIZE: u64 = 32 * MIB;
/// Largest disk a VHDX can describe.
pub const MAX_SIZE: u64 = MAX_DISK_SIZE;
/// Log and metadata region sizes of the images this tool makes.
const LOG_LENGTH: u64 = MIB;
const METADATA_LENGTH: u64 = MIB;
/// Longest log this tool reads into memory for a replay (Hyper-V and qemu write 1 MiB logs).
const MAX_LOG_LENGTH: u64 = 64 * MIB;
/// No structure of a sane VHDX lies beyond this (64 TiB of data plus its metadata).
const MAX_FILE_OFFSET: u64 = 1 << 50;
/// The logical sector size this tool supports (our partition tables use 512-byte LBAs).
const LOGICAL_SECTOR: u64 = 512;
const PHYSICAL_SECTOR: u32 = 4096;

/// Why a file is not a usable VHDX.
#[derive(Debug, thiserror::Error)]
pub enum VhdxError {
    #[error(
        "the file is {0} bytes long, too short for a VHDX (the header section alone is 1 MiB)"
    )]
    TooShort(u64),
    #[error("the file does not start with the VHDX signature \"vhdxfile\"")]
    Signature,
    #[error("neither VHDX header is valid (signature, CRC-32C or version)")]
    NoValidHeader,
    #[error("the VHDX log version {0} is unknown")]
    LogVersion(u16),
    #[error("the VHDX {what} at byte {offset} ({length} bytes) is misaligned or does not fit in the file of {file_len} bytes")]
    Placement {
        what: &'static str,
        offset: u64,
        length: u64,
        file_len: u64,
    },
    #[error("the VHDX {0} overlaps the {1}")]
    Overlap(&'static str, &'static str),
    #[error("neither VHDX region table is valid (signature, CRC-32C or entry count)")]
    NoValidRegionTable,
    #[error("the VHDX region table {0}")]
    Regions(&'static str),
    #[error("the VHDX file requires region {0}, which this tool does not know")]
    UnknownRequiredRegion(Guid),
    #[error("the VHDX metadata {0}")]
    Metadata(&'static str),
    #[error("the VHDX file requires metadata item {0}, which this tool does not know")]
    UnknownRequiredMetadata(Guid),
    #[error("differencing VHDX images (with a parent disk) are not supported")]
    Differencing,
    #[error("the VHDX block size {0} is not a power of two from 1 MiB to 256 MiB")]
    BlockSize(u64),
    #[error(
        "the VHDX logical sector size is {0} bytes; only 512-byte logical sectors are supported"
    )]
    LogicalSector(u32),
    #[error("the VHDX physical sector size {0} is not 512 or 4096")]
    PhysicalSector(u32),
    #[error("the VHDX disk size {0} is not a non-zero multiple of 512 bytes up to 64 TiB")]
    DiskSize(u64),
    #[error("the VHDX block table region ({region} bytes) is too small for its {entries} entries")]
    BatTooSmall { region: u64, entries: u64 },
    #[error("VHDX block table entry {index} has state {state}, which a disk without a parent cannot have")]
    BatState { index: u64, state: u64 },
    #[error("VHDX block table entry {index} points to byte {offset}, outside the file or into its metadata")]
    BatOutOfRange { index: u64, offset: u64 },
    #[error("the VHDX log is damaged: {0}")]
    LogCorrupt(&'static str),
    #[error("the VHDX log is {0} bytes; logs over 64 MiB are not supported")]
    LogTooLarge(u64),
    #[error("a VHDX is limited to 64 TiB; {0} bytes were asked for")]
    TooLarge(u64),
    #[error("the VHDX disk size {0} is not a whole number of 512-byte sectors")]
    SizeUnaligned(u64),
    #[error("{0}")]
    Device(DeviceErrorText),
}

impl From<DeviceError> for VhdxError {
    fn from(e: DeviceError) -> Self {
        Self::Device(DeviceErrorText(e))
    }
}

/// Fixed (every block allocated, "leave blocks allocated") or dynamic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VhdxKind {
    Fixed,
    Dynamic,
}

/// A log replay kept in memory: a read-only open of an image whose log holds a sequence
/// sees the image as the replay would leave it, without writing to it.
#[derive(Debug)]
struct Pending {
    replay: log::Replay,
    real_len: u64,
}

/// Reads file bytes as a replay would leave them: past the real end reads zeros, and the
/// replay's patches are laid over what the file holds.
fn read_through(
    file: &mut HostFile,
    pending: Option<&Pending>,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), DeviceError> {
    let Some(p) = pending else {
        return file.read_exact_at(offset, buf);
    };
    let end = offset.saturating_add(buf.len() as u64);
    let real = to_usize(p.real_len.saturating_sub(offset).min(buf.len() as u64));
    if real > 0 {
        file.read_exact_at(offset, &mut buf[..real])?;
    }
    buf[real..].fill(0);
    for patch in &p.replay.patches {
        let (at, len) = match patch {
            log::Patch::Data { offset, sector } => (*offset, sector.len() as u64),
            log::Patch::Zero { offset, len } => (*offset, *len),
        };
        let (from, to) = (at.max(offset), at.saturating_add(len).min(end));
        if from >= to {
            continue;
        }
        let dst = &mut buf[to_usize(from - offset)..to_usize(to - offset)];
        match patch {
            log::Patch::Data { sector, .. } => {
                dst.copy_from_slice(&sector[to_usize(from - at)..to_usize(to - at)]);
            }
            log::Patch::Zero { .. } => dst.fill(0),
        }
    }
    Ok(())
}

/// An open VHDX as a block device over its virtual disk.
pub struct VhdxDisk {
    file: HostFile,
    /// The file's length as this writer knows it (new blocks go at its next 1 MiB boundary).
    file_len: u64,
    header: Box<Header>,
    header_slot: usize,
    size: u64,
    block_size: u64,
    chunk_ratio: u64,
    fixed: bool,
    bat_offset: u64,
    bat: Vec<u64>,
    log_offset: u64,
    log_length: u64,
    pending: Option<Pending>,
    /// The headers carry fresh write GUIDs for this session.
    session_started: bool,
    log_sequence: u64,
    /// Test hook: stop the next logged update at this step, as a crash there would.
    #[cfg(test)]
    crash_at: Option<CrashPoint>,
}

/// The steps of a logged update a test can stop after (a crash there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashPoint {
    /// The header names the new log GUID; no entry written yet.
    LogGuidSet,
    /// The log entry is durable; the in-place write has not happened.
    LogWritten,
    /// The in-place write is durable; the log GUID is not cleared yet.
    InPlaceWritten,
}

impl std::fmt::Debug for VhdxDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhdxDisk")
            .field("size", &self.size)
            .field("block_size", &self.block_size)
            .field("fixed", &self.fixed)
            .finish()
    }
}

/// A region of the file, for placement and overlap checks.
#[derive(Debug, Clone, Copy)]
struct Span {
    what: &'static str,
    start: u64,
    len: u64,
}

impl Span {
    fn overlaps(&self, start: u64, len: u64) -> bool {
        start < self.start.saturating_add(self.len) && self.start < start.saturating_add(len)
    }
}

/// Checks that a 1 MiB-aligned object lies wholly in the file, past the header section.
fn placed(what: &'static str, offset: u64, length: u64, file_len: u64) -> Result<Span, VhdxError> {
    let fits = offset % MIB == 0
        && length % MIB == 0
        && length > 0
        && offset >= HEADER_SECTION
        && offset
            .checked_add(length)
            .is_some_and(|end| end <= file_len);
    if !fits {
        return Err(VhdxError::Placement {
            what,
            offset,
            length,
            file_len,
        });
    }
    Ok(Span {
        what,
        start: offset,
        len: length,
    })
}

/// Reads both headers and returns the current one (the valid one with the higher sequence
/// number) and its slot.
fn read_headers(file: &mut HostFile) -> Result<(Box<Header>, usize), VhdxError> {
    let mut best: Option<(Box<Header>, usize)> = None;
    let mut bytes = vec![0u8; HEADER_SIZE];
    for (slot, &at) in HEADER_OFFSETS.iter().enumerate() {
        file.read_exact_at(at, &mut bytes)?;
        if !checksum_ok(&bytes, 4) {
            continue;
        }
        let Ok(h) = Header::read_from_bytes(&bytes[..]) else {
            continue;
        };
        if h.signature.get() != HEADER_SIGNATURE || h.version.get() != 1 {
            continue;
        }
        let newer = best
            .as_ref()
            .is_none_or(|(b, _)| h.sequence_number.get() > b.sequence_number.get());
        if newer {
            best = Some((Box::new(h), slot));
        }
    }
    best.ok_or(VhdxError::NoValidHeader)
}

/// The BAT and metadata regions named by a valid region table.
struct Regions {
    bat: Span,
    metadata: Span,
}

fn read_regions(
    file: &mut HostFile,
    pending: Option<&Pending>,
    file_len: u64,
) -> Result<Regions, VhdxError> {
    let mut table = vec![0u8; REGION_TABLE_SIZE];
    for &at in &REGION_TABLE_OFFSETS {
        read_through(file, pending, at, &mut table)?;
        let Ok((header, _)) = RegionTableHeader::read_from_prefix(&table[..]) else {
            continue;
        };
        let count = header.entry_count.get();
        if header.signature.get() == REGION_SIGNATURE
            && count <= MAX_TABLE_ENTRIES
            && checksum_ok(&table, 4)
        {
            return parse_regions(&table, count, file_len);
        }
    }
    Err(VhdxError::NoValidRegionTable)
}

fn parse_regions(table: &[u8], count: u32, file_len: u64) -> Result<Regions, VhdxError> {
    let (mut bat, mut metadata) = (None, None);
    for i in 0..to_usize(u64::from(count)) {
        let at = 16 + 32 * i;
        let e = RegionTableEntry::read_from_bytes(&table[at..at + 32])
            .map_err(|_| VhdxError::Regions("is cut short"))?;
        let guid = Guid(e.guid);
        let (offset, length) = (e.file_offset.get(), u64::from(e.length.get()));
        let slot = if guid == BAT_REGION {
            &mut bat
        } else if guid == METADATA_REGION {
            &mut metadata
        } else if e.flags.get() & REGION_REQUIRED != 0 {
            return Err(VhdxError::UnknownRequiredRegion(guid));
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(VhdxError::Regions("names the same region twice"));
        }
        let what = if guid == BAT_REGION {
            "block table region"
        } else {
            "metadata region"
        };
        *slot = Some(placed(what, offset, length, file_len)?);
    }
    match (bat, metadata) {
        (Some(bat), Some(metadata)) => Ok(Regions { bat, metadata }),
        (None, _) => Err(VhdxError::Regions("has no block table region")),
        (_, None) => Err(VhdxError::Regions("has no metadata region")),
    }
}

/// What the metadata region says about the virtual disk.
struct Params {
    block_size: u64,
    fixed: bool,
    size: u64,
}

/// Reads one known metadata item of at least `N` bytes.
fn read_item<const N: usize>(
    file: &mut HostFile,
    pending: Option<&Pending>,
    region: Span,
    entry: &MetadataTableEntry,
) -> Result<[u8; N], VhdxError> {
    let (offset, length) = (u64::from(entry.offset.get()), u64::from(entry.length.get()));
    let inside = offset >= METADATA_TABLE_SIZE as u64
        && length >= N as u64
        && offset
            .checked_add(length)
            .is_some_and(|end| end <= region.len);
    if !inside {
        return Err(VhdxError::Metadata(
            "table points to an item outside the metadata region",
        ));
    }
    let mut bytes = [0u8; N];
    read_through(file, pending, region.start + offset, &mut bytes)?;
    Ok(bytes)
}

fn read_metadata(
    file: &mut HostFile,
    pending: Option<&Pending>,
    region: Span,
) -> Result<Params, VhdxError> {
    let mut table = vec![0u8; METADATA_TABLE_SIZE];
    read_through(file, pending, region.start, &mut table)?;
    let (header, _) = MetadataTableHeader::read_from_prefix(&table[..])
        .map_err(|_| VhdxError::Metadata("table is cut short"))?;
    if &header.signature != METADATA_SIGNATURE {
        return Err(VhdxError::Metadata(
            "table lacks its \"metadata\" signature",
        ));
    }
    let count = u32::from(header.entry_count.get());
    if count > MAX_TABLE_ENTRIES {
        return Err(VhdxError::Metadata("table has more than 2047 entries"));
    }
    let known = [
        FILE_PARAMETERS,
        VIRTUAL_DISK_SIZE,
        VIRTUAL_DISK_ID,
        LOGICAL_SECTOR_SIZE,
        PHYSICAL_SECTOR_SIZE,
    ];
    let mut found: [Option<MetadataTableEntry>; 5] = Default::default();
    for i in 0..to_usize(u64::from(count)) {
        let at = 32 + 32 * i;
        let e = MetadataTableEntry::read_from_bytes(&table[at..at + 32])
            .map_err(|_| VhdxError::Metadata("table is cut short"))?;
        let guid = Guid(e.item_id);
        if guid == PARENT_LOCATOR {
            return Err(VhdxError::Differencing);
        }
        match known.iter().position(|&k| k == guid) {
            Some(k) if found[k].is_some() => {
                return Err(VhdxError::Metadata("table names an item twice"))
            }
            Some(k) => found[k] = Some(e),
            None if e.flags.get() & META_IS_REQUIRED != 0 => {
                return Err(VhdxError::UnknownRequiredMetadata(guid))
            }
            None => {}
        }
    }
    let [Some(params), Some(size), Some(id), Some(logical), Some(physical)] = found else {
        return Err(VhdxError::Metadata(
            "lacks one of the required items (file parameters, disk size, disk id, sector sizes)",
        ));
    };
    let p = FileParameters::read_from_bytes(&read_item::<8>(file, pending, region, &params)?)
        .map_err(|_| VhdxError::Metadata("file parameters are cut short"))?;
    if p.flags.get() & PARAM_HAS_PARENT != 0 {
        return Err(VhdxError::Differencing);
    }
    let block_size = u64::from(p.block_size.get());
    if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(VhdxError::BlockSize(block_size));
    }
    let size = u64::from_le_bytes(read_item::<8>(file, pending, region, &size)?);
    read_item::<16>(file, pending, region, &id)?;
    let logical = u32::from_le_bytes(read_item::<4>(file, pending, region, &logical)?);
    if u64::from(logical) != LOGICAL_SECTOR {
        return Err(VhdxError::LogicalSector(logical));
    }
    let physical = u32::from_le_bytes(read_item::<4>(file, pending, region, &physical)?);
    if physical != 512 && physical != 4096 {
        return Err(VhdxError::PhysicalSector(physical));
    }
    if size == 0 || size % LOGICAL_SECTOR != 0 || size > MAX_DISK_SIZE {
        return Err(VhdxError::DiskSize(size));
    }
    Ok(Params {
        block_size,
        fixed: p.flags.get() & PARAM_LEAVE_BLOCKS_ALLOCATED != 0,
        size,
    })
}

/// Reads the BAT and checks every allocated block against the file and its metadata.
fn read_bat(
    file: &mut HostFile,
    pending: Option<&Pending>,
    region: Span,
    params: &Params,
    reserved: &[Span],
    file_len: u64,
) -> Result<Vec<u64>, VhdxError> {
    let chunk = chunk_ratio(LOGICAL_SECTOR, params.block_size);
    let entries = bat_entries(params.size, params.block_size, chunk);
    if entries.saturating_mul(8) > region.len {
        return Err(VhdxError::BatTooSmall {
            region: region.len,
            entries,
        });
    }
    // Bounded: the region was checked to lie inside the file.
    let mut bat = Vec::with_capacity(to_usize(entries));
    let mut buf = vec![0u8; to_usize(MIB)];
    let mut done = 0u64;
    while done < entries {
        let n = (entries - done).min(MIB / 8);
        let bytes = &mut buf[..to_usize(n * 8)];
        read_through(file, pending, region.start + done * 8, bytes)?;
        bat.extend(
            bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
        );
        done += n;
    }
    for (index, &entry) in bat.iter().enumerate() {
        let index = index as u64;
        let state = entry & BAT_STATE_MASK;
        let offset = entry & BAT_OFFSET_MASK;
        let is_bitmap = (index + 1) % (chunk + 1) == 0;
        let length = if is_bitmap {
            match state {
                SB_BLOCK_NOT_PRESENT => continue,
                SB_BLOCK_PRESENT => MIB,
                _ => return Err(VhdxError::BatState { index, state }),
            }
        } else {
            match state {
                PAYLOAD_NOT_PRESENT | PAYLOAD_UNDEFINED | PAYLOAD_ZERO | PAYLOAD_UNMAPPED => {
                    continue
                }
                PAYLOAD_FULLY_PRESENT => {
                    // A last block past the disk's end need only hold the disk's bytes.
                    let block = index - index / (chunk + 1);
                    let start = block * params.block_size;
                    params.block_size.min(params.size.saturating_sub(start))
                }
                _ => return Err(VhdxError::BatState { index, state }),
            }
        };
        let inside = offset >= HEADER_SECTION
            && offset
                .checked_add(length)
                .is_some_and(|end| end <= file_len)
            && !reserved.iter().any(|s| s.overlaps(offset, length));
        if !inside {
            return Err(VhdxError::BatOutOfRange { index, offset });
        }
    }
    Ok(bat)
}

impl VhdxDisk {
    /// Opens a VHDX. `len` is the file length. A log that holds a sequence is replayed: into
    /// the file when it is open for writing, in memory otherwise.
    pub fn open(mut file: HostFile, len: u64) -> Result<Self, VhdxError> {
        if len < HEADER_SECTION {
            return Err(VhdxError::TooShort(len));
        }
        let mut signature = [0u8; 8];
        file.read_exact_at(0, &mut signature)?;
        if &signature != FILE_SIGNATURE {
            return Err(VhdxError::Signature);
        }
        let (header, header_slot) = read_headers(&mut file)?;
        if header.log_version.get() != 0 {
            return Err(VhdxError::LogVersion(header.log_version.get()));
        }
        let log_offset = header.log_offset.get();
        let log_length = u64::from(header.log_length.get());
        let log_span = placed("log", log_offset, log_length, len)?;
        let (file_len, pending) = if header.log_guid == [0; 16] {
            (len, None)
        } else {
            Self::replay(&mut file, &header, log_span, len)?
        };
        let regions = read_regions(&mut file, pending.as_ref(), file_len)?;
        let spans = [
            Span {
                what: "header section",
                start: 0,
                len: HEADER_SECTION,
            },
            log_span,
            regions.metadata,
            regions.bat,
        ];
        for (i, a) in spans.iter().enumerate() {
            if let Some(b) = spans[i + 1..].iter().find(|b| a.overlaps(b.start, b.len)) {
                return Err(VhdxError::Overlap(b.what, a.what));
            }
        }
        let params = read_metadata(&mut file, pending.as_ref(), regions.metadata)?;
        let bat = read_bat(
            &mut file,
            pending.as_ref(),
            regions.bat,
            &params,
            &spans,
            file_len,
        )?;
        let needs_log_cleared = header.log_guid != [0; 16] && file.writable();
        let mut disk = Self {
            file,
            file_len,
            header,
            header_slot,
            size: params.size,
            block_size: params.block_size,
            chunk_ratio: chunk_ratio(LOGICAL_SECTOR, params.block_size),
            fixed: params.fixed,
            bat_offset: regions.bat.start,
            bat,
            log_offset,
            log_length,
            pending,
            session_started: false,
            log_sequence: 0,
            #[cfg(test)]
            crash_at: None,
        };
        if needs_log_cleared {
            // The replay is durable; the log is empty again.
            disk.update_header(|h| h.log_guid = [0; 16])?;
        }
        Ok(disk)
    }

    /// Finds the log's active sequence and replays it: into the file when writable (returning
    /// the new length), else into a `Pending` that reads see.
    fn replay(
        file: &mut HostFile,
        header: &Header,
        log: Span,
        len: u64,
    ) -> Result<(u64, Option<Pending>), VhdxError> {
        if log.len > MAX_LOG_LENGTH {
            return Err(VhdxError::LogTooLarge(log.len));
        }
        let mut bytes = vec![0u8; to_usize(log.len)];
        file.read_exact_at(log.start, &mut bytes)?;
        let Some(replay) = log::read_replay(&bytes, header.log_guid, len)? else {
            return Ok((len, None));
        };
        let last = replay.last_file_offset.next_multiple_of(MIB);
        let out_of_bounds = replay.last_file_offset > MAX_FILE_OFFSET
            || replay.patches.iter().any(|p| match p {
                log::Patch::Data { offset, .. } => *offset > MAX_FILE_OFFSET,
                log::Patch::Zero { offset, len } => {
                    offset.checked_add(*len).is_none_or(|e| e > MAX_FILE_OFFSET)
                }
            });
        if out_of_bounds {
            return Err(VhdxError::LogCorrupt(
                "a log entry reaches past any plausible end of the file",
            ));
        }
        if !file.writable() {
            let pending = Pending {
                replay,
                real_len: len,
            };
            return Ok((len.max(last), Some(pending)));
        }
        let mut file_len = len;
        for patch in &replay.patches {
            match patch {
                log::Patch::Data { offset, sector } => {
                    file.write_all_at(*offset, sector)?;
                    file_len = file_len.max(offset + sector.len() as u64);
                }
                log::Patch::Zero { offset, len } if *offset < file_len => {
                    // Beyond the end the file reads as zeros already.
                    file.zero_range(*offset, (*len).min(file_len - offset))?;
                }
                log::Patch::Zero { .. } => {}
            }
        }
        if file_len < last {
            file.set_len(last)?;
            file_len = last;
        }
        file.flush()?;
        Ok((file_len, None))
    }

    /// Creates a VHDX of `size` bytes: every block allocated (`fixed`) or none.
    pub fn create(file: File, size: u64, fixed: bool) -> Result<Self, VhdxError> {
        if size > MAX_SIZE {
            return Err(VhdxError::TooLarge(size));
        }
        if size % LOGICAL_SECTOR != 0 {
            return Err(VhdxError::SizeUnaligned(size));
        }
        if size == 0 {
            return Err(VhdxError::DiskSize(size));
        }
        let mut file = HostFile::new(file, true);
        let block_size = DEFAULT_BLOCK_SIZE;
        let chunk = chunk_ratio(LOGICAL_SECTOR, block_size);
        let entries = bat_entries(size, block_size, chunk);
        let log_offset = HEADER_SECTION;
        let metadata_offset = log_offset + LOG_LENGTH;
        let bat_offset = metadata_offset + METADATA_LENGTH;
        let bat_length = (entries * 8).next_multiple_of(MIB);
        let data_start = bat_offset + bat_length;
        let blocks = size.div_ceil(block_size);
        let mut bat = vec![0u64; to_usize(entries)];
        let mut file_len = data_start;
        if fixed {
            for block in 0..blocks {
                let at = data_start + block * block_size;
                bat[to_usize(bat_index(block, chunk))] = at | PAYLOAD_FULLY_PRESENT;
            }
            file_len = data_start + blocks * block_size;
        }
        // The log, unused BAT entries and the data read as zeros from the extension.
        file.set_len(0)?;
        file.set_len(file_len)?;
        if fixed {
            let bytes: Vec<u8> = bat.iter().flat_map(|e| e.to_le_bytes()).collect();
            file.write_all_at(bat_offset, &bytes)?;
        }
        file.write_all_at(metadata_offset, &metadata_region(size, block_size, fixed))?;
        let regions = region_table(bat_offset, bat_length, metadata_offset);
        for &at in &REGION_TABLE_OFFSETS {
            file.write_all_at(at, &regions)?;
        }
        file.write_all_at(0, file_identifier().as_bytes())?;
        let mut header = new_header(log_offset);
        for (slot, &at) in HEADER_OFFSETS.iter().enumerate() {
            header.sequence_number = U64::new(slot as u64 + 1);
            let mut bytes = header.as_bytes().to_vec();
            seal_checksum(&mut bytes, 4);
            file.write_all_at(at, &bytes)?;
        }
        file.flush()?;
        Ok(Self {
            file,
            file_len,
            header: Box::new(header),
            header_slot: 1,
            size,
            block_size,
            chunk_ratio: chunk,
            fixed,
            bat_offset,
            bat,
            log_offset,
            log_length: LOG_LENGTH,
            pending: None,
            // The headers were just written with fresh GUIDs.
            session_started: true,
            log_sequence: 0,
            #[cfg(test)]
            crash_at: None,
        })
    }

    pub fn kind(&self) -> VhdxKind {
        if self.fixed {
            VhdxKind::Fixed
        } else {
            VhdxKind::Dynamic
        }
    }

    /// Payload blocks allocated and total.
    pub fn block_usage(&self) -> (u64, u64) {
        let blocks = self.size.div_ceil(self.block_size);
        let used = (0..blocks)
            .filter(|&b| self.entry(b) & BAT_STATE_MASK == PAYLOAD_FULLY_PRESENT)
            .count();
        (used as u64, blocks)
    }

    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    fn entry(&self, block: u64) -> u64 {
        self.bat
            .get(to_usize(bat_index(block, self.chunk_ratio)))
            .copied()
            .unwrap_or(PAYLOAD_NOT_PRESENT)
    }

    /// Writes the non-current header with `change` applied and the next sequence number; it
    /// becomes current once durable.
    fn update_header(&mut self, change: impl FnOnce(&mut Header)) -> Result<(), DeviceError> {
        let mut h = (*self.header).clone();
        change(&mut h);
        h.sequence_number = U64::new(h.sequence_number.get().wrapping_add(1));
        let mut bytes = h.as_bytes().to_vec();
        seal_checksum(&mut bytes, 4);
        let slot = 1 - self.header_slot;
        self.file.write_all_at(HEADER_OFFSETS[slot], &bytes)?;
        self.file.flush()?;
        *self.header = h;
        self.header_slot = slot;
        Ok(())
    }

    /// Before the first write after an open: new file and data write GUIDs, in both headers.
    fn start_session(&mut self) -> Result<(), DeviceError> {
        if self.session_started {
            return Ok(());
        }
        let (file_guid, data_guid) = (Guid::random().0, Guid::random().0);
        for _ in 0..2 {
            self.update_header(|h| {
                h.file_write_guid = file_guid;
                h.data_write_guid = data_guid;
            })?;
        }
        self.session_started = true;
        Ok(())
    }

    /// Changes 4 KiB metadata sectors in place through the log.
    fn logged_write(&mut self, writes: &[(u64, &[u8])]) -> Result<(), DeviceError> {
        let log_guid = Guid::random().0;
        self.update_header(|h| h.log_guid = log_guid)?;
        self.crash_point(CrashPoint::LogGuidSet)?;
        self.log_sequence += 1;
        let entry = log::build_entry(self.log_sequence, log_guid, self.file_len, writes);
        if entry.len() as u64 > self.log_length {
            return Err(DeviceError::new(
                DeviceErrorKind::OutOfRange,
                self.log_offset,
            ));
        }
        self.file.write_all_at(self.log_offset, &entry)?;
        self.file.flush()?;
        self.crash_point(CrashPoint::LogWritten)?;
        for (at, sector) in writes {
            self.file.write_all_at(*at, sector)?;
        }
        self.file.flush()?;
        self.crash_point(CrashPoint::InPlaceWritten)?;
        self.update_header(|h| h.log_guid = [0; 16])
    }

    /// Test builds: fails here if the test asked for a crash at this step.
    #[cfg(test)]
    fn crash_point(&self, here: CrashPoint) -> Result<(), DeviceError> {
        if self.crash_at == Some(here) {
            return Err(DeviceError::new(DeviceErrorKind::Io { code: -1 }, 0));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn crash_point(&self, _: CrashPoint) -> Result<(), DeviceError> {
        Ok(())
    }

    /// Allocates payload block `block` at the next 1 MiB boundary past the file's end and
    /// records it in the BAT through the log. Until the BAT entry is durable the new space is
    /// unreferenced, and it reads as zeros, as the unallocated block did.
    fn allocate(&mut self, block: u64) -> Result<u64, DeviceError> {
        let at = self.file_len.next_multiple_of(MIB);
        let new_len = at + self.block_size;
        self.file.set_len(new_len)?;
        self.file.flush()?;
        self.file_len = new_len;
        let index = bat_index(block, self.chunk_ratio);
        let entry = at | PAYLOAD_FULLY_PRESENT;
        let byte = self.bat_offset + index * 8;
        let page_at = byte - byte % LOG_SECTOR;
        let mut page = vec![0u8; to_usize(LOG_SECTOR)];
        self.file.read_exact_at(page_at, &mut page)?;
        let within = to_usize(byte - page_at);
        page[within..within + 8].copy_from_slice(&entry.to_le_bytes());
        self.logged_write(&[(page_at, &page)])?;
        if let Some(e) = self.bat.get_mut(to_usize(index)) {
            *e = entry;
        }
        Ok(at)
    }

    fn read_virtual(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (block, within) = (pos / self.block_size, pos % self.block_size);
            let n = to_usize((self.block_size - within).min((buf.len() - done) as u64));
            let piece = &mut buf[done..done + n];
            let entry = self.entry(block);
            if entry & BAT_STATE_MASK == PAYLOAD_FULLY_PRESENT {
                let at = (entry & BAT_OFFSET_MASK) + within;
                read_through(&mut self.file, self.pending.as_ref(), at, piece)?;
            } else {
                piece.fill(0);
            }
            done += n;
        }
        Ok(())
    }

    fn write_virtual(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.start_session()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (block, within) = (pos / self.block_size, pos % self.block_size);
            let n = to_usize((self.block_size - within).min((buf.len() - done) as u64));
            let piece = &buf[done..done + n];
            let entry = self.entry(block);
            let base = if entry & BAT_STATE_MASK == PAYLOAD_FULLY_PRESENT {
                Some(entry & BAT_OFFSET_MASK)
            } else if is_zero(piece) {
                // The block reads as zeros already.
                None
            } else {
                Some(self.allocate(block)?)
            };
            if let Some(base) = base {
                self.file.write_all_at(base + within, piece)?;
            }
            done += n;
        }
        Ok(())
    }

    fn zero_virtual(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        self.start_session()?;
        let mut done = 0;
        while done < len {
            let pos = offset + done;
            let (block, within) = (pos / self.block_size, pos % self.block_size);
            let n = (self.block_size - within).min(len - done);
            let entry = self.entry(block);
            if entry & BAT_STATE_MASK == PAYLOAD_FULLY_PRESENT {
                self.file
                    .zero_range((entry & BAT_OFFSET_MASK) + within, n)?;
            }
            done += n;
        }
        Ok(())
    }

    /// Test hook: the next logged update stops after `point`.
    #[cfg(test)]
    fn crash_after(&mut self, point: CrashPoint) {
        self.crash_at = Some(point);
    }
}

impl BlockDevice for VhdxDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        check_range(self.size, offset, buf.len())?;
        self.read_virtual(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        check_range(self.size, offset, buf.len())?;
        if !self.file.writable() {
            return Err(DeviceError::new(DeviceErrorKind::ReadOnly, offset));
        }
        self.write_virtual(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.file.flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        check_range(self.size, offset, to_usize(len))?;
        if !self.file.writable() {
            return Err(DeviceError::new(DeviceErrorKind::ReadOnly, offset));
        }
        self.zero_virtual(offset, len)
    }
}

/// Whether the first bytes of a file are the VHDX signature.
pub fn has_signature(first: &[u8]) -> bool {
    first.starts_with(FILE_SIGNATURE)
}

fn file_identifier() -> FileIdentifier {
    let mut id = FileIdentifier::new_zeroed();
    id.signature = *FILE_SIGNATURE;
    let creator: Vec<u8> = "cowfat".encode_utf16().flat_map(u16::to_le_bytes).collect();
    id.creator[..creator.len()].copy_from_slice(&creator);
    id
}

fn new_header(log_offset: u64) -> Header {
    let mut h = Header::new_zeroed();
    h.signature = U32::new(HEADER_SIGNATURE);
    h.file_write_guid = Guid::random().0;
    h.data_write_guid = Guid::random().0;
    h.log_version = U16::new(0);
    h.version = U16::new(1);
    h.log_length = U32::new(LOG_LENGTH as u32);
    h.log_offset = U64::new(log_offset);
    h
}

fn region_table(bat_offset: u64, bat_length: u64, metadata_offset: u64) -> Vec<u8> {
    let mut table = vec![0u8; REGION_TABLE_SIZE];
    let mut header = RegionTableHeader::new_zeroed();
    header.signature = U32::new(REGION_SIGNATURE);
    header.entry_count = U32::new(2);
    table[..16].copy_from_slice(header.as_bytes());
    let regions = [
        (BAT_REGION, bat_offset, bat_length),
        (METADATA_REGION, metadata_offset, METADATA_LENGTH),
    ];
    for (i, (guid, offset, length)) in regions.into_iter().enumerate() {
        let mut e = RegionTableEntry::new_zeroed();
        e.guid = guid.0;
        e.file_offset = U64::new(offset);
        e.length = U32::new(u32::try_from(length).unwrap_or(u32::MAX));
        e.flags = U32::new(REGION_REQUIRED);
        table[16 + 32 * i..48 + 32 * i].copy_from_slice(e.as_bytes());
    }
    seal_checksum(&mut table, 4);
    table
}

/// The metadata table and its five items (the items right after the 64 KiB table).
fn metadata_region(size: u64, block_size: u64, fixed: bool) -> Vec<u8> {
    let mut params = FileParameters::new_zeroed();
    params.block_size = U32::new(u32::try_from(block_size).unwrap_or(u32::MAX));
    params.flags = U32::new(if fixed {
        PARAM_LEAVE_BLOCKS_ALLOCATED
    } else {
        0
    });
    let disk = META_IS_VIRTUAL_DISK | META_IS_REQUIRED;
    let items: [(Guid, u32, Vec<u8>); 5] = [
        (
            FILE_PARAMETERS,
            META_IS_REQUIRED,
            params.as_bytes().to_vec(),
        ),
        (VIRTUAL_DISK_SIZE, disk, size.to_le_bytes().to_vec()),
        (VIRTUAL_DISK_ID, disk, Guid::random().0.to_vec()),
        (
            LOGICAL_SECTOR_SIZE,
            disk,
            (LOGICAL_SECTOR as u32).to_le_bytes().to_vec(),
        ),
        (
            PHYSICAL_SECTOR_SIZE,
            disk,
            PHYSICAL_SECTOR.to_le_bytes().to_vec(),
        ),
    ];
    let mut region = vec![0u8; METADATA_TABLE_SIZE + 4096];
    let mut header = MetadataTableHeader::new_zeroed();
    header.signature = *METADATA_SIGNATURE;
    header.entry_count = U16::new(items.len() as u16);
    region[..32].copy_from_slice(header.as_bytes());
    let mut item_at = METADATA_TABLE_SIZE;
    for (i, (guid, flags, bytes)) in items.iter().enumerate() {
        let mut e = MetadataTableEntry::new_zeroed();
        e.item_id = guid.0;
        e.offset = U32::new(item_at as u32);
        e.length = U32::new(bytes.len() as u32);
        e.flags = U32::new(*flags);
        region[32 + 32 * i..64 + 32 * i].copy_from_slice(e.as_bytes());
        region[item_at..item_at + bytes.len()].copy_from_slice(bytes);
        item_at += bytes.len();
    }
    region
}

// The disk is addressed in 512-byte sectors like every other image here.
const _: () = assert!(LOGICAL_SECTOR == SECTOR);

#[cfg(test)]
mod tests;
