//! Plain file I/O the way the seed program does it: a handle, a file pointer, ReadFile /
//! WriteFile (read(2)/write(2)). Positional helpers seek first so the same code runs on Unix
//! and Windows without `FileExt`, whose Windows form moves the file pointer anyway.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Opens an existing file for reading and writing, like `CreateFile(OPEN_EXISTING,
/// GENERIC_READ | GENERIC_WRITE)`.
pub fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Creates (or empties) `path` and writes `contents` through a handle that is then closed.
pub fn create_with(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Writes `bytes` at `offset` (extending the file with zeros when past the end).
pub fn write_at(file: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Reads up to `len` bytes at `offset`; fewer only at end of file.
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The whole file through a fresh handle, the way another program would see it.
pub fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    fs::read(path)
}

pub fn size(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// Asks the kernel to forget clean cached pages, so the next read comes from the file
/// system's stored bytes rather than the page cache. Callers fsync what they care about
/// first: dirty pages are not dropped.
#[cfg(target_os = "linux")]
pub fn drop_caches() -> io::Result<()> {
    fs::write("/proc/sys/vm/drop_caches", b"3")
}

/// Windows has no user-level "drop the cache" knob for another file system's files.
#[cfg(not(target_os = "linux"))]
pub fn drop_caches() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "dropping the page cache is only supported on Linux",
    ))
}

/// `len` bytes of a recognisable pattern that differs per `seed`, so misplaced data shows.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'A' + ((i / 7 + usize::from(seed)) % 26) as u8)
        .collect()
}
