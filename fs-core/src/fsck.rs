//! The checker, shared by the tool and the driver: walks the live tree (and the base tree
//! when sealed), checks every directory entry, record and chain, then the tables and
//! counters against what the trees use. With `repair` it fixes what is safe to fix: lost
//! clusters are freed, counters recomputed, unnamed records relinked into the root as
//! `lost-file-N`, sizes clamped to their allocation, the difference bitmap completed.
//! Damage it cannot fix safely (cross-linked or broken chains) is reported, never guessed at.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::name::Name;
use crate::ondisk::record::{RecordFlags, ROOT_RECORD};
use crate::ondisk::table::{DIFF_BITS_PER_BLOCK, ENTRIES_PER_BLOCK, FIRST_CLUSTER, FREE};
use crate::ondisk::BLOCK_SIZE;
use crate::stream::StreamKey;
use crate::time::{FixedClock, NtTime};
use crate::types::{FileId, MountOptions};
use crate::volume::{Tree, Volume};

const TABLE_BLOCK: &str = "allocation table block checksum";
const DIFF_BLOCK: &str = "table difference bitmap checksum";

/// One thing the checker found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    /// Volume byte offset, where one applies.
    pub at: Option<u64>,
    pub repaired: bool,
}

/// What a check found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    pub files: u64,
    pub directories: u64,
    pub live_clusters: u64,
    pub base_clusters: u64,
    pub sealed: bool,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn unrepaired(&self) -> usize {
        self.problems.iter().filter(|p| !p.repaired).count()
    }

    /// e2fsck's exit codes: 0 clean, 1 corrected, 4 left uncorrected.
    pub fn exit_code(&self) -> i32 {
        match (self.problems.is_empty(), self.unrepaired()) {
            (true, _) => 0,
            (false, 0) => 1,
            _ => 4,
        }
    }
}

/// Progress of a check: `done` of `total` units of work.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// A set of cluster numbers as a bitmap over the heap.
struct ClusterSet(Vec<u64>);

impl ClusterSet {
    /// One bit per cluster of the volume: a volume of 2^32 clusters needs 512 MiB, so the
    /// allocation is fallible.
    fn new(clusters: u32) -> Result<Self> {
        let words = (u64::from(clusters) + u64::from(FIRST_CLUSTER)).div_ceil(64);
        let oom = Error::OutOfMemory {
            what: "the checker's cluster bitmap",
            bytes: words * 8,
        };
        let words = usize::try_from(words).map_err(|_| oom.clone())?;
        let mut bits = Vec::new();
        bits.try_reserve_exact(words).map_err(|_| oom)?;
        bits.resize(words, 0);
        Ok(ClusterSet(bits))
    }
    /// Adds `c`; false when it was there already.
    fn claim(&mut self, c: u32) -> bool {
        let (word, bit) = (c as usize / 64, c % 64);
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }
    fn contains(&self, c: u32) -> bool {
        self.0[c as usize / 64] & (1 << (c % 64)) != 0
    }
}

/// Checks the volume on `dev`; with `repair`, fixes what is safe. Returns the report and the
/// device. An error means the volume could not be checked at all (it does not mount).
pub fn check<D: BlockDevice>(
    dev: D,
    repair: bool,
    progress: Progress<'_>,
) -> Result<(CheckReport, D)> {
    let mut options = MountOptions::new(alloc::boxed::Box::new(FixedClock(NtTime(0))));
    options.read_only = !repair;
    let mut vol = Volume::mount(dev, options)?;
    let mut checker = Checker {
        report: CheckReport::default(),
        repair,
    };
    checker.report.sealed = vol.is_sealed();
    let live = checker.walk_tree(&mut vol, Tree::Live)?;
    let mut live = live;
    checker.find_lost_records(&mut vol, &mut live)?;
    checker.scan_table(&mut vol, Tree::Live, &live.clusters, progress)?;
    if vol.is_sealed() {
        let mut base = checker.walk_tree(&mut vol, Tree::Base)?;
        if vol.base_keeps_orphans {
            checker.claim_base_orphans(&mut vol, &mut base)?;
        }
        checker.scan_table(&mut vol, Tree::Base, &base.clusters, progress)?;
    }
    checker.check_counters(&mut vol)?;
    checker.check_diff_bitmap(&mut vol)?;
    if repair {
        vol.sync()?;
    }
    let dev = vol.unmount()?;
    Ok((checker.report, dev))
}

struct Walked {
    clusters: ClusterSet,
    records: BTreeSet<u32>,
}

struct Checker {
    report: CheckReport,
    repair: bool,
}

impl Checker {
    fn problem(&mut self, what: String, at: Option<u64>, repaired: bool) {
        self.report.problems.push(Problem { what, at, repaired });
    }

    fn claim_chain<D: BlockDevice>(
        &mut self,
        vol: &mut Volume<D>,
        key: StreamKey,
        set: &mut ClusterSet,
        label: &str,
    ) -> Result<bool> {
        let map = match vol.extent_map(key) {
            Ok(map) => map.clone(),
            Err(Error::Corrupt { what, at }) => {
                self.problem(format!("{label}: {what}"), Some(at), false);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        for c in map.clusters() {
            if !set.claim(c) {
                let at = vol.geo.cluster_offset(c);
                self.problem(
                    format!("{label}: cluster {c} is used twice (cross-linked)"),
                    Some(at),
                    false,
                );
            }
        }
        Ok(true)
    }

    /// Walks one tree from its root: every directory, entry, record and chain.
    fn walk_tree<D: BlockDevice>(&mut self, vol: &mut Volume<D>, tree: Tree) -> Result<Walked> {
        let which = if tree == Tree::Live { "live" } else { "base" };
        let mut walked = Walked {
            clusters: ClusterSet::new(vol.geo.cluster_count)?,
            records: BTreeSet::new(),
        };
        self.claim_chain(
            vol,
            StreamKey::RecordTable(tree),
            &mut walked.clusters,
            &format!("{which} record table"),
        )?;
        walked.records.insert(ROOT_RECORD);
        let mut queue = VecDeque::from([ROOT_RECORD]);
        while let Some(dir) = queue.pop_front() {
            if tree == Tree::Live {
                self.report.directories += 1;
            }
            if !self.claim_chain(
                vol,
                StreamKey::File(tree, dir),
                &mut walked.clusters,
                &format!("{which} directory record {dir}"),
            )? {
                continue;
            }
            let index = match vol.read_directory(tree, dir) {
                Ok(index) => index,
                Err(Error::Corrupt { what, at }) => {
                    self.problem(
                        format!("{which} directory record {dir}: {what}"),
                        Some(at),
                        false,
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            for entry in index.by_key.values() {
                let record = entry.id.record();
                let label = format!("{which} file '{}' (record {record})", entry.name);
                let raw = match vol.record(tree, record) {
                    Ok(raw) if raw.in_use() && raw.sequence.get() == entry.id.sequence() => raw,
                    Ok(_) | Err(Error::NotFound) => {
                        self.problem(
                            format!("{label}: the entry points at a free or reused record"),
                            None,
                            false,
                        );
                        continue;
                    }
                    Err(Error::Corrupt { what, at }) => {
                        self.problem(format!("{label}: {what}"), Some(at), false);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if !walked.records.insert(record) {
                    self.problem(format!("{label}: the record has two names"), None, false);
                    continue;
                }
                if raw.parent.get() != dir {
                    let fixed = self.repair && tree == Tree::Live && {
                        let mut fixed_raw = raw.clone();
                        fixed_raw.parent.set(dir);
                        vol.put_record(record, &fixed_raw).is_ok()
                    };
                    self.problem(
                        format!("{label}: the record names the wrong parent directory"),
                        None,
                        fixed,
                    );
                }
                if raw.flags().contains(RecordFlags::DIRECTORY) {
                    queue.push_back(record);
                    continue;
                }
                if tree == Tree::Live {
                    self.report.files += 1;
                }
                self.check_sizes(vol, tree, record, &label)?;
                self.claim_chain(
                    vol,
                    StreamKey::File(tree, record),
                    &mut walked.clusters,
                    &label,
                )?;
            }
        }
        Ok(walked)
    }

    fn check_sizes<D: BlockDevice>(
        &mut self,
        vol: &mut Volume<D>,
        tree: Tree,
        record: u32,
        label: &str,
    ) -> Result<()> {
        let raw = vol.record(tree, record)?;
        let Some(alloc) = raw
            .cluster_count
            .get()
            .checked_mul(u64::from(vol.geo.cluster_size()))
        else {
            self.problem(format!("{label}: cluster count out of range"), None, false);
            return Ok(());
        };
        let (size, vdl) = (raw.file_size.get(), raw.valid_data_length.get());
        if size <= alloc && vdl <= size {
            return Ok(());
        }
        let fixed = self.repair && tree == Tree::Live && {
            let mut fixed_raw = raw.clone();
            fixed_raw.file_size.set(size.min(alloc));
            fixed_raw.valid_data_length.set(vdl.min(size.min(alloc)));
            vol.put_record(record, &fixed_raw).is_ok()
        };
        self.problem(
            format!("{label}: sizes out of order (size {size}, valid {vdl}, allocated {alloc})"),
            None,
            fixed,
        );
        Ok(())
    }

    /// Records in use that no directory names. An orphan (unlinked while open, then a crash)
    /// is not lost: the next writable mount frees it, so its clusters count as owned.
    fn find_lost_records<D: BlockDevice>(
        &mut self,
        vol: &mut Volume<D>,
        walked: &mut Walked,
    ) -> Result<()> {
        for record in 1..vol.record_capacity(Tree::Live) as u32 {
            let raw = match vol.record(Tree::Live, record) {
                Ok(raw) => raw,
                Err(Error::Corrupt { what, at }) => {
                    self.problem(format!("live record {record}: {what}"), Some(at), false);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !raw.in_use() || walked.records.contains(&record) {
                continue;
            }
            if raw.flags().contains(RecordFlags::ORPHAN) {
                let label = format!("orphaned record {record}");
                self.claim_chain(
                    vol,
                    StreamKey::File(Tree::Live, record),
                    &mut walked.clusters,
                    &label,
                )?;
                continue;
            }
            let fixed = self.repair
                && !raw.flags().contains(RecordFlags::DIRECTORY)
                && self.relink(vol, record, raw.sequence.get());
            self.problem(
                format!("live record {record} is in use but no directory names it"),
                None,
                fixed,
            );
        }
        Ok(())
    }

    /// Orphans a commit cut short left in the base, when this check finished it in memory
    /// (read-only): the next writable mount takes them out, so their clusters are owned.
    fn claim_base_orphans<D: BlockDevice>(
        &mut self,
        vol: &mut Volume<D>,
        walked: &mut Walked,
    ) -> Result<()> {
        for record in 1..vol.record_capacity(Tree::Base) as u32 {
            let Ok(raw) = vol.record(Tree::Base, record) else {
                continue;
            };
            if raw.in_use()
                && raw.flags().contains(RecordFlags::ORPHAN)
                && !walked.records.contains(&record)
            {
                let label = format!("base orphaned record {record}");
                self.claim_chain(
                    vol,
                    StreamKey::File(Tree::Base, record),
                    &mut walked.clusters,
                    &label,
                )?;
            }
        }
        Ok(())
    }

    fn relink<D: BlockDevice>(&mut self, vol: &mut Volume<D>, record: u32, sequence: u16) -> bool {
        let Ok(name) = Name::from_str(&format!("lost-file-{record}")) else {
            return false;
        };
        let id = FileId::new(record, sequence);
        let linked = vol.dir_insert(ROOT_RECORD, &name, id).is_ok();
        linked
            && vol
                .record(Tree::Live, record)
                .and_then(|mut raw| {
                    raw.parent.set(ROOT_RECORD);
                    vol.put_record(record, &raw)
                })
                .is_ok()
    }

    /// Every used table entry must belong to a chain the tree walk found.
    fn scan_table<D: BlockDevice>(
        &mut self,
        vol: &mut Volume<D>,
        tree: Tree,
        claimed: &ClusterSet,
        progress: Progress<'_>,
    ) -> Result<()> {
        let end = vol.geo.cluster_end();
        let mut used = 0u64;
        let mut lost = Vec::new();
        for c in FIRST_CLUSTER..end {
            if c % 65536 == 0 {
                progress(u64::from(c), u64::from(end));
            }
            let value = vol.entry(tree, c)?;
            if value == FREE {
                continue;
            }
            used += 1;
            if !claimed.contains(c) {
                lost.push(c);
            }
        }
        progress(u64::from(end), u64::from(end));
        if !lost.is_empty() {
            let fixed =
                self.repair && tree == Tree::Live && lost.iter().all(|&c| vol.free_live(c).is_ok());
            let which = if tree == Tree::Live { "live" } else { "base" };
            self.problem(
                format!(
                    "{} {which} clusters are marked used but belong to no file",
                    lost.len()
                ),
                None,
                fixed,
            );
            if fixed {
                used -= lost.len() as u64;
            }
        }
        match tree {
            Tree::Live => self.report.live_clusters = used,
            Tree::Base => self.report.base_clusters = used,
        }
        Ok(())
    }

    fn check_counters<D: BlockDevice>(&mut self, vol: &mut Volume<D>) -> Result<()> {
        let mut both = 0u64;
        if vol.is_sealed() {
            for c in FIRST_CLUSTER..vol.geo.cluster_end() {
                if vol.entry(Tree::Live, c)? != FREE && vol.entry(Tree::Base, c)? != FREE {
                    both += 1;
                }
            }
        }
        let s = &vol.state;
        let (live, base) = (self.report.live_clusters, self.report.base_clusters);
        if s.live_used.get() == live && s.base_used.get() == base && s.both_used.get() == both {
            return Ok(());
        }
        let found = format!(
            "cluster counters say live {} base {} both {}, the tables say {live} {base} {both}",
            s.live_used.get(),
            s.base_used.get(),
            s.both_used.get()
        );
        if self.repair {
            vol.state.live_used.set(live);
            vol.state.base_used.set(base);
            vol.state.both_used.set(both);
            vol.state_dirty = true;
        }
        self.problem(found, Some(vol.geo.state_offset), self.repair);
        Ok(())
    }

    /// A table block whose difference bit is clear must be the same in both tables (and, on
    /// an unsealed volume, the base table must be empty).
    fn check_diff_bitmap<D: BlockDevice>(&mut self, vol: &mut Volume<D>) -> Result<()> {
        let changed: BTreeSet<u32> = {
            let mut bits = BTreeSet::new();
            for block in 0..vol.geo.table_blocks {
                let offset = vol.geo.diff_offset
                    + u64::from(block / DIFF_BITS_PER_BLOCK) * BLOCK_SIZE as u64;
                let bit = block % DIFF_BITS_PER_BLOCK;
                let data = vol
                    .cache
                    .get(&mut vol.dev, offset, BLOCK_SIZE, Some(DIFF_BLOCK))?;
                if data[(bit / 8) as usize] & (1 << (bit % 8)) != 0 {
                    bits.insert(block);
                }
            }
            bits
        };
        let sealed = vol.is_sealed();
        for block in 0..vol.geo.table_blocks {
            let (base_at, live_at) = (
                vol.table_block_offset(Tree::Base, block),
                vol.table_block_offset(Tree::Live, block),
            );
            let base = vol
                .cache
                .get(&mut vol.dev, base_at, BLOCK_SIZE, Some(TABLE_BLOCK))?
                .to_vec();
            if !sealed && base.iter().any(|&b| b != 0) {
                self.problem(
                    format!("base table block {block} is not empty on an unsealed volume"),
                    None,
                    false,
                );
                continue;
            }
            if !sealed || changed.contains(&block) {
                continue;
            }
            let live = vol
                .cache
                .get(&mut vol.dev, live_at, BLOCK_SIZE, Some(TABLE_BLOCK))?;
            if live[..BLOCK_SIZE - 4] != base[..BLOCK_SIZE - 4] {
                // Rewriting any entry of the block with its own value marks it changed.
                let first = block * ENTRIES_PER_BLOCK;
                let value = vol.entry(Tree::Live, first)?;
                let fixed = self.repair && vol.set_live(first, value).is_ok();
                self.problem(
                    format!(
                        "live table block {block} differs from the base but is not marked changed"
                    ),
                    None,
                    fixed,
                );
            }
        }
        Ok(())
    }
}
