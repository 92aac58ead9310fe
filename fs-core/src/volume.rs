//! A mounted volume: the state every operation shares, mount, sync and unmount. The
//! operations themselves live in one module per job (`alloc`, `stream`, `records`, `dir`,
//! `file`, `namespace`, `overlay`) as further `impl Volume` blocks.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::cache::MetaCache;
use crate::device::BlockDevice;
use crate::dir::DirIndex;
use crate::error::{Error, Result};
use crate::layout::{Geometry, UPCASE_BYTES};
use crate::mem::Boxed;
use crate::name::UpcaseTable;
use crate::ondisk::boot::RawBoot;
use crate::ondisk::journal;
use crate::ondisk::record::RECORD_SIZE;
use crate::ondisk::state::{RawState, StateFlags};
use crate::ondisk::{crc32c, BLOCK_SIZE};
use crate::overlay::Reservations;
use crate::sorted::{SortedMap, SortedSet};
use crate::stream::{ExtentMap, StreamKey};
use crate::time::{Clock, NtTime};
use crate::types::MountOptions;

/// Which allocation table (and which tree of files) an operation looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tree {
    Live,
    Base,
}

/// Metadata blocks a paging write may read besides a record-table cluster: allocation and
/// diff blocks for its cluster moves and its record's block.
const PAGING_EXTRA_BLOCKS: usize = 8;

/// A mounted cowfat volume on a block device.
pub struct Volume<D: BlockDevice> {
    pub(crate) dev: D,
    pub(crate) geo: Geometry,
    // The boot and state blocks are 4 KiB each: boxed, so a Volume (moved by value out of
    // mount and into the driver's VCB) stays small enough for the kernel stack.
    pub(crate) boot: Box<RawBoot>,
    pub(crate) state: Box<RawState>,
    pub(crate) state_dirty: bool,
    pub(crate) cache: MetaCache,
    pub(crate) upcase: UpcaseTable,
    pub(crate) read_only: bool,
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) extents: SortedMap<StreamKey, ExtentMap>,
    /// Tests: how many cached extent maps were taken out of `extents` to be walked further.
    #[cfg(test)]
    pub(crate) extent_maps_rewalked: usize,
    pub(crate) dirs: SortedMap<u32, DirIndex>,
    pub(crate) free_records: SortedSet<u32>,
    /// Records unlinked while open (flagged ORPHAN on disk, which is what the next mount
    /// goes by): a seal or commit keeps them out of the base it makes.
    pub(crate) orphans: SortedSet<u32>,
    /// A read-only mount finished a cut-short commit in memory and could not take the orphans
    /// out of the base (the next writable mount does): fsck counts their base clusters owned.
    pub(crate) base_keeps_orphans: bool,
    /// Clusters freed in the running transaction: the committed metadata may still point at
    /// them, so no data may be written into them before the next commit.
    pub(crate) pending_free: SortedSet<u32>,
    pub(crate) reservations: Reservations,
    /// One cluster of memory taken at mount for the copy-on-write copy of a data cluster, so
    /// that a paging write into a sealed file needs no new allocation (NT-26: paging writes
    /// are how memory comes back, they must make progress without it).
    pub(crate) cow_cluster: Vec<u8>,
}

/// How long a mount lets changes wait in memory before it commits them on its own: what a
/// power cut can take that nobody flushed. 5 s is ext4's default commit interval: shorter
/// writes a journal transaction and a device flush more often on a busy volume, longer lets a
/// crash take more. The FUSE mount and the Windows driver's lazy commit both use it.
pub const LAZY_COMMIT_INTERVAL_MS: u32 = 5_000;

impl<D: BlockDevice> core::fmt::Debug for Volume<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Volume")
            .field("geometry", &self.geo)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Reads the boot block, or its backup in the last 4 KiB of the device when the first is bad.
pub(crate) fn read_boot<D: BlockDevice>(dev: &mut D) -> Result<(Box<RawBoot>, Geometry)> {
    if dev.size() < BLOCK_SIZE as u64 * 2 {
        return Err(Error::NotCowfat(
            "the device is too small to hold a cowfat volume",
        ));
    }
    let mut block = crate::mem::zeroed(BLOCK_SIZE)?;
    dev.read_at(0, &mut block)?;
    let primary = RawBoot::parse(&block, 0)
        .and_then(|raw| Geometry::from_boot(&raw, dev.size()).map(|g| (raw, g)));
    match primary {
        Ok(found) => Ok(found),
        Err(first_error @ Error::Corrupt { .. }) => {
            let at = dev.size() - dev.size() % BLOCK_SIZE as u64 - BLOCK_SIZE as u64;
            dev.read_at(at, &mut block)?;
            match RawBoot::parse(&block, at)
                .and_then(|raw| Geometry::from_boot(&raw, dev.size()).map(|g| (raw, g)))
            {
                Ok(found) if found.1.backup_boot_offset == at => Ok(found),
                _ => Err(first_error),
            }
        }
        Err(e) => Err(e),
    }
}

impl<D: BlockDevice> Volume<D> {
    /// Mounts the volume on `dev`: checks the boot block, replays a committed journal
    /// transaction, finishes an interrupted volume commit or discard, frees orphaned files.
    pub fn mount(dev: D, options: MountOptions) -> Result<Volume<D>> {
        Self::mount_boxed(dev, options).map(Boxed::into_inner)
    }

    /// [`Self::mount`] into a box, for the kernel: the volume is built on the heap before the
    /// deep part of mount (replay finishing, orphan purge) runs, so no caller's frame holds a
    /// copy of it on the 24 KiB stack.
    pub fn mount_boxed(dev: D, options: MountOptions) -> Result<Boxed<Volume<D>>> {
        let mut volume = Self::open_boxed(dev, options)?;
        volume.check_state()?;
        volume.cow_cluster = crate::mem::zeroed(volume.geo.cluster_size() as usize)?;
        // Memory a paging write may need for metadata (a record-table cluster's copy, the
        // table and diff blocks it changes), taken now (NT-26).
        let mb = volume.geo.meta_block_size() as usize;
        let per_cluster = volume.geo.cluster_size() as usize / mb;
        volume
            .cache
            .reserve_for_paging(per_cluster + PAGING_EXTRA_BLOCKS, mb.max(BLOCK_SIZE))?;
        let pending =
            volume.state.flags() & (StateFlags::COMMIT_PENDING | StateFlags::DISCARD_PENDING);
        if !pending.is_empty() {
            // A commit keeps orphans out of the base, so it needs to know them (a discard
            // rewrites the live tables it would read them from, and reloads them after).
            if pending.contains(StateFlags::COMMIT_PENDING) {
                volume.load_records()?;
            }
            // Read-only, this finishes the operation in memory only.
            volume.finish_pending_overlay_op()?;
        }
        let orphans = volume.load_records()?;
        volume.check_root()?;
        if !volume.read_only {
            for record in orphans {
                volume.purge_record(record)?;
            }
            volume.sync()?;
        }
        Ok(volume)
    }

    /// The first part of [`Self::mount_boxed`]: boot block, journal replay, state block, up-case
    /// table, and the volume built on the heap. Out of line, so that the `Volume` value it
    /// moves into the box lives in this shallow frame, not in the one the deep part of mount
    /// runs under (NT-23).
    #[inline(never)]
    fn open_boxed(mut dev: D, options: MountOptions) -> Result<Boxed<Volume<D>>> {
        let (boot, geo) = read_boot(&mut dev)?;
        let mut cache = MetaCache::default();
        replay_journal(&mut dev, &geo, &mut cache, options.read_only)?;
        let state = read_state(&mut dev, &geo, &mut cache)?;
        let upcase = read_upcase(&mut dev, &geo, &boot)?;
        crate::mem::boxed_with(|| Volume {
            dev,
            geo,
            boot,
            state,
            state_dirty: false,
            cache,
            upcase,
            read_only: options.read_only,
            clock: options.clock,
            extents: SortedMap::new(),
            #[cfg(test)]
            extent_maps_rewalked: 0,
            dirs: SortedMap::new(),
            free_records: SortedSet::new(),
            orphans: SortedSet::new(),
            base_keeps_orphans: false,
            pending_free: SortedSet::new(),
            reservations: Reservations::default(),
            // Taken by mount_boxed once the volume is on the heap (a smaller frame here).
            cow_cluster: Vec::new(),
        })
    }

    fn check_state(&self) -> Result<()> {
        let s = &self.state;
        let at = self.geo.state_offset;
        let total = u64::from(self.geo.cluster_count);
        let sealed = s.flags().contains(StateFlags::SEALED);
        // Counters out of step with each other are fsck's to recompute; only impossible
        // values stop the mount.
        let counters_ok = s.live_used.get() <= total
            && s.base_used.get() <= total
            && s.both_used.get() <= total
            && (sealed || s.base_used.get() == 0);
        if !counters_ok {
            return Err(Error::Corrupt {
                what: "state block cluster counters",
                at,
            });
        }
        // The record tables are cluster chains on this volume, and record numbers are u32.
        let records_per_cluster = u64::from(self.geo.cluster_size()) / RECORD_SIZE as u64;
        let table_fits = |clusters: u32| {
            clusters <= self.geo.cluster_count
                && u64::from(clusters) * records_per_cluster <= u64::from(u32::MAX)
        };
        if !table_fits(s.live_records_clusters.get()) || !table_fits(s.base_records_clusters.get())
        {
            return Err(Error::Corrupt {
                what: "state block record table cluster count",
                at,
            });
        }
        if !self.geo.is_cluster(s.live_records_first.get()) || s.live_records_clusters.get() == 0 {
            return Err(Error::Corrupt {
                what: "state block record table",
                at,
            });
        }
        if sealed
            && (!self.geo.is_cluster(s.base_records_first.get())
                || s.base_records_clusters.get() == 0)
        {
            return Err(Error::Corrupt {
                what: "state block base record table",
                at,
            });
        }
        Ok(())
    }

    /// Would [`Volume::sync`] commit a metadata transaction (something changed since the
    /// last commit)? A periodic commit asks first, so an idle volume is not written to.
    #[must_use]
    pub fn has_uncommitted(&self) -> bool {
        !self.read_only && (self.state_dirty || self.cache.has_dirty())
    }

    /// Makes everything done so far durable: data first, then the metadata transaction.
    pub fn sync(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        // Best effort (a no-op inside a paging write): the paging spares refilled.
        let _ = self.cache.top_up();
        self.dev.flush()?;
        if self.state_dirty || self.cache.has_dirty() {
            let seq = self.state.journal_seq.get();
            // A sequence number at its end cannot be continued: the next transaction would
            // reuse a number an old one had (mount refuses such a state block).
            let next = seq.checked_add(1).ok_or(Error::Corrupt {
                what: "state block journal sequence",
                at: self.geo.state_offset,
            })?;
            self.state.journal_seq.set(next);
            let put = self
                .state
                .to_block()
                .and_then(|block| self.cache.put(self.geo.state_offset, block, false));
            if let Err(e) = put {
                // Out of memory: the transaction stays as it was, to be committed later.
                self.state.journal_seq.set(seq);
                return Err(e);
            }
            self.cache.commit(
                &mut self.dev,
                self.geo.journal_offset,
                self.geo.journal_size,
                seq,
            )?;
            self.state_dirty = false;
        }
        self.pending_free.clear();
        Ok(())
    }

    /// Commits early when the running transaction nears what the journal can hold. Called
    /// between steps that each leave the volume consistent.
    pub(crate) fn make_room(&mut self) -> Result<()> {
        if self.cache.dirty_bytes() as u64 > self.geo.journal_size / 2 - 64 * 1024 {
            self.sync()?;
        }
        Ok(())
    }

    /// Syncs and hands the device back.
    pub fn unmount(mut self) -> Result<D> {
        self.close()?;
        Ok(self.dev)
    }

    /// What [`Self::unmount`] does, in place (the driver keeps its volume boxed): syncs and
    /// flushes so that nothing needs replay. The volume is not to be used afterwards.
    pub fn close(&mut self) -> Result<()> {
        self.sync()?;
        if !self.read_only {
            // The last commit's home writes were not flushed by it (the next commit's data
            // flush would have): flush them now so nothing needs replay.
            self.dev.flush()?;
        }
        Ok(())
    }

    pub(crate) fn now(&self) -> NtTime {
        self.clock.now()
    }

    pub(crate) fn writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn is_sealed(&self) -> bool {
        self.state.flags().contains(StateFlags::SEALED)
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The device, for tests and tools that inspect what was written.
    pub fn device(&self) -> &D {
        &self.dev
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    pub fn upcase(&self) -> &UpcaseTable {
        &self.upcase
    }

    /// Drops every in-memory structure derived from metadata, after a volume-wide change
    /// rewrote the tables behind them.
    pub(crate) fn forget_derived_state(&mut self) -> Result<()> {
        self.cache.drop_clean();
        self.extents.clear();
        self.dirs.clear();
        self.free_records.clear();
        self.reservations = Reservations::default();
        let orphans = self.load_records()?;
        for record in orphans {
            self.purge_record(record)?;
        }
        Ok(())
    }
}

fn replay_journal<D: BlockDevice>(
    dev: &mut D,
    geo: &Geometry,
    cache: &mut MetaCache,
    read_only: bool,
) -> Result<()> {
    let (start, size) = (geo.journal_offset, geo.journal_size);
    let found = journal::decode(size, |off, len| {
        if off.checked_add(len as u64)? > size {
            return None;
        }
        let mut buf = crate::mem::zeroed(len).ok()?;
        dev.read_at(start + off, &mut buf).ok()?;
        Some(buf)
    })
    .map_err(|e| match e {
        Error::Corrupt { what, at } => Error::Corrupt {
            what,
            at: start + at,
        },
        other => other,
    })?;
    let Some(tx) = found else { return Ok(()) };
    for (offset, data) in &tx.blocks {
        let end = offset.checked_add(data.len() as u64);
        let inside_metadata =
            *offset >= geo.state_offset && end.is_some_and(|e| e <= geo.backup_boot_offset);
        let overlaps_journal = *offset < start + size && end.is_some_and(|e| e > start);
        if !inside_metadata || overlaps_journal || offset % 512 != 0 {
            return Err(Error::Corrupt {
                what: "journal entry points outside the metadata",
                at: start,
            });
        }
    }
    for (offset, data) in tx.blocks {
        if read_only {
            cache.put(offset, data, false)?;
        } else {
            dev.write_at(offset, &data)?;
        }
    }
    if !read_only {
        dev.flush()?;
    }
    Ok(())
}

/// The state block, through the cache (a replay may have left a newer copy there). Out of
/// line: its buffer stays out of `open_boxed`'s frame (NT-23).
#[inline(never)]
fn read_state<D: BlockDevice>(
    dev: &mut D,
    geo: &Geometry,
    cache: &mut MetaCache,
) -> Result<Box<RawState>> {
    let block = cache.get(dev, geo.state_offset, BLOCK_SIZE, None)?;
    RawState::parse(block, geo.state_offset)
}

fn read_upcase<D: BlockDevice>(dev: &mut D, geo: &Geometry, boot: &RawBoot) -> Result<UpcaseTable> {
    let mut bytes = crate::mem::zeroed(UPCASE_BYTES as usize)?;
    dev.read_at(geo.upcase_offset, &mut bytes)?;
    if crc32c(&bytes) != boot.upcase_crc.get() {
        return Err(Error::Corrupt {
            what: "up-case table checksum",
            at: geo.upcase_offset,
        });
    }
    UpcaseTable::from_bytes(&bytes)?.ok_or(Error::Corrupt {
        what: "up-case table size",
        at: geo.upcase_offset,
    })
}

/// Shorthand for code that builds owned byte buffers (fallible, NT-26).
pub(crate) fn zeroed(len: usize) -> Result<Vec<u8>> {
    crate::mem::zeroed(len)
}

/// A zeroed buffer whose size comes from disk data (already checked against the geometry):
/// a failed allocation is `Error::OutOfMemory`, not an abort (in the kernel: not a bug check).
pub(crate) fn try_zeroed(len: u64, what: &'static str) -> Result<Vec<u8>> {
    let oom = Error::OutOfMemory { what, bytes: len };
    let len = usize::try_from(len).map_err(|_| oom.clone())?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| oom)?;
    buf.resize(len, 0);
    Ok(buf)
}
