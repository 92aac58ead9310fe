//! NT-23's parts that ntsim can see: cowfat registers as a low-priority file system (so it is
//! not on the path of every disk mount on the machine), and the driver's paths run on a thread
//! with a kernel-sized stack (scripts/test runs this suite with `RUST_MIN_STACK`; see
//! tests/ntsim/README.md). The frame budgets themselves are checked on the image by
//! `stack-report` (tests/driver-image).
mod common;

use common::*;
use windows_sys::Wdk::Storage::FileSystem::DO_LOW_PRIORITY_FILESYSTEM;

#[test]
fn nt_23_cowfat_registers_as_a_low_priority_file_system() {
    let sim = Sim::new();
    let flags = ntsim::io::registered_file_system_flags();
    assert_eq!(flags.len(), 1, "one control device registered: {flags:x?}");
    assert_ne!(
        flags[0] & DO_LOW_PRIORITY_FILESYSTEM,
        0,
        "the control device must carry DO_LOW_PRIORITY_FILESYSTEM before IoRegisterFileSystem"
    );
    finish_clean(sim);
}

#[test]
fn nt_23_mount_create_write_read_fit_the_test_thread_stack() {
    // Mount, the deepest path of the driver, then the deep file paths: under RUST_MIN_STACK
    // (scripts/test) a frame regression overflows this thread's stack here.
    let mut sim = Sim::new();
    assert_eq!(sim.mount(), status::STATUS_SUCCESS);
    let h = open_rw(&mut sim, "\\dir-a");
    let data = vec![0x5a; 64 * 1024];
    sim.write(h, Some(0), &data).expect("write");
    let back = sim.read(h, 0, data.len()).expect("read");
    assert_eq!(back, data);
    sim.close(h);
    finish_clean(sim);
}
