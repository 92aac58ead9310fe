//! The VHDX on-disk structures (MS-VHDX, "VHDX Format Specification" v1.00): layout constants,
//! the structures as zerocopy types (all fields little-endian), the well-known GUIDs and the
//! CRC-32C checksums.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::image::guid::Guid;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;

/// The first 64 KiB: the file type identifier.
pub const FILE_SIGNATURE: &[u8; 8] = b"vhdxfile";
/// The two headers, 4 KiB of checksummed bytes each in a 64 KiB slot.
pub const HEADER_OFFSETS: [u64; 2] = [64 * KIB, 128 * KIB];
pub const HEADER_SIZE: usize = 4096;
/// The two copies of the region table, 64 KiB each.
pub const REGION_TABLE_OFFSETS: [u64; 2] = [192 * KIB, 256 * KIB];
pub const REGION_TABLE_SIZE: usize = 64 * 1024;
/// Everything before this is the header section; objects are 1 MiB-aligned after it.
pub const HEADER_SECTION: u64 = MIB;
/// The metadata table is the first 64 KiB of the metadata region; items follow it.
pub const METADATA_TABLE_SIZE: usize = 64 * 1024;
/// The log works in 4 KiB sectors.
pub const LOG_SECTOR: u64 = 4096;
/// Most entries a region table or metadata table may have.
pub const MAX_TABLE_ENTRIES: u32 = 2047;
/// Largest virtual disk the format allows.
pub const MAX_DISK_SIZE: u64 = 64 << 40;
/// Block sizes the format allows.
pub const MIN_BLOCK_SIZE: u64 = MIB;
pub const MAX_BLOCK_SIZE: u64 = 256 * MIB;
/// Sectors described by one sector bitmap block (2^23); with the logical sector size and the
/// block size it gives the chunk ratio.
pub const SECTORS_PER_BITMAP: u64 = 1 << 23;

pub const HEADER_SIGNATURE: u32 = u32::from_le_bytes(*b"head");
pub const REGION_SIGNATURE: u32 = u32::from_le_bytes(*b"regi");
pub const METADATA_SIGNATURE: &[u8; 8] = b"metadata";
pub const LOG_ENTRY_SIGNATURE: u32 = u32::from_le_bytes(*b"loge");
pub const DATA_DESCRIPTOR_SIGNATURE: u32 = u32::from_le_bytes(*b"desc");
pub const ZERO_DESCRIPTOR_SIGNATURE: u32 = u32::from_le_bytes(*b"zero");
pub const DATA_SECTOR_SIGNATURE: u32 = u32::from_le_bytes(*b"data");

/// Region table entry flag: a reader must understand the region to open the file.
pub const REGION_REQUIRED: u32 = 1;
/// Metadata entry flags.
pub const META_IS_VIRTUAL_DISK: u32 = 2;
pub const META_IS_REQUIRED: u32 = 4;
/// File parameter flags.
pub const PARAM_LEAVE_BLOCKS_ALLOCATED: u32 = 1;
pub const PARAM_HAS_PARENT: u32 = 2;

/// BAT entry: the state in bits 0-2, the file offset in MiB in bits 20-63.
pub const BAT_STATE_MASK: u64 = 7;
pub const BAT_OFFSET_MASK: u64 = !(MIB - 1);
pub const PAYLOAD_NOT_PRESENT: u64 = 0;
pub const PAYLOAD_UNDEFINED: u64 = 1;
pub const PAYLOAD_ZERO: u64 = 2;
pub const PAYLOAD_UNMAPPED: u64 = 3;
pub const PAYLOAD_FULLY_PRESENT: u64 = 6;
pub const SB_BLOCK_NOT_PRESENT: u64 = 0;
pub const SB_BLOCK_PRESENT: u64 = 6;

const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
    Guid::from_text_fields(d1, d2, d3, d4)
}

/// Region GUIDs.
pub const BAT_REGION: Guid = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
pub const METADATA_REGION: Guid = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);

/// Metadata item GUIDs.
pub const FILE_PARAMETERS: Guid = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
pub const VIRTUAL_DISK_SIZE: Guid = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
pub const VIRTUAL_DISK_ID: Guid = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
pub const LOGICAL_SECTOR_SIZE: Guid = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
pub const PHYSICAL_SECTOR_SIZE: Guid = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
pub const PARENT_LOCATOR: Guid = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);

/// The file type identifier at offset 0 (the rest of its 64 KiB is reserved).
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FileIdentifier {
    pub signature: [u8; 8],
    /// UTF-16LE name of the program that made the file, diagnostic only.
    pub creator: [u8; 512],
}

/// A header: 4 KiB, CRC-32C over all of it with the checksum field zeroed.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    pub signature: U32,
    pub checksum: U32,
    /// The valid header with the larger sequence number is current.
    pub sequence_number: U64,
    /// Changed before the first write to the file after it is opened.
    pub file_write_guid: [u8; 16],
    /// Changed before the first write that changes what the virtual disk reads.
    pub data_write_guid: [u8; 16],
    /// Zero when the log is empty; otherwise the log entries to replay carry this GUID.
    pub log_guid: [u8; 16],
    pub log_version: U16,
    pub version: U16,
    pub log_length: U32,
    pub log_offset: U64,
    pub reserved: [u8; 4016],
}
const _: () = assert!(size_of::<Header>() == HEADER_SIZE);

#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RegionTableHeader {
    pub signature: U32,
    /// CRC-32C over the whole 64 KiB table with this field zeroed.
    pub checksum: U32,
    pub entry_count: U32,
    pub reserved: U32,
}

#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RegionTableEntry {
    pub guid: [u8; 16],
    pub file_offset: U64,
    pub length: U32,
    pub flags: U32,
}

#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct MetadataTableHeader {
    pub signature: [u8; 8],
    pub reserved: U16,
    pub entry_count: U16,
    pub reserved2: [u8; 20],
}

#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct MetadataTableEntry {
    pub item_id: [u8; 16],
    /// From the start of the metadata region; at least 64 KiB (past the table).
    pub offset: U32,
    pub length: U32,
    pub flags: U32,
    pub reserved: U32,
}

#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FileParameters {
    pub block_size: U32,
    pub flags: U32,
}

/// The first 64 bytes of a log entry; descriptors follow, then the data sectors.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct LogEntryHeader {
    pub signature: U32,
    /// CRC-32C over the whole entry (`entry_length` bytes) with this field zeroed.
    pub checksum: U32,
    pub entry_length: U32,
    /// Log offset of the first entry of the sequence this entry ends.
    pub tail: U32,
    pub sequence_number: U64,
    pub descriptor_count: U32,
    pub reserved: U32,
    pub log_guid: [u8; 16],
    /// The file was at least this long when the entry was written.
    pub flushed_file_offset: U64,
    /// Every structure the file holds fits below this offset.
    pub last_file_offset: U64,
}
pub const LOG_ENTRY_HEADER_SIZE: u64 = 64;
const _: () = assert!(size_of::<LogEntryHeader>() == 64);

/// A log descriptor: "desc" (a 4 KiB data sector goes to `file_offset`) or "zero" (`length`
/// zero bytes go there). 32 bytes.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Descriptor {
    pub signature: U32,
    /// "desc": the last 4 bytes of the 4 KiB sector. "zero": reserved.
    pub trailing_bytes: [u8; 4],
    /// "desc": the first 8 bytes of the sector. "zero": the length to zero.
    pub leading_bytes: [u8; 8],
    pub file_offset: U64,
    pub sequence_number: U64,
}
pub const DESCRIPTOR_SIZE: u64 = 32;
const _: () = assert!(size_of::<Descriptor>() == 32);

/// A data sector: the middle 4084 bytes of the 4 KiB written, framed by the sequence number.
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DataSector {
    pub signature: U32,
    pub sequence_high: U32,
    pub data: [u8; 4084],
    pub sequence_low: U32,
}
const _: () = assert!(size_of::<DataSector>() == 4096);

/// CRC-32C of `bytes` with the 4-byte checksum field at `at` taken as zero.
pub fn checksum_without(bytes: &[u8], at: usize) -> u32 {
    let crc = crc32c::crc32c(&bytes[..at]);
    let crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc32c::crc32c_append(crc, &bytes[at + 4..])
}

/// Writes the CRC-32C of `bytes` into its checksum field at `at`.
pub fn seal_checksum(bytes: &mut [u8], at: usize) {
    let crc = checksum_without(bytes, at);
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Whether the checksum field at `at` holds the CRC-32C of the rest.
pub fn checksum_ok(bytes: &[u8], at: usize) -> bool {
    let stored = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    stored == checksum_without(bytes, at)
}

/// The chunk ratio: payload blocks per sector bitmap block.
pub fn chunk_ratio(logical_sector: u64, block_size: u64) -> u64 {
    SECTORS_PER_BITMAP * logical_sector / block_size
}

/// BAT entries of a disk without a parent: each payload block, and a sector bitmap entry after
/// every `chunk_ratio` of them (except after the last).
pub fn bat_entries(size: u64, block_size: u64, chunk_ratio: u64) -> u64 {
    let blocks = size.div_ceil(block_size);
    blocks + blocks.saturating_sub(1) / chunk_ratio
}

/// Where payload block `block` sits in the BAT.
pub fn bat_index(block: u64, chunk_ratio: u64) -> u64 {
    block + block / chunk_ratio
}
