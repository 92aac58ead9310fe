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
        }
    }
}
