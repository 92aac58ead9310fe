//! The record table: reading and writing file records, handing out free record numbers,
//! and the mount-time scan that finds free and orphaned records.

use alloc::vec::Vec;

use zerocopy::IntoBytes;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ondisk::record::{RawRecord, RecordFlags, RECORD_SIZE, ROOT_RECORD};
use crate::stream::StreamKey;
use crate::types::FileId;
use crate::volume::{Tree, Volume};

impl<D: BlockDevice> Volume<D> {
    /// Records the tree's record table has room for.
    pub(crate) fn record_capacity(&self, tree: Tree) -> u64 {
        let clusters = match tree {
            Tree::Live => self.state.live_records_clusters.get(),
            Tree::Base => self.state.base_records_clusters.get(),
        };
        u64::from(clusters) * u64::from(self.records_per_cluster())
    }

    /// Record `record` of `tree` (in use or not).
    pub(crate) fn record(&mut self, tree: Tree, record: u32) -> Result<RawRecord> {
        if u64::from(record) >= self.record_capacity(tree) || record == 0 {
            return Err(Error::NotFound);
        }
        // Read in place: no second 128-byte copy on this deep path (NT-23).
        let mut raw = RawRecord::new_zeroed();
        let pos = u64::from(record) * RECORD_SIZE as u64;
        let at = self.record_table_read(tree, pos, raw.as_mut_bytes())?;
        raw.check(at)?;
        // Every size derived from a record (allocation size, a directory's bytes, a chain
        // walk) is a product of this count: no file can have more clusters than the volume.
        if raw.cluster_count.get() > u64::from(self.geo.cluster_count) {
            return Err(Error::Corrupt {
                what: "file record cluster count",
                at,
            });
        }
        Ok(raw)
    }

    /// Writes live record `record`.
    pub(crate) fn put_record(&mut self, record: u32, raw: &RawRecord) -> Result<()> {
        let bytes = raw.to_bytes();
        self.record_table_write(u64::from(record) * RECORD_SIZE as u64, &bytes)
    }

    /// The live record of a file id: in use and of the same sequence, else the id is stale.
    pub(crate) fn file_record(&mut self, id: FileId) -> Result<RawRecord> {
        let raw = self.record(Tree::Live, id.record()).map_err(|e| match e {
            Error::NotFound => Error::StaleFileId,
            other => other,
        })?;
        if !raw.in_use() || raw.sequence.get() != id.sequence() {
            return Err(Error::StaleFileId);
        }
        Ok(raw)
    }

    /// Takes a free record number, growing the record table when none is left. The record's
    /// sequence is bumped so ids of its previous user stay stale.
    pub(crate) fn allocate_record(&mut self) -> Result<(u32, u16)> {
        if self.free_records.is_empty() {
            let old_capacity = self.record_capacity(Tree::Live) as u32;
            self.append_clusters(StreamKey::RecordTable(Tree::Live), 1, true)?;
            let new_capacity = self.record_capacity(Tree::Live) as u32;
            self.free_records
                .reserve((new_capacity - old_capacity) as usize)?;
            for record in old_capacity..new_capacity {
                self.free_records.insert(record)?;
            }
        }
        let record = self.free_records.pop_first().ok_or(Error::NoSpace)?;
        let old = self.record(Tree::Live, record)?;
        let sequence = match old.sequence.get().wrapping_add(1) {
            0 => 1,
            s => s,
        };
        Ok((record, sequence))
    }

    /// Marks a record free, keeping its sequence.
    pub(crate) fn free_record(&mut self, record: u32) -> Result<()> {
        // Room first: the record is not to be freed on disk and then lost to the free list.
        self.free_records.reserve(1)?;
        let old = self.record(Tree::Live, record)?;
        let mut raw = RawRecord::new_zeroed();
        raw.sequence = old.sequence;
        self.put_record(record, &raw)?;
        self.extents.remove(&StreamKey::File(Tree::Live, record));
        self.dirs.remove(&record);
        self.reservations.release_file(record);
        self.orphans.remove(&record);
        self.free_records.insert(record)?;
        Ok(())
    }

    /// Reads every live record: collects free numbers, returns the orphans to purge.
    pub(crate) fn load_records(&mut self) -> Result<Vec<u32>> {
        let capacity = self.record_capacity(Tree::Live);
        let mut orphans = Vec::new();
        self.free_records.clear();
        self.orphans.clear();
        for record in 1..capacity as u32 {
            let raw = self.record(Tree::Live, record)?;
            if !raw.in_use() {
                self.free_records.insert(record)?;
            } else if raw.flags().contains(RecordFlags::ORPHAN) {
                crate::mem::push(&mut orphans, record)?;
                self.orphans.insert(record)?;
            }
        }
        Ok(orphans)
    }

    pub(crate) fn check_root(&mut self) -> Result<()> {
        let root = self.record(Tree::Live, ROOT_RECORD)?;
        let flags = root.flags();
        if !flags.contains(RecordFlags::IN_USE | RecordFlags::DIRECTORY) {
            return Err(Error::Corrupt {
                what: "root directory record",
                at: self.geo.state_offset,
            });
        }
        Ok(())
    }

    /// The root directory's id.
    pub fn root(&mut self) -> Result<FileId> {
        let raw = self.record(Tree::Live, ROOT_RECORD)?;
        Ok(FileId::new(ROOT_RECORD, raw.sequence.get()))
    }
}
