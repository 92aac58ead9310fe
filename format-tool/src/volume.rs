//! The one module that calls fs-core's volume API: open an image, mount its volume, walk
//! paths, and turn every fs-core error into a `Failure` that names the image and the path.

use std::path::{Path, PathBuf};

use fs_core::Name;
use fs_core::Volume;
use fs_core::{FileId, FileInfo, MountOptions};

use crate::error::{Cause, Failure};
use crate::image::{self, Disk, OpenImage, PartitionDevice};
use crate::win32_names::win32_problem;

pub type Dev = PartitionDevice<Disk>;

/// What the image layer found, kept for `info`.
#[derive(Debug)]
pub struct ImageFacts {
    pub format: image::ImageFormat,
    pub disk_size: u64,
    pub table: image::partition::Table,
    pub partition: image::partition::Partition,
}

/// A mounted volume and the image it lives in.
pub struct Session {
    pub image: PathBuf,
    pub facts: ImageFacts,
    pub vol: Volume<Dev>,
    /// Allow new names that Win32 programs cannot open (`--allow-nt-names`).
    pub allow_nt_names: bool,
}

/// Opens the image and mounts its volume (read-only unless `writable`).
pub fn open(image: &Path, writable: bool, index: Option<u32>) -> Result<Session, Failure> {
    let fail = |cause| Failure::new(image, "open", None, cause);
    let OpenImage {
        format,
        disk_size,
        table,
        partition,
        dev,
    } = image::open(image, writable, index).map_err(|e| fail(e.into()))?;
    let options = MountOptions::default();
    let options = if writable {
        options
    } else {
        options.read_only()
    };
    let vol = Volume::mount(dev, options).map_err(|e| fail(e.into()))?;
    let facts = ImageFacts {
        format,
        disk_size,
        table,
        partition,
    };
    Ok(Session {
        image: image.to_path_buf(),
        facts,
        vol,
        allow_nt_names: false,
    })
}

/// Splits a volume path into its names; `/` and `\` both separate, empty parts and `.` are
/// skipped. `..` is refused rather than guessed at.
pub fn components(path: &str) -> Result<Vec<&str>, String> {
    let parts: Vec<&str> = path
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err("\"..\" is not allowed in image paths".into());
    }
    Ok(parts)
}

impl Session {
    /// A failure about `path` in this image.
    pub fn fail(&self, action: &'static str, path: &str, cause: impl Into<Cause>) -> Failure {
        Failure::new(&self.image, action, Some(path), cause.into())
    }

    pub fn root(&mut self) -> Result<FileId, Cause> {
        Ok(self.vol.root()?)
    }

    pub fn resolve(&mut self, path: &str) -> Result<FileId, Cause> {
        let mut id = self.root()?;
        for part in components(path).map_err(Cause::Usage)? {
            id = self.vol.lookup(id, &name(part)?)?;
        }
        Ok(id)
    }

    pub fn info(&mut self, id: FileId) -> Result<FileInfo, Cause> {
        Ok(self.vol.info(id)?)
    }

    /// The directory that holds `path` and the last name; the root has no parent.
    pub fn parent_and_name(&mut self, path: &str) -> Result<(FileId, Name), Cause> {
        let parts = components(path).map_err(Cause::Usage)?;
        let Some((last, dirs)) = parts.split_last() else {
            return Err(Cause::Usage(
                "the root directory cannot be the target".into(),
            ));
        };
        let mut id = self.root()?;
        for part in dirs {
            id = self.vol.lookup(id, &name(part)?)?;
        }
        Ok((id, name(last)?))
    }

    /// Checks a name this command is about to create: refused, with the reason, if Win32
    /// programs could not open it (unless `--allow-nt-names`).
    pub fn check_new_name(&self, name: &Name) -> Result<(), Cause> {
        if self.allow_nt_names {
            return Ok(());
        }
        let text = name.to_string_lossy();
        match win32_problem(&text) {
            None => Ok(()),
            Some(why) => Err(Cause::Usage(format!(
                "the name \"{text}\" is refused: {why} (pass --allow-nt-names to create it anyway)"
            ))),
        }
    }

    /// Writes everything out and unmounts, so a later command sees a clean volume.
    pub fn close(self) -> Result<(), Failure> {
        let image = self.image;
        let dev = self
            .vol
            .unmount()
            .map_err(|e| Failure::new(&image, "write", None, e.into()))?;
        let mut disk = dev.into_inner();
        image::device::BlockDevice::flush(&mut disk)
            .map_err(|e| Failure::new(&image, "write", None, Cause::Image(e.into())))
    }
}

pub fn name(part: &str) -> Result<Name, Cause> {
    Name::from_str(part).map_err(|e| Cause::Fs(e.into()))
}
