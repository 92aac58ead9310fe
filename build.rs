//! Link configuration for cowfat.sys.
//!
//! - Host builds (Linux CI, user-mode tests): nothing; the root package is an ordinary library.
//! - Cross builds for a `*-windows-msvc` target (scripts/build-driver runs `cargo rustc
//!   --crate-type cdylib`): the arguments that make lld-link (or link.exe) produce a
//!   kernel-mode driver instead of a DLL.
//! - With the `wdk` feature on a Windows host with the WDK: windows-drivers-rs' `wdk-build`
//!   configures the link (WDK libraries, driver flags) instead. Untested in CI.

use std::env;

/// Linker arguments for a kernel driver image.
///
/// - `/DRIVER`: kernel-mode image (no user-mode DLL characteristics, no import of a CRT).
/// - `/SUBSYSTEM:NATIVE`: the NT native subsystem; the loader refuses other subsystems.
/// - `/ENTRY:DriverEntry`: the image entry point is DriverEntry itself (no CRT startup).
/// - `/NODEFAULTLIB`: no CRT, no kernel32; every import comes from raw-dylib declarations.
/// - `/INTEGRITYCHECK`: FORCE_INTEGRITY, the loader insists on a valid signature.
/// - `/RELEASE`: fill in the PE checksum, which the kernel loader verifies for drivers.
/// - `/OPT:REF,ICF` and `/DEBUG` so release images are small and still have a PDB for WinDbg
///   (`/PDBALTPATH:%_PDB%` records only the PDB's file name, not the build machine's path).
const KERNEL_LINK_ARGS: &[&str] = &[
    "/DRIVER",
    "/SUBSYSTEM:NATIVE",
    "/ENTRY:DriverEntry",
    "/NODEFAULTLIB",
    "/INTEGRITYCHECK",
    "/RELEASE",
    "/OPT:REF,ICF",
    "/DEBUG",
    "/PDBALTPATH:%_PDB%",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "wdk")]
    {
        if let Err(error) = wdk_build::configure_wdk_binary_build() {
            panic!("wdk-build could not configure the WDK build: {error:?}");
        }
    }
    #[cfg(not(feature = "wdk"))]
    {
        let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
        let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
        if os == "windows" && target_env == "msvc" {
            for arg in KERNEL_LINK_ARGS {
                // `rustc-link-arg`, not `rustc-cdylib-link-arg`: the package declares an rlib
                // and the cdylib comes from `cargo rustc --crate-type`, which cargo's cdylib
                // check does not see.
                println!("cargo:rustc-link-arg={arg}");
            }
            embed_rust_natvis();
        }
    }
}

/// core's and alloc's natvis (`dx` shows `Option`, `Vec`, atomics, cells readably), embedded in
/// the PDB by `/NATVIS:`. rustc embeds them itself only when it finds them under its sysroot's
/// `lib/rustlib/etc`, which this cross build's Debian toolchain does not have; scripts/build-
/// driver points `COWFAT_RUST_NATVIS_DIR` at rust-web-src's copies. Without it: none.
#[cfg(not(feature = "wdk"))]
fn embed_rust_natvis() {
    println!("cargo:rerun-if-env-changed=COWFAT_RUST_NATVIS_DIR");
    let Some(dir) = env::var_os("COWFAT_RUST_NATVIS_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for name in ["intrinsic.natvis", "libcore.natvis", "liballoc.natvis"] {
        let file = dir.join(name);
        if file.is_file() {
            println!("cargo:rerun-if-changed={}", file.display());
            println!("cargo:rustc-link-arg=/NATVIS:{}", file.display());
        }
    }
}
