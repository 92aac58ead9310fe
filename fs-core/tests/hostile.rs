//! Hostile images: each finding of the structure-aware fuzzing (issue 15) rebuilt from its
//! description, on a small formatted image, with the checksums fixed up so the value reaches
//! the code that uses it. Each must give `Error::Corrupt` naming the structure and the field,
//! never a panic, an overflow or an allocation sized by the bad value.

mod common;

use common::edit::{self, set_record_field};
use common::{create_file, formatted, mount, opts};
use fs_core::ondisk::record::ROOT_RECORD;
use fs_core::{Error, MemDevice, Volume};

const MIB: u64 = 1 << 20;

/// A volume with a file in a subdirectory and a committed transaction left in the journal.
fn image_with_journal() -> MemDevice {
    let mut vol = mount(formatted(8 * MIB, 4096));
    common::mkdir(&mut vol, "/dir");
    create_file(&mut vol, "/dir/file.txt", b"hello");
    vol.unmount().expect("unmount")
}

/// The same with an empty journal, so edits to metadata are not replayed over.
fn image() -> MemDevice {
    let mut dev = image_with_journal();
    edit::drop_journal(&mut dev);
    dev
}

fn corrupt_what<T: std::fmt::Debug>(r: Result<T, Error>) -> &'static str {
    match r {
        Err(Error::Corrupt { what, .. }) => what,
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
}

fn record_of(dev: &MemDevice, path: &str) -> u32 {
    let mut vol = Volume::mount(dev.clone(), read_only()).expect("mount");
    vol.resolve(path).expect("resolve").record()
}

fn read_only() -> fs_core::MountOptions {
    let mut o = opts();
    o.read_only = true;
    o
}

/// Finding 1: a journal descriptor block count of 0xFFFF made every mount (read-only and
/// fsck too) allocate 268 MB before looking at the second descriptor block.
#[test]
fn hostile_journal_descriptor_count_is_checked_against_the_journal() {
    let mut dev = image_with_journal();
    let geo = edit::geometry(&dev);
    edit::put_number(&mut dev, geo.journal_offset + 20, 4, 0xFFFF);
    edit::seal_4k(&mut dev, geo.journal_offset);
    for read_only in [true, false] {
        let mut o = opts();
        o.read_only = read_only;
        let r = Volume::mount(dev.clone(), o);
        assert_eq!(corrupt_what(r), "journal descriptor block count");
    }
    let r = fs_core::fsck::check(dev.clone(), false, &mut |_, _| {});
    assert_eq!(corrupt_what(r), "journal descriptor block count");
    // The largest count the journal can hold is not damage by itself: the descriptor blocks
    // after the first do not match, so the transaction never committed and mount goes on.
    let max = geo.journal_size / 4096 - 1;
    edit::put_number(&mut dev, geo.journal_offset + 20, 4, max);
    edit::seal_4k(&mut dev, geo.journal_offset);
    let mut vol = Volume::mount(dev, read_only()).expect("mount");
    assert_eq!(common::cat(&mut vol, "/dir/file.txt"), b"hello");
}

/// Finding 2: a root record claiming 2^40 clusters made listing the root allocate 2^52 bytes
/// (and a larger count overflowed the multiplication).
#[test]
fn hostile_directory_cluster_count_is_checked_before_reading_the_directory() {
    for count in [1u64 << 40, u64::MAX, 1 << 52] {
        let mut dev = image();
        set_record_field(&mut dev, ROOT_RECORD, 32, 8, count);
        // Mount reads only the root's record flags; the listing reads its entries.
        let r = Volume::mount(dev, read_only()).and_then(|mut vol| {
            let root = vol.root()?;
            vol.read_dir(root, &fs_core::DirCursor::default(), usize::MAX)
        });
        assert_eq!(
            corrupt_what(r),
            "file record cluster count",
            "count {count:#x}"
        );
    }
}

/// Finding 3, fsck.rs and file.rs: the checker (checking sizes) and a file's information
/// (its allocation size) multiplied a record's cluster count by the cluster size. A count
/// beyond the volume's is now damage of the record itself, like a bad checksum: every
/// record is read at mount, so mount, fsck and the file's information all name it.
#[test]
fn hostile_file_cluster_count_is_corrupt_before_anything_multiplies_it() {
    for count in [u64::MAX, u64::MAX / 2, 1 << 40, 1881] {
        let mut dev = image();
        let file = record_of(&dev, "/dir/file.txt");
        set_record_field(&mut dev, file, 32, 8, count);
        let r = fs_core::fsck::check(dev.clone(), false, &mut |_, _| {});
        assert_eq!(corrupt_what(r), "file record cluster count", "{count:#x}");
        let r = fs_core::fsck::check(dev.clone(), true, &mut |_, _| {});
        assert_eq!(corrupt_what(r), "file record cluster count", "{count:#x}");
        let r = Volume::mount(dev, read_only()).and_then(|mut vol| {
            let id = vol.resolve("/dir/file.txt")?;
            vol.info(id)
        });
        assert_eq!(corrupt_what(r), "file record cluster count", "{count:#x}");
    }
    // The volume's own cluster count is the largest a record may claim: that is not damage
    // of the record (reading the file finds the chain shorter than the record says).
    let mut dev = image();
    let file = record_of(&dev, "/dir/file.txt");
    let total = u64::from(edit::geometry(&dev).cluster_count);
    set_record_field(&mut dev, file, 32, 8, total);
    let mut vol = Volume::mount(dev, read_only()).expect("mount");
    let id = vol.resolve("/dir/file.txt").expect("resolve");
    assert_eq!(vol.info(id).expect("info").allocation_size, total * 4096);
    let mut buf = [0u8; 5];
    assert_eq!(
        corrupt_what(vol.read(id, 0, &mut buf)),
        "cluster chain shorter than its file record says"
    );
}

/// Finding 3, layout.rs: the journal size from the boot block was added to the journal offset.
#[test]
fn hostile_boot_journal_size_is_checked_against_the_volume() {
    for journal_size in [u64::MAX - 4095, 1 << 62, 16 * MIB] {
        let mut dev = image();
        let mut boot = edit::boot(&dev);
        boot.journal_size.set(journal_size);
        edit::put_boot(&mut dev, &boot);
        let what = corrupt_what(Volume::mount(dev, read_only()));
        assert_eq!(what, "boot block journal size", "{journal_size:#x}");
    }
    let mut dev = image();
    let mut boot = edit::boot(&dev);
    boot.volume_size.set(u64::MAX);
    edit::put_boot(&mut dev, &boot);
    assert!(matches!(
        Volume::mount(dev, read_only()),
        Err(Error::Corrupt { .. })
    ));
}

/// Finding 3, volume.rs: the journal sequence at u64::MAX was incremented by the next commit.
#[test]
fn hostile_journal_sequence_at_its_end_refuses_writes_and_reads_fine() {
    let mut dev = image();
    let mut state = edit::state(&dev);
    state.journal_seq.set(u64::MAX);
    edit::put_state(&mut dev, &state);
    // A writable mount commits nothing until something changes; the first change's commit
    // cannot take a next sequence number.
    let mut vol = Volume::mount(dev.clone(), opts()).expect("mount");
    create_file(&mut vol, "/new.txt", b"x");
    assert_eq!(corrupt_what(vol.sync()), "state block journal sequence");
    let mut vol = Volume::mount(dev, read_only()).expect("read-only mount");
    assert_eq!(common::cat(&mut vol, "/dir/file.txt"), b"hello");
}

/// The state block's record-table cluster counts size the record scan of every mount.
#[test]
fn hostile_record_table_cluster_count_is_checked_against_the_volume() {
    for count in [u32::MAX, 0x8000_0000] {
        let mut dev = image();
        let mut state = edit::state(&dev);
        state.live_records_clusters.set(count);
        edit::put_state(&mut dev, &state);
        let what = corrupt_what(Volume::mount(dev, read_only()));
        assert_eq!(what, "state block record table cluster count");
    }
}
