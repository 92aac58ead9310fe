//! ntsim: a user-mode emulation of the parts of ntoskrnl that fs-driver imports, so that the
//! driver's real IRP code runs unmodified in host tests (NT-SEMANTICS.md section 6).
//!
//! On the host, windows-sys declares every kernel routine as a plain `extern "system"`
//! function; ntsim defines each one with `#[no_mangle]` and the windows-sys signature, so a
//! test binary that links fs-driver and ntsim runs the driver on this model.
//!
//! Layout:
//! - [`kernel`]: the model's state (one per test thread) and the [`trace`] of IRPs and
//!   callbacks tests assert on; safe Rust.
//! - Boundary modules, the only place with `unsafe` (raw IRPs, file objects, MDLs): [`ex`]
//!   (pool with tags and leak accounting, ERESOURCE, events, time), [`io`] (devices, VPB,
//!   IRP build/dispatch/complete, share access, file objects and their references), [`disk`]
//!   (the volume's target device over an fs-core `MemDevice`), [`fsrtl`] (filter callback
//!   registry and the section-creation path), [`cc`] (shared cache maps, copy read/write,
//!   flush, purge, lazy writer), [`mm`] (control areas per SOP, sections, views that fault
//!   page by page, dirty pages, image sections, memory pressure), [`worker`] (work items,
//!   timers and DPCs on a simulated clock).
//! - [`irql`]: IRQL per model thread and the special kernel APC that finishes a threaded IRP
//!   (NT-27).
//! - [`cost`]: disk requests, bytes, flushes and the driver's pool, counted per operation
//!   (issue 21's counted benchmark).
//! - [`api`]: the Win32/NT-like test API ([`api::Sim`]).
//!
//! Determinism: nothing runs in the background. The lazy writer, the modified page writer,
//! memory pressure, the timer clock and the system worker threads run only when a test steps
//! them. Where ntsim is unsure how Windows
//! behaves it takes the stricter choice (listed in the module docs).
//!
//! Concurrency: the model lives in a thread-local, and every [`api::Sim`] holds a global test
//! lock for its whole life, because the driver's own globals (`CFAT_DATA`) are process-wide.
//! Tests therefore run one at a time whatever `--test-threads` says. Within a test,
//! [`sched`] runs several simulated threads of the driver under a deterministic scheduler
//! (one at a time, switching at kernel calls that can block), with the model moved to a
//! shared home while they run.
#![deny(unsafe_code)]

pub mod api;
pub mod cc;
pub mod cost;
pub mod disk;
pub mod ex;
pub mod filelock;
pub mod fsrtl;
pub mod heap;
pub mod hostile;
pub mod invariants;
pub mod io;
pub mod irql;
pub mod kernel;
pub mod mm;
pub mod name;
pub mod notify;
pub mod requests;
pub mod rw;
pub mod sched;
pub mod seh;
pub mod snapshot;
pub mod stack;
pub mod trace;
pub mod worker;

pub use api::{Handle, Open, Section, Sim, View};
pub use trace::{Event, FoId};
