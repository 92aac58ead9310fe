//! Streams: cluster chains seen as arrays of clusters. A file's data, a directory's entries
//! and the record table are all streams. Each stream's chain is walked once into an extent
//! map (runs of contiguous clusters, like fastfat's MCB) and kept in memory. Writing to a
//! cluster the base still uses first moves it: a new cluster is allocated, relinked into the
//! live chain in its place, and the base cluster is left as it was (copy-on-write).

use alloc::vec::Vec;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ondisk::record::RECORD_SIZE;
use crate::ondisk::table::{END, FREE};
use crate::volume::{Tree, Volume};

/// Names a stream: the record table of a tree, or a file's data in a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamKey {
    RecordTable(Tree),
    File(Tree, u32),
}

impl StreamKey {
    pub fn tree(self) -> Tree {
        match self {
            StreamKey::RecordTable(t) | StreamKey::File(t, _) => t,
        }
    }
}

/// Contiguous clusters `lcn..lcn+len` holding stream clusters `vcn..vcn+len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub vcn: u64,
    pub lcn: u32,
    pub len: u32,
}

/// A stream's clusters in order, as runs. The chain is walked lazily: only as far as the
/// clusters asked for so far (`walked` of `total`), so the first write into a 1 GiB file does
/// not read the whole chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtentMap {
    runs: Vec<Run>,
    walked: u64,
    total: u64,
    /// The cluster the walk visits next (while `walked < total`).
    next: u32,
}

impl ExtentMap {
    fn unwalked(first: u32, total: u64) -> ExtentMap {
        ExtentMap {
            runs: Vec::new(),
            walked: 0,
            total,
            next: first,
        }
    }

    /// Clusters in the stream.
    pub fn count(&self) -> u64 {
        self.total
    }

    fn is_complete(&self) -> bool {
        self.walked == self.total
    }

    pub fn first(&self) -> u32 {
        self.runs.first().map_or(0, |r| r.lcn)
    }

    pub fn last(&self) -> Option<u32> {
        self.runs.last().map(|r| r.lcn + r.len - 1)
    }

    fn record_walked(&mut self, lcn: u32) -> Result<()> {
        match self.runs.last_mut() {
            Some(r) if r.lcn.checked_add(r.len) == Some(lcn) && r.len < u32::MAX => r.len += 1,
            _ => crate::mem::push(
                &mut self.runs,
                Run {
                    vcn: self.walked,
                    lcn,
                    len: 1,
                },
            )?,
        }
        self.walked += 1;
        Ok(())
    }

    /// A copy, failing with `OutOfMemory` instead of aborting (NT-26).
    pub fn try_clone(&self) -> Result<ExtentMap> {
        Ok(ExtentMap {
            runs: crate::mem::copied(&self.runs)?,
            ..*self
        })
    }

    /// Every cluster of the stream, in stream order.
    pub fn clusters(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(|r| r.lcn..r.lcn + r.len)
    }

    /// The cluster holding stream cluster `vcn`, if the walk got that far.
    pub fn lookup(&self, vcn: u64) -> Option<u32> {
        if vcn >= self.walked {
            return None;
        }
        let i = self
            .runs
            .partition_point(|r| r.vcn + u64::from(r.len) <= vcn);
        let r = self.runs.get(i)?;
        Some(r.lcn + (vcn - r.vcn) as u32)
    }

    /// The walked runs.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The run containing `vcn`, cut to start at `vcn`.
    pub fn run_at(&self, vcn: u64) -> Option<Run> {
        let lcn = self.lookup(vcn)?;
        let i = self
            .runs
            .partition_point(|r| r.vcn + u64::from(r.len) <= vcn);
        let r = self.runs[i];
        Some(Run {
            vcn,
            lcn,
            len: r.len - (vcn - r.vcn) as u32,
        })
    }

    /// Appends `lcn` as the next cluster (of a fully walked stream).
    pub fn push(&mut self, lcn: u32) -> Result<()> {
        self.record_walked(lcn)?;
        self.total += 1;
        Ok(())
    }

    /// Keeps the first `count` clusters.
    pub fn truncate(&mut self, count: u64) {
        self.runs.retain(|r| r.vcn < count);
        if let Some(r) = self.runs.last_mut() {
            r.len = r.len.min((count - r.vcn) as u32);
        }
        self.walked = self.walked.min(count);
        self.total = self.total.min(count);
    }

    /// Room for one [`ExtentMap::replace`] (a split adds at most two runs), taken before the
    /// move changes anything (NT-26).
    pub fn reserve_replace(&mut self) -> Result<()> {
        crate::mem::reserve(&mut self.runs, 2)
    }

    /// Replaces the cluster at `vcn` with `lcn` (after a copy-on-write move), splitting its
    /// run and merging with the run before when the new cluster continues it. Allocates
    /// nothing after [`ExtentMap::reserve_replace`].
    pub fn replace(&mut self, vcn: u64, lcn: u32) {
        if vcn >= self.walked {
            return;
        }
        let i = self
            .runs
            .partition_point(|r| r.vcn + u64::from(r.len) <= vcn);
        let r = self.runs[i];
        let off = (vcn - r.vcn) as u32;
        // The run becomes up to three, in place: the one at `i` is rewritten and the others
        // inserted around it (within the reserved capacity).
        let new_at = i + usize::from(off > 0);
        self.runs[i] = Run { vcn, lcn, len: 1 };
        if off + 1 < r.len {
            self.runs.insert(
                i + 1,
                Run {
                    vcn: vcn + 1,
                    lcn: r.lcn + off + 1,
                    len: r.len - off - 1,
                },
            );
        }
        if off > 0 {
            self.runs.insert(
                i,
                Run {
                    vcn: r.vcn,
                    lcn: r.lcn,
                    len: off,
                },
            );
        }
        if new_at > 0 {
            let (prev, cur) = (self.runs[new_at - 1], self.runs[new_at]);
            if prev.lcn.checked_add(prev.len) == Some(cur.lcn) && prev.len < u32::MAX {
                self.runs[new_at - 1].len += 1;
                self.runs.remove(new_at);
            }
        }
    }
}

/// [`Volume::make_writable`] or its record-table twin: `(cluster, moved from)`.
type MakeWritable<D> = fn(&mut Volume<D>, StreamKey, u64) -> Result<(u32, Option<u32>)>;

impl<D: BlockDevice> Volume<D> {
    /// First cluster and cluster count of a stream, as its owner records them.
    fn record_table_head(&self, tree: Tree) -> (u32, u64) {
        let s = &self.state;
        match tree {
            Tree::Live => (
                s.live_records_first.get(),
                u64::from(s.live_records_clusters.get()),
            ),
            Tree::Base => (
                s.base_records_first.get(),
                u64::from(s.base_records_clusters.get()),
            ),
        }
    }

    fn unwalked_map(&self, tree: Tree, first: u32, count: u64) -> Result<ExtentMap> {
        let at = self.table_offset(tree);
        if count == 0 && first != 0 {
            return Err(Error::Corrupt {
                what: "empty file with a first cluster",
                at,
            });
        }
        if count > u64::from(self.geo.cluster_count) {
            return Err(Error::Corrupt {
                what: "file record claims more clusters than the volume has",
                at,
            });
        }
        Ok(ExtentMap::unwalked(first, count))
    }

    /// Walks `map`'s chain on until stream cluster `upto` is mapped (or the chain ends),
    /// checking bounds and length, so a damaged or cyclic chain ends in an error, never a loop.
    fn walk_further(&mut self, tree: Tree, map: &mut ExtentMap, upto: u64) -> Result<()> {
        let at = self.table_offset(tree);
        while !map.is_complete() && map.walked <= upto {
            let c = map.next;
            if !self.geo.is_cluster(c) {
                return Err(Error::Corrupt {
                    what: "cluster chain points outside the volume",
                    at,
                });
            }
            map.record_walked(c)?;
            let next = self.entry(tree, c)?;
            if map.is_complete() {
                if next != END {
                    return Err(Error::Corrupt {
                        what: "cluster chain longer than its file record says",
                        at,
                    });
                }
            } else if next == END || next == FREE {
                return Err(Error::Corrupt {
                    what: "cluster chain shorter than its file record says",
                    at,
                });
            }
            map.next = next;
        }
        Ok(())
    }

    /// Whether `key`'s cached map already has stream cluster `upto` (or the whole chain), so
    /// it can be used as it is. Only a map that must be walked further is taken out of the
    /// cache and put back: each is a shift of every entry after it in the sorted cache (one
    /// per stream read so far), and the record table's keys sort first, so doing that at
    /// every record read made each file operation cost O(files) (10,000 creates through FUSE
    /// spent over half their time moving the cache).
    fn cached_map_reaches(&self, key: &StreamKey, upto: u64) -> bool {
        self.extents
            .get(key)
            .is_some_and(|map| map.is_complete() || map.walked > upto)
    }

    /// A cached map taken out to be walked further (counted for tests).
    fn rewalked(&mut self, map: ExtentMap) -> ExtentMap {
        #[cfg(test)]
        {
            self.extent_maps_rewalked += 1;
        }
        map
    }

    /// `key`'s cached map, which [`Self::cached_map_reaches`] has just found.
    fn cached_map(&self, key: &StreamKey) -> Result<&ExtentMap> {
        self.extents.get(key).ok_or(Error::Corrupt {
            what: "a stream's cached cluster map vanished",
            at: 0,
        })
    }

    /// The stream's extent map, walked at least as far as stream cluster `upto`.
    ///
    /// A file's chain head is in its record, read through the record table's own map; the
    /// record table's head is in the state block. The two lookups are separate functions so
    /// that neither calls itself again: no recursion on a kernel stack.
    pub(crate) fn extent_map_to(&mut self, key: StreamKey, upto: u64) -> Result<&ExtentMap> {
        let StreamKey::File(tree, record) = key else {
            return self.record_table_map_to(key.tree(), upto);
        };
        if self.cached_map_reaches(&key, upto) {
            return self.cached_map(&key);
        }
        let mut map = match self.extents.remove(&key) {
            Some(map) => self.rewalked(map),
            None => {
                let raw = self.record(tree, record)?;
                self.unwalked_map(tree, raw.first_cluster.get(), raw.cluster_count.get())?
            }
        };
        self.walk_further(tree, &mut map, upto)?;
        self.extents
            .get_or_insert_with(key, || map)
            .map(|map| &*map)
    }

    /// The record table's extent map, walked at least as far as cluster `upto`.
    fn record_table_map_to(&mut self, tree: Tree, upto: u64) -> Result<&ExtentMap> {
        let key = StreamKey::RecordTable(tree);
        if self.cached_map_reaches(&key, upto) {
            return self.cached_map(&key);
        }
        let mut map = match self.extents.remove(&key) {
            Some(map) => self.rewalked(map),
            None => {
                let (first, count) = self.record_table_head(tree);
                self.unwalked_map(tree, first, count)?
            }
        };
        self.walk_further(tree, &mut map, upto)?;
        self.extents
            .get_or_insert_with(key, || map)
            .map(|map| &*map)
    }

    /// The cluster holding record-table cluster `vcn`.
    fn record_table_lcn(&mut self, key: StreamKey, vcn: u64) -> Result<u32> {
        self.record_table_map_to(key.tree(), vcn)?
            .lookup(vcn)
            .ok_or(Error::Corrupt {
                what: "record table read past its clusters",
                at: 0,
            })
    }

    /// The stream's whole extent map.
    pub(crate) fn extent_map(&mut self, key: StreamKey) -> Result<&ExtentMap> {
        self.extent_map_to(key, u64::MAX)
    }

    /// The cluster holding stream cluster `vcn`.
    pub(crate) fn stream_lcn(&mut self, key: StreamKey, vcn: u64) -> Result<u32> {
        self.extent_map_to(key, vcn)?
            .lookup(vcn)
            .ok_or(Error::Corrupt {
                what: "stream read past its clusters",
                at: 0,
            })
    }

    /// Records a live stream's new first cluster and count with its owner.
    fn set_chain_head(&mut self, key: StreamKey, first: u32, count: u64) -> Result<()> {
        match key {
            StreamKey::RecordTable(Tree::Live) => {
                self.set_record_table_head(first, count);
                Ok(())
            }
            StreamKey::File(Tree::Live, record) => {
                let mut raw = self.record(Tree::Live, record)?;
                raw.first_cluster.set(first);
                raw.cluster_count.set(count);
                self.put_record(record, &raw)
            }
            _ => Err(Error::Unsupported("changing a base stream")),
        }
    }

    /// Appends `n` clusters to a live stream. Metadata streams get zeroed clusters (in the
    /// running transaction); data clusters are left as they are: beyond ValidDataLength
    /// nothing reads them. Commits early between batches when the journal fills.
    pub(crate) fn append_clusters(&mut self, key: StreamKey, n: u64, metadata: bool) -> Result<()> {
        const BATCH: u64 = 8192;
        let mut left = n;
        while left > 0 {
            let batch = left.min(BATCH);
            // The copy of the map is made before any cluster is taken: nothing to undo if it
            // cannot be (NT-26).
            let mut map = self.extent_map(key)?.try_clone()?;
            let old_last = map.last();
            let new = self.allocate(batch, 0)?;
            let linked = self
                .link_new_clusters(&mut map, &new, metadata)
                .and_then(|()| self.set_chain_head(key, map.first(), map.count()));
            if let Err(e) = linked {
                // Out of memory or a failed read part-way: the clusters go back and the old
                // end of the chain is the end again.
                let size = u64::from(self.geo.cluster_size());
                for &c in &new {
                    let _ = self.set_live(c, FREE);
                    self.cache.forget(self.geo.cluster_offset(c), size);
                }
                if let Some(last) = old_last {
                    let _ = self.set_live(last, END);
                }
                return Err(e);
            }
            self.extents.insert(key, map)?;
            left -= batch;
            self.make_room()?;
        }
        Ok(())
    }

    /// Shrinks a live stream to `keep` clusters, freeing from the end in batches so each
    /// intermediate commit leaves a consistent chain.
    pub(crate) fn truncate_clusters(&mut self, key: StreamKey, keep: u64) -> Result<()> {
        const BATCH: u64 = 8192;
        loop {
            let map = self.extent_map(key)?.try_clone()?;
            let count = map.count();
            if count <= keep {
                return Ok(());
            }
            let new_count = count.saturating_sub(BATCH).max(keep);
            let doomed: Vec<u32> =
                crate::mem::collect((new_count..count).filter_map(|v| map.lookup(v)))?;
            // Room for every cluster freed below, so that no free stops halfway (NT-26).
            self.pending_free.reserve(doomed.len())?;
            if new_count > 0 {
                let last = map.lookup(new_count - 1).ok_or(Error::Corrupt {
                    what: "extent map",
                    at: 0,
                })?;
                self.set_live(last, END)?;
            }
            let mut map = map;
            map.truncate(new_count);
            let first = if new_count == 0 { 0 } else { map.first() };
            self.extents.insert(key, map)?;
            self.set_chain_head(key, first, new_count)?;
            for c in doomed {
                self.free_live(c)?;
            }
            self.make_room()?;
        }
    }

    /// The extent map a lookup just cached (no panic path if it was not).
    fn mapped_extents(&mut self, key: StreamKey) -> Result<&mut ExtentMap> {
        self.extents.get_mut(&key).ok_or(Error::Corrupt {
            what: "extent map dropped during a copy-on-write move",
            at: 0,
        })
    }

    fn set_record_table_head(&mut self, first: u32, count: u64) {
        self.state.live_records_first.set(first);
        self.state.live_records_clusters.set(count as u32);
        self.state_dirty = true;
    }

    /// Makes stream cluster `vcn` writable: when the base uses it, moves it to a new cluster
    /// (copy-on-write) and returns `(new, Some(old))`; else `(cluster, None)`. The caller
    /// copies what the old cluster held where its write does not cover it.
    pub(crate) fn make_writable(&mut self, key: StreamKey, vcn: u64) -> Result<(u32, Option<u32>)> {
        self.writable_with(key, vcn, false)
    }

    /// [`Self::make_writable`] for a metadata stream (a directory): a moved cluster's content
    /// is copied before the chain takes the new cluster.
    fn make_meta_writable(&mut self, key: StreamKey, vcn: u64) -> Result<(u32, Option<u32>)> {
        self.writable_with(key, vcn, true)
    }

    fn writable_with(
        &mut self,
        key: StreamKey,
        vcn: u64,
        copy_meta: bool,
    ) -> Result<(u32, Option<u32>)> {
        if let (0, StreamKey::File(Tree::Live, record)) = (vcn, key) {
            // The first cluster's move rewrites the file's record: that record's own cluster
            // is made writable first (rewritten as it is), so that the record write after the
            // move cannot fail halfway for a record-table move of its own (NT-26).
            let head = self.stream_lcn(key, 0)?;
            if self.is_base_cluster(head)? {
                let raw = self.record(Tree::Live, record)?;
                self.put_record(record, &raw)?;
            }
        }
        let (lcn, moved_from, new_head) = self.move_if_base(key, vcn, copy_meta)?;
        if let Some(count) = new_head {
            self.set_chain_head(key, lcn, count)?;
        }
        Ok((lcn, moved_from))
    }

    /// [`Self::make_writable`] for the live record table, whose head is in the state block:
    /// kept apart because writing a file's head writes its record, in the record table.
    fn record_table_writable(&mut self, key: StreamKey, vcn: u64) -> Result<(u32, Option<u32>)> {
        let (lcn, moved_from, new_head) = self.move_if_base(key, vcn, true)?;
        if let Some(count) = new_head {
            self.set_record_table_head(lcn, count);
        }
        Ok((lcn, moved_from))
    }

    /// The copy-on-write move of [`Self::make_writable`], without recording a new chain head:
    /// returns `(cluster, moved from, Some(count) when the first cluster moved)`. With
    /// `copy_meta`, the old cluster's metadata blocks are copied into the new one before the
    /// chain changes: a copy that fails (no memory) frees the new cluster and changes nothing,
    /// where a failure after the relink would leave the stream pointing at an empty cluster.
    fn move_if_base(
        &mut self,
        key: StreamKey,
        vcn: u64,
        copy_meta: bool,
    ) -> Result<(u32, Option<u32>, Option<u64>)> {
        let lcn = self.stream_lcn(key, vcn)?;
        if !self.is_base_cluster(lcn)? {
            return Ok((lcn, None, None));
        }
        // The map's room for the split before anything changes.
        self.mapped_extents(key)?.reserve_replace()?;
        let from_reservation = self.take_reserved(key, vcn);
        let new = self.allocate_one(from_reservation)?;
        if copy_meta {
            if let Err(e) = self.copy_meta_cluster(lcn, new) {
                self.cache.forget(
                    self.geo.cluster_offset(new),
                    u64::from(self.geo.cluster_size()),
                );
                let _ = self.set_live(new, FREE);
                return Err(e);
            }
        }
        let next = self.entry(Tree::Live, lcn)?;
        self.set_live(new, next)?;
        let mut new_head = None;
        if vcn == 0 {
            let count = self.extent_map_to(key, 0)?.count();
            self.mapped_extents(key)?.replace(0, new);
            new_head = Some(count);
        } else {
            let prev = self.stream_lcn(key, vcn - 1)?;
            self.set_live(prev, new)?;
            self.mapped_extents(key)?.replace(vcn, new);
        }
        // The base keeps `lcn`; live no longer uses it.
        self.set_live(lcn, FREE)?;
        Ok((new, Some(lcn), new_head))
    }

    /// Chains `new` onto the end of the stream whose map is `map`. Out of line: it keeps
    /// `append_clusters`' frame small on the deepest create path (stack-report).
    #[inline(never)]
    fn link_new_clusters(
        &mut self,
        map: &mut ExtentMap,
        new: &[u32],
        metadata: bool,
    ) -> Result<()> {
        for pair in new.windows(2) {
            self.set_live(pair[0], pair[1])?;
        }
        if let (Some(last), Some(&first_new)) = (map.last(), new.first()) {
            self.set_live(last, first_new)?;
        }
        for &c in new {
            map.push(c)?;
            if metadata {
                self.zero_meta_cluster(c)?;
            }
        }
        Ok(())
    }

    fn zero_meta_cluster(&mut self, c: u32) -> Result<()> {
        let mb = self.geo.meta_block_size() as usize;
        let base = self.geo.cluster_offset(c);
        for i in 0..(self.geo.cluster_size() as usize / mb) {
            self.cache
                .put(base + (i * mb) as u64, crate::volume::zeroed(mb)?, false)?;
        }
        Ok(())
    }

    /// Reads bytes of a metadata stream through the cache. Returns the volume offset of the
    /// first byte (for error messages).
    pub(crate) fn meta_read(&mut self, key: StreamKey, pos: u64, buf: &mut [u8]) -> Result<u64> {
        self.meta_read_with(key, pos, buf, Self::stream_lcn)
    }

    /// [`Self::meta_read`] of the record table (see [`Self::extent_map_to`] for why apart).
    pub(crate) fn record_table_read(
        &mut self,
        tree: Tree,
        pos: u64,
        buf: &mut [u8],
    ) -> Result<u64> {
        self.meta_read_with(
            StreamKey::RecordTable(tree),
            pos,
            buf,
            Self::record_table_lcn,
        )
    }

    fn meta_read_with(
        &mut self,
        key: StreamKey,
        pos: u64,
        buf: &mut [u8],
        lcn_of: fn(&mut Self, StreamKey, u64) -> Result<u32>,
    ) -> Result<u64> {
        let (cs, mb) = (
            u64::from(self.geo.cluster_size()),
            u64::from(self.geo.meta_block_size()),
        );
        let mut first_offset = None;
        let mut done = 0usize;
        while done < buf.len() {
            let p = pos + done as u64;
            let lcn = lcn_of(self, key, p / cs)?;
            let within = p % cs;
            let block = self.geo.cluster_offset(lcn) + within / mb * mb;
            let in_block = (within % mb) as usize;
            let n = (buf.len() - done).min(mb as usize - in_block);
            let data = self.cache.get(&mut self.dev, block, mb as usize, None)?;
            buf[done..done + n].copy_from_slice(&data[in_block..in_block + n]);
            first_offset.get_or_insert(block + in_block as u64);
            done += n;
        }
        Ok(first_offset.unwrap_or(0))
    }

    /// Writes bytes of a live metadata stream through the cache, moving base clusters first.
    pub(crate) fn meta_write(&mut self, key: StreamKey, pos: u64, data: &[u8]) -> Result<()> {
        self.meta_write_with(key, pos, data, Self::make_meta_writable)
    }

    /// [`Self::meta_write`] of the live record table.
    pub(crate) fn record_table_write(&mut self, pos: u64, data: &[u8]) -> Result<()> {
        let key = StreamKey::RecordTable(Tree::Live);
        self.meta_write_with(key, pos, data, Self::record_table_writable)
    }

    fn meta_write_with(
        &mut self,
        key: StreamKey,
        pos: u64,
        data: &[u8],
        writable: MakeWritable<D>,
    ) -> Result<()> {
        let (cs, mb) = (
            u64::from(self.geo.cluster_size()),
            u64::from(self.geo.meta_block_size()),
        );
        let mut done = 0usize;
        while done < data.len() {
            let p = pos + done as u64;
            // A moved cluster was copied by the move (`copy_meta`).
            let (lcn, _) = writable(self, key, p / cs)?;
            let within = p % cs;
            let block = self.geo.cluster_offset(lcn) + within / mb * mb;
            let in_block = (within % mb) as usize;
            let n = (data.len() - done).min(mb as usize - in_block);
            let target = self.cache.modify(&mut self.dev, block, mb as usize, None)?;
            target[in_block..in_block + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn copy_meta_cluster(&mut self, from: u32, to: u32) -> Result<()> {
        let mb = self.geo.meta_block_size() as usize;
        let (src, dst) = (self.geo.cluster_offset(from), self.geo.cluster_offset(to));
        for i in 0..(self.geo.cluster_size() as usize / mb) {
            let at = (i * mb) as u64;
            self.cache
                .copy_block(&mut self.dev, src + at, dst + at, mb)?;
        }
        Ok(())
    }

    /// Records per cluster of the record table.
    pub(crate) fn records_per_cluster(&self) -> u32 {
        self.geo.cluster_size() / RECORD_SIZE as u32
    }
}

#[cfg(test)]
mod tests {
    use crate::time::{FixedClock, NtTime};
    use crate::{format, FileAttributes, FileKind, FormatOptions, MemDevice, MountOptions};
    use crate::{Name, Volume};
    use alloc::boxed::Box;
    use alloc::format;
    use alloc::vec::Vec;

    /// Reading files whose cluster maps are cached, and walked to their ends, takes no map
    /// out of the cache: each would shift every cached map after it (O(files) per read).
    #[test]
    fn cached_maps_that_reach_are_used_in_place() {
        let mut dev = MemDevice::new(64 << 20);
        let options = FormatOptions {
            cluster_size: 4096,
            ..Default::default()
        };
        format(&mut dev, &options).unwrap();
        let clock = Box::new(FixedClock(NtTime(132_000_000_000_000_000)));
        let mut vol = Volume::mount(dev, MountOptions::new(clock)).unwrap();
        let root = vol.root().unwrap();
        let mut ids = Vec::new();
        for i in 0..200 {
            let n = Name::from_str(&format!("f{i}")).unwrap();
            let id = vol
                .create(root, &n, FileKind::File, FileAttributes::empty())
                .unwrap();
            vol.write(id, 0, &[7u8; 5000]).unwrap();
            ids.push(id);
        }
        let mut buf = [0u8; 16];
        for id in &ids {
            vol.info(*id).unwrap();
            assert_eq!(vol.read(*id, 4096, &mut buf).unwrap(), 16);
        }
        let before = vol.extent_maps_rewalked;
        for id in &ids {
            vol.info(*id).unwrap();
            assert_eq!(vol.read(*id, 4096, &mut buf).unwrap(), 16);
            assert_eq!(buf, [7u8; 16]);
        }
        assert_eq!(vol.extent_maps_rewalked, before);
    }
}
