//! cowfat's portable mapped-file test programs, for any mounted file system.
//!
//! - `cowfat-mapped-tests DIR`: the mapped-file scenarios ([`scenarios`]), one file each.
//! - `cowfat-exerciser DIR`: random read/write/mapped/truncate operations checked against an
//!   in-memory [`model`], with page-cache drops so stored bytes are read back.
//! - `cowfat-stress DIR`: N workers at once with namespace, data and mapped operations, and
//!   online overlay operations from another process ([`stress`]).
//!
//! The same source is the Linux program (mmap) and the Windows program (MapViewOfFile): all
//! mapping goes through [`mapping`], and where the two systems promise different results the
//! expectation is chosen with `cfg` next to a comment saying why.

pub mod cli;
pub mod exerciser;
pub mod fileio;
pub mod mapping;
pub mod model;
pub mod report;
pub mod scenarios;
pub mod stress;
