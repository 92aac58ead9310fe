//! The one place that turns fs-core's errors into the errno a FUSE reply carries.

use fs_core::{Error, NameError};
use fuser::Errno;

/// The errno for an fs-core error. Corruption and device failures are EIO: the kernel has no
/// better word, and the mount's log names what went wrong.
pub fn errno(e: &Error) -> Errno {
    match e {
        Error::NotFound => Errno::ENOENT,
        Error::AlreadyExists => Errno::EEXIST,
        Error::NotADirectory => Errno::ENOTDIR,
        Error::IsADirectory => Errno::EISDIR,
        Error::DirectoryNotEmpty => Errno::ENOTEMPTY,
        Error::NoSpace => Errno::ENOSPC,
        Error::InvalidName(NameError::TooLong { .. }) => Errno::ENAMETOOLONG,
        Error::InvalidName(_) | Error::InvalidArgument(_) => Errno::EINVAL,
        Error::ReadOnly => Errno::EROFS,
        Error::FileTooLarge => Errno::EFBIG,
        Error::StaleFileId => Errno::ESTALE,
        Error::OutOfMemory { .. } => Errno::ENOMEM,
        Error::Unsupported(_) => Errno::EOPNOTSUPP,
        // Overlay control through ioctls: "no overlay" / "no base" are refusals, not I/O errors.
        Error::NotSealed | Error::AlreadySealed | Error::NoBaseVersion => Errno::EINVAL,
        _ => {
            super::note(format_args!("{e}"));
            Errno::EIO
        }
    }
}

/// Lets handlers use `?` on fs-core results where an `Errno` is expected.
pub trait OrErrno<T> {
    fn or_errno(self) -> Result<T, Errno>;
}

impl<T> OrErrno<T> for fs_core::Result<T> {
    fn or_errno(self) -> Result<T, Errno> {
        self.map_err(|e| errno(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_errors_map_to_their_errno() {
        assert_eq!(errno(&Error::NotFound), Errno::ENOENT);
        assert_eq!(errno(&Error::DirectoryNotEmpty), Errno::ENOTEMPTY);
        assert_eq!(errno(&Error::ReadOnly), Errno::EROFS);
        let long = Error::InvalidName(NameError::TooLong { units: 300 });
        assert_eq!(errno(&long), Errno::ENAMETOOLONG);
    }
}
