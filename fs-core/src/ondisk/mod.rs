//! On-disk structures, one module each. `Raw*` types are the bytes (zerocopy, little-endian
//! fields, offsets in doc comments, sizes asserted); parsing never panics and bad bytes give
//! `Error::Corrupt { what, at }`. The byte tables are in docs/format.md.

pub mod boot;
pub mod dirent;
pub mod journal;
pub mod record;
pub mod state;
pub mod table;

use crc::{Crc, Table, CRC_32_ISCSI};

/// Size of every fixed metadata block: boot, state, table, diff bitmap, journal headers.
pub const BLOCK_SIZE: usize = 4096;
/// Bytes of a checked block that carry data; the last four hold its CRC-32C.
pub const BLOCK_PAYLOAD: usize = BLOCK_SIZE - 4;

pub(crate) static CASTAGNOLI: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// CRC-32C (Castagnoli), the checksum of every cowfat metadata structure.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CASTAGNOLI.checksum(bytes)
}

/// A running CRC-32C, for checksums over data that is not kept in one buffer.
pub fn crc32c_digest() -> crc::Digest<'static, u32, Table<16>> {
    CASTAGNOLI.digest()
}

/// Seals a checked block in place: the CRC of the payload goes in the last four bytes. An
/// all-zero payload gets CRC 0, so never-written (zeroed) regions are valid empty blocks and
/// formatting a large volume need not write its tables.
pub fn seal_block(block: &mut [u8]) {
    let (payload, crc) = block.split_at_mut(block.len() - 4);
    let value = if payload.iter().all(|&b| b == 0) {
        0
    } else {
        crc32c(payload)
    };
    crc.copy_from_slice(&value.to_le_bytes());
}

/// A whole-block structure on the heap, zeroed. These structures are a block (4 KiB) each:
/// on the 24 KiB kernel stack they would take a sixth of it per copy, so they never live there.
///
/// # Errors
/// [`Error::OutOfMemory`] when the allocation fails.
pub fn boxed_zeroed<T: zerocopy::FromZeros>() -> crate::error::Result<alloc::boxed::Box<T>> {
    T::new_box_zeroed().map_err(|_| crate::error::Error::OutOfMemory {
        what: "a metadata block",
        bytes: core::mem::size_of::<T>() as u64,
    })
}

/// `block`'s bytes as a whole-block structure on the heap; `None` when the sizes differ.
///
/// # Errors
/// [`Error::OutOfMemory`] when the allocation fails.
pub fn boxed_from_block<T: zerocopy::FromZeros + zerocopy::FromBytes + zerocopy::IntoBytes>(
    block: &[u8],
) -> crate::error::Result<Option<alloc::boxed::Box<T>>> {
    if block.len() != core::mem::size_of::<T>() {
        return Ok(None);
    }
    let mut boxed = boxed_zeroed::<T>()?;
    boxed.as_mut_bytes().copy_from_slice(block);
    Ok(Some(boxed))
}

/// A whole-block structure's bytes with the CRC filled in, on the heap.
pub fn sealed_block_of<T: zerocopy::IntoBytes + zerocopy::Immutable>(
    value: &T,
) -> crate::error::Result<alloc::vec::Vec<u8>> {
    let mut block = crate::mem::copied(value.as_bytes())?;
    seal_block(&mut block);
    Ok(block)
}

/// Whether a checked block's CRC matches (or the block is all zero).
pub fn block_is_valid(block: &[u8]) -> bool {
    let (payload, crc) = block.split_at(block.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if stored == 0 && payload.iter().all(|&b| b == 0) {
        return true;
    }
    stored == crc32c(payload)
}
