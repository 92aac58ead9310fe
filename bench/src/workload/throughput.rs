//! Workload 2: sequential write of one large file in 1 MiB writes, fsync included, then a
//! cold read of it (page cache dropped after mounting, before reading). Peers: a raw file on
//! the same disk (the physical limit), the `fatfs` crate, fusefat, and bindfs (a FUSE
//! pass-through: the floor for anything served through FUSE).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::cap::{on_worker, Cap, Sample};
use crate::ctx::{Ctx, Phase};
use crate::host::Mount;
use crate::report::Side;
use crate::system::{inproc, mounted, pattern, tool, MIB};
use crate::workload::size_label;

const W: &str = "sequential";
const CHUNK: usize = MIB as usize;

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let size = ctx.plan.seq_bytes;
    let label = size_label(size);
    eprintln!("sequential {label}");
    let phases = [
        Phase {
            case: format!("write {label} + fsync"),
            payload_bytes: Some(size),
            x: None,
        },
        Phase {
            case: format!("cold read {label}"),
            payload_bytes: Some(size),
            x: None,
        },
    ];
    ctx.measure_phases(
        W,
        &phases,
        "cowfat in-process",
        Side::CowfatInProcess,
        Ok(()),
        |c| in_process(c, size),
    );
    let can = ctx.need_cowfat().map(|_| ());
    ctx.measure_phases(W, &phases, "cowfat FUSE", Side::CowfatFuse, can, |c| {
        let bin = c.need_cowfat().map_err(anyhow::Error::msg)?;
        let image = c.scratch.dir.join("seq.vhd");
        inproc::create_image(&image, size + size / 4 + 64 * MIB, false)?;
        let dir = c.scratch.mount_point("cowfat")?;
        let m = mounted::cowfat(&bin, &image, &dir, &c.scratch.dir.join("cowfat-mount.log"))?;
        let r = through_mount(c, m, size);
        c.scratch.remove(&image);
        r
    });
    // The kernel's writeback cache lets FUSE write in large pieces and batch them.
    let can = ctx.need_cowfat().map(|_| ());
    ctx.measure_phases(
        W,
        &phases,
        "cowfat FUSE writeback",
        Side::CowfatFuse,
        can,
        |c| {
            let bin = c.need_cowfat().map_err(anyhow::Error::msg)?;
            let image = c.scratch.dir.join("seq.vhd");
            inproc::create_image(&image, size + size / 4 + 64 * MIB, false)?;
            let dir = c.scratch.mount_point("cowfat")?;
            let log = c.scratch.dir.join("cowfat-mount.log");
            let m = mounted::cowfat_writeback(&bin, &image, &dir, &log)?;
            let r = through_mount(c, m, size);
            c.scratch.remove(&image);
            r
        },
    );
    ctx.measure_phases(
        W,
        &phases,
        "raw file (same disk)",
        Side::Peer,
        Ok(()),
        |c| {
            let dir = c.scratch.fresh("seq-raw")?;
            let r = files(c, &dir, size);
            c.scratch.remove(&dir);
            r
        },
    );
    ctx.measure_phases(W, &phases, "fatfs crate", Side::Peer, Ok(()), |c| {
        fatfs(c, size)
    });
    let can = ctx.need_fuse_tool("fusefat").and(ctx.need_tool("mkfs.fat"));
    ctx.measure_phases(W, &phases, "fusefat", Side::Peer, can, |c| {
        let image = c.scratch.dir.join("seq-fat.img");
        tool::mkfs_fat(&image, size + size / 4 + 64 * MIB)?;
        let dir = c.scratch.mount_point("fusefat")?;
        let m = mounted::fusefat(&image, &dir, &c.scratch.dir.join("fusefat.log"))?;
        let r = through_mount(c, m, size);
        c.scratch.remove(&image);
        super::with_options(r, &mounted::fusefat_options())
    });
    let can = ctx.need_fuse_tool("bindfs");
    ctx.measure_phases(W, &phases, "bindfs (FUSE floor)", Side::Peer, can, |c| {
        let src = c.scratch.fresh("seq-bind")?;
        let dir = c.scratch.mount_point("bindfs")?;
        let m = mounted::bindfs(&src, &dir, &c.scratch.dir.join("bindfs.log"))?;
        let r = through_mount(c, m, size);
        c.scratch.remove(&src);
        super::with_options(r, &mounted::bindfs_options())
    });
    Ok(())
}

fn in_process(ctx: &mut Ctx, size: u64) -> Result<Vec<Sample>> {
    let image = ctx.scratch.dir.join("seq.vhd");
    inproc::create_image(&image, size + size / 4 + 64 * MIB, false)?;
    let chunk = pattern(CHUNK, 3);
    let mut vol = inproc::mount(&image)?;
    vol.device_mut().reset();
    let before = ctx.scratch.written();
    let cap = Cap::new(ctx.plan.cap);
    let t = Instant::now();
    let root = vol.root()?;
    let f = inproc::create_file(&mut vol, root, "seq.bin")?;
    inproc::write_all(&mut vol, f, size, &chunk, &cap)?;
    vol.sync()?;
    let write = t.elapsed().as_secs_f64();
    let after = ctx.scratch.written();
    // How often fs-core flushed the device on the way (each flush is an fdatasync).
    let counts = vol.device().counts.clone();
    inproc::unmount(vol)?;

    let mut vol = inproc::mount(&image)?;
    ctx.cold()?;
    let cap = Cap::new(ctx.plan.cap);
    let mut buf = vec![0u8; CHUNK];
    let t = Instant::now();
    let root = vol.root()?;
    let f = inproc::lookup(&mut vol, root, "seq.bin")?;
    let n = inproc::read_all(&mut vol, f, &mut buf, &cap)?;
    let read = t.elapsed().as_secs_f64();
    check_len(n, size)?;
    let reads = vol.device().counts.reads;
    inproc::unmount(vol)?;
    ctx.scratch.remove(&image);
    let mut samples = pair(ctx, write, read, before, after);
    samples[0].note = Some(format!(
        "fs-core: {} device writes, {} flushes",
        counts.writes, counts.flushes
    ));
    samples[1].note = Some(format!("fs-core: {reads} device reads since mount"));
    Ok(samples)
}

/// Write then cold read through a mounted system's directory, then unmount it.
fn through_mount(ctx: &mut Ctx, m: Mount, size: u64) -> Result<Vec<Sample>> {
    let dir = m.dir.clone();
    let r = files(ctx, &dir, size);
    m.unmount()?;
    r
}

fn files(ctx: &mut Ctx, dir: &Path, size: u64) -> Result<Vec<Sample>> {
    let path = dir.join("seq.bin");
    let before = ctx.scratch.written();
    let p = path.clone();
    let write = on_worker(ctx.plan.cap, move |cap| {
        let chunk = pattern(CHUNK, 3);
        let t = Instant::now();
        mounted::write_file(&p, size, &chunk, &cap)?;
        Ok(t.elapsed().as_secs_f64())
    })?;
    let after = ctx.scratch.written();
    ctx.cold()?;
    let read = on_worker(ctx.plan.cap, move |cap| {
        let t = Instant::now();
        let n = mounted::read_file(&path, CHUNK, &cap)?;
        let secs = t.elapsed().as_secs_f64();
        check_len(n, size)?;
        Ok(secs)
    })?;
    Ok(pair(ctx, write, read, before, after))
}

fn fatfs(ctx: &mut Ctx, size: u64) -> Result<Vec<Sample>> {
    let image = ctx.scratch.dir.join("seq-fatfs.img");
    let file = inproc::fat::create_image(&image, size + size / 4 + 64 * MIB)?;
    let chunk = pattern(CHUNK, 3);
    let before = ctx.scratch.written();
    let cap = Cap::new(ctx.plan.cap);
    let t = Instant::now();
    {
        let fs = inproc::fat::mount(&file)?;
        {
            let mut f = fs.root_dir().create_file("seq.bin")?;
            let mut at = 0u64;
            while at < size {
                let n = CHUNK.min((size - at) as usize);
                f.write_all(&chunk[..n])?;
                at += n as u64;
                cap.check()?;
            }
            f.flush()?;
        }
        // Unmounting writes the FAT and directory; the fsync makes it all durable.
        fs.unmount()?;
    }
    file.sync_all()?;
    let write = t.elapsed().as_secs_f64();
    let after = ctx.scratch.written();

    let fs = inproc::fat::mount(&file)?;
    ctx.cold()?;
    let cap = Cap::new(ctx.plan.cap);
    let mut buf = vec![0u8; CHUNK];
    let t = Instant::now();
    let mut n = 0u64;
    {
        let mut f = fs.root_dir().open_file("seq.bin")?;
        loop {
            let k = f.read(&mut buf)?;
            if k == 0 {
                break;
            }
            n += k as u64;
            cap.check()?;
        }
    }
    let read = t.elapsed().as_secs_f64();
    drop(fs);
    check_len(n, size)?;
    ctx.scratch.remove(&image);
    Ok(pair(ctx, write, read, before, after))
}

fn pair(ctx: &Ctx, write: f64, read: f64, before: Option<u64>, after: Option<u64>) -> Vec<Sample> {
    vec![
        Sample {
            secs: write,
            bytes_written: before.zip(after).map(|(b, a)| a - b),
            note: None,
        },
        Sample {
            secs: read,
            bytes_written: None,
            note: ctx.cold_note(),
        },
    ]
}

fn check_len(n: u64, size: u64) -> Result<()> {
    if n != size {
        return Err(anyhow!("read {n} bytes back, wrote {size}"));
    }
    Ok(())
}
