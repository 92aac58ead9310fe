//! Helpers shared by fs-core's scenario tests.
#![allow(dead_code)]
pub mod edit;

use fs_core::time::{FixedClock, NtTime};
use fs_core::{
    format, BlockDevice, FileAttributes, FileId, FileKind, FormatOptions, MemDevice, MountOptions,
    Name, Volume,
};

pub fn opts() -> MountOptions {
    MountOptions::new(Box::new(FixedClock(NtTime(132_000_000_000_000_000))))
}

pub fn formatted(size: u64, cluster_size: u32) -> MemDevice {
    let mut dev = MemDevice::new(size);
    format(
        &mut dev,
        &FormatOptions {
            cluster_size,
            label: "test".into(),
            serial: 7,
            ..Default::default()
        },
    )
    .expect("format");
    dev
}

pub fn mount<D: BlockDevice>(dev: D) -> Volume<D> {
    Volume::mount(dev, opts()).expect("mount")
}

pub fn name(s: &str) -> Name {
    Name::from_str(s).expect("valid name")
}

pub fn create_file<D: BlockDevice>(vol: &mut Volume<D>, path: &str, content: &[u8]) -> FileId {
    let (dir, n) = vol.resolve_parent(path).expect("parent");
    let id = vol
        .create(dir, &n, FileKind::File, FileAttributes::empty())
        .expect("create");
    if !content.is_empty() {
        vol.write(id, 0, content).expect("write");
    }
    id
}

pub fn mkdir<D: BlockDevice>(vol: &mut Volume<D>, path: &str) -> FileId {
    let (dir, n) = vol.resolve_parent(path).expect("parent");
    vol.create(dir, &n, FileKind::Directory, FileAttributes::empty())
        .expect("mkdir")
}

pub fn read_all<D: BlockDevice>(vol: &mut Volume<D>, id: FileId) -> Vec<u8> {
    let size = vol.info(id).expect("info").file_size;
    let mut buf = vec![0u8; size as usize];
    let n = vol.read(id, 0, &mut buf).expect("read");
    assert_eq!(n as u64, size);
    buf
}

pub fn cat<D: BlockDevice>(vol: &mut Volume<D>, path: &str) -> Vec<u8> {
    let id = vol.resolve(path).expect("resolve");
    read_all(vol, id)
}

/// Checks the volume and asserts it is clean.
pub fn assert_clean(dev: MemDevice) -> MemDevice {
    let (report, dev) = fs_core::fsck::check(dev, false, &mut |_, _| {}).expect("check runs");
    assert!(report.is_clean(), "fsck found: {:#?}", report.problems);
    dev
}

/// A deterministic byte pattern, different per seed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
