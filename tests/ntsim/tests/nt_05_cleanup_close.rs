//! NT-05: cleanup when the last handle goes, close when the last reference goes; mount and
//! dismount around them; the driver's whole create/cleanup/close cycle leaks nothing.

mod common;
use common::*;

#[test]
fn nt_05_mount_create_write_read_close_dismount() {
    let mut sim = Sim::new();
    assert_eq!(sim.mount(), status::STATUS_SUCCESS);
    let h = open_nc(&mut sim, "\\a.txt");
    let data = filled(0x5A, 4096);
    assert_eq!(sim.write(h, Some(0), &data), Ok(4096));
    assert_eq!(sim.read(h, 0, 4096), Ok(data));
    let fo = sim.file_id(h);
    sim.close(h);
    let trace = sim.trace();
    let cleanup = position(&trace, |e| e.is_irp_on(mj::CLEANUP, fo));
    let close = position(&trace, |e| e.is_irp_on(mj::CLOSE, fo));
    assert!(
        cleanup.is_some() && close.is_some() && cleanup < close,
        "{trace:#?}"
    );
    finish_clean(sim);
}

#[test]
fn nt_05_unrecognized_volume_is_refused() {
    let mut sim = Sim::with_medium(fs_core::MemDevice::new(8 << 20));
    assert_eq!(sim.mount(), status::STATUS_UNRECOGNIZED_VOLUME);
    let open = sim.create("\\a", &Open::read_write());
    assert_eq!(open, Err(status::STATUS_UNRECOGNIZED_VOLUME));
    finish_clean(sim);
}

#[test]
fn nt_05_disk_that_pends_every_request() {
    let mut sim = Sim::new();
    sim.set_disk_pending(true);
    let h = open_rw(&mut sim, "\\p.txt");
    sim.write(h, Some(0), &filled(9, 10_000))
        .expect("cached write");
    sim.lazy_writer();
    let n = open_nc(&mut sim, "\\p.txt");
    assert_eq!(sim.read(n, 4096, 4096), Ok(filled(9, 4096)));
    sim.close(n);
    sim.close(h);
    assert!(
        sim.disk_requests_pended() > 0,
        "the driver's sector I/O went through the pending path"
    );
    finish_clean(sim);
}

#[test]
fn nt_05_dismount_with_an_open_handle() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\open.txt");
    sim.write(h, Some(0), b"kept").expect("write");
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    assert!(!sim.is_mounted());
    // The handle still works as far as cleanup and close go; I/O is refused.
    assert_eq!(
        sim.read(h, 0, 4),
        Err(windows_sys::Win32::Foundation::STATUS_VOLUME_DISMOUNTED)
    );
    sim.close(h);
    // A new open mounts the volume again and sees the data flushed at dismount.
    let again = open_rw(&mut sim, "\\open.txt");
    assert_eq!(sim.read(again, 0, 4).as_deref(), Ok(&b"kept"[..]));
    sim.close(again);
    finish_clean(sim);
}

#[test]
fn nt_18_lock_order_holds_across_every_io_path() {
    // ntsim bug-checks on an NT-18 violation (main after paging I/O on one thread, or the
    // main resource inside a paging request); this drives every path that takes both.
    let mut sim = Sim::new();
    let c = open_rw(&mut sim, "\\locks");
    let n = open_nc(&mut sim, "\\locks");
    sim.write(c, Some(0), &filled(1, 3 * 4096))
        .expect("cached write");
    let s = sim.create_section(c, true).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    sim.view_write(v, 10, b"mapped").expect("view write");
    assert_eq!(
        sim.read(n, 0, 4096).map(|d| d[10..16].to_vec()),
        Ok(b"mapped".to_vec())
    );
    assert_eq!(sim.flush_view(v), status::STATUS_SUCCESS);
    sim.unmap_view(v);
    sim.close_section(s);
    sim.write(n, Some(4096), &filled(2, 4096))
        .expect("non-cached write");
    sim.write(c, Some(5000), b"more").expect("cached write");
    sim.lazy_writer();
    sim.modified_page_writer();
    sim.memory_pressure();
    sim.close(c);
    sim.close(n);
    finish_clean(sim);
}

#[test]
fn nt_05_verify_after_a_media_change() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\v.txt");
    sim.close(h);
    assert_eq!(sim.verify(), (status::STATUS_SUCCESS, true), "same medium");
    let other = {
        let mut medium = fs_core::MemDevice::new(16 << 20);
        let options = fs_core::FormatOptions {
            serial: 0x0DD5_E41A,
            ..fs_core::FormatOptions::default()
        };
        fs_core::format(&mut medium, &options).expect("format");
        medium
    };
    let original = sim.replace_medium(other).expect("medium");
    assert_eq!(
        sim.verify(),
        (windows_sys::Win32::Foundation::STATUS_WRONG_VOLUME, true),
        "another cowfat volume"
    );
    sim.replace_medium(fs_core::MemDevice::new(16 << 20));
    assert_eq!(
        sim.verify(),
        (windows_sys::Win32::Foundation::STATUS_WRONG_VOLUME, true),
        "not cowfat"
    );
    sim.replace_medium(original);
    assert_eq!(
        sim.verify(),
        (status::STATUS_SUCCESS, true),
        "the original is back"
    );
    finish_clean(sim);
}
