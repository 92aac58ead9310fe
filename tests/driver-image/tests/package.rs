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

fn stack_graph() -> driver_image::stack::CallGraph {
    let image = driver_image::image_path();
    driver_image::stack::build(&image, &image.with_extension("pdb"))
        .unwrap_or_else(|e| panic!("stack report: {e}"))
}

/// NT-23: no frame over 2 KiB (over 1 KiB only with a named reason), no path from an entry
/// point over 6 KiB, no recursion. The whole report is printed when it fails.
#[test]
fn cowfat_sys_fits_the_kernel_stack() {
    let graph = stack_graph();
    let report = driver_image::stack::analyse(&graph, driver_image::stack::NT23);
    assert!(
        report.problems.is_empty(),
        "{}",
        report.render(driver_image::stack::NT23, 15, 10)
    );
    // The report must see the driver, not an empty graph: the dispatch routines are there.
    for entry in [
        "fs_driver::dispatch::create::fsd_create",
        "fs_driver::dispatch::fsctrl::fsd_file_system_control",
    ] {
        assert!(
            report.paths.iter().any(|p| p.steps[0].name == entry),
            "{entry} is not among the entry points"
        );
    }
}

/// NT-23: `__chkstk` touches each page of a large frame, top down, preserving registers.
#[test]
fn cowfat_sys_chkstk_probes_pages() {
    let graph = stack_graph();
    if let Err(e) = driver_image::stack::check_chkstk(&graph) {
        panic!("{e}");
    }
}

/// NT-24: the SEH trampoline's `.pdata` entry has `__C_specific_handler` as its exception
/// handler, imported from ntoskrnl.exe, with its scope around the call.
#[test]
fn cowfat_sys_has_its_seh_frame() {
    let graph = stack_graph();
    if let Err(e) = driver_image::stack::check_seh(&graph) {
        panic!("{e}");
    }
    let facts = ImageFacts::read(&driver_image::image_path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        facts
            .imports
            .iter()
            .any(|i| i.name == "__C_specific_handler" && i.dll.eq_ignore_ascii_case("ntoskrnl.exe")),
        "__C_specific_handler is not imported from ntoskrnl.exe"
    );
}
