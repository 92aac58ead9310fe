//! Issue 19: the driver's threads interleaved by ntsim's deterministic scheduler
//! (`ntsim::sched`). Each scenario is a machine set up on the test thread, a few simulated
//! threads (user requests, the lazy writer, the page writers) and an end check (nothing
//! leaked, fsck clean, the bytes and statuses a user relies on). Each is explored for
//! `COWFAT_SCHEDULES` schedules (1,000 by default: half seeded random with bounded
//! preemptions, half PCT), and any failure prints its replay command.
//!
//! Longer run: `COWFAT_SCHEDULES=20000 cargo test -p ntsim --test nt_19_concurrency`.
//! Replay one schedule: `COWFAT_SCHED_REPLAY=pct3:<seed> cargo test -p ntsim --test
//! nt_19_concurrency <test>`; `NT19_TRACE=1` prints the trace of IRPs and callbacks at the end
//! check (with a replay, the failing schedule's).

mod common;
mod nt19;

use nt19::*;

#[test]
fn nt_19_close_race_while_the_lazy_writer_flushes() {
    explore("close race (seed 000)", 0x19_000, close_race);
}

#[test]
fn nt_19_purge_vs_lazy_write() {
    explore("purge vs lazy write", 0x19_001, purge_vs_lazy_write);
}

#[test]
fn nt_19_rename_vs_create_in_one_directory() {
    explore("rename vs create", 0x19_002, rename_vs_create);
}

#[test]
fn nt_19_truncate_vs_paging_write() {
    explore(
        "truncate vs paging write",
        0x19_003,
        truncate_vs_paging_write,
    );
}

/// Found by the explorer, fixed: the commit flushed the file and then purged its cache; a
/// store through a writable view that landed between the two, followed by the unmap, was
/// discarded by the purge (the live file ended `1234`, not `x234`). The commit now refuses a
/// writably mapped file before it flushes. Replay:
/// `COWFAT_SCHED_REPLAY=pct3:4458916128544651717`.
#[test]
fn nt_19_seed_004_commit_vs_mapped_writer_and_reader() {
    explore(
        "seed 004: commit vs mapped writer and reader",
        0x19_006,
        seed_004_commit_vs_mapped_writer,
    );
}

#[test]
fn nt_19_dismount_vs_io_on_an_open_handle() {
    explore("dismount vs open handle", 0x19_004, dismount_vs_open_handle);
}

/// The races the explorer found here are described on `nt19::dismount_vs_open`: a
/// use-after-free of the VCB (`random3:976609347176590995`) and a leaked VCB
/// (`pct3:11198024342832739665`), both fixed.
#[test]
fn nt_19_dismount_vs_open() {
    explore("dismount vs open", 0x19_004, dismount_vs_open);
}

#[test]
fn nt_19_disposition_vs_cleanup() {
    explore("disposition vs cleanup", 0x19_005, disposition_vs_cleanup);
}

/// Found by the explorer, fixed: the lock's flush passed over a page the lazy writer was
/// writing at that moment, the purge then dropped it, and the dismount that followed failed
/// that write, so the page's bytes never reached the disk. The lock and the dismount now wait
/// for paging writers between the flush and the purge. Replay:
/// `COWFAT_SCHED_REPLAY=random3:12181777471739578785`. (The same scenario found ntsim deleting
/// a section under the lazy writer, which Cc does not do: `random3:5015597919277453773`,
/// `pct3:5360898657707173684`.)
#[test]
fn nt_19_volume_lock_vs_open() {
    explore("volume lock vs open", 0x19_007, volume_lock_vs_open);
}
