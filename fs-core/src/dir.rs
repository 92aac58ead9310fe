//! Directories: the slot array on disk and the in-memory index over it. A directory is read
//! once, on first use, into a sorted map keyed by up-cased name (fastfat keeps splay trees for
//! the same reason), so lookups and creates never scan the directory. Free slot runs are kept
//! too. Both maps grow fallibly (NT-26): room is reserved before the disk changes.

use alloc::vec::Vec;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::name::Name;
use crate::ondisk::dirent::{slots_for, EntrySet, IN_USE_BIT, SLOT_SIZE, TYPE_PRIMARY};
use crate::sorted::SortedMap;
use crate::stream::StreamKey;
use crate::types::FileId;
use crate::volume::{Tree, Volume};

/// Where a name's entry set sits and what it points at.
#[derive(Debug, Clone)]
pub(crate) struct DirSlot {
    pub slot: u32,
    pub slots: u32,
    pub id: FileId,
    pub name: Name,
}

impl DirSlot {
    /// A copy, failing with `OutOfMemory` instead of aborting (NT-26).
    pub fn try_clone(&self) -> Result<DirSlot> {
        Ok(DirSlot {
            name: self.name.try_clone()?,
            ..*self
        })
    }
}

/// One directory's entries by up-cased name, and its free slot runs (start -> length).
#[derive(Debug, Default, Clone)]
pub(crate) struct DirIndex {
    pub by_key: SortedMap<Vec<u16>, DirSlot>,
    free_runs: SortedMap<u32, u32>,
    total_slots: u32,
}

impl DirIndex {
    /// Fails only for a run that joins no neighbour and finds no room.
    fn add_free(&mut self, start: u32, len: u32) -> Result<()> {
        let (mut start, mut len) = (start, len);
        if let Some((&prev, &plen)) = self.free_runs.range(..start).next_back() {
            if prev + plen == start {
                self.free_runs.remove(&prev);
                start = prev;
                len += plen;
            }
        }
        if let Some(&nlen) = self.free_runs.get(&(start + len)) {
            self.free_runs.remove(&(start + len));
            len += nlen;
        }
        self.free_runs.insert(start, len)?;
        Ok(())
    }

    /// Never needs memory: one run out, at most one (shorter) run back in.
    fn take_free(&mut self, n: u32) -> Option<u32> {
        let (&start, &len) = self.free_runs.iter().find(|(_, &len)| len >= n)?;
        self.free_runs.remove(&start);
        if len > n {
            let _ = self.free_runs.insert(start + n, len - n);
        }
        Some(start)
    }
}

/// Parses a directory's slots into an index. `offset_of(slot)` gives a slot's volume offset
/// for error messages.
pub(crate) fn parse_directory(
    bytes: &[u8],
    upcase: &crate::name::UpcaseTable,
    offset_of: impl Fn(u32) -> u64,
) -> Result<DirIndex> {
    let total = (bytes.len() / SLOT_SIZE) as u32;
    let mut index = DirIndex {
        total_slots: total,
        ..DirIndex::default()
    };
    let mut slot = 0u32;
    while slot < total {
        let at = slot as usize * SLOT_SIZE;
        let kind = bytes[at];
        if kind & IN_USE_BIT == 0 {
            index.add_free(slot, 1)?;
            slot += 1;
            continue;
        }
        let where_ = offset_of(slot);
        if kind != TYPE_PRIMARY {
            return Err(Error::Corrupt {
                what: "directory slot that belongs to no entry",
                at: where_,
            });
        }
        let set = EntrySet::decode(&bytes[at..], where_)?;
        let name = Name::from_utf16(&set.name).map_err(|_| Error::Corrupt {
            what: "directory entry name",
            at: where_,
        })?;
        if upcase.hash(&name) != set.name_hash {
            return Err(Error::Corrupt {
                what: "directory entry name hash",
                at: where_,
            });
        }
        let slots = slots_for(set.name.len()) as u32;
        let entry = DirSlot {
            slot,
            slots,
            id: FileId(set.file_id),
            name,
        };
        if index
            .by_key
            .insert(upcase.key(&entry.name)?, entry)?
            .is_some()
        {
            return Err(Error::Corrupt {
                what: "two entries with the same name in a directory",
                at: where_,
            });
        }
        slot += slots;
    }
    Ok(index)
}

impl<D: BlockDevice> Volume<D> {
    /// Reads a whole directory stream of `tree`.
    pub(crate) fn read_directory(&mut self, tree: Tree, record: u32) -> Result<DirIndex> {
        let key = StreamKey::File(tree, record);
        let raw = self.record(tree, record)?;
        // The chain first: a record may claim every cluster of the volume, but the buffer
        // is sized only after the chain is found to be that long. `record` checked the count
        // against the volume, so the product neither overflows nor exceeds the volume; the
        // buffer is still fallible (a big directory with little memory is an error).
        self.extent_map(key)?;
        let len = raw
            .cluster_count
            .get()
            .checked_mul(u64::from(self.geo.cluster_size()))
            .ok_or(Error::Corrupt {
                what: "directory record cluster count",
                at: self.geo.state_offset,
            })?;
        let mut bytes = crate::volume::try_zeroed(len, "a directory's entries")?;
        self.meta_read(key, 0, &mut bytes)?;
        let cs = u64::from(self.geo.cluster_size());
        let map = self.extent_map(key)?.try_clone()?;
        let geo = self.geo.clone();
        parse_directory(&bytes, &self.upcase, |slot| {
            let pos = u64::from(slot) * SLOT_SIZE as u64;
            map.lookup(pos / cs)
                .map_or(0, |lcn| geo.cluster_offset(lcn) + pos % cs)
        })
    }

    /// The live index of directory `record`, read on first use.
    pub(crate) fn dir_index(&mut self, record: u32) -> Result<&mut DirIndex> {
        if !self.dirs.contains_key(&record) {
            let index = self.read_directory(Tree::Live, record)?;
            self.dirs.insert(record, index)?;
        }
        Ok(self.dirs.get_mut(&record).expect("inserted above"))
    }

    /// Adds an entry for `name` -> `id` to live directory `dir` (the caller checked the name
    /// is not there yet).
    pub(crate) fn dir_insert(&mut self, dir: u32, name: &Name, id: FileId) -> Result<()> {
        let set = EntrySet {
            file_id: id.0,
            name_hash: self.upcase.hash(name),
            name: crate::mem::copied(name.as_utf16())?,
        };
        let bytes = set.encode()?;
        let slots = (bytes.len() / SLOT_SIZE) as u32;
        // The index entry's memory first: after the write below nothing may fail (NT-26).
        let key = self.upcase.key(name)?;
        let name = name.try_clone()?;
        self.dir_index(dir)?.by_key.reserve(1)?;
        let slot = match self.dir_index(dir)?.take_free(slots) {
            Some(slot) => slot,
            None => self.grow_directory(dir, slots)?,
        };
        self.meta_write(
            StreamKey::File(Tree::Live, dir),
            u64::from(slot) * SLOT_SIZE as u64,
            &bytes,
        )?;
        let entry = DirSlot {
            slot,
            slots,
            id,
            name,
        };
        self.dir_index(dir)?.by_key.insert(key, entry)?;
        Ok(())
    }

    /// Adds clusters to a directory until `slots` free slots follow each other; returns the
    /// first of them.
    fn grow_directory(&mut self, dir: u32, slots: u32) -> Result<u32> {
        let per_cluster = self.geo.cluster_size() / SLOT_SIZE as u32;
        loop {
            self.dir_index(dir)?.free_runs.reserve(1)?;
            self.append_clusters(StreamKey::File(Tree::Live, dir), 1, true)?;
            let mut raw = self.record(Tree::Live, dir)?;
            raw.file_size
                .set(raw.cluster_count.get() * u64::from(self.geo.cluster_size()));
            raw.valid_data_length = raw.file_size;
            self.put_record(dir, &raw)?;
            let index = self.dir_index(dir)?;
            let start = index.total_slots;
            index.total_slots += per_cluster;
            index.add_free(start, per_cluster)?;
            if let Some(slot) = index.take_free(slots) {
                return Ok(slot);
            }
        }
    }

    /// Removes the entry with up-cased `key` from live directory `dir`.
    pub(crate) fn dir_remove(&mut self, dir: u32, key: &[u16]) -> Result<DirSlot> {
        let index = self.dir_index(dir)?;
        // Room for the freed run first: after the writes below nothing may fail (NT-26).
        index.free_runs.reserve(1)?;
        let entry = index.by_key.remove(key).ok_or(Error::NotFound)?;
        for s in entry.slot..entry.slot + entry.slots {
            let pos = u64::from(s) * SLOT_SIZE as u64;
            let mut kind = [0u8; 1];
            self.meta_read(StreamKey::File(Tree::Live, dir), pos, &mut kind)?;
            self.meta_write(
                StreamKey::File(Tree::Live, dir),
                pos,
                &[kind[0] & !IN_USE_BIT],
            )?;
        }
        self.dir_index(dir)?.add_free(entry.slot, entry.slots)?;
        Ok(entry)
    }

    /// Looks `name` up in live directory `dir`.
    pub(crate) fn dir_lookup(&mut self, dir: u32, name: &Name) -> Result<Option<DirSlot>> {
        let key = self.upcase.key(name)?;
        self.dir_index(dir)?
            .by_key
            .get(&key)
            .map(DirSlot::try_clone)
            .transpose()
    }
}
