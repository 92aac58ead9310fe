//! Where views sit in a file: at a non-zero offset, across page boundaries, and next to data
//! written past their end. These catch off-by-a-page mistakes in paging I/O (wrong file offset
//! for a page, a partial last page, a write that extends the file beside a view).

use std::path::Path;

use crate::fileio::{self, pattern};
use crate::mapping::{GRANULE, PAGE};
use crate::report::{expect_bytes, expect_eq, Outcome, Step};

use super::Ctx;

fn put(model: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if model.len() < at + bytes.len() {
        model.resize(at + bytes.len(), 0);
    }
    model[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Views starting at 64 KiB (a real view offset on Windows too) and at an unaligned offset.
pub fn nonzero_offset(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(10, 2 * GRANULE + 3 * PAGE);
    fileio::create_with(path, &model).step("create a 140 KiB file")?;
    let file = fileio::open_rw(path).step("open read-write")?;

    let mut at_granule = ctx
        .map(&file, GRANULE as u64, Some(2 * PAGE))
        .step("map at 64 KiB")?;
    let want = &model[GRANULE..GRANULE + 2 * PAGE];
    expect_bytes("view at 64 KiB", want, &at_granule.read(0, 2 * PAGE))?;
    at_granule.write(PAGE + 10, b"granule");
    put(&mut model, GRANULE + PAGE + 10, b"granule");
    let seen = fileio::read_at(&file, (GRANULE + PAGE + 10) as u64, 7).step("read()")?;
    expect_bytes(
        "read() of a store through the 64 KiB view",
        b"granule",
        &seen,
    )?;

    let unaligned = PAGE + 100;
    let mut odd = ctx
        .map(&file, unaligned as u64, Some(200))
        .step("map at 4196")?;
    expect_bytes(
        "view at 4196",
        &model[unaligned..unaligned + 200],
        &odd.read(0, 200),
    )?;
    odd.write(0, b"unaligned");
    put(&mut model, unaligned, b"unaligned");

    let tail_at = 2 * GRANULE + PAGE;
    let tail = ctx
        .map(&file, tail_at as u64, None)
        .step("map the last two pages")?;
    expect_eq("length of a view to the end of file", 2 * PAGE, tail.len())?;
    expect_bytes(
        "view of the last two pages",
        &model[tail_at..],
        &tail.read(0, 2 * PAGE),
    )?;

    for view in [at_granule, odd, tail] {
        view.unmap();
    }
    drop(file);
    expect_bytes(
        "whole file (nothing landed at the wrong offset)",
        &model,
        &ctx.reread(path)?,
    )
}

/// Stores and write()s of 6 bytes straddling every page boundary of an 8-page-and-a-bit file,
/// alternating between the view and write(), plus the very last byte.
pub fn page_boundaries(ctx: &Ctx, path: &Path) -> Outcome {
    let size = 8 * PAGE + 123;
    let mut model = pattern(11, size);
    fileio::create_with(path, &model).step("create an 8-page-and-a-bit file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let mut view = ctx.map(&file, 0, None).step("map the whole file")?;
    for k in 1..=8 {
        let at = k * PAGE - 3;
        let bytes = format!("<{k:04}>");
        if k % 2 == 0 {
            view.write(at, bytes.as_bytes());
        } else {
            fileio::write_at(&file, at as u64, bytes.as_bytes()).step("write() across a page")?;
        }
        put(&mut model, at, bytes.as_bytes());
    }
    view.write(size - 1, b"!");
    put(&mut model, size - 1, b"!");

    expect_bytes("whole view", &model, &view.read(0, size))?;
    let seen = fileio::read_at(&file, 0, size + 10).step("read() the whole file")?;
    expect_bytes("read() of the whole file (size unchanged)", &model, &seen)?;
    view.flush().step("msync / FlushViewOfFile")?;
    view.unmap();
    drop(file);
    expect_bytes("file after reopen", &model, &ctx.reread(path)?)
}

/// write() beyond the end of a live view (extending the file), then map again.
pub fn write_past_mapped_end(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(12, 2 * PAGE);
    fileio::create_with(path, &model).step("create a 2-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let mut view = ctx.map(&file, 0, None).step("map the whole file")?;

    fileio::write_at(&file, 2 * PAGE as u64 - 2, b"XYZW").step("write() across the view's end")?;
    put(&mut model, 2 * PAGE - 2, b"XYZW");
    fileio::write_at(&file, 2 * PAGE as u64 + 100, b"tail").step("write() past the view")?;
    put(&mut model, 2 * PAGE + 100, b"tail");
    expect_bytes(
        "view's last bytes after the write()",
        b"XY",
        &view.read(2 * PAGE - 2, 2),
    )?;

    view.write(PAGE + 5, b"still");
    put(&mut model, PAGE + 5, b"still");
    let seen = fileio::read_at(&file, 0, 3 * PAGE).step("read() the whole file")?;
    expect_bytes("read() after the writes and the view store", &model, &seen)?;
    view.unmap();

    let again = ctx.map(&file, 0, None).step("map the grown file")?;
    expect_eq("length of the new view", model.len(), again.len())?;
    expect_bytes(
        "new view (zeros in the gap, then \"tail\")",
        &model,
        &again.read(0, model.len()),
    )?;
    again.unmap();
    drop(file);
    expect_bytes("file after reopen", &model, &ctx.reread(path)?)
}
