//! Issue 20 on the driver: online volume seal and commit while files are open with dirty
//! cached data, and a delete-on-close file whose dirty pages the lazy writer writes after
//! the name is gone. Afterwards the medium checks clean (nothing leaked to the base or left
//! unnamed) and holds what a user wrote before the commit.

mod common;
use common::*;

use cowfat_fsctl::{
    FSCTL_COWFAT_COMMIT_VOLUME, FSCTL_COWFAT_DISCARD_VOLUME, FSCTL_COWFAT_SEAL_VOLUME,
};
use fs_core::time::{FixedClock, NtTime};

/// Dismounts and checks the medium with fs-core's fsck, then the usual leak check.
fn finish_with_clean_medium(mut sim: Sim) -> fs_core::MemDevice {
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    let (report, medium) =
        fs_core::fsck::check(sim.medium(), false, &mut |_, _| {}).expect("the medium checks");
    assert!(report.is_clean(), "fsck found {:#?}", report.problems);
    finish_clean(sim);
    medium
}

#[test]
fn volume_commit_with_open_handles_keeps_the_dirty_cached_data_written_before_it() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\f");
    sim.write(h, Some(0), &filled(b'b', 8192)).expect("write");
    sim.lazy_writer();
    assert_eq!(
        sim.volume_fsctl(FSCTL_COWFAT_SEAL_VOLUME),
        status::STATUS_SUCCESS
    );
    // Dirty in the cache only: the lazy writer has not run.
    sim.write(h, Some(0), &filled(b'c', 4096)).expect("write");
    assert_eq!(
        sim.volume_fsctl(FSCTL_COWFAT_COMMIT_VOLUME),
        status::STATUS_SUCCESS
    );
    // After the commit: a change that the volume discard below must take away again.
    sim.write(h, Some(4096), &filled(b'd', 4096))
        .expect("write");
    sim.lazy_writer();
    sim.close(h);
    assert_eq!(
        sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
        status::STATUS_SUCCESS
    );
    let h = open_rw(&mut sim, "\\f");
    let mut committed = filled(b'c', 4096);
    committed.extend(filled(b'b', 4096));
    assert_eq!(sim.read(h, 0, 8192), Ok(committed));
    sim.close(h);
    finish_with_clean_medium(sim);
}

/// A delete-on-close file with dirty cached pages and a view that keeps it alive past its
/// last cleanup (the name goes there); `between` runs while it is nameless, then the lazy
/// writer writes its pages behind, and the view and section go.
fn delete_on_close_with_the_lazy_writer_behind(between: impl FnOnce(&mut Sim)) {
    let mut sim = Sim::new();
    let keep = open_rw(&mut sim, "\\kept");
    sim.write(keep, Some(0), b"kept").expect("write");
    sim.close(keep);
    let doomed = Open::new(access::GENERIC_READ | access::GENERIC_WRITE | access::DELETE)
        .share(share::ALL)
        .options(options::FILE_DELETE_ON_CLOSE);
    let h = sim.create("\\doomed", &doomed).expect("create");
    sim.write(h, Some(0), &filled(b'x', 64 * 1024))
        .expect("write");
    let s = sim.create_section(h, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    sim.close(h);
    assert_eq!(
        sim.create(
            "\\doomed",
            &Open::read_write().disposition(disposition::FILE_OPEN)
        ),
        Err(status::STATUS_OBJECT_NAME_NOT_FOUND),
        "the name went at the last cleanup"
    );
    between(&mut sim);
    // The dirty pages go out behind the deleted name (what the view shows now is the driver's
    // delete semantics, not this test's concern).
    sim.lazy_writer();
    sim.unmap_view(v);
    sim.close_section(s);
    sim.lazy_writer();
    let medium = finish_with_clean_medium(sim);
    let options = fs_core::MountOptions::new(Box::new(FixedClock(NtTime(0))));
    let mut vol = fs_core::Volume::mount(medium, options.read_only()).expect("mount");
    let root = vol.root().expect("root");
    let names: Vec<String> = vol
        .list(root)
        .expect("list")
        .into_iter()
        .map(|e| e.name.to_string_lossy())
        .collect();
    assert_eq!(names, ["kept"]);
}

#[test]
fn delete_on_close_with_the_lazy_writer_behind_leaves_nothing() {
    delete_on_close_with_the_lazy_writer_behind(|_| {});
}

#[test]
fn delete_on_close_with_the_lazy_writer_behind_across_a_seal_and_commit() {
    delete_on_close_with_the_lazy_writer_behind(|sim| {
        assert_eq!(
            sim.volume_fsctl(FSCTL_COWFAT_SEAL_VOLUME),
            status::STATUS_SUCCESS
        );
        assert_eq!(
            sim.volume_fsctl(FSCTL_COWFAT_COMMIT_VOLUME),
            status::STATUS_SUCCESS
        );
    });
}
