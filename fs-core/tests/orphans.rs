//! Files unlinked while open (orphans) across a volume seal and commit: whatever happens to
//! the overlay, an orphan's clusters and record are freed by its purge (the last close), or
//! at the latest by the next mount, and fsck never finds them leaked.

mod common;
use common::*;
use fs_core::{FileId, MemDevice, Volume};

type OverlayOp = fn(&mut Volume<MemDevice>);

fn seal(v: &mut Volume<MemDevice>) {
    v.seal().unwrap();
}

fn seal_then_commit(v: &mut Volume<MemDevice>) {
    v.seal().unwrap();
    v.commit().unwrap();
}

/// What the orphan may still cost once gone: its record's record-table cluster, which the
/// live table copied away from the base when the orphan was taken out of the base.
const RECORD_TABLE_COPY: u64 = 1;

/// A volume with a named file, then a file unlinked while open, the overlay
/// operation, and a write to the orphan after it (the kernel writing back late).
fn orphan_across(op: OverlayOp) -> (Volume<MemDevice>, FileId, u64) {
    let mut vol = mount(formatted(16 << 20, 4096));
    create_file(&mut vol, "/kept", &pattern(9, 30_000));
    let free_without_orphan = vol.volume_info().free_clusters;
    let root = vol.root().unwrap();
    let f = create_file(&mut vol, "/open", &pattern(1, 100_000));
    vol.unlink(root, &name("open")).unwrap();
    op(&mut vol);
    vol.write(f, 50_000, &pattern(2, 60_000)).unwrap();
    (vol, f, free_without_orphan)
}

fn purge_frees_everything(op: OverlayOp) {
    let (mut vol, f, free_without_orphan) = orphan_across(op);
    vol.purge_orphan(f).unwrap();
    vol.sync().unwrap();
    assert_eq!(
        vol.volume_info().free_clusters,
        free_without_orphan - RECORD_TABLE_COPY
    );
    let mut vol = mount(assert_clean(vol.unmount().unwrap()));
    assert_eq!(cat(&mut vol, "/kept"), pattern(9, 30_000));
}

fn next_mount_frees_everything(op: OverlayOp) {
    let (vol, _f, free_without_orphan) = orphan_across(op);
    // Unmounted with the orphan still open (a crash, or a kernel that never released it).
    let vol = mount(vol.unmount().unwrap());
    assert_eq!(
        vol.volume_info().free_clusters,
        free_without_orphan - RECORD_TABLE_COPY
    );
    assert_clean(vol.unmount().unwrap());
}

#[test]
fn orphan_open_across_seal_is_freed_by_its_purge() {
    purge_frees_everything(seal);
}

#[test]
fn orphan_open_across_commit_is_freed_by_its_purge() {
    purge_frees_everything(seal_then_commit);
}

#[test]
fn orphan_open_across_seal_is_freed_by_the_next_mount() {
    next_mount_frees_everything(seal);
}

#[test]
fn orphan_open_across_commit_is_freed_by_the_next_mount() {
    next_mount_frees_everything(seal_then_commit);
}

#[test]
fn discard_after_a_commit_with_an_orphan_leaves_no_trace_of_it() {
    let (mut vol, f, free_without_orphan) = orphan_across(seal_then_commit);
    vol.discard().unwrap();
    assert_eq!(vol.info(f).map(|_| ()), Err(fs_core::Error::StaleFileId));
    assert_eq!(vol.volume_info().free_clusters, free_without_orphan);
    assert_eq!(cat(&mut vol, "/kept"), pattern(9, 30_000));
    assert_clean(vol.unmount().unwrap());
}

/// A full volume with free records left (files made and deleted before it filled up) and an
/// empty directory `/d`, so a create there gets its record and then finds no cluster for the
/// directory's entries.
fn full_volume() -> Volume<MemDevice> {
    let mut vol = mount(formatted(16 << 20, 4096));
    let root = vol.root().unwrap();
    for i in 0..64 {
        create_file(&mut vol, &format!("/tmp{i}"), b"x");
    }
    for i in 0..64 {
        vol.delete(root, &name(&format!("tmp{i}"))).unwrap();
    }
    mkdir(&mut vol, "/d");
    let big = vol
        .create(
            root,
            &name("big"),
            fs_core::FileKind::File,
            Default::default(),
        )
        .unwrap();
    let chunk = vec![7u8; 1 << 20];
    let mut at = 0u64;
    while vol.write(big, at, &chunk).is_ok() {
        at += chunk.len() as u64;
    }
    let cluster = vec![7u8; 4096];
    while vol.write(big, at, &cluster).is_ok() {
        at += cluster.len() as u64;
    }
    vol
}

#[test]
fn create_refused_for_space_leaves_no_record_behind() {
    let mut vol = full_volume();
    let dir = vol.resolve("/d").unwrap();
    let mut refused = 0;
    for i in 0..40 {
        let made = vol.create(
            dir,
            &name(&format!("file-with-a-long-name-{i:04}")),
            fs_core::FileKind::File,
            Default::default(),
        );
        match made {
            Ok(_) => {}
            Err(fs_core::Error::NoSpace) => refused += 1,
            Err(e) => panic!("create: {e:?}"),
        }
    }
    assert!(refused > 0, "the volume never filled up");
    vol.sync().unwrap();
    assert_clean(vol.unmount().unwrap());
}

#[test]
fn rename_refused_for_space_keeps_the_old_name() {
    let mut vol = full_volume();
    let root = vol.root().unwrap();
    let dir = vol.resolve("/d").unwrap();
    let renamed = vol.rename(
        root,
        &name("big"),
        dir,
        &name("a-name-long-enough-to-need-entry-room"),
        false,
    );
    assert_eq!(renamed, Err(fs_core::Error::NoSpace));
    assert!(vol.resolve("/big").is_ok(), "the file lost its name");
    vol.sync().unwrap();
    assert_clean(vol.unmount().unwrap());
}

/// A commit while an orphan is open, after base records were read (per-file status, commit or
/// discard cache the base record table's map): freeing the orphan's base record must write
/// the new base record table, not the one from before the commit.
#[test]
fn commit_with_an_orphan_frees_its_record_in_the_new_base() {
    let mut vol = mount(formatted(16 << 20, 4096));
    let kept = create_file(&mut vol, "/kept", &pattern(9, 30_000));
    vol.seal().unwrap();
    vol.write(kept, 0, &pattern(3, 5000)).unwrap();
    vol.overlay_status(kept).unwrap();
    let root = vol.root().unwrap();
    let f = create_file(&mut vol, "/open", &pattern(1, 100_000));
    vol.unlink(root, &name("open")).unwrap();
    vol.commit().unwrap();
    vol.write(f, 0, &pattern(2, 20_000)).unwrap();
    vol.purge_orphan(f).unwrap();
    let mut committed = pattern(9, 30_000);
    committed[..5000].copy_from_slice(&pattern(3, 5000));
    // The discard makes the base live again: the orphan must not come back from it.
    vol.discard().unwrap();
    assert_eq!(cat(&mut vol, "/kept"), committed);
    let mut vol = mount(assert_clean(vol.unmount().unwrap()));
    assert_eq!(cat(&mut vol, "/kept"), committed);
    assert_clean(vol.unmount().unwrap());
}
