//! Corrupt images: bytes flipped or zeroed all over the metadata, and images cut short.
//! Every case must end in a typed error or a check result, never a panic or a hang; and a
//! volume that still mounts must keep answering with errors rather than garbage.

mod common;
use common::*;
use fs_core::{BlockDevice, Error, MemDevice, Volume};

/// A sealed volume with an overlay, unmounted: every kind of metadata is on it.
fn victim() -> MemDevice {
    let mut vol = mount(formatted(6 << 20, 4096));
    mkdir(&mut vol, "/d");
    for i in 0..12 {
        create_file(
            &mut vol,
            &format!("/d/file {i} with a longer name"),
            &pattern(i, 3000 * (i as usize + 1)),
        );
    }
    vol.seal().unwrap();
    let f = vol.resolve("/d/file 3 with a longer name").unwrap();
    vol.write(f, 100, b"overlay").unwrap();
    create_file(&mut vol, "/after", b"new");
    vol.unmount().unwrap()
}

/// Mounts, reads everything it can, and checks: all outcomes are allowed but panics.
fn exercise(dev: MemDevice) -> &'static str {
    let checked = fs_core::fsck::check(dev.clone(), false, &mut |_, _| {});
    let Ok(mut vol) = Volume::mount(dev, opts()) else {
        return "mount refused";
    };
    let mut stack = vec![match vol.root() {
        Ok(r) => r,
        Err(_) => return "root unreadable",
    }];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = vol.list(dir) else { continue };
        for e in entries {
            match e.info.kind {
                fs_core::FileKind::Directory => stack.push(e.info.id),
                fs_core::FileKind::File => {
                    let mut buf = vec![0u8; e.info.file_size.min(1 << 20) as usize];
                    let _ = vol.read(e.info.id, 0, &mut buf);
                    let _ = vol.write(e.info.id, 0, b"poke");
                }
            }
        }
    }
    let _ = vol.discard();
    let _ = vol.unmount();
    match checked {
        Ok((report, _)) if report.is_clean() => "clean",
        Ok(_) => "problems found",
        Err(_) => "check refused",
    }
}

fn metadata_ranges(dev: &MemDevice) -> Vec<(u64, u64)> {
    let mut d = dev.clone();
    let mut vol = Volume::mount(&mut d, opts().read_only()).unwrap();
    let g = vol.geometry().clone();
    let mut ranges = vec![
        (0, 4096),
        (g.state_offset, 4096),
        (g.journal_offset, 8192),
        (g.upcase_offset, 4096),
        (g.diff_offset, 4096),
        (g.base_table_offset, 4096),
        (g.live_table_offset, 4096),
    ];
    // The first clusters hold the record tables and directories.
    ranges.push((g.heap_offset, 16 * 4096));
    let _ = vol.root();
    ranges
}

#[test]
fn corrupt_bytes_anywhere_in_metadata_never_panic() {
    let clean = victim();
    let mut outcomes = std::collections::BTreeMap::new();
    for (start, len) in metadata_ranges(&clean) {
        for off in (0..len).step_by(61) {
            for flip in [0xFFu8, 0x01] {
                let mut dev = clean.clone();
                let mut b = [0u8; 1];
                dev.get(start + off, &mut b);
                dev.put(start + off, &[b[0] ^ flip]);
                *outcomes.entry(exercise(dev)).or_insert(0) += 1;
            }
        }
    }
    // Damage must be noticed somewhere: most flips are refused or reported.
    assert!(
        outcomes.get("mount refused").copied().unwrap_or(0) > 100,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get("problems found").copied().unwrap_or(0)
            + outcomes.get("check refused").copied().unwrap_or(0)
            > 100,
        "{outcomes:?}"
    );
}

#[test]
fn corrupt_zeroed_blocks_and_truncated_images_never_panic() {
    let clean = victim();
    for (start, len) in metadata_ranges(&clean) {
        let mut dev = clean.clone();
        dev.put(start, &vec![0u8; len as usize]);
        exercise(dev);
        let mut dev = clean.clone();
        dev.put(start, &vec![0xA5u8; len as usize]);
        exercise(dev);
    }
    let bytes = clean.to_bytes();
    for keep in [
        0usize,
        4096,
        8192,
        1 << 20,
        bytes.len() / 2,
        bytes.len() - 4096,
    ] {
        let dev = MemDevice::from_bytes(&bytes[..keep]);
        let outcome = exercise(dev);
        assert_ne!(
            outcome, "clean",
            "an image cut to {keep} bytes checked clean"
        );
    }
}

#[test]
fn corrupt_boot_block_falls_back_to_the_backup_and_foreign_volumes_are_refused() {
    let clean = victim();
    let mut dev = clean.clone();
    dev.put(100, &[0x5A; 8]);
    let mut vol = Volume::mount(dev, opts()).expect("backup boot block used");
    assert_eq!(cat(&mut vol, "/after"), b"new");
    let mut foreign = MemDevice::new(6 << 20);
    foreign.put(3, b"NTFS    ");
    assert!(matches!(
        Volume::mount(foreign, opts()),
        Err(Error::NotCowfat(_))
    ));
    let mut both = clean.clone();
    both.put(100, &[0x5A; 8]);
    let end = both.size() - 4096 + 100;
    both.put(end, &[0x5A; 8]);
    assert!(matches!(
        Volume::mount(both, opts()),
        Err(Error::Corrupt {
            what: "boot block checksum",
            at: 0
        })
    ));
}

#[test]
fn corrupt_directory_entry_names_where() {
    let clean = victim();
    let mut vol = Volume::mount(clean.clone(), opts()).unwrap();
    let d = vol.resolve("/d").unwrap();
    let _ = vol.list(d).unwrap();
    drop(vol);
    // Find the first directory slot of /d by scanning the heap for its entry type bytes.
    let mut dev = clean.clone();
    let g = Volume::mount(&mut dev, opts().read_only())
        .unwrap()
        .geometry()
        .clone();
    let name_units: Vec<u8> = "file 0 "
        .encode_utf16()
        .take(7)
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let mut cluster = vec![0u8; 4096];
    let mut hit = None;
    for c in 2..200u32 {
        dev.get(g.cluster_offset(c), &mut cluster);
        if let Some(pos) = cluster.windows(14).position(|w| w == name_units.as_slice()) {
            hit = Some(g.cluster_offset(c) + pos as u64 - 18);
            break;
        }
    }
    let slot = hit.expect("directory slot found");
    dev.put(slot + 9, &[0xEE]);
    let mut vol = Volume::mount(dev, opts()).unwrap();
    let d = vol.resolve("/d");
    let err = d.and_then(|d| vol.list(d).map(|_| d)).unwrap_err();
    assert_eq!(
        err,
        Error::Corrupt {
            what: "directory entry checksum",
            at: slot
        }
    );
}
