//! The multi-worker stress: N threads at once on one mounted volume, each with a seeded mix of
//! namespace and data operations (create, write, append, truncate, rename over files, unlink
//! while open and go on using the handle, mkdir/rmdir, mapped writes and reads, fsync), while
//! another process (`cowfat overlay ...`) seals and commits the whole volume and the workers
//! commit and discard single files.
//!
//! The model is exact under concurrency because every worker owns its directory and the files
//! in it: it knows every byte of them, including files it unlinked while a handle stays open.
//! The shared directory is where workers race on names (create exclusive, rename over,
//! unlink): there only existence rules hold (ENOENT/EEXIST are the only refusals) and every
//! file that survives must hold one complete stamp, which says who wrote it and what it is.
//!
//! A per-file discard is only exact when the worker knows the file's base: right after its
//! own per-file commit, and only if no volume seal or commit ran since (a volume operation
//! makes the base whatever the file held at that moment). The volume operations take
//! [`Overlay::epoch`] exclusively, so a worker can tell.
//!
//! At the end every file is read back through the mount and a manifest (path, length, hash)
//! is written, so `--verify MANIFEST` can check the same after an unmount and a remount.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::fileio;
use crate::mapping::View;
use crate::model::FileModel;
use crate::report::{describe_difference, Failure};

#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub workers: usize,
    /// Operations per worker.
    pub ops: u64,
    pub seed: u64,
    /// The `cowfat` program: with it, volume seal/commit run from another process every
    /// `overlay_every`, and workers commit and discard their own files.
    pub cowfat: Option<PathBuf>,
    pub overlay_every: Duration,
    /// Where to write the manifest of surviving files (for `--verify` after a remount).
    pub manifest: Option<PathBuf>,
}

/// How many of each operation ran and how the overlay operations ended.
#[derive(Debug, Default)]
pub struct Counts(BTreeMap<&'static str, u64>);

impl Counts {
    fn add(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }

    fn merge(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }

    pub fn get(&self, what: &str) -> u64 {
        self.0.get(what).copied().unwrap_or(0)
    }

    pub fn total_ops(&self) -> u64 {
        self.0
            .iter()
            .filter(|(k, _)| !k.contains(':'))
            .map(|(_, v)| v)
            .sum()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        f.write_str(&parts.join(", "))
    }
}

pub struct Summary {
    pub counts: Counts,
    pub failures: Vec<Failure>,
}

/// What the workers and the volume-operation thread share.
struct Overlay {
    cowfat: Option<PathBuf>,
    dir: PathBuf,
    /// Bumped by each volume seal or commit, which holds it exclusively while it runs.
    epoch: RwLock<u64>,
    sealed: AtomicBool,
}

/// One file a worker owns: its bytes, its name (None once unlinked) and its known base.
struct Object {
    model: FileModel,
    name: Option<String>,
    /// The content a per-file discard returns to, and the volume epoch it was known in.
    base: Option<(FileModel, u64)>,
}

const FILES: usize = 8;
const DIRS: usize = 3;
const SHARED_NAMES: usize = 12;
const MAX_HANDLES: usize = 4;
const MAX_WRITE: usize = 48 * 1024;
const MAX_SIZE: usize = 384 * 1024;

pub fn run(cfg: &Config) -> Summary {
    let overlay = Arc::new(Overlay {
        cowfat: cfg.cowfat.clone(),
        dir: cfg.dir.clone(),
        epoch: RwLock::new(0),
        sealed: AtomicBool::new(false),
    });
    let shared = cfg.dir.join("shared");
    let mut failures = Vec::new();
    if let Err(e) = fs::create_dir_all(&shared) {
        failures.push(Failure(format!("mkdir {}: {e}", shared.display())));
        return Summary {
            counts: Counts::default(),
            failures,
        };
    }
    let done = Arc::new(AtomicU64::new(0));
    let controller = cfg.cowfat.as_ref().map(|_| {
        let (overlay, done, every, workers) = (
            overlay.clone(),
            done.clone(),
            cfg.overlay_every,
            cfg.workers,
        );
        std::thread::spawn(move || volume_operations(&overlay, &done, every, workers as u64))
    });
    let results = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..cfg.workers)
        .map(|w| {
            let cfg = cfg.clone();
            let (overlay, done, results) = (overlay.clone(), done.clone(), results.clone());
            std::thread::spawn(move || {
                let mut worker = Worker::new(&cfg, w, overlay);
                let outcome = worker.run(cfg.ops);
                done.fetch_add(1, Ordering::SeqCst);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((w, worker, outcome));
            })
        })
        .collect();
    for h in handles {
        if h.join().is_err() {
            failures.push(Failure("a worker thread panicked".into()));
        }
    }
    let mut counts = Counts::default();
    if let Some(c) = controller {
        match c.join() {
            Ok(Ok(c)) => counts.merge(&c),
            Ok(Err(f)) => failures.push(f),
            Err(_) => failures.push(Failure("the overlay thread panicked".into())),
        }
    }
    let mut finished = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    finished.sort_by_key(|(w, _, _)| *w);
    let mut manifest = Vec::new();
    for (_, worker, outcome) in &mut finished {
        counts.merge(&worker.counts);
        if let Err(f) = outcome {
            failures.push(Failure(format!("seed {}: {f}", cfg.seed)));
            continue;
        }
        match worker.final_check() {
            Ok(mut entries) => manifest.append(&mut entries),
            Err(f) => failures.push(f),
        }
    }
    match check_shared(&shared) {
        Ok(mut entries) => manifest.append(&mut entries),
        Err(f) => failures.push(f),
    }
    if let (Some(path), true) = (&cfg.manifest, failures.is_empty()) {
        if let Err(e) = write_manifest(path, &manifest) {
            failures.push(Failure(format!("writing {}: {e}", path.display())));
        }
    }
    Summary { counts, failures }
}

/// The other process: volume seal, then commits, every `every`, until the workers are done.
fn volume_operations(
    overlay: &Overlay,
    done: &AtomicU64,
    every: Duration,
    workers: u64,
) -> Result<Counts, Failure> {
    let mut counts = Counts::default();
    let mut next = Instant::now() + every;
    while done.load(Ordering::SeqCst) < workers {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        next = Instant::now() + every;
        let mut epoch = overlay.epoch.write().unwrap_or_else(|p| p.into_inner());
        let action = if overlay.sealed.load(Ordering::SeqCst) {
            "commit"
        } else {
            "seal"
        };
        let out = overlay_command(overlay, &[action], None)?;
        if !out.0 {
            return Err(Failure(format!("volume {action} failed: {}", out.1)));
        }
        overlay.sealed.store(true, Ordering::SeqCst);
        *epoch += 1;
        counts.add(if action == "seal" {
            "overlay:volume-seal"
        } else {
            "overlay:volume-commit"
        });
    }
    Ok(counts)
}

/// Runs `cowfat overlay ARGS DIR [PATH]`: (succeeded, stderr).
fn overlay_command(
    overlay: &Overlay,
    args: &[&str],
    path: Option<&str>,
) -> Result<(bool, String), Failure> {
    let Some(cowfat) = &overlay.cowfat else {
        return Ok((false, "no cowfat program".into()));
    };
    let mut cmd = Command::new(cowfat);
    cmd.arg("overlay").args(args).arg(&overlay.dir);
    if let Some(p) = path {
        cmd.arg(p);
    }
    let out = cmd
        .output()
        .map_err(|e| Failure(format!("cannot run {}: {e}", cowfat.display())))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

struct Worker {
    id: usize,
    rng: fastrand::Rng,
    dir: PathBuf,
    shared: PathBuf,
    overlay: Arc<Overlay>,
    objects: Vec<Object>,
    names: BTreeMap<String, usize>,
    handles: Vec<(File, usize)>,
    dirs: BTreeSet<String>,
    counts: Counts,
    stamps: u64,
}

impl Worker {
    fn new(cfg: &Config, id: usize, overlay: Arc<Overlay>) -> Worker {
        Worker {
            id,
            rng: fastrand::Rng::with_seed(cfg.seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9)),
            dir: cfg.dir.join(format!("worker-{id}")),
            shared: cfg.dir.join("shared"),
            overlay,
            objects: Vec::new(),
            names: BTreeMap::new(),
            handles: Vec::new(),
            dirs: BTreeSet::new(),
            counts: Counts::default(),
            stamps: 0,
        }
    }

    fn run(&mut self, ops: u64) -> Result<(), Failure> {
        fs::create_dir_all(&self.dir).map_err(|e| self.fail("mkdir", "", e))?;
        for i in 0..ops {
            self.step()
                .map_err(|f| Failure(format!("worker {} operation {i}: {}", self.id, f.0)))?;
        }
        self.handles.clear();
        Ok(())
    }

    fn fail(&self, op: &str, what: &str, e: io::Error) -> Failure {
        Failure(format!("{op} {what}: {e}"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn random_name(&mut self) -> String {
        format!("f{}", self.rng.usize(..FILES))
    }

    fn data(&mut self, len: usize) -> Vec<u8> {
        let seed = self.rng.u8(..);
        let mut v = fileio::pattern(seed, len);
        // A few random bytes so equal patterns at other offsets cannot hide a misplacement.
        for b in v.iter_mut().step_by(509) {
            *b = self.rng.u8(..);
        }
        v
    }

    fn step(&mut self) -> Result<(), Failure> {
        match self.rng.u32(..100) {
            0..=17 => self.write(false),
            18..=23 => self.write(true),
            24..=31 => self.read_check(),
            32..=37 => self.truncate(),
            38..=43 => self.rename(),
            44..=48 => self.unlink(),
            49..=55 => self.open_handle(),
            56..=60 => self.close_handle(),
            61..=67 => self.handle_write(),
            68..=73 => self.mapped_write(),
            74..=76 => self.mapped_read(),
            77..=80 => self.fsync(),
            81..=83 => self.mkdir_rmdir(),
            84..=92 => self.shared_op(),
            93..=96 => self.commit_file(),
            _ => self.discard_file(),
        }
    }

    /// Creates the named object if the name is free (in the model and on disk).
    fn object_for(&mut self, name: &str) -> Result<usize, Failure> {
        if let Some(&o) = self.names.get(name) {
            return Ok(o);
        }
        File::create(self.path(name)).map_err(|e| self.fail("create", name, e))?;
        self.counts.add("create");
        self.objects.push(Object {
            model: FileModel::default(),
            name: Some(name.to_string()),
            base: None,
        });
        let o = self.objects.len() - 1;
        self.names.insert(name.to_string(), o);
        Ok(o)
    }

    fn write(&mut self, append: bool) -> Result<(), Failure> {
        let name = self.random_name();
        let o = self.object_for(&name)?;
        let len = self.rng.usize(1..MAX_WRITE);
        let cur = self.objects[o].model.len();
        let offset = if append {
            cur
        } else {
            self.rng.usize(..=cur.min(MAX_SIZE - MAX_WRITE) + 4096)
        };
        if offset + len > MAX_SIZE {
            return Ok(());
        }
        let data = self.data(len);
        let f = fileio::open_rw(&self.path(&name)).map_err(|e| self.fail("open", &name, e))?;
        fileio::write_at(&f, offset as u64, &data).map_err(|e| self.fail("write", &name, e))?;
        self.objects[o].model.write(offset, &data);
        self.counts.add(if append { "append" } else { "write" });
        Ok(())
    }

    fn read_check(&mut self) -> Result<(), Failure> {
        let name = self.random_name();
        self.counts.add("read");
        match (self.names.get(&name), fs::read(self.path(&name))) {
            (Some(&o), Ok(seen)) => compare(&name, self.objects[o].model.bytes(), &seen),
            (None, Err(e)) if e.kind() == ErrorKind::NotFound => Ok(()),
            (None, Ok(_)) => Err(Failure(format!("{name} exists but was removed"))),
            (Some(_), Err(e)) => Err(self.fail("read", &name, e)),
            (None, Err(e)) => Err(self.fail("read (absent)", &name, e)),
        }
    }

    fn truncate(&mut self) -> Result<(), Failure> {
        let name = self.random_name();
        let Some(&o) = self.names.get(&name) else {
            return Ok(());
        };
        let len = self.rng.usize(..MAX_SIZE);
        let f = fileio::open_rw(&self.path(&name)).map_err(|e| self.fail("open", &name, e))?;
        f.set_len(len as u64)
            .map_err(|e| self.fail("truncate", &name, e))?;
        self.objects[o].model.set_len(len);
        self.counts.add("truncate");
        Ok(())
    }

    fn rename(&mut self) -> Result<(), Failure> {
        let (from, to) = (self.random_name(), self.random_name());
        let Some(&o) = self.names.get(&from) else {
            return Ok(());
        };
        if from == to {
            return Ok(());
        }
        fs::rename(self.path(&from), self.path(&to)).map_err(|e| self.fail("rename", &from, e))?;
        self.names.remove(&from);
        if let Some(victim) = self.names.insert(to.clone(), o) {
            self.objects[victim].name = None;
        }
        self.objects[o].name = Some(to);
        self.counts.add("rename");
        Ok(())
    }

    fn unlink(&mut self) -> Result<(), Failure> {
        let name = self.random_name();
        let Some(o) = self.names.remove(&name) else {
            return Ok(());
        };
        fs::remove_file(self.path(&name)).map_err(|e| self.fail("unlink", &name, e))?;
        self.objects[o].name = None;
        let open = self.handles.iter().any(|(_, h)| *h == o);
        self.counts.add(if open { "unlink-open" } else { "unlink" });
        Ok(())
    }

    fn open_handle(&mut self) -> Result<(), Failure> {
        if self.handles.len() >= MAX_HANDLES {
            return self.close_handle();
        }
        let name = self.random_name();
        let o = self.object_for(&name)?;
        let f = fileio::open_rw(&self.path(&name)).map_err(|e| self.fail("open", &name, e))?;
        self.handles.push((f, o));
        self.counts.add("open");
        Ok(())
    }

    fn close_handle(&mut self) -> Result<(), Failure> {
        if !self.handles.is_empty() {
            let i = self.rng.usize(..self.handles.len());
            self.handles.swap_remove(i);
            self.counts.add("close");
        }
        Ok(())
    }

    /// A write (or a check) through a handle held open, whose file may be unlinked by now.
    fn handle_write(&mut self) -> Result<(), Failure> {
        if self.handles.is_empty() {
            return self.open_handle();
        }
        let i = self.rng.usize(..self.handles.len());
        let o = self.handles[i].1;
        let what = format!("handle on object {o}");
        if self.rng.bool() {
            let len = self.rng.usize(1..MAX_WRITE);
            let offset = self
                .rng
                .usize(..=self.objects[o].model.len().min(MAX_SIZE - len));
            let data = self.data(len);
            fileio::write_at(&self.handles[i].0, offset as u64, &data)
                .map_err(|e| self.fail("write", &what, e))?;
            self.objects[o].model.write(offset, &data);
            self.counts.add("handle-write");
        } else {
            let len = self.objects[o].model.len();
            let seen = fileio::read_at(&self.handles[i].0, 0, len + 1)
                .map_err(|e| self.fail("read", &what, e))?;
            compare(&what, self.objects[o].model.bytes(), &seen)?;
            self.counts.add("handle-read");
        }
        Ok(())
    }

    fn mapped_write(&mut self) -> Result<(), Failure> {
        let name = self.random_name();
        let Some(&o) = self.names.get(&name) else {
            return Ok(());
        };
        let size = self.objects[o].model.len();
        if size == 0 {
            return Ok(());
        }
        let f = fileio::open_rw(&self.path(&name)).map_err(|e| self.fail("open", &name, e))?;
        let mut view = View::map(&f, 0, Some(size)).map_err(|e| self.fail("mmap", &name, e))?;
        let at = self.rng.usize(..size);
        let len = self.rng.usize(1..=(size - at).min(MAX_WRITE));
        let data = self.data(len);
        view.write(at, &data);
        self.objects[o].model.store(at, &data);
        if self.rng.bool() {
            view.flush().map_err(|e| self.fail("msync", &name, e))?;
        }
        view.unmap();
        self.counts.add("mapped-write");
        Ok(())
    }

    fn mapped_read(&mut self) -> Result<(), Failure> {
        let name = self.random_name();
        let Some(&o) = self.names.get(&name) else {
            return Ok(());
        };
        let size = self.objects[o].model.len();
        if size == 0 {
            return Ok(());
        }
        let f = fileio::open_rw(&self.path(&name)).map_err(|e| self.fail("open", &name, e))?;
        let view = View::map(&f, 0, Some(size)).map_err(|e| self.fail("mmap", &name, e))?;
        let seen = view.read(0, size);
        view.unmap();
        self.counts.add("mapped-read");
        compare(
            &format!("{name} (mapped)"),
            self.objects[o].model.bytes(),
            &seen,
        )
    }

    fn fsync(&mut self) -> Result<(), Failure> {
        if let Some((f, _)) = self.handles.first() {
            f.sync_all().map_err(|e| self.fail("fsync", "handle", e))?;
        } else {
            let name = self.random_name();
            if self.names.contains_key(&name) {
                let f =
                    fileio::open_rw(&self.path(&name)).map_err(|e| self.fail("open", &name, e))?;
                f.sync_all().map_err(|e| self.fail("fsync", &name, e))?;
            }
        }
        self.counts.add("fsync");
        Ok(())
    }

    fn mkdir_rmdir(&mut self) -> Result<(), Failure> {
        let name = format!("d{}", self.rng.usize(..DIRS));
        let path = self.path(&name);
        if self.dirs.remove(&name) {
            fs::remove_dir(&path).map_err(|e| self.fail("rmdir", &name, e))?;
            self.counts.add("rmdir");
        } else {
            fs::create_dir(&path).map_err(|e| self.fail("mkdir", &name, e))?;
            self.dirs.insert(name);
            self.counts.add("mkdir");
        }
        Ok(())
    }

    /// Races with the other workers on shared names: only ENOENT and EEXIST may refuse.
    fn shared_op(&mut self) -> Result<(), Failure> {
        let name = format!("s{}", self.rng.usize(..SHARED_NAMES));
        let path = self.shared.join(&name);
        let tolerated =
            |e: &io::Error| matches!(e.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists);
        let done = match self.rng.u32(..3) {
            0 => {
                self.stamps += 1;
                let stamp = stamp(self.id, self.stamps, self.rng.usize(64..40_000));
                let created = OpenOptions::new().write(true).create_new(true).open(&path);
                match created {
                    // Written in pieces: others may rename or unlink it meanwhile.
                    Ok(f) => stamp
                        .chunks(16 * 1024)
                        .enumerate()
                        .try_for_each(|(i, c)| fileio::write_at(&f, (i * 16 * 1024) as u64, c)),
                    Err(e) => Err(e),
                }
            }
            1 => {
                let to = self
                    .shared
                    .join(format!("s{}", self.rng.usize(..SHARED_NAMES)));
                fs::rename(&path, to)
            }
            _ => fs::remove_file(&path),
        };
        match done {
            Err(e) if !tolerated(&e) => Err(self.fail("shared", &name, e)),
            _ => {
                self.counts.add("shared");
                Ok(())
            }
        }
    }

    /// A per-file commit of a closed file: afterwards its base is what the model holds.
    fn commit_file(&mut self) -> Result<(), Failure> {
        let name = self.random_name();
        let Some(&o) = self.names.get(&name) else {
            return Ok(());
        };
        if self.overlay.cowfat.is_none() {
            return Ok(());
        }
        let overlay = self.overlay.clone();
        let epoch = overlay.epoch.read().unwrap_or_else(|p| p.into_inner());
        // What the kernel still caches (writeback cache, held handles) goes out first, so the
        // commit takes what the model holds.
        let f = fileio::open_rw(&self.path(&name)).map_err(|e| self.fail("open", &name, e))?;
        f.sync_all().map_err(|e| self.fail("fsync", &name, e))?;
        let rel = format!("worker-{}/{name}", self.id);
        let (ok, why) = overlay_command(&overlay, &["commit"], Some(&rel))?;
        if ok {
            let base = self.objects[o].model.clone();
            self.objects[o].base = Some((base, *epoch));
            self.counts.add("overlay:file-commit");
        } else if why.contains("not sealed") || why.contains("no base version") {
            self.counts.add("overlay:file-commit-refused");
        } else {
            return Err(Failure(format!("commit {name}: {why}")));
        }
        Ok(())
    }

    /// A per-file discard where the base is known exactly (see the module comment).
    fn discard_file(&mut self) -> Result<(), Failure> {
        let name = self.random_name();
        let Some(&o) = self.names.get(&name) else {
            return Ok(());
        };
        let overlay = self.overlay.clone();
        let epoch = overlay.epoch.read().unwrap_or_else(|p| p.into_inner());
        let base = match &self.objects[o].base {
            Some((base, at)) if *at == *epoch => base.clone(),
            _ => return Ok(()),
        };
        // A discard is refused while the file is open; close this worker's handles on it.
        self.handles.retain(|(_, h)| *h != o);
        let rel = format!("worker-{}/{name}", self.id);
        let mut answer = overlay_command(&overlay, &["discard"], Some(&rel))?;
        // The kernel sends a close's release asynchronously: the mount may not have seen it.
        for _ in 0..50 {
            if answer.0 || !answer.1.contains("is open") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            answer = overlay_command(&overlay, &["discard"], Some(&rel))?;
        }
        let (ok, why) = answer;
        if ok {
            self.objects[o].model = base;
            self.counts.add("overlay:file-discard");
        } else if why.contains("--writeback-cache") {
            self.counts.add("overlay:file-discard-refused");
        } else {
            return Err(Failure(format!("discard {name}: {why}")));
        }
        Ok(())
    }

    /// Every named file read back whole, and nothing else in the directory.
    fn final_check(&mut self) -> Result<Vec<(String, Vec<u8>)>, Failure> {
        let mut listed = BTreeSet::new();
        for e in fs::read_dir(&self.dir).map_err(|e| self.fail("readdir", "", e))? {
            let e = e.map_err(|e| self.fail("readdir", "", e))?;
            listed.insert(e.file_name().to_string_lossy().into_owned());
        }
        let expected: BTreeSet<String> =
            self.names.keys().chain(self.dirs.iter()).cloned().collect();
        if listed != expected {
            return Err(Failure(format!(
                "worker {}: directory holds {listed:?}, expected {expected:?}",
                self.id
            )));
        }
        let mut manifest = Vec::new();
        for (name, &o) in &self.names {
            let seen = fs::read(self.path(name)).map_err(|e| self.fail("read", name, e))?;
            compare(name, self.objects[o].model.bytes(), &seen)?;
            manifest.push((format!("worker-{}/{name}", self.id), seen));
        }
        for d in &self.dirs {
            manifest.push((format!("worker-{}/{d}/", self.id), Vec::new()));
        }
        Ok(manifest)
    }
}

fn compare(what: &str, expected: &[u8], seen: &[u8]) -> Result<(), Failure> {
    if expected == seen {
        Ok(())
    } else {
        Err(Failure(format!(
            "{what}: {}",
            describe_difference(expected, seen)
        )))
    }
}

/// A shared file's whole content: a header naming its writer, then bytes derived from it.
fn stamp(worker: usize, serial: u64, len: usize) -> Vec<u8> {
    let mut v = format!("stamp {worker} {serial} {len}\n").into_bytes();
    let mut rng = fastrand::Rng::with_seed((worker as u64) << 32 | serial);
    while v.len() < len {
        v.push(rng.u8(..));
    }
    v.truncate(len);
    v
}

fn check_stamp(name: &str, bytes: &[u8]) -> Result<(), Failure> {
    let header = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let fields: Vec<&str> = std::str::from_utf8(header)
        .unwrap_or("")
        .split(' ')
        .collect();
    let parsed = match fields.as_slice() {
        ["stamp", w, s, l] => w
            .parse()
            .ok()
            .zip(s.parse().ok())
            .zip(l.parse().ok())
            .map(|((w, s), l)| stamp(w, s, l)),
        _ => None,
    };
    match parsed {
        Some(expected) => compare(&format!("shared/{name}"), &expected, bytes),
        None => Err(Failure(format!(
            "shared/{name}: not one complete stamp (starts {:?})",
            String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        ))),
    }
}

fn check_shared(shared: &Path) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    let mut manifest = Vec::new();
    let entries = fs::read_dir(shared).map_err(|e| Failure(format!("readdir shared: {e}")))?;
    for e in entries {
        let e = e.map_err(|e| Failure(format!("readdir shared: {e}")))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let bytes = fs::read(e.path()).map_err(|e| Failure(format!("read shared/{name}: {e}")))?;
        check_stamp(&name, &bytes)?;
        manifest.push((format!("shared/{name}"), bytes));
    }
    Ok(manifest)
}

fn hash(bytes: &[u8]) -> u64 {
    // SipHash with fixed keys: the same in the run and in the later `--verify` of one build.
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// One line per surviving file: `LENGTH HASH PATH` (a directory: `dir - PATH/`).
fn write_manifest(path: &Path, entries: &[(String, Vec<u8>)]) -> io::Result<()> {
    let lines: Vec<String> = entries
        .iter()
        .map(|(p, bytes)| {
            if p.ends_with('/') {
                format!("dir - {p}")
            } else {
                format!("{} {:016x} {p}", bytes.len(), hash(bytes))
            }
        })
        .collect();
    fs::write(path, lines.join("\n") + "\n")
}

/// Checks a mounted volume against a manifest: every listed file with its length and hash,
/// and no other file in the workers' and the shared directories. Returns files checked.
pub fn verify(dir: &Path, manifest: &Path) -> Result<u64, Failure> {
    let text = fs::read_to_string(manifest)
        .map_err(|e| Failure(format!("reading {}: {e}", manifest.display())))?;
    let mut expected = BTreeSet::new();
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ' ');
        let (len, h, rel) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let path = dir.join(rel.trim_end_matches('/'));
        expected.insert(rel.trim_end_matches('/').to_string());
        if len == "dir" {
            if !path.is_dir() {
                return Err(Failure(format!("{rel}: directory missing")));
            }
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| Failure(format!("read {rel}: {e}")))?;
        let seen = format!("{} {:016x}", bytes.len(), hash(&bytes));
        if seen != format!("{len} {h}") {
            return Err(Failure(format!(
                "{rel}: expected length and hash {len} {h}, saw {seen}"
            )));
        }
        checked += 1;
    }
    for top in fs::read_dir(dir).map_err(|e| Failure(format!("readdir: {e}")))? {
        let top = top.map_err(|e| Failure(format!("readdir: {e}")))?;
        let tname = top.file_name().to_string_lossy().into_owned();
        if !top.path().is_dir() {
            continue;
        }
        for e in fs::read_dir(top.path()).map_err(|e| Failure(format!("readdir: {e}")))? {
            let e = e.map_err(|e| Failure(format!("readdir: {e}")))?;
            let rel = format!("{tname}/{}", e.file_name().to_string_lossy());
            if !expected.contains(&rel) {
                return Err(Failure(format!("{rel}: present but not in the manifest")));
            }
        }
    }
    Ok(checked)
}
