//! cowfat's portable file system core (see the crate README / docs/format.md).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;
