//! The two allocation tables: reading entries, changing live entries (with the cluster
//! counters and the table-difference bitmap), and finding free clusters. A cluster is free
//! only when it is free in both tables and was not freed in the running transaction.

use alloc::vec::Vec;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ondisk::table::{entry_position, DIFF_BITS_PER_BLOCK, END, FIRST_CLUSTER, FREE};
use crate::ondisk::BLOCK_SIZE;
use crate::volume::{Tree, Volume};

const TABLE_BLOCK: &str = "allocation table block checksum";
const DIFF_BLOCK: &str = "table difference bitmap checksum";

impl<D: BlockDevice> Volume<D> {
    pub(crate) fn table_offset(&self, tree: Tree) -> u64 {
        match tree {
            Tree::Live => self.geo.live_table_offset,
            Tree::Base => self.geo.base_table_offset,
        }
    }

    pub(crate) fn table_block_offset(&self, tree: Tree, block: u32) -> u64 {
        self.table_offset(tree) + u64::from(block) * BLOCK_SIZE as u64
    }

    /// The entry of cluster `c` in `tree`'s table (the caller checked `c` is a cluster).
    pub(crate) fn entry(&mut self, tree: Tree, c: u32) -> Result<u32> {
        let (block, at) = entry_position(c);
        let offset = self.table_block_offset(tree, block);
        let data = self
            .cache
            .get(&mut self.dev, offset, BLOCK_SIZE, Some(TABLE_BLOCK))?;
        Ok(u32::from_le_bytes([
            data[at],
            data[at + 1],
            data[at + 2],
            data[at + 3],
        ]))
    }

    /// Whether the base uses cluster `c`: such a cluster is never written (NT-20).
    pub(crate) fn is_base_cluster(&mut self, c: u32) -> Result<bool> {
        if !self.is_sealed() {
            return Ok(false);
        }
        Ok(self.entry(Tree::Base, c)? != FREE)
    }

    fn write_entry(&mut self, tree: Tree, c: u32, value: u32) -> Result<()> {
        let (block, at) = entry_position(c);
        let offset = self.table_block_offset(tree, block);
        let data = self
            .cache
            .modify(&mut self.dev, offset, BLOCK_SIZE, Some(TABLE_BLOCK))?;
        data[at..at + 4].copy_from_slice(&value.to_le_bytes());
        Ok(())
    }

    /// Sets a live entry, keeping the counters and the difference bitmap right.
    pub(crate) fn set_live(&mut self, c: u32, value: u32) -> Result<()> {
        let old = self.entry(Tree::Live, c)?;
        let counted = (old == FREE) != (value == FREE);
        let in_base = counted && self.is_base_cluster(c)?;
        // Everything that can fail (a block to read, memory for it) comes before the first
        // change, so a failed call changes nothing (NT-26).
        self.mark_table_block_changed(entry_position(c).0)?;
        self.write_entry(Tree::Live, c, value)?;
        if counted {
            let delta = |n: u64| {
                if value == FREE {
                    n.saturating_sub(1)
                } else {
                    n.saturating_add(1)
                }
            };
            self.state.live_used.set(delta(self.state.live_used.get()));
            if in_base {
                self.state.both_used.set(delta(self.state.both_used.get()));
            }
            self.state_dirty = true;
        }
        Ok(())
    }

    /// Sets a base entry (per-file commit only), keeping the counters right.
    pub(crate) fn set_base(&mut self, c: u32, value: u32) -> Result<()> {
        let old = self.entry(Tree::Base, c)?;
        if (old == FREE) != (value == FREE) {
            let in_live = self.entry(Tree::Live, c)? != FREE;
            let delta = |n: u64| {
                if value == FREE {
                    n.saturating_sub(1)
                } else {
                    n.saturating_add(1)
                }
            };
            self.state.base_used.set(delta(self.state.base_used.get()));
            if in_live {
                self.state.both_used.set(delta(self.state.both_used.get()));
            }
            self.state_dirty = true;
        }
        self.write_entry(Tree::Base, c, value)
    }

    /// Notes that live table block `block` may now differ from the base one, so a volume
    /// commit or discard copies only blocks that changed.
    pub(crate) fn mark_table_block_changed(&mut self, block: u32) -> Result<()> {
        let (diff_block, bit) = (block / DIFF_BITS_PER_BLOCK, block % DIFF_BITS_PER_BLOCK);
        let offset = self.geo.diff_offset + u64::from(diff_block) * BLOCK_SIZE as u64;
        let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
        let data = self
            .cache
            .get(&mut self.dev, offset, BLOCK_SIZE, Some(DIFF_BLOCK))?;
        if data[byte] & mask == 0 {
            let data = self
                .cache
                .modify(&mut self.dev, offset, BLOCK_SIZE, Some(DIFF_BLOCK))?;
            data[byte] |= mask;
        }
        Ok(())
    }

    /// Table blocks whose live and base copies may differ, and clears the record of them.
    /// The blocks are all found (and their memory had) before any bit is cleared (NT-26).
    pub(crate) fn take_changed_table_blocks(&mut self) -> Result<Vec<u32>> {
        let mut changed = Vec::new();
        let mut marked = Vec::new();
        for diff_block in 0..self.geo.diff_blocks {
            let offset = self.geo.diff_offset + u64::from(diff_block) * BLOCK_SIZE as u64;
            let data = self
                .cache
                .get(&mut self.dev, offset, BLOCK_SIZE, Some(DIFF_BLOCK))?;
            let mut any = false;
            for (byte, &bits) in data[..BLOCK_SIZE - 4].iter().enumerate() {
                for bit in 0..8 {
                    if bits & (1 << bit) != 0 {
                        let block = diff_block * DIFF_BITS_PER_BLOCK + byte as u32 * 8 + bit;
                        if block < self.geo.table_blocks {
                            crate::mem::push(&mut changed, block)?;
                        }
                        any = true;
                    }
                }
            }
            if any {
                crate::mem::push(&mut marked, offset)?;
            }
        }
        for offset in marked {
            // Cleared in place: the block was just read into the cache.
            self.cache
                .modify(&mut self.dev, offset, BLOCK_SIZE, Some(DIFF_BLOCK))?
                .fill(0);
        }
        Ok(changed)
    }

    /// Clusters free in both tables and not freed in the running transaction.
    pub fn free_clusters(&self) -> u64 {
        let s = &self.state;
        let used = (s.live_used.get() + s.base_used.get()).saturating_sub(s.both_used.get());
        u64::from(self.geo.cluster_count)
            .saturating_sub(used)
            .saturating_sub(self.pending_free.len() as u64)
    }

    /// Free clusters not promised to a reservation.
    pub fn available_clusters(&self) -> u64 {
        self.free_clusters()
            .saturating_sub(self.reservations.total())
    }

    fn cluster_is_free(&mut self, c: u32) -> Result<bool> {
        Ok(self.entry(Tree::Live, c)? == FREE
            && !self.is_base_cluster(c)?
            && !self.pending_free.contains(&c))
    }

    /// Allocates `n` clusters, as contiguous as the free space allows, each marked as the end
    /// of a chain (the caller links them). `reserved` of them are taken from reservations
    /// (NT-15), the rest must fit in the unreserved free space.
    pub(crate) fn allocate(&mut self, n: u64, reserved: u64) -> Result<Vec<u32>> {
        let count = usize::try_from(n).map_err(|_| Error::NoSpace)?;
        let mut found = crate::mem::zeroed_words(count)?;
        self.allocate_into(reserved, &mut found)?;
        Ok(found)
    }

    /// One cluster, as [`Self::allocate`] does it but with no memory to ask for: the
    /// copy-on-write move of a paging write uses this (NT-26).
    pub(crate) fn allocate_one(&mut self, reserved: bool) -> Result<u32> {
        let mut one = [0u32; 1];
        self.allocate_into(u64::from(reserved), &mut one)?;
        Ok(one[0])
    }

    /// Fills `found` with newly allocated clusters (see [`Self::allocate`]).
    fn allocate_into(&mut self, reserved: u64, found: &mut [u32]) -> Result<()> {
        self.writable()?;
        let n = found.len() as u64;
        if n > self.free_clusters() || n - reserved.min(n) > self.available_clusters() {
            return Err(Error::NoSpace);
        }
        let (start, end) = (FIRST_CLUSTER, self.geo.cluster_end());
        let mut c = self.state.alloc_hint.get().clamp(start, end - 1);
        let mut taken_count = 0usize;
        let mut scanned = 0u64;
        while taken_count < found.len() {
            if scanned > u64::from(self.geo.cluster_count) {
                for &c in &found[..taken_count] {
                    let _ = self.set_live(c, FREE);
                }
                return Err(Error::Corrupt {
                    what: "cluster counters disagree with the allocation table",
                    at: self.geo.state_offset,
                });
            }
            // A read or allocation failure part-way frees what was taken (nothing half-done).
            let taken = self.cluster_is_free(c).and_then(|free| {
                if free {
                    self.set_live(c, END).map(|()| true)
                } else {
                    Ok(false)
                }
            });
            match taken {
                Ok(true) => {
                    found[taken_count] = c;
                    taken_count += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    for &c in &found[..taken_count] {
                        let _ = self.set_live(c, FREE);
                    }
                    return Err(e);
                }
            }
            scanned += 1;
            c = if c + 1 == end { start } else { c + 1 };
        }
        self.state.alloc_hint.set(c);
        self.state_dirty = true;
        Ok(())
    }

    /// Frees a live cluster. Data must not be written to it before the next commit.
    pub(crate) fn free_live(&mut self, c: u32) -> Result<()> {
        // Room first: a freed cluster missing from the pending set could be reused too soon.
        self.pending_free.reserve(1)?;
        self.set_live(c, FREE)?;
        if !self.is_base_cluster(c)? {
            self.pending_free.insert(c)?;
        }
        let offset = self.geo.cluster_offset(c);
        self.cache
            .forget(offset, u64::from(self.geo.cluster_size()));
        Ok(())
    }

    /// Which clusters are in use, by the live files or kept for the base: bit `i` of `bits`
    /// (LSB first) is cluster `first + i` (FSCTL_GET_VOLUME_BITMAP). Clusters past the end of
    /// the volume are left clear. Returns how many clusters were described.
    pub fn cluster_usage(&mut self, first: u32, bits: &mut [u8]) -> Result<u32> {
        let end = self.geo.cluster_end();
        let first = first.max(FIRST_CLUSTER);
        let count = (bits.len() as u64 * 8).min(u64::from(end.saturating_sub(first))) as u32;
        bits.fill(0);
        for i in 0..count {
            let c = first + i;
            if !self.cluster_is_free(c)? || self.pending_free.contains(&c) {
                bits[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        Ok(count)
    }
}
