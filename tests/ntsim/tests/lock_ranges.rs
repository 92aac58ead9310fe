//! Byte-range locks (issue 7) through the FsRtl file lock package: conflicting ranges refused
//! with `STATUS_LOCK_NOT_GRANTED`, reads and writes into another owner's range refused with
//! `STATUS_FILE_LOCK_CONFLICT` (paging I/O never), unlock single, and release at cleanup.

mod common;
use common::*;

use windows_sys::Win32::Foundation::{
    STATUS_FILE_LOCK_CONFLICT, STATUS_LOCK_NOT_GRANTED, STATUS_RANGE_NOT_LOCKED,
};

#[test]
fn lock_conflicts_on_lock_read_and_write() {
    let mut sim = Sim::new();
    let a = open_rw(&mut sim, "\\locked");
    let b = open_rw(&mut sim, "\\locked");
    sim.write(a, Some(0), &filled(b'a', 1000)).expect("write");
    assert_eq!(sim.lock(a, 0, 100, 0, true), status::STATUS_SUCCESS);
    assert_eq!(sim.lock(b, 50, 10, 0, false), STATUS_LOCK_NOT_GRANTED);
    assert_eq!(
        sim.lock(b, 100, 10, 0, true),
        status::STATUS_SUCCESS,
        "adjacent range"
    );
    assert_eq!(sim.read(b, 50, 10), Err(STATUS_FILE_LOCK_CONFLICT));
    assert_eq!(sim.write(b, Some(99), b"x"), Err(STATUS_FILE_LOCK_CONFLICT));
    assert_eq!(
        sim.read(a, 50, 10).map(|v| v.len()),
        Ok(10),
        "the owner reads"
    );
    assert_eq!(sim.write(a, Some(0), b"own"), Ok(3), "the owner writes");
    assert_eq!(
        sim.read(b, 200, 10).map(|v| v.len()),
        Ok(10),
        "outside the range"
    );
    // Shared locks: others may read but nobody may write, the owner included.
    assert_eq!(sim.lock(a, 200, 100, 0, false), status::STATUS_SUCCESS);
    assert_eq!(sim.lock(b, 250, 10, 0, false), status::STATUS_SUCCESS);
    assert_eq!(sim.read(b, 250, 10).map(|v| v.len()), Ok(10));
    assert_eq!(
        sim.write(b, Some(250), b"w"),
        Err(STATUS_FILE_LOCK_CONFLICT)
    );
    assert_eq!(
        sim.write(a, Some(210), b"w"),
        Err(STATUS_FILE_LOCK_CONFLICT)
    );
    // Unlock single.
    assert_eq!(sim.unlock(a, 0, 100, 0), status::STATUS_SUCCESS);
    assert_eq!(sim.unlock(a, 0, 100, 0), STATUS_RANGE_NOT_LOCKED);
    assert_eq!(sim.read(b, 50, 10).map(|v| v.len()), Ok(10));
    // Paging I/O ignores locks: the lazy writer writes a's dirty page under b's lock.
    sim.take_trace();
    sim.lazy_writer();
    assert_eq!(paging_irps(&sim.trace(), mj::WRITE), vec![(0, 4096)]);
    sim.close(a);
    sim.close(b);
    finish_clean(sim);
}

#[test]
fn lock_released_at_cleanup() {
    let mut sim = Sim::new();
    let a = open_rw(&mut sim, "\\held");
    let b = open_rw(&mut sim, "\\held");
    assert_eq!(sim.lock(a, 0, 4096, 7, true), status::STATUS_SUCCESS);
    assert_eq!(sim.lock(b, 0, 1, 0, true), STATUS_LOCK_NOT_GRANTED);
    let fa = sim.file_id(a);
    sim.close(a);
    assert!(sim.trace().contains(&Event::Kernel {
        name: "FsRtlFastUnlockAll",
        file: Some(fa)
    }));
    assert_eq!(
        sim.lock(b, 0, 1, 0, true),
        status::STATUS_SUCCESS,
        "a's locks went with its handle"
    );
    sim.close(b);
    finish_clean(sim);
}

#[test]
fn lock_fast_io_paths_agree_with_the_irp_path() {
    let mut sim = Sim::new();
    let a = open_rw(&mut sim, "\\fast");
    let b = open_rw(&mut sim, "\\fast");
    sim.write(a, Some(0), &filled(b'f', 100)).expect("write");
    assert_eq!(
        sim.fast_lock(a, 0, 10, 0, true),
        Some(status::STATUS_SUCCESS)
    );
    assert_eq!(
        sim.fast_lock(b, 5, 1, 0, false),
        Some(STATUS_LOCK_NOT_GRANTED)
    );
    assert_eq!(
        sim.lock(b, 5, 1, 0, false),
        STATUS_LOCK_NOT_GRANTED,
        "the IRP path sees the same lock"
    );
    assert_eq!(sim.read(b, 0, 10), Err(STATUS_FILE_LOCK_CONFLICT));
    assert_eq!(sim.fast_unlock(a, 0, 10, 0), Some(status::STATUS_SUCCESS));
    assert_eq!(sim.fast_unlock(a, 0, 10, 0), Some(STATUS_RANGE_NOT_LOCKED));
    assert_eq!(
        sim.fast_lock(a, 0, 10, 3, true),
        Some(status::STATUS_SUCCESS)
    );
    assert_eq!(
        sim.fast_lock(a, 20, 10, 4, true),
        Some(status::STATUS_SUCCESS)
    );
    assert_eq!(
        sim.fast_unlock_all(a, Some(3)),
        Some(status::STATUS_SUCCESS)
    );
    assert_eq!(
        sim.lock(b, 0, 10, 0, true),
        status::STATUS_SUCCESS,
        "key 3's lock went"
    );
    assert_eq!(
        sim.lock(b, 20, 1, 0, true),
        STATUS_LOCK_NOT_GRANTED,
        "key 4's stayed"
    );
    assert_eq!(sim.fast_unlock_all(a, None), Some(status::STATUS_SUCCESS));
    assert_eq!(sim.lock(b, 20, 1, 0, true), status::STATUS_SUCCESS);
    // Fast queries give the IRP path's bytes.
    for class in [4, 5, 34] {
        let fast = sim.fast_query(a, class).expect("fast query answered");
        assert_eq!(
            fast,
            sim.query_information(a, class, fast.1.len()),
            "class {class}"
        );
    }
    sim.close(a);
    sim.close(b);
    finish_clean(sim);
}
