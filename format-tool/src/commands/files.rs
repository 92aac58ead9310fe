//! ls, cat, put, get, mkdir, rm, mv: one file or directory at a time.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use fs_core::{DirCursor, DirEntry, FileAttributes, FileId, FileInfo, FileKind};

use super::Outcome;
use crate::cli::{GetArgs, ImagePath, LsArgs, MkdirArgs, MvArgs, PutArgs, RmArgs};
use crate::error::{Cause, Failure};
use crate::output::{attribute_letters, format_time, kind_name, print_json};
use crate::progress::Progress;
use crate::staged::{CommitError, StagedFile};
use crate::volume::{self, Session};

/// Directory entries fetched per call while listing.
const DIR_BATCH: usize = 1024;

/// Reads and writes move this much at a time.
pub const CHUNK: usize = 1 << 20;

/// A listing row, also the JSON shape of `ls --json`.
#[derive(Debug, serde::Serialize)]
struct Row {
    name: String,
    kind: &'static str,
    size: u64,
    allocation_size: u64,
    attributes: u32,
    modified: String,
    created: String,
}

fn row(name: String, info: &FileInfo) -> Row {
    Row {
        name,
        kind: kind_name(info.kind),
        size: info.file_size,
        allocation_size: info.allocation_size,
        attributes: info.attributes.bits(),
        modified: format_time(info.times.last_write),
        created: format_time(info.times.creation),
    }
}

/// All entries of a directory, following the resume cursor to the end.
pub fn list_dir(s: &mut Session, dir: FileId) -> Result<Vec<DirEntry>, Cause> {
    let mut all = Vec::new();
    let mut cursor = DirCursor::start();
    loop {
        let (entries, next) = s.vol.read_dir(dir, &cursor, DIR_BATCH)?;
        all.extend(entries);
        match next {
            Some(c) => cursor = c,
            None => return Ok(all),
        }
    }
}

pub fn ls(a: &LsArgs, index: Option<u32>) -> Outcome {
    let mut s = volume::open(&a.image, false, index)?;
    let rows = ls_rows(&mut s, &a.path).map_err(|c| s.fail("list", &a.path, c))?;
    let print = if a.json {
        print_json(&rows)
    } else {
        print_rows(&rows, a.long)
    };
    print
        .or_else(ignore_broken_pipe)
        .map_err(|e| s.fail("list", &a.path, Cause::Other(e.to_string())))?;
    Ok(None)
}

fn ls_rows(s: &mut Session, path: &str) -> Result<Vec<Row>, Cause> {
    let id = s.resolve(path)?;
    let info = s.info(id)?;
    if info.kind == FileKind::File {
        let name = volume::components(path)
            .map_err(Cause::Usage)?
            .last()
            .map_or(String::new(), |n| (*n).to_owned());
        return Ok(vec![row(name, &info)]);
    }
    let entries = list_dir(s, id)?;
    Ok(entries
        .iter()
        .map(|e| row(e.name.to_string_lossy(), &e.info))
        .collect())
}

fn print_rows(rows: &[Row], long: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for r in rows {
        if long {
            let dir = if r.kind == "directory" { "/" } else { "" };
            let letters = attribute_letters_from(r);
            writeln!(
                out,
                "{letters} {:>14} {} {}{dir}",
                r.size, r.modified, r.name
            )?;
        } else {
            writeln!(out, "{}", r.name)?;
        }
    }
    Ok(())
}

fn attribute_letters_from(r: &Row) -> String {
    let attrs = FileAttributes::from_bits_truncate(r.attributes);
    let kind = if r.kind == "directory" {
        FileKind::Directory
    } else {
        FileKind::File
    };
    let info = FileInfo {
        id: FileId(0),
        kind,
        attributes: attrs,
        file_size: 0,
        allocation_size: 0,
        valid_data_length: 0,
        times: Default::default(),
        parent: FileId(0),
    };
    attribute_letters(&info)
}

/// `cat | head` closes the pipe early; that is the reader's choice, not a failure.
pub fn ignore_broken_pipe(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e)
    }
}

pub fn cat(a: &ImagePath, index: Option<u32>) -> Outcome {
    let mut s = volume::open(&a.image, false, index)?;
    let id = open_file(&mut s, &a.path).map_err(|c| s.fail("read", &a.path, c))?;
    let mut out = std::io::stdout().lock();
    copy_out(&mut s, id, &mut out, &Progress::spinner(""))
        .map_err(|c| s.fail("read", &a.path, c))?;
    Ok(None)
}

/// Resolves a path that must be a regular file.
fn open_file(s: &mut Session, path: &str) -> Result<FileId, Cause> {
    let id = s.resolve(path)?;
    if s.info(id)?.kind == FileKind::Directory {
        return Err(fs_core::Error::IsADirectory.into());
    }
    Ok(id)
}

/// Copies a file's bytes to a host writer. A closed pipe ends the copy quietly.
pub fn copy_out(
    s: &mut Session,
    id: FileId,
    out: &mut dyn Write,
    progress: &Progress,
) -> Result<u64, Cause> {
    let size = s.info(id)?.file_size;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < size {
        let n = s.vol.read(id, offset, &mut buf)?;
        if n == 0 {
            break;
        }
        match out.write_all(&buf[..n]) {
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(offset),
            r => r.map_err(|e| Cause::Other(format!("writing the output failed: {e}")))?,
        }
        offset += n as u64;
        progress.inc(n as u64);
    }
    Ok(offset)
}

pub fn put(a: &PutArgs, index: Option<u32>) -> Outcome {
    let host = File::open(&a.host_file).map_err(|e| {
        Failure::new(
            &a.image,
            "write",
            Some(&a.path),
            Cause::Host(a.host_file.clone(), e),
        )
    })?;
    let len = host.metadata().map(|m| m.len()).unwrap_or(0);
    let mut s = volume::open(&a.image, true, index)?;
    s.allow_nt_names = a.names.allow_nt_names;
    let target =
        put_target(&mut s, &a.path, &a.host_file).map_err(|c| s.fail("write", &a.path, c))?;
    let progress = Progress::bytes(len, "put");
    put_file(&mut s, &target, host, len, &progress).map_err(|c| s.fail("write", &a.path, c))?;
    s.close()?;
    Ok(None)
}

/// PATH names the file, or an existing directory that receives HOSTFILE's name.
fn put_target(s: &mut Session, path: &str, host: &Path) -> Result<String, Cause> {
    let is_dir = match s.resolve(path) {
        Ok(id) => s.info(id)?.kind == FileKind::Directory,
        Err(Cause::Fs(fs_core::Error::NotFound)) => false,
        Err(e) => return Err(e),
    };
    if !is_dir {
        return Ok(path.to_owned());
    }
    let name = host
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Cause::Usage("the host file has no usable name".into()))?;
    Ok(format!("{}/{name}", path.trim_end_matches(['/', '\\'])))
}

/// Writes a host stream as the file at `path`: an existing file is overwritten in place (so
/// after a seal it stays the same file, with the base version kept for discard); a new file
/// is removed again if the copy fails, so a failed put leaves the image as it was.
pub fn put_file(
    s: &mut Session,
    path: &str,
    mut host: impl Read,
    len: u64,
    progress: &Progress,
) -> Result<(), Cause> {
    let (dir, name) = s.parent_and_name(path)?;
    ensure_space(s, len)?;
    let (id, created) = match s.vol.lookup(dir, &name) {
        Ok(id) if s.info(id)?.kind == FileKind::Directory => {
            return Err(fs_core::Error::IsADirectory.into())
        }
        Ok(id) => (id, false),
        Err(fs_core::Error::NotFound) => {
            s.check_new_name(&name)?;
            (
                s.vol
                    .create(dir, &name, FileKind::File, FileAttributes::ARCHIVE)?,
                true,
            )
        }
        Err(e) => return Err(e.into()),
    };
    let result = write_stream(s, id, &mut host, progress);
    if result.is_err() && created {
        // Best effort: the error being reported matters more than a failed cleanup.
        let _ = s.vol.delete(dir, &name);
    }
    result
}

/// Refuses a copy that cannot fit before anything is written. After a seal every cluster the
/// copy writes is a new overlay cluster, so the whole length counts.
fn ensure_space(s: &mut Session, len: u64) -> Result<(), Cause> {
    let v = s.vol.volume_info();
    let needed = len.div_ceil(u64::from(v.cluster_size));
    if needed > v.available_clusters {
        return Err(Cause::Other(format!(
            "the volume is full: the file needs {needed} clusters of {} bytes and {} are free",
            v.cluster_size, v.available_clusters
        )));
    }
    Ok(())
}

fn write_stream(
    s: &mut Session,
    id: FileId,
    host: &mut dyn Read,
    progress: &Progress,
) -> Result<(), Cause> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = read_full(host, &mut buf)?;
        if n == 0 {
            break;
        }
        s.vol.write(id, offset, &buf[..n])?;
        offset += n as u64;
        progress.inc(n as u64);
    }
    s.vol.set_file_size(id, offset)?;
    Ok(())
}

/// Fills `buf` as far as the host gives (short reads are normal for pipes).
fn read_full(host: &mut dyn Read, buf: &mut [u8]) -> Result<usize, Cause> {
    let mut filled = 0;
    while filled < buf.len() {
        match host.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Cause::Other(format!("reading the host file failed: {e}"))),
        }
    }
    Ok(filled)
}

pub fn get(a: &GetArgs, index: Option<u32>) -> Outcome {
    let mut s = volume::open(&a.image, false, index)?;
    let id = open_file(&mut s, &a.path).map_err(|c| s.fail("read", &a.path, c))?;
    let dest = host_target(&a.host_file, &a.path);
    let size = s
        .info(id)
        .map_err(|c| s.fail("read", &a.path, c))?
        .file_size;
    let host_err = |s: &Session, e| s.fail("read", &a.path, Cause::Host(dest.clone(), e));
    // Written beside DEST and renamed over it when complete: a failed get leaves no partial
    // copy, and an existing DEST stays as it was.
    let staged = StagedFile::new(&dest);
    let mut out = staged.create().map_err(|e| host_err(&s, e))?;
    copy_out(&mut s, id, &mut out, &Progress::bytes(size, "get"))
        .map_err(|c| s.fail("read", &a.path, c))?;
    out.sync_all().map_err(|e| host_err(&s, e))?;
    drop(out);
    staged
        .commit(true)
        .map_err(|e| host_err(&s, commit_io(e)))?;
    Ok(None)
}

/// A replacing commit only fails with an I/O error; this keeps the match total.
pub fn commit_io(e: CommitError) -> std::io::Error {
    match e {
        CommitError::Io(e) => e,
        CommitError::Exists => std::io::ErrorKind::AlreadyExists.into(),
    }
}

/// A host directory receives the file under its own name.
fn host_target(host: &Path, path: &str) -> std::path::PathBuf {
    let last = volume::components(path)
        .ok()
        .and_then(|c| c.last().map(|n| (*n).to_owned()));
    match last {
        Some(name) if host.is_dir() => host.join(name),
        _ => host.to_path_buf(),
    }
}

pub fn mkdir(a: &MkdirArgs, index: Option<u32>) -> Outcome {
    let mut s = volume::open(&a.image, true, index)?;
    s.allow_nt_names = a.names.allow_nt_names;
    make_dir(&mut s, &a.path, a.parents).map_err(|c| s.fail("create directory", &a.path, c))?;
    s.close()?;
    Ok(None)
}

/// Makes the directory `path` (and missing parents with `parents`); returns its id.
pub fn make_dir(s: &mut Session, path: &str, parents: bool) -> Result<FileId, Cause> {
    if !parents {
        let (dir, name) = s.parent_and_name(path)?;
        s.check_new_name(&name)?;
        return Ok(s
            .vol
            .create(dir, &name, FileKind::Directory, FileAttributes::empty())?);
    }
    let mut id = s.root()?;
    for part in volume::components(path).map_err(Cause::Usage)? {
        let name = volume::name(part)?;
        id = match s.vol.lookup(id, &name) {
            Ok(found) if s.info(found)?.kind == FileKind::Directory => found,
            Ok(_) => return Err(fs_core::Error::NotADirectory.into()),
            Err(fs_core::Error::NotFound) => {
                s.check_new_name(&name)?;
                s.vol
                    .create(id, &name, FileKind::Directory, FileAttributes::empty())?
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(id)
}

pub fn rm(a: &RmArgs, index: Option<u32>) -> Outcome {
    let mut s = volume::open(&a.image, true, index)?;
    remove(&mut s, &a.path, a.recursive).map_err(|c| s.fail("remove", &a.path, c))?;
    s.close()?;
    Ok(None)
}

fn remove(s: &mut Session, path: &str, recursive: bool) -> Result<(), Cause> {
    let (dir, name) = s.parent_and_name(path)?;
    let id = s.vol.lookup(dir, &name)?;
    if recursive && s.info(id)?.kind == FileKind::Directory {
        remove_children(s, id)?;
    }
    Ok(s.vol.delete(dir, &name)?)
}

fn remove_children(s: &mut Session, dir: FileId) -> Result<(), Cause> {
    for entry in list_dir(s, dir)? {
        if entry.info.kind == FileKind::Directory {
            remove_children(s, entry.info.id)?;
        }
        s.vol.delete(dir, &entry.name)?;
    }
    Ok(())
}

pub fn mv(a: &MvArgs, index: Option<u32>) -> Outcome {
    let mut s = volume::open(&a.image, true, index)?;
    s.allow_nt_names = a.names.allow_nt_names;
    move_path(&mut s, &a.from, &a.to).map_err(|c| s.fail("move", &a.from, c))?;
    s.close()?;
    Ok(None)
}

/// Like `mv`: onto an existing directory means into it; an existing file is not replaced.
fn move_path(s: &mut Session, from: &str, to: &str) -> Result<(), Cause> {
    let (src_dir, src_name) = s.parent_and_name(from)?;
    s.vol.lookup(src_dir, &src_name)?;
    let into_dir = match s.resolve(to) {
        Ok(id) if s.info(id)?.kind == FileKind::Directory => Some(id),
        _ => None,
    };
    let (dst_dir, dst_name) = match into_dir {
        Some(id) => (id, src_name.clone()),
        None => s.parent_and_name(to)?,
    };
    s.check_new_name(&dst_name)?;
    Ok(s.vol
        .rename(src_dir, &src_name, dst_dir, &dst_name, false)?)
}
