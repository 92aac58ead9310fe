//! `check-driver-package [IMAGE]`: prints the facts of cowfat.sys and its imports, checks the
//! image (and, with `--inf PATH`, an INF) and exits 1 with every problem listed if anything is
//! wrong. `scripts/build-driver` runs it on the package it just wrote; `--unsigned` checks the
//! raw link output before signing.

use std::path::PathBuf;
use std::process::ExitCode;

use driver_image::exports::KernelExports;
use driver_image::inf::{check, Inf};
use driver_image::pe::{check_image, describe_imports, ImageFacts};

fn main() -> ExitCode {
    let mut image = driver_image::image_path();
    let mut inf_path: Option<PathBuf> = None;
    let mut require_signature = true;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--unsigned") => require_signature = false,
            Some("--inf") => inf_path = args.next().map(PathBuf::from),
            Some("-h" | "--help") => {
                println!("usage: check-driver-package [--unsigned] [--inf PATH] [IMAGE]");
                return ExitCode::SUCCESS;
            }
            _ => image = PathBuf::from(arg),
        }
    }
    let mut problems = Vec::new();
    match run_image(&image, require_signature) {
        Ok(mut p) => problems.append(&mut p),
        Err(e) => problems.push(e),
    }
    if let Some(path) = inf_path {
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| Inf::parse(&t))
        {
            Ok(inf) => {
                let p = check(&inf);
                println!(
                    "INF {}: {}",
                    path.display(),
                    if p.is_empty() { "ok" } else { "FAILED" }
                );
                problems.extend(p.into_iter().map(|x| format!("{}: {x}", path.display())));
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    if problems.is_empty() {
        println!("driver package check: ok");
        ExitCode::SUCCESS
    } else {
        eprintln!("driver package check FAILED:");
        for p in &problems {
            eprintln!("  {p}");
        }
        ExitCode::FAILURE
    }
}

fn run_image(image: &std::path::Path, require_signature: bool) -> Result<Vec<String>, String> {
    let facts = ImageFacts::read(image)?;
    let exports = KernelExports::load()?;
    println!("image {}", image.display());
    println!(
        "  PE32+: {}  machine: {:#06x}  subsystem: {}  entry: {:#x}  DriverEntry: {}",
        facts.pe32_plus,
        facts.machine,
        facts.subsystem,
        facts.entry_point,
        facts
            .driver_entry
            .map_or_else(|| "not exported".into(), |r| format!("{r:#x}"))
    );
    println!("  exports: {}", facts.exports.join(" "));
    println!(
        "  sections: {}  relocations: {} bytes  checksum: {:#x}  DllCharacteristics: {:#06x}  signature: {} bytes",
        facts.sections.join(" "),
        facts.reloc_size,
        facts.checksum,
        facts.dll_characteristics,
        facts.certificate_size
    );
    println!("  imports ({}):", facts.imports.len());
    for line in describe_imports(&facts, &exports) {
        println!("    {line}");
    }
    Ok(check_image(&facts, &exports, require_signature))
}
