//! A raw image: the host file is the disk, byte for byte.

use super::device::{check_range, BlockDevice, DeviceError};
use super::file::HostFile;

#[derive(Debug)]
pub struct RawDisk {
    file: HostFile,
    size: u64,
}

impl RawDisk {
    /// `size` is the file length rounded down to whole sectors (a raw image may carry a few
    /// stray bytes at the end; they are not part of the disk).
    pub fn new(file: HostFile, size: u64) -> Self {
        Self { file, size }
    }
}

impl BlockDevice for RawDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        check_range(self.size, offset, buf.len())?;
        self.file.read_exact_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        check_range(self.size, offset, buf.len())?;
        self.file.write_all_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.file.flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        check_range(self.size, offset, 0)?;
        check_range(self.size, offset, super::device::to_usize(len))?;
        self.file.zero_range(offset, len)
    }
}
