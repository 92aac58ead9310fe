//! `cowfat-stress DIR`: several workers at once on a mounted volume, with online overlay
//! operations from another process. A thin shell over `cowfat_mapped_tests::stress`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cowfat_mapped_tests::cli::{usage_error, Args};
use cowfat_mapped_tests::stress::{self, Config};

const HELP: &str = "\
Usage: cowfat-stress DIR [--workers N] [--ops M] [--seed S] [--cowfat PATH]
                     [--overlay-every-ms MS] [--manifest FILE]
       cowfat-stress DIR --verify FILE

Runs N workers at once, M operations each, in DIR (a mounted volume's directory): each in
its own directory DIR/worker-<i> (create, write, append, truncate, rename over, unlink with
and without an open handle, writes and reads through handles of unlinked files, mkdir and
rmdir, mapped writes and reads, fsync), and all of them racing on names in DIR/shared. With
--cowfat, the `cowfat` program seals the volume (DIR must be its root) and then commits it
every MS milliseconds from another process, and the workers commit and discard their own
files. Every read is checked against the workers' model; at the end every file is read back,
each directory listed, and FILE (--manifest) written for a later `--verify`.

--verify FILE checks DIR against a manifest (after unmount, fsck and a new mount).

Options (defaults in brackets):
  --workers N            workers (threads) at once [4]
  --ops M                operations per worker [2000]
  --seed S               PRNG seed [from the clock; printed first]
  --cowfat PATH          the cowfat program, for the overlay operations [none: no overlay]
  --overlay-every-ms MS  time between volume seal/commit [1500]
  --manifest FILE        where to write the manifest of surviving files

The last line is `N passed, M failed` (N = operations run). Exit status: 0 all checks
passed, 1 a difference or an unexpected error, 2 usage error.
";

fn main() {
    let mut args = Args::from_env();
    let (cfg, verify) = parse(&mut args).unwrap_or_else(|problem| usage_error(&problem, HELP));
    if let Some(manifest) = verify {
        match stress::verify(&cfg.dir, &manifest) {
            Ok(n) => println!(
                "verified {n} files against {}\n{n} passed, 0 failed",
                manifest.display()
            ),
            Err(f) => {
                println!("FAIL {f}\n0 passed, 1 failed");
                std::process::exit(1);
            }
        }
        return;
    }
    println!(
        "cowfat-stress: seed {} workers {} ops {} overlay {} in {}",
        cfg.seed,
        cfg.workers,
        cfg.ops,
        if cfg.cowfat.is_some() {
            format!("every {} ms", cfg.overlay_every.as_millis())
        } else {
            "off".into()
        },
        cfg.dir.display()
    );
    let summary = stress::run(&cfg);
    println!("operations: {}", summary.counts);
    for f in &summary.failures {
        println!("FAIL seed {}: {f}", cfg.seed);
    }
    println!(
        "{} passed, {} failed",
        summary.counts.total_ops(),
        summary.failures.len()
    );
    std::process::exit(i32::from(!summary.failures.is_empty()));
}

fn parse(args: &mut Args) -> Result<(Config, Option<PathBuf>), String> {
    let mut dir = None;
    let mut verify = None;
    let mut cfg = Config {
        dir: PathBuf::new(),
        workers: 4,
        ops: 2000,
        seed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        cowfat: None,
        overlay_every: Duration::from_millis(1500),
        manifest: None,
    };
    while let Some(arg) = args.next_raw() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                print!("{HELP}");
                std::process::exit(0);
            }
            Some("--workers") => cfg.workers = args.value("--workers")?,
            Some("--ops") => cfg.ops = args.value("--ops")?,
            Some("--seed") => cfg.seed = args.value("--seed")?,
            Some("--cowfat") => cfg.cowfat = Some(args.value::<String>("--cowfat")?.into()),
            Some("--overlay-every-ms") => {
                cfg.overlay_every = Duration::from_millis(args.value("--overlay-every-ms")?)
            }
            Some("--manifest") => cfg.manifest = Some(args.value::<String>("--manifest")?.into()),
            Some("--verify") => verify = Some(args.value::<String>("--verify")?.into()),
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => return Err("only one DIR may be given".into()),
        }
    }
    cfg.dir = dir.ok_or("DIR is required")?;
    if !cfg.dir.is_dir() {
        return Err(format!("{} is not a directory", cfg.dir.display()));
    }
    if cfg.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok((cfg, verify))
}
