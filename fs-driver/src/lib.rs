//! cowfat's NT kernel adapter: DriverEntry's body, IRP dispatch, FsRtl/Cc/Mm glue.
//!
//! Layout follows fastfat: [`init`] (DriverEntry, MajorFunction table), [`dispatch`] (one
//! module per IRP major, `fsd_*` entry and `common_*` work), support modules
//! ([`resrcsup`] Cc/FsRtl callbacks, [`section`] mapped state,
//! [`overlay`] cowfat's private FSCTLs, [`fastio`], [`fcb`], [`strucsup`] node type codes and
//! pool tags, [`global`]), the kernel boundary [`nt`] (every ntoskrnl import) and
//! [`wdk_inline`] (the WDK's inline helpers and macros, which ntoskrnl does not export).
//!
//! The crate builds for the host too: kernel routines are `extern "system"` declarations that
//! `ntsim` defines in user mode.
#![no_std]

extern crate alloc;

pub mod blockdev;
pub mod bugcheck;
pub mod cachesup;
pub mod debugger;
pub mod dispatch;
pub mod fastio;
pub mod fcb;
pub mod global;
pub mod infobuf;
pub mod init;
pub mod lazycommit;
pub mod namesup;
pub mod notify;
pub mod nt;
pub mod overlay;
pub mod resrcsup;
pub mod section;
pub mod seh;
pub mod status;
pub mod strucsup;
pub mod userbuf;
pub mod vcb;
pub mod wdk_inline;
pub mod worksup;

#[cfg(test)]
mod unit_test_kernel;

pub use init::{driver_entry, driver_unload};
