//! Invariants checked at every switch point of a schedule (issue 19, [`crate::sched`]): what
//! must hold whenever the running thread stops at a kernel call, whatever the interleaving.
//!
//! [`kernel_model`] checks ntsim's own model of the kernel against itself and the threads:
//! every ERESOURCE's owner records and published fields agree, a thread blocked on one waits
//! for a real holder, a finished thread holds nothing and left its IRQL and critical region
//! as it found them, no thread is at DISPATCH_LEVEL across a switch, a user thread holding an
//! ERESOURCE is in a critical region, and Mm's control areas, Cc's shared cache maps and
//! the `SECTION_OBJECT_POINTERS` that name them agree (dirty Cc pages lie below Cc's
//! FileSize; the SOP is still in live pool).
//!
//! [`driver`] reads the driver's FCBs through its own types (as [`crate::snapshot`] does) and
//! checks them against the file objects the model knows: while no thread holds the FCB's main
//! resource or its VCB's resource exclusive (the counts change only under those), its open
//! count is the number of attached file objects not yet cleaned up, its reference count at
//! least the number still referenced, and the file object Mm's control area of its stream
//! references points at it.
#![allow(unsafe_code)]

use std::fmt::Write as _;

use fs_driver::fcb::Fcb;
use fs_driver::strucsup::tags;
use windows_sys::Wdk::Foundation::ERESOURCE;

use crate::kernel::{self, Kernel};
use crate::sched::{Step, StepCheck, StepState};

/// Bytes in a page.
const PAGE: u64 = 4096;

/// Both sets of checks: the one the scenarios install ([`crate::sched::set_step_check`]).
#[must_use]
pub fn standard() -> StepCheck {
    std::sync::Arc::new(|step: &Step<'_>| {
        kernel_model(step)?;
        driver(step)
    })
}

/// Is `thread` a user thread (the test's, or a scenario's above the system threads)?
fn user_thread(thread: u32) -> bool {
    thread == 0 || thread > crate::worker::DPC_THREAD
}

fn first_problem(problems: Vec<String>) -> Result<(), String> {
    let mut iter = problems.into_iter();
    let Some(first) = iter.next() else {
        return Ok(());
    };
    let mut out = first;
    let more = iter.count();
    if more > 0 {
        let _ = write!(out, " (and {more} more)");
    }
    Err(out)
}

/// ntsim's kernel model against itself and the threads' states.
///
/// # Errors
/// The first broken invariant.
pub fn kernel_model(step: &Step<'_>) -> Result<(), String> {
    let problems = kernel::with(|k| {
        let mut problems = Vec::new();
        resources(k, step, &mut problems);
        threads(k, step, &mut problems);
        sections(k, &mut problems);
        problems
    });
    first_problem(problems)
}

fn resources(k: &Kernel, step: &Step<'_>, problems: &mut Vec<String>) {
    for (&address, r) in &k.resources {
        let name = r.kind.name();
        if let Some((owner, count)) = r.exclusive {
            if count == 0 {
                problems.push(format!(
                    "{name} {address:#x}: exclusive owner {owner} count 0"
                ));
            }
            if !r.shared.is_empty() {
                problems.push(format!(
                    "{name} {address:#x}: exclusive to {owner} and shared by {:?}",
                    r.shared.keys().collect::<Vec<_>>()
                ));
            }
        }
        if let Some((t, _)) = r.shared.iter().find(|(_, n)| **n == 0) {
            problems.push(format!("{name} {address:#x}: shared owner {t} count 0"));
        }
        if r.first_shared.is_some_and(|t| !r.shared.contains_key(&t)) {
            problems.push(format!(
                "{name} {address:#x}: OwnerEntry names a thread that does not hold it"
            ));
        }
        let entries = u32::from(r.exclusive.is_some()) + r.shared.len() as u32;
        // SAFETY: an initialised ERESOURCE (ExDeleteResourceLite removes it from the model
        // before its memory goes); ntsim keeps its public fields.
        let published = unsafe { &*(address as *const ERESOURCE) };
        // SAFETY: `Flag` spans the union.
        let flag = unsafe { published.Anonymous1.Flag };
        let exclusive_bit = flag & crate::ex::RESOURCE_OWNED_EXCLUSIVE != 0;
        if published.ActiveEntries != entries || exclusive_bit != r.exclusive.is_some() {
            problems.push(format!(
                "{name} {address:#x}: published ActiveEntries {} / exclusive {exclusive_bit}, \
                 the owner records say {entries} / {}",
                published.ActiveEntries,
                r.exclusive.is_some()
            ));
        }
        // A thread that finished holds nothing (unless a live one runs as the same thread).
        for t in step.threads.iter().filter(|t| t.state == StepState::Done) {
            let live_twin = step
                .threads
                .iter()
                .any(|o| o.state != StepState::Done && o.model_thread == t.model_thread);
            if !live_twin && r.held_by(t.model_thread) {
                problems.push(format!(
                    "thread '{}' (model thread {}) ended holding the {name} {address:#x}",
                    t.name, t.model_thread
                ));
            }
        }
    }
}

fn threads(k: &Kernel, step: &Step<'_>, problems: &mut Vec<String>) {
    for t in step.threads {
        if t.irql >= crate::irql::DISPATCH_LEVEL {
            problems.push(format!(
                "thread '{}' is at {} across a switch",
                t.name,
                crate::irql::name(t.irql)
            ));
        }
        if t.state == StepState::Done
            && (t.irql != crate::irql::PASSIVE_LEVEL || t.critical_region != 0)
        {
            problems.push(format!(
                "thread '{}' ended at {} with critical region depth {}",
                t.name,
                crate::irql::name(t.irql),
                t.critical_region
            ));
        }
        if let StepState::Blocked {
            resource,
            exclusive,
        } = t.state
        {
            let me = t.model_thread;
            let holder = k.resources.get(&resource).is_some_and(|r| {
                let other_exclusive = r.exclusive.is_some_and(|(o, _)| o != me);
                let other_shared = r.shared.keys().any(|&o| o != me);
                other_exclusive || (exclusive && other_shared)
            });
            if !holder {
                problems.push(format!(
                    "thread '{}' waits for {resource:#x}, which no other thread holds in a \
                     conflicting way (a lost wake-up)",
                    t.name
                ));
            }
        }
        // A user thread holding an ERESOURCE must not be suspendable by an APC.
        if user_thread(t.model_thread)
            && t.state != StepState::Done
            && t.critical_region <= 0
            && t.irql == crate::irql::PASSIVE_LEVEL
        {
            if let Some((address, r)) = k.resources.iter().find(|(_, r)| r.held_by(t.model_thread))
            {
                problems.push(format!(
                    "user thread '{}' holds the {} {address:#x} outside a critical region at \
                     PASSIVE_LEVEL",
                    t.name,
                    r.kind.name()
                ));
            }
        }
    }
}

/// Is `address` inside a live pool block?
fn in_live_pool(k: &Kernel, address: usize) -> bool {
    k.pool
        .range(..=address)
        .next_back()
        .is_some_and(|(start, block)| address < start + block.size)
}

fn sections(k: &Kernel, problems: &mut Vec<String>) {
    for (&sop, ca) in &k.control_areas {
        if !in_live_pool(k, sop as usize) {
            problems.push(format!(
                "Mm's control area names SECTION_OBJECT_POINTERS {sop:p}, which are no longer \
                 in live pool (their FCB was freed)"
            ));
            continue;
        }
        // SAFETY: the SOP lies in a live pool block (checked above).
        let pointers = unsafe { &*sop };
        let (data, cache_map) = (pointers.DataSectionObject, pointers.SharedCacheMap);
        if data.cast_const() != std::ptr::from_ref::<kernel::ControlArea>(ca).cast() {
            problems.push(format!(
                "SECTION_OBJECT_POINTERS {sop:p}: DataSectionObject {data:p} is not Mm's \
                 control area of the stream"
            ));
        }
        if cache_map.is_null() != ca.cache.is_none() {
            problems.push(format!(
                "SECTION_OBJECT_POINTERS {sop:p}: SharedCacheMap {cache_map:p} while Cc {} a \
                 shared cache map",
                if ca.cache.is_some() { "has" } else { "has no" }
            ));
        }
        if !k.file_objects.contains_key(&ca.file_object) {
            problems.push(format!(
                "the control area of {sop:p} references a file object that is gone"
            ));
        }
        for id in ca.views.keys() {
            if k.views.get(id).is_none_or(|(s, _)| *s != sop) {
                problems.push(format!("view {id} of {sop:p} is not in Mm's view table"));
            }
        }
        let Some(cache) = &ca.cache else {
            continue;
        };
        for &fo in &cache.private {
            // SAFETY: checked to be a live file object of the model before it is read.
            let live =
                k.file_objects.contains_key(&fo) && !unsafe { (*fo).PrivateCacheMap }.is_null();
            if !live {
                problems.push(format!(
                    "Cc's shared cache map of {sop:p} lists file object {fo:p} with no private \
                     cache map"
                ));
            }
        }
        let size = u64::try_from(cache.file_size).unwrap_or(0);
        if let Some((index, _)) = ca
            .pages
            .iter()
            .find(|(index, p)| p.cc_dirty && **index * PAGE >= size)
        {
            problems.push(format!(
                "{sop:p}: page {index} is dirty in Cc beyond Cc's FileSize {size}"
            ));
        }
    }
}

/// The driver's FCBs against the file objects and the model's sections.
///
/// # Errors
/// The first broken invariant.
pub fn driver(_step: &Step<'_>) -> Result<(), String> {
    let problems = kernel::with(|k| {
        let mut problems = Vec::new();
        for (&address, block) in &k.pool {
            if block.tag != tags::TAG_FCB {
                continue;
            }
            // SAFETY: a live FCB pool block (FCBs are written whole before any kernel call
            // that could switch threads, and freed after their resources are deleted).
            let fcb = unsafe { &*(address as *const Fcb) };
            fcb_against_model(k, address, fcb, &mut problems);
        }
        problems
    });
    first_problem(problems)
}

fn fcb_against_model(k: &Kernel, address: usize, fcb: &Fcb, problems: &mut Vec<String>) {
    let main = fcb.resource() as usize;
    let Some(main_state) = k.resources.get(&main) else {
        // Being built or torn down: its resources are not initialised.
        return;
    };
    // SAFETY: only the field's address is taken (the VCB outlives its FCBs).
    let vcb_resource = unsafe { std::ptr::addr_of!((*fcb.vcb).resource) } as usize;
    let vcb_exclusive = k
        .resources
        .get(&vcb_resource)
        .is_some_and(|r| r.exclusive.is_some());
    let sop = fcb.section_object_pointers();
    if let Some(ca) = k.control_areas.get(&sop) {
        if k.file_objects.contains_key(&ca.file_object) {
            // SAFETY: a live file object of the model.
            let context = unsafe { (*ca.file_object).FsContext } as usize;
            if context != address {
                problems.push(format!(
                    "FCB {address:#x}: Mm's control area of its stream references a file \
                     object of {context:#x}"
                ));
            }
        }
    }
    if main_state.exclusive.is_some() || vcb_exclusive {
        return;
    }
    let (open, references) = (fcb.open_count.get(), fcb.reference_count.get());
    let mut uncleaned = 0u32;
    let mut referenced = 0u32;
    for (&fo, record) in &k.file_objects {
        // SAFETY: a live file object of the model.
        let object = unsafe { &*fo };
        let (context, flags) = (object.FsContext as usize, object.Flags);
        if context != address {
            continue;
        }
        if flags & fs_driver::nt::FO_CLEANUP_COMPLETE == 0 {
            uncleaned += 1;
        }
        if record.refs > 0 {
            referenced += 1;
        }
    }
    if open != uncleaned || references < referenced || open > references {
        problems.push(format!(
            "FCB {address:#x}: open count {open}, reference count {references}; the model has \
             {uncleaned} file objects on it not cleaned up, {referenced} still referenced"
        ));
    }
}

/// A test's deliberate breakage, to show the checks can fail: adds `by` to the open count of
/// every FCB with handles open (as a cleanup that forgot its decrement would leave it).
pub fn corrupt_open_counts_for_test(by: u32) {
    kernel::with(|k| {
        for (&address, block) in &k.pool {
            if block.tag != tags::TAG_FCB {
                continue;
            }
            // SAFETY: a live FCB pool block; the counter is an atomic the driver exposes, and
            // the caller holds the baton (no driver thread runs).
            let fcb = unsafe { &*(address as *const Fcb) };
            if fcb.open_count.get() > 0 {
                fcb.open_count.set(fcb.open_count.get() + by);
            }
        }
    });
}
