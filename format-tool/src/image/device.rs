//! The block device seam between the image layer and fs-core: fs-core's trait, and the
//! helpers every device here shares.

pub use fs_core::{BlockDevice, DeviceError, DeviceErrorKind};

/// Wraps a host I/O error, keeping the OS error code for the message.
pub fn io_error(err: &std::io::Error, offset: u64) -> DeviceError {
    let code = err.raw_os_error().unwrap_or(-1);
    DeviceError::new(DeviceErrorKind::Io { code }, offset)
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
