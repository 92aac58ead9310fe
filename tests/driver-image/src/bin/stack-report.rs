//! `stack-report [--frames N] [--paths N] [IMAGE [PDB]]`: prints cowfat.sys's largest frames
//! (15 by default) and deepest paths from distinct entry points (10) and exits 1 when a budget of NT-23 is broken. `scripts/build-driver` runs it on
//! every build.

use std::path::PathBuf;
use std::process::ExitCode;

use driver_image::stack::{analyse, build, check_chkstk, check_seh, NT23};

fn main() -> ExitCode {
    let (mut frames, mut worst) = (15, 10);
    let mut paths = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--frames" || arg == "--paths" {
            let Some(n) = args.next().and_then(|n| n.to_str()?.parse().ok()) else {
                eprintln!("stack-report: {} takes a number", arg.to_string_lossy());
                return ExitCode::from(2);
            };
            if arg == "--frames" {
                frames = n;
            } else {
                worst = n;
            }
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    let mut args = paths.into_iter();
    let image = args.next().unwrap_or_else(driver_image::image_path);
    let pdb = args.next().unwrap_or_else(|| image.with_extension("pdb"));
    let graph = match build(&image, &pdb) {
        Ok(graph) => graph,
        Err(e) => {
            eprintln!("stack-report: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = analyse(&graph, NT23);
    print!("{}", report.render(NT23, frames, worst));
    let chkstk = check_chkstk(&graph);
    match &chkstk {
        Ok(()) => println!("__chkstk: probes each page of a large frame, top down"),
        Err(e) => println!("{e}"),
    }
    let seh = check_seh(&graph);
    match &seh {
        Ok(()) => println!(
            "SEH: cowfat_seh_try's .pdata entry has __C_specific_handler (ntoskrnl) and its scope"
        ),
        Err(e) => println!("{e}"),
    }
    if report.problems.is_empty() && chkstk.is_ok() && seh.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
