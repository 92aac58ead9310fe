//! Issue 19: a test build of the driver with an inverted lock order
//! (`fs_driver::resrcsup::inverted_order`: FileDispositionInformation takes the FCB's main
//! resource before the VCB resource) must be caught by the explorer within the CI schedule
//! count, as a lock-order violation, and with the order check off as the deadlock it causes.
//! Its own binary: the switch is process-wide, and a halted schedule leaves its threads
//! parked inside the driver for the rest of the process.

mod common;
mod nt19;

use nt19::*;
use ntsim::sched::{self, FailureKind};

#[test]
fn nt_19_inverted_lock_order_is_found() {
    fs_driver::resrcsup::inverted_order::enable_for_test(true);
    let count = schedules();
    let order = sched::explore(
        "inverted order",
        count,
        0x19_0ff,
        PREEMPTIONS,
        PCT_DEPTH,
        disposition_vs_cleanup,
    );
    sched::set_order_checks(false);
    let deadlock = sched::explore(
        "inverted order, order check off",
        count,
        0x19_0ff,
        PREEMPTIONS,
        PCT_DEPTH,
        disposition_vs_cleanup,
    );
    sched::set_order_checks(true);
    fs_driver::resrcsup::inverted_order::enable_for_test(false);
    let order = order.expect_err("the explorer missed the inverted lock order");
    assert_eq!(order.kind, FailureKind::LockOrder, "{order}");
    assert!(
        order.report.contains("waits for the VCB resource"),
        "{order}"
    );
    println!(
        "inverted order found as a lock-order violation: replay {}",
        order.replay()
    );
    let deadlock = deadlock.expect_err("the explorer found no deadlock from the inversion");
    assert_eq!(deadlock.kind, FailureKind::Deadlock, "{deadlock}");
    assert!(deadlock.report.contains("FCB main resource"), "{deadlock}");
    println!(
        "inverted order found as a deadlock: replay {}\n{}",
        deadlock.replay(),
        deadlock.report
    );
}
