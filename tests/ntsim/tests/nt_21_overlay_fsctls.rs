//! NT-21: overlay commit/discard of a file flush, then purge; while the file is user-mapped
//! (a purge fails, or writable user references exist) they fail with STATUS_USER_MAPPED_FILE
//! and change nothing. Online volume seal/commit; volume discard only under FSCTL_LOCK_VOLUME.

mod common;
use common::*;

use cowfat_fsctl::{
    FSCTL_COWFAT_COMMIT_FILE, FSCTL_COWFAT_COMMIT_VOLUME, FSCTL_COWFAT_DISCARD_FILE,
    FSCTL_COWFAT_DISCARD_VOLUME, FSCTL_COWFAT_SEAL_VOLUME, OVERLAY_MODIFIED, OVERLAY_SEALED,
};
use windows_sys::Win32::Foundation::STATUS_INVALID_DEVICE_STATE;

/// A volume sealed online through the FSCTL with `\f` holding 8 KiB of 'b'.
fn sealed_online(sim: &mut Sim) -> Handle {
    let h = open_rw(sim, "\\f");
    sim.write(h, Some(0), &filled(b'b', 8192)).expect("write");
    assert_eq!(
        sim.fsctl_status(h, FSCTL_COWFAT_DISCARD_FILE),
        STATUS_INVALID_DEVICE_STATE,
        "nothing to discard before a seal"
    );
    assert_eq!(
        sim.volume_fsctl(FSCTL_COWFAT_SEAL_VOLUME),
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.volume_fsctl(FSCTL_COWFAT_SEAL_VOLUME),
        STATUS_INVALID_DEVICE_STATE
    );
    h
}

#[test]
fn nt_21_discard_of_a_mapped_file_is_refused_and_changes_nothing() {
    let mut sim = Sim::new();
    let h = sealed_online(&mut sim);
    assert_eq!(sim.write(h, Some(0), b"NEW!"), Ok(4));
    // The overlay state is the medium's: the lazy writer puts the page there.
    sim.lazy_writer();
    let before = sim.overlay_state(h).expect("overlay");
    assert_eq!(before.flags.get() & OVERLAY_MODIFIED, OVERLAY_MODIFIED);
    let s = sim.create_section(h, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    for code in [FSCTL_COWFAT_DISCARD_FILE, FSCTL_COWFAT_COMMIT_FILE] {
        assert_eq!(sim.fsctl_status(h, code), status::STATUS_USER_MAPPED_FILE);
    }
    assert_eq!(sim.view_read(v, 0, 4).as_deref(), Ok(&b"NEW!"[..]));
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"NEW!"[..]));
    // The flush wrote the dirty page into the overlay; nothing else changed.
    let after = sim.overlay_state(h).expect("overlay");
    assert_eq!(after.flags.get(), before.flags.get());
    sim.unmap_view(v);
    sim.close_section(s);
    // A writable section with no view: still writable user references.
    let ws = sim.create_section(h, true).expect("writable section");
    assert_eq!(
        sim.fsctl_status(h, FSCTL_COWFAT_DISCARD_FILE),
        status::STATUS_USER_MAPPED_FILE
    );
    sim.close_section(ws);
    // Volume seal/commit refuse while writable references exist, too.
    let ws = sim.create_section(h, true).expect("writable section");
    assert_eq!(
        sim.volume_fsctl(FSCTL_COWFAT_COMMIT_VOLUME),
        status::STATUS_USER_MAPPED_FILE
    );
    sim.close_section(ws);
    // Unmapped: the discard goes through, and the cache shows the base.
    sim.take_trace();
    assert_eq!(
        sim.fsctl_status(h, FSCTL_COWFAT_DISCARD_FILE),
        status::STATUS_SUCCESS
    );
    assert_eq!(sim.read(h, 0, 8192), Ok(filled(b'b', 8192)));
    let st = sim.overlay_state(h).expect("overlay");
    assert_eq!(st.flags.get() & OVERLAY_MODIFIED, 0);
    assert_eq!(st.reserved_clusters.get(), 0);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_21_online_commit_then_volume_discard_with_nothing_open() {
    let mut sim = Sim::new();
    let h = sealed_online(&mut sim);
    assert_eq!(sim.write(h, Some(4096), &filled(b'c', 4096)), Ok(4096));
    assert_eq!(
        sim.volume_fsctl(FSCTL_COWFAT_COMMIT_VOLUME),
        status::STATUS_SUCCESS
    );
    let st = sim.overlay_state(h).expect("overlay");
    assert_eq!(
        st.flags.get() & (OVERLAY_MODIFIED | OVERLAY_SEALED),
        OVERLAY_SEALED
    );
    assert_eq!(sim.write(h, Some(0), &filled(b'd', 4096)), Ok(4096));
    // A handle is open: the volume discard is refused.
    assert_eq!(
        sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
        status::STATUS_ACCESS_DENIED
    );
    sim.close(h);
    // A mapping with no handle left also keeps the volume from being discarded.
    let r = open_rw(&mut sim, "\\f");
    let s = sim.create_section(r, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    sim.close(r);
    assert_eq!(
        sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
        status::STATUS_ACCESS_DENIED
    );
    sim.unmap_view(v);
    sim.close_section(s);
    assert_eq!(
        sim.volume_fsctl(FSCTL_COWFAT_DISCARD_VOLUME),
        status::STATUS_ACCESS_DENIED,
        "not without FSCTL_LOCK_VOLUME"
    );
    assert_eq!(
        sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
        status::STATUS_SUCCESS
    );
    let h = open_rw(&mut sim, "\\f");
    let mut expected = filled(b'b', 4096);
    expected.extend(filled(b'c', 4096));
    assert_eq!(sim.read(h, 0, 8192), Ok(expected));
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_21_file_discard_and_commit_report_modified_to_watchers() {
    const SIZE_AND_LAST_WRITE: u32 = 0x8 | 0x10;
    const FILE_ACTION_MODIFIED: u32 = 3;
    let mut sim = Sim::new();
    let dir = Open::new(access::GENERIC_READ)
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN_IF)
        .options(options::FILE_DIRECTORY_FILE);
    let d = sim.create("\\w", &dir).expect("directory");
    let h = open_rw(&mut sim, "\\w\\f");
    sim.write(h, Some(0), b"base").expect("write");
    assert_eq!(
        sim.volume_fsctl(FSCTL_COWFAT_SEAL_VOLUME),
        status::STATUS_SUCCESS
    );
    sim.write(h, Some(0), b"live").expect("write");
    for code in [FSCTL_COWFAT_DISCARD_FILE, FSCTL_COWFAT_COMMIT_FILE] {
        let watch = sim
            .notify_change_directory(d, SIZE_AND_LAST_WRITE, false, 256)
            .expect("watch");
        assert!(sim.notify_result(watch).is_none(), "the watcher pends");
        assert_eq!(sim.fsctl_status(h, code), status::STATUS_SUCCESS);
        let result = sim
            .notify_result(watch)
            .expect("completed by the overlay change");
        assert_eq!(result.status, status::STATUS_SUCCESS);
        let data = result.data;
        let action = u32::from_le_bytes(data[4..8].try_into().expect("action"));
        let len = u32::from_le_bytes(data[8..12].try_into().expect("length")) as usize;
        let name: Vec<u16> = data[12..12 + len]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(
            (action, String::from_utf16_lossy(&name)),
            (FILE_ACTION_MODIFIED, "f".into())
        );
    }
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"base"[..]));
    sim.close(h);
    sim.close(d);
    finish_clean(sim);
}
