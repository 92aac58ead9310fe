//! `cowfat-exerciser DIR`: random file operations against a model, on any mounted file
//! system. A thin shell over `cowfat_mapped_tests::exerciser`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use cowfat_mapped_tests::cli::{usage_error, Args};
use cowfat_mapped_tests::exerciser::{self, Config};

const HELP: &str = "\
Usage: cowfat-exerciser DIR [--ops N] [--seed S] [--files K] [--max-size BYTES]
                        [--drop-caches-every N] [--no-drop-ok] [--keep]

Runs N random operations (read, write, mapped read, mapped write then msync or plain munmap,
long-lived views, truncate shrink/extend, fsync, close/reopen) over K files
DIR/exerciser-<i>.dat, checking every read against an in-memory model. The same seed gives
the same operations and data.

Options (defaults in brackets):
  --ops N                 operations to run [20000]
  --seed S                PRNG seed [from the clock; printed first]
  --files K               number of files [4]
  --max-size BYTES        largest size a file may reach [262144]
  --drop-caches-every N   every N operations: unmap, fsync and close everything, write 3 to
                          /proc/sys/vm/drop_caches and read every file back whole [never;
                          the files are still read back once at the end]
  --no-drop-ok            when caches cannot be dropped (not root, not Linux), warn once and
                          go on instead of failing
  --keep                  leave the files in DIR after a run that passed (a failed run
                          always leaves them)

On the first difference it prints the seed, operation index, file, offset and differing
bytes and exits 1. The last line is `N passed, M failed` (N = operations that passed).
Exit status: 0 no difference, 1 difference or I/O error, 2 usage error.
";

fn main() {
    let cfg = parse(&mut Args::from_env()).unwrap_or_else(|problem| usage_error(&problem, HELP));
    println!(
        "cowfat-exerciser: seed {} ops {} files {} max-size {} drop-caches-every {} in {}",
        cfg.seed,
        cfg.ops,
        cfg.files,
        cfg.max_size,
        cfg.drop_caches_every
            .map_or("never".into(), |n| n.to_string()),
        cfg.dir.display()
    );
    let summary = exerciser::run(cfg);
    println!("operations: {}", summary.counts);
    if let Some(failure) = &summary.failure {
        println!("FAIL {failure}");
    }
    let failed = u64::from(summary.failure.is_some());
    println!("{} passed, {failed} failed", summary.passed);
    std::process::exit(i32::from(failed != 0));
}

fn parse(args: &mut Args) -> Result<Config, String> {
    let mut dir = None;
    let mut cfg = Config {
        dir: PathBuf::new(),
        ops: 20_000,
        seed: clock_seed(),
        files: 4,
        max_size: 256 * 1024,
        drop_caches_every: None,
        no_drop_ok: false,
        inject_fault: false,
        keep: false,
    };
    while let Some(arg) = args.next_raw() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                print!("{HELP}");
                std::process::exit(0);
            }
            Some("--ops") => cfg.ops = args.value("--ops")?,
            Some("--seed") => cfg.seed = args.value("--seed")?,
            Some("--files") => cfg.files = args.value("--files")?,
            Some("--max-size") => cfg.max_size = args.value("--max-size")?,
            Some("--drop-caches-every") => {
                cfg.drop_caches_every = Some(args.value("--drop-caches-every")?)
            }
            Some("--no-drop-ok") => cfg.no_drop_ok = true,
            Some("--keep") => cfg.keep = true,
            // Hidden: views lose their stores, to prove a broken file system fails the run.
            Some("--self-test-inject-fault") => cfg.inject_fault = true,
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => return Err("only one DIR may be given".into()),
        }
    }
    cfg.dir = dir.ok_or("DIR is required")?;
    if !cfg.dir.is_dir() {
        return Err(format!("{} is not a directory", cfg.dir.display()));
    }
    if cfg.files == 0 || cfg.max_size == 0 || cfg.drop_caches_every == Some(0) {
        return Err("--files, --max-size and --drop-caches-every must be at least 1".into());
    }
    Ok(cfg)
}

/// A seed when none is given; printed first so any run can be replayed.
fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
