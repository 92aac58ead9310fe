//! A randomized exerciser: long sequences of user-level operations (cached and non-cached
//! read/write, overwrite, sections, view read/write, flush, unmap, handle close) interleaved
//! with the lazy writer, the modified page writer and memory pressure, all through ntsim and
//! the driver, every read checked against a model of the files' contents. At the end the
//! medium is checked with fs-core (fsck, and the same contents).
//!
//! Hostile callers and a failing machine at low rates (NT-24..NT-26): reads and writes with
//! an unmapped user buffer (cached ones past end of file too: the size must not change),
//! cached reads while the disk fails, opens while pool runs out. Each must fail cleanly or
//! succeed, and change nothing the model does not know about.
//!
//! Deterministic: a fixed list of seeds; `NTSIM_SEED=<n>` and `NTSIM_OPS=<n>` replay one.
//! Rules the model relies on (so the checks are exact): views are written and read only
//! inside the current file size; non-cached writes are not issued while the file is mapped
//! (Windows promises no coherency there, NT-17); overwrite only when no section exists
//! (NT-10 refuses it otherwise, checked by its own test).

mod common;
use common::*;

use ntsim::{Section, View};
use windows_sys::Win32::Foundation::{
    STATUS_ACCESS_VIOLATION, STATUS_DEVICE_DATA_ERROR, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_USER_BUFFER,
};

const PAGE: u64 = 4096;
const FILES: [&str; 2] = ["\\r0.bin", "\\dir\\r1.bin"];

/// Short descriptions for failure messages (no multi-kilobyte dumps).
trait Summary {
    fn summary(&self, other: &Self) -> String;
}

impl Summary for Result<Vec<u8>, i32> {
    fn summary(&self, other: &Self) -> String {
        match (self, other) {
            (Ok(a), Ok(b)) => {
                let first = a.iter().zip(b).position(|(x, y)| x != y);
                format!("{} bytes (first difference at {first:?})", a.len())
            }
            (Ok(a), Err(_)) => format!("{} bytes", a.len()),
            (Err(s), _) => format!("status {s:#x}"),
        }
    }
}

impl<T: std::fmt::Debug> Summary for Result<T, i32>
where
    T: NotBytes,
{
    fn summary(&self, _: &Self) -> String {
        format!("{self:?}")
    }
}

impl Summary for Option<i32> {
    fn summary(&self, _: &Self) -> String {
        format!("{self:x?}")
    }
}

impl Summary for i32 {
    fn summary(&self, _: &Self) -> String {
        format!("{self:#x}")
    }
}

/// Marker for the debug-printed results.
trait NotBytes {}
impl NotBytes for usize {}
impl NotBytes for () {}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let fill = (self.next() & 0xFF) as u8;
        (0..n).map(|i| fill.wrapping_add((i % 251) as u8)).collect()
    }
}

#[derive(Default)]
struct FileState {
    model: Vec<u8>,
    cached: Option<Handle>,
    noncached: Option<Handle>,
    mapping: Option<(Section, View, u64)>,
}

struct Run {
    sim: Sim,
    rng: Rng,
    files: Vec<FileState>,
    log: Vec<String>,
}

impl Run {
    fn check<T: PartialEq + Summary>(&self, what: &str, got: T, want: T) {
        if got != want {
            let tail: Vec<_> = self.log.iter().rev().take(12).rev().collect();
            panic!(
                "{what}: got {}, want {}\nlast operations: {tail:#?}",
                got.summary(&want),
                want.summary(&got)
            );
        }
    }

    fn cached(&mut self, f: usize) -> Handle {
        if let Some(h) = self.files[f].cached {
            return h;
        }
        let h = open_rw(&mut self.sim, FILES[f]);
        self.files[f].cached = Some(h);
        h
    }

    fn noncached(&mut self, f: usize) -> Handle {
        if let Some(h) = self.files[f].noncached {
            return h;
        }
        let h = open_nc(&mut self.sim, FILES[f]);
        self.files[f].noncached = Some(h);
        h
    }

    fn model_write(&mut self, f: usize, offset: u64, data: &[u8]) {
        let model = &mut self.files[f].model;
        let end = offset as usize + data.len();
        if model.len() < end {
            model.resize(end, 0);
        }
        model[offset as usize..end].copy_from_slice(data);
    }

    fn expected_read(&self, f: usize, offset: u64, len: u64) -> Result<Vec<u8>, i32> {
        let model = &self.files[f].model;
        if offset >= model.len() as u64 {
            return Err(status::STATUS_END_OF_FILE);
        }
        let end = (offset + len).min(model.len() as u64);
        Ok(model[offset as usize..end as usize].to_vec())
    }

    fn step(&mut self) {
        let f = self.rng.below(FILES.len() as u64) as usize;
        if self.rng.below(16) == 0 {
            self.hostile(f);
            return;
        }
        match self.rng.below(20) {
            0..=3 => self.cached_write(f),
            4..=6 => self.cached_read(f),
            7 => self.noncached_write(f),
            8 => self.noncached_read(f),
            9 => self.map(f),
            10 | 11 => self.view_write(f),
            12 => self.view_read(f),
            13 => self.flush_or_unmap(f),
            14 => self.close_some(f),
            15 if self.rng.below(3) == 0 => self.delete_and_recreate(f),
            15 => self.overwrite(f),
            16 => {
                self.log.push("lazy writer".into());
                self.sim.lazy_writer();
            }
            17 => {
                self.log.push("modified page writer".into());
                self.sim.modified_page_writer();
            }
            _ => {
                self.log.push("memory pressure".into());
                self.sim.memory_pressure();
            }
        }
    }

    /// One hostile request or failure (NT-24..NT-26); the model does not change.
    fn hostile(&mut self, f: usize) {
        let bad = |s: i32| s == STATUS_INVALID_USER_BUFFER || s == STATUS_ACCESS_VIOLATION;
        match self.rng.below(8) {
            0 | 1 => {
                let h = if self.rng.below(2) == 0 {
                    self.cached(f)
                } else {
                    self.noncached(f)
                };
                let offset = self.rng.below(16) * 512;
                let len = (1 + self.rng.below(8)) as u32 * 512;
                let write = self.rng.below(2) == 0;
                self.log.push(format!(
                    "unmapped-buffer {} f{f} {offset}+{len}",
                    if write { "write" } else { "read" }
                ));
                let got = if write {
                    self.sim.write_unmapped(h, offset, len)
                } else {
                    self.sim.read_unmapped(h, offset, len)
                };
                // A read at or past end of file may say so before it touches the buffer.
                let eof = !write && offset >= self.files[f].model.len() as u64;
                if !(bad(got) || (eof && got == status::STATUS_END_OF_FILE)) {
                    self.check("unmapped buffer refused", got, STATUS_INVALID_USER_BUFFER);
                }
            }
            2 | 3 => {
                let offset = self.rng.below(7 * PAGE);
                let len = 1 + self.rng.below(2 * PAGE);
                let h = self.cached(f);
                self.log.push(format!(
                    "cached read f{f} {offset}+{len} while the disk fails"
                ));
                self.sim.set_disk_read_error(true);
                let got = self.sim.read(h, offset, len as usize);
                self.sim.set_disk_read_error(false);
                let want = self.expected_read(f, offset, len);
                if got != Err(STATUS_DEVICE_DATA_ERROR) {
                    self.check("cached read while the disk fails", got, want);
                }
            }
            6 | 7 => {
                // NT-26 on the heap or in pool: a read either returns the model's bytes or
                // says there was no memory, and changes nothing.
                let heap = self.rng.below(2) == 0;
                let n = 1 + self.rng.below(4);
                let (h, offset, len) = if self.rng.below(2) == 0 {
                    let offset = self.rng.below(7 * PAGE);
                    (self.cached(f), offset, 1 + self.rng.below(2 * PAGE))
                } else {
                    let offset = self.rng.below(56) * 512;
                    (self.noncached(f), offset, (1 + self.rng.below(16)) * 512)
                };
                self.log.push(format!(
                    "read f{f} {offset}+{len} with {} allocation {n} failing",
                    if heap { "heap" } else { "pool" }
                ));
                if heap {
                    self.sim.fail_heap_allocation(Some(n));
                } else {
                    self.sim.fail_pool_allocation(Some(n));
                }
                let got = self.sim.read(h, offset, len as usize);
                self.sim.fail_heap_allocation(None);
                self.sim.fail_pool_allocation(None);
                if got != Err(STATUS_INSUFFICIENT_RESOURCES) {
                    let want = self.expected_read(f, offset, len);
                    self.check("read while memory runs out", got, want);
                }
            }
            _ => {
                let n = 1 + self.rng.below(2);
                self.log
                    .push(format!("open f{f} with pool allocation {n} failing"));
                self.sim.fail_pool_allocation(Some(n));
                let got = self
                    .sim
                    .create(FILES[f], &Open::read_write().share(share::ALL));
                self.sim.fail_pool_allocation(None);
                match got {
                    Ok(h) => self.sim.close(h),
                    Err(s) => self.check("open without pool", s, STATUS_INSUFFICIENT_RESOURCES),
                }
            }
        }
    }

    fn cached_write(&mut self, f: usize) {
        let offset = self.rng.below(6 * PAGE);
        let len = 1 + self.rng.below(2 * PAGE) as usize;
        let data = self.rng.bytes(len);
        let h = self.cached(f);
        self.log.push(format!("cached write f{f} {offset}+{len}"));
        let got = self.sim.write(h, Some(offset), &data);
        self.check("cached write", got, Ok(len));
        self.model_write(f, offset, &data);
    }

    fn cached_read(&mut self, f: usize) {
        let offset = self.rng.below(7 * PAGE);
        let len = 1 + self.rng.below(2 * PAGE);
        let h = self.cached(f);
        self.log.push(format!("cached read f{f} {offset}+{len}"));
        let got = self.sim.read(h, offset, len as usize);
        let want = self.expected_read(f, offset, len);
        self.check("cached read", got, want);
    }

    fn noncached_write(&mut self, f: usize) {
        if self.files[f].mapping.is_some() {
            return;
        }
        let offset = self.rng.below(48) * 512;
        let len = (1 + self.rng.below(16)) as usize * 512;
        let data = self.rng.bytes(len);
        let h = self.noncached(f);
        self.log
            .push(format!("non-cached write f{f} {offset}+{len}"));
        let got = self.sim.write(h, Some(offset), &data);
        self.check("non-cached write", got, Ok(len));
        self.model_write(f, offset, &data);
    }

    fn noncached_read(&mut self, f: usize) {
        let offset = self.rng.below(56) * 512;
        let len = (1 + self.rng.below(16)) * 512;
        let h = self.noncached(f);
        self.log
            .push(format!("non-cached read f{f} {offset}+{len}"));
        let got = self.sim.read(h, offset, len as usize);
        let want = self.expected_read(f, offset, len);
        self.check("non-cached read", got, want);
    }

    fn map(&mut self, f: usize) {
        let size = self.files[f].model.len() as u64;
        if self.files[f].mapping.is_some() || size == 0 {
            return;
        }
        let h = self.cached(f);
        self.log.push(format!("map f{f} size {size}"));
        let section = self.sim.create_section(h, true);
        let Ok(section) = section else {
            panic!("create_section: {section:?}");
        };
        let view = self.sim.map_view(section, 0, 0);
        let Ok(view) = view else {
            panic!("map_view: {view:?}");
        };
        self.files[f].mapping = Some((section, view, size.div_ceil(PAGE) * PAGE));
    }

    /// The part of the view inside the current file size.
    fn view_window(&self, f: usize) -> Option<(View, u64)> {
        let (_, view, len) = self.files[f].mapping?;
        let limit = len.min(self.files[f].model.len() as u64);
        (limit > 0).then_some((view, limit))
    }

    fn view_write(&mut self, f: usize) {
        let Some((view, limit)) = self.view_window(f) else {
            return;
        };
        let offset = self.rng.below(limit);
        let len = 1 + self.rng.below((limit - offset).min(PAGE + 100));
        let data = self.rng.bytes(len as usize);
        self.log.push(format!("view write f{f} {offset}+{len}"));
        let got = self.sim.view_write(view, offset, &data);
        self.check("view write", got, Ok(()));
        self.model_write(f, offset, &data);
    }

    fn view_read(&mut self, f: usize) {
        let Some((view, limit)) = self.view_window(f) else {
            return;
        };
        let offset = self.rng.below(limit);
        let len = 1 + self.rng.below(limit - offset);
        self.log.push(format!("view read f{f} {offset}+{len}"));
        let got = self.sim.view_read(view, offset, len as usize);
        let want = self.expected_read(f, offset, len);
        self.check("view read", got, want);
    }

    fn flush_or_unmap(&mut self, f: usize) {
        let Some((section, view, _)) = self.files[f].mapping else {
            return;
        };
        if self.rng.below(2) == 0 {
            self.log.push(format!("flush view f{f}"));
            let got = self.sim.flush_view(view);
            self.check("flush view", got, status::STATUS_SUCCESS);
        } else {
            self.log.push(format!("unmap f{f}"));
            self.sim.unmap_view(view);
            self.sim.close_section(section);
            self.files[f].mapping = None;
        }
    }

    fn close_some(&mut self, f: usize) {
        let which = if self.rng.below(2) == 0 {
            self.files[f].cached.take()
        } else {
            self.files[f].noncached.take()
        };
        if let Some(h) = which {
            self.log.push(format!("close a handle of f{f}"));
            self.sim.close(h);
        }
    }

    fn overwrite(&mut self, f: usize) {
        if self.files[f].mapping.is_some() {
            return;
        }
        self.log.push(format!("overwrite f{f}"));
        let open = Open::read_write()
            .share(share::ALL)
            .disposition(disposition::FILE_OVERWRITE_IF);
        let h = self.sim.create(FILES[f], &open);
        let Ok(h) = h else {
            panic!("overwrite: {h:?}");
        };
        self.sim.close(h);
        self.files[f].model.clear();
    }

    /// Delete-on-close through its own handle after ours are closed; the file is gone, and
    /// the next open (`FILE_OPEN_IF`) creates it empty.
    fn delete_and_recreate(&mut self, f: usize) {
        if self.files[f].mapping.is_some() {
            return;
        }
        for h in [self.files[f].cached.take(), self.files[f].noncached.take()]
            .into_iter()
            .flatten()
        {
            self.sim.close(h);
        }
        self.log.push(format!("delete f{f}"));
        let doc = Open::new(access::GENERIC_READ | access::DELETE)
            .share(share::ALL)
            .disposition(disposition::FILE_OPEN)
            .options(options::FILE_DELETE_ON_CLOSE);
        match self.sim.create(FILES[f], &doc) {
            Ok(h) => self.sim.close(h),
            Err(s) => self.check(
                "delete-on-close open",
                s,
                status::STATUS_OBJECT_NAME_NOT_FOUND,
            ),
        }
        let gone = self.sim.create(
            FILES[f],
            &Open::read_write().disposition(disposition::FILE_OPEN),
        );
        self.check(
            "open after delete",
            gone.err(),
            Some(status::STATUS_OBJECT_NAME_NOT_FOUND),
        );
        self.files[f].model.clear();
    }

    fn close_everything(&mut self) {
        for f in 0..FILES.len() {
            if let Some((section, view, _)) = self.files[f].mapping.take() {
                self.sim.unmap_view(view);
                self.sim.close_section(section);
            }
            for h in [self.files[f].cached.take(), self.files[f].noncached.take()]
                .into_iter()
                .flatten()
            {
                self.sim.close(h);
            }
        }
    }
}

/// The content the sealed variant starts with (the base the overlay must never touch).
fn base_content(f: usize) -> Vec<u8> {
    (0..(3 * PAGE as usize + 100 * f))
        .map(|i| (i % 97) as u8 + 1)
        .collect()
}

/// A sealed volume holding `\dir` and both files with [`base_content`].
fn sealed_medium() -> fs_core::MemDevice {
    let clock = Box::new(fs_core::time::FixedClock(fs_core::time::NtTime(0)));
    let medium = ntsim::api::formatted(16 << 20);
    let mut volume =
        fs_core::Volume::mount(medium, fs_core::MountOptions::new(clock)).expect("mount");
    let root = volume.root().expect("root");
    let name = |s: &str| fs_core::Name::from_str(s).expect("name");
    let dir = volume
        .create(
            root,
            &name("dir"),
            fs_core::FileKind::Directory,
            fs_core::FileAttributes::empty(),
        )
        .expect("mkdir");
    for (f, (parent, leaf)) in [(root, "r0.bin"), (dir, "r1.bin")].into_iter().enumerate() {
        let id = volume
            .create(
                parent,
                &name(leaf),
                fs_core::FileKind::File,
                fs_core::FileAttributes::empty(),
            )
            .expect("create");
        volume.write(id, 0, &base_content(f)).expect("write");
    }
    volume.seal().expect("seal");
    volume.unmount().expect("unmount")
}

fn run(seed: u64, ops: usize) {
    // Seeds divisible by 3 start from a sealed volume: every write goes to the overlay and the
    // base must come out untouched (NT-19, NT-20).
    let sealed = seed.is_multiple_of(3);
    let mut sim = if sealed {
        Sim::with_medium(sealed_medium())
    } else {
        Sim::new()
    };
    // Odd seeds run on a disk that pends every request (the driver waits for completion).
    sim.set_disk_pending(seed % 2 == 1);
    if !sealed {
        let dir = Open::new(access::GENERIC_READ)
            .disposition(disposition::FILE_CREATE)
            .options(options::FILE_DIRECTORY_FILE);
        let d = sim.create("\\dir", &dir).expect("mkdir");
        sim.close(d);
    }
    let mut run = Run {
        sim,
        rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        files: (0..FILES.len())
            .map(|f| FileState {
                model: if sealed { base_content(f) } else { Vec::new() },
                ..FileState::default()
            })
            .collect(),
        log: Vec::new(),
    };
    for _ in 0..ops {
        run.step();
    }
    let trace = run.sim.trace();
    let paging_reads = paging_irps(&trace, mj::READ).len();
    let paging_writes = paging_irps(&trace, mj::WRITE).len();
    let closes = trace.iter().filter(|e| e.is_irp(mj::CLOSE)).count();
    eprintln!("seed {seed}: {paging_reads} paging reads, {paging_writes} paging writes, {closes} closes, {} pended disk requests", run.sim.disk_requests_pended());
    if ops >= 200 {
        assert!(
            paging_reads > 0 && paging_writes > 0 && closes > 0,
            "the run exercised too little"
        );
    }
    run.close_everything();
    // Everything the model says must be readable afresh, cached and not.
    for (f, path) in FILES.iter().enumerate() {
        let want = run.files[f].model.clone();
        let h = open_rw(&mut run.sim, path);
        let got = run.sim.read(h, 0, want.len() + 10);
        let expected = if want.is_empty() {
            Err(status::STATUS_END_OF_FILE)
        } else {
            Ok(want.clone())
        };
        run.check("final cached read", got, expected);
        run.sim.close(h);
    }
    assert_eq!(run.sim.dismount(), status::STATUS_SUCCESS);
    let medium = run.sim.medium();
    let models: Vec<Vec<u8>> = run.files.iter().map(|f| f.model.clone()).collect();
    finish_clean(run.sim);
    check_medium(medium, &models, sealed);
}

fn check_medium(medium: fs_core::MemDevice, models: &[Vec<u8>], sealed: bool) {
    let checked = fs_core::fsck::check(medium.clone(), false, &mut |_, _| {});
    assert!(
        checked.map(|(r, _)| r.is_clean()).unwrap_or(false),
        "fsck of the medium"
    );
    let clock = Box::new(fs_core::time::FixedClock(fs_core::time::NtTime(0)));
    let mut volume =
        fs_core::Volume::mount(medium, fs_core::MountOptions::new(clock)).expect("mount medium");
    for (path, model) in FILES.iter().zip(models) {
        let id = volume.resolve(path).expect("resolve");
        assert_eq!(
            volume.info(id).expect("info").file_size,
            model.len() as u64,
            "{path} size on the medium"
        );
        let mut buf = vec![0u8; model.len()];
        volume.read(id, 0, &mut buf).expect("read medium");
        assert!(buf == *model, "{path} content on the medium");
    }
    if sealed {
        // NT-20: whatever the driver did, the base is what was sealed.
        volume.discard().expect("discard the overlay");
        for (f, path) in FILES.iter().enumerate() {
            let id = volume.resolve(path).expect("resolve base");
            let want = base_content(f);
            let mut buf = vec![0u8; want.len() + 1];
            let n = volume.read(id, 0, &mut buf).expect("read base");
            assert!(
                n == want.len() && buf[..n] == want[..],
                "{path}: the sealed base changed"
            );
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[test]
fn nt_random_model_sequences_match_the_model() {
    let ops = env_u64("NTSIM_OPS").unwrap_or(400) as usize;
    if let Some(seed) = env_u64("NTSIM_SEED") {
        run(seed, ops);
        return;
    }
    for seed in 1..=15 {
        run(seed, ops);
    }
}
