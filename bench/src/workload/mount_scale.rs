//! Workload 4: mounting a large, sparsely used volume — a dynamic VHD (1 TiB in the full
//! run) holding N files of 4 KiB, page cache dropped first. In-process, a child process of
//! this program opens and mounts it (`--probe-mount`) and reports its time and memory; for
//! FUSE, the time from starting `cowfat mount` until the kernel lists the mount, and the
//! server's resident memory then and after `ls` of the directory.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use crate::cap::{on_worker, Cap, Sample};
use crate::ctx::Ctx;
use crate::host;
use crate::report::Side;
use crate::system::{inproc, mounted, pattern, small_name};
use crate::workload::size_label;

const W: &str = "mount";

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let (disk, n) = (ctx.plan.mount_disk, ctx.plan.mount_files);
    let case = format!("{} dynamic VHD, {n} files", size_label(disk));
    eprintln!("mount {case}");
    let image = ctx.scratch.dir.join("mount.vhd");
    let t = Instant::now();
    let setup = build(ctx, &image, disk, n).map_err(|e| format!("building the image: {e:#}"));
    eprintln!("  (image built in {:.1} s)", t.elapsed().as_secs_f64());
    ctx.measure(
        W,
        &case,
        "cowfat in-process",
        Side::CowfatInProcess,
        None,
        None,
        setup.clone(),
        |c| {
            c.cold()?;
            let exe = std::env::current_exe()?;
            let out = host::run(
                Command::new(exe).arg("--probe-mount").arg(&image),
                c.plan.cap,
            )?;
            parse_probe(&out)
        },
    );
    let can = setup.and(ctx.need_cowfat().map(|_| ()));
    ctx.measure(
        W,
        &case,
        "cowfat FUSE",
        Side::CowfatFuse,
        None,
        None,
        can,
        |c| {
            let bin = c.need_cowfat().map_err(anyhow::Error::msg)?;
            let dir = c.scratch.mount_point("cowfat")?;
            c.cold()?;
            let t = Instant::now();
            let m = mounted::cowfat(&bin, &image, &dir, &c.scratch.dir.join("cowfat-mount.log"))?;
            let secs = t.elapsed().as_secs_f64();
            let pid = m.server_pid().ok_or_else(|| anyhow!("no server process"))?;
            let (rss, _) = host::memory_kib(pid).unwrap_or((0, 0));
            let d = dir.clone();
            on_worker(c.plan.cap, move |_| {
                let mut k = 0;
                for e in std::fs::read_dir(&d)? {
                    e?.metadata()?;
                    k += 1;
                }
                Ok(k)
            })?;
            let (rss_ls, _) = host::memory_kib(pid).unwrap_or((0, 0));
            m.unmount()?;
            Ok(Sample {
                secs,
                bytes_written: None,
                note: Some(format!(
                    "server RSS {} MiB mounted, {} MiB after ls -l",
                    mib(rss),
                    mib(rss_ls)
                )),
            })
        },
    );
    ctx.scratch.remove(&image);
    Ok(())
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn build(ctx: &Ctx, image: &Path, disk: u64, n: usize) -> Result<()> {
    inproc::create_image(image, disk, true)?;
    let mut vol = inproc::mount(image)?;
    let root = vol.root()?;
    let data = pattern(4096, 9);
    let cap = Cap::new(ctx.plan.cap * 4);
    for i in 1..=n {
        let f = inproc::create_file(&mut vol, root, &small_name(i))?;
        vol.write(f, 0, &data)?;
        if i % 256 == 0 {
            cap.check()?;
        }
    }
    inproc::unmount(vol)
}

/// The child side: open the image and mount its volume, print seconds and memory.
pub fn probe(image: &Path) -> Result<()> {
    let (before, _) = host::memory_kib(std::process::id()).unwrap_or((0, 0));
    let t = Instant::now();
    let s = format_tool::volume::open(image, true, None)
        .map_err(|e| anyhow!("{e}"))
        .context("mounting")?;
    let secs = t.elapsed().as_secs_f64();
    let (rss, hwm) = host::memory_kib(std::process::id()).unwrap_or((0, 0));
    s.vol.unmount().context("unmounting")?;
    println!("{secs} {before} {rss} {hwm}");
    Ok(())
}

fn parse_probe(out: &str) -> Result<Sample> {
    let v: Vec<f64> = out
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow!("unexpected probe output {out:?}"))?;
    let [secs, before, rss, hwm] = v[..] else {
        return Err(anyhow!("unexpected probe output {out:?}"));
    };
    Ok(Sample {
        secs,
        bytes_written: None,
        note: Some(format!(
            "RSS {} MiB mounted (+{} MiB over the bare process), peak {} MiB",
            mib(rss as u64),
            mib((rss - before).max(0.0) as u64),
            mib(hwm as u64)
        )),
    })
}
