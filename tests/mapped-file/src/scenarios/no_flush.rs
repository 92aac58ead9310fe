//! Stores through a view reach the file without msync/FlushViewOfFile.
//!
//! Both systems promise it: dirty mapped pages belong to the file's cache, not to the view or
//! the handle, and are written back later (Linux writeback; Windows' mapped page writer,
//! NT-14). A file system that only picks up data on an explicit flush, or drops dirty pages
//! when the last handle or view goes, loses them here.

use std::path::Path;

use crate::fileio::{self, pattern};
use crate::mapping::PAGE;
use crate::report::{expect_bytes, Outcome, Step};

use super::Ctx;

const SIZE: usize = 4 * PAGE;

/// Stores in several pages, including the first and last byte of the file.
const STORES: &[(usize, &[u8])] = &[
    (0, b"first"),
    (PAGE + 7, b"second-page"),
    (3 * PAGE - 2, b"straddle"),
    (SIZE - 4, b"last"),
];

fn store_all(view: &mut crate::mapping::View, model: &mut [u8]) {
    for &(at, bytes) in STORES {
        view.write(at, bytes);
        model[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

/// Close the handle while the view is live, then unmap without a flush.
pub fn close_handle_then_unmap(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(8, SIZE);
    fileio::create_with(path, &model).step("create a 4-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let mut view = ctx.map(&file, 0, None).step("map the whole file")?;
    drop(file);
    store_all(&mut view, &mut model);
    view.unmap();
    expect_bytes(
        "file reopened after close and unmap without msync",
        &model,
        &ctx.reread(path)?,
    )
}

/// Unmap without a flush, then close the handle.
pub fn unmap_then_close(ctx: &Ctx, path: &Path) -> Outcome {
    let mut model = pattern(9, SIZE);
    fileio::create_with(path, &model).step("create a 4-page file")?;
    let file = fileio::open_rw(path).step("open read-write")?;
    let mut view = ctx.map(&file, 0, None).step("map the whole file")?;
    store_all(&mut view, &mut model);
    view.unmap();
    drop(file);
    expect_bytes(
        "file reopened after unmap without msync and close",
        &model,
        &ctx.reread(path)?,
    )
}
