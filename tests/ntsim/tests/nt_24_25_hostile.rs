//! NT-24 (exceptions) and NT-25 (hostile callers): invalid user buffers on read, write and
//! directory query, cached and non-cached; disk errors under Cc's copies; METHOD_NEITHER
//! FSCTLs from user mode with kernel or unmapped addresses. Each request completes with a
//! status, nothing is held or leaked, the handle keeps working and the volume checks clean.

mod common;
use common::*;

use fs_driver::nt::{FSCTL_GET_RETRIEVAL_POINTERS, FSCTL_GET_VOLUME_BITMAP};
use ntsim::hostile::Hostile;
use windows_sys::Win32::Foundation::{
    NTSTATUS, STATUS_ACCESS_VIOLATION, STATUS_BUFFER_OVERFLOW, STATUS_DEVICE_DATA_ERROR,
    STATUS_INVALID_USER_BUFFER,
};

const PAGE: usize = 4096;
const FILE_DIRECTORY_INFORMATION: i32 = 1;

fn is_bad_buffer(status: NTSTATUS) -> bool {
    status == STATUS_INVALID_USER_BUFFER || status == STATUS_ACCESS_VIOLATION
}

/// Dismount, unload, no leak, and fsck clean on the medium.
fn finish_checked(sim: Sim) {
    let leaks = sim.finish_keeping_medium();
    assert!(leaks.0.is_empty(), "leaked: {:?}", leaks.0);
    let (report, _) = fs_core::fsck::check(leaks.1, false, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("the volume does not check: {e}"));
    assert!(report.is_clean(), "fsck: {:#?}", report.problems);
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(3))
        .collect()
}

#[test]
fn nt_24_cached_read_and_write_into_an_invalid_user_buffer_fail_cleanly() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\bad-cached");
    sim.write(h, Some(0), &pattern(2 * PAGE)).expect("write");
    let status = sim.read_unmapped(h, 0, 2 * PAGE as u32);
    assert!(is_bad_buffer(status), "cached read: {status:#x}");
    let status = sim.write_unmapped(h, 100, 300);
    assert!(is_bad_buffer(status), "cached write: {status:#x}");
    assert!(sim.exceptions_raised() >= 2, "Cc raised");
    // The same handle goes on working, with its data intact.
    assert_eq!(sim.read(h, 0, 2 * PAGE), Ok(pattern(2 * PAGE)));
    assert_eq!(sim.write(h, Some(10), b"again"), Ok(5));
    assert_eq!(sim.read(h, 10, 5).as_deref(), Ok(&b"again"[..]));
    sim.close(h);
    finish_checked(sim);
}

#[test]
fn nt_25_noncached_read_and_write_with_an_invalid_user_buffer_fail_before_any_lock() {
    let mut sim = Sim::new();
    let h = open_nc(&mut sim, "\\bad-nc");
    sim.write(h, Some(0), &pattern(2 * PAGE)).expect("write");
    let status = sim.read_unmapped(h, 0, PAGE as u32);
    assert!(is_bad_buffer(status), "non-cached read: {status:#x}");
    let status = sim.write_unmapped(h, 0, PAGE as u32);
    assert!(is_bad_buffer(status), "non-cached write: {status:#x}");
    assert_eq!(sim.read(h, 0, 2 * PAGE), Ok(pattern(2 * PAGE)));
    assert_eq!(sim.write(h, Some(0), &pattern(PAGE)), Ok(PAGE));
    sim.close(h);
    finish_checked(sim);
}

#[test]
fn nt_25_directory_query_into_an_invalid_user_buffer_fails_cleanly() {
    let mut sim = Sim::new();
    let f = open_rw(&mut sim, "\\listed");
    sim.close(f);
    let dir = sim
        .create("\\", &Open::new(access::FILE_READ_DATA).share(share::ALL))
        .expect("open root");
    let status = sim.query_directory_unmapped(dir, FILE_DIRECTORY_INFORMATION, 4096);
    assert!(is_bad_buffer(status), "directory query: {status:#x}");
    let (status, data) = sim.query_directory(dir, FILE_DIRECTORY_INFORMATION, 4096, None, 0x01, 0);
    assert_eq!(status, status::STATUS_SUCCESS);
    assert!(!data.is_empty());
    sim.close(dir);
    finish_checked(sim);
}

/// The names in a `FILE_DIRECTORY_INFORMATION` reply.
fn directory_names(mut b: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    while b.len() >= 64 {
        let next = u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize;
        let len = u32::from_le_bytes(b[60..64].try_into().unwrap()) as usize;
        let units: Vec<u16> = b[64..64 + len]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        names.push(String::from_utf16_lossy(&units));
        if next == 0 {
            break;
        }
        b = &b[next..];
    }
    names
}

#[test]
fn nt_25_a_directory_query_that_failed_its_copy_out_skips_no_entry() {
    let mut sim = Sim::new();
    let mut want: Vec<String> = (0..6).map(|i| format!("entry{i}")).collect();
    for name in &want {
        let f = open_rw(&mut sim, &format!("\\{name}"));
        sim.close(f);
    }
    let dir = sim
        .create("\\", &Open::new(access::FILE_READ_DATA).share(share::ALL))
        .expect("open root");
    // One entry first, then a query whose buffer is unmapped: the entries it had gathered
    // were never delivered, so they must come again.
    let (status, first) = sim.query_directory(dir, FILE_DIRECTORY_INFORMATION, 4096, None, 0x03, 0);
    assert_eq!(status, status::STATUS_SUCCESS);
    let mut got = directory_names(&first);
    assert_eq!(got.len(), 1);
    kernel_unmapped_query(&mut sim, dir);
    loop {
        let (status, data) = sim.query_directory(dir, FILE_DIRECTORY_INFORMATION, 4096, None, 0, 0);
        if status == windows_sys::Win32::Foundation::STATUS_NO_MORE_FILES {
            break;
        }
        assert_eq!(status, status::STATUS_SUCCESS);
        got.extend(directory_names(&data));
    }
    got.sort();
    want.sort();
    assert_eq!(got, want, "every name listed once");
    sim.close(dir);
    finish_checked(sim);
}

/// A directory query (continuing the scan, not restarting it) into an unmapped buffer.
fn kernel_unmapped_query(sim: &mut Sim, dir: Handle) {
    let status = sim.query_directory_unmapped_from(dir, FILE_DIRECTORY_INFORMATION, 4096, 0);
    assert!(is_bad_buffer(status), "directory query: {status:#x}");
}

#[test]
fn nt_24_cached_read_and_write_hitting_a_disk_error_return_it() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\disk-error");
    sim.write(h, Some(0), &pattern(3 * PAGE)).expect("write");
    sim.close(h);
    // Out of memory: the next cached access must read the disk.
    sim.memory_pressure();
    let h = open_rw(&mut sim, "\\disk-error");
    sim.set_disk_read_error(true);
    assert_eq!(sim.read(h, 0, PAGE), Err(STATUS_DEVICE_DATA_ERROR));
    // A partial-page cached write must read the page first.
    assert_eq!(
        sim.write(h, Some(PAGE as u64 + 10), b"xy"),
        Err(STATUS_DEVICE_DATA_ERROR)
    );
    sim.set_disk_read_error(false);
    assert_eq!(sim.read(h, 0, 3 * PAGE), Ok(pattern(3 * PAGE)));
    assert_eq!(sim.write(h, Some(PAGE as u64 + 10), b"xy"), Ok(2));
    let mut want = pattern(3 * PAGE);
    want[PAGE + 10..PAGE + 12].copy_from_slice(b"xy");
    assert_eq!(sim.read(h, 0, 3 * PAGE), Ok(want));
    sim.close(h);
    finish_checked(sim);
}

fn lcn_input(lcn: i64) -> Vec<u8> {
    lcn.to_le_bytes().to_vec()
}

#[test]
fn nt_25_method_neither_fsctls_from_user_mode_refuse_kernel_and_unmapped_addresses() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\mapped-out");
    sim.write(h, Some(0), &pattern(5 * PAGE)).expect("write");
    sim.close(h);
    let h = open_rw(&mut sim, "\\mapped-out");
    let v = sim.open_volume().expect("volume");
    let cases: [(Handle, u32); 2] = [
        (h, FSCTL_GET_RETRIEVAL_POINTERS),
        (v, FSCTL_GET_VOLUME_BITMAP),
    ];
    for (handle, code) in cases {
        // A sane request works from user mode.
        let (status, intact) = sim.fsctl_hostile(handle, code, &lcn_input(0), None, 64, None);
        assert!(
            status >= 0 || status == STATUS_BUFFER_OVERFLOW,
            "{code:#x}: {status:#x}"
        );
        assert!(intact);
        for (input_at, output_at) in [
            (None, Some(Hostile::Kernel)),
            (None, Some(Hostile::Unmapped)),
            (Some(Hostile::Kernel), None),
            (Some(Hostile::Unmapped), None),
        ] {
            let (status, intact) =
                sim.fsctl_hostile(handle, code, &lcn_input(0), input_at, 64, output_at);
            assert!(
                is_bad_buffer(status),
                "{code:#x} input {input_at:?} output {output_at:?}: {status:#x}"
            );
            assert!(intact, "{code:#x}: a watched kernel byte was written");
        }
    }
    sim.close(v);
    sim.close(h);
    finish_checked(sim);
}

#[test]
fn nt_25_noncached_read_into_a_view_of_another_file_on_the_volume() {
    let mut sim = Sim::new();
    let source = open_nc(&mut sim, "\\source");
    let data = pattern(2 * PAGE);
    assert_eq!(sim.write(source, Some(0), &data), Ok(data.len()));
    let target = open_rw(&mut sim, "\\target");
    assert_eq!(
        sim.write(target, Some(0), &vec![0x11; 3 * PAGE]),
        Ok(3 * PAGE)
    );
    sim.close(target);
    // Nothing of the target cached: the lock must fault its pages in through our paging read.
    sim.memory_pressure();
    let target = open_rw(&mut sim, "\\target");
    let section = sim.create_section(target, true).expect("section");
    let view = sim.map_view(section, 0, 3 * PAGE as u64).expect("view");
    sim.take_trace();
    let status = sim.read_into_view(source, 0, 2 * PAGE as u32, view, PAGE as u64);
    assert_eq!(status, status::STATUS_SUCCESS);
    // Locking the buffer faulted the target's pages in through our own paging read, before
    // any lock was taken (ntsim's after-dispatch checks and the driver's volume-borrow check
    // stayed quiet).
    let trace = sim.take_trace();
    assert!(
        trace
            .iter()
            .any(|e| matches!(e, Event::Irp { major: 3, flags, .. }
            if flags & IRP_PAGING_IO != 0)),
        "{trace:#?}"
    );
    assert_eq!(sim.view_read(view, PAGE as u64, 2 * PAGE), Ok(data.clone()));
    assert_eq!(sim.view_read(view, 0, PAGE), Ok(vec![0x11; PAGE]));
    sim.modified_page_writer();
    sim.unmap_view(view);
    sim.close_section(section);
    let mut want = vec![0x11; PAGE];
    want.extend(&data);
    assert_eq!(sim.read(target, 0, 3 * PAGE), Ok(want));
    sim.close(target);
    sim.close(source);
    finish_checked(sim);
}

#[test]
fn nt_25_private_fsctls_never_reach_the_file_system_with_a_callers_address() {
    use cowfat_fsctl::*;
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\private");
    sim.write(h, Some(0), b"data").expect("write");
    let codes = [
        FSCTL_COWFAT_QUERY_MAPPED_STATE,
        FSCTL_COWFAT_QUERY_OVERLAY,
        FSCTL_COWFAT_COMMIT_FILE,
        FSCTL_COWFAT_DISCARD_FILE,
        FSCTL_COWFAT_SEAL_VOLUME,
        FSCTL_COWFAT_COMMIT_VOLUME,
        FSCTL_COWFAT_DISCARD_VOLUME,
    ];
    for code in codes {
        // METHOD_BUFFERED: the I/O manager copies the caller's buffers, so the file system
        // only ever sees a system buffer. A private FSCTL with another method would need the
        // probing the two METHOD_NEITHER ones get.
        assert_eq!(code & 3, 0, "{code:#x} is not METHOD_BUFFERED");
        sim.take_trace();
        for (input_at, output_at) in [
            (None, Some(Hostile::Kernel)),
            (None, Some(Hostile::Unmapped)),
            (Some(Hostile::Kernel), None),
            (Some(Hostile::Unmapped), None),
        ] {
            let (status, intact) = sim.fsctl_hostile(h, code, &[0; 8], input_at, 64, output_at);
            assert!(is_bad_buffer(status), "{code:#x}: {status:#x}");
            assert!(intact);
        }
        let trace = sim.take_trace();
        assert!(
            !trace.iter().any(|e| e.is_irp(mj::FILE_SYSTEM_CONTROL)),
            "{code:#x}: an IRP reached the file system: {trace:#?}"
        );
    }
    sim.close(h);
    finish_checked(sim);
}

#[test]
fn nt_24_cached_read_into_a_view_of_another_file_faults_it_in() {
    let mut sim = Sim::new();
    let source = open_rw(&mut sim, "\\source");
    let data = pattern(PAGE + 300);
    assert_eq!(sim.write(source, Some(0), &data), Ok(data.len()));
    let target = open_rw(&mut sim, "\\target");
    assert_eq!(
        sim.write(target, Some(0), &vec![0x22; 3 * PAGE]),
        Ok(3 * PAGE)
    );
    sim.close(target);
    sim.memory_pressure();
    let target = open_rw(&mut sim, "\\target");
    let section = sim.create_section(target, true).expect("section");
    let view = sim.map_view(section, 0, 3 * PAGE as u64).expect("view");
    sim.take_trace();
    // Cc copies into the view while the driver holds the source's resource: the copy faults
    // the target's pages in through a paging read of the target.
    let status = sim.read_into_view(source, 0, data.len() as u32, view, 100);
    assert_eq!(status, status::STATUS_SUCCESS);
    let trace = sim.take_trace();
    assert!(
        trace
            .iter()
            .any(|e| matches!(e, Event::Irp { major: 3, flags, .. }
            if flags & IRP_PAGING_IO != 0)),
        "{trace:#?}"
    );
    assert_eq!(sim.view_read(view, 100, data.len()), Ok(data.clone()));
    sim.unmap_view(view);
    sim.close_section(section);
    sim.close(target);
    sim.close(source);
    finish_checked(sim);
}
