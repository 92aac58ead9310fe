//! fsck: check the volume (and repair with --repair). Exit codes as e2fsck: 0 clean,
//! 1 problems corrected, 4 problems left uncorrected, 8 operational error.

use crate::cli::FsckArgs;
use crate::error::{Cause, Failure};
use crate::image;
use crate::output::print_json;
use crate::progress::Progress;

pub const CLEAN: u8 = 0;
pub const CORRECTED: u8 = 1;
pub const UNCORRECTED: u8 = 4;
pub const OPERATIONAL: u8 = 8;

#[derive(Debug, serde::Serialize)]
struct Report {
    image: String,
    repair: bool,
    problems: Vec<Problem>,
    corrected: usize,
    uncorrected: usize,
    exit_code: u8,
}

#[derive(Debug, serde::Serialize)]
struct Problem {
    description: String,
    corrected: bool,
}

/// Runs the check; any failure to do so is an operational error (8), not a verdict.
pub fn run(a: &FsckArgs, index: Option<u32>) -> u8 {
    match check(a, index) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("cowfat: {f}.");
            OPERATIONAL
        }
    }
}

fn check(a: &FsckArgs, index: Option<u32>) -> Result<u8, Failure> {
    let fail = |cause| Failure::new(&a.image, "check", None, cause);
    let opened = image::open(&a.image, a.repair, index).map_err(|e| fail(e.into()))?;
    let mut dev = opened.dev;
    let bar = Progress::units("checking");
    let mut tick = |done: u64, total: u64| bar.set_position(done, total);
    let (found, _) =
        fs_core::fsck::check(&mut dev, a.repair, &mut tick).map_err(|e| fail(Cause::Fs(e)))?;
    bar.finish();
    let problems: Vec<Problem> = found.problems.iter().map(problem).collect();
    let corrected = problems.iter().filter(|p| p.corrected).count();
    let uncorrected = problems.len() - corrected;
    let exit_code = verdict(corrected, uncorrected);
    let report = Report {
        image: a.image.display().to_string(),
        repair: a.repair,
        problems,
        corrected,
        uncorrected,
        exit_code,
    };
    print_report(&report, a.json).map_err(|e| fail(Cause::Other(e.to_string())))?;
    Ok(exit_code)
}

fn problem(p: &fs_core::fsck::Problem) -> Problem {
    let description = match p.at {
        Some(at) => format!("{} at byte {at:#x}", p.what),
        None => p.what.clone(),
    };
    Problem {
        description,
        corrected: p.repaired,
    }
}

fn verdict(corrected: usize, uncorrected: usize) -> u8 {
    match (corrected, uncorrected) {
        (_, u) if u > 0 => UNCORRECTED,
        (c, _) if c > 0 => CORRECTED,
        _ => CLEAN,
    }
}

fn print_report(r: &Report, json: bool) -> std::io::Result<()> {
    if json {
        return print_json(r);
    }
    for p in &r.problems {
        let mark = if p.corrected { "corrected" } else { "left" };
        println!("{}: {} ({mark})", r.image, p.description);
    }
    match r.exit_code {
        CLEAN => println!("{}: clean", r.image),
        CORRECTED => println!("{}: {} problems corrected", r.image, r.corrected),
        _ => println!(
            "{}: {} problems left uncorrected (run with --repair?)",
            r.image, r.uncorrected
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_e2fsck() {
        assert_eq!(verdict(0, 0), CLEAN);
        assert_eq!(verdict(2, 0), CORRECTED);
        assert_eq!(verdict(2, 1), UNCORRECTED);
    }
}
