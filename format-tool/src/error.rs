//! Every failure of the tool becomes one sentence naming the image, the path and the cause,
//! and one exit code. This is the only place that words fs-core's errors.

use std::path::{Path, PathBuf};

use crate::image::ImageError;

/// Exit codes (fsck has its own, see `commands::fsck`).
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Why an operation failed.
#[derive(Debug)]
pub enum Cause {
    Image(ImageError),
    Fs(fs_core::Error),
    /// A host file or directory could not be used.
    Host(PathBuf, std::io::Error),
    /// The command line asked for something impossible (exit 2).
    Usage(String),
    /// A reason the tool itself found.
    Other(String),
}

/// A failed command: "cannot {action} {path} in {image}: {cause}".
#[derive(Debug)]
pub struct Failure {
    pub image: PathBuf,
    pub action: &'static str,
    pub path: Option<String>,
    pub cause: Cause,
}

impl Failure {
    pub fn new(image: &Path, action: &'static str, path: Option<&str>, cause: Cause) -> Self {
        Self {
            image: image.to_path_buf(),
            action,
            path: path.map(str::to_owned),
            cause,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self.cause {
            Cause::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let image = self.image.display();
        match &self.path {
            Some(p) => write!(f, "cannot {} {p} in {image}: ", self.action)?,
            None => write!(f, "cannot {} {image}: ", self.action)?,
        }
        match &self.cause {
            Cause::Image(e) => write!(f, "{e}"),
            Cause::Fs(e) => write!(f, "{}", fs_cause(e)),
            Cause::Host(p, e) => write!(f, "host path {}: {}", p.display(), host_cause(e)),
            Cause::Usage(s) | Cause::Other(s) => write!(f, "{s}"),
        }
    }
}

/// fs-core's errors in the words a user of the command needs.
pub fn fs_cause(e: &fs_core::Error) -> String {
    use fs_core::Error as E;
    match e {
        E::NotFound => "no such file or directory".into(),
        E::AlreadyExists => "a file or directory of that name already exists".into(),
        E::NotADirectory => "a component of the path is not a directory".into(),
        E::IsADirectory => "it is a directory".into(),
        E::DirectoryNotEmpty => {
            "the directory is not empty (use -r to remove it with its contents)".into()
        }
        E::NoSpace => "the volume is full".into(),
        E::Corrupt { what, at } => {
            format!("the volume is corrupt ({what} at byte {at:#x}); run `cowfat fsck`")
        }
        E::NotCowfat(why) => format!("it holds no cowfat volume ({why})"),
        E::OutOfMemory { what, bytes } => {
            format!("not enough memory: {what} needs {bytes} bytes")
        }
        E::NotSealed => "the volume is not sealed, so there is no overlay".into(),
        E::NoBaseVersion => {
            "the file was created after the seal, so it has no base version to return to".into()
        }
        other => other.to_string(),
    }
}

fn host_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::AlreadyExists => "it already exists".into(),
        _ => e.to_string(),
    }
}

impl From<ImageError> for Cause {
    fn from(e: ImageError) -> Self {
        Self::Image(e)
    }
}

impl From<fs_core::Error> for Cause {
    fn from(e: fs_core::Error) -> Self {
        Self::Fs(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_names_image_path_and_cause() {
        let f = Failure::new(
            Path::new("d.vhd"),
            "read",
            Some("/a/b"),
            Cause::Fs(fs_core::Error::NotFound),
        );
        assert_eq!(
            f.to_string(),
            "cannot read /a/b in d.vhd: no such file or directory"
        );
        assert_eq!(f.exit_code(), EXIT_FAILURE);
        let u = Failure::new(
            Path::new("d.vhd"),
            "seal",
            Some("/x"),
            Cause::Usage("seal takes no path".into()),
        );
        assert_eq!(u.exit_code(), EXIT_USAGE);
        let oom = Failure::new(
            Path::new("d.vhd"),
            "list",
            Some("/"),
            Cause::Fs(fs_core::Error::OutOfMemory {
                what: "a directory's entries",
                bytes: 1 << 40,
            }),
        );
        assert_eq!(
            oom.to_string(),
            "cannot list / in d.vhd: not enough memory: a directory's entries needs 1099511627776 bytes"
        );
        assert_eq!(oom.exit_code(), EXIT_FAILURE);
    }
}
