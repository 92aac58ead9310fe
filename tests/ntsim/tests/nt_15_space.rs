//! NT-15: paging writes must not fail for lack of space, so the space a copy-on-write of base
//! clusters needs is reserved when a page can first become dirty: at cached write time and at
//! writable section creation. On a full sealed volume those user-visible calls fail with
//! `STATUS_DISK_FULL`; a read-only section still works.

mod common;
use common::*;

use fs_core::time::{FixedClock, NtTime};
use fs_core::{FileAttributes, FileKind, MountOptions, Name, Volume};

/// A sealed volume whose free space is used up, with `\a` (one cluster of 'a') in the base.
fn full_sealed_volume() -> fs_core::MemDevice {
    let medium = ntsim::api::formatted(4 << 20);
    let mut volume =
        Volume::mount(medium, MountOptions::new(Box::new(FixedClock(NtTime(0))))).expect("mount");
    let root = volume.root().expect("root");
    let a = volume
        .create(
            root,
            &Name::from_str("a").expect("name"),
            FileKind::File,
            FileAttributes::empty(),
        )
        .expect("create a");
    volume.write(a, 0, &[b'a'; 4096]).expect("write a");
    let fill = volume
        .create(
            root,
            &Name::from_str("fill").expect("name"),
            FileKind::File,
            FileAttributes::empty(),
        )
        .expect("create fill");
    let chunk = vec![0xF0u8; 64 * 1024];
    let mut offset = 0u64;
    while volume.write(fill, offset, &chunk).is_ok() {
        offset += chunk.len() as u64;
    }
    let cluster = [0xF1u8; 4096];
    let mut end = volume.info(fill).expect("info").file_size;
    while volume.write(fill, end, &cluster).is_ok() {
        end += 4096;
    }
    volume.seal().expect("seal");
    volume.unmount().expect("unmount")
}

#[test]
fn nt_15_cached_write_and_writable_section_fail_early_when_full() {
    let mut sim = Sim::with_medium(full_sealed_volume());
    let h = sim
        .create(
            "\\a",
            &Open::read_write().disposition(disposition::FILE_OPEN),
        )
        .expect("open");
    assert_eq!(sim.write(h, Some(0), b"new"), Err(status::STATUS_DISK_FULL));
    assert_eq!(sim.create_section(h, true), Err(status::STATUS_DISK_FULL));
    let trace = sim.trace();
    assert!(trace.iter().any(|e| matches!(e, Event::Callback { name: "PreAcquireForSectionSynchronization", result, .. } if *result == status::STATUS_DISK_FULL)));
    // Nothing was dirtied, nothing was lost: the base content is intact.
    let s = sim
        .create_section(h, false)
        .expect("read-only section needs no reservation");
    let v = sim.map_view(s, 0, 0).expect("view");
    assert_eq!(sim.view_read(v, 0, 4), Ok(b"aaaa".to_vec()));
    sim.unmap_view(v);
    sim.close_section(s);
    sim.close(h);
    finish_clean(sim);
}
