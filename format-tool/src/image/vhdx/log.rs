//! The VHDX metadata log: building the entry this tool writes before it changes metadata in
//! place, and finding and decoding the active sequence of a log left by a writer that stopped
//! (crash, power loss) so it can be replayed.
//!
//! The log is a circular buffer of 4 KiB sectors. An entry is a 64-byte header, descriptors of
//! 32 bytes (padded to whole sectors), then one 4 KiB data sector per data descriptor. The
//! active sequence is the run of valid, contiguous entries with consecutive sequence numbers
//! that ends at the valid entry with the highest sequence number whose `tail` points back to
//! the run's first entry.

use std::collections::HashMap;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use super::format::{
    checksum_ok, seal_checksum, DataSector, Descriptor, LogEntryHeader, DATA_DESCRIPTOR_SIGNATURE,
    DATA_SECTOR_SIGNATURE, DESCRIPTOR_SIZE, LOG_ENTRY_HEADER_SIZE, LOG_ENTRY_SIGNATURE, LOG_SECTOR,
    ZERO_DESCRIPTOR_SIGNATURE,
};
use super::VhdxError;

/// One change a replay makes to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// 4 KiB of data at a 4 KiB-aligned offset.
    Data { offset: u64, sector: Box<[u8]> },
    /// `len` zero bytes at `offset`.
    Zero { offset: u64, len: u64 },
}

/// What a replay must do: the patches in order, and how long the file must be.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub patches: Vec<Patch>,
    pub last_file_offset: u64,
}

/// Bytes of header and descriptors, rounded to whole log sectors.
fn descriptor_area(count: u64) -> u64 {
    (LOG_ENTRY_HEADER_SIZE + count * DESCRIPTOR_SIZE).next_multiple_of(LOG_SECTOR)
}

/// Builds a log entry that writes each 4 KiB `(offset, sector)`; it is the only entry of its
/// sequence, so its tail is its own log offset (0).
pub fn build_entry(
    sequence: u64,
    log_guid: [u8; 16],
    file_len: u64,
    writes: &[(u64, &[u8])],
) -> Vec<u8> {
    let count = writes.len() as u64;
    let area = descriptor_area(count);
    let len = area + count * LOG_SECTOR;
    let mut entry = vec![0u8; super::to_usize(len)];
    let mut header = LogEntryHeader::new_zeroed();
    header.signature = U32::new(LOG_ENTRY_SIGNATURE);
    header.entry_length = U32::new(u32::try_from(len).unwrap_or(u32::MAX));
    header.tail = U32::new(0);
    header.sequence_number = U64::new(sequence);
    header.descriptor_count = U32::new(u32::try_from(count).unwrap_or(u32::MAX));
    header.log_guid = log_guid;
    header.flushed_file_offset = U64::new(file_len);
    header.last_file_offset = U64::new(file_len);
    entry[..64].copy_from_slice(header.as_bytes());
    for (i, (offset, sector)) in writes.iter().enumerate() {
        let mut d = Descriptor::new_zeroed();
        d.signature = U32::new(DATA_DESCRIPTOR_SIGNATURE);
        d.trailing_bytes.copy_from_slice(&sector[4092..4096]);
        d.leading_bytes.copy_from_slice(&sector[..8]);
        d.file_offset = U64::new(*offset);
        d.sequence_number = U64::new(sequence);
        let at = super::to_usize(LOG_ENTRY_HEADER_SIZE + i as u64 * DESCRIPTOR_SIZE);
        entry[at..at + 32].copy_from_slice(d.as_bytes());
        let mut s = DataSector::new_zeroed();
        s.signature = U32::new(DATA_SECTOR_SIGNATURE);
        s.sequence_high = U32::new((sequence >> 32) as u32);
        s.data.copy_from_slice(&sector[8..4092]);
        s.sequence_low = U32::new(sequence as u32);
        let at = super::to_usize(area + i as u64 * LOG_SECTOR);
        entry[at..at + 4096].copy_from_slice(s.as_bytes());
    }
    seal_checksum(&mut entry, 4);
    entry
}

/// A valid entry found in the log.
#[derive(Debug, Clone, Copy)]
struct Found {
    sequence: u64,
    length: u64,
    tail: u64,
}

/// Bytes `[at, at+len)` of the circular log.
fn circular(log: &[u8], at: u64, len: u64) -> Vec<u8> {
    let size = log.len();
    let at = super::to_usize(at) % size.max(1);
    let len = super::to_usize(len).min(size);
    let mut out = Vec::with_capacity(len);
    let first = len.min(size - at);
    out.extend_from_slice(&log[at..at + first]);
    out.extend_from_slice(&log[..len - first]);
    out
}

/// Checksum work allowed per byte of log before a hostile log is given up on: a real log's
/// valid entries do not overlap, so they cost about one pass.
const CHECKSUM_PASSES: u64 = 8;

/// Scans every log sector for a valid entry of this log (`log_guid`).
fn valid_entries(log: &[u8], log_guid: [u8; 16]) -> Result<HashMap<u64, Found>, VhdxError> {
    let size = log.len() as u64;
    let mut budget = CHECKSUM_PASSES * size;
    let mut found = HashMap::new();
    let mut at = 0;
    while at < size {
        let start = super::to_usize(at);
        let header = LogEntryHeader::read_from_bytes(&log[start..start + 64])
            .map_err(|_| VhdxError::LogCorrupt("a log entry header is cut short"))?;
        at += LOG_SECTOR;
        let length = u64::from(header.entry_length.get());
        let tail = u64::from(header.tail.get());
        let count = u64::from(header.descriptor_count.get());
        let plausible = header.signature.get() == LOG_ENTRY_SIGNATURE
            && header.log_guid == log_guid
            && header.sequence_number.get() != 0
            && length != 0
            && length % LOG_SECTOR == 0
            && length <= size
            && tail % LOG_SECTOR == 0
            && tail < size
            && descriptor_area(count) <= length;
        if !plausible {
            continue;
        }
        if budget < length {
            return Err(VhdxError::LogCorrupt(
                "the log holds too many overlapping entries to search",
            ));
        }
        budget -= length;
        let bytes = circular(log, at - LOG_SECTOR, length);
        if checksum_ok(&bytes, 4) {
            let sequence = header.sequence_number.get();
            found.insert(
                at - LOG_SECTOR,
                Found {
                    sequence,
                    length,
                    tail,
                },
            );
        }
    }
    Ok(found)
}

/// The active sequence: entry offsets from tail to head, or `None` if the log holds none.
fn active_sequence(log: &[u8], found: &HashMap<u64, Found>) -> Result<Option<Vec<u64>>, VhdxError> {
    let size = log.len() as u64;
    // Real logs have few entries; a hostile one could make the search quadratic.
    let mut steps_left: u64 = 1 << 22;
    let mut heads: Vec<(u64, Found)> = found.iter().map(|(&o, &f)| (o, f)).collect();
    // Highest sequence number first: the first head whose run checks out is the active one.
    heads.sort_by(|a, b| b.1.sequence.cmp(&a.1.sequence).then(a.0.cmp(&b.0)));
    for (head_at, head) in heads {
        let mut run = Vec::new();
        let mut at = head.tail;
        let mut expected: Option<u64> = None;
        // A run is at most as long as the number of valid entries.
        for _ in 0..found.len() {
            steps_left = steps_left.checked_sub(1).ok_or(VhdxError::LogCorrupt(
                "the log holds too many entries to search",
            ))?;
            let Some(entry) = found.get(&at) else { break };
            if expected.is_some_and(|s| s != entry.sequence) {
                break;
            }
            run.push(at);
            if at == head_at {
                if entry.sequence == head.sequence {
                    return Ok(Some(run));
                }
                break;
            }
            expected = entry.sequence.checked_add(1);
            at = (at + entry.length) % size;
        }
    }
    Ok(None)
}

/// Decodes one entry's descriptors and data sectors into patches.
fn entry_patches(bytes: &[u8], patches: &mut Vec<Patch>) -> Result<u64, VhdxError> {
    let bad = VhdxError::LogCorrupt;
    let header = LogEntryHeader::read_from_bytes(&bytes[..64])
        .map_err(|_| bad("a log entry header is cut short"))?;
    let sequence = header.sequence_number.get();
    let count = u64::from(header.descriptor_count.get());
    let mut data_at = descriptor_area(count);
    for i in 0..count {
        let at = super::to_usize(LOG_ENTRY_HEADER_SIZE + i * DESCRIPTOR_SIZE);
        let d = Descriptor::read_from_bytes(&bytes[at..at + 32])
            .map_err(|_| bad("a log descriptor is cut short"))?;
        if d.sequence_number.get() != sequence {
            return Err(bad(
                "a log descriptor's sequence number differs from its entry's",
            ));
        }
        let offset = d.file_offset.get();
        if offset % LOG_SECTOR != 0 {
            return Err(bad("a log descriptor's file offset is not 4 KiB-aligned"));
        }
        match d.signature.get() {
            DATA_DESCRIPTOR_SIGNATURE => {
                let end = data_at + LOG_SECTOR;
                if end > bytes.len() as u64 {
                    return Err(bad(
                        "a log entry has more data descriptors than data sectors",
                    ));
                }
                let s = DataSector::read_from_bytes(
                    &bytes[super::to_usize(data_at)..super::to_usize(end)],
                )
                .map_err(|_| bad("a log data sector is cut short"))?;
                let seq =
                    (u64::from(s.sequence_high.get()) << 32) | u64::from(s.sequence_low.get());
                if s.signature.get() != DATA_SECTOR_SIGNATURE || seq != sequence {
                    return Err(bad("a log data sector does not belong to its entry"));
                }
                let mut sector = vec![0u8; 4096].into_boxed_slice();
                sector[..8].copy_from_slice(&d.leading_bytes);
                sector[8..4092].copy_from_slice(&s.data);
                sector[4092..].copy_from_slice(&d.trailing_bytes);
                patches.push(Patch::Data { offset, sector });
                data_at = end;
            }
            ZERO_DESCRIPTOR_SIGNATURE => {
                let len = u64::from_le_bytes(d.leading_bytes);
                if len % LOG_SECTOR != 0 {
                    return Err(bad("a log zero descriptor's length is not 4 KiB-aligned"));
                }
                patches.push(Patch::Zero { offset, len });
            }
            _ => return Err(bad("a log descriptor has an unknown signature")),
        }
    }
    Ok(header.last_file_offset.get())
}

/// Finds the active sequence of `log` (the whole log region) and decodes it. `file_len` is
/// the file's length now: a sequence written when the file was longer cannot be trusted.
pub fn read_replay(
    log: &[u8],
    log_guid: [u8; 16],
    file_len: u64,
) -> Result<Option<Replay>, VhdxError> {
    if log.is_empty() || log.len() as u64 % LOG_SECTOR != 0 {
        return Err(VhdxError::LogCorrupt(
            "the log is not a whole number of 4 KiB sectors",
        ));
    }
    let found = valid_entries(log, log_guid)?;
    let Some(run) = active_sequence(log, &found)? else {
        return Ok(None);
    };
    let mut replay = Replay::default();
    for at in run {
        let entry = found[&at];
        let bytes = circular(log, at, entry.length);
        let header = LogEntryHeader::read_from_bytes(&bytes[..64])
            .map_err(|_| VhdxError::LogCorrupt("a log entry header is cut short"))?;
        if header.flushed_file_offset.get() > file_len {
            return Err(VhdxError::LogCorrupt(
                "the log was written when the file was longer than it is now; the file is truncated",
            ));
        }
        let last = entry_patches(&bytes, &mut replay.patches)?;
        replay.last_file_offset = replay.last_file_offset.max(last);
    }
    Ok(Some(replay))
}
