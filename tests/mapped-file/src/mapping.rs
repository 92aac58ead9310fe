//! Views of a file: the one place that maps memory.
//!
//! `memmap2` is `mmap`/`msync`/`munmap` on Unix and `CreateFileMapping`/`MapViewOfFile`/
//! `FlushViewOfFile`/`UnmapViewOfFile` on Windows, so everything above this module is the same
//! program on both systems.
//!
//! The tests change files behind live views on purpose (that is what coherence means), so a
//! view never hands out a slice: bytes are copied in and out by the methods below, each taking
//! a fresh borrow, and no reference into the mapping outlives one call.
//!
//! Callers must never touch a view beyond the file's current end of file rounded up to a page:
//! on Linux that raises SIGBUS and kills the program, so the scenarios only do it where the
//! platform promises it works.

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapMut, MmapOptions};

/// A read-write shared view of `len` bytes of a file, starting at `file_offset`.
pub struct View {
    map: MmapMut,
    file_offset: u64,
    /// Self-test only: silently lose writes through the view, like a broken file system that
    /// never picks up dirty mapped pages. Proves the scenarios would notice.
    drop_writes: bool,
}

impl View {
    /// Maps `len` bytes at `file_offset`; `None` maps from `file_offset` to the end of file.
    /// The offset need not be aligned: memmap2 maps from the aligned offset below it.
    pub fn map(file: &File, file_offset: u64, len: Option<usize>) -> io::Result<View> {
        let mut options = MmapOptions::new();
        options.offset(file_offset);
        if let Some(len) = len {
            options.len(len);
        }
        // SAFETY: the mapping is shared with the file system under test, which may change it
        // at any time (that is the point of the tests); `View` never exposes references into
        // it, only copies bytes in and out, and callers stay within the file's end of file.
        let map = unsafe { options.map_mut(file) }?;
        Ok(View {
            map,
            file_offset,
            drop_writes: false,
        })
    }

    /// Self-test hook: make every later `write` a no-op.
    pub fn lose_writes(mut self, lose: bool) -> View {
        self.drop_writes = lose;
        self
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn file_offset(&self) -> u64 {
        self.file_offset
    }

    /// Copies `len` bytes at view offset `at` out of the mapping.
    #[inline(never)]
    pub fn read(&self, at: usize, len: usize) -> Vec<u8> {
        self.map[at..at + len].to_vec()
    }

    /// Stores `bytes` at view offset `at` (a page fault and a dirty page, no system call).
    #[inline(never)]
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        if self.drop_writes {
            return;
        }
        self.map[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// msync(MS_SYNC) / FlushViewOfFile + FlushFileBuffers.
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }

    /// munmap / UnmapViewOfFile, without a flush first. Spelled out so scenarios read as the
    /// system calls they make.
    pub fn unmap(self) {
        drop(self);
    }
}

/// A read-only view: on Windows a PAGE_READONLY section, which the file system sees as a
/// section with no writers (NT-06).
pub struct ReadView {
    map: Mmap,
}

impl ReadView {
    pub fn map(file: &File, file_offset: u64, len: usize) -> io::Result<ReadView> {
        let mut options = MmapOptions::new();
        options.offset(file_offset).len(len);
        // SAFETY: as for `View::map`: bytes are only copied out, within the end of file.
        let map = unsafe { options.map(file) }?;
        Ok(ReadView { map })
    }

    #[inline(never)]
    pub fn read(&self, at: usize, len: usize) -> Vec<u8> {
        self.map[at..at + len].to_vec()
    }
}

/// The page size the scenarios lay their data out by. 4 KiB on every platform cowfat targets;
/// Windows' 64 KiB allocation granularity only constrains view offsets, which memmap2 handles.
pub const PAGE: usize = 4096;

/// Windows maps views at multiples of 64 KiB; the "non-zero offset" scenario uses it so that
/// the view really starts there on both systems.
pub const GRANULE: usize = 64 * 1024;
