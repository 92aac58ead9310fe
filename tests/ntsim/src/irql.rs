//! IRQL and kernel APCs per model thread (NT-27).
//!
//! Every model thread has an IRQL: PASSIVE_LEVEL normally, APC_LEVEL while Mm or Cc has it
//! deliver a paging read or write (a fault that misses, the lazy writer's flush, the mapped
//! and modified page writers) or drops the last reference of a file object (the close that
//! follows), DISPATCH_LEVEL while the disk's "DPC" completes requests it pended.
//!
//! A threaded IRP (`IoBuildSynchronousFsdRequest`, `IoBuildDeviceIoControlRequest`) is
//! finished by the I/O manager in a special kernel APC queued to the thread that built it
//! (`IopCompleteRequest`: status block, event, free). Special kernel APCs are not held off by
//! a critical region (`KeEnterCriticalRegion` blocks normal kernel APCs only), but nothing is
//! delivered to a thread at APC_LEVEL or above: the APC waits until the thread is back at
//! PASSIVE_LEVEL. So a thread at APC_LEVEL that waits for a threaded IRP's event waits forever
//! on Windows; here that is a bug check, named as such.
//!
//! Stricter than Windows (where Learn is loose): both IoBuild* routines that make threaded
//! IRPs bug-check above PASSIVE_LEVEL (Learn: "IRQL = PASSIVE_LEVEL"; an APC_LEVEL caller can
//! only hang or, if the request completes at once, have the APC write its status block and
//! event after its frame is gone).
#![allow(unsafe_code)]

use windows_sys::Wdk::Foundation::IRP;

use crate::ex::bugcheck;
use crate::kernel;

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: u8 = 1;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;

/// The name of an IRQL, for messages.
#[must_use]
pub fn name(irql: u8) -> &'static str {
    match irql {
        PASSIVE_LEVEL => "PASSIVE_LEVEL",
        APC_LEVEL => "APC_LEVEL",
        DISPATCH_LEVEL => "DISPATCH_LEVEL",
        _ => "an IRQL above DISPATCH_LEVEL",
    }
}

/// A special kernel APC queued to a model thread: the second stage of a threaded IRP's
/// completion.
#[derive(Clone, Copy, Debug)]
pub struct CompletionApc {
    /// The thread the IRP belongs to (the one that built it).
    pub thread: u32,
    /// The completed IRP (freed by the APC).
    pub irp: *mut IRP,
    /// Its final status and information.
    pub status: i32,
    /// Its information.
    pub information: usize,
}

/// The current thread's IRQL.
#[must_use]
pub fn current() -> u8 {
    kernel::with(|k| k.irql)
}

/// Raises the current thread's IRQL to `level`; returns the old one (`KeRaiseIrql`).
pub fn raise(level: u8) -> u8 {
    kernel::with(|k| {
        let old = k.irql;
        if level < old {
            bugcheck(&format!(
                "IRQL_NOT_GREATER_OR_EQUAL: raising IRQL from {} to {}",
                name(old),
                name(level)
            ));
        }
        k.irql = level;
        old
    })
}

/// Lowers the current thread's IRQL to `old` (`KeLowerIrql`); back at PASSIVE_LEVEL, the
/// thread's queued kernel APCs run.
pub fn lower(old: u8) {
    kernel::with(|k| {
        if old > k.irql {
            bugcheck(&format!(
                "IRQL_NOT_LESS_OR_EQUAL: lowering IRQL from {} to {}",
                name(k.irql),
                name(old)
            ));
        }
        k.irql = old;
    });
    if old == PASSIVE_LEVEL {
        deliver_kernel_apcs();
    }
}

/// Runs `f` at APC_LEVEL (or the current IRQL if higher), as Mm and Cc deliver paging I/O and
/// their last file object dereferences.
pub fn at_apc_level<R>(f: impl FnOnce() -> R) -> R {
    let old = raise(APC_LEVEL.max(current()));
    let result = f();
    lower(old);
    result
}

/// Records a dispatch to a file system at APC_LEVEL or above (what tests assert on).
pub(crate) fn note_dispatch(major: u8, flags: u32) {
    kernel::with(|k| {
        if k.irql >= APC_LEVEL {
            k.apc_level_dispatches.push((major, flags));
        }
    });
}

/// A threaded IRP may only be built at PASSIVE_LEVEL.
pub(crate) fn check_threaded_build(routine: &str) {
    let irql = current();
    if irql != PASSIVE_LEVEL {
        bugcheck(&format!(
            "NT-27 IRQL_NOT_LESS_OR_EQUAL: {routine} called at {}: it is for PASSIVE_LEVEL \
             only (its completion is a special kernel APC that cannot run above \
             PASSIVE_LEVEL; on Windows this thread hangs or its stack is written after the \
             caller returned). Use IoAllocateIrp with a completion routine.",
            name(irql)
        ));
    }
}

/// Queues the second stage of a threaded IRP's completion to its thread, and delivers it at
/// once if that is the current thread at PASSIVE_LEVEL (the APC interrupt).
pub(crate) fn queue_completion_apc(apc: CompletionApc) {
    kernel::with(|k| k.kernel_apcs.push(apc));
    deliver_kernel_apcs();
}

/// Runs the current thread's queued kernel APCs if it is at PASSIVE_LEVEL.
pub(crate) fn deliver_kernel_apcs() {
    loop {
        let apc = kernel::with(|k| {
            if k.irql != PASSIVE_LEVEL {
                return None;
            }
            let thread = k.thread;
            let at = k.kernel_apcs.iter().position(|a| a.thread == thread)?;
            Some(k.kernel_apcs.remove(at))
        });
        let Some(apc) = apc else {
            return;
        };
        // SAFETY: a threaded IRP completed and not yet finished; the APC finishes it once.
        unsafe { crate::io::finish_threaded(apc.irp, apc.status, apc.information) };
    }
}

/// Does the current thread have kernel APCs queued that it cannot take at its IRQL?
#[must_use]
pub(crate) fn apcs_blocked() -> bool {
    kernel::with(|k| {
        let thread = k.thread;
        k.irql != PASSIVE_LEVEL && k.kernel_apcs.iter().any(|a| a.thread == thread)
    })
}
