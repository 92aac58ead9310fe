//! cowfat's NT kernel adapter (filled by the driver-image work).
#![no_std]
