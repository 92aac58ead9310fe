//! NT-27: paging I/O and Mm's closes arrive at APC_LEVEL, where a threaded IRP's completion
//! (a special kernel APC) cannot run. The driver's disk transfers must complete there: a view
//! fault that misses the cache, the lazy writer's flush and a close from Mm, each with a disk
//! that pends every request (so the driver really waits). With the transfer cowfat used
//! before (`IoBuildSynchronousFsdRequest`), ntsim bug-checks, as Windows would hang.
//! Also: reads made to verify a volume carry `SL_OVERRIDE_VERIFY_VOLUME` (NT-29's verify
//! sentence), and the disk refuses the others while `DO_VERIFY_VOLUME` is set.

mod common;

use std::process::Command;

use common::*;
use ntsim::irql;
use windows_sys::Win32::Foundation::{STATUS_PENDING, STATUS_VERIFY_REQUIRED};

const PAGE: usize = 4096;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Was a dispatch of `major` with `IRP_PAGING_IO` (or any flags, if `paging` is false) made
/// at APC_LEVEL?
fn at_apc_level(dispatches: &[(u8, u32)], major: u32, paging: bool) -> bool {
    dispatches
        .iter()
        .any(|&(m, flags)| u32::from(m) == major && (!paging || flags & IRP_PAGING_IO != 0))
}

/// A file whose pages are on disk and nowhere in memory, mapped in a view; the disk pends
/// every request from here on.
fn mapped_file_not_in_memory(sim: &mut Sim, data: &[u8]) -> (Handle, ntsim::Section, ntsim::View) {
    let h = open_rw(sim, "\\fault.bin");
    assert_eq!(sim.write(h, Some(0), data), Ok(data.len()));
    // Written out and dropped: the next touch of a page is a cache miss.
    sim.memory_pressure();
    let section = sim.create_section(h, false).expect("section");
    let view = sim.map_view(section, 0, data.len() as u64).expect("view");
    sim.set_disk_pending(true);
    sim.take_apc_level_dispatches();
    (h, section, view)
}

#[test]
fn nt_27_view_fault_that_misses_the_cache_completes_at_apc_level() {
    let mut sim = Sim::new();
    let data = pattern(3, 3 * PAGE);
    let (h, section, view) = mapped_file_not_in_memory(&mut sim, &data);
    let (reads_before, _) = sim.disk_transfers();
    let pended_before = sim.disk_requests_pended();
    assert_eq!(sim.view_read(view, 0, data.len()), Ok(data.clone()));
    let dispatches = sim.take_apc_level_dispatches();
    assert!(
        at_apc_level(&dispatches, mj::READ, true),
        "no paging read at APC_LEVEL: {dispatches:x?}"
    );
    assert!(
        sim.disk_transfers().0 > reads_before,
        "the fault did not read the disk"
    );
    assert!(
        sim.disk_requests_pended() > pended_before,
        "the disk pended nothing: the driver never waited"
    );
    sim.set_disk_pending(false);
    sim.unmap_view(view);
    sim.close_section(section);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_27_lazy_writer_flush_completes_at_apc_level() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\lazy.bin");
    let data = pattern(7, 2 * PAGE);
    assert_eq!(sim.write(h, Some(0), &data), Ok(data.len()));
    sim.set_disk_pending(true);
    sim.take_apc_level_dispatches();
    let (_, writes_before) = sim.disk_transfers();
    sim.lazy_writer();
    let dispatches = sim.take_apc_level_dispatches();
    assert!(
        at_apc_level(&dispatches, mj::WRITE, true),
        "no paging write at APC_LEVEL: {dispatches:x?}"
    );
    assert!(
        sim.disk_transfers().1 > writes_before,
        "the flush wrote nothing"
    );
    // What the lazy writer wrote is on the medium: a non-cached read sees it.
    let nc = open_nc(&mut sim, "\\lazy.bin");
    assert_eq!(sim.read(nc, 0, data.len()), Ok(data));
    sim.set_disk_pending(false);
    sim.close(nc);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_27_close_from_mm_completes_at_apc_level() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\mm-close.bin");
    let data = pattern(11, 2 * PAGE);
    assert_eq!(sim.write(h, Some(0), &data), Ok(data.len()));
    let id = sim.file_id(h);
    let section = sim.create_section(h, true).expect("section");
    let view = sim.map_view(section, 0, data.len() as u64).expect("view");
    sim.view_write(view, 100, b"from the view")
        .expect("view write");
    sim.close(h);
    sim.unmap_view(view);
    sim.close_section(section);
    assert!(
        sim.file_object_alive(id),
        "Mm still references the file object"
    );
    sim.set_disk_pending(true);
    sim.take_apc_level_dispatches();
    // Mm writes the dirty page and deletes the segment: its reference goes, and with it the
    // file object (IRP_MJ_CLOSE), all at APC_LEVEL.
    sim.memory_pressure();
    let dispatches = sim.take_apc_level_dispatches();
    assert!(
        at_apc_level(&dispatches, mj::WRITE, true),
        "no paging write at APC_LEVEL: {dispatches:x?}"
    );
    assert!(
        at_apc_level(&dispatches, mj::CLOSE, false),
        "no close at APC_LEVEL: {dispatches:x?}"
    );
    assert!(
        !sim.file_object_alive(id),
        "the close from Mm did not finish"
    );
    sim.set_disk_pending(false);
    let nc = open_nc(&mut sim, "\\mm-close.bin");
    let mut expected = data;
    expected[100..113].copy_from_slice(b"from the view");
    assert_eq!(sim.read(nc, 0, expected.len()), Ok(expected));
    sim.close(nc);
    finish_clean(sim);
}

/// Runs one ignored test of this binary in a child process (a bug check aborts the process).
fn run_child(name: &str) -> (bool, String) {
    let exe = std::env::current_exe().expect("test binary");
    let output = Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the child test");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
}

#[test]
#[ignore = "run in a child process by nt_27_threaded_irps_bug_check_at_apc_level"]
fn nt_27_child_view_fault_with_threaded_irps() {
    let mut sim = Sim::new();
    let data = pattern(3, 3 * PAGE);
    let (_h, _section, view) = mapped_file_not_in_memory(&mut sim, &data);
    // The driver's disk transfers as they were before NT-27.
    fs_driver::blockdev::threaded::enable_for_test(true);
    let _ = sim.view_read(view, 0, data.len());
    eprintln!("the fault completed with threaded IRPs");
}

#[test]
fn nt_27_threaded_irps_bug_check_at_apc_level() {
    let (success, stderr) = run_child("nt_27_child_view_fault_with_threaded_irps");
    assert!(!success, "the child survived: {stderr}");
    assert!(
        stderr.contains(
            "ntsim bug check: NT-27 IRQL_NOT_LESS_OR_EQUAL: IoBuildSynchronousFsdRequest \
             called at APC_LEVEL"
        ),
        "{stderr}"
    );
}

#[test]
fn nt_27_threaded_irp_completes_through_its_apc_at_passive_level() {
    let mut sim = Sim::new();
    // Sim::new's disk.
    let size: i64 = 16 << 20;
    sim.set_disk_pending(true);
    let request = sim.send_threaded_length_query();
    assert_eq!(request.returned, STATUS_PENDING);
    // Nothing is written back before the completion APC runs.
    assert_eq!(request.result(), (0, 0, 0));
    assert_eq!(sim.wait_for(&request), 0);
    assert_eq!(request.result(), (0, 8, size));
    // Completed at once (not pended) at PASSIVE_LEVEL: the APC runs before the call returns.
    sim.set_disk_pending(false);
    let request = sim.send_threaded_length_query();
    assert_eq!(request.returned, 0);
    assert_eq!(request.result(), (0, 8, size));
    finish_clean(sim);
}

#[test]
#[ignore = "run in a child process by nt_27_waiting_at_apc_level_for_a_threaded_irp_bug_checks"]
fn nt_27_child_wait_at_apc_level_for_a_threaded_irp() {
    let mut sim = Sim::new();
    sim.set_disk_pending(true);
    let request = sim.send_threaded_length_query();
    assert_eq!(request.returned, STATUS_PENDING);
    let _old = sim.raise_irql(irql::APC_LEVEL);
    sim.wait_for(&request);
    eprintln!("the wait at APC_LEVEL returned");
}

#[test]
fn nt_27_waiting_at_apc_level_for_a_threaded_irp_bug_checks() {
    let (success, stderr) = run_child("nt_27_child_wait_at_apc_level_for_a_threaded_irp");
    assert!(!success, "the child survived: {stderr}");
    assert!(
        stderr.contains("ntsim bug check: NT-27 hang: KeWaitForSingleObject at APC_LEVEL"),
        "{stderr}"
    );
}

#[test]
fn nt_27_verify_reads_override_verify_volume() {
    let mut sim = Sim::new();
    let h = open_nc(&mut sim, "\\verify.bin");
    let data = pattern(5, PAGE);
    assert_eq!(sim.write(h, Some(0), &data), Ok(data.len()));
    // The disk saw a media change: only verify I/O gets through.
    sim.set_verify_required();
    assert_eq!(sim.read(h, 0, PAGE), Err(STATUS_VERIFY_REQUIRED));
    let refused = sim.verify_required_failures();
    assert!(refused > 0);
    // The verify's own reads carry SL_OVERRIDE_VERIFY_VOLUME: same medium, verified.
    assert_eq!(sim.verify(), (status::STATUS_SUCCESS, true));
    assert_eq!(
        sim.verify_required_failures(),
        refused,
        "a verify read was refused"
    );
    assert_eq!(sim.read(h, 0, PAGE), Ok(data));
    sim.close(h);
    finish_clean(sim);
}
