//! Volume FSCTLs (issue 7): FSCTL_LOCK_VOLUME fails while a file is open and while a view
//! is mapped (even with every handle closed, NT-08), succeeds after; while locked nothing
//! opens; FSCTL_UNLOCK_VOLUME and the locking handle's cleanup end it;
//! FSCTL_IS_VOLUME_MOUNTED; FSCTL_DISMOUNT_VOLUME (locked by the caller or not: old handles
//! then fail with STATUS_VOLUME_DISMOUNTED, still close, nothing leaks);
//! FSCTL_GET_VOLUME_BITMAP and FSCTL_GET_RETRIEVAL_POINTERS (METHOD_NEITHER), their layouts
//! checked byte for byte against windows-sys's NT structures.

mod common;
use common::*;

use std::mem::{offset_of, size_of};

use windows_sys::Win32::Foundation::{
    STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL, STATUS_NOT_LOCKED, STATUS_VOLUME_DISMOUNTED,
};
use windows_sys::Win32::System::Ioctl::{
    FSCTL_GET_RETRIEVAL_POINTERS, FSCTL_GET_VOLUME_BITMAP, RETRIEVAL_POINTERS_BUFFER,
    RETRIEVAL_POINTERS_BUFFER_0, STARTING_LCN_INPUT_BUFFER, STARTING_VCN_INPUT_BUFFER,
    VOLUME_BITMAP_BUFFER,
};

const FSCTL_LOCK_VOLUME: u32 = 0x0009_0018;
const FSCTL_UNLOCK_VOLUME: u32 = 0x0009_001C;
const FSCTL_IS_VOLUME_MOUNTED: u32 = 0x0009_0028;
const FSCTL_DISMOUNT_VOLUME: u32 = 0x0009_0020;
const CLUSTER: usize = 4096;

#[test]
fn vol_lock_fails_while_a_file_is_open_and_succeeds_after() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\open");
    sim.write(h, Some(0), b"dirty").expect("write");
    let v = sim.open_volume().expect("volume");
    assert_eq!(
        sim.fsctl(v, FSCTL_IS_VOLUME_MOUNTED, &[], 0).0,
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_ACCESS_DENIED
    );
    sim.close(h);
    sim.take_trace();
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS
    );
    assert_eq!(
        paging_irps(&sim.trace(), mj::WRITE),
        vec![(0, 4096)],
        "the lock flushed the dirty page"
    );
    assert_eq!(
        sim.create("\\other", &Open::read_write()).err(),
        Some(status::STATUS_ACCESS_DENIED)
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_UNLOCK_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_UNLOCK_VOLUME, &[], 0).0,
        STATUS_NOT_LOCKED
    );
    let h = open_rw(&mut sim, "\\other");
    assert_eq!(sim.read(h, 0, 1), Err(status::STATUS_END_OF_FILE));
    sim.close(h);
    let r = sim
        .create(
            "\\open",
            &Open::read_write().disposition(disposition::FILE_OPEN),
        )
        .expect("open");
    assert_eq!(
        sim.read(r, 0, 5).as_deref(),
        Ok(&b"dirty"[..]),
        "flushed data survived the purge"
    );
    sim.close(r);
    sim.close(v);
    finish_clean(sim);
}

#[test]
fn vol_lock_fails_while_a_view_is_mapped_and_cleanup_unlocks() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\mapped");
    sim.write(h, Some(0), &filled(b'v', 4096)).expect("write");
    let section = sim.create_section(h, false).expect("section");
    let view = sim.map_view(section, 0, 0).expect("view");
    sim.close_section(section);
    sim.close(h);
    let v = sim.open_volume().expect("volume");
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_ACCESS_DENIED,
        "no handle is open, but a view still maps the file"
    );
    sim.unmap_view(view);
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS
    );
    let second = sim.open_volume();
    assert_eq!(
        second.err(),
        Some(status::STATUS_ACCESS_DENIED),
        "locked: even volume opens fail"
    );
    sim.close(v);
    let h = open_rw(&mut sim, "\\after");
    sim.close(h);
    finish_clean(sim);
}

// ---- FSCTL_DISMOUNT_VOLUME ----

#[test]
fn vol_dismount_unlocked_then_io_on_old_handles_fails() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\kept");
    sim.write(h, Some(0), b"kept").expect("write");
    let v = sim.open_volume().expect("volume");
    sim.take_trace();
    assert_eq!(
        sim.fsctl(v, FSCTL_DISMOUNT_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS,
        "unlocked, with a file open: allowed"
    );
    assert_eq!(
        paging_irps(&sim.trace(), mj::WRITE),
        vec![(0, 4096)],
        "the dismount flushed the dirty page"
    );
    assert!(!sim.is_mounted());
    assert_eq!(sim.read(h, 0, 4), Err(STATUS_VOLUME_DISMOUNTED));
    assert_eq!(
        sim.write(h, Some(0), b"late"),
        Err(STATUS_VOLUME_DISMOUNTED)
    );
    assert_eq!(
        sim.fsctl(h, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(0), 64)
            .0,
        STATUS_VOLUME_DISMOUNTED
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_IS_VOLUME_MOUNTED, &[], 0).0,
        STATUS_VOLUME_DISMOUNTED
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &lcn_input(0), 64).0,
        STATUS_VOLUME_DISMOUNTED
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_DISMOUNT_VOLUME, &[], 0).0,
        STATUS_VOLUME_DISMOUNTED
    );
    // Cleanup and close of the old handles still work (the old VCB goes with the last).
    sim.close(h);
    sim.close(v);
    // A new open mounts afresh and sees what the dismount flushed.
    let again = open_rw(&mut sim, "\\kept");
    assert!(sim.is_mounted());
    assert_eq!(sim.read(again, 0, 4).as_deref(), Ok(&b"kept"[..]));
    sim.close(again);
    finish_clean(sim);
}

#[test]
fn vol_dismount_of_a_locked_volume_by_its_holder() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\file");
    sim.write(h, Some(0), b"data").expect("write");
    sim.close(h);
    let v = sim.open_volume().expect("volume");
    assert_eq!(
        sim.fsctl(v, FSCTL_LOCK_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.fsctl(v, FSCTL_DISMOUNT_VOLUME, &[], 0).0,
        status::STATUS_SUCCESS
    );
    assert!(!sim.is_mounted());
    assert_eq!(
        sim.fsctl(v, FSCTL_IS_VOLUME_MOUNTED, &[], 0).0,
        STATUS_VOLUME_DISMOUNTED
    );
    // The lock was the old volume's: a new open mounts a new one and is not refused.
    let r = sim
        .create(
            "\\file",
            &Open::read_write().disposition(disposition::FILE_OPEN),
        )
        .expect("open after dismount");
    assert_eq!(sim.read(r, 0, 4).as_deref(), Ok(&b"data"[..]));
    sim.close(r);
    sim.close(v);
    finish_clean(sim);
}

// ---- FSCTL_GET_VOLUME_BITMAP / FSCTL_GET_RETRIEVAL_POINTERS ----

fn lcn_input(lcn: i64) -> Vec<u8> {
    assert_eq!(size_of::<STARTING_LCN_INPUT_BUFFER>(), 8);
    lcn.to_le_bytes().to_vec()
}

fn vcn_input(vcn: i64) -> Vec<u8> {
    assert_eq!(size_of::<STARTING_VCN_INPUT_BUFFER>(), 8);
    vcn.to_le_bytes().to_vec()
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

const BITMAP_AT: usize = offset_of!(VOLUME_BITMAP_BUFFER, Buffer);
const EXTENTS_AT: usize = offset_of!(RETRIEVAL_POINTERS_BUFFER, Extents);
const EXTENT: usize = size_of::<RETRIEVAL_POINTERS_BUFFER_0>();

/// A parsed `VOLUME_BITMAP_BUFFER`: (StartingLcn, BitmapSize, bitmap bytes).
fn parse_bitmap(out: &[u8]) -> (i64, i64, &[u8]) {
    (
        i64_at(out, offset_of!(VOLUME_BITMAP_BUFFER, StartingLcn)),
        i64_at(out, offset_of!(VOLUME_BITMAP_BUFFER, BitmapSize)),
        &out[BITMAP_AT..],
    )
}

/// A parsed `RETRIEVAL_POINTERS_BUFFER`: (StartingVcn, [(NextVcn, Lcn)]).
fn parse_pointers(out: &[u8]) -> (i64, Vec<(i64, i64)>) {
    let count = u32_at(out, offset_of!(RETRIEVAL_POINTERS_BUFFER, ExtentCount)) as usize;
    assert_eq!(out.len(), EXTENTS_AT + count * EXTENT, "Information");
    let extents = (0..count)
        .map(|i| {
            let at = EXTENTS_AT + i * EXTENT;
            (
                i64_at(out, at + offset_of!(RETRIEVAL_POINTERS_BUFFER_0, NextVcn)),
                i64_at(out, at + offset_of!(RETRIEVAL_POINTERS_BUFFER_0, Lcn)),
            )
        })
        .collect();
    (
        i64_at(out, offset_of!(RETRIEVAL_POINTERS_BUFFER, StartingVcn)),
        extents,
    )
}

fn bit(bitmap: &[u8], i: i64) -> bool {
    let i = usize::try_from(i).expect("non-negative");
    bitmap[i / 8] & (1 << (i % 8)) != 0
}

/// `\a` with three clusters in two runs (`\b`'s cluster sits between its second and
/// third), written non-cached so the clusters are allocated at once. Returns `\a`'s handle.
fn fragmented_file(sim: &mut Sim) -> Handle {
    let a = open_nc(sim, "\\a");
    sim.write(a, Some(0), &filled(b'a', 2 * CLUSTER))
        .expect("write a");
    let b = open_nc(sim, "\\b");
    sim.write(b, Some(0), &filled(b'b', CLUSTER))
        .expect("write b");
    sim.close(b);
    let at = 2 * CLUSTER as u64;
    sim.write(a, Some(at), &filled(b'c', CLUSTER))
        .expect("append a");
    a
}

#[test]
fn vol_retrieval_pointers_layout_and_bitmap_bits_agree() {
    let mut sim = Sim::new();
    let a = fragmented_file(&mut sim);
    assert_eq!(size_of::<RETRIEVAL_POINTERS_BUFFER>(), 32);
    assert_eq!(offset_of!(RETRIEVAL_POINTERS_BUFFER, StartingVcn), 8);
    let (st, out) = sim.fsctl(
        a,
        FSCTL_GET_RETRIEVAL_POINTERS,
        &vcn_input(0),
        EXTENTS_AT + 8 * EXTENT,
    );
    assert_eq!(st, status::STATUS_SUCCESS);
    let (start, extents) = parse_pointers(&out);
    assert_eq!(start, 0);
    assert_eq!(extents.len(), 2, "{extents:?}");
    assert_eq!(extents[0].0, 2, "{extents:?}");
    assert_eq!(extents[1].0, 3, "{extents:?}");
    let lcns: Vec<i64> = vec![extents[0].1, extents[0].1 + 1, extents[1].1];

    let v = sim.open_volume().expect("volume");
    assert_eq!(size_of::<VOLUME_BITMAP_BUFFER>(), 24);
    assert_eq!(BITMAP_AT, 16);
    let (st, out) = sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &lcn_input(0), 4096);
    assert_eq!(st, status::STATUS_SUCCESS);
    let (first, total, bitmap) = parse_bitmap(&out);
    assert_eq!(first, 0);
    assert!(
        total > 3000 && total < 4096,
        "16 MiB of 4 KiB clusters: {total}"
    );
    assert_eq!(bitmap.len() as i64, (total + 7) / 8, "Information");
    for lcn in &lcns {
        assert!(bit(bitmap, *lcn), "LCN {lcn} of \\a is in use");
    }
    assert!(
        bit(bitmap, extents[0].1 + 2),
        "\\b's cluster, between \\a's runs"
    );
    assert!(!bit(bitmap, total - 1), "the last cluster is free");
    for i in total..(bitmap.len() as i64 * 8) {
        assert!(!bit(bitmap, i), "bit {i} past the end is clear");
    }
    let used = (0..total).filter(|i| bit(bitmap, *i)).count();
    assert!((4..64).contains(&used), "{used} clusters in use");

    // A start that is not a multiple of 8 is rounded down; the bits agree.
    let (st, out) = sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &lcn_input(13), 4096);
    assert_eq!(st, status::STATUS_SUCCESS);
    let (first8, size8, bitmap8) = parse_bitmap(&out);
    assert_eq!((first8, size8), (8, total - 8));
    assert_eq!(bitmap8, &bitmap[1..]);

    // Retrieval pointers from inside the first run: cut to start there.
    let (st, out) = sim.fsctl(a, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(1), 64);
    assert_eq!(st, status::STATUS_SUCCESS);
    assert_eq!(
        parse_pointers(&out),
        (1, vec![(2, extents[0].1 + 1), extents[1]])
    );
    sim.close(v);
    sim.close(a);
    finish_clean(sim);
}

#[test]
fn vol_bitmap_short_buffers_and_bad_starts() {
    let mut sim = Sim::new();
    let v = sim.open_volume().expect("volume");
    let (_, out) = sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &lcn_input(0), 4096);
    let (_, total, full) = parse_bitmap(&out);
    let full = full.to_vec();
    // Smaller than the structure: nothing.
    let small = sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &lcn_input(0), 23);
    assert_eq!(small, (STATUS_BUFFER_TOO_SMALL, Vec::new()));
    // Room for 8 bytes of bitmap: as many bits as fit, BitmapSize still all of them.
    let (st, out) = sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &lcn_input(0), 24);
    assert_eq!(st, STATUS_BUFFER_OVERFLOW);
    assert_eq!(out.len(), 24, "Information: the header and 8 bytes");
    let (first, size, bits) = parse_bitmap(&out);
    assert_eq!((first, size), (0, total));
    assert_eq!(bits, &full[..8]);
    // A short input, a negative start, a start past the end.
    assert_eq!(
        sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &[0; 4], 4096).0,
        status::STATUS_INVALID_PARAMETER
    );
    for start in [-1, total, total + 100] {
        assert_eq!(
            sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &lcn_input(start), 4096)
                .0,
            status::STATUS_INVALID_PARAMETER,
            "start {start}"
        );
    }
    // The last cluster is a valid start (rounded down).
    let (st, out) = sim.fsctl(v, FSCTL_GET_VOLUME_BITMAP, &lcn_input(total - 1), 4096);
    assert_eq!(st, status::STATUS_SUCCESS);
    let (first, size, _) = parse_bitmap(&out);
    assert_eq!(
        (first, size),
        ((total - 1) & !7, total - ((total - 1) & !7))
    );
    // Only on a volume handle.
    let h = open_rw(&mut sim, "\\f");
    assert_eq!(
        sim.fsctl(h, FSCTL_GET_VOLUME_BITMAP, &lcn_input(0), 4096).0,
        status::STATUS_INVALID_PARAMETER
    );
    sim.close(h);
    sim.close(v);
    finish_clean(sim);
}

#[test]
fn vol_retrieval_pointers_short_buffers_and_errors() {
    let mut sim = Sim::new();
    let a = fragmented_file(&mut sim);
    let (_, out) = sim.fsctl(a, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(0), 256);
    let (_, all) = parse_pointers(&out);
    // Room for one extent of two.
    let (st, out) = sim.fsctl(a, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(0), 32 + 15);
    assert_eq!(st, STATUS_BUFFER_OVERFLOW);
    assert_eq!(parse_pointers(&out), (0, vec![all[0]]));
    // The caller goes on from the NextVcn it got.
    let (st, out) = sim.fsctl(a, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(all[0].0), 32);
    assert_eq!(st, status::STATUS_SUCCESS);
    assert_eq!(parse_pointers(&out), (all[0].0, vec![all[1]]));
    // Smaller than the structure; a short input; a negative VCN.
    assert_eq!(
        sim.fsctl(a, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(0), 31),
        (STATUS_BUFFER_TOO_SMALL, Vec::new())
    );
    assert_eq!(
        sim.fsctl(a, FSCTL_GET_RETRIEVAL_POINTERS, &[0; 4], 64).0,
        status::STATUS_INVALID_PARAMETER
    );
    assert_eq!(
        sim.fsctl(a, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(-1), 64)
            .0,
        status::STATUS_INVALID_PARAMETER
    );
    // Past the allocation, and an empty file.
    assert_eq!(
        sim.fsctl(a, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(3), 64)
            .0,
        status::STATUS_END_OF_FILE
    );
    let empty = open_rw(&mut sim, "\\empty");
    assert_eq!(
        sim.fsctl(empty, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(0), 64)
            .0,
        status::STATUS_END_OF_FILE
    );
    sim.close(empty);
    // A directory and a volume handle.
    let d = sim
        .create(
            "\\dir",
            &Open::read_write()
                .share(share::ALL)
                .options(options::FILE_DIRECTORY_FILE),
        )
        .expect("mkdir");
    assert_eq!(
        sim.fsctl(d, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(0), 64)
            .0,
        status::STATUS_INVALID_PARAMETER
    );
    sim.close(d);
    let v = sim.open_volume().expect("volume");
    assert_eq!(
        sim.fsctl(v, FSCTL_GET_RETRIEVAL_POINTERS, &vcn_input(0), 64)
            .0,
        status::STATUS_INVALID_PARAMETER
    );
    sim.close(v);
    sim.close(a);
    finish_clean(sim);
}
