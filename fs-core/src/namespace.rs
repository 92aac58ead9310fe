//! Names: lookup, path resolution, create, delete, rename and enumeration.

use alloc::vec::Vec;
use core::ops::Bound;

use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::name::Name;
use crate::ondisk::record::{RawRecord, RecordFlags, ROOT_RECORD};
use crate::stream::StreamKey;
use crate::types::{DirCursor, DirEntry, FileAttributes, FileId, FileKind};
use crate::volume::{Tree, Volume};

impl<D: BlockDevice> Volume<D> {
    /// The live record of a directory id.
    fn dir_record(&mut self, dir: FileId) -> Result<RawRecord> {
        let raw = self.file_record(dir)?;
        if !raw.flags().contains(RecordFlags::DIRECTORY) {
            return Err(Error::NotADirectory);
        }
        Ok(raw)
    }

    /// The file called `name` in directory `dir`.
    pub fn lookup(&mut self, dir: FileId, name: &Name) -> Result<FileId> {
        self.dir_record(dir)?;
        Ok(self
            .dir_lookup(dir.record(), name)?
            .ok_or(Error::NotFound)?
            .id)
    }

    /// The file at `path` (`/` or `\` separated, from the root; `.` and `..` understood).
    pub fn resolve(&mut self, path: &str) -> Result<FileId> {
        let mut id = self.root()?;
        for part in path
            .split(['/', '\\'])
            .filter(|p| !p.is_empty() && *p != ".")
        {
            id = if part == ".." {
                self.info(id)?.parent
            } else {
                self.lookup(id, &Name::from_str(part)?)?
            };
        }
        Ok(id)
    }

    /// The directory holding the file at `path` and the file's name.
    pub fn resolve_parent(&mut self, path: &str) -> Result<(FileId, Name)> {
        let trimmed = path.trim_end_matches(['/', '\\']);
        let (dir, name) = match trimmed.rfind(['/', '\\']) {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => ("", trimmed),
        };
        let name = Name::from_str(name)?;
        Ok((self.resolve(dir)?, name))
    }

    fn touch_directory(&mut self, dir: u32) -> Result<()> {
        let mut raw = self.record(Tree::Live, dir)?;
        let now = self.now().0;
        raw.last_write_time.set(now);
        raw.change_time.set(now);
        self.put_record(dir, &raw)
    }

    /// Creates a file or directory `name` in `dir`.
    pub fn create(
        &mut self,
        dir: FileId,
        name: &Name,
        kind: FileKind,
        attributes: FileAttributes,
    ) -> Result<FileId> {
        self.writable()?;
        self.dir_record(dir)?;
        if self.dir_lookup(dir.record(), name)?.is_some() {
            return Err(Error::AlreadyExists);
        }
        self.make_room()?;
        let (record, sequence) = self.allocate_record()?;
        let now = self.now().0;
        let mut raw = RawRecord::new_zeroed();
        let mut flags = RecordFlags::IN_USE;
        if kind == FileKind::Directory {
            flags |= RecordFlags::DIRECTORY;
        }
        raw.flags.set(flags.bits());
        raw.sequence.set(sequence);
        let mut attrs = attributes & FileAttributes::SETTABLE;
        if kind == FileKind::File {
            attrs |= FileAttributes::ARCHIVE;
        }
        raw.attributes.set(attrs.bits());
        raw.parent.set(dir.record());
        for t in [
            &mut raw.creation_time,
            &mut raw.last_access_time,
            &mut raw.last_write_time,
            &mut raw.change_time,
        ] {
            t.set(now);
        }
        self.put_record(record, &raw)?;
        let id = FileId::new(record, sequence);
        if kind == FileKind::Directory {
            // Only a cache of what the disk says: without room, the index is read on first use.
            let _ = self.dirs.insert(record, crate::dir::DirIndex::default());
        }
        if let Err(e) = self.dir_insert(dir.record(), name, id) {
            // No room for the name (a full volume): the record must not stay in use unnamed.
            self.free_record(record)?;
            return Err(e);
        }
        self.touch_directory(dir.record())?;
        Ok(id)
    }

    /// Removes `name` from `dir` and frees the file. A directory must be empty.
    pub fn delete(&mut self, dir: FileId, name: &Name) -> Result<()> {
        let id = self.unlink(dir, name)?;
        self.purge_orphan(id)
    }

    /// Removes `name` from `dir` but keeps the file as an orphan (for a file still open; see
    /// [`Volume::purge_orphan`]). An orphan left at a crash is freed at the next mount.
    pub fn unlink(&mut self, dir: FileId, name: &Name) -> Result<FileId> {
        self.writable()?;
        self.dir_record(dir)?;
        let entry = self
            .dir_lookup(dir.record(), name)?
            .ok_or(Error::NotFound)?;
        let mut raw = self.file_record(entry.id)?;
        if raw.flags().contains(RecordFlags::DIRECTORY)
            && !self.dir_index(entry.id.record())?.by_key.is_empty()
        {
            return Err(Error::DirectoryNotEmpty);
        }
        self.make_room()?;
        self.orphans.reserve(1)?;
        let key = self.upcase.key(name)?;
        self.dir_remove(dir.record(), &key)?;
        raw.flags.set((raw.flags() | RecordFlags::ORPHAN).bits());
        self.put_record(entry.id.record(), &raw)?;
        self.orphans.insert(entry.id.record())?;
        self.touch_directory(dir.record())?;
        Ok(entry.id)
    }

    /// Frees an orphan made by [`Volume::unlink`].
    pub fn purge_orphan(&mut self, id: FileId) -> Result<()> {
        self.writable()?;
        let raw = self.file_record(id)?;
        if !raw.flags().contains(RecordFlags::ORPHAN) {
            return Err(Error::InvalidArgument("the file still has a name"));
        }
        self.purge_record(id.record())
    }

    /// Frees a record's clusters and the record.
    pub(crate) fn purge_record(&mut self, record: u32) -> Result<()> {
        self.truncate_clusters(StreamKey::File(Tree::Live, record), 0)?;
        self.free_record(record)
    }

    /// Whether `ancestor` is `id` or one of the directories above it.
    fn is_within(&mut self, id: FileId, ancestor: FileId) -> Result<bool> {
        let mut current = id.record();
        for _ in 0..=self.record_capacity(Tree::Live) {
            if current == ancestor.record() {
                return Ok(true);
            }
            if current == ROOT_RECORD {
                return Ok(false);
            }
            current = self.record(Tree::Live, current)?.parent.get();
        }
        Err(Error::Corrupt {
            what: "directory parents form a loop",
            at: self.geo.state_offset,
        })
    }

    /// Renames or moves `src_dir/src_name` to `dst_dir/dst_name`. An existing target is
    /// replaced only when `replace` is set: a file by a file, an empty directory by a
    /// directory. A case-only rename of the same file is allowed.
    pub fn rename(
        &mut self,
        src_dir: FileId,
        src_name: &Name,
        dst_dir: FileId,
        dst_name: &Name,
        replace: bool,
    ) -> Result<()> {
        self.writable()?;
        self.dir_record(src_dir)?;
        self.dir_record(dst_dir)?;
        let src = self
            .dir_lookup(src_dir.record(), src_name)?
            .ok_or(Error::NotFound)?;
        let src_raw = self.file_record(src.id)?;
        let src_is_dir = src_raw.flags().contains(RecordFlags::DIRECTORY);
        if src_is_dir && self.is_within(dst_dir, src.id)? {
            return Err(Error::InvalidArgument(
                "a directory cannot be moved into itself",
            ));
        }
        self.make_room()?;
        if let Some(existing) = self.dir_lookup(dst_dir.record(), dst_name)? {
            if existing.id != src.id {
                if !replace {
                    return Err(Error::AlreadyExists);
                }
                let target_is_dir = self
                    .file_record(existing.id)?
                    .flags()
                    .contains(RecordFlags::DIRECTORY);
                match (src_is_dir, target_is_dir) {
                    (false, true) => return Err(Error::IsADirectory),
                    (true, false) => return Err(Error::NotADirectory),
                    _ => {}
                }
                self.delete(dst_dir, dst_name)?;
            }
        }
        let src_key = self.upcase.key(src_name)?;
        self.dir_remove(src_dir.record(), &src_key)?;
        if let Err(e) = self.dir_insert(dst_dir.record(), dst_name, src.id) {
            // No room for the new name (a full volume): the file keeps its old one, in the
            // slots just freed, rather than no name at all.
            self.dir_insert(src_dir.record(), src_name, src.id)?;
            return Err(e);
        }
        let mut raw = self.record(Tree::Live, src.id.record())?;
        raw.parent.set(dst_dir.record());
        raw.change_time.set(self.now().0);
        self.put_record(src.id.record(), &raw)?;
        self.touch_directory(src_dir.record())?;
        if dst_dir != src_dir {
            self.touch_directory(dst_dir.record())?;
        }
        Ok(())
    }

    /// Up to `max` entries of `dir` after `cursor`, in up-case name order, and the cursor to
    /// resume from (None when the directory has no more).
    pub fn read_dir(
        &mut self,
        dir: FileId,
        cursor: &DirCursor,
        max: usize,
    ) -> Result<(Vec<DirEntry>, Option<DirCursor>)> {
        self.dir_record(dir)?;
        let index = self.dir_index(dir.record())?;
        let lower = if cursor.key().is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(crate::mem::copied(cursor.key())?)
        };
        let mut picked: Vec<(Vec<u16>, FileId, Name)> = Vec::new();
        for (k, e) in index
            .by_key
            .range((lower, Bound::Unbounded))
            .take(max.saturating_add(1))
        {
            let item = (crate::mem::copied(k)?, e.id, e.name.try_clone()?);
            crate::mem::push(&mut picked, item)?;
        }
        let more = picked.len() > max;
        let mut entries = Vec::new();
        crate::mem::reserve(&mut entries, picked.len().min(max))?;
        let mut last_key = None;
        for (key, id, name) in picked.into_iter().take(max) {
            entries.push(DirEntry {
                name,
                info: self.info(id)?,
            });
            last_key = Some(key);
        }
        Ok((entries, if more { last_key.map(DirCursor) } else { None }))
    }

    /// Every entry of `dir`.
    pub fn list(&mut self, dir: FileId) -> Result<Vec<DirEntry>> {
        Ok(self.read_dir(dir, &DirCursor::start(), usize::MAX - 1)?.0)
    }

    /// The key a name sorts and resumes by in this volume.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`].
    pub fn name_key(&self, name: &Name) -> Result<Vec<u16>> {
        self.upcase.key(name)
    }
}
