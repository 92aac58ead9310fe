//! File records: 128 bytes each, packed into the clusters of the record table (a chain whose
//! head is in the state block). A record holds everything about a file but its name, which
//! lives in the directory entry that points at it. Record numbers are stable file ids.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, Result};

pub const RECORD_SIZE: usize = 128;
/// Record of the root directory. Record 0 is never used, so no file id is 0.
pub const ROOT_RECORD: u32 = 1;

bitflags::bitflags! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RecordFlags: u16 {
        const IN_USE = 1;
        const DIRECTORY = 2;
        /// Unlinked from every directory but still open; freed at last close or next mount.
        const ORPHAN = 4;
    }
}

/// A record as bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct RawRecord {
    /// 0: [`RecordFlags`].
    pub flags: U16,
    /// 2: bumped each time the record is reused; the high 16 bits of the file id.
    pub sequence: U16,
    /// 4: FILE_ATTRIBUTE_* bits.
    pub attributes: U32,
    /// 8: first cluster of the data chain, 0 when it has none.
    pub first_cluster: U32,
    /// 12: number of the directory that holds the file's entry.
    pub parent: U32,
    /// 16: end of file in bytes.
    pub file_size: U64,
    /// 24: bytes from 0 that hold written data; beyond it the file reads as zeros.
    pub valid_data_length: U64,
    /// 32: clusters in the chain.
    pub cluster_count: U64,
    /// 40, 48, 56, 64: NT times.
    pub creation_time: U64,
    pub last_access_time: U64,
    pub last_write_time: U64,
    pub change_time: U64,
    /// 72
    pub reserved: [u8; 52],
    /// 124: CRC-32C of bytes 0..124.
    pub crc: U32,
}

const _: () = assert!(core::mem::size_of::<RawRecord>() == RECORD_SIZE);

impl RawRecord {
    pub fn new_zeroed() -> RawRecord {
        <RawRecord as zerocopy::FromZeros>::new_zeroed()
    }

    pub fn flags(&self) -> RecordFlags {
        RecordFlags::from_bits_truncate(self.flags.get())
    }

    pub fn in_use(&self) -> bool {
        self.flags().contains(RecordFlags::IN_USE)
    }

    /// Bytes with the CRC filled in (an all-zero record stays all zero).
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        out.copy_from_slice(self.as_bytes());
        super::seal_block(&mut out);
        out
    }

    pub fn parse(bytes: &[u8], at: u64) -> Result<RawRecord> {
        let raw = RawRecord::read_from_bytes(bytes).map_err(|_| Error::Corrupt {
            what: "file record size",
            at,
        })?;
        raw.check(at)?;
        Ok(raw)
    }

    /// Checks a record read in place (its CRC and flags); `at` is where it was read.
    pub fn check(&self, at: u64) -> Result<()> {
        if !super::block_is_valid(self.as_bytes()) {
            return Err(Error::Corrupt {
                what: "file record checksum",
                at,
            });
        }
        if RecordFlags::from_bits(self.flags.get()).is_none() {
            return Err(Error::Corrupt {
                what: "file record flags",
                at,
            });
        }
        Ok(())
    }
}
