//! Formatting: lays out a new volume and writes its first state — an empty root directory,
//! unsealed. The tables are not written: all-zero table blocks are valid and mean "free".

use alloc::vec;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::layout::{default_journal_size, Geometry};
use crate::name::UpcaseTable;
use crate::ondisk::boot::{RawBoot, SIGNATURE, VERSION};
use crate::ondisk::record::{RawRecord, RecordFlags, RECORD_SIZE, ROOT_RECORD};
use crate::ondisk::state::{RawState, MAGIC};
use crate::ondisk::table::{entry_position, END, FIRST_CLUSTER};
use crate::ondisk::{crc32c, seal_block, BLOCK_SIZE};
use crate::types::{FileAttributes, FormatOptions};

/// Formats `dev` as an empty, unsealed cowfat volume filling the whole device.
pub fn format<D: BlockDevice>(dev: &mut D, options: &FormatOptions) -> Result<Geometry> {
    let cs = options.cluster_size;
    if !cs.is_power_of_two() {
        return Err(Error::InvalidArgument(
            "the cluster size must be a power of two from 512 bytes to 64 KiB",
        ));
    }
    let label = crate::overlay::label_units(&options.label)?;
    let journal = options
        .journal_size
        .unwrap_or_else(|| default_journal_size(dev.size()));
    let geo = Geometry::compute(dev.size(), cs.trailing_zeros(), dev.sector_size(), journal)?;
    let block = BLOCK_SIZE as u64;

    // Old content must not look like metadata: a stale journal transaction would be replayed,
    // stale table blocks read as allocated.
    dev.write_zeroes(geo.state_offset, block * 2)?;
    dev.write_zeroes(geo.diff_offset, geo.heap_offset - geo.diff_offset)?;

    let upcase = UpcaseTable::generate().to_bytes();
    dev.write_at(geo.upcase_offset, &upcase)?;

    // The record table is one cluster (cluster 2) holding the root directory's record.
    let records_cluster = FIRST_CLUSTER;
    let mut cluster = vec![0u8; cs as usize];
    let mut root = RawRecord::new_zeroed();
    root.flags
        .set((RecordFlags::IN_USE | RecordFlags::DIRECTORY).bits());
    root.sequence.set(1);
    root.attributes.set(FileAttributes::DIRECTORY.bits());
    root.parent.set(ROOT_RECORD);
    for t in [
        &mut root.creation_time,
        &mut root.last_access_time,
        &mut root.last_write_time,
        &mut root.change_time,
    ] {
        t.set(options.time.0);
    }
    let at = ROOT_RECORD as usize * RECORD_SIZE;
    cluster[at..at + RECORD_SIZE].copy_from_slice(&root.to_bytes());
    dev.write_at(geo.cluster_offset(records_cluster), &cluster)?;

    let (table_block, entry_at) = entry_position(records_cluster);
    let mut table = vec![0u8; BLOCK_SIZE];
    table[entry_at..entry_at + 4].copy_from_slice(&END.to_le_bytes());
    seal_block(&mut table);
    dev.write_at(
        geo.live_table_offset + u64::from(table_block) * block,
        &table,
    )?;
    // Base and live table differ in that block until the first seal copies it.
    let mut diff = vec![0u8; BLOCK_SIZE];
    diff[(table_block / 8) as usize] |= 1 << (table_block % 8);
    seal_block(&mut diff);
    dev.write_at(geo.diff_offset, &diff)?;

    let mut state = RawState::new_boxed()?;
    state.magic = MAGIC;
    state.journal_seq.set(1);
    state.live_records_first.set(records_cluster);
    state.live_records_clusters.set(1);
    state.live_used.set(1);
    state.alloc_hint.set(records_cluster + 1);
    state.label_len.set(label.len() as u32);
    for (slot, unit) in state.label.iter_mut().zip(&label) {
        slot.set(*unit);
    }
    dev.write_at(geo.state_offset, &state.to_block()?)?;

    let mut boot = RawBoot::new_boxed()?;
    boot.signature = SIGNATURE;
    boot.version.set(VERSION);
    boot.serial.set(options.serial);
    boot.format_time.set(options.time.0);
    boot.upcase_crc.set(crc32c(&upcase));
    geo.write_to(&mut boot);
    let boot_block = boot.to_block()?;
    dev.write_at(geo.backup_boot_offset, &boot_block)?;
    dev.flush()?;
    // The primary boot block last: until it is written, the device is not a cowfat volume.
    dev.write_at(0, &boot_block)?;
    dev.flush()?;
    Ok(geo)
}
