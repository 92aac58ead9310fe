//! The systems under test, one module per kind: cowfat and rust-fatfs linked into this
//! process (`inproc`), file systems reached through a mount — FUSE servers and kernel file
//! systems — (`mounted`), and external tools working on an image (`tool`).

pub mod inproc;
pub mod mounted;
pub mod tool;

/// A 4 KiB small-file name that is a valid 8.3 name everywhere (no long-name entries on
/// FAT, so the FAT peers are measured at their cheapest).
pub fn small_name(i: usize) -> String {
    format!("F{i:07}.BIN")
}

/// Deterministic non-zero content, so nothing can be skipped as zeros.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

pub const MIB: u64 = 1 << 20;
