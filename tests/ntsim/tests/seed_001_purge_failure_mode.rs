//! Seed 001: a scanner's data-scan section (FltCreateSectionForDataScan) and a non-cached
//! write from another handle. Filter manager turns purge-failure mode on for the stream
//! (FSCTL_SET_PURGE_FAILURE_MODE, NT-12): the write, whose purge fails because of the
//! scanner's view (NT-17), fails with STATUS_PURGE_FAILED and changes nothing; once the
//! section is closed it succeeds. Without the mode it proceeds as Windows does.

mod common;
use common::*;

use windows_sys::Win32::Foundation::STATUS_PURGE_FAILED;

fn scanner(sim: &mut Sim) -> Handle {
    sim.create(
        "\\doc.bin",
        &Open::new(access::GENERIC_READ)
            .share(share::ALL)
            .disposition(disposition::FILE_OPEN),
    )
    .expect("scanner open")
}

fn setup(sim: &mut Sim) {
    let h = open_rw(sim, "\\doc.bin");
    sim.write(h, Some(0), &filled(b'o', 8192)).expect("write");
    sim.close(h);
    sim.lazy_writer();
}

fn purge_kept(trace: &[Event]) -> bool {
    trace.iter().any(|e| {
        matches!(
            e,
            Event::Kernel {
                name: "CcCoherencyFlushAndPurgeCache: user-mapped pages kept",
                ..
            }
        )
    })
}

#[test]
fn seed_001_purge_failure_mode_fails_the_conflicting_write() {
    let mut sim = Sim::new();
    setup(&mut sim);
    let scan = scanner(&mut sim);
    let section = sim.create_section(scan, false).expect("data-scan section");
    assert_eq!(
        sim.set_purge_failure_mode(scan, true),
        status::STATUS_SUCCESS
    );
    let view = sim.map_view(section, 0, 0).expect("scan view");
    assert_eq!(sim.view_read(view, 0, 4), Ok(filled(b'o', 4)));
    let st = sim.mapped_state(scan, false).expect("state");
    assert_eq!(st.purge_failure_mode.get(), 1);

    let writer = open_nc(&mut sim, "\\doc.bin");
    sim.take_trace();
    assert_eq!(
        sim.write(writer, Some(0), &filled(b'N', 4096)),
        Err(STATUS_PURGE_FAILED)
    );
    let trace = sim.take_trace();
    assert!(purge_kept(&trace), "{trace:#?}");
    assert!(
        paging_irps(&trace, mj::WRITE).is_empty(),
        "nothing was dirty, nothing written: {trace:#?}"
    );
    // Nothing changed: the medium, the view and a cached read agree on the old data.
    assert_eq!(sim.read(writer, 0, 4096), Ok(filled(b'o', 4096)));
    assert_eq!(sim.view_read(view, 0, 4), Ok(filled(b'o', 4)));
    assert_eq!(sim.read(scan, 0, 4), Ok(filled(b'o', 4)));

    // The scan ends: filter manager closes the section and turns the mode off; the write
    // succeeds and everybody sees it.
    sim.unmap_view(view);
    sim.close_section(section);
    assert_eq!(
        sim.set_purge_failure_mode(scan, false),
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.mapped_state(scan, false)
            .expect("state")
            .purge_failure_mode
            .get(),
        0
    );
    assert_eq!(sim.write(writer, Some(0), &filled(b'N', 4096)), Ok(4096));
    assert_eq!(sim.read(scan, 0, 4), Ok(filled(b'N', 4)));
    // A disable without an enable is refused.
    assert_eq!(
        sim.set_purge_failure_mode(scan, false),
        status::STATUS_INVALID_PARAMETER
    );
    sim.close(writer);
    sim.close(scan);
    finish_clean(sim);
}

#[test]
fn seed_001_without_the_mode_the_write_goes_on() {
    let mut sim = Sim::new();
    setup(&mut sim);
    let scan = scanner(&mut sim);
    let section = sim.create_section(scan, false).expect("section");
    let view = sim.map_view(section, 0, 0).expect("view");
    assert_eq!(sim.view_read(view, 0, 4), Ok(filled(b'o', 4)));
    let writer = open_nc(&mut sim, "\\doc.bin");
    sim.take_trace();
    assert_eq!(sim.write(writer, Some(0), &filled(b'N', 4096)), Ok(4096));
    assert!(purge_kept(&sim.take_trace()));
    let st = sim.mapped_state(scan, false).expect("state");
    assert_eq!(st.purge_failures.get(), 1, "counted (NT-17)");
    // The medium has the new data; the view may keep the old page (no coherency promised).
    assert_eq!(sim.read(writer, 0, 4096), Ok(filled(b'N', 4096)));
    sim.unmap_view(view);
    sim.close_section(section);
    sim.close(writer);
    sim.close(scan);
    finish_clean(sim);
}
