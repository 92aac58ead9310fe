//! Seed 000: "I need to identify when a file is getting mapped and unmapped". The FS hears
//! of section creation only through the acquire callback (NT-06); mapping, unmapping and
//! closing handles are invisible (NT-07); IRP_MJ_CLOSE for the file object Mm holds comes
//! only when the segment goes: after a purge or a memory-pressure step (NT-04). At every step
//! the driver's own answer (FSCTL_COWFAT_QUERY_MAPPED_STATE) must be right, built from the
//! callback's tracking, MmDoesFileHaveUserWritableReferences, CcIsFileCached and a real
//! purge probe, never from DataSectionObject alone.

mod common;
use common::*;

use cowfat_fsctl::{
    MappedState, MAPPED_CACHED, MAPPED_DATA_SECTION, MAPPED_PURGE_PROBED, MAPPED_VIEWS_GONE,
    SUMMARY_CACHED_ONLY, SUMMARY_MAPPED_READ_ONLY, SUMMARY_MAPPED_WRITABLE, SUMMARY_MAYBE_MAPPED,
    SUMMARY_NOT_MAPPED,
};

const PAGE_READONLY: u32 = 0x02;
const PAGE_READWRITE: u32 = 0x04;

fn reader(sim: &mut Sim, path: &str) -> Handle {
    sim.create(
        path,
        &Open::new(access::GENERIC_READ)
            .share(share::ALL)
            .disposition(disposition::FILE_OPEN),
    )
    .expect("reader")
}

fn state(sim: &mut Sim, h: Handle, probe: bool) -> MappedState {
    sim.mapped_state(h, probe).expect("query mapped state")
}

fn closes_of(trace: &[Event], fo: FoId) -> usize {
    trace.iter().filter(|e| e.is_irp_on(mj::CLOSE, fo)).count()
}

#[test]
fn seed_000_mapped_state_through_map_unmap_close_and_purge() {
    let mut sim = Sim::new();
    // Cached only: a cached write, no user section.
    let w = open_rw(&mut sim, "\\notes.txt");
    let writer_fo = sim.file_id(w);
    sim.write(w, Some(0), b"hello notepad").expect("write");
    let st = state(&mut sim, w, false);
    assert_eq!(st.summary.get(), SUMMARY_CACHED_ONLY);
    assert_eq!(st.flags.get(), MAPPED_DATA_SECTION | MAPPED_CACHED);
    assert_eq!(
        (st.data_sections.get(), st.writable_user_references.get()),
        (0, 0)
    );
    sim.close(w);
    // Cc's segment keeps the writer's file object (NT-04): cleanup, no close.
    assert_eq!(closes_of(&sim.trace(), writer_fo), 0);
    sim.take_trace();
    sim.memory_pressure();
    let trace = sim.take_trace();
    assert_eq!(
        closes_of(&trace, writer_fo),
        1,
        "the close comes from memory pressure"
    );

    // Not mapped.
    let h = reader(&mut sim, "\\notes.txt");
    let fo = sim.file_id(h);
    let st = state(&mut sim, h, false);
    assert_eq!((st.summary.get(), st.flags.get()), (SUMMARY_NOT_MAPPED, 0));

    // Mapped read-only: the callback saw SyncTypeCreateSection with PAGE_READONLY.
    sim.take_trace();
    let s = sim.create_section(h, false).expect("section");
    let trace = sim.take_trace();
    assert!(trace.iter().any(|e| matches!(e, Event::Callback { name: "PreAcquireForSectionSynchronization", result, .. } if *result == status::STATUS_FILE_LOCKED_WITH_ONLY_READERS)));
    let v = sim.map_view(s, 0, 0).expect("view");
    assert_eq!(sim.view_read(v, 0, 5).as_deref(), Ok(&b"hello"[..]));
    let st = state(&mut sim, h, false);
    assert_eq!(st.last_section_protection.get(), PAGE_READONLY);
    assert_eq!((st.data_sections.get(), st.writable_sections.get()), (1, 0));
    // Without a probe the driver does not pretend to know whether views remain.
    assert_eq!(st.summary.get(), SUMMARY_MAYBE_MAPPED);
    let st = state(&mut sim, h, true);
    assert_eq!(st.summary.get(), SUMMARY_MAPPED_READ_ONLY);
    assert_eq!(
        st.flags.get() & (MAPPED_PURGE_PROBED | MAPPED_VIEWS_GONE),
        MAPPED_PURGE_PROBED
    );
    assert_eq!(sim.view_read(v, 0, 5).as_deref(), Ok(&b"hello"[..]));

    // Mapped writable.
    let w = open_rw(&mut sim, "\\notes.txt");
    let ws = sim.create_section(w, true).expect("writable section");
    let wv = sim.map_view(ws, 0, 0).expect("writable view");
    let st = state(&mut sim, h, false);
    assert_eq!(st.summary.get(), SUMMARY_MAPPED_WRITABLE);
    assert_eq!(st.last_section_protection.get(), PAGE_READWRITE);
    assert_eq!((st.data_sections.get(), st.writable_sections.get()), (2, 1));
    assert!(st.writable_user_references.get() > 0);
    sim.view_write(wv, 0, b"J").expect("view write");
    sim.unmap_view(wv);
    sim.close_section(ws);
    sim.close(w);

    // Unmap and close everything: no IRP_MJ_CLOSE for the section's file object.
    sim.take_trace();
    sim.unmap_view(v);
    sim.close_section(s);
    sim.close(h);
    sim.lazy_writer();
    let trace = sim.take_trace();
    assert!(trace.iter().any(|e| e.is_irp_on(mj::CLEANUP, fo)));
    assert_eq!(
        closes_of(&trace, fo),
        0,
        "no close after handle close or unmap"
    );
    assert!(sim.file_object_alive(fo));

    // A new handle asks: sections were created and nothing proves they are gone...
    let q = reader(&mut sim, "\\notes.txt");
    let st = state(&mut sim, q, false);
    assert_eq!(st.summary.get(), SUMMARY_MAYBE_MAPPED);
    assert_eq!(st.writable_user_references.get(), 0);
    // ...until the probe's purge succeeds: the segment goes and the close comes inside it.
    sim.take_trace();
    let st = state(&mut sim, q, true);
    let trace = sim.take_trace();
    assert_eq!(st.summary.get(), SUMMARY_NOT_MAPPED);
    assert_eq!(st.flags.get(), MAPPED_PURGE_PROBED | MAPPED_VIEWS_GONE);
    let fsctl = position(&trace, |e| e.is_irp(mj::FILE_SYSTEM_CONTROL));
    let deleted = position(
        &trace,
        |e| matches!(e, Event::Kernel { name: "segment deleted", file: Some(f) } if *f == fo),
    );
    let close = position(&trace, |e| e.is_irp_on(mj::CLOSE, fo));
    let done = position(&trace, |e| {
        matches!(e, Event::Completed { major: 0x0d, .. })
    });
    assert!(
        fsctl.is_some() && fsctl < deleted && deleted < close && close < done,
        "{trace:#?}"
    );
    assert!(!sim.file_object_alive(fo));
    // The view's write went to the file before the purge.
    assert_eq!(sim.read(q, 0, 5).as_deref(), Ok(&b"Jello"[..]));
    sim.close(q);
    finish_clean(sim);
}
