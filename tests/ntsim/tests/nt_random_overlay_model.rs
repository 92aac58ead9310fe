//! Randomized: cached, non-cached and mapped reads and writes, section create/close, view
//! flushes, lazy writer, modified page writer and memory pressure steps, volume seal, file
//! and volume commit/discard through the FSCTLs, and remounts, against a model of the live
//! and base content. Every read must match the model (NT-03, NT-17, NT-19, NT-21) and, at
//! every remount, the base on the medium must be exactly what the last seal or commit made it
//! (NT-20). Non-cached writes are only issued while no view is mapped: with a view, Windows
//! promises no coherency (NT-17), so the model could not say what the view shows.

mod common;
use common::*;

use cowfat_fsctl::{
    FSCTL_COWFAT_COMMIT_FILE, FSCTL_COWFAT_COMMIT_VOLUME, FSCTL_COWFAT_DISCARD_FILE,
    FSCTL_COWFAT_DISCARD_VOLUME, FSCTL_COWFAT_SEAL_VOLUME,
};
use fs_core::time::{FixedClock, NtTime};
use fs_core::{MountOptions, Volume};
use ntsim::api::{Section, View};
use windows_sys::Win32::Foundation::{
    STATUS_ACCESS_VIOLATION, STATUS_DEVICE_DATA_ERROR, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_USER_BUFFER,
};

const SIZE: usize = 64 * 1024;
const SECTOR: usize = 512;
const PATH: &str = "\\r.bin";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A range inside the file, `align`-aligned, at most `max` long.
    fn range(&mut self, align: usize, max: usize) -> (usize, usize) {
        let units = SIZE / align;
        let start = self.below(units);
        let len = 1 + self.below((max / align).min(units - start));
        (start * align, len * align)
    }
    fn byte_range(&mut self) -> (usize, usize) {
        let start = self.below(SIZE);
        let len = 1 + self.below((SIZE - start).min(9000));
        (start, len)
    }
}

struct World {
    sim: Sim,
    cached: Option<Handle>,
    noncached: Option<Handle>,
    mapping: Option<(Section, View)>,
    live: Vec<u8>,
    base: Option<Vec<u8>>,
    counts: [u32; 16],
}

impl World {
    fn open_handles(&mut self) {
        let open = Open::read_write()
            .share(share::ALL)
            .disposition(disposition::FILE_OPEN);
        self.cached = Some(self.sim.create(PATH, &open).expect("cached handle"));
        self.noncached = Some(
            self.sim
                .create(PATH, &open.no_buffering())
                .expect("nc handle"),
        );
    }

    fn close_all(&mut self) {
        self.unmap();
        for h in [self.cached.take(), self.noncached.take()]
            .into_iter()
            .flatten()
        {
            self.sim.close(h);
        }
    }

    fn unmap(&mut self) {
        if let Some((s, v)) = self.mapping.take() {
            self.sim.unmap_view(v);
            self.sim.close_section(s);
        }
    }

    fn c(&self) -> Handle {
        self.cached.expect("cached handle open")
    }

    fn n(&self) -> Handle {
        self.noncached.expect("nc handle open")
    }

    fn pattern(rng: &mut Rng, len: usize) -> Vec<u8> {
        let seed = rng.next() as u8;
        (0..len).map(|i| seed.wrapping_add((i / 7) as u8)).collect()
    }

    /// The base on the medium (after a dismount) is the model's.
    fn check_base_on_medium(&self) {
        let clock = Box::new(FixedClock(NtTime(0)));
        let mut volume =
            Volume::mount(self.sim.medium(), MountOptions::new(clock)).expect("mount medium");
        let id = volume.resolve(PATH).expect("resolve");
        let mut live = vec![0u8; SIZE];
        volume.read(id, 0, &mut live).expect("read live");
        assert!(
            live == self.live,
            "live on the medium differs from the model"
        );
        if let Some(base) = &self.base {
            volume.discard_file(id).expect("discard");
            let mut on_disk = vec![0u8; SIZE];
            volume.read(id, 0, &mut on_disk).expect("read base");
            assert!(&on_disk == base, "the base changed (NT-20)");
        }
    }

    fn step(&mut self, rng: &mut Rng) {
        let op = rng.below(16);
        self.counts[op] += 1;
        let mapped = self.mapping.is_some();
        let sealed = self.base.is_some();
        match op {
            0 | 1 => {
                let (off, len) = rng.byte_range();
                let data = Self::pattern(rng, len);
                assert_eq!(self.sim.write(self.c(), Some(off as u64), &data), Ok(len));
                self.live[off..off + len].copy_from_slice(&data);
            }
            2 => {
                let (off, len) = rng.byte_range();
                let got = self
                    .sim
                    .read(self.c(), off as u64, len)
                    .expect("cached read");
                assert!(
                    got == self.live[off..off + len],
                    "cached read at {off}+{len}"
                );
            }
            3 if !mapped => {
                let (off, len) = rng.range(SECTOR, 16 * 1024);
                let data = Self::pattern(rng, len);
                assert_eq!(self.sim.write(self.n(), Some(off as u64), &data), Ok(len));
                self.live[off..off + len].copy_from_slice(&data);
            }
            4 => {
                let (off, len) = rng.range(SECTOR, 16 * 1024);
                let got = self.sim.read(self.n(), off as u64, len).expect("nc read");
                assert!(
                    got == self.live[off..off + len],
                    "non-cached read at {off}+{len}"
                );
            }
            5 | 6 => match self.mapping {
                Some((_, v)) => {
                    let (off, len) = rng.byte_range();
                    if op == 5 {
                        let data = Self::pattern(rng, len);
                        self.sim
                            .view_write(v, off as u64, &data)
                            .expect("view write");
                        self.live[off..off + len].copy_from_slice(&data);
                    } else {
                        let got = self.sim.view_read(v, off as u64, len).expect("view read");
                        assert!(got == self.live[off..off + len], "view read at {off}+{len}");
                    }
                }
                None => {
                    let s = self.sim.create_section(self.c(), true).expect("section");
                    let v = self.sim.map_view(s, 0, 0).expect("view");
                    self.mapping = Some((s, v));
                }
            },
            7 => self.unmap(),
            8 => {
                if let Some((_, v)) = self.mapping {
                    assert_eq!(self.sim.flush_view(v), status::STATUS_SUCCESS);
                }
                self.sim.lazy_writer();
            }
            9 => self.sim.modified_page_writer(),
            10 => self.sim.memory_pressure(),
            11 if !sealed => {
                let expected = if mapped {
                    status::STATUS_USER_MAPPED_FILE
                } else {
                    status::STATUS_SUCCESS
                };
                assert_eq!(self.sim.volume_fsctl(FSCTL_COWFAT_SEAL_VOLUME), expected);
                if !mapped {
                    self.base = Some(self.live.clone());
                }
            }
            12 | 13 if sealed => {
                let commit = op == 12;
                let code = if commit {
                    FSCTL_COWFAT_COMMIT_FILE
                } else {
                    FSCTL_COWFAT_DISCARD_FILE
                };
                let status = self.sim.fsctl_status(self.c(), code);
                if mapped {
                    assert_eq!(status, status::STATUS_USER_MAPPED_FILE);
                } else {
                    assert_eq!(status, status::STATUS_SUCCESS);
                    if commit {
                        self.base = Some(self.live.clone());
                    } else {
                        self.live.clone_from(self.base.as_ref().expect("sealed"));
                    }
                }
            }
            14 => {
                self.close_all();
                assert_eq!(self.sim.dismount(), status::STATUS_SUCCESS);
                self.check_base_on_medium();
                if sealed && rng.below(2) == 0 {
                    assert_eq!(
                        self.sim.volume_fsctl_locked(FSCTL_COWFAT_DISCARD_VOLUME),
                        status::STATUS_SUCCESS
                    );
                    self.live.clone_from(self.base.as_ref().expect("sealed"));
                } else if sealed {
                    assert_eq!(
                        self.sim.volume_fsctl(FSCTL_COWFAT_COMMIT_VOLUME),
                        status::STATUS_SUCCESS
                    );
                    self.base = Some(self.live.clone());
                }
                self.open_handles();
            }
            15 => self.hostile(rng),
            _ => {}
        }
    }

    /// NT-24..NT-26 at a low rate: an unmapped user buffer, a cached read while the disk
    /// fails, a cached read while the heap or pool fails, a FILE_OPEN while pool runs out. Each fails cleanly or succeeds; the overlay
    /// and the base stay as the model says.
    fn hostile(&mut self, rng: &mut Rng) {
        match rng.below(4) {
            0 => {
                let (off, len) = rng.range(SECTOR, 8 * 1024);
                let h = if rng.below(2) == 0 {
                    self.c()
                } else {
                    self.n()
                };
                let (off, len) = (off as u64, len as u32);
                let got = if rng.below(2) == 0 {
                    self.sim.write_unmapped(h, off, len)
                } else {
                    self.sim.read_unmapped(h, off, len)
                };
                assert!(
                    got == STATUS_INVALID_USER_BUFFER || got == STATUS_ACCESS_VIOLATION,
                    "unmapped buffer at {off}+{len}: {got:#x}"
                );
            }
            1 => {
                let (off, len) = rng.byte_range();
                self.sim.set_disk_read_error(true);
                let got = self.sim.read(self.c(), off as u64, len);
                self.sim.set_disk_read_error(false);
                if got != Err(STATUS_DEVICE_DATA_ERROR) {
                    assert!(
                        got.as_deref() == Ok(&self.live[off..off + len]),
                        "cached read at {off}+{len} while the disk fails"
                    );
                }
            }
            2 => {
                // A read while the heap or pool runs out: the live bytes, or no memory.
                let (off, len) = rng.byte_range();
                let n = 1 + rng.below(4) as u64;
                if rng.below(2) == 0 {
                    self.sim.fail_heap_allocation(Some(n));
                } else {
                    self.sim.fail_pool_allocation(Some(n));
                }
                let got = self.sim.read(self.c(), off as u64, len);
                self.sim.fail_heap_allocation(None);
                self.sim.fail_pool_allocation(None);
                if got != Err(STATUS_INSUFFICIENT_RESOURCES) {
                    assert!(
                        got.as_deref() == Ok(&self.live[off..off + len]),
                        "cached read at {off}+{len} while memory runs out"
                    );
                }
            }
            _ => {
                self.sim.fail_pool_allocation(Some(1 + rng.below(2) as u64));
                let open = Open::read_write()
                    .share(share::ALL)
                    .disposition(disposition::FILE_OPEN);
                let got = self.sim.create(PATH, &open);
                self.sim.fail_pool_allocation(None);
                match got {
                    Ok(h) => self.sim.close(h),
                    Err(s) => assert_eq!(s, STATUS_INSUFFICIENT_RESOURCES),
                }
            }
        }
    }
}

fn run(seed: u64, steps: usize) {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, PATH);
    let initial: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    sim.write(h, Some(0), &initial).expect("initial content");
    sim.close(h);
    let mut world = World {
        sim,
        cached: None,
        noncached: None,
        mapping: None,
        live: initial,
        base: None,
        counts: [0; 16],
    };
    world.open_handles();
    let mut rng = Rng(seed);
    for _ in 0..steps {
        world.step(&mut rng);
    }
    world.close_all();
    assert_eq!(world.sim.dismount(), status::STATUS_SUCCESS);
    world.check_base_on_medium();
    let World { sim, counts, .. } = world;
    assert!(
        counts.iter().all(|&c| c > 0),
        "every kind of step ran: {counts:?}"
    );
    finish_clean(sim);
}

#[test]
fn nt_random_overlay_model_cached_noncached_mapped_and_overlay_ops() {
    for seed in [
        0x9E37_79B9_7F4A_7C15,
        0xD1B5_4A32_D192_ED03,
        0x0123_4567_89AB_CDEF,
    ] {
        run(seed, 400);
    }
}
