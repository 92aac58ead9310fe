//! Reads and writes: cached through Cc (NT-16), non-cached (NT-17), paging (NT-13, NT-14),
//! with FileSize and ValidDataLength rules, and NT-04's close ordering.

mod common;
use common::*;

const PAGE: usize = 4096;

#[test]
fn nt_16_cached_write_then_read_goes_through_cc() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\c");
    sim.take_trace();
    assert_eq!(sim.write(h, Some(100), b"cached bytes"), Ok(12));
    assert_eq!(sim.read(h, 100, 12).as_deref(), Ok(&b"cached bytes"[..]));
    assert_eq!(
        sim.read(h, 0, 100),
        Ok(vec![0; 100]),
        "the gap before the write reads as zeros"
    );
    assert_eq!(sim.read(h, 112, 10), Err(status::STATUS_END_OF_FILE));
    let trace = sim.trace();
    assert!(trace.contains(&Event::Kernel {
        name: "CcInitializeCacheMap",
        file: Some(sim.file_id(h))
    }));
    // Nothing was written to the file system yet: only a paging read for the partial page.
    assert!(paging_irps(&trace, mj::WRITE).is_empty(), "{trace:#?}");
    assert_eq!(paging_irps(&trace, mj::READ), vec![(0, 4096)]);
    sim.lazy_writer();
    let trace = sim.trace();
    assert_eq!(paging_irps(&trace, mj::WRITE), vec![(0, 4096)]);
    assert!(trace.iter().any(|e| matches!(
        e,
        Event::Callback {
            name: "AcquireForLazyWrite",
            result: 1,
            ..
        }
    )));
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_17_cached_and_noncached_handles_stay_coherent() {
    let mut sim = Sim::new();
    let c = open_rw(&mut sim, "\\coh");
    let n = open_nc(&mut sim, "\\coh");
    sim.write(c, Some(0), &filled(b'a', 2 * PAGE))
        .expect("cached write");
    // Non-cached read flushes the dirty cached pages first.
    assert_eq!(sim.read(n, 0, 2 * PAGE), Ok(filled(b'a', 2 * PAGE)));
    // Cached read after a non-cached write sees the new data: the write purged the cache.
    sim.take_trace();
    sim.write(n, Some(PAGE as u64), &filled(b'b', PAGE))
        .expect("non-cached write");
    let trace = sim.trace();
    assert!(
        trace.contains(&Event::Kernel {
            name: "CcCoherencyFlushAndPurgeCache",
            file: Some(sim.file_id(c))
        }),
        "{trace:#?}"
    );
    let mut expected = filled(b'a', PAGE);
    expected.extend(filled(b'b', PAGE));
    assert_eq!(sim.read(c, 0, 2 * PAGE), Ok(expected));
    // Non-cached I/O must be sector aligned.
    assert_eq!(sim.read(n, 1, 512), Err(status::STATUS_INVALID_PARAMETER));
    assert_eq!(
        sim.write(n, Some(0), b"short"),
        Err(status::STATUS_INVALID_PARAMETER)
    );
    sim.close(c);
    sim.close(n);
    finish_clean(sim);
}

#[test]
fn nt_17_noncached_write_purges_cached_pages() {
    let mut sim = Sim::new();
    let c = open_rw(&mut sim, "\\p");
    let n = open_nc(&mut sim, "\\p");
    sim.write(c, Some(0), &filled(1, PAGE)).expect("cached");
    assert_eq!(sim.read(c, 0, PAGE), Ok(filled(1, PAGE)));
    sim.write(n, Some(0), &filled(2, PAGE)).expect("non-cached");
    assert_eq!(
        sim.read(c, 0, PAGE),
        Ok(filled(2, PAGE)),
        "stale cached page survived"
    );
    sim.close(c);
    sim.close(n);
    finish_clean(sim);
}

#[test]
fn nt_13_paging_read_past_vdl_is_zero() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\z");
    // A cached write far into the file: everything before it is past ValidDataLength.
    sim.write(h, Some(3 * PAGE as u64 + 10), b"end")
        .expect("write");
    sim.lazy_writer();
    sim.memory_pressure();
    sim.close(h);
    sim.memory_pressure();
    let h = open_rw(&mut sim, "\\z");
    let s = sim.create_section(h, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    let all = sim.view_read(v, 0, 3 * PAGE + 13).expect("view read");
    assert!(all[..3 * PAGE + 10].iter().all(|b| *b == 0));
    assert_eq!(&all[3 * PAGE + 10..], b"end");
    // The last page's tail past end of file reads as zeros, and the paging read covered a
    // whole page past EOF without failing.
    assert_eq!(
        sim.view_read(v, 3 * PAGE as u64 + 13, PAGE - 13),
        Ok(vec![0; PAGE - 13])
    );
    let reads = paging_irps(&sim.trace(), mj::READ);
    assert!(
        reads.contains(&((3 * PAGE) as i64, PAGE as u32)),
        "{reads:?}"
    );
    sim.unmap_view(v);
    sim.close_section(s);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_14_paging_write_never_extends_eof() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\e");
    sim.write(h, Some(0), &filled(b'x', 100)).expect("write");
    let s = sim.create_section(h, true).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    // Past EOF but inside the mapped page.
    sim.view_write(v, 200, b"beyond eof").expect("view write");
    sim.view_write(v, 0, b"head").expect("view write");
    sim.take_trace();
    assert_eq!(sim.flush_view(v), status::STATUS_SUCCESS);
    let trace = sim.trace();
    assert_eq!(paging_irps(&trace, mj::WRITE), vec![(0, PAGE as u32)]);
    assert!(trace.iter().any(|e| matches!(
        e,
        Event::Callback {
            name: "PreAcquireForCcFlush",
            ..
        }
    )));
    // The paging write was trimmed at EOF: 100 bytes.
    assert!(
        trace.iter().any(|e| matches!(
            e,
            Event::Completed {
                major: 4,
                information: 100,
                ..
            }
        )),
        "{trace:#?}"
    );
    sim.unmap_view(v);
    sim.close_section(s);
    let mut expected = b"head".to_vec();
    expected.extend(filled(b'x', 96));
    assert_eq!(sim.read(h, 0, 4096), Ok(expected));
    sim.close(h);
    let leaks = sim.finish();
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn nt_14_lazy_writer_paging_write_past_eof_after_truncate_is_trimmed() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\t");
    sim.write(h, Some(0), &filled(3, 3000)).expect("write");
    sim.lazy_writer();
    sim.close(h);
    sim.memory_pressure();
    let h = open_rw(&mut sim, "\\t");
    assert_eq!(sim.read(h, 0, 5000), Ok(filled(3, 3000)));
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_04_close_comes_only_after_purge() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\held");
    let fo = sim.file_id(h);
    sim.write(h, Some(0), b"cached data").expect("write");
    sim.close(h);
    let trace = sim.trace();
    assert!(position(&trace, |e| e.is_irp_on(mj::CLEANUP, fo)).is_some());
    assert!(
        position(&trace, |e| e.is_irp_on(mj::CLOSE, fo)).is_none(),
        "Mm holds the file object"
    );
    // The lazy writer still writes through that file object after cleanup (NT-05).
    sim.lazy_writer();
    let trace = sim.trace();
    let cleanup = position(&trace, |e| e.is_irp_on(mj::CLEANUP, fo)).unwrap_or(usize::MAX);
    let paging = position(&trace, |e| {
        matches!(e, Event::Irp { major: 4, file: Some(f), flags, .. } if *f == fo && flags & IRP_PAGING_IO != 0)
    })
    .unwrap_or(0);
    assert!(
        paging > cleanup,
        "paging write after cleanup on the same file object"
    );
    assert!(sim.file_object_alive(fo));
    assert!(position(&trace, |e| e.is_irp_on(mj::CLOSE, fo)).is_none());
    // Another open and its close do not release it either.
    let g = open_rw(&mut sim, "\\held");
    sim.close(g);
    assert!(sim.file_object_alive(fo));
    // Memory pressure deletes the segment: now the close comes.
    sim.memory_pressure();
    let trace = sim.trace();
    let deleted = position(
        &trace,
        |e| matches!(e, Event::Kernel { name: "segment deleted", file: Some(f) } if *f == fo),
    );
    let close = position(&trace, |e| e.is_irp_on(mj::CLOSE, fo));
    assert!(deleted.is_some() && close > deleted, "{trace:#?}");
    assert!(!sim.file_object_alive(fo));
    finish_clean(sim);
}

#[test]
fn nt_04_close_comes_at_dismount_purge() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\d");
    let fo = sim.file_id(h);
    sim.write(h, Some(0), b"x").expect("write");
    sim.close(h);
    assert!(sim.file_object_alive(fo));
    sim.take_trace();
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    let trace = sim.trace();
    let fsctl = position(&trace, |e| e.is_irp(mj::FILE_SYSTEM_CONTROL));
    let close = position(&trace, |e| e.is_irp_on(mj::CLOSE, fo));
    assert!(fsctl < close, "{trace:#?}");
    // The dirty page was flushed before the purge: the data is on the medium.
    let mut volume = fs_core::Volume::mount(
        sim.medium(),
        fs_core::MountOptions::new(Box::new(fs_core::time::FixedClock(fs_core::time::NtTime(
            0,
        )))),
    )
    .expect("mount medium");
    let id = volume.resolve("\\d").expect("resolve");
    let mut buf = [0u8; 1];
    assert_eq!(volume.read(id, 0, &mut buf).ok(), Some(1));
    assert_eq!(&buf, b"x");
    finish_clean(sim);
}
