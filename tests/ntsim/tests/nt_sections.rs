//! Sections and views: the section-creation callbacks (NT-06), views invisible to the FS
//! (NT-07), one data section per stream shared with Cc (NT-03), purge refused while mapped
//! (NT-08), image sections closing their file object inside a create (NT-04 + NT-09), and the
//! seed 004 program on a sealed volume (NT-19, NT-20).

mod common;
use common::*;

use fs_core::time::{FixedClock, NtTime};
use fs_core::{FileAttributes, FileKind, MountOptions, Name, Volume};

fn callback_results(trace: &[Event], wanted: &str) -> Vec<i32> {
    trace
        .iter()
        .filter_map(|e| match e {
            Event::Callback { name, result, .. } if *name == wanted => Some(*result),
            _ => None,
        })
        .collect()
}

#[test]
fn nt_06_section_creation_goes_through_the_acquire_callback() {
    let mut sim = Sim::new();
    let w = open_rw(&mut sim, "\\s");
    sim.write(w, Some(0), b"data").expect("write");
    sim.close(w);
    let r = sim
        .create(
            "\\s",
            &Open::new(access::GENERIC_READ)
                .share(share::ALL)
                .disposition(disposition::FILE_OPEN),
        )
        .expect("reader");
    sim.take_trace();
    let s = sim.create_section(r, false).expect("read-only section");
    let trace = sim.take_trace();
    assert_eq!(
        callback_results(&trace, "PreAcquireForSectionSynchronization"),
        vec![status::STATUS_FILE_LOCKED_WITH_ONLY_READERS]
    );
    assert_eq!(
        callback_results(&trace, "PreReleaseForSectionSynchronization").len(),
        1
    );
    assert!(
        !trace.iter().any(|e| matches!(e, Event::Irp { .. })),
        "no IRP for section creation: {trace:#?}"
    );
    let w = open_rw(&mut sim, "\\s");
    let s2 = sim.create_section(w, true).expect("writable section");
    let trace = sim.take_trace();
    assert_eq!(
        callback_results(&trace, "PreAcquireForSectionSynchronization"),
        vec![status::STATUS_FILE_LOCKED_WITH_WRITERS]
    );
    // NT-07: mapping and unmapping send nothing to the FS.
    let v = sim.map_view(s2, 0, 0).expect("map");
    sim.unmap_view(v);
    assert!(sim.take_trace().is_empty());
    sim.close_section(s);
    sim.close_section(s2);
    sim.close(r);
    sim.close(w);
    finish_clean(sim);
}

#[test]
fn nt_06_empty_file_cannot_be_mapped() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\empty");
    assert_eq!(
        sim.create_section(h, false),
        Err(status::STATUS_MAPPED_FILE_SIZE_ZERO)
    );
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_03_cached_io_and_views_share_pages() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\shared");
    sim.write(h, Some(0), b"1234").expect("write");
    let s = sim.create_section(h, true).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    assert_eq!(sim.view_read(v, 0, 4).as_deref(), Ok(&b"1234"[..]));
    sim.view_write(v, 0, b"x").expect("view write");
    // No flush: the cached read sees the view's write because the pages are the same.
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"x234"[..]));
    sim.write(h, Some(0), b"4321").expect("write");
    assert_eq!(sim.view_read(v, 0, 4).as_deref(), Ok(&b"4321"[..]));
    sim.unmap_view(v);
    sim.close_section(s);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_08_purge_fails_while_user_mapped() {
    let mut sim = Sim::new();
    let c = open_rw(&mut sim, "\\m");
    sim.write(c, Some(0), &filled(1, 8192)).expect("write");
    let s = sim.create_section(c, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    assert_eq!(sim.view_read(v, 0, 1), Ok(vec![1]));
    let n = open_nc(&mut sim, "\\m");
    sim.take_trace();
    // NT-17: the write goes on although the purge fails (Windows promises nothing here).
    assert_eq!(sim.write(n, Some(0), &filled(2, 4096)), Ok(4096));
    let trace = sim.take_trace();
    assert!(
        trace.iter().any(|e| matches!(
            e,
            Event::Kernel {
                name: "CcCoherencyFlushAndPurgeCache: user-mapped pages kept",
                ..
            }
        )),
        "{trace:#?}"
    );
    sim.unmap_view(v);
    sim.close_section(s);
    // Unmapped: the next non-cached write purges, and the cached view of the data is fresh.
    assert_eq!(sim.write(n, Some(4096), &filled(3, 4096)), Ok(4096));
    let trace = sim.take_trace();
    assert!(trace.iter().any(|e| matches!(
        e,
        Event::Kernel {
            name: "CcCoherencyFlushAndPurgeCache",
            ..
        }
    )));
    assert_eq!(sim.read(c, 4096, 4096), Ok(filled(3, 4096)));
    sim.close(n);
    sim.close(c);
    finish_clean(sim);
}

#[test]
fn nt_04_unused_image_section_closes_its_file_object_inside_a_create() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\tool.exe");
    sim.write(h, Some(0), &filled(0xCC, 4096)).expect("write");
    sim.close(h);
    sim.memory_pressure();
    let exec = Open::new(access::GENERIC_READ | access::GENERIC_EXECUTE)
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN);
    let r = sim.create("\\tool.exe", &exec).expect("open for exec");
    let image_fo = sim.file_id(r);
    let image = sim.create_image_section(r).expect("image");
    sim.close_section(image);
    sim.close(r);
    // The image section still holds the file object: no close yet (NT-04).
    assert!(sim.file_object_alive(image_fo));
    sim.take_trace();
    let w = sim
        .create(
            "\\tool.exe",
            &Open::read_write()
                .share(share::ALL)
                .disposition(disposition::FILE_OPEN),
        )
        .expect("write open");
    let trace = sim.trace();
    // MmFlushImageSection (NT-09) deleted it, so the old file object closed inside the create.
    let create = position(&trace, |e| e.is_irp(mj::CREATE));
    let close = position(&trace, |e| e.is_irp_on(mj::CLOSE, image_fo));
    let created = position(&trace, |e| matches!(e, Event::Completed { major: 0, .. }));
    assert!(create < close && close < created, "{trace:#?}");
    assert_eq!(sim.read(w, 0, 4096), Ok(filled(0xCC, 4096)));
    sim.close(w);
    finish_clean(sim);
}

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

#[test]
fn nt_19_seed_004_program_on_one_handle() {
    let mut sim = Sim::with_medium(sealed_volume_with("\\seed.txt", b"aaaa"));
    let h = sim
        .create(
            "\\seed.txt",
            &Open::read_write().disposition(disposition::FILE_OPEN),
        )
        .expect("open");
    assert_eq!(sim.write(h, Some(0), b"1234"), Ok(4));
    let s = sim.create_section(h, true).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    assert_eq!(sim.view_read(v, 0, 4).as_deref(), Ok(&b"1234"[..]));
    sim.view_write(v, 0, b"x").expect("view write");
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"x234"[..]));
    assert_eq!(sim.write(h, Some(0), b"4321"), Ok(4));
    assert_eq!(sim.view_read(v, 0, 4).as_deref(), Ok(&b"4321"[..]));
    sim.unmap_view(v);
    sim.close_section(s);
    sim.close(h);
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    let medium = sim.medium();
    finish_clean(sim);
    check_seed_004_medium(medium);
}

/// NT-19/NT-20 after dismount: the live file reads "4321", its sealed base still "aaaa".
fn check_seed_004_medium(medium: fs_core::MemDevice) {
    let checked = fs_core::fsck::check(medium.clone(), false, &mut |_, _| {});
    assert!(
        checked.map(|(r, _)| r.is_clean()).unwrap_or(false),
        "fsck after the driver's writes"
    );
    let clock = Box::new(FixedClock(NtTime(0)));
    let mut volume = Volume::mount(medium, MountOptions::new(clock)).expect("mount after dismount");
    let id = volume.resolve("\\seed.txt").expect("resolve");
    let mut live = [0u8; 4];
    volume.read(id, 0, &mut live).expect("read live");
    assert_eq!(&live, b"4321");
    assert!(volume.overlay_status(id).expect("status").modified);
    volume.discard_file(id).expect("discard");
    let mut base = [0u8; 4];
    volume.read(id, 0, &mut base).expect("read base");
    assert_eq!(&base, b"aaaa");
}

#[test]
fn nt_04_seed_000_mapped_file_closes_only_at_dismount() {
    // Seed 000: notepad maps a file, unmaps it and closes its handle; IRP_MJ_CLOSE never comes
    // until the section goes: here at dismount, from inside the dismount's purge.
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\notes.txt");
    sim.write(h, Some(0), b"hello notepad").expect("write");
    sim.close(h);
    sim.memory_pressure();
    let h = sim
        .create(
            "\\notes.txt",
            &Open::new(access::GENERIC_READ)
                .share(share::ALL)
                .disposition(disposition::FILE_OPEN),
        )
        .expect("open");
    let fo = sim.file_id(h);
    let s = sim.create_section(h, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    assert_eq!(sim.view_read(v, 0, 5).as_deref(), Ok(&b"hello"[..]));
    sim.unmap_view(v);
    sim.close_section(s);
    sim.close(h);
    sim.lazy_writer();
    let trace = sim.trace();
    assert!(position(&trace, |e| e.is_irp_on(mj::CLEANUP, fo)).is_some());
    assert!(
        position(&trace, |e| e.is_irp_on(mj::CLOSE, fo)).is_none(),
        "no close while Mm holds it"
    );
    sim.take_trace();
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    let trace = sim.trace();
    let fsctl = position(&trace, |e| e.is_irp(mj::FILE_SYSTEM_CONTROL)).unwrap_or(usize::MAX);
    let deleted = position(
        &trace,
        |e| matches!(e, Event::Kernel { name: "segment deleted", file: Some(f) } if *f == fo),
    );
    let close = position(&trace, |e| e.is_irp_on(mj::CLOSE, fo));
    let fsctl_done = position(&trace, |e| {
        matches!(e, Event::Completed { major: 0x0d, .. })
    });
    assert!(
        fsctl < deleted.unwrap_or(0) && deleted < close && close < fsctl_done,
        "{trace:#?}"
    );
    finish_clean(sim);
}
