//! The metadata journal. Every change to metadata (state block, tables, diff bitmap, record
//! and directory clusters) reaches its home only after the whole transaction sits in the
//! journal: descriptor blocks (target offset, length, CRC of each block), the blocks, and a
//! commit block. Each part carries a CRC, so a transaction whose writes were torn or
//! reordered before the flush is recognised as incomplete and ignored. The journal holds one
//! transaction at a time, always written from its start.
//!
//! | block      | bytes   | field                                               |
//! |------------|---------|-----------------------------------------------------|
//! | descriptor | 0..4    | `CFJD`                                              |
//! |            | 8..16   | sequence number                                     |
//! |            | 16..20  | index of this descriptor block                      |
//! |            | 20..24  | descriptor blocks in the transaction                |
//! |            | 24..28  | descriptors in this block (at most 253)             |
//! |            | 32..    | descriptors: target offset u64, length u32, CRC u32 |
//! | data       |         | the blocks, in descriptor order                     |
//! | commit     | 0..4    | `CFJC`                                              |
//! |            | 8..16   | sequence number                                     |
//! |            | 16..20  | descriptors in the transaction                      |
//! |            | 20..24  | CRC-32C of all descriptor blocks                    |

use alloc::vec::Vec;

use super::{block_is_valid, crc32c, crc32c_digest, seal_block, BLOCK_PAYLOAD, BLOCK_SIZE};
use crate::error::{Error, Result};

const DESC_MAGIC: [u8; 4] = *b"CFJD";
const COMMIT_MAGIC: [u8; 4] = *b"CFJC";
const DESC_HEADER: usize = 32;
const DESC_SIZE: usize = 16;
pub const DESCS_PER_BLOCK: usize = (BLOCK_PAYLOAD - DESC_HEADER) / DESC_SIZE;

/// Bytes a transaction of blocks with these lengths takes in the journal.
pub fn transaction_size(lengths: impl Iterator<Item = usize>) -> u64 {
    let (count, data) = lengths.fold((0usize, 0u64), |(n, d), len| (n + 1, d + len as u64));
    let desc_blocks = count.div_ceil(DESCS_PER_BLOCK).max(1);
    (desc_blocks * BLOCK_SIZE) as u64 + data + BLOCK_SIZE as u64
}

/// The bytes of a transaction: descriptor blocks, data, commit block.
pub fn encode(seq: u64, blocks: &[(u64, &[u8])]) -> Result<Vec<u8>> {
    let data_len: usize = blocks.iter().map(|(_, data)| data.len()).sum();
    // The memory first (NT-26: a commit either gets it or fails before anything was written).
    let mut out = crate::mem::zeroed(encoded_len(blocks.len(), data_len))?;
    let mut scratch = crate::mem::zeroed(BLOCK_SIZE)?;
    write_with(
        seq,
        blocks.len(),
        || blocks.iter().copied(),
        &mut scratch,
        &mut |at, bytes| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            Ok(())
        },
    )?;
    Ok(out)
}

/// Bytes of a transaction of `count` blocks holding `data_len` bytes.
pub fn encoded_len(count: usize, data_len: usize) -> usize {
    let desc_blocks = count.div_ceil(DESCS_PER_BLOCK).max(1);
    desc_blocks * BLOCK_SIZE + data_len + BLOCK_SIZE
}

/// Lays out a transaction of the `count` blocks `blocks()` yields (the same ones each call)
/// through `put(position, bytes)`, building its descriptor and commit blocks in `scratch`
/// (one journal block): the bytes are [`encode`]'s, and nothing is allocated, so a commit can
/// write the journal straight from the cache (a paging write's commit, NT-26).
pub fn write_with<'a, I>(
    seq: u64,
    count: usize,
    blocks: impl Fn() -> I,
    scratch: &mut [u8],
    put: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()>
where
    I: Iterator<Item = (u64, &'a [u8])>,
{
    let block = scratch
        .get_mut(..BLOCK_SIZE)
        .ok_or(Error::InvalidArgument("a journal scratch block too small"))?;
    let desc_blocks = count.div_ceil(DESCS_PER_BLOCK).max(1);
    let mut desc_crc = crc32c_digest();
    let mut items = blocks();
    for index in 0..desc_blocks {
        block.fill(0);
        let in_this = (count - (index * DESCS_PER_BLOCK).min(count)).min(DESCS_PER_BLOCK);
        block[0..4].copy_from_slice(&DESC_MAGIC);
        block[8..16].copy_from_slice(&seq.to_le_bytes());
        block[16..20].copy_from_slice(&(index as u32).to_le_bytes());
        block[20..24].copy_from_slice(&(desc_blocks as u32).to_le_bytes());
        block[24..28].copy_from_slice(&(in_this as u32).to_le_bytes());
        for i in 0..in_this {
            let (offset, data) = items
                .next()
                .ok_or(Error::InvalidArgument("fewer journal blocks than counted"))?;
            let at = DESC_HEADER + i * DESC_SIZE;
            block[at..at + 8].copy_from_slice(&offset.to_le_bytes());
            block[at + 8..at + 12].copy_from_slice(&(data.len() as u32).to_le_bytes());
            block[at + 12..at + 16].copy_from_slice(&crc32c(data).to_le_bytes());
        }
        seal_block(block);
        desc_crc.update(block);
        put(index * BLOCK_SIZE, block)?;
    }
    let mut pos = desc_blocks * BLOCK_SIZE;
    for (_, data) in blocks() {
        put(pos, data)?;
        pos += data.len();
    }
    block.fill(0);
    block[0..4].copy_from_slice(&COMMIT_MAGIC);
    block[8..16].copy_from_slice(&seq.to_le_bytes());
    block[16..20].copy_from_slice(&(count as u32).to_le_bytes());
    block[20..24].copy_from_slice(&desc_crc.finalize().to_le_bytes());
    seal_block(block);
    put(pos, block)
}

/// A complete transaction read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub seq: u64,
    pub blocks: Vec<(u64, Vec<u8>)>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// Bytes of journal data a descriptor may name: a multiple of the smallest metadata block,
/// never more than a 64 KiB cluster.
const DATA_UNIT: usize = 512;
const MAX_DATA_LEN: usize = 64 * 1024;

/// Reads the transaction at the start of a journal of `journal_size` bytes, if a complete one
/// is there. `read(offset, len)` reads bytes of the journal region (None when out of range or
/// failed). Anything incomplete, torn or inconsistent yields `Ok(None)`: that transaction
/// never committed. Every count is checked against the journal's size before it sizes a loop
/// or a buffer, so what this holds in memory is bounded by the journal. Errors: `Corrupt`
/// (`at` relative to the journal) for a checked first block whose count the journal cannot
/// hold, `OutOfMemory` for a transaction that is real but does not fit in memory.
pub fn decode(
    journal_size: u64,
    mut read: impl FnMut(u64, usize) -> Option<Vec<u8>>,
) -> Result<Option<Transaction>> {
    let Some(first) = read(0, BLOCK_SIZE) else {
        return Ok(None);
    };
    if first[0..4] != DESC_MAGIC || !block_is_valid(&first) {
        return Ok(None);
    }
    let seq = le64(&first, 8);
    let desc_blocks = le32(&first, 20) as usize;
    // The descriptor blocks and the commit block must fit in the journal.
    let max_desc_blocks = (journal_size / BLOCK_SIZE as u64).saturating_sub(1);
    if desc_blocks == 0 || desc_blocks as u64 > max_desc_blocks {
        // A checked first block is never torn: a count the journal cannot hold is damage,
        // not an interrupted write.
        return Err(Error::Corrupt {
            what: "journal descriptor block count",
            at: 0,
        });
    }
    let mut data_room = journal_size - (desc_blocks as u64 + 1) * BLOCK_SIZE as u64;
    let mut descs = Vec::new();
    let mut desc_crc = crc32c_digest();
    for index in 0..desc_blocks {
        let block = if index == 0 {
            crate::mem::copied(&first)?
        } else {
            match read((index * BLOCK_SIZE) as u64, BLOCK_SIZE) {
                Some(block) => block,
                None => return Ok(None),
            }
        };
        let count = le32(&block, 24) as usize;
        if block[0..4] != DESC_MAGIC
            || !block_is_valid(&block)
            || le64(&block, 8) != seq
            || le32(&block, 16) as usize != index
            || le32(&block, 20) as usize != desc_blocks
            || count > DESCS_PER_BLOCK
        {
            return Ok(None);
        }
        reserve(&mut descs, count, "journal descriptors")?;
        for i in 0..count {
            let at = DESC_HEADER + i * DESC_SIZE;
            let len = le32(&block, at + 8) as usize;
            // Each length is checked against the room left in the journal before anything
            // is read or allocated for it.
            if len == 0 || len % DATA_UNIT != 0 || len > MAX_DATA_LEN || len as u64 > data_room {
                return Ok(None);
            }
            data_room -= len as u64;
            descs.push((le64(&block, at), len, le32(&block, at + 12)));
        }
        desc_crc.update(&block);
    }
    let mut pos = (desc_blocks * BLOCK_SIZE) as u64;
    let mut blocks = Vec::new();
    reserve(&mut blocks, descs.len(), "journal blocks")?;
    for (offset, len, crc) in descs {
        let Some(data) = read(pos, len) else {
            return Ok(None);
        };
        if crc32c(&data) != crc {
            return Ok(None);
        }
        blocks.push((offset, data));
        pos += len as u64;
    }
    let Some(commit) = read(pos, BLOCK_SIZE) else {
        return Ok(None);
    };
    let valid = commit[0..4] == COMMIT_MAGIC
        && block_is_valid(&commit)
        && le64(&commit, 8) == seq
        && le32(&commit, 16) as usize == blocks.len()
        && le32(&commit, 20) == desc_crc.finalize();
    Ok(valid.then_some(Transaction { seq, blocks }))
}

fn reserve<T>(v: &mut Vec<T>, more: usize, what: &'static str) -> Result<()> {
    v.try_reserve(more).map_err(|_| Error::OutOfMemory {
        what,
        bytes: (more * core::mem::size_of::<T>()) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn reader(bytes: &[u8]) -> impl FnMut(u64, usize) -> Option<Vec<u8>> + '_ {
        move |off, len| {
            bytes
                .get(off as usize..off as usize + len)
                .map(<[u8]>::to_vec)
        }
    }

    #[test]
    fn round_trip_and_every_truncation_is_rejected() {
        let a = vec![1u8; 4096];
        let b = vec![2u8; 512];
        let blocks: Vec<(u64, &[u8])> = (0..300)
            .map(|i| (i * 4096, if i % 2 == 0 { &a[..] } else { &b[..] }))
            .collect();
        let bytes = encode(9, &blocks).unwrap();
        assert_eq!(
            bytes.len() as u64,
            transaction_size(blocks.iter().map(|(_, d)| d.len()))
        );
        let size = bytes.len() as u64;
        let tx = decode(size, reader(&bytes))
            .unwrap()
            .expect("complete transaction");
        assert_eq!(tx.seq, 9);
        assert_eq!(tx.blocks.len(), 300);
        for cut in (0..bytes.len()).step_by(512) {
            let mut torn = bytes.clone();
            torn[cut..].fill(0);
            assert!(
                decode(size, reader(&torn)).unwrap().is_none(),
                "cut at {cut}"
            );
        }
    }
}
