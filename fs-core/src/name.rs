//! File names by the Windows rules: UTF-16, 1 to 255 code units, compared without case
//! through the volume's up-case table and stored as given (case-preserving).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest name, in UTF-16 code units.
pub const MAX_NAME_UNITS: usize = 255;

/// Why a name is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong {
        units: usize,
    },
    /// A character Windows reserves (`" * / : < > ? \ |` or a control character).
    ReservedCharacter {
        unit: u16,
    },
    /// `.` and `..` name directories themselves.
    DotName,
    /// No memory to hold the name (NT-26); not a fault of the name.
    OutOfMemory,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NameError::Empty => write!(f, "a name cannot be empty"),
            NameError::TooLong { units } => {
                write!(
                    f,
                    "a name is at most {MAX_NAME_UNITS} UTF-16 units, this one has {units}"
                )
            }
            NameError::ReservedCharacter { unit } => match char::from_u32(u32::from(unit)) {
                Some(c) if !c.is_control() => {
                    write!(f, "the character '{c}' is not allowed in a name")
                }
                _ => write!(f, "control character {unit:#04x} is not allowed in a name"),
            },
            NameError::DotName => write!(f, "'.' and '..' cannot be used as names"),
            NameError::OutOfMemory => write!(f, "out of memory"),
        }
    }
}

/// A validated file name (one path component), as the user spelled it.
/// `Clone` is infallible (fsck, tools); I/O paths use [`Name::try_clone`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Vec<u16>);

impl Name {
    /// Validates UTF-16 code units as a name.
    pub fn from_utf16(units: &[u16]) -> Result<Name, NameError> {
        if units.is_empty() {
            return Err(NameError::Empty);
        }
        if units.len() > MAX_NAME_UNITS {
            return Err(NameError::TooLong { units: units.len() });
        }
        if let Some(&unit) = units.iter().find(|&&u| is_reserved(u)) {
            return Err(NameError::ReservedCharacter { unit });
        }
        if units == [u16::from(b'.')] || units == [u16::from(b'.'), u16::from(b'.')] {
            return Err(NameError::DotName);
        }
        let mut copy = Vec::new();
        copy.try_reserve_exact(units.len())
            .map_err(|_| NameError::OutOfMemory)?;
        copy.extend_from_slice(units);
        Ok(Name(copy))
    }

    /// A copy of the name (fallible: the heap is pool in the driver, NT-26).
    ///
    /// # Errors
    /// [`crate::error::Error::OutOfMemory`].
    pub fn try_clone(&self) -> crate::error::Result<Name> {
        Ok(Name(crate::mem::copied(&self.0)?))
    }

    /// Validates a UTF-8 name.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(s: &str) -> Result<Name, NameError> {
        let units: Vec<u16> = s.encode_utf16().collect();
        Name::from_utf16(&units)
    }

    pub fn as_utf16(&self) -> &[u16] {
        &self.0
    }

    /// The name as UTF-8; unpaired surrogates become U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        char::decode_utf16(self.0.iter().copied())
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

fn is_reserved(unit: u16) -> bool {
    unit < 0x20
        || matches!(
            unit,
            0x22 | 0x2A | 0x2F | 0x3A | 0x3C | 0x3E | 0x3F | 0x5C | 0x7C
        )
}

/// Number of entries in an up-case table: one per UTF-16 code unit.
pub const UPCASE_ENTRIES: usize = 0x10000;

/// Maps each UTF-16 code unit to its upper case. Stored on the volume at format time, like
/// NTFS's $UpCase and exFAT's table, so that name comparison never changes with the Unicode
/// version of whoever mounts the volume later.
#[derive(Clone, PartialEq, Eq)]
pub struct UpcaseTable(Vec<u16>);

impl fmt::Debug for UpcaseTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UpcaseTable({} entries)", self.0.len())
    }
}

impl UpcaseTable {
    /// The table a new volume gets: simple (one-to-one) upper-case mappings within the BMP.
    pub fn generate() -> UpcaseTable {
        let table = (0..UPCASE_ENTRIES as u32)
            .map(|u| {
                let Some(c) = char::from_u32(u) else {
                    return u as u16;
                };
                let mut up = c.to_uppercase();
                match (up.next(), up.next()) {
                    (Some(one), None) if (one as u32) < 0x10000 => one as u32 as u16,
                    _ => u as u16,
                }
            })
            .collect();
        UpcaseTable(table)
    }

    /// Builds a table from its on-disk form (little-endian u16 per code unit).
    /// `Ok(None)` when the size is wrong.
    ///
    /// # Errors
    /// [`crate::error::Error::OutOfMemory`].
    pub fn from_bytes(bytes: &[u8]) -> crate::error::Result<Option<UpcaseTable>> {
        if bytes.len() != UPCASE_ENTRIES * 2 {
            return Ok(None);
        }
        let units = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]));
        Ok(Some(UpcaseTable(crate::mem::collect(units)?)))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|u| u.to_le_bytes()).collect()
    }

    pub fn upcase_unit(&self, unit: u16) -> u16 {
        self.0[usize::from(unit)]
    }

    /// The key names are compared and indexed by.
    ///
    /// # Errors
    /// [`crate::error::Error::OutOfMemory`].
    pub fn key(&self, name: &Name) -> crate::error::Result<Vec<u16>> {
        crate::mem::collect(name.0.iter().map(|&u| self.upcase_unit(u)))
    }

    /// A 16-bit hash of the up-cased name, stored in directory entries and checked by fsck.
    pub fn hash(&self, name: &Name) -> u16 {
        // The CRC of the up-cased name's little-endian bytes, one unit at a time (no copy).
        let mut digest = crate::ondisk::CASTAGNOLI.digest();
        for &u in &name.0 {
            digest.update(&self.upcase_unit(u).to_le_bytes());
        }
        (digest.finalize() & 0xFFFF) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_windows_rules() {
        assert!(Name::from_str("hello.txt").is_ok());
        assert!(Name::from_str("with space and ünïcode").is_ok());
        assert_eq!(Name::from_str(""), Err(NameError::Empty));
        assert_eq!(
            Name::from_str("a:b"),
            Err(NameError::ReservedCharacter { unit: 0x3A })
        );
        assert_eq!(
            Name::from_str("a\u{1}"),
            Err(NameError::ReservedCharacter { unit: 1 })
        );
        assert_eq!(Name::from_str(".."), Err(NameError::DotName));
        let long = "x".repeat(256);
        assert_eq!(
            Name::from_str(&long),
            Err(NameError::TooLong { units: 256 })
        );
        assert!(Name::from_str(&long[..255]).is_ok());
    }

    #[test]
    fn upcase_is_case_insensitive_and_round_trips() {
        let t = UpcaseTable::generate();
        assert_eq!(
            t.key(&Name::from_str("Straße.TXT").unwrap()),
            t.key(&Name::from_str("STRAßE.txt").unwrap())
        );
        assert_eq!(t.upcase_unit(u16::from(b'a')), u16::from(b'A'));
        assert_eq!(t.upcase_unit(0xE9), 0xC9); // é -> É
        assert_eq!(UpcaseTable::from_bytes(&t.to_bytes()).unwrap(), Some(t));
    }
}
