//! NT-15 with large files: a writable section on a large sealed file reserves overlay space
//! for every page when it is created and fails there (STATUS_DISK_FULL) if the overlay
//! cannot hold it; with enough space, dirtying every page through the view and flushing
//! never fails, and the base stays as it was (NT-20).

mod common;
use common::*;

use fs_core::time::{FixedClock, NtTime};
use fs_core::{FileAttributes, FileKind, MountOptions, Name, Volume};

const MIB: usize = 1 << 20;

/// A 16 MiB volume, sealed, with `\big` (`big` bytes of 0x11) and `\fill` (`fill` bytes).
fn sealed(big: usize, fill: usize) -> fs_core::MemDevice {
    let medium = ntsim::api::formatted(16 << 20);
    let clock = Box::new(FixedClock(NtTime(0)));
    let mut volume = Volume::mount(medium, MountOptions::new(clock)).expect("mount");
    let root = volume.root().expect("root");
    for (name, len, byte) in [("big", big, 0x11u8), ("fill", fill, 0xF0)] {
        let id = volume
            .create(
                root,
                &Name::from_str(name).expect("name"),
                FileKind::File,
                FileAttributes::empty(),
            )
            .expect("create");
        if len > 0 {
            volume.write(id, 0, &vec![byte; len]).expect("write");
        }
    }
    volume.seal().expect("seal");
    volume.unmount().expect("unmount")
}

fn open_big(sim: &mut Sim) -> Handle {
    sim.create(
        "\\big",
        &Open::read_write().disposition(disposition::FILE_OPEN),
    )
    .expect("open big")
}

#[test]
fn nt_15_writable_section_on_a_large_sealed_file_fails_at_creation_when_full() {
    let mut sim = Sim::with_medium(sealed(6 * MIB, 6 * MIB));
    let h = open_big(&mut sim);
    sim.take_trace();
    assert_eq!(sim.create_section(h, true), Err(status::STATUS_DISK_FULL));
    let trace = sim.take_trace();
    assert!(trace.iter().any(|e| matches!(e, Event::Callback { name: "PreAcquireForSectionSynchronization", result, .. } if *result == status::STATUS_DISK_FULL)));
    assert!(!trace.iter().any(|e| matches!(e, Event::Irp { .. })));
    let st = sim.overlay_state(h).expect("overlay");
    assert_eq!(
        st.reserved_clusters.get(),
        0,
        "a failed reservation keeps nothing"
    );
    // Read-only sections need nothing.
    let s = sim.create_section(h, false).expect("read-only section");
    sim.close_section(s);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_15_with_room_every_page_dirtied_and_flushed_never_fails() {
    let size = 2 * MIB;
    let mut sim = Sim::with_medium(sealed(size, 0));
    let h = open_big(&mut sim);
    let s = sim.create_section(h, true).expect("writable section");
    let st = sim.overlay_state(h).expect("overlay");
    let pages = (size / 4096) as u64;
    assert!(st.reserved_clusters.get() >= pages, "{st:?}");
    let v = sim.map_view(s, 0, 0).expect("view");
    for page in 0..pages {
        sim.view_write(v, page * 4096, &[0x22; 16])
            .expect("dirty a page");
    }
    sim.take_trace();
    assert_eq!(sim.flush_view(v), status::STATUS_SUCCESS);
    let trace = sim.take_trace();
    let writes = paging_irps(&trace, mj::WRITE);
    assert_eq!(writes.len() as u64, pages);
    assert!(
        trace
            .iter()
            .all(|e| !matches!(e, Event::Completed { major: 4, status, .. } if *status < 0)),
        "a paging write failed"
    );
    let st = sim.overlay_state(h).expect("overlay");
    assert_eq!(
        (st.overlay_clusters.get(), st.base_clusters.get()),
        (pages, 0)
    );
    sim.unmap_view(v);
    sim.close_section(s);
    sim.memory_pressure();
    assert_eq!(
        sim.read(h, 4096, 17),
        Ok([vec![0x22; 16], vec![0x11]].concat())
    );
    sim.close(h);
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    // The base is what was sealed.
    let clock = Box::new(FixedClock(NtTime(0)));
    let mut volume = Volume::mount(sim.medium(), MountOptions::new(clock)).expect("mount");
    let id = volume.resolve("\\big").expect("resolve");
    volume.discard_file(id).expect("discard");
    let mut base = vec![0u8; size];
    volume.read(id, 0, &mut base).expect("read base");
    assert!(base.iter().all(|&b| b == 0x11));
    finish_clean(sim);
}
