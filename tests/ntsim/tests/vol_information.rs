//! Volume information (issue 7): volume, size, full size, attribute, device, sector size, the
//! label set, each against the NT structure's layout and with short buffers; flush of a file
//! and of the volume; shutdown.

mod common;
use common::*;

use std::mem::{offset_of, size_of};

use windows_sys::Wdk::Storage::FileSystem::{
    FILE_FS_ATTRIBUTE_INFORMATION, FILE_FS_SECTOR_SIZE_INFORMATION,
};
use windows_sys::Wdk::System::SystemServices::{
    FILE_FS_DEVICE_INFORMATION, FILE_FS_FULL_SIZE_INFORMATION, FILE_FS_LABEL_INFORMATION,
    FILE_FS_SIZE_INFORMATION, FILE_FS_VOLUME_INFORMATION,
};
use windows_sys::Win32::Foundation::{STATUS_BUFFER_OVERFLOW, STATUS_INFO_LENGTH_MISMATCH};

const VOLUME: i32 = 1;
const LABEL: i32 = 2;
const SIZE: i32 = 3;
const DEVICE: i32 = 4;
const ATTRIBUTE: i32 = 5;
const FULL_SIZE: i32 = 7;
const SECTOR_SIZE: i32 = 11;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn units(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[test]
fn vol_layouts_match_the_nt_structures() {
    assert_eq!(
        offset_of!(FILE_FS_VOLUME_INFORMATION, VolumeSerialNumber),
        8
    );
    assert_eq!(
        offset_of!(FILE_FS_VOLUME_INFORMATION, VolumeLabelLength),
        12
    );
    assert_eq!(offset_of!(FILE_FS_VOLUME_INFORMATION, SupportsObjects), 16);
    assert_eq!(offset_of!(FILE_FS_VOLUME_INFORMATION, VolumeLabel), 18);
    assert_eq!(offset_of!(FILE_FS_LABEL_INFORMATION, VolumeLabel), 4);
    assert_eq!(size_of::<FILE_FS_SIZE_INFORMATION>(), 24);
    assert_eq!(size_of::<FILE_FS_FULL_SIZE_INFORMATION>(), 32);
    assert_eq!(
        offset_of!(FILE_FS_FULL_SIZE_INFORMATION, BytesPerSector),
        28
    );
    assert_eq!(size_of::<FILE_FS_DEVICE_INFORMATION>(), 8);
    assert_eq!(
        offset_of!(FILE_FS_ATTRIBUTE_INFORMATION, FileSystemNameLength),
        8
    );
    assert_eq!(
        offset_of!(FILE_FS_ATTRIBUTE_INFORMATION, FileSystemName),
        12
    );
    assert_eq!(size_of::<FILE_FS_SECTOR_SIZE_INFORMATION>(), 28);
}

#[test]
fn vol_every_class_and_short_buffers() {
    let mut sim = Sim::new();
    let v = sim.open_volume().expect("volume");
    let h = open_rw(&mut sim, "\\any");
    for handle in [v, h] {
        let (s, b) = sim.query_volume_information(handle, SIZE, 24);
        assert_eq!(s, status::STATUS_SUCCESS);
        let total = i64_at(&b, 0);
        assert!(total > 0 && i64_at(&b, 8) <= total);
        let (spc, bps) = (u32_at(&b, 16), u32_at(&b, 20));
        assert!(total * i64::from(spc) * i64::from(bps) <= 16 << 20);
        let (s, f) = sim.query_volume_information(handle, FULL_SIZE, 32);
        assert_eq!(
            (s, i64_at(&f, 0), u32_at(&f, 24), u32_at(&f, 28)),
            (status::STATUS_SUCCESS, total, spc, bps)
        );
        assert_eq!(
            sim.query_volume_information(handle, SIZE, 23).0,
            STATUS_INFO_LENGTH_MISMATCH
        );
    }
    let (s, b) = sim.query_volume_information(v, ATTRIBUTE, 64);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert_eq!(
        u32_at(&b, 0),
        0x2 | 0x4,
        "case-preserved, Unicode; nothing else claimed"
    );
    assert_eq!(u32_at(&b, 4), 255);
    assert_eq!(u32_at(&b, 8), 12);
    assert_eq!(&b[12..], &units("cowfat")[..]);
    let (s, b) = sim.query_volume_information(v, ATTRIBUTE, 16);
    assert_eq!((s, b.len()), (STATUS_BUFFER_OVERFLOW, 16));
    assert_eq!(&b[12..16], &units("co")[..]);
    let (s, b) = sim.query_volume_information(v, DEVICE, 8);
    assert_eq!(
        (s, u32_at(&b, 0)),
        (status::STATUS_SUCCESS, 7),
        "FILE_DEVICE_DISK"
    );
    let (s, b) = sim.query_volume_information(v, SECTOR_SIZE, 28);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert!(u32_at(&b, 0) >= 512 && u32_at(&b, 0) == u32_at(&b, 12));
    // Label: set, then read back in the volume information.
    let label = units("SCRATCH");
    let mut set = (label.len() as u32).to_le_bytes().to_vec();
    set.extend(&label);
    assert_eq!(
        sim.set_volume_information(v, LABEL, &set),
        status::STATUS_SUCCESS
    );
    let (s, b) = sim.query_volume_information(v, VOLUME, 64);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert_eq!(u32_at(&b, 12) as usize, label.len());
    assert_eq!(&b[18..], &label[..]);
    let (s, b) = sim.query_volume_information(v, VOLUME, 20);
    assert_eq!((s, b.len()), (STATUS_BUFFER_OVERFLOW, 20));
    assert_eq!(
        sim.query_volume_information(v, VOLUME, 17).0,
        STATUS_INFO_LENGTH_MISMATCH
    );
    sim.close(h);
    sim.close(v);
    finish_clean(sim);
}

#[test]
fn vol_flush_file_and_volume_write_dirty_pages() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\dirty");
    sim.write(h, Some(0), &filled(b'd', 8192)).expect("write");
    sim.take_trace();
    assert_eq!(sim.flush(h), status::STATUS_SUCCESS);
    assert_eq!(
        paging_irps(&sim.trace(), mj::WRITE),
        vec![(0, 4096), (4096, 4096)],
        "the flush wrote the cached pages"
    );
    sim.write(h, Some(0), b"again").expect("write");
    let v = sim.open_volume().expect("volume");
    sim.take_trace();
    assert_eq!(sim.flush(v), status::STATUS_SUCCESS);
    assert_eq!(paging_irps(&sim.trace(), mj::WRITE), vec![(0, 4096)]);
    sim.close(v);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn vol_shutdown_flushes_every_mounted_volume() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\pending");
    sim.write(h, Some(0), &filled(b's', 4096)).expect("write");
    sim.take_trace();
    assert_eq!(sim.shutdown(), status::STATUS_SUCCESS);
    assert_eq!(
        paging_irps(&sim.trace(), mj::WRITE),
        vec![(0, 4096)],
        "shutdown wrote the dirty page"
    );
    sim.close(h);
    finish_clean(sim);
}
