#![no_main]
//! See cowfat_fuzz::image.
libfuzzer_sys::fuzz_target!(|data: &[u8]| cowfat_fuzz::image::run(data));
