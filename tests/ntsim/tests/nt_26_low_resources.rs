//! NT-26: pool can run out. Driver Verifier's low-resources simulation, exhaustively: a
//! create/write/non-cached I/O/directory listing/map/read/rename/delete/close scenario, then
//! flushes, a seal, per-file and volume overlay commits and discards, a dismount and a
//! remount, runs once with pool (or heap) allocation N failed, for every N the scenario
//! reaches. Every run returns clean statuses (success or
//! `STATUS_INSUFFICIENT_RESOURCES`), never bug-checks, leaks nothing, and the volume checks
//! clean after the dismount. Paging writes make progress with every allocation failing.
//!
//! `COWFAT_LOW_RESOURCES_SEEDS=N` adds N seeded runs that fail allocations at random (5%)
//! over a longer scenario (the default run does 8; tests/ntsim/README.md).

mod common;
use common::*;

use cowfat_fsctl::{
    FSCTL_COWFAT_COMMIT_FILE, FSCTL_COWFAT_COMMIT_VOLUME, FSCTL_COWFAT_DISCARD_FILE,
    FSCTL_COWFAT_DISCARD_VOLUME, FSCTL_COWFAT_SEAL_VOLUME,
};
use ntsim::requests::dir_flags::SL_RESTART_SCAN;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_STATE,
};

const PAGE: usize = 4096;
const RENAME: i32 = windows_sys::Wdk::Storage::FileSystem::FileRenameInformation;
const DISPOSITION: i32 = windows_sys::Wdk::Storage::FileSystem::FileDispositionInformation;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// Records each status; a status other than success or no-resources fails the run.
#[derive(Default)]
struct Run {
    statuses: Vec<(&'static str, NTSTATUS)>,
    /// A seal succeeded (in this or an earlier pass): overlay requests must then work.
    sealed: bool,
    /// `\\over` was created (in this or an earlier pass), and was when the seal succeeded:
    /// only a file in the base has an overlay of its own to commit or discard.
    over_exists: bool,
    over_in_base: bool,
}

impl Run {
    fn note<T>(&mut self, what: &'static str, result: Result<T, NTSTATUS>) -> Option<T> {
        match result {
            Ok(v) => {
                self.statuses.push((what, 0));
                Some(v)
            }
            Err(s) => {
                self.statuses.push((what, s));
                None
            }
        }
    }

    fn status(&mut self, what: &'static str, status: NTSTATUS) -> bool {
        self.statuses.push((what, status));
        status >= 0
    }

    /// An overlay request's status: before any seal succeeded, `STATUS_INVALID_DEVICE_STATE`
    /// is the right answer (an earlier step ran out of memory) and counts as clean.
    fn overlay(&mut self, what: &'static str, status: NTSTATUS) -> bool {
        let status = match status {
            STATUS_INVALID_DEVICE_STATE if !self.sealed => STATUS_INSUFFICIENT_RESOURCES,
            s => s,
        };
        self.status(what, status)
    }

    fn unclean(&self) -> Vec<(&'static str, NTSTATUS)> {
        self.statuses
            .iter()
            .copied()
            .filter(|(_, s)| *s < 0 && *s != STATUS_INSUFFICIENT_RESOURCES)
            .collect()
    }
}

/// The scenario; every handle, view and section it opens is closed again.
fn scenario(sim: &mut Sim, run: &mut Run) {
    let open = Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN_IF);
    let Some(h) = run.note("create", sim.create("\\lowres", &open)) else {
        return;
    };
    let data = pattern(1, 2 * PAGE + 100);
    if run.note("write", sim.write(h, Some(0), &data)).is_some() {
        if let Some(got) = run.note("read", sim.read(h, 0, data.len())) {
            assert_eq!(got, data, "a successful read returns the written bytes");
        }
    }
    // Non-cached I/O locks the caller's buffer with an MDL (IoAllocateMdl can fail too).
    let nc = Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN)
        .no_buffering();
    if let Some(n) = run.note("open non-cached", sim.create("\\lowres", &nc)) {
        let sector = pattern(2, 512);
        if run
            .note("non-cached write", sim.write(n, Some(512), &sector))
            .is_some()
        {
            if let Some(got) = run.note("non-cached read", sim.read(n, 512, 512)) {
                assert_eq!(
                    got, sector,
                    "a successful non-cached read returns the bytes"
                );
            }
        }
        sim.close(n);
    }
    // A directory listing of the root (fs-core's read_dir and the driver's dirctrl).
    let dir = Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN)
        .options(options::FILE_DIRECTORY_FILE);
    if let Some(d) = run.note("open root", sim.create("\\", &dir)) {
        let (status, _) = sim.query_directory(d, 1, 4096, None, SL_RESTART_SCAN, 0);
        run.status("query directory", status);
        sim.close(d);
    }
    if let Some(section) = run.note("section", sim.create_section(h, false)) {
        if let Some(view) = run.note("map", sim.map_view(section, 0, PAGE as u64)) {
            run.note("view read", sim.view_read(view, 0, 16));
            sim.unmap_view(view);
        }
        sim.close_section(section);
    }
    if run.status("rename", sim.rename(h, RENAME, "\\lowres2", 0)) {
        let _ = run.status("delete", sim.set_information(h, DISPOSITION, &[1]));
    }
    sim.close(h);
    overlay_and_remount(sim, run);
}

/// Flushes, the overlay FSCTLs (fs-core's journal commits, overlay commit and discard), a
/// dismount and a remount.
fn overlay_and_remount(sim: &mut Sim, run: &mut Run) {
    let open = Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN_IF);
    // In the base once sealed: only such a file has an overlay of its own to commit.
    if let Some(h) = run.note("create over", sim.create("\\over", &open)) {
        run.over_exists = true;
        run.note("write base", sim.write(h, Some(0), &pattern(7, PAGE)));
        sim.close(h);
    }
    if let Ok(volume) = sim.open_volume() {
        // A label (FileFsLabelInformation), then FileFsVolumeInformation, which returns it.
        let units: Vec<u8> = "LOWRES".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut label = (units.len() as u32).to_le_bytes().to_vec();
        label.extend(&units);
        run.status("set label", sim.set_volume_information(volume, 2, &label));
        let (status, _) = sim.query_volume_information(volume, 1, 512);
        run.status("volume information", status);
        run.status("volume flush", sim.flush(volume));
        sim.close(volume);
    }
    match sim.volume_fsctl(FSCTL_COWFAT_SEAL_VOLUME) {
        s if s >= 0 => {
            run.sealed = true;
            run.over_in_base = run.over_exists;
            run.status("seal", s);
        }
        // An earlier pass sealed the volume.
        STATUS_INVALID_DEVICE_STATE if run.sealed => {}
        s => {
            run.status("seal", s);
        }
    }
    if let Some(h) = run.note("open over", sim.create("\\over", &open)) {
        let first = pattern(3, PAGE);
        if run
            .note("write over", sim.write(h, Some(0), &first))
            .is_some()
            && run.status("flush", sim.flush(h))
            && run.over_in_base
            && run.overlay("commit file", sim.fsctl_status(h, FSCTL_COWFAT_COMMIT_FILE))
        {
            let second = pattern(4, PAGE);
            if run
                .note("write over 2", sim.write(h, Some(0), &second))
                .is_some()
                && run.overlay(
                    "discard file",
                    sim.fsctl_status(h, FSCTL_COWFAT_DISCARD_FILE),
                )
            {
                if let Some(got) = run.note("read over", sim.read(h, 0, PAGE)) {
                    assert_eq!(got, first, "a discard goes back to the committed bytes");
                }
            }
        }
        run.note(
            "write over 3",
            sim.write(h, Some(PAGE as u64), &pattern(5, 100)),
        );
        sim.close(h);
    }
    run.overlay(
        "commit volume",
        sim.volume_fsctl(FSCTL_COWFAT_COMMIT_VOLUME),
    );
    if let Some(h) = run.note("create over 2", sim.create("\\over", &open)) {
        run.note("write over 4", sim.write(h, Some(0), &pattern(6, 200)));
        sim.close(h);
    }
    run.overlay(
        "discard volume",
        sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
    );
    if run.status("dismount", sim.dismount()) {
        run.status("remount", sim.mount());
    }
}

/// Which allocator a run fails.
#[derive(Clone, Copy, Debug)]
enum Allocator {
    /// ExAllocatePool2 / IoAllocateMdl.
    Pool,
    /// The driver's Rust heap (pool on the image; ntsim::heap here).
    Heap,
}

/// One run with allocation `n` of `which` failed: the statuses and how many allocations it
/// reached.
fn run_failing(which: Allocator, n: u64) -> (Run, u64) {
    let mut sim = Sim::new();
    match which {
        Allocator::Pool => sim.fail_pool_allocation(Some(n)),
        Allocator::Heap => sim.fail_heap_allocation(Some(n)),
    }
    let mut run = Run::default();
    scenario(&mut sim, &mut run);
    let (attempts, _) = match which {
        Allocator::Pool => sim.pool_fault_counts(),
        Allocator::Heap => sim.heap_fault_counts(),
    };
    sim.fail_pool_allocation(None);
    sim.fail_heap_allocation(None);
    let (leaks, medium) = sim.finish_keeping_medium();
    assert!(
        leaks.is_empty(),
        "{which:?} allocation {n} failed: leaked {leaks:?}"
    );
    let (report, _) = fs_core::fsck::check(medium, false, &mut |_, _| {}).unwrap_or_else(|e| {
        panic!("{which:?} allocation {n} failed: the volume does not check: {e}")
    });
    assert!(
        report.is_clean(),
        "{which:?} allocation {n} failed: fsck {:#?}",
        report.problems
    );
    (run, attempts)
}

#[test]
fn nt_26_every_failed_pool_allocation_gives_a_clean_status() {
    every_failed_allocation_gives_a_clean_status(Allocator::Pool);
}

#[test]
fn nt_26_every_failed_heap_allocation_gives_a_clean_status() {
    every_failed_allocation_gives_a_clean_status(Allocator::Heap);
}

fn every_failed_allocation_gives_a_clean_status(which: Allocator) {
    let mut n = 1;
    loop {
        let (run, attempts) = run_failing(which, n);
        assert!(
            run.unclean().is_empty(),
            "{which:?} allocation {n} failed: {:x?} in {:x?}",
            run.unclean(),
            run.statuses
        );
        if attempts < n {
            // The scenario no longer reaches allocation n: every one has been failed once.
            assert!(
                n > 2,
                "the scenario allocates {which:?} (reached {attempts})"
            );
            // Every allocation was failed once, none left alone: an infallible site would
            // have aborted the test binary.
            eprintln!("{which:?}: {} allocations, each failed once", n - 1);
            break;
        }
        n += 1;
    }
}

#[test]
fn nt_26_paging_writes_succeed_while_every_allocation_fails() {
    paging_writes_succeed_while_every_allocation_fails(false);
}

/// The same on a sealed volume: the file's clusters are the base's, so the first paging
/// write into each copies it to the overlay (a new cluster, the chain and the record
/// relinked) with no allocation either.
#[test]
fn nt_26_paging_writes_into_a_sealed_file_succeed_while_every_allocation_fails() {
    paging_writes_succeed_while_every_allocation_fails(true);
}

fn paging_writes_succeed_while_every_allocation_fails(sealed: bool) {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\paging");
    let data = pattern(9, 3 * PAGE);
    assert_eq!(sim.write(h, Some(0), &data), Ok(data.len()));
    if sealed {
        sim.lazy_writer();
        assert_eq!(sim.volume_fsctl(FSCTL_COWFAT_SEAL_VOLUME), 0, "seal");
    }
    let section = sim.create_section(h, true).expect("section");
    let view = sim.map_view(section, 0, 3 * PAGE as u64).expect("view");
    sim.view_write(view, PAGE as u64, b"mapped")
        .expect("view write");
    // A dirty page in the cache too (the seal flushed and purged the cache): the lazy
    // writer writes it, the modified page writer the mapped one.
    assert_eq!(sim.write(h, Some(2 * PAGE as u64), b"cached"), Ok(6));
    // From here every pool allocation fails: the lazy writer and the modified page writer
    // must still write the dirty pages (they are how memory comes back).
    sim.fail_pool_randomly(1_000_000, 1);
    sim.fail_every_heap_allocation(true);
    let (attempts_before, _) = sim.pool_fault_counts();
    sim.take_trace();
    sim.lazy_writer();
    sim.modified_page_writer();
    let trace = sim.take_trace();
    // Not one pool or heap request on the way: the paging path cannot depend on one.
    let (attempts_after, _) = sim.pool_fault_counts();
    let (heap_attempts, _) = sim.heap_fault_counts();
    sim.fail_every_heap_allocation(false);
    assert_eq!(
        attempts_after, attempts_before,
        "the paging writes asked for pool"
    );
    assert_eq!(heap_attempts, 0, "the paging writes asked for heap");
    let failed_writes: Vec<_> = trace
        .iter()
        .filter(|e| matches!(e, Event::Completed { major: 4, status, .. } if *status < 0))
        .collect();
    assert!(failed_writes.is_empty(), "{failed_writes:#?}");
    assert!(
        paging_irps(&trace, mj::WRITE).len() >= 2,
        "both writers wrote: {trace:#?}"
    );
    sim.fail_pool_randomly(0, 0);
    sim.unmap_view(view);
    sim.close_section(section);
    sim.close(h);
    let mut want = data;
    want[PAGE..PAGE + 6].copy_from_slice(b"mapped");
    want[2 * PAGE..2 * PAGE + 6].copy_from_slice(b"cached");
    let mut vol = finish_and_mount_read_only(sim);
    let id = vol.resolve("\\paging").expect("file");
    let mut got = vec![0u8; want.len()];
    vol.read(id, 0, &mut got).expect("read");
    assert_eq!(got, want, "the paging writes reached the disk");
    if sealed {
        let status = vol.overlay_status(id).expect("overlay status");
        assert_eq!(
            status.overlay_clusters, 2,
            "both written clusters were copied to the overlay: {status:?}"
        );
    }
}

#[test]
fn nt_26_random_pool_failures_keep_the_volume_consistent() {
    let seeds: u64 = std::env::var("COWFAT_LOW_RESOURCES_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in 0..seeds {
        let mut sim = Sim::new();
        sim.fail_pool_randomly(50_000, seed);
        let mut run = Run::default();
        for _ in 0..4 {
            scenario(&mut sim, &mut run);
        }
        sim.fail_pool_randomly(0, 0);
        assert!(
            run.unclean().is_empty(),
            "seed {seed}: {:x?}",
            run.unclean()
        );
        let (leaks, medium) = sim.finish_keeping_medium();
        assert!(leaks.is_empty(), "seed {seed}: leaked {leaks:?}");
        let (report, _) = fs_core::fsck::check(medium, false, &mut |_, _| {}).expect("fsck");
        assert!(report.is_clean(), "seed {seed}: {:#?}", report.problems);
    }
}

/// A page written through a view beyond the valid data length: its paging write first zeroes
/// the gap from the valid data length (NT-26: from static zeros, with every allocation
/// failing), and the bytes read back are the zeros and the page.
#[test]
fn nt_26_a_paging_write_past_valid_data_zeroes_the_gap_while_every_allocation_fails() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\gap");
    let data = pattern(5, 2 * PAGE);
    assert_eq!(sim.write(h, Some(0), &data), Ok(data.len()));
    let size = 6 * PAGE as u64;
    let eof = i64::try_from(size).expect("size").to_le_bytes();
    assert_eq!(
        sim.set_information(
            h,
            windows_sys::Wdk::Storage::FileSystem::FileEndOfFileInformation,
            &eof
        ),
        0,
        "extend"
    );
    let section = sim.create_section(h, true).expect("section");
    let view = sim.map_view(section, 0, size).expect("view");
    sim.view_write(view, 5 * PAGE as u64, b"beyond")
        .expect("view write");
    sim.lazy_writer();
    sim.fail_pool_randomly(1_000_000, 1);
    sim.fail_every_heap_allocation(true);
    let (pool_before, _) = sim.pool_fault_counts();
    sim.take_trace();
    sim.modified_page_writer();
    let trace = sim.take_trace();
    let (pool_after, _) = sim.pool_fault_counts();
    let (heap_attempts, _) = sim.heap_fault_counts();
    sim.fail_every_heap_allocation(false);
    sim.fail_pool_randomly(0, 0);
    assert_eq!(pool_after, pool_before, "the paging write asked for pool");
    assert_eq!(heap_attempts, 0, "the paging write asked for heap");
    let writes = paging_irps(&trace, mj::WRITE);
    assert!(!writes.is_empty(), "the page writer wrote: {trace:#?}");
    let failed: Vec<_> = trace
        .iter()
        .filter(|e| matches!(e, Event::Completed { major: 4, status, .. } if *status < 0))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    sim.unmap_view(view);
    sim.close_section(section);
    sim.close(h);
    let mut vol = finish_and_mount_read_only(sim);
    let id = vol.resolve("\\gap").expect("file");
    let mut got = vec![0xAAu8; 6 * PAGE];
    vol.read(id, 0, &mut got).expect("read");
    let mut want = data;
    want.resize(6 * PAGE, 0);
    want[5 * PAGE..5 * PAGE + 6].copy_from_slice(b"beyond");
    assert_eq!(got, want, "zeros up to the page, then the page");
}

/// The end of a paging scenario: nothing leaked, fsck clean, the medium mounted read-only by
/// fs-core to read back what the paging writes stored.
fn finish_and_mount_read_only(sim: Sim) -> fs_core::Volume<fs_core::MemDevice> {
    let (leaks, medium) = sim.finish_keeping_medium();
    assert!(leaks.is_empty(), "{leaks:?}");
    let (report, image) = fs_core::fsck::check(medium, false, &mut |_, _| {}).expect("fsck");
    assert!(report.is_clean(), "{:#?}", report.problems);
    let options = fs_core::MountOptions::new(Box::new(fs_core::time::FixedClock(
        fs_core::time::NtTime(0),
    )))
    .read_only();
    fs_core::Volume::mount(image, options).expect("mount")
}
