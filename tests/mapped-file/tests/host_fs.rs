//! Both programs on the host's own file system (the reference: whatever it does is what a
//! kernel file system does), and proof that they fail when the file system misbehaves.
//!
//! The temporary directories come from `tempfile`, i.e. the host's temp directory.

use std::path::Path;
use std::process::{Command, Output};

use cowfat_mapped_tests::fileio;

const MAPPED: &str = env!("CARGO_BIN_EXE_cowfat-mapped-tests");
const EXERCISER: &str = env!("CARGO_BIN_EXE_cowfat-exerciser");
const STRESS: &str = env!("CARGO_BIN_EXE_cowfat-stress");

fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("start program");
    // Shown when a test fails, and with --nocapture.
    println!("$ {program} {}", args.join(" "));
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn last_line(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().last().unwrap_or("").to_string()
}

fn dir_arg(dir: &Path) -> &str {
    dir.to_str().expect("temp dir path is UTF-8")
}

/// Cache drops need root on Linux; the tests use them when they can.
fn can_drop_caches() -> bool {
    fileio::drop_caches().is_ok()
}

fn scenario_count() -> usize {
    let output = run(MAPPED, &["--list"]);
    String::from_utf8_lossy(&output.stdout).lines().count()
}

#[test]
fn mapped_scenarios_pass_on_host_fs() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![dir_arg(dir.path())];
    if can_drop_caches() {
        args.push("--drop-caches");
    }
    let output = run(MAPPED, &args);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        last_line(&output),
        format!("{} passed, 0 failed", scenario_count())
    );
    // Passed scenarios clean up after themselves.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn exerciser_passes_on_host_fs() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![dir_arg(dir.path()), "--ops", "4000", "--seed", "8"];
    if can_drop_caches() {
        args.extend(["--drop-caches-every", "500"]);
    }
    let output = run(EXERCISER, &args);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(last_line(&output), "4000 passed, 0 failed");
}

/// The stress on the host file system: its model holds there, and its manifest verifies.
fn stress_run(dir: &Path, manifest: &Path) -> Output {
    let manifest = manifest.to_str().expect("UTF-8 path");
    let args = [
        dir_arg(dir),
        "--ops",
        "800",
        "--seed",
        "9",
        "--manifest",
        manifest,
    ];
    run(STRESS, &args)
}

#[test]
fn stress_passes_on_host_fs_and_verifies_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = tempfile::NamedTempFile::new().unwrap();
    let output = stress_run(dir.path(), manifest.path());
    assert_eq!(output.status.code(), Some(0));
    assert!(last_line(&output).ends_with(" passed, 0 failed"));
    let args = [
        dir_arg(dir.path()),
        "--verify",
        manifest.path().to_str().unwrap(),
    ];
    let verified = run(STRESS, &args);
    assert_eq!(verified.status.code(), Some(0));
}

#[test]
fn stress_verify_notices_a_changed_or_extra_file() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = tempfile::NamedTempFile::new().unwrap();
    assert_eq!(
        stress_run(dir.path(), manifest.path()).status.code(),
        Some(0)
    );
    let listed = std::fs::read_to_string(manifest.path()).unwrap();
    let file = listed
        .lines()
        .find(|l| !l.starts_with("dir "))
        .and_then(|l| l.splitn(3, ' ').nth(2))
        .expect("the run left a file")
        .to_string();
    let verify = [
        dir_arg(dir.path()),
        "--verify",
        manifest.path().to_str().unwrap(),
    ];
    let path = dir.path().join(&file);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(b'!');
    std::fs::write(&path, &bytes).unwrap();
    let changed = run(STRESS, &verify);
    assert_eq!(changed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&changed.stdout).contains(&file));
    bytes.pop();
    std::fs::write(&path, &bytes).unwrap();
    std::fs::write(dir.path().join("shared/stray"), b"x").unwrap();
    let extra = run(STRESS, &verify);
    assert_eq!(extra.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&extra.stdout).contains("shared/stray"));
}

#[test]
fn sealed_file_mode_leaves_4321() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.txt"), b"aaaa").unwrap();
    let output = run(MAPPED, &[dir_arg(dir.path()), "--sealed-file", "base.txt"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(last_line(&output), "1 passed, 0 failed");
    assert_eq!(
        std::fs::read(dir.path().join("base.txt")).unwrap(),
        b"4321\0"
    );
}

#[test]
fn sealed_file_mode_refuses_a_file_without_aaaa() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.txt"), b"bbbb").unwrap();
    let output = run(MAPPED, &[dir_arg(dir.path()), "--sealed-file", "base.txt"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(last_line(&output), "0 passed, 1 failed");
}

/// A file system that loses stores through views fails the scenarios, with the seed's story.
#[test]
fn injected_fault_fails_mapped_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(MAPPED, &[dir_arg(dir.path()), "--self-test-inject-fault"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(r#"FAIL seed004_write_map_write_coherent: ReadFile after writing 'x' through the view: expected "x234\x00", saw "1234\x00""#),
        "{text}"
    );
    let failed = text.lines().filter(|l| l.starts_with("FAIL ")).count();
    assert!(failed >= 10, "only {failed} scenarios noticed lost stores");
    assert!(last_line(&output).ends_with(&format!(", {failed} failed")));
}

/// The exerciser notices lost stores, names seed, operation, file and offset, and stops.
#[test]
fn injected_fault_fails_exerciser() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        dir_arg(dir.path()),
        "--ops",
        "4000",
        "--seed",
        "8",
        "--self-test-inject-fault",
    ];
    let output = run(EXERCISER, &args);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    let fail = text
        .lines()
        .find(|l| l.starts_with("FAIL "))
        .expect("a FAIL line");
    assert!(fail.starts_with("FAIL seed 8 op "), "{fail}");
    assert!(
        fail.contains("exerciser-") && fail.contains("differs at file offset"),
        "{fail}"
    );
    assert!(last_line(&output).ends_with(" passed, 1 failed"));
    // The same seed replays the same failure.
    assert_eq!(run(EXERCISER, &args).stdout, output.stdout);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(MAPPED, &[]).status.code(), Some(2));
    assert_eq!(run(MAPPED, &["/nonexistent/dir"]).status.code(), Some(2));
    assert_eq!(run(EXERCISER, &[]).status.code(), Some(2));
    assert_eq!(
        run(EXERCISER, &[".", "--ops", "many"]).status.code(),
        Some(2)
    );
}
