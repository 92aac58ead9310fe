//! fs-core on edited volumes: mount + walk + read + write + overlay ops + fsck + repair.

use std::sync::OnceLock;

use fs_core::layout::Geometry;
use fs_core::ondisk::record::RECORD_SIZE;
use fs_core::ondisk::table::ENTRIES_PER_BLOCK;
use fs_core::time::{FixedClock, NtTime};
use fs_core::{
    format, DirCursor, FileAttributes, FileId, FileKind, FormatOptions, MemDevice, MountOptions,
    Name, Volume,
};
use libfuzzer_sys::arbitrary::Unstructured;

use crate::edit;

fn options(read_only: bool) -> MountOptions {
    let mut o = MountOptions::new(Box::new(FixedClock(NtTime(132_000_000_000_000_000))));
    o.read_only = read_only;
    o
}

/// A base image: the device and whether its journal still holds the last transaction.
struct Base {
    dev: MemDevice,
    geo: Geometry,
}

fn build(size: u64, cluster_size: u32, seal: bool, keep_journal: bool) -> Base {
    let mut dev = MemDevice::new(size);
    let fmt = FormatOptions {
        cluster_size,
        label: "fuzz".into(),
        serial: 1,
        ..Default::default()
    };
    format(&mut dev, &fmt).expect("format");
    let mut vol = Volume::mount(dev, options(false)).expect("mount");
    let root = vol.root().expect("root");
    let name = |s: &str| Name::from_str(s).expect("name");
    let dir = vol
        .create(
            root,
            &name("dir"),
            FileKind::Directory,
            FileAttributes::empty(),
        )
        .expect("mkdir");
    for i in 0..6u8 {
        let long = format!("a file with a longer name number {i}.txt");
        let n = if i % 2 == 0 { format!("f{i}") } else { long };
        let parent = if i < 3 { root } else { dir };
        let f = vol
            .create(parent, &name(&n), FileKind::File, FileAttributes::empty())
            .expect("create");
        let data = vec![i.wrapping_mul(37); 3000 * usize::from(i) + 100];
        vol.write(f, 0, &data).expect("write");
    }
    if seal {
        vol.seal().expect("seal");
        let f = vol.resolve("/f0").expect("f0");
        vol.write(f, 10, b"changed after the seal").expect("write");
        let g = vol
            .create(dir, &name("new"), FileKind::File, FileAttributes::empty())
            .expect("create");
        vol.write(g, 0, &[9u8; 5000]).expect("write");
    }
    let mut dev = vol.unmount().expect("unmount");
    if !keep_journal {
        edit::drop_journal(&mut dev);
    }
    let geo = edit::geometry(&dev);
    Base { dev, geo }
}

fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        vec![
            build(4 << 20, 4096, false, false),
            build(4 << 20, 512, true, true),
            build(6 << 20, 4096, true, false),
            build(8 << 20, 65536, false, true),
        ]
    })
}

/// One fuzz case.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let bases = bases();
    let base = &bases[u.choose_index(bases.len()).unwrap_or(0)];
    let mut dev = base.dev.clone();
    let edits = u.int_in_range(0u8..=6).unwrap_or(0);
    for _ in 0..edits {
        apply_edit(&mut dev, &base.geo, &mut u);
    }
    exercise(dev, &mut u);
}

/// Puts a value in one field of one on-disk structure and fixes its checksum.
pub fn apply_edit(dev: &mut MemDevice, geo: &Geometry, u: &mut Unstructured<'_>) {
    let edges = edit::interesting_values(geo);
    let cs = u64::from(geo.cluster_size());
    let pick = |u: &mut Unstructured<'_>, fields: &[(usize, usize)]| {
        fields[u.choose_index(fields.len()).unwrap_or(0)]
    };
    match u.int_in_range(0u8..=8).unwrap_or(0) {
        0 => {
            let (at, w) = pick(u, edit::BOOT_FIELDS);
            let old = edit::get_number(dev, at as u64, w);
            let v = crate::field_value(u, old, w, &edges);
            let mut block = edit::read(dev, 0, 4096);
            block[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
            let raw =
                <fs_core::ondisk::boot::RawBoot as zerocopy::FromBytes>::read_from_bytes(&block)
                    .expect("4 KiB");
            edit::put_boot(dev, &raw);
        }
        1 => {
            let (at, w) = pick(u, edit::STATE_FIELDS);
            let at = geo.state_offset + at as u64;
            let old = edit::get_number(dev, at, w);
            edit::put_number(dev, at, w, crate::field_value(u, old, w, &edges));
            edit::seal_4k(dev, geo.state_offset);
        }
        2 | 3 => {
            // A record of the live table (or of the base table, when sealed).
            let state = edit::state(dev);
            let first = if u.arbitrary::<bool>().unwrap_or(false) {
                state.base_records_first.get()
            } else {
                state.live_records_first.get()
            };
            if !geo.is_cluster(first) {
                return;
            }
            let per_cluster = cs / RECORD_SIZE as u64;
            let n = u.int_in_range(0..=per_cluster - 1).unwrap_or(1);
            let rec = geo.cluster_offset(first) + n * RECORD_SIZE as u64;
            let (at, w) = pick(u, edit::RECORD_FIELDS);
            let old = edit::get_number(dev, rec + at as u64, w);
            edit::put_number(
                dev,
                rec + at as u64,
                w,
                crate::field_value(u, old, w, &edges),
            );
            edit::seal_record(dev, rec);
        }
        4 => {
            let (at, w) = pick(u, edit::JOURNAL_FIELDS);
            let at = geo.journal_offset + at as u64;
            let old = edit::get_number(dev, at, w);
            edit::put_number(dev, at, w, crate::field_value(u, old, w, &edges));
            edit::reseal_journal(dev, geo);
        }
        5 => {
            // An allocation table entry (live or base table).
            let table = if u.arbitrary::<bool>().unwrap_or(false) {
                geo.base_table_offset
            } else {
                geo.live_table_offset
            };
            let block = u64::from(u.int_in_range(0..=geo.table_blocks - 1).unwrap_or(0));
            let entry = u64::from(u.int_in_range(0..=ENTRIES_PER_BLOCK - 1).unwrap_or(0));
            let block_at = table + block * 4096;
            let old = edit::get_number(dev, block_at + entry * 4, 4);
            let v = crate::field_value(u, old, 4, &edges);
            edit::put_number(dev, block_at + entry * 4, 4, v);
            edit::seal_4k(dev, block_at);
        }
        6 => {
            // A field of a directory entry set in the root directory's first cluster.
            let Some(at) = edit::first_data_cluster(geo, dev, 1) else {
                return;
            };
            let slots = cs / 32;
            let slot = u.int_in_range(0..=slots - 1).unwrap_or(0);
            let primary = at + slot * 32;
            if edit::read(dev, primary, 1)[0] != 0x81 {
                return;
            }
            let (f, w) = pick(u, edit::DIRENT_FIELDS);
            let old = edit::get_number(dev, primary + f as u64, w);
            edit::put_number(
                dev,
                primary + f as u64,
                w,
                crate::field_value(u, old, w, &edges),
            );
            if (primary + 32 * (1 + edit::get_number(dev, primary + 1, 1))) <= at + cs {
                edit::seal_dirent(dev, primary);
            }
        }
        7 => {
            // A byte of the table difference bitmap.
            let byte = u.int_in_range(0..=4091u64).unwrap_or(0);
            let v = u.arbitrary::<u8>().unwrap_or(0xFF);
            dev.put(geo.diff_offset + byte, &[v]);
            edit::seal_4k(dev, geo.diff_offset);
        }
        _ => {
            // Any byte of the metadata, checksum left as it is (the checksums' own test).
            let end = geo.heap_offset + 8 * cs;
            let at = u.int_in_range(0..=end - 1).unwrap_or(0);
            let v = u.arbitrary::<u8>().unwrap_or(0);
            dev.put(at, &[v]);
        }
    }
}

/// Bounded walk of the live tree from the root: list, stat and read every file.
fn walk(vol: &mut Volume<MemDevice>) -> Vec<FileId> {
    let mut files = Vec::new();
    let Ok(root) = vol.root() else { return files };
    let mut queue = vec![root];
    let mut visited = 0;
    while let Some(dir) = queue.pop() {
        visited += 1;
        if visited > 64 {
            break;
        }
        let Ok((entries, _)) = vol.read_dir(dir, &DirCursor::start(), 256) else {
            continue;
        };
        for e in entries {
            match e.info.kind {
                FileKind::Directory => queue.push(e.info.id),
                FileKind::File => {
                    let mut buf = vec![0u8; 16 << 10];
                    let _ = vol.info(e.info.id);
                    let _ = vol.read(e.info.id, 0, &mut buf);
                    let _ = vol.read(e.info.id, e.info.file_size.saturating_sub(100), &mut buf);
                    let _ = vol.overlay_status(e.info.id);
                    let _ = vol.file_extents(e.info.id, 0, 64);
                    files.push(e.info.id);
                }
            }
        }
    }
    files
}

fn exercise(dev: MemDevice, u: &mut Unstructured<'_>) {
    if let Ok(mut vol) = Volume::mount(dev.clone(), options(true)) {
        walk(&mut vol);
        let _ = vol.volume_info();
    }
    let _ = fs_core::fsck::check(dev.clone(), false, &mut |_, _| {});
    if let Ok(mut vol) = Volume::mount(dev.clone(), options(false)) {
        let files = walk(&mut vol);
        let name = |s: &str| Name::from_str(s).expect("name");
        for op in 0..u.int_in_range(1u8..=6).unwrap_or(1) {
            let file = files.get(usize::from(op) % files.len().max(1)).copied();
            let offset = u.int_in_range(0u64..=70_000).unwrap_or(0);
            let len = u.int_in_range(1usize..=20_000).unwrap_or(1);
            let _ = match (u.int_in_range(0u8..=9).unwrap_or(0), file) {
                (0, Some(f)) => vol.write(f, offset, &vec![0xA5; len]).map(drop),
                (1, Some(f)) => vol.set_file_size(f, offset),
                (2, Some(f)) => vol.discard_file(f),
                (3, Some(f)) => vol.commit_file(f),
                (4, _) => vol.seal(),
                (5, _) => vol.commit(),
                (6, _) => vol.discard(),
                (7, _) => vol.root().and_then(|root| {
                    let f =
                        vol.create(root, &name("fz"), FileKind::File, FileAttributes::empty())?;
                    vol.write(f, 0, &vec![1u8; len]).map(drop)
                }),
                (8, _) => vol.root().and_then(|root| vol.delete(root, &name("f0"))),
                (_, Some(f)) => vol.set_allocation_size(f, offset),
                _ => Ok(()),
            };
        }
        walk(&mut vol);
        if let Ok(after) = vol.unmount() {
            let _ = fs_core::fsck::check(after, false, &mut |_, _| {});
        }
    }
    if let Ok((_, repaired)) = fs_core::fsck::check(dev, true, &mut |_, _| {}) {
        // What repair leaves must mount and check without a panic.
        let _ = fs_core::fsck::check(repaired.clone(), false, &mut |_, _| {});
        if let Ok(mut vol) = Volume::mount(repaired, options(false)) {
            walk(&mut vol);
        }
    }
}
