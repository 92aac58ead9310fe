//! GUIDs as GPT and VHD store them, and a source of random ones.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A GUID in its on-disk byte order (GPT's mixed-endian layout: the first three fields
/// little-endian, the last eight bytes as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses the textual form `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX` (for constants).
    pub const fn from_text_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Self([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// A random (version 4) GUID. std's `RandomState` is seeded from the OS's random source,
    /// which is all the randomness disk and partition identifiers need.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        for (i, half) in bytes.chunks_exact_mut(8).enumerate() {
            let mut h = RandomState::new().build_hasher();
            h.write_usize(i);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        bytes[7] = (bytes[7] & 0x0f) | 0x40; // version 4 (high nibble of d3, little-endian)
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        Self(bytes)
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.0;
        let d1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let d2 = u16::from_le_bytes([b[4], b[5]]);
        let d3 = u16::from_le_bytes([b[6], b[7]]);
        write!(f, "{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-", b[8], b[9])?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02X}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_data_guid_round_trips_through_text() {
        let g = Guid::from_text_fields(
            0xEBD0A0A2,
            0xB9E5,
            0x4433,
            [0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7],
        );
        assert_eq!(g.0[..4], [0xA2, 0xA0, 0xD0, 0xEB]);
        assert_eq!(g.to_string(), "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
    }

    #[test]
    fn random_guids_differ_and_carry_version_4() {
        let (a, b) = (Guid::random(), Guid::random());
        assert_ne!(a, b);
        assert_eq!(a.to_string().as_bytes()[14], b'4');
    }
}
