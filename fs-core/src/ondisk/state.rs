//! The state block: what changes as the volume is used (roots, counters, overlay flags,
//! label). It is written only through the journal, so a torn write is repaired by replay.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{block_is_valid, BLOCK_SIZE};
use crate::error::{Error, Result};

pub const MAGIC: [u8; 4] = *b"CFST";
pub const LABEL_UNITS: usize = 32;

bitflags::bitflags! {
    /// Volume state flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct StateFlags: u32 {
        /// A base exists: base clusters and the base table are immutable.
        const SEALED = 1;
        /// A volume commit (base := live) was decided and must be finished at mount.
        const COMMIT_PENDING = 2;
        /// A volume discard (live := base) was decided and must be finished at mount.
        const DISCARD_PENDING = 4;
    }
}

/// The state block as bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone)]
#[repr(C)]
pub struct RawState {
    /// 0: `CFST`.
    pub magic: [u8; 4],
    /// 4: [`StateFlags`].
    pub flags: U32,
    /// 8: sequence number of the next journal transaction.
    pub journal_seq: U64,
    /// 16: first cluster of the live record table.
    pub live_records_first: U32,
    /// 20: clusters in the live record table.
    pub live_records_clusters: U32,
    /// 24: first cluster of the base record table.
    pub base_records_first: U32,
    /// 28: clusters in the base record table.
    pub base_records_clusters: U32,
    /// 32: clusters used in the live table.
    pub live_used: U64,
    /// 40: clusters used in the base table.
    pub base_used: U64,
    /// 48: clusters used in both.
    pub both_used: U64,
    /// 56: where the allocator looks first.
    pub alloc_hint: U32,
    /// 60: UTF-16 units in the label.
    pub label_len: U32,
    /// 64: volume label.
    pub label: [U16; LABEL_UNITS],
    /// 128: NT time of the last seal or commit.
    pub seal_time: U64,
    /// 136
    pub reserved: [u8; BLOCK_SIZE - 140],
    /// 4092: CRC-32C of bytes 0..4092.
    pub crc: U32,
}

const _: () = assert!(core::mem::size_of::<RawState>() == BLOCK_SIZE);

impl RawState {
    /// A zeroed block on the heap (see [`super::boxed_zeroed`]).
    pub fn new_boxed() -> Result<Box<RawState>> {
        super::boxed_zeroed()
    }

    pub fn to_block(&self) -> Result<Vec<u8>> {
        super::sealed_block_of(self)
    }

    pub fn parse(block: &[u8], at: u64) -> Result<Box<RawState>> {
        let raw = super::boxed_from_block::<RawState>(block)?.ok_or(Error::Corrupt {
            what: "state block size",
            at,
        })?;
        if raw.magic != MAGIC {
            return Err(Error::Corrupt {
                what: "state block magic",
                at,
            });
        }
        if !block_is_valid(block) {
            return Err(Error::Corrupt {
                what: "state block checksum",
                at,
            });
        }
        if StateFlags::from_bits(raw.flags.get()).is_none() {
            return Err(Error::Corrupt {
                what: "state block flags",
                at,
            });
        }
        if raw.label_len.get() as usize > LABEL_UNITS {
            return Err(Error::Corrupt {
                what: "volume label length",
                at,
            });
        }
        Ok(raw)
    }

    pub fn flags(&self) -> StateFlags {
        StateFlags::from_bits_truncate(self.flags.get())
    }

    pub fn set_flags(&mut self, flags: StateFlags) {
        self.flags.set(flags.bits());
    }
}
