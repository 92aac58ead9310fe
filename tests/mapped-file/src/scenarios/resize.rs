//! Changing a file's size while a view of it is live.
//!
//! Extending is allowed on both systems. Shrinking is where they differ:
//! - Windows refuses to cut a file under a user view: SetEndOfFile fails with
//!   ERROR_USER_MAPPED_FILE (1224), from the file system's MmCanFileBeTruncated check (NT-10).
//! - Linux allows it; the pages past the new end leave the mapping (touching them raises
//!   SIGBUS, so we never do) and the rest of the last partial page reads as zeros.
//!
//! Either way, bytes cut off by a shrink must not come back when the file grows again: that
//! is where a file system that reuses clusters without zeroing them shows stale data.

use std::fs::File;
use std::path::Path;

use crate::fileio::{self, pattern};
use crate::mapping::PAGE;
use crate::report::{expect_bytes, expect_eq, Failure, Outcome, Step};

use super::Ctx;

fn size_of(file: &File) -> Result<u64, Failure> {
    fileio::size(file).step("query the file size")
}

/// Grow the file under a live 2-page view; the view keeps working, the new part is zeros.
pub fn extend_with_live_map(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(6, 2 * PAGE);
    fileio::create_with(path, &model).step("create a 2-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let mut view = ctx.map(&file, 0, None).step("map the whole file")?;

    file.set_len(5 * PAGE as u64)
        .step("extend to 5 pages under a live view")?;
    model.resize(5 * PAGE, 0);
    expect_eq("size after extend", 5 * PAGE as u64, size_of(&file)?)?;
    let tail = fileio::read_at(&file, 2 * PAGE as u64, 3 * PAGE).step("read the new part")?;
    expect_bytes("read() of the extended part", &model[2 * PAGE..], &tail)?;

    view.write(PAGE + 1, b"still-live");
    model[PAGE + 1..PAGE + 11].copy_from_slice(b"still-live");
    let seen = fileio::read_at(&file, PAGE as u64 + 1, 10).step("read() the view store")?;
    expect_bytes("read() of a view store after extend", b"still-live", &seen)?;

    fileio::write_at(&file, 4 * PAGE as u64 + 10, b"tail").step("write() in the new part")?;
    model[4 * PAGE + 10..4 * PAGE + 14].copy_from_slice(b"tail");
    let bigger = ctx.map(&file, 0, None).step("map the extended file")?;
    expect_bytes(
        "second view of the extended file",
        &model,
        &bigger.read(0, 5 * PAGE),
    )?;

    bigger.unmap();
    view.unmap();
    drop(file);
    expect_bytes("file after reopen", &model, &ctx.reread(path)?)
}

/// Shrink a 3-page file to 1 page + 100 bytes under a live view, then grow it back.
pub fn shrink_with_live_map(ctx: &Ctx, path: &Path) -> Outcome {
    const NEW_END: usize = PAGE + 100;
    let original = pattern(7, 3 * PAGE);
    fileio::create_with(path, &original).step("create a 3-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let view = ctx.map(&file, 0, None).step("map the whole file")?;

    let view = shrink_under_view(&file, view, NEW_END as u64)?;
    expect_eq("size after shrink", NEW_END as u64, size_of(&file)?)?;
    let mut model = original[..NEW_END].to_vec();
    let seen = fileio::read_at(&file, 0, 3 * PAGE).step("read() after shrink")?;
    expect_bytes("read() after shrink", &model, &seen)?;

    file.set_len(3 * PAGE as u64)
        .step("extend back to 3 pages")?;
    model.resize(3 * PAGE, 0);
    let seen = fileio::read_at(&file, 0, 3 * PAGE).step("read() after growing back")?;
    expect_bytes(
        "read() after growing back (cut bytes must read as zeros)",
        &model,
        &seen,
    )?;
    if let Some(view) = view {
        // Linux: the old view covers the regrown pages again; they must be zeros too.
        expect_bytes(
            "old view after growing back",
            &model,
            &view.read(0, 3 * PAGE),
        )?;
        view.unmap();
    }
    let fresh = ctx.map(&file, 0, None).step("map after growing back")?;
    expect_bytes(
        "new view after growing back",
        &model,
        &fresh.read(0, 3 * PAGE),
    )?;
    fresh.unmap();
    drop(file);
    expect_bytes("file after reopen", &model, &ctx.reread(path)?)
}

/// Linux: the shrink succeeds with the view live; the view is checked and handed back.
#[cfg(not(windows))]
fn shrink_under_view(
    file: &File,
    view: crate::mapping::View,
    new_end: u64,
) -> Result<Option<crate::mapping::View>, Failure> {
    file.set_len(new_end)
        .step("shrink under a live view (Linux allows it)")?;
    let end = new_end as usize;
    let original = pattern(7, end);
    expect_bytes("view below the new end", &original, &view.read(0, end))?;
    // The rest of the last page is still mapped and must read as zeros; the pages after it
    // would raise SIGBUS and are not touched.
    let rest = view.read(end, PAGE - end % PAGE);
    expect_bytes(
        "view past the new end in the last page",
        &vec![0; rest.len()],
        &rest,
    )?;
    Ok(Some(view))
}

/// Windows: the shrink must fail with ERROR_USER_MAPPED_FILE while the view exists, leave the
/// size alone, and succeed once the view is gone.
#[cfg(windows)]
fn shrink_under_view(
    file: &File,
    view: crate::mapping::View,
    new_end: u64,
) -> Result<Option<crate::mapping::View>, Failure> {
    const ERROR_USER_MAPPED_FILE: i32 = 1224;
    let refused = file.set_len(new_end);
    expect_eq(
        "SetEndOfFile below a live view (error code)",
        Some(ERROR_USER_MAPPED_FILE),
        refused.err().and_then(|e| e.raw_os_error()),
    )?;
    expect_eq(
        "size after the refused shrink",
        3 * PAGE as u64,
        size_of(file)?,
    )?;
    view.unmap();
    file.set_len(new_end).step("shrink after unmapping")?;
    Ok(None)
}
