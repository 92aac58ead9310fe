#![no_main]
//! See cowfat_fuzz::fs_core.
libfuzzer_sys::fuzz_target!(|data: &[u8]| cowfat_fuzz::fs_core::run(data));
