//! Allocation table blocks. Each 4 KiB block holds 1023 little-endian u32 entries and a
//! CRC-32C; entry `c` says what follows cluster `c` in its chain. There are two tables: the
//! live one and the base one (frozen while sealed). An all-zero block is a block of free
//! entries, which is why formatting never has to write the tables.

use super::BLOCK_PAYLOAD;

/// Entries per table block.
pub const ENTRIES_PER_BLOCK: u32 = (BLOCK_PAYLOAD / 4) as u32;
/// The cluster is free.
pub const FREE: u32 = 0;
/// The cluster is the last of its chain.
pub const END: u32 = 0xFFFF_FFFF;
/// Cluster numbers start here (0 and 1 are not clusters, as in FAT).
pub const FIRST_CLUSTER: u32 = 2;
/// Clusters beyond this cannot be numbered.
pub const MAX_CLUSTER_COUNT: u32 = 0xFFFF_FFF0 - FIRST_CLUSTER;

/// Which 4 KiB table block, and the byte within it, holds the entry of `cluster`.
pub fn entry_position(cluster: u32) -> (u32, usize) {
    (
        cluster / ENTRIES_PER_BLOCK,
        (cluster % ENTRIES_PER_BLOCK) as usize * 4,
    )
}

/// Table blocks needed for `cluster_count` clusters numbered from 2.
pub fn blocks_for(cluster_count: u32) -> u32 {
    (u64::from(cluster_count) + u64::from(FIRST_CLUSTER)).div_ceil(u64::from(ENTRIES_PER_BLOCK))
        as u32
}

/// Bits of the table-difference bitmap in one 4 KiB block.
pub const DIFF_BITS_PER_BLOCK: u32 = (BLOCK_PAYLOAD * 8) as u32;
