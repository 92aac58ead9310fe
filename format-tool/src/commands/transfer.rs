//! import and export: whole directory trees between the host and the image, with one
//! progress bar over all the bytes.

use std::fs;
use std::path::{Path, PathBuf};

use fs_core::{FileId, FileKind};

use super::files::{commit_io, copy_out, list_dir, make_dir, put_file};
use super::Outcome;
use crate::cli::{ExportArgs, ImportArgs};
use crate::error::{Cause, Failure};
use crate::progress::Progress;
use crate::staged::{CreatedPaths, StagedFile};
use crate::volume::{self, Session};

pub fn import(a: &ImportArgs, index: Option<u32>) -> Outcome {
    let host_fail = |p: &Path, e| {
        Failure::new(
            &a.image,
            "import into",
            Some(&a.path),
            Cause::Host(p.to_path_buf(), e),
        )
    };
    let total = tree_bytes(&a.host_dir).map_err(|(p, e)| host_fail(&p, e))?;
    let mut s = volume::open(&a.image, true, index)?;
    s.allow_nt_names = a.names.allow_nt_names;
    make_dir(&mut s, &a.path, true).map_err(|c| s.fail("import into", &a.path, c))?;
    let progress = Progress::bytes(total, "import");
    let base = a.path.trim_end_matches(['/', '\\']).to_owned();
    import_dir(&mut s, &a.host_dir, &base, &progress)?;
    progress.finish();
    s.close()?;
    Ok(None)
}

/// Bytes of all regular files under `dir`, for the progress bar's total.
fn tree_bytes(dir: &Path) -> Result<u64, (PathBuf, std::io::Error)> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))? {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
        let meta = entry.metadata().map_err(|e| (entry.path(), e))?;
        total += if meta.is_dir() {
            tree_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn import_dir(
    s: &mut Session,
    host: &Path,
    dest: &str,
    progress: &Progress,
) -> Result<(), Failure> {
    let entries = fs::read_dir(host)
        .map_err(|e| s.fail("import into", dest, Cause::Host(host.to_path_buf(), e)))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| s.fail("import into", dest, Cause::Host(host.to_path_buf(), e)))?;
        let host_path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let target = format!("{dest}/{name}");
        let meta = entry
            .metadata()
            .map_err(|e| s.fail("import", &target, Cause::Host(host_path.clone(), e)))?;
        if meta.is_dir() {
            make_dir(s, &target, true).map_err(|c| s.fail("import", &target, c))?;
            import_dir(s, &host_path, &target, progress)?;
        } else if meta.is_file() {
            let file = fs::File::open(&host_path)
                .map_err(|e| s.fail("import", &target, Cause::Host(host_path.clone(), e)))?;
            put_file(s, &target, file, meta.len(), progress)
                .map_err(|c| s.fail("import", &target, c))?;
        }
        // Symlinks and special files have no cowfat counterpart; they are skipped.
    }
    Ok(())
}

pub fn export(a: &ExportArgs, index: Option<u32>) -> Outcome {
    let mut s = volume::open(&a.image, false, index)?;
    let dir = export_root(&mut s, &a.path).map_err(|c| s.fail("export", &a.path, c))?;
    let total = tree_size(&mut s, dir).map_err(|c| s.fail("export", &a.path, c))?;
    // Everything the export makes is removed again if it fails part way: a half-exported
    // tree would pass for a whole one. Files and directories that were there stay.
    let mut made = CreatedPaths::new();
    made.create_dir_all(&a.host_dir)
        .map_err(|e| s.fail("export", &a.path, Cause::Host(a.host_dir.clone(), e)))?;
    let progress = Progress::bytes(total, "export");
    let base = a.path.trim_end_matches(['/', '\\']).to_owned();
    export_dir(&mut s, dir, &base, &a.host_dir, &progress, &mut made)?;
    made.keep();
    Ok(None)
}

fn export_root(s: &mut Session, path: &str) -> Result<FileId, Cause> {
    let id = s.resolve(path)?;
    if s.info(id)?.kind != FileKind::Directory {
        return Err(fs_core::Error::NotADirectory.into());
    }
    Ok(id)
}

fn tree_size(s: &mut Session, dir: FileId) -> Result<u64, Cause> {
    let mut total = 0;
    for e in list_dir(s, dir)? {
        total += match e.info.kind {
            FileKind::Directory => tree_size(s, e.info.id)?,
            FileKind::File => e.info.file_size,
        };
    }
    Ok(total)
}

fn export_dir(
    s: &mut Session,
    dir: FileId,
    path: &str,
    host: &Path,
    progress: &Progress,
    made: &mut CreatedPaths,
) -> Result<(), Failure> {
    let entries = list_dir(s, dir).map_err(|c| s.fail("export", path, c))?;
    for e in entries {
        let name = e.name.to_string_lossy();
        let (child, host_child) = (format!("{path}/{name}"), host.join(&name));
        let host_err =
            |s: &Session, err| s.fail("export", &child, Cause::Host(host_child.clone(), err));
        if e.info.kind == FileKind::Directory {
            made.create_dir_all(&host_child)
                .map_err(|err| host_err(s, err))?;
            export_dir(s, e.info.id, &child, &host_child, progress, made)?;
            continue;
        }
        let existed = fs::symlink_metadata(&host_child).is_ok();
        let staged = StagedFile::new(&host_child);
        let mut out = staged.create().map_err(|err| host_err(s, err))?;
        copy_out(s, e.info.id, &mut out, progress).map_err(|c| s.fail("export", &child, c))?;
        drop(out);
        staged
            .commit(true)
            .map_err(|err| host_err(s, commit_io(err)))?;
        if !existed {
            made.file(&host_child);
        }
    }
    Ok(())
}
