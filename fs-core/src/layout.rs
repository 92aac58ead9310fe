//! Where everything is on a volume, computed from its size and cluster size. The boot block
//! stores the result; mount recomputes it and refuses a boot block that disagrees.
//!
//! | region          | size                                   |
//! |-----------------|----------------------------------------|
//! | boot block      | 4 KiB at 0 (backup in the last 4 KiB)  |
//! | state block     | 4 KiB                                  |
//! | journal         | volume / 64, from 512 KiB to 32 MiB    |
//! | up-case table   | 128 KiB                                |
//! | diff bitmap     | one bit per table block                |
//! | base table      | 4 KiB per 1023 clusters                |
//! | live table      | the same                               |
//! | cluster heap    | cluster aligned, up to the backup boot |

use crate::error::{Error, Result};
use crate::name::UPCASE_ENTRIES;
use crate::ondisk::boot::RawBoot;
use crate::ondisk::table::{blocks_for, DIFF_BITS_PER_BLOCK, FIRST_CLUSTER, MAX_CLUSTER_COUNT};
use crate::ondisk::BLOCK_SIZE;

const BLOCK: u64 = BLOCK_SIZE as u64;
pub const UPCASE_BYTES: u64 = (UPCASE_ENTRIES * 2) as u64;
pub const MIN_CLUSTER_SHIFT: u32 = 9;
pub const MAX_CLUSTER_SHIFT: u32 = 16;
/// Fewer clusters than this is not a useful volume.
pub const MIN_CLUSTERS: u32 = 16;
/// Far beyond what 2^32 clusters of 64 KiB address (2^48 bytes), and small enough that no
/// sum of region sizes can overflow a u64.
pub const MAX_VOLUME_SIZE: u64 = 1 << 56;

/// The computed layout of a volume. Offsets are bytes from the start of the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    pub volume_size: u64,
    pub sector_size: u32,
    pub cluster_shift: u32,
    pub cluster_count: u32,
    pub table_blocks: u32,
    pub state_offset: u64,
    pub journal_offset: u64,
    pub journal_size: u64,
    pub upcase_offset: u64,
    pub diff_offset: u64,
    pub diff_blocks: u32,
    pub base_table_offset: u64,
    pub live_table_offset: u64,
    pub heap_offset: u64,
    pub backup_boot_offset: u64,
}

/// The journal size a volume of `volume_size` bytes gets.
pub fn default_journal_size(volume_size: u64) -> u64 {
    let j = (volume_size / 64).clamp(512 * 1024, 32 * 1024 * 1024);
    j - j % BLOCK
}

impl Geometry {
    /// Lays out a volume. Fails when the sizes cannot make a volume.
    pub fn compute(
        volume_size: u64,
        cluster_shift: u32,
        sector_size: u32,
        journal_size: u64,
    ) -> Result<Geometry> {
        if !(MIN_CLUSTER_SHIFT..=MAX_CLUSTER_SHIFT).contains(&cluster_shift) {
            return Err(Error::InvalidArgument(
                "the cluster size must be a power of two from 512 bytes to 64 KiB",
            ));
        }
        if !matches!(sector_size, 512 | 1024 | 2048 | 4096)
            || (1u64 << cluster_shift) < u64::from(sector_size)
        {
            return Err(Error::InvalidArgument(
                "the sector size must be 512 to 4096 bytes and not exceed the cluster size",
            ));
        }
        if journal_size < 256 * 1024 || journal_size % BLOCK != 0 {
            return Err(Error::InvalidArgument(
                "the journal must be at least 256 KiB, in 4 KiB blocks",
            ));
        }
        if volume_size > MAX_VOLUME_SIZE {
            return Err(Error::InvalidArgument("the volume is too large"));
        }
        let volume_size = volume_size - volume_size % BLOCK;
        let cluster = 1u64 << cluster_shift;
        let state_offset = BLOCK;
        let journal_offset = state_offset + BLOCK;
        let Some(usable_end) = volume_size.checked_sub(BLOCK) else {
            return Err(Error::InvalidArgument("the volume is too small"));
        };
        // The journal size comes from the boot block on mount: it must fit in the volume
        // before anything is added to it.
        if journal_size > usable_end {
            return Err(Error::InvalidArgument(
                "the journal is larger than the volume",
            ));
        }
        let upcase_offset = journal_offset + journal_size;
        let diff_offset = upcase_offset + UPCASE_BYTES;
        // The tables' size depends on the cluster count and the other way round: start from
        // an upper bound and shrink until the heap holds as many clusters as the tables map.
        let mut count = (usable_end.saturating_sub(diff_offset) / cluster)
            .min(u64::from(MAX_CLUSTER_COUNT)) as u32;
        loop {
            let table_blocks = blocks_for(count);
            let diff_blocks = table_blocks.div_ceil(DIFF_BITS_PER_BLOCK);
            let base_table_offset = diff_offset + u64::from(diff_blocks) * BLOCK;
            let live_table_offset = base_table_offset + u64::from(table_blocks) * BLOCK;
            let tables_end = live_table_offset + u64::from(table_blocks) * BLOCK;
            let heap_offset = tables_end.div_ceil(cluster.max(BLOCK)) * cluster.max(BLOCK);
            let fits = usable_end.saturating_sub(heap_offset) / cluster;
            if fits >= u64::from(count) {
                if count < MIN_CLUSTERS {
                    return Err(Error::InvalidArgument(
                        "the volume is too small for cowfat (a few MiB at least)",
                    ));
                }
                if volume_size / cluster > u64::from(MAX_CLUSTER_COUNT) {
                    return Err(Error::InvalidArgument(
                        "too many clusters for this cluster size; choose a larger cluster size",
                    ));
                }
                return Ok(Geometry {
                    volume_size,
                    sector_size,
                    cluster_shift,
                    cluster_count: count,
                    table_blocks,
                    state_offset,
                    journal_offset,
                    journal_size,
                    upcase_offset,
                    diff_offset,
                    diff_blocks,
                    base_table_offset,
                    live_table_offset,
                    heap_offset,
                    backup_boot_offset: volume_size - BLOCK,
                });
            }
            count = fits as u32;
        }
    }

    /// The geometry a boot block describes, checked against a recomputation and the device.
    pub fn from_boot(raw: &RawBoot, device_size: u64) -> Result<Geometry> {
        let at = 0;
        let volume_size = raw.volume_size.get();
        if volume_size > device_size {
            return Err(Error::Corrupt {
                what: "volume size larger than the device",
                at,
            });
        }
        // The fields that size the others, checked one by one so the error names the field.
        if volume_size > MAX_VOLUME_SIZE {
            return Err(Error::Corrupt {
                what: "boot block volume size",
                at,
            });
        }
        if raw.journal_size.get() > volume_size {
            return Err(Error::Corrupt {
                what: "boot block journal size",
                at,
            });
        }
        let geo = Geometry::compute(
            volume_size,
            raw.cluster_shift.get(),
            raw.sector_size.get(),
            raw.journal_size.get(),
        )
        .map_err(|_| Error::Corrupt {
            what: "boot block geometry",
            at,
        })?;
        let matches = geo.cluster_count == raw.cluster_count.get()
            && geo.table_blocks == raw.table_blocks.get()
            && geo.state_offset == raw.state_offset.get()
            && geo.journal_offset == raw.journal_offset.get()
            && geo.upcase_offset == raw.upcase_offset.get()
            && geo.diff_offset == raw.diff_offset.get()
            && geo.diff_blocks == raw.diff_blocks.get()
            && geo.base_table_offset == raw.base_table_offset.get()
            && geo.live_table_offset == raw.live_table_offset.get()
            && geo.heap_offset == raw.heap_offset.get();
        if !matches {
            return Err(Error::Corrupt {
                what: "boot block region offsets",
                at,
            });
        }
        Ok(geo)
    }

    /// Fills the geometry fields of a boot block.
    pub fn write_to(&self, raw: &mut RawBoot) {
        raw.volume_size.set(self.volume_size);
        raw.sector_size.set(self.sector_size);
        raw.cluster_shift.set(self.cluster_shift);
        raw.cluster_count.set(self.cluster_count);
        raw.table_blocks.set(self.table_blocks);
        raw.state_offset.set(self.state_offset);
        raw.journal_offset.set(self.journal_offset);
        raw.journal_size.set(self.journal_size);
        raw.upcase_offset.set(self.upcase_offset);
        raw.diff_offset.set(self.diff_offset);
        raw.diff_blocks.set(self.diff_blocks);
        raw.base_table_offset.set(self.base_table_offset);
        raw.live_table_offset.set(self.live_table_offset);
        raw.heap_offset.set(self.heap_offset);
    }

    pub fn cluster_size(&self) -> u32 {
        1 << self.cluster_shift
    }

    /// One past the highest cluster number.
    pub fn cluster_end(&self) -> u32 {
        FIRST_CLUSTER + self.cluster_count
    }

    pub fn is_cluster(&self, c: u32) -> bool {
        (FIRST_CLUSTER..self.cluster_end()).contains(&c)
    }

    /// Byte offset of a cluster (callers check `is_cluster`).
    pub fn cluster_offset(&self, c: u32) -> u64 {
        self.heap_offset + (u64::from(c - FIRST_CLUSTER) << self.cluster_shift)
    }

    /// The cluster holding volume byte `offset`, if it is in the heap.
    pub fn cluster_at(&self, offset: u64) -> Option<u32> {
        let rel = offset.checked_sub(self.heap_offset)?;
        let c = u32::try_from(rel >> self.cluster_shift)
            .ok()?
            .checked_add(FIRST_CLUSTER)?;
        self.is_cluster(c).then_some(c)
    }

    /// Size of the unit in which metadata clusters are cached and journaled.
    pub fn meta_block_size(&self) -> u32 {
        self.cluster_size().min(BLOCK_SIZE as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_huge_volumes_lay_out() {
        let g = Geometry::compute(4 << 20, 12, 512, default_journal_size(4 << 20)).unwrap();
        assert!(g.cluster_count > 100);
        assert!(g.heap_offset + (u64::from(g.cluster_count) << 12) <= g.backup_boot_offset);
        let t = 2u64 << 40;
        let g = Geometry::compute(t, 12, 512, default_journal_size(t)).unwrap();
        assert_eq!(g.heap_offset % 4096, 0);
        assert!(u64::from(g.cluster_count) > (t >> 12) - (t >> 12) / 100);
        assert!(Geometry::compute(64 << 10, 12, 512, 512 << 10).is_err());
        assert!(Geometry::compute(t, 9, 512, default_journal_size(t)).is_err());
    }
}
