//! The one error type of fs-core. The driver maps it to NTSTATUS in one place, the tool to a
//! sentence and an exit code in one place.

use crate::device::DeviceError;
use crate::name::NameError;

/// Result of every fs-core operation.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What went wrong. Corruption names what and where (a byte offset on the volume).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("device error: {0}")]
    Device(DeviceError),
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("directory not empty")]
    DirectoryNotEmpty,
    #[error("no space left on the volume")]
    NoSpace,
    #[error("invalid name: {0}")]
    InvalidName(NameError),
    #[error("corrupt volume: {what} at byte {at:#x}")]
    Corrupt { what: &'static str, at: u64 },
    #[error("not a cowfat volume: {0}")]
    NotCowfat(&'static str),
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("the volume is mounted read-only")]
    ReadOnly,
    #[error("the volume is not sealed, so it has no overlay")]
    NotSealed,
    #[error("the volume is already sealed")]
    AlreadySealed,
    #[error("the file was created after the volume was sealed, so it has no base version")]
    NoBaseVersion,
    #[error("the file is too large")]
    FileTooLarge,
    #[error("stale file id (the file was deleted)")]
    StaleFileId,
    /// An allocation the volume's metadata asked for could not be made. Sizes driven by the
    /// disk are bounded by the real size of their structure first, so this means the volume
    /// is that big and memory is short, never that a count on disk was absurd.
    #[error("out of memory: {bytes} bytes for {what}")]
    OutOfMemory { what: &'static str, bytes: u64 },
}

impl From<DeviceError> for Error {
    fn from(e: DeviceError) -> Self {
        Error::Device(e)
    }
}

impl From<NameError> for Error {
    fn from(e: NameError) -> Self {
        match e {
            NameError::OutOfMemory => Error::OutOfMemory {
                what: "a name",
                bytes: 0,
            },
            e => Error::InvalidName(e),
        }
    }
}
