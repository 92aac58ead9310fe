//! The copy-on-write overlay: seal, commit, discard (volume and file), status, reservations,
//! the base invariant and the one-cluster granularity.

mod common;
use common::*;
use fs_core::ondisk::table::{ENTRIES_PER_BLOCK, FIRST_CLUSTER};
use fs_core::{CountingDevice, Error, MemDevice, Volume};

#[test]
fn seed_004_program_on_the_file_system_core() {
    // The seed's test program, as fs-core sees it: one stream, one truth.
    let mut vol = mount(formatted(16 << 20, 4096));
    let f = create_file(&mut vol, "/Test.txt", b"aaaa");
    vol.seal().unwrap();
    vol.write(f, 0, b"1234").unwrap();
    assert_eq!(read_all(&mut vol, f), b"1234");
    vol.write(f, 0, b"x").unwrap();
    assert_eq!(read_all(&mut vol, f), b"x234");
    vol.write(f, 0, b"4321").unwrap();
    let dev = vol.unmount().unwrap();
    let mut vol = mount(dev);
    assert_eq!(cat(&mut vol, "/Test.txt"), b"4321");
    vol.discard().unwrap();
    assert_eq!(cat(&mut vol, "/Test.txt"), b"aaaa");
}

#[test]
fn volume_discard_restores_namespace_and_content() {
    let mut vol = mount(formatted(16 << 20, 4096));
    create_file(&mut vol, "/keep", b"base");
    mkdir(&mut vol, "/dir");
    create_file(&mut vol, "/dir/inner", &pattern(1, 9000));
    vol.seal().unwrap();
    let free_sealed = vol.volume_info().free_clusters;
    let root = vol.root().unwrap();
    let keep = vol.resolve("/keep").unwrap();
    vol.write(keep, 2, b"XX").unwrap();
    create_file(&mut vol, "/new", &pattern(2, 50_000));
    let dir = vol.resolve("/dir").unwrap();
    vol.delete(dir, &name("inner")).unwrap();
    vol.rename(root, &name("dir"), root, &name("renamed"), false)
        .unwrap();
    let info = vol.volume_info();
    assert!(info.overlay_clusters > 0 && info.base_only_clusters > 0);
    // The driver's debugger copy (overlay_summary) agrees with volume_info.
    let summary = vol.overlay_summary();
    assert_eq!(
        (
            summary.sealed,
            summary.total_clusters,
            summary.free_clusters,
            summary.overlay_clusters,
            summary.base_only_clusters,
            summary.reserved_clusters
        ),
        (
            info.sealed,
            info.total_clusters,
            info.free_clusters,
            info.overlay_clusters,
            info.base_only_clusters,
            info.reserved_clusters
        )
    );
    vol.discard().unwrap();
    assert_eq!(cat(&mut vol, "/keep"), b"base");
    assert_eq!(cat(&mut vol, "/dir/inner"), pattern(1, 9000));
    assert_eq!(vol.resolve("/new"), Err(Error::NotFound));
    assert_eq!(vol.resolve("/renamed"), Err(Error::NotFound));
    let info = vol.volume_info();
    assert_eq!(
        (
            info.overlay_clusters,
            info.base_only_clusters,
            info.free_clusters
        ),
        (0, 0, free_sealed)
    );
    assert_clean(vol.unmount().unwrap());
}

#[test]
fn commit_makes_the_overlay_the_base() {
    let mut vol = mount(formatted(16 << 20, 4096));
    let f = create_file(&mut vol, "/f", b"old");
    vol.seal().unwrap();
    vol.write(f, 0, b"new").unwrap();
    create_file(&mut vol, "/g", b"added");
    vol.commit().unwrap();
    vol.discard().unwrap();
    assert_eq!(cat(&mut vol, "/f"), b"new");
    assert_eq!(cat(&mut vol, "/g"), b"added");
    assert_eq!(vol.seal(), Err(Error::AlreadySealed));
    assert_clean(vol.unmount().unwrap());
}

#[test]
fn per_file_discard_and_commit_leave_other_files_alone() {
    let mut vol = mount(formatted(16 << 20, 4096));
    let a = create_file(&mut vol, "/a", &pattern(3, 20_000));
    let b = create_file(&mut vol, "/b", b"bbbb");
    vol.seal().unwrap();
    vol.write(a, 5000, b"changed a").unwrap();
    vol.set_file_size(a, 30_000).unwrap();
    vol.write(b, 0, b"BBBB").unwrap();
    let status = vol.overlay_status(a).unwrap();
    assert!(
        status.in_base && status.modified && status.overlay_clusters >= 2,
        "{status:?}"
    );
    vol.discard_file(a).unwrap();
    assert_eq!(read_all(&mut vol, a), pattern(3, 20_000));
    assert_eq!(read_all(&mut vol, b), b"BBBB");
    assert!(!vol.overlay_status(a).unwrap().modified);
    vol.commit_file(b).unwrap();
    vol.write(a, 0, b"zzz").unwrap();
    vol.discard().unwrap();
    assert_eq!(cat(&mut vol, "/b"), b"BBBB");
    assert_eq!(cat(&mut vol, "/a"), pattern(3, 20_000));
    let c = create_file(&mut vol, "/c", b"new");
    assert_eq!(vol.discard_file(c), Err(Error::NoBaseVersion));
    assert_eq!(vol.commit_file(c), Err(Error::NoBaseVersion));
    assert_clean(vol.unmount().unwrap());
}

#[test]
fn overlay_ops_on_an_unsealed_volume_are_refused() {
    let mut vol = mount(formatted(8 << 20, 4096));
    let f = create_file(&mut vol, "/f", b"x");
    assert_eq!(vol.discard(), Err(Error::NotSealed));
    assert_eq!(vol.commit(), Err(Error::NotSealed));
    assert_eq!(vol.discard_file(f), Err(Error::NotSealed));
    assert_eq!(vol.reserve_overlay(f, 0, 4096), Ok(0));
}

#[test]
fn reservations_hold_space_for_paging_writes() {
    let mut vol = mount(formatted(6 << 20, 4096));
    let f = create_file(&mut vol, "/big", &vec![1u8; 3 << 20]);
    vol.seal().unwrap();
    let available = vol.volume_info().available_clusters;
    // The whole file would need 768 overlay clusters plus its record's: more than is free.
    assert!(available < 769, "available {available}");
    assert_eq!(vol.reserve_overlay(f, 0, 3 << 20), Err(Error::NoSpace));
    assert_eq!(vol.volume_info().reserved_clusters, 0);
    let got = vol.reserve_overlay(f, 0, 1 << 20).unwrap();
    assert_eq!(got, 257);
    assert_eq!(
        vol.reserve_overlay(f, 0, 1 << 20).unwrap(),
        0,
        "reserving twice takes nothing more"
    );
    // Someone else fills the free space; the reserved range can still be rewritten.
    let g = create_file(&mut vol, "/filler", b"");
    let mut off = 0u64;
    for chunk in [65536usize, 4096] {
        while let Ok(n) = vol.write(g, off, &vec![2u8; chunk]) {
            off += n as u64;
        }
    }
    assert_eq!(vol.volume_info().available_clusters, 0);
    for page in 0..256u64 {
        vol.write_mode(f, page * 4096, &[7u8; 4096], fs_core::WriteMode::Paging)
            .unwrap();
    }
    assert_eq!(vol.overlay_status(f).unwrap().overlay_clusters, 256);
    vol.release_overlay_reservation(f);
    assert_clean(vol.unmount().unwrap());
}

/// Volume byte ranges the base owns once sealed: base clusters and the base table.
fn base_ranges(dev: &MemDevice) -> Vec<(u64, u64)> {
    let mut d = dev.clone();
    let vol = Volume::mount(&mut d, opts().read_only()).unwrap();
    let g = vol.geometry().clone();
    drop(vol);
    let mut ranges = vec![(g.base_table_offset, u64::from(g.table_blocks) * 4096)];
    let mut block = vec![0u8; 4096];
    for b in 0..g.table_blocks {
        dev.get(g.base_table_offset + u64::from(b) * 4096, &mut block);
        for i in 0..ENTRIES_PER_BLOCK as usize {
            let c = b * ENTRIES_PER_BLOCK + i as u32;
            let v = u32::from_le_bytes(block[i * 4..i * 4 + 4].try_into().unwrap());
            if v != 0 && c >= FIRST_CLUSTER && c < g.cluster_end() {
                ranges.push((g.cluster_offset(c), u64::from(g.cluster_size())));
            }
        }
    }
    ranges
}

fn overlaps(ranges: &[(u64, u64)], off: u64, len: u64) -> bool {
    ranges.iter().any(|&(s, l)| off < s + l && s < off + len)
}

fn snapshot(dev: &MemDevice, ranges: &[(u64, u64)]) -> Vec<Vec<u8>> {
    ranges
        .iter()
        .map(|&(s, l)| {
            let mut b = vec![0u8; l as usize];
            dev.get(s, &mut b);
            b
        })
        .collect()
}

#[test]
fn base_is_never_written_between_seal_and_commit() {
    let mut vol = mount(formatted(32 << 20, 4096));
    mkdir(&mut vol, "/d");
    for i in 0..20 {
        create_file(
            &mut vol,
            &format!("/d/f{i}"),
            &pattern(i, 5000 + 3000 * i as usize),
        );
    }
    create_file(&mut vol, "/big", &pattern(99, 2 << 20));
    vol.seal().unwrap();
    let sealed = vol.unmount().unwrap();
    let ranges = base_ranges(&sealed);
    assert!(ranges.len() > 500);
    let before = snapshot(&sealed, &ranges);

    let mut vol = Volume::mount(CountingDevice::new(sealed), opts()).unwrap();
    let root = vol.root().unwrap();
    for round in 0..4u64 {
        let big = vol.resolve("/big").unwrap();
        vol.write(big, round * 12_345, &pattern(round, 70_000))
            .unwrap();
        vol.set_file_size(big, (1 << 20) + round * 4096).unwrap();
        let d = vol.resolve("/d").unwrap();
        vol.delete(d, &name(&format!("f{round}"))).unwrap();
        create_file(
            &mut vol,
            &format!("/d/new{round}"),
            &pattern(round + 50, 10_000),
        );
        vol.rename(
            d,
            &name(&format!("f{}", round + 10)),
            root,
            &name(&format!("moved{round}")),
            false,
        )
        .unwrap();
        let f = vol.resolve(&format!("/d/f{}", round + 5)).unwrap();
        vol.write(f, 1, b"x").unwrap();
        vol.discard_file(f).unwrap();
        vol.set_label(&format!("round {round}")).unwrap();
        vol.sync().unwrap();
    }
    vol.discard().unwrap();
    create_file(&mut vol, "/after-discard", b"y");
    let dev = vol.unmount().unwrap();
    let bad: Vec<_> = dev
        .counts
        .write_log
        .iter()
        .filter(|&&(o, l)| overlaps(&ranges, o, l))
        .collect();
    assert!(bad.is_empty(), "writes into the base: {bad:?}");
    let dev = dev.into_inner();
    assert_eq!(snapshot(&dev, &ranges), before);
    let mut vol = mount(assert_clean(dev));
    assert_eq!(cat(&mut vol, "/d/f0"), pattern(0, 5000));
}

#[test]
fn granularity_one_byte_into_a_sealed_64_mib_file_moves_one_cluster() {
    let mut vol = mount(formatted(160 << 20, 4096));
    let f = create_file(&mut vol, "/big", &vec![0xAB; 64 << 20]);
    vol.seal().unwrap();
    let dev = vol.unmount().unwrap();
    let mut vol = Volume::mount(CountingDevice::new(dev), opts()).unwrap();
    let heap = vol.geometry().heap_offset;
    vol.device_mut().reset();
    vol.write(f, 12_345_678, b"!").unwrap();
    vol.sync().unwrap();
    let counts = vol.device().counts.clone();
    let status = vol.overlay_status(f).unwrap();
    assert_eq!((status.overlay_clusters, status.base_clusters), (1, 16383));
    // Data: exactly one 4 KiB cluster written in the heap besides metadata clusters; all
    // writes together (journal, tables, record) stay tiny next to 64 MiB.
    let heap_writes: u64 = counts
        .write_log
        .iter()
        .filter(|&&(o, _)| o >= heap)
        .map(|&(_, l)| l)
        .sum();
    assert!(
        heap_writes <= 4096 * 2,
        "heap writes {heap_writes}: one data cluster and at most one record cluster"
    );
    assert!(
        counts.written_bytes < 64 * 1024,
        "{} bytes written in all",
        counts.written_bytes
    );
    let mut one = [0u8; 3];
    vol.read(f, 12_345_677, &mut one).unwrap();
    assert_eq!(&one, &[0xAB, b'!', 0xAB]);
}

#[test]
fn granularity_first_write_into_a_sealed_1_gib_file_reads_only_what_it_needs() {
    // After a mount nothing of the file's chain is in memory: the first write must not walk
    // all 262,144 clusters of it to change the first one.
    let mut vol = mount(formatted(1100 << 20, 4096));
    let f = create_file(&mut vol, "/huge", b"");
    let zeros = vec![0u8; 16 << 20];
    for i in 0..64u64 {
        vol.write(f, i * (16 << 20), &zeros).unwrap();
    }
    vol.seal().unwrap();
    let dev = vol.unmount().unwrap();
    let mut vol = Volume::mount(CountingDevice::new(dev), opts()).unwrap();
    vol.device_mut().reset();
    vol.write(f, 0, b"!").unwrap();
    vol.sync().unwrap();
    let counts = vol.device().counts.clone();
    assert!(
        counts.read_bytes < 128 * 1024,
        "read {} bytes for a 1-byte write",
        counts.read_bytes
    );
    assert!(
        counts.written_bytes < 64 * 1024,
        "wrote {} bytes",
        counts.written_bytes
    );
    let status = vol.overlay_status(f).unwrap();
    assert_eq!(
        (status.overlay_clusters, status.base_clusters),
        (1, 262_143)
    );
}

#[test]
fn overlay_runs_split_a_file_where_its_clusters_leave_the_base() {
    let mut vol = mount(formatted(16 << 20, 4096));
    let f = create_file(&mut vol, "/three", &pattern(7, 3 * 4096));
    vol.seal().unwrap();
    // The middle cluster moves to the overlay; the first and last stay the base's.
    vol.write(f, 4096 + 10, b"!").unwrap();
    let mut runs = [fs_core::OverlayRun::default(); 8];
    let n = vol.overlay_runs(f, &mut runs).unwrap();
    let shape: Vec<(u64, u32, bool)> = runs[..n].iter().map(|r| (r.vcn, r.len, r.base)).collect();
    assert_eq!(shape, [(0, 1, true), (1, 1, false), (2, 1, true)]);
    // A smaller buffer takes the first runs only.
    let mut two = [fs_core::OverlayRun::default(); 2];
    assert_eq!(vol.overlay_runs(f, &mut two).unwrap(), 2);
    assert_eq!((two[1].vcn, two[1].base), (1, false));
    // The counts agree with overlay_status.
    let status = vol.overlay_status(f).unwrap();
    let overlay: u32 = runs[..n].iter().filter(|r| !r.base).map(|r| r.len).sum();
    assert_eq!(u64::from(overlay), status.overlay_clusters);
}
