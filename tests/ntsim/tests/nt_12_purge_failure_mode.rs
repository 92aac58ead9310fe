//! NT-12: FSCTL_SET_PURGE_FAILURE_MODE is counted per stream (several data-scan sections may
//! be open): the mode stays on until every enable has its disable, and it belongs to the
//! stream, not to the handle it was sent on.

mod common;
use common::*;

use windows_sys::Win32::Foundation::STATUS_PURGE_FAILED;

#[test]
fn nt_12_purge_failure_mode_is_counted_per_stream() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\s");
    sim.write(h, Some(0), &filled(1, 4096)).expect("write");
    sim.lazy_writer();
    let s = sim.create_section(h, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    assert_eq!(sim.view_read(v, 0, 1), Ok(vec![1]));
    let other = open_rw(&mut sim, "\\s");
    assert_eq!(sim.set_purge_failure_mode(h, true), status::STATUS_SUCCESS);
    assert_eq!(
        sim.set_purge_failure_mode(other, true),
        status::STATUS_SUCCESS
    );
    let n = open_nc(&mut sim, "\\s");
    assert_eq!(
        sim.write(n, Some(0), &filled(2, 512)),
        Err(STATUS_PURGE_FAILED)
    );
    assert_eq!(sim.set_purge_failure_mode(h, false), status::STATUS_SUCCESS);
    assert_eq!(
        sim.write(n, Some(0), &filled(2, 512)),
        Err(STATUS_PURGE_FAILED)
    );
    assert_eq!(sim.read(n, 0, 512), Ok(filled(1, 512)));
    assert_eq!(
        sim.set_purge_failure_mode(other, false),
        status::STATUS_SUCCESS
    );
    // Off again: the purge still fails (the view is there), the write goes on (NT-17).
    assert_eq!(sim.write(n, Some(0), &filled(2, 512)), Ok(512));
    let st = sim.mapped_state(n, false).expect("state");
    assert_eq!(
        (st.purge_failure_mode.get(), st.purge_failures.get()),
        (0, 3)
    );
    assert_eq!(sim.read(n, 0, 512), Ok(filled(2, 512)));
    sim.unmap_view(v);
    sim.close_section(s);
    for handle in [n, other, h] {
        sim.close(handle);
    }
    finish_clean(sim);
}
