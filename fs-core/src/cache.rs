//! The metadata cache and the running transaction. Metadata is read through here and changed
//! only here; changed blocks stay in memory until `commit` writes them to the journal, flushes,
//! and then writes them home. Nothing reaches a metadata block's home before its journal copy is
//! durable, so a crash leaves either the old or the new state of a whole transaction.

use alloc::vec::Vec;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ondisk::{block_is_valid, journal, seal_block, BLOCK_SIZE};
use crate::sorted::SortedMap;

/// `Some(what)` for a checked block (CRC verified on read, named `what` in errors).
pub type Check = Option<&'static str>;

#[derive(Debug)]
struct Cached {
    data: Vec<u8>,
    dirty: bool,
    /// A checked block: its CRC is verified when read and refreshed when committed.
    checked: bool,
}

/// Cached metadata blocks keyed by their byte offset on the volume, in a sorted vector: its
/// insert is fallible (NT-26), its lookups are binary searches, and dropping clean blocks is a
/// flat `retain` (a B-tree's rebalancing chain was once the deepest kernel-stack path).
#[derive(Debug, Default)]
pub struct MetaCache {
    blocks: SortedMap<u64, Cached>,
    dirty_bytes: usize,
    clean_bytes: usize,
    /// Block buffers (each with room for the largest block) and map slots kept back for a
    /// paging write, which must make progress without asking for memory (NT-26).
    spares: Vec<Vec<u8>>,
    spare_target: usize,
    spare_block: usize,
    /// A paging write is running: blocks come from the spares, nothing is allocated.
    paging: bool,
    /// One journal block for a commit inside a paging write.
    journal_scratch: Vec<u8>,
}

/// Clean blocks kept at most; beyond it clean blocks are dropped (they can be read again).
const CLEAN_LIMIT: usize = 64 << 20;

impl MetaCache {
    /// Bytes waiting for the next commit.
    pub fn dirty_bytes(&self) -> usize {
        self.dirty_bytes
    }

    pub fn has_dirty(&self) -> bool {
        self.dirty_bytes > 0
    }

    /// Keeps `count` block buffers of `block` bytes and as many free map slots for paging
    /// writes from now on (taken now, and topped up after each use outside a paging write).
    pub fn reserve_for_paging(&mut self, count: usize, block: usize) -> Result<()> {
        self.spare_target = count;
        self.spare_block = block;
        self.top_up()
    }

    /// Is a paging write running (see [`MetaCache::set_paging`])?
    #[must_use]
    pub fn is_paging(&self) -> bool {
        self.paging
    }

    /// Enters or leaves paging mode (see [`MetaCache::reserve_for_paging`]).
    pub fn set_paging(&mut self, on: bool) {
        self.paging = on;
    }

    /// Refills the spares and the map's free slots (outside a paging write only: a paging
    /// write asks for nothing). Called where a paging write is not running: at mount, at each
    /// other write and at each commit.
    #[inline(never)]
    pub fn top_up(&mut self) -> Result<()> {
        if self.paging {
            return Ok(());
        }
        if self.journal_scratch.len() != BLOCK_SIZE {
            self.journal_scratch = crate::mem::zeroed(BLOCK_SIZE)?;
        }
        crate::mem::reserve(&mut self.spares, self.spare_target)?;
        while self.spares.len() < self.spare_target {
            let block = crate::mem::zeroed(self.spare_block)?;
            self.spares.push(block);
        }
        self.blocks.reserve(self.spare_target + 1)
    }

    /// A zeroed buffer of `len` bytes: a new one, or in a paging write a spare.
    fn buffer(&mut self, len: usize) -> Result<Vec<u8>> {
        if !self.paging {
            return crate::mem::zeroed(len);
        }
        match self.spares.pop() {
            Some(mut block) if block.capacity() >= len => {
                block.clear();
                block.resize(len, 0);
                Ok(block)
            }
            // Never with the sizes mount asks for; the spare goes back.
            Some(block) => {
                self.spares.push(block);
                crate::mem::zeroed(len)
            }
            // A long run of paging writes used them all: ask, as a last resort.
            None => crate::mem::zeroed(len),
        }
    }

    /// A map slot for a new block: reserved outside a paging write (with the spares' slots
    /// on top), taken from the kept slots in one.
    fn room_for_one(&mut self) -> Result<()> {
        if self.paging {
            // The kept slots first; a last resort beyond them.
            return self.blocks.reserve(1);
        }
        self.blocks.reserve(self.spare_target + 1)
    }

    /// Copies the block at `src` to a new block at `dst` (dirty), `len` bytes.
    pub fn copy_block<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        src: u64,
        dst: u64,
        len: usize,
    ) -> Result<()> {
        let mut data = self.buffer(len)?;
        self.read_into(dev, src, &mut data, None)?;
        self.put(dst, data, false)
    }

    fn load<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        offset: u64,
        len: usize,
        check: Check,
    ) -> Result<&mut Cached> {
        if !self.blocks.contains_key(&offset) {
            if self.clean_bytes > CLEAN_LIMIT {
                self.drop_clean();
            }
            self.room_for_one()?;
            let mut data = self.buffer(len)?;
            dev.read_at(offset, &mut data)?;
            if let Some(what) = check {
                if !block_is_valid(&data) {
                    return Err(Error::Corrupt { what, at: offset });
                }
            }
            self.blocks.insert(
                offset,
                Cached {
                    data,
                    dirty: false,
                    checked: check.is_some(),
                },
            )?;
            self.clean_bytes += len;
        }
        match self.blocks.get_mut(&offset) {
            Some(block) if block.data.len() == len => Ok(block),
            _ => Err(Error::Corrupt {
                what: "metadata block read with two sizes",
                at: offset,
            }),
        }
    }

    /// The block at `offset` (read from the device on first use). With `check`, the block is
    /// a checked block whose CRC must match; `check` names it in the error.
    pub fn get<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        offset: u64,
        len: usize,
        check: Check,
    ) -> Result<&[u8]> {
        Ok(&self.load(dev, offset, len, check)?.data)
    }

    /// Copies the block at `offset` into `buf` (its length) without caching it: from the
    /// cache when it is there, else from the device. Allocates nothing (NT-26).
    pub fn read_into<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        offset: u64,
        buf: &mut [u8],
        check: Check,
    ) -> Result<()> {
        match self.blocks.get(&offset) {
            Some(block) if block.data.len() == buf.len() => {
                buf.copy_from_slice(&block.data);
                return Ok(());
            }
            Some(_) => {
                return Err(Error::Corrupt {
                    what: "metadata block read with two sizes",
                    at: offset,
                })
            }
            None => dev.read_at(offset, buf)?,
        }
        if let Some(what) = check {
            if !block_is_valid(buf) {
                return Err(Error::Corrupt { what, at: offset });
            }
        }
        Ok(())
    }

    /// The block at `offset` for changing; it joins the running transaction.
    pub fn modify<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        offset: u64,
        len: usize,
        check: Check,
    ) -> Result<&mut [u8]> {
        let was_dirty = self.load(dev, offset, len, check)?.dirty;
        if !was_dirty {
            self.dirty_bytes += len;
            self.clean_bytes -= len;
        }
        let block = self.blocks.get_mut(&offset).expect("loaded above");
        block.dirty = true;
        Ok(&mut block.data)
    }

    /// Puts a whole new block in the running transaction without reading the old one.
    /// Fails (changing nothing) only when a new block finds no room in the map.
    pub fn put(&mut self, offset: u64, data: Vec<u8>, checked: bool) -> Result<()> {
        let len = data.len();
        if !self.blocks.contains_key(&offset) {
            self.room_for_one()?;
        }
        match self.blocks.insert(
            offset,
            Cached {
                data,
                dirty: true,
                checked,
            },
        )? {
            Some(old) if old.dirty => self.dirty_bytes -= old.data.len(),
            Some(old) => self.clean_bytes -= old.data.len(),
            None => {}
        }
        self.dirty_bytes += len;
        Ok(())
    }

    /// Forgets blocks in `[offset, offset + len)`, dirty or not: the space was freed.
    pub fn forget(&mut self, offset: u64, len: u64) {
        let (dirty_bytes, clean_bytes) = (&mut self.dirty_bytes, &mut self.clean_bytes);
        self.blocks.remove_range(offset..offset + len, |_, old| {
            if old.dirty {
                *dirty_bytes -= old.data.len();
            } else {
                *clean_bytes -= old.data.len();
            }
        });
    }

    /// Forgets every clean block (after a volume discard or commit rewrote tables behind the
    /// cache). Dirty blocks stay: on a read-only mount they are the only copy of a replay.
    pub fn drop_clean(&mut self) {
        self.blocks.retain(|_, block| block.dirty);
        self.clean_bytes = 0;
    }

    /// Commits the running transaction: journal, flush, home locations. The caller flushed
    /// data first. Returns false when there was nothing to commit.
    pub fn commit<D: BlockDevice>(
        &mut self,
        dev: &mut D,
        journal_offset: u64,
        journal_size: u64,
        seq: u64,
    ) -> Result<bool> {
        if self.dirty_bytes == 0 {
            return Ok(false);
        }
        for block in self.blocks.values_mut().filter(|b| b.dirty && b.checked) {
            seal_block(&mut block.data);
        }
        let count = self.blocks.values().filter(|b| b.dirty).count();
        if journal::encoded_len(count, self.dirty_bytes) as u64 > journal_size {
            return Err(Error::Unsupported(
                "a metadata transaction larger than the journal",
            ));
        }
        if self.paging {
            // A paging write's commit (the transaction filled up): written block by block
            // straight from the cache through the scratch block kept for it, asking for no
            // memory (NT-26).
            let mut scratch = core::mem::take(&mut self.journal_scratch);
            let blocks = &self.blocks;
            let written = journal::write_with(
                seq,
                count,
                || {
                    blocks
                        .iter()
                        .filter(|(_, b)| b.dirty)
                        .map(|(&k, b)| (k, b.data.as_slice()))
                },
                &mut scratch,
                &mut |at, bytes| Ok(dev.write_at(journal_offset + at as u64, bytes)?),
            );
            self.journal_scratch = scratch;
            written?;
        } else {
            let dirty: Vec<(u64, &[u8])> = crate::mem::collect(
                self.blocks
                    .iter()
                    .filter(|(_, b)| b.dirty)
                    .map(|(&k, b)| (k, b.data.as_slice())),
            )?;
            // One write of the whole transaction.
            let bytes = journal::encode(seq, &dirty)?;
            dev.write_at(journal_offset, &bytes)?;
        }
        dev.flush()?;
        for (&offset, block) in self.blocks.iter_mut().filter(|(_, b)| b.dirty) {
            dev.write_at(offset, &block.data)?;
            block.dirty = false;
        }
        self.clean_bytes += self.dirty_bytes;
        self.dirty_bytes = 0;
        Ok(true)
    }
}
