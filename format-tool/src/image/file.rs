//! Positioned I/O on the host file that holds an image, shared by the raw and VHD devices.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use super::device::{io_error, to_usize, DeviceError, ZERO_CHUNK};

/// The image file with positioned reads and writes that report `DeviceError`s.
#[derive(Debug)]
pub struct HostFile {
    file: File,
    writable: bool,
}

impl HostFile {
    pub fn new(file: File, writable: bool) -> Self {
        Self { file, writable }
    }

    pub fn file_len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    pub fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let io = |e: std::io::Error| io_error(&e, offset);
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        self.file.read_exact(buf).map_err(io)
    }

    pub fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        if !self.writable {
            return Err(DeviceError::new(
                super::device::DeviceErrorKind::ReadOnly,
                offset,
            ));
        }
        let io = |e: std::io::Error| io_error(&e, offset);
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        self.file.write_all(buf).map_err(io)?;
        #[cfg(test)]
        super::recording::note(|| super::recording::FileOp::Write {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), DeviceError> {
        if !self.writable {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| io_error(&e, 0))?;
        #[cfg(test)]
        super::recording::note(|| super::recording::FileOp::Flush);
        Ok(())
    }

    pub fn set_len(&mut self, len: u64) -> Result<(), DeviceError> {
        self.file.set_len(len).map_err(|e| io_error(&e, len))?;
        #[cfg(test)]
        super::recording::note(|| super::recording::FileOp::SetLen(len));
        Ok(())
    }

    /// Makes a range of the host file read as zeros without allocating space for ranges that
    /// already are zero. Reading a hole is cheap and allocates nothing, so a sparse image stays
    /// sparse; punching holes would need `fallocate`, which std does not offer without unsafe.
    pub fn zero_range(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        let mut buf = vec![0u8; ZERO_CHUNK];
        let mut done = 0;
        while done < len {
            let n = to_usize((len - done).min(ZERO_CHUNK as u64));
            let chunk = &mut buf[..n];
            self.read_exact_at(offset + done, chunk)?;
            if !is_zero(chunk) {
                chunk.fill(0);
                self.write_all_at(offset + done, chunk)?;
            }
            done += n as u64;
        }
        Ok(())
    }
}

/// True when every byte is zero (used to keep sparse files and VHD blocks unallocated).
pub fn is_zero(buf: &[u8]) -> bool {
    // Comparing in u128 chunks is several times faster than a byte loop on large buffers.
    let (chunks, rest) = buf.split_at(buf.len() - buf.len() % 16);
    chunks
        .chunks_exact(16)
        .all(|c| u128::from_ne_bytes(c.try_into().unwrap_or([1; 16])) == 0)
        && rest.iter().all(|&b| b == 0)
}
