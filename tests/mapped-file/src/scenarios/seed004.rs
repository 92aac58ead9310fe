//! Seed 004's program, step by step (NT-19).
//!
//! In the seed, a copy-on-write filter redirected ReadFile/WriteFile to a copy of the file
//! while Mm kept mapping the original: the view showed "aaaa"/"xaaa" while reads showed
//! "1234"/"4321". A file system whose overlay lives inside the stream must show one file.
//! The seed writes 5 bytes each time ("1234" and its terminating NUL) and maps 5 bytes; so do
//! we, so the first write also extends the 4-byte file, and the file ends as "4321\0".

use std::io::{Seek, SeekFrom};
use std::path::Path;

use crate::fileio;
use crate::report::{expect_bytes, Outcome, Step};

use super::Ctx;

pub const START: &[u8] = b"aaaa";
pub const FIRST: &[u8] = b"1234\0";
pub const AFTER_X: &[u8] = b"x234\0";
pub const SECOND: &[u8] = b"4321\0";

/// The scenario on a file this program creates with "aaaa".
pub fn run(ctx: &Ctx, path: &Path) -> Outcome {
    fileio::create_with(path, START).step("create the file with \"aaaa\"")?;
    run_on_existing(ctx, path)
}

/// The scenario on a file that already holds "aaaa" (`--sealed-file`: on cowfat, a file in
/// the sealed base, so every change below must go to the overlay).
pub fn run_on_existing(ctx: &Ctx, path: &Path) -> Outcome {
    let before = fileio::read_whole(path).step("read the file before starting")?;
    expect_bytes("file before the program runs", START, &before)?;

    let mut file = fileio::open_rw(path).step("open read-write")?;
    fileio::write_at(&file, 0, FIRST).step("WriteFile \"1234\\0\"")?;
    file.seek(SeekFrom::Start(0)).step("SetFilePointer 0")?;

    let mut view = ctx.map(&file, 0, Some(FIRST.len())).step("map 5 bytes")?;
    expect_bytes("view right after mapping", FIRST, &view.read(0, 5))?;

    view.write(0, b"x");
    let read = fileio::read_at(&file, 0, 5).step("ReadFile after the view write")?;
    expect_bytes(
        "ReadFile after writing 'x' through the view",
        AFTER_X,
        &read,
    )?;
    expect_bytes("view after writing 'x'", AFTER_X, &view.read(0, 5))?;

    fileio::write_at(&file, 0, SECOND).step("WriteFile \"4321\\0\"")?;
    expect_bytes("view after WriteFile \"4321\"", SECOND, &view.read(0, 5))?;
    let read = fileio::read_at(&file, 0, 5).step("ReadFile after the second write")?;
    expect_bytes("ReadFile after WriteFile \"4321\"", SECOND, &read)?;

    view.unmap();
    drop(file);
    let after = ctx.reread(path)?;
    expect_bytes("file after unmap, close and reopen", SECOND, &after)
}
