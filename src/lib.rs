//! cowfat.sys, the driver image.
//!
//! The driver itself lives in `fs-driver`; this crate holds only what makes a kernel image out
//! of it, and only when compiled for Windows: the exported `DriverEntry`, the global allocator
//! over the kernel pool, the panic handler, and two symbols that MSVC-style code generation
//! expects from a C runtime the kernel does not have. On the host it is an empty library, so
//! `cargo build --workspace` and `cargo test --workspace` keep working.
//!
//! scripts/build-driver cross-builds it: `cargo rustc --crate-type cdylib` for
//! `x86_64-pc-windows-msvc` with build.rs adding the kernel link arguments. With the `wdk`
//! feature (a Windows host with the WDK) windows-drivers-rs takes over the link (wdk-build),
//! the allocator (wdk-alloc) and the C runtime pieces; see README, "Windows".
#![no_std]
// cowfat's natvis (windbg/cowfat.natvis) in the PDB, for `dx`; the Windows build only.
#![cfg_attr(windows, debugger_visualizer(natvis_file = "../windbg/cowfat.natvis"))]

#[cfg(all(windows, not(test)))]
mod image;

/// Bug check code of a Rust panic in cowfat.sys ("C0FA7" + 0x001). Parameters: 1 = address
/// of the source file name (not NUL-terminated; `da`/`db` it in WinDbg), 2 = its length in
/// bytes, 3 = line, 4 = column.
pub const COWFAT_PANIC_BUGCHECK: u32 = 0xC0FA_7001;
