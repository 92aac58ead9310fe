//! The copy-on-write overlay. `seal` freezes the live state as the base; afterwards writes
//! move clusters instead of overwriting them (see `stream`). A volume `commit` copies the
//! changed live table blocks over the base table and a `discard` the other way; each starts
//! with a journaled decision (a pending flag) that mount finishes if the copy was cut short,
//! and ends with one state commit, so both are atomic and cost O(changed table blocks), never
//! O(data). Per-file commit and discard relink one file's chain in the other table.
//! Reservations keep overlay clusters for paging writes that must not fail (NT-15).

use alloc::string::String;
use alloc::vec::Vec;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ondisk::record::{RawRecord, RecordFlags, RECORD_SIZE};
use crate::ondisk::state::{StateFlags, LABEL_UNITS};
use crate::ondisk::table::{entry_position, FREE};
use crate::ondisk::BLOCK_SIZE;
use crate::sorted::{SortedMap, SortedSet};
use crate::stream::StreamKey;
use crate::types::{FileId, FileOverlayStatus, OverlayRun, OverlaySummary, VolumeInfo};
use crate::volume::{Tree, Volume};

/// Disjoint ranges `start..end` of stream cluster numbers. Its capacity is kept at one range
/// per cluster it holds, so that [`RangeSet::remove`] (a paging write using its reservation,
/// which must not fail) never needs memory even when it splits a range.
#[derive(Debug, Clone, Default)]
pub(crate) struct RangeSet(SortedMap<u64, u64>);

impl RangeSet {
    pub fn contains(&self, v: u64) -> bool {
        self.0
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &end)| v < end)
    }

    /// Room for `more` clusters besides those held, one range each at worst.
    pub fn reserve(&mut self, more: usize) -> Result<()> {
        let held = usize::try_from(self.len()).unwrap_or(usize::MAX);
        self.0
            .reserve(held.saturating_add(more).saturating_sub(self.0.len()))
    }

    /// Adds `v`; the caller reserved room for it.
    pub fn insert(&mut self, v: u64) -> Result<()> {
        if self.contains(v) {
            return Ok(());
        }
        let (mut start, mut end) = (v, v + 1);
        if let Some((&s, &e)) = self.0.range(..v).next_back() {
            if e == v {
                self.0.remove(&s);
                start = s;
            }
        }
        if let Some(&e) = self.0.get(&end) {
            self.0.remove(&end);
            end = e;
        }
        self.0.insert(start, end)?;
        Ok(())
    }

    /// Takes `v` out. Allocates nothing: a split adds one range, and the capacity covers one
    /// range per cluster held (see [`RangeSet::reserve`]).
    pub fn remove(&mut self, v: u64) -> bool {
        let Some((&s, &e)) = self.0.range(..=v).next_back() else {
            return false;
        };
        if v >= e {
            return false;
        }
        self.0.remove(&s);
        if s < v {
            let _ = self.0.insert(s, v);
        }
        if v + 1 < e {
            let _ = self.0.insert(v + 1, e);
        }
        true
    }

    pub fn len(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }
}

/// Overlay clusters promised ahead of writes, per file, and a pool for the record-table
/// cluster a file's record may have to move into.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reservations {
    files: SortedMap<u32, RangeSet>,
    data_total: u64,
    meta_holders: SortedSet<u32>,
    meta_total: u64,
}

impl Reservations {
    pub fn total(&self) -> u64 {
        self.data_total + self.meta_total
    }

    pub fn of_file(&self, record: u32) -> u64 {
        self.files.get(&record).map_or(0, RangeSet::len)
            + u64::from(self.meta_holders.contains(&record))
    }

    pub fn release_file(&mut self, record: u32) {
        if let Some(set) = self.files.remove(&record) {
            self.data_total -= set.len();
        }
        if self.meta_holders.remove(&record) {
            self.meta_total = self.meta_total.saturating_sub(1);
        }
    }
}

impl<D: BlockDevice> Volume<D> {
    /// Consumes the reservation for a copy-on-write move of `key`'s cluster `vcn`, if any.
    pub(crate) fn take_reserved(&mut self, key: StreamKey, vcn: u64) -> bool {
        let r = &mut self.reservations;
        match key {
            StreamKey::File(Tree::Live, record) => {
                let taken = r.files.get_mut(&record).is_some_and(|set| set.remove(vcn));
                if taken {
                    r.data_total -= 1;
                }
                taken
            }
            StreamKey::RecordTable(Tree::Live) if r.meta_total > 0 => {
                r.meta_total -= 1;
                true
            }
            _ => false,
        }
    }

    /// Reserves the overlay clusters that writes to `[offset, offset + len)` of a file could
    /// need (its clusters the base still holds, and a move of its record), so that later
    /// paging writes there cannot fail for space (NT-15). Returns the clusters newly
    /// reserved; fails with `NoSpace` (and reserves nothing) when they are not available.
    pub fn reserve_overlay(&mut self, id: FileId, offset: u64, len: u64) -> Result<u64> {
        self.writable()?;
        self.file_record(id)?;
        if !self.is_sealed() || len == 0 {
            return Ok(0);
        }
        let cs = u64::from(self.geo.cluster_size());
        let key = StreamKey::File(Tree::Live, id.record());
        let count = self.extent_map(key)?.count();
        let (first, last) = (offset / cs, (offset.saturating_add(len) - 1) / cs);
        let mut wanted = Vec::new();
        for vcn in first..=last.min(count.saturating_sub(1)) {
            if count == 0
                || self
                    .reservations
                    .files
                    .get(&id.record())
                    .is_some_and(|s| s.contains(vcn))
            {
                continue;
            }
            let lcn = self.stream_lcn(key, vcn)?;
            if self.is_base_cluster(lcn)? {
                crate::mem::push(&mut wanted, vcn)?;
            }
        }
        let record_vcn = u64::from(id.record()) * RECORD_SIZE as u64 / cs;
        let record_lcn = self.stream_lcn(StreamKey::RecordTable(Tree::Live), record_vcn)?;
        let meta = !self.reservations.meta_holders.contains(&id.record())
            && self.is_base_cluster(record_lcn)?;
        let need = wanted.len() as u64 + u64::from(meta);
        if need > self.available_clusters() {
            return Err(Error::NoSpace);
        }
        // All the memory first, so that nothing is half reserved (NT-26).
        let set = self
            .reservations
            .files
            .get_or_insert_with(id.record(), RangeSet::default)?;
        set.reserve(wanted.len())?;
        if meta {
            self.reservations.meta_holders.reserve(1)?;
        }
        for vcn in wanted {
            set.insert(vcn)?;
        }
        self.reservations.data_total += need - u64::from(meta);
        if meta {
            self.reservations.meta_holders.insert(id.record())?;
            self.reservations.meta_total += 1;
        }
        Ok(need)
    }

    /// Gives back what [`Volume::reserve_overlay`] kept for a file and was not used.
    pub fn release_overlay_reservation(&mut self, id: FileId) {
        self.reservations.release_file(id.record());
    }

    /// Freezes the live state as the base. From now on no write touches a base cluster.
    pub fn seal(&mut self) -> Result<()> {
        self.writable()?;
        if self.is_sealed() {
            return Err(Error::AlreadySealed);
        }
        self.base_from_live()
    }

    /// Makes the overlay the new base (the volume stays sealed, with an empty overlay).
    pub fn commit(&mut self) -> Result<()> {
        self.writable()?;
        if !self.is_sealed() {
            return Err(Error::NotSealed);
        }
        self.base_from_live()
    }

    /// Drops the overlay: the live state becomes the base again. Every file id, name and
    /// cached structure from before is void afterwards.
    pub fn discard(&mut self) -> Result<()> {
        self.writable()?;
        if !self.is_sealed() {
            return Err(Error::NotSealed);
        }
        self.decide(StateFlags::DISCARD_PENDING)?;
        self.finish_discard()
    }

    fn base_from_live(&mut self) -> Result<()> {
        self.decide(StateFlags::COMMIT_PENDING)?;
        self.finish_commit()
    }

    /// Commits everything so far, then commits the decision flag on its own.
    fn decide(&mut self, flag: StateFlags) -> Result<()> {
        self.sync()?;
        let flags = self.state.flags() | flag;
        self.state.set_flags(flags);
        self.state_dirty = true;
        self.sync()
    }

    /// Finishes an overlay operation whose decision was committed (also at mount).
    pub(crate) fn finish_pending_overlay_op(&mut self) -> Result<()> {
        if self.state.flags().contains(StateFlags::DISCARD_PENDING) {
            self.finish_discard()
        } else {
            self.finish_commit()
        }
    }

    /// Copies every changed table block from one table to the other, outside the journal:
    /// the decision is durable, so a crash here is finished by the next mount.
    fn copy_changed_table_blocks(&mut self, from: Tree, to: Tree) -> Result<()> {
        // The memory first: once the changed-block bits are taken, a copy that stopped for
        // want of memory would lose them (NT-26). A writable volume copies through this one
        // buffer and the cache takes nothing new.
        let mut data = crate::mem::zeroed(BLOCK_SIZE)?;
        for block in self.take_changed_table_blocks()? {
            let src = self.table_block_offset(from, block);
            let dst = self.table_block_offset(to, block);
            self.cache.read_into(
                &mut self.dev,
                src,
                &mut data,
                Some("allocation table block checksum"),
            )?;
            if self.read_only {
                // Finishing a cut-short commit in memory, at mount.
                self.cache.put(dst, crate::mem::copied(&data)?, false)?;
            } else {
                self.dev.write_at(dst, &data)?;
                self.cache.forget(dst, BLOCK_SIZE as u64);
            }
        }
        if !self.read_only {
            self.dev.flush()?;
        }
        Ok(())
    }

    fn finish_commit(&mut self) -> Result<()> {
        self.copy_changed_table_blocks(Tree::Live, Tree::Base)?;
        let now = self.clock.now().0;
        let s = &mut self.state;
        s.base_records_first = s.live_records_first;
        s.base_records_clusters = s.live_records_clusters;
        s.base_used = s.live_used;
        s.both_used = s.live_used;
        s.set_flags(StateFlags::SEALED);
        s.seal_time.set(now);
        self.state_dirty = true;
        // The base's maps (its record table's too) describe the base before this commit.
        self.extents.retain(|k, _| k.tree() == Tree::Live);
        self.keep_orphans_out_of_base()?;
        self.sync()?;
        Ok(())
    }

    /// Takes the files unlinked while open (orphans) out of the base that a seal or commit
    /// just made of the live state: no name leads to them in the base, so the base must not
    /// keep their clusters once their last handle goes (nor a record a discard would bring
    /// back). Their clusters become overlay-only and their base record free. Each orphan is
    /// done whole before the journal may commit early, so any cut leaves a consistent volume.
    fn keep_orphans_out_of_base(&mut self) -> Result<()> {
        if self.read_only {
            // Finishing a cut-short commit in memory: no cluster to give live its own copy of
            // the record in. The next writable mount finishes the commit for real.
            self.base_keeps_orphans = !self.orphans.is_empty();
            return Ok(());
        }
        let orphans: Vec<u32> = crate::mem::copied_from(self.orphans.iter())?;
        for record in orphans {
            let live = self.record(Tree::Live, record)?;
            if !live.in_use() || !live.flags().contains(RecordFlags::ORPHAN) {
                self.orphans.remove(&record);
                continue;
            }
            // Live gets its own copy of the record's cluster first, so that freeing the base
            // record below cannot show through to live (as in `commit_file`).
            self.put_record(record, &live)?;
            let map = self
                .extent_map(StreamKey::File(Tree::Live, record))?
                .try_clone()?;
            for lcn in map.clusters() {
                self.set_base(lcn, FREE)?;
                self.mark_table_block_changed(entry_position(lcn).0)?;
            }
            let mut free = RawRecord::new_zeroed();
            free.sequence = live.sequence;
            self.put_base_record(record, &free)?;
            self.extents.remove(&StreamKey::File(Tree::Base, record));
            self.make_room()?;
        }
        Ok(())
    }

    fn finish_discard(&mut self) -> Result<()> {
        self.copy_changed_table_blocks(Tree::Base, Tree::Live)?;
        let s = &mut self.state;
        s.live_records_first = s.base_records_first;
        s.live_records_clusters = s.base_records_clusters;
        s.live_used = s.base_used;
        s.both_used = s.base_used;
        s.set_flags(StateFlags::SEALED);
        self.state_dirty = true;
        self.sync()?;
        self.forget_derived_state()?;
        self.sync()
    }

    /// The base record of a live file, if the base has that same file.
    fn base_twin(&mut self, id: FileId) -> Result<Option<RawRecord>> {
        if !self.is_sealed() {
            return Ok(None);
        }
        match self.record(Tree::Base, id.record()) {
            Ok(raw) if raw.in_use() && raw.sequence.get() == id.sequence() => Ok(Some(raw)),
            Ok(_) | Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn overlay_file(&mut self, id: FileId) -> Result<(RawRecord, RawRecord)> {
        self.writable()?;
        if !self.is_sealed() {
            return Err(Error::NotSealed);
        }
        let live = self.file_record(id)?;
        if live.flags().contains(RecordFlags::DIRECTORY) {
            return Err(Error::Unsupported(
                "a directory's overlay changes only with the whole volume",
            ));
        }
        let base = self.base_twin(id)?.ok_or(Error::NoBaseVersion)?;
        Ok((live, base))
    }

    /// Drops one file's overlay: its content, sizes, attributes and times return to the
    /// base's. Its name stays what it is now.
    // Out of line: inlined together, the two would share one frame twice the size (NT-23).
    #[inline(never)]
    pub fn discard_file(&mut self, id: FileId) -> Result<()> {
        let (live, base) = self.overlay_file(id)?;
        self.make_room()?;
        let record = id.record();
        let live_map = self
            .extent_map(StreamKey::File(Tree::Live, record))?
            .try_clone()?;
        let base_map = self
            .extent_map(StreamKey::File(Tree::Base, record))?
            .try_clone()?;
        // Room for every cluster freed below, so that no free stops halfway (NT-26).
        self.pending_free
            .reserve(usize::try_from(live_map.count()).unwrap_or(usize::MAX))?;
        for lcn in live_map.clusters() {
            if !self.is_base_cluster(lcn)? {
                self.free_live(lcn)?;
            }
        }
        for lcn in base_map.clusters() {
            let next = self.entry(Tree::Base, lcn)?;
            self.set_live(lcn, next)?;
        }
        let mut raw = base.clone();
        raw.flags = live.flags;
        raw.parent = live.parent;
        self.put_record(record, &raw)?;
        // A cache: without room (the key was absent) the map is walked again on next use.
        let _ = self
            .extents
            .insert(StreamKey::File(Tree::Live, record), base_map);
        self.reservations.release_file(record);
        Ok(())
    }

    /// Makes one file's overlay part of the base: the base gets its current content, sizes,
    /// attributes and times (not its name: names change with the whole volume).
    // Out of line: inlined together, the two would share one frame twice the size (NT-23).
    #[inline(never)]
    pub fn commit_file(&mut self, id: FileId) -> Result<()> {
        let (live, base) = self.overlay_file(id)?;
        self.make_room()?;
        let record = id.record();
        // Give live its own copy of the record's cluster first, so that writing the base
        // record below cannot show through to live.
        self.put_record(record, &live)?;
        let live_map = self
            .extent_map(StreamKey::File(Tree::Live, record))?
            .try_clone()?;
        let base_map = self
            .extent_map(StreamKey::File(Tree::Base, record))?
            .try_clone()?;
        let mut live_clusters = crate::mem::collect(live_map.clusters())?;
        crate::sorted::sort_flat(&mut live_clusters);
        live_clusters.dedup();
        for lcn in base_map.clusters() {
            if live_clusters.binary_search(&lcn).is_err() {
                self.set_base(lcn, FREE)?;
            }
        }
        for &lcn in &live_clusters {
            let next = self.entry(Tree::Live, lcn)?;
            self.set_base(lcn, next)?;
        }
        let mut raw = live.clone();
        raw.flags = base.flags;
        raw.parent = base.parent;
        self.put_base_record(record, &raw)?;
        self.extents.remove(&StreamKey::File(Tree::Base, record));
        Ok(())
    }

    fn put_base_record(&mut self, record: u32, raw: &RawRecord) -> Result<()> {
        let cs = u64::from(self.geo.cluster_size());
        let mb = u64::from(self.geo.meta_block_size());
        let pos = u64::from(record) * RECORD_SIZE as u64;
        let lcn = self.stream_lcn(StreamKey::RecordTable(Tree::Base), pos / cs)?;
        let within = pos % cs;
        let block = self.geo.cluster_offset(lcn) + within / mb * mb;
        let at = (within % mb) as usize;
        let data = self.cache.modify(&mut self.dev, block, mb as usize, None)?;
        data[at..at + RECORD_SIZE].copy_from_slice(&raw.to_bytes());
        Ok(())
    }

    /// Where one file stands in the overlay.
    pub fn overlay_status(&mut self, id: FileId) -> Result<FileOverlayStatus> {
        let live = self.file_record(id)?;
        let key = StreamKey::File(Tree::Live, id.record());
        let map = self.extent_map(key)?.try_clone()?;
        let mut base_clusters = 0u64;
        for lcn in map.clusters() {
            if self.is_base_cluster(lcn)? {
                base_clusters += 1;
            }
        }
        let base = self.base_twin(id)?;
        let overlay_clusters = map.count() - base_clusters;
        let modified = match &base {
            None => true,
            Some(b) => {
                overlay_clusters > 0
                    || b.first_cluster != live.first_cluster
                    || b.cluster_count != live.cluster_count
                    || b.file_size != live.file_size
                    || b.valid_data_length != live.valid_data_length
                    || b.attributes != live.attributes
                    || b.last_write_time != live.last_write_time
            }
        };
        Ok(FileOverlayStatus {
            in_base: base.is_some(),
            base_clusters,
            overlay_clusters,
            reserved_clusters: self.reservations.of_file(id.record()),
            modified,
        })
    }

    /// The file's first runs, split where its clusters go from base to overlay, into `out`;
    /// how many were written (at most `out.len()`: the rest are left out).
    pub fn overlay_runs(&mut self, id: FileId, out: &mut [OverlayRun]) -> Result<usize> {
        self.file_record(id)?;
        let key = StreamKey::File(Tree::Live, id.record());
        let map = self.extent_map(key)?.try_clone()?;
        let mut n = 0usize;
        for run in map.runs() {
            for i in 0..run.len {
                let lcn = run.lcn + i;
                let base = self.is_base_cluster(lcn)?;
                let vcn = run.vcn + u64::from(i);
                if n > 0 {
                    let last = &mut out[n - 1];
                    if last.base == base
                        && last.vcn + u64::from(last.len) == vcn
                        && last.lcn + last.len == lcn
                    {
                        last.len += 1;
                        continue;
                    }
                }
                let Some(slot) = out.get_mut(n) else {
                    return Ok(n);
                };
                *slot = OverlayRun {
                    vcn,
                    lcn,
                    len: 1,
                    base,
                };
                n += 1;
            }
        }
        Ok(n)
    }

    /// The overlay's figures of [`Volume::volume_info`], without allocating.
    pub fn overlay_summary(&self) -> OverlaySummary {
        let s = &self.state;
        OverlaySummary {
            sealed: self.is_sealed(),
            total_clusters: u64::from(self.geo.cluster_count),
            free_clusters: self.free_clusters(),
            overlay_clusters: s.live_used.get().saturating_sub(s.both_used.get()),
            base_only_clusters: s.base_used.get().saturating_sub(s.both_used.get()),
            reserved_clusters: self.reservations.total(),
        }
    }

    /// Volume-wide figures. For the kernel, see [`Volume::try_volume_info`].
    pub fn volume_info(&self) -> VolumeInfo {
        let mut info = self.volume_info_without_label();
        info.label = char::decode_utf16(self.label_units().iter().map(|u| u.get()))
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect::<String>();
        info
    }

    /// [`Volume::volume_info`], the label's memory had fallibly (NT-26).
    pub fn try_volume_info(&self) -> Result<VolumeInfo> {
        let mut info = self.volume_info_without_label();
        let units = self.label_units();
        // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4).
        info.label
            .try_reserve_exact(units.len() * 3)
            .map_err(|_| Error::OutOfMemory {
                what: "the volume label",
                bytes: (units.len() * 3) as u64,
            })?;
        for c in char::decode_utf16(units.iter().map(|u| u.get())) {
            info.label.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        Ok(info)
    }

    /// The label's UTF-16 units as the state block holds them.
    fn label_units(&self) -> &[zerocopy::little_endian::U16] {
        let len = (self.state.label_len.get() as usize).min(LABEL_UNITS);
        &self.state.label[..len]
    }

    fn volume_info_without_label(&self) -> VolumeInfo {
        let s = &self.state;
        VolumeInfo {
            label: String::new(),
            serial: self.boot.serial.get(),
            cluster_size: self.geo.cluster_size(),
            sector_size: self.geo.sector_size,
            total_clusters: u64::from(self.geo.cluster_count),
            free_clusters: self.free_clusters(),
            available_clusters: self.available_clusters(),
            sealed: self.is_sealed(),
            overlay_clusters: s.live_used.get().saturating_sub(s.both_used.get()),
            base_only_clusters: s.base_used.get().saturating_sub(s.both_used.get()),
            reserved_clusters: self.reservations.total(),
            format_time: crate::time::NtTime(self.boot.format_time.get()),
            seal_time: crate::time::NtTime(s.seal_time.get()),
        }
    }

    /// Sets the volume label (at most 32 UTF-16 units, no characters names may not have).
    pub fn set_label(&mut self, label: &str) -> Result<()> {
        self.writable()?;
        let units = label_units(label)?;
        self.set_label_utf16(&units)
    }

    /// [`Volume::set_label`] from UTF-16 units (the kernel's form; nothing to allocate but
    /// the name check's own fallible copy).
    pub fn set_label_utf16(&mut self, units: &[u16]) -> Result<()> {
        self.writable()?;
        if units.len() > LABEL_UNITS {
            return Err(Error::InvalidArgument(
                "a volume label is at most 32 characters",
            ));
        }
        if !units.is_empty() {
            crate::name::Name::from_utf16(units)?;
        }
        for (slot, unit) in self
            .state
            .label
            .iter_mut()
            .zip(units.iter().chain(core::iter::repeat(&0)))
        {
            slot.set(*unit);
        }
        self.state.label_len.set(units.len() as u32);
        self.state_dirty = true;
        Ok(())
    }
}

/// A label as UTF-16, checked.
pub(crate) fn label_units(label: &str) -> Result<Vec<u16>> {
    let units: Vec<u16> = label.encode_utf16().collect();
    if units.len() > LABEL_UNITS {
        return Err(Error::InvalidArgument(
            "a volume label is at most 32 characters",
        ));
    }
    if !label.is_empty() {
        crate::name::Name::from_utf16(&units)?;
    }
    Ok(units)
}
