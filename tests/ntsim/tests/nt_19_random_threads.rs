//! Issue 19: the randomized multi-thread model. Each schedule builds a machine and, from the
//! schedule's seed, two to four simulated threads: user threads running a random sequence of
//! the single-thread model's operations (`nt_random_model`: cached and non-cached writes and
//! reads, map / view write / unmap, set end of file, flush, rename within the root
//! directory, delete, close) and system threads (the lazy writer, the modified page writer,
//! the system worker: time moved past the lazy-commit period, then the queued work items —
//! lazy commit, deferred closes). The scheduler interleaves them (`ntsim::sched`, half seeded
//! random with bounded preemptions, half PCT) with the per-step invariants of
//! `ntsim::invariants` checked at every switch point.
//!
//! What is checked where the result is determined: every user thread owns a file only it
//! touches (every read of it, and its content on the medium at the end, must match the
//! thread's own model exactly); the shared names `\s0` and `\s1` are written, read,
//! truncated, renamed onto each other and deleted by everyone, so a shared file holds
//! nothing or exactly one writer's whole value (each write is one request of the same
//! length at offset 0), and each operation's status must be in the set allowed for it
//! (never, say, `STATUS_INTERNAL_ERROR`; a bug check fails the schedule). At the end: no leak,
//! fsck clean, the owned files' bytes, the shared files' values. Even seeds start from a
//! sealed volume (every write goes to the overlay).
//!
//! 4,000 schedules by default (about 17 s in debug); `COWFAT_SCHEDULES=<n>` sets the count.
//! The operations derive from the schedule's seed (`sched::explore_seeded`), so a failure's
//! replay command regenerates the same threads and operations:
//! `COWFAT_SCHED_REPLAY=<strategy>:<seed> cargo test -p ntsim --test nt_19_random_threads`.
//! Longer run: `COWFAT_SCHEDULES=20000 cargo test -p ntsim --test nt_19_random_threads`.

mod common;
mod nt19;

use common::*;
use nt19::{PCT_DEPTH, PREEMPTIONS};
use ntsim::sched::{self, FailureKind, Rng, Scenario, Thread};
use ntsim::{Section, View};
use std::sync::{Arc, Mutex, OnceLock};

const RENAME: i32 = windows_sys::Wdk::Storage::FileSystem::FileRenameInformation;
const DISPOSITION: i32 = windows_sys::Wdk::Storage::FileSystem::FileDispositionInformation;
const END_OF_FILE: i32 = windows_sys::Wdk::Storage::FileSystem::FileEndOfFileInformation;

const PAGE: u64 = 4096;
/// The names every user thread uses.
const SHARED: [&str; 2] = ["\\s0", "\\s1"];
/// Every write to a shared file: this many bytes at offset 0 (sector multiple: non-cached too).
const SHARED_LEN: usize = 1536;
/// User threads' model thread ids (0 is the test's user thread; 1..5 are ntsim's system threads).
const USER_THREADS: [u32; 4] = [0, 6, 7, 8];
const USER_NAMES: [&str; 4] = ["user 0", "user 6", "user 7", "user 8"];
/// Each owned file's two names (a rename moves it between them).
const OWN_NAMES: [[&str; 2]; 4] = [
    ["\\o0a", "\\o0b"],
    ["\\o6a", "\\o6b"],
    ["\\o7a", "\\o7b"],
    ["\\o8a", "\\o8b"],
];

/// A shared file's value written by user `u`'s operation `i`; `None` is the initial one.
fn shared_value(writer: Option<(usize, usize)>) -> Vec<u8> {
    let tag = writer.map_or(0xA5, |(u, i)| (u * 64 + i + 1) as u8);
    (0..SHARED_LEN)
        .map(|n| tag ^ (n as u8).wrapping_mul(7))
        .collect()
}

/// Bytes a user thread writes to its own file.
fn own_bytes(u: usize, i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|n| ((u * 37 + i * 11 + n) % 251) as u8 + 1)
        .collect()
}

#[derive(Clone, Debug)]
enum Op {
    OwnWrite { offset: u64, len: usize, nc: bool },
    OwnRead { offset: u64, len: usize, nc: bool },
    OwnMap,
    OwnViewWrite { offset: u64, len: usize },
    OwnViewRead { offset: u64, len: usize },
    OwnUnmap,
    OwnSetEof { size: u64 },
    OwnFlush,
    OwnRename,
    SharedWrite { name: usize, nc: bool },
    SharedRead { name: usize },
    SharedTruncate { name: usize },
    SharedRename { from: usize },
    SharedDelete { name: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    LazyWriter,
    PageWriter,
    Worker,
}

/// What a user thread's operations do to its own file, as generated (the thread replays it).
#[derive(Default)]
struct OwnPlan {
    size: u64,
    /// Mapped: the view's byte length (the file's size rounded up to a page when mapped).
    mapped: Option<u64>,
}

impl OwnPlan {
    /// The part of the view inside the file.
    fn window(&self) -> u64 {
        self.mapped.map_or(0, |len| len.min(self.size))
    }
}

/// A user thread's operations, drawn so that the own-file rules of `nt_random_model` hold
/// (views inside the file; no non-cached write, truncation or end-of-file change while
/// mapped).
fn user_ops(rng: &mut Rng, count: usize) -> Vec<Op> {
    let mut plan = OwnPlan::default();
    let mut ops = Vec::new();
    while ops.len() < count {
        let op = match rng.below(15) {
            0 | 1 => {
                let offset = rng.below(2 * PAGE);
                let len = 1 + rng.below(PAGE + 512) as usize;
                plan.size = plan.size.max(offset + len as u64);
                Op::OwnWrite {
                    offset,
                    len,
                    nc: false,
                }
            }
            2 if plan.mapped.is_none() => {
                let offset = rng.below(12) * 512;
                let len = (1 + rng.below(6)) as usize * 512;
                plan.size = plan.size.max(offset + len as u64);
                Op::OwnWrite {
                    offset,
                    len,
                    nc: true,
                }
            }
            3 => Op::OwnRead {
                offset: rng.below(3 * PAGE),
                len: 1 + rng.below(PAGE) as usize,
                nc: false,
            },
            4 => Op::OwnRead {
                offset: rng.below(16) * 512,
                len: (1 + rng.below(8)) as usize * 512,
                nc: true,
            },
            5 if plan.mapped.is_none() && plan.size > 0 => {
                plan.mapped = Some(plan.size.div_ceil(PAGE) * PAGE);
                Op::OwnMap
            }
            6 if plan.window() > 0 => {
                let window = plan.window();
                let offset = rng.below(window);
                let len = 1 + rng.below((window - offset).min(PAGE)) as usize;
                Op::OwnViewWrite { offset, len }
            }
            7 if plan.window() > 0 => {
                let window = plan.window();
                let offset = rng.below(window);
                let len = 1 + rng.below(window - offset) as usize;
                Op::OwnViewRead { offset, len }
            }
            8 if plan.mapped.is_some() => {
                plan.mapped = None;
                Op::OwnUnmap
            }
            9 if plan.mapped.is_none() => {
                let size = rng.below(3 * PAGE);
                plan.size = size;
                Op::OwnSetEof { size }
            }
            10 => match rng.below(2) {
                0 => Op::OwnFlush,
                _ => Op::OwnRename,
            },
            11 => Op::SharedWrite {
                name: rng.below(2) as usize,
                nc: rng.below(3) == 0,
            },
            12 => Op::SharedRead {
                name: rng.below(2) as usize,
            },
            13 => match rng.below(3) {
                0 => Op::SharedTruncate {
                    name: rng.below(2) as usize,
                },
                1 => Op::SharedDelete {
                    name: rng.below(2) as usize,
                },
                _ => Op::SharedRename {
                    from: rng.below(2) as usize,
                },
            },
            _ => Op::SharedWrite {
                name: rng.below(2) as usize,
                nc: false,
            },
        };
        ops.push(op);
    }
    ops
}

/// A user thread's own file as it runs.
struct Own {
    name: usize,
    model: Vec<u8>,
    cached: Handle,
    nc: Handle,
    mapping: Option<(Section, View, u64)>,
}

impl Own {
    fn write_model(&mut self, offset: u64, data: &[u8]) {
        let end = offset as usize + data.len();
        if self.model.len() < end {
            self.model.resize(end, 0);
        }
        self.model[offset as usize..end].copy_from_slice(data);
    }

    fn expected(&self, offset: u64, len: usize) -> Result<Vec<u8>, i32> {
        if offset >= self.model.len() as u64 {
            return Err(status::STATUS_END_OF_FILE);
        }
        let end = (offset as usize + len).min(self.model.len());
        Ok(self.model[offset as usize..end].to_vec())
    }
}

fn summary(r: &Result<Vec<u8>, i32>) -> String {
    match r {
        Ok(v) => format!("{} bytes", v.len()),
        Err(s) => format!("status {s:#x}"),
    }
}

fn open_shared(sim: &mut Sim, name: usize, disposition: u32, nc: bool) -> Result<Handle, i32> {
    let mut open = Open::new(access::GENERIC_READ | access::GENERIC_WRITE | access::DELETE)
        .share(share::ALL)
        .disposition(disposition);
    if nc {
        open = open.no_buffering();
    }
    let got = sim.create(SHARED[name], &open);
    if let Err(s) = got {
        let allowed = [
            status::STATUS_OBJECT_NAME_NOT_FOUND,
            status::STATUS_DELETE_PENDING,
        ];
        let open_if = disposition == disposition::FILE_OPEN_IF;
        assert!(
            allowed.contains(&s) && !(open_if && s == status::STATUS_OBJECT_NAME_NOT_FOUND),
            "open of {} (disposition {disposition}): status {s:#x}",
            SHARED[name]
        );
    }
    got
}

/// One user thread: opens its own file, runs `ops`, closes everything; its own file's final
/// (name, bytes) go to `result`.
fn run_user(sim: &mut Sim, u: usize, ops: &[Op], result: &Mutex<Option<(usize, Vec<u8>)>>) {
    let open = Open::new(access::GENERIC_READ | access::GENERIC_WRITE | access::DELETE)
        .share(share::ALL)
        .disposition(disposition::FILE_CREATE);
    let cached = match sim.create(OWN_NAMES[u][0], &open) {
        Ok(h) => h,
        Err(s) => panic!("create {}: {s:#x}", OWN_NAMES[u][0]),
    };
    let nc = open_nc(sim, OWN_NAMES[u][0]);
    let mut own = Own {
        name: 0,
        model: Vec::new(),
        cached,
        nc,
        mapping: None,
    };
    for (i, op) in ops.iter().enumerate() {
        let what = format!("{}: op {i} {op:?}", USER_NAMES[u]);
        user_op(sim, &mut own, u, i, op, &what);
    }
    if let Some((section, view, _)) = own.mapping.take() {
        sim.unmap_view(view);
        sim.close_section(section);
    }
    sim.close(own.cached);
    sim.close(own.nc);
    *result.lock().expect("result") = Some((own.name, own.model));
}

/// `NT19_TRACE=1`: the trace so far, before a thread's assertion fails.
fn dump_trace(sim: &Sim) {
    if std::env::var("NT19_TRACE").is_ok() {
        for e in sim.trace() {
            eprintln!("{e:?}");
        }
    }
}

fn user_op(sim: &mut Sim, own: &mut Own, u: usize, i: usize, op: &Op, what: &str) {
    match *op {
        Op::OwnWrite { offset, len, nc } => {
            let data = own_bytes(u, i, len);
            let h = if nc { own.nc } else { own.cached };
            assert_eq!(sim.write(h, Some(offset), &data), Ok(len), "{what}");
            own.write_model(offset, &data);
        }
        Op::OwnRead { offset, len, nc } => {
            let h = if nc { own.nc } else { own.cached };
            let got = sim.read(h, offset, len);
            let want = own.expected(offset, len);
            if got != want {
                dump_trace(sim);
            }
            assert!(
                got == want,
                "{what}: got {}, want {}",
                summary(&got),
                summary(&want)
            );
        }
        Op::OwnMap => {
            let size = own.model.len() as u64;
            let section = sim
                .create_section(own.cached, true)
                .unwrap_or_else(|s| panic!("{what}: section {s:#x}"));
            let view = sim
                .map_view(section, 0, 0)
                .unwrap_or_else(|s| panic!("{what}: view {s:#x}"));
            own.mapping = Some((section, view, size.div_ceil(PAGE) * PAGE));
        }
        Op::OwnViewWrite { offset, len } => {
            let (_, view, _) = own.mapping.expect("mapped");
            let data = own_bytes(u, i, len);
            assert_eq!(sim.view_write(view, offset, &data), Ok(()), "{what}");
            own.write_model(offset, &data);
        }
        Op::OwnViewRead { offset, len } => {
            let (_, view, _) = own.mapping.expect("mapped");
            let got = sim.view_read(view, offset, len);
            let want = own.expected(offset, len);
            assert!(
                got == want,
                "{what}: got {}, want {}",
                summary(&got),
                summary(&want)
            );
        }
        Op::OwnUnmap => {
            let (section, view, _) = own.mapping.take().expect("mapped");
            sim.unmap_view(view);
            sim.close_section(section);
        }
        Op::OwnSetEof { size } => {
            let got = sim.set_information(own.cached, END_OF_FILE, &size.to_le_bytes());
            assert_eq!(got, status::STATUS_SUCCESS, "{what}");
            own.model.resize(size as usize, 0);
        }
        Op::OwnFlush => {
            assert_eq!(sim.flush(own.cached), status::STATUS_SUCCESS, "{what}");
        }
        Op::OwnRename => {
            let to = 1 - own.name;
            let got = sim.rename(own.cached, RENAME, OWN_NAMES[u][to], 0);
            assert_eq!(got, status::STATUS_SUCCESS, "{what}");
            own.name = to;
        }
        Op::SharedWrite { name, nc } => {
            let Ok(h) = open_shared(sim, name, disposition::FILE_OPEN_IF, nc) else {
                return;
            };
            let data = shared_value(Some((u, i)));
            assert_eq!(sim.write(h, Some(0), &data), Ok(SHARED_LEN), "{what}");
            sim.close(h);
        }
        Op::SharedRead { name } => {
            let Ok(h) = open_shared(sim, name, disposition::FILE_OPEN, false) else {
                return;
            };
            match sim.read(h, 0, SHARED_LEN + 1) {
                Err(status::STATUS_END_OF_FILE) => {}
                Ok(got) => assert!(
                    shared_allowed(&got),
                    "{what}: read {} bytes that no writer wrote",
                    got.len()
                ),
                Err(s) => panic!("{what}: read status {s:#x}"),
            }
            sim.close(h);
        }
        Op::SharedTruncate { name } => {
            let Ok(h) = open_shared(sim, name, disposition::FILE_OPEN, false) else {
                return;
            };
            let got = sim.set_information(h, END_OF_FILE, &0u64.to_le_bytes());
            assert_eq!(got, status::STATUS_SUCCESS, "{what}");
            sim.close(h);
        }
        Op::SharedRename { from } => {
            let Ok(h) = open_shared(sim, from, disposition::FILE_OPEN, false) else {
                return;
            };
            let got = sim.rename(h, RENAME, SHARED[1 - from], 0);
            let allowed = [
                status::STATUS_SUCCESS,
                status::STATUS_OBJECT_NAME_COLLISION,
                status::STATUS_DELETE_PENDING,
            ];
            assert!(allowed.contains(&got), "{what}: status {got:#x}");
            sim.close(h);
        }
        Op::SharedDelete { name } => {
            let Ok(h) = open_shared(sim, name, disposition::FILE_OPEN, false) else {
                return;
            };
            let got = sim.set_information(h, DISPOSITION, &[1]);
            assert_eq!(got, status::STATUS_SUCCESS, "{what}");
            sim.close(h);
        }
    }
}

/// Every value a shared file may hold: nothing, the initial value, or one writer's whole value.
fn shared_allowed(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes == shared_value(None) {
        return true;
    }
    bytes.len() == SHARED_LEN && {
        let tag = bytes[0];
        let writer = usize::from(tag.wrapping_sub(1));
        bytes == shared_value(Some((writer / 64, writer % 64)))
    }
}

fn run_system(sim: &mut Sim, which: System, passes: usize) {
    for _ in 0..passes {
        match which {
            System::LazyWriter => sim.lazy_writer(),
            System::PageWriter => sim.modified_page_writer(),
            System::Worker => {
                let period = fs_driver::lazycommit::LAZY_COMMIT_PERIOD_MS as u64;
                sim.advance_time(std::time::Duration::from_millis(period + 1));
                sim.run_work_items();
            }
        }
    }
}

/// The volume every schedule starts from: `\s0` holds the initial shared value; sealed or not.
fn template(sealed: bool) -> fs_core::MemDevice {
    static TEMPLATES: OnceLock<[fs_core::MemDevice; 2]> = OnceLock::new();
    let build = |seal: bool| nt19::volume_with_file("s0", &shared_value(None), seal);
    TEMPLATES.get_or_init(|| [build(false), build(true)])[usize::from(sealed)].clone()
}

/// The scenario of one schedule, all drawn from `seed`.
fn random_threads(seed: u64) -> Scenario {
    let mut rng = Rng(seed ^ 0x5EED_19B0_0000_0000);
    let mut sim = Sim::with_medium(template(seed.is_multiple_of(2)));
    assert_eq!(sim.mount(), status::STATUS_SUCCESS);
    let total = 2 + rng.below(3) as usize;
    let mut users = 1usize;
    let mut systems: Vec<System> = Vec::new();
    for _ in 1..total {
        let pick = rng.below(4);
        let free: Vec<System> = [System::LazyWriter, System::PageWriter, System::Worker]
            .into_iter()
            .filter(|s| !systems.contains(s))
            .collect();
        if pick == 0 || free.is_empty() || users == 1 && systems.len() >= 2 {
            users += 1;
        } else {
            systems.push(free[rng.below(free.len() as u64) as usize]);
        }
    }
    let mut threads = Vec::new();
    let mut results = Vec::new();
    for u in 0..users {
        let count = 3 + rng.below(4) as usize;
        let ops = user_ops(&mut rng, count);
        if std::env::var("COWFAT_SCHED_REPLAY").is_ok() {
            eprintln!("{}: {ops:?}", USER_NAMES[u]);
        }
        let result = Arc::new(Mutex::new(None));
        results.push(Arc::clone(&result));
        threads.push(Thread::new(USER_NAMES[u], USER_THREADS[u], move |sim| {
            run_user(sim, u, &ops, &result);
        }));
    }
    for which in systems {
        let passes = 1 + rng.below(3) as usize;
        let (name, model_thread) = match which {
            System::LazyWriter => ("lazy writer", 1),
            System::PageWriter => ("modified page writer", 2),
            System::Worker => ("system worker: lazy commit, deferred closes", 3),
        };
        threads.push(Thread::new(name, model_thread, move |sim| {
            run_system(sim, which, passes);
        }));
    }
    Scenario {
        sim,
        threads,
        check: Box::new(move |sim| end_check(sim, &results)),
    }
}

type Results = [Arc<Mutex<Option<(usize, Vec<u8>)>>>];

fn end_check(sim: Sim, results: &Results) -> Result<(), String> {
    let mut volume = nt19::finish_and_mount(sim)?;
    let mut read_all = |path: &str| -> Result<Option<Vec<u8>>, String> {
        let Ok(id) = volume.resolve(path) else {
            return Ok(None);
        };
        let size = volume.info(id).map_err(|e| format!("{e:?}"))?.file_size;
        let mut buf = vec![0u8; size as usize];
        let n = volume.read(id, 0, &mut buf).map_err(|e| format!("{e:?}"))?;
        buf.truncate(n);
        Ok(Some(buf))
    };
    for (u, result) in results.iter().enumerate() {
        let Some((name, model)) = result.lock().map_err(|e| e.to_string())?.take() else {
            return Err(format!("{} did not finish", USER_NAMES[u]));
        };
        let path = OWN_NAMES[u][name];
        match read_all(path)? {
            Some(got) if got == model => {}
            Some(got) => {
                let first = got.iter().zip(&model).position(|(a, b)| a != b);
                return Err(format!(
                    "{path}: {} bytes on the medium, not the {} the thread wrote (first \
                     difference at {first:?})",
                    got.len(),
                    model.len()
                ));
            }
            None => return Err(format!("{path} is missing")),
        }
        if read_all(OWN_NAMES[u][1 - name])?.is_some() {
            return Err(format!(
                "{} exists after the rename",
                OWN_NAMES[u][1 - name]
            ));
        }
    }
    for path in SHARED {
        if let Some(got) = read_all(path)? {
            if !shared_allowed(&got) {
                return Err(format!("{path}: {} bytes no writer wrote", got.len()));
            }
        }
    }
    Ok(())
}

#[test]
fn nt_19_random_threads_agree_with_the_model() {
    sched::set_step_check(Some(ntsim::invariants::standard()));
    let count = sched::schedule_count(4000);
    match sched::explore_seeded(
        "random threads",
        count,
        0x19_b00,
        PREEMPTIONS,
        PCT_DEPTH,
        random_threads,
    ) {
        Ok(done) => {
            assert!(done.schedules >= count.min(1), "nothing explored");
            assert!(done.checks > done.schedules, "no invariant was checked");
        }
        Err(failure) => panic!("random threads: {failure}"),
    }
}

/// The schedules this model found failing, replayed every run (each failed before its fix):
/// - `pct3:13988399058767131424`: ntsim's lazy writer took its list of streams once, and
///   called `AcquireForLazyWrite` on a stream another thread had meanwhile purged and closed
///   (a freed FCB); the writers now look at each stream afresh and keep it while they work.
/// - `pct3:14019155715433123879`: a non-cached read flushed the range while the modified page
///   writer's write of it was in flight (the page already clean), and read the old bytes; the
///   read now holds the paging I/O resource exclusive across its flush, as the non-cached
///   write does.
/// - `pct3:16067499991341699810` (single-threaded at heart): set end of file inside a page
///   with dirty cached data purged from the new size, and a purge drops whole pages: the
///   bytes below the new end were lost; the driver now purges from the next page boundary.
#[test]
fn nt_19_random_threads_found_schedules_stay_fixed() {
    sched::set_step_check(Some(ntsim::invariants::standard()));
    for replay in [
        "pct3:13988399058767131424",
        "pct3:14019155715433123879",
        "pct3:16067499991341699810",
    ] {
        let (strategy, seed) = replay.split_once(':').expect("strategy:seed");
        let strategy = sched::Strategy::parse(strategy).expect("strategy");
        let seed: u64 = seed.parse().expect("seed");
        if let Err(failure) = sched::run_one(
            random_threads(seed),
            strategy,
            seed,
            sched::PCT_STEPS,
            false,
        ) {
            panic!("{replay} fails again: {failure}");
        }
    }
}

/// The per-step check can fail: a thread corrupts an FCB's open count (as a driver bug that
/// forgot a cleanup's decrement would), and the next switch point reports it as a broken
/// invariant, with the replay seed.
#[test]
fn nt_19_a_corrupted_open_count_is_caught_mid_schedule() {
    sched::set_step_check(Some(ntsim::invariants::standard()));
    let make = |_seed: u64| {
        let mut sim = nt19::machine();
        let h = open_rw(&mut sim, "\\c.txt");
        Scenario {
            sim,
            threads: vec![
                Thread::new("user: corrupts the open count", 0, move |sim| {
                    ntsim::invariants::corrupt_open_counts_for_test(1);
                    let _ = sim.read(h, 0, 16);
                    sim.close(h);
                }),
                Thread::new("lazy writer", 1, |sim| sim.lazy_writer()),
            ],
            check: Box::new(|_| Ok(())),
        }
    };
    let failure = sched::explore_seeded("corrupted open count", 10, 0x19_bad, 3, 3, make)
        .expect_err("the corrupted open count went unnoticed");
    assert_eq!(failure.kind, FailureKind::Invariant, "{failure}");
    assert!(failure.report.contains("open count 2"), "{failure}");
    println!("caught: replay {}\n{failure}", failure.replay());
}
