//! The randomized exerciser: read, write, mapped read, mapped write (then msync or plain
//! munmap), truncate, fsync, close/reopen and long-lived views over a few files, every read
//! checked against the [`FileModel`]. Every `drop_caches_every` operations all views and
//! handles are closed, the files fsynced, the page cache dropped and every file read back
//! whole, so what is checked is what the file system stored, not what the kernel cached.
//!
//! Deterministic for a seed: operations and data come from one seeded PRNG and nothing else
//! (no clocks, no thread timing), so `--seed S` replays a failure.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::fileio;
use crate::mapping::{ReadView, View, PAGE};
use crate::model::FileModel;
use crate::report::{describe_difference, first_difference, Failure};

#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub ops: u64,
    pub seed: u64,
    pub files: usize,
    pub max_size: usize,
    /// Drop the page cache every N operations (None: never).
    pub drop_caches_every: Option<u64>,
    /// Go on without cache drops when they are not possible, instead of failing.
    pub no_drop_ok: bool,
    /// Self-test: views lose their stores, as if the file system ignored dirty mapped pages.
    pub inject_fault: bool,
    /// Leave the files in DIR after a run that passed (a failed run always leaves them).
    pub keep: bool,
}

/// What a run ended with: operations that passed, and the failure that stopped it, if any.
#[derive(Debug)]
pub struct Summary {
    pub passed: u64,
    pub failure: Option<Failure>,
    /// How many of each operation ran, e.g. "Read 4012, Write 3987, ...", so a log shows
    /// what was covered.
    pub counts: String,
}

/// One file under test: its model, its open handle (if any) and a long-lived view (if any).
struct Subject {
    path: PathBuf,
    model: FileModel,
    handle: Option<File>,
    live: Option<View>,
}

/// What the next operation is, drawn with these weights.
#[derive(Debug, Clone, Copy)]
enum Op {
    Read,
    Write,
    MappedRead,
    MappedWrite,
    Truncate,
    Fsync,
    Reopen,
    MapLive,
    UnmapLive,
}

const WEIGHTS: &[(Op, u32)] = &[
    (Op::Read, 20),
    (Op::Write, 20),
    (Op::MappedRead, 12),
    (Op::MappedWrite, 16),
    (Op::Truncate, 6),
    (Op::Fsync, 4),
    (Op::Reopen, 5),
    (Op::MapLive, 8),
    (Op::UnmapLive, 2),
];

struct Run {
    cfg: Config,
    rng: fastrand::Rng,
    subjects: Vec<Subject>,
    /// Index of the operation being done, for failure messages.
    op_index: u64,
    drops_work: bool,
    /// Per-operation counts (same order as WEIGHTS), plus stores and loads via live views.
    counts: [u64; 9],
    via_live: u64,
}

pub fn run(cfg: Config) -> Summary {
    let mut run = match Run::new(cfg) {
        Ok(run) => run,
        Err(failure) => {
            return Summary {
                passed: 0,
                failure: Some(failure),
                counts: String::new(),
            }
        }
    };
    let failure = run.all_ops().err();
    let passed = run.op_index;
    run.close_all();
    if failure.is_none() && !run.cfg.keep {
        run.remove_files();
    }
    let counts = run.counts_text();
    Summary {
        passed,
        failure,
        counts,
    }
}

impl Run {
    fn new(cfg: Config) -> Result<Run, Failure> {
        let mut subjects = Vec::new();
        for i in 0..cfg.files {
            let path = cfg.dir.join(format!("exerciser-{i}.dat"));
            fileio::create_with(&path, b"").map_err(|e| io_failure(&path, "create", e))?;
            subjects.push(Subject {
                path,
                model: FileModel::default(),
                handle: None,
                live: None,
            });
        }
        Ok(Run {
            rng: fastrand::Rng::with_seed(cfg.seed),
            cfg,
            subjects,
            op_index: 0,
            drops_work: true,
            counts: [0; 9],
            via_live: 0,
        })
    }

    fn all_ops(&mut self) -> Result<(), Failure> {
        while self.op_index < self.cfg.ops {
            let which = self.rng.usize(..self.subjects.len());
            let op = self.pick_op();
            self.do_op(which, op)
                .map_err(|f| self.context(&format!("({op:?})"), f))?;
            self.op_index += 1;
            if let Some(every) = self.cfg.drop_caches_every {
                if self.op_index % every == 0 {
                    self.round()
                        .map_err(|f| self.context("(read-back round)", f))?;
                }
            }
        }
        // A last full read-back, so stores made since the last round are checked too.
        self.round()
            .map_err(|f| self.context("(final read-back)", f))
    }

    /// Prefixes a failure with what replays it: the seed and the operation index.
    fn context(&self, during: &str, f: Failure) -> Failure {
        Failure(format!(
            "seed {} op {} {during}: {f}",
            self.cfg.seed, self.op_index
        ))
    }

    fn pick_op(&mut self) -> Op {
        let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut n = self.rng.u32(..total);
        for (i, &(op, weight)) in WEIGHTS.iter().enumerate() {
            if n < weight {
                self.counts[i] += 1;
                return op;
            }
            n -= weight;
        }
        unreachable!("weights cover the range")
    }

    fn do_op(&mut self, which: usize, op: Op) -> Result<(), Failure> {
        match op {
            Op::Read => self.read(which),
            Op::Write => self.write(which),
            Op::MappedRead => self.mapped_read(which),
            Op::MappedWrite => self.mapped_write(which),
            Op::Truncate => self.truncate(which),
            Op::Fsync => {
                let path = self.subjects[which].path.clone();
                let file = self.handle(which)?;
                file.sync_all().map_err(|e| io_failure(&path, "fsync", e))
            }
            Op::Reopen => {
                // The live view (if any) stays: a view outlives the handle it came from.
                self.subjects[which].handle = None;
                self.handle(which).map(|_| ())
            }
            Op::MapLive => self.map_live(which),
            Op::UnmapLive => {
                self.unmap_live(which);
                Ok(())
            }
        }
    }

    /// The file's handle, opened when it has none.
    fn handle(&mut self, which: usize) -> Result<&File, Failure> {
        let s = &mut self.subjects[which];
        if s.handle.is_none() {
            let file = fileio::open_rw(&s.path).map_err(|e| io_failure(&s.path, "open", e))?;
            s.handle = Some(file);
        }
        Ok(s.handle.as_ref().expect("just opened"))
    }

    /// A length: mostly small, sometimes a page or two, sometimes large.
    fn length(&mut self) -> usize {
        let cap = match self.rng.u8(..10) {
            0..=4 => 64,
            5..=8 => 2 * PAGE,
            _ => self.cfg.max_size / 4,
        };
        self.rng.usize(1..=cap.clamp(1, self.cfg.max_size))
    }

    /// A random byte range inside the file, or None when it is empty.
    fn range_inside(&mut self, size: usize) -> Option<(usize, usize)> {
        if size == 0 {
            return None;
        }
        let offset = self.rng.usize(..size);
        let len = self.length().min(size - offset);
        Some((offset, len))
    }

    fn read(&mut self, which: usize) -> Result<(), Failure> {
        let size = self.subjects[which].model.len();
        let offset = self.rng.usize(..=size + PAGE);
        let len = self.length();
        let path = self.subjects[which].path.clone();
        let file = self.handle(which)?;
        let seen =
            fileio::read_at(file, offset as u64, len).map_err(|e| io_failure(&path, "read", e))?;
        let stored = fileio::size(file).map_err(|e| io_failure(&path, "stat", e))?;
        let model = &self.subjects[which].model;
        self.check("read", which, offset, model.read(offset, len), &seen)?;
        if stored != model.len() as u64 {
            return Err(self.mismatch_size(which, model.len(), stored));
        }
        Ok(())
    }

    fn write(&mut self, which: usize) -> Result<(), Failure> {
        let size = self.subjects[which].model.len();
        let len = self.length();
        let last_start = self.cfg.max_size.saturating_sub(len);
        // Sometimes past the end of file, leaving a gap that must read as zeros.
        let offset = self.rng.usize(..=(size + PAGE).min(last_start));
        let data = self.random_bytes(len);
        let path = self.subjects[which].path.clone();
        let file = self.handle(which)?;
        fileio::write_at(file, offset as u64, &data).map_err(|e| io_failure(&path, "write", e))?;
        self.subjects[which].model.write(offset, &data);
        Ok(())
    }

    /// A range for a mapped operation: half the time inside the live view (when there is
    /// one), so live views see stores and write()s from other paths while they stay mapped.
    fn mapped_range(&mut self, which: usize) -> Option<(usize, usize)> {
        let s = &self.subjects[which];
        let size = s.model.len();
        if let (Some(live), true) = (&s.live, self.rng.bool()) {
            let start = live.file_offset() as usize;
            let end = (start + live.len()).min(size);
            if start < end {
                let offset = self.rng.usize(start..end);
                let len = self.length().min(end - offset);
                return Some((offset, len));
            }
        }
        self.range_inside(size)
    }

    fn mapped_read(&mut self, which: usize) -> Result<(), Failure> {
        let Some((offset, len)) = self.mapped_range(which) else {
            return Ok(());
        };
        let seen = match live_covers(&self.subjects[which], offset, len) {
            Some(at) => self.subjects[which]
                .live
                .as_ref()
                .expect("covers")
                .read(at, len),
            None => {
                let path = self.subjects[which].path.clone();
                let file = self.handle(which)?;
                let view = ReadView::map(file, offset as u64, len)
                    .map_err(|e| io_failure(&path, "map read-only", e))?;
                view.read(0, len)
            }
        };
        let model = &self.subjects[which].model;
        self.check("mapped read", which, offset, model.read(offset, len), &seen)
    }

    /// Stores through the live view when it covers the range, else through a temporary view
    /// that is then either msynced and unmapped or just unmapped.
    fn mapped_write(&mut self, which: usize) -> Result<(), Failure> {
        let Some((offset, len)) = self.mapped_range(which) else {
            return Ok(());
        };
        let data = self.random_bytes(len);
        let flush = self.rng.bool();
        let path = self.subjects[which].path.clone();
        if let Some(at) = live_covers(&self.subjects[which], offset, len) {
            self.via_live += 1;
            let live = self.subjects[which].live.as_mut().expect("covers");
            live.write(at, &data);
            if flush {
                live.flush()
                    .map_err(|e| io_failure(&path, "msync live view", e))?;
            }
        } else {
            let lose = self.cfg.inject_fault;
            let file = self.handle(which)?;
            let mut view = View::map(file, offset as u64, Some(len))
                .map_err(|e| io_failure(&path, "map", e))?
                .lose_writes(lose);
            view.write(0, &data);
            if flush {
                view.flush().map_err(|e| io_failure(&path, "msync", e))?;
            }
            view.unmap();
        }
        self.subjects[which].model.store(offset, &data);
        Ok(())
    }

    fn truncate(&mut self, which: usize) -> Result<(), Failure> {
        let size = self.subjects[which].model.len();
        let new_len = if self.rng.bool() {
            self.rng.usize(..=size)
        } else {
            self.rng.usize(size..=self.cfg.max_size.max(size))
        };
        if self.live_blocks_shrink(which, new_len) {
            self.unmap_live(which);
        }
        let path = self.subjects[which].path.clone();
        let file = self.handle(which)?;
        file.set_len(new_len as u64)
            .map_err(|e| io_failure(&path, "truncate", e))?;
        self.subjects[which].model.set_len(new_len);
        Ok(())
    }

    /// Windows refuses any shrink while a view exists (ERROR_USER_MAPPED_FILE, NT-10); Linux
    /// allows it, but the view's pages past the new end would raise SIGBUS, so such a view is
    /// dropped first (live_covers also keeps later accesses inside the file).
    fn live_blocks_shrink(&self, which: usize, new_len: usize) -> bool {
        let s = &self.subjects[which];
        let Some(live) = &s.live else { return false };
        if new_len >= s.model.len() {
            return false;
        }
        cfg!(windows) || live.file_offset() as usize + live.len() > new_len
    }

    /// Maps a long-lived view: from a random (often page-aligned) offset to a random end,
    /// up to the whole file.
    fn map_live(&mut self, which: usize) -> Result<(), Failure> {
        self.unmap_live(which);
        let size = self.subjects[which].model.len();
        if size == 0 {
            return Ok(());
        }
        let mut offset = self.rng.usize(..size);
        if self.rng.bool() {
            offset -= offset % PAGE;
        }
        let len = self.rng.usize(1..=size - offset);
        let lose = self.cfg.inject_fault;
        let path = self.subjects[which].path.clone();
        let file = self.handle(which)?;
        let view = View::map(file, offset as u64, Some(len))
            .map_err(|e| io_failure(&path, "map live view", e))?
            .lose_writes(lose);
        self.subjects[which].live = Some(view);
        Ok(())
    }

    /// Drops the live view, half the time after an msync (the other half relies on munmap).
    fn unmap_live(&mut self, which: usize) {
        if let Some(view) = self.subjects[which].live.take() {
            if self.rng.bool() {
                // An msync error here would also show as lost data in the next read-back.
                let _ = view.flush();
            }
            view.unmap();
        }
    }

    /// End of a round: close everything, fsync, drop caches, read every file back whole.
    fn round(&mut self) -> Result<(), Failure> {
        for which in 0..self.subjects.len() {
            self.unmap_live(which);
            let s = &mut self.subjects[which];
            if let Some(file) = s.handle.take() {
                file.sync_all()
                    .map_err(|e| io_failure(&s.path, "fsync", e))?;
            }
        }
        if self.cfg.drop_caches_every.is_some() && self.drops_work {
            self.drop_caches()?;
        }
        for which in 0..self.subjects.len() {
            let s = &self.subjects[which];
            let seen =
                fileio::read_whole(&s.path).map_err(|e| io_failure(&s.path, "read back", e))?;
            self.check(
                "read-back after cache drop",
                which,
                0,
                s.model.bytes(),
                &seen,
            )?;
        }
        Ok(())
    }

    fn drop_caches(&mut self) -> Result<(), Failure> {
        let Err(e) = fileio::drop_caches() else {
            return Ok(());
        };
        let what =
            format!("cannot drop the page cache ({e}); stored bytes are not being read back");
        if !self.cfg.no_drop_ok {
            return Err(Failure(format!(
                "{what}: run as root on Linux, or pass --no-drop-ok"
            )));
        }
        // Said once; the run goes on checking against the cache.
        eprintln!("cowfat-exerciser: warning: {what}");
        self.drops_work = false;
        Ok(())
    }

    fn counts_text(&self) -> String {
        let mut parts: Vec<String> = WEIGHTS
            .iter()
            .zip(self.counts)
            .map(|((op, _), n)| format!("{op:?} {n}"))
            .collect();
        parts.push(format!(
            "(mapped ops through a live view: {})",
            self.via_live
        ));
        parts.join(", ")
    }

    fn remove_files(&self) {
        for s in &self.subjects {
            let _ = std::fs::remove_file(&s.path);
        }
    }

    fn close_all(&mut self) {
        for s in &mut self.subjects {
            s.live = None;
            s.handle = None;
        }
    }

    fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        let mut data = vec![0; len];
        self.rng.fill(&mut data);
        data
    }

    /// Compares what an operation saw with the model; the failure names the file, offset and
    /// the differing bytes (the caller adds seed and operation index).
    fn check(
        &self,
        what: &str,
        which: usize,
        offset: usize,
        want: &[u8],
        seen: &[u8],
    ) -> Result<(), Failure> {
        if want == seen {
            return Ok(());
        }
        let at = offset + first_difference(want, seen);
        Err(Failure(format!(
            "{what} of {} at offset {offset}, {} bytes: differs at file offset {at}: {}",
            self.subjects[which].path.display(),
            want.len(),
            describe_difference(want, seen)
        )))
    }

    fn mismatch_size(&self, which: usize, want: usize, seen: u64) -> Failure {
        Failure(format!(
            "size of {}: expected {want}, saw {seen}",
            self.subjects[which].path.display()
        ))
    }
}

/// Where `[offset, offset+len)` sits in the live view, if the view covers it.
fn live_covers(s: &Subject, offset: usize, len: usize) -> Option<usize> {
    let live = s.live.as_ref()?;
    let start = live.file_offset() as usize;
    let inside = offset >= start && offset + len <= start + live.len();
    // Never touch view bytes past the end of file (SIGBUS on Linux).
    (inside && offset + len <= s.model.len()).then(|| offset - start)
}

fn io_failure(path: &Path, what: &str, e: std::io::Error) -> Failure {
    Failure(format!(
        "{what} {}: expected success, saw error: {e}",
        path.display()
    ))
}
