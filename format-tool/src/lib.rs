//! The `cowfat` command as a library: the image layer (VHD, raw, partition tables), the
//! fs-core adapter and the commands, with `main.rs` a thin shell. Tests use the image layer
//! directly.
// No unsafe code, except the mount's control ioctls (`mount::ioctl`, a raw system call).
#![deny(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod error;
pub mod image;
#[cfg(target_os = "linux")]
pub mod mount;
pub mod output;
pub mod progress;
pub mod size;
pub mod staged;
pub mod volume;
pub mod win32_names;
