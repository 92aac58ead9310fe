//! The `cowfat` command (filled by the format-tool work).
fn main() {}
