//! Workload 1: the first write into a sealed (copy-on-write protected) file — open
//! read-write, write 1 byte at offset 0, fsync — for growing file sizes. cowfat moves one
//! cluster into its overlay; overlayfs and fuse-overlayfs copy the whole file up (as seed
//! 004's COWSTORAGE design does). The page cache stays warm: the copy-up peers read the
//! lower file from memory, their best case. Bytes written = the scratch device's counter
//! across the write plus a syncfs (so the host file system's journal is included). The
//! in-process note splits that repeat's time by device call (see `breakdown`): on a sparse
//! image the data flush is most of it, because the copied cluster lands in a hole and the
//! host file system allocates a block and commits its own journal inside that flush.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cap::{on_worker, Sample};
use crate::ctx::Ctx;
use crate::report::{fmt_bytes, fmt_secs, median, Side};
use crate::system::inproc::Op;
use crate::system::{inproc, mounted, pattern, MIB};
use crate::workload::size_label;

const W: &str = "first-write";
const FILE: &str = "big.bin";

/// Longer than the kernel's coarse clock tick (1 to 10 ms). A write changes a file's mtime
/// only when the coarse clock has moved since the last change, and when it has not, ext4's
/// fsync has no inode to log and skips its journal commit: back-to-back repeats of the
/// floor then measure a data write and a flush (4 KiB on the scratch device, 0.3 ms here)
/// instead of what a first write after a pause costs (the journal commit too: 20 KiB,
/// 0.9 ms). cowfat always logs the new mtime, so the floor waits this long before each
/// repeat, outside the timed region.
const TICK: Duration = Duration::from_millis(50);

pub fn run(ctx: &mut Ctx) -> Result<()> {
    for size in ctx.plan.first_write_sizes.clone() {
        let case = size_label(size);
        eprintln!("first write into a sealed {case} file");
        let image = ctx.scratch.dir.join(format!("fw-{}.vhd", size / MIB));
        let setup = setup_cowfat(ctx, &image, size).map_err(|e| e.to_string());
        let x = Some(size as f64);
        let ready = setup.clone().map(|_| ());
        // The disk's flush latency moves within seconds on a shared machine, and each row's
        // repeats run in a window of their own, so the rows' ratios to the floor row swing
        // widely. Each cowfat repeat therefore also times the floor's operation on a small
        // plain file right before it, and its note gives the ratio within the same moment.
        let floor_file = ctx.scratch.dir.join("fw-floor.bin");
        let floor_ready = write_floor_file(&floor_file).map_err(|e| format!("{e:#}"));
        let ready = ready.and(floor_ready);
        let mut paired = Paired::default();
        ctx.measure(
            W,
            &case,
            "cowfat in-process",
            Side::CowfatInProcess,
            None,
            x,
            ready.clone(),
            |c| in_process(c, &image, &floor_file, &mut paired),
        );
        let mut paired = Paired::default();
        let fuse_ready = ready.clone().and(ctx.need_cowfat().map(|_| ()));
        ctx.measure(
            W,
            &case,
            "cowfat FUSE",
            Side::CowfatFuse,
            None,
            x,
            fuse_ready,
            |c| through_fuse(c, &image, &floor_file, &mut paired),
        );
        ctx.scratch.remove(&image);
        ctx.scratch.remove(&floor_file);

        let lower = ctx.scratch.fresh("fw-lower")?;
        let lower_ready = write_lower(&lower, size).map_err(|e| format!("{e:#}"));
        let can = lower_ready.clone().and(ctx.need_root("kernel overlayfs"));
        ctx.measure(
            W,
            &case,
            "kernel overlayfs",
            Side::Peer,
            None,
            x,
            can,
            |c| overlay(c, &lower, false),
        );
        let can = lower_ready
            .clone()
            .and(ctx.need_fuse_tool("fuse-overlayfs"));
        ctx.measure(W, &case, "fuse-overlayfs", Side::Peer, None, x, can, |c| {
            overlay(c, &lower, true)
        });
        // No copy-on-write at all: the same 1-byte write and fsync on the plain file, what
        // this disk's flush costs. No first write can be faster than this. Each repeat
        // waits out the clock tick first (see `TICK`).
        ctx.measure(
            W,
            &case,
            "plain ext4 file (floor)",
            Side::Peer,
            None,
            x,
            lower_ready,
            |c| {
                std::thread::sleep(TICK);
                let before = c.scratch.written();
                let path = lower.join(FILE);
                let secs = on_worker(c.plan.cap, move |_| {
                    let t = Instant::now();
                    mounted::first_write(&path)?;
                    Ok(t.elapsed().as_secs_f64())
                })?;
                let after = c.scratch.written();
                Ok(Sample {
                    secs,
                    bytes_written: before.zip(after).map(|(b, a)| a - b),
                    note: None,
                })
            },
        );
        ctx.scratch.remove(&lower);
    }
    Ok(())
}

/// A cowfat image holding one `size` file, sealed: the file is now all base.
fn setup_cowfat(ctx: &Ctx, image: &Path, size: u64) -> Result<()> {
    inproc::create_image(image, size + size / 8 + 64 * MIB, false)?;
    let mut vol = inproc::mount(image)?;
    let root = vol.root()?;
    let f = inproc::create_file(&mut vol, root, FILE)?;
    let chunk = pattern(MIB as usize, 7);
    let cap = crate::cap::Cap::new(ctx.plan.cap * 4);
    inproc::write_all(&mut vol, f, size, &chunk, &cap)?;
    vol.seal()?;
    inproc::unmount(vol)
}

/// After a measured first write, the file goes back to all-base for the next repeat.
fn discard(image: &Path) -> Result<()> {
    let mut vol = inproc::mount(image)?;
    let root = vol.root()?;
    let f = inproc::lookup(&mut vol, root, FILE)?;
    vol.discard_file(f)?;
    inproc::unmount(vol)
}

fn in_process(
    ctx: &mut Ctx,
    image: &Path,
    floor_file: &Path,
    paired: &mut Paired,
) -> Result<Sample> {
    let mut vol = inproc::mount(image)?;
    vol.device_mut().reset();
    let floor = floor_sample(ctx, floor_file)?;
    let before = ctx.scratch.written();
    vol.device().inner().start_log();
    let t = Instant::now();
    let root = vol.root()?;
    let f = inproc::lookup(&mut vol, root, FILE)?;
    vol.write(f, 0, &[0x5a])?;
    vol.sync()?;
    let secs = t.elapsed().as_secs_f64();
    let after = ctx.scratch.written();
    let log = vol.device().inner().take_log();
    let core = vol.device().counts.written_bytes;
    vol.discard_file(f)?;
    inproc::unmount(vol)?;
    // What part of that is finding the file's clusters at all: a 1-byte read, also the
    // first access after mount, with no copy-on-write in it.
    let mut vol = inproc::mount(image)?;
    let t = Instant::now();
    let root = vol.root()?;
    let f = inproc::lookup(&mut vol, root, FILE)?;
    vol.read(f, 0, &mut [0u8; 1])?;
    let read = t.elapsed().as_secs_f64();
    inproc::unmount(vol)?;
    Ok(Sample {
        secs,
        bytes_written: before.zip(after).map(|(b, a)| a - b),
        note: Some(format!(
            "fs-core wrote {}; {}; a 1-byte read after mount takes {}; {}",
            fmt_bytes(core),
            breakdown(&log, secs),
            fmt_secs(read),
            paired.add(secs, floor)
        )),
    })
}

/// Where a first write's time went, from the device calls in order: everything before the
/// first flush is the write itself (finding the clusters, copying one), then `sync`'s data
/// flush, the journal write, the commit flush and the home writes; what the device calls do
/// not account for is fs-core's own work.
fn breakdown(log: &[(Op, Duration)], secs: f64) -> String {
    let mut phase = [Duration::ZERO; 5];
    let mut flushes = 0;
    for &(op, d) in log {
        let i = match (op, flushes) {
            (Op::Flush, _) => {
                flushes += 1;
                if flushes == 1 {
                    1
                } else {
                    3
                }
            }
            (_, 0) => 0,
            (_, 1) => 2,
            _ => 4,
        };
        phase[i] += d;
    }
    let device: Duration = phase.iter().sum();
    let cpu = (secs - device.as_secs_f64()).max(0.0);
    let [copy, data_flush, journal, commit_flush, home] = phase.map(|d| fmt_secs(d.as_secs_f64()));
    format!(
        "{flushes} flushes: write {copy}, data flush {data_flush}, journal {journal}, \
         commit flush {commit_flush}, home writes {home}, fs-core {}",
        fmt_secs(cpu)
    )
}

fn through_fuse(
    ctx: &mut Ctx,
    image: &Path,
    floor_file: &Path,
    paired: &mut Paired,
) -> Result<Sample> {
    let bin = ctx.need_cowfat().map_err(anyhow::Error::msg)?;
    let dir = ctx.scratch.mount_point("cowfat")?;
    let log = ctx.scratch.dir.join("cowfat-mount.log");
    let m = mounted::cowfat(&bin, image, &dir, &log)?;
    let floor = floor_sample(ctx, floor_file)?;
    let before = ctx.scratch.written();
    let path = dir.join(FILE);
    let secs = on_worker(ctx.plan.cap, move |_| {
        let t = Instant::now();
        mounted::first_write(&path)?;
        Ok(t.elapsed().as_secs_f64())
    })?;
    let after = ctx.scratch.written();
    m.unmount()?;
    discard(image)?;
    Ok(Sample {
        secs,
        bytes_written: before.zip(after).map(|(b, a)| a - b),
        note: Some(paired.add(secs, floor)),
    })
}

/// The floor's operation (a 1-byte write and fsync of a plain file) once, on a worker like
/// the measured operations, after a syncfs as the floor row's repeats (and the cowfat
/// repeat after it) have: without it the fsync also commits whatever mount left in the
/// scratch file system's running transaction.
fn floor_sample(ctx: &Ctx, path: &Path) -> Result<f64> {
    std::thread::sleep(TICK);
    let _ = crate::host::syncfs(&ctx.scratch.dir);
    let path = path.to_path_buf();
    on_worker(ctx.plan.cap, move |_| {
        let t = Instant::now();
        mounted::first_write(&path)?;
        Ok(t.elapsed().as_secs_f64())
    })
}

/// Each repeat's time next to the floor timed just before it.
#[derive(Debug, Default)]
struct Paired {
    floor: Vec<f64>,
    ratio: Vec<f64>,
}

impl Paired {
    /// Adds one repeat; says what the repeats so far give (the last repeat's note is the
    /// row's, so it covers them all).
    fn add(&mut self, secs: f64, floor: f64) -> String {
        self.floor.push(floor);
        self.ratio.push(secs / floor.max(1e-9));
        format!(
            "paired floor {}, median of per-repeat ratios {:.2}",
            fmt_secs(median(&self.floor)),
            median(&self.ratio)
        )
    }
}

/// The small plain file the paired floor samples write to, durable before the first one.
fn write_floor_file(path: &Path) -> Result<()> {
    let cap = crate::cap::Cap::new(std::time::Duration::from_secs(60));
    mounted::write_file(path, 64 * 1024, &pattern(64 * 1024, 3), &cap)
}

fn write_lower(lower: &Path, size: u64) -> Result<()> {
    let cap = crate::cap::Cap::new(std::time::Duration::from_secs(600));
    mounted::write_file(&lower.join(FILE), size, &pattern(MIB as usize, 7), &cap)
}

fn overlay(ctx: &mut Ctx, lower: &Path, fuse: bool) -> Result<Sample> {
    let name = if fuse { "fuse-ovl" } else { "kovl" };
    let base = ctx.scratch.fresh(&format!("fw-{name}"))?;
    let layers = mounted::Layers {
        lower: lower.to_path_buf(),
        upper: mk(&base, "upper")?,
        work: mk(&base, "work")?,
    };
    let dir = ctx.scratch.mount_point(name)?;
    let m = if fuse {
        mounted::fuse_overlayfs(&layers, &dir, &ctx.scratch.dir.join("fuse-overlayfs.log"))?
    } else {
        mounted::overlayfs(&layers, &dir)?
    };
    let before = ctx.scratch.written();
    let path = dir.join(FILE);
    let secs = on_worker(ctx.plan.cap, move |_| {
        let t = Instant::now();
        mounted::first_write(&path)?;
        Ok(t.elapsed().as_secs_f64())
    })?;
    let after = ctx.scratch.written();
    m.unmount()?;
    ctx.scratch.remove(&base);
    Ok(Sample {
        secs,
        bytes_written: before.zip(after).map(|(b, a)| a - b),
        note: None,
    })
}

fn mk(base: &Path, name: &str) -> Result<PathBuf> {
    let p = base.join(name);
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_puts_each_device_call_in_its_phase() {
        let ms = Duration::from_millis;
        let log = [
            (Op::Read, ms(1)),
            (Op::Write, ms(2)),
            (Op::Flush, ms(3)),
            (Op::Write, ms(4)),
            (Op::Flush, ms(5)),
            (Op::Write, ms(6)),
            (Op::Write, ms(1)),
        ];
        assert_eq!(
            breakdown(&log, 0.025),
            "2 flushes: write 3.00 ms, data flush 3.00 ms, journal 4.00 ms, \
             commit flush 5.00 ms, home writes 7.00 ms, fs-core 3.00 ms"
        );
    }

    #[test]
    fn paired_note_covers_every_repeat_so_far() {
        let mut p = Paired::default();
        p.add(2e-3, 1e-3);
        p.add(3e-3, 1e-3);
        assert_eq!(
            p.add(10e-3, 2e-3),
            "paired floor 1.00 ms, median of per-repeat ratios 3.00"
        );
    }
}
