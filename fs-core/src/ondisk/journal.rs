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

use alloc::vec;
use alloc::vec::Vec;

use super::{block_is_valid, crc32c, seal_block, BLOCK_PAYLOAD, BLOCK_SIZE};

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
pub fn encode(seq: u64, blocks: &[(u64, &[u8])]) -> Vec<u8> {
    let desc_blocks = blocks.len().div_ceil(DESCS_PER_BLOCK).max(1);
    let mut out = Vec::new();
    for (index, chunk) in blocks
        .chunks(DESCS_PER_BLOCK)
        .chain(core::iter::once(&[][..]))
        .take(desc_blocks)
        .enumerate()
    {
        let mut block = vec![0u8; BLOCK_SIZE];
        block[0..4].copy_from_slice(&DESC_MAGIC);
        block[8..16].copy_from_slice(&seq.to_le_bytes());
        block[16..20].copy_from_slice(&(index as u32).to_le_bytes());
        block[20..24].copy_from_slice(&(desc_blocks as u32).to_le_bytes());
        block[24..28].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
        for (i, (offset, data)) in chunk.iter().enumerate() {
            let at = DESC_HEADER + i * DESC_SIZE;
            block[at..at + 8].copy_from_slice(&offset.to_le_bytes());
            block[at + 8..at + 12].copy_from_slice(&(data.len() as u32).to_le_bytes());
            block[at + 12..at + 16].copy_from_slice(&crc32c(data).to_le_bytes());
        }
        seal_block(&mut block);
        out.extend_from_slice(&block);
    }
    let desc_crc = crc32c(&out);
    for (_, data) in blocks {
        out.extend_from_slice(data);
    }
    let mut commit = vec![0u8; BLOCK_SIZE];
    commit[0..4].copy_from_slice(&COMMIT_MAGIC);
    commit[8..16].copy_from_slice(&seq.to_le_bytes());
    commit[16..20].copy_from_slice(&(blocks.len() as u32).to_le_bytes());
    commit[20..24].copy_from_slice(&desc_crc.to_le_bytes());
    seal_block(&mut commit);
    out.extend_from_slice(&commit);
    out
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

/// Reads the transaction at the start of the journal, if a complete one is there.
/// `read(offset, len)` reads bytes of the journal region (None when out of range or failed).
/// Anything incomplete, torn or inconsistent yields None: that transaction never committed.
pub fn decode(mut read: impl FnMut(u64, usize) -> Option<Vec<u8>>) -> Option<Transaction> {
    let first = read(0, BLOCK_SIZE)?;
    if first[0..4] != DESC_MAGIC || !block_is_valid(&first) {
        return None;
    }
    let seq = le64(&first, 8);
    let desc_blocks = le32(&first, 20) as usize;
    if desc_blocks == 0 || desc_blocks > 1 << 16 {
        return None;
    }
    let mut descs = Vec::new();
    let mut all_desc = Vec::with_capacity(desc_blocks * BLOCK_SIZE);
    for index in 0..desc_blocks {
        let block = if index == 0 {
            first.clone()
        } else {
            read((index * BLOCK_SIZE) as u64, BLOCK_SIZE)?
        };
        let count = le32(&block, 24) as usize;
        if block[0..4] != DESC_MAGIC
            || !block_is_valid(&block)
            || le64(&block, 8) != seq
            || le32(&block, 16) as usize != index
            || le32(&block, 20) as usize != desc_blocks
            || count > DESCS_PER_BLOCK
        {
            return None;
        }
        for i in 0..count {
            let at = DESC_HEADER + i * DESC_SIZE;
            descs.push((
                le64(&block, at),
                le32(&block, at + 8) as usize,
                le32(&block, at + 12),
            ));
        }
        all_desc.extend_from_slice(&block);
    }
    let mut pos = (desc_blocks * BLOCK_SIZE) as u64;
    let mut blocks = Vec::with_capacity(descs.len());
    for (offset, len, crc) in descs {
        if len == 0 || len > 1 << 20 {
            return None;
        }
        let data = read(pos, len)?;
        if crc32c(&data) != crc {
            return None;
        }
        blocks.push((offset, data));
        pos += len as u64;
    }
    let commit = read(pos, BLOCK_SIZE)?;
    let valid = commit[0..4] == COMMIT_MAGIC
        && block_is_valid(&commit)
        && le64(&commit, 8) == seq
        && le32(&commit, 16) as usize == blocks.len()
        && le32(&commit, 20) == crc32c(&all_desc);
    valid.then_some(Transaction { seq, blocks })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let bytes = encode(9, &blocks);
        assert_eq!(
            bytes.len() as u64,
            transaction_size(blocks.iter().map(|(_, d)| d.len()))
        );
        let tx = decode(reader(&bytes)).expect("complete transaction");
        assert_eq!(tx.seq, 9);
        assert_eq!(tx.blocks.len(), 300);
        for cut in (0..bytes.len()).step_by(512) {
            let mut torn = bytes.clone();
            torn[cut..].fill(0);
            assert!(decode(reader(&torn)).is_none(), "cut at {cut}");
        }
    }
}
