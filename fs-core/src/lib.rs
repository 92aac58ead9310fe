//! cowfat's portable file system core: the on-disk format, volume operations, the native
//! copy-on-write overlay and the checker. `#![no_std]` + `alloc`: the driver, the tool and
//! the FUSE host all use this same code. The format is drawn in docs/format.md.
//!
//! ```
//! use fs_core::{format, FormatOptions, MemDevice, MountOptions, Volume, Name, FileKind, FileAttributes};
//! use fs_core::time::{FixedClock, NtTime};
//!
//! let mut dev = MemDevice::new(8 << 20);
//! format(&mut dev, &FormatOptions::default()).unwrap();
//! let mut vol = Volume::mount(dev, MountOptions::new(Box::new(FixedClock(NtTime(0))))).unwrap();
//! let root = vol.root().unwrap();
//! let f = vol.create(root, &Name::from_str("a.txt").unwrap(), FileKind::File, FileAttributes::empty()).unwrap();
//! vol.write(f, 0, b"aaaa").unwrap();
//! vol.seal().unwrap();                      // "aaaa" is now the base
//! vol.write(f, 0, b"1234").unwrap();        // lands in the overlay
//! vol.discard_file(f).unwrap();             // back to the base
//! let mut buf = [0u8; 4];
//! vol.read(f, 0, &mut buf).unwrap();
//! assert_eq!(&buf, b"aaaa");
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod alloc_table;
mod cache;
pub mod crash;
pub mod device;
mod dir;
pub mod error;
mod file;
mod format;
pub mod fsck;
pub mod layout;
pub mod mem;
pub mod name;
mod namespace;
pub mod ondisk;
mod overlay;
mod records;
pub mod sorted;
mod stream;
pub mod time;
mod types;
mod volume;

#[cfg(feature = "std")]
pub use device::FileDevice;
pub use device::{
    BlockDevice, CountingDevice, CrashRecorder, DeviceError, DeviceErrorKind, MemDevice,
};
pub use error::{Error, Result};
pub use file::WriteMode;
pub use format::format;
pub use name::{Name, NameError};
pub use types::{
    DirCursor, DirEntry, Extent, FileAttributes, FileId, FileInfo, FileKind, FileOverlayStatus,
    FileTimes, FormatOptions, MountOptions, OverlayRun, OverlaySummary, SetTimes, VolumeInfo,
};
pub use volume::{Tree, Volume, LAZY_COMMIT_INTERVAL_MS};
