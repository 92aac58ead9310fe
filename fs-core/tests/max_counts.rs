//! Every count field of the on-disk structures at its maximum (the largest value of its type,
//! and the largest the geometry accepts), one at a time and all at once, on a 4 GiB volume:
//! mount, walk, fsck and fsck --repair stay under 64 MiB of heap each, and never panic.
//! The heap is measured by a counting allocator; this binary holds one test so that nothing
//! else allocates while it measures.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::edit;
use fs_core::layout::Geometry;
use fs_core::ondisk::record::RECORD_SIZE;
use fs_core::{DirCursor, FileKind, MemDevice, Volume};

const CAP: usize = 64 << 20;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: GlobalAlloc::alloc's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: as alloc.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from System with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new);
        // SAFETY: as dealloc; `new` is the caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns the most heap it held at once beyond what was live before.
fn peak_of(f: impl FnOnce()) -> usize {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - before
}

fn walk(vol: &mut Volume<MemDevice>) {
    let Ok(root) = vol.root() else { return };
    let mut queue = vec![root];
    while let Some(dir) = queue.pop() {
        let Ok((entries, _)) = vol.read_dir(dir, &DirCursor::start(), usize::MAX) else {
            continue;
        };
        for e in entries {
            if e.info.kind == FileKind::Directory {
                queue.push(e.info.id);
            } else {
                let mut buf = vec![0u8; 1 << 20];
                let _ = vol.read(e.info.id, 0, &mut buf);
                let _ = vol.read(e.info.id, e.info.file_size.saturating_sub(4096), &mut buf);
            }
        }
    }
}

type Step = (&'static str, Box<dyn Fn(MemDevice)>);

/// Mount read-only and walk, fsck, fsck --repair, mount writable and walk: each under the cap.
fn exercise(name: &str, dev: &MemDevice) {
    let steps: [Step; 4] = [
        (
            "read-only mount and walk",
            Box::new(|d| {
                if let Ok(mut vol) = Volume::mount(d, common::opts().read_only()) {
                    walk(&mut vol);
                }
            }),
        ),
        (
            "fsck",
            Box::new(|d| drop(fs_core::fsck::check(d, false, &mut |_, _| {}))),
        ),
        (
            "fsck --repair",
            Box::new(|d| drop(fs_core::fsck::check(d, true, &mut |_, _| {}))),
        ),
        (
            "writable mount and walk",
            Box::new(|d| {
                if let Ok(mut vol) = Volume::mount(d, common::opts()) {
                    walk(&mut vol);
                }
            }),
        ),
    ];
    for (step, run) in steps {
        let d = dev.clone();
        let peak = peak_of(|| run(d));
        assert!(
            peak < CAP,
            "{name}: {step} held {peak} bytes at once (cap {CAP})"
        );
        eprintln!("{name}: {step}: peak {} KiB", peak >> 10);
    }
}

type Edit = Box<dyn Fn(&mut MemDevice)>;

fn boot_field(f: impl Fn(&mut fs_core::ondisk::boot::RawBoot) + 'static) -> Edit {
    Box::new(move |dev| {
        let mut boot = edit::boot(dev);
        f(&mut boot);
        edit::put_boot(dev, &boot);
    })
}

fn state_field(f: impl Fn(&mut fs_core::ondisk::state::RawState) + 'static) -> Edit {
    Box::new(move |dev| {
        let mut state = edit::state(dev);
        f(&mut state);
        edit::put_state(dev, &state);
    })
}

/// Sets a number of every in-use record of the live record table's first cluster.
fn every_record(geo: &Geometry, field: usize, width: usize, value: u64) -> Edit {
    let geo = geo.clone();
    Box::new(move |dev| {
        for n in 1..(geo.cluster_size() as usize / RECORD_SIZE) as u32 {
            let Some(at) = edit::record_offset(&geo, dev, n) else {
                return;
            };
            if edit::get_number(dev, at, 2) & 1 != 0 {
                edit::put_number(dev, at + field as u64, width, value);
                edit::seal_record(dev, at);
            }
        }
    })
}

/// Sets a number in the journal's first descriptor block, keeping the transaction valid.
fn journal_field(geo: &Geometry, field: u64, width: usize, value: u64) -> Edit {
    let geo = geo.clone();
    Box::new(move |dev| {
        edit::put_number(dev, geo.journal_offset + field, width, value);
        edit::reseal_journal(dev, &geo);
    })
}

/// Sets the name length and slot count of every entry set in the root's first cluster.
fn every_dirent(geo: &Geometry, field: u64, value: u64) -> Edit {
    let geo = geo.clone();
    Box::new(move |dev| {
        let Some(at) = edit::first_data_cluster(&geo, dev, 1) else {
            return;
        };
        for slot in 0..u64::from(geo.cluster_size()) / 32 {
            let p = at + slot * 32;
            if edit::read(dev, p, 1)[0] == 0x81 {
                edit::put_number(dev, p + field, 1, value);
                if p + 32 * (1 + edit::get_number(dev, p + 1, 1)) <= at + 4096 {
                    edit::seal_dirent(dev, p);
                }
            }
        }
    })
}

#[test]
fn every_count_field_at_its_maximum_stays_under_64_mib() {
    // 1 Mi clusters. (On much larger volumes fsck's own working set, one bit per cluster
    // and the metadata cache of up to 64 MiB of clean blocks, passes the cap by itself.)
    const SIZE: u64 = 4 << 30;
    let mut vol = common::mount(common::formatted(SIZE, 4096));
    common::mkdir(&mut vol, "/d");
    for i in 0..8 {
        common::create_file(&mut vol, &format!("/d/f{i}"), &common::pattern(i, 10_000));
    }
    vol.seal().expect("seal");
    common::create_file(&mut vol, "/after-seal", b"overlay");
    let with_journal = vol.unmount().expect("unmount");
    let geo = edit::geometry(&with_journal);
    let mut base = with_journal.clone();
    edit::drop_journal(&mut base);

    let clusters = u64::from(geo.cluster_count);
    let journal_blocks = geo.journal_size / 4096;
    let volume_blocks = geo.volume_size & !4095;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "boot cluster count",
            boot_field(|b| b.cluster_count.set(u32::MAX)),
        ),
        (
            "boot table blocks",
            boot_field(|b| b.table_blocks.set(u32::MAX)),
        ),
        (
            "boot diff blocks",
            boot_field(|b| b.diff_blocks.set(u32::MAX)),
        ),
        (
            "boot journal size (type)",
            boot_field(|b| b.journal_size.set(!4095)),
        ),
        (
            "boot journal size (volume)",
            boot_field(move |b| b.journal_size.set(volume_blocks - 8192)),
        ),
        (
            "boot volume size",
            boot_field(|b| b.volume_size.set(u64::MAX)),
        ),
        (
            "state live record clusters (type)",
            state_field(|s| s.live_records_clusters.set(u32::MAX)),
        ),
        (
            "state live record clusters (volume)",
            state_field(move |s| s.live_records_clusters.set(clusters as u32)),
        ),
        (
            "state base record clusters (type)",
            state_field(|s| s.base_records_clusters.set(u32::MAX)),
        ),
        (
            "state base record clusters (volume)",
            state_field(move |s| s.base_records_clusters.set(clusters as u32)),
        ),
        (
            "state used counters (type)",
            state_field(|s| {
                s.live_used.set(u64::MAX);
                s.base_used.set(u64::MAX);
                s.both_used.set(u64::MAX);
            }),
        ),
        (
            "state used counters (volume)",
            state_field(move |s| {
                s.live_used.set(clusters);
                s.base_used.set(clusters);
                s.both_used.set(clusters);
            }),
        ),
        (
            "state label length",
            state_field(|s| s.label_len.set(u32::MAX)),
        ),
        (
            "state journal sequence",
            state_field(|s| s.journal_seq.set(u64::MAX)),
        ),
        (
            "record cluster count (type)",
            every_record(&geo, 32, 8, u64::MAX),
        ),
        (
            "record cluster count (volume)",
            every_record(&geo, 32, 8, clusters),
        ),
        ("record file size", every_record(&geo, 16, 8, u64::MAX)),
        (
            "record valid data length",
            every_record(&geo, 24, 8, u64::MAX),
        ),
        ("directory entry name length", every_dirent(&geo, 2, 255)),
        ("directory entry slot count", every_dirent(&geo, 1, 255)),
    ];
    let journal_cases: Vec<(&str, Edit)> = vec![
        (
            "journal descriptor blocks (type)",
            journal_field(&geo, 20, 4, u64::from(u32::MAX)),
        ),
        (
            "journal descriptor blocks (16 bits)",
            journal_field(&geo, 20, 4, 0xFFFF),
        ),
        (
            "journal descriptor blocks (journal)",
            journal_field(&geo, 20, 4, journal_blocks - 1),
        ),
        (
            "journal descriptors in a block (type)",
            journal_field(&geo, 24, 4, u64::from(u32::MAX)),
        ),
        (
            "journal descriptors in a block (block)",
            journal_field(&geo, 24, 4, 253),
        ),
        (
            "journal descriptor length (type)",
            journal_field(&geo, 40, 4, u64::from(u32::MAX)),
        ),
        (
            "journal descriptor length (cluster)",
            journal_field(&geo, 40, 4, 64 << 10),
        ),
    ];
    exercise("unedited", &base);
    let mut all = base.clone();
    for (name, apply) in &cases {
        let mut dev = base.clone();
        apply(&mut dev);
        exercise(name, &dev);
        apply(&mut all);
    }
    exercise("every count at once", &all);
    let mut all = with_journal.clone();
    for (name, apply) in &journal_cases {
        let mut dev = with_journal.clone();
        apply(&mut dev);
        exercise(name, &dev);
        apply(&mut all);
    }
    exercise("every journal count at once", &all);
}
