//! The driver package checks, against the real files. These need the package that
//! `scripts/build-driver` writes and FAIL (not skip) without it: a green run must mean the
//! image was looked at.

use driver_image::exports::KernelExports;
use driver_image::inf::{check, Inf};
use driver_image::pe::{check_image, describe_imports, ImageFacts};

fn exports() -> KernelExports {
    KernelExports::load().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn cowfat_sys_is_a_loadable_signed_driver_image() {
    let path = driver_image::image_path();
    let facts = ImageFacts::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let exports = exports();
    let problems = check_image(&facts, &exports, true);
    assert!(
        problems.is_empty(),
        "{} fails the image check:\n  {}\nimports:\n  {}",
        path.display(),
        problems.join("\n  "),
        describe_imports(&facts, &exports).join("\n  ")
    );
}

#[test]
fn cowfat_sys_never_imports_wdk_macros() {
    let facts = ImageFacts::read(&driver_image::image_path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !facts.imports.iter().any(|i| i.name == "CcIsFileCached"),
        "CcIsFileCached is a macro; ntoskrnl does not export it"
    );
}

#[test]
fn packaged_inf_passes_the_inf_check() {
    let path = driver_image::package_dir().join("cowfat.inf");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); build it with scripts/build-driver",
            path.display()
        )
    });
    let inf = Inf::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let problems = check(&inf);
    assert!(
        problems.is_empty(),
        "{}:\n  {}",
        path.display(),
        problems.join("\n  ")
    );
}

#[test]
fn mingw_reference_knows_ntoskrnl() {
    let exports = exports();
    assert!(
        exports.ntoskrnl.len() > 1000,
        "suspiciously short export list"
    );
    assert!(exports.ntoskrnl.contains("IoCreateDevice"));
    assert!(!exports.ntoskrnl.contains("CcIsFileCached"));
}
