//! Output that appears whole or not at all: a host file is written under a temporary name in
//! its target directory and renamed into place only once complete, and whatever a failed
//! command made is removed again (a half-written image or copy is worse than none, and a
//! leftover would make the next attempt fail with "it already exists").

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Why a staged file could not take its final name.
#[derive(Debug)]
pub enum CommitError {
    /// The target appeared while the file was being written (and replacing was not asked for).
    Exists,
    Io(io::Error),
}

/// A file being written under a temporary name beside `target`. Dropping it without
/// `commit` removes the temporary file.
#[derive(Debug)]
pub struct StagedFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

/// Distinguishes temporary names made by one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A hidden name in the same directory as `target` (so the final rename stays on one file
/// system and is atomic).
fn temporary_name(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{name}.cowfat-{}-{n}.tmp", std::process::id());
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(tmp),
        _ => PathBuf::from(tmp),
    }
}

impl StagedFile {
    /// Reserves a temporary name for `target`; nothing is created yet.
    pub fn new(target: &Path) -> Self {
        Self {
            tmp: temporary_name(target),
            target: target.to_path_buf(),
            committed: false,
        }
    }

    /// Where the content is written until `commit`.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Creates the temporary file for writing.
    pub fn create(&self) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&self.tmp)
    }

    /// Gives the finished file its final name. With `replace`, an existing target is
    /// replaced atomically; without, an existing target is left alone and `Exists` returned.
    pub fn commit(mut self, replace: bool) -> Result<(), CommitError> {
        if replace {
            fs::rename(&self.tmp, &self.target).map_err(CommitError::Io)?;
        } else {
            // A hard link fails if the target exists, where a rename would overwrite it.
            match fs::hard_link(&self.tmp, &self.target) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(CommitError::Exists)
                }
                // File systems without hard links: check, then rename.
                Err(_) => {
                    if fs::symlink_metadata(&self.target).is_ok() {
                        return Err(CommitError::Exists);
                    }
                    fs::rename(&self.tmp, &self.target).map_err(CommitError::Io)?;
                }
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the failure being reported matters more than the cleanup's.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// What a multi-file command (export) created on the host, removed again unless the command
/// completes. Files and directories that existed before are not recorded and so never removed.
#[derive(Debug, Default)]
pub struct CreatedPaths {
    paths: Vec<(PathBuf, bool)>,
    kept: bool,
}

impl CreatedPaths {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `dir` and any missing parents, recording the ones it made.
    pub fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
            .collect();
        for p in missing.into_iter().rev() {
            fs::create_dir(p)?;
            self.paths.push((p.to_path_buf(), true));
        }
        if !dir.is_dir() {
            // An existing non-directory: let create_dir_all say why.
            fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    /// Records a file that did not exist before the command wrote it.
    pub fn file(&mut self, path: &Path) {
        self.paths.push((path.to_path_buf(), false));
    }

    /// The command completed: keep everything.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for CreatedPaths {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Newest first, so directories are empty of what we made by the time we reach them.
        for (path, is_dir) in self.paths.iter().rev() {
            let _ = if *is_dir {
                fs::remove_dir(path)
            } else {
                fs::remove_file(path)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        {
            let staged = StagedFile::new(&target);
            std::io::Write::write_all(&mut staged.create().unwrap(), b"half").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_without_replace_keeps_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        fs::write(&target, b"old").unwrap();
        let staged = StagedFile::new(&target);
        std::io::Write::write_all(&mut staged.create().unwrap(), b"new").unwrap();
        assert!(matches!(staged.commit(false), Err(CommitError::Exists)));
        assert_eq!(fs::read(&target).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let staged = StagedFile::new(&target);
        std::io::Write::write_all(&mut staged.create().unwrap(), b"new").unwrap();
        staged.commit(true).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn created_paths_are_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("before"), b"x").unwrap();
        {
            let mut made = CreatedPaths::new();
            made.create_dir_all(&dir.path().join("a/b")).unwrap();
            fs::write(dir.path().join("a/b/f"), b"y").unwrap();
            made.file(&dir.path().join("a/b/f"));
        }
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the file that was there before");
        let mut made = CreatedPaths::new();
        made.create_dir_all(&dir.path().join("a")).unwrap();
        made.keep();
        assert!(dir.path().join("a").is_dir());
    }
}
