//! cowfat-bench: runs each workload of issue 9 on cowfat (in-process and through FUSE) and
//! on the systems a user would otherwise pick, on one scratch disk in one run, and prints
//! medians with the ratio cowfat/peer. See bench/README.md.
#![forbid(unsafe_code)]

mod cap;
mod ctx;
mod host;
mod plot;
mod report;
mod scratch;
mod system;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use ctx::{Ctx, Plan};
use scratch::Scratch;

#[derive(Debug, Parser)]
#[command(
    name = "cowfat-bench",
    about = "cowfat against overlayfs, fuse-overlayfs, fatfs, mtools, fusefat, bindfs, ext4 and tmpfs"
)]
struct Args {
    /// Small sizes, one repeat: keeps the benchmark working in CI (asserts nothing about time).
    #[arg(long)]
    quick: bool,
    /// Also write every row, with all samples, as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw create time against file count and first-write time against file size.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Repeats per measurement (default: 3 full, 1 quick).
    #[arg(long)]
    repeats: Option<usize>,
    /// Run only these workloads (comma-separated): first-write, sequential, small-files, ls-l,
    /// mount.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Leave out these systems (comma-separated beginnings of their names, e.g. "fatfs crate")
    /// to shorten a run; their rows say so.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Where the scratch disk's backing file and mount points go, on the disk to measure
    /// (default: /var/tmp/cowfat-bench as root, else $TMPDIR/cowfat-bench-$USER).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// The `cowfat` binary for the FUSE rows (default: build it in this workspace).
    #[arg(long)]
    cowfat: Option<PathBuf>,
    /// Print the table and draw `--plot` from an earlier run's `--json` file, measuring
    /// nothing.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    from_json: Option<PathBuf>,
    /// Internal: mount IMAGE in this process and print time and memory (workload 4).
    #[arg(long, hide = true, value_name = "IMAGE")]
    probe_mount: Option<PathBuf>,
}

const WORKLOADS: [&str; 5] = ["first-write", "sequential", "small-files", "ls-l", "mount"];

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(image) = &args.probe_mount {
        return match workload::mount_scale::probe(image) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("probe: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(json) = &args.from_json {
        return match replay(json, args.plot.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cowfat-bench: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cowfat-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(false) when a cowfat row failed.
fn run(args: &Args) -> Result<bool> {
    for w in &args.only {
        if !WORKLOADS.contains(&w.as_str()) {
            anyhow::bail!("unknown workload {w:?} (known: {})", WORKLOADS.join(", "));
        }
    }
    let mut plan = Plan::new(args.quick, args.repeats);
    plan.skip.clone_from(&args.skip);
    let header = header(&plan);
    eprintln!("{header}");
    if !host::is_root() {
        eprintln!("note: not root — kernel overlayfs and tmpfs are skipped, cold runs are warm, bytes written are not measured");
    }
    for why in host::install_peers() {
        eprintln!("peer unavailable: {why}");
    }
    let cowfat = cowfat_binary(args);
    if let Err(why) = &cowfat {
        eprintln!("cowfat FUSE rows skipped: {why}");
    }
    let scratch_size: u64 = if plan.quick { 2 << 30 } else { 8 << 30 };
    let base = args.scratch.clone().unwrap_or_else(|| {
        if host::is_root() {
            PathBuf::from("/var/tmp/cowfat-bench")
        } else {
            let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
            std::env::temp_dir().join(format!("cowfat-bench-{user}"))
        }
    });
    let scratch = Scratch::new(&base, scratch_size).context("making the scratch disk")?;
    let mut ctx = Ctx::new(plan, scratch, cowfat);
    let wanted = |w: &str| args.only.is_empty() || args.only.iter().any(|o| o == w);
    let mut errors = Vec::new();
    type Workload = fn(&mut Ctx) -> Result<()>;
    let all: [(&str, Workload); 5] = [
        ("first-write", workload::first_write::run),
        ("sequential", workload::throughput::run),
        ("small-files", workload::small_files::run),
        ("ls-l", workload::ls_long::run),
        ("mount", workload::mount_scale::run),
    ];
    for (name, f) in all {
        if wanted(name) {
            if let Err(e) = f(&mut ctx) {
                eprintln!("workload {name} stopped: {e:#}");
                errors.push(name);
            }
        }
    }
    let table = ctx.report.table();
    println!("{header}\n");
    println!("{table}");
    println!("{}", footnote(ctx.plan.repeats));
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "header": header,
            "quick": ctx.plan.quick,
            "repeats": ctx.plan.repeats,
            "rows": ctx.report.rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        // The header without the machine details, which would not fit across the picture.
        let title = format!(
            "cowfat-bench: {}",
            header.split(", load").next().unwrap_or("")
        );
        plot::write(&ctx.report, path, &title)?;
    }
    let failures = ctx.report.cowfat_failures();
    for r in &failures {
        eprintln!(
            "cowfat row failed: {} / {} / {}",
            r.workload, r.case, r.system
        );
    }
    Ok(failures.is_empty() && errors.is_empty())
}

/// `--from-json`: the table and plot of a recorded run.
fn replay(json: &Path, plot_to: Option<&Path>) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Recorded {
        header: String,
        repeats: usize,
        rows: Vec<report::Row>,
    }
    let text =
        std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let r: Recorded =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
    let report = report::Report { rows: r.rows };
    println!("{}\n", r.header);
    println!("{}", report.table());
    println!("{}", footnote(r.repeats));
    if let Some(path) = plot_to {
        plot::write(&report, path, &plot_title(&r.header))?;
    }
    Ok(())
}

fn footnote(repeats: usize) -> String {
    format!("median of {repeats} run(s) each; ratios are cowfat's time / this row's time (below 1: cowfat faster); \"written\" = bytes the scratch block device wrote (including the host ext4's journal).")
}

/// The header without the load average, which would not fit across the picture.
fn plot_title(header: &str) -> String {
    format!(
        "cowfat-bench: {}",
        header.split(", load").next().unwrap_or("")
    )
}

fn header(plan: &Plan) -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(workspace())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(workspace())
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    format!(
        "{date}, {}, commit {commit}{}, load average {} at start, {} run",
        host::machine(),
        if dirty {
            " (+ uncommitted changes)"
        } else {
            ""
        },
        host::load_average(),
        if plan.quick { "quick" } else { "full" }
    )
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The `cowfat` binary: given, or built in release mode in this workspace next to us.
fn cowfat_binary(args: &Args) -> Result<PathBuf, String> {
    if let Some(why) = host::fuse_unavailable() {
        return Err(why);
    }
    if let Some(p) = &args.cowfat {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(format!("{} does not exist", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("cowfat");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building cowfat (cargo build --release -p format-tool --bin cowfat)");
    let built = host::run(
        Command::new(cargo)
            .args(["build", "--release", "-p", "format-tool", "--bin", "cowfat"])
            .current_dir(workspace()),
        Duration::from_secs(1800),
    );
    match (built, bin.is_file()) {
        (_, true) => Ok(bin),
        (Err(e), false) => Err(format!("building cowfat failed: {e:#}")),
        (Ok(_), false) => Err(format!("{} missing after the build", bin.display())),
    }
}
