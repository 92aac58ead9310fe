//! Partition tables: GPT (UEFI specification, chapter 5) with its protective MBR, the classic
//! MBR, or none. One partition is created, aligned to 1 MiB, as Windows does.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::device::{to_usize, BlockDevice, DeviceError, SECTOR};
use super::guid::Guid;

/// Partitions start and end on 1 MiB boundaries (2048 sectors).
pub const ALIGN_SECTORS: u64 = 2048;
/// Windows' "basic data" partition type, which Windows mounts and hands to file systems.
pub const BASIC_DATA: Guid = Guid::from_text_fields(
    0xEBD0_A0A2,
    0xB9E5,
    0x4433,
    [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7],
);
/// MBR type 0x07 (IFS: NTFS, exFAT and other installable file systems).
pub const MBR_TYPE_IFS: u8 = 0x07;
const MBR_TYPE_PROTECTIVE: u8 = 0xEE;
const MBR_SIGNATURE: [u8; 2] = [0x55, 0xAA];
const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
const GPT_REVISION_1_0: u32 = 0x0001_0000;
const GPT_HEADER_SIZE: u32 = 92;
const GPT_ENTRIES: u32 = 128;
const GPT_ENTRY_SIZE: u32 = 128;
/// 128 entries of 128 bytes: 32 sectors.
const GPT_ENTRY_SECTORS: u64 = (GPT_ENTRIES as u64 * GPT_ENTRY_SIZE as u64) / SECTOR;
/// Reading refuses entry arrays larger than this (a damaged header must not make us allocate
/// gigabytes).
const GPT_MAX_ARRAY_BYTES: u64 = 1 << 20;
pub const PARTITION_NAME: &str = "cowfat";

/// One entry of the MBR's partition table, 16 bytes.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawMbrEntry {
    /// 0: 0x80 bootable, 0x00 not.
    boot_indicator: u8,
    /// 1
    starting_chs: [u8; 3],
    /// 4
    os_type: u8,
    /// 5
    ending_chs: [u8; 3],
    /// 8
    starting_lba: U32,
    /// 12
    size_in_lba: U32,
}

/// The master boot record, sector 0.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawMbr {
    /// 0
    boot_code: [u8; 440],
    /// 440
    disk_signature: U32,
    /// 444
    unknown: U16,
    /// 446
    entries: [RawMbrEntry; 4],
    /// 510: 0x55 0xAA
    signature: [u8; 2],
}
const _: () = assert!(size_of::<RawMbr>() == 512);

/// The GPT header (92 bytes; the rest of its sector is zero).
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawGptHeader {
    /// 0
    signature: [u8; 8],
    /// 8
    revision: U32,
    /// 12
    header_size: U32,
    /// 16: CRC32 of the header's `header_size` bytes with this field zero.
    header_crc32: U32,
    /// 20
    reserved: U32,
    /// 24
    my_lba: U64,
    /// 32
    alternate_lba: U64,
    /// 40
    first_usable_lba: U64,
    /// 48
    last_usable_lba: U64,
    /// 56
    disk_guid: [u8; 16],
    /// 72
    partition_entry_lba: U64,
    /// 80
    number_of_partition_entries: U32,
    /// 84
    size_of_partition_entry: U32,
    /// 88
    partition_entry_array_crc32: U32,
}
const _: () = assert!(size_of::<RawGptHeader>() == 92);

/// A GPT partition entry, 128 bytes.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawGptEntry {
    /// 0
    partition_type_guid: [u8; 16],
    /// 16
    unique_partition_guid: [u8; 16],
    /// 32
    starting_lba: U64,
    /// 40: inclusive.
    ending_lba: U64,
    /// 48
    attributes: U64,
    /// 56: UTF-16LE, zero padded.
    partition_name: [u8; 72],
}
const _: () = assert!(size_of::<RawGptEntry>() == 128);

/// Which partition table an image has (or gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Gpt,
    Mbr,
    None,
}

/// What a partition says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionType {
    Gpt(Guid),
    Mbr(u8),
}

impl PartitionType {
    /// Whether the type is one a cowfat volume is made with (the signature decides for sure).
    pub fn is_cowfat_type(&self) -> bool {
        matches!(*self, Self::Gpt(g) if g == BASIC_DATA) || *self == Self::Mbr(MBR_TYPE_IFS)
    }
}

impl std::fmt::Display for PartitionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gpt(g) if *g == BASIC_DATA => write!(f, "basic data ({g})"),
            Self::Gpt(g) => write!(f, "{g}"),
            Self::Mbr(t) => write!(f, "0x{t:02x}"),
        }
    }
}

/// A partition found in (or made in) a table. Offsets are bytes on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, as in the table (and as `--partition-index` takes it).
    pub index: u32,
    pub start: u64,
    pub len: u64,
    pub kind: PartitionType,
    pub name: String,
}

/// A partition table as read.
#[derive(Debug, Clone)]
pub struct Table {
    pub scheme: Scheme,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("the disk ({size} bytes) is too small for a 1 MiB-aligned partition")]
    TooSmall { size: u64 },
    #[error("an MBR cannot describe a disk over 2 TiB; use --partition gpt")]
    MbrTooLarge,
    #[error("the GPT header in sector {lba} is damaged: {why}")]
    GptHeader { lba: u64, why: &'static str },
    #[error("the GPT partition entries are damaged (their CRC32 does not match the header)")]
    GptEntriesCrc,
    #[error("GPT partition {index} lies outside the disk's usable sectors")]
    GptEntryRange { index: u32 },
    #[error("{0}")]
    Device(super::vhd::DeviceErrorText),
}

impl From<DeviceError> for PartitionError {
    fn from(e: DeviceError) -> Self {
        Self::Device(super::vhd::DeviceErrorText(e))
    }
}

/// Where the single partition of a new disk goes, in sectors: [first, last] inclusive.
fn new_partition_span(total_sectors: u64, scheme: Scheme) -> Result<(u64, u64), PartitionError> {
    let end_limit = match scheme {
        // The backup entries (32 sectors) and backup header (1) take the disk's tail.
        Scheme::Gpt => total_sectors.saturating_sub(GPT_ENTRY_SECTORS + 1),
        _ => total_sectors,
    };
    let end = end_limit / ALIGN_SECTORS * ALIGN_SECTORS;
    if end <= ALIGN_SECTORS {
        return Err(PartitionError::TooSmall {
            size: total_sectors * SECTOR,
        });
    }
    Ok((ALIGN_SECTORS, end - 1))
}

/// Writes a fresh table holding one partition over (almost) the whole disk and returns it;
/// `Scheme::None` writes nothing and returns the whole disk.
pub fn write_table(dev: &mut dyn BlockDevice, scheme: Scheme) -> Result<Partition, PartitionError> {
    let total = dev.size() / SECTOR;
    if scheme == Scheme::None {
        return Ok(Partition {
            index: 0,
            start: 0,
            len: dev.size(),
            kind: PartitionType::Mbr(0),
            name: String::new(),
        });
    }
    let (first, last) = new_partition_span(total, scheme)?;
    match scheme {
        Scheme::Gpt => write_gpt(dev, total, first, last)?,
        _ => write_mbr(dev, first, last)?,
    }
    let kind = match scheme {
        Scheme::Gpt => PartitionType::Gpt(BASIC_DATA),
        _ => PartitionType::Mbr(MBR_TYPE_IFS),
    };
    Ok(Partition {
        index: 1,
        start: first * SECTOR,
        len: (last - first + 1) * SECTOR,
        kind,
        name: PARTITION_NAME.into(),
    })
}

/// CHS address for an LBA on the conventional 255-head, 63-sector geometry; addresses past
/// cylinder 1023 get the customary "use LBA" marker (1023/254/63).
fn lba_to_chs(lba: u64) -> [u8; 3] {
    let (spt, heads) = (63, 255);
    let cyl = lba / (spt * heads);
    if cyl > 1023 {
        return [0xFE, 0xFF, 0xFF];
    }
    let head = (lba / spt) % heads;
    let sector = lba % spt + 1;
    // Bits 8-9 of the cylinder live in the top of the sector byte.
    let cyl_hi = u8::try_from((cyl >> 8) << 6).unwrap_or(0);
    [
        u8::try_from(head).unwrap_or(0),
        u8::try_from(sector).unwrap_or(0) | cyl_hi,
        u8::try_from(cyl & 0xFF).unwrap_or(0),
    ]
}

fn mbr_entry(os_type: u8, first: u64, count: u64) -> Result<RawMbrEntry, PartitionError> {
    let start = u32::try_from(first).map_err(|_| PartitionError::MbrTooLarge)?;
    let size = u32::try_from(count).map_err(|_| PartitionError::MbrTooLarge)?;
    Ok(RawMbrEntry {
        boot_indicator: 0,
        starting_chs: lba_to_chs(first),
        os_type,
        ending_chs: lba_to_chs(first + count - 1),
        starting_lba: U32::new(start),
        size_in_lba: U32::new(size),
    })
}

fn write_mbr_sector(dev: &mut dyn BlockDevice, entry: RawMbrEntry) -> Result<(), PartitionError> {
    let mut mbr = RawMbr::new_zeroed();
    let sig = Guid::random().0;
    mbr.disk_signature = U32::new(u32::from_le_bytes([sig[0], sig[1], sig[2], sig[3]]));
    mbr.entries[0] = entry;
    mbr.signature = MBR_SIGNATURE;
    dev.write_at(0, mbr.as_bytes())?;
    Ok(())
}

fn write_mbr(dev: &mut dyn BlockDevice, first: u64, last: u64) -> Result<(), PartitionError> {
    write_mbr_sector(dev, mbr_entry(MBR_TYPE_IFS, first, last - first + 1)?)
}

fn write_gpt(
    dev: &mut dyn BlockDevice,
    total: u64,
    first: u64,
    last: u64,
) -> Result<(), PartitionError> {
    // The protective MBR covers the whole disk, or as much of it as 32 bits can say.
    let protective_size = (total - 1).min(u64::from(u32::MAX));
    let mut protective = mbr_entry(MBR_TYPE_PROTECTIVE, 1, protective_size)?;
    protective.starting_chs = [0x00, 0x02, 0x00];
    protective.ending_chs = [0xFF, 0xFF, 0xFF];
    write_mbr_sector(dev, protective)?;

    let array = gpt_entry_array(first, last);
    let array_crc = crc32fast::hash(&array);
    let disk_guid = Guid::random();
    let last_lba = total - 1;
    let backup_array_lba = last_lba - GPT_ENTRY_SECTORS;
    let primary = gpt_header(1, last_lba, 2, total, disk_guid, array_crc);
    let backup = gpt_header(last_lba, 1, backup_array_lba, total, disk_guid, array_crc);
    // Backup first: a disk with a valid backup and no primary is repairable, the reverse too,
    // but writing the primary last means readers never see a primary without its backup.
    dev.write_at(backup_array_lba * SECTOR, &array)?;
    dev.write_at(last_lba * SECTOR, &header_sector(&backup))?;
    dev.write_at(2 * SECTOR, &array)?;
    dev.write_at(SECTOR, &header_sector(&primary))?;
    Ok(())
}

fn gpt_entry_array(first: u64, last: u64) -> Vec<u8> {
    let mut entry = RawGptEntry::new_zeroed();
    entry.partition_type_guid = BASIC_DATA.0;
    entry.unique_partition_guid = Guid::random().0;
    entry.starting_lba = U64::new(first);
    entry.ending_lba = U64::new(last);
    for (i, unit) in PARTITION_NAME.encode_utf16().take(36).enumerate() {
        entry.partition_name[2 * i..2 * i + 2].copy_from_slice(&unit.to_le_bytes());
    }
    let mut array = vec![0u8; to_usize(GPT_ENTRY_SECTORS * SECTOR)];
    array[..128].copy_from_slice(entry.as_bytes());
    array
}

fn gpt_header(
    my: u64,
    alternate: u64,
    entries_lba: u64,
    total: u64,
    disk: Guid,
    array_crc: u32,
) -> RawGptHeader {
    let mut h = RawGptHeader::new_zeroed();
    h.signature = *GPT_SIGNATURE;
    h.revision = U32::new(GPT_REVISION_1_0);
    h.header_size = U32::new(GPT_HEADER_SIZE);
    h.my_lba = U64::new(my);
    h.alternate_lba = U64::new(alternate);
    h.first_usable_lba = U64::new(2 + GPT_ENTRY_SECTORS);
    h.last_usable_lba = U64::new(total - 2 - GPT_ENTRY_SECTORS);
    h.disk_guid = disk.0;
    h.partition_entry_lba = U64::new(entries_lba);
    h.number_of_partition_entries = U32::new(GPT_ENTRIES);
    h.size_of_partition_entry = U32::new(GPT_ENTRY_SIZE);
    h.partition_entry_array_crc32 = U32::new(array_crc);
    h.header_crc32 = U32::new(crc32fast::hash(h.as_bytes()));
    h
}

fn header_sector(h: &RawGptHeader) -> Vec<u8> {
    let mut sector = vec![0u8; to_usize(SECTOR)];
    sector[..92].copy_from_slice(h.as_bytes());
    sector
}

/// Reads the partition table of a disk. A disk with no recognisable table is `Scheme::None`
/// (the whole disk is the volume).
pub fn read_table(dev: &mut dyn BlockDevice) -> Result<Table, PartitionError> {
    let none = Table {
        scheme: Scheme::None,
        partitions: Vec::new(),
    };
    if dev.size() < 2 * SECTOR {
        return Ok(none);
    }
    let mut sector = vec![0u8; to_usize(SECTOR)];
    dev.read_at(0, &mut sector)?;
    let Ok(mbr) = RawMbr::read_from_bytes(&sector[..]) else {
        return Ok(none);
    };
    if mbr.signature != MBR_SIGNATURE {
        return Ok(none);
    }
    if mbr.entries.iter().any(|e| e.os_type == MBR_TYPE_PROTECTIVE) {
        return read_gpt(dev);
    }
    Ok(match mbr_partitions(&mbr, dev.size() / SECTOR) {
        Some(partitions) => Table {
            scheme: Scheme::Mbr,
            partitions,
        },
        // A boot sector with 0x55AA but no sane entries is some volume's own boot sector.
        None => none,
    })
}

/// The used entries of an MBR, or None if any entry is implausible.
fn mbr_partitions(mbr: &RawMbr, total: u64) -> Option<Vec<Partition>> {
    let mut out = Vec::new();
    for (i, e) in mbr.entries.iter().enumerate() {
        if e.os_type == 0 {
            continue;
        }
        let (start, count) = (
            u64::from(e.starting_lba.get()),
            u64::from(e.size_in_lba.get()),
        );
        let sane = matches!(e.boot_indicator, 0x00 | 0x80)
            && start > 0
            && count > 0
            && start + count <= total;
        if !sane {
            return None;
        }
        out.push(Partition {
            index: u32::try_from(i + 1).unwrap_or(0),
            start: start * SECTOR,
            len: count * SECTOR,
            kind: PartitionType::Mbr(e.os_type),
            name: String::new(),
        });
    }
    (!out.is_empty()).then_some(out)
}

/// Reads the primary GPT, falling back to the backup at the last sector when the primary is
/// damaged (the reason the backup exists).
fn read_gpt(dev: &mut dyn BlockDevice) -> Result<Table, PartitionError> {
    let last = dev.size() / SECTOR - 1;
    let header = match read_gpt_header(dev, 1) {
        Ok(h) => h,
        Err(primary) => read_gpt_header(dev, last).map_err(|_| primary)?,
    };
    let partitions = read_gpt_entries(dev, &header)?;
    Ok(Table {
        scheme: Scheme::Gpt,
        partitions,
    })
}

fn read_gpt_header(dev: &mut dyn BlockDevice, lba: u64) -> Result<RawGptHeader, PartitionError> {
    let bad = |why| PartitionError::GptHeader { lba, why };
    let mut sector = vec![0u8; to_usize(SECTOR)];
    dev.read_at(lba * SECTOR, &mut sector)?;
    let h = RawGptHeader::read_from_bytes(&sector[..92]).map_err(|_| bad("short"))?;
    if &h.signature != GPT_SIGNATURE {
        return Err(bad("no \"EFI PART\" signature"));
    }
    let size = h.header_size.get();
    if !(GPT_HEADER_SIZE..=512).contains(&size) {
        return Err(bad("header size out of range"));
    }
    let mut copy = sector.clone();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy[..to_usize(u64::from(size))]) != h.header_crc32.get() {
        return Err(bad("header CRC32 mismatch"));
    }
    if h.my_lba.get() != lba {
        return Err(bad("it names another sector as its own"));
    }
    Ok(h)
}

fn read_gpt_entries(
    dev: &mut dyn BlockDevice,
    h: &RawGptHeader,
) -> Result<Vec<Partition>, PartitionError> {
    let bad = |why| PartitionError::GptHeader {
        lba: h.my_lba.get(),
        why,
    };
    let (count, size) = (
        h.number_of_partition_entries.get(),
        h.size_of_partition_entry.get(),
    );
    if size < 128 || size % 8 != 0 {
        return Err(bad("partition entry size out of range"));
    }
    // Every entry's range is checked against these two, so they must lie on the disk (the
    // entries' LBAs are multiplied by the sector size after that).
    let (first_usable, last_usable) = (h.first_usable_lba.get(), h.last_usable_lba.get());
    if first_usable > last_usable || last_usable >= dev.size() / SECTOR {
        return Err(bad("usable sectors outside the disk"));
    }
    let bytes = u64::from(count) * u64::from(size);
    if bytes > GPT_MAX_ARRAY_BYTES {
        return Err(bad("partition entry array too large"));
    }
    let start = h.partition_entry_lba.get();
    let end = start.checked_mul(SECTOR).and_then(|s| s.checked_add(bytes));
    if end.is_none_or(|e| e > dev.size()) {
        return Err(bad("partition entries outside the disk"));
    }
    let mut array = vec![0u8; to_usize(bytes.next_multiple_of(SECTOR))];
    dev.read_at(start * SECTOR, &mut array)?;
    array.truncate(to_usize(bytes));
    if crc32fast::hash(&array) != h.partition_entry_array_crc32.get() {
        return Err(PartitionError::GptEntriesCrc);
    }
    let mut out = Vec::new();
    for (i, raw) in array.chunks_exact(to_usize(u64::from(size))).enumerate() {
        let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if let Some(p) = gpt_partition(raw, index, h)? {
            out.push(p);
        }
    }
    Ok(out)
}

fn gpt_partition(
    raw: &[u8],
    index: u32,
    h: &RawGptHeader,
) -> Result<Option<Partition>, PartitionError> {
    let Ok((e, _)) = RawGptEntry::read_from_prefix(raw) else {
        return Ok(None);
    };
    let kind = Guid(e.partition_type_guid);
    if kind.is_zero() {
        return Ok(None);
    }
    let (first, last) = (e.starting_lba.get(), e.ending_lba.get());
    if first > last || first < h.first_usable_lba.get() || last > h.last_usable_lba.get() {
        return Err(PartitionError::GptEntryRange { index });
    }
    let units: Vec<u16> = e
        .partition_name
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    Ok(Some(Partition {
        index,
        start: first * SECTOR,
        len: (last - first + 1) * SECTOR,
        kind: PartitionType::Gpt(kind),
        name: String::from_utf16_lossy(&units),
    }))
}

#[cfg(test)]
mod tests;
