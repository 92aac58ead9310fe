//! Mapping an empty file.
//!
//! What each system promises:
//! - POSIX: `mmap` with length 0 fails (EINVAL), but a non-zero length larger than the file is
//!   allowed; its pages raise SIGBUS until the file grows to cover them, and then show the
//!   file's bytes.
//! - Windows: CreateFileMapping with maximum size 0 on an empty file fails with
//!   ERROR_FILE_INVALID (1006): there is nothing to make a section of.
//!
//! memmap2 turns a whole-file map of an empty file into an empty view on both (it never asks
//! the system for a zero-length mapping), so that is checked first; the explicit-length map
//! then shows the platform's own answer.

use std::fs::File;
use std::path::Path;

use crate::fileio;
use crate::mapping::PAGE;
use crate::report::{expect_bytes, expect_eq, Outcome, Step};

use super::Ctx;

pub fn map_empty_file(ctx: &Ctx, path: &Path) -> Outcome {
    fileio::create_with(path, b"").step("create an empty file")?;
    let file = fileio::open_rw(path).step("open read-write")?;

    let view = ctx.map(&file, 0, None).step("map the whole (empty) file")?;
    expect_eq(
        "length of a whole-file view of an empty file",
        0,
        view.len(),
    )?;
    view.unmap();
    let size = fileio::size(&file).step("query the size")?;
    expect_eq(
        "size after mapping an empty file (mapping never grows it)",
        0,
        size,
    )?;

    one_page_map_of_empty_file(ctx, &file)?;

    // Whatever the platform did above, a later map of the grown file shows its bytes.
    let mut view = ctx.map(&file, 0, None).step("map after the file grew")?;
    expect_bytes("view of the grown file", b"Jello", &view.read(0, 5))?;
    view.write(4, b"y");
    view.unmap();
    drop(file);
    expect_bytes("file after reopen", b"Jelly", &ctx.reread(path)?)
}

/// Linux: a one-page view of the empty file is allowed and comes alive when write() grows
/// the file under it (only bytes below the new end of file are touched).
#[cfg(not(windows))]
fn one_page_map_of_empty_file(ctx: &Ctx, file: &File) -> Outcome {
    let mut view = ctx
        .map(file, 0, Some(PAGE))
        .step("map one page of an empty file")?;
    fileio::write_at(file, 0, b"hello").step("write() \"hello\" into the empty file")?;
    expect_bytes(
        "early view after write() grew the file",
        b"hello",
        &view.read(0, 5),
    )?;
    view.write(0, b"J");
    let seen = fileio::read_at(file, 0, PAGE).step("read() after the view store")?;
    // A mapped store never extends the file: still 5 bytes.
    expect_bytes(
        "read() after storing 'J' through the early view",
        b"Jello",
        &seen,
    )?;
    view.unmap();
    Ok(())
}

/// Windows: a one-page view of an empty file is refused (ERROR_FILE_INVALID); the file is
/// then grown with WriteFile and given the same 'J' store through a view of the grown file.
#[cfg(windows)]
fn one_page_map_of_empty_file(ctx: &Ctx, file: &File) -> Outcome {
    const ERROR_FILE_INVALID: i32 = 1006;
    let refused = ctx.map(file, 0, Some(PAGE));
    let code = refused.as_ref().err().and_then(|e| e.raw_os_error());
    crate::report::expect(
        "CreateFileMapping of an empty file",
        code == Some(ERROR_FILE_INVALID),
        || {
            format!(
                "expected error {ERROR_FILE_INVALID}, saw {:?}",
                refused.map(|v| v.len())
            )
        },
    )?;
    fileio::write_at(file, 0, b"hello").step("WriteFile \"hello\" into the empty file")?;
    let mut view = ctx.map(file, 0, None).step("map the grown file")?;
    view.write(0, b"J");
    view.unmap();
    let seen = fileio::read_at(file, 0, PAGE).step("ReadFile after the view store")?;
    expect_bytes(
        "ReadFile after storing 'J' through the view",
        b"Jello",
        &seen,
    )
}
