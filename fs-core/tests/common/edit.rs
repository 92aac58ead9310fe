//! Field-level editing of cowfat images, with every checksum fixed up afterwards, so a test
//! (or the fuzzer, which includes this file) can put any value in any on-disk field and get
//! past the CRCs to the code that uses the value. Offsets come from the `Raw*` structures'
//! documented layouts (docs/format.md).
#![allow(dead_code)]

use fs_core::layout::Geometry;
use fs_core::ondisk::boot::RawBoot;
use fs_core::ondisk::dirent::SLOT_SIZE;
use fs_core::ondisk::record::RECORD_SIZE;
use fs_core::ondisk::state::RawState;
use fs_core::ondisk::{crc32c, seal_block, BLOCK_SIZE};
use fs_core::{BlockDevice, MemDevice};
use zerocopy::{FromBytes, IntoBytes};

const BLOCK: u64 = BLOCK_SIZE as u64;

/// (byte offset, width) of every number in the boot block.
pub const BOOT_FIELDS: &[(usize, usize)] = &[
    (16, 4),
    (20, 4),
    (24, 4),
    (32, 8),
    (40, 4),
    (44, 4),
    (56, 8),
    (64, 8),
    (72, 8),
    (80, 8),
    (88, 4),
    (92, 4),
    (96, 8),
    (104, 8),
    (112, 8),
    (120, 8),
];
/// ... of the state block.
pub const STATE_FIELDS: &[(usize, usize)] = &[
    (4, 4),
    (8, 8),
    (16, 4),
    (20, 4),
    (24, 4),
    (28, 4),
    (32, 8),
    (40, 8),
    (48, 8),
    (56, 4),
    (60, 4),
];
/// ... of a file record.
pub const RECORD_FIELDS: &[(usize, usize)] = &[
    (0, 2),
    (2, 2),
    (4, 4),
    (8, 4),
    (12, 4),
    (16, 8),
    (24, 8),
    (32, 8),
];
/// ... of a journal descriptor block's header and of its first descriptors.
pub const JOURNAL_FIELDS: &[(usize, usize)] = &[
    (8, 8),
    (16, 4),
    (20, 4),
    (24, 4),
    (32, 8),
    (40, 4),
    (48, 8),
    (56, 4),
    (64, 8),
    (72, 4),
];
/// ... of a directory entry set's primary slot.
pub const DIRENT_FIELDS: &[(usize, usize)] = &[(1, 1), (2, 1), (8, 8), (16, 2)];

pub fn read(dev: &MemDevice, at: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    dev.get(at, &mut buf);
    buf
}

/// Writes a little-endian number of `width` bytes.
pub fn put_number(dev: &mut MemDevice, at: u64, width: usize, value: u64) {
    dev.put(at, &value.to_le_bytes()[..width]);
}

pub fn get_number(dev: &MemDevice, at: u64, width: usize) -> u64 {
    let mut v = [0u8; 8];
    dev.get(at, &mut v[..width]);
    u64::from_le_bytes(v)
}

pub fn boot(dev: &MemDevice) -> RawBoot {
    RawBoot::read_from_bytes(&read(dev, 0, BLOCK_SIZE)).expect("4 KiB")
}

/// Writes the boot block and its backup (mount falls back to the backup when the first is
/// corrupt, so an edit must reach both to be seen).
pub fn put_boot(dev: &mut MemDevice, raw: &RawBoot) {
    let block = raw.to_block().expect("a boot block fits in memory");
    dev.put(0, &block);
    dev.put(backup_boot_offset(dev), &block);
}

/// Where mount looks for the backup: the device's last 4 KiB.
pub fn backup_boot_offset(dev: &MemDevice) -> u64 {
    let size = dev.size();
    size - size % BLOCK - BLOCK
}

/// The geometry of an unedited image.
pub fn geometry(dev: &MemDevice) -> Geometry {
    Geometry::from_boot(&boot(dev), dev.size()).expect("geometry of a good image")
}

pub fn state(dev: &MemDevice) -> RawState {
    RawState::read_from_bytes(&read(dev, BLOCK, BLOCK_SIZE)).expect("4 KiB")
}

pub fn put_state(dev: &mut MemDevice, raw: &RawState) {
    let mut block = read(dev, BLOCK, BLOCK_SIZE);
    block.copy_from_slice(raw.as_bytes());
    seal_block(&mut block);
    dev.put(BLOCK, &block);
}

/// Empties the journal of a cleanly unmounted image (its last transaction is home already),
/// so mount does not replay the journaled copies of blocks over a test's edits.
pub fn drop_journal(dev: &mut MemDevice) {
    let at = geometry(dev).journal_offset;
    dev.put(at, &[0u8; BLOCK_SIZE]);
}

/// Re-seals the checked 4 KiB block at `at` (boot, state, table, diff, journal header).
pub fn seal_4k(dev: &mut MemDevice, at: u64) {
    let mut block = read(dev, at, BLOCK_SIZE);
    seal_block(&mut block);
    dev.put(at, &block);
}

/// Volume offset of live record `n` (records sit in the record table's first cluster in the
/// small images the tests and the fuzzer use); None when the state block's record table head
/// is not a cluster (after an edit).
pub fn record_offset(geo: &Geometry, dev: &MemDevice, n: u32) -> Option<u64> {
    let first = state(dev).live_records_first.get();
    geo.is_cluster(first)
        .then(|| geo.cluster_offset(first) + u64::from(n) * RECORD_SIZE as u64)
}

pub fn seal_record(dev: &mut MemDevice, at: u64) {
    let mut rec = read(dev, at, RECORD_SIZE);
    seal_block(&mut rec);
    dev.put(at, &rec);
}

/// Sets a number in live record `n` and fixes its CRC.
pub fn set_record_field(dev: &mut MemDevice, n: u32, field: usize, width: usize, value: u64) {
    let geo = geometry(dev);
    let at = record_offset(&geo, dev, n).expect("the record table of an unedited image");
    put_number(dev, at + field as u64, width, value);
    seal_record(dev, at);
}

/// Volume offset of the first cluster of live record `n`'s chain, if it has one.
pub fn first_data_cluster(geo: &Geometry, dev: &MemDevice, n: u32) -> Option<u64> {
    let at = record_offset(geo, dev, n)?;
    let first = get_number(dev, at + 8, 4) as u32;
    geo.is_cluster(first).then(|| geo.cluster_offset(first))
}

/// Fixes the CRC of the directory entry set whose primary slot is at `at`.
pub fn seal_dirent(dev: &mut MemDevice, at: u64) {
    let slots = 1 + usize::from(read(dev, at + 1, 1)[0]);
    let mut set = read(dev, at, slots * SLOT_SIZE);
    set[4..8].fill(0);
    let crc = crc32c(&set);
    dev.put(at + 4, &crc.to_le_bytes());
}

/// After edits to the journal's descriptor blocks: re-seals them, then finds the commit
/// block where the (edited) descriptors put it and rewrites its descriptor CRC and count,
/// so the transaction still reads as committed. Returns false when the edited descriptors
/// put the commit block outside the journal.
pub fn reseal_journal(dev: &mut MemDevice, geo: &Geometry) -> bool {
    let start = geo.journal_offset;
    let blocks_in_journal = geo.journal_size / BLOCK;
    let desc_blocks = get_number(dev, start + 20, 4).clamp(1, blocks_in_journal.max(1) - 1);
    let mut descs_crc = fs_core::ondisk::crc32c_digest();
    let mut data = 0u64;
    let mut count = 0u64;
    for i in 0..desc_blocks {
        let at = start + i * BLOCK;
        seal_4k(dev, at);
        let block = read(dev, at, BLOCK_SIZE);
        descs_crc.update(&block);
        let n = get_number(dev, at + 24, 4).min(253);
        for d in 0..n {
            data = data.saturating_add(get_number(dev, at + 32 + d * 16 + 8, 4));
        }
        count += n;
    }
    let Some(commit) = (desc_blocks * BLOCK)
        .checked_add(data)
        .filter(|&c| c.saturating_add(BLOCK) <= geo.journal_size)
    else {
        return false;
    };
    let at = start + commit;
    put_number(dev, at + 16, 4, count);
    put_number(dev, at + 20, 4, u64::from(descs_crc.finalize()));
    seal_4k(dev, at);
    true
}

/// The values a mutation tries first: the edges of every integer width and of the geometry.
pub fn interesting_values(geo: &Geometry) -> [u64; 16] {
    [
        0,
        1,
        2,
        0x7F,
        0xFF,
        0xFFFF,
        0x1_0000,
        0xFFFF_FFFF,
        0x1_0000_0000,
        1 << 40,
        u64::MAX,
        u64::MAX - 1,
        u64::from(geo.cluster_count),
        u64::from(geo.cluster_count) + 2,
        geo.volume_size,
        geo.journal_size / BLOCK,
    ]
}
