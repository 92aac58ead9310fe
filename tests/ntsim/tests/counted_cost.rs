//! The driver's cost counted on ntsim (issue 21): for each operation a user's program makes
//! all day, what the driver asks of the disk (requests, bytes, flushes) and of pool
//! (`ExAllocatePool2` blocks, Rust heap allocations, which are pool on the image, and the
//! peak above the level before the operation), next to the floor the operation needs.
//!
//! Counts are deterministic (nothing runs in the background in ntsim), so the test compares
//! them with the committed baseline `docs/bench/ntsim-costs.baseline` and fails when one
//! regresses by more than [`MARGIN_PERCENT`] (plus [`SLACK`] for counts near zero). The table
//! it prints is `docs/bench/ntsim-costs.md`. After a change that moves a count on purpose:
//!
//!     COWFAT_NTSIM_COSTS_UPDATE=1 cargo test -p ntsim --test counted_cost -- --nocapture
//!
//! rewrites both files (review the diff: it is the change's cost).

mod common;
use common::*;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use fs_core::time::{FixedClock, NtTime};
use fs_core::{FileAttributes, FileKind, MountOptions, Name, Volume};
use ntsim::cost::{self, Cost};
use ntsim::requests::dir_flags::SL_RESTART_SCAN;
use windows_sys::Win32::Foundation::STATUS_NO_MORE_FILES;

/// A count regresses when it exceeds the baseline by more than this many percent...
const MARGIN_PERCENT: f64 = 10.0;
/// ...plus this much (so a count of 0 or 1 may move by one, and peak bytes by this many bytes
/// times 256).
const SLACK: f64 = 1.0;
const PEAK_SLACK_BYTES: f64 = 256.0;

const KIB: usize = 1024;
const CLUSTER: u64 = 4096;
const CREATES: usize = 1_000;
const CACHED_WRITES: usize = 100;
const SEALED_FILES: usize = 16;
const SEALED_FILE_SIZE: usize = 1 << 20;
const NONCACHED_READS: usize = 8;
const DIRECTORY_NAMES: usize = 10_000;
/// `FileIdBothDirectoryInformation`, in 64 KiB buffers (what `FindFirstFileEx` with
/// `FIND_FIRST_EX_LARGE_FETCH` asks for).
const ID_BOTH: i32 = 37;
const DIR_BUFFER: usize = 64 * KIB;

/// One row: an operation's cost per repetition (averaged; peak is the largest of one
/// repetition) and its floor.
struct Row {
    name: &'static str,
    reps: usize,
    total: Cost,
    peak: u64,
    floor: &'static str,
}

impl Row {
    fn per_op(&self) -> [(&'static str, f64); 8] {
        #[allow(clippy::cast_precision_loss)]
        let per = |v: u64| v as f64 / self.reps as f64;
        #[allow(clippy::cast_precision_loss)]
        let peak = self.peak as f64;
        [
            ("disk_reads", per(self.total.disk_reads)),
            ("bytes_read", per(self.total.bytes_read)),
            ("disk_writes", per(self.total.disk_writes)),
            ("bytes_written", per(self.total.bytes_written)),
            ("flushes", per(self.total.flushes)),
            ("pool_allocs", per(self.total.pool_allocs)),
            ("heap_allocs", per(self.total.heap_allocs)),
            ("peak_pool_bytes", peak),
        ]
    }
}

/// Runs `op` `reps` times, each between a mark and its cost.
fn measure(name: &'static str, floor: &'static str, reps: usize, mut op: impl FnMut(usize)) -> Row {
    let mut total = Cost::default();
    let mut peak = 0;
    for i in 0..reps {
        let mark = cost::mark();
        op(i);
        let c = cost::since(&mark);
        total.disk_reads += c.disk_reads;
        total.bytes_read += c.bytes_read;
        total.disk_writes += c.disk_writes;
        total.bytes_written += c.bytes_written;
        total.flushes += c.flushes;
        total.pool_allocs += c.pool_allocs;
        total.heap_allocs += c.heap_allocs;
        peak = peak.max(c.peak_pool_bytes);
    }
    Row {
        name,
        reps,
        total,
        peak,
        floor,
    }
}

fn mkdir(sim: &mut Sim, path: &str) -> Handle {
    sim.create(
        path,
        &Open::read_write()
            .share(share::ALL)
            .options(options::FILE_DIRECTORY_FILE),
    )
    .unwrap_or_else(|s| panic!("mkdir {path}: {s:#x}"))
}

fn create_new(sim: &mut Sim, dir: Handle, name: &str) -> Handle {
    sim.create_relative(
        dir,
        name,
        &Open::read_write().disposition(disposition::FILE_CREATE),
    )
    .unwrap_or_else(|s| panic!("create {name}: {s:#x}"))
}

/// Creating an empty file and closing the handle (`CreateFile(CREATE_NEW)` + `CloseHandle`).
fn creates() -> Row {
    let mut sim = Sim::new();
    let dir = mkdir(&mut sim, "\\c");
    let row = measure(
        "create + close (empty file)",
        "0 disk requests, 0 flushes: the directory entry reaches the disk with the next journal commit, not per create",
        CREATES,
        |i| {
            let h = create_new(&mut sim, dir, &format!("f{i:05}"));
            sim.close(h);
        },
    );
    sim.close(dir);
    finish_clean(sim);
    row
}

/// A 4 KiB cached write and `FlushFileBuffers`, appending to one file.
fn cached_writes() -> Row {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\w.bin");
    let page = filled(0x5a, 4 * KIB);
    let row = measure(
        "4 KiB cached write + flush",
        "4,096 B of data, 1 journal commit (its blocks and the flushes that order it)",
        CACHED_WRITES,
        |i| {
            assert_eq!(sim.write(h, Some((i * 4 * KIB) as u64), &page), Ok(4 * KIB));
            assert_eq!(sim.flush(h), status::STATUS_SUCCESS);
        },
    );
    sim.close(h);
    finish_clean(sim);
    row
}

/// A medium whose `\s{i}.bin` files (1 MiB each) are sealed into the base.
fn sealed_medium() -> fs_core::MemDevice {
    let medium = ntsim::api::formatted(64 << 20);
    let clock = Box::new(FixedClock(NtTime(0)));
    let mut volume = Volume::mount(medium, MountOptions::new(clock)).expect("mount");
    let root = volume.root().expect("root");
    let data = filled(0x33, SEALED_FILE_SIZE);
    for i in 0..SEALED_FILES {
        let name = Name::from_str(&format!("s{i}.bin")).expect("name");
        let id = volume
            .create(root, &name, FileKind::File, FileAttributes::empty())
            .expect("create");
        volume.write(id, 0, &data).expect("write");
    }
    volume.seal().expect("seal");
    volume.unmount().expect("unmount")
}

/// The first 1-byte write into a sealed file and `FlushFileBuffers` (the copy-on-write case).
fn first_writes() -> Row {
    let mut sim = Sim::with_medium(sealed_medium());
    let handles: Vec<Handle> = (0..SEALED_FILES)
        .map(|i| {
            sim.create(
                &format!("\\s{i}.bin"),
                &Open::read_write().disposition(disposition::FILE_OPEN),
            )
            .expect("open sealed file")
        })
        .collect();
    let row = measure(
        "first 1-byte write into a sealed 1 MiB file + flush",
        "1 cluster copied (4,096 B read, 4,096 B written), 1 journal commit",
        SEALED_FILES,
        |i| {
            assert_eq!(sim.write(handles[i], Some(0), b"!"), Ok(1));
            assert_eq!(sim.flush(handles[i]), status::STATUS_SUCCESS);
        },
    );
    for h in handles {
        sim.close(h);
    }
    finish_clean(sim);
    row
}

/// A 1 MiB non-cached read of a contiguous file.
fn noncached_reads() -> Row {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\r.bin");
    let data = filled(0x77, 1 << 20);
    assert_eq!(sim.write(h, Some(0), &data), Ok(1 << 20));
    assert_eq!(sim.flush(h), status::STATUS_SUCCESS);
    sim.close(h);
    let h = open_nc(&mut sim, "\\r.bin");
    let row = measure(
        "1 MiB non-cached read",
        "1,048,576 B read in 1 request (the file is one extent), no writes, no flushes",
        NONCACHED_READS,
        |_| {
            let got = sim.read(h, 0, 1 << 20).expect("read");
            assert_eq!(got.len(), 1 << 20);
            assert!(got.iter().all(|&b| b == 0x77));
        },
    );
    sim.close(h);
    finish_clean(sim);
    row
}

/// Listing a directory of 10,000 names with 64 KiB buffers, right after mount.
fn enumeration() -> [Row; 2] {
    let mut sim = Sim::new();
    let dir = mkdir(&mut sim, "\\big");
    for i in 0..DIRECTORY_NAMES {
        let h = create_new(&mut sim, dir, &format!("file-{i:05}"));
        sim.close(h);
    }
    sim.close(dir);
    let (leaks, medium) = sim.finish_keeping_medium();
    assert!(leaks.is_empty(), "leaked: {leaks:?}");
    let mut sim = Sim::with_medium(medium);
    let dir = mkdir(&mut sim, "\\big");
    let mut seen = 0;
    let mut list = |sim: &mut Sim| {
        let mut flags = SL_RESTART_SCAN;
        loop {
            let (s, b) = sim.query_directory(dir, ID_BOTH, DIR_BUFFER, None, flags, 0);
            flags = 0;
            if s == STATUS_NO_MORE_FILES {
                break;
            }
            assert_eq!(s, status::STATUS_SUCCESS);
            seen += count_entries(&b);
        }
    };
    let first = measure(
        "enumerate 10,000 names (FileIdBothDirectoryInformation, 64 KiB buffers), first after mount",
        "no writes, no flushes; reads at most the directory's clusters",
        1,
        |_| list(&mut sim),
    );
    let again = measure(
        "enumerate the same 10,000 names again",
        "no disk requests (the directory is cached)",
        1,
        |_| list(&mut sim),
    );
    // Every name, plus `.` and `..`, twice.
    assert_eq!(seen, 2 * (DIRECTORY_NAMES + 2));
    sim.close(dir);
    finish_clean(sim);
    [first, again]
}

/// Entries in a directory reply (chained by `NextEntryOffset`).
fn count_entries(b: &[u8]) -> usize {
    let mut at = 0;
    let mut n = 0;
    while at + 4 <= b.len() {
        n += 1;
        let next = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        if next == 0 {
            break;
        }
        at += next;
    }
    n
}

fn docs_bench() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/bench")
}

const BASELINE: &str = "ntsim-costs.baseline";
const TABLE: &str = "ntsim-costs.md";
const COMMAND: &str =
    "COWFAT_NTSIM_COSTS_UPDATE=1 cargo test -p ntsim --test counted_cost -- --nocapture";

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| operation | reps | disk reads | bytes read | disk writes | bytes written | flushes | ExAllocatePool2 | heap allocs | peak pool bytes | floor |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for row in rows {
        let _ = write!(out, "| {} | {} ", row.name, row.reps);
        for (_, v) in row.per_op() {
            let _ = write!(out, "| {} ", fmt(v));
        }
        let _ = writeln!(out, "| {} |", row.floor);
    }
    out
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn baseline_text(rows: &[Row]) -> String {
    let mut out = String::from(
        "# Per-operation counts of tests/ntsim/tests/counted_cost.rs (operation, column, value).\n\
         # Regenerate with the command in docs/bench/ntsim-costs.md after a deliberate change.\n",
    );
    for row in rows {
        for (column, v) in row.per_op() {
            let _ = writeln!(out, "{}\t{column}\t{}", row.name, fmt(v));
        }
    }
    out
}

fn parse_baseline(text: &str) -> BTreeMap<(String, String), f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split('\t');
            let op = f.next()?.to_owned();
            let column = f.next()?.to_owned();
            let value = f.next()?.parse().ok()?;
            Some(((op, column), value))
        })
        .collect()
}

/// The counts that exceed their baseline by more than the margin, as messages.
fn regressions(rows: &[Row], baseline: &BTreeMap<(String, String), f64>) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows {
        for (column, v) in row.per_op() {
            let Some(&was) = baseline.get(&(row.name.to_owned(), column.to_owned())) else {
                out.push(format!("{} / {column}: not in the baseline", row.name));
                continue;
            };
            let slack = if column == "peak_pool_bytes" {
                PEAK_SLACK_BYTES
            } else {
                SLACK
            };
            let limit = was * (1.0 + MARGIN_PERCENT / 100.0) + slack;
            if v > limit {
                out.push(format!(
                    "{} / {column}: {} per operation, baseline {} (limit {limit:.2})",
                    row.name,
                    fmt(v),
                    fmt(was)
                ));
            }
        }
    }
    out
}

#[test]
fn regression_check_catches_a_count_above_the_margin() {
    let row = Row {
        name: "op",
        reps: 2,
        total: Cost {
            flushes: 6,
            ..Cost::default()
        },
        peak: 1000,
        floor: "",
    };
    let mut baseline = parse_baseline(&baseline_text(std::slice::from_ref(&row)));
    assert!(regressions(std::slice::from_ref(&row), &baseline).is_empty());
    // 3 flushes per operation against a baseline of 1: over 1 * 1.1 + 1.
    baseline.insert(("op".into(), "flushes".into()), 1.0);
    let found = regressions(std::slice::from_ref(&row), &baseline);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("op / flushes: 3 per operation"),
        "{found:?}"
    );
    // Within the margin: 3 against 2.
    baseline.insert(("op".into(), "flushes".into()), 2.0);
    assert!(regressions(std::slice::from_ref(&row), &baseline).is_empty());
    baseline.remove(&("op".into(), "peak_pool_bytes".into()));
    assert_eq!(regressions(std::slice::from_ref(&row), &baseline).len(), 1);
}

#[test]
fn driver_costs_per_operation_stay_at_their_baseline() {
    let mut rows = vec![
        creates(),
        cached_writes(),
        first_writes(),
        noncached_reads(),
    ];
    rows.extend(enumeration());
    let table = table(&rows);
    println!("{table}");

    // Floors that hold exactly: reading never writes or flushes, and a flush reaches the disk.
    let read = &rows[3];
    assert_eq!(read.total.disk_writes, 0, "a non-cached read wrote");
    assert_eq!(read.total.flushes, 0, "a non-cached read flushed");
    assert_eq!(read.total.bytes_read, (read.reps as u64) << 20);
    let list = &rows[4];
    assert_eq!(list.total.disk_writes, 0, "enumeration wrote");
    assert_eq!(list.total.flushes, 0, "enumeration flushed");
    let again = &rows[5];
    assert_eq!(
        again.total.disk_reads + again.total.disk_writes,
        0,
        "a cached listing went to the disk"
    );
    for row in &rows[1..3] {
        assert!(
            row.total.flushes >= row.reps as u64,
            "{}: a flush that did not reach the disk",
            row.name
        );
        assert!(
            row.total.bytes_written >= CLUSTER * row.reps as u64,
            "{}: less than the data written",
            row.name
        );
    }

    let dir = docs_bench();
    if std::env::var_os("COWFAT_NTSIM_COSTS_UPDATE").is_some() {
        let doc = format!(
            "# The driver's cost per operation, counted on ntsim\n\n\
             Generated by `tests/ntsim/tests/counted_cost.rs`; regenerate with\n\n    {COMMAND}\n\n\
             Per operation (averaged over the repetitions; peak pool bytes is the most the driver's\n\
             pool plus Rust heap rose above its level before one repetition). ntsim counts what the\n\
             driver's real IRP code asks of the disk and of pool; nothing is timed. Disk requests are\n\
             those that reach the volume's disk device (`IRP_MJ_READ`/`WRITE`/`FLUSH_BUFFERS`); the\n\
             volume is a 16 MiB (64 MiB for the sealed files) cowfat disk with 4 KiB clusters.\n\
             `cargo test -p ntsim` fails when a count exceeds `ntsim-costs.baseline` by more than\n\
             {MARGIN_PERCENT}% plus {SLACK} (plus {PEAK_SLACK_BYTES} bytes for peak pool).\n\n{table}"
        );
        std::fs::write(dir.join(TABLE), doc).expect("write the table");
        std::fs::write(dir.join(BASELINE), baseline_text(&rows)).expect("write the baseline");
        return;
    }
    let text = std::fs::read_to_string(dir.join(BASELINE))
        .unwrap_or_else(|e| panic!("{}: {e} (create it with: {COMMAND})", BASELINE));
    let found = regressions(&rows, &parse_baseline(&text));
    assert!(
        found.is_empty(),
        "driver costs regressed past the baseline:\n{}\n(if on purpose, update with: {COMMAND})",
        found.join("\n")
    );
}
