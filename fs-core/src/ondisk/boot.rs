//! The boot block: byte 0 of the volume, with a backup in the last 4 KiB. Written once, at
//! format; it names the geometry and where every region starts.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{block_is_valid, seal_block, BLOCK_SIZE};
use crate::error::{Error, Result};

/// At byte 3, where NTFS and exFAT keep theirs: no other file system claims the volume.
pub const SIGNATURE: [u8; 8] = *b"COWFAT  ";
pub const VERSION: u32 = 1;

/// The boot block as bytes. Offsets are from the start of the volume.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone)]
#[repr(C)]
pub struct RawBoot {
    /// 0: zero, not an x86 jump, so the FAT recognizer does not take the volume.
    pub jump: [u8; 3],
    /// 3: `COWFAT  `.
    pub signature: [u8; 8],
    /// 11
    pub reserved0: [u8; 5],
    /// 16: format version.
    pub version: U32,
    /// 20: bytes per sector the volume was formatted for.
    pub sector_size: U32,
    /// 24: log2 of the cluster size (9 to 16).
    pub cluster_shift: U32,
    /// 28
    pub reserved1: U32,
    /// 32: bytes in the volume.
    pub volume_size: U64,
    /// 40: clusters in the heap; they are numbered from 2.
    pub cluster_count: U32,
    /// 44: 4 KiB blocks in each allocation table.
    pub table_blocks: U32,
    /// 48: volume serial number.
    pub serial: U64,
    /// 56
    pub state_offset: U64,
    /// 64
    pub journal_offset: U64,
    /// 72
    pub journal_size: U64,
    /// 80
    pub upcase_offset: U64,
    /// 88: CRC-32C of the up-case table.
    pub upcase_crc: U32,
    /// 92: 4 KiB blocks of the table-difference bitmap.
    pub diff_blocks: U32,
    /// 96
    pub diff_offset: U64,
    /// 104: the base allocation table (frozen at seal).
    pub base_table_offset: U64,
    /// 112: the live allocation table.
    pub live_table_offset: U64,
    /// 120: cluster 2 starts here.
    pub heap_offset: U64,
    /// 128: NT time of format.
    pub format_time: U64,
    /// 136
    pub reserved2: [u8; BLOCK_SIZE - 140],
    /// 4092: CRC-32C of bytes 0..4092.
    pub crc: U32,
}

const _: () = assert!(core::mem::size_of::<RawBoot>() == BLOCK_SIZE);

impl RawBoot {
    pub fn new_zeroed() -> RawBoot {
        <RawBoot as zerocopy::FromZeros>::new_zeroed()
    }

    /// Bytes with the CRC filled in.
    pub fn to_block(&self) -> [u8; BLOCK_SIZE] {
        let mut block = [0u8; BLOCK_SIZE];
        block.copy_from_slice(self.as_bytes());
        seal_block(&mut block);
        block
    }

    /// Parses and checks signature, version and CRC. `at` is where the block was read.
    pub fn parse(block: &[u8], at: u64) -> Result<RawBoot> {
        let raw = RawBoot::read_from_bytes(block).map_err(|_| Error::Corrupt {
            what: "boot block size",
            at,
        })?;
        if raw.signature != SIGNATURE {
            return Err(Error::NotCowfat("the boot block has no cowfat signature"));
        }
        if !block_is_valid(block) || raw.crc.get() == 0 {
            return Err(Error::Corrupt {
                what: "boot block checksum",
                at,
            });
        }
        if raw.version.get() != VERSION {
            return Err(Error::Unsupported("this cowfat format version"));
        }
        Ok(raw)
    }
}
