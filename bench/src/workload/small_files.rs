//! Workload 3: N files of 4 KiB in one directory — create (then sync), list cold, read all
//! cold. "Cold" = the page cache is dropped after mounting, before the timed step; cowfat's
//! own in-memory directory index (built at mount) is kept, as a mounted cowfat keeps it.
//! tmpfs has no cold state. All systems work in a subdirectory `d`, so FAT's fixed-size
//! FAT16 root never limits a peer.

use std::io::{Read, Write};
use std::path::Path;

use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::cap::{on_worker, Cap, Sample};
use crate::ctx::{Ctx, Phase};
use crate::host;
use crate::report::Side;
use crate::system::{inproc, mounted, pattern, small_name, tool, MIB};

const W: &str = "small-files";
const LEN: usize = 4096;

pub fn run(ctx: &mut Ctx) -> Result<()> {
    for n in ctx.plan.small_counts.clone() {
        eprintln!("{n} files of 4 KiB");
        let x = Some(n as f64);
        let phases = [
            Phase::new(format!("create {n}"), x),
            Phase::new(format!("list {n} cold"), x),
            Phase::new(format!("read {n} cold"), x),
        ];
        let names: Vec<String> = (1..=n).map(small_name).collect();
        let image_size = (n as u64 * LEN as u64 * 2 + 64 * MIB).max(300 * MIB);
        let ns = names.clone();
        ctx.measure_phases(
            W,
            &phases,
            "cowfat in-process",
            Side::CowfatInProcess,
            Ok(()),
            |c| in_process(c, &ns, image_size),
        );
        let ns = names.clone();
        let can = ctx.need_cowfat().map(|_| ());
        ctx.measure_phases(W, &phases, "cowfat FUSE", Side::CowfatFuse, can, |c| {
            cowfat_fuse(c, &ns, image_size)
        });
        let ns = names.clone();
        let can = ctx.need_tool("mcopy").and(ctx.need_tool("mkfs.fat"));
        ctx.measure_phases(W, &phases, "mtools", Side::Peer, can, |c| {
            mtools(c, &ns, image_size)
        });
        let ns = names.clone();
        ctx.measure_phases(W, &phases, "fatfs crate", Side::Peer, Ok(()), |c| {
            fatfs(c, &ns, image_size)
        });
        let ns = names.clone();
        ctx.measure_phases(W, &phases, "ext4 (reference)", Side::Peer, Ok(()), |c| {
            let base = c.scratch.fresh("small-ext4")?;
            let r = files(c, &base, &ns, true);
            c.scratch.remove(&base);
            r
        });
        // The FUSE floor: a pass-through of the same disk, so the rows show what FUSE's
        // round trips alone cost on this machine.
        let ns = names.clone();
        let can = ctx.need_fuse_tool("bindfs");
        ctx.measure_phases(W, &phases, "bindfs (FUSE floor)", Side::Peer, can, |c| {
            let src = c.scratch.fresh("small-bind")?;
            let dir = c.scratch.mount_point("bindfs")?;
            let m = mounted::bindfs(&src, &dir, &c.scratch.dir.join("bindfs.log"))?;
            let r = files(c, &dir, &ns, true);
            m.unmount()?;
            c.scratch.remove(&src);
            super::with_options(r, &mounted::bindfs_options())
        });
        let ns = names.clone();
        let can = ctx.need_root("tmpfs");
        ctx.measure_phases(W, &phases, "tmpfs (reference)", Side::Peer, can, |c| {
            let dir = c.scratch.mount_point("tmpfs")?;
            let m = mounted::tmpfs(&dir, image_size)?;
            let r = files(c, &dir, &ns, false);
            m.unmount()?;
            r
        });
    }
    Ok(())
}

fn in_process(ctx: &mut Ctx, names: &[String], image_size: u64) -> Result<Vec<Sample>> {
    let image = ctx.scratch.dir.join("small.vhd");
    inproc::create_image(&image, image_size, false)?;
    let data = pattern(LEN, 5);
    let mut vol = inproc::mount(&image)?;
    let root = vol.root()?;
    let d = inproc::mkdir(&mut vol, root, "d")?;
    vol.sync()?;
    let cap = Cap::new(ctx.plan.cap);
    let t = Instant::now();
    for (i, n) in names.iter().enumerate() {
        let f = inproc::create_file(&mut vol, d, n)?;
        vol.write(f, 0, &data)?;
        if i % 64 == 0 {
            cap.check()?;
        }
    }
    vol.sync()?;
    let create = t.elapsed().as_secs_f64();
    inproc::unmount(vol)?;

    let mut vol = inproc::mount(&image)?;
    ctx.cold()?;
    let t = Instant::now();
    let root = vol.root()?;
    let d = inproc::lookup(&mut vol, root, "d")?;
    let listed = vol.list(d)?.len();
    let list = t.elapsed().as_secs_f64();
    expect(listed, names.len())?;

    ctx.cold()?;
    let cap = Cap::new(ctx.plan.cap);
    let mut buf = vec![0u8; LEN];
    let t = Instant::now();
    for (i, n) in names.iter().enumerate() {
        let f = inproc::lookup(&mut vol, d, n)?;
        let got = vol.read(f, 0, &mut buf)?;
        expect(got, LEN)?;
        if i % 64 == 0 {
            cap.check()?;
        }
    }
    let read = t.elapsed().as_secs_f64();
    inproc::unmount(vol)?;
    ctx.scratch.remove(&image);
    Ok(three(ctx, create, list, read))
}

fn cowfat_fuse(ctx: &mut Ctx, names: &[String], image_size: u64) -> Result<Vec<Sample>> {
    let bin = ctx.need_cowfat().map_err(anyhow::Error::msg)?;
    let image = ctx.scratch.dir.join("small.vhd");
    inproc::create_image(&image, image_size, false)?;
    let dir = ctx.scratch.mount_point("cowfat")?;
    let log = ctx.scratch.dir.join("cowfat-mount.log");
    let m = mounted::cowfat(&bin, &image, &dir, &log)?;
    std::fs::create_dir(dir.join("d"))?;
    let d = dir.join("d");
    let (dd, ns) = (d.clone(), names.to_vec());
    let create = on_worker(ctx.plan.cap, move |cap| {
        let data = pattern(LEN, 5);
        let t = Instant::now();
        mounted::create_many(&dd, &ns, &data, &cap)?;
        Ok(t.elapsed().as_secs_f64())
    })?;
    m.unmount()?;
    // A fresh server, so nothing the first one kept in memory makes the cold steps warm.
    let m = mounted::cowfat(&bin, &image, &dir, &log)?;
    let (list, read) = cold_steps(ctx, &d, names)?;
    m.unmount()?;
    ctx.scratch.remove(&image);
    Ok(three(ctx, create, list, read))
}

/// Create, cold list, cold read through ordinary file calls (ext4, tmpfs).
fn files(ctx: &mut Ctx, base: &Path, names: &[String], can_be_cold: bool) -> Result<Vec<Sample>> {
    let d = base.join("d");
    std::fs::create_dir_all(&d)?;
    let (dd, ns) = (d.clone(), names.to_vec());
    let create = on_worker(ctx.plan.cap, move |cap| {
        let data = pattern(LEN, 5);
        let t = Instant::now();
        mounted::create_many(&dd, &ns, &data, &cap)?;
        Ok(t.elapsed().as_secs_f64())
    })?;
    let (list, read) = cold_steps(ctx, &d, names)?;
    let mut s = three(ctx, create, list, read);
    if !can_be_cold {
        for x in &mut s[1..] {
            x.note = Some("in memory: no cold state".into());
        }
    }
    Ok(s)
}

fn cold_steps(ctx: &mut Ctx, d: &Path, names: &[String]) -> Result<(f64, f64)> {
    ctx.cold()?;
    let (dd, count) = (d.to_path_buf(), names.len());
    let list = on_worker(ctx.plan.cap, move |_| {
        let t = Instant::now();
        mounted::list(&dd, count)?;
        Ok(t.elapsed().as_secs_f64())
    })?;
    ctx.cold()?;
    let (dd, ns) = (d.to_path_buf(), names.to_vec());
    let read = on_worker(ctx.plan.cap, move |cap| {
        let t = Instant::now();
        mounted::read_many(&dd, &ns, LEN, &cap)?;
        Ok(t.elapsed().as_secs_f64())
    })?;
    Ok((list, read))
}

/// mtools: one `mcopy` of all files (the tool's own best case: one process, one image
/// open), `mdir` to list, `mtype` of every file to read.
fn mtools(ctx: &mut Ctx, names: &[String], image_size: u64) -> Result<Vec<Sample>> {
    let image = ctx.scratch.dir.join("small-mtools.img");
    tool::mkfs_fat(&image, image_size)?;
    host::run(tool::mtools("mmd", &image).arg("::/d"), ctx.plan.cap)?;
    // The source files sit warm on the scratch disk; only the copy into the image is timed.
    let src = ctx.scratch.fresh("small-src")?;
    let data = pattern(LEN, 5);
    for n in names {
        std::fs::write(src.join(n), &data)?;
    }
    host::syncfs(&src)?;
    let t = Instant::now();
    host::run(
        tool::mtools("mcopy", &image)
            .current_dir(&src)
            .args(names)
            .arg("::/d/"),
        ctx.plan.cap,
    )?;
    host::syncfs(&ctx.scratch.dir)?;
    let create = t.elapsed().as_secs_f64();
    ctx.scratch.remove(&src);

    ctx.cold()?;
    let t = Instant::now();
    let out = host::run(
        tool::mtools("mdir", &image).args(["-b", "::/d"]),
        ctx.plan.cap,
    )?;
    let list = t.elapsed().as_secs_f64();
    expect(
        out.lines().filter(|l| !l.trim().is_empty()).count(),
        names.len(),
    )?;

    ctx.cold()?;
    let t = Instant::now();
    let out = host::run(tool::mtools("mtype", &image).arg("::/d/*"), ctx.plan.cap)?;
    let read = t.elapsed().as_secs_f64();
    expect(out.len(), names.len() * LEN).or_else(|_| {
        // mtype may translate bytes; only insist on having read something of each file.
        if out.len() >= names.len() {
            Ok(())
        } else {
            Err(anyhow!("mtype returned {} bytes", out.len()))
        }
    })?;
    ctx.scratch.remove(&image);
    Ok(three(ctx, create, list, read))
}

fn fatfs(ctx: &mut Ctx, names: &[String], image_size: u64) -> Result<Vec<Sample>> {
    let image = ctx.scratch.dir.join("small-fatfs.img");
    let file = inproc::fat::create_image(&image, image_size)?;
    let data = pattern(LEN, 5);
    {
        let fs = inproc::fat::mount(&file)?;
        fs.root_dir().create_dir("d")?;
        fs.unmount()?;
    }
    let cap = Cap::new(ctx.plan.cap);
    let t = Instant::now();
    {
        let fs = inproc::fat::mount(&file)?;
        {
            let d = fs.root_dir().open_dir("d")?;
            for (i, n) in names.iter().enumerate() {
                let mut f = d.create_file(n)?;
                f.write_all(&data)?;
                f.flush()?;
                if i % 16 == 0 {
                    cap.check()?;
                }
            }
        }
        fs.unmount()?;
    }
    file.sync_all()?;
    let create = t.elapsed().as_secs_f64();

    let fs = inproc::fat::mount(&file)?;
    ctx.cold()?;
    let t = Instant::now();
    let d = fs.root_dir().open_dir("d")?;
    let mut listed = 0;
    for e in d.iter() {
        let e = e?;
        if e.file_name() != "." && e.file_name() != ".." {
            listed += 1;
        }
    }
    let list = t.elapsed().as_secs_f64();
    expect(listed, names.len())?;

    ctx.cold()?;
    let cap = Cap::new(ctx.plan.cap);
    let mut buf = Vec::with_capacity(LEN);
    let t = Instant::now();
    for (i, n) in names.iter().enumerate() {
        buf.clear();
        d.open_file(n)?.read_to_end(&mut buf)?;
        expect(buf.len(), LEN)?;
        if i % 16 == 0 {
            cap.check()?;
        }
    }
    let read = t.elapsed().as_secs_f64();
    drop(d);
    drop(fs);
    ctx.scratch.remove(&image);
    Ok(three(ctx, create, list, read))
}

fn three(ctx: &Ctx, create: f64, list: f64, read: f64) -> Vec<Sample> {
    vec![
        Sample::secs(create),
        Sample {
            secs: list,
            bytes_written: None,
            note: ctx.cold_note(),
        },
        Sample {
            secs: read,
            bytes_written: None,
            note: ctx.cold_note(),
        },
    ]
}

fn expect(got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(anyhow!("got {got}, expected {want}"));
    }
    Ok(())
}
