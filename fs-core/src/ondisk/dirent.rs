//! Directory entries. A directory's data is an array of 32-byte slots; a file's entry is a
//! set of consecutive slots: one primary slot (file id, name length, name hash, the set's
//! CRC-32C, the first 7 name units) and as many name slots (15 units each) as the name needs.
//! A slot whose type has bit 7 clear is free. Sets may cross cluster boundaries.

use alloc::vec::Vec;

use crate::error::{Error, Result};

pub const SLOT_SIZE: usize = 32;
pub const TYPE_PRIMARY: u8 = 0x81;
pub const TYPE_NAME: u8 = 0x82;
/// Bit 7 of the type byte: the slot is in use.
pub const IN_USE_BIT: u8 = 0x80;
const PRIMARY_NAME_UNITS: usize = 7;
const SLOT_NAME_UNITS: usize = 15;

/// Slots needed for a name of `units` UTF-16 units.
pub fn slots_for(units: usize) -> usize {
    1 + units
        .saturating_sub(PRIMARY_NAME_UNITS)
        .div_ceil(SLOT_NAME_UNITS)
}

/// A decoded entry set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySet {
    pub file_id: u64,
    pub name_hash: u16,
    pub name: Vec<u16>,
}

impl EntrySet {
    /// The slots of this set, CRC filled in.
    pub fn encode(&self) -> crate::error::Result<Vec<u8>> {
        let n = slots_for(self.name.len());
        let mut out = crate::mem::zeroed(n * SLOT_SIZE)?;
        out[0] = TYPE_PRIMARY;
        out[1] = (n - 1) as u8;
        out[2] = self.name.len() as u8;
        out[8..16].copy_from_slice(&self.file_id.to_le_bytes());
        out[16..18].copy_from_slice(&self.name_hash.to_le_bytes());
        for (i, unit) in self.name.iter().enumerate() {
            let at = if i < PRIMARY_NAME_UNITS {
                18 + 2 * i
            } else {
                let j = i - PRIMARY_NAME_UNITS;
                SLOT_SIZE * (1 + j / SLOT_NAME_UNITS) + 2 + 2 * (j % SLOT_NAME_UNITS)
            };
            out[at..at + 2].copy_from_slice(&unit.to_le_bytes());
        }
        for s in 1..n {
            out[s * SLOT_SIZE] = TYPE_NAME;
        }
        let crc = crate::ondisk::crc32c(&out);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes the set that starts with the primary slot `slots[0..32]`; `slots` holds at
    /// least the slots the primary announces. `at` locates the set for error messages.
    pub fn decode(slots: &[u8], at: u64) -> Result<EntrySet> {
        let count = 1 + usize::from(slots[1]);
        let name_len = usize::from(slots[2]);
        if name_len == 0 || count != slots_for(name_len) {
            return Err(Error::Corrupt {
                what: "directory entry name length",
                at,
            });
        }
        let Some(set) = slots.get(..count * SLOT_SIZE) else {
            return Err(Error::Corrupt {
                what: "directory entry set runs past the directory",
                at,
            });
        };
        let mut copy = set.to_vec();
        let stored = u32::from_le_bytes([copy[4], copy[5], copy[6], copy[7]]);
        copy[4..8].fill(0);
        if crate::ondisk::crc32c(&copy) != stored {
            return Err(Error::Corrupt {
                what: "directory entry checksum",
                at,
            });
        }
        if (1..count).any(|s| set[s * SLOT_SIZE] != TYPE_NAME) {
            return Err(Error::Corrupt {
                what: "directory entry name slot",
                at,
            });
        }
        let unit_at = |i: usize| {
            let pos = if i < PRIMARY_NAME_UNITS {
                18 + 2 * i
            } else {
                let j = i - PRIMARY_NAME_UNITS;
                SLOT_SIZE * (1 + j / SLOT_NAME_UNITS) + 2 + 2 * (j % SLOT_NAME_UNITS)
            };
            u16::from_le_bytes([set[pos], set[pos + 1]])
        };
        let mut id = [0u8; 8];
        id.copy_from_slice(&set[8..16]);
        Ok(EntrySet {
            file_id: u64::from_le_bytes(id),
            name_hash: u16::from_le_bytes([set[16], set[17]]),
            name: (0..name_len).map(unit_at).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_sets_round_trip_for_every_length() {
        for len in 1..=255usize {
            let name: Vec<u16> = (0..len).map(|i| 0x41 + (i % 26) as u16).collect();
            let set = EntrySet {
                file_id: 0x0003_0000_0000_0042,
                name_hash: 0xBEEF,
                name,
            };
            let bytes = set.encode().unwrap();
            assert_eq!(bytes.len(), slots_for(len) * SLOT_SIZE);
            assert_eq!(EntrySet::decode(&bytes, 0).unwrap(), set);
        }
    }

    #[test]
    fn a_flipped_bit_is_caught() {
        let set = EntrySet {
            file_id: 7,
            name_hash: 1,
            name: "hello world, long name".encode_utf16().collect(),
        };
        let mut bytes = set.encode().unwrap();
        bytes[40] ^= 1;
        assert!(matches!(
            EntrySet::decode(&bytes, 64),
            Err(Error::Corrupt { at: 64, .. })
        ));
    }
}
