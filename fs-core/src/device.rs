//! Block devices: the one thing fs-core reads and writes. Everything above this trait is
//! deterministic, so tests run the file system on memory, count its writes, or record them
//! and replay any prefix as a crash would leave it.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Why a device operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceErrorKind {
    /// The range does not lie inside the device.
    OutOfRange,
    /// Offset or length is not a multiple of the sector size.
    Misaligned,
    /// The host or kernel reported an error (errno or NTSTATUS).
    Io { code: i32 },
    /// The device refuses writes.
    ReadOnly,
}

/// A failed device operation: what and at which byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceError {
    pub kind: DeviceErrorKind,
    pub offset: u64,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DeviceErrorKind::OutOfRange => write!(
                f,
                "access at byte {:#x} is past the end of the device",
                self.offset
            ),
            DeviceErrorKind::Misaligned => {
                write!(f, "access at byte {:#x} is not sector aligned", self.offset)
            }
            DeviceErrorKind::Io { code } => {
                write!(f, "I/O error {code} at byte {:#x}", self.offset)
            }
            DeviceErrorKind::ReadOnly => {
                write!(f, "write at byte {:#x} to a read-only device", self.offset)
            }
        }
    }
}

impl DeviceError {
    pub fn new(kind: DeviceErrorKind, offset: u64) -> Self {
        DeviceError { kind, offset }
    }
}

/// A sector-addressed store. fs-core only issues reads and writes whose offset and length
/// are multiples of [`BlockDevice::sector_size`].
pub trait BlockDevice {
    /// Size in bytes (a multiple of `sector_size()`).
    fn size(&self) -> u64;
    /// The device's sector size: 512 or 4096.
    fn sector_size(&self) -> u32 {
        512
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError>;
    /// Make every write before this call durable.
    fn flush(&mut self) -> Result<(), DeviceError>;
    /// Make `[offset, offset + len)` read as zeros. Devices that can do better than writing
    /// zero buffers (sparse files, unallocated VHD blocks) override it.
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        const CHUNK: usize = 64 * 1024;
        let zeros = vec![0u8; CHUNK];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            self.write_at(offset + done, &zeros[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

/// Forwards every method to the device behind a pointer, so `&mut D` and `Box<D>` are
/// devices too (a volume over a borrowed device, a boxed device chosen at run time).
macro_rules! forward_block_device {
    ($($ptr:ty),*) => {$(
        impl<T: BlockDevice + ?Sized> BlockDevice for $ptr {
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
    )*};
}

forward_block_device!(&mut T, Box<T>);

/// Checks that `[offset, offset + len)` is sector aligned and inside a device of `size`.
pub fn check_range(offset: u64, len: usize, size: u64, sector: u32) -> Result<(), DeviceError> {
    let sector = u64::from(sector);
    if offset % sector != 0 || len as u64 % sector != 0 {
        return Err(DeviceError::new(DeviceErrorKind::Misaligned, offset));
    }
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(DeviceError::new(DeviceErrorKind::OutOfRange, offset)),
    }
}

/// Memory device, sparse: only chunks that were written hold memory, so a test can format
/// a 2 TiB volume in a few megabytes.
#[derive(Clone)]
pub struct MemDevice {
    size: u64,
    chunks: BTreeMap<u64, Box<[u8]>>,
}

const MEM_CHUNK: u64 = 64 * 1024;

impl fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MemDevice({} bytes, {} chunks)",
            self.size,
            self.chunks.len()
        )
    }
}

impl MemDevice {
    /// A zero-filled device of `size` bytes (rounded down to 512).
    pub fn new(size: u64) -> MemDevice {
        MemDevice {
            size: size - size % 512,
            chunks: BTreeMap::new(),
        }
    }

    /// A device holding exactly these bytes.
    pub fn from_bytes(bytes: &[u8]) -> MemDevice {
        let mut dev = MemDevice::new(bytes.len() as u64);
        let len = dev.size as usize;
        dev.put(0, &bytes[..len]);
        dev
    }

    /// The whole content (for small test devices).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.size as usize];
        self.get(0, &mut out);
        out
    }

    /// Bytes of memory in use.
    pub fn resident_bytes(&self) -> u64 {
        self.chunks.len() as u64 * MEM_CHUNK
    }

    /// Reads without alignment rules (for tests that inspect the image).
    pub fn get(&self, offset: u64, buf: &mut [u8]) {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (chunk, within) = (pos / MEM_CHUNK, (pos % MEM_CHUNK) as usize);
            let n = (buf.len() - done).min(MEM_CHUNK as usize - within);
            match self.chunks.get(&chunk) {
                Some(c) => buf[done..done + n].copy_from_slice(&c[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
    }

    /// Writes without alignment rules (for tests that damage the image on purpose).
    pub fn put(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (chunk, within) = (pos / MEM_CHUNK, (pos % MEM_CHUNK) as usize);
            let n = (data.len() - done).min(MEM_CHUNK as usize - within);
            let part = &data[done..done + n];
            if let Some(c) = self.chunks.get_mut(&chunk) {
                c[within..within + n].copy_from_slice(part);
            } else if part.iter().any(|&b| b != 0) {
                let mut c = vec![0u8; MEM_CHUNK as usize].into_boxed_slice();
                c[within..within + n].copy_from_slice(part);
                self.chunks.insert(chunk, c);
            }
            done += n;
        }
    }
}

impl BlockDevice for MemDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        check_range(offset, buf.len(), self.size, 512)?;
        self.get(offset, buf);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        check_range(offset, buf.len(), self.size, 512)?;
        self.put(offset, buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        check_range(offset, 0, self.size, 512)?;
        if len % 512 != 0 || offset + len > self.size {
            return Err(DeviceError::new(DeviceErrorKind::OutOfRange, offset));
        }
        let end = offset + len;
        let mut pos = offset;
        while pos < end {
            let chunk = pos / MEM_CHUNK;
            let chunk_end = (chunk + 1) * MEM_CHUNK;
            if pos % MEM_CHUNK == 0 && chunk_end <= end {
                self.chunks.remove(&chunk);
                pos = chunk_end;
            } else {
                let n = (end.min(chunk_end) - pos) as usize;
                if let Some(c) = self.chunks.get_mut(&chunk) {
                    let within = (pos % MEM_CHUNK) as usize;
                    c[within..within + n].fill(0);
                }
                pos += n as u64;
            }
        }
        Ok(())
    }
}

/// What a [`CountingDevice`] has seen.
#[derive(Debug, Clone, Default)]
pub struct IoCounts {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub written_bytes: u64,
    pub flushes: u64,
    /// Every write as (offset, length), in order, while recording is on.
    pub write_log: Vec<(u64, u64)>,
}

/// Counts every operation and logs write ranges: the base-invariant and granularity tests
/// look at what really reached the device instead of trusting the file system's word.
#[derive(Debug)]
pub struct CountingDevice<D> {
    inner: D,
    pub counts: IoCounts,
}

impl<D: BlockDevice> CountingDevice<D> {
    pub fn new(inner: D) -> Self {
        CountingDevice {
            inner,
            counts: IoCounts::default(),
        }
    }
    pub fn reset(&mut self) {
        self.counts = IoCounts::default();
    }
    pub fn inner(&self) -> &D {
        &self.inner
    }
    pub fn into_inner(self) -> D {
        self.inner
    }
}

impl<D: BlockDevice> BlockDevice for CountingDevice<D> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.counts.reads += 1;
        self.counts.read_bytes += buf.len() as u64;
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.counts.writes += 1;
        self.counts.written_bytes += buf.len() as u64;
        self.counts.write_log.push((offset, buf.len() as u64));
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.counts.flushes += 1;
        self.inner.flush()
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        self.counts.writes += 1;
        self.counts.written_bytes += len;
        self.counts.write_log.push((offset, len));
        self.inner.write_zeroes(offset, len)
    }
}

/// One recorded device operation.
#[derive(Debug, Clone)]
pub enum RecordedOp {
    Write { offset: u64, data: Vec<u8> },
    Flush,
}

/// Records every write and flush on top of a memory device, so a test can rebuild the image
/// that a crash after any prefix of the writes (and a torn last write) would leave.
#[derive(Debug, Clone)]
pub struct CrashRecorder {
    start: MemDevice,
    current: MemDevice,
    pub ops: Vec<RecordedOp>,
}

impl CrashRecorder {
    /// Starts recording on top of `start` (its content is the image before any recorded write).
    pub fn new(start: MemDevice) -> Self {
        CrashRecorder {
            current: start.clone(),
            start,
            ops: Vec::new(),
        }
    }

    /// Number of recorded writes.
    pub fn write_count(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, RecordedOp::Write { .. }))
            .count()
    }

    /// The device as it is now (all writes applied).
    pub fn current(&self) -> &MemDevice {
        &self.current
    }

    /// The image after the first `writes` writes, plus the first `torn_sectors` sectors of
    /// the next write when given (a write cut short by power loss).
    pub fn image_after(&self, writes: usize, torn_sectors: Option<usize>) -> MemDevice {
        let mut dev = self.start.clone();
        let mut applied = 0usize;
        for op in &self.ops {
            let RecordedOp::Write { offset, data } = op else {
                continue;
            };
            if applied == writes {
                if let Some(sectors) = torn_sectors {
                    let n = (sectors * 512).min(data.len());
                    dev.put(*offset, &data[..n]);
                }
                break;
            }
            dev.put(*offset, data);
            applied += 1;
        }
        dev
    }
}

impl BlockDevice for CrashRecorder {
    fn size(&self) -> u64 {
        self.current.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.current.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.current.write_at(offset, buf)?;
        self.ops.push(RecordedOp::Write {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.ops.push(RecordedOp::Flush);
        Ok(())
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), DeviceError> {
        // Recorded as a plain write so that replay sees it like any other.
        self.write_at(offset, &vec![0u8; len as usize])
    }
}

/// A device over a host file (or block device).
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct FileDevice {
    file: std::fs::File,
    size: u64,
    read_only: bool,
}

#[cfg(feature = "std")]
impl FileDevice {
    /// Opens `path`; its size is the device size (rounded down to 512).
    pub fn open(path: &std::path::Path, read_only: bool) -> std::io::Result<FileDevice> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)?;
        let len = file.metadata()?.len();
        Ok(FileDevice {
            file,
            size: len - len % 512,
            read_only,
        })
    }

    /// Wraps an open file.
    pub fn from_file(file: std::fs::File, read_only: bool) -> std::io::Result<FileDevice> {
        let len = file.metadata()?.len();
        Ok(FileDevice {
            file,
            size: len - len % 512,
            read_only,
        })
    }

    fn io_error(e: &std::io::Error, offset: u64) -> DeviceError {
        DeviceError::new(
            DeviceErrorKind::Io {
                code: e.raw_os_error().unwrap_or(-1),
            },
            offset,
        )
    }
}

#[cfg(feature = "std")]
impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        use std::os::unix::fs::FileExt;
        check_range(offset, buf.len(), self.size, 512)?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Self::io_error(&e, offset))
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        use std::os::unix::fs::FileExt;
        if self.read_only {
            return Err(DeviceError::new(DeviceErrorKind::ReadOnly, offset));
        }
        check_range(offset, buf.len(), self.size, 512)?;
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| Self::io_error(&e, offset))
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| Self::io_error(&e, 0))
    }
}
