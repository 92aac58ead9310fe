//! `cowfat-mapped-tests DIR`: the mapped-file scenarios on any mounted file system.
//! A thin shell over `cowfat_mapped_tests::scenarios`.

use std::path::PathBuf;

use cowfat_mapped_tests::cli::{usage_error, Args};
use cowfat_mapped_tests::report::Tally;
use cowfat_mapped_tests::scenarios::{self, seed004, two_process, Ctx};

const HELP: &str = "\
Usage: cowfat-mapped-tests DIR [--filter NAME] [--keep] [--drop-caches]
       cowfat-mapped-tests DIR --sealed-file NAME [--drop-caches]
       cowfat-mapped-tests --list

Runs the mapped-file scenarios (memory-mapped views against read()/write(), on Linux mmap,
on Windows MapViewOfFile) in DIR, each on its own file DIR/<scenario>.dat. Prints
`PASS name` or `FAIL name: what was expected, what was seen` per scenario and ends with
`N passed, M failed`. Exit status: 0 all passed, 1 a scenario failed, 2 usage error.

Options:
  --filter NAME       run only the scenarios whose name contains NAME
  --keep              keep the scenario files (failed scenarios always keep theirs)
  --drop-caches       before reading a file back through a new handle, fsync it and write 3
                      to /proc/sys/vm/drop_caches, so the check sees the stored bytes
                      (Linux, root)
  --list              print the scenario names and exit

cowfat overlay check (opt-in, cowfat only):
  --sealed-file NAME  run seed 004's program on the existing file DIR/NAME instead of the
                      scenarios. The harness first creates NAME containing exactly \"aaaa\",
                      seals the volume (`cowfat overlay seal`) and mounts it; the program
                      checks NAME reads \"aaaa\", then WriteFile \"1234\\0\" (5 bytes, as in
                      the seed), map 5 bytes, store 'x', WriteFile \"4321\\0\", unmap, close,
                      and leaves NAME as the 5 bytes \"4321\\0\". The harness then unmounts
                      and checks with the cowfat tool that the live file is \"4321\\0\" and
                      the sealed base copy still \"aaaa\" (mapped writes change the live file,
                      never the base: NT-19, NT-20).
";

struct Options {
    dir: PathBuf,
    filter: Option<String>,
    keep: bool,
    sealed_file: Option<String>,
    ctx_drop_caches: bool,
    inject_fault: bool,
}

fn main() {
    let mut args = Args::from_env();
    let options = parse(&mut args).unwrap_or_else(|problem| usage_error(&problem, HELP));
    let ctx = Ctx {
        dir: options.dir.clone(),
        drop_caches: options.ctx_drop_caches,
        inject_fault: options.inject_fault,
    };
    let mut tally = Tally::default();
    match &options.sealed_file {
        Some(name) => {
            let outcome = seed004::run_on_existing(&ctx, &options.dir.join(name));
            tally.record("seed004_on_sealed_file", &outcome);
        }
        None => scenarios::run_all(&ctx, options.filter.as_deref(), options.keep, &mut tally),
    }
    println!("{}", tally.summary_line());
    std::process::exit(tally.exit_code());
}

fn parse(args: &mut Args) -> Result<Options, String> {
    let mut dir = None;
    let mut options = Options {
        dir: PathBuf::new(),
        filter: None,
        keep: false,
        sealed_file: None,
        ctx_drop_caches: false,
        inject_fault: false,
    };
    while let Some(arg) = args.next_raw() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                print!("{HELP}");
                std::process::exit(0);
            }
            Some("--list") => {
                scenarios::ALL.iter().for_each(|s| println!("{}", s.name));
                std::process::exit(0);
            }
            // Hidden: this program as the second process of the two-process scenario.
            Some(two_process::CHILD_COMMAND) => {
                let path = args.next_raw().ok_or("the child needs a file")?;
                std::process::exit(two_process::child_main(path.as_ref()));
            }
            Some("--filter") => options.filter = Some(args.value("--filter")?),
            Some("--keep") => options.keep = true,
            Some("--drop-caches") => options.ctx_drop_caches = true,
            Some("--sealed-file") => options.sealed_file = Some(args.value("--sealed-file")?),
            // Hidden: views lose their stores, to prove a broken file system fails the run.
            Some("--self-test-inject-fault") => options.inject_fault = true,
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => return Err("only one DIR may be given".into()),
        }
    }
    options.dir = dir.ok_or("DIR is required")?;
    if !options.dir.is_dir() {
        return Err(format!("{} is not a directory", options.dir.display()));
    }
    Ok(options)
}
