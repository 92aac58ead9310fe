//! The one place where fs-core errors become NTSTATUS codes (STYLE.md rule 5).

use fs_core::{DeviceErrorKind, Error};

use crate::nt::{self, NTSTATUS};

/// The NTSTATUS a request fails with when fs-core reports `error`.
#[must_use]
pub fn status_of(error: &Error) -> NTSTATUS {
    match error {
        Error::Device(e) => match e.kind {
            DeviceErrorKind::ReadOnly => nt::STATUS_MEDIA_WRITE_PROTECTED,
            DeviceErrorKind::Io { code } if code < 0 => code,
            _ => nt::STATUS_IO_DEVICE_ERROR,
        },
        Error::NotFound | Error::StaleFileId => nt::STATUS_OBJECT_NAME_NOT_FOUND,
        Error::AlreadyExists => nt::STATUS_OBJECT_NAME_COLLISION,
        Error::NotADirectory => nt::STATUS_NOT_A_DIRECTORY,
        Error::IsADirectory => nt::STATUS_FILE_IS_A_DIRECTORY,
        Error::DirectoryNotEmpty => nt::STATUS_DIRECTORY_NOT_EMPTY,
        Error::NoSpace => nt::STATUS_DISK_FULL,
        Error::InvalidName(_) => nt::STATUS_OBJECT_NAME_INVALID,
        Error::Corrupt { .. } => nt::STATUS_DISK_CORRUPT_ERROR,
        Error::NotCowfat(_) => nt::STATUS_UNRECOGNIZED_VOLUME,
        Error::ReadOnly => nt::STATUS_MEDIA_WRITE_PROTECTED,
        Error::FileTooLarge => nt::STATUS_FILE_TOO_LARGE,
        Error::Unsupported(_) => nt::STATUS_NOT_IMPLEMENTED,
        Error::OutOfMemory { .. } => nt::STATUS_INSUFFICIENT_RESOURCES,
        _ => nt::STATUS_INVALID_PARAMETER,
    }
}

/// The NTSTATUS for a name the caller gave that fs-core would not take: invalid, or no memory
/// to hold it (NT-26).
#[must_use]
pub fn name_status(error: fs_core::NameError) -> NTSTATUS {
    status_of(&Error::from(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_errors_map_to_their_nt_names() {
        assert_eq!(status_of(&Error::NoSpace), nt::STATUS_DISK_FULL);
        assert_eq!(
            status_of(&Error::OutOfMemory {
                what: "x",
                bytes: 1
            }),
            nt::STATUS_INSUFFICIENT_RESOURCES
        );
        assert_eq!(
            status_of(&Error::NotCowfat("x")),
            nt::STATUS_UNRECOGNIZED_VOLUME
        );
        let io = Error::Device(fs_core::DeviceError::new(
            DeviceErrorKind::Io {
                code: nt::STATUS_DISK_FULL,
            },
            0,
        ));
        assert_eq!(status_of(&io), nt::STATUS_DISK_FULL);
    }
}
