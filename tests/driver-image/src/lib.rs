//! Checks of the driver package that `scripts/build-driver` writes (`target/cowfat-package/`).
//!
//! - [`pe`]: the facts of cowfat.sys that decide whether Windows will load it (PE32+, AMD64,
//!   NATIVE subsystem, entry point = DriverEntry, relocations, signature) and its import table.
//! - [`exports`]: the outside reference for what ntoskrnl.exe exports: the symbol index of
//!   Debian's `mingw-w64-x86-64-dev` import library `libntoskrnl.a`, plus a short allowlist of
//!   newer exports with the Windows version that introduced them.
//! - [`docs`]: the repository's documentation as data: the ntsim fidelity ledger against
//!   ntsim and the image's imports, the tests the docs name, and every link in README.md and
//!   `docs/`.
//! - [`inf`]: a parser and checker for cowfat.inf.
//! - [`pdbtypes`]: cowfat.pdb's structures, fields and typed globals, for the WinDbg extension's
//!   layout test and stand-in host.
//! - [`stack`]: the stack report: frames from the unwind codes, deepest paths from every entry
//!   point, NT-23's budgets.
//!
//! The checks are functions returning every problem found, so the `check-driver-package`
//! binary and the tests share them and a failure lists all that is wrong at once.
#![forbid(unsafe_code)]

pub mod docs;
pub mod exports;
pub mod inf;
pub mod pdbtypes;
pub mod pe;
pub mod stack;

use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The package directory: `$COWFAT_PACKAGE_DIR` or `target/cowfat-package` in the workspace.
#[must_use]
pub fn package_dir() -> PathBuf {
    std::env::var_os("COWFAT_PACKAGE_DIR").map_or_else(
        || workspace_root().join("target/cowfat-package"),
        PathBuf::from,
    )
}

/// The image to check: `$COWFAT_SYS`, else `cowfat.sys` in [`package_dir`].
#[must_use]
pub fn image_path() -> PathBuf {
    std::env::var_os("COWFAT_SYS").map_or_else(|| package_dir().join("cowfat.sys"), PathBuf::from)
}

/// The INF to check: `$COWFAT_INF`, else `inf/cowfat.inf` in the workspace.
#[must_use]
pub fn inf_path() -> PathBuf {
    std::env::var_os("COWFAT_INF")
        .map_or_else(|| workspace_root().join("inf/cowfat.inf"), PathBuf::from)
}
