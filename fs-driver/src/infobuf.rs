//! Building the information structures of query-information, directory enumeration and
//! volume information in the caller's buffer, at the offsets the NT structures define (taken
//! from `windows-sys` with `offset_of!`, so the layout is the header's).
//!
//! A reply is built whole in a vector, then as much as fits is copied out. Fixed-size classes
//! refuse a buffer smaller than the structure (`STATUS_INFO_LENGTH_MISMATCH`); classes ending
//! in a name return the part that fits with `STATUS_BUFFER_OVERFLOW`, as NT does.
//!
//! The vector grows fallibly (NT-26). The writers return nothing, so that building a reply
//! stays a list of field writes: a reply that could not grow remembers it, writes nothing more,
//! and is refused where it is consumed (`STATUS_INSUFFICIENT_RESOURCES`).

use alloc::vec::Vec;

use crate::nt::{self, NTSTATUS};

/// A reply being built.
#[derive(Debug, Default)]
pub struct Reply {
    /// The bytes (meaningful only while [`Reply::failed`] is false).
    pub bytes: Vec<u8>,
    /// A write found no memory: the reply is incomplete and must not reach the caller.
    failed: bool,
}

impl Reply {
    /// A zeroed reply of `len` bytes.
    #[must_use]
    pub fn zeroed(len: usize) -> Self {
        let mut reply = Self::default();
        reply.grow(len);
        reply
    }

    /// Whether a write found no memory.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The reply, or `STATUS_INSUFFICIENT_RESOURCES` when it could not be built whole.
    pub fn complete(&self) -> Result<&[u8], NTSTATUS> {
        if self.failed {
            Err(nt::STATUS_INSUFFICIENT_RESOURCES)
        } else {
            Ok(&self.bytes)
        }
    }

    /// Makes the reply at least `end` bytes long; false (and the reply failed) without memory.
    fn grow(&mut self, end: usize) -> bool {
        if self.failed {
            return false;
        }
        if self.bytes.len() < end {
            if self.bytes.try_reserve(end - self.bytes.len()).is_err() {
                self.failed = true;
                return false;
            }
            self.bytes.resize(end, 0);
        }
        true
    }

    /// Writes `v` at `at`.
    pub fn u8(&mut self, at: usize, v: u8) {
        if self.grow(at + 1) {
            self.bytes[at] = v;
        }
    }

    /// Writes `v` at `at` (little-endian).
    pub fn u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_le_bytes());
    }

    /// Writes `v` at `at`.
    pub fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes());
    }

    /// Writes `v` at `at`.
    pub fn i64(&mut self, at: usize, v: i64) {
        self.put(at, &v.to_le_bytes());
    }

    /// Writes `v` (a u64 that NT stores as LARGE_INTEGER) at `at`.
    pub fn u64(&mut self, at: usize, v: u64) {
        self.i64(at, i64::try_from(v).unwrap_or(i64::MAX));
    }

    /// Writes UTF-16 units at `at`.
    pub fn units(&mut self, at: usize, units: &[u16]) {
        for (i, u) in units.iter().enumerate() {
            self.u16(at + 2 * i, *u);
        }
    }

    /// Writes `text` as UTF-16 at `at` (no copy of it made first); returns its units.
    pub fn str_units(&mut self, at: usize, text: &str) -> usize {
        let mut count = 0;
        for (i, u) in text.encode_utf16().enumerate() {
            self.u16(at + 2 * i, u);
            count += 1;
        }
        count
    }

    /// Writes raw bytes at `at`.
    pub fn put(&mut self, at: usize, bytes: &[u8]) {
        if self.grow(at + bytes.len()) {
            self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
        }
    }

    /// Writes another reply at `at` (a failed one fails this one too).
    pub fn put_reply(&mut self, at: usize, other: &Reply) {
        if other.failed {
            self.failed = true;
        } else {
            self.put(at, &other.bytes);
        }
    }
}

/// `usize` to `u32` for lengths that fit by construction.
#[must_use]
pub fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Copies `reply` to the system buffer of `length` bytes. `fixed`: the size below which
/// nothing is returned (`STATUS_INFO_LENGTH_MISMATCH`); past it, a reply that does not fit is
/// cut with `STATUS_BUFFER_OVERFLOW`. Returns the status and `Information`.
///
/// # Safety
/// `buffer` is NULL or holds `length` writable bytes.
#[must_use]
pub unsafe fn copy_out(
    reply: &Reply,
    fixed: usize,
    buffer: *mut u8,
    length: usize,
) -> (NTSTATUS, usize) {
    if reply.failed {
        return (nt::STATUS_INSUFFICIENT_RESOURCES, 0);
    }
    if length < fixed {
        return (nt::STATUS_INFO_LENGTH_MISMATCH, 0);
    }
    let n = reply.bytes.len().min(length);
    if n > 0 {
        if buffer.is_null() {
            return (nt::STATUS_INVALID_PARAMETER, 0);
        }
        // SAFETY: the caller's contract: `length >= n` writable bytes.
        unsafe { core::ptr::copy_nonoverlapping(reply.bytes.as_ptr(), buffer, n) };
    }
    let status = if n < reply.bytes.len() {
        nt::STATUS_BUFFER_OVERFLOW
    } else {
        nt::STATUS_SUCCESS
    };
    (status, n)
}
