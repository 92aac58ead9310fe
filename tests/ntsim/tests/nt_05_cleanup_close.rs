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
