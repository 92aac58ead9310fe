//! Volume FSCTLs (issue 7): FSCTL_LOCK_VOLUME fails while a file is open and while a view
//! is mapped (even with every handle closed, NT-08), succeeds after; while locked nothing
//! opens; FSCTL_UNLOCK_VOLUME and the locking handle's cleanup end it;
//! FSCTL_IS_VOLUME_MOUNTED.

mod common;
use common::*;

use windows_sys::Win32::Foundation::STATUS_NOT_LOCKED;

const FSCTL_LOCK_VOLUME: u32 = 0x0009_0018;
const FSCTL_UNLOCK_VOLUME: u32 = 0x0009_001C;
const FSCTL_IS_VOLUME_MOUNTED: u32 = 0x0009_0028;

#[test]
fn vol_lock_fails_while_a_file_is_open_and_succeeds_after() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\open");
    sim.write(h, Some(0), b"dirty").expect("write");
    let v = sim.open_volume().expect("volume");
    assert_eq!(
        sim.fsctl(v, FSCTL_IS_VOLUME_MOUNTED, &[], 0).0,
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_ACCESS_DENIED
    );
    sim.close(h);
    sim.take_trace();
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS
    );
    assert_eq!(
        paging_irps(&sim.trace(), mj::WRITE),
        vec![(0, 4096)],
        "the lock flushed the dirty page"
    );
    assert_eq!(
        sim.create("\\other", &Open::read_write()).err(),
        Some(status::STATUS_ACCESS_DENIED)
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_UNLOCK_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_UNLOCK_VOLUME, &[], 0).0,
        STATUS_NOT_LOCKED
    );
    let h = open_rw(&mut sim, "\\other");
    assert_eq!(sim.read(h, 0, 1), Err(status::STATUS_END_OF_FILE));
    sim.close(h);
    let r = sim
        .create(
            "\\open",
            &Open::read_write().disposition(disposition::FILE_OPEN),
        )
        .expect("open");
    assert_eq!(
        sim.read(r, 0, 5).as_deref(),
        Ok(&b"dirty"[..]),
        "flushed data survived the purge"
    );
    sim.close(r);
    sim.close(v);
    finish_clean(sim);
}

#[test]
fn vol_lock_fails_while_a_view_is_mapped_and_cleanup_unlocks() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\mapped");
    sim.write(h, Some(0), &filled(b'v', 4096)).expect("write");
    let section = sim.create_section(h, false).expect("section");
    let view = sim.map_view(section, 0, 0).expect("view");
    sim.close_section(section);
    sim.close(h);
    let v = sim.open_volume().expect("volume");
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_ACCESS_DENIED,
        "no handle is open, but a view still maps the file"
    );
    sim.unmap_view(view);
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS
    );
    let second = sim.open_volume();
    assert_eq!(
        second.err(),
        Some(status::STATUS_ACCESS_DENIED),
        "locked: even volume opens fail"
    );
    sim.close(v);
    let h = open_rw(&mut sim, "\\after");
    sim.close(h);
    finish_clean(sim);
}
