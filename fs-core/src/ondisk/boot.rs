//! The boot block: byte 0 of the volume, with a backup in the last 4 KiB. Written once, at
//! format; it names the geometry and where every region starts.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{block_is_valid, BLOCK_SIZE};
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
    /// A zeroed block on the heap (see [`super::boxed_zeroed`]).
    pub fn new_boxed() -> Result<Box<RawBoot>> {
        super::boxed_zeroed()
    }

    /// Bytes with the CRC filled in.
    pub fn to_block(&self) -> Result<Vec<u8>> {
        super::sealed_block_of(self)
    }

    /// Parses and checks signature, version and CRC. `at` is where the block was read.
    pub fn parse(block: &[u8], at: u64) -> Result<Box<RawBoot>> {
        let raw = super::boxed_from_block::<RawBoot>(block)?.ok_or(Error::Corrupt {
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
