//! NT-09 (image sections against opens for write and delete), NT-10 (truncation of a mapped
//! file) and NT-11 (writable user references outlive handles) through IRP_MJ_CREATE.
//! Set-information (disposition, rename-over, EOF) calls the same checks in
//! `fs_driver::section` once fileinfo exists.

mod common;
use common::*;

fn with_file(sim: &mut Sim, path: &str, len: usize) {
    let h = open_rw(sim, path);
    sim.write(h, Some(0), &filled(0x5A, len)).expect("write");
    sim.close(h);
}

fn exec_open(sim: &mut Sim, path: &str) -> Handle {
    sim.create(
        path,
        &Open::new(access::GENERIC_READ | access::GENERIC_EXECUTE)
            .share(share::ALL)
            .disposition(disposition::FILE_OPEN),
    )
    .expect("open for execute")
}

fn refused_image_flush(trace: &[Event]) -> bool {
    trace.iter().any(|e| {
        matches!(
            e,
            Event::Kernel {
                name: "MmFlushImageSection refused",
                ..
            }
        )
    })
}

#[test]
fn nt_09_open_for_write_or_delete_against_a_mapped_image() {
    let mut sim = Sim::new();
    with_file(&mut sim, "\\app.exe", 4096);
    let h = exec_open(&mut sim, "\\app.exe");
    let image = sim.create_image_section(h).expect("image section");
    let view = sim.map_view(image, 0, 0).expect("image view");
    sim.take_trace();
    let write = Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN);
    assert_eq!(
        sim.create("\\app.exe", &write),
        Err(status::STATUS_SHARING_VIOLATION)
    );
    assert!(refused_image_flush(&sim.take_trace()));
    let delete = Open::new(access::GENERIC_READ | access::DELETE)
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN)
        .options(options::FILE_DELETE_ON_CLOSE);
    assert_eq!(
        sim.create("\\app.exe", &delete),
        Err(status::STATUS_CANNOT_DELETE)
    );
    assert!(refused_image_flush(&sim.take_trace()));
    // A read-only open is fine while the image runs.
    let r = exec_open(&mut sim, "\\app.exe");
    sim.close(r);
    sim.unmap_view(view);
    sim.close_section(image);
    sim.close(h);
    // Image unused: the flush lets it go and the write open succeeds.
    let w = sim
        .create("\\app.exe", &write)
        .expect("write open after the image went");
    sim.close(w);
    finish_clean(sim);
}

#[test]
fn nt_10_overwrite_and_supersede_of_a_mapped_file_are_refused() {
    let mut sim = Sim::new();
    with_file(&mut sim, "\\data", 8192);
    let h = open_rw(&mut sim, "\\data");
    let s = sim.create_section(h, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    for disp in [disposition::FILE_OVERWRITE, disposition::FILE_SUPERSEDE] {
        let open = Open::read_write().share(share::ALL).disposition(disp);
        assert_eq!(
            sim.create("\\data", &open),
            Err(status::STATUS_USER_MAPPED_FILE)
        );
    }
    // Nothing was truncated.
    assert_eq!(sim.view_read(v, 4096, 4), Ok(filled(0x5A, 4)));
    assert_eq!(sim.read(h, 8188, 4), Ok(filled(0x5A, 4)));
    sim.unmap_view(v);
    sim.close_section(s);
    let open = Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OVERWRITE);
    let o = sim
        .create("\\data", &open)
        .expect("overwrite once unmapped");
    assert_eq!(sim.read(h, 0, 1), Err(status::STATUS_END_OF_FILE));
    sim.close(o);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_11_writable_mapping_without_handles_denies_exclusive_write_opens() {
    let mut sim = Sim::new();
    with_file(&mut sim, "\\m", 4096);
    let h = open_rw(&mut sim, "\\m");
    let s = sim.create_section(h, true).expect("writable section");
    let v = sim.map_view(s, 0, 0).expect("view");
    sim.close(h);
    // No handle is open, but the writable view is (MmDoesFileHaveUserWritableReferences).
    let deny_write = Open::new(access::GENERIC_READ)
        .share(share::READ)
        .disposition(disposition::FILE_OPEN);
    assert_eq!(
        sim.create("\\m", &deny_write),
        Err(status::STATUS_SHARING_VIOLATION)
    );
    let sharing = Open::new(access::GENERIC_READ)
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN);
    let r = sim.create("\\m", &sharing).expect("a sharing open is fine");
    let st = sim.mapped_state(r, false).expect("state");
    assert_eq!(st.summary.get(), cowfat_fsctl::SUMMARY_MAPPED_WRITABLE);
    sim.close(r);
    sim.unmap_view(v);
    sim.close_section(s);
    let x = sim
        .create("\\m", &deny_write)
        .expect("exclusive once unmapped");
    sim.close(x);
    finish_clean(sim);
}
