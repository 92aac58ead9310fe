//! Everyday operations: files, directories, sizes, names, rename rules, enumeration.

mod common;
use common::*;
use fs_core::{DirCursor, Error, FileAttributes, FileKind, NameError};

#[test]
fn files_round_trip_across_remount_for_every_cluster_size() {
    for cs in [512u32, 1024, 4096, 16384, 65536] {
        let dev = formatted(32 << 20, cs);
        let mut vol = mount(dev);
        mkdir(&mut vol, "/dir");
        let big = pattern(cs.into(), 300_000);
        create_file(&mut vol, "/dir/big.bin", &big);
        create_file(&mut vol, "/small.txt", b"hello");
        let dev = vol.unmount().unwrap();
        let dev = assert_clean(dev);
        let mut vol = mount(dev);
        assert_eq!(cat(&mut vol, "/dir/big.bin"), big, "cluster size {cs}");
        assert_eq!(cat(&mut vol, "/SMALL.TXT"), b"hello");
    }
}

#[test]
fn writes_at_any_offset_and_sparse_extension_read_zeros() {
    let mut vol = mount(formatted(16 << 20, 4096));
    let f = create_file(&mut vol, "/f", b"abc");
    vol.write(f, 10_000, b"xyz").unwrap();
    let data = read_all(&mut vol, f);
    assert_eq!(data.len(), 10_003);
    assert_eq!(&data[..3], b"abc");
    assert!(data[3..10_000].iter().all(|&b| b == 0));
    assert_eq!(&data[10_000..], b"xyz");
    vol.set_file_size(f, 50_000).unwrap();
    let info = vol.info(f).unwrap();
    assert_eq!((info.file_size, info.valid_data_length), (50_000, 10_003));
    assert_eq!(info.allocation_size, 53_248);
    assert!(read_all(&mut vol, f)[10_003..].iter().all(|&b| b == 0));
    vol.set_file_size(f, 2).unwrap();
    assert_eq!(read_all(&mut vol, f), b"ab");
    vol.set_file_size(f, 6).unwrap();
    assert_eq!(read_all(&mut vol, f), b"ab\0\0\0\0");
}

#[test]
fn three_sizes_are_kept_apart() {
    let mut vol = mount(formatted(16 << 20, 4096));
    let f = create_file(&mut vol, "/f", &[7u8; 100]);
    vol.set_allocation_size(f, 40_000).unwrap();
    let info = vol.info(f).unwrap();
    assert_eq!(
        (info.file_size, info.allocation_size, info.valid_data_length),
        (100, 40_960, 100)
    );
    vol.set_file_size(f, 30_000).unwrap();
    assert_eq!(vol.info(f).unwrap().valid_data_length, 100);
    assert_eq!(
        vol.set_valid_data_length(f, 50),
        Err(Error::InvalidArgument(
            "valid data length must lie between its current value and end of file"
        ))
    );
    vol.set_valid_data_length(f, 8192).unwrap();
    assert_eq!(vol.info(f).unwrap().valid_data_length, 8192);
    vol.set_allocation_size(f, 4096).unwrap();
    let info = vol.info(f).unwrap();
    assert_eq!(
        (info.file_size, info.allocation_size, info.valid_data_length),
        (4096, 4096, 4096)
    );
}

#[test]
fn names_are_case_insensitive_and_case_preserving() {
    let mut vol = mount(formatted(8 << 20, 4096));
    create_file(&mut vol, "/ReadMe.TXT", b"1");
    assert_eq!(cat(&mut vol, "/readme.txt"), b"1");
    let root = vol.root().unwrap();
    assert_eq!(
        vol.create(
            root,
            &name("README.txt"),
            FileKind::File,
            FileAttributes::empty()
        ),
        Err(Error::AlreadyExists)
    );
    let listed = vol.list(root).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name.to_string(), "ReadMe.TXT");
    vol.rename(root, &name("readme.txt"), root, &name("README.md"), false)
        .unwrap();
    assert_eq!(vol.list(root).unwrap()[0].name.to_string(), "README.md");
    assert_eq!(
        fs_core::Name::from_str("a|b").unwrap_err(),
        NameError::ReservedCharacter {
            unit: u16::from(b'|')
        }
    );
}

#[test]
fn rename_and_delete_follow_the_rules() {
    let mut vol = mount(formatted(8 << 20, 4096));
    let root = vol.root().unwrap();
    let d = mkdir(&mut vol, "/d");
    mkdir(&mut vol, "/d/sub");
    create_file(&mut vol, "/a", b"A");
    create_file(&mut vol, "/b", b"B");
    assert_eq!(
        vol.rename(root, &name("a"), root, &name("b"), false),
        Err(Error::AlreadyExists)
    );
    vol.rename(root, &name("a"), root, &name("b"), true)
        .unwrap();
    assert_eq!(cat(&mut vol, "/b"), b"A");
    assert_eq!(vol.resolve("/a"), Err(Error::NotFound));
    assert_eq!(
        vol.rename(root, &name("b"), root, &name("d"), true),
        Err(Error::IsADirectory)
    );
    let sub = vol.resolve("/d/sub").unwrap();
    assert!(matches!(
        vol.rename(root, &name("d"), sub, &name("x"), false),
        Err(Error::InvalidArgument(_))
    ));
    vol.rename(root, &name("b"), d, &name("moved"), false)
        .unwrap();
    assert_eq!(cat(&mut vol, "/d/moved"), b"A");
    assert_eq!(vol.delete(root, &name("d")), Err(Error::DirectoryNotEmpty));
    vol.delete(d, &name("moved")).unwrap();
    vol.delete(d, &name("sub")).unwrap();
    vol.delete(root, &name("d")).unwrap();
    assert!(vol.list(root).unwrap().is_empty());
    vol.sync().unwrap();
    let free_before = vol.volume_info().free_clusters;
    let dev = vol.unmount().unwrap();
    let dev = assert_clean(dev);
    let vol = mount(dev);
    assert_eq!(vol.volume_info().free_clusters, free_before);
}

#[test]
fn stale_ids_are_refused_after_delete_and_reuse() {
    let mut vol = mount(formatted(8 << 20, 4096));
    let root = vol.root().unwrap();
    let old = create_file(&mut vol, "/x", b"1");
    vol.delete(root, &name("x")).unwrap();
    let new = create_file(&mut vol, "/y", b"2");
    assert_eq!(new.record(), old.record());
    assert_ne!(new, old);
    assert_eq!(vol.info(old), Err(Error::StaleFileId));
}

#[test]
fn enumeration_resumes_in_small_batches() {
    let mut vol = mount(formatted(8 << 20, 4096));
    let root = vol.root().unwrap();
    for i in 0..50 {
        create_file(&mut vol, &format!("/file{i:03}"), b"");
    }
    let mut cursor = DirCursor::start();
    let mut seen = Vec::new();
    loop {
        let (batch, next) = vol.read_dir(root, &cursor, 7).unwrap();
        seen.extend(batch.into_iter().map(|e| e.name.to_string()));
        match next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    let expected: Vec<String> = (0..50).map(|i| format!("file{i:03}")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn unlinked_open_files_survive_until_purged_or_remount() {
    let mut vol = mount(formatted(8 << 20, 4096));
    let root = vol.root().unwrap();
    let f = create_file(&mut vol, "/tmp", &[1u8; 20_000]);
    let free = vol.volume_info().free_clusters;
    let id = vol.unlink(root, &name("tmp")).unwrap();
    assert_eq!(id, f);
    assert_eq!(read_all(&mut vol, f), vec![1u8; 20_000]);
    assert_eq!(vol.resolve("/tmp"), Err(Error::NotFound));
    let dev = vol.unmount().unwrap();
    let vol = mount(dev);
    assert_eq!(vol.volume_info().free_clusters, free + 5);
}

#[test]
fn full_volume_gives_no_space_and_keeps_what_was_there() {
    let mut vol = mount(formatted(4 << 20, 4096));
    let keep = create_file(&mut vol, "/keep", b"precious");
    let f = create_file(&mut vol, "/fill", b"");
    let chunk = vec![9u8; 1 << 20];
    let mut off = 0;
    let err = loop {
        match vol.write(f, off, &chunk) {
            Ok(n) => off += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::NoSpace);
    assert_eq!(read_all(&mut vol, keep), b"precious");
    let dev = vol.unmount().unwrap();
    let dev = assert_clean(dev);
    let mut vol = mount(dev);
    assert_eq!(cat(&mut vol, "/keep"), b"precious");
}

#[test]
fn label_and_free_space_figures() {
    let mut vol = mount(formatted(64 << 20, 4096));
    let info = vol.volume_info();
    assert_eq!(info.label, "test");
    assert_eq!(info.free_clusters, info.total_clusters - 1);
    assert_eq!(info.serial, 7);
    assert!(!info.sealed);
    vol.set_label("Daten Ü").unwrap();
    assert!(vol.set_label(&"x".repeat(33)).is_err());
    let f = create_file(&mut vol, "/f", b"");
    let before = vol.volume_info().free_clusters;
    vol.write(f, 0, &vec![1u8; 40_960]).unwrap();
    assert_eq!(vol.volume_info().free_clusters, before - 10);
    let dev = vol.unmount().unwrap();
    let vol = mount(dev);
    assert_eq!(vol.volume_info().label, "Daten Ü");
}

#[test]
fn two_terabyte_volume_formats_and_mounts_in_little_memory() {
    let dev = formatted(2 << 40, 4096);
    assert!(
        dev.resident_bytes() < 2 << 20,
        "format wrote {} bytes",
        dev.resident_bytes()
    );
    let mut vol = mount(dev);
    assert!(vol.volume_info().total_clusters > 500_000_000);
    create_file(&mut vol, "/x", b"far");
    let dev = vol.unmount().unwrap();
    let mut vol = mount(dev);
    assert_eq!(cat(&mut vol, "/x"), b"far");
}

#[test]
fn extents_and_cluster_usage_describe_the_allocation() {
    let mut vol = mount(formatted(8 << 20, 4096));
    let a = create_file(&mut vol, "/a", &[1u8; 3 * 4096]);
    let b = create_file(&mut vol, "/b", &[2u8; 4096]);
    vol.write(a, 3 * 4096, &[3u8; 4096]).unwrap();
    let ext = vol.file_extents(a, 0, 10).unwrap();
    assert_eq!(ext.iter().map(|e| e.clusters).sum::<u32>(), 4);
    assert_eq!(
        ext.len(),
        2,
        "{ext:?}: /b's cluster sits between /a's third and fourth"
    );
    assert_eq!(ext[1].vcn, 3);
    assert_eq!(vol.file_extents(a, 3, 10).unwrap(), ext[1..].to_vec());
    let lb = vol.file_extents(b, 0, 1).unwrap()[0].lcn;
    let mut bits = [0u8; 4];
    let described = vol.cluster_usage(2, &mut bits).unwrap();
    assert_eq!(described, 32);
    let used: Vec<u32> = (0..32)
        .filter(|i| bits[(i / 8) as usize] & (1 << (i % 8)) != 0)
        .map(|i| i + 2)
        .collect();
    assert!(used.contains(&lb) && used.contains(&ext[0].lcn));
    // record table, root directory, 4 clusters of /a, 1 of /b
    assert_eq!(used.len(), 7, "{used:?}");
}
