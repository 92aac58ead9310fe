//! The block device seam between the image layer and fs-core.
//!
//! fs-core's `BlockDevice` trait has not landed yet; this is a verbatim copy of its announced
//! shape so the image layer can be built and tested now. When fs-core publishes it, this module
//! becomes `pub use fs_core::{BlockDevice, DeviceError, DeviceErrorKind};`.

/// What went wrong on a device and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceError {
    pub kind: DeviceErrorKind,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceErrorKind {
    OutOfRange,
    Misaligned,
    Io { code: i32 },
    ReadOnly,
}

impl DeviceError {
    pub fn new(kind: DeviceErrorKind, offset: u64) -> Self {
        Self { kind, offset }
    }

    /// Wraps a host I/O error, keeping the OS error code for the message.
    pub fn io(err: &std::io::Error, offset: u64) -> Self {
        let code = err.raw_os_error().unwrap_or(-1);
        Self::new(DeviceErrorKind::Io { code }, offset)
    }
}

pub trait BlockDevice {
    /// Size in bytes (a multiple of sector_size()).
    fn size(&self) -> u64;
    fn sector_size(&self) -> u32 {
        512
    }
    /// offset and buf.len() are multiples of sector_size(); fs-core guarantees it.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError>;
    fn flush(&mut self) -> Result<(), DeviceError>;
    /// Make [offset, offset+len) read as zeros.
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        let zeros = vec![0u8; ZERO_CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZERO_CHUNK as u64);
            self.write_at(offset + done, &zeros[..to_usize(n)])?;
            done += n;
        }
        Ok(())
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn sector_size(&self) -> u32 {
        (**self).sector_size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        (**self).write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        (**self).flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        (**self).write_zeroes(offset, len)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn sector_size(&self) -> u32 {
        (**self).sector_size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        (**self).write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        (**self).flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        (**self).write_zeroes(offset, len)
    }
}

/// Zero-filling and copying work in chunks of this size: large enough to be fast, small
/// enough to keep memory flat.
pub const ZERO_CHUNK: usize = 1 << 20;

/// Sector size of every image this tool makes or reads (VHD and our partition tables are
/// defined on 512-byte sectors).
pub const SECTOR: u64 = 512;

/// `u64` -> `usize` for lengths already bounded by a buffer or a chunk size.
pub fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Checks the fs-core contract (sector-aligned, inside the device) before touching the host.
pub fn check_range(size: u64, offset: u64, len: usize) -> Result<(), DeviceError> {
    let len = len as u64;
    if offset % SECTOR != 0 || len % SECTOR != 0 {
        return Err(DeviceError::new(DeviceErrorKind::Misaligned, offset));
    }
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(DeviceError::new(DeviceErrorKind::OutOfRange, offset)),
    }
}

/// An in-memory device for tests.
#[cfg(test)]
pub struct MemDevice(pub Vec<u8>);

#[cfg(test)]
impl BlockDevice for MemDevice {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        check_range(self.size(), offset, buf.len())?;
        let o = to_usize(offset);
        buf.copy_from_slice(&self.0[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        check_range(self.size(), offset, buf.len())?;
        let o = to_usize(offset);
        self.0[o..o + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}
