//! The `cowfat` command as a library: the image layer (VHD, raw, partition tables) and the
//! commands, with `main.rs` a thin shell. Tests use the image layer directly.
#![forbid(unsafe_code)]

pub mod image;
pub mod size;
