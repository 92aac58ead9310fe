//! File data and attributes: read, write (copy-on-write where the base holds the cluster),
//! the three sizes NT keeps apart, attributes and times.

use alloc::vec::Vec;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ondisk::record::{RawRecord, RecordFlags};
use crate::stream::StreamKey;
use crate::types::{FileAttributes, FileId, FileInfo, FileKind, FileTimes, SetTimes};
use crate::volume::{zeroed, Tree, Volume};

/// Who is writing, which decides whether a write may move end of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// A user (top-level) write: extends FileSize and allocation as needed.
    Extend,
    /// A paging write (NT-14): never extends FileSize, is trimmed at end of file, needs no
    /// new allocation, leaves the times alone.
    Paging,
}

pub(crate) fn info_from(
    id: FileId,
    raw: &RawRecord,
    cluster_size: u32,
    parent_seq: u16,
) -> FileInfo {
    let directory = raw.flags().contains(RecordFlags::DIRECTORY);
    let mut attributes = FileAttributes::from_bits_truncate(raw.attributes.get());
    if directory {
        attributes |= FileAttributes::DIRECTORY;
    }
    FileInfo {
        id,
        kind: if directory {
            FileKind::Directory
        } else {
            FileKind::File
        },
        attributes,
        file_size: raw.file_size.get(),
        // Records are checked against the volume's cluster count when read, so this cannot
        // saturate; saturating keeps a record from anywhere else from wrapping.
        allocation_size: raw
            .cluster_count
            .get()
            .saturating_mul(u64::from(cluster_size)),
        valid_data_length: raw.valid_data_length.get(),
        times: FileTimes {
            creation: crate::time::NtTime(raw.creation_time.get()),
            last_access: crate::time::NtTime(raw.last_access_time.get()),
            last_write: crate::time::NtTime(raw.last_write_time.get()),
            change: crate::time::NtTime(raw.change_time.get()),
        },
        parent: FileId::new(raw.parent.get(), parent_seq),
    }
}

impl<D: BlockDevice> Volume<D> {
    /// What the file's record says.
    // Out of line: a caller that inlined it would carry its frame into its siblings' deep
    // calls (the driver's set-information path; NT-23, stack-report).
    #[inline(never)]
    pub fn info(&mut self, id: FileId) -> Result<FileInfo> {
        let raw = self.file_record(id)?;
        let parent_seq = self.record(Tree::Live, raw.parent.get())?.sequence.get();
        Ok(info_from(id, &raw, self.geo.cluster_size(), parent_seq))
    }

    fn data_record(&mut self, id: FileId) -> Result<RawRecord> {
        let raw = self.file_record(id)?;
        if raw.flags().contains(RecordFlags::DIRECTORY) {
            return Err(Error::IsADirectory);
        }
        Ok(raw)
    }

    /// Reads from `offset`; returns the bytes read (short at end of file). Bytes between
    /// ValidDataLength and FileSize read as zeros.
    pub fn read(&mut self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let raw = self.data_record(id)?;
        let size = raw.file_size.get();
        if offset >= size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(size - offset) as usize;
        let valid = raw.valid_data_length.get().clamp(offset, offset + n as u64);
        let from_disk = (valid - offset) as usize;
        self.read_stream(
            StreamKey::File(Tree::Live, id.record()),
            offset,
            &mut buf[..from_disk],
        )?;
        buf[from_disk..n].fill(0);
        Ok(n)
    }

    /// Reads stream bytes straight from their clusters, a run at a time.
    pub(crate) fn read_stream(&mut self, key: StreamKey, pos: u64, buf: &mut [u8]) -> Result<()> {
        let cs = u64::from(self.geo.cluster_size());
        let last_vcn = (pos + buf.len() as u64).saturating_sub(1) / cs;
        let mut done = 0usize;
        while done < buf.len() {
            let p = pos + done as u64;
            let map = self.extent_map_to(key, last_vcn)?;
            let run = map.run_at(p / cs).ok_or(Error::Corrupt {
                what: "file data past its clusters",
                at: 0,
            })?;
            let run_bytes = u64::from(run.len) * cs - p % cs;
            let n = (buf.len() - done).min(run_bytes as usize);
            let at = self.geo.cluster_offset(run.lcn) + p % cs;
            self.read_bytes(at, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Device read of any byte range: aligned sectors go straight, the ends through a bounce.
    pub(crate) fn read_bytes(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
        let sector = u64::from(self.dev.sector_size());
        let (start, end) = (
            at - at % sector,
            (at + buf.len() as u64).div_ceil(sector) * sector,
        );
        if start == at && end == at + buf.len() as u64 {
            return Ok(self.dev.read_at(at, buf)?);
        }
        let mut bounce = zeroed((end - start) as usize)?;
        self.dev.read_at(start, &mut bounce)?;
        let skip = (at - start) as usize;
        buf.copy_from_slice(&bounce[skip..skip + buf.len()]);
        Ok(())
    }

    /// Device write of any byte range: partial sectors at the ends are read, merged, written.
    pub(crate) fn write_bytes(&mut self, at: u64, data: &[u8]) -> Result<()> {
        let sector = u64::from(self.dev.sector_size());
        let (start, end) = (
            at - at % sector,
            (at + data.len() as u64).div_ceil(sector) * sector,
        );
        if start == at && end == at + data.len() as u64 {
            return Ok(self.dev.write_at(at, data)?);
        }
        let mut bounce = zeroed((end - start) as usize)?;
        self.dev.read_at(start, &mut bounce[..sector as usize])?;
        let tail = (end - sector - start) as usize;
        if tail > 0 {
            self.dev.read_at(end - sector, &mut bounce[tail..])?;
        }
        let skip = (at - start) as usize;
        bounce[skip..skip + data.len()].copy_from_slice(data);
        Ok(self.dev.write_at(start, &bounce)?)
    }

    /// Writes `data` at `offset`. See [`WriteMode`]. Returns the bytes written (a paging
    /// write past end of file is cut there).
    pub fn write_mode(
        &mut self,
        id: FileId,
        offset: u64,
        data: &[u8],
        mode: WriteMode,
    ) -> Result<usize> {
        // A paging write takes its metadata blocks from what the cache keeps for it.
        let paging = mode == WriteMode::Paging;
        if !paging {
            // What earlier paging writes used, given back while asking is allowed.
            self.cache.top_up()?;
        }
        self.cache.set_paging(paging);
        let written = self.write_mode_inner(id, offset, data, mode);
        self.cache.set_paging(false);
        written
    }

    fn write_mode_inner(
        &mut self,
        id: FileId,
        offset: u64,
        data: &[u8],
        mode: WriteMode,
    ) -> Result<usize> {
        self.writable()?;
        let raw = self.data_record(id)?;
        let cs = u64::from(self.geo.cluster_size());
        let size = raw.file_size.get();
        let len = match mode {
            WriteMode::Extend => data.len() as u64,
            WriteMode::Paging => (data.len() as u64).min(size.saturating_sub(offset)),
        };
        if len == 0 {
            return Ok(0);
        }
        let end = offset.checked_add(len).ok_or(Error::FileTooLarge)?;
        if end.div_ceil(cs) > u64::from(self.geo.cluster_count) {
            return Err(if mode == WriteMode::Extend {
                Error::NoSpace
            } else {
                Error::FileTooLarge
            });
        }
        self.make_room()?;
        let key = StreamKey::File(Tree::Live, id.record());
        let needed = end.div_ceil(cs);
        if needed > raw.cluster_count.get() {
            if mode == WriteMode::Paging {
                return Err(Error::InvalidArgument(
                    "a paging write beyond the file's allocation",
                ));
            }
            self.append_clusters(key, needed - raw.cluster_count.get(), false)?;
        }
        let vdl = raw.valid_data_length.get();
        if offset > vdl {
            self.zero_stream(key, vdl, offset)?;
        }
        self.write_stream(key, offset, &data[..len as usize])?;
        let mut raw = self.record(Tree::Live, id.record())?;
        raw.file_size.set(raw.file_size.get().max(end));
        raw.valid_data_length
            .set(raw.valid_data_length.get().max(end));
        if mode == WriteMode::Extend {
            let now = self.now().0;
            raw.last_write_time.set(now);
            raw.change_time.set(now);
            raw.attributes
                .set(raw.attributes.get() | FileAttributes::ARCHIVE.bits());
        }
        self.put_record(id.record(), &raw)?;
        Ok(len as usize)
    }

    /// A user write: extends the file as needed.
    pub fn write(&mut self, id: FileId, offset: u64, data: &[u8]) -> Result<usize> {
        self.write_mode(id, offset, data, WriteMode::Extend)
    }

    /// Writes zeros over `[from, to)` of a stream.
    fn zero_stream(&mut self, key: StreamKey, from: u64, to: u64) -> Result<()> {
        const CHUNK: u64 = 1 << 20;
        // A paging write asks for no memory (NT-26): it zeroes from a page of static zeros,
        // one page per transfer; anything else takes a chunk of up to 1 MiB.
        let owned = if self.cache.is_paging() {
            Vec::new()
        } else {
            zeroed(CHUNK.min(to - from) as usize)?
        };
        let zeros: &[u8] = if owned.is_empty() { &ZERO_PAGE } else { &owned };
        let step = zeros.len() as u64;
        let mut p = from;
        while p < to {
            let n = (to - p).min(step);
            self.write_stream(key, p, &zeros[..n as usize])?;
            p += n;
            self.make_room()?;
        }
        Ok(())
    }

    /// Writes `old`'s content with `piece` at `within` laid over it to `new`, through
    /// `cluster` (one cluster of scratch).
    fn copy_on_write(
        &mut self,
        old: u32,
        new: u32,
        cluster: &mut [u8],
        within: usize,
        piece: &[u8],
    ) -> Result<()> {
        if piece.len() != cluster.len() {
            self.read_bytes(self.geo.cluster_offset(old), cluster)?;
        }
        cluster[within..within + piece.len()].copy_from_slice(piece);
        self.write_bytes(self.geo.cluster_offset(new), cluster)
    }

    /// Writes stream bytes to their clusters; a cluster the base holds is moved first and
    /// what the write does not cover is copied from the base cluster (one cluster at a time:
    /// the overlay's granularity). Other clusters are written a contiguous run at a time.
    fn write_stream(&mut self, key: StreamKey, pos: u64, data: &[u8]) -> Result<()> {
        let cs = u64::from(self.geo.cluster_size());
        let end = pos + data.len() as u64;
        let mut p = pos;
        while p < end {
            let vcn = p / cs;
            let within = p % cs;
            let (lcn, moved_from) = self.make_writable(key, vcn)?;
            let piece = &data[(p - pos) as usize..];
            if let Some(old) = moved_from {
                let n = (cs - within).min(end - p) as usize;
                // The cluster buffer the volume took at mount: nothing to allocate after the
                // move (every byte of it is overwritten below).
                let mut cluster = core::mem::take(&mut self.cow_cluster);
                if cluster.len() != cs as usize {
                    cluster = zeroed(cs as usize)?;
                }
                let copied =
                    self.copy_on_write(old, lcn, &mut cluster, within as usize, &piece[..n]);
                self.cow_cluster = cluster;
                copied?;
                p += n as u64;
                continue;
            }
            let last_vcn = (end - 1) / cs;
            let run = self
                .extent_map_to(key, last_vcn)?
                .run_at(vcn)
                .ok_or(Error::Corrupt {
                    what: "file data past its clusters",
                    at: 0,
                })?;
            let mut clusters = 1u64;
            while clusters < u64::from(run.len)
                && vcn + clusters <= last_vcn
                && !self.is_base_cluster(run.lcn + clusters as u32)?
            {
                clusters += 1;
            }
            let n = ((vcn + clusters) * cs).min(end) - p;
            self.write_bytes(self.geo.cluster_offset(lcn) + within, &piece[..n as usize])?;
            p += n;
        }
        Ok(())
    }

    /// Sets end of file. Shrinking frees clusters past it and pulls ValidDataLength in;
    /// growing allocates clusters whose content reads as zeros (past ValidDataLength).
    pub fn set_file_size(&mut self, id: FileId, size: u64) -> Result<()> {
        self.writable()?;
        let raw = self.data_record(id)?;
        self.make_room()?;
        self.resize_allocation(id, size)?;
        let mut raw2 = self.record(Tree::Live, id.record())?;
        raw2.file_size.set(size);
        raw2.valid_data_length
            .set(raw.valid_data_length.get().min(size));
        let now = self.now().0;
        raw2.last_write_time.set(now);
        raw2.change_time.set(now);
        self.put_record(id.record(), &raw2)
    }

    /// Sets the allocation (rounded up to clusters). Below end of file it also cuts the file.
    // Out of line: a caller that inlined it would carry its frame into its siblings' deep
    // calls (the driver's set-information path; NT-23, stack-report).
    #[inline(never)]
    pub fn set_allocation_size(&mut self, id: FileId, bytes: u64) -> Result<()> {
        self.writable()?;
        self.data_record(id)?;
        self.make_room()?;
        self.resize_allocation(id, bytes)?;
        let alloc =
            bytes.div_ceil(u64::from(self.geo.cluster_size())) * u64::from(self.geo.cluster_size());
        let mut raw = self.record(Tree::Live, id.record())?;
        if raw.file_size.get() > alloc {
            raw.file_size.set(alloc);
            raw.valid_data_length
                .set(raw.valid_data_length.get().min(alloc));
            raw.change_time.set(self.now().0);
            self.put_record(id.record(), &raw)?;
        }
        Ok(())
    }

    fn resize_allocation(&mut self, id: FileId, bytes: u64) -> Result<()> {
        let cs = u64::from(self.geo.cluster_size());
        let want = bytes.div_ceil(cs);
        if want > u64::from(self.geo.cluster_count) {
            return Err(Error::NoSpace);
        }
        let key = StreamKey::File(Tree::Live, id.record());
        let have = self.extent_map(key)?.count();
        if want > have {
            self.append_clusters(key, want - have, false)
        } else {
            self.truncate_clusters(key, want)
        }
    }

    /// Raises ValidDataLength without writing (NT's SetFileValidData): the clusters' old
    /// content becomes readable, so callers must hold the privilege NT asks for.
    // Out of line: a caller that inlined it would carry its frame into its siblings' deep
    // calls (the driver's set-information path; NT-23, stack-report).
    #[inline(never)]
    pub fn set_valid_data_length(&mut self, id: FileId, vdl: u64) -> Result<()> {
        self.writable()?;
        let mut raw = self.data_record(id)?;
        if vdl > raw.file_size.get() || vdl < raw.valid_data_length.get() {
            return Err(Error::InvalidArgument(
                "valid data length must lie between its current value and end of file",
            ));
        }
        raw.valid_data_length.set(vdl);
        self.put_record(id.record(), &raw)
    }

    /// Sets the attribute bits a caller may set (see [`FileAttributes::SETTABLE`]).
    pub fn set_attributes(&mut self, id: FileId, attributes: FileAttributes) -> Result<()> {
        self.writable()?;
        let mut raw = self.file_record(id)?;
        raw.attributes
            .set((attributes & FileAttributes::SETTABLE).bits());
        raw.change_time.set(self.now().0);
        self.put_record(id.record(), &raw)
    }

    /// Sets any of the four times.
    pub fn set_times(&mut self, id: FileId, times: SetTimes) -> Result<()> {
        self.writable()?;
        let mut raw = self.file_record(id)?;
        let fields = [
            (times.creation, &mut raw.creation_time),
            (times.last_access, &mut raw.last_access_time),
            (times.last_write, &mut raw.last_write_time),
            (times.change, &mut raw.change_time),
        ];
        for (value, field) in fields {
            if let Some(t) = value {
                field.set(t.0);
            }
        }
        self.put_record(id.record(), &raw)
    }

    /// Up to `max` runs of a file's clusters, from the one holding stream cluster `from`
    /// (FSCTL_GET_RETRIEVAL_POINTERS). Cluster numbers are the volume's (from 2).
    pub fn file_extents(
        &mut self,
        id: FileId,
        from: u64,
        max: usize,
    ) -> Result<Vec<crate::types::Extent>> {
        self.file_record(id)?;
        let map = self.extent_map(StreamKey::File(Tree::Live, id.record()))?;
        let first = map
            .runs()
            .partition_point(|r| r.vcn + u64::from(r.len) <= from);
        Ok(map.runs()[first..]
            .iter()
            .take(max)
            .map(|r| crate::types::Extent {
                vcn: r.vcn,
                lcn: r.lcn,
                clusters: r.len,
            })
            .collect())
    }
}

/// Zeros a paging write extends valid data with: static, so that path allocates nothing.
static ZERO_PAGE: [u8; 4096] = [0; 4096];
