//! Test-only: every write, length change and flush on the host files of the current thread,
//! so the crash tests can rebuild what a power cut would leave of an image file
//! (`crash_tests.rs`).

use std::cell::RefCell;

/// One operation on a host file.
#[derive(Debug, Clone)]
pub enum FileOp {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
    Flush,
}

thread_local! {
    static OPS: RefCell<Option<Vec<FileOp>>> = const { RefCell::new(None) };
}

/// Starts recording this thread's host file operations.
pub fn start() {
    OPS.with(|o| *o.borrow_mut() = Some(Vec::new()));
}

/// Stops recording and returns what was recorded.
pub fn stop() -> Vec<FileOp> {
    OPS.with(|o| o.borrow_mut().take()).unwrap_or_default()
}

/// Operations recorded so far.
pub fn len() -> usize {
    OPS.with(|o| o.borrow().as_ref().map_or(0, Vec::len))
}

pub(super) fn note(op: impl FnOnce() -> FileOp) {
    OPS.with(|o| {
        if let Some(ops) = o.borrow_mut().as_mut() {
            ops.push(op());
        }
    });
}
