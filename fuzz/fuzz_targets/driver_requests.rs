#![no_main]
//! See cowfat_fuzz::driver.
libfuzzer_sys::fuzz_target!(|data: &[u8]| cowfat_fuzz::driver::run(data));
