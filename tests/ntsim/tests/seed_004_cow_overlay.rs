//! Seed 004 end to end: the copy-on-write program from the thread, step by step on one handle
//! of a sealed volume (NT-19), then dismount and remount; the base is untouched (NT-20) and
//! the overlay FSCTLs decide what survives: a volume discard brings back "aaaa", a commit
//! makes "4321" the base.

mod common;
use common::*;

use cowfat_fsctl::{
    FSCTL_COWFAT_COMMIT_FILE, FSCTL_COWFAT_DISCARD_VOLUME, OVERLAY_IN_BASE, OVERLAY_MODIFIED,
    OVERLAY_SEALED,
};
use fs_core::time::{FixedClock, NtTime};
use fs_core::{FileAttributes, FileKind, MountOptions, Name, Volume};

fn sealed_volume_with(path: &str, content: &[u8]) -> fs_core::MemDevice {
    let medium = ntsim::api::formatted(16 << 20);
    let clock = Box::new(FixedClock(NtTime(0)));
    let mut volume = Volume::mount(medium, MountOptions::new(clock)).expect("mount");
    let root = volume.root().expect("root");
    let name = Name::from_str(path.trim_start_matches('\\')).expect("name");
    let id = volume
        .create(root, &name, FileKind::File, FileAttributes::empty())
        .expect("create");
    volume.write(id, 0, content).expect("write");
    volume.seal().expect("seal");
    volume.unmount().expect("unmount")
}

/// The live and base content of `\seed.txt` as fs-core sees the medium.
fn live_and_base(medium: fs_core::MemDevice) -> ([u8; 4], [u8; 4]) {
    let clock = Box::new(FixedClock(NtTime(0)));
    let mut volume = Volume::mount(medium, MountOptions::new(clock)).expect("mount");
    let id = volume.resolve("\\seed.txt").expect("resolve");
    let mut live = [0u8; 4];
    volume.read(id, 0, &mut live).expect("live");
    volume.discard_file(id).expect("discard");
    let mut base = [0u8; 4];
    volume.read(id, 0, &mut base).expect("base");
    (live, base)
}

fn open_seed(sim: &mut Sim) -> Handle {
    sim.create(
        "\\seed.txt",
        &Open::read_write().disposition(disposition::FILE_OPEN),
    )
    .expect("open seed.txt")
}

/// The thread's program: WriteFile, CreateFileMapping/MapViewOfFile, write through the view,
/// ReadFile, WriteFile again, with the view and the handle agreeing at every step.
fn run_program(sim: &mut Sim) -> Handle {
    let h = open_seed(sim);
    assert_eq!(sim.write(h, Some(0), b"1234"), Ok(4));
    sim.take_trace();
    let s = sim.create_section(h, true).expect("CreateFileMapping");
    let trace = sim.take_trace();
    assert!(
        trace.iter().any(|e| matches!(e, Event::Callback { name: "PreAcquireForSectionSynchronization", result, .. } if *result == status::STATUS_FILE_LOCKED_WITH_WRITERS)),
        "{trace:#?}"
    );
    assert!(
        !trace.iter().any(|e| matches!(e, Event::Irp { .. })),
        "{trace:#?}"
    );
    let v = sim.map_view(s, 0, 0).expect("MapViewOfFile");
    assert_eq!(sim.view_read(v, 0, 4).as_deref(), Ok(&b"1234"[..]));
    sim.view_write(v, 0, b"x").expect("pMem[0] = 'x'");
    // The view's pages are the cache's pages (NT-03): no IRP for mapping or writing.
    assert!(!sim
        .take_trace()
        .iter()
        .any(|e| matches!(e, Event::Irp { .. })));
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"x234"[..]));
    assert!(
        paging_irps(&sim.take_trace(), mj::READ).is_empty(),
        "served from the shared pages"
    );
    assert_eq!(sim.write(h, Some(0), b"4321"), Ok(4));
    assert_eq!(sim.view_read(v, 0, 4).as_deref(), Ok(&b"4321"[..]));
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"4321"[..]));
    sim.unmap_view(v);
    sim.close_section(s);
    h
}

#[test]
fn seed_004_program_then_volume_discard_brings_back_the_base() {
    let mut sim = Sim::with_medium(sealed_volume_with("\\seed.txt", b"aaaa"));
    let h = run_program(&mut sim);
    sim.close(h);
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    let (live, base) = live_and_base(sim.medium());
    assert_eq!((&live, &base), (b"4321", b"aaaa"));
    // Remount: the live file reads "4321" and is modified in the overlay.
    let h = open_seed(&mut sim);
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"4321"[..]));
    let state = sim.overlay_state(h).expect("overlay state");
    assert_eq!(
        state.flags.get(),
        OVERLAY_IN_BASE | OVERLAY_MODIFIED | OVERLAY_SEALED
    );
    assert_eq!(state.overlay_clusters.get(), 1);
    // Discard of the volume needs nothing open (NT-21).
    assert_eq!(
        sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
        status::STATUS_ACCESS_DENIED
    );
    sim.close(h);
    assert_eq!(
        sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
        status::STATUS_SUCCESS
    );
    let h = open_seed(&mut sim);
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"aaaa"[..]));
    let state = sim.overlay_state(h).expect("overlay state");
    assert_eq!(state.flags.get(), OVERLAY_IN_BASE | OVERLAY_SEALED);
    sim.close(h);
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert_eq!(live_and_base(sim.medium()), (*b"aaaa", *b"aaaa"));
    finish_clean(sim);
}

#[test]
fn seed_004_program_then_commit_makes_4321_the_base() {
    let mut sim = Sim::with_medium(sealed_volume_with("\\seed.txt", b"aaaa"));
    let h = run_program(&mut sim);
    assert_eq!(
        sim.fsctl_status(h, FSCTL_COWFAT_COMMIT_FILE),
        status::STATUS_SUCCESS
    );
    let state = sim.overlay_state(h).expect("overlay state");
    assert_eq!(state.flags.get(), OVERLAY_IN_BASE | OVERLAY_SEALED);
    assert_eq!(state.overlay_clusters.get(), 0);
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"4321"[..]));
    sim.close(h);
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert_eq!(live_and_base(sim.medium()), (*b"4321", *b"4321"));
    // Remount: "4321", and a volume discard keeps it (it is the base now).
    assert_eq!(
        sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
        status::STATUS_SUCCESS
    );
    let h = open_seed(&mut sim);
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"4321"[..]));
    sim.close(h);
    finish_clean(sim);
}
