//! The checker finds damage and, with repair, fixes what is safe to fix.

mod common;
use common::*;
use fs_core::fsck::check;
use fs_core::ondisk::table::{entry_position, END};
use fs_core::{MemDevice, SetTimes, Volume};

fn geometry(dev: &MemDevice) -> fs_core::layout::Geometry {
    let mut d = dev.clone();
    let vol = Volume::mount(&mut d, opts().read_only()).unwrap();
    vol.geometry().clone()
}

/// Marks cluster `c` as used (end of a chain) in the live table, resealing the block.
fn leak_cluster(dev: &mut MemDevice, c: u32) {
    let g = geometry(dev);
    let (block, at) = entry_position(c);
    let offset = g.live_table_offset + u64::from(block) * 4096;
    let mut data = vec![0u8; 4096];
    dev.get(offset, &mut data);
    data[at..at + 4].copy_from_slice(&END.to_le_bytes());
    fs_core::ondisk::seal_block(&mut data);
    dev.put(offset, &data);
}

#[test]
fn lost_clusters_are_found_and_freed() {
    let mut vol = mount(formatted(8 << 20, 4096));
    create_file(&mut vol, "/f", &pattern(5, 10_000));
    let mut dev = vol.unmount().unwrap();
    let last = geometry(&dev).cluster_end() - 1;
    leak_cluster(&mut dev, last);
    leak_cluster(&mut dev, last - 1);
    let (report, dev) = check(dev, false, &mut |_, _| {}).unwrap();
    assert_eq!(report.exit_code(), 4, "{:#?}", report.problems);
    assert!(report.problems.iter().any(|p| p
        .what
        .contains("2 live clusters are marked used but belong to no file")));
    let (report, dev) = check(dev, true, &mut |_, _| {}).unwrap();
    assert_eq!(report.exit_code(), 1, "{:#?}", report.problems);
    let dev = assert_clean(dev);
    let mut vol = mount(dev);
    assert_eq!(cat(&mut vol, "/f"), pattern(5, 10_000));
}

#[test]
fn wrong_counters_are_recomputed() {
    let mut vol = mount(formatted(8 << 20, 4096));
    create_file(&mut vol, "/f", &pattern(6, 30_000));
    vol.seal().unwrap();
    let mut dev = vol.unmount().unwrap();
    let g = geometry(&dev);
    let mut state = vec![0u8; 4096];
    dev.get(g.state_offset, &mut state);
    state[32..40].copy_from_slice(&3u64.to_le_bytes());
    fs_core::ondisk::seal_block(&mut state);
    dev.put(g.state_offset, &state);
    // The last transaction still in the journal would restore the state block: drop it.
    dev.put(g.journal_offset, &[0u8; 4096]);
    let (report, dev) = check(dev, true, &mut |_, _| {}).unwrap();
    assert_eq!(report.exit_code(), 1, "{:#?}", report.problems);
    assert!(report.problems[0].what.contains("cluster counters"));
    assert_clean(dev);
}

#[test]
fn a_clean_volume_reports_its_figures() {
    let mut vol = mount(formatted(8 << 20, 4096));
    mkdir(&mut vol, "/a");
    create_file(&mut vol, "/a/x", &[1u8; 5000]);
    create_file(&mut vol, "/y", b"");
    vol.seal().unwrap();
    let dev = vol.unmount().unwrap();
    let (report, _) = check(dev, false, &mut |_, _| {}).unwrap();
    assert!(report.is_clean());
    assert_eq!(
        (report.files, report.directories, report.sealed),
        (2, 2, true)
    );
    // record table, root dir, /a's dir cluster, /x's two data clusters
    assert_eq!(report.live_clusters, 5);
    assert_eq!(report.base_clusters, 5);
}

#[test]
fn times_and_attributes_persist() {
    use fs_core::time::NtTime;
    use fs_core::FileAttributes;
    let mut vol = mount(formatted(8 << 20, 4096));
    let f = create_file(&mut vol, "/f", b"x");
    vol.set_times(
        f,
        SetTimes {
            creation: Some(NtTime(1)),
            last_write: Some(NtTime(3)),
            ..Default::default()
        },
    )
    .unwrap();
    vol.set_attributes(
        f,
        FileAttributes::READONLY | FileAttributes::HIDDEN | FileAttributes::DIRECTORY,
    )
    .unwrap();
    let dev = vol.unmount().unwrap();
    let mut vol = mount(dev);
    let info = vol.info(f).unwrap();
    assert_eq!(
        (info.times.creation, info.times.last_write),
        (NtTime(1), NtTime(3))
    );
    assert_eq!(
        info.attributes,
        FileAttributes::READONLY | FileAttributes::HIDDEN
    );
}

#[test]
fn file_device_round_trip() {
    let path = std::env::temp_dir().join(format!("cowfat-filedevice-{}.img", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let mut dev = fs_core::FileDevice::open(&path, false).unwrap();
    fs_core::format(&mut dev, &Default::default()).unwrap();
    let mut vol = mount(dev);
    create_file(&mut vol, "/on-disk", b"persisted");
    vol.unmount().unwrap();
    let dev = fs_core::FileDevice::open(&path, true).unwrap();
    let mut vol = Volume::mount(dev, opts().read_only()).unwrap();
    assert_eq!(cat(&mut vol, "/on-disk"), b"persisted");
    assert_eq!(vol.set_label("x"), Err(fs_core::Error::ReadOnly));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_orphan_left_by_a_crash_checks_clean_and_is_freed_at_mount() {
    // Found by the FUSE host: a file unlinked while open, then a crash before its last close.
    let mut vol = mount(formatted(16 << 20, 4096));
    let root = vol.root().unwrap();
    let f = create_file(&mut vol, "/open-then-unlinked", &[7u8; 10_000]);
    let free_before = vol.volume_info().free_clusters;
    vol.unlink(root, &name("open-then-unlinked")).unwrap();
    vol.sync().unwrap();
    let crashed = vol.device().clone();
    drop(vol);
    let (report, dev) = check(crashed, false, &mut |_, _| {}).unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    let vol = mount(dev);
    assert_eq!(vol.volume_info().free_clusters, free_before + 3);
    let _ = f;
}
