//! cowfat.sys, the driver image. The driver itself lives in `fs-driver`; this crate only
//! holds what makes a kernel image out of it (filled by the driver-image work).
#![no_std]
