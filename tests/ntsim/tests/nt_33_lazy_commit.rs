//! NT-33: metadata becomes durable without anyone asking. Creates and renames nobody flushes
//! sit in fs-core's running transaction; the driver's lazy-commit timer (5 s, a DPC that
//! queues a work item) commits them. A power cut (the disk's volatile write cache lost, at
//! sampled points of what reached it) before the timer may take them; after the timer's
//! commit it takes nothing, and every image checks clean. Dismount stops the timer, and no
//! callback runs after the VCB is gone.

mod common;
use common::*;
use fs_core::crash::CrashPlan;
use fs_core::time::{FixedClock, NtTime};
use fs_core::{MemDevice, MountOptions, Volume};
use std::time::Duration;

const RENAME: i32 = windows_sys::Wdk::Storage::FileSystem::FileRenameInformation;
/// The driver's lazy commit period (`fs_driver::lazycommit::LAZY_COMMIT_PERIOD_MS`).
const PERIOD: Duration = Duration::from_millis(fs_driver::lazycommit::LAZY_COMMIT_PERIOD_MS as u64);

/// Which of `paths` exist in a crash image; the image must check clean.
fn present(image: &MemDevice, paths: &[&str], what: &str) -> Vec<bool> {
    let (report, image) = fs_core::fsck::check(image.clone(), false, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{what}: the crash image does not check: {e}"));
    assert!(
        report.is_clean(),
        "{what}: fsck found {:#?}",
        report.problems
    );
    let options = MountOptions::new(Box::new(FixedClock(NtTime(0)))).read_only();
    let mut vol = Volume::mount(image, options).expect("a clean image mounts");
    paths.iter().map(|p| vol.resolve(p).is_ok()).collect()
}

/// Every crash image a power cut now could leave: each checks clean; returns which of
/// `paths` each one holds.
fn power_cut(sim: &Sim, seed: u64, paths: &[&str], what: &str) -> Vec<Vec<bool>> {
    sim.disk_crash_images(&CrashPlan::quick(seed), seed)
        .iter()
        .enumerate()
        .map(|(n, image)| present(image, paths, &format!("{what}, state {n}")))
        .collect()
}

/// A mounted volume behind a write-caching disk, with one flushed file.
fn machine() -> Sim {
    let mut sim = Sim::new();
    assert_eq!(sim.mount(), status::STATUS_SUCCESS);
    sim.enable_disk_write_cache();
    let base = open_rw(&mut sim, "\\base");
    assert_eq!(sim.flush(base), status::STATUS_SUCCESS);
    sim.close(base);
    sim
}

/// Creates `\one` and `\two`, renames `\two` to `\three`; no flush.
fn unflushed_creates_and_rename(sim: &mut Sim) {
    let one = open_rw(sim, "\\one");
    sim.close(one);
    let two = open_rw(sim, "\\two");
    assert_eq!(
        sim.rename(two, RENAME, "\\three", 0),
        status::STATUS_SUCCESS
    );
    sim.close(two);
}

const PATHS: [&str; 4] = ["\\one", "\\two", "\\three", "\\base"];

#[test]
fn nt_33_lazy_commit_makes_unflushed_creates_and_renames_survive_a_power_cut() {
    let mut sim = machine();
    unflushed_creates_and_rename(&mut sim);

    // No timer yet: nothing is promised. The creates and the rename are in memory only, and
    // a power cut now loses them (every image still checks clean and holds \base).
    let before = power_cut(&sim, 1, &PATHS, "before the lazy commit");
    assert!(
        before.iter().all(|p| p[3]),
        "the flushed file is always there"
    );
    let lost = before.iter().filter(|p| !p[0] || !p[2]).count();
    assert_eq!(
        lost,
        before.len(),
        "without a commit the creates never reached the disk"
    );

    // Just short of the period nothing happens.
    sim.advance_time(PERIOD - Duration::from_millis(1));
    assert_eq!(sim.work_items_queued(), 0, "the timer has not expired");
    // The period: the DPC queues the commit; the worker thread runs it.
    sim.advance_time(Duration::from_millis(1));
    assert_eq!(sim.work_items_queued(), 1, "the DPC queued the commit");
    let flushes = sim.disk_flushes();
    assert_eq!(sim.run_work_items(), 1);
    assert!(sim.disk_flushes() > flushes, "the commit flushed the disk");

    // Now a power cut at any point takes nothing done before the commit.
    let after = power_cut(&sim, 2, &PATHS, "after the lazy commit");
    for p in &after {
        assert_eq!(
            p,
            &vec![true, false, true, true],
            "creates and rename are durable"
        );
    }
    println!(
        "NT-33 window: before the lazy commit {lost} of {} crash images lost the creates and \
         the rename; after it 0 of {}",
        before.len(),
        after.len()
    );

    // Later work waits for the next period: a power cut before it may take \four again.
    let four = open_rw(&mut sim, "\\four");
    sim.close(four);
    let pending = power_cut(&sim, 3, &["\\four", "\\three"], "after more work");
    assert!(pending.iter().all(|p| p[1]), "committed work stays");
    assert!(
        pending.iter().any(|p| !p[0]),
        "uncommitted work may be lost"
    );
    sim.advance_time(PERIOD);
    sim.run_work_items();
    let committed = power_cut(&sim, 4, &["\\four"], "after the next lazy commit");
    assert!(committed.iter().all(|p| p[0]));
    finish_clean(sim);
}

#[test]
fn nt_33_an_idle_volume_is_not_written_by_the_lazy_commit() {
    let mut sim = machine();
    let flushes = sim.disk_flushes();
    let medium = sim.medium().to_bytes();
    for _ in 0..3 {
        sim.advance_time(PERIOD);
        assert_eq!(sim.run_work_items(), 1, "the timer is periodic");
    }
    assert_eq!(
        sim.disk_flushes(),
        flushes,
        "nothing to commit, nothing sent to the disk"
    );
    assert!(sim.medium().to_bytes() == medium, "not a byte written");
    finish_clean(sim);
}

#[test]
fn nt_33_dismount_cancels_the_timer_and_outlives_a_queued_commit() {
    let mut sim = machine();
    assert_eq!(sim.timers_set(), 1, "the volume's lazy-commit timer runs");
    unflushed_creates_and_rename(&mut sim);
    sim.advance_time(PERIOD);
    assert_eq!(sim.work_items_queued(), 1);

    // Dismount while the commit is queued: unmount commits; the timer is cancelled; the VCB
    // and its device stay until the queued work item has run, which then tears them down.
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert_eq!(sim.timers_set(), 0, "dismount cancelled the timer");
    assert_eq!(
        sim.pool_blocks(b"IoWk"),
        2,
        "the VCB waits for its queued work item"
    );
    assert_eq!(sim.run_work_items(), 1);
    assert_eq!(
        sim.pool_blocks(b"IoWk"),
        0,
        "the work item tore the VCB down"
    );
    // Time goes on; no callback of the old volume runs (a DPC into the freed device
    // extension would have been caught when the device was deleted).
    sim.advance_time(PERIOD * 10);
    assert_eq!(sim.work_items_queued(), 0);
    let after = power_cut(&sim, 5, &PATHS, "after the dismount");
    for p in &after {
        assert_eq!(
            p,
            &vec![true, false, true, true],
            "the dismount committed everything"
        );
    }
    finish_clean(sim);
}
