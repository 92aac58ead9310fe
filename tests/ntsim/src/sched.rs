//! A deterministic scheduler for the driver's threads (issue 19).
//!
//! A test builds a [`Scenario`]: a [`Sim`] set up on the test thread, and several simulated
//! threads — closures that issue `Sim` operations (user IRPs, a lazy writer pass, the page
//! writers, the system worker threads, the timer clock). [`run_one`] runs them on real OS
//! threads that pass a baton: exactly one runs at a time, and at every kernel call that can
//! block or yield ([`switch_point`]: ERESOURCE acquire and release, `KeWaitForSingleObject`,
//! IRP dispatch and completion, Mm page faults) the scheduler picks who runs next. While a
//! schedule runs, the model lives in a shared home ([`crate::kernel::with`] routes there) and
//! each thread's own kernel state (model thread id, IRQL, critical region, top-level IRP,
//! paging depth, SEH frames) is swapped in and out with the baton.
//!
//! An ERESOURCE acquire that must wait blocks its simulated thread until the resource is
//! released ([`block_on`]); with every live thread blocked the schedule is a **deadlock**,
//! reported with each thread's held and wanted locks. A waiting acquire against the
//! documented lock order (docs/locking.md: VCB resource, FCB main, FCB paging I/O, volume
//! lock) is a **lock-order violation**, whether or not this schedule deadlocks.
//!
//! Choices come from a seed: [`Strategy::Random`] picks uniformly among runnable threads with
//! a bounded number of preemptions; [`Strategy::Pct`] is PCT (Burckhardt et al., ASPLOS 2010):
//! random distinct thread priorities, the highest runnable runs, and at `depth - 1` random
//! steps the running thread drops below all others. Every failure names its seed, and
//! `COWFAT_SCHED_REPLAY=<strategy>:<seed>` replays exactly that schedule.
//!
//! Invariants: a per-step check ([`set_step_check`], e.g. [`crate::invariants::standard`]) runs
//! at every switch point while the running thread holds the baton, so no driver thread is
//! between two instructions of a kernel routine; it sees every simulated thread's state
//! ([`Step`]). A broken invariant halts the schedule like a deadlock and names its seed.
//!
//! What it cannot show: preemption inside a kernel routine or between two driver
//! instructions (switches happen only at kernel calls), and multiprocessor memory ordering
//! (one thread runs at a time, so every write is seen at once).
#![allow(unsafe_code)]

use std::cell::Cell;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::api::Sim;
use crate::kernel::{self, Kernel};

/// Which of the driver's locks an ERESOURCE is, told from where it lives: the first and
/// second resource initialised in an FCB's pool block are its main and paging I/O resources,
/// the first and second in a device extension the VCB resource and the volume lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LockKind {
    /// Not one of the driver's known locks (no order is checked for it).
    #[default]
    Other,
    /// The VCB resource (the FCB table, volume state).
    Vcb,
    /// An FCB's main resource.
    FcbMain,
    /// An FCB's paging I/O resource.
    FcbPaging,
    /// The volume lock of `Vcb::with_volume` (fs-core's `Volume`).
    VolumeLock,
}

impl LockKind {
    /// Position in the documented order: a thread takes locks in rising rank only.
    fn rank(self) -> Option<u8> {
        match self {
            LockKind::Other => None,
            LockKind::Vcb => Some(1),
            LockKind::FcbMain => Some(2),
            LockKind::FcbPaging => Some(3),
            LockKind::VolumeLock => Some(4),
        }
    }

    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LockKind::Other => "other resource",
            LockKind::Vcb => "VCB resource",
            LockKind::FcbMain => "FCB main resource",
            LockKind::FcbPaging => "FCB paging I/O resource",
            LockKind::VolumeLock => "volume lock",
        }
    }
}

/// The pool tag of the driver's non-paged FCB parts (where the FCB resources live).
const TAG_FCB: u32 = u32::from_le_bytes(*b"CfNf");

/// The kind of the ERESOURCE about to be initialised at `address`.
pub(crate) fn classify(k: &Kernel, address: usize) -> LockKind {
    let in_pool = k
        .pool
        .range(..=address)
        .next_back()
        .filter(|(start, block)| address < *start + block.size)
        .map(|(start, block)| (*start, *start + block.size, block.tag == TAG_FCB));
    let in_extension = || {
        k.devices.values().find_map(|d| {
            let ext = d.extension.as_ref()?;
            let start = ext.as_ptr() as usize;
            let end = start + std::mem::size_of_val(&**ext);
            (start <= address && address < end).then_some((start, end, false))
        })
    };
    let Some((start, end, fcb)) = in_pool.or_else(in_extension) else {
        return LockKind::Other;
    };
    let earlier = k.resources.range(start..end).count();
    match (fcb, earlier) {
        (true, 0) => LockKind::FcbMain,
        (true, 1) => LockKind::FcbPaging,
        (false, 0) => LockKind::Vcb,
        (false, 1) => LockKind::VolumeLock,
        _ => LockKind::Other,
    }
}

/// How the scheduler chooses at a switch point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Uniform among runnable threads, at most this many preemptions (switching away from a
    /// thread that could go on) per schedule.
    Random {
        /// The preemption bound.
        preemptions: u32,
    },
    /// PCT with this depth: `depth - 1` priority change points.
    Pct {
        /// The bug depth PCT targets.
        depth: u32,
    },
}

impl Strategy {
    /// `random4` / `pct3`: the prefix of a replay value.
    #[must_use]
    pub fn label(self) -> String {
        match self {
            Strategy::Random { preemptions } => format!("random{preemptions}"),
            Strategy::Pct { depth } => format!("pct{depth}"),
        }
    }

    /// Parses [`Strategy::label`].
    #[must_use]
    pub fn parse(label: &str) -> Option<Self> {
        if let Some(n) = label.strip_prefix("random") {
            return n
                .parse()
                .ok()
                .map(|preemptions| Strategy::Random { preemptions });
        }
        let depth = label.strip_prefix("pct")?.parse().ok()?;
        Some(Strategy::Pct { depth })
    }
}

/// What went wrong in a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Every live thread waits for a resource another holds.
    Deadlock,
    /// A waiting acquire against the documented lock order.
    LockOrder,
    /// A simulated thread panicked (an assertion of the scenario, or a bug check).
    Panic,
    /// The end-of-schedule check failed (leaks, fsck, the scenario's own invariants), or the
    /// per-step check did ([`set_step_check`]).
    Invariant,
}

/// The test binary's name without cargo's hash suffix (for the replay command).
fn test_binary() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// A failing schedule.
#[derive(Clone, Debug)]
pub struct Failure {
    /// What kind.
    pub kind: FailureKind,
    /// The strategy and seed that replay it.
    pub strategy: Strategy,
    /// The seed.
    pub seed: u64,
    /// The report: threads, locks, the interleaving.
    pub report: String,
}

impl Failure {
    /// `COWFAT_SCHED_REPLAY` value for this schedule.
    #[must_use]
    pub fn replay(&self) -> String {
        format!("{}:{}", self.strategy.label(), self.seed)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} in schedule {} (replay: COWFAT_SCHED_REPLAY={} cargo test -p ntsim --test \
             {})\n{}",
            self.kind,
            self.replay(),
            self.replay(),
            test_binary(),
            self.report
        )
    }
}

/// A simulated thread's body: runs `Sim` operations (one thread runs at a time).
pub type Body = Box<dyn FnOnce(&mut Sim) + Send>;

/// The end-of-schedule check: gets the `Sim` back on the test thread.
pub type Check = Box<dyn FnOnce(Sim) -> Result<(), String>>;

/// One simulated thread.
pub struct Thread {
    /// Its name in reports.
    pub name: &'static str,
    /// The model thread it starts as (0 or above 5 for user threads; 1 lazy writer, 2 page
    /// writers, 3 system worker, as [`crate::mm::as_thread`]).
    pub model_thread: u32,
    /// What it does.
    pub body: Body,
}

impl Thread {
    /// A thread named `name` running `body` as model thread `model_thread`.
    pub fn new(
        name: &'static str,
        model_thread: u32,
        body: impl FnOnce(&mut Sim) + Send + 'static,
    ) -> Self {
        Self {
            name,
            model_thread,
            body: Box::new(body),
        }
    }
}

/// A set-up machine, the threads to interleave, and what must hold afterwards.
pub struct Scenario {
    /// The machine, set up on the test thread.
    pub sim: Sim,
    /// The threads.
    pub threads: Vec<Thread>,
    /// Run after every thread finished (usually: close handles, `finish`, fsck).
    pub check: Check,
}

/// A simulated thread's state as the per-step check sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepState {
    /// Running or ready to run.
    Runnable,
    /// Waiting for an ERESOURCE.
    Blocked {
        /// The ERESOURCE's address.
        resource: usize,
        /// Wanted exclusive.
        exclusive: bool,
    },
    /// Its body returned.
    Done,
}

/// One simulated thread at a switch point.
#[derive(Clone, Copy, Debug)]
pub struct StepThread {
    /// Its name in reports.
    pub name: &'static str,
    /// The model thread it runs as now.
    pub model_thread: u32,
    /// Its IRQL.
    pub irql: u8,
    /// Its `KeEnterCriticalRegion` depth.
    pub critical_region: i32,
    /// Runnable, blocked or done.
    pub state: StepState,
    /// It holds the baton (the check runs on its OS thread).
    pub running: bool,
}

/// What the per-step check is given: where the running thread stopped, and every thread.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// The switch point ("ERESOURCE release", "IofCallDriver", "thread end" ...).
    pub point: &'static str,
    /// Switch points passed before this one.
    pub index: u64,
    /// Every simulated thread of the schedule.
    pub threads: &'a [StepThread],
}

/// A per-step invariant check: runs on the thread holding the baton, with the model routed
/// to the schedule's shared home; an `Err` fails the schedule ([`FailureKind::Invariant`]).
pub type StepCheck = std::sync::Arc<dyn Fn(&Step<'_>) -> Result<(), String> + Send + Sync>;

static STEP_CHECK: Mutex<Option<StepCheck>> = Mutex::new(None);

/// Installs (or removes) the per-step check for the schedules that start from now on.
pub fn set_step_check(check: Option<StepCheck>) {
    *STEP_CHECK.lock().unwrap_or_else(PoisonError::into_inner) = check;
}

/// What one clean schedule did.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    /// Switch points passed.
    pub steps: u64,
    /// Times the baton moved to another thread.
    pub switches: u64,
    /// Times a thread blocked on an ERESOURCE.
    pub blocks: u64,
    /// Per-step invariant checks run.
    pub checks: u64,
}

/// The per-thread part of the model, swapped with the baton.
#[derive(Clone, Copy, Debug)]
struct PerThread {
    thread: u32,
    top_level_irp: usize,
    critical_region: i32,
    irql: u8,
    paging_depth: u32,
    seh_depth: u32,
}

impl PerThread {
    fn fresh(thread: u32) -> Self {
        Self {
            thread,
            top_level_irp: 0,
            critical_region: 0,
            irql: crate::irql::PASSIVE_LEVEL,
            paging_depth: 0,
            seh_depth: 0,
        }
    }

    fn save() -> Self {
        kernel::with(|k| Self {
            thread: k.thread,
            top_level_irp: k.top_level_irp as usize,
            critical_region: k.critical_region,
            irql: k.irql,
            paging_depth: k.paging_depth,
            seh_depth: k.seh_depth,
        })
    }

    fn restore(self) {
        kernel::with(|k| {
            k.thread = self.thread;
            k.top_level_irp = std::ptr::with_exposed_provenance_mut(self.top_level_irp);
            k.critical_region = self.critical_region;
            k.irql = self.irql;
            k.paging_depth = self.paging_depth;
            k.seh_depth = self.seh_depth;
        });
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Runnable,
    Blocked { resource: usize, exclusive: bool },
    Done,
}

struct Slot {
    name: &'static str,
    state: State,
    saved: PerThread,
    priority: u64,
    /// The last switch point it passed.
    point: &'static str,
    /// Where it blocked (captured when backtraces are on: replays).
    backtrace: Option<String>,
}

/// splitmix64: small, seedable, good enough to pick threads (and, in the random model, the
/// operations each thread runs, drawn from the schedule's seed so a replay draws them again).
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

struct Schedule {
    generation: u64,
    slots: Vec<Slot>,
    /// Who holds the baton (None: nobody runs; the schedule ended or halted).
    current: Option<usize>,
    rng: Rng,
    strategy: Strategy,
    steps: u64,
    switches: u64,
    blocks: u64,
    preemptions: u32,
    /// PCT: steps at which the running thread's priority drops.
    change_points: Vec<u64>,
    /// PCT: the next low priority to hand out (depth - 1 down to 1).
    next_low: u64,
    /// The first failure; a deadlock or panic also halts the schedule.
    failure: Option<(FailureKind, String)>,
    halted: bool,
    backtraces: bool,
    /// Who ran at each switch (for the report).
    interleaving: Vec<(usize, &'static str)>,
    /// The per-step invariant check, if any.
    step_check: Option<StepCheck>,
    /// Per-step checks run.
    checks: u64,
}

static SCHED: Mutex<Option<Schedule>> = Mutex::new(None);
/// The replay value of the schedule running now (a bug check inside a kernel routine aborts
/// the process: it prints this first).
static RUNNING: Mutex<String> = Mutex::new(String::new());
static BATON: Condvar = Condvar::new();
static GENERATION: AtomicU64 = AtomicU64::new(1);
/// Lock-order checks on (the default); off, only real deadlocks are reported.
static ORDER_CHECKS: AtomicBool = AtomicBool::new(true);

/// Turns the lock-order check off (or on again): a test that wants to see the deadlock an
/// inversion causes, not the first out-of-order acquire.
pub fn set_order_checks(on: bool) {
    ORDER_CHECKS.store(on, Ordering::SeqCst);
}

thread_local! {
    /// (schedule generation, slot) of the simulated thread this OS thread runs.
    static ME: Cell<Option<(u64, usize)>> = const { Cell::new(None) };
}

fn lock() -> MutexGuard<'static, Option<Schedule>> {
    SCHED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// On a schedule's thread: how to replay the schedule (for a bug check's message).
#[must_use]
pub fn replay_hint() -> Option<String> {
    active().then(|| {
        let running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        format!("in schedule COWFAT_SCHED_REPLAY={running}")
    })
}

/// Is this OS thread one of a schedule's simulated threads?
#[must_use]
pub fn active() -> bool {
    ME.with(Cell::get).is_some()
}

impl Schedule {
    /// Picks who runs after a switch point of `me` (None: nobody can).
    fn choose(&mut self, me: Option<usize>) -> Option<usize> {
        self.steps += 1;
        let runnable: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].state == State::Runnable)
            .collect();
        if runnable.is_empty() {
            return None;
        }
        let me_runnable = me.is_some_and(|m| runnable.contains(&m));
        let next = match self.strategy {
            Strategy::Random { preemptions } => {
                if me_runnable && self.preemptions >= preemptions {
                    me.unwrap_or(runnable[0])
                } else {
                    let pick = runnable[self.rng.below(runnable.len() as u64) as usize];
                    if me_runnable && Some(pick) != me {
                        self.preemptions += 1;
                    }
                    pick
                }
            }
            Strategy::Pct { .. } => {
                if let Some(m) = me.filter(|_| me_runnable) {
                    if self.change_points.contains(&self.steps) {
                        self.slots[m].priority = self.next_low;
                        self.next_low = self.next_low.saturating_sub(1);
                    }
                }
                *runnable
                    .iter()
                    .max_by_key(|&&i| self.slots[i].priority)
                    .unwrap_or(&runnable[0])
            }
        };
        if Some(next) != me {
            self.switches += 1;
        }
        self.interleaving.push((next, self.slots[next].name));
        Some(next)
    }

    /// The deadlock report: every live thread, what it holds and what it waits for.
    fn deadlock_report(&self) -> String {
        let mut out = String::from("deadlock: every live thread waits for a resource\n");
        for slot in &self.slots {
            let State::Blocked {
                resource,
                exclusive,
            } = slot.state
            else {
                continue;
            };
            let thread = slot.saved.thread;
            let (held, wanted) = kernel::with(|k| {
                let held: Vec<String> = k
                    .resources
                    .iter()
                    .filter(|(_, s)| s.held_by(thread))
                    .map(|(a, s)| {
                        let how = if s.exclusive.is_some() {
                            "exclusive"
                        } else {
                            "shared"
                        };
                        format!("{} {a:#x} ({how})", s.kind.name())
                    })
                    .collect();
                let wanted = k.resources.get(&resource).map_or("?", |s| s.kind.name());
                (held, wanted)
            });
            let _ = writeln!(
                out,
                "  thread '{}' (model thread {thread}) at {}: holds [{}], waits for {} {resource:#x} {}",
                slot.name,
                slot.point,
                held.join(", "),
                wanted,
                if exclusive { "exclusive" } else { "shared" },
            );
            if let Some(bt) = &slot.backtrace {
                let _ = writeln!(out, "    where:\n{bt}");
            }
        }
        out
    }

    /// Every thread as the per-step check sees it (`me` holds the baton).
    fn step_threads(&self, me: usize) -> Vec<StepThread> {
        self.slots
            .iter()
            .enumerate()
            .map(|(i, slot)| StepThread {
                name: slot.name,
                model_thread: slot.saved.thread,
                irql: slot.saved.irql,
                critical_region: slot.saved.critical_region,
                state: match slot.state {
                    State::Runnable => StepState::Runnable,
                    State::Blocked {
                        resource,
                        exclusive,
                    } => StepState::Blocked {
                        resource,
                        exclusive,
                    },
                    State::Done => StepState::Done,
                },
                running: i == me,
            })
            .collect()
    }

    /// Fails the schedule (the first failure is kept) and halts it.
    fn halt(&mut self, kind: FailureKind, what: &str) {
        if self.failure.is_none() {
            self.failure = Some((kind, format!("{what}\n{}", self.report_tail())));
        }
        self.halted = true;
        self.current = None;
    }

    /// No thread can run and not all are done: the wait-for report, then the interleaving.
    fn halt_deadlocked(&mut self) {
        let report = format!("{}{}", self.deadlock_report(), self.report_tail());
        self.failure = Some((FailureKind::Deadlock, report));
        self.halted = true;
        self.current = None;
    }

    fn report_tail(&self) -> String {
        let order: Vec<&str> = self.interleaving.iter().map(|(_, n)| *n).collect();
        format!(
            "interleaving ({} steps): {}",
            order.len(),
            order.join(" > ")
        )
    }
}

/// Runs the per-step check for thread `me` (which holds the baton and has stored its state in
/// its slot) at `point`, with the schedule's lock let go meanwhile; gives the lock back and
/// what broke, if anything.
fn check_step(
    mut guard: MutexGuard<'static, Option<Schedule>>,
    generation: u64,
    me: usize,
    point: &'static str,
) -> (MutexGuard<'static, Option<Schedule>>, Option<String>) {
    let prepared = guard
        .as_mut()
        .filter(|s| s.generation == generation)
        .and_then(|s| {
            let check = s.step_check.clone()?;
            s.checks += 1;
            Some((check, s.step_threads(me), s.steps))
        });
    let Some((check, threads, index)) = prepared else {
        return (guard, None);
    };
    drop(guard);
    let step = Step {
        point,
        index,
        threads: &threads,
    };
    let broken = match catch_unwind(AssertUnwindSafe(|| check(&step))) {
        Ok(Ok(())) => None,
        Ok(Err(what)) => Some(what),
        Err(payload) => Some(format!("the check panicked: {}", panic_message(&*payload))),
    };
    let broken = broken.map(|what| {
        format!(
            "invariant broken at switch point {index} ('{point}' of thread '{}'): {what}",
            threads[me].name
        )
    });
    (lock(), broken)
}

/// Waits until `me` holds the baton; false when the schedule halted (the caller parks).
fn wait_turn(
    mut guard: MutexGuard<'static, Option<Schedule>>,
    generation: u64,
    me: usize,
) -> Option<MutexGuard<'static, Option<Schedule>>> {
    loop {
        match guard.as_ref() {
            Some(s) if s.generation == generation && s.halted => return None,
            Some(s) if s.generation == generation && s.current == Some(me) => return Some(guard),
            Some(s) if s.generation != generation => return None,
            None => return None,
            Some(_) => {}
        }
        guard = BATON.wait(guard).unwrap_or_else(PoisonError::into_inner);
    }
}

/// A thread of a halted schedule stops here for good: it is inside the driver, and nothing
/// can unwind it through the driver's `extern "system"` frames.
fn park_forever() -> ! {
    let mut guard = lock();
    loop {
        guard = BATON.wait(guard).unwrap_or_else(PoisonError::into_inner);
    }
}

/// Hands the baton to whoever the scheduler picks, waits for it to come back, and swaps
/// this thread's kernel state back in. `blocked` marks this thread as waiting first.
fn reschedule(point: &'static str, blocked: Option<(usize, bool)>) {
    let Some((generation, me)) = ME.with(Cell::get) else {
        return;
    };
    let saved = PerThread::save();
    let mut guard = lock();
    let Some(s) = guard.as_mut().filter(|s| s.generation == generation) else {
        drop(guard);
        park_forever()
    };
    s.slots[me].saved = saved;
    s.slots[me].point = point;
    if let Some((resource, exclusive)) = blocked {
        s.slots[me].state = State::Blocked {
            resource,
            exclusive,
        };
        s.blocks += 1;
        if s.backtraces {
            s.slots[me].backtrace = Some(std::backtrace::Backtrace::force_capture().to_string());
        }
    }
    let (back, broken) = check_step(guard, generation, me, point);
    guard = back;
    let Some(s) = guard.as_mut().filter(|s| s.generation == generation) else {
        drop(guard);
        park_forever()
    };
    if let Some(what) = broken {
        // The thread is inside the driver: it cannot be unwound, so it parks.
        s.halt(FailureKind::Invariant, &what);
        BATON.notify_all();
        drop(guard);
        park_forever()
    }
    match s.choose(Some(me)) {
        Some(next) if next == me => {}
        Some(next) => {
            s.current = Some(next);
            BATON.notify_all();
            let Some(back) = wait_turn(guard, generation, me) else {
                park_forever()
            };
            guard = back;
        }
        None => {
            s.halt_deadlocked();
            BATON.notify_all();
            drop(guard);
            park_forever()
        }
    }
    drop(guard);
    // Another thread may have moved `thread` etc. meanwhile: this one's state comes back.
    saved.restore();
}

/// A point where the running thread may lose the baton (no-op outside a schedule).
pub fn switch_point(point: &'static str) {
    // A thread at DISPATCH_LEVEL or above is not preempted by another thread.
    if active() && crate::irql::current() < crate::irql::DISPATCH_LEVEL {
        reschedule(point, None);
    }
}

/// The running thread must wait for `resource`: it blocks until a release makes it runnable
/// (then its acquire retries). Every live thread blocked is a deadlock: the schedule halts.
pub(crate) fn block_on(resource: usize, exclusive: bool) {
    reschedule("ERESOURCE wait", Some((resource, exclusive)));
}

/// `resource` was released: threads blocked on it may retry.
pub(crate) fn released(resource: usize) {
    if !active() {
        return;
    }
    let mut guard = lock();
    if let Some(s) = guard.as_mut() {
        for slot in &mut s.slots {
            if matches!(slot.state, State::Blocked { resource: r, .. } if r == resource) {
                slot.state = State::Runnable;
                slot.backtrace = None;
            }
        }
    }
}

/// A waiting acquire of `resource` by the current thread against the documented order: the
/// violation's description (checked on a schedule's threads only).
pub(crate) fn order_violation(k: &Kernel, resource: usize) -> Option<String> {
    if !active() || !ORDER_CHECKS.load(Ordering::SeqCst) {
        return None;
    }
    let wanted = k.resources.get(&resource)?;
    let rank = wanted.kind.rank()?;
    if wanted.held_by(k.thread) {
        return None;
    }
    let above: Vec<String> = k
        .resources
        .iter()
        .filter(|(a, s)| **a != resource && s.held_by(k.thread))
        .filter(|(_, s)| s.kind.rank().is_some_and(|r| r > rank))
        .map(|(a, s)| format!("{} {a:#x}", s.kind.name()))
        .collect();
    (!above.is_empty()).then(|| {
        format!(
            "lock order: model thread {} waits for the {} {resource:#x} while holding [{}] \
             (documented order: VCB resource, FCB main, FCB paging I/O, volume lock)",
            k.thread,
            wanted.kind.name(),
            above.join(", ")
        )
    })
}

/// Records a lock-order violation (the schedule goes on: it may still finish).
pub(crate) fn note_order_violation(what: String) {
    let mut guard = lock();
    if let Some(s) = guard.as_mut() {
        if s.failure.is_none() {
            let detail = if s.backtraces {
                format!("{what}\n{}", std::backtrace::Backtrace::force_capture())
            } else {
                what
            };
            s.failure = Some((FailureKind::LockOrder, detail));
        }
    }
}

/// A raw `&mut Sim` handed to the simulated threads.
#[derive(Clone, Copy)]
struct SimPtr(*mut Sim);

// SAFETY: only the thread holding the baton dereferences it, and the baton's mutex orders the
// hand-overs. While one thread is parked inside a `Sim` method (its `&mut Sim` live), another
// may run a `Sim` method too: `Sim`'s methods read their fields before and after the driver
// call, not across it, so what a parked method reads when it resumes is the current state.
unsafe impl Send for SimPtr {}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "a panic".into())
}

/// The body of a simulated thread's OS thread.
fn thread_main(generation: u64, me: usize, sim: SimPtr, body: Body) {
    ME.with(|m| m.set(Some((generation, me))));
    kernel::route_to_shared(true);
    let Some(mut guard) = wait_turn(lock(), generation, me) else {
        return;
    };
    let start = guard
        .as_ref()
        .map_or(PerThread::fresh(0), |s| s.slots[me].saved);
    drop(guard);
    start.restore();
    // SAFETY: see `SimPtr`; the Sim outlives the schedule (a halted one leaks it).
    let outcome = catch_unwind(AssertUnwindSafe(|| body(unsafe { &mut *sim.0 })));
    let end_state = PerThread::save();
    guard = lock();
    let Some(s) = guard.as_mut().filter(|s| s.generation == generation) else {
        return;
    };
    s.slots[me].state = State::Done;
    s.slots[me].saved = end_state;
    s.slots[me].point = "thread end";
    if let Err(payload) = outcome {
        let report = format!(
            "thread '{}' panicked: {}\n{}",
            s.slots[me].name,
            panic_message(&*payload),
            s.report_tail()
        );
        s.failure = Some((FailureKind::Panic, report));
        s.halted = true;
        s.current = None;
        BATON.notify_all();
        return;
    }
    // What the thread leaves behind (a resource still held, say) is checked too.
    let (back, broken) = check_step(guard, generation, me, "thread end");
    guard = back;
    let Some(s) = guard.as_mut().filter(|s| s.generation == generation) else {
        return;
    };
    if let Some(what) = broken {
        s.halt(FailureKind::Invariant, &what);
        BATON.notify_all();
        return;
    }
    match s.choose(None) {
        Some(next) => s.current = Some(next),
        None if s.slots.iter().all(|x| x.state == State::Done) => s.current = None,
        None => s.halt_deadlocked(),
    }
    BATON.notify_all();
    ME.with(|m| m.set(None));
}

/// Runs one schedule of `scenario`, chosen by `strategy` from `seed`. `pct_steps` is PCT's
/// estimate of a schedule's length (where its change points fall).
///
/// # Errors
/// The schedule's failure.
pub fn run_one(
    scenario: Scenario,
    strategy: Strategy,
    seed: u64,
    pct_steps: u64,
    backtraces: bool,
) -> Result<RunStats, Failure> {
    let Scenario {
        sim,
        threads,
        check,
    } = scenario;
    let sim = Box::into_raw(Box::new(sim));
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst);
    let mut rng = Rng(seed);
    let n = threads.len() as u64;
    let depth = match strategy {
        Strategy::Pct { depth } => u64::from(depth.max(1)),
        Strategy::Random { .. } => 1,
    };
    // PCT: distinct random priorities above the change points' low ones.
    let mut priorities: Vec<u64> = (0..n).map(|i| depth + i).collect();
    for i in (1..priorities.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        priorities.swap(i, j);
    }
    let change_points = (1..depth)
        .map(|_| 1 + rng.below(pct_steps.max(1)))
        .collect();
    *RUNNING.lock().unwrap_or_else(PoisonError::into_inner) =
        format!("{}:{seed}", strategy.label());
    let main_state = PerThread::save();
    kernel::share();
    let mut bodies = Vec::new();
    let mut slots = Vec::new();
    for (i, t) in threads.into_iter().enumerate() {
        slots.push(Slot {
            name: t.name,
            state: State::Runnable,
            saved: PerThread::fresh(t.model_thread),
            priority: priorities[i],
            point: "start",
            backtrace: None,
        });
        bodies.push(t.body);
    }
    {
        let mut guard = lock();
        let mut schedule = Schedule {
            generation,
            slots,
            current: None,
            rng,
            strategy,
            steps: 0,
            switches: 0,
            blocks: 0,
            preemptions: 0,
            change_points,
            next_low: depth - 1,
            failure: None,
            halted: false,
            backtraces,
            interleaving: Vec::new(),
            step_check: STEP_CHECK
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            checks: 0,
        };
        schedule.current = schedule.choose(None);
        *guard = Some(schedule);
    }
    let ptr = SimPtr(sim);
    let handles: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            std::thread::Builder::new()
                .name(format!("ntsim-sched-{i}"))
                .spawn(move || thread_main(generation, i, ptr, body))
        })
        .collect();
    let spawned = handles.iter().all(Result::is_ok);
    let mut guard = lock();
    if !spawned {
        if let Some(s) = guard.as_mut() {
            s.halted = true;
            s.failure = Some((FailureKind::Panic, "could not start a thread".into()));
        }
        BATON.notify_all();
    }
    loop {
        let s = guard.as_ref();
        let over = s.is_none_or(|s| s.halted || s.slots.iter().all(|x| x.state == State::Done));
        if over {
            break;
        }
        guard = BATON.wait(guard).unwrap_or_else(PoisonError::into_inner);
    }
    let schedule = guard.take();
    drop(guard);
    BATON.notify_all();
    let Some(schedule) = schedule else {
        unreachable!("the schedule vanished while running")
    };
    let fail = |kind, report| Failure {
        kind,
        strategy,
        seed,
        report,
    };
    if schedule.halted {
        // Threads are parked inside the driver holding pointers into the model and the Sim:
        // both are leaked, and only the test lock is let go (the next test starts fresh).
        kernel::abandon_shared();
        // SAFETY: from Box::into_raw above; the parked threads never run again.
        unsafe { Box::from_raw(sim) }.abandon();
        let (kind, report) = schedule
            .failure
            .unwrap_or((FailureKind::Panic, "halted".into()));
        return Err(fail(kind, report));
    }
    for h in handles.into_iter().flatten() {
        let _ = h.join();
    }
    kernel::unshare();
    main_state.restore();
    // SAFETY: from Box::into_raw above; every thread that used it has finished.
    let sim = *unsafe { Box::from_raw(sim) };
    let checked = check(sim);
    let tail = schedule.report_tail();
    if let Some((kind, report)) = schedule.failure {
        return Err(fail(kind, format!("{report}\n{tail}")));
    }
    if let Err(what) = checked {
        return Err(fail(FailureKind::Invariant, format!("{what}\n{tail}")));
    }
    Ok(RunStats {
        steps: schedule.steps,
        switches: schedule.switches,
        blocks: schedule.blocks,
        checks: schedule.checks,
    })
}

/// PCT's estimate of a schedule's length in switch points (where its change points fall);
/// fixed, so that a seed alone replays a schedule. The scenarios pass 30 to 90.
pub const PCT_STEPS: u64 = 80;

/// What [`explore`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Explored {
    /// Schedules run.
    pub schedules: u64,
    /// Switch points passed in all.
    pub steps: u64,
    /// Baton moves in all.
    pub switches: u64,
    /// ERESOURCE waits in all.
    pub blocks: u64,
    /// Per-step invariant checks in all.
    pub checks: u64,
}

/// Schedules per scenario: `COWFAT_SCHEDULES`, else `default`.
#[must_use]
pub fn schedule_count(default: u64) -> u64 {
    std::env::var("COWFAT_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Explores `count` schedules of the scenario `make` builds (a fresh one per schedule): half
/// seeded random with `preemptions`, half PCT with `depth`, seeds derived from `base_seed`.
/// `COWFAT_SCHED_REPLAY=<strategy>:<seed>` runs that one schedule instead, with backtraces.
/// Stops at the first failure.
///
/// # Errors
/// The first failing schedule.
pub fn explore(
    name: &str,
    count: u64,
    base_seed: u64,
    preemptions: u32,
    depth: u32,
    mut make: impl FnMut() -> Scenario,
) -> Result<Explored, Failure> {
    explore_seeded(name, count, base_seed, preemptions, depth, |_| make())
}

/// [`explore`] for a scenario that is itself generated from the schedule's seed (a random
/// model: `make` gets the seed, so a replay regenerates the same threads and operations).
///
/// # Errors
/// The first failing schedule.
pub fn explore_seeded(
    name: &str,
    count: u64,
    base_seed: u64,
    preemptions: u32,
    depth: u32,
    mut make: impl FnMut(u64) -> Scenario,
) -> Result<Explored, Failure> {
    if let Ok(replay) = std::env::var("COWFAT_SCHED_REPLAY") {
        let parsed = replay
            .split_once(':')
            .and_then(|(s, seed)| Some((Strategy::parse(s)?, seed.parse::<u64>().ok()?)));
        if let Some((strategy, seed)) = parsed {
            eprintln!("{name}: replaying {replay}");
            let stats = run_one(make(seed), strategy, seed, PCT_STEPS, true)?;
            return Ok(Explored {
                schedules: 1,
                steps: stats.steps,
                switches: stats.switches,
                blocks: stats.blocks,
                checks: stats.checks,
            });
        }
    }
    let mut total = Explored::default();
    for i in 0..count {
        let strategy = if i % 2 == 0 {
            Strategy::Random { preemptions }
        } else {
            Strategy::Pct { depth }
        };
        let seed = Rng(base_seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D)).next_u64();
        let stats = run_one(make(seed), strategy, seed, PCT_STEPS, false).inspect_err(|f| {
            eprintln!("{name}: schedule {i} of {count} failed: {f}");
        })?;
        total.schedules += 1;
        total.steps += stats.steps;
        total.switches += stats.switches;
        total.blocks += stats.blocks;
        total.checks += stats.checks;
    }
    println!(
        "{name}: {} schedules explored (random, {preemptions} preemptions / PCT depth {depth}), \
         {} switch points, {} thread switches, {} ERESOURCE waits, {} invariant checks; seed \
         base {base_seed:#x}",
        total.schedules, total.steps, total.switches, total.blocks, total.checks
    );
    Ok(total)
}
