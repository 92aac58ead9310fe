//! The `cowfat` command.
#![forbid(unsafe_code)]

fn main() {}
