//! Coherence between views and read()/write().
//!
//! Both systems promise it for ordinary (cached) I/O: Linux has one page cache per inode that
//! both paths use; on Windows the cache manager and user views share the stream's one data
//! section (NT-03). A file system breaks it by keeping a second copy of the data somewhere.

use std::path::Path;

use crate::fileio::{self, pattern};
use crate::mapping::PAGE;
use crate::report::{expect_bytes, Outcome, Step};

use super::Ctx;

/// Writes that land mid-page, across a page boundary and at the last byte of the file.
const EDITS: &[(usize, &[u8])] = &[
    (100, b"HELLO"),
    (PAGE - 4, b"BOUNDARY"),
    (3 * PAGE - 3, b"END"),
];

const SIZE: usize = 3 * PAGE;

fn apply(model: &mut [u8], at: usize, bytes: &[u8]) {
    model[at..at + bytes.len()].copy_from_slice(bytes);
}

/// write() is visible in a live view at once, with no flush of any kind.
pub fn write_visible_in_map(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(1, SIZE);
    fileio::create_with(path, &model).step("create a 3-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let view = ctx.map(&file, 0, None).step("map the whole file")?;
    for &(at, bytes) in EDITS {
        fileio::write_at(&file, at as u64, bytes).step("write()")?;
        apply(&mut model, at, bytes);
        let what = format!("view at {at} after write() there");
        expect_bytes(&what, bytes, &view.read(at, bytes.len()))?;
    }
    expect_bytes("whole view after the writes", &model, &view.read(0, SIZE))?;
    view.unmap();
    drop(file);
    expect_bytes("file after reopen", &model, &ctx.reread(path)?)
}

/// Writes through a view, msync, then a second handle's read() sees them (view still live).
pub fn map_visible_after_flush(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(2, SIZE);
    fileio::create_with(path, &model).step("create a 3-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let mut view = ctx.map(&file, 0, None).step("map the whole file")?;
    for &(at, bytes) in EDITS {
        view.write(at, bytes);
        apply(&mut model, at, bytes);
    }
    view.flush().step("msync / FlushViewOfFile")?;
    let other = fileio::open_rw(path).step("open a second handle")?;
    let seen = fileio::read_at(&other, 0, SIZE).step("read() on the second handle")?;
    expect_bytes("read() after msync, view still mapped", &model, &seen)?;
    view.unmap();
    drop((file, other));
    expect_bytes("file after unmap and reopen", &model, &ctx.reread(path)?)
}

/// Writes through a view, munmap without msync, then read() sees them.
pub fn map_visible_after_unmap(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(3, SIZE);
    fileio::create_with(path, &model).step("create a 3-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let mut view = ctx.map(&file, 0, None).step("map the whole file")?;
    for &(at, bytes) in EDITS {
        view.write(at, bytes);
        apply(&mut model, at, bytes);
    }
    view.unmap();
    let seen = fileio::read_at(&file, 0, SIZE).step("read() on the mapping handle")?;
    expect_bytes("read() after munmap without msync", &model, &seen)?;
    drop(file);
    expect_bytes("file after reopen", &model, &ctx.reread(path)?)
}

/// Two views from two handles: a store through one is seen by the other at once.
pub fn two_views(ctx: &Ctx, path: &Path) -> Outcome {
    let model = pattern(4, SIZE);
    fileio::create_with(path, &model).step("create a 3-page file")?;
    let first = fileio::open_rw(path).step("open the first handle")?;
    let second = fileio::open_rw(path).step("open the second handle")?;
    let mut a = ctx
        .map(&first, 0, None)
        .step("map through the first handle")?;
    let mut b = ctx
        .map(&second, 0, None)
        .step("map through the second handle")?;
    a.write(PAGE + 10, b"from-a");
    expect_bytes(
        "view b after a store in view a",
        b"from-a",
        &b.read(PAGE + 10, 6),
    )?;
    b.write(2 * PAGE - 3, b"from-b");
    expect_bytes(
        "view a after a store in view b",
        b"from-b",
        &a.read(2 * PAGE - 3, 6),
    )?;
    a.unmap();
    b.unmap();
    drop((first, second));
    let seen = ctx.reread(path)?;
    expect_bytes(
        "file bytes written via view a",
        b"from-a",
        &seen[PAGE + 10..PAGE + 16],
    )?;
    expect_bytes(
        "file bytes written via view b",
        b"from-b",
        &seen[2 * PAGE - 3..2 * PAGE + 3],
    )
}
